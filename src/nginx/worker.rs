//! This worker's state: its view of the zone, its shard, its caches. Set when the worker
//! starts (see `process`), read by the request path and the status handler.
use core::cell::UnsafeCell;

use ngx::ffi::*;

use super::peer_cache::PeerCache;
use super::zone::SlabLock;
use crate::stats::{Claim, ShardWriter, Zone};

/// What a worker needs on the request path.
pub struct Worker {
    pub zone: Zone,
    pub writer: ShardWriter,
    pub lock: SlabLock,
    pub claim: Claim,
    pub pid: i32,
    pub upstream_stats: bool,
    /// The zone counts the nginx-module-vts way (time queues, its upstream attempts).
    pub vozlt: bool,
    /// The status-code word of each status 0..=599 (0: `other`), when codes are measured.
    pub code_words: Option<Box<[u16; 600]>>,
    /// Unix milliseconds of the zone's creation: time queue entries count from it.
    pub epoch_ms: u64,
    /// Histogram upper bounds, microseconds.
    pub bounds_us: arrayvec::ArrayVec<u64, { crate::stats::layout::MAX_BUCKETS }>,
    pub log: *mut ngx_log_t,
    /// Upstream peers' slots in this worker.
    pub peers: PeerCache,
}

pub(super) struct WorkerCell(pub(super) UnsafeCell<Option<Worker>>);
// SAFETY: nginx runs a worker's module callbacks (init/exit process, phase handlers) on its one
// event-loop thread; nothing else touches this cell.
unsafe impl Sync for WorkerCell {}
pub(super) static WORKER: WorkerCell = WorkerCell(UnsafeCell::new(None));

/// This process's worker state, if it is a worker with a zone.
///
/// Built for one cycle: a worker never changes cycles. (With `master_process off`, nginx reads
/// the configuration again in the same process on a reload, but stops serving then anyway;
/// that mode is for development.)
#[inline]
pub fn worker() -> Option<&'static Worker> {
    // SAFETY: see WorkerCell; set in init_process, cleared in exit_process, same thread.
    unsafe { (*WORKER.0.get()).as_ref() }
}

/// The status-code word of every status nginx can log (0: `other`), so that the request path
/// finds it with one load.
pub fn code_words(codes: &crate::view::StatusCodes) -> Option<Box<[u16; 600]>> {
    use crate::view::StatusCodes;
    let mut t = Box::new([0u16; 600]);
    match codes {
        StatusCodes::Off => return None,
        StatusCodes::All => (100..600).for_each(|s| t[s] = (s - 99) as u16),
        StatusCodes::List(v) => {
            // A code listed twice counts in its first word (the second shows 0).
            for (i, &c) in v.iter().enumerate().rev() {
                if let Some(w) = t.get_mut(c as usize) {
                    *w = i as u16 + 1;
                }
            }
        }
    }
    Some(t)
}

impl Worker {
    /// What the peer cache needs from this worker.
    #[inline]
    pub fn cache_ctx(&self) -> super::peer_cache::Worker<'_> {
        super::peer_cache::Worker {
            zone: &self.zone,
            lock: &self.lock,
            log: self.log,
        }
    }
}
