//! A [`Store`] over S3-compatible object storage (cargo feature `s3`), through the
//! `object_store` crate: `s3://bucket/prefix`, with credentials, region and endpoint from the
//! standard `AWS_*` environment variables (`AWS_ENDPOINT_URL`, `AWS_ALLOW_HTTP=true` for a
//! loopback test server).
//!
//! Writes of new objects are create-only (`If-None-Match: *`), so two writers can never both
//! create the same segment or writer lease; the manifest and the lease are replaced by one
//! atomic PUT conditional on the ETag the writer last saw (`If-Match`), so a writer whose
//! lease expired and was taken over can no longer commit. Each
//! request is retried with backoff for at most [`RETRY_TIMEOUT`]; a store that stays
//! unreachable surfaces as an error of kind [`io::ErrorKind::NotConnected`], which the engine
//! reports as `Error::Unavailable`. Requests that move whole objects of any size (a segment
//! written or downloaded whole: hundreds of MiB for a million vectors) go through a second
//! client whose requests may take up to [`BULK_TIMEOUT`]: with the 5-second limit of the
//! ranged reads and small objects, building a 1M x 128 index failed (its 560 MiB segment
//! cannot be sent in 5 s), while a stalled server must still fail a query within seconds. The async client runs on a private runtime, usable from
//! inside another tokio runtime too.

use std::future::Future;
use std::io;
use std::ops::Range;
use std::time::Duration;

use object_store::aws::{AmazonS3, AmazonS3Builder, AmazonS3ConfigKey};
use object_store::path::Path;
use object_store::{
    BackoffConfig, ClientConfigKey, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload,
    RetryConfig, UpdateVersion,
};

use super::Store;

/// How long one request is retried before the store counts as unavailable.
pub(crate) const RETRY_TIMEOUT: Duration = Duration::from_secs(10);
/// Timeout of one HTTP request (and of connecting, for bulk requests too).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one request moving a whole object may take (and be retried).
pub(crate) const BULK_TIMEOUT: Duration = Duration::from_secs(600);
/// Objects written through the bulk client from this size on.
const BULK_BYTES: usize = 4 << 20;

/// The objects under `prefix/` of one bucket.
pub(crate) struct S3Store {
    client: AmazonS3,
    /// For whole-object transfers: requests of up to [`BULK_TIMEOUT`].
    bulk: AmazonS3,
    prefix: String,
    runtime: tokio::runtime::Runtime,
    lease: Duration,
    /// The process that built the runtime: a child made by `fork` has none of its threads,
    /// so a request there would wait forever; it is refused instead.
    process: u32,
}

impl S3Store {
    /// Connects to `s3://bucket/prefix` (the prefix may be empty), with writer leases of
    /// `lease`.
    pub(crate) fn open(url: &str, lease: Duration) -> io::Result<S3Store> {
        let rest = url
            .strip_prefix("s3://")
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "not an s3:// location"))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "s3:// needs a bucket",
            ));
        }
        // As object keys name it: `Path` drops empty parts, so `a//b/` is `a/b`.
        let prefix = prefix
            .split('/')
            .filter(|part| !part.is_empty())
            .collect::<Vec<_>>()
            .join("/");
        let client = |timeout: Duration, retry_timeout: Duration| {
            AmazonS3Builder::from_env()
                .with_bucket_name(bucket)
                // Config keys, not `with_client_options`, which would drop the client settings
                // `from_env` read (AWS_ALLOW_HTTP, proxies).
                .with_config(
                    AmazonS3ConfigKey::Client(ClientConfigKey::ConnectTimeout),
                    format!("{} seconds", REQUEST_TIMEOUT.as_secs()),
                )
                .with_config(
                    AmazonS3ConfigKey::Client(ClientConfigKey::Timeout),
                    format!("{} seconds", timeout.as_secs()),
                )
                .with_retry(RetryConfig {
                    backoff: BackoffConfig::default(),
                    max_retries: 5,
                    retry_timeout,
                })
                .build()
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))
        };
        let bulk = client(BULK_TIMEOUT, BULK_TIMEOUT)?;
        let client = client(REQUEST_TIMEOUT, RETRY_TIMEOUT)?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("ciphervec-s3")
            .enable_all()
            .build()?;
        Ok(S3Store {
            client,
            bulk,
            prefix: if prefix.is_empty() {
                String::new()
            } else {
                format!("{prefix}/")
            },
            runtime,
            process: std::process::id(),
            lease,
        })
    }

    /// The client for a write of `len` bytes: the bulk one from [`BULK_BYTES`] on.
    fn client_for(&self, len: usize) -> &AmazonS3 {
        if len >= BULK_BYTES {
            &self.bulk
        } else {
            &self.client
        }
    }

    /// The key of object `name`: `Path` escapes the characters S3 advises against (`#`,
    /// `~`, `%`, `[`...; index names may hold them) and a part that is `.` or `..`, which
    /// [`unescaped`] undoes for listings.
    fn path(&self, name: &str) -> Path {
        Path::from(format!("{}{name}", self.prefix))
    }

    /// Runs a request on the private runtime (from a scoped thread when the caller is itself
    /// inside a tokio runtime, where blocking on another runtime is not allowed).
    fn run<T: Send>(
        &self,
        request: impl Future<Output = object_store::Result<T>> + Send,
    ) -> io::Result<T> {
        self.runtime_result(request).map_err(to_io)
    }

    /// As [`run`](Self::run), keeping the `object_store` error.
    fn runtime_result<T: Send>(
        &self,
        request: impl Future<Output = object_store::Result<T>> + Send,
    ) -> object_store::Result<T> {
        if std::process::id() != self.process {
            return Err(object_store::Error::Generic {
                store: "S3",
                source: "an S3 database used in a child made by fork: open it again there".into(),
            });
        }
        if tokio::runtime::Handle::try_current().is_ok() {
            std::thread::scope(|scope| {
                scope
                    .spawn(|| self.runtime.block_on(request))
                    .join()
                    .unwrap_or_else(|_| {
                        Err(object_store::Error::Generic {
                            store: "S3",
                            source: "the S3 client panicked".into(),
                        })
                    })
            })
        } else {
            self.runtime.block_on(request)
        }
    }
}

