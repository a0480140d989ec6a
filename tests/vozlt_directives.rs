mod common;

// The `vhost_traffic_status_*` directives of nginx-module-vts (the C module ngx_vts replaces):
// every one loads with the C module's syntax and in the C module's contexts, the C module's
// example configurations load unchanged, and every bad argument fails `nginx -t` with the
// message the C module prints (written here as literals, each checked against the C module).
//
// Covered: vhost_traffic_status, _zone, _display, _display_format, _display_jsonp,
// _display_sum_key, _average_method, _histogram_buckets, _measure_status_codes, _ignore_status,
// _stats_by_upstream, _bypass_stats. (Filters, limits, set_by_filter and dump come later.)
//
// Run: `cargo test --release --test vozlt_directives`. Against the C module:
// `NGX_VTS_MODULE=/path/to/ngx_http_vhost_traffic_status_module.so cargo test --release --test
// vozlt_directives` -- every test passes there too, except the ones about ngx_vts's own
// `vts_*` spellings, which skip themselves.

use common::*;

/// True when the tests run against another module (`NGX_VTS_MODULE`, e.g. the C module).
fn other_module() -> bool {
    std::env::var_os("NGX_VTS_MODULE").is_some()
}

/// The messages of the `[emerg]` lines of nginx's output, without the `nginx: [emerg] ` in
/// front and the ` in FILE:LINE` behind.
fn emergs(out: &str) -> Vec<String> {
    level_messages(out, "[emerg] ")
}

fn warns(out: &str) -> Vec<String> {
    level_messages(out, "[warn] ")
}

fn level_messages(out: &str, level: &str) -> Vec<String> {
    out.lines()
        .filter_map(|l| l.split_once(level).map(|(_, m)| m))
        .map(|m| match m.rfind(" in /") {
            Some(i) if m[i..].contains("nginx.conf:") => m[..i].to_string(),
            _ => m.to_string(),
        })
        .collect()
}

/// A server block on a port that was free a moment ago (`nginx -t` binds the listen sockets).
fn server(inner: &str) -> String {
    format!(
        "server {{\n    listen 127.0.0.1:{};\n    {}\n}}",
        free_port(),
        inner
    )
}

const ZONE: &str = "vhost_traffic_status_zone;";

/// Where a directive is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ctx {
    Http,
    Server,
    Location,
    /// `if` inside a location.
    IfInLocation,
    Upstream,
}

const ALL_CTX: [Ctx; 5] = [
    Ctx::Http,
    Ctx::Server,
    Ctx::Location,
    Ctx::IfInLocation,
    Ctx::Upstream,
];

/// An http body with `directive` in context `ctx` (and a zone at http level, unless the
/// directive is the zone itself).
fn body_in(ctx: Ctx, directive: &str) -> String {
    let zone = if directive.starts_with("vhost_traffic_status_zone") {
        ""
    } else {
        ZONE
    };
    match ctx {
        Ctx::Http => format!(
            "{}\n{}\n{}",
            zone,
            directive,
            server("location / { return 200; }")
        ),
        Ctx::Server => format!(
            "{}\n{}",
            zone,
            server(&format!("{}\nlocation / {{ return 200; }}", directive))
        ),
        Ctx::Location => format!(
            "{}\n{}",
            zone,
            server(&format!("location / {{ {} return 200; }}", directive))
        ),
        Ctx::IfInLocation => format!(
            "{}\n{}",
            zone,
            server(&format!(
                "location / {{ if ($arg_a) {{ {} }} return 200; }}",
                directive
            ))
        ),
        Ctx::Upstream => format!(
            "{}\nupstream u {{ server 127.0.0.1:{}; {} }}\n{}",
            zone,
            free_port(),
            directive,
            server("location / { proxy_pass http://u; }")
        ),
    }
}

/// Each directive of this issue with valid arguments, and the contexts the C module accepts it
/// in (its command table; `vhost_traffic_status_display*` are server/location only although
/// the C README lists http too).
const DIRECTIVES: [(&str, &[Ctx]); 12] = [
    (
        "vhost_traffic_status on;",
        &[Ctx::Http, Ctx::Server, Ctx::Location],
    ),
    ("vhost_traffic_status_zone;", &[Ctx::Http]),
    ("vhost_traffic_status_display;", &[Ctx::Server, Ctx::Location]),
    (
        "vhost_traffic_status_display_format json;",
        &[Ctx::Server, Ctx::Location],
    ),
    (
        "vhost_traffic_status_display_jsonp cb;",
        &[Ctx::Server, Ctx::Location],
    ),
    (
        "vhost_traffic_status_display_sum_key total;",
        &[Ctx::Server, Ctx::Location],
    ),
    (
        "vhost_traffic_status_average_method WMA 30s;",
        &[Ctx::Http, Ctx::Server, Ctx::Location],
    ),
    (
        "vhost_traffic_status_histogram_buckets 0.005 0.05 0.5;",
        &[Ctx::Http, Ctx::Server, Ctx::Location],
    ),
    ("vhost_traffic_status_measure_status_codes 200 404;", &[Ctx::Http]),
    (
        "vhost_traffic_status_ignore_status 4xx;",
        &[Ctx::Http, Ctx::Server, Ctx::Location],
    ),
    ("vhost_traffic_status_stats_by_upstream off;", &[Ctx::Http]),
    (
        "vhost_traffic_status_bypass_stats on;",
        &[Ctx::Http, Ctx::Server, Ctx::Location],
    ),
];

