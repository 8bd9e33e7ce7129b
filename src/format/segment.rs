//! Segment files (immutable, one per write batch) and the plaintexts of their records.
//!
//! ```text
//! segment file:
//! 0   8   magic "CVECSEG1"
//! 8   2   format version
//! 10  2   reserved, zero
//! 12  8   segment sequence number
//! 20  8   directory offset O
//! 28  4   directory length D
//! 32  ... sealed records, back to back, no clear framing
//! O   D   sealed directory: count u32, then per record kind u8 | address [32] | offset u64 |
//!         length u32 (padded inside its encryption like every record)
//! O+D ... zero bytes up to the file's Padmé length
//! ```
//! The address of a list block is the list's query token; other records have a zero address.
//! Only the sealed directory says where records begin and end and which list a block
//! belongs to, so the storage learns neither list membership nor record sizes, only the
//! (padded) size of the whole segment.

use super::padding;
use super::reader::Reader;
use super::{FORMAT_VERSION, RecordKind};
use crate::error::{Error, Result};

/// Magic bytes at offset 0.
pub(crate) const MAGIC: &[u8; 8] = b"CVECSEG1";
/// Length of the segment header.
pub(crate) const HEADER_LEN: usize = 32;
/// Length of one directory entry (kind, address, offset, length).
const DIRECTORY_ENTRY_LEN: usize = 1 + 32 + 8 + 4;

/// File name of segment `seq`.
pub(crate) fn file_name(seq: u64) -> String {
    format!("seg-{seq:016x}.cvs")
}

/// The sequence number of a segment file name, if it is one.
pub(crate) fn parse_file_name(name: &str) -> Option<u64> {
    let hex = name.strip_prefix("seg-")?.strip_suffix(".cvs")?;
    if hex.len() != 16 {
        return None;
    }
    u64::from_str_radix(hex, 16).ok()
}

/// Builds a segment file in memory.
pub(crate) struct SegmentWriter {
    seq: u64,
    directory: Vec<RecordRef>,
    body: Vec<u8>,
}

impl SegmentWriter {
    /// An empty segment with sequence number `seq`.
    pub(crate) fn new(seq: u64) -> SegmentWriter {
        SegmentWriter {
            seq,
            directory: Vec::new(),
            body: Vec::new(),
        }
    }

    /// The sequence number.
    pub(crate) fn seq(&self) -> u64 {
        self.seq
    }

    /// Appends a sealed record; returns the file offset of its bytes.
    pub(crate) fn push(
        &mut self,
        kind: RecordKind,
        address: &[u8; 32],
        sealed: &[u8],
    ) -> Result<u64> {
        if RecordKind::listed_in_segment(kind as u8).is_none() {
            return Err(Error::invalid_argument("a record kind no directory lists"));
        }
        let len = u32::try_from(sealed.len())
            .map_err(|_| Error::invalid_argument("record larger than 4 GiB"))?;
        let offset = (HEADER_LEN + self.body.len()) as u64;
        self.body.extend_from_slice(sealed);
        self.directory.push(RecordRef {
            kind,
            address: *address,
            offset,
            len,
        });
        Ok(offset)
    }

    /// Appends a sealed record that the directory does not list (a vector record: a list
    /// block names it); returns the file offset of its bytes.
    pub(crate) fn push_unlisted(&mut self, sealed: &[u8]) -> u64 {
        let offset = (HEADER_LEN + self.body.len()) as u64;
        self.body.extend_from_slice(sealed);
        offset
    }

