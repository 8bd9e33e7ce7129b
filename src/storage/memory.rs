//! The memory backend: nothing touches disk.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::sync::{Arc, Mutex};

use super::{Backend, Blob, IndexFiles, WriterLock};

type Files = Arc<Mutex<BTreeMap<String, Arc<[u8]>>>>;

/// Stores held in process memory.
#[derive(Default)]
pub(crate) struct MemoryBackend {
    stores: Mutex<HashMap<String, Files>>,
}

struct MemoryStore {
    files: Files,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Backend for MemoryBackend {
    fn list(&self) -> io::Result<Vec<String>> {
        let mut names: Vec<String> = lock(&self.stores).keys().cloned().collect();
        names.sort();
        Ok(names)
    }

    fn open(&self, name: &str, create: bool) -> io::Result<Option<Arc<dyn IndexFiles>>> {
        let mut stores = lock(&self.stores);
        let files = match stores.get(name) {
            Some(f) => f.clone(),
            None if create => stores.entry(name.to_owned()).or_default().clone(),
            None => return Ok(None),
        };
        Ok(Some(Arc::new(MemoryStore { files })))
    }

    fn remove(&self, name: &str) -> io::Result<()> {
        lock(&self.stores).remove(name);
        Ok(())
    }
}

impl IndexFiles for MemoryStore {
    fn read(&self, file: &str) -> io::Result<Blob> {
        lock(&self.files)
            .get(file)
            .map(|b| Blob::Shared(b.clone()))
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))
    }

    fn write_new(&self, file: &str, data: &[u8]) -> io::Result<()> {
        let mut files = lock(&self.files);
        if files.contains_key(file) {
            return Err(io::Error::from(io::ErrorKind::AlreadyExists));
        }
        files.insert(file.to_owned(), data.into());
        Ok(())
    }

    fn replace(&self, file: &str, data: &[u8]) -> io::Result<()> {
        lock(&self.files).insert(file.to_owned(), data.into());
        Ok(())
    }

    fn remove(&self, file: &str) -> io::Result<()> {
        lock(&self.files).remove(file);
        Ok(())
    }

    fn list(&self) -> io::Result<Vec<String>> {
        Ok(lock(&self.files).keys().cloned().collect())
    }

    fn file_len(&self, file: &str) -> io::Result<u64> {
        lock(&self.files)
            .get(file)
            .map(|b| b.len() as u64)
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))
    }

    fn try_lock(&self) -> io::Result<Option<WriterLock>> {
        // One process, and the database hands out one shared handle per index.
        Ok(Some(Box::new(())))
    }
}
