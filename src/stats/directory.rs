//! The key directory: (kind, name) -> slot index, shared by all workers.
//!
//! Lookups take no lock: an entry is written completely under the registration lock, then
//! published by a Release store of its index into the open-addressing hash index (and of the
//! new `key_count`). Readers Acquire-load before reading the entry. Entries are never removed,
//! so a published index stays valid for the zone's life.
use core::hash::Hasher;
use core::sync::atomic::Ordering::*;
use std::collections::hash_map::DefaultHasher;

use super::layout::*;
use super::zone::{Zone, ZoneLock};

/// What a key counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u32)]
pub enum Kind {
    /// Samples that could not get a slot of their own; the name says for which kind.
    Overflow = 1,
    /// A server block, by its first `server_name`.
    #[default]
    Server = 2,
    /// An upstream peer: name is [`upstream_key`] of (group, peer).
    UpstreamPeer = 3,
    /// In a zone with time queues, the slot right after an upstream peer's (or the upstream
    /// overflow entry's): its response times' queue and histogram. Never looked up by name.
    PeerTimes = 4,
}

impl Kind {
    fn from_u32(v: u32) -> Option<Kind> {
        match v {
            1 => Some(Kind::Overflow),
            2 => Some(Kind::Server),
            3 => Some(Kind::UpstreamPeer),
            4 => Some(Kind::PeerTimes),
            _ => None,
        }
    }
}

/// An index entry that names no key: the place of a registration that died before publishing
/// its key (see [`Zone::register_tagged`]). Lookups probe past it; registrations reuse it.
const TOMBSTONE: u32 = u32::MAX;

/// Registered at zone creation, in this order: key `i` is the overflow entry of `OVERFLOW_KEYS[i]`.
pub const OVERFLOW_KEYS: [(Kind, &str); 2] = [(Kind::Overflow, "server"), (Kind::Overflow, "upstream")];
pub const OVERFLOW_SERVER: usize = 0;
pub const OVERFLOW_UPSTREAM: usize = 1;

/// Whether a key has a [`Kind::PeerTimes`] slot after its own in a zone with time queues.
pub fn has_peer_times(kind: Kind, name: &[u8]) -> bool {
    kind == Kind::UpstreamPeer
        || (kind == Kind::Overflow && name == OVERFLOW_KEYS[OVERFLOW_UPSTREAM].1.as_bytes())
}

/// Encodes an upstream peer's key name: the group's length (4 bytes LE), the group, the peer.
pub fn upstream_key(group: &[u8], peer: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(4 + group.len() + peer.len());
    v.extend_from_slice(&(group.len() as u32).to_le_bytes());
    v.extend_from_slice(group);
    v.extend_from_slice(peer);
    v
}

/// Splits a name made by [`upstream_key`] into (group, peer).
pub fn split_upstream_key(name: &[u8]) -> Option<(&[u8], &[u8])> {
    let n = u32::from_le_bytes(name.get(..4)?.try_into().ok()?) as usize;
    let rest = &name[4..];
    (n <= rest.len()).then(|| rest.split_at(n))
}

impl Zone {
    fn hash(&self, kind: Kind, name: &[u8]) -> u64 {
        let mut h = DefaultHasher::new();
        h.write_u64(self.header().seed.load(Relaxed));
        h.write_u32(kind as u32);
        h.write(name);
        // 0 marks an empty entry's hash; never produce it.
        h.finish() | 1
    }

