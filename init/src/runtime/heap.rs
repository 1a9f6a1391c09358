//! The init's heap, in place of glibc's malloc (see the module above for
//! why): dlmalloc, the allocator Rust's std uses where it has no libc,
//! through its C-ABI calls for glibc's own allocations and its layout
//! calls for Rust's. Replacing malloc in a static link is supported by
//! glibc (its manual, "Replacing malloc": malloc, free, calloc and realloc,
//! plus the aligned calls a program uses; should glibc ever need another,
//! its malloc.o would come back and the link fail on a duplicate `malloc`).
//!
//! dlmalloc has no mmap threshold: a freed block goes back to the kernel
//! only from the top of its segment. A Rust allocation of [`LARGE`] bytes
//! or more (the event queue after a burst of output, a large plan being
//! read) therefore gets a mapping of its own, unmapped when it is freed,
//! as glibc's malloc does above its threshold, so the memory of a burst
//! lasts no longer than the burst.

use core::alloc::{GlobalAlloc, Layout};
use core::cell::UnsafeCell;
use core::ptr::null_mut;
use core::sync::atomic::{AtomicBool, Ordering};

use dlmalloc::Dlmalloc;
#[cfg(not(test))]
use libc::size_t;
use libc::{c_int, c_void};

use crate::power;

/// What malloc's results are aligned to on x86-64 (dlmalloc's natural
/// alignment, two words), as glibc's.
const MALLOC_ALIGN: usize = 16;

/// Rust allocations of this size or more are mappings of their own (glibc
/// malloc's largest dynamic mmap threshold is 32 MiB, its first 128 KiB).
const LARGE: usize = 256 * 1024;

/// A mapping's alignment.
const PAGE: usize = 4096;

/// The process's one heap: Rust's allocations and glibc's own (a few at
/// start-up, exit handlers) share it.
struct Heap {
    dl: UnsafeCell<Dlmalloc>,
    /// Set while a call is inside `dl`. The init has one thread and no
    /// signal handlers (signals arrive through a signalfd), so a call never
    /// finds it set unless a panic or an assertion left the heap midway.
    busy: AtomicBool,
}

// SAFETY: `dl` is only reached through `with`, which `busy` makes exclusive.
unsafe impl Sync for Heap {}

static HEAP: Heap = Heap {
    dl: UnsafeCell::new(Dlmalloc::new()),
    busy: AtomicBool::new(false),
};

/// Whether a heap call is under way: a panic then must not allocate.
pub fn busy() -> bool {
    HEAP.busy.load(Ordering::Relaxed)
}

/// Runs `f` on the heap, alone.
fn with<R>(f: impl FnOnce(&mut Dlmalloc) -> R) -> R {
    if HEAP.busy.swap(true, Ordering::Acquire) {
        power::die("the heap was entered twice (a fault inside it)")
    }
    // SAFETY: `busy` was clear and is now set, so no other reference to
    // the allocator exists until it is cleared below.
    let r = f(unsafe { &mut *HEAP.dl.get() });
    HEAP.busy.store(false, Ordering::Release);
    r
}

/// Sets errno, as the C calls report a failure.
fn set_errno(e: c_int) {
    // SAFETY: __errno_location returns the calling thread's errno.
    unsafe { *libc::__errno_location() = e };
}

/// A result of the C calls: NULL sets ENOMEM.
fn checked(p: *mut u8) -> *mut c_void {
    if p.is_null() {
        set_errno(libc::ENOMEM);
    }
    p.cast()
}

/// Whether a Rust allocation is a mapping of its own.
fn large(size: usize, align: usize) -> bool {
    size >= LARGE && align <= PAGE
}

/// A new anonymous mapping of `size` bytes (zeroed), or NULL.
fn map(size: usize) -> *mut u8 {
    // SAFETY: a new private anonymous mapping touches no existing memory.
    let p = unsafe {
        libc::mmap(
            null_mut(),
            size,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        null_mut()
    } else {
        p.cast()
    }
}

/// Rust's allocations: the same heap, with the layout dlmalloc uses to
/// keep an over-alignment across a realloc; large ones mapped apart.
#[cfg(not(test))]
#[global_allocator]
static ALLOCATOR: RustHeap = RustHeap;

#[derive(Debug)]
struct RustHeap;

// SAFETY: dlmalloc and mmap return memory of at least the requested size
// and alignment (a mapping is page-aligned, used for alignments up to a
// page) or NULL; a large allocation is recognised again by its layout,
// which the caller passes back unchanged (GlobalAlloc's contract), so each
// pointer returns to where it came from; realloc keeps the contents.
unsafe impl GlobalAlloc for RustHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if large(layout.size(), layout.align()) {
            return map(layout.size());
        }
        // SAFETY: a Layout's align is a power of two.
        with(|dl| unsafe { dl.malloc(layout.size(), layout.align()) })
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if large(layout.size(), layout.align()) {
            return map(layout.size());
        }
        // SAFETY: as alloc.
        with(|dl| unsafe { dl.calloc(layout.size(), layout.align()) })
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if large(layout.size(), layout.align()) {
            // SAFETY: ptr is the mapping `map` made for this layout.
            unsafe { libc::munmap(ptr.cast(), layout.size()) };
            return;
        }
        // SAFETY: ptr and layout are an allocation of this heap (the
        // caller's contract).
        with(|dl| unsafe { dl.free(ptr, layout.size(), layout.align()) })
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let align = layout.align();
        match (large(layout.size(), align), large(new_size, align)) {
            (false, false) => {
                // SAFETY: as dealloc; new_size is non-zero (the caller's
                // contract).
                with(|dl| unsafe { dl.realloc(ptr, layout.size(), align, new_size) })
            }
            (true, true) => {
                // SAFETY: ptr is a mapping of layout.size() bytes; MAYMOVE
                // keeps its contents and page alignment.
                let p = unsafe { libc::mremap(ptr.cast(), layout.size(), new_size, libc::MREMAP_MAYMOVE) };
                if p == libc::MAP_FAILED {
                    null_mut()
                } else {
                    p.cast()
                }
            }
            _ => {
                // From the heap to a mapping or back: allocate, copy, free.
                // SAFETY: new_size is non-zero and, rounded to align, does
                // not overflow (the caller's contract).
                let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, align) };
                // SAFETY: new_layout has a non-zero size.
                let new = unsafe { self.alloc(new_layout) };
                if !new.is_null() {
                    // SAFETY: both blocks are valid for the smaller size
                    // and distinct; the old one is freed once.
                    unsafe {
                        core::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                        self.dealloc(ptr, layout);
                    }
                }
                new
            }
        }
    }
}

