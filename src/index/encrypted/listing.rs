//! Listings by metadata and text alone ([`EncryptedIndex::query_metadata`]): a filter
//! answered through the in-memory metadata indexes, BM25 over the text fields, ordering by a
//! metadata field.

use std::cmp::Ordering;

use serde_json::Value;

use crate::error::{Error, Result};
use crate::filter::{self, Filter};

use super::text_search::{text_ranking, text_sources};
use super::*;
use crate::engine::candidates;
use crate::model::schema::MetadataSchema;
use crate::model::types::{JsonArg, MetadataHit, MetadataQuery, Order};
use crate::model::validate;

/// Largest share of the items a filter's index candidates may hold for the listing to test
/// only them; past it, testing every item costs about as much and needs no sort.
const CANDIDATE_SHARE: usize = 2;

impl EncryptedIndex {
    /// Lists items by metadata and text, without a vector (see [`MetadataQuery`]): every
    /// item the filter matches, in id order or ordered by a metadata field; or with text,
    /// the items BM25 finds in the text fields, best first, with their scores. Works on
    /// trained and untrained indexes alike; reads only what is in memory (metadata and
    /// posting indexes), never a vector.
    ///
    /// The index's [`MetadataSchema`](crate::MetadataSchema) is enforced here: a filter
    /// condition on a field that is not filterable (including text fields), or a `$regex` or
    /// `$contains` on a field without `pattern`, is refused.
    ///
    /// ```
    /// use ciphervec::{Database, IndexConfig, IndexKey, Item, MetadataQuery, MetadataSchema, Order};
    /// use serde_json::json;
    /// let schema = MetadataSchema::from_json(&json!({"title": {"pattern": true}}))?;
    /// let index = Database::in_memory().create_index(
    ///     "docs",
    ///     &IndexKey::generate(),
    ///     IndexConfig::ivf_flat(2).metadata_schema(schema).text_fields(&["body"]),
    /// )?;
    /// index.upsert([
    ///     Item::new("a", vec![1.0, 0.0])
    ///         .with_metadata(json!({"title": "INV-2001", "date": 3, "body": "refund overdue"})),
    ///     Item::new("b", vec![0.0, 1.0])
    ///         .with_metadata(json!({"title": "INV-2002", "date": 5, "body": "overdue"})),
    ///     Item::new("c", vec![1.0, 1.0])
    ///         .with_metadata(json!({"title": "memo", "date": 4, "body": "refund"})),
    /// ])?;
    /// let newest = index.query_metadata(
    ///     &MetadataQuery::new()
    ///         .filter(json!({"title": {"$regex": "^INV-2\\d{3}$"}}))
    ///         .order_by("date", Order::Descending),
    /// )?;
    /// assert_eq!(newest.iter().map(|h| h.id.as_str()).collect::<Vec<_>>(), ["b", "a"]);
    /// let both = index.query_metadata(
    ///     &MetadataQuery::new().text("overdue refund").require_all_terms(true),
    /// )?;
    /// assert_eq!(both.len(), 1);
    /// assert_eq!(both[0].id, "a");
    /// assert!(both[0].score.unwrap() > 0.0);
    /// # Ok::<(), ciphervec::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidFilter`] for a filter that does not parse or that the schema does not
    /// allow; [`Error::InvalidArgument`] for a `top_k` of 0, an empty or invalid `order_by`
    /// path, or a text part the index cannot answer (no full-text field, an unknown field,
    /// weights not one per field, invalid BM25 parameters, text over 64 KiB).
    pub fn query_metadata(&self, query: &MetadataQuery) -> Result<Vec<MetadataHit>> {
        if query.top_k == Some(0) {
            return Err(Error::invalid_argument("top_k must be at least 1"));
        }
        let order_by = match &query.order_by {
            None => None,
            Some((path, order)) => {
                let segments = filter::path_segments(path).ok_or_else(|| {
                    Error::invalid_argument("order_by needs a dotted path of non-empty keys")
                })?;
                Some((segments, *order))
            }
        };
        let filter = match &query.filter {
            None => None,
            Some(JsonArg::TooDeep) => return Err(filter::too_deep()),
            Some(JsonArg::Value(doc)) => Some(Filter::parse(doc)?),
        };
        validate::text(&query.text)?;
        let state = self.read();
        if let Some(f) = &filter {
            enforce_schema(state.schema(), f)?;
        }
        // (slot, score), in the order the listing returns them unless `order_by` reorders.
        let mut found: Vec<(u64, Option<f32>)> = if query.text.words.is_some() {
            let sources = text_sources(&state, &query.text)?;
            let k = match (&order_by, query.top_k) {
                (None, Some(k)) => k,
                _ => usize::MAX,
            };
            text_ranking(&state, &sources, &query.text, filter.as_ref(), k.max(1))
                .into_iter()
                .map(|(slot, score)| (slot, Some(score)))
                .collect()
        } else {
            let mut slots = match &filter {
                Some(f) => matching_slots(&state, f),
                None => state.entries().map(|(slot, _)| slot).collect(),
            };
            if order_by.is_none() {
                sort_top(&mut slots, query.top_k, |a, b| {
                    id_of(&state, *a).cmp(id_of(&state, *b))
                });
            }
            slots.into_iter().map(|slot| (slot, None)).collect()
        };
        if let Some((path, order)) = &order_by {
            let key = |slot: u64| {
                state
                    .entry(slot)
                    .and_then(|e| e.metadata.as_deref())
                    .and_then(|m| filter::sort_value(m, path))
            };
            sort_top(&mut found, query.top_k, |a, b| {
                compare_keys(key(a.0), key(b.0), *order)
                    .then_with(|| id_of(&state, a.0).cmp(id_of(&state, b.0)))
            });
        }
        if let Some(k) = query.top_k {
            found.truncate(k);
        }
        Ok(found
            .into_iter()
            .filter_map(|(slot, score)| {
                state.entry(slot).map(|e| MetadataHit {
                    id: e.id.clone(),
                    score,
                })
            })
            .collect())
    }

