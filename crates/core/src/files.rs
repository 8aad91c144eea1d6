//! Files served from Rust: content type, ETag/Last-Modified, 304, byte ranges (206 with one range
//! or `multipart/byteranges`, 416), small files in one read and large ones streamed in bounded
//! chunks; plus static directories.

use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, StatusCode};
use http_body::{Body, Frame, SizeHint};
use std::collections::VecDeque;
use std::fs::File;
use std::future::Future as _;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::path::{Component, Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::UNIX_EPOCH;
use tokio::task::JoinHandle;

use crate::body::ring::StreamAborted;
use crate::handler::{Reply, ReplyBody};

/// Files up to this size are read whole (one blocking read, sent with the reply); larger ones
/// are streamed in chunks of this size, one read in flight, so a slow client holds one chunk.
pub const CHUNK: usize = 64 * 1024;

/// The request headers that decide a file response.
#[derive(Debug, Clone, Default)]
pub struct Conditions {
    /// `Range`.
    pub range: Option<String>,
    /// `If-Range`.
    pub if_range: Option<String>,
    /// `If-None-Match`.
    pub if_none_match: Option<String>,
    /// `If-Modified-Since`.
    pub if_modified_since: Option<String>,
}

impl Conditions {
    /// Reads the conditional headers of a request.
    pub fn from_headers(h: &HeaderMap) -> Self {
        let get = |n: header::HeaderName| h.get(n).and_then(|v| v.to_str().ok()).map(str::to_owned);
        Self {
            range: get(header::RANGE),
            if_range: get(header::IF_RANGE),
            if_none_match: get(header::IF_NONE_MATCH),
            if_modified_since: get(header::IF_MODIFIED_SINCE),
        }
    }
}

/// How a file is sent.
#[derive(Debug, Clone, Default)]
pub struct FileOptions {
    /// `Content-Type`; guessed from the extension when `None`.
    pub content_type: Option<HeaderValue>,
    /// `Cache-Control`; none when `None`.
    pub cache_control: Option<HeaderValue>,
    /// Extra headers (e.g. `Content-Disposition`).
    pub headers: HeaderMap,
    /// When set, the file actually opened must lie inside this directory (404 otherwise).
    pub confine: Option<Confinement>,
}

/// A directory a file must stay inside, checked on the final resolved path of the file that is
/// actually opened (symlinks, `..` and an index file joined later all included).
#[derive(Debug, Clone)]
pub struct Confinement {
    root: PathBuf,
    dotfiles: bool,
}

impl Confinement {
    /// Confines to `root` (resolved now; `Err` when it is not an existing directory). Without
    /// `dotfiles`, a file whose resolved path has a component starting with `.` below the root
    /// is refused too, so a harmless-looking symlink cannot expose `.env`.
    pub fn new(root: &Path, dotfiles: bool) -> io::Result<Self> {
        let root = root.canonicalize()?;
        if !root.is_dir() {
            return Err(io::Error::from(io::ErrorKind::NotFound));
        }
        Ok(Self { root, dotfiles })
    }

    /// The resolved root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `true` when the resolved path `real` is inside the root and passes the dotfile rule.
    pub fn allows(&self, real: &Path) -> bool {
        let Ok(rel) = real.strip_prefix(&self.root) else { return false };
        self.dotfiles
            || rel.components().all(|c| match c {
                Component::Normal(part) => part.as_bytes().first() != Some(&b'.'),
                _ => false,
            })
    }

    /// Opens `path` only if its final resolved path is allowed: the path is resolved, checked,
    /// opened without following a last-moment symlink, and (on Linux) the opened descriptor's own
    /// path is checked again, so a file swapped between the check and the open is refused too.
    fn open(&self, path: &Path) -> io::Result<File> {
        let denied = || io::Error::from(io::ErrorKind::NotFound);
        // Refuse a path that climbs out of the root before touching the filesystem, and answer
        // every resolution failure the same way: distinct errors (not a directory, permission
        // denied) would tell a client which paths exist outside the root.
        if !lexically_inside(path, &self.root) {
            return Err(denied());
        }
        let real = path.canonicalize().map_err(|_| denied())?;
        if !self.allows(&real) {
            return Err(denied());
        }
        let file = open_nofollow(&real)?;
        if let Some(opened) = opened_path(&file) {
            if !self.allows(&opened) {
                return Err(denied());
            }
        }
        Ok(file)
    }
}

/// `true` when `path`, with `.` and `..` resolved as text (no symlinks followed), is `root` or
/// below it.
fn lexically_inside(path: &Path, root: &Path) -> bool {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::ParentDir => {
                if !out.pop() {
                    return false;
                }
            }
            Component::CurDir => {}
            c => out.push(c),
        }
    }
    out.starts_with(root)
}

