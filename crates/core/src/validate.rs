//! Request-head checks hyper leaves to the server: `Host` (RFC 9112 §3.2) and the form of the
//! request-target (RFC 9112 §3.2.1–3.2.4).

use http::{HeaderMap, Method, Uri, Version};

/// Why a request head is refused with `400`; the text is the response body.
pub(crate) type Invalid = &'static str;

/// `true` for a `Host` value of the form `uri-host [ ":" port ]` (RFC 3986): a reg-name, an
/// IPv4 address or a bracketed IP literal, then optional digits. Empty is valid (a target
/// without authority). A list (`a, b`) or anything with `/`, `?`, `#`, `@` or spaces is not.
pub(crate) fn valid_host(value: &[u8]) -> bool {
    let (host, port) = if value.first() == Some(&b'[') {
        let Some(end) = value.iter().position(|&b| b == b']') else { return false };
        let literal = &value[1..end];
        if literal.is_empty() || !literal.iter().all(|&b| b.is_ascii_hexdigit() || b == b':' || b == b'.') {
            // IPvFuture (`v1.x`) is allowed by RFC 3986 but used by nobody; refuse it too.
            return false;
        }
        match &value[end + 1..] {
            [] => (&value[..0], None),
            [b':', port @ ..] => (&value[..0], Some(port)),
            _ => return false,
        }
    } else {
        match value.iter().position(|&b| b == b':') {
            Some(i) => (&value[..i], Some(&value[i + 1..])),
            None => (value, None),
        }
    };
    // reg-name = *( unreserved / pct-encoded / sub-delims ), without "," (a list of hosts).
    let reg_name = host.iter().all(|&b| {
        b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'-' | b'.'
                    | b'_'
                    | b'~'
                    | b'%'
                    | b'!'
                    | b'$'
                    | b'&'
                    | b'\''
                    | b'('
                    | b')'
                    | b'*'
                    | b'+'
                    | b';'
                    | b'='
            )
    });
    reg_name && port.is_none_or(|p| p.iter().all(u8::is_ascii_digit))
}

/// Checks `Host` and the request-target of a request head.
pub(crate) fn check_head(
    method: &Method,
    uri: &Uri,
    version: Version,
    headers: &HeaderMap,
) -> Result<(), Invalid> {
    // Origin-form starts with "/"; absolute-form has a scheme. Authority-form (`host:port`) is
    // for CONNECT only, asterisk-form (`*`) for OPTIONS only, and a bare `hello` is neither.
    if uri.scheme().is_none() {
        let target = uri.path_and_query().map_or("", |p| p.as_str());
        let ok = target.starts_with('/') || (target == "*" && method == Method::OPTIONS);
        if !ok {
            return Err("Bad Request: the request-target must start with '/'");
        }
    }
    let mut hosts = headers.get_all(http::header::HOST).iter();
    match (hosts.next(), hosts.next()) {
        (None, _) if version == Version::HTTP_11 => Err("Bad Request: HTTP/1.1 requires a Host header"),
        (Some(_), Some(_)) => Err("Bad Request: more than one Host header"),
        (Some(h), None) if !valid_host(h.as_bytes()) => Err("Bad Request: invalid Host header"),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(target: &str, hosts: &[&str], version: Version) -> Result<(), Invalid> {
        let mut h = HeaderMap::new();
        for v in hosts {
            h.append(http::header::HOST, http::HeaderValue::from_str(v).expect("value"));
        }
        let uri: Uri = target.parse().expect("uri");
        check_head(&Method::GET, &uri, version, &h)
    }

    #[test]
    fn hosts_follow_rfc_3986() {
        for ok in ["example.com", "example.com:8080", "127.0.0.1", "[::1]", "[::1]:80", "a_b-c~d", "", "x:"] {
            assert!(valid_host(ok.as_bytes()), "{ok}");
        }
        for bad in
            ["bad/host", "a, b", "a,b", "a b", "user@host", "h:80x", "[::1", "[zz]", "[::1]x", "h?x", "h#x"]
        {
            assert!(!valid_host(bad.as_bytes()), "{bad}");
        }
    }

    #[test]
    fn regression_host_validation_missing_duplicate_and_invalid() {
        assert!(head("/", &["a"], Version::HTTP_11).is_ok());
        assert!(head("/", &[], Version::HTTP_11).is_err(), "HTTP/1.1 without Host");
        assert!(head("/", &[], Version::HTTP_10).is_ok(), "HTTP/1.0 may omit it");
        assert!(head("/", &["a", "a"], Version::HTTP_11).is_err(), "two Host headers");
        assert!(head("/", &["bad/host"], Version::HTTP_11).is_err());
        assert!(head("http://a/x", &["b"], Version::HTTP_11).is_ok(), "absolute-form");
    }

    #[test]
    fn regression_a_target_without_a_leading_slash_is_refused() {
        assert!(head("hello", &["a"], Version::HTTP_11).is_err());
        assert!(head("a:80", &["a"], Version::HTTP_11).is_err());
        assert!(head("*", &["a"], Version::HTTP_11).is_err(), "`*` only for OPTIONS");
        let uri: Uri = "*".parse().expect("uri");
        assert!(check_head(
            &Method::OPTIONS,
            &uri,
            Version::HTTP_11,
            &HeaderMap::from_iter([(http::header::HOST, http::HeaderValue::from_static("a"))])
        )
        .is_ok());
    }
}
