//! The JSON document of nginx-module-vts (reference section 2), served by a
//! `vhost_traffic_status_display` location, against the real nginx with the module.
//!
//! Every test starts nginx with 2 workers and a configuration written for the C module, sends
//! a fixed sequence of requests (one connection each, `Connection: close`, so nginx has logged
//! a request before the client sees the end of its response), then reads the document and
//! asserts the values that follow from that traffic: counters, bytes (the exact bytes the
//! client wrote and read: `$request_length` and `$bytes_sent`), status classes and codes, the
//! 63-entry time queues, the sum entry, the upstream peers, averages and histograms.
//!
//! Every expectation is a literal here, each checked against the C module:
//! `NGX_VTS_MODULE=/path/to/ngx_http_vhost_traffic_status_module.so cargo test --release
//! --test vozlt_json` passes, except `invalid_utf8_server_name_keeps_the_document_valid`
//! (the C module writes the raw byte: invalid JSON, reference 11 #6), which skips itself there.
//! The C module lists zones in its tree order and ngx_vts sorts them by name, so zones are
//! compared as sets; the key order inside every object is exact.

mod common;

use common::json::*;
use common::*;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------------------------
// Traffic and what it should add up to
// ---------------------------------------------------------------------------------------------

/// What a set of counted requests adds to a server object (or a peer's serving attempts).
#[derive(Debug, Default, Clone)]
struct Tally {
    requests: u64,
    in_bytes: u64,
    out_bytes: u64,
    classes: [u64; 5],
    codes: BTreeMap<u16, u64>,
}

impl Tally {
    fn add(&mut self, status: u16, r: &Response) {
        self.requests += 1;
        self.in_bytes += r.bytes_written;
        self.out_bytes += r.bytes_read;
        self.classes[class_index(status)] += 1;
        *self.codes.entry(status).or_default() += 1;
    }

    fn code(&self, c: u16) -> u64 {
        self.codes.get(&c).copied().unwrap_or(0)
    }
}

/// Reference 0.5 step 5: < 200 → 1xx (also 0), ..., ≥ 500 → 5xx (also ≥ 600).
/// Per (group, peer port).
type PeerMap<T> = BTreeMap<(&'static str, u16), T>;

fn class_index(status: u16) -> usize {
    match status {
        0..=199 => 0,
        200..=299 => 1,
        300..=399 => 2,
        400..=499 => 3,
        _ => 4,
    }
}

/// One request of a test's traffic: its Host, path and expected status.
struct Req {
    host: String,
    path: String,
    status: u16,
}

fn req(host: &str, path: &str, status: u16) -> Req {
    Req {
        host: host.to_string(),
        path: path.to_string(),
        status,
    }
}

/// Sends `r` (with an `X-Pad` header whose length varies with `i`, so that request sizes
/// differ) and asserts its status. Status 444 closes the connection without a response: then
/// the returned Response has status 444, no bytes read.
fn send(port: u16, i: usize, r: &Req) -> Response {
    let pad = "p".repeat(i % 37 + 1);
    if r.status == 444 {
        let path = r.path.clone();
        let e = try_http_request(port, "GET", &path, &r.host, &[("X-Pad", &pad)], b"")
            .expect_err("return 444 closes the connection without an answer");
        assert!(e.contains("no end of headers"), "GET {} (444): {}", r.path, e);
        let req_len = format!(
            "GET {} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nX-Pad: {}\r\n\r\n",
            r.path, r.host, pad
        )
        .len() as u64;
        return Response {
            status: 444,
            headers: Vec::new(),
            body: Vec::new(),
            bytes_written: req_len,
            bytes_read: 0,
        };
    }
    let resp = http_request(port, "GET", &r.path, &r.host, &[("X-Pad", &pad)], b"");
    assert_eq!(
        resp.status,
        r.status,
        "GET {} (Host {}): {}",
        r.path,
        r.host,
        resp.body_text()
    );
    resp
}

/// Sends every request in order on its own connection; returns the responses.
fn send_all(port: u16, reqs: &[Req]) -> Vec<Response> {
    reqs.iter().enumerate().map(|(i, r)| send(port, i, r)).collect()
}

/// Fetches the document at `path` until the sum entry counts `traffic` requests plus this
/// loop's earlier fetches (each a request of the display location's server zone, counted
/// after its document was rendered). Returns the document and the earlier fetches.
fn settle(port: u16, host: &str, path: &str, sum_key: &str, traffic: u64) -> (Doc, Vec<Response>) {
    let deadline = Instant::now() + SETTLE_TIMEOUT;
    let mut earlier = Vec::new();
    loop {
        let d = get_doc(port, host, path);
        let n = d
            .server_zones()
            .get(sum_key)
            .and_then(|s| s["requestCounter"].as_u64());
        if n == Some(traffic + earlier.len() as u64) || Instant::now() >= deadline {
            return (d, earlier);
        }
        earlier.push(d.response.clone());
        thread::sleep(Duration::from_millis(25));
    }
}

/// Asserts a server object's counters against `t`: requestCounter, bytes, classes, the cache
/// counters (0: no cache here), overCounts (0, and maxIntegerSize).
fn assert_counts(z: &Value, t: &Tally, what: &str) {
    assert_eq!(num(z, "/requestCounter"), t.requests, "{} requestCounter", what);
    assert_eq!(
        num(z, "/inBytes"),
        t.in_bytes,
        "{} inBytes (Σ bytes the client sent)",
        what
    );
    assert_eq!(
        num(z, "/outBytes"),
        t.out_bytes,
        "{} outBytes (Σ bytes the client read)",
        what
    );
    for (i, c) in CLASSES.iter().enumerate() {
        assert_eq!(
            num(z, &format!("/responses/{}", c)),
            t.classes[i],
            "{} responses.{}",
            what,
            c
        );
    }
    if z["responses"].get("miss").is_some() {
        for c in CACHE_KEYS {
            assert_eq!(
                num(z, &format!("/responses/{}", c)),
                0,
                "{} responses.{}",
                what,
                c
            );
        }
    }
    assert_no_overflow(z, what);
}

fn assert_no_overflow(z: &Value, what: &str) {
    let over = obj(z, "overCounts");
    for (k, v) in over {
        let want = if k == "maxIntegerSize" {
            MAX_INTEGER_SIZE
        } else {
            0
        };
        assert_eq!(v.as_u64(), Some(want), "{} overCounts.{}", what, k);
    }
}

/// `statusCodes` of a server object with `measure_status_codes 200 404 500`.
fn assert_listed_codes(z: &Value, t: &Tally, what: &str) {
    let other = t.requests - t.code(200) - t.code(404) - t.code(500);
    let want =
        serde_json::json!({"other": other, "200": t.code(200), "404": t.code(404), "500": t.code(500)});
    assert_eq!(z["statusCodes"], want, "{} statusCodes", what);
    assert_eq!(
        keys(&z["statusCodes"]),
        ["other", "200", "404", "500"],
        "{} statusCodes key order",
        what
    );
}

/// requestMsec (and responseMsec for a peer) is the average of the object's own queue with
/// the display location's method and period (reference 0.8).
fn assert_averages(v: &Value, method: Method, period: u64, now: u64, what: &str) {
    for (avg, q) in [("requestMsec", "requestMsecs"), ("responseMsec", "responseMsecs")] {
        if v.get(avg).is_none() {
            continue;
        }
        let want = average(&queue(v, q), method, period, now);
        assert_eq!(
            num(v, &format!("/{}", avg)),
            want,
            "{} {} ({:?} {} ms over {:?})",
            what,
            avg,
            method,
            period,
            queue(v, q)
        );
    }
}

/// The sum entry's queue is the merge of the zones' queues (newest 63 within the period) and
/// its requestMsec the average of that merge.
fn assert_sum_queue(doc: &Doc, sum_key: &str, method: Method, period: u64) {
    let zones: Vec<&Value> = doc
        .server_zones()
        .iter()
        .filter(|(k, _)| *k != sum_key)
        .map(|(_, v)| v)
        .collect();
    let sum = doc.zone(sum_key);
    let got = queue(sum, "requestMsecs");
    assert_eq!(got.len(), QUEUE_LEN, "sum entry queue length");
    let now = doc.now_msec();
    assert_eq!(
        sorted_within_equal_times(got.clone()),
        merged_queue(&zones, period, now),
        "sum entry requestMsecs: the newest 63 entries of all zones, oldest first"
    );
    let real: Vec<u64> = got.iter().map(|e| e.0).filter(|&t| t != 0).collect();
    assert!(
        real.windows(2).all(|w| w[0] <= w[1]),
        "sum entry times are oldest first: {:?}",
        real
    );
    assert_eq!(
        num(sum, "/requestMsec"),
        average(&got, method, period, now),
        "sum entry requestMsec"
    );
}

/// The sum entry adds up the zones: counters, bytes, classes, cache counters, request time,
/// overCounts, and statusCodes slot by slot (when present).
fn assert_sum_adds_up(doc: &Doc, sum_key: &str) {
    let sum = doc.zone(sum_key);
    let zones: Vec<&Value> = doc
        .server_zones()
        .iter()
        .filter(|(k, _)| *k != sum_key)
        .map(|(_, v)| v)
        .collect();
    let mut ptrs: Vec<String> = vec![
        "/requestCounter".into(),
        "/inBytes".into(),
        "/outBytes".into(),
        "/requestMsecCounter".into(),
    ];
    ptrs.extend(server_response_keys().iter().map(|k| format!("/responses/{}", k)));
    ptrs.extend(
        server_over_keys()
            .iter()
            .filter(|k| **k != "maxIntegerSize")
            .map(|k| format!("/overCounts/{}", k)),
    );
    if let Some(codes) = sum.get("statusCodes") {
        ptrs.extend(keys(codes).iter().map(|k| format!("/statusCodes/{}", k)));
    }
    for p in ptrs {
        let total: u64 = zones
            .iter()
            .map(|z| z.pointer(&p).and_then(Value::as_u64).unwrap_or(0))
            .sum();
        assert_eq!(num(sum, &p), total, "sum entry {} = Σ of the zones", p);
    }
    assert_eq!(
        sum["requestBuckets"],
        serde_json::json!({"msecs": [], "counters": []}),
        "the sum entry has no histogram"
    );
}

/// Host name as nginx knows it: gethostname(), lower-cased.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .expect("read /proc/sys/kernel/hostname")
        .trim()
        .to_ascii_lowercase()
}

