//! The model test of zones with time queues and status codes (a `vhost_traffic_status_zone`):
//! generated sequences of what the nginx layer writes (requests, ignored requests, upstream
//! attempts that served the client, were passed on or were ignored, each with its response
//! times' sample in the peer's `PeerTimes` slot) are applied both to a real zone in a heap
//! region, by several simulated workers, and to a plain sequential model; at a few points and
//! at the end the merged snapshot must equal the model exactly, key by key.
//!
//! The model never calls the code under test. It keeps every key's counters as the nginx layer
//! defines them, the full list of each key's queued samples in the order they happened (every
//! sample has its own time, so "the newest 63" is simply the last 63), its own directory
//! (registration order; an upstream peer takes two entries, its own and its times') and its
//! own arena accounting (names 8-aligned, slot chunks 64-aligned, from a bump pointer that
//! starts where the freshly created zone left it), so that it predicts which key gets which
//! index and which sample overflows into which overflow entry. The documented constants (63
//! samples a queue shows, 24 bits of a queued duration, 16 slots a chunk, 64 owned shards) are
//! written out here; only the zone's key capacity, its chunk size (how many words a slot takes
//! is the layout's business) and its initial usage are read from it.
//!
//! Two properties: a roomy zone where nothing overflows (every key exact), and a tight one
//! where names are refused and chunks cannot be allocated (still every entry exact, overflow
//! entries included, and the grand totals equal to the samples written).
//!
//! Cases: 2 000 per property by default, `VTS_PROPTEST_CASES=N` for more.
#[allow(dead_code, unused_imports)]
#[path = "../src/stats/mod.rs"]
mod stats;
#[allow(dead_code, unused_imports)]
#[path = "../src/view.rs"]
mod view;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

use stats::layout::{Geometry, GeometryError, SlotSpec};
use stats::{
    upstream_key, Claim, Counters, HeapRegion, Kind, Recorded, Sample, ShardWriter, Snapshot, What, Zone,
    OVERFLOW_SERVER, OVERFLOW_UPSTREAM,
};
use view::{average, AvgMethod, View};

// ---------------------------------------------------------------------------------------------
// The documented constants, independently of the layout module.

/// Samples a merged queue shows (nginx-module-vts's 64-entry ring with one always empty).
const SHOWN: usize = 63;
/// A queued duration saturates at 24 bits.
const MS_MAX: u64 = (1 << 24) - 1;
/// Owned shards, and the shared one's index after them.
const OWNED: usize = 64;
const SHARED: usize = 64;
const SLOTS_PER_CHUNK: usize = 16;

// ---------------------------------------------------------------------------------------------
// The sequential model.

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

/// What one slot (a key's own, or a peer's times slot) must have counted.
#[derive(Clone, Debug)]
struct Part {
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
    codes: Vec<u64>,
    /// Every queued sample (unix ms, duration), in the order they happened.
    queue: Vec<(u64, u64)>,
    /// Unix ms of the newest sample of any kind; 0: none.
    seen: u64,
}

impl Part {
    fn new(nbuckets: usize, ncodes: usize) -> Part {
        Part {
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
            codes: vec![0; ncodes],
            queue: Vec::new(),
            seen: 0,
        }
    }

    fn seen(&mut self, t: u64) {
        self.seen = self.seen.max(t);
    }

    fn upstream(&mut self, resp: u64) {
        self.upstream_sum += resp;
        self.upstream_count += 1;
    }

    /// A sample counted in full: every counter, the histogram of its time, the queue.
    fn full(&mut self, status: u64, bytes: (u64, u64), time: u64, t: u64, bounds_us: &[u64]) {
        self.requests += 1;
        self.bytes_in += bytes.0;
        self.bytes_out += bytes.1;
        self.status[class_of(status)] += 1;
        self.time_sum += time;
        self.time_min = Some(self.time_min.map_or(time, |m| m.min(time)));
        self.time_max = self.time_max.max(time);
        // The first bound at or above the value, both in microseconds; none: only in +Inf.
        if let Some(i) = bounds_us.iter().position(|&b| time as u128 * 1000 <= b as u128) {
            self.buckets[i] += 1;
        }
        self.queue.push((t, time.min(MS_MAX)));
        self.seen(t);
    }

    fn code(&mut self, idx: usize) {
        // An index past the measured codes counts nowhere.
        if let Some(c) = self.codes.get_mut(idx) {
            *c += 1;
        }
    }
}

/// The newest `SHOWN` of samples listed oldest first.
fn newest(q: &[(u64, u64)]) -> Vec<(u64, u64)> {
    q[q.len().saturating_sub(SHOWN)..].to_vec()
}

#[derive(Clone, Debug)]
struct MEntry {
    kind: Kind,
    name: Vec<u8>,
    tag: u32,
    main: Part,
    /// Upstream peers and the upstream overflow entry: the times slot after the key's own.
    times: Option<Part>,
}

