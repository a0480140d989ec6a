//! The Prometheus text exposition format (0.0.4).
//!
//! Families come in a fixed order, each with its HELP and TYPE once, before its samples; series
//! within a family are sorted by their labels, so two scrapes diff cleanly.
use std::io::Write;

use super::escape::label_value;
use std::collections::BTreeMap;

use crate::stats::{split_upstream_key, Counters, Entry, Kind, Snapshot, STATUS_LABELS};

pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// nginx's own connection counters (present when nginx has stub_status).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Connections {
    pub active: u64,
    pub reading: u64,
    pub writing: u64,
    pub waiting: u64,
    pub accepted: u64,
    pub handled: u64,
    pub requests: u64,
}

/// What the output says about the process, besides the zone's counters.
#[derive(Clone, Debug, Default)]
pub struct Info<'a> {
    pub hostname: &'a [u8],
    pub module_version: &'a str,
    pub nginx_version: &'a str,
    /// The `vts_zone` name.
    pub shm_name: &'a [u8],
    pub connections: Option<Connections>,
    /// nginx's live view of every upstream peer; `None` when `vts_upstream_stats` is off (no
    /// upstream family is written then).
    pub peers: Option<&'a [PeerState]>,
}

/// One upstream peer as nginx sees it now.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PeerState {
    /// The `upstream` block's name, or `::nogroups` for a proxy_pass without one.
    pub group: Vec<u8>,
    /// The peer's address as nginx names it (`10.0.0.1:8080`, `unix:/path`, `[::1]:80`).
    pub server: Vec<u8>,
    /// Neither marked `down` nor failed `max_fails` times within `fail_timeout`.
    pub up: bool,
    pub weight: u64,
    pub max_fails: u64,
    pub fail_timeout_s: u64,
    pub backup: bool,
}

/// The label names and values of one series, values as raw bytes (escaped on output).
type Labels<'a> = &'a [(&'a str, &'a [u8])];

struct Writer<'o> {
    out: &'o mut Vec<u8>,
}

impl Writer<'_> {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: Labels, value: Value) {
        self.out.extend_from_slice(name.as_bytes());
        if !labels.is_empty() {
            self.out.push(b'{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(b',');
                }
                self.out.extend_from_slice(k.as_bytes());
                self.out.extend_from_slice(b"=\"");
                label_value(self.out, v);
                self.out.push(b'"');
            }
            self.out.push(b'}');
        }
        let _ = match value {
            Value::Int(v) => writeln!(self.out, " {v}"),
            Value::Float(v) => writeln!(self.out, " {v}"),
        };
    }
}

#[derive(Clone, Copy)]
enum Value {
    Int(u64),
    Float(f64),
}

fn ms_to_s(ms: u64) -> Value {
    Value::Float(ms as f64 / 1000.0)
}

/// Entries of a kind, sorted by name (the order of the output).
fn sorted(snapshot: &Snapshot, kind: Kind) -> Vec<&Entry> {
    let mut v: Vec<&Entry> = snapshot.entries.iter().filter(|e| e.kind == kind).collect();
    v.sort_by(|a, b| a.name.cmp(&b.name));
    v
}

/// Server zones to show: every configured zone, and the overflow entry once it holds something.
fn server_zones(snapshot: &Snapshot) -> Vec<(&[u8], &Counters)> {
    let mut v: Vec<(&[u8], &Counters)> = sorted(snapshot, Kind::Server)
        .into_iter()
        .map(|e| (e.name.as_slice(), &e.counters))
        .collect();
    if let Some(o) = snapshot
        .entries
        .iter()
        .find(|e| e.kind == Kind::Overflow && e.name == b"server" && e.counters.requests > 0)
    {
        v.push((b"::overflow", &o.counters));
    }
    v
}

