//! AWS KMS envelope encryption (feature `aws-kms`): `GenerateDataKey` and `Decrypt` with the
//! index name as encryption context `{"ciphervec:index": <name>}`.
//!
//! The SDK is asynchronous; ciphervec's API is not. Each call runs the request to completion
//! on a small runtime owned by the client, driven from a short-lived thread so that calling
//! from inside another async runtime is fine.

use std::future::Future;
use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_kms::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::DataKeySpec;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use zeroize::Zeroizing;

use super::{Kms, WrappedKey, key_from_service};
use crate::crypto::key::IndexKey;
use crate::error::{Error, KeyServiceFailure, Result};

/// The encryption-context key that carries the index name.
const CONTEXT_KEY: &str = "ciphervec:index";

/// An AWS KMS client bound to one KMS key (id, ARN or alias). Needs `kms:GenerateDataKey`
/// to generate and `kms:Decrypt` to unwrap.
pub struct AwsKms {
    client: aws_sdk_kms::Client,
    key_id: String,
    runtime: Option<tokio::runtime::Runtime>,
}

/// Settings for [`AwsKms`]; anything left unset comes from the standard AWS chain
/// (environment, profile, instance role).
#[derive(Clone)]
pub struct AwsKmsBuilder {
    key_id: String,
    endpoint: Option<String>,
    region: Option<String>,
    credentials: Option<(String, Zeroizing<String>)>,
    timeout: Duration,
}

impl std::fmt::Debug for AwsKmsBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The secret access key is never printed (a derived Debug printed it).
        let credentials = self
            .credentials
            .as_ref()
            .map(|(id, _)| format!("{id} / [redacted]"));
        f.debug_struct("AwsKmsBuilder")
            .field("key_id", &self.key_id)
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("credentials", &credentials)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl AwsKms {
    /// A builder for a client of KMS key `key_id`.
    pub fn builder(key_id: impl Into<String>) -> AwsKmsBuilder {
        AwsKmsBuilder {
            key_id: key_id.into(),
            endpoint: None,
            region: None,
            credentials: None,
            timeout: Duration::from_secs(10),
        }
    }

    /// A client of KMS key `key_id` configured entirely from the standard AWS chain.
    ///
    /// # Errors
    /// [`Error::Io`] when no runtime can be started.
    pub fn from_env(key_id: impl Into<String>) -> Result<AwsKms> {
        AwsKms::builder(key_id).build()
    }

    /// Runs `future` to completion on this client's runtime.
    fn run<T: Send>(&self, future: impl Future<Output = T> + Send) -> Result<T> {
        let runtime = self.runtime.as_ref().expect("runtime lives until drop");
        run_on(runtime, future)
    }
}

impl Drop for AwsKms {
    fn drop(&mut self) {
        // Dropping a runtime blocks, which panics inside another runtime; this does not.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl AwsKmsBuilder {
    /// Sends requests to `url` instead of the region's AWS endpoint (a VPC endpoint, or a
    /// local server such as moto or LocalStack).
    pub fn endpoint(mut self, url: impl Into<String>) -> AwsKmsBuilder {
        self.endpoint = Some(url.into());
        self
    }

    /// The AWS region, e.g. `eu-west-1`.
    pub fn region(mut self, region: impl Into<String>) -> AwsKmsBuilder {
        self.region = Some(region.into());
        self
    }

    /// Fixed credentials instead of the standard chain.
    pub fn static_credentials(
        mut self,
        access_key_id: impl Into<String>,
        secret_access_key: impl Into<String>,
    ) -> AwsKmsBuilder {
        self.credentials = Some((
            access_key_id.into(),
            Zeroizing::new(secret_access_key.into()),
        ));
        self
    }

    /// The time allowed for one attempt (default 10 s); one retry follows a failed attempt.
    pub fn timeout(mut self, timeout: Duration) -> AwsKmsBuilder {
        self.timeout = timeout;
        self
    }

    /// The client.
    ///
    /// # Errors
    /// [`Error::Io`] when no runtime can be started; [`Error::InvalidArgument`] for an
    /// endpoint over plain http to a host that is not loopback.
    pub fn build(self) -> Result<AwsKms> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(self.timeout)
                    .operation_attempt_timeout(self.timeout)
                    .build(),
            )
            .retry_config(RetryConfig::standard().with_max_attempts(2));
        if let Some(url) = self.endpoint {
            super::check_transport(&url)?;
            loader = loader.endpoint_url(url);
        }
        if let Some(region) = self.region {
            loader = loader.region(aws_config::Region::new(region));
        }
        if let Some((id, secret)) = self.credentials {
            let credentials =
                aws_sdk_kms::config::Credentials::new(id, secret.as_str(), None, None, "ciphervec");
            loader = loader.credentials_provider(credentials);
        }
        let config = run_on(&runtime, loader.load())?;
        Ok(AwsKms {
            client: aws_sdk_kms::Client::new(&config),
            key_id: self.key_id,
            runtime: Some(runtime),
        })
    }
}

