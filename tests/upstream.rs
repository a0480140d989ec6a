//! Issue 4, upstream statistics, against the real nginx with the module.
//!
//! The backends are server blocks of the same nginx on other local ports, so every attempt is
//! seen three ways: by the module (the upstream families), by nginx's own access log of the
//! front request (`$upstream_addr`, `$upstream_status`, `$upstream_bytes_sent`,
//! `$upstream_bytes_received`: one entry per attempt), and by the backend's own server zone.
//! The tests compare the module's per-peer numbers exactly with the other two.
//!
//! Run with `cargo test --release --test upstream`.

mod common;

use common::*;
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::PathBuf;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];
const NOGROUPS: &str = "::nogroups";

/// The default `vts_histogram_buckets` (11 bounds) plus `+Inf`.
const BUCKETS_WITH_INF: usize = 12;

/// Every upstream family, with its type.
const UPSTREAM_FAMILIES: [(&str, &str); 10] = [
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

fn addr(port: u16) -> String {
    format!("127.0.0.1:{}", port)
}

// ---------------------------------------------------------------------------------------------
// Configuration pieces
// ---------------------------------------------------------------------------------------------

/// The start of the http{} body: the zone, `vts_upstream_stats on` when `stats`, and the
/// access-log format that records nginx's own view of every attempt of a request.
fn preamble(stats: bool) -> String {
    let mut s = String::from("vts_zone main 1m;\n");
    if stats {
        s.push_str("vts_upstream_stats on;\n");
    }
    s.push_str(
        "log_format up '$uri|$upstream_addr|$upstream_status|$upstream_bytes_sent|$upstream_bytes_received';\n",
    );
    s
}

/// The front server (zone `front`, default server of `port`, carries the status location and
/// logs every request's attempts to logs/up.log).
fn front(port: u16, locations: &str) -> String {
    format!(
        "server {{\n    listen 127.0.0.1:{port};\n    server_name front;\n    access_log logs/up.log up;\n    location = /status {{ vts_status; }}\n{locations}}}\n"
    )
}

/// A backend server block (its own zone `name`) answering `status` with a body that echoes the
/// URI; `.../missing...` gives 404 and `.../moved...` 301.
fn backend(port: u16, name: &str, status: u16) -> String {
    backend_at(&addr(port), name, status)
}

/// Like `backend`, listening on `listen` (`[::1]:8080`, `unix:/path`).
fn backend_at(listen: &str, name: &str, status: u16) -> String {
    format!(
        r#"server {{
    listen {listen};
    server_name {name};
    location / {{ return {status} "{name} answers $request_uri\n"; }}
    location ~ /missing {{ return 404 "{name}: not here\n"; }}
    location ~ /moved {{ return 301 /elsewhere; }}
}}
"#
    )
}

// ---------------------------------------------------------------------------------------------
// Traffic
// ---------------------------------------------------------------------------------------------

/// Sends every (path, expected status) to the front from `threads` client threads (1: strictly
/// sequential, in order), with an `X-Pad` header of varying length so that request sizes
/// differ; asserts each status.
fn send(port: u16, reqs: &[(String, u16)], threads: usize) {
    let reqs = reqs.to_vec();
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let reqs = reqs.clone();
            thread::spawn(move || {
                for (i, (path, want)) in reqs.iter().enumerate().skip(t).step_by(threads) {
                    let pad = "p".repeat(i % 37 + 1);
                    let r = http_request(port, "GET", path, "front", &[("X-Pad", &pad)], b"");
                    assert_eq!(r.status, *want, "GET {}: {}", path, r.body_text());
                }
            })
        })
        .collect();
    for h in handles {
        h.join().expect("client thread panicked");
    }
}

fn reqs(prefix: &str, n: usize, status: u16) -> Vec<(String, u16)> {
    (0..n)
        .map(|i| {
            (
                format!("/{}/{}?pad={}", prefix, i, "x".repeat(i * 7 % 53)),
                status,
            )
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// nginx's own record of the attempts (the access log)
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq)]
struct Attempt {
    peer: String,
    status: u16,
    sent: u64,
    received: u64,
}

#[derive(Debug, Clone)]
struct Logged {
    uri: String,
    attempts: Vec<Attempt>,
}

/// The per-attempt values of an upstream variable (", " between attempts, " : " between
/// internal redirects).
fn states(v: &str) -> Vec<&str> {
    v.split(" : ").flat_map(|p| p.split(", ")).collect()
}

/// Front requests that had upstream attempts, from logs/up.log.
fn logged(nginx: &Nginx) -> Vec<Logged> {
    let text = fs::read_to_string(nginx.prefix.join("logs/up.log")).unwrap_or_default();
    let mut out = Vec::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split('|').collect();
        assert_eq!(f.len(), 5, "access log line {:?}", line);
        if f[1] == "-" {
            continue; // the status location
        }
        let (a, s, o, i) = (states(f[1]), states(f[2]), states(f[3]), states(f[4]));
        assert!(
            a.len() == s.len() && a.len() == o.len() && a.len() == i.len(),
            "access log line {:?}",
            line
        );
        let num = |v: &str| -> u64 {
            v.parse()
                .unwrap_or_else(|_| panic!("number {:?} in access log line {:?}", v, line))
        };
        out.push(Logged {
            uri: f[0].to_string(),
            attempts: (0..a.len())
                .map(|k| Attempt {
                    peer: a[k].to_string(),
                    status: num(s[k]) as u16,
                    sent: num(o[k]),
                    received: num(i[k]),
                })
                .collect(),
        });
    }
    out
}

/// Waits (bounded) until the access log holds exactly `n` front requests with attempts.
fn wait_logged(nginx: &Nginx, n: usize) -> Vec<Logged> {
    let got = poll(SETTLE_TIMEOUT, || {
        let l = logged(nginx);
        (l.len() >= n).then_some(l)
    });
    let l = got.unwrap_or_else(|| panic!("access log has {} of {} requests", logged(nginx).len(), n));
    assert_eq!(l.len(), n, "requests in the access log");
    l
}

// ---------------------------------------------------------------------------------------------
// Per-peer totals: expected (from the log) and observed (from the status page)
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Default, Clone, Copy, PartialEq)]
struct PeerTotals {
    attempts: u64,
    classes: [u64; 5],
    /// Bytes sent to the peer (`direction="out"`).
    bytes_out: u64,
    /// Bytes received from the peer (`direction="in"`).
    bytes_in: u64,
}

type Key = (String, String);
type Expected = BTreeMap<Key, PeerTotals>;

fn key(group: &str, server: &str) -> Key {
    (group.to_string(), server.to_string())
}

/// Sums the logged attempts per (group, peer); `group_of(uri)` names the group of a request.
fn expected_from(log: &[Logged], group_of: impl Fn(&str) -> &'static str) -> Expected {
    let mut exp = Expected::new();
    for l in log {
        for a in &l.attempts {
            let t = exp.entry(key(group_of(&l.uri), &a.peer)).or_default();
            t.attempts += 1;
            assert!((100..600).contains(&a.status), "status {} in {:?}", a.status, l);
            t.classes[(a.status / 100 - 1) as usize] += 1;
            t.bytes_out += a.sent;
            t.bytes_in += a.received;
        }
    }
    exp
}

/// What the status page says about (group, server), None when the peer is not listed.
fn observed(m: &Metrics, group: &str, server: &str) -> Option<PeerTotals> {
    let id = [("upstream", group), ("server", server)];
    let attempts = m.get("nginx_vts_upstream_requests_total", &id)? as u64;
    let with = |name: &str, k: &'static str, v: &'static str| {
        m.get(name, &[id[0], id[1], (k, v)])
            .map(|x| x as u64)
            .unwrap_or(u64::MAX)
    };
    let mut classes = [0u64; 5];
    for (i, c) in CLASSES.iter().enumerate() {
        classes[i] = with("nginx_vts_upstream_responses_total", "status", c);
    }
    Some(PeerTotals {
        attempts,
        classes,
        bytes_out: with("nginx_vts_upstream_bytes_total", "direction", "out"),
        bytes_in: with("nginx_vts_upstream_bytes_total", "direction", "in"),
    })
}

