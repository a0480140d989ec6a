//! The two production build paths of the README ("Building for production"), end to end, on
//! the nginx source the project already has (the nginx-src crate's copy in the cargo registry):
//!
//! 1. path 2, nginx's build system: `configure --with-compat --add-dynamic-module=<this repo>`,
//!    then `make modules` (the module alone) and `make` (nginx too). The module loads into
//!    that nginx and counts a request that `/status` then shows.
//! 2. path 1, cargo against the operator's tree: `NGINX_SOURCE_DIR=<the same configured tree>
//!    cargo build --release`. The `.so` loads into the same nginx and counts the same way, and
//!    cargo built no nginx of its own (`nginx-path` names the tree's binary).
//! 3. The mismatch: an nginx from the same source configured without `--with-compat` refuses
//!    both modules with nginx's own `module "..." is not binary compatible`. And the other way
//!    round, `--with-compat` on both sides is enough: the path-2 module also loads into the
//!    vendored nginx the other tests use, which has a different set of modules.
//!
//! One test, because it builds nginx twice and the module twice (about 2 to 3 minutes on 2
//! cores): progress goes to stderr. Its work folder is removed on success and kept (and
//! named) on failure. `NGX_VTS_SKIP_BUILD_PATHS=1` skips it, loudly, for quick local runs.

mod common;

use common::*;
use std::fs::{self, File};
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Upper bound for one configure, make or cargo step (generous: CI machines are shared).
const BUILD_TIMEOUT: Duration = Duration::from_secs(20 * 60);

/// Requests sent to the counted server in each check.
const REQUESTS: u64 = 3;

/// The Host (and server_name) of the counted server.
const ZONE: &str = "prod.example";

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

// ---------------------------------------------------------------------------------------------
// Progress and the work folder
// ---------------------------------------------------------------------------------------------

struct Progress(Instant);

impl Progress {
    fn say(&self, msg: &str) {
        eprintln!("[build_paths {:>6.1}s] {}", self.0.elapsed().as_secs_f64(), msg);
    }
}

/// A temporary folder: removed on drop, unless the test is failing (then kept and named).
struct WorkDir(PathBuf);

