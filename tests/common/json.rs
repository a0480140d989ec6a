//! Reading the JSON document in tests (serde_json with key order kept).
//!
//! The document is the one of nginx-module-vts (reference section 2): these helpers fetch and
//! parse it, name the exact key orders, find zones and peers, recompute the averages
//! (AMM/WMA over a time queue) and the merged queue of the sum entry from the document's own
//! queues, and validate a document against `tests/schema/vts-json.schema.json` with python3's
//! jsonschema.

use super::*;
use serde_json::{Map, Value};

/// The exact Content-Type of the JSON document.
pub const JSON_CONTENT_TYPE: &str = "application/json";
/// `moduleVersion`: the C module's version, which ngx_vts reports too.
pub const MODULE_VERSION: &str = "v0.2.7";
/// `nginxVersion`: the nginx that cargo builds from the vendored source.
pub const NGINX_VERSION: &str = "1.28.3";
/// `overCounts.maxIntegerSize` on a 64-bit build.
pub const MAX_INTEGER_SIZE: u64 = u64::MAX;
/// Entries of a time queue of an existing node (64 slots, one kept empty).
pub const QUEUE_LEN: usize = 63;
/// `sharedZones.name` and `maxSize` of a bare `vhost_traffic_status_zone;`.
pub const DEFAULT_ZONE_NAME: &str = "ngx_http_vhost_traffic_status";
pub const DEFAULT_ZONE_SIZE: u64 = 1048575;
/// The default name of the sum entry.
pub const DEFAULT_SUM_KEY: &str = "*";
/// The default average period (ms).
pub const DEFAULT_PERIOD_MS: u64 = 60_000;

/// Top-level keys in order; `filterZones`, `upstreamZones` and `cacheZones` may be absent.
pub const TOP_KEYS: [&str; 11] = [
    "hostName",
    "moduleVersion",
    "nginxVersion",
    "loadMsec",
    "nowMsec",
    "connections",
    "sharedZones",
    "serverZones",
    "filterZones",
    "upstreamZones",
    "cacheZones",
];
pub const OPTIONAL_TOP_KEYS: [&str; 3] = ["filterZones", "upstreamZones", "cacheZones"];
pub const CONNECTION_KEYS: [&str; 7] = [
    "active", "reading", "writing", "waiting", "accepted", "handled", "requests",
];
pub const SHARED_ZONE_KEYS: [&str; 5] = ["name", "maxSize", "usedSize", "usedNode", "freeSize"];
pub const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];
/// The cache status counters (nginx is built with the HTTP cache, as by default).
pub const CACHE_KEYS: [&str; 8] = [
    "miss",
    "bypass",
    "expired",
    "stale",
    "updating",
    "revalidated",
    "hit",
    "scarce",
];
pub const QUEUE_KEYS: [&str; 2] = ["times", "msecs"];
pub const BUCKET_KEYS: [&str; 2] = ["msecs", "counters"];
pub const PEER_KEYS: [&str; 19] = [
    "server",
    "requestCounter",
    "inBytes",
    "outBytes",
    "responses",
    "requestMsecCounter",
    "requestMsec",
    "requestMsecs",
    "requestBuckets",
    "responseMsecCounter",
    "responseMsec",
    "responseMsecs",
    "responseBuckets",
    "weight",
    "maxFails",
    "failTimeout",
    "backup",
    "down",
    "overCounts",
];
pub const PEER_OVER_KEYS: [&str; 11] = [
    "maxIntegerSize",
    "requestCounter",
    "inBytes",
    "outBytes",
    "1xx",
    "2xx",
    "3xx",
    "4xx",
    "5xx",
    "requestMsecCounter",
    "responseMsecCounter",
];
pub const CACHE_ZONE_KEYS: [&str; 6] = [
    "maxSize",
    "usedSize",
    "inBytes",
    "outBytes",
    "responses",
    "overCounts",
];

/// Keys of a server object (serverZones members, filterZones members), in order.
pub fn server_keys(status_codes: bool) -> Vec<&'static str> {
    let mut v = vec!["requestCounter", "inBytes", "outBytes"];
    if status_codes {
        v.push("statusCodes");
    }
    v.extend([
        "responses",
        "requestMsecCounter",
        "requestMsec",
        "requestMsecs",
        "requestBuckets",
        "overCounts",
    ]);
    v
}

/// Keys of a server object's `responses`: the classes, then the cache counters.
pub fn server_response_keys() -> Vec<&'static str> {
    CLASSES.iter().chain(CACHE_KEYS.iter()).copied().collect()
}

