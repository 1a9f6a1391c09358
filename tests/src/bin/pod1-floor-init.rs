//! The benchmark's floor: the least an init can do. It prints one line on
//! the console and powers the VM off, so booting it measures the kernel and
//! QEMU alone.

fn main() {
    println!("floor: init reached");
    // SAFETY: sync(2) takes no arguments and cannot fail.
    unsafe { libc::sync() };
    let _ = nix::sys::reboot::reboot(nix::sys::reboot::RebootMode::RB_POWER_OFF);
    // Power-off failed (not PID 1, or no permission): never return as PID 1.
    loop {
        std::thread::sleep(std::time::Duration::from_secs(3600));
    }
}
