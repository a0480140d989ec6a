//! The arguments of nginx-module-vts's `vhost_traffic_status_*` directives, parsed as the C
//! module (v0.2.7) parses them, with its error texts.
//!
//! Every parser takes the directive's arguments without the directive name. Argument counts,
//! contexts, `on|off` flags and "directive is duplicate" for plain slots are nginx's business
//! (its command table and generic slot parsers) and are not checked here.
//!
//! How to report: for an `Err(e)`, log each of [`VozltError::lines`] with
//! `ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, ...)` in order and return `NGX_CONF_ERROR` (nginx
//! appends ` in FILE:LINE`). Log each [`VozltWarning`] at [`VozltWarning::level`].
//!
//! Reference: `reference/nginx-module-vts.md`, section 1 and Appendix A.
use std::fmt;

use super::{atofp, atoi, parse_offset, parse_size, parse_time_ms};
use crate::view::{AvgMethod, StatusCodes};

/// Zone name when `vhost_traffic_status_zone` has no argument (1.1).
pub const DEFAULT_ZONE_NAME: &[u8] = b"ngx_http_vhost_traffic_status";
/// Zone size when `vhost_traffic_status_zone` has no argument: 0xfffff, not 1m (1.1).
pub const DEFAULT_ZONE_SIZE: usize = 0xfffff;
/// A zone must hold at least this many pages (1.1).
pub const MIN_ZONE_PAGES: usize = 8;
/// `vhost_traffic_status_display_jsonp` default (1.5).
pub const DEFAULT_JSONP: &[u8] = b"ngx_http_vhost_traffic_status_jsonp_callback";
/// `vhost_traffic_status_display_sum_key` default (1.6).
pub const DEFAULT_SUM_KEY: &[u8] = b"*";
/// `vhost_traffic_status_average_method` default period (1.17).
pub const DEFAULT_AVERAGE_PERIOD_MS: u64 = 60_000;
/// `vhost_traffic_status_histogram_buckets` keeps at most this many values (1.18).
pub const MAX_BUCKETS: usize = 32;
/// `vhost_traffic_status_limit_traffic*` status code when none is given (1.13).
pub const DEFAULT_LIMIT_CODE: i64 = 503;

/// Severity of a line nginx prints while the configuration still loads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    Emerg,
    Warn,
}

/// A message to log without failing the directive. `Display` is the exact text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VozltWarning {
    /// 1.18: more than 32 bucket values; the first 32 are kept. Printed at emerg level although
    /// the configuration loads (`nginx: [emerg] histogram bucket size exceeds 32 in F:L`).
    BucketsExceed,
    /// 1.22: a keyword already set at this level, by this line or an earlier
    /// `ignore_status` line (`nginx: [warn] duplicate value "1xx" in F:L`). nginx's text
    /// (`ngx_conf_set_bitmask_slot`), not the module's.
    DuplicateValue(Vec<u8>),
}

impl VozltWarning {
    pub fn level(&self) -> Level {
        match self {
            VozltWarning::BucketsExceed => Level::Emerg,
            VozltWarning::DuplicateValue(_) => Level::Warn,
        }
    }
}

impl fmt::Display for VozltWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VozltWarning::BucketsExceed => write!(f, "histogram bucket size exceeds {MAX_BUCKETS}"),
            VozltWarning::DuplicateValue(v) => write!(f, "duplicate value \"{}\"", lossy(v)),
        }
    }
}

/// Which limit directive an error is about: its texts carry the directive's short name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LimitDirective {
    /// `vhost_traffic_status_limit_traffic` (1.13).
    Traffic,
    /// `vhost_traffic_status_limit_traffic_by_set_key` (1.14).
    TrafficBySetKey,
}

impl LimitDirective {
    fn prefix(self) -> &'static str {
        match self {
            LimitDirective::Traffic => "limit_traffic()",
            LimitDirective::TrafficBySetKey => "limit_traffic_by_set_key()",
        }
    }
}

/// A rejected argument. `Display` is the exact text `nginx -t` prints between
/// `nginx: [emerg] ` and ` in FILE:LINE` (for the one two-line error, the last line; see
/// [`VozltError::lines`]). Texts marked "nginx's" come from nginx's generic slot parsers in the
/// C module; the others are the module's own.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VozltError {
    /// 1.1: the argument does not start with `shared:` (case-sensitive):
    /// `invalid parameter "<arg>"`.
    ZoneNotShared(Vec<u8>),
    /// 1.1: no `:` after the name, or a size `ngx_parse_size` rejects:
    /// `invalid shared size "<arg>"`.
    ZoneSize(Vec<u8>),
    /// 1.1: size below 8 pages: `shared "<arg>" is too small`.
    ZoneTooSmall(Vec<u8>),
    /// 1.1: the zone NAME is already bound (a second `vhost_traffic_status_zone` with the same
    /// name, e.g. twice without argument): `vhost_traffic_status: "<NAME>" is already bound to
    /// key`. Detected by the caller (the shm zone already has data).
    ZoneAlreadyBound(Vec<u8>),
    /// 1.4: unknown format keyword: `invalid value "<x>"` (nginx's, `ngx_conf_set_enum_slot`).
    DisplayFormat(Vec<u8>),
    /// 1.17: unknown method. Two lines: `invalid value "<x>"` (nginx's enum slot) then
    /// `invalid parameter "<x>"` (the module's).
    AverageMethod(Vec<u8>),
    /// 1.17: the directive already appeared at this level: `invalid parameter "<method>"`, the
    /// second line's first argument (whatever it is; checked before anything else).
    AverageMethodDuplicate(Vec<u8>),
    /// 1.17: PERIOD is not an nginx time: `invalid parameter "<period>"`.
    AveragePeriod(Vec<u8>),
    /// 1.18: not `ngx_atofp(x, 3)` syntax, or 0: `invalid parameter "<x>"`.
    Bucket(Vec<u8>),
    /// 1.21: not a decimal integer, or 0: `invalid parameter "<x>"`.
    StatusCode(Vec<u8>),
    /// 1.21: a code lower than the one before it: `status codes must be ordered`.
    StatusCodesNotOrdered,
    /// 1.21: outside 100..=599: `invalid status_code "<x>"`.
    StatusCodeRange(Vec<u8>),
    /// 1.22: unknown keyword: `invalid value "<x>"` (nginx's, `ngx_conf_set_bitmask_slot`).
    IgnoreStatus(Vec<u8>),
    /// 1.10: N is not a non-negative integer: `invalid number of filter_max_node "<x>"`.
    FilterMaxNode(Vec<u8>),
    /// 1.14: empty KEY: `limit_traffic_by_set_key() empty key pattern`.
    LimitEmptyKey,
    /// 1.13/1.14: empty MEMBER:SIZE: `limit_traffic() empty value pattern`.
    LimitEmptyValue(LimitDirective),
    /// 1.13/1.14: MEMBER:SIZE mentions `$vts_`: `limit_traffic() $vts_* is not allowed here`.
    LimitVtsVariable(LimitDirective),
    /// 1.13/1.14: no `:`: `limit_traffic() empty size pattern`.
    LimitEmptySize(LimitDirective),
    /// 1.13/1.14: SIZE is not an nginx offset: `limit_traffic() invalid limit size "<arg>"`
    /// (the whole argument).
    LimitSize(LimitDirective, Vec<u8>),
}

