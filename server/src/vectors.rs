//! `/v1/vectors/*`: upsert (JSON and binary), query (JSON and binary), get, delete,
//! list_ids, num_vectors, query_metadata.

use axum::Json;
use axum::extract::State;
use ciphervec::{EncryptedIndex, Item, MetadataQuery, Order, Query};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::auth::Caller;
use crate::body::ApiJson;
use crate::convert;
use crate::error::ApiError;
use crate::handles::Access;
use crate::keys::KeyText;
use crate::state::{AppState, blocking};
use crate::target::{Credentials, IndexRef, Target};

/// `top_k` when a query does not say (CyborgDB's default).
const DEFAULT_TOP_K: usize = 100;

/// `VectorItem`.
#[derive(Deserialize, Debug)]
pub struct VectorItem {
    id: String,
    #[serde(default)]
    vector: Option<Vec<f32>>,
    #[serde(default)]
    contents: Option<String>,
    #[serde(default)]
    metadata: Option<Value>,
}

/// `UpsertRequest`.
#[derive(Deserialize, Debug)]
pub struct UpsertRequest {
    index_name: String,
    #[serde(default)]
    index_key: Option<KeyText>,
    items: Vec<VectorItem>,
}

/// `BinaryUpsertRequest`.
#[derive(Deserialize, Debug)]
pub struct BinaryUpsertRequest {
    index_name: String,
    #[serde(default)]
    index_key: Option<KeyText>,
    batch: BinaryVectorBatch,
}

/// `BinaryVectorBatch`: `n * dimension` little-endian f32, base64.
#[derive(Deserialize, Debug)]
pub struct BinaryVectorBatch {
    ids: Vec<String>,
    vectors_b64: String,
    dimension: usize,
    #[serde(default)]
    metadata: Option<Vec<Option<Value>>>,
    #[serde(default)]
    contents: Option<Vec<Option<String>>>,
}

/// One item of the core from the wire's parts: empty contents are no contents (the Python
/// SDK sends `""` for a missing entry), `null` metadata is none.
fn item(
    position: usize,
    id: String,
    vector: Vec<f32>,
    contents: Option<String>,
    metadata: Option<Value>,
) -> Result<Item, ApiError> {
    let mut item = Item::new(id, vector);
    if let Some(text) = contents.filter(|c| !c.is_empty()) {
        item = item.with_contents(text.into_bytes());
    }
    match metadata {
        None | Some(Value::Null) => {}
        Some(m @ Value::Object(_)) => item = item.with_metadata(m),
        Some(_) => {
            return Err(ApiError::bad_request(format!(
                "item {position}: metadata must be a JSON object"
            )));
        }
    }
    Ok(item)
}

/// The items of a JSON upsert and their dimension.
fn json_items(items: Vec<VectorItem>) -> Result<(Vec<Item>, usize), ApiError> {
    let mut out = Vec::with_capacity(items.len());
    let mut dimension = 0;
    for (i, it) in items.into_iter().enumerate() {
        let Some(vector) = it.vector else {
            return Err(ApiError::bad_request(format!(
                "item {i} has no vector: ciphervec does not embed contents, send vectors"
            )));
        };
        dimension = vector.len();
        out.push(item(i, it.id, vector, it.contents, it.metadata)?);
    }
    Ok((out, dimension))
}

/// The writable index a write goes to; an index still waiting for its dimension becomes a
/// real index of `dimension` first (see `pending`).
fn writable(
    state: &AppState,
    creds: &Credentials,
    name: &str,
    dimension: usize,
) -> Result<EncryptedIndex, ApiError> {
    match creds.open(state, name, Access::Write)? {
        Target::Ready(index) => Ok(index),
        Target::Pending(index, _) => {
            drop(index);
            let _one_at_a_time = state
                .materialize
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            // Another request may have fixed the dimension meanwhile.
            let pending = match creds.open(state, name, Access::Write)? {
                Target::Ready(index) => return Ok(index),
                Target::Pending(_, pending) => pending,
            };
            if dimension == 0 {
                return Err(ApiError::bad_request("vectors must not be empty"));
            }
            let config = pending.config(dimension)?;
            let key = creds.owner_key()?;
            state.handles.forget(name);
            let db = state.handles.db();
            db.delete_index(name, key)?;
            let index = db.create_index(name, key, config)?;
            state.handles.keep(name, key, index.clone());
            Ok(index)
        }
    }
}

