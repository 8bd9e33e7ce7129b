//! Readers of the import formats, each an iterator of items in file order: JSONL lines
//! `{"id", "vector", "contents"?, "metadata"?}`, TEXMEX `.fvecs` and NumPy `.npy` rows (ids are
//! 0-based row numbers in decimal, or the lines of an ids file).

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use base64::Engine as _;
use ciphervec::Item;
use serde_json::Value;

use crate::FormatArg;
use crate::commands::CliError;

/// Items read one by one; `total` is the row count when the format tells it up front.
pub(crate) struct Input {
    /// The items, in file order.
    pub items: Box<dyn Iterator<Item = Result<Item, CliError>>>,
    /// How many items the file holds, when known without reading it all.
    pub total: Option<u64>,
}

/// The format of `path` from its extension.
pub(crate) fn format_of(path: &Path) -> Result<FormatArg, CliError> {
    match path.extension().and_then(|e| e.to_str()) {
        Some("jsonl" | "ndjson") => Ok(FormatArg::Jsonl),
        Some("fvecs") => Ok(FormatArg::Fvecs),
        Some("npy") => Ok(FormatArg::Npy),
        Some("parquet") => Ok(FormatArg::Parquet),
        _ => Err(CliError::Usage(
            "cannot tell the format from the extension: give --format".into(),
        )),
    }
}

/// Opens `path` as `format`, with ids from `ids` (one per line) for row formats.
pub(crate) fn open(path: &Path, format: FormatArg, ids: Option<&Path>) -> Result<Input, CliError> {
    let file = File::open(path).map_err(|e| io_error(path, &e))?;
    let ids: Option<Vec<String>> = ids
        .map(|p| {
            std::fs::read_to_string(p)
                .map(|t| t.lines().map(str::to_owned).collect())
                .map_err(|e| io_error(p, &e))
        })
        .transpose()?;
    let id_of = move |row: u64| -> Result<String, CliError> {
        match &ids {
            None => Ok(row.to_string()),
            Some(ids) => ids
                .get(row as usize)
                .cloned()
                .ok_or_else(|| CliError::Other(format!("the ids file has no line {}", row + 1))),
        }
    };
    match format {
        FormatArg::Jsonl => Ok(Input {
            items: Box::new(jsonl(BufReader::new(file))),
            total: None,
        }),
        FormatArg::Fvecs => {
            let len = file.metadata().map_err(|e| io_error(path, &e))?.len();
            let mut reader = BufReader::with_capacity(1 << 20, file);
            let mut first = [0u8; 4];
            let total = match reader.fill_buf() {
                Ok(buf) if buf.len() >= 4 => {
                    first.copy_from_slice(&buf[..4]);
                    let dim = u64::from(u32::from_le_bytes(first));
                    len.checked_div(4 + 4 * dim)
                }
                _ => Some(0),
            };
            let mut row = 0u64;
            let items = std::iter::from_fn(move || {
                let vector = read_fvecs_row(&mut reader).transpose()?;
                let item = vector.and_then(|v| Ok(Item::new(id_of(row)?, v)));
                row += 1;
                Some(item)
            });
            Ok(Input {
                items: Box::new(items),
                total,
            })
        }
        FormatArg::Npy => {
            let mut reader = BufReader::with_capacity(1 << 20, file);
            let (rows, dim) = npy_header(&mut reader)?;
            let mut row = 0u64;
            let items = std::iter::from_fn(move || {
                if row >= rows {
                    return None;
                }
                let mut bytes = vec![0u8; dim * 4];
                let item = reader
                    .read_exact(&mut bytes)
                    .map_err(|e| CliError::Other(format!("npy row {row}: {e}")))
                    .and_then(|()| {
                        let v = bytes
                            .chunks_exact(4)
                            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                            .collect();
                        Ok(Item::new(id_of(row)?, v))
                    });
                row += 1;
                Some(item)
            });
            Ok(Input {
                items: Box::new(items),
                total: Some(rows),
            })
        }
        FormatArg::Parquet => Err(CliError::Usage(
            "Parquet import is not in this build: convert to .npy or JSONL".into(),
        )),
    }
}

fn io_error(path: &Path, e: &std::io::Error) -> CliError {
    CliError::Other(format!("{}: {e}", path.display()))
}

