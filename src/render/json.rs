//! The nginx-module-vts JSON document (`/format/json`) and its JSONP wrapper (`/format/jsonp`).
//!
//! Key order, which fields appear and the one space after `statusCodes` are those of the C
//! module (v0.2.7), checked against it. Where ngx_vts differs on purpose:
//! - every string is escaped, and always into valid JSON ([`super::json_escape`]);
//! - zones are sorted by name, peers in configuration order (the C module uses its tree's
//!   order, which is no contract);
//! - what could not get a key of its own is shown as `::overflow` (a server zone, and a peer of
//!   `::nogroups`).
//!
//! The pieces ([`main_fields`], [`server_object`], [`peer_object`]) are public so that the
//! control API can answer subsets of the document with the same text.
pub use super::number::push_u64;
use std::collections::HashMap;

use super::json_escape::{quoted, quoted_name};
use super::Renderer;
use crate::stats::{split_upstream_key, Counters, Entry, Kind};
use crate::view::{average, Display, PeerState, StatusCodes, View, QUEUE_LEN, VOZLT_VERSION};

pub const CONTENT_TYPE: &str = "application/json";
pub const JSONP_CONTENT_TYPE: &str = "application/javascript";

/// The module's own names, which no configured name renders to (see [`super::json_escape`]).
pub const NOGROUPS: &str = "::nogroups";
pub const OVERFLOW: &str = "::overflow";
pub const NONE: &str = "::none";

/// A name as a JSON key or value: configured (escaped) or one of the module's own (literal).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Name<'a> {
    Configured(&'a [u8]),
    Reserved(&'static str),
}

impl Name<'_> {
    /// No configured server, group or peer name is empty: the empty one stands for `reserved`.
    pub fn or_reserved<'a>(name: &'a [u8], reserved: &'static str) -> Name<'a> {
        if name.is_empty() {
            Name::Reserved(reserved)
        } else {
            Name::Configured(name)
        }
    }

    /// Appends the name in quotes.
    pub fn write(self, out: &mut Vec<u8>) {
        match self {
            Name::Configured(n) => quoted_name(out, n),
            Name::Reserved(n) => {
                out.push(b'"');
                out.extend_from_slice(n.as_bytes());
                out.push(b'"');
            }
        }
    }
}

/// What an object needs besides its counters: the display location's settings and the time.
#[derive(Clone, Copy, Debug)]
pub struct Settings<'a> {
    pub display: &'a Display,
    /// The averages' window ends here (vozlt's `nowMsec`).
    pub now_msec: u64,
}

impl<'a> Settings<'a> {
    pub fn of(view: &'a View) -> Settings<'a> {
        Settings {
            display: &view.display,
            now_msec: view.info.now_msec,
        }
    }

    /// `requestMsec` / `responseMsec`: the queue's average over the display's window; a zone
    /// without queues has only the mean since it started (`sum / n`).
    fn average(&self, queue: &[(u64, u64)], sum_ms: u64, n: u64) -> u64 {
        if self.display.queues {
            let d = self.display;
            average(queue, d.method, d.period_ms, self.now_msec)
        } else {
            sum_ms.checked_div(n).unwrap_or(0)
        }
    }
}

/// `"key":v` (key given with its quotes and colon, e.g. `"inBytes":`).
fn field(out: &mut Vec<u8>, key: &[u8], v: u64) {
    out.extend_from_slice(key);
    push_u64(out, v);
}

/// `[a,b,...]`.
fn array(out: &mut Vec<u8>, values: impl Iterator<Item = u64>) {
    out.push(b'[');
    for (i, v) in values.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        push_u64(out, v);
    }
    out.push(b']');
}

/// `count` zeros followed by a comma each: the padding of a queue, one copy.
fn zeros(out: &mut Vec<u8>, count: usize) {
    const Z: [u8; 2 * QUEUE_LEN] = {
        let mut z = [b','; 2 * QUEUE_LEN];
        let mut i = 0;
        while i < z.len() {
            z[i] = b'0';
            i += 2;
        }
        z
    };
    out.extend_from_slice(&Z[..2 * count.min(QUEUE_LEN)]);
}

/// A time queue as `"<key>":{"times":[...],"msecs":[...]}`: `Some` queue (oldest first) is
/// left-padded with `(0,0)` to exactly [`QUEUE_LEN`] entries as vozlt's ring always holds;
/// `None` (a configured peer that has no key yet) is two empty arrays.
fn queue(out: &mut Vec<u8>, key: &[u8], q: Option<&[(u64, u64)]>) {
    out.extend_from_slice(key);
    let Some(q) = q else {
        out.extend_from_slice(b"{\"times\":[],\"msecs\":[]}");
        return;
    };
    let q = &q[q.len().saturating_sub(QUEUE_LEN)..];
    let pad = QUEUE_LEN - q.len();
    out.extend_from_slice(b"{\"times\":[");
    zeros(out, pad);
    for &(t, _) in q {
        push_u64(out, t);
        out.push(b',');
    }
    out.pop(); // the last comma (QUEUE_LEN > 0: there is one)
    out.extend_from_slice(b"],\"msecs\":[");
    zeros(out, pad);
    for &(_, ms) in q {
        push_u64(out, ms);
        out.push(b',');
    }
    out.pop();
    out.extend_from_slice(b"]}");
}

/// A histogram as `"<key>":{"msecs":[...],"counters":[...]}`: bounds in whole milliseconds,
/// counts cumulative (vozlt's buckets count every sample at or below their bound), as
/// [`crate::view::Display::histogram`] gives them. Without bounds, two empty arrays.
fn buckets(out: &mut Vec<u8>, key: &[u8], histogram: &[(u64, u64)]) {
    out.extend_from_slice(key);
    out.extend_from_slice(b"{\"msecs\":");
    array(out, histogram.iter().map(|&(us, _)| us / 1000));
    out.extend_from_slice(b",\"counters\":");
    array(out, histogram.iter().map(|&(_, n)| n));
    out.push(b'}');
}

/// `"statusCodes":{"other":N,"<code>":N...}, ` (with the C module's space), when measured: a
/// list prints every listed code, `all` only the codes that happened.
fn status_codes(out: &mut Vec<u8>, c: &Counters, codes: &StatusCodes) {
    if *codes == StatusCodes::Off || c.codes.is_empty() {
        return;
    }
    field(out, b"\"statusCodes\":{\"other\":", c.codes[0]);
    let mut code = |code: u16, n: u64| {
        out.extend_from_slice(b",\"");
        push_u64(out, code as u64);
        out.extend_from_slice(b"\":");
        push_u64(out, n);
    };
    match codes {
        StatusCodes::List(list) => {
            for (i, &k) in list.iter().enumerate() {
                code(k, c.codes.get(i + 1).copied().unwrap_or(0));
            }
        }
        StatusCodes::All => {
            for (i, &n) in c.codes.iter().enumerate().skip(1) {
                if let (true, Some(k)) = (n > 0, codes.code_at(i)) {
                    code(k, n);
                }
            }
        }
        StatusCodes::Off => {}
    }
    out.extend_from_slice(b"}, ");
}

/// `"responses":{"1xx":N,...,"5xx":N` (not closed: server objects add the cache keys).
///
/// Statuses outside 100..=599 (`Counters::status[5]`) have no class key here; vozlt counts
/// them in 1xx (below 200) or 5xx (600 and up), which the counters cannot tell apart.
fn classes(out: &mut Vec<u8>, c: &Counters) {
    field(out, b"\"responses\":{\"1xx\":", c.status[0]);
    field(out, b",\"2xx\":", c.status[1]);
    field(out, b",\"3xx\":", c.status[2]);
    field(out, b",\"4xx\":", c.status[3]);
    field(out, b",\"5xx\":", c.status[4]);
}

/// The cache status counters of a server object. Zero until cache statistics are counted
/// (a later issue): the keys are there because clients of the C module expect them.
const CACHE_RESPONSES: &[u8] = concat!(
    r#","miss":0,"bypass":0,"expired":0,"stale":0,"updating":0,"revalidated":0,"hit":0,"#,
    r#""scarce":0}"#
)
.as_bytes();

/// ngx_vts does not count wraps of its 64-bit counters (years of traffic away): 0 each.
const SERVER_OVER_COUNTS: &[u8] = concat!(
    r#","overCounts":{"maxIntegerSize":18446744073709551615,"requestCounter":0,"inBytes":0,"#,
    r#""outBytes":0,"1xx":0,"2xx":0,"3xx":0,"4xx":0,"5xx":0,"miss":0,"bypass":0,"expired":0,"#,
    r#""stale":0,"updating":0,"revalidated":0,"hit":0,"scarce":0,"requestMsecCounter":0}}"#
)
.as_bytes();
const PEER_OVER_COUNTS: &[u8] = concat!(
    r#","overCounts":{"maxIntegerSize":18446744073709551615,"requestCounter":0,"inBytes":0,"#,
    r#""outBytes":0,"1xx":0,"2xx":0,"3xx":0,"4xx":0,"5xx":0,"requestMsecCounter":0,"#,
    r#""responseMsecCounter":0}}"#
)
.as_bytes();

/// The top-level fields before the zones, from `"hostName"` to the `sharedZones` object
/// (no braces around, no comma after).
pub fn main_fields(out: &mut Vec<u8>, view: &View) {
    let i = &view.info;
    out.extend_from_slice(b"\"hostName\":");
    quoted(out, &i.hostname);
    out.extend_from_slice(b",\"moduleVersion\":");
    quoted(out, VOZLT_VERSION.as_bytes());
    out.extend_from_slice(b",\"nginxVersion\":");
    quoted(out, i.nginx_version.as_bytes());
    field(out, b",\"loadMsec\":", i.load_msec);
    field(out, b",\"nowMsec\":", i.now_msec);
    // Without stub_status nginx has no counters: zeros, so that clients find every key.
    let c = view.connections.unwrap_or_default();
    field(out, b",\"connections\":{\"active\":", c.active);
    field(out, b",\"reading\":", c.reading);
    field(out, b",\"writing\":", c.writing);
    field(out, b",\"waiting\":", c.waiting);
    field(out, b",\"accepted\":", c.accepted);
    field(out, b",\"handled\":", c.handled);
    field(out, b",\"requests\":", c.requests);
    out.extend_from_slice(b"},\"sharedZones\":{\"name\":");
    quoted(out, &view.shm.name);
    field(out, b",\"maxSize\":", view.shm.max_size);
    field(out, b",\"usedSize\":", view.shm.used_size);
    field(out, b",\"usedNode\":", view.shm.used_node);
    field(out, b",\"freeSize\":", view.shm.free_size);
    out.push(b'}');
}

