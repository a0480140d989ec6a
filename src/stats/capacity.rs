//! Capacity planning: the `vts_zone` size a workload needs.
//!
//! Pure arithmetic on the real allocation rules of [`super::layout`] and [`super::zone`], plus a
//! model of the nginx slab pool that hosts the region. No nginx symbol, no panic (all arithmetic
//! is checked; an impossible workload is an [`PlanError`]).
//!
//! # The formula
//!
//! With `K = 2 + Q + servers + peers × (1 + Q) + other` keys (the 2 overflow keys are always
//! there; `Q` = 1 with time queues, whose peers take a second slot), average name length `L`
//! (for a peer: group + peer address; the stored name adds a 4-byte prefix), `B` histogram
//! buckets, `C` status-code words and `S = min(workers × generations, 64)` shards that write:
//!
//! ```text
//! slot    = (14 + B + C + 66 × Q) × 8                 bytes (200 for B = 11, 240 for 16;
//!                                                     640 for nginx-module-vts's defaults)
//! chunk   = 16 × slot
//! N       = ⌈K / 16⌉                                  chunks per shard that writes every key
//! chunks  = 1 + S × N (+ N − 1 if workers × generations > 64: the shared shard writes too)
//! names   = 16 + (servers + other) × (L + 7) + peers × (L + 11)
//! pad     = 56 × min(chunks, K)                       cache-line alignment of chunks after names
//! A       = names + chunks × chunk + pad              arena bytes
//! R       = max(512 × K, ⌈(A + 4532) × 2048 / 1823⌉, A + 5432)   region bytes
//! pages   = ⌈R / 4096⌉
//! zone    = ⌈(704 + 24 × pages) / 4096⌉ × 4096 + 4096 × pages     smallest vts_zone size
//! recommended = ⌈(zone + 4096) / 65536⌉ × 65536                     one page of margin, 64 KiB steps
//! ```
//!
//! Where the terms come from:
//!
//! - `512 × K`: the directory holds `region / BYTES_PER_KEY` keys.
//! - The tables before the arena (header, 65 shard heads, 65 chunk tables of `⌈max_keys/16⌉`
//!   entries, `max_keys` 24-byte directory entries, a hash index of
//!   `next_pow2(2 × max_keys)` u32) take at most `4532 + 56.25 × max_keys` bytes, and
//!   `max_keys ≤ R / 512` once `R ≥ 8192`: hence `R × (1 − 225/2048) ≥ A + 4532`. Below
//!   8 KiB the tables are at most 5432 bytes. The bound is linear, so `R − tables(R)` only
//!   grows with `R`: any zone larger than the recommended one holds the workload too (the exact
//!   tables jump by a few KiB where the hash index doubles).
//! - Names are `name_bytes(len)` = `len` rounded up to 8; `L + 7` per key bounds the sum for
//!   any mix of lengths averaging `L`.
//! - `S`: during a graceful reload the old workers keep their shards and the new ones claim
//!   free shards, so `generations = 2` (the default of [`Workload::new`]) covers a reload;
//!   chunks stay allocated when a shard changes owner.
//! - nginx slab pool: see [`region_len_for_zone`].
use super::layout::{
    name_bytes, spec_slot_bytes, SlotSpec, BYTES_PER_KEY, MAX_BUCKETS, OWNED_SHARDS, SLOTS_PER_CHUNK,
};

/// nginx's page size on x86-64 Linux (`ngx_pagesize`).
pub const NGX_PAGE: usize = 4096;
/// `sizeof(ngx_slab_pool_t)` on x86-64 Linux, nginx 1.28 (POSIX semaphores, atomic ops).
pub const SLAB_POOL_HEADER: usize = 200;
/// `sizeof(ngx_slab_page_t)`: one per page of the pool, plus one per slot list head.
pub const SLAB_PAGE_DESC: usize = 24;
/// `sizeof(ngx_slab_stat_t)`: one per slot size.
pub const SLAB_STAT: usize = 32;
/// Slot sizes of the slab pool: `ngx_pagesize_shift (12) − min_shift (3)`.
pub const SLAB_SLOTS: usize = 9;
/// Bytes of the slab pool before its page descriptors: 200 + 9 × (24 + 32) = 704.
pub const SLAB_FIXED: usize = SLAB_POOL_HEADER + SLAB_SLOTS * (SLAB_PAGE_DESC + SLAB_STAT);
/// Granularity of the recommended size (so that it can be written `NNNk`).
pub const ROUND_TO: usize = 64 * 1024;

