//! Access control: user grants sealed in the manifest's access section, the commit keys
//! each scope holds, and what each scope may do.
//!
//! The index key's holder (the *owner*) wraps the data key in the manifest header as
//! before. An index with access control also has an Ed25519 signing key and a random
//! roster key, sealed for the owner under its key-wrap sub-key; each user's grant seals what
//! its scope needs under a key its user key derives (read: the data key and the verifying
//! key; write: also the signing seed; admin: also the roster key and the owner's key-wrap
//! sub-key). Every commit (manifest and segment) is signed; every opener verifies it with the
//! verifying key it got from a place only the owner or an admin could have written (its own
//! grant, or the owner secrets), so a reader that holds the data key still cannot make a
//! commit anyone accepts. See `docs/THREAT_MODEL.md` ("Access control") and
//! `docs/FORMAT.md` ("Access section").

use std::sync::Arc;

use zeroize::Zeroizing;

use crate::crypto::aead::Binding;
use crate::crypto::schedule::{AccessKeys, DataKey, IndexParams, KeyWrapper, Keys, UserKeys};
use crate::crypto::sign::{SigningKey, VerifyingKey};
use crate::error::{Error, Result};
use crate::format::access::{
    self, AccessSection, GRANT_PLAIN_LEN, MAX_GRANTS, MAX_USER_LEN, OWNER_PLAIN_LEN, RosterEntry,
    StoredGrant,
};
use crate::format::manifest::ManifestHeader;
use crate::format::{RecordKind, padding};

use super::binding::{binding, params, whole};
use crate::model::access::Access;

/// The scope stored for the owner's own access keys (not a grant).
const OWNER_SCOPE: u8 = 0;

/// What an operation needs of the handle that asks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Need {
    /// A commit of data (upsert, delete, train, compact, full text).
    Write,
    /// Grants, users, data-key rotation.
    Admin,
}

/// The scope of a handle opened with `keys`: `None` for the index key's holder.
pub(crate) fn scope(keys: &Keys) -> Option<Access> {
    keys.user.as_ref()?;
    keys.access
        .as_ref()
        .and_then(|a| Access::from_byte(a.scope).ok())
}

/// Refuses `need` with [`Error::PermissionDenied`] when the handle's grant lacks it (the
/// index key's holder may do everything).
pub(crate) fn require(keys: &Keys, need: Need) -> Result<()> {
    let Some(scope) = scope(keys) else {
        return if keys.user.is_some() {
            Err(Error::PermissionDenied)
        } else {
            Ok(())
        };
    };
    let allowed = match need {
        Need::Write => scope >= Access::ReadWrite,
        Need::Admin => scope == Access::Admin,
    };
    if allowed {
        Ok(())
    } else {
        Err(Error::PermissionDenied)
    }
}

/// The binding of the data key the header wraps: an index with an access section binds it
/// (offset 1), so that the section (and with it the signature every commit must carry)
/// cannot be stripped from a manifest without failing the owner's unwrap.
pub(crate) fn wrap_binding(version: u16, with_access: bool) -> Binding {
    let b = whole(version, RecordKind::WrappedKey);
    if with_access { b.at(1) } else { b }
}

/// The binding of a sealed part of the access section: bound to the verifying key (list
/// field) and, for a grant, its token (item field).
fn part_binding(version: u16, kind: RecordKind, vk: &[u8; 32], token: [u8; 32]) -> Binding {
    binding(version, kind, 0, *vk, token)
}

/// The access keys of the owner (the index key's holder, through its `wrapper`) in
/// `section`.
///
/// # Errors
/// [`Error::Corrupted`] if the owner secrets fail authentication or do not match the
/// verifying key.
pub(crate) fn open_as_owner(
    version: u16,
    section: &AccessSection,
    wrapper: &KeyWrapper,
) -> Result<AccessKeys> {
    let vk = section.verifying_key;
    let plain = wrapper.open(
        &section.owner,
        &part_binding(version, RecordKind::OwnerSecrets, &vk, [0; 32]),
        "access section owner secrets",
    )?;
    if plain.len() != OWNER_PLAIN_LEN {
        return Err(Error::corrupted("access section owner secrets"));
    }
    let signer = signer_of(&plain[..32], &vk)?;
    Ok(AccessKeys {
        scope: OWNER_SCOPE,
        verifier: signer.verifying_key(),
        signer: Some(signer),
        roster_key: Some(Zeroizing::new(array(&plain[32..64]))),
    })
}

