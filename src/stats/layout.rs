//! The shared-memory layout: what lives where in the zone, and how big it is.
//!
//! Everything is addressed by byte offset from the region's base, so the same code runs on a
//! nginx shared-memory zone (mapped at one address in every worker) and on an ordinary heap
//! buffer in the tests and benches. The region is carved up once, at zone creation:
//!
//! ```text
//! Header | ShardHead x SHARDS | chunk tables (SHARDS x max_chunks x u32)
//!        | KeyEntry x max_keys | hash index (table_cap x u32) | arena (names, slot chunks)
//! ```
//!
//! A *slot* is the counter block of one key in one shard; slots come in chunks of
//! `SLOTS_PER_CHUNK`, allocated from the arena the first time a shard writes a key of that chunk.
use core::mem::{align_of, size_of};
use core::sync::atomic::{AtomicI32, AtomicU32, AtomicU64};

use static_assertions::{const_assert, const_assert_eq};

use super::sample::STATUS_CLASSES;

pub const CACHE_LINE: usize = 64;
/// Shards written by one owner each (plain load + store).
pub const OWNED_SHARDS: usize = 64;
/// The extra shard for workers that found no free owned shard: written with atomic adds.
pub const SHARED_SHARD: usize = OWNED_SHARDS;
pub const SHARDS: usize = OWNED_SHARDS + 1;
pub const SLOTS_PER_CHUNK: usize = 16;
/// Zone bytes budgeted per directory entry: `max_keys = size / BYTES_PER_KEY`.
pub const BYTES_PER_KEY: usize = 512;
/// Histogram buckets a slot can hold (the `+Inf` bucket is implicit).
pub const MAX_BUCKETS: usize = 64;
pub const MAGIC: u64 = u64::from_le_bytes(*b"ngxvts01");

/// Slot words (u64 counters) before the histogram buckets.
pub mod word {
    pub const REQUESTS: usize = 0;
    pub const BYTES_IN: usize = 1;
    pub const BYTES_OUT: usize = 2;
    /// `STATUS_CLASSES` words: 1xx, 2xx, 3xx, 4xx, 5xx, other.
    pub const STATUS: usize = 3;
    pub const TIME_SUM: usize = STATUS + super::STATUS_CLASSES;
    /// The smallest time plus one; 0 before the first sample.
    pub const TIME_MIN: usize = TIME_SUM + 1;
    pub const TIME_MAX: usize = TIME_SUM + 2;
    pub const UPSTREAM_SUM: usize = TIME_SUM + 3;
    pub const UPSTREAM_COUNT: usize = TIME_SUM + 4;
    /// First histogram bucket (non-cumulative counts, one per configured bound).
    pub const BUCKETS: usize = TIME_SUM + 5;
}
const_assert_eq!(word::BUCKETS, 14);
const_assert!(STATUS_CLASSES == 6);

/// Zone header: the first cache line of the region.
#[repr(C, align(64))]
pub struct Header {
    pub magic: AtomicU64,
    /// Hash of the geometry and bucket count: a zone is reused only by a configuration that
    /// lays it out the same way.
    pub signature: AtomicU64,
    /// Next free arena byte (offset from base). Changed only under the registration lock.
    pub bump: AtomicU64,
    /// Published directory entries; entries `< key_count` are complete.
    pub key_count: AtomicU32,
    /// One-shot warnings already logged (see `flag`).
    pub flags: AtomicU32,
    /// Seed of the key hash, chosen at creation so that names cannot be picked to collide.
    pub seed: AtomicU64,
    /// Unix time the zone was created: counters start from zero then.
    pub created: AtomicU64,
    /// Configuration loads that attached to this zone (1 = the first).
    pub generation: AtomicU64,
    /// Scrapes rendered by any worker: a worker's cached scrape is served only while no other
    /// render happened since (so that scrapes never go back in time).
    pub renders: AtomicU64,
}
const_assert_eq!(size_of::<Header>(), CACHE_LINE);
const_assert_eq!(align_of::<Header>(), CACHE_LINE);

pub mod flag {
    pub const KEYS_FULL: u32 = 1;
    pub const ARENA_FULL: u32 = 2;
    pub const SHARED_SHARD: u32 = 4;
}

