//! The Prometheus exposition: text format 0.0.4, and OpenMetrics 1.0 for scrapers that ask.
//!
//! Families come in a fixed order, each with its HELP and TYPE once, before its samples; series
//! within a family are sorted by their labels, so two scrapes diff cleanly. Label values are
//! escaped in one place ([`super::escape`]).
use std::borrow::Borrow;
use std::collections::BTreeMap;
use std::io::Write;

use arrayvec::ArrayVec;

use super::escape::{label_value, reserved_value};
use super::number::push_u64;
use crate::stats::{split_upstream_key, Counters, Kind, Snapshot, STATUS_LABELS};

pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
pub const OPENMETRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Prometheus text 0.0.4.
    Text,
    /// OpenMetrics 1.0: counter families named without `_total`, `# EOF` at the end.
    OpenMetrics,
}

impl Format {
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Text => CONTENT_TYPE,
            Format::OpenMetrics => OPENMETRICS_CONTENT_TYPE,
        }
    }
}

/// Picks the format from an `Accept` header: OpenMetrics when it is acceptable and not less
/// preferred than the text format (Prometheus lists both, with q-values).
pub fn negotiate(accept: &[u8]) -> Format {
    let [om, text] = super::accept::qualities(accept, ["application/openmetrics-text", "text/plain"]);
    if om > 0.0 && om >= text {
        Format::OpenMetrics
    } else {
        Format::Text
    }
}

use crate::view::View;
pub use crate::view::{Connections, PeerState};

#[derive(Clone, Copy)]
enum Value {
    Int(u64),
    /// Seconds, held as nanoseconds: written as an exact decimal without float formatting
    /// (which was a tenth of a 10k-key scrape's cost).
    Seconds(u128),
}

fn ms_to_s(ms: u64) -> Value {
    Value::Seconds(ms as u128 * 1_000_000)
}

/// The average of `n` times summing to `sum_ms`, to the nanosecond.
fn avg_s(sum_ms: u64, n: u64) -> Value {
    Value::Seconds(if n == 0 {
        0
    } else {
        sum_ms as u128 * 1_000_000 / n as u128
    })
}

/// `ns` nanoseconds as decimal seconds: `0.0`, `0.25`, `1.000123`.
fn push_seconds(out: &mut Vec<u8>, ns: u128) {
    let (whole, frac) = (ns / 1_000_000_000, (ns % 1_000_000_000) as u64);
    push_u64(out, whole.min(u64::MAX as u128) as u64);
    out.push(b'.');
    if frac == 0 {
        out.push(b'0');
        return;
    }
    let mut digits = [b'0'; 9];
    let mut f = frac;
    for d in digits.iter_mut().rev() {
        *d = b'0' + (f % 10) as u8;
        f /= 10;
    }
    let len = 9 - digits.iter().rev().take_while(|&&d| d == b'0').count();
    out.extend_from_slice(&digits[..len]);
}

/// One label, `key="escaped value"`, rendered once and reused for every series of its row (a
/// scrape of 10k zones writes each zone's label 25 times).
fn label(key: &str, value: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(key.len() + value.len() + 3);
    v.extend_from_slice(key.as_bytes());
    v.extend_from_slice(b"=\"");
    label_value(&mut v, value);
    v.push(b'"');
    v
}

/// A label whose value is one of the module's own names (`::overflow`), shown as is.
fn reserved_label(key: &str, value: &str) -> Vec<u8> {
    let mut v = Vec::with_capacity(key.len() + value.len() + 3);
    v.extend_from_slice(key.as_bytes());
    v.extend_from_slice(b"=\"");
    reserved_value(&mut v, value);
    v.push(b'"');
    v
}

struct Writer<'o> {
    out: &'o mut Vec<u8>,
    format: Format,
}

