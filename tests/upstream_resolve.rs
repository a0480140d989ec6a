//! Peers that nginx adds at run time: `server NAME resolve` in an upstream with a `zone`.
//!
//! A small DNS responder in this test (UDP on 127.0.0.1, A records only) tells nginx's resolver
//! where the name points; the test moves it from 127.0.0.1 to 127.0.0.2 and back, with a backend
//! listening on both, and checks that each address appears as a peer when nginx adds it, that
//! every attempt is counted for the address it went to, and that the first address keeps its
//! counts when the name resolves to it again.
mod common;

use common::*;
use std::net::{Ipv4Addr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

const NAME: &str = "backend.vts.test";

/// Answers every A query for any name with the address in `addr`, AAAA and others with no
/// records. Stops when `stop` is set (checked at least every 100 ms) and on Drop.
struct Dns {
    port: u16,
    addr: Arc<AtomicU32>,
    queries: Arc<AtomicU32>,
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Dns {
    fn start(first: Ipv4Addr) -> Dns {
        let sock = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind udp 127.0.0.1:0");
        sock.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
        let port = sock.local_addr().unwrap().port();
        let addr = Arc::new(AtomicU32::new(u32::from(first)));
        let queries = Arc::new(AtomicU32::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (a, q, s) = (addr.clone(), queries.clone(), stop.clone());
        let thread = thread::spawn(move || {
            let mut buf = [0u8; 512];
            while !s.load(Ordering::SeqCst) {
                let Ok((n, from)) = sock.recv_from(&mut buf) else {
                    continue;
                };
                if let Some(reply) = answer(&buf[..n], Ipv4Addr::from(a.load(Ordering::SeqCst))) {
                    q.fetch_add(1, Ordering::SeqCst);
                    let _ = sock.send_to(&reply, from);
                }
            }
        });
        Dns {
            port,
            addr,
            queries,
            stop,
            thread: Some(thread),
        }
    }

    fn point_to(&self, ip: Ipv4Addr) {
        self.addr.store(u32::from(ip), Ordering::SeqCst);
    }
}

impl Drop for Dns {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The reply to one query: header with the query's id, the question echoed, and one A record
/// (TTL 1 s) when the question asks for A/IN. None for anything that is not a one-question query.
fn answer(q: &[u8], ip: Ipv4Addr) -> Option<Vec<u8>> {
    if q.len() < 12 || q[2] & 0x80 != 0 || u16::from_be_bytes([q[4], q[5]]) != 1 {
        return None;
    }
    // The question: labels up to the root label, then type and class.
    let mut i = 12;
    loop {
        let len = *q.get(i)? as usize;
        i += 1;
        if len == 0 {
            break;
        }
        if len & 0xc0 != 0 {
            return None;
        }
        i += len;
    }
    let question = q.get(12..i + 4)?;
    let (qtype, qclass) = (
        u16::from_be_bytes([q[i], q[i + 1]]),
        u16::from_be_bytes([q[i + 2], q[i + 3]]),
    );
    let is_a = qtype == 1 && qclass == 1;
    let mut r = Vec::with_capacity(64);
    r.extend_from_slice(&q[0..2]); // id
    r.extend_from_slice(&[0x84 | (q[2] & 0x01), 0x80]); // QR, AA, RD copied; RA; NOERROR
    r.extend_from_slice(&[0, 1, 0, is_a as u8, 0, 0, 0, 0]);
    r.extend_from_slice(question);
    if is_a {
        // Name: pointer to the question's name at offset 12; A, IN, TTL 1, 4 bytes.
        r.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 1, 0, 4]);
        r.extend_from_slice(&ip.octets());
    }
    Some(r)
}

fn up(m: &Metrics, server: &str) -> Option<f64> {
    m.get(
        "nginx_vts_upstream_server_up",
        &[("upstream", "dyn"), ("server", server)],
    )
}

fn requests(m: &Metrics, server: &str) -> Option<f64> {
    m.get(
        "nginx_vts_upstream_requests_total",
        &[("upstream", "dyn"), ("server", server)],
    )
}

/// The live peers of `dyn` in a scrape (the servers with an `up` gauge).
fn live(m: &Metrics) -> Vec<String> {
    m.find("nginx_vts_upstream_server_up", &[("upstream", "dyn")])
        .iter()
        .filter_map(|(l, _)| l.iter().find(|(k, _)| k == "server").map(|(_, v)| v.clone()))
        .collect()
}

/// Scrapes until the live peers of `dyn` are exactly `want` (nginx re-resolves every second),
/// bounded by a wall-clock limit well above the resolver's 1 s validity.
fn wait_live(nginx: &Nginx, want: &[&str]) -> Metrics {
    let got = poll(Duration::from_secs(20), || {
        let m = nginx.scrape();
        (live(&m) == want).then_some(m)
    });
    got.unwrap_or_else(|| {
        panic!(
            "live peers of dyn never became {:?}; last scrape:\n{}\n--- error.log ---\n{}",
            want,
            nginx.scrape_text(),
            nginx.error_log()
        )
    })
}

fn send(nginx: &Nginx, n: usize, who: &str) {
    for i in 0..n {
        let r = nginx.get("front", &format!("/dyn/{}", i));
        assert_eq!(r.status, 200, "request {}: {}", i, r.body_text());
        assert_eq!(r.body_text(), format!("{} answers\n", who));
    }
}

#[test]
fn resolved_peers_appear_when_nginx_adds_them_and_keep_their_counts_when_they_come_back() {
    let one = Ipv4Addr::new(127, 0, 0, 1);
    let two = Ipv4Addr::new(127, 0, 0, 2);
    let dns = Dns::start(one);
    let nginx = Nginx::start_with(2, 2, |p| {
        format!(
            r#"vts_zone main 1m;
vts_upstream_stats on;
resolver 127.0.0.1:{dns} valid=1s ipv6=off;
resolver_timeout 2s;
upstream dyn {{
    zone dyn 64k;
    server {name}:{b} resolve;
}}
server {{
    listen 127.0.0.1:{f};
    server_name front;
    location = /status {{ vts_status; }}
    location /dyn/ {{ proxy_pass http://dyn; }}
}}
server {{
    listen 127.0.0.1:{b};
    server_name be_one;
    location / {{ return 200 "one answers\n"; }}
}}
server {{
    listen 127.0.0.2:{b};
    server_name be_two;
    location / {{ return 200 "two answers\n"; }}
}}
"#,
            dns = dns.port,
            name = NAME,
            f = p[0],
            b = p[1],
        )
    });
    let b = nginx.ports[1];
    let (at_one, at_two) = (format!("127.0.0.1:{}", b), format!("127.0.0.2:{}", b));

    // The name resolves to 127.0.0.1: that peer appears, with no traffic yet.
    let m = wait_live(&nginx, &[&at_one]);
    assert!(dns.queries.load(Ordering::SeqCst) >= 1);
    assert_eq!(up(&m, &at_one), Some(1.0));
    assert_eq!(requests(&m, &at_one), Some(0.0));
    assert_eq!(requests(&m, &at_two), None, "127.0.0.2 was never a peer");

    send(&nginx, 3, "one");
    let m = nginx.scrape_until(|m| requests(m, &at_one) == Some(3.0));
    assert_eq!(requests(&m, &at_one), Some(3.0));
    assert_eq!(
        m.get(
            "nginx_vts_upstream_responses_total",
            &[("upstream", "dyn"), ("server", &at_one), ("status", "2xx")]
        ),
        Some(3.0)
    );

    // It moves to 127.0.0.2: nginx replaces the peer. The new one appears; the old one is no
    // longer live, and its counters stay (a counter never goes away or back).
    dns.point_to(two);
    let m = wait_live(&nginx, &[&at_two]);
    assert_eq!(requests(&m, &at_two), Some(0.0));
    assert_eq!(requests(&m, &at_one), Some(3.0));
    send(&nginx, 2, "two");
    let m = nginx.scrape_until(|m| requests(m, &at_two) == Some(2.0));
    assert_eq!(
        (requests(&m, &at_one), requests(&m, &at_two)),
        (Some(3.0), Some(2.0))
    );

    // Back to 127.0.0.1: the same peer, with the counts it had.
    dns.point_to(one);
    let m = wait_live(&nginx, &[&at_one]);
    assert_eq!(requests(&m, &at_one), Some(3.0));
    send(&nginx, 4, "one");
    let m = nginx.scrape_until(|m| requests(m, &at_one) == Some(7.0));
    assert_eq!(
        (requests(&m, &at_one), requests(&m, &at_two)),
        (Some(7.0), Some(2.0))
    );
    assert_promtool_clean(&nginx.scrape_text());
}