/// Who writes a shard: a pid, or 0 when free. One cache line each so that claims never share
/// a line with another shard's.
#[repr(C, align(64))]
pub struct ShardHead {
    pub owner: AtomicI32,
    _pad: u32,
    /// Times the shard was claimed (diagnostics: a restart or a reload shows here).
    pub claims: AtomicU64,
}
const_assert_eq!(size_of::<ShardHead>(), CACHE_LINE);

/// A directory entry. Written once under the registration lock, before it is published.
#[repr(C)]
pub struct KeyEntry {
    pub hash: AtomicU64,
    pub name_off: AtomicU32,
    pub name_len: AtomicU32,
    pub kind: AtomicU32,
    /// A number the configuration gives the key when it registers it (which histogram bounds
    /// it shows); not part of its identity.
    pub tag: AtomicU32,
}
const_assert_eq!(size_of::<KeyEntry>(), 24);

/// Words a time queue takes in a slot: when the key last saw a sample that is not in the
/// queue (an ignored status, a passed-on attempt; milliseconds since the zone was created,
/// plus one), the count of samples pushed, then a ring of the newest [`QUEUE_RING`].
pub const QUEUE_WORDS: usize = 2 + QUEUE_RING;
/// Offsets inside a slot's queue words.
pub const QUEUE_SEEN: usize = 0;
pub const QUEUE_COUNT: usize = 1;
pub const QUEUE_FIRST: usize = 2;
/// Samples a shard's ring holds: at least as many as the merged queue shows
/// ([`QUEUE_SHOWN`]), since all of the newest may come from one shard; a power of two, so
/// that the request path finds the next entry with a mask.
pub const QUEUE_RING: usize = 64;
/// Samples the merged queue shows (nginx-module-vts's 63).
pub const QUEUE_SHOWN: usize = 63;
const_assert!(QUEUE_RING.is_power_of_two() && QUEUE_RING >= QUEUE_SHOWN);
/// A queue entry packs the sample's time (milliseconds since the zone was created, plus one:
/// 0 marks an empty entry) above [`QUEUE_MS_BITS`] bits of its duration (saturating).
pub const QUEUE_MS_BITS: u32 = 24;
pub const QUEUE_MS_MAX: u64 = (1 << QUEUE_MS_BITS) - 1;

/// What a slot holds besides the seed's counters: what the configuration asked for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct SlotSpec {
    /// Histogram buckets.
    pub nbuckets: usize,
    /// Per-status-code words (`other` and each measured code); 0 when not measured.
    pub ncodes: usize,
    /// A time queue of the newest samples (nginx-module-vts's `requestMsecs`).
    pub queue: bool,
}

impl From<usize> for SlotSpec {
    /// The seed's slot: `nbuckets` buckets, nothing else.
    fn from(nbuckets: usize) -> SlotSpec {
        SlotSpec {
            nbuckets,
            ..SlotSpec::default()
        }
    }
}

impl SlotSpec {
    /// Slot words: the counters, the buckets, the status codes, the queue.
    pub const fn words(&self) -> usize {
        word::BUCKETS + self.nbuckets + self.ncodes + if self.queue { QUEUE_WORDS } else { 0 }
    }
    /// The first status-code word.
    pub const fn codes_at(&self) -> usize {
        word::BUCKETS + self.nbuckets
    }
    /// The first of the queue's words (see [`QUEUE_WORDS`]).
    pub const fn queue_at(&self) -> usize {
        word::BUCKETS + self.nbuckets + self.ncodes
    }
}

/// Where everything is, for a region of `len` bytes and `nbuckets` histogram buckets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    pub len: usize,
    pub nbuckets: usize,
    pub spec: SlotSpec,
    pub max_keys: usize,
    pub max_chunks: usize,
    pub table_cap: usize,
    pub slot_bytes: usize,
    pub chunk_bytes: usize,
    pub off_shards: usize,
    pub off_chunks: usize,
    pub off_keys: usize,
    pub off_table: usize,
    pub off_arena: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(clippy::enum_variant_names)]
pub enum GeometryError {
    /// The fixed tables and the first chunk do not fit; `needed` is the smallest region that does.
    TooSmall {
        needed: usize,
    },
    TooLarge,
    TooManyBuckets,
}