/// Opens for reading, refusing a symlink put in place after `canonicalize` (`O_NOFOLLOW`; its
/// value differs between architectures, hence libc's constant).
fn open_nofollow(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW).open(path)
}

/// The path the kernel has for an open file (Linux `/proc/self/fd`); `None` where unavailable.
fn opened_path(file: &File) -> Option<PathBuf> {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        std::fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd())).ok()
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = file;
        None
    }
}

/// What went wrong opening a file, mapped to a status.
fn open_error(e: &io::Error) -> Reply {
    match e.kind() {
        io::ErrorKind::NotFound => Reply::text(StatusCode::NOT_FOUND, "Not Found"),
        io::ErrorKind::PermissionDenied => Reply::text(StatusCode::FORBIDDEN, "Forbidden"),
        _ => Reply::text(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error"),
    }
}

/// A strong validator from size and modification time (as nginx does).
fn etag(len: u64, mtime: u64) -> String {
    format!("\"{len:x}-{mtime:x}\"")
}

/// `true` when an `If-None-Match` list matches `tag` (weak comparison, RFC 9110 §13.1.2).
pub fn none_match(list: &str, tag: &str) -> bool {
    let bare = |t: &str| t.trim().trim_start_matches("W/").to_owned();
    list.split(',').any(|t| t.trim() == "*" || bare(t) == bare(tag))
}

/// A `Range` header with more range specs than this is ignored (the whole file is sent), so a
/// request cannot make the server build thousands of parts (RFC 9110 §14.2 allows ignoring it).
pub const MAX_RANGES: usize = 32;

/// Ranges closer than this many bytes are merged into one part: a part's own head costs about as
/// much (RFC 9110 §14.2 lets a server coalesce ranges separated by a gap smaller than that).
pub const COALESCE_GAP: u64 = 80;

/// The satisfiable ranges of a `Range` header, sorted, with overlapping and nearby ones merged
/// (inclusive `(first, last)` pairs); `Err(())` when none is satisfiable (416); `None` to send
/// everything: no `bytes=` unit, a malformed spec, or more than [`MAX_RANGES`] specs.
pub fn parse_ranges(spec: &str, len: u64) -> Option<Result<Vec<(u64, u64)>, ()>> {
    let spec = spec.trim().strip_prefix("bytes=")?;
    let mut ranges = Vec::new();
    for (i, one) in spec.split(',').enumerate() {
        if i == MAX_RANGES {
            return None;
        }
        if let Ok(r) = parse_one(one, len)? {
            ranges.push(r);
        }
    }
    if ranges.is_empty() {
        return Some(Err(()));
    }
    ranges.sort_unstable();
    let mut merged: Vec<(u64, u64)> = Vec::with_capacity(ranges.len());
    for (s, e) in ranges {
        match merged.last_mut() {
            Some(last) if s <= last.1.saturating_add(COALESCE_GAP) => last.1 = last.1.max(e),
            _ => merged.push((s, e)),
        }
    }
    Some(Ok(merged))
}

/// One range spec: `Some(Ok)` satisfiable, `Some(Err)` not, `None` malformed.
fn parse_one(spec: &str, len: u64) -> Option<Result<(u64, u64), ()>> {
    let (a, b) = spec.trim().split_once('-')?;
    let (a, b) = (a.trim(), b.trim());
    // RFC 9110 §14.1.1: positions are 1*DIGIT; `parse` alone would also take a leading `+`.
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit());
    if !(a.is_empty() || digits(a)) || !(b.is_empty() || digits(b)) {
        return None;
    }
    if a.is_empty() {
        let n: u64 = b.parse().ok()?;
        if n == 0 || len == 0 {
            return Some(Err(()));
        }
        return Some(Ok((len.saturating_sub(n), len - 1)));
    }
    let start: u64 = a.parse().ok()?;
    let end: u64 = if b.is_empty() { u64::MAX } else { b.parse().ok()? };
    if end < start {
        return None;
    }
    if start >= len {
        return Some(Err(()));
    }
    Some(Ok((start, end.min(len - 1))))
}

