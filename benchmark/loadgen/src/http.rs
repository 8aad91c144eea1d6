//! Raw HTTP/1.1 over TCP: a GET with `Connection: close`, and an SSE subscriber that decodes
//! chunked transfer encoding incrementally (a `data:` line may be split across chunks).

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Incremental decoder of `Transfer-Encoding: chunked`.
#[derive(Default)]
pub struct Chunked {
    state: State,
    pending: Vec<u8>,
}

#[derive(Default, Clone, Copy, PartialEq, Eq)]
enum State {
    #[default]
    Size,
    Data(usize),
    DataEnd,
    Done,
}

impl Chunked {
    /// Decodes `input`, appending body bytes to `out`; true once the last chunk was seen.
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<bool, String> {
        self.pending.extend_from_slice(input);
        let buf = &self.pending;
        let mut pos = 0;
        loop {
            match self.state {
                State::Size => {
                    let Some(i) = find(&buf[pos..], b"\r\n") else { break };
                    let line = &buf[pos..pos + i];
                    let hex = line.split(|&b| b == b';').next().unwrap_or_default();
                    let hex = std::str::from_utf8(hex).map_err(|_| "bad chunk size".to_string())?;
                    let n = usize::from_str_radix(hex.trim(), 16)
                        .map_err(|_| format!("bad chunk size {hex:?}"))?;
                    pos += i + 2;
                    self.state = if n == 0 { State::Done } else { State::Data(n) };
                }
                State::Data(n) => {
                    let k = n.min(buf.len() - pos);
                    if k == 0 {
                        break;
                    }
                    out.extend_from_slice(&buf[pos..pos + k]);
                    pos += k;
                    self.state = if k == n { State::DataEnd } else { State::Data(n - k) };
                }
                State::DataEnd => {
                    if buf.len() - pos < 2 {
                        break;
                    }
                    if &buf[pos..pos + 2] != b"\r\n" {
                        return Err("chunk not followed by CRLF".into());
                    }
                    pos += 2;
                    self.state = State::Size;
                }
                State::Done => break,
            }
        }
        self.pending.drain(..pos);
        Ok(self.state == State::Done)
    }
}

/// Position of `needle` in `hay`.
pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// A response head and the body bytes read along with it.
pub struct Head {
    /// Status code.
    pub status: u16,
    /// Whether the body is chunked.
    pub chunked: bool,
    /// Content-Length, if given.
    pub length: Option<usize>,
    /// Body bytes that arrived with the head.
    pub rest: Vec<u8>,
}

/// Reads a response head.
pub async fn read_head(tcp: &mut TcpStream) -> Result<Head, String> {
    let mut buf = Vec::with_capacity(1024);
    let mut tmp = [0u8; 4096];
    loop {
        let k = tcp.read(&mut tmp).await.map_err(|e| format!("read: {e}"))?;
        if k == 0 {
            return Err("connection closed before the response head".into());
        }
        buf.extend_from_slice(&tmp[..k]);
        if let Some(end) = find(&buf, b"\r\n\r\n") {
            let text = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let mut lines = text.split("\r\n");
            let status = lines
                .next()
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            let (mut chunked, mut length) = (false, None);
            for line in lines {
                if let Some((name, value)) = line.split_once(':') {
                    match name.trim() {
                        "transfer-encoding" => chunked = value.contains("chunked"),
                        "content-length" => length = value.trim().parse().ok(),
                        _ => {}
                    }
                }
            }
            return Ok(Head { status, chunked, length, rest: buf[end + 4..].to_vec() });
        }
        if buf.len() > 65536 {
            return Err("response head too large".into());
        }
    }
}

async fn connect(port: u16) -> Result<TcpStream, String> {
    let tcp = TcpStream::connect(("127.0.0.1", port)).await.map_err(|e| format!("connect: {e}"))?;
    tcp.set_nodelay(true).map_err(|e| format!("nodelay: {e}"))?;
    Ok(tcp)
}

/// GET `path` with `Connection: close`; returns the status and the decoded body.
pub async fn get(port: u16, path: &str, timeout: Duration) -> Result<(u16, String), String> {
    let work = async {
        let mut tcp = connect(port).await?;
        let req = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
        tcp.write_all(req.as_bytes()).await.map_err(|e| format!("write: {e}"))?;
        let head = read_head(&mut tcp).await?;
        let mut raw = head.rest;
        tcp.read_to_end(&mut raw).await.map_err(|e| format!("read: {e}"))?;
        let body = if head.chunked {
            let mut out = Vec::new();
            Chunked::default().feed(&raw, &mut out)?;
            out
        } else {
            raw.truncate(head.length.unwrap_or(raw.len()));
            raw
        };
        Ok((head.status, String::from_utf8_lossy(&body).into_owned()))
    };
    tokio::time::timeout(timeout, work)
        .await
        .map_err(|_| format!("GET {path}: no response within {} s", timeout.as_secs()))?
}

