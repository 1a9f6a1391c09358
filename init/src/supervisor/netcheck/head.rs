//! A redirect's header lines, read as they come after its status line:
//! only the first `Location` is kept, so a head of any size (Go's client
//! allows 10 MiB: long cookies, security policies) costs one line's room.

use alloc::string::{String, ToString};
use alloc::vec::Vec;

/// The most of a head Go's client reads (its transport's default).
pub const MAX_BYTES: usize = 10 << 20;
/// The room for one header line; a longer line is skipped unread, except
/// a `Location` that long, which is refused (see [`Scan::LongLocation`]).
pub const MAX_LINE: usize = 8192;

/// How far the head has come.
#[derive(Debug, PartialEq, Eq)]
pub enum Scan {
    /// The blank line has not come yet.
    More,
    /// The head is complete.
    End,
    /// Over [`MAX_BYTES`].
    TooBig,
    /// The first `Location` is over [`MAX_LINE`] bytes.
    LongLocation,
}

/// See the module's documentation.
#[derive(Debug, Default)]
pub struct Head {
    line: Vec<u8>,
    /// The current line outgrew [`MAX_LINE`]: dropped up to its end.
    skipping: bool,
    /// The first `Location`'s value, once seen (possibly empty).
    location: Option<String>,
    total: usize,
}

impl Head {
    /// Reads `bytes`, the next part of the head (and perhaps of the body
    /// after it, which is not looked at).
    pub fn feed(&mut self, bytes: &[u8]) -> Scan {
        for &b in bytes {
            self.total += 1;
            if self.total > MAX_BYTES {
                return Scan::TooBig;
            }
            if b == b'\n' {
                let line = self.line.strip_suffix(b"\r").unwrap_or(&self.line);
                if line.is_empty() && !self.skipping {
                    return Scan::End;
                }
                if !self.skipping && self.location.is_none() {
                    self.location = value_of_location(line);
                }
                self.line.clear();
                self.skipping = false;
            } else if self.skipping {
                // The rest of a long line: dropped.
            } else if self.line.len() < MAX_LINE {
                self.line.push(b);
            } else if self.location.is_none() && value_of_location(&self.line).is_some() {
                return Scan::LongLocation;
            } else {
                self.line.clear();
                self.skipping = true;
            }
        }
        Scan::More
    }

    /// The first `Location`, trimmed; `None` without one or when it is
    /// empty (Go's Header.Get: the answer is then kept as it is).
    pub fn location(&self) -> Option<&str> {
        self.location.as_deref().filter(|l| !l.is_empty())
    }
}

/// The value of `line` if it is a `Location` header, trimmed of spaces
/// and tabs.
fn value_of_location(line: &[u8]) -> Option<String> {
    let colon = line.iter().position(|b| *b == b':')?;
    if !line[..colon].eq_ignore_ascii_case(b"location") {
        return None;
    }
    let value = String::from_utf8_lossy(&line[colon + 1..]);
    Some(value.trim_matches([' ', '\t']).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan(parts: &[&[u8]]) -> (Scan, Option<String>) {
        let mut h = Head::default();
        let mut last = Scan::More;
        for p in parts {
            last = h.feed(p);
            if last != Scan::More {
                break;
            }
        }
        (last, h.location().map(str::to_string))
    }

    #[test]
    fn the_first_location_of_a_head_of_any_size() {
        assert_eq!(scan(&[b"\r\n"]), (Scan::End, None));
        assert_eq!(scan(&[b"\n"]), (Scan::End, None));
        let head: &[u8] = b"Content-Type: text/plain\r\nlocation:  /next \r\nLocation: /other\r\n\r\nbody";
        assert_eq!(scan(&[head]), (Scan::End, Some("/next".into())));
        // In pieces, with a 20 KiB cookie before it.
        let cookie = [b"Set-Cookie: ".as_slice(), &[b'c'; 20 << 10], b"\r\n"].concat();
        let parts: Vec<&[u8]> = [cookie.as_slice(), b"Locat", b"ion: /a\r", b"\n\r\n"].to_vec();
        assert_eq!(scan(&parts), (Scan::End, Some("/a".into())));
        // The first Location decides, even when empty.
        assert_eq!(scan(&[b"Location:\r\nLocation: /x\r\n\r\n"]), (Scan::End, None));
        assert_eq!(scan(&[b"X-Location: /no\r\n\r\n"]), (Scan::End, None));
        assert_eq!(scan(&[b"Location: /x\r\n"]), (Scan::More, Some("/x".into())));
        let long = [b"Location: /".as_slice(), &[b'l'; MAX_LINE]].concat();
        assert_eq!(scan(&[&long]).0, Scan::LongLocation);
        let endless = [b'h'; 1 << 20];
        let parts: Vec<&[u8]> = (0..11).map(|_| endless.as_slice()).collect();
        assert_eq!(scan(&parts).0, Scan::TooBig);
    }
}
