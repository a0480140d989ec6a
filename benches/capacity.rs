//! Capacity planner and shared-memory cost per key.
//!
//! `cargo bench --bench capacity -- --workers 4 --servers 20 --peers 50 --other 0 --buckets 11 --name-len 24`
//! prints the `vts_zone` size a workload needs (from `stats::capacity::plan`, the formula in its
//! doc comment), checks it by running the workload on a region of exactly that size, and
//! measures the scrape (merge + Prometheus text) and its output size on this machine.
//! Optional: `--generations N` (default 2: a graceful reload's old workers keep their shards
//! while the new ones claim others; 1 if you never reload).
//!
//! Without workload arguments (as under plain `cargo bench`) it prints the bytes of shared
//! memory per key and per key per worker for the default 11 buckets and for 16, and the plans
//! of a few typical workloads.
#[allow(dead_code, unused_imports)]
#[path = "../src/conf/mod.rs"]
mod conf;
#[allow(dead_code, unused_imports)]
#[path = "../src/render/mod.rs"]
mod render;
#[allow(dead_code, unused_imports)]
#[path = "../src/stats/mod.rs"]
mod stats;
#[allow(dead_code, unused_imports)]
#[path = "../src/view.rs"]
mod view;

use std::hint::black_box;
use std::process::ExitCode;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use render::prometheus::{render, Connections, Format, PeerState};
use stats::capacity::{plan, Plan, Workload};
use stats::{upstream_key, HeapRegion, Kind, Recorded, Sample, Zone, OVERFLOW_SERVER, OVERFLOW_UPSTREAM};
use view::{Display, Info, ShmUse, View};

const DEFAULT_BOUNDS_S: [f64; 11] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

fn bounds_s(n: usize) -> Vec<f64> {
    if n == DEFAULT_BOUNDS_S.len() {
        DEFAULT_BOUNDS_S.to_vec()
    } else {
        (1..=n).map(|i| 0.001 * (1u64 << i.min(40)) as f64).collect()
    }
}

/// A name of `len` bytes (longer if `len` cannot hold the unique prefix).
fn padded(prefix: String, len: usize) -> Vec<u8> {
    let mut v = prefix.into_bytes();
    while v.len() < len {
        v.push(b'x');
    }
    v
}

/// A key of the workload: kind, stored name, and for a peer its group and address.
type KeySpec = (Kind, Vec<u8>, Vec<u8>, Vec<u8>);

fn names(w: &Workload) -> Vec<KeySpec> {
    let mut out = Vec::new();
    for i in 0..w.servers {
        out.push((Kind::Server, padded(format!("s{i}."), w.name_len), vec![], vec![]));
    }
    for i in 0..w.peers {
        let group = format!("up{}", i / 16).into_bytes();
        let peer = padded(
            format!("10.0.{}.{}:", i / 250, i % 250),
            w.name_len.saturating_sub(group.len()),
        );
        out.push((Kind::UpstreamPeer, upstream_key(&group, &peer), group, peer));
    }
    for i in 0..w.other {
        out.push((Kind::Server, padded(format!("o{i}."), w.name_len), vec![], vec![]));
    }
    out
}

struct Run {
    /// Bytes in use after registering every key (tables, names, the shared shard's chunk).
    used_keys: usize,
    /// Bytes in use after every shard wrote every key.
    used_all: usize,
    region: usize,
    merge: Duration,
    render: Duration,
    output: usize,
}