fn upserted(n: usize) -> Json<Value> {
    Json(json!({"status": "success", "message": format!("Upserted {n} vectors")}))
}

/// `POST /v1/vectors/upsert`.
pub async fn upsert(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<UpsertRequest>,
) -> Result<Json<Value>, ApiError> {
    let creds = Credentials::of(caller, req.index_key.as_ref())?;
    let name = req.index_name;
    let n = req.items.len();
    let items = req.items;
    blocking(move || {
        let (items, dimension) = json_items(items)?;
        if items.is_empty() {
            // Nothing to write, but the index and key are still checked.
            creds.open(&state, &name, Access::Write)?;
            return Ok(());
        }
        writable(&state, &creds, &name, dimension)?.upsert(items)?;
        Ok(())
    })
    .await?;
    Ok(upserted(n))
}

/// `POST /v1/vectors/upsert_binary`.
pub async fn upsert_binary(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<BinaryUpsertRequest>,
) -> Result<Json<Value>, ApiError> {
    let creds = Credentials::of(caller, req.index_key.as_ref())?;
    let name = req.index_name;
    let batch = req.batch;
    let n = batch.ids.len();
    for (field, len) in [
        ("metadata", batch.metadata.as_ref().map(Vec::len)),
        ("contents", batch.contents.as_ref().map(Vec::len)),
    ] {
        if len.is_some_and(|l| l != n) {
            return Err(ApiError::bad_request(format!(
                "batch.{field} must have one entry per id"
            )));
        }
    }
    blocking(move || {
        let rows = convert::rows_from_base64(&batch.vectors_b64, batch.dimension, Some(n))?;
        if n == 0 {
            creds.open(&state, &name, Access::Write)?;
            return Ok(());
        }
        let index = writable(&state, &creds, &name, batch.dimension)?;
        if batch.metadata.is_none() && batch.contents.is_none() {
            index.upsert_rows(&batch.ids, &rows)?;
            return Ok(());
        }
        let mut metadata = batch.metadata.unwrap_or_default().into_iter();
        let mut contents = batch.contents.unwrap_or_default().into_iter();
        let items = batch
            .ids
            .into_iter()
            .zip(rows.chunks_exact(batch.dimension))
            .enumerate()
            .map(|(i, (id, row))| {
                item(
                    i,
                    id,
                    row.to_vec(),
                    contents.next().flatten(),
                    metadata.next().flatten(),
                )
            })
            .collect::<Result<Vec<_>, _>>()?;
        index.upsert(items)?;
        Ok(())
    })
    .await?;
    Ok(upserted(n))
}

/// The query options both query endpoints share (`QueryRequest`, `BatchQueryRequest`,
/// `BinaryQueryRequest`).
#[derive(Deserialize, Debug, Default)]
pub struct QueryOptions {
    #[serde(default)]
    top_k: Option<usize>,
    #[serde(default)]
    n_probes: Option<usize>,
    #[serde(default)]
    rerank_mult: Option<usize>,
    #[serde(default)]
    greedy: Option<bool>,
    #[serde(default)]
    filters: Option<Value>,
    #[serde(default)]
    include: Option<Vec<String>>,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    text_fields: Option<Vec<String>>,
    #[serde(default)]
    text_field_weights: Option<Vec<f32>>,
    #[serde(default)]
    require_all_terms: Option<bool>,
    #[serde(default)]
    alpha: Option<f32>,
    #[serde(default)]
    rrf_k: Option<f32>,
    #[serde(default)]
    window_mult: Option<usize>,
}

/// 400 naming the text options given without text: they would change nothing, and a
/// caller who sends them expects them to.
fn check_text_free(given: &[(&str, bool)]) -> Result<(), ApiError> {
    let named: Vec<&str> = given
        .iter()
        .filter(|(_, is)| *is)
        .map(|(name, _)| *name)
        .collect();
    if named.is_empty() {
        return Ok(());
    }
    Err(ApiError::bad_request(format!(
        "{} configure the text part of a query and need non-empty text",
        named.join(", ")
    )))
}

