//! Decoding what a client sends: frames (headers parsed by tungstenite's `FrameHeader`), unmasking,
//! reassembly of fragmented messages, permessage-deflate, and UTF-8 checked as bytes arrive, so a
//! bad text message fails at its bad bytes rather than when its last frame comes.

pub use bytes::BytesMut;
use bytes::{Buf, Bytes};
use std::io::Cursor;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{CloseCode, Control, Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::FrameHeader;

use super::deflate::{InflateError, Inflater};
use super::{Message, Utf8Bytes};

/// What the decoder produced.
#[derive(Debug, PartialEq)]
pub enum Incoming {
    /// A complete text or binary message.
    Message(Message),
    /// A ping, to be answered with a pong carrying the same payload.
    Ping(Bytes),
    /// A pong (ignored).
    Pong,
    /// A close frame: its code and reason (`None` when it carried no code).
    Close(Option<(u16, String)>),
}

/// A violation of the protocol, answered with a close frame of this code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Violation {
    /// 1002 protocol error, 1007 invalid UTF-8, 1009 too big.
    pub code: u16,
    /// The close reason.
    pub reason: &'static str,
}

const fn protocol(reason: &'static str) -> Violation {
    Violation { code: 1002, reason }
}
const UTF8: Violation = Violation { code: 1007, reason: "invalid UTF-8" };
const TOO_BIG: Violation = Violation { code: 1009, reason: "message too big" };

/// The frame whose payload is being read.
struct Frame {
    fin: bool,
    opcode: OpCode,
    mask: [u8; 4],
    /// Payload bytes not read yet.
    remaining: usize,
    /// Payload bytes read so far (the mask offset).
    read: usize,
}

/// The data message being reassembled.
struct Partial {
    text: bool,
    compressed: bool,
    data: Vec<u8>,
    /// Bytes of `data` known to be valid UTF-8 (an incomplete sequence may follow).
    checked: usize,
}

/// A server-side frame decoder for one connection.
pub struct Decoder {
    max_payload: usize,
    inflater: Option<Inflater>,
    frame: Option<Frame>,
    message: Option<Partial>,
}

/// XORs `buf` with the 4-byte `mask`, `offset` bytes into the frame's payload.
fn unmask(buf: &mut [u8], mask: [u8; 4], offset: usize) {
    let mut m = [0u8; 8];
    for (i, b) in m.iter_mut().enumerate() {
        *b = mask[(offset + i) & 3];
    }
    let wide = u64::from_ne_bytes(m);
    let mut chunks = buf.chunks_exact_mut(8);
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        c.copy_from_slice(&(u64::from_ne_bytes(w) ^ wide).to_ne_bytes());
    }
    for (i, b) in chunks.into_remainder().iter_mut().enumerate() {
        *b ^= m[i & 7];
    }
}

/// Checks the UTF-8 of `data[*checked..]`, leaving an incomplete last sequence for later.
fn check_utf8(data: &[u8], checked: &mut usize, complete: bool) -> Result<(), Violation> {
    match std::str::from_utf8(&data[*checked..]) {
        Ok(_) => {
            *checked = data.len();
            Ok(())
        }
        Err(e) if e.error_len().is_none() && !complete => {
            *checked += e.valid_up_to();
            Ok(())
        }
        Err(_) => Err(UTF8),
    }
}

impl Decoder {
    /// A decoder that refuses messages over `max_payload` bytes and inflates compressed ones
    /// with `inflater` (present when permessage-deflate was agreed).
    pub fn new(max_payload: usize, inflater: Option<Inflater>) -> Self {
        Self { max_payload, inflater, frame: None, message: None }
    }

