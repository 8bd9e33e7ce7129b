//! Metadata filters: a MongoDB-style JSON language, compiled once, evaluated many times.
//!
//! ```text
//! {"genre": "jazz"}                          bare value: $eq
//! {"year": {"$gte": 1950, "$lt": 1970}}      several operators on one field: all must hold
//! {"$or": [{"a.b": 1}, {"tags": {"$in": ["x", "y"]}}]}
//! {"price": {"$not": {"$gt": 10}}}           field-level $not (also matches a missing field)
//! {"$not": {"genre": "jazz"}}                top-level $not of a whole filter
//! {"$nor": [{"genre": "jazz"}, {"year": 1999}]}  none of them (MongoDB's $nor)
//! ```
//! Dotted paths walk nested objects (and arrays of objects). A condition on a field that
//! holds an array matches when the array as a whole, or any element, matches, as in
//! MongoDB. Numbers compare across integer and float; an order comparison between values of
//! different types never matches. `{"title": {"$regex": "^INV-2\\d{3}"}}` matches a string
//! (or an array holding a string) by a pattern of the `regex` crate (RE2 syntax, linear
//! time, see [`pattern`]); `{"body": {"$contains": "refund"}}` matches a string holding the
//! operand, or an array holding it as an element. Neither matches a missing field. `$ne`, `$nin` and `$not` match documents where the field
//! is missing; `null`, as a bare value, an `$eq` operand or an `$in` element, matches a
//! missing field too (and so `$ne: null` and a `$nin` holding `null` need the field), as in
//! MongoDB.

use std::cmp::Ordering;

use serde_json::{Map, Value};

use crate::error::{Error, Result};

mod pattern;

pub(crate) use pattern::StringTest;
use pattern::{Pattern, contains_holds, regex_holds};

/// The deepest nesting of JSON accepted in metadata and filters (objects and arrays): well
/// under serde_json's own limit of 128 when stored metadata is parsed again at open, and
/// shallow enough that no recursion over an accepted document can exhaust a small stack.
pub(crate) const MAX_JSON_DEPTH: usize = 64;

/// Whether `value` nests objects and arrays deeper than `max` levels (a scalar is at depth
/// 0, `{}` and `[]` at 1). Iterative: safe on documents of any depth.
pub(crate) fn json_deeper_than(value: &Value, max: usize) -> bool {
    let mut stack: Vec<(&Value, usize)> = vec![(value, 0)];
    while let Some((v, depth)) = stack.pop() {
        let children: Box<dyn Iterator<Item = &Value>> = match v {
            Value::Array(a) => Box::new(a.iter()),
            Value::Object(m) => Box::new(m.values()),
            _ => continue,
        };
        if depth + 1 > max {
            return true;
        }
        stack.extend(children.map(|c| (c, depth + 1)));
    }
    false
}

/// Drops `value` without recursion (serde_json's own drop recurses once per level, which a
/// hostile document of 100,000 levels turns into a stack overflow).
pub(crate) fn drop_iteratively(value: Value) {
    let mut stack = vec![value];
    while let Some(v) = stack.pop() {
        match v {
            Value::Array(a) => stack.extend(a),
            Value::Object(m) => stack.extend(m.into_iter().map(|(_, v)| v)),
            _ => {}
        }
    }
}

/// A compiled filter.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Filter {
    /// Every sub-filter matches (an empty list matches everything: `{}`).
    And(Vec<Filter>),
    /// At least one sub-filter matches.
    Or(Vec<Filter>),
    /// The sub-filter does not match.
    Not(Box<Filter>),
    /// A condition on the value(s) at a path.
    Field {
        /// Path segments.
        path: Vec<String>,
        /// The condition.
        cond: Cond,
    },
}

/// A condition on one field.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Cond {
    /// Equal (a value, or any array element, equals the operand).
    Eq(Value),
    /// Not `Eq`.
    Ne(Value),
    /// An order comparison with a number or string.
    Cmp(Ordering, bool, Value),
    /// Equal to any operand.
    In(ValueSet),
    /// Not `In`.
    Nin(ValueSet),
    /// The field exists (or not).
    Exists(bool),
    /// The inner condition does not hold.
    Not(Box<Cond>),
    /// Every inner condition holds.
    All(Vec<Cond>),
    /// `$regex`: a string at the path (or in an array there) matches the pattern.
    Regex(Pattern),
    /// `$contains`: a string at the path holds the operand as a substring, or an array there
    /// holds it as an element.
    Contains(Value),
}

impl Filter {
    /// Parses a filter document.
    ///
    /// # Errors
    /// [`Error::InvalidFilter`] naming the offending operator or path.
    pub(crate) fn parse(doc: &Value) -> Result<Filter> {
        if json_deeper_than(doc, MAX_JSON_DEPTH) {
            return Err(too_deep());
        }
        match doc {
            Value::Object(map) => parse_doc(map),
            _ => Err(Error::invalid_filter("a filter must be a JSON object")),
        }
    }

    /// Whether metadata `doc` (a JSON object, or `None` for an item without metadata)
    /// matches.
    pub(crate) fn matches(&self, doc: Option<&Value>) -> bool {
        match self {
            Filter::And(fs) => fs.iter().all(|f| f.matches(doc)),
            Filter::Or(fs) => fs.iter().any(|f| f.matches(doc)),
            Filter::Not(f) => !f.matches(doc),
            Filter::Field { path, cond } => {
                let Some(doc) = doc else {
                    return cond.holds(&[]);
                };
                // Fast path, no allocation: a path through objects only.
                match resolve_single(doc, path) {
                    Some(Some(v)) => cond.holds(&[v]),
                    Some(None) => cond.holds(&[]),
                    None => {
                        let mut values = Vec::new();
                        resolve(doc, path, &mut values);
                        cond.holds(&values)
                    }
                }
            }
        }
    }
}

