//! A small, bounded server-sent-events decoder (only what chat-completion streams use).
//!
//! Why not `eventsource-stream`: it pulls `nom` into the build and buffers without a size
//! limit, so a misbehaving provider could grow memory without bound. This decoder follows
//! the WHATWG parsing rules for the fields that matter here (`data`, comments, blank-line
//! dispatch, CR / LF / CRLF line ends, one optional space after the colon) and refuses a
//! line or event larger than its limit.

/// Why the byte stream is not acceptable SSE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SseError {
    /// A line or an event exceeded the limit.
    TooLarge(usize),
    /// An event's data is not UTF-8.
    NotUtf8,
}

/// Incremental decoder: feed bytes, take complete events' `data`.
#[derive(Debug)]
pub(crate) struct SseDecoder {
    line: Vec<u8>,
    data: Vec<u8>,
    has_data: bool,
    last_was_cr: bool,
    limit: usize,
}

impl SseDecoder {
    /// A decoder refusing lines and events longer than `limit` bytes.
    pub(crate) fn new(limit: usize) -> SseDecoder {
        SseDecoder { line: Vec::new(), data: Vec::new(), has_data: false, last_was_cr: false, limit }
    }

    /// Consumes `bytes`, pushing the data of every completed event onto `out`.
    pub(crate) fn feed(&mut self, bytes: &[u8], out: &mut Vec<String>) -> Result<(), SseError> {
        for &b in bytes {
            match b {
                b'\n' if self.last_was_cr => self.last_was_cr = false,
                b'\n' | b'\r' => {
                    self.last_was_cr = b == b'\r';
                    self.end_line(out)?;
                }
                _ => {
                    self.last_was_cr = false;
                    if self.line.len() >= self.limit {
                        return Err(SseError::TooLarge(self.limit));
                    }
                    self.line.push(b);
                }
            }
        }
        Ok(())
    }

    /// True when bytes of an unfinished line or event are buffered.
    pub(crate) fn has_partial(&self) -> bool {
        !self.line.is_empty() || self.has_data
    }

    fn end_line(&mut self, out: &mut Vec<String>) -> Result<(), SseError> {
        let line = std::mem::take(&mut self.line);
        if line.is_empty() {
            if self.has_data {
                let data = std::mem::take(&mut self.data);
                self.has_data = false;
                out.push(String::from_utf8(data).map_err(|_| SseError::NotUtf8)?);
            }
            return Ok(());
        }
        if line[0] == b':' {
            return Ok(()); // comment / keep-alive
        }
        let (field, value) = match line.iter().position(|&c| c == b':') {
            Some(i) => {
                let v = &line[i + 1..];
                (&line[..i], v.strip_prefix(b" ").unwrap_or(v))
            }
            None => (&line[..], &[][..]),
        };
        if field == b"data" {
            if self.has_data {
                self.data.push(b'\n');
            }
            if self.data.len() + value.len() > self.limit {
                return Err(SseError::TooLarge(self.limit));
            }
            self.data.extend_from_slice(value);
            self.has_data = true;
        }
        // `event`, `id`, `retry` and unknown fields are not used by chat completions.
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(chunks: &[&[u8]]) -> Vec<String> {
        let mut d = SseDecoder::new(64);
        let mut out = Vec::new();
        for c in chunks {
            d.feed(c, &mut out).unwrap();
        }
        out
    }

    #[test]
    fn events_split_anywhere() {
        let out = decode(&[b"da", b"ta: {\"a\"", b":1}\r", b"\n\r\n: ping\n\ndata:x\ndata: y\n", b"\n"]);
        assert_eq!(out, ["{\"a\":1}", "x\ny"]);
    }

    #[test]
    fn unfinished_event_is_not_emitted() {
        let mut d = SseDecoder::new(64);
        let mut out = Vec::new();
        d.feed(b"data: half", &mut out).unwrap();
        assert!(out.is_empty());
        assert!(d.has_partial());
    }

    #[test]
    fn oversized_line_is_refused() {
        let mut d = SseDecoder::new(8);
        let mut out = Vec::new();
        assert_eq!(d.feed(b"data: 0123456789", &mut out), Err(SseError::TooLarge(8)));
    }
}
