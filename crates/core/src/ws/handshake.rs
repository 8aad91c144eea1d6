//! The WebSocket handshake: recognising an upgrade request, checking it (RFC 6455 §4.2.1) and
//! answering its permessage-deflate offers.

use http::HeaderMap;

use super::deflate::{negotiate, Agreed, DeflateConfig};

/// `true` when the request asks for a WebSocket upgrade (`Connection: upgrade`,
/// `Upgrade: websocket`).
pub fn is_upgrade_request(headers: &HeaderMap) -> bool {
    let has_token = |name: http::header::HeaderName, token: &str| {
        headers
            .get_all(name)
            .iter()
            .any(|v| v.to_str().is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token))))
    };
    has_token(http::header::CONNECTION, "upgrade") && has_token(http::header::UPGRADE, "websocket")
}

/// `true` when `key` is the base64 of 16 bytes: 22 characters of the base64 alphabet, then `==`.
fn valid_key(key: &[u8]) -> bool {
    let b64 = |b: &u8| b.is_ascii_alphanumeric() || *b == b'+' || *b == b'/';
    key.len() == 24 && key[..22].iter().all(b64) && &key[22..] == b"=="
}

/// Checks the rest of the handshake (RFC 6455 §4.2.1: HTTP/1.1 or later, version 13, a key that
/// is the base64 of 16 bytes) and returns `Sec-WebSocket-Accept`.
pub fn accept_key(version: http::Version, headers: &HeaderMap) -> Result<String, &'static str> {
    if version < http::Version::HTTP_11 {
        return Err("WebSocket upgrades need HTTP/1.1");
    }
    if headers.get(http::header::SEC_WEBSOCKET_VERSION).is_none_or(|v| v.as_bytes() != b"13") {
        return Err("Sec-WebSocket-Version must be 13");
    }
    let key = headers.get(http::header::SEC_WEBSOCKET_KEY).ok_or("missing Sec-WebSocket-Key")?;
    if !valid_key(key.as_bytes()) {
        return Err("invalid Sec-WebSocket-Key: not the base64 of 16 bytes");
    }
    Ok(tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes()))
}

/// The request's `Sec-WebSocket-Extensions` values, kept until the upgrade is answered.
pub fn extension_offers(headers: &HeaderMap) -> Vec<http::HeaderValue> {
    headers.get_all(http::header::SEC_WEBSOCKET_EXTENSIONS).iter().cloned().collect()
}

/// Answers the client's extension offers with the route's deflate settings.
pub(crate) fn extensions(offers: &[http::HeaderValue], config: Option<&DeflateConfig>) -> Option<Agreed> {
    negotiate(offers.iter().filter_map(|v| v.to_str().ok()), config?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handshakes_need_version_13_and_a_24_character_key() {
        let v = http::Version::HTTP_11;
        let mut h = HeaderMap::new();
        h.insert(http::header::CONNECTION, http::HeaderValue::from_static("keep-alive, Upgrade"));
        h.insert(http::header::UPGRADE, http::HeaderValue::from_static("WebSocket"));
        assert!(is_upgrade_request(&h));
        assert!(accept_key(v, &h).is_err());
        h.insert(http::header::SEC_WEBSOCKET_VERSION, http::HeaderValue::from_static("13"));
        h.insert(http::header::SEC_WEBSOCKET_KEY, http::HeaderValue::from_static("short"));
        assert!(accept_key(v, &h).is_err());
        // The RFC 6455 §1.3 example.
        h.insert(http::header::SEC_WEBSOCKET_KEY, http::HeaderValue::from_static("dGhlIHNhbXBsZSBub25jZQ=="));
        assert_eq!(accept_key(v, &h).as_deref(), Ok("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="));
        assert!(accept_key(http::Version::HTTP_10, &h).is_err(), "HTTP/1.0 cannot upgrade");
    }

    #[test]
    fn regression_websocket_key_must_be_the_base64_of_16_bytes() {
        let mut h = HeaderMap::new();
        h.insert(http::header::SEC_WEBSOCKET_VERSION, http::HeaderValue::from_static("13"));
        for bad in [
            "!!!!!!!!!!!!!!!!!!!!!!==",
            "dGhlIHNhbXBsZSBub25jZQ=x",
            "dGhlIHNhbXBsZSBub25jZ===",
            "dGhlIHNhbXBs ZSBub25jZQ=",
        ] {
            h.insert(http::header::SEC_WEBSOCKET_KEY, http::HeaderValue::from_static(bad));
            assert!(accept_key(http::Version::HTTP_11, &h).is_err(), "{bad}");
        }
    }
}