impl Writer<'_> {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        // OpenMetrics names a counter family without the `_total` its samples carry.
        let name = match (self.format, kind) {
            (Format::OpenMetrics, "counter") => name.strip_suffix("_total").unwrap_or(name),
            _ => name,
        };
        let _ = writeln!(self.out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    /// One sample line: `name` (in parts, e.g. family + `_bucket`), labels already rendered by
    /// [`label`] (joined with commas), the value.
    fn sample(&mut self, name: &[&str], labels: &[&[u8]], value: Value) {
        for part in name {
            self.out.extend_from_slice(part.as_bytes());
        }
        if !labels.is_empty() {
            self.out.push(b'{');
            for (i, l) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(b',');
                }
                self.out.extend_from_slice(l);
            }
            self.out.push(b'}');
        }
        self.out.push(b' ');
        match value {
            Value::Int(v) => push_u64(self.out, v),
            Value::Seconds(ns) => push_seconds(self.out, ns),
        }
        self.out.push(b'\n');
    }

    /// The five status classes, and "other" (a status outside 100..599) once it happened.
    fn statuses(&mut self, name: &str, row: &[&[u8]], c: &Counters) {
        const STATUS: [&[u8]; 6] = [
            b"status=\"1xx\"",
            b"status=\"2xx\"",
            b"status=\"3xx\"",
            b"status=\"4xx\"",
            b"status=\"5xx\"",
            b"status=\"other\"",
        ];
        debug_assert_eq!(STATUS.len(), STATUS_LABELS.len());
        let mut labels = row_labels(row);
        for (i, status) in STATUS.iter().enumerate() {
            if i < 5 || c.status[i] > 0 {
                labels.push(status);
                self.sample(&[name], &labels, Value::Int(c.status[i]));
                labels.pop();
            }
        }
    }

    /// One histogram series: cumulative buckets, `+Inf` equal to `count`, `_sum`, `_count`.
    /// `les` are the rendered `le` labels of the finite bounds.
    fn histogram(
        &mut self,
        name: &str,
        row: &[&[u8]],
        les: &[Vec<u8>],
        per_bucket: &[u64],
        sum_ms: u64,
        count: u64,
    ) {
        // Every bucket line starts the same: `name_bucket{row labels,` written once per series.
        let prefix_start = self.out.len();
        self.out.extend_from_slice(name.as_bytes());
        self.out.extend_from_slice(b"_bucket{");
        for l in row {
            self.out.extend_from_slice(l);
            self.out.push(b',');
        }
        let prefix_end = self.out.len();
        let mut cumulative = 0u64;
        for (i, le) in les.iter().enumerate() {
            // The snapshot never has more in the buckets than in the count (see merge).
            cumulative += per_bucket.get(i).copied().unwrap_or(0);
            if i > 0 {
                self.out.extend_from_within(prefix_start..prefix_end);
            }
            self.out.extend_from_slice(le);
            self.out.extend_from_slice(b"} ");
            push_u64(self.out, cumulative);
            self.out.push(b'\n');
        }
        if les.is_empty() {
            self.out.truncate(prefix_start); // no finite bucket: only +Inf below
        }
        let mut labels = row_labels(row);
        labels.push(b"le=\"+Inf\"");
        self.sample(&[name, "_bucket"], &labels, Value::Int(count));
        self.sample(&[name, "_sum"], row, ms_to_s(sum_ms));
        self.sample(&[name, "_count"], row, Value::Int(count));
    }
}

/// A row's labels (at most `upstream` and `server`) with room for one more, on the stack: a
/// scrape writes two such lists per key, and a heap list each was a tenth of its time.
fn row_labels<'a>(row: &[&'a [u8]]) -> ArrayVec<&'a [u8], 3> {
    debug_assert!(row.len() <= 2, "a row has at most two labels");
    row.iter().copied().take(2).collect()
}

/// Indices of the entries of a kind, sorted by name (the order of the output).
fn sorted(snapshot: &Snapshot, kind: Kind) -> Vec<usize> {
    let e = &snapshot.entries;
    let mut v: Vec<usize> = (0..e.len()).filter(|&i| e[i].kind == kind).collect();
    v.sort_by(|&a, &b| e[a].name.cmp(&e[b].name));
    v
}

/// The index of the overflow entry of `of` (`server`, `upstream`), once it holds something.
fn overflow(snapshot: &Snapshot, of: &[u8]) -> Option<usize> {
    snapshot
        .entries
        .iter()
        .position(|e| e.kind == Kind::Overflow && e.name == of && e.counters.requests > 0)
}

/// A name in a label: configured (escaped by [`label_value`]), or one of the module's own,
/// which no configured name renders to (see [`super::escape`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Name<'a> {
    Configured(&'a [u8]),
    Reserved(&'static str),
}

impl Name<'_> {
    /// In keys and peer states, the empty name stands for the module's own `reserved` name
    /// (no configured server, upstream or peer name is empty).
    fn or_reserved<'a>(name: &'a [u8], reserved: &'static str) -> Name<'a> {
        if name.is_empty() {
            Name::Reserved(reserved)
        } else {
            Name::Configured(name)
        }
    }

    fn label(self, key: &str) -> Vec<u8> {
        match self {
            Name::Configured(n) => label(key, n),
            Name::Reserved(n) => reserved_label(key, n),
        }
    }
}

