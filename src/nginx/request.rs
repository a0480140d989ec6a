//! What one request contributes: its sample, as nginx's access log would see it, and what a
//! zone with time queues adds to it.
use ngx::ffi::*;

use super::conf::LocConf;
use super::worker::Worker;
use crate::stats::Sample;

/// Whether `ignore_status` of the location drops `status` (its class).
#[inline]
pub fn ignored(lcf: &LocConf, status: u64) -> bool {
    lcf.ignore_mask != 0 && crate::conf::vozlt::ignores(lcf.ignore_mask, status.min(u16::MAX as u64) as u16)
}

/// What the zone adds to a request's sample: the status code's word (when codes are
/// measured), and with time queues the nginx-module-vts class (kept in `status`, which counts
/// in its class only) and the queue's time.
#[inline(always)]
pub fn finish_sample(w: &Worker, s: &mut Sample, now_ms: u64) {
    if let Some(t) = &w.code_words {
        s.code = Some(t.get(s.status as usize).copied().unwrap_or(0));
    }
    if w.vozlt {
        // nginx-module-vts's classes: below 200 (0 too) is 1xx, 600 and above 5xx.
        s.status = s.status.clamp(100, 599);
        s.queued_at = now_ms.saturating_sub(w.epoch_ms) + 1;
    }
}

/// The request's time at `now_ms` (`$request_time`), milliseconds.
#[inline(always)]
pub fn elapsed_ms(r: &ngx_http_request_t, now_ms: u64) -> u64 {
    let start = (r.start_sec as u64)
        .wrapping_mul(1000)
        .wrapping_add(r.start_msec as u64);
    now_ms.saturating_sub(start)
}

/// What nginx's access log would say about this request. (Inlined, with the rest of the
/// request path: a call per request costs more than its body.)
#[inline(always)]
pub unsafe fn sample(r: &ngx_http_request_t, now_ms: u64) -> Sample {
    // SAFETY: r->connection is live during the log phase.
    let sent = unsafe { (*r.connection).sent };
    let status = if r.err_status != 0 {
        r.err_status
    } else {
        r.headers_out.status
    };
    Sample {
        status: status as u64,
        bytes_in: r.request_length.max(0) as u64,
        bytes_out: sent.max(0) as u64,
        time_ms: elapsed_ms(r, now_ms),
        upstream_ms: None,
        ..Default::default()
    }
}