/// The filter a request gives: `None` for an absent, `null` or empty one (the SDKs send
/// `{}` for "no filter").
fn given_filter(filters: Option<&Value>) -> Option<&Value> {
    match filters {
        None | Some(Value::Null) => None,
        Some(Value::Object(o)) if o.is_empty() => None,
        Some(f) => Some(f),
    }
}

/// The largest `top_k * rerank_mult` a query may ask (CyborgDB's ceiling, inclusive).
const MAX_CANDIDATES: usize = 10_000;

impl QueryOptions {
    /// The query text, when there is any (empty text leaves the query text-free, as
    /// CyborgDB's SDKs document).
    fn text(&self) -> Option<&str> {
        self.text.as_deref().filter(|t| !t.is_empty())
    }

    /// Checks the options that do not depend on the vector, once per request, and returns
    /// the fields the hits carry.
    ///
    /// # Errors
    /// 400 for a value ciphervec refuses, and for text options without text (CyborgDB's
    /// service refuses the fusion ones; none of them is ignored).
    fn check(&self) -> Result<ciphervec::Include, ApiError> {
        if self.greedy == Some(true) {
            return Err(ApiError::bad_request(
                "greedy search is not supported: omit greedy or pass false",
            ));
        }
        if self.text().is_none() {
            check_text_free(&[
                ("text_fields", self.text_fields.is_some()),
                ("text_field_weights", self.text_field_weights.is_some()),
                ("require_all_terms", self.require_all_terms.is_some()),
                ("alpha", self.alpha.is_some()),
                ("rrf_k", self.rrf_k.is_some()),
                ("window_mult", self.window_mult.is_some()),
            ])?;
        }
        let top_k = self.top_k.unwrap_or(DEFAULT_TOP_K);
        let mult = self.rerank_mult.unwrap_or(1).max(1);
        if top_k.saturating_mul(mult) > MAX_CANDIDATES {
            return Err(ApiError::bad_request(format!(
                "top_k * rerank_mult must be at most {MAX_CANDIDATES} (top_k {top_k}, \
                 rerank_mult {mult})"
            )));
        }
        convert::query_include(self.include.as_deref())
    }

    /// A core query of `vector` with these options (after [`QueryOptions::check`]).
    fn query(&self, vector: Vec<f32>, include: ciphervec::Include) -> Query {
        let mut q = Query::new(vector)
            .top_k(self.top_k.unwrap_or(DEFAULT_TOP_K))
            .include(include);
        if let Some(n) = self.n_probes.filter(|&n| n != 0) {
            q = q.n_probes(n);
        }
        if let Some(m) = self.rerank_mult {
            q = q.rerank(m);
        }
        if let Some(f) = given_filter(self.filters.as_ref()) {
            q = q.filter(f.clone());
        }
        if let Some(text) = self.text() {
            q = q.text(text);
            if let Some(fields) = &self.text_fields {
                q = q.text_fields(&fields.iter().map(String::as_str).collect::<Vec<_>>());
            }
            if let Some(weights) = &self.text_field_weights {
                q = q.text_field_weights(weights);
            }
            if let Some(all) = self.require_all_terms {
                q = q.require_all_terms(all);
            }
            if let Some(a) = self.alpha {
                q = q.hybrid_alpha(a);
            }
            if let Some(k) = self.rrf_k {
                q = q.rrf_k(k);
            }
            if let Some(m) = self.window_mult {
                q = q.window_mult(m);
            }
        }
        q
    }
}

/// `QueryRequest` / `BatchQueryRequest`: told apart by the shape of `query_vectors`.
#[derive(Deserialize, Debug)]
pub struct QueryRequest {
    index_name: String,
    #[serde(default)]
    index_key: Option<KeyText>,
    #[serde(default)]
    query_vectors: Option<Vec<Value>>,
    #[serde(default)]
    query_contents: Option<String>,
    #[serde(flatten)]
    options: QueryOptions,
}

