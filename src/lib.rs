//! ngx_vts: virtual-host traffic status for nginx.
//!
//! - [`stats`]: the counting core (shared-memory layout, shards, directory, merge); no nginx.
//! - [`render`]: output formats (Prometheus text); no nginx.
//! - `nginx`: the thin module layer (directives, zone init, log phase, status handler).
pub mod render;
pub mod stats;

// Left out of the unit-test binary: it cannot link without nginx.
#[cfg(not(test))]
mod nginx;