fn parse_doc(map: &Map<String, Value>) -> Result<Filter> {
    let mut parts = Vec::with_capacity(map.len());
    for (key, value) in map {
        parts.push(match key.as_str() {
            "$and" | "$or" | "$nor" => {
                let list = value.as_array().filter(|a| !a.is_empty()).ok_or_else(|| {
                    Error::invalid_filter(format!("{key} needs a non-empty array"))
                })?;
                let subs = list.iter().map(Filter::parse).collect::<Result<Vec<_>>>()?;
                match key.as_str() {
                    "$and" => Filter::And(subs),
                    "$or" => Filter::Or(subs),
                    // MongoDB's $nor: none of them matches (so a missing field satisfies a
                    // condition on it, as with $not).
                    _ => Filter::Not(Box::new(Filter::Or(subs))),
                }
            }
            "$not" => {
                Filter::Not(Box::new(Filter::parse(value).map_err(|_| {
                    Error::invalid_filter("top-level $not needs a filter object")
                })?))
            }
            k if k.starts_with('$') => {
                return Err(Error::invalid_filter(format!("unknown operator {k}")));
            }
            path => Filter::Field {
                path: parse_path(path)?,
                cond: parse_cond(path, value)?,
            },
        });
    }
    Ok(if parts.len() == 1 {
        parts.remove(0)
    } else {
        Filter::And(parts)
    })
}

/// The error of a filter nested deeper than [`MAX_JSON_DEPTH`].
pub(crate) fn too_deep() -> Error {
    Error::invalid_filter(format!("a filter may nest at most {MAX_JSON_DEPTH} levels"))
}

fn parse_path(path: &str) -> Result<Vec<String>> {
    let segments: Vec<String> = path.split('.').map(str::to_owned).collect();
    if segments.len() > MAX_JSON_DEPTH {
        return Err(Error::invalid_filter(format!(
            "a path may have at most {MAX_JSON_DEPTH} segments"
        )));
    }
    if segments.iter().any(String::is_empty) {
        return Err(Error::invalid_filter(format!("invalid path '{path}'")));
    }
    Ok(segments)
}

/// Whether an object is an operator expression (`{"$gt": 1}`) rather than a literal.
fn is_operator_object(value: &Value) -> bool {
    matches!(value, Value::Object(m) if !m.is_empty() && m.keys().all(|k| k.starts_with('$')))
}

fn parse_cond(path: &str, value: &Value) -> Result<Cond> {
    let Value::Object(ops) = value else {
        return Ok(Cond::Eq(value.clone()));
    };
    if !is_operator_object(value) {
        if ops.keys().any(|k| k.starts_with('$')) {
            return Err(Error::invalid_filter(format!(
                "at '{path}': operators cannot be mixed with plain fields"
            )));
        }
        return Ok(Cond::Eq(value.clone()));
    }
    let mut conds = Vec::with_capacity(ops.len());
    for (op, operand) in ops {
        let bad = |what: &str| Error::invalid_filter(format!("at '{path}': {op} needs {what}"));
        conds.push(match op.as_str() {
            "$eq" => Cond::Eq(operand.clone()),
            "$ne" => Cond::Ne(operand.clone()),
            "$gt" | "$gte" | "$lt" | "$lte" => {
                if !(operand.is_number() || operand.is_string()) {
                    return Err(bad("a number or a string"));
                }
                let (ord, or_equal) = match op.as_str() {
                    "$gt" => (Ordering::Greater, false),
                    "$gte" => (Ordering::Greater, true),
                    "$lt" => (Ordering::Less, false),
                    _ => (Ordering::Less, true),
                };
                Cond::Cmp(ord, or_equal, operand.clone())
            }
            "$in" | "$nin" => {
                let list = ValueSet::new(operand.as_array().ok_or_else(|| bad("an array"))?);
                if op == "$in" {
                    Cond::In(list)
                } else {
                    Cond::Nin(list)
                }
            }
            "$exists" => Cond::Exists(operand.as_bool().ok_or_else(|| bad("true or false"))?),
            "$regex" => Cond::Regex(Pattern::compile(path, operand)?),
            "$contains" => Cond::Contains(operand.clone()),
            "$not" => {
                let inner = match operand {
                    Value::Object(_) if is_operator_object(operand) => parse_cond(path, operand)?,
                    _ => return Err(bad("an operator object")),
                };
                Cond::Not(Box::new(inner))
            }
            other => {
                return Err(Error::invalid_filter(format!(
                    "at '{path}': unknown operator {other}"
                )));
            }
        });
    }
    Ok(if conds.len() == 1 {
        conds.remove(0)
    } else {
        Cond::All(conds)
    })
}

/// The value at `path` when the walk meets no array before its end: `Some(Some(v))` found,
/// `Some(None)` missing, `None` when an array is on the way (use [`resolve`]).
fn resolve_single<'a>(value: &'a Value, path: &[String]) -> Option<Option<&'a Value>> {
    let mut at = value;
    for seg in path {
        match at {
            Value::Object(map) => match map.get(seg) {
                Some(v) => at = v,
                None => return Some(None),
            },
            Value::Array(_) => return None,
            _ => return Some(None),
        }
    }
    Some(Some(at))
}

/// The value an ordering by dotted `path` sees in metadata `doc`: a number or a string
/// reached through objects only (`None` when missing, of another type, or behind an array).
pub(crate) fn sort_value<'a>(doc: &'a Value, path: &[String]) -> Option<&'a Value> {
    match resolve_single(doc, path) {
        Some(Some(v)) if v.is_number() || v.is_string() => Some(v),
        _ => None,
    }
}

/// The segments of a dotted path: `None` when a segment is empty or there are more than
/// [`MAX_JSON_DEPTH`].
pub(crate) fn path_segments(path: &str) -> Option<Vec<String>> {
    parse_path(path).ok()
}

/// The strings at dotted `path` of metadata `doc` (walked as filters walk it: through
/// objects and arrays of objects), and the strings of arrays there, in document order: the
/// text of a metadata text field.
pub(crate) fn strings_at<'a>(doc: &'a Value, path: &str) -> Vec<&'a str> {
    let segments: Vec<String> = path.split('.').map(str::to_owned).collect();
    let mut values = Vec::new();
    resolve(doc, &segments, &mut values);
    let mut out = Vec::new();
    for v in values {
        match v {
            Value::String(s) => out.push(s.as_str()),
            Value::Array(items) => out.extend(items.iter().filter_map(Value::as_str)),
            _ => {}
        }
    }
    out
}

