//! Response compression in Rust: `Accept-Encoding` negotiation (br, zstd, gzip, deflate), whole
//! bodies over a threshold, and streams compressed with a sync flush per frame so no event is ever
//! held back.

use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, StatusCode};
use std::io::Write;

/// A content coding Catzilla can produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// `br` (brotli).
    Brotli,
    /// `zstd` (RFC 8878; a 64 KiB window, well under the 8 MiB browsers accept).
    Zstd,
    /// `gzip`.
    Gzip,
    /// `deflate`: the zlib format (RFC 1950), which is what HTTP's `deflate` coding means.
    Deflate,
}

impl Encoding {
    /// The token used in `Accept-Encoding` and `Content-Encoding`.
    pub fn token(self) -> &'static str {
        match self {
            Encoding::Brotli => "br",
            Encoding::Zstd => "zstd",
            Encoding::Gzip => "gzip",
            Encoding::Deflate => "deflate",
        }
    }

    /// The coding named by `token` (case-insensitive), if Catzilla can produce it.
    pub fn from_token(token: &str) -> Option<Self> {
        [Encoding::Brotli, Encoding::Zstd, Encoding::Gzip, Encoding::Deflate]
            .into_iter()
            .find(|e| e.token().eq_ignore_ascii_case(token))
    }
}

/// Compression settings of a server.
#[derive(Debug, Clone)]
pub struct CompressionConfig {
    /// Whole bodies smaller than this are sent as they are (streams are always compressed).
    pub threshold: usize,
    /// Codings in order of preference; the first one the client accepts is used.
    pub encodings: Vec<Encoding>,
    /// Quality: gzip/deflate level 0–9 (default 6), brotli quality 0–11 (default 4), zstd level
    /// 1–19 (default 3). `None`: defaults.
    pub level: Option<u32>,
}

impl Default for CompressionConfig {
    fn default() -> Self {
        Self {
            threshold: 1024,
            encodings: vec![Encoding::Brotli, Encoding::Zstd, Encoding::Gzip, Encoding::Deflate],
            level: None,
        }
    }
}

/// Picks the coding for a request: the one the client gives the highest q-value among those the
/// server offers (`*` covers codings not named, q=0 refuses), ties going to the server's order.
pub fn negotiate(accept: Option<&HeaderValue>, config: &CompressionConfig) -> Option<Encoding> {
    let accept = accept?.to_str().ok()?;
    // (token, q in thousandths); a malformed q-value counts as 0, so it is never chosen, and of
    // repeated q parameters the lowest counts (a refusal is never overridden).
    let mut named: Vec<(&str, u16)> = Vec::new();
    for item in accept.split(',') {
        let mut parts = item.split(';');
        let token = parts.next().unwrap_or("").trim();
        let mut q = 1000;
        for p in parts {
            let p = p.trim();
            if let Some(v) = p.strip_prefix("q=").or_else(|| p.strip_prefix("Q=")) {
                q = q.min(qvalue(v.trim()).unwrap_or(0));
            }
        }
        if !token.is_empty() {
            named.push((token, q));
        }
    }
    let star = named.iter().find(|(t, _)| *t == "*").map(|(_, q)| *q);
    let mut best: Option<(Encoding, u16)> = None;
    for &e in &config.encodings {
        let q = match named.iter().find(|(t, _)| t.eq_ignore_ascii_case(e.token())) {
            Some((_, q)) => *q,
            None => star.unwrap_or(0),
        };
        if q > 0 && best.is_none_or(|(_, b)| q > b) {
            best = Some((e, q));
        }
    }
    best.map(|(e, _)| e)
}

/// An RFC 9110 §12.4.2 qvalue (`0`–`1` with up to three decimals) in thousandths.
fn qvalue(v: &str) -> Option<u16> {
    let (int, frac) = v.split_once('.').unwrap_or((v, ""));
    if frac.len() > 3 || !frac.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let frac: u16 = format!("{frac:0<3}").parse().ok()?;
    match int {
        "0" => Some(frac),
        "1" if frac == 0 => Some(1000),
        _ => None,
    }
}

/// Media types worth compressing (text, JSON, JS, XML, SVG, NDJSON, SSE).
pub fn compressible(content_type: Option<&HeaderValue>) -> bool {
    let Some(ct) = content_type.and_then(|v| v.to_str().ok()) else { return false };
    let ct = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    ct.starts_with("text/")
        || ct == "application/json"
        || ct.ends_with("+json")
        || ct == "application/javascript"
        || ct == "application/x-ndjson"
        || ct == "application/xml"
        || ct.ends_with("+xml")
        || ct == "application/wasm"
}

