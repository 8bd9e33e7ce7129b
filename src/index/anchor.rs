//! Anchors: what an application keeps outside the storage to detect a rollback that the
//! segments on storage cannot prove (a `MANIFEST` put back from before an index-key rotation,
//! a whole folder restored from a backup).

use std::fmt;
use std::str::FromStr;

use crate::error::{Error, Result};
use crate::format::INDEX_ID_LEN;

/// The identity and commit epoch of an index, as a handle saw it: no secret, safe to keep in
/// a configuration file, a database row or a KMS encryption context.
///
/// Take one with [`EncryptedIndex::anchor`](crate::EncryptedIndex::anchor) after a commit
/// and check it with [`EncryptedIndex::check_anchor`](crate::EncryptedIndex::check_anchor)
/// after opening. Its text form is `cvanchor1-<32 hex digits of the index id>-<epoch>`.
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
}

const PREFIX: &str = "cvanchor1-";

impl Anchor {
    pub(crate) fn new(index_id: [u8; INDEX_ID_LEN], epoch: u64) -> Anchor {
        Anchor { index_id, epoch }
    }

    /// The commit epoch: it grows by one at every commit.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Checks an index of id `index_id` at commit `epoch` against this anchor.
    pub(crate) fn check(&self, index_id: &[u8; INDEX_ID_LEN], epoch: u64) -> Result<()> {
        if &self.index_id != index_id {
            return Err(Error::corrupted("the anchor belongs to another index"));
        }
        if epoch < self.epoch {
            return Err(Error::RolledBack);
        }
        Ok(())
    }
}

impl fmt::Display for Anchor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(PREFIX)?;
        for b in &self.index_id {
            write!(f, "{b:02x}")?;
        }
        write!(f, "-{}", self.epoch)
    }
}

impl FromStr for Anchor {
    type Err = Error;

    /// Parses the text form; anything else is [`Error::InvalidArgument`].
    fn from_str(s: &str) -> Result<Anchor> {
        let bad = || Error::invalid_argument("not an anchor (cvanchor1-<32 hex>-<epoch>)");
        let rest = s.trim().strip_prefix(PREFIX).ok_or_else(bad)?;
        let (hex, epoch) = rest.split_once('-').ok_or_else(bad)?;
        if hex.len() != 2 * INDEX_ID_LEN || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad());
        }
        let mut index_id = [0u8; INDEX_ID_LEN];
        for (i, out) in index_id.iter_mut().enumerate() {
            *out = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
        }
        if epoch.is_empty() || !epoch.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let epoch = epoch.parse().map_err(|_| bad())?;
        Ok(Anchor { index_id, epoch })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_round_trip_and_bad_text() {
        let a = Anchor::new([0xAB; INDEX_ID_LEN], 42);
        let text = a.to_string();
        assert_eq!(text, format!("cvanchor1-{}-42", "ab".repeat(16)));
        assert_eq!(text.parse::<Anchor>().unwrap(), a);
        assert_eq!(
            text.to_uppercase()
                .replace("CVANCHOR1", "cvanchor1")
                .parse::<Anchor>()
                .unwrap(),
            a
        );
        for bad in [
            "",
            "cvanchor1-",
            &text[..text.len() - 3],
            &text.replace("-42", "-"),
            &text.replace("-42", "--42"),
            &text.replace("-42", "-x"),
            &text.replace("cvanchor1", "cvanchor2"),
            &format!("{text}0000000000000000000000"),
        ] {
            assert!(
                matches!(bad.parse::<Anchor>(), Err(Error::InvalidArgument { .. })),
                "{bad}"
            );
        }
        assert!(a.check(&[0xAB; INDEX_ID_LEN], 42).is_ok());
        assert!(a.check(&[0xAB; INDEX_ID_LEN], 43).is_ok());
        assert!(matches!(
            a.check(&[0xAB; INDEX_ID_LEN], 41),
            Err(Error::RolledBack)
        ));
        assert!(matches!(
            a.check(&[0xAC; INDEX_ID_LEN], 50),
            Err(Error::Corrupted { .. })
        ));
    }
}
