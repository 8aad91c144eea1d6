//! `Range` / `If-None-Match` parsing: ranges stay inside the file, only grammatical specs are honoured,
//! and several ranges come back sorted, disjoint, bounded in number and covering every satisfiable spec.
#![no_main]

use arbitrary::Arbitrary;
use catzilla_core::files::{none_match, parse_ranges, COALESCE_GAP, MAX_RANGES};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Input<'a> {
    /// Tiny lengths hit the edge cases (0, 1), large ones the overflow paths.
    len: Len,
    spec: Spec<'a>,
    /// For `none_match`.
    tag_len: u64,
    tag_mtime: u64,
    list: Vec<Item<'a>>,
}

#[derive(Arbitrary, Debug)]
enum Len {
    Small(u8),
    Any(u64),
}

#[derive(Arbitrary, Debug)]
enum Spec<'a> {
    /// Anything at all.
    Raw(&'a str),
    /// Assembled from the pieces a range is made of, so the grammar is explored quickly.
    Pieces(Vec<Piece<'a>>),
}

#[derive(Arbitrary, Debug)]
enum Piece<'a> {
    Bytes,
    Digits(u64),
    Zeros(u8),
    Dash,
    Comma,
    Plus,
    Space,
    Tab,
    Other(&'a str),
}

#[derive(Arbitrary, Debug)]
enum Item<'a> {
    Star,
    /// The resource's own tag, optionally weak and padded.
    Tag {
        weak: bool,
        pad: bool,
    },
    Raw(&'a str),
}

/// The whitespace `str::trim` removes (what the parser trims), for the grammar model below.
fn ws(c: char) -> bool {
    c.is_whitespace()
}

/// Reference grammar: `ws* "bytes=" ws* DIGIT* ws* "-" ws* DIGIT* ws*` (at least one side
/// non-empty). Returns the two digit runs.
fn grammar(spec: &str) -> Option<(&str, &str)> {
    let rest = spec.trim_start_matches(ws).strip_prefix("bytes=")?;
    let rest = rest.trim_matches(ws);
    let dash = rest.find('-')?;
    let (a, b) = (rest[..dash].trim_end_matches(ws), rest[dash + 1..].trim_start_matches(ws));
    let digits = |s: &str| s.bytes().all(|c| c.is_ascii_digit());
    (digits(a) && digits(b) && !(a.is_empty() && b.is_empty())).then_some((a, b))
}

/// Several specs: the answer is sorted, disjoint with more than [`COALESCE_GAP`] between parts,
/// inside the file, at most [`MAX_RANGES`] long, and covers every spec that is satisfiable alone.
fn several(spec: &str, len: u64, got: Option<Result<Vec<(u64, u64)>, ()>>) {
    let Some(got) = got else { return };
    let pieces: Vec<&str> = spec.trim().trim_start_matches("bytes=").split(',').collect();
    assert!(pieces.len() <= MAX_RANGES, "{spec:?}: more than MAX_RANGES specs honoured");
    let alone: Vec<(u64, u64)> = pieces
        .iter()
        .filter_map(|p| match parse_ranges(&format!("bytes={p}"), len) {
            Some(Ok(v)) => Some(v[0]),
            Some(Err(())) => None,
            None => panic!("{spec:?}: honoured although {p:?} alone is malformed"),
        })
        .collect();
    match got {
        Err(()) => assert!(alone.is_empty(), "{spec:?} len {len}: 416 although {alone:?} are satisfiable"),
        Ok(v) => {
            assert!(!v.is_empty());
            for (i, &(s, e)) in v.iter().enumerate() {
                assert!(s <= e && e < len, "{spec:?} len {len}: {v:?} leaves the file");
                if i > 0 {
                    assert!(s > v[i - 1].1.saturating_add(COALESCE_GAP), "{spec:?}: {v:?} not merged");
                }
            }
            for (s, e) in alone {
                assert!(
                    v.iter().any(|&(a, b)| a <= s && e <= b),
                    "{spec:?}: ({s}, {e}) not covered by {v:?}"
                );
            }
        }
    }
}

fuzz_target!(|input: Input<'_>| {
    let len = match input.len {
        Len::Small(n) => u64::from(n % 8),
        Len::Any(n) => n,
    };
    let spec = match &input.spec {
        Spec::Raw(s) => (*s).to_owned(),
        Spec::Pieces(pieces) => {
            let mut s = String::new();
            for p in pieces {
                match p {
                    Piece::Bytes => s.push_str("bytes="),
                    Piece::Digits(n) => s.push_str(&n.to_string()),
                    Piece::Zeros(n) => s.extend(std::iter::repeat_n('0', usize::from(*n % 32))),
                    Piece::Dash => s.push('-'),
                    Piece::Comma => s.push(','),
                    Piece::Plus => s.push('+'),
                    Piece::Space => s.push(' '),
                    Piece::Tab => s.push('\t'),
                    Piece::Other(o) => s.push_str(o),
                }
            }
            s
        }
    };

    let all = parse_ranges(&spec, len);
    if spec.contains('+') {
        assert_eq!(all, None, "{spec:?}: a '+' means the Range is ignored");
    }
    if spec.contains(',') {
        several(&spec, len, all);
        return;
    }
    let got = all.map(|r| {
        r.map(|v| {
            assert_eq!(v.len(), 1, "{spec:?}: one spec, one range");
            v[0]
        })
    });
    match got {
        None => {}
        Some(result) => {
            // Anything honoured (206 or 416) must follow the grammar exactly.
            let (a, b) = grammar(&spec).unwrap_or_else(|| panic!("{spec:?} honoured but not grammatical"));
            match result {
                Ok((s, e)) => {
                    assert!(s <= e && e < len, "{spec:?} len {len}: ({s}, {e}) out of the file");
                    if a.is_empty() {
                        let n: u64 = b.parse().expect("suffix fits u64");
                        assert_eq!((s, e), (len.saturating_sub(n), len - 1), "{spec:?} len {len}");
                    } else {
                        let start: u64 = a.parse().expect("start fits u64");
                        assert_eq!(s, start, "{spec:?}");
                        if !b.is_empty() {
                            let end: u64 = b.parse().expect("end fits u64");
                            assert!(end >= start, "{spec:?}: reversed range honoured");
                            assert_eq!(e, end.min(len - 1), "{spec:?}");
                        } else {
                            assert_eq!(e, len - 1, "{spec:?}");
                        }
                    }
                }
                Err(()) => {
                    // 416 only when nothing of the file can be sent.
                    let unsatisfiable = if a.is_empty() {
                        b.bytes().all(|c| c == b'0') || len == 0
                    } else {
                        a.parse::<u64>().is_ok_and(|s| s >= len)
                    };
                    assert!(unsatisfiable, "{spec:?} len {len}: 416 for a satisfiable range");
                }
            }
        }
    }
    // A grammatical, in-range, single spec of small numbers is always honoured.
    if let Some((a, b)) = grammar(&spec) {
        if !spec.contains(',') && a.len() < 19 && b.len() < 19 {
            let ok = if a.is_empty() {
                true
            } else {
                b.is_empty() || a.parse::<u64>().ok() <= b.parse::<u64>().ok()
            };
            if ok {
                assert!(got.is_some(), "{spec:?} len {len}: a valid range was ignored");
            }
        }
    }

    // If-None-Match: the tag is found whenever the list names it (or `*`), and only then.
    let tag = format!("\"{:x}-{:x}\"", input.tag_len, input.tag_mtime);
    let mut items = Vec::new();
    let mut named = false;
    for item in &input.list {
        items.push(match item {
            Item::Star => {
                named = true;
                "*".to_owned()
            }
            Item::Tag { weak, pad } => {
                named = true;
                let t = if *weak { format!("W/{tag}") } else { tag.clone() };
                if *pad {
                    format!(" \t{t} ")
                } else {
                    t
                }
            }
            Item::Raw(s) => (*s).to_owned(),
        });
    }
    let list = items.join(",");
    let matched = none_match(&list, &tag);
    if named {
        assert!(matched, "{list:?} names {tag:?}");
    }
    if matched {
        assert!(list.contains('*') || list.contains(&tag), "{list:?} matched {tag:?} without naming it");
    }
});
