//! Output formats. They read a [`crate::stats::Snapshot`] and know nothing of nginx.
pub mod accept;
pub mod escape;
pub mod json;
pub mod json_escape;
pub mod number;
pub mod output;
pub mod prometheus;
pub mod vozlt;

/// A scrape being written, in slices: the nginx layer writes one slice per turn of its event
/// loop, so that a big scrape never holds a worker for long.
pub trait Renderer {
    /// Appends to `out` until it has grown by `budget` bytes (at least one row) or the text is
    /// complete; true once it is.
    fn write(&mut self, out: &mut Vec<u8>, budget: usize) -> bool;
}