    /// Decodes the next event from `buf`, consuming what it used; `Ok(None)` wants more bytes.
    pub fn next(&mut self, buf: &mut BytesMut) -> Result<Option<Incoming>, Violation> {
        loop {
            if self.frame.is_none() {
                let mut cursor = Cursor::new(&buf[..]);
                let Some((header, len)) =
                    FrameHeader::parse(&mut cursor).map_err(|_| protocol("reserved opcode"))?
                else {
                    return Ok(None);
                };
                let head = cursor.position() as usize;
                if let Some(event) = self.start(&header, len, head, buf)? {
                    return Ok(Some(event));
                }
                continue;
            }
            let Some(frame) = self.frame.as_mut() else { continue };
            if matches!(frame.opcode, OpCode::Control(_)) {
                // Control payloads are at most 125 bytes: decode them whole.
                if buf.len() < frame.remaining {
                    return Ok(None);
                }
                let mut payload = buf.split_to(frame.remaining);
                unmask(&mut payload, frame.mask, 0);
                let opcode = frame.opcode;
                self.frame = None;
                return control(opcode, payload.freeze()).map(Some);
            }
            if buf.is_empty() && frame.remaining > 0 {
                return Ok(None);
            }
            let take = frame.remaining.min(buf.len());
            let mut chunk = buf.split_to(take);
            unmask(&mut chunk, frame.mask, frame.read);
            frame.read += take;
            frame.remaining -= take;
            let frame_done = frame.remaining == 0;
            let last = frame_done && frame.fin;
            if frame_done {
                self.frame = None;
            }
            if let Some(m) = self.data(&chunk, last)? {
                return Ok(Some(Incoming::Message(m)));
            }
            if !frame_done {
                return Ok(None);
            }
        }
    }

    /// Checks a frame header; a whole single-frame message already in `buf` is returned at once
    /// without a copy.
    fn start(
        &mut self,
        h: &FrameHeader,
        len: u64,
        head: usize,
        buf: &mut BytesMut,
    ) -> Result<Option<Incoming>, Violation> {
        let Some(mask) = h.mask else { return Err(protocol("client frames must be masked")) };
        if h.rsv2 || h.rsv3 {
            return Err(protocol("reserved bits set"));
        }
        // RFC 6455 §5.2: the most significant bit of a 64-bit length must be 0.
        if len >> 63 != 0 {
            return Err(protocol("payload length with the high bit set"));
        }
        let len = usize::try_from(len).map_err(|_| TOO_BIG)?;
        match h.opcode {
            OpCode::Control(_) => {
                if !h.is_final || len > 125 {
                    return Err(protocol("control frames must be whole and at most 125 bytes"));
                }
                if h.rsv1 {
                    return Err(protocol("reserved bits set"));
                }
            }
            OpCode::Data(Data::Continue) => {
                if self.message.is_none() {
                    return Err(protocol("continuation without a message"));
                }
                if h.rsv1 {
                    return Err(protocol("RSV1 on a continuation frame"));
                }
            }
            OpCode::Data(op) => {
                if self.message.is_some() {
                    return Err(protocol("new message inside a fragmented one"));
                }
                if h.rsv1 && self.inflater.is_none() {
                    return Err(protocol("compressed frame without permessage-deflate"));
                }
                let text = matches!(op, Data::Text);
                // A whole, uncompressed, single-frame message: unmask it in place and hand it on.
                if h.is_final && !h.rsv1 && len <= self.max_payload && buf.len() >= head + len {
                    buf.advance(head);
                    let mut payload = buf.split_to(len);
                    unmask(&mut payload, mask, 0);
                    let payload = payload.freeze();
                    let m = if text {
                        Message::Text(Utf8Bytes::try_from(payload).map_err(|_| UTF8)?)
                    } else {
                        Message::Binary(payload)
                    };
                    return Ok(Some(Incoming::Message(m)));
                }
                self.message = Some(Partial { text, compressed: h.rsv1, data: Vec::new(), checked: 0 });
            }
        }
        if matches!(h.opcode, OpCode::Data(_)) {
            // A compressed message is bounded by what it inflates to (checked while inflating).
            let so_far = self.message.as_ref().map_or(0, |m| if m.compressed { 0 } else { m.data.len() });
            if len > self.max_payload.saturating_sub(so_far) {
                return Err(TOO_BIG);
            }
        }
        buf.advance(head);
        self.frame = Some(Frame { fin: h.is_final, opcode: h.opcode, mask, remaining: len, read: 0 });
        Ok(None)
    }

