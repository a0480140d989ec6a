//! Integration-test harness: runs the nginx that cargo built with the module `.so`, talks
//! HTTP/1.1 to it over plain `TcpStream`s, parses the Prometheus text it serves and lints it
//! with `promtool`.
//!
//! Only std (and libc, for a socket std cannot make) is used: the tests must not link the
//! module (it references nginx symbols).
//! Every wait is bounded; every nginx gets its own prefix directory and ports, so tests may run
//! in parallel threads.
#![allow(dead_code)]

pub mod json;
pub mod openmetrics;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::fs;
use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The families of the seed README's output sample, with their types.
pub const SEED_FAMILIES: [(&str, &str); 12] = [
    ("nginx_vts_info", "gauge"),
    ("nginx_vts_connections", "gauge"),
    ("nginx_vts_connections_total", "counter"),
    ("nginx_vts_server_requests_total", "counter"),
    ("nginx_vts_server_bytes_total", "counter"),
    ("nginx_vts_server_responses_total", "counter"),
    ("nginx_vts_server_request_seconds", "gauge"),
    ("nginx_vts_upstream_requests_total", "counter"),
    ("nginx_vts_upstream_bytes_total", "counter"),
    ("nginx_vts_upstream_responses_total", "counter"),
    ("nginx_vts_upstream_response_seconds", "gauge"),
    ("nginx_vts_upstream_server_up", "gauge"),
];

/// Upper bound for starting nginx, a reload, a stop.
pub const PROCESS_TIMEOUT: Duration = Duration::from_secs(30);
/// Upper bound for polling the status page until counts settle.
pub const SETTLE_TIMEOUT: Duration = Duration::from_secs(15);
/// Connect / read / write timeout of the HTTP client.
pub const IO_TIMEOUT: Duration = Duration::from_secs(15);

/// The exact Content-Type of the status page.
pub const STATUS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

// ---------------------------------------------------------------------------------------------
// Locations of nginx and of the module
// ---------------------------------------------------------------------------------------------

/// The nginx binary that nginx-sys built for this profile (set by build.rs at compile time).
pub fn nginx_binary() -> PathBuf {
    let p = PathBuf::from(env!("NGX_VTS_NGINX_BINARY"));
    assert!(
        p.is_file(),
        "nginx binary {} (NGX_VTS_NGINX_BINARY from build.rs) does not exist; run `cargo build --release` first",
        p.display()
    );
    p
}

/// The module `.so` of the same profile as the test binary (`target/<profile>/deps/<test>`).
///
/// `cargo test` builds the cdylib into `target/<profile>/deps/libngx_vts.so` next to the test
/// binary, but only `cargo build` copies it up to `target/<profile>/libngx_vts.so` (which can
/// then be older than the code under test). So the `deps/` one is preferred.
///
/// `NGX_VTS_MODULE=/path/to/module.so` runs the tests against another module instead, e.g.
/// the C nginx-module-vts, to check that a compatibility test expects what the C module does
/// (the tests that use only `vhost_traffic_status_*` directives).
pub fn module_path() -> PathBuf {
    if let Some(p) = std::env::var_os("NGX_VTS_MODULE") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("current_exe");
    let deps_dir = exe
        .parent()
        .unwrap_or_else(|| panic!("unexpected test binary location {}", exe.display()));
    let candidates = [
        deps_dir.join("libngx_vts.so"),
        deps_dir
            .parent()
            .map(|p| p.join("libngx_vts.so"))
            .unwrap_or_default(),
    ];
    candidates
        .iter()
        .find(|p| p.is_file())
        .cloned()
        .unwrap_or_else(|| {
            panic!(
                "module libngx_vts.so is missing (looked at {} and {}): run the tests with \
             `cargo test --release` (which builds it), or `cargo build --release` first",
                candidates[0].display(),
                candidates[1].display()
            )
        })
}

/// A port on 127.0.0.1 that was free a moment ago (bind to port 0, take the port, drop it).
pub fn free_port() -> u16 {
    free_ports(1)[0]
}

/// `n` distinct ports on 127.0.0.1 that were free a moment ago. All listeners are held until
/// every port is taken: dropping each one first lets the kernel hand out the same port twice.
pub fn free_ports(n: usize) -> Vec<u16> {
    let held: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind 127.0.0.1:0"))
        .collect();
    held.iter().map(|l| l.local_addr().unwrap().port()).collect()
}

