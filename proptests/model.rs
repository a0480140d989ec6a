//! The model test the design promises: generated sequences of operations (records, scrapes,
//! reloads, worker crashes and respawns, floods of new keys until the zone is full) are applied
//! both to a real zone in a heap region and to a plain sequential model, and after every step
//! the merged snapshot must equal the model.
//!
//! "Processes" are simulated: each has a pid, a view of the zone (a reload re-attaches the
//! region, as nginx's zone init does) and the claim it got; a liveness table answers the
//! `alive` question that `kill(pid, 0)` answers in nginx.
//!
//! The model never calls the code under test. It keeps its own directory (registration order,
//! name -> index), its own arena accounting (names 8-aligned, slot chunks 64-aligned, taken from
//! a bump pointer that starts where the freshly created zone left it) and its own table of
//! shard owners, so it predicts exactly which key gets which index, when a key cannot be
//! registered and when a sample overflows. The layout constants (chunk size, key capacity) are
//! read from the zone's geometry.
//!
//! Checked after every step:
//! - every entry (kind, name, all counters) equals the model, in registration order;
//! - the grand totals of requests and bytes equal the totals of all samples recorded, always;
//! - used bytes equal the model's arena, so overflow happens exactly when the zone is full;
//! - every counter is >= its value at the previous step, the minimum time <= (monotonic);
//! - the shard owners equal the model's, and no two running processes own the same shard.
//!
//! Cases: 10 000 by default, `VTS_PROPTEST_CASES=N` for more.
#[allow(dead_code, unused_imports)]
#[path = "../src/stats/mod.rs"]
mod stats;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

use stats::layout::{OWNED_SHARDS, SHARED_SHARD, SLOTS_PER_CHUNK};
use stats::{
    upstream_key, Claim, Counters, HeapRegion, Kind, Recorded, Sample, Snapshot, Zone, OVERFLOW_SERVER,
    OVERFLOW_UPSTREAM,
};

// ---------------------------------------------------------------------------------------------
// The sequential model.

/// What the counters of one key must be: computed from the samples alone.
#[derive(Clone, Debug)]
struct Expected {
    requests: u64,
    bytes_in: u64,
    bytes_out: u64,
    status: [u64; 6],
    time_sum: u64,
    time_min: Option<u64>,
    time_max: u64,
    upstream_sum: u64,
    upstream_count: u64,
    buckets: Vec<u64>,
}

fn class_of(status: u64) -> usize {
    match status {
        100..=199 => 0,
        200..=299 => 1,
        300..=399 => 2,
        400..=499 => 3,
        500..=599 => 4,
        _ => 5,
    }
}

impl Expected {
    fn new(nbuckets: usize) -> Expected {
        Expected {
            requests: 0,
            bytes_in: 0,
            bytes_out: 0,
            status: [0; 6],
            time_sum: 0,
            time_min: None,
            time_max: 0,
            upstream_sum: 0,
            upstream_count: 0,
            buckets: vec![0; nbuckets],
        }
    }

    fn add(&mut self, s: &Sample, upstream: bool, bounds_us: &[u64]) {
        self.requests += 1;
        self.bytes_in += s.bytes_in;
        self.bytes_out += s.bytes_out;
        self.status[class_of(s.status)] += 1;
        self.time_sum += s.time_ms;
        self.time_min = Some(match self.time_min {
            None => s.time_ms,
            Some(m) if s.time_ms < m => s.time_ms,
            Some(m) => m,
        });
        if s.time_ms > self.time_max {
            self.time_max = s.time_ms;
        }
        if let Some(u) = s.upstream_ms {
            self.upstream_sum += u;
            self.upstream_count += 1;
        }
        let observed = if upstream { s.upstream_ms } else { Some(s.time_ms) };
        if let Some(ms) = observed {
            for (i, &bound) in bounds_us.iter().enumerate() {
                if ms * 1000 <= bound {
                    self.buckets[i] += 1;
                    break;
                }
            }
        }
    }

    fn as_counters(&self) -> Counters {
        Counters {
            requests: self.requests,
            bytes_in: self.bytes_in,
            bytes_out: self.bytes_out,
            status: self.status,
            time_sum_ms: self.time_sum,
            time_min_ms: self.time_min,
            time_max_ms: self.time_max,
            upstream_sum_ms: self.upstream_sum,
            upstream_count: self.upstream_count,
            buckets: self.buckets.clone(),
            // The model's zones measure no status codes and keep no time queues.
            ..Default::default()
        }
    }
}

