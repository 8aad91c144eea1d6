//! Encoding what the server sends: unmasked frames (headers written by tungstenite's
//! `FrameHeader`), compressed per message when permessage-deflate was agreed.

use bytes::Bytes;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Control, Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::FrameHeader;

use super::deflate::Deflater;
use super::Message;

/// One queued outbound item.
#[derive(Debug, Clone)]
pub enum Outgoing {
    /// A message, compressed when it is written if the socket agreed to permessage-deflate.
    Message(Message),
    /// A topic message with its payload compressed once for every subscriber that compresses
    /// messages alone at `level`; a socket that agreed otherwise (a resumed session may have)
    /// sends `message` as it would any other.
    Shared {
        /// The message itself.
        message: Message,
        /// Its payload, compressed alone with a 15-bit window at `level`.
        deflated: Bytes,
        /// The zlib level it was compressed with.
        level: u32,
    },
}

impl Outgoing {
    /// Bytes this item holds, for backpressure accounting.
    pub fn held(&self) -> usize {
        match self {
            Outgoing::Message(m) => super::message_len(m),
            Outgoing::Shared { message, .. } => super::message_len(message),
        }
    }
}

/// Payloads at least this long are written straight from their buffer instead of being copied
/// into the batch buffer.
pub(crate) const DIRECT: usize = 16 * 1024;

/// Appends the header of a frame (final, unmasked) to `out`.
fn header(out: &mut Vec<u8>, opcode: OpCode, rsv1: bool, len: usize) {
    let h = FrameHeader { is_final: true, rsv1, rsv2: false, rsv3: false, opcode, mask: None };
    // Writing into a Vec cannot fail.
    let _ = h.format(len as u64, out);
}

/// Encodes `item` into `out`; a large payload is returned to be written after `out` instead of
/// copied into it.
pub(crate) fn encode(out: &mut Vec<u8>, item: Outgoing, deflater: Option<&mut Deflater>) -> Option<Bytes> {
    let item = match item {
        Outgoing::Shared { message, deflated, level } => match (&message, &deflater) {
            (Message::Text(_) | Message::Binary(_), Some(d)) if d.shares(level) => {
                let text = matches!(message, Message::Text(_));
                header(out, data(text), true, deflated.len());
                return copy_or_direct(out, deflated);
            }
            _ => Outgoing::Message(message),
        },
        item => item,
    };
    let (opcode, rsv1, payload) = match item {
        Outgoing::Shared { .. } => return None,
        Outgoing::Message(m) => {
            let (opcode, payload) = match m {
                Message::Text(t) => (data(true), Bytes::from(t)),
                Message::Binary(b) => (data(false), b),
                Message::Ping(b) => (OpCode::Control(Control::Ping), b),
                Message::Pong(b) => (OpCode::Control(Control::Pong), b),
                Message::Close(_) | Message::Frame(_) => return None,
            };
            match (opcode, deflater) {
                (OpCode::Data(_), Some(d)) => match d.compress(&payload) {
                    Some(z) => (opcode, true, z),
                    None => (opcode, false, payload),
                },
                _ => (opcode, false, payload),
            }
        }
    };
    header(out, opcode, rsv1, payload.len());
    copy_or_direct(out, payload)
}

/// Appends a small payload to `out`; a large one is returned to be written from its own buffer.
fn copy_or_direct(out: &mut Vec<u8>, payload: Bytes) -> Option<Bytes> {
    if payload.len() >= DIRECT {
        return Some(payload);
    }
    out.extend_from_slice(&payload);
    None
}

/// Encodes a close frame with `code` and `reason` (1005 sends an empty close).
pub(crate) fn close(out: &mut Vec<u8>, code: u16, reason: &str) {
    let opcode = OpCode::Control(Control::Close);
    if code == 1005 {
        header(out, opcode, false, 0);
        return;
    }
    header(out, opcode, false, 2 + reason.len());
    out.extend_from_slice(&code.to_be_bytes());
    out.extend_from_slice(reason.as_bytes());
}

fn data(text: bool) -> OpCode {
    OpCode::Data(if text { Data::Text } else { Data::Binary })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_final_unmasked_and_sized_in_the_shortest_form() {
        let mut out = Vec::new();
        assert!(encode(&mut out, Outgoing::Message(Message::text("hi")), None).is_none());
        assert_eq!(out, b"\x81\x02hi");
        out.clear();
        let big = Bytes::from(vec![7u8; 70_000]);
        let rest = encode(&mut out, Outgoing::Message(Message::Binary(big.clone())), None);
        assert_eq!(out, [0x82, 127, 0, 0, 0, 0, 0, 1, 0x11, 0x70]);
        assert_eq!(rest, Some(big));
        out.clear();
        close(&mut out, 1000, "bye");
        assert_eq!(out, b"\x88\x05\x03\xe8bye");
    }

    #[test]
    fn a_shared_compressed_payload_goes_only_to_a_socket_that_agreed_to_it() {
        use crate::ws::deflate::{negotiate, DeflateConfig, Deflater};
        let item = || Outgoing::Shared {
            message: Message::text("plain"),
            deflated: Bytes::from_static(b"\x00"),
            level: 6,
        };
        let agreed =
            |offer: &str| negotiate(std::iter::once(offer), &DeflateConfig::default()).expect("agreed");
        let mut out = Vec::new();
        let _ = encode(&mut out, item(), Some(&mut Deflater::new(agreed("permessage-deflate"))));
        assert_eq!(out, b"\xc1\x01\x00");
        // No deflate on this connection (a resumed session), or a small window: the message itself.
        for mut d in [None, Some(Deflater::new(agreed("permessage-deflate; server_max_window_bits=10")))] {
            out.clear();
            let _ = encode(&mut out, item(), d.as_mut());
            assert_eq!(out, b"\x81\x05plain");
        }
    }
}
