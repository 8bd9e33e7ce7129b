//! The access section of a format-8 manifest (present when header flag 1 is set): who may
//! open the index besides the index key's holder, and the key commits are verified with.
//!
//! ```text
//! verifying key [32]                 Ed25519; every commit is signed by its signing key
//! owner length u32 | owner [..]      sealed under the index key's key-wrap key (kind 15):
//!                                    signing seed [32] | roster key [32]
//! roster length u32 | roster [..]    sealed under the roster key (kind 14), padded: the user
//!                                    names, scopes and grant keys, for holders of admin scope
//! count u32, then per grant          sorted by token, no two alike:
//!   token [32]                       HMAC of the user name under a key the user key derives
//!   grant [GRANT_SEALED_LEN]         sealed under the user key's grant key (kind 13), a
//!                                    fixed length whatever the scope
//! ```
//! No user name is stored in clear: a grant is found by its keyed token, which only a
//! holder of that user's key (or of the roster) can compute.

use super::SEALED_OVERHEAD;
use super::reader::Reader;
use crate::error::{Error, Result};

/// Length of a verifying key.
pub(crate) const VERIFYING_KEY_LEN: usize = 32;
/// Length of a grant token.
pub(crate) const TOKEN_LEN: usize = 32;
/// Length of a grant's plaintext: scope u8 | data key [32] | verifying key [32] | signing
/// seed [32] (zeros for read scope) | roster key [32] and key-wrap key [32] (zeros unless
/// admin scope).
pub(crate) const GRANT_PLAIN_LEN: usize = 1 + 5 * 32;
/// Length of a sealed grant.
pub(crate) const GRANT_SEALED_LEN: usize = GRANT_PLAIN_LEN + SEALED_OVERHEAD;
/// Length of the owner's secrets: signing seed [32] | roster key [32].
pub(crate) const OWNER_PLAIN_LEN: usize = 64;
/// The most grants an index holds (a manifest stays small).
pub(crate) const MAX_GRANTS: usize = 4096;

/// One user's grant as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct StoredGrant {
    /// The keyed token naming the grant.
    pub token: [u8; TOKEN_LEN],
    /// The sealed grant.
    pub sealed: Vec<u8>,
}

/// The access section, its secrets sealed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct AccessSection {
    /// The verifying key of every commit.
    pub verifying_key: [u8; VERIFYING_KEY_LEN],
    /// The owner's secrets, sealed.
    pub owner: Vec<u8>,
    /// The roster, sealed.
    pub roster: Vec<u8>,
    /// The grants, by token.
    pub grants: Vec<StoredGrant>,
}

impl AccessSection {
    /// The grant named by `token`, if any.
    pub(crate) fn grant(&self, token: &[u8; TOKEN_LEN]) -> Option<&StoredGrant> {
        self.grants
            .binary_search_by(|g| g.token.cmp(token))
            .ok()
            .map(|i| &self.grants[i])
    }

    /// Encodes the section.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(
            VERIFYING_KEY_LEN
                + 12
                + self.owner.len()
                + self.roster.len()
                + self.grants.len() * (TOKEN_LEN + GRANT_SEALED_LEN),
        );
        out.extend_from_slice(&self.verifying_key);
        for part in [&self.owner, &self.roster] {
            out.extend_from_slice(&(part.len() as u32).to_le_bytes());
            out.extend_from_slice(part);
        }
        out.extend_from_slice(&(self.grants.len() as u32).to_le_bytes());
        for g in &self.grants {
            out.extend_from_slice(&g.token);
            out.extend_from_slice(&g.sealed);
        }
        out
    }

    /// Decodes a section (checked: lengths, order, no duplicate token).
    pub(crate) fn decode(bytes: &[u8]) -> Result<AccessSection> {
        let mut r = Reader::new(bytes, "manifest access section");
        let verifying_key = r.array()?;
        let owner_len = r.u32()? as usize;
        if owner_len != OWNER_PLAIN_LEN + SEALED_OVERHEAD {
            return Err(r.corrupted());
        }
        let owner = r.bytes(owner_len)?.to_vec();
        let roster_len = r.u32()? as usize;
        let roster = r.bytes(roster_len)?.to_vec();
        let count = r.u32()? as usize;
        if count > MAX_GRANTS || count * (TOKEN_LEN + GRANT_SEALED_LEN) != r.remaining() {
            return Err(r.corrupted());
        }
        let mut grants: Vec<StoredGrant> = Vec::with_capacity(count);
        for _ in 0..count {
            let token = r.array()?;
            if grants.last().is_some_and(|g| g.token >= token) {
                return Err(Error::corrupted("manifest access section"));
            }
            let sealed = r.bytes(GRANT_SEALED_LEN)?.to_vec();
            grants.push(StoredGrant { token, sealed });
        }
        r.finish()?;
        Ok(AccessSection {
            verifying_key,
            owner,
            roster,
            grants,
        })
    }
}