/// Bytes of the statistics region nginx gives the module in a `vts_zone` of `size` bytes.
///
/// This is `ngx_slab_init` replayed: after the pool header (200 bytes), 9 slot list heads and
/// 9 stat records (704 bytes in all) come `pages = (size − 704) / (4096 + 24)` page descriptors;
/// the pages start at the next 4096 boundary, and pages that no longer fit after that alignment
/// are dropped. The module then allocates every free page (`pfree × 4096`) as its region.
/// Exact for nginx 1.28 on x86-64 Linux (4 KiB pages, the constants above were checked with
/// `sizeof` against the headers nginx-sys builds); elsewhere approximate to within one page.
pub const fn region_len_for_zone(size: usize) -> usize {
    if size <= SLAB_FIXED {
        return 0;
    }
    let pages = (size - SLAB_FIXED) / (NGX_PAGE + SLAB_PAGE_DESC);
    let start = align_up(SLAB_FIXED + pages * SLAB_PAGE_DESC, NGX_PAGE);
    if start >= size {
        return 0;
    }
    let fit = (size - start) / NGX_PAGE;
    let pages = if fit < pages { fit } else { pages };
    pages * NGX_PAGE
}

/// The smallest `vts_zone` size whose region ([`region_len_for_zone`]) is at least `region`
/// bytes: `⌈(704 + 24 × pages) / 4096⌉ × 4096 + 4096 × pages`, `pages = ⌈region / 4096⌉`.
pub fn zone_for_region(region: usize) -> Option<usize> {
    let pages = region.div_ceil(NGX_PAGE);
    let descs = pages.checked_mul(SLAB_PAGE_DESC)?.checked_add(SLAB_FIXED)?;
    descs
        .checked_next_multiple_of(NGX_PAGE)?
        .checked_add(pages.checked_mul(NGX_PAGE)?)
}

const fn align_up(v: usize, a: usize) -> usize {
    v.div_ceil(a) * a
}

/// What the zone must hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Workload {
    /// `worker_processes`.
    pub workers: usize,
    /// Generations of workers that may hold shards at once: 1 without reloads, 2 (the default)
    /// while a graceful reload's old workers finish.
    pub generations: usize,
    /// Server zones (server blocks).
    pub servers: usize,
    /// Upstream peers (over all groups).
    pub peers: usize,
    /// Any other keys.
    pub other: usize,
    /// Average name length in bytes (for a peer: group name + peer address).
    pub name_len: usize,
    /// Histogram buckets (`vts_histogram_buckets`; 11 by default).
    pub buckets: usize,
    /// Status-code words (`vhost_traffic_status_measure_status_codes`: the codes plus one for
    /// `other`; 501 with `all`; 0 when not measured).
    pub codes: usize,
    /// Time queues (a `vhost_traffic_status_zone`): 528 bytes more per slot, and a second slot
    /// per upstream peer (its response times).
    pub queue: bool,
}

impl Workload {
    /// A workload with the default 11 buckets and room for a reload (2 generations).
    pub fn new(workers: usize, servers: usize, peers: usize, other: usize, name_len: usize) -> Workload {
        Workload {
            workers,
            generations: 2,
            servers,
            peers,
            other,
            name_len,
            buckets: 11,
            codes: 0,
            queue: false,
        }
    }

    /// A `vhost_traffic_status_zone` at its defaults: time queues, no histogram, no status
    /// codes, room for a reload.
    pub fn vozlt(workers: usize, servers: usize, peers: usize, other: usize, name_len: usize) -> Workload {
        Workload {
            buckets: 0,
            queue: true,
            ..Workload::new(workers, servers, peers, other, name_len)
        }
    }