/// A boundary for `multipart/byteranges` that no file content can be expected to contain:
/// 128 bits from the standard library's per-process random keys and a counter.
fn boundary() -> String {
    use std::hash::{BuildHasher, Hasher};
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let half = |salt: u64| {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(n ^ salt);
        h.finish()
    };
    format!("CZ{:016x}{:016x}", half(0), half(u64::MAX))
}

/// The body of a `multipart/byteranges` answer for sorted, disjoint `ranges` of a file of `len`
/// bytes of type `content_type`: the parts as segments, and the boundary.
fn byteranges(
    ranges: &[(u64, u64)],
    len: u64,
    content_type: Option<&HeaderValue>,
) -> (VecDeque<Segment>, String) {
    let boundary = boundary();
    let ct = content_type
        .and_then(|v| v.to_str().ok())
        .map(|v| format!("Content-Type: {v}\r\n"))
        .unwrap_or_default();
    let mut parts = VecDeque::with_capacity(ranges.len() * 2 + 1);
    for (i, &(s, e)) in ranges.iter().enumerate() {
        let lead = if i == 0 { "" } else { "\r\n" };
        let head = format!("{lead}--{boundary}\r\n{ct}Content-Range: bytes {s}-{e}/{len}\r\n\r\n");
        parts.push_back(Segment::Bytes(Bytes::from(head)));
        parts.push_back(Segment::File { pos: s, end: e + 1 });
    }
    parts.push_back(Segment::Bytes(Bytes::from(format!("\r\n--{boundary}--\r\n"))));
    (parts, boundary)
}

fn value(s: &str) -> Option<HeaderValue> {
    HeaderValue::from_str(s).ok()
}

