//! Property tests of the Prometheus renderer against hostile names (no nginx).
//!
//! Server names, upstream group and peer names, the hostname and the zone name are arbitrary
//! bytes: quotes, backslashes, newlines, control characters, invalid UTF-8, U+FFFD, up to 4 KB.
//! A snapshot built from them is rendered in both formats and read back by a parser written
//! here from the exposition-format rules (not the renderer's code). Checked:
//! - the text is UTF-8, ends with a newline (OpenMetrics: with `# EOF`), every line parses;
//! - HELP and TYPE once per family, before its samples; samples stay in their family's block;
//! - no two samples share (name, labels);
//! - every name comes back, after unescaping, as exactly `escape::display_name(name)`, with the
//!   value of its own counters: one series per distinct name, so no two names collide;
//! - `display_name` is injective: an inverse written here recovers the bytes, and pairs of
//!   near-identical byte strings map to equal labels exactly when they are equal.
//!
//! Cases: 2 000 renders, 20 000 names for the mapping (`VTS_PROPTEST_CASES=N` scales the first).
#[allow(dead_code, unused_imports)]
#[path = "../src/conf/mod.rs"]
mod conf;
#[allow(dead_code, unused_imports)]
#[path = "../src/render/mod.rs"]
mod render;
#[allow(dead_code, unused_imports)]
#[path = "../src/stats/mod.rs"]
mod stats;
#[allow(dead_code, unused_imports)]
#[path = "../src/view.rs"]
mod view;

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

use render::escape::{display_name, label_value};
use render::prometheus::{render, Format, PeerState, Scrape};
use stats::{upstream_key, Counters, Entry, Kind, Snapshot};
use view::{Display, Info, ShmUse, View};

// ---------------------------------------------------------------------------------------------
// An independent reader of the exposition formats.

type Labels = Vec<(String, String)>;

#[derive(Debug, Default)]
struct Parsed {
    /// family name -> type, in order of appearance.
    types: Vec<(String, String)>,
    /// (sample name, labels in text order, value).
    samples: Vec<(String, Labels, f64)>,
}

