//! Between the in-memory state and the store: sealing and writing segments and the manifest,
//! and reading, authenticating and decrypting them back.

use std::borrow::Cow;
use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Arc;

use crate::crypto;
use crate::crypto::aead::{self, Binding, Sealer};
use crate::crypto::key::IndexKey;
use crate::crypto::schedule::{AccessKeys, DataKey, IndexParams, KEY_CHECK_LEN, KeyWrapper, Keys};
use crate::crypto::sign::Signed;
use crate::error::{Error, Result};
use crate::format::access::AccessSection;
use crate::format::manifest::{self, MANIFEST_FILE, ManifestBody, ManifestHeader};
use crate::format::manifest::{SegmentRef, TrainedRef};
use crate::format::segment::{
    self, Block, BlockEntry, CommitNote, Fields, Footer, HeaderKeys, Layout, RecordRef,
    SegmentWriter,
};
use crate::format::vectors::VectorCoding;
use crate::format::{COMMIT_ID_LEN, CommitId, FORMAT_VERSION, RecordKind, padding};
use crate::storage::{Blob, IndexFiles};

use super::access::{self, wrap_binding};
use super::binding::{binding, params, whole};
use super::state::{BlockRef, FieldsRef, VectorRef};

/// Maps an I/O error reading a file that must exist.
pub(crate) fn read_error(e: std::io::Error) -> Error {
    match e.kind() {
        std::io::ErrorKind::NotFound => Error::corrupted("missing file"),
        std::io::ErrorKind::InvalidData => Error::corrupted("not a regular file"),
        std::io::ErrorKind::UnexpectedEof => Error::corrupted("shorter than the manifest says"),
        _ => Error::from(e),
    }
}

/// The sealed bytes of the record at `offset` (`len` bytes) of a segment: a place outside
/// the file is `Corrupted`; a failed fetch from a remote store is its error.
pub(crate) fn record(blob: &Blob, offset: u64, len: u32) -> Result<Cow<'_, [u8]>> {
    blob.read(offset, u64::from(len))
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::UnexpectedEof => Error::corrupted("record offset"),
            _ => read_error(e),
        })
}

/// A `Corrupted` error naming `file` (names are not secret: the storage lists them); a
/// missing file is `Corrupted` too. Other errors pass unchanged.
pub(crate) fn in_file(file: &str, e: Error) -> Error {
    match e {
        Error::Corrupted { what } => Error::corrupted(format!("{file}: {what}")),
        Error::IndexNotFound => Error::corrupted(format!("{file}: missing")),
        e => e,
    }
}

/// Reads the live segment `seg` names (in format `layout`) and checks its length and footer
/// digest against the manifest's (callers name the file in errors, see [`in_file`]).
pub(crate) fn read_segment(
    store: &dyn IndexFiles,
    seg: &SegmentRef,
    layout: Layout,
) -> Result<Blob> {
    let blob = store
        .open_segment(&segment::file_name(seg.seq), seg.len)
        .map_err(read_error)?;
    if blob.len() == seg.len && blob_digest(&blob, layout)? == seg.digest {
        return Ok(blob);
    }
    // A read cache may hold chunks of an object of the same name that never committed (a
    // failed writer's segment that a roll-forward read): read it afresh once.
    blob.forget_cached();
    if blob.len() == seg.len && blob_digest(&blob, layout)? == seg.digest {
        return Ok(blob);
    }
    Err(Error::corrupted(
        "length or digest differs from the manifest's",
    ))
}

/// Fetches the records at `places` (segment, offset, length) into a remote store's read
/// cache, each segment's adjacent ones in one request and the segments in parallel;
/// nothing to do for local files.
pub(crate) fn prefetch(
    blobs: &HashMap<u64, Arc<Blob>>,
    places: impl Iterator<Item = (u64, u64, u64)>,
) -> Result<()> {
    use rayon::prelude::*;
    if blobs.values().all(|b| b.local().is_some()) {
        return Ok(());
    }
    let mut ranges: HashMap<u64, Vec<std::ops::Range<u64>>> = HashMap::new();
    for (seq, offset, len) in places {
        ranges
            .entry(seq)
            .or_default()
            .push(offset..offset.saturating_add(len));
    }
    super::parallel::install(|| {
        ranges.into_par_iter().try_for_each(|(seq, ranges)| {
            let Some(blob) = blobs.get(&seq) else {
                return Ok(());
            };
            let ranges: Vec<_> = ranges.into_iter().filter(|r| r.end <= blob.len()).collect();
            blob.prefetch(&ranges)
                .map_err(|e| in_file(&segment::file_name(seq), read_error(e)))
        })
    })
}

/// What the manifest commits to of a segment besides its length: the SHA3-256 digest of
/// its sealed footer. The footer names the (sealed, segment-bound) directory and carries a
/// random nonce, so the digest pins this one segment file; every record in it is then
/// checked by its own tag, which binds the segment and the record's offset. Cheap at any
/// size, so an open need not read a segment whole.
pub(crate) fn segment_digest(file: &[u8], layout: Layout) -> [u8; 32] {
    crypto::digest(&file[file.len().saturating_sub(layout.footer_len())..])
}

/// [`segment_digest`] of a stored segment (reading its footer only).
pub(crate) fn blob_digest(blob: &Blob, layout: Layout) -> Result<[u8; 32]> {
    let footer_len = (layout.footer_len() as u64).min(blob.len());
    let footer = blob
        .read(blob.len() - footer_len, footer_len)
        .map_err(read_error)?;
    Ok(segment_digest(&footer, layout))
}

/// The list each list-block address (query token) of list epoch `list_epoch` stands for.
pub(crate) fn list_addresses(keys: &Keys, list_epoch: u64, n_lists: u32) -> HashMap<[u8; 32], u32> {
    (0..n_lists)
        .map(|l| (keys.query_token(list_epoch, l), l))
        .collect()
}

/// Where a list-block entry's fields or vector record lies in segment `segment`.
pub(crate) fn entry_place(segment: u64, (offset, len): (u64, u32)) -> Result<FieldsRef> {
    Ok(FieldsRef {
        segment,
        offset,
        len: NonZeroU32::new(len).ok_or_else(|| Error::corrupted("record length"))?,
    })
}