    /// The finished file; `seal_directory` encrypts the directory's plaintext.
    pub(crate) fn finish(
        self,
        seal_directory: impl FnOnce(&[u8]) -> Result<Vec<u8>>,
    ) -> Result<Vec<u8>> {
        let mut plain = Vec::with_capacity(4 + self.directory.len() * DIRECTORY_ENTRY_LEN);
        plain.extend_from_slice(&(self.directory.len() as u32).to_le_bytes());
        for r in &self.directory {
            plain.push(r.kind as u8);
            plain.extend_from_slice(&r.address);
            plain.extend_from_slice(&r.offset.to_le_bytes());
            plain.extend_from_slice(&r.len.to_le_bytes());
        }
        let directory = seal_directory(&plain)?;
        let directory_len = u32::try_from(directory.len())
            .map_err(|_| Error::invalid_argument("segment directory larger than 4 GiB"))?;
        let directory_offset = (HEADER_LEN + self.body.len()) as u64;
        let len = HEADER_LEN + self.body.len() + directory.len();
        let mut out = Vec::with_capacity(padding::padme(len));
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        out.extend_from_slice(&self.seq.to_le_bytes());
        out.extend_from_slice(&directory_offset.to_le_bytes());
        out.extend_from_slice(&directory_len.to_le_bytes());
        out.extend_from_slice(&self.body);
        out.extend_from_slice(&directory);
        out.resize(padding::padme(len), 0);
        Ok(out)
    }
}

/// Where one record lies in a segment file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RecordRef {
    /// Kind.
    pub kind: RecordKind,
    /// Address (query token for list blocks).
    pub address: [u8; 32],
    /// Offset of the sealed bytes.
    pub offset: u64,
    /// Length of the sealed bytes.
    pub len: u32,
}

/// Checks a segment's clear header and returns its sealed directory with the directory's
/// offset (for [`decode_directory`]). The file length must be on the Padmé ladder and
/// everything after the directory zero.
pub(crate) fn sealed_directory(file: &[u8], expected_seq: u64) -> Result<(u64, &[u8])> {
    let mut r = Reader::new(file, "segment");
    if r.bytes(8)? != MAGIC || r.u16()? != FORMAT_VERSION || r.u16()? != 0 {
        return Err(r.corrupted());
    }
    if r.u64()? != expected_seq {
        return Err(r.corrupted());
    }
    let offset = usize::try_from(r.u64()?).map_err(|_| r.corrupted())?;
    let len = r.u32()? as usize;
    let end = offset.checked_add(len).ok_or_else(|| r.corrupted())?;
    if offset < HEADER_LEN || end > file.len() || padding::padme(file.len()) != file.len() {
        return Err(r.corrupted());
    }
    if file[end..].iter().any(|&b| b != 0) {
        return Err(r.corrupted());
    }
    Ok((offset as u64, &file[offset..end]))
}

/// Decodes a directory's plaintext; every record must lie between the header and the
/// directory (at `directory_offset`).
pub(crate) fn decode_directory(plain: &[u8], directory_offset: u64) -> Result<Vec<RecordRef>> {
    let mut r = Reader::new(plain, "segment directory");
    let count = r.u32()? as usize;
    if count > r.remaining() / DIRECTORY_ENTRY_LEN {
        return Err(r.corrupted());
    }
    let mut records = Vec::with_capacity(count);
    for _ in 0..count {
        let kind = RecordKind::listed_in_segment(r.u8()?).ok_or_else(|| r.corrupted())?;
        let address = r.array()?;
        let offset = r.u64()?;
        let len = r.u32()?;
        let end = offset.checked_add(u64::from(len));
        if offset < HEADER_LEN as u64 || end.is_none_or(|e| e > directory_offset) {
            return Err(r.corrupted());
        }
        records.push(RecordRef {
            kind,
            address,
            offset,
            len,
        });
    }
    r.finish()?;
    Ok(records)
}

/// The sealed bytes of a record, bounds-checked.
pub(crate) fn record_bytes(file: &[u8], offset: u64, len: u32) -> Result<&[u8]> {
    let start = usize::try_from(offset).map_err(|_| Error::corrupted("record offset"))?;
    let end = start
        .checked_add(len as usize)
        .ok_or_else(|| Error::corrupted("record offset"))?;
    file.get(start..end)
        .ok_or_else(|| Error::corrupted("record offset"))
}

