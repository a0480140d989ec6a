//! nginx-module-vts's `vhost_traffic_status_*` directives (their values are parsed by the
//! pure `crate::conf::vozlt`, whose error texts are the C module's).
use core::ffi::{c_char, c_void};
use core::ptr;

use ngx::core::{NGX_CONF_ERROR, NGX_CONF_OK};
use ngx::ffi::*;
use ngx::http::{HttpModuleLocationConf, HttpModuleMainConf};
use ngx::ngx_conf_log_error;

use super::super::Module;
use super::{args, conflict, emerg, Dialect, LocConf, MainConf, ZoneConf};

/// The directive's name (for messages of handlers that serve two spellings).
unsafe fn directive(cf: *mut ngx_conf_t) -> &'static str {
    // SAFETY: args[0] is the directive's name, which is one of ours (ASCII).
    let name = unsafe { args(cf)[0].as_bytes() };
    COMMAND_NAMES
        .iter()
        .copied()
        .find(|n| n.as_bytes() == name)
        .unwrap_or("vts")
}

const COMMAND_NAMES: [&str; 2] = ["vts_upstream_stats", "vhost_traffic_status_stats_by_upstream"];

/// `vts_upstream_stats` and `vhost_traffic_status_stats_by_upstream`: one setting.
pub extern "C" fn cmd_upstream_stats(
    cf: *mut ngx_conf_t,
    _cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    // SAFETY: conf is our main conf; a FLAG directive has one argument.
    unsafe {
        let mcf = &mut *(conf as *mut MainConf);
        let this = directive(cf);
        match mcf.upstream_stats_by {
            Some(by) if by == this => return emerg(cf, format_args!("\"{this}\" directive is duplicate")),
            Some(by) => return conflict(cf, this, by),
            None => {}
        }
        let v = args(cf)[1].as_bytes();
        mcf.upstream_stats = if v.eq_ignore_ascii_case(b"on") {
            1
        } else if v.eq_ignore_ascii_case(b"off") {
            0
        } else {
            return emerg(
                cf,
                format_args!(
                    "invalid value \"{}\" in \"{this}\" directive, it must be \"on\" or \"off\"",
                    String::from_utf8_lossy(v)
                ),
            );
        };
        mcf.upstream_stats_by = Some(this);
    }
    NGX_CONF_OK
}

/// `vhost_traffic_status_zone [shared:NAME:SIZE]`.
pub extern "C" fn cmd_vozlt_zone(
    cf: *mut ngx_conf_t,
    _cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    use crate::conf::vozlt;
    // SAFETY: conf is our main conf; args has the name and at most one argument.
    unsafe {
        let mcf = &mut *(conf as *mut MainConf);
        let a = args(cf);
        let (name, size) = match a.get(1) {
            None => (vozlt::DEFAULT_ZONE_NAME.to_vec(), vozlt::DEFAULT_ZONE_SIZE),
            Some(arg) => match vozlt::parse_zone_arg(arg.as_bytes(), ngx_pagesize) {
                Ok(v) => v,
                Err(e) => return emerg(cf, e),
            },
        };
        match &mcf.zone {
            ZoneConf::Unset => {}
            _ if mcf.dialect == Dialect::Seed => {
                return conflict(cf, "vhost_traffic_status_zone", "vts_zone");
            }
            ZoneConf::Configured { name: first, .. } | ZoneConf::Requested { name: first, .. } => {
                return if first.as_bytes() == name.as_slice() {
                    emerg(
                        cf,
                        format_args!(
                            "vhost_traffic_status: \"{}\" is already bound to key",
                            String::from_utf8_lossy(&name)
                        ),
                    )
                } else {
                    emerg(
                        cf,
                        format_args!(
                            "vhost_traffic_status_zone \"{}\": only one zone is supported, \"{}\" is already declared",
                            String::from_utf8_lossy(&name),
                            String::from_utf8_lossy(first.as_bytes())
                        ),
                    )
                };
            }
        }
        let Some(name) = pool_str(cf, &name) else {
            return NGX_CONF_ERROR;
        };
        mcf.zone = ZoneConf::Configured { name, size };
        mcf.dialect = Dialect::Vozlt;
    }
    NGX_CONF_OK
}

/// A copy of `bytes` in the configuration's pool (nginx keeps pointers to zone names).
unsafe fn pool_str(cf: *mut ngx_conf_t, bytes: &[u8]) -> Option<ngx_str_t> {
    // SAFETY: the configuration pool lives as long as the cycle.
    unsafe {
        let p = ngx_pnalloc((*cf).pool, bytes.len().max(1)) as *mut u8;
        if p.is_null() {
            return None;
        }
        ptr::copy_nonoverlapping(bytes.as_ptr(), p, bytes.len());
        Some(ngx_str_t {
            len: bytes.len(),
            data: p,
        })
    }
}

