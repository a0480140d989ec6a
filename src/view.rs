//! One view of a scrape: the merged counters of every key, and what nginx knows live (its
//! connection counters, its upstream peers and their configuration, the zone's use). Every
//! renderer reads only this; the nginx layer fills it and knows no format.
use crate::stats::{Counters, Entry, Kind, Snapshot};

/// The `moduleVersion` of nginx-module-vts whose outputs the vozlt formats reproduce.
pub const VOZLT_VERSION: &str = "v0.2.7";

/// Entries a time queue shows (nginx-module-vts keeps 64 slots with one always empty).
pub const QUEUE_LEN: usize = 63;

/// nginx's own connection counters (present when nginx has stub_status).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Connections {
    pub active: u64,
    pub reading: u64,
    pub writing: u64,
    pub waiting: u64,
    pub accepted: u64,
    pub handled: u64,
    pub requests: u64,
}

/// What the output says about the process, besides the zone's counters.
#[derive(Clone, Debug, Default)]
pub struct Info {
    pub hostname: Vec<u8>,
    /// This module's version (the seed's `nginx_vts_info`).
    pub module_version: String,
    pub nginx_version: String,
    /// Unix milliseconds when the configuration of the location that serves the scrape was
    /// loaded (vozlt's `loadMsec`).
    pub load_msec: u64,
    /// Unix milliseconds now (vozlt's `nowMsec`); the averages' window ends here.
    pub now_msec: u64,
}

/// The statistics zone's use.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ShmUse {
    /// The zone's name (`vts_zone NAME` or `shared:NAME:` of `vhost_traffic_status_zone`).
    pub name: Vec<u8>,
    /// The size the configuration asked for.
    pub max_size: u64,
    /// Bytes in use, and free, of the region the module lays its tables out in.
    pub used_size: u64,
    pub free_size: u64,
    /// Keys in the directory, and how many fit.
    pub used_node: u64,
    pub max_node: u64,
}

/// One upstream peer as nginx sees it now.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PeerState {
    /// The `upstream` block's name; empty for a proxy_pass without one (shown as `::nogroups`).
    pub group: Vec<u8>,
    /// The peer's address as nginx names it (`10.0.0.1:8080`, `unix:/path`, `[::1]:80`).
    pub server: Vec<u8>,
    /// Neither marked `down` nor failed `max_fails` times within `fail_timeout`.
    pub up: bool,
    /// nginx-module-vts's `down`: the configured flag, or (with an upstream `zone`) marked down
    /// or failed `max_fails` times.
    pub down: bool,
    pub weight: u64,
    pub max_fails: u64,
    pub fail_timeout_s: u64,
    pub backup: bool,
}

/// How `requestMsec` and `responseMsec` average the time queue.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AvgMethod {
    /// Arithmetic mean.
    #[default]
    Amm,
    /// Weighted moving average: the i-th newest-considered sample weighs i (oldest 1).
    Wma,
}

/// What `vhost_traffic_status_measure_status_codes` asked for (zone-wide).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum StatusCodes {
    #[default]
    Off,
    /// These codes, in configuration order; `Counters::codes` is `[other, each code...]`.
    List(Vec<u16>),
    /// Every code 100..=599; `Counters::codes` is `[other, 100, 101, ..., 599]`.
    All,
}

impl StatusCodes {
    /// The code of `Counters::codes[i]` (`None` for `other`, index 0).
    pub fn code_at(&self, i: usize) -> Option<u16> {
        match (self, i) {
            (_, 0) | (StatusCodes::Off, _) => None,
            (StatusCodes::List(v), i) => v.get(i - 1).copied(),
            (StatusCodes::All, i) => (i <= 500).then(|| 99 + i as u16),
        }
    }
}

