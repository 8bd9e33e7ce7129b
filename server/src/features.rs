//! What an index is created with beyond its type, metric and lists: the metadata schema, the
//! text fields (the contents and metadata fields for BM25), BM25's parameters and the storage
//! precision. Parsed from `CreateIndexRequest`'s fields once, applied to a core
//! [`IndexConfig`], and read back from one for `describe`.

use ciphervec::{IndexConfig, MetadataSchema, StoragePrecision};
use serde_json::{Map, Value, json};

use crate::error::ApiError;

/// The name CyborgDB's wire gives the contents when it lists them among text fields (and
/// the core's name for them in text queries).
pub const CONTENTS: &str = "contents";

/// The analyzer reported in `describe`'s `bm25.analyzer_version`: the core's tokenizer
/// (Unicode words, lowercased, no stemming, no stop words).
const ANALYZER: &str = "ciphervec-unicode-words-v1";

/// CyborgDB's TurboQuant tiers, which ciphervec does not have.
const TURBOQUANT: [&str; 4] = ["tq12", "tq8", "tq6", "tq4"];

/// The create-time features of an index, checked.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Features {
    /// Per-field metadata policy (metadata text fields included).
    pub schema: MetadataSchema,
    /// Metadata fields named by `text_fields` (merged into the schema by the core).
    pub text_fields: Vec<String>,
    /// Whether the contents are a text field.
    pub full_text: bool,
    /// BM25's `(k1, b)` when asked (`None`: the core's defaults).
    pub bm25: Option<(f32, f32)>,
    /// How re-rank vectors are stored.
    pub precision: StoragePrecision,
}

/// The wire's create fields this module reads.
pub struct Asked<'a> {
    /// `metadata_schema`.
    pub metadata_schema: Option<&'a Map<String, Value>>,
    /// `text_fields`.
    pub text_fields: Option<&'a [String]>,
    /// `bm25_k1`.
    pub bm25_k1: Option<f64>,
    /// `bm25_b`.
    pub bm25_b: Option<f64>,
    /// `storage_precision`.
    pub storage_precision: Option<&'a str>,
}

impl Features {
    /// The features a create request asks for. `contents` among the text fields (or named
    /// `{"full_text": true}` in the schema) is the contents; every other text field is a
    /// metadata field. The core checks the rest when the index is created (a field both
    /// named a text field and otherwise, invalid BM25 parameters).
    ///
    /// # Errors
    /// 400 for a schema the core does not read, BM25 parameters without a text field (as
    /// CyborgDB's service answers), or a precision ciphervec does not have.
    pub fn parse(asked: &Asked<'_>) -> Result<Features, ApiError> {
        let precision = precision(asked.storage_precision)?;
        let mut full_text = false;
        let schema = match asked.metadata_schema {
            None => MetadataSchema::new(),
            Some(fields) => {
                let mut fields = fields.clone();
                // `{"full_text": true}` as a caller writes it, or with `filterable` and
                // `pattern` false as the Python SDK fills them in; anything else on
                // `contents` goes to the core, which refuses it with the reason.
                let flag = |policy: &Value, key: &str| policy.get(key).and_then(Value::as_bool);
                if let Some(policy) = fields.get(CONTENTS)
                    && flag(policy, "full_text") == Some(true)
                    && flag(policy, "filterable") != Some(true)
                    && flag(policy, "pattern") != Some(true)
                {
                    fields.remove(CONTENTS);
                    full_text = true;
                }
                MetadataSchema::from_json(&Value::Object(fields))
                    .map_err(|e| ApiError::bad_request(format!("metadata_schema: {e}")))?
            }
        };
        let mut text_fields = Vec::new();
        for name in asked.text_fields.unwrap_or_default() {
            if name == CONTENTS {
                full_text = true;
            } else if !text_fields.contains(name) {
                text_fields.push(name.clone());
            }
        }
        let has_text =
            full_text || !text_fields.is_empty() || schema.text_fields().next().is_some();
        let bm25 = match (asked.bm25_k1, asked.bm25_b) {
            (None, None) => None,
            _ if !has_text => {
                return Err(ApiError::bad_request(
                    "bm25_k1/bm25_b are BM25 scoring parameters and need at least one full_text \
                     field (mark one in metadata_schema, or pass text_fields)",
                ));
            }
            (k1, b) => {
                let (default_k1, default_b) = IndexConfig::ivf_flat(1).bm25_params();
                Some((
                    k1.map_or(default_k1, |v| v as f32),
                    b.map_or(default_b, |v| v as f32),
                ))
            }
        };
        Ok(Features {
            schema,
            text_fields,
            full_text,
            bm25,
            precision,
        })
    }

    /// `config` with these features.
    pub fn apply(&self, config: IndexConfig) -> IndexConfig {
        let names: Vec<&str> = self.text_fields.iter().map(String::as_str).collect();
        let mut config = config
            .metadata_schema(self.schema.clone())
            .text_fields(&names)
            .full_text(self.full_text)
            .storage_precision(self.precision);
        if let Some((k1, b)) = self.bm25 {
            config = config.bm25(k1, b);
        }
        config
    }

