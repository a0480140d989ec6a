//! nginx-module-vts's Prometheus dialect ("vozlt dialect"): the text its
//! `/format/prometheus` writes, from a [`View`].
//!
//! The text format reproduces the C module's layout: the main families, then per section
//! (server zones, upstream peers) every family's HELP/TYPE once, then one block per zone
//! with a sample of each family. OpenMetrics forbids a family's samples to be spread out
//! like that, so there each family is written whole (header, then every zone's samples):
//! the same families and samples, in family-major order.
//!
//! Where we differ from the C module on purpose: zones are sorted by name (the C module
//! writes its tree order), and every name goes through [`label_value`] (the C module does
//! not escape the host name, and lets control bytes and invalid UTF-8 through).
use super::escape::label_value;
use super::number::push_u64;
use super::prometheus::Format;
use super::Renderer;
use crate::stats::{split_upstream_key, Counters, Kind};
use crate::view::{average, StatusCodes, View, VOZLT_VERSION};

#[derive(Clone, Copy, PartialEq, Eq)]
enum Type {
    Counter,
    Gauge,
    Histogram,
}

impl Type {
    fn as_str(self) -> &'static str {
        match self {
            Type::Counter => "counter",
            Type::Gauge => "gauge",
            Type::Histogram => "histogram",
        }
    }
}

/// What one family writes for one row (a zone or a peer).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Cell {
    Bytes,
    Requests,
    Codes,
    RequestSecondsTotal,
    RequestSeconds,
    RequestDuration,
    Cache,
    ResponseSecondsTotal,
    ResponseSeconds,
    ResponseDuration,
}

struct Family {
    name: &'static str,
    typ: Type,
    help: &'static str,
    /// OpenMetrics names a counter family without `_total`; where that name is another
    /// family's, the counter is exposed as `unknown` under its full name instead.
    om_unknown: bool,
    cell: Cell,
}

const fn family(name: &'static str, typ: Type, help: &'static str, cell: Cell) -> Family {
    Family {
        name,
        typ,
        help,
        om_unknown: false,
        cell,
    }
}

const fn clashing_counter(name: &'static str, help: &'static str, cell: Cell) -> Family {
    Family {
        name,
        typ: Type::Counter,
        help,
        om_unknown: true,
        cell,
    }
}

/// Section 2, in header order (reference 4.3; the trailing space of the status-code HELP is
/// the C module's).
const SERVER_FAMILIES: [Family; 7] = [
    family(
        "nginx_vts_server_bytes_total",
        Type::Counter,
        "The request/response bytes",
        Cell::Bytes,
    ),
    family(
        "nginx_vts_server_requests_total",
        Type::Counter,
        "The requests counter",
        Cell::Requests,
    ),
    family(
        "nginx_vts_status_code_requests_total",
        Type::Counter,
        "The requests counter by status code ",
        Cell::Codes,
    ),
    clashing_counter(
        "nginx_vts_server_request_seconds_total",
        "The request processing time in seconds",
        Cell::RequestSecondsTotal,
    ),
    family(
        "nginx_vts_server_request_seconds",
        Type::Gauge,
        "The average of request processing times in seconds",
        Cell::RequestSeconds,
    ),
    family(
        "nginx_vts_server_request_duration_seconds",
        Type::Histogram,
        "The histogram of request processing time",
        Cell::RequestDuration,
    ),
    family(
        "nginx_vts_server_cache_total",
        Type::Counter,
        "The requests cache counter",
        Cell::Cache,
    ),
];

/// A zone's block writes the status codes after the averages (not in header order).
const SERVER_BLOCK: [usize; 7] = [0, 1, 3, 4, 2, 5, 6];

/// Section 4 (reference 4.5; "Processing" is the C module's).
const UPSTREAM_FAMILIES: [Family; 8] = [
    family(
        "nginx_vts_upstream_bytes_total",
        Type::Counter,
        "The request/response bytes",
        Cell::Bytes,
    ),
    family(
        "nginx_vts_upstream_requests_total",
        Type::Counter,
        "The upstream requests counter",
        Cell::Requests,
    ),
    clashing_counter(
        "nginx_vts_upstream_request_seconds_total",
        "The request Processing time including upstream in seconds",
        Cell::RequestSecondsTotal,
    ),
    family(
        "nginx_vts_upstream_request_seconds",
        Type::Gauge,
        "The average of request processing times including upstream in seconds",
        Cell::RequestSeconds,
    ),
    clashing_counter(
        "nginx_vts_upstream_response_seconds_total",
        "The only upstream response processing time in seconds",
        Cell::ResponseSecondsTotal,
    ),
    family(
        "nginx_vts_upstream_response_seconds",
        Type::Gauge,
        "The average of only upstream response processing times in seconds",
        Cell::ResponseSeconds,
    ),
    family(
        "nginx_vts_upstream_request_duration_seconds",
        Type::Histogram,
        "The histogram of request processing time including upstream",
        Cell::RequestDuration,
    ),
    family(
        "nginx_vts_upstream_response_duration_seconds",
        Type::Histogram,
        "The histogram of only upstream response processing time",
        Cell::ResponseDuration,
    ),
];

const UPSTREAM_BLOCK: [usize; 8] = [0, 1, 2, 3, 4, 5, 6, 7];

/// The cache statuses, in output order.
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

/// The sections that grow with the keys, in output order. (The filter section, section 3
/// of the C module, will go between them.)
#[derive(Clone, Copy, PartialEq, Eq)]
enum Part {
    Server,
    Upstream,
}

const PARTS: [Part; 2] = [Part::Server, Part::Upstream];

impl Part {
    fn families(self) -> &'static [Family] {
        match self {
            Part::Server => &SERVER_FAMILIES,
            Part::Upstream => &UPSTREAM_FAMILIES,
        }
    }

    /// The families of one row's block (text format), as indexes into `families()`.
    fn block(self) -> &'static [usize] {
        match self {
            Part::Server => &SERVER_BLOCK,
            Part::Upstream => &UPSTREAM_BLOCK,
        }
    }
}

/// Where a row's counters are.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Src {
    /// `view.snapshot.entries[i]`.
    Entry(usize),
    /// The sum of the server zones.
    Sum,
}

/// One zone or peer: its labels, rendered once (`host="..."` or `upstream="...",backend="..."`).
struct Row {
    labels: Vec<u8>,
    src: Src,
}

/// Where the next slice starts: part, family (OpenMetrics only) and row.
#[derive(Clone, Copy, Default)]
struct Cursor {
    part: usize,
    fam: usize,
    row: usize,
}

/// A vozlt-dialect scrape, written in slices (see [`Renderer`]).
pub struct VozltScrape {
    view: View,
    format: Format,
    sum: Counters,
    server_rows: Vec<Row>,
    /// Empty when upstream statistics are off or no peer has a key yet (no section 4).
    upstream_rows: Vec<Row>,
    /// The rendered `le="..."` labels of the finite bounds.
    cursor: Cursor,
    started: bool,
    done: bool,
}

impl VozltScrape {
    pub fn new(view: View, format: Format) -> VozltScrape {
        let entries = &view.snapshot.entries;
        let mut server_rows: Vec<Row> = Vec::new();
        // Zones that counted a request (the C module's nodes; configured server blocks have
        // keys from the start), sorted by name (the C module writes its tree order, which is
        // no contract).
        let mut servers: Vec<usize> = (0..entries.len())
            .filter(|&i| entries[i].kind == Kind::Server && entries[i].counters.counted())
            .collect();
        servers.sort_by(|&a, &b| entries[a].name.cmp(&entries[b].name));
        for i in servers {
            server_rows.push(Row {
                labels: labels(&[("host", Name::Configured(&entries[i].name))]),
                src: Src::Entry(i),
            });
        }
        if let Some(i) = overflow(&view, b"server") {
            server_rows.push(Row {
                labels: labels(&[("host", Name::Own("::overflow"))]),
                src: Src::Entry(i),
            });
        }
        server_rows.push(Row {
            labels: labels(&[("host", Name::Configured(&view.display.sum_key))]),
            src: Src::Sum,
        });

        let mut upstream_rows = Vec::new();
        if view.peers.is_some() {
            // Only peers that counted something (the C module lists its nodes, made by an
            // attempt; configured peers have keys here from the start), by (group, peer) with
            // the peers of no group last.
            let mut peers: Vec<(bool, &[u8], &[u8], usize)> = entries
                .iter()
                .enumerate()
                .filter(|(_, e)| e.kind == Kind::UpstreamPeer)
                .filter(|(_, e)| e.counters.counted())
                .filter_map(|(i, e)| {
                    let (g, p) = split_upstream_key(&e.name)?;
                    Some((g.is_empty(), g, p, i))
                })
                .collect();
            peers.sort();
            for (_, g, p, i) in peers {
                let group = or_own(g, "::nogroups");
                let backend = or_own(p, "::none");
                upstream_rows.push(Row {
                    labels: labels(&[("upstream", group), ("backend", backend)]),
                    src: Src::Entry(i),
                });
            }
            if let Some(i) = overflow(&view, b"upstream") {
                upstream_rows.push(Row {
                    labels: labels(&[
                        ("upstream", Name::Own("::nogroups")),
                        ("backend", Name::Own("::overflow")),
                    ]),
                    src: Src::Entry(i),
                });
            }
        }

        VozltScrape {
            sum: view.server_sum(),
            view,
            format,
            server_rows,
            upstream_rows,
            cursor: Cursor::default(),
            started: false,
            done: false,
        }
    }

    fn rows(&self, part: Part) -> &[Row] {
        match part {
            Part::Server => &self.server_rows,
            Part::Upstream => &self.upstream_rows,
        }
    }

    /// Moves past parts without rows (they write nothing, not even their header).
    fn skip_empty(&mut self) {
        while PARTS
            .get(self.cursor.part)
            .is_some_and(|&p| self.rows(p).is_empty())
        {
            self.cursor = Cursor {
                part: self.cursor.part + 1,
                ..Cursor::default()
            };
        }
    }

