//! The seed's `vts_*` directives: the zone, the status location, the histogram bounds.
use core::ffi::{c_char, c_void};
use core::fmt;

use arrayvec::ArrayVec;
use ngx::core::{NGX_CONF_ERROR, NGX_CONF_OK};
use ngx::ffi::*;
use ngx::http::{HttpModuleLocationConf, HttpModuleMainConf};
use ngx::ngx_conf_log_error;

use super::super::Module;
use super::{
    args, conflict, micros, Buckets, Dialect, LocConf, MainConf, ZoneConf, MAX_ZONE_SIZE, MIN_ZONE_SIZE,
};
use crate::stats::layout::MAX_BUCKETS;

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

pub(super) fn s(v: &ngx_str_t) -> String {
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

pub(super) unsafe fn fail(cf: *mut ngx_conf_t, e: ConfError) -> *mut c_char {
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
        clcf.handler = Some(super::super::STATUS_HANDLER);
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
