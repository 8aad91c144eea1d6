//! Multipart: any body is read to the end or refused with 400/413/415, within the part count and part size limits.
#![no_main]

use arbitrary::Arbitrary;
use catzilla_core::multipart::{PartLimits, Parts};
use catzilla_core::{Bytes, RequestBody};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

const BOUNDARY: &str = "XyZ";

#[derive(Arbitrary, Debug)]
struct Input<'a> {
    body: Body<'a>,
    max_parts: u8,
    max_part_size: Option<u8>,
    /// Per part: read it fully (`true`) or skip it and let `next_part` drain it.
    read: Vec<bool>,
    content_type: &'a str,
}

#[derive(Arbitrary, Debug)]
enum Body<'a> {
    Raw(&'a [u8]),
    Pieces(Vec<Piece<'a>>),
}

#[derive(Arbitrary, Debug)]
enum Piece<'a> {
    /// `--XyZ\r\n`
    Boundary,
    /// `--XyZ--\r\n`
    Close,
    /// `--XyZ` without a line end, or with a lone LF.
    BoundaryBare(bool),
    Crlf,
    Disposition {
        name: Option<&'a str>,
        filename: Option<&'a str>,
    },
    ContentType(&'a str),
    Header(&'a str, &'a str),
    Data(&'a [u8]),
    /// A run of the same byte (long parts without a huge input).
    Fill(u8, u16),
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| tokio::runtime::Builder::new_current_thread().build().expect("runtime"))
}

fuzz_target!(|input: Input<'_>| {
    // The boundary parser of the Content-Type header, on its own.
    if let Some(b) = Parts::boundary(input.content_type) {
        let essence = input.content_type.split(';').next().unwrap_or("").trim();
        assert!(essence.eq_ignore_ascii_case("multipart/form-data"), "{:?} -> {b:?}", input.content_type);
    }

    let body = match &input.body {
        Body::Raw(b) => b.to_vec(),
        Body::Pieces(pieces) => {
            let mut v = Vec::new();
            for p in pieces {
                match p {
                    Piece::Boundary => v.extend_from_slice(b"--XyZ\r\n"),
                    Piece::Close => v.extend_from_slice(b"--XyZ--\r\n"),
                    Piece::BoundaryBare(lf) => {
                        v.extend_from_slice(b"--XyZ");
                        if *lf {
                            v.push(b'\n');
                        }
                    }
                    Piece::Crlf => v.extend_from_slice(b"\r\n"),
                    Piece::Disposition { name, filename } => {
                        v.extend_from_slice(b"Content-Disposition: form-data");
                        if let Some(n) = name {
                            v.extend_from_slice(format!("; name=\"{n}\"").as_bytes());
                        }
                        if let Some(f) = filename {
                            v.extend_from_slice(format!("; filename=\"{f}\"").as_bytes());
                        }
                        v.extend_from_slice(b"\r\n");
                    }
                    Piece::ContentType(t) => v.extend_from_slice(format!("Content-Type: {t}\r\n").as_bytes()),
                    Piece::Header(k, val) => v.extend_from_slice(format!("{k}: {val}\r\n").as_bytes()),
                    Piece::Data(d) => v.extend_from_slice(d),
                    Piece::Fill(b, n) => v.extend(std::iter::repeat_n(*b, usize::from(*n % 4096))),
                }
            }
            v
        }
    };
    let body_len = body.len() as u64;
    let limits = PartLimits {
        max_parts: usize::from(input.max_parts % 16),
        max_part_size: input.max_part_size.map(|n| u64::from(n) * 16),
    };
    let (max_parts, max_part_size) = (limits.max_parts, limits.max_part_size);
    let mut parts = Parts::new(RequestBody::Full(Bytes::from(body)), BOUNDARY, limits);

    runtime().block_on(async {
        let mut count = 0usize;
        let mut total = 0u64;
        let outcome = 'parts: loop {
            let head = match parts.next_part().await {
                Ok(Some(head)) => head,
                Ok(None) => break Ok(()),
                Err(e) => break Err(e),
            };
            count += 1;
            assert!(count <= max_parts, "part {count} handed out with max_parts {max_parts}");
            let _ = (head.name, head.filename, head.content_type, head.headers);
            if !input.read.get(count - 1).copied().unwrap_or(true) {
                continue;
            }
            let mut size = 0u64;
            loop {
                match parts.chunk().await {
                    Ok(Some(chunk)) => {
                        size += chunk.len() as u64;
                        if let Some(limit) = max_part_size {
                            assert!(size <= limit, "part of {size} bytes handed out with a limit of {limit}");
                        }
                    }
                    Ok(None) => break,
                    Err(e) => break 'parts Err(e),
                }
            }
            total += size;
            assert!(total <= body_len, "more part bytes ({total}) than body bytes ({body_len})");
        };
        if let Err(e) = outcome {
            assert!(matches!(e.status, 400 | 413 | 415), "status {} ({})", e.status, e.message);
            if e.status == 413 {
                assert!(count >= max_parts || max_part_size.is_some(), "413 without a limit: {}", e.message);
            }
        }
        // Once finished or failed, the parser stays quiet (no panic, no more parts).
        let _ = parts.next_part().await;
    });
});