/// A port on 127.0.0.1 where every connect is refused for as long as this value lives: a TCP
/// socket bound without SO_REUSEADDR and never listening. A port that was merely free can be
/// taken by a parallel test's nginx (or be handed out twice), and then the "dead" peer answers;
/// this one cannot be bound by anyone else (nginx's SO_REUSEADDR does not override a socket
/// without it) and the kernel skips it for outgoing connections.
pub struct ClosedPort {
    fd: i32,
    port: u16,
}

impl ClosedPort {
    pub fn new() -> ClosedPort {
        ClosedPort::at(0).unwrap_or_else(|| panic!("bind 127.0.0.1:0: {}", std::io::Error::last_os_error()))
    }

    /// The same at a chosen port (0: any free one); `None` if the port cannot be bound.
    pub fn at(port: u16) -> Option<ClosedPort> {
        // SAFETY: plain socket syscalls on a descriptor this function owns (closed on failure,
        // else by Drop); `sa` is a fully initialised sockaddr_in whose size is passed with it.
        unsafe {
            let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
            assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
            let mut sa: libc::sockaddr_in = std::mem::zeroed();
            sa.sin_family = libc::AF_INET as libc::sa_family_t;
            sa.sin_addr.s_addr = u32::from(Ipv4Addr::LOCALHOST).to_be();
            sa.sin_port = port.to_be();
            let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
            if libc::bind(fd, &sa as *const _ as *const libc::sockaddr, len) != 0 {
                libc::close(fd);
                return None;
            }
            let mut len = len;
            let rc = libc::getsockname(fd, &mut sa as *mut _ as *mut libc::sockaddr, &mut len);
            assert!(rc == 0, "getsockname: {}", std::io::Error::last_os_error());
            Some(ClosedPort {
                fd,
                port: u16::from_be(sa.sin_port),
            })
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }
}

impl Drop for ClosedPort {
    fn drop(&mut self) {
        // SAFETY: `fd` is owned by this value and closed once.
        unsafe { libc::close(self.fd) };
    }
}

// ---------------------------------------------------------------------------------------------
// Prefix directories and configuration
// ---------------------------------------------------------------------------------------------

static PREFIX_COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A fresh, empty nginx prefix with `logs/` and `conf/`.
pub fn fresh_prefix(tag: &str) -> PathBuf {
    let n = PREFIX_COUNTER.fetch_add(1, Ordering::SeqCst);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let dir = std::env::temp_dir().join(format!(
        "ngx_vts-test-{}-{}-{}-{}",
        tag,
        std::process::id(),
        n,
        nanos
    ));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(dir.join("logs")).expect("create prefix/logs");
    fs::create_dir_all(dir.join("conf")).expect("create prefix/conf");
    dir
}

/// The whole nginx.conf around the test's `http {}` body.
pub fn render_conf(workers: u32, http_body: &str) -> String {
    let mut s = String::new();
    writeln!(s, "load_module {};", module_path().display()).unwrap();
    writeln!(s, "worker_processes {};", workers).unwrap();
    writeln!(s, "error_log logs/error.log info;").unwrap();
    writeln!(s, "pid logs/nginx.pid;").unwrap();
    writeln!(s, "events {{ worker_connections 1024; }}").unwrap();
    writeln!(s, "http {{").unwrap();
    writeln!(s, "    access_log off;").unwrap();
    for line in http_body.lines() {
        writeln!(s, "    {}", line).unwrap();
    }
    writeln!(s, "}}").unwrap();
    s
}

fn output_text(out: &std::process::Output) -> String {
    let mut s = String::from_utf8_lossy(&out.stderr).into_owned();
    s.push_str(&String::from_utf8_lossy(&out.stdout));
    s
}

/// Runs `cmd` with a time limit; returns (exit success, stderr followed by stdout).
fn run_bounded(cmd: &mut Command, limit: Duration) -> (bool, String) {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {:?}: {}", cmd, e));
    let deadline = Instant::now() + limit;
    loop {
        match child.try_wait().expect("try_wait") {
            Some(_) => break,
            None if Instant::now() >= deadline => {
                let _ = child.kill();
                let out = child.wait_with_output().expect("wait_with_output");
                panic!(
                    "{:?} did not finish within {:?}; output:\n{}",
                    cmd,
                    limit,
                    output_text(&out)
                );
            }
            None => thread::sleep(Duration::from_millis(20)),
        }
    }
    let out = child.wait_with_output().expect("wait_with_output");
    (out.status.success(), output_text(&out))
}

/// `nginx -t` on a configuration made of `http_body` (2 workers). Returns (exit success,
/// combined stderr and stdout).
pub fn nginx_t(http_body: &str) -> (bool, String) {
    nginx_t_with(2, http_body)
}

pub fn nginx_t_with(workers: u32, http_body: &str) -> (bool, String) {
    let text = render_conf(workers, http_body); // may panic (no module): before making a prefix
    let prefix = fresh_prefix("t");
    let conf = prefix.join("conf/nginx.conf");
    fs::write(&conf, text).expect("write nginx.conf");
    let res = run_bounded(
        Command::new(nginx_binary())
            .arg("-t")
            .arg("-p")
            .arg(&prefix)
            .arg("-c")
            .arg(&conf),
        PROCESS_TIMEOUT,
    );
    let _ = fs::remove_dir_all(&prefix);
    res
}

// ---------------------------------------------------------------------------------------------
// Processes
// ---------------------------------------------------------------------------------------------

/// (state, ppid) from /proc/<pid>/stat, or None if the process does not exist.
fn proc_stat(pid: u32) -> Option<(char, u32)> {
    let s = fs::read_to_string(format!("/proc/{}/stat", pid)).ok()?;
    // "pid (comm) S ppid ..." -- comm may contain spaces and parentheses: split after the last ')'.
    let rest = &s[s.rfind(')')? + 1..];
    let mut it = rest.split_whitespace();
    let state = it.next()?.chars().next()?;
    let ppid = it.next()?.parse().ok()?;
    Some((state, ppid))
}

/// True if the process exists and is not a zombie.
pub fn alive(pid: u32) -> bool {
    matches!(proc_stat(pid), Some((st, _)) if st != 'Z' && st != 'X')
}

fn cmdline(pid: u32) -> String {
    fs::read(format!("/proc/{}/cmdline", pid))
        .map(|b| String::from_utf8_lossy(&b).replace('\0', " ").trim().to_string())
        .unwrap_or_default()
}

/// Live (non-zombie) children of `parent`, found by scanning /proc/*/stat.
pub fn children_of(parent: u32) -> Vec<u32> {
    let mut v = Vec::new();
    if let Ok(rd) = fs::read_dir("/proc") {
        for e in rd.flatten() {
            if let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) {
                if let Some((st, ppid)) = proc_stat(pid) {
                    if ppid == parent && st != 'Z' && st != 'X' {
                        v.push(pid);
                    }
                }
            }
        }
    }
    v.sort_unstable();
    v
}