    /// The slots whose metadata `filter` matches, by testing every item: what a listing
    /// costs without the metadata indexes (benchmarks compare the two).
    #[cfg_attr(not(feature = "internals"), allow(dead_code))]
    pub(crate) fn scan_metadata(&self, filter: &Value) -> Result<Vec<String>> {
        let filter = Filter::parse(filter)?;
        let state = self.read();
        Ok(state
            .entries()
            .filter(|(_, e)| filter.matches(e.metadata.as_deref()))
            .map(|(_, e)| e.id.clone())
            .collect())
    }
}

/// Refuses a listing's filter when it names a field the schema does not let it filter: not
/// filterable (stored only, or a text field), or tested by `$regex`/`$contains` without a
/// pattern dictionary.
fn enforce_schema(schema: &MetadataSchema, filter: &Filter) -> Result<()> {
    for (path, cond) in filter.conditions() {
        let name = path.join(".");
        let field = schema.field(&name);
        if !field.filterable {
            return Err(Error::invalid_filter(format!(
                "'{name}' is not filterable in this index's metadata schema"
            )));
        }
        if cond.tests_strings() && !field.pattern {
            return Err(Error::invalid_filter(format!(
                "$regex and $contains on '{name}' need a pattern field in the metadata schema"
            )));
        }
    }
    Ok(())
}

/// The live slots `filter` matches, in no particular order: the candidates of the metadata
/// indexes when the filter has a plan that narrows them enough, else every item, each
/// tested.
fn matching_slots(state: &State, filter: &Filter) -> Vec<u64> {
    let matches = |slot: u64| {
        state
            .entry(slot)
            .is_some_and(|e| filter.matches(e.metadata.as_deref()))
    };
    let limit = state.len() / CANDIDATE_SHARE;
    match filter
        .plan(&|path| state.coverage(path))
        .and_then(|plan| candidates::indexed(state, &candidates::resolve(state, &plan), limit))
    {
        Some(candidates) => candidates.into_iter().filter(|&s| matches(s)).collect(),
        None => state
            .entries()
            .filter(|(_, e)| filter.matches(e.metadata.as_deref()))
            .map(|(slot, _)| slot)
            .collect(),
    }
}

/// The id of a live slot (empty for a slot that is not: none is asked for).
fn id_of(state: &State, slot: u64) -> &str {
    state.entry(slot).map_or("", |e| e.id.as_str())
}

/// Sorts `items` by `order`, only as far as the first `top_k` need.
fn sort_top<T>(
    items: &mut Vec<T>,
    top_k: Option<usize>,
    mut order: impl FnMut(&T, &T) -> Ordering,
) {
    if let Some(k) = top_k
        && k < items.len()
    {
        items.select_nth_unstable_by(k, &mut order);
        items.truncate(k);
    }
    items.sort_unstable_by(order);
}

/// The order of two `order_by` values: numbers by value before strings by bytes
/// (ascending; descending reverses that), a missing value after any present one either way.
fn compare_keys(a: Option<&Value>, b: Option<&Value>, order: Order) -> Ordering {
    let (a, b) = match (a, b) {
        (None, None) => return Ordering::Equal,
        (None, Some(_)) => return Ordering::Greater,
        (Some(_), None) => return Ordering::Less,
        (Some(a), Some(b)) => (a, b),
    };
    let by_value = match (a, b) {
        (Value::Number(x), Value::Number(y)) => filter::compare_numbers(x, y),
        (Value::String(x), Value::String(y)) => x.as_bytes().cmp(y.as_bytes()),
        (Value::Number(_), _) => Ordering::Less,
        (_, Value::Number(_)) => Ordering::Greater,
        _ => Ordering::Equal,
    };
    match order {
        Order::Ascending => by_value,
        Order::Descending => by_value.reverse(),
    }
}
