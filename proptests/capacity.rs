//! The capacity formula against the real allocator: a zone of the planned size holds the whole
//! workload (every key registered, every writing shard writes every key) without overflow, and
//! the plan is tight (a region 15% smaller overflows once fixed overheads do not dominate).
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

use std::sync::Mutex;

use proptest::prelude::*;
use stats::capacity::{self, plan, region_len_for_zone, zone_for_region, Workload};
use stats::layout::GeometryError;
use stats::{upstream_key, HeapRegion, Kind, Recorded, Sample, Zone, OVERFLOW_SERVER, OVERFLOW_UPSTREAM};

/// The keys of a workload, with lengths spread around `name_len` (mean at most `name_len`).
fn keys(w: &Workload, spread: usize) -> Vec<(Kind, Vec<u8>)> {
    let n = w.servers + w.peers + w.other;
    let spread = spread.min(w.name_len.saturating_sub(4));
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        // Lengths name_len - spread ..= name_len + spread, in pairs summing to 2 × name_len
        // (an odd count leaves one key at name_len - spread): the mean never exceeds name_len.
        let len = if i % 2 == 0 {
            w.name_len - spread + (i * 7919) % (spread + 1)
        } else {
            w.name_len + spread - ((i - 1) * 7919) % (spread + 1)
        };
        // Unique: the index in the first 3 bytes.
        let mut name = vec![b'n'; len];
        name[..3].copy_from_slice(&(i as u32).to_le_bytes()[..3]);
        if i < w.servers {
            out.push((Kind::Server, name));
        } else if i < w.servers + w.peers {
            // Group + peer = len bytes; the stored name adds the 4-byte prefix.
            out.push((Kind::UpstreamPeer, upstream_key(&name[..1], &name[1..])));
        } else {
            // Another kind of key: the index keeps it apart from the servers.
            out.push((Kind::Server, name));
        }
    }
    out
}

#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Held,
    /// The region is below the geometry's minimum.
    TooSmall,
    /// A key did not register or a sample went to the overflow entry.
    Overflowed,
}

/// Runs the workload on a heap region of `len` bytes. `interleave`: register each key and let
/// every shard write it at once (names and chunks alternate in the arena: the most padding);
/// otherwise register all keys first.
fn run(w: &Workload, keys: &[(Kind, Vec<u8>)], len: usize, interleave: bool) -> Outcome {
    let mut region = HeapRegion::new(len);
    let zone = match unsafe { Zone::create(region.base(), len, w.spec(), 7, 0) } {
        Ok(z) => z,
        Err(GeometryError::TooSmall { .. }) => return Outcome::TooSmall,
        Err(e) => panic!("{e:?}"),
    };
    let lock = Mutex::new(());
    let bounds: Vec<u64> = (1..=w.buckets as u64).map(|b| b * 1000).collect();
    let writers: Vec<_> = (0..w.workers * w.generations)
        .map(|i| zone.writer(zone.claim(i % w.workers, 1000 + i as i32, |_| true)))
        .collect();
    let sample = Sample {
        status: 200,
        bytes_in: 100,
        bytes_out: 1000,
        time_ms: 3,
        upstream_ms: Some(2),
        // Writes a status-code word and a queue entry where the zone has them.
        code: Some(0),
        queued_at: 1,
        ..Default::default()
    };
    let mut ids = Vec::with_capacity(keys.len());
    let write = |id: usize, kind: Kind| {
        let (overflow, up) = match kind {
            Kind::UpstreamPeer => (OVERFLOW_UPSTREAM, true),
            _ => (OVERFLOW_SERVER, false),
        };
        // With time queues a peer's response times go to the slot after its own.
        let times = w.queue && kind == Kind::UpstreamPeer;
        writers.iter().all(|wr| {
            wr.record(&lock, id, overflow, up, &sample, &bounds) == Recorded::Ok
                && (!times
                    || wr.record(&lock, id + 1, OVERFLOW_UPSTREAM + 1, false, &sample, &bounds)
                        == Recorded::Ok)
        })
    };
    for (kind, name) in keys {
        let Some(id) = zone.key(&lock, *kind, name) else {
            return Outcome::Overflowed;
        };
        if interleave && !write(id, *kind) {
            return Outcome::Overflowed;
        }
        ids.push((id, *kind));
    }
    if !interleave {
        for &(id, kind) in &ids {
            if !write(id, kind) {
                return Outcome::Overflowed;
            }
        }
    }
    // Every sample is in its own slot: the merged totals show one request per shard and key.
    let snap = zone.snapshot();
    assert_eq!(snap.entries.len(), keys.len() + 2);
    for e in &snap.entries[2..] {
        assert_eq!(e.counters.requests, writers.len() as u64);
    }
    assert!(snap.used_bytes <= len);
    Outcome::Held
}

