//! Upstream attempts of subrequests (here `mirror`): counted per peer where the subrequest's
//! location has `log_subrequest on` (nginx runs the log phase for it then), not counted where
//! it has not (the documented limit); the main request is counted once in its server zone
//! either way.
//!
//! Run with `cargo test --release --test subrequests`.

mod common;

use common::*;

const N: usize = 12;

fn conf(p: &[u16]) -> String {
    let backend = |port: u16, name: &str| {
        format!(
            "server {{ listen 127.0.0.1:{port}; server_name {name}; location / {{ return 200 \"{name}\\n\"; }} }}\n"
        )
    };
    format!(
        r#"vts_zone main 1m;
vts_upstream_stats on;
upstream main_up {{ server 127.0.0.1:{b1}; }}
upstream mirror_up {{ server 127.0.0.1:{b2}; }}
server {{
    listen 127.0.0.1:{front};
    server_name front;
    location = /status {{ vts_status; }}
    location /logged/ {{ mirror /mirror_logged; proxy_pass http://main_up; }}
    location /quiet/ {{ mirror /mirror_quiet; proxy_pass http://main_up; }}
    location = /mirror_logged {{ internal; log_subrequest on; proxy_pass http://mirror_up; }}
    location = /mirror_quiet {{ internal; proxy_pass http://mirror_up; }}
}}
{be1}{be2}"#,
        front = p[0],
        b1 = p[1],
        b2 = p[2],
        be1 = backend(p[1], "be_main"),
        be2 = backend(p[2], "be_mirror"),
    )
}

#[test]
fn mirror_attempts_count_per_peer_where_log_subrequest_is_on() {
    let nginx = Nginx::start_with(2, 3, conf);
    let (main_peer, mirror_peer) = (
        format!("127.0.0.1:{}", nginx.ports[1]),
        format!("127.0.0.1:{}", nginx.ports[2]),
    );
    for i in 0..N {
        for prefix in ["logged", "quiet"] {
            let r = nginx.get("front", &format!("/{prefix}/{i}"));
            assert_eq!(r.status, 200, "/{prefix}/{i}: {}", r.body_text());
            assert_eq!(r.body_text(), "be_main\n");
        }
    }
    // A main request is logged after its mirror subrequest is done, and the mirror backend
    // answered all 2N mirrors: every subrequest that will be counted has been.
    let m = nginx.scrape_until(|m| {
        m.get("nginx_vts_server_requests_total", &[("zone", "front")]) == Some(2.0 * N as f64)
            && m.get("nginx_vts_server_requests_total", &[("zone", "be_mirror")]) == Some(2.0 * N as f64)
    });
    let attempts = |group: &str, peer: &str| {
        m.value(
            "nginx_vts_upstream_requests_total",
            &[("upstream", group), ("server", peer)],
        )
    };
    assert_eq!(attempts("main_up", &main_peer), 2.0 * N as f64);
    // Only the mirrors of /logged/: those of /quiet/ never reach a log phase.
    assert_eq!(attempts("mirror_up", &mirror_peer), N as f64);
    assert_eq!(
        m.value(
            "nginx_vts_upstream_responses_total",
            &[
                ("upstream", "mirror_up"),
                ("server", &mirror_peer),
                ("status", "2xx")
            ]
        ),
        N as f64
    );
    assert_eq!(
        m.value(
            "nginx_vts_upstream_response_duration_seconds_count",
            &[("upstream", "mirror_up"), ("server", &mirror_peer)]
        ),
        N as f64
    );
    // The subrequests add nothing to the front's server zone: one sample per main request.
    assert_eq!(
        m.value(
            "nginx_vts_server_responses_total",
            &[("zone", "front"), ("status", "2xx")]
        ),
        2.0 * N as f64
    );
    assert_promtool_clean(&nginx.scrape_text());
}
