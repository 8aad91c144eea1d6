//! Method + path routing on top of `matchit`, with `:param` segments and a trailing `*` wildcard.

use http::Method;
use std::collections::HashMap;

/// Why a route could not be added.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteError(pub String);

impl std::fmt::Display for RouteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for RouteError {}

/// The outcome of routing one request.
#[derive(Debug, PartialEq, Eq)]
pub enum RouteMatch<T> {
    /// A route matched: its value and the extracted parameters in path order.
    Found(T, Vec<(String, String)>),
    /// The path exists but not for this method; the value is the `Allow` header.
    MethodNotAllowed(String),
    /// No route has this path.
    NotFound,
}

/// Methods a route entry can be registered for. `ANY` matches every method.
#[derive(Debug, Clone)]
struct Entry<T> {
    by_method: HashMap<Method, T>,
    any: Option<T>,
    /// The pattern as first registered, to name it when a later one clashes.
    pattern: String,
}

/// Path parameters one route may have: matchit names them `a`..`z` internally and panics past
/// that (26), so a longer route is refused here with an error instead.
pub const MAX_PARAMS: usize = 25;

/// Wildcard parameter name exposed to handlers for a bare trailing `*`.
pub const WILDCARD: &str = "*";

/// A router from `(method, path)` to a value (a handler id in practice).
#[derive(Debug, Clone)]
pub struct Router<T> {
    tree: matchit::Router<usize>,
    entries: Vec<Entry<T>>,
    patterns: HashMap<String, usize>,
    /// Answers paths no route matches (a not-found handler), instead of [`RouteMatch::NotFound`].
    fallback: Option<T>,
}

impl<T> Default for Router<T> {
    fn default() -> Self {
        Self { tree: matchit::Router::new(), entries: Vec::new(), patterns: HashMap::new(), fallback: None }
    }
}

/// Converts a user pattern (`/users/:id/files/*`) to matchit syntax (`/users/{id}/files/{*__cz_wild}`).
fn to_matchit(pattern: &str) -> Result<String, RouteError> {
    if !pattern.starts_with('/') {
        return Err(RouteError(format!("route {pattern:?} must start with '/'")));
    }
    let mut out = String::with_capacity(pattern.len() + 8);
    let segments: Vec<&str> = pattern.split('/').collect();
    let mut names: Vec<&str> = Vec::new();
    let last = segments.len() - 1;
    for (i, seg) in segments.iter().enumerate() {
        if i > 0 {
            out.push('/');
        }
        if seg.contains('{') || seg.contains('}') {
            return Err(RouteError(format!("route {pattern:?}: '{{' and '}}' are not allowed")));
        }
        if let Some(name) = seg.strip_prefix(':') {
            // `__cz_wild` is the internal name of a bare `*`: a param of that name would alias it.
            if name.is_empty() || name.contains(':') || name.contains('*') || name == "__cz_wild" {
                return Err(RouteError(format!("route {pattern:?}: bad parameter {seg:?}")));
            }
            if names.contains(&name) {
                return Err(RouteError(format!("route {pattern:?}: parameter {name:?} appears twice")));
            }
            names.push(name);
            if names.len() > MAX_PARAMS {
                return Err(RouteError(format!("route {pattern:?}: more than {MAX_PARAMS} parameters")));
            }
            out.push('{');
            out.push_str(name);
            out.push('}');
        } else if let Some(name) = seg.strip_prefix('*') {
            if i != last {
                return Err(RouteError(format!("route {pattern:?}: '*' must be the last segment")));
            }
            if !name.is_empty() && names.contains(&name) {
                return Err(RouteError(format!("route {pattern:?}: parameter {name:?} appears twice")));
            }
            out.push_str("{*");
            out.push_str(if name.is_empty() { "__cz_wild" } else { name });
            out.push('}');
        } else if seg.contains('*') || seg.contains(':') {
            return Err(RouteError(format!("route {pattern:?}: ':' and '*' must start a segment")));
        } else {
            out.push_str(seg);
        }
    }
    Ok(out)
}

/// Rewrites matchit's `{name}` / `{*name}` syntax in a message back to the user's `:name` / `*name`.
fn from_matchit(msg: &str) -> String {
    let mut out = String::with_capacity(msg.len());
    let mut rest = msg;
    while let Some(i) = rest.find('{') {
        out.push_str(&rest[..i]);
        let Some(j) = rest[i..].find('}') else { break };
        let inner = &rest[i + 1..i + j];
        match inner.strip_prefix('*') {
            Some("__cz_wild") => out.push('*'),
            Some(name) => {
                out.push('*');
                out.push_str(name);
            }
            None => {
                out.push(':');
                out.push_str(inner);
            }
        }
        rest = &rest[i + j + 1..];
    }
    out.push_str(rest);
    out
}

