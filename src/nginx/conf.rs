//! Directives: parsing, validation, and the errors `nginx -t` prints.
use core::cell::Cell;
use core::ffi::{c_char, c_void};
use core::fmt;
use core::ptr;

use arrayvec::ArrayVec;
use ngx::core::{NGX_CONF_ERROR, NGX_CONF_OK};
use ngx::ffi::*;
use ngx::http::{HttpModuleLocationConf, HttpModuleMainConf, Merge, MergeConfigError};
use ngx::ngx_conf_log_error;

use super::Module;
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

/// Configuration errors; `Display` is the exact text `nginx -t` prints.
#[derive(Debug, Clone, PartialEq)]
pub enum ConfError {
    InvalidSize { zone: String, size: String },
    TooSmall { zone: String, size: String },
    TooLarge { zone: String, size: String },
    Duplicate { zone: String },
    SecondZone { zone: String, first: String },
    StatusWithoutZone,
    BadBucket { value: String },
    BucketsNotAscending { value: String, prev: String },
    TooManyBuckets,
    BucketsOffWithBounds,
    BucketsDuplicate,
}

impl fmt::Display for ConfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use ConfError::*;
        match self {
            InvalidSize { zone, size } => write!(f, "vts_zone \"{zone}\": invalid size \"{size}\""),
            TooSmall { zone, size } => write!(
                f,
                "vts_zone \"{zone}\": size \"{size}\" is too small, the minimum is {}k",
                MIN_ZONE_SIZE / 1024
            ),
            TooLarge { zone, size } => write!(
                f,
                "vts_zone \"{zone}\": size \"{size}\" is too large, the maximum is {}m",
                MAX_ZONE_SIZE / (1024 * 1024)
            ),
            Duplicate { zone } => write!(f, "vts_zone \"{zone}\" is duplicate"),
            SecondZone { zone, first } => {
                write!(
                    f,
                    "vts_zone \"{zone}\": only one vts_zone is allowed, \"{first}\" is already declared"
                )
            }
            StatusWithoutZone => write!(f, "\"vts_status\" requires \"vts_zone\" in the http block"),
            BadBucket { value } => {
                write!(f, "vts_histogram_buckets: invalid bound \"{value}\", it must be a number of seconds from 0.000001 to 1000000")
            }
            BucketsNotAscending { value, prev } => {
                write!(
                    f,
                    "vts_histogram_buckets: bounds must be ascending, \"{value}\" follows \"{prev}\""
                )
            }
            TooManyBuckets => write!(
                f,
                "vts_histogram_buckets: at most {MAX_BUCKETS} bounds are allowed"
            ),
            BucketsOffWithBounds => write!(f, "vts_histogram_buckets: \"off\" takes no bounds after it"),
            BucketsDuplicate => write!(f, "\"vts_histogram_buckets\" directive is duplicate"),
        }
    }
}

fn s(v: &ngx_str_t) -> String {
    String::from_utf8_lossy(v.as_bytes()).into_owned()
}

/// Parses `vts_zone NAME SIZE` (without side effects).
pub fn parse_zone(name: &ngx_str_t, size: &ngx_str_t) -> Result<usize, ConfError> {
    let mut v = *size;
    // SAFETY: ngx_parse_size only reads `v`'s bytes.
    let n = unsafe { ngx_parse_size(&mut v) };
    if n <= 0 {
        return Err(ConfError::InvalidSize {
            zone: s(name),
            size: s(size),
        });
    }
    let n = n as usize;
    if n < MIN_ZONE_SIZE {
        return Err(ConfError::TooSmall {
            zone: s(name),
            size: s(size),
        });
    }
    if n > MAX_ZONE_SIZE {
        return Err(ConfError::TooLarge {
            zone: s(name),
            size: s(size),
        });
    }
    Ok(n)
}

