//! Every `#[napi]` function catches panics: without `catch_unwind` a panic unwinding out of an
//! `extern "C"` napi callback aborts the whole Node process.

use std::path::Path;

#[test]
fn every_napi_function_catches_panics() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut missing = Vec::new();
    let mut checked = 0;
    for entry in std::fs::read_dir(&src).expect("src dir") {
        let path = entry.expect("entry").path();
        let text = std::fs::read_to_string(&path).expect("source");
        let lines: Vec<&str> = text.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            let l = line.trim();
            if !l.starts_with("#[napi") || l.starts_with("#[napi(object") {
                continue;
            }
            let next = lines[i + 1..]
                .iter()
                .map(|l| l.trim())
                .find(|l| !l.starts_with("#[") && !l.starts_with("///"));
            if next.is_some_and(|n| n.contains("fn ")) {
                checked += 1;
                if !l.contains("catch_unwind") {
                    missing.push(format!("{}:{}", path.display(), i + 1));
                }
            }
        }
    }
    assert!(checked > 20, "found only {checked} #[napi] functions");
    assert!(missing.is_empty(), "#[napi] functions without catch_unwind: {missing:?}");
}
