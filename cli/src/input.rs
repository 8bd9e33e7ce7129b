//! Readers of the import formats, each an iterator of items in file order: JSONL lines
//! `{"id", "vector", "contents"?, "metadata"?}`, TEXMEX `.fvecs` and NumPy `.npy` rows (ids are
//! 0-based row numbers in decimal, or the lines of an ids file).

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use ciphervec::Item;

use crate::fastjson;

use crate::FormatArg;
use crate::error::CliError;

/// Items read one by one, and how many there are.
pub(crate) struct Input {
    /// The items, in file order.
    pub items: Box<dyn Iterator<Item = Result<Item, CliError>> + Send>,
    /// How many items the file holds, when known without reading it all.
    pub total: Option<Total>,
}

/// The number of items of an input.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Total {
    /// Told by the file's header or size.
    Exact(u64),
    /// Estimated from the lines in the file's first MiB (JSONL), for progress only.
    About(u64),
}

/// Bytes of a JSONL file read to estimate its number of lines.
const ESTIMATE_SAMPLE: usize = 1 << 20;

/// The number of lines of a JSONL file: exact when it is shorter than the sample, else its
/// size times the lines per byte of its first MiB.
fn estimate_lines(path: &Path) -> Option<Total> {
    use std::io::Read as _;
    let mut file = File::open(path).ok()?;
    let len = file.metadata().ok()?.len();
    let mut sample = Vec::with_capacity(ESTIMATE_SAMPLE);
    file.by_ref()
        .take(ESTIMATE_SAMPLE as u64)
        .read_to_end(&mut sample)
        .ok()?;
    let lines = memchr::memchr_iter(b'\n', &sample).count() as u64;
    if sample.len() as u64 >= len {
        let unterminated = u64::from(sample.last().is_some_and(|&c| c != b'\n'));
        return Some(Total::Exact(lines + unterminated));
    }
    (lines > 0).then(|| Total::About((len as f64 * lines as f64 / sample.len() as f64) as u64))
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
            items: Box::new(jsonl(file)),
            total: estimate_lines(path),
        }),
        FormatArg::Fvecs => {
            let len = file.metadata().map_err(|e| io_error(path, &e))?.len();
            let mut reader = BufReader::with_capacity(1 << 20, file);
            let mut first = [0u8; 4];
            let total = match reader.fill_buf() {
                Ok(buf) if buf.len() >= 4 => {
                    first.copy_from_slice(&buf[..4]);
                    let dim = u64::from(u32::from_le_bytes(first));
                    len.checked_div(4 + 4 * dim).map(Total::Exact)
                }
                _ => Some(Total::Exact(0)),
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
                total: Some(Total::Exact(rows)),
            })
        }
        #[cfg(feature = "parquet")]
        FormatArg::Parquet => parquet_input::open(file),
        #[cfg(not(feature = "parquet"))]
        FormatArg::Parquet => Err(CliError::Usage(
            "Parquet import needs a build with the `parquet` feature \
             (cargo install --path cli --features parquet); or convert to .npy or JSONL"
                .into(),
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

/// Bytes read at a time; the whole lines in a block are parsed together, on every core
/// (parsing numbers is most of an import's work).
const JSONL_BLOCK: usize = 4 << 20;

/// JSONL items, one per non-empty line, in file order. The file is read a block at a time
/// into one reused buffer; each block's lines are checked as UTF-8 and parsed on every core,
/// so the reading thread only reads and finds line ends.
fn jsonl(
    mut reader: impl Read + Send + 'static,
) -> impl Iterator<Item = Result<Item, CliError>> + Send {
    let threads = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    let mut pending = std::collections::VecDeque::new();
    let mut block: Vec<u8> = Vec::new();
    // Bytes at the front of `block` that belong to a line the last read did not finish.
    let mut carry = 0usize;
    let mut lines_before = 0usize;
    let mut eof = false;
    std::iter::from_fn(move || {
        while pending.is_empty() && !eof {
            block.resize(carry + JSONL_BLOCK, 0);
            let n = match read_full(&mut reader, &mut block[carry..]) {
                Ok(n) => n,
                Err(e) => {
                    eof = true;
                    pending.push_back(Err(CliError::Other(format!("reading: {e}"))));
                    break;
                }
            };
            let filled = carry + n;
            // The whole lines end at the last newline; at the end of the input what is
            // left is the last line, without a newline.
            let whole = if n == 0 {
                eof = true;
                filled
            } else if let Some(last) = memchr::memrchr(b'\n', &block[..filled]) {
                last + 1
            } else {
                carry = filled; // no line end yet: read on
                continue;
            };
            let mut lines: Vec<(usize, &[u8])> = Vec::new();
            let mut line_start = 0;
            let ends = memchr::memchr_iter(b'\n', &block[..whole]).chain(
                // The last line of the input, when it has no newline.
                (whole > 0 && block[whole - 1] != b'\n').then_some(whole),
            );
            for end in ends {
                lines_before += 1;
                let line = &block[line_start..end];
                if !line.trim_ascii().is_empty() {
                    lines.push((lines_before, line));
                }
                line_start = end + 1;
            }
            parse_lines(&lines, threads, &mut pending);
            // The unfinished line moves to the front for the next read.
            block.copy_within(whole..filled, 0);
            carry = filled - whole;
        }
        pending.pop_front()
    })
}

/// Parses numbered lines into items on `threads` threads, appending them in order.
fn parse_lines(
    lines: &[(usize, &[u8])],
    threads: usize,
    pending: &mut std::collections::VecDeque<Result<Item, CliError>>,
) {
    let parse = |&(n, line): &(usize, &[u8])| {
        item_of_json(line).map_err(|what| CliError::Other(format!("line {n}: {what}")))
    };
    let part = lines.len().div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        let handles: Vec<_> = lines
            .chunks(part)
            .map(|c| scope.spawn(move || c.iter().map(parse).collect::<Vec<_>>()))
            .collect();
        for h in handles {
            match h.join() {
                Ok(items) => pending.extend(items),
                Err(_) => {
                    pending.push_back(Err(CliError::Other("parser thread failed".into())));
                }
            }
        }
    });
}

