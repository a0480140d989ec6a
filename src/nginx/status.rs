//! The `vts_status` content handler: sum the shards, write the text (in slices between the
//! worker's events when it is big), send it.
use core::cell::RefCell;
use core::panic::AssertUnwindSafe;
use std::rc::Rc;

use ngx::ffi::*;
use ngx::http::HttpModuleLocationConf;
use ngx::ngx_string;

use super::conf::{LocConf, MainConf, ZoneConf};
use super::live::{connections, hostname, now_ms, peer_states};
use super::worker::{worker, Worker};
use crate::render::output::{is_control, Output};
use crate::render::prometheus::Scrape;
use crate::render::{json::JsonScrape, vozlt::VozltScrape, Renderer};
use crate::stats::{Kind, Merge};
use crate::view::{Display, Info, ShmUse, View};

const MODULE_VERSION: &str = env!("CARGO_PKG_VERSION");

/// A rendered scrape kept for `vts_status_cache`.
struct Cached {
    format: Output,
    /// `ngx_current_msec` when its numbers were read.
    at: ngx_msec_t,
    /// The zone's render sequence number of this scrape.
    seq: u64,
    body: Rc<Text>,
}

/// A scrape's text. When its last reference goes (the response was sent, or a cached text was
/// replaced), the buffer is kept for this worker's next scrape: a fresh buffer the size of a
/// 10,000-key text (18 MB) costs a page fault per 4 KB, about 5,000 per scrape, which took the
/// kernel more time than the render took.
struct Text(Vec<u8>);

impl Drop for Text {
    fn drop(&mut self) {
        let buf = core::mem::take(&mut self.0);
        // (try_with: nothing to keep once the worker's thread-locals are gone.)
        let _ = SPARE.try_with(|s| {
            if let Ok(mut spare) = s.try_borrow_mut() {
                // One buffer at most: the larger one.
                if spare.as_ref().map_or(true, |o| o.capacity() < buf.capacity()) {
                    *spare = Some(buf);
                }
            }
        });
    }
}

/// A buffer for a scrape's text with room for `hint` bytes: the kept one if there is one.
fn buffer(hint: usize) -> Vec<u8> {
    let mut v = SPARE.with(|s| s.borrow_mut().take()).unwrap_or_default();
    v.clear();
    v.reserve(hint);
    v
}

std::thread_local! {
    /// This worker's last scrape size plus an eighth (a worker runs handlers on one thread).
    static LAST_SIZE: core::cell::Cell<usize> = const { core::cell::Cell::new(0) };
    /// This worker's last scrape, when a location caches them.
    static CACHE: RefCell<Option<Cached>> = const { RefCell::new(None) };
    /// The buffer of a sent scrape, for the next one (see [`Text`]).
    static SPARE: RefCell<Option<Vec<u8>>> = const { RefCell::new(None) };
}

/// The cached scrape in `format`, if it is younger than `ttl` milliseconds and no worker
/// rendered a scrape since: another worker's newer numbers must never be followed by this
/// worker's older ones (a counter going down reads as a reset to Prometheus).
fn cached(w: &Worker, format: Output, ttl: ngx_msec_t) -> Option<Rc<Text>> {
    if ttl == 0 {
        return None;
    }
    // SAFETY: ngx_current_msec is nginx's cached clock, updated by the event loop.
    let now = unsafe { ngx_current_msec };
    let last = w.zone.last_render();
    CACHE.with(|c| {
        c.borrow()
            .as_ref()
            .filter(|e| e.format == format && e.seq == last && now.wrapping_sub(e.at) < ttl)
            .map(|e| e.body.clone())
    })
}

pub unsafe extern "C" fn handler(r: *mut ngx_http_request_t) -> ngx_int_t {
    std::panic::catch_unwind(AssertUnwindSafe(|| unsafe { serve(r) }))
        .unwrap_or(NGX_HTTP_INTERNAL_SERVER_ERROR as ngx_int_t)
}

/// The request's `Accept` header, if any.
fn accept(r: &ngx_http_request_t) -> &[u8] {
    // SAFETY: the headers list belongs to the request and holds ngx_table_elt_t.
    unsafe {
        let mut part: *const ngx_list_part_t = &r.headers_in.headers.part;
        while let Some(p) = part.as_ref() {
            let elts = core::slice::from_raw_parts(p.elts as *const ngx_table_elt_t, p.nelts);
            for h in elts {
                if h.key.as_bytes().eq_ignore_ascii_case(b"accept") {
                    return h.value.as_bytes();
                }
            }
            part = p.next;
        }
    }
    b""
}

