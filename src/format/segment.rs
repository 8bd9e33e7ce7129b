//! Segment files (immutable, one per write batch) and the plaintexts of their records.
//!
//! ```text
//! segment file of padded length L (format 8; format 7 in brackets):
//! 0     8   magic "CVECSEG1"
//! 8     2   format version
//! 10    6   reserved, zero                  [10  22  reserved, zero]
//! 16    32  key-check value of the index key the data key is wrapped under
//! 48    64  the data key the records are sealed under, wrapped by that index key
//! 112   16  reserved, zero
//! 128   ... sealed records, back to back, no clear framing          [32 ...]
//! O     D   sealed directory: count u32, then per record kind u8 | address [32] | offset u64 |
//!           length u32 (padded inside its encryption like every record)
//! O+D   ... zero bytes
//! L-160 160 sealed footer (128 bytes of plaintext): directory offset O u64 | length D u32 |
//!           commit note (epoch u64 | replace-all u8 | list epoch u64 | trained u8 |
//!           n_lists u32 | codebook u8 | key generation u32 | parent commit id [16] |
//!           flags u8 (1 = a history record is listed) | trained at items u64) (64 bytes) |
//!           signature [64] (an index with access control) or zeros
//!           [L-96 96: 64 bytes of plaintext, the note without parent and flags]
//! ```
//! L is the Padmé length of the unpadded file. The address of a list block is the list's
//! query token; other records have a zero address. Every clear byte (header, zeros) depends
//! only on L and on the keys the index's manifest header shows too: where records begin and
//! end, which list a block belongs to and how many records there are are all sealed, so the
//! storage learns only the (padded) size of the segment. The footer sits at a fixed place, so
//! a segment that no manifest names can still be found, authenticated and, with its commit
//! note, rolled forward; the wrapped data key in its header lets a holder of the index key
//! do that across a data-key rotation whose manifest was lost.

use super::padding;
use super::reader::Reader;
use super::{COMMIT_ID_LEN, CommitId, KEY_CHECK_LEN, RecordKind, SEALED_OVERHEAD, WRAPPED_KEY_LEN};
use crate::error::{Error, Result};

/// Magic bytes at offset 0.
pub(crate) const MAGIC: &[u8; 8] = b"CVECSEG1";
/// Offset of the key fields in a format-8 header.
const HEADER_KEYS_AT: usize = 16;
/// Length of the commit note's fields in a footer of format 7, after the directory's place.
const NOTE_V7_LEN: usize = 8 + 1 + 8 + 1 + 4 + 1 + 4;

/// The byte layout of segment files of one format version.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Layout {
    /// The format version (in the header, and bound into every record).
    pub version: u16,
    /// Length of the clear header: where the records begin.
    pub header_len: usize,
    /// Plaintext length of the footer.
    pub footer_plain_len: usize,
}

impl Layout {
    /// Format 7 (0.1.0): a 32-byte header of magic and version, a 64-byte footer plaintext.
    pub(crate) const V7: Layout = Layout {
        version: 7,
        header_len: 32,
        footer_plain_len: 64,
    };
    /// Format 8: the header also shows the keys the segment is sealed under; the footer
    /// has room for the parent commit and, reserved, a signature.
    pub(crate) const V8: Layout = Layout {
        version: 8,
        header_len: 128,
        footer_plain_len: 128,
    };
    /// What this version writes.
    pub(crate) const CURRENT: Layout = Layout::V8;

    /// The layout of format `version` (one this version reads; the caller checked it).
    pub(crate) fn of(version: u16) -> Result<Layout> {
        match version {
            7 => Ok(Layout::V7),
            8 => Ok(Layout::V8),
            _ => Err(Error::corrupted("segment format version")),
        }
    }

    /// Length of the sealed footer at the end of every segment file.
    pub(crate) fn footer_len(self) -> usize {
        self.footer_plain_len + SEALED_OVERHEAD
    }
}

const _: () = assert!(Layout::CURRENT.version == super::FORMAT_VERSION);

/// What a format-8 segment header shows of the keys its records are sealed under: the
/// index key's check value and the data key wrapped by it (as the manifest header shows
/// them), so that a holder of the index key can open a segment sealed under a data key no
/// stored manifest names any more (a rotation whose manifest was put back).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct HeaderKeys {
    /// Key-check value of the index key.
    pub key_check: [u8; KEY_CHECK_LEN],
    /// The data key, wrapped by the index key.
    pub wrapped_key: [u8; WRAPPED_KEY_LEN],
}
/// Length of the footer plaintext a segment signature covers (with the digest of every byte
/// before the footer); the signature follows it.
pub(crate) const SIGNED_FOOTER_LEN: usize = 64;
/// Length of a segment signature.
pub(crate) const SIGNATURE_LEN: usize = 64;

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
    /// The file so far: the header, then the records (so a record's offset is where it
    /// starts here, and `finish` appends rather than copies).
    file: Vec<u8>,
}

