//! Directives: parsing, validation, and the errors `nginx -t` prints.
use core::cell::Cell;
use core::ffi::{c_char, c_void};
use core::fmt;
use core::ptr;

use arrayvec::ArrayVec;
use ngx::core::{NGX_CONF_ERROR, NGX_CONF_OK};
use ngx::ffi::*;
use ngx::http::{HttpModuleLocationConf, HttpModuleMainConf, Merge, MergeConfigError};
use ngx::{ngx_conf_log_error, ngx_string};

use super::Module;
use crate::stats::layout::{Geometry, GeometryError, MAX_BUCKETS};

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

#[derive(Debug)]
pub struct MainConf {
    pub zone: ZoneConf,
    pub upstream_stats: ngx_flag_t,
    /// `None` until `vts_histogram_buckets` or init_main_conf sets them.
    pub buckets: Option<Buckets>,
    /// Locations with `vts_status` (they need a zone).
    pub status_locations: ngx_uint_t,
    /// The statistics region in shared memory, once the zone init callback laid it out.
    pub region: Option<(core::ptr::NonNull<u8>, usize)>,
}

impl Default for MainConf {
    fn default() -> Self {
        MainConf {
            zone: ZoneConf::Unset,
            upstream_stats: NGX_CONF_UNSET as ngx_flag_t,
            buckets: None,
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

#[derive(Debug)]
pub struct LocConf {
    /// This location serves the statistics (and its requests are not counted).
    pub status: bool,
    /// `vts_status_cache`: how long a worker answers scrapes with the text it rendered last.
    pub cache: ngx_msec_t,
}

impl Default for LocConf {
    fn default() -> Self {
        LocConf {
            status: false,
            cache: NGX_CONF_UNSET_MSEC,
        }
    }
}

/// nginx's NGX_CONF_UNSET_MSEC.
const NGX_CONF_UNSET_MSEC: ngx_msec_t = ngx_msec_t::MAX;

impl LocConf {
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
        let clcf = ngx::http::NgxHttpCoreModule::location_conf_mut(&*cf).expect("core loc conf");
        clcf.handler = Some(super::status::handler);
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
        if mcf.buckets.is_some() {
            return fail(cf, ConfError::BucketsDuplicate);
        }
        match parse_buckets(args(cf)[1..].iter().map(|a| a.as_bytes())) {
            Ok(b) => {
                mcf.buckets = Some(b);
                NGX_CONF_OK
            }
            Err(e) => fail(cf, e),
        }
    }
}

/// After the http block: defaults, the zone-needed check, and the shared memory request.
pub unsafe extern "C" fn init_main_conf(cf: *mut ngx_conf_t, conf: *mut c_void) -> *mut c_char {
    // SAFETY: conf is our main conf, cf the configuration being read.
    unsafe {
        let mcf = &mut *(conf as *mut MainConf);
        if mcf.upstream_stats == NGX_CONF_UNSET as ngx_flag_t {
            mcf.upstream_stats = 0;
        }
        if mcf.buckets.is_none() {
            mcf.buckets = Some(Buckets::from_seconds(&DEFAULT_BUCKETS));
        }
        match mcf.zone {
            ZoneConf::Unset if mcf.status_locations > 0 => fail(cf, ConfError::StatusWithoutZone),
            ZoneConf::Unset | ZoneConf::Requested { .. } => NGX_CONF_OK,
            ZoneConf::Configured { name, size } => {
                let nbuckets = mcf.buckets().len();
                if let Err(GeometryError::TooSmall { needed }) = Geometry::new(size, nbuckets) {
                    ngx_conf_log_error!(
                        NGX_LOG_EMERG,
                        cf,
                        "vts_zone \"{}\": size {} is too small for {} histogram buckets, it needs {}k",
                        s(&name),
                        size,
                        nbuckets,
                        needed.div_ceil(1024) + 8
                    );
                    return NGX_CONF_ERROR;
                }
                match super::zone::request(cf, conf as *mut MainConf, name, size) {
                    Some(shm_zone) => {
                        (*(conf as *mut MainConf)).zone = ZoneConf::Requested { name, shm_zone };
                        NGX_CONF_OK
                    }
                    None => NGX_CONF_ERROR,
                }
            }
        }
    }
}

/// The directive table.
pub static mut COMMANDS: [ngx_command_t; 6] = [
    ngx_command_t {
        name: ngx_string!("vts_zone"),
        type_: (NGX_HTTP_MAIN_CONF | NGX_CONF_TAKE2) as ngx_uint_t,
        set: Some(cmd_zone),
        conf: NGX_HTTP_MAIN_CONF_OFFSET,
        offset: 0,
        post: ptr::null_mut(),
    },
    ngx_command_t {
        name: ngx_string!("vts_status"),
        type_: (NGX_HTTP_LOC_CONF | NGX_CONF_NOARGS) as ngx_uint_t,
        set: Some(cmd_status),
        conf: NGX_HTTP_LOC_CONF_OFFSET,
        offset: 0,
        post: ptr::null_mut(),
    },
    ngx_command_t {
        name: ngx_string!("vts_upstream_stats"),
        type_: (NGX_HTTP_MAIN_CONF | NGX_CONF_FLAG) as ngx_uint_t,
        set: Some(ngx_conf_set_flag_slot),
        conf: NGX_HTTP_MAIN_CONF_OFFSET,
        offset: core::mem::offset_of!(MainConf, upstream_stats),
        post: ptr::null_mut(),
    },
    ngx_command_t {
        name: ngx_string!("vts_histogram_buckets"),
        type_: (NGX_HTTP_MAIN_CONF | NGX_CONF_1MORE) as ngx_uint_t,
        set: Some(cmd_buckets),
        conf: NGX_HTTP_MAIN_CONF_OFFSET,
        offset: 0,
        post: ptr::null_mut(),
    },
    ngx_command_t {
        name: ngx_string!("vts_status_cache"),
        type_: (NGX_HTTP_MAIN_CONF | NGX_HTTP_SRV_CONF | NGX_HTTP_LOC_CONF | NGX_CONF_TAKE1) as ngx_uint_t,
        set: Some(ngx_conf_set_msec_slot),
        conf: NGX_HTTP_LOC_CONF_OFFSET,
        offset: core::mem::offset_of!(LocConf, cache),
        post: ptr::null_mut(),
    },
    ngx_command_t::empty(),
];
