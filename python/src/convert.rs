//! Conversions between Python values and the engine's: keys, JSON documents, `include`,
//! vectors (numpy, read in place when they are C-contiguous float32) and hits.

use base64::Engine as _;
use ciphervec::{Hit, Include, IndexKey, Item, Record};
use numpy::{PyArrayDyn, PyArrayMethods, PyReadonlyArrayDyn, PyUntypedArrayMethods};
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyBytes, PyDict, PyList, PyString};

use crate::errors;

/// A 256-bit key from `bytes` or `bytearray` (32 bytes). `bytes` are read in place; a
/// `bytearray` (which Python code may change meanwhile) is copied into memory that is wiped
/// once the key is built.
pub(crate) fn key_of(obj: &Bound<'_, PyAny>) -> PyResult<IndexKey> {
    let key = if let Ok(b) = obj.cast::<PyBytes>() {
        IndexKey::from_bytes(b.as_bytes())
    } else if let Ok(b) = obj.cast::<PyByteArray>() {
        let copy = zeroize::Zeroizing::new(b.to_vec());
        IndexKey::from_bytes(&copy)
    } else {
        return Err(PyTypeError::new_err(
            "an index key is 32 bytes (bytes or bytearray), as cv.generate_key() returns",
        ));
    };
    key.map_err(errors::to_py)
}

/// A JSON document from a Python value (dicts, lists, str, numbers, bools, None), through the
/// standard `json` module (NaN and infinities refused). `bad` names the exception class for
/// a value that is not JSON.
pub(crate) fn json_of(obj: &Bound<'_, PyAny>, bad: &'static str) -> PyResult<serde_json::Value> {
    let py = obj.py();
    let kwargs = PyDict::new(py);
    kwargs.set_item("allow_nan", false)?;
    let text: String = py
        .import("json")?
        .call_method("dumps", (obj,), Some(&kwargs))
        .map_err(|e| errors::raise(bad, format!("not a JSON document: {e}")))?
        .extract()?;
    serde_json::from_str(&text).map_err(|e| errors::raise(bad, format!("not a JSON document: {e}")))
}

/// A Python value from a JSON document (through the `json` module).
pub(crate) fn py_of_json<'py>(
    py: Python<'py>,
    value: &serde_json::Value,
) -> PyResult<Bound<'py, PyAny>> {
    let text = serde_json::to_string(value).map_err(|_| errors::invalid("metadata"))?;
    py.import("json")?.call_method1("loads", (text,))
}

/// A count argument (`top_k`, `n_probes`, `dimension`, ...) taken as a Python int: a
/// negative one is `InvalidArgumentError` (a `ValueError`), as a zero is where the library
/// refuses it, instead of the `OverflowError` an unsigned parameter would raise.
pub(crate) fn count(name: &str, value: i64) -> PyResult<usize> {
    usize::try_from(value).map_err(|_| errors::invalid(format!("{name} must not be negative")))
}

/// [`count`] of an optional argument.
pub(crate) fn optional_count(name: &str, value: Option<i64>) -> PyResult<Option<usize>> {
    value.map(|v| count(name, v)).transpose()
}

/// The field names of an `include` argument: a sequence of names, one name alone (a str,
/// which would otherwise be read as a sequence of letters), or `None` for `default`.
pub(crate) fn include_names(
    include: Option<&Bound<'_, PyAny>>,
    default: &[&str],
) -> PyResult<Vec<String>> {
    match include {
        None => Ok(default.iter().map(|&n| n.to_owned()).collect()),
        Some(one) if one.is_instance_of::<PyString>() => Ok(vec![one.extract()?]),
        Some(names) => names.extract().map_err(|_| {
            PyTypeError::new_err("include is a sequence of field names (or one name)")
        }),
    }
}

/// What `include` names: any of "distance", "metadata", "contents", "vector" ("distance"
/// is always returned for queries; listed for symmetry with CyborgDB).
pub(crate) fn include_of(names: &[String]) -> PyResult<Include> {
    let mut include = Include::NONE;
    for n in names {
        include |= match n.as_str() {
            "distance" | "id" | "score" => Include::NONE,
            "metadata" => Include::METADATA,
            "contents" => Include::CONTENTS,
            "vector" => Include::VECTOR,
            other => {
                return Err(errors::invalid(format!(
                    "include takes distance, metadata, contents, vector; not {other:?}"
                )));
            }
        };
    }
    Ok(include)
}

