//! Scrapes of many keys: the status handler writes the text in slices, one per turn of the
//! worker's event loop, and sends it once it is complete. These tests use enough server zones
//! (a few MB of text, a hundred slices) that every scrape here is written in many slices, and
//! check what a user sees: the same complete, exact, promtool-clean text as a scrape written in
//! one go, with a Content-Length; several at once on one worker; clients that go away mid-way;
//! a reload while scrapes are being written. What the slicing is for (the worker's other
//! requests go on between slices) is a matter of time, measured by `benches/e2e.sh`.
mod common;

use common::*;
use std::collections::BTreeSet;
use std::io::Write;
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

/// Server zones: at about 2.3 KB of text each, 3,000 zones are some 7 MB, over a hundred slices.
const ZONES: usize = 3000;

fn many_zones(workers: u32) -> Nginx {
    Nginx::start_with(workers, 1, |p| {
        let mut s = String::from(
            "vts_zone main 32m;\nserver_names_hash_bucket_size 128;\nserver_names_hash_max_size 16384;\n",
        );
        s.push_str(&format!(
            "server {{ listen 127.0.0.1:{}; server_name localhost; location = /status {{ vts_status; }} }}\n",
            p[0]
        ));
        for i in 0..ZONES {
            s.push_str(&format!(
                "server {{ listen 127.0.0.1:{}; server_name z{i:04}.example; location / {{ return 200 \"{i}\\n\"; }} }}\n",
                p[0]
            ));
        }
        s
    })
}

/// A complete scrape: 200, the text's own Content-Length, and every zone listed.
fn check_complete(r: &Response) -> Metrics {
    assert_eq!(r.status, 200, "{}", r.body_text());
    assert_eq!(r.header("content-type"), Some(STATUS_CONTENT_TYPE));
    assert_eq!(
        r.header("content-length").map(|v| v.parse::<usize>().unwrap()),
        Some(r.body.len()),
        "Content-Length is the length of the text"
    );
    assert!(
        r.body.len() > 2_000_000,
        "{} B: not a scrape of many slices",
        r.body.len()
    );
    let m = Metrics::parse(&r.body_text()).unwrap_or_else(|e| panic!("scrape does not parse: {}", e));
    let zones = m.label_values("nginx_vts_server_requests_total", "zone");
    assert_eq!(zones.len(), ZONES + 1, "every zone, and localhost");
    m
}

fn requests(m: &Metrics, zone: &str) -> f64 {
    m.value("nginx_vts_server_requests_total", &[("zone", zone)])
}

#[test]
fn a_scrape_written_in_slices_is_complete_exact_and_promtool_clean() {
    let nginx = many_zones(1);
    // Known traffic: zone i gets i % 4 requests, for the first 200 zones.
    for i in 0..200 {
        for _ in 0..i % 4 {
            assert_eq!(nginx.get(&format!("z{i:04}.example"), "/").status, 200);
        }
    }
    let r = http_request(nginx.port(), "GET", "/status", "localhost", &[], b"");
    let m = check_complete(&r);
    for i in 0..ZONES {
        let want = if i < 200 { (i % 4) as f64 } else { 0.0 };
        assert_eq!(requests(&m, &format!("z{i:04}.example")), want, "zone {i}");
    }
    // The families are in their order, each declared once, with no sample outside its family.
    assert_promtool_clean(&r.body_text());
    let text = r.body_text();
    let types: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("# TYPE "))
        .map(|l| l.split(' ').nth(2).unwrap())
        .collect();
    let unique: BTreeSet<&str> = types.iter().copied().collect();
    assert_eq!(unique.len(), types.len(), "a family declared twice: {:?}", types);

    // HEAD renders the same text, and sends its length without it.
    let h = http_request(nginx.port(), "HEAD", "/status", "localhost", &[], b"");
    assert_eq!(h.status, 200);
    assert!(h.body.is_empty());
    let len: usize = h.header("content-length").unwrap().parse().unwrap();
    assert!(
        len.abs_diff(r.body.len()) < 64,
        "HEAD says {} B, GET sent {} B",
        len,
        r.body.len()
    );

    // OpenMetrics, in slices too, ends with its # EOF.
    let om = http_request(
        nginx.port(),
        "GET",
        "/status",
        "localhost",
        &[("Accept", "application/openmetrics-text; version=1.0.0")],
        b"",
    );
    assert_eq!(om.status, 200);
    assert!(om.body_text().ends_with("\n# EOF\n"));
    assert_eq!(om.body_text().matches("# EOF").count(), 1);
}

#[test]
fn concurrent_scrapes_on_one_worker_while_it_serves() {
    let nginx = many_zones(1);
    let port = nginx.port();
    let (scrapers, per, hits) = (4, 3, 300);
    let handles: Vec<_> = (0..scrapers)
        .map(|_| {
            thread::spawn(move || {
                let mut last = 0.0;
                for _ in 0..per {
                    let r = http_request(port, "GET", "/status", "localhost", &[], b"");
                    let m = check_complete(&r);
                    let now = requests(&m, "z0007.example");
                    assert!(now >= last, "went down: {} -> {}", last, now);
                    last = now;
                }
            })
        })
        .collect();
    // Meanwhile, the worker serves: every request answered, every one counted.
    for _ in 0..hits {
        assert_eq!(
            http_request(port, "GET", "/", "z0007.example", &[], b"").status,
            200
        );
    }
    for h in handles {
        h.join().expect("scraper thread panicked");
    }
    let m = nginx.scrape_until(|m| requests(m, "z0007.example") == hits as f64);
    assert_eq!(requests(&m, "z0007.example"), hits as f64);
    let log = nginx.error_log();
    assert!(!log.contains("[alert]") && !log.contains("[crit]"), "{}", log);
}

