//! The shards hold in a real nginx: exact totals under concurrency, across graceful reloads
//! (also with a changed worker count), across a worker killed with SIGKILL, and in a zone too
//! small for its keys.

mod common;

use common::*;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

const ZONES: [&str; 2] = ["a.example", "b.example"];

fn vhosts(zone_size: &str) -> impl Fn(&[u16]) -> String + '_ {
    move |p: &[u16]| {
        format!(
            r#"vts_zone main {zone_size};
server {{
    listen 127.0.0.1:{p};
    server_name a.example;
    location / {{ return 200 "a\n"; }}
    location = /status {{ vts_status; }}
}}
server {{
    listen 127.0.0.1:{p};
    server_name b.example;
    location / {{ return 404; }}
}}
"#,
            p = p[0]
        )
    }
}

fn total(m: &Metrics) -> u64 {
    m.find("nginx_vts_server_requests_total", &[])
        .iter()
        .map(|(_, v)| *v as u64)
        .sum()
}

/// Clients that send requests until stopped, counting the complete responses they received.
struct Load {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
    threads: Vec<thread::JoinHandle<()>>,
}

impl Load {
    fn start(port: u16, concurrency: usize) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let ok = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(AtomicU64::new(0));
        let threads = (0..concurrency)
            .map(|i| {
                let (stop, ok, failed) = (stop.clone(), ok.clone(), failed.clone());
                thread::spawn(move || {
                    let host = ZONES[i % 2];
                    // Bounded: stops on the flag, or after 20,000 requests per client.
                    for _ in 0..20_000 {
                        if stop.load(Ordering::Relaxed) {
                            break;
                        }
                        match try_http_request(port, "GET", "/x", host, &[], b"") {
                            Ok(r) if r.status == 200 || r.status == 404 => ok.fetch_add(1, Ordering::Relaxed),
                            _ => failed.fetch_add(1, Ordering::Relaxed),
                        };
                    }
                })
            })
            .collect();
        Load {
            stop,
            ok,
            failed,
            threads,
        }
    }

    fn received(&self) -> u64 {
        self.ok.load(Ordering::Relaxed)
    }

    /// Stops the clients; returns (complete responses, failed requests).
    fn finish(self) -> (u64, u64) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            t.join().expect("client thread");
        }
        (
            self.ok.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
        )
    }
}

fn wait_for_traffic(load: &Load, at_least: u64) {
    poll(Duration::from_secs(10), || {
        (load.received() >= at_least).then_some(())
    })
    .expect("the clients made no progress");
}

/// The settled total equals `want` exactly (polled: the log phase runs after the response).
fn assert_total(ng: &Nginx, want: u64, what: &str) {
    let m = ng.scrape_until(|m| total(m) == want);
    assert_eq!(
        total(&m),
        want,
        "{what}: merged total vs responses the clients received"
    );
}

