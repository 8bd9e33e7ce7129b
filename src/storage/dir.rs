//! The directory backend: one subdirectory per index, files read through read-only maps.
#![allow(unsafe_code)]

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::files;
use super::fs::{FileSystem, RealFs};
use super::{Backend, Blob, IndexFiles, WriterLock};

/// File name of the writer lock.
const LOCK_FILE: &str = "LOCK";
/// Suffix of temporary files (ignored and cleaned up).
pub(crate) const TEMP_SUFFIX: &str = ".tmp";

/// Indexes as subdirectories of one directory.
pub(crate) struct DirBackend {
    root: PathBuf,
    fs: Arc<dyn FileSystem>,
}

impl DirBackend {
    /// A backend at `root`, created if missing.
    pub(crate) fn open(root: &Path) -> io::Result<DirBackend> {
        DirBackend::with_fs(root, Arc::new(RealFs))
    }

    /// A backend whose file-changing calls go through `fs` (tests inject faults there).
    pub(crate) fn with_fs(root: &Path, fs: Arc<dyn FileSystem>) -> io::Result<DirBackend> {
        files::create_dir_private(root).map_err(|e| {
            // `mkdir -p` over a file says "File exists", which reads as if the database did.
            if e.kind() == io::ErrorKind::AlreadyExists && !root.is_dir() {
                io::Error::new(
                    io::ErrorKind::NotADirectory,
                    "the database location is a file, not a directory",
                )
            } else {
                e
            }
        })?;
        Ok(DirBackend {
            root: root.to_path_buf(),
            fs,
        })
    }
}

struct DirStore {
    dir: PathBuf,
    fs: Arc<dyn FileSystem>,
}

impl Backend for DirBackend {
    fn list(&self) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in fs::read_dir(&self.root)? {
            let entry = entry?;
            if entry.file_type()?.is_dir()
                && let Some(name) = entry.file_name().to_str()
            {
                names.push(name.to_owned());
            }
        }
        names.sort();
        Ok(names)
    }

    fn open(&self, name: &str, create: bool) -> io::Result<Option<Arc<dyn IndexFiles>>> {
        let dir = self.root.join(name);
        if !dir.is_dir() {
            if !create {
                return Ok(None);
            }
            files::create_dir_private(&dir)?;
            self.fs.sync_dir(&self.root)?;
        }
        Ok(Some(Arc::new(DirStore {
            dir,
            fs: self.fs.clone(),
        })))
    }

    fn remove(&self, name: &str) -> io::Result<()> {
        match fs::remove_dir_all(self.root.join(name)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        self.fs.sync_dir(&self.root)
    }
}

impl IndexFiles for DirStore {
    fn read(&self, file: &str) -> io::Result<Blob> {
        let f = files::open_regular(&self.dir.join(file))?;
        if f.metadata()?.len() == 0 {
            return Ok(Blob::Shared(Arc::from(&[][..])));
        }
        // SAFETY: the map is read-only, and ciphervec never modifies a file after it is
        // written (segments are immutable; the manifest is replaced by rename, which leaves
        // this mapping on the old inode). Another process truncating the file could still
        // fault the mapping, which is why every record is copied out of the map before it is
        // authenticated and decoded.
        let map = unsafe { memmap2::Mmap::map(&f)? };
        Ok(Blob::Mapped(map))
    }

    fn write_new(&self, file: &str, data: &[u8]) -> io::Result<()> {
        let path = self.dir.join(file);
        let written = self.fs.write_file(&path, data)?;
        self.fs.sync_file(&written, &path)?;
        self.fs.sync_dir(&self.dir)
    }

    fn replace(&self, file: &str, data: &[u8]) -> io::Result<()> {
        let tmp = self.dir.join(format!("{file}{TEMP_SUFFIX}"));
        // A temporary file left by a crash, or anything planted there (a symbolic link
        // whose target must not be written): removed, never opened.
        if fs::symlink_metadata(&tmp).is_ok() {
            self.remove(&format!("{file}{TEMP_SUFFIX}"))?;
        }
        let written = self.fs.write_file(&tmp, data)?;
        self.fs.sync_file(&written, &tmp)?;
        self.fs.rename(&tmp, &self.dir.join(file))?;
        self.fs.sync_dir(&self.dir)
    }

    fn remove(&self, file: &str) -> io::Result<()> {
        match self.fs.remove_file(&self.dir.join(file)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    fn list(&self) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in fs::read_dir(&self.dir)? {
            if let Some(name) = entry?.file_name().to_str() {
                names.push(name.to_owned());
            }
        }
        names.sort();
        Ok(names)
    }

    fn file_len(&self, file: &str) -> io::Result<u64> {
        // The entry itself: a planted link is not followed.
        Ok(fs::symlink_metadata(self.dir.join(file))?.len())
    }

    fn try_lock(&self) -> io::Result<Option<WriterLock>> {
        let f = files::open_lock_file(&self.dir.join(LOCK_FILE))?;
        match f.try_lock() {
            Ok(()) => Ok(Some(Box::new(f))),
            Err(fs::TryLockError::WouldBlock) => Ok(None),
            Err(fs::TryLockError::Error(e)) => Err(e),
        }
    }
}