impl VozltError {
    /// Every line to log at emerg level, in order (two for [`VozltError::AverageMethod`], one
    /// otherwise), as exact bytes (arguments are not UTF-8 checked by nginx).
    pub fn lines(&self) -> Vec<Vec<u8>> {
        let mut v = Vec::new();
        if let VozltError::AverageMethod(x) = self {
            v.push(quoted("invalid value ", x, ""));
        }
        v.push(self.last_line());
        v
    }

    fn last_line(&self) -> Vec<u8> {
        use VozltError::*;
        match self {
            ZoneNotShared(x)
            | AverageMethod(x)
            | AverageMethodDuplicate(x)
            | AveragePeriod(x)
            | Bucket(x)
            | StatusCode(x) => quoted("invalid parameter ", x, ""),
            ZoneSize(x) => quoted("invalid shared size ", x, ""),
            ZoneTooSmall(x) => quoted("shared ", x, " is too small"),
            ZoneAlreadyBound(x) => quoted("vhost_traffic_status: ", x, " is already bound to key"),
            DisplayFormat(x) | IgnoreStatus(x) => quoted("invalid value ", x, ""),
            StatusCodesNotOrdered => b"status codes must be ordered".to_vec(),
            StatusCodeRange(x) => quoted("invalid status_code ", x, ""),
            FilterMaxNode(x) => quoted("invalid number of filter_max_node ", x, ""),
            LimitEmptyKey => b"limit_traffic_by_set_key() empty key pattern".to_vec(),
            LimitEmptyValue(d) => format!("{} empty value pattern", d.prefix()).into_bytes(),
            LimitVtsVariable(d) => format!("{} $vts_* is not allowed here", d.prefix()).into_bytes(),
            LimitEmptySize(d) => format!("{} empty size pattern", d.prefix()).into_bytes(),
            LimitSize(d, x) => quoted(&format!("{} invalid limit size ", d.prefix()), x, ""),
        }
    }
}

impl fmt::Display for VozltError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&lossy(&self.last_line()))
    }
}

impl std::error::Error for VozltError {}

fn quoted(before: &str, x: &[u8], after: &str) -> Vec<u8> {
    let mut v = Vec::with_capacity(before.len() + x.len() + after.len() + 2);
    v.extend_from_slice(before.as_bytes());
    v.push(b'"');
    v.extend_from_slice(x);
    v.push(b'"');
    v.extend_from_slice(after.as_bytes());
    v
}

fn lossy(v: &[u8]) -> String {
    String::from_utf8_lossy(v).into_owned()
}

/// 1.1 `vhost_traffic_status_zone shared:NAME:SIZE` (the one-argument form; without argument
/// use [`DEFAULT_ZONE_NAME`] and [`DEFAULT_ZONE_SIZE`]). NAME is everything up to the next `:`
/// and may be empty (`shared::1m` loads in the C module); SIZE is `ngx_parse_size` syntax and
/// at least `MIN_ZONE_PAGES * page_size`.
pub fn parse_zone_arg(arg: &[u8], page_size: usize) -> Result<(Vec<u8>, usize), VozltError> {
    let rest = arg
        .strip_prefix(b"shared:")
        .ok_or_else(|| VozltError::ZoneNotShared(arg.to_vec()))?;
    let colon = rest
        .iter()
        .position(|&c| c == b':')
        .ok_or_else(|| VozltError::ZoneSize(arg.to_vec()))?;
    let size = parse_size(&rest[colon + 1..]).ok_or_else(|| VozltError::ZoneSize(arg.to_vec()))?;
    if (size as u128) < (MIN_ZONE_PAGES as u128) * (page_size as u128) {
        return Err(VozltError::ZoneTooSmall(arg.to_vec()));
    }
    // parse_size is bounded by i64::MAX, which fits usize on the 64-bit platforms nginx-module-vts
    // is checked on; a 32-bit build refuses rather than truncates.
    let size = usize::try_from(size).map_err(|_| VozltError::ZoneSize(arg.to_vec()))?;
    Ok((rest[..colon].to_vec(), size))
}

/// The default output of a display location (1.4).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DisplayFormat {
    #[default]
    Json,
    Html,
    Jsonp,
    Prometheus,
}

/// 1.4 `vhost_traffic_status_display_format json|html|jsonp|prometheus`, ASCII
/// case-insensitive. A second occurrence at one level is nginx's `"..." directive is duplicate`
/// (the caller's check).
pub fn parse_display_format(arg: &[u8]) -> Result<DisplayFormat, VozltError> {
    const NAMES: [(&[u8], DisplayFormat); 4] = [
        (b"json", DisplayFormat::Json),
        (b"html", DisplayFormat::Html),
        (b"jsonp", DisplayFormat::Jsonp),
        (b"prometheus", DisplayFormat::Prometheus),
    ];
    NAMES
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(arg))
        .map(|&(_, f)| f)
        .ok_or_else(|| VozltError::DisplayFormat(arg.to_vec()))
}

