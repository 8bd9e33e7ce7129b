//! Items written as JSON: the one reader of `{"id", "vector", "contents"?, "metadata"?}` that
//! every leaf uses (the command line's JSONL import, the Python package's item dicts).
//!
//! One serde visitor reads both a parsed [`Value`] and the bytes of a line, so both follow
//! the same rules. Errors are this module's own words: serde's messages quote the values
//! they refuse, and an item's values are plaintext that no error may carry.

use std::borrow::Cow;
use std::cell::RefCell;
use std::fmt;

use base64::Engine as _;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

use super::types::Item;
use crate::error::{Error, Result};

/// The keys of an item, as error messages list them.
const KEYS: &str = "id, vector, contents, metadata";

/// The longest key an error message repeats (a longer one is cut, at a character boundary).
const MAX_KEY_ECHO: usize = 64;

impl Item {
    /// An item from its JSON form, the one every leaf reads:
    ///
    /// - `"id"`: a string, or an integer (its decimal text);
    /// - `"vector"`: an array of numbers (each rounded to the nearest `f32`);
    /// - `"contents"` (optional): a string, stored as its UTF-8 bytes, or `{"base64": "..."}`
    ///   for any bytes (standard base64 with padding, as `base64` and Python's `base64`
    ///   write it); `"contents_base64": "..."` is read as the same (`ciphervec export`
    ///   of 0.1.0 wrote non-UTF-8 contents so);
    /// - `"metadata"` (optional): a JSON object.
    ///
    /// A `null` optional field is the same as none. Any other key is refused, so that a
    /// misspelt one (`"content"`) cannot drop what it holds without a word.
    ///
    /// ```
    /// use ciphervec::{Error, Item};
    /// use serde_json::json;
    /// let item = Item::from_json(&json!({"id": "a", "vector": [1, 0.5], "contents": "text"}))?;
    /// assert_eq!((item.id(), item.vector()), ("a", &[1.0f32, 0.5][..]));
    /// assert_eq!(item.contents(), Some(&b"text"[..]));
    /// let bytes = Item::from_json(&json!({"id": 7, "vector": [1], "contents": {"base64": "AP8="}}))?;
    /// assert_eq!((bytes.id(), bytes.contents()), ("7", Some(&[0u8, 255][..])));
    /// let misspelt = Item::from_json(&json!({"id": "a", "vector": [1], "content": "x"}));
    /// assert!(matches!(&misspelt, Err(Error::InvalidArgument { reason }) if reason.contains("\"content\"")));
    /// # Ok::<(), Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] naming the key that is unknown, repeated, missing or of the
    /// wrong type (never a value). The values themselves are checked by
    /// [`upsert`](crate::EncryptedIndex::upsert), as for any item.
    pub fn from_json(value: &Value) -> Result<Item> {
        let failure = Failure::default();
        let parsed = ItemSeed { failure: &failure }.deserialize(value);
        failure.result(parsed)
    }

    /// An item from one line of JSON (a JSONL file's line), as [`from_json`](Self::from_json)
    /// reads it, without building a [`Value`] first (a vector's numbers are read straight
    /// into floats). Whitespace around the object is allowed, anything else after it is not.
    ///
    /// ```
    /// use ciphervec::Item;
    /// let item = Item::from_json_line(br#"{"id": "a", "vector": [0.25, -1e-3], "metadata": {"lang": "en"}}"#)?;
    /// assert_eq!(item.vector(), &[0.25, -1e-3]);
    /// assert!(Item::from_json_line(br#"{"id": "a", "vector": [1]} {}"#).is_err());
    /// # Ok::<(), ciphervec::Error>(())
    /// ```
    ///
    /// # Errors
    /// As [`from_json`](Self::from_json); text that is not JSON is
    /// [`Error::InvalidArgument`] naming the column where it stops being JSON.
    pub fn from_json_line(line: &[u8]) -> Result<Item> {
        let failure = Failure::default();
        let mut de = serde_json::Deserializer::from_slice(line);
        let parsed = ItemSeed { failure: &failure }
            .deserialize(&mut de)
            .and_then(|item| de.end().map(|()| item));
        failure.result(parsed)
    }
}