fn kill(signal: &str, pid: u32) {
    let _ = Command::new("kill")
        .arg(format!("-{}", signal))
        .arg(pid.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// Polls `f` every 20 ms until it returns Some or `limit` passes.
pub fn poll<T>(limit: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

// ---------------------------------------------------------------------------------------------
// A running nginx
// ---------------------------------------------------------------------------------------------

/// A running nginx (master + workers, daemonized) in its own prefix. Stopped on Drop.
pub struct Nginx {
    pub prefix: PathBuf,
    pub conf: PathBuf,
    pub ports: Vec<u16>,
    pub workers: u32,
    master: u32,
    stopped: bool,
}

impl Nginx {
    /// Starts nginx with 2 workers and 2 free ports; `http_body(&ports)` gives the `http {}` body.
    pub fn start(http_body: impl Fn(&[u16]) -> String) -> Nginx {
        Nginx::start_with(2, 2, http_body)
    }

    /// Starts nginx with `workers` workers and `nports` free ports. Retries with new ports if
    /// a port was taken in between (tests run in parallel).
    pub fn start_with(workers: u32, nports: usize, http_body: impl Fn(&[u16]) -> String) -> Nginx {
        let mut last = String::new();
        for _attempt in 0..5 {
            let ports = free_ports(nports);
            let text = render_conf(workers, &http_body(&ports));
            let prefix = fresh_prefix("run");
            let conf = prefix.join("conf/nginx.conf");
            fs::write(&conf, text).expect("write nginx.conf");
            let (ok, out) = run_bounded(
                Command::new(nginx_binary())
                    .arg("-p")
                    .arg(&prefix)
                    .arg("-c")
                    .arg(&conf),
                PROCESS_TIMEOUT,
            );
            if !ok {
                let log = fs::read_to_string(prefix.join("logs/error.log")).unwrap_or_default();
                if out.contains("Address already in use") || log.contains("Address already in use") {
                    last = out;
                    let _ = fs::remove_dir_all(&prefix);
                    continue;
                }
                panic!(
                    "nginx failed to start (prefix {}):\n{}\n--- error.log ---\n{}\n--- nginx.conf ---\n{}",
                    prefix.display(),
                    out,
                    log,
                    fs::read_to_string(&conf).unwrap_or_default()
                );
            }
            let pid_file = prefix.join("logs/nginx.pid");
            let master = poll(PROCESS_TIMEOUT, || {
                fs::read_to_string(&pid_file)
                    .ok()
                    .and_then(|s| s.trim().parse::<u32>().ok())
            })
            .unwrap_or_else(|| panic!("nginx wrote no pid file {}", pid_file.display()));
            let mut n = Nginx {
                prefix,
                conf,
                ports,
                workers,
                master,
                stopped: false,
            };
            let got = poll(PROCESS_TIMEOUT, || {
                let w = n.worker_pids();
                (w.len() == workers as usize).then_some(w)
            });
            if got.is_none() {
                let msg = format!(
                    "nginx (master {}) did not get {} workers within {:?}; workers {:?}\n--- error.log ---\n{}",
                    n.master,
                    workers,
                    PROCESS_TIMEOUT,
                    n.worker_pids(),
                    n.error_log()
                );
                n.stop();
                panic!("{}", msg);
            }
            return n;
        }
        panic!("could not find free ports for nginx after 5 attempts:\n{}", last);
    }

    pub fn port(&self) -> u16 {
        self.ports[0]
    }

    pub fn master_pid(&self) -> u32 {
        self.master
    }

    /// Pids of the master's worker processes that are not shutting down.
    pub fn worker_pids(&self) -> Vec<u32> {
        children_of(self.master)
            .into_iter()
            .filter(|&p| {
                let c = cmdline(p);
                c.contains("worker process") && !c.contains("shutting down")
            })
            .collect()
    }

    pub fn error_log(&self) -> String {
        fs::read_to_string(self.prefix.join("logs/error.log")).unwrap_or_default()
    }

    /// Writes a new `http {}` body into the configuration file (for a later `reload()`).
    pub fn rewrite_conf(&self, http_body: &str) {
        fs::write(&self.conf, render_conf(self.workers, http_body)).expect("write nginx.conf");
    }

    /// `nginx -s reload`, then waits (bounded) until a full set of new workers replaced the old.
    pub fn reload(&self) {
        let old: BTreeSet<u32> = children_of(self.master).into_iter().collect();
        let (ok, out) = run_bounded(
            Command::new(nginx_binary())
                .arg("-p")
                .arg(&self.prefix)
                .arg("-c")
                .arg(&self.conf)
                .arg("-s")
                .arg("reload"),
            PROCESS_TIMEOUT,
        );
        assert!(ok, "nginx -s reload failed:\n{}", out);
        let done = poll(PROCESS_TIMEOUT, || {
            let kids: BTreeSet<u32> = children_of(self.master).into_iter().collect();
            let workers = self.worker_pids();
            (kids.is_disjoint(&old)
                && workers.len() == self.workers as usize
                && workers.iter().all(|p| !old.contains(p)))
            .then_some(())
        });
        assert!(
            done.is_some(),
            "workers were not replaced within {:?} after reload (old {:?}, now {:?})\n--- error.log ---\n{}",
            PROCESS_TIMEOUT,
            old,
            children_of(self.master),
            self.error_log()
        );
    }

    /// Graceful stop: SIGQUIT to the master, bounded wait, then SIGKILL to what is left.
    pub fn stop(&mut self) {
        if self.stopped {
            return;
        }
        self.stopped = true;
        let kids = children_of(self.master);
        kill("QUIT", self.master);
        let gone = poll(PROCESS_TIMEOUT, || {
            (!alive(self.master) && kids.iter().all(|&k| !alive(k))).then_some(())
        });
        if gone.is_none() {
            let mut all = children_of(self.master);
            all.extend(kids);
            kill("KILL", self.master);
            for k in all {
                kill("KILL", k);
            }
        }
    }

    // --- HTTP helpers ---------------------------------------------------------------------

    pub fn get(&self, host: &str, path: &str) -> Response {
        http_request(self.port(), "GET", path, host, &[], b"")
    }

    /// GET `path` (default: "/status") and parse it; panics unless 200 with the right type.
    pub fn scrape_at(&self, port: u16, host: &str, path: &str) -> Metrics {
        let r = http_request(port, "GET", path, host, &[], b"");
        assert_eq!(
            r.status,
            200,
            "status page {} answered {}: {}",
            path,
            r.status,
            r.body_text()
        );
        assert_eq!(
            r.header("content-type"),
            Some(STATUS_CONTENT_TYPE),
            "status page content type"
        );
        Metrics::parse(&r.body_text())
            .unwrap_or_else(|e| panic!("status page does not parse: {}\n{}", e, r.body_text()))
    }

    pub fn scrape(&self) -> Metrics {
        self.scrape_at(self.port(), "localhost", "/status")
    }

    pub fn scrape_text(&self) -> String {
        let r = http_request(self.port(), "GET", "/status", "localhost", &[], b"");
        assert_eq!(
            r.status,
            200,
            "status page answered {}: {}",
            r.status,
            r.body_text()
        );
        r.body_text()
    }

    /// Scrapes until `done(&metrics)` holds or SETTLE_TIMEOUT passes; returns the last scrape
    /// (callers then assert exact values on it).
    pub fn scrape_until(&self, mut done: impl FnMut(&Metrics) -> bool) -> Metrics {
        let deadline = Instant::now() + SETTLE_TIMEOUT;
        loop {
            let m = self.scrape();
            if done(&m) || Instant::now() >= deadline {
                return m;
            }
            thread::sleep(Duration::from_millis(25));
        }
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        self.stop();
        if thread::panicking() {
            eprintln!(
                "nginx prefix kept at {}\n--- error.log (last 60 lines) ---\n{}",
                self.prefix.display(),
                tail(&self.error_log(), 60)
            );
        } else {
            let _ = fs::remove_dir_all(&self.prefix);
        }
    }
}

fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

// ---------------------------------------------------------------------------------------------
// HTTP/1.1 client
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    /// Header names lower-cased, in order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Exact number of bytes written to the socket (the whole request).
    pub bytes_written: u64,
    /// Exact number of bytes read from the socket until EOF (the whole response).
    pub bytes_read: u64,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// One request on a new connection to 127.0.0.1:`port` with `Connection: close`; reads the
/// response until the server closes. `extra_headers` are sent after Host and Connection. A
/// Content-Length header is sent when `body` is not empty or the method is POST/PUT.
pub fn http_request(
    port: u16,
    method: &str,
    path: &str,
    host: &str,
    extra_headers: &[(&str, &str)],
    body: &[u8],
) -> Response {
    try_http_request(port, method, path, host, extra_headers, body).unwrap_or_else(|e| {
        panic!(
            "{} http://127.0.0.1:{}{} (Host {}): {}",
            method, port, path, host, e
        )
    })
}

pub fn try_http_request(
    port: u16,
    method: &str,
    path: &str,
    host: &str,
    extra_headers: &[(&str, &str)],
    body: &[u8],
) -> Result<Response, String> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut s = TcpStream::connect_timeout(&addr, IO_TIMEOUT).map_err(|e| format!("connect: {}", e))?;
    s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    s.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    s.set_nodelay(true).ok();

    let mut req = format!(
        "{} {} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n",
        method, path, host
    );
    for (k, v) in extra_headers {
        write!(req, "{}: {}\r\n", k, v).unwrap();
    }
    if !body.is_empty() || method == "POST" || method == "PUT" {
        write!(req, "Content-Length: {}\r\n", body.len()).unwrap();
    }
    req.push_str("\r\n");
    let mut raw_req = req.into_bytes();
    raw_req.extend_from_slice(body);
    s.write_all(&raw_req).map_err(|e| format!("write: {}", e))?;
    s.flush().ok();

    let mut raw = Vec::new();
    let mut buf = [0u8; 16384];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            // A reset after the full response still ends it; parse decides if it is complete.
            Err(e) if e.kind() == ErrorKind::ConnectionReset && !raw.is_empty() => break,
            Err(e) => return Err(format!("read after {} bytes: {}", raw.len(), e)),
        }
    }
    let mut resp = parse_response(&raw, method == "HEAD")?;
    resp.bytes_written = raw_req.len() as u64;
    resp.bytes_read = raw.len() as u64;
    Ok(resp)
}