impl MEntry {
    fn counters(&self) -> Counters {
        let m = &self.main;
        Counters {
            requests: m.requests,
            bytes_in: m.bytes_in,
            bytes_out: m.bytes_out,
            status: m.status,
            time_sum_ms: m.time_sum,
            time_min_ms: m.time_min,
            time_max_ms: m.time_max,
            upstream_sum_ms: m.upstream_sum,
            upstream_count: m.upstream_count,
            buckets: m.buckets.clone(),
            codes: m.codes.clone(),
            queue: newest(&m.queue),
            response_queue: self.times.as_ref().map_or_else(Vec::new, |t| newest(&t.queue)),
            response_buckets: self.times.as_ref().map_or_else(Vec::new, |t| t.buckets.clone()),
            seen_ms: m.seen,
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

/// Where a sample went (for the coverage counters).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Dest {
    Own,
    Overflow,
}

struct Model {
    bounds_us: Vec<u64>,
    ncodes: usize,
    max_keys: usize,
    chunk_bytes: usize,
    arena: Arena,
    entries: Vec<MEntry>,
    /// Key index -> (entry, whether it is the entry's times slot).
    slots: Vec<(usize, bool)>,
    index: BTreeMap<(Kind, Vec<u8>), usize>,
    /// (shard, chunk) pairs allocated.
    chunks: BTreeSet<(usize, usize)>,
    /// Samples that add a request (Full and PassedOn, not the times samples), attempts, bytes.
    total_requests: u64,
    total_attempts: u64,
    total_bytes_in: u64,
    /// Every server-side sample counted in full, wherever it went (the sum entry's queue).
    server_queue: Vec<(u64, u64)>,
}

impl Model {
    fn new(
        bounds_us: &[u64],
        ncodes: usize,
        max_keys: usize,
        chunk_bytes: usize,
        used: usize,
        len: usize,
    ) -> Model {
        let nb = bounds_us.len();
        let entry = |name: &[u8], times: bool| MEntry {
            kind: Kind::Overflow,
            name: name.to_vec(),
            tag: 0,
            main: Part::new(nb, ncodes),
            times: times.then(|| Part::new(nb, ncodes)),
        };
        let mut m = Model {
            bounds_us: bounds_us.to_vec(),
            ncodes,
            max_keys,
            chunk_bytes,
            arena: Arena { bump: used, len },
            // A fresh zone: the server overflow entry (key 0), the upstream one (key 1) and
            // its times slot (key 2), all in the shared shard's first chunk.
            entries: vec![entry(b"server", false), entry(b"upstream", true)],
            slots: vec![(0, false), (1, false), (1, true)],
            index: BTreeMap::new(),
            chunks: BTreeSet::from([(SHARED, 0)]),
            total_requests: 0,
            total_attempts: 0,
            total_bytes_in: 0,
            server_queue: Vec::new(),
        };
        m.index.insert((Kind::Overflow, b"server".to_vec()), 0);
        m.index.insert((Kind::Overflow, b"upstream".to_vec()), 1);
        m
    }

    /// The key index the zone must give (kind, name), registering it with `tag` if new.
    fn key(&mut self, kind: Kind, name: &[u8], tag: u32) -> Option<usize> {
        if let Some(&k) = self.index.get(&(kind, name.to_vec())) {
            return Some(k);
        }
        let peer = kind == Kind::UpstreamPeer;
        let need = if peer { 2 } else { 1 };
        if self.slots.len() + need > self.max_keys || !self.arena.alloc(name.len().div_ceil(8) * 8, 8) {
            return None;
        }
        let k = self.slots.len();
        let e = self.entries.len();
        let (nb, nc) = (self.bounds_us.len(), self.ncodes);
        self.entries.push(MEntry {
            kind,
            name: name.to_vec(),
            tag,
            main: Part::new(nb, nc),
            times: peer.then(|| Part::new(nb, nc)),
        });
        self.slots.push((e, false));
        if peer {
            self.slots.push((e, true));
        }
        self.index.insert((kind, name.to_vec()), k);
        Some(k)
    }

    /// Where a sample for `key` written by `shard` lands: the key's slot if its chunk exists
    /// or can be allocated, else `overflow` (whose chunk in the shared shard always exists).
    fn dest(&mut self, shard: usize, key: usize, overflow: usize) -> (usize, Dest) {
        let c = (shard, key / SLOTS_PER_CHUNK);
        if self.chunks.contains(&c) || self.arena.alloc(self.chunk_bytes, 64) {
            self.chunks.insert(c);
            (key, Dest::Own)
        } else {
            (overflow, Dest::Overflow)
        }
    }

    fn part(&mut self, key: usize, times: bool) -> &mut Part {
        let (e, is_times) = self.slots[key];
        assert_eq!(is_times, times, "model: key {key} is not the slot expected");
        let e = &mut self.entries[e];
        if times {
            e.times.as_mut().expect("a times slot's entry has times")
        } else {
            &mut e.main
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Coverage, summed over all cases: the run fails if the generator never reached a state.

struct Coverage {
    cases: AtomicU64,
    samples: AtomicU64,
    checks: AtomicU64,
    shared_writes: AtomicU64,
    long_queues: AtomicU64,
    long_response_queues: AtomicU64,
    saturated: AtomicU64,
    peer_across_chunks: AtomicU64,
    refused_directory: AtomicU64,
    refused_arena: AtomicU64,
    main_overflow: AtomicU64,
    times_overflow_only: AtomicU64,
}

static COVERAGE: Coverage = Coverage {
    cases: AtomicU64::new(0),
    samples: AtomicU64::new(0),
    checks: AtomicU64::new(0),
    shared_writes: AtomicU64::new(0),
    long_queues: AtomicU64::new(0),
    long_response_queues: AtomicU64::new(0),
    saturated: AtomicU64::new(0),
    peer_across_chunks: AtomicU64::new(0),
    refused_directory: AtomicU64::new(0),
    refused_arena: AtomicU64::new(0),
    main_overflow: AtomicU64::new(0),
    times_overflow_only: AtomicU64::new(0),
};

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Relaxed);
}

fn get(c: &AtomicU64) -> u64 {
    c.load(Relaxed)
}

// ---------------------------------------------------------------------------------------------
// Generated cases.

/// How an upstream attempt ended, as the nginx layer sees it.
#[derive(Clone, Copy, Debug)]
enum How {
    /// The last attempt: counts like the client's request, plus its response time.
    Serving,
    /// Passed on to the next peer: the count, its own status class, the response time.
    PassedOn,
    /// `ignore_status`: only the response time (a serving or a passed-on attempt).
    Ignored { serving: bool },
}

#[derive(Clone, Debug)]
enum Op {
    Request {
        who: usize,
        server: usize,
        dt: u64,
        status: u64,
        bytes: (u64, u64),
        time_ms: u64,
        code: u16,
        ignored: bool,
    },
    Attempt {
        who: usize,
        peer: usize,
        dt: u64,
        how: How,
        status: u64,
        bytes: (u64, u64),
        time_ms: u64,
        resp: u64,
    },
    /// Registration without a sample (configured keys, at worker start).
    Register {
        peer: bool,
        idx: usize,
    },
    /// `count` fresh names of about `len` bytes: fills the directory or the arena.
    Flood {
        who: usize,
        count: usize,
        len: usize,
        peer: bool,
        record: bool,
    },
    Check,
}

#[derive(Clone, Debug)]
struct Case {
    zone_len: usize,
    spec: SlotSpec,
    bounds_us: Vec<u64>,
    seed: u64,
    created_unix: u64,
    /// queued_at before the first sample.
    start: u64,
    /// Workers claiming owned shards (0, 1, ... by worker index).
    owned: usize,
    /// Every owned shard held by another running process: the workers all get the shared one.
    squat: bool,
    /// One more writer on the shared shard.
    shared: bool,
    servers: Vec<(Vec<u8>, u32)>,
    peers: Vec<Vec<u8>>,
    method: AvgMethod,
    period_ms: u64,
    ops: Vec<Op>,
}

fn ms() -> impl Strategy<Value = u64> {
    prop_oneof![
        3 => 0u64..50,
        2 => 0u64..20_000,
        1 => prop::sample::select(vec![
            0u64, 1, 4, 5, 6, 9, 10, 11, 99, 100, 101, 999, 1000, 1001, 5000, 10_000, 12_000,
            MS_MAX - 1, MS_MAX, MS_MAX + 1, 1 << 30,
        ]),
    ]
}

fn status() -> impl Strategy<Value = u64> {
    prop_oneof![
        3 => prop::sample::select(vec![200u64, 204, 301, 304, 404, 499, 500, 502, 504]),
        1 => prop::sample::select(vec![0u64, 1, 99, 100, 199, 599, 600, 700]),
        1 => 0u64..=700,
    ]
}

fn dt() -> impl Strategy<Value = u64> {
    prop_oneof![8 => 1u64..=3, 1 => 1u64..=1_000_000]
}

fn bytes() -> impl Strategy<Value = (u64, u64)> {
    (0u64..5000, 0u64..100_000)
}

fn op(flood: bool) -> BoxedStrategy<Op> {
    let request = (
        any::<usize>(),
        any::<usize>(),
        dt(),
        status(),
        bytes(),
        ms(),
        any::<u16>(),
        prop::bool::weighted(0.2),
    )
        .prop_map(
            |(who, server, dt, status, bytes, time_ms, code, ignored)| Op::Request {
                who,
                server,
                dt,
                status,
                bytes,
                time_ms,
                code,
                ignored,
            },
        );
    let how = prop_oneof![
        4 => Just(How::Serving),
        2 => Just(How::PassedOn),
        1 => any::<bool>().prop_map(|serving| How::Ignored { serving }),
    ];
    let attempt = (
        any::<usize>(),
        any::<usize>(),
        dt(),
        how,
        status(),
        bytes(),
        ms(),
        ms(),
    )
        .prop_map(|(who, peer, dt, how, status, bytes, time_ms, resp)| Op::Attempt {
            who,
            peer,
            dt,
            how,
            status,
            bytes,
            time_ms,
            resp,
        });
    let register = (any::<bool>(), any::<usize>()).prop_map(|(peer, idx)| Op::Register { peer, idx });
    let floods = (
        any::<usize>(),
        1usize..150,
        prop_oneof![0usize..16, 100usize..1500],
        any::<bool>(),
        prop::bool::weighted(0.7),
    )
        .prop_map(|(who, count, len, peer, record)| Op::Flood {
            who,
            count,
            len,
            peer,
            record,
        });
    if flood {
        prop_oneof![6 => request, 6 => attempt, 1 => register, 1 => floods, 1 => Just(Op::Check)].boxed()
    } else {
        prop_oneof![6 => request, 6 => attempt, 1 => register, 1 => Just(Op::Check)].boxed()
    }
}

fn bounds() -> impl Strategy<Value = Vec<u64>> {
    prop_oneof![
        1 => Just(vec![
            5_000u64, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000, 2_500_000, 5_000_000, 10_000_000,
        ]),
        1 => Just(vec![]),
        // Arbitrary ascending bounds in microseconds (not always whole milliseconds).
        2 => prop::collection::btree_set(0u64..12_000_000, 1..=16).prop_map(|s| s.into_iter().collect()),
        // Around the queue's saturation.
        1 => Just(vec![1_000, MS_MAX * 1000 - 1, MS_MAX * 1000, (MS_MAX + 1) * 1000]),
    ]
}

fn name() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        3 => prop::sample::select(vec!["example.com", "a", "", "_", "localhost"]).prop_map(|s| s.as_bytes().to_vec()),
        1 => prop::collection::vec(any::<u8>(), 0..12),
    ]
}

/// The smallest region of at least `len` bytes the geometry accepts for `spec` (not simply
/// `len` or more: a larger region has more keys and may need more tables).
fn valid_len(spec: SlotSpec, mut len: usize) -> usize {
    loop {
        match Geometry::new(len, spec) {
            Ok(_) => return len,
            Err(GeometryError::TooSmall { needed }) => len = needed.max(len + 1),
            Err(e) => panic!("geometry: {e:?}"),
        }
    }
}

fn min_len(spec: SlotSpec) -> usize {
    valid_len(spec, 0)
}

/// Bytes of a slot chunk of `spec` (the layout's).
fn chunk_bytes(spec: SlotSpec) -> usize {
    Geometry::new(min_len(spec), spec)
        .expect("the smallest region")
        .chunk_bytes
}

/// A region with room for `chunks` chunks beyond the fixed tables.
fn roomy_len(spec: SlotSpec, chunks: usize) -> usize {
    let want = chunks * chunk_bytes(spec) + 16 * 1024;
    let mut len = min_len(spec) + want;
    while Geometry::new(len, spec).map_or(true, |g| len - g.off_arena < want) {
        len += len / 8;
    }
    len
}

/// `tight`: a zone a little above the smallest, more workers and floods of names.
fn case(tight: bool) -> impl Strategy<Value = Case> {
    let ncodes = prop_oneof![3 => 0usize..=8, 1 => Just(501usize)];
    let owned = if tight { 1usize..=8 } else { 1usize..=4 };
    let ops = if tight { 1usize..150 } else { 1usize..250 };
    let names = || prop_oneof![1 => 1usize..=1, 2 => 1usize..=6];
    (
        (bounds(), ncodes, 0usize..=(3 * 80 * 1024), any::<u64>()),
        (
            1_000_000_000u64..=4_000_000_000,
            prop_oneof![Just(0u64), 0u64..1 << 36],
        ),
        (owned, prop::bool::weighted(0.15), any::<bool>()),
        names().prop_flat_map(|n| prop::collection::vec((name(), 0u32..4), n)),
        names().prop_flat_map(|n| {
            prop::collection::vec((name(), name()).prop_map(|(g, p)| upstream_key(&g, &p)), n)
        }),
        (
            prop_oneof![Just(AvgMethod::Amm), Just(AvgMethod::Wma)],
            prop_oneof![Just(0u64), 1u64..100_000],
        ),
        ops.prop_flat_map(move |n| prop::collection::vec(op(tight), n)),
    )
        .prop_map(
            move |(
                (bounds_us, ncodes, extra, seed),
                (created_unix, start),
                (owned, squat, shared),
                servers,
                peers,
                (method, period_ms),
                ops,
            )| {
                let spec = SlotSpec {
                    nbuckets: bounds_us.len(),
                    ncodes,
                    queue: true,
                };
                // Roomy: two chunks for each of up to five shards (3 + 6 + 2 x 6 keys < 32).
                let zone_len = if tight {
                    valid_len(spec, min_len(spec) + extra % (3 * chunk_bytes(spec)))
                } else {
                    roomy_len(spec, 12)
                };
                Case {
                    zone_len,
                    spec,
                    bounds_us,
                    seed,
                    created_unix,
                    start,
                    owned,
                    squat,
                    shared,
                    servers,
                    peers,
                    method,
                    period_ms,
                    ops,
                }
            },
        )
}

// ---------------------------------------------------------------------------------------------
// The zone and its writers, beside the model.

struct World {
    _region: HeapRegion,
    zone: Zone,
    lock: Mutex<()>,
    /// Each writer, with the shard the model expects it to write.
    writers: Vec<(ShardWriter, usize)>,
    bounds_us: Vec<u64>,
    ncodes: usize,
    epoch_ms: u64,
    /// queued_at of the latest sample.
    clock: u64,
    checks: usize,
    flood_seq: u64,
    /// Names refused and samples overflowed.
    overflows: u64,
    model: Model,
}

impl World {
    fn new(case: &Case) -> Result<World, TestCaseError> {
        let mut region = HeapRegion::new(case.zone_len);
        // SAFETY: the region is ours, 64-aligned, and outlives the zone (both live in World).
        let zone = unsafe {
            Zone::create(
                region.base(),
                case.zone_len,
                case.spec,
                case.seed,
                case.created_unix,
            )
        }
        .map_err(|e| TestCaseError::fail(format!("create: {e:?}")))?;
        let (used, size) = zone.usage();
        prop_assert_eq!(size, case.zone_len);
        let model = Model::new(
            &case.bounds_us,
            case.spec.ncodes,
            zone.geometry().max_keys,
            zone.geometry().chunk_bytes,
            used,
            size,
        );

        // Other processes holding every owned shard, then the workers: owned shard j for worker
        // j, or the shared shard when none is free.
        let mut live = HashSet::new();
        if case.squat {
            for i in 0..OWNED {
                let pid = 100 + i as i32;
                live.insert(pid);
                prop_assert_eq!(zone.claim(i, pid, |p| live.contains(&p)), Claim::Owned(i));
            }
        }
        let mut writers = Vec::new();
        for j in 0..case.owned {
            let pid = 1000 + j as i32;
            let claim = zone.claim(j, pid, |p| live.contains(&p));
            live.insert(pid);
            let want = if case.squat {
                (Claim::Shared, SHARED)
            } else {
                (Claim::Owned(j), j)
            };
            prop_assert_eq!(claim, want.0, "claim of worker {}", j);
            writers.push((zone.writer(claim), want.1));
        }
        if case.shared {
            writers.push((zone.writer(Claim::Shared), SHARED));
        }
        for (w, shard) in &writers {
            prop_assert_eq!(w.shard(), *shard);
        }
        Ok(World {
            _region: region,
            zone,
            lock: Mutex::new(()),
            writers,
            bounds_us: case.bounds_us.clone(),
            ncodes: case.spec.ncodes,
            epoch_ms: case.created_unix * 1000,
            clock: case.start,
            checks: 0,
            flood_seq: 0,
            overflows: 0,
            model,
        })
    }

