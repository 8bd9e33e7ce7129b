//! The segment writer: [`SegmentBuilder`] seals fields, vectors, list blocks and the other
//! records of one commit into a segment file, each padded and bound to its place.

use std::num::NonZeroU32;

use crate::crypto::aead::{self, Binding, Sealer};
use crate::crypto::schedule::Keys;
use crate::crypto::sign::Signed;
use crate::engine::binding::binding;
use crate::engine::state::{BlockRef, FieldsRef, VectorRef};
use crate::error::{Error, Result};
use crate::format::access::AccessSection;
use crate::format::manifest::ManifestHeader;
use crate::format::segment::{self, Block, BlockEntry, CommitNote, HeaderKeys, SegmentWriter};
use crate::format::vectors::VectorCoding;
use crate::format::{CommitId, FORMAT_VERSION, RecordKind, padding};

use super::segments::footer_binding;

/// One item as a list block stores it.
pub(crate) struct BlockItem<'a> {
    /// Item token (under the keys being written).
    pub token: [u8; 32],
    /// The id.
    pub id: &'a str,
    /// Its fields record in the segment being built, if any.
    pub fields: Option<FieldsRef>,
    /// The vector.
    pub vector: &'a [f32],
    /// Its code (empty for `ivf_flat` and untrained indexes).
    pub code: &'a [u8],
}

/// Builds one sealed segment.
pub(crate) struct SegmentBuilder<'k> {
    keys: &'k Keys,
    writer: SegmentWriter,
    /// The keys the clear header shows (the footer binds them).
    shows: HeaderKeys,
}

