//! Upstream peers: naming, the per-attempt samples, and nginx's live view of each peer.
use core::cell::RefCell;

use std::collections::HashMap;

use arrayvec::ArrayVec;

use ngx::ffi::*;
use ngx::http::{HttpModuleMainConf, NgxHttpUpstreamModule};
use ngx::ngx_log_error;

use super::conf::LocConf;
use super::zone::Worker;
use crate::stats::layout::flag;
use crate::stats::{upstream_key, Kind, Recorded, Sample, What, OVERFLOW_UPSTREAM};
use crate::view::PeerState;

/// The group of a proxy_pass to an address or a variable with no `upstream` block: empty in the
/// key, which no `upstream` block name is; the output shows `::nogroups`, the name
/// nginx-module-vts users know.
pub const NOGROUPS: &[u8] = b"";
/// An attempt nginx recorded without a peer (for example "no live upstreams"): shown as `::none`.
const NO_PEER: &[u8] = b"";
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
    fn group_of_peer(&self, peer: &[u8]) -> &'static [u8] {
        self.groups
            .borrow()
            .get(peer)
            .copied()
            .flatten()
            .unwrap_or(NOGROUPS)
    }

    fn remember_group(&self, peer: &[u8], group: &'static [u8]) {
        let mut groups = self.groups.borrow_mut();
        let e = groups.entry(peer.to_vec()).or_insert(Some(group));
        if *e != Some(group) {
            *e = None;
        }
    }
    /// The slot of (group, peer), registering the peer if it is new; the overflow entry when
    /// the zone has no room (remembered too: keys are never freed, the zone stays full).
    fn slot(&self, w: &Worker, group: &[u8], peer: &[u8]) -> usize {
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
        let k = w
            .zone
            .key(&w.lock, Kind::UpstreamPeer, &upstream_key(group, peer));
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

/// The group name of an upstream configuration.
fn group_of(uscf: *const ngx_http_upstream_srv_conf_t) -> &'static [u8] {
    // SAFETY: a non-null uscf is part of the cycle's configuration.
    match unsafe { uscf.as_ref() } {
        Some(u) if u.flags & NGX_HTTP_UPSTREAM_CREATE as ngx_uint_t != 0 => u.host.as_bytes(),
        _ => NOGROUPS,
    }
}

fn bytes(s: *const ngx_str_t) -> &'static [u8] {
    // SAFETY: nginx's peer names live as long as the request (or the cycle).
    unsafe { s.as_ref().map_or(NO_PEER, |s| s.as_bytes()) }
}

/// One sample per upstream attempt of the request. `client` is the request's own sample (its
/// status, bytes and time; with time queues, already in nginx-module-vts's terms).
pub unsafe fn record(w: &Worker, r: &ngx_http_request_t, client: &Sample, lcf: &LocConf) {
    // SAFETY: upstream_states is an array of ngx_http_upstream_state_t owned by the request.
    let states: &[ngx_http_upstream_state_t] = unsafe {
        match r.upstream_states.as_ref() {
            Some(a) if a.nelts > 0 => a.as_slice(),
            _ => return,
        }
    };
    let group = group_of(unsafe { r.upstream.as_ref() }.map_or(core::ptr::null(), |u| u.upstream));
    // A request that moved on to another upstream (error_page, X-Accel-Redirect) has a zeroed
    // entry between the two upstreams' attempts; `r->upstream` is the last one's.
    let last_separator = states.iter().rposition(|st| st.peer.is_null() && st.status == 0);
    let known = |t: ngx_msec_t| (t != ngx_msec_t::MAX).then_some(t as u64);
    for (i, st) in states.iter().enumerate() {
        if st.peer.is_null() && st.status == 0 {
            continue;
        }
        let earlier_round = matches!(last_separator, Some(sep) if i < sep);
        // nginx-module-vts counts the last round only.
        if w.vozlt && earlier_round {
            continue;
        }
        let peer = bytes(st.peer);
        let group = if earlier_round {
            w.peers.group_of_peer(peer)
        } else {
            group
        };
        // "No live upstreams": nginx names the attempt after the upstream itself.
        let peer = if !group.is_empty() && peer == group {
            NO_PEER
        } else {
            peer
        };
        let key = w.peers.slot(w, group, peer);
        if !w.vozlt {
            let sample = Sample {
                status: st.status as u64,
                bytes_in: st.bytes_received.max(0) as u64,
                bytes_out: st.bytes_sent.max(0) as u64,
                time_ms: client.time_ms,
                upstream_ms: known(st.response_time),
                ..Default::default()
            };
            write(w, key, OVERFLOW_UPSTREAM, true, &sample);
            continue;
        }
        // nginx-module-vts: the last attempt served the client and counts like the request
        // (its status, bytes and time); the ones before it were passed on (their own status
        // and response time only). An ignored status keeps only the response time.
        let response_ms = known(st.response_time).unwrap_or(0);
        let serving = i + 1 == states.len();
        let mut sample = if serving {
            Sample {
                code: None,
                upstream_ms: Some(response_ms),
                ..*client
            }
        } else {
            let status = st.status as u64;
            Sample {
                // No response (status outside 100..599): counted, in no class.
                status: if (100..600).contains(&status) { status } else { 0 },
                upstream_ms: Some(response_ms),
                what: What::PassedOn,
                ..Default::default()
            }
        };
        let status = if serving { client.status } else { st.status as u64 };
        if super::log_phase::ignored(lcf, status) {
            sample.what = What::ResponseOnly;
        }
        write(w, key, OVERFLOW_UPSTREAM, false, &sample);
        // The response times' queue and histogram, in the slot after the peer's.
        let times = Sample {
            time_ms: response_ms,
            queued_at: client.queued_at,
            ..Default::default()
        };
        // (The overflow entry's own times slot takes what finds no room.)
        write(w, key + 1, OVERFLOW_UPSTREAM + 1, false, &times);
    }
}

