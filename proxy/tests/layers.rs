//! The proxy's modules import in layers, never in a circle: each module's
//! `crate::` paths (a crate-root re-export counts as the module it comes
//! from; unit tests and comments do not count) form a graph without
//! cycles. A circle (`h1` → `hop` → `service` → `h1`, through a
//! task-local, was one) makes the front ends depend on each other.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The source of a module without its unit tests and comments.
fn code(src: &str) -> String {
    let end = src.find("#[cfg(test)]\nmod tests").unwrap_or(src.len());
    src[..end]
        .lines()
        .filter(|line| !line.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The crate's modules by name: `src/x.rs`, with the files of `src/x/`.
fn modules() -> BTreeMap<String, String> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut modules: BTreeMap<String, String> = BTreeMap::new();
    for entry in std::fs::read_dir(&src).unwrap() {
        let path = entry.unwrap().path();
        let Some(name) = path.file_stem().and_then(|n| n.to_str()) else {
            continue;
        };
        if name == "lib" {
            continue;
        }
        let text = if path.is_dir() {
            let mut text = String::new();
            for file in std::fs::read_dir(&path).unwrap() {
                text += &code(&std::fs::read_to_string(file.unwrap().path()).unwrap());
                text.push('\n');
            }
            text
        } else {
            code(&std::fs::read_to_string(&path).unwrap())
        };
        modules.entry(name.to_string()).or_default().push_str(&text);
    }
    modules
}

/// The identifier at the start of `s`.
fn ident(s: &str) -> &str {
    let end = s
        .find(|c: char| !(c.is_alphanumeric() || c == '_'))
        .unwrap_or(s.len());
    &s[..end]
}

/// The first names of the paths in a `{...}` group at the start of `s`.
fn group(s: &str) -> Vec<&str> {
    let mut names = Vec::new();
    let mut depth = 0;
    let mut start = 1;
    for (i, c) in s.char_indices() {
        match c {
            '{' => depth += 1,
            '}' | ',' if depth == 1 => {
                names.push(ident(s[start..i].trim_start()));
                start = i + 1;
                if c == '}' {
                    break;
                }
            }
            '}' => depth -= 1,
            _ => {}
        }
    }
    names
}

/// The first segment of every `crate::` path in `text` (each of a group).
fn crate_paths(text: &str) -> Vec<&str> {
    let mut names = Vec::new();
    for (i, _) in text.match_indices("crate::") {
        let rest = &text[i + "crate::".len()..];
        if rest.starts_with('{') {
            names.extend(group(rest));
        } else {
            names.push(ident(rest));
        }
    }
    names
}

/// The crate root's re-exports: item name → the module it comes from.
fn reexports() -> BTreeMap<String, String> {
    let lib = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/lib.rs");
    let lib = code(&std::fs::read_to_string(lib).unwrap());
    let mut items = BTreeMap::new();
    for (i, _) in lib.match_indices("pub use ") {
        let rest = lib[i + "pub use ".len()..].trim_start_matches("crate::");
        let module = ident(rest);
        let path = &rest[module.len()..];
        let Some(path) = path.strip_prefix("::") else {
            continue;
        };
        let names = if path.starts_with('{') {
            group(path)
        } else {
            vec![ident(path)]
        };
        for name in names {
            items.insert(name.to_string(), module.to_string());
        }
    }
    items
}

/// Each module's imports of other modules.
fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let modules = modules();
    let items = reexports();
    let mut graph = BTreeMap::new();
    for (name, text) in &modules {
        let mut deps = BTreeSet::new();
        for first in crate_paths(text) {
            let module = if modules.contains_key(first) {
                Some(first.to_string())
            } else {
                items.get(first).cloned()
            };
            if let Some(module) = module.filter(|m| m != name) {
                deps.insert(module);
            }
        }
        graph.insert(name.clone(), deps);
    }
    graph
}

/// A circle through `graph`, if there is one.
fn circle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        graph: &BTreeMap<String, BTreeSet<String>>,
        node: &str,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|n| n == node) {
            let mut circle = path[at..].to_vec();
            circle.push(node.to_string());
            return Some(circle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(circle) = visit(graph, next, path, done) {
                return Some(circle);
            }
        }
        path.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|node| visit(graph, node, &mut Vec::new(), &mut done))
}

#[test]
fn the_modules_import_in_layers() {
    let graph = graph();
    // The reading itself works: the front ends are seen to import what
    // they share.
    for front in ["h1", "h2", "h3"] {
        for shared in ["attempt", "pages", "policy"] {
            assert!(
                graph[front].contains(shared),
                "{front} → {shared}: {graph:?}"
            );
        }
    }
    if let Some(circle) = circle(&graph) {
        panic!("an import circle: {}\n{graph:#?}", circle.join(" → "));
    }
}

#[test]
fn a_circle_is_found() {
    let graph = BTreeMap::from([
        ("a".to_string(), BTreeSet::from(["b".to_string()])),
        ("b".to_string(), BTreeSet::from(["c".to_string()])),
        ("c".to_string(), BTreeSet::from(["a".to_string()])),
    ]);
    assert_eq!(circle(&graph).unwrap(), ["a", "b", "c", "a"]);
    let tree = BTreeMap::from([("a".to_string(), BTreeSet::from(["b".to_string()]))]);
    assert_eq!(circle(&tree), None);
}
