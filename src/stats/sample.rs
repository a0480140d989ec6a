//! What one request (or one upstream attempt) contributes to a slot.

/// Index of the status class in [`crate::stats::Counters::status`]: 1xx..5xx, then "other"
/// for anything outside 100..=599 (a status nginx never sent, e.g. 0 or 444 is 4xx).
pub const STATUS_CLASSES: usize = 6;

/// Status-class labels in output order.
pub const STATUS_LABELS: [&str; STATUS_CLASSES] = ["1xx", "2xx", "3xx", "4xx", "5xx", "other"];

/// A status code's class index.
#[inline]
pub fn status_class(status: u64) -> usize {
    match status {
        100..=599 => (status / 100 - 1) as usize,
        _ => 5,
    }
}

/// Which counters a sample adds to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum What {
    /// Every counter (a request; an upstream attempt that served the client).
    #[default]
    Full,
    /// An upstream attempt passed on to the next peer (nginx-module-vts): the count, the status
    /// class, the upstream response time; no bytes, no request time.
    PassedOn,
    /// Only the upstream response time (an ignored status, `ignore_status`).
    ResponseOnly,
    /// Nothing but that the key saw a sample (an ignored status in a zone with time queues:
    /// nginx-module-vts shows such a key, with zeros).
    Seen,
}

/// One observation. Times are in milliseconds, the resolution nginx measures them in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Sample {
    pub status: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// Request time (server zones) or the attempt's time (upstream peers).
    pub time_ms: u64,
    /// Upstream response time, when nginx knows it (upstream peers only).
    pub upstream_ms: Option<u64>,
    pub what: What,
    /// When the sample happened, for the time queue and the key's last-seen time:
    /// milliseconds since the zone was created, plus one; 0 pushes nothing.
    pub queued_at: u64,
    /// The status-code word (0 `other`, i the i-th measured code), when codes are measured.
    pub code: Option<u16>,
}

impl Sample {
    /// The value the slot's histogram observes: request time for a server zone, the upstream
    /// response time for an upstream peer (none when nginx did not measure one).
    #[inline]
    pub fn observed_ms(&self, upstream: bool) -> Option<u64> {
        if upstream {
            self.upstream_ms
        } else {
            Some(self.time_ms)
        }
    }
}