/// One entry of a list block.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct BlockEntry {
    /// Item token.
    pub token: [u8; 32],
    /// Where the item's vector record is in this segment, when vectors are stored apart
    /// from the block (quantized index types).
    pub vector: Option<(u64, u32)>,
    /// Offset of the item's fields record in this segment, if it has one.
    pub fields: Option<(u64, u32)>,
    /// The item id.
    pub id: String,
}

/// A list block's contents.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Block {
    /// The vectors, row-major, when stored in the block (`ivf_flat`); `None` when each lives
    /// in its own vector record (quantized types).
    pub vectors: Option<Vec<f32>>,
    /// Bytes per code (0: no codes).
    pub code_len: usize,
    /// The codes, `code_len` bytes per entry.
    pub codes: Vec<u8>,
    /// One per row.
    pub entries: Vec<BlockEntry>,
}

/// Layout flag of a list block: the vectors are in the block.
const VECTORS_INLINE: u8 = 1;

/// Plaintext of a list block: `count u32 | dim u32 | code_len u32 | flags u8 (1 = vectors
/// inline) | vectors (count*dim f32, when inline) | codes (count*code_len) | entries`, each
/// entry `token [32] | vector offset u64, vector len u32 (when not inline) | fields offset u64
/// (u64::MAX = none) | fields len u32 | id len u16 | id`.
pub(crate) fn encode_block(dim: usize, block: &Block) -> Vec<u8> {
    let count = block.entries.len();
    let inline = block.vectors.as_deref().unwrap_or_default();
    let mut out = Vec::with_capacity(13 + inline.len() * 4 + block.codes.len() + count * 76);
    out.extend_from_slice(&(count as u32).to_le_bytes());
    out.extend_from_slice(&(dim as u32).to_le_bytes());
    out.extend_from_slice(&(block.code_len as u32).to_le_bytes());
    out.push(if block.vectors.is_some() {
        VECTORS_INLINE
    } else {
        0
    });
    for v in inline {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out.extend_from_slice(&block.codes);
    for e in &block.entries {
        out.extend_from_slice(&e.token);
        if block.vectors.is_none() {
            let (off, len) = e.vector.unwrap_or((u64::MAX, 0));
            out.extend_from_slice(&off.to_le_bytes());
            out.extend_from_slice(&len.to_le_bytes());
        }
        let (off, len) = e.fields.unwrap_or((u64::MAX, 0));
        out.extend_from_slice(&off.to_le_bytes());
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(e.id.len() as u16).to_le_bytes());
        out.extend_from_slice(e.id.as_bytes());
    }
    out
}

/// Decodes a list block of dimension `dim`. A block without inline vectors must give every
/// entry a vector record.
pub(crate) fn decode_block(plain: &[u8], dim: usize) -> Result<Block> {
    let mut r = Reader::new(plain, "list block");
    let count = r.u32()? as usize;
    if r.u32()? as usize != dim {
        return Err(r.corrupted());
    }
    let code_len = r.u32()? as usize;
    let inline = match r.u8()? {
        0 => false,
        VECTORS_INLINE => true,
        _ => return Err(r.corrupted()),
    };
    let vectors = if inline {
        let floats = count.checked_mul(dim).ok_or_else(|| r.corrupted())?;
        let raw = r.bytes(floats.checked_mul(4).ok_or_else(|| r.corrupted())?)?;
        Some(floats_from_le(raw))
    } else {
        None
    };
    let codes = r
        .bytes(count.checked_mul(code_len).ok_or_else(|| r.corrupted())?)?
        .to_vec();
    let min_entry = if inline { 46 } else { 58 };
    if count > r.remaining() / min_entry {
        return Err(r.corrupted());
    }
    let mut entries = Vec::with_capacity(count);
    for _ in 0..count {
        let token = r.array()?;
        let vector = if inline {
            None
        } else {
            let off = r.u64()?;
            let len = r.u32()?;
            if off == u64::MAX {
                return Err(r.corrupted());
            }
            Some((off, len))
        };
        let off = r.u64()?;
        let len = r.u32()?;
        let id_len = r.u16()? as usize;
        let id = std::str::from_utf8(r.bytes(id_len)?).map_err(|_| r.corrupted())?;
        entries.push(BlockEntry {
            token,
            vector,
            fields: (off != u64::MAX).then_some((off, len)),
            id: id.to_owned(),
        });
    }
    r.finish()?;
    Ok(Block {
        vectors,
        code_len,
        codes,
        entries,
    })
}