/// Runs the workload on a region of `region` bytes; `None` if anything overflowed.
fn run(w: &Workload, p: &Plan, region_len: usize, scrape_reps: usize) -> Option<Run> {
    let mut region = HeapRegion::new(region_len);
    let zone = unsafe { Zone::create(region.base(), region_len, w.spec(), 5, 1_700_000_000) }.ok()?;
    let lock = Mutex::new(());
    let keys = names(w);
    let mut ids = Vec::with_capacity(keys.len());
    for (kind, name, _, _) in &keys {
        ids.push((zone.key(&lock, *kind, name)?, *kind));
    }
    let used_keys = zone.usage().0;
    let bounds = bounds_s(w.buckets);
    let bounds_us: Vec<u64> = bounds.iter().map(|b| (b * 1e6) as u64).collect();
    for s in 0..p.shards {
        let wr = zone.writer(zone.claim(s % w.workers.max(1), 100 + s as i32, |_| true));
        for (i, &(id, kind)) in ids.iter().enumerate() {
            let x = (i * 31 + s * 7) as u64;
            let sample = Sample {
                status: [200, 200, 301, 404, 502][(x % 5) as usize],
                bytes_in: 200 + x % 500,
                bytes_out: 1000 + x * 13 % 100_000,
                time_ms: x % 3000,
                upstream_ms: (kind == Kind::UpstreamPeer).then_some(x % 2000),
                code: (w.codes > 0).then(|| (x % w.codes as u64) as u16),
                queued_at: 1 + x,
                ..Default::default()
            };
            let (overflow, up) = match kind {
                Kind::UpstreamPeer => (OVERFLOW_UPSTREAM, true),
                _ => (OVERFLOW_SERVER, false),
            };
            if wr.record(&lock, id, overflow, up, &sample, &bounds_us) != Recorded::Ok {
                return None;
            }
            // With time queues a peer's response times go to the slot after its own.
            if w.queue
                && kind == Kind::UpstreamPeer
                && wr.record(&lock, id + 1, OVERFLOW_UPSTREAM + 1, false, &sample, &bounds_us) != Recorded::Ok
            {
                return None;
            }
        }
    }
    let used_all = zone.usage().0;
    let peers: Vec<PeerState> = keys
        .iter()
        .filter(|k| k.0 == Kind::UpstreamPeer)
        .map(|(_, _, g, s)| PeerState {
            group: g.clone(),
            server: s.clone(),
            up: true,
            down: false,
            weight: 1,
            max_fails: 1,
            fail_timeout_s: 10,
            backup: false,
        })
        .collect();
    // The snapshot goes in at each scrape (moved in, and taken out after it).
    let mut view = View {
        info: Info {
            hostname: b"planner-host".to_vec(),
            module_version: "0.1.0".into(),
            nginx_version: "1.28.3".into(),
            ..Info::default()
        },
        connections: Some(Connections::default()),
        shm: ShmUse {
            name: b"vts".to_vec(),
            ..ShmUse::default()
        },
        snapshot: Default::default(),
        peers: Some(peers),
        display: Display {
            bucket_seconds: bounds,
            bucket_us: bounds_us,
            queues: w.queue,
            ..Display::default()
        },
    };
    let (mut merge, mut rend, mut output) = (Vec::new(), Vec::new(), 0);
    for _ in 0..scrape_reps {
        let t0 = Instant::now();
        let snap = zone.snapshot();
        let t1 = Instant::now();
        let mut out = Vec::new();
        view.snapshot = snap; // a move; the last one was taken out below (nothing to drop)
        render(black_box(&view), Format::Text, &mut out);
        merge.push(t1 - t0);
        rend.push(t1.elapsed());
        output = black_box(out).len();
        drop(std::mem::take(&mut view.snapshot));
    }
    merge.sort();
    rend.sort();
    Some(Run {
        used_keys,
        used_all,
        region: region_len,
        merge: merge.get(merge.len() / 2).copied().unwrap_or_default(),
        render: rend.get(rend.len() / 2).copied().unwrap_or_default(),
        output,
    })
}

