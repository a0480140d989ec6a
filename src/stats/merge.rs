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
}

impl Counters {
    pub fn new(nbuckets: usize) -> Counters {
        Counters {
            buckets: vec![0; nbuckets],
            ..Default::default()
        }
    }

    fn add_slot(&mut self, slot: &[AtomicU64]) {
        if slot[word::REQUESTS].load(Relaxed) == 0 {
            return;
        }
        // The writer bumps the counts first and the other fields after (Release); read the
        // fields first (Acquire) and the counts last, so the counts cover every sample any
        // field read here includes (see shard::add_owned).
        let w = |i: usize| slot[i].load(Acquire);
        self.bytes_in += w(word::BYTES_IN);
        self.bytes_out += w(word::BYTES_OUT);
        for (c, st) in self.status.iter_mut().enumerate() {
            *st += w(word::STATUS + c);
        }
        self.time_sum_ms += w(word::TIME_SUM);
        // Stored as min + 1; 0 while the slot's first sample is being written.
        if let Some(m) = w(word::TIME_MIN).checked_sub(1) {
            self.time_min_ms = Some(self.time_min_ms.map_or(m, |cur| cur.min(m)));
        }
        self.time_max_ms = self.time_max_ms.max(w(word::TIME_MAX));
        for (b, total) in self.buckets.iter_mut().enumerate() {
            *total += w(word::BUCKETS + b);
        }
        self.upstream_sum_ms += w(word::UPSTREAM_SUM);
        self.upstream_count += w(word::UPSTREAM_COUNT);
        self.requests += w(word::REQUESTS);
    }
}

/// One key and its totals.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub kind: Kind,
    pub name: Vec<u8>,
    pub counters: Counters,
}

/// Everything a renderer needs from the zone.
#[derive(Clone, Debug, PartialEq, Eq)]
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

impl Zone {
    /// Sums all shards. Takes no lock; costs keys x shards-with-that-chunk additions.
    pub fn snapshot(&self) -> Snapshot {
        let geo = *self.geometry();
        let mut entries: Vec<Entry> = self
            .keys()
            .map(|(_, kind, name)| Entry {
                kind,
                name: name.to_vec(),
                counters: Counters::new(geo.nbuckets),
            })
            .collect();
        // Only the chunks that can hold a published key: the table is sized for the zone.
        let chunks = entries.len().div_ceil(SLOTS_PER_CHUNK);
        for shard in 0..SHARDS {
            for (c, chunk) in self.chunk_table(shard).iter().take(chunks).enumerate() {
                if chunk.load(Acquire) == 0 {
                    continue;
                }
                let first = c * SLOTS_PER_CHUNK;
                for key in first..(first + SLOTS_PER_CHUNK).min(entries.len()) {
                    if let Some(slot) = self.slot(shard, key) {
                        entries[key].counters.add_slot(slot);
                    }
                }
            }
        }
        let (used_bytes, size_bytes) = self.usage();
        Snapshot {
            entries,
            used_bytes,
            size_bytes,
            max_keys: geo.max_keys,
            created_unix: self.header().created.load(Relaxed),
            owned_shards: (0..OWNED_SHARDS).filter(|&i| self.owner_of(i) != 0).count(),
        }
    }
}
