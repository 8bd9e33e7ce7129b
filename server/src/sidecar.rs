//! Where the server keeps its own small objects (the KMS envelopes of `envelopes`) in the
//! database location, beside the indexes: a [`ciphervec::Store`] whose object names all start
//! with [`PREFIX`]. Index names cannot start with `.` (the core refuses them), so these
//! names never collide with an index or its `<name>/MANIFEST`, `<name>/seg-*` and
//! `<name>/LOCK` objects; the core's `list_indexes` skips them for the same reason, and its
//! deletes and cleanups only touch objects under an index's own prefix.
//!
//! A local directory gets [`DirSidecar`] (files under `<dir>/.ciphervec-server/`); an object
//! store can be any `Store` on the same location (the same bucket and prefix), so that every
//! replica serving it sees the same objects.

use std::fs;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

use ciphervec::Store;

/// The first component of every object the server keeps in a database location.
pub const PREFIX: &str = ".ciphervec-server/";

/// A [`Store`] over files in a local database directory, for the server's own objects.
/// Writes are atomic (a temporary file renamed over the object) and durable (synced), files
/// are private to the owner (mode 0600).
#[derive(Debug, Clone)]
pub struct DirSidecar {
    root: PathBuf,
}

impl DirSidecar {
    /// The sidecar objects of the database directory `root`.
    pub fn new(root: impl Into<PathBuf>) -> DirSidecar {
        DirSidecar { root: root.into() }
    }

    /// The file of object `name`: only names under [`PREFIX`] made of plain components.
    fn path(&self, name: &str) -> io::Result<PathBuf> {
        let plain = name.starts_with(PREFIX)
            && name
                .split('/')
                .all(|c| !c.is_empty() && c != "." && c != ".." && !c.contains('\\'));
        if !plain {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a server object name",
            ));
        }
        Ok(self.root.join(name))
    }

    fn create_parent(path: &Path) -> io::Result<()> {
        match path.parent() {
            Some(parent) => fs::create_dir_all(parent),
            None => Ok(()),
        }
    }

    fn write_private(path: &Path, data: &[u8], create_new: bool) -> io::Result<()> {
        let mut options = fs::OpenOptions::new();
        options.write(true);
        if create_new {
            options.create_new(true);
        } else {
            options.create(true).truncate(true);
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt as _;
            options.mode(0o600);
        }
        let mut file = options.open(path)?;
        file.write_all(data)?;
        file.sync_all()
    }

    fn sync_parent(path: &Path) -> io::Result<()> {
        #[cfg(unix)]
        if let Some(parent) = path.parent() {
            fs::File::open(parent)?.sync_all()?;
        }
        #[cfg(not(unix))]
        let _ = path;
        Ok(())
    }
}

impl Store for DirSidecar {
    fn get(&self, name: &str) -> io::Result<Vec<u8>> {
        fs::read(self.path(name)?)
    }

    fn put_new(&self, name: &str, data: &[u8]) -> io::Result<()> {
        let path = self.path(name)?;
        DirSidecar::create_parent(&path)?;
        DirSidecar::write_private(&path, data, true)?;
        DirSidecar::sync_parent(&path)
    }

    fn put(&self, name: &str, data: &[u8]) -> io::Result<()> {
        let path = self.path(name)?;
        DirSidecar::create_parent(&path)?;
        let mut temp = path.clone().into_os_string();
        temp.push(format!(".tmp-{:016x}", rand::random::<u64>()));
        let temp = PathBuf::from(temp);
        let written =
            DirSidecar::write_private(&temp, data, true).and_then(|()| fs::rename(&temp, &path));
        if written.is_err() {
            let _ = fs::remove_file(&temp);
        }
        written?;
        DirSidecar::sync_parent(&path)
    }

    fn delete(&self, name: &str) -> io::Result<()> {
        let path = self.path(name)?;
        match fs::remove_file(&path) {
            Ok(()) => DirSidecar::sync_parent(&path),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }

    fn list(&self, prefix: &str) -> io::Result<Vec<String>> {
        // One directory level is enough for the names this server writes.
        let dir_part = prefix.rsplit_once('/').map_or("", |(dir, _)| dir);
        let dir = self.root.join(dir_part);
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let mut names = Vec::new();
        for entry in entries {
            if let Some(file) = entry?.file_name().to_str() {
                let name = if dir_part.is_empty() {
                    file.to_owned()
                } else {
                    format!("{dir_part}/{file}")
                };
                if name.starts_with(prefix) && !file.contains(".tmp-") {
                    names.push(name);
                }
            }
        }
        Ok(names)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_round_trip_and_names_outside_the_prefix_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = DirSidecar::new(dir.path());
        let name = format!("{PREFIX}kms-envelopes/abcd");
        assert_eq!(
            store.get(&name).unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
        store.put_new(&name, b"one").unwrap();
        assert_eq!(
            store.put_new(&name, b"two").unwrap_err().kind(),
            io::ErrorKind::AlreadyExists
        );
        store.put(&name, b"three").unwrap();
        assert_eq!(store.get(&name).unwrap(), b"three");
        assert_eq!(
            store.list(&format!("{PREFIX}kms-envelopes/")).unwrap(),
            std::slice::from_ref(&name)
        );
        store.delete(&name).unwrap();
        store.delete(&name).unwrap();
        assert!(store.get(&name).is_err());
        for bad in [
            "docs/MANIFEST",
            "../x",
            ".ciphervec-server/../docs/MANIFEST",
            "/etc/x",
        ] {
            assert_eq!(
                store.put(bad, b"x").unwrap_err().kind(),
                io::ErrorKind::InvalidInput,
                "{bad}"
            );
        }
        // The core does not take the server's folder for an index.
        let db = ciphervec::Database::open(dir.path()).unwrap();
        store.put(&name, b"x").unwrap();
        assert!(db.list_indexes().unwrap().is_empty());
    }
}