/// A server object (a serverZones member, the sum entry, later a filterZones member): `{...}`
/// without its key. `histogram` false prints empty buckets, as vozlt's sum entry always does.
/// `tag` is the key's (which histogram bounds it shows).
pub fn server_object(out: &mut Vec<u8>, c: &Counters, tag: u32, s: &Settings, histogram: bool) {
    let d = s.display;
    field(out, b"{\"requestCounter\":", c.requests);
    field(out, b",\"inBytes\":", c.bytes_in);
    field(out, b",\"outBytes\":", c.bytes_out);
    out.push(b',');
    status_codes(out, c, &d.codes);
    classes(out, c);
    out.extend_from_slice(CACHE_RESPONSES);
    field(out, b",\"requestMsecCounter\":", c.time_sum_ms);
    field(
        out,
        b",\"requestMsec\":",
        s.average(&c.queue, c.time_sum_ms, c.requests),
    );
    queue(out, b",\"requestMsecs\":", Some(&c.queue));
    let h = if histogram {
        d.histogram(tag, &c.buckets)
    } else {
        Vec::new()
    };
    buckets(out, b",\"requestBuckets\":", &h);
    out.extend_from_slice(SERVER_OVER_COUNTS);
}

/// A peer object (an element of an upstreamZones group): `{"server":...}`. `counters` is
/// `None` for a configured peer that has no key yet (zeros and empty queues, as vozlt prints
/// a peer without a node); `state` is `None` for a peer nginx does not have configured
/// (gone, or of `::nogroups`): weight, maxFails, failTimeout 0, backup and down false.
pub fn peer_object(
    out: &mut Vec<u8>,
    server: Name,
    counters: Option<(&Counters, u32)>,
    state: Option<&PeerState>,
    s: &Settings,
) {
    let zero = Counters::default();
    let (c, tag) = counters.unwrap_or((&zero, 0));
    let counters = counters.map(|(c, _)| c);
    let d = s.display;
    out.extend_from_slice(b"{\"server\":");
    server.write(out);
    field(out, b",\"requestCounter\":", c.requests);
    field(out, b",\"inBytes\":", c.bytes_in);
    field(out, b",\"outBytes\":", c.bytes_out);
    out.push(b',');
    classes(out, c);
    out.push(b'}');
    field(out, b",\"requestMsecCounter\":", c.time_sum_ms);
    field(
        out,
        b",\"requestMsec\":",
        s.average(&c.queue, c.time_sum_ms, c.requests),
    );
    queue(out, b",\"requestMsecs\":", counters.map(|c| &c.queue[..]));
    // (The response histogram shows the same bounds, as in the C module.)
    let (request_h, response_h) = match counters {
        Some(c) => (
            d.histogram(tag, &c.buckets),
            d.histogram(tag, &c.response_buckets),
        ),
        None => (Vec::new(), Vec::new()),
    };
    buckets(out, b",\"requestBuckets\":", &request_h);
    field(out, b",\"responseMsecCounter\":", c.upstream_sum_ms);
    field(
        out,
        b",\"responseMsec\":",
        s.average(&c.response_queue, c.upstream_sum_ms, c.upstream_count),
    );
    queue(
        out,
        b",\"responseMsecs\":",
        counters.map(|c| &c.response_queue[..]),
    );
    buckets(out, b",\"responseBuckets\":", &response_h);
    let (weight, max_fails, fail_timeout, backup, down) = state.map_or((0, 0, 0, false, false), |p| {
        (p.weight, p.max_fails, p.fail_timeout_s, p.backup, p.down)
    });
    field(out, b",\"weight\":", weight);
    field(out, b",\"maxFails\":", max_fails);
    field(out, b",\"failTimeout\":", fail_timeout);
    out.extend_from_slice(if backup {
        b",\"backup\":true"
    } else {
        b",\"backup\":false"
    });
    out.extend_from_slice(if down {
        b",\"down\":true"
    } else {
        b",\"down\":false"
    });
    out.extend_from_slice(PEER_OVER_COUNTS);
}

/// The sum entry's counters: [`View::server_sum`], its merged queue keeping only the samples
/// inside the display's window (vozlt merges only those; they are left-padded when printed).
pub fn server_sum(view: &View) -> Counters {
    let mut sum = view.server_sum();
    let d = &view.display;
    let since = if d.period_ms > 0 {
        view.info.now_msec.saturating_sub(d.period_ms)
    } else {
        0
    };
    sum.queue.retain(|&(t, _)| t > since);
    sum
}

/// The index in `entries` of `e`, one of its elements (the view's methods hand out references).
fn index_of(entries: &[Entry], e: &Entry) -> usize {
    let i = (e as *const Entry as usize - entries.as_ptr() as usize) / size_of::<Entry>();
    debug_assert!(std::ptr::eq(&entries[i], e));
    i
}

/// The overflow entry of `of` (`server`, `upstream`), once it counted something.
fn overflow(view: &View, of: &[u8]) -> Option<usize> {
    view.snapshot
        .entries
        .iter()
        .position(|e| e.kind == Kind::Overflow && e.name == of && e.counters.requests > 0)
}

/// One upstreamZones element to write: counters from the snapshot (an entry index), state from
/// nginx (a `view.peers` index); either may be missing.
#[derive(Clone, Copy, Debug)]
struct PeerRow {
    entry: Option<usize>,
    state: Option<usize>,
    /// The upstream overflow entry, shown as `::overflow`.
    overflow: bool,
    /// Shown with weight, maxFails... 0 (vozlt's gone and `::nogroups` peers), even if a
    /// state is known.
    stateless: bool,
}

/// A piece of the document. Every slice ends before a zone or peer, so each writes at least
/// one (see [`JsonScrape::write`]).
#[derive(Clone, Copy, Debug)]
enum Step {
    /// The JSONP callback and `(`, `{`, the main fields, `,"serverZones":{`.
    Head,
    /// A serverZones member: entry index; `first` has no comma before it.
    Server {
        entry: usize,
        first: bool,
    },
    /// The server overflow entry, as `::overflow`.
    ServerOverflow {
        entry: usize,
        first: bool,
    },
    /// The sum entry, and the `}` that closes serverZones.
    Sum {
        first: bool,
    },
    // filterZones will slot in here (a later issue): `,"filterZones":{...}`.
    /// `,"upstreamZones":{`.
    UpstreamHead,
    /// `"<group>":[` (a comma before unless first); `None` is `::nogroups`. Index into
    /// `JsonScrape::groups`.
    GroupHead {
        group: Option<usize>,
        first: bool,
    },
    Peer {
        row: PeerRow,
        first: bool,
    },
    /// `]`.
    GroupEnd,
    /// `}`.
    UpstreamEnd,
    // cacheZones will slot in here (a later issue): `,"cacheZones":{...}`.
    /// `}` and the JSONP `)`.
    Tail,
}

impl Step {
    /// The steps that grow with the zones; a slice stops only before one of them.
    fn is_zone(self) -> bool {
        matches!(
            self,
            Step::Server { .. } | Step::ServerOverflow { .. } | Step::Sum { .. } | Step::Peer { .. }
        )
    }
}

/// The JSON (or JSONP) document being written, in slices. It owns its view; where it is in the
/// document is a list of steps and an index into it.
pub struct JsonScrape {
    view: View,
    jsonp: bool,
    /// The configured group names, in configuration order (`view.peers` indices of a peer of
    /// each, to borrow the name).
    groups: Vec<usize>,
    steps: Vec<Step>,
    next: usize,
}

impl JsonScrape {
    pub fn new(view: View, jsonp: bool) -> JsonScrape {
        let mut steps = vec![Step::Head];
        let entries = &view.snapshot.entries;
        let mut first = true;
        for e in view.server_zones() {
            // Kept as indices: the steps live beside the view, not borrowing it.
            let entry = index_of(entries, e);
            steps.push(Step::Server { entry, first });
            first = false;
        }
        if let Some(entry) = overflow(&view, b"server") {
            steps.push(Step::ServerOverflow { entry, first });
            first = false;
        }
        steps.push(Step::Sum { first });
        let groups = upstream_steps(&view, &mut steps);
        steps.push(Step::Tail);
        JsonScrape {
            view,
            jsonp,
            groups,
            steps,
            next: 0,
        }
    }

    fn write_step(&self, out: &mut Vec<u8>, step: Step) {
        let view = &self.view;
        let s = Settings::of(view);
        let comma = |out: &mut Vec<u8>, first: bool| {
            if !first {
                out.push(b',');
            }
        };
        match step {
            Step::Head => {
                if self.jsonp {
                    out.extend_from_slice(&view.display.jsonp);
                    out.push(b'(');
                }
                out.push(b'{');
                main_fields(out, view);
                out.extend_from_slice(b",\"serverZones\":{");
            }
            Step::Server { entry, first } => {
                comma(out, first);
                let e = &view.snapshot.entries[entry];
                Name::Configured(&e.name).write(out);
                out.push(b':');
                server_object(out, &e.counters, e.tag, &s, true);
            }
            Step::ServerOverflow { entry, first } => {
                comma(out, first);
                Name::Reserved(OVERFLOW).write(out);
                out.push(b':');
                let e = &view.snapshot.entries[entry];
                server_object(out, &e.counters, e.tag, &s, true);
            }
            Step::Sum { first } => {
                comma(out, first);
                Name::Configured(&view.display.sum_key).write(out);
                out.push(b':');
                server_object(out, &server_sum(view), 0, &s, false);
                out.push(b'}');
            }
            Step::UpstreamHead => out.extend_from_slice(b",\"upstreamZones\":{"),
            Step::GroupHead { group, first } => {
                comma(out, first);
                let peers = view.peers.as_deref().unwrap_or_default();
                match group {
                    Some(g) => Name::Configured(&peers[self.groups[g]].group).write(out),
                    None => Name::Reserved(NOGROUPS).write(out),
                }
                out.extend_from_slice(b":[");
            }
            Step::Peer { row, first } => {
                comma(out, first);
                let peers = view.peers.as_deref().unwrap_or_default();
                let entry = row.entry.map(|i| &view.snapshot.entries[i]);
                let state = row.state.map(|i| &peers[i]);
                let server = if row.overflow {
                    Name::Reserved(OVERFLOW)
                } else if let Some(st) = state {
                    Name::or_reserved(&st.server, NONE)
                } else {
                    let peer = entry
                        .and_then(|e| split_upstream_key(&e.name))
                        .map_or(&[][..], |(_, p)| p);
                    Name::or_reserved(peer, NONE)
                };
                let state = if row.stateless { None } else { state };
                peer_object(out, server, entry.map(|e| (&e.counters, e.tag)), state, &s);
            }
            Step::GroupEnd => out.push(b']'),
            Step::UpstreamEnd => out.push(b'}'),
            Step::Tail => {
                out.push(b'}');
                if self.jsonp {
                    out.push(b')');
                }
            }
        }
    }
}

