//! Following `logs/gateway.log` with bounded memory: the last [`LINES`] lines, at most
//! [`READ_MAX`] bytes read per poll, starting over when the file is rotated or truncated.

use std::collections::VecDeque;
use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;

/// Lines kept.
pub const LINES: usize = 200;
/// Longest kept line, in bytes (longer lines are cut).
const LINE_MAX: usize = 1024;
/// Bytes read per poll at most (a flood is skipped, not buffered).
const READ_MAX: u64 = 64 * 1024;

/// The tail of one log file.
pub struct LogTail {
    path: PathBuf,
    offset: u64,
    partial: Vec<u8>,
    lines: VecDeque<String>,
}

impl LogTail {
    /// Follows `path` from its last [`READ_MAX`] bytes.
    pub fn open(path: PathBuf) -> LogTail {
        let mut tail = LogTail { path, offset: 0, partial: Vec::new(), lines: VecDeque::new() };
        tail.poll();
        tail
    }

    /// The kept lines, oldest first.
    pub fn lines(&self) -> impl DoubleEndedIterator<Item = &str> + ExactSizeIterator {
        self.lines.iter().map(String::as_str)
    }

    /// Reads what was appended since the last poll.
    pub fn poll(&mut self) {
        let Ok(mut file) = std::fs::File::open(&self.path) else { return };
        let Ok(len) = file.metadata().map(|m| m.len()) else { return };
        if len < self.offset {
            // Rotated (renamed to .1 and started anew) or truncated: start over.
            self.offset = 0;
            self.partial.clear();
        }
        if len.saturating_sub(self.offset) > READ_MAX {
            // Too much at once: keep only the newest bytes, from a line start.
            self.offset = len - READ_MAX;
            self.partial.clear();
            self.skip_to_line_start(&mut file);
        }
        if file.seek(SeekFrom::Start(self.offset)).is_err() {
            return;
        }
        let mut buf = Vec::new();
        let Ok(n) = file.take(READ_MAX).read_to_end(&mut buf) else { return };
        self.offset += n as u64;
        for byte in buf {
            if byte == b'\n' {
                let line = super::app::printable(String::from_utf8_lossy(&self.partial).trim_end(), LINE_MAX);
                self.partial.clear();
                self.push(line);
            } else if self.partial.len() < LINE_MAX {
                self.partial.push(byte);
            }
        }
    }

    fn skip_to_line_start(&mut self, file: &mut std::fs::File) {
        if file.seek(SeekFrom::Start(self.offset)).is_err() {
            return;
        }
        let mut buf = [0u8; 4096];
        let Ok(n) = file.read(&mut buf) else { return };
        if let Some(nl) = buf[..n].iter().position(|b| *b == b'\n') {
            self.offset += nl as u64 + 1;
        }
    }

    fn push(&mut self, line: String) {
        if self.lines.len() >= LINES {
            self.lines.pop_front();
        }
        self.lines.push_back(line);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_appends_keeps_a_bounded_tail_and_survives_rotation() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gateway.log");
        std::fs::write(&path, "one\ntwo\npart").unwrap();
        let mut tail = LogTail::open(path.clone());
        assert_eq!(tail.lines().collect::<Vec<_>>(), ["one", "two"]);
        let mut f = std::fs::OpenOptions::new().append(true).open(&path).unwrap();
        std::io::Write::write_all(&mut f, b"ial\n").unwrap();
        tail.poll();
        assert_eq!(tail.lines().last(), Some("partial"));
        let many: String = (0..LINES + 10).map(|i| format!("line {i}\n")).collect();
        std::io::Write::write_all(&mut f, many.as_bytes()).unwrap();
        tail.poll();
        assert_eq!(tail.lines().len(), LINES);
        assert_eq!(tail.lines().last(), Some(format!("line {}", LINES + 9).as_str()));
        std::fs::write(&path, "fresh\n").unwrap();
        tail.poll();
        assert_eq!(tail.lines().last(), Some("fresh"));
        std::fs::write(&path, "fresh\nbad \u{1b}]0;title\u{7}\n").unwrap();
        tail.poll();
        assert_eq!(
            tail.lines().last(),
            Some("bad \u{fffd}]0;title\u{fffd}"),
            "no escape reaches the terminal"
        );
    }
}