/// Sends a short plain-text answer with `status`.
unsafe fn plain(r: *mut ngx_http_request_t, status: ngx_uint_t, text: &'static str) -> ngx_int_t {
    // SAFETY: r is a live request in its content phase.
    unsafe {
        let rr = &mut *r;
        rr.headers_out.status = status;
        rr.headers_out.content_length_n = text.len() as off_t;
        set_content_type(rr, "text/plain");
        if rr.method == NGX_HTTP_HEAD as ngx_uint_t {
            rr.set_header_only(1);
            return ngx_http_send_header(r);
        }
        send_bytes(r, text.as_bytes())
    }
}

/// Sends the headers, then `body` as one in-memory buffer (not copied: it must live as long
/// as the request).
unsafe fn send_bytes(r: *mut ngx_http_request_t, body: &[u8]) -> ngx_int_t {
    // SAFETY: r is a live request; the buffer points at `body`, which outlives it (caller).
    unsafe {
        let rr = &mut *r;
        let b = ngx_pcalloc(rr.pool, core::mem::size_of::<ngx_buf_t>()) as *mut ngx_buf_t;
        if b.is_null() {
            return NGX_HTTP_INTERNAL_SERVER_ERROR as ngx_int_t;
        }
        let data = body.as_ptr() as *mut u8;
        (*b).start = data;
        (*b).pos = data;
        (*b).last = data.add(body.len());
        (*b).end = (*b).last;
        (*b).set_memory(1);
        (*b).set_last_buf(1);
        (*b).set_last_in_chain(1);
        let rc = ngx_http_send_header(r);
        if rc == NGX_ERROR as ngx_int_t || rc > NGX_OK as ngx_int_t || rr.header_only() != 0 {
            return rc;
        }
        let mut out = ngx_chain_t {
            buf: b,
            next: core::ptr::null_mut(),
        };
        ngx_http_output_filter(r, &mut out)
    }
}

fn set_content_type(rr: &mut ngx_http_request_t, ct: &'static str) {
    rr.headers_out.content_type.len = ct.len();
    rr.headers_out.content_type.data = ct.as_ptr() as *mut u8;
    rr.headers_out.content_type_len = ct.len();
    rr.headers_out.content_type_lowcase = core::ptr::null_mut();
}

unsafe fn serve(r: *mut ngx_http_request_t) -> ngx_int_t {
    // SAFETY: r is the request nginx passes to the content handler.
    unsafe {
        let rr = &mut *r;
        let Some(lcf) = super::Module::location_conf(rr) else {
            return NGX_HTTP_INTERNAL_SERVER_ERROR as ngx_int_t;
        };
        let lcf: &LocConf = lcf;
        let w = worker();
        // A display location without a zone answers 501 (nginx-module-vts checks this first).
        if lcf.display && w.is_none() {
            return NGX_HTTP_NOT_IMPLEMENTED as ngx_int_t;
        }
        if rr.method & (NGX_HTTP_GET | NGX_HTTP_HEAD) as ngx_uint_t == 0 {
            return NGX_HTTP_NOT_ALLOWED as ngx_int_t;
        }
        let rc = ngx_http_discard_request_body(r);
        if rc != NGX_OK as ngx_int_t {
            return rc;
        }
        let Some(w) = w else {
            return NGX_HTTP_SERVICE_UNAVAILABLE as ngx_int_t;
        };
        let uri = rr.uri.as_bytes();
        if lcf.display && is_control(uri) {
            return plain(
                r,
                NGX_HTTP_NOT_IMPLEMENTED as ngx_uint_t,
                "ngx_vts: the control API (/control) is not implemented yet\n",
            );
        }
        let format = Output::of(lcf.display, lcf.format, uri, accept(rr));
        if format == Output::Html {
            return plain(
                r,
                NGX_HTTP_NOT_IMPLEMENTED as ngx_uint_t,
                "ngx_vts: the HTML page is not implemented yet; use /format/json or /format/prometheus\n",
            );
        }
        // A display location answers HEAD with its headers alone, as nginx-module-vts does.
        if lcf.display && rr.method == NGX_HTTP_HEAD as ngx_uint_t {
            rr.headers_out.status = NGX_HTTP_OK as ngx_uint_t;
            set_content_type(rr, format.content_type());
            rr.set_header_only(1);
            return ngx_http_send_header(r);
        }
        let ttl = lcf.cache_ttl();
        let body = match cached(w, format, ttl) {
            Some(body) => body,
            None => {
                // Read before any counter: a render counted since makes this one not the last.
                let before = w.zone.last_render();
                let mut job = Job {
                    phase: Phase::Summing(w.zone.merge()),
                    // The last scrape's size, so the text is written without regrowing it.
                    text: buffer(LAST_SIZE.with(|l| l.get()) + 4096),
                    format,
                    ttl,
                    before,
                    started: ngx_current_msec,
                    r,
                    event: core::mem::zeroed(),
                };
                // While a request body is still being discarded, nginx arms a lingering timer
                // that would cut a deferred scrape short: then all of it now, as one slice.
                let whole = rr.discard_body() != 0;
                if !job.advance(w, whole) {
                    return defer(r, job);
                }
                job.finish(w)
            }
        };
        send(r, format, body)
    }
}

