//! The counting core under real concurrency: threads with distinct fake pids claim shards and
//! record into shared keys (registering them concurrently), while another thread scrapes in a
//! loop. Every scrape must be monotonic per key and per counter; after the join the totals must
//! be exact, per key and overall, on the owned path (plain load + store), on the shared path
//! (atomic adds) and when the zone is full (overflow entry, concurrent chunk allocation).
#[allow(dead_code, unused_imports)]
#[path = "../src/stats/mod.rs"]
mod stats;

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::*};
use std::sync::{Barrier, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use stats::layout::OWNED_SHARDS;
use stats::{
    Claim, Counters, Entry, HeapRegion, Kind, Recorded, Sample, Snapshot, Zone, OVERFLOW_SERVER,
    OVERFLOW_UPSTREAM,
};

const BOUNDS_US: [u64; 11] = [
    5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000, 2_500_000, 5_000_000, 10_000_000,
];

/// The counters a set of samples must add up to (computed without the code under test).
fn add(c: &mut Counters, s: &Sample, upstream: bool) {
    c.requests += 1;
    c.bytes_in += s.bytes_in;
    c.bytes_out += s.bytes_out;
    c.status[match s.status {
        100..=199 => 0,
        200..=299 => 1,
        300..=399 => 2,
        400..=499 => 3,
        500..=599 => 4,
        _ => 5,
    }] += 1;
    c.time_sum_ms += s.time_ms;
    c.time_min_ms = Some(c.time_min_ms.map_or(s.time_ms, |m| m.min(s.time_ms)));
    c.time_max_ms = c.time_max_ms.max(s.time_ms);
    if let Some(u) = s.upstream_ms {
        c.upstream_sum_ms += u;
        c.upstream_count += 1;
    }
    let observed = if upstream { s.upstream_ms } else { Some(s.time_ms) };
    if let Some(v) = observed {
        if let Some(b) = BOUNDS_US.iter().position(|&b| v * 1000 <= b) {
            c.buckets[b] += 1;
        }
    }
}

fn merge(into: &mut Counters, c: &Counters) {
    into.requests += c.requests;
    into.bytes_in += c.bytes_in;
    into.bytes_out += c.bytes_out;
    for (a, b) in into.status.iter_mut().zip(&c.status) {
        *a += b;
    }
    into.time_sum_ms += c.time_sum_ms;
    if let Some(m) = c.time_min_ms {
        into.time_min_ms = Some(into.time_min_ms.map_or(m, |x| x.min(m)));
    }
    into.time_max_ms = into.time_max_ms.max(c.time_max_ms);
    into.upstream_sum_ms += c.upstream_sum_ms;
    into.upstream_count += c.upstream_count;
    for (a, b) in into.buckets.iter_mut().zip(&c.buckets) {
        *a += b;
    }
}

/// A deterministic, varied sample for request `i` of thread `t`.
fn sample(t: usize, i: u64) -> Sample {
    const STATUS: [u64; 9] = [200, 200, 404, 503, 301, 0, 101, 999, 204];
    let x = i.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ (t as u64).wrapping_mul(0xc2b2_ae3d_27d4_eb4f);
    Sample {
        status: STATUS[(x % 9) as usize],
        bytes_in: x % 4096,
        bytes_out: (x >> 12) % 1_000_000,
        time_ms: (x >> 32) % 12_000,
        upstream_ms: (x % 3 != 0).then_some((x >> 20) % 3_000),
        ..Default::default()
    }
}

/// Each scrape against the previous one: nothing goes down, keys are only appended.
fn check_monotonic(prev: &Snapshot, cur: &Snapshot) {
    assert!(cur.entries.len() >= prev.entries.len(), "keys disappeared");
    for (a, b) in prev.entries.iter().zip(&cur.entries) {
        assert!(a.kind == b.kind && a.name == b.name, "key order changed");
        let (x, y) = (&a.counters, &b.counters);
        let ok = x.requests <= y.requests
            && x.bytes_in <= y.bytes_in
            && x.bytes_out <= y.bytes_out
            && x.time_sum_ms <= y.time_sum_ms
            && x.time_max_ms <= y.time_max_ms
            && x.upstream_sum_ms <= y.upstream_sum_ms
            && x.upstream_count <= y.upstream_count
            && x.status.iter().zip(&y.status).all(|(p, q)| p <= q)
            && x.buckets.iter().zip(&y.buckets).all(|(p, q)| p <= q)
            && x.time_min_ms
                .map_or(true, |m| y.time_min_ms.is_some_and(|n| n <= m));
        assert!(
            ok,
            "scrape went backwards for {:?}:\n{x:?}\n{y:?}",
            String::from_utf8_lossy(&a.name)
        );
    }
}

/// Within one scrape, no field counts a sample that the counts do not: the status classes
/// sum to at most the requests, and the finite histogram buckets to at most the observation
/// count (`+Inf`: the requests of a server key, the upstream observations of an upstream one).
fn check_consistent(e: &Entry) {
    let c = &e.counters;
    let upstream = e.kind == Kind::UpstreamPeer || (e.kind == Kind::Overflow && e.name == b"upstream");
    let observations = if upstream { c.upstream_count } else { c.requests };
    assert!(
        c.status.iter().sum::<u64>() <= c.requests && c.buckets.iter().sum::<u64>() <= observations,
        "a scrape saw a field ahead of its count ({:?} {:?}): {c:?}",
        e.kind,
        String::from_utf8_lossy(&e.name)
    );
}

struct Scenario {
    threads: usize,
    per_thread: u64,
    zone_len: usize,
    /// Owned shards held by fake live pids before the threads start.
    squatters: usize,
    names: Vec<(Kind, Vec<u8>)>,
    /// Each name is registered (by whichever thread first needs it) concurrently.
    expect_overflow: bool,
}

struct Outcome {
    claims: Vec<Claim>,
    scrapes: usize,
    overflowed: u64,
    shared_threads: usize,
}

fn run(sc: &Scenario) -> Outcome {
    let mut region = HeapRegion::new(sc.zone_len);
    // SAFETY: the region is ours and outlives every use of the view (the scope below).
    let zone = unsafe { Zone::create(region.base(), sc.zone_len, BOUNDS_US.len(), 42, 0) }.unwrap();
    let lock = Mutex::new(());
    for i in 0..sc.squatters {
        assert_eq!(zone.claim(i, 1 + i as i32, |_| true), Claim::Owned(i));
    }
    let done = AtomicBool::new(false);
    let claimed = Barrier::new(sc.threads);
    let finished = Barrier::new(sc.threads);
    let started = Instant::now();

    let (results, scrapes) = thread::scope(|s| {
        let scraper = s.spawn(|| {
            let mut prev = zone.snapshot();
            let mut n = 0usize;
            // At least one scrape, even if every writer finished before this thread ran.
            loop {
                let finished = done.load(Acquire);
                // Every other scrape takes the sum in small steps, as a status handler does
                // for a scrape in slices, while the writers go on.
                let cur = if n % 2 == 0 {
                    zone.snapshot()
                } else {
                    let mut m = zone.merge();
                    while !m.step(&zone, 16) {
                        thread::yield_now();
                    }
                    m.finish()
                };
                check_monotonic(&prev, &cur);
                let total: u64 = cur.entries.iter().map(|e| e.counters.requests).sum();
                assert!(
                    total <= sc.threads as u64 * sc.per_thread,
                    "more requests than were made"
                );
                for e in &cur.entries {
                    check_consistent(e);
                }
                prev = cur;
                n += 1;
                if finished {
                    break;
                }
            }
            n
        });
        let workers: Vec<_> = (0..sc.threads)
            .map(|t| {
                let (zone, lock, claimed, finished) = (&zone, &lock, &claimed, &finished);
                s.spawn(move || {
                    let pid = 100_000 + t as i32;
                    let claim = zone.claim(t, pid, |_| true);
                    // All claims are held at once: distinct shards are checked after the join.
                    claimed.wait();
                    let w = zone.writer(claim);
                    let mut dest: BTreeMap<usize, Counters> = BTreeMap::new();
                    let mut overflowed = 0;
                    for i in 0..sc.per_thread {
                        let (kind, name) = &sc.names[(t * 7 + i as usize) % sc.names.len()];
                        let upstream = *kind == Kind::UpstreamPeer;
                        let ovf = if upstream {
                            OVERFLOW_UPSTREAM
                        } else {
                            OVERFLOW_SERVER
                        };
                        let key = zone.key(lock, *kind, name);
                        let target = key.unwrap_or(ovf);
                        let smp = sample(t, i);
                        let d = match w.record(lock, target, ovf, upstream, &smp, &BOUNDS_US) {
                            Recorded::Ok => target,
                            Recorded::Overflow => ovf,
                        };
                        if d != key.unwrap_or(usize::MAX) {
                            overflowed += 1;
                        }
                        add(
                            dest.entry(d).or_insert_with(|| Counters::new(BOUNDS_US.len())),
                            &smp,
                            upstream,
                        );
                    }
                    finished.wait();
                    zone.release(claim, pid);
                    (claim, dest, overflowed)
                })
            })
            .collect();
        let results: Vec<_> = workers.into_iter().map(|h| h.join().unwrap()).collect();
        done.store(true, Release);
        (results, scraper.join().unwrap())
    });

    // One shard per owner.
    let claims: Vec<Claim> = results.iter().map(|r| r.0).collect();
    let mut owned = HashSet::new();
    for c in &claims {
        if let Claim::Owned(i) = c {
            assert!(
                *i >= sc.squatters && *i < OWNED_SHARDS,
                "took a squatter's shard {i}"
            );
            assert!(owned.insert(*i), "two threads own shard {i}");
        }
    }
    let shared_threads = claims.iter().filter(|c| **c == Claim::Shared).count();
    assert_eq!(owned.len() + shared_threads, sc.threads);
    assert_eq!(owned.len(), sc.threads.min(OWNED_SHARDS - sc.squatters));

    // Exact, per key: what each thread recorded where the code said it went.
    let snap = zone.snapshot();
    let mut want: BTreeMap<usize, Counters> = BTreeMap::new();
    for (_, dest, _) in &results {
        for (k, c) in dest {
            merge(
                want.entry(*k).or_insert_with(|| Counters::new(BOUNDS_US.len())),
                c,
            );
        }
    }
    for (k, e) in snap.entries.iter().enumerate() {
        let w = want.remove(&k).unwrap_or_else(|| Counters::new(BOUNDS_US.len()));
        assert_eq!(
            e.counters,
            w,
            "key {k} {:?} {:?}",
            e.kind,
            String::from_utf8_lossy(&e.name)
        );
    }
    assert!(
        want.is_empty(),
        "samples recorded into keys the snapshot lacks: {:?}",
        want.keys()
    );

    // Exact, overall: N requests, and every byte.
    let n = sc.threads as u64 * sc.per_thread;
    let (mut bin, mut bout) = (0, 0);
    for t in 0..sc.threads {
        for i in 0..sc.per_thread {
            let s = sample(t, i);
            bin += s.bytes_in;
            bout += s.bytes_out;
        }
    }
    assert_eq!(snap.entries.iter().map(|e| e.counters.requests).sum::<u64>(), n);
    assert_eq!(snap.entries.iter().map(|e| e.counters.bytes_in).sum::<u64>(), bin);
    assert_eq!(
        snap.entries.iter().map(|e| e.counters.bytes_out).sum::<u64>(),
        bout
    );

    let overflowed: u64 = results.iter().map(|r| r.2).sum();
    assert_eq!(
        overflowed > 0,
        sc.expect_overflow,
        "overflowed {overflowed} samples"
    );
    // Released at exit.
    assert_eq!(snap.owned_shards, sc.squatters);
    assert!(started.elapsed() < Duration::from_secs(60));
    Outcome {
        claims,
        scrapes,
        overflowed,
        shared_threads,
    }
}

fn names(n: usize, len: usize) -> Vec<(Kind, Vec<u8>)> {
    (0..n)
        .map(|i| {
            let kind = if i % 3 == 2 {
                Kind::UpstreamPeer
            } else {
                Kind::Server
            };
            let mut name = format!("host-{i}\n\"\\").into_bytes();
            name.resize(name.len().max(len), b'.');
            (kind, name)
        })
        .collect()
}

#[test]
fn owned_shards_are_exact_and_scrapes_monotonic() {
    let o = run(&Scenario {
        threads: 8,
        per_thread: 150_000,
        zone_len: 4 << 20,
        squatters: 0,
        names: names(40, 0),
        expect_overflow: false,
    });
    assert_eq!(o.shared_threads, 0);
    assert!(o.scrapes > 0);
    eprintln!("owned: {} scrapes during the run", o.scrapes);
}

#[test]
fn shared_shard_atomic_adds_are_exact() {
    // Every owned shard held by a live process: all threads write the shared shard.
    let o = run(&Scenario {
        threads: 6,
        per_thread: 100_000,
        zone_len: 1 << 20,
        squatters: OWNED_SHARDS,
        names: names(20, 0),
        expect_overflow: false,
    });
    assert_eq!(o.shared_threads, 6);
    eprintln!("shared: {} scrapes during the run", o.scrapes);
}

#[test]
fn mixed_owners_in_a_full_zone_are_exact() {
    // 4 owned + 4 shared writers; 200 long names in 64 KiB: keys refused, chunks refused,
    // the shared shard's chunks allocated concurrently.
    let o = run(&Scenario {
        threads: 8,
        per_thread: 60_000,
        zone_len: 64 * 1024,
        squatters: OWNED_SHARDS - 4,
        names: names(200, 300),
        expect_overflow: true,
    });
    assert_eq!(o.shared_threads, 4);
    assert_eq!(
        o.claims.iter().filter(|c| matches!(c, Claim::Owned(_))).count(),
        4
    );
    eprintln!(
        "mixed: {} scrapes, {} samples overflowed",
        o.scrapes, o.overflowed
    );
}

/// Many processes start at once, some shards held by dead pids: each shard ends with one
/// owner, the dead owners' shards are taken, the rest go to the shared shard.
#[test]
fn concurrent_claims_take_each_shard_once() {
    for round in 0..50 {
        let mut region = HeapRegion::new(256 * 1024);
        // SAFETY: the region outlives the view.
        let zone = unsafe { Zone::create(region.base(), 256 * 1024, 11, round, 0) }.unwrap();
        // Shards 0..32 held by pids 1..=32, of which the odd ones are dead.
        for i in 0..32 {
            assert_eq!(zone.claim(i, 1 + i as i32, |_| true), Claim::Owned(i));
        }
        let alive = |pid: i32| pid > 32 || pid % 2 == 0;
        let go = Barrier::new(100);
        let taken = AtomicUsize::new(0);
        let claims: Vec<(i32, Claim)> = thread::scope(|s| {
            let hs: Vec<_> = (0..100)
                .map(|t| {
                    let (zone, go, taken) = (&zone, &go, &taken);
                    s.spawn(move || {
                        let pid = 1000 + t as i32;
                        go.wait();
                        let c = zone.claim(t % 8, pid, alive);
                        if matches!(c, Claim::Owned(_)) {
                            taken.fetch_add(1, Relaxed);
                        }
                        (pid, c)
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        // 32 free shards and 16 with dead owners.
        assert_eq!(taken.load(Relaxed), 48, "round {round}");
        let mut seen = HashSet::new();
        for (pid, c) in &claims {
            if let Claim::Owned(i) = *c {
                assert!(seen.insert(i), "round {round}: shard {i} claimed twice");
                assert_eq!(zone.owner_of(i), *pid);
                assert!(
                    i >= 32 || i % 2 == 0,
                    "round {round}: took live owner's shard {i}"
                );
            }
        }
        for i in (1..32).step_by(2) {
            assert_eq!(
                zone.owner_of(i),
                1 + i as i32,
                "round {round}: live owner lost shard {i}"
            );
        }
    }
}

/// A scrape is read field by field while the owner writes: the request count is loaded first,
/// the histogram buckets after it, so a sample recorded in between can show in a bucket and not
/// in the count. Rendered as a Prometheus histogram (`+Inf` = the request count), that is a
/// bucket above `+Inf`, which no consumer accepts. Every sample of a server key is observed, so
/// its finite buckets must never sum to more than its requests.
#[test]
fn scrape_never_shows_more_observations_than_requests() {
    let mut region = HeapRegion::new(1 << 20);
    // SAFETY: the region outlives the view.
    let zone = unsafe { Zone::create(region.base(), 1 << 20, BOUNDS_US.len(), 3, 0) }.unwrap();
    let lock = Mutex::new(());
    let key = zone.key(&lock, Kind::Server, b"example.com").unwrap();
    let done = AtomicBool::new(false);
    let deadline = Instant::now() + Duration::from_secs(3);
    let bad = thread::scope(|s| {
        let writers: Vec<_> = (0..2)
            .map(|t| {
                let (zone, lock, done) = (&zone, &lock, &done);
                s.spawn(move || {
                    let claim = zone.claim(t, 500 + t as i32, |_| true);
                    let w = zone.writer(claim);
                    let smp = Sample {
                        status: 200,
                        time_ms: 1,
                        ..Sample::default()
                    };
                    while !done.load(Relaxed) {
                        for _ in 0..1000 {
                            w.record(lock, key, OVERFLOW_SERVER, false, &smp, &BOUNDS_US);
                        }
                    }
                })
            })
            .collect();
        let mut bad = None;
        while Instant::now() < deadline {
            let snap = zone.snapshot();
            let c = &snap.entries[key].counters;
            if c.buckets.iter().sum::<u64>() > c.requests || c.status.iter().sum::<u64>() > c.requests {
                bad = Some(c.clone());
                break;
            }
        }
        done.store(true, Relaxed);
        for w in writers {
            w.join().unwrap();
        }
        bad
    });
    if let Some(c) = bad {
        panic!(
            "a scrape saw {} observations in finite buckets but only {} requests (+Inf): {c:?}",
            c.buckets.iter().sum::<u64>(),
            c.requests
        );
    }
}

/// Runs `rounds` rounds of `threads` threads started together (each round prepared by `setup`
/// on the main thread, then checked by `check`), so that the racy moments of claiming and of
/// growing a shard line up on the cores.
fn race_rounds<T: Send>(
    threads: usize,
    rounds: usize,
    mut setup: impl FnMut(usize),
    body: impl Fn(usize) -> T + Sync,
    mut check: impl FnMut(usize, Vec<T>),
) {
    use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
    let start = Barrier::new(threads + 1);
    let end = Barrier::new(threads + 1);
    let stop = AtomicBool::new(false);
    let slots: Vec<Mutex<Option<T>>> = (0..threads).map(|_| Mutex::new(None)).collect();
    let failure = thread::scope(|s| {
        for t in 0..threads {
            let (start, end, stop, slots, body) = (&start, &end, &stop, &slots, &body);
            s.spawn(move || loop {
                start.wait();
                if stop.load(Acquire) {
                    break;
                }
                let r = body(t);
                *slots[t].lock().unwrap() = Some(r);
                end.wait();
            });
        }
        // A failed check must still let the threads out of the barrier.
        let mut failure = None;
        for round in 0..rounds {
            if let Err(e) = catch_unwind(AssertUnwindSafe(|| setup(round))) {
                failure = Some(e);
                break;
            }
            start.wait();
            end.wait();
            let results = slots.iter().map(|m| m.lock().unwrap().take().unwrap()).collect();
            if let Err(e) = catch_unwind(AssertUnwindSafe(|| check(round, results))) {
                failure = Some(e);
                break;
            }
        }
        stop.store(true, Release);
        start.wait();
        failure
    });
    if let Some(e) = failure {
        resume_unwind(e);
    }
}

const RACE_THREADS: usize = 3;
const RACE_ROUNDS: usize = 20_000;

/// Every thread wants shard 5, the only one not held by a live process: one gets it.
#[test]
fn racing_claims_never_share_a_shard() {
    let mut region = HeapRegion::new(64 * 1024);
    let base = region.base();
    // SAFETY: the region outlives every view; the threads use it only between the barriers,
    // after the main thread re-created the zone.
    let zone = unsafe { Zone::create(base, 64 * 1024, 11, 1, 0) }.unwrap();
    // Only pid 2000 is dead.
    let alive = |pid: i32| pid != 2000;
    race_rounds(
        RACE_THREADS,
        RACE_ROUNDS,
        |round| {
            let z = unsafe { Zone::create(base, 64 * 1024, 11, round as u64, 0) }.unwrap();
            for i in (0..OWNED_SHARDS).filter(|&i| i != 5) {
                assert_eq!(z.claim(i, 1 + i as i32, |_| true), Claim::Owned(i));
            }
            // Half of the rounds, shard 5 holds a dead process.
            if round % 2 == 1 {
                assert_eq!(z.claim(5, 2000, |_| true), Claim::Owned(5));
            }
        },
        |t| zone.claim(5, 1000 + t as i32 + 1, alive),
        |round, claims| {
            let owners: Vec<usize> = (0..claims.len())
                .filter(|&t| claims[t] == Claim::Owned(5))
                .collect();
            assert_eq!(owners.len(), 1, "round {round}: claims {claims:?}");
            assert!(
                claims
                    .iter()
                    .all(|c| *c == Claim::Owned(5) || *c == Claim::Shared),
                "round {round}: {claims:?}"
            );
            assert_eq!(zone.owner_of(5), 1000 + owners[0] as i32 + 1, "round {round}");
        },
    );
}

/// Writers of the shared shard grow its chunk for the same keys at the same moment: every
/// sample must land in the chunk that stays published.
#[test]
fn racing_chunk_growth_loses_no_sample() {
    const LEN: usize = 64 * 1024;
    let mut region = HeapRegion::new(LEN);
    let base = region.base();
    let lock = Mutex::new(());
    // SAFETY: as in racing_claims_never_share_a_shard.
    let zone = unsafe { Zone::create(base, LEN, BOUNDS_US.len(), 1, 0) }.unwrap();
    // Keys 2..=17: key 16 and 17 are in the second chunk, which no shard has yet.
    let names: Vec<Vec<u8>> = (0..16).map(|i| format!("k{i}").into_bytes()).collect();
    race_rounds(
        RACE_THREADS,
        RACE_ROUNDS,
        |round| {
            let z = unsafe { Zone::create(base, LEN, BOUNDS_US.len(), round as u64, 0) }.unwrap();
            for (i, n) in names.iter().enumerate() {
                assert_eq!(z.key(&lock, Kind::Server, n), Some(2 + i));
            }
            for i in 0..OWNED_SHARDS {
                z.claim(i, 1 + i as i32, |_| true);
            }
        },
        |t| {
            let claim = zone.claim(t, 1000 + t as i32, |_| true);
            let w = zone.writer(claim);
            let smp = sample(t, 1);
            (
                claim,
                w.record(&lock, 16 + t % 2, OVERFLOW_SERVER, false, &smp, &BOUNDS_US),
            )
        },
        |round, r| {
            assert!(
                r.iter()
                    .all(|&(c, rec)| c == Claim::Shared && rec == Recorded::Ok),
                "round {round}: {r:?}"
            );
            let snap = zone.snapshot();
            let got = [
                snap.entries[16].counters.requests,
                snap.entries[17].counters.requests,
            ];
            let want = [RACE_THREADS.div_ceil(2) as u64, (RACE_THREADS / 2) as u64];
            assert_eq!(got, want, "round {round}: samples lost");
        },
    );
}

/// The first sample of a key in an owned shard, seen by a concurrent scrape: the scrape must
/// not report a minimum time that no sample had (every sample here takes 7 ms; a slot whose
/// count is already visible but whose minimum is not yet written must not read as 0 ms). The
/// writer writes nothing but first samples (fresh slot after fresh slot, the zone re-created
/// when full) for up to 3 seconds while the other thread scrapes.
#[test]
fn scrape_never_reports_a_minimum_no_sample_had() {
    const LEN: usize = 4 << 20;
    const KEYS: usize = 256;
    let mut region = HeapRegion::new(LEN);
    let base = region.base();
    let lock = Mutex::new(());
    // SAFETY: the region outlives the views; it is re-created only under the write lock, while
    // no scrape reads it.
    let zone = unsafe { Zone::create(base, LEN, BOUNDS_US.len(), 5, 0) }.unwrap();
    let recreate = std::sync::RwLock::new(());
    let done = AtomicBool::new(false);
    let deadline = Instant::now() + Duration::from_secs(3);
    let smp = Sample {
        status: 200,
        time_ms: 7,
        ..Sample::default()
    };
    let bad = thread::scope(|s| {
        let writer = s.spawn(|| {
            let mut rounds = 0;
            while !done.load(Relaxed) && Instant::now() < deadline {
                let keys: Vec<usize> = {
                    let _g = recreate.write().unwrap();
                    let z = unsafe { Zone::create(zone.base(), LEN, BOUNDS_US.len(), rounds, 0) }.unwrap();
                    (0..KEYS)
                        .map(|i| z.key(&lock, Kind::Server, format!("k{i}").as_bytes()).unwrap())
                        .collect()
                };
                rounds += 1;
                'round: for shard in 0..OWNED_SHARDS {
                    let w = zone.writer(Claim::Owned(shard));
                    for &k in &keys {
                        if w.record(&lock, k, OVERFLOW_SERVER, false, &smp, &BOUNDS_US) == Recorded::Overflow
                        {
                            break 'round;
                        }
                    }
                }
            }
            rounds
        });
        let mut bad = None;
        while !writer.is_finished() {
            let _g = recreate.read().unwrap();
            let snap = zone.snapshot();
            if let Some(e) = snap
                .entries
                .iter()
                .find(|e| e.counters.time_min_ms.is_some_and(|m| m != 7))
            {
                bad = Some(e.counters.clone());
                done.store(true, Relaxed);
            }
        }
        let rounds = writer.join().unwrap();
        eprintln!("minimum: {rounds} zones filled");
        bad
    });
    if let Some(c) = bad {
        panic!(
            "a scrape reported a minimum of {:?} ms, every sample took 7 ms: {c:?}",
            c.time_min_ms
        );
    }
}
