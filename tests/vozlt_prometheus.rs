mod common;

// nginx-module-vts's Prometheus dialect ("vozlt's"), served by a `vhost_traffic_status_display`
// location at `/format/prometheus`, against the real nginx: the C module's exact header texts,
// section order, label order, number formats and the values a fixed request mix must give.
//
// Everything expected here was observed from the C module (nginx-module-vts v0.2.7 on nginx
// 1.28.3) and is written as literals. Where ngx_vts differs on purpose the test says so:
// zones come in another order (the C module writes its tree order; ngx_vts sorts), so series
// are compared as sets while the HELP/TYPE lines and the sections are compared in order.
// As in the C module, a server zone or an upstream peer appears once a request was counted
// for it: configured zones and peers without counted traffic (a `vhost_traffic_status off`
// server, a bypassed status location, an idle backup peer) have no series.
//
// Run: `cargo test --release --test vozlt_prometheus`. Against the C module:
// `NGX_VTS_MODULE=/path/to/ngx_http_vhost_traffic_status_module.so cargo test --release --test
// vozlt_prometheus` -- everything passes there too; the tests of what only ngx_vts does
// (OpenMetrics, the seed's `vts_status` beside the display location) skip themselves.
// Needs Debian's `prometheus` (promtool) and `python3-prometheus-client` (/usr/bin/python3).

use common::openmetrics::python_openmetrics;
use common::*;
use std::collections::{BTreeMap, BTreeSet};

use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The C module's Content-Type for `/format/prometheus` (no version, no charset).
const VOZLT_CONTENT_TYPE: &str = "text/plain";
const OM_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
const PROMETHEUS_ACCEPT: &str = "application/openmetrics-text;version=1.0.0;q=0.5,application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.1";
const MODULE_VERSION: &str = "v0.2.7";
const NGINX_VERSION: &str = "1.28.3";

fn other_module() -> bool {
    std::env::var_os("NGX_VTS_MODULE").is_some()
}

fn skip_for_other_module(what: &str) -> bool {
    if other_module() {
        eprintln!("skipped: {} is ngx_vts's own (NGX_VTS_MODULE is set)", what);
        true
    } else {
        false
    }
}

// ---------------------------------------------------------------------------------------------
// The C module's header lines and layout
// ---------------------------------------------------------------------------------------------

/// Section 1's HELP/TYPE lines (they sit between its samples).
fn main_header(zone: &str) -> Vec<String> {
    vec![
        "# HELP nginx_vts_info Nginx info".into(),
        "# TYPE nginx_vts_info gauge".into(),
        "# HELP nginx_vts_start_time_seconds Nginx start time".into(),
        "# TYPE nginx_vts_start_time_seconds gauge".into(),
        "# HELP nginx_vts_main_connections Nginx connections".into(),
        "# TYPE nginx_vts_main_connections gauge".into(),
        format!(
            "# HELP nginx_vts_main_shm_usage_bytes Shared memory [{}] info",
            zone
        ),
        "# TYPE nginx_vts_main_shm_usage_bytes gauge".into(),
    ]
}

/// Section 2 (server zones): the whole header block comes first, also for families without
/// samples (status codes, histograms). Note the trailing space after "status code".
const SERVER_HEADER: [&str; 14] = [
    "# HELP nginx_vts_server_bytes_total The request/response bytes",
    "# TYPE nginx_vts_server_bytes_total counter",
    "# HELP nginx_vts_server_requests_total The requests counter",
    "# TYPE nginx_vts_server_requests_total counter",
    "# HELP nginx_vts_status_code_requests_total The requests counter by status code ",
    "# TYPE nginx_vts_status_code_requests_total counter",
    "# HELP nginx_vts_server_request_seconds_total The request processing time in seconds",
    "# TYPE nginx_vts_server_request_seconds_total counter",
    "# HELP nginx_vts_server_request_seconds The average of request processing times in seconds",
    "# TYPE nginx_vts_server_request_seconds gauge",
    "# HELP nginx_vts_server_request_duration_seconds The histogram of request processing time",
    "# TYPE nginx_vts_server_request_duration_seconds histogram",
    "# HELP nginx_vts_server_cache_total The requests cache counter",
    "# TYPE nginx_vts_server_cache_total counter",
];

/// Section 4 (upstream peers), only when a peer has a node. Note "Processing".
const UPSTREAM_HEADER: [&str; 16] = [
    "# HELP nginx_vts_upstream_bytes_total The request/response bytes",
    "# TYPE nginx_vts_upstream_bytes_total counter",
    "# HELP nginx_vts_upstream_requests_total The upstream requests counter",
    "# TYPE nginx_vts_upstream_requests_total counter",
    "# HELP nginx_vts_upstream_request_seconds_total The request Processing time including upstream in seconds",
    "# TYPE nginx_vts_upstream_request_seconds_total counter",
    "# HELP nginx_vts_upstream_request_seconds The average of request processing times including upstream in seconds",
    "# TYPE nginx_vts_upstream_request_seconds gauge",
    "# HELP nginx_vts_upstream_response_seconds_total The only upstream response processing time in seconds",
    "# TYPE nginx_vts_upstream_response_seconds_total counter",
    "# HELP nginx_vts_upstream_response_seconds The average of only upstream response processing times in seconds",
    "# TYPE nginx_vts_upstream_response_seconds gauge",
    "# HELP nginx_vts_upstream_request_duration_seconds The histogram of request processing time including upstream",
    "# TYPE nginx_vts_upstream_request_duration_seconds histogram",
    "# HELP nginx_vts_upstream_response_duration_seconds The histogram of only upstream response processing time",
    "# TYPE nginx_vts_upstream_response_duration_seconds histogram",
];

const CACHE_STATUSES: [&str; 8] = [
    "miss",
    "bypass",
    "expired",
    "stale",
    "updating",
    "revalidated",
    "hit",
    "scarce",
];
const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];
const CONNECTION_STATES: [&str; 7] = [
    "accepted", "active", "handled", "reading", "requests", "waiting", "writing",
];

/// The family a sample belongs to (a histogram's `_bucket`, `_sum`, `_count` belong to it).
fn family_of(sample: &str) -> &str {
    for suffix in ["_bucket", "_sum", "_count"] {
        if let Some(f) = sample.strip_suffix(suffix) {
            if f.ends_with("_duration_seconds") {
                return f;
            }
        }
    }
    sample
}

/// 0 main, 1 server zones, 2 upstreams.
fn section_of(family: &str) -> usize {
    match family {
        "nginx_vts_info"
        | "nginx_vts_start_time_seconds"
        | "nginx_vts_main_connections"
        | "nginx_vts_main_shm_usage_bytes" => 0,
        f if f.starts_with("nginx_vts_server_") || f == "nginx_vts_status_code_requests_total" => 1,
        f if f.starts_with("nginx_vts_upstream_") => 2,
        f => panic!("family {} is not the C module's", f),
    }
}

