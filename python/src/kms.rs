//! Key services (`GcpKms`, `AzureKeyVault`, `AwsKms`, `VaultTransit`): each builds the core's
//! client from keyword arguments and offers `generate_key(index_name)` and
//! `unwrap_key(wrapped, index_name)`. A class whose cargo feature this wheel lacks still
//! exists; constructing it raises `CiphervecError` naming the feature.

use std::time::Duration;

use ciphervec::kms::{Kms, WrappedKey};
use ciphervec::{Error, IndexKey};
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::errors::{self, run};

/// A connected key service of any provider (what every class below holds).
type Client = Box<dyn Kms + Send + Sync>;

/// The error for a class whose feature this wheel was built without.
#[allow(dead_code)]
fn missing(class: &str, feature: &str) -> PyErr {
    errors::raise(
        "CiphervecError",
        format!("this build of ciphervec lacks {class}: build the wheel with --features {feature}"),
    )
}

/// A timeout in seconds, checked.
#[allow(dead_code)]
fn timeout_of(seconds: f64) -> PyResult<Duration> {
    Duration::try_from_secs_f64(seconds)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| errors::invalid("timeout is a positive number of seconds"))
}

/// `(key, wrapped)` of a fresh key: the 32 key bytes and the wrapped key's text.
fn generate(py: Python<'_>, client: &Client, index_name: &str) -> PyResult<(Py<PyBytes>, String)> {
    let (key, wrapped) = run(py, || client.generate_key(index_name))?;
    Ok((key_bytes(py, &key)?, wrapped.as_str().to_owned()))
}

/// The 32 key bytes `wrapped` unwraps to for `index_name`.
fn unwrap(
    py: Python<'_>,
    client: &Client,
    wrapped: &str,
    index_name: &str,
) -> PyResult<Py<PyBytes>> {
    let wrapped = WrappedKey::new(wrapped).map_err(errors::to_py)?;
    let key = run(py, || client.unwrap_key(&wrapped, index_name))?;
    key_bytes(py, &key)
}

/// The key as Python bytes (the intermediate text is wiped; the bytes object is Python's).
fn key_bytes(py: Python<'_>, key: &IndexKey) -> PyResult<Py<PyBytes>> {
    use base64::Engine as _;
    let text = key.to_base64();
    let bytes = zeroize::Zeroizing::new(
        base64::engine::general_purpose::STANDARD
            .decode(text.as_bytes())
            .map_err(|_| errors::to_py(Error::InvalidKey))?,
    );
    Ok(PyBytes::new(py, &bytes).unbind())
}

/// Google Cloud KMS: `key_name` is `projects/P/locations/L/keyRings/R/cryptoKeys/K` (or a
/// `.../cryptoKeyVersions/N` of it). Credentials: `access_token`, `credentials_file` or
/// `credentials_json` (a service-account key or gcloud's user credentials),
/// `metadata_server` (`True` or its URL), else Application Default Credentials.
#[pyclass(frozen, module = "ciphervec")]
pub(crate) struct GcpKms {
    client: Client,
    repr: String,
}

#[pymethods]
impl GcpKms {
    #[new]
    #[pyo3(signature = (key_name, *, endpoint = None, access_token = None, credentials_file = None,
                        credentials_json = None, metadata_server = None, timeout = 10.0,
                        max_retries = 3))]
    #[allow(clippy::too_many_arguments, unused_variables)]
    fn new(
        key_name: String,
        endpoint: Option<String>,
        access_token: Option<String>,
        credentials_file: Option<std::path::PathBuf>,
        credentials_json: Option<String>,
        metadata_server: Option<Bound<'_, PyAny>>,
        timeout: f64,
        max_retries: u32,
    ) -> PyResult<GcpKms> {
        #[cfg(feature = "gcp-kms")]
        {
            let mut builder = ciphervec::kms::gcp::GcpKms::builder(key_name)
                .timeout(timeout_of(timeout)?)
                .max_retries(max_retries);
            if let Some(url) = endpoint {
                builder = builder.endpoint(url);
            }
            if let Some(token) = access_token {
                builder = builder.access_token(token);
            } else if let Some(path) = credentials_file {
                builder = builder.credentials_file(path);
            } else if let Some(json) = credentials_json {
                builder = builder.credentials_json(json);
            } else if let Some(server) = metadata_server {
                let url = match server.extract::<bool>() {
                    Ok(true) => None,
                    Ok(false) => {
                        return Err(errors::invalid("metadata_server is True or a URL"));
                    }
                    Err(_) => Some(server.extract::<String>()?),
                };
                builder = builder.metadata_server(url);
            }
            let client = builder.build().map_err(errors::to_py)?;
            let repr = format!("{client:?}");
            Ok(GcpKms {
                client: Box::new(client),
                repr,
            })
        }
        #[cfg(not(feature = "gcp-kms"))]
        {
            Err(missing("GcpKms", "gcp-kms"))
        }
    }

    /// A fresh 256-bit key for index `index_name`: `(key, wrapped)`, the 32 key bytes (pass
    /// to `Client.create_index`, then drop) and the wrapped key's text (store it in your
    /// configuration; it reveals nothing without the service).
    fn generate_key(&self, py: Python<'_>, index_name: &str) -> PyResult<(Py<PyBytes>, String)> {
        generate(py, &self.client, index_name)
    }

    /// The 32 key bytes of `wrapped`, which must have been generated for `index_name` (the
    /// service refuses it for another index: `KeyServiceError`).
    fn unwrap_key(&self, py: Python<'_>, wrapped: &str, index_name: &str) -> PyResult<Py<PyBytes>> {
        unwrap(py, &self.client, wrapped, index_name)
    }

    fn __repr__(&self) -> String {
        self.repr.clone()
    }
}

