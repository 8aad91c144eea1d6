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
    /// A message already compressed once for every subscriber of a topic.
    Deflated {
        /// Text (else binary).
        text: bool,
        /// The compressed payload.
        payload: Bytes,
    },
}

impl Outgoing {
    /// Bytes this item holds, for backpressure accounting.
    pub fn held(&self) -> usize {
        match self {
            Outgoing::Message(m) => super::message_len(m),
            Outgoing::Deflated { payload, .. } => payload.len(),
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
    let (opcode, rsv1, payload) = match item {
        Outgoing::Deflated { text, payload } => (data(text), true, payload),
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
    fn deflated_items_carry_rsv1() {
        let mut out = Vec::new();
        let _ =
            encode(&mut out, Outgoing::Deflated { text: true, payload: Bytes::from_static(b"\x00") }, None);
        assert_eq!(out, b"\xc1\x01\x00");
    }
}
