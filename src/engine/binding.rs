//! Where layouts meet ciphertexts: the one function that builds an AEAD binding from a
//! `format` record kind and version, and the bridge from a stored header to the key
//! schedule's parameters.

use crate::crypto::aead::Binding;
use crate::crypto::schedule::{self, IndexParams};
use crate::format::manifest::ManifestHeader;
use crate::format::{self, RecordKind};

// The clear header's field widths (format) are the key schedule's (crypto).
const _: () = {
    assert!(format::SALT_LEN == schedule::SALT_LEN);
    assert!(format::INDEX_ID_LEN == schedule::INDEX_ID_LEN);
    assert!(format::KEY_CHECK_LEN == schedule::KEY_CHECK_LEN);
    assert!(format::WRAPPED_KEY_LEN == schedule::WRAPPED_KEY_LEN);
    assert!(format::SEALED_OVERHEAD == crate::crypto::aead::OVERHEAD);
};

/// The associated data of a record of format `version` and `kind` in `segment` (or manifest
/// epoch), for list label `list` and item token `item` (zeros where the kind has none); a
/// record in a segment also binds its offset there ([`Binding::at`]).
pub(crate) fn binding(
    version: u16,
    kind: RecordKind,
    segment: u64,
    list: [u8; 32],
    item: [u8; 32],
) -> Binding {
    Binding {
        version,
        kind: kind as u8,
        segment,
        offset: 0,
        list,
        item,
    }
}

/// The binding of a record of format `version` and `kind` with no segment, list or item.
pub(crate) fn whole(version: u16, kind: RecordKind) -> Binding {
    binding(version, kind, 0, [0; 32], [0; 32])
}

/// The key schedule's parameters (salt and index id) of a stored header.
pub(crate) fn params(header: &ManifestHeader) -> IndexParams {
    IndexParams {
        salt: header.salt,
        index_id: header.index_id,
    }
}
