//! The scrape: fold every shard into one set of totals per key (the percpu_counter idea).
use core::sync::atomic::{AtomicU64, Ordering::*};

use super::directory::Kind;
use super::layout::*;
use super::sample::STATUS_CLASSES;
use super::zone::Zone;

/// The merged counters of one key.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    pub requests: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// 1xx, 2xx, 3xx, 4xx, 5xx, other.
    pub status: [u64; STATUS_CLASSES],
    pub time_sum_ms: u64,
    /// Smallest and largest time; `None` before the first sample.
    pub time_min_ms: Option<u64>,
    pub time_max_ms: u64,
    pub upstream_sum_ms: u64,
    pub upstream_count: u64,
    /// Per-bucket (not cumulative) counts of the histogram's finite buckets.
    pub buckets: Vec<u64>,
    /// Per status code (`vhost_traffic_status_measure_status_codes`): `[other, code...]` in the
    /// order of [`crate::view::StatusCodes`]; empty when not measured.
    pub codes: Vec<u64>,
    /// The newest samples `(unix ms, request ms)`, oldest first, at most
    /// [`crate::view::QUEUE_LEN`]; empty when the zone keeps no time queues.
    pub queue: Vec<(u64, u64)>,
    /// Upstream peers in a zone with time queues: the upstream response times' queue and
    /// histogram (`upstream_sum_ms` is their sum).
    pub response_queue: Vec<(u64, u64)>,
    pub response_buckets: Vec<u64>,
    /// Unix milliseconds of the key's last sample, ignored ones too (0: never, or the zone
    /// keeps no time queues): the newer of the slot's seen word (samples that are not
    /// requests counted in full) and its newest queue entry.
    pub seen_ms: u64,
}

impl Counters {
    pub fn new(nbuckets: usize) -> Counters {
        Counters {
            buckets: vec![0; nbuckets],
            ..Default::default()
        }
    }

    /// Whether the key saw a sample (nginx-module-vts shows a key from its first one; a
    /// configured key exists from the worker's start).
    pub fn counted(&self) -> bool {
        self.requests > 0 || self.upstream_count > 0 || self.seen_ms > 0
    }

    /// Adds another key's totals (the sum entry): every counter, the status codes slot by
    /// slot and the buckets bound by bound; queues are not touched (see `view::merge_queues`).
    pub fn add(&mut self, o: &Counters) {
        self.requests = self.requests.wrapping_add(o.requests);
        self.bytes_in = self.bytes_in.wrapping_add(o.bytes_in);
        self.bytes_out = self.bytes_out.wrapping_add(o.bytes_out);
        for (a, b) in self.status.iter_mut().zip(o.status) {
            *a = a.wrapping_add(b);
        }
        self.time_sum_ms = self.time_sum_ms.wrapping_add(o.time_sum_ms);
        self.time_min_ms = match (self.time_min_ms, o.time_min_ms) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.time_max_ms = self.time_max_ms.max(o.time_max_ms);
        self.upstream_sum_ms = self.upstream_sum_ms.wrapping_add(o.upstream_sum_ms);
        self.upstream_count = self.upstream_count.wrapping_add(o.upstream_count);
        add_words(&mut self.buckets, &o.buckets);
        add_words(&mut self.codes, &o.codes);
        add_words(&mut self.response_buckets, &o.response_buckets);
    }

    /// Counters of a key in a zone whose slots hold what `spec` says.
    pub fn for_spec(spec: &SlotSpec) -> Counters {
        Counters {
            buckets: vec![0; spec.nbuckets],
            codes: vec![0; spec.ncodes],
            ..Default::default()
        }
    }