fn size_str(n: usize) -> String {
    if n % (1 << 20) == 0 {
        format!("{}m", n >> 20)
    } else if n % 1024 == 0 {
        format!("{}k", n >> 10)
    } else {
        n.to_string()
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn print_plan(w: &Workload) -> Result<(), String> {
    let p = plan(w).map_err(|e| format!("cannot plan: {e:?}"))?;
    println!(
        "workload: {} workers x {} generation(s) -> {} shards; {} keys ({} servers, {} peers, {} other, 2 overflow); names {} B; {} buckets",
        w.workers, w.generations, p.shards, p.keys, w.servers, w.peers, w.other, w.name_len, w.buckets
    );
    println!(
        "  slot {} B, chunk {} B; chunks = 1 + {} shards x {} = {}",
        p.slot_bytes,
        p.chunk_bytes,
        p.shards,
        p.keys.div_ceil(16),
        p.chunks
    );
    let pad = p.arena_bytes - p.name_bytes - p.chunks * p.chunk_bytes;
    println!(
        "  arena  A = names {} + chunks {} + padding {} = {} B",
        p.name_bytes,
        p.chunks * p.chunk_bytes,
        pad,
        p.arena_bytes
    );
    println!(
        "  region R = max(512 x K = {}, ceil((A + 4532) x 2048 / 1823) = {}, A + 5432 = {}) = {} B",
        512 * p.keys,
        ((p.arena_bytes + 4532) * 2048).div_ceil(1823),
        p.arena_bytes + 5432,
        p.region_min
    );
    println!(
        "  zone   >= {} B (nginx slab pool: header, page descriptors, page alignment)",
        p.zone_min
    );
    let directive = if w.queue {
        format!("vhost_traffic_status_zone shared:NAME:{}", size_str(p.zone))
    } else {
        format!("vts_zone NAME {}", size_str(p.zone))
    };
    println!(
        "  recommended: {};   ({} B; region {} B; {:.0} B per key per shard)",
        directive,
        p.zone,
        p.region,
        p.bytes_per_key_per_shard()
    );
    let reps = if p.region > 256 << 20 { 3 } else { 7 };
    match run(w, &p, p.region, reps) {
        Some(r) => {
            println!(
                "  checked: the workload fits a region of {} B without overflow ({} B used, {} B free)",
                r.region,
                r.used_all,
                r.region - r.used_all
            );
            println!(
                "  scrape (this machine, every shard wrote every key): merge {:.3} ms + render {:.3} ms = {:.3} ms; output {} B ({:.0} B per key)",
                ms(r.merge),
                ms(r.render),
                ms(r.merge + r.render),
                r.output,
                r.output as f64 / (p.keys - 2).max(1) as f64
            );
        }
        None => {
            println!(
                "  CHECK FAILED: the workload overflowed a region of {} B",
                p.region
            );
            return Err("plan too small".into());
        }
    }
    Ok(())
}

/// Bytes per key and per key per worker, measured on the allocator, at the planned size.
fn per_key_table() {
    const KEYS: usize = 10_000;
    println!("shared memory per key: {KEYS} server zones, 24-byte names, 1 generation (no reload headroom)");
    println!();
    println!("| buckets | workers | slot B | used B/(key x worker) | used B/key (name, directory, index, chunk tables) | planned zone | zone B/(key x worker) |");
    println!("|--------:|--------:|-------:|----------------------:|---------------------------------------------------:|-------------:|----------------------:|");
    for buckets in [11usize, 16] {
        for workers in [1usize, 2, 4, 8] {
            let w = Workload {
                workers,
                generations: 1,
                servers: KEYS,
                peers: 0,
                other: 0,
                name_len: 24,
                buckets,
                codes: 0,
                queue: false,
            };
            let Ok(p) = plan(&w) else { continue };
            let Some(r) = run(&w, &p, p.region, 0) else {
                println!("| {buckets} | {workers} | overflow at the planned size |");
                continue;
            };
            println!(
                "| {:>7} | {:>7} | {:>6} | {:>21.1} | {:>50.1} | {:>12} | {:>21.1} |",
                buckets,
                workers,
                p.slot_bytes,
                (r.used_all - r.used_keys) as f64 / (KEYS * workers) as f64,
                r.used_keys as f64 / KEYS as f64,
                size_str(p.zone),
                p.zone as f64 / (KEYS * workers) as f64,
            );
        }
    }
    println!();
    println!("used B/key is what registering the keys takes (tables are laid out for zone/512 keys, so");
    println!("it grows with the zone); zone B/(key x worker) is everything, nginx's slab pool included.");
}

fn parse(args: &[String]) -> Result<Option<Workload>, String> {
    let mut w = Workload::new(1, 0, 0, 0, 24);
    let mut any = false;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let field = match a.as_str() {
            "--workers" => &mut w.workers,
            "--generations" => &mut w.generations,
            "--servers" => &mut w.servers,
            "--peers" => &mut w.peers,
            "--other" => &mut w.other,
            "--buckets" => &mut w.buckets,
            "--name-len" => &mut w.name_len,
            "--codes" => &mut w.codes,
            "--queue" => {
                // A `vhost_traffic_status_zone`: time queues (0 or 1).
                let v = it.next().ok_or("--queue needs 0 or 1")?;
                w.queue = v == "1";
                any = true;
                continue;
            }
            // What cargo passes to every bench binary.
            "--bench" => continue,
            "-h" | "--help" => {
                return Err(
                    "usage: cargo bench --bench capacity -- --workers N --servers N --peers N \
                     --other N --buckets N --name-len N [--generations N] [--codes N] [--queue 0|1]"
                        .into(),
                )
            }
            other => return Err(format!("unknown argument {other:?}")),
        };
        let v = it.next().ok_or_else(|| format!("{a} needs a value"))?;
        *field = v.parse().map_err(|_| format!("{a}: not a number: {v:?}"))?;
        any = true;
    }
    if w.workers == 0 || w.generations == 0 {
        return Err("--workers and --generations must be at least 1".into());
    }
    Ok(any.then_some(w))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let started = Instant::now();
    let result = match parse(&args) {
        Err(e) => Err(e),
        Ok(Some(w)) => print_plan(&w),
        Ok(None) => {
            per_key_table();
            println!();
            println!("plans (2 generations: room for a graceful reload):");
            println!();
            let mut r = Ok(());
            for w in [
                Workload::new(4, 20, 50, 0, 24),
                Workload::new(2, 10_000, 0, 0, 24),
                Workload::new(8, 1_000, 2_000, 0, 32),
            ] {
                r = r.and(print_plan(&w));
                println!();
            }
            println!("(bench took {:.1} s)", started.elapsed().as_secs_f64());
            r
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}