/// Keys of a server object's `overCounts`.
pub fn server_over_keys() -> Vec<&'static str> {
    let mut v = vec!["maxIntegerSize", "requestCounter", "inBytes", "outBytes"];
    v.extend(CLASSES);
    v.extend(CACHE_KEYS);
    v.push("requestMsecCounter");
    v
}

/// Keys of a cache zone's `overCounts`.
pub fn cache_over_keys() -> Vec<&'static str> {
    let mut v = vec!["maxIntegerSize", "inBytes", "outBytes"];
    v.extend(CACHE_KEYS);
    v
}

/// Wall-clock milliseconds since the epoch (the clock nginx reads with gettimeofday).
pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64
}

/// True when the tests run against another module (`NGX_VTS_MODULE`, e.g. the C module).
pub fn other_module() -> bool {
    std::env::var_os("NGX_VTS_MODULE").is_some()
}

/// One fetched JSON document: the response, its body as text, the parsed value.
#[derive(Debug, Clone)]
pub struct Doc {
    pub response: Response,
    pub raw: String,
    pub value: Value,
}

impl Doc {
    pub fn top(&self) -> &Map<String, Value> {
        self.value.as_object().expect("the document is an object")
    }

    pub fn server_zones(&self) -> &Map<String, Value> {
        obj(&self.value, "serverZones")
    }

    /// The server object `name` of `serverZones`; panics with the list of zones if missing.
    pub fn zone(&self, name: &str) -> &Value {
        self.server_zones().get(name).unwrap_or_else(|| {
            panic!(
                "no server zone {:?}; zones: {:?}",
                name,
                self.server_zones().keys().collect::<Vec<_>>()
            )
        })
    }

    /// Names of `serverZones` members, in document order.
    pub fn zone_names(&self) -> Vec<String> {
        self.server_zones().keys().cloned().collect()
    }

    pub fn upstream_zones(&self) -> &Map<String, Value> {
        obj(&self.value, "upstreamZones")
    }

    /// The peers of upstream group `group` (or `::nogroups`).
    pub fn peers(&self, group: &str) -> &Vec<Value> {
        self.upstream_zones()
            .get(group)
            .and_then(Value::as_array)
            .unwrap_or_else(|| {
                panic!(
                    "no upstream group {:?}; groups: {:?}",
                    group,
                    self.upstream_zones().keys().collect::<Vec<_>>()
                )
            })
    }

    /// The peer `server` of group `group`.
    pub fn peer(&self, group: &str, server: &str) -> &Value {
        let peers = self.peers(group);
        let found: Vec<&Value> = peers.iter().filter(|p| p["server"] == server).collect();
        assert_eq!(
            found.len(),
            1,
            "peer {} in group {}: servers {:?}",
            server,
            group,
            peers.iter().map(|p| p["server"].clone()).collect::<Vec<_>>()
        );
        found[0]
    }

    pub fn now_msec(&self) -> u64 {
        num(&self.value, "/nowMsec")
    }
}

/// GET `path` on 127.0.0.1:`port` with `host`; asserts 200 and `application/json`, parses the
/// body strictly (UTF-8, no trailing bytes).
pub fn get_doc(port: u16, host: &str, path: &str) -> Doc {
    let r = http_request(port, "GET", path, host, &[], b"");
    doc_of(r, path)
}

/// The document of a response that must be a 200 `application/json`.
pub fn doc_of(r: Response, what: &str) -> Doc {
    assert_eq!(r.status, 200, "{} answered {}: {}", what, r.status, r.body_text());
    assert_eq!(
        r.header("content-type"),
        Some(JSON_CONTENT_TYPE),
        "Content-Type of {}",
        what
    );
    let value = parse_json(&r.body)
        .unwrap_or_else(|e| panic!("{} is not valid JSON: {}\n{}", what, e, r.body_text()));
    let raw = String::from_utf8(r.body.clone()).expect("checked by parse_json");
    Doc {
        response: r,
        raw,
        value,
    }
}

/// Strict parse: the bytes must be UTF-8 and one JSON value.
pub fn parse_json(bytes: &[u8]) -> Result<Value, String> {
    let text = std::str::from_utf8(bytes).map_err(|e| format!("not UTF-8: {}", e))?;
    serde_json::from_str::<Value>(text).map_err(|e| e.to_string())
}