/// 1.17 `vhost_traffic_status_average_method AMM|WMA [PERIOD]` (1 or 2 arguments).
///
/// `already_set`: the directive already appeared at this configuration level; that is an
/// error whatever this line says. The period is `None` when absent so that it inherits
/// independently of the method; `Some(0)` disables the window.
pub fn parse_average_method(
    args: &[&[u8]],
    already_set: bool,
) -> Result<(AvgMethod, Option<u64>), VozltError> {
    let method = args.first().copied().unwrap_or_default();
    if already_set {
        return Err(VozltError::AverageMethodDuplicate(method.to_vec()));
    }
    let m = if method.eq_ignore_ascii_case(b"amm") {
        AvgMethod::Amm
    } else if method.eq_ignore_ascii_case(b"wma") {
        AvgMethod::Wma
    } else {
        return Err(VozltError::AverageMethod(method.to_vec()));
    };
    let period = match args.get(1) {
        None => None,
        Some(p) => Some(parse_time_ms(p).ok_or_else(|| VozltError::AveragePeriod(p.to_vec()))?),
    };
    Ok((m, period))
}

/// 1.18 `vhost_traffic_status_histogram_buckets SEC ...`: bounds in milliseconds, in
/// configuration order (neither sorted nor deduplicated, as in the C module). Arguments past
/// the 32nd are neither kept nor validated; the warning says so. A later line at the same level
/// replaces the earlier one.
pub fn parse_histogram_buckets(args: &[&[u8]]) -> Result<(Vec<u64>, Option<VozltWarning>), VozltError> {
    let mut out = Vec::with_capacity(args.len().min(MAX_BUCKETS));
    for a in args.iter().take(MAX_BUCKETS) {
        match atofp(a, 3) {
            Some(ms) if ms > 0 => out.push(ms),
            _ => return Err(VozltError::Bucket(a.to_vec())),
        }
    }
    let warning = (args.len() > MAX_BUCKETS).then_some(VozltWarning::BucketsExceed);
    Ok((out, warning))
}

/// 1.21 `vhost_traffic_status_measure_status_codes all | CODE ...`. A first argument that
/// starts with `all` (case-sensitive) means every code, whatever follows. Otherwise, per
/// argument in order: integer and not 0, then not below the previous code, then 100..=599.
/// Equal neighbours are kept (and counted twice). A later line replaces the earlier one.
pub fn parse_status_codes(args: &[&[u8]]) -> Result<StatusCodes, VozltError> {
    if args.first().is_some_and(|a| a.starts_with(b"all")) {
        return Ok(StatusCodes::All);
    }
    let mut codes: Vec<u16> = Vec::with_capacity(args.len());
    for a in args {
        let n = atoi(a)
            .filter(|&n| n > 0)
            .ok_or_else(|| VozltError::StatusCode(a.to_vec()))?;
        if codes.last().is_some_and(|&prev| n < u64::from(prev)) {
            return Err(VozltError::StatusCodesNotOrdered);
        }
        if !(100..=599).contains(&n) {
            return Err(VozltError::StatusCodeRange(a.to_vec()));
        }
        codes.push(n as u16);
    }
    Ok(StatusCodes::List(codes))
}

/// 1.22 mask bit of `off`: a bit of its own, so that a level saying only `off` still replaces
/// its parent's set when merging (0 means "not set at this level").
pub const IGNORE_OFF: u8 = 1;

/// 1.22 mask bit of the `Nxx` class (N = 1..=5).
pub const fn ignore_class_bit(class: u8) -> u8 {
    1 << class
}

/// Whether a mask from [`parse_ignore_status`] ignores `status` (only classes 1xx..5xx can be).
pub fn ignores(mask: u8, status: u16) -> bool {
    matches!(status / 100, 1..=5) && mask & ignore_class_bit((status / 100) as u8) != 0
}

/// 1.22 `vhost_traffic_status_ignore_status 1xx|2xx|3xx|4xx|5xx|off ...` (nginx's
/// `ngx_conf_set_bitmask_slot` in the C module). `mask` is this level's value so far (0 when
/// the directive has not appeared at this level): a second line ORs into the first, and a
/// keyword already set by either warns `duplicate value "<x>"` (warn level).
///
/// Returns the warnings (to log first, also when the line then fails: `1xx 1xx x` prints the
/// warning, then the error) and the new mask.
pub fn parse_ignore_status(mask: u8, args: &[&[u8]]) -> (Vec<VozltWarning>, Result<u8, VozltError>) {
    const NAMES: [(&[u8], u8); 6] = [
        (b"1xx", ignore_class_bit(1)),
        (b"2xx", ignore_class_bit(2)),
        (b"3xx", ignore_class_bit(3)),
        (b"4xx", ignore_class_bit(4)),
        (b"5xx", ignore_class_bit(5)),
        (b"off", IGNORE_OFF),
    ];
    let mut mask = mask;
    let mut warnings = Vec::new();
    for a in args {
        let Some(&(_, bit)) = NAMES.iter().find(|(n, _)| n.eq_ignore_ascii_case(a)) else {
            return (warnings, Err(VozltError::IgnoreStatus(a.to_vec())));
        };
        if mask & bit != 0 {
            warnings.push(VozltWarning::DuplicateValue(a.to_vec()));
        }
        mask |= bit;
    }
    (warnings, Ok(mask))
}

/// 1.10 `vhost_traffic_status_filter_max_node N [PREFIX ...]`: the cap (0 = none) and the
/// group-name prefixes it counts (none = every filter group).
pub fn parse_filter_max_node(args: &[&[u8]]) -> Result<(u64, Vec<Vec<u8>>), VozltError> {
    let n = args.first().copied().unwrap_or_default();
    let max = atoi(n).ok_or_else(|| VozltError::FilterMaxNode(n.to_vec()))?;
    Ok((max, args.iter().skip(1).map(|p| p.to_vec()).collect()))
}

/// One `limit_traffic` / `limit_traffic_by_set_key` entry's MEMBER:SIZE [CODE].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LimitSpec {
    /// The text before the first `:`, unevaluated (an nginx complex value: may hold variables).
    pub member: Vec<u8>,
    /// Bytes or requests, `ngx_parse_offset` syntax.
    pub size: u64,
    /// The status to answer with: plain `ngx_atoi`, not validated, so a non-number is -1 (the
    /// C module stores `NGX_ERROR`); [`DEFAULT_LIMIT_CODE`] when absent.
    pub code: i64,
}