/// Plaintext of a vector record: `dim f32`.
pub(crate) fn encode_vector(vector: &[f32]) -> Vec<u8> {
    vector.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// Decodes a vector record into `out`, whose length is the dimension.
pub(crate) fn decode_vector_into(plain: &[u8], out: &mut [f32]) -> Result<()> {
    if plain.len() != out.len() * 4 {
        return Err(Error::corrupted("vector record"));
    }
    for (o, c) in out.iter_mut().zip(plain.chunks_exact(4)) {
        *o = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
    }
    Ok(())
}

/// Little-endian `f32`s (the length a multiple of 4).
fn floats_from_le(raw: &[u8]) -> Vec<f32> {
    raw.chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// Plaintext of a fields record: `flags u8 (1 = metadata, 2 = contents) | metadata len u32 |
/// metadata (JSON) | contents len u32 | contents`.
pub(crate) fn encode_fields(metadata: Option<&[u8]>, contents: Option<&[u8]>) -> Vec<u8> {
    let (m, c) = (metadata.unwrap_or(&[]), contents.unwrap_or(&[]));
    let flags = u8::from(metadata.is_some()) | u8::from(contents.is_some()) << 1;
    let mut out = Vec::with_capacity(9 + m.len() + c.len());
    out.push(flags);
    out.extend_from_slice(&(m.len() as u32).to_le_bytes());
    out.extend_from_slice(m);
    out.extend_from_slice(&(c.len() as u32).to_le_bytes());
    out.extend_from_slice(c);
    out
}

/// Decoded fields: metadata JSON bytes and contents.
pub(crate) type Fields = (Option<Vec<u8>>, Option<Vec<u8>>);

/// Decodes a fields record.
pub(crate) fn decode_fields(plain: &[u8]) -> Result<Fields> {
    let mut r = Reader::new(plain, "fields record");
    let flags = r.u8()?;
    if flags > 3 {
        return Err(r.corrupted());
    }
    let m_len = r.u32()? as usize;
    let m = r.bytes(m_len)?.to_vec();
    let c_len = r.u32()? as usize;
    let c = r.bytes(c_len)?.to_vec();
    r.finish()?;
    Ok(((flags & 1 != 0).then_some(m), (flags & 2 != 0).then_some(c)))
}

/// Plaintext of a tombstones record: `count u32 | tokens`.
pub(crate) fn encode_tombstones(tokens: &[[u8; 32]]) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + 32 * tokens.len());
    out.extend_from_slice(&(tokens.len() as u32).to_le_bytes());
    tokens.iter().for_each(|t| out.extend_from_slice(t));
    out
}

/// Decodes a tombstones record.
pub(crate) fn decode_tombstones(plain: &[u8]) -> Result<Vec<[u8; 32]>> {
    let mut r = Reader::new(plain, "tombstones");
    let count = r.u32()? as usize;
    if count != r.remaining() / 32 {
        return Err(r.corrupted());
    }
    let tokens = (0..count).map(|_| r.array()).collect::<Result<Vec<_>>>()?;
    r.finish()?;
    Ok(tokens)
}

/// Plaintext of a centroids record: `n u32 | dim u32 | n*dim f32`.
pub(crate) fn encode_centroids(dim: usize, centroids: &[f32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + centroids.len() * 4);
    out.extend_from_slice(&((centroids.len() / dim.max(1)) as u32).to_le_bytes());
    out.extend_from_slice(&(dim as u32).to_le_bytes());
    centroids
        .iter()
        .for_each(|v| out.extend_from_slice(&v.to_le_bytes()));
    out
}

