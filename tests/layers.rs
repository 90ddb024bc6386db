//! The runtime's layers, read from its source: which part imports which, and
//! what each part makes public. The README's layout section shows both; this
//! test fails when the code has a cycle, breaks one of the architecture's
//! rules, or drifts from the README.
//!
//! Redraw the README's copy after a change:
//! `WASMSCALE_BLESS=1 cargo test -p wasmscale-tests --test layers`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail by panicking"
)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const BEGIN: &str = "<!-- layers: begin (cargo test -p wasmscale-tests --test layers) -->";
const END: &str = "<!-- layers: end -->";
/// Lines a part's public surface may take in the README: one screen.
const SCREEN_LINES: usize = 24;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The runtime's parts: each top-level module of `runtime/src`, with its files.
fn parts() -> BTreeMap<String, Vec<PathBuf>> {
    let src = root().join("runtime/src");
    let mut parts = BTreeMap::new();
    for entry in std::fs::read_dir(&src).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        if path.is_dir() {
            parts.insert(name, rust_files(&path));
        } else if name != "lib" && path.extension().is_some_and(|e| e == "rs") {
            parts.insert(name, vec![path]);
        }
    }
    // `guest` is `#[path = "../build_guest.rs"]`, shared with build.rs.
    parts.insert("guest".into(), vec![root().join("runtime/build_guest.rs")]);
    parts
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    out.sort();
    out
}