fn parse_limit(d: LimitDirective, value: &[u8], code: Option<&[u8]>) -> Result<LimitSpec, VozltError> {
    if value.is_empty() {
        return Err(VozltError::LimitEmptyValue(d));
    }
    // The C module checks only arguments longer than "$vts_" itself: `$vts_` alone then fails
    // on the missing `:`.
    if value.len() > 5 && value.windows(5).any(|w| w == b"$vts_") {
        return Err(VozltError::LimitVtsVariable(d));
    }
    let colon = value
        .iter()
        .position(|&c| c == b':')
        .ok_or(VozltError::LimitEmptySize(d))?;
    let size = parse_offset(&value[colon + 1..]).ok_or_else(|| VozltError::LimitSize(d, value.to_vec()))?;
    let code = code.map_or(DEFAULT_LIMIT_CODE, |c| atoi(c).map_or(-1, |n| n as i64));
    Ok(LimitSpec {
        member: value[..colon].to_vec(),
        size,
        code,
    })
}

/// 1.13 `vhost_traffic_status_limit_traffic MEMBER:SIZE [CODE]` (1 or 2 arguments).
///
/// An empty MEMBER (`:10`) crashes the C module's `nginx -t` (segfault, no message); we reject
/// it with `limit_traffic() empty value pattern` instead.
pub fn parse_limit_traffic(args: &[&[u8]]) -> Result<LimitSpec, VozltError> {
    let d = LimitDirective::Traffic;
    let value = args.first().copied().unwrap_or_default();
    let spec = parse_limit(d, value, args.get(1).copied())?;
    if spec.member.is_empty() {
        return Err(VozltError::LimitEmptyValue(d));
    }
    Ok(spec)
}

/// 1.14 `vhost_traffic_status_limit_traffic_by_set_key KEY MEMBER:SIZE [CODE]` (2 or 3
/// arguments). Returns KEY as written (the `@` / `[:alpha:]` rewriting of 1.14 is the caller's).
/// An empty MEMBER loads in the C module and is kept.
pub fn parse_limit_traffic_by_set_key(args: &[&[u8]]) -> Result<(Vec<u8>, LimitSpec), VozltError> {
    let key = args.first().copied().unwrap_or_default();
    if key.is_empty() {
        return Err(VozltError::LimitEmptyKey);
    }
    let value = args.get(1).copied().unwrap_or_default();
    let spec = parse_limit(LimitDirective::TrafficBySetKey, value, args.get(2).copied())?;
    Ok((key.to_vec(), spec))
}

#[cfg(test)]
mod tests {
    //! Every expected text is what the C module's `nginx -t` printed (nginx 1.28.3, the module
    //! loaded, the directive inside `http {}` unless noted); the observed line is in a comment.
    use super::*;

    fn err_text(e: VozltError) -> String {
        e.to_string()
    }

    fn lines(e: &VozltError) -> Vec<String> {
        e.lines().iter().map(|l| lossy(l)).collect()
    }

    const PAGE: usize = 4096;

    #[test]
    fn zone_ok() {
        assert_eq!(DEFAULT_ZONE_SIZE, 1_048_575);
        assert_eq!(parse_zone_arg(b"shared:a:1m", PAGE), Ok((b"a".to_vec(), 1 << 20)));
        assert_eq!(parse_zone_arg(b"shared:a:1M", PAGE), Ok((b"a".to_vec(), 1 << 20)));
        assert_eq!(parse_zone_arg(b"shared:a:32k", PAGE), Ok((b"a".to_vec(), 32_768)));
        assert_eq!(
            parse_zone_arg(b"shared:a:32768", PAGE),
            Ok((b"a".to_vec(), 32_768))
        );
        // `shared::1m` loads: the name is empty.
        assert_eq!(parse_zone_arg(b"shared::1m", PAGE), Ok((b"".to_vec(), 1 << 20)));
        assert_eq!(
            parse_zone_arg(b"shared:a:2097152k", PAGE),
            Ok((b"a".to_vec(), 2 << 30))
        );
        // The minimum follows the page size.
        assert!(parse_zone_arg(b"shared:a:64k", 16384).is_err());
        assert!(parse_zone_arg(b"shared:a:128k", 16384).is_ok());
    }

    #[test]
    fn zone_errors() {
        let cases: &[(&str, &str)] = &[
            // nginx: [emerg] invalid parameter "foo" in F:4
            ("foo", "invalid parameter \"foo\""),
            // nginx: [emerg] invalid parameter "shared" in F:4
            ("shared", "invalid parameter \"shared\""),
            // nginx: [emerg] invalid parameter "SHARED:a:1m" in F:4
            ("SHARED:a:1m", "invalid parameter \"SHARED:a:1m\""),
            // nginx: [emerg] invalid shared size "shared:" in F:4
            ("shared:", "invalid shared size \"shared:\""),
            // nginx: [emerg] invalid shared size "shared:a" in F:4
            ("shared:a", "invalid shared size \"shared:a\""),
            // nginx: [emerg] invalid shared size "shared:a:" in F:4
            ("shared:a:", "invalid shared size \"shared:a:\""),
            // nginx: [emerg] invalid shared size "shared:a:1g" in F:4
            ("shared:a:1g", "invalid shared size \"shared:a:1g\""),
            // nginx: [emerg] invalid shared size "shared:a:b:1m" in F:4
            ("shared:a:b:1m", "invalid shared size \"shared:a:b:1m\""),
            // nginx: [emerg] invalid shared size "shared:a:1mb" in F:4
            ("shared:a:1mb", "invalid shared size \"shared:a:1mb\""),
            // nginx: [emerg] invalid shared size "shared:a:-1" in F:4
            ("shared:a:-1", "invalid shared size \"shared:a:-1\""),
            // nginx: [emerg] invalid shared size "shared:a:99999999999999999999999" in F:4
            (
                "shared:a:99999999999999999999999",
                "invalid shared size \"shared:a:99999999999999999999999\"",
            ),
            // nginx: [emerg] shared "shared:a:1k" is too small in F:4
            ("shared:a:1k", "shared \"shared:a:1k\" is too small"),
            // nginx: [emerg] shared "shared:a:1K" is too small in F:4
            ("shared:a:1K", "shared \"shared:a:1K\" is too small"),
            // nginx: [emerg] shared "shared:a:32767" is too small in F:4
            ("shared:a:32767", "shared \"shared:a:32767\" is too small"),
            // nginx: [emerg] shared "shared:a:0" is too small in F:4
            ("shared:a:0", "shared \"shared:a:0\" is too small"),
        ];
        for &(arg, text) in cases {
            let e = parse_zone_arg(arg.as_bytes(), PAGE).unwrap_err();
            assert_eq!(e.lines().len(), 1);
            assert_eq!(err_text(e), text, "{arg}");
        }
        // `vhost_traffic_status_zone; vhost_traffic_status_zone;`:
        // nginx: [emerg] vhost_traffic_status: "ngx_http_vhost_traffic_status" is already bound to key in F:5
        assert_eq!(
            err_text(VozltError::ZoneAlreadyBound(DEFAULT_ZONE_NAME.to_vec())),
            "vhost_traffic_status: \"ngx_http_vhost_traffic_status\" is already bound to key"
        );
    }