/// Reads until `buf` is full or the input ends; returns the bytes read.
fn read_full(reader: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(k) => filled += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// An item from one JSON line, as the library reads it (`Item::from_json_line`: unknown
/// keys refused, naming them; no part of the line is echoed in an error). The vector, most
/// of a line's bytes, is parsed by [`fastjson`] when it understands it, the rest by the
/// library with the vector left out; an error is reported from the whole line, so that its
/// column is the line's.
pub(crate) fn item_of_json(line: &[u8]) -> Result<Item, String> {
    let whole = || Item::from_json_line(line).map_err(|e| e.to_string());
    let Some((vector, span)) = fastjson::split_vector(line) else {
        return whole();
    };
    let mut rest = Vec::with_capacity(line.len() - span.len() + 2);
    rest.extend_from_slice(&line[..span.start]);
    rest.extend_from_slice(b"[]");
    rest.extend_from_slice(&line[span.end..]);
    match Item::from_json_line(&rest) {
        Ok(item) => Ok(item.with_vector(vector)),
        Err(_) => whole(),
    }
}

/// Parquet files with an `id` column (strings or integers) and a `vector` column (lists of
/// float32 or float64), and optional `contents` (string or binary) and `metadata` (JSON text).
#[cfg(feature = "parquet")]
mod parquet_input {
    use std::fs::File;

    use arrow_array::cast::AsArray as _;
    use arrow_array::types::{Float32Type, Float64Type, Int32Type, Int64Type, UInt64Type};
    use arrow_array::{Array, RecordBatch};
    use arrow_schema::DataType;
    use ciphervec::Item;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

    use super::Input;
    use crate::error::CliError;

    fn bad(what: impl std::fmt::Display) -> CliError {
        CliError::Other(format!("parquet: {what}"))
    }

    pub(super) fn open(file: File) -> Result<Input, CliError> {
        let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(bad)?;
        let total = u64::try_from(builder.metadata().file_metadata().num_rows())
            .ok()
            .map(super::Total::Exact);
        let reader = builder.with_batch_size(4096).build().map_err(bad)?;
        let items = reader.flat_map(|batch| match batch {
            Ok(batch) => match items_of(&batch) {
                Ok(items) => items.into_iter().map(Ok).collect::<Vec<_>>(),
                Err(e) => vec![Err(e)],
            },
            Err(e) => vec![Err(bad(e))],
        });
        Ok(Input {
            items: Box::new(items),
            total,
        })
    }

    fn items_of(batch: &RecordBatch) -> Result<Vec<Item>, CliError> {
        let ids = batch
            .column_by_name("id")
            .ok_or_else(|| bad("no `id` column"))?;
        let vectors = batch
            .column_by_name("vector")
            .ok_or_else(|| bad("no `vector` column"))?;
        let contents = batch.column_by_name("contents");
        let metadata = batch.column_by_name("metadata");
        (0..batch.num_rows())
            .map(|row| {
                let mut item =
                    Item::new(id_at(ids.as_ref(), row)?, vector_at(vectors.as_ref(), row)?);
                if let Some(c) = contents.filter(|c| c.is_valid(row)) {
                    let bytes = match c.data_type() {
                        DataType::Utf8 => c.as_string::<i32>().value(row).as_bytes().to_vec(),
                        DataType::LargeUtf8 => c.as_string::<i64>().value(row).as_bytes().to_vec(),
                        DataType::Binary => c.as_binary::<i32>().value(row).to_vec(),
                        DataType::LargeBinary => c.as_binary::<i64>().value(row).to_vec(),
                        t => return Err(bad(format!("`contents` of type {t}"))),
                    };
                    item = item.with_contents(bytes);
                }
                if let Some(m) = metadata.filter(|m| m.is_valid(row)) {
                    let text = match m.data_type() {
                        DataType::Utf8 => m.as_string::<i32>().value(row),
                        DataType::LargeUtf8 => m.as_string::<i64>().value(row),
                        t => return Err(bad(format!("`metadata` of type {t}"))),
                    };
                    let value = serde_json::from_str(text)
                        .map_err(|_| bad(format!("row {row}: `metadata` is not JSON")))?;
                    item = item.with_metadata(value);
                }
                Ok(item)
            })
            .collect()
    }

    fn id_at(ids: &dyn Array, row: usize) -> Result<String, CliError> {
        if ids.is_null(row) {
            return Err(bad(format!("row {row}: null id")));
        }
        Ok(match ids.data_type() {
            DataType::Utf8 => ids.as_string::<i32>().value(row).to_owned(),
            DataType::LargeUtf8 => ids.as_string::<i64>().value(row).to_owned(),
            DataType::Int64 => ids.as_primitive::<Int64Type>().value(row).to_string(),
            DataType::Int32 => ids.as_primitive::<Int32Type>().value(row).to_string(),
            DataType::UInt64 => ids.as_primitive::<UInt64Type>().value(row).to_string(),
            t => return Err(bad(format!("`id` of type {t}"))),
        })
    }

    fn vector_at(vectors: &dyn Array, row: usize) -> Result<Vec<f32>, CliError> {
        if vectors.is_null(row) {
            return Err(bad(format!("row {row}: null vector")));
        }
        let values = match vectors.data_type() {
            DataType::List(_) => vectors.as_list::<i32>().value(row),
            DataType::LargeList(_) => vectors.as_list::<i64>().value(row),
            DataType::FixedSizeList(_, _) => vectors.as_fixed_size_list().value(row),
            t => return Err(bad(format!("`vector` of type {t}"))),
        };
        match values.data_type() {
            DataType::Float32 => Ok(values.as_primitive::<Float32Type>().values().to_vec()),
            DataType::Float64 => Ok(values
                .as_primitive::<Float64Type>()
                .values()
                .iter()
                .map(|&x| x as f32)
                .collect()),
            t => Err(bad(format!("`vector` values of type {t}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lines whose vector arrays are cut, spaced and broken at random positions: the item
    /// parser accepts exactly the lines serde_json accepts, with the same floats bit for bit.
    /// (The fast path splits an array in two halves scanned together, so the breaks fall in
    /// either half, at the cut, and at the ends.)
    #[test]
    fn items_equal_serde_json_on_broken_and_spaced_arrays() {
        #[derive(serde::Deserialize)]
        struct Whole {
            vector: Vec<f32>,
        }
        let mut s = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move |n: u64| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s % n
        };
        let (mut accepted, mut refused) = (0, 0);
        for _ in 0..20_000 {
            let len = next(9) as usize;
            let mut numbers: Vec<String> = (0..len)
                .map(|_| {
                    let x = (next(2_000_001) as f64 / 1e6 - 1.0) as f32;
                    match next(6) {
                        0 => format!("{x:e}"),
                        1 => format!("{}", next(100)),
                        2 => format!("{:.17}", f64::from(x)),
                        _ => format!("{x}"),
                    }
                })
                .collect();
            for n in &mut numbers {
                if next(8) == 0 {
                    *n = format!(
                        "{}{n}{}",
                        " ".repeat(next(3) as usize),
                        "\t".repeat(next(2) as usize)
                    );
                }
            }
            let mut array = format!("[{}]", numbers.join(","));
            if next(3) == 0 {
                let at = next(array.len() as u64 + 1) as usize;
                let junk = ["", ",", "]", "[", " ", "e", "-", ".", "x", "\"", "0", "1]"];
                array.insert_str(at, junk[next(junk.len() as u64) as usize]);
            }
            let line =
                format!("{{\"id\": \"a\", \"vector\": {array}, \"metadata\": {{\"v\": [1]}}}}");
            let want = serde_json::from_str::<Whole>(&line);
            match (item_of_json(line.as_bytes()), want) {
                (Ok(item), Ok(whole)) => {
                    accepted += 1;
                    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                    assert_eq!(bits(item.vector()), bits(&whole.vector), "{line}");
                }
                (Err(_), Err(_)) => refused += 1,
                (got, want) => panic!("{line}: {:?} vs serde {:?}", got.err(), want.err()),
            }
        }
        // Both outcomes are well represented.
        assert!(accepted > 10_000 && refused > 2_000, "{accepted} {refused}");
    }

    #[test]
    fn jsonl_line_counts_are_exact_when_small_and_close_when_large() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.jsonl");
        std::fs::write(&path, "{}\n{}\n{}").unwrap();
        assert_eq!(estimate_lines(&path), Some(Total::Exact(3)));
        std::fs::write(&path, "{}\n{}\n").unwrap();
        assert_eq!(estimate_lines(&path), Some(Total::Exact(2)));
        std::fs::write(&path, "").unwrap();
        assert_eq!(estimate_lines(&path), Some(Total::Exact(0)));
        // 3 MiB of lines of varying length: the estimate is within 5%.
        let text: String = (0..60_000)
            .map(|i| format!("{{\"id\": \"{i}\", \"x\": \"{}\"}}\n", "y".repeat(i % 70)))
            .collect();
        std::fs::write(&path, &text).unwrap();
        let Some(Total::About(n)) = estimate_lines(&path) else {
            panic!("an estimate")
        };
        assert!((57_000..=63_000).contains(&n), "{n}");
    }
}