/// Authenticates and decodes the tombstones record `rec` of segment `seq`.
pub(crate) fn open_tombstones(
    keys: &Keys,
    blob: &Blob,
    seq: u64,
    rec: &RecordRef,
) -> Result<Vec<[u8; 32]>> {
    let sealed = record(blob, rec.offset, rec.len)?;
    let binding =
        binding(keys.format, RecordKind::Tombstones, seq, [0; 32], [0; 32]).at(rec.offset);
    segment::decode_tombstones(&open_padded(
        &keys.content,
        &sealed,
        &binding,
        "tombstones",
    )?)
}

/// Authenticates and opens the training record `rec` (centroids or codebook, under the
/// payload key) of segment `seq`.
pub(crate) fn open_training_record(
    keys: &Keys,
    blob: &Blob,
    seq: u64,
    rec: &RecordRef,
) -> Result<Vec<u8>> {
    let sealed = record(blob, rec.offset, rec.len)?;
    let binding = binding(keys.format, rec.kind, seq, [0; 32], [0; 32]).at(rec.offset);
    open_padded(&keys.payload, &sealed, &binding, "training record")
}

/// Authenticates and decodes the history record `rec` of segment `seq`.
pub(crate) fn open_history(
    keys: &Keys,
    blob: &Blob,
    seq: u64,
    rec: &RecordRef,
) -> Result<Vec<(u64, CommitId)>> {
    let sealed = record(blob, rec.offset, rec.len)?;
    let binding = binding(keys.format, RecordKind::History, seq, [0; 32], [0; 32]).at(rec.offset);
    segment::decode_history(&open_padded(
        &keys.payload,
        &sealed,
        &binding,
        "history record",
    )?)
}

/// The access section a rewrite's segment carries (see [`SegmentBuilder::add_access`]), if
/// its directory lists one.
pub(crate) fn open_access_record(
    keys: &Keys,
    blob: &Blob,
    seq: u64,
    records: &[RecordRef],
) -> Result<Option<AccessSection>> {
    let mut found = records.iter().filter(|r| r.kind == RecordKind::Access);
    let (Some(rec), None) = (found.next(), found.next()) else {
        return Ok(None);
    };
    let sealed = record(blob, rec.offset, rec.len)?;
    let binding = binding(keys.format, RecordKind::Access, seq, [0; 32], [0; 32]).at(rec.offset);
    let plain = open_padded(&keys.payload, &sealed, &binding, "access record")?;
    AccessSection::decode(&plain).map(Some)
}

/// Opens index `name`'s manifest file `file` as `user` with `user_key`: its grant found by
/// token and opened, the signature and MAC checked, the body decrypted.
///
/// # Errors
/// [`Error::WrongKey`] if no grant of that user and key is there.
pub(crate) fn manifest_as_user(
    file: &[u8],
    (user, user_key): (&str, &IndexKey),
    name: &str,
) -> Result<(ManifestHeader, Keys, ManifestBody)> {
    let parts = manifest::decode(file)?;
    let header = parts.header.clone();
    let uk = Arc::new(params(&header).user_keys(user_key, user));
    let opening = access::user_keys(&header, parts.version, &uk, 0)?;
    let body = authenticated_body(&parts, &opening, name)?;
    let keys = access::user_keys(&header, parts.version, &uk, body.key_generation)?;
    Ok((header, keys, body))
}

/// The keys of an opener like `keys` (the index key's holder, or a user) for `header`, AEAD
/// keys starting at `generation`: after a roll-forward moved the generation (and perhaps the
/// data key and grants).
pub(crate) fn keys_like(
    keys: &Keys,
    header: &ManifestHeader,
    key: Option<&IndexKey>,
    generation: u32,
) -> Result<Keys> {
    match (&keys.user, key) {
        (Some(uk), _) => access::user_keys(header, keys.format, uk, generation),
        (None, Some(key)) => keys_at(header, key, generation, keys.format),
        (None, None) => Err(Error::WrongKey),
    }
}

/// An authenticated manifest and the data key it wraps.
struct OpenedManifest {
    version: u16,
    header: ManifestHeader,
    body: ManifestBody,
    dek: DataKey,
}

/// Reads and authenticates the manifest with `key`.
///
/// Order: parse the clear header; compare the key-check value (`WrongKey` before any
/// decryption); unwrap the data key; verify the MAC over the whole file; decrypt the body.
fn open_manifest(store: &dyn IndexFiles, key: &IndexKey, name: &str) -> Result<OpenedManifest> {
    open_manifest_file(&read_manifest_file(store)?, key, name)
}

/// As [`open_manifest`], of the manifest file's bytes `file`.
fn open_manifest_file(file: &[u8], key: &IndexKey, name: &str) -> Result<OpenedManifest> {
    let parts = manifest::decode(file)?;
    let header = parts.header.clone();
    let dek = unwrap_data_key(&header, key, parts.version)?;
    let wrapper = Arc::new(params(&header).key_wrapper(key));
    let keys = access::attach(
        Keys::derive(params(&header), &dek, 0, parts.version).with_wrapper(wrapper),
        &header,
    )?;
    let body = authenticated_body(&parts, &keys, name)?;
    Ok(OpenedManifest {
        version: parts.version,
        header,
        body,
        dek,
    })
}

/// The body of a split manifest file: its MAC verified and its body decrypted with `keys`,
/// and bound to index `name` (another index's files, under the same key, in this index's
/// place are refused).
fn authenticated_body(
    parts: &manifest::ManifestParts<'_>,
    keys: &Keys,
    name: &str,
) -> Result<ManifestBody> {
    // The signature first: it proves who committed (a holder of write scope), the MAC
    // only that the bytes are whole under the data key every user holds.
    match (&parts.signature, &keys.access) {
        (None, None) => {}
        (Some((signed, signature)), Some(access)) => {
            if !access
                .verifier
                .verify(Signed::Manifest, &[signed], signature)
            {
                return Err(Error::corrupted("MANIFEST signature"));
            }
        }
        _ => return Err(Error::corrupted("MANIFEST signature")),
    }
    if !keys.manifest_mac.verify(&[parts.signed], parts.mac) {
        return Err(Error::corrupted("MANIFEST authentication"));
    }
    let plain = open_padded(
        &keys.manifest,
        parts.sealed_body,
        &whole(parts.version, RecordKind::Manifest),
        "MANIFEST body",
    )?;
    let body = manifest::decode_body(parts.version, &plain)?;
    if body.name != name {
        return Err(Error::corrupted("MANIFEST of another index"));
    }
    Ok(body)
}