/// What the scrape shows besides the counters: nginx's live state and the settings of the
/// location that serves it.
fn view(w: &Worker, rr: &ngx_http_request_t, snapshot: crate::stats::Snapshot) -> View {
    let mcf: Option<&MainConf> = super::Module::main_conf_of(rr);
    let lcf: Option<&LocConf> = super::Module::location_conf(rr);
    let mut display = Display::default();
    if let Some(l) = lcf {
        if let Some(k) = &l.sum_key {
            display.sum_key.clone_from(k);
        }
        if let Some(j) = &l.jsonp {
            display.jsonp.clone_from(j);
        }
        display.method = l.avg_method.unwrap_or_default();
        display.period_ms = l.avg_period_ms();
    }
    let mut shm = ShmUse {
        name: Vec::new(),
        max_size: snapshot.size_bytes as u64,
        used_size: snapshot.used_bytes as u64,
        free_size: snapshot.size_bytes.saturating_sub(snapshot.used_bytes) as u64,
        // Keys that counted something: nginx-module-vts makes a node at a key's first sample.
        used_node: snapshot
            .entries
            .iter()
            .filter(|e| e.kind != Kind::Overflow && e.counters.counted())
            .count() as u64,
        max_node: snapshot.max_keys as u64,
    };
    let mut load_msec = 0;
    if let Some(m) = mcf {
        shm.name = m.zone_name().to_vec();
        if let ZoneConf::Requested { shm_zone, .. } = m.zone {
            // SAFETY: the zone nginx made for this configuration lives as long as the cycle.
            shm.max_size = unsafe { (*shm_zone).shm.size } as u64;
        }
        display.codes = m.codes.clone();
        display.bucket_seconds = m.bucket_seconds().to_vec();
        display.bucket_us = m.buckets().to_vec();
        if m.bucket_lists.iter().any(|l| !l.is_empty()) {
            display.bucket_lists_ms.clone_from(&m.bucket_lists);
        }
        display.queues = w.vozlt;
        load_msec = m.load_msec;
    }
    View {
        info: Info {
            hostname: hostname().to_vec(),
            module_version: MODULE_VERSION.to_string(),
            nginx_version: NGINX_VERSION.to_str().unwrap_or("").to_string(),
            load_msec,
            now_msec: now_ms(),
        },
        connections: connections(),
        shm,
        snapshot,
        peers: w.upstream_stats.then(|| peer_states(w.vozlt)),
        display,
    }
}

/// Text written per turn of the event loop: about 40 us of a worker's time. Between slices the
/// worker serves whatever else is ready, so a scrape of many keys takes longer but never holds
/// the worker's other connections for more than a slice.
const SLICE_BYTES: usize = 64 * 1024;

/// Shard slots summed per turn of the event loop: about 40 us too (10,000 keys written by 64
/// workers are 640,000 slots, 12 ms in one go).
const SLICE_SLOTS: usize = 2048;

/// The timer of a deferred scrape (see [`defer`]); it only matters if it is still being written
/// by then, and then it just calls the next slice early.
const KEEPALIVE_MS: ngx_msec_t = 60_000;

// The Job is boxed whole when it is deferred, and there is one per scrape: the size of the
// largest phase costs nothing worth an extra allocation.
#[allow(clippy::large_enum_variant)]
enum Phase {
    /// Summing the shards.
    Summing(Merge),
    /// Writing the text.
    Writing(Box<dyn Renderer>),
    /// The text is complete (the request may live on while it is sent).
    Done,
}

