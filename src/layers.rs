//! The layers of `src/`, bottom first: the one list of them (README's
//! "Layers" points here), and the test that keeps every `crate::<module>`
//! (in `main.rs`: `isocheck::<module>`) import pointing down it.
//!
//! A module may import its own layer's modules (without a cycle) and any
//! layer below, never one above. An import that breaks the order means an
//! item sits too high: move it down (as `helper_path` moved to `scope`) or
//! pass it in (as `formats::html::render` takes the registry).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Bottom first. `helper` is a layer of its own: the child-side ops, built
/// from mechanisms (netns's and seccomp's types) and run in another process,
/// so no mechanism may call into them (that was the last cycle), and they
/// may not use the harness's `Ctx` or `Problem` (no body code in the child).
pub const LAYERS: &[(&str, &[&str])] = &[
    // Starting commands, the tool vocabulary, file ownership under sudo and
    // the engine's socket: what the host probe itself is built from.
    ("primitives", &["process", "tools", "owner", "dockerapi"]),
    ("probing", &["kconfig", "host", "needs", "apparmor"]),
    // `scope` is what a mechanism asks of an experiment (tag, names,
    // commands, teardown); `cleanup` knows leftover kinds that mechanisms
    // register, so it never imports one.
    (
        "mechanisms",
        &[
            "namespaces",
            "cleanup",
            "scope",
            "cgroups",
            "seccomp",
            "netns",
            "docker",
            "loopdev",
            "enginestack",
        ],
    ),
    ("helper ops", &["helper"]),
    (
        "harness",
        &["experiment", "report", "runner", "session", "formats"],
    ),
    ("sections", &["experiments"]),
    // `coverage` reads the registry for docs/coverage.md and `list --cve`.
    ("front ends", &["testmain", "main", "coverage"]),
];

/// Layer index of each module.
fn layer_of() -> BTreeMap<&'static str, usize> {
    let mut m = BTreeMap::new();
    for (i, (_, mods)) in LAYERS.iter().enumerate() {
        for module in *mods {
            assert!(m.insert(*module, i).is_none(), "{module} is listed twice");
        }
    }
    m
}