/// The zone's arena as the model sees it: a bump pointer.
struct Arena {
    bump: usize,
    len: usize,
}

impl Arena {
    fn alloc(&mut self, bytes: usize, align: usize) -> bool {
        let start = self.bump.div_ceil(align) * align;
        if start + bytes > self.len {
            return false;
        }
        self.bump = start + bytes;
        true
    }
}

struct Model {
    bounds_us: Vec<u64>,
    max_keys: usize,
    chunk_bytes: usize,
    arena: Arena,
    /// Registration order: index = key.
    keys: Vec<(Kind, Vec<u8>)>,
    index: BTreeMap<(Kind, Vec<u8>), usize>,
    expected: Vec<Expected>,
    /// (shard, chunk) pairs allocated.
    chunks: BTreeSet<(usize, usize)>,
    /// Every sample recorded, wherever it went.
    total_requests: u64,
    total_bytes_in: u64,
    total_bytes_out: u64,
}

impl Model {
    fn new(bounds_us: &[u64], max_keys: usize, chunk_bytes: usize, used: usize, len: usize) -> Model {
        let mut m = Model {
            bounds_us: bounds_us.to_vec(),
            max_keys,
            chunk_bytes,
            arena: Arena { bump: used, len },
            keys: Vec::new(),
            index: BTreeMap::new(),
            expected: Vec::new(),
            chunks: BTreeSet::new(),
            total_requests: 0,
            total_bytes_in: 0,
            total_bytes_out: 0,
        };
        // A fresh zone: the two overflow entries, and the shared shard's first chunk.
        for name in [&b"server"[..], b"upstream"] {
            m.index.insert((Kind::Overflow, name.to_vec()), m.keys.len());
            m.keys.push((Kind::Overflow, name.to_vec()));
            m.expected.push(Expected::new(bounds_us.len()));
        }
        m.chunks.insert((SHARED_SHARD, 0));
        m
    }

    /// The key index `key()` must return.
    fn key(&mut self, kind: Kind, name: &[u8]) -> Option<usize> {
        if let Some(&k) = self.index.get(&(kind, name.to_vec())) {
            return Some(k);
        }
        if self.keys.len() >= self.max_keys || !self.arena.alloc(name.len().div_ceil(8) * 8, 8) {
            return None;
        }
        let k = self.keys.len();
        self.index.insert((kind, name.to_vec()), k);
        self.keys.push((kind, name.to_vec()));
        self.expected.push(Expected::new(self.bounds_us.len()));
        Some(k)
    }

    /// Whether `shard` has (or can allocate) the chunk of `key`.
    fn has_slot(&mut self, shard: usize, key: usize) -> bool {
        let c = (shard, key / SLOTS_PER_CHUNK);
        if self.chunks.contains(&c) {
            return true;
        }
        if !self.arena.alloc(self.chunk_bytes, 64) {
            return false;
        }
        self.chunks.insert(c);
        true
    }

    fn add(&mut self, entry: usize, s: &Sample, upstream: bool) {
        self.expected[entry].add(s, upstream, &self.bounds_us);
    }
}

// ---------------------------------------------------------------------------------------------
// Simulated processes.

struct Proc {
    pid: i32,
    index: usize,
    view: Zone,
    claim: Claim,
    running: bool,
    /// Step at which an old-generation worker finishes draining and exits (after a reload).
    exit_at: Option<usize>,
    /// Holds a shard for the whole case (another zone user): makes workers go elsewhere.
    squatter: bool,
}

/// Coverage counters, summed over all cases: the run fails if the generator never reached
/// the interesting states.
#[derive(Default)]
struct Coverage {
    cases: AtomicU64,
    steps: AtomicU64,
    records: AtomicU64,
    key_full: AtomicU64,
    directory_full: AtomicU64,
    record_overflow: AtomicU64,
    shared_claims: AtomicU64,
    moved_claims: AtomicU64,
    respawns: AtomicU64,
    reloads: AtomicU64,
    reclaimed_dead: AtomicU64,
    stale_releases: AtomicU64,
}