/// One user as the roster names it (inside the sealed roster only).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RosterEntry {
    /// The user name.
    pub name: String,
    /// The scope, as stored (1 read, 2 read-write, 3 admin).
    pub scope: u8,
    /// The token naming the user's grant.
    pub token: [u8; TOKEN_LEN],
    /// The key the user's grant is sealed under (derived from the user key).
    pub grant_key: [u8; 32],
}

/// The longest user name, in bytes.
pub(crate) const MAX_USER_LEN: usize = 256;

/// Encodes a roster: `count u32`, then per user `name length u16 | name | scope u8 |
/// token [32] | grant key [32]`.
pub(crate) fn encode_roster(entries: &[RosterEntry]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&(entries.len() as u32).to_le_bytes());
    for e in entries {
        out.extend_from_slice(&(e.name.len() as u16).to_le_bytes());
        out.extend_from_slice(e.name.as_bytes());
        out.push(e.scope);
        out.extend_from_slice(&e.token);
        out.extend_from_slice(&e.grant_key);
    }
    out
}

/// Decodes a roster.
pub(crate) fn decode_roster(plain: &[u8]) -> Result<Vec<RosterEntry>> {
    let mut r = Reader::new(plain, "roster");
    let count = r.u32()? as usize;
    if count > MAX_GRANTS {
        return Err(r.corrupted());
    }
    let mut out = Vec::with_capacity(count);
    for _ in 0..count {
        let len = r.u16()? as usize;
        if len > MAX_USER_LEN {
            return Err(r.corrupted());
        }
        let name = std::str::from_utf8(r.bytes(len)?)
            .map_err(|_| Error::corrupted("roster"))?
            .to_owned();
        out.push(RosterEntry {
            name,
            scope: r.u8()?,
            token: r.array()?,
            grant_key: r.array()?,
        });
    }
    r.finish()?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_hostile_bytes() {
        let s = AccessSection {
            verifying_key: [1; 32],
            owner: vec![2; OWNER_PLAIN_LEN + SEALED_OVERHEAD],
            roster: vec![3; 100],
            grants: vec![
                StoredGrant {
                    token: [4; 32],
                    sealed: vec![5; GRANT_SEALED_LEN],
                },
                StoredGrant {
                    token: [6; 32],
                    sealed: vec![7; GRANT_SEALED_LEN],
                },
            ],
        };
        let bytes = s.encode();
        assert_eq!(AccessSection::decode(&bytes).unwrap(), s);
        assert!(s.grant(&[6; 32]).is_some() && s.grant(&[5; 32]).is_none());
        for cut in 0..bytes.len() {
            assert!(AccessSection::decode(&bytes[..cut]).is_err());
        }
        let roster = vec![RosterEntry {
            name: "ana".into(),
            scope: 2,
            token: [8; 32],
            grant_key: [9; 32],
        }];
        let plain = encode_roster(&roster);
        assert_eq!(decode_roster(&plain).unwrap(), roster);
        for cut in 0..plain.len() {
            assert!(decode_roster(&plain[..cut]).is_err());
        }
        let mut swapped = s.clone();
        swapped.grants.swap(0, 1);
        assert!(AccessSection::decode(&swapped.encode()).is_err());
    }
}