/// Server zones to show, as (rendered `zone` label, entry index): every configured zone, and
/// the overflow entry once it holds something.
fn server_zones(snapshot: &Snapshot) -> Vec<(Vec<u8>, usize)> {
    let mut v: Vec<(Vec<u8>, usize)> = sorted(snapshot, Kind::Server)
        .into_iter()
        .map(|i| (label("zone", &snapshot.entries[i].name), i))
        .collect();
    if let Some(o) = overflow(snapshot, b"server") {
        v.push((Name::Reserved("::overflow").label("zone"), o));
    }
    v
}

/// One row of the upstream families: counters from the zone (an entry index), state from
/// nginx (an index into the peer states); either may be missing (a configured peer with no
/// traffic yet; a peer that had traffic and is gone).
#[derive(Default)]
struct PeerRow {
    counters: Option<usize>,
    state: Option<usize>,
}

/// A peer's rendered (upstream, server) labels and its row, sorted by (upstream, server).
type PeerLine = ([Vec<u8>; 2], PeerRow);

fn peer_rows<'a>(snapshot: &'a Snapshot, peers: &'a [PeerState]) -> Vec<PeerLine> {
    let key = |group: &'a [u8], server: &'a [u8]| {
        (
            Name::or_reserved(group, "::nogroups"),
            Name::or_reserved(server, "::none"),
        )
    };
    let mut rows: BTreeMap<(Name, Name), PeerRow> = BTreeMap::new();
    for (i, p) in peers.iter().enumerate() {
        rows.entry(key(&p.group, &p.server)).or_default().state = Some(i);
    }
    for (i, e) in snapshot.entries.iter().enumerate() {
        if e.kind != Kind::UpstreamPeer {
            continue;
        }
        if let Some((g, s)) = split_upstream_key(&e.name) {
            rows.entry(key(g, s)).or_default().counters = Some(i);
        }
    }
    if let Some(o) = overflow(snapshot, b"upstream") {
        let reserved = Name::Reserved("::overflow");
        rows.entry((reserved, reserved)).or_default().counters = Some(o);
    }
    rows.into_iter()
        .map(|((g, s), r)| ([g.label("upstream"), s.label("server")], r))
        .collect()
}

type PeerGauge = (&'static str, &'static str, fn(&PeerState) -> u64);

const PEER_GAUGES: [PeerGauge; 5] = [
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
        "Upstream server is a backup (1) or a primary (0)",
        |p| p.backup as u64,
    ),
];

/// The families with a series per key, in output order.
#[derive(Clone, Copy, PartialEq)]
enum Family {
    ServerRequests,
    ServerBytes,
    ServerResponses,
    ServerSeconds,
    ServerDuration,
    UpstreamRequests,
    UpstreamBytes,
    UpstreamResponses,
    UpstreamSeconds,
    UpstreamDuration,
    /// One of [`PEER_GAUGES`].
    PeerGauge(usize),
}

const FAMILIES: [Family; 15] = [
    Family::ServerRequests,
    Family::ServerBytes,
    Family::ServerResponses,
    Family::ServerSeconds,
    Family::ServerDuration,
    Family::UpstreamRequests,
    Family::UpstreamBytes,
    Family::UpstreamResponses,
    Family::UpstreamSeconds,
    Family::UpstreamDuration,
    Family::PeerGauge(0),
    Family::PeerGauge(1),
    Family::PeerGauge(2),
    Family::PeerGauge(3),
    Family::PeerGauge(4),
];

