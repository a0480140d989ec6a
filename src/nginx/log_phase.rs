//! The LOG_PHASE handler: one sample per main request into this worker's own shard.
use core::panic::AssertUnwindSafe;

use ngx::ffi::*;
use ngx::http::{HttpModuleLocationConf, HttpModuleMainConf, HttpModuleServerConf, NgxHttpCoreModule};
use ngx::ngx_log_error;

use super::conf::{LocConf, SrvConf, UNRESOLVED};
use super::live::now_ms;
use super::request::{finish_sample, ignored, sample};
use super::worker::{worker, Worker};
use super::Module;
use crate::stats::layout::flag;
use crate::stats::{Kind, Recorded, What, OVERFLOW_SERVER};

/// The server zone's name: the server block's first `server_name`, `_` when it has none.
fn server_name(cscf: &ngx_http_core_srv_conf_t) -> &[u8] {
    match cscf.server_name.as_bytes() {
        b"" => b"_",
        n => n,
    }
}

/// A server block's key, from this worker's cache (filled at worker start).
#[inline]
fn resolve(w: &Worker, cscf: &ngx_http_core_srv_conf_t, scf: &SrvConf) -> usize {
    match scf.key.get() {
        UNRESOLVED => register(w, cscf, scf),
        key => key,
    }
}

/// Looks up or registers a server block's key, and caches it in the worker's server conf.
#[cold]
fn register(w: &Worker, cscf: &ngx_http_core_srv_conf_t, scf: &SrvConf) -> usize {
    // The histogram bounds it shows: its server block's (nginx-module-vts takes those of the
    // location of the request that creates the zone; a server's own list is the usual case).
    // SAFETY: cscf->ctx is the server block's configuration context.
    let lcf: Option<&LocConf> = unsafe { cscf.ctx.as_ref() }.and_then(Module::location_conf);
    let tag = lcf.and_then(|l| l.buckets_list).unwrap_or(0);
    match w.zone.key_tagged(&w.lock, Kind::Server, server_name(cscf), tag) {
        Some(k) => {
            scf.key.set(k);
            k
        }
        None => {
            if w.zone.raise_flag(flag::KEYS_FULL) {
                ngx_log_error!(
                    NGX_LOG_WARN,
                    w.log,
                    "vts_zone is full: server \"{}\" is counted in the overflow entry; increase the vts_zone size",
                    String::from_utf8_lossy(server_name(cscf))
                );
            }
            // Keys are never freed, so the zone stays full: remember the overflow entry.
            scf.key.set(OVERFLOW_SERVER);
            OVERFLOW_SERVER
        }
    }
}

/// Registers every configured server zone once, when the worker starts, so that they are all
/// listed from the first scrape and the request path finds its key in the server conf.
pub unsafe fn resolve_servers(cycle: *mut ngx_cycle_t) {
    let Some(w) = worker() else { return };
    // SAFETY: the cycle's http main conf holds the array of server confs.
    unsafe {
        let Some(cmcf) = NgxHttpCoreModule::main_conf(&*cycle) else {
            return;
        };
        let servers: &[*mut ngx_http_core_srv_conf_t] = cmcf.servers.as_slice();
        for &cscf in servers {
            let cscf = &*cscf;
            if let Some(scf) = Module::server_conf(&*cscf.ctx) {
                register(w, cscf, scf);
            }
        }
    }
}

/// Registered in postconfiguration; runs for every request nginx logs.
pub unsafe extern "C" fn handler(r: *mut ngx_http_request_t) -> ngx_int_t {
    // A panic must not cross into nginx: it would abort the worker.
    let _ = std::panic::catch_unwind(AssertUnwindSafe(|| unsafe { record(r) }));
    NGX_OK as ngx_int_t
}

#[inline]
unsafe fn record(r: *mut ngx_http_request_t) {
    let Some(w) = worker() else { return };
    // SAFETY: nginx passes a live request in its log phase.
    let r = unsafe { &*r };
    if !std::ptr::eq(r.main, r) {
        // A subrequest, logged because its location has `log_subrequest on`: its upstream
        // attempts count per peer (nothing else sees them); its main request is counted in the
        // server zone. (nginx-module-vts never counts subrequests: nor does its zone here.)
        if w.upstream_stats && !w.vozlt && !r.upstream_states.is_null() {
            let Some(lcf) = Module::location_conf(r) else {
                return;
            };
            let lcf: &LocConf = lcf;
            if !lcf.counted {
                return;
            }
            let now = now_ms();
            let mut sample = unsafe { sample(r, now) };
            let status = sample.status;
            finish_sample(w, &mut sample, now);
            unsafe { super::upstream::record(w, r, &sample, status, lcf) };
        }
        return;
    }
    // The location the request ended in decides: `vts_status` and `vhost_traffic_status off`
    // and `bypass_stats` locations are not counted.
    let Some(lcf) = Module::location_conf(r) else {
        return;
    };
    let lcf: &LocConf = lcf;
    if !lcf.counted {
        return;
    }
    let (Some(cscf), Some(scf)) = (NgxHttpCoreModule::server_conf(r), Module::server_conf(r)) else {
        return;
    };
    let key = resolve(w, cscf, scf);
    let now = now_ms();
    let mut sample = unsafe { sample(r, now) };
    let status = sample.status;
    let ignored = ignored(lcf, status);
    finish_sample(w, &mut sample, now);
    if w.upstream_stats && !r.upstream_states.is_null() {
        unsafe { super::upstream::record(w, r, &sample, status, lcf) };
    }
    if ignored {
        // nginx-module-vts still shows the zone (its node exists): say it saw a sample.
        if w.vozlt {
            sample.what = What::Seen;
        } else {
            return;
        }
    }
    if w.writer
        .record(&w.lock, key, OVERFLOW_SERVER, false, &sample, &w.bounds_us)
        == Recorded::Overflow
        && w.zone.raise_flag(flag::ARENA_FULL)
    {
        ngx_log_error!(
            NGX_LOG_WARN,
            w.log,
            "vts_zone is full: samples are counted in the overflow entry; increase the vts_zone size"
        );
    }
}