/// `vhost_traffic_status_display`: this location (or server) serves the statistics.
pub extern "C" fn cmd_display(
    cf: *mut ngx_conf_t,
    _cmd: *mut ngx_command_t,
    conf: *mut c_void,
) -> *mut c_char {
    // SAFETY: conf is our location conf; the core location conf of this block is in cf->ctx.
    unsafe {
        (*(conf as *mut LocConf)).display = true;
        let Some(clcf) = ngx::http::NgxHttpCoreModule::location_conf_mut(&*cf) else {
            return NGX_CONF_ERROR;
        };
        clcf.handler = Some(super::super::STATUS_HANDLER);
    }
    NGX_CONF_OK
}

/// The `vhost_traffic_status_*` directives with one parsed argument list each.
pub extern "C" fn cmd_vozlt(cf: *mut ngx_conf_t, _cmd: *mut ngx_command_t, conf: *mut c_void) -> *mut c_char {
    use crate::conf::vozlt;
    // SAFETY: conf is the conf the table names for the directive; args are its words.
    unsafe {
        let a = args(cf);
        let name = a[0].as_bytes();
        let values: Vec<&[u8]> = a[1..].iter().map(|v| v.as_bytes()).collect();
        let lcf = || &mut *(conf as *mut LocConf);
        // One value per level, as nginx's own slots say.
        let duplicate = || {
            emerg(
                cf,
                format_args!("\"{}\" directive is duplicate", String::from_utf8_lossy(name)),
            )
        };
        match name {
            b"vhost_traffic_status_display_format" => match vozlt::parse_display_format(values[0]) {
                _ if lcf().format.is_some() => return duplicate(),
                Ok(f) => lcf().format = Some(f),
                Err(e) => return emerg(cf, e),
            },
            b"vhost_traffic_status_display_jsonp" if lcf().jsonp.is_some() => return duplicate(),
            b"vhost_traffic_status_display_jsonp" => lcf().jsonp = Some(values[0].to_vec()),
            b"vhost_traffic_status_display_sum_key" if lcf().sum_key.is_some() => return duplicate(),
            b"vhost_traffic_status_display_sum_key" => lcf().sum_key = Some(values[0].to_vec()),
            b"vhost_traffic_status_average_method" => {
                let l = lcf();
                match vozlt::parse_average_method(&values, l.avg_method.is_some()) {
                    Ok((m, period)) => {
                        l.avg_method = Some(m);
                        if let Some(p) = period {
                            l.avg_period = p as ngx_msec_t;
                        }
                    }
                    Err(e) => {
                        for line in e.lines() {
                            ngx_conf_log_error!(NGX_LOG_EMERG, cf, "{}", String::from_utf8_lossy(&line));
                        }
                        return NGX_CONF_ERROR;
                    }
                }
            }
            b"vhost_traffic_status_ignore_status" => {
                let l = lcf();
                // A second line at one level adds its classes (as the C module does).
                let (warnings, mask) = vozlt::parse_ignore_status(l.ignore.unwrap_or(0), &values);
                for w in warnings {
                    ngx_conf_log_error!(NGX_LOG_WARN, cf, "{}", w);
                }
                match mask {
                    Ok(m) => l.ignore = Some(m),
                    Err(e) => return emerg(cf, e),
                }
            }
            b"vhost_traffic_status_histogram_buckets" => {
                let Some(mcf) = Module::main_conf_mut(&*cf) else {
                    return NGX_CONF_ERROR;
                };
                let (ms, warning) = match vozlt::parse_histogram_buckets(&values) {
                    Ok(v) => v,
                    Err(e) => return emerg(cf, e),
                };
                if let Some(w) = warning {
                    // Printed at emerg level and accepted, as the C module does.
                    ngx_conf_log_error!(NGX_LOG_EMERG, cf, "{}", w);
                }
                if (*cf).cmd_type & NGX_HTTP_MAIN_CONF as ngx_uint_t != 0 {
                    match mcf.buckets_by {
                        Some("vts_histogram_buckets") => {
                            return conflict(
                                cf,
                                "vhost_traffic_status_histogram_buckets",
                                "vts_histogram_buckets",
                            )
                        }
                        // A later list at one level replaces the earlier one.
                        _ => {
                            mcf.bucket_lists[0] = ms;
                            mcf.buckets_by = Some("vhost_traffic_status_histogram_buckets");
                        }
                    }
                } else {
                    // (A later list at one level replaces the earlier one: its index wins.)
                    lcf().buckets_list = Some(mcf.bucket_lists.len() as u32);
                    mcf.bucket_lists.push(ms);
                }
            }
            b"vhost_traffic_status_measure_status_codes" => {
                let Some(mcf) = Module::main_conf_mut(&*cf) else {
                    return NGX_CONF_ERROR;
                };
                match vozlt::parse_status_codes(&values) {
                    Ok(c) => mcf.codes = c,
                    Err(e) => return emerg(cf, e),
                }
            }
            _ => return NGX_CONF_ERROR,
        }
    }
    NGX_CONF_OK
}