    /// Advances the clock: the sample's queued_at and its unix ms.
    fn tick(&mut self, dt: u64) -> (u64, u64) {
        self.clock += dt;
        (self.clock, self.epoch_ms + self.clock - 1)
    }

    fn writer(&self, who: usize) -> (ShardWriter, usize) {
        let (w, shard) = self.writers[who % self.writers.len()];
        if shard == SHARED {
            bump(&COVERAGE.shared_writes);
        }
        (w, shard)
    }

    /// Resolves a key as the nginx layer does (the overflow entry when the zone refuses it).
    fn key(&mut self, kind: Kind, name: &[u8], tag: u32) -> Result<usize, TestCaseError> {
        let got = self.zone.key_tagged(&self.lock, kind, name, tag);
        let free_keys = self.model.max_keys - self.model.slots.len();
        let want = self.model.key(kind, name, tag);
        prop_assert_eq!(got, want, "key of {:?} {:?}", kind, String::from_utf8_lossy(name));
        match got {
            Some(k) => {
                if kind == Kind::UpstreamPeer && k % SLOTS_PER_CHUNK == SLOTS_PER_CHUNK - 1 {
                    bump(&COVERAGE.peer_across_chunks);
                }
                Ok(k)
            }
            None => {
                self.overflows += 1;
                let need = if kind == Kind::UpstreamPeer { 2 } else { 1 };
                bump(if free_keys < need {
                    &COVERAGE.refused_directory
                } else {
                    &COVERAGE.refused_arena
                });
                Ok(if kind == Kind::UpstreamPeer {
                    OVERFLOW_UPSTREAM
                } else {
                    OVERFLOW_SERVER
                })
            }
        }
    }

