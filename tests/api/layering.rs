//! The layer rule of `docs/DESIGN.md`: every module under `src/` belongs to a layer, and
//! names (`crate::<module>`) only its own layer and the layers the table allows below it.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Each top-level module of `src/` and its layer.
const LAYER_OF: &[(&str, &str)] = &[
    ("index", "facade"),
    ("engine", "engine"),
    ("model", "values"),
    ("kms", "kms"),
    ("crypto", "crypto"),
    ("provider", "crypto"),
    ("ivf", "ivf"),
    ("metric", "ivf"),
    ("kernel", "kernel"),
    ("filter", "filter"),
    ("text", "text"),
    ("format", "format"),
    ("storage", "storage"),
    ("error", "error"),
    // Hooks for fuzz targets, tests and benches (feature `internals`): above the facade.
    ("fuzzing", "hooks"),
    ("internals", "hooks"),
];

/// Which layers each layer may name, besides itself.
const MAY_USE: &[(&str, &[&str])] = &[
    (
        "hooks",
        &[
            "facade", "engine", "values", "kms", "crypto", "ivf", "kernel", "filter", "text",
            "format", "storage", "error",
        ],
    ),
    (
        "facade",
        &[
            "engine", "values", "crypto", "ivf", "filter", "text", "format", "storage", "error",
        ],
    ),
    // The machinery behind the facade: state, persistence, loading, the query planner.
    (
        "engine",
        &[
            "values", "crypto", "ivf", "filter", "text", "format", "storage", "error",
        ],
    ),
    // The values callers pass and get back, and the checks of caller input.
    ("values", &["ivf", "filter", "text", "format", "error"]),
    // The KMS clients use crypto's public key types (`IndexKey`, `KeyProvider`) only.
    ("kms", &["crypto", "error"]),
    ("crypto", &["error"]),
    ("ivf", &["kernel"]),
    ("filter", &["error"]),
    ("text", &[]),
    ("format", &["error"]),
    ("storage", &[]),
    ("kernel", &[]),
    ("error", &[]),
];

/// What the `kms` layer may name of the crypto layer.
const KMS_MAY_NAME: &[&str] = &["crypto::key::IndexKey", "provider::KeyProvider"];

fn sources(path: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if path.is_file() {
        out.push(path.to_path_buf());
    } else if path.is_dir() {
        for e in std::fs::read_dir(path).unwrap() {
            out.extend(sources(&e.unwrap().path()));
        }
    }
    out
}

/// Every `crate::a::b` path a source names, as "a::b" (groups `crate::{a, b::c}` expanded).
fn named_paths(text: &str) -> BTreeSet<String> {
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
            .collect::<String>()
            .trim_end_matches(':')
            .to_owned()
    };
    let mut out = BTreeSet::new();
    for (i, _) in text.match_indices("crate::") {
        // `$crate::` in macros names the defining crate's root, like `crate::`.
        let rest = &text[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let inner = &group[..group.find('}').unwrap_or(group.len())];
            for part in inner.split(',') {
                let p = ident(part.trim());
                if !p.is_empty() {
                    out.insert(p);
                }
            }
        } else {
            let p = ident(rest);
            if !p.is_empty() {
                out.insert(p);
            }
        }
    }
    out
}

fn layer_of(module: &str) -> Option<&'static str> {
    LAYER_OF.iter().find(|(m, _)| *m == module).map(|(_, l)| *l)
}