fn metric_name_ok(n: &str) -> bool {
    let mut cs = n.chars();
    matches!(cs.next(), Some(c) if c.is_ascii_alphabetic() || c == '_' || c == ':')
        && cs.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn label_name_ok(n: &str) -> bool {
    let mut cs = n.chars();
    matches!(cs.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && cs.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The sample names a family of this type may have.
fn family_allows(family: &str, ty: &str, sample: &str, om: bool) -> bool {
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

/// Parses one sample line: `name{l="v",...} value`.
fn parse_sample(line: &str) -> Result<(String, Labels, f64), String> {
    let name_end = line.find(['{', ' ']).ok_or_else(|| "no value".to_string())?;
    let name = &line[..name_end];
    if !metric_name_ok(name) {
        return Err(format!("bad metric name {name:?}"));
    }
    let mut rest = &line[name_end..];
    let mut labels: Labels = Vec::new();
    if let Some(r) = rest.strip_prefix('{') {
        let mut cs = r.char_indices();
        let end;
        loop {
            // label name up to '='
            let mut lname = String::new();
            let mut closed_empty = None;
            for (i, c) in cs.by_ref() {
                if c == '=' {
                    break;
                }
                if c == '}' && lname.is_empty() && labels.is_empty() {
                    closed_empty = Some(i);
                    break;
                }
                lname.push(c);
            }
            if let Some(i) = closed_empty {
                end = i;
                break;
            }
            if !label_name_ok(&lname) {
                return Err(format!("bad label name {lname:?}"));
            }
            if labels.iter().any(|(k, _)| *k == lname) {
                return Err(format!("label {lname} twice"));
            }
            if cs.next().map(|x| x.1) != Some('"') {
                return Err(format!("label {lname}: value not quoted"));
            }
            let mut v = String::new();
            loop {
                match cs.next().map(|x| x.1) {
                    None => return Err("unterminated label value".into()),
                    Some('"') => break,
                    Some('\\') => match cs.next().map(|x| x.1) {
                        Some('\\') => v.push('\\'),
                        Some('"') => v.push('"'),
                        Some('n') => v.push('\n'),
                        o => return Err(format!("bad escape \\{o:?}")),
                    },
                    Some('\n') => return Err("raw newline in a label value".into()),
                    Some(c) => v.push(c),
                }
            }
            labels.push((lname, v));
            match cs.next() {
                Some((_, ',')) => continue,
                Some((i, '}')) => {
                    end = i;
                    break;
                }
                o => return Err(format!("expected , or }} after a label, got {o:?}")),
            }
        }
        rest = &r[end + 1..];
    }
    let value = rest
        .strip_prefix(' ')
        .ok_or_else(|| "no space before the value".to_string())?;
    if value.contains(' ') {
        return Err(format!("trailing data after the value {value:?}"));
    }
    let v = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        "NaN" => f64::NAN,
        _ => {
            if !value.chars().all(|c| c.is_ascii_digit() || "+-.e".contains(c)) {
                return Err(format!("bad value {value:?}"));
            }
            value
                .parse::<f64>()
                .map_err(|e| format!("bad value {value:?}: {e}"))?
        }
    };
    Ok((name.to_string(), labels, v))
}

/// Reads a whole exposition and checks its structure.
fn parse(bytes: &[u8], om: bool) -> Result<Parsed, String> {
    let text = std::str::from_utf8(bytes).map_err(|e| format!("not UTF-8: {e}"))?;
    if !text.ends_with('\n') {
        return Err("no final newline".into());
    }
    let body = if om {
        text.strip_suffix("# EOF\n")
            .ok_or_else(|| "OpenMetrics text does not end with # EOF".to_string())?
    } else {
        text
    };
    let mut p = Parsed::default();
    let mut helps: BTreeSet<String> = BTreeSet::new();
    let mut types: BTreeMap<String, String> = BTreeMap::new();
    let mut sampled: BTreeSet<String> = BTreeSet::new();
    let mut current: Option<String> = None;
    let mut seen: BTreeSet<(String, Labels)> = BTreeSet::new();
    if body.is_empty() {
        return Ok(p);
    }
    let body = body.strip_suffix('\n').ok_or("no newline before # EOF")?;
    for (i, line) in body.split('\n').enumerate() {
        let ln = i + 1;
        let ctx = |e: String| format!("line {ln}: {e}: {line:?}");
        if let Some(r) = line.strip_prefix("# HELP ") {
            let name = r.split(' ').next().unwrap_or("");
            if !metric_name_ok(name) || !helps.insert(name.to_string()) || sampled.contains(name) {
                return Err(ctx("bad, repeated or late HELP".into()));
            }
            current = Some(name.to_string());
        } else if let Some(r) = line.strip_prefix("# TYPE ") {
            let mut it = r.split(' ');
            let (name, ty) = (it.next().unwrap_or(""), it.next().unwrap_or(""));
            if it.next().is_some()
                || !metric_name_ok(name)
                || !["counter", "gauge", "histogram", "unknown"].contains(&ty)
                || types.insert(name.to_string(), ty.to_string()).is_some()
                || sampled.contains(name)
                || current.as_deref() != Some(name)
            {
                return Err(ctx("bad, repeated or late TYPE (or not after its HELP)".into()));
            }
            p.types.push((name.to_string(), ty.to_string()));
        } else if line.starts_with('#') {
            return Err(ctx("unexpected comment".into()));
        } else {
            let (name, labels, v) = parse_sample(line).map_err(ctx)?;
            let fam = current
                .clone()
                .ok_or_else(|| ctx("sample before any family".into()))?;
            let ty = types
                .get(&fam)
                .ok_or_else(|| ctx(format!("family {fam} has no TYPE")))?;
            if !helps.contains(&fam) || !family_allows(&fam, ty, &name, om) {
                return Err(ctx(format!("sample outside its family (current {fam} {ty})")));
            }
            sampled.insert(fam);
            let mut key = labels.clone();
            key.sort();
            if !seen.insert((name.clone(), key)) {
                return Err(ctx("duplicate series".into()));
            }
            p.samples.push((name, labels, v));
        }
    }
    Ok(p)
}

fn label<'a>(l: &'a Labels, k: &str) -> Option<&'a str> {
    l.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str())
}

