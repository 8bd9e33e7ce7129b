//! Named key services from configuration: which provider, which key, and where its
//! credentials come from, read from the environment (the command line) or from JSON (a
//! server's KMS registry), and connected to a boxed [`Kms`]. The leaves (CLI, Python,
//! server) parse nothing themselves: they name a provider or hand over the JSON.
//!
//! Settings hold no secret: tokens and client secrets are read, when connecting, from the
//! environment variables the settings name (and credentials files from the paths they name),
//! so a configuration file can be shared and logged.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use serde_json::Value;

use super::Kms;
use crate::error::{Error, Result};

/// A key service ciphervec has a client for. Each is compiled in by its cargo feature
/// ([`KmsProvider::feature`]); the names parse in any case.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum KmsProvider {
    /// AWS KMS (`aws`, also `aws-kms`).
    Aws,
    /// HashiCorp Vault or OpenBao transit (`vault`, also `openbao`).
    Vault,
    /// Google Cloud KMS (`gcp`, also `gcp-kms`, `google`).
    Gcp,
    /// Azure Key Vault or Managed HSM (`azure`, also `azure-kv`, `azure-key-vault`).
    Azure,
}

impl KmsProvider {
    /// Every provider, in the order documentation lists them.
    pub const ALL: [KmsProvider; 4] = [
        KmsProvider::Aws,
        KmsProvider::Gcp,
        KmsProvider::Azure,
        KmsProvider::Vault,
    ];

    /// The cargo feature that compiles this provider's client.
    pub fn feature(self) -> &'static str {
        match self {
            KmsProvider::Aws => "aws-kms",
            KmsProvider::Vault => "vault",
            KmsProvider::Gcp => "gcp-kms",
            KmsProvider::Azure => "azure-kv",
        }
    }

    /// Whether this build has the provider's client.
    pub fn available(self) -> bool {
        match self {
            KmsProvider::Aws => cfg!(feature = "aws-kms"),
            KmsProvider::Vault => cfg!(feature = "vault"),
            KmsProvider::Gcp => cfg!(feature = "gcp-kms"),
            KmsProvider::Azure => cfg!(feature = "azure-kv"),
        }
    }

    /// The setting names a JSON description of this provider may use (beside `provider`).
    fn fields(self) -> &'static [&'static str] {
        match self {
            KmsProvider::Aws => &["key", "endpoint", "region", "timeout_secs"],
            KmsProvider::Vault => &["key", "endpoint", "mount", "token_env", "timeout_secs"],
            KmsProvider::Gcp => &[
                "key",
                "endpoint",
                "credentials_file",
                "metadata_server",
                "token_env",
                "timeout_secs",
                "max_retries",
            ],
            KmsProvider::Azure => &[
                "key",
                "tenant_id",
                "client_id",
                "client_secret_env",
                "authority_host",
                "managed_identity",
                "imds_endpoint",
                "token_env",
                "timeout_secs",
                "max_retries",
            ],
        }
    }
}

impl fmt::Display for KmsProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            KmsProvider::Aws => "aws",
            KmsProvider::Vault => "vault",
            KmsProvider::Gcp => "gcp",
            KmsProvider::Azure => "azure",
        })
    }
}

impl FromStr for KmsProvider {
    type Err = Error;

    fn from_str(text: &str) -> Result<KmsProvider> {
        match text.trim().to_ascii_lowercase().as_str() {
            "aws" | "aws-kms" => Ok(KmsProvider::Aws),
            "vault" | "openbao" => Ok(KmsProvider::Vault),
            "gcp" | "gcp-kms" | "google" => Ok(KmsProvider::Gcp),
            "azure" | "azure-kv" | "azure-key-vault" => Ok(KmsProvider::Azure),
            _ => Err(Error::invalid_argument(
                "unknown key service: say aws, gcp, azure or vault",
            )),
        }
    }
}