/// Azure Key Vault or Managed HSM: `key_id` is `https://<vault>/keys/<name>[/<version>]`.
/// Credentials: `access_token`; `tenant_id` + `client_id` + `client_secret` (an Entra app,
/// at `authority_host` when given); `managed_identity=True` (the user-assigned one when
/// `client_id` is given; `imds_endpoint` for another metadata address); else as
/// `DefaultAzureCredential` reads the `AZURE_*` environment.
#[pyclass(frozen, module = "ciphervec")]
pub(crate) struct AzureKeyVault {
    client: Client,
    repr: String,
}

#[pymethods]
impl AzureKeyVault {
    #[new]
    #[pyo3(signature = (key_id, *, access_token = None, tenant_id = None, client_id = None,
                        client_secret = None, authority_host = None, managed_identity = false,
                        imds_endpoint = None, timeout = 10.0, max_retries = 3))]
    #[allow(clippy::too_many_arguments, unused_variables)]
    fn new(
        key_id: String,
        access_token: Option<String>,
        tenant_id: Option<String>,
        client_id: Option<String>,
        client_secret: Option<String>,
        authority_host: Option<String>,
        managed_identity: bool,
        imds_endpoint: Option<String>,
        timeout: f64,
        max_retries: u32,
    ) -> PyResult<AzureKeyVault> {
        #[cfg(feature = "azure-kv")]
        {
            use ciphervec::kms::azure::AzureCredentials;
            let credentials = if let Some(token) = access_token {
                AzureCredentials::access_token(token)
            } else if let Some(secret) = client_secret {
                let (Some(tenant), Some(client)) = (tenant_id, client_id.clone()) else {
                    return Err(errors::invalid(
                        "client_secret needs tenant_id and client_id",
                    ));
                };
                let credentials = AzureCredentials::client_secret(tenant, client, secret);
                match authority_host {
                    Some(host) => credentials.authority_host(host),
                    None => credentials,
                }
            } else if managed_identity || imds_endpoint.is_some() {
                let credentials = AzureCredentials::managed_identity(client_id);
                match imds_endpoint {
                    Some(url) => credentials.imds_endpoint(url),
                    None => credentials,
                }
            } else {
                AzureCredentials::from_env().map_err(errors::to_py)?
            };
            let client = ciphervec::kms::azure::AzureKeyVault::builder(key_id)
                .credentials(credentials)
                .timeout(timeout_of(timeout)?)
                .max_retries(max_retries)
                .build()
                .map_err(errors::to_py)?;
            let repr = format!("{client:?}");
            Ok(AzureKeyVault {
                client: Box::new(client),
                repr,
            })
        }
        #[cfg(not(feature = "azure-kv"))]
        {
            Err(missing("AzureKeyVault", "azure-kv"))
        }
    }

    /// A fresh 256-bit key for index `index_name`: `(key, wrapped)`, the 32 key bytes (pass
    /// to `Client.create_index`, then drop) and the wrapped key's text (store it in your
    /// configuration; it reveals nothing without the service).
    fn generate_key(&self, py: Python<'_>, index_name: &str) -> PyResult<(Py<PyBytes>, String)> {
        generate(py, &self.client, index_name)
    }

    /// The 32 key bytes of `wrapped`, which must have been generated for `index_name` (the
    /// service refuses it for another index: `KeyServiceError`).
    fn unwrap_key(&self, py: Python<'_>, wrapped: &str, index_name: &str) -> PyResult<Py<PyBytes>> {
        unwrap(py, &self.client, wrapped, index_name)
    }

    fn __repr__(&self) -> String {
        self.repr.clone()
    }
}

