//! ngx_vts: virtual-host traffic status for nginx.
//!
//! - [`stats`]: the counting core (shared-memory layout, shards, directory, merge); no nginx.
//! - [`view`]: one view of a scrape (merged counters and nginx's live state), read by every
//!   renderer; no nginx.
//! - [`render`]: output formats (Prometheus text, JSON); no nginx.
//! - `nginx`: the thin module layer (directives, zone init, log phase, status handler).
pub mod conf;
pub mod render;
pub mod stats;
pub mod view;

// Left out of the unit-test binary: it cannot link without nginx.
#[cfg(not(test))]
mod nginx;