/// `true` when a response may be compressed at all: it has a body, no coding yet, no range,
/// no validator of its own (a compressed variant would need its own ETag) and a compressible type.
pub(crate) fn eligible(status: StatusCode, headers: &HeaderMap) -> bool {
    !(status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
        || status == StatusCode::PARTIAL_CONTENT
        || headers.contains_key(header::CONTENT_ENCODING)
        || headers.contains_key(header::CONTENT_RANGE)
        || headers.contains_key(header::ETAG))
        && compressible(headers.get(header::CONTENT_TYPE))
}

/// Adds `Accept-Encoding` to `Vary` (responses that could be compressed differ by it).
pub(crate) fn add_vary(headers: &mut HeaderMap) {
    let present = headers.get_all(header::VARY).iter().any(|v| {
        v.to_str().is_ok_and(|v| {
            v.split(',').any(|t| t.trim() == "*" || t.trim().eq_ignore_ascii_case("accept-encoding"))
        })
    });
    if !present {
        headers.append(header::VARY, HeaderValue::from_static("accept-encoding"));
    }
}

/// A streaming compressor: every `write` returns what can be sent now (sync-flushed).
pub struct Encoder {
    inner: Inner,
}

enum Inner {
    Gzip(flate2::write::GzEncoder<Vec<u8>>),
    Deflate(flate2::write::ZlibEncoder<Vec<u8>>),
    Brotli(Box<brotli::CompressorWriter<Vec<u8>>>),
    Zstd(Box<zstd::stream::write::Encoder<'static, Vec<u8>>>),
    Done,
}

impl Encoder {
    /// A compressor for `encoding` at `level` (see [`CompressionConfig::level`]). Fails only when
    /// zstd cannot allocate its context; the response then goes out uncompressed.
    pub fn new(encoding: Encoding, level: Option<u32>) -> std::io::Result<Self> {
        let flate_level = || flate2::Compression::new(level.unwrap_or(6).min(9));
        let inner = match encoding {
            Encoding::Gzip => Inner::Gzip(flate2::write::GzEncoder::new(Vec::new(), flate_level())),
            Encoding::Deflate => Inner::Deflate(flate2::write::ZlibEncoder::new(Vec::new(), flate_level())),
            Encoding::Zstd => Inner::Zstd(Box::new(zstd_encoder(level)?)),
            // A 64 KiB window (lgwin 16) keeps the per-stream state small; 4 KiB input buffer.
            Encoding::Brotli => Inner::Brotli(Box::new(brotli::CompressorWriter::new(
                Vec::new(),
                4096,
                level.unwrap_or(4).min(11),
                16,
            ))),
        };
        Ok(Self { inner })
    }

    /// Compresses `data` and flushes, so the output decodes to everything written so far.
    pub fn write(&mut self, data: &[u8]) -> std::io::Result<Bytes> {
        self.write_parts([data])
    }

    /// Compresses `parts` in order and flushes once after the last (one frame's segments).
    pub fn write_parts<'a>(&mut self, parts: impl IntoIterator<Item = &'a [u8]>) -> std::io::Result<Bytes> {
        /// Writes every part, flushes, and takes what the encoder produced.
        fn all<'a, W: Write>(
            e: &mut W,
            parts: impl IntoIterator<Item = &'a [u8]>,
            out: impl FnOnce(&mut W) -> &mut Vec<u8>,
        ) -> std::io::Result<Bytes> {
            for p in parts {
                e.write_all(p)?;
            }
            e.flush()?;
            Ok(Bytes::from(std::mem::take(out(e))))
        }
        match &mut self.inner {
            Inner::Gzip(e) => all(e, parts, |e| e.get_mut()),
            Inner::Deflate(e) => all(e, parts, |e| e.get_mut()),
            Inner::Brotli(e) => all(e, parts, |e| e.get_mut()),
            Inner::Zstd(e) => all(e, parts, |e| e.get_mut()),
            Inner::Done => Ok(Bytes::new()),
        }
    }

    /// Ends the stream and returns the trailer.
    pub fn finish(&mut self) -> std::io::Result<Bytes> {
        match std::mem::replace(&mut self.inner, Inner::Done) {
            Inner::Gzip(e) => Ok(Bytes::from(e.finish()?)),
            Inner::Deflate(e) => Ok(Bytes::from(e.finish()?)),
            Inner::Brotli(e) => Ok(Bytes::from(e.into_inner())),
            Inner::Zstd(e) => Ok(Bytes::from(e.finish()?)),
            Inner::Done => Ok(Bytes::new()),
        }
    }
}

/// A zstd stream encoder with a 64 KiB window (like brotli's here) and match tables sized for
/// it, so a stream's state stays small (level 3's own tables alone would be ~770 KiB per stream)
/// and any decoder accepts it.
fn zstd_encoder(level: Option<u32>) -> std::io::Result<zstd::stream::write::Encoder<'static, Vec<u8>>> {
    use zstd::zstd_safe::CParameter;
    let level = level.map_or(3, |l| l.clamp(1, 19) as i32);
    let mut e = zstd::stream::write::Encoder::new(Vec::new(), level)?;
    e.window_log(16)?;
    e.set_parameter(CParameter::HashLog(15))?;
    e.set_parameter(CParameter::ChainLog(15))?;
    Ok(e)
}

