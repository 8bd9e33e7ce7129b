//! The command-line flags of the examples: `--name VALUE` pairs, read in one place.

/// The value after `flag` on the command line, if any.
pub fn arg(flag: &str) -> Option<String> {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let at = argv.iter().position(|a| a == flag)?;
    argv.get(at + 1).cloned()
}

/// The number after `flag` on the command line, or `default`.
///
/// # Panics
/// When the value is not a number (a usage error of the example).
#[allow(dead_code)]
pub fn num(flag: &str, default: usize) -> usize {
    arg(flag).map_or(default, |v| v.parse().expect("a number"))
}