/// One SSE client: subscribed once its response head has arrived.
pub struct SseSub {
    tcp: TcpStream,
    chunked: Option<Chunked>,
    read: Vec<u8>,
    events: SseParser,
    ended: bool,
}

impl SseSub {
    /// Sends the GET and waits for a 200 response head.
    pub async fn open(port: u16, path: &str) -> Result<SseSub, String> {
        let mut tcp = connect(port).await?;
        let req =
            format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAccept: text/event-stream\r\n\r\n");
        tcp.write_all(req.as_bytes()).await.map_err(|e| format!("write: {e}"))?;
        let head = read_head(&mut tcp).await?;
        if head.status != 200 {
            return Err(format!("GET {path}: status {}", head.status));
        }
        let mut sub = SseSub {
            tcp,
            chunked: head.chunked.then(Chunked::default),
            read: vec![0; 65536],
            events: SseParser::default(),
            ended: false,
        };
        sub.push(&head.rest)?;
        Ok(sub)
    }

    fn push(&mut self, raw: &[u8]) -> Result<(), String> {
        match &mut self.chunked {
            Some(c) => self.ended |= c.feed(raw, &mut self.events.body)?,
            None => self.events.body.extend_from_slice(raw),
        }
        Ok(())
    }

    /// The data of the next event; None when the stream ended.
    pub async fn next_event(&mut self) -> Result<Option<Vec<u8>>, String> {
        loop {
            if let Some(event) = self.events.take_event() {
                return Ok(Some(event));
            }
            if self.ended {
                return Ok(None);
            }
            let k = self.tcp.read(&mut self.read).await.map_err(|e| format!("read: {e}"))?;
            if k == 0 {
                self.ended = true;
                continue;
            }
            let raw = std::mem::take(&mut self.read);
            let pushed = self.push(&raw[..k]);
            self.read = raw;
            pushed?;
        }
    }
}

/// Splits a decoded event-stream body into events' data.
#[derive(Default)]
pub struct SseParser {
    /// Decoded body bytes not yet parsed.
    pub body: Vec<u8>,
    data: Option<Vec<u8>>,
}

impl SseParser {
    /// Consumes complete lines from the decoded body until an event is dispatched.
    pub fn take_event(&mut self) -> Option<Vec<u8>> {
        let mut pos = 0;
        let mut event = None;
        while let Some(nl) = self.body[pos..].iter().position(|&b| b == b'\n') {
            let mut line = &self.body[pos..pos + nl];
            pos += nl + 1;
            if let Some(l) = line.strip_suffix(b"\r") {
                line = l;
            }
            if line.is_empty() {
                if let Some(d) = self.data.take() {
                    event = Some(d);
                    break;
                }
            } else if let Some(v) = line.strip_prefix(b"data:") {
                let v = v.strip_prefix(b" ").unwrap_or(v);
                match &mut self.data {
                    Some(d) => {
                        d.push(b'\n');
                        d.extend_from_slice(v);
                    }
                    None => self.data = Some(v.to_vec()),
                }
            } // comments (':') and other fields are ignored
        }
        self.body.drain(..pos);
        event
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunked_decodes_across_any_split() {
        let wire = b"5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\n\r\n";
        for split in 0..wire.len() {
            let mut c = Chunked::default();
            let mut out = Vec::new();
            let last_seen = split >= wire.len() - 2; // "0\r\n" ends the body; the final CRLF is not awaited
            assert_eq!(c.feed(&wire[..split], &mut out), Ok(last_seen));
            assert_eq!(c.feed(&wire[split..], &mut out), Ok(true));
            assert_eq!(out, b"hello, world");
        }
    }

    #[test]
    fn chunked_rejects_garbage() {
        assert!(Chunked::default().feed(b"zz\r\n", &mut Vec::new()).is_err());
        assert!(Chunked::default().feed(b"1\r\nabc", &mut Vec::new()).is_err());
    }

    #[test]
    fn sse_events_join_data_lines_and_skip_comments() {
        let mut p = SseParser::default();
        p.body.extend_from_slice(b": hi\r\n\r\ndata: 0 xx\n\ndata:a\ndata: b\n");
        assert_eq!(p.take_event().as_deref(), Some(&b"0 xx"[..]));
        assert_eq!(p.take_event(), None);
        p.body.extend_from_slice(b"\n");
        assert_eq!(p.take_event().as_deref(), Some(&b"a\nb"[..]));
    }
}