/// Collects the values at `path`, walking into arrays of objects on the way.
fn resolve<'a>(value: &'a Value, path: &[String], out: &mut Vec<&'a Value>) {
    let Some((head, rest)) = path.split_first() else {
        out.push(value);
        return;
    };
    match value {
        Value::Object(map) => {
            if let Some(v) = map.get(head) {
                resolve(v, rest, out);
            }
        }
        Value::Array(items) => {
            for item in items {
                if item.is_object() {
                    resolve(item, path, out);
                }
            }
        }
        _ => {}
    }
}

impl Cond {
    /// Whether the condition holds for the values found at the path (empty: missing).
    fn holds(&self, values: &[&Value]) -> bool {
        match self {
            Cond::Eq(v) => equals(values, v),
            Cond::Ne(v) => !equals(values, v),
            Cond::Cmp(ord, or_equal, v) => values.iter().any(|x| {
                any_element(x, |e| match compare(e, v) {
                    Some(Ordering::Equal) => *or_equal,
                    Some(o) => o == *ord,
                    None => false,
                })
            }),
            Cond::In(list) => list.holds(values),
            Cond::Nin(list) => !list.holds(values),
            Cond::Exists(want) => values.is_empty() != *want,
            Cond::Not(inner) => !inner.holds(values),
            Cond::All(conds) => conds.iter().all(|c| c.holds(values)),
            Cond::Regex(p) => regex_holds(p, values),
            Cond::Contains(v) => contains_holds(v, values, json_eq),
        }
    }

    /// Whether the condition tests strings by pattern or substring (`$regex`, `$contains`),
    /// which a listing allows only on a field with a pattern dictionary.
    pub(crate) fn tests_strings(&self) -> bool {
        match self {
            Cond::Regex(_) | Cond::Contains(_) => true,
            Cond::Not(inner) => inner.tests_strings(),
            Cond::All(conds) => conds.iter().any(Cond::tests_strings),
            _ => false,
        }
    }
}

impl Filter {
    /// Every condition of the filter with its path, in document order.
    pub(crate) fn conditions(&self) -> Vec<(&[String], &Cond)> {
        let mut out = Vec::new();
        let mut stack = vec![self];
        while let Some(f) = stack.pop() {
            match f {
                Filter::And(fs) | Filter::Or(fs) => stack.extend(fs.iter().rev()),
                Filter::Not(f) => stack.push(f),
                Filter::Field { path, cond } => out.push((path.as_slice(), cond)),
            }
        }
        out
    }
}

/// `$eq v` over the values found at a path: one of them (or an element of one) equals `v`;
/// `null` also matches a missing field.
fn equals(values: &[&Value], v: &Value) -> bool {
    (v.is_null() && values.is_empty()) || values.iter().any(|x| any_element(x, |e| json_eq(e, v)))
}

/// The operands of `$in` or `$nin`, hashed, so that testing a value costs a lookup instead
/// of a comparison with every operand (a filter may list hundreds).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct ValueSet {
    /// The operands, as given.
    values: Vec<Value>,
    /// The scalar operands by [`scalar_hash`] (positions in `values`).
    scalars: std::collections::HashMap<u64, Vec<usize>>,
    /// The operands that are arrays or objects.
    composites: Vec<usize>,
    /// Whether `null` is an operand (which matches a missing field).
    has_null: bool,
}

impl ValueSet {
    fn new(values: &[Value]) -> ValueSet {
        let mut set = ValueSet {
            values: values.to_vec(),
            scalars: std::collections::HashMap::new(),
            composites: Vec::new(),
            has_null: values.iter().any(Value::is_null),
        };
        for (i, v) in values.iter().enumerate() {
            match scalar_hash(v) {
                Some(h) => set.scalars.entry(h).or_default().push(i),
                None => set.composites.push(i),
            }
        }
        set
    }

    /// `$in` over the values found at a path: one of them (or an element of one) equals an
    /// operand, or the field is missing and `null` is an operand.
    fn holds(&self, values: &[&Value]) -> bool {
        (self.has_null && values.is_empty())
            || values.iter().any(|x| any_element(x, |e| self.contains(e)))
    }

    /// Whether `value` equals an operand ([`json_eq`]): a scalar can only equal a scalar of
    /// the same hash, an array or object only a composite operand.
    fn contains(&self, value: &Value) -> bool {
        let candidates: &[usize] = match scalar_hash(value) {
            Some(h) => self.scalars.get(&h).map_or(&[], Vec::as_slice),
            None => &self.composites,
        };
        candidates.iter().any(|&i| json_eq(value, &self.values[i]))
    }
}

/// What scalars equal under [`json_eq`] share: the type, and numbers by their `f64` value
/// (-0 as 0; exact integer equality implies equal `f64`s). `None` for arrays and objects.
/// The `$in` hash and the equality index's terms both key scalars by it.
#[derive(Hash)]
enum ScalarKey<'a> {
    Null,
    Bool(bool),
    Number(u64),
    String(&'a str),
}

fn scalar_key(value: &Value) -> Option<ScalarKey<'_>> {
    Some(match value {
        Value::Null => ScalarKey::Null,
        Value::Bool(b) => ScalarKey::Bool(*b),
        Value::Number(n) => ScalarKey::Number((n.as_f64()? + 0.0).to_bits()),
        Value::String(s) => ScalarKey::String(s),
        Value::Array(_) | Value::Object(_) => return None,
    })
}

/// A hash of [`scalar_key`].
fn scalar_hash(value: &Value) -> Option<u64> {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    scalar_key(value)?.hash(&mut h);
    Some(h.finish())
}

/// Tests the value itself and, if it is an array, each element.
fn any_element(value: &Value, test: impl Fn(&Value) -> bool) -> bool {
    test(value) || matches!(value, Value::Array(items) if items.iter().any(&test))
}

/// JSON equality where numbers compare by value across integer and float.
fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => number_cmp(x, y) == Some(Ordering::Equal),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| json_eq(p, q))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_eq(v, w)))
        }
        _ => a == b,
    }
}