/// Why a parse failed, in this module's words, kept beside the serde error that stopped it.
#[derive(Default)]
struct Failure {
    /// Set by the visitors when they refuse something.
    error: RefCell<Option<Error>>,
    /// The key whose value is being read, to name it when serde refuses that value.
    field: RefCell<Option<&'static str>>,
}

impl Failure {
    /// Records `error` and returns the serde error that stops the parse.
    fn fail<E: de::Error>(&self, error: Error) -> E {
        self.error.borrow_mut().get_or_insert(error);
        E::custom("refused")
    }

    /// The item, or the error that explains why there is none.
    fn result(self, parsed: std::result::Result<Item, serde_json::Error>) -> Result<Item> {
        let serde_error = match parsed {
            Ok(item) => return Ok(item),
            Err(e) => e,
        };
        if let Some(mine) = self.error.into_inner() {
            return Err(mine);
        }
        use serde_json::error::Category;
        Err(Error::invalid_argument(
            match (serde_error.classify(), self.field.into_inner()) {
                (Category::Data, Some(field)) => {
                    format!("an item's \"{field}\" {}", expected(field))
                }
                (Category::Data, None) => "an item is a JSON object".to_owned(),
                (Category::Eof, _) => "an item's JSON ends too early".to_owned(),
                (Category::Syntax | Category::Io, _) => {
                    format!("an item is not JSON (column {})", serde_error.column())
                }
            },
        ))
    }
}

/// What the value of `field` must be, as an error message says it.
fn expected(field: &str) -> &'static str {
    match field {
        "id" => "must be a string or an integer",
        "vector" => "must be an array of numbers",
        "contents" => "must be a string or {\"base64\": \"...\"}",
        "contents_base64" => "must be a base64 string",
        _ => "must be a JSON object",
    }
}

/// A key as an error message may repeat it: at most [`MAX_KEY_ECHO`] bytes.
fn echo(key: &str) -> &str {
    let mut end = key.len().min(MAX_KEY_ECHO);
    while !key.is_char_boundary(end) {
        end -= 1;
    }
    &key[..end]
}

/// Reads one item.
struct ItemSeed<'a> {
    failure: &'a Failure,
}

impl<'de> DeserializeSeed<'de> for ItemSeed<'_> {
    type Value = Item;

    fn deserialize<D: Deserializer<'de>>(self, de: D) -> std::result::Result<Item, D::Error> {
        de.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for ItemSeed<'_> {
    type Value = Item;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an item object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<Item, A::Error> {
        let failure = self.failure;
        let (mut id, mut vector, mut contents, mut metadata) = (None, None, None, None);
        let mut seen = [false; 5];
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            let (slot, name) = match &*key {
                "id" => (0, "id"),
                "vector" => (1, "vector"),
                "contents" => (2, "contents"),
                "contents_base64" => (3, "contents_base64"),
                "metadata" => (4, "metadata"),
                other => {
                    return Err(failure.fail(Error::invalid_argument(format!(
                        "an item has no key \"{}\" (its keys are {KEYS})",
                        echo(other)
                    ))));
                }
            };
            if std::mem::replace(&mut seen[slot], true) {
                return Err(failure.fail(Error::invalid_argument(format!(
                    "an item's \"{name}\" is given twice"
                ))));
            }
            *failure.field.borrow_mut() = Some(name);
            match slot {
                0 => id = Some(map.next_value_seed(IdSeed)?),
                1 => vector = Some(map.next_value_seed(VectorSeed)?),
                2 => {
                    if let Some(bytes) = map.next_value_seed(ContentsSeed { failure })? {
                        contents = Some(bytes);
                    }
                }
                3 => {
                    if let Some(text) = map.next_value::<Option<Cow<'de, str>>>()? {
                        contents = Some(base64_bytes(&text).map_err(|e| failure.fail(e))?);
                    }
                }
                _ => metadata = map.next_value::<Option<Value>>()?,
            }
            *failure.field.borrow_mut() = None;
        }
        if seen[2] && seen[3] && contents.is_some() {
            return Err(failure.fail(Error::invalid_argument(
                "an item has both \"contents\" and \"contents_base64\"",
            )));
        }
        let missing = |key: &str| {
            failure.fail(Error::invalid_argument(format!(
                "an item needs \"id\" and \"vector\" (\"{key}\" is missing)"
            )))
        };
        let id = id.ok_or_else(|| missing("id"))?;
        let mut item = Item::new(id, vector.ok_or_else(|| missing("vector"))?);
        if let Some(bytes) = contents {
            item = item.with_contents(bytes);
        }
        if let Some(m) = metadata {
            item = item.with_metadata(m);
        }
        Ok(item)
    }
}

