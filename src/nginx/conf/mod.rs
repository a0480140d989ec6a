//! Directives: what the configuration holds (the module's main, server and location confs),
//! the checks that need the whole http block, and the errors `nginx -t` prints.
//!
//! - `seed_directives`: the seed's `vts_*` directives and their errors;
//! - `vozlt_directives`: nginx-module-vts's `vhost_traffic_status_*` directives (their values
//!   are parsed by the pure `crate::conf::vozlt`);
//! - `commands`: the directive table nginx reads.
use core::cell::Cell;
use core::ffi::{c_char, c_void};
use core::fmt;

use arrayvec::ArrayVec;
use ngx::core::{NGX_CONF_ERROR, NGX_CONF_OK};
use ngx::ffi::*;
use ngx::http::{Merge, MergeConfigError};
use ngx::ngx_conf_log_error;

mod commands;
mod seed_directives;
mod vozlt_directives;

pub use commands::COMMANDS;
pub use seed_directives::ConfError;
use seed_directives::{fail, s};

use crate::stats::layout::{Geometry, GeometryError, SlotSpec, MAX_BUCKETS};
use crate::view::{AvgMethod, StatusCodes};

/// Smallest `vts_zone` size accepted: the fixed tables plus room for some keys.
pub const MIN_ZONE_SIZE: usize = 64 * 1024;
/// Offsets inside the zone are 32-bit.
pub const MAX_ZONE_SIZE: usize = u32::MAX as usize;
/// Prometheus client libraries' default buckets, in seconds.
pub const DEFAULT_BUCKETS: [f64; 11] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// The statistics zone, as the configuration knows it.
#[derive(Debug, Default)]
pub enum ZoneConf {
    #[default]
    Unset,
    /// Declared by `vts_zone`; the shared memory is requested once the http block is read.
    Configured { name: ngx_str_t, size: usize },
    /// Requested from nginx (`ngx_shared_memory_add`).
    Requested {
        name: ngx_str_t,
        shm_zone: *mut ngx_shm_zone_t,
    },
}

/// Histogram bounds, ascending, in seconds (as configured) and in microseconds (as compared).
#[derive(Debug, Clone, Default)]
pub struct Buckets {
    pub seconds: ArrayVec<f64, MAX_BUCKETS>,
    pub micros: ArrayVec<u64, MAX_BUCKETS>,
}

impl Buckets {
    /// nginx-module-vts's bounds: whole milliseconds, in configuration order.
    /// Sorted and without repeats: a bound's count is cumulative either way, so the counts
    /// are the C module's, listed in ascending order.
    fn from_ms(ms: &[u64]) -> Buckets {
        let mut ms = ms.to_vec();
        ms.sort_unstable();
        ms.dedup();
        let mut b = Buckets::default();
        for &v in ms.iter().take(MAX_BUCKETS) {
            b.seconds.push(v as f64 / 1000.0);
            b.micros.push(v.saturating_mul(1000));
        }
        b
    }

    fn from_seconds(s: &[f64]) -> Buckets {
        let mut b = Buckets::default();
        for &v in s {
            b.seconds.push(v);
            b.micros.push(micros(v) as u64);
        }
        b
    }
}

/// A bound in seconds as the request path compares it: whole microseconds.
fn micros(seconds: f64) -> f64 {
    (seconds * 1e6).round()
}

/// Which spelling declared the zone: it decides the defaults and what a slot keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Dialect {
    /// `vts_zone`: the seed's counters (200 bytes per key per worker with its defaults).
    #[default]
    Seed,
    /// `vhost_traffic_status_zone`: nginx-module-vts's, with time queues and its counting of
    /// upstream attempts.
    Vozlt,
}

