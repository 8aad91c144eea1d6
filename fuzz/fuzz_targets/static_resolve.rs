//! Static files: whatever the request path, `resolve` returns only existing files inside the root, never a dotfile or the outside file.
#![no_main]

use arbitrary::Arbitrary;
use catzilla_core::files::{resolve, StaticOptions};
use libfuzzer_sys::fuzz_target;
use std::path::{Component, PathBuf};
use std::sync::OnceLock;

/// The test tree, built once per process:
///
/// ```text
/// base/outside.txt              the secret outside the root
/// base/outdir/x.txt             an outside directory
/// base/root/index.html
/// base/root/a.txt
/// base/root/.env                a dotfile
/// base/root/.hidden/c.txt       a file in a dot-directory
/// base/root/sub/b.txt
/// base/root/sub/index.html      a plain file (index of sub/)
/// base/root/dir/index.html  ->  base/outside.txt (symlink leaving the root)
/// base/root/visible         ->  root/.env (a harmless name for a dotfile)
/// base/root/alias.txt       ->  a.txt (a link inside the root: fine)
/// base/root/escape          ->  base/outside.txt
/// base/root/outlink         ->  base/outdir (a directory link leaving the root)
/// base/root/up              ->  .. (the parent of the root)
/// base/root/dotdir          ->  .hidden
/// ```
struct Tree {
    base: PathBuf,
    root: PathBuf,
    /// The canonical root, what every result must start with.
    canonical_root: PathBuf,
    /// Canonical paths of files outside the root.
    outside: Vec<PathBuf>,
}

static TREE: OnceLock<Tree> = OnceLock::new();

extern "C" fn remove_tree() {
    if let Some(t) = TREE.get() {
        let _ = std::fs::remove_dir_all(&t.base);
    }
}

fn tree() -> &'static Tree {
    TREE.get_or_init(|| {
        use std::os::unix::fs::symlink;
        let base = std::env::temp_dir().join(format!("catzilla-fuzz-static-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        let root = base.join("root");
        for d in [root.join("sub"), root.join(".hidden"), base.join("outdir")] {
            std::fs::create_dir_all(d).expect("mkdir");
        }
        for (f, body) in [
            (base.join("outside.txt"), "outside"),
            (base.join("outdir/x.txt"), "outside dir"),
            (root.join("index.html"), "index"),
            (root.join("a.txt"), "a"),
            (root.join(".env"), "SECRET=1"),
            (root.join(".hidden/c.txt"), "hidden"),
            (root.join("sub/b.txt"), "b"),
            (root.join("sub/index.html"), "sub index"),
        ] {
            std::fs::write(f, body).expect("write");
        }
        std::fs::create_dir_all(root.join("dir")).expect("mkdir");
        for (target, link) in [
            (base.join("outside.txt"), root.join("dir/index.html")),
            (root.join(".env"), root.join("visible")),
            (PathBuf::from("a.txt"), root.join("alias.txt")),
            (base.join("outside.txt"), root.join("escape")),
            (base.join("outdir"), root.join("outlink")),
            (PathBuf::from(".."), root.join("up")),
            (PathBuf::from(".hidden"), root.join("dotdir")),
        ] {
            symlink(target, link).expect("symlink");
        }
        let canonical_root = root.canonicalize().expect("root");
        let outside = [base.join("outside.txt"), base.join("outdir/x.txt")]
            .iter()
            .map(|p| p.canonicalize().expect("outside"))
            .collect();
        // SAFETY: `remove_tree` is a plain `extern "C" fn()` that only touches the initialised TREE.
        unsafe {
            libc::atexit(remove_tree);
        }
        Tree { base, root, canonical_root, outside }
    })
}

#[derive(Arbitrary, Debug)]
struct Input<'a> {
    rel: Rel<'a>,
    dotfiles: bool,
    index: Index<'a>,
}