/// The data key `header` (of format `version`) wraps under `key` (`WrongKey` before any
/// decryption if the key-check value differs).
fn unwrap_data_key(header: &ManifestHeader, key: &IndexKey, version: u16) -> Result<DataKey> {
    params(header).unwrap(
        key,
        &header.key_check,
        &header.wrapped_key,
        &wrap_binding(version, header.access.is_some()),
    )
}

/// The working keys of an index (format `version`) under `key` starting at AEAD generation
/// `generation` (after a roll-forward moved it past the manifest's).
pub(crate) fn keys_at(
    header: &ManifestHeader,
    key: &IndexKey,
    generation: u32,
    version: u16,
) -> Result<Keys> {
    let dek = unwrap_data_key(header, key, version)?;
    let wrapper = Arc::new(params(header).key_wrapper(key));
    access::attach(
        Keys::derive(params(header), &dek, generation, version).with_wrapper(wrapper),
        header,
    )
}

/// Authenticates the manifest file's bytes `file` (from [`read_manifest_file`]) with `key`;
/// returns it with the working keys (AEAD keys starting at the manifest's next generation,
/// able to wrap new data keys).
pub(crate) fn manifest_of(
    file: &[u8],
    key: &IndexKey,
    name: &str,
) -> Result<(ManifestHeader, Keys, ManifestBody)> {
    let m = open_manifest_file(file, key, name)?;
    let wrapper = Arc::new(params(&m.header).key_wrapper(key));
    let keys = access::attach(
        Keys::derive(params(&m.header), &m.dek, m.body.key_generation, m.version)
            .with_wrapper(wrapper),
        &m.header,
    )?;
    Ok((m.header, keys, m.body))
}

/// Proves that `key` opens the index named `name` (key check, data-key unwrap, manifest
/// authentication, the name it is bound to).
pub(crate) fn check_key(store: &dyn IndexFiles, key: &IndexKey, name: &str) -> Result<()> {
    open_manifest(store, key, name).map(|_| ())
}

/// Authenticates the stored manifest of index `name` (its file's bytes `file`, from
/// [`read_manifest_file`]) with an open handle's `keys` (its header must name the same
/// index); returns its body, and new keys and header when another process rotated the data
/// key under the same index key since (`keys` hold the wrapper that opens the new data key).
///
/// # Errors
/// [`Error::WrongKey`] if the index key was rotated (the handle's key no longer opens the
/// index); [`Error::Corrupted`] if it does not authenticate (damaged or replaced).
pub(crate) fn stored_body_of(
    file: &[u8],
    keys: &Keys,
    header: &ManifestHeader,
    name: &str,
) -> Result<(ManifestBody, Option<(ManifestHeader, Keys)>)> {
    let parts = manifest::decode(file)?;
    if parts.header.index_id != header.index_id || parts.header.salt != header.salt {
        return Err(Error::corrupted("MANIFEST of another index"));
    }
    if parts.header == *header && parts.version == keys.format {
        return Ok((authenticated_body(&parts, keys, name)?, None));
    }
    let version = parts.version;
    if let Some(uk) = &keys.user {
        // A user: its grant in the new access section (a grant, revocation or rotation
        // since); none is `WrongKey` (revoked).
        let opening = access::user_keys(&parts.header, version, uk, 0)?;
        let body = authenticated_body(&parts, &opening, name)?;
        let keys = access::user_keys(&parts.header, version, uk, body.key_generation)?;
        return Ok((body, Some((parts.header.clone(), keys))));
    }
    // Another index key (a rotation since): this handle's key no longer opens the index.
    if parts.header.key_check != header.key_check {
        return Err(Error::WrongKey);
    }
    // A new data key under the same index key (a rotation, or the upgrade to this format),
    // or new grants.
    let wrapper = keys.wrapper.as_ref().ok_or(Error::WrongKey)?;
    let dek = wrapper.unwrap(
        &parts.header.wrapped_key,
        &wrap_binding(version, parts.header.access.is_some()),
    )?;
    let opening = access::attach(
        Keys::derive(params(&parts.header), &dek, 0, version).with_wrapper(wrapper.clone()),
        &parts.header,
    )?;
    let body = authenticated_body(&parts, &opening, name)?;
    let keys = access::attach(
        Keys::derive(params(&parts.header), &dek, body.key_generation, version)
            .with_wrapper(wrapper.clone()),
        &parts.header,
    )?;
    Ok((body, Some((parts.header.clone(), keys))))
}

// An object store refuses to read a manifest longer than the format allows.
const _: () = assert!(crate::storage::MAX_MANIFEST_LEN == manifest::MAX_FILE_LEN as u64);

/// The bytes of the manifest file, copied out of storage once its size is checked (errors
/// name the file).
pub(crate) fn read_manifest_file(store: &dyn IndexFiles) -> Result<Vec<u8>> {
    let failed = |e| in_file(MANIFEST_FILE, read_error(e));
    let file = match store.read(MANIFEST_FILE) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(Error::IndexNotFound),
        Err(e) if e.kind() == std::io::ErrorKind::FileTooLarge => {
            return Err(Error::corrupted("MANIFEST larger than any index writes"));
        }
        Err(e) => return Err(failed(e)),
    };
    if file.len() > manifest::MAX_FILE_LEN as u64 {
        return Err(Error::corrupted("MANIFEST larger than any index writes"));
    }
    Ok(file.whole().map_err(failed)?.into_owned())
}

/// A header and keys for a fresh data key wrapped under `new` (index key and data key both
/// replaced: the compromise-recovery rotation). AEAD generations start over.
pub(crate) fn new_keys_under(
    header: &ManifestHeader,
    keys: &Keys,
    new: &IndexKey,
) -> Result<(ManifestHeader, Keys)> {
    let wrapper = Arc::new(params(header).key_wrapper(new));
    let plan = access::Plan::current(header, keys)?;
    fresh_data_key(header, wrapper, params(header).key_check(new), plan, keys)
}

