//! A view of one statistics zone: creation, reattachment after a reload, and raw access to its
//! tables. The request path goes through [`crate::stats::ShardWriter`], the scrape through
//! [`Zone::merge`] (in steps) or [`Zone::snapshot`] (in one go).
use core::ptr::NonNull;
use core::slice;
use core::sync::atomic::{AtomicI32, AtomicU32, AtomicU64, Ordering::*};

use super::directory::{Kind, OVERFLOW_KEYS};
use super::layout::*;

/// The lock that serialises what is rare: registering a key, allocating a chunk. In nginx it
/// is the slab pool's mutex (which the master force-unlocks when a worker dies holding it).
pub trait ZoneLock {
    fn with_lock<R>(&self, f: impl FnOnce() -> R) -> R;
}

/// A process-local lock for tests and benches.
impl ZoneLock for std::sync::Mutex<()> {
    fn with_lock<R>(&self, f: impl FnOnce() -> R) -> R {
        let _g = self.lock().unwrap_or_else(|e| e.into_inner());
        f()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttachError {
    /// The region does not hold a zone (no magic): create one instead.
    NotAZone,
    /// The region holds a zone laid out differently (size or bucket count changed).
    Mismatch,
    Geometry(GeometryError),
}

/// A view of the zone. Copying it copies two words; all state is in the region.
#[derive(Clone, Copy, Debug)]
pub struct Zone {
    base: NonNull<u8>,
    geo: Geometry,
}

// SAFETY: every field of the region that more than one thread or process touches is an atomic,
// or is written once before being published with a Release store and read after an Acquire
// load (key names, chunk contents). The view itself is immutable.
unsafe impl Send for Zone {}
unsafe impl Sync for Zone {}

impl Zone {
    /// Lays out a fresh zone in `len` bytes at `base`.
    ///
    /// # Safety
    /// `base` is 64-byte aligned, valid for reads and writes of `len` bytes for as long as any
    /// copy of the returned view is used, and no other process uses the region yet.
    pub unsafe fn create(
        base: NonNull<u8>,
        len: usize,
        spec: impl Into<SlotSpec>,
        seed: u64,
        now_unix: u64,
    ) -> Result<Zone, GeometryError> {
        let geo = Geometry::new(len, spec)?;
        debug_assert_eq!(base.as_ptr() as usize % CACHE_LINE, 0);
        // SAFETY: the caller gives us the region exclusively; zero the tables (not the arena:
        // chunks are zeroed when allocated).
        unsafe { core::ptr::write_bytes(base.as_ptr(), 0, geo.off_arena) };
        let zone = Zone { base, geo };
        let h = zone.header();
        h.signature.store(geo.signature(), Relaxed);
        h.bump.store(geo.off_arena as u64, Relaxed);
        h.seed.store(seed, Relaxed);
        h.created.store(now_unix, Relaxed);
        h.generation.store(1, Relaxed);
        // Overflow keys come first (indexes 0..), and the shared shard's first chunk exists
        // from the start, so an overflowed sample always has a slot to go to.
        let lock = NoLock;
        for (kind, name) in OVERFLOW_KEYS {
            zone.register(&lock, kind, name.as_bytes())
                .expect("geometry leaves room for the overflow keys");
        }
        zone.chunk_or_grow(&lock, SHARED_SHARD, 0)
            .expect("geometry leaves room for the shared shard's first chunk");
        h.magic.store(MAGIC, Release);
        Ok(zone)
    }

    /// Attaches to a zone created earlier (by this configuration or one before a reload).
    ///
    /// # Safety
    /// As for [`Zone::create`], except that the region may already be in use.
    pub unsafe fn attach(
        base: NonNull<u8>,
        len: usize,
        spec: impl Into<SlotSpec>,
    ) -> Result<Zone, AttachError> {
        let geo = Geometry::new(len, spec).map_err(AttachError::Geometry)?;
        let zone = Zone { base, geo };
        let h = zone.header();
        if h.magic.load(Acquire) != MAGIC {
            return Err(AttachError::NotAZone);
        }
        if h.signature.load(Relaxed) != geo.signature() {
            return Err(AttachError::Mismatch);
        }
        Ok(zone)
    }

    pub fn geometry(&self) -> &Geometry {
        &self.geo
    }

    pub fn base(&self) -> NonNull<u8> {
        self.base
    }

    /// # Safety
    /// `off + size_of::<T>() <= len` and `off` is aligned for `T`, which must be a type whose
    /// fields are all atomics (so that shared references to it are sound across processes).
    #[inline]
    unsafe fn at<T>(&self, off: usize) -> &T {
        unsafe { &*(self.base.as_ptr().add(off) as *const T) }
    }

    #[inline]
    pub fn header(&self) -> &Header {
        // SAFETY: offset 0 holds the header; Geometry::new checked that it fits.
        unsafe { self.at(0) }
    }

    #[inline]
    pub fn shard(&self, shard: usize) -> &ShardHead {
        assert!(shard < SHARDS);
        // SAFETY: SHARDS heads follow the header (Geometry::new).
        unsafe { self.at(self.geo.off_shards + shard * core::mem::size_of::<ShardHead>()) }
    }

    /// The chunk table of a shard: arena offsets of its chunks, 0 where not yet allocated.
    #[inline]
    pub fn chunk_table(&self, shard: usize) -> &[AtomicU32] {
        assert!(shard < SHARDS);
        let off = self.geo.off_chunks + shard * self.geo.max_chunks * 4;
        // SAFETY: SHARDS tables of max_chunks u32 lie at off_chunks (Geometry::new).
        unsafe {
            slice::from_raw_parts(
                self.base.as_ptr().add(off) as *const AtomicU32,
                self.geo.max_chunks,
            )
        }
    }

    #[inline]
    pub(super) fn key_entry(&self, key: usize) -> &KeyEntry {
        assert!(key < self.geo.max_keys);
        // SAFETY: max_keys entries lie at off_keys (Geometry::new).
        unsafe { self.at(self.geo.off_keys + key * core::mem::size_of::<KeyEntry>()) }
    }

    #[inline]
    pub(super) fn table(&self) -> &[AtomicU32] {
        // SAFETY: table_cap u32 lie at off_table (Geometry::new).
        unsafe {
            slice::from_raw_parts(
                self.base.as_ptr().add(self.geo.off_table) as *const AtomicU32,
                self.geo.table_cap,
            )
        }
    }

    /// Bytes written into the arena before being published; empty if the range is outside the
    /// region (an entry being rewritten after its registrar died: a miss, never a panic).
    ///
    /// # Safety
    /// `off..off + len` was written before a Release store that the caller has Acquire-loaded.
    #[inline]
    pub(super) unsafe fn arena_bytes(&self, off: usize, len: usize) -> &[u8] {
        match off.checked_add(len) {
            Some(end) if end <= self.geo.len => unsafe {
                slice::from_raw_parts(self.base.as_ptr().add(off), len)
            },
            _ => &[],
        }
    }

    /// Where `bytes` aligned to `align` would go in the arena now, if they fit: (start, end).
    /// Without the lock it is a hint that only gets worse (nothing is freed): a `None` is final.
    pub(super) fn arena_fit(&self, bytes: usize, align: usize) -> Option<(usize, usize)> {
        let start = (self.header().bump.load(Relaxed) as usize).next_multiple_of(align);
        let end = start.checked_add(bytes)?;
        (end <= self.geo.len).then_some((start, end))
    }

    /// Takes `bytes` from the arena. Caller holds the lock.
    pub(super) fn alloc_locked(&self, bytes: usize, align: usize) -> Option<usize> {
        let (start, end) = self.arena_fit(bytes, align)?;
        self.header().bump.store(end as u64, Relaxed);
        Some(start)
    }

    /// The slot words of `key` in `shard`, if its chunk exists.
    #[inline(always)]
    pub fn slot(&self, shard: usize, key: usize) -> Option<&[AtomicU64]> {
        let chunk = self.chunk_table(shard).get(key / SLOTS_PER_CHUNK)?.load(Acquire) as usize;
        if chunk == 0 {
            return None;
        }
        // SAFETY: a published chunk offset points at chunk_bytes zeroed-then-written bytes in
        // the arena, laid out as SLOTS_PER_CHUNK slots of slot_words u64.
        let off = chunk + (key % SLOTS_PER_CHUNK) * self.geo.slot_bytes;
        Some(unsafe {
            slice::from_raw_parts(
                self.base.as_ptr().add(off) as *const AtomicU64,
                self.geo.slot_words(),
            )
        })
    }

    /// The slot of `key` in `shard`, allocating its chunk if needed. `None`: the arena is full.
    pub fn chunk_or_grow<L: ZoneLock>(&self, lock: &L, shard: usize, key: usize) -> Option<&[AtomicU64]> {
        if let Some(s) = self.slot(shard, key) {
            return Some(s);
        }
        let idx = key / SLOTS_PER_CHUNK;
        let entry = self.chunk_table(shard).get(idx)?;
        // A full arena stays full (nothing is freed): fail without taking the lock.
        self.arena_fit(self.geo.chunk_bytes, CACHE_LINE)?;
        let done = lock.with_lock(|| {
            // Another process may have grown the shared shard meanwhile.
            if entry.load(Acquire) != 0 {
                return true;
            }
            let Some(off) = self.alloc_locked(self.geo.chunk_bytes, CACHE_LINE) else {
                return false;
            };
            // SAFETY: fresh arena bytes, ours under the lock, not yet published.
            unsafe { core::ptr::write_bytes(self.base.as_ptr().add(off), 0, self.geo.chunk_bytes) };
            entry.store(off as u32, Release);
            true
        });
        if done {
            self.slot(shard, key)
        } else {
            None
        }
    }

    /// Sets a one-shot flag; true if this call set it (so the caller logs once per zone). A
    /// plain load first: on a full zone every overflowed sample asks, and the read-modify-write
    /// happens once.
    pub fn raise_flag(&self, f: u32) -> bool {
        let flags = &self.header().flags;
        flags.load(Relaxed) & f == 0 && flags.fetch_or(f, Relaxed) & f == 0
    }

    /// Counts a rendered scrape whose snapshot was taken after `last_render()` returned
    /// `before`. Returns its sequence number if no other render was counted in between (only
    /// then is it the newest scrape, and may be served again while it stays the last).
    pub fn count_render(&self, before: u64) -> Option<u64> {
        let prev = self.header().renders.fetch_add(1, AcqRel);
        (prev == before).then_some(prev + 1)
    }

    /// The sequence number of the latest rendered scrape.
    pub fn last_render(&self) -> u64 {
        self.header().renders.load(Acquire)
    }

    /// Bytes in use (tables and arena) and the region's size.
    pub fn usage(&self) -> (usize, usize) {
        (self.header().bump.load(Relaxed) as usize, self.geo.len)
    }

    pub fn owner_of(&self, shard: usize) -> i32 {
        self.shard(shard).owner.load(Relaxed)
    }

    pub(super) fn owner_cell(&self, shard: usize) -> &AtomicI32 {
        &self.shard(shard).owner
    }

    /// Looks up or registers a key of `kind`.
    pub fn key<L: ZoneLock>(&self, lock: &L, kind: Kind, name: &[u8]) -> Option<usize> {
        self.key_tagged(lock, kind, name, 0)
    }

    /// Looks up or registers a key of `kind`, with `tag` if it registers it.
    pub fn key_tagged<L: ZoneLock>(&self, lock: &L, kind: Kind, name: &[u8], tag: u32) -> Option<usize> {
        self.lookup(kind, name)
            .or_else(|| self.register_tagged(lock, kind, name, tag))
    }
}

/// Zone creation runs before any other process sees the region.
struct NoLock;
impl ZoneLock for NoLock {
    fn with_lock<R>(&self, f: impl FnOnce() -> R) -> R {
        f()
    }
}

/// A heap region with the alignment a zone needs, for tests, benches and the capacity planner.
pub struct HeapRegion {
    buf: Vec<AlignedLine>,
    len: usize,
}

#[repr(C, align(64))]
#[derive(Clone, Copy)]
struct AlignedLine([u8; 64]);

impl HeapRegion {
    pub fn new(len: usize) -> HeapRegion {
        HeapRegion {
            buf: vec![AlignedLine([0; 64]); len.div_ceil(64)],
            len,
        }
    }
    pub fn base(&mut self) -> NonNull<u8> {
        NonNull::new(self.buf.as_mut_ptr() as *mut u8).expect("vec pointer is non-null")
    }
    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}