/// The layer violations in `text`, a source of layer `layer`.
fn violations(layer: &str, text: &str) -> Vec<String> {
    let allowed = MAY_USE
        .iter()
        .find(|(l, _)| *l == layer)
        .map(|(_, a)| *a)
        .unwrap();
    let mut out = Vec::new();
    for path in named_paths(text) {
        let module = path.split("::").next().unwrap();
        let Some(target) = layer_of(module) else {
            // A crate-root re-export (`crate::Database`): only the hooks, the facade and
            // the public values may use the public surface, the last two in doc links only
            // (their code names the defining modules:
            // `facade_code_names_the_defining_module_..` below).
            if !matches!(layer, "hooks" | "facade" | "values") {
                out.push(format!("crate::{path} (the crate root)"));
            }
            continue;
        };
        let ok = target == layer
            || (allowed.contains(&target)
                && (layer != "kms"
                    || target != "crypto"
                    || KMS_MAY_NAME.iter().any(|p| path.starts_with(p))));
        if !ok {
            out.push(format!("crate::{path} (layer {target})"));
        }
    }
    out
}

#[test]
fn every_module_has_a_layer() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    for e in std::fs::read_dir(&src).unwrap() {
        let path = e.unwrap().path();
        let name = path.file_stem().unwrap().to_str().unwrap().to_owned();
        if name == "lib" {
            continue;
        }
        assert!(
            layer_of(&name).is_some(),
            "src/{name} has no layer in tests/api/layering.rs"
        );
    }
}

#[test]
fn no_module_imports_a_layer_above_or_beside_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    for (module, layer) in LAYER_OF {
        let mut files = sources(&src.join(format!("{module}.rs")));
        files.extend(sources(&src.join(module)));
        assert!(!files.is_empty(), "no sources for {module}");
        for f in files {
            let text = std::fs::read_to_string(&f).unwrap();
            let bad = violations(layer, &text);
            assert!(
                bad.is_empty(),
                "{} (layer {layer}) names {bad:?}",
                f.display()
            );
        }
    }
}

#[test]
fn the_checker_catches_upward_and_sideways_imports() {
    // Upward: a low layer naming the facade, in a path and inside a group.
    assert!(!violations("format", "use crate::index::State;").is_empty());
    assert!(!violations("kernel", "use crate::{ivf::Codec};").is_empty());
    // Sideways: format and crypto are beside each other; ivf may not reach storage.
    assert!(!violations("format", "use crate::crypto::schedule::Keys;").is_empty());
    assert!(!violations("crypto", "x(crate::format::FORMAT_VERSION)").is_empty());
    assert!(!violations("ivf", "use crate::storage::Blob;").is_empty());
    // The crate root from below, and kms past crypto's public key types.
    assert!(!violations("crypto", "crate::FORMAT_VERSION").is_empty());
    assert!(!violations("kms", "use crate::crypto::aead::Sealer;").is_empty());
    // What the rule allows.
    assert!(violations("ivf", "use crate::kernel::{self, TopK};").is_empty());
    assert!(violations("kms", "use crate::crypto::key::IndexKey;").is_empty());
    assert!(violations("facade", "use crate::{crypto::aead, format::RecordKind};").is_empty());
    // The engine below the facade, the values below both.
    assert!(!violations("engine", "use crate::index::EncryptedIndex;").is_empty());
    assert!(!violations("engine", "fn f(d: &crate::Database) {}").is_empty());
    assert!(!violations("values", "use crate::engine::state::State;").is_empty());
    assert!(!violations("values", "use crate::{index::Database};").is_empty());
    assert!(violations("engine", "use crate::model::types::Query;").is_empty());
    assert!(violations("facade", "use crate::engine::{persist, state::State};").is_empty());
}

// ---------------------------------------------------------------------------------------------
// Circles: two modules that name each other, directly or through others. A layer may join
// the modules inside it, but only one way: the sibling modules of one parent (the files of
// `src/crypto/`, of `src/index/encrypted/`, the top-level modules of a crate) form a graph
// with no cycle. A path into a module's child counts as naming that child of the common
// parent; a name a parent re-exports (`pub use`, `pub(crate) use`) counts as naming the module
// that defines it, so that a re-export hides no edge.