fn name_of(directive: &str) -> &str {
    directive.split([' ', ';']).next().unwrap()
}

#[test]
fn every_directive_loads_in_its_contexts() {
    let mut failures = Vec::new();
    for (directive, allowed) in DIRECTIVES {
        for &ctx in allowed {
            let body = body_in(ctx, directive);
            let (ok, out) = nginx_t(&body);
            if !ok || !emergs(&out).is_empty() {
                failures.push(format!(
                    "{} in {:?}:\n{}\n--- body ---\n{}",
                    directive, ctx, out, body
                ));
            }
        }
    }
    assert!(failures.is_empty(), "refused:\n{}", failures.join("\n\n"));
}

#[test]
fn every_directive_is_refused_outside_its_contexts() {
    let mut failures = Vec::new();
    for (directive, allowed) in DIRECTIVES {
        for ctx in ALL_CTX.into_iter().filter(|c| !allowed.contains(c)) {
            let body = body_in(ctx, directive);
            let (ok, out) = nginx_t(&body);
            let want = vec![format!(
                "\"{}\" directive is not allowed here",
                name_of(directive)
            )];
            if ok || emergs(&out) != want {
                failures.push(format!(
                    "{} in {:?}: ok={} emerg {:?}, want {:?}\n{}",
                    directive,
                    ctx,
                    ok,
                    emergs(&out),
                    want,
                    out
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// `nginx -t` fails and prints exactly these `[emerg]` messages.
fn check_fails(failures: &mut Vec<String>, body: &str, want: &[&str]) {
    let (ok, out) = nginx_t(body);
    let got = emergs(&out);
    if ok || got != want {
        failures.push(format!(
            "ok={} emerg {:?}, want {:?}\n--- body ---\n{}\n--- output ---\n{}",
            ok, got, want, body, out
        ));
    }
}

fn check_loads(failures: &mut Vec<String>, body: &str) {
    let (ok, out) = nginx_t(body);
    if !ok || !emergs(&out).is_empty() {
        failures.push(format!(
            "refused:\n--- body ---\n{}\n--- output ---\n{}",
            body, out
        ));
    }
}

/// At http level with a zone (the directive is not the zone).
fn at_http(directive: &str) -> String {
    format!(
        "{}\n{}\n{}",
        ZONE,
        directive,
        server("location / { return 200; }")
    )
}

/// In a server block with a zone at http level.
fn at_server(directive: &str) -> String {
    format!("{}\n{}", ZONE, server(directive))
}

#[test]
fn zone_arguments() {
    let mut f = Vec::new();
    let zone = |arg: &str| format!("vhost_traffic_status_zone {};\n{}", arg, server(""));
    for ok in [
        "shared:vts:1m",
        "shared:vts:32k",
        "shared:vts:32768",
        "shared:vts:2M",
        "shared:vts:64K",
    ] {
        check_loads(&mut f, &zone(ok));
    }
    check_fails(&mut f, &zone("foo"), &["invalid parameter \"foo\""]);
    check_fails(&mut f, &zone("vts:1m"), &["invalid parameter \"vts:1m\""]);
    check_fails(&mut f, &zone("shared:x"), &["invalid shared size \"shared:x\""]);
    check_fails(
        &mut f,
        &zone("shared:x:abc"),
        &["invalid shared size \"shared:x:abc\""],
    );
    check_fails(
        &mut f,
        &zone("shared:x:1g"),
        &["invalid shared size \"shared:x:1g\""],
    );
    check_fails(
        &mut f,
        &zone("shared:x:16k"),
        &["shared \"shared:x:16k\" is too small"],
    );
    check_fails(
        &mut f,
        &zone("shared:x:32767"),
        &["shared \"shared:x:32767\" is too small"],
    );
    check_fails(
        &mut f,
        &zone("a b"),
        &["invalid number of arguments in \"vhost_traffic_status_zone\" directive"],
    );
    check_fails(
        &mut f,
        &format!(
            "vhost_traffic_status_zone;\nvhost_traffic_status_zone;\n{}",
            server("")
        ),
        &["vhost_traffic_status: \"ngx_http_vhost_traffic_status\" is already bound to key"],
    );
    check_fails(
        &mut f,
        &format!(
            "vhost_traffic_status_zone shared:x:1m;\nvhost_traffic_status_zone shared:x:1m;\n{}",
            server("")
        ),
        &["vhost_traffic_status: \"x\" is already bound to key"],
    );
    assert!(f.is_empty(), "{}", f.join("\n\n"));
}

/// The on|off directives use nginx's flag parser: case-insensitive on/off, exactly one
/// argument, once per level.
#[test]
fn flags_use_nginxs_on_off_parser() {
    let mut f = Vec::new();
    for d in [
        "vhost_traffic_status",
        "vhost_traffic_status_bypass_stats",
        "vhost_traffic_status_stats_by_upstream",
    ] {
        for v in ["on", "off", "ON", "Off"] {
            check_loads(&mut f, &at_http(&format!("{} {};", d, v)));
        }
        check_fails(
            &mut f,
            &at_http(&format!("{} maybe;", d)),
            &[&format!(
                "invalid value \"maybe\" in \"{}\" directive, it must be \"on\" or \"off\"",
                d
            )],
        );
        check_fails(
            &mut f,
            &at_http(&format!("{} 1;", d)),
            &[&format!(
                "invalid value \"1\" in \"{}\" directive, it must be \"on\" or \"off\"",
                d
            )],
        );
        check_fails(
            &mut f,
            &at_http(&format!("{} on;\n{} off;", d, d)),
            &[&format!("\"{}\" directive is duplicate", d)],
        );
        for args in ["", " on on"] {
            check_fails(
                &mut f,
                &at_http(&format!("{}{};", d, args)),
                &[&format!("invalid number of arguments in \"{}\" directive", d)],
            );
        }
    }
    // A level below may say it again (the server and location flags).
    for d in ["vhost_traffic_status", "vhost_traffic_status_bypass_stats"] {
        check_loads(
            &mut f,
            &format!(
                "{}\n{} on;\n{}",
                ZONE,
                d,
                server(&format!("{d} off;\nlocation / {{ {d} on; return 200; }}"))
            ),
        );
        check_fails(
            &mut f,
            &at_server(&format!("location / {{ {d} on; {d} on; return 200; }}")),
            &[&format!("\"{}\" directive is duplicate", d)],
        );
    }
    assert!(f.is_empty(), "{}", f.join("\n\n"));
}

#[test]
fn display_arguments() {
    let mut f = Vec::new();
    // The optional argument is ignored; the directive may be repeated.
    check_loads(
        &mut f,
        &at_server("location /status { vhost_traffic_status_display; }"),
    );
    check_loads(
        &mut f,
        &at_server("location /status { vhost_traffic_status_display anything; }"),
    );
    check_loads(
        &mut f,
        &at_server("location /status { vhost_traffic_status_display; vhost_traffic_status_display; }"),
    );
    check_loads(&mut f, &at_server("vhost_traffic_status_display;"));
    check_fails(
        &mut f,
        &at_server("location /status { vhost_traffic_status_display a b; }"),
        &["invalid number of arguments in \"vhost_traffic_status_display\" directive"],
    );
    // Without a zone the configuration loads too (the location answers 501).
    check_loads(
        &mut f,
        &server("location /status { vhost_traffic_status_display; vhost_traffic_status_display_format prometheus; }"),
    );

    let d = "vhost_traffic_status_display_format";
    for v in ["json", "html", "jsonp", "prometheus", "JSON", "Prometheus"] {
        check_loads(
            &mut f,
            &at_server(&format!(
                "location /status {{ vhost_traffic_status_display; {} {}; }}",
                d, v
            )),
        );
    }
    for v in ["xml", "jsonx", "text", "\"\""] {
        let shown = if v == "\"\"" { "" } else { v };
        check_fails(
            &mut f,
            &at_server(&format!("location /status {{ {} {}; }}", d, v)),
            &[&format!("invalid value \"{}\"", shown)],
        );
    }
    check_fails(
        &mut f,
        &at_server(&format!("location /status {{ {d} json; {d} html; }}")),
        &[&format!("\"{}\" directive is duplicate", d)],
    );
    for args in ["", " json html"] {
        check_fails(
            &mut f,
            &at_server(&format!("location /status {{ {}{}; }}", d, args)),
            &[&format!("invalid number of arguments in \"{}\" directive", d)],
        );
    }
    // A location may change the server's format.
    check_loads(
        &mut f,
        &at_server(&format!(
            "{d} prometheus;\nlocation /status {{ vhost_traffic_status_display; {d} html; }}"
        )),
    );

    for d in [
        "vhost_traffic_status_display_jsonp",
        "vhost_traffic_status_display_sum_key",
    ] {
        check_loads(
            &mut f,
            &at_server(&format!("{d} a;\nlocation /status {{ {d} b; }}")),
        );
        check_loads(&mut f, &at_server(&format!("location /status {{ {d} \"\"; }}")));
        check_fails(
            &mut f,
            &at_server(&format!("{d} a;\n{d} b;")),
            &[&format!("\"{}\" directive is duplicate", d)],
        );
        for args in ["", " a b"] {
            check_fails(
                &mut f,
                &at_server(&format!("{}{};", d, args)),
                &[&format!("invalid number of arguments in \"{}\" directive", d)],
            );
        }
    }
    assert!(f.is_empty(), "{}", f.join("\n\n"));
}

#[test]
fn average_method_arguments() {
    let mut f = Vec::new();
    let d = "vhost_traffic_status_average_method";
    for v in [
        "AMM",
        "WMA",
        "amm",
        "wma",
        "AMM 0",
        "WMA 30s",
        "AMM 1h30m",
        "AMM \"1h 30m\"",
        "WMA 500ms",
        "AMM 10",
    ] {
        check_loads(&mut f, &at_http(&format!("{} {};", d, v)));
    }
    check_loads(
        &mut f,
        &format!(
            "{ZONE}\n{d} AMM 10s;\n{}",
            server(&format!("{d} WMA;\nlocation / {{ {d} AMM 0; return 200; }}"))
        ),
    );
    // An unknown method: two lines.
    check_fails(
        &mut f,
        &at_http(&format!("{} XYZ;", d)),
        &["invalid value \"XYZ\"", "invalid parameter \"XYZ\""],
    );
    for period in ["10x", "30m1h", "1M", "1y", "\"\"", "-1"] {
        let shown = if period == "\"\"" { "" } else { period };
        check_fails(
            &mut f,
            &at_http(&format!("{} AMM {};", d, period)),
            &[&format!("invalid parameter \"{}\"", shown)],
        );
    }
    // Twice at one level: the second method is the "invalid parameter".
    check_fails(
        &mut f,
        &at_http(&format!("{d} AMM;\n{d} WMA;")),
        &["invalid parameter \"WMA\""],
    );
    check_fails(
        &mut f,
        &at_http(&format!("{d} WMA 5s;\n{d} AMM 10s;")),
        &["invalid parameter \"AMM\""],
    );
    for args in ["", " AMM 1s 2"] {
        check_fails(
            &mut f,
            &at_http(&format!("{}{};", d, args)),
            &[&format!("invalid number of arguments in \"{}\" directive", d)],
        );
    }
    assert!(f.is_empty(), "{}", f.join("\n\n"));
}

#[test]
fn histogram_buckets_arguments() {
    let mut f = Vec::new();
    let d = "vhost_traffic_status_histogram_buckets";
    // Seconds with at most 3 decimals, any order, up to 32 values.
    for v in [
        "0.005 0.01 0.05 0.1 0.5 1 5 10",
        "1",
        "10 1 0.5",
        ".5",
        "1.",
        "0.001",
        "2.5 2.5",
        "1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30 31 32",
    ] {
        check_loads(&mut f, &at_http(&format!("{} {};", d, v)));
    }
    check_loads(
        &mut f,
        &format!(
            "{ZONE}\n{d} 0.005 0.05;\n{}",
            server(&format!("{d} 1;\nlocation / {{ {d} 10 1.; return 200; }}"))
        ),
    );
    for (args, bad) in [
        ("0", "0"),
        ("-1", "-1"),
        ("0.0005", "0.0005"),
        ("0.000", "0.000"),
        ("abc", "abc"),
        ("1e3", "1e3"),
        ("+1", "+1"),
        ("1.2.3", "1.2.3"),
        ("1s", "1s"),
        ("\"\"", ""),
        ("1 0", "0"),
        ("0.5 bad 1", "bad"),
    ] {
        check_fails(
            &mut f,
            &at_http(&format!("{} {};", d, args)),
            &[&format!("invalid parameter \"{}\"", bad)],
        );
    }
    check_fails(
        &mut f,
        &at_http(&format!("{};", d)),
        &[&format!("invalid number of arguments in \"{}\" directive", d)],
    );
    assert!(f.is_empty(), "{}", f.join("\n\n"));
}

/// More than 32 bounds: the C module prints an [emerg] line once but the configuration is
/// accepted (with the first 32).
#[test]
fn histogram_buckets_beyond_32_print_an_emerg_line_and_load() {
    for n in [33, 40] {
        let bounds: Vec<String> = (1..=n).map(|i| i.to_string()).collect();
        let (ok, out) = nginx_t(&at_http(&format!(
            "vhost_traffic_status_histogram_buckets {};",
            bounds.join(" ")
        )));
        assert!(ok, "{} bounds: nginx -t must succeed:\n{}", n, out);
        assert_eq!(
            emergs(&out),
            vec!["histogram bucket size exceeds 32".to_string()],
            "{} bounds:\n{}",
            n,
            out
        );
    }
}

#[test]
fn measure_status_codes_arguments() {
    let mut f = Vec::new();
    let d = "vhost_traffic_status_measure_status_codes";
    for v in ["all", "200", "200 301 302 404 500 503", "100 599"] {
        check_loads(&mut f, &at_http(&format!("{} {};", d, v)));
    }
    // A later line replaces the earlier list.
    check_loads(&mut f, &at_http(&format!("{d} 200;\n{d} 404;")));
    for (args, msg) in [
        ("abc", "invalid parameter \"abc\""),
        ("0", "invalid parameter \"0\""),
        ("-1", "invalid parameter \"-1\""),
        ("2xx", "invalid parameter \"2xx\""),
        ("ALL", "invalid parameter \"ALL\""),
        ("200 all", "invalid parameter \"all\""),
        ("99", "invalid status_code \"99\""),
        ("600", "invalid status_code \"600\""),
        ("200 700", "invalid status_code \"700\""),
        ("200 100", "status codes must be ordered"),
        ("404 200", "status codes must be ordered"),
        // Order is checked before the range.
        ("200 99", "status codes must be ordered"),
    ] {
        check_fails(&mut f, &at_http(&format!("{} {};", d, args)), &[msg]);
    }
    check_fails(
        &mut f,
        &at_http(&format!("{};", d)),
        &[&format!("invalid number of arguments in \"{}\" directive", d)],
    );
    assert!(f.is_empty(), "{}", f.join("\n\n"));
}

#[test]
fn ignore_status_arguments() {
    let mut f = Vec::new();
    let d = "vhost_traffic_status_ignore_status";
    for v in ["off", "4xx", "1xx 2xx 3xx 4xx 5xx", "4XX 5xx", "4xx off"] {
        check_loads(&mut f, &at_http(&format!("{} {};", d, v)));
    }
    // A second line at the same level adds to the first (no "is duplicate").
    check_loads(&mut f, &at_http(&format!("{d} 4xx;\n{d} 5xx;")));
    check_loads(
        &mut f,
        &format!(
            "{ZONE}\n{d} 4xx 5xx;\n{}",
            server(&format!("{d} off;\nlocation / {{ {d} 1xx 3xx; return 200; }}"))
        ),
    );
    for v in ["6xx", "404", "4xxx", "xx"] {
        check_fails(
            &mut f,
            &at_http(&format!("{} {};", d, v)),
            &[&format!("invalid value \"{}\"", v)],
        );
    }
    check_fails(
        &mut f,
        &at_http(&format!("{};", d)),
        &[&format!("invalid number of arguments in \"{}\" directive", d)],
    );
    assert!(f.is_empty(), "{}", f.join("\n\n"));
}

/// A repeated class is a warning, not an error.
#[test]
fn ignore_status_repeated_class_warns() {
    let (ok, out) = nginx_t(&at_http("vhost_traffic_status_ignore_status 4xx 5xx 4xx;"));
    assert!(ok, "{}", out);
    assert_eq!(emergs(&out), Vec::<String>::new(), "{}", out);
    assert_eq!(
        warns(&out),
        vec!["duplicate value \"4xx\"".to_string()],
        "{}",
        out
    );
}

/// The directives do not need the zone to load (only the module's effect does).
#[test]
fn directives_load_without_a_zone() {
    let mut f = Vec::new();
    for (directive, allowed) in DIRECTIVES {
        if directive.starts_with("vhost_traffic_status_zone") {
            continue;
        }
        let ctx = allowed[allowed.len() - 1];
        let body = body_in(ctx, directive).replacen(ZONE, "", 1);
        assert!(!body.contains("vhost_traffic_status_zone"));
        check_loads(&mut f, &body);
    }
    assert!(f.is_empty(), "{}", f.join("\n\n"));
}

// ---------------------------------------------------------------------------------------------
// The C module's example configurations (its README's, reconstructed), unchanged
// ---------------------------------------------------------------------------------------------

fn examples() -> Vec<(&'static str, String)> {
    let p = free_ports(4);
    let (p0, p1, p2, p3) = (p[0], p[1], p[2], p[3]);
    vec![
        (
            "synopsis",
            format!(
                r#"vhost_traffic_status_zone;

server {{
    listen 127.0.0.1:{p0};
    server_name example.org;

    location /status {{
        vhost_traffic_status_display;
        vhost_traffic_status_display_format html;
    }}
}}"#
            ),
        ),
        (
            "shared zone with a name and size, display in json",
            format!(
                r#"vhost_traffic_status_zone shared:vhost_traffic_status:32m;

server {{
    listen 127.0.0.1:{p0};
    server_name example.org;

    location /status {{
        vhost_traffic_status_display;
        vhost_traffic_status_display_format json;
    }}
}}"#
            ),
        ),
        (
            "prometheus, jsonp callback, sum key",
            format!(
                r#"vhost_traffic_status_zone shared:vts:10m;

server {{
    listen 127.0.0.1:{p0};

    location /metrics {{
        vhost_traffic_status_display;
        vhost_traffic_status_display_format prometheus;
    }}
    location /status {{
        vhost_traffic_status_display;
        vhost_traffic_status_display_format jsonp;
        vhost_traffic_status_display_jsonp vtsCallback;
        vhost_traffic_status_display_sum_key total;
    }}
}}"#
            ),
        ),
        (
            "one server left out, status requests not counted",
            format!(
                r#"vhost_traffic_status_zone;

server {{
    listen 127.0.0.1:{p0};
    server_name example.org;

    location /status {{
        vhost_traffic_status_bypass_stats on;
        vhost_traffic_status_display;
        vhost_traffic_status_display_format html;
    }}
}}

server {{
    listen 127.0.0.1:{p1};
    server_name example.com;
    vhost_traffic_status off;

    location / {{
        return 200 "not counted\n";
    }}
}}"#
            ),
        ),
        (
            "averages, histogram, status codes",
            format!(
                r#"vhost_traffic_status_zone;
vhost_traffic_status_average_method WMA 60s;
vhost_traffic_status_histogram_buckets 0.005 0.01 0.05 0.1 0.5 1 5 10;
vhost_traffic_status_measure_status_codes 200 301 302 404 500 503;

server {{
    listen 127.0.0.1:{p0};
    server_name example.org;

    location /status {{
        vhost_traffic_status_display;
        vhost_traffic_status_display_format html;
        vhost_traffic_status_average_method AMM 30s;
    }}
}}"#
            ),
        ),
        (
            "all status codes, ignored classes",
            format!(
                r#"vhost_traffic_status_zone;
vhost_traffic_status_measure_status_codes all;
vhost_traffic_status_ignore_status 1xx 3xx;

server {{
    listen 127.0.0.1:{p0};
    server_name example.org;
    vhost_traffic_status_ignore_status off;

    location /status {{
        vhost_traffic_status_display;
    }}
}}"#
            ),
        ),
        (
            "upstreams with a backup, no upstream statistics",
            format!(
                r#"vhost_traffic_status_zone;
vhost_traffic_status_stats_by_upstream off;

upstream backend {{
    server 127.0.0.1:{p1} weight=3;
    server 127.0.0.1:{p2} max_fails=2 fail_timeout=10s;
    server 127.0.0.1:{p3} backup;
}}

server {{
    listen 127.0.0.1:{p0};
    server_name example.org;

    location / {{
        proxy_pass http://backend;
    }}
    location /status {{
        vhost_traffic_status_display;
        vhost_traffic_status_display_format html;
    }}
}}"#
            ),
        ),
        (
            "upstreams with a zone, statistics on, display in server context",
            format!(
                r#"vhost_traffic_status_zone shared:vhost_traffic_status:1m;
vhost_traffic_status_stats_by_upstream on;
vhost_traffic_status on;
vhost_traffic_status_bypass_stats off;

upstream backend {{
    zone backend 64k;
    server 127.0.0.1:{p1};
    server 127.0.0.1:{p2} backup;
}}

server {{
    listen 127.0.0.1:{p0};
    server_name example.org;

    location /api/ {{
        proxy_pass http://backend;
    }}
    location /direct/ {{
        proxy_pass http://127.0.0.1:{p3};
    }}
}}

server {{
    listen 127.0.0.1:{p3};
    server_name status.example.org;
    vhost_traffic_status_display;
    vhost_traffic_status_display_format prometheus;
}}"#
            ),
        ),
    ]
}

#[test]
fn c_module_example_configurations_load_unchanged() {
    let mut f = Vec::new();
    for (what, body) in examples() {
        let (ok, out) = nginx_t(&body);
        if !ok || !emergs(&out).is_empty() || !warns(&out).is_empty() {
            f.push(format!("{}:\n{}\n--- body ---\n{}", what, out, body));
        }
    }
    assert!(f.is_empty(), "{}", f.join("\n\n"));
}

// ---------------------------------------------------------------------------------------------
// Defaults, as a client sees them
// ---------------------------------------------------------------------------------------------

/// The display location without a zone: the configuration loads and the location answers
/// 501 Not Implemented, whatever the format; other locations are unaffected.
#[test]
fn display_without_zone_answers_501() {
    let nginx = Nginx::start_with(2, 1, |p| {
        format!(
            r#"server {{
    listen 127.0.0.1:{};
    server_name front.example;
    location = /ok {{ return 200 "ok\n"; }}
    location /status {{ vhost_traffic_status_display; }}
}}"#,
            p[0]
        )
    });
    for path in [
        "/status",
        "/status/format/prometheus",
        "/status/format/json",
        "/status/format/html",
    ] {
        let r = nginx.get("front.example", path);
        assert_eq!(r.status, 501, "{}: {}", path, r.body_text());
    }
    let r = nginx.get("front.example", "/ok");
    assert_eq!((r.status, r.body_text().as_str()), (200, "ok\n"));
}

/// What the C module does when nothing is said: zone `ngx_http_vhost_traffic_status` of
/// 1048575 bytes, JSON by default, the JSONP callback `ngx_http_vhost_traffic_status_jsonp_callback`,
/// the sum entry `*`; `vhost_traffic_status_display` in a server block answers every URI no
/// location takes; methods other than GET and HEAD get 405.
#[test]
fn defaults_are_the_c_modules() {
    let nginx = Nginx::start_with(2, 1, |p| {
        format!(
            r#"vhost_traffic_status_zone;
server {{
    listen 127.0.0.1:{};
    server_name front.example;
    vhost_traffic_status_display;
    location = /ok {{ return 200 "ok\n"; }}
}}"#,
            p[0]
        )
    });
    let port = nginx.port();
    let ok = nginx.get("front.example", "/ok");
    assert_eq!((ok.status, ok.body_text().as_str()), (200, "ok\n"));

    let get = |path: &str| http_request(port, "GET", path, "front.example", &[], b"");
    let json = get("/anything");
    assert_eq!(json.status, 200, "{}", json.body_text());
    assert_eq!(json.header("content-type"), Some("application/json"));
    assert!(
        json.body_text().starts_with("{\"hostName\":\""),
        "{}",
        json.body_text()
    );

    let jsonp = get("/status/format/jsonp");
    assert_eq!(jsonp.status, 200);
    assert_eq!(jsonp.header("content-type"), Some("application/javascript"));
    let body = jsonp.body_text();
    assert!(
        body.starts_with("ngx_http_vhost_traffic_status_jsonp_callback({\"hostName\":\"")
            && body.ends_with("})"),
        "{}",
        body
    );

    let html = get("/status/format/html");
    if std::env::var_os("NGX_VTS_MODULE").is_some() {
        // The C module's page.
        assert_eq!(html.status, 200);
        assert_eq!(html.header("content-type"), Some("text/html"));
    } else {
        // ngx_vts's page comes with its own issue; until then a clear 501.
        assert_eq!(html.status, 501);
        assert!(
            html.body_text().contains("HTML page is not implemented yet"),
            "{}",
            html.body_text()
        );
    }

    let prom = get("/status/format/prometheus");
    assert_eq!(prom.status, 200);
    assert_eq!(prom.header("content-type"), Some("text/plain"));
    let text = prom.body_text();
    assert!(
        text.contains(
            "# HELP nginx_vts_main_shm_usage_bytes Shared memory [ngx_http_vhost_traffic_status] info\n"
        ),
        "{}",
        text
    );
    let m = Metrics::parse(&text).unwrap_or_else(|e| panic!("{}\n{}", e, text));
    assert_eq!(
        m.value("nginx_vts_main_shm_usage_bytes", &[("shared", "max_size")]),
        1048575.0
    );
    // /ok, /anything, the JSONP and HTML requests so far: front.example and the sum `*`.
    assert_eq!(
        m.label_values("nginx_vts_server_requests_total", "host"),
        ["*", "front.example"].iter().map(|s| s.to_string()).collect()
    );
    // (ngx_vts answered the HTML request with its 501.)
    let html_ok = std::env::var_os("NGX_VTS_MODULE").is_some();
    assert_eq!(
        m.value(
            "nginx_vts_server_requests_total",
            &[("host", "*"), ("code", "2xx")]
        ),
        if html_ok { 4.0 } else { 3.0 }
    );
    assert_eq!(
        m.value(
            "nginx_vts_server_requests_total",
            &[("host", "*"), ("code", "5xx")]
        ),
        if html_ok { 0.0 } else { 1.0 }
    );

    for method in ["POST", "PUT", "DELETE"] {
        let r = http_request(port, method, "/status", "front.example", &[], b"x");
        assert_eq!(r.status, 405, "{} /status", method);
    }
}

// ---------------------------------------------------------------------------------------------
// ngx_vts's own spellings of the same settings (skipped against another module)
// ---------------------------------------------------------------------------------------------

/// Both spellings of one setting in one configuration: `nginx -t` fails, and the message names
/// both directives.
#[test]
fn mixed_spellings_of_one_setting_are_refused_naming_both() {
    if other_module() {
        eprintln!("skipped: ngx_vts's vts_* directives (NGX_VTS_MODULE is set)");
        return;
    }
    let srv = || server("location / { return 200; }");
    let cases = [
        (
            "vts_zone",
            "vhost_traffic_status_zone",
            format!("vts_zone main 1m;\nvhost_traffic_status_zone;\n{}", srv()),
        ),
        (
            "vts_zone",
            "vhost_traffic_status_zone",
            format!("vhost_traffic_status_zone shared:main:1m;\nvts_zone main 1m;\n{}", srv()),
        ),
        (
            "vts_histogram_buckets",
            "vhost_traffic_status_histogram_buckets",
            format!(
                "{ZONE}\nvts_histogram_buckets 0.005 0.05;\nvhost_traffic_status_histogram_buckets 0.005 0.05;\n{}",
                srv()
            ),
        ),
        (
            "vts_histogram_buckets",
            "vhost_traffic_status_histogram_buckets",
            format!(
                "{ZONE}\nvhost_traffic_status_histogram_buckets 0.005 0.05;\nvts_histogram_buckets 0.005 0.05;\n{}",
                srv()
            ),
        ),
        (
            "vts_upstream_stats",
            "vhost_traffic_status_stats_by_upstream",
            format!(
                "{ZONE}\nvts_upstream_stats on;\nvhost_traffic_status_stats_by_upstream on;\n{}",
                srv()
            ),
        ),
        // A server's own list cannot be shown from the bounds `vts_histogram_buckets` fixes,
        // whichever comes first in the http block.
        (
            "vhost_traffic_status_histogram_buckets",
            "vts_histogram_buckets",
            format!(
                "{ZONE}\nvts_histogram_buckets 0.1 1;\n{}",
                server("vhost_traffic_status_histogram_buckets 0.005 0.05;\nlocation / { return 200; }")
            ),
        ),
        (
            "vhost_traffic_status_histogram_buckets",
            "vts_histogram_buckets",
            format!(
                "{ZONE}\n{}\nvts_histogram_buckets 0.1 1;",
                server("location / { vhost_traffic_status_histogram_buckets 0.005; return 200; }")
            ),
        ),
        (
            "vts_upstream_stats",
            "vhost_traffic_status_stats_by_upstream",
            format!(
                "{ZONE}\nvhost_traffic_status_stats_by_upstream off;\nvts_upstream_stats off;\n{}",
                srv()
            ),
        ),
    ];
    let mut f = Vec::new();
    for (a, b, body) in cases {
        let (ok, out) = nginx_t(&body);
        let msgs = emergs(&out);
        let named = msgs
            .iter()
            .any(|m| m.contains(&format!("\"{}\"", a)) && m.contains(&format!("\"{}\"", b)));
        if ok || !named {
            f.push(format!(
                "{} with {}: ok={} (want a failure whose [emerg] names \"{}\" and \"{}\")\n{}\n--- body ---\n{}",
                a, b, ok, a, b, out, body
            ));
        }
    }
    assert!(f.is_empty(), "{}", f.join("\n\n"));
}

/// The seed's `vts_*` directives still load alone, and beside the `vhost_traffic_status_*`
/// directives that have no `vts_*` twin.
#[test]
fn vts_spellings_load_beside_the_other_vozlt_directives() {
    if other_module() {
        eprintln!("skipped: ngx_vts's vts_* directives (NGX_VTS_MODULE is set)");
        return;
    }
    let mut f = Vec::new();
    check_loads(
        &mut f,
        &format!(
            "vts_zone main 1m;\nvts_upstream_stats on;\nvts_histogram_buckets 0.005 0.05;\n{}",
            server("location /status { vts_status; }")
        ),
    );
    check_loads(
        &mut f,
        &format!(
            "vts_zone main 1m;\nvhost_traffic_status_measure_status_codes 200 404;\n{}",
            server(
                "vhost_traffic_status_ignore_status 4xx;\n\
                 location /status { vts_status; }\n\
                 location /vozlt { vhost_traffic_status_bypass_stats on; vhost_traffic_status_display; \
                 vhost_traffic_status_display_format prometheus; }"
            )
        ),
    );
    assert!(f.is_empty(), "{}", f.join("\n\n"));
}