#[test]
fn concurrent_clients_are_counted_exactly() {
    let ng = Nginx::start_with(2, 1, vhosts("1m"));
    let per_thread = 300;
    let handles: Vec<_> = (0..8)
        .map(|i| {
            let port = ng.port();
            thread::spawn(move || {
                for _ in 0..per_thread {
                    let r = http_request(port, "GET", "/x", ZONES[i % 2], &[], b"");
                    assert!(r.status == 200 || r.status == 404);
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let m = ng.scrape_until(|m| total(m) == 8 * per_thread);
    for z in ZONES {
        assert_eq!(
            m.value("nginx_vts_server_requests_total", &[("zone", z)]),
            (4 * per_thread) as f64,
            "{z}"
        );
    }
    assert_eq!(total(&m), 8 * per_thread);
}

#[test]
fn graceful_reload_under_load_loses_nothing() {
    let ng = Nginx::start_with(2, 1, vhosts("1m"));
    let load = Load::start(ng.port(), 6);
    wait_for_traffic(&load, 300);
    ng.reload();
    wait_for_traffic(&load, load.received() + 300);
    ng.reload();
    wait_for_traffic(&load, load.received() + 300);
    let (received, failed) = load.finish();
    assert_eq!(failed, 0, "a graceful reload must not fail requests");
    assert_total(&ng, received, "two reloads under load");
}

#[test]
fn worker_count_changes_on_reload_under_load() {
    let mut ng = Nginx::start_with(2, 1, vhosts("1m"));
    let body = vhosts("1m")(&ng.ports);
    let load = Load::start(ng.port(), 6);
    wait_for_traffic(&load, 300);
    for workers in [4, 1, 3] {
        ng.workers = workers;
        ng.rewrite_conf(&body);
        ng.reload();
        assert_eq!(ng.worker_pids().len(), workers as usize);
        wait_for_traffic(&load, load.received() + 300);
    }
    let (received, failed) = load.finish();
    assert_eq!(failed, 0, "a graceful reload must not fail requests");
    assert_total(&ng, received, "worker_processes 2 -> 4 -> 1 -> 3");
    // Every worker that ever ran wrote its own shard; none of them was lost.
    let log = ng.error_log();
    assert!(
        !log.contains("[alert]") && !log.contains("[emerg]"),
        "error log:\n{log}"
    );
}

#[test]
fn a_killed_worker_loses_nothing_counted_and_its_successor_counts() {
    let ng = Nginx::start_with(2, 1, vhosts("1m"));
    let concurrency = 6;
    let load = Load::start(ng.port(), concurrency);
    wait_for_traffic(&load, 500);

    let victim = ng.worker_pids()[0];
    let before = total(&ng.scrape());
    let _ = Command::new("kill")
        .arg("-KILL")
        .arg(victim.to_string())
        .stderr(Stdio::null())
        .status();
    let after = total(&ng.scrape());
    assert!(
        after >= before,
        "counts went down across the kill: {before} -> {after}"
    );

    // nginx respawns the worker; the clients keep going.
    poll(Duration::from_secs(10), || {
        let w = ng.worker_pids();
        (w.len() == 2 && !w.contains(&victim)).then_some(())
    })
    .expect("the master did not respawn the killed worker");
    wait_for_traffic(&load, load.received() + 300);
    let (received, _failed) = load.finish();

    // Requests in flight on the killed worker are the only uncertainty, at most one per client
    // connection: one may have been counted without its response reaching the client, or its
    // response may have reached the client (the kernel closes the socket, which ends a
    // `Connection: close` response) before the worker's log phase ran.
    // Settled: every received request counted, or the total unchanged for half a second (a
    // request lost with the killed worker never comes).
    let mut last = (0, Instant::now());
    let settled = ng.scrape_until(|m| {
        let t = total(m);
        if t != last.0 {
            last = (t, Instant::now());
        }
        t >= received || last.1.elapsed() >= Duration::from_millis(500)
    });
    let counted = total(&settled);
    assert!(
        counted.abs_diff(received) <= concurrency as u64,
        "counted {counted}, clients received {received}, concurrency {concurrency}"
    );
    assert!(
        counted >= after,
        "counts went down after the kill: {after} -> {counted}"
    );

    // From here on, exact again.
    let n = 200;
    for i in 0..n {
        ng.get(ZONES[i % 2], "/x");
    }
    assert_total(&ng, counted + n as u64, "after the respawn");
    assert!(ng.error_log().contains("exited on signal 9"));
}

/// nginx with `workers` workers, a 64k zone (about a hundred keys) and `servers` server
/// blocks, after 3 requests to each (every answer a 200): the nginx and the requests sent.
fn full_zone(workers: u32, servers: usize) -> (Nginx, u64) {
    let ng = Nginx::start_with(workers, 1, |p| {
        let mut s = String::from("vts_zone main 64k;\nserver_names_hash_bucket_size 128;\n");
        s.push_str(&format!(
            "server {{ listen 127.0.0.1:{}; server_name status.local; location = /status {{ vts_status; }} }}\n",
            p[0]
        ));
        for i in 0..servers {
            s.push_str(&format!(
                "server {{ listen 127.0.0.1:{}; server_name host-{i:03}.example; location / {{ return 200 \"{i}\\n\"; }} }}\n",
                p[0]
            ));
        }
        s
    });
    let mut sent = 0u64;
    for round in 0..3 {
        for i in 0..servers {
            let r = ng.get(&format!("host-{i:03}.example"), "/");
            assert_eq!(r.status, 200, "host-{i:03} round {round}");
            sent += 1;
        }
    }
    (ng, sent)
}

/// The warning of a full zone: logged, and once per cause (no directory entry left; no memory
/// left for a chunk), not per request.
fn assert_full_zone_warned(ng: &Nginx) {
    let log = ng.error_log();
    assert!(
        log.contains("[warn]") && log.contains("vts_zone is full"),
        "no warning in:\n{log}"
    );
    let warnings: Vec<&str> = log.lines().filter(|l| l.contains("vts_zone is full")).collect();
    assert!(
        warnings.len() <= 2,
        "the warning is logged once per cause:\n{}",
        warnings.join("\n")
    );
}

/// What every full zone must show: every request counted (in its zone or the overflow entry),
/// the overflow entry in use, the warning once per cause. Returns the scrape.
fn assert_full_zone_exact(ng: &Nginx, sent: u64, servers: usize) -> Metrics {
    let m = ng.scrape_until(|m| total(m) == sent);
    assert_eq!(
        total(&m),
        sent,
        "zones plus overflow must account for every request"
    );
    let overflow = m
        .get("nginx_vts_server_requests_total", &[("zone", "::overflow")])
        .unwrap_or(0.0);
    assert!(
        overflow > 0.0,
        "a 64k zone cannot hold {servers} keys: the overflow entry must show them"
    );
    assert_full_zone_warned(ng);
    m
}

/// Two workers: which worker takes each connection decides which chunks each shard gets before
/// the zone fills, so which zones keep a slot of their own varies; the total never does.
#[test]
fn a_full_zone_with_two_workers_counts_every_request() {
    let (ng, sent) = full_zone(2, 400);
    assert_full_zone_exact(&ng, sent, 400);
}

/// One worker, so that which zones got a slot of their own is known: the first ones.
#[test]
fn a_full_zone_keeps_serving_and_counts_in_the_overflow_entry() {
    let servers = 400;
    let (ng, sent) = full_zone(1, servers);
    let m = assert_full_zone_exact(&ng, sent, servers);
    let named = m.label_values("nginx_vts_server_requests_total", "zone").len();
    assert!(named > 10 && named < servers, "{named} zones listed");
    // A zone that has its own slot counts exactly its requests.
    let first = m.value("nginx_vts_server_requests_total", &[("zone", "host-000.example")]);
    assert_eq!(first, 3.0);
    // Memory use is exported, and the zone is full in one of its two resources: directory
    // entries (with one worker, 400 keys use up the entries of a 64k zone before its bytes)
    // or bytes.
    let size = m.value("nginx_vts_shm_bytes", &[("shm", "main"), ("state", "size")]);
    let free = m.value("nginx_vts_shm_bytes", &[("shm", "main"), ("state", "free")]);
    let used = m.value("nginx_vts_shm_bytes", &[("shm", "main"), ("state", "used")]);
    assert!(
        size > 0.0 && used + free == size,
        "size {size}, used {used}, free {free}"
    );
    let keys = m.value("nginx_vts_shm_keys", &[("shm", "main"), ("state", "used")]);
    let max_keys = m.value("nginx_vts_shm_keys", &[("shm", "main"), ("state", "max")]);
    assert!(
        keys == max_keys || free < size / 4.0,
        "keys {keys} of {max_keys}, {free} of {size} bytes free: nothing is full"
    );
}

/// More workers than owned shards: the extra ones count with atomic adds in the shared shard,
/// exactly, and nginx says so once.
#[test]
fn more_workers_than_shards_still_count_exactly() {
    let workers = 68; // 64 owned shards
    let ng = Nginx::start_with(workers, 1, vhosts("1m"));
    poll(Duration::from_secs(20), || {
        (ng.worker_pids().len() == workers as usize).then_some(())
    })
    .expect("all workers started");
    let handles: Vec<_> = (0..8)
        .map(|i| {
            let port = ng.port();
            thread::spawn(move || {
                for _ in 0..100 {
                    http_request(port, "GET", "/x", ZONES[i % 2], &[], b"");
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    assert_total(&ng, 800, "68 workers");
    let log = ng.error_log();
    let notices: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("more worker processes than shards"))
        .collect();
    assert_eq!(notices.len(), 1, "one notice:\n{}", notices.join("\n"));
    assert!(notices[0].contains("[notice]"), "{}", notices[0]);
}

/// A reload that changes the histogram buckets gets a zone laid out for them (starting from
/// zero, as a changed size does); a reload with the same buckets keeps the counts.
#[test]
fn a_reload_with_other_buckets_starts_a_fresh_zone() {
    let body = |p: &[u16], buckets: &str| format!("{}{}", vhosts("1m")(p), buckets);
    let ng = Nginx::start_with(2, 1, |p| body(p, "vts_histogram_buckets 0.1 1;\n"));
    for i in 0..10 {
        ng.get(ZONES[i % 2], "/x");
    }
    assert_total(&ng, 10, "before the reloads");

    ng.rewrite_conf(&body(&ng.ports, "vts_histogram_buckets 0.1 1;\n"));
    ng.reload();
    assert_total(&ng, 10, "same buckets: the zone is kept");

    ng.rewrite_conf(&body(&ng.ports, "vts_histogram_buckets 0.1 1 5;\n"));
    ng.reload();
    for i in 0..3 {
        ng.get(ZONES[i % 2], "/x");
    }
    assert_total(&ng, 3, "other buckets: a fresh zone");
    let m = ng.scrape();
    let les = m.label_values("nginx_vts_server_request_duration_seconds_bucket", "le");
    let want: std::collections::BTreeSet<String> = ["0.1", "1.0", "5.0", "+Inf"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(les, want);

    // The same number of buckets with other bounds is another layout too.
    ng.rewrite_conf(&body(&ng.ports, "vts_histogram_buckets 0.2 2 6;\n"));
    ng.reload();
    ng.get(ZONES[0], "/x");
    assert_total(&ng, 1, "other bounds, same count: a fresh zone");

    // `off` (no bounds, smaller slots) and back: a fresh zone each way, and no histograms.
    ng.rewrite_conf(&body(&ng.ports, "vts_histogram_buckets off;\n"));
    ng.reload();
    for i in 0..4 {
        ng.get(ZONES[i % 2], "/x");
    }
    assert_total(&ng, 4, "buckets off: a fresh zone");
    let text = ng.scrape_text();
    assert!(!text.contains("_duration_seconds"), "{}", text);
    ng.rewrite_conf(&body(&ng.ports, "vts_histogram_buckets 0.2 2 6;\n"));
    ng.reload();
    ng.get(ZONES[1], "/x");
    assert_total(&ng, 1, "buckets back on: a fresh zone");
    let log = ng.error_log();
    assert!(!log.contains("[emerg]") && !log.contains("[alert]"), "{}", log);
}
