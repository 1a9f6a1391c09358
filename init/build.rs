//! Link options of the pod1-init executable.
//!
//! pod1-init is a static PIE: glibc's startup code (`_dl_relocate_static_pie`)
//! applies the executable's relative relocations before `main`. As RELA
//! entries they take 24 bytes each, about 1,800 of them (every pointer in a
//! vtable, a string table or a static slice), 43 KB of the file.
//! `-z pack-relative-relocs` stores them as DT_RELR, a bitmap format of a
//! few hundred bytes; the rest of the image and its behaviour are unchanged
//! (it is still position-independent, loaded at a random address).
//!
//! DT_RELR is applied by glibc 2.36 and later, the static glibc this is
//! linked with (Debian 12's; the linkers, lld and GNU ld 2.38+, know the
//! option). With an older static glibc the executable would crash before
//! `main`, which the host tests (they run it) would show at once.

fn main() {
    // Only the executable: the test harnesses are ordinary host programs.
    println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    println!("cargo:rerun-if-changed=build.rs");
}