/// A fresh data key wrapped by `wrapper` (whose index key has `key_check`), in `header`'s
/// place, with the access section of `plan` (if any) issued for it and for the opener of
/// `opener`: the new header and the keys derived from the new data key (generations start
/// over).
fn fresh_data_key(
    header: &ManifestHeader,
    wrapper: Arc<KeyWrapper>,
    key_check: [u8; KEY_CHECK_LEN],
    plan: Option<access::Plan>,
    opener: &Keys,
) -> Result<(ManifestHeader, Keys)> {
    let dek = DataKey::generate()?;
    let mut new_header = ManifestHeader {
        key_check,
        wrapped_key: wrapper.wrap(&dek, &wrap_binding(FORMAT_VERSION, false))?,
        access: None,
        ..header.clone()
    };
    let keys = Keys::derive(params(header), &dek, 0, FORMAT_VERSION).with_wrapper(wrapper.clone());
    let keys = match plan {
        Some(plan) => access::install(&mut new_header, keys, &dek, &wrapper, plan, opener)?,
        None => keys,
    };
    Ok((new_header, keys))
}

/// A fresh data key wrapped like the current one, with the access section of `plan`: the
/// first grant and every revocation rotate the data key this way.
pub(crate) fn rotate_with_plan(
    header: &ManifestHeader,
    keys: &Keys,
    plan: access::Plan,
) -> Result<(ManifestHeader, Keys)> {
    let wrapper = keys.wrapper.clone().ok_or(Error::PermissionDenied)?;
    fresh_data_key(header, wrapper, header.key_check, Some(plan), keys)
}

/// A new index's header: fresh salt, id and data key, wrapped under `key`.
pub(crate) fn new_header(key: &IndexKey) -> Result<(ManifestHeader, Keys)> {
    let index = IndexParams::generate()?;
    let dek = DataKey::generate()?;
    let wrapper = Arc::new(index.key_wrapper(key));
    let header = ManifestHeader {
        salt: index.salt,
        index_id: index.index_id,
        key_check: index.key_check(key),
        wrapped_key: wrapper.wrap(&dek, &wrap_binding(FORMAT_VERSION, false))?,
        access: None,
    };
    let keys = Keys::derive(index, &dek, 0, FORMAT_VERSION).with_wrapper(wrapper);
    Ok((header, keys))
}

/// A fresh data key wrapped like the current one: the new header and the keys derived from
/// it (AEAD generations start over: they are new keys), in the current format (a rotation
/// rewrites everything, so it also upgrades an index of an older format).
pub(crate) fn rotate_data_key(
    header: &ManifestHeader,
    keys: &Keys,
) -> Result<(ManifestHeader, Keys)> {
    let wrapper = keys
        .wrapper
        .clone()
        .ok_or_else(|| Error::invalid_argument("this handle cannot wrap a new data key"))?;
    let plan = access::Plan::current(header, keys)?;
    fresh_data_key(header, wrapper, header.key_check, plan, keys)
}

/// Re-wraps the data key of the index in `store` from `old` to `new`: one atomic manifest
/// replacement carrying the new key-check value and wrapped key, the body unchanged (its
/// epoch advanced). Returns the new header and keys for an open handle to adopt.
pub(crate) fn rewrap_index_key(
    store: &dyn IndexFiles,
    (old, new): (&IndexKey, &IndexKey),
    name: &str,
    epoch: u64,
    min_generation: u32,
) -> Result<(ManifestHeader, Keys, ManifestBody)> {
    let OpenedManifest {
        version,
        header,
        mut body,
        dek,
    } = open_manifest(store, old, name)?;
    if version != FORMAT_VERSION {
        // Writers upgrade an index when they open it; a manifest of another format here
        // was put in place behind this writer's back.
        return Err(Error::corrupted(
            "manifest format differs from the open handle's",
        ));
    }
    if body.epoch != epoch {
        // The stored manifest is not the one this handle committed last (replaced behind
        // its back): committing its body again under the new key would resurrect it.
        return Err(Error::corrupted(
            "manifest epoch differs from the open handle's",
        ));
    }
    let old_keys = keys_at(&header, old, 0, version)?;
    let wrapper = Arc::new(params(&header).key_wrapper(new));
    let mut new_header = ManifestHeader {
        key_check: params(&header).key_check(new),
        wrapped_key: wrapper.wrap(&dek, &wrap_binding(version, false))?,
        access: None,
        ..header.clone()
    };
    // AEAD keys start past every generation used so far, by this or an open handle.
    let generation = body.key_generation.max(min_generation);
    let mut keys =
        Keys::derive(params(&header), &dek, generation, version).with_wrapper(wrapper.clone());
    if let Some(plan) = access::Plan::current(&header, &old_keys)? {
        // The owner secrets and admin grants carry the key-wrap sub-key: issued again.
        keys = access::install(&mut new_header, keys, &dek, &wrapper, plan, &old_keys)?;
    }
    let new_epoch = epoch.max(body.epoch) + 1;
    commit_manifest_only(&mut body, new_epoch, &new_header);
    body.key_generation = keys.next_generation();
    write_manifest(store, &new_header, &keys, &body)?;
    Ok((new_header, keys, body))
}

/// Encodes, seals and MACs a manifest in the format of `keys` (the index's).
pub(crate) fn encode_manifest(
    header: &ManifestHeader,
    keys: &Keys,
    body: &ManifestBody,
) -> Result<Vec<u8>> {
    let version = keys.format;
    let plain = manifest::encode_body(version, body)?;
    // Padded so that the whole file (header, sealed body, access section, MAC, signature)
    // has a length on the ladder.
    let overhead = manifest::HEADER_LEN
        + aead::OVERHEAD
        + manifest::MAC_LEN
        + manifest::access_overhead(header);
    let sealed = keys.manifest.seal(
        &padding::pad(&plain, overhead),
        &whole(version, RecordKind::Manifest),
    )?;
    let mut file = manifest::encode_unsigned(version, header, &sealed)?;
    let mac = keys.manifest_mac.mac(&[&file]);
    file.extend_from_slice(&mac);
    if header.access.is_some() {
        let signer = keys
            .access
            .as_ref()
            .and_then(|a| a.signer.as_ref())
            .ok_or(Error::PermissionDenied)?;
        let signature = signer.sign(Signed::Manifest, &[&file]);
        file.extend_from_slice(&signature);
    }
    Ok(file)
}

/// Commits a manifest atomically.
/// Writes the first manifest of a new index ([`IndexFiles::write_first`]): `IndexExists`
/// if another creator's landed first.
pub(crate) fn write_first_manifest(
    store: &dyn IndexFiles,
    header: &ManifestHeader,
    keys: &Keys,
    body: &ManifestBody,
) -> Result<()> {
    let file = encode_manifest(header, keys, body)?;
    match store.write_first(MANIFEST_FILE, &file) {
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Err(Error::IndexExists),
        other => Ok(other?),
    }
}