/// Fetches `path` until `done(doc, fetches_before)` holds (bounded by SETTLE_TIMEOUT), where
/// `fetches_before` counts this loop's earlier fetches (each one is a request the server zone
/// of the display location counts). Returns the last document and its `fetches_before`; the
/// caller asserts exact values on it.
pub fn poll_doc(port: u16, host: &str, path: &str, mut done: impl FnMut(&Doc, u64) -> bool) -> (Doc, u64) {
    let deadline = Instant::now() + SETTLE_TIMEOUT;
    let mut n = 0;
    loop {
        let d = get_doc(port, host, path);
        if done(&d, n) || Instant::now() >= deadline {
            return (d, n);
        }
        n += 1;
        thread::sleep(Duration::from_millis(25));
    }
}

/// `v[key]` as an object.
pub fn obj<'a>(v: &'a Value, key: &str) -> &'a Map<String, Value> {
    v.get(key)
        .and_then(Value::as_object)
        .unwrap_or_else(|| panic!("{:?} is not an object in {}", key, short(v)))
}

/// The unsigned integer at JSON pointer `ptr` (e.g. "/responses/2xx").
pub fn num(v: &Value, ptr: &str) -> u64 {
    v.pointer(ptr)
        .and_then(Value::as_u64)
        .unwrap_or_else(|| panic!("no unsigned integer at {} in {}", ptr, short(v)))
}

/// The array of unsigned integers at JSON pointer `ptr`.
pub fn nums(v: &Value, ptr: &str) -> Vec<u64> {
    v.pointer(ptr)
        .and_then(Value::as_array)
        .unwrap_or_else(|| panic!("no array at {} in {}", ptr, short(v)))
        .iter()
        .map(|x| {
            x.as_u64()
                .unwrap_or_else(|| panic!("{} holds {} (not an unsigned integer)", ptr, x))
        })
        .collect()
}

/// A queue (`requestMsecs`, `responseMsecs`) as (time, msec) pairs, oldest first.
pub fn queue(v: &Value, key: &str) -> Vec<(u64, u64)> {
    let t = nums(v, &format!("/{}/times", key));
    let m = nums(v, &format!("/{}/msecs", key));
    assert_eq!(t.len(), m.len(), "{}: times and msecs of different lengths", key);
    t.into_iter().zip(m).collect()
}

/// The entries of a queue that are not placeholders (time 0).
pub fn queue_entries(v: &Value, key: &str) -> Vec<(u64, u64)> {
    queue(v, key).into_iter().filter(|&(t, _)| t != 0).collect()
}

/// Asserts the 63-entry queue shape: placeholders `(0,0)` first, then `entries` real ones
/// with times in [`from`, `to`] and not decreasing.
pub fn assert_queue(v: &Value, key: &str, entries: usize, from: u64, to: u64, what: &str) {
    let q = queue(v, key);
    assert_eq!(q.len(), QUEUE_LEN, "{} {}: queue length", what, key);
    let zeros = QUEUE_LEN - entries;
    for (i, &(t, m)) in q.iter().enumerate() {
        if i < zeros {
            assert_eq!(
                (t, m),
                (0, 0),
                "{} {}[{}]: a placeholder entry (queue {:?})",
                what,
                key,
                i,
                q
            );
        } else {
            assert!(
                t >= from && t <= to,
                "{} {}[{}]: time {} not within [{}, {}] (queue {:?})",
                what,
                key,
                i,
                t,
                from,
                to,
                q
            );
            if i > zeros {
                assert!(
                    q[i - 1].0 <= t,
                    "{} {}: times go back at {} ({:?})",
                    what,
                    key,
                    i,
                    q
                );
            }
        }
    }
}

/// Average method of a display location.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Amm,
    Wma,
}

/// Reference 0.8: the average of the queue entries newer than `now - period` (period 0: every
/// entry with a time), AMM or WMA, floored; 0 when there is none.
pub fn average(q: &[(u64, u64)], method: Method, period_ms: u64, now: u64) -> u64 {
    let lo = if period_ms > 0 {
        now.saturating_sub(period_ms)
    } else {
        0
    };
    let xs: Vec<u64> = q.iter().filter(|&&(t, _)| t > lo).map(|&(_, m)| m).collect();
    let c = xs.len() as u64;
    if c == 0 {
        return 0;
    }
    match method {
        Method::Amm => xs.iter().sum::<u64>() / c,
        Method::Wma => {
            let s: u64 = xs.iter().enumerate().map(|(i, m)| (i as u64 + 1) * m).sum();
            s / (c * (c + 1) / 2)
        }
    }
}