/// Plans upstreamZones (when upstream statistics are on and there is a group to show):
/// configured groups in configuration order, each with its configured peers then its gone
/// peers (keys of the group no configured peer has, by name); then `::nogroups` (keys without
/// a group, by name, and the upstream overflow entry). Returns the groups' `view.peers` indices.
fn upstream_steps(view: &View, steps: &mut Vec<Step>) -> Vec<usize> {
    let Some(peers) = view.peers.as_deref() else {
        return Vec::new();
    };
    let entries = &view.snapshot.entries;
    // (group, peer) -> entry index, for every peer key that counted something. (Configured
    // peers have keys from the start; nginx-module-vts has a node once an attempt made it, and
    // shows a peer without one with empty queues.)
    let mut keyed: Vec<(&[u8], &[u8], usize)> = entries
        .iter()
        .enumerate()
        .filter(|(_, e)| e.kind == Kind::UpstreamPeer)
        .filter(|(_, e)| e.counters.counted())
        .filter_map(|(i, e)| split_upstream_key(&e.name).map(|(g, p)| (g, p, i)))
        .collect();
    keyed.sort_unstable();
    let find = |g: &[u8], p: &[u8]| keyed.binary_search_by(|&(kg, kp, _)| (kg, kp).cmp(&(g, p))).ok();
    let mut used = vec![false; keyed.len()];

    // Configured groups in order of first appearance, each with its peers' indices.
    let mut index: HashMap<&[u8], usize> = HashMap::new();
    let mut grouped: Vec<Vec<usize>> = Vec::new();
    for (i, p) in peers.iter().enumerate().filter(|(_, p)| !p.group.is_empty()) {
        let g = *index.entry(&p.group).or_insert_with(|| {
            grouped.push(Vec::new());
            grouped.len() - 1
        });
        grouped[g].push(i);
    }
    let groups: Vec<usize> = grouped.iter().map(|members| members[0]).collect();
    let mut plan: Vec<Step> = Vec::new();
    for (gi, members) in grouped.iter().enumerate() {
        let group = &peers[members[0]].group[..];
        plan.push(Step::GroupHead {
            group: Some(gi),
            first: gi == 0,
        });
        let mut first = true;
        for &i in members {
            let k = find(group, &peers[i].server);
            if let Some(k) = k {
                used[k] = true;
            }
            let row = PeerRow {
                entry: k.map(|k| keyed[k].2),
                state: Some(i),
                overflow: false,
                stateless: false,
            };
            plan.push(Step::Peer { row, first });
            first = false;
        }
        // Gone peers: `keyed` is sorted, so this group's keys are one run, by peer name.
        let start = keyed.partition_point(|&(kg, _, _)| kg < group);
        for k in start..keyed.len() {
            if keyed[k].0 != group {
                break;
            }
            if used[k] {
                continue;
            }
            let row = PeerRow {
                entry: Some(keyed[k].2),
                state: None,
                overflow: false,
                stateless: true,
            };
            plan.push(Step::Peer { row, first });
            first = false;
        }
        plan.push(Step::GroupEnd);
    }

    // `::nogroups`: keys with an empty group and configured peers without a group, one row
    // per peer name, by name.
    let mut rows: Vec<(&[u8], PeerRow)> = keyed
        .iter()
        .take_while(|(g, _, _)| g.is_empty())
        .map(|&(_, p, i)| {
            let row = PeerRow {
                entry: Some(i),
                state: None,
                overflow: false,
                stateless: true,
            };
            (p, row)
        })
        .collect();
    // The keyed rows are `keyed`'s first ones, in the same order. A configured peer without a
    // group (a proxy_pass to an address) shows once it counted something, like the C
    // module's nodes: its key exists from the worker's start.
    for (i, p) in peers.iter().enumerate().filter(|(_, p)| p.group.is_empty()) {
        if let Some(k) = find(b"", &p.server) {
            rows[k].1.state = Some(i);
        }
    }
    rows.sort_by(|a, b| a.0.cmp(b.0));
    if let Some(o) = overflow(view, b"upstream") {
        let row = PeerRow {
            entry: Some(o),
            state: None,
            overflow: true,
            stateless: true,
        };
        rows.push((&b""[..], row));
    }
    if !rows.is_empty() {
        plan.push(Step::GroupHead {
            group: None,
            first: groups.is_empty(),
        });
        for (n, (_, row)) in rows.into_iter().enumerate() {
            plan.push(Step::Peer { row, first: n == 0 });
        }
        plan.push(Step::GroupEnd);
    }

    if !plan.is_empty() {
        steps.push(Step::UpstreamHead);
        steps.append(&mut plan);
        steps.push(Step::UpstreamEnd);
    }
    groups
}

impl Renderer for JsonScrape {
    /// Writes steps until `out` has grown by `budget` bytes and the next step is a zone or a
    /// peer, or the document is complete: each slice holds at least one zone.
    fn write(&mut self, out: &mut Vec<u8>, budget: usize) -> bool {
        if self.next == 0 {
            // About 2.2 KB per zone or peer with full queues: reserve once, so that a slice
            // does not regrow (and copy) the whole text.
            out.reserve(1024 + self.steps.len() * 2300);
        }
        let start = out.len();
        let mut zones = 0;
        while let Some(&step) = self.steps.get(self.next) {
            self.write_step(out, step);
            self.next += 1;
            zones += step.is_zone() as usize;
            let full = zones > 0 && out.len() - start >= budget;
            if full && self.steps.get(self.next).is_some_and(|s| s.is_zone()) {
                break;
            }
        }
        self.next == self.steps.len()
    }
}