    #[test]
    fn display_format() {
        assert_eq!(parse_display_format(b"json"), Ok(DisplayFormat::Json));
        assert_eq!(parse_display_format(b"HTML"), Ok(DisplayFormat::Html));
        assert_eq!(parse_display_format(b"JsonP"), Ok(DisplayFormat::Jsonp));
        assert_eq!(parse_display_format(b"prometheus"), Ok(DisplayFormat::Prometheus));
        // nginx: [emerg] invalid value "xml" in F:5
        assert_eq!(
            err_text(parse_display_format(b"xml").unwrap_err()),
            "invalid value \"xml\""
        );
        // nginx: [emerg] invalid value "jsonx" in F:5
        assert_eq!(
            err_text(parse_display_format(b"jsonx").unwrap_err()),
            "invalid value \"jsonx\""
        );
        // nginx: [emerg] invalid value "" in F:5
        assert_eq!(
            err_text(parse_display_format(b"").unwrap_err()),
            "invalid value \"\""
        );
    }

    #[test]
    fn average_method_ok() {
        let p = |a: &[&[u8]]| parse_average_method(a, false);
        assert_eq!(p(&[b"AMM"]), Ok((AvgMethod::Amm, None)));
        assert_eq!(p(&[b"wma"]), Ok((AvgMethod::Wma, None)));
        assert_eq!(p(&[b"Amm", b"0"]), Ok((AvgMethod::Amm, Some(0))));
        assert_eq!(p(&[b"AMM", b"1h30m"]), Ok((AvgMethod::Amm, Some(5_400_000))));
        assert_eq!(p(&[b"AMM", b"1h 30m"]), Ok((AvgMethod::Amm, Some(5_400_000))));
        assert_eq!(p(&[b"AMM", b"500ms"]), Ok((AvgMethod::Amm, Some(500))));
        assert_eq!(p(&[b"WMA", b"1w2d"]), Ok((AvgMethod::Wma, Some(9 * 86_400_000))));
        assert_eq!(p(&[b"AMM", b"1s30"]), Ok((AvgMethod::Amm, Some(31_000))));
        assert_eq!(p(&[b"AMM", b"30 15"]), Ok((AvgMethod::Amm, Some(45_000))));
        assert_eq!(
            p(&[b"AMM", b"9223372036854775"]),
            Ok((AvgMethod::Amm, Some(9_223_372_036_854_775_000)))
        );
    }

    #[test]
    fn average_method_errors() {
        let p = |a: &[&[u8]]| parse_average_method(a, false).unwrap_err();
        // nginx: [emerg] invalid value "xyz" in F:5
        // nginx: [emerg] invalid parameter "xyz" in F:5
        let e = p(&[b"xyz"]);
        assert_eq!(lines(&e), ["invalid value \"xyz\"", "invalid parameter \"xyz\""]);
        assert_eq!(err_text(e), "invalid parameter \"xyz\"");
        // The period is not looked at: the same two lines for `xyz 10s` and `xyz 1y`.
        assert_eq!(
            lines(&p(&[b"xyz", b"1y"])),
            ["invalid value \"xyz\"", "invalid parameter \"xyz\""]
        );
        // nginx: [emerg] invalid value "AMMX" in F:5 / invalid parameter "AMMX" in F:5
        assert_eq!(
            lines(&p(&[b"AMMX"])),
            ["invalid value \"AMMX\"", "invalid parameter \"AMMX\""]
        );
        // nginx: [emerg] invalid value "" in F:5 / invalid parameter "" in F:5
        assert_eq!(
            lines(&p(&[b""])),
            ["invalid value \"\"", "invalid parameter \"\""]
        );
        let period: &[(&str, &str)] = &[
            // nginx: [emerg] invalid parameter "30m1h" in F:5
            ("30m1h", "invalid parameter \"30m1h\""),
            // nginx: [emerg] invalid parameter "1y" in F:5
            ("1y", "invalid parameter \"1y\""),
            // nginx: [emerg] invalid parameter "1M" in F:5
            ("1M", "invalid parameter \"1M\""),
            // nginx: [emerg] invalid parameter "" in F:5
            ("", "invalid parameter \"\""),
            // nginx: [emerg] invalid parameter "5x" in F:5
            ("5x", "invalid parameter \"5x\""),
            // nginx: [emerg] invalid parameter "-1" in F:5
            ("-1", "invalid parameter \"-1\""),
            // nginx: [emerg] invalid parameter "9223372036854776" in F:5
            ("9223372036854776", "invalid parameter \"9223372036854776\""),
            // nginx: [emerg] invalid parameter "9223372036854775807" in F:5
            ("9223372036854775807", "invalid parameter \"9223372036854775807\""),
        ];
        for &(t, text) in period {
            let e = p(&[b"AMM", t.as_bytes()]);
            assert_eq!(e, VozltError::AveragePeriod(t.as_bytes().to_vec()));
            assert_eq!(e.lines().len(), 1);
            assert_eq!(err_text(e), text);
        }
    }