/// The inverse of the documented mapping, written from its description in escape.rs: U+FFFD
/// U+FFFD is a U+FFFD of the name, U+FFFD and two hex digits an invalid byte, and a leading
/// U+FFFD before `::` marks a configured name that starts with `::` (the module's own names
/// start with `::` and are never configured names).
fn decode_display(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let s = match s.strip_prefix("\u{FFFD}::") {
        Some(rest) => {
            out.extend_from_slice(b"::");
            rest
        }
        None if s.starts_with("::") => return None,
        None => s,
    };
    let mut cs = s.chars();
    while let Some(c) = cs.next() {
        if c == '\u{FFFD}' {
            match cs.next()? {
                '\u{FFFD}' => out.extend_from_slice("\u{FFFD}".as_bytes()),
                h => {
                    let l = cs.next()?;
                    let hex = |c: char| "0123456789abcdef".find(c).map(|v| v as u8);
                    out.push(hex(h)? * 16 + hex(l)?);
                }
            }
        } else {
            let mut buf = [0u8; 4];
            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
        }
    }
    Some(out)
}

// ---------------------------------------------------------------------------------------------
// Generators.

const FRAGMENTS: &[&[u8]] = &[
    b"\\",
    b"\"",
    b"\n",
    b"\r",
    b"\t",
    b"\x00",
    b"\x01",
    b"\x1b",
    b"\x7f",
    b"\xff",
    b"\xfe",
    b"\x80",
    b"\xc3",
    b"\xc3\xa9",
    b"\xed\xa0\x80",
    b"\xef\xbf",
    b"\xef\xbf\xbd",
    b"\xe2\x82",
    b"\xf0\x9f\xa6\x80",
    b"\xf4\x90\x80\x80",
    b"\xc0\xaf",
    b"a",
    b"Z",
    b"0",
    b"f",
    b"ff",
    b".",
    b" ",
    b"{",
    b"}",
    b",",
    b"=",
    b"#",
    b"\\n",
    b"\\\"",
    b"+Inf",
    b"le",
    b"::overflow_",
    b"# EOF",
    b"example.com",
];

fn name() -> impl Strategy<Value = Vec<u8>> {
    let frag = prop::sample::select(FRAGMENTS);
    let concat = |v: Vec<&[u8]>| v.concat();
    prop_oneof![
        6 => prop::collection::vec(frag.clone(), 0..24).prop_map(concat),
        3 => prop::collection::vec(any::<u8>(), 0..48),
        1 => prop::collection::vec(frag, 0..1600).prop_map(move |v| {
            let mut b = concat(v);
            b.truncate(4096);
            b
        }),
        1 => (any::<u8>(), 1..=4096usize).prop_map(|(b, n)| vec![b; n]),
    ]
}

/// Counters with a value unique to entry `i` (so that a mix-up of two names shows) and a
/// histogram that never holds more than its count.
fn counters(i: u64, seed: u64, nbuckets: usize, upstream: bool) -> Counters {
    let mut c = Counters::new(nbuckets);
    c.requests = 1000 * (i + 1) + seed % 1000;
    c.bytes_in = seed % 100_000;
    c.bytes_out = seed % 77_777;
    let mut left = c.requests;
    for st in c.status.iter_mut().take(5) {
        *st = left / 3;
        left -= *st;
    }
    c.status[1] += left;
    c.time_sum_ms = seed % 10_000;
    c.time_min_ms = (seed % 3 != 0).then_some(seed % 5);
    c.time_max_ms = seed % 9_000;
    c.upstream_count = if upstream { c.requests - seed % 7 } else { 0 };
    c.upstream_sum_ms = seed % 5_000;
    let count = if upstream { c.upstream_count } else { c.requests };
    let mut left = count;
    for (b, v) in c.buckets.iter_mut().enumerate() {
        *v = left / (2 + (seed as usize + b) % 3) as u64;
        left -= *v;
    }
    c
}