impl Family {
    /// Name, type and help.
    fn header(self) -> (&'static str, &'static str, &'static str) {
        match self {
            Family::ServerRequests => (
                "nginx_vts_server_requests_total",
                "counter",
                "Total number of requests",
            ),
            Family::ServerBytes => (
                "nginx_vts_server_bytes_total",
                "counter",
                "Total bytes transferred",
            ),
            Family::ServerResponses => (
                "nginx_vts_server_responses_total",
                "counter",
                "Total responses by status code",
            ),
            Family::ServerSeconds => (
                "nginx_vts_server_request_seconds",
                "gauge",
                "Request processing time",
            ),
            Family::ServerDuration => (
                "nginx_vts_server_request_duration_seconds",
                "histogram",
                "Request processing time histogram",
            ),
            Family::UpstreamRequests => (
                "nginx_vts_upstream_requests_total",
                "counter",
                "Total upstream requests",
            ),
            Family::UpstreamBytes => (
                "nginx_vts_upstream_bytes_total",
                "counter",
                "Total bytes transferred to/from upstream",
            ),
            Family::UpstreamResponses => (
                "nginx_vts_upstream_responses_total",
                "counter",
                "Upstream responses by status code",
            ),
            Family::UpstreamSeconds => (
                "nginx_vts_upstream_response_seconds",
                "gauge",
                "Upstream response time statistics",
            ),
            Family::UpstreamDuration => (
                "nginx_vts_upstream_response_duration_seconds",
                "histogram",
                "Upstream response time histogram",
            ),
            Family::PeerGauge(i) => (PEER_GAUGES[i].0, "gauge", PEER_GAUGES[i].1),
        }
    }

    fn upstream(self) -> bool {
        !matches!(
            self,
            Family::ServerRequests
                | Family::ServerBytes
                | Family::ServerResponses
                | Family::ServerSeconds
                | Family::ServerDuration
        )
    }
}

/// A scrape being written: what it needs is owned (or borrowed, `S` and `P`), and where it is
/// in the output is kept, so the text can be written in slices. The nginx layer writes one
/// slice per turn of the event loop, so that a scrape of many keys never holds a worker for
/// more than a slice; [`render`] writes it in one go.
pub struct Scrape<V> {
    /// The snapshot, and nginx's peer states (`None` when `vts_upstream_stats` is off: no
    /// upstream family).
    view: V,
    format: Format,
    /// The rendered `le` labels of the finite bounds.
    les: Vec<Vec<u8>>,
    zones: Vec<(Vec<u8>, usize)>,
    peer_rows: Vec<PeerLine>,
    zero: Counters,
    /// The next family ([`FAMILIES`] index) and row within it.
    family: usize,
    row: usize,
    /// The head is written.
    started: bool,
}

impl<V: Borrow<View>> Scrape<V> {
    /// Prepares the scrape; the first [`Scrape::write`] writes the families that do not grow
    /// with the keys (info, connections, memory).
    pub fn new(view: V, format: Format) -> Self {
        let v: &View = view.borrow();
        let snap: &Snapshot = &v.snapshot;
        let buckets = &v.display.bucket_seconds;
        let les = buckets
            .iter()
            .map(|b| label("le", format!("{b:?}").as_bytes()))
            .collect();
        let zones = server_zones(snap);
        let peer_rows = v.peers.as_ref().map_or_else(Vec::new, |p| peer_rows(snap, p));
        Scrape {
            zero: Counters::new(buckets.len()),
            view,
            format,
            les,
            zones,
            peer_rows,
            family: 0,
            row: 0,
            started: false,
        }
    }

    /// Writes rows until `out` has grown by `budget` bytes (at least one row) or the scrape is
    /// complete; true once it is.
    pub fn write(&mut self, out: &mut Vec<u8>, budget: usize) -> bool {
        if !self.started {
            self.started = true;
            let v: &View = self.view.borrow();
            // About 2.3 KB per server zone and 3 KB per peer with the default buckets, unless
            // the caller sized the buffer for more already (from its last scrape): a text
            // written in slices must not regrow (and copy) itself in one of them.
            let estimate = 4096 + v.snapshot.entries.len() * 3072;
            if out.capacity() < out.len() + estimate {
                out.reserve(estimate);
            }
            write_head(
                &mut Writer {
                    out,
                    format: self.format,
                },
                v,
            );
        }
        let start = out.len();
        let format = self.format;
        let mut w = Writer { out, format };
        while let Some(&family) = FAMILIES.get(self.family) {
            let upstream = family.upstream();
            let histogram = matches!(family, Family::ServerDuration | Family::UpstreamDuration);
            // No upstream families with `vts_upstream_stats off`, no histograms with
            // `vts_histogram_buckets off` (no bounds).
            if upstream && self.view.borrow().peers.is_none() || histogram && self.les.is_empty() {
                self.family += 1;
                continue;
            }
            if self.row == 0 {
                let (name, kind, help) = family.header();
                w.family(name, kind, help);
            }
            let rows = if upstream {
                self.peer_rows.len()
            } else {
                self.zones.len()
            };
            while self.row < rows {
                self.write_row(&mut w, family, self.row);
                self.row += 1;
                if w.out.len() - start >= budget {
                    return false;
                }
            }
            self.family += 1;
            self.row = 0;
        }
        if self.family == FAMILIES.len() {
            if format == Format::OpenMetrics {
                w.out.extend_from_slice(b"# EOF\n");
            }
            self.family += 1;
        }
        true
    }