/// Reference 2.3.1: the sum entry's queue from the zones' queues: the newest up to 63 entries
/// newer than `now - period`, oldest first, left-padded with (0,0). Entries of equal time may
/// come in any order, so the result is sorted by (time, msec) within equal times; compare
/// with `sorted_within_equal_times` of the document's queue.
pub fn merged_queue(zones: &[&Value], period_ms: u64, now: u64) -> Vec<(u64, u64)> {
    let lo = if period_ms > 0 {
        now.saturating_sub(period_ms)
    } else {
        0
    };
    let mut all: Vec<(u64, u64)> = zones
        .iter()
        .flat_map(|z| queue(z, "requestMsecs"))
        .filter(|&(t, _)| t > lo)
        .collect();
    all.sort();
    let keep = all.len().min(QUEUE_LEN);
    let mut q = vec![(0, 0); QUEUE_LEN - keep];
    q.extend_from_slice(&all[all.len() - keep..]);
    q
}

/// The queue with entries of equal time sorted by msec (the order among them is not a contract
/// for the comparison with `merged_queue`).
pub fn sorted_within_equal_times(mut q: Vec<(u64, u64)>) -> Vec<(u64, u64)> {
    q.sort_by_key(|&(t, m)| (t, m));
    q
}

/// Histogram counters of `msecs` observations for `bounds` (cumulative: every bound >= x).
pub fn bucket_counts(bounds: &[u64], msecs: &[u64]) -> Vec<u64> {
    bounds
        .iter()
        .map(|b| msecs.iter().filter(|&&m| m <= *b).count() as u64)
        .collect()
}

/// Keys of an object, in order.
pub fn keys(v: &Value) -> Vec<String> {
    v.as_object()
        .unwrap_or_else(|| panic!("not an object: {}", short(v)))
        .keys()
        .cloned()
        .collect()
}

/// The object's keys are exactly `want`, in this order.
pub fn assert_keys(v: &Value, want: &[&str], what: &str) {
    assert_eq!(keys(v), want, "keys (and their order) of {}", what);
}

/// Every object of the document has exactly the keys of reference section 2, in order; returns
/// the number of server objects that carry `statusCodes`.
pub fn assert_key_order(doc: &Value) -> usize {
    let top = keys(doc);
    let want: Vec<&str> = TOP_KEYS
        .iter()
        .copied()
        .filter(|k| !OPTIONAL_TOP_KEYS.contains(k) || top.iter().any(|t| t == k))
        .collect();
    assert_eq!(top, want, "top-level keys");
    assert_keys(&doc["connections"], &CONNECTION_KEYS, "connections");
    assert_keys(&doc["sharedZones"], &SHARED_ZONE_KEYS, "sharedZones");
    let mut with_codes = 0;
    for (name, z) in obj(doc, "serverZones") {
        with_codes += assert_server_object_keys(z, &format!("serverZones[{:?}]", name)) as usize;
    }
    if let Some(f) = doc.get("filterZones") {
        for (g, members) in f.as_object().expect("filterZones is an object") {
            for (k, z) in members.as_object().expect("a filter group is an object") {
                with_codes +=
                    assert_server_object_keys(z, &format!("filterZones[{:?}][{:?}]", g, k)) as usize;
            }
        }
    }
    if let Some(u) = doc.get("upstreamZones") {
        for (g, peers) in u.as_object().expect("upstreamZones is an object") {
            for p in peers.as_array().expect("an upstream group is an array") {
                let what = format!("upstreamZones[{:?}] peer {}", g, p["server"]);
                assert_keys(p, &PEER_KEYS, &what);
                assert_keys(&p["responses"], &CLASSES, &format!("{} responses", what));
                for q in ["requestMsecs", "responseMsecs"] {
                    assert_keys(&p[q], &QUEUE_KEYS, &format!("{} {}", what, q));
                }
                for b in ["requestBuckets", "responseBuckets"] {
                    assert_keys(&p[b], &BUCKET_KEYS, &format!("{} {}", what, b));
                }
                assert_keys(&p["overCounts"], &PEER_OVER_KEYS, &format!("{} overCounts", what));
            }
        }
    }
    if let Some(c) = doc.get("cacheZones") {
        for (name, z) in c.as_object().expect("cacheZones is an object") {
            let what = format!("cacheZones[{:?}]", name);
            assert_keys(z, &CACHE_ZONE_KEYS, &what);
            assert_keys(&z["responses"], &CACHE_KEYS, &format!("{} responses", what));
            assert_keys(
                &z["overCounts"],
                &cache_over_keys(),
                &format!("{} overCounts", what),
            );
        }
    }
    with_codes
}

