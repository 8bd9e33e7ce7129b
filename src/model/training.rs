//! What self-maintenance reports to callers (`EncryptedIndex::training_status`).

/// What self-maintenance reports: whether a training runs in the background, and the size
/// the index was last trained at. See [`EncryptedIndex::training_status`](crate::EncryptedIndex::training_status).
///
/// ```
/// use ciphervec::{Database, IndexConfig, IndexKey, Item};
/// let index = Database::in_memory()
///     .create_index("docs", &IndexKey::generate(), IndexConfig::ivf_flat(2))?;
/// index.upsert((0..50).map(|i| Item::new(i.to_string(), vec![i as f32, 1.0])))?;
/// let status = index.training_status();
/// assert!(!status.training && status.trained_at_items.is_none());
/// assert_eq!(status.next_training_at_items, Some(10_000));
/// index.train()?;
/// assert_eq!(index.training_status().trained_at_items, Some(50));
/// # Ok::<(), ciphervec::Error>(())
/// ```
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrainingStatus {
    /// A training runs in the background now (writes and queries go on meanwhile).
    pub training: bool,
    /// The item count the index was last trained at (by `train` or in the background);
    /// `None` while it has never been trained (queries are then exact).
    pub trained_at_items: Option<usize>,
    /// Whether the index maintains itself ([`IndexConfig::auto_train`](crate::IndexConfig::auto_train)).
    pub auto_train: bool,
    /// Live items now.
    pub items: usize,
    /// Lists now (0 before training).
    pub n_lists: usize,
    /// The item count at which the next automatic training (or retraining) starts; `None`
    /// when maintenance is off.
    pub next_training_at_items: Option<usize>,
    /// Background trainings this handle installed since it was opened.
    pub background_trainings: u64,
    /// Lists this handle split since it was opened.
    pub list_splits: u64,
    /// Why the last background training or split step failed, if it did (a write retries it
    /// later; the index stays as it was). Never holds plaintext or key bytes.
    pub last_error: Option<String>,
}