/// The label names of a sample, in the C module's order.
fn label_order(sample: &str) -> Vec<&'static str> {
    let family = family_of(sample);
    let mut v: Vec<&'static str> = match family {
        "nginx_vts_info" => vec!["hostname", "module_version", "version"],
        "nginx_vts_start_time_seconds" => vec![],
        "nginx_vts_main_connections" => vec!["status"],
        "nginx_vts_main_shm_usage_bytes" => vec!["shared"],
        "nginx_vts_server_bytes_total" => vec!["host", "direction"],
        "nginx_vts_server_requests_total" | "nginx_vts_status_code_requests_total" => vec!["host", "code"],
        "nginx_vts_server_cache_total" => vec!["host", "status"],
        "nginx_vts_upstream_bytes_total" => vec!["upstream", "backend", "direction"],
        "nginx_vts_upstream_requests_total" => vec!["upstream", "backend", "code"],
        f if f.starts_with("nginx_vts_server_") => vec!["host"],
        f if f.starts_with("nginx_vts_upstream_") => vec!["upstream", "backend"],
        f => panic!("family {} is not the C module's", f),
    };
    if sample.ends_with("_bucket") {
        v.push("le");
    }
    v
}

/// Values in seconds are printed with exactly three decimals, everything else as an integer.
fn is_seconds(sample: &str) -> bool {
    sample == "nginx_vts_start_time_seconds"
        || sample.ends_with("_seconds")
        || sample.ends_with("_seconds_total")
        || sample.ends_with("_seconds_sum")
}

fn is_int(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

fn is_three_decimals(s: &str) -> bool {
    matches!(s.split_once('.'), Some((i, f)) if is_int(i) && f.len() == 3 && is_int(f))
}

/// A sample line split raw: (name, [(label, raw escaped value)], value text).
type RawSample<'a> = (&'a str, Vec<(&'a str, &'a str)>, &'a str);

fn split_sample(line: &str) -> Result<RawSample<'_>, String> {
    let name_end = line.find(['{', ' ']).ok_or("no value")?;
    let name = &line[..name_end];
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(r) = rest.strip_prefix('{') {
        let mut r = r;
        loop {
            let eq = r.find('=').ok_or("label without '='")?;
            let lname = &r[..eq];
            let after = r[eq + 1..].strip_prefix('"').ok_or("label value not quoted")?;
            let bytes = after.as_bytes();
            let mut i = 0;
            while i < bytes.len() && bytes[i] != b'"' {
                i += if bytes[i] == b'\\' { 2 } else { 1 };
            }
            if i >= bytes.len() {
                return Err("unterminated label value".into());
            }
            labels.push((lname, &after[..i]));
            r = &after[i + 1..];
            if let Some(x) = r.strip_prefix(',') {
                r = x;
            } else if let Some(x) = r.strip_prefix('}') {
                rest = x;
                break;
            } else {
                return Err("expected ',' or '}' after a label".into());
            }
        }
    }
    let value = rest.strip_prefix(' ').ok_or("no single space before the value")?;
    if value.contains(' ') {
        return Err("more than a value after the labels".into());
    }
    Ok((name, labels, value))
}