/// A signing key from its seed, checked against the stored verifying key.
fn signer_of(seed: &[u8], vk: &[u8; 32]) -> Result<SigningKey> {
    let signer = SigningKey::from_seed(&Zeroizing::new(array(seed)));
    if signer.verifying_key().to_bytes() != *vk {
        return Err(Error::corrupted("signing key of another index"));
    }
    Ok(signer)
}

fn array(bytes: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(&bytes[..32]);
    out
}

/// What a user's grant opens.
pub(crate) struct Granted {
    /// The data key.
    pub dek: DataKey,
    /// The commit keys of the grant's scope.
    pub access: AccessKeys,
    /// The owner's key-wrap sub-key (admin scope).
    pub wrapper: Option<KeyWrapper>,
}

/// Opens the grant `user` (whose key derived `uk`) holds in `header`'s access section.
///
/// # Errors
/// [`Error::WrongKey`] if the index has no grant for that user and key (never granted,
/// revoked, or another key); [`Error::Corrupted`] if the grant fails authentication.
pub(crate) fn open_as_user(
    header: &ManifestHeader,
    version: u16,
    uk: &UserKeys,
) -> Result<Granted> {
    let section = header.access.as_ref().ok_or(Error::WrongKey)?;
    let grant = section.grant(&uk.token).ok_or(Error::WrongKey)?;
    let params = params(header);
    let vk = section.verifying_key;
    let plain = Zeroizing::new(
        params
            .grant_sealer(&uk.grant_key)
            .open(
                &grant.sealed,
                &part_binding(version, RecordKind::Grant, &vk, uk.token),
            )
            .map_err(|_| Error::corrupted("grant"))?,
    );
    if plain.len() != GRANT_PLAIN_LEN || plain[33..65] != vk {
        return Err(Error::corrupted("grant"));
    }
    let scope = Access::from_byte(plain[0])?;
    let dek = DataKey::from_slice(&plain[1..33])?;
    let signer = if scope >= Access::ReadWrite {
        Some(signer_of(&plain[65..97], &vk)?)
    } else {
        None
    };
    let (roster_key, wrapper) = if scope == Access::Admin {
        (
            Some(Zeroizing::new(array(&plain[97..129]))),
            Some(KeyWrapper::from_raw(
                &array(&plain[129..161]),
                header.index_id,
            )),
        )
    } else {
        (None, None)
    };
    Ok(Granted {
        dek,
        access: AccessKeys {
            scope: scope.byte(),
            verifier: VerifyingKey::from_bytes(&vk)?,
            signer,
            roster_key,
        },
        wrapper,
    })
}

/// The working keys of a user opening `header` (format `version`) with its grant, AEAD keys
/// starting at `generation`.
pub(crate) fn user_keys(
    header: &ManifestHeader,
    version: u16,
    uk: &Arc<UserKeys>,
    generation: u32,
) -> Result<Keys> {
    let granted = open_as_user(header, version, uk)?;
    let mut keys = Keys::derive(params(header), &granted.dek, generation, version);
    keys.user = Some(uk.clone());
    keys.access = Some(Arc::new(granted.access));
    keys.wrapper = granted.wrapper.map(Arc::new);
    Ok(keys)
}

/// `keys` (opened by the owner, or an admin, through their wrapper) with the access keys of
/// `header`'s section, if it has one.
pub(crate) fn attach(keys: Keys, header: &ManifestHeader) -> Result<Keys> {
    let mut keys = keys;
    match (&header.access, &keys.user, &keys.wrapper) {
        (None, None, _) => keys.access = None,
        (None, Some(_), _) => return Err(Error::WrongKey),
        (Some(_), Some(uk), _) => {
            let uk = uk.clone();
            let granted = open_as_user(header, keys.format, &uk)?;
            keys.access = Some(Arc::new(granted.access));
            keys.wrapper = granted.wrapper.map(Arc::new);
        }
        (Some(section), None, Some(wrapper)) => {
            keys.access = Some(Arc::new(open_as_owner(keys.format, section, wrapper)?));
        }
        (Some(_), None, None) => return Err(Error::WrongKey),
    }
    Ok(keys)
}