const fn align_up(v: usize, a: usize) -> usize {
    (v + a - 1) & !(a - 1)
}

/// Bytes one slot takes with `nbuckets` buckets: its words, packed. Keys of one shard may
/// share a cache line, which costs nothing since one process writes them all; what must not
/// share a line is two shards, and a chunk (`SLOTS_PER_CHUNK` slots, cache-line aligned) is
/// always whole lines.
pub const fn slot_bytes(nbuckets: usize) -> usize {
    (word::BUCKETS + nbuckets) * 8
}

/// Bytes one slot takes with everything `spec` asks for.
pub const fn spec_slot_bytes(spec: &SlotSpec) -> usize {
    spec.words() * 8
}
// nginx-module-vts's defaults (a time queue, no histogram, no status codes): 640 bytes.
const_assert_eq!(
    spec_slot_bytes(&SlotSpec {
        nbuckets: 0,
        ncodes: 0,
        queue: true
    }),
    640
);
// The default Prometheus buckets (11): 200 bytes; 16 buckets: 240; `off`: 112.
const_assert_eq!(slot_bytes(11), 200);
const_assert_eq!(slot_bytes(16), 240);
const_assert_eq!(slot_bytes(0), 112);
// A chunk is whole cache lines whatever the bucket count: 16 slots of a multiple of 8 bytes.
const_assert_eq!((SLOTS_PER_CHUNK * 8) % CACHE_LINE, 0);

/// Arena bytes a key's name takes (8-byte aligned).
pub const fn name_bytes(len: usize) -> usize {
    align_up(len, 8)
}

impl Geometry {
    pub fn new(len: usize, spec: impl Into<SlotSpec>) -> Result<Geometry, GeometryError> {
        let spec = spec.into();
        let nbuckets = spec.nbuckets;
        if nbuckets > MAX_BUCKETS {
            return Err(GeometryError::TooManyBuckets);
        }
        if len > u32::MAX as usize {
            return Err(GeometryError::TooLarge);
        }
        let max_keys = (len / BYTES_PER_KEY).max(SLOTS_PER_CHUNK);
        let max_chunks = max_keys.div_ceil(SLOTS_PER_CHUNK);
        let table_cap = (max_keys * 2).next_power_of_two();
        let slot_bytes = spec_slot_bytes(&spec);
        let chunk_bytes = slot_bytes * SLOTS_PER_CHUNK;
        let off_shards = size_of::<Header>();
        let off_chunks = off_shards + SHARDS * size_of::<ShardHead>();
        let off_keys = align_up(off_chunks + SHARDS * max_chunks * 4, 8);
        let off_table = off_keys + max_keys * size_of::<KeyEntry>();
        let off_arena = align_up(off_table + table_cap * 4, CACHE_LINE);
        let g = Geometry {
            len,
            nbuckets,
            spec,
            max_keys,
            max_chunks,
            table_cap,
            slot_bytes,
            chunk_bytes,
            off_shards,
            off_chunks,
            off_keys,
            off_table,
            off_arena,
        };
        // The shared shard's first chunk (which holds the overflow keys) and their names are
        // allocated at creation: a zone must at least hold those, plus one chunk per owner.
        let needed = off_arena + 2 * chunk_bytes + 64;
        if len < needed {
            return Err(GeometryError::TooSmall { needed });
        }
        Ok(g)
    }

    /// A number that changes whenever the layout does.
    pub fn signature(&self) -> u64 {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for v in [
            self.len,
            self.nbuckets,
            self.max_keys,
            self.table_cap,
            self.slot_bytes,
            self.spec.ncodes,
            self.spec.queue as usize,
            OWNED_SHARDS,
            SLOTS_PER_CHUNK,
            word::BUCKETS,
        ] {
            h = (h ^ v as u64).wrapping_mul(0x0100_0000_01b3);
        }
        h
    }

    pub fn slot_words(&self) -> usize {
        self.spec.words()
    }
}

// Offsets are u32 in the tables; the shard and key arrays must keep their atomics aligned.
const_assert!(align_of::<AtomicU64>() <= 8);
const_assert!(align_of::<AtomicU32>() <= 4);