/// Polls until the status page shows `exp` for every peer in it, then asserts exact equality.
fn assert_peers(nginx: &Nginx, exp: &Expected) -> Metrics {
    let m = nginx.scrape_until(|m| {
        exp.iter()
            .all(|((g, s), t)| observed(m, g, s).as_ref() == Some(t))
    });
    for ((g, s), t) in exp {
        assert_eq!(
            observed(&m, g, s).as_ref(),
            Some(t),
            "upstream {:?} server {:?}: status page (left) vs nginx's access log (right)",
            g,
            s
        );
    }
    m
}

/// Attempts per server of `group`, as the status page lists them.
fn attempts_in(m: &Metrics, group: &str) -> BTreeMap<String, u64> {
    m.find("nginx_vts_upstream_requests_total", &[("upstream", group)])
        .into_iter()
        .map(|(l, v)| (label(l, "server").to_string(), v as u64))
        .collect()
}

/// The (upstream, server) rows of the status page.
fn rows(m: &Metrics) -> BTreeSet<Key> {
    m.find("nginx_vts_upstream_requests_total", &[])
        .into_iter()
        .map(|(l, _)| key(label(l, "upstream"), label(l, "server")))
        .collect()
}

fn label<'a>(l: &'a Labels, name: &str) -> &'a str {
    l.iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("no label {} in {:?}", name, l))
}

/// One of the peer-state gauges: `up`, `weight`, `max_fails`, `fail_timeout_seconds`, `backup`.
fn gauge(m: &Metrics, which: &str, group: &str, server: &str) -> f64 {
    m.value(
        &format!("nginx_vts_upstream_server_{}", which),
        &[("upstream", group), ("server", server)],
    )
}

fn up(m: &Metrics, group: &str, server: &str) -> f64 {
    gauge(m, "up", group, server)
}

/// Polls until each backend's own server zone (requests, bytes in, bytes out) equals what the
/// status page's upstream rows (all groups) say was exchanged with its address, and returns that
/// scrape. A backend counts in its own log phase, after its response left: the proxy may finish
/// the request (and the client see it) before the backend's worker runs again.
fn settle_backends(nginx: &Nginx, backends: &[(&str, &str)]) -> Metrics {
    nginx.scrape_until(|m| {
        backends.iter().all(|(server, z)| {
            let mut want = (0, 0, 0);
            for (g, s) in rows(m).iter().filter(|(_, s)| s == server) {
                let p = observed(m, g, s).unwrap_or_default();
                want = (want.0 + p.attempts, want.1 + p.bytes_out, want.2 + p.bytes_in);
            }
            let (r, i, o, _) = zone(m, z);
            (r, i, o) == want
        })
    })
}

/// A server zone's (requests, bytes in, bytes out, classes).
fn zone(m: &Metrics, z: &str) -> (u64, u64, u64, [u64; 5]) {
    let v = |name: &str, extra: &[(&str, &str)]| {
        let mut l = vec![("zone", z)];
        l.extend_from_slice(extra);
        m.value(name, &l) as u64
    };
    let mut classes = [0u64; 5];
    for (i, c) in CLASSES.iter().enumerate() {
        classes[i] = v("nginx_vts_server_responses_total", &[("status", c)]);
    }
    (
        v("nginx_vts_server_requests_total", &[]),
        v("nginx_vts_server_bytes_total", &[("direction", "in")]),
        v("nginx_vts_server_bytes_total", &[("direction", "out")]),
        classes,
    )
}

fn parse_le(s: &str) -> f64 {
    if s == "+Inf" {
        f64::INFINITY
    } else {
        s.parse().unwrap_or_else(|_| panic!("le {:?}", s))
    }
}

