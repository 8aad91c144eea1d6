//! permessage-deflate (RFC 7692): the route's settings, the answer to a client's offers, and the
//! per-message compressor and decompressor (flate2 over zlib-rs, raw deflate).

use bytes::Bytes;
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};
use parking_lot::Mutex;

/// What a WebSocket route allows for permessage-deflate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeflateConfig {
    /// Keep the LZ77 window between messages in both directions (better ratio on similar
    /// messages, ~300 KiB per socket for its own compressor and decompressor). Off by default:
    /// every message is compressed alone, so a socket keeps no compression state, compressors are
    /// pooled, and a topic message is compressed once for all its subscribers.
    pub context_takeover: bool,
    /// Messages shorter than this are sent uncompressed (compressing a few bytes costs CPU and
    /// saves nothing).
    pub threshold: usize,
    /// zlib level 1 (fastest) to 9 (smallest).
    pub level: u32,
    /// Largest LZ77 window (2^bits bytes, 9–15) this server compresses with when it keeps context.
    pub server_max_window_bits: u8,
    /// Window asked of clients that support `client_max_window_bits` when context is kept.
    pub client_max_window_bits: u8,
}

impl Default for DeflateConfig {
    fn default() -> Self {
        Self {
            context_takeover: false,
            threshold: 1024,
            level: 6,
            server_max_window_bits: 15,
            client_max_window_bits: 15,
        }
    }
}

/// The parameters agreed with one client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Agreed {
    /// The server resets its compressor after every message.
    pub server_no_context: bool,
    /// The client resets its compressor after every message, so ours is reset too.
    pub client_no_context: bool,
    /// Window the server compresses with; 8 means it never compresses (zlib's raw deflate cannot
    /// make a 256-byte window), which the extension allows message by message.
    pub server_window_bits: u8,
    /// The `Sec-WebSocket-Extensions` response value.
    pub header: String,
    /// Messages shorter than this go uncompressed.
    pub threshold: usize,
    /// zlib level.
    pub level: u32,
}

impl Agreed {
    /// `true` when messages to this client may be compressed by a shared, stateless compressor
    /// (so one compressed payload serves every such subscriber of a topic).
    pub fn shares_payloads(&self) -> bool {
        self.server_no_context && self.server_window_bits == 15
    }
}

/// One `permessage-deflate` offer's parameters, or `None` when it is malformed (unknown or
/// repeated parameter, bad value), which declines that offer.
#[derive(Default)]
struct Offer {
    server_no_context: bool,
    client_no_context: bool,
    server_max_window_bits: Option<u8>,
    /// `Some(None)`: offered without a value.
    client_max_window_bits: Option<Option<u8>>,
}

fn window_bits(v: Option<&str>) -> Option<u8> {
    let v = v?.trim_matches('"');
    // RFC 7692 §7.1.2: 1*DIGIT without leading zeros, 8–15.
    if v.is_empty() || v.starts_with('0') || !v.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    v.parse::<u8>().ok().filter(|b| (8..=15).contains(b))
}

fn parse_offer<'a>(params: impl Iterator<Item = &'a str>) -> Option<Offer> {
    let mut o = Offer::default();
    for p in params {
        let (name, value) = match p.split_once('=') {
            Some((n, v)) => (n.trim(), Some(v.trim())),
            None => (p.trim(), None),
        };
        match name.to_ascii_lowercase().as_str() {
            "server_no_context_takeover" if value.is_none() && !o.server_no_context => {
                o.server_no_context = true
            }
            "client_no_context_takeover" if value.is_none() && !o.client_no_context => {
                o.client_no_context = true
            }
            "server_max_window_bits" if o.server_max_window_bits.is_none() => {
                o.server_max_window_bits = Some(window_bits(value)?);
            }
            "client_max_window_bits" if o.client_max_window_bits.is_none() => {
                o.client_max_window_bits = Some(match value {
                    None => None,
                    v => Some(window_bits(v)?),
                });
            }
            _ => return None,
        }
    }
    Some(o)
}

/// Answers the client's `Sec-WebSocket-Extensions` offers: the first acceptable
/// `permessage-deflate` offer wins (RFC 7692 §5); `None` when there is none.
pub fn negotiate<'a>(offers: impl Iterator<Item = &'a str>, config: &DeflateConfig) -> Option<Agreed> {
    for header in offers {
        for ext in header.split(',') {
            let mut parts = ext.split(';').map(str::trim);
            if !parts.next().is_some_and(|n| n.eq_ignore_ascii_case("permessage-deflate")) {
                continue;
            }
            let Some(offer) = parse_offer(parts.filter(|p| !p.is_empty())) else { continue };
            return Some(agree(&offer, config));
        }
    }
    None
}