    #[test]
    fn average_method_twice_at_one_level() {
        // `..._average_method AMM; ..._average_method WMA 10s;` (same level: http, server or
        // location): nginx: [emerg] invalid parameter "WMA" in F:6
        let e = parse_average_method(&[b"WMA", b"10s"], true).unwrap_err();
        assert_eq!(lines(&e), ["invalid parameter \"WMA\""]);
        // Checked before the period: `AMM; WMA 1y;` -> invalid parameter "WMA" in F:6
        assert_eq!(
            err_text(parse_average_method(&[b"WMA", b"1y"], true).unwrap_err()),
            "invalid parameter \"WMA\""
        );
        // And before the method: `AMM; xyz;` -> one line, invalid parameter "xyz" in F:6
        let e = parse_average_method(&[b"xyz"], true).unwrap_err();
        assert_eq!(lines(&e), ["invalid parameter \"xyz\""]);
        // `AMM 10s; AMM 10s;` -> invalid parameter "AMM" in F:6
        assert_eq!(
            err_text(parse_average_method(&[b"AMM", b"10s"], true).unwrap_err()),
            "invalid parameter \"AMM\""
        );
    }

    #[test]
    fn histogram_buckets() {
        let ok = |a: &[&[u8]]| parse_histogram_buckets(a).unwrap();
        assert_eq!(ok(&[b"1"]), (vec![1000], None));
        assert_eq!(ok(&[b"2.5", b"1", b"0.1"]), (vec![2500, 1000, 100], None));
        assert_eq!(ok(&[b"1", b"1"]), (vec![1000, 1000], None));
        assert_eq!(
            ok(&[b"0.005", b"1.", b".5", b"0.001"]),
            (vec![5, 1000, 500, 1], None)
        );
        assert_eq!(ok(&[b"9223372036854775.807"]), (vec![i64::MAX as u64], None));
        let bad: &[&str] = &[
            // nginx: [emerg] invalid parameter "0" in F:5 (and likewise for each below)
            "0",
            "0.000",
            ".",
            "0.0004",
            "1.2345",
            "-1",
            "+1",
            "1e3",
            "abc",
            "",
            "1,5",
            "1..5",
            "9223372036854776",
            "9223372036854775.808",
            "100000000000000000000",
        ];
        for t in bad {
            let e = parse_histogram_buckets(&[b"1", t.as_bytes()]).unwrap_err();
            assert_eq!(err_text(e), format!("invalid parameter \"{t}\""));
        }
    }

    #[test]
    fn histogram_buckets_over_32() {
        let n: Vec<Vec<u8>> = (1..=40).map(|i| i.to_string().into_bytes()).collect();
        let args: Vec<&[u8]> = n.iter().map(|v| v.as_slice()).collect();
        // 32 values: nginx: the configuration file F syntax is ok (no message)
        assert_eq!(parse_histogram_buckets(&args[..32]).unwrap().1, None);
        // 33 values: nginx: [emerg] histogram bucket size exceeds 32 in F:5
        //            nginx: the configuration file F syntax is ok
        let (v, w) = parse_histogram_buckets(&args[..33]).unwrap();
        assert_eq!(v, (1..=32).map(|i| i * 1000).collect::<Vec<u64>>());
        let w = w.unwrap();
        assert_eq!(
            (w.to_string().as_str(), w.level()),
            ("histogram bucket size exceeds 32", Level::Emerg)
        );
        // Values past the 32nd are not validated: `1 .. 32 x` loads with the same emerg line.
        let mut with_bad = args[..32].to_vec();
        with_bad.push(b"x");
        assert_eq!(
            parse_histogram_buckets(&with_bad).unwrap().1,
            Some(VozltWarning::BucketsExceed)
        );
        // A bad value among the first 32 fails, without the warning:
        // `1 2 3 4 x 1 .. 35`: nginx: [emerg] invalid parameter "x" in F:5
        let mut early = args[..4].to_vec();
        early.push(b"x");
        early.extend_from_slice(&args[..35]);
        assert_eq!(
            err_text(parse_histogram_buckets(&early).unwrap_err()),
            "invalid parameter \"x\""
        );
        // `1 .. 31 x 1`: nginx: [emerg] invalid parameter "x" in F:5
        let mut at32 = args[..31].to_vec();
        at32.extend_from_slice(&[b"x", b"1"]);
        assert_eq!(
            err_text(parse_histogram_buckets(&at32).unwrap_err()),
            "invalid parameter \"x\""
        );
    }

    #[test]
    fn status_codes_ok() {
        let p = |a: &[&[u8]]| parse_status_codes(a).unwrap();
        assert_eq!(p(&[b"all"]), StatusCodes::All);
        assert_eq!(p(&[b"allx"]), StatusCodes::All);
        assert_eq!(p(&[b"all", b"x", b"5"]), StatusCodes::All);
        assert_eq!(p(&[b"200", b"404"]), StatusCodes::List(vec![200, 404]));
        assert_eq!(p(&[b"200", b"200"]), StatusCodes::List(vec![200, 200]));
        assert_eq!(p(&[b"100", b"599"]), StatusCodes::List(vec![100, 599]));
        assert_eq!(p(&[b"00200"]), StatusCodes::List(vec![200]));
    }

