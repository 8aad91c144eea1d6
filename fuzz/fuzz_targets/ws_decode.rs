//! WebSocket frame decoding: any bytes, in any chunking, with or without permessage-deflate, never panic, never yield a message over `max_payload`, and stop at the first violation.
#![no_main]

use catzilla_core::ws::decode::{Decoder, Incoming};
use catzilla_core::ws::deflate::{negotiate, DeflateConfig, Inflater};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else { return };
    let max_payload = if flags & 1 == 0 { 64 } else { 1 << 16 };
    let inflater = (flags & 2 != 0).then(|| {
        let agreed = negotiate(std::iter::once("permessage-deflate"), &DeflateConfig::default());
        Inflater::new(&agreed.expect("a plain offer is accepted"))
    });
    let chunk = usize::from(flags >> 2).max(1);
    let mut decoder = Decoder::new(max_payload, inflater);
    let mut buf = catzilla_core::ws::decode::BytesMut::new();
    for piece in rest.chunks(chunk) {
        buf.extend_from_slice(piece);
        loop {
            match decoder.next(&mut buf) {
                Ok(Some(Incoming::Message(m))) => {
                    let len = match &m {
                        catzilla_core::Message::Text(t) => t.len(),
                        catzilla_core::Message::Binary(b) => b.len(),
                        _ => panic!("only data messages are yielded"),
                    };
                    assert!(len <= max_payload, "{len} > {max_payload}");
                }
                Ok(Some(Incoming::Ping(p))) => assert!(p.len() <= 125),
                Ok(Some(Incoming::Pong)) => {}
                Ok(Some(Incoming::Close(_))) | Err(_) => return,
                Ok(None) => break,
            }
        }
    }
});