/// The module path of a source file under `root` (`crypto/aead.rs` is `crypto::aead`, the
/// crate root `lib.rs` or `main.rs` is empty).
fn module_of(root: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(root).unwrap().with_extension("");
    let mut segs: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_str().unwrap().to_owned())
        .collect();
    if segs.len() == 1 && matches!(segs[0].as_str(), "lib" | "main") {
        segs.clear();
    }
    segs
}

/// `text` without its comments (`//` to the end of the line, `/* */`) and string literals, so
/// that a doc link or a message naming a path is no dependency.
fn code_only(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < b.len() {
        if b[i..].starts_with(b"//") {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if b[i..].starts_with(b"/*") {
            let end = text[i + 2..].find("*/").map_or(b.len(), |e| i + 2 + e + 2);
            i = end;
        } else if b[i..].starts_with(b"'{'") || b[i..].starts_with(b"'}'") {
            // A brace as a character: no block.
            out.push_str("' '");
            i += 3;
        } else if b[i] == b'r'
            && (i == 0 || !is_ident(b[i - 1]))
            && b[i + 1..].iter().take_while(|c| **c == b'#').count() > 0
            && b.get(i + 1 + b[i + 1..].iter().take_while(|c| **c == b'#').count()) == Some(&b'"')
        {
            // A raw string `r#".."#`: to the quote followed by as many hashes.
            let hashes = b[i + 1..].iter().take_while(|c| **c == b'#').count();
            let close = format!("\"{}", "#".repeat(hashes));
            let body = i + 1 + hashes + 1;
            i = text[body..]
                .find(&close)
                .map_or(b.len(), |e| body + e + close.len());
            out.push_str("\"\"");
        } else if b[i] == b'"' && !(i > 0 && b[i - 1] == b'\'') {
            i += 1;
            while i < b.len() && b[i] != b'"' {
                i += if b[i] == b'\\' { 2 } else { 1 };
            }
            i += 1;
            out.push_str("\"\"");
        } else {
            let c = text[i..].chars().next().unwrap();
            out.push(c);
            i += c.len_utf8();
        }
    }
    out
}

/// `code` without its `#[cfg(test)] mod .. { .. }` blocks: a unit test may take a sibling as
/// its oracle (the refine bounds are checked against `search`'s exact distances) without
/// making the shipped modules depend on each other.
fn without_unit_tests(code: &str) -> String {
    let mut out = code.to_owned();
    while let Some(at) = out.find("#[cfg(test)]") {
        let after = out[at + "#[cfg(test)]".len()..].trim_start();
        let item = after.strip_prefix("pub(crate) ").unwrap_or(after);
        let Some(named) = item.strip_prefix("mod ") else {
            // Another test-only item (a function, an import): left out as well, to its end.
            let from = out.len() - after.len();
            let end = out[from..].find([';', '{']).map_or(out.len(), |e| from + e);
            let end = if out.as_bytes().get(end) == Some(&b'{') {
                block_end(out.as_bytes(), end)
            } else {
                end + 1
            };
            out.replace_range(at..end.min(out.len()), "");
            continue;
        };
        let name_len = named.bytes().take_while(|c| is_ident(*c)).count();
        let rest = named[name_len..].trim_start();
        let open = out.len() - rest.len();
        let end = if rest.starts_with('{') {
            block_end(out.as_bytes(), open)
        } else {
            open + 1
        };
        out.replace_range(at..end.min(out.len()), "");
    }
    out
}

/// Just past the `}` that closes the block opening at `b[open]`.
fn block_end(b: &[u8], open: usize) -> usize {
    let mut depth = 0usize;
    for (n, &c) in b.iter().enumerate().skip(open) {
        match c {
            b'{' => depth += 1,
            b'}' => {
                depth -= 1;
                if depth == 0 {
                    return n + 1;
                }
            }
            _ => {}
        }
    }
    b.len()
}

fn is_ident(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

/// The paths of a use tree at `b[*pos..]`: `a::b`, `a::{b, c::{d, e}}`, `a::*` (as `a`),
/// `a::{self}` (as `a`).
fn use_tree(b: &[u8], pos: &mut usize) -> Vec<Vec<String>> {
    while b.get(*pos).is_some_and(u8::is_ascii_whitespace) {
        *pos += 1;
    }
    if b.get(*pos) == Some(&b'{') {
        *pos += 1;
        let mut out = Vec::new();
        loop {
            while b
                .get(*pos)
                .is_some_and(|c| c.is_ascii_whitespace() || *c == b',')
            {
                *pos += 1;
            }
            match b.get(*pos) {
                None => break,
                Some(b'}') => {
                    *pos += 1;
                    break;
                }
                _ => {}
            }
            let before = *pos;
            out.extend(use_tree(b, pos));
            // Past an `as` rename to the next item.
            while b.get(*pos).is_some_and(|c| !matches!(c, b',' | b'}')) {
                *pos += 1;
            }
            if *pos == before {
                *pos += 1;
            }
        }
        return out;
    }
    let start = *pos;
    while b.get(*pos).is_some_and(|c| is_ident(*c)) {
        *pos += 1;
    }
    if *pos == start {
        return vec![Vec::new()];
    }
    let seg = std::str::from_utf8(&b[start..*pos]).unwrap().to_owned();
    if seg == "self" {
        return vec![Vec::new()];
    }
    if b[*pos..].starts_with(b"::") {
        *pos += 2;
        let mut out = use_tree(b, pos);
        for p in &mut out {
            p.insert(0, seg.clone());
        }
        out
    } else {
        vec![vec![seg]]
    }
}

/// Every absolute path that code of module `module` names through `crate::`, `super::` or
/// `self::` (the code of inline modules, `mod tests { .. }`, resolved from inside them).
fn absolute_paths(module: &[String], code: &str) -> Vec<Vec<String>> {
    let b = code.as_bytes();
    // Inline modules: (start, end, name) of each `mod name {` body, by brace depth.
    let mut inline: Vec<(usize, usize, String)> = Vec::new();
    for (i, _) in code.match_indices("mod ") {
        if i > 0 && is_ident(b[i - 1]) {
            continue;
        }
        let mut j = i + 4;
        let start = j;
        while j < b.len() && is_ident(b[j]) {
            j += 1;
        }
        let name = code[start..j].to_owned();
        let k = j + code[j..].len() - code[j..].trim_start().len();
        if name.is_empty() || b.get(k) != Some(&b'{') {
            continue;
        }
        inline.push((k, block_end(b, k), name));
    }
    let scope_at = |i: usize| -> Vec<String> {
        let mut m = module.to_vec();
        for (s, e, name) in &inline {
            if *s < i && i < *e {
                m.push(name.clone());
            }
        }
        m
    };
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let starts_word = i == 0 || !(is_ident(b[i - 1]) || b[i - 1] == b':');
        let rest = &b[i..];
        let base: Option<(Vec<String>, usize)> = if !starts_word {
            None
        } else if rest.starts_with(b"crate::") {
            Some((Vec::new(), "crate::".len()))
        } else if rest.starts_with(b"self::") {
            Some((scope_at(i), "self::".len()))
        } else if rest.starts_with(b"super::") {
            let mut m = scope_at(i);
            let mut n = 0;
            while b[i + n..].starts_with(b"super::") {
                m.pop();
                n += "super::".len();
            }
            Some((m, n))
        } else {
            None
        };
        match base {
            Some((base, skip)) => {
                let mut pos = i + skip;
                for p in use_tree(b, &mut pos) {
                    let mut full = base.clone();
                    full.extend(p);
                    out.push(full);
                }
                i = pos.max(i + 1);
            }
            None => i += 1,
        }
    }
    out
}

/// The names module `module`'s code re-exports (`pub use`, `pub(crate) use`, `pub(super)
/// use`): name -> absolute path of what it names.
fn reexports(module: &[String], code: &str) -> Vec<(String, Vec<String>)> {
    let mut out = Vec::new();
    for (i, _) in code.match_indices("pub") {
        if i > 0 && is_ident(code.as_bytes()[i - 1]) {
            continue;
        }
        let after_pub = &code[i + "pub".len()..];
        let after_vis = match after_pub.strip_prefix('(') {
            Some(v) => &v[v.find(')').map_or(0, |e| e + 1)..],
            None => after_pub,
        };
        let Some(tree) = after_vis.trim_start().strip_prefix("use ") else {
            continue;
        };
        let tree = tree.trim_start();
        let (base, tree) = if let Some(t) = tree.strip_prefix("crate::") {
            (Vec::new(), t)
        } else if let Some(t) = tree.strip_prefix("self::") {
            (module.to_vec(), t)
        } else if tree.starts_with("super::") {
            let mut m = module.to_vec();
            let mut t = tree;
            while let Some(r) = t.strip_prefix("super::") {
                m.pop();
                t = r;
            }
            (m, t)
        } else {
            // A path relative to this module (its child) or an external crate (`pub use
            // serde_json::Value`): the caller keeps only those that resolve to a module.
            (module.to_vec(), tree)
        };
        for p in use_tree(tree.as_bytes(), &mut 0) {
            if let Some(name) = p.last() {
                let mut full = base.clone();
                full.extend(p.iter().cloned());
                out.push((name.clone(), full));
            }
        }
    }
    out
}

/// The edges between sibling modules in a crate's sources, given as (module path, text): for
/// each parent module, the pairs (a, b) of its children where code in `a` names `b`.
type Siblings = std::collections::BTreeMap<Vec<String>, BTreeSet<(String, String)>>;

fn sibling_edges(sources: &[(Vec<String>, String)]) -> Siblings {
    let codes: Vec<(Vec<String>, String)> = sources
        .iter()
        .map(|(m, t)| (m.clone(), without_unit_tests(&code_only(t))))
        .collect();
    let mut modules: BTreeSet<Vec<String>> = codes.iter().map(|(m, _)| m.clone()).collect();
    // Inline modules (`mod tests { .. }`) are modules too.
    for (m, code) in &codes {
        for (i, _) in code.match_indices("mod ") {
            let name: String = code[i + 4..]
                .bytes()
                .take_while(|c| is_ident(*c))
                .map(char::from)
                .collect();
            if !name.is_empty() && code[i + 4 + name.len()..].trim_start().starts_with('{') {
                let mut inner = m.clone();
                inner.push(name);
                modules.insert(inner);
            }
        }
    }
    let mut exported: std::collections::BTreeMap<(Vec<String>, String), Vec<String>> =
        Default::default();
    for (m, code) in &codes {
        for (name, target) in reexports(m, code) {
            exported.insert((m.clone(), name), target);
        }
    }
    // The module a path names: the longest prefix that is a module, after following
    // re-exports (a few steps, for chains).
    let resolve = |path: &[String]| -> Vec<String> {
        let mut path = path.to_vec();
        for _ in 0..4 {
            let k = (0..=path.len())
                .rev()
                .find(|k| modules.contains(&path[..*k]))
                .unwrap_or(0);
            let Some(name) = path.get(k) else {
                return path;
            };
            match exported.get(&(path[..k].to_vec(), name.clone())) {
                Some(target)
                    if modules
                        .iter()
                        .any(|m| target.starts_with(m) && !m.is_empty()) =>
                {
                    let mut next = target.clone();
                    next.extend(path[k + 1..].iter().cloned());
                    if next == path {
                        return path[..k].to_vec();
                    }
                    path = next;
                }
                _ => return path[..k].to_vec(),
            }
        }
        path
    };
    let mut out = Siblings::new();
    for (m, code) in &codes {
        let m = m.clone();
        for named in absolute_paths(&m, code) {
            // The innermost module whose code this is (an inline `mod tests` included) does
            // not matter: a parent and its children never form a sibling edge.
            let target = resolve(&named);
            let common = m.iter().zip(&target).take_while(|(a, b)| a == b).count();
            if common < m.len() && common < target.len() {
                out.entry(m[..common].to_vec())
                    .or_default()
                    .insert((m[common].clone(), target[common].clone()));
            }
        }
    }
    out
}

/// The circles among the sibling modules of each parent: every strongly connected group of
/// two or more, as "parent: a -> b -> .. -> a".
fn circles(sources: &[(Vec<String>, String)]) -> Vec<String> {
    let mut out = Vec::new();
    for (parent, edges) in sibling_edges(sources) {
        let nodes: BTreeSet<&String> = edges.iter().flat_map(|(a, b)| [a, b]).collect();
        let reach = |from: &String| -> BTreeSet<&String> {
            let mut seen = BTreeSet::new();
            let mut todo = vec![from];
            while let Some(n) = todo.pop() {
                for (a, b) in &edges {
                    if a == n && seen.insert(b) {
                        todo.push(b);
                    }
                }
            }
            seen
        };
        let mut done = BTreeSet::new();
        for n in &nodes {
            if done.contains(n) {
                continue;
            }
            let from_n = reach(n);
            let group: Vec<&String> = nodes
                .iter()
                .copied()
                .filter(|m| from_n.contains(m) && reach(m).contains(n))
                .collect();
            if group.len() >= 2 {
                let mut names: Vec<String> = group.iter().copied().cloned().collect();
                names.push(names[0].clone());
                let parent = if parent.is_empty() {
                    "crate".to_owned()
                } else {
                    parent.join("::")
                };
                out.push(format!("{parent}: {}", names.join(" <-> ")));
                done.extend(group);
            }
        }
    }
    out
}

/// Every source of the crate whose sources are under `root`, as (module path, text).
fn crate_sources(root: &Path) -> Vec<(Vec<String>, String)> {
    sources(root)
        .into_iter()
        .filter(|f| f.extension().is_some_and(|e| e == "rs"))
        .map(|f| (module_of(root, &f), std::fs::read_to_string(&f).unwrap()))
        .collect()
}

#[test]
fn no_circle_between_modules() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    // The core and the CLI; the other leaves (server, Python, Node.js) are small enough to
    // be flat, and are checked the same way when they grow modules.
    let found: Vec<String> = ["src", "cli/src"]
        .iter()
        .flat_map(|dir| {
            circles(&crate_sources(&repo.join(dir)))
                .into_iter()
                .map(move |c| format!("{dir}: {c}"))
        })
        .collect();
    assert!(found.is_empty(), "modules that name each other: {found:#?}");
}

