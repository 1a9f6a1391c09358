//! `pod1` as a library: the builder's modules, shared by the `pod1` binary
//! (`main.rs`, the command line) and by whatever drives them directly, such
//! as the fuzz targets in `fuzz/` (image import, layers, the tree).

// Private: its `Manifest` and `Assembled` have no `Debug`, which
// `missing_debug_implementations` asks of every type a library exports.
mod build;
pub mod cache;
pub mod channel;
pub mod cmd;
pub mod elf;
pub mod image;
pub mod initramfs;
pub mod initrd;
pub mod kernel;
pub mod net;
pub mod qemu;
pub mod seccomp;
pub mod session;
pub mod tree;
pub mod virtiofs;

/// Writes `text` to stdout; a reader that went away (`| head`) is not an error.
pub fn print(text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    match std::io::stdout().lock().write_all(text.as_bytes()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}