/// Renders the whole scrape.
pub fn render(snapshot: &Snapshot, info: &Info, out: &mut Vec<u8>) {
    let mut w = Writer { out };

    w.family("nginx_vts_info", "gauge", "Nginx VTS module information");
    w.sample(
        "nginx_vts_info",
        &[
            ("hostname", info.hostname),
            ("version", info.module_version.as_bytes()),
            ("nginx_version", info.nginx_version.as_bytes()),
        ],
        Value::Int(1),
    );

    w.family(
        "nginx_vts_start_time_seconds",
        "gauge",
        "Unix time the statistics zone was created",
    );
    w.sample(
        "nginx_vts_start_time_seconds",
        &[],
        Value::Int(snapshot.created_unix),
    );

    if let Some(c) = info.connections {
        w.family("nginx_vts_connections", "gauge", "Current nginx connections");
        for (state, v) in [
            ("active", c.active),
            ("reading", c.reading),
            ("writing", c.writing),
            ("waiting", c.waiting),
        ] {
            w.sample(
                "nginx_vts_connections",
                &[("state", state.as_bytes())],
                Value::Int(v),
            );
        }
        w.family(
            "nginx_vts_connections_total",
            "counter",
            "Total nginx connections",
        );
        for (state, v) in [("accepted", c.accepted), ("handled", c.handled)] {
            w.sample(
                "nginx_vts_connections_total",
                &[("state", state.as_bytes())],
                Value::Int(v),
            );
        }
    }

    let free = snapshot.size_bytes.saturating_sub(snapshot.used_bytes);
    w.family(
        "nginx_vts_shm_bytes",
        "gauge",
        "Statistics zone size, bytes in use and free",
    );
    for (state, v) in [
        ("size", snapshot.size_bytes),
        ("used", snapshot.used_bytes),
        ("free", free),
    ] {
        w.sample(
            "nginx_vts_shm_bytes",
            &[("shm", info.shm_name), ("state", state.as_bytes())],
            Value::Int(v as u64),
        );
    }

    let zones = server_zones(snapshot);
    w.family(
        "nginx_vts_server_requests_total",
        "counter",
        "Total number of requests",
    );
    for (z, c) in &zones {
        w.sample(
            "nginx_vts_server_requests_total",
            &[("zone", z)],
            Value::Int(c.requests),
        );
    }
    w.family(
        "nginx_vts_server_bytes_total",
        "counter",
        "Total bytes transferred",
    );
    for (z, c) in &zones {
        w.sample(
            "nginx_vts_server_bytes_total",
            &[("zone", z), ("direction", b"in")],
            Value::Int(c.bytes_in),
        );
        w.sample(
            "nginx_vts_server_bytes_total",
            &[("zone", z), ("direction", b"out")],
            Value::Int(c.bytes_out),
        );
    }
    w.family(
        "nginx_vts_server_responses_total",
        "counter",
        "Total responses by status code",
    );
    for (z, c) in &zones {
        status_samples(&mut w, "nginx_vts_server_responses_total", &[("zone", z)], c);
    }
    w.family(
        "nginx_vts_server_request_seconds",
        "gauge",
        "Request processing time",
    );
    for (z, c) in &zones {
        let avg = if c.requests == 0 {
            0.0
        } else {
            c.time_sum_ms as f64 / c.requests as f64 / 1000.0
        };
        w.sample(
            "nginx_vts_server_request_seconds",
            &[("zone", z), ("type", b"avg")],
            Value::Float(avg),
        );
        w.sample(
            "nginx_vts_server_request_seconds",
            &[("zone", z), ("type", b"min")],
            ms_to_s(c.time_min_ms.unwrap_or(0)),
        );
        w.sample(
            "nginx_vts_server_request_seconds",
            &[("zone", z), ("type", b"max")],
            ms_to_s(c.time_max_ms),
        );
    }

    if let Some(peers) = info.peers {
        render_upstreams(&mut w, snapshot, peers);
    }
}

/// The five status classes, and "other" (a status outside 100..599) once it happened.
fn status_samples(w: &mut Writer, name: &str, labels: Labels, c: &Counters) {
    for (i, label) in STATUS_LABELS.iter().enumerate() {
        if i < 5 || c.status[i] > 0 {
            let mut l: Vec<(&str, &[u8])> = labels.to_vec();
            l.push(("status", label.as_bytes()));
            w.sample(name, &l, Value::Int(c.status[i]));
        }
    }
}

/// One row of the upstream families: counters from the zone, state from nginx, either may be
/// missing (a configured peer with no traffic yet; a peer that had traffic and is gone).
struct PeerRow<'a> {
    counters: Option<&'a Counters>,
    state: Option<&'a PeerState>,
}

