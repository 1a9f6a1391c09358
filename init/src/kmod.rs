//! Kernel modules the initramfs brings along (overlayfs on a distro kernel
//! is a module): `/pod1/modules/load` lists their paths, one per line, in
//! load order. Each is loaded with finit_module; one already loaded (EEXIST)
//! is fine. A module that fails is logged and skipped: what needs it falls
//! back (the root filesystem is copied when overlayfs is missing).

use std::fs::{self, File};
use std::path::Path;

use nix::errno::Errno;
use nix::kmod::{finit_module, ModuleInitFlags};

use crate::console;

/// The list of modules to load, inside the initramfs.
pub const LOAD_LIST: &str = "/pod1/modules/load";

/// Loads every module `list` names (paths relative to `root` if not absolute).
pub fn load_all(list: &Path) {
    let Ok(text) = fs::read_to_string(list) else {
        return;
    };
    for line in text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let path = Path::new(line);
        let res = File::open(path).map_err(|e| e.to_string()).and_then(|f| {
            match finit_module(&f, c"", ModuleInitFlags::empty()) {
                Ok(()) | Err(Errno::EEXIST) => Ok(()),
                Err(Errno::ENOSYS) => Err("this kernel has no module support (build the module in)".into()),
                Err(e) => Err(e.to_string()),
            }
        });
        match res {
            Ok(()) => console::debug(&format!("loaded module {line}")),
            Err(e) => console::log(&format!("loading module {line}: {e}")),
        }
    }
}
