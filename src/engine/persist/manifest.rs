//! The manifest: opening and authenticating it (with the index key or a user's grant),
//! deriving the working keys it wraps, key rotations, and sealing and writing it.

use std::sync::Arc;

use crate::crypto::aead;
use crate::crypto::key::IndexKey;
use crate::crypto::schedule::{DataKey, IndexParams, KEY_CHECK_LEN, KeyWrapper, Keys};
use crate::crypto::sign::Signed;
use crate::engine::access::{self, wrap_binding};
use crate::engine::binding::{params, whole};
use crate::error::{Error, Result};
use crate::format::manifest::{self, MANIFEST_FILE, ManifestBody, ManifestHeader};
use crate::format::{FORMAT_VERSION, RecordKind, padding};
use crate::storage::IndexFiles;

use super::commit::commit_manifest_only;
use super::segments::open_padded;
use super::{in_file, read_error};

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
