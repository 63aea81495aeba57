//! Lines out of a container's log: its frames as the engine sends them
//! ([`ContainerEngine::log_frames`](crate::engine::ContainerEngine::log_frames)), and the lines in them. Docker sends each log
//! entry as one frame, prefixed with its RFC 3339 timestamp; a
//! line longer than Docker's 16 KiB buffer comes as several entries, each
//! with its own timestamp and only the last with the newline. [`Framer`]
//! joins those pieces back into lines (cutting a line at [`MAX_LINE`]
//! bytes so one endless line cannot grow without bound), and
//! [`split_timestamp`] takes the timestamp off a line.

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

pub use crate::engine::LogRange;

/// Longest line handed on; a longer one is cut into pieces of this size.
pub const MAX_LINE: usize = 16 * 1024;

/// Joins one stream's (stdout's or stderr's) frames into lines.
#[derive(Debug, Default)]
pub struct Framer {
    /// The start of a line whose end has not come yet, with its timestamp.
    partial: Vec<u8>,
}

impl Framer {
    /// The lines `frame` completes (without their newline or a trailing
    /// `\r`), each still starting with its timestamp.
    pub fn push(&mut self, frame: &[u8]) -> Vec<String> {
        let mut frame = frame;
        if !self.partial.is_empty() {
            // A continuation entry repeats a timestamp: the line keeps the first.
            if let Some((_, rest)) = split_timestamp_bytes(frame) {
                frame = rest;
            }
        }
        let mut lines = Vec::new();
        let mut pieces = frame.split(|b| *b == b'\n').peekable();
        while let Some(piece) = pieces.next() {
            let last = pieces.peek().is_none();
            self.partial.extend_from_slice(piece);
            if !last {
                lines.push(self.take());
            }
            while self.partial.len() > MAX_LINE {
                let rest = self.partial.split_off(MAX_LINE);
                lines.push(self.take());
                self.partial = rest;
            }
        }
        lines
    }

    /// The unfinished line, when the stream ends without its newline.
    pub fn finish(&mut self) -> Option<String> {
        (!self.partial.is_empty()).then(|| self.take())
    }

    fn take(&mut self) -> String {
        let mut bytes = std::mem::take(&mut self.partial);
        if bytes.last() == Some(&b'\r') {
            bytes.pop();
        }
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

/// The line's leading timestamp (as Docker wrote it) and the rest, when it
/// starts with one followed by a space.
pub fn split_timestamp(line: &str) -> Option<(OffsetDateTime, &str)> {
    let (stamp, rest) = line.split_once(' ')?;
    let at = OffsetDateTime::parse(stamp, &Rfc3339).ok()?;
    Some((at, rest))
}

fn split_timestamp_bytes(frame: &[u8]) -> Option<(OffsetDateTime, &[u8])> {
    let space = frame.iter().take(40).position(|b| *b == b' ')?;
    let stamp = std::str::from_utf8(&frame[..space]).ok()?;
    let at = OffsetDateTime::parse(stamp, &Rfc3339).ok()?;
    Some((at, &frame[space + 1..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_entries_are_lines() {
        let mut f = Framer::default();
        assert_eq!(
            f.push(b"2026-12-05T10:00:00.1Z hello\n"),
            ["2026-12-05T10:00:00.1Z hello"]
        );
        assert_eq!(
            f.push(b"2026-12-05T10:00:01Z a\r\n"),
            ["2026-12-05T10:00:01Z a"]
        );
        assert_eq!(f.finish(), None);
    }

    #[test]
    fn several_lines_in_one_frame() {
        let mut f = Framer::default();
        assert_eq!(f.push(b"one\ntwo\nthr"), ["one", "two"]);
        assert_eq!(f.push(b"ee\n"), ["three"]);
        assert_eq!(f.push(b"\n"), [""]);
    }

    #[test]
    fn split_entries_join_and_keep_the_first_timestamp() {
        let mut f = Framer::default();
        assert!(f.push(b"2026-12-05T10:00:00.5Z first half, ").is_empty());
        assert_eq!(
            f.push(b"2026-12-05T10:00:00.6Z second half\n"),
            ["2026-12-05T10:00:00.5Z first half, second half"]
        );
        // Without a newline at the end, the rest comes out at the end.
        assert!(f.push(b"2026-12-05T10:00:02Z tail").is_empty());
        assert_eq!(f.finish().as_deref(), Some("2026-12-05T10:00:02Z tail"));
        assert_eq!(f.finish(), None);
    }

    #[test]
    fn endless_lines_are_cut() {
        let mut f = Framer::default();
        let long = vec![b'x'; MAX_LINE * 2 + 10];
        let lines = f.push(&long);
        assert_eq!(lines.len(), 2);
        assert!(lines.iter().all(|l| l.len() == MAX_LINE));
        assert_eq!(f.finish().map(|l| l.len()), Some(10));
    }

    #[test]
    fn invalid_utf8_is_replaced_not_fatal() {
        let mut f = Framer::default();
        assert_eq!(f.push(b"a\xffb\n"), ["a\u{fffd}b"]);
    }

    #[test]
    fn timestamps_split_off() {
        let (at, rest) = split_timestamp("2026-12-05T10:00:00.123456789Z GET / 200").unwrap();
        assert_eq!(at.unix_timestamp(), 1_796_464_800);
        assert_eq!(at.nanosecond(), 123_456_789);
        assert_eq!(rest, "GET / 200");
        assert_eq!(
            split_timestamp("2026-12-05T10:00:00Z ").map(|(_, r)| r),
            Some("")
        );
        assert!(split_timestamp("no timestamp here").is_none());
        assert!(split_timestamp("2026-12-05T10:00:00Z").is_none());
    }
}
