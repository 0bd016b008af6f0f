//! [`Splitter`]: bytes in, complete lines out, for a followed file and for
//! a pipe alike. A partial last line is held until its newline arrives; a
//! line longer than [`MAX_LINE`] is handed on cut (and reported malformed)
//! and the rest of it dropped, so one runaway line cannot take the memory.

use crate::follow::{Input, Line};

/// The longest line handed on whole.
pub const MAX_LINE: usize = 1 << 20;

/// Splits a byte stream into lines, counting where each starts.
#[derive(Debug, Default)]
pub struct Splitter {
    buf: Vec<u8>,
    discarding: bool,
    /// Offset just past the last line handed on.
    pub offset: u64,
    /// Lines handed on.
    pub line: u64,
}

impl Splitter {
    /// A stream whose first byte is at `offset`, after `line` lines.
    pub fn at(offset: u64, line: u64) -> Splitter {
        Splitter {
            offset,
            line,
            ..Splitter::default()
        }
    }

    /// Appends up to `max` bytes read by `read` (which gets the free space).
    pub fn fill(
        &mut self,
        max: usize,
        read: impl FnOnce(&mut [u8]) -> std::io::Result<usize>,
    ) -> std::io::Result<usize> {
        let start = self.buf.len();
        self.buf.resize(start + max, 0);
        let n = read(&mut self.buf[start..]);
        self.buf.truncate(start + *n.as_ref().unwrap_or(&0));
        n
    }

    /// Appends bytes.
    pub fn extend(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Hands on every complete line.
    pub fn hand_on(&mut self, path: &str, sink: &mut dyn FnMut(Input<'_>)) {
        let mut from = 0;
        while let Some(at) = self.buf[from..].iter().position(|&b| b == b'\n') {
            let end = from + at;
            if self.discarding {
                self.discarding = false;
            } else {
                self.line += 1;
                sink(Input::Line(Line {
                    bytes: &self.buf[from..end],
                    path,
                    offset: self.offset,
                    line: self.line,
                    cut: false,
                }));
            }
            self.offset += (end + 1 - from) as u64;
            from = end + 1;
        }
        self.buf.drain(..from);
        if self.buf.len() > MAX_LINE {
            if !self.discarding {
                self.line += 1;
                sink(Input::Line(Line {
                    bytes: &self.buf[..MAX_LINE],
                    path,
                    offset: self.offset,
                    line: self.line,
                    cut: true,
                }));
                self.discarding = true;
            }
            self.offset += self.buf.len() as u64;
            self.buf.clear();
        }
    }

    /// The stream has ended: a last line without its newline is complete.
    pub fn finish(&mut self, path: &str, sink: &mut dyn FnMut(Input<'_>)) {
        if !self.buf.is_empty() && !self.discarding {
            self.line += 1;
            sink(Input::Line(Line {
                bytes: &self.buf,
                path,
                offset: self.offset,
                line: self.line,
                cut: false,
            }));
        }
        self.offset += self.buf.len() as u64;
        self.buf.clear();
        self.discarding = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(s: &mut Splitter, finish: bool) -> Vec<(String, u64, u64, bool)> {
        let mut got = Vec::new();
        let mut sink = |input: Input<'_>| {
            if let Input::Line(l) = input {
                got.push((
                    String::from_utf8_lossy(l.bytes).into_owned(),
                    l.offset,
                    l.line,
                    l.cut,
                ));
            }
        };
        if finish {
            s.finish("f", &mut sink);
        } else {
            s.hand_on("f", &mut sink);
        }
        got
    }

    #[test]
    fn a_partial_line_waits_for_its_newline() {
        let mut s = Splitter::at(100, 7);
        s.extend(b"one\ntw");
        assert_eq!(lines(&mut s, false), vec![("one".into(), 100, 8, false)]);
        assert_eq!(s.offset, 104);
        assert_eq!(lines(&mut s, false), vec![]);
        s.extend(b"o\nthree");
        assert_eq!(lines(&mut s, false), vec![("two".into(), 104, 9, false)]);
        assert_eq!(lines(&mut s, true), vec![("three".into(), 108, 10, false)]);
        assert_eq!(s.offset, 113);
    }

    #[test]
    fn a_runaway_line_is_cut_once_and_the_next_line_is_whole() {
        let mut s = Splitter::default();
        s.extend(&vec![b'x'; MAX_LINE + 10]);
        let got = lines(&mut s, false);
        assert_eq!(got.len(), 1);
        assert!(got[0].3, "cut");
        s.extend(&[b'x'; 5]);
        s.extend(b"\nnext\n");
        let got = lines(&mut s, false);
        assert_eq!(got, vec![("next".into(), MAX_LINE as u64 + 16, 2, false)]);
        assert_eq!(s.offset, MAX_LINE as u64 + 21);
    }
}
