//! A `vhost_traffic_status_display` location's format rules (reference section 3): the
//! `/format/...` suffix, `vhost_traffic_status_display_format` as the default, the exact
//! Content-Type of each format, JSONP with the default and a configured callback, HEAD,
//! 405 for other methods, 501 without a zone, the HTML page, and the display location's own
//! requests, which are counted after their document was rendered.
//!
//! Every expectation is a literal here, each checked against the C module:
//! `NGX_VTS_MODULE=/path/to/ngx_http_vhost_traffic_status_module.so cargo test --release
//! --test display_formats` passes. The HTML test accepts a 501 from ngx_vts until its page
//! lands (the C module must serve the page); the `vts_status` tests are ngx_vts's own and
//! skip themselves against another module.

mod common;

use common::json::*;
use common::*;
use serde_json::Value;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Format {
    Json,
    /// JSONP with this callback.
    Jsonp(&'static str),
    Prometheus,
    Html,
}

const DEFAULT_CALLBACK: &str = "ngx_http_vhost_traffic_status_jsonp_callback";

impl Format {
    fn content_type(self) -> &'static str {
        match self {
            Format::Json => "application/json",
            Format::Jsonp(_) => "application/javascript",
            Format::Prometheus => "text/plain",
            Format::Html => "text/html",
        }
    }
}

/// The first lines of the C module's Prometheus output (reference 4.2).
const PROMETHEUS_START: &str =
    "# HELP nginx_vts_info Nginx info\n# TYPE nginx_vts_info gauge\nnginx_vts_info{";
/// What identifies the HTML page (reference 6.2).
const HTML_TITLE: &str = "<title>nginx vhost traffic status monitor</title>";

fn conf(p: &[u16]) -> String {
    format!(
        r#"vhost_traffic_status_zone;
server {{
    listen 127.0.0.1:{p0};
    server_name fmt.test;
    location / {{ return 200 "ok\n"; }}
    location /status {{ vhost_traffic_status_display; }}
    location /prom {{ vhost_traffic_status_display; vhost_traffic_status_display_format prometheus; }}
    location /jp {{ vhost_traffic_status_display; vhost_traffic_status_display_jsonp cb; }}
    location /jpdefault {{ vhost_traffic_status_display; vhost_traffic_status_display_format JSONP; }}
    location /page {{ vhost_traffic_status_display; vhost_traffic_status_display_format html; }}
}}
"#,
        p0 = p[0]
    )
}

/// The JSON document inside a body of format `f` (JSON or JSONP), parsed strictly.
fn document(f: Format, body: &[u8], what: &str) -> Value {
    let text = std::str::from_utf8(body).unwrap_or_else(|e| panic!("{}: body is not UTF-8: {}", what, e));
    let json = match f {
        Format::Json => text,
        Format::Jsonp(cb) => {
            let open = format!("{}(", cb);
            assert!(
                text.starts_with(&open) && text.ends_with(')'),
                "{}: JSONP is `{}(` document `)` with nothing around: {:?}...{:?}",
                what,
                cb,
                &text[..text.len().min(60)],
                &text[text.len().saturating_sub(20)..]
            );
            &text[open.len()..text.len() - 1]
        }
        _ => panic!("{}: not a JSON format", what),
    };
    let v = parse_json(json.as_bytes()).unwrap_or_else(|e| panic!("{}: invalid JSON: {}", what, e));
    assert_key_order(&v);
    assert_eq!(v["moduleVersion"], MODULE_VERSION, "{}", what);
    v
}

/// GETs `path` and checks that it answers format `f`: status, exact Content-Type, body.
fn assert_format(port: u16, path: &str, f: Format) {
    let r = http_request(port, "GET", path, "fmt.test", &[], b"");
    let what = format!("GET {} ({:?})", path, f);
    assert_eq!(r.status, 200, "{}: {}", what, r.body_text());
    assert_eq!(
        r.header("content-type"),
        Some(f.content_type()),
        "{}: Content-Type",
        what
    );
    match f {
        Format::Json | Format::Jsonp(_) => {
            document(f, &r.body, &what);
        }
        Format::Prometheus => {
            let t = r.body_text();
            assert!(
                t.starts_with(PROMETHEUS_START),
                "{}: body starts {:?}",
                what,
                &t[..t.len().min(120)]
            );
        }
        Format::Html => {
            assert!(r.body_text().contains(HTML_TITLE), "{}: the HTML page", what);
        }
    }
}

