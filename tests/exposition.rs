mod common;

// The Prometheus exposition of the real nginx with the module, judged by the tools that will
// read it: `promtool check metrics`, the strict OpenMetrics parser of python prometheus_client,
// a real Prometheus server scraping it, and this file's own checker for what those miss
// (duplicate series, histogram shape, HELP/TYPE placement, exact counts).
//
// Run with `cargo test --release --test exposition`. Needs Debian's `prometheus` (server and
// promtool) and `python3-prometheus-client` (run with /usr/bin/python3).

use common::openmetrics::python_openmetrics;
use common::*;
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const OM_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
const PROMETHEUS_ACCEPT: &str = "application/openmetrics-text;version=1.0.0;q=0.5,application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.1";
const DEFAULT_BOUNDS: [f64; 11] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// Every family of the README's table, with its type in the text format.
const FAMILIES: [(&str, &str); 21] = [
    ("nginx_vts_info", "gauge"),
    ("nginx_vts_start_time_seconds", "gauge"),
    ("nginx_vts_connections", "gauge"),
    ("nginx_vts_connections_total", "counter"),
    ("nginx_vts_shm_bytes", "gauge"),
    ("nginx_vts_shm_keys", "gauge"),
    ("nginx_vts_server_requests_total", "counter"),
    ("nginx_vts_server_bytes_total", "counter"),
    ("nginx_vts_server_responses_total", "counter"),
    ("nginx_vts_server_request_seconds", "gauge"),
    ("nginx_vts_server_request_duration_seconds", "histogram"),
    ("nginx_vts_upstream_requests_total", "counter"),
    ("nginx_vts_upstream_bytes_total", "counter"),
    ("nginx_vts_upstream_responses_total", "counter"),
    ("nginx_vts_upstream_response_seconds", "gauge"),
    ("nginx_vts_upstream_response_duration_seconds", "histogram"),
    ("nginx_vts_upstream_server_up", "gauge"),
    ("nginx_vts_upstream_server_weight", "gauge"),
    ("nginx_vts_upstream_server_max_fails", "gauge"),
    ("nginx_vts_upstream_server_fail_timeout_seconds", "gauge"),
    ("nginx_vts_upstream_server_backup", "gauge"),
];

// ---------------------------------------------------------------------------------------------
// The site: two vhosts in front, an upstream of two peers served by the same nginx.
// ---------------------------------------------------------------------------------------------

/// ports[0]: front.example (proxies to `backend`; default server, has the status location) and
/// other.example; ports[1], ports[2]: the two peers, zones b1.example and b2.example. `/slow.bin`
/// on the peers is rate-limited (about one second per request).
fn site(buckets: Option<&'static str>) -> impl Fn(&[u16]) -> String {
    move |p: &[u16]| {
        let buckets = buckets
            .map(|b| format!("vts_histogram_buckets {};", b))
            .unwrap_or_default();
        let peer = |port: u16, name: &str| {
            format!(
                r#"server {{
    listen 127.0.0.1:{port};
    server_name {name};
    root html;
    location = /ok      {{ return 200 "{name} ok\n"; }}
    location = /missing {{ return 404; }}
    location = /fail    {{ return 500; }}
    location = /slow.bin {{ limit_rate 4k; }}
}}
"#
            )
        };
        format!(
            r#"vts_zone main 2m;
vts_upstream_stats on;
{buckets}
upstream backend {{
    zone backend 64k;
    server 127.0.0.1:{p1};
    server 127.0.0.1:{p2};
}}
server {{
    listen 127.0.0.1:{p0};
    server_name front.example;
    location /           {{ proxy_pass http://backend; }}
    location = /local404 {{ return 404 "no\n"; }}
    location = /status   {{ vts_status; }}
}}
server {{
    listen 127.0.0.1:{p0};
    server_name other.example;
    location = /ok     {{ return 200 "other\n"; }}
    location = /fail   {{ return 503; }}
    location = /status {{ vts_status; }}
}}
{peer1}{peer2}"#,
            p0 = p[0],
            p1 = p[1],
            p2 = p[2],
            peer1 = peer(p[1], "b1.example"),
            peer2 = peer(p[2], "b2.example"),
        )
    }
}

/// Requests the client completed, by where nginx counts them.
#[derive(Debug, Default, Clone, Copy)]
struct Sent {
    /// To front.example: proxied ones and local 404s.
    front: u64,
    /// Proxied to the peers (one attempt each; no retries for 404/500).
    proxied: u64,
    other: u64,
    slow: u64,
}

/// (Host, path, status, proxied?)
const CASES: [(&str, &str, u16, bool); 7] = [
    ("front.example", "/ok", 200, true),
    ("front.example", "/missing", 404, true),
    ("front.example", "/fail", 500, true),
    ("front.example", "/local404", 404, false),
    ("other.example", "/ok", 200, false),
    ("other.example", "/fail", 503, false),
    ("front.example", "/ok?x=1", 200, true),
];

/// `fast` quick requests from 2 threads and `slow` rate-limited ones in parallel.
fn drive(nginx: &Nginx, fast: usize, slow: usize) -> Sent {
    let port = nginx.port();
    let mut handles = Vec::new();
    for t in 0..2 {
        handles.push(thread::spawn(move || {
            let mut s = Sent::default();
            for i in (t..fast).step_by(2) {
                let (host, path, status, proxied) = CASES[i % CASES.len()];
                let r = http_request(port, "GET", path, host, &[], b"");
                assert_eq!(r.status, status, "GET {} Host {}: {}", path, host, r.body_text());
                if host == "front.example" {
                    s.front += 1;
                } else {
                    s.other += 1;
                }
                s.proxied += proxied as u64;
            }
            s
        }));
    }
    for _ in 0..slow {
        handles.push(thread::spawn(move || {
            let r = http_request(port, "GET", "/slow.bin", "front.example", &[], b"");
            assert_eq!(r.status, 200, "slow request: {}", r.body_text());
            assert_eq!(r.body.len(), SLOW_BYTES, "slow body");
            Sent {
                front: 1,
                proxied: 1,
                other: 0,
                slow: 1,
            }
        }));
    }
    let mut total = Sent::default();
    for h in handles {
        let s = h.join().expect("traffic thread panicked");
        total.front += s.front;
        total.proxied += s.proxied;
        total.other += s.other;
        total.slow += s.slow;
    }
    total
}

/// 4 KB/s: the first write sends 4 KB, the next comes a second later.
const SLOW_BYTES: usize = 6000;

/// Starts the site, sends traffic (2xx, 4xx, 5xx, proxied, local, slow) and waits until the
/// status page shows all of it. Returns nginx, what was sent, and the settled scrape's text.
fn start_site(buckets: Option<&'static str>, fast: usize, slow: usize) -> (Nginx, Sent, String) {
    let nginx = Nginx::start_with(2, 3, site(buckets));
    fs::create_dir_all(nginx.prefix.join("html")).unwrap();
    fs::write(nginx.prefix.join("html/slow.bin"), vec![b'x'; SLOW_BYTES]).unwrap();
    let sent = drive(&nginx, fast, slow);
    let text = settle(&nginx, &sent);
    (nginx, sent, text)
}