    /// Adds one shard's slot. `epoch_ms`: unix milliseconds of the zone's creation, which the
    /// queue's times count from.
    fn add_slot(&mut self, slot: &[AtomicU64], spec: &SlotSpec, epoch_ms: u64) {
        let queue = if spec.queue {
            slot.get(spec.queue_at()..spec.queue_at() + QUEUE_WORDS)
        } else {
            None
        };
        if let Some(seen) = queue.map(|q| q[QUEUE_SEEN].load(Relaxed)).filter(|&s| s != 0) {
            self.seen_ms = self.seen_ms.max(epoch_ms + seen - 1);
        }
        if slot[word::REQUESTS].load(Relaxed) == 0 && slot[word::UPSTREAM_COUNT].load(Relaxed) == 0 {
            return;
        }
        if let Some(q) = queue {
            {
                let n = q[QUEUE_COUNT].load(Acquire) as usize;
                for e in &q[QUEUE_FIRST..QUEUE_FIRST + n.min(QUEUE_RING)] {
                    let e = e.load(Acquire);
                    let at = e >> QUEUE_MS_BITS;
                    if at != 0 {
                        let t = epoch_ms + at - 1;
                        self.seen_ms = self.seen_ms.max(t);
                        self.queue.push((t, e & QUEUE_MS_MAX));
                    }
                }
            }
        }
        if let Some(codes) = slot.get(spec.codes_at()..spec.codes_at() + spec.ncodes) {
            for (total, w) in self.codes.iter_mut().zip(codes) {
                *total = total.wrapping_add(w.load(Acquire));
            }
        }
        // The writer bumps the counts first and the other fields after (Release); read the
        // fields first (Acquire) and the counts last, so the counts cover every sample any
        // field read here includes (see shard::add_owned).
        let w = |i: usize| slot[i].load(Acquire);
        self.bytes_in = self.bytes_in.wrapping_add(w(word::BYTES_IN));
        self.bytes_out = self.bytes_out.wrapping_add(w(word::BYTES_OUT));
        for (c, st) in self.status.iter_mut().enumerate() {
            *st = st.wrapping_add(w(word::STATUS + c));
        }
        self.time_sum_ms = self.time_sum_ms.wrapping_add(w(word::TIME_SUM));
        // Stored as min + 1; 0 while the slot's first sample is being written.
        if let Some(m) = w(word::TIME_MIN).checked_sub(1) {
            self.time_min_ms = Some(self.time_min_ms.map_or(m, |cur| cur.min(m)));
        }
        self.time_max_ms = self.time_max_ms.max(w(word::TIME_MAX));
        for (b, total) in self.buckets.iter_mut().enumerate() {
            *total = total.wrapping_add(w(word::BUCKETS + b));
        }
        self.upstream_sum_ms = self.upstream_sum_ms.wrapping_add(w(word::UPSTREAM_SUM));
        self.upstream_count = self.upstream_count.wrapping_add(w(word::UPSTREAM_COUNT));
        self.requests = self.requests.wrapping_add(w(word::REQUESTS));
    }

    /// The newest samples of the shards' queues, oldest first (each shard's ring is in the
    /// order it was written, not oldest first; the shards interleave).
    fn settle_queue(&mut self) {
        let q = &mut self.queue;
        q.sort_by_key(|&(t, _)| t);
        let skip = q.len().saturating_sub(QUEUE_SHOWN);
        q.drain(..skip);
    }
}

/// `a += b` word by word, `a` growing to `b`'s length.
fn add_words(a: &mut Vec<u64>, b: &[u64]) {
    if a.len() < b.len() {
        a.resize(b.len(), 0);
    }
    for (x, y) in a.iter_mut().zip(b) {
        *x = x.wrapping_add(*y);
    }
}

/// One key and its totals.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Entry {
    pub kind: Kind,
    pub name: Vec<u8>,
    pub counters: Counters,
    /// The tag the key was registered with (its histogram bounds' list, see
    /// [`crate::view::Display::bucket_lists_ms`]).
    pub tag: u32,
}

/// Everything a renderer needs from the zone.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// In registration order.
    pub entries: Vec<Entry>,
    pub used_bytes: usize,
    pub size_bytes: usize,
    pub max_keys: usize,
    pub created_unix: u64,
    /// Owned shards that have an owner now.
    pub owned_shards: usize,
}