/// Per row: every status class, both directions, both time types; the histogram has the
/// default buckets plus +Inf, cumulative, +Inf equal to `_count`, and `_count` equal to the
/// attempts (nginx gives every attempt a response time); the averages are consistent.
fn check_row_shapes(m: &Metrics) {
    for (g, s) in rows(m) {
        let (g, s) = (g.as_str(), s.as_str());
        let id = [("upstream", g), ("server", s)];
        let attempts = m.value("nginx_vts_upstream_requests_total", &id);
        let o = observed(m, g, s).unwrap();
        assert!(
            o.classes.iter().all(|&c| c != u64::MAX) && o.bytes_in != u64::MAX && o.bytes_out != u64::MAX,
            "{} {}: missing class or direction series: {:?}",
            g,
            s,
            o
        );
        assert_eq!(
            o.classes.iter().sum::<u64>(),
            o.attempts,
            "{} {}: classes add up to the attempts",
            g,
            s
        );
        let hist = "nginx_vts_upstream_response_duration_seconds";
        let mut buckets: Vec<(f64, f64)> = m
            .find(&format!("{}_bucket", hist), &id)
            .into_iter()
            .map(|(l, v)| (parse_le(label(l, "le")), v))
            .collect();
        buckets.sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap());
        assert_eq!(
            buckets.len(),
            BUCKETS_WITH_INF,
            "{} {}: buckets {:?}",
            g,
            s,
            buckets
        );
        assert!(buckets.last().unwrap().0.is_infinite());
        assert!(
            buckets.windows(2).all(|w| w[0].1 <= w[1].1),
            "{} {}: buckets not cumulative: {:?}",
            g,
            s,
            buckets
        );
        let count = m.value(&format!("{}_count", hist), &id);
        let sum = m.value(&format!("{}_sum", hist), &id);
        assert_eq!(buckets.last().unwrap().1, count, "{} {}: +Inf vs _count", g, s);
        assert_eq!(count, attempts, "{} {}: histogram _count vs attempts", g, s);
        assert!(sum >= 0.0 && sum.is_finite(), "{} {}: _sum {}", g, s, sum);
        let t = |ty: &str| {
            m.value(
                "nginx_vts_upstream_response_seconds",
                &[id[0], id[1], ("type", ty)],
            )
        };
        let (req_avg, up_avg) = (t("request_avg"), t("upstream_avg"));
        assert!(
            req_avg.is_finite() && (0.0..30.0).contains(&req_avg),
            "{} {}: request_avg {}",
            g,
            s,
            req_avg
        );
        let want_up_avg = if count == 0.0 { 0.0 } else { sum / count };
        assert!(
            (up_avg - want_up_avg).abs() < 1e-9,
            "{} {}: upstream_avg {} vs _sum/_count {}",
            g,
            s,
            up_avg,
            want_up_avg
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

/// (1) Two peers and a backup, round robin: every peer listed with zeros from the start; after
/// N requests each primary has exactly N/2 attempts (the `zone` shares the balancer's state, so
/// selections alternate whichever worker makes them), the backup none; status classes and bytes
/// per peer are exactly nginx's own. A second group without `zone` over the same backends:
/// per-worker balancing, so only the sum is predictable, and each peer equals the log.
#[test]
fn round_robin_counts_every_attempt_per_peer_and_lists_all_peers_from_the_start() {
    let nginx = Nginx::start_with(2, 4, |p| {
        format!(
            "{pre}upstream pool {{\n    zone pool 64k;\n    server {a};\n    server {b};\n    server {c} backup;\n}}\n\
             upstream nozone {{\n    server {a};\n    server {b};\n}}\n{front}{ba}{bb}{bc}",
            pre = preamble(true),
            a = addr(p[1]),
            b = addr(p[2]),
            c = addr(p[3]),
            front = front(
                p[0],
                "    location /pool/ { proxy_pass http://pool; }\n    location /nozone/ { proxy_pass http://nozone; }\n"
            ),
            ba = backend(p[1], "be_a", 200),
            bb = backend(p[2], "be_b", 200),
            bc = backend(p[3], "be_c", 200),
        )
    });
    let p = nginx.ports.clone();
    let (a, b, c) = (addr(p[1]), addr(p[2]), addr(p[3]));

    // Before any traffic: all five rows, zeros, nginx's view of each.
    let m = nginx.scrape();
    let listed: BTreeSet<Key> = [
        ("pool", &a),
        ("pool", &b),
        ("pool", &c),
        ("nozone", &a),
        ("nozone", &b),
    ]
    .iter()
    .map(|(g, s)| key(g, s))
    .collect();
    assert_eq!(rows(&m), listed, "rows before traffic");
    for (g, s) in &listed {
        assert_eq!(
            observed(&m, g, s),
            Some(PeerTotals::default()),
            "{} {} before traffic",
            g,
            s
        );
        let backup = (*g == "pool" && *s == c) as u64 as f64;
        assert_eq!(up(&m, g, s), 1.0, "{} {} up", g, s);
        assert_eq!(gauge(&m, "backup", g, s), backup, "{} {} backup", g, s);
        assert_eq!(gauge(&m, "weight", g, s), 1.0, "{} {} weight", g, s);
        assert_eq!(gauge(&m, "max_fails", g, s), 1.0, "{} {} max_fails", g, s);
        assert_eq!(
            gauge(&m, "fail_timeout_seconds", g, s),
            10.0,
            "{} {} fail_timeout",
            g,
            s
        );
    }
    check_row_shapes(&m);

    // Traffic: 40 to pool, 30 to nozone, mixed 200 / 404 / 301, from two client threads.
    let (n, k) = (40usize, 30usize);
    let mut traffic = Vec::new();
    let mut client_classes: BTreeMap<&str, [u64; 5]> = BTreeMap::new();
    for (group, count) in [("pool", n), ("nozone", k)] {
        for i in 0..count {
            let (path, status) = match i % 5 {
                3 => (format!("/{}/missing/{}", group, i), 404),
                4 => (format!("/{}/moved/{}", group, i), 301),
                _ => (format!("/{}/{}?pad={}", group, i, "x".repeat(i * 11 % 71)), 200),
            };
            client_classes.entry(group).or_default()[(status / 100 - 1) as usize] += 1;
            traffic.push((path, status));
        }
    }
    // Interleave the groups.
    traffic.sort_by_key(|(path, _)| path.len() * 7 % 13);
    send(nginx.port(), &traffic, 2);

    let log = wait_logged(&nginx, n + k);
    for l in &log {
        assert_eq!(l.attempts.len(), 1, "a retry where none was expected: {:?}", l);
    }
    let exp = expected_from(&log, |uri| {
        if uri.starts_with("/pool/") {
            "pool"
        } else {
            "nozone"
        }
    });
    // The balancer with a zone alternates exactly; the backup is never chosen.
    assert_eq!(exp[&key("pool", &a)].attempts, (n / 2) as u64, "{:?}", exp);
    assert_eq!(exp[&key("pool", &b)].attempts, (n / 2) as u64, "{:?}", exp);
    assert!(!exp.contains_key(&key("pool", &c)), "{:?}", exp);
    assert_eq!(
        exp[&key("nozone", &a)].attempts + exp[&key("nozone", &b)].attempts,
        k as u64
    );

    let mut want = exp.clone();
    want.insert(key("pool", &c), PeerTotals::default());
    let m = assert_peers(&nginx, &want);
    assert_eq!(rows(&m), listed, "rows after traffic");
    assert_eq!(
        attempts_in(&m, "pool"),
        BTreeMap::from([(a.clone(), 20), (b.clone(), 20), (c.clone(), 0)])
    );
    // Status classes per group add up to what the clients saw.
    for (group, classes) in &client_classes {
        let mut sum = [0u64; 5];
        for s in [&a, &b] {
            let o = observed(&m, group, s).unwrap();
            for (total, n) in sum.iter_mut().zip(o.classes) {
                *total += n;
            }
        }
        assert_eq!(&sum, classes, "status classes of group {}", group);
    }
    // Each backend's own zone received exactly the attempts sent to it, byte for byte.
    let m = settle_backends(&nginx, &[(&a, "be_a"), (&b, "be_b"), (&c, "be_c")]);
    for (s, z) in [(&a, "be_a"), (&b, "be_b"), (&c, "be_c")] {
        let (mut att, mut out, mut inn) = (0, 0, 0);
        for g in ["pool", "nozone"] {
            if let Some(o) = observed(&m, g, s) {
                att += o.attempts;
                out += o.bytes_out;
                inn += o.bytes_in;
            }
        }
        let (req, zin, zout, _) = zone(&m, z);
        assert_eq!((att, out, inn), (req, zin, zout), "peer {} vs zone {}", s, z);
    }
    assert_eq!(up(&m, "pool", &a) + up(&m, "pool", &b) + up(&m, "pool", &c), 3.0);
    check_row_shapes(&m);
}

/// (2) A single peer answering 500, default `proxy_next_upstream` (error timeout): the 500 is
/// passed through and counted as 5xx for that peer; the peer stays up.
#[test]
fn a_500_from_the_peer_is_passed_through_and_counted_as_5xx() {
    let nginx = Nginx::start_with(2, 2, |p| {
        format!(
            "{pre}upstream u500 {{\n    zone u500 64k;\n    server {a};\n}}\n{front}{ba}",
            pre = preamble(true),
            a = addr(p[1]),
            front = front(p[0], "    location /u500/ { proxy_pass http://u500; }\n"),
            ba = backend(p[1], "be500", 500),
        )
    });
    let a = addr(nginx.ports[1]);
    let n = 10;
    send(nginx.port(), &reqs("u500", n, 500), 2);

    let log = wait_logged(&nginx, n);
    let exp = expected_from(&log, |_| "u500");
    assert_eq!(exp.keys().cloned().collect::<Vec<_>>(), vec![key("u500", &a)]);
    let t = exp[&key("u500", &a)];
    assert_eq!((t.attempts, t.classes), (n as u64, [0, 0, 0, 0, n as u64]));

    let m = assert_peers(&nginx, &exp);
    assert_eq!(up(&m, "u500", &a), 1.0, "a passed-through 500 is not a failure");
    let m = settle_backends(&nginx, &[(&a, "be500")]);
    let (req, zin, zout, classes) = zone(&m, "be500");
    assert_eq!(
        (req, zin, zout, classes),
        (t.attempts, t.bytes_out, t.bytes_in, [0, 0, 0, 0, n as u64]),
        "backend zone vs peer"
    );
    assert_eq!(zone(&m, "front").3, [0, 0, 0, 0, n as u64]);
    check_row_shapes(&m);
}

/// (3) A peer on a closed port with `max_fails=2 fail_timeout=5s` in an upstream with `zone`:
/// its two failed connects are counted for it (as 5xx: nginx records 502), each retry for the
/// good peer; then it is down (up=0) until fail_timeout has passed, then up again; one more
/// failure marks it down again.
#[test]
fn failed_connects_mark_the_peer_down_until_fail_timeout_and_count_as_5xx() {
    let dead = ClosedPort::new();
    let nginx = Nginx::start_with(2, 2, |p| {
        format!(
            "{pre}upstream flaky {{\n    zone flaky 64k;\n    server {good};\n    server {closed} max_fails=2 fail_timeout=5s;\n}}\n{front}{bg}",
            pre = preamble(true),
            good = addr(p[1]),
            closed = addr(dead.port()),
            front = front(p[0], "    location /flaky/ { proxy_pass http://flaky; }\n"),
            bg = backend(p[1], "be_good", 200),
        )
    });
    let (good, closed) = (addr(nginx.ports[1]), addr(dead.port()));

    let m = nginx.scrape();
    for s in [&good, &closed] {
        assert_eq!(observed(&m, "flaky", s), Some(PeerTotals::default()), "{}", s);
        assert_eq!(up(&m, "flaky", s), 1.0, "{} up before traffic", s);
    }
    assert_eq!(gauge(&m, "max_fails", "flaky", &closed), 2.0);
    assert_eq!(gauge(&m, "fail_timeout_seconds", "flaky", &closed), 5.0);

    // Sequential: round robin picks good, closed (fails, retry on good), good, closed (fails
    // again: 2 = max_fails, disabled), then good only. fail_timeout is long enough that a
    // stalled machine does not see the peer come back before the checks below.
    let traffic = reqs("flaky", 6, 200);
    // Before the failures: a lower bound for how long the peer stays down.
    let t_failed = Instant::now();
    send(nginx.port(), &traffic, 1);
    let log = wait_logged(&nginx, 6);
    for l in &log {
        let peers: Vec<(&str, u16)> = l.attempts.iter().map(|a| (a.peer.as_str(), a.status)).collect();
        assert!(
            peers == [(good.as_str(), 200)] || peers == [(closed.as_str(), 502), (good.as_str(), 200)],
            "attempts {:?}",
            l
        );
    }
    let exp = expected_from(&log, |_| "flaky");
    let tc = exp[&key("flaky", &closed)];
    assert_eq!(
        tc,
        PeerTotals {
            attempts: 2,
            classes: [0, 0, 0, 0, 2],
            bytes_out: 0,
            bytes_in: 0
        }
    );
    assert_eq!(exp[&key("flaky", &good)].attempts, 6);
    assert_eq!(exp[&key("flaky", &good)].classes, [0, 6, 0, 0, 0]);
    let m = assert_peers(&nginx, &exp);
    assert_eq!(
        up(&m, "flaky", &closed),
        0.0,
        "after max_fails failures ({:?} ago)",
        t_failed.elapsed()
    );
    assert_eq!(up(&m, "flaky", &good), 1.0);
    let m = settle_backends(&nginx, &[(&good, "be_good")]);
    assert_eq!(zone(&m, "be_good").0, 6);

    // Back to 1 once fail_timeout has passed (nginx: now - checked > 5 s, in whole seconds),
    // without traffic.
    let back = poll(Duration::from_secs(20), || {
        let m = nginx.scrape();
        (up(&m, "flaky", &closed) == 1.0).then_some(m)
    });
    let m = back.unwrap_or_else(|| {
        panic!(
            "peer {} still down {:?} after its failures (fail_timeout=5s)",
            closed,
            t_failed.elapsed()
        )
    });
    let elapsed = t_failed.elapsed();
    assert!(
        elapsed >= Duration::from_secs(4),
        "up again after only {:?}",
        elapsed
    );
    for ((g, s), t) in &exp {
        assert_eq!(observed(&m, g, s).as_ref(), Some(t), "{} {} while waiting", g, s);
    }

    // Two more requests: good first, then closed is tried once more, fails, and is down again.
    send(nginx.port(), &reqs("flaky", 2, 200), 1);
    let log = wait_logged(&nginx, 8);
    let exp = expected_from(&log, |_| "flaky");
    assert_eq!(exp[&key("flaky", &closed)].attempts, 3, "{:?}", exp);
    assert_eq!(exp[&key("flaky", &closed)].classes, [0, 0, 0, 0, 3]);
    assert_eq!(exp[&key("flaky", &good)].attempts, 8, "{:?}", exp);
    let m = assert_peers(&nginx, &exp);
    assert_eq!(up(&m, "flaky", &closed), 0.0, "down again after a new failure");
    assert_eq!(up(&m, "flaky", &good), 1.0);
    check_row_shapes(&m);
}

/// (4) `proxy_next_upstream error http_500`: a request that hits the 500-peer and then the
/// good peer counts one attempt for each. With `max_fails=0` the 500-peer is never disabled
/// (round robin: every other request goes 500-peer then good); with the default `max_fails=1`
/// it is tried once and then down for fail_timeout.
#[test]
fn proxy_next_upstream_http_500_counts_one_attempt_for_each_peer() {
    let nginx = Nginx::start_with(2, 3, |p| {
        format!(
            "{pre}upstream retry {{\n    zone retry 64k;\n    server {bad} max_fails=0;\n    server {good};\n}}\n\
             upstream retry_once {{\n    zone retry_once 64k;\n    server {bad};\n    server {good};\n}}\n{front}{bb}{bg}",
            pre = preamble(true),
            bad = addr(p[1]),
            good = addr(p[2]),
            front = front(
                p[0],
                "    proxy_next_upstream error http_500;\n    location /retry/ { proxy_pass http://retry; }\n    location /retry_once/ { proxy_pass http://retry_once; }\n"
            ),
            bb = backend(p[1], "be500", 500),
            bg = backend(p[2], "be_good", 200),
        )
    });
    let (bad, good) = (addr(nginx.ports[1]), addr(nginx.ports[2]));
    let n = 10;
    send(nginx.port(), &reqs("retry", n, 200), 1);
    send(nginx.port(), &reqs("retry_once", n, 200), 1);

    let log = wait_logged(&nginx, 2 * n);
    let mut retried = BTreeMap::<&str, u64>::new();
    for l in &log {
        let peers: Vec<(&str, u16)> = l.attempts.iter().map(|a| (a.peer.as_str(), a.status)).collect();
        let g = if l.uri.starts_with("/retry/") {
            "retry"
        } else {
            "retry_once"
        };
        if peers == [(bad.as_str(), 500), (good.as_str(), 200)] {
            *retried.entry(g).or_default() += 1;
        } else {
            assert_eq!(peers, [(good.as_str(), 200)], "attempts {:?}", l);
        }
    }
    assert_eq!(
        retried,
        BTreeMap::from([("retry", n as u64 / 2), ("retry_once", 1)]),
        "requests that went 500-peer then good peer"
    );
    let exp = expected_from(&log, |uri| {
        if uri.starts_with("/retry/") {
            "retry"
        } else {
            "retry_once"
        }
    });
    for (g, bad_attempts) in [("retry", n as u64 / 2), ("retry_once", 1)] {
        let tb = exp[&key(g, &bad)];
        let tg = exp[&key(g, &good)];
        assert_eq!(
            (tb.attempts, tb.classes),
            (bad_attempts, [0, 0, 0, 0, bad_attempts]),
            "{}",
            g
        );
        assert_eq!(
            (tg.attempts, tg.classes),
            (n as u64, [0, n as u64, 0, 0, 0]),
            "{}",
            g
        );
    }

    let m = assert_peers(&nginx, &exp);
    assert_eq!(up(&m, "retry", &bad), 1.0, "max_fails=0 never disables");
    assert_eq!(up(&m, "retry_once", &bad), 0.0, "http_500 counted as a failure");
    assert_eq!(up(&m, "retry_once", &good), 1.0);
    // The backends' own zones saw exactly these attempts.
    let m = settle_backends(&nginx, &[(&bad, "be500"), (&good, "be_good")]);
    let (req, _, _, classes) = zone(&m, "be500");
    assert_eq!((req, classes), (n as u64 / 2 + 1, [0, 0, 0, 0, n as u64 / 2 + 1]));
    assert_eq!(zone(&m, "be_good").0, 2 * n as u64);
    // The clients saw only 200s.
    assert_eq!(zone(&m, "front").3, [0, 2 * n as u64, 0, 0, 0]);
    check_row_shapes(&m);
}

/// (5) A backup peer is counted only when the primaries fail: primaries marked `down` (the
/// backup gets everything, the primaries nothing), and primaries on closed ports (each tried
/// once, by the first request, then disabled for fail_timeout; the backup serves all).
#[test]
fn backup_peer_is_counted_only_when_the_primaries_fail() {
    let dead = [ClosedPort::new(), ClosedPort::new()];
    let nginx = Nginx::start_with(2, 2, |p| {
        format!(
            "{pre}upstream bk_down {{\n    zone bk_down 64k;\n    server {x} down;\n    server {y} down;\n    server {bk} backup;\n}}\n\
             upstream bk_fail {{\n    zone bk_fail 64k;\n    server {x};\n    server {y};\n    server {bk} backup;\n}}\n{front}{bb}",
            pre = preamble(true),
            x = addr(dead[0].port()),
            y = addr(dead[1].port()),
            bk = addr(p[1]),
            front = front(
                p[0],
                "    location /bk_down/ { proxy_pass http://bk_down; }\n    location /bk_fail/ { proxy_pass http://bk_fail; }\n"
            ),
            bb = backend(p[1], "be_backup", 200),
        )
    });
    let (bk, x, y) = (addr(nginx.ports[1]), addr(dead[0].port()), addr(dead[1].port()));

    let m = nginx.scrape();
    for g in ["bk_down", "bk_fail"] {
        for s in [&x, &y, &bk] {
            assert_eq!(observed(&m, g, s), Some(PeerTotals::default()), "{} {}", g, s);
        }
        assert_eq!(gauge(&m, "backup", g, &bk), 1.0);
        assert_eq!(gauge(&m, "backup", g, &x), 0.0);
        assert_eq!(up(&m, g, &bk), 1.0);
    }
    assert_eq!((up(&m, "bk_down", &x), up(&m, "bk_down", &y)), (0.0, 0.0));
    assert_eq!((up(&m, "bk_fail", &x), up(&m, "bk_fail", &y)), (1.0, 1.0));

    let n = 8;
    send(nginx.port(), &reqs("bk_down", n, 200), 1);
    send(nginx.port(), &reqs("bk_fail", n, 200), 1);
    let log = wait_logged(&nginx, 2 * n);
    let exp = expected_from(&log, |uri| {
        if uri.starts_with("/bk_down/") {
            "bk_down"
        } else {
            "bk_fail"
        }
    });
    let a = |g: &str, s: &str| exp.get(&key(g, s)).map_or(0, |t| t.attempts);
    assert_eq!(
        (a("bk_down", &x), a("bk_down", &y), a("bk_down", &bk)),
        (0, 0, n as u64),
        "{:?}",
        exp
    );
    assert_eq!(
        (a("bk_fail", &x), a("bk_fail", &y), a("bk_fail", &bk)),
        (1, 1, n as u64),
        "{:?}",
        exp
    );
    for s in [&x, &y] {
        assert_eq!(exp[&key("bk_fail", s)].classes, [0, 0, 0, 0, 1], "{}", s);
    }

    let mut want = exp.clone();
    want.insert(key("bk_down", &x), PeerTotals::default());
    want.insert(key("bk_down", &y), PeerTotals::default());
    let m = assert_peers(&nginx, &want);
    assert_eq!(
        attempts_in(&m, "bk_down"),
        BTreeMap::from([(x.clone(), 0), (y.clone(), 0), (bk.clone(), n as u64)])
    );
    assert_eq!(
        attempts_in(&m, "bk_fail"),
        BTreeMap::from([(x.clone(), 1), (y.clone(), 1), (bk.clone(), n as u64)])
    );
    assert_eq!((up(&m, "bk_fail", &x), up(&m, "bk_fail", &y)), (0.0, 0.0));
    assert_eq!(up(&m, "bk_fail", &bk), 1.0);
    let m = settle_backends(&nginx, &[(&bk, "be_backup")]);
    assert_eq!(zone(&m, "be_backup").0, 2 * n as u64);
    check_row_shapes(&m);
}

/// (6) `proxy_pass` to an address, and through a variable, with no `upstream` block: counted
/// under `::nogroups`, keyed by the peer address. A variable naming the same address as the
/// literal proxy_pass lands in the same row.
#[test]
fn proxy_pass_without_upstream_block_counts_under_nogroups() {
    let nginx = Nginx::start_with(2, 3, |p| {
        format!(
            "{pre}{front}{bl}{bv}",
            pre = preamble(true),
            front = front(
                p[0],
                &format!(
                    "    location /lit/ {{ proxy_pass http://127.0.0.1:{l}; }}\n    location /var/ {{ set $b 127.0.0.1:{v}; proxy_pass http://$b; }}\n    location /var_same/ {{ set $b 127.0.0.1:{l}; proxy_pass http://$b; }}\n",
                    l = p[1],
                    v = p[2]
                )
            ),
            bl = backend(p[1], "be_lit", 200),
            bv = backend(p[2], "be_var", 200),
        )
    });
    let (lit, var) = (addr(nginx.ports[1]), addr(nginx.ports[2]));

    // The literal proxy_pass is configured: listed from the start.
    let m = nginx.scrape();
    assert_eq!(observed(&m, NOGROUPS, &lit), Some(PeerTotals::default()));
    assert_eq!(up(&m, NOGROUPS, &lit), 1.0);

    let mut traffic = reqs("lit", 6, 200);
    traffic.extend(reqs("var", 5, 200));
    traffic.extend(reqs("var_same", 4, 200));
    send(nginx.port(), &traffic, 2);
    let log = wait_logged(&nginx, 15);
    let exp = expected_from(&log, |_| NOGROUPS);
    assert_eq!(
        exp.iter()
            .map(|((g, s), t)| (g.as_str(), s.as_str(), t.attempts))
            .collect::<Vec<_>>(),
        {
            let mut v = vec![(NOGROUPS, lit.as_str(), 10), (NOGROUPS, var.as_str(), 5)];
            v.sort();
            v
        }
    );
    let m = assert_peers(&nginx, &exp);
    assert_eq!(
        m.label_values("nginx_vts_upstream_requests_total", "upstream"),
        BTreeSet::from([NOGROUPS.to_string()])
    );
    assert_eq!(
        attempts_in(&m, NOGROUPS),
        BTreeMap::from([(lit.clone(), 10), (var.clone(), 5)])
    );
    let tl = exp[&key(NOGROUPS, &lit)];
    let tv = exp[&key(NOGROUPS, &var)];
    let m = settle_backends(&nginx, &[(&lit, "be_lit"), (&var, "be_var")]);
    let (rl, il, ol, _) = zone(&m, "be_lit");
    let (rv, iv, ov, _) = zone(&m, "be_var");
    assert_eq!(
        (rl, il, ol),
        (tl.attempts, tl.bytes_out, tl.bytes_in),
        "be_lit vs peer"
    );
    assert_eq!(
        (rv, iv, ov),
        (tv.attempts, tv.bytes_out, tv.bytes_in),
        "be_var vs peer"
    );
    check_row_shapes(&m);
}

/// (7) `vts_upstream_stats` off (the default): no upstream family at all, even with proxied
/// traffic, while the server zones still count.
#[test]
fn upstream_stats_off_writes_no_upstream_family() {
    let nginx = Nginx::start_with(2, 2, |p| {
        format!(
            "{pre}upstream pool {{\n    zone pool 64k;\n    server {a};\n}}\n{front}{ba}",
            pre = preamble(false),
            a = addr(p[1]),
            front = front(
                p[0],
                &format!(
                    "    location /pool/ {{ proxy_pass http://pool; }}\n    location /lit/ {{ proxy_pass http://127.0.0.1:{}; }}\n",
                    p[1]
                )
            ),
            ba = backend(p[1], "be_a", 200),
        )
    });
    let mut traffic = reqs("pool", 5, 200);
    traffic.extend(reqs("lit", 5, 200));
    send(nginx.port(), &traffic, 2);
    wait_logged(&nginx, 10);
    let m = nginx.scrape_until(|m| {
        m.get("nginx_vts_server_requests_total", &[("zone", "be_a")]) == Some(10.0)
            && m.get("nginx_vts_server_requests_total", &[("zone", "front")]) == Some(10.0)
    });
    assert_eq!(zone(&m, "front").0, 10);
    assert_eq!(zone(&m, "be_a").0, 10);
    let text = nginx.scrape_text();
    assert!(
        !text.contains("nginx_vts_upstream"),
        "upstream output with vts_upstream_stats off:\n{}",
        text
    );
    assert!(
        text.contains("nginx_vts_server_requests_total{zone=\"be_a\"} 10"),
        "{}",
        text
    );
    // Not even a key was registered for a peer (configured or proxied to): the directory holds
    // the configured server zones and the built-in overflow entries, nothing else.
    let zones = configured_zones(&nginx);
    assert_eq!(
        m.label_values("nginx_vts_server_requests_total", "zone"),
        zones,
        "server zones listed vs configured"
    );
    assert_eq!(
        used_keys(&m),
        zones.len() + OVERFLOW_KEYS,
        "keys in use with vts_upstream_stats off: {} server zones {:?} + {} overflow entries",
        zones.len(),
        zones,
        OVERFLOW_KEYS
    );
}

/// Keys the zone registers at creation, whatever the configuration: the overflow entries of
/// server zones and of upstream peers (`OVERFLOW_KEYS` in src/stats/directory.rs).
const OVERFLOW_KEYS: usize = 2;

/// The server zones the running configuration declares: the first `server_name` of every
/// `server {` block (`_` for a block without one), read back from the nginx.conf the test
/// wrote. Blocks with the same first name share a zone.
fn configured_zones(nginx: &Nginx) -> BTreeSet<String> {
    let conf = fs::read_to_string(&nginx.conf).expect("read nginx.conf");
    conf.split("server {")
        .skip(1)
        .map(|block| {
            let block = &block[..block.find("server {").unwrap_or(block.len())];
            block
                .lines()
                .map(str::trim)
                .find_map(|l| l.strip_prefix("server_name "))
                .and_then(|names| names.trim_end_matches(';').split_whitespace().next())
                .unwrap_or("_")
                .to_string()
        })
        .collect()
}

/// `nginx_vts_shm_keys{state="used"}`: keys registered in the zone's directory.
fn used_keys(m: &Metrics) -> usize {
    let v = m.find("nginx_vts_shm_keys", &[("state", "used")]);
    assert_eq!(v.len(), 1, "nginx_vts_shm_keys{{state=\"used\"}}: {:?}", v);
    v[0].1 as usize
}

/// A directory of static files for the bytes test, removed on drop.
struct Files(PathBuf);

impl Files {
    fn new() -> Files {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let dir =
            std::env::temp_dir().join(format!("ngx_vts-upstream-files-{}-{}", std::process::id(), nanos));
        fs::create_dir_all(&dir).expect("create files dir");
        for (name, len) in [("f0", 0usize), ("f1", 1), ("mid", 40_000), ("big", 300_000)] {
            let body: Vec<u8> = (0..len).map(|i| b'a' + (i % 26) as u8).collect();
            fs::write(dir.join(name), body).expect("write file");
        }
        Files(dir)
    }
}

impl Drop for Files {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// (8) Bytes: per peer, `direction="out"` equals what the backend's own server zone received
/// (`direction="in"`), and `direction="in"` what it sent (`direction="out"`), exactly, with
/// bodies from 0 bytes to 300 kB, through buffered and unbuffered proxying.
#[test]
fn upstream_bytes_equal_what_the_backend_received_and_sent() {
    let files = Files::new();
    let root = files.0.display().to_string();
    let nginx = Nginx::start_with(2, 3, |p| {
        let be = |port: u16, name: &str| {
            format!(
                "server {{\n    listen 127.0.0.1:{port};\n    server_name {name};\n    root {root};\n    location /echo/ {{ return 200 \"{name} $request_uri\\n\"; }}\n}}\n"
            )
        };
        format!(
            "{pre}upstream bytes_buf {{\n    zone bytes_buf 64k;\n    server {x};\n    server {y};\n}}\n\
             upstream bytes_unbuf {{\n    server {x};\n    server {y};\n}}\n{front}{bx}{by}",
            pre = preamble(true),
            x = addr(p[1]),
            y = addr(p[2]),
            front = front(
                p[0],
                "    location /buf/ { proxy_pass http://bytes_buf/; }\n    location /unbuf/ { proxy_pass http://bytes_unbuf/; proxy_buffering off; }\n"
            ),
            bx = be(p[1], "be_x"),
            by = be(p[2], "be_y"),
        )
    });
    let (x, y) = (addr(nginx.ports[1]), addr(nginx.ports[2]));

    let targets: [(&str, u16); 6] = [
        ("echo/", 200),
        ("f0", 200),
        ("big", 200),
        ("f1", 200),
        ("mid", 200),
        ("missing", 404),
    ];
    let mut traffic = Vec::new();
    for i in 0..48 {
        let prefix = if i % 2 == 0 { "buf" } else { "unbuf" };
        let (t, status) = targets[(i / 2) % targets.len()];
        let path = if t == "echo/" {
            format!("/{}/echo/{}?q={}", prefix, i, "z".repeat(i * 13 % 97))
        } else {
            format!("/{}/{}", prefix, t)
        };
        traffic.push((path, status));
    }
    send(nginx.port(), &traffic, 2);

    let log = wait_logged(&nginx, traffic.len());
    let exp = expected_from(&log, |uri| {
        if uri.starts_with("/buf/") {
            "bytes_buf"
        } else {
            "bytes_unbuf"
        }
    });
    assert_peers(&nginx, &exp);
    let m = settle_backends(&nginx, &[(&x, "be_x"), (&y, "be_y")]);
    let mut total_in = 0;
    for (s, z) in [(&x, "be_x"), (&y, "be_y")] {
        let (mut att, mut out, mut inn) = (0, 0, 0);
        for g in ["bytes_buf", "bytes_unbuf"] {
            let o = observed(&m, g, s).unwrap();
            att += o.attempts;
            out += o.bytes_out;
            inn += o.bytes_in;
        }
        let (req, zin, zout, _) = zone(&m, z);
        assert_eq!(att, req, "attempts to {} vs requests of zone {}", s, z);
        assert_eq!(out, zin, "upstream bytes out to {} vs bytes in of zone {}", s, z);
        assert_eq!(
            inn, zout,
            "upstream bytes in from {} vs bytes out of zone {}",
            s, z
        );
        total_in += inn;
    }
    // 8 requests of the 300 kB file and 8 of the 40 kB one went through.
    assert!(total_in > 8 * 340_000, "bytes in {}", total_in);
    check_row_shapes(&m);
}

/// (9) A scrape with every kind of upstream row (zone and no zone, backup, down, failed,
/// 500s, `::nogroups` literal and variable) passes `promtool check metrics` with zero
/// problems; every upstream family has its HELP and TYPE; gauges exist for every configured
/// peer.
#[test]
fn upstream_output_is_promtool_clean() {
    let dead = ClosedPort::new();
    let nginx = Nginx::start_with(2, 5, |p| {
        format!(
            "{pre}upstream pool {{\n    zone pool 64k;\n    server {a} weight=2;\n    server {b} max_fails=3 fail_timeout=5s;\n    server {c} backup;\n    server {closed} down;\n}}\n\
             upstream mixed {{\n    server {e500};\n    server {closed} max_fails=1;\n}}\n{front}{ba}{bb}{bc}{be}",
            pre = preamble(true),
            a = addr(p[1]),
            b = addr(p[2]),
            c = addr(p[3]),
            e500 = addr(p[4]),
            closed = addr(dead.port()),
            front = front(
                p[0],
                &format!(
                    "    location /pool/ {{ proxy_pass http://pool; }}\n    location /mixed/ {{ proxy_pass http://mixed; }}\n    location /lit/ {{ proxy_pass http://127.0.0.1:{a}; }}\n    location /var/ {{ set $b 127.0.0.1:{b}; proxy_pass http://$b; }}\n",
                    a = p[1],
                    b = p[2]
                )
            ),
            ba = backend(p[1], "be_a", 200),
            bb = backend(p[2], "be_b", 200),
            bc = backend(p[3], "be_c", 200),
            be = backend(p[4], "be500", 500),
        )
    });
    let mut traffic = reqs("pool", 10, 200);
    traffic.extend(reqs("mixed", 6, 500));
    traffic.extend(reqs("lit", 3, 200));
    traffic.extend(reqs("var", 3, 200));
    send(nginx.port(), &traffic, 2);
    wait_logged(&nginx, traffic.len());
    // Every attempt has landed once the front zone counted every request.
    nginx.scrape_until(|m| m.get("nginx_vts_server_requests_total", &[("zone", "front")]) == Some(22.0));
    let text = nginx.scrape_text();

    assert_promtool_clean(&text);
    let m = Metrics::parse(&text).unwrap();
    for (family, ty) in &UPSTREAM_FAMILIES {
        assert_family(&m, family, ty);
    }
    // HELP/TYPE once each and before the samples, in the text itself.
    for (family, _) in &UPSTREAM_FAMILIES {
        let type_line = format!("# TYPE {} ", family);
        assert_eq!(text.matches(&type_line).count(), 1, "{}", type_line);
        let first_sample = text
            .lines()
            .position(|l| {
                l.starts_with(&format!("{}{{", family)) || l.starts_with(&format!("{}_bucket{{", family))
            })
            .unwrap_or_else(|| panic!("no sample of {}", family));
        let type_at = text.lines().position(|l| l.starts_with(&type_line)).unwrap();
        assert!(type_at < first_sample, "{}: TYPE after samples", family);
    }

    let p = nginx.ports.clone();
    let (a, b, c) = (addr(p[1]), addr(p[2]), addr(p[3]));
    let all = rows(&m);
    assert_eq!(
        attempts_in(&m, "pool").values().sum::<u64>(),
        10,
        "{:?}",
        attempts_in(&m, "pool")
    );
    assert!(
        all.contains(&key(NOGROUPS, &a)) && all.contains(&key(NOGROUPS, &b)),
        "{:?}",
        all
    );
    assert_eq!(gauge(&m, "weight", "pool", &a), 2.0);
    assert_eq!(gauge(&m, "max_fails", "pool", &b), 3.0);
    assert_eq!(gauge(&m, "fail_timeout_seconds", "pool", &b), 5.0);
    assert_eq!(gauge(&m, "backup", "pool", &c), 1.0);
    // Gauges: one per configured peer (every row but the variable proxy_pass), nothing else.
    let configured: BTreeSet<Key> = all.iter().filter(|k| **k != key(NOGROUPS, &b)).cloned().collect();
    for (family, _) in &UPSTREAM_FAMILIES[5..10] {
        let gauge_rows: BTreeSet<Key> = m
            .find(family, &[])
            .into_iter()
            .map(|(l, _)| key(label(l, "upstream"), label(l, "server")))
            .collect();
        assert_eq!(gauge_rows, configured, "rows of {}", family);
    }
    check_row_shapes(&m);
}

/// (10) A peer marked `down` is listed with up=0 (with and without a `zone`) and gets no
/// traffic; the configured weight, max_fails, fail_timeout and backup are exported as gauges.
#[test]
fn down_peer_is_listed_with_up_0_and_gets_no_traffic() {
    let nginx = Nginx::start_with(2, 4, |p| {
        format!(
            "{pre}upstream gauges {{\n    zone gauges 64k;\n    server {a} weight=3 max_fails=5 fail_timeout=7s;\n    server {b} down;\n    server {c} backup max_fails=0 fail_timeout=1s;\n}}\n\
             upstream plain {{\n    server {a};\n    server {b} down;\n}}\n{front}{ba}{bb}{bc}",
            pre = preamble(true),
            a = addr(p[1]),
            b = addr(p[2]),
            c = addr(p[3]),
            front = front(
                p[0],
                "    location /gauges/ { proxy_pass http://gauges; }\n    location /plain/ { proxy_pass http://plain; }\n"
            ),
            ba = backend(p[1], "be_a", 200),
            bb = backend(p[2], "be_b", 200),
            bc = backend(p[3], "be_c", 200),
        )
    });
    let p = nginx.ports.clone();
    let (a, b, c) = (addr(p[1]), addr(p[2]), addr(p[3]));

    let m = nginx.scrape();
    let g = |m: &Metrics, which: &str, grp: &str, s: &str| gauge(m, which, grp, s);
    for (s, weight, max_fails, fail_timeout, backup, upv) in [
        (&a, 3.0, 5.0, 7.0, 0.0, 1.0),
        (&b, 1.0, 1.0, 10.0, 0.0, 0.0),
        (&c, 1.0, 0.0, 1.0, 1.0, 1.0),
    ] {
        assert_eq!(
            (
                g(&m, "weight", "gauges", s),
                g(&m, "max_fails", "gauges", s),
                g(&m, "fail_timeout_seconds", "gauges", s),
                g(&m, "backup", "gauges", s),
                g(&m, "up", "gauges", s)
            ),
            (weight, max_fails, fail_timeout, backup, upv),
            "gauges of {} (weight, max_fails, fail_timeout, backup, up)",
            s
        );
        assert_eq!(observed(&m, "gauges", s), Some(PeerTotals::default()), "{}", s);
    }
    assert_eq!((up(&m, "plain", &a), up(&m, "plain", &b)), (1.0, 0.0));
    assert_eq!(observed(&m, "plain", &b), Some(PeerTotals::default()));

    let n = 12;
    let mut traffic = reqs("gauges", n, 200);
    traffic.extend(reqs("plain", n, 200));
    send(nginx.port(), &traffic, 2);
    let log = wait_logged(&nginx, 2 * n);
    let exp = expected_from(&log, |uri| {
        if uri.starts_with("/gauges/") {
            "gauges"
        } else {
            "plain"
        }
    });
    assert_eq!(
        exp.keys().cloned().collect::<BTreeSet<_>>(),
        BTreeSet::from([key("gauges", &a), key("plain", &a)]),
        "peers with attempts"
    );
    let mut want = exp.clone();
    for k in [key("gauges", &b), key("gauges", &c), key("plain", &b)] {
        want.insert(k, PeerTotals::default());
    }
    let m = assert_peers(&nginx, &want);
    assert_eq!(attempts_in(&m, "gauges")[&a], n as u64);
    assert_eq!(attempts_in(&m, "plain")[&a], n as u64);
    assert_eq!((up(&m, "gauges", &b), up(&m, "plain", &b)), (0.0, 0.0));
    assert_eq!(zone(&m, "be_b").0, 0, "the down peer's backend got requests");
    assert_eq!(zone(&m, "be_c").0, 0, "the backup got requests");
    check_row_shapes(&m);
}

/// A request that moves on to a second upstream (`error_page 502 = @fallback`) counts each
/// attempt under its own upstream, not the separator nginx puts between them; "no live
/// upstreams" is counted under `::none`, not as a peer named after the upstream.
#[test]
fn attempts_of_a_requests_two_upstreams_each_count_under_their_own() {
    let dead = [ClosedPort::new(), ClosedPort::new()];
    let closed = [dead[0].port(), dead[1].port()];
    let nginx = Nginx::start_with(1, 2, |p| {
        format!(
            r#"vts_zone main 1m;
vts_upstream_stats on;
upstream first {{ server 127.0.0.1:{c0} max_fails=1 fail_timeout=30s; server 127.0.0.1:{c1} max_fails=1 fail_timeout=30s; }}
upstream second {{ server 127.0.0.1:{b}; }}
server {{
    listen 127.0.0.1:{f};
    server_name front.example;
    location / {{ proxy_pass http://first; error_page 502 = @fallback; }}
    location @fallback {{ proxy_pass http://second; }}
    location = /status {{ vts_status; }}
}}
server {{
    listen 127.0.0.1:{b};
    server_name backend.example;
    location / {{ return 200 "fallback\n"; }}
}}
"#,
            f = p[0],
            b = p[1],
            c0 = closed[0],
            c1 = closed[1],
        )
    });
    // 1st: both peers of `first` fail (two attempts), then `second` answers.
    // 2nd: `first` has no live peer (one attempt nginx names "first"), then `second` answers.
    for _ in 0..2 {
        let r = nginx.get("front.example", "/x");
        assert_eq!(r.status, 200, "{}", r.body_text());
    }
    let m = nginx.scrape_until(|m| {
        m.get(
            "nginx_vts_upstream_requests_total",
            &[("upstream", "second"), ("server", &addr(nginx.ports[1]))],
        ) == Some(2.0)
    });
    let attempts = |g: &str, s: &str| {
        m.get(
            "nginx_vts_upstream_requests_total",
            &[("upstream", g), ("server", s)],
        )
    };
    assert_eq!(attempts("second", &addr(nginx.ports[1])), Some(2.0));
    assert_eq!(attempts("first", &addr(closed[0])), Some(1.0));
    assert_eq!(attempts("first", &addr(closed[1])), Some(1.0));
    assert_eq!(
        attempts("first", "::none"),
        Some(1.0),
        "no live upstreams: {:?}",
        m.find("nginx_vts_upstream_requests_total", &[])
    );
    let five = |g: &str, s: &str| {
        m.get(
            "nginx_vts_upstream_responses_total",
            &[("upstream", g), ("server", s), ("status", "5xx")],
        )
    };
    assert_eq!(five("first", "::none"), Some(1.0));
    assert_eq!(five("first", &addr(closed[0])), Some(1.0));
    // Nothing else: no attempt of `first` under `second`, no separator, no peer named "first".
    let servers: BTreeSet<String> = m.label_values("nginx_vts_upstream_requests_total", "server");
    let want: BTreeSet<String> = [
        addr(closed[0]),
        addr(closed[1]),
        addr(nginx.ports[1]),
        "::none".to_string(),
    ]
    .into_iter()
    .collect();
    assert_eq!(servers, want);
    assert_eq!(
        m.find("nginx_vts_upstream_requests_total", &[("upstream", "second")])
            .len(),
        1
    );
}

/// A scratch directory for unix sockets (a short path: `sun_path` holds 107 bytes), removed on
/// drop. Declare it before the Nginx that listens there.
struct SockDir(PathBuf);

impl SockDir {
    fn new() -> SockDir {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let dir = std::env::temp_dir().join(format!("vtsu-{}-{}", std::process::id(), nanos % 1_000_000));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("create socket dir");
        SockDir(dir)
    }
}

impl Drop for SockDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Whether this machine has an IPv6 loopback to listen on.
fn ipv6_loopback() -> bool {
    std::net::TcpListener::bind("[::1]:0").is_ok()
}

/// (11) Peers named the way nginx names them: `[::1]:PORT` (in an upstream block, and as a
/// `::nogroups` proxy_pass, literal and through a variable: one row) and `unix:/path` (in the
/// upstream block one name short enough for the worker's peer cache and one longer than it; the
/// short one also as a literal `::nogroups` proxy_pass). Every configured peer is listed with
/// zeros from the start under exactly that label; after traffic each has exactly its share of the round robin, and the
/// attempts, status classes and bytes of nginx's access log; each backend's own server zone
/// saw exactly those attempts; the directory holds one key per zone and per peer.
///
/// Without an IPv6 loopback on the machine the `[::1]` peers are left out (said on stderr).
#[test]
fn ipv6_and_unix_socket_peers_are_labelled_as_nginx_names_them() {
    let v6 = ipv6_loopback();
    if !v6 {
        eprintln!("no IPv6 loopback ([::1] cannot be bound): testing only the unix: peers");
    }
    let dir = SockDir::new();
    let short = dir.0.join("s.sock");
    // "unix:" + path longer than the peer cache's 64-byte names, within sun_path.
    let base = dir.0.join("l").display().to_string();
    let long = PathBuf::from(format!(
        "{}{}.sock",
        base,
        "o".repeat(90usize.saturating_sub(base.len()))
    ));
    assert!(
        format!("unix:{}", long.display()).len() > 64 && long.as_os_str().len() < 107,
        "socket path {} does not fit the test (temp dir too long?)",
        long.display()
    );
    let (short_peer, long_peer) = (
        format!("unix:{}", short.display()),
        format!("unix:{}", long.display()),
    );
    let nginx = Nginx::start_with(2, 2, |p| {
        // A start that lost a port race leaves its socket files behind: nginx would then fail
        // to bind them on the next attempt.
        let _ = fs::remove_file(&short);
        let _ = fs::remove_file(&long);
        let v6_peer = format!("[::1]:{}", p[1]);
        let (v6_server, v6_location, v6_backend) = if v6 {
            (
                format!("    server {};\n", v6_peer),
                format!(
                    "    location /v6/ {{ proxy_pass http://{v}; }}\n    location /v6var/ {{ set $b \"{v}\"; proxy_pass http://$b; }}\n",
                    v = v6_peer
                ),
                backend_at(&v6_peer, "be_v6", 200),
            )
        } else {
            Default::default()
        };
        format!(
            "{pre}upstream mixed {{\n    zone mixed 64k;\n{v6_server}    server {short_peer};\n    server {long_peer};\n}}\n{front}{v6_backend}{bs}{bl}",
            pre = preamble(true),
            front = front(
                p[0],
                &format!(
                    "    location /mixed/ {{ proxy_pass http://mixed; }}\n    location /sock/ {{ proxy_pass http://{short_peer}:/sock/; }}\n{v6_location}"
                )
            ),
            bs = backend_at(&short_peer, "be_short", 200),
            bl = backend_at(&long_peer, "be_long", 200),
        )
    });
    let v6_peer = format!("[::1]:{}", nginx.ports[1]);
    let group_of = |uri: &str| {
        if uri.starts_with("/mixed/") {
            "mixed"
        } else {
            NOGROUPS
        }
    };

    // Before traffic: every configured peer, under exactly nginx's name, with zeros.
    let mut peers = vec![short_peer.clone(), long_peer.clone()];
    let mut listed = BTreeSet::from([
        key("mixed", &short_peer),
        key("mixed", &long_peer),
        key(NOGROUPS, &short_peer),
    ]);
    if v6 {
        peers.insert(0, v6_peer.clone());
        listed.insert(key("mixed", &v6_peer));
        listed.insert(key(NOGROUPS, &v6_peer));
    }
    let m = nginx.scrape();
    assert_eq!(rows(&m), listed, "rows before traffic");
    for (g, s) in &listed {
        assert_eq!(
            observed(&m, g, s),
            Some(PeerTotals::default()),
            "{} {} before traffic",
            g,
            s
        );
        assert_eq!(up(&m, g, s), 1.0, "{} {} up", g, s);
    }
    check_row_shapes(&m);

    // Traffic: n through the group (round robin over its peers); to the `::nogroups` peers:
    // k to the IPv6 address, kv to the same through a variable (the same row), ks to the
    // short socket.
    let n = 10 * peers.len();
    let (k, kv, ks) = if v6 { (7, 5, 6) } else { (0, 0, 6) };
    let mut traffic = Vec::new();
    let mut client_classes: BTreeMap<&str, [u64; 5]> = BTreeMap::new();
    for (group, prefix, count) in [
        ("mixed", "mixed", n),
        (NOGROUPS, "v6", k),
        (NOGROUPS, "v6var", kv),
        (NOGROUPS, "sock", ks),
    ] {
        for i in 0..count {
            let (path, status) = match i % 4 {
                2 => (format!("/{}/missing/{}", prefix, i), 404),
                3 => (format!("/{}/moved/{}", prefix, i), 301),
                _ => (format!("/{}/{}?pad={}", prefix, i, "y".repeat(i * 13 % 61)), 200),
            };
            client_classes.entry(group).or_default()[(status / 100 - 1) as usize] += 1;
            traffic.push((path, status));
        }
    }
    traffic.sort_by_key(|(path, _)| path.len() * 5 % 11);
    send(nginx.port(), &traffic, 2);

    let log = wait_logged(&nginx, n + k + kv + ks);
    for l in &log {
        assert_eq!(l.attempts.len(), 1, "a retry where none was expected: {:?}", l);
    }
    let exp = expected_from(&log, group_of);
    // nginx's own names for the peers are exactly the labels expected.
    assert_eq!(
        exp.keys().cloned().collect::<BTreeSet<_>>(),
        listed,
        "peers in nginx's access log"
    );
    for s in &peers {
        assert_eq!(exp[&key("mixed", s)].attempts, 10, "{}: {:?}", s, exp);
    }
    let m = assert_peers(&nginx, &exp);
    assert_eq!(rows(&m), listed, "rows after traffic");
    assert_eq!(
        attempts_in(&m, "mixed"),
        peers.iter().map(|s| (s.clone(), 10)).collect::<BTreeMap<_, _>>()
    );
    let mut want_nogroups = BTreeMap::from([(short_peer.clone(), ks as u64)]);
    if v6 {
        want_nogroups.insert(v6_peer.clone(), (k + kv) as u64);
    }
    assert_eq!(attempts_in(&m, NOGROUPS), want_nogroups);
    for (group, classes) in &client_classes {
        let mut sum = [0u64; 5];
        for ((g, _), t) in &exp {
            if g == group {
                for (total, c) in sum.iter_mut().zip(t.classes) {
                    *total += c;
                }
            }
        }
        assert_eq!(
            &sum, classes,
            "status classes of group {:?} vs the clients",
            group
        );
    }
    // The backends' own zones (the IPv6 one serves both rows of its address).
    let mut backends = vec![(short_peer.as_str(), "be_short"), (long_peer.as_str(), "be_long")];
    if v6 {
        backends.push((v6_peer.as_str(), "be_v6"));
    }
    let m = settle_backends(&nginx, &backends);
    for (s, z) in &backends {
        let (mut att, mut out, mut inn) = (0, 0, 0);
        for (g, _) in listed.iter().filter(|(_, srv)| srv == s) {
            let o = observed(&m, g, s).unwrap();
            att += o.attempts;
            out += o.bytes_out;
            inn += o.bytes_in;
        }
        let (req, zin, zout, _) = zone(&m, z);
        assert_eq!((att, out, inn), (req, zin, zout), "peer {} vs zone {}", s, z);
        assert!(req > 0, "zone {} got no request", z);
    }
    for (g, s) in &listed {
        assert_eq!(up(&m, g, s), 1.0, "{} {} up after traffic", g, s);
    }
    check_row_shapes(&m);
    // One key per server zone and per peer, and the overflow entries: nothing else.
    let zones = configured_zones(&nginx);
    assert_eq!(m.label_values("nginx_vts_server_requests_total", "zone"), zones);
    assert_eq!(
        used_keys(&m),
        zones.len() + listed.len() + OVERFLOW_KEYS,
        "keys: zones {:?}, peers {:?}",
        zones,
        listed
    );
}
