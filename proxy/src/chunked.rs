//! The chunked transfer coding (RFC 9112 §7.1) as a framing decoder: it
//! tells where a chunked message ends and which bytes are data, so the
//! edge can pass a chunked body on as it came (or unwrap it for an
//! HTTP/1.0 client) without buffering it.
//!
//! Strict where leniency smuggles requests: every line ends in CRLF (a
//! bare LF is an error), a chunk size is at most 16 hex digits with
//! nothing but an extension after it, and size lines and trailers are
//! bounded.

/// Longest chunk-size line (size and extensions) accepted.
const MAX_SIZE_LINE: usize = 4096;
/// Largest trailer section accepted.
const MAX_TRAILERS: usize = 16 * 1024;

/// A malformed chunked message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ChunkedError {
    /// A chunk-size line that is not hex digits plus an extension, or too long.
    #[error("malformed chunk size line")]
    Size,
    /// A line not ended by CRLF.
    #[error("chunked framing without CRLF")]
    LineEnd,
    /// The trailer section is too large.
    #[error("chunked trailers too large")]
    Trailers,
}

/// Where a chunk-size line is after its digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ext {
    /// Still in the digits.
    No,
    /// Whitespace after them: only more of it or `;` may follow.
    Space,
    /// Inside `;` extensions (dropped when the body is passed on).
    Yes,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading a chunk-size line: the size so far, its digits, and how far
    /// into an extension.
    Size { size: u64, digits: u8, ext: Ext },
    /// The LF of a chunk-size line.
    SizeLf { size: u64 },
    /// Data bytes left in the current chunk.
    Data(u64),
    /// The CR after a chunk's data.
    DataCr,
    /// The LF after a chunk's data.
    DataLf,
    /// The start of a trailer field line, or the final CRLF.
    TrailerStart,
    /// Inside a trailer field line.
    TrailerLine,
    /// The LF of a trailer field line.
    TrailerLf,
    /// The LF of the final CRLF.
    EndLf,
    /// The message ended.
    Done,
}

/// Decoder state of one chunked message.
#[derive(Debug, Clone)]
pub struct Chunked {
    state: State,
    /// Bytes of the current size line, or of the trailer section.
    line: usize,
}

impl Default for Chunked {
    fn default() -> Self {
        Self {
            state: State::Size {
                size: 0,
                digits: 0,
                ext: Ext::No,
            },
            line: 0,
        }
    }
}