/// Standard base64 (with padding) decoded.
fn base64_bytes(text: &str) -> Result<Vec<u8>> {
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|_| Error::invalid_argument("an item's contents are not valid base64"))
}

/// An id: a string, or an integer as its decimal text.
struct IdSeed;

impl<'de> DeserializeSeed<'de> for IdSeed {
    type Value = String;

    fn deserialize<D: Deserializer<'de>>(self, de: D) -> std::result::Result<String, D::Error> {
        de.deserialize_any(self)
    }
}

impl Visitor<'_> for IdSeed {
    type Value = String;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string or an integer")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<String, E> {
        Ok(v.to_owned())
    }

    fn visit_string<E: de::Error>(self, v: String) -> std::result::Result<String, E> {
        Ok(v)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> std::result::Result<String, E> {
        Ok(v.to_string())
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> std::result::Result<String, E> {
        Ok(v.to_string())
    }
}

/// A vector: an array of numbers, each rounded to `f32`.
struct VectorSeed;

impl<'de> DeserializeSeed<'de> for VectorSeed {
    type Value = Vec<f32>;

    fn deserialize<D: Deserializer<'de>>(self, de: D) -> std::result::Result<Vec<f32>, D::Error> {
        de.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for VectorSeed {
    type Value = Vec<f32>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of numbers")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<Vec<f32>, A::Error> {
        // A hint is at most what the array holds, but a hostile one is capped anyway.
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1 << 16));
        while let Some(x) = seq.next_element::<f32>()? {
            out.push(x);
        }
        Ok(out)
    }
}

/// Contents: a string (its UTF-8 bytes), `{"base64": "..."}`, or `null` (none).
struct ContentsSeed<'a> {
    failure: &'a Failure,
}

impl<'de> DeserializeSeed<'de> for ContentsSeed<'_> {
    type Value = Option<Vec<u8>>;

    fn deserialize<D: Deserializer<'de>>(
        self,
        de: D,
    ) -> std::result::Result<Option<Vec<u8>>, D::Error> {
        de.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ContentsSeed<'_> {
    type Value = Option<Vec<u8>>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string or {\"base64\": \"...\"}")
    }

    fn visit_unit<E: de::Error>(self) -> std::result::Result<Option<Vec<u8>>, E> {
        Ok(None)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<Option<Vec<u8>>, E> {
        Ok(Some(v.as_bytes().to_vec()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> std::result::Result<Option<Vec<u8>>, E> {
        Ok(Some(v.into_bytes()))
    }

    fn visit_map<A: MapAccess<'de>>(
        self,
        mut map: A,
    ) -> std::result::Result<Option<Vec<u8>>, A::Error> {
        let mut bytes = None;
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            if key != "base64" || bytes.is_some() {
                // The value is read (and dropped) only to keep the parse going to this error.
                map.next_value::<IgnoredAny>()?;
                return Err(self.failure.fail(Error::invalid_argument(format!(
                    "an item's \"contents\" {}",
                    expected("contents")
                ))));
            }
            let text = map.next_value::<Cow<'de, str>>()?;
            bytes = Some(base64_bytes(&text).map_err(|e| self.failure.fail(e))?);
        }
        bytes.map(Some).ok_or_else(|| {
            self.failure.fail(Error::invalid_argument(format!(
                "an item's \"contents\" {}",
                expected("contents")
            )))
        })
    }
}