/// Compresses a whole body in one go.
pub fn compress_all(encoding: Encoding, level: Option<u32>, data: &[u8]) -> std::io::Result<Bytes> {
    let mut e = Encoder::new(encoding, level)?;
    let mut out = e.write(data)?.to_vec();
    out.extend_from_slice(&e.finish()?);
    Ok(Bytes::from(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn hv(s: &'static str) -> HeaderValue {
        HeaderValue::from_static(s)
    }

    #[test]
    fn negotiation_prefers_the_server_order_and_respects_q_zero() {
        let c = CompressionConfig::default();
        assert_eq!(negotiate(Some(&hv("gzip, deflate, br")), &c), Some(Encoding::Brotli));
        assert_eq!(negotiate(Some(&hv("gzip, deflate, br, zstd")), &c), Some(Encoding::Brotli));
        assert_eq!(negotiate(Some(&hv("gzip")), &c), Some(Encoding::Gzip));
        assert_eq!(negotiate(Some(&hv("deflate")), &c), Some(Encoding::Deflate));
        assert_eq!(negotiate(Some(&hv("ZSTD")), &c), Some(Encoding::Zstd));
        assert_eq!(negotiate(Some(&hv("br;q=0, gzip;q=0.5")), &c), Some(Encoding::Gzip));
        assert_eq!(negotiate(Some(&hv("*")), &c), Some(Encoding::Brotli));
        assert_eq!(negotiate(Some(&hv("*;q=0")), &c), None);
        assert_eq!(negotiate(Some(&hv("identity")), &c), None);
        assert_eq!(negotiate(None, &c), None);
    }

    #[test]
    fn the_client_q_values_decide_before_the_server_order() {
        let c = CompressionConfig::default();
        assert_eq!(negotiate(Some(&hv("br;q=0.5, gzip;q=0.9")), &c), Some(Encoding::Gzip));
        assert_eq!(negotiate(Some(&hv("deflate;q=1, br;q=0.999")), &c), Some(Encoding::Deflate));
        assert_eq!(negotiate(Some(&hv("gzip;q=0.2, *;q=0.8")), &c), Some(Encoding::Brotli));
        assert_eq!(negotiate(Some(&hv("br;q=0, *;q=0.1")), &c), Some(Encoding::Zstd));
        // Malformed q-values refuse the coding rather than guess.
        assert_eq!(
            negotiate(Some(&hv("br;q=2, gzip;q=0.1234, zstd;q=x, deflate;q=0.3")), &c),
            Some(Encoding::Deflate)
        );
    }

    #[test]
    fn every_flushed_write_decodes_on_its_own() {
        for enc in [Encoding::Gzip, Encoding::Brotli, Encoding::Zstd, Encoding::Deflate] {
            let mut e = Encoder::new(enc, None).expect("encoder");
            let mut wire = e.write(b"data: first\n\n").expect("write").to_vec();
            // What was sent so far must decode to the first event, before any more input.
            let partial = decode(enc, &wire, true);
            assert_eq!(partial, b"data: first\n\n", "{enc:?}");
            wire.extend_from_slice(&e.write(b"data: second\n\n").expect("write"));
            wire.extend_from_slice(&e.finish().expect("finish"));
            assert_eq!(decode(enc, &wire, false), b"data: first\n\ndata: second\n\n", "{enc:?}");
        }
    }

    /// Decodes `wire`; `partial` tolerates a stream that has not ended yet.
    fn decode(enc: Encoding, wire: &[u8], partial: bool) -> Vec<u8> {
        let mut out = Vec::new();
        let r = match enc {
            Encoding::Gzip => flate2::read::GzDecoder::new(wire).read_to_end(&mut out),
            Encoding::Brotli => brotli::Decompressor::new(wire, 4096).read_to_end(&mut out),
            Encoding::Deflate => flate2::read::ZlibDecoder::new(wire).read_to_end(&mut out),
            Encoding::Zstd => match zstd::stream::read::Decoder::new(wire) {
                Ok(mut d) => d.read_to_end(&mut out),
                Err(e) => Err(e),
            },
        };
        if !partial {
            r.expect("complete stream");
        }
        out
    }

    #[test]
    fn only_bodies_without_coding_range_or_validator_are_eligible() {
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_TYPE, hv("application/json"));
        assert!(eligible(StatusCode::OK, &h));
        assert!(!eligible(StatusCode::NO_CONTENT, &h));
        assert!(!eligible(StatusCode::PARTIAL_CONTENT, &h));
        h.insert(header::ETAG, hv("\"x\""));
        assert!(!eligible(StatusCode::OK, &h));
        let mut img = HeaderMap::new();
        img.insert(header::CONTENT_TYPE, hv("image/png"));
        assert!(!eligible(StatusCode::OK, &img));
    }
}
