//! Router: arbitrary patterns are added or refused without panicking, and a match carries one param per `:`/`*` segment.
#![no_main]

use arbitrary::Arbitrary;
use catzilla_core::http::Method;
use catzilla_core::router::{RouteMatch, Router, MAX_PARAMS};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Input<'a> {
    routes: Vec<(Meth<'a>, bool, Pattern<'a>)>,
    lookups: Vec<(Meth<'a>, Pattern<'a>)>,
}

#[derive(Arbitrary, Debug)]
enum Meth<'a> {
    Get,
    Head,
    Post,
    Delete,
    Raw(&'a str),
}

impl Meth<'_> {
    fn method(&self) -> Method {
        match self {
            Meth::Get => Method::GET,
            Meth::Head => Method::HEAD,
            Meth::Post => Method::POST,
            Meth::Delete => Method::DELETE,
            Meth::Raw(s) => Method::from_bytes(s.as_bytes()).unwrap_or(Method::PATCH),
        }
    }
}

#[derive(Arbitrary, Debug)]
enum Pattern<'a> {
    Raw(&'a str),
    Segments(Vec<Seg<'a>>, bool),
    /// `n` params in a row (the matchit limit is 26 names).
    Many(u8, bool),
}

#[derive(Arbitrary, Debug)]
enum Seg<'a> {
    Static(&'a str),
    Param(&'a str),
    ParamN(u8),
    Wild(&'a str),
    Empty,
}

impl Pattern<'_> {
    fn build(&self) -> String {
        match self {
            Pattern::Raw(s) => (*s).to_owned(),
            Pattern::Segments(segs, slash) => {
                let mut s = String::new();
                for seg in segs {
                    s.push('/');
                    match seg {
                        Seg::Static(t) => s.push_str(t),
                        Seg::Param(t) => {
                            s.push(':');
                            s.push_str(t);
                        }
                        Seg::ParamN(n) => s.push_str(&format!(":p{n}")),
                        Seg::Wild(t) => {
                            s.push('*');
                            s.push_str(t);
                        }
                        Seg::Empty => {}
                    }
                }
                if *slash || s.is_empty() {
                    s.push('/');
                }
                s
            }
            Pattern::Many(n, wild) => {
                let mut s: String = (0..*n % 40).map(|i| format!("/:p{i}")).collect();
                if *wild {
                    s.push_str("/*rest");
                }
                if s.is_empty() {
                    s.push('/');
                }
                s
            }
        }
    }
}

/// Parameters a pattern declares: one per segment starting with `:` or `*`.
fn declared(pattern: &str) -> usize {
    pattern.split('/').filter(|s| s.starts_with(':') || s.starts_with('*')).count()
}

fuzz_target!(|input: Input<'_>| {
    let mut router: Router<u32> = Router::new();
    let mut added: Vec<String> = Vec::new();
    for (i, (meth, any, pattern)) in input.routes.iter().enumerate().take(64) {
        let pattern = pattern.build();
        let method = (!any).then(|| meth.method());
        if router.add(method, &pattern, i as u32).is_ok() {
            // More names than matchit supports must be refused by the router's own check (a
            // matchit panic, even one caught inside the router, aborts under the fuzzer).
            let named = pattern.split('/').filter(|s| s.starts_with(':')).count();
            assert!(named <= MAX_PARAMS, "{pattern:?} accepted with {named} parameters");
            added.push(pattern.clone());
        }
        // Look the pattern itself up too: the params stand for themselves.
        let _ = router.find(&meth.method(), &pattern);
    }
    let patterns: Vec<String> = input.routes.iter().take(64).map(|(_, _, p)| p.build()).collect();
    for (meth, path) in &input.lookups {
        let path = path.build();
        match router.find(&meth.method(), &path) {
            RouteMatch::Found(idx, params) => {
                let pattern = &patterns[idx as usize];
                assert!(added.contains(pattern), "{path:?} found a route that was refused: {pattern:?}");
                assert_eq!(
                    params.len(),
                    declared(pattern),
                    "{path:?} matched {pattern:?} with params {params:?}"
                );
                let mut names: Vec<&str> = params.iter().map(|(k, _)| k.as_str()).collect();
                names.sort_unstable();
                names.dedup();
                assert_eq!(names.len(), params.len(), "duplicate param names in {params:?}");
            }
            RouteMatch::MethodNotAllowed(allow) => {
                assert!(!allow.is_empty(), "{path:?}: 405 with an empty Allow");
            }
            RouteMatch::NotFound => {}
        }
    }
});