static COVERAGE: Coverage = Coverage {
    cases: AtomicU64::new(0),
    steps: AtomicU64::new(0),
    records: AtomicU64::new(0),
    key_full: AtomicU64::new(0),
    directory_full: AtomicU64::new(0),
    record_overflow: AtomicU64::new(0),
    shared_claims: AtomicU64::new(0),
    moved_claims: AtomicU64::new(0),
    respawns: AtomicU64::new(0),
    reloads: AtomicU64::new(0),
    reclaimed_dead: AtomicU64::new(0),
    stale_releases: AtomicU64::new(0),
};

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Relaxed);
}

struct World {
    _region: HeapRegion,
    base: NonNull<u8>,
    len: usize,
    lock: Mutex<()>,
    /// The current configuration's view.
    view: Zone,
    procs: Vec<Proc>,
    /// The model's shard owners (0 = free).
    owners: [i32; OWNED_SHARDS],
    next_pid: i32,
    step: usize,
    flood_seq: u64,
    model: Model,
    prev: Option<Snapshot>,
}

impl World {
    fn new(case: &Case) -> Result<World, TestCaseError> {
        let mut region = HeapRegion::new(case.zone_len);
        let base = region.base();
        // SAFETY: the region is ours, 64-aligned, and outlives every view (it lives in World).
        let view = unsafe {
            Zone::create(
                base,
                case.zone_len,
                case.bounds_us.len(),
                case.seed,
                1_700_000_000,
            )
        }
        .map_err(|e| TestCaseError::fail(format!("create: {e:?}")))?;
        let geo = *view.geometry();
        let (used, size) = view.usage();
        prop_assert_eq!(size, case.zone_len);
        prop_assert!(used <= size);
        let model = Model::new(&case.bounds_us, geo.max_keys, geo.chunk_bytes, used, size);
        let mut w = World {
            _region: region,
            base,
            len: case.zone_len,
            lock: Mutex::new(()),
            view,
            procs: Vec::new(),
            owners: [0; OWNED_SHARDS],
            next_pid: 1000,
            step: 0,
            flood_seq: 0,
            model,
            prev: None,
        };
        for i in 0..case.squatters {
            w.spawn(i, true, view)?;
        }
        for i in 0..case.workers {
            w.spawn(i, false, view)?;
        }
        w.check()?;
        Ok(w)
    }

    fn running_pids(&self) -> HashSet<i32> {
        self.procs.iter().filter(|p| p.running).map(|p| p.pid).collect()
    }

    /// Starts a process with worker index `index`: it claims a shard, which must be its
    /// preferred one when that is free or held by a dead process, some other free one
    /// otherwise, and the shared shard only when every owned shard has a running owner.
    fn spawn(&mut self, index: usize, squatter: bool, view: Zone) -> Result<(), TestCaseError> {
        let pid = self.next_pid;
        self.next_pid += 1;
        let live = self.running_pids();
        let claim = view.claim(index, pid, |p| live.contains(&p));
        let available = |o: i32| o == 0 || !live.contains(&o);
        let preferred = index % OWNED_SHARDS;
        match claim {
            Claim::Owned(i) => {
                prop_assert!(i < OWNED_SHARDS);
                prop_assert!(
                    available(self.owners[i]),
                    "pid {} claimed shard {} held by running pid {}",
                    pid,
                    i,
                    self.owners[i]
                );
                if available(self.owners[preferred]) {
                    prop_assert_eq!(i, preferred, "preferred shard was free");
                } else {
                    bump(&COVERAGE.moved_claims);
                }
                if self.owners[i] != 0 {
                    bump(&COVERAGE.reclaimed_dead);
                }
                self.owners[i] = pid;
            }
            Claim::Shared => {
                prop_assert!(
                    self.owners.iter().all(|&o| !available(o)),
                    "pid {} got the shared shard while an owned shard was free: {:?}",
                    pid,
                    self.owners
                );
                bump(&COVERAGE.shared_claims);
            }
        }
        self.procs.push(Proc {
            pid,
            index,
            view,
            claim,
            running: true,
            exit_at: None,
            squatter,
        });
        Ok(())
    }

