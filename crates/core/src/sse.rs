//! The one Server-Sent Events encoder: every SSE byte the server writes (`sse()` streams, topic
//! frames from `app.publish` / `ws.publish`, replay gaps, heartbeats) is produced here.
//!
//! EventSource treats CRLF, a lone CR and a lone LF alike as line ends (HTML §9.2.6), so data and
//! comments are split on all three, and `id` / `event` values containing CR, LF or NUL are
//! rejected: written as-is they would end the field early and let the rest forge a new field or
//! a whole new event.

use std::fmt;

/// Bytes of one heartbeat: a bare comment line and the blank line, ignored by clients.
pub const HEARTBEAT: &[u8] = b":\n\n";

/// An `id`, `event` or `retry` value that cannot be written safely. Stable code: `CZ_SSE_FIELD`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseFieldError {
    field: &'static str,
}

impl SseFieldError {
    /// The offending field (`id`, `event` or `retry`).
    pub fn field(&self) -> &'static str {
        self.field
    }
}

impl fmt::Display for SseFieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field == "retry" {
            f.write_str("SSE retry must be a non-negative integer")
        } else {
            write!(f, "SSE {} must not contain CR, LF or NUL", self.field)
        }
    }
}

impl std::error::Error for SseFieldError {}

/// One event. Every field is optional; an event with neither data nor fields encodes to a bare
/// blank line, which dispatches nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct Event<'a> {
    /// `: ...` comment lines (ignored by clients).
    pub comment: Option<&'a str>,
    /// `id:`, echoed back by the browser as `Last-Event-ID`.
    pub id: Option<&'a str>,
    /// `event:`, the type the client listens for (default `message`).
    pub event: Option<&'a str>,
    /// `retry:` reconnection delay in milliseconds.
    pub retry: Option<u64>,
    /// Payload, one `data:` line per line of the text.
    pub data: Option<&'a str>,
}

/// Checks that an `id` or `event` value is a single line without NUL.
pub fn check_field(field: &'static str, value: &str) -> Result<(), SseFieldError> {
    if memchr::memchr3(b'\r', b'\n', b'\0', value.as_bytes()).is_some() {
        return Err(SseFieldError { field });
    }
    Ok(())
}

/// Appends `prefix` + line + `\n` for every line of `text`, splitting on CRLF, CR and LF.
/// Line ends are found with `memchr` (SIMD): most SSE data is one long line, and a byte-by-byte
/// scan was the largest cost of encoding it.
fn push_lines(out: &mut Vec<u8>, prefix: &[u8], text: &str) {
    let bytes = text.as_bytes();
    let mut start = 0;
    for i in memchr::memchr2_iter(b'\n', b'\r', bytes) {
        // The LF of a CRLF: its line was ended at the CR.
        if i < start {
            continue;
        }
        out.extend_from_slice(prefix);
        out.extend_from_slice(&bytes[start..i]);
        out.push(b'\n');
        start = if bytes[i] == b'\r' && bytes.get(i + 1) == Some(&b'\n') { i + 2 } else { i + 1 };
    }
    out.extend_from_slice(prefix);
    out.extend_from_slice(&bytes[start..]);
    out.push(b'\n');
}

/// Encodes one event, ending with the blank line that dispatches it. On error nothing is written.
pub fn encode(ev: &Event<'_>, out: &mut Vec<u8>) -> Result<(), SseFieldError> {
    if let Some(id) = ev.id {
        check_field("id", id)?;
    }
    if let Some(event) = ev.event {
        check_field("event", event)?;
    }
    out.reserve(ev.data.map_or(0, str::len) + 16);
    if let Some(c) = ev.comment {
        push_lines(out, b": ", c);
    }
    if let Some(id) = ev.id {
        push_lines(out, b"id: ", id);
    }
    if let Some(event) = ev.event {
        push_lines(out, b"event: ", event);
    }
    if let Some(retry) = ev.retry {
        out.extend_from_slice(b"retry: ");
        out.extend_from_slice(retry.to_string().as_bytes());
        out.push(b'\n');
    }
    if let Some(data) = ev.data {
        push_lines(out, b"data: ", data);
    }
    out.push(b'\n');
    Ok(())
}