    #[test]
    fn status_codes_errors() {
        let cases: &[(&[&str], &str)] = &[
            // nginx: [emerg] invalid parameter "ALL" in F:5 (`all` is case-sensitive)
            (&["ALL"], "invalid parameter \"ALL\""),
            // nginx: [emerg] invalid parameter "All" in F:5
            (&["All"], "invalid parameter \"All\""),
            // nginx: [emerg] invalid parameter "al" in F:5
            (&["al"], "invalid parameter \"al\""),
            // nginx: [emerg] invalid parameter "x" in F:5 (`all` only counts first)
            (&["x", "all"], "invalid parameter \"x\""),
            // nginx: [emerg] invalid parameter "0" in F:5
            (&["0"], "invalid parameter \"0\""),
            // nginx: [emerg] invalid parameter "0" in F:5 (0 is refused before the order check)
            (&["200", "0"], "invalid parameter \"0\""),
            // nginx: [emerg] invalid parameter "x" in F:5
            (&["200", "x"], "invalid parameter \"x\""),
            // nginx: [emerg] invalid parameter "-1" in F:5
            (&["-1"], "invalid parameter \"-1\""),
            // nginx: [emerg] invalid parameter "+200" in F:5
            (&["+200"], "invalid parameter \"+200\""),
            // nginx: [emerg] invalid parameter "200x" in F:5
            (&["200x"], "invalid parameter \"200x\""),
            // nginx: [emerg] invalid parameter "" in F:5
            (&[""], "invalid parameter \"\""),
            // nginx: [emerg] invalid parameter "99999999999999999999" in F:5
            (
                &["99999999999999999999"],
                "invalid parameter \"99999999999999999999\"",
            ),
            // nginx: [emerg] status codes must be ordered in F:5
            (&["404", "200"], "status codes must be ordered"),
            // Order before range: nginx: [emerg] status codes must be ordered in F:5
            (&["200", "50"], "status codes must be ordered"),
            // nginx: [emerg] status codes must be ordered in F:5 (stops at the first problem)
            (&["200", "50", "x"], "status codes must be ordered"),
            // nginx: [emerg] invalid status_code "99" in F:5
            (&["99"], "invalid status_code \"99\""),
            // nginx: [emerg] invalid status_code "600" in F:5
            (&["600"], "invalid status_code \"600\""),
            // nginx: [emerg] invalid status_code "600" in F:5
            (&["200", "600"], "invalid status_code \"600\""),
            // The first code has nothing to be ordered against:
            // nginx: [emerg] invalid status_code "600" in F:5
            (&["600", "200"], "invalid status_code \"600\""),
            // nginx: [emerg] invalid status_code "50" in F:5
            (&["50", "40"], "invalid status_code \"50\""),
            // nginx: [emerg] invalid status_code "1000" in F:5
            (&["1000", "200"], "invalid status_code \"1000\""),
        ];
        for &(args, text) in cases {
            let a: Vec<&[u8]> = args.iter().map(|s| s.as_bytes()).collect();
            assert_eq!(err_text(parse_status_codes(&a).unwrap_err()), text, "{args:?}");
        }
    }

    #[test]
    fn ignore_status() {
        let b = ignore_class_bit;
        let p = |m: u8, a: &[&[u8]]| {
            let (w, r) = parse_ignore_status(m, a);
            (
                w.iter().map(|w| (w.level(), w.to_string())).collect::<Vec<_>>(),
                r,
            )
        };
        assert_eq!(p(0, &[b"1xx"]), (vec![], Ok(b(1))));
        assert_eq!(p(0, &[b"2XX"]), (vec![], Ok(b(2))));
        assert_eq!(p(0, &[b"OFF"]), (vec![], Ok(IGNORE_OFF)));
        // `off` is a bit like the others and cancels nothing (`4xx off` still ignores 4xx).
        let m = p(0, &[b"4xx", b"off"]).1.unwrap();
        assert!(ignores(m, 404) && !ignores(m, 200));
        assert_eq!(
            p(0, &[b"4xx", b"5xx", b"3xx", b"2xx", b"1xx", b"off"]),
            (vec![], Ok(0b11_1111))
        );
        // nginx: [warn] duplicate value "1xx" in F:5
        assert_eq!(
            p(0, &[b"1xx", b"1xx"]),
            (vec![(Level::Warn, "duplicate value \"1xx\"".into())], Ok(b(1)))
        );
        // The text is the repeated argument as written: nginx: [warn] duplicate value "1XX" in F:5
        assert_eq!(
            p(0, &[b"1xx", b"1XX"]).0,
            [(Level::Warn, "duplicate value \"1XX\"".into())]
        );
        // nginx: [warn] duplicate value "off" in F:5
        assert_eq!(
            p(0, &[b"off", b"off"]).0,
            [(Level::Warn, "duplicate value \"off\"".into())]
        );
        // nginx: [warn] duplicate value "1xx" in F:5
        // nginx: [warn] duplicate value "2xx" in F:5
        assert_eq!(
            p(0, &[b"1xx", b"2xx", b"1xx", b"3xx", b"2xx"]),
            (
                vec![
                    (Level::Warn, "duplicate value \"1xx\"".into()),
                    (Level::Warn, "duplicate value \"2xx\"".into())
                ],
                Ok(b(1) | b(2) | b(3))
            )
        );
        // nginx: [emerg] invalid value "6xx" in F:5
        assert_eq!(
            p(0, &[b"6xx"]),
            (vec![], Err(VozltError::IgnoreStatus(b"6xx".to_vec())))
        );
        assert_eq!(
            err_text(VozltError::IgnoreStatus(b"x".to_vec())),
            "invalid value \"x\""
        );
        // nginx: [emerg] invalid value "" in F:5
        assert_eq!(
            err_text(parse_ignore_status(0, &[b""]).1.unwrap_err()),
            "invalid value \"\""
        );
        // Warnings come first, then the error:
        // nginx: [warn] duplicate value "1xx" in F:5
        // nginx: [emerg] invalid value "x" in F:5
        let (w, r) = p(0, &[b"1xx", b"1xx", b"x"]);
        assert_eq!(w, [(Level::Warn, "duplicate value \"1xx\"".into())]);
        assert_eq!(err_text(r.unwrap_err()), "invalid value \"x\"");
    }

    #[test]
    fn ignore_status_second_line_ors_in() {
        // `ignore_status 2xx; ignore_status 2xx 4xx;` at one level: no "is duplicate" error; the
        // second line adds to the first, and warns about what the first already set:
        // nginx: [warn] duplicate value "2xx" in F:6
        // nginx: the configuration file F syntax is ok
        let (w1, first) = parse_ignore_status(0, &[b"2xx"]);
        assert!(w1.is_empty());
        let (w2, second) = parse_ignore_status(first.unwrap(), &[b"2xx", b"4xx"]);
        assert_eq!(w2, [VozltWarning::DuplicateValue(b"2xx".to_vec())]);
        let m = second.unwrap();
        assert!(ignores(m, 200) && ignores(m, 404) && !ignores(m, 500));
        // `ignore_status 2xx; ignore_status 4xx;` in a server: no message, both ignored.
        let m = parse_ignore_status(parse_ignore_status(0, &[b"2xx"]).1.unwrap(), &[b"4xx"]);
        assert!(m.0.is_empty());
        let m = m.1.unwrap();
        assert!(ignores(m, 204) && ignores(m, 499));
        // Out-of-class statuses are never ignored.
        assert!(!ignores(0xff, 600) && !ignores(0xff, 99));
    }