#[derive(Debug)]
pub struct MainConf {
    pub zone: ZoneConf,
    pub dialect: Dialect,
    pub upstream_stats: ngx_flag_t,
    /// The directive that set `upstream_stats` (the two spellings conflict).
    pub upstream_stats_by: Option<&'static str>,
    /// `None` until `vts_histogram_buckets` or init_main_conf sets them.
    pub buckets: Option<Buckets>,
    /// The directive that set `buckets` at the http level.
    pub buckets_by: Option<&'static str>,
    /// `vhost_traffic_status_histogram_buckets` lists in milliseconds, in configuration order:
    /// the http block's first (empty without one), then those of server and location blocks.
    /// A key shows the list of where it was registered (its tag); the zone counts in the
    /// union of them all, from which every list's cumulative counts follow.
    pub bucket_lists: Vec<Vec<u64>>,
    /// `vhost_traffic_status_measure_status_codes`.
    pub codes: StatusCodes,
    /// Unix milliseconds when this configuration was read (`loadMsec`).
    pub load_msec: u64,
    /// Locations with `vts_status` (they need a zone).
    pub status_locations: ngx_uint_t,
    /// The statistics region in shared memory, once the zone init callback laid it out.
    pub region: Option<(core::ptr::NonNull<u8>, usize)>,
}

impl Default for MainConf {
    fn default() -> Self {
        MainConf {
            zone: ZoneConf::Unset,
            dialect: Dialect::Seed,
            upstream_stats: NGX_CONF_UNSET as ngx_flag_t,
            upstream_stats_by: None,
            buckets: None,
            buckets_by: None,
            bucket_lists: vec![Vec::new()],
            codes: StatusCodes::Off,
            load_msec: 0,
            status_locations: 0,
            region: None,
        }
    }
}

impl MainConf {
    /// Histogram bounds in microseconds (what the request path compares).
    pub fn buckets(&self) -> &[u64] {
        self.buckets.as_ref().map_or(&[], |b| b.micros.as_slice())
    }

    /// Histogram bounds in seconds (what the output shows).
    pub fn bucket_seconds(&self) -> &[f64] {
        self.buckets.as_ref().map_or(&[], |b| b.seconds.as_slice())
    }

    /// What a slot of this configuration's zone holds.
    pub fn slot_spec(&self) -> SlotSpec {
        SlotSpec {
            nbuckets: self.buckets().len(),
            ncodes: match &self.codes {
                StatusCodes::Off => 0,
                StatusCodes::List(v) => v.len() + 1,
                StatusCodes::All => 501,
            },
            queue: self.dialect == Dialect::Vozlt,
        }
    }

    /// The zone directive's name, for messages.
    pub fn zone_directive(&self) -> &'static str {
        match self.dialect {
            Dialect::Seed => "vts_zone",
            Dialect::Vozlt => "vhost_traffic_status_zone",
        }
    }
}

/// Per server block; lives in each worker's own memory, so the cached slot is per worker.
#[derive(Debug)]
pub struct SrvConf {
    /// The server zone's slot in this worker, or `UNRESOLVED`.
    pub key: Cell<usize>,
}

pub const UNRESOLVED: usize = usize::MAX;

impl Default for SrvConf {
    fn default() -> Self {
        SrvConf {
            key: Cell::new(UNRESOLVED),
        }
    }
}

impl Merge for SrvConf {
    fn merge(&mut self, _prev: &Self) -> Result<(), MergeConfigError> {
        Ok(())
    }
}

/// The formats of a display location.
pub use crate::conf::vozlt::DisplayFormat;