/// Why a packed batch (see [`encode_packed`]) could not be encoded whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PackedError {
    /// A field of an event is invalid; the events before it were encoded.
    Field(SseFieldError),
    /// The batch does not follow the packed grammar (a bug in the caller, not user input).
    Malformed,
}

impl fmt::Display for PackedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Field(e) => e.fmt(f),
            Self::Malformed => f.write_str("malformed packed SSE batch"),
        }
    }
}

impl std::error::Error for PackedError {}

/// Splits `len` UTF-16 code units off the front of `s` (the unit JavaScript's `length` counts).
fn take_utf16(s: &str, len: usize) -> Option<(&str, &str)> {
    // ASCII fast path: one byte per unit.
    if s.len() >= len && s.as_bytes()[..len].is_ascii() {
        return Some(s.split_at(len));
    }
    let mut units = 0;
    for (i, c) in s.char_indices() {
        if units == len {
            return Some(s.split_at(i));
        }
        units += c.len_utf16();
        if units > len {
            return None;
        }
    }
    (units == len).then_some((s, ""))
}

/// Encodes a batch of events packed by the TypeScript layer into one string, so a burst of
/// events crosses into Rust in one call. Grammar: each event is a run of fields followed by
/// `.`; a field is a tag (`c` comment, `i` id, `e` event, `r` retry, `d` data), the value's
/// length in UTF-16 code units in decimal, `:`, and the value. Events are appended to `out` in
/// order; on an invalid field the events before it stay in `out` and the error says which field.
/// Returns the number of events encoded.
pub fn encode_packed(mut packed: &str, out: &mut Vec<u8>) -> Result<usize, PackedError> {
    let mut count = 0;
    let mut ev = Event::default();
    while let Some(tag) = packed.as_bytes().first().copied() {
        packed = packed.get(1..).ok_or(PackedError::Malformed)?;
        if tag == b'.' {
            encode(&ev, out).map_err(PackedError::Field)?;
            ev = Event::default();
            count += 1;
            continue;
        }
        let colon = packed.find(':').ok_or(PackedError::Malformed)?;
        let len: usize = packed[..colon].parse().map_err(|_| PackedError::Malformed)?;
        let (value, rest) = take_utf16(&packed[colon + 1..], len).ok_or(PackedError::Malformed)?;
        packed = rest;
        match tag {
            b'c' => ev.comment = Some(value),
            b'i' => ev.id = Some(value),
            b'e' => ev.event = Some(value),
            b'd' => ev.data = Some(value),
            b'r' => {
                // Digits only: `parse` alone would take a leading `+`.
                if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(PackedError::Field(SseFieldError { field: "retry" }));
                }
                ev.retry =
                    Some(value.parse().map_err(|_| PackedError::Field(SseFieldError { field: "retry" }))?);
            }
            _ => return Err(PackedError::Malformed),
        }
    }
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(ev: Event<'_>) -> String {
        let mut out = Vec::new();
        encode(&ev, &mut out).expect("valid");
        String::from_utf8(out).expect("utf-8")
    }

    #[test]
    fn data_is_split_on_crlf_cr_and_lf() {
        let s = enc(Event { data: Some("a\r\nb\rc\nd\r"), ..Event::default() });
        assert_eq!(s, "data: a\ndata: b\ndata: c\ndata: d\ndata: \n\n");
    }

    /// The line splitting `push_lines` must match: CRLF, a lone CR and a lone LF each end a line.
    fn lines_by_hand(text: &str) -> Vec<String> {
        let mut lines = vec![String::new()];
        let mut chars = text.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '\r' => {
                    if chars.peek() == Some(&'\n') {
                        chars.next();
                    }
                    lines.push(String::new());
                }
                '\n' => lines.push(String::new()),
                c => lines.last_mut().expect("one line at least").push(c),
            }
        }
        lines
    }

    #[test]
    fn data_lines_match_a_char_by_char_split_for_every_mix_of_line_ends() {
        let parts = ["", "a", "bc", "\r", "\n", "\r\n", "\n\r", "é", "\0"];
        let mut checked = 0;
        // Every sequence of up to four parts: runs of CRs, LFs and CRLFs at the start, middle and end.
        let mut seqs: Vec<String> = vec![String::new()];
        for _ in 0..4 {
            seqs = seqs.iter().flat_map(|s| parts.iter().map(move |p| format!("{s}{p}"))).collect();
            for text in &seqs {
                let got = enc(Event { data: Some(text), ..Event::default() });
                let want: String =
                    lines_by_hand(text).iter().map(|l| format!("data: {l}\n")).collect::<String>() + "\n";
                assert_eq!(got, want, "data {text:?}");
                checked += 1;
            }
        }
        assert!(checked > 6000);
    }

    #[test]
    fn regression_sse_event_injection_through_a_lone_cr_is_one_event() {
        let s = enc(Event {
            id: Some("1"),
            data: Some("a\rid: 666\r\revent: evil\rdata: x"),
            ..Event::default()
        });
        assert_eq!(s, "id: 1\ndata: a\ndata: id: 666\ndata: \ndata: event: evil\ndata: data: x\n\n");
        assert_eq!(s.matches("\n\n").count(), 1, "exactly one blank line, at the end");
    }

    #[test]
    fn id_and_event_with_line_ends_or_nul_are_rejected() {
        for bad in ["a\rb", "a\nb", "a\r\n", "a\0"] {
            let mut out = Vec::new();
            let e = encode(&Event { event: Some(bad), ..Event::default() }, &mut out);
            assert_eq!(e.map_err(|e| e.field()), Err("event"));
            let e = encode(&Event { id: Some(bad), ..Event::default() }, &mut out);
            assert_eq!(e.map_err(|e| e.field()), Err("id"));
            assert!(out.is_empty(), "nothing written on error");
        }
    }

    #[test]
    fn fields_come_in_a_fixed_order() {
        let s = enc(Event {
            comment: Some("hi\nthere"),
            id: Some("7"),
            event: Some("up"),
            retry: Some(3000),
            data: Some("x"),
        });
        assert_eq!(s, ": hi\n: there\nid: 7\nevent: up\nretry: 3000\ndata: x\n\n");
    }

    #[test]
    fn packed_batches_count_utf16_units() {
        let mut out = Vec::new();
        // "é" is one UTF-16 unit (2 bytes), "😀" two units (4 bytes).
        let n = encode_packed("d2:é!.i1:9d3:😀\n.r4:1000.", &mut out).expect("valid");
        assert_eq!(n, 3);
        assert_eq!(
            String::from_utf8(out).expect("utf-8"),
            "data: é!\n\nid: 9\ndata: 😀\ndata: \n\nretry: 1000\n\n"
        );
    }

    #[test]
    fn a_packed_batch_keeps_the_events_before_an_invalid_one() {
        let mut out = Vec::new();
        let e = encode_packed("d1:a.e3:x\ry.d1:b.", &mut out);
        assert_eq!(e, Err(PackedError::Field(SseFieldError { field: "event" })));
        assert_eq!(out, b"data: a\n\n");
        for bad in ["r2:+1.", "r0:.", "r3:1.5."] {
            assert!(matches!(encode_packed(bad, &mut Vec::new()), Err(PackedError::Field(_))), "{bad}");
        }
        for bad in ["x1:a.", "d5:ab.", "d:a.", "d1a."] {
            assert_eq!(encode_packed(bad, &mut Vec::new()), Err(PackedError::Malformed), "{bad}");
        }
    }

    #[test]
    fn fuzz_regression_packed_non_ascii_tag_is_malformed_not_a_panic() {
        // Found by `cargo fuzz run sse`: slicing off a multi-byte tag panicked (not a char boundary).
        assert_eq!(encode_packed("\u{1bf}", &mut Vec::new()), Err(PackedError::Malformed));
        let mut out = Vec::new();
        assert_eq!(encode_packed("d1:a.\u{e9}", &mut out), Err(PackedError::Malformed));
        assert_eq!(out, b"data: a\n\n", "the events before it stay");
    }
}
