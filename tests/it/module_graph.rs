//! The module graph of `src/` is a DAG (the README's Architecture section): no two files
//! import each other, directly or around a circle. Imports are read from `use crate::…` and
//! `use super::…` declarations; each resolves to the file of the longest module path named.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Every `.rs` file under `dir`, with its module path (`providers::anthropic::stream`).
fn modules(dir: &Path, prefix: &[String], out: &mut BTreeMap<Vec<String>, PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        let name = path.file_stem().unwrap().to_string_lossy().to_string();
        if path.is_dir() {
            let mut inner = prefix.to_vec();
            inner.push(name);
            modules(&path, &inner, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let mut module = prefix.to_vec();
            let is_test = name == "tests" || prefix.iter().any(|p| p == "tests");
            // The binary's root stands apart; the library's root is the crate.
            if is_test || name == "main" {
                continue;
            }
            if !matches!(name.as_str(), "mod" | "lib") {
                module.push(name);
            }
            out.insert(module, path);
        }
    }
}

/// The `use` declarations of a source (before its unit tests), each as one line of text.
fn uses(source: &str) -> Vec<String> {
    let source = source.split("#[cfg(test)]").next().unwrap_or_default();
    let mut out = Vec::new();
    let mut current: Option<String> = None;
    for line in source.lines().map(str::trim) {
        if let Some(text) = current.as_mut() {
            text.push_str(line);
        } else if line.starts_with("use ") || line.starts_with("pub use ") {
            current = Some(line.to_string());
        }
        if current.as_ref().is_some_and(|t| t.ends_with(';')) {
            out.extend(current.take());
        }
    }
    out
}

/// The module paths a `use` names: `crate::a::{b, c::d}` → a::b, a::c::d (`self` is `a`).
fn paths(text: &str) -> Vec<Vec<String>> {
    fn expand(prefix: Vec<String>, rest: &str, out: &mut Vec<Vec<String>>) {
        let rest = rest.trim().trim_end_matches(';').trim();
        if let Some(inner) = rest.strip_prefix('{').and_then(|r| r.strip_suffix('}')) {
            let mut depth = 0;
            let mut start = 0;
            for (i, c) in inner.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        expand(prefix.clone(), &inner[start..i], out);
                        start = i + 1;
                    }
                    _ => {}
                }
            }
            expand(prefix, &inner[start..], out);
            return;
        }
        let mut path = prefix;
        let (head, tail) = match rest.split_once("::") {
            Some((h, t)) => (h, Some(t)),
            None => (rest, None),
        };
        let head = head.split(" as ").next().unwrap_or_default().trim();
        if head.is_empty() || head == "*" {
            out.push(path);
            return;
        }
        if head != "self" {
            path.push(head.to_string());
        }
        match tail {
            Some(t) => expand(path, t, out),
            None => out.push(path),
        }
    }
    let text = text
        .trim_start_matches("pub ")
        .trim_start_matches("use ")
        .trim();
    let mut out = Vec::new();
    expand(Vec::new(), text, &mut out);
    out
}

#[test]
fn src_modules_import_each_other_without_a_circle() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = BTreeMap::new();
    modules(&src, &[], &mut files);
    let file_of = |path: &[String]| {
        (0..=path.len())
            .rev()
            .find_map(|n| files.get(&path[..n]).cloned())
    };
    let mut edges: BTreeMap<PathBuf, BTreeSet<PathBuf>> = BTreeMap::new();
    for (module, file) in &files {
        let source = std::fs::read_to_string(file).unwrap();
        for text in uses(&source) {
            for path in paths(&text) {
                let absolute = match path.first().map(String::as_str) {
                    Some("crate") => path[1..].to_vec(),
                    Some("super") => {
                        let parent = &module[..module.len().saturating_sub(1)];
                        parent.iter().chain(&path[1..]).cloned().collect()
                    }
                    _ => continue,
                };
                if let Some(target) = file_of(&absolute).filter(|t| t != file) {
                    edges.entry(file.clone()).or_default().insert(target);
                }
            }
        }
    }
    // A depth-first search for a back edge.
    fn visit(
        node: &PathBuf,
        edges: &BTreeMap<PathBuf, BTreeSet<PathBuf>>,
        on_path: &mut Vec<PathBuf>,
        done: &mut BTreeSet<PathBuf>,
    ) -> Option<Vec<PathBuf>> {
        if let Some(i) = on_path.iter().position(|n| n == node) {
            return Some(on_path[i..].to_vec());
        }
        if !done.insert(node.clone()) {
            return None;
        }
        on_path.push(node.clone());
        for next in edges.get(node).into_iter().flatten() {
            if let Some(circle) = visit(next, edges, on_path, done) {
                return Some(circle);
            }
        }
        on_path.pop();
        None
    }
    let mut done = BTreeSet::new();
    for node in edges.keys() {
        let circle = visit(node, &edges, &mut Vec::new(), &mut done);
        assert!(circle.is_none(), "an import circle: {circle:#?}");
    }
    assert!(
        edges.len() > 30,
        "the graph was read: {} files",
        edges.len()
    );
}
