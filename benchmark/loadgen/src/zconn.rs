//! A WebSocket client with permessage-deflate (tungstenite refuses frames with RSV1 set): its own handshake and framing, catzilla-core's deflate and inflate.

use std::hash::{BuildHasher, RandomState};
use std::ops::Range;

use catzilla_core::ws::deflate::{deflate_alone, negotiate, DeflateConfig, Inflater};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::handshake::{client::generate_key, derive_accept_key};

use crate::http::find;

/// The offer: every message compressed alone in both directions, so every server does the same work.
const OFFER: &str = "permessage-deflate; client_no_context_takeover; server_no_context_takeover";
/// zlib level of what the client compresses (the servers' default too).
pub const LEVEL: u32 = 6;
/// Messages at least this long must arrive compressed: no peer's threshold is higher, so an
/// uncompressed one means the server is not compressing, and the run would measure plain traffic.
pub const MUST_COMPRESS: usize = 1024;
/// Largest message accepted.
const MAX_MESSAGE: usize = 1 << 24;

/// A connected client that agreed on permessage-deflate.
pub struct ZConn {
    tcp: TcpStream,
    /// Bytes read; `buf[pos..]` is not parsed yet.
    buf: Vec<u8>,
    pos: usize,
    inflater: Inflater,
    /// xorshift64 state for mask keys (they only need to vary, not be secret, in a load client).
    mask: u64,
}

/// One frame's header, with its payload's place in `ZConn::buf`.
struct Frame {
    fin: bool,
    rsv1: bool,
    opcode: u8,
    payload: Range<usize>,
}

/// Checks a handshake response head (status 101, the accept key) and returns its
/// `Sec-WebSocket-Extensions` value ("" when absent).
fn check_response(head: &str, accept: &str) -> Result<String, String> {
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap_or_default();
    if status.split_whitespace().nth(1) != Some("101") {
        return Err(format!("handshake refused: {status}"));
    }
    let (mut accepted, mut extensions) = (false, Vec::new());
    for (name, value) in lines.filter_map(|l| l.split_once(':')) {
        let (name, value) = (name.trim(), value.trim());
        if name.eq_ignore_ascii_case("sec-websocket-accept") {
            accepted = value == accept;
        } else if name.eq_ignore_ascii_case("sec-websocket-extensions") {
            extensions.push(value);
        }
    }
    if !accepted {
        return Err("handshake: wrong or missing Sec-WebSocket-Accept".into());
    }
    Ok(extensions.join(", "))
}