/// An `object_store` error as an `io::Error` whose kind the engine understands.
fn to_io(e: object_store::Error) -> io::Error {
    let kind = match &e {
        object_store::Error::NotFound { .. } => io::ErrorKind::NotFound,
        object_store::Error::AlreadyExists { .. } | object_store::Error::Precondition { .. } => {
            io::ErrorKind::AlreadyExists
        }
        object_store::Error::PermissionDenied { .. }
        | object_store::Error::Unauthenticated { .. } => io::ErrorKind::PermissionDenied,
        object_store::Error::NotSupported { .. }
        | object_store::Error::NotImplemented { .. }
        | object_store::Error::InvalidPath { .. } => io::ErrorKind::Unsupported,
        // A server that answered with an S3 error document was reached: unless it said it
        // is busy or failing, the request itself was refused (a bucket that does not exist,
        // a bad bucket name), which no retry mends and `Unavailable` would misname.
        object_store::Error::Generic { .. } => match s3_error_code(&e.to_string()) {
            Some("NoSuchBucket") => {
                return io::Error::new(io::ErrorKind::NotFound, "the bucket does not exist");
            }
            Some(code) if !SERVER_SIDE_CODES.contains(&code) => io::ErrorKind::Other,
            _ => io::ErrorKind::NotConnected,
        },
        // Everything else reached no answer within the retry budget (connection refused,
        // timeouts, 5xx after retries).
        _ => io::ErrorKind::NotConnected,
    };
    io::Error::new(kind, e.to_string())
}

/// S3 error codes that say the service, not the request, failed: after the client's
/// retries these are `Unavailable`.
const SERVER_SIDE_CODES: [&str; 4] = [
    "InternalError",
    "ServiceUnavailable",
    "SlowDown",
    "RequestTimeout",
];

/// The `<Code>` of an S3 error document quoted in an `object_store` error message (its
/// request errors carry the response body, and their type is private to that crate).
fn s3_error_code(message: &str) -> Option<&str> {
    let start = message.find("<Code>")? + "<Code>".len();
    let len = message[start..].find("</Code>")?;
    Some(&message[start..start + len])
}

/// Ranged requests one `get_ranges` call keeps in flight.
const CONCURRENT_RANGES: usize = 16;

impl Store for S3Store {
    fn get(&self, name: &str) -> io::Result<Vec<u8>> {
        // Whole objects are segments downloaded for `verify` or a backup (the manifest and
        // the lease are read through `get_versioned`).
        let path = self.path(name);
        let bytes = self.run(async { self.bulk.get(&path).await?.bytes().await })?;
        Ok(bytes.to_vec())
    }

    fn size(&self, name: &str) -> io::Result<u64> {
        let path = self.path(name);
        self.run(async { Ok(self.client.head(&path).await?.size) })
    }