impl WorkDir {
    fn new() -> WorkDir {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let dir = std::env::temp_dir().join(format!("ngx_vts-build-paths-{}-{}", std::process::id(), nanos));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("create work dir");
        WorkDir(dir)
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        if thread::panicking() {
            eprintln!("build_paths: work folder kept at {}", self.0.display());
        } else {
            let _ = fs::remove_dir_all(&self.0);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The nginx source
// ---------------------------------------------------------------------------------------------

fn is_nginx_source(dir: &Path) -> bool {
    dir.join("src/core/nginx.h").is_file()
        && (dir.join("configure").is_file() || dir.join("auto/configure").is_file())
}

/// The nginx source the project already has. In order: `NGX_VTS_NGINX_SOURCE` (an override);
/// the source that nginx-src built the vendored nginx from (the quoted path at the start of
/// `last-build-info` in the build folder of `NGX_VTS_NGINX_BINARY`); the tree around that
/// binary (when the suite itself was built with `NGINX_SOURCE_DIR`); the nginx-src crate in the
/// cargo registry.
fn nginx_source() -> PathBuf {
    if let Some(dir) = std::env::var_os("NGX_VTS_NGINX_SOURCE") {
        let dir = PathBuf::from(dir);
        assert!(
            is_nginx_source(&dir),
            "NGX_VTS_NGINX_SOURCE={} is not an nginx source tree",
            dir.display()
        );
        return dir;
    }
    let build_dir = PathBuf::from(env!("NGX_VTS_NGINX_BINARY"))
        .parent()
        .unwrap()
        .to_path_buf();
    if let Ok(info) = fs::read_to_string(build_dir.join("last-build-info")) {
        if let Some(quoted) = info.strip_prefix('"').and_then(|s| s.split('"').next()) {
            let dir = PathBuf::from(quoted);
            if is_nginx_source(&dir) {
                return dir;
            }
        }
    }
    if let Some(dir) = build_dir.parent().filter(|d| is_nginx_source(d)) {
        return dir.to_path_buf();
    }
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .expect("neither CARGO_HOME nor HOME is set");
    let mut found: Vec<PathBuf> = Vec::new();
    for registry in fs::read_dir(cargo_home.join("registry/src"))
        .into_iter()
        .flatten()
        .flatten()
    {
        for krate in fs::read_dir(registry.path()).into_iter().flatten().flatten() {
            let name = krate.file_name().to_string_lossy().into_owned();
            if name.starts_with("nginx-src-") && is_nginx_source(&krate.path().join("nginx")) {
                found.push(krate.path().join("nginx"));
            }
        }
    }
    found.sort();
    found.pop().unwrap_or_else(|| {
        panic!(
            "no nginx source found: not from {} (last-build-info), nor in {}/registry/src/*/nginx-src-*; \
             set NGX_VTS_NGINX_SOURCE",
            build_dir.display(),
            cargo_home.display()
        )
    })
}

/// `NGINX_VERSION` from `src/core/nginx.h`, e.g. "1.28.3".
fn nginx_version(src: &Path) -> String {
    let h = fs::read_to_string(src.join("src/core/nginx.h")).expect("read nginx.h");
    h.lines()
        .find_map(|l| {
            l.strip_prefix("#define NGINX_VERSION ")
                .map(|v| v.trim().trim_matches('"').to_string())
        })
        .expect("NGINX_VERSION in nginx.h")
}

/// Copies the source tree (files keep their permissions), leaving out anything a previous
/// configure or make left at the top (`objs*`, `Makefile`).
fn copy_tree(src: &Path, dst: &Path, top: bool) {
    fs::create_dir_all(dst).unwrap_or_else(|e| panic!("mkdir {}: {}", dst.display(), e));
    for entry in fs::read_dir(src).unwrap_or_else(|e| panic!("read {}: {}", src.display(), e)) {
        let entry = entry.unwrap();
        let name = entry.file_name();
        let n = name.to_string_lossy();
        if top && (n.starts_with("objs") || n == "Makefile") {
            continue;
        }
        let to = dst.join(&name);
        let ty = fs::metadata(entry.path()).unwrap().file_type(); // follows symlinks
        if ty.is_dir() {
            copy_tree(&entry.path(), &to, false);
        } else if ty.is_file() {
            fs::copy(entry.path(), &to)
                .unwrap_or_else(|e| panic!("copy {} to {}: {}", entry.path().display(), to.display(), e));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Commands
// ---------------------------------------------------------------------------------------------

fn tail_of_file(path: &Path, n: usize) -> String {
    let mut s = String::new();
    if let Ok(mut f) = File::open(path) {
        let mut b = Vec::new();
        let _ = f.read_to_end(&mut b);
        s = String::from_utf8_lossy(&b).into_owned();
    }
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Runs `cmd` in its own process group with stdout and stderr into `log`; panics (with the end
/// of the log) if it fails or outlives `BUILD_TIMEOUT` (then the whole group is killed).
fn run_logged(p: &Progress, what: &str, cmd: &mut Command, log: &Path) {
    p.say(&format!("{}  (log: {})", what, log.display()));
    let out = File::create(log).expect("create log");
    let err = out.try_clone().expect("clone log handle");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .process_group(0)
        .spawn()
        .unwrap_or_else(|e| panic!("{}: cannot start {:?}: {}", what, cmd, e));
    let deadline = Instant::now() + BUILD_TIMEOUT;
    let status = loop {
        if let Some(st) = child.try_wait().expect("try_wait") {
            break st;
        }
        if Instant::now() >= deadline {
            signal_group("KILL", child.id());
            let _ = child.wait();
            panic!(
                "{}: still running after {:?}\n--- {} (end) ---\n{}",
                what,
                BUILD_TIMEOUT,
                log.display(),
                tail_of_file(log, 60)
            );
        }
        thread::sleep(Duration::from_millis(100));
    };
    assert!(
        status.success(),
        "{} failed ({})\n--- {} (end) ---\n{}",
        what,
        status,
        log.display(),
        tail_of_file(log, 60)
    );
}

fn signal(sig: &str, pid: u32) {
    let _ = Command::new("kill")
        .arg(format!("-{}", sig))
        .arg(pid.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// Signals the process group `pgid` (a group this test created with `process_group(0)`).
fn signal_group(sig: &str, pgid: u32) {
    let _ = Command::new("kill")
        .arg(format!("-{}", sig))
        .arg("--")
        .arg(format!("-{}", pgid))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// The cargo that runs this test (cargo sets CARGO for the processes it starts).
fn cargo() -> PathBuf {
    std::env::var_os("CARGO")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("cargo"))
}

/// nginx's configure, as shipped (`./configure` in a release tarball, `auto/configure` in the
/// repository layout that nginx-src vendors).
fn configure(tree: &Path, args: &[String]) -> Command {
    let script = if tree.join("configure").is_file() {
        "configure"
    } else {
        "auto/configure"
    };
    let mut c = Command::new("sh");
    c.current_dir(tree).arg(script).args(args);
    c
}

fn make(tree: &Path, args: &[&str]) -> Command {
    let mut c = Command::new("make");
    c.current_dir(tree)
        .args(args)
        .env_remove("MAKEFLAGS")
        .env_remove("MFLAGS")
        .env_remove("MAKELEVEL");
    c
}

// ---------------------------------------------------------------------------------------------
// Running the built nginx
// ---------------------------------------------------------------------------------------------

fn conf_text(module: &Path, port: u16) -> String {
    format!(
        r#"load_module {module};
daemon off;
worker_processes 2;
error_log logs/error.log info;
pid logs/nginx.pid;
events {{ worker_connections 256; }}
http {{
    access_log off;
    vts_zone main 1m;
    server {{
        listen 127.0.0.1:{port};
        server_name {ZONE};
        location / {{ return 200 "counted\n"; }}
        location = /status {{ vts_status; }}
    }}
}}
"#,
        module = module.display()
    )
}

fn new_prefix(work: &Path, tag: &str) -> PathBuf {
    let prefix = work.join(format!("prefix-{}", tag));
    let _ = fs::remove_dir_all(&prefix);
    fs::create_dir_all(prefix.join("logs")).unwrap();
    fs::create_dir_all(prefix.join("conf")).unwrap();
    prefix
}

/// `nginx -t` with `module`; (success, stderr + stdout).
fn nginx_test_conf(nginx: &Path, module: &Path, prefix: &Path) -> (bool, String) {
    let conf = prefix.join("conf/nginx.conf");
    fs::write(&conf, conf_text(module, free_port())).unwrap();
    let out = Command::new(nginx)
        .arg("-t")
        .arg("-p")
        .arg(prefix)
        .arg("-c")
        .arg(&conf)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("run {} -t: {}", nginx.display(), e));
    let mut text = String::from_utf8_lossy(&out.stderr).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stdout));
    (out.status.success(), text)
}

/// An nginx master in the foreground (`daemon off`), stopped by pid on drop.
struct Server {
    child: Child,
    prefix: PathBuf,
    port: u16,
}

impl Server {
    fn start(nginx: &Path, module: &Path, prefix: &Path) -> Server {
        let conf = prefix.join("conf/nginx.conf");
        let mut last = String::new();
        for _attempt in 0..5 {
            let port = free_port();
            fs::write(&conf, conf_text(module, port)).unwrap();
            let stderr = File::create(prefix.join("logs/stderr.log")).unwrap();
            let child = Command::new(nginx)
                .arg("-p")
                .arg(prefix)
                .arg("-c")
                .arg(&conf)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(stderr)
                .spawn()
                .unwrap_or_else(|e| panic!("start {}: {}", nginx.display(), e));
            let mut s = Server {
                child,
                prefix: prefix.to_path_buf(),
                port,
            };
            let up = poll(PROCESS_TIMEOUT, || {
                if s.child.try_wait().ok().flatten().is_some() {
                    return Some(false);
                }
                // Ours: a status page with its content type (not whatever else may hold the
                // port while nginx retries its bind).
                try_http_request(port, "GET", "/status", ZONE, &[], b"")
                    .ok()
                    .filter(|r| r.status == 200 && r.header("content-type") == Some(STATUS_CONTENT_TYPE))
                    .map(|_| true)
            });
            match up {
                Some(true) => return s,
                Some(false) => {
                    last = s.logs();
                    if last.contains("Address already in use") {
                        continue; // another test took the port in between
                    }
                    panic!("nginx {} exited at start:\n{}", nginx.display(), last);
                }
                None => {
                    let logs = s.logs();
                    drop(s);
                    panic!(
                        "nginx {} did not answer within {:?}:\n{}",
                        nginx.display(),
                        PROCESS_TIMEOUT,
                        logs
                    );
                }
            }
        }
        panic!("no free port for nginx after 5 attempts:\n{}", last);
    }

    fn logs(&self) -> String {
        format!(
            "--- stderr ---\n{}\n--- error.log ---\n{}",
            tail_of_file(&self.prefix.join("logs/stderr.log"), 30),
            tail_of_file(&self.prefix.join("logs/error.log"), 30)
        )
    }
}

impl Drop for Server {
    /// SIGQUIT to the master, bounded wait; then SIGKILL to the master and its workers.
    fn drop(&mut self) {
        let master = self.child.id();
        let workers = children_of(master);
        if self.child.try_wait().ok().flatten().is_none() {
            signal("QUIT", master);
        }
        let gone = poll(PROCESS_TIMEOUT, || {
            (self.child.try_wait().ok().flatten().is_some() && workers.iter().all(|&w| !alive(w)))
                .then_some(())
        });
        if gone.is_none() {
            let mut all = children_of(master);
            all.extend(workers);
            signal("KILL", master);
            for w in all {
                signal("KILL", w);
            }
            let _ = self.child.wait();
        }
    }
}

/// Starts `nginx` with `module`, sends REQUESTS requests, and checks that /status counts them.
fn check_counts(p: &Progress, work: &Path, tag: &str, nginx: &Path, module: &Path, version: &str) {
    p.say(&format!(
        "{}: {} with load_module {}",
        tag,
        nginx.display(),
        module.display()
    ));
    let prefix = new_prefix(work, tag);
    let server = Server::start(nginx, module, &prefix);
    for _ in 0..REQUESTS {
        let r = http_request(server.port, "GET", "/", ZONE, &[], b"");
        assert_eq!(r.status, 200, "{}: GET / answered {}", tag, r.status);
    }
    let labels = [("zone", ZONE)];
    let mut text = String::new();
    let m = poll(SETTLE_TIMEOUT, || {
        let r = http_request(server.port, "GET", "/status", ZONE, &[], b"");
        assert_eq!(
            r.status,
            200,
            "{}: /status answered {}: {}",
            tag,
            r.status,
            r.body_text()
        );
        assert_eq!(
            r.header("content-type"),
            Some(STATUS_CONTENT_TYPE),
            "{}: status content type",
            tag
        );
        text = r.body_text();
        let m = Metrics::parse(&text)
            .unwrap_or_else(|e| panic!("{}: /status does not parse: {}\n{}", tag, e, text));
        (m.get("nginx_vts_server_requests_total", &labels) == Some(REQUESTS as f64)).then_some(m)
    })
    .unwrap_or_else(|| {
        panic!(
            "{}: /status never counted {} requests for {}:\n{}\n{}",
            tag,
            REQUESTS,
            ZONE,
            text,
            server.logs()
        )
    });
    assert_eq!(
        m.value(
            "nginx_vts_server_responses_total",
            &[("zone", ZONE), ("status", "2xx")]
        ),
        REQUESTS as f64,
        "{}",
        tag
    );
    let versions = m.label_values("nginx_vts_info", "nginx_version");
    assert!(
        versions.contains(version),
        "{}: nginx_vts_info names nginx {:?}, expected {}",
        tag,
        versions,
        version
    );
    p.say(&format!(
        "{}: /status counted {} requests for {} (nginx {})",
        tag, REQUESTS, ZONE, version
    ));
    drop(server);
    let _ = fs::remove_dir_all(&prefix);
}

fn assert_not_compatible(p: &Progress, work: &Path, tag: &str, nginx: &Path, module: &Path) {
    let prefix = new_prefix(work, tag);
    let (ok, out) = nginx_test_conf(nginx, module, &prefix);
    assert!(
        !ok,
        "{}: nginx without --with-compat accepted {}:\n{}",
        tag,
        module.display(),
        out
    );
    let expected = format!("module \"{}\" is not binary compatible", module.display());
    assert!(
        out.contains(&expected),
        "{}: expected `{}`, nginx said:\n{}",
        tag,
        expected,
        out
    );
    p.say(&format!(
        "{}: refused as expected: {}",
        tag,
        out.lines().find(|l| l.contains(&expected)).unwrap_or("").trim()
    ));
}

// ---------------------------------------------------------------------------------------------
// The test
// ---------------------------------------------------------------------------------------------

#[test]
fn production_build_paths() {
    if std::env::var_os("NGX_VTS_SKIP_BUILD_PATHS").is_some_and(|v| !v.is_empty() && v != "0") {
        eprintln!("build_paths: SKIPPED (NGX_VTS_SKIP_BUILD_PATHS is set): the production build paths were NOT checked");
        return;
    }
    let p = Progress(Instant::now());
    let work = WorkDir::new();
    let repo = repo_root();
    let source = nginx_source();
    let version = nginx_version(&source);
    p.say(&format!(
        "nginx {} source: {}; work folder {}",
        version,
        source.display(),
        work.0.display()
    ));

    let tree = work.0.join(format!("nginx-{}", version));
    copy_tree(&source, &tree, true);
    let objs = tree.join("objs");
    let nginx = objs.join("nginx");
    let module2 = objs.join("ngx_http_vts_module.so");

    // Path 2: nginx's own build system drives cargo through the repository's `config`.
    let mut c = configure(
        &tree,
        &[
            "--with-compat".to_string(),
            "--with-http_stub_status_module".to_string(),
            format!("--add-dynamic-module={}", repo.display()),
        ],
    );
    c.env("NGX_CARGO", cargo());
    run_logged(
        &p,
        "path 2: configure --with-compat --with-http_stub_status_module --add-dynamic-module",
        &mut c,
        &work.0.join("configure.log"),
    );
    run_logged(
        &p,
        "path 2: make -j2 modules",
        &mut make(&tree, &["-j2", "modules"]),
        &work.0.join("make-modules.log"),
    );
    assert!(
        module2.is_file(),
        "`make modules` did not produce {}",
        module2.display()
    );
    assert!(
        !nginx.exists(),
        "`make modules` should build the module only, but {} exists",
        nginx.display()
    );
    run_logged(
        &p,
        "path 2: make -j2",
        &mut make(&tree, &["-j2"]),
        &work.0.join("make.log"),
    );
    assert!(nginx.is_file(), "`make` did not produce {}", nginx.display());
    check_counts(&p, &work.0, "path2", &nginx, &module2, &version);
    // `make install` puts the module next to nginx (and, with the library up to date, does
    // not need cargo: it often runs as root).
    let destdir = work.0.join("destdir");
    let dest = format!("DESTDIR={}", destdir.display());
    let install_log = work.0.join("make-install.log");
    run_logged(
        &p,
        "path 2: make install DESTDIR=...",
        &mut make(&tree, &["install", &dest]),
        &install_log,
    );
    let installed = destdir.join("usr/local/nginx/modules/ngx_http_vts_module.so");
    assert!(
        installed.is_file(),
        "`make install` did not install {}",
        installed.display()
    );
    if fs::read_to_string(&install_log)
        .unwrap_or_default()
        .contains("rustc --lib")
    {
        p.say("note: `make install` ran cargo again (a Rust source changed during the test?)");
    }

    // Path 1: cargo against the same configured tree, default features.
    let target = work.0.join("cargo-target");
    let mut c = Command::new(cargo());
    c.current_dir(&repo)
        .args(["build", "--release", "--lib", "--target-dir"])
        .arg(&target)
        .env("NGINX_SOURCE_DIR", &tree)
        .env_remove("NGINX_BUILD_DIR");
    run_logged(
        &p,
        "path 1: NGINX_SOURCE_DIR=<tree> cargo build --release",
        &mut c,
        &work.0.join("cargo-build.log"),
    );
    let module1 = target.join("release/libngx_vts.so");
    assert!(
        module1.is_file(),
        "cargo build did not produce {}",
        module1.display()
    );
    // nginx-sys took the tree, and built no nginx of its own.
    let named = fs::read_to_string(target.join("release/nginx-path")).expect("target/release/nginx-path");
    assert_eq!(
        fs::canonicalize(named.trim()).ok(),
        fs::canonicalize(&nginx).ok(),
        "path 1: the module was built against {} instead of the tree's nginx",
        named.trim()
    );
    let vendored_builds: Vec<_> = fs::read_dir(target.join("release/build"))
        .unwrap()
        .flatten()
        .filter(|e| e.path().join("out/objs/nginx").exists())
        .map(|e| e.path())
        .collect();
    assert!(
        vendored_builds.is_empty(),
        "path 1 built a vendored nginx anyway: {:?}",
        vendored_builds
    );
    check_counts(&p, &work.0, "path1", &nginx, &module1, &version);

    // --with-compat on both sides is what makes a module portable between nginx builds of one
    // version: the vendored nginx of the other tests has other modules (ssl, http_v2, stream).
    let vendored = nginx_binary();
    let vendored_config =
        fs::read_to_string(vendored.parent().unwrap().join("ngx_auto_config.h")).unwrap_or_default();
    let vendored_v = Command::new(&vendored)
        .arg("-v")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stderr).into_owned())
        .unwrap_or_default();
    if vendored_config.contains("#define NGX_COMPAT  1")
        && vendored_v.trim().ends_with(&format!("nginx/{}", version))
    {
        let prefix = new_prefix(&work.0, "vendored");
        let (ok, out) = nginx_test_conf(&vendored, &module2, &prefix);
        assert!(
            ok,
            "the path-2 module does not load into the vendored --with-compat nginx {}:\n{}",
            vendored.display(),
            out
        );
        p.say("path 2 module also loads into the vendored nginx (--with-compat on both sides)");
    }

    // The mismatch: the same source configured without --with-compat.
    let nocompat_dir = "objs-nocompat";
    run_logged(
        &p,
        "mismatch: configure --with-http_stub_status_module (no --with-compat)",
        &mut configure(
            &tree,
            &[
                "--with-http_stub_status_module".to_string(),
                format!("--builddir={}", nocompat_dir),
            ],
        ),
        &work.0.join("configure-nocompat.log"),
    );
    let makefile = format!("{}/Makefile", nocompat_dir);
    run_logged(
        &p,
        "mismatch: make -j2 binary",
        &mut make(&tree, &["-f", &makefile, "-j2", "binary"]),
        &work.0.join("make-nocompat.log"),
    );
    let nocompat = tree.join(nocompat_dir).join("nginx");
    assert!(nocompat.is_file(), "no {}", nocompat.display());
    assert_not_compatible(&p, &work.0, "nocompat-path2", &nocompat, &module2);
    assert_not_compatible(&p, &work.0, "nocompat-path1", &nocompat, &module1);

    p.say("done: both build paths work, and a mismatch is refused by nginx");
}
