//! The metadata schema: how each metadata field is indexed and searched, fixed at creation.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::filter::{Coverage, MAX_JSON_DEPTH};
use crate::format::manifest::StoredField;

/// How one metadata field is indexed and searched (see [`MetadataSchema`]).
///
/// ```
/// use ciphervec::FieldSchema;
/// assert!(FieldSchema::FILTERABLE.filterable && !FieldSchema::FILTERABLE.pattern);
/// assert!(FieldSchema::PATTERN.filterable && FieldSchema::PATTERN.pattern);
/// assert!(FieldSchema::FULL_TEXT.full_text && !FieldSchema::FULL_TEXT.filterable);
/// ```
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FieldSchema {
    /// The metadata indexes (equality, range) hold the field's values, and
    /// [`EncryptedIndex::query_metadata`](crate::EncryptedIndex::query_metadata) may filter
    /// on it.
    pub filterable: bool,
    /// A dictionary of the field's distinct strings is kept too, for `$regex` and
    /// `$contains` (needs `filterable`).
    pub pattern: bool,
    /// The field's string is analyzed for BM25 instead (a text field): not filterable, no
    /// pattern.
    pub full_text: bool,
}

impl FieldSchema {
    /// Filterable through the equality and range indexes: every field the schema does not
    /// name.
    pub const FILTERABLE: FieldSchema = FieldSchema {
        filterable: true,
        pattern: false,
        full_text: false,
    };
    /// Filterable, with a pattern dictionary for `$regex` and `$contains`.
    pub const PATTERN: FieldSchema = FieldSchema {
        filterable: true,
        pattern: true,
        full_text: false,
    };
    /// A text field for BM25 (see [`IndexConfig::text_fields`](crate::IndexConfig::text_fields)).
    pub const FULL_TEXT: FieldSchema = FieldSchema {
        filterable: false,
        pattern: false,
        full_text: true,
    };
    /// Stored and returned, but neither indexed nor searchable (a listing refuses filters
    /// on it; a vector query's filter still evaluates it on every candidate).
    pub const STORED_ONLY: FieldSchema = FieldSchema {
        filterable: false,
        pattern: false,
        full_text: false,
    };

    /// What the schema lets the metadata indexes hold of the field.
    pub(crate) fn coverage(self) -> Coverage {
        Coverage {
            values: self.filterable,
            strings: self.pattern,
        }
    }

    /// Why the combination is not allowed, if it is not.
    fn conflict(self) -> Option<&'static str> {
        if self.pattern && !self.filterable {
            Some("pattern needs filterable")
        } else if self.full_text && (self.filterable || self.pattern) {
            Some("full_text is neither filterable nor pattern")
        } else {
            None
        }
    }
}

/// The per-field metadata schema of an index, fixed at creation
/// ([`IndexConfig::metadata_schema`](crate::IndexConfig::metadata_schema)) and stored, sealed,
/// in the manifest.
///
/// A field is a dotted path (`"a.b"` is key `b` of the object at key `a`); a path the schema
/// does not name takes the setting of its nearest named ancestor (naming `"doc"` as
/// [`FieldSchema::STORED_ONLY`] covers `"doc.title"`), and is [`FieldSchema::FILTERABLE`]
/// when none is named. The schema decides what the in-memory metadata indexes hold, and so
/// how a vector query's filter is evaluated (through an index, or on every candidate: the
/// same rows either way); a listing
/// ([`EncryptedIndex::query_metadata`](crate::EncryptedIndex::query_metadata)) enforces it.
///
/// ```
/// use ciphervec::{FieldSchema, MetadataSchema};
/// let schema = MetadataSchema::from_json(&serde_json::json!({
///     "title": {"pattern": true},
///     "body": {"full_text": true},
///     "raw": {"filterable": false},
/// }))?;
/// assert_eq!(schema.field("title"), FieldSchema::PATTERN);
/// assert_eq!(schema.field("body"), FieldSchema::FULL_TEXT);
/// assert_eq!(schema.field("raw.part"), FieldSchema::STORED_ONLY);
/// assert_eq!(schema.field("team"), FieldSchema::FILTERABLE);
/// # Ok::<(), ciphervec::Error>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MetadataSchema {
    fields: BTreeMap<String, FieldSchema>,
}

