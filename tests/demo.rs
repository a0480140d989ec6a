//! The demo and the seed's example configuration, checked the way a user checks them: with a
//! curl to `/status` after some traffic.
//!
//! Both configurations are rendered by `nginx-conf/render-conf.sh`, the script `demo.sh` runs,
//! and started in the foreground (`daemon off` is in them) as `nginx -p PREFIX -c
//! conf/nginx.conf`, like the demo does. The demo gets the rounds of requests listed in
//! `nginx-conf/demo-traffic.txt`, the file `demo.sh`'s traffic loop reads. The counts on the
//! status page must equal what the client sent and received, and the per-peer attempts what
//! the demo's upstream configuration implies.
//!
//! Run with `cargo test --release --test demo`.

mod common;

use common::*;
use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File};
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];
const NOGROUPS: &str = "::nogroups";

/// Rounds of the demo's traffic the test sends (demo.sh sends one a second).
const ROUNDS: usize = 3;

/// `fail_timeout` of the demo's closed peer: down for this long after its failure.
const CLOSED_FAIL_TIMEOUT: Duration = Duration::from_secs(5);

/// The seed example's stand-in backends (fixed ports in seed-example.conf).
const SEED_BACKEND_PORTS: [u16; 5] = [18081, 18082, 18083, 18084, 18085];

fn addr(port: u16) -> String {
    format!("127.0.0.1:{}", port)
}

