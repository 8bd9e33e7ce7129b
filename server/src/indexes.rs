//! `/v1/indexes/*`: list, create, describe, delete, train, training-status.

use axum::Json;
use axum::extract::State;
use ciphervec::TrainOptions;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::auth::{Caller, OptionalCaller};
use crate::body::ApiJson;
use crate::convert::{self, Kind};
use crate::envelopes::NewKey;
use crate::error::ApiError;
use crate::features::{self, Features};
use crate::handles::Access;
use crate::keys::KeyText;
use crate::pending::Pending;
use crate::state::{AppState, blocking};
use crate::target::{Credentials, IndexRef, Target};

/// The automatic-training floor reported as `retrain_threshold` (the core's documented
/// minimum for its first automatic training).
const AUTO_TRAIN_FLOOR: usize = 10_000;

/// `GET /v1/indexes/list` -> `{"indexes": [..]}`.
pub async fn list(State(state): State<AppState>, caller: Caller) -> Result<Json<Value>, ApiError> {
    caller.require_service()?;
    let names = blocking(move || Ok(state.handles.db().list_indexes()?)).await?;
    Ok(Json(json!({ "indexes": names })))
}

/// `CreateIndexRequest` of Python 0.18, with the older `index_config` of JS 0.14.
#[derive(Deserialize, Debug)]
pub struct CreateRequest {
    index_name: String,
    #[serde(default)]
    index_key: Option<KeyText>,
    #[serde(default)]
    kms_name: Option<String>,
    #[serde(default)]
    dimension: Option<usize>,
    #[serde(default)]
    embedding_model: Option<String>,
    #[serde(default)]
    metric: Option<String>,
    #[serde(default)]
    storage_precision: Option<String>,
    #[serde(default)]
    metadata_schema: Option<serde_json::Map<String, Value>>,
    #[serde(default)]
    text_fields: Option<Vec<String>>,
    #[serde(default)]
    bm25_k1: Option<f64>,
    #[serde(default)]
    bm25_b: Option<f64>,
    #[serde(default)]
    index_config: Option<LegacyConfig>,
}

/// The `index_config` object the JS SDK 0.14 (and older Python SDKs) send.
#[derive(Deserialize, Debug, Default)]
pub struct LegacyConfig {
    #[serde(default)]
    dimension: Option<usize>,
    #[serde(default, rename = "type")]
    index_type: Option<String>,
    #[serde(default)]
    pq_dim: Option<usize>,
    #[serde(default)]
    pq_bits: Option<usize>,
    #[serde(default)]
    metric: Option<String>,
    #[serde(default)]
    n_lists: Option<usize>,
}

/// What a create request asks, checked.
struct Asked {
    kind: Kind,
    metric: ciphervec::Metric,
    dimension: Option<usize>,
    n_lists: usize,
    features: Features,
}

impl CreateRequest {
    fn asked(&self) -> Result<Asked, ApiError> {
        if self
            .embedding_model
            .as_deref()
            .is_some_and(|m| !m.is_empty())
        {
            return Err(ApiError::bad_request(
                "embedding_model is not supported: ciphervec does not embed text; send vectors",
            ));
        }
        let features = Features::parse(&features::Asked {
            metadata_schema: self.metadata_schema.as_ref(),
            text_fields: self.text_fields.as_deref(),
            bm25_k1: self.bm25_k1,
            bm25_b: self.bm25_b,
            storage_precision: self.storage_precision.as_deref(),
        })?;
        let legacy = self.index_config.as_ref();
        let dimension = agree(
            "dimension",
            self.dimension.filter(|&d| d != 0),
            legacy.and_then(|c| c.dimension).filter(|&d| d != 0),
        )?;
        let metric_name = agree(
            "metric",
            self.metric.clone(),
            legacy.and_then(|c| c.metric.clone()),
        )?;
        let kind = convert::kind(
            legacy.and_then(|c| c.index_type.as_deref()),
            legacy.and_then(|c| c.pq_dim),
            legacy.and_then(|c| c.pq_bits),
        )?;
        Ok(Asked {
            kind,
            metric: convert::metric(metric_name.as_deref())?,
            dimension,
            n_lists: legacy.and_then(|c| c.n_lists).unwrap_or(0),
            features,
        })
    }
}