    /// What a slot holds for this workload.
    pub fn spec(&self) -> SlotSpec {
        SlotSpec {
            nbuckets: self.buckets,
            ncodes: self.codes,
            queue: self.queue,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlanError {
    /// More than [`MAX_BUCKETS`] buckets.
    TooManyBuckets,
    /// The zone would exceed 4 GiB (offsets are 32-bit).
    TooLarge,
}

/// The plan for a [`Workload`]; every size is in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Plan {
    /// Keys, including the 2 overflow keys (and, with time queues, the second slot of every
    /// upstream peer and of the upstream overflow entry).
    pub keys: usize,
    /// Shards that write (`S`).
    pub shards: usize,
    pub slot_bytes: usize,
    pub chunk_bytes: usize,
    /// Chunks allocated, the shared shard's first one included.
    pub chunks: usize,
    /// Upper bound on the arena bytes of the names.
    pub name_bytes: usize,
    /// Upper bound on the arena bytes (names, chunks, alignment).
    pub arena_bytes: usize,
    /// Smallest region that holds the workload (by the formula).
    pub region_min: usize,
    /// Smallest `vts_zone` size giving that region.
    pub zone_min: usize,
    /// The size to configure: `zone_min` plus a page, rounded up to 64 KiB.
    pub zone: usize,
    /// The region nginx gives the module in a zone of the recommended size.
    pub region: usize,
}

impl Plan {
    /// Zone bytes per key and per writing shard.
    pub fn bytes_per_key_per_shard(&self) -> f64 {
        self.zone as f64 / (self.keys as f64 * self.shards.max(1) as f64)
    }
}

/// Plans the zone for `w` (see the module docs for the formula).
pub fn plan(w: &Workload) -> Result<Plan, PlanError> {
    if w.buckets > MAX_BUCKETS {
        return Err(PlanError::TooManyBuckets);
    }
    let big = PlanError::TooLarge;
    // With time queues, a peer's response times take the slot after its own.
    let per_peer = 1 + w.queue as usize;
    let keys = (2 + w.queue as usize)
        .checked_add(w.servers)
        .and_then(|k| k.checked_add(w.peers.checked_mul(per_peer)?))
        .and_then(|k| k.checked_add(w.other))
        .ok_or(big)?;
    let writers = w.workers.max(1).checked_mul(w.generations.max(1)).ok_or(big)?;
    let shards = writers.min(OWNED_SHARDS);
    let slot = spec_slot_bytes(&w.spec());
    let chunk = slot * SLOTS_PER_CHUNK;
    let per_shard = keys.div_ceil(SLOTS_PER_CHUNK);
    let mut chunks = shards
        .checked_mul(per_shard)
        .ok_or(big)?
        .checked_add(1)
        .ok_or(big)?;
    if writers > OWNED_SHARDS {
        chunks = chunks.checked_add(per_shard - 1).ok_or(big)?;
    }
    // Overflow keys "server" and "upstream": 8 bytes each.
    let overflow_names = name_bytes("server".len()) + name_bytes("upstream".len());
    let plain = w.name_len.checked_add(7).ok_or(big)?;
    let peer = w.name_len.checked_add(4 + 7).ok_or(big)?;
    let name_bytes = (w.servers.checked_add(w.other).ok_or(big)?)
        .checked_mul(plain)
        .and_then(|n| n.checked_add(w.peers.checked_mul(peer)?))
        .and_then(|n| n.checked_add(overflow_names))
        .ok_or(big)?;
    let pad = chunks.min(keys).checked_mul(56).ok_or(big)?;
    let arena = chunks
        .checked_mul(chunk)
        .and_then(|c| c.checked_add(name_bytes))
        .and_then(|c| c.checked_add(pad))
        .ok_or(big)?;
    let directory = keys.checked_mul(BYTES_PER_KEY).ok_or(big)?;
    let linear = arena
        .checked_add(4532)
        .and_then(|a| a.checked_mul(2048))
        .ok_or(big)?
        .div_ceil(1823);
    let small = arena.checked_add(5432).ok_or(big)?;
    let region_min = directory.max(linear).max(small);
    let zone_min = zone_for_region(region_min).ok_or(big)?;
    let zone = zone_min
        .checked_add(NGX_PAGE)
        .and_then(|z| z.checked_next_multiple_of(ROUND_TO))
        .ok_or(big)?;
    if zone > u32::MAX as usize {
        return Err(big);
    }
    Ok(Plan {
        keys,
        shards,
        slot_bytes: slot,
        chunk_bytes: chunk,
        chunks,
        name_bytes,
        arena_bytes: arena,
        region_min,
        zone_min,
        zone,
        region: region_len_for_zone(zone),
    })
}

#[cfg(test)]
mod tests {
    #[allow(unused_imports)]
    use super::*;

    #[test]
    fn slab_model() {
        // Replayed by hand from ngx_slab_init for a 1 MiB zone: 254 page descriptors fit in
        // (1048576 − 704) / 4120; the pages start at 4096 × 2; 254 pages fit after it.
        assert_eq!(region_len_for_zone(1 << 20), 254 * 4096);
        for region in [1usize, 4096, 4097, 1 << 20, 123_456_789] {
            let z = zone_for_region(region).unwrap();
            assert!(region_len_for_zone(z) >= region);
            assert!(region_len_for_zone(z - 1) < region);
        }
    }

    #[test]
    fn plan_is_monotone_in_every_input() {
        let base = Workload::new(2, 100, 50, 0, 24);
        let p = plan(&base).unwrap();
        for w in [
            Workload { workers: 3, ..base },
            Workload { servers: 101, ..base },
            Workload { peers: 51, ..base },
            Workload { name_len: 25, ..base },
            Workload { buckets: 30, ..base },
            Workload { codes: 3, ..base },
            Workload { queue: true, ..base },
        ] {
            assert!(plan(&w).unwrap().region_min >= p.region_min, "{w:?}");
        }
        assert_eq!(
            plan(&Workload { buckets: 65, ..base }),
            Err(PlanError::TooManyBuckets)
        );
        assert_eq!(
            plan(&Workload {
                servers: usize::MAX,
                ..base
            }),
            Err(PlanError::TooLarge)
        );
    }

    #[test]
    fn a_vozlt_zone_counts_the_queues_and_the_peers_second_slots() {
        let w = Workload::vozlt(2, 10, 5, 0, 24);
        let p = plan(&w).unwrap();
        // 2 overflow keys + the upstream overflow's second slot + 10 servers + 5 peers x 2.
        assert_eq!(p.keys, 23);
        assert_eq!(p.slot_bytes, 640);
        let all = plan(&Workload { codes: 501, ..w }).unwrap();
        assert_eq!(all.slot_bytes, 640 + 501 * 8);
        assert!(all.zone > p.zone);
    }
}