#[test]
fn format_suffix_chooses_the_format_and_content_type() {
    use Format::*;
    let nginx = Nginx::start_with(2, 1, conf);
    let port = nginx.port();
    let cases: &[(&str, Format)] = &[
        // display_format json (the default)
        ("/status", Json),
        ("/status/", Json),
        ("/status/format/json", Json),
        ("/status/format/jsonp", Jsonp(DEFAULT_CALLBACK)),
        ("/status/format/prometheus", Prometheus),
        ("/status/format/JSON", Json),
        ("/status/FORMAT/JSONP", Jsonp(DEFAULT_CALLBACK)),
        ("/status/format/Prometheus", Prometheus),
        ("/status/format/prometheus/", Prometheus),
        ("/status/format/jsonx", Json),
        ("/status/format/jsonp/x", Jsonp(DEFAULT_CALLBACK)),
        ("/status/format/json/anything", Json),
        ("/status/format/promx", Json),
        ("/status/format/xml", Json),
        ("/status/format/", Json),
        ("/status/format", Json),
        ("/status/aformat/jsonp", Json),
        // display_format prometheus: the default when the suffix names no format
        ("/prom", Prometheus),
        ("/prom/format/json", Json),
        ("/prom/format/jsonp", Jsonp(DEFAULT_CALLBACK)),
        ("/prom/format/xml", Prometheus),
        ("/prom/format/", Prometheus),
        ("/prom/format/js", Prometheus),
        ("/prom/formatjson", Prometheus),
        ("/prom/x/format/json", Json),
        // display_jsonp cb: only the callback changes
        ("/jp", Json),
        ("/jp/format/jsonp", Jsonp("cb")),
        ("/jp/format/prometheus", Prometheus),
        // display_format JSONP (case-insensitive keyword)
        ("/jpdefault", Jsonp(DEFAULT_CALLBACK)),
        ("/jpdefault/format/json", Json),
    ];
    for (path, f) in cases {
        assert_format(port, path, *f);
    }
}

#[test]
fn accept_header_does_not_choose_the_format() {
    let nginx = Nginx::start_with(2, 1, conf);
    let port = nginx.port();
    for (path, accept, f) in [
        ("/prom", "application/json", Format::Prometheus),
        ("/status", "text/plain", Format::Json),
        (
            "/status",
            "application/openmetrics-text; version=1.0.0",
            Format::Json,
        ),
    ] {
        let r = http_request(port, "GET", path, "fmt.test", &[("Accept", accept)], b"");
        assert_eq!(r.status, 200);
        assert_eq!(
            r.header("content-type"),
            Some(f.content_type()),
            "GET {} with Accept: {}",
            path,
            accept
        );
    }
}

#[test]
fn jsonp_wraps_the_document_in_the_callback() {
    let nginx = Nginx::start_with(2, 1, conf);
    let port = nginx.port();
    for (path, cb) in [
        ("/status/format/jsonp", DEFAULT_CALLBACK),
        ("/jp/format/jsonp", "cb"),
        ("/jpdefault", DEFAULT_CALLBACK),
    ] {
        let r = http_request(port, "GET", path, "fmt.test", &[], b"");
        assert_eq!(r.status, 200);
        assert_eq!(r.header("content-type"), Some("application/javascript"));
        let text = r.body_text();
        assert!(
            text.starts_with(&format!("{}({{\"hostName\":\"", cb)),
            "{}: {:?}",
            path,
            &text[..80.min(text.len())]
        );
        assert!(
            text.ends_with("}})"),
            "{}: no `;` or newline after `)`: {:?}",
            path,
            &text[text.len().saturating_sub(20)..]
        );
        let v = document(Format::Jsonp(cb), &r.body, path);
        assert!(v["serverZones"].get("*").is_some(), "{}: the sum entry", path);
    }
    // The callback comes only from the configuration: no ?callback= override.
    let r = http_request(
        port,
        "GET",
        "/jp/format/jsonp?callback=evil",
        "fmt.test",
        &[],
        b"",
    );
    assert!(r.body_text().starts_with("cb({"), "?callback= is ignored");
}