    /// A graceful exit: the process releases its shard.
    fn exit(&mut self, p: usize) {
        let (pid, claim, view) = (self.procs[p].pid, self.procs[p].claim, self.procs[p].view);
        view.release(claim, pid);
        if let Claim::Owned(i) = claim {
            if self.owners[i] == pid {
                self.owners[i] = 0;
            }
        }
        self.procs[p].running = false;
    }

    fn pick(&self, who: usize) -> Option<usize> {
        let running: Vec<usize> = (0..self.procs.len()).filter(|&i| self.procs[i].running).collect();
        (!running.is_empty()).then(|| running[who % running.len()])
    }

    /// One request, as the LOG_PHASE handler does it: resolve the key (overflow entry if the
    /// directory is full), then record into the process's shard.
    fn record(&mut self, p: usize, kind: Kind, name: &[u8], s: &Sample) -> Result<(), TestCaseError> {
        let upstream = kind == Kind::UpstreamPeer;
        let overflow = if upstream {
            OVERFLOW_UPSTREAM
        } else {
            OVERFLOW_SERVER
        };
        let view = self.procs[p].view;
        let (used_before, size) = view.usage();

        let got = view.key(&self.lock, kind, name);
        let want = self.model.key(kind, name);
        prop_assert_eq!(
            got,
            want,
            "key index of {:?} {:?}",
            kind,
            String::from_utf8_lossy(name)
        );
        if got.is_none() {
            bump(&COVERAGE.key_full);
            // Refused only when genuinely full.
            let names = view.keys().count();
            if names >= view.geometry().max_keys {
                bump(&COVERAGE.directory_full);
            }
            prop_assert!(
                names >= view.geometry().max_keys || size - used_before < name.len().div_ceil(8) * 8,
                "key refused with {} keys of {} and {} free bytes for a {}-byte name",
                names,
                view.geometry().max_keys,
                size - used_before,
                name.len()
            );
        }
        let target = got.unwrap_or(overflow);

        let writer = view.writer(self.procs[p].claim);
        let (used_mid, _) = view.usage();
        let r = writer.record(&self.lock, target, overflow, upstream, s, &self.model.bounds_us);
        let fits = self.model.has_slot(writer.shard(), target);
        prop_assert_eq!(
            r,
            if fits { Recorded::Ok } else { Recorded::Overflow },
            "record into shard {} key {}",
            writer.shard(),
            target
        );
        let dest = match r {
            Recorded::Ok => target,
            Recorded::Overflow => {
                bump(&COVERAGE.record_overflow);
                let chunk = view.geometry().chunk_bytes;
                prop_assert!(
                    used_mid.div_ceil(64) * 64 + chunk > size,
                    "overflow with {} free bytes for a {}-byte chunk",
                    size - used_mid,
                    chunk
                );
                overflow
            }
        };
        self.model.add(dest, s, upstream);
        self.model.total_requests += 1;
        self.model.total_bytes_in += s.bytes_in;
        self.model.total_bytes_out += s.bytes_out;
        bump(&COVERAGE.records);
        Ok(())
    }

