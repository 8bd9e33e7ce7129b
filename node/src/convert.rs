//! From JavaScript values to the engine's, on the JavaScript thread: keys, counts, `include`,
//! vectors, contents, JSON documents (through `JSON.stringify`, so that a value means what
//! it means everywhere else in JavaScript) and items.

use ciphervec::{Include, IndexKey};
use napi::bindgen_prelude::*;

use crate::errors::invalid;

/// A 256-bit key from 32 bytes (a `Buffer` or any `Uint8Array`), copied into the engine's
/// key, which wipes itself; nothing keeps the caller's bytes.
pub(crate) fn key_of(key: &Uint8Array) -> Result<IndexKey> {
    IndexKey::from_bytes(key).map_err(|_| {
        invalid(format!(
            "an index key is 32 bytes (a Buffer or Uint8Array, as generateKey() returns), not {}",
            key.len()
        ))
    })
}

/// A count (`topK`, `nProbes`, `dimension`...): a whole number from 0 to 2^53.
pub(crate) fn count(name: &str, value: f64) -> Result<usize> {
    const MAX_SAFE: f64 = 9_007_199_254_740_991.0;
    if value.fract() != 0.0 || !(0.0..=MAX_SAFE).contains(&value) {
        return Err(invalid(format!(
            "{name} must be a whole number from 0, not {value}"
        )));
    }
    // In range and whole: the cast is exact.
    Ok(value as usize)
}

/// [`count`] of an optional value.
pub(crate) fn optional_count(name: &str, value: Option<f64>) -> Result<Option<usize>> {
    value.map(|v| count(name, v)).transpose()
}

/// What `include` names: any of "metadata", "contents", "vector" ("id", "distance" and
/// "score" are always there; listed for symmetry with CyborgDB).
pub(crate) fn include_of(names: Option<&[String]>, default: Include) -> Result<Include> {
    let Some(names) = names else {
        return Ok(default);
    };
    let mut include = Include::NONE;
    for name in names {
        include |= match name.as_str() {
            "id" | "distance" | "score" => Include::NONE,
            "metadata" => Include::METADATA,
            "contents" => Include::CONTENTS,
            "vector" => Include::VECTOR,
            other => {
                return Err(invalid(format!(
                    "include takes metadata, contents, vector; not {other:?}"
                )));
            }
        };
    }
    Ok(include)
}

/// A vector: a `Float32Array`, or an array of numbers.
pub(crate) type Vector = Either<Float32Array, Vec<f64>>;

/// The floats of a [`Vector`] (numbers are rounded to `f32`; NaN stays NaN, which the engine
/// refuses as an invalid vector).
pub(crate) fn floats_of(vector: &Vector) -> Vec<f32> {
    match vector {
        Either::A(typed) => typed.to_vec(),
        // The engine stores f32: the rounding is the conversion asked for.
        Either::B(numbers) => numbers.iter().map(|&x| x as f32).collect(),
    }
}

/// A JSON document from any JavaScript value, as `JSON.stringify` writes it (`toJSON`
/// honoured, so a `Date` is its ISO text; `undefined` members left out; NaN as null). A
/// value it refuses (a cycle, a BigInt) or cannot write (a function, `undefined`) is an
/// invalid argument.
pub struct Json(pub(crate) serde_json::Value);

impl FromNapiValue for Json {
    unsafe fn from_napi_value(env: sys::napi_env, value: sys::napi_value) -> Result<Json> {
        let env = Env::from_raw(env);
        // SAFETY: `env` and `value` are the live handles napi passes to this conversion, on
        // the JavaScript thread.
        let value = unsafe { Unknown::from_raw_unchecked(env.raw(), value) };
        json_of(&env, value).map(Json)
    }
}

impl TypeName for Json {
    fn type_name() -> &'static str {
        "Record<string, unknown>"
    }

    fn value_type() -> ValueType {
        ValueType::Object
    }
}

impl ValidateNapiValue for Json {}

fn json_of(env: &Env, value: Unknown<'_>) -> Result<serde_json::Value> {
    let json: Object<'_> = env.get_global()?.get_named_property_unchecked("JSON")?;
    let stringify: Function<'_, Unknown<'_>, Unknown<'_>> =
        json.get_named_property_unchecked("stringify")?;
    let not_json = || invalid("not a JSON value (JSON.stringify refused it)");
    // The exception JSON.stringify threw is dropped for ours: its message may quote the
    // caller's keys.
    let text = stringify.call(value).map_err(|_| not_json())?;
    if text.get_type()? != ValueType::String {
        return Err(not_json());
    }
    let text: String = text.coerce_to_string()?.into_utf8()?.into_owned()?;
    serde_json::from_str(&text).map_err(|_| not_json())
}

/// Contents: a string (stored as UTF-8) or bytes (`Buffer`, `Uint8Array`).
pub(crate) type Contents = Either<String, Uint8Array>;

/// The bytes of [`Contents`].
pub(crate) fn bytes_of(contents: Contents) -> Vec<u8> {
    match contents {
        Either::A(text) => text.into_bytes(),
        Either::B(bytes) => bytes.to_vec(),
    }
}

/// A filter given as JSON text (as the command line takes it) is parsed; any other JSON
/// value is the filter. `Err` with the parser's reason.
pub(crate) fn filter_of(
    value: serde_json::Value,
) -> std::result::Result<serde_json::Value, String> {
    match value {
        serde_json::Value::String(text) => {
            serde_json::from_str(&text).map_err(|e| format!("filters text is not JSON: {e}"))
        }
        filter => Ok(filter),
    }
}