pub(crate) fn write_manifest(
    store: &dyn IndexFiles,
    header: &ManifestHeader,
    keys: &Keys,
    body: &ManifestBody,
) -> Result<()> {
    let file = encode_manifest(header, keys, body)?;
    store.replace(MANIFEST_FILE, &file)?;
    Ok(())
}

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

/// Authenticates a record sealed by [`seal_padded`] and removes its padding; any failure is
/// `Corrupted` naming `what`.
pub(crate) fn open_padded(
    sealer: &Sealer,
    sealed: &[u8],
    binding: &Binding,
    what: &str,
) -> Result<Vec<u8>> {
    let mut plain = sealer
        .open(sealed, binding)
        .map_err(|_| Error::corrupted(what))?;
    let len = padding::unpad(&plain, what)?.len();
    plain.truncate(len);
    Ok(plain)
}

/// The layout of a segment of format `version`, and what its clear header shows of its keys
/// (format 8): its first bytes checked (magic, version, zeros, a length on the ladder).
pub(crate) fn segment_head(blob: &Blob, version: u16) -> Result<(Layout, Option<HeaderKeys>)> {
    let layout = Layout::of(version)?;
    let len = blob.len();
    let head_len = (layout.header_len as u64).min(len);
    let keys = segment::check_head(&blob.read(0, head_len).map_err(read_error)?, len, layout)?;
    Ok((layout, keys))
}

/// The binding of segment `seq`'s footer: in format 8 it also binds the keys the clear
/// header shows (by their digest, in the list field), so that a changed header byte fails
/// the footer as any other changed byte does.
fn footer_binding(version: u16, seq: u64, shows: Option<&HeaderKeys>) -> Binding {
    let shown = shows.map_or([0; 32], |k| {
        let mut bytes = Vec::with_capacity(k.key_check.len() + k.wrapped_key.len());
        bytes.extend_from_slice(&k.key_check);
        bytes.extend_from_slice(&k.wrapped_key);
        crypto::digest(&bytes)
    });
    binding(version, RecordKind::Footer, seq, shown, [0; 32])
}

/// The footer (directory place and commit note) and record directory of segment `seq`: its
/// clear bytes checked (in the format of `keys`), its footer and directory authenticated and
/// decoded. Needs no manifest: this is how an open finds out what a segment no manifest
/// names would have committed.
pub(crate) fn segment_index(
    keys: &Keys,
    blob: &Blob,
    seq: u64,
) -> Result<(Footer, Vec<RecordRef>)> {
    let (footer, records) = segment_index_unsigned(keys, blob, seq)?;
    if let Some(access) = &keys.access {
        verify_segment(access, blob, &footer)?;
    }
    Ok((footer, records))
}

/// As [`segment_index`], without checking the signature (roll-forward tells an unauthentic
/// segment, which a crash may leave, from an authentic one whose signature fails, which is
/// a forgery).
pub(crate) fn segment_index_unsigned(
    keys: &Keys,
    blob: &Blob,
    seq: u64,
) -> Result<(Footer, Vec<RecordRef>)> {
    let (layout, shows) = segment_head(blob, keys.format)?;
    let len = blob.len();
    let footer_len = layout.footer_len() as u64;
    let sealed = blob
        .read(len - footer_len, footer_len)
        .map_err(read_error)?;
    let plain = keys
        .payload
        .open(&sealed, &footer_binding(keys.format, seq, shows.as_ref()))
        .map_err(|_| Error::corrupted("segment footer"))?;
    let footer = Footer::decode(&plain, layout)?;
    let span = segment::directory_span(len, &footer, layout)?;
    let span = blob
        .read(span.start, span.end - span.start)
        .map_err(read_error)?;
    let sealed = segment::directory_in_span(&span, &footer)?;
    let binding = binding(keys.format, RecordKind::Directory, seq, [0; 32], [0; 32]);
    let plain = open_padded(&keys.payload, sealed, &binding, "segment directory")?;
    let records = segment::decode_directory(&plain, footer.directory_offset, layout)?;
    Ok((footer, records))
}

/// Checks the signature of a segment of an index with access control: over its footer's
/// note and the digest of every byte before the footer (so no record can be changed by a
/// holder of the data key alone).
///
/// # Errors
/// [`Error::Corrupted`] if the signature is missing or does not verify.
pub(crate) fn verify_segment(access: &AccessKeys, blob: &Blob, footer: &Footer) -> Result<()> {
    let Some(signature) = &footer.signature else {
        return Err(Error::corrupted("segment signature"));
    };
    let before = blob
        .read(0, blob.len() - Layout::CURRENT.footer_len() as u64)
        .map_err(read_error)?;
    if !access.verifier.verify(
        Signed::Segment,
        &[&footer.signed_bytes(), &before],
        signature,
    ) {
        return Err(Error::corrupted("segment signature"));
    }
    Ok(())
}

/// The record directory of segment `seq` (see [`segment_index`]).
pub(crate) fn segment_records(keys: &Keys, blob: &Blob, seq: u64) -> Result<Vec<RecordRef>> {
    segment_index(keys, blob, seq).map(|(_, records)| records)
}

/// The commit note of an upsert or delete extending `body` at epoch `epoch`: the segment is
/// appended to the live ones.
pub(crate) fn append_note(keys: &Keys, body: &ManifestBody, epoch: u64) -> CommitNote {
    CommitNote {
        epoch,
        replace_all: false,
        list_epoch: 0,
        trained: None,
        key_generation: keys.next_generation(),
        parent: body.history.head(),
        history: false,
        trained_at: 0,
    }
}

/// The commit note of a list split extending `body` at epoch `epoch`: the segment is
/// appended to the live ones and holds the centroids (`n_lists` of them) and, when
/// `codebook`, the codebook from now on.
pub(crate) fn split_note(
    keys: &Keys,
    body: &ManifestBody,
    epoch: u64,
    (n_lists, codebook): (u32, bool),
) -> CommitNote {
    let mut note = append_note(keys, body, epoch);
    note.trained = Some((n_lists, codebook));
    note
}

