//! SSE encoder: every encoded event reads back through a WHATWG EventSource parser as exactly that one event.
#![no_main]

use arbitrary::Arbitrary;
use catzilla_core::sse::{encode, encode_packed, Event};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
enum Input<'a> {
    Event {
        comment: Option<&'a str>,
        id: Option<&'a str>,
        event: Option<&'a str>,
        retry: Option<u64>,
        data: Option<&'a str>,
        /// Bytes already in the buffer (encode appends).
        prefix: bool,
    },
    Packed(&'a str),
}

/// What an EventSource dispatches.
#[derive(Debug, PartialEq, Eq)]
struct Dispatched {
    /// The event type buffer (`""` means `message`).
    event: String,
    data: String,
    last_event_id: String,
}

/// What an EventSource sees in a stream.
#[derive(Debug, Default)]
struct Parsed {
    events: Vec<Dispatched>,
    /// Blank lines, i.e. dispatch points (whether or not they dispatched an event).
    blank_lines: usize,
    retry: Option<u64>,
    last_event_id: String,
}

/// The HTML "event stream interpretation" (§9.2.6), on an already decoded stream.
fn parse(stream: &str) -> Parsed {
    let mut out = Parsed::default();
    let stream = stream.strip_prefix('\u{feff}').unwrap_or(stream);
    let (mut data, mut event, mut id_buffer) = (String::new(), String::new(), String::new());
    // Lines end with CRLF, a lone CR or a lone LF; a trailing incomplete line is never processed.
    let mut lines = Vec::new();
    let mut rest = stream;
    while let Some(pos) = rest.find(['\r', '\n']) {
        lines.push(&rest[..pos]);
        let skip = if rest[pos..].starts_with("\r\n") { 2 } else { 1 };
        rest = &rest[pos + skip..];
    }
    for line in lines {
        if line.is_empty() {
            out.blank_lines += 1;
            out.last_event_id = id_buffer.clone();
            if data.is_empty() {
                event.clear();
                continue;
            }
            if data.ends_with('\n') {
                data.pop();
            }
            out.events.push(Dispatched {
                event: std::mem::take(&mut event),
                data: std::mem::take(&mut data),
                last_event_id: out.last_event_id.clone(),
            });
            continue;
        }
        if line.starts_with(':') {
            continue;
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        match field {
            "event" => event = value.to_owned(),
            "data" => {
                data.push_str(value);
                data.push('\n');
            }
            "id" if !value.contains('\0') => id_buffer = value.to_owned(),
            "retry" if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) => {
                out.retry = value.parse().ok();
            }
            _ => {}
        }
    }
    out
}

fn has_line_end_or_nul(s: &str) -> bool {
    s.contains(['\r', '\n', '\0'])
}

fuzz_target!(|input: Input<'_>| match input {
    Input::Event { comment, id, event, retry, data, prefix } => {
        let ev = Event { comment, id, event, retry, data };
        let mut out = if prefix { b"data: before\n\n".to_vec() } else { Vec::new() };
        let before = out.clone();
        match encode(&ev, &mut out) {
            Err(e) => {
                let bad = match e.field() {
                    "id" => id,
                    "event" => event,
                    other => panic!("unexpected field {other}"),
                };
                assert!(bad.is_some_and(has_line_end_or_nul), "{ev:?} refused ({}) though valid", e.field());
                assert_eq!(out, before, "nothing is written on error");
            }
            Ok(()) => {
                assert!(!id.is_some_and(has_line_end_or_nul), "{ev:?}: id with a line end accepted");
                assert!(!event.is_some_and(has_line_end_or_nul), "{ev:?}: event with a line end accepted");
                assert!(out.starts_with(&before));
                let text = std::str::from_utf8(&out[before.len()..]).expect("the encoder writes UTF-8");
                assert!(text.ends_with('\n'), "{text:?}: the event is terminated");
                let parsed = parse(text);
                assert_eq!(parsed.blank_lines, 1, "{text:?}: one dispatch point, at the end");
                assert_eq!(parsed.retry, retry, "{text:?}: retry");
                assert_eq!(parsed.last_event_id, id.unwrap_or(""), "{text:?}: last event id");
                match data {
                    None => assert!(parsed.events.is_empty(), "{text:?}: no data, no event"),
                    Some(d) => {
                        let want = Dispatched {
                            event: event.unwrap_or("").to_owned(),
                            data: d.replace("\r\n", "\n").replace('\r', "\n"),
                            last_event_id: id.unwrap_or("").to_owned(),
                        };
                        assert_eq!(parsed.events, vec![want], "{text:?}");
                    }
                }
            }
        }
    }
    Input::Packed(packed) => {
        let mut out = Vec::new();
        let result = encode_packed(packed, &mut out);
        let text = std::str::from_utf8(&out).expect("the encoder writes UTF-8");
        // Every complete event ends in one blank line, and the encoder never writes a partial event.
        let parsed = parse(text);
        assert!(text.is_empty() || text.ends_with('\n'), "{packed:?} -> {text:?}");
        if let Ok(n) = result {
            assert_eq!(parsed.blank_lines, n, "{packed:?} -> {text:?}: {n} events");
        }
    }
});