#[test]
fn facade_code_names_the_defining_module_not_a_crate_root_reexport() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let root = code_only(&std::fs::read_to_string(src.join("lib.rs")).unwrap());
    let root_names: Vec<String> = reexports(&[], &root).into_iter().map(|(n, _)| n).collect();
    let mut files = Vec::new();
    for module in ["index", "model"] {
        files.extend(sources(&src.join(format!("{module}.rs"))));
        files.extend(sources(&src.join(module)));
    }
    let mut bad = Vec::new();
    for f in files {
        let module = module_of(&src, &f);
        let code = code_only(&std::fs::read_to_string(&f).unwrap());
        for name in root_reexports_named(&module, &code, &root_names) {
            bad.push(format!("{}: {name}", f.display()));
        }
    }
    // Doc links (`[`Metric`](crate::Metric)`) are not code and may name the public path.
    assert!(
        bad.is_empty(),
        "facade code naming crate-root re-exports: {bad:#?}"
    );
}

/// The crate-root re-exports (`root_names`) that code of `module` names as `crate::Name`.
fn root_reexports_named(module: &[String], code: &str, root_names: &[String]) -> Vec<String> {
    absolute_paths(module, code)
        .into_iter()
        .filter(|p| p.first().is_some_and(|n| root_names.contains(n)))
        .map(|p| format!("crate::{}", p.join("::")))
        .collect()
}

