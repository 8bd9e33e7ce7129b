//! The layer rule of `docs/DESIGN.md`: every module under `src/` belongs to a layer, and
//! names (`crate::<module>`) only its own layer and the layers the table allows below it.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Each top-level module of `src/` and its layer.
const LAYER_OF: &[(&str, &str)] = &[
    ("index", "facade"),
    ("kms", "kms"),
    ("crypto", "crypto"),
    ("key", "crypto"),
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
            "facade", "kms", "crypto", "ivf", "kernel", "filter", "text", "format", "storage",
            "error",
        ],
    ),
    (
        "facade",
        &[
            "crypto", "ivf", "filter", "text", "format", "storage", "error",
        ],
    ),
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
const KMS_MAY_NAME: &[&str] = &["key::IndexKey", "provider::KeyProvider"];

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
            // A crate-root re-export (`crate::Database`): only the hooks and the facade
            // may use the public surface.
            if !matches!(layer, "hooks" | "facade") {
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
    assert!(violations("kms", "use crate::key::IndexKey;").is_empty());
    assert!(violations("facade", "use crate::{crypto::aead, format::RecordKind};").is_empty());
}