#[test]
fn head_answers_200_with_the_content_type_and_no_body() {
    use Format::*;
    let nginx = Nginx::start_with(2, 1, conf);
    let port = nginx.port();
    for (path, f) in [
        ("/status", Json),
        ("/status/format/jsonp", Jsonp(DEFAULT_CALLBACK)),
        ("/status/format/prometheus", Prometheus),
        ("/prom", Prometheus),
        ("/prom/format/json", Json),
    ] {
        // The harness rejects any byte after the headers of a HEAD response.
        let r = http_request(port, "HEAD", path, "fmt.test", &[], b"");
        assert_eq!(r.status, 200, "HEAD {}", path);
        assert_eq!(r.header("content-type"), Some(f.content_type()), "HEAD {}", path);
        assert!(r.body.is_empty());
    }
}

#[test]
fn other_methods_answer_405() {
    let nginx = Nginx::start_with(2, 1, conf);
    let port = nginx.port();
    for (method, path, body) in [
        ("POST", "/status", &b""[..]),
        ("POST", "/status/format/json", &b"a=1&b=2"[..]),
        ("PUT", "/prom", &b"x"[..]),
        ("DELETE", "/status", &b""[..]),
        ("OPTIONS", "/status/format/prometheus", &b""[..]),
        ("PATCH", "/jp", &b"{}"[..]),
    ] {
        let r = http_request(port, method, path, "fmt.test", &[], body);
        assert_eq!(r.status, 405, "{} {}: {}", method, path, r.body_text());
    }
    // The location still answers GET afterwards.
    assert_format(port, "/status", Format::Json);
}

#[test]
fn display_without_a_zone_answers_501() {
    let body = |p: &[u16]| {
        format!(
            "server {{\n    listen 127.0.0.1:{};\n    location /status {{ vhost_traffic_status_display; vhost_traffic_status_display_format prometheus; }}\n    location / {{ return 200 \"ok\\n\"; }}\n}}\n",
            p[0]
        )
    };
    let (ok, out) = nginx_t(&body(&[free_port()]));
    assert!(
        ok,
        "a display location without vhost_traffic_status_zone passes nginx -t:\n{}",
        out
    );
    let nginx = Nginx::start_with(2, 1, body);
    let port = nginx.port();
    // The zone is checked first: 501 also for HEAD and POST.
    for (method, path) in [
        ("GET", "/status"),
        ("GET", "/status/format/json"),
        ("HEAD", "/status"),
        ("POST", "/status"),
    ] {
        let r = http_request(port, method, path, "localhost", &[], b"");
        assert_eq!(r.status, 501, "{} {} without a zone", method, path);
    }
    assert_eq!(http_request(port, "GET", "/", "localhost", &[], b"").status, 200);
}

#[test]
fn html_page_or_501_until_it_lands() {
    let nginx = Nginx::start_with(2, 1, conf);
    let port = nginx.port();
    for (path, json_uri) in [
        ("/status/format/html", "/status/format/json"),
        ("/status/format/html/", "/status/format/json"),
        ("/page", "/page/format/json"),
        ("/prom/format/html5", "/prom/format/json"),
    ] {
        let r = http_request(port, "GET", path, "fmt.test", &[], b"");
        if r.status == 501 && !other_module() {
            // ngx_vts until the page lands.
            continue;
        }
        assert_eq!(
            r.status,
            200,
            "GET {}: {}",
            path,
            &r.body_text()[..r.body.len().min(200)]
        );
        assert_eq!(
            r.header("content-type"),
            Some(Format::Html.content_type()),
            "GET {}",
            path
        );
        let t = r.body_text();
        assert!(t.starts_with("<!doctype html>"), "GET {}", path);
        assert!(t.contains(HTML_TITLE), "GET {}: title", path);
        assert!(
            t.contains(&format!("href=\"{}\"", json_uri)),
            "GET {}: the JSON link is {}",
            path,
            json_uri
        );
    }
}

