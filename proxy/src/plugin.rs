//! `--plugin PATH.so[:CONFIG]`: shared libraries exporting `elstream_plugin_v1`
//! (include/elstream_plugin.h), run as sinks on their own threads.

use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::path::{Path, PathBuf};

use crate::consumer::Consumer;

pub const ABI_VERSION: u32 = 1;
pub const SYMBOL: &[u8] = b"elstream_plugin_v1";

/// `elstream_plugin_v1` in include/elstream_plugin.h.
#[repr(C)]
pub struct VtableV1 {
    pub abi_version: u32,
    pub name: *const c_char,
    pub init: Option<unsafe extern "C" fn(*const c_char, *mut c_char, usize) -> *mut c_void>,
    pub on_header: Option<unsafe extern "C" fn(*mut c_void, *const u8, usize) -> c_int>,
    pub on_block: Option<unsafe extern "C" fn(*mut c_void, *const u8, usize) -> c_int>,
    pub on_drop: Option<unsafe extern "C" fn(*mut c_void, u64, u64) -> c_int>,
    pub on_stop: Option<unsafe extern "C" fn(*mut c_void) -> c_int>,
    pub fini: Option<unsafe extern "C" fn(*mut c_void)>,
}

/// A `--plugin` argument.
#[derive(Clone, Debug)]
pub struct PluginSpec {
    pub path: PathBuf,
    pub config: String,
}

impl std::str::FromStr for PluginSpec {
    type Err = String;
    fn from_str(s: &str) -> Result<PluginSpec, String> {
        // The config follows the first ':' after the library's name.
        let (path, config) = match s.find(".so:") {
            Some(i) => (&s[..i + 3], &s[i + 4..]),
            None => (s, ""),
        };
        if path.is_empty() {
            return Err("--plugin needs PATH.so[:CONFIG]".into());
        }
        Ok(PluginSpec {
            path: PathBuf::from(path),
            config: config.to_string(),
        })
    }
}

pub struct Plugin {
    name: String,
    vt: &'static VtableV1,
    ctx: *mut c_void,
    // Last: the library is unloaded after the vtable is no longer used.
    _lib: libloading::Library,
}

// SAFETY: the plugin ABI says every call for one plugin comes from one thread at
// a time; the context pointer is only used on the sink's thread.
unsafe impl Send for Plugin {}

impl Plugin {
    /// Loads and initializes a plugin; the error text says why it was refused.
    pub fn load(spec: &PluginSpec) -> Result<Plugin, String> {
        let path = spec.path.display();
        let abs: &Path = &spec.path;
        // SAFETY: loading a library runs its initializers: the user chose to
        // trust it by naming it on the command line.
        let lib = unsafe { libloading::Library::new(abs) }
            .map_err(|e| format!("plugin {path}: cannot load: {e}"))?;
        // SAFETY: the symbol's type is fixed by the ABI (include/elstream_plugin.h).
        let entry: libloading::Symbol<unsafe extern "C" fn() -> *const VtableV1> =
            unsafe { lib.get(SYMBOL) }.map_err(|e| {
                format!(
                "plugin {path}: no `elstream_plugin_v1` entry point (not an elstream plugin?): {e}"
            )
            })?;
        // SAFETY: calling the entry point as the ABI declares it.
        let vt = unsafe { entry() };
        if vt.is_null() {
            return Err(format!("plugin {path}: elstream_plugin_v1() returned NULL"));
        }
        // SAFETY: non-null; the ABI says the vtable lives as long as the library
        // (which we keep loaded for as long as the vtable is used).
        let vt: &'static VtableV1 = unsafe { &*vt };
        if vt.abi_version != ABI_VERSION {
            return Err(format!(
                "plugin {path}: ABI version {} but this proxy speaks version {ABI_VERSION}",
                vt.abi_version
            ));
        }
        let name = if vt.name.is_null() {
            spec.path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| path.to_string())
        } else {
            // SAFETY: a non-null name is a NUL-terminated string (the ABI).
            unsafe { CStr::from_ptr(vt.name) }
                .to_string_lossy()
                .into_owned()
        };
        let (Some(init), Some(_), Some(_), Some(_), Some(_)) =
            (vt.init, vt.on_header, vt.on_block, vt.on_drop, vt.on_stop)
        else {
            return Err(format!(
                "plugin {name} ({path}): the vtable lacks a callback (init, on_header, on_block, on_drop and on_stop are required)"
            ));
        };
        let config = CString::new(spec.config.as_str())
            .map_err(|_| format!("plugin {name}: config contains a NUL byte"))?;
        let mut err = vec![0 as c_char; 1024];
        // SAFETY: the config is NUL-terminated; err is writable for its length.
        let ctx = unsafe { init(config.as_ptr(), err.as_mut_ptr(), err.len() - 1) };
        if ctx.is_null() {
            // SAFETY: err is NUL-terminated (zeroed, last byte never given out).
            let msg = unsafe { CStr::from_ptr(err.as_ptr()) }.to_string_lossy();
            return Err(format!(
                "plugin {name} ({path}): init refused: {}",
                if msg.is_empty() {
                    "no reason given"
                } else {
                    &msg
                }
            ));
        }
        Ok(Plugin {
            name,
            vt,
            ctx,
            _lib: lib,
        })
    }

    fn check(&self, what: &str, rc: c_int) -> Result<(), String> {
        if rc == 0 {
            Ok(())
        } else {
            Err(format!("plugin {}: {what} returned {rc}", self.name))
        }
    }
}

impl Consumer for Plugin {
    fn name(&self) -> String {
        format!("plugin {}", self.name)
    }
    fn on_header(&mut self, header: &[u8]) -> Result<(), String> {
        // SAFETY: checked non-null at load; bytes valid for the call.
        let rc =
            unsafe { self.vt.on_header.expect("checked")(self.ctx, header.as_ptr(), header.len()) };
        self.check("on_header", rc)
    }
    fn on_block(&mut self, block: &[u8]) -> Result<(), String> {
        // SAFETY: as above.
        let rc =
            unsafe { self.vt.on_block.expect("checked")(self.ctx, block.as_ptr(), block.len()) };
        self.check("on_block", rc)
    }
    fn on_drop(&mut self, blocks: u64, bytes: u64) -> Result<(), String> {
        // SAFETY: as above.
        let rc = unsafe { self.vt.on_drop.expect("checked")(self.ctx, blocks, bytes) };
        self.check("on_drop", rc)
    }
    fn on_stop(&mut self) -> Result<(), String> {
        // SAFETY: as above.
        let rc = unsafe { self.vt.on_stop.expect("checked")(self.ctx) };
        self.check("on_stop", rc)
    }
    fn finish(&mut self) {
        if let Some(fini) = self.vt.fini {
            // SAFETY: once, last, on the plugin's thread.
            unsafe { fini(self.ctx) };
        }
    }
}