    /// Adds unmasked payload bytes to the message; returns it when `last` completes it.
    fn data(&mut self, chunk: &[u8], last: bool) -> Result<Option<Message>, Violation> {
        let Some(m) = self.message.as_mut() else { return Err(protocol("data outside a message")) };
        if m.compressed {
            let inflater = self.inflater.as_mut().ok_or(protocol("no permessage-deflate"))?;
            inflater.inflate(chunk, last, &mut m.data, self.max_payload).map_err(|e| match e {
                InflateError::TooBig => TOO_BIG,
                InflateError::Corrupt => Violation { code: 1007, reason: "invalid compressed data" },
            })?;
        } else {
            m.data.extend_from_slice(chunk);
        }
        if m.text {
            check_utf8(&m.data, &mut m.checked, last)?;
        }
        if !last {
            return Ok(None);
        }
        let Some(m) = self.message.take() else { return Ok(None) };
        let data = Bytes::from(m.data);
        Ok(Some(if m.text {
            Message::Text(Utf8Bytes::try_from(data).map_err(|_| UTF8)?)
        } else {
            Message::Binary(data)
        }))
    }
}

/// Decodes a control frame's payload.
fn control(opcode: OpCode, payload: Bytes) -> Result<Incoming, Violation> {
    match opcode {
        OpCode::Control(Control::Ping) => Ok(Incoming::Ping(payload)),
        OpCode::Control(Control::Pong) => Ok(Incoming::Pong),
        OpCode::Control(Control::Close) => match payload.len() {
            0 => Ok(Incoming::Close(None)),
            1 => Err(protocol("close frame with a one-byte payload")),
            _ => {
                let code = u16::from_be_bytes([payload[0], payload[1]]);
                if !CloseCode::from(code).is_allowed() {
                    return Err(protocol("invalid close code"));
                }
                let reason = std::str::from_utf8(&payload[2..]).map_err(|_| UTF8)?;
                Ok(Incoming::Close(Some((code, reason.to_owned()))))
            }
        },
        _ => Err(protocol("reserved opcode")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A masked client frame.
    fn frame(first: u8, payload: &[u8]) -> Vec<u8> {
        let mask = [0x37, 0xfa, 0x21, 0x3d];
        let mut v = vec![first];
        match payload.len() {
            n @ 0..=125 => v.push(0x80 | n as u8),
            n @ 126..=0xffff => {
                v.push(0x80 | 126);
                v.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                v.push(0x80 | 127);
                v.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        v.extend_from_slice(&mask);
        v.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i & 3]));
        v
    }

    fn decode_all(d: &mut Decoder, bytes: &[u8]) -> Result<Vec<Incoming>, Violation> {
        let mut buf = BytesMut::from(bytes);
        let mut out = Vec::new();
        while let Some(e) = d.next(&mut buf)? {
            out.push(e);
        }
        Ok(out)
    }

    #[test]
    fn fragmented_messages_with_a_ping_inside_are_reassembled() {
        let mut d = Decoder::new(1 << 20, None);
        let mut wire = frame(0x01, "héllo ".as_bytes());
        wire.extend(frame(0x89, b"p"));
        wire.extend(frame(0x80, "wörld".as_bytes()));
        let events = decode_all(&mut d, &wire).expect("valid");
        assert_eq!(
            events,
            vec![Incoming::Ping(Bytes::from_static(b"p")), Incoming::Message(Message::text("héllo wörld"))]
        );
    }

    #[test]
    fn regression_autobahn_6_4_3_invalid_utf8_fails_at_the_bad_bytes_of_a_chopped_frame() {
        let mut d = Decoder::new(1 << 20, None);
        let payload =
            [&b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5"[..], b"\xf4\x90\x80\x80", b"edited"].concat();
        let wire = frame(0x81, &payload);
        // Header and the valid part first: nothing yet, no error.
        let mut buf = BytesMut::from(&wire[..6 + 11]);
        assert_eq!(d.next(&mut buf), Ok(None));
        // The bad bytes arrive, the rest of the frame has not: the error comes now.
        buf.extend_from_slice(&wire[6 + 11..6 + 15]);
        assert_eq!(d.next(&mut buf), Err(UTF8));
    }

    #[test]
    fn an_incomplete_sequence_at_a_fragment_edge_is_valid_until_the_message_ends() {
        let mut d = Decoder::new(1 << 20, None);
        let mut wire = frame(0x01, b"a\xc3");
        wire.extend(frame(0x80, b"\xa9"));
        assert_eq!(decode_all(&mut d, &wire), Ok(vec![Incoming::Message(Message::text("aé"))]));
        let mut d = Decoder::new(1 << 20, None);
        assert_eq!(decode_all(&mut d, &frame(0x81, b"a\xc3")), Err(UTF8));
    }

    #[test]
    fn protocol_violations_are_refused() {
        let cases: [(&[u8], u16); 7] = [
            (&[0x81, 0x00], 1002),                   // unmasked
            (&frame(0xc1, b"x")[..], 1002),          // RSV1 without deflate
            (&frame(0x80, b"x")[..], 1002),          // continuation first
            (&frame(0x09, b"x")[..], 1002),          // fragmented ping
            (&frame(0x83, b"x")[..], 1002),          // reserved opcode
            (&frame(0x88, &[0x03, 0xec])[..], 1002), // close code 1004
            (&frame(0x88, &[0x03, 0xe8, 0xff])[..], 1007),
        ];
        for (wire, code) in cases {
            let mut d = Decoder::new(1 << 20, None);
            assert_eq!(decode_all(&mut d, wire).map_err(|v| v.code), Err(code), "{wire:?}");
        }
        let mut d = Decoder::new(10, None);
        assert_eq!(decode_all(&mut d, &frame(0x82, &[0; 11])).map_err(|v| v.code), Err(1009));
    }

    #[test]
    fn regression_a_huge_continuation_length_cannot_wrap_the_size_check() {
        // After a 1-byte fragment, a continuation claiming 2^64-1 bytes (1 + that wraps to 0 in
        // unchecked math; the high bit is illegal) and one claiming 2^63-1 (too big).
        for (high, code) in [(0xff, 1002), (0x7f, 1009)] {
            let mut d = Decoder::new(1 << 20, None);
            let mut wire = frame(0x02, b"x");
            wire.extend_from_slice(&[0x80, 0x80 | 127, high]);
            wire.extend_from_slice(&[0xff; 7]);
            wire.extend_from_slice(&[1, 2, 3, 4]);
            assert_eq!(decode_all(&mut d, &wire).map_err(|v| v.code), Err(code));
        }
    }

    #[test]
    fn a_ping_inside_a_large_fragmented_message_does_not_count_against_it() {
        let mut d = Decoder::new(10, None);
        let mut wire = frame(0x01, b"123456789");
        wire.extend(frame(0x89, b"ping!"));
        wire.extend(frame(0x80, b"0"));
        let events = decode_all(&mut d, &wire).expect("valid");
        assert_eq!(events.len(), 2);
    }

    #[test]
    fn compressed_messages_are_inflated_across_frames() {
        use crate::ws::deflate::{deflate_alone, negotiate, DeflateConfig};
        let agreed =
            negotiate(std::iter::once("permessage-deflate"), &DeflateConfig::default()).expect("agreed");
        let mut d = Decoder::new(1 << 20, Some(Inflater::new(&agreed)));
        let text = "compress me ".repeat(200);
        let z = deflate_alone(text.as_bytes(), 6, 15);
        let mut wire = frame(0x41, &z[..3]);
        wire.extend(frame(0x80, &z[3..]));
        wire.extend(frame(0xc1, &z));
        let events = decode_all(&mut d, &wire).expect("valid");
        assert_eq!(
            events,
            vec![Incoming::Message(Message::text(text.clone())), Incoming::Message(Message::text(text))]
        );
    }

    #[test]
    fn unmasking_at_any_offset_matches_the_byte_by_byte_rule() {
        let mask = [1, 2, 3, 4];
        for offset in 0..4 {
            let mut buf: Vec<u8> = (0..37).collect();
            unmask(&mut buf, mask, offset);
            let want: Vec<u8> = (0..37u8).enumerate().map(|(i, b)| b ^ mask[(offset + i) & 3]).collect();
            assert_eq!(buf, want);
        }
    }
}
