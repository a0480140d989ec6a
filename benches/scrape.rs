//! Scrape cost: merge (`Zone::snapshot`, the sum over shards) and render (Prometheus text 0.0.4)
//! for keys x shards. Every key is a server zone with a 24-byte name and the default 11 buckets
//! (25 series per zone), every shard wrote every key; the region of each case is the one the
//! capacity planner gives for it. Medians of several runs; `ns/slot` is merge time per
//! (key, shard) slot summed.
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
use std::sync::Mutex;
use std::time::{Duration, Instant};

use render::prometheus::{render, Connections, Format};
use stats::capacity::{plan, Workload};
use stats::{HeapRegion, Kind, Sample, Zone, OVERFLOW_SERVER};
use view::{Display, Info, ShmUse, View};

const BOUNDS_S: [f64; 11] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

struct Row {
    keys: usize,
    shards: usize,
    merge: Duration,
    render: Duration,
    total: Duration,
    bytes: usize,
}

fn case(keys: usize, shards: usize) -> Row {
    let w = Workload {
        workers: shards,
        generations: 1,
        servers: keys,
        peers: 0,
        other: 0,
        name_len: 24,
        buckets: BOUNDS_S.len(),
        codes: 0,
        queue: false,
    };
    let p = plan(&w).expect("plan");
    let mut region = HeapRegion::new(p.region);
    let zone =
        unsafe { Zone::create(region.base(), region.len(), BOUNDS_S.len(), 9, 1_700_000_000) }.expect("zone");
    let lock = Mutex::new(());
    let ids: Vec<usize> = (0..keys)
        .map(|i| {
            let name = format!("srv{i:07}.example-site.com"); // 24 bytes
            zone.key(&lock, Kind::Server, name.as_bytes()).expect("key")
        })
        .collect();
    let bounds_us: Vec<u64> = BOUNDS_S.iter().map(|b| (b * 1e6) as u64).collect();
    for s in 0..shards {
        let wr = zone.writer(zone.claim(s, 100 + s as i32, |_| true));
        for (i, &id) in ids.iter().enumerate() {
            let x = (i * 31 + s * 7) as u64;
            let sample = Sample {
                status: [200, 200, 301, 404, 502][(x % 5) as usize],
                bytes_in: 200 + x % 500,
                bytes_out: 1000 + x * 13 % 100_000,
                time_ms: x % 3000,
                upstream_ms: None,
                ..Default::default()
            };
            wr.record(&lock, id, OVERFLOW_SERVER, false, &sample, &bounds_us);
        }
    }
    // The snapshot goes in at each scrape (moved in, and taken out before the next).
    let mut view = View {
        info: Info {
            hostname: b"bench-host".to_vec(),
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
        peers: None,
        display: Display {
            bucket_seconds: BOUNDS_S.to_vec(),
            bucket_us: bounds_us.clone(),
            // A `vts_zone`: no time queues.
            queues: false,
            ..Display::default()
        },
    };
    let slots = keys * shards;
    let reps = if slots >= 1_000_000 {
        3
    } else if slots >= 100_000 {
        5
    } else {
        15
    };
    let (mut merge, mut rend, mut total) = (Vec::new(), Vec::new(), Vec::new());
    let mut bytes = 0;
    // The text's buffer is reused from one scrape to the next, as a worker does (a fresh one
    // costs a page fault per 4 KB: the kernel's time, not the renderer's).
    let mut out = Vec::new();
    for _ in 0..reps {
        out.clear();
        let t0 = Instant::now();
        let snap = zone.snapshot();
        let t1 = Instant::now();
        view.snapshot = snap; // a move; the last one was taken out below (nothing to drop)
        render(black_box(&view), Format::Text, &mut out);
        let t2 = Instant::now();
        let snap = std::mem::take(&mut view.snapshot);
        assert_eq!(snap.entries.len(), keys + 2);
        assert_eq!(snap.entries[2].counters.requests, shards as u64);
        bytes = black_box(&out).len();
        merge.push(t1 - t0);
        rend.push(t2 - t1);
        total.push(t2 - t0);
    }
    Row {
        keys,
        shards,
        merge: median(merge),
        render: median(rend),
        total: median(total),
        bytes,
    }
}

fn main() {
    let started = Instant::now();
    // SCRAPE_ONLY=KEYSxSHARDS runs one case (for a profiler).
    let only: Option<(usize, usize)> = std::env::var("SCRAPE_ONLY").ok().and_then(|v| {
        let (k, s) = v.split_once('x')?;
        Some((k.parse().ok()?, s.parse().ok()?))
    });
    let mut rows = Vec::new();
    for keys in [10usize, 1_000, 10_000, 100_000] {
        for shards in [1usize, 2, 8, 32, 64] {
            if only.map_or(true, |o| o == (keys, shards)) {
                rows.push(case(keys, shards));
            }
        }
    }
    println!("scrape: merge + render (Prometheus text), server zones, 11 buckets, medians");
    println!();
    println!(
        "|    keys | shards | merge ms | render ms | total ms | ns/slot (merge) | output bytes | bytes/key |"
    );
    println!(
        "|--------:|-------:|---------:|----------:|---------:|----------------:|-------------:|----------:|"
    );
    for r in &rows {
        println!(
            "| {:>7} | {:>6} | {:>8.3} | {:>9.3} | {:>8.3} | {:>15.1} | {:>12} | {:>9.0} |",
            r.keys,
            r.shards,
            ms(r.merge),
            ms(r.render),
            ms(r.total),
            r.merge.as_nanos() as f64 / (r.keys * r.shards) as f64,
            r.bytes,
            r.bytes as f64 / r.keys as f64,
        );
    }
    if let Some(r) = rows.iter().find(|r| r.keys == 10_000 && r.shards == 2) {
        println!();
        println!(
            "target: 10k keys, 2 workers: {:.2} ms (merge {:.2} + render {:.2}); target <= 10 ms: {}",
            ms(r.total),
            ms(r.merge),
            ms(r.render),
            if r.total <= Duration::from_millis(10) {
                "met"
            } else {
                "MISSED"
            }
        );
    }
    println!("(bench took {:.1} s)", started.elapsed().as_secs_f64());
}