/// Answers with the file at `path`: 200, 206, 304, 404, 403 or 416. Blocking work (open, stat,
/// small reads) runs on tokio's blocking pool.
pub async fn file_reply(path: PathBuf, cond: Conditions, mut opts: FileOptions) -> Reply {
    let confine = opts.confine.take();
    // The type comes from the name asked for, not from where a symlink points (`latest.pdf -> v3`).
    let named = path.clone();
    let opened = tokio::task::spawn_blocking(move || -> io::Result<(File, std::fs::Metadata)> {
        let file = match &confine {
            Some(c) => c.open(&path)?,
            None => File::open(&path)?,
        };
        let meta = file.metadata()?;
        if !meta.is_file() {
            return Err(io::Error::from(io::ErrorKind::NotFound));
        }
        Ok((file, meta))
    })
    .await;
    let (file, meta) = match opened {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => return open_error(&e),
        Err(_) => return Reply::text(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error"),
    };
    let len = meta.len();
    // Whole seconds, as HTTP dates carry them.
    let mtime = meta.modified().unwrap_or(UNIX_EPOCH).duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let modified = UNIX_EPOCH + std::time::Duration::from_secs(mtime);
    let tag = etag(len, mtime);
    let last_modified = httpdate::fmt_http_date(modified);

    let mut headers = opts.headers;
    let content_type = opts.content_type.or_else(|| {
        let mime = mime_guess::from_path(&named).first_or_octet_stream();
        let text = mime.type_() == mime_guess::mime::TEXT || mime.essence_str() == "application/javascript";
        value(&if text { format!("{mime}; charset=utf-8") } else { mime.to_string() })
    });
    if let Some(v) = value(&tag) {
        headers.insert(header::ETAG, v);
    }
    if let Some(v) = value(&last_modified) {
        headers.insert(header::LAST_MODIFIED, v);
    }
    if let Some(cc) = opts.cache_control {
        headers.insert(header::CACHE_CONTROL, cc);
    }
    headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));

    // 304 comes before Range (RFC 9110 §13.2.2).
    let not_modified = match (&cond.if_none_match, &cond.if_modified_since) {
        (Some(list), _) => none_match(list, &tag),
        (None, Some(since)) => httpdate::parse_http_date(since).is_ok_and(|t| modified <= t),
        (None, None) => false,
    };
    if not_modified {
        return Reply { status: StatusCode::NOT_MODIFIED, headers, body: ReplyBody::Full(Bytes::new()) };
    }
    if let Some(ct) = content_type {
        headers.insert(header::CONTENT_TYPE, ct);
    }

    // If-Range: only a strong ETag or the exact date lets the range through; a weak tag never does.
    let range_allowed = cond.if_range.as_deref().is_none_or(|v| {
        let v = v.trim();
        if v.starts_with("W/") {
            false
        } else if v.starts_with('"') {
            v == tag
        } else {
            v == last_modified
        }
    });
    let ranges = match cond.range.as_deref().filter(|_| range_allowed).and_then(|r| parse_ranges(r, len)) {
        Some(Ok(ranges)) => ranges,
        Some(Err(())) => {
            if let Some(v) = value(&format!("bytes */{len}")) {
                headers.insert(header::CONTENT_RANGE, v);
            }
            headers.remove(header::CONTENT_TYPE);
            let mut reply = Reply::text(StatusCode::RANGE_NOT_SATISFIABLE, "Range Not Satisfiable");
            for (k, v) in &headers {
                reply.headers.insert(k, v.clone());
            }
            return reply;
        }
        None => vec![],
    };
    let file = Arc::new(file);
    if ranges.len() > 1 {
        let (segments, boundary) = byteranges(&ranges, len, headers.get(header::CONTENT_TYPE));
        if let Some(v) = value(&format!("multipart/byteranges; boundary={boundary}")) {
            headers.insert(header::CONTENT_TYPE, v);
        }
        let body = ReplyBody::File(FileBody::new(file, segments));
        return Reply { status: StatusCode::PARTIAL_CONTENT, headers, body };
    }
    let (status, start, end) = match ranges.first() {
        Some(&(s, e)) => {
            if let Some(v) = value(&format!("bytes {s}-{e}/{len}")) {
                headers.insert(header::CONTENT_RANGE, v);
            }
            (StatusCode::PARTIAL_CONTENT, s, e + 1)
        }
        None => (StatusCode::OK, 0, len),
    };
    let body = if end - start <= CHUNK as u64 {
        let f = file.clone();
        match tokio::task::spawn_blocking(move || read_chunk(&f, start, (end - start) as usize)).await {
            Ok(Ok(b)) => ReplyBody::Full(b),
            _ => return Reply::text(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error"),
        }
    } else {
        ReplyBody::File(FileBody::new(file, VecDeque::from([Segment::File { pos: start, end }])))
    };
    Reply { status, headers, body }
}

