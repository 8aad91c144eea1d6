//! `Accept-Encoding` negotiation: the pick is one of the server's codings, never one the client refused with q=0,
//! and no offered coding has a higher q-value than the pick.
#![no_main]

use arbitrary::Arbitrary;
use catzilla_core::compression::{negotiate, CompressionConfig, Encoding};
use catzilla_core::http::HeaderValue;
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Input<'a> {
    /// The server's preference list (may be empty or repeat a coding).
    encodings: Vec<u8>,
    header: Header<'a>,
}

#[derive(Arbitrary, Debug)]
enum Header<'a> {
    Missing,
    /// Any bytes (most are not valid header text).
    Raw(&'a [u8]),
    Items(Vec<Item<'a>>),
}

#[derive(Arbitrary, Debug)]
struct Item<'a> {
    token: Token<'a>,
    /// Spaces/tabs around the token.
    pad: (u8, u8),
    params: Vec<Param<'a>>,
}

#[derive(Arbitrary, Debug)]
enum Token<'a> {
    Br,
    Gzip,
    Star,
    Identity,
    Deflate,
    Zstd,
    /// A case variant of `br` / `gzip`.
    Upper(bool),
    Raw(&'a str),
}

#[derive(Arbitrary, Debug)]
enum Param<'a> {
    /// `q=` with a value, `upper` spells it `Q=`; `space` puts optional whitespace before it.
    Q {
        upper: bool,
        space: bool,
        value: QValue<'a>,
    },
    Raw(&'a str),
}

#[derive(Arbitrary, Debug)]
enum QValue<'a> {
    /// `0`, `0.`, `0.0`, `0.00`, `0.000`: a refusal in RFC 9110 qvalue syntax.
    Zero(u8),
    One,
    Half,
    Thousandth,
    Raw(&'a str),
}

/// `true` when `p` (one `;`-separated parameter) is an RFC 9110 weight of zero.
fn is_zero_weight(p: &str) -> bool {
    let p = p.trim_start_matches([' ', '\t']);
    let Some(v) = p.strip_prefix("q=").or_else(|| p.strip_prefix("Q=")) else { return false };
    let v = v.trim_end_matches([' ', '\t']);
    let Some(frac) = v.strip_prefix('0') else { return false };
    frac.is_empty() || frac.strip_prefix('.').is_some_and(|d| d.len() <= 3 && d.bytes().all(|c| c == b'0'))
}

/// RFC 9110 §12.4.2 `qvalue` in thousandths, 0 when malformed.
fn model_q(v: &str) -> u16 {
    let (int, frac) = match v.split_once('.') {
        Some((i, f)) => (i, f),
        None => (v, ""),
    };
    if frac.len() > 3 || !frac.bytes().all(|c| c.is_ascii_digit()) {
        return 0;
    }
    let mut thousandths = 0u16;
    for (i, d) in frac.bytes().enumerate() {
        thousandths += u16::from(d - b'0') * [100, 10, 1][i];
    }
    match int {
        "0" => thousandths,
        "1" if thousandths == 0 => 1000,
        _ => 0,
    }
}

fuzz_target!(|input: Input<'_>| {
    let all = [Encoding::Brotli, Encoding::Zstd, Encoding::Gzip, Encoding::Deflate];
    let encodings: Vec<Encoding> = input.encodings.iter().map(|&b| all[usize::from(b % 4)]).collect();
    let config = CompressionConfig { encodings, ..CompressionConfig::default() };
    let text = match &input.header {
        Header::Missing => None,
        Header::Raw(b) => {
            let got = HeaderValue::from_bytes(b).ok().and_then(|v| negotiate(Some(&v), &config));
            if let Some(e) = got {
                assert!(config.encodings.contains(&e));
            }
            return;
        }
        Header::Items(items) => {
            let mut s = String::new();
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    s.push(',');
                }
                let pad = |n: u8| [" ", "\t", "  ", ""][usize::from(n % 4)];
                s.push_str(pad(item.pad.0));
                s.push_str(match &item.token {
                    Token::Br => "br",
                    Token::Gzip => "gzip",
                    Token::Star => "*",
                    Token::Identity => "identity",
                    Token::Deflate => "deflate",
                    Token::Zstd => "zstd",
                    Token::Upper(true) => "BR",
                    Token::Upper(false) => "GZip",
                    Token::Raw(r) => r,
                });
                s.push_str(pad(item.pad.1));
                for p in &item.params {
                    s.push(';');
                    match p {
                        Param::Q { upper, space, value } => {
                            if *space {
                                s.push(' ');
                            }
                            s.push_str(if *upper { "Q=" } else { "q=" });
                            match value {
                                QValue::Zero(n) => {
                                    s.push_str(["0", "0.", "0.0", "0.00", "0.000"][usize::from(n % 5)])
                                }
                                QValue::One => s.push('1'),
                                QValue::Half => s.push_str("0.5"),
                                QValue::Thousandth => s.push_str("0.001"),
                                QValue::Raw(r) => s.push_str(r),
                            }
                        }
                        Param::Raw(r) => s.push_str(r),
                    }
                }
            }
            Some(s)
        }
    };
    let value = match &text {
        Some(s) => match HeaderValue::from_str(s) {
            Ok(v) => Some(v),
            Err(_) => return,
        },
        None => None,
    };
    let got = negotiate(value.as_ref(), &config);
    let Some(chosen) = got else { return };
    assert!(config.encodings.contains(&chosen), "{chosen:?} is not one of {:?}", config.encodings);
    let text = text.expect("a coding is only chosen when the client sent Accept-Encoding");

    // Model of the weights: the first item naming a coding decides, `*` covers codings not named,
    // a missing q is 1, and a malformed or repeated-with-zero q refuses.
    let weight = |coding: Encoding| -> u16 {
        let item = text
            .split(',')
            .map(|item| item.split(';'))
            .find(|parts| {
                parts
                    .clone()
                    .next()
                    .unwrap_or("")
                    .trim_matches([' ', '\t'])
                    .eq_ignore_ascii_case(coding.token())
            })
            .or_else(|| {
                text.split(',')
                    .map(|item| item.split(';'))
                    .find(|p| p.clone().next().unwrap_or("").trim_matches([' ', '\t']) == "*")
            });
        let Some(mut parts) = item else { return 0 };
        parts.next();
        parts
            .filter_map(|p| {
                let p = p.trim_matches([' ', '\t']);
                p.strip_prefix("q=")
                    .or_else(|| p.strip_prefix("Q="))
                    .map(|v| model_q(v.trim_matches([' ', '\t'])))
            })
            .min()
            .unwrap_or(1000)
    };
    let best = config.encodings.iter().map(|&e| weight(e)).max().unwrap_or(0);
    assert_eq!(weight(chosen), best, "{text:?}: {chosen:?} chosen over a coding with a higher q-value");

    // Model: the first item naming the coding decides; `*` covers codings not named.
    let items: Vec<(&str, bool)> = text
        .split(',')
        .map(|item| {
            let mut parts = item.split(';');
            let token = parts.next().unwrap_or("").trim_matches([' ', '\t']);
            (token, parts.any(is_zero_weight))
        })
        .collect();
    match items.iter().find(|(t, _)| t.eq_ignore_ascii_case(chosen.token())) {
        Some(&(_, refused)) => assert!(!refused, "{text:?}: {chosen:?} was refused with q=0"),
        None => assert!(
            items.iter().any(|&(t, refused)| t == "*" && !refused),
            "{text:?}: {chosen:?} chosen without being named or covered by an accepted '*'"
        ),
    }
});