fn repo_file(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

// ---------------------------------------------------------------------------------------------
// Commands with a time limit
// ---------------------------------------------------------------------------------------------

/// Runs `cmd` (stdout as the caller set it, stderr captured) for at most `limit`; returns
/// (exit success, stderr).
fn run_bounded(cmd: &mut Command, limit: Duration) -> (bool, String) {
    let mut child = cmd
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {:?}: {}", cmd, e));
    let status = poll(limit, || child.try_wait().expect("try_wait"));
    let status = status.unwrap_or_else(|| {
        let _ = child.kill();
        let _ = child.wait();
        panic!("{:?} did not finish within {:?}", cmd, limit)
    });
    let out = child.wait_with_output().expect("wait_with_output");
    (
        status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Fills in `conf` (a file under nginx-conf/) for `port` with nginx-conf/render-conf.sh, the
/// script demo.sh runs, into PREFIX/conf/nginx.conf.
fn render(conf: &str, port: u16, prefix: &Path) {
    let out = prefix.join("conf/nginx.conf");
    let (ok, err) = run_bounded(
        Command::new("bash")
            .arg(repo_file("nginx-conf/render-conf.sh"))
            .arg(repo_file(conf))
            .arg(module_path())
            .arg(port.to_string())
            .stdout(File::create(&out).expect("create conf/nginx.conf")),
        PROCESS_TIMEOUT,
    );
    assert!(ok, "render-conf.sh {} {} failed:\n{}", conf, port, err);
}

/// `nginx -t` on PREFIX/conf/nginx.conf (demo.sh runs it before starting nginx).
fn assert_nginx_t(prefix: &Path) {
    let (ok, out) = run_bounded(
        Command::new(nginx_binary())
            .arg("-t")
            .arg("-p")
            .arg(prefix)
            .arg("-c")
            .arg("conf/nginx.conf")
            .stdout(Stdio::null()),
        PROCESS_TIMEOUT,
    );
    assert!(
        ok && out.contains("syntax is ok") && out.contains("test is successful"),
        "nginx -t failed:\n{}\n--- nginx.conf ---\n{}",
        out,
        fs::read_to_string(prefix.join("conf/nginx.conf")).unwrap_or_default()
    );
}

// ---------------------------------------------------------------------------------------------
// Ports
// ---------------------------------------------------------------------------------------------

/// A base port for the demo's layout (render-conf.sh: PORT, PORT+1..PORT+3 listen, PORT+9 is
/// the closed peer) where PORT..PORT+3 could be bound a moment ago, and PORT+9 held closed.
/// Candidates are below the kernel's ephemeral range (32768-60999 by default), where the other
/// tests' `free_ports` and outgoing connections take their ports, and above the seed example's
/// fixed 18081-18085.
fn demo_ports() -> (u16, ClosedPort) {
    let mut x = u64::from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .subsec_nanos(),
    ) ^ (u64::from(std::process::id()) << 32);
    for _ in 0..500 {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let base = 20000 + ((x >> 33) % 1275) as u16 * 10; // base + 9 <= 32749
        let held: Option<Vec<TcpListener>> = (0..=3)
            .map(|i| TcpListener::bind((Ipv4Addr::LOCALHOST, base + i)).ok())
            .collect();
        let Some(held) = held else { continue };
        let Some(closed) = ClosedPort::at(base + 9) else {
            continue;
        };
        drop(held);
        return (base, closed);
    }
    panic!("no base port in 20000-32749 with PORT..PORT+3 and PORT+9 free after 500 tries");
}

// ---------------------------------------------------------------------------------------------
// An nginx in the foreground (`daemon off`), as demo.sh runs it
// ---------------------------------------------------------------------------------------------

fn cmdline(pid: u32) -> String {
    fs::read(format!("/proc/{}/cmdline", pid))
        .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
        .unwrap_or_default()
}

/// The nginx master, a child of this test process, and its prefix. Stopped on Drop.
struct Foreground {
    child: Child,
    prefix: PathBuf,
    stopped: bool,
}

impl Foreground {
    /// Starts `nginx -p PREFIX -c conf/nginx.conf` and waits (bounded) for `workers` workers.
    /// Err(output) when a port was taken ("Address already in use"): the caller retries.
    fn start(prefix: &Path, workers: usize) -> Result<Foreground, String> {
        let out = File::create(prefix.join("logs/stderr.log")).expect("create logs/stderr.log");
        let child = Command::new(nginx_binary())
            .arg("-p")
            .arg(prefix)
            .arg("-c")
            .arg("conf/nginx.conf")
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("dup"))
            .stderr(out)
            .spawn()
            .expect("spawn nginx");
        let mut n = Foreground {
            child,
            prefix: prefix.to_path_buf(),
            stopped: false,
        };
        // The master binds the ports before it starts the workers.
        let ready = poll(PROCESS_TIMEOUT, || match n.child.try_wait().expect("try_wait") {
            Some(status) => Some(Err(status)),
            None => (n.worker_pids().len() == workers).then_some(Ok(())),
        });
        match ready {
            Some(Ok(())) => Ok(n),
            Some(Err(status)) => {
                n.stopped = true;
                let out = format!(
                    "{}{}",
                    fs::read_to_string(prefix.join("logs/stderr.log")).unwrap_or_default(),
                    n.error_log()
                );
                if out.contains("Address already in use") {
                    return Err(out);
                }
                panic!(
                    "nginx exited ({}) at start (prefix {}):\n{}\n--- nginx.conf ---\n{}",
                    status,
                    prefix.display(),
                    out,
                    fs::read_to_string(prefix.join("conf/nginx.conf")).unwrap_or_default()
                )
            }
            None => panic!(
                "nginx (pid {}) did not get {} workers within {:?}; children {:?}\n{}",
                n.pid(),
                workers,
                PROCESS_TIMEOUT,
                children_of(n.pid()),
                n.error_log()
            ),
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn worker_pids(&self) -> Vec<u32> {
        children_of(self.pid())
            .into_iter()
            .filter(|&p| cmdline(p).contains("worker process"))
            .collect()
    }

    fn error_log(&self) -> String {
        fs::read_to_string(self.prefix.join("logs/error.log")).unwrap_or_default()
    }

    /// Graceful stop, as demo.sh does it: SIGQUIT to the master, a bounded wait for it and its
    /// children, then SIGKILL to those of them that are left.
    fn stop(&mut self) {
        if self.stopped {
            return;
        }
        self.stopped = true;
        let pid = self.pid();
        let kids = children_of(pid);
        // SAFETY: kill(2) on the pid of our own child, which is not reaped yet.
        unsafe { libc::kill(pid as i32, libc::SIGQUIT) };
        let gone = poll(PROCESS_TIMEOUT, || {
            let master_done = self.child.try_wait().expect("try_wait").is_some();
            (master_done && kids.iter().all(|&k| !alive(k))).then_some(())
        });
        if gone.is_none() {
            let mut all = children_of(pid);
            all.extend(kids);
            let _ = self.child.kill();
            for k in all {
                if alive(k) {
                    // SAFETY: kill(2) on a pid that was one of our nginx's workers a moment ago.
                    unsafe { libc::kill(k as i32, libc::SIGKILL) };
                }
            }
            let _ = self.child.wait();
            panic!(
                "nginx (pid {}) did not stop within {:?} of SIGQUIT",
                pid, PROCESS_TIMEOUT
            );
        }
    }
}

impl Drop for Foreground {
    fn drop(&mut self) {
        self.stop();
        if thread::panicking() {
            let log = self.error_log();
            let lines: Vec<&str> = log.lines().collect();
            eprintln!(
                "nginx prefix kept at {}\n--- error.log (last 60 lines) ---\n{}",
                self.prefix.display(),
                lines[lines.len().saturating_sub(60)..].join("\n")
            );
        } else {
            let _ = fs::remove_dir_all(&self.prefix);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Scraping and reading the counts
// ---------------------------------------------------------------------------------------------

/// GET /status (the default server of `port` carries it); checks status and content type.
fn scrape(port: u16) -> (Metrics, String) {
    let r = http_request(port, "GET", "/status", "localhost", &[], b"");
    assert_eq!(r.status, 200, "/status answered {}: {}", r.status, r.body_text());
    assert_eq!(r.header("content-type"), Some(STATUS_CONTENT_TYPE));
    let text = r.body_text();
    let m = Metrics::parse(&text).unwrap_or_else(|e| panic!("/status does not parse: {}\n{}", e, text));
    (m, text)
}

/// Requests, bytes in, bytes out and responses by class: of a server zone or an upstream peer.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Counts {
    requests: u64,
    bytes_in: u64,
    bytes_out: u64,
    classes: [u64; 5],
}

impl Counts {
    fn add_response(&mut self, r: &Response) {
        self.requests += 1;
        self.bytes_in += r.bytes_written;
        self.bytes_out += r.bytes_read;
        self.classes[usize::from(r.status / 100 - 1)] += 1;
    }
}

/// A sample as an integer; u64::MAX when it is missing (never equal to an expected count).
fn int(m: &Metrics, name: &str, labels: &[(&str, &str)]) -> u64 {
    m.get(name, labels).map_or(u64::MAX, |v| v as u64)
}

fn zone_counts(m: &Metrics, zone: &str) -> Counts {
    let z = ("zone", zone);
    let mut classes = [0; 5];
    for (i, c) in CLASSES.iter().enumerate() {
        classes[i] = int(m, "nginx_vts_server_responses_total", &[z, ("status", c)]);
    }
    Counts {
        requests: int(m, "nginx_vts_server_requests_total", &[z]),
        bytes_in: int(m, "nginx_vts_server_bytes_total", &[z, ("direction", "in")]),
        bytes_out: int(m, "nginx_vts_server_bytes_total", &[z, ("direction", "out")]),
        classes,
    }
}

/// A peer's attempts; `bytes_in` is what came from the peer, `bytes_out` what went to it.
fn peer_counts(m: &Metrics, group: &str, server: &str) -> Counts {
    let id = [("upstream", group), ("server", server)];
    let mut classes = [0; 5];
    for (i, c) in CLASSES.iter().enumerate() {
        classes[i] = int(
            m,
            "nginx_vts_upstream_responses_total",
            &[id[0], id[1], ("status", c)],
        );
    }
    Counts {
        requests: int(m, "nginx_vts_upstream_requests_total", &id),
        bytes_in: int(
            m,
            "nginx_vts_upstream_bytes_total",
            &[id[0], id[1], ("direction", "in")],
        ),
        bytes_out: int(
            m,
            "nginx_vts_upstream_bytes_total",
            &[id[0], id[1], ("direction", "out")],
        ),
        classes,
    }
}

/// The (upstream, server) pairs listed by `nginx_vts_upstream_requests_total`.
fn peer_rows(m: &Metrics) -> BTreeSet<(String, String)> {
    m.find("nginx_vts_upstream_requests_total", &[])
        .into_iter()
        .map(|(l, _)| {
            let get = |k: &str| {
                l.iter()
                    .find(|(lk, _)| lk == k)
                    .map(|(_, v)| v.clone())
                    .unwrap_or_default()
            };
            (get("upstream"), get("server"))
        })
        .collect()
}

/// What a scrape must show, all exact.
#[derive(Debug, Default)]
struct Expected {
    /// Zones the client talked to: everything as the client counted it.
    front_zones: BTreeMap<String, Counts>,
    /// Backend zones: requests, classes, and the addresses their server listens on; their
    /// bytes must equal what the peer rows at those addresses (all groups) exchanged.
    backend_zones: BTreeMap<String, (u64, [u64; 5], Vec<String>)>,
    /// Every configured or used peer: (attempts, classes).
    peers: BTreeMap<(String, String), (u64, [u64; 5])>,
    /// Peers that must show up=0 (all others: 1).
    down: BTreeSet<(String, String)>,
    /// Peers whose bytes must be 0 both ways (never connected).
    no_bytes: BTreeSet<(String, String)>,
    /// Connections nginx accepted besides the scrapes: client requests and upstream connects.
    connections: u64,
}

/// Every difference between the scrape `m` (the test's `scrapes`-th connection to /status)
/// and `exp`.
fn mismatches(m: &Metrics, exp: &Expected, scrapes: u64) -> Vec<String> {
    let mut bad = Vec::new();
    let zones: BTreeSet<String> = m.label_values("nginx_vts_server_requests_total", "zone");
    let want_zones: BTreeSet<String> = exp
        .front_zones
        .keys()
        .chain(exp.backend_zones.keys())
        .cloned()
        .collect();
    if zones != want_zones {
        bad.push(format!("server zones {:?}, expected {:?}", zones, want_zones));
    }
    for (z, want) in &exp.front_zones {
        let got = zone_counts(m, z);
        if got != *want {
            bad.push(format!("zone {}: {:?}, the client counted {:?}", z, got, want));
        }
    }
    let rows = peer_rows(m);
    let want_rows: BTreeSet<(String, String)> = exp.peers.keys().cloned().collect();
    if rows != want_rows {
        bad.push(format!("upstream rows {:?}, expected {:?}", rows, want_rows));
    }
    for ((g, s), (attempts, classes)) in &exp.peers {
        let got = peer_counts(m, g, s);
        if (got.requests, got.classes) != (*attempts, *classes) {
            bad.push(format!(
                "peer {} {}: {} attempts {:?}, expected {} {:?}",
                g, s, got.requests, got.classes, attempts, classes
            ));
        }
        let no_bytes = exp.no_bytes.contains(&(g.clone(), s.clone()));
        if no_bytes && (got.bytes_in, got.bytes_out) != (0, 0) {
            bad.push(format!("peer {} {} (never connected): bytes {:?}", g, s, got));
        }
        if !no_bytes && *attempts > 0 && (got.bytes_in == 0 || got.bytes_out == 0) {
            bad.push(format!(
                "peer {} {}: no bytes counted for its attempts: {:?}",
                g, s, got
            ));
        }
        let want_up = if exp.down.contains(&(g.clone(), s.clone())) {
            0
        } else {
            1
        };
        let up = int(
            m,
            "nginx_vts_upstream_server_up",
            &[("upstream", g), ("server", s)],
        );
        if up != want_up {
            bad.push(format!("peer {} {}: up {}, expected {}", g, s, up, want_up));
        }
    }
    for (z, (requests, classes, addrs)) in &exp.backend_zones {
        let got = zone_counts(m, z);
        // What the peers at this zone's addresses exchanged is what the zone received and sent.
        let (mut to_peer, mut from_peer) = (0, 0);
        for (g, s) in rows.iter().filter(|(_, s)| addrs.contains(s)) {
            let p = peer_counts(m, g, s);
            to_peer += p.bytes_out;
            from_peer += p.bytes_in;
        }
        let want = Counts {
            requests: *requests,
            bytes_in: to_peer,
            bytes_out: from_peer,
            classes: *classes,
        };
        if got != want {
            bad.push(format!(
                "backend zone {}: {:?}, expected {:?} (bytes: its peers' rows at {:?})",
                z, got, want, addrs
            ));
        }
    }
    let accepted = exp.connections + scrapes;
    for state in ["accepted", "handled"] {
        let got = int(m, "nginx_vts_connections_total", &[("state", state)]);
        if got != accepted {
            bad.push(format!("connections {}: {}, expected {}", state, got, accepted));
        }
    }
    bad
}

/// Scrapes until nothing differs from `exp` or SETTLE_TIMEOUT passes (a backend counts its
/// request in its own log phase, which can come after the front's answer reached the client);
/// panics with the differences. Returns the last scrape and its text. `scrapes` counts the
/// test's connections to /status (before this call, and the ones it makes). `context` is
/// added to the panic message.
fn settle(port: u16, exp: &Expected, scrapes: &mut u64, context: &dyn Fn() -> String) -> (Metrics, String) {
    let deadline = Instant::now() + SETTLE_TIMEOUT;
    loop {
        let (m, text) = scrape(port);
        *scrapes += 1;
        let bad = mismatches(&m, exp, *scrapes);
        if bad.is_empty() {
            return (m, text);
        }
        if Instant::now() >= deadline {
            panic!(
                "after {:?} the status page still differs from the traffic:\n  {}\n({})\n--- /status ---\n{}",
                SETTLE_TIMEOUT,
                bad.join("\n  "),
                context(),
                text
            );
        }
        thread::sleep(Duration::from_millis(25));
    }
}

/// The checks every scrape of these configurations passes whatever the traffic: the seed's
/// families with HELP and TYPE, sane times, histogram counts equal to the request counters,
/// and a clean `promtool check metrics`.
fn assert_shape(m: &Metrics, text: &str) {
    for (family, ty) in SEED_FAMILIES {
        assert_family(m, family, ty);
    }
    let info = m.find("nginx_vts_info", &[]);
    assert_eq!(info.len(), 1, "one nginx_vts_info series: {:?}", info);
    assert_eq!(info[0].1, 1.0);
    for state in ["active", "reading", "writing", "waiting"] {
        assert!(
            m.get("nginx_vts_connections", &[("state", state)]).is_some(),
            "nginx_vts_connections{{state={:?}}}",
            state
        );
    }
    // The scrape itself is an active connection being written to.
    assert!(m.value("nginx_vts_connections", &[("state", "active")]) >= 1.0);
    assert!(m.value("nginx_vts_connections", &[("state", "writing")]) >= 1.0);
    for zone in m.label_values("nginx_vts_server_requests_total", "zone") {
        let z = ("zone", zone.as_str());
        let t = |ty| m.value("nginx_vts_server_request_seconds", &[z, ("type", ty)]);
        let (avg, min, max) = (t("avg"), t("min"), t("max"));
        assert!(
            0.0 <= min && min <= avg && avg <= max && max < 60.0,
            "zone {}: request seconds avg {} min {} max {}",
            zone,
            avg,
            min,
            max
        );
        assert_eq!(
            m.value("nginx_vts_server_request_duration_seconds_count", &[z]),
            m.value("nginx_vts_server_requests_total", &[z]),
            "zone {}: histogram count vs requests",
            zone
        );
    }
    for (g, s) in peer_rows(m) {
        let id = [("upstream", g.as_str()), ("server", s.as_str())];
        for ty in ["request_avg", "upstream_avg"] {
            let v = m.value(
                "nginx_vts_upstream_response_seconds",
                &[id[0], id[1], ("type", ty)],
            );
            assert!((0.0..60.0).contains(&v), "{} {} {}: {}", g, s, ty, v);
        }
        let c = peer_counts(m, &g, &s);
        assert_eq!(
            c.classes.iter().sum::<u64>(),
            c.requests,
            "{} {}: classes vs attempts",
            g,
            s
        );
    }
    assert_promtool_clean(text);
}

// ---------------------------------------------------------------------------------------------
// The demo
// ---------------------------------------------------------------------------------------------

/// One round of the demo's traffic: the ("HOST", "PATH") lines of nginx-conf/demo-traffic.txt,
/// read the way demo.sh reads them (blank lines and `#` lines skipped).
fn demo_round() -> Vec<(String, String)> {
    let file = repo_file("nginx-conf/demo-traffic.txt");
    let text = fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {}", file.display(), e));
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let mut it = l.split_whitespace();
            match (it.next(), it.next(), it.next()) {
                (Some(h), Some(p), None) if p.starts_with('/') => (h.to_string(), p.to_string()),
                _ => panic!("{}: not a \"HOST PATH\" line: {:?}", file.display(), l),
            }
        })
        .collect()
}

/// What demo.conf does with a request, as this test reads the configuration: the status the
/// client gets and the upstream group it is proxied to, if any.
fn demo_route(host: &str, path: &str) -> (u16, Option<&'static str>) {
    match host {
        "example.com" if path.starts_with("/status") => panic!("the traffic must not scrape"),
        "example.com" if path.starts_with("/api/") => (200, Some("api_backend")),
        "example.com" => (200, Some("backend")),
        "static.example.com" if path.starts_with("/missing") => (404, None),
        "static.example.com" => (200, None),
        "shop.example.com" if path.starts_with("/checkout") => (503, None),
        // proxy_pass to an address, with no upstream block.
        "shop.example.com" => (200, Some(NOGROUPS)),
        _ => panic!("demo.conf has no server_name {:?}", host),
    }
}

/// Renders demo.conf for a free base port, checks it with `nginx -t` and starts it; retries
/// when a port was taken in between. Returns nginx, the base port and the closed peer's socket.
fn start_demo() -> (Foreground, u16, ClosedPort) {
    let mut last = String::new();
    for _ in 0..5 {
        let (base, closed) = demo_ports();
        let prefix = fresh_prefix("demo");
        render("nginx-conf/demo.conf", base, &prefix);
        assert_nginx_t(&prefix);
        match Foreground::start(&prefix, 2) {
            Ok(n) => return (n, base, closed),
            Err(out) => {
                last = out;
                let _ = fs::remove_dir_all(&prefix);
            }
        }
    }
    panic!(
        "could not start the demo on free ports after 5 attempts:\n{}",
        last
    );
}

/// The demo (nginx-conf/demo.conf as render-conf.sh fills it in) after ROUNDS rounds of the
/// traffic demo.sh sends: every count on /status is what the client sent and received, and
/// the per-peer attempts are what the upstream configuration implies.
#[test]
fn demo_status_counts_the_demo_traffic() {
    let round = demo_round();
    assert!(!round.is_empty(), "demo-traffic.txt has no requests");
    let (nginx, base, _closed) = start_demo();
    let (b1, b2, b3, dead) = (addr(base + 1), addr(base + 2), addr(base + 3), addr(base + 9));
    let backend_of_body = |body: &str| match body {
        "backend 1\n" => b1.clone(),
        "backend 2\n" => b2.clone(),
        "backend 3\n" => b3.clone(),
        _ => panic!("not a demo backend's answer: {:?}", body),
    };

    // Before any traffic: every configured peer is listed with zeros and is up, the implicit
    // upstream of shop's `proxy_pass http://127.0.0.1:B1` included.
    let mut scrapes = 0u64;
    let (m, _) = scrape(base);
    scrapes += 1;
    let configured: BTreeSet<(String, String)> = [
        ("backend", &b1),
        ("backend", &b2),
        ("backend", &b3),
        ("api_backend", &b3),
        ("api_backend", &dead),
        (NOGROUPS, &b1),
    ]
    .iter()
    .map(|(g, s)| (g.to_string(), s.to_string()))
    .collect();
    assert_eq!(peer_rows(&m), configured, "upstream rows before traffic");
    for (g, s) in &configured {
        assert_eq!(
            peer_counts(&m, g, s),
            Counts::default(),
            "{} {} before traffic",
            g,
            s
        );
        assert_eq!(
            m.value("nginx_vts_upstream_server_up", &[("upstream", g), ("server", s)]),
            1.0
        );
    }
    // So is every server zone (each server block's first server_name).
    let zones: BTreeSet<String> = m.label_values("nginx_vts_server_requests_total", "zone");
    let names = [
        "example.com",
        "static.example.com",
        "shop.example.com",
        "backend1",
        "backend2",
        "backend3",
    ];
    assert_eq!(
        zones,
        names.iter().map(|z| z.to_string()).collect(),
        "zones before traffic"
    );
    for z in names {
        assert_eq!(zone_counts(&m, z), Counts::default(), "zone {} before traffic", z);
    }

    // The traffic, in demo.sh's order, one request after the other.
    let mut exp = Expected::default();
    let mut to_peer: BTreeMap<(String, String), u64> = BTreeMap::new();
    let mut api_requests = 0u64;
    let mut first_api_to_dead = None;
    for r in 0..ROUNDS {
        for (host, path) in &round {
            let (status, group) = demo_route(host, path);
            if group == Some("api_backend") {
                api_requests += 1;
                if api_requests == 2 {
                    first_api_to_dead = Some(Instant::now());
                }
            }
            let resp = http_request(base, "GET", path, host, &[], b"");
            assert_eq!(
                resp.status,
                status,
                "round {} GET {} Host {}: {}",
                r,
                path,
                host,
                resp.body_text()
            );
            // Each server's first server_name names its zone; the traffic uses those.
            exp.front_zones
                .entry(host.clone())
                .or_default()
                .add_response(&resp);
            if let Some(g) = group {
                *to_peer
                    .entry((g.to_string(), backend_of_body(&resp.body_text())))
                    .or_default() += 1;
            }
        }
    }

    // Round robin over two equal peers, shared by the workers (the upstreams have a zone),
    // starts with the first: `backend` alternates B1, B2, B1 ... (B3 is a backup, unused).
    let n_backend: u64 = to_peer
        .iter()
        .filter(|((g, _), _)| g == "backend")
        .map(|(_, n)| n)
        .sum();
    let get = |g: &str, s: &str| to_peer.get(&(g.to_string(), s.to_string())).copied().unwrap_or(0);
    assert_eq!(
        (get("backend", &b1), get("backend", &b2), get("backend", &b3)),
        (n_backend.div_ceil(2), n_backend / 2, 0),
        "which backend answered (by the bodies)"
    );
    // `api_backend` is B3 and the closed peer (max_fails=1 fail_timeout=5s): the first /api/
    // request goes to B3, the second to the closed peer, whose refused connect is counted for
    // it (nginx records 502) and retried on B3; the peer is then down for 5 s, so every later
    // request goes to B3 alone. The client sees B3's answer each time.
    assert!(api_requests >= 2, "the demo traffic must reach the closed peer");
    assert_eq!(
        get("api_backend", &b3),
        api_requests,
        "every /api/ answer is B3's"
    );

    let ok = |n: u64| (n, [0, n, 0, 0, 0]);
    for (g, s) in &configured {
        exp.peers.insert((g.clone(), s.clone()), ok(get(g, s)));
    }
    for ((g, s), n) in &to_peer {
        exp.peers.insert((g.clone(), s.clone()), ok(*n));
    }
    let dead_key = ("api_backend".to_string(), dead.clone());
    exp.peers.insert(dead_key.clone(), (1, [0, 0, 0, 0, 1]));
    exp.down.insert(dead_key.clone());
    exp.no_bytes.insert(dead_key);
    for (zone, a) in [("backend1", &b1), ("backend2", &b2), ("backend3", &b3)] {
        let n: u64 = to_peer.iter().filter(|((_, s), _)| s == a).map(|(_, n)| n).sum();
        let (n, classes) = ok(n);
        exp.backend_zones
            .insert(zone.to_string(), (n, classes, vec![a.clone()]));
    }
    // Accepted connections: one per client request, one per upstream attempt that connected.
    let client: u64 = exp.front_zones.values().map(|c| c.requests).sum();
    exp.connections = client + to_peer.values().sum::<u64>();

    let failed_at = first_api_to_dead.expect("second /api/ request");
    let context = || {
        format!(
            "the closed peer failed {:?} before the last scrape; its fail_timeout is {:?}",
            failed_at.elapsed(),
            CLOSED_FAIL_TIMEOUT
        )
    };
    let (m, text) = settle(base, &exp, &mut scrapes, &context);
    // The closed peer must still be within its fail_timeout for its up=0 and its single
    // attempt to hold: the traffic and the scrapes take a fraction of a second.
    assert!(
        failed_at.elapsed() < CLOSED_FAIL_TIMEOUT - Duration::from_secs(1),
        "{} (a very slow machine?)",
        context()
    );
    assert_shape(&m, &text);
    eprintln!(
        "demo on 127.0.0.1:{}: {} rounds of {} requests, {} scrapes; all counts exact",
        base,
        ROUNDS,
        round.len(),
        scrapes
    );
    drop(nginx);
}

// ---------------------------------------------------------------------------------------------
// The seed example
// ---------------------------------------------------------------------------------------------

/// nginx-conf/seed-example.conf, filled in by render-conf.sh, passes `nginx -t`, starts, and
/// counts what it is sent. Its stand-in backends listen on the fixed ports 18081-18085 (no
/// upstream `zone`, one worker: round robin in that worker, from the first peer).
#[test]
fn seed_example_runs_and_counts_what_it_is_sent() {
    let mut started = None;
    let mut last = String::new();
    for _ in 0..10 {
        let port = free_port();
        let prefix = fresh_prefix("seed");
        render("nginx-conf/seed-example.conf", port, &prefix);
        assert_nginx_t(&prefix);
        match Foreground::start(&prefix, 1) {
            Ok(n) => {
                started = Some((n, port));
                break;
            }
            Err(out) => {
                // Another nginx (a parallel run of this test, `demo.sh --seed`) may hold
                // 18081-18085 for a while.
                last = out;
                let _ = fs::remove_dir_all(&prefix);
                thread::sleep(Duration::from_secs(1));
            }
        }
    }
    let (nginx, port) = started.unwrap_or_else(|| {
        panic!(
            "could not start the seed example (its backends need ports {:?}) after 10 attempts:\n{}",
            SEED_BACKEND_PORTS, last
        )
    });
    let [p1, p2, p3, p4, p5] = SEED_BACKEND_PORTS.map(addr);

    let mut scrapes = 0u64;
    let (m, _) = scrape(port);
    scrapes += 1;
    let configured: BTreeSet<(String, String)> = [
        ("backend", &p1),
        ("backend", &p2),
        ("backend", &p3),
        ("api_backend", &p4),
        ("api_backend", &p5),
    ]
    .iter()
    .map(|(g, s)| (g.to_string(), s.to_string()))
    .collect();
    assert_eq!(peer_rows(&m), configured, "upstream rows before traffic");

    let mut exp = Expected::default();
    let mut to_peer: BTreeMap<(String, String), u64> = BTreeMap::new();
    for i in 0..3 {
        for (path, group) in [("/", "backend"), ("/api/users", "api_backend")] {
            let r = http_request(port, "GET", path, "example.com", &[], b"");
            assert_eq!(r.status, 200, "GET {} #{}: {}", path, i, r.body_text());
            let body = r.body_text();
            let peer = body
                .strip_prefix("backend ")
                .and_then(|p| p.trim_end().parse::<u16>().ok())
                .unwrap_or_else(|| panic!("not a stand-in backend's answer: {:?}", body));
            exp.front_zones
                .entry("example.com".into())
                .or_default()
                .add_response(&r);
            *to_peer.entry((group.to_string(), addr(peer))).or_default() += 1;
        }
    }
    // Round robin from the first peer, the backup unused.
    let get = |g: &str, s: &str| to_peer.get(&(g.to_string(), s.to_string())).copied().unwrap_or(0);
    assert_eq!(
        [get("backend", &p1), get("backend", &p2), get("backend", &p3)],
        [2, 1, 0],
        "backend peers that answered"
    );
    assert_eq!(
        [get("api_backend", &p4), get("api_backend", &p5)],
        [2, 1],
        "api_backend peers"
    );

    let ok = |n: u64| (n, [0, n, 0, 0, 0]);
    for (g, s) in &configured {
        exp.peers.insert((g.clone(), s.clone()), ok(get(g, s)));
    }
    // The stand-ins are one server block (zone "backends") listening on all five ports.
    exp.backend_zones.insert(
        "backends".into(),
        (6, [0, 6, 0, 0, 0], SEED_BACKEND_PORTS.map(addr).to_vec()),
    );
    exp.connections = 6 + 6;
    let (m, text) = settle(port, &exp, &mut scrapes, &String::new);
    assert_shape(&m, &text);
    drop(nginx);
}