#[derive(Debug, Clone)]
struct Case {
    servers: Vec<Vec<u8>>,
    peers: Vec<(Vec<u8>, Vec<u8>)>,
    /// Peers nginx knows (with or without counters).
    states: Vec<(Vec<u8>, Vec<u8>)>,
    hostname: Vec<u8>,
    shm: Vec<u8>,
    bounds: Vec<f64>,
    overflow_server: bool,
    overflow_upstream: bool,
    upstream_stats: bool,
    seed: u64,
}

fn case() -> impl Strategy<Value = Case> {
    let bounds = prop_oneof![
        Just(vec![
            0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0
        ]),
        Just(vec![0.001, 0.5, 2.0]),
        Just(vec![]),
        prop::collection::btree_set(1u32..100_000, 1..6)
            .prop_map(|s| s.into_iter().map(|v| v as f64 / 1000.0).collect()),
    ];
    (
        prop::collection::vec(name(), 0..6),
        prop::collection::vec((name(), name()), 0..5),
        prop::collection::vec(any::<bool>(), 5),
        prop::collection::vec((name(), name()), 0..3),
        (name(), name()),
        bounds,
        (any::<bool>(), any::<bool>(), any::<bool>(), any::<u64>()),
    )
        .prop_map(
            |(servers, peers, known, extra, (hostname, shm), bounds, (os, ou, us, seed))| {
                // The directory holds each key once.
                let servers: Vec<Vec<u8>> =
                    servers.into_iter().collect::<BTreeSet<_>>().into_iter().collect();
                let peers: Vec<(Vec<u8>, Vec<u8>)> =
                    peers.into_iter().collect::<BTreeSet<_>>().into_iter().collect();
                let mut states: Vec<_> = peers
                    .iter()
                    .zip(&known)
                    .filter(|(_, k)| **k)
                    .map(|(p, _)| p.clone())
                    .collect();
                states.extend(extra);
                Case {
                    servers,
                    peers,
                    states,
                    hostname,
                    shm,
                    bounds,
                    overflow_server: os,
                    overflow_upstream: ou,
                    upstream_stats: us,
                    seed,
                }
            },
        )
}

fn snapshot(c: &Case) -> Snapshot {
    let nb = c.bounds.len();
    let mut entries = Vec::new();
    for (kind, n, up) in [
        (Kind::Overflow, &b"server"[..], false),
        (Kind::Overflow, b"upstream", true),
    ] {
        let on = if up {
            c.overflow_upstream
        } else {
            c.overflow_server
        };
        let mut counters = counters(900 + up as u64, c.seed, nb, up);
        if !on {
            counters = Counters::new(nb);
        }
        entries.push(Entry {
            kind,
            name: n.to_vec(),
            counters,
            tag: 0,
        });
    }
    // Interleaved kinds, registration order unrelated to name order.
    for (i, s) in c.servers.iter().enumerate().rev() {
        entries.push(Entry {
            kind: Kind::Server,
            name: s.clone(),
            counters: counters(i as u64, c.seed, nb, false),
            tag: 0,
        });
    }
    for (i, (g, s)) in c.peers.iter().enumerate() {
        entries.push(Entry {
            kind: Kind::UpstreamPeer,
            name: upstream_key(g, s),
            counters: counters(100 + i as u64, c.seed ^ 0x5555, nb, true),
            tag: 0,
        });
    }
    Snapshot {
        entries,
        used_bytes: 4096 + c.seed as usize % 1000,
        size_bytes: 1 << 20,
        max_keys: 2032,
        created_unix: 1_700_000_000 + c.seed % 1000,
        owned_shards: 2,
    }
}