    fn apply(&mut self, op: &Op, names: &[Vec<u8>]) -> Result<(), TestCaseError> {
        self.step += 1;
        bump(&COVERAGE.steps);
        // Old workers whose drain time has come exit gracefully.
        for p in 0..self.procs.len() {
            if self.procs[p].running && self.procs[p].exit_at.is_some_and(|e| e <= self.step) {
                self.exit(p);
            }
        }
        match *op {
            Op::Record {
                who,
                name,
                upstream,
                sample,
            } => {
                if let Some(p) = self.pick(who) {
                    let kind = if upstream {
                        Kind::UpstreamPeer
                    } else {
                        Kind::Server
                    };
                    let name = names[name % names.len()].clone();
                    self.record(p, kind, &name, &sample)?;
                }
            }
            Op::Flood {
                who,
                count,
                len,
                upstream,
                record,
                sample,
            } => {
                let kind = if upstream {
                    Kind::UpstreamPeer
                } else {
                    Kind::Server
                };
                for _ in 0..count {
                    self.flood_seq += 1;
                    let mut name = format!("flood-{}-", self.flood_seq).into_bytes();
                    name.resize(name.len() + len, b'x');
                    if upstream {
                        name = upstream_key(b"backend", &name);
                    }
                    match (record, self.pick(who)) {
                        (true, Some(p)) => self.record(p, kind, &name, &sample)?,
                        // Registration without a request, as at worker start.
                        _ => {
                            let got = self.view.key(&self.lock, kind, &name);
                            prop_assert_eq!(got, self.model.key(kind, &name));
                        }
                    }
                }
            }
            Op::Scrape => {
                // The status handler of a reloaded configuration reads through its own view.
                // SAFETY: the region lives as long as self.
                let fresh = unsafe { Zone::attach(self.base, self.len, self.model.bounds_us.len()) }
                    .map_err(|e| TestCaseError::fail(format!("attach: {e:?}")))?;
                prop_assert_eq!(fresh.snapshot(), self.view.snapshot());
            }
            Op::Reload { workers, drain } => {
                bump(&COVERAGE.reloads);
                // SAFETY: as above.
                let view = unsafe { Zone::attach(self.base, self.len, self.model.bounds_us.len()) }
                    .map_err(|e| TestCaseError::fail(format!("attach after reload: {e:?}")))?;
                let exit_at = self.step + drain;
                for p in self.procs.iter_mut() {
                    if p.running && !p.squatter && p.exit_at.is_none() {
                        p.exit_at = Some(exit_at);
                    }
                }
                // The new workers start while the old ones still run, with the same indexes.
                for i in 0..workers {
                    self.spawn(i, false, view)?;
                }
                self.view = view;
                // drain == 0: the old workers had nothing in flight.
                for p in 0..self.procs.len() {
                    if self.procs[p].running && self.procs[p].exit_at.is_some_and(|e| e <= self.step) {
                        self.exit(p);
                    }
                }
            }
            Op::Crash { who, respawn } => {
                if let Some(p) = self.pick(who) {
                    // Dies without releasing anything.
                    self.procs[p].running = false;
                    let (index, squatter, draining, view) = (
                        self.procs[p].index,
                        self.procs[p].squatter,
                        self.procs[p].exit_at.is_some(),
                        self.procs[p].view,
                    );
                    // The master respawns a crashed worker of the current generation, same index.
                    if respawn && !draining {
                        bump(&COVERAGE.respawns);
                        self.spawn(index, squatter, view)?;
                    }
                }
            }
            Op::StaleRelease { who } => {
                let gone: Vec<usize> = (0..self.procs.len())
                    .filter(|&i| !self.procs[i].running)
                    .collect();
                if !gone.is_empty() {
                    let p = &self.procs[gone[who % gone.len()]];
                    p.view.release(p.claim, p.pid);
                    if let Claim::Owned(i) = p.claim {
                        if self.owners[i] == p.pid {
                            // A crashed owner nobody replaced yet: its own release frees the shard.
                            self.owners[i] = 0;
                        } else if self.owners[i] != 0 {
                            bump(&COVERAGE.stale_releases);
                        }
                    }
                }
            }
        }
        self.check()
    }

