//! Copies of request parts that hyper parsed as views of its connection's read buffer, for state
//! that outlives the request head.
//!
//! hyper parses the request target and every header value as a slice of the buffer it read the
//! head into (8 KiB). Anything kept from them keeps that whole buffer alive, and hyper meanwhile
//! reads the connection into a new one. For a request answered at once that costs nothing; for a
//! stream that lasts hours (and a stalled one that holds a connection for nothing) it doubled
//! hyper's read buffers. Long-lived exchanges keep these copies instead, made once when they go
//! live.

use http::{HeaderMap, HeaderName, HeaderValue, Uri};

/// `uri` in an allocation of its own (one allocation and one parse).
pub fn uri(uri: &Uri) -> Uri {
    Uri::try_from(uri.to_string()).unwrap_or_else(|_| uri.clone())
}

/// The headers of `headers` named in `keep`, each value in an allocation of its own.
pub fn headers(headers: &HeaderMap, keep: &[HeaderName]) -> HeaderMap {
    let mut kept = HeaderMap::new();
    for name in keep {
        for v in headers.get_all(name) {
            if let Ok(v) = HeaderValue::from_bytes(v.as_bytes()) {
                kept.append(name.clone(), v);
            }
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    /// A request head as hyper holds it: one buffer, the target and values slices of it.
    fn head() -> Bytes {
        Bytes::from(b"/stream?bytes=100 text/plain; charset=utf-8 gzip, br".to_vec())
    }

    #[test]
    fn a_detached_target_equals_the_original_and_shares_nothing_with_the_head() {
        let buf = head();
        let original = Uri::from_maybe_shared(buf.slice(0..17)).expect("uri");
        let copy = uri(&original);
        drop(original);
        assert_eq!(copy, "/stream?bytes=100");
        assert_eq!(copy.query(), Some("bytes=100"));
        assert!(buf.is_unique(), "the head buffer is no longer referenced");
        for target in ["http://example.com:8080/a/b?c=d", "*", "example.com:443", "/"] {
            let u: Uri = target.parse().expect("uri");
            assert_eq!(uri(&u), u, "{target}");
        }
    }

    #[test]
    fn detached_headers_keep_only_the_named_ones_in_order_and_share_nothing_with_the_head() {
        let buf = head();
        let mut map = HeaderMap::new();
        let value = |r: std::ops::Range<usize>| HeaderValue::from_maybe_shared(buf.slice(r)).expect("value");
        map.append(http::header::CONTENT_TYPE, value(18..43));
        map.append(http::header::ACCEPT_ENCODING, value(44..48));
        map.append(http::header::ACCEPT_ENCODING, value(50..52));
        let kept = headers(&map, &[http::header::ACCEPT_ENCODING, http::header::ACCEPT]);
        drop(map);
        let values: Vec<_> = kept.get_all(http::header::ACCEPT_ENCODING).iter().collect();
        assert_eq!(values, ["gzip", "br"]);
        assert_eq!(kept.len(), 2);
        assert!(buf.is_unique(), "the head buffer is no longer referenced");
    }
}