    #[test]
    fn filter_max_node() {
        assert_eq!(parse_filter_max_node(&[b"0"]), Ok((0, vec![])));
        assert_eq!(
            parse_filter_max_node(&[b"10", b"a", b"b"]),
            Ok((10, vec![b"a".to_vec(), b"b".to_vec()]))
        );
        assert_eq!(
            parse_filter_max_node(&[b"9223372036854775807"]),
            Ok((i64::MAX as u64, vec![]))
        );
        // nginx: [emerg] invalid number of filter_max_node "x" in F:5 (and likewise below)
        for t in ["x", "-1", "", "1x", "+1", "99999999999999999999"] {
            let e = parse_filter_max_node(&[t.as_bytes()]).unwrap_err();
            assert_eq!(err_text(e), format!("invalid number of filter_max_node \"{t}\""));
        }
    }

    #[test]
    fn limit_traffic() {
        let p = |a: &[&str]| {
            let a: Vec<&[u8]> = a.iter().map(|s| s.as_bytes()).collect();
            parse_limit_traffic(&a)
        };
        let spec = |m: &str, size: u64, code: i64| LimitSpec {
            member: m.as_bytes().to_vec(),
            size,
            code,
        };
        assert_eq!(p(&["in:10M"]), Ok(spec("in", 10 << 20, 503)));
        assert_eq!(p(&["out:1g", "429"]), Ok(spec("out", 1 << 30, 429)));
        assert_eq!(p(&["in:0"]), Ok(spec("in", 0, 503)));
        assert_eq!(p(&["x:10"]), Ok(spec("x", 10, 503)));
        assert_eq!(
            p(&["in:9223372036854775807"]),
            Ok(spec("in", i64::MAX as u64, 503))
        );
        // CODE is not validated (these load in the C module).
        assert_eq!(p(&["in:10", "x"]), Ok(spec("in", 10, -1)));
        assert_eq!(p(&["in:10", "-5"]), Ok(spec("in", 10, -1)));
        assert_eq!(p(&["in:10", ""]), Ok(spec("in", 10, -1)));
        let cases: &[(&str, &str)] = &[
            // nginx: [emerg] limit_traffic() empty value pattern in F:5
            ("", "limit_traffic() empty value pattern"),
            // C segfaults on this one; ours:
            (":10", "limit_traffic() empty value pattern"),
            // nginx: [emerg] limit_traffic() $vts_* is not allowed here in F:5
            ("$vts_x:10", "limit_traffic() $vts_* is not allowed here"),
            ("$vts_:10", "limit_traffic() $vts_* is not allowed here"),
            ("a$vts_b:10", "limit_traffic() $vts_* is not allowed here"),
            ("$vts_x", "limit_traffic() $vts_* is not allowed here"),
            ("x$vts_", "limit_traffic() $vts_* is not allowed here"),
            // nginx: [emerg] limit_traffic() empty size pattern in F:5
            ("in", "limit_traffic() empty size pattern"),
            // Only 5 bytes: not checked for `$vts_`:
            // nginx: [emerg] limit_traffic() empty size pattern in F:5
            ("$vts_", "limit_traffic() empty size pattern"),
            // nginx: [emerg] limit_traffic() invalid limit size "in:" in F:5
            ("in:", "limit_traffic() invalid limit size \"in:\""),
            // nginx: [emerg] limit_traffic() invalid limit size "in:1t" in F:5
            ("in:1t", "limit_traffic() invalid limit size \"in:1t\""),
            // nginx: [emerg] limit_traffic() invalid limit size "in:x" in F:5
            ("in:x", "limit_traffic() invalid limit size \"in:x\""),
            // nginx: [emerg] limit_traffic() invalid limit size "in:-1" in F:5
            ("in:-1", "limit_traffic() invalid limit size \"in:-1\""),
            // nginx: [emerg] limit_traffic() invalid limit size "in:10:20" in F:5
            ("in:10:20", "limit_traffic() invalid limit size \"in:10:20\""),
            // nginx: [emerg] limit_traffic() invalid limit size "in:8589934592g" in F:5
            (
                "in:8589934592g",
                "limit_traffic() invalid limit size \"in:8589934592g\"",
            ),
        ];
        for &(a, text) in cases {
            assert_eq!(err_text(p(&[a]).unwrap_err()), text, "{a}");
        }
    }

    #[test]
    fn limit_traffic_by_set_key() {
        let p = |a: &[&str]| {
            let a: Vec<&[u8]> = a.iter().map(|s| s.as_bytes()).collect();
            parse_limit_traffic_by_set_key(&a)
        };
        assert_eq!(
            p(&["NO@x", "in:1k", "5"]),
            Ok((
                b"NO@x".to_vec(),
                LimitSpec {
                    member: b"in".to_vec(),
                    size: 1024,
                    code: 5
                }
            ))
        );
        // Loads in the C module (unlike limit_traffic :10).
        assert_eq!(p(&["NO@x", ":10"]).unwrap().1.member, b"");
        let cases: &[(&[&str], &str)] = &[
            // nginx: [emerg] limit_traffic_by_set_key() empty key pattern in F:5
            (&["", "in:10"], "limit_traffic_by_set_key() empty key pattern"),
            // nginx: [emerg] limit_traffic_by_set_key() empty value pattern in F:5
            (&["NO@x", ""], "limit_traffic_by_set_key() empty value pattern"),
            // nginx: [emerg] limit_traffic_by_set_key() empty size pattern in F:5
            (&["NO@x", "in"], "limit_traffic_by_set_key() empty size pattern"),
            // nginx: [emerg] limit_traffic_by_set_key() $vts_* is not allowed here in F:5
            (
                &["NO@x", "$vts_in:10"],
                "limit_traffic_by_set_key() $vts_* is not allowed here",
            ),
            // nginx: [emerg] limit_traffic_by_set_key() invalid limit size "in:x" in F:5
            (
                &["NO@x", "in:x"],
                "limit_traffic_by_set_key() invalid limit size \"in:x\"",
            ),
        ];
        for &(a, text) in cases {
            assert_eq!(err_text(p(a).unwrap_err()), text, "{a:?}");
        }
    }
}