fn agree(offer: &Offer, config: &DeflateConfig) -> Agreed {
    let mut header = String::from("permessage-deflate");
    let server_no_context = offer.server_no_context || !config.context_takeover;
    if server_no_context {
        header.push_str("; server_no_context_takeover");
    }
    // Without context takeover we ask the client not to keep it either (RFC 7692 §7.1.1.2 lets
    // the server add this to any accepted offer): our decompressor is then pooled, not per socket.
    let client_no_context = !config.context_takeover || offer.client_no_context;
    if client_no_context {
        header.push_str("; client_no_context_takeover");
    }
    // Without context the window only spans one message: 15 costs nothing per socket.
    let ours = if server_no_context { 15 } else { config.server_max_window_bits.clamp(9, 15) };
    let server_window_bits = offer.server_max_window_bits.map_or(ours, |asked| asked.min(ours));
    if server_window_bits < 15 {
        header.push_str(&format!("; server_max_window_bits={server_window_bits}"));
    }
    if let Some(asked) = offer.client_max_window_bits {
        let bits = asked.unwrap_or(15).min(config.client_max_window_bits.clamp(8, 15));
        if bits < 15 && !client_no_context {
            header.push_str(&format!("; client_max_window_bits={bits}"));
        }
    }
    Agreed {
        server_no_context,
        client_no_context,
        server_window_bits,
        header,
        threshold: config.threshold,
        level: config.level.clamp(1, 9),
    }
}

/// The trailer a sync flush ends with, removed from every compressed message (RFC 7692 §7.2.1).
const TAIL: [u8; 4] = [0, 0, 0xff, 0xff];

/// Compressors for messages compressed alone (no context takeover), shared by every socket, with
/// their level and window bits.
static COMPRESSORS: Mutex<Vec<(u32, u8, Compress)>> = Mutex::new(Vec::new());
/// Decompressors for messages compressed alone, shared by every socket.
static DECOMPRESSORS: Mutex<Vec<Decompress>> = Mutex::new(Vec::new());
/// Pooled (de)compressors kept for reuse; more are dropped after use.
const POOL: usize = 16;

/// Compresses one message: the deflate stream flushed with `Z_SYNC_FLUSH`, minus its tail.
fn deflate_into(c: &mut Compress, input: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(input.len() / 2 + 64);
    let start_in = c.total_in();
    loop {
        let done = (c.total_in() - start_in) as usize;
        if out.capacity() - out.len() < 64 {
            out.reserve(out.capacity().max(1024));
        }
        // A compressor only fails on a corrupted state, which `compress` cannot reach here.
        let _ = c.compress_vec(&input[done..], &mut out, FlushCompress::Sync);
        let finished = (c.total_in() - start_in) as usize == input.len();
        // A sync flush is complete when it left spare room (more output would have been written).
        if finished && out.len() < out.capacity() {
            break;
        }
    }
    if out.ends_with(&TAIL) {
        out.truncate(out.len() - TAIL.len());
    }
    Bytes::from(out)
}

/// Compresses a message alone (no context takeover) with a pooled compressor of this level and
/// window (9–15 bits).
pub fn deflate_alone(input: &[u8], level: u32, bits: u8) -> Bytes {
    let pooled = {
        let mut pool = COMPRESSORS.lock();
        pool.iter().position(|(l, b, _)| (*l, *b) == (level, bits)).map(|i| pool.swap_remove(i).2)
    };
    let mut c =
        pooled.unwrap_or_else(|| Compress::new_with_window_bits(Compression::new(level), false, bits));
    let out = deflate_into(&mut c, input);
    c.reset();
    let mut pool = COMPRESSORS.lock();
    if pool.len() < POOL {
        pool.push((level, bits, c));
    }
    out
}

/// The sending half of one socket's agreement.
pub struct Deflater {
    agreed: Agreed,
    /// The socket's own compressor, kept between messages (context takeover only).
    own: Option<Compress>,
}

impl Deflater {
    /// A deflater for this agreement; it allocates nothing until a message is compressed.
    pub fn new(agreed: Agreed) -> Self {
        Self { agreed, own: None }
    }