impl Chunked {
    /// Whether the whole message (last chunk and trailers) was read.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Reads from `buf` up to the end of the message and returns how many
    /// bytes belong to it; `data` gets each run of chunk data.
    pub fn feed(&mut self, buf: &[u8], mut data: impl FnMut(&[u8])) -> Result<usize, ChunkedError> {
        let mut i = 0;
        while i < buf.len() {
            if let State::Data(left) = self.state {
                let take = usize::try_from(left).map_or(buf.len() - i, |l| l.min(buf.len() - i));
                data(&buf[i..i + take]);
                i += take;
                let left = left - take as u64;
                self.state = if left == 0 {
                    State::DataCr
                } else {
                    State::Data(left)
                };
                continue;
            }
            let b = buf[i];
            i += 1;
            self.state = match self.state {
                State::Size { size, digits, ext } => {
                    self.line += 1;
                    if self.line > MAX_SIZE_LINE {
                        return Err(ChunkedError::Size);
                    }
                    match b {
                        b'\r' if digits > 0 => {
                            self.line = 0;
                            State::SizeLf { size }
                        }
                        b'\r' | b'\n' => return Err(ChunkedError::Size),
                        _ if ext == Ext::Yes => {
                            if b != b'\t' && (b < 0x20 || b == 0x7f) {
                                return Err(ChunkedError::Size);
                            }
                            State::Size { size, digits, ext }
                        }
                        b';' if digits > 0 => State::Size {
                            size,
                            digits,
                            ext: Ext::Yes,
                        },
                        b' ' | b'\t' if digits > 0 => State::Size {
                            size,
                            digits,
                            ext: Ext::Space,
                        },
                        _ if ext == Ext::Space => return Err(ChunkedError::Size),
                        _ => {
                            let digit = char::from(b).to_digit(16).ok_or(ChunkedError::Size)?;
                            if digits >= 16 {
                                return Err(ChunkedError::Size);
                            }
                            State::Size {
                                size: (size << 4) | u64::from(digit),
                                digits: digits + 1,
                                ext,
                            }
                        }
                    }
                }
                State::SizeLf { size } => match b {
                    b'\n' if size == 0 => State::TrailerStart,
                    b'\n' => State::Data(size),
                    _ => return Err(ChunkedError::LineEnd),
                },
                State::DataCr => match b {
                    b'\r' => State::DataLf,
                    _ => return Err(ChunkedError::LineEnd),
                },
                State::DataLf => match b {
                    b'\n' => State::Size {
                        size: 0,
                        digits: 0,
                        ext: Ext::No,
                    },
                    _ => return Err(ChunkedError::LineEnd),
                },
                State::TrailerStart | State::TrailerLine => {
                    self.line += 1;
                    if self.line > MAX_TRAILERS {
                        return Err(ChunkedError::Trailers);
                    }
                    match (self.state, b) {
                        (State::TrailerStart, b'\r') => State::EndLf,
                        (_, b'\r') => State::TrailerLf,
                        (_, b'\n') => return Err(ChunkedError::LineEnd),
                        _ => State::TrailerLine,
                    }
                }
                State::TrailerLf => match b {
                    b'\n' => State::TrailerStart,
                    _ => return Err(ChunkedError::LineEnd),
                },
                State::EndLf => match b {
                    b'\n' => {
                        self.state = State::Done;
                        return Ok(i);
                    }
                    _ => return Err(ChunkedError::LineEnd),
                },
                State::Data(_) | State::Done => return Ok(i - 1),
            };
        }
        Ok(i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Decodes `input` fed in pieces of `step` bytes: (data, bytes used).
    fn decode(input: &[u8], step: usize) -> Result<(Vec<u8>, usize, bool), ChunkedError> {
        let mut c = Chunked::default();
        let mut out = Vec::new();
        let mut used = 0;
        for piece in input.chunks(step) {
            let n = c.feed(piece, |d| out.extend_from_slice(d))?;
            used += n;
            if c.is_done() {
                break;
            }
        }
        Ok((out, used, c.is_done()))
    }

    #[test]
    fn a_message_ends_after_its_trailers_and_keeps_what_follows() {
        let msg = b"5\r\nhello\r\n6 ;ext=1\r\n world\r\n0\r\nX-T: 1\r\n\r\nGET / HTTP/1.1\r\n";
        for step in [1, 2, 3, 7, msg.len()] {
            let (data, used, done) = decode(msg, step).unwrap();
            assert_eq!(data, b"hello world");
            assert!(done);
            assert_eq!(&msg[used..], b"GET / HTTP/1.1\r\n", "step {step}");
        }
        let (data, used, done) = decode(b"A\r\n0123456789\r\n0\r\n\r\n", 4).unwrap();
        assert_eq!((data.len(), used, done), (10, 20, true));
    }

    #[test]
    fn smuggling_shapes_are_refused() {
        for bad in [
            &b"5\nhello\r\n0\r\n\r\n"[..],
            b"5\r\nhello\n0\r\n\r\n",
            b"5\r\nhelloXX0\r\n\r\n",
            b"-5\r\nhello\r\n",
            b"0x5\r\nhello\r\n",
            b"\r\n",
            b"11111111111111111\r\n",
            b"0\r\n\n",
            b"0\r\nX: 1\n\r\n",
            b"5;\x00\r\n",
            b"5 6\r\nhello\r\n",
        ] {
            assert!(
                decode(bad, 1).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        let long = format!("1;{}\r\n", "a".repeat(MAX_SIZE_LINE));
        assert_eq!(decode(long.as_bytes(), 64), Err(ChunkedError::Size));
        let trailers = format!("0\r\n{}", "X: y\r\n".repeat(MAX_TRAILERS / 4));
        assert_eq!(decode(trailers.as_bytes(), 64), Err(ChunkedError::Trailers));
    }

    #[test]
    fn an_unfinished_message_is_not_done() {
        let (data, used, done) = decode(b"5\r\nhel", 100).unwrap();
        assert_eq!((data.as_slice(), used, done), (&b"hel"[..], 6, false));
        // The largest size is a u64: no overflow, data just keeps coming.
        let (_, _, done) = decode(b"ffffffffffffffff\r\nabc", 3).unwrap();
        assert!(!done);
    }

    proptest! {
        #[test]
        fn any_chunking_of_any_data_round_trips(
            chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 1..50), 0..8),
            step in 1usize..20,
        ) {
            let mut msg = Vec::new();
            for c in &chunks {
                msg.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
                msg.extend_from_slice(c);
                msg.extend_from_slice(b"\r\n");
            }
            msg.extend_from_slice(b"0\r\n\r\nrest");
            let (data, used, done) = decode(&msg, step).unwrap();
            prop_assert!(done);
            prop_assert_eq!(data, chunks.concat());
            prop_assert_eq!(used, msg.len() - 4);
        }

        #[test]
        fn garbage_never_panics(input in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode(&input, 3);
        }
    }
}