/// The text with `//` comments blanked (doc text names modules too), string
/// and char literals kept intact so a `"//"` inside one is not a comment.
fn strip_comments(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let end = match b[i] {
            b'/' if b.get(i + 1) == Some(&b'/') => {
                let e = text[i..].find('\n').map_or(b.len(), |n| i + n);
                i = e;
                continue;
            }
            b'"' => string_end(b, i + 1, 0),
            b'r' if !ident_before(b, i) && raw_string_hashes(b, i).is_some() => {
                let hashes = raw_string_hashes(b, i).unwrap_or(0);
                string_end(b, i + 2 + hashes, hashes)
            }
            b'\'' => char_end(b, i),
            _ => i + 1,
        };
        out.extend_from_slice(&b[i..end]);
        i = end;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `r"` or `r#…#"` at `i`: the number of hashes (a raw identifier such as
/// `r#type` is none).
fn raw_string_hashes(b: &[u8], i: usize) -> Option<usize> {
    let hashes = b[i + 1..].iter().take_while(|c| **c == b'#').count();
    (b.get(i + 1 + hashes) == Some(&b'"')).then_some(hashes)
}

fn ident_before(b: &[u8], i: usize) -> bool {
    i > 0 && (b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_')
}

/// Index after the closing quote of a string starting before `i`; a raw
/// string (`hashes` > 0 or from `r"`) has no escapes, hence the check.
fn string_end(b: &[u8], mut i: usize, hashes: usize) -> usize {
    let raw = hashes > 0 || (i >= 2 && b[i - 2] == b'r');
    while i < b.len() {
        match b[i] {
            b'\\' if !raw => i += 2,
            b'"' if b[i + 1..]
                .iter()
                .take(hashes)
                .filter(|c| **c == b'#')
                .count()
                == hashes =>
            {
                return i + 1 + hashes
            }
            _ => i += 1,
        }
    }
    b.len()
}

/// After a char literal (`'x'`, `'\n'`), or just past a lifetime's quote.
fn char_end(b: &[u8], i: usize) -> usize {
    match (b.get(i + 1), b.get(i + 2), b.get(i + 3)) {
        (Some(b'\\'), _, _) => b
            .get(i + 3..)
            .and_then(|rest| rest.iter().position(|c| *c == b'\''))
            .map_or(b.len(), |p| i + 4 + p),
        (Some(_), Some(b'\''), _) => i + 3,
        _ => i + 1,
    }
}

/// The top-level modules a file's text names after `prefix` (`crate`,
/// `isocheck`), grouped imports included: `crate::{a::{b, c}, d}` is a, d.
fn imports_in(text: &str, prefix: &str) -> BTreeSet<String> {
    let text = strip_comments(text);
    let pat = format!("{prefix}::");
    let mut found = BTreeSet::new();
    for (at, _) in text.match_indices(&pat) {
        let before = text[..at].chars().next_back();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        let rest = &text[at + pat.len()..];
        match rest.strip_prefix('{') {
            Some(group) => found.extend(group_heads(group)),
            None => found.extend(leading_ident(rest)),
        }
    }
    found.remove("self");
    found
}

/// The first path segment of each item of a `{…}` group (after its `{`).
fn group_heads(group: &str) -> Vec<String> {
    let (mut depth, mut heads, mut at_item) = (0, Vec::new(), true);
    for (i, c) in group.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => break,
            '}' => depth -= 1,
            ',' if depth == 0 => at_item = true,
            c if at_item && !c.is_whitespace() => {
                heads.extend(leading_ident(&group[i..]));
                at_item = false;
            }
            _ => {}
        }
    }
    heads
}

fn leading_ident(s: &str) -> Option<String> {
    let id: String = s
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect();
    (!id.is_empty()).then_some(id)
}

/// The library's top-level modules as `lib.rs` declares them, this one
/// left out, plus `main` (the binary).
fn modules(src: &Path) -> Vec<String> {
    let lib = std::fs::read_to_string(src.join("lib.rs")).expect("src/lib.rs");
    let mut mods: Vec<String> = strip_comments(&lib)
        .lines()
        .filter_map(|l| l.trim().trim_start_matches("pub ").strip_prefix("mod "))
        .filter_map(|l| l.strip_suffix(';'))
        .filter(|m| *m != "layers")
        .map(str::to_string)
        .collect();
    mods.push("main".into());
    mods
}

fn rust_files(p: &Path, out: &mut Vec<PathBuf>) {
    if p.is_dir() {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(p)
            .expect("readable src dir")
            .map(|e| e.expect("dir entry").path())
            .collect();
        entries.sort();
        for e in entries {
            rust_files(&e, out);
        }
    } else if p.is_file() && p.extension().is_some_and(|e| e == "rs") {
        out.push(p.to_path_buf());
    }
}

/// Module → the other top-level modules it imports → the files that do.
type Graph = BTreeMap<String, BTreeMap<String, Vec<String>>>;

/// The import graph of `src/` between top-level modules.
fn graph(src: &Path) -> Graph {
    let mods = modules(src);
    let mut g = Graph::new();
    for m in &mods {
        let mut files = Vec::new();
        rust_files(&src.join(format!("{m}.rs")), &mut files);
        rust_files(&src.join(m), &mut files);
        assert!(!files.is_empty(), "module {m} has no source file");
        let prefix = if m == "main" { "isocheck" } else { "crate" };
        let edges = g.entry(m.clone()).or_default();
        for f in files {
            let text = std::fs::read_to_string(&f).expect("readable source");
            let rel = f.strip_prefix(src).unwrap_or(&f).display().to_string();
            for dep in imports_in(&text, prefix) {
                if dep != *m && mods.contains(&dep) {
                    edges.entry(dep).or_default().push(rel.clone());
                }
            }
        }
    }
    g
}

/// Every import that points up `LAYERS`, and every module the list
/// does not place (a new module must be given a layer).
fn upward_imports(g: &Graph) -> Vec<String> {
    let layer = layer_of();
    let mut bad = Vec::new();
    for (m, deps) in g {
        let Some(&lm) = layer.get(m.as_str()) else {
            bad.push(format!(
                "{m} is in no layer: add it to LAYERS in src/layers.rs"
            ));
            continue;
        };
        for (d, files) in deps {
            if layer.get(d.as_str()).is_some_and(|&ld| ld > lm) {
                bad.push(format!(
                    "{m} ({}) imports {d} ({}) in {}",
                    LAYERS[lm].0,
                    LAYERS[layer[d.as_str()]].0,
                    files.join(", ")
                ));
            }
        }
    }
    bad
}

/// A cycle of imports, as the path that closes it, if there is one.
fn find_cycle(g: &Graph) -> Option<Vec<String>> {
    fn visit(g: &Graph, m: &str, path: &mut Vec<String>, done: &mut BTreeSet<String>) -> bool {
        if let Some(at) = path.iter().position(|p| p == m) {
            path.drain(..at);
            path.push(m.to_string());
            return true;
        }
        if done.contains(m) {
            return false;
        }
        path.push(m.to_string());
        for d in g.get(m).into_iter().flat_map(|d| d.keys()) {
            if visit(g, d, path, done) {
                return true;
            }
        }
        path.pop();
        done.insert(m.to_string());
        false
    }
    let mut done = BTreeSet::new();
    g.keys().find_map(|m| {
        let mut path = Vec::new();
        visit(g, m, &mut path, &mut done).then_some(path)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    fn src() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
    }

    #[test]
    fn imports_point_down_the_layers() {
        let bad = upward_imports(&graph(&src()));
        assert!(
            bad.is_empty(),
            "imports against LAYERS:\n{}",
            bad.join("\n")
        );
    }

    #[test]
    fn no_import_cycle_between_top_level_modules() {
        let cycle = find_cycle(&graph(&src()));
        assert_eq!(cycle, None, "an import cycle");
    }

    #[test]
    fn every_listed_module_exists() {
        let mods = modules(&src());
        for m in layer_of().keys() {
            assert!(
                mods.iter().any(|x| x == m),
                "LAYERS names {m}, which lib.rs does not declare"
            );
        }
    }

    #[rstest]
    #[case("use crate::{cleanup::{self, Tag}, docker};", &["cleanup", "docker"])]
    #[case("let p = crate::helper::helper_path();", &["helper"])]
    #[case("use crate::{self as c, runner};", &["runner"])]
    #[case("// crate::docker in a comment\nuse crate::host;", &["host"])]
    #[case("let u = \"http://x\"; crate::process::run(c);", &["process"])]
    #[case("let s = '\"'; crate::tools::Tool::Ip;", &["tools"])]
    #[case("let q = '\\''; let s = \"'\"; crate::needs::x", &["needs"])]
    #[case("fn f<'a>(r#type: &'a str) { crate::host::y }", &["host"])]
    #[case("r#\"crate::report\"#; crate::owner::write(p, t)", &["report", "owner"])]
    #[case("$crate::experiment::Problem::Fail(m)", &["experiment"])]
    #[case("my_crate::docker::x(); isocrate::y", &[])]
    fn finds_imported_modules(#[case] text: &str, #[case] want: &[&str]) {
        let want: BTreeSet<String> = want.iter().map(|s| s.to_string()).collect();
        assert_eq!(imports_in(text, "crate"), want);
    }

    fn fake(edges: &[(&str, &str)]) -> Graph {
        let mut g = Graph::new();
        for (a, b) in edges {
            g.entry(a.to_string())
                .or_default()
                .insert(b.to_string(), vec![format!("{a}.rs")]);
            g.entry(b.to_string()).or_default();
        }
        g
    }

    /// The checks can fail: the cycle this layering removed, and a
    /// mechanism reaching up to the harness, are both reported.
    #[test]
    fn a_cycle_and_an_upward_import_are_reported() {
        let old = fake(&[
            ("experiment", "helper"),
            ("helper", "netns"),
            ("netns", "experiment"),
        ]);
        let cycle = find_cycle(&old).expect("the old cycle");
        assert_eq!(cycle.first(), cycle.last());
        assert_eq!(cycle.len(), 4);
        let bad = upward_imports(&old);
        assert_eq!(bad.len(), 1, "{bad:?}");
        assert!(bad[0].starts_with("netns (mechanisms) imports experiment (harness)"));
        let unplaced = upward_imports(&fake(&[("newmod", "process")]));
        assert!(unplaced[0].contains("newmod is in no layer"));
        assert_eq!(find_cycle(&fake(&[("a", "b"), ("b", "c")])), None);
    }
}