/// The commit note of a rewrite (training, compaction, rotation) extending `body` at epoch
/// `epoch`: the segment replaces every live one, with `list_epoch` and, when trained, its
/// `(n_lists, codebook)`; `history` says whether it holds a history record (see
/// [`history_to_archive`]). A training sets the note's `trained_at`.
pub(crate) fn replace_note(
    keys: &Keys,
    body: &ManifestBody,
    (epoch, list_epoch): (u64, u64),
    trained: Option<(u32, bool)>,
    history: bool,
) -> CommitNote {
    CommitNote {
        epoch,
        replace_all: true,
        list_epoch,
        trained,
        key_generation: keys.next_generation(),
        parent: body.history.head(),
        history,
        trained_at: 0,
    }
}

/// What a commit wrote, as its id binds it.
#[derive(Clone, Copy)]
pub(crate) enum Wrote {
    /// A segment, pinned by the digest of its sealed footer (which holds the parent's id).
    Segment([u8; 32]),
    /// A manifest only (a re-wrap, a configuration change, a recommit after a failure),
    /// pinned by its clear header's fields.
    Manifest([u8; 32]),
}

/// The id of the commit at `epoch` extending `parent` that wrote `wrote`: SHA3-256 over a
/// versioned label, the parent's id, the epoch and what it wrote, cut to 16 bytes. Two
/// histories that differ anywhere differ in every later id.
pub(crate) fn commit_id(parent: &CommitId, epoch: u64, wrote: Wrote) -> CommitId {
    let (kind, digest) = match wrote {
        Wrote::Segment(d) => (1u8, d),
        Wrote::Manifest(d) => (2u8, d),
    };
    let mut input = Vec::with_capacity(64 + COMMIT_ID_LEN);
    input.extend_from_slice(b"ciphervec commit v8\0");
    input.extend_from_slice(parent);
    input.extend_from_slice(&epoch.to_le_bytes());
    input.push(kind);
    input.extend_from_slice(&digest);
    let full = crypto::digest(&input);
    let mut id = [0u8; COMMIT_ID_LEN];
    id.copy_from_slice(&full[..COMMIT_ID_LEN]);
    id
}

/// Advances `body` to `epoch` by a commit that writes no segment (its new clear header is
/// `header`): the epoch moves and the commit joins the history.
pub(crate) fn commit_manifest_only(body: &mut ManifestBody, epoch: u64, header: &ManifestHeader) {
    let mut fields = Vec::new();
    fields.extend_from_slice(&header.salt);
    fields.extend_from_slice(&header.index_id);
    fields.extend_from_slice(&header.key_check);
    fields.extend_from_slice(&header.wrapped_key);
    if let Some(section) = &header.access {
        // A change of grants is a commit of its own.
        fields.extend_from_slice(&section.encode());
    }
    let id = commit_id(
        &body.history.head(),
        epoch,
        Wrote::Manifest(crypto::digest(&fields)),
    );
    body.epoch = epoch;
    body.history.recent.push((epoch, id));
}

/// The history a rewrite carries into its segment: every commit before it (the archived
/// record of the first live segment, if any, then the recent ones). Empty for an index
/// whose history has not begun (one just upgraded from format 7).
pub(crate) fn history_to_archive(
    keys: &Keys,
    body: &ManifestBody,
    segments: &HashMap<u64, Arc<Blob>>,
) -> Result<Vec<(u64, CommitId)>> {
    let mut entries = match body.history.archived {
        Some(seq) => {
            let blob = segments
                .get(&seq)
                .ok_or_else(|| Error::corrupted("history segment"))?;
            archived_history(keys, body, blob, seq)?
        }
        None => Vec::new(),
    };
    entries.extend_from_slice(&body.history.recent);
    Ok(entries)
}

/// The commits `body`'s history archived in the history record of its first live segment
/// `seq` (in `blob`), checked to precede the recent ones.
fn archived_history(
    keys: &Keys,
    body: &ManifestBody,
    blob: &Blob,
    seq: u64,
) -> Result<Vec<(u64, CommitId)>> {
    let records = segment_records(keys, blob, seq)?;
    let mut found = records.iter().filter(|r| r.kind == RecordKind::History);
    let rec = found
        .next()
        .ok_or_else(|| Error::corrupted("history record missing"))?;
    if found.next().is_some() {
        return Err(Error::corrupted("two history records"));
    }
    let entries = open_history(keys, blob, seq, rec)?;
    let first_recent = body.history.recent.first().map_or(u64::MAX, |(e, _)| *e);
    if entries.last().is_some_and(|(e, _)| *e >= first_recent) {
        return Err(Error::corrupted("history record overlaps the manifest's"));
    }
    Ok(entries)
}

/// What a history says of one epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum HistoryAt {
    /// The id of the commit at that epoch.
    Id(CommitId),
    /// The epoch lies within the history but was never committed (a failed commit's).
    Skipped,
    /// The epoch precedes the history (an index upgraded from format 7 begins its history
    /// at the upgrade).
    Before,
    /// The epoch is newer than the history's head.
    After,
}

/// What the history of `body` (opened with `keys`) says of `epoch`: from the manifest's
/// recent commits, or the archived record of its first live segment, whose bytes
/// `archived_in` gives (a handle's loaded segment, or one read from storage by
/// [`stored_segment`]).
///
/// # Errors
/// [`Error::Corrupted`] if the archived record does not authenticate; `archived_in`'s.
pub(crate) fn history_at(
    keys: &Keys,
    body: &ManifestBody,
    epoch: u64,
    archived_in: impl FnOnce(&SegmentRef) -> Result<Arc<Blob>>,
) -> Result<HistoryAt> {
    if epoch > body.epoch {
        return Ok(HistoryAt::After);
    }
    if let Some(found) = body.history.recent_id(epoch) {
        return Ok(found.map_or(HistoryAt::Skipped, HistoryAt::Id));
    }
    let Some(seq) = body.history.archived else {
        return Ok(HistoryAt::Before);
    };
    let seg = body
        .segments
        .first()
        .filter(|s| s.seq == seq)
        .ok_or_else(|| Error::corrupted("history segment is not the first live one"))?;
    let blob = archived_in(seg)?;
    let entries = archived_history(keys, body, &blob, seq)
        .map_err(|e| in_file(&segment::file_name(seq), e))?;
    Ok(match entries.first() {
        Some((first, _)) if epoch >= *first => entries
            .binary_search_by_key(&epoch, |(e, _)| *e)
            .map_or(HistoryAt::Skipped, |i| HistoryAt::Id(entries[i].1)),
        _ => HistoryAt::Before,
    })
}