    /// The slot index of a registered key. Lock-free.
    pub fn lookup(&self, kind: Kind, name: &[u8]) -> Option<usize> {
        let hash = self.hash(kind, name);
        let table = self.table();
        let mask = table.len() - 1;
        let mut i = hash as usize & mask;
        for _ in 0..table.len() {
            let v = table[i].load(Acquire);
            if v == 0 {
                return None;
            }
            // An index entry can name a key that is not published yet (see `register`), or be
            // a tombstone (u32::MAX: beyond any key).
            let key = (v - 1) as usize;
            if key < self.header().key_count.load(Acquire) as usize
                && self.key_entry(key).hash.load(Relaxed) == hash
                && self.key_entry(key).kind.load(Relaxed) == kind as u32
            {
                let e = self.key_entry(key);
                // SAFETY: the entry and its name were written before the Acquire-loaded index.
                let stored = unsafe {
                    self.arena_bytes(
                        e.name_off.load(Relaxed) as usize,
                        e.name_len.load(Relaxed) as usize,
                    )
                };
                if stored == name {
                    return Some(key);
                }
            }
            i = (i + 1) & mask;
        }
        None
    }

    /// Registers a key, or finds it if another process registered it first. `None` when the
    /// directory or the arena is full.
    pub fn register<L: ZoneLock>(&self, lock: &L, kind: Kind, name: &[u8]) -> Option<usize> {
        self.register_tagged(lock, kind, name, 0)
    }

    /// [`Zone::register`], with the key's `tag` (kept from the first registration).
    pub fn register_tagged<L: ZoneLock>(&self, lock: &L, kind: Kind, name: &[u8], tag: u32) -> Option<usize> {
        let hash = self.hash(kind, name);
        // A full directory or arena stays full (nothing is freed): say so without taking the
        // lock, so that a name that found no room never makes the request path wait for it.
        let h = self.header();
        if h.key_count.load(Relaxed) as usize >= self.geometry().max_keys {
            return None;
        }
        self.arena_fit(name_bytes(name.len()), 8)?;
        lock.with_lock(|| {
            if let Some(k) = self.lookup(kind, name) {
                return Some(k);
            }
            let key = h.key_count.load(Relaxed) as usize;
            // An upstream peer in a zone with time queues takes two entries (see PeerTimes).
            let entries = if self.geometry().spec.queue && has_peer_times(kind, name) {
                2
            } else {
                1
            };
            if key + entries > self.geometry().max_keys || name.len() > u32::MAX as usize {
                return None;
            }
            let off = self.alloc_locked(name_bytes(name.len()), 8)?;
            // SAFETY: fresh arena bytes, ours under the lock, published below.
            unsafe {
                core::ptr::copy_nonoverlapping(name.as_ptr(), self.base().as_ptr().add(off), name.len())
            };
            let e = self.key_entry(key);
            // A registration of this key that died before publishing it left an index entry
            // for it (probed from the hash it wrote): a tombstone now, so that interrupted
            // registrations never fill the index.
            self.bury(e.hash.load(Relaxed), key);
            e.hash.store(hash, Relaxed);
            e.name_off.store(off as u32, Relaxed);
            e.name_len.store(name.len() as u32, Relaxed);
            e.kind.store(kind as u32, Relaxed);
            e.tag.store(tag, Relaxed);
            if entries == 2 {
                let t = self.key_entry(key + 1);
                t.hash.store(hash, Relaxed);
                t.name_off.store(off as u32, Relaxed);
                t.name_len.store(name.len() as u32, Relaxed);
                t.kind.store(Kind::PeerTimes as u32, Relaxed);
                t.tag.store(tag, Relaxed);
            }
            // The index first, the count last. A process killed in between (the master then
            // unlocks the mutex) leaves an index entry for an unpublished key: lookups skip it,
            // and the next registration reuses the entry. The other order would leave a
            // published key that no lookup finds, registered again: two series of one name.
            let table = self.table();
            let mask = table.len() - 1;
            // table_cap >= 2 * max_keys and every entry is a published key or buried: a free
            // one exists; the probe is bounded all the same.
            let mut i = hash as usize & mask;
            let mut probes = 0;
            while !matches!(table[i].load(Relaxed), 0 | TOMBSTONE) {
                probes += 1;
                if probes == table.len() {
                    return None;
                }
                i = (i + 1) & mask;
            }
            table[i].store(key as u32 + 1, Release);
            #[cfg(test)]
            if tests::DIE_BEFORE_PUBLISH.with(|d| d.replace(false)) {
                return None; // as if killed here: the lock is released, nothing else happens
            }
            h.key_count.store((key + entries) as u32, Release);
            Some(key)
        })
    }

