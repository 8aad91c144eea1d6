//! Streamed `multipart/form-data` (multer): one part at a time, parts the handler skips are
//! drained, and every failure maps to a status (400 malformed, 413 too large or too many parts).

use bytes::Bytes;
use futures_util::stream::{self, Stream};

use crate::body::incoming::{BodyError, RequestBody};

/// The head of one part.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PartHead {
    /// `name` from `Content-Disposition`.
    pub name: Option<String>,
    /// `filename` from `Content-Disposition` (present for file uploads).
    pub filename: Option<String>,
    /// The part's `Content-Type`.
    pub content_type: Option<String>,
    /// All the part's headers.
    pub headers: Vec<(String, String)>,
}

/// Why reading parts failed: the status the client should get and a short message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartError {
    /// 400, 408 or 413.
    pub status: u16,
    /// A short message.
    pub message: String,
}

impl From<multer::Error> for PartError {
    fn from(e: multer::Error) -> Self {
        use multer::Error as E;
        let status = match &e {
            E::FieldSizeExceeded { .. } | E::StreamSizeExceeded { .. } => 413,
            E::StreamReadFailed(inner) => match inner.downcast_ref::<BodyError>() {
                Some(b) => b.status(),
                None => 400,
            },
            _ => 400,
        };
        let message = match &e {
            E::StreamReadFailed(inner) => inner.to_string(),
            other => format!("Bad Request: {other}"),
        };
        Self { status, message }
    }
}

/// Limits on a multipart body (the whole body is already bounded by `maxBodySize`).
#[derive(Debug, Clone)]
pub struct PartLimits {
    /// Parts at most; more answer 413. Stops a body of millions of empty parts.
    pub max_parts: usize,
    /// Bytes per part at most (413 beyond); `None`: only the body limit applies.
    pub max_part_size: Option<u64>,
}

impl Default for PartLimits {
    fn default() -> Self {
        Self { max_parts: 1000, max_part_size: None }
    }
}

/// The parts of one request, read in order.
pub struct Parts {
    multipart: multer::Multipart<'static>,
    current: Option<multer::Field<'static>>,
    count: usize,
    limits: PartLimits,
}

fn body_stream(body: RequestBody) -> impl Stream<Item = Result<Bytes, BodyError>> + Send + 'static {
    stream::unfold(Some(body), |state| async move {
        match state? {
            RequestBody::Full(b) => (!b.is_empty()).then_some((Ok(b), None)),
            RequestBody::Streaming(mut s) => match s.next_chunk().await {
                Ok(Some(chunk)) => Some((Ok(chunk), Some(RequestBody::Streaming(s)))),
                Ok(None) => None,
                Err(e) => Some((Err(e), None)),
            },
        }
    })
}

impl Parts {
    /// Parses `body` with the `boundary` from its `Content-Type`.
    pub fn new(body: RequestBody, boundary: &str, limits: PartLimits) -> Self {
        let mut size = multer::SizeLimit::new();
        if let Some(n) = limits.max_part_size {
            size = size.per_field(n);
        }
        let constraints = multer::Constraints::new().size_limit(size);
        let multipart =
            multer::Multipart::with_constraints(body_stream(body), boundary.to_owned(), constraints);
        Self { multipart, current: None, count: 0, limits }
    }

    /// The boundary of a `multipart/form-data` content type, or `None`.
    pub fn boundary(content_type: &str) -> Option<String> {
        let essence = content_type.split(';').next().unwrap_or("").trim();
        if !essence.eq_ignore_ascii_case("multipart/form-data") {
            return None;
        }
        multer::parse_boundary(content_type).ok()
    }

    /// Moves to the next part, draining what is left of the current one. `None` at the end.
    pub async fn next_part(&mut self) -> Result<Option<PartHead>, PartError> {
        if let Some(mut field) = self.current.take() {
            while field.chunk().await?.is_some() {}
        }
        let Some(field) = self.multipart.next_field().await? else { return Ok(None) };
        self.count += 1;
        if self.count > self.limits.max_parts {
            return Err(PartError { status: 413, message: "Payload Too Large: too many parts".into() });
        }
        let head = PartHead {
            name: field.name().map(str::to_owned),
            filename: field.file_name().map(str::to_owned),
            content_type: field.content_type().map(ToString::to_string),
            headers: field
                .headers()
                .iter()
                .map(|(k, v)| (k.as_str().to_owned(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
                .collect(),
        };
        self.current = Some(field);
        Ok(Some(head))
    }

    /// The next chunk of the current part; `None` when the part is done (or there is none).
    pub async fn chunk(&mut self) -> Result<Option<Bytes>, PartError> {
        let Some(field) = self.current.as_mut() else { return Ok(None) };
        match field.chunk().await? {
            Some(b) => Ok(Some(b)),
            None => {
                self.current = None;
                Ok(None)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &str = "--XyZ\r\nContent-Disposition: form-data; name=\"title\"\r\n\r\nhello\r\n--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.txt\"\r\nContent-Type: text/plain\r\n\r\nfile body\r\n--XyZ\r\nContent-Disposition: form-data; name=\"last\"\r\n\r\nend\r\n--XyZ--\r\n";

    #[tokio::test]
    async fn parts_are_read_in_order_and_a_skipped_part_is_drained() {
        let mut p =
            Parts::new(RequestBody::Full(Bytes::from_static(BODY.as_bytes())), "XyZ", PartLimits::default());
        let title = p.next_part().await.expect("part").expect("title");
        assert_eq!(title.name.as_deref(), Some("title"));
        assert_eq!(p.chunk().await.expect("chunk").as_deref(), Some(&b"hello"[..]));
        let file = p.next_part().await.expect("part").expect("file");
        assert_eq!(file.filename.as_deref(), Some("a.txt"));
        assert_eq!(file.content_type.as_deref(), Some("text/plain"));
        // The file part is skipped without reading it.
        let last = p.next_part().await.expect("part").expect("last");
        assert_eq!(last.name.as_deref(), Some("last"));
        assert!(p.next_part().await.expect("end").is_none());
    }

    #[tokio::test]
    async fn too_many_parts_and_broken_bodies_have_statuses() {
        let limits = PartLimits { max_parts: 2, max_part_size: None };
        let mut p = Parts::new(RequestBody::Full(Bytes::from_static(BODY.as_bytes())), "XyZ", limits);
        p.next_part().await.expect("1");
        p.next_part().await.expect("2");
        assert_eq!(p.next_part().await.map_err(|e| e.status), Err(413));
        let cut = &BODY[..60];
        let mut p = Parts::new(
            RequestBody::Full(Bytes::copy_from_slice(cut.as_bytes())),
            "XyZ",
            PartLimits::default(),
        );
        let first = p.next_part().await;
        let err = match first {
            Ok(Some(_)) => p.chunk().await.err().or(p.next_part().await.err()),
            Ok(None) => None,
            Err(e) => Some(e),
        };
        assert_eq!(err.map(|e| e.status), Some(400));
        assert_eq!(Parts::boundary("multipart/form-data; boundary=abc").as_deref(), Some("abc"));
        assert_eq!(Parts::boundary("application/json"), None);
    }
}