/// The code of a file without its comments (doc links are not imports).
fn code(path: &Path) -> String {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| match l.find("//") {
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Which parts each part names through `crate::` (the binary: `wasmscale::`).
fn imports(parts: &BTreeMap<String, Vec<PathBuf>>) -> BTreeMap<String, BTreeSet<String>> {
    let mut graph = BTreeMap::new();
    for (name, files) in parts {
        let prefix = if name == "main" {
            "wasmscale::"
        } else {
            "crate::"
        };
        let mut deps = BTreeSet::new();
        for file in files {
            let text = code(file);
            for (i, _) in text.match_indices(prefix) {
                let rest = &text[i + prefix.len()..];
                let part: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if part != *name && parts.contains_key(&part) {
                    deps.insert(part);
                }
            }
        }
        graph.insert(name.clone(), deps);
    }
    graph
}

/// Parts in layers: each layer imports only the layers below it. Panics on
/// a cycle, naming the parts in it.
fn layers(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    let mut placed: BTreeSet<String> = BTreeSet::new();
    let mut out = Vec::new();
    while placed.len() < graph.len() {
        let layer: Vec<String> = graph
            .iter()
            .filter(|(n, deps)| !placed.contains(*n) && deps.iter().all(|d| placed.contains(d)))
            .map(|(n, _)| n.clone())
            .collect();
        let left: Vec<&String> = graph.keys().filter(|n| !placed.contains(*n)).collect();
        assert!(!layer.is_empty(), "an import cycle among {left:?}");
        placed.extend(layer.iter().cloned());
        out.push(layer);
    }
    out
}

/// The names a module file makes public: its `pub` items, what it re-exports,
/// and (prefixed) those of its `pub mod`s.
fn surface(file: &Path, prefix: &str, out: &mut Vec<String>) {
    let text = code(file);
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        let Some(rest) = line.strip_prefix("pub ") else {
            continue;
        };
        let rest = rest.strip_prefix("async ").unwrap_or(rest);
        let (kind, rest) = rest.split_once(' ').unwrap_or((rest, ""));
        match kind {
            "use" => {
                let mut statement = rest.to_owned();
                while !statement.contains(';') {
                    match lines.next() {
                        Some(more) => statement.push_str(more.trim()),
                        None => break,
                    }
                }
                let list = match statement.find('{') {
                    Some(i) => statement[i + 1..]
                        .split('}')
                        .next()
                        .unwrap_or("")
                        .to_owned(),
                    None => statement.rsplit("::").next().unwrap_or("").to_owned(),
                };
                for item in list.split(',') {
                    let item = item.trim().trim_end_matches(';').trim();
                    let name = item.rsplit(" as ").next().unwrap_or(item).trim();
                    if !name.is_empty() && name != "self" {
                        out.push(format!("{prefix}{name}"));
                    }
                }
            }
            "fn" | "struct" | "enum" | "trait" | "type" | "const" | "static" | "mod" => {
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                out.push(format!("{prefix}{name}"));
                let is_lib = file.file_name().is_some_and(|f| f == "lib.rs");
                if kind == "mod" && rest.trim_end().ends_with(';') && !is_lib {
                    let dir = file.parent().unwrap();
                    let dir = if file.file_name().is_some_and(|f| f == "mod.rs") {
                        dir.to_path_buf()
                    } else {
                        dir.join(file.file_stem().unwrap())
                    };
                    let child = [
                        dir.join(format!("{name}.rs")),
                        dir.join(&name).join("mod.rs"),
                    ]
                    .into_iter()
                    .find(|p| p.exists())
                    .unwrap();
                    surface(&child, &format!("{prefix}{name}::"), out);
                }
            }
            _ => {}
        }
    }
}

fn wrap(names: &[String], width: usize) -> Vec<String> {
    let mut lines = vec![String::new()];
    for n in names {
        let last = lines.last_mut().unwrap();
        if !last.is_empty() && last.len() + n.len() + 1 > width {
            lines.push(String::new());
        }
        let last = lines.last_mut().unwrap();
        if !last.is_empty() {
            last.push(' ');
        }
        last.push_str(n);
    }
    lines
}

/// The README's copy: the layers, each part's imports, and its surface.
fn drawing() -> String {
    let parts = parts();
    let graph = imports(&parts);
    let mut out = String::from("```text\n");
    for (i, layer) in layers(&graph).iter().enumerate().rev() {
        out.push_str(&format!("layer {i}: {}\n", layer.join("  ")));
    }
    out.push('\n');
    for (name, deps) in &graph {
        let deps: Vec<&str> = deps.iter().map(String::as_str).collect();
        out.push_str(&format!(
            "{name:<11} -> {}\n",
            if deps.is_empty() {
                "(nothing)".into()
            } else {
                deps.join(" ")
            }
        ));
    }
    out.push_str("```\n\nEach part's public surface (`wasmscale::PART::NAME`), and what the crate root re-exports:\n\n```text\n");
    let src = root().join("runtime/src");
    let mut names = Vec::new();
    surface(&src.join("lib.rs"), "", &mut names);
    names.retain(|n| !parts.contains_key(n));
    for (i, line) in wrap(&names, 88).iter().enumerate() {
        let label = if i == 0 { "(root)" } else { "" };
        out.push_str(&format!("{label:<16}{line}\n"));
    }
    for name in parts.keys().filter(|n| *n != "main") {
        let file = [
            src.join(format!("{name}.rs")),
            src.join(name).join("mod.rs"),
        ]
        .into_iter()
        .find(|p| p.exists())
        .unwrap_or_else(|| root().join("runtime/build_guest.rs"));
        let mut names = Vec::new();
        surface(&file, "", &mut names);
        for (i, line) in wrap(&names, 88).iter().enumerate() {
            let label = if i == 0 {
                format!("{name} ({})", names.len())
            } else {
                String::new()
            };
            out.push_str(&format!("{label:<16}{line}\n"));
        }
    }
    out.push_str("```\n");
    out
}

#[test]
fn the_parts_form_layers_without_a_cycle_and_keep_the_rules() {
    let parts = parts();
    let graph = imports(&parts);
    layers(&graph);
    let forbidden = [
        ("guard", "host", "the guard knows no WebAssembly"),
        (
            "sources",
            "actuators",
            "sources and actuators never know each other",
        ),
        (
            "actuators",
            "sources",
            "sources and actuators never know each other",
        ),
        ("sources", "sim", "sources never know the simulator"),
        ("actuators", "sim", "actuators never know the simulator"),
        ("host", "controller", "the host knows no controller"),
        (
            "controller",
            "admin",
            "the controller does not import the admin server",
        ),
        ("config", "controller", "config is data"),
    ];
    for (from, to, rule) in forbidden {
        assert!(!graph[from].contains(to), "{from} imports {to}, but {rule}");
    }
    for file in &parts["guard"] {
        assert!(
            !code(file).contains("wasmtime"),
            "{}: the guard knows no WebAssembly",
            file.display()
        );
    }
    for krate in ["sdk", "policies"] {
        let manifest = std::fs::read_to_string(root().join(krate).join("Cargo.toml")).unwrap();
        assert!(
            !manifest.contains("wasmscale.workspace") && !manifest.contains("../runtime"),
            "{krate}/ must not depend on runtime/"
        );
    }
}

#[test]
fn every_public_surface_fits_one_screen() {
    let text = drawing();
    let surfaces = text.split("public surface").nth(1).unwrap();
    let mut part_lines: BTreeMap<String, usize> = BTreeMap::new();
    let mut current = String::new();
    for line in surfaces
        .lines()
        .filter(|l| !l.starts_with("```") && !l.is_empty())
    {
        if !line.starts_with(' ') {
            current = line.split_whitespace().next().unwrap_or("").to_owned();
        }
        *part_lines.entry(current.clone()).or_default() += 1;
    }
    for (part, lines) in part_lines {
        assert!(
            lines <= SCREEN_LINES,
            "{part}'s public surface takes {lines} lines; curate it"
        );
    }
}

#[test]
fn the_readme_draws_the_layers_as_they_are() {
    let path = root().join("README.md");
    let readme = std::fs::read_to_string(&path).unwrap();
    let drawing = drawing();
    let (Some(begin), Some(end)) = (readme.find(BEGIN), readme.find(END)) else {
        panic!("README.md has no {BEGIN} ... {END} section");
    };
    let current = &readme[begin + BEGIN.len()..end];
    let wanted = format!("\n{drawing}");
    if current == wanted {
        return;
    }
    if std::env::var_os("WASMSCALE_BLESS").is_some() {
        let updated = format!("{}{BEGIN}{wanted}{}", &readme[..begin], &readme[end..]);
        std::fs::write(&path, updated).unwrap();
        return;
    }
    panic!(
        "README.md's layers are out of date; run WASMSCALE_BLESS=1 cargo test -p wasmscale-tests --test layers\nwanted:\n{drawing}"
    );
}