fn workload() -> impl Strategy<Value = (Workload, usize, bool)> {
    (
        1usize..=8,
        1usize..=2,
        0usize..=3000,
        0usize..=2000,
        0usize..=100,
        5usize..=200,
        0usize..=32,
        0usize..=16,
        any::<bool>(),
        (0usize..=12, any::<bool>()),
    )
        .prop_map(
            |(
                workers,
                generations,
                servers,
                peers,
                other,
                name_len,
                buckets,
                spread,
                inter,
                (codes, queue),
            )| {
                let w = Workload {
                    workers,
                    generations,
                    servers,
                    peers,
                    other,
                    name_len,
                    buckets,
                    codes,
                    queue,
                };
                (w, spread, inter)
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn planned_zone_holds_the_workload((w, spread, interleave) in workload()) {
        let p = plan(&w).unwrap();
        let keys = keys(&w, spread);
        prop_assert_eq!(p.region, region_len_for_zone(p.zone));
        prop_assert!(p.region >= p.region_min);
        prop_assert_eq!(run(&w, &keys, p.region, interleave), Outcome::Held, "{:?} {:?}", w, p);
        // Tight: once the workload is large, 85% of the region is not enough.
        if p.region_min >= 1 << 20 {
            let small = p.region * 85 / 100 / 64 * 64;
            prop_assert_ne!(run(&w, &keys, small, interleave), Outcome::Held, "{:?} {:?}", w, p);
        }
    }
}

/// The smallest region (in 4 KiB steps) that holds the workload, by bisection.
fn smallest_region(w: &Workload, keys: &[(Kind, Vec<u8>)], hi: usize) -> usize {
    let (mut lo, mut hi) = (0usize, hi.div_ceil(4096));
    while lo + 1 < hi {
        let mid = (lo + hi) / 2;
        if run(w, keys, mid * 4096, true) == Outcome::Held {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    hi * 4096
}

#[test]
fn plan_versus_smallest_region() {
    let mut rows = Vec::new();
    for (workers, generations, servers, peers, name_len, buckets) in [
        (1, 1, 2000, 0, 24, 11),
        (2, 1, 4000, 1000, 24, 11),
        (4, 2, 2000, 2000, 40, 11),
        (8, 1, 5000, 0, 16, 16),
        (3, 2, 500, 3000, 120, 0),
    ] {
        let w = Workload {
            workers,
            generations,
            servers,
            peers,
            other: 0,
            name_len,
            buckets,
            codes: 0,
            queue: false,
        };
        let keys = keys(&w, 0);
        let p = plan(&w).unwrap();
        let exact = smallest_region(&w, &keys, p.region);
        let ratio = exact as f64 / p.region as f64;
        rows.push(format!(
            "{w:?}: planned region {} smallest {} ratio {ratio:.3}",
            p.region, exact
        ));
        assert!(exact <= p.region);
        assert!(ratio > 0.85, "plan too loose: {}", rows.last().unwrap());
    }
    eprintln!("{}", rows.join("\n"));
}

#[test]
fn slab_model_matches_nginx_headers() {
    use core::mem::size_of;
    assert_eq!(
        size_of::<nginx_sys::ngx_slab_pool_t>(),
        capacity::SLAB_POOL_HEADER
    );
    assert_eq!(size_of::<nginx_sys::ngx_slab_page_t>(), capacity::SLAB_PAGE_DESC);
    assert_eq!(size_of::<nginx_sys::ngx_slab_stat_t>(), capacity::SLAB_STAT);
}

#[test]
fn zone_for_region_is_the_exact_inverse() {
    let mut prev = 0;
    for size in (0..3 << 20).step_by(97) {
        let r = region_len_for_zone(size);
        assert!(r >= prev, "region_len_for_zone is not monotone at {size}");
        prev = r;
    }
    for region in (1..4 << 20).step_by(4093) {
        let z = zone_for_region(region).unwrap();
        assert!(region_len_for_zone(z) >= region && region_len_for_zone(z - 1) < region);
    }
}

#[test]
fn more_writers_than_owned_shards() {
    // 40 workers during a reload: 64 owned shards, then the shared shard writes every key too.
    let w = Workload {
        workers: 40,
        generations: 2,
        servers: 300,
        peers: 100,
        other: 0,
        name_len: 30,
        buckets: 11,
        codes: 0,
        queue: false,
    };
    let p = plan(&w).unwrap();
    assert_eq!(p.shards, 64);
    assert_eq!(run(&w, &keys(&w, 5), p.region, false), Outcome::Held);
}