/// The query vectors of a JSON query: `Single` for a flat list, `Batch` for a list of lists.
enum Vectors {
    Single(Vec<f32>),
    Batch(Vec<Vec<f32>>),
}

fn number(v: &Value) -> Result<f32, ApiError> {
    v.as_f64().map(|x| x as f32).ok_or_else(|| {
        ApiError::schema(
            "float_type",
            vec![json!("body"), json!("query_vectors")],
            "Input should be a valid number",
        )
    })
}

fn vectors(values: Vec<Value>) -> Result<Vectors, ApiError> {
    if values.first().is_some_and(Value::is_array) {
        values
            .iter()
            .map(|row| match row {
                Value::Array(xs) => xs.iter().map(number).collect::<Result<Vec<_>, _>>(),
                _ => Err(ApiError::schema(
                    "list_type",
                    vec![json!("body"), json!("query_vectors")],
                    "Input should be a list of lists of numbers",
                )),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Vectors::Batch)
    } else {
        values
            .iter()
            .map(number)
            .collect::<Result<Vec<_>, _>>()
            .map(Vectors::Single)
    }
}

/// Runs `queries` and shapes the answer as CyborgDB's service does: a flat list for one
/// query, a list of lists for several.
fn run_queries(
    index: Option<&EncryptedIndex>,
    queries: Vec<Query>,
    include: ciphervec::Include,
) -> Result<Value, ApiError> {
    let Some(index) = index else {
        // A placeholder holds nothing.
        return Ok(if queries.len() == 1 {
            json!([])
        } else {
            json!(vec![json!([]); queries.len()])
        });
    };
    if queries.len() == 1 {
        let hits = index.query(&queries[0])?;
        return Ok(Value::Array(
            hits.into_iter().map(|h| convert::hit(h, include)).collect(),
        ));
    }
    let batches = index.query_batch(&queries)?;
    Ok(Value::Array(
        batches
            .into_iter()
            .map(|hits| Value::Array(hits.into_iter().map(|h| convert::hit(h, include)).collect()))
            .collect(),
    ))
}

fn ready(target: &Target) -> Option<&EncryptedIndex> {
    match target {
        Target::Ready(index) => Some(index),
        Target::Pending(..) => None,
    }
}

/// `POST /v1/vectors/query`.
pub async fn query(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<QueryRequest>,
) -> Result<Json<Value>, ApiError> {
    let creds = Credentials::of(caller, req.index_key.as_ref())?;
    if req.query_contents.is_some() {
        return Err(ApiError::bad_request(
            "query_contents is not supported: ciphervec does not embed text; send query_vectors",
        ));
    }
    let vectors = match req.query_vectors {
        Some(v) if !v.is_empty() => vectors(v)?,
        _ => {
            return Err(ApiError::bad_request(
                "Provide at least one: query_vectors or query_contents",
            ));
        }
    };
    let rows = match vectors {
        Vectors::Single(v) => vec![v],
        Vectors::Batch(rows) => rows,
    };
    let include = req.options.check()?;
    let queries = rows
        .into_iter()
        .map(|v| req.options.query(v, include))
        .collect::<Vec<_>>();
    let name = req.index_name;
    let results = blocking(move || {
        let target = creds.open(&state, &name, Access::Read)?;
        run_queries(ready(&target), queries, include)
    })
    .await?;
    Ok(Json(json!({ "results": results })))
}

/// `BinaryQueryRequest`.
#[derive(Deserialize, Debug)]
pub struct BinaryQueryRequest {
    index_name: String,
    #[serde(default)]
    index_key: Option<KeyText>,
    batch: BinaryQueryBatch,
    #[serde(flatten)]
    options: QueryOptions,
}

/// `BinaryQueryBatch`.
#[derive(Deserialize, Debug)]
pub struct BinaryQueryBatch {
    vectors_b64: String,
    dimension: usize,
}

/// `POST /v1/vectors/query_binary`.
pub async fn query_binary(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<BinaryQueryRequest>,
) -> Result<Json<Value>, ApiError> {
    let creds = Credentials::of(caller, req.index_key.as_ref())?;
    let include = req.options.check()?;
    let name = req.index_name;
    let options = req.options;
    let batch = req.batch;
    let results = blocking(move || {
        let rows = convert::rows_from_base64(&batch.vectors_b64, batch.dimension, None)?;
        let queries = rows
            .chunks_exact(batch.dimension)
            .map(|row| options.query(row.to_vec(), include))
            .collect::<Vec<_>>();
        let target = creds.open(&state, &name, Access::Read)?;
        run_queries(ready(&target), queries, include)
    })
    .await?;
    Ok(Json(json!({ "results": results })))
}

/// `GetRequest`.
#[derive(Deserialize, Debug)]
pub struct GetRequest {
    index_name: String,
    #[serde(default)]
    index_key: Option<KeyText>,
    ids: Vec<String>,
    #[serde(default)]
    include: Option<Vec<String>>,
}

/// `POST /v1/vectors/get`.
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<GetRequest>,
) -> Result<Json<Value>, ApiError> {
    let creds = Credentials::of(caller, req.index_key.as_ref())?;
    let include = convert::get_include(req.include.as_deref())?;
    let name = req.index_name;
    let ids = req.ids;
    let results = blocking(move || {
        let target = creds.open(&state, &name, Access::Read)?;
        let Some(index) = ready(&target) else {
            return Ok(Vec::new());
        };
        let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
        Ok(index
            .get(&refs, include)?
            .into_iter()
            .map(|r| convert::record(r, include))
            .collect::<Vec<_>>())
    })
    .await?;
    Ok(Json(json!({ "results": results })))
}

