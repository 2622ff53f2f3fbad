//! The shim's modules form no import cycle (the layers in `lib.rs`): read
//! each source file's `crate::module` references and sort them.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Module → the modules its file(s) name with `crate::`. A directory
/// (`rts/`) is one module; `super::` inside it stays inside.
fn edges() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    for entry in std::fs::read_dir(&src).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            for f in std::fs::read_dir(&path).unwrap() {
                files.push(f.unwrap().path());
            }
        } else {
            files.push(path);
        }
    }
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for path in files
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "rs"))
    {
        let rel = path.strip_prefix(&src).unwrap();
        let module = rel.iter().next().unwrap().to_str().unwrap();
        let module = module.trim_end_matches(".rs").to_string();
        if module == "lib" || module == "layering" {
            continue;
        }
        let text = std::fs::read_to_string(path).unwrap();
        let deps = graph.entry(module.clone()).or_default();
        for (at, _) in text.match_indices("crate::") {
            let name: String = text[at + 7..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() && name != module {
                deps.insert(name);
            }
        }
    }
    graph
}

/// The modules in an order where each uses only earlier ones, or the
/// modules left on a cycle.
fn layers(graph: &BTreeMap<String, BTreeSet<String>>) -> Result<Vec<String>, Vec<String>> {
    let mut placed: Vec<String> = Vec::new();
    let mut left: BTreeSet<&String> = graph.keys().collect();
    while !left.is_empty() {
        let ready: Vec<&String> = left
            .iter()
            .copied()
            .filter(|m| graph[*m].iter().all(|d| placed.contains(d)))
            .collect();
        if ready.is_empty() {
            return Err(left.into_iter().cloned().collect());
        }
        for m in ready {
            left.remove(m);
            placed.push(m.clone());
        }
    }
    Ok(placed)
}

#[test]
fn the_modules_form_no_import_cycle() {
    let graph = edges();
    for (m, deps) in &graph {
        for d in deps {
            assert!(graph.contains_key(d), "{m} names crate::{d}, not a module");
        }
    }
    match layers(&graph) {
        Ok(order) => eprintln!("layers, lowest first: {}", order.join(" ")),
        Err(cycle) => {
            let shown: Vec<String> = cycle
                .iter()
                .map(|m| format!("{m} -> {:?}", graph[m]))
                .collect();
            panic!("import cycle among: {}", shown.join("; "));
        }
    }
    // The layering the design rests on.
    let uses = |a: &str, b: &str| graph[a].contains(b);
    assert!(!uses("rts", "control") && !uses("rts", "ffi"));
    assert!(!uses("shared", "rts") && !uses("shared", "lifecycle"));
    assert!(!uses("panic", "shared") && !uses("error", "panic"));
}

#[test]
fn a_cycle_is_found() {
    let mut graph = BTreeMap::new();
    graph.insert("a".to_string(), BTreeSet::from(["b".to_string()]));
    graph.insert("b".to_string(), BTreeSet::from(["a".to_string()]));
    graph.insert("c".to_string(), BTreeSet::new());
    assert_eq!(layers(&graph), Err(vec!["a".to_string(), "b".to_string()]));
}