fn sum(m: &Metrics, name: &str, subset: &[(&str, &str)]) -> f64 {
    m.find(name, subset).iter().map(|(_, v)| v).sum()
}

fn settled(m: &Metrics, s: &Sent) -> bool {
    let z = |zone: &str| m.get("nginx_vts_server_requests_total", &[("zone", zone)]);
    z("front.example") == Some(s.front as f64)
        && z("other.example") == Some(s.other as f64)
        && z("b1.example").unwrap_or(0.0) + z("b2.example").unwrap_or(0.0) == s.proxied as f64
        && sum(m, "nginx_vts_upstream_requests_total", &[("upstream", "backend")]) == s.proxied as f64
        && (histograms_off(m)
            || sum(
                m,
                "nginx_vts_upstream_response_duration_seconds_count",
                &[("upstream", "backend")],
            ) == s.proxied as f64)
}

/// `vts_histogram_buckets off`: no histogram family at all.
fn histograms_off(m: &Metrics) -> bool {
    !m.types.keys().any(|f| f.ends_with("_duration_seconds"))
}

/// Scrapes (text format) until every sent request is counted; bounded.
fn settle(nginx: &Nginx, s: &Sent) -> String {
    let deadline = Instant::now() + SETTLE_TIMEOUT;
    loop {
        let text = scrape(nginx, None).1;
        let m = Metrics::parse(&text).unwrap_or_else(|e| panic!("scrape does not parse: {}\n{}", e, text));
        if settled(&m, s) {
            return text;
        }
        if Instant::now() >= deadline {
            panic!(
                "counts did not settle within {:?}; sent {:?}; last scrape:\n{}",
                SETTLE_TIMEOUT, s, text
            );
        }
        thread::sleep(Duration::from_millis(50));
    }
}

/// GET /status with an optional Accept header: (content type, body text).
fn scrape(nginx: &Nginx, accept: Option<&str>) -> (String, String) {
    let headers: Vec<(&str, &str)> = accept.map(|a| vec![("Accept", a)]).unwrap_or_default();
    let r = http_request(nginx.port(), "GET", "/status", "front.example", &headers, b"");
    assert_eq!(r.status, 200, "status page: {}", r.body_text());
    let body = String::from_utf8(r.body.clone()).expect("status page is not UTF-8");
    (r.header("content-type").unwrap_or("").to_string(), body)
}

// ---------------------------------------------------------------------------------------------
// The project's own checker: what promtool does not catch.
// ---------------------------------------------------------------------------------------------

#[derive(Default)]
struct Family {
    helps: usize,
    types: usize,
    ty: String,
    samples: usize,
}

#[derive(Default, Debug)]
struct HistSeries {
    /// (le, cumulative count) in text order.
    buckets: Vec<(f64, f64)>,
    sum: Option<f64>,
    count: Option<f64>,
}

/// Does a family of type `ty` own a sample called `sample`?
fn owns(family: &str, ty: &str, sample: &str, om: bool) -> bool {
    match (ty, om) {
        ("gauge" | "unknown", _) => sample == family,
        ("counter", false) => sample == family && family.ends_with("_total"),
        ("counter", true) => sample.strip_suffix("_total") == Some(family),
        ("histogram", _) => ["_bucket", "_sum", "_count"]
            .iter()
            .any(|s| sample.strip_suffix(s) == Some(family)),
        _ => false,
    }
}

/// The exposition's problems that promtool misses; empty when there are none. Also returns the
/// histogram series found, keyed by (family, labels without `le`).
fn problems(text: &str, om: bool) -> (Vec<String>, BTreeMap<(String, Labels), HistSeries>) {
    let mut p = Vec::new();
    if !text.ends_with('\n') {
        p.push("text does not end with a newline".to_string());
    }
    let body = if om {
        text.strip_suffix("# EOF\n").unwrap_or_else(|| {
            p.push("OpenMetrics text does not end with \"# EOF\\n\"".into());
            text
        })
    } else {
        text
    };
    let mut fams: BTreeMap<String, Family> = BTreeMap::new();
    let mut current: Option<String> = None;
    let mut seen: BTreeSet<(String, Labels)> = BTreeSet::new();
    let mut hists: BTreeMap<(String, Labels), HistSeries> = BTreeMap::new();
    let mut last_hist: Option<(String, Labels)> = None;
    for (i, line) in body.lines().enumerate() {
        let ln = i + 1;
        if line.is_empty() {
            p.push(format!("line {}: blank line", ln));
            continue;
        }
        let meta = line
            .strip_prefix("# HELP ")
            .map(|r| (true, r))
            .or_else(|| line.strip_prefix("# TYPE ").map(|r| (false, r)));
        if let Some((help, rest)) = meta {
            let mut it = rest.splitn(2, ' ');
            let name = it.next().unwrap_or("").to_string();
            let f = fams.entry(name.clone()).or_default();
            if f.samples > 0 {
                p.push(format!(
                    "line {}: {} of {} after its samples",
                    ln,
                    if help { "HELP" } else { "TYPE" },
                    name
                ));
            }
            if help {
                f.helps += 1;
            } else {
                f.types += 1;
                f.ty = it.next().unwrap_or("").trim().to_string();
            }
            current = Some(name);
            continue;
        }
        if line.starts_with('#') {
            p.push(format!("line {}: unexpected comment {:?}", ln, line));
            continue;
        }
        let one = match Metrics::parse(line) {
            Ok(m) if m.samples.len() == 1 => m,
            other => {
                p.push(format!(
                    "line {}: not one sample ({:?}): {:?}",
                    ln,
                    other.err(),
                    line
                ));
                continue;
            }
        };
        let ((name, labels), value) = one.samples.into_iter().next().unwrap();
        let fam_name = current.clone().unwrap_or_default();
        let fam = fams.entry(fam_name.clone()).or_default();
        if fam.helps == 0 || fam.types == 0 {
            p.push(format!(
                "line {}: {} before the HELP and TYPE of its family",
                ln, name
            ));
        }
        if !owns(&fam_name, &fam.ty, &name, om) {
            p.push(format!(
                "line {}: sample {} is not in its family's block (current family {} {})",
                ln, name, fam_name, fam.ty
            ));
        }
        fam.samples += 1;
        if !seen.insert((name.clone(), labels.clone())) {
            p.push(format!("line {}: duplicate series {}{:?}", ln, name, labels));
        }
        if !value.is_finite() || value < 0.0 {
            p.push(format!(
                "line {}: value {} (every value here is finite, >= 0)",
                ln, value
            ));
        }
        if fam.ty == "histogram" {
            let key_labels: Labels = labels.iter().filter(|(k, _)| k != "le").cloned().collect();
            let key = (fam_name.clone(), key_labels);
            if last_hist.as_ref() != Some(&key) && hists.contains_key(&key) {
                p.push(format!("line {}: histogram series {:?} is split", ln, key));
            }
            last_hist = Some(key.clone());
            let h = hists.entry(key).or_default();
            let le = labels.iter().find(|(k, _)| k == "le").map(|(_, v)| v.as_str());
            if name.ends_with("_bucket") {
                let le = match le.map(|s| {
                    if s == "+Inf" {
                        Ok(f64::INFINITY)
                    } else {
                        s.parse::<f64>()
                    }
                }) {
                    Some(Ok(v)) if !v.is_nan() => v,
                    other => {
                        p.push(format!("line {}: bucket with le {:?} ({:?})", ln, le, other));
                        continue;
                    }
                };
                if h.sum.is_some() || h.count.is_some() {
                    p.push(format!("line {}: bucket after _sum/_count", ln));
                }
                h.buckets.push((le, value));
            } else if le.is_some() {
                p.push(format!("line {}: le on {}", ln, name));
            } else if name.ends_with("_sum") {
                h.sum = Some(value);
            } else {
                h.count = Some(value);
            }
        }
    }
    for (name, f) in &fams {
        if f.helps != 1 || f.types != 1 {
            p.push(format!(
                "family {}: {} HELP and {} TYPE lines",
                name, f.helps, f.types
            ));
        }
    }
    for (key, h) in &hists {
        let b = &h.buckets;
        if b.windows(2)
            .any(|w| w[0].0.partial_cmp(&w[1].0) != Some(std::cmp::Ordering::Less))
        {
            p.push(format!("{:?}: le not ascending: {:?}", key, b));
        }
        if b.windows(2).any(|w| w[0].1 > w[1].1) {
            p.push(format!("{:?}: buckets not cumulative: {:?}", key, b));
        }
        match (b.last(), h.count) {
            (Some(&(le, v)), Some(c)) if le == f64::INFINITY && v == c => {}
            _ => p.push(format!("{:?}: no +Inf bucket equal to _count: {:?}", key, h)),
        }
        if h.sum.is_none() {
            p.push(format!("{:?}: no _sum", key));
        }
    }
    (p, hists)
}