    /// Writes `s` for `key` and checks it went where the model says; returns the model's key
    /// index of where it went.
    fn write(
        &mut self,
        w: ShardWriter,
        shard: usize,
        key: usize,
        overflow: usize,
        s: &Sample,
    ) -> Result<(usize, Dest), TestCaseError> {
        // The nginx layer's vozlt path always observes the sample's own time (upstream=false).
        let r = w.record(&self.lock, key, overflow, false, s, &self.bounds_us);
        let (dest, how) = self.model.dest(shard, key, overflow);
        let want = match how {
            Dest::Own => Recorded::Ok,
            Dest::Overflow => Recorded::Overflow,
        };
        prop_assert_eq!(r, want, "record into shard {} key {}", shard, key);
        if how == Dest::Overflow {
            self.overflows += 1;
        }
        bump(&COVERAGE.samples);
        Ok((dest, how))
    }

    #[allow(clippy::too_many_arguments)]
    fn request(
        &mut self,
        who: usize,
        name: &[u8],
        tag: u32,
        dt: u64,
        status: u64,
        bytes: (u64, u64),
        time_ms: u64,
        code: u16,
        ignored: bool,
    ) -> Result<(), TestCaseError> {
        let key = self.key(Kind::Server, name, tag)?;
        let (queued_at, t) = self.tick(dt);
        let (w, shard) = self.writer(who);
        // Codes measured: the word of the status (`C` itself is past the end: counts nowhere).
        let code = (self.ncodes > 0).then(|| code % (self.ncodes as u16 + 1));
        let s = Sample {
            status: status.clamp(100, 599),
            bytes_in: bytes.0,
            bytes_out: bytes.1,
            time_ms,
            upstream_ms: None,
            what: if ignored { What::Seen } else { What::Full },
            queued_at,
            code,
        };
        let (dest, _) = self.write(w, shard, key, OVERFLOW_SERVER, &s)?;
        let bounds = self.bounds_us.clone();
        let m = self.model.part(dest, false);
        if ignored {
            m.seen(t);
            return Ok(());
        }
        m.full(status.clamp(100, 599), bytes, time_ms, t, &bounds);
        if let Some(c) = code {
            m.code(c as usize);
        }
        if time_ms > MS_MAX {
            bump(&COVERAGE.saturated);
        }
        self.model.total_requests += 1;
        self.model.total_bytes_in += bytes.0;
        self.model.server_queue.push((t, time_ms.min(MS_MAX)));
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn attempt(
        &mut self,
        who: usize,
        name: &[u8],
        dt: u64,
        how: How,
        status: u64,
        bytes: (u64, u64),
        time_ms: u64,
        resp: u64,
    ) -> Result<(), TestCaseError> {
        let key = self.key(Kind::UpstreamPeer, name, 0)?;
        let (queued_at, t) = self.tick(dt);
        let (w, shard) = self.writer(who);
        // As the nginx layer builds them: the serving attempt is the client's sample (status
        // clamped, codes not per peer), a passed-on one carries its own status (0 when nginx
        // got no response).
        let client = Sample {
            status: status.clamp(100, 599),
            bytes_in: bytes.0,
            bytes_out: bytes.1,
            time_ms,
            upstream_ms: Some(resp),
            what: What::Full,
            queued_at,
            code: None,
        };
        let passed = Sample {
            status: if (100..600).contains(&status) { status } else { 0 },
            upstream_ms: Some(resp),
            what: What::PassedOn,
            queued_at,
            ..Default::default()
        };
        let s = match how {
            How::Serving => client,
            How::PassedOn => passed,
            How::Ignored { serving: true } => Sample {
                what: What::ResponseOnly,
                ..client
            },
            How::Ignored { serving: false } => Sample {
                what: What::ResponseOnly,
                ..passed
            },
        };
        let (dest, main) = self.write(w, shard, key, OVERFLOW_UPSTREAM, &s)?;
        let bounds = self.bounds_us.clone();
        let m = self.model.part(dest, false);
        match how {
            How::Serving => {
                m.full(status.clamp(100, 599), bytes, time_ms, t, &bounds);
                m.upstream(resp);
            }
            How::PassedOn => {
                m.requests += 1;
                m.status[class_of(status)] += 1;
                m.upstream(resp);
                m.seen(t);
            }
            How::Ignored { .. } => {
                m.upstream(resp);
                m.seen(t);
            }
        }
        if matches!(how, How::Serving | How::PassedOn) {
            self.model.total_requests += 1;
        }
        if matches!(how, How::Serving) {
            self.model.total_bytes_in += bytes.0;
        }
        self.model.total_attempts += 1;

        // The response time, in the times slot after the peer's (the overflow's when it has no
        // room).
        let times = Sample {
            time_ms: resp,
            queued_at,
            ..Default::default()
        };
        let (dest, tm) = self.write(w, shard, key + 1, OVERFLOW_UPSTREAM + 1, &times)?;
        self.model.part(dest, true).full(0, (0, 0), resp, t, &bounds);
        match (main, tm) {
            (Dest::Overflow, _) => bump(&COVERAGE.main_overflow),
            (Dest::Own, Dest::Overflow) => bump(&COVERAGE.times_overflow_only),
            _ => {}
        }
        Ok(())
    }

    fn apply(&mut self, op: &Op, case: &Case) -> Result<(), TestCaseError> {
        match *op {
            Op::Request {
                who,
                server,
                dt,
                status,
                bytes,
                time_ms,
                code,
                ignored,
            } => {
                let (name, tag) = case.servers[server % case.servers.len()].clone();
                self.request(who, &name, tag, dt, status, bytes, time_ms, code, ignored)
            }
            Op::Attempt {
                who,
                peer,
                dt,
                how,
                status,
                bytes,
                time_ms,
                resp,
            } => {
                let name = case.peers[peer % case.peers.len()].clone();
                self.attempt(who, &name, dt, how, status, bytes, time_ms, resp)
            }
            Op::Register { peer, idx } => {
                if peer {
                    let name = case.peers[idx % case.peers.len()].clone();
                    self.key(Kind::UpstreamPeer, &name, 0).map(|_| ())
                } else {
                    let (name, tag) = case.servers[idx % case.servers.len()].clone();
                    self.key(Kind::Server, &name, tag).map(|_| ())
                }
            }
            Op::Flood {
                who,
                count,
                len,
                peer,
                record,
            } => {
                for i in 0..count {
                    self.flood_seq += 1;
                    let mut name = format!("flood-{}-", self.flood_seq).into_bytes();
                    name.resize(name.len() + len, b'x');
                    match (record, peer) {
                        (false, false) => _ = self.key(Kind::Server, &name, i as u32 % 3)?,
                        (false, true) => _ = self.key(Kind::UpstreamPeer, &upstream_key(b"g", &name), 0)?,
                        (true, false) => {
                            self.request(who.wrapping_add(i), &name, 1, 1, 200, (10, 100), 5, 0, false)?;
                        }
                        (true, true) => {
                            let name = upstream_key(b"g", &name);
                            self.attempt(who.wrapping_add(i), &name, 1, How::Serving, 200, (10, 100), 5, 3)?;
                        }
                    }
                }
                Ok(())
            }
            Op::Check => self.check(case),
        }
    }

    /// The merged snapshot against the model: every entry, exactly.
    fn check(&mut self, case: &Case) -> Result<(), TestCaseError> {
        bump(&COVERAGE.checks);
        // A scrape in slices or in one go: either must give the same sum.
        let budget = [usize::MAX, 1, 16, 100][self.checks % 4];
        self.checks += 1;
        let mut merge = self.zone.merge();
        while !merge.step(&self.zone, budget) {}
        let snap = merge.finish();
        let m = &self.model;

        prop_assert_eq!(snap.size_bytes, case.zone_len);
        prop_assert_eq!(
            snap.used_bytes,
            m.arena.bump,
            "used bytes differ from the model's arena"
        );
        prop_assert_eq!(snap.created_unix, case.created_unix);
        prop_assert_eq!(snap.max_keys, m.max_keys);

        prop_assert_eq!(snap.entries.len(), m.entries.len(), "number of entries");
        for (i, (e, x)) in snap.entries.iter().zip(&m.entries).enumerate() {
            prop_assert_eq!(e.kind, x.kind, "kind of entry {}", i);
            prop_assert!(e.name == x.name, "name of entry {}", i);
            prop_assert_eq!(e.tag, x.tag, "tag of entry {}", i);
            let want = x.counters();
            prop_assert_eq!(
                &e.counters,
                &want,
                "counters of entry {} ({:?} {:?})",
                i,
                e.kind,
                String::from_utf8_lossy(&e.name)
            );
            // Shown from its first sample of any kind (every sample here has a time).
            let any = x.main.seen > 0;
            prop_assert_eq!(e.counters.counted(), any, "counted() of entry {}", i);
            if x.main.queue.len() > SHOWN {
                bump(&COVERAGE.long_queues);
            }
            if x.times.as_ref().is_some_and(|t| t.queue.len() > SHOWN) {
                bump(&COVERAGE.long_response_queues);
            }
        }

        // Grand totals over every entry, overflow entries included: nothing is lost.
        let sum = |f: fn(&Counters) -> u64| snap.entries.iter().map(|e| f(&e.counters)).sum::<u64>();
        prop_assert_eq!(sum(|c| c.requests), m.total_requests, "total requests");
        prop_assert_eq!(sum(|c| c.upstream_count), m.total_attempts, "total attempts");
        prop_assert_eq!(sum(|c| c.bytes_in), m.total_bytes_in, "total bytes in");
        prop_assert_eq!(
            sum(|c| c.status.iter().sum()),
            m.total_requests,
            "status classes sum to the requests"
        );

        // The sum of the server zones: the newest samples of them all, and their averages.
        let view = View {
            snapshot: snap,
            ..View::default()
        };
        let total = view.server_sum();
        let want = newest(&m.server_queue);
        prop_assert_eq!(&total.queue, &want, "the server zones' merged queue");
        let now = self.epoch_ms + self.clock + 500;
        let got = average(&total.queue, case.method, case.period_ms, now);
        prop_assert_eq!(
            got,
            model_average(&want, case.method, case.period_ms, now),
            "average"
        );
        Ok(())
    }
}

/// `average` of the model's queue, from its definition: the samples newer than `now - period`
/// (all with period 0), arithmetic mean or weighted by position (oldest 1), truncated.
fn model_average(q: &[(u64, u64)], method: AvgMethod, period: u64, now: u64) -> u64 {
    let v: Vec<u128> = q
        .iter()
        .filter(|(t, _)| period == 0 || *t + period > now)
        .map(|&(_, ms)| ms as u128)
        .collect();
    let n = v.len() as u128;
    if n == 0 {
        return 0;
    }
    match method {
        AvgMethod::Amm => (v.iter().sum::<u128>() / n) as u64,
        AvgMethod::Wma => {
            let w: u128 = v.iter().zip(1u128..).map(|(ms, i)| ms * i).sum();
            (w / (n * (n + 1) / 2)) as u64
        }
    }
}

fn run_case(case: &Case, tight: bool) -> Result<(), TestCaseError> {
    let mut w = World::new(case)?;
    for op in &case.ops {
        w.apply(op, case)?;
    }
    w.check(case)?;
    if !tight {
        // The roomy zone is meant to hold everything: the property is about the keys' own.
        prop_assert_eq!(w.overflows, 0, "the roomy zone refused a name or a chunk");
    }
    Ok(())
}

fn cases() -> u32 {
    std::env::var("VTS_PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000)
}

fn run(tight: bool) {
    let config = Config {
        cases: cases(),
        // Failures are kept as explicit tests below, not in a regressions file.
        failure_persistence: None,
        ..Config::default()
    };
    let mut runner = TestRunner::new(config);
    let started = std::time::Instant::now();
    if let Err(e) = runner.run(&case(tight), |c| {
        bump(&COVERAGE.cases);
        run_case(&c, tight)
    }) {
        panic!("{e}");
    }
    eprintln!(
        "vozlt_model ({}): {:.1?}",
        if tight { "tight" } else { "roomy" },
        started.elapsed()
    );
}

/// Both properties in one test, so that the coverage counters see them both.
#[test]
fn merged_snapshot_matches_the_sequential_model() {
    run(false);
    run(true);
    let c = &COVERAGE;
    eprintln!(
        "vozlt_model: {} cases, {} samples, {} checks; {} shared-shard writes, {} keys with more than 63 \
         queued, {} with more than 63 response times, {} saturated durations, {} peers across chunks; \
         {} names refused by the directory, {} by the arena, {} peer samples overflowed, {} times samples \
         alone overflowed",
        get(&c.cases),
        get(&c.samples),
        get(&c.checks),
        get(&c.shared_writes),
        get(&c.long_queues),
        get(&c.long_response_queues),
        get(&c.saturated),
        get(&c.peer_across_chunks),
        get(&c.refused_directory),
        get(&c.refused_arena),
        get(&c.main_overflow),
        get(&c.times_overflow_only),
    );
    if cases() >= 1000 {
        for (what, n) in [
            ("a shared-shard write", get(&c.shared_writes)),
            ("a queue past 63", get(&c.long_queues)),
            ("a response queue past 63", get(&c.long_response_queues)),
            ("a saturated duration", get(&c.saturated)),
            ("a peer across two chunks", get(&c.peer_across_chunks)),
            ("a name refused by a full directory", get(&c.refused_directory)),
            ("a name refused by a full arena", get(&c.refused_arena)),
            ("an overflowed peer sample", get(&c.main_overflow)),
            ("a times sample overflowed alone", get(&c.times_overflow_only)),
        ] {
            assert!(n > 0, "no case reached {what}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Directed: 100 samples of one key from two shards; the merged queue is the last 63.

const E: u64 = 1_700_000_000;

/// Writes samples `0..100` (time `i`, at `7 i + 1` ms) of one server and one peer, sample `i`
/// by writer `pick(i)`; the queues must be samples 37..100 in time order.
fn two_shards(claims: [Claim; 2], pick: impl Fn(u64) -> usize) {
    let spec = SlotSpec {
        nbuckets: 0,
        ncodes: 0,
        queue: true,
    };
    let len = roomy_len(spec, 8);
    let mut region = HeapRegion::new(len);
    let lock = Mutex::new(());
    // SAFETY: the region is ours, 64-aligned, and outlives the zone.
    let zone = unsafe { Zone::create(region.base(), len, spec, 1, E) }.unwrap();
    let writers = claims.map(|c| zone.writer(c));
    let server = zone.key(&lock, Kind::Server, b"a").unwrap();
    let peer = zone
        .key(&lock, Kind::UpstreamPeer, &upstream_key(b"g", b"p"))
        .unwrap();
    for i in 0..100u64 {
        let w = writers[pick(i)];
        let queued_at = 7 * i + 1;
        let s = Sample {
            status: 200,
            time_ms: i,
            queued_at,
            ..Default::default()
        };
        assert_eq!(
            w.record(&lock, server, OVERFLOW_SERVER, false, &s, &[]),
            Recorded::Ok
        );
        let s = Sample {
            upstream_ms: Some(1000 + i),
            ..s
        };
        assert_eq!(
            w.record(&lock, peer, OVERFLOW_UPSTREAM, false, &s, &[]),
            Recorded::Ok
        );
        let times = Sample {
            time_ms: 1000 + i,
            queued_at,
            ..Default::default()
        };
        assert_eq!(
            w.record(&lock, peer + 1, OVERFLOW_UPSTREAM + 1, false, &times, &[]),
            Recorded::Ok
        );
    }
    let snap: Snapshot = zone.snapshot();
    let at = |i: u64| E * 1000 + 7 * i;
    let want: Vec<(u64, u64)> = (37..100).map(|i| (at(i), i)).collect();
    let response: Vec<(u64, u64)> = (37..100).map(|i| (at(i), 1000 + i)).collect();
    let find = |kind: Kind| snap.entries.iter().find(|e| e.kind == kind).unwrap();
    let (s, p) = (&find(Kind::Server).counters, &find(Kind::UpstreamPeer).counters);
    assert_eq!(s.queue, want, "server queue");
    assert_eq!(s.requests, 100);
    assert_eq!(s.seen_ms, at(99));
    assert_eq!(p.queue, want, "peer queue");
    assert_eq!(p.response_queue, response, "peer response queue");
    assert_eq!((p.requests, p.upstream_count, p.seen_ms), (100, 100, at(99)));
    assert!(snap.entries.iter().all(|e| e.kind != Kind::PeerTimes));
}

#[test]
fn alternating_owned_shards_keep_the_newest_63() {
    two_shards([Claim::Owned(0), Claim::Owned(1)], |i| (i % 2) as usize);
}

#[test]
fn alternating_owned_and_shared_shards_keep_the_newest_63() {
    two_shards([Claim::Owned(5), Claim::Shared], |i| (i % 2) as usize);
}

#[test]
fn runs_from_two_shards_keep_the_newest_63() {
    // 70 from one shard (its ring keeps 7..70), then 30 from the other: 37..70 and 70..100.
    two_shards([Claim::Owned(0), Claim::Owned(1)], |i| usize::from(i >= 70));
    // Uneven interleaving: the newest are mostly the second shard's.
    two_shards([Claim::Owned(2), Claim::Shared], |i| usize::from(i % 5 != 0));
}