fn parse_response(raw: &[u8], head: bool) -> Result<Response, String> {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| format!("no end of headers in {:?}", String::from_utf8_lossy(raw)))?;
    let head_text = std::str::from_utf8(&raw[..end]).map_err(|e| format!("header bytes: {}", e))?;
    let mut lines = head_text.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let mut parts = status_line.splitn(3, ' ');
    let proto = parts.next().unwrap_or("");
    if !proto.starts_with("HTTP/1.") {
        return Err(format!("bad status line {:?}", status_line));
    }
    let status: u16 = parts
        .next()
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("bad status line {:?}", status_line))?;
    let mut headers = Vec::new();
    for l in lines {
        let (k, v) = l
            .split_once(':')
            .ok_or_else(|| format!("bad header line {:?}", l))?;
        headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
    }
    let rest = &raw[end + 4..];
    let get = |n: &str| headers.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
    let body = if head || status / 100 == 1 || status == 204 || status == 304 {
        if !rest.is_empty() {
            return Err(format!("{} bytes after a response that has no body", rest.len()));
        }
        Vec::new()
    } else if get("transfer-encoding").is_some_and(|t| t.eq_ignore_ascii_case("chunked")) {
        decode_chunked(rest)?
    } else if let Some(cl) = get("content-length") {
        let cl: usize = cl.parse().map_err(|_| format!("bad content-length {:?}", cl))?;
        if rest.len() != cl {
            return Err(format!("content-length {} but {} body bytes", cl, rest.len()));
        }
        rest.to_vec()
    } else {
        rest.to_vec()
    };
    Ok(Response {
        status,
        headers,
        body,
        bytes_written: 0,
        bytes_read: 0,
    })
}