/// One value given at the top level and in `index_config`: both must agree.
fn agree<T: PartialEq>(
    field: &str,
    top: Option<T>,
    legacy: Option<T>,
) -> Result<Option<T>, ApiError> {
    match (top, legacy) {
        (Some(a), Some(b)) if a != b => Err(ApiError::bad_request(format!(
            "{field} differs between the request and its index_config"
        ))),
        (Some(a), _) => Ok(Some(a)),
        (None, b) => Ok(b),
    }
}

/// `POST /v1/indexes/create`.
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<CreateRequest>,
) -> Result<Json<Value>, ApiError> {
    caller.require_service()?;
    let asked = req.asked()?;
    let new_key = NewKey::of(&state, req.index_key.as_ref(), req.kms_name.as_deref())?;
    let name = req.index_name;
    let message = format!("Index '{name}' created successfully");
    blocking(move || {
        let (key, created) = new_key.resolve(&state, &name)?;
        let db = state.handles.db();
        match asked.dimension {
            Some(dimension) => {
                let config = asked.features.apply(
                    asked
                        .kind
                        .config(dimension)?
                        .metric(asked.metric)
                        .n_lists(asked.n_lists),
                );
                let index = db.create_index(&name, &key, config)?;
                state.handles.keep(&name, &key, index);
            }
            None => {
                let pending = Pending {
                    kind: asked.kind,
                    metric: asked.metric,
                    n_lists: asked.n_lists,
                    features: asked.features,
                };
                let (config, marker) = pending.placeholder();
                let index = db.create_index(&name, &key, config)?;
                if let Err(e) = index.upsert([marker]) {
                    drop(index);
                    let _ = db.delete_index(&name, &key);
                    return Err(e.into());
                }
                state.handles.keep(&name, &key, index);
            }
        }
        created.finish(&state, &name, &key)
    })
    .await?;
    Ok(Json(json!({"status": "success", "message": message})))
}

/// `POST /v1/indexes/describe`: the fields Python 0.18 reads and those JS 0.14 reads.
pub async fn describe(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<IndexRef>,
) -> Result<Json<Value>, ApiError> {
    let creds = Credentials::of(caller, req.index_key.as_ref())?;
    let name = req.index_name;
    let target = {
        let state = state.clone();
        let name = name.clone();
        blocking(move || creds.open(&state, &name, Access::Read)).await?
    };
    let (kind, metric, dimension, trained, n_lists, features) = match &target {
        Target::Ready(index) => {
            let config = index.config();
            (
                Kind::of(config),
                config.distance_metric(),
                config.dimension(),
                index.is_trained(),
                if index.is_trained() {
                    index.n_lists()
                } else {
                    1
                },
                Features::of(config),
            )
        }
        Target::Pending(_, p) => (p.kind, p.metric, 0, false, 1, p.features.clone()),
    };
    let (pq_dim, pq_bits) = match kind {
        Kind::Pq { pq_dim } => (pq_dim, 4),
        _ => (0, 0),
    };
    let metric = convert::metric_name(metric);
    Ok(Json(json!({
        "index_name": name,
        "is_trained": trained,
        "dimension": dimension,
        "metric": metric,
        "n_lists": n_lists,
        "metadata_schema": features.schema_json(),
        "bm25": features.bm25_json(),
        "storage_precision": features.precision.as_str(),
        "index_type": kind.name(),
        "index_config": {
            "type": kind.name(),
            "dimension": dimension,
            "metric": metric,
            "n_lists": n_lists,
            "pq_dim": pq_dim,
            "pq_bits": pq_bits,
        },
    })))
}

