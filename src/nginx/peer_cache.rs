//! The worker's cache of upstream peers' slots: a known peer is found with two pointer
//! compares and a short memcmp instead of hashing its name into shared memory.
use core::cell::RefCell;

use std::collections::HashMap;

use arrayvec::ArrayVec;

use ngx::ffi::*;
use ngx::ngx_log_error;

use super::live::NOGROUPS;
use super::zone::SlabLock;
use crate::stats::layout::flag;
use crate::stats::{upstream_key, Kind, Zone, OVERFLOW_UPSTREAM};

/// What a cache lookup needs from the worker: its zone view, the registration lock, its log.
pub struct Worker<'a> {
    pub zone: &'a Zone,
    pub lock: &'a SlabLock,
    pub log: *mut ngx_log_t,
}

/// Entries of the per-worker peer cache (two-way set-associative); a power of two.
const CACHE_ENTRIES: usize = 256;
/// Longest peer name the cache holds a copy of: any `unix:` path (108 bytes at most) and
/// address fits; a longer name is looked up in the directory, lock-free, every time.
const CACHE_NAME_MAX: usize = 128;

#[derive(Default)]
struct CacheEntry {
    /// The group's bytes pointer: the `upstream` block's name lives in the configuration, so
    /// its address identifies the group for the worker's life.
    group: usize,
    /// The peer's name.
    name: ArrayVec<u8, CACHE_NAME_MAX>,
    slot: usize,
}

/// This worker's slots of (group, peer), so that the request path finds a known peer with two
/// pointer compares and a short memcmp instead of hashing its name into shared memory.
pub struct PeerCache {
    entries: RefCell<Vec<CacheEntry>>,
    /// The group of each configured peer name (`None`: in several groups), for attempts of a
    /// request's earlier upstream (after an `error_page` or X-Accel-Redirect to another one).
    groups: RefCell<HashMap<Vec<u8>, Option<&'static [u8]>>>,
}

impl Default for PeerCache {
    fn default() -> Self {
        PeerCache {
            entries: RefCell::new((0..CACHE_ENTRIES).map(|_| CacheEntry::default()).collect()),
            groups: RefCell::default(),
        }
    }
}

impl PeerCache {
    /// The group of a configured peer name, `::nogroups` if it is unknown or in several groups.
    // Cold: only a request whose attempts span two upstreams (error_page, X-Accel-Redirect)
    // asks, for the attempts of the earlier one.
    #[cold]
    #[inline(never)]
    pub fn group_of_peer(&self, peer: &[u8]) -> &'static [u8] {
        self.groups
            .borrow()
            .get(peer)
            .copied()
            .flatten()
            .unwrap_or(NOGROUPS)
    }

    pub fn remember_group(&self, peer: &[u8], group: &'static [u8]) {
        let mut groups = self.groups.borrow_mut();
        let e = groups.entry(peer.to_vec()).or_insert(Some(group));
        if *e != Some(group) {
            *e = None;
        }
    }
    /// The slot of (group, peer), registering the peer if it is new; the overflow entry when
    /// the zone has no room (remembered too: keys are never freed, the zone stays full).
    pub fn slot(&self, w: &Worker, group: &[u8], peer: &[u8]) -> usize {
        // With an upstream `zone`, nginx hands each request its own copy of the peer's name, so
        // the name is identified by its bytes (hashed: names are short), the group by address.
        let g = group.as_ptr() as usize;
        let h = peer.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
            (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
        });
        // Two ways per set, so that two peers whose hashes meet both stay cached.
        let set = (((g as u64 ^ h).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 56) as usize % CACHE_ENTRIES) & !1;
        if let Some(ways) = self.entries.borrow().get(set..set + 2) {
            for e in ways {
                if e.group == g && e.name.as_slice() == peer {
                    return e.slot;
                }
            }
        }
        let k = w.zone.key(w.lock, Kind::UpstreamPeer, &upstream_key(group, peer));
        if k.is_none() && w.zone.raise_flag(flag::KEYS_FULL) {
            ngx_log_error!(
                NGX_LOG_WARN,
                w.log,
                "vts_zone is full: upstream peer \"{}\" is counted in the overflow entry; increase the vts_zone size",
                String::from_utf8_lossy(peer)
            );
        }
        let k = k.unwrap_or(OVERFLOW_UPSTREAM);
        // The first way while it is free, else the second (the first keeps what came first:
        // the configured peers, registered at worker start).
        let way = match self.entries.borrow().get(set) {
            Some(e) if e.group == 0 => set,
            _ => set + 1,
        };
        if let (Ok(name), Some(e)) = (ArrayVec::try_from(peer), self.entries.borrow_mut().get_mut(way)) {
            *e = CacheEntry {
                group: g,
                name,
                slot: k,
            };
        }
        k
    }
}
