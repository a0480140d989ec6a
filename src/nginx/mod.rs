//! The thin nginx layer: the module definition, directives, zone, and the two handlers. It
//! knows nothing of output formats beyond calling a renderer.
//!
//! Files, each with one job and no import cycle between them (each uses only those above it,
//! and the module definition here):
//! - `conf`: the directives, their values, the errors `nginx -t` prints;
//! - `zone`: the shared memory zone (request, layout at init, the slab lock);
//! - `live`: what nginx itself knows now (connections, peers, host name, clock);
//! - `peer_cache`, `worker`: a worker's state; `process`: worker start and exit;
//! - `request`: what one request contributes; `upstream`: its attempts; `log_phase`: the
//!   handler that counts them;
//! - `status`: the status locations (which output, the view, writing it in slices).

use core::ffi::c_void;
use core::ptr::{addr_of, addr_of_mut};

use ngx::ffi::*;
use ngx::http::{
    HttpModule, HttpModuleLocationConf, HttpModuleMainConf, HttpModuleServerConf, NgxHttpCoreModule,
};

pub mod conf;
pub mod live;
pub mod log_phase;
pub mod peer_cache;
pub mod process;
pub mod request;
pub mod status;
pub mod upstream;
pub mod worker;
pub mod zone;

use conf::{LocConf, MainConf, SrvConf, ZoneConf};

pub struct Module;

impl HttpModule for Module {
    fn module() -> &'static ngx_module_t {
        // SAFETY: the module static is initialised at load and only nginx writes its indexes.
        unsafe { &*addr_of!(ngx_http_vts_module) }
    }

    unsafe extern "C" fn postconfiguration(cf: *mut ngx_conf_t) -> ngx_int_t {
        // SAFETY: called once per configuration load with the http conf context.
        unsafe {
            let Some(cmcf) = NgxHttpCoreModule::main_conf_mut(&*cf) else {
                return NGX_ERROR as ngx_int_t;
            };
            let Some(mcf) = Module::main_conf(&*cf) else {
                return NGX_ERROR as ngx_int_t;
            };
            if matches!(mcf.zone, ZoneConf::Unset) {
                return NGX_OK as ngx_int_t; // no zone: nothing to count into, no cost per request
            }
            let h = ngx_array_push(&mut cmcf.phases[ngx_http_phases_NGX_HTTP_LOG_PHASE as usize].handlers)
                as *mut ngx_http_handler_pt;
            if h.is_null() {
                return NGX_ERROR as ngx_int_t;
            }
            *h = Some(log_phase::handler);
        }
        NGX_OK as ngx_int_t
    }
}

// SAFETY: the conf types below are the ones create_*_conf allocate for this module.
unsafe impl HttpModuleMainConf for Module {
    type MainConf = MainConf;
}
unsafe impl HttpModuleServerConf for Module {
    type ServerConf = SrvConf;
}
unsafe impl HttpModuleLocationConf for Module {
    type LocationConf = LocConf;
}

impl Module {
    pub fn main_conf_of(r: &ngx_http_request_t) -> Option<&'static MainConf> {
        Module::main_conf(r)
    }
}

impl MainConf {
    pub fn zone_name(&self) -> &[u8] {
        match &self.zone {
            ZoneConf::Configured { name, .. } | ZoneConf::Requested { name, .. } => name.as_bytes(),
            ZoneConf::Unset => b"",
        }
    }
}

/// The content handler of the status locations (set by their directives).
pub(crate) const STATUS_HANDLER: unsafe extern "C" fn(*mut ngx_http_request_t) -> ngx_int_t = status::handler;

/// After the http block: the configuration's defaults and checks, then the shared memory.
unsafe extern "C" fn init_main_conf(cf: *mut ngx_conf_t, conf: *mut c_void) -> *mut core::ffi::c_char {
    // SAFETY: nginx passes our main conf and the configuration being read.
    unsafe {
        let rc = conf::init_main_conf(cf, conf);
        if rc != ngx::core::NGX_CONF_OK {
            return rc;
        }
        let mcf = conf as *mut MainConf;
        if let ZoneConf::Configured { name, size } = (*mcf).zone {
            match zone::request(cf, mcf, name, size) {
                Some(shm_zone) => (*mcf).zone = ZoneConf::Requested { name, shm_zone },
                None => return ngx::core::NGX_CONF_ERROR,
            }
        }
        ngx::core::NGX_CONF_OK
    }
}

static NGX_HTTP_VTS_MODULE_CTX: ngx_http_module_t = ngx_http_module_t {
    preconfiguration: Some(Module::preconfiguration),
    postconfiguration: Some(Module::postconfiguration),
    create_main_conf: Some(Module::create_main_conf),
    init_main_conf: Some(init_main_conf),
    create_srv_conf: Some(Module::create_srv_conf),
    merge_srv_conf: Some(Module::merge_srv_conf),
    create_loc_conf: Some(Module::create_loc_conf),
    merge_loc_conf: Some(Module::merge_loc_conf),
};

// The table nginx reads from a loadable module; the nginx build system writes its own.
#[cfg(feature = "export-modules")]
ngx::ngx_modules!(ngx_http_vts_module);

#[used]
#[no_mangle]
#[allow(non_upper_case_globals)]
pub static mut ngx_http_vts_module: ngx_module_t = ngx_module_t {
    ctx: addr_of!(NGX_HTTP_VTS_MODULE_CTX) as *mut c_void,
    // SAFETY: nginx reads the command table; it is never moved.
    commands: unsafe { addr_of_mut!(conf::COMMANDS[0]) },
    type_: NGX_HTTP_MODULE as ngx_uint_t,
    init_process: Some(process::init_process),
    exit_process: Some(process::exit_process),
    ..ngx_module_t::default()
};