/// `POST /v1/indexes/delete`.
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<IndexRef>,
) -> Result<Json<Value>, ApiError> {
    caller.require_service()?;
    let creds = Credentials::of(Caller::Service, req.index_key.as_ref())?;
    let name = req.index_name;
    let message = format!("Index '{name}' deleted successfully");
    blocking(move || {
        // The key is checked by opening before any cached handle is dropped.
        drop(creds.open(&state, &name, Access::Read)?);
        let key = creds.owner_key()?;
        state.handles.forget(&name);
        state.handles.db().delete_index(&name, key)?;
        match &state.kms {
            Some(kms) => kms.remove(&name),
            None => Ok(()),
        }
    })
    .await?;
    Ok(Json(json!({"status": "success", "message": message})))
}

/// `TrainRequest`.
#[derive(Deserialize, Debug)]
pub struct TrainRequest {
    index_name: String,
    #[serde(default)]
    index_key: Option<KeyText>,
    #[serde(default)]
    n_lists: Option<usize>,
    #[serde(default)]
    batch_size: Option<usize>,
    #[serde(default)]
    max_iters: Option<usize>,
    #[serde(default)]
    tolerance: Option<f32>,
    #[serde(default)]
    max_memory: Option<usize>,
}

/// Removes an index from the training set when its training ends, however it ends.
struct TrainingGuard {
    state: AppState,
    name: String,
}

impl Drop for TrainingGuard {
    fn drop(&mut self) {
        self.state
            .training
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&self.name);
    }
}

/// `POST /v1/indexes/train`: trains now and answers when done; 409 while a training of
/// the same index runs (a train request's, or the core's automatic one in the background).
pub async fn train(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<TrainRequest>,
) -> Result<Json<Value>, ApiError> {
    caller.require_service()?;
    if req.batch_size.is_some() || req.max_memory.is_some() {
        return Err(ApiError::bad_request(
            "batch_size and max_memory are not supported: ciphervec's k-means samples its \
             training set (omit them)",
        ));
    }
    let mut options = TrainOptions::default();
    if let Some(n) = req.n_lists {
        options.n_lists = n;
    }
    if let Some(n) = req.max_iters {
        options.max_iters = n;
    }
    if let Some(t) = req.tolerance {
        options.tolerance = t;
    }
    let creds = Credentials::of(Caller::Service, req.index_key.as_ref())?;
    let name = req.index_name;
    let message = format!("Index '{name}' trained successfully");
    blocking(move || {
        let Target::Ready(index) = creds.open(&state, &name, Access::Write)? else {
            return Err(ApiError::bad_request(
                "the index has no vectors yet: upsert before training",
            ));
        };
        let _guard = {
            let mut training = state
                .training
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            // A training the core runs in the background (auto-training) is one too.
            if index.is_training() || !training.insert(name.clone()) {
                return Err(ApiError::conflict(
                    "index is training: poll /v1/indexes/training-status",
                ));
            }
            TrainingGuard {
                state: state.clone(),
                name: name.clone(),
            }
        };
        index.train_with(options)?;
        Ok(())
    })
    .await?;
    Ok(Json(json!({"status": "success", "message": message})))
}

/// `GET /v1/indexes/training-status`: the indexes an explicit train request trains, and those
/// open here that train themselves in the background (the core's `is_training`). Without a
/// key, as CyborgDB's service answers it (its
/// OpenAPI document declares no authentication and the JS SDK 0.14 sends none), so the
/// names of indexes training at this moment are visible to whoever reaches the port.
pub async fn training_status(
    State(state): State<AppState>,
    _caller: OptionalCaller,
) -> Result<Json<Value>, ApiError> {
    let mut names: Vec<String> = state
        .training
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .iter()
        .cloned()
        .collect();
    // And the indexes open here that train themselves in the background now.
    names.extend(
        state
            .handles
            .open_indexes()
            .into_iter()
            .filter(|(_, index)| index.is_training())
            .map(|(name, _)| name),
    );
    names.sort();
    names.dedup();
    let current = names.first().cloned();
    Ok(Json(json!({
        "training_indexes": names,
        "retrain_threshold": AUTO_TRAIN_FLOOR,
        "currently_training": current,
        "queued_indexes": [],
        "worker_running": current.is_some(),
        "worker_pid": 0,
        "global_training": {},
    })))
}
