//! The counting core: plain Rust, no nginx symbol, so that the model tests and the benches link.
//!
//! - [`layout`]: where everything is in the zone, and the sizes pinned by static assertions;
//! - [`zone`]: creating, reattaching and reading the zone's tables;
//! - [`directory`]: the lock-free key directory;
//! - [`shard`]: shard ownership and the request path's write;
//! - [`merge`]: the scrape-time sum of all shards.
pub mod capacity;
pub mod directory;
pub mod layout;
pub mod merge;
pub mod sample;
pub mod shard;
pub mod zone;

// Re-exports: the API the nginx layer and the renderers use (a test binary that includes this
// module with #[path] uses only part of it).
#[allow(unused_imports)]
pub use directory::{
    has_peer_times, split_upstream_key, upstream_key, Kind, OVERFLOW_SERVER, OVERFLOW_UPSTREAM,
};
#[allow(unused_imports)]
pub use merge::{Counters, Entry, Merge, Snapshot};
#[allow(unused_imports)]
pub use sample::{status_class, Sample, What, STATUS_LABELS};
#[allow(unused_imports)]
pub use shard::{Claim, Recorded, ShardWriter};
#[allow(unused_imports)]
pub use zone::{AttachError, HeapRegion, Zone, ZoneLock};