/// Settings of the location that serves the scrape, and the zone's, that change the output.
#[derive(Clone, Debug, PartialEq)]
pub struct Display {
    /// The name of the sum of all server zones (`vhost_traffic_status_display_sum_key`).
    pub sum_key: Vec<u8>,
    pub method: AvgMethod,
    /// The averages' window; 0: every sample in the queue.
    pub period_ms: u64,
    /// The JSONP callback name, verbatim.
    pub jsonp: Vec<u8>,
    pub codes: StatusCodes,
    /// Histogram upper bounds in seconds, as configured, and in microseconds (as counted):
    /// the zone's, ascending; an entry's `buckets` count its samples per bound.
    pub bucket_seconds: Vec<f64>,
    pub bucket_us: Vec<u64>,
    /// `vhost_traffic_status_histogram_buckets` lists (milliseconds, configuration order),
    /// by entry tag: an entry shows the list of where it was registered. Empty: every entry
    /// shows the zone's bounds.
    pub bucket_lists_ms: Vec<Vec<u64>>,
    /// The zone keeps time queues (a `vhost_traffic_status_zone`). Without them (a `vts_zone`)
    /// the JSON shows 63 zero samples and `requestMsec` is the mean since the zone started.
    pub queues: bool,
}

impl Default for Display {
    fn default() -> Self {
        Display {
            sum_key: b"*".to_vec(),
            method: AvgMethod::Amm,
            period_ms: 60_000,
            jsonp: b"ngx_http_vhost_traffic_status_jsonp_callback".to_vec(),
            codes: StatusCodes::Off,
            bucket_seconds: Vec::new(),
            bucket_us: Vec::new(),
            bucket_lists_ms: Vec::new(),
            queues: true,
        }
    }
}

impl Display {
    /// The histogram an entry registered with `tag` shows: (bound in microseconds, samples at
    /// or below it), bounds in its list's order. `per_bucket` are the entry's counts per bound
    /// of the zone ([`Display::bucket_us`], the union of every list).
    pub fn histogram(&self, tag: u32, per_bucket: &[u64]) -> Vec<(u64, u64)> {
        let at_or_below = |bound_us: u64| {
            self.bucket_us
                .iter()
                .zip(per_bucket)
                .take_while(|(&b, _)| b <= bound_us)
                .fold(0u64, |n, (_, &c)| n.wrapping_add(c))
        };
        let bounds: Vec<u64> = if self.bucket_lists_ms.is_empty() {
            self.bucket_us.clone()
        } else {
            self.bucket_lists_ms
                .get(tag as usize)
                .map_or_else(Vec::new, |l| l.iter().map(|ms| ms.saturating_mul(1000)).collect())
        };
        bounds.into_iter().map(|b| (b, at_or_below(b))).collect()
    }
}

/// Everything one scrape shows.
#[derive(Clone, Debug, Default)]
pub struct View {
    pub info: Info,
    pub connections: Option<Connections>,
    pub shm: ShmUse,
    pub snapshot: Snapshot,
    /// Every configured peer, group by group in configuration order, peers in nginx's order;
    /// `None` when upstream statistics are off.
    pub peers: Option<Vec<PeerState>>,
    pub display: Display,
}

/// The average of a time queue `(unix ms, ms)`, oldest first, over the samples newer than
/// `now_ms - period_ms` (all of them when `period_ms` is 0), truncated to whole milliseconds.
pub fn average(queue: &[(u64, u64)], method: AvgMethod, period_ms: u64, now_ms: u64) -> u64 {
    let since = if period_ms > 0 {
        now_ms.saturating_sub(period_ms)
    } else {
        0
    };
    let considered = queue
        .iter()
        .filter(|(t, _)| *t > since)
        .map(|&(_, ms)| ms as u128);
    let (mut n, mut sum, mut weighted) = (0u128, 0u128, 0u128);
    for ms in considered {
        n += 1;
        sum += ms;
        weighted += n * ms;
    }
    if n == 0 {
        return 0;
    }
    let v = match method {
        AvgMethod::Amm => sum / n,
        AvgMethod::Wma => weighted / (n * (n + 1) / 2),
    };
    v.min(u64::MAX as u128) as u64
}

