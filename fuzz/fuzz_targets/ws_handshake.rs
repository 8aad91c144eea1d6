//! WebSocket handshake: `accept_key` succeeds exactly for HTTP/1.1+, version 13 and a 24-char base64 key ending in `==`.
#![no_main]

use arbitrary::Arbitrary;
use catzilla_core::http::{header, HeaderMap, HeaderName, HeaderValue, Version};
use catzilla_core::ws::{accept_key, is_upgrade_request};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Input<'a> {
    version: u8,
    headers: Vec<(Name<'a>, Value<'a>)>,
}

#[derive(Arbitrary, Debug)]
enum Name<'a> {
    Connection,
    Upgrade,
    Key,
    Version,
    Raw(&'a str),
}

#[derive(Arbitrary, Debug)]
enum Value<'a> {
    Raw(&'a [u8]),
    /// A plausible key: 22 characters from an alphabet mixing base64 and not, plus a tail.
    Key([u8; 22], u8),
    Thirteen,
    UpgradeTokens(Vec<u8>),
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fuzz_target!(|input: Input<'_>| {
    let version = match input.version % 5 {
        0 => Version::HTTP_09,
        1 => Version::HTTP_10,
        2 => Version::HTTP_11,
        3 => Version::HTTP_2,
        _ => Version::HTTP_3,
    };
    let mut headers = HeaderMap::new();
    for (name, value) in &input.headers {
        let name = match name {
            Name::Connection => header::CONNECTION,
            Name::Upgrade => header::UPGRADE,
            Name::Key => header::SEC_WEBSOCKET_KEY,
            Name::Version => header::SEC_WEBSOCKET_VERSION,
            Name::Raw(s) => match HeaderName::from_bytes(s.as_bytes()) {
                Ok(n) => n,
                Err(_) => continue,
            },
        };
        let bytes: Vec<u8> = match value {
            Value::Raw(b) => b.to_vec(),
            Value::Key(chars, tail) => {
                let mut k: Vec<u8> = chars
                    .iter()
                    .map(|&c| if c < 0xf0 { B64[usize::from(c % 64)] } else { b"=-_ .%"[usize::from(c % 6)] })
                    .collect();
                k.extend_from_slice([&b"=="[..], b"=", b"", b"===", b"A="][usize::from(tail % 5)]);
                k
            }
            Value::Thirteen => b"13".to_vec(),
            Value::UpgradeTokens(picks) => {
                let words = ["upgrade", "Upgrade", "websocket", "WebSocket", "keep-alive", "h2c", "", " "];
                picks.iter().map(|&p| words[usize::from(p % 8)]).collect::<Vec<_>>().join(",").into_bytes()
            }
        };
        let Ok(value) = HeaderValue::from_bytes(&bytes) else { continue };
        headers.append(name, value);
    }

    // Upgrade detection: a `Connection` token `upgrade` and an `Upgrade` token `websocket`, in any value.
    let token = |name: HeaderName, want: &str| {
        headers.get_all(name).iter().any(|v| {
            std::str::from_utf8(v.as_bytes()).is_ok_and(|s| {
                s.bytes().all(|b| b == b'\t' || (0x20..0x7f).contains(&b))
                    && s.split(',').any(|t| t.trim().eq_ignore_ascii_case(want))
            })
        })
    };
    assert_eq!(
        is_upgrade_request(&headers),
        token(header::CONNECTION, "upgrade") && token(header::UPGRADE, "websocket"),
        "{headers:?}"
    );

    let result = accept_key(version, &headers);
    // The first value of each header is the one that counts (as `HeaderMap::get` returns it).
    let key = headers.get(header::SEC_WEBSOCKET_KEY).map(HeaderValue::as_bytes);
    let valid_key =
        key.is_some_and(|k| k.len() == 24 && k[..22].iter().all(|c| B64.contains(c)) && &k[22..] == b"==");
    let version_13 = headers.get(header::SEC_WEBSOCKET_VERSION).is_some_and(|v| v.as_bytes() == b"13");
    let expected = version >= Version::HTTP_11 && version_13 && valid_key;
    match result {
        Ok(accept) => {
            assert!(expected, "{version:?} {headers:?} accepted");
            assert_eq!(accept.len(), 28, "{accept:?}: base64 of a SHA-1");
            assert!(accept.ends_with('=') && accept[..27].bytes().all(|c| B64.contains(&c)), "{accept:?}");
        }
        Err(_) => assert!(!expected, "{version:?} {headers:?} refused"),
    }
});