/// (Each abandoned scrape is still summed and written: a closed connection is noticed when
/// the text is sent.)
#[test]
fn clients_that_leave_mid_scrape_do_not_disturb_the_worker() {
    let nginx = many_zones(1);
    let workers = nginx.worker_pids();
    // Each asks for a scrape and closes its connection at once: the worker is still writing
    // the text when the client is gone.
    for _ in 0..20 {
        let mut s = TcpStream::connect(("127.0.0.1", nginx.port())).unwrap();
        s.write_all(b"GET /status HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .unwrap();
        drop(s);
    }
    // The same worker serves on and counts on.
    for _ in 0..5 {
        assert_eq!(nginx.get("z0001.example", "/").status, 200);
    }
    let r = http_request(nginx.port(), "GET", "/status", "localhost", &[], b"");
    let m = check_complete(&r);
    assert_eq!(requests(&m, "z0001.example"), 5.0);
    assert_eq!(nginx.worker_pids(), workers, "the worker was replaced");
    let log = nginx.error_log();
    assert!(
        !log.contains("[alert]") && !log.contains("[crit]") && !log.contains("[emerg]"),
        "{}",
        log
    );
}

#[test]
fn a_reload_while_scrapes_are_written_lets_them_finish() {
    let nginx = many_zones(1);
    let port = nginx.port();
    assert_eq!(nginx.get("z0002.example", "/").status, 200);
    let whole = http_request(port, "GET", "/status", "localhost", &[], b"");
    check_complete(&whole);
    let last_line = whole.body_text().lines().last().unwrap().to_string();
    // Scrapers in a tight loop across reloads (so that the worker is often writing one when
    // it is told to quit): the scrapes in flight are finished before it exits. Each
    // must be whole: 200, its Content-Length, and the same last line as a complete scrape.
    let stop = Arc::new(AtomicBool::new(false));
    let handles: Vec<_> = (0..2)
        .map(|_| {
            let (stop, last_line) = (stop.clone(), last_line.clone());
            thread::spawn(move || {
                let mut n = 0;
                while !stop.load(Ordering::SeqCst) {
                    let r = http_request(port, "GET", "/status", "localhost", &[], b"");
                    assert_eq!(r.status, 200);
                    let len = r.header("content-length").map(|v| v.parse::<usize>().unwrap());
                    assert_eq!(len, Some(r.body.len()));
                    assert!(r.body_text().ends_with(&format!("\n{}\n", last_line)));
                    n += 1;
                }
                n
            })
        })
        .collect();
    // Several reloads: each has a good chance to come while a scrape is being written.
    for _ in 0..4 {
        thread::sleep(Duration::from_millis(100));
        nginx.reload();
    }
    thread::sleep(Duration::from_millis(100));
    stop.store(true, Ordering::SeqCst);
    for h in handles {
        let n = h.join().expect("a scrape in flight during the reload failed");
        assert!(n > 0);
    }
    let m = nginx.scrape();
    assert_eq!(requests(&m, "z0002.example"), 1.0, "the zone survives the reload");
    let log = nginx.error_log();
    assert!(!log.contains("[alert]") && !log.contains("[crit]"), "{}", log);
}

#[test]
fn a_scrape_whose_request_body_is_still_arriving_is_complete() {
    let nginx = many_zones(1);
    // A GET with a body of which only part has arrived: nginx discards it as it comes.
    let mut s = TcpStream::connect(("127.0.0.1", nginx.port())).unwrap();
    s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    s.write_all(b"GET /status HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100\r\n\r\n0123456789")
        .unwrap();
    let mut raw = Vec::new();
    let mut buf = [0u8; 65536];
    let (head_end, len) = loop {
        let n = std::io::Read::read(&mut s, &mut buf).expect("read the scrape");
        assert!(n > 0, "connection closed after {} bytes", raw.len());
        raw.extend_from_slice(&buf[..n]);
        if let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length: "))
                .expect("a Content-Length")
                .trim()
                .parse()
                .unwrap();
            if raw.len() >= end + 4 + len {
                break (end + 4, len);
            }
        }
    };
    assert!(raw.starts_with(b"HTTP/1.1 200 "));
    let text = String::from_utf8_lossy(&raw[head_end..head_end + len]).into_owned();
    let m = Metrics::parse(&text).unwrap();
    assert_eq!(
        m.label_values("nginx_vts_server_requests_total", "zone").len(),
        ZONES + 1
    );
    // The rest of the body, and the connection serves the next request.
    s.write_all(&[b'x'; 90]).unwrap();
    s.write_all(b"GET /status HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut rest = Vec::new();
    std::io::Read::read_to_end(&mut s, &mut rest).expect("read the second answer");
    assert!(
        rest.starts_with(b"HTTP/1.1 200 "),
        "{:?}",
        String::from_utf8_lossy(&rest[..rest.len().min(200)])
    );
}