impl SegmentWriter {
    /// An empty segment with sequence number `seq` in the current format, sealed under the
    /// keys `keys` shows.
    pub(crate) fn new(seq: u64, keys: &HeaderKeys) -> SegmentWriter {
        let layout = Layout::CURRENT;
        let mut file = Vec::new();
        file.extend_from_slice(MAGIC);
        file.extend_from_slice(&layout.version.to_le_bytes());
        file.resize(HEADER_KEYS_AT, 0);
        file.extend_from_slice(&keys.key_check);
        file.extend_from_slice(&keys.wrapped_key);
        file.resize(layout.header_len, 0);
        SegmentWriter {
            seq,
            directory: Vec::new(),
            file,
        }
    }

    /// Reserves room for `bytes` more of records (a writer that knows roughly how much it
    /// will write saves the copies of a growing buffer).
    pub(crate) fn reserve(&mut self, bytes: usize) {
        self.file.reserve(bytes);
    }

    /// The sequence number.
    pub(crate) fn seq(&self) -> u64 {
        self.seq
    }

    /// The offset the next record will start at.
    pub(crate) fn next_offset(&self) -> u64 {
        self.file.len() as u64
    }

    /// Appends a record that `seal` appends to the file (returning its length) and lists it
    /// in the directory; returns the record's offset and length. On an error the file is as
    /// it was.
    pub(crate) fn push_with(
        &mut self,
        kind: RecordKind,
        address: &[u8; 32],
        seal: impl FnOnce(&mut Vec<u8>) -> Result<usize>,
    ) -> Result<(u64, u32)> {
        if RecordKind::listed_in_segment(kind as u8).is_none() {
            return Err(Error::invalid_argument("a record kind no directory lists"));
        }
        let (offset, len) = self.push_unlisted_with(seal)?;
        self.directory.push(RecordRef {
            kind,
            address: *address,
            offset,
            len,
        });
        Ok((offset, len))
    }

    /// As [`push_with`](Self::push_with), for a record that the directory does not list (a
    /// vector record: a list block names it).
    pub(crate) fn push_unlisted_with(
        &mut self,
        seal: impl FnOnce(&mut Vec<u8>) -> Result<usize>,
    ) -> Result<(u64, u32)> {
        let start = self.file.len();
        let len = seal(&mut self.file).and_then(|len| {
            u32::try_from(len).map_err(|_| Error::invalid_argument("record larger than 4 GiB"))
        });
        match len {
            Ok(len) => Ok((start as u64, len)),
            Err(e) => {
                self.file.truncate(start);
                Err(e)
            }
        }
    }

    /// Appends a sealed record; returns the file offset of its bytes.
    #[cfg(test)]
    pub(crate) fn push(
        &mut self,
        kind: RecordKind,
        address: &[u8; 32],
        sealed: &[u8],
    ) -> Result<u64> {
        self.push_with(kind, address, |file| {
            file.extend_from_slice(sealed);
            Ok(sealed.len())
        })
        .map(|(offset, _)| offset)
    }

    /// The finished file, with `note` in its footer; `seal_directory` and `seal_footer`
    /// encrypt the directory's and the footer's plaintext (the footer's sealed length must be
    /// the layout's [`footer_len`](Layout::footer_len)); `sign` signs the footer's first
    /// [`SIGNED_FOOTER_LEN`] bytes and every byte before the footer (or returns `None`: an
    /// index without access control).
    pub(crate) fn finish(
        self,
        note: &CommitNote,
        seal_directory: impl FnOnce(&[u8]) -> Result<Vec<u8>>,
        sign: impl FnOnce(&[u8], &[u8]) -> Result<Option<[u8; SIGNATURE_LEN]>>,
        seal_footer: impl FnOnce(&[u8]) -> Result<Vec<u8>>,
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
        let mut footer = Footer {
            directory_offset: self.file.len() as u64,
            directory_len: u32::try_from(directory.len())
                .map_err(|_| Error::invalid_argument("segment directory larger than 4 GiB"))?,
            note: *note,
            signature: None,
        };
        let layout = Layout::CURRENT;
        let footer_len = layout.footer_len();
        let len = padding::padme(self.file.len() + directory.len() + footer_len);
        let mut out = self.file;
        out.reserve_exact(len - out.len());
        out.extend_from_slice(&directory);
        out.resize(len - footer_len, 0);
        footer.signature = sign(&footer.signed_bytes(), &out)?;
        let sealed_footer = seal_footer(&footer.encode(layout))?;
        if sealed_footer.len() != footer_len {
            return Err(Error::invalid_argument("sealed footer length"));
        }
        out.extend_from_slice(&sealed_footer);
        Ok(out)
    }
}

