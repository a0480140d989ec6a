//! Cost of recording one request, by design, with 1, 2 and 4 threads:
//!
//! - `owner`: each thread claims its own shard and writes it with relaxed load + store (the
//!   request path of a server zone, whose key index is cached in the server conf);
//! - `owner+lookup`: the same after a lock-free directory lookup by name (an upstream peer);
//! - `atomic`: every thread writes the shared shard with atomic read-modify-writes (all 64 owned
//!   shards are taken by other live pids), i.e. atomic adds on one shared counter block;
//! - `mutex`: the C module's design: one lock per request around a lookup by name in a shared
//!   table and the update (`Mutex<HashMap<Vec<u8>, Counters>>`).
//!
//! All threads record into the same 8 keys. Threads stand for worker processes. Variants are
//! interleaved inside each repetition; the table shows medians. `ns/op` is wall time divided by
//! the operations of one thread (what one worker pays per request); `Mops/s` counts all threads;
//! `scaling` is the throughput relative to 1 thread of the same variant. The machine has
//! `available_parallelism` cores: beyond that, threads time-share.
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

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::{Barrier, Mutex};
use std::time::{Duration, Instant};

use stats::layout::{OWNED_SHARDS, SHARED_SHARD};
use stats::{status_class, Claim, HeapRegion, Kind, Sample, Zone, OVERFLOW_SERVER};

const KEYS: usize = 8;
const REPS: usize = 7;
const BOUNDS_US: [u64; 11] = [
    5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000, 2_500_000, 5_000_000, 10_000_000,
];

fn names() -> Vec<Vec<u8>> {
    (0..KEYS)
        .map(|i| format!("www{i}.example-site.com").into_bytes())
        .collect()
}

fn sample(i: u64) -> Sample {
    Sample {
        status: if i % 16 == 0 { 404 } else { 200 },
        bytes_in: 300 + (i & 63),
        bytes_out: 5000 + (i & 1023),
        time_ms: i & 127,
        upstream_ms: None,
        ..Default::default()
    }
}

/// The C module's node, updated under the lock.
#[derive(Default)]
struct Node {
    requests: u64,
    bytes_in: u64,
    bytes_out: u64,
    status: [u64; 6],
    time_sum: u64,
    time_min: u64,
    time_max: u64,
    buckets: [u64; 11],
}