    /// Turns the index entry of unpublished `key` on the probe path of `hash` into a
    /// tombstone, if there is one. Caller holds the lock.
    fn bury(&self, hash: u64, key: usize) {
        if hash == 0 {
            return; // no registration of this key started
        }
        let table = self.table();
        let mask = table.len() - 1;
        let mut i = hash as usize & mask;
        for _ in 0..table.len() {
            match table[i].load(Relaxed) {
                0 => return,
                v if v as usize == key + 1 => {
                    // Lookups skip it (as an unpublished key); a registration takes it.
                    table[i].store(TOMBSTONE, Release);
                    return;
                }
                _ => i = (i + 1) & mask,
            }
        }
    }

    /// The tag a published key was registered with.
    pub fn tag_of(&self, key: usize) -> u32 {
        self.key_entry(key).tag.load(Relaxed)
    }

    /// Published keys, in registration order.
    pub fn keys(&self) -> impl Iterator<Item = (usize, Kind, &[u8])> + '_ {
        let n = self.header().key_count.load(Acquire) as usize;
        (0..n).filter_map(move |key| {
            let e = self.key_entry(key);
            let kind = Kind::from_u32(e.kind.load(Relaxed))?;
            // SAFETY: entries below the Acquire-loaded key_count are complete.
            let name = unsafe {
                self.arena_bytes(
                    e.name_off.load(Relaxed) as usize,
                    e.name_len.load(Relaxed) as usize,
                )
            };
            Some((key, kind, name))
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    // (A bench that includes this module with #[path] builds it without the tests.)
    #![allow(unused_imports)]
    use core::cell::Cell;
    use std::sync::Mutex;

    use super::*;
    use crate::stats::HeapRegion;

    std::thread_local! {
        /// Makes the next `register` on this thread stop between its two publishing stores,
        /// as a worker killed there would.
        pub static DIE_BEFORE_PUBLISH: Cell<bool> = const { Cell::new(false) };
    }

    fn names(z: &Zone) -> Vec<(usize, Vec<u8>)> {
        z.keys()
            .filter(|(_, kind, _)| *kind == Kind::Server)
            .map(|(k, _, n)| (k, n.to_vec()))
            .collect()
    }

    #[test]
    fn a_registration_cut_short_leaves_neither_a_ghost_nor_a_duplicate() {
        let mut region = HeapRegion::new(256 * 1024);
        let lock = Mutex::new(());
        // SAFETY: the heap region is 64-byte aligned, ours alone, and outlives the zone.
        let z = unsafe { Zone::create(region.base(), region.len(), 11, 7, 0) }.unwrap();
        let a = z.register(&lock, Kind::Server, b"a").unwrap();

        DIE_BEFORE_PUBLISH.with(|d| d.set(true));
        assert_eq!(z.register(&lock, Kind::Server, b"x"), None);
        // The half-registered name is neither listed nor found.
        assert_eq!(names(&z), vec![(a, b"a".to_vec())]);
        assert_eq!(z.lookup(Kind::Server, b"x"), None);

        // The next registration reuses the entry; the stale index entry matches nothing.
        let y = z.register(&lock, Kind::Server, b"y").unwrap();
        assert_eq!(y, a + 1);
        assert_eq!(z.lookup(Kind::Server, b"x"), None);
        assert_eq!(z.lookup(Kind::Server, b"y"), Some(y));
        let x = z.key(&lock, Kind::Server, b"x").unwrap();
        assert_eq!(x, y + 1);
        assert_eq!(z.key(&lock, Kind::Server, b"x"), Some(x));
        assert_eq!(
            names(&z),
            vec![(a, b"a".to_vec()), (y, b"y".to_vec()), (x, b"x".to_vec())]
        );
    }

    #[test]
    fn a_cut_short_registration_of_a_name_is_completed_by_the_next_one() {
        let mut region = HeapRegion::new(256 * 1024);
        let lock = Mutex::new(());
        // SAFETY: as above.
        let z = unsafe { Zone::create(region.base(), region.len(), 11, 7, 0) }.unwrap();
        DIE_BEFORE_PUBLISH.with(|d| d.set(true));
        assert_eq!(z.register(&lock, Kind::Server, b"x"), None);
        let x = z.key(&lock, Kind::Server, b"x").unwrap();
        assert_eq!(z.key(&lock, Kind::Server, b"x"), Some(x));
        assert_eq!(names(&z), vec![(x, b"x".to_vec())]);
    }

    #[test]
    fn a_name_that_finds_no_room_fails_without_the_lock() {
        /// A lock that must not be taken.
        struct Forbidden;
        impl ZoneLock for Forbidden {
            fn with_lock<R>(&self, _: impl FnOnce() -> R) -> R {
                panic!("the lock was taken")
            }
        }
        let mut region = HeapRegion::new(256 * 1024);
        let lock = Mutex::new(());
        // SAFETY: as above.
        let z = unsafe { Zone::create(region.base(), region.len(), 11, 7, 0) }.unwrap();
        // Fill the arena with one long name per key, then with short ones, until nothing fits.
        let mut i = 0u32;
        let mut first = None;
        for len in [4096usize, 64, 8] {
            loop {
                let mut name = format!("{i:08}").into_bytes();
                name.resize(len, b'n');
                i += 1;
                match z.register(&lock, Kind::Server, &name) {
                    Some(k) => _ = first.get_or_insert((k, name)),
                    None => break,
                }
            }
        }
        let (used, size) = z.usage();
        assert!(size - used < 8, "{used} of {size}");
        assert!((z.header().key_count.load(Relaxed) as usize) < z.geometry().max_keys);
        // The directory has room, the arena not: a new name fails at once, a known one is found.
        assert_eq!(z.register(&Forbidden, Kind::Server, b"no room"), None);
        let (k, name) = first.unwrap();
        assert_eq!(z.key(&Forbidden, Kind::Server, &name), Some(k));
    }

    #[test]
    fn interrupted_registrations_never_fill_the_index() {
        let mut region = HeapRegion::new(64 * 1024);
        let lock = Mutex::new(());
        // SAFETY: as above.
        let z = unsafe { Zone::create(region.base(), region.len(), 0, 3, 0) }.unwrap();
        let cap = z.table().len();
        // Far more interrupted registrations than the index has entries: without the
        // tombstones, each would leave an entry behind and the index would fill (and, before the
        // probe was bounded, a registration would then loop forever).
        for i in 0..cap * 4 {
            DIE_BEFORE_PUBLISH.with(|d| d.set(true));
            assert_eq!(
                z.register(&lock, Kind::Server, format!("dead{i}").as_bytes()),
                None
            );
        }
        let live = |z: &Zone| {
            z.table()
                .iter()
                .filter(|v| !matches!(v.load(Relaxed), 0 | TOMBSTONE))
                .count()
        };
        // The index holds the published keys (the overflow keys) and at most the one entry of
        // the last interrupted registration.
        let published = z.header().key_count.load(Relaxed) as usize;
        assert!(
            live(&z) <= published + 1,
            "{} live entries for {published} keys",
            live(&z)
        );
        // Registration still works, and every name is found again.
        let names: Vec<Vec<u8>> = (0..20).map(|i| format!("name{i}").into_bytes()).collect();
        let keys: Vec<usize> = names
            .iter()
            .map(|n| z.register(&lock, Kind::Server, n).unwrap())
            .collect();
        for (n, k) in names.iter().zip(&keys) {
            assert_eq!(z.lookup(Kind::Server, n), Some(*k));
        }
        assert_eq!(z.lookup(Kind::Server, b"dead7"), None);
        assert!(live(&z) <= z.header().key_count.load(Relaxed) as usize + 1);
    }
}