/// What a segment's commit does to the manifest, sealed in its footer: the manifest edit is
/// derived from it both when the writer commits and when an open rolls a segment forward.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct CommitNote {
    /// The manifest epoch of the commit.
    pub epoch: u64,
    /// The segment replaces every live one (training, compaction, rotation) instead of being
    /// appended to them (upsert, delete).
    pub replace_all: bool,
    /// The list epoch after the commit (replace-all only).
    pub list_epoch: u64,
    /// The trained lists and whether a codebook is present, when the segment holds the
    /// centroids: a rewrite's, or (format 8) an appended list split's, whose centroids hold
    /// from then on.
    pub trained: Option<(u32, bool)>,
    /// The key generation the next writer starts at.
    pub key_generation: u32,
    /// The id of the commit this one extends (format 8; zeros in format 7, and for the
    /// first commit of a history).
    pub parent: CommitId,
    /// The segment lists a history record: the ids of the commits before this one (a
    /// rewrite carries the history forward; format 8).
    pub history: bool,
    /// A training's commit: the live items its lists were trained at (format 8; 0 for
    /// every other commit, and in format 7).
    pub trained_at: u64,
}

/// The plaintext of a segment footer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Footer {
    /// Offset of the sealed directory.
    pub directory_offset: u64,
    /// Length of the sealed directory.
    pub directory_len: u32,
    /// The commit note.
    pub note: CommitNote,
    /// The signature of an index with access control (format 8).
    pub signature: Option<[u8; SIGNATURE_LEN]>,
}

impl Footer {
    /// The bytes of the footer a segment signature covers (its first
    /// [`SIGNED_FOOTER_LEN`], in the current layout).
    pub(crate) fn signed_bytes(&self) -> Vec<u8> {
        let unsigned = Footer {
            signature: None,
            ..*self
        };
        let mut out = unsigned.encode(Layout::CURRENT);
        out.truncate(SIGNED_FOOTER_LEN);
        out
    }

    fn encode(&self, layout: Layout) -> Vec<u8> {
        let mut out = Vec::with_capacity(layout.footer_plain_len);
        out.extend_from_slice(&self.directory_offset.to_le_bytes());
        out.extend_from_slice(&self.directory_len.to_le_bytes());
        out.extend_from_slice(&self.note.epoch.to_le_bytes());
        out.push(u8::from(self.note.replace_all));
        out.extend_from_slice(&self.note.list_epoch.to_le_bytes());
        let (n_lists, codebook) = self.note.trained.unwrap_or((0, false));
        out.push(u8::from(self.note.trained.is_some()));
        out.extend_from_slice(&n_lists.to_le_bytes());
        out.push(u8::from(codebook));
        out.extend_from_slice(&self.note.key_generation.to_le_bytes());
        if layout.version >= 8 {
            out.extend_from_slice(&self.note.parent);
            out.push(u8::from(self.note.history));
            out.extend_from_slice(&self.note.trained_at.to_le_bytes());
            debug_assert_eq!(out.len(), SIGNED_FOOTER_LEN);
            if let Some(sig) = &self.signature {
                out.extend_from_slice(sig);
            }
        }
        out.resize(layout.footer_plain_len, 0);
        out
    }