/// How to reach one key service. Built by [`KmsSettings::from_env`] or
/// [`KmsSettings::from_json`]; [`KmsSettings::connect`] makes the client.
///
/// The environment each provider reads (`from_env`):
///
/// | provider | key | optional |
/// |---|---|---|
/// | `aws` | `CIPHERVEC_KMS_KEY_ID` (id, ARN or alias) | `AWS_ENDPOINT_URL`; credentials and region from the AWS chain |
/// | `gcp` | `CIPHERVEC_GCP_KMS_KEY` (`projects/…/cryptoKeys/…`) | `CIPHERVEC_GCP_KMS_ENDPOINT`; `CIPHERVEC_GCP_ACCESS_TOKEN`, else Application Default Credentials (`GOOGLE_APPLICATION_CREDENTIALS`, gcloud's file, the metadata server at `GCE_METADATA_HOST`) |
/// | `azure` | `CIPHERVEC_AZURE_KEY_ID` (`https://<vault>/keys/<name>[/<version>]`) | `CIPHERVEC_AZURE_ACCESS_TOKEN`, else `AZURE_TENANT_ID` + `AZURE_CLIENT_ID` + `AZURE_CLIENT_SECRET` (`AZURE_AUTHORITY_HOST`), else the managed identity (`AZURE_CLIENT_ID` for a user-assigned one) |
/// | `vault` | `CIPHERVEC_VAULT_KEY` (default `ciphervec`) | `VAULT_ADDR` and `VAULT_TOKEN` (required), `CIPHERVEC_VAULT_MOUNT` |
///
/// The JSON form (`from_json`) is an object with `provider` and the provider's settings:
/// `key` for all (Vault: default `ciphervec`); `endpoint` (AWS, GCP, and Vault's address,
/// required there); `region` (AWS); `mount` (Vault); `credentials_file`, `metadata_server`
/// (GCP); `tenant_id`, `client_id`, `client_secret_env`, `authority_host`,
/// `managed_identity`, `imds_endpoint` (Azure); `token_env`, the name of an environment
/// variable holding a fixed token (Vault: default `VAULT_TOKEN`; GCP and Azure: an access
/// token); `timeout_secs` and `max_retries`. Secrets themselves are never in the JSON.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KmsSettings {
    provider: KmsProvider,
    key: String,
    endpoint: Option<String>,
    region: Option<String>,
    mount: Option<String>,
    credentials_file: Option<PathBuf>,
    metadata_server: Option<String>,
    tenant_id: Option<String>,
    client_id: Option<String>,
    client_secret_env: Option<String>,
    authority_host: Option<String>,
    managed_identity: bool,
    imds_endpoint: Option<String>,
    token_env: Option<String>,
    timeout: Option<Duration>,
    max_retries: Option<u32>,
}

impl KmsSettings {
    /// Settings of `provider` with key `key` and nothing else (credentials then come from
    /// each provider's default chain).
    pub fn new(provider: KmsProvider, key: impl Into<String>) -> KmsSettings {
        KmsSettings {
            provider,
            key: key.into(),
            endpoint: None,
            region: None,
            mount: None,
            credentials_file: None,
            metadata_server: None,
            tenant_id: None,
            client_id: None,
            client_secret_env: None,
            authority_host: None,
            managed_identity: false,
            imds_endpoint: None,
            token_env: None,
            timeout: None,
            max_retries: None,
        }
    }