/// AWS KMS: `key_id` is a key id, ARN or alias. Credentials and region from the standard AWS
/// chain, or `access_key_id` + `secret_access_key`; `endpoint` for a VPC endpoint or a local
/// server.
#[pyclass(frozen, module = "ciphervec")]
pub(crate) struct AwsKms {
    client: Client,
    repr: String,
}

#[pymethods]
impl AwsKms {
    #[new]
    #[pyo3(signature = (key_id, *, region = None, endpoint = None, access_key_id = None,
                        secret_access_key = None, timeout = 10.0))]
    #[allow(unused_variables)]
    fn new(
        key_id: String,
        region: Option<String>,
        endpoint: Option<String>,
        access_key_id: Option<String>,
        secret_access_key: Option<String>,
        timeout: f64,
    ) -> PyResult<AwsKms> {
        #[cfg(feature = "aws-kms")]
        {
            let mut builder =
                ciphervec::kms::aws::AwsKms::builder(key_id).timeout(timeout_of(timeout)?);
            if let Some(region) = region {
                builder = builder.region(region);
            }
            if let Some(url) = endpoint {
                builder = builder.endpoint(url);
            }
            match (access_key_id, secret_access_key) {
                (Some(id), Some(secret)) => builder = builder.static_credentials(id, secret),
                (None, None) => {}
                _ => {
                    return Err(errors::invalid(
                        "give both access_key_id and secret_access_key, or neither",
                    ));
                }
            }
            let repr = format!("{builder:?}");
            let client = builder.build().map_err(errors::to_py)?;
            Ok(AwsKms {
                client: Box::new(client),
                repr,
            })
        }
        #[cfg(not(feature = "aws-kms"))]
        {
            Err(missing("AwsKms", "aws-kms"))
        }
    }

    /// A fresh 256-bit key for index `index_name`: `(key, wrapped)`, the 32 key bytes (pass
    /// to `Client.create_index`, then drop) and the wrapped key's text (store it in your
    /// configuration; it reveals nothing without the service).
    fn generate_key(&self, py: Python<'_>, index_name: &str) -> PyResult<(Py<PyBytes>, String)> {
        generate(py, &self.client, index_name)
    }

    /// The 32 key bytes of `wrapped`, which must have been generated for `index_name` (the
    /// service refuses it for another index: `KeyServiceError`).
    fn unwrap_key(&self, py: Python<'_>, wrapped: &str, index_name: &str) -> PyResult<Py<PyBytes>> {
        unwrap(py, &self.client, wrapped, index_name)
    }

    fn __repr__(&self) -> String {
        self.repr.clone()
    }
}

/// HashiCorp Vault or OpenBao transit: the server at `address`, authenticated by `token`,
/// transit key `key_name` (created with `derived=true`) on the engine mounted at `mount`.
#[pyclass(frozen, module = "ciphervec")]
pub(crate) struct VaultTransit {
    client: Client,
    repr: String,
}

#[pymethods]
impl VaultTransit {
    #[new]
    #[pyo3(signature = (address, token, key_name = "ciphervec", *, mount = "transit",
                        timeout = 10.0))]
    #[allow(unused_variables)]
    fn new(
        address: String,
        token: String,
        key_name: &str,
        mount: &str,
        timeout: f64,
    ) -> PyResult<VaultTransit> {
        #[cfg(feature = "vault")]
        {
            let repr = format!("VaultTransit(address={address:?}, key_name={key_name:?})");
            let client = ciphervec::kms::vault::VaultTransit::new(address, token, key_name)
                .mount(mount)
                .timeout(timeout_of(timeout)?);
            Ok(VaultTransit {
                client: Box::new(client),
                repr,
            })
        }
        #[cfg(not(feature = "vault"))]
        {
            Err(missing("VaultTransit", "vault"))
        }
    }

    /// A fresh 256-bit key for index `index_name`: `(key, wrapped)`, the 32 key bytes (pass
    /// to `Client.create_index`, then drop) and the wrapped key's text (store it in your
    /// configuration; it reveals nothing without the service).
    fn generate_key(&self, py: Python<'_>, index_name: &str) -> PyResult<(Py<PyBytes>, String)> {
        generate(py, &self.client, index_name)
    }

    /// The 32 key bytes of `wrapped`, which must have been generated for `index_name` (the
    /// service refuses it for another index: `KeyServiceError`).
    fn unwrap_key(&self, py: Python<'_>, wrapped: &str, index_name: &str) -> PyResult<Py<PyBytes>> {
        unwrap(py, &self.client, wrapped, index_name)
    }

    fn __repr__(&self) -> String {
        self.repr.clone()
    }
}