    /// Decodes a footer's plaintext of `layout`.
    pub(crate) fn decode(plain: &[u8], layout: Layout) -> Result<Footer> {
        let mut r = Reader::new(plain, "segment footer");
        if plain.len() != layout.footer_plain_len {
            return Err(r.corrupted());
        }
        let directory_offset = r.u64()?;
        let directory_len = r.u32()?;
        let epoch = r.u64()?;
        let flag = |v: u8| match v {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(Error::corrupted("segment footer")),
        };
        let replace_all = flag(r.u8()?)?;
        let list_epoch = r.u64()?;
        let trained = flag(r.u8()?)?;
        let n_lists = r.u32()?;
        let codebook = flag(r.u8()?)?;
        let key_generation = r.u32()?;
        let (parent, history, trained_at) = if layout.version >= 8 {
            (r.array::<COMMIT_ID_LEN>()?, flag(r.u8()?)?, r.u64()?)
        } else {
            ([0; COMMIT_ID_LEN], false, 0)
        };
        debug_assert!(layout.version >= 8 || r.position() == 12 + NOTE_V7_LEN);
        let signature = if layout.version >= 8 {
            let sig: [u8; SIGNATURE_LEN] = r.array()?;
            sig.iter().any(|&b| b != 0).then_some(sig)
        } else {
            None
        };
        if r.bytes(r.remaining())?.iter().any(|&b| b != 0)
            || (!trained && (n_lists, codebook) != (0, false))
        {
            return Err(Error::corrupted("segment footer"));
        }
        Ok(Footer {
            directory_offset,
            directory_len,
            note: CommitNote {
                epoch,
                replace_all,
                list_epoch,
                trained: trained.then_some((n_lists, codebook)),
                key_generation,
                parent,
                history,
                trained_at,
            },
            signature,
        })
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

/// Checks a segment's clear bytes (header, length on the Padmé ladder) and returns its
/// layout and sealed footer: [`check_head`] over a whole file (opens read the pieces by range).
#[cfg(any(test, feature = "internals"))]
pub(crate) fn sealed_footer(file: &[u8]) -> Result<(Layout, &[u8])> {
    let layout = file.get(8..10).map_or(Ok(Layout::CURRENT), |v| {
        Layout::of(u16::from_le_bytes([v[0], v[1]]))
    })?;
    let head = file.get(..layout.header_len).unwrap_or(file);
    check_head(head, file.len() as u64, layout)?;
    Ok((layout, &file[file.len() - layout.footer_len()..]))
}

/// Checks a segment's first bytes (its clear header in `layout`: magic, version, zeros)
/// and its length (`file_len`: room for header and footer, padded); the sealed footer is
/// then its last [`Layout::footer_len`] bytes. Returns the keys a format-8 header shows.
pub(crate) fn check_head(head: &[u8], file_len: u64, layout: Layout) -> Result<Option<HeaderKeys>> {
    let mut r = Reader::new(head, "segment");
    if r.bytes(8)? != MAGIC || r.u16()? != layout.version {
        return Err(r.corrupted());
    }
    let keys = if layout.version >= 8 {
        if r.bytes(HEADER_KEYS_AT - 10)?.iter().any(|&b| b != 0) {
            return Err(r.corrupted());
        }
        let keys = HeaderKeys {
            key_check: r.array()?,
            wrapped_key: r.array()?,
        };
        Some(keys)
    } else {
        None
    };
    if r.bytes(layout.header_len - r.position())?
        .iter()
        .any(|&b| b != 0)
    {
        return Err(r.corrupted());
    }
    let len = usize::try_from(file_len).map_err(|_| r.corrupted())?;
    if len < layout.header_len + layout.footer_len() || padding::padme(len) != len {
        return Err(r.corrupted());
    }
    Ok(keys)
}

/// The sealed directory that an authenticated `footer` names, checked to lie between the
/// header and the footer with only zeros after it ([`directory_span`] and
/// [`directory_in_span`] over a whole file).
#[cfg(any(test, feature = "internals"))]
pub(crate) fn sealed_directory<'f>(
    file: &'f [u8],
    footer: &Footer,
    layout: Layout,
) -> Result<&'f [u8]> {
    let span = directory_span(file.len() as u64, footer, layout)?;
    directory_in_span(&file[span.start as usize..span.end as usize], footer)
}

/// Where the directory an authenticated `footer` names lies in a segment of `file_len`
/// bytes, with the zeros after it: from the directory's offset to the footer, checked to
/// lie after the header.
pub(crate) fn directory_span(
    file_len: u64,
    footer: &Footer,
    layout: Layout,
) -> Result<std::ops::Range<u64>> {
    let corrupted = || Error::corrupted("segment directory place");
    let start = footer.directory_offset;
    let end = start
        .checked_add(u64::from(footer.directory_len))
        .ok_or_else(corrupted)?;
    let footer_start = file_len
        .checked_sub(layout.footer_len() as u64)
        .ok_or_else(corrupted)?;
    if start < layout.header_len as u64 || end > footer_start {
        return Err(corrupted());
    }
    Ok(start..footer_start)
}

/// The sealed directory at the front of `span` (the bytes [`directory_span`] names), checked
/// to be followed by zeros only.
pub(crate) fn directory_in_span<'s>(span: &'s [u8], footer: &Footer) -> Result<&'s [u8]> {
    let len = footer.directory_len as usize;
    let (directory, rest) = span
        .split_at_checked(len)
        .ok_or_else(|| Error::corrupted("segment directory place"))?;
    if rest.iter().any(|&b| b != 0) {
        return Err(Error::corrupted("segment directory place"));
    }
    Ok(directory)
}

