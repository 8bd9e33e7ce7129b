//! The layer rule of `docs/DESIGN.md`: each module imports only the layers below it.

use std::collections::BTreeSet;
use std::path::Path;

/// Which crate modules each layer may name (`crate::<module>`), besides itself.
const ALLOWED: &[(&str, &[&str])] = &[
    ("kernel", &[]),
    ("storage", &[]),
    ("metric", &["kernel"]),
    ("ivf", &["kernel", "metric"]),
    ("crypto", &["error", "key", "FORMAT_VERSION"]),
    ("key", &["crypto", "error"]),
    // format names the public parameter types of the schedule (salt, id, lengths), not keys.
    ("format", &["error", "crypto", "metric", "FORMAT_VERSION"]),
];

fn sources(path: &Path) -> Vec<std::path::PathBuf> {
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

fn named_modules(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (i, _) in text.match_indices("crate::") {
        let rest = &text[i + "crate::".len()..];
        let name: String = rest
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        if !name.is_empty() {
            out.insert(name);
        }
    }
    out
}

#[test]
fn lower_layers_do_not_import_upper_ones() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    for (layer, allowed) in ALLOWED {
        let mut files = sources(&src.join(format!("{layer}.rs")));
        files.extend(sources(&src.join(layer)));
        assert!(!files.is_empty(), "no sources for {layer}");
        for f in files {
            let text = std::fs::read_to_string(&f).unwrap();
            for m in named_modules(&text) {
                assert!(
                    m == *layer || allowed.contains(&m.as_str()),
                    "{} names crate::{m}, which the {layer} layer may not use",
                    f.display()
                );
            }
        }
    }
}