/// What a new access section is issued under.
pub(crate) struct Issue<'a> {
    /// The index's parameters.
    pub params: IndexParams,
    /// The format version.
    pub version: u16,
    /// The data key the grants carry.
    pub dek: &'a DataKey,
    /// The signing key.
    pub signer: &'a SigningKey,
    /// The roster key.
    pub roster_key: &'a [u8; 32],
    /// The owner's key wrapper (its raw key goes into admin grants).
    pub wrapper: &'a KeyWrapper,
}

/// Builds the access section that grants `entries` (sorted and checked here).
pub(crate) fn issue(iss: &Issue<'_>, entries: &[RosterEntry]) -> Result<AccessSection> {
    if entries.len() > MAX_GRANTS {
        return Err(Error::invalid_argument("too many users"));
    }
    let vk = iss.signer.verifying_key().to_bytes();
    let v = iss.version;
    let mut owner = Zeroizing::new(Vec::with_capacity(OWNER_PLAIN_LEN));
    owner.extend_from_slice(&*iss.signer.seed());
    owner.extend_from_slice(iss.roster_key);
    let owner = iss.wrapper.seal(
        &owner,
        &part_binding(v, RecordKind::OwnerSecrets, &vk, [0; 32]),
    )?;
    let roster_plain = Zeroizing::new(access::encode_roster(entries));
    let roster = iss.params.roster_sealer(iss.roster_key).seal(
        &padding::pad(&roster_plain, crate::format::SEALED_OVERHEAD),
        &part_binding(v, RecordKind::Roster, &vk, [0; 32]),
    )?;
    let mut grants = Vec::with_capacity(entries.len());
    for e in entries {
        let scope = Access::from_byte(e.scope)?;
        let mut plain = Zeroizing::new(vec![0u8; GRANT_PLAIN_LEN]);
        plain[0] = e.scope;
        plain[1..33].copy_from_slice(iss.dek.as_bytes());
        plain[33..65].copy_from_slice(&vk);
        if scope >= Access::ReadWrite {
            plain[65..97].copy_from_slice(&*iss.signer.seed());
        }
        if scope == Access::Admin {
            plain[97..129].copy_from_slice(iss.roster_key);
            plain[129..161].copy_from_slice(iss.wrapper.raw());
        }
        let sealed = iss
            .params
            .grant_sealer(&e.grant_key)
            .seal(&plain, &part_binding(v, RecordKind::Grant, &vk, e.token))?;
        grants.push(StoredGrant {
            token: e.token,
            sealed,
        });
    }
    grants.sort_by_key(|g| g.token);
    if grants.windows(2).any(|w| w[0].token == w[1].token) {
        // Two users whose names and keys give one token: not two grants.
        return Err(Error::invalid_argument(
            "two users with the same name and key",
        ));
    }
    Ok(AccessSection {
        verifying_key: vk,
        owner,
        roster,
        grants,
    })
}

/// The users `section` grants, opened with the roster key of `keys`.
///
/// # Errors
/// [`Error::PermissionDenied`] without admin scope; [`Error::Corrupted`] if the roster fails
/// authentication.
pub(crate) fn roster(header: &ManifestHeader, keys: &Keys) -> Result<Vec<RosterEntry>> {
    let Some(section) = &header.access else {
        return Ok(Vec::new());
    };
    let roster_key = keys
        .access
        .as_ref()
        .and_then(|a| a.roster_key.as_ref())
        .ok_or(Error::PermissionDenied)?;
    let vk = section.verifying_key;
    let plain = Zeroizing::new(
        params(header)
            .roster_sealer(roster_key)
            .open(
                &section.roster,
                &part_binding(keys.format, RecordKind::Roster, &vk, [0; 32]),
            )
            .map_err(|_| Error::corrupted("roster"))?,
    );
    let unpadded = padding::unpad(&plain, "roster")?;
    access::decode_roster(unpadded)
}