    fn check(&mut self) -> Result<(), TestCaseError> {
        // The sum as a status handler takes it, in steps of a few slots (a scrape in slices)
        // or in one go: either must equal the model.
        let budget = [usize::MAX, 1, 16, 100, 2048][self.step % 5];
        let mut merge = self.view.merge();
        while !merge.step(&self.view, budget) {}
        let snap = merge.finish();
        let m = &self.model;

        prop_assert_eq!(snap.size_bytes, self.len);
        prop_assert!(snap.used_bytes <= snap.size_bytes);
        prop_assert_eq!(
            snap.used_bytes,
            m.arena.bump,
            "used bytes differ from the model's arena"
        );
        prop_assert_eq!(snap.max_keys, m.max_keys);

        // Grand totals: exact, whatever overflowed.
        let requests: u64 = snap.entries.iter().map(|e| e.counters.requests).sum();
        let bytes_in: u64 = snap.entries.iter().map(|e| e.counters.bytes_in).sum();
        let bytes_out: u64 = snap.entries.iter().map(|e| e.counters.bytes_out).sum();
        prop_assert_eq!(requests, m.total_requests, "total requests");
        prop_assert_eq!(bytes_in, m.total_bytes_in, "total bytes in");
        prop_assert_eq!(bytes_out, m.total_bytes_out, "total bytes out");

        // Every entry, in registration order.
        prop_assert_eq!(snap.entries.len(), m.keys.len(), "number of keys");
        for (i, e) in snap.entries.iter().enumerate() {
            prop_assert_eq!(e.kind, m.keys[i].0, "kind of key {}", i);
            prop_assert!(e.name == m.keys[i].1, "name of key {}", i);
            prop_assert_eq!(
                &e.counters,
                &m.expected[i].as_counters(),
                "counters of key {} ({:?})",
                i,
                e.kind
            );
        }

        // Monotonic since the previous step.
        if let Some(prev) = &self.prev {
            prop_assert!(snap.entries.len() >= prev.entries.len());
            for (a, b) in prev.entries.iter().zip(&snap.entries) {
                prop_assert!(a.kind == b.kind && a.name == b.name);
                let (a, b) = (&a.counters, &b.counters);
                let pairs = [
                    (a.requests, b.requests),
                    (a.bytes_in, b.bytes_in),
                    (a.bytes_out, b.bytes_out),
                    (a.time_sum_ms, b.time_sum_ms),
                    (a.time_max_ms, b.time_max_ms),
                    (a.upstream_sum_ms, b.upstream_sum_ms),
                    (a.upstream_count, b.upstream_count),
                ];
                for (x, y) in pairs {
                    prop_assert!(x <= y, "counter went down: {:?} -> {:?}", a, b);
                }
                for (x, y) in a
                    .status
                    .iter()
                    .zip(&b.status)
                    .chain(a.buckets.iter().zip(&b.buckets))
                {
                    prop_assert!(x <= y, "counter went down: {:?} -> {:?}", a, b);
                }
                if let Some(x) = a.time_min_ms {
                    prop_assert!(
                        b.time_min_ms.is_some_and(|y| y <= x),
                        "min went up: {:?} -> {:?}",
                        a,
                        b
                    );
                }
            }
        }

        // Shard ownership: as the model says, one running owner per shard.
        for i in 0..OWNED_SHARDS {
            prop_assert_eq!(self.view.owner_of(i), self.owners[i], "owner of shard {}", i);
        }
        prop_assert_eq!(snap.owned_shards, self.owners.iter().filter(|&&o| o != 0).count());
        let mut held = HashSet::new();
        for p in self.procs.iter().filter(|p| p.running) {
            if let Claim::Owned(i) = p.claim {
                prop_assert!(held.insert(i), "two running processes own shard {}", i);
                prop_assert_eq!(self.view.owner_of(i), p.pid, "shard {} lost its running owner", i);
            }
        }

        self.prev = Some(snap);
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Generated cases.

#[derive(Clone, Debug)]
enum Op {
    Record {
        who: usize,
        name: usize,
        upstream: bool,
        sample: Sample,
    },
    /// `count` fresh names of about `len` bytes: fills the directory or the arena.
    Flood {
        who: usize,
        count: usize,
        len: usize,
        upstream: bool,
        record: bool,
        sample: Sample,
    },
    Scrape,
    /// Re-attach the region; `workers` new workers start, the old ones exit `drain` steps later.
    Reload {
        workers: usize,
        drain: usize,
    },
    Crash {
        who: usize,
        respawn: bool,
    },
    /// A process that no longer runs releases its claim again (a repeated exit handler): only
    /// an owner's release may take effect, never one of a shard someone else took since.
    StaleRelease {
        who: usize,
    },
}

#[derive(Clone, Debug)]
struct Case {
    zone_len: usize,
    seed: u64,
    bounds_us: Vec<u64>,
    workers: usize,
    squatters: usize,
    names: Vec<Vec<u8>>,
    ops: Vec<Op>,
}

fn sample() -> impl Strategy<Value = Sample> {
    let status = prop_oneof![
        4 => prop::sample::select(vec![200u64, 201, 204, 301, 302, 304, 400, 404, 444, 499, 500, 502, 503, 504]),
        1 => prop::sample::select(vec![0u64, 1, 99, 100, 199, 599, 600, 999, 65535]),
        1 => 0u64..1000,
    ];
    let bytes = || prop_oneof![3 => 0u64..2000, 1 => 0u64..(1u64 << 40)];
    // Times around the default bucket bounds (5 ms .. 10 s) and well past them.
    let time = || {
        prop_oneof![
            3 => 0u64..50,
            2 => 0u64..20_000,
            1 => prop::sample::select(vec![
                0u64, 1, 4, 5, 6, 9, 10, 11, 24, 25, 26, 49, 50, 51, 99, 100, 101, 250, 251, 500,
                501, 1000, 1001, 2500, 2501, 5000, 5001, 10_000, 10_001,
            ]),
        ]
    };
    (status, bytes(), bytes(), time(), prop::option::of(time())).prop_map(
        |(status, bytes_in, bytes_out, time_ms, upstream_ms)| Sample {
            status,
            bytes_in,
            bytes_out,
            time_ms,
            upstream_ms,
            ..Default::default()
        },
    )
}

fn bounds() -> impl Strategy<Value = Vec<u64>> {
    prop_oneof![
        2 => Just(vec![
            5_000u64, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000, 2_500_000, 5_000_000, 10_000_000,
        ]),
        1 => Just(vec![]),
        // Arbitrary bounds, in microseconds (not always whole milliseconds), up to 16.
        2 => prop::collection::btree_set(0u64..12_000_000, 1..=16).prop_map(|s| s.into_iter().collect()),
    ]
}

fn name() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        3 => prop::sample::select(vec!["example.com", "a", "", "_", "localhost", "www.example.com"])
            .prop_map(|s| s.as_bytes().to_vec()),
        // Hostile: any bytes (quotes, newlines, backslashes, invalid UTF-8, NUL).
        2 => prop::collection::vec(any::<u8>(), 0..24),
        1 => "[a-z\"\\\\\n{}=]{0,12}".prop_map(|s| s.into_bytes()),
        1 => (100usize..3000).prop_map(|n| vec![b'l'; n]),
        1 => (prop::collection::vec(any::<u8>(), 0..8), prop::collection::vec(any::<u8>(), 0..8))
            .prop_map(|(g, p)| upstream_key(&g, &p)),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        12 => (any::<usize>(), any::<usize>(), any::<bool>(), sample())
            .prop_map(|(who, name, upstream, sample)| Op::Record { who, name, upstream, sample }),
        // Short names fill the directory, long ones the arena.
        2 => (any::<usize>(), 1usize..80, prop_oneof![0usize..16, 0usize..1500], any::<bool>(), prop::bool::weighted(0.7), sample())
            .prop_map(|(who, count, len, upstream, record, sample)| Op::Flood { who, count, len, upstream, record, sample }),
        2 => Just(Op::Scrape),
        1 => (1usize..=8, 0usize..=5).prop_map(|(workers, drain)| Op::Reload { workers, drain }),
        2 => (any::<usize>(), prop::bool::weighted(0.8)).prop_map(|(who, respawn)| Op::Crash { who, respawn }),
        1 => any::<usize>().prop_map(|who| Op::StaleRelease { who }),
    ]
}

