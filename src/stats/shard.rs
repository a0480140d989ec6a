//! Shard ownership and the request path's write.
//!
//! Each owned shard has one writer at a time: the process whose pid is in its head. A process
//! claims a shard with a compare-and-swap (at start, never per request) when it is free or its
//! owner is dead, and gives it back when it exits. The counts in a shard stay when its owner
//! changes: the next owner adds to them. A process that finds no owned shard free writes the
//! shared shard, with atomic adds.
use core::sync::atomic::{AtomicU64, Ordering::*};

use super::layout::*;
use super::sample::{status_class, Sample, What};
use super::zone::{Zone, ZoneLock};

/// Which shard a process writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Claim {
    Owned(usize),
    /// No owned shard was free: atomic adds into the shared shard.
    Shared,
}

impl Zone {
    /// Claims a shard for `pid`, trying `preferred` (the worker's index) first. `alive` tells
    /// whether a recorded owner still runs (`kill(pid, 0)` in nginx).
    pub fn claim(&self, preferred: usize, pid: i32, alive: impl Fn(i32) -> bool) -> Claim {
        let order = core::iter::once(preferred % OWNED_SHARDS).chain(0..OWNED_SHARDS);
        for i in order {
            let cell = self.owner_cell(i);
            let cur = cell.load(Acquire);
            if cur == pid {
                return Claim::Owned(i);
            }
            if (cur == 0 || !alive(cur)) && cell.compare_exchange(cur, pid, AcqRel, Acquire).is_ok() {
                self.shard(i).claims.fetch_add(1, Relaxed);
                return Claim::Owned(i);
            }
        }
        Claim::Shared
    }

    /// Gives a shard back (at process exit). Only its owner's release takes effect.
    pub fn release(&self, claim: Claim, pid: i32) {
        if let Claim::Owned(i) = claim {
            let _ = self.owner_cell(i).compare_exchange(pid, 0, AcqRel, Relaxed);
        }
    }

    pub fn writer(&self, claim: Claim) -> ShardWriter {
        match claim {
            Claim::Owned(i) => ShardWriter {
                zone: *self,
                shard: i,
                shared: false,
            },
            Claim::Shared => ShardWriter {
                zone: *self,
                shard: SHARED_SHARD,
                shared: true,
            },
        }
    }
}

/// What happened to a sample.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Recorded {
    /// In the key's own slot.
    Ok,
    /// The zone had no room for the key's chunk: counted in the overflow entry instead.
    Overflow,
}

/// The write handle of one process on its shard.
#[derive(Clone, Copy, Debug)]
pub struct ShardWriter {
    zone: Zone,
    shard: usize,
    shared: bool,
}

impl ShardWriter {
    pub fn shard(&self) -> usize {
        self.shard
    }

    pub fn is_shared(&self) -> bool {
        self.shared
    }

    /// Adds one sample to `key`. If the key's chunk cannot be allocated, the sample goes to the
    /// `overflow` key in the shared shard (whose chunk exists from zone creation), so totals
    /// stay exact. `bounds_us` are the histogram's upper bounds in microseconds; `upstream` selects what the
    /// histogram observes.
    // Always inlined: the request path's one call site per kind of key stays one function, and
    // tests/request_path.rs finds the owner's plain adds in it.
    #[inline(always)]
    pub fn record<L: ZoneLock>(
        &self,
        lock: &L,
        key: usize,
        overflow: usize,
        upstream: bool,
        s: &Sample,
        bounds_us: &[u64],
    ) -> Recorded {
        let z = &self.zone;
        match z
            .slot(self.shard, key)
            .or_else(|| z.chunk_or_grow(lock, self.shard, key))
        {
            Some(slot) => {
                if self.shared {
                    add_shared(slot, s, upstream, bounds_us, &z.geometry().spec);
                } else {
                    add_owned(slot, s, upstream, bounds_us, &z.geometry().spec);
                }
                Recorded::Ok
            }
            None => {
                if let Some(slot) = z.slot(SHARED_SHARD, overflow) {
                    add_shared(slot, s, upstream, bounds_us, &z.geometry().spec);
                }
                Recorded::Overflow
            }
        }
    }
}

/// The bucket of an observation of `v_ms` milliseconds, given upper bounds in microseconds.
#[inline]
fn bucket(v_ms: u64, bounds_us: &[u64]) -> usize {
    let v = v_ms.saturating_mul(1000);
    // Bounds are few (<= MAX_BUCKETS) and ascending: a linear scan beats a binary search here.
    bounds_us.iter().position(|&b| v <= b).unwrap_or(bounds_us.len())
}