impl<T: Clone> Router<T> {
    /// Creates an empty router.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a route. `method` `None` registers the value for every method. Registering the same
    /// method and path twice is an error naming both registrations (silently replacing the first
    /// handler hides bugs).
    pub fn add(&mut self, method: Option<Method>, pattern: &str, value: T) -> Result<(), RouteError> {
        let key = to_matchit(pattern)?;
        let idx = match self.patterns.get(&key) {
            Some(&idx) => idx,
            None => {
                let idx = self.entries.len();
                // `to_matchit` keeps routes within matchit's limits; a panic left in it must still
                // not unwind through the caller (the Node binding would abort the process).
                let inserted = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    self.tree.insert(key.clone(), idx)
                }))
                .map_err(|_| RouteError(format!("route {pattern:?}: rejected by the router")))?;
                inserted.map_err(|e| {
                    RouteError(format!("route {pattern:?}: {}", from_matchit(&e.to_string())))
                })?;
                self.entries.push(Entry {
                    by_method: HashMap::new(),
                    any: None,
                    pattern: pattern.to_owned(),
                });
                self.patterns.insert(key, idx);
                idx
            }
        };
        let entry = &mut self.entries[idx];
        let taken = match &method {
            Some(m) => entry.by_method.contains_key(m),
            None => entry.any.is_some(),
        };
        if taken {
            let what = method.as_ref().map_or("ALL", Method::as_str);
            return Err(RouteError(format!(
                "route {what} {pattern:?} is already registered (as {what} {:?})",
                entry.pattern
            )));
        }
        match method {
            Some(m) => {
                entry.by_method.insert(m, value);
            }
            None => entry.any = Some(value),
        }
        Ok(())
    }

    /// Sets the value for paths no route matches (every method); a known path with another
    /// method still reports [`RouteMatch::MethodNotAllowed`].
    pub fn set_fallback(&mut self, value: T) {
        self.fallback = Some(value);
    }

    /// Routes a request. `HEAD` falls back to the `GET` route when no `HEAD` route exists.
    pub fn find(&self, method: &Method, path: &str) -> RouteMatch<T> {
        let Ok(m) = self.tree.at(path) else {
            return match &self.fallback {
                Some(v) => RouteMatch::Found(v.clone(), Vec::new()),
                None => RouteMatch::NotFound,
            };
        };
        let entry = &self.entries[*m.value];
        let value = entry
            .by_method
            .get(method)
            .or_else(|| (method == Method::HEAD).then(|| entry.by_method.get(&Method::GET)).flatten())
            .or(entry.any.as_ref());
        match value {
            Some(v) => {
                let params = m
                    .params
                    .iter()
                    .map(|(k, v)| (if k == "__cz_wild" { WILDCARD } else { k }.to_owned(), v.to_owned()))
                    .collect();
                RouteMatch::Found(v.clone(), params)
            }
            None => {
                let mut allow: Vec<&str> = entry.by_method.keys().map(Method::as_str).collect();
                if entry.by_method.contains_key(&Method::GET) && !entry.by_method.contains_key(&Method::HEAD)
                {
                    allow.push("HEAD");
                }
                allow.sort_unstable();
                RouteMatch::MethodNotAllowed(allow.join(", "))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn router() -> Router<u32> {
        let mut r = Router::new();
        r.add(Some(Method::GET), "/", 1).unwrap();
        r.add(Some(Method::GET), "/users/:id", 2).unwrap();
        r.add(Some(Method::POST), "/users/:id", 3).unwrap();
        r.add(Some(Method::GET), "/files/*", 4).unwrap();
        r.add(None, "/any", 5).unwrap();
        r.add(Some(Method::GET), "/a/:x/b/:y", 6).unwrap();
        r
    }

    #[test]
    fn static_route_matches_exactly() {
        assert_eq!(router().find(&Method::GET, "/"), RouteMatch::Found(1, vec![]));
    }

    #[test]
    fn params_are_extracted_in_order() {
        assert_eq!(
            router().find(&Method::GET, "/a/1/b/two"),
            RouteMatch::Found(6, vec![("x".into(), "1".into()), ("y".into(), "two".into())])
        );
    }

    #[test]
    fn method_selects_the_handler() {
        assert_eq!(
            router().find(&Method::POST, "/users/7"),
            RouteMatch::Found(3, vec![("id".into(), "7".into())])
        );
    }

    #[test]
    fn wrong_method_reports_allow_header() {
        assert_eq!(
            router().find(&Method::DELETE, "/users/7"),
            RouteMatch::MethodNotAllowed("GET, HEAD, POST".into())
        );
    }

    #[test]
    fn head_falls_back_to_get() {
        assert_eq!(router().find(&Method::HEAD, "/"), RouteMatch::Found(1, vec![]));
    }

    #[test]
    fn wildcard_captures_the_rest() {
        assert_eq!(
            router().find(&Method::GET, "/files/a/b.txt"),
            RouteMatch::Found(4, vec![("*".into(), "a/b.txt".into())])
        );
    }

    #[test]
    fn unknown_path_is_not_found() {
        assert_eq!(router().find(&Method::GET, "/nope"), RouteMatch::NotFound);
        assert_eq!(router().find(&Method::GET, "/users"), RouteMatch::NotFound);
    }

    #[test]
    fn any_method_route_matches_all_methods() {
        assert_eq!(router().find(&Method::PATCH, "/any"), RouteMatch::Found(5, vec![]));
    }

    #[test]
    fn bad_patterns_are_rejected() {
        let mut r = Router::new();
        assert!(r.add(None, "nope", 1).is_err());
        assert!(r.add(None, "/a/*/b", 1).is_err());
        assert!(r.add(None, "/a/b:c", 1).is_err());
        assert!(r.add(None, "/a/{x}", 1).is_err());
    }

    #[test]
    fn conflicting_params_are_reported_in_the_users_syntax() {
        let mut r = Router::new();
        r.add(None, "/u/:id", 1).unwrap();
        let e = r.add(None, "/u/:name", 2).unwrap_err().0;
        assert!(e.contains("/u/:id") && !e.contains('{'), "{e}");
        r.add(None, "/f/*", 3).unwrap();
        let e = r.add(None, "/f/*rest", 4).unwrap_err().0;
        assert!(!e.contains('{') && !e.contains("__cz_wild"), "{e}");
    }

    #[test]
    fn a_fallback_answers_unknown_paths_but_not_wrong_methods() {
        let mut r = router();
        r.set_fallback(99);
        assert_eq!(r.find(&Method::GET, "/nope"), RouteMatch::Found(99, vec![]));
        assert_eq!(
            r.find(&Method::DELETE, "/users/7"),
            RouteMatch::MethodNotAllowed("GET, HEAD, POST".into())
        );
    }

    #[test]
    fn regression_duplicate_routes_are_an_error_naming_both() {
        let mut r = Router::new();
        r.add(Some(Method::GET), "/x", 1).unwrap();
        let e = r.add(Some(Method::GET), "/x", 2).unwrap_err();
        assert_eq!(e.0, "route GET \"/x\" is already registered (as GET \"/x\")");
        assert_eq!(r.find(&Method::GET, "/x"), RouteMatch::Found(1, vec![]), "the first one stays");
        r.add(Some(Method::POST), "/x", 3).unwrap();
        r.add(None, "/x", 4).unwrap();
        assert!(r.add(None, "/x", 5).is_err());
    }

    #[test]
    fn regression_duplicate_param_names_are_an_error() {
        let mut r = Router::new();
        assert!(r.add(None, "/u/:id/:id", 1).unwrap_err().0.contains("\"id\" appears twice"));
        assert!(r.add(None, "/u/:rest/*rest", 1).is_err());
        assert!(r.add(None, "/u/:a/:b", 1).is_ok());
        assert!(r.add(None, "/w/:__cz_wild/*", 1).is_err(), "the wildcard's internal name");
    }

    #[test]
    fn regression_a_route_with_26_parameters_is_an_error_not_a_panic() {
        let mut r = Router::new();
        let pattern = |n: usize| (0..n).map(|i| format!("/:p{i}")).collect::<String>();
        assert!(r.add(None, &pattern(MAX_PARAMS), 1).is_ok());
        for n in [MAX_PARAMS + 1, 40] {
            let e = r.add(None, &format!("/x{}", pattern(n)), 1).unwrap_err();
            assert!(e.0.contains("more than 25 parameters"), "{e}");
        }
        let path: String = (0..MAX_PARAMS).map(|i| format!("/{i}")).collect();
        assert!(matches!(r.find(&Method::GET, &path), RouteMatch::Found(1, p) if p.len() == MAX_PARAMS));
    }
}
