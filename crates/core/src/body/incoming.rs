//! The request body as the handler sees it: read whole before dispatch when small, else pulled
//! chunk by chunk with the body-size limit and the per-chunk timeout applied.

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use std::sync::Arc;
use std::time::Duration;

use crate::stats::{Rejection, Stats};

/// The `413` body: names the limit so the client's developer knows which setting refused it.
pub const TOO_LARGE: &str = "Payload Too Large: the request body exceeds limits.maxBodySize";

/// Why reading a request body failed; `status()` is what the client should get.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyError {
    /// The body exceeded `max_body_size` (413).
    TooLarge,
    /// No chunk arrived within the body timeout (408).
    Timeout,
    /// The connection broke or the framing was invalid (400).
    Broken,
}

impl BodyError {
    /// The HTTP status that reports this error.
    pub fn status(self) -> u16 {
        match self {
            BodyError::TooLarge => 413,
            BodyError::Timeout => 408,
            BodyError::Broken => 400,
        }
    }

    /// A short message for the client and the JS error.
    pub fn message(self) -> &'static str {
        match self {
            BodyError::TooLarge => TOO_LARGE,
            BodyError::Timeout => "Request Timeout",
            BodyError::Broken => "Bad Request: the request body was incomplete or malformed",
        }
    }

    pub(crate) fn rejection(self) -> Rejection {
        match self {
            BodyError::TooLarge => Rejection::BodyTooLarge,
            BodyError::Timeout => Rejection::Timeout,
            BodyError::Broken => Rejection::BadRequest,
        }
    }
}

impl std::fmt::Display for BodyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.message())
    }
}

impl std::error::Error for BodyError {}

/// A request body that is streamed to the handler on demand.
pub struct StreamingBody {
    inner: Incoming,
    limit: u64,
    received: u64,
    timeout: Option<Duration>,
    stats: Arc<Stats>,
    done: bool,
}

/// The request body handed to a [`crate::Handler`].
pub enum RequestBody {
    /// No body, or a body already read whole (it fit `prebuffer_body`).
    Full(Bytes),
    /// A larger or unsized body, read chunk by chunk with [`StreamingBody::next_chunk`].
    Streaming(StreamingBody),
}

impl StreamingBody {
    pub(crate) fn new(inner: Incoming, limit: u64, timeout: Option<Duration>, stats: Arc<Stats>) -> Self {
        Self { inner, limit, received: 0, timeout, stats, done: false }
    }

    /// The next data chunk, `Ok(None)` at the end. Counts a rejection in stats on error.
    pub async fn next_chunk(&mut self) -> Result<Option<Bytes>, BodyError> {
        if self.done {
            return Ok(None);
        }
        loop {
            let frame = match self.timeout {
                Some(t) => match tokio::time::timeout(t, self.inner.frame()).await {
                    Ok(f) => f,
                    Err(_) => return Err(self.fail(BodyError::Timeout)),
                },
                None => self.inner.frame().await,
            };
            match frame {
                None => {
                    self.done = true;
                    return Ok(None);
                }
                Some(Err(_)) => return Err(self.fail(BodyError::Broken)),
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        self.received += data.len() as u64;
                        if self.received > self.limit {
                            return Err(self.fail(BodyError::TooLarge));
                        }
                        if !data.is_empty() {
                            return Ok(Some(data));
                        }
                    }
                }
            }
        }
    }

    /// Reads the rest of the body into one buffer (used for small sized bodies).
    pub(crate) async fn read_all(mut self) -> Result<Bytes, BodyError> {
        let mut out = bytes::BytesMut::new();
        while let Some(chunk) = self.next_chunk().await? {
            out.extend_from_slice(&chunk);
        }
        Ok(out.freeze())
    }

    fn fail(&mut self, e: BodyError) -> BodyError {
        self.done = true;
        self.stats.count(e.rejection());
        e
    }
}