    fn write_row(&self, w: &mut Writer, family: Family, row: usize) {
        let view: &View = self.view.borrow();
        let snap: &Snapshot = &view.snapshot;
        let counters = |i: usize| &snap.entries[i].counters;
        if !family.upstream() {
            let (z, i) = &self.zones[row];
            let (z, c) = (&z[..], counters(*i));
            let name = [family.header().0];
            match family {
                Family::ServerRequests => w.sample(&name, &[z], Value::Int(c.requests)),
                Family::ServerBytes => {
                    w.sample(&name, &[z, b"direction=\"in\""], Value::Int(c.bytes_in));
                    w.sample(&name, &[z, b"direction=\"out\""], Value::Int(c.bytes_out));
                }
                Family::ServerResponses => w.statuses(name[0], &[z], c),
                Family::ServerSeconds => {
                    w.sample(&name, &[z, b"type=\"avg\""], avg_s(c.time_sum_ms, c.requests));
                    w.sample(&name, &[z, b"type=\"min\""], ms_to_s(c.time_min_ms.unwrap_or(0)));
                    w.sample(&name, &[z, b"type=\"max\""], ms_to_s(c.time_max_ms));
                }
                _ => w.histogram(name[0], &[z], &self.les, &c.buckets, c.time_sum_ms, c.requests),
            }
            return;
        }
        let ([g, s], r) = &self.peer_rows[row];
        let (g, s) = (&g[..], &s[..]);
        let c = r.counters.map_or(&self.zero, counters);
        let name = [family.header().0];
        match family {
            Family::UpstreamRequests => w.sample(&name, &[g, s], Value::Int(c.requests)),
            Family::UpstreamBytes => {
                w.sample(&name, &[g, s, b"direction=\"in\""], Value::Int(c.bytes_in));
                w.sample(&name, &[g, s, b"direction=\"out\""], Value::Int(c.bytes_out));
            }
            Family::UpstreamResponses => w.statuses(name[0], &[g, s], c),
            Family::UpstreamSeconds => {
                w.sample(
                    &name,
                    &[g, s, b"type=\"request_avg\""],
                    avg_s(c.time_sum_ms, c.requests),
                );
                w.sample(
                    &name,
                    &[g, s, b"type=\"upstream_avg\""],
                    avg_s(c.upstream_sum_ms, c.upstream_count),
                );
            }
            // (In a zone with time queues a peer's own buckets hold the client's request
            // times; its upstream response times are in the response histogram.)
            Family::UpstreamDuration => w.histogram(
                name[0],
                &[g, s],
                &self.les,
                if view.display.queues {
                    &c.response_buckets
                } else {
                    &c.buckets
                },
                c.upstream_sum_ms,
                c.upstream_count,
            ),
            Family::PeerGauge(i) => {
                let state = r.state.zip(view.peers.as_ref()).map(|(i, p)| &p[i]);
                if let Some(st) = state {
                    w.sample(&name, &[g, s], Value::Int((PEER_GAUGES[i].2)(st)));
                }
            }
            _ => unreachable!("server families are written above"),
        }
    }
}

/// Renders the whole scrape.
pub fn render(view: &View, format: Format, out: &mut Vec<u8>) {
    let mut scrape = Scrape::new(view, format);
    while !scrape.write(out, usize::MAX) {}
}

impl<V: Borrow<View>> super::Renderer for Scrape<V> {
    fn write(&mut self, out: &mut Vec<u8>, budget: usize) -> bool {
        Scrape::write(self, out, budget)
    }
}