/// What a scrape of the case shows: its snapshot, the hostname and zone name, its bounds, and
/// nginx's peer states unless upstream statistics are off.
fn view(c: &Case) -> View {
    View {
        info: Info {
            hostname: c.hostname.clone(),
            module_version: "0.1.0".into(),
            nginx_version: "1.28.3".into(),
            ..Info::default()
        },
        connections: None,
        shm: ShmUse {
            name: c.shm.clone(),
            ..ShmUse::default()
        },
        snapshot: snapshot(c),
        peers: c.upstream_stats.then(|| peer_states(c)),
        display: Display {
            bucket_seconds: c.bounds.clone(),
            bucket_us: c.bounds.iter().map(|b| (b * 1e6) as u64).collect(),
            // A `vts_zone`: no time queues.
            queues: false,
            ..Display::default()
        },
    }
}

fn peer_states(c: &Case) -> Vec<PeerState> {
    c.states
        .iter()
        .enumerate()
        .map(|(i, (g, s))| PeerState {
            group: g.clone(),
            server: s.clone(),
            up: i % 2 == 0,
            down: i % 2 != 0,
            weight: 1 + i as u64,
            max_fails: 1,
            fail_timeout_s: 10,
            backup: i % 3 == 0,
        })
        .collect()
}

/// A peer's (upstream, server) labels: an empty group is the module's `::nogroups`, an empty
/// peer its `::none` (the documented convention of the peer keys), else the display mapping.
fn dp(g: &[u8], s: &[u8]) -> (String, String) {
    let or = |b: &[u8], reserved: &str| if b.is_empty() { reserved.to_string() } else { d(b) };
    (or(g, "::nogroups"), or(s, "::none"))
}

fn d(b: &[u8]) -> String {
    display_name(b)
}

// ---------------------------------------------------------------------------------------------
// The properties.