/// `malloc(3)`.
#[cfg(not(test))]
#[no_mangle]
extern "C" fn malloc(size: size_t) -> *mut c_void {
    // SAFETY: c_malloc takes any size.
    checked(with(|dl| unsafe { dl.c_malloc(size) }))
}

/// `calloc(3)`: NULL and ENOMEM when `n * size` overflows.
#[cfg(not(test))]
#[no_mangle]
extern "C" fn calloc(n: size_t, size: size_t) -> *mut c_void {
    let Some(total) = n.checked_mul(size) else {
        set_errno(libc::ENOMEM);
        return null_mut();
    };
    // SAFETY: MALLOC_ALIGN is a power of two; calloc zeroes what it returns.
    checked(with(|dl| unsafe { dl.calloc(total, MALLOC_ALIGN) }))
}

/// `realloc(3)`; a NULL `ptr` allocates.
///
/// # Safety
/// `ptr` is NULL or a live allocation of this heap (C's contract).
#[cfg(not(test))]
#[no_mangle]
unsafe extern "C" fn realloc(ptr: *mut c_void, size: size_t) -> *mut c_void {
    // SAFETY: the caller's contract.
    checked(with(|dl| unsafe { dl.c_realloc(ptr.cast(), size) }))
}

/// `free(3)`; NULL is ignored; errno is kept (glibc's manual asks that of
/// a replacement).
///
/// # Safety
/// `ptr` is NULL or a live allocation of this heap (C's contract).
#[cfg(not(test))]
#[no_mangle]
unsafe extern "C" fn free(ptr: *mut c_void) {
    // SAFETY: __errno_location returns the calling thread's errno.
    let saved = unsafe { *libc::__errno_location() };
    // SAFETY: the caller's contract.
    with(|dl| unsafe { dl.c_free(ptr.cast()) });
    set_errno(saved);
}

/// `posix_memalign(3)`: EINVAL unless `align` is a power of two and a
/// multiple of the pointer size; ENOMEM without memory (returned, errno
/// untouched). (memalign and aligned_alloc are left out: nothing calls
/// them.)
///
/// # Safety
/// `out` is writable (C's contract).
#[cfg(not(test))]
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether `len` bytes at `p` are mapped (msync fails with ENOMEM on
    /// an unmapped page).
    fn mapped(p: *mut u8, len: usize) -> bool {
        // SAFETY: msync only inspects the range; p is page-aligned.
        unsafe { libc::msync(p.cast(), len, libc::MS_ASYNC) == 0 }
    }

    /// The only test that reaches the heap (the other tests allocate
    /// through std's allocator): blocks cross the large-block line both
    /// ways through realloc and keep their contents and alignment; a large
    /// block's mapping is gone once it is freed.
    #[test]
    fn blocks_keep_their_bytes_across_the_large_block_line() {
        let heap = RustHeap;
        let fill = |p: *mut u8, n: usize| {
            for i in 0..n {
                // SAFETY: p holds at least n bytes.
                unsafe { *p.add(i) = (i % 251) as u8 };
            }
        };
        let same = |p: *mut u8, n: usize| {
            // SAFETY: p holds at least n bytes.
            (0..n).all(|i| unsafe { *p.add(i) } == (i % 251) as u8)
        };
        for align in [8, 64, PAGE, 2 * PAGE] {
            let small = Layout::from_size_align(1000, align).unwrap();
            // SAFETY: the layouts have non-zero sizes; each pointer is
            // passed back with the layout it was allocated or resized with.
            unsafe {
                let p = heap.alloc(small);
                assert!(!p.is_null() && p as usize % align == 0, "align {align}");
                fill(p, 1000);
                let big = LARGE + 5000;
                let q = heap.realloc(p, small, big);
                assert!(
                    !q.is_null() && q as usize % align == 0 && same(q, 1000),
                    "up, align {align}"
                );
                fill(q, big);
                let grown = 3 * LARGE;
                let r = heap.realloc(q, Layout::from_size_align(big, align).unwrap(), grown);
                assert!(
                    !r.is_null() && r as usize % align == 0 && same(r, big),
                    "grown, align {align}"
                );
                let s = heap.realloc(r, Layout::from_size_align(grown, align).unwrap(), 700);
                assert!(
                    !s.is_null() && s as usize % align == 0 && same(s, 700),
                    "down, align {align}"
                );
                heap.dealloc(s, Layout::from_size_align(700, align).unwrap());
            }
        }
        let big = Layout::from_size_align(LARGE, 16).unwrap();
        // SAFETY: as above.
        unsafe {
            let z = heap.alloc_zeroed(big);
            assert!((0..LARGE).all(|i| *z.add(i) == 0));
            assert!(mapped(z, LARGE));
            heap.dealloc(z, big);
            assert!(!mapped(z, LARGE), "a freed large block stays mapped");
        }
        assert!(!busy());
    }
}
