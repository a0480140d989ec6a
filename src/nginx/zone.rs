//! The shared-memory zone: requested at configuration, laid out (or reattached after a
//! reload) in its init callback, and claimed shard by shard by the workers.
use core::ffi::c_void;
use core::ptr::{self, NonNull};

use ngx::ffi::*;
use ngx::{ngx_conf_log_error, ngx_log_error};

use super::conf::MainConf;
use crate::stats::{Zone, ZoneLock};

/// Requests the zone from nginx. The tag folds in the histogram bounds: nginx reuses a zone
/// across a reload only when name, size and tag match, so a reload that changes the bounds (and
/// with them the slot layout) gets a fresh zone instead of one laid out for other bounds.
pub unsafe fn request(
    cf: *mut ngx_conf_t,
    mcf: *mut MainConf,
    name: ngx_str_t,
    size: usize,
) -> Option<*mut ngx_shm_zone_t> {
    // An opaque identity, never dereferenced: the module's address mixed with the bounds.
    let mut h = ptr::addr_of!(super::ngx_http_vts_module) as u64;
    // SAFETY: mcf is the main conf being initialised.
    for b in unsafe { (*mcf).bucket_seconds() } {
        h = (h ^ b.to_bits()).wrapping_mul(0x0100_0000_01b3);
    }
    // And what else the slot holds: another layout must get a fresh zone, not this one.
    let spec = unsafe { (*mcf).slot_spec() };
    let codes: &[u16] = match unsafe { &(*mcf).codes } {
        crate::view::StatusCodes::List(v) => v,
        _ => &[],
    };
    // Keys keep the index of their histogram list: other lists, another zone.
    let lists = unsafe { &(*mcf).bucket_lists };
    let list_words = lists.iter().flat_map(|l| l.iter().copied().chain([u64::MAX]));
    for v in [spec.ncodes, spec.queue as usize]
        .into_iter()
        .chain(codes.iter().map(|&c| c as usize))
        .map(|v| v as u64)
        .chain(list_words)
    {
        h = (h ^ v).wrapping_mul(0x0100_0000_01b3);
    }
    let tag = h as usize as *mut c_void;
    let mut name = name;
    // SAFETY: cf is the configuration being read; nginx copies what it keeps.
    let shm_zone = unsafe { ngx_shared_memory_add(cf, &mut name, size, tag) };
    if shm_zone.is_null() {
        return None;
    }
    // SAFETY: a zone nginx just returned.
    unsafe {
        if !(*shm_zone).data.is_null() {
            ngx_conf_log_error!(
                NGX_LOG_EMERG,
                cf,
                "vts_zone \"{}\" is duplicate",
                String::from_utf8_lossy(name.as_bytes())
            );
            return None;
        }
        (*shm_zone).init = Some(init_zone);
        (*shm_zone).data = mcf as *mut c_void;
    }
    Some(shm_zone)
}

/// Takes every free page of the slab pool as the statistics region (the pool's header, and
/// with it the mutex the master force-unlocks, stays where nginx put it).
fn region(shpool: *mut ngx_slab_pool_t) -> Option<(NonNull<u8>, usize)> {
    // SAFETY: shpool is the freshly initialised slab pool at the start of the zone.
    unsafe {
        let len = (*shpool).pfree * ngx_pagesize;
        let p = ngx_slab_alloc(shpool, len) as *mut u8;
        NonNull::new(p).map(|p| (p, len))
    }
}

/// The zone's init callback: in the master (or the single process), at every configuration
/// load. `shm_zone->data` is this configuration's main conf; `data` is the previous one's when
/// nginx reuses the zone across a reload.
unsafe extern "C" fn init_zone(shm_zone: *mut ngx_shm_zone_t, data: *mut c_void) -> ngx_int_t {
    // SAFETY: nginx passes its zone; the slab pool sits at shm.addr (ngx_init_zone_pool); both
    // main confs are alive (the old cycle is freed only after the new one is initialised).
    unsafe {
        let mcf = &mut *((*shm_zone).data as *mut MainConf);
        let log = (*shm_zone).shm.log;
        let spec = mcf.slot_spec();
        if !data.is_null() {
            let old = &*(data as *const MainConf);
            let Some((base, len)) = old.region else {
                return NGX_ERROR as ngx_int_t;
            };
            return match Zone::attach(base, len, spec) {
                Ok(zone) => {
                    zone.header()
                        .generation
                        .fetch_add(1, core::sync::atomic::Ordering::Relaxed);
                    mcf.region = Some((base, len));
                    NGX_OK as ngx_int_t
                }
                Err(e) => {
                    ngx_log_error!(
                        NGX_LOG_EMERG,
                        log,
                        "vts_zone: cannot reuse the zone after reload: {:?}",
                        e
                    );
                    NGX_ERROR as ngx_int_t
                }
            };
        }
        let shpool = (*shm_zone).shm.addr as *mut ngx_slab_pool_t;
        let Some((base, len)) = region(shpool) else {
            ngx_log_error!(
                NGX_LOG_EMERG,
                log,
                "vts_zone: cannot allocate the statistics region"
            );
            return NGX_ERROR as ngx_int_t;
        };
        let now = (*ngx_cached_time).sec as u64;
        let seed = now.rotate_left(17) ^ (ngx_pid as u64) ^ (base.as_ptr() as u64);
        match Zone::create(base, len, spec, seed, now) {
            Ok(_) => {
                mcf.region = Some((base, len));
                NGX_OK as ngx_int_t
            }
            Err(e) => {
                ngx_log_error!(NGX_LOG_EMERG, log, "vts_zone: the zone is too small: {:?}", e);
                NGX_ERROR as ngx_int_t
            }
        }
    }
}

/// Locks the slab pool's mutex: the master force-unlocks it if a worker dies holding it.
pub struct SlabLock(pub *mut ngx_slab_pool_t);

impl ZoneLock for SlabLock {
    fn with_lock<R>(&self, f: impl FnOnce() -> R) -> R {
        /// Unlocks when dropped: also when `f` panics (the handlers catch panics, and a mutex
        /// left locked by a live worker would stall every worker).
        struct Unlock(*mut ngx_slab_pool_t);
        impl Drop for Unlock {
            fn drop(&mut self) {
                // SAFETY: locked below by this process, on the zone's live pool.
                unsafe { ngx_shmtx_unlock(&mut (*self.0).mutex) };
            }
        }
        // SAFETY: the pool is the zone's, initialised and mapped for the process's life.
        unsafe { ngx_shmtx_lock(&mut (*self.0).mutex) };
        let _unlock = Unlock(self.0);
        f()
    }
}