fn decode_chunked(mut b: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let eol = b.windows(2).position(|w| w == b"\r\n").ok_or("chunk size line")?;
        let line = std::str::from_utf8(&b[..eol]).map_err(|_| "chunk size utf8")?;
        let size = usize::from_str_radix(line.split(';').next().unwrap().trim(), 16)
            .map_err(|_| format!("chunk size {:?}", line))?;
        b = &b[eol + 2..];
        if size == 0 {
            return Ok(out);
        }
        if b.len() < size + 2 {
            return Err("truncated chunk".into());
        }
        out.extend_from_slice(&b[..size]);
        b = &b[size + 2..];
    }
}

// ---------------------------------------------------------------------------------------------
// Prometheus text format
// ---------------------------------------------------------------------------------------------

pub type Labels = Vec<(String, String)>;

/// A parsed exposition: samples keyed by (metric name, label pairs sorted by name).
#[derive(Debug, Clone, Default)]
pub struct Metrics {
    pub samples: BTreeMap<(String, Labels), f64>,
    /// `# TYPE` per family name.
    pub types: BTreeMap<String, String>,
    /// `# HELP` per family name (unescaped).
    pub helps: BTreeMap<String, String>,
}

impl Metrics {
    /// Parses Prometheus text format 0.0.4. Rejects malformed lines, duplicate series, and
    /// duplicate HELP/TYPE lines.
    pub fn parse(text: &str) -> Result<Metrics, String> {
        let mut m = Metrics::default();
        for (i, line) in text.lines().enumerate() {
            let ln = i + 1;
            let line = line.trim_start();
            if line.is_empty() {
                continue;
            }
            if let Some(c) = line.strip_prefix('#') {
                let c = c.trim_start();
                let mut it = c.splitn(3, [' ', '\t']);
                let kw = it.next().unwrap_or("");
                if kw == "HELP" || kw == "TYPE" {
                    let name = it.next().ok_or(format!("line {}: {} without name", ln, kw))?;
                    if !valid_metric_name(name) {
                        return Err(format!("line {}: bad metric name {:?}", ln, name));
                    }
                    let rest = it.next().unwrap_or("").to_string();
                    let map = if kw == "HELP" { &mut m.helps } else { &mut m.types };
                    let val = if kw == "HELP" {
                        unescape_help(&rest)
                    } else {
                        rest.trim().to_string()
                    };
                    if map.insert(name.to_string(), val).is_some() {
                        return Err(format!("line {}: second # {} for {}", ln, kw, name));
                    }
                }
                continue;
            }
            let (key, value) = parse_sample(line).map_err(|e| format!("line {}: {}: {:?}", ln, e, line))?;
            if m.samples.insert(key.clone(), value).is_some() {
                return Err(format!("line {}: duplicate series {}{:?}", ln, key.0, key.1));
            }
        }
        Ok(m)
    }