    /// Writes the row unit at the cursor (with the headers that come before it) and moves on.
    fn write_unit(&mut self, out: &mut Vec<u8>) {
        let part = PARTS[self.cursor.part];
        let fams = part.families();
        let Cursor { fam, row, .. } = self.cursor;
        let r = &self.rows(part)[row];
        let rows = self.rows(part).len();
        let next = match self.format {
            Format::Text => {
                if row == 0 {
                    for f in fams {
                        self.header(out, f);
                    }
                }
                for &f in part.block() {
                    self.cell(out, fams[f].name, fams[f].cell, r);
                }
                (row + 1 < rows).then_some((0, row + 1))
            }
            Format::OpenMetrics => {
                if row == 0 {
                    self.header(out, &fams[fam]);
                }
                self.cell(out, fams[fam].name, fams[fam].cell, r);
                if row + 1 < rows {
                    Some((fam, row + 1))
                } else {
                    (fam + 1 < fams.len()).then_some((fam + 1, 0))
                }
            }
        };
        self.cursor = match next {
            Some((fam, row)) => Cursor {
                fam,
                row,
                ..self.cursor
            },
            None => Cursor {
                part: self.cursor.part + 1,
                ..Cursor::default()
            },
        };
        self.skip_empty();
    }

    fn header(&self, out: &mut Vec<u8>, f: &Family) {
        let (name, typ) = match (self.format, f.typ) {
            (Format::OpenMetrics, Type::Counter) if f.om_unknown => (f.name, "unknown"),
            (Format::OpenMetrics, Type::Counter) => {
                (f.name.strip_suffix("_total").unwrap_or(f.name), "counter")
            }
            _ => (f.name, f.typ.as_str()),
        };
        push_header(out, name, typ, f.help.as_bytes());
    }

    fn counters(&self, src: Src) -> &Counters {
        match src {
            Src::Entry(i) => &self.view.snapshot.entries[i].counters,
            Src::Sum => &self.sum,
        }
    }

    /// The average request (or upstream response) time in ms: over the time queue with the
    /// display location's method and period, or the mean since the start without queues.
    fn average_ms(&self, c: &Counters, response: bool) -> u64 {
        let d = &self.view.display;
        let (queue, sum, n) = if response {
            (&c.response_queue, c.upstream_sum_ms, c.upstream_count)
        } else {
            (&c.queue, c.time_sum_ms, c.requests)
        };
        if d.queues {
            average(queue, d.method, d.period_ms, self.view.info.now_msec)
        } else {
            sum.checked_div(n).unwrap_or(0)
        }
    }

    /// One family's samples for one row.
    fn cell(&self, out: &mut Vec<u8>, name: &str, cell: Cell, row: &Row) {
        let c = self.counters(row.src);
        let l = &row.labels[..];
        match cell {
            Cell::Bytes => {
                sample(out, name, l, b"direction=\"in\"", Value::Int(c.bytes_in));
                sample(out, name, l, b"direction=\"out\"", Value::Int(c.bytes_out));
            }
            Cell::Requests => {
                for (class, &n) in CLASSES.iter().zip(&c.status) {
                    let mut code = *b"code=\"?xx\"";
                    code[6] = class.as_bytes()[0];
                    sample(out, name, l, &code, Value::Int(n));
                }
            }
            Cell::Codes => self.codes(out, name, l, c),
            Cell::RequestSecondsTotal => sample(out, name, l, b"", Value::Ms(c.time_sum_ms)),
            Cell::RequestSeconds => sample(out, name, l, b"", Value::Ms(self.average_ms(c, false))),
            Cell::ResponseSecondsTotal => sample(out, name, l, b"", Value::Ms(c.upstream_sum_ms)),
            Cell::ResponseSeconds => sample(out, name, l, b"", Value::Ms(self.average_ms(c, true))),
            Cell::RequestDuration => {
                // The sum entry never has a histogram (as in the C module).
                if let Src::Entry(i) = row.src {
                    let tag = self.view.snapshot.entries[i].tag;
                    self.histogram(out, name, l, tag, &c.buckets, c.time_sum_ms, c.requests);
                }
            }
            Cell::ResponseDuration => {
                if let Src::Entry(i) = row.src {
                    let tag = self.view.snapshot.entries[i].tag;
                    let per_bucket = &c.response_buckets;
                    self.histogram(out, name, l, tag, per_bucket, c.upstream_sum_ms, c.requests)
                }
            }
            Cell::Cache => {
                // Cache statistics are not counted yet (a later issue): the C module writes
                // these 8 series for every zone in a build with the HTTP cache, so do we, as 0.
                for status in CACHE_STATUSES {
                    let mut s = Vec::with_capacity(24);
                    s.extend_from_slice(b"status=\"");
                    s.extend_from_slice(status.as_bytes());
                    s.push(b'"');
                    sample(out, name, l, &s, Value::Int(0));
                }
            }
        }
    }

    /// `measure_status_codes`: `other` first, then every listed code, or (`all`) every code
    /// that happened. Only for keys that have the array.
    fn codes(&self, out: &mut Vec<u8>, name: &str, l: &[u8], c: &Counters) {
        let codes = &self.view.display.codes;
        if *codes == StatusCodes::Off || c.codes.is_empty() {
            return;
        }
        sample(out, name, l, b"code=\"other\"", Value::Int(c.codes[0]));
        let mut code_label = |code: u16, n: u64| {
            let mut s = *b"code=\"000\"";
            s[6..9].copy_from_slice(three_digits(code).as_slice());
            sample(out, name, l, &s, Value::Int(n));
        };
        match codes {
            StatusCodes::Off => {}
            StatusCodes::List(list) => {
                for (i, &code) in list.iter().enumerate() {
                    code_label(code, c.codes.get(i + 1).copied().unwrap_or(0));
                }
            }
            StatusCodes::All => {
                for (i, &n) in c.codes.iter().enumerate().skip(1) {
                    if let (Some(code), true) = (codes.code_at(i), n > 0) {
                        code_label(code, n);
                    }
                }
            }
        }
    }

    /// One histogram series: cumulative finite buckets (the bounds of the key's list, in
    /// ascending order as the format wants them), `+Inf` and `_count` the requests, `_sum` the
    /// time counter. Nothing without bounds.
    #[allow(clippy::too_many_arguments)]
    fn histogram(
        &self,
        out: &mut Vec<u8>,
        name: &str,
        l: &[u8],
        tag: u32,
        per_bucket: &[u64],
        sum_ms: u64,
        requests: u64,
    ) {
        let mut h = self.view.display.histogram(tag, per_bucket);
        if h.is_empty() {
            return;
        }
        h.sort_unstable();
        h.dedup_by_key(|&mut (bound, _)| bound);
        let mut le = Vec::with_capacity(24);
        for &(bound, n) in &h {
            le.clear();
            le.extend_from_slice(b"le=\"");
            push_bound(&mut le, bound);
            le.push(b'"');
            suffixed(out, name, "_bucket", l, &le, Value::Int(n));
        }
        // The C module writes the request counter; a histogram whose buckets hold more (which
        // ours never should) would be invalid, so never less than the buckets.
        let count = requests.max(h.last().map_or(0, |&(_, n)| n));
        suffixed(out, name, "_bucket", l, b"le=\"+Inf\"", Value::Int(count));
        suffixed(out, name, "_sum", l, b"", Value::Ms(sum_ms));
        suffixed(out, name, "_count", l, b"", Value::Int(count));
    }

    /// Section 1 and nothing else: process info, connections, the zone's use.
    fn write_main(&self, out: &mut Vec<u8>) {
        let v = &self.view;
        push_header(out, "nginx_vts_info", "gauge", b"Nginx info");
        out.extend_from_slice(b"nginx_vts_info{hostname=\"");
        label_value(out, &v.info.hostname);
        out.extend_from_slice(b"\",module_version=\"");
        label_value(out, VOZLT_VERSION.as_bytes());
        out.extend_from_slice(b"\",version=\"");
        label_value(out, v.info.nginx_version.as_bytes());
        out.extend_from_slice(b"\"} 1\n");

        push_header(out, "nginx_vts_start_time_seconds", "gauge", b"Nginx start time");
        sample(
            out,
            "nginx_vts_start_time_seconds",
            b"",
            b"",
            Value::Ms(v.info.load_msec),
        );

        let name = "nginx_vts_main_connections";
        push_header(out, name, "gauge", b"Nginx connections");
        let c = v.connections.unwrap_or_default();
        // Alphabetical here (the JSON's order differs).
        for (state, n) in [
            (&b"status=\"accepted\""[..], c.accepted),
            (b"status=\"active\"", c.active),
            (b"status=\"handled\"", c.handled),
            (b"status=\"reading\"", c.reading),
            (b"status=\"requests\"", c.requests),
            (b"status=\"waiting\"", c.waiting),
            (b"status=\"writing\"", c.writing),
        ] {
            sample(out, name, b"", state, Value::Int(n));
        }

        let name = "nginx_vts_main_shm_usage_bytes";
        let mut help = b"Shared memory [".to_vec();
        help_text(&mut help, &v.shm.name, self.format);
        help.extend_from_slice(b"] info");
        push_header(out, name, "gauge", &help);
        for (state, n) in [
            (&b"shared=\"max_size\""[..], v.shm.max_size),
            (b"shared=\"used_size\"", v.shm.used_size),
            (b"shared=\"used_node\"", v.shm.used_node),
            (b"shared=\"free_size\"", v.shm.free_size),
        ] {
            sample(out, name, b"", state, Value::Int(n));
        }
    }
}