/// The newest `QUEUE_LEN` samples of several queues (each oldest first), oldest first.
pub fn merge_queues<'a>(queues: impl Iterator<Item = &'a [(u64, u64)]>) -> Vec<(u64, u64)> {
    let mut all: Vec<(u64, u64)> = queues.flatten().copied().collect();
    // Stable: samples of one instant keep the order they were merged in.
    all.sort_by_key(|&(t, _)| t);
    let skip = all.len().saturating_sub(QUEUE_LEN);
    all.drain(..skip);
    all
}

impl View {
    /// Server zones that counted something, by name. (Every configured server block has a
    /// key from the start; nginx-module-vts shows a zone once a request made it.)
    pub fn server_zones(&self) -> Vec<&Entry> {
        let mut v: Vec<&Entry> = self
            .snapshot
            .entries
            .iter()
            .filter(|e| e.kind == Kind::Server && e.counters.counted())
            .collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    /// The sum of every server zone (vozlt's sum entry): counters added, status codes added
    /// slot by slot, the newest samples of all queues; no histogram.
    pub fn server_sum(&self) -> Counters {
        let mut s = Counters::default();
        let servers = || {
            self.snapshot
                .entries
                .iter()
                .filter(|e| e.kind == Kind::Server || (e.kind == Kind::Overflow && e.name == b"server"))
        };
        for e in servers() {
            s.add(&e.counters);
        }
        s.queue = merge_queues(servers().map(|e| e.counters.queue.as_slice()));
        s.buckets.clear();
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn averages_over_the_window() {
        let q = [(0, 0), (1000, 10), (2000, 20), (3000, 60)];
        assert_eq!(average(&q, AvgMethod::Amm, 0, 3000), 30);
        // WMA: (1*10 + 2*20 + 3*60) / 6 = 230 / 6
        assert_eq!(average(&q, AvgMethod::Wma, 0, 3000), 38);
        // Only samples newer than now - period.
        assert_eq!(average(&q, AvgMethod::Amm, 1500, 3000), 40);
        assert_eq!(average(&q, AvgMethod::Amm, 60_000, 200_000), 0);
        assert_eq!(average(&[], AvgMethod::Wma, 0, 1), 0);
    }

    #[test]
    fn merged_queues_keep_the_newest() {
        let a: Vec<(u64, u64)> = (1..=50).map(|t| (t * 2, t)).collect();
        let b: Vec<(u64, u64)> = (1..=50).map(|t| (t * 2 + 1, 100 + t)).collect();
        let m = merge_queues([a.as_slice(), b.as_slice()].into_iter());
        assert_eq!(m.len(), QUEUE_LEN);
        assert_eq!(m.first(), Some(&(39, 119)));
        assert_eq!(m.last(), Some(&(101, 150)));
        assert!(m.windows(2).all(|w| w[0].0 <= w[1].0));
    }

    #[test]
    fn each_list_of_bounds_from_the_zones_counts() {
        let d = Display {
            // The union of [50, 5] and [500]: counts per bound below.
            bucket_us: vec![5_000, 50_000, 500_000],
            bucket_lists_ms: vec![vec![50, 5], vec![], vec![500]],
            ..Display::default()
        };
        let per_bucket = [3, 2, 1];
        assert_eq!(d.histogram(0, &per_bucket), [(50_000, 5), (5_000, 3)]);
        assert_eq!(d.histogram(1, &per_bucket), []);
        assert_eq!(d.histogram(2, &per_bucket), [(500_000, 6)]);
        assert_eq!(d.histogram(9, &per_bucket), []);
        let zone = Display {
            bucket_lists_ms: Vec::new(),
            ..d
        };
        assert_eq!(
            zone.histogram(0, &per_bucket),
            [(5_000, 3), (50_000, 5), (500_000, 6)]
        );
    }

    #[test]
    fn status_code_slots() {
        let l = StatusCodes::List(vec![200, 404]);
        assert_eq!(
            (l.code_at(0), l.code_at(1), l.code_at(2), l.code_at(3)),
            (None, Some(200), Some(404), None)
        );
        assert_eq!(
            (StatusCodes::All.code_at(1), StatusCodes::All.code_at(500)),
            (Some(100), Some(599))
        );
        assert_eq!(StatusCodes::All.code_at(501), None);
    }
}