fn check_render(c: &Case, format: Format) -> Result<(), TestCaseError> {
    let om = format == Format::OpenMetrics;
    let view = view(c);
    let snap = &view.snapshot;
    let mut out = Vec::new();
    render(&view, format, &mut out);
    let p = parse(&out, om).map_err(|e| {
        TestCaseError::fail(format!(
            "{format:?}: {e}\n--- text ---\n{}",
            String::from_utf8_lossy(&out)
        ))
    })?;
    let fail = |what: String| TestCaseError::fail(format!("{format:?}: {what}"));
    // Written in slices (as nginx writes a big scrape, one per event-loop turn), the text is
    // the same bytes, whatever the slice size: one row per slice, or a few hundred bytes.
    for budget in [1, 1 + (c.seed % 700) as usize] {
        let mut sliced = Vec::new();
        let mut scrape = Scrape::new(&view, format);
        let mut slices = 1;
        while !scrape.write(&mut sliced, budget) {
            slices += 1;
        }
        if sliced != out {
            return Err(fail(format!(
                "written in {slices} slices of {budget} B, the text differs:\n{}\n--- whole ---\n{}",
                String::from_utf8_lossy(&sliced),
                String::from_utf8_lossy(&out)
            )));
        }
    }

    let one = |name: &str| -> Vec<&(String, Labels, f64)> {
        p.samples.iter().filter(|(n, _, _)| n == name).collect()
    };

    // Info and shm labels.
    let info_s = one("nginx_vts_info");
    prop_assert_eq!(info_s.len(), 1);
    let (host, shm) = (d(&c.hostname), d(&c.shm));
    prop_assert_eq!(label(&info_s[0].1, "hostname"), Some(host.as_str()));
    for (_, l, _) in one("nginx_vts_shm_bytes")
        .into_iter()
        .chain(one("nginx_vts_shm_keys"))
    {
        prop_assert_eq!(label(l, "shm"), Some(shm.as_str()));
    }

    // Server zones: exactly one series per distinct name, carrying that name's own count.
    let mut want: BTreeMap<String, f64> = BTreeMap::new();
    for e in snap.entries.iter().filter(|e| e.kind == Kind::Server) {
        if want.insert(d(&e.name), e.counters.requests as f64).is_some() {
            return Err(fail(format!("two server names display as {:?}", d(&e.name))));
        }
    }
    if c.overflow_server {
        let o = &snap.entries[0].counters;
        prop_assert!(want.insert("::overflow".into(), o.requests as f64).is_none());
    }
    let got: BTreeMap<String, f64> = one("nginx_vts_server_requests_total")
        .into_iter()
        .map(|(_, l, v)| (label(l, "zone").unwrap_or("<none>").to_string(), *v))
        .collect();
    prop_assert_eq!(got.len(), one("nginx_vts_server_requests_total").len());
    prop_assert_eq!(&got, &want);
    // Every zone-labelled family names the same zones, and the histogram's count is the count.
    let mut zones_of: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for (name, l, _) in &p.samples {
        if name.starts_with("nginx_vts_server_") {
            zones_of
                .entry(name)
                .or_default()
                .insert(label(l, "zone").unwrap_or("<none>"));
        }
    }
    // Four families, and the histogram's three sample names unless there are no bounds
    // (`vts_histogram_buckets off`: no histogram at all).
    let per_zone = if c.bounds.is_empty() { 4 } else { 7 };
    prop_assert_eq!(zones_of.len(), if want.is_empty() { 0 } else { per_zone });
    for (name, zones) in zones_of {
        prop_assert_eq!(
            zones,
            want.keys().map(String::as_str).collect::<BTreeSet<_>>(),
            "{}",
            name
        );
    }
    for (_, l, v) in one("nginx_vts_server_request_duration_seconds_count") {
        prop_assert_eq!(Some(v), want.get(label(l, "zone").unwrap()));
    }
    for (_, l, v) in one("nginx_vts_server_request_duration_seconds_bucket") {
        if label(l, "le") == Some("+Inf") {
            prop_assert_eq!(Some(v), want.get(label(l, "zone").unwrap()));
        }
    }

    // Upstream peers: (group, server) pairs, counters' own value or 0 for a state-only peer.
    let upstream_families = p
        .types
        .iter()
        .filter(|(n, _)| n.starts_with("nginx_vts_upstream_"))
        .count();
    if !c.upstream_stats {
        prop_assert_eq!(upstream_families, 0);
    } else {
        prop_assert_eq!(upstream_families, if c.bounds.is_empty() { 9 } else { 10 });
        let mut want: BTreeMap<(String, String), f64> = BTreeMap::new();
        for (e, (g, s)) in snap
            .entries
            .iter()
            .filter(|e| e.kind == Kind::UpstreamPeer)
            .zip(&c.peers)
        {
            if want.insert(dp(g, s), e.counters.requests as f64).is_some() {
                return Err(fail(format!("two peers display as {:?}/{:?}", d(g), d(s))));
            }
        }
        let mut state_keys = BTreeSet::new();
        for (g, s) in &c.states {
            want.entry(dp(g, s)).or_insert(0.0);
            state_keys.insert(dp(g, s));
        }
        if c.overflow_upstream {
            let o = &snap.entries[1].counters;
            want.insert(("::overflow".into(), "::overflow".into()), o.requests as f64);
        }
        let pair = |l: &Labels| {
            (
                label(l, "upstream").unwrap_or("<none>").to_string(),
                label(l, "server").unwrap_or("<none>").to_string(),
            )
        };
        let reqs = one("nginx_vts_upstream_requests_total");
        let got: BTreeMap<(String, String), f64> = reqs.iter().map(|(_, l, v)| (pair(l), *v)).collect();
        prop_assert_eq!(got.len(), reqs.len());
        prop_assert_eq!(&got, &want);
        let up: BTreeSet<(String, String)> = one("nginx_vts_upstream_server_up")
            .iter()
            .map(|(_, l, _)| pair(l))
            .collect();
        // A state-only pair that collides with the overflow row would be a finding too; the
        // generated names never equal "::overflow" exactly.
        prop_assert_eq!(up, state_keys);
        let counts = one("nginx_vts_upstream_response_duration_seconds_count");
        prop_assert_eq!(counts.len(), if c.bounds.is_empty() { 0 } else { want.len() });
    }

    // Histograms: buckets in ascending `le`, cumulative, `+Inf` equal to `_count`.
    let mut series: BTreeMap<(String, Labels), Vec<(f64, f64)>> = BTreeMap::new();
    let mut counts: BTreeMap<(String, Labels), f64> = BTreeMap::new();
    for (name, l, v) in &p.samples {
        if let Some(f) = name.strip_suffix("_bucket") {
            let le = label(l, "le").ok_or_else(|| fail(format!("{name} without le")))?;
            let le: f64 = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().map_err(|_| fail(format!("le {le:?}")))?
            };
            let mut k: Labels = l.iter().filter(|(n, _)| n != "le").cloned().collect();
            k.sort();
            series.entry((f.to_string(), k)).or_default().push((le, *v));
        } else if let Some(f) = name.strip_suffix("_count") {
            let mut k = l.clone();
            k.sort();
            counts.insert((f.to_string(), k), *v);
        }
    }
    prop_assert_eq!(series.len(), counts.len());
    for (k, b) in &series {
        let les: Vec<f64> = b.iter().map(|x| x.0).collect();
        let mut want_le = c.bounds.clone();
        want_le.push(f64::INFINITY);
        prop_assert_eq!(&les, &want_le, "le of {:?}", k);
        prop_assert!(
            b.windows(2).all(|w| w[0].1 <= w[1].1),
            "not cumulative: {:?} {:?}",
            k,
            b
        );
        prop_assert_eq!(
            Some(&b.last().unwrap().1),
            counts.get(k),
            "+Inf vs _count of {:?}",
            k
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("VTS_PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(2000),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn hostile_names_render_to_parseable_distinct_series(c in case()) {
        check_render(&c, Format::Text)?;
        check_render(&c, Format::OpenMetrics)?;
    }
}

/// b with one edit that the mapping could confuse with the original: an invalid byte written
/// as its display form, a U+FFFD doubled or removed, a byte changed.
fn near(a: Vec<u8>) -> impl Strategy<Value = (Vec<u8>, Vec<u8>)> {
    let n = a.len();
    (0..=n, 0usize..6, any::<u8>()).prop_map(move |(at, op, byte)| {
        let mut b = a.clone();
        match op {
            0 => {
                // invalid byte -> its display text
                let s = format!("\u{FFFD}{byte:02x}");
                if at < n && b[at] >= 0x80 {
                    let x = b[at];
                    b.splice(at..at + 1, format!("\u{FFFD}{x:02x}").into_bytes());
                } else {
                    b.splice(at..at, s.into_bytes());
                }
            }
            1 => {
                b.splice(at..at, "\u{FFFD}".bytes());
            }
            2 => {
                b.splice(at..at, "\u{FFFD}\u{FFFD}".bytes());
            }
            3 => {
                b.insert(at, byte);
            }
            4 => {
                if at < n {
                    b[at] = byte;
                }
            }
            _ => {
                if at < n {
                    b.remove(at);
                }
            }
        }
        (a.clone(), b)
    })
}

fn unescape(v: &[u8]) -> Option<String> {
    let s = std::str::from_utf8(v).ok()?;
    let mut out = String::new();
    let mut cs = s.chars();
    while let Some(c) = cs.next() {
        match c {
            '\\' => match cs.next()? {
                '\\' => out.push('\\'),
                '"' => out.push('"'),
                'n' => out.push('\n'),
                _ => return None,
            },
            '"' | '\n' => return None,
            c => out.push(c),
        }
    }
    Some(out)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 20_000, failure_persistence: None, ..ProptestConfig::default() })]

    /// The inverse recovers every name, so the mapping is injective; `label_value` is the
    /// escaped form of exactly the mapping; names that need no mapping are left alone.
    #[test]
    fn display_name_is_invertible(a in name()) {
        let shown = display_name(&a);
        prop_assert_eq!(decode_display(&shown), Some(a.clone()), "display {:?}", shown);
        let mut lv = Vec::new();
        label_value(&mut lv, &a);
        prop_assert_eq!(unescape(&lv), Some(shown.clone()));
        if let Ok(s) = std::str::from_utf8(&a) {
            if !s.contains('\u{FFFD}') && !s.starts_with("::") {
                prop_assert_eq!(&shown, s);
            }
        }
    }

    #[test]
    fn near_names_never_collide((a, b) in name().prop_flat_map(near)) {
        prop_assert_eq!(display_name(&a) == display_name(&b), a == b, "{:?} vs {:?}", a, b);
    }

    #[test]
    fn arbitrary_pairs_never_collide(a in prop::collection::vec(any::<u8>(), 0..12), b in prop::collection::vec(any::<u8>(), 0..12)) {
        prop_assert_eq!(display_name(&a) == display_name(&b), a == b);
    }
}