impl Renderer for VozltScrape {
    fn write(&mut self, out: &mut Vec<u8>, budget: usize) -> bool {
        if self.done {
            return true;
        }
        let start = out.len();
        if !self.started {
            // About 1.5 KB per zone or peer and 100 bytes per bucket line: a text written in
            // slices should not regrow (and copy) itself in one of them.
            let rows = self.server_rows.len() + self.upstream_rows.len();
            out.reserve(4096 + rows * (1536 + 200 * self.view.display.bucket_us.len()));
            self.write_main(out);
            self.started = true;
            self.skip_empty();
        }
        // Budget is checked after each row, so a call writes at least one (that is not empty:
        // a family can have nothing for a row, e.g. no histogram for the sum entry).
        while self.cursor.part < PARTS.len() {
            self.write_unit(out);
            let written = out.len() - start;
            if self.cursor.part < PARTS.len() && written > 0 && written >= budget {
                return false;
            }
        }
        if self.format == Format::OpenMetrics {
            out.extend_from_slice(b"# EOF\n");
        }
        self.done = true;
        true
    }
}

/// The whole scrape in one go.
pub fn render(view: View, format: Format) -> Vec<u8> {
    let mut out = Vec::new();
    let mut s = VozltScrape::new(view, format);
    while !s.write(&mut out, usize::MAX) {}
    out
}

/// A name in a label: configured (escaped), or one of the module's own, written literally.
#[derive(Clone, Copy)]
enum Name<'a> {
    Configured(&'a [u8]),
    Own(&'static str),
}

/// Keys store the module's own names as the empty name (no configured name is empty).
fn or_own<'a>(name: &'a [u8], own: &'static str) -> Name<'a> {
    if name.is_empty() {
        Name::Own(own)
    } else {
        Name::Configured(name)
    }
}

/// `k1="v1",k2="v2"`.
fn labels(pairs: &[(&str, Name)]) -> Vec<u8> {
    let mut v = Vec::with_capacity(64);
    for (i, (key, name)) in pairs.iter().enumerate() {
        if i > 0 {
            v.push(b',');
        }
        v.extend_from_slice(key.as_bytes());
        v.extend_from_slice(b"=\"");
        match name {
            Name::Configured(n) => label_value(&mut v, n),
            Name::Own(n) => v.extend_from_slice(n.as_bytes()),
        }
        v.push(b'"');
    }
    v
}

/// The overflow entry of `of` (`server`, `upstream`), once it counted something.
fn overflow(view: &View, of: &[u8]) -> Option<usize> {
    view.snapshot
        .entries
        .iter()
        .position(|e| e.kind == Kind::Overflow && e.name == of && e.counters.requests > 0)
}

#[derive(Clone, Copy)]
enum Value {
    Int(u64),
    /// Milliseconds, written as seconds with 3 decimals (the C module's `%.3f` of ms/1000,
    /// which is exact for whole milliseconds).
    Ms(u64),
}

fn push_header(out: &mut Vec<u8>, name: &str, typ: &str, help: &[u8]) {
    out.extend_from_slice(b"# HELP ");
    out.extend_from_slice(name.as_bytes());
    out.push(b' ');
    out.extend_from_slice(help);
    out.extend_from_slice(b"\n# TYPE ");
    out.extend_from_slice(name.as_bytes());
    out.push(b' ');
    out.extend_from_slice(typ.as_bytes());
    out.push(b'\n');
}

/// `name{row labels,extra} value`; either label part may be empty.
fn sample(out: &mut Vec<u8>, name: &str, row: &[u8], extra: &[u8], v: Value) {
    suffixed(out, name, "", row, extra, v)
}

fn suffixed(out: &mut Vec<u8>, name: &str, suffix: &str, row: &[u8], extra: &[u8], v: Value) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(suffix.as_bytes());
    if !row.is_empty() || !extra.is_empty() {
        out.push(b'{');
        out.extend_from_slice(row);
        if !row.is_empty() && !extra.is_empty() {
            out.push(b',');
        }
        out.extend_from_slice(extra);
        out.push(b'}');
    }
    out.push(b' ');
    match v {
        Value::Int(n) => push_u64(out, n),
        Value::Ms(ms) => push_ms(out, ms),
    }
    out.push(b'\n');
}

/// `ms` as seconds with exactly 3 decimals: `0.000`, `1.234`.
fn push_ms(out: &mut Vec<u8>, ms: u64) {
    push_u64(out, ms / 1000);
    out.push(b'.');
    out.extend_from_slice(&three_digits((ms % 1000) as u16));
}

/// Three decimal digits, zero-padded.
fn three_digits(n: u16) -> [u8; 3] {
    [
        b'0' + (n / 100 % 10) as u8,
        b'0' + (n / 10 % 10) as u8,
        b'0' + (n % 10) as u8,
    ]
}

/// A histogram bound given in µs, in seconds: 3 decimals like the C module (its bounds are
/// whole ms); a finer bound (not a vozlt configuration) keeps its digits, so that two bounds
/// never print alike.
fn push_bound(out: &mut Vec<u8>, us: u64) {
    if us % 1000 == 0 {
        return push_ms(out, us / 1000);
    }
    push_u64(out, us / 1_000_000);
    out.push(b'.');
    let mut digits = [b'0'; 6];
    let mut f = us % 1_000_000;
    for d in digits.iter_mut().rev() {
        *d = b'0' + (f % 10) as u8;
        f /= 10;
    }
    let len = 6 - digits.iter().rev().take_while(|&&d| d == b'0').count();
    out.extend_from_slice(&digits[..len]);
}

