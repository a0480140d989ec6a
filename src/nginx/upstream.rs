//! Upstream peers: naming, the per-attempt samples, and nginx's live view of each peer.
use core::cell::RefCell;
use core::hash::{BuildHasherDefault, Hasher};
use std::collections::HashMap;

use ngx::ffi::*;
use ngx::http::{HttpModuleMainConf, NgxHttpUpstreamModule};
use ngx::ngx_log_error;

use super::zone::Worker;
use crate::render::prometheus::PeerState;
use crate::stats::layout::flag;
use crate::stats::{upstream_key, Kind, Recorded, Sample, OVERFLOW_UPSTREAM};

/// The group of a proxy_pass to an address or a variable with no `upstream` block: empty in the
/// key, which no `upstream` block name is; the output shows `::nogroups`, the name
/// nginx-module-vts users know.
pub const NOGROUPS: &[u8] = b"";
/// An attempt nginx recorded without a peer (for example "no live upstreams"): shown as `::none`.
const NO_PEER: &[u8] = b"";
/// Peers this worker remembers the slot of; past this, it looks them up in the directory.
const CACHE_MAX: usize = 4096;

/// FNV-1a: peer names are short and come from the configuration or the resolver.
#[derive(Default)]
pub struct Fnv(u64);
impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        let mut h = if self.0 == 0 {
            0xcbf2_9ce4_8422_2325
        } else {
            self.0
        };
        for &b in bytes {
            h = (h ^ b as u64).wrapping_mul(0x0100_0000_01b3);
        }
        self.0 = h;
    }
}

type FnvMap<K, V> = HashMap<K, V, BuildHasherDefault<Fnv>>;
/// group -> peer -> slot.
type GroupMap = FnvMap<Vec<u8>, FnvMap<Vec<u8>, usize>>;

/// This worker's slots of (group, peer), so the request path does not hash into shared memory
/// for peers it already knows.
#[derive(Default)]
pub struct PeerCache {
    map: RefCell<GroupMap>,
    len: core::cell::Cell<usize>,
}

impl PeerCache {
    /// The slot of (group, peer), registering the peer if it is new; the overflow entry when
    /// the zone has no room (remembered too: keys are never freed, the zone stays full).
    fn slot(&self, w: &Worker, group: &[u8], peer: &[u8]) -> usize {
        if let Some(&k) = self.map.borrow().get(group).and_then(|m| m.get(peer)) {
            return k;
        }
        let k = w.zone.key(&w.lock, Kind::UpstreamPeer, &upstream_key(group, peer));
        if k.is_none() && w.zone.raise_flag(flag::KEYS_FULL) {
            ngx_log_error!(
                NGX_LOG_WARN,
                w.log,
                "vts_zone is full: upstream peer \"{}\" is counted in the overflow entry; increase the vts_zone size",
                String::from_utf8_lossy(peer)
            );
        }
        let k = k.unwrap_or(OVERFLOW_UPSTREAM);
        if self.len.get() < CACHE_MAX {
            self.map.borrow_mut().entry(group.to_vec()).or_default().insert(peer.to_vec(), k);
            self.len.set(self.len.get() + 1);
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

/// One sample per upstream attempt of the request.
pub unsafe fn record(w: &Worker, r: &ngx_http_request_t, request_ms: u64) {
    // SAFETY: upstream_states is an array of ngx_http_upstream_state_t owned by the request.
    let states: &[ngx_http_upstream_state_t] = unsafe {
        match r.upstream_states.as_ref() {
            Some(a) if a.nelts > 0 => a.as_slice(),
            _ => return,
        }
    };
    let group = group_of(unsafe { r.upstream.as_ref() }.map_or(core::ptr::null(), |u| u.upstream));
    for st in states {
        let known = |t: ngx_msec_t| (t != ngx_msec_t::MAX).then_some(t as u64);
        let sample = Sample {
            status: st.status as u64,
            bytes_in: st.bytes_received.max(0) as u64,
            bytes_out: st.bytes_sent.max(0) as u64,
            time_ms: request_ms,
            upstream_ms: known(st.response_time),
        };
        let key = w.peers.slot(w, group, bytes(st.peer));
        let rec = w
            .writer
            .record(&w.lock, key, OVERFLOW_UPSTREAM, true, &sample, &w.bounds_us);
        if rec == Recorded::Overflow && w.zone.raise_flag(flag::ARENA_FULL) {
            ngx_log_error!(
                NGX_LOG_WARN,
                w.log,
                "vts_zone is full: upstream samples are counted in the overflow entry; increase the vts_zone size"
            );
        }
    }
}

/// Calls `f` for every peer of every upstream configuration, primaries then backups, under
/// the peers' read lock when they live in an upstream `zone`.
unsafe fn each_peer(cycle: *mut ngx_cycle_t, mut f: impl FnMut(&[u8], &ngx_http_upstream_rr_peer_t, bool)) {
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
            let mut list: *mut ngx_http_upstream_rr_peers_t = primary;
            let mut backup = false;
            while let Some(ps) = list.as_ref() {
                let mut p = ps.peer;
                while let Some(peer) = p.as_ref() {
                    f(group, peer, backup);
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
        each_peer(cycle, |group, peer, _| {
            w.peers.slot(w, group, peer.name.as_bytes());
        })
    };
}

/// nginx's live view of every peer (this worker's view when the upstream has no `zone`).
pub fn peer_states() -> Vec<PeerState> {
    let mut out = Vec::new();
    // SAFETY: ngx_cycle and ngx_cached_time are valid in a worker.
    unsafe {
        let now = (*ngx_cached_time).sec;
        each_peer(ngx_cycle as *mut _, |group, p, backup| {
            let failed = p.max_fails != 0 && p.fails >= p.max_fails && now - p.checked <= p.fail_timeout;
            out.push(PeerState {
                group: group.to_vec(),
                server: p.name.as_bytes().to_vec(),
                up: p.down == 0 && !failed,
                weight: p.weight.max(0) as u64,
                max_fails: p.max_fails as u64,
                fail_timeout_s: p.fail_timeout.max(0) as u64,
                backup,
            });
        });
    }
    out
}