/// Longest field path a schema names, in bytes.
const MAX_FIELD_LEN: usize = 1024;
/// Most fields a schema names.
const MAX_FIELDS: usize = 4096;

impl MetadataSchema {
    /// A schema that names no field: every field filterable.
    pub fn new() -> MetadataSchema {
        MetadataSchema::default()
    }

    /// Names `field` (a dotted path) with `schema`, replacing any earlier setting of it.
    /// Checked by [`Database::create_index`](crate::Database::create_index).
    pub fn with_field(mut self, field: &str, schema: FieldSchema) -> MetadataSchema {
        self.fields.insert(field.to_owned(), schema);
        self
    }

    /// Parses `{"field": {"filterable": bool, "pattern": bool, "full_text": bool}, ...}`:
    /// each key optional, `filterable` true unless `full_text` is; `pattern` needs
    /// `filterable`; `full_text` is neither filterable nor pattern.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] naming the field: not an object of booleans, an unknown
    /// key, a conflicting combination, or an empty or overlong path.
    pub fn from_json(value: &Value) -> Result<MetadataSchema> {
        let fields = value
            .as_object()
            .ok_or_else(|| Error::invalid_argument("a metadata schema must be a JSON object"))?;
        let mut schema = MetadataSchema::new();
        for (name, settings) in fields {
            let bad =
                |what: &str| Error::invalid_argument(format!("schema field '{name}': {what}"));
            let settings = settings
                .as_object()
                .ok_or_else(|| bad("needs an object of filterable, pattern, full_text"))?;
            let flag = |key: &str, settings: &Map<String, Value>| -> Result<Option<bool>> {
                settings
                    .get(key)
                    .map(|v| {
                        v.as_bool()
                            .ok_or_else(|| bad(&format!("{key} must be true or false")))
                    })
                    .transpose()
            };
            if let Some(key) = settings
                .keys()
                .find(|k| !matches!(k.as_str(), "filterable" | "pattern" | "full_text"))
            {
                return Err(bad(&format!("unknown setting '{key}'")));
            }
            let full_text = flag("full_text", settings)?.unwrap_or(false);
            let field = FieldSchema {
                filterable: flag("filterable", settings)?.unwrap_or(!full_text),
                pattern: flag("pattern", settings)?.unwrap_or(false),
                full_text,
            };
            schema = schema.with_field(name, field);
        }
        schema.check()?;
        Ok(schema)
    }

    /// The schema as [`from_json`](Self::from_json) reads it, every setting written out.
    pub fn to_json(&self) -> Value {
        Value::Object(
            self.fields
                .iter()
                .map(|(name, f)| {
                    let settings = serde_json::json!({
                        "filterable": f.filterable,
                        "pattern": f.pattern,
                        "full_text": f.full_text,
                    });
                    (name.clone(), settings)
                })
                .collect(),
        )
    }

    /// The setting of `path`: its own, else its nearest named ancestor's, else
    /// [`FieldSchema::FILTERABLE`].
    pub fn field(&self, path: &str) -> FieldSchema {
        if self.fields.is_empty() {
            return FieldSchema::FILTERABLE;
        }
        let mut at = path;
        loop {
            if let Some(&f) = self.fields.get(at) {
                return f;
            }
            match at.rfind('.') {
                Some(dot) => at = &at[..dot],
                None => return FieldSchema::FILTERABLE,
            }
        }
    }

    /// The schema as the manifest stores it.
    pub(crate) fn from_stored(fields: &[StoredField]) -> MetadataSchema {
        fields.iter().fold(MetadataSchema::new(), |schema, f| {
            schema.with_field(
                &f.path,
                FieldSchema {
                    filterable: f.filterable,
                    pattern: f.pattern,
                    full_text: f.full_text,
                },
            )
        })
    }

