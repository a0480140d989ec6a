//! What one request contributes: its sample, as nginx's access log would see it, and what a
//! zone with time queues adds to it.
use ngx::ffi::*;

use super::conf::LocConf;
use super::live::now_ms;
use super::worker::Worker;
use crate::stats::Sample;

/// Whether `ignore_status` of the location drops `status` (its class).
#[inline]
pub fn ignored(lcf: &LocConf, status: u64) -> bool {
    match lcf.ignore {
        None | Some(0) => false,
        Some(mask) => crate::conf::vozlt::ignores(mask, status.min(u16::MAX as u64) as u16),
    }
}

/// nginx-module-vts's class of a status: below 200 (0 too) is 1xx, 600 and above 5xx.
#[inline]
fn vozlt_class(status: u64) -> usize {
    match status {
        0..=199 => 0,
        200..=299 => 1,
        300..=399 => 2,
        400..=499 => 3,
        _ => 4,
    }
}

/// What a zone with time queues adds to a request's sample: the nginx-module-vts class (kept
/// in `status`, which counts in its class only), the status code's word, the queue's time.
#[inline]
pub fn vozlt_sample(w: &Worker, s: &mut Sample) {
    s.code = w
        .code_words
        .as_ref()
        .map(|t| t.get(s.status as usize).copied().unwrap_or(0));
    s.status = [100, 200, 300, 400, 500][vozlt_class(s.status)];
    s.queued_at = now_ms().saturating_sub(w.epoch_ms) + 1;
}

/// The request's time so far (`$request_time`), milliseconds.
pub fn elapsed_ms(r: &ngx_http_request_t) -> u64 {
    // SAFETY: ngx_cached_time points at the current time slot, which nginx keeps valid.
    let now = unsafe { &*ngx_cached_time };
    let ms = (now.sec - r.start_sec) * 1000 + (now.msec as i64 - r.start_msec as i64);
    ms.max(0) as u64
}

/// What nginx's access log would say about this request.
pub unsafe fn sample(r: &ngx_http_request_t) -> Sample {
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
        time_ms: elapsed_ms(r),
        upstream_ms: None,
        ..Default::default()
    }
}