/// Decodes a centroids record of dimension `dim`.
pub(crate) fn decode_centroids(plain: &[u8], dim: usize) -> Result<Vec<f32>> {
    let mut r = Reader::new(plain, "centroids");
    let n = r.u32()? as usize;
    if r.u32()? as usize != dim
        || n == 0
        || n.checked_mul(dim).and_then(|f| f.checked_mul(4)) != Some(r.remaining())
    {
        return Err(r.corrupted());
    }
    Ok(floats_from_le(r.bytes(r.remaining())?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_round_trip() {
        let entry = |token: u8, vector: Option<(u64, u32)>, fields, id: &str| BlockEntry {
            token: [token; 32],
            vector,
            fields,
            id: id.into(),
        };
        let inline = Block {
            vectors: Some(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]),
            code_len: 0,
            codes: Vec::new(),
            entries: vec![
                entry(1, None, Some((100, 20)), "a"),
                entry(2, None, None, "ünï"),
            ],
        };
        let apart = Block {
            vectors: None,
            code_len: 2,
            codes: vec![9, 8, 7, 6],
            entries: vec![
                entry(1, Some((40, 1600)), None, "a"),
                entry(2, Some((2000, 1600)), Some((100, 20)), "b"),
            ],
        };
        for block in [inline, apart] {
            let plain = encode_block(3, &block);
            assert_eq!(decode_block(&plain, 3).unwrap(), block);
            assert!(decode_block(&plain, 2).is_err());
            for cut in 0..plain.len() {
                assert!(decode_block(&plain[..cut], 3).is_err());
            }
        }
        let v = [1.5f32, -2.0, 0.25];
        let mut out = [0.0; 3];
        decode_vector_into(&encode_vector(&v), &mut out).unwrap();
        assert_eq!(out, v);
        assert!(decode_vector_into(&encode_vector(&v), &mut [0.0; 2]).is_err());
    }

    #[test]
    fn segment_round_trip() {
        let mut w = SegmentWriter::new(7);
        let off = w.push(RecordKind::Fields, &[0; 32], b"xyz").unwrap();
        w.push(RecordKind::ListBlock, &[5; 32], b"").unwrap();
        // A stand-in for sealing: the plaintext reversed.
        let file = w
            .finish(|plain| Ok(plain.iter().rev().copied().collect()))
            .unwrap();
        assert_eq!(padding::padme(file.len()), file.len());
        let (directory_offset, sealed) = sealed_directory(&file, 7).unwrap();
        let plain: Vec<u8> = sealed.iter().rev().copied().collect();
        let recs = decode_directory(&plain, directory_offset).unwrap();
        assert_eq!(recs.len(), 2);
        assert_eq!(recs[0].offset, off);
        assert_eq!(recs[1].address, [5; 32]);
        assert_eq!(record_bytes(&file, off, 3).unwrap(), b"xyz");
        assert!(sealed_directory(&file, 8).is_err());
        for cut in 0..file.len() {
            assert!(sealed_directory(&file[..cut], 7).is_err());
        }
        for cut in 0..plain.len() {
            assert!(decode_directory(&plain[..cut], directory_offset).is_err());
        }
        // A record reaching into the directory is refused.
        assert!(decode_directory(&plain, off + 2).is_err());
        assert_eq!(parse_file_name(&file_name(7)), Some(7));
    }

    #[test]
    fn fields_tombstones_centroids_round_trip() {
        let f = encode_fields(Some(b"{}"), None);
        assert_eq!(decode_fields(&f).unwrap(), (Some(b"{}".to_vec()), None));
        let t = encode_tombstones(&[[3; 32], [4; 32]]);
        assert_eq!(decode_tombstones(&t).unwrap(), vec![[3; 32], [4; 32]]);
        let c = encode_centroids(2, &[1.0, 2.0, 3.0, 4.0]);
        assert_eq!(decode_centroids(&c, 2).unwrap(), vec![1.0, 2.0, 3.0, 4.0]);
        assert!(decode_centroids(&c, 3).is_err());
    }
}