/// Order of two values of the same type class (numbers or strings); `None` otherwise.
fn compare(a: &Value, b: &Value) -> Option<Ordering> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => number_cmp(x, y),
        (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

/// The exact order of two JSON numbers (integers and finite floats as the real numbers they
/// are, `-0` equal to `0`): a total order, as sorting needs (comparing through `f64` is
/// not: above 2^53 an integer can equal a float that equals another integer).
pub(crate) fn compare_numbers(x: &serde_json::Number, y: &serde_json::Number) -> Ordering {
    /// A number as an integer when it is one, else as a float.
    fn exact(n: &serde_json::Number) -> std::result::Result<i128, f64> {
        n.as_i64()
            .map(i128::from)
            .or_else(|| n.as_u64().map(i128::from))
            .ok_or_else(|| n.as_f64().unwrap_or(0.0))
    }
    /// The order of integer `i` and finite float `f`.
    fn int_float(i: i128, f: f64) -> Ordering {
        // 2^127: every integer here (at most 64 bits) lies well within.
        const LIMIT: f64 = 1.7014118346046923e38;
        if f >= LIMIT {
            return Ordering::Less;
        }
        if f < -LIMIT {
            return Ordering::Greater;
        }
        let floor = f.floor();
        match i.cmp(&(floor as i128)) {
            Ordering::Equal if f > floor => Ordering::Less,
            other => other,
        }
    }
    match (exact(x), exact(y)) {
        (Ok(a), Ok(b)) => a.cmp(&b),
        (Ok(a), Err(b)) => int_float(a, b),
        (Err(a), Ok(b)) => int_float(b, a).reverse(),
        (Err(a), Err(b)) => a.partial_cmp(&b).unwrap_or(Ordering::Equal),
    }
}

fn number_cmp(x: &serde_json::Number, y: &serde_json::Number) -> Option<Ordering> {
    match (x.as_i64(), y.as_i64()) {
        (Some(a), Some(b)) => Some(a.cmp(&b)),
        _ => match (x.as_u64(), y.as_u64()) {
            (Some(a), Some(b)) => Some(a.cmp(&b)),
            _ => x.as_f64()?.partial_cmp(&y.as_f64()?),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn m(filter: Value, doc: Value) -> bool {
        Filter::parse(&filter).unwrap().matches(Some(&doc))
    }

    #[test]
    fn operators() {
        let doc = json!({"a": 5, "s": "m", "t": [1, 2, 3], "n": {"x": 1.0, "y": [{"z": "q"}]}});
        assert!(m(json!({"a": 5}), doc.clone()));
        assert!(m(json!({"a": 5.0}), doc.clone()));
        assert!(m(json!({"a": {"$gt": 4.5, "$lte": 5}}), doc.clone()));
        assert!(!m(json!({"a": {"$gt": "4"}}), doc.clone()));
        assert!(m(json!({"s": {"$lt": "z"}}), doc.clone()));
        assert!(m(json!({"t": 2}), doc.clone()));
        assert!(m(json!({"t": [1, 2, 3]}), doc.clone()));
        assert!(m(json!({"t": {"$gt": 2}}), doc.clone()));
        assert!(!m(json!({"t": {"$gt": 3}}), doc.clone()));
        assert!(m(json!({"n.x": 1}), doc.clone()));
        assert!(m(json!({"n.y.z": "q"}), doc.clone()));
        assert!(m(json!({"a": {"$in": [1, 5]}}), doc.clone()));
        assert!(m(json!({"a": {"$nin": [1, 2]}}), doc.clone()));
        assert!(m(json!({"missing": {"$ne": 1}}), doc.clone()));
        assert!(m(json!({"missing": {"$nin": [1]}}), doc.clone()));
        assert!(m(json!({"missing": {"$exists": false}}), doc.clone()));
        // null matches a missing field, as in MongoDB; $ne: null needs the field.
        assert!(m(json!({"missing": null}), doc.clone()));
        assert!(m(json!({"missing": {"$in": [1, null]}}), doc.clone()));
        assert!(!m(json!({"missing": {"$ne": null}}), doc.clone()));
        assert!(!m(json!({"missing": {"$nin": [null]}}), doc.clone()));
        assert!(!m(json!({"a": null}), doc.clone()));
        assert!(m(json!({"a": {"$ne": null}}), doc.clone()));
        assert!(m(
            json!({"n": {"x": 1.0, "y": [{"z": "q"}]}, "n.w": null}),
            doc.clone()
        ));
        assert!(m(json!({"t": {"$nin": [null, 7]}}), doc.clone()));
        assert!(Filter::parse(&json!({"a": null})).unwrap().matches(None));
        assert!(m(json!({"a": {"$exists": true}}), doc.clone()));
        assert!(m(json!({"a": {"$not": {"$gt": 6}}}), doc.clone()));
        assert!(m(json!({"missing": {"$not": {"$gt": 6}}}), doc.clone()));
        assert!(m(json!({"$or": [{"a": 1}, {"s": "m"}]}), doc.clone()));
        assert!(!m(json!({"$and": [{"a": 5}, {"s": "x"}]}), doc.clone()));
        // $nor: none matches; a condition on a missing field does not match, so $nor of it does.
        assert!(!m(json!({"$nor": [{"a": 1}, {"s": "m"}]}), doc.clone()));
        assert!(m(json!({"$nor": [{"a": 1}, {"missing": 3}]}), doc.clone()));
        assert!(Filter::parse(&json!({"$nor": []})).is_err());
        assert!(m(json!({"$not": {"a": 1}}), doc.clone()));
        assert!(m(json!({"n": {"x": 1, "y": [{"z": "q"}]}}), doc.clone()));
        assert!(m(json!({}), doc.clone()));
        assert!(!Filter::parse(&json!({"a": 1})).unwrap().matches(None));
        assert!(
            Filter::parse(&json!({"a": {"$ne": 1}}))
                .unwrap()
                .matches(None)
        );
    }

    #[test]
    fn invalid_filters_name_the_problem() {
        let err = |f: Value| match Filter::parse(&f) {
            Err(Error::InvalidFilter { reason }) => reason,
            other => panic!("expected InvalidFilter, got {other:?}"),
        };
        assert!(err(json!({"a": {"$foo": 1}})).contains("$foo"));
        assert!(err(json!({"$foo": 1})).contains("$foo"));
        assert!(err(json!({"a": {"$in": 3}})).contains("$in"));
        assert!(err(json!({"$and": []})).contains("$and"));
        assert!(err(json!({"$or": {}})).contains("$or"));
        assert!(err(json!({"a": {"$exists": 1}})).contains("$exists"));
        assert!(err(json!({"a..b": 1})).contains("a..b"));
        assert!(err(json!({"a": {"$gt": [1]}})).contains("$gt"));
        assert!(err(json!({"a": {"$not": 3}})).contains("$not"));
        assert!(err(json!([1])).contains("object"));
        assert!(err(json!({"a": {"$gt": 1, "b": 2}})).contains("mixed"));
    }
}

/// The separator between a path and a value in an index term (a control character, which a
/// JSON object key may hold but a filter path practically never does; a collision would
/// only add candidates, never lose one).
const TERM_SEP: char = '\u{1f}';

/// The index term of an equality on `path` (segments joined by '.') with a scalar value;
/// `None` for arrays and objects, which equality indexes do not cover.
fn term(path: &str, value: &Value) -> Option<String> {
    let key = match scalar_key(value)? {
        ScalarKey::Null => "n".to_owned(),
        ScalarKey::Bool(b) => format!("b{b}"),
        ScalarKey::Number(bits) => format!("f{bits:x}"),
        ScalarKey::String(s) => format!("s{s}"),
    };
    Some(format!("{path}{TERM_SEP}{key}"))
}

/// Which metadata indexes hold the values at a path (the facade's schema decides; a path
/// no index covers is still filtered, by evaluating the filter on every item).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Coverage {
    /// The equality and range indexes hold its scalars.
    pub values: bool,
    /// The pattern dictionary holds its strings.
    pub strings: bool,
}

impl Coverage {
    /// The equality and range indexes only: every path of an index without a schema.
    #[cfg(test)]
    pub(crate) const VALUES: Coverage = Coverage {
        values: true,
        strings: false,
    };
}

/// The equality-index terms of a metadata document: one per (path, scalar) that an `$eq` or
/// `$in` condition on that path can match, walking paths as [`Filter::matches`] does (into
/// objects, through arrays of objects, and scalars inside an array at the path), for the
/// paths `covered` says the index holds. A superset is fine (the filter is still evaluated
/// on every candidate); a missing term is not.
pub(crate) fn index_terms(doc: &Value, covered: &dyn Fn(&str) -> Coverage) -> Vec<String> {
    let mut out = Vec::new();
    visit_scalars(doc, |path, scalar| {
        if covered(path).values {
            out.extend(term(path, scalar));
        }
    });
    out.sort_unstable();
    out.dedup();
    out
}

/// The range-index entries of a metadata document: every number with its path, walked as
/// [`index_terms`] walks (so a range condition on a path finds every number it can match),
/// `-0` as `0`, for the paths `covered` says the index holds.
pub(crate) fn index_numbers(doc: &Value, covered: &dyn Fn(&str) -> Coverage) -> Vec<(String, f64)> {
    let mut out = Vec::new();
    visit_scalars(doc, |path, scalar| {
        if let Some(x) = scalar.as_f64()
            && covered(path).values
        {
            out.push((path.to_owned(), x + 0.0));
        }
    });
    out
}

/// The pattern-dictionary entries of a metadata document: every string with its path,
/// walked as [`index_terms`] walks (a string at the path or in an array there), for the
/// paths whose strings `covered` says the dictionary holds; each (path, string) once.
pub(crate) fn index_strings(
    doc: &Value,
    covered: &dyn Fn(&str) -> Coverage,
) -> Vec<(String, String)> {
    let mut out = Vec::new();
    visit_scalars(doc, |path, scalar| {
        if let Some(s) = scalar.as_str()
            && covered(path).strings
        {
            out.push((path.to_owned(), s.to_owned()));
        }
    });
    out.sort_unstable();
    out.dedup();
    out
}

/// Calls `visit` with (path, value) for every scalar a condition on that path can test:
/// into objects, through arrays of objects, and the scalars inside an array at the path.
fn visit_scalars(doc: &Value, mut visit: impl FnMut(&str, &Value)) {
    let mut stack: Vec<(&Value, String)> = vec![(doc, String::new())];
    while let Some((value, prefix)) = stack.pop() {
        let Value::Object(map) = value else { continue };
        for (k, v) in map {
            // A key holding a dot is out of every filter's reach (a filter path splits at
            // dots): indexed, it would collide with the nested path of the same spelling
            // and make an exact plan ([`Planned::exact`]) find an item no filter matches.
            if k.contains('.') {
                continue;
            }
            let path = if prefix.is_empty() {
                k.clone()
            } else {
                format!("{prefix}.{k}")
            };
            match v {
                Value::Array(items) => {
                    for item in items {
                        if item.is_object() {
                            stack.push((item, path.clone()));
                        } else {
                            visit(&path, item);
                        }
                    }
                }
                Value::Object(_) => stack.push((v, path)),
                scalar => visit(&path, scalar),
            }
        }
    }
}

/// How to find a superset of a filter's matches from the equality and range indexes.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Plan {
    /// The items holding any of these terms.
    AnyOf(Vec<String>),
    /// The items holding a number at `path` within the bounds (inclusive, so that a bound
    /// rounded to `f64` still admits every match; `None`: unbounded).
    Range {
        /// The dotted path.
        path: String,
        /// The least number admitted.
        lo: Option<f64>,
        /// The greatest number admitted.
        hi: Option<f64>,
    },
    /// The items holding, at `path`, a string `test` accepts (the pattern dictionary).
    Strings {
        /// The dotted path.
        path: String,
        /// The test of each distinct string.
        test: StringTest,
    },
    /// The items every sub-plan finds (a caller may use just the smallest).
    All(Vec<Plan>),
    /// The items any sub-plan finds.
    Any(Vec<Plan>),
}

/// A [`Plan`] with whether it is exact.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Planned {
    /// The plan.
    pub plan: Plan,
    /// Whether the items the plan finds, every sub-plan of an `All` intersected (as
    /// `engine::candidates::set` does), are exactly the filter's matches and not a superset:
    /// a search may then take its candidates without evaluating the filter on them. True
    /// for `$eq` and `$in` of strings, booleans and numbers, and for order comparisons with
    /// numbers, each number of magnitude below 2^53 (where the indexes' `f64` keys order and
    /// equal as the filter's exact comparisons do), joined by `$and` and `$or` of such
    /// conditions only.
    pub exact: bool,
}