/// One item of `upsert(items)`: a dict read as the library reads an item's JSON
/// (`Item::from_json`, which names a key it does not know). The dict's values become JSON
/// here: bytes as `{"base64": ...}` (the library's form of binary contents), the rest through
/// the `json` module; the vector alone is read as a float32 array (in place when it is one)
/// and handed over as floats.
pub(crate) fn item_of(obj: &Bound<'_, PyAny>) -> PyResult<Item> {
    let d = obj.cast::<PyDict>().map_err(|_| {
        PyTypeError::new_err("items are dicts with id, vector, contents?, metadata?")
    })?;
    let mut fields = serde_json::Map::new();
    let mut vector = None;
    for (key, value) in d.iter() {
        let key: String = key
            .extract()
            .map_err(|_| errors::invalid("an item's keys are str"))?;
        let json = if key == "vector" {
            let array = f32_array(&value)?;
            if array.ndim() != 1 {
                return Err(errors::invalid("an item's vector is one-dimensional"));
            }
            vector = Some(array.as_slice()?.to_vec());
            serde_json::Value::Array(Vec::new())
        } else if let Some(bytes) = bytes_of(&value) {
            serde_json::json!({ "base64": base64::engine::general_purpose::STANDARD.encode(bytes) })
        } else {
            json_of(&value, "InvalidArgumentError")
                .map_err(|_| errors::invalid(format!("an item's {key:?} is not JSON")))?
        };
        fields.insert(key, json);
    }
    let item = Item::from_json(&serde_json::Value::Object(fields)).map_err(errors::to_py)?;
    Ok(match vector {
        Some(v) => item.with_vector(v),
        None => item,
    })
}

/// The bytes of `bytes` or `bytearray`.
fn bytes_of(obj: &Bound<'_, PyAny>) -> Option<Vec<u8>> {
    if let Ok(b) = obj.cast::<PyBytes>() {
        Some(b.as_bytes().to_vec())
    } else if let Ok(b) = obj.cast::<PyByteArray>() {
        Some(b.to_vec())
    } else {
        None
    }
}

/// Vectors as a C-contiguous float32 array: the array itself when it already is one (read in
/// place, no copy), else one conversion by `numpy.ascontiguousarray(..., dtype=float32)`
/// (other numeric dtypes, strided views, lists). Non-numeric input is a `TypeError`.
pub(crate) fn f32_array<'py>(obj: &Bound<'py, PyAny>) -> PyResult<PyReadonlyArrayDyn<'py, f32>> {
    if let Ok(a) = obj.cast::<PyArrayDyn<f32>>()
        && a.is_c_contiguous()
    {
        return Ok(a.readonly());
    }
    let py = obj.py();
    let numpy = py.import("numpy")?;
    let is_numeric = |o: &Bound<'py, PyAny>| -> PyResult<bool> {
        let kind: String = o.getattr("dtype")?.getattr("kind")?.extract()?;
        Ok(matches!(kind.as_str(), "f" | "i" | "u" | "b"))
    };
    if obj.hasattr("dtype")? && !is_numeric(obj)? {
        return Err(PyTypeError::new_err(
            "vectors must have a numeric dtype (float32 is read in place; other numeric dtypes \
             are converted once)",
        ));
    }
    let converted = numpy
        .call_method1("ascontiguousarray", (obj, "float32"))
        .map_err(|_| {
            PyTypeError::new_err(
                "vectors must be numeric: a float32 array (read in place), or numbers",
            )
        })?;
    Ok(converted.cast_into::<PyArrayDyn<f32>>()?.readonly())
}

/// A hit as a dict: `id`, `distance`, `score` (text and hybrid queries), and what `include`
/// asked for (`metadata` as a dict or None, `contents` as bytes or None, `vector` as a list).
pub(crate) fn hit_dict<'py>(
    py: Python<'py>,
    hit: Hit,
    include: Include,
) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("id", hit.id)?;
    d.set_item("distance", hit.distance)?;
    if let Some(s) = hit.score {
        d.set_item("score", s)?;
    }
    add_fields(py, &d, (hit.metadata, hit.contents, hit.vector), include)?;
    Ok(d)
}

/// A stored record as a dict: `id` and what `include` asked for.
pub(crate) fn record_dict<'py>(
    py: Python<'py>,
    r: Record,
    include: Include,
) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("id", r.id)?;
    add_fields(py, &d, (r.metadata, r.contents, r.vector), include)?;
    Ok(d)
}

type Fields = (Option<serde_json::Value>, Option<Vec<u8>>, Option<Vec<f32>>);

fn add_fields(
    py: Python<'_>,
    d: &Bound<'_, PyDict>,
    (metadata, contents, vector): Fields,
    include: Include,
) -> PyResult<()> {
    if include.contains(Include::METADATA) {
        match metadata {
            Some(m) => d.set_item("metadata", py_of_json(py, &m)?)?,
            None => d.set_item("metadata", py.None())?,
        }
    }
    if include.contains(Include::CONTENTS) {
        match contents {
            Some(c) => d.set_item("contents", PyBytes::new(py, &c))?,
            None => d.set_item("contents", py.None())?,
        }
    }
    if include.contains(Include::VECTOR) {
        match vector {
            Some(v) => d.set_item("vector", PyList::new(py, v)?)?,
            None => d.set_item("vector", py.None())?,
        }
    }
    Ok(())
}

/// Ids from a list (or any iterable) of `str`.
pub(crate) fn ids_of(obj: &Bound<'_, PyAny>) -> PyResult<Vec<String>> {
    if obj.cast::<PyString>().is_ok() {
        return Err(PyTypeError::new_err("ids are a list of str, not one str"));
    }
    obj.try_iter()?
        .map(|id| {
            let id = id?;
            id.extract::<String>()
                .map_err(|_| PyTypeError::new_err("ids are str"))
        })
        .collect()
}