/// A scrape in progress. When it does not fit in one slice it is boxed, owned by the
/// request's pool (a cleanup frees it), so it lives exactly as long as the request.
struct Job {
    phase: Phase,
    text: Vec<u8>,
    format: Output,
    ttl: ngx_msec_t,
    /// `last_render()` before the sum, and `ngx_current_msec` then: the cached text's age
    /// counts from when its numbers were read.
    before: u64,
    started: ngx_msec_t,
    r: *mut ngx_http_request_t,
    /// Posted to `ngx_posted_next_events`: handled after the next round of I/O events.
    event: ngx_event_t,
}

impl Job {
    /// One slice of work (all of it if `whole`): a step of the sum and, once the sum is
    /// complete, a slice of text. True once the text is complete.
    fn advance(&mut self, w: &Worker, whole: bool) -> bool {
        let (slots, bytes) = if whole {
            (usize::MAX, usize::MAX)
        } else {
            (SLICE_SLOTS, SLICE_BYTES)
        };
        if let Phase::Summing(m) = &mut self.phase {
            if !m.step(&w.zone, slots) {
                return false;
            }
            let Phase::Summing(m) = core::mem::replace(&mut self.phase, Phase::Done) else {
                unreachable!()
            };
            // SAFETY: the Job's request is open (see defer).
            let rr = unsafe { &*self.r };
            let v = view(w, rr, m.finish());
            let renderer: Box<dyn Renderer> = match self.format {
                Output::Seed(f) => Box::new(Scrape::new(v, f)),
                Output::Vozlt(f) => Box::new(VozltScrape::new(v, f)),
                Output::Json => Box::new(JsonScrape::new(v, false)),
                Output::Jsonp => Box::new(JsonScrape::new(v, true)),
                // (Answered before a scrape starts.)
                Output::Html => Box::new(JsonScrape::new(v, false)),
            };
            self.phase = Phase::Writing(renderer);
        }
        if let Phase::Writing(s) = &mut self.phase {
            if !s.write(&mut self.text, bytes) {
                return false;
            }
        }
        // The renderer's state (the snapshot) goes now, not when the request ends.
        self.phase = Phase::Done;
        true
    }

    /// The complete text. Counts the render (so that it invalidates the other workers'
    /// caches) and keeps the text when this location caches scrapes.
    fn finish(&mut self, w: &Worker) -> Rc<Text> {
        let text = core::mem::take(&mut self.text);
        LAST_SIZE.with(|l| l.set(text.len() + text.len() / 8));
        let body = Rc::new(Text(text));
        match w.zone.count_render(self.before) {
            Some(seq) if self.ttl > 0 => CACHE.with(|c| {
                *c.borrow_mut() = Some(Cached {
                    format: self.format,
                    at: self.started,
                    seq,
                    body: body.clone(),
                })
            }),
            _ => CACHE.with(|c| *c.borrow_mut() = None),
        }
        body
    }
}

/// Hands `job` to the event loop and keeps the request open until it is done.
unsafe fn defer(r: *mut ngx_http_request_t, job: Job) -> ngx_int_t {
    // SAFETY: r is the live request; the Box is freed only by the pool cleanup registered
    // here, which also takes the event off the posted queue, so the event never outlives it.
    unsafe {
        let cln = ngx_pool_cleanup_add((*r).pool, 0);
        if cln.is_null() {
            return NGX_HTTP_INTERNAL_SERVER_ERROR as ngx_int_t;
        }
        let job = Box::into_raw(Box::new(job));
        (*cln).handler = Some(drop_job);
        (*cln).data = job.cast();
        let ev = &mut (*job).event;
        ev.handler = Some(next_slice);
        // nginx's debug log names a timer by `((ngx_connection_t *) ev->data)->fd`.
        ev.data = (*r).connection.cast();
        ev.log = (*(*r).connection).log;
        // A timer that is not cancelable keeps a worker that is shutting down gracefully (a
        // reload) alive until the scrape is sent: posted events alone do not.
        ngx_add_timer(ev, KEEPALIVE_MS);
        // The request stays open (count) until next_slice finalizes it.
        let main = &mut *(*r).main;
        main.set_count(main.count() + 1);
        ngx_post_event(ev, core::ptr::addr_of_mut!(ngx_posted_next_events));
        NGX_DONE as ngx_int_t
    }
}

