//! Access scopes: what a user granted access to an index may do, by name and as stored.

use crate::error::{Error, Result};

/// What a user granted access to an index may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Access {
    /// Query, get, list and refresh; every write is [`Error::PermissionDenied`].
    Read,
    /// Also upsert, delete, train and compact: commits signed with the index's signing key.
    ReadWrite,
    /// Also grant, revoke, list users and rotate the data key (an admin holds the owner's
    /// key-wrap sub-key: see `docs/THREAT_MODEL.md`).
    Admin,
}

impl Access {
    /// Every scope, in the order of the names (`read`, `write`, `admin`).
    pub const ALL: [Access; 3] = [Access::Read, Access::ReadWrite, Access::Admin];

    /// The canonical name: `read`, `write` or `admin` (what the CLI's `--access` and
    /// Python's `access=` take, and what [`Display`](std::fmt::Display) writes).
    pub fn name(self) -> &'static str {
        match self {
            Access::Read => "read",
            Access::ReadWrite => "write",
            Access::Admin => "admin",
        }
    }

    /// The scope as stored.
    pub(crate) fn byte(self) -> u8 {
        match self {
            Access::Read => 1,
            Access::ReadWrite => 2,
            Access::Admin => 3,
        }
    }

    /// A stored scope.
    pub(crate) fn from_byte(b: u8) -> Result<Access> {
        match b {
            1 => Ok(Access::Read),
            2 => Ok(Access::ReadWrite),
            3 => Ok(Access::Admin),
            _ => Err(Error::corrupted("grant scope")),
        }
    }
}

impl std::fmt::Display for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Access {
    type Err = Error;

    /// `read`, `write` or `admin`, in any case (`InvalidArgument` listing them otherwise).
    fn from_str(s: &str) -> Result<Access> {
        Error::by_name("an access scope", Access::ALL, Access::name, s)
    }
}