impl<'k> SegmentBuilder<'k> {
    /// An empty segment `seq`, sealed under `keys` (which `header` wraps), in the current
    /// format: writers upgrade an index of an older one before they write.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] if `keys` are of an older format.
    pub(crate) fn new(
        keys: &'k Keys,
        header: &ManifestHeader,
        seq: u64,
    ) -> Result<SegmentBuilder<'k>> {
        if keys.format != FORMAT_VERSION {
            return Err(Error::invalid_argument(
                "a segment sealed in an older format",
            ));
        }
        let shows = HeaderKeys {
            key_check: header.key_check,
            wrapped_key: header.wrapped_key,
        };
        Ok(SegmentBuilder {
            keys,
            writer: SegmentWriter::new(seq, &shows),
            shows,
        })
    }

    /// The segment's sequence number.
    pub(crate) fn seq(&self) -> u64 {
        self.writer.seq()
    }

    /// Reserves room for about `bytes` of records.
    pub(crate) fn reserve(&mut self, bytes: usize) {
        self.writer.reserve(bytes);
    }

    fn binding(&self, kind: RecordKind, list: [u8; 32], item: [u8; 32]) -> Binding {
        binding(self.keys.format, kind, self.writer.seq(), list, item)
    }

    /// Appends the record of the plaintext `write` appends, padded and sealed where it lies
    /// (`binding` completed with that offset), listed in the directory under `kind` at
    /// `address` (`None`: unlisted, a record its list block names); returns its offset and
    /// length.
    fn push_sealed(
        &mut self,
        (kind, address): (RecordKind, Option<&[u8; 32]>),
        sealer: &Sealer,
        binding: &Binding,
        write: impl FnOnce(&mut Vec<u8>),
    ) -> Result<(u64, u32)> {
        let binding = binding.at(self.writer.next_offset());
        let seal = |file: &mut Vec<u8>| seal_padded_into(sealer, &binding, file, write);
        match address {
            Some(address) => self.writer.push_with(kind, address, seal),
            None => self.writer.push_unlisted_with(seal),
        }
    }

    /// Seals an item's metadata and contents; returns where they are.
    pub(crate) fn add_fields(
        &mut self,
        token: &[u8; 32],
        metadata: Option<&[u8]>,
        contents: Option<&[u8]>,
    ) -> Result<FieldsRef> {
        let plain = segment::encode_fields(metadata, contents);
        let binding = self.binding(RecordKind::Fields, [0; 32], *token);
        let keys = self.keys;
        let (offset, len) = self.push_sealed(
            (RecordKind::Fields, Some(&[0; 32])),
            &keys.content,
            &binding,
            |o| o.extend_from_slice(&plain),
        )?;
        Ok(FieldsRef {
            segment: self.writer.seq(),
            offset,
            len: nonzero_len(len)?,
        })
    }

    /// Seals an item's vector, stored as `coding` says, as a record of its own (quantized
    /// types); returns where it is.
    pub(crate) fn add_vector(
        &mut self,
        token: &[u8; 32],
        vector: &[f32],
        coding: VectorCoding,
    ) -> Result<VectorRef> {
        let binding = self.binding(RecordKind::Vector, [0; 32], *token);
        let keys = self.keys;
        let (offset, len) =
            self.push_sealed((RecordKind::Vector, None), &keys.payload, &binding, |o| {
                coding.encode_into(vector, o);
            })?;
        Ok(VectorRef {
            segment: self.writer.seq(),
            offset,
            len: nonzero_len(len)?,
        })
    }

    /// Seals the items of the lists `lists` (list number and items, under list epoch
    /// `list_epoch`): first every list's vectors (with `split_vectors`, quantized types, each
    /// vector as a record of its own; else a list's vectors together in one block-vectors
    /// record), then every list's block (entries and codes). Vectors are stored as `coding`
    /// says. The blocks lie together after all vectors, so an open that reads the item table
    /// and not the vectors reads one stretch of each segment. Returns, per list, where its
    /// block is and each item's vector record.
    pub(crate) fn add_lists(
        &mut self,
        list_epoch: u64,
        (dim, coding): (usize, VectorCoding),
        split_vectors: bool,
        lists: &[(u32, Vec<BlockItem<'_>>)],
    ) -> Result<Vec<(BlockRef, Vec<Option<VectorRef>>)>> {
        let mut placed = Vec::with_capacity(lists.len());
        for (list, items) in lists {
            let code_len = items.first().map_or(0, |i| i.code.len());
            if items.iter().any(|i| i.code.len() != code_len) {
                return Err(Error::invalid_argument("codes of unequal length"));
            }
            let mut vector_refs = Vec::with_capacity(items.len());
            for item in items {
                vector_refs.push(if split_vectors {
                    Some(self.add_vector(&item.token, item.vector, coding)?)
                } else {
                    None
                });
            }
            let vectors_at = if split_vectors {
                None
            } else {
                Some(self.add_block_vectors((list_epoch, *list), items, coding)?)
            };
            placed.push((vectors_at, code_len, vector_refs));
        }
        let mut out = Vec::with_capacity(lists.len());
        for ((list, items), (vectors_at, code_len, vector_refs)) in lists.iter().zip(placed) {
            let block = Block {
                vectors_at,
                code_len,
                codes: items.iter().flat_map(|i| i.code.iter().copied()).collect(),
                entries: items
                    .iter()
                    .zip(&vector_refs)
                    .map(|(i, v)| BlockEntry {
                        token: i.token,
                        vector: v.map(|v| (v.offset, v.len.get())),
                        fields: i.fields.map(|f| (f.offset, f.len.get())),
                        id: i.id.to_owned(),
                    })
                    .collect(),
            };
            let at = self.add_block(list_epoch, *list, dim, &block)?;
            out.push((at, vector_refs));
        }
        Ok(out)
    }

    /// Seals the vectors of one list's items, row-major, each stored as `coding` says, as the
    /// block-vectors record its block will name; returns where it is.
    fn add_block_vectors(
        &mut self,
        (list_epoch, list): (u64, u32),
        items: &[BlockItem<'_>],
        coding: VectorCoding,
    ) -> Result<(u64, u32)> {
        let label = self.keys.list_label(list_epoch, list);
        let binding = self.binding(RecordKind::BlockVectors, label, [0; 32]);
        let keys = self.keys;
        self.push_sealed(
            (RecordKind::BlockVectors, None),
            &keys.payload,
            &binding,
            |o| {
                o.reserve(
                    items
                        .iter()
                        .map(|i| coding.vector_len(i.vector.len()))
                        .sum(),
                );
                for item in items {
                    coding.encode_into(item.vector, o);
                }
            },
        )
    }

    /// Seals one list's block; returns where it is.
    fn add_block(
        &mut self,
        list_epoch: u64,
        list: u32,
        dim: usize,
        block: &Block,
    ) -> Result<BlockRef> {
        let label = self.keys.list_label(list_epoch, list);
        let binding = self.binding(RecordKind::ListBlock, label, [0; 32]);
        let address = self.keys.query_token(list_epoch, list);
        let keys = self.keys;
        // The block is encoded, padded and encrypted where it lies in the file.
        let (offset, len) = self.push_sealed(
            (RecordKind::ListBlock, Some(&address)),
            &keys.payload,
            &binding,
            |o| segment::encode_block_into(dim, block, o),
        )?;
        Ok(BlockRef {
            segment: self.writer.seq(),
            offset,
            len,
            vectors_len: block.vectors_at.map_or(0, |(_, len)| len),
            vectors_offset: block.vectors_at.map_or(0, |(offset, _)| offset),
        })
    }

    /// Seals a tombstones record.
    pub(crate) fn add_tombstones(&mut self, tokens: &[[u8; 32]]) -> Result<()> {
        let plain = segment::encode_tombstones(tokens);
        let binding = self.binding(RecordKind::Tombstones, [0; 32], [0; 32]);
        let keys = self.keys;
        self.push_sealed(
            (RecordKind::Tombstones, Some(&[0; 32])),
            &keys.content,
            &binding,
            |o| o.extend_from_slice(&plain),
        )?;
        Ok(())
    }

    /// Seals the trained code parameters of a quantized index.
    pub(crate) fn add_codebook(&mut self, codebook: &[u8]) -> Result<()> {
        let binding = self.binding(RecordKind::Codebook, [0; 32], [0; 32]);
        let keys = self.keys;
        self.push_sealed(
            (RecordKind::Codebook, Some(&[0; 32])),
            &keys.payload,
            &binding,
            |o| o.extend_from_slice(codebook),
        )?;
        Ok(())
    }

    /// Seals the access section this rewrite commits (so that rolling the rewrite forward
    /// installs it too).
    pub(crate) fn add_access(&mut self, section: &AccessSection) -> Result<()> {
        let plain = section.encode();
        let binding = self.binding(RecordKind::Access, [0; 32], [0; 32]);
        let keys = self.keys;
        self.push_sealed(
            (RecordKind::Access, Some(&[0; 32])),
            &keys.payload,
            &binding,
            |o| o.extend_from_slice(&plain),
        )?;
        Ok(())
    }

    /// Seals a history record: the (epoch, id) of the commits before this segment's.
    pub(crate) fn add_history(&mut self, entries: &[(u64, CommitId)]) -> Result<()> {
        let plain = segment::encode_history(entries);
        let binding = self.binding(RecordKind::History, [0; 32], [0; 32]);
        let keys = self.keys;
        self.push_sealed(
            (RecordKind::History, Some(&[0; 32])),
            &keys.payload,
            &binding,
            |o| o.extend_from_slice(&plain),
        )?;
        Ok(())
    }

    /// Seals the centroids.
    pub(crate) fn add_centroids(&mut self, dim: usize, centroids: &[f32]) -> Result<()> {
        let plain = segment::encode_centroids(dim, centroids);
        let binding = self.binding(RecordKind::Centroids, [0; 32], [0; 32]);
        let keys = self.keys;
        self.push_sealed(
            (RecordKind::Centroids, Some(&[0; 32])),
            &keys.payload,
            &binding,
            |o| o.extend_from_slice(&plain),
        )?;
        Ok(())
    }

    /// The finished file bytes (the directory and the footer with `note` sealed, the file
    /// padded).
    pub(crate) fn finish(self, note: &CommitNote) -> Result<Vec<u8>> {
        let directory = self.binding(RecordKind::Directory, [0; 32], [0; 32]);
        let footer = footer_binding(self.keys.format, self.writer.seq(), Some(&self.shows));
        let keys = self.keys;
        self.writer.finish(
            note,
            |plain| seal_padded(&keys.payload, plain, &directory),
            |signed, before| {
                let Some(access) = &keys.access else {
                    return Ok(None);
                };
                let signer = access.signer.as_ref().ok_or(Error::PermissionDenied)?;
                Ok(Some(signer.sign(Signed::Segment, &[signed, before])))
            },
            |plain| keys.payload.seal(plain, &footer),
        )
    }
}

/// Seals `plain` padded so that the sealed record's length is on the Padmé ladder.
fn seal_padded(sealer: &Sealer, plain: &[u8], binding: &Binding) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    seal_padded_into(sealer, binding, &mut out, |o| o.extend_from_slice(plain))?;
    Ok(out)
}

/// As [`seal_padded`], appending the record to `out`: `write` appends the plaintext, which
/// is padded and encrypted where it lies. Returns the record's length.
fn seal_padded_into(
    sealer: &Sealer,
    binding: &Binding,
    out: &mut Vec<u8>,
    write: impl FnOnce(&mut Vec<u8>),
) -> Result<usize> {
    sealer.seal_with(out, binding, |o| {
        let start = o.len();
        write(o);
        padding::pad_tail(o, start, aead::OVERHEAD);
    })
}

/// The length of a sealed record as a [`FieldsRef`] or [`VectorRef`] holds it.
fn nonzero_len(len: u32) -> Result<NonZeroU32> {
    NonZeroU32::new(len).ok_or_else(|| Error::invalid_argument("an empty record"))
}