/// A live segment of `keys`' format read from `store` and checked against its reference
/// (for [`history_at`] over a stored state).
pub(crate) fn stored_segment(
    store: &dyn IndexFiles,
    keys: &Keys,
    seg: &SegmentRef,
) -> Result<Arc<Blob>> {
    read_segment(store, seg, Layout::of(keys.format)?)
        .map(Arc::new)
        .map_err(|e| in_file(&segment::file_name(seg.seq), e))
}

/// Applies the commit of segment `seq` (`len` bytes with footer digest `digest`) to `body`,
/// as its `note` says: appended to the live segments (with, after a list split, the training
/// state it now holds), or replacing them with its training state and list epoch, at the note's epoch; the commit joins the history. The one place a
/// manifest's segment list changes, for a writer's commit and for a roll-forward at open
/// alike.
pub(crate) fn apply_commit(
    body: &mut ManifestBody,
    (seq, len, digest): (u64, u64, [u8; 32]),
    note: &CommitNote,
) {
    let seg = SegmentRef { seq, len, digest };
    let id = commit_id(&note.parent, note.epoch, Wrote::Segment(digest));
    if note.replace_all {
        body.segments = vec![seg];
        body.trained = note.trained.map(|(n_lists, codebook)| TrainedRef {
            centroids_segment: seq,
            n_lists,
            codebook,
        });
        body.list_epoch = note.list_epoch;
        // The history before this commit is in the segment's history record now.
        body.history.recent.clear();
        body.history.archived = note.history.then_some(seq);
    } else {
        body.segments.push(seg);
        // A split (format 8): the appended segment holds the centroids (and codebook) from
        // now on; the list epoch stays.
        if let Some((n_lists, codebook)) = note.trained {
            body.trained = Some(TrainedRef {
                centroids_segment: seq,
                n_lists,
                codebook,
            });
        }
    }
    if note.trained_at > 0 {
        body.trained_at_items = note.trained_at;
    }
    body.history.recent.push((note.epoch, id));
    body.next_segment = seq + 1;
    body.epoch = note.epoch;
    body.key_generation = body.key_generation.max(note.key_generation);
}

/// Records in `body`'s history the segment numbers a writer found taken (the newest
/// [`manifest::MAX_ABANDONED`] are kept).
pub(crate) fn note_abandoned(body: &mut ManifestBody, taken: &[u64]) {
    let list = &mut body.history.abandoned;
    list.extend(taken.iter().filter(|&&seq| seq < body.next_segment));
    list.sort_unstable();
    list.dedup();
    let excess = list.len().saturating_sub(manifest::MAX_ABANDONED);
    list.drain(..excess);
}

/// Authenticates and decodes one list block of list `list` (list labels of `list_epoch`).
pub(crate) fn open_block(
    keys: &Keys,
    blob: &Blob,
    block: BlockRef,
    list_epoch: u64,
    list: u32,
    dim: usize,
) -> Result<Block> {
    let sealed = record(blob, block.offset, block.len)?;
    let binding = binding(
        keys.format,
        RecordKind::ListBlock,
        block.segment,
        keys.list_label(list_epoch, list),
        [0; 32],
    )
    .at(block.offset);
    let plain = open_padded(&keys.payload, &sealed, &binding, "list block")?;
    segment::decode_block(&plain, dim)
}

/// Authenticates and decodes the vectors of list block `block` (of list `list`, list labels
/// of `list_epoch`), which `decoded` is: `ivf_flat`'s rows, row-major, of `dim` values
/// stored as `coding` says.
pub(crate) fn open_block_vectors(
    keys: &Keys,
    blob: &Blob,
    (block, decoded): (BlockRef, &Block),
    (list_epoch, list): (u64, u32),
    (dim, coding): (usize, VectorCoding),
) -> Result<Vec<f32>> {
    let (offset, len) = decoded
        .vectors_at
        .ok_or_else(|| Error::corrupted("list block layout"))?;
    let sealed = record(blob, offset, len)?;
    let binding = binding(
        keys.format,
        RecordKind::BlockVectors,
        block.segment,
        keys.list_label(list_epoch, list),
        [0; 32],
    )
    .at(offset);
    let corrupted = || Error::corrupted("block vectors");
    let len = aead::plaintext_len(sealed.len()).ok_or_else(corrupted)?;
    if coding != VectorCoding::F32 {
        // Decrypted into bytes (aligned for the half-precision conversion), then widened.
        let mut plain = vec![0u16; len.div_ceil(2)];
        let bytes: &mut [u8] = bytemuck::cast_slice_mut(&mut plain);
        keys.payload
            .open_into_slice(&sealed, &binding, &mut bytes[..len])
            .map_err(|_| corrupted())?;
        let rows = padding::unpad(&bytes[..len], "block vectors")?;
        return coding.decode_rows(rows, decoded.entries.len(), dim);
    }
    // Decrypted straight into the floats' own memory (little-endian `f32`s from offset 0,
    // then the padding): no byte buffer to convert from, one allocation instead of two.
    let mut floats = vec![0f32; len.div_ceil(4)];
    keys.payload
        .open_into_slice(&sealed, &binding, bytemuck::cast_slice_mut(&mut floats))
        .map_err(|_| corrupted())?;
    segment::decode_block_vectors(floats, len, decoded.entries.len(), dim)
}

/// The length of every sealed vector record of dimension `dim` stored as `coding` says.
pub(crate) fn vector_record_len(dim: usize, coding: VectorCoding) -> usize {
    padding::padme(coding.vector_len(dim) + 1 + aead::OVERHEAD)
}

/// Authenticates and decodes the vector record of the item with `token`.
pub(crate) fn open_vector(
    keys: &Keys,
    segments: &HashMap<u64, Arc<Blob>>,
    token: &[u8; 32],
    at: VectorRef,
    (dim, coding): (usize, VectorCoding),
) -> Result<Vec<f32>> {
    let mut out = vec![0.0; dim];
    open_vector_into(
        keys,
        segments,
        (token, at),
        coding,
        &mut out,
        &mut Vec::new(),
    )?;
    Ok(out)
}