#[test]
fn display_requests_are_counted_after_rendering() {
    let nginx = Nginx::start_with(2, 1, |p| {
        format!(
            r#"vhost_traffic_status_zone;
server {{
    listen 127.0.0.1:{p0};
    server_name self.test;
    location / {{ vhost_traffic_status_display; }}
}}
"#,
            p0 = p[0]
        )
    });
    let port = nginx.port();
    let from = now_ms();

    // Before any request was counted: only the sum entry, zeros and 63 placeholders.
    let first = get_doc(port, "self.test", "/");
    assert_eq!(
        first.zone_names(),
        ["*"],
        "the first document does not include its own request"
    );
    let sum = first.zone("*");
    for k in [
        "/requestCounter",
        "/inBytes",
        "/outBytes",
        "/requestMsecCounter",
        "/requestMsec",
    ] {
        assert_eq!(num(sum, k), 0, "empty sum entry {}", k);
    }
    assert_queue(sum, "requestMsecs", 0, 0, 0, "empty sum entry");

    // (requests, inBytes, outBytes, 2xx, 4xx) counted so far.
    let mut seen = (
        1u64,
        first.response.bytes_written,
        first.response.bytes_read,
        1u64,
        0u64,
    );
    let steps: [(&str, &str, &[u8]); 6] = [
        ("GET", "/status/format/jsonp", b""),
        ("HEAD", "/", b""),
        ("POST", "/", b""),
        ("GET", "/format/prometheus", b""),
        ("GET", "/", b""),
        ("GET", "/format/json", b""),
    ];
    for (method, path, body) in steps {
        let r = http_request(port, method, path, "self.test", &[], body);
        if method == "GET" && !path.ends_with("prometheus") {
            let f = if path.ends_with("jsonp") {
                Format::Jsonp(DEFAULT_CALLBACK)
            } else {
                Format::Json
            };
            let v = document(f, &r.body, path);
            let z = &v["serverZones"]["self.test"];
            assert_eq!(
                (
                    num(z, "/requestCounter"),
                    num(z, "/inBytes"),
                    num(z, "/outBytes"),
                    num(z, "/responses/2xx"),
                    num(z, "/responses/4xx")
                ),
                seen,
                "{} {}: the earlier requests (and not this one)",
                method,
                path
            );
            assert_queue(z, "requestMsecs", seen.0 as usize, from, now_ms(), path);
        }
        seen.0 += 1;
        seen.1 += r.bytes_written;
        seen.2 += r.bytes_read;
        if r.status == 405 {
            seen.4 += 1;
        } else {
            assert_eq!(r.status, 200, "{} {}", method, path);
            seen.3 += 1;
        }
    }
    assert_eq!((seen.0, seen.3, seen.4), (7, 6, 1));
}

// ---------------------------------------------------------------------------------------------
// The seed's `vts_status` location (ngx_vts only)
// ---------------------------------------------------------------------------------------------

/// ngx_vts's own status location answers the same JSON document for a `/format/json` suffix
/// and for `Accept: application/json` (its plain answer, Prometheus text, is tested
/// elsewhere). Its requests are not counted (README, vts_status).
#[test]
fn vts_status_answers_json_for_the_suffix_and_for_accept() {
    if other_module() {
        eprintln!("skipped: vts_status is ngx_vts's own directive");
        return;
    }
    let nginx = Nginx::start_with(2, 1, |p| {
        format!(
            r#"vts_zone main 1m;
server {{
    listen 127.0.0.1:{p0};
    server_name seed.test;
    location / {{ return 200 "ok\n"; }}
    location /status {{ vts_status; }}
}}
"#,
            p0 = p[0]
        )
    });
    let port = nginx.port();
    let counted: Vec<Response> = (0..2)
        .map(|i| http_request(port, "GET", &format!("/{}", i), "seed.test", &[], b""))
        .collect();
    let sent: u64 = counted.iter().map(|r| r.bytes_written).sum();
    let read: u64 = counted.iter().map(|r| r.bytes_read).sum();
    let check = |d: &Doc, what: &str| {
        assert_key_order(&d.value);
        assert_schema_valid(d);
        assert_eq!(d.value["moduleVersion"], MODULE_VERSION, "{}", what);
        let names: Vec<String> = d.zone_names();
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(sorted, ["*", "seed.test"], "{}: serverZones", what);
        let z = d.zone("seed.test");
        assert_eq!(
            (
                num(z, "/requestCounter"),
                num(z, "/inBytes"),
                num(z, "/outBytes"),
                num(z, "/responses/2xx")
            ),
            (2, sent, read, 2),
            "{}: seed.test counters (the status requests are not counted)",
            what
        );
    };
    check(
        &get_doc(port, "seed.test", "/status/format/json"),
        "/status/format/json",
    );
    let accept = "application/json";
    let r = http_request(port, "GET", "/status", "seed.test", &[("Accept", accept)], b"");
    let what = format!("/status with Accept: {}", accept);
    check(&doc_of(r, &what), &what);
}
