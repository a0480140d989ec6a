//! Worker start and exit: attach to the zone, claim a shard, register the configured keys;
//! give the shard back.
use ngx::ffi::*;
use ngx::http::HttpModuleMainConf;
use ngx::ngx_log_error;

use super::conf::MainConf;
use super::worker::{code_words, worker, Worker, WORKER};
use super::zone::SlabLock;
use super::Module;
use crate::stats::layout::flag;
use crate::stats::{Claim, Zone};

fn alive(pid: i32) -> bool {
    // SAFETY: kill with signal 0 only checks for existence and permission.
    unsafe { libc::kill(pid, 0) == 0 || *libc::__errno_location() == libc::EPERM }
}

pub unsafe extern "C" fn init_process(cycle: *mut ngx_cycle_t) -> ngx_int_t {
    // SAFETY: called by nginx in the new worker with its cycle.
    unsafe {
        // Cache manager and loader processes run init_process too; they serve no request and
        // must not hold a shard.
        if ngx_process != NGX_PROCESS_WORKER as ngx_uint_t && ngx_process != NGX_PROCESS_SINGLE as ngx_uint_t
        {
            return NGX_OK as ngx_int_t;
        }
        let Some(mcf) = Module::main_conf(&*cycle) else {
            return NGX_OK as ngx_int_t;
        };
        let mcf: &MainConf = mcf;
        let super::conf::ZoneConf::Requested { shm_zone, .. } = mcf.zone else {
            return NGX_OK as ngx_int_t;
        };
        let Some((base, len)) = mcf.region else {
            return NGX_OK as ngx_int_t;
        };
        let Ok(zone) = Zone::attach(base, len, mcf.slot_spec()) else {
            ngx_log_error!(
                NGX_LOG_ALERT,
                (*cycle).log,
                "vts_zone: zone is not initialised, statistics are off"
            );
            return NGX_OK as ngx_int_t;
        };
        let pid = ngx_pid;
        let claim = zone.claim(ngx_worker, pid, alive);
        if claim == Claim::Shared && zone.raise_flag(flag::SHARED_SHARD) {
            ngx_log_error!(
                NGX_LOG_NOTICE,
                (*cycle).log,
                "vts_zone: more worker processes than shards ({}), the extra ones count with atomic adds",
                crate::stats::layout::OWNED_SHARDS
            );
        }
        let lock = SlabLock((*shm_zone).shm.addr as *mut ngx_slab_pool_t);
        *WORKER.0.get() = Some(Worker {
            zone,
            writer: zone.writer(claim),
            lock,
            claim,
            pid,
            upstream_stats: mcf.upstream_stats != 0,
            vozlt: mcf.dialect == super::conf::Dialect::Vozlt,
            code_words: code_words(&mcf.codes),
            epoch_ms: zone.header().created.load(core::sync::atomic::Ordering::Relaxed) * 1000,
            bounds_us: mcf.buckets().iter().copied().collect(),
            log: (*cycle).log,
            peers: Default::default(),
        });
        super::log_phase::resolve_servers(cycle);
        if let Some(w) = worker() {
            if w.upstream_stats {
                super::upstream::register_peers(w, cycle);
            }
        }
        NGX_OK as ngx_int_t
    }
}

pub unsafe extern "C" fn exit_process(_cycle: *mut ngx_cycle_t) {
    // SAFETY: see WorkerCell.
    unsafe {
        if let Some(w) = (*WORKER.0.get()).take() {
            w.zone.release(w.claim, w.pid);
        }
    }
}