    /// The length S3 announces is checked before the body is read.
    fn get_versioned_at_most(&self, name: &str, max: u64) -> io::Result<(Vec<u8>, Option<String>)> {
        let path = self.path(name);
        let got = self.run(async {
            let got = self.client.get(&path).await?;
            if got.meta.size > max {
                return Ok(None);
            }
            let e_tag = got.meta.e_tag.clone();
            Ok(Some((got.bytes().await?, e_tag)))
        })?;
        let (bytes, e_tag) = got.ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::FileTooLarge,
                "object larger than any index writes",
            )
        })?;
        Ok((bytes.to_vec(), e_tag))
    }

    fn get_versioned(&self, name: &str) -> io::Result<(Vec<u8>, Option<String>)> {
        let path = self.path(name);
        let (bytes, e_tag) = self.run(async {
            let got = self.client.get(&path).await?;
            let e_tag = got.meta.e_tag.clone();
            Ok((got.bytes().await?, e_tag))
        })?;
        Ok((bytes.to_vec(), e_tag))
    }

    fn put_if_version(&self, name: &str, data: &[u8], version: &str) -> io::Result<Option<String>> {
        let path = self.path(name);
        let options = PutOptions {
            mode: PutMode::Update(UpdateVersion {
                e_tag: Some(version.to_owned()),
                version: None,
            }),
            ..PutOptions::default()
        };
        let payload = PutPayload::from(data.to_vec());
        let result = self.runtime_result(self.client.put_opts(&path, payload, options));
        match result {
            Ok(put) => put
                .e_tag
                .map(Some)
                .ok_or_else(|| io::Error::other("the store gave no ETag for a conditional write")),
            Err(
                object_store::Error::Precondition { .. } | object_store::Error::NotFound { .. },
            ) => Ok(None),
            Err(e) => Err(to_io(e)),
        }
    }

    fn lease_duration(&self) -> Duration {
        self.lease
    }

    fn get_range(&self, name: &str, range: Range<u64>) -> io::Result<Vec<u8>> {
        let path = self.path(name);
        let bytes = self.run(self.client.get_range(&path, range.clone()))?;
        if bytes.len() as u64 != range.end - range.start {
            return Err(io::Error::from(io::ErrorKind::UnexpectedEof));
        }
        Ok(bytes.to_vec())
    }

    /// Every range in its own request, at most [`CONCURRENT_RANGES`] at a time (not
    /// `object_store`'s `get_ranges`, which merges ranges up to 1 MiB apart and would fetch
    /// what lies between).
    fn get_ranges(&self, name: &str, ranges: &[Range<u64>]) -> io::Result<Vec<Vec<u8>>> {
        use futures_util::{StreamExt, TryStreamExt};
        let path = self.path(name);
        let fetched: Vec<_> = self.run(
            futures_util::stream::iter(ranges.iter().cloned())
                .map(|r| self.client.get_range(&path, r))
                .buffered(CONCURRENT_RANGES)
                .try_collect(),
        )?;
        fetched
            .into_iter()
            .zip(ranges)
            .map(|(bytes, r)| {
                if bytes.len() as u64 == r.end - r.start {
                    Ok(bytes.to_vec())
                } else {
                    Err(io::Error::from(io::ErrorKind::UnexpectedEof))
                }
            })
            .collect()
    }

    fn put_new(&self, name: &str, data: &[u8]) -> io::Result<()> {
        let path = self.path(name);
        let options = PutOptions {
            mode: PutMode::Create,
            ..PutOptions::default()
        };
        let payload = PutPayload::from(data.to_vec());
        self.run(
            self.client_for(data.len())
                .put_opts(&path, payload, options),
        )?;
        Ok(())
    }

    fn put(&self, name: &str, data: &[u8]) -> io::Result<()> {
        let path = self.path(name);
        let payload = PutPayload::from(data.to_vec());
        self.run(self.client_for(data.len()).put(&path, payload))?;
        Ok(())
    }

    fn delete(&self, name: &str) -> io::Result<()> {
        let path = self.path(name);
        match self.run(self.client.delete(&path)) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            other => other,
        }
    }

    fn list(&self, prefix: &str) -> io::Result<Vec<String>> {
        use futures_util::TryStreamExt;
        // Listing takes a directory-like prefix: list the enclosing folder, then filter.
        let full = format!("{}{prefix}", self.prefix);
        let folder = full.rsplit_once('/').map_or("", |(f, _)| f);
        let folder_path = (!folder.is_empty()).then(|| Path::from(folder));
        let metas: Vec<object_store::ObjectMeta> =
            self.run(self.client.list(folder_path.as_ref()).try_collect())?;
        Ok(metas
            .into_iter()
            .filter_map(|m| {
                let name = unescaped(&m.location);
                name.starts_with(&full)
                    .then(|| name[self.prefix.len()..].to_owned())
            })
            .collect())
    }
}

/// The name a listed key stands for: each part's `%XX` escapes decoded (a part that is not
/// a valid escape sequence, or decodes to other than UTF-8, was not written by [`S3Store::path`]
/// and stays as listed).
fn unescaped(location: &Path) -> String {
    location
        .parts()
        .map(|part| {
            let raw = part.as_ref();
            crate::storage::percent_decode(raw)
                .and_then(|bytes| String::from_utf8(bytes).ok())
                .unwrap_or_else(|| raw.to_owned())
        })
        .collect::<Vec<_>>()
        .join("/")
}
