//! Tells the tests and scripts where the nginx that cargo built lives.
//!
//! `nginx-sys` (with `ngx`'s `vendored` feature) configures and builds nginx from the bundled
//! source; its build script publishes the build folder as `DEP_NGINX_BUILD_DIR`. The integration
//! tests read `NGX_VTS_NGINX_BINARY` at compile time, and `target/<profile>/nginx-path` lets the
//! demo script find the same binary without guessing the hashed folder name.
use std::{env, fs, path::PathBuf};

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let build_dir = env::var("DEP_NGINX_BUILD_DIR").expect("nginx-sys did not publish its build dir");
    let binary = PathBuf::from(&build_dir).join("nginx");
    println!("cargo:rustc-env=NGX_VTS_NGINX_BINARY={}", binary.display());
    // What the nginx we build against has, for the parts of the module that depend on it:
    // the connection counters exist only with stub_status, peers' shared locks only with the
    // upstream zone module.
    println!("cargo::rustc-check-cfg=cfg(ngx_vts_stat_stub)");
    println!("cargo::rustc-check-cfg=cfg(ngx_vts_upstream_zone)");
    let auto_config =
        fs::read_to_string(PathBuf::from(&build_dir).join("ngx_auto_config.h")).unwrap_or_default();
    if auto_config.contains("#define NGX_STAT_STUB  1") || auto_config.contains("#define NGX_STAT_STUB 1") {
        println!("cargo::rustc-cfg=ngx_vts_stat_stub");
    }
    let features = env::var("DEP_NGINX_FEATURES").unwrap_or_default();
    if features.split(',').any(|f| f == "http_upstream_zone") {
        println!("cargo::rustc-cfg=ngx_vts_upstream_zone");
    }
    if let Ok(v) = env::var("DEP_NGINX_VERSION") {
        println!("cargo:rustc-env=NGX_VTS_NGINX_VERSION={}", v.trim_matches('"'));
    }
    // OUT_DIR is target/<profile>/build/ngx_vts-*/out: three levels up is target/<profile>.
    let out = PathBuf::from(env::var("OUT_DIR").unwrap());
    if let Some(profile_dir) = out.ancestors().nth(3) {
        let _ = fs::write(profile_dir.join("nginx-path"), format!("{}\n", binary.display()));
    }
}