/// A server named `::overflow` (nginx accepts `server_name ::overflow;`) and the overflow
/// entry, once the zone was full, are two different things; they must not become one series.
#[test]
fn a_server_named_overflow_is_not_the_overflow_zone() {
    let mut overflow = Counters::new(0);
    overflow.requests = 5;
    let mut named = Counters::new(0);
    named.requests = 7;
    let snap = Snapshot {
        entries: vec![
            Entry {
                kind: Kind::Overflow,
                name: b"server".to_vec(),
                counters: overflow,
                tag: 0,
            },
            Entry {
                kind: Kind::Overflow,
                name: b"upstream".to_vec(),
                counters: Counters::new(0),
                tag: 0,
            },
            Entry {
                kind: Kind::Server,
                name: b"::overflow".to_vec(),
                counters: named,
                tag: 0,
            },
        ],
        used_bytes: 0,
        size_bytes: 65536,
        max_keys: 128,
        created_unix: 0,
        owned_shards: 1,
    };
    // No bounds (no histogram), no peer states (upstream statistics off).
    let view = View {
        snapshot: snap,
        ..View::default()
    };
    for format in [Format::Text, Format::OpenMetrics] {
        let mut out = Vec::new();
        render(&view, format, &mut out);
        if let Err(e) = parse(&out, format == Format::OpenMetrics) {
            panic!("{format:?}: {e}\n--- text ---\n{}", String::from_utf8_lossy(&out));
        }
    }
}