/// One `.fvecs` record (`i32 d` then `d` floats), or `None` at the end of the file.
fn read_fvecs_row(reader: &mut impl BufRead) -> Result<Option<Vec<f32>>, CliError> {
    let mut head = [0u8; 4];
    match reader.read_exact(&mut head) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(CliError::Other(format!("fvecs: {e}"))),
    }
    let dim = i32::from_le_bytes(head);
    if !(1..=65_536).contains(&dim) {
        return Err(CliError::Other(format!("fvecs: bad dimension {dim}")));
    }
    let mut bytes = vec![0u8; dim as usize * 4];
    reader
        .read_exact(&mut bytes)
        .map_err(|e| CliError::Other(format!("fvecs: truncated record: {e}")))?;
    Ok(Some(
        bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
    ))
}

/// Reads an `.npy` header: little-endian float32, C order, two dimensions. Returns
/// (rows, columns).
fn npy_header(reader: &mut impl Read) -> Result<(u64, usize), CliError> {
    let bad = |what: &str| CliError::Other(format!("npy: {what}"));
    let mut magic = [0u8; 8];
    reader
        .read_exact(&mut magic)
        .map_err(|_| bad("not an .npy file"))?;
    if &magic[..6] != b"\x93NUMPY" {
        return Err(bad("not an .npy file"));
    }
    let header_len = if magic[6] == 1 {
        let mut b = [0u8; 2];
        reader.read_exact(&mut b).map_err(|_| bad("truncated"))?;
        u16::from_le_bytes(b) as usize
    } else {
        let mut b = [0u8; 4];
        reader.read_exact(&mut b).map_err(|_| bad("truncated"))?;
        u32::from_le_bytes(b) as usize
    };
    if header_len > 1 << 20 {
        return Err(bad("header too long"));
    }
    let mut header = vec![0u8; header_len];
    reader
        .read_exact(&mut header)
        .map_err(|_| bad("truncated"))?;
    let header = String::from_utf8_lossy(&header).replace(' ', "");
    if !header.contains("'descr':'<f4'") {
        return Err(bad("only little-endian float32 ('<f4') is supported"));
    }
    if !header.contains("'fortran_order':False") {
        return Err(bad("only C order is supported"));
    }
    let shape = header
        .split("'shape':(")
        .nth(1)
        .and_then(|r| r.split(')').next())
        .ok_or_else(|| bad("no shape"))?;
    let dims: Vec<u64> = shape
        .split(',')
        .filter(|d| !d.is_empty())
        .map(|d| {
            d.trim_end_matches('L')
                .parse()
                .map_err(|_| bad("bad shape"))
        })
        .collect::<Result<_, _>>()?;
    match dims[..] {
        [rows, cols] if cols > 0 => Ok((rows, cols as usize)),
        _ => Err(bad("the array must be 2-D (rows, dimension)")),
    }
}

/// JSONL items, one per non-empty line.
fn jsonl(reader: impl BufRead + 'static) -> impl Iterator<Item = Result<Item, CliError>> {
    reader
        .lines()
        .enumerate()
        .filter(|(_, l)| l.as_ref().map_or(true, |l| !l.trim().is_empty()))
        .map(|(n, line)| {
            let line = line.map_err(|e| CliError::Other(format!("line {}: {e}", n + 1)))?;
            item_of_json(&line).map_err(|what| CliError::Other(format!("line {}: {what}", n + 1)))
        })
}

/// An item from one JSON object (no part of the line is echoed in an error).
pub(crate) fn item_of_json(line: &str) -> Result<Item, String> {
    let mut v: Value = serde_json::from_str(line).map_err(|_| "not a JSON object".to_owned())?;
    let id = match v.get("id") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => return Err("no string \"id\"".into()),
    };
    let vector: Vec<f32> = match v.get("vector") {
        Some(Value::Array(a)) => a
            .iter()
            .map(|x| x.as_f64().map(|f| f as f32))
            .collect::<Option<_>>()
            .ok_or_else(|| "\"vector\" must hold numbers".to_owned())?,
        _ => return Err("no \"vector\" array".into()),
    };
    let mut item = Item::new(id, vector);
    match v.get("contents") {
        Some(Value::String(s)) => item = item.with_contents(s.as_bytes().to_vec()),
        None | Some(Value::Null) => {}
        Some(_) => return Err("\"contents\" must be a string".into()),
    }
    if let Some(Value::String(b)) = v.get("contents_base64") {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(b)
            .map_err(|_| "bad \"contents_base64\"".to_owned())?;
        item = item.with_contents(bytes);
    }
    match v.get_mut("metadata").map(Value::take) {
        None | Some(Value::Null) => {}
        Some(m) => item = item.with_metadata(m),
    }
    Ok(item)
}