#[derive(Debug)]
pub struct LocConf {
    /// This location serves the statistics with `vts_status` (and its requests are not counted).
    pub status: bool,
    /// This location serves the statistics with `vhost_traffic_status_display`.
    pub display: bool,
    /// `vts_status_cache`: how long a worker answers scrapes with the text it rendered last.
    pub cache: ngx_msec_t,
    /// `vhost_traffic_status on|off`: count the requests that end here.
    pub enable: ngx_flag_t,
    /// `vhost_traffic_status_bypass_stats`.
    pub bypass_stats: ngx_flag_t,
    pub format: Option<DisplayFormat>,
    pub jsonp: Option<Vec<u8>>,
    pub sum_key: Option<Vec<u8>>,
    pub avg_method: Option<AvgMethod>,
    pub avg_period: ngx_msec_t,
    /// `vhost_traffic_status_ignore_status`: bit `c` set ignores status class `c` (0 = 1xx).
    pub ignore: Option<u8>,
    /// The index in `MainConf::bucket_lists` of this level's histogram bounds (inherited).
    pub buckets_list: Option<u32>,
    /// After the merge: whether requests that end here are counted, and the classes they
    /// ignore (0: none), read by the request path.
    pub counted: bool,
    pub ignore_mask: u8,
}

impl Default for LocConf {
    fn default() -> Self {
        LocConf {
            status: false,
            display: false,
            cache: NGX_CONF_UNSET_MSEC,
            enable: NGX_CONF_UNSET as ngx_flag_t,
            bypass_stats: NGX_CONF_UNSET as ngx_flag_t,
            format: None,
            jsonp: None,
            sum_key: None,
            avg_method: None,
            avg_period: NGX_CONF_UNSET_MSEC,
            ignore: None,
            buckets_list: None,
            counted: true,
            ignore_mask: 0,
        }
    }
}

/// nginx's NGX_CONF_UNSET_MSEC.
const NGX_CONF_UNSET_MSEC: ngx_msec_t = ngx_msec_t::MAX;

impl LocConf {
    /// Whether requests that end in this location are counted.
    pub fn counts(&self) -> bool {
        self.enable != 0 && self.bypass_stats != 1 && !self.status
    }

    pub fn avg_period_ms(&self) -> u64 {
        if self.avg_period == NGX_CONF_UNSET_MSEC {
            60_000
        } else {
            self.avg_period as u64
        }
    }

    pub fn cache_ttl(&self) -> ngx_msec_t {
        if self.cache == NGX_CONF_UNSET_MSEC {
            0
        } else {
            self.cache
        }
    }
}

impl Merge for LocConf {
    // `vts_status` is not inherited by nested locations, like nginx's `stub_status`;
    // `vts_status_cache` is, like nginx's time settings.
    fn merge(&mut self, prev: &Self) -> Result<(), MergeConfigError> {
        if self.cache == NGX_CONF_UNSET_MSEC {
            self.cache = prev.cache;
        }
        let unset = NGX_CONF_UNSET as ngx_flag_t;
        if self.enable == unset {
            self.enable = if prev.enable == unset { 1 } else { prev.enable };
        }
        if self.bypass_stats == unset {
            self.bypass_stats = if prev.bypass_stats == unset {
                0
            } else {
                prev.bypass_stats
            };
        }
        if self.format.is_none() {
            self.format = prev.format;
        }
        if self.jsonp.is_none() {
            self.jsonp.clone_from(&prev.jsonp);
        }
        if self.sum_key.is_none() {
            self.sum_key.clone_from(&prev.sum_key);
        }
        // The method and the period inherit each on its own (reference 1.17).
        if self.avg_method.is_none() {
            self.avg_method = prev.avg_method;
        }
        if self.avg_period == NGX_CONF_UNSET_MSEC {
            self.avg_period = prev.avg_period;
        }
        if self.ignore.is_none() {
            self.ignore = prev.ignore;
        }
        if self.buckets_list.is_none() {
            self.buckets_list = prev.buckets_list;
        }
        self.counted = self.counts();
        self.ignore_mask = self.ignore.unwrap_or(0);
        Ok(())
    }
}

pub(super) unsafe fn args<'a>(cf: *mut ngx_conf_t) -> &'a [ngx_str_t] {
    // SAFETY: nginx passes the directive's words in cf->args (name first).
    unsafe { (*(*cf).args).as_slice() }
}

