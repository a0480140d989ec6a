//! The directive table nginx reads.
use core::ffi::{c_char, c_void};
use core::ptr;

use ngx::ffi::*;

use super::seed_directives::{cmd_buckets, cmd_status, cmd_zone};
use super::vozlt_directives::{cmd_display, cmd_upstream_stats, cmd_vozlt, cmd_vozlt_zone};
use super::LocConf;

/// The directive table.
pub static mut COMMANDS: [ngx_command_t; 18] = [
    command(
        "vts_zone\0",
        NGX_HTTP_MAIN_CONF | NGX_CONF_TAKE2,
        cmd_zone,
        MAIN,
        0,
    ),
    command(
        "vts_status\0",
        NGX_HTTP_LOC_CONF | NGX_CONF_NOARGS,
        cmd_status,
        LOC,
        0,
    ),
    command(
        "vts_upstream_stats\0",
        NGX_HTTP_MAIN_CONF | NGX_CONF_FLAG,
        cmd_upstream_stats,
        MAIN,
        0,
    ),
    command(
        "vts_histogram_buckets\0",
        NGX_HTTP_MAIN_CONF | NGX_CONF_1MORE,
        cmd_buckets,
        MAIN,
        0,
    ),
    command(
        "vts_status_cache\0",
        NGX_HTTP_MAIN_CONF | NGX_HTTP_SRV_CONF | NGX_HTTP_LOC_CONF | NGX_CONF_TAKE1,
        ngx_conf_set_msec_slot,
        LOC,
        core::mem::offset_of!(LocConf, cache),
    ),
    // nginx-module-vts's spellings (reference section 1).
    command(
        "vhost_traffic_status_zone\0",
        NGX_HTTP_MAIN_CONF | NGX_CONF_NOARGS | NGX_CONF_TAKE1,
        cmd_vozlt_zone,
        MAIN,
        0,
    ),
    command(
        "vhost_traffic_status\0",
        ANY_LEVEL | NGX_CONF_FLAG,
        ngx_conf_set_flag_slot,
        LOC,
        core::mem::offset_of!(LocConf, enable),
    ),
    command(
        "vhost_traffic_status_display\0",
        NGX_HTTP_SRV_CONF | NGX_HTTP_LOC_CONF | NGX_CONF_NOARGS | NGX_CONF_TAKE1,
        cmd_display,
        LOC,
        0,
    ),
    command(
        "vhost_traffic_status_display_format\0",
        NGX_HTTP_SRV_CONF | NGX_HTTP_LOC_CONF | NGX_CONF_TAKE1,
        cmd_vozlt,
        LOC,
        0,
    ),
    command(
        "vhost_traffic_status_display_jsonp\0",
        NGX_HTTP_SRV_CONF | NGX_HTTP_LOC_CONF | NGX_CONF_TAKE1,
        cmd_vozlt,
        LOC,
        0,
    ),
    command(
        "vhost_traffic_status_display_sum_key\0",
        NGX_HTTP_SRV_CONF | NGX_HTTP_LOC_CONF | NGX_CONF_TAKE1,
        cmd_vozlt,
        LOC,
        0,
    ),
    command(
        "vhost_traffic_status_average_method\0",
        ANY_LEVEL | NGX_CONF_TAKE12,
        cmd_vozlt,
        LOC,
        0,
    ),
    command(
        "vhost_traffic_status_histogram_buckets\0",
        ANY_LEVEL | NGX_CONF_1MORE,
        cmd_vozlt,
        LOC,
        0,
    ),
    command(
        "vhost_traffic_status_measure_status_codes\0",
        NGX_HTTP_MAIN_CONF | NGX_CONF_1MORE,
        cmd_vozlt,
        MAIN,
        0,
    ),
    command(
        "vhost_traffic_status_ignore_status\0",
        ANY_LEVEL | NGX_CONF_1MORE,
        cmd_vozlt,
        LOC,
        0,
    ),
    command(
        "vhost_traffic_status_stats_by_upstream\0",
        NGX_HTTP_MAIN_CONF | NGX_CONF_FLAG,
        cmd_upstream_stats,
        MAIN,
        0,
    ),
    command(
        "vhost_traffic_status_bypass_stats\0",
        ANY_LEVEL | NGX_CONF_FLAG,
        ngx_conf_set_flag_slot,
        LOC,
        core::mem::offset_of!(LocConf, bypass_stats),
    ),
    ngx_command_t::empty(),
];

const MAIN: ngx_uint_t = NGX_HTTP_MAIN_CONF_OFFSET;
const LOC: ngx_uint_t = NGX_HTTP_LOC_CONF_OFFSET;
const ANY_LEVEL: u32 = NGX_HTTP_MAIN_CONF | NGX_HTTP_SRV_CONF | NGX_HTTP_LOC_CONF;

type Handler = unsafe extern "C" fn(*mut ngx_conf_t, *mut ngx_command_t, *mut c_void) -> *mut c_char;

/// A directive. `name` ends in a NUL: nginx compares names with `ngx_strcmp`.
const fn command(
    name: &'static str,
    type_: u32,
    set: Handler,
    conf: ngx_uint_t,
    offset: usize,
) -> ngx_command_t {
    ngx_command_t {
        name: ngx_str_t {
            len: name.len() - 1,
            data: name.as_ptr() as *mut u8,
        },
        type_: type_ as ngx_uint_t,
        set: Some(set),
        conf,
        offset,
        post: ptr::null_mut(),
    }
}
