//! Anchors: what an application keeps outside the storage to detect a rollback that the
//! segments on storage cannot prove (a `MANIFEST` put back from before an index-key rotation,
//! a whole folder restored from a backup, a history forked from an older state).

use std::fmt;
use std::str::FromStr;

use crate::error::{Error, Result};
use crate::format::{COMMIT_ID_LEN, CommitId, INDEX_ID_LEN};

/// The identity of an index and one commit of it, as a handle saw it: no secret, safe to
/// keep in a configuration file, a database row or a KMS encryption context.
///
/// Take one with [`EncryptedIndex::anchor`](crate::EncryptedIndex::anchor) after a commit
/// and check it with [`EncryptedIndex::check_anchor`](crate::EncryptedIndex::check_anchor)
/// after opening: the stored index must hold that commit in its history (so it is neither
/// older nor a fork of it, at any later epoch). Its text form is
/// `cvanchor2-<32 hex digits of the index id>-<epoch>-<32 hex digits of the commit id>`;
/// anchors of format 7 (`cvanchor1-<index id>-<epoch>`, no commit id) still parse and are
/// checked by epoch alone.
///
/// ```
/// # use ciphervec::{Anchor, Database, IndexConfig, IndexKey, Item};
/// # let db = Database::in_memory();
/// # let index = db.create_index("a", &IndexKey::generate(), IndexConfig::ivf_flat(2)).unwrap();
/// index.upsert([Item::new("x", vec![1.0, 0.0])]).unwrap();
/// let text = index.anchor().to_string();                 // keep it somewhere else
/// let anchor: Anchor = text.parse().unwrap();
/// index.check_anchor(&anchor).unwrap();                  // RolledBack if the index is older
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Anchor {
    index_id: [u8; INDEX_ID_LEN],
    epoch: u64,
    /// The commit's id; `None` for an anchor of a state without a history (format 7).
    commit: Option<CommitId>,
}

const PREFIX_V1: &str = "cvanchor1-";
const PREFIX_V2: &str = "cvanchor2-";

impl Anchor {
    /// The anchor of commit `commit` (zeros: a state with no history) at `epoch`.
    pub(crate) fn new(index_id: [u8; INDEX_ID_LEN], epoch: u64, commit: CommitId) -> Anchor {
        Anchor {
            index_id,
            epoch,
            commit: (commit != [0; COMMIT_ID_LEN]).then_some(commit),
        }
    }

    /// The commit epoch: it grows at every commit.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The index id the anchor belongs to.
    pub(crate) fn index_id(&self) -> &[u8; INDEX_ID_LEN] {
        &self.index_id
    }

    /// The commit id, if the anchor names one.
    pub(crate) fn commit(&self) -> Option<CommitId> {
        self.commit
    }
}

impl fmt::Display for Anchor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hex = |f: &mut fmt::Formatter<'_>, bytes: &[u8]| {
            bytes.iter().try_for_each(|b| write!(f, "{b:02x}"))
        };
        match &self.commit {
            Some(commit) => {
                f.write_str(PREFIX_V2)?;
                hex(f, &self.index_id)?;
                write!(f, "-{}-", self.epoch)?;
                hex(f, commit)
            }
            None => {
                f.write_str(PREFIX_V1)?;
                hex(f, &self.index_id)?;
                write!(f, "-{}", self.epoch)
            }
        }
    }
}

/// The bytes of `N` pairs of hex digits.
fn from_hex<const N: usize>(hex: &str) -> Option<[u8; N]> {
    if hex.len() != 2 * N || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let mut out = [0u8; N];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

impl FromStr for Anchor {
    type Err = Error;

    /// Parses the text form (either version); anything else is [`Error::InvalidArgument`].
    fn from_str(s: &str) -> Result<Anchor> {
        let bad = || {
            Error::invalid_argument(
                "not an anchor (cvanchor2-<32 hex>-<epoch>-<32 hex> or cvanchor1-<32 hex>-<epoch>)",
            )
        };
        let s = s.trim();
        let (rest, with_commit) = match (s.strip_prefix(PREFIX_V2), s.strip_prefix(PREFIX_V1)) {
            (Some(rest), _) => (rest, true),
            (_, Some(rest)) => (rest, false),
            _ => return Err(bad()),
        };
        let mut parts = rest.split('-');
        let index_id = parts.next().and_then(from_hex).ok_or_else(bad)?;
        let epoch = parts.next().ok_or_else(bad)?;
        if epoch.is_empty() || !epoch.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let epoch = epoch.parse().map_err(|_| bad())?;
        let commit = if with_commit {
            let commit: CommitId = parts.next().and_then(from_hex).ok_or_else(bad)?;
            if commit == [0; COMMIT_ID_LEN] {
                return Err(bad());
            }
            Some(commit)
        } else {
            None
        };
        if parts.next().is_some() {
            return Err(bad());
        }
        Ok(Anchor {
            index_id,
            epoch,
            commit,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_round_trip_and_bad_text() {
        let a = Anchor::new([0xAB; INDEX_ID_LEN], 42, [0xCD; COMMIT_ID_LEN]);
        let text = a.to_string();
        assert_eq!(
            text,
            format!("cvanchor2-{}-42-{}", "ab".repeat(16), "cd".repeat(16))
        );
        assert_eq!(text.parse::<Anchor>().unwrap(), a);
        assert_eq!(
            text.to_uppercase()
                .replace("CVANCHOR2", "cvanchor2")
                .parse::<Anchor>()
                .unwrap(),
            a
        );
        // A state with no history (format 7) gives, and reads, the old form.
        let old = Anchor::new([0xAB; INDEX_ID_LEN], 42, [0; COMMIT_ID_LEN]);
        assert_eq!(old.to_string(), format!("cvanchor1-{}-42", "ab".repeat(16)));
        assert_eq!(old.to_string().parse::<Anchor>().unwrap(), old);
        assert_eq!(old.commit(), None);
        for bad in [
            "",
            "cvanchor2-",
            &text[..text.len() - 3],
            &text.replace("-42-", "--"),
            &text.replace("-42-", "--42-"),
            &text.replace("-42-", "-x-"),
            &text.replace("cvanchor2", "cvanchor3"),
            &format!("{text}00"),
            &format!("{text}-1"),
            &format!("cvanchor2-{}-42-{}", "ab".repeat(16), "00".repeat(16)),
            &format!("cvanchor1-{}-42-{}", "ab".repeat(16), "cd".repeat(16)),
        ] {
            assert!(
                matches!(bad.parse::<Anchor>(), Err(Error::InvalidArgument { .. })),
                "{bad}"
            );
        }
    }
}
