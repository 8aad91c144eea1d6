//! One WebSocket client, plain or socket.io (engine.io v4 on the websocket transport only:
//! `0{…}` open, `40` namespace connect, `42["name",payload]` events, ping `2` answered by `3`),
//! over tungstenite or, with permessage-deflate, over [`ZConn`].

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};
use tokio_tungstenite::{client_async_with_config, WebSocketStream};

use crate::zconn::ZConn;

/// The connection underneath.
enum Link {
    Plain(WebSocketStream<TcpStream>),
    Deflate(ZConn),
}

/// A connected client.
pub struct Conn {
    link: Link,
    sio: bool,
}

/// A received message: the whole frame, and where the event name and payload are in it.
pub struct Event {
    frame: Utf8Bytes,
    name: Option<(usize, usize)>,
    payload: (usize, usize),
}

impl Event {
    /// Whether this is the event `name` (plain WebSocket messages are every event).
    pub fn is(&self, name: &str) -> bool {
        self.name.is_none_or(|(a, b)| &self.frame[a..b] == name)
    }

    /// The payload: the whole message, or a socket.io event's string argument.
    pub fn payload(&self) -> &str {
        &self.frame[self.payload.0..self.payload.1]
    }
}

/// Splits `42["name","payload"]` (or `42["name"]`) into name and payload ranges.
fn parse_event(s: &str) -> Option<((usize, usize), (usize, usize))> {
    let rest = s.strip_prefix("42[\"")?;
    let name_end = 4 + rest.find('"')?;
    let after = &s[name_end + 1..];
    if after == "]" {
        return Some(((4, name_end), (name_end, name_end)));
    }
    let arg = after.strip_prefix(',')?.strip_suffix(']')?;
    let start = name_end + 2;
    match arg.strip_prefix('"').and_then(|a| a.strip_suffix('"')) {
        Some(text) => Some(((4, name_end), (start + 1, start + 1 + text.len()))),
        None => Some(((4, name_end), (start, start + arg.len()))),
    }
}

impl Conn {
    /// Connects to `path` (plain) or to the socket.io endpoint, and for socket.io joins namespace "/".
    /// With `deflate`, `path` must accept permessage-deflate (never with socket.io).
    pub async fn connect(port: u16, path: &str, sio: bool, deflate: bool) -> Result<Conn, String> {
        if deflate {
            return Ok(Conn { link: Link::Deflate(ZConn::connect(port, path).await?), sio: false });
        }
        let tcp = TcpStream::connect(("127.0.0.1", port)).await.map_err(|e| format!("connect: {e}"))?;
        tcp.set_nodelay(true).map_err(|e| format!("nodelay: {e}"))?;
        let url = if sio {
            format!("ws://127.0.0.1:{port}/socket.io/?EIO=4&transport=websocket")
        } else {
            format!("ws://127.0.0.1:{port}{path}")
        };
        // tungstenite zeroes its whole read buffer on every read: 128 KiB by default, far more than
        // small messages need, and that memset dominated the client's CPU time.
        let config = WebSocketConfig::default().read_buffer_size(16 * 1024);
        let (ws, _) =
            client_async_with_config(url, tcp, Some(config)).await.map_err(|e| format!("handshake: {e}"))?;
        let mut conn = Conn { link: Link::Plain(ws), sio };
        if sio {
            let open = conn.frame().await?;
            if !open.starts_with('0') {
                return Err(format!(
                    "expected an engine.io open packet, got {:?}",
                    &open[..open.len().min(40)]
                ));
            }
            conn.send_text("40".into()).await?;
            loop {
                let f = conn.frame().await?;
                match f.as_bytes() {
                    [b'4', b'0', ..] => break,
                    [b'4', b'4', ..] => return Err(format!("namespace refused: {f}")),
                    b"2" => conn.send_text("3".into()).await?,
                    _ => {}
                }
            }
        }
        Ok(conn)
    }

    /// The next text message (control frames are handled by tungstenite or `ZConn`).
    async fn frame(&mut self) -> Result<Utf8Bytes, String> {
        let ws = match &mut self.link {
            Link::Plain(ws) => ws,
            Link::Deflate(z) => {
                let text = z.recv().await?;
                return Utf8Bytes::try_from(text).map_err(|_| "a text message is not UTF-8".into());
            }
        };
        loop {
            match ws.next().await {
                Some(Ok(Message::Text(t))) => return Ok(t),
                Some(Ok(Message::Binary(_))) => return Err("unexpected binary message".into()),
                Some(Ok(Message::Close(_))) | None => return Err("closed by the server".into()),
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(format!("read: {e}")),
            }
        }
    }

    /// Sends one text message.
    async fn send_text(&mut self, text: String) -> Result<(), String> {
        match &mut self.link {
            Link::Plain(ws) => ws.send(Message::text(text)).await.map_err(|e| format!("send: {e}")),
            Link::Deflate(z) => z.send_text(&text).await,
        }
    }

    /// Sends `payload` as a text message (socket.io: as event `event`).
    pub async fn send(&mut self, event: &str, payload: &str) -> Result<(), String> {
        let msg = if self.sio { format!("42[\"{event}\",\"{payload}\"]") } else { payload.to_owned() };
        self.send_text(msg).await
    }

    /// Sends a text message compressed beforehand with `deflate_alone` (permessage-deflate only).
    pub async fn send_deflated(&mut self, deflated: &[u8]) -> Result<(), String> {
        match &mut self.link {
            Link::Deflate(z) => z.send_deflated(deflated).await,
            Link::Plain(_) => Err("not a permessage-deflate connection".into()),
        }
    }

    /// The next message (socket.io: the next event, answering pings on the way).
    pub async fn recv(&mut self) -> Result<Event, String> {
        loop {
            let frame = self.frame().await?;
            if !self.sio {
                let len = frame.len();
                return Ok(Event { frame, name: None, payload: (0, len) });
            }
            match frame.as_bytes() {
                b"2" => self.send_text("3".into()).await?,
                [b'4', b'2', ..] => {
                    let (name, payload) = parse_event(&frame).ok_or_else(|| format!("bad event {frame}"))?;
                    return Ok(Event { frame, name: Some(name), payload });
                }
                [b'4', b'1', ..] | [b'1', ..] => return Err("disconnected by the server".into()),
                _ => {}
            }
        }
    }

    /// Waits for the `ready` message (plain text `ready`, or the socket.io event `ready`).
    pub async fn wait_ready(&mut self) -> Result<(), String> {
        let ev = self.recv().await?;
        if (self.sio && ev.is("ready")) || (!self.sio && ev.payload() == "ready") {
            Ok(())
        } else {
            Err(format!("expected ready, got {:?}", ev.payload()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(s: &str) -> Event {
        let (name, payload) = parse_event(s).expect("parses");
        Event { frame: s.into(), name: Some(name), payload }
    }

    #[test]
    fn socketio_events_parse() {
        let e = ev("42[\"m\",\"12 xx\"]");
        assert!(e.is("m") && !e.is("echo"));
        assert_eq!(e.payload(), "12 xx");
        let r = ev("42[\"ready\"]");
        assert!(r.is("ready"));
        assert_eq!(r.payload(), "");
        assert_eq!(ev("42[\"n\",17]").payload(), "17");
        assert!(parse_event("40{}").is_none());
    }
}