/// The families that do not grow with the keys.
fn write_head(w: &mut Writer, view: &View) {
    let (snapshot, info) = (&view.snapshot, &view.info);
    let format = w.format;
    w.family("nginx_vts_info", "gauge", "Nginx VTS module information");
    let info_labels = [
        label("hostname", &info.hostname),
        label("version", info.module_version.as_bytes()),
        label("nginx_version", info.nginx_version.as_bytes()),
    ];
    let info_refs: Vec<&[u8]> = info_labels.iter().map(Vec::as_slice).collect();
    w.sample(&["nginx_vts_info"], &info_refs, Value::Int(1));
    w.family(
        "nginx_vts_start_time_seconds",
        "gauge",
        "Unix time the statistics zone was created",
    );
    w.sample(
        &["nginx_vts_start_time_seconds"],
        &[],
        Value::Int(snapshot.created_unix),
    );

    if let Some(c) = view.connections {
        w.family("nginx_vts_connections", "gauge", "Current nginx connections");
        for (state, v) in [
            (&b"state=\"active\""[..], c.active),
            (b"state=\"reading\"", c.reading),
            (b"state=\"writing\"", c.writing),
            (b"state=\"waiting\"", c.waiting),
        ] {
            w.sample(&["nginx_vts_connections"], &[state], Value::Int(v));
        }
        // OpenMetrics would name this counter family `nginx_vts_connections`, the gauge's name:
        // there it is exposed as `unknown` under its full name instead.
        let kind = if format == Format::Text {
            "counter"
        } else {
            "unknown"
        };
        w.family("nginx_vts_connections_total", kind, "Total nginx connections");
        for (state, v) in [
            (&b"state=\"accepted\""[..], c.accepted),
            (b"state=\"handled\"", c.handled),
        ] {
            w.sample(&["nginx_vts_connections_total"], &[state], Value::Int(v));
        }
    }

    let shm = label("shm", &view.shm.name);
    let free = snapshot.size_bytes.saturating_sub(snapshot.used_bytes);
    w.family(
        "nginx_vts_shm_bytes",
        "gauge",
        "Statistics zone size, bytes in use and free",
    );
    for (state, v) in [
        (&b"state=\"size\""[..], snapshot.size_bytes),
        (b"state=\"used\"", snapshot.used_bytes),
        (b"state=\"free\"", free),
    ] {
        w.sample(&["nginx_vts_shm_bytes"], &[&shm, state], Value::Int(v as u64));
    }
    w.family(
        "nginx_vts_shm_keys",
        "gauge",
        "Keys in the statistics zone's directory, and its capacity",
    );
    for (state, v) in [
        (&b"state=\"used\""[..], snapshot.entries.len()),
        (b"state=\"max\"", snapshot.max_keys),
    ] {
        w.sample(&["nginx_vts_shm_keys"], &[&shm, state], Value::Int(v as u64));
    }
}

#[cfg(test)]
mod tests {
    #[allow(unused_imports)]
    use super::*;

    #[test]
    fn seconds_are_exact_decimals() {
        let s = |ns: u128| {
            let mut v = Vec::new();
            push_seconds(&mut v, ns);
            String::from_utf8(v).unwrap()
        };
        assert_eq!(s(0), "0.0");
        assert_eq!(s(1_000_000), "0.001");
        assert_eq!(s(250_000_000), "0.25");
        assert_eq!(s(2_500_000_000), "2.5");
        assert_eq!(s(10_000_000_000), "10.0");
        assert_eq!(s(122_866_894), "0.122866894");
        assert_eq!(s(1), "0.000000001");
        let avg = |sum, n| match avg_s(sum, n) {
            Value::Seconds(ns) => s(ns),
            Value::Int(_) => unreachable!(),
        };
        assert_eq!(avg(36, 293), "0.000122866");
        assert_eq!(avg(0, 0), "0.0");
    }

    #[test]
    fn negotiation() {
        assert_eq!(negotiate(b""), Format::Text);
        assert_eq!(negotiate(b"*/*"), Format::Text);
        assert_eq!(
            negotiate(b"application/openmetrics-text; version=1.0.0"),
            Format::OpenMetrics
        );
        assert_eq!(
            negotiate(
                b"application/openmetrics-text;version=1.0.0;q=0.5,text/plain;version=0.0.4;q=0.3,*/*;q=0.1"
            ),
            Format::OpenMetrics
        );
        assert_eq!(
            negotiate(b"application/openmetrics-text;q=0.2,text/plain;q=0.9"),
            Format::Text
        );
        assert_eq!(negotiate(b"application/openmetrics-text;q=0"), Format::Text);
    }
}