/// `DeleteRequest`.
#[derive(Deserialize, Debug)]
pub struct DeleteRequest {
    index_name: String,
    #[serde(default)]
    index_key: Option<KeyText>,
    ids: Vec<String>,
}

/// `POST /v1/vectors/delete`.
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<DeleteRequest>,
) -> Result<Json<Value>, ApiError> {
    let creds = Credentials::of(caller, req.index_key.as_ref())?;
    let name = req.index_name;
    let ids = req.ids;
    let n = ids.len();
    blocking(move || {
        match creds.open(&state, &name, Access::Write)? {
            Target::Ready(index) => {
                let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
                index.delete(&refs)?;
            }
            Target::Pending(..) => {}
        }
        Ok(())
    })
    .await?;
    Ok(Json(
        json!({"status": "success", "message": format!("Deleted {n} vectors")}),
    ))
}

/// `POST /v1/vectors/list_ids` -> `{"ids", "count"}`.
pub async fn list_ids(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<IndexRef>,
) -> Result<Json<Value>, ApiError> {
    let creds = Credentials::of(caller, req.index_key.as_ref())?;
    let name = req.index_name;
    let ids = blocking(move || {
        let target = creds.open(&state, &name, Access::Read)?;
        Ok(match ready(&target) {
            Some(index) => index.list_ids()?,
            None => Vec::new(),
        })
    })
    .await?;
    let count = ids.len();
    Ok(Json(json!({"ids": ids, "count": count})))
}

/// `POST /v1/vectors/num_vectors` -> `{"status", "message", "result"}`.
pub async fn num_vectors(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<IndexRef>,
) -> Result<Json<Value>, ApiError> {
    let creds = Credentials::of(caller, req.index_key.as_ref())?;
    let name = req.index_name;
    let n = blocking(move || {
        let target = creds.open(&state, &name, Access::Read)?;
        Ok(ready(&target).map_or(0, EncryptedIndex::len))
    })
    .await?;
    Ok(Json(
        json!({"status": "success", "message": format!("{n} vectors"), "result": n}),
    ))
}

/// `QueryMetadataRequest` (Python 0.18).
#[derive(Deserialize, Debug)]
pub struct QueryMetadataRequest {
    index_name: String,
    #[serde(default)]
    index_key: Option<KeyText>,
    #[serde(default)]
    filters: Option<Value>,
    #[serde(default)]
    top_k: Option<usize>,
    #[serde(default)]
    order_by: Option<Value>,
    #[serde(default)]
    ascending: Option<bool>,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    text_fields: Option<Vec<String>>,
    #[serde(default)]
    text_field_weights: Option<Vec<f32>>,
    #[serde(default)]
    require_all_terms: Option<bool>,
}