/// Checks a user name: 1 to 256 bytes of UTF-8 without control characters. The message
/// never repeats the name.
pub(crate) fn check_user(user: &str) -> Result<()> {
    if user.is_empty() || user.len() > MAX_USER_LEN || user.chars().any(char::is_control) {
        return Err(Error::invalid_argument(
            "a user name is 1 to 256 bytes without control characters",
        ));
    }
    Ok(())
}

/// What the next access section grants, and under which commit keys.
pub(crate) struct Plan {
    /// The users.
    pub entries: Vec<RosterEntry>,
    /// The signing key.
    pub signer: SigningKey,
    /// The roster key.
    pub roster_key: Zeroizing<[u8; 32]>,
}

impl Plan {
    /// The access of `header` as it is (same users, signing and roster keys), for a rotation
    /// that keeps it; `None` for an index without access control.
    ///
    /// # Errors
    /// [`Error::PermissionDenied`] without admin scope.
    pub(crate) fn current(header: &ManifestHeader, keys: &Keys) -> Result<Option<Plan>> {
        if header.access.is_none() {
            return Ok(None);
        }
        let access = keys.access.as_ref().ok_or(Error::PermissionDenied)?;
        let (Some(signer), Some(roster_key)) = (&access.signer, &access.roster_key) else {
            return Err(Error::PermissionDenied);
        };
        Ok(Some(Plan {
            entries: roster(header, keys)?,
            signer: SigningKey::from_seed(&signer.seed()),
            roster_key: roster_key.clone(),
        }))
    }

    /// `entries` under fresh signing and roster keys (a first grant, a revocation).
    pub(crate) fn fresh(entries: Vec<RosterEntry>) -> Result<Plan> {
        let mut roster_key = Zeroizing::new([0u8; 32]);
        crate::crypto::random_bytes(&mut *roster_key)?;
        Ok(Plan {
            entries,
            signer: SigningKey::generate()?,
            roster_key,
        })
    }
}

/// Issues `plan` into `header` for data key `dek`: the access section sealed, the data key
/// wrapped again under the binding of an index with access; returns `keys` with the access
/// keys of the opener of `opener` (the owner, or an admin whose own grant is issued again).
pub(crate) fn install(
    header: &mut ManifestHeader,
    keys: Keys,
    dek: &DataKey,
    wrapper: &KeyWrapper,
    plan: Plan,
    opener: &Keys,
) -> Result<Keys> {
    let version = keys.format;
    let section = issue(
        &Issue {
            params: params(header),
            version,
            dek,
            signer: &plan.signer,
            roster_key: &plan.roster_key,
            wrapper,
        },
        &plan.entries,
    )?;
    header.wrapped_key = wrapper.wrap(dek, &wrap_binding(version, true))?;
    header.access = Some(section);
    let mut keys = keys;
    keys.user.clone_from(&opener.user);
    keys.access = Some(Arc::new(AccessKeys {
        scope: opener.access.as_ref().map_or(OWNER_SCOPE, |a| a.scope),
        verifier: plan.signer.verifying_key(),
        signer: Some(plan.signer),
        roster_key: Some(plan.roster_key),
    }));
    Ok(keys)
}

/// The keys a holder of a read grant's secrets could make itself: the grant's data key, and
/// a signing key of its own passed off as write scope (see `internals::forge_upsert_as_reader`).
#[cfg(feature = "internals")]
pub(crate) fn forged_keys(header: &ManifestHeader, keys: &Keys) -> Result<Keys> {
    let uk = keys.user.clone().ok_or(Error::PermissionDenied)?;
    let granted = open_as_user(header, keys.format, &uk)?;
    let mut forged = Keys::derive(
        params(header),
        &granted.dek,
        keys.next_generation(),
        keys.format,
    );
    forged.user = Some(uk);
    forged.access = Some(Arc::new(AccessKeys {
        scope: Access::ReadWrite.byte(),
        verifier: granted.access.verifier,
        signer: Some(SigningKey::generate()?),
        roster_key: None,
    }));
    Ok(forged)
}