    /// The features of an existing index's configuration.
    pub fn of(config: &IndexConfig) -> Features {
        Features {
            schema: config.schema().clone(),
            text_fields: Vec::new(),
            full_text: config.is_full_text(),
            bm25: Some(config.bm25_params()),
            precision: config.precision(),
        }
    }

    /// Whether the index has a text field (so text and hybrid queries work).
    pub fn has_text(&self) -> bool {
        self.full_text || self.schema.text_fields().next().is_some()
    }

    /// `describe`'s `metadata_schema`: every named field with every setting written out (as
    /// CyborgDB's service answers), the contents listed as a text field when they are one.
    pub fn schema_json(&self) -> Value {
        let mut schema = match self.schema.to_json() {
            Value::Object(map) => map,
            _ => Map::new(),
        };
        if self.full_text {
            schema.insert(
                CONTENTS.to_owned(),
                json!({"filterable": false, "pattern": false, "full_text": true}),
            );
        }
        Value::Object(schema)
    }

    /// `describe`'s `bm25`: the parameters when the index has a text field, else `null`.
    pub fn bm25_json(&self) -> Value {
        if !self.has_text() {
            return Value::Null;
        }
        let (k1, b) = self
            .bm25
            .unwrap_or_else(|| IndexConfig::ivf_flat(1).bm25_params());
        json!({"k1": decimal(k1), "b": decimal(b), "analyzer_version": ANALYZER})
    }
}

/// An `f32` as the `f64` of its shortest decimal form, so that the 1.2 a caller sent reads
/// back as 1.2 rather than as 1.2000000476837158.
fn decimal(x: f32) -> f64 {
    x.to_string().parse().unwrap_or(f64::from(x))
}

/// A storage precision from its wire name (absent: float32).
///
/// # Errors
/// 400 for CyborgDB's TurboQuant tiers and any name the core does not know.
pub fn precision(name: Option<&str>) -> Result<StoragePrecision, ApiError> {
    let Some(name) = name else {
        return Ok(StoragePrecision::Float32);
    };
    if TURBOQUANT.contains(&name.to_ascii_lowercase().as_str()) {
        return Err(ApiError::bad_request(format!(
            "storage_precision {name:?} (TurboQuant) is not available in ciphervec: use float32, \
             float16 or int8"
        )));
    }
    name.parse()
        .map_err(|e: ciphervec::Error| ApiError::bad_request(format!("storage_precision: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn asked<'a>(schema: Option<&'a Map<String, Value>>, text: Option<&'a [String]>) -> Asked<'a> {
        Asked {
            metadata_schema: schema,
            text_fields: text,
            bm25_k1: None,
            bm25_b: None,
            storage_precision: None,
        }
    }

    #[test]
    fn contents_is_the_contents_and_other_text_fields_are_metadata() {
        let text = vec!["contents".to_owned(), "body".to_owned()];
        let f = Features::parse(&asked(None, Some(&text))).unwrap();
        assert!(f.full_text);
        assert_eq!(f.text_fields, ["body"]);
        let schema = json!({"contents": {"full_text": true}, "title": {"pattern": true}});
        let f = Features::parse(&asked(schema.as_object(), None)).unwrap();
        assert!(f.full_text);
        // As the Python SDK sends it (every setting filled in).
        let sdk = json!({"contents": {"filterable": false, "pattern": false, "full_text": true}});
        assert!(
            Features::parse(&asked(sdk.as_object(), None))
                .unwrap()
                .full_text
        );
        let described = f.schema_json();
        assert_eq!(described["title"]["pattern"], true);
        assert_eq!(described["contents"]["full_text"], true);
        assert_eq!(f.bm25_json()["k1"], json!(1.2));
        assert_eq!(f.bm25_json()["b"], json!(0.75));
    }

    #[test]
    fn refusals_are_400s() {
        for bad in ["tq8", "TQ4", "float64", ""] {
            let e = precision(Some(bad)).unwrap_err();
            assert_eq!(e.status(), 400, "{bad}");
        }
        assert_eq!(precision(Some("int8")).unwrap(), StoragePrecision::Int8);
        let schema = json!({"a": {"bogus": true}});
        assert!(Features::parse(&asked(schema.as_object(), None)).is_err());
        let mut a = asked(None, None);
        a.bm25_k1 = Some(1.0);
        assert!(Features::parse(&a).is_err());
    }

    #[test]
    fn features_survive_a_round_trip_through_a_config() {
        let text = vec!["body".to_owned()];
        let mut a = asked(None, Some(&text));
        a.bm25_b = Some(0.5);
        a.storage_precision = Some("float16");
        let f = Features::parse(&a).unwrap();
        let config = f.apply(IndexConfig::ivf_flat(4));
        let back = Features::of(&config);
        assert_eq!(back.precision, StoragePrecision::Float16);
        assert_eq!(back.bm25, Some((1.2, 0.5)));
        assert_eq!(back.schema.text_fields().collect::<Vec<_>>(), ["body"]);
        assert_eq!(Features::of(&back.apply(IndexConfig::ivf_flat(2))), back);
    }
}