fn addr(port: u16) -> String {
    format!("127.0.0.1:{}", port)
}

// ---------------------------------------------------------------------------------------------
// The main scenario: a configuration written for the C module and a fixed request mix
// ---------------------------------------------------------------------------------------------

/// Ports: [0] the front servers, [1] b1, [2] b2, [3] b3 (a backup, never used), [4] b5 (the
/// target of a `proxy_pass` to host:port without upstream block: `::nogroups`).
fn main_conf(p: &[u16], dead: u16) -> String {
    format!(
        r#"vhost_traffic_status_zone;
vhost_traffic_status_measure_status_codes 200 404 500;

upstream backend {{
    zone backend 64k;
    server 127.0.0.1:{dead} max_fails=0;
    server 127.0.0.1:{b1} weight=3 max_fails=2 fail_timeout=7s;
    server 127.0.0.1:{b2};
    server 127.0.0.1:{b3} backup;
}}

upstream plain {{
    server 127.0.0.1:{b1} weight=5 max_fails=4 fail_timeout=9s;
    server 127.0.0.1:{dead} down;
    server 127.0.0.1:{b3} backup;
}}

server {{
    listen 127.0.0.1:{p0};
    server_name Example.ORG www.example.org;
    add_header X-Up $upstream_addr always;

    location / {{ return 200 "hello\n"; }}
    location /nf {{ return 404; }}
    location /err {{ return 500; }}
    location /moved {{ return 302 /elsewhere; }}
    location /up/ {{ proxy_pass http://backend; }}
    location /plain/ {{ proxy_pass http://plain; }}
    location /direct/ {{ proxy_pass http://127.0.0.1:{b5}; }}
    location = /status {{ vhost_traffic_status_display; }}
}}

server {{
    listen 127.0.0.1:{p0};
    server_name .dot.org;
    location / {{ return 200 "dot\n"; }}
}}

server {{
    listen 127.0.0.1:{p0} default_server;
    location / {{ return 200 "noname\n"; }}
    location /missing {{ return 404; }}
}}

server {{
    listen 127.0.0.1:{p0};
    server_name *.wild.test;
    location / {{ return 200 "wild\n"; }}
}}

server {{
    listen 127.0.0.1:{p0};
    server_name ~^re\d+\.test$;
    location / {{ return 200 "re\n"; }}
}}

server {{ listen 127.0.0.1:{b1}; vhost_traffic_status off; location / {{ return 200 "b1\n"; }} }}
server {{ listen 127.0.0.1:{b2}; vhost_traffic_status off; location / {{ return 200 "b2\n"; }} }}
server {{ listen 127.0.0.1:{b3}; vhost_traffic_status off; location / {{ return 200 "b3\n"; }} }}
server {{ listen 127.0.0.1:{b5}; vhost_traffic_status off; location / {{ return 200 "b5\n"; }} }}
"#,
        p0 = p[0],
        b1 = p[1],
        b2 = p[2],
        b3 = p[3],
        b5 = p[4],
    )
}

const EXAMPLE: &str = "example.org";
const DOT: &str = "dot.org";
const NONAME: &str = "_";
const WILD: &str = "*.wild.test";
const REGEX: &str = r"~^re\d+\.test$";

/// One request of the main mix: the zone that counts it, the request, and the peers nginx
/// tried (`$upstream_addr`, checked in the X-Up header).
struct MainReq {
    zone: &'static str,
    req: Req,
    upstream: Vec<u16>,
}

/// The main mix, in sending order. `backend` has a shared zone, so its smooth weighted
/// round robin (dead 1, b1 3, b2 1; dead never excluded with max_fails=0) runs the same for
/// sequential requests whichever worker takes them: b1, dead+b1, b2, b1, b1, b1, b2, dead+b1,
/// b1, b1.
fn main_mix(p: &[u16], dead: u16) -> Vec<MainReq> {
    let (b1, b2, b5) = (p[1], p[2], p[4]);
    let mut v = Vec::new();
    let mut add = |zone: &'static str, host: &str, path: &str, status: u16, upstream: Vec<u16>| {
        v.push(MainReq {
            zone,
            req: req(host, path, status),
            upstream,
        })
    };
    let port_host = format!("Example.Org:{}", p[0]);
    for i in 0..45 {
        let host = ["example.org", "www.example.org", port_host.as_str()][i % 3];
        add(EXAMPLE, host, &format!("/?n={}", i), 200, vec![]);
    }
    for _ in 0..3 {
        add(EXAMPLE, "example.org", "/nf", 404, vec![]);
    }
    for _ in 0..2 {
        add(EXAMPLE, "www.example.org", "/err", 500, vec![]);
    }
    add(EXAMPLE, "example.org", "/moved", 302, vec![]);
    let rr: [&[u16]; 10] = [
        &[b1],
        &[dead, b1],
        &[b2],
        &[b1],
        &[b1],
        &[b1],
        &[b2],
        &[dead, b1],
        &[b1],
        &[b1],
    ];
    for (i, ups) in rr.iter().enumerate() {
        add(EXAMPLE, "example.org", &format!("/up/{}", i), 200, ups.to_vec());
    }
    for i in 0..3 {
        add(
            EXAMPLE,
            "example.org",
            &format!("/plain/{}", "x".repeat(i + 1)),
            200,
            vec![b1],
        );
    }
    for i in 0..4 {
        add(EXAMPLE, "example.org", &format!("/direct/{}", i), 200, vec![b5]);
    }
    add(DOT, "dot.org", "/", 200, vec![]);
    add(DOT, "www.dot.org", "/a", 200, vec![]);
    add(DOT, "dot.org", "/b", 200, vec![]);
    add(NONAME, "unknown.test", "/", 200, vec![]);
    add(NONAME, "unknown.test", "/missing", 404, vec![]);
    add(NONAME, "other.unknown.test", "/x", 200, vec![]);
    add(WILD, "a.wild.test", "/", 200, vec![]);
    add(WILD, "b.wild.test", "/", 200, vec![]);
    add(REGEX, "re42.test", "/", 200, vec![]);
    v
}

struct MainRun {
    nginx: Nginx,
    _dead: ClosedPort,
    dead: u16,
    started: (u64, u64),
    traffic_from: u64,
    mix: Vec<MainReq>,
    responses: Vec<Response>,
    doc: Doc,
    /// The earlier fetches of the display location (counted in example.org).
    fetches: Vec<Response>,
    fetched: (u64, u64),
}

/// Starts nginx with the main configuration, sends the main mix, reads the document.
fn main_run() -> MainRun {
    let dead_port = ClosedPort::new();
    let dead = dead_port.port();
    let before_start = now_ms();
    let nginx = Nginx::start_with(2, 5, |p| main_conf(p, dead));
    let after_start = now_ms();
    let p = nginx.ports.clone();
    let mix = main_mix(&p, dead);
    let traffic_from = now_ms();
    let mut responses = Vec::new();
    for (i, m) in mix.iter().enumerate() {
        let r = send(p[0], i, &m.req);
        let want: Vec<String> = m.upstream.iter().map(|&u| addr(u)).collect();
        assert_eq!(
            r.header("x-up").map(str::to_string),
            (!want.is_empty()).then(|| want.join(", ")),
            "peers tried for GET {} ($upstream_addr)",
            m.req.path
        );
        if let Some(&last) = m.upstream.last() {
            let body = if last == p[1] {
                "b1\n"
            } else if last == p[2] {
                "b2\n"
            } else {
                "b5\n"
            };
            assert_eq!(r.body_text(), body, "GET {}", m.req.path);
        }
        responses.push(r);
    }
    let before_fetch = now_ms();
    let (doc, fetches) = settle(p[0], "example.org", "/status", DEFAULT_SUM_KEY, mix.len() as u64);
    let after_fetch = now_ms();
    MainRun {
        nginx,
        _dead: dead_port,
        dead,
        started: (before_start, after_start),
        traffic_from,
        mix,
        responses,
        doc,
        fetches,
        fetched: (before_fetch, after_fetch),
    }
}

impl MainRun {
    /// Expected tallies per server zone (the display location's earlier fetches included).
    fn zone_tallies(&self) -> BTreeMap<&'static str, Tally> {
        let mut t: BTreeMap<&'static str, Tally> = BTreeMap::new();
        for (m, r) in self.mix.iter().zip(&self.responses) {
            t.entry(m.zone).or_default().add(m.req.status, r);
        }
        for f in &self.fetches {
            t.entry(EXAMPLE).or_default().add(200, f);
        }
        t
    }

    /// Expected serving-attempt tallies per peer port, and passed-on attempts per peer port.
    fn peer_tallies(&self) -> (PeerMap<Tally>, PeerMap<u64>) {
        let mut served: BTreeMap<(&'static str, u16), Tally> = BTreeMap::new();
        let mut passed: BTreeMap<(&'static str, u16), u64> = BTreeMap::new();
        for (m, r) in self.mix.iter().zip(&self.responses) {
            let group = if m.req.path.starts_with("/up/") {
                "backend"
            } else if m.req.path.starts_with("/plain/") {
                "plain"
            } else if m.req.path.starts_with("/direct/") {
                "::nogroups"
            } else {
                continue;
            };
            let (last, before) = m.upstream.split_last().unwrap();
            served.entry((group, *last)).or_default().add(m.req.status, r);
            for &b in before {
                *passed.entry((group, b)).or_default() += 1;
            }
        }
        (served, passed)
    }
}

#[test]
fn c_configuration_document_values_are_exact() {
    let run = main_run();
    let doc = &run.doc;
    let p = &run.nginx.ports;
    let (b1, b2, b3, b5, dead) = (p[1], p[2], p[3], p[4], run.dead);
    let (from, to) = (run.traffic_from, run.fetched.1);

    // Top level.
    assert_eq!(doc.value["hostName"], host_name().as_str(), "hostName");
    assert_eq!(doc.value["moduleVersion"], MODULE_VERSION);
    assert_eq!(doc.value["nginxVersion"], NGINX_VERSION);
    let load = num(&doc.value, "/loadMsec");
    assert!(
        load >= run.started.0 && load <= run.started.1,
        "loadMsec {} within the start of nginx [{}, {}]",
        load,
        run.started.0,
        run.started.1
    );
    let now = doc.now_msec();
    assert!(
        now >= run.fetched.0 && now <= run.fetched.1,
        "nowMsec {} within the fetch [{}, {}]",
        now,
        run.fetched.0,
        run.fetched.1
    );

    // connections: every request had its own connection, every served upstream attempt was a
    // connection to a backend server of this nginx (the refused ones never arrived); only the
    // status request itself is open.
    let served_attempts = run.mix.iter().filter(|m| !m.upstream.is_empty()).count() as u64;
    let conns = run.mix.len() as u64 + run.fetches.len() as u64 + 1 + served_attempts;
    let c = &doc.value["connections"];
    assert_eq!(
        c,
        &serde_json::json!({"active": 1, "reading": 0, "writing": 1, "waiting": 0,
            "accepted": conns, "handled": conns, "requests": conns}),
        "connections"
    );

    // sharedZones: the default zone. Nodes: 5 server zones, backend dead/b1/b2, plain b1,
    // ::nogroups b5 (idle configured peers have no node).
    let sz = &doc.value["sharedZones"];
    assert_eq!(sz["name"], DEFAULT_ZONE_NAME);
    assert_eq!(num(sz, "/maxSize"), DEFAULT_ZONE_SIZE);
    assert_eq!(num(sz, "/usedNode"), 10, "sharedZones.usedNode");
    let (used, free) = (num(sz, "/usedSize"), num(sz, "/freeSize"));
    assert!(
        used > 0 && used + free <= DEFAULT_ZONE_SIZE,
        "usedSize {} freeSize {}",
        used,
        free
    );

    // serverZones: the set of zones, the sum entry last.
    let names: BTreeSet<String> = doc.zone_names().into_iter().collect();
    let want: BTreeSet<String> = [EXAMPLE, DOT, NONAME, WILD, REGEX, DEFAULT_SUM_KEY]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(names, want, "serverZones members");
    assert_eq!(
        doc.zone_names().last().map(String::as_str),
        Some(DEFAULT_SUM_KEY),
        "the sum entry comes last"
    );

    let tallies = run.zone_tallies();
    // Literal totals of the mix, so that a wrong mix cannot pass unnoticed.
    let ex = &tallies[EXAMPLE];
    let fetches = run.fetches.len() as u64;
    assert_eq!(
        (
            ex.requests,
            ex.code(200),
            ex.code(404),
            ex.code(500),
            ex.code(302)
        ),
        (68 + fetches, 62 + fetches, 3, 2, 1)
    );
    assert_eq!(
        [DOT, NONAME, WILD, REGEX].map(|z| tallies[z].requests),
        [3, 3, 2, 1],
        "requests per zone"
    );
    for (zone, t) in &tallies {
        let z = doc.zone(zone);
        assert_counts(z, t, zone);
        assert_listed_codes(z, t, zone);
        let entries = (t.requests as usize).min(QUEUE_LEN);
        assert_queue(z, "requestMsecs", entries, from, to, zone);
        let msecs: Vec<u64> = queue(z, "requestMsecs").iter().map(|e| e.1).collect();
        if *zone == EXAMPLE {
            // More than 63 requests: the queue holds the newest 63; the dropped ones were
            // `return` requests of 0 ms, so the queue holds the whole request time.
            assert_eq!(
                num(z, "/requestMsecCounter"),
                msecs.iter().sum::<u64>(),
                "{} requestMsecCounter",
                zone
            );
        } else {
            // `return` answers in the event that read the request: 0 ms.
            assert_eq!(num(z, "/requestMsecCounter"), 0, "{} requestMsecCounter", zone);
            assert!(
                msecs.iter().all(|&m| m == 0),
                "{} msecs of return requests: {:?}",
                zone,
                msecs
            );
        }
        assert_eq!(
            z["requestBuckets"],
            serde_json::json!({"msecs": [], "counters": []}),
            "{}: no histogram configured",
            zone
        );
        assert_averages(z, Method::Amm, DEFAULT_PERIOD_MS, now, zone);
    }

    // The sum entry.
    let sum = doc.zone(DEFAULT_SUM_KEY);
    let mut all = Tally::default();
    for t in tallies.values() {
        all.requests += t.requests;
        all.in_bytes += t.in_bytes;
        all.out_bytes += t.out_bytes;
        for i in 0..5 {
            all.classes[i] += t.classes[i];
        }
        for (c, n) in &t.codes {
            *all.codes.entry(*c).or_default() += n;
        }
    }
    assert_eq!(all.requests, 77 + fetches, "requests of the whole mix");
    assert_counts(sum, &all, "sum entry");
    assert_listed_codes(sum, &all, "sum entry");
    assert_sum_adds_up(doc, DEFAULT_SUM_KEY);
    assert_queue(sum, "requestMsecs", QUEUE_LEN, from, to, "sum entry");
    assert_sum_queue(doc, DEFAULT_SUM_KEY, Method::Amm, DEFAULT_PERIOD_MS);

    // upstreamZones: the two groups and ::nogroups (compared as a set), peers in
    // configuration order.
    let groups: BTreeSet<String> = doc.upstream_zones().keys().cloned().collect();
    assert_eq!(
        groups,
        ["backend", "plain", "::nogroups"]
            .iter()
            .map(|s| s.to_string())
            .collect(),
        "upstreamZones groups"
    );
    let servers = |g: &str| -> Vec<String> {
        doc.peers(g)
            .iter()
            .map(|p| p["server"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        servers("backend"),
        [addr(dead), addr(b1), addr(b2), addr(b3)],
        "backend peers"
    );
    assert_eq!(servers("plain"), [addr(b1), addr(dead), addr(b3)], "plain peers");
    assert_eq!(servers("::nogroups"), [addr(b5)], "::nogroups peers");

    // Configured values: (weight, maxFails, failTimeout, backup, down).
    let conf = [
        ("backend", dead, (1, 0, 10, false, false)),
        ("backend", b1, (3, 2, 7, false, false)),
        ("backend", b2, (1, 1, 10, false, false)),
        ("backend", b3, (1, 1, 10, true, false)),
        ("plain", b1, (5, 4, 9, false, false)),
        ("plain", dead, (1, 1, 10, false, true)),
        ("plain", b3, (1, 1, 10, true, false)),
        ("::nogroups", b5, (0, 0, 0, false, false)),
    ];
    let (served, passed) = run.peer_tallies();
    // Literal per-peer attempts: (served, passed on).
    let attempts = |g: &'static str, port: u16| {
        (
            served.get(&(g, port)).map_or(0, |t| t.requests),
            passed.get(&(g, port)).copied().unwrap_or(0),
        )
    };
    assert_eq!(
        [
            attempts("backend", dead),
            attempts("backend", b1),
            attempts("backend", b2),
            attempts("backend", b3),
            attempts("plain", b1),
            attempts("plain", dead),
            attempts("::nogroups", b5)
        ],
        [(0, 2), (8, 0), (2, 0), (0, 0), (3, 0), (0, 0), (4, 0)],
        "attempts per peer"
    );
    for (g, port, (weight, max_fails, fail_timeout, backup, down)) in conf {
        let what = format!("{} peer {}", g, addr(port));
        let pv = doc.peer(g, &addr(port));
        assert_eq!(
            (
                num(pv, "/weight"),
                num(pv, "/maxFails"),
                num(pv, "/failTimeout"),
                pv["backup"].as_bool(),
                pv["down"].as_bool()
            ),
            (weight, max_fails, fail_timeout, Some(backup), Some(down)),
            "{}: weight, maxFails, failTimeout, backup, down",
            what
        );
        let s = served.get(&(g, port)).cloned().unwrap_or_default();
        let n_passed = passed.get(&(g, port)).copied().unwrap_or(0);
        assert_no_overflow(pv, &what);
        assert_eq!(
            pv["requestBuckets"],
            serde_json::json!({"msecs": [], "counters": []}),
            "{}",
            what
        );
        assert_eq!(
            pv["responseBuckets"],
            serde_json::json!({"msecs": [], "counters": []}),
            "{}",
            what
        );
        if s.requests + n_passed == 0 {
            // A configured peer without traffic has no node: zeros and empty arrays.
            assert_eq!(
                [
                    "/requestCounter",
                    "/inBytes",
                    "/outBytes",
                    "/requestMsecCounter",
                    "/requestMsec",
                    "/responseMsecCounter",
                    "/responseMsec"
                ]
                .map(|k| num(pv, k)),
                [0; 7],
                "{}: counters",
                what
            );
            assert_eq!(
                pv["responses"],
                serde_json::json!({"1xx":0,"2xx":0,"3xx":0,"4xx":0,"5xx":0}),
                "{}",
                what
            );
            for q in ["requestMsecs", "responseMsecs"] {
                assert_eq!(
                    pv[q],
                    serde_json::json!({"times": [], "msecs": []}),
                    "{} {}: empty",
                    what,
                    q
                );
            }
            continue;
        }
        // Served attempts: the client's status, bytes and request time. Passed-on attempts
        // (connection refused: 502): requestCounter and 5xx only, and a response time.
        assert_eq!(
            num(pv, "/requestCounter"),
            s.requests + n_passed,
            "{} requestCounter",
            what
        );
        assert_eq!(num(pv, "/inBytes"), s.in_bytes, "{} inBytes", what);
        assert_eq!(num(pv, "/outBytes"), s.out_bytes, "{} outBytes", what);
        let mut classes = s.classes;
        classes[4] += n_passed;
        for (i, c) in CLASSES.iter().enumerate() {
            assert_eq!(
                num(pv, &format!("/responses/{}", c)),
                classes[i],
                "{} responses.{}",
                what,
                c
            );
        }
        assert_queue(
            pv,
            "requestMsecs",
            s.requests as usize,
            from,
            to,
            &format!("{} (served)", what),
        );
        assert_queue(
            pv,
            "responseMsecs",
            (s.requests + n_passed) as usize,
            from,
            to,
            &format!("{} (attempts)", what),
        );
        let req_ms: u64 = queue(pv, "requestMsecs").iter().map(|e| e.1).sum();
        let resp_ms: u64 = queue(pv, "responseMsecs").iter().map(|e| e.1).sum();
        assert_eq!(
            num(pv, "/requestMsecCounter"),
            req_ms,
            "{} requestMsecCounter",
            what
        );
        assert_eq!(
            num(pv, "/responseMsecCounter"),
            resp_ms,
            "{} responseMsecCounter",
            what
        );
        assert_averages(pv, Method::Amm, DEFAULT_PERIOD_MS, now, &what);
    }
}

#[test]
fn every_object_has_the_reference_key_order() {
    let run = main_run();
    let doc = &run.doc;
    let with_codes = assert_key_order(&doc.value);
    // statusCodes in the 5 zones and the sum entry, each followed by `}, "responses"`.
    assert_eq!(with_codes, 6, "server objects with statusCodes");
    assert_compact(&doc.raw, &doc.value, with_codes);
    assert!(
        doc.raw.starts_with(&format!(
            "{{\"hostName\":\"{}\",\"moduleVersion\":\"v0.2.7\",\"nginxVersion\":\"1.28.3\",\"loadMsec\":",
            host_name()
        )),
        "start of the document: {}",
        &doc.raw[..120.min(doc.raw.len())]
    );
    assert!(
        doc.raw.contains(",\"statusCodes\":{\"other\":1,\"200\":"),
        "example.org's statusCodes sit after outBytes"
    );
    assert!(
        doc.raw.contains(&format!(
            "\"overCounts\":{{\"maxIntegerSize\":{},\"requestCounter\":0,",
            u64::MAX
        )),
        "maxIntegerSize is a bare number"
    );
    assert!(doc.raw.ends_with("}}"), "the document ends with the last section");
    assert!(!doc.raw.contains('\n'), "no newline in the document");
}

#[test]
fn document_matches_the_json_schema() {
    let run = main_run();
    assert_schema_valid(&run.doc);

    // The schema is strict: each of these changes must make it fail.
    let mut bad_docs: Vec<(&str, Value)> = Vec::new();
    let mut v = run.doc.value.clone();
    v["serverZones"]["example.org"]["extra"] = Value::from(1);
    bad_docs.push(("an unknown key in a server object", v));
    let mut v = run.doc.value.clone();
    v["serverZones"]["example.org"]["requestMsecs"]["times"]
        .as_array_mut()
        .unwrap()
        .pop();
    bad_docs.push(("a 62-entry queue", v));
    let mut v = run.doc.value.clone();
    v["serverZones"]["*"]["inBytes"] = Value::from(1.5);
    bad_docs.push(("a fraction", v));
    let mut v = run.doc.value.clone();
    v["serverZones"]["*"]["outBytes"] = Value::from("12");
    bad_docs.push(("a number as a string", v));
    let mut v = run.doc.value.clone();
    v.as_object_mut().unwrap().remove("sharedZones");
    bad_docs.push(("no sharedZones", v));
    let mut v = run.doc.value.clone();
    v["upstreamZones"]["backend"][3]["requestMsecs"]["times"] = Value::from(vec![0u64; 63]);
    bad_docs.push(("an idle peer with one 63-entry and one empty array", v));
    let mut v = run.doc.value.clone();
    v["upstreamZones"]["backend"][1]["backup"] = Value::from(0);
    bad_docs.push(("backup as a number", v));
    let mut v = run.doc.value.clone();
    v["serverZones"]["_"]["statusCodes"]["600"] = Value::from(1);
    bad_docs.push(("a status code outside 100-599", v));
    let mut v = run.doc.value.clone();
    v["upstreamZones"]["backend"][1]["overCounts"]["maxIntegerSize"] = Value::from(4294967295u64);
    bad_docs.push(("another maxIntegerSize", v));
    for (what, v) in bad_docs {
        let (ok, _) = schema_check(&serde_json::to_string(&v).unwrap());
        assert!(!ok, "the schema accepts a document with {}", what);
    }
}

// ---------------------------------------------------------------------------------------------
// Directives that change the document
// ---------------------------------------------------------------------------------------------

#[test]
fn measure_status_codes_all_prints_only_codes_seen() {
    let nginx = Nginx::start_with(2, 1, |p| {
        format!(
            r#"vhost_traffic_status_zone;
vhost_traffic_status_measure_status_codes all;
server {{
    listen 127.0.0.1:{p0};
    server_name codes.test;
    location / {{ return 200 "ok\n"; }}
    location /204 {{ return 204; }}
    location /301 {{ return 301 /x; }}
    location /429 {{ return 429; }}
    location /444 {{ return 444; }}
    location /503 {{ return 503; }}
    location /600 {{ return 600 "six\n"; }}
    location /999 {{ return 999; }}
    location = /status {{ vhost_traffic_status_display; }}
}}
"#,
            p0 = p[0]
        )
    });
    let port = nginx.port();
    let reqs: Vec<Req> = [
        ("/", 200),
        ("/429", 429),
        ("/204", 204),
        ("/a", 200),
        ("/600", 600),
        ("/301", 301),
        ("/429", 429),
        ("/444", 444),
        ("/503", 503),
        ("/999", 999),
        ("/429", 429),
    ]
    .iter()
    .map(|(p, s)| req("codes.test", p, *s))
    .collect();
    let responses = send_all(port, &reqs);
    let (doc, fetches) = settle(port, "codes.test", "/status", DEFAULT_SUM_KEY, reqs.len() as u64);
    let f = fetches.len() as u64;
    let z = doc.zone("codes.test");
    // Ascending codes, only those with a count; 600 and 999 are `other`.
    let want =
        serde_json::json!({"other": 2, "200": 2 + f, "204": 1, "301": 1, "429": 3, "444": 1, "503": 1});
    assert_eq!(z["statusCodes"], want, "statusCodes in `all` mode");
    assert_eq!(
        keys(&z["statusCodes"]),
        ["other", "200", "204", "301", "429", "444", "503"]
    );
    let sum = doc.zone(DEFAULT_SUM_KEY);
    assert_eq!(sum["statusCodes"], want, "the sum entry's statusCodes");
    assert_eq!(keys(&sum["statusCodes"]), keys(&z["statusCodes"]));
    let mut t = Tally::default();
    for (r, resp) in reqs.iter().zip(&responses) {
        t.add(r.status, resp);
    }
    for fr in &fetches {
        t.add(200, fr);
    }
    // 444 (no answer) is a 4xx with no bytes out; 600 and 999 are 5xx.
    assert_eq!(t.classes, [0, 3 + f, 1, 4, 3]);
    assert_counts(z, &t, "codes.test");
    assert_sum_adds_up(&doc, DEFAULT_SUM_KEY);
    assert_compact(&doc.raw, &doc.value, 2);
    assert_key_order(&doc.value);
    assert_schema_valid(&doc);
}

/// A backend on 127.0.0.1 that answers `GET /sleep/N` after N ms (at most 2 s), one thread
/// per connection. Stops (and joins its accept thread) on drop.
struct SlowBackend {
    port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

impl SlowBackend {
    fn start() -> SlowBackend {
        let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind the slow backend");
        l.set_nonblocking(true).unwrap();
        let port = l.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let thread = thread::spawn(move || {
            while !s.load(Ordering::SeqCst) {
                match l.accept() {
                    Ok((c, _)) => {
                        thread::spawn(move || SlowBackend::serve(c));
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => thread::sleep(Duration::from_millis(5)),
                    Err(_) => thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        SlowBackend {
            port,
            stop,
            thread: Some(thread),
        }
    }

    fn serve(mut c: TcpStream) {
        let _ = c.set_nonblocking(false);
        let _ = c.set_read_timeout(Some(Duration::from_secs(5)));
        let _ = c.set_write_timeout(Some(Duration::from_secs(5)));
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 65536 {
            match c.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        let text = String::from_utf8_lossy(&buf);
        let path = text.split_whitespace().nth(1).unwrap_or("");
        let ms: u64 = path
            .strip_prefix("/sleep/")
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
            .min(2000);
        thread::sleep(Duration::from_millis(ms));
        let _ = c.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 6\r\nConnection: close\r\n\r\nslept\n");
    }
}

impl Drop for SlowBackend {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[test]
fn average_method_and_period_of_the_display_location() {
    let slow = SlowBackend::start();
    let nginx = Nginx::start_with(2, 1, |p| {
        format!(
            r#"vhost_traffic_status_zone;
server {{
    listen 127.0.0.1:{p0};
    server_name avg.test;
    location / {{ return 200 "ok\n"; }}
    location /slow/ {{ proxy_pass http://127.0.0.1:{slow}/sleep/; }}
}}
server {{
    listen 127.0.0.1:{p0};
    server_name stats.test;
    location /default {{ vhost_traffic_status_display; }}
    location /amm0 {{ vhost_traffic_status_display; vhost_traffic_status_average_method AMM 0; }}
    location /wma10s {{ vhost_traffic_status_display; vhost_traffic_status_average_method WMA 10s; }}
    location /wma0 {{ vhost_traffic_status_display; vhost_traffic_status_average_method wma 0; }}
    location /amm1s {{ vhost_traffic_status_display; vhost_traffic_status_average_method AMM 1s; }}
}}
"#,
            p0 = p[0],
            slow = slow.port
        )
    });
    let port = nginx.port();
    let sleeps = [300u64, 0, 0, 120];
    let from = now_ms();
    for (i, s) in sleeps.iter().enumerate() {
        let r = send(port, i, &req("avg.test", &format!("/slow/{}", s), 200));
        assert_eq!(r.body_text(), "slept\n");
    }
    send(port, 9, &req("avg.test", "/", 200));
    let peer = addr(slow.port);

    let check = |path: &str, method: Method, period: u64| -> Doc {
        let d = get_doc(port, "stats.test", path);
        let now = d.now_msec();
        let z = d.zone("avg.test");
        assert_eq!(num(z, "/requestCounter"), 5, "{}: avg.test requestCounter", path);
        assert_averages(z, method, period, now, &format!("{} avg.test", path));
        let pv = d.peer("::nogroups", &peer);
        assert_eq!(num(pv, "/requestCounter"), 4, "{}: peer requestCounter", path);
        assert_averages(pv, method, period, now, &format!("{} peer", path));
        assert_sum_queue(&d, DEFAULT_SUM_KEY, method, period);
        assert_key_order(&d.value);
        d
    };

    let d = check("/default", Method::Amm, DEFAULT_PERIOD_MS);
    // The queue holds the request times: at least the backend's sleep, at most a second more.
    let z = d.zone("avg.test");
    let msecs: Vec<u64> = queue_entries(z, "requestMsecs").iter().map(|e| e.1).collect();
    assert_eq!(msecs.len(), 5, "avg.test queue entries");
    for (i, s) in sleeps.iter().enumerate() {
        assert!(
            msecs[i] >= *s && msecs[i] < s + 1000,
            "request {} slept {} ms, took {} ms",
            i,
            s,
            msecs[i]
        );
    }
    assert_eq!(msecs[4], 0, "the `return` request");
    assert_queue(z, "requestMsecs", 5, from, now_ms(), "avg.test");
    let amm = average(&queue(z, "requestMsecs"), Method::Amm, 0, 0);
    let wma = average(&queue(z, "requestMsecs"), Method::Wma, 0, 0);
    assert!(
        wma < amm,
        "WMA ({}) weighs the late fast requests more than AMM ({})",
        wma,
        amm
    );
    assert_eq!(num(z, "/requestMsec"), amm);

    let d = check("/amm0", Method::Amm, 0);
    assert_eq!(num(d.zone("avg.test"), "/requestMsec"), amm);
    let d = check("/wma10s", Method::Wma, 10_000);
    assert_eq!(num(d.zone("avg.test"), "/requestMsec"), wma);
    let d = check("/wma0", Method::Wma, 0);
    assert_eq!(num(d.zone("avg.test"), "/requestMsec"), wma);

    // Once every entry is more than a second old, a 1 s period sees none: 0; period 0 still
    // averages them all.
    let last = queue_entries(d.zone("avg.test"), "requestMsecs")
        .last()
        .unwrap()
        .0;
    let waited = poll(Duration::from_secs(5), || (now_ms() > last + 1300).then_some(()));
    assert!(waited.is_some());
    let d = check("/amm1s", Method::Amm, 1000);
    assert_eq!(num(d.zone("avg.test"), "/requestMsec"), 0, "no entry within 1 s");
    let pv = d.peer("::nogroups", &peer);
    assert_eq!(
        (num(pv, "/requestMsec"), num(pv, "/responseMsec")),
        (0, 0),
        "peer: no entry within 1 s"
    );
    let d = check("/amm0", Method::Amm, 0);
    assert_eq!(
        num(d.zone("avg.test"), "/requestMsec"),
        amm,
        "period 0 keeps the last values"
    );
    drop(nginx);
    drop(slow);
}

#[test]
fn display_sum_key_names_the_sum_entry() {
    let nginx = Nginx::start_with(2, 1, |p| {
        format!(
            r#"vhost_traffic_status_zone;
server {{
    listen 127.0.0.1:{p0};
    server_name sum.test;
    location / {{ return 200 "ok\n"; }}
    location /total {{ vhost_traffic_status_display; vhost_traffic_status_display_sum_key total; vhost_traffic_status_bypass_stats on; }}
    location /quoted {{ vhost_traffic_status_display; vhost_traffic_status_display_sum_key "s\"u\\m"; vhost_traffic_status_bypass_stats on; }}
    location /default {{ vhost_traffic_status_display; vhost_traffic_status_bypass_stats on; }}
}}
"#,
            p0 = p[0]
        )
    });
    let port = nginx.port();
    let responses = send_all(port, &[req("sum.test", "/", 200), req("sum.test", "/a", 200)]);
    let mut t = Tally::default();
    for r in &responses {
        t.add(200, r);
    }
    for (path, key, raw) in [
        ("/total", "total", "\"total\":{"),
        ("/quoted", "s\"u\\m", r#""s\"u\\m":{"#),
        ("/default", "*", "\"*\":{"),
    ] {
        let d = get_doc(port, "sum.test", path);
        let names: BTreeSet<String> = d.zone_names().into_iter().collect();
        assert_eq!(
            names,
            ["sum.test", key].iter().map(|s| s.to_string()).collect(),
            "{}: serverZones",
            path
        );
        assert_eq!(
            d.zone_names().last().map(String::as_str),
            Some(key),
            "{}: the sum entry is last",
            path
        );
        assert!(d.raw.contains(raw), "{}: the sum key is written as {}", path, raw);
        assert_counts(d.zone(key), &t, path);
        assert_counts(d.zone("sum.test"), &t, "sum.test");
        assert_sum_adds_up(&d, key);
    }
}

#[test]
fn histogram_buckets_in_msecs_with_cumulative_counters() {
    let slow = SlowBackend::start();
    let nginx = Nginx::start_with(2, 1, |p| {
        format!(
            r#"vhost_traffic_status_zone;
vhost_traffic_status_histogram_buckets 0.005 0.05 0.5;
server {{
    listen 127.0.0.1:{p0};
    server_name hist.test;
    location / {{ return 200 "ok\n"; }}
    location /slow/ {{ proxy_pass http://127.0.0.1:{slow}/sleep/; }}
}}
server {{
    listen 127.0.0.1:{p0};
    server_name unsorted.test;
    vhost_traffic_status_histogram_buckets 0.5 0.005 1.25;
    location / {{ return 200 "ok\n"; }}
}}
server {{
    listen 127.0.0.1:{p0};
    server_name stats.test;
    location /status {{ vhost_traffic_status_display; vhost_traffic_status_bypass_stats on; }}
}}
"#,
            p0 = p[0],
            slow = slow.port
        )
    });
    let port = nginx.port();
    let mut reqs: Vec<Req> = (0..4)
        .map(|i| req("hist.test", &format!("/{}", i), 200))
        .collect();
    reqs.push(req("hist.test", "/slow/100", 200));
    reqs.push(req("hist.test", "/slow/0", 200));
    reqs.extend((0..3).map(|_| req("unsorted.test", "/", 200)));
    send_all(port, &reqs);
    let d = get_doc(port, "stats.test", "/status");

    let z = d.zone("hist.test");
    assert_eq!(num(z, "/requestCounter"), 6);
    assert_eq!(
        nums(z, "/requestBuckets/msecs"),
        [5, 50, 500],
        "bounds in ms, in configuration order"
    );
    let msecs: Vec<u64> = queue_entries(z, "requestMsecs").iter().map(|e| e.1).collect();
    let counters = nums(z, "/requestBuckets/counters");
    assert_eq!(
        counters,
        bucket_counts(&[5, 50, 500], &msecs),
        "hist.test counters for msecs {:?}",
        msecs
    );
    assert!(
        counters[0] >= 4 && counters[1] <= 5,
        "the 4 `return` requests are <= 5 ms, the 100 ms one is not: {:?}",
        counters
    );

    let u = d.zone("unsorted.test");
    assert_eq!(
        u["requestBuckets"],
        serde_json::json!({"msecs": [500, 5, 1250], "counters": [3, 3, 3]}),
        "bounds keep their order; every bound >= 0 ms counts"
    );

    let pv = d.peer("::nogroups", &addr(slow.port));
    assert_eq!(num(pv, "/requestCounter"), 2);
    for (b, q) in [
        ("requestBuckets", "requestMsecs"),
        ("responseBuckets", "responseMsecs"),
    ] {
        assert_eq!(
            nums(pv, &format!("/{}/msecs", b)),
            [5, 50, 500],
            "peer {} bounds",
            b
        );
        let m: Vec<u64> = queue_entries(pv, q).iter().map(|e| e.1).collect();
        assert_eq!(m.len(), 2);
        assert_eq!(
            nums(pv, &format!("/{}/counters", b)),
            bucket_counts(&[5, 50, 500], &m),
            "peer {} for {:?}",
            b,
            m
        );
        assert!(
            m.iter().any(|&x| x >= 100),
            "peer {}: one attempt slept 100 ms: {:?}",
            q,
            m
        );
    }
    assert_eq!(
        d.zone(DEFAULT_SUM_KEY)["requestBuckets"],
        serde_json::json!({"msecs": [], "counters": []}),
        "the sum entry has no histogram"
    );
    assert!(
        d.server_zones().get("stats.test").is_none(),
        "bypass_stats: the display location is not counted"
    );
    assert_key_order(&d.value);
    assert_schema_valid(&d);
    drop(nginx);
    drop(slow);
}

#[test]
fn bypass_stats_and_status_off_are_not_counted() {
    let nginx = Nginx::start_with(2, 1, |p| {
        format!(
            r#"vhost_traffic_status_zone;
server {{
    listen 127.0.0.1:{p0};
    server_name count.test;
    location / {{ return 200 "ok\n"; }}
    location /bypass {{ vhost_traffic_status_bypass_stats on; return 200 "b\n"; }}
    location /off {{ vhost_traffic_status off; return 200 "o\n"; }}
    location = /status {{ vhost_traffic_status_display; }}
    location = /quiet {{ vhost_traffic_status_display; vhost_traffic_status_bypass_stats on; }}
}}
server {{
    listen 127.0.0.1:{p0};
    server_name off.test;
    vhost_traffic_status off;
    location / {{ return 200 "ok\n"; }}
}}
server {{
    listen 127.0.0.1:{p0};
    server_name bypassed.test;
    vhost_traffic_status_bypass_stats on;
    location / {{ return 200 "ok\n"; }}
    location /on {{ vhost_traffic_status_bypass_stats off; return 404; }}
}}
"#,
            p0 = p[0]
        )
    });
    let port = nginx.port();
    let mut reqs = Vec::new();
    for i in 0..12 {
        let path = ["/", "/bypass", "/off", "/bypass/x", "/off/y", "/bypass"][i % 6];
        reqs.push(req("count.test", path, 200));
    }
    reqs.push(req("off.test", "/", 200));
    reqs.push(req("off.test", "/a", 200));
    reqs.push(req("bypassed.test", "/", 200));
    reqs.push(req("bypassed.test", "/on", 404));
    let responses = send_all(port, &reqs);
    let mut count = Tally::default();
    let mut bypassed = Tally::default();
    for (r, resp) in reqs.iter().zip(&responses) {
        if r.host == "count.test" && r.path == "/" {
            count.add(200, resp);
        }
        if r.path == "/on" {
            bypassed.add(404, resp);
        }
    }
    assert_eq!((count.requests, bypassed.requests), (2, 1));
    let (d, fetches) = settle(port, "count.test", "/status", DEFAULT_SUM_KEY, 3);
    for f in &fetches {
        count.add(200, f);
    }
    let names: BTreeSet<String> = d.zone_names().into_iter().collect();
    assert_eq!(
        names,
        ["count.test", "bypassed.test", "*"]
            .iter()
            .map(|s| s.to_string())
            .collect(),
        "serverZones: off.test has no node"
    );
    assert_counts(d.zone("count.test"), &count, "count.test");
    assert_counts(d.zone("bypassed.test"), &bypassed, "bypassed.test");
    // The document that settled was counted after it was rendered; a display location with
    // bypass_stats is not counted at all.
    count.add(200, &d.response);
    for _ in 0..3 {
        let q = get_doc(port, "count.test", "/quiet");
        assert_counts(q.zone("count.test"), &count, "count.test seen from /quiet");
    }
    let d = get_doc(port, "count.test", "/status");
    assert_counts(
        d.zone("count.test"),
        &count,
        "count.test after 3 requests to /quiet",
    );
    assert_schema_valid(&d);
}

#[test]
fn stats_by_upstream_off_leaves_out_upstream_zones() {
    for on in [false, true] {
        let nginx = Nginx::start_with(2, 2, |p| {
            format!(
                r#"vhost_traffic_status_zone;
{directive}
upstream backend {{ server 127.0.0.1:{b1}; }}
server {{
    listen 127.0.0.1:{p0};
    server_name front.test;
    location /up/ {{ proxy_pass http://backend; }}
    location /direct/ {{ proxy_pass http://127.0.0.1:{b1}; }}
    location = /status {{ vhost_traffic_status_display; vhost_traffic_status_bypass_stats on; }}
}}
server {{
    listen 127.0.0.1:{b1};
    server_name b1.test;
    location / {{ return 200 "b1\n"; }}
}}
"#,
                directive = if on {
                    ""
                } else {
                    "vhost_traffic_status_stats_by_upstream off;"
                },
                p0 = p[0],
                b1 = p[1]
            )
        });
        let port = nginx.port();
        let b1 = nginx.ports[1];
        // First an idle document: with stats on, the configured group is listed already.
        let d = get_doc(port, "front.test", "/status");
        if on {
            let peers = d.peers("backend");
            assert_eq!(peers.len(), 1);
            assert_eq!(peers[0]["server"], addr(b1).as_str());
            assert_eq!(num(&peers[0], "/requestCounter"), 0);
            assert_eq!(
                peers[0]["requestMsecs"],
                serde_json::json!({"times": [], "msecs": []})
            );
            assert_eq!(
                d.upstream_zones().keys().collect::<Vec<_>>(),
                ["backend"],
                "no ::nogroups yet"
            );
        } else {
            assert!(
                d.top().get("upstreamZones").is_none(),
                "stats_by_upstream off: no upstreamZones"
            );
        }
        let reqs = [
            req("front.test", "/up/1", 200),
            req("front.test", "/up/2", 200),
            req("front.test", "/direct/3", 200),
        ];
        let responses = send_all(port, &reqs);
        let (d, _) = settle(port, "front.test", "/status", DEFAULT_SUM_KEY, 6);
        let mut front = Tally::default();
        for r in &responses {
            front.add(200, r);
        }
        assert_counts(d.zone("front.test"), &front, "front.test");
        assert_eq!(
            num(d.zone("b1.test"), "/requestCounter"),
            3,
            "b1.test (the backend) counts its requests"
        );
        if on {
            assert_eq!(num(d.peer("backend", &addr(b1)), "/requestCounter"), 2);
            assert_eq!(num(d.peer("::nogroups", &addr(b1)), "/requestCounter"), 1);
        } else {
            assert!(
                d.top().get("upstreamZones").is_none(),
                "stats_by_upstream off: no upstreamZones after upstream traffic"
            );
            assert_eq!(
                keys(&d.value),
                TOP_KEYS[..8].to_vec(),
                "top-level keys without upstreamZones"
            );
        }
        assert_key_order(&d.value);
        assert_compact(&d.raw, &d.value, 0);
        assert_schema_valid(&d);
    }
}

#[test]
fn ignore_status_keeps_the_node_but_not_the_counts() {
    let nginx = Nginx::start_with(2, 1, |p| {
        format!(
            r#"vhost_traffic_status_zone;
server {{
    listen 127.0.0.1:{p0};
    server_name mixed.test;
    vhost_traffic_status_ignore_status 4xx;
    location / {{ return 200 "ok\n"; }}
    location /nf {{ return 404; }}
    location /nf-counted {{ vhost_traffic_status_ignore_status off; return 404; }}
    location /gone {{ vhost_traffic_status_ignore_status 5xx 4xx; return 410; }}
    location /err {{ vhost_traffic_status_ignore_status 5xx; return 503; }}
    location = /status {{ vhost_traffic_status_display; vhost_traffic_status_bypass_stats on; }}
}}
server {{
    listen 127.0.0.1:{p0};
    server_name ignored.test;
    vhost_traffic_status_ignore_status 4xx;
    location / {{ return 404; }}
}}
"#,
            p0 = p[0]
        )
    });
    let port = nginx.port();
    let reqs = [
        req("mixed.test", "/", 200),
        req("mixed.test", "/nf", 404),
        req("mixed.test", "/nf/2", 404),
        req("mixed.test", "/nf-counted", 404),
        req("mixed.test", "/gone", 410),
        req("mixed.test", "/err", 503),
        req("mixed.test", "/err", 503),
        req("mixed.test", "/nf", 404),
        req("mixed.test", "/a", 200),
        req("ignored.test", "/", 404),
        req("ignored.test", "/b", 404),
    ];
    let from = now_ms();
    let responses = send_all(port, &reqs);
    let mut mixed = Tally::default();
    for (r, resp) in reqs.iter().zip(&responses) {
        if r.host == "mixed.test" && (r.status == 200 || r.path == "/nf-counted") {
            mixed.add(r.status, resp);
        }
    }
    assert_eq!(mixed.requests, 3);
    let (d, _) = settle(port, "mixed.test", "/status", DEFAULT_SUM_KEY, 3);
    let names: BTreeSet<String> = d.zone_names().into_iter().collect();
    assert_eq!(
        names,
        ["mixed.test", "ignored.test", "*"]
            .iter()
            .map(|s| s.to_string())
            .collect(),
        "serverZones: the ignored zone exists"
    );
    let m = d.zone("mixed.test");
    assert_counts(m, &mixed, "mixed.test");
    assert_queue(m, "requestMsecs", 3, from, now_ms(), "mixed.test");
    let z = d.zone("ignored.test");
    assert_counts(z, &Tally::default(), "ignored.test");
    assert_eq!(num(z, "/requestMsecCounter"), 0);
    assert_queue(z, "requestMsecs", 0, 0, 0, "ignored.test (63 placeholders)");
    assert_sum_adds_up(&d, DEFAULT_SUM_KEY);
    assert_schema_valid(&d);
}

// ---------------------------------------------------------------------------------------------
// Hostile names
// ---------------------------------------------------------------------------------------------

#[test]
fn hostile_server_names_round_trip() {
    // (server_name as written in nginx.conf, the zone name nginx makes of it, its JSON text)
    let names: [(&str, &str, &str); 8] = [
        (r#""q\"uo\\te""#, "q\"uo\\te", r#""q\"uo\\te""#),
        (r#""tab\there""#, "tab\there", r#""tab\there""#),
        (r#""nl\nx""#, "nl\nx", r#""nl\nx""#),
        (
            "\"ctl\u{1}\u{1e}\u{7f}x\"",
            "ctl\u{1}\u{1e}\u{7f}x",
            "\"ctl\\u0001\\u001E\u{7f}x\"",
        ),
        (
            "\"\u{dc}n\u{ef}.Example\"",
            "\u{dc}n\u{ef}.example",
            "\"\u{dc}n\u{ef}.example\"",
        ),
        ("\"</script>\"", "</script>", "\"</script>\""),
        ("\"sp ace\"", "sp ace", "\"sp ace\""),
        ("\"cr\\rlf\"", "cr\rlf", "\"cr\\rlf\""),
    ];
    let nginx = Nginx::start_with(2, names.len(), |p| {
        let mut s = String::from("vhost_traffic_status_zone;\n");
        for (i, (conf, _, _)) in names.iter().enumerate() {
            s.push_str(&format!(
                "server {{\n    listen 127.0.0.1:{};\n    server_name {};\n    location / {{ return 200 \"ok\\n\"; }}\n{}}}\n",
                p[i],
                conf,
                if i == 0 {
                    "    location = /status { vhost_traffic_status_display; vhost_traffic_status_bypass_stats on; }\n"
                } else {
                    ""
                }
            ));
        }
        s
    });
    let mut t = BTreeMap::new();
    for (i, (_, name, _)) in names.iter().enumerate() {
        let r = send(nginx.ports[i], i, &req("any.test", "/", 200));
        t.entry(*name).or_insert_with(Tally::default).add(200, &r);
    }
    let d = get_doc(nginx.port(), "any.test", "/status");
    let got: BTreeSet<String> = d.zone_names().into_iter().collect();
    let mut want: BTreeSet<String> = names.iter().map(|n| n.1.to_string()).collect();
    want.insert("*".into());
    assert_eq!(got, want, "zone names parse back exactly");
    for (_, name, json_text) in names {
        assert_counts(d.zone(name), &t[name], &format!("{:?}", name));
        // 0x7F: the C module copies it raw (valid JSON); ngx_vts may write \u007F (also valid,
        // the same string).
        let escaped_del = json_text.replace('\u{7f}', "\\u007F");
        assert!(
            [json_text, escaped_del.as_str()]
                .iter()
                .any(|j| d.raw.contains(&format!("{}:{{\"requestCounter\":1,", j))),
            "zone {:?} is written as {}",
            name,
            json_text
        );
    }
    assert_key_order(&d.value);
    assert_schema_valid(&d);
}

#[test]
fn invalid_utf8_server_name_keeps_the_document_valid() {
    if other_module() {
        eprintln!("skipped: the C module writes the raw byte 0xFF (invalid JSON, reference 11 #6)");
        return;
    }
    // nginx.conf is text for the harness: the raw byte comes from an included file.
    let inc = std::env::temp_dir().join(format!(
        "ngx_vts-bad-name-{}-{}.conf",
        std::process::id(),
        now_ms()
    ));
    std::fs::write(&inc, b"server_name \"bad\xffname\";\n").expect("write the included file");
    struct Remove(std::path::PathBuf);
    impl Drop for Remove {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }
    let _remove = Remove(inc.clone());
    let nginx = Nginx::start_with(2, 2, |p| {
        format!(
            r#"vhost_traffic_status_zone;
server {{
    listen 127.0.0.1:{p0};
    server_name good.test;
    location / {{ return 200 "ok\n"; }}
    location = /status {{ vhost_traffic_status_display; vhost_traffic_status_bypass_stats on; }}
}}
server {{
    listen 127.0.0.1:{p1};
    include {inc};
    location / {{ return 200 "ok\n"; }}
}}
"#,
            p0 = p[0],
            p1 = p[1],
            inc = inc.display()
        )
    });
    send(nginx.ports[1], 0, &req("x.test", "/", 200));
    send(nginx.port(), 1, &req("good.test", "/", 200));
    let r = http_request(nginx.port(), "GET", "/status", "good.test", &[], b"");
    let d = doc_of(r, "/status");
    let names = d.zone_names();
    assert_eq!(
        names.len(),
        3,
        "good.test, the bad name, the sum entry: {:?}",
        names
    );
    let bad: Vec<&String> = names.iter().filter(|n| *n != "good.test" && *n != "*").collect();
    assert_eq!(bad.len(), 1);
    assert!(
        bad[0].starts_with("bad") && bad[0].ends_with("name"),
        "the bad name keeps its valid parts: {:?}",
        bad[0]
    );
    assert_eq!(num(d.zone(bad[0]), "/requestCounter"), 1);
    assert_schema_valid(&d);
}

/// An upstream without a `zone` lists its peers in the order of its `server` lines, a backup
/// where it stands and a `down` one too (nginx keeps primaries and backups in two lists); with
/// a `zone`, primaries then backups. Learnt from the C module: the same order, flags and
/// weights.
#[test]
fn peers_of_an_upstream_without_zone_in_server_line_order() {
    let nginx = Nginx::start_with(2, 4, |p| {
        format!(
            r#"vhost_traffic_status_zone;
upstream plain {{
    server 127.0.0.1:{b1};
    server 127.0.0.1:{b2} backup;
    server 127.0.0.1:{b3} down;
    server 127.0.0.1:{b4} weight=2;
}}
upstream zoned {{
    zone zoned 64k;
    server 127.0.0.1:{b2} backup;
    server 127.0.0.1:{b1};
}}
server {{
    listen 127.0.0.1:{p0};
    server_name order.test;
    location /status {{ vhost_traffic_status_display; }}
}}"#,
            p0 = p[0],
            b1 = p[1],
            b2 = p[2],
            b3 = p[3],
            b4 = p[3] + 1,
        )
    });
    let d = get_doc(nginx.port(), "order.test", "/status");
    let rows = |g: &str| -> Vec<(String, bool, bool, u64)> {
        d.peers(g)
            .iter()
            .map(|p| {
                (
                    p["server"].as_str().unwrap().to_string(),
                    p["backup"].as_bool().unwrap(),
                    p["down"].as_bool().unwrap(),
                    p["weight"].as_u64().unwrap(),
                )
            })
            .collect()
    };
    let a = |port: u16| format!("127.0.0.1:{}", port);
    let p = &nginx.ports;
    assert_eq!(
        rows("plain"),
        [
            (a(p[1]), false, false, 1),
            (a(p[2]), true, false, 1),
            (a(p[3]), false, true, 1),
            (a(p[3] + 1), false, false, 2),
        ]
    );
    assert_eq!(
        rows("zoned"),
        [(a(p[1]), false, false, 1), (a(p[2]), true, false, 1)]
    );
}

/// "No live upstreams" (every peer down): nginx names the attempt after the upstream, and the
/// C module keeps that name as a peer of the group (listed after the configured ones).
#[test]
fn an_attempt_without_a_live_peer_is_a_peer_named_after_its_group() {
    let nginx = Nginx::start_with(2, 2, |p| {
        format!(
            r#"vhost_traffic_status_zone;
upstream grp {{ server 127.0.0.1:{b} down; }}
server {{
    listen 127.0.0.1:{p0};
    server_name nolive.test;
    location /p {{ proxy_pass http://grp; }}
    location /status {{ vhost_traffic_status_display; vhost_traffic_status_bypass_stats on; }}
}}"#,
            p0 = p[0],
            b = p[1]
        )
    });
    for _ in 0..3 {
        assert_eq!(nginx.get("nolive.test", "/p").status, 502);
    }
    let d = get_doc(nginx.port(), "nolive.test", "/status");
    let servers: Vec<&str> = d
        .peers("grp")
        .iter()
        .map(|p| p["server"].as_str().unwrap())
        .collect();
    assert_eq!(servers, [format!("127.0.0.1:{}", nginx.ports[1]).as_str(), "grp"]);
    let grp = d.peer("grp", "grp");
    assert_eq!(num(grp, "/requestCounter"), 3);
    assert_eq!(num(grp, "/responses/5xx"), 3);
    assert_eq!(grp["down"], false);
    assert_eq!(
        num(
            d.peer("grp", &format!("127.0.0.1:{}", nginx.ports[1])),
            "/requestCounter"
        ),
        0
    );
}