impl QueryMetadataRequest {
    /// The core's listing for this request.
    ///
    /// # Errors
    /// 400 for a malformed `order_by`, `order_by` with text (as CyborgDB's service: text
    /// results are ranked by score), or text options without text.
    fn listing(&self) -> Result<MetadataQuery, ApiError> {
        let mut q = MetadataQuery::new();
        if let Some(f) = given_filter(self.filters.as_ref()) {
            q = q.filter(f.clone());
        }
        // CyborgDB's service reads 0 as "no cap", as it reads an absent top_k.
        if let Some(k) = self.top_k.filter(|&k| k != 0) {
            q = q.top_k(k);
        }
        let order = order_by(self.order_by.as_ref(), self.ascending.unwrap_or(true))?;
        match self.text.as_deref().filter(|t| !t.is_empty()) {
            Some(text) => {
                if order.is_some() {
                    return Err(ApiError::bad_request(
                        "order_by is not supported together with text: text results are ranked \
                         by BM25 score (drop order_by, or list without text)",
                    ));
                }
                q = q.text(text);
                if let Some(fields) = &self.text_fields {
                    q = q.text_fields(&fields.iter().map(String::as_str).collect::<Vec<_>>());
                }
                if let Some(weights) = &self.text_field_weights {
                    q = q.text_field_weights(weights);
                }
                if let Some(all) = self.require_all_terms {
                    q = q.require_all_terms(all);
                }
            }
            None => {
                check_text_free(&[
                    ("text_fields", self.text_fields.is_some()),
                    ("text_field_weights", self.text_field_weights.is_some()),
                    ("require_all_terms", self.require_all_terms.is_some()),
                ])?;
                if let Some((field, direction)) = order {
                    q = q.order_by(&field, direction);
                }
            }
        }
        Ok(q)
    }
}

/// `order_by` as the wire sends it: a field name (direction from `ascending`), or
/// `{field: 1 | -1}` whose sign wins over `ascending`.
///
/// # Errors
/// 400 for anything else.
fn order_by(value: Option<&Value>, ascending: bool) -> Result<Option<(String, Order)>, ApiError> {
    let direction = |up: bool| {
        if up {
            Order::Ascending
        } else {
            Order::Descending
        }
    };
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(field)) => Ok(Some((field.clone(), direction(ascending)))),
        Some(Value::Object(fields)) => {
            let mut entries = fields.iter();
            match (entries.next(), entries.next()) {
                (Some((field, sign)), None) => match sign.as_i64() {
                    Some(1) => Ok(Some((field.clone(), Order::Ascending))),
                    Some(-1) => Ok(Some((field.clone(), Order::Descending))),
                    _ => Err(ApiError::bad_request(
                        "order_by: the direction must be 1 (ascending) or -1 (descending)",
                    )),
                },
                _ => Err(ApiError::bad_request(format!(
                    "order_by dict must specify exactly one field, got {}",
                    fields.len()
                ))),
            }
        }
        Some(_) => Err(ApiError::bad_request(
            "order_by must be a field name or {field: 1 | -1}",
        )),
    }
}

/// `POST /v1/vectors/query_metadata` -> `{"results": [{"id", "score"?}], "ids", "count"}`:
/// the core's listing by metadata and text, without a vector.
pub async fn query_metadata(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<QueryMetadataRequest>,
) -> Result<Json<Value>, ApiError> {
    let creds = Credentials::of(caller, req.index_key.as_ref())?;
    let listing = req.listing()?;
    let name = req.index_name;
    let hits = blocking(move || {
        let target = creds.open(&state, &name, Access::Read)?;
        Ok(match ready(&target) {
            Some(index) => index.query_metadata(&listing)?,
            // A placeholder holds nothing.
            None => Vec::new(),
        })
    })
    .await?;
    let ids: Vec<&str> = hits.iter().map(|h| h.id.as_str()).collect();
    let results: Vec<Value> = hits
        .iter()
        .map(|h| match h.score {
            Some(score) => json!({"id": h.id, "score": score}),
            None => json!({"id": h.id}),
        })
        .collect();
    Ok(Json(
        json!({"results": results, "ids": ids, "count": hits.len()}),
    ))
}