fn peer_rows<'a>(
    snapshot: &'a Snapshot,
    peers: &'a [PeerState],
) -> BTreeMap<(&'a [u8], &'a [u8]), PeerRow<'a>> {
    let mut rows: BTreeMap<(&[u8], &[u8]), PeerRow> = BTreeMap::new();
    for p in peers {
        rows.entry((&p.group, &p.server))
            .or_insert(PeerRow {
                counters: None,
                state: None,
            })
            .state = Some(p);
    }
    for e in &snapshot.entries {
        let key: (&[u8], &[u8]) = match e.kind {
            Kind::UpstreamPeer => match split_upstream_key(&e.name) {
                Some(k) => k,
                None => continue,
            },
            Kind::Overflow if e.name == b"upstream" && e.counters.requests > 0 => {
                (b"::overflow", b"::overflow")
            }
            _ => continue,
        };
        rows.entry(key)
            .or_insert(PeerRow {
                counters: None,
                state: None,
            })
            .counters = Some(&e.counters);
    }
    rows
}

fn render_upstreams(w: &mut Writer, snapshot: &Snapshot, peers: &[PeerState]) {
    let rows = peer_rows(snapshot, peers);
    let zero = Counters::default();
    let with_counters = || {
        rows.iter()
            .map(|(&(g, s), r)| (g, s, r.counters.unwrap_or(&zero)))
    };

    w.family(
        "nginx_vts_upstream_requests_total",
        "counter",
        "Total upstream requests",
    );
    for (g, s, c) in with_counters() {
        w.sample(
            "nginx_vts_upstream_requests_total",
            &[("upstream", g), ("server", s)],
            Value::Int(c.requests),
        );
    }
    w.family(
        "nginx_vts_upstream_bytes_total",
        "counter",
        "Total bytes transferred to/from upstream",
    );
    for (g, s, c) in with_counters() {
        let l = |d: &'static [u8]| [("upstream", g), ("server", s), ("direction", d)];
        w.sample(
            "nginx_vts_upstream_bytes_total",
            &l(b"in"),
            Value::Int(c.bytes_in),
        );
        w.sample(
            "nginx_vts_upstream_bytes_total",
            &l(b"out"),
            Value::Int(c.bytes_out),
        );
    }
    w.family(
        "nginx_vts_upstream_responses_total",
        "counter",
        "Upstream responses by status code",
    );
    for (g, s, c) in with_counters() {
        status_samples(
            w,
            "nginx_vts_upstream_responses_total",
            &[("upstream", g), ("server", s)],
            c,
        );
    }
    w.family(
        "nginx_vts_upstream_response_seconds",
        "gauge",
        "Upstream response time statistics",
    );
    for (g, s, c) in with_counters() {
        let avg = |sum: u64, n: u64| {
            if n == 0 {
                0.0
            } else {
                sum as f64 / n as f64 / 1000.0
            }
        };
        let l = |t: &'static [u8]| [("upstream", g), ("server", s), ("type", t)];
        w.sample(
            "nginx_vts_upstream_response_seconds",
            &l(b"request_avg"),
            Value::Float(avg(c.time_sum_ms, c.requests)),
        );
        w.sample(
            "nginx_vts_upstream_response_seconds",
            &l(b"upstream_avg"),
            Value::Float(avg(c.upstream_sum_ms, c.upstream_count)),
        );
    }

    let states = || {
        rows.iter()
            .filter_map(|(&(g, s), r)| r.state.map(|st| (g, s, st)))
    };
    let gauges: [(&str, &str, fn(&PeerState) -> u64); 5] = [
        (
            "nginx_vts_upstream_server_up",
            "Upstream server status (1=up, 0=down)",
            |p| p.up as u64,
        ),
        (
            "nginx_vts_upstream_server_weight",
            "Upstream server weight",
            |p| p.weight,
        ),
        (
            "nginx_vts_upstream_server_max_fails",
            "Upstream server max_fails",
            |p| p.max_fails,
        ),
        (
            "nginx_vts_upstream_server_fail_timeout_seconds",
            "Upstream server fail_timeout",
            |p| p.fail_timeout_s,
        ),
        (
            "nginx_vts_upstream_server_backup",
            "Upstream server is a backup (1) or primary (0)",
            |p| p.backup as u64,
        ),
    ];
    for (name, help, get) in gauges {
        w.family(name, "gauge", help);
        for (g, s, st) in states() {
            w.sample(name, &[("upstream", g), ("server", s)], Value::Int(get(st)));
        }
    }
}