/// The whole document in one go.
pub fn render(view: View, jsonp: bool) -> Vec<u8> {
    let mut scrape = JsonScrape::new(view, jsonp);
    let mut out = Vec::new();
    while !scrape.write(&mut out, usize::MAX) {}
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::escape::display_name;
    use crate::stats::{upstream_key, Snapshot};
    use crate::view::{AvgMethod, Connections, Info, ShmUse};

    // -----------------------------------------------------------------------------------------
    // Expected texts, written from the reference (not from the code above).

    /// `0*N` in the texts below stands for N zeros, comma-joined (the queues' padding).
    fn expand(s: &str) -> String {
        let mut out = String::new();
        let mut rest = s;
        while let Some(i) = rest.find("0*") {
            out.push_str(&rest[..i]);
            let after = &rest[i + 2..];
            let digits = after.bytes().take_while(u8::is_ascii_digit).count();
            let n: usize = after[..digits].parse().unwrap();
            out.push_str(&vec!["0"; n].join(","));
            rest = &after[digits..];
        }
        out.push_str(rest);
        out
    }

    /// A queue as printed for an existing key (reference 0.7): 63 entries, padded in front.
    fn q63(q: &[(u64, u64)]) -> String {
        let mut times = vec!["0".to_string(); 63 - q.len()];
        let mut msecs = times.clone();
        times.extend(q.iter().map(|e| e.0.to_string()));
        msecs.extend(q.iter().map(|e| e.1.to_string()));
        format!(
            r#"{{"times":[{}],"msecs":[{}]}}"#,
            times.join(","),
            msecs.join(",")
        )
    }

    const CACHE0: &str =
        r#""miss":0,"bypass":0,"expired":0,"stale":0,"updating":0,"revalidated":0,"hit":0,"scarce":0"#;
    const SERVER_OVER: &str = concat!(
        r#""overCounts":{"maxIntegerSize":18446744073709551615,"requestCounter":0,"inBytes":0,"#,
        r#""outBytes":0,"1xx":0,"2xx":0,"3xx":0,"4xx":0,"5xx":0,"miss":0,"bypass":0,"expired":0,"#,
        r#""stale":0,"updating":0,"revalidated":0,"hit":0,"scarce":0,"requestMsecCounter":0}"#,
    );
    const PEER_OVER: &str = concat!(
        r#""overCounts":{"maxIntegerSize":18446744073709551615,"requestCounter":0,"inBytes":0,"#,
        r#""outBytes":0,"1xx":0,"2xx":0,"3xx":0,"4xx":0,"5xx":0,"requestMsecCounter":0,"#,
        r#""responseMsecCounter":0}"#,
    );

    /// Equal texts, or a panic that shows where they part (the documents are long).
    #[track_caller]
    fn assert_text(got: &[u8], want: &str) {
        let got = String::from_utf8_lossy(got);
        if got == want {
            return;
        }
        let at = got
            .bytes()
            .zip(want.bytes())
            .position(|(a, b)| a != b)
            .unwrap_or(got.len().min(want.len()));
        let from = at.saturating_sub(120);
        panic!(
            "texts differ at byte {at} (lengths {} and {}):\n got: ...{}\nwant: ...{}",
            got.len(),
            want.len(),
            &got[from..(at + 80).min(got.len())],
            &want[from..(at + 80).min(want.len())],
        );
    }

    fn json(text: &[u8]) -> serde_json::Value {
        serde_json::from_slice(text)
            .unwrap_or_else(|e| panic!("invalid JSON ({e}): {}", String::from_utf8_lossy(text)))
    }

    // -----------------------------------------------------------------------------------------
    // Views.

    fn entry(kind: Kind, name: &[u8], counters: Counters) -> Entry {
        Entry {
            kind,
            name: name.to_vec(),
            counters,

            ..Default::default()
        }
    }

    fn server(name: &str, c: Counters) -> Entry {
        entry(Kind::Server, name.as_bytes(), c)
    }

    fn peer(group: &str, server: &str, c: Counters) -> Entry {
        entry(
            Kind::UpstreamPeer,
            &upstream_key(group.as_bytes(), server.as_bytes()),
            c,
        )
    }

    /// The two overflow entries every zone has from its creation.
    fn overflows(server: Counters, upstream: Counters) -> [Entry; 2] {
        [
            entry(Kind::Overflow, b"server", server),
            entry(Kind::Overflow, b"upstream", upstream),
        ]
    }

    fn state(group: &str, server: &str, weight: u64, max_fails: u64, fail_timeout_s: u64) -> PeerState {
        PeerState {
            group: group.into(),
            server: server.into(),
            up: true,
            down: false,
            weight,
            max_fails,
            fail_timeout_s,
            backup: false,
        }
    }

    fn view(entries: Vec<Entry>, peers: Option<Vec<PeerState>>, display: Display) -> View {
        View {
            info: Info {
                hostname: b"vm".to_vec(),
                module_version: "0.1.0".into(),
                nginx_version: "1.28.3".into(),
                load_msec: 1000,
                now_msec: 100_000,
            },
            connections: None,
            shm: ShmUse {
                name: b"ngx_http_vhost_traffic_status".to_vec(),
                max_size: 1048575,
                used_size: 1000,
                free_size: 2000,
                used_node: entries.len() as u64,
                max_node: 100,
            },
            snapshot: Snapshot {
                entries,
                ..Default::default()
            },
            peers,
            display,
        }
    }

    fn at(base: u64, q: &[(u64, u64)]) -> Vec<(u64, u64)> {
        q.iter().map(|&(t, ms)| (base + t, ms)).collect()
    }

    // -----------------------------------------------------------------------------------------
    // Against the C module: documents it printed (shared/oracle, nginx 1.28.3), copied here
    // with the 63-entry queues' padding shortened to `0*N`; the views hold the same counts.

    /// `upstream backend { server 127.0.0.1:18101 weight=3 max_fails=2 fail_timeout=5;
    /// server 127.0.0.1:18103 backup; }`, a `proxy_pass http://127.0.0.1:18101` (::nogroups),
    /// `measure_status_codes 200 404`, `histogram_buckets 0.005 0.01 1`, two server zones.
    const ORACLE_UPSTREAMS: &str = concat!(
        r#"{"hostName":"vm","moduleVersion":"v0.2.7","nginxVersion":"1.28.3","#,
        r#""loadMsec":1796468837219,"nowMsec":1796468839161,"connections":{"active":1,"reading":0,"#,
        r#""writing":1,"waiting":0,"accepted":8,"handled":8,"requests":8},"#,
        r#""sharedZones":{"name":"ngx_http_vhost_traffic_status","maxSize":1048575,"#,
        r#""usedSize":14209,"usedNode":4,"freeSize":1011712},"#,
        r#""serverZones":{"example.org":{"requestCounter":5,"inBytes":430,"outBytes":13278,"#,
        r#""statusCodes":{"other":0,"200":4,"404":1}, "responses":{"1xx":0,"2xx":4,"3xx":0,"4xx":1,"#,
        r#""5xx":0,"miss":0,"bypass":0,"expired":0,"stale":0,"updating":0,"revalidated":0,"hit":0,"#,
        r#""scarce":0},"requestMsecCounter":0,"requestMsec":0,"requestMsecs":{"times":[0*58,"#,
        r#"1796468837739,1796468837750,1796468837765,1796468837798,1796468837809],"msecs":[0*63]},"#,
        r#""requestBuckets":{"msecs":[5,10,1000],"counters":[5,5,5]},"#,
        r#""overCounts":{"maxIntegerSize":18446744073709551615,"requestCounter":0,"inBytes":0,"#,
        r#""outBytes":0,"1xx":0,"2xx":0,"3xx":0,"4xx":0,"5xx":0,"miss":0,"bypass":0,"expired":0,"#,
        r#""stale":0,"updating":0,"revalidated":0,"hit":0,"scarce":0,"requestMsecCounter":0}},"#,
        r#""back":{"requestCounter":2,"inBytes":196,"outBytes":290,"statusCodes":{"other":0,"#,
        r#""200":2,"404":0}, "responses":{"1xx":0,"2xx":2,"3xx":0,"4xx":0,"5xx":0,"miss":0,"#,
        r#""bypass":0,"expired":0,"stale":0,"updating":0,"revalidated":0,"hit":0,"scarce":0},"#,
        r#""requestMsecCounter":0,"requestMsec":0,"requestMsecs":{"times":[0*61,1796468837739,"#,
        r#"1796468837749],"msecs":[0*63]},"requestBuckets":{"msecs":[5,10,1000],"counters":[2,2,"#,
        r#"2]},"overCounts":{"maxIntegerSize":18446744073709551615,"requestCounter":0,"inBytes":0,"#,
        r#""outBytes":0,"1xx":0,"2xx":0,"3xx":0,"4xx":0,"5xx":0,"miss":0,"bypass":0,"expired":0,"#,
        r#""stale":0,"updating":0,"revalidated":0,"hit":0,"scarce":0,"requestMsecCounter":0}},"#,
        r#""*":{"requestCounter":7,"inBytes":626,"outBytes":13568,"statusCodes":{"other":0,"200":6,"#,
        r#""404":1}, "responses":{"1xx":0,"2xx":6,"3xx":0,"4xx":1,"5xx":0,"miss":0,"bypass":0,"#,
        r#""expired":0,"stale":0,"updating":0,"revalidated":0,"hit":0,"scarce":0},"#,
        r#""requestMsecCounter":0,"requestMsec":0,"requestMsecs":{"times":[0*56,1796468837739,"#,
        r#"1796468837739,1796468837749,1796468837750,1796468837765,1796468837798,1796468837809],"#,
        r#""msecs":[0*63]},"requestBuckets":{"msecs":[],"counters":[]},"#,
        r#""overCounts":{"maxIntegerSize":18446744073709551615,"requestCounter":0,"inBytes":0,"#,
        r#""outBytes":0,"1xx":0,"2xx":0,"3xx":0,"4xx":0,"5xx":0,"miss":0,"bypass":0,"expired":0,"#,
        r#""stale":0,"updating":0,"revalidated":0,"hit":0,"scarce":0,"requestMsecCounter":0}}},"#,
        r#""upstreamZones":{"backend":[{"server":"127.0.0.1:18101","requestCounter":1,"inBytes":81,"#,
        r#""outBytes":150,"responses":{"1xx":0,"2xx":1,"3xx":0,"4xx":0,"5xx":0},"#,
        r#""requestMsecCounter":0,"requestMsec":0,"requestMsecs":{"times":[0*62,1796468837739],"#,
        r#""msecs":[0*63]},"requestBuckets":{"msecs":[5,10,1000],"counters":[1,1,1]},"#,
        r#""responseMsecCounter":1,"responseMsec":1,"responseMsecs":{"times":[0*62,1796468837739],"#,
        r#""msecs":[0*62,1]},"responseBuckets":{"msecs":[5,10,1000],"counters":[1,1,1]},"weight":3,"#,
        r#""maxFails":2,"failTimeout":5,"backup":false,"down":false,"#,
        r#""overCounts":{"maxIntegerSize":18446744073709551615,"requestCounter":0,"inBytes":0,"#,
        r#""outBytes":0,"1xx":0,"2xx":0,"3xx":0,"4xx":0,"5xx":0,"requestMsecCounter":0,"#,
        r#""responseMsecCounter":0}},{"server":"127.0.0.1:18103","requestCounter":0,"inBytes":0,"#,
        r#""outBytes":0,"responses":{"1xx":0,"2xx":0,"3xx":0,"4xx":0,"5xx":0},"#,
        r#""requestMsecCounter":0,"requestMsec":0,"requestMsecs":{"times":[],"msecs":[]},"#,
        r#""requestBuckets":{"msecs":[],"counters":[]},"responseMsecCounter":0,"responseMsec":0,"#,
        r#""responseMsecs":{"times":[],"msecs":[]},"responseBuckets":{"msecs":[],"counters":[]},"#,
        r#""weight":1,"maxFails":1,"failTimeout":10,"backup":true,"down":false,"#,
        r#""overCounts":{"maxIntegerSize":18446744073709551615,"requestCounter":0,"inBytes":0,"#,
        r#""outBytes":0,"1xx":0,"2xx":0,"3xx":0,"4xx":0,"5xx":0,"requestMsecCounter":0,"#,
        r#""responseMsecCounter":0}}],"::nogroups":[{"server":"127.0.0.1:18101","requestCounter":1,"#,
        r#""inBytes":85,"outBytes":150,"responses":{"1xx":0,"2xx":1,"3xx":0,"4xx":0,"5xx":0},"#,
        r#""requestMsecCounter":0,"requestMsec":0,"requestMsecs":{"times":[0*62,1796468837750],"#,
        r#""msecs":[0*63]},"requestBuckets":{"msecs":[5,10,1000],"counters":[1,1,1]},"#,
        r#""responseMsecCounter":0,"responseMsec":0,"responseMsecs":{"times":[0*62,1796468837750],"#,
        r#""msecs":[0*63]},"responseBuckets":{"msecs":[5,10,1000],"counters":[1,1,1]},"weight":0,"#,
        r#""maxFails":0,"failTimeout":0,"backup":false,"down":false,"#,
        r#""overCounts":{"maxIntegerSize":18446744073709551615,"requestCounter":0,"inBytes":0,"#,
        r#""outBytes":0,"1xx":0,"2xx":0,"3xx":0,"4xx":0,"5xx":0,"requestMsecCounter":0,"#,
        r#""responseMsecCounter":0}}]}}"#,
    );

    /// `measure_status_codes all`, `display_sum_key "s\"um"`, `average_method AMM 1s`: b.org's
    /// request came 2 s after a.org's, so the sum's queue holds b.org's sample only.
    const ORACLE_ALL_CODES: &str = concat!(
        r#"{"hostName":"vm","moduleVersion":"v0.2.7","nginxVersion":"1.28.3","#,
        r#""loadMsec":1796468861091,"nowMsec":1796468863837,"connections":{"active":1,"reading":0,"#,
        r#""writing":1,"waiting":0,"accepted":4,"handled":4,"requests":4},"#,
        r#""sharedZones":{"name":"ngx_http_vhost_traffic_status","maxSize":1048575,"usedSize":7088,"#,
        r#""usedNode":2,"freeSize":1015808},"serverZones":{"a.org":{"requestCounter":2,"#,
        r#""inBytes":160,"outBytes":458,"statusCodes":{"other":0,"200":1,"404":1},"#,
        r#" "responses":{"1xx":0,"2xx":1,"3xx":0,"4xx":1,"5xx":0,"miss":0,"bypass":0,"expired":0,"#,
        r#""stale":0,"updating":0,"revalidated":0,"hit":0,"scarce":0},"requestMsecCounter":0,"#,
        r#""requestMsec":0,"requestMsecs":{"times":[0*61,1796468861635,1796468861727],"#,
        r#""msecs":[0*63]},"requestBuckets":{"msecs":[],"counters":[]},"#,
        r#""overCounts":{"maxIntegerSize":18446744073709551615,"requestCounter":0,"inBytes":0,"#,
        r#""outBytes":0,"1xx":0,"2xx":0,"3xx":0,"4xx":0,"5xx":0,"miss":0,"bypass":0,"expired":0,"#,
        r#""stale":0,"updating":0,"revalidated":0,"hit":0,"scarce":0,"requestMsecCounter":0}},"#,
        r#""b.org":{"requestCounter":1,"inBytes":79,"outBytes":150,"statusCodes":{"other":0,"#,
        r#""200":1}, "responses":{"1xx":0,"2xx":1,"3xx":0,"4xx":0,"5xx":0,"miss":0,"bypass":0,"#,
        r#""expired":0,"stale":0,"updating":0,"revalidated":0,"hit":0,"scarce":0},"#,
        r#""requestMsecCounter":0,"requestMsec":0,"requestMsecs":{"times":[0*62,1796468863796],"#,
        r#""msecs":[0*63]},"requestBuckets":{"msecs":[],"counters":[]},"#,
        r#""overCounts":{"maxIntegerSize":18446744073709551615,"requestCounter":0,"inBytes":0,"#,
        r#""outBytes":0,"1xx":0,"2xx":0,"3xx":0,"4xx":0,"5xx":0,"miss":0,"bypass":0,"expired":0,"#,
        r#""stale":0,"updating":0,"revalidated":0,"hit":0,"scarce":0,"requestMsecCounter":0}},"#,
        r#""s\"um":{"requestCounter":3,"inBytes":239,"outBytes":608,"statusCodes":{"other":0,"#,
        r#""200":2,"404":1}, "responses":{"1xx":0,"2xx":2,"3xx":0,"4xx":1,"5xx":0,"miss":0,"#,
        r#""bypass":0,"expired":0,"stale":0,"updating":0,"revalidated":0,"hit":0,"scarce":0},"#,
        r#""requestMsecCounter":0,"requestMsec":0,"requestMsecs":{"times":[0*62,1796468863796],"#,
        r#""msecs":[0*63]},"requestBuckets":{"msecs":[],"counters":[]},"#,
        r#""overCounts":{"maxIntegerSize":18446744073709551615,"requestCounter":0,"inBytes":0,"#,
        r#""outBytes":0,"1xx":0,"2xx":0,"3xx":0,"4xx":0,"5xx":0,"miss":0,"bypass":0,"expired":0,"#,
        r#""stale":0,"updating":0,"revalidated":0,"hit":0,"scarce":0,"requestMsecCounter":0}}}}"#,
    );

    /// Four requests through `upstream grp { server 127.0.0.1:18121; server 127.0.0.1:18122
    /// down; }` to a backend that sleeps, `average_method WMA 0`, `histogram_buckets 0.01 0.05
    /// 0.1`.
    const ORACLE_WMA: &str = concat!(
        r#"{"hostName":"vm","moduleVersion":"v0.2.7","nginxVersion":"1.28.3","#,
        r#""loadMsec":1796468987682,"nowMsec":1796468988983,"connections":{"active":1,"reading":0,"#,
        r#""writing":1,"waiting":0,"accepted":5,"handled":5,"requests":5},"#,
        r#""sharedZones":{"name":"ngx_http_vhost_traffic_status","maxSize":1048575,"usedSize":7102,"#,
        r#""usedNode":2,"freeSize":1024000},"serverZones":{"w.org":{"requestCounter":4,"#,
        r#""inBytes":324,"outBytes":496,"responses":{"1xx":0,"2xx":4,"3xx":0,"4xx":0,"5xx":0,"#,
        r#""miss":0,"bypass":0,"expired":0,"stale":0,"updating":0,"revalidated":0,"hit":0,"#,
        r#""scarce":0},"requestMsecCounter":278,"requestMsec":58,"requestMsecs":{"times":[0*59,"#,
        r#"1796468988463,1796468988684,1796468988785,1796468988933],"msecs":[0*59,114,75,33,56]},"#,
        r#""requestBuckets":{"msecs":[10,50,100],"counters":[0,1,3]},"#,
        r#""overCounts":{"maxIntegerSize":18446744073709551615,"requestCounter":0,"inBytes":0,"#,
        r#""outBytes":0,"1xx":0,"2xx":0,"3xx":0,"4xx":0,"5xx":0,"miss":0,"bypass":0,"expired":0,"#,
        r#""stale":0,"updating":0,"revalidated":0,"hit":0,"scarce":0,"requestMsecCounter":0}},"#,
        r#""*":{"requestCounter":4,"inBytes":324,"outBytes":496,"responses":{"1xx":0,"2xx":4,"#,
        r#""3xx":0,"4xx":0,"5xx":0,"miss":0,"bypass":0,"expired":0,"stale":0,"updating":0,"#,
        r#""revalidated":0,"hit":0,"scarce":0},"requestMsecCounter":278,"requestMsec":58,"#,
        r#""requestMsecs":{"times":[0*59,1796468988463,1796468988684,1796468988785,1796468988933],"#,
        r#""msecs":[0*59,114,75,33,56]},"requestBuckets":{"msecs":[],"counters":[]},"#,
        r#""overCounts":{"maxIntegerSize":18446744073709551615,"requestCounter":0,"inBytes":0,"#,
        r#""outBytes":0,"1xx":0,"2xx":0,"3xx":0,"4xx":0,"5xx":0,"miss":0,"bypass":0,"expired":0,"#,
        r#""stale":0,"updating":0,"revalidated":0,"hit":0,"scarce":0,"requestMsecCounter":0}}},"#,
        r#""upstreamZones":{"grp":[{"server":"127.0.0.1:18121","requestCounter":4,"inBytes":324,"#,
        r#""outBytes":496,"responses":{"1xx":0,"2xx":4,"3xx":0,"4xx":0,"5xx":0},"#,
        r#""requestMsecCounter":278,"requestMsec":58,"requestMsecs":{"times":[0*59,1796468988463,"#,
        r#"1796468988684,1796468988785,1796468988933],"msecs":[0*59,114,75,33,56]},"#,
        r#""requestBuckets":{"msecs":[10,50,100],"counters":[0,1,3]},"responseMsecCounter":278,"#,
        r#""responseMsec":58,"responseMsecs":{"times":[0*59,1796468988463,1796468988684,"#,
        r#"1796468988785,1796468988933],"msecs":[0*59,114,74,34,56]},"#,
        r#""responseBuckets":{"msecs":[10,50,100],"counters":[0,1,3]},"weight":1,"maxFails":1,"#,
        r#""failTimeout":10,"backup":false,"down":false,"#,
        r#""overCounts":{"maxIntegerSize":18446744073709551615,"requestCounter":0,"inBytes":0,"#,
        r#""outBytes":0,"1xx":0,"2xx":0,"3xx":0,"4xx":0,"5xx":0,"requestMsecCounter":0,"#,
        r#""responseMsecCounter":0}},{"server":"127.0.0.1:18122","requestCounter":0,"inBytes":0,"#,
        r#""outBytes":0,"responses":{"1xx":0,"2xx":0,"3xx":0,"4xx":0,"5xx":0},"#,
        r#""requestMsecCounter":0,"requestMsec":0,"requestMsecs":{"times":[],"msecs":[]},"#,
        r#""requestBuckets":{"msecs":[],"counters":[]},"responseMsecCounter":0,"responseMsec":0,"#,
        r#""responseMsecs":{"times":[],"msecs":[]},"responseBuckets":{"msecs":[],"counters":[]},"#,
        r#""weight":1,"maxFails":1,"failTimeout":10,"backup":false,"down":true,"#,
        r#""overCounts":{"maxIntegerSize":18446744073709551615,"requestCounter":0,"inBytes":0,"#,
        r#""outBytes":0,"1xx":0,"2xx":0,"3xx":0,"4xx":0,"5xx":0,"requestMsecCounter":0,"#,
        r#""responseMsecCounter":0}}]}}"#,
    );

    #[test]
    fn the_oracle_with_upstreams_and_listed_codes() {
        let t = |ms: &[u64]| ms.iter().map(|&x| (1_796_468_837_000 + x, 0)).collect();
        let example = Counters {
            requests: 5,
            bytes_in: 430,
            bytes_out: 13278,
            status: [0, 4, 0, 1, 0, 0],
            codes: vec![0, 4, 1],
            queue: t(&[739, 750, 765, 798, 809]),
            buckets: vec![5, 0, 0],
            ..Default::default()
        };
        let back = Counters {
            requests: 2,
            bytes_in: 196,
            bytes_out: 290,
            status: [0, 2, 0, 0, 0, 0],
            codes: vec![0, 2, 0],
            queue: t(&[739, 749]),
            buckets: vec![2, 0, 0],
            ..Default::default()
        };
        let backend = Counters {
            requests: 1,
            bytes_in: 81,
            bytes_out: 150,
            status: [0, 1, 0, 0, 0, 0],
            // Measured on peers too, and not shown there.
            codes: vec![0, 1, 0],
            queue: t(&[739]),
            buckets: vec![1, 0, 0],
            upstream_sum_ms: 1,
            upstream_count: 1,
            response_queue: vec![(1_796_468_837_739, 1)],
            response_buckets: vec![1, 0, 0],
            ..Default::default()
        };
        let direct = Counters {
            requests: 1,
            bytes_in: 85,
            bytes_out: 150,
            status: [0, 1, 0, 0, 0, 0],
            queue: t(&[750]),
            buckets: vec![1, 0, 0],
            upstream_count: 1,
            response_queue: t(&[750]),
            response_buckets: vec![1, 0, 0],
            ..Default::default()
        };
        let [o1, o2] = overflows(Counters::default(), Counters::default());
        let entries = vec![
            o1,
            o2,
            server("example.org", example),
            peer("backend", "127.0.0.1:18101", backend),
            server("back", back),
            peer("", "127.0.0.1:18101", direct),
        ];
        let mut backup = state("backend", "127.0.0.1:18103", 1, 1, 10);
        backup.backup = true;
        let peers = vec![state("backend", "127.0.0.1:18101", 3, 2, 5), backup];
        let display = Display {
            codes: StatusCodes::List(vec![200, 404]),
            bucket_seconds: vec![0.005, 0.01, 1.0],
            bucket_us: vec![5_000, 10_000, 1_000_000],
            ..Default::default()
        };
        let mut v = view(entries, Some(peers), display);
        v.info.load_msec = 1796468837219;
        v.info.now_msec = 1796468839161;
        v.connections = Some(Connections {
            active: 1,
            reading: 0,
            writing: 1,
            waiting: 0,
            accepted: 8,
            handled: 8,
            requests: 8,
        });
        (v.shm.used_size, v.shm.used_node, v.shm.free_size) = (14209, 4, 1011712);

        // The C module lists its zones in tree order (example.org, back); ngx_vts by name.
        let oracle = expand(ORACLE_UPSTREAMS);
        let a = oracle.find(r#""example.org":{"#).unwrap();
        let b = oracle.find(r#","back":{"#).unwrap();
        let sum = oracle.find(r#","*":{"#).unwrap();
        let want = format!(
            "{}{},{}{}",
            &oracle[..a],
            &oracle[b + 1..sum],
            &oracle[a..b],
            &oracle[sum..]
        );
        assert_text(&render(v.clone(), false), &want);
        json(want.as_bytes());

        // JSONP: the callback, verbatim, and parentheses; nothing else.
        let jsonp = render(v, true);
        assert_text(
            &jsonp,
            &format!("ngx_http_vhost_traffic_status_jsonp_callback({want})"),
        );
    }

    #[test]
    fn the_oracle_with_all_codes_a_sum_key_and_a_window() {
        let all = |codes: &[(usize, u64)]| {
            let mut v = vec![0u64; 501];
            for &(code, n) in codes {
                v[code - 99] = n;
            }
            v
        };
        let a = Counters {
            requests: 2,
            bytes_in: 160,
            bytes_out: 458,
            status: [0, 1, 0, 1, 0, 0],
            codes: all(&[(200, 1), (404, 1)]),
            queue: at(1_796_468_861_000, &[(635, 0), (727, 0)]),
            ..Default::default()
        };
        let b = Counters {
            requests: 1,
            bytes_in: 79,
            bytes_out: 150,
            status: [0, 1, 0, 0, 0, 0],
            codes: all(&[(200, 1)]),
            queue: vec![(1_796_468_863_796, 0)],
            ..Default::default()
        };
        let [o1, o2] = overflows(Counters::default(), Counters::default());
        let display = Display {
            sum_key: b"s\"um".to_vec(),
            period_ms: 1000,
            codes: StatusCodes::All,
            ..Default::default()
        };
        // Upstream statistics on, but no group and no ::nogroups key: no upstreamZones.
        let mut v = view(
            vec![o1, server("b.org", b), o2, server("a.org", a)],
            Some(vec![]),
            display,
        );
        v.info.load_msec = 1796468861091;
        v.info.now_msec = 1796468863837;
        v.connections = Some(Connections {
            active: 1,
            reading: 0,
            writing: 1,
            waiting: 0,
            accepted: 4,
            handled: 4,
            requests: 4,
        });
        (v.shm.used_size, v.shm.used_node, v.shm.free_size) = (7088, 2, 1015808);
        assert_text(&render(v, false), &expand(ORACLE_ALL_CODES));
    }

    #[test]
    fn the_oracle_with_wma_times_and_a_down_peer() {
        let base = 1_796_468_988_000;
        let request_q = at(base, &[(463, 114), (684, 75), (785, 33), (933, 56)]);
        let w = Counters {
            requests: 4,
            bytes_in: 324,
            bytes_out: 496,
            status: [0, 4, 0, 0, 0, 0],
            time_sum_ms: 278,
            queue: request_q.clone(),
            // 33 | 56, 75 | 114 (above the last bound).
            buckets: vec![0, 1, 2],
            ..Default::default()
        };
        let p = Counters {
            upstream_sum_ms: 278,
            upstream_count: 4,
            response_queue: at(base, &[(463, 114), (684, 74), (785, 34), (933, 56)]),
            response_buckets: vec![0, 1, 2],
            ..w.clone()
        };
        let [o1, o2] = overflows(Counters::default(), Counters::default());
        let mut down = state("grp", "127.0.0.1:18122", 1, 1, 10);
        down.down = true;
        down.up = false;
        let display = Display {
            method: AvgMethod::Wma,
            period_ms: 0,
            bucket_seconds: vec![0.01, 0.05, 0.1],
            bucket_us: vec![10_000, 50_000, 100_000],
            ..Default::default()
        };
        let mut v = view(
            vec![o1, o2, server("w.org", w), peer("grp", "127.0.0.1:18121", p)],
            Some(vec![state("grp", "127.0.0.1:18121", 1, 1, 10), down]),
            display,
        );
        v.info.load_msec = 1796468987682;
        v.info.now_msec = 1796468988983;
        v.connections = Some(Connections {
            active: 1,
            reading: 0,
            writing: 1,
            waiting: 0,
            accepted: 5,
            handled: 5,
            requests: 5,
        });
        (v.shm.used_size, v.shm.used_node, v.shm.free_size) = (7102, 2, 1024000);
        assert_text(&render(v, false), &expand(ORACLE_WMA));
    }

    // -----------------------------------------------------------------------------------------
    // A small view with every kind of member, its text written out from the reference.

    fn small() -> View {
        let a = Counters {
            requests: 4,
            bytes_in: 10,
            bytes_out: 20,
            status: [0, 3, 0, 1, 0, 0],
            time_sum_ms: 112,
            // The first sample is older than the 60 s window.
            queue: vec![(30_000, 100), (50_000, 2), (90_000, 4), (95_000, 6)],
            buckets: vec![1, 2],
            ..Default::default()
        };
        let server_overflow = Counters {
            requests: 1,
            bytes_in: 1,
            bytes_out: 2,
            status: [0, 0, 0, 0, 1, 0],
            time_sum_ms: 7,
            queue: vec![(99_000, 7)],
            buckets: vec![0, 1],
            ..Default::default()
        };
        let configured = Counters {
            requests: 2,
            bytes_in: 5,
            bytes_out: 6,
            status: [0, 1, 0, 0, 1, 0],
            time_sum_ms: 8,
            queue: vec![(80_000, 3), (90_000, 5)],
            buckets: vec![0, 2],
            upstream_sum_ms: 4,
            upstream_count: 2,
            response_queue: vec![(80_000, 1), (90_000, 3)],
            response_buckets: vec![1, 1],
            ..Default::default()
        };
        let gone = Counters {
            requests: 1,
            status: [0, 0, 0, 0, 1, 0],
            queue: vec![(1_000, 0)],
            buckets: vec![1, 0],
            upstream_sum_ms: 9,
            upstream_count: 1,
            response_queue: vec![(1_000, 9)],
            response_buckets: vec![0, 1],
            ..Default::default()
        };
        let direct = Counters {
            requests: 1,
            bytes_in: 1,
            bytes_out: 1,
            status: [0, 1, 0, 0, 0, 0],
            time_sum_ms: 1,
            queue: vec![(99_500, 1)],
            buckets: vec![1, 0],
            upstream_sum_ms: 1,
            upstream_count: 1,
            response_queue: vec![(99_500, 1)],
            response_buckets: vec![1, 0],
            ..Default::default()
        };
        let upstream_overflow = Counters {
            requests: 1,
            status: [0, 1, 0, 0, 0, 0],
            time_sum_ms: 2,
            queue: vec![(99_900, 2)],
            buckets: vec![0, 1],
            ..Default::default()
        };
        let [o1, o2] = overflows(server_overflow, upstream_overflow);
        let mut backup = state("g", "10.0.0.2:80", 1, 1, 10);
        backup.backup = true;
        let mut v = view(
            vec![
                o1,
                o2,
                peer("g", "10.0.0.9:80", gone),
                peer("", "10.0.0.3:80", direct),
                server("a.org", a),
                peer("g", "10.0.0.1:80", configured),
            ],
            Some(vec![state("g", "10.0.0.1:80", 5, 1, 10), backup]),
            Display {
                bucket_seconds: vec![0.001, 0.01],
                bucket_us: vec![1_000, 10_000],
                ..Default::default()
            },
        );
        v.info.hostname = b"h\"x".to_vec();
        v
    }

    fn small_text() -> String {
        let head = concat!(
            r#"{"hostName":"h\"x","moduleVersion":"v0.2.7","nginxVersion":"1.28.3","#,
            r#""loadMsec":1000,"nowMsec":100000,"connections":{"active":0,"reading":0,"#,
            r#""writing":0,"waiting":0,"accepted":0,"handled":0,"requests":0},"#,
            r#""sharedZones":{"name":"ngx_http_vhost_traffic_status","maxSize":1048575,"#,
            r#""usedSize":1000,"usedNode":6,"freeSize":2000},"#,
        );
        let a = format!(
            concat!(
                r#""a.org":{{"requestCounter":4,"inBytes":10,"outBytes":20,"responses":{{"1xx":0,"#,
                r#""2xx":3,"3xx":0,"4xx":1,"5xx":0,{cache}}},"requestMsecCounter":112,"#,
                r#""requestMsec":4,"requestMsecs":{q},"#,
                r#""requestBuckets":{{"msecs":[1,10],"counters":[1,3]}},{over}}}"#,
            ),
            cache = CACHE0,
            q = q63(&[(30_000, 100), (50_000, 2), (90_000, 4), (95_000, 6)]),
            over = SERVER_OVER,
        );
        let overflow = format!(
            concat!(
                r#""::overflow":{{"requestCounter":1,"inBytes":1,"outBytes":2,"responses":{{"#,
                r#""1xx":0,"2xx":0,"3xx":0,"4xx":0,"5xx":1,{cache}}},"requestMsecCounter":7,"#,
                r#""requestMsec":7,"requestMsecs":{q},"#,
                r#""requestBuckets":{{"msecs":[1,10],"counters":[0,1]}},{over}}}"#,
            ),
            cache = CACHE0,
            q = q63(&[(99_000, 7)]),
            over = SERVER_OVER,
        );
        // The sum: the old sample is outside the window, so not in the merged queue.
        let sum = format!(
            concat!(
                r#""*":{{"requestCounter":5,"inBytes":11,"outBytes":22,"responses":{{"#,
                r#""1xx":0,"2xx":3,"3xx":0,"4xx":1,"5xx":1,{cache}}},"requestMsecCounter":119,"#,
                r#""requestMsec":4,"requestMsecs":{q},"#,
                r#""requestBuckets":{{"msecs":[],"counters":[]}},{over}}}"#,
            ),
            cache = CACHE0,
            q = q63(&[(50_000, 2), (90_000, 4), (95_000, 6), (99_000, 7)]),
            over = SERVER_OVER,
        );
        let configured = format!(
            concat!(
                r#"{{"server":"10.0.0.1:80","requestCounter":2,"inBytes":5,"outBytes":6,"#,
                r#""responses":{{"1xx":0,"2xx":1,"3xx":0,"4xx":0,"5xx":1}},"#,
                r#""requestMsecCounter":8,"requestMsec":4,"requestMsecs":{q},"#,
                r#""requestBuckets":{{"msecs":[1,10],"counters":[0,2]}},"#,
                r#""responseMsecCounter":4,"responseMsec":2,"responseMsecs":{r},"#,
                r#""responseBuckets":{{"msecs":[1,10],"counters":[1,2]}},"#,
                r#""weight":5,"maxFails":1,"failTimeout":10,"backup":false,"down":false,{over}}}"#,
            ),
            q = q63(&[(80_000, 3), (90_000, 5)]),
            r = q63(&[(80_000, 1), (90_000, 3)]),
            over = PEER_OVER,
        );
        let backup = format!(
            concat!(
                r#"{{"server":"10.0.0.2:80","requestCounter":0,"inBytes":0,"outBytes":0,"#,
                r#""responses":{{"1xx":0,"2xx":0,"3xx":0,"4xx":0,"5xx":0}},"#,
                r#""requestMsecCounter":0,"requestMsec":0,"requestMsecs":{{"times":[],"msecs":[]}},"#,
                r#""requestBuckets":{{"msecs":[],"counters":[]}},"#,
                r#""responseMsecCounter":0,"responseMsec":0,"#,
                r#""responseMsecs":{{"times":[],"msecs":[]}},"#,
                r#""responseBuckets":{{"msecs":[],"counters":[]}},"#,
                r#""weight":1,"maxFails":1,"failTimeout":10,"backup":true,"down":false,{over}}}"#,
            ),
            over = PEER_OVER,
        );
        // Gone: its samples are older than the window, so both averages are 0.
        let gone = format!(
            concat!(
                r#"{{"server":"10.0.0.9:80","requestCounter":1,"inBytes":0,"outBytes":0,"#,
                r#""responses":{{"1xx":0,"2xx":0,"3xx":0,"4xx":0,"5xx":1}},"#,
                r#""requestMsecCounter":0,"requestMsec":0,"requestMsecs":{q},"#,
                r#""requestBuckets":{{"msecs":[1,10],"counters":[1,1]}},"#,
                r#""responseMsecCounter":9,"responseMsec":0,"responseMsecs":{r},"#,
                r#""responseBuckets":{{"msecs":[1,10],"counters":[0,1]}},"#,
                r#""weight":0,"maxFails":0,"failTimeout":0,"backup":false,"down":false,{over}}}"#,
            ),
            q = q63(&[(1_000, 0)]),
            r = q63(&[(1_000, 9)]),
            over = PEER_OVER,
        );
        let direct = format!(
            concat!(
                r#"{{"server":"10.0.0.3:80","requestCounter":1,"inBytes":1,"outBytes":1,"#,
                r#""responses":{{"1xx":0,"2xx":1,"3xx":0,"4xx":0,"5xx":0}},"#,
                r#""requestMsecCounter":1,"requestMsec":1,"requestMsecs":{q},"#,
                r#""requestBuckets":{{"msecs":[1,10],"counters":[1,1]}},"#,
                r#""responseMsecCounter":1,"responseMsec":1,"responseMsecs":{q},"#,
                r#""responseBuckets":{{"msecs":[1,10],"counters":[1,1]}},"#,
                r#""weight":0,"maxFails":0,"failTimeout":0,"backup":false,"down":false,{over}}}"#,
            ),
            q = q63(&[(99_500, 1)]),
            over = PEER_OVER,
        );
        let upstream_overflow = format!(
            concat!(
                r#"{{"server":"::overflow","requestCounter":1,"inBytes":0,"outBytes":0,"#,
                r#""responses":{{"1xx":0,"2xx":1,"3xx":0,"4xx":0,"5xx":0}},"#,
                r#""requestMsecCounter":2,"requestMsec":2,"requestMsecs":{q},"#,
                r#""requestBuckets":{{"msecs":[1,10],"counters":[0,1]}},"#,
                r#""responseMsecCounter":0,"responseMsec":0,"responseMsecs":{r},"#,
                r#""responseBuckets":{{"msecs":[1,10],"counters":[0,0]}},"#,
                r#""weight":0,"maxFails":0,"failTimeout":0,"backup":false,"down":false,{over}}}"#,
            ),
            q = q63(&[(99_900, 2)]),
            r = q63(&[]),
            over = PEER_OVER,
        );
        format!(
            concat!(
                r#"{head}"serverZones":{{{a},{overflow},{sum}}},"#,
                r#""upstreamZones":{{"g":[{configured},{backup},{gone}],"#,
                r#""::nogroups":[{direct},{upstream_overflow}]}}}}"#,
            ),
            head = head,
            a = a,
            overflow = overflow,
            sum = sum,
            configured = configured,
            backup = backup,
            gone = gone,
            direct = direct,
            upstream_overflow = upstream_overflow,
        )
    }

    #[test]
    fn every_kind_of_member() {
        let want = small_text();
        json(want.as_bytes());
        assert_text(&render(small(), false), &want);
    }

    #[test]
    fn jsonp_is_the_callback_verbatim_around_the_document() {
        let mut v = small();
        v.display.jsonp = b"my_cb".to_vec();
        assert_text(&render(v, true), &format!("my_cb({})", small_text()));
    }

    #[test]
    fn slices_make_the_same_text_for_every_budget() {
        let mut views = vec![small()];
        let mut jsonp = small();
        jsonp.peers = None;
        views.push(jsonp);
        for (i, v) in views.into_iter().enumerate() {
            let jsonp = i == 1;
            let whole = render(v.clone(), jsonp);
            // Members: server zones, ::overflow, the sum, the peers.
            let members = if jsonp { 3 } else { 3 + 5 };
            for budget in 1..=whole.len() + 1 {
                let mut s = JsonScrape::new(v.clone(), jsonp);
                let mut out = Vec::new();
                let mut calls = 0;
                loop {
                    let before = out.len();
                    let done = s.write(&mut out, budget);
                    calls += 1;
                    assert!(out.len() > before, "an empty slice");
                    if done {
                        break;
                    }
                    assert!(calls <= members, "more slices than members");
                }
                assert_text(&out, std::str::from_utf8(&whole).unwrap());
                if budget == 1 {
                    // At least one member per slice, and no more than needed.
                    assert_eq!(calls, members);
                }
                if budget > whole.len() {
                    assert_eq!(calls, 1);
                }
                // Once complete, a write adds nothing.
                assert!(s.write(&mut out, budget));
                assert_eq!(out.len(), whole.len());
            }
        }
    }

    // -----------------------------------------------------------------------------------------
    // Pieces.

    fn object(c: &Counters, display: &Display, now_msec: u64) -> String {
        let mut out = Vec::new();
        server_object(&mut out, c, 0, &Settings { display, now_msec }, true);
        String::from_utf8(out).unwrap()
    }

    fn codes_of(codes: StatusCodes, counts: Vec<u64>) -> Option<String> {
        let display = Display {
            codes,
            ..Default::default()
        };
        let c = Counters {
            codes: counts,
            ..Default::default()
        };
        let text = object(&c, &display, 0);
        let start = text.find(r#","statusCodes":"#)?;
        let end = text.find(r#""responses":"#).unwrap();
        Some(text[start + 1..end].to_string())
    }

    #[test]
    fn status_codes_listed_and_all() {
        // List: every listed code, in order, also 0; then `}, ` with the space.
        assert_eq!(
            codes_of(StatusCodes::List(vec![404, 200, 503]), vec![1, 5, 0, 2]).as_deref(),
            Some(r#""statusCodes":{"other":1,"404":5,"200":0,"503":2}, "#)
        );
        // A key whose array is shorter than the list (the list grew on reload): zeros.
        assert_eq!(
            codes_of(StatusCodes::List(vec![200, 404]), vec![0, 7]).as_deref(),
            Some(r#""statusCodes":{"other":0,"200":7,"404":0}, "#)
        );
        // All: `other` always, then only the codes that happened, by code.
        let mut all = vec![0u64; 501];
        all[0] = 3;
        all[1] = 1; // 100
        all[101] = 0; // 200
        all[330] = 2; // 429
        all[500] = 4; // 599
        assert_eq!(
            codes_of(StatusCodes::All, all).as_deref(),
            Some(r#""statusCodes":{"other":3,"100":1,"429":2,"599":4}, "#)
        );
        assert_eq!(
            codes_of(StatusCodes::All, vec![0; 501]).as_deref(),
            Some(r#""statusCodes":{"other":0}, "#)
        );
        // Not measured, or a key without the array: no statusCodes at all.
        assert_eq!(codes_of(StatusCodes::Off, vec![1, 2]), None);
        assert_eq!(codes_of(StatusCodes::List(vec![200]), vec![]), None);
        let text = object(&Counters::default(), &Display::default(), 0);
        assert!(text.starts_with(r#"{"requestCounter":0,"inBytes":0,"outBytes":0,"responses":{"#));
    }

    fn queue_text(q: Option<&[(u64, u64)]>) -> String {
        let mut out = Vec::new();
        queue(&mut out, b"", q);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn queues_are_padded_to_63_oldest_first() {
        assert_eq!(
            queue_text(Some(&[])),
            expand(r#"{"times":[0*63],"msecs":[0*63]}"#)
        );
        assert_eq!(
            queue_text(Some(&[(7, 1), (9, 2)])),
            expand(r#"{"times":[0*61,7,9],"msecs":[0*61,1,2]}"#)
        );
        let full: Vec<(u64, u64)> = (1..=63).map(|i| (1000 + i, i)).collect();
        let text = queue_text(Some(&full));
        assert!(text.starts_with(r#"{"times":[1001,1002,"#), "{text}");
        assert!(text.ends_with(r#",62,63]}"#), "{text}");
        // More than a queue holds: the newest 63.
        let long: Vec<(u64, u64)> = (1..=70).map(|i| (1000 + i, i)).collect();
        let text = queue_text(Some(&long));
        assert!(text.starts_with(r#"{"times":[1008,1009,"#), "{text}");
        assert!(text.contains(r#""msecs":[8,9,"#), "{text}");
        assert_eq!(text.matches(',').count(), 2 * 62 + 1);
        // A configured peer without a key.
        assert_eq!(queue_text(None), r#"{"times":[],"msecs":[]}"#);
    }

    #[test]
    fn histogram_counters_are_cumulative() {
        let mut out = Vec::new();
        let zone = Display {
            bucket_us: vec![5_000, 10_000, 1_000_000],
            ..Display::default()
        };
        buckets(&mut out, b"", &zone.histogram(0, &[3, 0, 2]));
        // Microsecond bounds in whole ms, counts cumulative.
        assert_eq!(out, br#"{"msecs":[5,10,1000],"counters":[3,3,5]}"#);
        // A key's own list, in its configured order, counted from the zone's bounds.
        let lists = Display {
            bucket_lists_ms: vec![vec![1000, 5], vec![]],
            ..zone
        };
        out.clear();
        buckets(&mut out, b"", &lists.histogram(0, &[3, 0, 2]));
        assert_eq!(out, br#"{"msecs":[1000,5],"counters":[5,3]}"#);
        out.clear();
        buckets(&mut out, b"", &lists.histogram(1, &[3, 0, 2]));
        assert_eq!(out, br#"{"msecs":[],"counters":[]}"#);
    }

    fn request_msec(method: AvgMethod, period_ms: u64, queues: bool) -> String {
        let c = Counters {
            requests: 4,
            time_sum_ms: 90,
            queue: vec![(1000, 10), (2000, 20), (3000, 60)],
            ..Default::default()
        };
        let display = Display {
            method,
            period_ms,
            queues,
            ..Default::default()
        };
        let text = object(&c, &display, 3000);
        let i = text.find(r#""requestMsec":"#).unwrap() + 14;
        let n = text[i..].find(',').unwrap();
        text[i..i + n].to_string()
    }

    #[test]
    fn averages_follow_the_display_settings() {
        // AMM: (10 + 20 + 60) / 3; WMA: (1*10 + 2*20 + 3*60) / 6 = 230 / 6.
        assert_eq!(request_msec(AvgMethod::Amm, 0, true), "30");
        assert_eq!(request_msec(AvgMethod::Wma, 0, true), "38");
        // Period 1.5 s at now = 3000: the samples after 1500 only.
        assert_eq!(request_msec(AvgMethod::Amm, 1500, true), "40");
        assert_eq!(request_msec(AvgMethod::Wma, 1500, true), "46");
        // A 60 s window at now = 3000 starts at 0: every sample (placeholders never count).
        assert_eq!(request_msec(AvgMethod::Amm, 60_000, true), "30");
        // Without queues: the mean since the zone started, whatever the method.
        assert_eq!(request_msec(AvgMethod::Wma, 1500, false), "22");
        let c = Counters {
            requests: 1,
            time_sum_ms: 5,
            queue: vec![(1000, 5)],
            ..Default::default()
        };
        let text = object(&c, &Display::default(), 1000 + 60_000);
        assert!(text.contains(r#""requestMsec":0,"#), "a minute later: {text}");
        let text = object(&c, &Display::default(), 1000 + 59_999);
        assert!(text.contains(r#""requestMsec":5,"#), "{text}");
    }

    #[test]
    fn without_queues_the_queues_are_zeros_and_averages_the_means() {
        let mut v = small();
        v.display.queues = false;
        for e in &mut v.snapshot.entries {
            e.counters.queue.clear();
            e.counters.response_queue.clear();
        }
        let doc = json(&render(v, false));
        let zeros = serde_json::json!({"times": vec![0; 63], "msecs": vec![0; 63]});
        let a = &doc["serverZones"]["a.org"];
        assert_eq!(a["requestMsec"], 28); // 112 / 4
        assert_eq!(a["requestMsecs"], zeros);
        let sum = &doc["serverZones"]["*"];
        assert_eq!(sum["requestMsec"], 23); // 119 / 5
        assert_eq!(sum["requestMsecs"], zeros);
        let g = &doc["upstreamZones"]["g"];
        assert_eq!(g[0]["requestMsec"], 4); // 8 / 2
        assert_eq!(g[0]["responseMsec"], 2); // 4 / 2
        assert_eq!(g[0]["responseMsecs"], zeros);
        assert_eq!(g[2]["responseMsec"], 9); // 9 / 1
                                             // No key yet: still empty arrays.
        assert_eq!(g[1]["requestMsecs"]["times"], serde_json::json!([]));
        let nogroups = &doc["upstreamZones"]["::nogroups"];
        assert_eq!(nogroups[1]["responseMsec"], 0); // no upstream time at all
    }

    #[test]
    fn upstream_zones_only_with_upstream_statistics_and_something_to_show() {
        let keys = |v: View| -> Vec<String> {
            let doc = json(&render(v, false));
            doc.as_object().unwrap().keys().cloned().collect()
        };
        let top = ["hostName", "moduleVersion", "nginxVersion", "loadMsec", "nowMsec"];
        let mut with = top.map(String::from).to_vec();
        with.extend(["connections", "sharedZones", "serverZones", "upstreamZones"].map(String::from));
        let without = with[..with.len() - 1].to_vec();

        let mut v = small();
        assert_eq!(keys(v.clone()), with);
        // Upstream statistics off: none, whatever the keys.
        v.peers = None;
        assert_eq!(keys(v.clone()), without);
        // On, with no group, and neither ::nogroups keys nor upstream overflow: none.
        let [o1, o2] = overflows(Counters::default(), Counters::default());
        let empty = view(vec![o1, o2], Some(vec![]), Display::default());
        assert_eq!(keys(empty.clone()), without);
        // A configured group without traffic is enough.
        let mut one = empty.clone();
        one.peers = Some(vec![state("g", "a:1", 1, 1, 10)]);
        assert_eq!(keys(one), with);
        // So is the upstream overflow entry once it counted something, in ::nogroups.
        let mut over = empty;
        over.snapshot.entries[1].counters.requests = 1;
        let doc = json(&render(over, false));
        let nogroups = &doc["upstreamZones"]["::nogroups"];
        assert_eq!(nogroups.as_array().unwrap().len(), 1);
        assert_eq!(nogroups[0]["server"], "::overflow");
        // A server block that counted nothing yet is not shown (nor is the server overflow
        // entry); with no zone shown, serverZones still has the sum: zeros and 63 zeros.
        let [o1, o2] = overflows(Counters::default(), Counters::default());
        let idle = view(
            vec![o1, o2, server("idle.org", Counters::default())],
            None,
            Display::default(),
        );
        let doc = json(&render(idle, false));
        let zones = doc["serverZones"].as_object().unwrap();
        assert_eq!(zones.keys().collect::<Vec<_>>(), ["*"]);
        let doc = json(&render(view(vec![], None, Display::default()), false));
        let zones = doc["serverZones"].as_object().unwrap();
        assert_eq!(zones.keys().collect::<Vec<_>>(), ["*"]);
        assert_eq!(
            zones["*"]["requestMsecs"]["times"],
            serde_json::json!(vec![0; 63])
        );
    }

    #[test]
    fn groups_in_configuration_order_gone_peers_by_name() {
        let c = |n: u64| Counters {
            requests: n,
            queue: vec![(99_000, n)],
            ..Default::default()
        };
        let entries = vec![
            peer("z", "gone-b", c(1)),
            peer("z", "p2", c(2)),
            peer("a", "gone-a", c(3)),
            peer("z", "gone-a", c(4)),
            peer("", "n-b", c(5)),
            peer("", "n-a", c(6)),
            // A group that is no longer configured: not shown (as the C module).
            peer("removed", "x", c(7)),
            peer("z", "", c(8)),
        ];
        let mut implicit = state("", "n-c", 9, 9, 9);
        implicit.backup = true;
        let peers = vec![
            state("z", "p1", 1, 1, 1),
            state("a", "p3", 1, 1, 1),
            state("z", "p2", 2, 2, 2),
            // nginx lists an implicit upstream's peer with no group: ::nogroups, no state.
            implicit.clone(),
            state("", "n-a", 9, 9, 9),
            // Listed twice (two proxy_pass to one address): one row.
            implicit,
        ];
        let doc = json(&render(view(entries, Some(peers), Display::default()), false));
        let zones = doc["upstreamZones"].as_object().unwrap();
        assert_eq!(zones.keys().collect::<Vec<_>>(), ["z", "a", "::nogroups"]);
        let servers = |g: &str| -> Vec<(String, u64, u64)> {
            zones[g]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| {
                    (
                        p["server"].as_str().unwrap().to_string(),
                        p["requestCounter"].as_u64().unwrap(),
                        p["weight"].as_u64().unwrap(),
                    )
                })
                .collect()
        };
        let s = |n: &str, r: u64, w: u64| (n.to_string(), r, w);
        assert_eq!(
            servers("z"),
            [
                s("p1", 0, 1),
                s("p2", 2, 2),
                s("::none", 8, 0),
                s("gone-a", 4, 0),
                s("gone-b", 1, 0)
            ]
        );
        assert_eq!(servers("a"), [s("p3", 0, 1), s("gone-a", 3, 0)]);
        // n-c: configured without a group, never used: not shown (the C module has no node).
        assert_eq!(servers("::nogroups"), [s("n-a", 6, 0), s("n-b", 5, 0)]);
        assert_eq!(
            zones["::nogroups"][0]["requestMsecs"]["times"]
                .as_array()
                .unwrap()
                .len(),
            63
        );
    }

    #[test]
    fn hostile_names_give_valid_json_and_read_back_as_display_name() {
        let mut names: Vec<Vec<u8>> = (0..=255u8).map(|b| vec![b'n', b]).collect();
        names.push(b"\"quoted\\\"".to_vec());
        names.push("\u{FFFD}".as_bytes().to_vec());
        names.push(b"\xff".to_vec());
        names.push(b"::overflow".to_vec());
        names.push(b"::nogroups".to_vec());
        names.push(b"line\nbreak\r\t".to_vec());
        let c = Counters {
            requests: 1,
            ..Default::default()
        };
        let mut entries: Vec<Entry> = overflows(c.clone(), c.clone()).into();
        let mut peers = Vec::new();
        for n in &names {
            entries.push(entry(Kind::Server, n, c.clone()));
            entries.push(entry(Kind::UpstreamPeer, &upstream_key(n, n), c.clone()));
            entries.push(entry(Kind::UpstreamPeer, &upstream_key(b"", n), c.clone()));
            peers.push(PeerState {
                group: n.clone(),
                server: n.clone(),
                ..Default::default()
            });
        }
        let mut v = view(entries, Some(peers), Display::default());
        v.info.hostname = b"host\x00\x7f\xfe\"".to_vec();
        v.info.nginx_version = "1.28.3\n".into();
        v.shm.name = b"zone\\\x01".to_vec();
        v.display.sum_key = b"::sum\xc3".to_vec();
        for jsonp in [false, true] {
            let text = render(v.clone(), jsonp);
            let body = if jsonp {
                let cb = b"ngx_http_vhost_traffic_status_jsonp_callback(";
                assert!(text.starts_with(cb) && text.ends_with(b")"));
                &text[cb.len()..text.len() - 1]
            } else {
                &text[..]
            };
            let doc = json(body);
            assert_eq!(doc["hostName"], display_name(b"host\x00\x7f\xfe\""));
            assert_eq!(doc["nginxVersion"], "1.28.3\n");
            assert_eq!(doc["sharedZones"]["name"], "zone\\\u{1}");

            let mut sorted = names.clone();
            sorted.sort();
            let mut want: Vec<String> = sorted.iter().map(|n| display_name(n)).collect();
            want.push("::overflow".into());
            want.push(display_name(b"::sum\xc3"));
            assert_eq!(want.last().unwrap(), "\u{FFFD}::sum\u{FFFD}c3");
            let zones: Vec<&String> = doc["serverZones"].as_object().unwrap().keys().collect();
            assert_eq!(zones, want.iter().collect::<Vec<_>>());

            let groups = doc["upstreamZones"].as_object().unwrap();
            let mut want: Vec<String> = names.iter().map(|n| display_name(n)).collect();
            want.push("::nogroups".into());
            assert_eq!(groups.keys().collect::<Vec<_>>(), want.iter().collect::<Vec<_>>());
            for n in &names {
                let g = groups[&display_name(n)].as_array().unwrap();
                assert_eq!(g.len(), 1);
                assert_eq!(g[0]["server"], display_name(n));
                assert_eq!(g[0]["requestCounter"], 1);
            }
            let nogroups: Vec<&str> = groups["::nogroups"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["server"].as_str().unwrap())
                .collect();
            let mut want: Vec<String> = sorted.iter().map(|n| display_name(n)).collect();
            want.push("::overflow".into());
            assert_eq!(nogroups, want);
        }
    }
}