/// Parses the bounds of `vts_histogram_buckets`.
pub fn parse_buckets<'a>(args: impl Iterator<Item = &'a [u8]>) -> Result<Buckets, ConfError> {
    let mut out: ArrayVec<f64, MAX_BUCKETS> = ArrayVec::new();
    let mut prev: Option<&[u8]> = None;
    let mut args = args.peekable();
    // `off`: no bounds, no histograms (half the memory per key, 60 % less text).
    if args.peek() == Some(&&b"off"[..]) {
        args.next();
        return match args.next() {
            None => Ok(Buckets::from_seconds(&[])),
            Some(_) => Err(ConfError::BucketsOffWithBounds),
        };
    }
    for a in args {
        let text = String::from_utf8_lossy(a).into_owned();
        let v: f64 = core::str::from_utf8(a)
            .ok()
            .and_then(|t| t.parse().ok())
            // Microseconds are what the request path compares: a bound must be at least one.
            .filter(|v: &f64| v.is_finite() && micros(*v) >= 1.0 && *v <= 1e6)
            .ok_or(ConfError::BadBucket { value: text.clone() })?;
        if let (Some(&last), Some(p)) = (out.last(), prev) {
            if micros(v) <= micros(last) {
                return Err(ConfError::BucketsNotAscending {
                    value: text,
                    prev: String::from_utf8_lossy(p).into_owned(),
                });
            }
        }
        out.try_push(v).map_err(|_| ConfError::TooManyBuckets)?;
        prev = Some(a);
    }
    Ok(Buckets::from_seconds(&out))
}

unsafe fn args<'a>(cf: *mut ngx_conf_t) -> &'a [ngx_str_t] {
    // SAFETY: nginx passes the directive's words in cf->args (name first).
    unsafe { (*(*cf).args).as_slice() }
}

unsafe fn fail(cf: *mut ngx_conf_t, e: ConfError) -> *mut c_char {
    ngx_conf_log_error!(NGX_LOG_EMERG, cf, "{}", e);
    NGX_CONF_ERROR
}

pub extern "C" fn cmd_zone(cf: *mut ngx_conf_t, _cmd: *mut ngx_command_t, conf: *mut c_void) -> *mut c_char {
    // SAFETY: conf is our main conf (NGX_HTTP_MAIN_CONF_OFFSET); args has 3 words (TAKE2).
    unsafe {
        let mcf = &mut *(conf as *mut MainConf);
        let a = args(cf);
        let (name, size) = (a[1], a[2]);
        if !matches!(mcf.zone, ZoneConf::Unset) && mcf.dialect == Dialect::Vozlt {
            return conflict(cf, "vts_zone", "vhost_traffic_status_zone");
        }
        match &mcf.zone {
            ZoneConf::Unset => {}
            ZoneConf::Configured { name: first, .. } | ZoneConf::Requested { name: first, .. } => {
                return fail(
                    cf,
                    if first.as_bytes() == name.as_bytes() {
                        ConfError::Duplicate { zone: s(&name) }
                    } else {
                        ConfError::SecondZone {
                            zone: s(&name),
                            first: s(first),
                        }
                    },
                );
            }
        }
        match parse_zone(&name, &size) {
            Ok(size) => {
                mcf.zone = ZoneConf::Configured { name, size };
                NGX_CONF_OK
            }
            Err(e) => fail(cf, e),
        }
    }
}

pub extern "C" fn cmd_status(
    cf: *mut ngx_conf_t,
    _cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    // SAFETY: conf is our location conf; the core location conf of this block is in cf->ctx.
    unsafe {
        (*(conf as *mut LocConf)).status = true;
        // (A panic here would abort nginx -t: every handler returns an error instead.)
        let Some(clcf) = ngx::http::NgxHttpCoreModule::location_conf_mut(&*cf) else {
            return NGX_CONF_ERROR;
        };
        clcf.handler = Some(super::STATUS_HANDLER);
        if let Some(mcf) = Module::main_conf_mut(&*cf) {
            mcf.status_locations += 1;
        }
    }
    NGX_CONF_OK
}