/// Authenticates and decodes the vector record at `at` of the item with `token`, stored as
/// `coding` says, into `out` (its length the dimension), with `scratch` as the decryption
/// buffer: the re-rank's hot path, free of allocations.
pub(crate) fn open_vector_into(
    keys: &Keys,
    segments: &HashMap<u64, Arc<Blob>>,
    (token, at): (&[u8; 32], VectorRef),
    coding: VectorCoding,
    out: &mut [f32],
    scratch: &mut Vec<u8>,
) -> Result<()> {
    let (sealed, binding) = item_record(keys, segments, RecordKind::Vector, token, at)?;
    keys.payload
        .open_into(&sealed, &binding, scratch)
        .map_err(|_| Error::corrupted("vector record"))?;
    coding.decode_into(padding::unpad(scratch, "vector record")?, out)
}

/// The sealed bytes of an item's own record (fields or vector) at `at`, and the binding they
/// must authenticate under.
fn item_record<'s>(
    keys: &Keys,
    segments: &'s HashMap<u64, Arc<Blob>>,
    kind: RecordKind,
    token: &[u8; 32],
    at: FieldsRef,
) -> Result<(Cow<'s, [u8]>, Binding)> {
    let blob = segments
        .get(&at.segment)
        .ok_or_else(|| Error::corrupted("record segment"))?;
    let sealed = record(blob, at.offset, at.len.get())?;
    Ok((
        sealed,
        binding(keys.format, kind, at.segment, [0; 32], *token).at(at.offset),
    ))
}

/// Decrypts an item's fields record.
pub(crate) fn open_fields(
    keys: &Keys,
    segments: &HashMap<u64, Arc<Blob>>,
    token: &[u8; 32],
    at: FieldsRef,
) -> Result<Fields> {
    let (sealed, binding) = item_record(keys, segments, RecordKind::Fields, token, at)?;
    let plain = open_padded(&keys.content, &sealed, &binding, "fields record")?;
    segment::decode_fields(&plain)
}

/// A freshly written segment for reads: mapped back in, or as the store keeps it (see
/// [`IndexFiles::written_segment`]).
pub(crate) fn map_segment(store: &dyn IndexFiles, seq: u64, bytes: Vec<u8>) -> Arc<Blob> {
    Arc::new(store.written_segment(&segment::file_name(seq), bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> Keys {
        Keys::derive(
            IndexParams::generate().unwrap(),
            &DataKey::generate().unwrap(),
            0,
            FORMAT_VERSION,
        )
    }

    fn header() -> ManifestHeader {
        new_header(&IndexKey::generate()).unwrap().0
    }

    type Segments = HashMap<u64, Arc<Blob>>;

    /// A segment holding the vectors of two items; returns the mapped segments, the records'
    /// places and the vectors.
    fn two_vectors(keys: &Keys, coding: VectorCoding) -> (Segments, [VectorRef; 2], [Vec<f32>; 2]) {
        let vectors = [vec![1.0, -2.5, 3.0], vec![0.5, 0.25, -8.0]];
        let header = header();
        let mut seg = SegmentBuilder::new(keys, &header, 7).unwrap();
        let a = seg.add_vector(&[1; 32], &vectors[0], coding).unwrap();
        let b = seg.add_vector(&[2; 32], &vectors[1], coding).unwrap();
        let note = CommitNote {
            epoch: 1,
            replace_all: false,
            list_epoch: 0,
            trained: None,
            key_generation: keys.next_generation(),
            parent: [0; COMMIT_ID_LEN],
            history: false,
            trained_at: 0,
        };
        let bytes = seg.finish(&note).unwrap();
        let segments = HashMap::from([(7, Arc::new(Blob::Shared(bytes.into())))]);
        (segments, [a, b], vectors)
    }

    #[test]
    fn vector_records_open_only_for_their_item_and_segment() {
        for coding in [VectorCoding::F32, VectorCoding::F16, VectorCoding::I8] {
            vector_records_of(coding);
        }
    }

    fn vector_records_of(coding: VectorCoding) {
        let keys = keys();
        let (segments, [a, b], mut vectors) = two_vectors(&keys, coding);
        for v in &mut vectors {
            assert!(coding.round(v));
        }
        assert_eq!(a.len.get() as usize, vector_record_len(3, coding));
        assert_eq!(
            open_vector(&keys, &segments, &[1; 32], a, (3, coding)).unwrap(),
            vectors[0]
        );
        assert_eq!(
            open_vector(&keys, &segments, &[2; 32], b, (3, coding)).unwrap(),
            vectors[1]
        );
        let corrupted = |r: Result<Vec<f32>>| matches!(r, Err(Error::Corrupted { .. }));
        // Swapped between items, moved to another segment, wrong dimension, wrong length,
        // out of bounds: all refused.
        assert!(corrupted(open_vector(
            &keys,
            &segments,
            &[2; 32],
            a,
            (3, coding)
        )));
        let moved = HashMap::from([(8, segments[&7].clone())]);
        assert!(corrupted(open_vector(
            &keys,
            &moved,
            &[1; 32],
            VectorRef { segment: 8, ..a },
            (3, coding)
        )));
        assert!(corrupted(open_vector(
            &keys,
            &segments,
            &[1; 32],
            a,
            (4, coding)
        )));
        assert!(corrupted(open_vector(
            &keys,
            &segments,
            &[1; 32],
            VectorRef {
                len: NonZeroU32::new(a.len.get() - 1).unwrap(),
                ..a
            },
            (3, coding)
        )));
        assert!(corrupted(open_vector(
            &keys,
            &segments,
            &[1; 32],
            VectorRef {
                offset: u64::MAX - 3,
                ..a
            },
            (3, coding)
        )));
        // Another index's keys.
        assert!(corrupted(open_vector(
            &self::keys(),
            &segments,
            &[1; 32],
            a,
            (3, coding)
        )));
        // Every flipped byte of the record.
        let bytes = segments[&7].whole().unwrap().into_owned();
        for i in a.offset as usize..(a.offset + u64::from(a.len.get())) as usize {
            let mut damaged = bytes.clone();
            damaged[i] ^= 0x10;
            let damaged = HashMap::from([(7, Arc::new(Blob::Shared(damaged.into())))]);
            assert!(
                corrupted(open_vector(&keys, &damaged, &[1; 32], a, (3, coding))),
                "byte {i}"
            );
        }
    }
}