/// The owner's add: a relaxed load and a store per counter, no read-modify-write (plain moves
/// on x86-64). Sound because no other process writes this shard (see module docs).
///
/// Order: the counts (requests, then upstream observations) first, every other field after,
/// with Release; the scrape reads in the opposite order with Acquire (see `merge`). So a scrape
/// never sees a field that includes a sample its counts do not: a histogram's buckets never
/// exceed its `+Inf`, the status classes never sum above the requests.
#[inline(always)]
fn add_owned(slot: &[AtomicU64], s: &Sample, upstream: bool, bounds: &[u64], spec: &SlotSpec) {
    #[inline(always)]
    fn inc(a: &AtomicU64, d: u64) {
        a.store(a.load(Relaxed).wrapping_add(d), Release);
    }
    let queue = if s.queued_at != 0 && spec.queue {
        slot.get(spec.queue_at()..spec.queue_at() + QUEUE_WORDS)
    } else {
        None
    };
    // A counted request's time is in the queue; the seen word is for the others.
    if let Some(q) = queue.filter(|_| s.what != What::Full) {
        q[QUEUE_SEEN].store(s.queued_at, Relaxed);
    }
    if matches!(s.what, What::Full | What::PassedOn) {
        let requests = slot[word::REQUESTS].load(Relaxed);
        slot[word::REQUESTS].store(requests.wrapping_add(1), Relaxed);
    }
    if let Some(u) = s.upstream_ms {
        inc(&slot[word::UPSTREAM_COUNT], 1);
        inc(&slot[word::UPSTREAM_SUM], u);
    }
    match s.what {
        What::Full => {}
        What::PassedOn => return inc(&slot[word::STATUS + status_class(s.status)], 1),
        What::ResponseOnly | What::Seen => return,
    }
    if let Some(c) = s.code {
        if let Some(w) = slot
            .get(spec.codes_at() + c as usize)
            .filter(|_| (c as usize) < spec.ncodes)
        {
            inc(w, 1);
        }
    }
    if let Some(q) = queue {
        // The ring entry first, the count after: a scrape reads the count (Acquire) and then
        // at most that many entries, each complete (one word).
        let n = q[QUEUE_COUNT].load(Relaxed);
        q[QUEUE_FIRST + ring_index(n)].store(queue_entry(s), Release);
        q[QUEUE_COUNT].store(n.wrapping_add(1), Release);
    }
    inc(&slot[word::BYTES_IN], s.bytes_in);
    inc(&slot[word::BYTES_OUT], s.bytes_out);
    inc(&slot[word::STATUS + status_class(s.status)], 1);
    inc(&slot[word::TIME_SUM], s.time_ms);
    // TIME_MIN holds min + 1, so that 0 means "no sample yet" to a scrape that runs between
    // the count's store and this one.
    let min1 = s.time_ms.saturating_add(1);
    let cur = slot[word::TIME_MIN].load(Relaxed);
    if cur == 0 || min1 < cur {
        slot[word::TIME_MIN].store(min1, Release);
    }
    if s.time_ms > slot[word::TIME_MAX].load(Relaxed) {
        slot[word::TIME_MAX].store(s.time_ms, Release);
    }
    if let Some(v) = s.observed_ms(upstream) {
        // The +Inf bucket is not stored: it is the observation count.
        let b = bucket(v, bounds);
        if b < bounds.len() {
            if let Some(w) = slot.get(word::BUCKETS + b) {
                inc(w, 1);
            }
        }
    }
}

/// The ring entry of the `n`-th push.
#[inline(always)]
fn ring_index(n: u64) -> usize {
    (n as usize) & (QUEUE_RING - 1)
}

/// A time queue entry: when (milliseconds since the zone was created, plus one) and how long.
#[inline]
pub fn queue_entry(s: &Sample) -> u64 {
    (s.queued_at << QUEUE_MS_BITS) | s.time_ms.min(QUEUE_MS_MAX)
}

/// The shared shard's add: atomic read-modify-writes, since several processes write it; the
/// same order as the owner's add.
fn add_shared(slot: &[AtomicU64], s: &Sample, upstream: bool, bounds: &[u64], spec: &SlotSpec) {
    let queue = if s.queued_at != 0 && spec.queue {
        slot.get(spec.queue_at()..spec.queue_at() + QUEUE_WORDS)
    } else {
        None
    };
    if let Some(q) = queue.filter(|_| s.what != What::Full) {
        q[QUEUE_SEEN].fetch_max(s.queued_at, Relaxed);
    }
    if matches!(s.what, What::Full | What::PassedOn) {
        slot[word::REQUESTS].fetch_add(1, Relaxed);
    }
    if let Some(u) = s.upstream_ms {
        slot[word::UPSTREAM_COUNT].fetch_add(1, Release);
        slot[word::UPSTREAM_SUM].fetch_add(u, Release);
    }
    match s.what {
        What::Full => {}
        What::PassedOn => {
            slot[word::STATUS + status_class(s.status)].fetch_add(1, Release);
            return;
        }
        What::ResponseOnly | What::Seen => return,
    }
    if let Some(c) = s.code {
        if let Some(w) = slot
            .get(spec.codes_at() + c as usize)
            .filter(|_| (c as usize) < spec.ncodes)
        {
            w.fetch_add(1, Release);
        }
    }
    if let Some(q) = queue {
        // Writers race here: each takes its own ring entry by the count's old value.
        let n = q[QUEUE_COUNT].fetch_add(1, AcqRel);
        q[QUEUE_FIRST + ring_index(n)].store(queue_entry(s), Release);
    }
    slot[word::BYTES_IN].fetch_add(s.bytes_in, Release);
    slot[word::BYTES_OUT].fetch_add(s.bytes_out, Release);
    slot[word::STATUS + status_class(s.status)].fetch_add(1, Release);
    slot[word::TIME_SUM].fetch_add(s.time_ms, Release);
    // TIME_MIN holds min + 1 (0: no sample yet), as in the owner's add.
    let min1 = s.time_ms.saturating_add(1);
    slot[word::TIME_MIN]
        .fetch_update(Release, Relaxed, |m| (m == 0 || min1 < m).then_some(min1))
        .ok();
    slot[word::TIME_MAX].fetch_max(s.time_ms, Release);
    if let Some(v) = s.observed_ms(upstream) {
        let b = bucket(v, bounds);
        if b < bounds.len() {
            if let Some(w) = slot.get(word::BUCKETS + b) {
                w.fetch_add(1, Release);
            }
        }
    }
}