impl ZConn {
    /// Connects to `path`, offering permessage-deflate; fails unless the server accepts it
    /// without context takeover.
    pub async fn connect(port: u16, path: &str) -> Result<ZConn, String> {
        let mut tcp = TcpStream::connect(("127.0.0.1", port)).await.map_err(|e| format!("connect: {e}"))?;
        tcp.set_nodelay(true).map_err(|e| format!("nodelay: {e}"))?;
        let key = generate_key();
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
             Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Extensions: {OFFER}\r\n\r\n"
        );
        tcp.write_all(request.as_bytes()).await.map_err(|e| format!("send: {e}"))?;
        let mut buf = Vec::with_capacity(16 * 1024);
        let end = loop {
            if let Some(end) = find(&buf, b"\r\n\r\n") {
                break end;
            }
            if buf.len() >= 16 * 1024 {
                return Err("handshake response head too large".into());
            }
            if tcp.read_buf(&mut buf).await.map_err(|e| format!("read: {e}"))? == 0 {
                return Err("closed during the handshake".into());
            }
        };
        let extensions =
            check_response(&String::from_utf8_lossy(&buf[..end]), &derive_accept_key(key.as_bytes()))?;
        // The answer has an offer's grammar: `negotiate` parses it. With context takeover allowed,
        // `server_no_context` is then exactly what the server answered.
        let config = DeflateConfig { context_takeover: true, ..DeflateConfig::default() };
        let agreed = negotiate(std::iter::once(extensions.as_str()), &config)
            .filter(|a| a.server_no_context)
            .ok_or_else(|| {
                format!(
                    "{path}: the server did not accept {OFFER:?} (Sec-WebSocket-Extensions: {extensions:?})"
                )
            })?;
        let mask = RandomState::new().hash_one(port) | 1;
        Ok(ZConn { tcp, buf, pos: end + 4, inflater: Inflater::new(&agreed), mask })
    }

    /// Makes `n` unparsed bytes available in `buf`.
    async fn fill(&mut self, n: usize) -> Result<(), String> {
        while self.buf.len() - self.pos < n {
            self.buf.drain(..self.pos);
            self.pos = 0;
            self.buf.reserve(n.max(16 * 1024));
            if self.tcp.read_buf(&mut self.buf).await.map_err(|e| format!("read: {e}"))? == 0 {
                return Err("closed by the server".into());
            }
        }
        Ok(())
    }

    /// Reads the next frame; its payload stays in `buf` until the next read.
    async fn frame(&mut self) -> Result<Frame, String> {
        self.fill(2).await?;
        let (b0, b1) = (self.buf[self.pos], self.buf[self.pos + 1]);
        if b1 & 0x80 != 0 || b0 & 0x30 != 0 {
            return Err(format!("bad frame header {b0:#04x} {b1:#04x} (masked, or RSV2/RSV3 set)"));
        }
        let (head, len) = match b1 & 0x7f {
            126 => {
                self.fill(4).await?;
                (4, u64::from(u16::from_be_bytes([self.buf[self.pos + 2], self.buf[self.pos + 3]])))
            }
            127 => {
                self.fill(10).await?;
                let mut n = [0u8; 8];
                n.copy_from_slice(&self.buf[self.pos + 2..self.pos + 10]);
                (10, u64::from_be_bytes(n))
            }
            n => (2, u64::from(n)),
        };
        let len = usize::try_from(len).ok().filter(|&l| l <= MAX_MESSAGE).ok_or("frame too large")?;
        self.fill(head + len).await?;
        let start = self.pos + head;
        self.pos = start + len;
        Ok(Frame {
            fin: b0 & 0x80 != 0,
            rsv1: b0 & 0x40 != 0,
            opcode: b0 & 0x0f,
            payload: start..start + len,
        })
    }

    /// The next text message, inflated when it came compressed; pings are answered.
    pub async fn recv(&mut self) -> Result<Vec<u8>, String> {
        let mut msg = Vec::new();
        // Opcode and RSV1 of the message's first frame.
        let mut first: Option<(u8, bool)> = None;
        loop {
            let f = self.frame().await?;
            match f.opcode {
                0x8 => {
                    let p = &self.buf[f.payload];
                    let code = p.get(..2).map_or(1005, |c| u16::from_be_bytes([c[0], c[1]]));
                    return Err(format!(
                        "closed by the server ({code} {})",
                        String::from_utf8_lossy(&p[2.min(p.len())..])
                    ));
                }
                0x9 => {
                    let p = self.buf[f.payload].to_vec();
                    self.send_frame(0xA, false, &p).await?;
                }
                0xA => {}
                0x0..=0x2 => {
                    let (opcode, compressed) = match (first, f.opcode) {
                        (None, 1 | 2) => *first.insert((f.opcode, f.rsv1)),
                        (Some(m), 0) if !f.rsv1 => m,
                        _ => return Err(format!("unexpected frame: opcode {} RSV1 {}", f.opcode, f.rsv1)),
                    };
                    if compressed {
                        self.inflater
                            .inflate(&self.buf[f.payload], f.fin, &mut msg, MAX_MESSAGE)
                            .map_err(|e| format!("inflate: {e:?}"))?;
                    } else {
                        msg.extend_from_slice(&self.buf[f.payload]);
                    }
                    if !f.fin {
                        continue;
                    }
                    if opcode == 2 {
                        return Err("unexpected binary message".into());
                    }
                    if !compressed && msg.len() >= MUST_COMPRESS {
                        return Err(format!("the server sent a {}-byte message uncompressed", msg.len()));
                    }
                    return Ok(msg);
                }
                other => return Err(format!("unknown opcode {other}")),
            }
        }
    }

    /// Sends `deflated` (a message compressed alone) as one text frame with RSV1 set.
    pub async fn send_deflated(&mut self, deflated: &[u8]) -> Result<(), String> {
        self.send_frame(0x1, true, deflated).await
    }

    /// Compresses `text` and sends it.
    pub async fn send_text(&mut self, text: &str) -> Result<(), String> {
        self.send_deflated(&deflate_alone(text.as_bytes(), LEVEL, 15)).await
    }

    /// Writes one masked frame.
    async fn send_frame(&mut self, opcode: u8, rsv1: bool, payload: &[u8]) -> Result<(), String> {
        let n = payload.len();
        let mut f = Vec::with_capacity(n + 14);
        f.push(0x80 | if rsv1 { 0x40 } else { 0 } | opcode);
        if n < 126 {
            f.push(0x80 | n as u8);
        } else if let Ok(short) = u16::try_from(n) {
            f.push(0x80 | 126);
            f.extend_from_slice(&short.to_be_bytes());
        } else {
            f.push(0x80 | 127);
            f.extend_from_slice(&(n as u64).to_be_bytes());
        }
        self.mask ^= self.mask << 13;
        self.mask ^= self.mask >> 7;
        self.mask ^= self.mask << 17;
        let key = (self.mask as u32).to_be_bytes();
        f.extend_from_slice(&key);
        f.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i & 3]));
        self.tcp.write_all(&f).await.map_err(|e| format!("send: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_handshake_response_is_checked() {
        let head = "HTTP/1.1 101 Switching Protocols\r\nsec-websocket-accept: abc\r\n\
                    Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover";
        assert_eq!(check_response(head, "abc").unwrap(), "permessage-deflate; server_no_context_takeover");
        assert!(check_response(head, "abd").is_err());
        assert!(check_response("HTTP/1.1 404 Not Found", "abc").is_err());
        assert_eq!(check_response("HTTP/1.1 101 OK\r\nSec-WebSocket-Accept: abc", "abc").unwrap(), "");
    }
}