    /// The settings of `provider` from the environment variables in the table above.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] naming a required variable that is not set.
    pub fn from_env(provider: KmsProvider) -> Result<KmsSettings> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let required = |name: &str| {
            var(name).ok_or_else(|| {
                Error::invalid_argument(format!("the {provider} key service needs {name}"))
            })
        };
        let mut settings = match provider {
            KmsProvider::Aws => {
                let mut s = KmsSettings::new(provider, required("CIPHERVEC_KMS_KEY_ID")?);
                s.endpoint = var("AWS_ENDPOINT_URL");
                s
            }
            KmsProvider::Vault => {
                let key = var("CIPHERVEC_VAULT_KEY").unwrap_or_else(|| "ciphervec".to_owned());
                let mut s = KmsSettings::new(provider, key);
                s.endpoint = Some(required("VAULT_ADDR")?);
                required("VAULT_TOKEN")?;
                s.token_env = Some("VAULT_TOKEN".to_owned());
                s.mount = var("CIPHERVEC_VAULT_MOUNT");
                s
            }
            KmsProvider::Gcp => {
                let mut s = KmsSettings::new(provider, required("CIPHERVEC_GCP_KMS_KEY")?);
                s.endpoint = var("CIPHERVEC_GCP_KMS_ENDPOINT");
                s.token_env = var("CIPHERVEC_GCP_ACCESS_TOKEN")
                    .map(|_| "CIPHERVEC_GCP_ACCESS_TOKEN".to_owned());
                s
            }
            KmsProvider::Azure => {
                let mut s = KmsSettings::new(provider, required("CIPHERVEC_AZURE_KEY_ID")?);
                s.token_env = var("CIPHERVEC_AZURE_ACCESS_TOKEN")
                    .map(|_| "CIPHERVEC_AZURE_ACCESS_TOKEN".to_owned());
                s
            }
        };
        settings.key = settings.key.trim().to_owned();
        Ok(settings)
    }

    /// The settings described by a JSON object (see the type's documentation). An unknown
    /// or misspelt setting is an error naming it, not silently ignored.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a missing or unknown provider, a missing key, a
    /// setting the provider does not take, or a value of the wrong type.
    pub fn from_json(value: &Value) -> Result<KmsSettings> {
        let Value::Object(fields) = value else {
            return Err(Error::invalid_argument(
                "key service settings must be a JSON object",
            ));
        };
        let provider: KmsProvider = fields
            .get("provider")
            .and_then(Value::as_str)
            .ok_or_else(|| Error::invalid_argument("key service settings need \"provider\""))?
            .parse()?;
        for name in fields.keys() {
            if name != "provider" && !provider.fields().contains(&name.as_str()) {
                return Err(Error::invalid_argument(format!(
                    "the {provider} key service has no setting \"{name}\""
                )));
            }
        }
        let text = |name: &str| -> Result<Option<String>> {
            match fields.get(name) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) if !s.trim().is_empty() => Ok(Some(s.trim().to_owned())),
                Some(_) => Err(Error::invalid_argument(format!(
                    "key service setting \"{name}\" must be a non-empty string"
                ))),
            }
        };
        let number = |name: &str| -> Result<Option<u64>> {
            match fields.get(name) {
                None | Some(Value::Null) => Ok(None),
                Some(v) => v.as_u64().map(Some).ok_or_else(|| {
                    Error::invalid_argument(format!(
                        "key service setting \"{name}\" must be a whole number"
                    ))
                }),
            }
        };
        let key = match (text("key")?, provider) {
            (Some(key), _) => key,
            (None, KmsProvider::Vault) => "ciphervec".to_owned(),
            (None, _) => {
                return Err(Error::invalid_argument(format!(
                    "the {provider} key service needs \"key\""
                )));
            }
        };
        let mut settings = KmsSettings::new(provider, key);
        settings.endpoint = text("endpoint")?;
        settings.region = text("region")?;
        settings.mount = text("mount")?;
        settings.credentials_file = text("credentials_file")?.map(PathBuf::from);
        settings.metadata_server = match fields.get("metadata_server") {
            Some(Value::Bool(true)) => Some(String::new()),
            Some(Value::Bool(false)) => None,
            _ => text("metadata_server")?,
        };
        settings.tenant_id = text("tenant_id")?;
        settings.client_id = text("client_id")?;
        settings.client_secret_env = text("client_secret_env")?;
        settings.authority_host = text("authority_host")?;
        settings.managed_identity = match fields.get("managed_identity") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(on)) => *on,
            Some(_) => {
                return Err(Error::invalid_argument(
                    "key service setting \"managed_identity\" must be true or false",
                ));
            }
        };
        settings.imds_endpoint = text("imds_endpoint")?;
        settings.token_env = text("token_env")?;
        settings.timeout = number("timeout_secs")?.map(Duration::from_secs);
        settings.max_retries =
            number("max_retries")?.map(|n| u32::try_from(n.min(10)).unwrap_or(10));
        if provider == KmsProvider::Vault && settings.endpoint.is_none() {
            return Err(Error::invalid_argument(
                "the vault key service needs \"endpoint\" (the server's address)",
            ));
        }
        if settings.client_secret_env.is_some()
            && (settings.tenant_id.is_none() || settings.client_id.is_none())
        {
            return Err(Error::invalid_argument(
                "\"client_secret_env\" needs \"tenant_id\" and \"client_id\"",
            ));
        }
        Ok(settings)
    }

    /// The provider.
    pub fn provider(&self) -> KmsProvider {
        self.provider
    }

    /// The key the service wraps with (id, resource name or key identifier).
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The client these settings describe. Reads the credentials (environment variables and
    /// files they name) now; sends nothing yet, except that AWS loads its configuration chain.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when this build lacks the provider's feature, a variable
    /// the settings name is not set, or the provider's builder refuses the settings (a
    /// malformed key name, plain http to a host that is not loopback, unreadable
    /// credentials); [`Error::Io`] when the AWS client's runtime cannot start.
    pub fn connect(&self) -> Result<Box<dyn Kms + Send + Sync>> {
        if !self.provider.available() {
            return Err(Error::invalid_argument(format!(
                "this build of ciphervec lacks the {} key service (cargo feature `{}`)",
                self.provider,
                self.provider.feature()
            )));
        }
        match self.provider {
            #[cfg(feature = "aws-kms")]
            KmsProvider::Aws => self.connect_aws(),
            #[cfg(feature = "vault")]
            KmsProvider::Vault => self.connect_vault(),
            #[cfg(feature = "gcp-kms")]
            KmsProvider::Gcp => self.connect_gcp(),
            #[cfg(feature = "azure-kv")]
            KmsProvider::Azure => self.connect_azure(),
            #[allow(unreachable_patterns)]
            _ => unreachable!("available() said the feature is compiled in"),
        }
    }

    /// The secret held by environment variable `name`, wiped when dropped.
    #[cfg_attr(
        not(any(feature = "vault", feature = "gcp-kms", feature = "azure-kv")),
        allow(dead_code)
    )]
    fn secret_from_env(&self, name: &str) -> Result<zeroize::Zeroizing<String>> {
        std::env::var(name)
            .ok()
            .map(zeroize::Zeroizing::new)
            .filter(|v| !v.trim().is_empty())
            .map(|mut v| {
                // Trimmed in place, so that no unwiped copy is left behind.
                let end = v.trim_end().len();
                v.truncate(end);
                let start = v.len() - v.trim_start().len();
                v.drain(..start);
                v
            })
            .ok_or_else(|| {
                Error::invalid_argument(format!(
                    "the {} key service needs {name} (named by its settings)",
                    self.provider
                ))
            })
    }

    #[cfg(feature = "aws-kms")]
    fn connect_aws(&self) -> Result<Box<dyn Kms + Send + Sync>> {
        let mut builder = super::aws::AwsKms::builder(&self.key);
        if let Some(url) = &self.endpoint {
            builder = builder.endpoint(url);
        }
        if let Some(region) = &self.region {
            builder = builder.region(region);
        }
        if let Some(timeout) = self.timeout {
            builder = builder.timeout(timeout);
        }
        Ok(Box::new(builder.build()?))
    }

    #[cfg(feature = "vault")]
    fn connect_vault(&self) -> Result<Box<dyn Kms + Send + Sync>> {
        let address = self.endpoint.as_deref().unwrap_or_default();
        super::check_transport(address)?;
        let token = self.secret_from_env(self.token_env.as_deref().unwrap_or("VAULT_TOKEN"))?;
        let mut client = super::vault::VaultTransit::new(address, token.as_str(), &self.key);
        if let Some(mount) = &self.mount {
            client = client.mount(mount);
        }
        if let Some(timeout) = self.timeout {
            client = client.timeout(timeout);
        }
        Ok(Box::new(client))
    }

    #[cfg(feature = "gcp-kms")]
    fn connect_gcp(&self) -> Result<Box<dyn Kms + Send + Sync>> {
        let mut builder = super::gcp::GcpKms::builder(&self.key);
        if let Some(url) = &self.endpoint {
            builder = builder.endpoint(url);
        }
        if let Some(name) = &self.token_env {
            builder = builder.access_token(self.secret_from_env(name)?.as_str());
        } else if let Some(path) = &self.credentials_file {
            builder = builder.credentials_file(path);
        } else if let Some(url) = &self.metadata_server {
            builder = builder.metadata_server((!url.is_empty()).then(|| url.clone()));
        }
        if let Some(timeout) = self.timeout {
            builder = builder.timeout(timeout);
        }
        if let Some(retries) = self.max_retries {
            builder = builder.max_retries(retries);
        }
        Ok(Box::new(builder.build()?))
    }

    #[cfg(feature = "azure-kv")]
    fn connect_azure(&self) -> Result<Box<dyn Kms + Send + Sync>> {
        use super::azure::{AzureCredentials, AzureKeyVault};
        let credentials = if let Some(name) = &self.token_env {
            AzureCredentials::access_token(self.secret_from_env(name)?.as_str())
        } else if let Some(name) = &self.client_secret_env {
            let tenant = self.tenant_id.as_deref().unwrap_or_default();
            let client = self.client_id.as_deref().unwrap_or_default();
            let secret = self.secret_from_env(name)?;
            let credentials = AzureCredentials::client_secret(tenant, client, secret.as_str());
            match &self.authority_host {
                Some(host) => credentials.authority_host(host),
                None => credentials,
            }
        } else if self.managed_identity || self.imds_endpoint.is_some() {
            let credentials = AzureCredentials::managed_identity(self.client_id.clone());
            match &self.imds_endpoint {
                Some(url) => credentials.imds_endpoint(url),
                None => credentials,
            }
        } else {
            AzureCredentials::from_env()?
        };
        let mut builder = AzureKeyVault::builder(&self.key).credentials(credentials);
        if let Some(timeout) = self.timeout {
            builder = builder.timeout(timeout);
        }
        if let Some(retries) = self.max_retries {
            builder = builder.max_retries(retries);
        }
        Ok(Box::new(builder.build()?))
    }
}