fn read_chunk(file: &File, at: u64, len: usize) -> io::Result<Bytes> {
    let mut buf = vec![0u8; len];
    let mut done = 0;
    while done < len {
        match file.read_at(&mut buf[done..], at + done as u64) {
            Ok(0) => break, // the file shrank: send what is there, the length check fails the body
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    buf.truncate(done);
    Ok(Bytes::from(buf))
}

/// A piece of a file body: bytes of the file, or bytes made here (a multipart part's head).
#[derive(Debug)]
enum Segment {
    /// File bytes `pos..end`.
    File { pos: u64, end: u64 },
    /// Bytes sent as they are.
    Bytes(Bytes),
}

impl Segment {
    fn len(&self) -> u64 {
        match self {
            Segment::File { pos, end } => end.saturating_sub(*pos),
            Segment::Bytes(b) => b.len() as u64,
        }
    }
}

/// A large file (or the parts of a multi-range answer) streamed in [`CHUNK`]-sized reads, one
/// in flight, so a slow client holds one chunk.
pub struct FileBody {
    file: Arc<File>,
    segments: VecDeque<Segment>,
    remaining: u64,
    pending: Option<JoinHandle<io::Result<Bytes>>>,
}

impl FileBody {
    fn new(file: Arc<File>, segments: VecDeque<Segment>) -> Self {
        let remaining = segments.iter().map(Segment::len).sum();
        Self { file, segments, remaining, pending: None }
    }

    /// Bytes still to send.
    pub fn remaining(&self) -> u64 {
        self.remaining
    }

    /// Ends the body early (the file shrank): nothing more is sent.
    fn fail(&mut self) -> Poll<Option<Result<Frame<Bytes>, StreamAborted>>> {
        self.segments.clear();
        self.remaining = 0;
        Poll::Ready(Some(Err(StreamAborted)))
    }
}

impl Body for FileBody {
    type Data = Bytes;
    type Error = StreamAborted;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, StreamAborted>>> {
        let this = self.get_mut();
        let (at, want) = loop {
            match this.segments.front() {
                None => return Poll::Ready(None),
                Some(&Segment::File { pos, end }) if pos < end => {
                    break (pos, (end - pos).min(CHUNK as u64) as usize)
                }
                Some(Segment::File { .. }) => {
                    this.segments.pop_front();
                }
                Some(Segment::Bytes(_)) => {
                    if let Some(Segment::Bytes(b)) = this.segments.pop_front() {
                        this.remaining -= b.len() as u64;
                        return Poll::Ready(Some(Ok(Frame::data(b))));
                    }
                }
            }
        };
        let pending = this.pending.get_or_insert_with(|| {
            let f = this.file.clone();
            tokio::task::spawn_blocking(move || read_chunk(&f, at, want))
        });
        match Pin::new(pending).poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(result) => {
                this.pending = None;
                match result {
                    // A file that shrank while being sent ends the response as an error, so the
                    // client sees a short body instead of a wrong one.
                    Ok(Ok(b)) if !b.is_empty() => {
                        if let Some(Segment::File { pos, .. }) = this.segments.front_mut() {
                            *pos += b.len() as u64;
                        }
                        this.remaining -= b.len() as u64;
                        Poll::Ready(Some(Ok(Frame::data(b))))
                    }
                    _ => this.fail(),
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}

/// Options of a static directory.
#[derive(Debug, Clone)]
pub struct StaticOptions {
    /// File served for a directory (`None`: directories are 404).
    pub index: Option<String>,
    /// Serve names starting with `.` (default: no, they are 404).
    pub dotfiles: bool,
    /// `Cache-Control` for every file.
    pub cache_control: Option<HeaderValue>,
}

impl Default for StaticOptions {
    fn default() -> Self {
        Self { index: Some("index.html".into()), dotfiles: false, cache_control: None }
    }
}

/// Resolves the percent-encoded `rel` path under `root`, refusing anything that could leave it
/// (`..`, absolute parts, NUL, backslashes, and symlinks pointing outside), and dotfiles unless
/// allowed. A directory resolves to its index file. Containment and the dotfile rule are checked
/// on the final resolved path (after the index is joined and every symlink followed), so an
/// `index.html` or a plain name that links outside the root or to a dotfile is refused. `None`
/// means 404.
pub fn resolve(root: &Path, rel: &str, opts: &StaticOptions) -> Option<PathBuf> {
    resolve_in(&Confinement::new(root, opts.dotfiles).ok()?, rel, opts)
}

/// [`resolve`] under an already resolved root.
fn resolve_in(confine: &Confinement, rel: &str, opts: &StaticOptions) -> Option<PathBuf> {
    let decoded = percent_encoding::percent_decode_str(rel).decode_utf8().ok()?;
    if decoded.contains('\0') || decoded.contains('\\') {
        return None;
    }
    let mut path = confine.root().to_path_buf();
    for c in Path::new(decoded.as_ref()).components() {
        match c {
            Component::Normal(part) => {
                if !opts.dotfiles && part.to_str().is_some_and(|s| s.starts_with('.')) {
                    return None;
                }
                path.push(part);
            }
            Component::CurDir | Component::RootDir => {}
            Component::ParentDir | Component::Prefix(_) => return None,
        }
    }
    let mut real = path.canonicalize().ok()?;
    if real.is_dir() {
        real.push(opts.index.as_deref()?);
        real = real.canonicalize().ok()?;
    }
    confine.allows(&real).then_some(real)
}

/// Serves `rel` from the directory `root`.
pub async fn static_reply(
    root: Arc<PathBuf>,
    rel: String,
    cond: Conditions,
    opts: Arc<StaticOptions>,
) -> Reply {
    let resolved = {
        let (root, opts) = (root.clone(), opts.clone());
        tokio::task::spawn_blocking(move || {
            // The root is resolved once; the opened file is checked against it again, since the
            // tree may change between resolving and opening.
            let confine = Confinement::new(&root, opts.dotfiles).ok()?;
            Some((resolve_in(&confine, &rel, &opts)?, confine))
        })
        .await
        .ok()
        .flatten()
    };
    let Some((path, confine)) = resolved else { return Reply::text(StatusCode::NOT_FOUND, "Not Found") };
    let fo = FileOptions {
        cache_control: opts.cache_control.clone(),
        confine: Some(confine),
        ..FileOptions::default()
    };
    file_reply(path, cond, fo).await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The single range of a spec, for the one-range cases.
    fn one(spec: &str, len: u64) -> Option<Result<(u64, u64), ()>> {
        parse_ranges(spec, len).map(|r| {
            r.map(|v| {
                assert_eq!(v.len(), 1, "{spec}");
                v[0]
            })
        })
    }

    #[test]
    fn ranges_follow_rfc_9110() {
        assert_eq!(one("bytes=0-9", 100), Some(Ok((0, 9))));
        assert_eq!(one("bytes=90-", 100), Some(Ok((90, 99))));
        assert_eq!(one("bytes=-10", 100), Some(Ok((90, 99))));
        assert_eq!(one("bytes=-1000", 100), Some(Ok((0, 99))));
        assert_eq!(one("bytes=95-200", 100), Some(Ok((95, 99))));
        assert_eq!(one("bytes=100-", 100), Some(Err(())));
        assert_eq!(one("bytes=-0", 100), Some(Err(())));
        assert_eq!(one("items=0-1", 100), None);
        assert_eq!(one("bytes=5-1", 100), None);
    }

    #[test]
    fn several_ranges_are_sorted_coalesced_and_bounded() {
        let len = 10_000;
        assert_eq!(parse_ranges("bytes=0-1,500-600", len), Some(Ok(vec![(0, 1), (500, 600)])));
        assert_eq!(parse_ranges("bytes=500-600, 0-1", len), Some(Ok(vec![(0, 1), (500, 600)])), "sorted");
        assert_eq!(parse_ranges("bytes=0-100,50-200", len), Some(Ok(vec![(0, 200)])), "overlapping merge");
        assert_eq!(
            parse_ranges("bytes=0-9,60-69", len),
            Some(Ok(vec![(0, 69)])),
            "a gap under a part head merges"
        );
        assert_eq!(parse_ranges("bytes=0-9,9000-,-500", len), Some(Ok(vec![(0, 9), (9000, 9999)])));
        assert_eq!(
            parse_ranges("bytes=0-1,20000-", len),
            Some(Ok(vec![(0, 1)])),
            "unsatisfiable ones are dropped"
        );
        assert_eq!(parse_ranges("bytes=20000-,30000-", len), Some(Err(())));
        assert_eq!(parse_ranges("bytes=0-1,x", len), None, "one malformed spec: the whole header is ignored");
        let many = (0..MAX_RANGES).map(|i| format!("{}-{}", i * 200, i * 200)).collect::<Vec<_>>().join(",");
        assert_eq!(
            parse_ranges(&format!("bytes={many}"), len).map(|r| r.map(|v| v.len())),
            Some(Ok(MAX_RANGES))
        );
        assert_eq!(parse_ranges(&format!("bytes={many},0-0"), len), None, "more than MAX_RANGES: ignored");
    }

    #[test]
    fn a_multipart_body_has_exact_parts_and_length() {
        let (parts, b) = byteranges(&[(0, 1), (5, 6)], 10, Some(&HeaderValue::from_static("text/plain")));
        let heads: Vec<String> = parts
            .iter()
            .filter_map(|p| match p {
                Segment::Bytes(b) => Some(String::from_utf8_lossy(b).into_owned()),
                Segment::File { .. } => None,
            })
            .collect();
        assert_eq!(
            heads[0],
            format!("--{b}\r\nContent-Type: text/plain\r\nContent-Range: bytes 0-1/10\r\n\r\n")
        );
        assert_eq!(
            heads[1],
            format!("\r\n--{b}\r\nContent-Type: text/plain\r\nContent-Range: bytes 5-6/10\r\n\r\n")
        );
        assert_eq!(heads[2], format!("\r\n--{b}--\r\n"));
        assert_ne!(boundary(), boundary(), "boundaries differ per response");
    }

    #[test]
    fn if_none_match_compares_weakly() {
        assert!(none_match("\"a\", W/\"b\"", "\"b\""));
        assert!(none_match("*", "\"x\""));
        assert!(!none_match("\"c\"", "\"b\""));
    }

    #[test]
    fn resolve_refuses_to_leave_the_root() {
        let dir = std::env::temp_dir().join(format!("cz-static-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("sub")).expect("dir");
        std::fs::write(dir.join("sub/a.txt"), "a").expect("file");
        std::fs::write(dir.join(".secret"), "s").expect("file");
        std::fs::write(dir.join("index.html"), "i").expect("file");
        let o = StaticOptions::default();
        assert_eq!(resolve(&dir, "sub/a.txt", &o), dir.join("sub/a.txt").canonicalize().ok());
        assert_eq!(resolve(&dir, "sub%2Fa.txt", &o), dir.join("sub/a.txt").canonicalize().ok());
        assert_eq!(resolve(&dir, "", &o), dir.join("index.html").canonicalize().ok());
        for bad in ["../etc/passwd", "sub/../../x", "%2e%2e/x", ".secret", "sub\\a.txt", "a%00b", "missing"] {
            assert_eq!(resolve(&dir, bad, &o), None, "{bad}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn regression_static_symlink_escape_through_index_and_dotfile_links() {
        let base = std::env::temp_dir().join(format!("cz-static-links-{}", std::process::id()));
        let dir = base.join("root");
        std::fs::create_dir_all(dir.join("sub")).expect("dir");
        std::fs::write(base.join("outside.txt"), "secret").expect("file");
        std::fs::write(dir.join(".env"), "SECRET=1").expect("file");
        std::fs::write(dir.join("ok.txt"), "ok").expect("file");
        std::os::unix::fs::symlink(base.join("outside.txt"), dir.join("sub/index.html")).expect("link");
        std::os::unix::fs::symlink(dir.join(".env"), dir.join("visible")).expect("link");
        std::os::unix::fs::symlink(dir.join("ok.txt"), dir.join("alias.txt")).expect("link");
        let o = StaticOptions::default();
        assert_eq!(resolve(&dir, "sub/", &o), None, "index.html linking outside the root");
        assert_eq!(resolve(&dir, "sub", &o), None, "the same without the trailing slash");
        assert_eq!(resolve(&dir, "visible", &o), None, "a plain name linking to a dotfile");
        assert_eq!(
            resolve(&dir, "alias.txt", &o),
            dir.join("ok.txt").canonicalize().ok(),
            "links inside are fine"
        );
        let with_dots = StaticOptions { dotfiles: true, ..StaticOptions::default() };
        assert!(resolve(&dir, "visible", &with_dots).is_some(), "dotfiles: true allows it");
        let c = Confinement::new(&dir, false).expect("root");
        assert!(c.open(&dir.join("visible")).is_err());
        assert!(c.open(&dir.join("sub/index.html")).is_err());
        assert!(c.open(&dir.join("../root/../outside.txt")).is_err());
        assert!(c.open(&dir.join("alias.txt")).is_ok());
        let _ = std::fs::remove_dir_all(&base);
    }
}