#[test]
fn the_checker_catches_circles() {
    let m = |s: &str| -> Vec<String> {
        s.split("::")
            .filter(|x| !x.is_empty())
            .map(str::to_owned)
            .collect()
    };
    let src = |pairs: &[(&str, &str)]| -> Vec<(Vec<String>, String)> {
        pairs.iter().map(|(p, t)| (m(p), t.to_string())).collect()
    };
    // Two siblings through `super::` one way and `crate::` the other.
    let planted = src(&[
        ("", "mod crypto;"),
        ("crypto", "pub(crate) mod aead; pub(crate) mod schedule;"),
        ("crypto::aead", "use super::schedule::{DataKey, Purpose};"),
        ("crypto::schedule", "use crate::crypto::aead::Sealer;"),
    ]);
    assert_eq!(circles(&planted), ["crypto: aead <-> schedule <-> aead"]);
    // Top-level modules, through a group and a nested child, and a three-step circle.
    let planted = src(&[
        ("", ""),
        ("format", "use crate::{error::Error, storage::blob::Blob};"),
        ("storage", ""),
        ("storage::blob", "fn f() { crate::kernel::x(); }"),
        ("kernel", "use crate::format;"),
        ("error", ""),
    ]);
    assert_eq!(
        circles(&planted),
        ["crate: format <-> kernel <-> storage <-> format"]
    );
    // Hidden behind a parent's re-export, and from a nested module two levels up.
    let planted = src(&[
        (
            "index",
            "mod lists;\n#[cfg(feature = \"x\")]\npub(crate) use lists::ListView;",
        ),
        ("index::lists", "fn f() { super::loader::prefetch(); }"),
        ("index::loader", "use super::ListView;"),
        ("index::encrypted", ""),
        ("index::encrypted::read", "use super::super::state::State;"),
        ("index::state", "mod inner { use super::super::encrypted; }"),
    ]);
    assert_eq!(
        circles(&planted),
        [
            "index: encrypted <-> state <-> encrypted",
            "index: lists <-> loader <-> lists"
        ]
    );
    // What the rule allows: one way, child to parent, parent to child, comments and strings.
    let fine = src(&[
        (
            "crypto",
            "use aead::Sealer; pub(crate) fn random_bytes() {}",
        ),
        (
            "crypto::aead",
            "use super::random_bytes; // crate::crypto::schedule",
        ),
        (
            "crypto::schedule",
            "use super::aead::Sealer; const S: &str = \"super::x\";",
        ),
        (
            "crypto::key",
            "/// [`Keys`](crate::crypto::schedule::Keys)\nfn f() {}",
        ),
        // A unit test that takes a sibling as its oracle.
        (
            "crypto::mac",
            "#[cfg(test)]\nmod tests {\n    use crate::crypto::hkdf;\n}\n#[cfg(test)]\nuse super::hkdf::x;",
        ),
        ("crypto::hkdf", "use super::mac::HmacSha3;"),
    ]);
    assert_eq!(circles(&fine), Vec::<String>::new());
    // The crate-root rule for the facade: `crate::IndexKey` yes, `crate::crypto::..` no.
    let roots = ["IndexKey".to_owned(), "Metric".to_owned()];
    let code = code_only("use crate::{IndexKey, error::Error}; fn f(m: crate::Metric) {}");
    assert_eq!(
        root_reexports_named(&m("index::database"), &code, &roots),
        ["crate::IndexKey", "crate::Metric"]
    );
    let code = code_only("use crate::crypto::key::IndexKey; /// [`crate::Metric`]\nfn f() {}");
    assert!(root_reexports_named(&m("index::database"), &code, &roots).is_empty());
}
