//! Every file-system call the directory store makes that changes files, behind one trait, so
//! that tests can fail any one of them (EIO, ENOSPC) or stop all calls from one on (a crash).

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::Path;
#[cfg(any(test, feature = "internals"))]
use std::sync::Mutex;
#[cfg(any(test, feature = "internals"))]
use std::sync::atomic::{AtomicUsize, Ordering};

/// File-changing calls of the directory store.
pub trait FileSystem: Send + Sync {
    /// Creates a new private file (nothing may be at `path`, not even a symbolic link) and
    /// writes `data`; no sync. Returns the handle, for [`sync_file`](Self::sync_file).
    fn write_file(&self, path: &Path, data: &[u8]) -> io::Result<File>;
    /// Makes the data written through `file` (at `path`) durable (`fsync` of that handle).
    fn sync_file(&self, file: &File, path: &Path) -> io::Result<()>;
    /// Renames a file, replacing the target.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Makes a directory's entries durable (`fsync` of the directory).
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
    /// Removes a file.
    fn remove_file(&self, path: &Path) -> io::Result<()>;
}

/// The real file system.
#[derive(Debug, Default)]
pub struct RealFs;

impl FileSystem for RealFs {
    fn write_file(&self, path: &Path, data: &[u8]) -> io::Result<File> {
        let mut file = super::files::create_new_private(path)?;
        file.write_all(data)?;
        Ok(file)
    }

    fn sync_file(&self, file: &File, _path: &Path) -> io::Result<()> {
        file.sync_all()
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        fs::rename(from, to)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        fs::remove_file(path)
    }
}

#[cfg(any(test, feature = "internals"))]
/// One file-changing call, as recorded by [`FaultyFs`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FsCall {
    /// `write_file` of this path.
    Write(std::path::PathBuf),
    /// `sync_file` of this path.
    SyncFile(std::path::PathBuf),
    /// `rename` from, to.
    Rename(std::path::PathBuf, std::path::PathBuf),
    /// `sync_dir` of this directory.
    SyncDir(std::path::PathBuf),
    /// `remove_file` of this path.
    Remove(std::path::PathBuf),
}

#[cfg(any(test, feature = "internals"))]
/// The real file system with injected faults, for tests: counts calls, and fails the call
/// numbered `fail_at` (0-based) with `error`; in crash mode, that call and every later one
/// fail, as if the process had died there. Records every call that went through.
#[derive(Debug)]
pub struct FaultyFs {
    calls: AtomicUsize,
    fail_at: AtomicUsize,
    error: i32,
    crash: bool,
    log: Mutex<Vec<FsCall>>,
}

#[cfg(any(test, feature = "internals"))]
impl FaultyFs {
    /// Fails call `fail_at` with OS error `errno` (e.g. `libc::EIO` = 5, `ENOSPC` = 28);
    /// with `crash`, every later call fails too. `usize::MAX` never fails.
    pub fn new(fail_at: usize, errno: i32, crash: bool) -> FaultyFs {
        FaultyFs {
            calls: AtomicUsize::new(0),
            fail_at: AtomicUsize::new(fail_at),
            error: errno,
            crash,
            log: Mutex::new(Vec::new()),
        }
    }

    /// Calls made so far (including failed ones).
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    /// Re-arms: fail call number `calls() + after` next.
    pub fn fail_after(&self, after: usize) {
        self.fail_at.store(self.calls() + after, Ordering::SeqCst);
    }

    /// Disarms.
    pub fn never_fail(&self) {
        self.fail_at.store(usize::MAX, Ordering::SeqCst);
    }

    /// The calls that went through, in order.
    pub fn log(&self) -> Vec<FsCall> {
        self.log
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn gate(&self, call: FsCall) -> io::Result<()> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst);
        let at = self.fail_at.load(Ordering::SeqCst);
        if n == at || (self.crash && n > at) {
            return Err(io::Error::from_raw_os_error(self.error));
        }
        self.log
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(call);
        Ok(())
    }
}

#[cfg(any(test, feature = "internals"))]
impl FileSystem for FaultyFs {
    fn write_file(&self, path: &Path, data: &[u8]) -> io::Result<File> {
        self.gate(FsCall::Write(path.to_path_buf()))?;
        RealFs.write_file(path, data)
    }

    fn sync_file(&self, file: &File, path: &Path) -> io::Result<()> {
        self.gate(FsCall::SyncFile(path.to_path_buf()))?;
        RealFs.sync_file(file, path)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.gate(FsCall::Rename(from.to_path_buf(), to.to_path_buf()))?;
        RealFs.rename(from, to)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        self.gate(FsCall::SyncDir(dir.to_path_buf()))?;
        RealFs.sync_dir(dir)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        self.gate(FsCall::Remove(path.to_path_buf()))?;
        RealFs.remove_file(path)
    }
}