/// A sum of all shards taken in steps, a few chunks at a time, so that a scrape of many keys
/// written by many workers never holds its worker for long. The keys and the zone's usage are
/// those of the moment it was started; each key's counters are summed in one step.
pub struct Merge {
    snapshot: Snapshot,
    /// The next chunk index to add, over every shard.
    next_chunk: usize,
    /// Chunks that can hold one of the snapshot's keys.
    chunks: usize,
}

impl Merge {
    /// Adds the slots of whole chunk indexes (that chunk of every shard that has it) until at
    /// least `max_slots` slots were added or every chunk was; true once the sum is complete.
    /// `zone` must be the zone the merge was started on.
    pub fn step(&mut self, zone: &Zone, max_slots: usize) -> bool {
        let entries = &mut self.snapshot.entries;
        let spec = zone.geometry().spec;
        let epoch_ms = self.snapshot.created_unix.saturating_mul(1000);
        let mut added = 0usize;
        while self.next_chunk < self.chunks {
            let c = self.next_chunk;
            let first = c * SLOTS_PER_CHUNK;
            let keys = first..(first + SLOTS_PER_CHUNK).min(entries.len());
            for shard in 0..SHARDS {
                if zone.chunk_table(shard)[c].load(Acquire) == 0 {
                    continue;
                }
                for key in keys.clone() {
                    if let Some(slot) = zone.slot(shard, key) {
                        entries[key].counters.add_slot(slot, &spec, epoch_ms);
                    }
                }
                added += keys.len();
            }
            self.next_chunk += 1;
            if added >= max_slots {
                break;
            }
        }
        self.next_chunk == self.chunks
    }

    /// The sum, once [`Merge::step`] returned true. A peer's response times (its
    /// [`Kind::PeerTimes`] slot) are folded into the peer's own entry.
    pub fn finish(self) -> Snapshot {
        debug_assert_eq!(
            self.next_chunk, self.chunks,
            "finish before the merge is complete"
        );
        let mut snapshot = self.snapshot;
        let mut out: Vec<Entry> = Vec::with_capacity(snapshot.entries.len());
        for mut e in snapshot.entries.drain(..) {
            e.counters.settle_queue();
            if e.kind == Kind::PeerTimes {
                if let Some(peer) = out.last_mut().filter(|p| p.name == e.name) {
                    peer.counters.response_queue = e.counters.queue;
                    peer.counters.response_buckets = e.counters.buckets;
                }
                continue;
            }
            out.push(e);
        }
        snapshot.entries = out;
        snapshot
    }
}

impl Zone {
    /// Sums all shards. Takes no lock; costs keys x shards-with-that-chunk additions.
    pub fn snapshot(&self) -> Snapshot {
        let mut m = self.merge();
        while !m.step(self, usize::MAX) {}
        m.finish()
    }

    /// Starts a sum of all shards, to be taken in steps ([`Merge::step`]).
    pub fn merge(&self) -> Merge {
        let geo = *self.geometry();
        let entries: Vec<Entry> = self
            .keys()
            .map(|(key, kind, name)| Entry {
                kind,
                name: name.to_vec(),
                counters: Counters::for_spec(&geo.spec),
                tag: self.tag_of(key),
            })
            .collect();
        // Only the chunks that can hold a published key: the table is sized for the zone.
        let chunks = entries.len().div_ceil(SLOTS_PER_CHUNK).min(geo.max_chunks);
        let (used_bytes, size_bytes) = self.usage();
        Merge {
            snapshot: Snapshot {
                entries,
                used_bytes,
                size_bytes,
                max_keys: geo.max_keys,
                created_unix: self.header().created.load(Relaxed),
                owned_shards: (0..OWNED_SHARDS).filter(|&i| self.owner_of(i) != 0).count(),
            },
            next_chunk: 0,
            chunks,
        }
    }
}