/// Decodes a directory's plaintext; every record must lie between the header (of `layout`)
/// and the directory (at `directory_offset`).
pub(crate) fn decode_directory(
    plain: &[u8],
    directory_offset: u64,
    layout: Layout,
) -> Result<Vec<RecordRef>> {
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
        if offset < layout.header_len as u64 || end.is_none_or(|e| e > directory_offset) {
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

/// Checks that the record byte ranges `ranges` (start, end) cover the bytes from the header
/// (of `layout`) to the directory at `directory_offset` exactly once: no gap, no overlap.
pub(crate) fn check_tiling(
    ranges: &mut [(u64, u64)],
    directory_offset: u64,
    layout: Layout,
) -> Result<()> {
    ranges.sort_unstable();
    let mut next = layout.header_len as u64;
    for &(start, end) in ranges.iter() {
        if start != next {
            return Err(Error::corrupted(if start > next {
                "bytes no record covers"
            } else {
                "overlapping records"
            }));
        }
        next = end;
    }
    if next != directory_offset {
        return Err(Error::corrupted("bytes no record covers"));
    }
    Ok(())
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
    /// Where the block's vectors record (row-major, one per entry) lies in this segment
    /// (`ivf_flat`); `None` when each vector lives in its own vector record (quantized
    /// types).
    pub vectors_at: Option<(u64, u32)>,
    /// Bytes per code (0: no codes).
    pub code_len: usize,
    /// The codes, `code_len` bytes per entry.
    pub codes: Vec<u8>,
    /// One per row.
    pub entries: Vec<BlockEntry>,
}

/// Layout flag of a list block: the vectors are in one block-vectors record, whose place
/// follows the flag.
const VECTORS_IN_BLOCK_RECORD: u8 = 2;

/// Plaintext of a list block: `count u32 | dim u32 | code_len u32 | flags u8 (2 = vectors in
/// a block-vectors record, 0 = a vector record per entry) | vectors offset u64, length u32
/// (flag 2) | codes (count*code_len) | entries`, each entry `token [32] | vector offset u64,
/// vector len u32 (flag 0) | fields offset u64 (u64::MAX = none) | fields len u32 | id len
/// u16 | id`.
#[cfg(test)]
pub(crate) fn encode_block(dim: usize, block: &Block) -> Vec<u8> {
    let mut out = Vec::new();
    encode_block_into(dim, block, &mut out);
    out
}

/// As `encode_block` (test builds), appended to `out`.
pub(crate) fn encode_block_into(dim: usize, block: &Block, out: &mut Vec<u8>) {
    let count = block.entries.len();
    out.reserve(25 + block.codes.len() + count * 76);
    out.extend_from_slice(&(count as u32).to_le_bytes());
    out.extend_from_slice(&(dim as u32).to_le_bytes());
    out.extend_from_slice(&(block.code_len as u32).to_le_bytes());
    match block.vectors_at {
        Some((offset, len)) => {
            out.push(VECTORS_IN_BLOCK_RECORD);
            out.extend_from_slice(&offset.to_le_bytes());
            out.extend_from_slice(&len.to_le_bytes());
        }
        None => out.push(0),
    }
    out.extend_from_slice(&block.codes);
    for e in &block.entries {
        out.extend_from_slice(&e.token);
        if block.vectors_at.is_none() {
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
}

/// Bytes of the smallest entry of a list block, codes aside: token, fields place, id length
/// (a block-vectors record's entries; the others add a vector place).
const MIN_BLOCK_ENTRY: usize = 32 + 12 + 2;

/// The most entries a list block sealed in `sealed_len` bytes, with codes of `code_len`
/// bytes, can hold (its plaintext, padding included, is shorter than the sealed bytes): an
/// upper bound an open sizes the item table by before decrypting the blocks.
pub(crate) fn block_entries_at_most(sealed_len: usize, code_len: usize) -> usize {
    sealed_len / (MIN_BLOCK_ENTRY + code_len)
}

/// Decodes a list block of dimension `dim`. A block without a block-vectors record must
/// give every entry a vector record.
pub(crate) fn decode_block(plain: &[u8], dim: usize) -> Result<Block> {
    let mut r = Reader::new(plain, "list block");
    let count = r.u32()? as usize;
    if r.u32()? as usize != dim {
        return Err(r.corrupted());
    }
    let code_len = r.u32()? as usize;
    let vectors_at = match r.u8()? {
        0 => None,
        VECTORS_IN_BLOCK_RECORD => Some((r.u64()?, r.u32()?)),
        _ => return Err(r.corrupted()),
    };
    let shared_record = vectors_at.is_some();
    let codes = r
        .bytes(count.checked_mul(code_len).ok_or_else(|| r.corrupted())?)?
        .to_vec();
    let min_entry = MIN_BLOCK_ENTRY + if shared_record { 0 } else { 12 };
    if count > r.remaining() / min_entry {
        return Err(r.corrupted());
    }
    let mut entries = Vec::with_capacity(count);
    for _ in 0..count {
        let token = r.array()?;
        let vector = if shared_record {
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
        vectors_at,
        code_len,
        codes,
        entries,
    })
}

/// Decodes a `float32` block-vectors record (the vectors of a block's entries, row-major,
/// each as [`VectorCoding::F32`](super::vectors::VectorCoding) writes it) of `rows` vectors of dimension `dim` whose padded
/// plaintext, `padded_len` bytes, was decrypted into the front of `floats` (seen as bytes):
/// checks the padding and the length, and returns the floats in native order, the padding
/// cut off, without a copy.
pub(crate) fn decode_block_vectors(
    mut floats: Vec<f32>,
    padded_len: usize,
    rows: usize,
    dim: usize,
) -> Result<Vec<f32>> {
    let corrupted = || Error::corrupted("block vectors");
    let bytes: &[u8] = bytemuck::cast_slice(&floats);
    let padded = bytes.get(..padded_len).ok_or_else(corrupted)?;
    let len = padding::unpad(padded, "block vectors")?.len();
    let count = rows.checked_mul(dim).ok_or_else(corrupted)?;
    if count.checked_mul(4) != Some(len) {
        return Err(corrupted());
    }
    floats.truncate(count);
    if cfg!(target_endian = "big") {
        floats
            .iter_mut()
            .for_each(|f| *f = f32::from_bits(u32::from_le(f.to_bits())));
    }
    Ok(floats)
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

/// Plaintext of a history record: `count u32 | count * (epoch u64 | commit id [16])`,
/// epochs ascending.
pub(crate) fn encode_history(entries: &[(u64, CommitId)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + entries.len() * (8 + COMMIT_ID_LEN));
    out.extend_from_slice(&(entries.len() as u32).to_le_bytes());
    for (epoch, id) in entries {
        out.extend_from_slice(&epoch.to_le_bytes());
        out.extend_from_slice(id);
    }
    out
}

/// Decodes a history record; its epochs must ascend.
pub(crate) fn decode_history(plain: &[u8]) -> Result<Vec<(u64, CommitId)>> {
    let mut r = Reader::new(plain, "history record");
    let count = r.u32()? as usize;
    if count != r.remaining() / (8 + COMMIT_ID_LEN) {
        return Err(r.corrupted());
    }
    let mut entries: Vec<(u64, CommitId)> = Vec::with_capacity(count);
    for _ in 0..count {
        let entry = (r.u64()?, r.array()?);
        if entries.last().is_some_and(|last| last.0 >= entry.0) {
            return Err(r.corrupted());
        }
        entries.push(entry);
    }
    r.finish()?;
    Ok(entries)
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
        let shared = Block {
            vectors_at: Some((4096, 56)),
            code_len: 0,
            codes: Vec::new(),
            entries: vec![
                entry(1, None, Some((100, 20)), "a"),
                entry(2, None, None, "ünï"),
            ],
        };
        let apart = Block {
            vectors_at: None,
            code_len: 2,
            codes: vec![9, 8, 7, 6],
            entries: vec![
                entry(1, Some((40, 1600)), None, "a"),
                entry(2, Some((2000, 1600)), Some((100, 20)), "b"),
            ],
        };
        for block in [shared, apart] {
            let plain = encode_block(3, &block);
            assert_eq!(decode_block(&plain, 3).unwrap(), block);
            assert!(decode_block(&plain, 2).is_err());
            for cut in 0..plain.len() {
                assert!(decode_block(&plain[..cut], 3).is_err());
            }
        }
        let rows = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0];
        let mut plain = Vec::new();
        for row in rows.chunks(3) {
            super::super::vectors::VectorCoding::F32.encode_into(row, &mut plain);
        }
        // Row-major little-endian floats and nothing else: `persist::open_block_vectors`
        // decrypts them straight into a vector of floats, which is decoded in place.
        let want: Vec<u8> = rows.iter().flat_map(|r| r.to_le_bytes()).collect();
        assert_eq!(plain, want);
        padding::pad_tail(&mut plain, 0, 0);
        let as_floats = |bytes: &[u8]| -> Vec<f32> {
            let mut floats = vec![0f32; bytes.len().div_ceil(4)];
            bytemuck::cast_slice_mut(&mut floats)[..bytes.len()].copy_from_slice(bytes);
            floats
        };
        let decoded = decode_block_vectors(as_floats(&plain), plain.len(), 2, 3).unwrap();
        assert_eq!(decoded, rows);
        assert!(decode_block_vectors(as_floats(&plain), plain.len(), 3, 3).is_err());
        assert!(decode_block_vectors(as_floats(&plain), plain.len(), usize::MAX, 3).is_err());
        assert!(decode_block_vectors(as_floats(&plain), plain.len() + 4, 2, 3).is_err());
        assert!(decode_block_vectors(as_floats(&plain[..20]), 20, 2, 3).is_err());
    }

    /// The entry bound an open sizes its item table by holds for the smallest entries (empty
    /// ids, with and without vector places and codes) and is reached by them.
    #[test]
    fn block_entry_bound_holds_for_the_smallest_entries() {
        for (vectors_at, code_len) in [(Some((0, 0)), 0), (None, 0), (None, 7)] {
            for n in [0usize, 1, 2, 17, 300] {
                let block = Block {
                    vectors_at,
                    code_len,
                    codes: vec![3; n * code_len],
                    entries: (0..n)
                        .map(|i| BlockEntry {
                            token: [i as u8; 32],
                            vector: vectors_at.is_none().then_some((8, 8)),
                            fields: None,
                            id: String::new(),
                        })
                        .collect(),
                };
                let plain = encode_block(2, &block);
                let bound = block_entries_at_most(plain.len(), code_len);
                assert!(bound >= n, "{n} entries, bound {bound}");
                if vectors_at.is_some() && n > 0 {
                    // No slack beyond the block header for the smallest entries.
                    assert!(bound <= n + 1, "{n} entries, bound {bound}");
                }
            }
        }
    }

    /// A stand-in for sealing: the plaintext reversed, padded to the sealed length.
    fn fake_seal(plain: &[u8]) -> Vec<u8> {
        let mut out: Vec<u8> = plain.iter().rev().copied().collect();
        out.extend_from_slice(&[0xAA; SEALED_OVERHEAD]);
        out
    }

    fn fake_open(sealed: &[u8]) -> Vec<u8> {
        sealed[..sealed.len() - SEALED_OVERHEAD]
            .iter()
            .rev()
            .copied()
            .collect()
    }

    #[test]
    fn tiling_needs_every_byte_once() {
        let layout = Layout::CURRENT;
        let h = layout.header_len as u64;
        let tiles = |ranges: &mut [(u64, u64)], end| check_tiling(ranges, end, layout);
        assert!(tiles(&mut [(h + 10, h + 30), (h, h + 10)], h + 30).is_ok());
        assert!(tiles(&mut [], h).is_ok());
        // A gap, an overlap, a duplicate, a short or long end, bytes before the first.
        assert!(tiles(&mut [(h, h + 10), (h + 11, h + 30)], h + 30).is_err());
        assert!(tiles(&mut [(h, h + 10), (h + 9, h + 30)], h + 30).is_err());
        assert!(tiles(&mut [(h, h + 10), (h, h + 10)], h + 10).is_err());
        assert!(tiles(&mut [(h, h + 10)], h + 11).is_err());
        assert!(tiles(&mut [(h, h + 10)], h + 9).is_err());
        assert!(tiles(&mut [(h + 1, h + 10)], h + 10).is_err());
    }

    const KEYS: HeaderKeys = HeaderKeys {
        key_check: [0x11; KEY_CHECK_LEN],
        wrapped_key: [0x22; WRAPPED_KEY_LEN],
    };

    #[test]
    fn segment_round_trip() {
        let mut w = SegmentWriter::new(7, &KEYS);
        let off = w.push(RecordKind::Fields, &[0; 32], b"xyz").unwrap();
        w.push(RecordKind::ListBlock, &[5; 32], b"").unwrap();
        let note = CommitNote {
            epoch: 9,
            replace_all: true,
            list_epoch: 3,
            trained: Some((17, true)),
            key_generation: 2,
            parent: [0x33; COMMIT_ID_LEN],
            history: true,
            trained_at: 12_345,
        };
        let file = w
            .finish(
                &note,
                |p| Ok(fake_seal(p)),
                |signed, before| {
                    // The signer sees the footer's first bytes and everything before it.
                    assert_eq!(signed.len(), SIGNED_FOOTER_LEN);
                    assert_eq!(&before[..8], MAGIC);
                    Ok(Some([0x5a; SIGNATURE_LEN]))
                },
                |p| Ok(fake_seal(p)),
            )
            .unwrap();
        let layout = Layout::CURRENT;
        let header_len = layout.header_len;
        assert_eq!(padding::padme(file.len()), file.len());
        let (found, sealed) = sealed_footer(&file).unwrap();
        assert_eq!(found, layout);
        let footer = Footer::decode(&fake_open(sealed), layout).unwrap();
        assert_eq!(footer.note, note);
        assert_eq!(footer.signature, Some([0x5a; SIGNATURE_LEN]));
        assert_eq!(footer.signed_bytes().len(), SIGNED_FOOTER_LEN);
        let plain = fake_open(sealed_directory(&file, &footer, layout).unwrap());
        let recs = decode_directory(&plain, footer.directory_offset, layout).unwrap();
        assert_eq!(recs.len(), 2);
        assert_eq!(recs[0].offset, off);
        assert_eq!(off, header_len as u64);
        assert_eq!(recs[1].address, [5; 32]);
        assert_eq!(record_bytes(&file, off, 3).unwrap(), b"xyz");
        // Every clear byte: the header shows the format and the keys, nothing else.
        assert_eq!(&file[..8], MAGIC);
        assert_eq!(
            check_head(&file[..header_len], file.len() as u64, layout).unwrap(),
            Some(KEYS)
        );
        assert!(file[10..HEADER_KEYS_AT].iter().all(|&b| b == 0));
        assert!(
            file[HEADER_KEYS_AT + 96..header_len]
                .iter()
                .all(|&b| b == 0)
        );
        // A truncated file is refused, or shows other bytes where the footer must be (which
        // then fail authentication).
        for cut in 0..file.len() {
            let sealed_at_cut = sealed_footer(&file[..cut]);
            assert!(sealed_at_cut.is_err() || sealed_at_cut.unwrap().1 != sealed);
        }
        // The version and the reserved bytes are checked; the key fields are what the
        // manifest and the records' authentication check.
        for i in (8..HEADER_KEYS_AT).chain(HEADER_KEYS_AT + 96..header_len) {
            let mut bad = file.clone();
            bad[i] ^= 1;
            assert!(sealed_footer(&bad).is_err(), "header byte {i}");
        }
        // A non-zero byte between the directory and the footer.
        let mut bad = file.clone();
        let end = (footer.directory_offset + u64::from(footer.directory_len)) as usize;
        if end < file.len() - layout.footer_len() {
            bad[end] = 1;
            assert!(sealed_directory(&bad, &footer, layout).is_err());
        }
        // Directories placed outside their room.
        for (offset, len) in [(0, 4), (u64::MAX, 4), (footer.directory_offset, u32::MAX)] {
            let f = Footer {
                directory_offset: offset,
                directory_len: len,
                ..footer
            };
            assert!(sealed_directory(&file, &f, layout).is_err());
        }
        for cut in 0..plain.len() {
            assert!(decode_directory(&plain[..cut], footer.directory_offset, layout).is_err());
        }
        let footer_plain = fake_open(sealed);
        for i in 0..footer_plain.len() {
            let mut bad = footer_plain.clone();
            bad[i] = 0xFF;
            let decoded = Footer::decode(&bad, layout);
            assert!(
                decoded.is_err() || decoded.unwrap() != footer,
                "footer byte {i}"
            );
        }
        // A footer of the other layout's length is refused.
        assert!(Footer::decode(&footer_plain[..Layout::V7.footer_plain_len], layout).is_err());
        // A record reaching into the directory is refused.
        assert!(decode_directory(&plain, off + 2, layout).is_err());
        assert_eq!(parse_file_name(&file_name(7)), Some(7));
    }

    #[test]
    fn history_round_trip_and_order() {
        let entries = vec![(3, [1; COMMIT_ID_LEN]), (5, [2; COMMIT_ID_LEN])];
        let plain = encode_history(&entries);
        assert_eq!(decode_history(&plain).unwrap(), entries);
        for cut in 0..plain.len() {
            assert!(decode_history(&plain[..cut]).is_err());
        }
        let backwards = encode_history(&[(5, [2; COMMIT_ID_LEN]), (3, [1; COMMIT_ID_LEN])]);
        assert!(decode_history(&backwards).is_err());
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