    /// The sample with exactly this label set.
    pub fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let mut l: Labels = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        l.sort();
        self.samples.get(&(name.to_string(), l)).copied()
    }

    /// Like `get`, but panics with the list of series of that name when it is missing.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.get(name, labels).unwrap_or_else(|| {
            panic!(
                "no sample {}{:?}; series of that name: {:?}",
                name,
                labels,
                self.find(name, &[])
                    .iter()
                    .map(|(l, v)| (l.to_vec(), *v))
                    .collect::<Vec<_>>()
            )
        })
    }

    /// All samples of `name` whose labels include `subset`.
    pub fn find(&self, name: &str, subset: &[(&str, &str)]) -> Vec<(&Labels, f64)> {
        self.samples
            .iter()
            .filter(|((n, l), _)| {
                n == name
                    && subset
                        .iter()
                        .all(|(k, v)| l.iter().any(|(lk, lv)| lk == k && lv == v))
            })
            .map(|((_, l), v)| (l, *v))
            .collect()
    }

    /// Distinct values of label `label` over the samples of `name`.
    pub fn label_values(&self, name: &str, label: &str) -> BTreeSet<String> {
        self.find(name, &[])
            .into_iter()
            .filter_map(|(l, _)| l.iter().find(|(k, _)| k == label).map(|(_, v)| v.clone()))
            .collect()
    }
}