/// A name inside HELP text: backslash and newline escaped (the text format's HELP escapes),
/// and in OpenMetrics the double quote too (its HELP is an escaped string); bytes that are not
/// UTF-8 shown as in label values (U+FFFD and two hex digits).
fn help_text(out: &mut Vec<u8>, name: &[u8], format: Format) {
    for chunk in name.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\\' => out.extend_from_slice(b"\\\\"),
                '\n' => out.extend_from_slice(b"\\n"),
                '"' if format == Format::OpenMetrics => out.extend_from_slice(b"\\\""),
                _ => {
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                }
            }
        }
        for &b in chunk.invalid() {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.extend_from_slice("\u{FFFD}".as_bytes());
            out.push(HEX[(b >> 4) as usize]);
            out.push(HEX[(b & 15) as usize]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::{upstream_key, Entry, Snapshot};
    use crate::view::{AvgMethod, Connections, Display, Info, ShmUse};

    const NOW: u64 = 1_700_000_100_000;

    fn entry(kind: Kind, name: &[u8], c: Counters) -> Entry {
        Entry {
            kind,
            name: name.to_vec(),
            counters: c,

            ..Default::default()
        }
    }

    /// requests, bytes in/out, status classes (1xx..5xx, other), request time sum.
    fn counters(requests: u64, io: (u64, u64), status: [u64; 6], time_sum_ms: u64) -> Counters {
        Counters {
            requests,
            bytes_in: io.0,
            bytes_out: io.1,
            status,
            time_sum_ms,
            ..Default::default()
        }
    }

    /// Status codes listed, two bounds, upstream peers of groups and of none, both overflow
    /// entries, hostile names.
    fn list_view() -> View {
        let mut overflow_s = counters(2, (20, 40), [0, 0, 0, 0, 2, 0], 7);
        overflow_s.codes = vec![2, 0, 0];
        overflow_s.buckets = vec![0, 1];
        overflow_s.queue = vec![(NOW - 10, 7)];
        let mut overflow_u = counters(1, (0, 0), [0, 0, 0, 0, 1, 0], 0);
        overflow_u.upstream_sum_ms = 3;
        overflow_u.upstream_count = 1;
        overflow_u.buckets = vec![0, 0];
        overflow_u.response_buckets = vec![1, 0];
        overflow_u.response_queue = vec![(NOW - 5, 3)];
        let mut b = counters(3, (300, 900), [0, 2, 0, 1, 0, 0], 1234);
        b.codes = vec![0, 2, 1];
        b.buckets = vec![1, 1];
        // The first sample is older than the 60 s window.
        b.queue = vec![(NOW - 70_000, 999), (NOW - 1000, 10), (NOW - 500, 21)];
        let mut hostile = counters(1, (50, 60), [0, 1, 0, 0, 0, 0], 1000);
        hostile.codes = vec![1, 0, 0];
        hostile.buckets = vec![0, 1];
        hostile.queue = vec![(NOW - 100, 1000)];
        let mut back = counters(4, (400, 800), [0, 3, 0, 0, 1, 0], 40);
        back.upstream_sum_ms = 30;
        back.upstream_count = 4;
        back.buckets = vec![3, 1];
        back.response_buckets = vec![4, 0];
        back.queue = vec![(NOW - 2000, 10), (NOW - 1000, 20)];
        back.response_queue = vec![(NOW - 2000, 6), (NOW - 1000, 9)];
        let mut nogroup = counters(1, (10, 20), [0, 1, 0, 0, 0, 0], 5);
        nogroup.upstream_sum_ms = 4;
        nogroup.upstream_count = 1;
        nogroup.buckets = vec![1, 0];
        nogroup.response_buckets = vec![1, 0];
        nogroup.queue = vec![(NOW - 1, 5)];
        nogroup.response_queue = vec![(NOW - 1, 4)];
        let mut none = counters(1, (0, 0), [0, 0, 0, 0, 1, 0], 0);
        none.buckets = vec![0, 0];
        View {
            info: Info {
                hostname: b"web\"1".to_vec(),
                module_version: "0.1.0".into(),
                nginx_version: "1.28.3".into(),
                load_msec: 1_700_000_000_123,
                now_msec: NOW,
            },
            connections: Some(Connections {
                active: 3,
                reading: 1,
                writing: 2,
                waiting: 0,
                accepted: 10,
                handled: 9,
                requests: 20,
            }),
            shm: ShmUse {
                name: b"vts\\z\"o\nne".to_vec(),
                max_size: 1_048_576,
                used_size: 4096,
                free_size: 1_044_480,
                used_node: 5,
                max_node: 100,
            },
            snapshot: Snapshot {
                // Registration order, which the output does not follow.
                entries: vec![
                    entry(Kind::Overflow, b"server", overflow_s),
                    entry(Kind::Overflow, b"upstream", overflow_u),
                    entry(Kind::Server, b"b.example", b),
                    entry(Kind::UpstreamPeer, &upstream_key(b"back", b"10.0.0.2:80"), back),
                    entry(Kind::UpstreamPeer, &upstream_key(b"", b"127.0.0.1:8080"), nogroup),
                    entry(Kind::Server, b"a\"b\\c\nd\xff", hostile),
                    entry(Kind::UpstreamPeer, &upstream_key(b"back", b""), none),
                    // A configured peer, registered at worker start, no attempt yet: not listed
                    // (the C module has no node for it).
                    entry(
                        Kind::UpstreamPeer,
                        &upstream_key(b"alpha", b"x"),
                        Counters::new(2),
                    ),
                ],
                ..Default::default()
            },
            peers: Some(Vec::new()),
            display: Display {
                codes: StatusCodes::List(vec![200, 404]),
                bucket_seconds: vec![0.005, 1.0],
                bucket_us: vec![5_000, 1_000_000],
                ..Display::default()
            },
        }
    }

    /// Written from the reference (section 4), not from the renderer's output.
    const LIST_TEXT: &str = r#"# HELP nginx_vts_info Nginx info
# TYPE nginx_vts_info gauge
nginx_vts_info{hostname="web\"1",module_version="v0.2.7",version="1.28.3"} 1
# HELP nginx_vts_start_time_seconds Nginx start time
# TYPE nginx_vts_start_time_seconds gauge
nginx_vts_start_time_seconds 1700000000.123
# HELP nginx_vts_main_connections Nginx connections
# TYPE nginx_vts_main_connections gauge
nginx_vts_main_connections{status="accepted"} 10
nginx_vts_main_connections{status="active"} 3
nginx_vts_main_connections{status="handled"} 9
nginx_vts_main_connections{status="reading"} 1
nginx_vts_main_connections{status="requests"} 20
nginx_vts_main_connections{status="waiting"} 0
nginx_vts_main_connections{status="writing"} 2
# HELP nginx_vts_main_shm_usage_bytes Shared memory [vts\\z"o\nne] info
# TYPE nginx_vts_main_shm_usage_bytes gauge
nginx_vts_main_shm_usage_bytes{shared="max_size"} 1048576
nginx_vts_main_shm_usage_bytes{shared="used_size"} 4096
nginx_vts_main_shm_usage_bytes{shared="used_node"} 5
nginx_vts_main_shm_usage_bytes{shared="free_size"} 1044480
# HELP nginx_vts_server_bytes_total The request/response bytes
# TYPE nginx_vts_server_bytes_total counter
# HELP nginx_vts_server_requests_total The requests counter
# TYPE nginx_vts_server_requests_total counter
# HELP nginx_vts_status_code_requests_total The requests counter by status code 
# TYPE nginx_vts_status_code_requests_total counter
# HELP nginx_vts_server_request_seconds_total The request processing time in seconds
# TYPE nginx_vts_server_request_seconds_total counter
# HELP nginx_vts_server_request_seconds The average of request processing times in seconds
# TYPE nginx_vts_server_request_seconds gauge
# HELP nginx_vts_server_request_duration_seconds The histogram of request processing time
# TYPE nginx_vts_server_request_duration_seconds histogram
# HELP nginx_vts_server_cache_total The requests cache counter
# TYPE nginx_vts_server_cache_total counter
nginx_vts_server_bytes_total{host="a\"b\\c\nd�ff",direction="in"} 50
nginx_vts_server_bytes_total{host="a\"b\\c\nd�ff",direction="out"} 60
nginx_vts_server_requests_total{host="a\"b\\c\nd�ff",code="1xx"} 0
nginx_vts_server_requests_total{host="a\"b\\c\nd�ff",code="2xx"} 1
nginx_vts_server_requests_total{host="a\"b\\c\nd�ff",code="3xx"} 0
nginx_vts_server_requests_total{host="a\"b\\c\nd�ff",code="4xx"} 0
nginx_vts_server_requests_total{host="a\"b\\c\nd�ff",code="5xx"} 0
nginx_vts_server_request_seconds_total{host="a\"b\\c\nd�ff"} 1.000
nginx_vts_server_request_seconds{host="a\"b\\c\nd�ff"} 1.000
nginx_vts_status_code_requests_total{host="a\"b\\c\nd�ff",code="other"} 1
nginx_vts_status_code_requests_total{host="a\"b\\c\nd�ff",code="200"} 0
nginx_vts_status_code_requests_total{host="a\"b\\c\nd�ff",code="404"} 0
nginx_vts_server_request_duration_seconds_bucket{host="a\"b\\c\nd�ff",le="0.005"} 0
nginx_vts_server_request_duration_seconds_bucket{host="a\"b\\c\nd�ff",le="1.000"} 1
nginx_vts_server_request_duration_seconds_bucket{host="a\"b\\c\nd�ff",le="+Inf"} 1
nginx_vts_server_request_duration_seconds_sum{host="a\"b\\c\nd�ff"} 1.000
nginx_vts_server_request_duration_seconds_count{host="a\"b\\c\nd�ff"} 1
nginx_vts_server_cache_total{host="a\"b\\c\nd�ff",status="miss"} 0
nginx_vts_server_cache_total{host="a\"b\\c\nd�ff",status="bypass"} 0
nginx_vts_server_cache_total{host="a\"b\\c\nd�ff",status="expired"} 0
nginx_vts_server_cache_total{host="a\"b\\c\nd�ff",status="stale"} 0
nginx_vts_server_cache_total{host="a\"b\\c\nd�ff",status="updating"} 0
nginx_vts_server_cache_total{host="a\"b\\c\nd�ff",status="revalidated"} 0
nginx_vts_server_cache_total{host="a\"b\\c\nd�ff",status="hit"} 0
nginx_vts_server_cache_total{host="a\"b\\c\nd�ff",status="scarce"} 0
nginx_vts_server_bytes_total{host="b.example",direction="in"} 300
nginx_vts_server_bytes_total{host="b.example",direction="out"} 900
nginx_vts_server_requests_total{host="b.example",code="1xx"} 0
nginx_vts_server_requests_total{host="b.example",code="2xx"} 2
nginx_vts_server_requests_total{host="b.example",code="3xx"} 0
nginx_vts_server_requests_total{host="b.example",code="4xx"} 1
nginx_vts_server_requests_total{host="b.example",code="5xx"} 0
nginx_vts_server_request_seconds_total{host="b.example"} 1.234
nginx_vts_server_request_seconds{host="b.example"} 0.015
nginx_vts_status_code_requests_total{host="b.example",code="other"} 0
nginx_vts_status_code_requests_total{host="b.example",code="200"} 2
nginx_vts_status_code_requests_total{host="b.example",code="404"} 1
nginx_vts_server_request_duration_seconds_bucket{host="b.example",le="0.005"} 1
nginx_vts_server_request_duration_seconds_bucket{host="b.example",le="1.000"} 2
nginx_vts_server_request_duration_seconds_bucket{host="b.example",le="+Inf"} 3
nginx_vts_server_request_duration_seconds_sum{host="b.example"} 1.234
nginx_vts_server_request_duration_seconds_count{host="b.example"} 3
nginx_vts_server_cache_total{host="b.example",status="miss"} 0
nginx_vts_server_cache_total{host="b.example",status="bypass"} 0
nginx_vts_server_cache_total{host="b.example",status="expired"} 0
nginx_vts_server_cache_total{host="b.example",status="stale"} 0
nginx_vts_server_cache_total{host="b.example",status="updating"} 0
nginx_vts_server_cache_total{host="b.example",status="revalidated"} 0
nginx_vts_server_cache_total{host="b.example",status="hit"} 0
nginx_vts_server_cache_total{host="b.example",status="scarce"} 0
nginx_vts_server_bytes_total{host="::overflow",direction="in"} 20
nginx_vts_server_bytes_total{host="::overflow",direction="out"} 40
nginx_vts_server_requests_total{host="::overflow",code="1xx"} 0
nginx_vts_server_requests_total{host="::overflow",code="2xx"} 0
nginx_vts_server_requests_total{host="::overflow",code="3xx"} 0
nginx_vts_server_requests_total{host="::overflow",code="4xx"} 0
nginx_vts_server_requests_total{host="::overflow",code="5xx"} 2
nginx_vts_server_request_seconds_total{host="::overflow"} 0.007
nginx_vts_server_request_seconds{host="::overflow"} 0.007
nginx_vts_status_code_requests_total{host="::overflow",code="other"} 2
nginx_vts_status_code_requests_total{host="::overflow",code="200"} 0
nginx_vts_status_code_requests_total{host="::overflow",code="404"} 0
nginx_vts_server_request_duration_seconds_bucket{host="::overflow",le="0.005"} 0
nginx_vts_server_request_duration_seconds_bucket{host="::overflow",le="1.000"} 1
nginx_vts_server_request_duration_seconds_bucket{host="::overflow",le="+Inf"} 2
nginx_vts_server_request_duration_seconds_sum{host="::overflow"} 0.007
nginx_vts_server_request_duration_seconds_count{host="::overflow"} 2
nginx_vts_server_cache_total{host="::overflow",status="miss"} 0
nginx_vts_server_cache_total{host="::overflow",status="bypass"} 0
nginx_vts_server_cache_total{host="::overflow",status="expired"} 0
nginx_vts_server_cache_total{host="::overflow",status="stale"} 0
nginx_vts_server_cache_total{host="::overflow",status="updating"} 0
nginx_vts_server_cache_total{host="::overflow",status="revalidated"} 0
nginx_vts_server_cache_total{host="::overflow",status="hit"} 0
nginx_vts_server_cache_total{host="::overflow",status="scarce"} 0
nginx_vts_server_bytes_total{host="*",direction="in"} 370
nginx_vts_server_bytes_total{host="*",direction="out"} 1000
nginx_vts_server_requests_total{host="*",code="1xx"} 0
nginx_vts_server_requests_total{host="*",code="2xx"} 3
nginx_vts_server_requests_total{host="*",code="3xx"} 0
nginx_vts_server_requests_total{host="*",code="4xx"} 1
nginx_vts_server_requests_total{host="*",code="5xx"} 2
nginx_vts_server_request_seconds_total{host="*"} 2.241
nginx_vts_server_request_seconds{host="*"} 0.259
nginx_vts_status_code_requests_total{host="*",code="other"} 3
nginx_vts_status_code_requests_total{host="*",code="200"} 2
nginx_vts_status_code_requests_total{host="*",code="404"} 1
nginx_vts_server_cache_total{host="*",status="miss"} 0
nginx_vts_server_cache_total{host="*",status="bypass"} 0
nginx_vts_server_cache_total{host="*",status="expired"} 0
nginx_vts_server_cache_total{host="*",status="stale"} 0
nginx_vts_server_cache_total{host="*",status="updating"} 0
nginx_vts_server_cache_total{host="*",status="revalidated"} 0
nginx_vts_server_cache_total{host="*",status="hit"} 0
nginx_vts_server_cache_total{host="*",status="scarce"} 0
# HELP nginx_vts_upstream_bytes_total The request/response bytes
# TYPE nginx_vts_upstream_bytes_total counter
# HELP nginx_vts_upstream_requests_total The upstream requests counter
# TYPE nginx_vts_upstream_requests_total counter
# HELP nginx_vts_upstream_request_seconds_total The request Processing time including upstream in seconds
# TYPE nginx_vts_upstream_request_seconds_total counter
# HELP nginx_vts_upstream_request_seconds The average of request processing times including upstream in seconds
# TYPE nginx_vts_upstream_request_seconds gauge
# HELP nginx_vts_upstream_response_seconds_total The only upstream response processing time in seconds
# TYPE nginx_vts_upstream_response_seconds_total counter
# HELP nginx_vts_upstream_response_seconds The average of only upstream response processing times in seconds
# TYPE nginx_vts_upstream_response_seconds gauge
# HELP nginx_vts_upstream_request_duration_seconds The histogram of request processing time including upstream
# TYPE nginx_vts_upstream_request_duration_seconds histogram
# HELP nginx_vts_upstream_response_duration_seconds The histogram of only upstream response processing time
# TYPE nginx_vts_upstream_response_duration_seconds histogram
nginx_vts_upstream_bytes_total{upstream="back",backend="::none",direction="in"} 0
nginx_vts_upstream_bytes_total{upstream="back",backend="::none",direction="out"} 0
nginx_vts_upstream_requests_total{upstream="back",backend="::none",code="1xx"} 0
nginx_vts_upstream_requests_total{upstream="back",backend="::none",code="2xx"} 0
nginx_vts_upstream_requests_total{upstream="back",backend="::none",code="3xx"} 0
nginx_vts_upstream_requests_total{upstream="back",backend="::none",code="4xx"} 0
nginx_vts_upstream_requests_total{upstream="back",backend="::none",code="5xx"} 1
nginx_vts_upstream_request_seconds_total{upstream="back",backend="::none"} 0.000
nginx_vts_upstream_request_seconds{upstream="back",backend="::none"} 0.000
nginx_vts_upstream_response_seconds_total{upstream="back",backend="::none"} 0.000
nginx_vts_upstream_response_seconds{upstream="back",backend="::none"} 0.000
nginx_vts_upstream_request_duration_seconds_bucket{upstream="back",backend="::none",le="0.005"} 0
nginx_vts_upstream_request_duration_seconds_bucket{upstream="back",backend="::none",le="1.000"} 0
nginx_vts_upstream_request_duration_seconds_bucket{upstream="back",backend="::none",le="+Inf"} 1
nginx_vts_upstream_request_duration_seconds_sum{upstream="back",backend="::none"} 0.000
nginx_vts_upstream_request_duration_seconds_count{upstream="back",backend="::none"} 1
nginx_vts_upstream_response_duration_seconds_bucket{upstream="back",backend="::none",le="0.005"} 0
nginx_vts_upstream_response_duration_seconds_bucket{upstream="back",backend="::none",le="1.000"} 0
nginx_vts_upstream_response_duration_seconds_bucket{upstream="back",backend="::none",le="+Inf"} 1
nginx_vts_upstream_response_duration_seconds_sum{upstream="back",backend="::none"} 0.000
nginx_vts_upstream_response_duration_seconds_count{upstream="back",backend="::none"} 1
nginx_vts_upstream_bytes_total{upstream="back",backend="10.0.0.2:80",direction="in"} 400
nginx_vts_upstream_bytes_total{upstream="back",backend="10.0.0.2:80",direction="out"} 800
nginx_vts_upstream_requests_total{upstream="back",backend="10.0.0.2:80",code="1xx"} 0
nginx_vts_upstream_requests_total{upstream="back",backend="10.0.0.2:80",code="2xx"} 3
nginx_vts_upstream_requests_total{upstream="back",backend="10.0.0.2:80",code="3xx"} 0
nginx_vts_upstream_requests_total{upstream="back",backend="10.0.0.2:80",code="4xx"} 0
nginx_vts_upstream_requests_total{upstream="back",backend="10.0.0.2:80",code="5xx"} 1
nginx_vts_upstream_request_seconds_total{upstream="back",backend="10.0.0.2:80"} 0.040
nginx_vts_upstream_request_seconds{upstream="back",backend="10.0.0.2:80"} 0.015
nginx_vts_upstream_response_seconds_total{upstream="back",backend="10.0.0.2:80"} 0.030
nginx_vts_upstream_response_seconds{upstream="back",backend="10.0.0.2:80"} 0.007
nginx_vts_upstream_request_duration_seconds_bucket{upstream="back",backend="10.0.0.2:80",le="0.005"} 3
nginx_vts_upstream_request_duration_seconds_bucket{upstream="back",backend="10.0.0.2:80",le="1.000"} 4
nginx_vts_upstream_request_duration_seconds_bucket{upstream="back",backend="10.0.0.2:80",le="+Inf"} 4
nginx_vts_upstream_request_duration_seconds_sum{upstream="back",backend="10.0.0.2:80"} 0.040
nginx_vts_upstream_request_duration_seconds_count{upstream="back",backend="10.0.0.2:80"} 4
nginx_vts_upstream_response_duration_seconds_bucket{upstream="back",backend="10.0.0.2:80",le="0.005"} 4
nginx_vts_upstream_response_duration_seconds_bucket{upstream="back",backend="10.0.0.2:80",le="1.000"} 4
nginx_vts_upstream_response_duration_seconds_bucket{upstream="back",backend="10.0.0.2:80",le="+Inf"} 4
nginx_vts_upstream_response_duration_seconds_sum{upstream="back",backend="10.0.0.2:80"} 0.030
nginx_vts_upstream_response_duration_seconds_count{upstream="back",backend="10.0.0.2:80"} 4
nginx_vts_upstream_bytes_total{upstream="::nogroups",backend="127.0.0.1:8080",direction="in"} 10
nginx_vts_upstream_bytes_total{upstream="::nogroups",backend="127.0.0.1:8080",direction="out"} 20
nginx_vts_upstream_requests_total{upstream="::nogroups",backend="127.0.0.1:8080",code="1xx"} 0
nginx_vts_upstream_requests_total{upstream="::nogroups",backend="127.0.0.1:8080",code="2xx"} 1
nginx_vts_upstream_requests_total{upstream="::nogroups",backend="127.0.0.1:8080",code="3xx"} 0
nginx_vts_upstream_requests_total{upstream="::nogroups",backend="127.0.0.1:8080",code="4xx"} 0
nginx_vts_upstream_requests_total{upstream="::nogroups",backend="127.0.0.1:8080",code="5xx"} 0
nginx_vts_upstream_request_seconds_total{upstream="::nogroups",backend="127.0.0.1:8080"} 0.005
nginx_vts_upstream_request_seconds{upstream="::nogroups",backend="127.0.0.1:8080"} 0.005
nginx_vts_upstream_response_seconds_total{upstream="::nogroups",backend="127.0.0.1:8080"} 0.004
nginx_vts_upstream_response_seconds{upstream="::nogroups",backend="127.0.0.1:8080"} 0.004
nginx_vts_upstream_request_duration_seconds_bucket{upstream="::nogroups",backend="127.0.0.1:8080",le="0.005"} 1
nginx_vts_upstream_request_duration_seconds_bucket{upstream="::nogroups",backend="127.0.0.1:8080",le="1.000"} 1
nginx_vts_upstream_request_duration_seconds_bucket{upstream="::nogroups",backend="127.0.0.1:8080",le="+Inf"} 1
nginx_vts_upstream_request_duration_seconds_sum{upstream="::nogroups",backend="127.0.0.1:8080"} 0.005
nginx_vts_upstream_request_duration_seconds_count{upstream="::nogroups",backend="127.0.0.1:8080"} 1
nginx_vts_upstream_response_duration_seconds_bucket{upstream="::nogroups",backend="127.0.0.1:8080",le="0.005"} 1
nginx_vts_upstream_response_duration_seconds_bucket{upstream="::nogroups",backend="127.0.0.1:8080",le="1.000"} 1
nginx_vts_upstream_response_duration_seconds_bucket{upstream="::nogroups",backend="127.0.0.1:8080",le="+Inf"} 1
nginx_vts_upstream_response_duration_seconds_sum{upstream="::nogroups",backend="127.0.0.1:8080"} 0.004
nginx_vts_upstream_response_duration_seconds_count{upstream="::nogroups",backend="127.0.0.1:8080"} 1
nginx_vts_upstream_bytes_total{upstream="::nogroups",backend="::overflow",direction="in"} 0
nginx_vts_upstream_bytes_total{upstream="::nogroups",backend="::overflow",direction="out"} 0
nginx_vts_upstream_requests_total{upstream="::nogroups",backend="::overflow",code="1xx"} 0
nginx_vts_upstream_requests_total{upstream="::nogroups",backend="::overflow",code="2xx"} 0
nginx_vts_upstream_requests_total{upstream="::nogroups",backend="::overflow",code="3xx"} 0
nginx_vts_upstream_requests_total{upstream="::nogroups",backend="::overflow",code="4xx"} 0
nginx_vts_upstream_requests_total{upstream="::nogroups",backend="::overflow",code="5xx"} 1
nginx_vts_upstream_request_seconds_total{upstream="::nogroups",backend="::overflow"} 0.000
nginx_vts_upstream_request_seconds{upstream="::nogroups",backend="::overflow"} 0.000
nginx_vts_upstream_response_seconds_total{upstream="::nogroups",backend="::overflow"} 0.003
nginx_vts_upstream_response_seconds{upstream="::nogroups",backend="::overflow"} 0.003
nginx_vts_upstream_request_duration_seconds_bucket{upstream="::nogroups",backend="::overflow",le="0.005"} 0
nginx_vts_upstream_request_duration_seconds_bucket{upstream="::nogroups",backend="::overflow",le="1.000"} 0
nginx_vts_upstream_request_duration_seconds_bucket{upstream="::nogroups",backend="::overflow",le="+Inf"} 1
nginx_vts_upstream_request_duration_seconds_sum{upstream="::nogroups",backend="::overflow"} 0.000
nginx_vts_upstream_request_duration_seconds_count{upstream="::nogroups",backend="::overflow"} 1
nginx_vts_upstream_response_duration_seconds_bucket{upstream="::nogroups",backend="::overflow",le="0.005"} 1
nginx_vts_upstream_response_duration_seconds_bucket{upstream="::nogroups",backend="::overflow",le="1.000"} 1
nginx_vts_upstream_response_duration_seconds_bucket{upstream="::nogroups",backend="::overflow",le="+Inf"} 1
nginx_vts_upstream_response_duration_seconds_sum{upstream="::nogroups",backend="::overflow"} 0.003
nginx_vts_upstream_response_duration_seconds_count{upstream="::nogroups",backend="::overflow"} 1
"#;

    fn text(v: &[u8]) -> &str {
        std::str::from_utf8(v).expect("UTF-8")
    }

    /// Line by line first, so that a failure names the line.
    fn assert_text(got: &[u8], want: &str) {
        let got = text(got);
        for (i, (g, w)) in got.lines().zip(want.lines()).enumerate() {
            assert_eq!(g, w, "line {}", i + 1);
        }
        assert_eq!(got, want);
    }

    #[test]
    fn list_codes_histograms_upstreams_and_hostile_names() {
        assert_text(&render(list_view(), Format::Text), LIST_TEXT);
    }

    /// `measure_status_codes all`, no histogram, no upstream statistics, no stub_status, a zone
    /// without time queues, a configured sum key.
    fn all_view() -> View {
        let mut only = counters(8, (1, 2), [0, 5, 0, 0, 2, 1], 2500);
        only.codes = vec![0; 501];
        only.codes[0] = 1; // a status outside 100..599
        only.codes[200 - 99] = 5;
        only.codes[503 - 99] = 2;
        only.queue = vec![(NOW - 1, 1)]; // ignored: the zone keeps no queues
        let quiet = Counters {
            codes: vec![0; 501],
            ..Counters::default()
        };
        let mut peer = counters(1, (1, 1), [0, 1, 0, 0, 0, 0], 1);
        peer.upstream_count = 1;
        View {
            info: Info {
                hostname: b"h\xc3".to_vec(),
                nginx_version: "1.28.3".into(),
                load_msec: 5,
                now_msec: NOW,
                ..Info::default()
            },
            connections: None,
            shm: ShmUse {
                name: b"vts".to_vec(),
                max_size: 1,
                used_size: 2,
                free_size: 3,
                used_node: 4,
                max_node: 5,
            },
            snapshot: Snapshot {
                entries: vec![
                    entry(Kind::Overflow, b"server", Counters::default()),
                    entry(Kind::Overflow, b"upstream", Counters::default()),
                    entry(Kind::Server, b"only", only),
                    // No request yet (a configured server block's key): not listed.
                    entry(Kind::Server, b"quiet", quiet),
                    entry(Kind::UpstreamPeer, &upstream_key(b"g", b"p"), peer),
                ],
                ..Default::default()
            },
            peers: None,
            display: Display {
                sum_key: b"total".to_vec(),
                method: AvgMethod::Wma,
                codes: StatusCodes::All,
                queues: false,
                ..Display::default()
            },
        }
    }

    const ALL_TEXT: &str = r#"# HELP nginx_vts_info Nginx info
# TYPE nginx_vts_info gauge
nginx_vts_info{hostname="h�c3",module_version="v0.2.7",version="1.28.3"} 1
# HELP nginx_vts_start_time_seconds Nginx start time
# TYPE nginx_vts_start_time_seconds gauge
nginx_vts_start_time_seconds 0.005
# HELP nginx_vts_main_connections Nginx connections
# TYPE nginx_vts_main_connections gauge
nginx_vts_main_connections{status="accepted"} 0
nginx_vts_main_connections{status="active"} 0
nginx_vts_main_connections{status="handled"} 0
nginx_vts_main_connections{status="reading"} 0
nginx_vts_main_connections{status="requests"} 0
nginx_vts_main_connections{status="waiting"} 0
nginx_vts_main_connections{status="writing"} 0
# HELP nginx_vts_main_shm_usage_bytes Shared memory [vts] info
# TYPE nginx_vts_main_shm_usage_bytes gauge
nginx_vts_main_shm_usage_bytes{shared="max_size"} 1
nginx_vts_main_shm_usage_bytes{shared="used_size"} 2
nginx_vts_main_shm_usage_bytes{shared="used_node"} 4
nginx_vts_main_shm_usage_bytes{shared="free_size"} 3
# HELP nginx_vts_server_bytes_total The request/response bytes
# TYPE nginx_vts_server_bytes_total counter
# HELP nginx_vts_server_requests_total The requests counter
# TYPE nginx_vts_server_requests_total counter
# HELP nginx_vts_status_code_requests_total The requests counter by status code 
# TYPE nginx_vts_status_code_requests_total counter
# HELP nginx_vts_server_request_seconds_total The request processing time in seconds
# TYPE nginx_vts_server_request_seconds_total counter
# HELP nginx_vts_server_request_seconds The average of request processing times in seconds
# TYPE nginx_vts_server_request_seconds gauge
# HELP nginx_vts_server_request_duration_seconds The histogram of request processing time
# TYPE nginx_vts_server_request_duration_seconds histogram
# HELP nginx_vts_server_cache_total The requests cache counter
# TYPE nginx_vts_server_cache_total counter
nginx_vts_server_bytes_total{host="only",direction="in"} 1
nginx_vts_server_bytes_total{host="only",direction="out"} 2
nginx_vts_server_requests_total{host="only",code="1xx"} 0
nginx_vts_server_requests_total{host="only",code="2xx"} 5
nginx_vts_server_requests_total{host="only",code="3xx"} 0
nginx_vts_server_requests_total{host="only",code="4xx"} 0
nginx_vts_server_requests_total{host="only",code="5xx"} 2
nginx_vts_server_request_seconds_total{host="only"} 2.500
nginx_vts_server_request_seconds{host="only"} 0.312
nginx_vts_status_code_requests_total{host="only",code="other"} 1
nginx_vts_status_code_requests_total{host="only",code="200"} 5
nginx_vts_status_code_requests_total{host="only",code="503"} 2
nginx_vts_server_cache_total{host="only",status="miss"} 0
nginx_vts_server_cache_total{host="only",status="bypass"} 0
nginx_vts_server_cache_total{host="only",status="expired"} 0
nginx_vts_server_cache_total{host="only",status="stale"} 0
nginx_vts_server_cache_total{host="only",status="updating"} 0
nginx_vts_server_cache_total{host="only",status="revalidated"} 0
nginx_vts_server_cache_total{host="only",status="hit"} 0
nginx_vts_server_cache_total{host="only",status="scarce"} 0
nginx_vts_server_bytes_total{host="total",direction="in"} 1
nginx_vts_server_bytes_total{host="total",direction="out"} 2
nginx_vts_server_requests_total{host="total",code="1xx"} 0
nginx_vts_server_requests_total{host="total",code="2xx"} 5
nginx_vts_server_requests_total{host="total",code="3xx"} 0
nginx_vts_server_requests_total{host="total",code="4xx"} 0
nginx_vts_server_requests_total{host="total",code="5xx"} 2
nginx_vts_server_request_seconds_total{host="total"} 2.500
nginx_vts_server_request_seconds{host="total"} 0.312
nginx_vts_status_code_requests_total{host="total",code="other"} 1
nginx_vts_status_code_requests_total{host="total",code="200"} 5
nginx_vts_status_code_requests_total{host="total",code="503"} 2
nginx_vts_server_cache_total{host="total",status="miss"} 0
nginx_vts_server_cache_total{host="total",status="bypass"} 0
nginx_vts_server_cache_total{host="total",status="expired"} 0
nginx_vts_server_cache_total{host="total",status="stale"} 0
nginx_vts_server_cache_total{host="total",status="updating"} 0
nginx_vts_server_cache_total{host="total",status="revalidated"} 0
nginx_vts_server_cache_total{host="total",status="hit"} 0
nginx_vts_server_cache_total{host="total",status="scarce"} 0
"#;

    #[test]
    fn all_codes_without_histograms_upstreams_or_queues() {
        assert_text(&render(all_view(), Format::Text), ALL_TEXT);
    }

    /// The C module's answer (nginx 1.28.3, nginx-module-vts v0.2.7) to: one server
    /// `s.example` proxying to `upstream slow { server 127.0.0.1:18221; }`, with
    /// `measure_status_codes all`, `histogram_buckets 0.005 0.05 0.1 0.25 1`,
    /// `average_method WMA 0`; 8 requests taking 20..1236 ms (one 404), then one JSON scrape.
    const ORACLE_TEXT: &str = r#"# HELP nginx_vts_info Nginx info
# TYPE nginx_vts_info gauge
nginx_vts_info{hostname="vm",module_version="v0.2.7",version="1.28.3"} 1
# HELP nginx_vts_start_time_seconds Nginx start time
# TYPE nginx_vts_start_time_seconds gauge
nginx_vts_start_time_seconds 1796468922.956
# HELP nginx_vts_main_connections Nginx connections
# TYPE nginx_vts_main_connections gauge
nginx_vts_main_connections{status="accepted"} 10
nginx_vts_main_connections{status="active"} 1
nginx_vts_main_connections{status="handled"} 10
nginx_vts_main_connections{status="reading"} 0
nginx_vts_main_connections{status="requests"} 10
nginx_vts_main_connections{status="waiting"} 0
nginx_vts_main_connections{status="writing"} 1
# HELP nginx_vts_main_shm_usage_bytes Shared memory [ngx_http_vhost_traffic_status] info
# TYPE nginx_vts_main_shm_usage_bytes gauge
nginx_vts_main_shm_usage_bytes{shared="max_size"} 1048575
nginx_vts_main_shm_usage_bytes{shared="used_size"} 7107
nginx_vts_main_shm_usage_bytes{shared="used_node"} 2
nginx_vts_main_shm_usage_bytes{shared="free_size"} 1015808
# HELP nginx_vts_server_bytes_total The request/response bytes
# TYPE nginx_vts_server_bytes_total counter
# HELP nginx_vts_server_requests_total The requests counter
# TYPE nginx_vts_server_requests_total counter
# HELP nginx_vts_status_code_requests_total The requests counter by status code 
# TYPE nginx_vts_status_code_requests_total counter
# HELP nginx_vts_server_request_seconds_total The request processing time in seconds
# TYPE nginx_vts_server_request_seconds_total counter
# HELP nginx_vts_server_request_seconds The average of request processing times in seconds
# TYPE nginx_vts_server_request_seconds gauge
# HELP nginx_vts_server_request_duration_seconds The histogram of request processing time
# TYPE nginx_vts_server_request_duration_seconds histogram
# HELP nginx_vts_server_cache_total The requests cache counter
# TYPE nginx_vts_server_cache_total counter
nginx_vts_server_bytes_total{host="s.example",direction="in"} 789
nginx_vts_server_bytes_total{host="s.example",direction="out"} 4935
nginx_vts_server_requests_total{host="s.example",code="1xx"} 0
nginx_vts_server_requests_total{host="s.example",code="2xx"} 8
nginx_vts_server_requests_total{host="s.example",code="3xx"} 0
nginx_vts_server_requests_total{host="s.example",code="4xx"} 1
nginx_vts_server_requests_total{host="s.example",code="5xx"} 0
nginx_vts_server_request_seconds_total{host="s.example"} 1.956
nginx_vts_server_request_seconds{host="s.example"} 0.234
nginx_vts_status_code_requests_total{host="s.example",code="other"} 0
nginx_vts_status_code_requests_total{host="s.example",code="200"} 8
nginx_vts_status_code_requests_total{host="s.example",code="404"} 1
nginx_vts_server_request_duration_seconds_bucket{host="s.example",le="0.005"} 1
nginx_vts_server_request_duration_seconds_bucket{host="s.example",le="0.050"} 4
nginx_vts_server_request_duration_seconds_bucket{host="s.example",le="0.100"} 6
nginx_vts_server_request_duration_seconds_bucket{host="s.example",le="0.250"} 7
nginx_vts_server_request_duration_seconds_bucket{host="s.example",le="1.000"} 8
nginx_vts_server_request_duration_seconds_bucket{host="s.example",le="+Inf"} 9
nginx_vts_server_request_duration_seconds_sum{host="s.example"} 1.956
nginx_vts_server_request_duration_seconds_count{host="s.example"} 9
nginx_vts_server_cache_total{host="s.example",status="miss"} 0
nginx_vts_server_cache_total{host="s.example",status="bypass"} 0
nginx_vts_server_cache_total{host="s.example",status="expired"} 0
nginx_vts_server_cache_total{host="s.example",status="stale"} 0
nginx_vts_server_cache_total{host="s.example",status="updating"} 0
nginx_vts_server_cache_total{host="s.example",status="revalidated"} 0
nginx_vts_server_cache_total{host="s.example",status="hit"} 0
nginx_vts_server_cache_total{host="s.example",status="scarce"} 0
nginx_vts_server_bytes_total{host="*",direction="in"} 789
nginx_vts_server_bytes_total{host="*",direction="out"} 4935
nginx_vts_server_requests_total{host="*",code="1xx"} 0
nginx_vts_server_requests_total{host="*",code="2xx"} 8
nginx_vts_server_requests_total{host="*",code="3xx"} 0
nginx_vts_server_requests_total{host="*",code="4xx"} 1
nginx_vts_server_requests_total{host="*",code="5xx"} 0
nginx_vts_server_request_seconds_total{host="*"} 1.956
nginx_vts_server_request_seconds{host="*"} 0.234
nginx_vts_status_code_requests_total{host="*",code="other"} 0
nginx_vts_status_code_requests_total{host="*",code="200"} 8
nginx_vts_status_code_requests_total{host="*",code="404"} 1
nginx_vts_server_cache_total{host="*",status="miss"} 0
nginx_vts_server_cache_total{host="*",status="bypass"} 0
nginx_vts_server_cache_total{host="*",status="expired"} 0
nginx_vts_server_cache_total{host="*",status="stale"} 0
nginx_vts_server_cache_total{host="*",status="updating"} 0
nginx_vts_server_cache_total{host="*",status="revalidated"} 0
nginx_vts_server_cache_total{host="*",status="hit"} 0
nginx_vts_server_cache_total{host="*",status="scarce"} 0
# HELP nginx_vts_upstream_bytes_total The request/response bytes
# TYPE nginx_vts_upstream_bytes_total counter
# HELP nginx_vts_upstream_requests_total The upstream requests counter
# TYPE nginx_vts_upstream_requests_total counter
# HELP nginx_vts_upstream_request_seconds_total The request Processing time including upstream in seconds
# TYPE nginx_vts_upstream_request_seconds_total counter
# HELP nginx_vts_upstream_request_seconds The average of request processing times including upstream in seconds
# TYPE nginx_vts_upstream_request_seconds gauge
# HELP nginx_vts_upstream_response_seconds_total The only upstream response processing time in seconds
# TYPE nginx_vts_upstream_response_seconds_total counter
# HELP nginx_vts_upstream_response_seconds The average of only upstream response processing times in seconds
# TYPE nginx_vts_upstream_response_seconds gauge
# HELP nginx_vts_upstream_request_duration_seconds The histogram of request processing time including upstream
# TYPE nginx_vts_upstream_request_duration_seconds histogram
# HELP nginx_vts_upstream_response_duration_seconds The histogram of only upstream response processing time
# TYPE nginx_vts_upstream_response_duration_seconds histogram
nginx_vts_upstream_bytes_total{upstream="slow",backend="127.0.0.1:18221",direction="in"} 692
nginx_vts_upstream_bytes_total{upstream="slow",backend="127.0.0.1:18221",direction="out"} 999
nginx_vts_upstream_requests_total{upstream="slow",backend="127.0.0.1:18221",code="1xx"} 0
nginx_vts_upstream_requests_total{upstream="slow",backend="127.0.0.1:18221",code="2xx"} 7
nginx_vts_upstream_requests_total{upstream="slow",backend="127.0.0.1:18221",code="3xx"} 0
nginx_vts_upstream_requests_total{upstream="slow",backend="127.0.0.1:18221",code="4xx"} 1
nginx_vts_upstream_requests_total{upstream="slow",backend="127.0.0.1:18221",code="5xx"} 0
nginx_vts_upstream_request_seconds_total{upstream="slow",backend="127.0.0.1:18221"} 1.956
nginx_vts_upstream_request_seconds{upstream="slow",backend="127.0.0.1:18221"} 0.293
nginx_vts_upstream_response_seconds_total{upstream="slow",backend="127.0.0.1:18221"} 1.956
nginx_vts_upstream_response_seconds{upstream="slow",backend="127.0.0.1:18221"} 0.293
nginx_vts_upstream_request_duration_seconds_bucket{upstream="slow",backend="127.0.0.1:18221",le="0.005"} 0
nginx_vts_upstream_request_duration_seconds_bucket{upstream="slow",backend="127.0.0.1:18221",le="0.050"} 3
nginx_vts_upstream_request_duration_seconds_bucket{upstream="slow",backend="127.0.0.1:18221",le="0.100"} 5
nginx_vts_upstream_request_duration_seconds_bucket{upstream="slow",backend="127.0.0.1:18221",le="0.250"} 6
nginx_vts_upstream_request_duration_seconds_bucket{upstream="slow",backend="127.0.0.1:18221",le="1.000"} 7
nginx_vts_upstream_request_duration_seconds_bucket{upstream="slow",backend="127.0.0.1:18221",le="+Inf"} 8
nginx_vts_upstream_request_duration_seconds_sum{upstream="slow",backend="127.0.0.1:18221"} 1.956
nginx_vts_upstream_request_duration_seconds_count{upstream="slow",backend="127.0.0.1:18221"} 8
nginx_vts_upstream_response_duration_seconds_bucket{upstream="slow",backend="127.0.0.1:18221",le="0.005"} 0
nginx_vts_upstream_response_duration_seconds_bucket{upstream="slow",backend="127.0.0.1:18221",le="0.050"} 3
nginx_vts_upstream_response_duration_seconds_bucket{upstream="slow",backend="127.0.0.1:18221",le="0.100"} 5
nginx_vts_upstream_response_duration_seconds_bucket{upstream="slow",backend="127.0.0.1:18221",le="0.250"} 6
nginx_vts_upstream_response_duration_seconds_bucket{upstream="slow",backend="127.0.0.1:18221",le="1.000"} 7
nginx_vts_upstream_response_duration_seconds_bucket{upstream="slow",backend="127.0.0.1:18221",le="+Inf"} 8
nginx_vts_upstream_response_duration_seconds_sum{upstream="slow",backend="127.0.0.1:18221"} 1.956
nginx_vts_upstream_response_duration_seconds_count{upstream="slow",backend="127.0.0.1:18221"} 8
"#;

    /// The same counters, as the C module's JSON showed them.
    fn oracle_view() -> View {
        let mut server = counters(9, (789, 4935), [0, 8, 0, 1, 0, 0], 1956);
        server.codes = vec![0; 501];
        server.codes[200 - 99] = 8;
        server.codes[404 - 99] = 1;
        server.buckets = vec![1, 3, 2, 1, 1]; // the JSON's cumulative 1, 4, 6, 7, 8
        let times = [
            1796468923625,
            1796468923767,
            1796468923965,
            1796468924177,
            1796468924557,
            1796468925877,
            1796468926004,
            1796468926105,
        ];
        let zip = |ms: [u64; 8]| times.iter().copied().zip(ms).collect::<Vec<_>>();
        server.queue = zip([20, 61, 100, 136, 340, 1236, 35, 28]);
        server.queue.push((1796468926157, 0)); // the JSON scrape
        let mut peer = counters(8, (692, 999), [0, 7, 0, 1, 0, 0], 1956);
        peer.upstream_sum_ms = 1956;
        peer.upstream_count = 8;
        peer.buckets = vec![0, 3, 2, 1, 1];
        peer.response_buckets = vec![0, 3, 2, 1, 1];
        peer.queue = zip([20, 61, 100, 136, 340, 1236, 35, 28]);
        peer.response_queue = zip([19, 62, 100, 136, 341, 1236, 34, 28]);
        View {
            info: Info {
                hostname: b"vm".to_vec(),
                nginx_version: "1.28.3".into(),
                load_msec: 1796468922956,
                now_msec: 1796468926160,
                ..Info::default()
            },
            connections: Some(Connections {
                active: 1,
                reading: 0,
                writing: 1,
                waiting: 0,
                accepted: 10,
                handled: 10,
                requests: 10,
            }),
            shm: ShmUse {
                name: b"ngx_http_vhost_traffic_status".to_vec(),
                max_size: 1048575,
                used_size: 7107,
                free_size: 1015808,
                used_node: 2,
                max_node: 0,
            },
            snapshot: Snapshot {
                entries: vec![
                    entry(Kind::Overflow, b"server", Counters::default()),
                    entry(Kind::Overflow, b"upstream", Counters::default()),
                    entry(Kind::Server, b"s.example", server),
                    entry(
                        Kind::UpstreamPeer,
                        &upstream_key(b"slow", b"127.0.0.1:18221"),
                        peer,
                    ),
                ],
                ..Default::default()
            },
            peers: Some(Vec::new()),
            display: Display {
                method: AvgMethod::Wma,
                period_ms: 0,
                codes: StatusCodes::All,
                bucket_seconds: vec![0.005, 0.05, 0.1, 0.25, 1.0],
                bucket_us: vec![5_000, 50_000, 100_000, 250_000, 1_000_000],
                ..Display::default()
            },
        }
    }

    #[test]
    fn byte_for_byte_what_the_c_module_wrote() {
        assert_text(&render(oracle_view(), Format::Text), ORACLE_TEXT);
    }

    /// Many zones and peers, for the slicing and the parsers.
    fn big_view() -> View {
        let mut v = list_view();
        for i in 0..40u64 {
            let mut c = counters(i, (i * 10, i * 20), [0, i, 0, 0, 0, 0], i * 3);
            c.codes = vec![0, i, 0];
            c.buckets = vec![i / 2, i - i / 2];
            c.queue = vec![(NOW - 1, i)];
            let name = format!("zone{i:02}\t\r\u{FFFD}");
            v.snapshot
                .entries
                .push(entry(Kind::Server, name.as_bytes(), c.clone()));
            c.upstream_count = i;
            c.upstream_sum_ms = i;
            c.response_buckets = vec![i, 0];
            let key = upstream_key(format!("g{}", i % 3).as_bytes(), format!("p{i}").as_bytes());
            v.snapshot.entries.push(entry(Kind::UpstreamPeer, &key, c));
        }
        // A configured name that looks like the module's own.
        v.snapshot
            .entries
            .push(entry(Kind::Server, b"::overflow", counters(1, (0, 0), [0; 6], 0)));
        v
    }

    #[test]
    fn every_budget_gives_the_same_text() {
        for view in [list_view, all_view, big_view, oracle_view] {
            for format in [Format::Text, Format::OpenMetrics] {
                let whole = render(view(), format);
                for budget in [0, 1, 50, 700, 3000, 10_000, usize::MAX] {
                    let mut s = VozltScrape::new(view(), format);
                    let mut out = Vec::new();
                    let mut calls = 0;
                    loop {
                        let before = out.len();
                        let done = s.write(&mut out, budget);
                        calls += 1;
                        assert!(done || out.len() > before, "a slice wrote nothing");
                        if done {
                            break;
                        }
                        assert!(calls < 100_000);
                    }
                    assert!(s.write(&mut out, budget), "stays complete");
                    assert_eq!(text(&out), text(&whole), "budget {budget}");
                }
            }
        }
    }

    #[test]
    fn openmetrics_is_the_same_samples_family_by_family() {
        let om = render(list_view(), Format::OpenMetrics);
        let om = text(&om);
        assert!(om.ends_with("\n# EOF\n"));
        // Counters are named without `_total`, except where that is a gauge's name.
        assert!(om.contains(
            "# HELP nginx_vts_server_bytes The request/response bytes\n\
             # TYPE nginx_vts_server_bytes counter\n\
             nginx_vts_server_bytes_total{host=\"a\\\"b\\\\c\\nd\u{FFFD}ff\",direction=\"in\"} 50\n"
        ));
        assert!(om.contains("# TYPE nginx_vts_server_request_seconds_total unknown\n"));
        assert!(om.contains("# TYPE nginx_vts_upstream_response_seconds_total unknown\n"));
        assert!(
            om.contains("# HELP nginx_vts_main_shm_usage_bytes Shared memory [vts\\\\z\\\"o\\nne] info\n")
        );
        // The same sample lines as the text format, in another order.
        let samples = |t: &str| {
            let mut v: Vec<String> = t
                .lines()
                .filter(|l| !l.starts_with('#'))
                .map(str::to_string)
                .collect();
            v.sort();
            v
        };
        let txt = render(list_view(), Format::Text);
        assert_eq!(samples(om), samples(text(&txt)));
    }

    #[test]
    fn bounds_and_seconds() {
        let s = |f: fn(&mut Vec<u8>, u64), v: u64| {
            let mut o = Vec::new();
            f(&mut o, v);
            String::from_utf8(o).unwrap()
        };
        assert_eq!(s(push_ms, 0), "0.000");
        assert_eq!(s(push_ms, 2), "0.002");
        assert_eq!(s(push_ms, 1234), "1.234");
        assert_eq!(s(push_ms, 1796466038469), "1796466038.469");
        assert_eq!(s(push_bound, 5_000), "0.005");
        assert_eq!(s(push_bound, 10_000), "0.010");
        assert_eq!(s(push_bound, 5_000_000), "5.000");
        assert_eq!(s(push_bound, 1_500), "0.0015");
        assert_eq!(s(push_bound, 2_000_001), "2.000001");
    }

    /// Runs `cmd` with `input` on stdin; `None` when the program is not installed.
    fn run(cmd: &str, args: &[&str], input: &[u8]) -> Option<std::process::Output> {
        use std::io::Write as _;
        use std::process::{Command, Stdio};
        let mut child = match Command::new(cmd)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
        {
            Ok(c) => c,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
            Err(e) => panic!("{cmd}: {e}"),
        };
        child.stdin.take().unwrap().write_all(input).unwrap();
        Some(child.wait_with_output().unwrap())
    }

    #[test]
    fn promtool_accepts_the_text() {
        for view in [big_view(), all_view(), oracle_view()] {
            let t = render(view, Format::Text);
            let Some(out) = run("promtool", &["check", "metrics"], &t) else {
                eprintln!("SKIPPED: promtool is not installed");
                return;
            };
            assert!(
                out.status.success(),
                "promtool: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }

    #[test]
    fn the_strict_openmetrics_parser_accepts_the_openmetrics_text() {
        const SCRIPT: &str = "import sys\n\
            from prometheus_client.openmetrics.parser import text_string_to_metric_families\n\
            for f in text_string_to_metric_families(sys.stdin.buffer.read().decode('utf-8')):\n    \
                print(f.name, f.type, len(f.samples))\n";
        let mut checked = false;
        for python in ["python3", "/usr/bin/python3"] {
            let probe = "import prometheus_client.openmetrics.parser";
            match run(python, &["-c", probe], b"") {
                Some(o) if o.status.success() => {}
                _ => continue,
            }
            for view in [big_view(), all_view(), oracle_view()] {
                let t = render(view, Format::OpenMetrics);
                let out = run(python, &["-c", SCRIPT], &t).unwrap();
                let stdout = String::from_utf8_lossy(&out.stdout);
                assert!(
                    out.status.success(),
                    "parser: {}{}",
                    stdout,
                    String::from_utf8_lossy(&out.stderr)
                );
                assert!(stdout.contains("nginx_vts_server_request_duration_seconds histogram"));
                assert!(stdout.contains("nginx_vts_server_request_seconds_total unknown"));
            }
            checked = true;
            break;
        }
        if !checked {
            eprintln!("SKIPPED: no python3 with prometheus_client");
        }
    }
}