    /// `true` when a payload compressed alone at `level` with a 15-bit window may be sent as is.
    pub fn shares(&self, level: u32) -> bool {
        self.agreed.shares_payloads() && self.agreed.level == level
    }

    /// The compressed payload of `input`, or `None` when it goes uncompressed (under the
    /// threshold, or a window zlib cannot honour).
    pub fn compress(&mut self, input: &[u8]) -> Option<Bytes> {
        let a = &self.agreed;
        if input.len() < a.threshold || a.server_window_bits < 9 {
            return None;
        }
        if a.server_no_context {
            // The window still bounds references inside one message (Autobahn 13.3).
            return Some(deflate_alone(input, a.level, a.server_window_bits));
        }
        let (level, bits) = (a.level, a.server_window_bits);
        let c = self
            .own
            .get_or_insert_with(|| Compress::new_with_window_bits(Compression::new(level), false, bits));
        Some(deflate_into(c, input))
    }
}

/// Why a compressed message was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum InflateError {
    /// The data is not a valid deflate stream.
    Corrupt,
    /// It inflates past the message limit.
    TooBig,
}

/// The receiving half of one socket's agreement.
pub struct Inflater {
    /// The client resets its compressor after every message, so a pooled decompressor serves.
    pooled: bool,
    /// The decompressor of the message being read (and, with context takeover, of the next).
    current: Option<Decompress>,
}

impl Inflater {
    /// An inflater for this agreement; it allocates nothing until a message arrives.
    pub fn new(agreed: &Agreed) -> Self {
        Self { pooled: agreed.client_no_context, current: None }
    }

    /// Inflates one frame's payload of a compressed message into `out`; `last` adds the
    /// removed tail and ends the message. `out` may not grow past `limit`.
    pub fn inflate(
        &mut self,
        input: &[u8],
        last: bool,
        out: &mut Vec<u8>,
        limit: usize,
    ) -> Result<(), InflateError> {
        let d = self.current.get_or_insert_with(|| {
            let pooled = if self.pooled { DECOMPRESSORS.lock().pop() } else { None };
            pooled.unwrap_or_else(|| Decompress::new(false))
        });
        let r = feed(d, input, out, limit).and_then(|()| {
            // A message that ended with a BFINAL block left a fresh stream: the tail is not part of it.
            if last && d.total_in() > 0 {
                feed(d, &TAIL, out, limit)
            } else {
                Ok(())
            }
        });
        if r.is_err() || (last && self.pooled) {
            self.release();
        }
        r
    }

    /// Gives the decompressor back to the pool (or drops it).
    fn release(&mut self) {
        if let Some(mut d) = self.current.take() {
            if self.pooled {
                d.reset(false);
                let mut pool = DECOMPRESSORS.lock();
                if pool.len() < POOL {
                    pool.push(d);
                }
            }
        }
    }
}

impl Drop for Inflater {
    fn drop(&mut self) {
        self.release();
    }
}

