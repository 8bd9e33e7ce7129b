//! `$regex` and `$contains`: the string tests of the filter language, and the limits that
//! keep a hostile pattern cheap.
//!
//! Patterns are compiled by the `regex` crate (RE2 syntax: no look-around, no
//! back-references), whose matching takes time linear in the text whatever the pattern, so
//! `(a+)+$` over a long string answers as fast as `a+$`. What a pattern may cost to
//! *compile* is bounded here: its text by [`MAX_PATTERN_LEN`], its compiled program by
//! [`REGEX_SIZE_LIMIT`] and its nesting by [`REGEX_NEST_LIMIT`]; a pattern over any limit,
//! or one that does not parse, is [`Error::InvalidFilter`]. A filter compiles each of its
//! patterns once, when it is parsed.

use serde_json::Value;

use crate::error::{Error, Result};

/// The longest `$regex` pattern, in bytes.
pub(crate) const MAX_PATTERN_LEN: usize = 4096;
/// The most heap a compiled pattern may take (the `regex` crate's `size_limit`; its
/// default is 10 MiB). `\w{1000}` compiles to about 0.5 MiB under Unicode, `\w{3000}` is
/// refused.
pub(crate) const REGEX_SIZE_LIMIT: usize = 1 << 20;
/// The deepest nesting of groups and repetitions in a pattern (`nest_limit`).
pub(crate) const REGEX_NEST_LIMIT: u32 = 64;

/// A compiled `$regex` pattern.
#[derive(Clone, Debug)]
pub(crate) struct Pattern(regex::Regex);

impl PartialEq for Pattern {
    fn eq(&self, other: &Pattern) -> bool {
        self.0.as_str() == other.0.as_str()
    }
}

impl Pattern {
    /// Compiles the operand of `$regex` at `path`.
    ///
    /// # Errors
    /// [`Error::InvalidFilter`] when the operand is not a string, is longer than
    /// [`MAX_PATTERN_LEN`], does not parse, or compiles past the size or nesting limits. The
    /// reason names the path, not the pattern.
    pub(crate) fn compile(path: &str, operand: &Value) -> Result<Pattern> {
        let source = operand
            .as_str()
            .ok_or_else(|| Error::invalid_filter(format!("at '{path}': $regex needs a string")))?;
        if source.len() > MAX_PATTERN_LEN {
            return Err(Error::invalid_filter(format!(
                "at '{path}': a $regex pattern may hold at most {MAX_PATTERN_LEN} bytes"
            )));
        }
        regex::RegexBuilder::new(source)
            .size_limit(REGEX_SIZE_LIMIT)
            .nest_limit(REGEX_NEST_LIMIT)
            .build()
            .map(Pattern)
            .map_err(|e| {
                Error::invalid_filter(match e {
                    regex::Error::CompiledTooBig(_) => format!(
                        "at '{path}': the $regex pattern compiles past the limit of \
                         {REGEX_SIZE_LIMIT} bytes"
                    ),
                    _ => format!(
                        "at '{path}': the $regex pattern does not parse (regex crate syntax, \
                         at most {REGEX_NEST_LIMIT} levels of nesting)"
                    ),
                })
            })
    }

    /// Whether the pattern matches anywhere in `text` (anchor it with `^`/`$` to match the
    /// whole string).
    pub(crate) fn is_match(&self, text: &str) -> bool {
        self.0.is_match(text)
    }
}

/// A test of one string, as the pattern dictionary of a field applies it to each distinct
/// string the field holds.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum StringTest {
    /// The pattern matches.
    Regex(Pattern),
    /// The string holds this substring.
    Substring(String),
}

impl StringTest {
    /// Whether `text` passes.
    pub(crate) fn accepts(&self, text: &str) -> bool {
        match self {
            StringTest::Regex(p) => p.is_match(text),
            StringTest::Substring(s) => text.contains(s.as_str()),
        }
    }
}

/// `$regex` over the values found at a path: one of them is a string the pattern matches,
/// or an array holding such a string. Numbers, booleans and missing fields never match.
pub(crate) fn regex_holds(pattern: &Pattern, values: &[&Value]) -> bool {
    let test = |v: &Value| v.as_str().is_some_and(|s| pattern.is_match(s));
    values
        .iter()
        .any(|v| test(v) || matches!(v, Value::Array(items) if items.iter().any(test)))
}

/// `$contains` over the values found at a path: one of them is a string holding the operand
/// (a string) as a substring, or an array holding an element equal to the operand (`eq`:
/// the filter's JSON equality, numbers by value).
pub(crate) fn contains_holds(
    operand: &Value,
    values: &[&Value],
    eq: impl Fn(&Value, &Value) -> bool,
) -> bool {
    values.iter().any(|v| match v {
        Value::String(s) => operand.as_str().is_some_and(|o| s.contains(o)),
        Value::Array(items) => items.iter().any(|e| eq(e, operand)),
        _ => false,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn limits_refuse_hostile_patterns_as_invalid_filters() {
        let compile = |p: &str| Pattern::compile("f", &json!(p));
        assert!(compile("^INV-2\\d{3}$").is_ok());
        assert!(compile("(a+)+$").is_ok());
        for bad in [
            "(".to_owned(),
            "a{5".to_owned(),
            "(?<=a)b".to_owned(),
            "\\w{3000}".to_owned(),
            "a".repeat(MAX_PATTERN_LEN + 1),
            format!("{}a{}", "(".repeat(70), ")".repeat(70)),
        ] {
            match compile(&bad) {
                Err(Error::InvalidFilter { reason }) => {
                    assert!(
                        bad.len() < 4 || !reason.contains(&bad),
                        "the reason leaks the pattern"
                    );
                }
                other => panic!("{bad:.40}: {other:?}"),
            }
        }
        assert!(matches!(
            Pattern::compile("f", &json!(3)),
            Err(Error::InvalidFilter { .. })
        ));
    }

    #[test]
    fn contains_is_a_substring_of_a_string_or_an_element_of_an_array() {
        let eq = |a: &Value, b: &Value| a == b;
        let holds = |op: Value, v: Value| contains_holds(&op, &[&v], eq);
        assert!(holds(json!("ver"), json!("overdue")));
        assert!(holds(json!(""), json!("x")));
        assert!(!holds(json!("x"), json!(["xy"])));
        assert!(holds(json!("xy"), json!(["xy", 1])));
        assert!(holds(json!(1), json!(["xy", 1])));
        assert!(!holds(json!(1), json!(1)));
        assert!(!holds(json!("1"), json!(1)));
        assert!(!contains_holds(&json!("a"), &[], eq));
    }
}