pub extern "C" fn cmd_buckets(
    cf: *mut ngx_conf_t,
    _cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    // SAFETY: conf is our main conf; args has the directive name and at least one word.
    unsafe {
        let mcf = &mut *(conf as *mut MainConf);
        match mcf.buckets_by {
            Some("vts_histogram_buckets") => return fail(cf, ConfError::BucketsDuplicate),
            Some(other) => return conflict(cf, "vts_histogram_buckets", other),
            None => {}
        }
        match parse_buckets(args(cf)[1..].iter().map(|a| a.as_bytes())) {
            Ok(b) => {
                mcf.buckets = Some(b);
                mcf.buckets_by = Some("vts_histogram_buckets");
                NGX_CONF_OK
            }
            Err(e) => fail(cf, e),
        }
    }
}

/// Two spellings of one setting in one configuration: the text `nginx -t` prints.
unsafe fn conflict(cf: *mut ngx_conf_t, this: &str, other: &str) -> *mut c_char {
    ngx_conf_log_error!(
        NGX_LOG_EMERG,
        cf,
        "\"{}\" conflicts with \"{}\": they set the same thing, use one of them",
        this,
        other
    );
    NGX_CONF_ERROR
}

unsafe fn emerg(cf: *mut ngx_conf_t, msg: impl fmt::Display) -> *mut c_char {
    ngx_conf_log_error!(NGX_LOG_EMERG, cf, "{}", msg);
    NGX_CONF_ERROR
}

/// The directive's name (for messages of handlers that serve two spellings).
unsafe fn directive(cf: *mut ngx_conf_t) -> &'static str {
    // SAFETY: args[0] is the directive's name, which is one of ours (ASCII).
    let name = unsafe { args(cf)[0].as_bytes() };
    COMMAND_NAMES
        .iter()
        .copied()
        .find(|n| n.as_bytes() == name)
        .unwrap_or("vts")
}

const COMMAND_NAMES: [&str; 2] = ["vts_upstream_stats", "vhost_traffic_status_stats_by_upstream"];

/// `vts_upstream_stats` and `vhost_traffic_status_stats_by_upstream`: one setting.
pub extern "C" fn cmd_upstream_stats(
    cf: *mut ngx_conf_t,
    _cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    // SAFETY: conf is our main conf; a FLAG directive has one argument.
    unsafe {
        let mcf = &mut *(conf as *mut MainConf);
        let this = directive(cf);
        match mcf.upstream_stats_by {
            Some(by) if by == this => return emerg(cf, format_args!("\"{this}\" directive is duplicate")),
            Some(by) => return conflict(cf, this, by),
            None => {}
        }
        let v = args(cf)[1].as_bytes();
        mcf.upstream_stats = if v.eq_ignore_ascii_case(b"on") {
            1
        } else if v.eq_ignore_ascii_case(b"off") {
            0
        } else {
            return emerg(
                cf,
                format_args!(
                    "invalid value \"{}\" in \"{this}\" directive, it must be \"on\" or \"off\"",
                    String::from_utf8_lossy(v)
                ),
            );
        };
        mcf.upstream_stats_by = Some(this);
    }
    NGX_CONF_OK
}