    /// The setting of a field the schema names itself (not through an ancestor).
    pub(crate) fn named(&self, field: &str) -> Option<FieldSchema> {
        self.fields.get(field).copied()
    }

    /// The named fields and their settings, in path order.
    pub fn fields(&self) -> impl Iterator<Item = (&str, FieldSchema)> {
        self.fields.iter().map(|(k, &v)| (k.as_str(), v))
    }

    /// The text fields (named [`FieldSchema::full_text`]), in path order.
    pub fn text_fields(&self) -> impl Iterator<Item = &str> {
        self.fields().filter(|(_, f)| f.full_text).map(|(k, _)| k)
    }

    /// Whether every field is filterable without a pattern dictionary (the schema of an index
    /// that names none).
    pub(crate) fn is_plain(&self) -> bool {
        self.fields.values().all(|&f| f == FieldSchema::FILTERABLE)
    }

    /// Checks every named field: a valid path, an allowed combination; at most
    /// [`MAX_FIELDS`] fields.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] naming the field.
    pub(crate) fn check(&self) -> Result<()> {
        if self.fields.len() > MAX_FIELDS {
            return Err(Error::invalid_argument(format!(
                "a metadata schema names at most {MAX_FIELDS} fields"
            )));
        }
        for (name, field) in &self.fields {
            let path_ok = !name.is_empty()
                && name.len() <= MAX_FIELD_LEN
                && name.split('.').count() <= MAX_JSON_DEPTH
                && !name.split('.').any(str::is_empty)
                && !name.starts_with('$');
            if !path_ok {
                return Err(Error::invalid_argument(format!(
                    "schema field '{name:.64}': not a dotted path of non-empty keys"
                )));
            }
            if let Some(why) = field.conflict() {
                return Err(Error::invalid_argument(format!(
                    "schema field '{name}': {why}"
                )));
            }
            if field.full_text && name == CONTENTS_FIELD {
                return Err(Error::invalid_argument(format!(
                    "'{CONTENTS_FIELD}' names the contents in text queries: a metadata text \
                     field needs another name"
                )));
            }
        }
        Ok(())
    }
}

/// The name text queries give the items' contents ([`IndexConfig::full_text`]).
///
/// [`IndexConfig::full_text`]: crate::IndexConfig::full_text
pub(crate) const CONTENTS_FIELD: &str = "contents";

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn json_settings_default_and_conflict_as_documented() {
        let ok = |v: Value| MetadataSchema::from_json(&v).unwrap();
        assert_eq!(ok(json!({"a": {}})).field("a"), FieldSchema::FILTERABLE);
        assert_eq!(
            ok(json!({"a": {"pattern": true}})).field("a"),
            FieldSchema::PATTERN
        );
        assert_eq!(
            ok(json!({"a": {"full_text": true}})).field("a"),
            FieldSchema::FULL_TEXT
        );
        assert_eq!(
            ok(json!({"a": {"filterable": false}})).field("a.b.c"),
            FieldSchema::STORED_ONLY
        );
        let nested = ok(json!({"a": {"filterable": false}, "a.b": {"pattern": true}}));
        assert_eq!(nested.field("a.b.c"), FieldSchema::PATTERN);
        assert_eq!(nested.field("a.c"), FieldSchema::STORED_ONLY);
        assert_eq!(nested.field("ab"), FieldSchema::FILTERABLE);
        let round = ok(json!({"x": {"pattern": true}, "y": {"full_text": true}}));
        assert_eq!(ok(round.to_json()), round);
        for bad in [
            json!([]),
            json!({"a": true}),
            json!({"a": {"pattern": true, "filterable": false}}),
            json!({"a": {"full_text": true, "pattern": true}}),
            json!({"a": {"full_text": true, "filterable": true}}),
            json!({"a": {"patern": true}}),
            json!({"a": {"pattern": 1}}),
            json!({"": {}}),
            json!({"a..b": {}}),
            json!({"contents": {"full_text": true}}),
        ] {
            assert!(
                matches!(
                    MetadataSchema::from_json(&bad),
                    Err(Error::InvalidArgument { .. })
                ),
                "{bad}"
            );
        }
    }
}
