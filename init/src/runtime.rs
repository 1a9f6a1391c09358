//! What a no_std binary linked with static glibc provides itself: the heap,
//! glibc's assertion handler, and the unwinding symbols precompiled code
//! refers to.
//!
//! Each stands in for a part of static glibc or libgcc that would link
//! code the init never runs (measured with the linker's --why-extract):
//! glibc's malloc.o refers to fprintf (malloc_stats) and its assert.o to a
//! translated, wide-character printf; libgcc_eh's unwinder to malloc. The
//! three together were 85 KB of the stripped init.
//! Replacing malloc in a static link is supported by glibc (its manual,
//! "Replacing malloc": malloc, free, calloc and realloc, plus the aligned
//! calls a program uses). The heap is dlmalloc, the allocator Rust's std
//! uses where it has no libc, through its C-ABI calls.
//!
//! Nothing here allocates, formats or panics on purpose: the heap may be
//! what failed.
#![cfg(not(test))]

use core::alloc::{GlobalAlloc, Layout};
use core::cell::UnsafeCell;
use core::ptr::null_mut;
use core::sync::atomic::{AtomicBool, Ordering};

use dlmalloc::Dlmalloc;
use libc::{c_char, c_int, c_uint, c_void, size_t};

/// What malloc's results are aligned to on x86-64 (dlmalloc's natural
/// alignment, two words), as glibc's.
const MALLOC_ALIGN: usize = 16;

/// The process's one heap: Rust's allocations and glibc's own (exit
/// handlers, realpath, ...) share it, so either side may free what the
/// other allocated through the C calls.
struct Heap {
    dl: UnsafeCell<Dlmalloc>,
    /// Set while a call is inside `dl`. The init has one thread and no
    /// signal handlers (signals arrive through a signalfd), so a call never
    /// finds it set; if one ever did, the heap would be corrupt: abort.
    busy: AtomicBool,
}

// SAFETY: `dl` is only reached through `with`, which `busy` makes exclusive.
unsafe impl Sync for Heap {}

static HEAP: Heap = Heap {
    dl: UnsafeCell::new(Dlmalloc::new()),
    busy: AtomicBool::new(false),
};

/// Runs `f` on the heap, alone.
fn with<R>(f: impl FnOnce(&mut Dlmalloc) -> R) -> R {
    if HEAP.busy.swap(true, Ordering::Acquire) {
        abort()
    }
    // SAFETY: `busy` was clear and is now set, so no other reference to
    // the allocator exists until it is cleared below.
    let r = f(unsafe { &mut *HEAP.dl.get() });
    HEAP.busy.store(false, Ordering::Release);
    r
}

fn abort() -> ! {
    // SAFETY: abort(3) takes no arguments and never returns.
    unsafe { libc::abort() }
}

/// `errno = ENOMEM`, as the C calls report a failure.
fn no_memory() {
    // SAFETY: __errno_location returns the calling thread's errno.
    unsafe { *libc::__errno_location() = libc::ENOMEM };
}

/// A result of the C calls: NULL sets ENOMEM.
fn checked(p: *mut u8) -> *mut c_void {
    if p.is_null() {
        no_memory();
    }
    p.cast()
}

/// Rust's allocations: the same heap, with the layout dlmalloc can use to
/// keep an over-alignment across a realloc.
#[global_allocator]
static ALLOCATOR: RustHeap = RustHeap;

#[derive(Debug)]
struct RustHeap;

// SAFETY: dlmalloc returns memory of at least the requested size and
// alignment or NULL, keeps the contents on realloc, and takes back exactly
// the pointers (with their layouts) it returned, GlobalAlloc's contract.
unsafe impl GlobalAlloc for RustHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: a Layout's align is a power of two.
        with(|dl| unsafe { dl.malloc(layout.size(), layout.align()) })
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as alloc.
        with(|dl| unsafe { dl.calloc(layout.size(), layout.align()) })
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: ptr and layout are an allocation of this heap (the
        // caller's contract).
        with(|dl| unsafe { dl.free(ptr, layout.size(), layout.align()) })
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: as dealloc; new_size is non-zero (the caller's contract).
        with(|dl| unsafe { dl.realloc(ptr, layout.size(), layout.align(), new_size) })
    }
}

/// `malloc(3)`.
#[no_mangle]
extern "C" fn malloc(size: size_t) -> *mut c_void {
    // SAFETY: c_malloc takes any size.
    checked(with(|dl| unsafe { dl.c_malloc(size) }))
}

