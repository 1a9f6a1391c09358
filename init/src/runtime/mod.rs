//! What a no_std binary linked with static glibc provides itself: the heap
//! (`heap`), glibc's assertion handler, and the unwinding symbols
//! precompiled code refers to.
//!
//! Each stands in for a part of static glibc or libgcc that would link
//! code the init never runs (measured with the linker's --why-extract):
//! glibc's malloc.o refers to fprintf (malloc_stats) and its assert.o to a
//! translated, wide-character printf; libgcc_eh's unwinder to malloc. The
//! three together were 85 KB of the stripped init.
//!
//! Nothing here allocates, formats or panics: the heap may be what failed.
//! The symbols are not built into the unit tests (std provides them there);
//! the code behind them is, and is tested.

mod heap;

#[cfg(not(test))]
pub use heap::busy as heap_busy;

use libc::c_uint;

#[cfg(not(test))]
use crate::power;

/// Landing pads only: glibc's objects (built with -fexceptions) and the
/// precompiled core and alloc (built with panic=unwind) name these three in
/// their cleanup paths. No unwinder is linked (libgcc_eh would be one, and
/// would bring glibc's malloc back), so no unwind can begin and none of
/// them is ever called; if one were, an unwind would have begun where none
/// can be handled.
#[cfg(not(test))]
#[no_mangle]
extern "C" fn _Unwind_Resume() {
    power::die("an unwind began (nothing in the init can unwind)")
}

/// C cleanup code's personality routine; see `_Unwind_Resume`.
#[cfg(not(test))]
#[no_mangle]
extern "C" fn __gcc_personality_v0() {
    power::die("an unwind began (nothing in the init can unwind)")
}

/// Rust code's personality routine (both profiles abort on panic); see
/// `_Unwind_Resume`.
#[cfg(not(test))]
#[no_mangle]
extern "C" fn rust_eh_personality() {
    power::die("an unwind began (nothing in the init can unwind)")
}

/// glibc's own assertion failures (its start-up code refers to
/// `__assert_fail`): the assertion and its place, as glibc prints them,
/// then the end without the heap (`power::die`). The line is put together
/// in a buffer on the stack, cut at its size.
///
/// # Safety
/// `assertion` and `file` are NUL-terminated strings (glibc's literals).
#[cfg(not(test))]
#[no_mangle]
unsafe extern "C" fn __assert_fail(
    assertion: *const libc::c_char,
    file: *const libc::c_char,
    line: c_uint,
    _function: *const libc::c_char,
) -> ! {
    let mut buf = Line::<512>::new();
    // SAFETY: the caller's contract.
    let (assertion, file) = unsafe {
        (
            core::ffi::CStr::from_ptr(assertion),
            core::ffi::CStr::from_ptr(file),
        )
    };
    buf.push(b"glibc assertion failed: ");
    buf.push(assertion.to_bytes());
    buf.push(b" (");
    buf.push(file.to_bytes());
    buf.push(b":");
    buf.push_number(line);
    buf.push(b")");
    power::die(buf.as_str())
}

/// A line put together without the heap, cut at `N` bytes.
struct Line<const N: usize> {
    bytes: [u8; N],
    len: usize,
}

impl<const N: usize> Line<N> {
    fn new() -> Self {
        Line {
            bytes: [0; N],
            len: 0,
        }
    }

    fn push(&mut self, part: &[u8]) {
        let n = part.len().min(N - self.len);
        self.bytes[self.len..self.len + n].copy_from_slice(&part[..n]);
        self.len += n;
    }

    fn push_number(&mut self, mut n: c_uint) {
        let mut digits = [0u8; 10];
        let mut i = digits.len();
        loop {
            i -= 1;
            digits[i] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        self.push(&digits[i..]);
    }

    /// The line; a character cut in half at the end is left out.
    fn as_str(&self) -> &str {
        match core::str::from_utf8(&self.bytes[..self.len]) {
            Ok(s) => s,
            Err(e) => core::str::from_utf8(&self.bytes[..e.valid_up_to()]).unwrap_or_default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_is_cut_at_its_size_on_a_character_boundary() {
        let mut l = Line::<12>::new();
        l.push(b"at ");
        l.push_number(0);
        l.push(b":");
        l.push_number(4_294_967_295);
        assert_eq!(l.as_str(), "at 0:4294967");
        let mut l = Line::<4>::new();
        l.push("a\u{e9}\u{e9}".as_bytes());
        assert_eq!(l.as_str(), "a\u{e9}");
    }
}