impl Kms for AwsKms {
    fn generate_key(&self, context: &str) -> Result<(IndexKey, WrappedKey)> {
        let request = self
            .client
            .generate_data_key()
            .key_id(&self.key_id)
            .key_spec(DataKeySpec::Aes256)
            .encryption_context(CONTEXT_KEY, context)
            .send();
        let mut output = self.run(request)?.map_err(service_error)?;
        let plaintext = Zeroizing::new(output.plaintext.take().map(Blob::into_inner));
        let wrapped = output.ciphertext_blob.take().map(Blob::into_inner);
        let (Some(plaintext), Some(wrapped)) = (plaintext.as_ref(), wrapped) else {
            return Err(Error::key_service(
                KeyServiceFailure::BadResponse,
                "GenerateDataKey returned no key",
            ));
        };
        let key = key_from_service(plaintext)?;
        Ok((key, WrappedKey::new(STANDARD.encode(wrapped))?))
    }

    fn unwrap_key(&self, wrapped: &WrappedKey, context: &str) -> Result<IndexKey> {
        let blob = STANDARD
            .decode(wrapped.as_str())
            .map_err(|_| Error::InvalidKey)?;
        let request = self
            .client
            .decrypt()
            .key_id(&self.key_id)
            .ciphertext_blob(Blob::new(blob))
            .encryption_context(CONTEXT_KEY, context)
            .send();
        let mut output = self.run(request)?.map_err(service_error)?;
        let plaintext = Zeroizing::new(output.plaintext.take().map(Blob::into_inner));
        match plaintext.as_ref() {
            Some(bytes) => key_from_service(bytes),
            None => Err(Error::key_service(
                KeyServiceFailure::BadResponse,
                "Decrypt returned no plaintext",
            )),
        }
    }
}

/// Runs `future` on `runtime` from a fresh thread (never inside the caller's own runtime).
fn run_on<T: Send>(
    runtime: &tokio::runtime::Runtime,
    future: impl Future<Output = T> + Send,
) -> Result<T> {
    std::thread::scope(|scope| {
        scope
            .spawn(|| runtime.block_on(future))
            .join()
            .map_err(|_| Error::key_service(KeyServiceFailure::BadResponse, "AWS SDK panicked"))
    })
}

/// Sorts an SDK failure into unreachable (never got an answer), refused (the service said
/// no: its error code and message) or a bad response, described without the raw response.
fn service_error<E, R>(error: SdkError<E, R>) -> Error
where
    E: std::error::Error + ProvideErrorMetadata + 'static,
    R: std::fmt::Debug + 'static,
{
    match &error {
        SdkError::ServiceError(service) => {
            let meta = service.err();
            let message = format!(
                "{}: {}",
                meta.code().unwrap_or("service error"),
                meta.message().unwrap_or("no message")
            );
            Error::key_service(KeyServiceFailure::Refused, message)
        }
        SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) => {
            Error::key_service(KeyServiceFailure::Unreachable, causes(&error))
        }
        _ => Error::key_service(KeyServiceFailure::BadResponse, causes(&error)),
    }
}

/// An error and its sources, each by its `Display`, joined by ": ".
fn causes(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    #[test]
    fn builder_debug_hides_the_secret_key() {
        let builder = super::AwsKms::builder("alias/k")
            .static_credentials("AKIAEXAMPLE", "wJalrXUtnFEMI-very-secret");
        let text = format!("{builder:?}");
        assert!(!text.contains("very-secret"), "{text}");
        assert!(text.contains("AKIAEXAMPLE"), "{text}");
    }
}