/// `calloc(3)`: NULL and ENOMEM when `n * size` overflows.
#[no_mangle]
extern "C" fn calloc(n: size_t, size: size_t) -> *mut c_void {
    let Some(total) = n.checked_mul(size) else {
        no_memory();
        return null_mut();
    };
    // SAFETY: MALLOC_ALIGN is a power of two; calloc zeroes what it returns.
    checked(with(|dl| unsafe { dl.calloc(total, MALLOC_ALIGN) }))
}

/// `realloc(3)`; a NULL `ptr` allocates.
///
/// # Safety
/// `ptr` is NULL or a live allocation of this heap (C's contract).
#[no_mangle]
unsafe extern "C" fn realloc(ptr: *mut c_void, size: size_t) -> *mut c_void {
    // SAFETY: the caller's contract.
    checked(with(|dl| unsafe { dl.c_realloc(ptr.cast(), size) }))
}

/// `free(3)`; NULL is ignored.
///
/// # Safety
/// `ptr` is NULL or a live allocation of this heap (C's contract).
#[no_mangle]
unsafe extern "C" fn free(ptr: *mut c_void) {
    // SAFETY: the caller's contract.
    with(|dl| unsafe { dl.c_free(ptr.cast()) })
}

/// An allocation aligned to `align`, a power of two (else NULL, EINVAL).
fn aligned(align: size_t, size: size_t) -> *mut c_void {
    if !align.is_power_of_two() {
        // SAFETY: __errno_location returns the calling thread's errno.
        unsafe { *libc::__errno_location() = libc::EINVAL };
        return null_mut();
    }
    // SAFETY: align is a power of two.
    checked(with(|dl| unsafe { dl.c_memalign(align, size) }))
}

/// `posix_memalign(3)`: EINVAL unless `align` is a power of two and a
/// multiple of the pointer size; ENOMEM without memory (returned, errno
/// untouched).
///
/// # Safety
/// `out` is writable (C's contract).
#[no_mangle]
unsafe extern "C" fn posix_memalign(out: *mut *mut c_void, align: size_t, size: size_t) -> c_int {
    if !align.is_power_of_two() || align % core::mem::size_of::<usize>() != 0 {
        return libc::EINVAL;
    }
    // SAFETY: align is a power of two.
    let p = with(|dl| unsafe { dl.c_memalign(align, size) });
    if p.is_null() {
        return libc::ENOMEM;
    }
    // SAFETY: the caller's contract.
    unsafe { *out = p.cast() };
    0
}

/// `aligned_alloc(3)`.
#[no_mangle]
extern "C" fn aligned_alloc(align: size_t, size: size_t) -> *mut c_void {
    aligned(align, size)
}

/// `memalign(3)`.
#[no_mangle]
extern "C" fn memalign(align: size_t, size: size_t) -> *mut c_void {
    aligned(align, size)
}

/// Landing pads only: glibc's objects (built with -fexceptions) and the
/// precompiled core and alloc (built with panic=unwind) name these three in
/// their cleanup paths. No unwinder is linked (libgcc_eh would be one, and
/// would bring glibc's malloc back), so no unwind can begin and none of
/// them is ever called; if one were, an unwind would have begun where none
/// can be handled.
#[no_mangle]
extern "C" fn _Unwind_Resume() {
    abort()
}

/// C cleanup code's personality routine; see `_Unwind_Resume`.
#[no_mangle]
extern "C" fn __gcc_personality_v0() {
    abort()
}

/// Rust code's personality routine (both profiles abort on panic); see
/// `_Unwind_Resume`.
#[no_mangle]
extern "C" fn rust_eh_personality() {
    abort()
}

/// glibc's own assertion failures (its start-up code refers to
/// `__assert_fail`): as glibc's, the assertion and its place on stderr,
/// then abort; but written piece by piece, not formatted.
///
/// # Safety
/// `assertion` and `file` are NUL-terminated strings (glibc's literals).
#[no_mangle]
unsafe extern "C" fn __assert_fail(
    assertion: *const c_char,
    file: *const c_char,
    _line: c_uint,
    _function: *const c_char,
) -> ! {
    let parts = [
        c"pod1-init: glibc assertion failed: ".as_ptr(),
        assertion,
        c" (".as_ptr(),
        file,
        c")\n".as_ptr(),
    ];
    for part in parts {
        // SAFETY: part is a NUL-terminated string (the caller's contract
        // for the two arguments); write(2) reads strlen(part) bytes of it.
        unsafe { libc::write(2, part.cast(), libc::strlen(part)) };
    }
    abort()
}