/// Key order of one server object; true if it has `statusCodes`.
fn assert_server_object_keys(z: &Value, what: &str) -> bool {
    let codes = z.get("statusCodes").is_some();
    assert_keys(z, &server_keys(codes), what);
    if codes {
        let k = keys(&z["statusCodes"]);
        assert_eq!(
            k.first().map(String::as_str),
            Some("other"),
            "{} statusCodes starts with other",
            what
        );
    }
    assert_keys(
        &z["responses"],
        &server_response_keys(),
        &format!("{} responses", what),
    );
    assert_keys(&z["requestMsecs"], &QUEUE_KEYS, &format!("{} requestMsecs", what));
    assert_keys(
        &z["requestBuckets"],
        &BUCKET_KEYS,
        &format!("{} requestBuckets", what),
    );
    assert_keys(
        &z["overCounts"],
        &server_over_keys(),
        &format!("{} overCounts", what),
    );
    codes
}

/// The raw text is exactly the compact serialisation of what it parses to (no whitespace, same
/// keys in the same order, no duplicate keys, integers as plain decimals, the same string
/// escapes as serde_json's), except for the one space the format has after each
/// `statusCodes` object (`}, "responses":`): `with_codes` of them.
pub fn assert_compact(raw: &str, value: &Value, with_codes: usize) {
    let gap = "}, \"responses\":{";
    assert_eq!(
        raw.matches(gap).count(),
        with_codes,
        "occurrences of {:?} in the raw document",
        gap
    );
    let squeezed = raw.replace(gap, "},\"responses\":{");
    let canonical = serde_json::to_string(value).unwrap();
    if squeezed != canonical {
        let at = squeezed
            .bytes()
            .zip(canonical.bytes())
            .position(|(a, b)| a != b)
            .unwrap_or(squeezed.len().min(canonical.len()));
        let lo = at.saturating_sub(80);
        panic!(
            "the document is not compact JSON at byte {}:\n raw: {:?}\n want: {:?}",
            at,
            &squeezed.get(lo..(at + 80).min(squeezed.len())).unwrap_or(""),
            &canonical.get(lo..(at + 80).min(canonical.len())).unwrap_or("")
        );
    }
}

/// The JSON Schema of the document (draft 2020-12), kept in the repository.
pub fn schema_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/schema/vts-json.schema.json")
}

const VALIDATE_PY: &str = r#"
import json, sys
import jsonschema
schema = json.load(open(sys.argv[1]))
jsonschema.Draft202012Validator.check_schema(schema)
doc = json.loads(sys.stdin.buffer.read().decode("utf-8"))
errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(doc), key=lambda e: list(e.absolute_path))
for e in errors[:20]:
    print("at /" + "/".join(str(p) for p in e.absolute_path) + ": " + e.message[:300])
sys.exit(1 if errors else 0)
"#;

/// Validates `text` against the schema with python3's jsonschema; returns (valid, messages).
pub fn schema_check(text: &str) -> (bool, String) {
    let mut child = Command::new("python3")
        .arg("-c")
        .arg(VALIDATE_PY)
        .arg(schema_path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn python3 (apt-get install python3 python3-jsonschema)");
    let mut stdin = child.stdin.take().unwrap();
    let data = text.as_bytes().to_vec();
    let writer = thread::spawn(move || {
        let _ = stdin.write_all(&data);
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().expect("try_wait").is_none() {
        if Instant::now() >= deadline {
            let _ = child.kill();
            panic!("python3 jsonschema did not finish within 60 s");
        }
        thread::sleep(Duration::from_millis(20));
    }
    let _ = writer.join();
    let out = child.wait_with_output().expect("python3 output");
    let mut msg = String::from_utf8_lossy(&out.stdout).into_owned();
    msg.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.success(), msg)
}

/// The document validates against the schema.
pub fn assert_schema_valid(doc: &Doc) {
    let (ok, msg) = schema_check(&doc.raw);
    assert!(
        ok,
        "the document does not match {}:\n{}",
        schema_path().display(),
        msg
    );
}

/// A short rendering of a value for messages (63-entry arrays shortened).
pub fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.len() > 600 {
        format!(
            "{}...",
            &s[..s.char_indices().nth(600).map(|(i, _)| i).unwrap_or(s.len())]
        )
    } else {
        s
    }
}