/// The reader above is strict where it matters (so that the property cannot pass vacuously).
#[test]
fn the_reader_rejects_broken_text() {
    let good = "# HELP a_total A\n# TYPE a_total counter\na_total{z=\"x\\\\y\\\"\\n\"} 1\n";
    let p = parse(good.as_bytes(), false).unwrap();
    assert_eq!(p.samples[0].1, vec![("z".to_string(), "x\\y\"\n".to_string())]);
    let om = good.replace("a_total A\n# TYPE a_total", "a A\n# TYPE a");
    assert!(parse(format!("{om}# EOF\n").as_bytes(), true).is_ok());
    assert!(
        parse(format!("{good}# EOF\n").as_bytes(), true).is_err(),
        "OpenMetrics family a_total"
    );
    for bad in [
        good.trim_end().to_string(),                         // no final newline
        good.replace("\\\"\\n", "\""),                       // raw quote
        good.replace("\\n\"", "\\t\""),                      // unknown escape
        good.replace("\\n\"", "\n\""),                       // raw newline
        format!("{good}a_total{{z=\"x\\\\y\\\"\\n\"}} 2\n"), // duplicate series
        good.replace("# TYPE a_total counter\n", ""),        // no TYPE
        format!("{good}# HELP a_total again\n"),             // second HELP
        good.replace("a_total{", "b_total{"),                // outside its family
        good.replace("} 1", "} x"),                          // bad value
        good.replace("z=", "0z="),                           // bad label name
    ] {
        assert!(parse(bad.as_bytes(), false).is_err(), "accepted {bad:?}");
    }
    assert!(parse(om.as_bytes(), true).is_err(), "OpenMetrics without # EOF");
    assert!(parse(b"a_total{z=\"\xff\"} 1\n", false).is_err(), "invalid UTF-8");
    assert!(decode_display("\u{FFFD}zz").is_none() && decode_display("\u{FFFD}").is_none());
}
