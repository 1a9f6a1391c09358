//! Kernel modules the initramfs brings along (overlayfs on a distro kernel
//! is a module): `/pod1/modules/load` lists their paths, one per line, in
//! load order. Each is loaded with finit_module; one already loaded (EEXIST)
//! is fine. A module that fails is logged and skipped: what needs it falls
//! back (the root filesystem is copied when overlayfs is missing).

use alloc::format;
use alloc::string::{String, ToString};

use rustix::fs::OFlags;
use rustix::system::finit_module;

use crate::console;
use crate::sys::{self, Errno};

/// The list of modules to load, inside the initramfs.
pub const LOAD_LIST: &str = "/pod1/modules/load";

/// Loads every module `list` names (paths relative to `root` if not absolute).
pub fn load_all(list: &str) {
    let Ok(text) = sys::read_to_string(list) else {
        return;
    };
    for line in text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let res = sys::open(line, OFlags::RDONLY, 0)
            .map_err(|e| e.to_string())
            .and_then(|f| match finit_module(&f, c"", 0).map_err(Errno::from) {
                Ok(()) | Err(Errno::EEXIST) => Ok(()),
                Err(Errno::ENOSYS) => Err(String::from(
                    "this kernel has no module support (build the module in)",
                )),
                Err(e) => Err(e.to_string()),
            });
        match res {
            Ok(()) => console::debug(&format!("loaded module {line}")),
            Err(e) => console::log(&format!("loading module {line}: {e}")),
        }
    }
}