/// The magnitude from which not every integer is an `f64`.
const F64_EXACT_LIMIT: f64 = 9_007_199_254_740_992.0;

/// Whether the indexes' `f64` key of number `n` orders and equals against every stored
/// number as the filter's exact comparisons do: `n` is an `f64` (an integer of magnitude
/// below 2^53, or a float) of magnitude below 2^53, where no other stored number rounds
/// onto it.
fn number_is_exact(n: &serde_json::Number) -> bool {
    match (n.as_i64(), n.as_u64(), n.as_f64()) {
        (Some(i), _, _) => (i.unsigned_abs() as f64) < F64_EXACT_LIMIT,
        (_, Some(u), _) => (u as f64) < F64_EXACT_LIMIT,
        (_, _, Some(f)) => f.abs() < F64_EXACT_LIMIT,
        _ => false,
    }
}

/// Whether an `$eq` or `$in` operand's term finds exactly the items holding it.
fn operand_is_exact(v: &Value) -> bool {
    match v {
        Value::String(_) | Value::Bool(_) => true,
        Value::Number(n) => number_is_exact(n),
        Value::Null | Value::Array(_) | Value::Object(_) => false,
    }
}

impl Filter {
    /// A plan that finds a superset of this filter's matches through the equality, range
    /// and pattern indexes (of the paths `covered` says they hold), if the filter has an
    /// `$eq` or `$in` on scalars, an order comparison with a number, or a `$regex` or
    /// `$contains`, that every match must satisfy.
    pub(crate) fn plan(&self, covered: &dyn Fn(&str) -> Coverage) -> Option<Plan> {
        self.planned(covered).map(|p| p.plan)
    }