/// Named key services, as a server's configuration lists them (CyborgDB's `kms_name`): a
/// JSON object from names to [`KmsSettings`] objects.
///
/// ```
/// use ciphervec::kms::{KmsProvider, KmsRegistry};
/// let registry = KmsRegistry::from_json(&serde_json::json!({
///     "prod": {"provider": "gcp",
///              "key": "projects/acme/locations/global/keyRings/search/cryptoKeys/ciphervec"},
///     "eu": {"provider": "azure", "key": "https://acme-eu.vault.azure.net/keys/ciphervec",
///            "managed_identity": true},
/// }))?;
/// assert_eq!(registry.get("prod")?.provider(), KmsProvider::Gcp);
/// assert!(registry.get("staging").is_err());
/// # Ok::<(), ciphervec::Error>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KmsRegistry(BTreeMap<String, KmsSettings>);

impl KmsRegistry {
    /// The registry described by a JSON object of named settings.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when it is not an object, or as
    /// [`KmsSettings::from_json`] for an entry (the message names the entry).
    pub fn from_json(value: &Value) -> Result<KmsRegistry> {
        let Value::Object(entries) = value else {
            return Err(Error::invalid_argument(
                "a key service registry must be a JSON object of named settings",
            ));
        };
        let mut registry = BTreeMap::new();
        for (name, settings) in entries {
            let settings = KmsSettings::from_json(settings).map_err(|e| match e {
                Error::InvalidArgument { reason } => {
                    Error::invalid_argument(format!("key service \"{name}\": {reason}"))
                }
                other => other,
            })?;
            registry.insert(name.clone(), settings);
        }
        Ok(KmsRegistry(registry))
    }