fn case() -> impl Strategy<Value = Case> {
    let zone_len = prop_oneof![
        Just(64 * 1024),
        Just(128 * 1024),
        Just(256 * 1024),
        // Sizes that are not a multiple of the cache line.
        (64 * 1024usize..=256 * 1024),
    ];
    let squatters = prop_oneof![4 => Just(0usize), 1 => 56usize..=OWNED_SHARDS];
    (
        zone_len,
        any::<u64>(),
        bounds(),
        1usize..=8,
        squatters,
        prop::collection::vec(name(), 1..10),
        prop::collection::vec(op(), 1..60),
    )
        .prop_map(
            |(zone_len, seed, bounds_us, workers, squatters, names, ops)| Case {
                zone_len,
                seed,
                bounds_us,
                workers,
                squatters,
                names,
                ops,
            },
        )
}

fn run_case(case: &Case) -> Result<(), TestCaseError> {
    let mut w = World::new(case)?;
    for op in &case.ops {
        w.apply(op, &case.names)?;
    }
    Ok(())
}

fn cases() -> u32 {
    std::env::var("VTS_PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000)
}

#[test]
fn merged_totals_match_the_sequential_model() {
    let config = Config {
        cases: cases(),
        // Failures are kept as explicit tests below, not in a regressions file.
        failure_persistence: None,
        ..Config::default()
    };
    let mut runner = TestRunner::new(config);
    let started = std::time::Instant::now();
    if let Err(e) = runner.run(&case(), |c| {
        bump(&COVERAGE.cases);
        run_case(&c)
    }) {
        panic!("{e}");
    }
    let c = &COVERAGE;
    let get = |a: &AtomicU64| a.load(Relaxed);
    eprintln!(
        "model: {} cases, {} steps, {} records ({} keys refused, {} of them by a full directory, {} samples overflowed), \
         {} claims moved, {} shared claims, {} dead owners' shards reclaimed, {} stale releases of a taken shard, {} respawns, {} reloads, {:.1?}",
        get(&c.cases),
        get(&c.steps),
        get(&c.records),
        get(&c.key_full),
        get(&c.directory_full),
        get(&c.record_overflow),
        get(&c.moved_claims),
        get(&c.shared_claims),
        get(&c.reclaimed_dead),
        get(&c.stale_releases),
        get(&c.respawns),
        get(&c.reloads),
        started.elapsed()
    );
    // The generator must actually reach the states the invariants are about.
    if cases() >= 1000 {
        for (what, n) in [
            ("a full arena", get(&c.key_full) - get(&c.directory_full)),
            ("a full directory", get(&c.directory_full)),
            ("an overflowed sample", get(&c.record_overflow)),
            ("a claim away from the preferred shard", get(&c.moved_claims)),
            ("a shared-shard claim", get(&c.shared_claims)),
            ("a dead owner's shard taken over", get(&c.reclaimed_dead)),
            ("a stale release of a taken shard", get(&c.stale_releases)),
            ("a reload", get(&c.reloads)),
        ] {
            assert!(n > 0, "no case reached {what}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Directed cases: the scenarios the generator is meant to reach, spelled out once.

fn directed(case: Case) {
    if let Err(e) = run_case(&case) {
        panic!("{e}\n{case:#?}");
    }
}

fn s(status: u64, time_ms: u64) -> Sample {
    Sample {
        status,
        bytes_in: 100,
        bytes_out: 1000,
        time_ms,
        upstream_ms: Some(time_ms / 2),
        ..Default::default()
    }
}

#[test]
fn reload_then_crash_then_fill() {
    directed(Case {
        zone_len: 64 * 1024,
        seed: 7,
        bounds_us: vec![5_000, 10_000, 4_999_999],
        workers: 2,
        squatters: 0,
        names: vec![b"a".to_vec(), b"b\n\"\\".to_vec()],
        ops: vec![
            Op::Record {
                who: 0,
                name: 0,
                upstream: false,
                sample: s(200, 5),
            },
            Op::Reload { workers: 2, drain: 3 },
            Op::Record {
                who: 0,
                name: 1,
                upstream: true,
                sample: s(503, 0),
            },
            Op::Record {
                who: 3,
                name: 0,
                upstream: false,
                sample: s(0, 6000),
            },
            Op::Crash {
                who: 2,
                respawn: true,
            },
            Op::Scrape,
            Op::Flood {
                who: 1,
                count: 39,
                len: 1400,
                upstream: false,
                record: true,
                sample: s(404, 10),
            },
            Op::Flood {
                who: 0,
                count: 20,
                len: 0,
                upstream: true,
                record: true,
                sample: s(999, 1),
            },
            Op::Scrape,
        ],
    });
}

#[test]
fn all_shards_held_by_running_processes() {
    directed(Case {
        zone_len: 128 * 1024,
        seed: 1,
        bounds_us: vec![],
        workers: 3,
        squatters: OWNED_SHARDS,
        names: vec![b"x".to_vec()],
        ops: vec![
            Op::Record {
                who: usize::MAX,
                name: 0,
                upstream: false,
                sample: s(200, 3),
            },
            Op::Record {
                who: usize::MAX / 2,
                name: 0,
                upstream: true,
                sample: s(200, 1),
            },
            Op::Crash {
                who: 0,
                respawn: true,
            },
            Op::Flood {
                who: usize::MAX,
                count: 30,
                len: 2000,
                upstream: false,
                record: true,
                sample: s(301, 7),
            },
        ],
    });
}