fn assert_no_problems(text: &str, om: bool) -> BTreeMap<(String, Labels), HistSeries> {
    let (p, h) = problems(text, om);
    assert!(
        p.is_empty(),
        "exposition problems:\n{}\n--- text ---\n{}",
        p.join("\n"),
        text
    );
    h
}

fn labels(pairs: &[(&str, &str)]) -> Labels {
    let mut l: Labels = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    l.sort();
    l
}

// ---------------------------------------------------------------------------------------------
// python prometheus_client's OpenMetrics parser
// ---------------------------------------------------------------------------------------------

fn without_connections(m: &Metrics) -> BTreeMap<(String, Labels), f64> {
    m.samples
        .iter()
        .filter(|((n, _), _)| !n.starts_with("nginx_vts_connections"))
        .map(|(k, v)| (k.clone(), *v))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// 1. promtool
// ---------------------------------------------------------------------------------------------

#[test]
fn promtool_accepts_a_scrape_with_every_family() {
    let (nginx, _sent, text) = start_site(None, 70, 2);
    assert_promtool_clean(&text);

    let m = Metrics::parse(&text).unwrap();
    for (family, ty) in FAMILIES {
        assert_family(&m, family, ty);
    }
    assert_eq!(
        m.types.len(),
        FAMILIES.len(),
        "families: {:?}",
        m.types.keys().collect::<Vec<_>>()
    );
    drop(nginx);
}

// ---------------------------------------------------------------------------------------------
// 2. The project's checker, exact histogram counts, custom buckets
// ---------------------------------------------------------------------------------------------

#[test]
fn histograms_are_cumulative_and_count_every_request() {
    let (_nginx, sent, text) = start_site(None, 84, 3);
    let hists = assert_no_problems(&text, false);
    let m = Metrics::parse(&text).unwrap();

    // Server zones: _count is the requests counter, exactly; the le values are the defaults.
    let zones = m.label_values("nginx_vts_server_requests_total", "zone");
    assert_eq!(
        zones,
        ["b1.example", "b2.example", "front.example", "other.example"]
            .map(String::from)
            .into(),
        "zones"
    );
    for zone in &zones {
        let l = [("zone", zone.as_str())];
        let requests = m.value("nginx_vts_server_requests_total", &l);
        let count = m.value("nginx_vts_server_request_duration_seconds_count", &l);
        assert_eq!(count, requests, "zone {}: histogram _count vs requests", zone);
        let h = &hists[&(
            "nginx_vts_server_request_duration_seconds".to_string(),
            labels(&l),
        )];
        let les: Vec<f64> = h.buckets.iter().map(|b| b.0).collect();
        let mut want = DEFAULT_BOUNDS.to_vec();
        want.push(f64::INFINITY);
        assert_eq!(les, want, "zone {}: le values", zone);
        let avg = m.value(
            "nginx_vts_server_request_seconds",
            &[("zone", zone), ("type", "avg")],
        );
        let hsum = m.value("nginx_vts_server_request_duration_seconds_sum", &l);
        assert!(
            (avg * requests - hsum).abs() < 1e-6,
            "zone {}: _sum {} vs avg {} x {}",
            zone,
            hsum,
            avg,
            requests
        );
    }
    assert_eq!(
        m.value("nginx_vts_server_requests_total", &[("zone", "front.example")]),
        sent.front as f64
    );
    // The slow requests took about a second: above the 0.5 s bucket, in front and upstream.
    let front = &hists[&(
        "nginx_vts_server_request_duration_seconds".to_string(),
        labels(&[("zone", "front.example")]),
    )];
    let at = |h: &HistSeries, le: f64| h.buckets.iter().find(|b| b.0 == le).unwrap().1;
    assert!(
        front.count.unwrap() - at(front, 0.5) >= sent.slow as f64,
        "front.example: {} slow requests, buckets {:?}",
        sent.slow,
        front.buckets
    );

    // Upstream peers: _count is the number of attempts with an upstream response time; both
    // peers are alive, so that is every attempt.
    let peers = m.find("nginx_vts_upstream_requests_total", &[("upstream", "backend")]);
    assert_eq!(peers.len(), 2, "peers: {:?}", peers);
    let mut slow_seen = 0.0;
    for (l, requests) in peers {
        assert!(requests > 0.0, "peer {:?} had no traffic", l);
        let server = l.iter().find(|(k, _)| k == "server").unwrap().1.as_str();
        let ll = [("upstream", "backend"), ("server", server)];
        let count = m.value("nginx_vts_upstream_response_duration_seconds_count", &ll);
        assert_eq!(count, requests, "peer {}: histogram _count vs attempts", server);
        let h = &hists[&(
            "nginx_vts_upstream_response_duration_seconds".to_string(),
            labels(&ll),
        )];
        assert_eq!(h.buckets.len(), DEFAULT_BOUNDS.len() + 1);
        slow_seen += h.count.unwrap() - at(h, 0.5);
    }
    assert!(
        slow_seen >= sent.slow as f64,
        "upstream slow attempts {} < {}",
        slow_seen,
        sent.slow
    );
}

#[test]
fn histograms_off_leaves_every_other_family_and_count() {
    let (_nginx, sent, text) = start_site(Some("off"), 40, 0);
    assert_promtool_clean(&text);
    assert_no_problems(&text, false);
    let m = Metrics::parse(&text).unwrap();
    assert!(
        histograms_off(&m),
        "a histogram family with buckets off:\n{}",
        text
    );
    assert!(!text.contains("_bucket{"), "{}", text);
    // Every other family of the same site with default buckets is there, and exact
    // (start_site settled on the sent counts).
    let (_on, _, text_on) = start_site(None, 1, 0);
    let on = Metrics::parse(&text_on).unwrap();
    let mut want: BTreeSet<&String> = on.types.keys().collect();
    for h in [
        "nginx_vts_server_request_duration_seconds",
        "nginx_vts_upstream_response_duration_seconds",
    ] {
        assert!(want.remove(&h.to_string()), "{} missing with default buckets", h);
    }
    assert_eq!(m.types.keys().collect::<BTreeSet<_>>(), want);
    assert_eq!(
        m.value("nginx_vts_server_requests_total", &[("zone", "front.example")]),
        sent.front as f64
    );
    let types = text.lines().filter(|l| l.starts_with("# TYPE ")).count();
    assert_eq!(types, text.lines().filter(|l| l.starts_with("# HELP ")).count());
}

#[test]
fn custom_buckets_are_exactly_the_configured_bounds() {
    let (_nginx, sent, text) = start_site(Some("0.001 0.5 10"), 40, 2);
    let hists = assert_no_problems(&text, false);
    assert_promtool_clean(&text);
    let m = Metrics::parse(&text).unwrap();
    let mut families = BTreeSet::new();
    for ((family, l), h) in &hists {
        families.insert(family.clone());
        let les: Vec<f64> = h.buckets.iter().map(|b| b.0).collect();
        assert_eq!(les, vec![0.001, 0.5, 10.0, f64::INFINITY], "{} {:?}", family, l);
    }
    assert_eq!(
        families,
        BTreeSet::from([
            "nginx_vts_server_request_duration_seconds".to_string(),
            "nginx_vts_upstream_response_duration_seconds".to_string()
        ])
    );
    let les: BTreeSet<String> = m
        .samples
        .keys()
        .filter(|(n, _)| n.ends_with("_bucket"))
        .filter_map(|(_, l)| l.iter().find(|(k, _)| k == "le").map(|(_, v)| v.clone()))
        .collect();
    assert_eq!(les.len(), 4, "le label values: {:?}", les);
    // The second-long requests land in (0.5, 10] (the upper bound is wide so that a stalled
    // machine does not push them out).
    let front = &hists[&(
        "nginx_vts_server_request_duration_seconds".to_string(),
        labels(&[("zone", "front.example")]),
    )];
    let (b05, b10) = (front.buckets[1].1, front.buckets[2].1);
    assert!(
        b10 - b05 >= sent.slow as f64,
        "front.example buckets {:?}, {} slow",
        front.buckets,
        sent.slow
    );
    for zone in m.label_values("nginx_vts_server_requests_total", "zone") {
        let l = [("zone", zone.as_str())];
        assert_eq!(
            m.value("nginx_vts_server_request_duration_seconds_count", &l),
            m.value("nginx_vts_server_requests_total", &l),
            "zone {}",
            zone
        );
    }
}

#[test]
fn the_checker_catches_what_it_claims_to() {
    let good = "# HELP a_total A\n# TYPE a_total counter\na_total{z=\"1\"} 1\n\
                # HELP h H\n# TYPE h histogram\nh_bucket{le=\"1.0\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 3.0\nh_count 2\n";
    assert!(
        problems(good, false).0.is_empty(),
        "{:?}",
        problems(good, false).0
    );
    for (bad, what) in [
        (good.trim_end_matches('\n').to_string(), "newline"),
        (
            good.replace("a_total{z=\"1\"} 1\n", "a_total{z=\"1\"} 1\na_total{z=\"1\"} 2\n"),
            "duplicate",
        ),
        (
            good.replace("h_bucket{le=\"1.0\"} 1", "h_bucket{le=\"1.0\"} 3"),
            "cumulative",
        ),
        (good.replace("h_bucket{le=\"+Inf\"} 2\n", ""), "+Inf"),
        (good.replace("h_count 2", "h_count 5"), "+Inf"),
        (
            good.replace("# HELP h H\n", "") + "# HELP h H\n",
            "after its samples",
        ),
        (good.to_string() + "# TYPE a_total counter\n", "TYPE"),
        (
            good.replace("# TYPE h histogram\n", "# TYPE h histogram\na_total{z=\"2\"} 1\n"),
            "block",
        ),
    ] {
        let p = problems(&bad, false).0;
        assert!(
            p.iter().any(|l| l.contains(what)),
            "{:?} not caught in {:?}: {:?}",
            what,
            bad,
            p
        );
    }
}

// ---------------------------------------------------------------------------------------------
// 3. OpenMetrics
// ---------------------------------------------------------------------------------------------

#[test]
fn openmetrics_variant_passes_the_strict_parser() {
    let (nginx, _sent, _) = start_site(None, 42, 1);

    let (ct, om) = scrape(&nginx, Some("application/openmetrics-text; version=1.0.0"));
    let (text_ct, text) = scrape(&nginx, None);
    assert_eq!(ct, OM_CONTENT_TYPE);
    assert_eq!(text_ct, STATUS_CONTENT_TYPE, "no Accept header: text 0.0.4");
    assert!(
        om.ends_with("\n# EOF\n"),
        "OpenMetrics text must end with # EOF: {:?}",
        &om[om.len().saturating_sub(80)..]
    );
    assert_eq!(om.matches("# EOF").count(), 1);
    assert_no_problems(&om, true);

    let (ok, out) = python_openmetrics(&om);
    assert!(
        ok,
        "prometheus_client's OpenMetrics parser rejected the scrape:\n{}\n--- text ---\n{}",
        out, om
    );
    // The parser is strict: the same text without # EOF is refused.
    let (ok_trunc, _) = python_openmetrics(om.strip_suffix("# EOF\n").unwrap());
    assert!(!ok_trunc, "the python parser accepted OpenMetrics without # EOF");

    // What the parser read is what the text format says (no traffic in between).
    let parsed = Metrics::parse(&out).unwrap_or_else(|e| panic!("{}\n{}", e, out));
    let tm = Metrics::parse(&text).unwrap();
    assert_eq!(
        without_connections(&parsed),
        without_connections(&tm),
        "OpenMetrics (python) vs text"
    );
    // Counter families are named without _total; their samples keep it.
    for (family, ty) in FAMILIES {
        let want = match (family, ty) {
            ("nginx_vts_connections_total", _) => (family, "unknown"),
            (f, "counter") => (f.strip_suffix("_total").unwrap(), "counter"),
            (f, t) => (f, t),
        };
        assert_eq!(
            parsed.types.get(want.0).map(String::as_str),
            Some(want.1),
            "family {}",
            family
        );
        assert!(
            om.contains(&format!("# TYPE {} {}\n", want.0, want.1)),
            "# TYPE {} {}",
            want.0,
            want.1
        );
    }

    // Negotiation: Prometheus's own Accept header gets OpenMetrics; text/plain and */* do not.
    for (accept, want) in [
        (PROMETHEUS_ACCEPT, OM_CONTENT_TYPE),
        (
            "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5",
            OM_CONTENT_TYPE,
        ),
        ("text/plain", STATUS_CONTENT_TYPE),
        ("*/*", STATUS_CONTENT_TYPE),
        (
            "text/plain;version=0.0.4;q=0.9,application/openmetrics-text;q=0.3",
            STATUS_CONTENT_TYPE,
        ),
    ] {
        let (ct, body) = scrape(&nginx, Some(accept));
        assert_eq!(ct, want, "Accept: {}", accept);
        assert_eq!(
            body.ends_with("# EOF\n"),
            want == OM_CONTENT_TYPE,
            "Accept: {}",
            accept
        );
    }
}

// ---------------------------------------------------------------------------------------------
// 4. Determinism
// ---------------------------------------------------------------------------------------------

#[test]
fn scrapes_without_traffic_are_identical_but_for_connections() {
    let (nginx, _sent, _) = start_site(None, 35, 1);
    let strip = |t: &str| -> String {
        t.lines()
            .filter(|l| !l.starts_with("nginx_vts_connections"))
            .map(|l| format!("{}\n", l))
            .collect()
    };
    for accept in [None, Some("application/openmetrics-text; version=1.0.0")] {
        let first = scrape(&nginx, accept).1;
        // Several scrapes, so that both workers answer some of them.
        for i in 0..6 {
            let again = scrape(&nginx, accept).1;
            if strip(&again) != strip(&first) {
                let (a, b) = (strip(&first), strip(&again));
                let diff: Vec<String> = a
                    .lines()
                    .zip(b.lines())
                    .filter(|(x, y)| x != y)
                    .take(10)
                    .map(|(x, y)| format!("- {}\n+ {}", x, y))
                    .collect();
                panic!(
                    "scrape {} ({:?}) differs from the first:\n{}",
                    i + 2,
                    accept,
                    diff.join("\n")
                );
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 5. A real Prometheus server
// ---------------------------------------------------------------------------------------------

struct Prometheus {
    child: Child,
    dir: PathBuf,
    port: u16,
}

impl Prometheus {
    /// Starts Prometheus on a free port, again on another one if a parallel test took it in
    /// between (as `Nginx::start_with` does).
    fn start(target_port: u16) -> Prometheus {
        let mut last = String::new();
        for _attempt in 0..5 {
            let dir = scratch_dir("prom");
            let port = free_port();
            fs::write(
                dir.join("prometheus.yml"),
                format!(
                    "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
                     scrape_configs:\n  - job_name: vts\n    metrics_path: /status\n    static_configs:\n      - targets: ['127.0.0.1:{}']\n",
                    target_port
                ),
            )
            .unwrap();
            let log = fs::File::create(dir.join("prometheus.log")).unwrap();
            let child = Command::new("prometheus")
                .arg(format!("--config.file={}", dir.join("prometheus.yml").display()))
                .arg(format!("--storage.tsdb.path={}", dir.join("data").display()))
                .arg(format!("--web.listen-address=127.0.0.1:{}", port))
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .expect("spawn prometheus (apt-get install prometheus)");
            let mut p = Prometheus { child, dir, port };
            // Ready means this Prometheus answers (not whatever else may listen on the port).
            let ready = poll(Duration::from_secs(15), || {
                if matches!(p.child.try_wait(), Ok(Some(_))) {
                    return Some(false);
                }
                try_http_request(p.port, "GET", "/-/ready", "127.0.0.1", &[], b"")
                    .ok()
                    .filter(|r| r.status == 200 && r.body_text().contains("Prometheus"))
                    .map(|_| true)
            });
            if ready == Some(true) {
                return p;
            }
            last = p.log();
            if !last.to_ascii_lowercase().contains("address already in use") {
                panic!("prometheus not ready within 15 s:\n{}", last);
            }
        }
        panic!("prometheus found no free port in 5 attempts:\n{}", last);
    }

    fn log(&self) -> String {
        fs::read_to_string(self.dir.join("prometheus.log")).unwrap_or_default()
    }

    /// Polls `q` until `ok(values)` (bounded); returns the last values.
    fn query_until(&self, q: &str, limit: Duration, ok: impl Fn(&[f64]) -> bool) -> Vec<f64> {
        let values = |s: &[Series]| s.iter().map(|(_, v)| *v).collect::<Vec<f64>>();
        values(&self.series_until(q, limit, |s| ok(&values(s))))
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if thread::panicking() {
            eprintln!("--- prometheus log (last 30 lines) ---");
            let log = self.log();
            let lines: Vec<&str> = log.lines().collect();
            eprintln!("{}", lines[lines.len().saturating_sub(30)..].join("\n"));
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{:02X}", b),
        })
        .collect()
}

/// The sample values of a Prometheus API vector result: every `"value":[<ts>,"<v>"]`.
fn json_values(body: &str) -> Vec<f64> {
    let mut out = Vec::new();
    let mut rest = body;
    while let Some(i) = rest.find("\"value\":[") {
        rest = &rest[i + 9..];
        let comma = rest.find(",\"").expect("value pair");
        let v = &rest[comma + 2..];
        let end = v.find('"').expect("value string");
        let s = &v[..end];
        out.push(match s {
            "NaN" => f64::NAN,
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            _ => s.parse().unwrap_or_else(|_| panic!("value {:?} in {}", s, body)),
        });
        rest = &v[end..];
    }
    out
}

static SCRATCH: AtomicUsize = AtomicUsize::new(0);

/// A fresh directory under the temp dir, with a short path (it may hold a unix socket).
fn scratch_dir(tag: &str) -> PathBuf {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let dir = std::env::temp_dir().join(format!(
        "vtsx-{}-{}-{}-{}",
        tag,
        std::process::id(),
        SCRATCH.fetch_add(1, Ordering::SeqCst),
        nanos % 100_000
    ));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

fn simple_vhosts(p: &[u16]) -> String {
    format!(
        r#"vts_zone main 1m;
server {{
    listen 127.0.0.1:{p0};
    server_name a.example;
    location = /ok      {{ return 200 "a\n"; }}
    location = /missing {{ return 404; }}
    location = /status  {{ vts_status; }}
}}
server {{
    listen 127.0.0.1:{p0};
    server_name b.example;
    location = /ok   {{ return 200 "b\n"; }}
    location = /fail {{ return 503; }}
}}
"#,
        p0 = p[0]
    )
}

#[test]
fn a_real_prometheus_scrapes_and_queries_it() {
    let started = Instant::now();
    let nginx = Nginx::start_with(2, 1, simple_vhosts);
    let port = nginx.port();
    let prom = Prometheus::start(port);

    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let traffic = {
        let (stop, count) = (stop.clone(), count.clone());
        thread::spawn(move || {
            let cases = [
                ("a.example", "/ok", 200),
                ("b.example", "/ok", 200),
                ("a.example", "/missing", 404),
                ("b.example", "/fail", 503),
            ];
            let mut i = 0;
            while !stop.load(Ordering::SeqCst) {
                let (host, path, status) = cases[i % cases.len()];
                let r = http_request(port, "GET", path, host, &[], b"");
                assert_eq!(r.status, status);
                count.fetch_add(1, Ordering::SeqCst);
                i += 1;
                thread::sleep(Duration::from_millis(15));
            }
        })
    };
    let finish = |stop: &AtomicBool| stop.store(true, Ordering::SeqCst);

    let up = prom.query_until("up{job=\"vts\"}", Duration::from_secs(10), |v| v == [1.0]);
    if up != [1.0] {
        finish(&stop);
        panic!(
            "up{{job=\"vts\"}} = {:?} (want [1]) after {:?}",
            up,
            started.elapsed()
        );
    }
    let rate_q = "rate(nginx_vts_server_requests_total{zone=\"a.example\"}[5s])";
    let rate = prom.query_until(rate_q, Duration::from_secs(10), |v| v.len() == 1 && v[0] > 0.0);
    let quant_q =
        "histogram_quantile(0.5, sum by (le) (rate(nginx_vts_server_request_duration_seconds_bucket[10s])))";
    let quant = prom.query_until(quant_q, Duration::from_secs(5), |v| {
        v.len() == 1 && v[0].is_finite()
    });
    finish(&stop);
    traffic.join().expect("traffic thread panicked");
    let sent = count.load(Ordering::SeqCst) as f64;

    assert!(
        rate.len() == 1 && rate[0] > 0.0,
        "{} = {:?} while traffic ran",
        rate_q,
        rate
    );
    assert!(
        quant.len() == 1 && quant[0].is_finite() && quant[0] >= 0.0 && quant[0] <= 10.0,
        "{} = {:?}",
        quant_q,
        quant
    );
    let total = prom.query_until(
        "sum(nginx_vts_server_requests_total)",
        Duration::from_secs(20),
        |v| v == [sent],
    );
    assert_eq!(
        total,
        vec![sent],
        "sum(nginx_vts_server_requests_total) vs requests sent"
    );
    // Prometheus read every sample (it asked for OpenMetrics): no scrape was partial.
    let want = 2.0 * (DEFAULT_BOUNDS.len() + 1) as f64;
    // Polled: one scrape that timed out on a stalled machine marks the series stale until the
    // next one.
    let series = prom.query_until(
        "count(nginx_vts_server_request_duration_seconds_bucket)",
        Duration::from_secs(10),
        |v| v == [want],
    );
    assert_eq!(series, vec![want], "bucket series of 2 zones");
    drop(nginx);
}

/// One series of a Prometheus API vector result: its labels (`__name__` included when the
/// query keeps it) and its value.
type Series = (BTreeMap<String, String>, f64);

impl Prometheus {
    /// Instant query: every series of the result vector with its labels.
    fn series(&self, q: &str) -> Vec<Series> {
        let path = format!("/api/v1/query?query={}", url_encode(q));
        let r = http_request(self.port, "GET", &path, "127.0.0.1", &[], b"");
        let body = r.body_text();
        assert!(
            r.status == 200 && body.contains("\"status\":\"success\""),
            "query {}: {} {}",
            q,
            r.status,
            body
        );
        json_series(&body)
    }

    /// Polls `q` until `ok(series)` (bounded); returns the last result.
    fn series_until(&self, q: &str, limit: Duration, ok: impl Fn(&[Series]) -> bool) -> Vec<Series> {
        let deadline = Instant::now() + limit;
        loop {
            let v = self.series(q);
            if ok(&v) || Instant::now() >= deadline {
                return v;
            }
            thread::sleep(Duration::from_millis(250));
        }
    }
}

/// A JSON string starting at `s[0] == '"'`: (unescaped text, the rest after the closing quote).
fn json_string(s: &str) -> (String, &str) {
    assert!(
        s.starts_with('"'),
        "JSON string expected at {:?}",
        &s[..s.len().min(40)]
    );
    let mut out = String::new();
    let mut it = s.char_indices().skip(1);
    while let Some((i, c)) = it.next() {
        match c {
            '"' => return (out, &s[i + 1..]),
            '\\' => match it.next().map(|x| x.1) {
                Some('n') => out.push('\n'),
                Some('t') => out.push('\t'),
                Some('u') => {
                    let hex: String = (0..4).filter_map(|_| it.next().map(|x| x.1)).collect();
                    let cp = u32::from_str_radix(&hex, 16).expect("\\u escape");
                    out.push(char::from_u32(cp).unwrap_or('\u{FFFD}'));
                }
                Some(o) => out.push(o),
                None => break,
            },
            c => out.push(c),
        }
    }
    panic!("unterminated JSON string {:?}", s);
}

/// The series of a Prometheus API vector result: every `"metric":{...},"value":[<ts>,"<v>"]`.
fn json_series(body: &str) -> Vec<Series> {
    let mut out = Vec::new();
    let mut rest = body;
    while let Some(i) = rest.find("\"metric\":{") {
        rest = &rest[i + 10..];
        let mut labels = BTreeMap::new();
        loop {
            rest = rest.trim_start_matches([',', ' ']);
            if let Some(r) = rest.strip_prefix('}') {
                rest = r;
                break;
            }
            let (k, r) = json_string(rest);
            let r = r.strip_prefix(':').expect("':' after a label name");
            let (v, r) = json_string(r);
            labels.insert(k, v);
            rest = r;
        }
        let v = json_values(rest);
        let value = *v
            .first()
            .unwrap_or_else(|| panic!("no value after the metric in {}", body));
        out.push((labels, value));
    }
    out
}

/// `label` of every series, sorted.
fn label_of(series: &[Series], label: &str) -> Vec<String> {
    let mut v: Vec<String> = series
        .iter()
        .map(|(l, _)| l.get(label).cloned().unwrap_or_default())
        .collect();
    v.sort();
    v
}

/// (server, value) of every series.
fn by_server(series: &[Series]) -> BTreeMap<String, f64> {
    series
        .iter()
        .map(|(l, v)| (l.get("server").cloned().unwrap_or_default(), *v))
        .collect()
}

/// The README's (and the seed's) four upstream PromQL examples, run verbatim by a real
/// Prometheus against an upstream of a live peer and a peer on a closed port (`max_fails=1`,
/// a fail_timeout far longer than the test): the request rate of the live peer is positive;
/// the error rate covers exactly the peers that answered errors (the live peer's 404s, the
/// closed peer's one failed connect); the average upstream time is a finite number for each
/// peer; `server_up == 0` returns exactly the closed peer. Then the counters Prometheus holds
/// are exactly the attempts the clients' requests made.
#[test]
fn a_real_prometheus_answers_the_readme_upstream_queries() {
    let started = Instant::now();
    let dead = ClosedPort::new();
    let nginx = Nginx::start_with(2, 2, |p| {
        format!(
            r#"vts_zone main 1m;
vts_upstream_stats on;
upstream backend {{
    zone backend 64k;
    server 127.0.0.1:{p1};
    server 127.0.0.1:{closed} max_fails=1 fail_timeout=600s;
}}
server {{
    listen 127.0.0.1:{p0};
    server_name front.example;
    location /         {{ proxy_pass http://backend; }}
    location = /status {{ vts_status; }}
}}
server {{
    listen 127.0.0.1:{p1};
    server_name live.example;
    location = /ok      {{ return 200 "live\n"; }}
    location = /missing {{ return 404; }}
}}
"#,
            p0 = p[0],
            p1 = p[1],
            closed = dead.port(),
        )
    });
    let port = nginx.port();
    let live = format!("127.0.0.1:{}", nginx.ports[1]);
    let closed = format!("127.0.0.1:{}", dead.port());
    let both: Vec<String> = {
        let mut v = vec![live.clone(), closed.clone()];
        v.sort();
        v
    };
    let prom = Prometheus::start(port);

    // Prometheus holds both peers' zeros before any traffic, so the one failed connect is an
    // increase it sees.
    let q0 = "nginx_vts_upstream_requests_total";
    let zeros = prom.series_until(q0, Duration::from_secs(15), |s| {
        label_of(s, "server") == both && s.iter().all(|(_, v)| *v == 0.0)
    });
    assert!(
        label_of(&zeros, "server") == both && zeros.iter().all(|(_, v)| *v == 0.0),
        "{} before traffic = {:?} (want zeros for {:?}) after {:?}",
        q0,
        zeros,
        both,
        started.elapsed()
    );

    // Sequential traffic (one request at a time: the closed peer is picked exactly once, then
    // it is down), alternating 200 and 404 from the live peer.
    let stop = Arc::new(AtomicBool::new(false));
    let counts = Arc::new([AtomicU64::new(0), AtomicU64::new(0)]);
    let traffic = {
        let (stop, counts) = (stop.clone(), counts.clone());
        thread::spawn(move || {
            let mut i = 0;
            while !stop.load(Ordering::SeqCst) {
                let (path, status) = [("/ok", 200), ("/missing", 404)][i % 2];
                let r = http_request(port, "GET", path, "front.example", &[], b"");
                assert_eq!(r.status, status, "GET {}: {}", path, r.body_text());
                counts[i % 2].fetch_add(1, Ordering::SeqCst);
                i += 1;
                thread::sleep(Duration::from_millis(15));
            }
        })
    };
    let finish = |stop: &AtomicBool| stop.store(true, Ordering::SeqCst);

    // 1. Request rate.
    let rate_q = "rate(nginx_vts_upstream_requests_total[5m])";
    let rate = prom.series_until(rate_q, Duration::from_secs(15), |s| {
        label_of(s, "server") == both && s.iter().all(|(_, v)| *v > 0.0)
    });
    // 2. Error rate: 4xx and 5xx series of both peers; positive for exactly the errors sent.
    let err_q = "rate(nginx_vts_upstream_responses_total{status=~\"4xx|5xx\"}[5m])";
    let positive = |s: &[Series]| -> Vec<(String, String)> {
        let mut v: Vec<(String, String)> = s
            .iter()
            .filter(|(_, v)| *v > 0.0)
            .map(|(l, _)| (l["server"].clone(), l["status"].clone()))
            .collect();
        v.sort();
        v
    };
    let want_errors = {
        let mut v = vec![
            (live.clone(), "4xx".to_string()),
            (closed.clone(), "5xx".to_string()),
        ];
        v.sort();
        v
    };
    let errors = prom.series_until(err_q, Duration::from_secs(15), |s| {
        s.len() == 4 && positive(s) == want_errors
    });
    // 3. Average upstream response time: one finite value per peer.
    let avg_q = "nginx_vts_upstream_response_seconds{type=\"upstream_avg\"}";
    let avg = prom.series_until(avg_q, Duration::from_secs(10), |s| label_of(s, "server") == both);
    // 4. Servers down: exactly the closed peer.
    let down_q = "nginx_vts_upstream_server_up == 0";
    let down = prom.series_until(down_q, Duration::from_secs(10), |s| {
        label_of(s, "server") == [closed.clone()]
    });
    finish(&stop);
    traffic.join().expect("traffic thread panicked");
    let (ok, missing) = (counts[0].load(Ordering::SeqCst), counts[1].load(Ordering::SeqCst));
    let sent = ok + missing;

    let rates = by_server(&rate);
    assert!(
        label_of(&rate, "server") == both && rates[&live] > 0.0 && rates[&closed] > 0.0,
        "{} = {:?} while traffic ran (live {}, closed {})",
        rate_q,
        rate,
        live,
        closed
    );
    assert_eq!(
        label_of(&errors, "status"),
        ["4xx", "4xx", "5xx", "5xx"],
        "{} = {:?}",
        err_q,
        errors
    );
    assert_eq!(
        positive(&errors),
        want_errors,
        "{} = {:?}: positive for exactly the live peer's 404s and the closed peer's failure",
        err_q,
        errors
    );
    assert_eq!(label_of(&avg, "server"), both, "{} = {:?}", avg_q, avg);
    assert!(
        avg.iter()
            .all(|(l, v)| v.is_finite() && *v >= 0.0 && *v < 30.0 && l["upstream"] == "backend"),
        "{} = {:?}",
        avg_q,
        avg
    );
    assert_eq!(down.len(), 1, "{} = {:?}", down_q, down);
    let (labels, value) = &down[0];
    assert_eq!(
        (
            labels.get("upstream").map(String::as_str),
            labels.get("server").map(String::as_str),
            *value
        ),
        (Some("backend"), Some(closed.as_str()), 0.0),
        "{} = {:?}",
        down_q,
        down
    );

    // What Prometheus holds is exactly what the clients caused: every request one attempt on
    // the live peer, and the closed peer's single failed connect (a 502 nginx retried).
    let want = BTreeMap::from([(live.clone(), sent as f64), (closed.clone(), 1.0)]);
    let attempts = prom.series_until(q0, Duration::from_secs(20), |s| by_server(s) == want);
    assert_eq!(by_server(&attempts), want, "{} vs requests sent", q0);
    for (status, want) in [
        (
            "2xx",
            BTreeMap::from([(live.clone(), ok as f64), (closed.clone(), 0.0)]),
        ),
        (
            "4xx",
            BTreeMap::from([(live.clone(), missing as f64), (closed.clone(), 0.0)]),
        ),
        (
            "5xx",
            BTreeMap::from([(live.clone(), 0.0), (closed.clone(), 1.0)]),
        ),
    ] {
        let q = format!("nginx_vts_upstream_responses_total{{status=\"{}\"}}", status);
        let got = prom.series_until(&q, Duration::from_secs(10), |s| by_server(s) == want);
        assert_eq!(by_server(&got), want, "{}", q);
    }
    // The module's own page says the same.
    let m = nginx.scrape();
    for (server, n) in &want {
        assert_eq!(
            m.value(
                "nginx_vts_upstream_requests_total",
                &[("upstream", "backend"), ("server", server)]
            ),
            *n,
            "status page, {}",
            server
        );
    }
    assert_eq!(
        m.value(
            "nginx_vts_upstream_server_up",
            &[("upstream", "backend"), ("server", &closed)]
        ),
        0.0
    );
    drop(nginx);
}

// ---------------------------------------------------------------------------------------------
// 6. Hostile names through the real nginx
// ---------------------------------------------------------------------------------------------

/// Removes a scratch directory when dropped (declare it before the Nginx that uses it).
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// nginx's configuration syntax: in a token, `\"`, `\'`, `\\` stand for the character, `\n`
/// and `\t` for newline and tab, any other backslash stays. Raw bytes go through unchanged.
fn hostile_conf(dir: &Path, p: &[u16]) -> Vec<u8> {
    let d = dir.display();
    let mut c = Vec::new();
    let mut w = |b: &[u8]| c.extend_from_slice(b);
    w(format!(
        "upstream \"we\\\\ird\\\"grp\" {{ server unix:{d}/a\\\"b\\\\c.sock; }}\n\
         server {{\n    listen 127.0.0.1:{p0};\n    server_name \"we\\\\ird.example\";\n    \
         location / {{ proxy_pass http://we\\\\ird\\\"grp; }}\n    location = /status {{ vts_status; }}\n}}\n\
         server {{\n    listen 127.0.0.1:{p1};\n    server_name 'q\"uote\\nnl\\tt';\n    return 200 \"q\\n\";\n}}\n\
         server {{\n    listen unix:{d}/a\\\"b\\\\c.sock;\n    server_name sock.example;\n    return 200 \"sock\\n\";\n}}\n",
        p0 = p[0],
        p1 = p[1]
    )
    .as_bytes());
    w(format!(
        "server {{\n    listen 127.0.0.1:{};\n    server_name \"x\\ny\\xff",
        p[2]
    )
    .as_bytes());
    w(b"\xff\xfe\xef\xbf\xbd\xc3\xa9\x01\x7fz\";\n    return 200 \"x\\n\";\n}\n");
    c
}

#[test]
fn hostile_names_round_trip_through_nginx() {
    let dir = Scratch(scratch_dir("h"));
    let include = dir.0.join("hostile.conf");
    let d0 = dir.0.clone();
    let nginx = Nginx::start_with(2, 3, move |p| {
        // An attempt that lost a port race leaves the unix socket file behind (nginx does not
        // unlink it on a failed start): without this, every retry would fail on it.
        let _ = fs::remove_file(d0.join("a\"b\\c.sock"));
        fs::write(&include, hostile_conf(&d0, p)).unwrap();
        format!(
            "vts_zone main 1m;\nvts_upstream_stats on;\ninclude {};\n",
            include.display()
        )
    });
    for (i, port) in nginx.ports.clone().into_iter().enumerate() {
        let r = http_request(port, "GET", "/", "whatever.example", &[], b"");
        assert_eq!(r.status, 200, "port {} ({}): {}", i, port, r.body_text());
    }
    let sock = format!("unix:{}/a\"b\\c.sock", dir.0.display());
    // What the zones must be called (nginx's unescaping, then escape.rs's documented mapping).
    let weird = "x\ny\\xff\u{FFFD}ff\u{FFFD}fe\u{FFFD}\u{FFFD}é\u{1}\u{7f}z";
    let want_zones: BTreeMap<&str, f64> = [
        ("we\\ird.example", 1.0),
        ("q\"uote\nnl\tt", 1.0),
        ("sock.example", 1.0),
        (weird, 1.0),
    ]
    .into();

    let deadline = Instant::now() + Duration::from_secs(10);
    let (text, m) = loop {
        let (ct, text) = scrape(&nginx, None);
        assert_eq!(ct, STATUS_CONTENT_TYPE);
        let m = Metrics::parse(&text).unwrap_or_else(|e| panic!("{}\n{}", e, text));
        let zones: BTreeMap<&str, f64> = m
            .find("nginx_vts_server_requests_total", &[])
            .into_iter()
            .map(|(l, v)| (l.iter().find(|(k, _)| k == "zone").unwrap().1.as_str(), v))
            .collect();
        if zones == want_zones {
            break (text.clone(), m.clone());
        }
        assert!(
            Instant::now() < deadline,
            "zones {:?}, want {:?}\n{}",
            zones,
            want_zones,
            text
        );
        thread::sleep(Duration::from_millis(50));
    };
    let up = [("upstream", "we\\ird\"grp"), ("server", sock.as_str())];
    assert_eq!(
        m.get("nginx_vts_upstream_requests_total", &up),
        Some(1.0),
        "{}",
        text
    );
    assert_eq!(m.get("nginx_vts_upstream_server_up", &up), Some(1.0), "{}", text);
    assert_eq!(
        m.find("nginx_vts_upstream_requests_total", &[]).len(),
        1,
        "{}",
        text
    );

    assert_promtool_clean(&text);
    assert_no_problems(&text, false);
    let (ct, om) = scrape(&nginx, Some(PROMETHEUS_ACCEPT));
    assert_eq!(ct, OM_CONTENT_TYPE);
    assert_no_problems(&om, true);
    let (ok, out) = python_openmetrics(&om);
    assert!(ok, "python OpenMetrics parser:\n{}\n--- text ---\n{}", out, om);
    let parsed = Metrics::parse(&out).unwrap_or_else(|e| panic!("{}\n{}", e, out));
    assert_eq!(
        without_connections(&parsed),
        without_connections(&m),
        "python's labels vs the text format's"
    );
}

/// nginx accepts `server_name ::overflow;`. Once the zone is full, the renderer also writes its
/// overflow entry as `zone="::overflow"`: the two must not become one (duplicate) series.
#[test]
fn a_server_named_overflow_and_a_full_zone_do_not_duplicate_series() {
    let nginx = Nginx::start_with(2, 1, |p| {
        let mut s = format!(
            "vts_zone main 64k;\nserver {{\n    listen 127.0.0.1:{};\n    server_name ::overflow;\n    location = /status {{ vts_status; }}\n}}\n",
            p[0]
        );
        for i in 0..300 {
            s.push_str(&format!(
                "server {{ listen 127.0.0.1:{}; server_name s{}.example; return 200; }}\n",
                p[0], i
            ));
        }
        s
    });
    for i in 0..300 {
        let r = http_request(nginx.port(), "GET", "/", &format!("s{}.example", i), &[], b"");
        assert_eq!(r.status, 200);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    let text = loop {
        let text = scrape(&nginx, None).1;
        let total: f64 = text
            .lines()
            .filter(|l| l.starts_with("nginx_vts_server_requests_total{"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum();
        if total == 300.0 || Instant::now() >= deadline {
            assert_eq!(total, 300.0, "requests counted (overflow included)\n{}", text);
            break text;
        }
        thread::sleep(Duration::from_millis(50));
    };
    assert!(
        text.contains("zone=\"::overflow\""),
        "the zone did not overflow:\n{}",
        text
    );
    assert_no_problems(&text, false);
}