    /// [`Filter::plan`], with whether the plan is exact ([`Planned::exact`]).
    pub(crate) fn planned(&self, covered: &dyn Fn(&str) -> Coverage) -> Option<Planned> {
        match self {
            Filter::And(fs) => {
                let parts: Vec<Option<Planned>> = fs.iter().map(|f| f.planned(covered)).collect();
                // Exact only when every conjunct has an exact plan (the others would be
                // evaluated on the candidates).
                let exact = parts.iter().all(|p| p.as_ref().is_some_and(|p| p.exact));
                let plans: Vec<Plan> = parts.into_iter().flatten().map(|p| p.plan).collect();
                (!plans.is_empty()).then_some(Planned {
                    plan: Plan::All(plans),
                    exact,
                })
            }
            Filter::Or(fs) => fs
                .iter()
                .map(|f| f.planned(covered))
                .collect::<Option<Vec<Planned>>>()
                .map(|parts| Planned {
                    exact: parts.iter().all(|p| p.exact),
                    plan: Plan::Any(parts.into_iter().map(|p| p.plan).collect()),
                }),
            Filter::Not(_) => None,
            Filter::Field { path, cond } => {
                let path = path.join(".");
                cond.planned(&path, covered(&path))
            }
        }
    }
}

impl Cond {
    fn planned(&self, path: &str, covered: Coverage) -> Option<Planned> {
        let exact = match self {
            Cond::Eq(v) => operand_is_exact(v),
            Cond::In(list) => list.values.iter().all(operand_is_exact),
            Cond::Cmp(_, _, Value::Number(n)) => number_is_exact(n),
            Cond::All(conds) => conds
                .iter()
                .all(|c| c.planned(path, covered).is_some_and(|p| p.exact)),
            // `$contains` of a number also finds a number alone at the path (the filter
            // wants an array holding it); a pattern's strings are tested as the filter tests
            // them, but no more is claimed than needed.
            _ => false,
        };
        Some(Planned {
            plan: self.plan(path, covered, exact)?,
            exact,
        })
    }

    /// The plan of the condition; `exact`: whether its numbers are exact
    /// ([`number_is_exact`]), so that a strict bound may exclude its operand.
    fn plan(&self, path: &str, covered: Coverage, exact: bool) -> Option<Plan> {
        match self {
            // Every string the field holds (as a value or an array element) is in its
            // dictionary, so a string operand of `$contains` is found as a substring of one.
            Cond::Regex(p) if covered.strings => Some(Plan::Strings {
                path: path.to_owned(),
                test: StringTest::Regex(p.clone()),
            }),
            Cond::Contains(Value::String(s)) if covered.strings => Some(Plan::Strings {
                path: path.to_owned(),
                test: StringTest::Substring(s.clone()),
            }),
            Cond::Contains(v) if covered.values && !v.is_string() => {
                Some(Plan::AnyOf(vec![term(path, v)?]))
            }
            _ if !covered.values => None,
            // `null` also matches a missing field, which no term names.
            Cond::Eq(Value::Null) => None,
            Cond::In(list) if list.has_null => None,
            Cond::Eq(v) => Some(Plan::AnyOf(vec![term(path, v)?])),
            Cond::In(list) => list
                .values
                .iter()
                .map(|v| term(path, v))
                .collect::<Option<_>>()
                .map(Plan::AnyOf),
            Cond::Cmp(ord, or_equal, Value::Number(n)) => {
                // Exact comparisons of the numbers as JSON holds them imply the inclusive
                // comparison of their f64 roundings (rounding is monotonic). With `n` exact,
                // no other number rounds onto it, so a strict comparison excludes it.
                let x = n.as_f64()? + 0.0;
                let strict = exact && !*or_equal;
                Some(match ord {
                    Ordering::Less => Plan::Range {
                        path: path.to_owned(),
                        lo: None,
                        hi: Some(if strict { x.next_down() } else { x }),
                    },
                    _ => Plan::Range {
                        path: path.to_owned(),
                        lo: Some(if strict { x.next_up() } else { x }),
                        hi: None,
                    },
                })
            }
            Cond::All(conds) => {
                // Bounds on this path meet in one range (`$gt` with `$lt` is a narrow band,
                // though either alone may hold most items).
                let (mut lo, mut hi) = (None::<f64>, None::<f64>);
                let mut plans = Vec::new();
                for plan in conds.iter().filter_map(|c| c.planned(path, covered)) {
                    let plan = plan.plan;
                    match plan {
                        Plan::Range { lo: l, hi: h, .. } => {
                            lo = tighter(lo, l, f64::max);
                            hi = tighter(hi, h, f64::min);
                        }
                        other => plans.push(other),
                    }
                }
                if lo.is_some() || hi.is_some() {
                    plans.push(Plan::Range {
                        path: path.to_owned(),
                        lo,
                        hi,
                    });
                }
                (!plans.is_empty()).then_some(Plan::All(plans))
            }
            _ => None,
        }
    }
}