fn valid_metric_name(n: &str) -> bool {
    let mut cs = n.chars();
    matches!(cs.next(), Some(c) if c.is_ascii_alphabetic() || c == '_' || c == ':')
        && cs.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn valid_label_name(n: &str) -> bool {
    let mut cs = n.chars();
    matches!(cs.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && cs.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn unescape_help(s: &str) -> String {
    let mut out = String::new();
    let mut cs = s.chars();
    while let Some(c) = cs.next() {
        if c == '\\' {
            match cs.next() {
                Some('n') => out.push('\n'),
                Some('\\') => out.push('\\'),
                Some(o) => {
                    out.push('\\');
                    out.push(o)
                }
                None => out.push('\\'),
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn parse_value(s: &str) -> Result<f64, String> {
    match s {
        "+Inf" | "Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        "NaN" => Ok(f64::NAN),
        _ => {
            if !s.chars().all(|c| c.is_ascii_digit() || "+-.eE".contains(c)) {
                return Err(format!("bad value {:?}", s));
            }
            s.parse::<f64>().map_err(|_| format!("bad value {:?}", s))
        }
    }
}

fn parse_sample(line: &str) -> Result<((String, Labels), f64), String> {
    let name_end = line.find(['{', ' ', '\t']).ok_or("no value")?;
    let name = &line[..name_end];
    if !valid_metric_name(name) {
        return Err(format!("bad metric name {:?}", name));
    }
    let mut rest = &line[name_end..];
    let mut labels: Labels = Vec::new();
    if rest.starts_with('{') {
        let mut chars = rest.char_indices().skip(1).peekable();
        let close;
        loop {
            // skip whitespace
            while matches!(chars.peek(), Some((_, c)) if *c == ' ' || *c == '\t') {
                chars.next();
            }
            match chars.peek() {
                Some((i, '}')) => {
                    close = *i;
                    break;
                }
                None => return Err("unterminated label set".into()),
                _ => {}
            }
            let mut lname = String::new();
            while let Some(&(_, c)) = chars.peek() {
                if c == '=' || c == ' ' || c == '\t' {
                    break;
                }
                lname.push(c);
                chars.next();
            }
            while matches!(chars.peek(), Some((_, c)) if *c == ' ' || *c == '\t') {
                chars.next();
            }
            if !valid_label_name(&lname) {
                return Err(format!("bad label name {:?}", lname));
            }
            if chars.next().map(|(_, c)| c) != Some('=') {
                return Err(format!("no '=' after label {:?}", lname));
            }
            while matches!(chars.peek(), Some((_, c)) if *c == ' ' || *c == '\t') {
                chars.next();
            }
            if chars.next().map(|(_, c)| c) != Some('"') {
                return Err(format!("label {:?} value not quoted", lname));
            }
            let mut val = String::new();
            loop {
                match chars.next() {
                    None => return Err("unterminated label value".into()),
                    Some((_, '"')) => break,
                    Some((_, '\\')) => match chars.next() {
                        Some((_, 'n')) => val.push('\n'),
                        Some((_, '\\')) => val.push('\\'),
                        Some((_, '"')) => val.push('"'),
                        other => return Err(format!("bad escape \\{:?} in label value", other.map(|x| x.1))),
                    },
                    Some((_, '\n')) => return Err("raw newline in label value".into()),
                    Some((_, c)) => val.push(c),
                }
            }
            if labels.iter().any(|(k, _)| *k == lname) {
                return Err(format!("label {:?} twice", lname));
            }
            labels.push((lname, val));
            while matches!(chars.peek(), Some((_, c)) if *c == ' ' || *c == '\t') {
                chars.next();
            }
            match chars.peek() {
                Some((_, ',')) => {
                    chars.next();
                }
                Some((_, '}')) => {}
                _ => return Err("expected ',' or '}' in label set".into()),
            }
        }
        rest = &rest[close + 1..];
    }
    if !rest.starts_with(' ') && !rest.starts_with('\t') {
        return Err("no whitespace before value".into());
    }
    let mut toks = rest.split_whitespace();
    let value = parse_value(toks.next().ok_or("no value")?)?;
    if let Some(ts) = toks.next() {
        ts.parse::<i64>().map_err(|_| format!("bad timestamp {:?}", ts))?;
    }
    if toks.next().is_some() {
        return Err("trailing tokens".into());
    }
    labels.sort();
    Ok(((name.to_string(), labels), value))
}

// ---------------------------------------------------------------------------------------------
// promtool
// ---------------------------------------------------------------------------------------------

/// Pipes `text` into `promtool check metrics`. Returns (exit success, combined output).
/// Zero problems means success and an output without any non-blank line.
pub fn promtool_check(text: &str) -> (bool, String) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn promtool (apt-get install prometheus)");
    let mut stdin = child.stdin.take().unwrap();
    let data = text.as_bytes().to_vec();
    let writer = thread::spawn(move || {
        let _ = stdin.write_all(&data);
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().expect("try_wait").is_none() {
        if Instant::now() >= deadline {
            let _ = child.kill();
            panic!("promtool check metrics did not finish within 30 s");
        }
        thread::sleep(Duration::from_millis(20));
    }
    let _ = writer.join();
    let out = child.wait_with_output().expect("promtool output");
    (out.status.success(), output_text(&out))
}

// ---------------------------------------------------------------------------------------------
// Self-tests of the harness's parsers (no nginx needed)
// ---------------------------------------------------------------------------------------------

/// `family` is declared with `# TYPE family ty` and a non-empty HELP, and has samples (a
/// histogram's `_count`).
pub fn assert_family(m: &Metrics, family: &str, ty: &str) {
    assert_eq!(
        m.types.get(family).map(String::as_str),
        Some(ty),
        "# TYPE of {}",
        family
    );
    assert!(
        m.helps.get(family).is_some_and(|h| !h.is_empty()),
        "# HELP of {}",
        family
    );
    let samples = if ty == "histogram" {
        format!("{}_count", family)
    } else {
        family.to_string()
    };
    assert!(!m.find(&samples, &[]).is_empty(), "no samples of {}", family);
}

/// `promtool check metrics` reports zero problems on `text`.
pub fn assert_promtool_clean(text: &str) {
    let (ok, out) = promtool_check(text);
    let problems: Vec<&str> = out.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(
        ok && problems.is_empty(),
        "promtool check metrics: exit ok={} problems:\n{}\n--- text ---\n{}",
        ok,
        out,
        text
    );
}

#[cfg(test)]
mod selftest {
    use super::*;

    #[test]
    fn parses_labels_escapes_and_rejects_duplicates() {
        let t = "# HELP a_total A\\nB\n# TYPE a_total counter\n\
                 a_total{zone=\"x\\\"y\\\\z\\n\",b=\"1\"} 3\n\
                 a_total{b=\"2\" , zone=\"q\",} 4.5 1700000000\n\
                 g NaN\nh +Inf\n";
        let m = Metrics::parse(t).unwrap();
        assert_eq!(m.value("a_total", &[("b", "1"), ("zone", "x\"y\\z\n")]), 3.0);
        assert_eq!(m.value("a_total", &[("zone", "q"), ("b", "2")]), 4.5);
        assert!(m.get("g", &[]).unwrap().is_nan());
        assert_eq!(m.get("h", &[]), Some(f64::INFINITY));
        assert_eq!(m.types["a_total"], "counter");
        assert_eq!(m.helps["a_total"], "A\nB");
        assert_eq!(m.find("a_total", &[("zone", "q")]).len(), 1);
        assert!(Metrics::parse("x{a=\"1\"} 1\nx{a=\"1\"} 2\n")
            .unwrap_err()
            .contains("duplicate"));
        assert!(Metrics::parse("x{a=\"1} 1\n").is_err());
        assert!(Metrics::parse("x{a=\"\\t\"} 1\n").is_err());
        assert!(Metrics::parse("x 1 2 3\n").is_err());
        assert!(Metrics::parse("9x 1\n").is_err());
    }

    #[test]
    fn parses_http_responses() {
        let r = parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX: y\r\n\r\nhi", false).unwrap();
        assert_eq!(
            (r.status, r.body.as_slice(), r.header("x")),
            (200, &b"hi"[..], Some("y"))
        );
        let r = parse_response(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n1\r\n!\r\n0\r\n\r\n",
            false,
        )
        .unwrap();
        assert_eq!(r.body, b"hi!");
        let r = parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", true).unwrap();
        assert!(r.body.is_empty());
        assert!(parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab", false).is_err());
    }
}