impl Node {
    fn add(&mut self, s: &Sample) {
        if self.requests == 0 || s.time_ms < self.time_min {
            self.time_min = s.time_ms;
        }
        self.requests += 1;
        self.bytes_in += s.bytes_in;
        self.bytes_out += s.bytes_out;
        self.status[status_class(s.status)] += 1;
        self.time_sum += s.time_ms;
        self.time_max = self.time_max.max(s.time_ms);
        let v = s.time_ms * 1000;
        if let Some(b) = BOUNDS_US.iter().position(|&b| v <= b) {
            self.buckets[b] += 1;
        }
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Variant {
    Owner,
    OwnerLookup,
    Atomic,
    Mutex,
}

impl Variant {
    const ALL: [Variant; 4] = [
        Variant::Owner,
        Variant::OwnerLookup,
        Variant::Atomic,
        Variant::Mutex,
    ];
    fn name(self) -> &'static str {
        match self {
            Variant::Owner => "owner",
            Variant::OwnerLookup => "owner+lookup",
            Variant::Atomic => "atomic",
            Variant::Mutex => "mutex",
        }
    }
    fn ops(self) -> usize {
        match self {
            Variant::Owner | Variant::OwnerLookup => 4_000_000,
            Variant::Atomic => 1_000_000,
            Variant::Mutex => 500_000,
        }
    }
}

/// Runs `threads` threads of `variant`, returns the wall time of the slowest.
fn run(variant: Variant, threads: usize, names: &[Vec<u8>]) -> Duration {
    let mut region = HeapRegion::new(1 << 20);
    let zone = unsafe { Zone::create(region.base(), region.len(), 11, 42, 0) }.expect("zone");
    let lock = Mutex::new(());
    let keys: Vec<usize> = names
        .iter()
        .map(|n| zone.key(&lock, Kind::Server, n).expect("key"))
        .collect();
    if variant == Variant::Atomic {
        // Other live processes own every owned shard: what is left is the shared shard.
        for i in 0..OWNED_SHARDS {
            assert_eq!(zone.claim(i, 1_000_000 + i as i32, |_| true), Claim::Owned(i));
        }
    }
    let table: Mutex<HashMap<Vec<u8>, Node>> =
        Mutex::new(names.iter().map(|n| (n.clone(), Node::default())).collect());
    let ops = variant.ops();
    let barrier = Barrier::new(threads + 1);
    let elapsed = std::thread::scope(|s| {
        for t in 0..threads {
            let (zone, lock, keys, table, barrier) = (zone, &lock, &keys, &table, &barrier);
            s.spawn(move || {
                let claim = zone.claim(t, 100 + t as i32, |_| true);
                assert_eq!(matches!(claim, Claim::Shared), variant == Variant::Atomic);
                let w = zone.writer(claim);
                // Allocate this shard's chunk outside the timed loop.
                w.record(lock, keys[0], OVERFLOW_SERVER, false, &sample(0), &BOUNDS_US);
                barrier.wait();
                for i in 0..ops {
                    let k = i % KEYS;
                    let s = sample(i as u64);
                    match variant {
                        Variant::Owner | Variant::Atomic => {
                            w.record(lock, black_box(keys[k]), OVERFLOW_SERVER, false, &s, &BOUNDS_US);
                        }
                        Variant::OwnerLookup => {
                            let key = zone
                                .lookup(Kind::Server, black_box(&names[k]))
                                .unwrap_or(OVERFLOW_SERVER);
                            w.record(lock, key, OVERFLOW_SERVER, false, &s, &BOUNDS_US);
                        }
                        Variant::Mutex => {
                            let mut g = table.lock().unwrap();
                            if let Some(n) = g.get_mut(black_box(names[k].as_slice())) {
                                n.add(&s);
                            }
                        }
                    }
                }
                barrier.wait();
            });
        }
        barrier.wait();
        let start = Instant::now();
        barrier.wait();
        start.elapsed()
    });
    // Every request counted, wherever it went.
    let total: u64 = if variant == Variant::Mutex {
        table.lock().unwrap().values().map(|n| n.requests).sum()
    } else {
        zone.snapshot().entries.iter().map(|e| e.counters.requests).sum()
    };
    let warmup = if variant == Variant::Mutex {
        0
    } else {
        threads as u64
    };
    assert_eq!(total, (threads * ops) as u64 + warmup);
    if variant == Variant::Atomic {
        assert!(zone.slot(SHARED_SHARD, keys[0]).is_some());
    }
    elapsed
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    let names = names();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = [1usize, 2, 4];
    let started = Instant::now();
    // ns per op per thread, [variant][threads][rep]
    let mut ns = vec![vec![Vec::new(); threads.len()]; Variant::ALL.len()];
    for _ in 0..REPS {
        for (ti, &t) in threads.iter().enumerate() {
            for (vi, &v) in Variant::ALL.iter().enumerate() {
                let d = run(v, t, &names);
                ns[vi][ti].push(d.as_nanos() as f64 / v.ops() as f64);
            }
        }
    }
    println!(
        "record: cost of one request ({cores} cores, {KEYS} keys shared by all threads, median of {REPS})"
    );
    println!();
    println!("| variant      | threads | ns/op (per thread) | Mops/s (all threads) | scaling vs 1 thread |");
    println!("|--------------|--------:|-------------------:|---------------------:|--------------------:|");
    for (vi, v) in Variant::ALL.iter().enumerate() {
        let base = 1000.0 / median(ns[vi][0].clone());
        for (ti, &t) in threads.iter().enumerate() {
            let m = median(ns[vi][ti].clone());
            let mops = t as f64 * 1000.0 / m;
            println!(
                "| {:<12} | {:>7} | {:>18.1} | {:>20.1} | {:>19.2} |",
                v.name(),
                t,
                m,
                mops,
                mops / base
            );
        }
    }
    println!();
    println!("(bench took {:.1} s)", started.elapsed().as_secs_f64());
}