/// The tighter of two optional bounds (`pick` chooses between two present ones).
fn tighter(a: Option<f64>, b: Option<f64>, pick: fn(f64, f64) -> f64) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(pick(a, b)),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod index_tests {
    use serde_json::json;

    use super::*;

    /// Every document the filter matches holds a term of the plan's (a superset check
    /// against the evaluator, on documents and filters that exercise the path walk).
    #[test]
    fn plans_find_every_match() {
        let docs = [
            json!({"a": 1, "b": "x"}),
            json!({"a": 1.0, "b": ["x", "y"]}),
            json!({"a": {"b": 2}, "tags": [{"k": "red"}, {"k": "blue"}]}),
            json!({"a": [{"b": 2}, {"b": 3}], "n": null, "t": true}),
            json!({"a": -0.0, "b": ["z", ["x"]]}),
            json!({"a": [0.5, 7], "big": 9_007_199_254_740_993_u64, "neg": -9_007_199_254_740_993_i64}),
            json!({}),
        ];
        let filters = [
            json!({"a": 1}),
            json!({"a": 0}),
            json!({"b": "x"}),
            json!({"a.b": 2}),
            json!({"a.b": {"$in": [3, 9]}}),
            json!({"tags.k": "blue"}),
            json!({"n": null, "t": true}),
            json!({"t": true, "a.b": {"$gt": 0}}),
            json!({"$or": [{"b": "y"}, {"a": 1}]}),
            json!({"b": {"$eq": "z", "$ne": "q"}}),
            json!({"a": {"$gt": 0.5}}),
            json!({"a": {"$gte": 0.5, "$lt": 1}}),
            json!({"a": {"$lte": 0}}),
            json!({"a": {"$gte": 0}}),
            json!({"a.b": {"$gt": 2, "$lte": 3}}),
            json!({"big": {"$gt": 9_007_199_254_740_992_u64}}),
            json!({"big": {"$lte": 9_007_199_254_740_993_u64}}),
            json!({"neg": {"$lt": -9_007_199_254_740_992_i64}}),
            json!({"$or": [{"a": {"$lt": 0.7}}, {"b": "x"}]}),
        ];
        for f in &filters {
            let filter = Filter::parse(f).unwrap();
            let plan = filter
                .plan(&ALL)
                .unwrap_or_else(|| panic!("{f} has a plan"));
            for d in &docs {
                if filter.matches(Some(d)) {
                    let terms = index_terms(d, &ALL);
                    assert!(
                        covered(&plan, &terms, &index_numbers(d, &ALL), &[]),
                        "{f} matches {d} but its plan misses it"
                    );
                }
            }
        }
        for f in [
            json!({"b": {"$gt": "x"}}),
            json!({"$not": {"a": 1}}),
            json!({"a": [1]}),
            // null also matches a missing field, which holds no term.
            json!({"n": null}),
            json!({"n": {"$in": ["x", null]}}),
        ] {
            assert_eq!(Filter::parse(&f).unwrap().plan(&ALL), None, "{f}");
        }
    }

    /// Every path in the equality and range indexes, none in a pattern dictionary.
    fn values(_: &str) -> Coverage {
        Coverage::VALUES
    }
    const ALL: fn(&str) -> Coverage = values;

    /// Whether a document with these index entries is among the plan's candidates.
    fn covered(
        plan: &Plan,
        terms: &[String],
        numbers: &[(String, f64)],
        strings: &[(String, String)],
    ) -> bool {
        match plan {
            Plan::AnyOf(ts) => ts.iter().any(|t| terms.contains(t)),
            Plan::Range { path, lo, hi } => numbers.iter().any(|(p, x)| {
                p == path && lo.is_none_or(|lo| lo <= *x) && hi.is_none_or(|hi| *x <= hi)
            }),
            Plan::Strings { path, test } => {
                strings.iter().any(|(p, s)| p == path && test.accepts(s))
            }
            Plan::All(ps) => ps.iter().all(|p| covered(p, terms, numbers, strings)),
            Plan::Any(ps) => ps.iter().any(|p| covered(p, terms, numbers, strings)),
        }
    }

    /// `$regex` and `$contains` plans (through the pattern dictionary of covered paths, the
    /// equality index for a non-string element) find every match; uncovered paths get no
    /// plan.
    #[test]
    fn pattern_plans_find_every_match() {
        let patterns = |p: &str| Coverage {
            values: true,
            strings: p != "plain",
        };
        let docs = [
            json!({"t": "INV-2291", "tags": ["red", "blue"], "n": [1, 2.5]}),
            json!({"t": ["x", "INV-3000"], "tags": "redder", "o": [{"k": "deep"}]}),
            json!({"t": 7, "tags": [["red"]], "n": 1.0}),
            json!({"plain": "INV-2"}),
            json!({}),
        ];
        let filters = [
            json!({"t": {"$regex": "^INV-2\\d{3}$"}}),
            json!({"t": {"$regex": "INV"}}),
            json!({"tags": {"$contains": "red"}}),
            json!({"tags": {"$contains": "ed"}}),
            json!({"n": {"$contains": 1}}),
            json!({"o.k": {"$regex": "e+"}}),
            json!({"$or": [{"t": {"$regex": "x"}}, {"tags": {"$contains": "blue"}}]}),
        ];
        for f in &filters {
            let filter = Filter::parse(f).unwrap();
            let plan = filter
                .plan(&patterns)
                .unwrap_or_else(|| panic!("{f} has a plan"));
            for d in &docs {
                if filter.matches(Some(d)) {
                    let entries = (
                        index_terms(d, &patterns),
                        index_numbers(d, &patterns),
                        index_strings(d, &patterns),
                    );
                    assert!(
                        covered(&plan, &entries.0, &entries.1, &entries.2),
                        "{f} matches {d} but its plan misses it"
                    );
                }
            }
        }
        for f in [
            json!({"plain": {"$regex": "INV"}}),
            json!({"plain": {"$contains": "I"}}),
            json!({"tags": {"$contains": ["red"]}}),
            json!({"$not": {"t": {"$regex": "x"}}}),
        ] {
            assert_eq!(Filter::parse(&f).unwrap().plan(&patterns), None, "{f}");
        }
        assert_eq!(
            Filter::parse(&json!({"t": {"$regex": "x"}}))
                .unwrap()
                .plan(&ALL),
            None
        );
    }

    /// `ValueSet::contains` equals comparing with every operand, for scalars of every type,
    /// numbers written as integers and floats, -0, large integers, arrays and objects.
    #[test]
    fn value_sets_agree_with_linear_comparison() {
        let pool = [
            json!(null),
            json!(true),
            json!(false),
            json!(0),
            json!(-0.0),
            json!(1),
            json!(1.0),
            json!(2.5),
            json!(9_007_199_254_740_993_u64),
            json!(9_007_199_254_740_992_u64),
            json!(-9_007_199_254_740_993_i64),
            json!("1"),
            json!(""),
            json!("a"),
            json!([1, 2]),
            json!([1.0, 2]),
            json!({"k": 1}),
            json!({"k": 1.0}),
            json!([]),
        ];
        for mask in [
            0u32,
            1,
            0b1010_1010,
            0x7_ffff,
            0x5_5555,
            0x2_4924,
            0x4_0000,
            0x3_8000,
        ] {
            let operands: Vec<Value> = pool
                .iter()
                .enumerate()
                .filter(|(i, _)| mask & (1 << i) != 0)
                .map(|(_, v)| v.clone())
                .collect();
            let set = ValueSet::new(&operands);
            for v in &pool {
                assert_eq!(
                    set.contains(v),
                    operands.iter().any(|o| json_eq(v, o)),
                    "{v} in {operands:?}"
                );
            }
        }
    }

    /// Random numeric documents and range filters: every match is covered by the plan, and
    /// the plan of a one-sided range on a flat field admits nothing but matches.
    #[test]
    fn range_plans_cover_every_match_at_random() {
        let mut s = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s
        };
        let number = |r: u64| -> Value {
            match r % 5 {
                0 => json!((r >> 8) % 21),
                1 => json!(((r >> 8) % 2001) as f64 / 100.0 - 10.0),
                2 => json!(-0.0),
                3 => json!(9_007_199_254_740_990_u64 + (r >> 8) % 6),
                _ => json!(-((r >> 8) as i64 % 7)),
            }
        };
        for _ in 0..3000 {
            let (a, b, c, r) = (next(), next(), next(), next());
            let doc = match r % 3 {
                0 => json!({"x": number(a)}),
                1 => json!({"x": [number(a), number(b)], "y": "s"}),
                _ => json!({"n": [{"x": number(a)}, {"x": number(b)}]}),
            };
            let path = if r % 3 == 2 { "n.x" } else { "x" };
            let op = ["$lt", "$lte", "$gt", "$gte", "$eq", "$in"][(r >> 8) as usize % 6];
            let operand = match op {
                "$in" => json!([number(c), number(c >> 3)]),
                _ => number(c),
            };
            let filter = Filter::parse(&json!({path: {op: operand}})).unwrap();
            let planned = filter.planned(&ALL).unwrap();
            let found = covered(
                &planned.plan,
                &index_terms(&doc, &ALL),
                &index_numbers(&doc, &ALL),
                &[],
            );
            let matches = filter.matches(Some(&doc));
            assert!(found || !matches, "{doc} {op} {operand}");
            // An exact plan finds no item the filter does not match.
            assert!(!planned.exact || found == matches, "{doc} {op} {operand}");
        }
    }

    /// Which plans are exact, and that an exact plan finds exactly the matching documents
    /// (dotted keys, arrays, nested objects, `-0`, numbers beside 2^53).
    #[test]
    fn exact_plans_find_exactly_the_matches() {
        let docs = [
            json!({"a": 1, "b": "x", "a.b": 2}),
            json!({"a": 1.0, "b": ["x", "y"], "c": {"d.e": 5}}),
            json!({"a": {"b": 2}, "tags": [{"k": "red"}, {"k": "blue"}]}),
            json!({"a": [{"b": 2}, {"b": 3}], "n": null, "t": true}),
            json!({"a": -0.0, "b": ["z", ["x"]], "c": {"d": {"e": 5}}}),
            json!({"a": [0.5, 7], "big": 9_007_199_254_740_993_u64}),
            json!({"a": [[1]], "big": 9_007_199_254_740_991_u64, "t": false}),
            json!({}),
        ];
        let exact = [
            json!({"a": 1}),
            json!({"a": 0}),
            json!({"b": "x"}),
            json!({"a.b": 2}),
            json!({"c.d.e": 5}),
            json!({"a.b": {"$in": [3, 9]}}),
            json!({"tags.k": "blue"}),
            json!({"t": true, "a.b": {"$gt": 2}}),
            json!({"$or": [{"b": "y"}, {"a": {"$lt": 1}}]}),
            json!({"a": {"$gte": 0.5, "$lt": 1}}),
            json!({"a": {"$lt": 0}}),
            json!({"a": {"$gt": 0}}),
            json!({"a": {"$lte": 0}}),
            json!({"big": {"$gt": 9_007_199_254_740_990_u64}}),
            json!({"big": {"$eq": 9_007_199_254_740_991_u64}}),
        ];
        for f in &exact {
            let filter = Filter::parse(f).unwrap();
            let planned = filter.planned(&ALL).unwrap();
            assert!(planned.exact, "{f} should have an exact plan");
            for d in &docs {
                let found = covered(
                    &planned.plan,
                    &index_terms(d, &ALL),
                    &index_numbers(d, &ALL),
                    &[],
                );
                assert_eq!(found, filter.matches(Some(d)), "{f} on {d}");
            }
        }
        for f in [
            // 2^53: 2^53 + 1 rounds onto it.
            json!({"big": {"$lt": 9_007_199_254_740_992_u64}}),
            json!({"big": 9_007_199_254_740_992_u64}),
            // A conjunct without a plan is left to the filter.
            json!({"b": {"$eq": "z", "$ne": "q"}}),
            json!({"b": "x", "t": {"$ne": true}}),
            json!({"n": {"$contains": 1}}),
        ] {
            let planned = Filter::parse(&f).unwrap().planned(&ALL).unwrap();
            assert!(!planned.exact, "{f} should not claim an exact plan");
        }
    }
}