/// `vhost_traffic_status_zone [shared:NAME:SIZE]`.
pub extern "C" fn cmd_vozlt_zone(
    cf: *mut ngx_conf_t,
    _cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    use crate::conf::vozlt;
    // SAFETY: conf is our main conf; args has the name and at most one argument.
    unsafe {
        let mcf = &mut *(conf as *mut MainConf);
        let a = args(cf);
        let (name, size) = match a.get(1) {
            None => (vozlt::DEFAULT_ZONE_NAME.to_vec(), vozlt::DEFAULT_ZONE_SIZE),
            Some(arg) => match vozlt::parse_zone_arg(arg.as_bytes(), ngx_pagesize) {
                Ok(v) => v,
                Err(e) => return emerg(cf, e),
            },
        };
        match &mcf.zone {
            ZoneConf::Unset => {}
            _ if mcf.dialect == Dialect::Seed => {
                return conflict(cf, "vhost_traffic_status_zone", "vts_zone");
            }
            ZoneConf::Configured { name: first, .. } | ZoneConf::Requested { name: first, .. } => {
                return if first.as_bytes() == name.as_slice() {
                    emerg(
                        cf,
                        format_args!(
                            "vhost_traffic_status: \"{}\" is already bound to key",
                            String::from_utf8_lossy(&name)
                        ),
                    )
                } else {
                    emerg(
                        cf,
                        format_args!(
                            "vhost_traffic_status_zone \"{}\": only one zone is supported, \"{}\" is already declared",
                            String::from_utf8_lossy(&name),
                            String::from_utf8_lossy(first.as_bytes())
                        ),
                    )
                };
            }
        }
        let Some(name) = pool_str(cf, &name) else {
            return NGX_CONF_ERROR;
        };
        mcf.zone = ZoneConf::Configured { name, size };
        mcf.dialect = Dialect::Vozlt;
    }
    NGX_CONF_OK
}

/// A copy of `bytes` in the configuration's pool (nginx keeps pointers to zone names).
unsafe fn pool_str(cf: *mut ngx_conf_t, bytes: &[u8]) -> Option<ngx_str_t> {
    // SAFETY: the configuration pool lives as long as the cycle.
    unsafe {
        let p = ngx_pnalloc((*cf).pool, bytes.len().max(1)) as *mut u8;
        if p.is_null() {
            return None;
        }
        ptr::copy_nonoverlapping(bytes.as_ptr(), p, bytes.len());
        Some(ngx_str_t {
            len: bytes.len(),
            data: p,
        })
    }
}

/// `vhost_traffic_status_display`: this location (or server) serves the statistics.
pub extern "C" fn cmd_display(
    cf: *mut ngx_conf_t,
    _cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    // SAFETY: conf is our location conf; the core location conf of this block is in cf->ctx.
    unsafe {
        (*(conf as *mut LocConf)).display = true;
        let Some(clcf) = ngx::http::NgxHttpCoreModule::location_conf_mut(&*cf) else {
            return NGX_CONF_ERROR;
        };
        clcf.handler = Some(super::STATUS_HANDLER);
    }
    NGX_CONF_OK
}