#[derive(Arbitrary, Debug)]
enum Rel<'a> {
    Raw(&'a [u8]),
    Pieces(Vec<Piece<'a>>),
}

#[derive(Arbitrary, Debug)]
enum Piece<'a> {
    Slash,
    Dot,
    DotDot,
    /// `%2e%2e`, `%2E.`, `.%2e`.
    EncodedDotDot(u8),
    /// `%2F` / `%2f`.
    EncodedSlash(bool),
    /// `%5C` or a raw backslash.
    Backslash(bool),
    /// `%00` or a raw NUL.
    Nul(bool),
    /// `%` followed by two arbitrary bytes (possibly invalid hex or invalid UTF-8 once decoded).
    Percent(u8, u8),
    Name(Name),
    Raw(&'a str),
}

#[derive(Arbitrary, Debug)]
enum Name {
    IndexHtml,
    ATxt,
    Env,
    Hidden,
    CTxt,
    Sub,
    BTxt,
    Dir,
    Visible,
    Alias,
    Escape,
    Outlink,
    XTxt,
    Up,
    Dotdir,
    Root,
    OutsideTxt,
}

#[derive(Arbitrary, Debug)]
enum Index<'a> {
    Default,
    None,
    Sneaky(u8),
    Raw(&'a str),
}

/// Entries of the tree as a client could name them (through the links too).
const KNOWN: [&str; 24] = [
    "",
    "index.html",
    "a.txt",
    ".env",
    ".hidden",
    ".hidden/c.txt",
    "sub",
    "sub/b.txt",
    "sub/index.html",
    "dir",
    "dir/index.html",
    "visible",
    "alias.txt",
    "escape",
    "outlink",
    "outlink/x.txt",
    "up",
    "up/outside.txt",
    "up/root/a.txt",
    "up/root/.env",
    "up/outdir/x.txt",
    "dotdir",
    "dotdir/c.txt",
    "up/root/visible",
];

/// Coverage only sees code, and every path takes the same code in `resolve`: give each named
/// entry and each result its own branch, so the fuzzer keeps inputs that reach a new one.
fn feedback(rel: &str, result: Option<&std::path::Path>, root: &std::path::Path) {
    let decoded = percent_encoding_lossy(rel);
    let named: Vec<&str> = decoded.split('/').filter(|s| !s.is_empty() && *s != ".").collect();
    let named = named.join("/");
    let reached = result.and_then(|p| p.strip_prefix(root).ok()).and_then(|p| p.to_str());
    macro_rules! branch {
        ($($i:literal)*) => {$(
            if named == KNOWN[$i] {
                std::hint::black_box($i);
            }
            if reached == Some(KNOWN[$i]) {
                std::hint::black_box($i + 100);
            }
        )*};
    }
    branch!(0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23);
}

/// `%XX` decoding, invalid escapes and UTF-8 kept as they are (for [`feedback`] only).
fn percent_encoding_lossy(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| char::from(c).to_digit(16);
        match (b[i], b.get(i + 1).and_then(|&c| hex(c)), b.get(i + 2).and_then(|&c| hex(c))) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (c, _, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fuzz_target!(|input: Input<'_>| {
    let t = tree();
    let rel = match &input.rel {
        Rel::Raw(b) => String::from_utf8_lossy(b).into_owned(),
        Rel::Pieces(pieces) => {
            let mut s = String::new();
            for p in pieces {
                match p {
                    Piece::Slash => s.push('/'),
                    Piece::Dot => s.push('.'),
                    Piece::DotDot => s.push_str(".."),
                    Piece::EncodedDotDot(n) => {
                        s.push_str(["%2e%2e", "%2E.", ".%2e", "%2E%2E"][usize::from(n % 4)])
                    }
                    Piece::EncodedSlash(upper) => s.push_str(if *upper { "%2F" } else { "%2f" }),
                    Piece::Backslash(encoded) => s.push_str(if *encoded { "%5C" } else { "\\" }),
                    Piece::Nul(encoded) => s.push_str(if *encoded { "%00" } else { "\0" }),
                    Piece::Percent(a, b) => {
                        s.push('%');
                        s.push(char::from(*a & 0x7f));
                        s.push(char::from(*b & 0x7f));
                    }
                    Piece::Name(n) => s.push_str(match n {
                        Name::IndexHtml => "index.html",
                        Name::ATxt => "a.txt",
                        Name::Env => ".env",
                        Name::Hidden => ".hidden",
                        Name::CTxt => "c.txt",
                        Name::Sub => "sub",
                        Name::BTxt => "b.txt",
                        Name::Dir => "dir",
                        Name::Visible => "visible",
                        Name::Alias => "alias.txt",
                        Name::Escape => "escape",
                        Name::Outlink => "outlink",
                        Name::XTxt => "x.txt",
                        Name::Up => "up",
                        Name::Dotdir => "dotdir",
                        Name::Root => "root",
                        Name::OutsideTxt => "outside.txt",
                    }),
                    Piece::Raw(r) => s.push_str(r),
                }
            }
            s
        }
    };
    let index = match &input.index {
        Index::Default => Some("index.html".to_owned()),
        Index::None => None,
        Index::Sneaky(n) => Some(
            [
                "../outside.txt",
                "../../outside.txt",
                ".env",
                "/etc/passwd",
                "../root/a.txt",
                "sub/b.txt",
                ".",
                "",
            ][usize::from(n % 8)]
            .to_owned(),
        ),
        Index::Raw(r) => Some((*r).to_owned()),
    };
    let opts = StaticOptions { index, dotfiles: input.dotfiles, cache_control: None };
    let result = resolve(&t.root, &rel, &opts);
    feedback(&rel, result.as_deref(), &t.canonical_root);
    let Some(path) = result else { return };

    let below = path
        .strip_prefix(&t.canonical_root)
        .unwrap_or_else(|_| panic!("{rel:?} resolved outside the root: {path:?}"));
    assert!(path.exists(), "{rel:?} resolved to a missing path {path:?}");
    assert!(!t.outside.contains(&path), "{rel:?} resolved to the outside file {path:?}");
    assert_eq!(
        path.canonicalize().ok().as_deref(),
        Some(path.as_path()),
        "{rel:?}: {path:?} is not canonical"
    );
    for c in below.components() {
        let Component::Normal(part) = c else { panic!("{rel:?}: {path:?} has a {c:?} component") };
        if !input.dotfiles {
            assert!(
                !part.to_string_lossy().starts_with('.'),
                "{rel:?} resolved to a dotfile {path:?} with dotfiles off"
            );
        }
    }
});