fn feed(d: &mut Decompress, input: &[u8], out: &mut Vec<u8>, limit: usize) -> Result<(), InflateError> {
    let mut done = 0;
    loop {
        if out.capacity() - out.len() < 256 {
            if out.len() > limit {
                return Err(InflateError::TooBig);
            }
            out.reserve(out.capacity().max(4096).min(limit + 1 - out.len()).max(256));
        }
        let (in_before, out_before) = (d.total_in(), out.len());
        let status = d
            .decompress_vec(&input[done..], out, FlushDecompress::Sync)
            .map_err(|_| InflateError::Corrupt)?;
        done += (d.total_in() - in_before) as usize;
        if out.len() > limit {
            return Err(InflateError::TooBig);
        }
        let room_left = out.len() < out.capacity();
        match status {
            // BFINAL=1 is valid inside a message (bun PR #33592): what follows starts a new stream.
            Status::StreamEnd => d.reset(false),
            Status::Ok | Status::BufError if done == input.len() && room_left => return Ok(()),
            Status::Ok | Status::BufError => {
                if d.total_in() == in_before && out.len() == out_before && room_left {
                    return Err(InflateError::Corrupt);
                }
            }
        }
        if done == input.len() && room_left {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offer(s: &str) -> Option<Agreed> {
        negotiate(std::iter::once(s), &DeflateConfig::default())
    }

    #[test]
    fn the_first_valid_offer_is_accepted_and_context_is_never_kept_by_default() {
        let a = offer("x-foo, permessage-deflate; server_max_window_bits=20, permessage-deflate; client_max_window_bits")
            .expect("second offer");
        assert_eq!(a.header, "permessage-deflate; server_no_context_takeover; client_no_context_takeover");
        assert!(a.shares_payloads());
        assert!(offer("permessage-deflate; foo").is_none());
        assert!(offer("permessage-deflate; server_no_context_takeover; server_no_context_takeover").is_none());
        assert!(offer("permessage-deflate; client_max_window_bits=08").is_none());
    }

    #[test]
    fn a_small_server_window_is_honoured_and_8_means_sending_uncompressed() {
        let a = offer("permessage-deflate; server_max_window_bits=8").expect("accepted");
        assert_eq!(a.server_window_bits, 8);
        assert!(a.header.contains("server_max_window_bits=8"));
        assert!(Deflater::new(a).compress(&[b'a'; 4096]).is_none());
        let config =
            DeflateConfig { context_takeover: true, client_max_window_bits: 10, ..DeflateConfig::default() };
        let a = negotiate(
            std::iter::once("permessage-deflate; client_max_window_bits; server_max_window_bits=10"),
            &config,
        )
        .expect("accepted");
        assert_eq!(a.header, "permessage-deflate; server_max_window_bits=10; client_max_window_bits=10");
        assert!(!a.shares_payloads());
    }

    fn roundtrip(config: DeflateConfig, messages: &[Vec<u8>]) {
        let a = negotiate(std::iter::once("permessage-deflate"), &config).expect("accepted");
        let (mut d, mut i) = (Deflater::new(a.clone()), Inflater::new(&a));
        for m in messages {
            let z = d.compress(m).expect("compressed");
            assert!(!z.ends_with(&TAIL));
            let mut out = Vec::new();
            // Split across two frames, as a fragmented message is.
            let half = z.len() / 2;
            i.inflate(&z[..half], false, &mut out, 1 << 20).expect("first frame");
            i.inflate(&z[half..], true, &mut out, 1 << 20).expect("last frame");
            assert_eq!(&out, m);
        }
    }

    #[test]
    fn messages_round_trip_with_and_without_context_takeover() {
        let messages: Vec<Vec<u8>> = (0..20)
            .map(|i| format!("{{\"n\":{i},\"text\":\"{}\"}}", "hello ".repeat(300 + i)).into_bytes())
            .collect();
        roundtrip(DeflateConfig::default(), &messages);
        roundtrip(
            DeflateConfig { context_takeover: true, server_max_window_bits: 9, ..DeflateConfig::default() },
            &messages,
        );
    }

    #[test]
    fn regression_autobahn_13_3_8_a_small_window_bounds_messages_compressed_alone() {
        let a = offer("permessage-deflate; server_max_window_bits=9").expect("accepted");
        assert!(a.server_no_context && a.server_window_bits == 9 && !a.shares_payloads());
        // Repeats 600 bytes apart: a 15-bit window would reference back past 512 bytes.
        let chunk: Vec<u8> = (0..600u32).map(|i| (i * 7 % 251) as u8).collect();
        let input = chunk.repeat(50);
        let z = Deflater::new(a).compress(&input).expect("compressed");
        let mut d = Decompress::new_with_window_bits(false, 9);
        let mut out = Vec::with_capacity(input.len() + 1024);
        let framed = [&z[..], &TAIL].concat();
        d.decompress_vec(&framed, &mut out, FlushDecompress::Sync).expect("a 9-bit window inflates it");
        assert_eq!(out, input);
    }

    #[test]
    fn inflating_past_the_limit_or_garbage_is_refused() {
        let z = deflate_alone(&vec![b'a'; 100_000], 6, 15);
        let mut i = Inflater::new(&offer("permessage-deflate").expect("accepted"));
        assert_eq!(i.inflate(&z, true, &mut Vec::new(), 50_000), Err(InflateError::TooBig));
        assert_eq!(i.inflate(&[0xff, 0xff, 0xff], true, &mut Vec::new(), 50_000), Err(InflateError::Corrupt));
        // Exactly the limit is fine, whatever the buffer's capacity.
        for limit in [100_000, 65_536 + 34_464] {
            let mut out = Vec::with_capacity(limit);
            assert_eq!(i.inflate(&z, true, &mut out, limit), Ok(()));
            assert_eq!(out.len(), 100_000);
        }
    }
}
