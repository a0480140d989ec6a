//! What nginx itself knows now: its connection counters, its upstream peers and their state,
//! its host name and clock. Read by the status handler (and the peers' registration) only.
use ngx::ffi::*;
use ngx::http::{HttpModuleMainConf, NgxHttpUpstreamModule};

use crate::view::{Connections, PeerState};

/// The group of a proxy_pass to an address or a variable with no `upstream` block: empty in the
/// key, which no `upstream` block name is; the output shows `::nogroups`, the name
/// nginx-module-vts users know.
pub const NOGROUPS: &[u8] = b"";

/// nginx's connection counters (stub_status): shared atomics nginx maintains.
#[cfg(ngx_vts_stat_stub)]
pub fn connections() -> Option<Connections> {
    // SAFETY: with NGX_STAT_STUB these point into shared memory nginx set up before the
    // workers started; reading an ngx_atomic_t is a plain load.
    unsafe {
        let rd = |p: *mut ngx_atomic_t| {
            if p.is_null() {
                0
            } else {
                core::ptr::read_volatile(p) as u64
            }
        };
        if ngx_stat_active.is_null() {
            return None;
        }
        Some(Connections {
            active: rd(ngx_stat_active),
            reading: rd(ngx_stat_reading),
            writing: rd(ngx_stat_writing),
            waiting: rd(ngx_stat_waiting),
            accepted: rd(ngx_stat_accepted),
            handled: rd(ngx_stat_handled),
            requests: rd(ngx_stat_requests),
        })
    }
}

/// nginx built without stub_status has no connection counters.
#[cfg(not(ngx_vts_stat_stub))]
pub fn connections() -> Option<Connections> {
    None
}

pub fn hostname() -> &'static [u8] {
    // SAFETY: ngx_cycle is the current cycle; its hostname is set at startup.
    unsafe { (*ngx_cycle).hostname.as_bytes() }
}

/// Unix milliseconds, nginx's cached clock.
#[inline]
pub fn now_ms() -> u64 {
    // SAFETY: ngx_cached_time points at the current time slot, which nginx keeps valid.
    let now = unsafe { &*ngx_cached_time };
    now.sec as u64 * 1000 + now.msec as u64
}

/// The group name of an upstream configuration: an `upstream` block's name. With
/// `portless` (nginx-module-vts's rule) also an implicit upstream without a port, a
/// proxy_pass to a unix socket, named by the socket's path.
pub fn group_of(uscf: *const ngx_http_upstream_srv_conf_t, portless: bool) -> &'static [u8] {
    // SAFETY: a non-null uscf is part of the cycle's configuration.
    match unsafe { uscf.as_ref() } {
        Some(u) if u.flags & NGX_HTTP_UPSTREAM_CREATE as ngx_uint_t != 0 => u.host.as_bytes(),
        Some(u) if portless && u.port == 0 && !u.host.is_empty() => u.host.as_bytes(),
        _ => NOGROUPS,
    }
}

/// Calls `f` for every peer of every upstream configuration, primaries then backups, under
/// the peers' read lock when they live in an upstream `zone`.
pub unsafe fn each_peer(
    cycle: *mut ngx_cycle_t,
    portless: bool,
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
            let group = group_of(uscf, portless);
            let peers = (*uscf).peer.data as *mut ngx_http_upstream_rr_peers_t;
            let Some(primary) = peers.as_mut() else { continue };
            let locked = rlock(primary);
            let shared = shared_peers(primary);
            let mut group_peers: Vec<(&ngx_http_upstream_rr_peer_t, bool)> = Vec::new();
            let mut list: *mut ngx_http_upstream_rr_peers_t = primary;
            let mut backup = false;
            while let Some(ps) = list.as_ref() {
                let mut p = ps.peer;
                while let Some(peer) = p.as_ref() {
                    group_peers.push((peer, backup));
                    p = peer.next;
                }
                list = ps.next;
                backup = true;
            }
            // nginx-module-vts lists the peers of an upstream without a `zone` in the order of
            // its `server` lines, backups where they stand.
            if portless && !shared {
                let mut left: Vec<Option<(&ngx_http_upstream_rr_peer_t, bool)>> =
                    group_peers.drain(..).map(Some).collect();
                for (name, backup) in server_lines(uscf) {
                    let found = left
                        .iter_mut()
                        .find(|p| p.is_some_and(|(peer, b)| b == backup && peer.name.as_bytes() == name));
                    if let Some(p) = found.and_then(Option::take) {
                        group_peers.push(p);
                    }
                }
                // (Anything the lines do not name, in nginx's order.)
                group_peers.extend(left.into_iter().flatten());
            }
            for (peer, backup) in group_peers {
                f(group, peer, backup, shared);
            }
            if locked {
                unlock(primary);
            }
        }
    }
}

/// The addresses of an upstream's `server` lines, in order, with their `backup` flag.
unsafe fn server_lines<'a>(uscf: *const ngx_http_upstream_srv_conf_t) -> Vec<(&'a [u8], bool)> {
    let mut out = Vec::new();
    // SAFETY: the servers array of a configured upstream holds ngx_http_upstream_server_t,
    // each with naddrs resolved addresses; all live as long as the cycle.
    unsafe {
        let Some(servers) = uscf.as_ref().and_then(|u| u.servers.as_ref()) else {
            return out;
        };
        let lines: &[ngx_http_upstream_server_t] = servers.as_slice();
        for line in lines {
            if line.addrs.is_null() {
                continue;
            }
            for a in core::slice::from_raw_parts(line.addrs, line.naddrs) {
                out.push((a.name.as_bytes(), line.backup() != 0));
            }
        }
    }
    out
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

/// nginx's live view of every peer (this worker's view when the upstream has no `zone`);
/// `portless` as for [`group_of`].
pub fn peer_states(portless: bool) -> Vec<PeerState> {
    let mut out = Vec::new();
    // SAFETY: ngx_cycle and ngx_cached_time are valid in a worker.
    unsafe {
        let now = (*ngx_cached_time).sec;
        each_peer(ngx_cycle as *mut _, portless, |group, p, backup, shared| {
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
