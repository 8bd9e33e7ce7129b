//! Opening the files of an index folder, which the storage (or another local user) may have
//! tampered with: no symbolic link is followed, nothing but a regular file is read (a FIFO
//! would block forever), new files are created exclusively and private (0600), new folders
//! private (0700).

use std::fs::{DirBuilder, File, OpenOptions};
use std::io;
use std::path::Path;

/// Opens an existing regular file for reading, without following a symbolic link and
/// without blocking on a FIFO or device.
///
/// # Errors
/// [`io::ErrorKind::InvalidData`] if it is not a regular file; other I/O errors.
pub(crate) fn open_regular(path: &Path) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.read(true);
    no_follow_no_block(&mut options);
    let file = options.open(path)?;
    ensure_regular(&file)?;
    Ok(file)
}

/// Creates a new private file (0600 on Unix) for writing; fails if anything (a file, a
/// symbolic link) is already at `path`.
pub(crate) fn create_new_private(path: &Path) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    private_file(&mut options);
    no_follow_no_block(&mut options);
    options.open(path)
}

/// Opens (creating it private if missing) the lock file for reading and writing, without
/// following a symbolic link or blocking on a FIFO.
pub(crate) fn open_lock_file(path: &Path) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.read(true).write(true).create(true).truncate(false);
    private_file(&mut options);
    no_follow_no_block(&mut options);
    let file = options.open(path)?;
    ensure_regular(&file)?;
    Ok(file)
}

/// Creates a private folder (0700 on Unix) and any missing parents.
pub(crate) fn create_dir_private(path: &Path) -> io::Result<()> {
    let mut builder = DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt as _;
        builder.mode(0o700);
    }
    builder.create(path)
}

/// An error unless `file` (an open handle: no race with the path) is a regular file.
fn ensure_regular(file: &File) -> io::Result<()> {
    if file.metadata()?.is_file() {
        Ok(())
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "not a regular file",
        ))
    }
}

fn no_follow_no_block(options: &mut OpenOptions) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK);
    }
    #[cfg(not(unix))]
    let _ = options;
}

fn private_file(options: &mut OpenOptions) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    #[cfg(not(unix))]
    let _ = options;
}
