//! Upstream peers: naming, the per-attempt samples, and nginx's live view of each peer.
use ngx::ffi::*;
use ngx::ngx_log_error;

use super::conf::LocConf;
use super::live::{each_peer, group_of};
use super::request::ignored;
use super::worker::Worker;
use crate::stats::layout::flag;
use crate::stats::{Recorded, Sample, What, OVERFLOW_UPSTREAM};

/// An attempt nginx recorded without a peer (for example "no live upstreams"): shown as `::none`.
const NO_PEER: &[u8] = b"";
fn bytes(s: *const ngx_str_t) -> &'static [u8] {
    // SAFETY: nginx's peer names live as long as the request (or the cycle).
    unsafe { s.as_ref().map_or(NO_PEER, |s| s.as_bytes()) }
}

/// One sample per upstream attempt of the request. `client` is the request's own sample (its
/// status, bytes and time; with time queues, already in nginx-module-vts's terms).
/// `status` is the client's status as nginx logged it (`client.status` may be clamped to
/// nginx-module-vts's classes).
pub unsafe fn record(w: &Worker, r: &ngx_http_request_t, client: &Sample, status: u64, lcf: &LocConf) {
    let client_status = status;
    // SAFETY: upstream_states is an array of ngx_http_upstream_state_t owned by the request.
    let states: &[ngx_http_upstream_state_t] = unsafe {
        match r.upstream_states.as_ref() {
            Some(a) if a.nelts > 0 => a.as_slice(),
            _ => return,
        }
    };
    let group = group_of(
        unsafe { r.upstream.as_ref() }.map_or(core::ptr::null(), |u| u.upstream),
        w.vozlt,
    );
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
        // "No live upstreams": nginx names the attempt after the upstream itself, which the
        // seed's dialect shows as `::none`; nginx-module-vts keeps the name (a gone peer).
        let peer = if !w.vozlt && !group.is_empty() && peer == group {
            NO_PEER
        } else {
            peer
        };
        let key = w.peers.slot(&w.cache_ctx(), group, peer);
        if !w.vozlt {
            let mut sample = Sample {
                status: st.status as u64,
                bytes_in: st.bytes_received.max(0) as u64,
                bytes_out: st.bytes_sent.max(0) as u64,
                time_ms: client.time_ms,
                upstream_ms: known(st.response_time),
                ..Default::default()
            };
            // An ignored status keeps only the upstream response time.
            if ignored(lcf, sample.status) {
                sample.what = What::ResponseOnly;
            }
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
                queued_at: client.queued_at,
                ..Default::default()
            }
        };
        let status = if serving { client_status } else { st.status as u64 };
        if ignored(lcf, status) {
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
#[inline(always)]
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

/// Registers every configured peer, so that each is listed from the first scrape.
pub unsafe fn register_peers(w: &Worker, cycle: *mut ngx_cycle_t) {
    unsafe {
        each_peer(cycle, w.vozlt, |group, peer, _, _| {
            w.peers.slot(&w.cache_ctx(), group, peer.name.as_bytes());
            w.peers.remember_group(peer.name.as_bytes(), group);
            // "No live upstreams" attempts are named after the group itself.
            if !group.is_empty() {
                w.peers.remember_group(group, group);
            }
        })
    };
}