/// Writes one sample into this worker's shard (into `overflow` if the zone is full).
#[inline]
fn write(w: &Worker, key: usize, overflow: usize, upstream: bool, sample: &Sample) {
    let rec = w
        .writer
        .record(&w.lock, key, overflow, upstream, sample, &w.bounds_us);
    if rec == Recorded::Overflow && w.zone.raise_flag(flag::ARENA_FULL) {
        ngx_log_error!(
            NGX_LOG_WARN,
            w.log,
            "vts_zone is full: upstream samples are counted in the overflow entry; increase the vts_zone size"
        );
    }
}

/// Calls `f` for every peer of every upstream configuration, primaries then backups, under
/// the peers' read lock when they live in an upstream `zone`.
unsafe fn each_peer(
    cycle: *mut ngx_cycle_t,
    mut f: impl FnMut(&'static [u8], &ngx_http_upstream_rr_peer_t, bool, bool),
) {
    // SAFETY: the cycle's upstream main conf and its peers (rr data for every balancer built on
    // round robin) are valid for the cycle; shared peers are read under their rwlock.
    unsafe {
        let Some(umcf) = NgxHttpUpstreamModule::main_conf(&*cycle) else {
            return;
        };
        let upstreams: &[*mut ngx_http_upstream_srv_conf_t] = umcf.upstreams.as_slice();
        for &uscf in upstreams {
            let group = group_of(uscf);
            let peers = (*uscf).peer.data as *mut ngx_http_upstream_rr_peers_t;
            let Some(primary) = peers.as_mut() else { continue };
            let locked = rlock(primary);
            let shared = shared_peers(primary);
            let mut list: *mut ngx_http_upstream_rr_peers_t = primary;
            let mut backup = false;
            while let Some(ps) = list.as_ref() {
                let mut p = ps.peer;
                while let Some(peer) = p.as_ref() {
                    f(group, peer, backup, shared);
                    p = peer.next;
                }
                list = ps.next;
                backup = true;
            }
            if locked {
                unlock(primary);
            }
        }
    }
}

/// Takes the read lock of peers that live in an upstream `zone` (nginx's
/// ngx_http_upstream_rr_peers_rlock); true if it did.
#[cfg(ngx_vts_upstream_zone)]
unsafe fn rlock(peers: &mut ngx_http_upstream_rr_peers_t) -> bool {
    if peers.shpool.is_null() {
        return false;
    }
    // SAFETY: the rwlock of shared peers is an ngx_atomic_t in the upstream zone.
    unsafe { ngx_rwlock_rlock(&mut peers.rwlock) };
    true
}

#[cfg(ngx_vts_upstream_zone)]
unsafe fn unlock(peers: &mut ngx_http_upstream_rr_peers_t) {
    // SAFETY: paired with rlock above.
    unsafe { ngx_rwlock_unlock(&mut peers.rwlock) };
}

/// Whether peers live in an upstream `zone` (shared by the workers, changed at run time).
#[cfg(ngx_vts_upstream_zone)]
fn shared_peers(peers: &ngx_http_upstream_rr_peers_t) -> bool {
    !peers.shpool.is_null()
}

#[cfg(not(ngx_vts_upstream_zone))]
fn shared_peers(_: &ngx_http_upstream_rr_peers_t) -> bool {
    false
}

/// Without the upstream zone module, peers are per worker and need no lock.
#[cfg(not(ngx_vts_upstream_zone))]
unsafe fn rlock(_: &mut ngx_http_upstream_rr_peers_t) -> bool {
    false
}

#[cfg(not(ngx_vts_upstream_zone))]
unsafe fn unlock(_: &mut ngx_http_upstream_rr_peers_t) {}

/// Registers every configured peer, so that each is listed from the first scrape.
pub unsafe fn register_peers(w: &Worker, cycle: *mut ngx_cycle_t) {
    unsafe {
        each_peer(cycle, |group, peer, _, _| {
            w.peers.slot(w, group, peer.name.as_bytes());
            w.peers.remember_group(peer.name.as_bytes(), group);
            // "No live upstreams" attempts are named after the group itself.
            if !group.is_empty() {
                w.peers.remember_group(group, group);
            }
        })
    };
}

/// nginx's live view of every peer (this worker's view when the upstream has no `zone`).
pub fn peer_states() -> Vec<PeerState> {
    let mut out = Vec::new();
    // SAFETY: ngx_cycle and ngx_cached_time are valid in a worker.
    unsafe {
        let now = (*ngx_cached_time).sec;
        each_peer(ngx_cycle as *mut _, |group, p, backup, shared| {
            let failed = p.max_fails != 0 && p.fails >= p.max_fails && now - p.checked <= p.fail_timeout;
            out.push(PeerState {
                group: group.to_vec(),
                server: p.name.as_bytes().to_vec(),
                up: p.down == 0 && !failed,
                // nginx-module-vts: the configured flag, and in an upstream zone also a peer
                // that failed max_fails times (whenever that was).
                down: p.down != 0 || (shared && p.max_fails != 0 && p.fails >= p.max_fails),
                weight: p.weight.max(0) as u64,
                max_fails: p.max_fails as u64,
                fail_timeout_s: p.fail_timeout.max(0) as u64,
                backup,
            });
        });
    }
    out
}