/// The C module's layout: exactly these HELP/TYPE lines in this order (main, server zones,
/// upstreams if `upstream`), every sample after its family's TYPE and inside its family's
/// section, labels in the C module's order, integers as integers and seconds with three
/// decimals, `le` with three decimals or `+Inf`.
fn check_layout(text: &str, zone: &str, upstream: bool) {
    let mut want: Vec<String> = main_header(zone);
    want.extend(SERVER_HEADER.iter().map(|s| s.to_string()));
    if upstream {
        want.extend(UPSTREAM_HEADER.iter().map(|s| s.to_string()));
    }
    let got: Vec<&str> = text.lines().filter(|l| l.starts_with('#')).collect();
    assert_eq!(
        got, want,
        "HELP/TYPE lines and their order\n--- text ---\n{}",
        text
    );
    assert!(text.ends_with('\n'), "the text ends with a newline");

    let mut declared: BTreeSet<&str> = BTreeSet::new();
    let mut section = 0;
    for (i, line) in text.lines().enumerate() {
        let ctx = || format!("line {}: {:?}\n--- text ---\n{}", i + 1, line, text);
        if line == SERVER_HEADER[0] {
            section = 1;
        }
        if line == UPSTREAM_HEADER[0] {
            section = 2;
        }
        if let Some(t) = line.strip_prefix("# TYPE ") {
            declared.insert(t.split(' ').next().unwrap());
        }
        if line.starts_with('#') {
            continue;
        }
        assert!(!line.is_empty(), "empty line; {}", ctx());
        let (name, labels, value) = split_sample(line).unwrap_or_else(|e| panic!("{}; {}", e, ctx()));
        let family = family_of(name);
        assert!(declared.contains(family), "sample before its # TYPE; {}", ctx());
        assert_eq!(
            section_of(family),
            section,
            "sample outside its section; {}",
            ctx()
        );
        let names: Vec<&str> = labels.iter().map(|(n, _)| *n).collect();
        assert_eq!(names, label_order(name), "label order; {}", ctx());
        if is_seconds(name) {
            assert!(is_three_decimals(value), "seconds with 3 decimals; {}", ctx());
        } else {
            assert!(is_int(value), "an integer; {}", ctx());
        }
        if let Some((_, le)) = labels.iter().find(|(n, _)| *n == "le") {
            assert!(
                *le == "+Inf" || is_three_decimals(le),
                "le with 3 decimals; {}",
                ctx()
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// HTTP
// ---------------------------------------------------------------------------------------------

/// GET `path` on `port` with Host `host` (and an Accept header if given).
fn get(port: u16, host: &str, path: &str, accept: Option<&str>) -> Response {
    let headers: Vec<(&str, &str)> = accept.map(|a| ("Accept", a)).into_iter().collect();
    http_request(port, "GET", path, host, &headers, b"")
}

/// The vozlt Prometheus text of a display location: 200, `text/plain`.
fn vozlt_text(port: u16, host: &str, path: &str) -> String {
    let r = get(port, host, path, None);
    assert_eq!(r.status, 200, "GET {} (Host {}): {}", path, host, r.body_text());
    assert_eq!(
        r.header("content-type"),
        Some(VOZLT_CONTENT_TYPE),
        "Content-Type of {}",
        path
    );
    r.body_text()
}

fn parse(text: &str) -> Metrics {
    Metrics::parse(text).unwrap_or_else(|e| panic!("does not parse: {}\n{}", e, text))
}

// ---------------------------------------------------------------------------------------------
// Expected series
// ---------------------------------------------------------------------------------------------

/// What the client saw of the requests nginx counts in one place.
#[derive(Debug, Default, Clone)]
struct Tally {
    requests: u64,
    bytes_in: u64,
    bytes_out: u64,
    classes: [u64; 5],
    codes: BTreeMap<u16, u64>,
}

impl Tally {
    fn add(&mut self, r: &Response) {
        self.requests += 1;
        self.bytes_in += r.bytes_written;
        self.bytes_out += r.bytes_read;
        self.classes[(r.status / 100).clamp(1, 5) as usize - 1] += 1;
        *self.codes.entry(r.status).or_default() += 1;
    }

    fn plus(&mut self, o: &Tally) {
        self.requests += o.requests;
        self.bytes_in += o.bytes_in;
        self.bytes_out += o.bytes_out;
        for i in 0..5 {
            self.classes[i] += o.classes[i];
        }
        for (c, n) in &o.codes {
            *self.codes.entry(*c).or_default() += n;
        }
    }
}

fn labels(pairs: &[(&str, &str)]) -> Labels {
    let mut l: Labels = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    l.sort();
    l
}

/// Series that must exist: a value, or None where only the relations checked elsewhere hold
/// (request times).
#[derive(Default)]
struct Expect(BTreeMap<(String, Labels), Option<f64>>);

impl Expect {
    fn set(&mut self, name: &str, l: &[(&str, &str)], v: Option<u64>) {
        let prev = self.0.insert((name.to_string(), labels(l)), v.map(|x| x as f64));
        assert!(prev.is_none(), "expected twice: {} {:?}", name, l);
    }

    /// The block of one server zone (or the sum entry, which has no histogram).
    fn server(&mut self, host: &str, t: &Tally, codes: Option<&[u16]>, les: Option<&[&str]>, sum: bool) {
        let h = ("host", host);
        self.set(
            "nginx_vts_server_bytes_total",
            &[h, ("direction", "in")],
            Some(t.bytes_in),
        );
        self.set(
            "nginx_vts_server_bytes_total",
            &[h, ("direction", "out")],
            Some(t.bytes_out),
        );
        for (i, c) in CLASSES.iter().enumerate() {
            self.set(
                "nginx_vts_server_requests_total",
                &[h, ("code", c)],
                Some(t.classes[i]),
            );
        }
        self.set("nginx_vts_server_request_seconds_total", &[h], None);
        self.set("nginx_vts_server_request_seconds", &[h], None);
        if let Some(codes) = codes {
            let listed: u64 = codes.iter().map(|c| t.codes.get(c).copied().unwrap_or(0)).sum();
            self.set(
                "nginx_vts_status_code_requests_total",
                &[h, ("code", "other")],
                Some(t.requests - listed),
            );
            for c in codes {
                self.set(
                    "nginx_vts_status_code_requests_total",
                    &[h, ("code", &c.to_string())],
                    Some(t.codes.get(c).copied().unwrap_or(0)),
                );
            }
        }
        if let (Some(les), false) = (les, sum) {
            let b = "nginx_vts_server_request_duration_seconds";
            for le in les {
                self.set(&format!("{}_bucket", b), &[h, ("le", le)], None);
            }
            self.set(&format!("{}_bucket", b), &[h, ("le", "+Inf")], Some(t.requests));
            self.set(&format!("{}_sum", b), &[h], None);
            self.set(&format!("{}_count", b), &[h], Some(t.requests));
        }
        for s in CACHE_STATUSES {
            self.set("nginx_vts_server_cache_total", &[h, ("status", s)], Some(0));
        }
    }

    /// The block of one upstream peer. `passed_on`: every attempt on it failed and was passed
    /// on to the next peer (no bytes, no request time, not in the request histogram's buckets).
    fn peer(&mut self, upstream: &str, backend: &str, t: &Tally, les: &[&str], passed_on: bool) {
        let (u, b) = (("upstream", upstream), ("backend", backend));
        self.set(
            "nginx_vts_upstream_bytes_total",
            &[u, b, ("direction", "in")],
            Some(t.bytes_in),
        );
        self.set(
            "nginx_vts_upstream_bytes_total",
            &[u, b, ("direction", "out")],
            Some(t.bytes_out),
        );
        for (i, c) in CLASSES.iter().enumerate() {
            self.set(
                "nginx_vts_upstream_requests_total",
                &[u, b, ("code", c)],
                Some(t.classes[i]),
            );
        }
        let zero_if_passed_on = passed_on.then_some(0);
        self.set(
            "nginx_vts_upstream_request_seconds_total",
            &[u, b],
            zero_if_passed_on,
        );
        self.set("nginx_vts_upstream_request_seconds", &[u, b], zero_if_passed_on);
        self.set("nginx_vts_upstream_response_seconds_total", &[u, b], None);
        self.set("nginx_vts_upstream_response_seconds", &[u, b], None);
        for (x, bucket_value) in [("request", zero_if_passed_on), ("response", None)] {
            let f = format!("nginx_vts_upstream_{}_duration_seconds", x);
            for le in les {
                self.set(&format!("{}_bucket", f), &[u, b, ("le", le)], bucket_value);
            }
            self.set(
                &format!("{}_bucket", f),
                &[u, b, ("le", "+Inf")],
                Some(t.requests),
            );
            self.set(&format!("{}_sum", f), &[u, b], bucket_value);
            self.set(&format!("{}_count", f), &[u, b], Some(t.requests));
        }
    }

    /// The scrape's server and upstream sections have exactly the expected series, with the
    /// expected values where one is given.
    fn check(&self, m: &Metrics, text: &str) {
        let got: BTreeSet<&(String, Labels)> = m
            .samples
            .keys()
            .filter(|(n, _)| section_of(family_of(n)) != 0)
            .collect();
        let want: BTreeSet<&(String, Labels)> = self.0.keys().collect();
        let missing: Vec<String> = want.difference(&got).map(|k| series(k)).collect();
        let extra: Vec<String> = got.difference(&want).map(|k| series(k)).collect();
        assert!(
            missing.is_empty() && extra.is_empty(),
            "series missing:\n{}\nseries not expected:\n{}\n--- text ---\n{}",
            missing.join("\n"),
            extra.join("\n"),
            text
        );
        let mut wrong = Vec::new();
        for (k, v) in &self.0 {
            if let Some(v) = v {
                let g = m.samples[k];
                if g != *v {
                    wrong.push(format!("{} = {}, want {}", series(k), g, v));
                }
            }
        }
        assert!(
            wrong.is_empty(),
            "wrong values:\n{}\n--- text ---\n{}",
            wrong.join("\n"),
            text
        );
    }
}

/// `name{k="v",...}` (labels sorted, values shown with Rust's escapes).
fn series((name, labels): &(String, Labels)) -> String {
    let l: Vec<String> = labels.iter().map(|(k, v)| format!("{}={:?}", k, v)).collect();
    format!("{}{{{}}}", name, l.join(","))
}

fn ms(seconds: f64) -> u64 {
    (seconds * 1000.0).round() as u64
}

/// A histogram's shape: buckets (bounds in ms) cumulative and at most `+Inf`; `_sum` equals
/// the matching `*_seconds_total`; and, where every counted request was observed, a request
/// outside bucket `b` took at least `b+1` ms, so `count - bucket(b) <= sum_ms / (b+1)`.
fn check_histogram(
    m: &Metrics,
    family: &str,
    total: &str,
    base: &[(&str, &str)],
    bounds_ms: &[(&'static str, u64)],
    all_observed: bool,
) {
    let with = |le: &'static str| {
        let mut l = base.to_vec();
        l.push(("le", le));
        l
    };
    let count = m.value(&format!("{}_count", family), base);
    let sum = m.value(&format!("{}_sum", family), base);
    assert_eq!(
        sum,
        m.value(total, base),
        "{}_sum vs {} {:?}",
        family,
        total,
        base
    );
    let inf = m.value(&format!("{}_bucket", family), &with("+Inf"));
    assert_eq!(inf, count, "{} +Inf vs _count {:?}", family, base);
    let mut prev = 0.0;
    for (le, b_ms) in bounds_ms {
        let v = m.value(&format!("{}_bucket", family), &with(le));
        assert!(
            v >= prev && v <= inf,
            "{} {:?} le={}: {} (previous {}, +Inf {})",
            family,
            base,
            le,
            v,
            prev,
            inf
        );
        if all_observed {
            assert!(
                (count - v) as u64 <= ms(sum) / (b_ms + 1),
                "{} {:?}: {} requests above {} ms but only {} ms in total",
                family,
                base,
                count - v,
                b_ms,
                ms(sum)
            );
        }
        prev = v;
    }
}

// ---------------------------------------------------------------------------------------------
// 1. The site: several servers, an upstream with a dead peer and a backup
// ---------------------------------------------------------------------------------------------

const BUCKETS: &str = "0.005 0.05 0.5";
const LES: [&str; 3] = ["0.005", "0.050", "0.500"];
const BOUNDS_MS: [(&str, u64); 3] = [("0.005", 5), ("0.050", 50), ("0.500", 500)];
const CODES: [u16; 2] = [200, 404];
const ZONE_SIZE: u64 = 2 * 1024 * 1024;

struct Site {
    nginx: Nginx,
    /// Refuses every connection while it lives: the dead peer.
    dead: ClosedPort,
    /// Unix seconds just before nginx started, and just after.
    started: (f64, f64),
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// ports[0]: front.example (default), other.example and status.example (the display location,
/// `bypass_stats on`); ports[1]: the live peer, ports[2]: the backup peer (both not counted:
/// `vhost_traffic_status off`). The upstream has a zone, so the dead peer (first, so the first
/// proxied request tries it) fails once for all workers and is then left alone for 60 s.
fn start_site() -> Site {
    let dead = ClosedPort::new();
    let d = dead.port();
    let t0 = unix_now();
    let nginx = Nginx::start_with(2, 3, |p| {
        format!(
            r#"vhost_traffic_status_zone shared:vozlt_main:2m;
vhost_traffic_status_measure_status_codes 200 404;
vhost_traffic_status_histogram_buckets {BUCKETS};
upstream backend {{
    zone backend 64k;
    server 127.0.0.1:{d} fail_timeout=60s;
    server 127.0.0.1:{p1};
    server 127.0.0.1:{p2} backup;
}}
server {{
    listen 127.0.0.1:{p0};
    server_name front.example;
    location /proxy/ {{ proxy_pass http://backend; }}
    location /direct/ {{ proxy_pass http://127.0.0.1:{p1}; }}
    location = /ok {{ return 200 "ok\n"; }}
    location = /missing {{ return 404; }}
    location = /fail {{ return 500; }}
    location = /moved {{ return 301 /ok; }}
}}
server {{
    listen 127.0.0.1:{p0};
    server_name other.example;
    location = /ok {{ return 200 "other\n"; }}
    location = /teapot {{ return 418; }}
    location = /empty {{ return 204; }}
}}
server {{
    listen 127.0.0.1:{p0};
    server_name status.example;
    location /status {{
        vhost_traffic_status_bypass_stats on;
        vhost_traffic_status_display;
        vhost_traffic_status_display_format html;
    }}
}}
server {{
    listen 127.0.0.1:{p1};
    server_name live.example;
    vhost_traffic_status off;
    location / {{ return 200 "live\n"; }}
}}
server {{
    listen 127.0.0.1:{p2};
    server_name backup.example;
    vhost_traffic_status off;
    location / {{ return 200 "backup\n"; }}
}}"#,
            p0 = p[0],
            p1 = p[1],
            p2 = p[2],
        )
    });
    let t1 = unix_now();
    Site {
        nginx,
        dead,
        started: (t0, t1),
    }
}

/// What the fixed request mix must show.
struct Mix {
    front: Tally,
    other: Tally,
    /// Requests proxied to `backend` (all served by the live peer) and to 127.0.0.1:ports[1].
    via_backend: Tally,
    direct: Tally,
    /// Client requests plus the connections nginx accepted from itself (proxied requests).
    connections: u64,
}

fn send_mix(site: &Site) -> Mix {
    let port = site.nginx.port();
    let mut mix = Mix {
        front: Tally::default(),
        other: Tally::default(),
        via_backend: Tally::default(),
        direct: Tally::default(),
        connections: 0,
    };
    let plan: [(&str, &str, u16, usize); 10] = [
        ("front.example", "/proxy/a", 200, 3),
        ("front.example", "/direct/x", 200, 1),
        ("front.example", "/ok", 200, 4),
        ("front.example", "/missing", 404, 2),
        ("front.example", "/fail", 500, 1),
        ("front.example", "/moved", 301, 1),
        ("other.example", "/ok", 200, 2),
        ("other.example", "/teapot", 418, 1),
        ("other.example", "/empty", 204, 1),
        ("other.example", "/ok", 200, 1),
    ];
    for (host, path, status, n) in plan {
        for _ in 0..n {
            let r = get(port, host, path, None);
            assert_eq!(r.status, status, "{} {}: {}", host, path, r.body_text());
            mix.connections += 1;
            if host == "front.example" {
                mix.front.add(&r);
            } else {
                mix.other.add(&r);
            }
            if path.starts_with("/proxy/") {
                assert_eq!(r.body_text(), "live\n", "{} is served by the live peer", path);
                mix.via_backend.add(&r);
                mix.connections += 1;
            }
            if path.starts_with("/direct/") {
                mix.direct.add(&r);
                mix.connections += 1;
            }
        }
    }
    mix
}

/// Scrapes `/status/format/prometheus` until nginx's connection counters show only the scrape
/// itself (a proxied request's server side may close a moment after the client got its
/// answer). Returns the last text and the number of scrapes made.
fn scrape_settled(port: u16) -> (String, u64) {
    let deadline = Instant::now() + SETTLE_TIMEOUT;
    let mut n = 0;
    loop {
        let text = vozlt_text(port, "status.example", "/status/format/prometheus");
        n += 1;
        let m = parse(&text);
        let c = |s: &str| m.get("nginx_vts_main_connections", &[("status", s)]);
        let settled = c("active") == Some(1.0)
            && c("writing") == Some(1.0)
            && c("reading") == Some(0.0)
            && c("waiting") == Some(0.0);
        if settled || Instant::now() >= deadline {
            return (text, n);
        }
        thread::sleep(Duration::from_millis(50));
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .expect("/proc/sys/kernel/hostname")
        .trim()
        .to_ascii_lowercase()
}

fn site_expectations(site: &Site, mix: &Mix) -> Expect {
    let live = format!("127.0.0.1:{}", site.nginx.ports[1]);
    let dead = format!("127.0.0.1:{}", site.dead.port());
    let mut e = Expect::default();
    e.server("front.example", &mix.front, Some(&CODES), Some(&LES), false);
    e.server("other.example", &mix.other, Some(&CODES), Some(&LES), false);
    let mut sum = mix.front.clone();
    sum.plus(&mix.other);
    e.server("*", &sum, Some(&CODES), Some(&LES), true);
    e.peer("backend", &live, &mix.via_backend, &LES, false);
    // The first proxied request tried the dead peer: one attempt, passed on with a 502.
    let dead_tally = Tally {
        requests: 1,
        classes: [0, 0, 0, 0, 1],
        ..Tally::default()
    };
    e.peer("backend", &dead, &dead_tally, &LES, true);
    e.peer("::nogroups", &live, &mix.direct, &LES, false);
    e
}

/// Test 1: the C module's exposition of a fixed request mix, line for line where the C module
/// is deterministic.
#[test]
fn c_module_exposition_of_a_fixed_request_mix() {
    let site = start_site();
    let mix = send_mix(&site);
    let port = site.nginx.port();
    let (text, scrapes) = scrape_settled(port);
    let m = parse(&text);

    check_layout(&text, "vozlt_main", true);
    site_expectations(&site, &mix).check(&m, &text);

    // The backup peer had no traffic: no series at all (the JSON lists it; Prometheus does not).
    let backup = format!("127.0.0.1:{}", site.nginx.ports[2]);
    assert!(
        !text.contains(&format!("backend=\"{}\"", backup)),
        "the idle backup peer has series:\n{}",
        text
    );
    // The `le` labels as written.
    for le in ["le=\"0.005\"}", "le=\"0.050\"}", "le=\"0.500\"}", "le=\"+Inf\"}"] {
        assert!(
            text.contains(&format!(
                "nginx_vts_server_request_duration_seconds_bucket{{host=\"front.example\",{} ",
                le
            )),
            "{}\n{}",
            le,
            text
        );
    }

    // Request times: histograms consistent with the time counters; the sum entry's total is
    // the zones' totals.
    for host in ["front.example", "other.example"] {
        check_histogram(
            &m,
            "nginx_vts_server_request_duration_seconds",
            "nginx_vts_server_request_seconds_total",
            &[("host", host)],
            &BOUNDS_MS,
            true,
        );
    }
    let total = |h: &str| ms(m.value("nginx_vts_server_request_seconds_total", &[("host", h)]));
    assert_eq!(total("*"), total("front.example") + total("other.example"));
    let live = format!("127.0.0.1:{}", site.nginx.ports[1]);
    let dead = format!("127.0.0.1:{}", site.dead.port());
    for (u, b) in [
        ("backend", live.as_str()),
        ("::nogroups", live.as_str()),
        ("backend", dead.as_str()),
    ] {
        let base = [("upstream", u), ("backend", b)];
        check_histogram(
            &m,
            "nginx_vts_upstream_request_duration_seconds",
            "nginx_vts_upstream_request_seconds_total",
            &base,
            &BOUNDS_MS,
            b == live,
        );
        check_histogram(
            &m,
            "nginx_vts_upstream_response_duration_seconds",
            "nginx_vts_upstream_response_seconds_total",
            &base,
            &BOUNDS_MS,
            true,
        );
    }

    // Section 1.
    let host = hostname();
    assert_eq!(
        m.find("nginx_vts_info", &[]),
        vec![(
            &labels(&[
                ("hostname", &host),
                ("module_version", MODULE_VERSION),
                ("version", NGINX_VERSION)
            ]),
            1.0
        )],
        "{}",
        text
    );
    assert!(
        text.contains(&format!(
            "nginx_vts_info{{hostname=\"{}\",module_version=\"{}\",version=\"{}\"}} 1\n",
            host, MODULE_VERSION, NGINX_VERSION
        )),
        "{}",
        text
    );
    let start = m.value("nginx_vts_start_time_seconds", &[]);
    let (t0, t1) = site.started;
    assert!(
        start >= t0.floor() - 1.0 && start <= t1 + 1.0,
        "start time {} outside [{}, {}]",
        start,
        t0,
        t1
    );
    assert_eq!(
        m.label_values("nginx_vts_main_connections", "status"),
        CONNECTION_STATES.iter().map(|s| s.to_string()).collect()
    );
    let conn = |s: &str| m.value("nginx_vts_main_connections", &[("status", s)]) as u64;
    // Every connection so far: the mix's, nginx's own to the peers, and the scrapes.
    let all = mix.connections + scrapes;
    assert_eq!(
        [conn("accepted"), conn("handled"), conn("requests")],
        [all, all, all],
        "connections (mix {}, scrapes {})\n{}",
        mix.connections,
        scrapes,
        text
    );
    assert_eq!(
        [conn("active"), conn("reading"), conn("writing"), conn("waiting")],
        [1, 0, 1, 0],
        "connection states while the scrape is written"
    );
    let shm = |s: &str| m.value("nginx_vts_main_shm_usage_bytes", &[("shared", s)]) as u64;
    assert_eq!(
        m.label_values("nginx_vts_main_shm_usage_bytes", "shared"),
        ["free_size", "max_size", "used_node", "used_size"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    );
    assert_eq!(shm("max_size"), ZONE_SIZE);
    assert!(shm("used_size") > 0 && shm("used_size") <= ZONE_SIZE, "{}", text);
    assert!(shm("free_size") < ZONE_SIZE, "{}", text);
    // Two server zones and three peers have counters (the C module: exactly 5 nodes).
    assert!(shm("used_node") >= 5, "{}", text);
    // The four main families in the C module's order of samples.
    let main_lines: Vec<&str> = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .take_while(|l| section_of(family_of(split_sample(l).unwrap().0)) == 0)
        .map(|l| l.split(' ').next().unwrap())
        .collect();
    assert_eq!(
        main_lines,
        vec![
            format!(
                "nginx_vts_info{{hostname=\"{}\",module_version=\"{}\",version=\"{}\"}}",
                host, MODULE_VERSION, NGINX_VERSION
            ),
            "nginx_vts_start_time_seconds".into(),
            "nginx_vts_main_connections{status=\"accepted\"}".into(),
            "nginx_vts_main_connections{status=\"active\"}".into(),
            "nginx_vts_main_connections{status=\"handled\"}".into(),
            "nginx_vts_main_connections{status=\"reading\"}".into(),
            "nginx_vts_main_connections{status=\"requests\"}".into(),
            "nginx_vts_main_connections{status=\"waiting\"}".into(),
            "nginx_vts_main_connections{status=\"writing\"}".into(),
            "nginx_vts_main_shm_usage_bytes{shared=\"max_size\"}".into(),
            "nginx_vts_main_shm_usage_bytes{shared=\"used_size\"}".into(),
            "nginx_vts_main_shm_usage_bytes{shared=\"used_node\"}".into(),
            "nginx_vts_main_shm_usage_bytes{shared=\"free_size\"}".into(),
        ]
    );
}

/// Test 2: `promtool check metrics` finds nothing to say about the text (the C module's own
/// text of this site is clean too: promtool does not object to `used_node` under a `_bytes`
/// name, nor to the HELP/TYPE of families without samples).
#[test]
fn promtool_finds_no_problem() {
    let site = start_site();
    let _mix = send_mix(&site);
    let text = vozlt_text(site.nginx.port(), "status.example", "/status/format/prometheus");
    assert_promtool_clean(&text);
}

// ---------------------------------------------------------------------------------------------
// 3. OpenMetrics (ngx_vts only: the C module always answers text/plain)
// ---------------------------------------------------------------------------------------------

/// Samples apart from the connection counters (which the scrapes themselves change).
fn without_connections(m: &Metrics) -> BTreeMap<(String, Labels), f64> {
    m.samples
        .iter()
        .filter(|((n, _), _)| n != "nginx_vts_main_connections")
        .map(|(k, v)| (k.clone(), *v))
        .collect()
}

/// The OpenMetrics answer of a display location: `# EOF` once at the end, accepted by the
/// strict parser, and the same samples as the text format.
fn check_openmetrics(port: u16, host: &str, path: &str, accept: &str) -> Metrics {
    let r = get(port, host, path, Some(accept));
    assert_eq!(r.status, 200, "{}", r.body_text());
    assert_eq!(
        r.header("content-type"),
        Some(OM_CONTENT_TYPE),
        "Accept: {}",
        accept
    );
    let om = r.body_text();
    assert!(om.ends_with("\n# EOF\n"), "no # EOF at the end:\n{}", om);
    assert_eq!(om.matches("# EOF").count(), 1, "{}", om);
    let (ok, out) = python_openmetrics(&om);
    assert!(
        ok,
        "the strict OpenMetrics parser refused it:\n{}\n--- text ---\n{}",
        out, om
    );
    let parsed = parse(&out);
    let text = parse(&vozlt_text(port, host, path));
    assert_eq!(
        without_connections(&parsed),
        without_connections(&text),
        "OpenMetrics (as parsed) vs the text format"
    );
    parsed
}

/// Test 3.
#[test]
fn openmetrics_when_asked_for_it() {
    if skip_for_other_module("OpenMetrics") {
        return;
    }
    let site = start_site();
    let _mix = send_mix(&site);
    let port = site.nginx.port();
    let path = "/status/format/prometheus";
    for accept in ["application/openmetrics-text", PROMETHEUS_ACCEPT] {
        let parsed = check_openmetrics(port, "status.example", path, accept);
        for (family, ty) in [
            ("nginx_vts_info", "gauge"),
            ("nginx_vts_main_connections", "gauge"),
            ("nginx_vts_server_bytes", "counter"),
            ("nginx_vts_server_requests", "counter"),
            ("nginx_vts_server_request_duration_seconds", "histogram"),
            ("nginx_vts_upstream_response_duration_seconds", "histogram"),
        ] {
            assert_eq!(
                parsed.types.get(family).map(String::as_str),
                Some(ty),
                "OpenMetrics family {} (Accept: {})",
                family,
                accept
            );
        }
    }
    // Text when OpenMetrics is not asked for.
    for accept in ["text/plain", "text/plain;version=0.0.4", "*/*"] {
        let r = get(port, "status.example", path, Some(accept));
        assert_eq!(
            r.header("content-type"),
            Some(VOZLT_CONTENT_TYPE),
            "Accept: {}",
            accept
        );
        assert!(!r.body_text().contains("# EOF"), "Accept: {}", accept);
    }
}

// ---------------------------------------------------------------------------------------------
// 4. Hostile server names
// ---------------------------------------------------------------------------------------------

/// (`server_name` as written in nginx.conf, the zone name nginx stores: the first name,
/// lower-cased). nginx's quoted strings turn `\"`, `\\`, `\n`, `\t`, `\r` into the byte.
const HOSTILE: [(&str, &str); 8] = [
    (r#"'A"b'"#, "a\"b"),
    (r"'a\\b'", "a\\b"),
    (r#""a\nb""#, "a\nb"),
    (r#""a\tb""#, "a\tb"),
    (r#""a\rb""#, "a\rb"),
    ("\"a\u{1}b\u{7f}c\"", "a\u{1}b\u{7f}c"),
    ("\"\u{e9}.Example\"", "\u{e9}.example"),
    (r#""a}b{c=d,e \\\"\\n""#, "a}b{c=d,e \\\"\\n"),
];
const HOSTILE_SUM_KEY: (&str, &str) = (r#"'all "servers" \\ '"#, "all \"servers\" \\ ");

/// Test 4: every name comes back exactly, through promtool and the parsers.
#[test]
fn hostile_server_names_are_escaped() {
    let nginx = Nginx::start_with(2, 1 + HOSTILE.len(), |p| {
        let mut s = format!(
            r#"vhost_traffic_status_zone;
server {{
    listen 127.0.0.1:{};
    server_name status.example;
    location /status {{
        vhost_traffic_status_bypass_stats on;
        vhost_traffic_status_display;
        vhost_traffic_status_display_sum_key {};
    }}
}}
"#,
            p[0], HOSTILE_SUM_KEY.0
        );
        for (i, (conf, _)) in HOSTILE.iter().enumerate() {
            s.push_str(&format!(
                "server {{\n    listen 127.0.0.1:{};\n    server_name {};\n    location / {{ return 200 \"x\\n\"; }}\n}}\n",
                p[i + 1],
                conf
            ));
        }
        s
    });
    for i in 0..HOSTILE.len() {
        let r = get(nginx.ports[i + 1], "hostile.test", "/", None);
        assert_eq!(r.status, 200);
    }
    let text = vozlt_text(nginx.port(), "status.example", "/status/format/prometheus");
    check_layout(&text, "ngx_http_vhost_traffic_status", false);
    assert_promtool_clean(&text);
    let m = parse(&text);
    let mut want: BTreeSet<String> = HOSTILE.iter().map(|(_, n)| n.to_string()).collect();
    want.insert(HOSTILE_SUM_KEY.1.to_string());
    assert_eq!(
        m.label_values("nginx_vts_server_requests_total", "host"),
        want,
        "{}",
        text
    );
    for (_, name) in HOSTILE {
        assert_eq!(
            m.value(
                "nginx_vts_server_requests_total",
                &[("host", name), ("code", "2xx")]
            ),
            1.0,
            "{:?}",
            name
        );
    }
    assert_eq!(
        m.value(
            "nginx_vts_server_requests_total",
            &[("host", HOSTILE_SUM_KEY.1), ("code", "2xx")]
        ),
        HOSTILE.len() as f64
    );
    // The escapes as written.
    for raw in [
        "host=\"a\\\"b\"",
        "host=\"a\\\\b\"",
        "host=\"a\\nb\"",
        "host=\"a\tb\"",
        "host=\"a}b{c=d,e \\\\\\\"\\\\n\"",
        "host=\"all \\\"servers\\\" \\\\ \"",
    ] {
        assert!(text.contains(raw), "{} not in\n{}", raw, text);
    }

    if !other_module() {
        let parsed = check_openmetrics(
            nginx.port(),
            "status.example",
            "/status/format/prometheus",
            "application/openmetrics-text",
        );
        assert_eq!(
            parsed.label_values("nginx_vts_server_requests_total", "host"),
            want
        );
    }
}

// ---------------------------------------------------------------------------------------------
// 5. The C module's counting switches, as the exposition shows them
// ---------------------------------------------------------------------------------------------

/// `vhost_traffic_status off` and `_bypass_stats on` leave requests uncounted, `_ignore_status
/// 4xx` leaves 4xx uncounted, `_stats_by_upstream off` drops the upstream section,
/// `_display_sum_key` names the sum, `_display_format prometheus` answers without the URI
/// suffix, the default zone's name and size; a display request is counted after its document
/// was written (so a document never includes itself, the next one does).
#[test]
fn counting_switches_show_in_the_exposition() {
    let nginx = Nginx::start_with(2, 2, |p| {
        format!(
            r#"vhost_traffic_status_zone;
vhost_traffic_status_stats_by_upstream off;
upstream backend {{ server 127.0.0.1:{p1}; }}
server {{
    listen 127.0.0.1:{p0};
    server_name front.example;
    vhost_traffic_status_ignore_status 4xx;
    location /proxy/ {{ proxy_pass http://backend; }}
    location = /ok {{ return 200 "ok\n"; }}
    location = /missing {{ return 404; }}
    location = /fail {{ return 503; }}
    location = /quiet {{ vhost_traffic_status off; return 200 "quiet\n"; }}
    location = /bypass {{ vhost_traffic_status_bypass_stats on; return 200 "bypass\n"; }}
    location /status {{
        vhost_traffic_status_display;
        vhost_traffic_status_display_format prometheus;
        vhost_traffic_status_display_sum_key total;
    }}
}}
server {{
    listen 127.0.0.1:{p1};
    server_name live.example;
    vhost_traffic_status off;
    location / {{ return 200 "live\n"; }}
}}"#,
            p0 = p[0],
            p1 = p[1]
        )
    });
    let port = nginx.port();
    let mut front = Tally::default();
    for (path, status, n, counted) in [
        ("/proxy/a", 200, 2, true),
        ("/ok", 200, 3, true),
        ("/missing", 404, 2, false),
        ("/fail", 503, 1, true),
        ("/quiet", 200, 2, false),
        ("/bypass", 200, 2, false),
    ] {
        for _ in 0..n {
            let r = get(port, "front.example", path, None);
            assert_eq!(r.status, status, "{}", path);
            if counted {
                front.add(&r);
            }
        }
    }
    for round in 0..2 {
        let r = get(port, "front.example", "/status", None);
        assert_eq!(r.status, 200);
        assert_eq!(r.header("content-type"), Some(VOZLT_CONTENT_TYPE));
        let text = r.body_text();
        check_layout(&text, "ngx_http_vhost_traffic_status", false);
        let m = parse(&text);
        let mut e = Expect::default();
        e.server("front.example", &front, None, None, false);
        e.server("total", &front, None, None, true);
        e.check(&m, &text);
        assert_eq!(
            m.value("nginx_vts_main_shm_usage_bytes", &[("shared", "max_size")]),
            1048575.0
        );
        assert!(
            !text.contains("host=\"*\""),
            "round {}: the sum is \"total\"",
            round
        );
        // This scrape is counted now, before the next one.
        front.add(&r);
    }
}

// ---------------------------------------------------------------------------------------------
// 6. One zone, two dialects (ngx_vts only)
// ---------------------------------------------------------------------------------------------

/// The seed's `vts_status` keeps its dialect (`{zone=...}`) and the display location speaks
/// vozlt's (`{host=...,code=...}`), both from the one zone, whichever spelling declared it,
/// with the same counts.
#[test]
fn seed_and_vozlt_dialects_from_one_zone() {
    if skip_for_other_module("vts_status beside the display location") {
        return;
    }
    for (zone, upstream_stats) in [
        (
            "vhost_traffic_status_zone shared:one:2m;",
            "vhost_traffic_status_stats_by_upstream on;",
        ),
        ("vts_zone one 2m;", "vts_upstream_stats on;"),
    ] {
        let nginx = Nginx::start_with(2, 2, |p| {
            format!(
                r#"{zone}
{upstream_stats}
upstream backend {{ server 127.0.0.1:{p1}; }}
server {{
    listen 127.0.0.1:{p0};
    server_name front.example;
    location /proxy/ {{ proxy_pass http://backend; }}
    location = /ok {{ return 200 "ok\n"; }}
    location = /missing {{ return 404; }}
}}
server {{
    listen 127.0.0.1:{p0};
    server_name other.example;
    location = /ok {{ return 200 "other\n"; }}
}}
server {{
    listen 127.0.0.1:{p0};
    server_name status.example;
    vhost_traffic_status off;
    location = /seed {{ vts_status; }}
    location /vozlt {{ vhost_traffic_status_display; vhost_traffic_status_display_format prometheus; }}
}}
server {{
    listen 127.0.0.1:{p1};
    server_name live.example;
    vhost_traffic_status off;
    location / {{ return 200 "live\n"; }}
}}"#,
                p0 = p[0],
                p1 = p[1]
            )
        });
        let port = nginx.port();
        let live = format!("127.0.0.1:{}", nginx.ports[1]);
        let (mut front, mut other, mut proxied) = (Tally::default(), Tally::default(), Tally::default());
        for (host, path, status, n) in [
            ("front.example", "/proxy/a", 200, 3),
            ("front.example", "/ok", 200, 2),
            ("front.example", "/missing", 404, 1),
            ("other.example", "/ok", 200, 4),
        ] {
            for _ in 0..n {
                let r = get(port, host, path, None);
                assert_eq!(r.status, status, "{} {}", host, path);
                if host == "front.example" {
                    front.add(&r);
                } else {
                    other.add(&r);
                }
                if path.starts_with("/proxy/") {
                    proxied.add(&r);
                }
            }
        }

        let seed = http_request(port, "GET", "/seed", "status.example", &[], b"");
        assert_eq!(seed.status, 200, "{}: {}", zone, seed.body_text());
        assert_eq!(seed.header("content-type"), Some(STATUS_CONTENT_TYPE), "{}", zone);
        let seed_text = seed.body_text();
        let s = parse(&seed_text);
        let vozlt = vozlt_text(port, "status.example", "/vozlt");
        check_layout(&vozlt, "one", true);
        let v = parse(&vozlt);

        // The seed dialect lists every configured zone from the start; the ones without
        // counted traffic (live.example, status.example: `vhost_traffic_status off`) stay 0.
        // vozlt's lists the zones that counted a request, and the sum.
        for z in s.label_values("nginx_vts_server_requests_total", "zone") {
            if z != "front.example" && z != "other.example" {
                assert_eq!(
                    s.value("nginx_vts_server_requests_total", &[("zone", &z)]),
                    0.0,
                    "{}: seed zone {}\n{}",
                    zone,
                    z,
                    seed_text
                );
            }
        }
        assert_eq!(
            v.label_values("nginx_vts_server_requests_total", "host"),
            ["*", "front.example", "other.example"]
                .iter()
                .map(|x| x.to_string())
                .collect(),
            "{}: vozlt zones\n{}",
            zone,
            vozlt
        );
        assert!(
            s.label_values("nginx_vts_server_requests_total", "host")
                .is_empty(),
            "{}: the seed dialect has no host label",
            zone
        );
        for (h, t) in [("front.example", &front), ("other.example", &other)] {
            assert_eq!(
                s.value("nginx_vts_server_requests_total", &[("zone", h)]) as u64,
                t.requests,
                "{} seed {}",
                zone,
                h
            );
            for dir in ["in", "out"] {
                let want = if dir == "in" { t.bytes_in } else { t.bytes_out };
                assert_eq!(
                    s.value("nginx_vts_server_bytes_total", &[("zone", h), ("direction", dir)]) as u64,
                    want,
                    "{} seed bytes {} {}",
                    zone,
                    h,
                    dir
                );
                assert_eq!(
                    v.value("nginx_vts_server_bytes_total", &[("host", h), ("direction", dir)]) as u64,
                    want,
                    "{} vozlt bytes {} {}",
                    zone,
                    h,
                    dir
                );
            }
            for (i, c) in CLASSES.iter().enumerate() {
                assert_eq!(
                    v.value("nginx_vts_server_requests_total", &[("host", h), ("code", c)]) as u64,
                    t.classes[i],
                    "{} vozlt {} {}",
                    zone,
                    h,
                    c
                );
                if let Some(x) = s.get("nginx_vts_server_responses_total", &[("zone", h), ("status", c)]) {
                    assert_eq!(x as u64, t.classes[i], "{} seed {} {}", zone, h, c);
                } else {
                    assert_eq!(t.classes[i], 0, "{} seed {} {} missing", zone, h, c);
                }
            }
        }
        assert_eq!(
            s.value(
                "nginx_vts_upstream_requests_total",
                &[("upstream", "backend"), ("server", &live)]
            ) as u64,
            proxied.requests,
            "{} seed upstream",
            zone
        );
        assert_eq!(
            v.value(
                "nginx_vts_upstream_requests_total",
                &[("upstream", "backend"), ("backend", &live), ("code", "2xx")]
            ) as u64,
            proxied.requests,
            "{} vozlt upstream",
            zone
        );
        // vozlt's peer bytes are the client's (`$request_length`, `$bytes_sent`) under the C
        // module's zone directive. (Under `vts_zone` they are what the seed counts, the bytes
        // exchanged with the peer: not asserted here.)
        if zone.starts_with("vhost_traffic_status_zone") {
            for (dir, want) in [("in", proxied.bytes_in), ("out", proxied.bytes_out)] {
                assert_eq!(
                    v.value(
                        "nginx_vts_upstream_bytes_total",
                        &[("upstream", "backend"), ("backend", &live), ("direction", dir)]
                    ) as u64,
                    want,
                    "{} vozlt upstream bytes {}",
                    zone,
                    dir
                );
            }
        }
        let mut sum = front.clone();
        sum.plus(&other);
        assert_eq!(
            v.value(
                "nginx_vts_server_requests_total",
                &[("host", "*"), ("code", "2xx")]
            ) as u64,
            sum.classes[1]
        );
        drop(nginx);
    }
}

/// The seed's dialect at a `vts_status` location over a `vhost_traffic_status_zone`: a peer's
/// upstream response histogram holds its attempts' response times (there a peer's own buckets
/// hold the client's request times), passed-on attempts included. ngx_vts only.
#[test]
fn seed_dialect_over_a_vozlt_zone_shows_response_times() {
    if std::env::var_os("NGX_VTS_MODULE").is_some() {
        eprintln!("skipped: vts_status is ngx_vts's (NGX_VTS_MODULE is set)");
        return;
    }
    let dead = ClosedPort::new();
    let nginx = Nginx::start_with(2, 2, |p| {
        format!(
            r#"vhost_traffic_status_zone;
vhost_traffic_status_histogram_buckets 0.05 1;
upstream backend {{ server 127.0.0.1:{dead} max_fails=0; server 127.0.0.1:{p1}; }}
server {{
    listen 127.0.0.1:{p0};
    server_name front.example;
    location /p {{ proxy_pass http://backend; }}
    location = /status {{ vts_status; }}
}}
server {{ listen 127.0.0.1:{p1}; location / {{ return 200 "ok\n"; }} }}"#,
            dead = dead.port(),
            p0 = p[0],
            p1 = p[1]
        )
    });
    // Round robin over 2 workers: with max_fails=0 every request tries the dead peer first
    // or second; 4 requests make at least one passed-on attempt.
    for _ in 0..4 {
        assert_eq!(nginx.get("front.example", "/p").status, 200);
    }
    let m = nginx.scrape_at(nginx.port(), "front.example", "/status");
    let dead_peer = format!("127.0.0.1:{}", dead.port());
    let labels = |le: &'static str| {
        [
            ("upstream", "backend"),
            ("server", dead_peer.as_str()),
            ("le", le),
        ]
    };
    let family = "nginx_vts_upstream_response_duration_seconds_bucket";
    let attempts = m.value(family, &labels("+Inf"));
    assert!(attempts >= 1.0, "the dead peer was tried: {attempts}");
    // A refused connection answers at once: every attempt is in the first bucket.
    assert_eq!(m.value(family, &labels("0.05")), attempts);
    assert_eq!(
        m.value(
            "nginx_vts_upstream_response_duration_seconds_count",
            &labels("+Inf")[..2]
        ),
        attempts
    );
}