/// Two spellings of one setting in one configuration: the text `nginx -t` prints.
pub(super) unsafe fn conflict(cf: *mut ngx_conf_t, this: &str, other: &str) -> *mut c_char {
    ngx_conf_log_error!(
        NGX_LOG_EMERG,
        cf,
        "\"{}\" conflicts with \"{}\": they set the same thing, use one of them",
        this,
        other
    );
    NGX_CONF_ERROR
}

pub(super) unsafe fn emerg(cf: *mut ngx_conf_t, msg: impl fmt::Display) -> *mut c_char {
    ngx_conf_log_error!(NGX_LOG_EMERG, cf, "{}", msg);
    NGX_CONF_ERROR
}

/// After the http block: defaults and the checks that need the whole block.
pub unsafe extern "C" fn init_main_conf(cf: *mut ngx_conf_t, conf: *mut c_void) -> *mut c_char {
    // SAFETY: conf is our main conf, cf the configuration being read.
    unsafe {
        let mcf = &mut *(conf as *mut MainConf);
        let vozlt = mcf.dialect == Dialect::Vozlt;
        // The defaults of the spelling that declared the zone: nginx-module-vts counts
        // upstreams and keeps no histogram unless asked.
        if mcf.upstream_stats == NGX_CONF_UNSET as ngx_flag_t {
            mcf.upstream_stats = vozlt as ngx_flag_t;
        }
        // `vts_histogram_buckets` fixes the zone's bounds: a list of a server or location
        // could not be shown from them.
        if mcf.buckets_by == Some("vts_histogram_buckets") && mcf.bucket_lists.iter().any(|l| !l.is_empty()) {
            return conflict(
                cf,
                "vhost_traffic_status_histogram_buckets",
                "vts_histogram_buckets",
            );
        }
        if mcf.buckets.is_none() {
            // nginx-module-vts's lists: the zone counts in their union (each list's cumulative
            // counts follow from it); without any, no histogram.
            let mut union: Vec<u64> = mcf.bucket_lists.iter().flatten().copied().collect();
            union.sort_unstable();
            union.dedup();
            if union.len() > MAX_BUCKETS {
                ngx_conf_log_error!(
                    NGX_LOG_WARN,
                    cf,
                    "vhost_traffic_status_histogram_buckets: the lists have {} different bounds together, ngx_vts counts the {} smallest (a bound above them counts as +Inf)",
                    union.len(),
                    MAX_BUCKETS
                );
            }
            if !union.is_empty() || vozlt {
                mcf.buckets = Some(Buckets::from_ms(&union));
            } else {
                mcf.buckets = Some(Buckets::from_seconds(&DEFAULT_BUCKETS));
            }
        }
        let now = &*ngx_cached_time;
        mcf.load_msec = now.sec as u64 * 1000 + now.msec as u64;
        match mcf.zone {
            ZoneConf::Unset if mcf.status_locations > 0 => fail(cf, ConfError::StatusWithoutZone),
            ZoneConf::Unset | ZoneConf::Requested { .. } => NGX_CONF_OK,
            ZoneConf::Configured { name, size } => {
                let nbuckets = mcf.buckets().len();
                if let Err(GeometryError::TooSmall { needed }) = Geometry::new(size, mcf.slot_spec()) {
                    let what = match mcf.dialect {
                        Dialect::Seed => format!("{nbuckets} histogram buckets"),
                        Dialect::Vozlt => "its time queues and status codes".to_string(),
                    };
                    ngx_conf_log_error!(
                        NGX_LOG_EMERG,
                        cf,
                        "{} \"{}\": size {} is too small for {}, it needs {}k",
                        mcf.zone_directive(),
                        s(&name),
                        size,
                        what,
                        needed.div_ceil(1024) + 8
                    );
                    return NGX_CONF_ERROR;
                }
                // The module definition requests the zone next (see `super::init_main_conf`).
                let _ = (name, size);
                NGX_CONF_OK
            }
        }
    }
}
