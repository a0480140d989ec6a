//! Output formats. They read a [`crate::stats::Snapshot`] and know nothing of nginx.
pub mod escape;
pub mod prometheus;