/// Pool cleanup: the request is gone (finished, or terminated while a slice was pending).
unsafe extern "C" fn drop_job(data: *mut core::ffi::c_void) {
    // SAFETY: data is the Box made in defer, freed only here.
    unsafe {
        let mut job = Box::from_raw(data as *mut Job);
        if job.event.posted() != 0 {
            ngx_delete_posted_event(&mut job.event);
        }
        if job.event.timer_set() != 0 {
            ngx_del_timer(&mut job.event);
        }
    }
}

/// Writes the next slice; once the text is complete, sends it and finishes the request.
unsafe extern "C" fn next_slice(ev: *mut ngx_event_t) {
    // SAFETY: ev is the event inside a live Job (drop_job unposts it and deletes its timer
    // before freeing), and the Job's request is open (its count holds it).
    unsafe {
        let job = ev.byte_sub(core::mem::offset_of!(Job, event)) as *mut Job;
        let r = (*job).r;
        let c = (*r).connection;
        let rc = std::panic::catch_unwind(AssertUnwindSafe(|| {
            let Some(w) = worker() else {
                return Some(NGX_HTTP_SERVICE_UNAVAILABLE as ngx_int_t);
            };
            // (Another call after the text was complete would be a bug: answer with an error.)
            if matches!((*job).phase, Phase::Done) {
                return Some(NGX_HTTP_INTERNAL_SERVER_ERROR as ngx_int_t);
            }
            if !(*job).advance(w, false) {
                // (The timer, if it fired, only called this early: the slices go on.)
                if (*ev).timer_set() == 0 {
                    ngx_add_timer(ev, KEEPALIVE_MS);
                }
                ngx_post_event(ev, core::ptr::addr_of_mut!(ngx_posted_next_events));
                return None;
            }
            let body = (*job).finish(w);
            Some(send(r, (*job).format, body))
        }))
        .unwrap_or(Some(NGX_HTTP_INTERNAL_SERVER_ERROR as ngx_int_t));
        if let Some(rc) = rc {
            // Nothing may call this again once the request is finalized: the timer can run it
            // while the event is also posted (timers expire before posted events run), and a
            // panic can leave either armed.
            if (*ev).posted() != 0 {
                ngx_delete_posted_event(ev);
            }
            if (*ev).timer_set() != 0 {
                ngx_del_timer(ev);
            }
            // May free the request, its pool and the Job: nothing of them is used after this.
            ngx_http_finalize_request(r, rc);
            ngx_http_run_posted_requests(c);
        }
    }
}

/// Sends the status page: headers, and the body unless the method is HEAD.
unsafe fn send(r: *mut ngx_http_request_t, format: Output, body: Rc<Text>) -> ngx_int_t {
    // SAFETY: r is a live request in its content phase (or a deferred one kept open).
    unsafe {
        let rr = &mut *r;
        rr.headers_out.status = NGX_HTTP_OK as ngx_uint_t;
        rr.headers_out.content_length_n = body.0.len() as off_t;
        set_content_type(rr, format.content_type());
        // The body depends on Accept (text format or OpenMetrics, or JSON at `vts_status`):
        // tell caches so.
        // (At a `vts_status` location every answer depends on Accept: JSON or a text format.)
        let seed_location = super::Module::location_conf(rr).is_some_and(|l: &LocConf| l.status);
        if format.varies() || seed_location {
            let vary = ngx_list_push(&mut rr.headers_out.headers) as *mut ngx_table_elt_t;
            if vary.is_null() {
                return NGX_HTTP_INTERNAL_SERVER_ERROR as ngx_int_t;
            }
            (*vary).hash = 1;
            (*vary).key = ngx_string!("Vary");
            (*vary).value = ngx_string!("Accept");
            (*vary).next = core::ptr::null_mut();
        }

        if rr.method == NGX_HTTP_HEAD as ngx_uint_t || body.0.is_empty() {
            rr.set_header_only(1);
            return ngx_http_send_header(r);
        }
        // Hand the rendered text to nginx as it is (a 10k-key scrape is ~18 MB: no copy). The
        // pool holds a reference and drops it with the request.
        let pool = ngx::core::Pool::from_ngx_pool(rr.pool);
        let owned = pool.allocate(body);
        if owned.is_null() {
            return NGX_HTTP_INTERNAL_SERVER_ERROR as ngx_int_t;
        }
        let text: &Rc<Text> = &*owned;
        send_bytes(r, &text.0)
    }
}