    /// The settings named `name`.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when no entry has that name.
    pub fn get(&self, name: &str) -> Result<&KmsSettings> {
        self.0
            .get(name)
            .ok_or_else(|| Error::invalid_argument(format!("no key service named \"{name}\"")))
    }

    /// The names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn provider_names_parse_and_print() {
        for provider in KmsProvider::ALL {
            assert_eq!(
                provider.to_string().parse::<KmsProvider>().unwrap(),
                provider
            );
            assert_eq!(provider.feature().parse::<KmsProvider>().unwrap(), provider);
        }
        assert_eq!("Azure".parse::<KmsProvider>().unwrap(), KmsProvider::Azure);
        assert!("ibm".parse::<KmsProvider>().is_err());
    }

    #[test]
    fn json_settings_are_checked() {
        let gcp = KmsSettings::from_json(&json!({
            "provider": "gcp", "key": "projects/p/locations/l/keyRings/r/cryptoKeys/k",
            "credentials_file": "/etc/sa.json", "timeout_secs": 5
        }))
        .unwrap();
        assert_eq!(gcp.provider(), KmsProvider::Gcp);
        assert_eq!(gcp.timeout, Some(Duration::from_secs(5)));
        for (bad, says) in [
            (json!("gcp"), "JSON object"),
            (json!({"key": "k"}), "provider"),
            (
                json!({"provider": "ibm", "key": "k"}),
                "unknown key service",
            ),
            (json!({"provider": "gcp"}), "\"key\""),
            (
                json!({"provider": "gcp", "key": "k", "region": "x"}),
                "\"region\"",
            ),
            (
                json!({"provider": "azure", "key": "k", "client_secret": "x"}),
                "\"client_secret\"",
            ),
            (
                json!({"provider": "azure", "key": "k", "client_secret_env": "S"}),
                "tenant_id",
            ),
            (json!({"provider": "vault", "key": "k"}), "endpoint"),
            (json!({"provider": "aws", "key": 7}), "non-empty string"),
            (
                json!({"provider": "aws", "key": "k", "timeout_secs": "5"}),
                "whole number",
            ),
        ] {
            match KmsSettings::from_json(&bad) {
                Err(Error::InvalidArgument { reason }) => {
                    assert!(reason.contains(says), "{bad}: {reason}");
                }
                other => panic!("{bad}: {other:?}"),
            }
        }
    }

    #[test]
    fn registry_names_its_entries() {
        let registry = KmsRegistry::from_json(&json!({
            "a": {"provider": "aws", "key": "alias/x", "region": "eu-west-1"},
            "v": {"provider": "vault", "endpoint": "https://vault.internal:8200"},
        }))
        .unwrap();
        assert_eq!(registry.names().collect::<Vec<_>>(), ["a", "v"]);
        assert_eq!(registry.get("v").unwrap().key(), "ciphervec");
        let error = KmsRegistry::from_json(&json!({"broken": {"provider": "gcp"}})).unwrap_err();
        assert!(error.to_string().contains("broken"), "{error}");
    }

    #[test]
    fn a_missing_feature_or_variable_is_an_error_not_a_panic() {
        for provider in KmsProvider::ALL {
            let settings = KmsSettings {
                token_env: Some("CIPHERVEC_TEST_SURELY_UNSET_VARIABLE".to_owned()),
                endpoint: Some("http://127.0.0.1:1".to_owned()),
                ..KmsSettings::new(provider, "projects/p/locations/l/keyRings/r/cryptoKeys/k")
            };
            if provider == KmsProvider::Aws && provider.available() {
                continue; // needs no token; connecting loads the AWS chain
            }
            match settings.connect() {
                Err(Error::InvalidArgument { reason }) => {
                    let names_it = reason.contains(provider.feature())
                        || reason.contains("CIPHERVEC_TEST_SURELY_UNSET_VARIABLE");
                    assert!(names_it, "{provider}: {reason}");
                }
                Err(other) => panic!("{provider}: {other}"),
                Ok(_) => panic!("{provider}: connected without a token"),
            }
        }
    }
}