/// The `vhost_traffic_status_*` directives with one parsed argument list each.
pub extern "C" fn cmd_vozlt(cf: *mut ngx_conf_t, _cmd: *mut ngx_command_t, conf: *mut c_void) -> *mut c_char {
    use crate::conf::vozlt;
    // SAFETY: conf is the conf the table names for the directive; args are its words.
    unsafe {
        let a = args(cf);
        let name = a[0].as_bytes();
        let values: Vec<&[u8]> = a[1..].iter().map(|v| v.as_bytes()).collect();
        let lcf = || &mut *(conf as *mut LocConf);
        // One value per level, as nginx's own slots say.
        let duplicate = || {
            emerg(
                cf,
                format_args!("\"{}\" directive is duplicate", String::from_utf8_lossy(name)),
            )
        };
        match name {
            b"vhost_traffic_status_display_format" => match vozlt::parse_display_format(values[0]) {
                _ if lcf().format.is_some() => return duplicate(),
                Ok(f) => lcf().format = Some(f),
                Err(e) => return emerg(cf, e),
            },
            b"vhost_traffic_status_display_jsonp" if lcf().jsonp.is_some() => return duplicate(),
            b"vhost_traffic_status_display_jsonp" => lcf().jsonp = Some(values[0].to_vec()),
            b"vhost_traffic_status_display_sum_key" if lcf().sum_key.is_some() => return duplicate(),
            b"vhost_traffic_status_display_sum_key" => lcf().sum_key = Some(values[0].to_vec()),
            b"vhost_traffic_status_average_method" => {
                let l = lcf();
                match vozlt::parse_average_method(&values, l.avg_method.is_some()) {
                    Ok((m, period)) => {
                        l.avg_method = Some(m);
                        if let Some(p) = period {
                            l.avg_period = p as ngx_msec_t;
                        }
                    }
                    Err(e) => {
                        for line in e.lines() {
                            ngx_conf_log_error!(NGX_LOG_EMERG, cf, "{}", String::from_utf8_lossy(&line));
                        }
                        return NGX_CONF_ERROR;
                    }
                }
            }
            b"vhost_traffic_status_ignore_status" => {
                let l = lcf();
                // A second line at one level adds its classes (as the C module does).
                let (warnings, mask) = vozlt::parse_ignore_status(l.ignore.unwrap_or(0), &values);
                for w in warnings {
                    ngx_conf_log_error!(NGX_LOG_WARN, cf, "{}", w);
                }
                match mask {
                    Ok(m) => l.ignore = Some(m),
                    Err(e) => return emerg(cf, e),
                }
            }
            b"vhost_traffic_status_histogram_buckets" => {
                let Some(mcf) = Module::main_conf_mut(&*cf) else {
                    return NGX_CONF_ERROR;
                };
                let (ms, warning) = match vozlt::parse_histogram_buckets(&values) {
                    Ok(v) => v,
                    Err(e) => return emerg(cf, e),
                };
                if let Some(w) = warning {
                    // Printed at emerg level and accepted, as the C module does.
                    ngx_conf_log_error!(NGX_LOG_EMERG, cf, "{}", w);
                }
                if (*cf).cmd_type & NGX_HTTP_MAIN_CONF as ngx_uint_t != 0 {
                    match mcf.buckets_by {
                        Some("vts_histogram_buckets") => {
                            return conflict(
                                cf,
                                "vhost_traffic_status_histogram_buckets",
                                "vts_histogram_buckets",
                            )
                        }
                        // A later list at one level replaces the earlier one.
                        _ => {
                            mcf.bucket_lists[0] = ms;
                            mcf.buckets_by = Some("vhost_traffic_status_histogram_buckets");
                        }
                    }
                } else {
                    // (A later list at one level replaces the earlier one: its index wins.)
                    lcf().buckets_list = Some(mcf.bucket_lists.len() as u32);
                    mcf.bucket_lists.push(ms);
                }
            }
            b"vhost_traffic_status_measure_status_codes" => {
                let Some(mcf) = Module::main_conf_mut(&*cf) else {
                    return NGX_CONF_ERROR;
                };
                match vozlt::parse_status_codes(&values) {
                    Ok(c) => mcf.codes = c,
                    Err(e) => return emerg(cf, e),
                }
            }
            _ => return NGX_CONF_ERROR,
        }
    }
    NGX_CONF_OK
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

/// The directive table.
pub static mut COMMANDS: [ngx_command_t; 18] = [
    command(
        "vts_zone\0",
        NGX_HTTP_MAIN_CONF | NGX_CONF_TAKE2,
        cmd_zone,
        MAIN,
        0,
    ),
    command(
        "vts_status\0",
        NGX_HTTP_LOC_CONF | NGX_CONF_NOARGS,
        cmd_status,
        LOC,
        0,
    ),
    command(
        "vts_upstream_stats\0",
        NGX_HTTP_MAIN_CONF | NGX_CONF_FLAG,
        cmd_upstream_stats,
        MAIN,
        0,
    ),
    command(
        "vts_histogram_buckets\0",
        NGX_HTTP_MAIN_CONF | NGX_CONF_1MORE,
        cmd_buckets,
        MAIN,
        0,
    ),
    command(
        "vts_status_cache\0",
        NGX_HTTP_MAIN_CONF | NGX_HTTP_SRV_CONF | NGX_HTTP_LOC_CONF | NGX_CONF_TAKE1,
        ngx_conf_set_msec_slot,
        LOC,
        core::mem::offset_of!(LocConf, cache),
    ),
    // nginx-module-vts's spellings (reference section 1).
    command(
        "vhost_traffic_status_zone\0",
        NGX_HTTP_MAIN_CONF | NGX_CONF_NOARGS | NGX_CONF_TAKE1,
        cmd_vozlt_zone,
        MAIN,
        0,
    ),
    command(
        "vhost_traffic_status\0",
        ANY_LEVEL | NGX_CONF_FLAG,
        ngx_conf_set_flag_slot,
        LOC,
        core::mem::offset_of!(LocConf, enable),
    ),
    command(
        "vhost_traffic_status_display\0",
        NGX_HTTP_SRV_CONF | NGX_HTTP_LOC_CONF | NGX_CONF_NOARGS | NGX_CONF_TAKE1,
        cmd_display,
        LOC,
        0,
    ),
    command(
        "vhost_traffic_status_display_format\0",
        NGX_HTTP_SRV_CONF | NGX_HTTP_LOC_CONF | NGX_CONF_TAKE1,
        cmd_vozlt,
        LOC,
        0,
    ),
    command(
        "vhost_traffic_status_display_jsonp\0",
        NGX_HTTP_SRV_CONF | NGX_HTTP_LOC_CONF | NGX_CONF_TAKE1,
        cmd_vozlt,
        LOC,
        0,
    ),
    command(
        "vhost_traffic_status_display_sum_key\0",
        NGX_HTTP_SRV_CONF | NGX_HTTP_LOC_CONF | NGX_CONF_TAKE1,
        cmd_vozlt,
        LOC,
        0,
    ),
    command(
        "vhost_traffic_status_average_method\0",
        ANY_LEVEL | NGX_CONF_TAKE12,
        cmd_vozlt,
        LOC,
        0,
    ),
    command(
        "vhost_traffic_status_histogram_buckets\0",
        ANY_LEVEL | NGX_CONF_1MORE,
        cmd_vozlt,
        LOC,
        0,
    ),
    command(
        "vhost_traffic_status_measure_status_codes\0",
        NGX_HTTP_MAIN_CONF | NGX_CONF_1MORE,
        cmd_vozlt,
        MAIN,
        0,
    ),
    command(
        "vhost_traffic_status_ignore_status\0",
        ANY_LEVEL | NGX_CONF_1MORE,
        cmd_vozlt,
        LOC,
        0,
    ),
    command(
        "vhost_traffic_status_stats_by_upstream\0",
        NGX_HTTP_MAIN_CONF | NGX_CONF_FLAG,
        cmd_upstream_stats,
        MAIN,
        0,
    ),
    command(
        "vhost_traffic_status_bypass_stats\0",
        ANY_LEVEL | NGX_CONF_FLAG,
        ngx_conf_set_flag_slot,
        LOC,
        core::mem::offset_of!(LocConf, bypass_stats),
    ),
    ngx_command_t::empty(),
];

const MAIN: ngx_uint_t = NGX_HTTP_MAIN_CONF_OFFSET;
const LOC: ngx_uint_t = NGX_HTTP_LOC_CONF_OFFSET;
const ANY_LEVEL: u32 = NGX_HTTP_MAIN_CONF | NGX_HTTP_SRV_CONF | NGX_HTTP_LOC_CONF;

type Handler = unsafe extern "C" fn(*mut ngx_conf_t, *mut ngx_command_t, *mut c_void) -> *mut c_char;

/// A directive. `name` ends in a NUL: nginx compares names with `ngx_strcmp`.
const fn command(
    name: &'static str,
    type_: u32,
    set: Handler,
    conf: ngx_uint_t,
    offset: usize,
) -> ngx_command_t {
    ngx_command_t {
        name: ngx_str_t {
            len: name.len() - 1,
            data: name.as_ptr() as *mut u8,
        },
        type_: type_ as ngx_uint_t,
        set: Some(set),
        conf,
        offset,
        post: ptr::null_mut(),
    }
}
