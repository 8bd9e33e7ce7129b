//! Microsoft Entra access tokens for Key Vault: a fixed token, an app's client secret
//! (OAuth 2.0 client-credentials grant at `{authority}/{tenant}/oauth2/v2.0/token`), or a
//! managed identity (the instance metadata service, IMDS, at
//! `http://169.254.169.254/metadata/identity/oauth2/token`).

use std::fmt;
use std::time::Duration;

use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::kms::rest::{self, Http, Payload, Request, TokenSource};

/// Microsoft Entra's public-cloud authority.
const DEFAULT_AUTHORITY: &str = "https://login.microsoftonline.com";
/// The instance metadata service's token endpoint.
const DEFAULT_IMDS: &str = "http://169.254.169.254/metadata/identity/oauth2/token";
/// The IMDS API version for managed-identity tokens.
const IMDS_API_VERSION: &str = "2018-02-01";

/// Where an [`AzureKeyVault`](super::AzureKeyVault) client gets its access tokens. Secrets
/// inside are wiped on drop and never printed by `Debug`.
pub struct AzureCredentials {
    source: Source,
    /// The resource tokens are asked for (set by the client from the vault's address).
    resource: String,
}

enum Source {
    AccessToken(Zeroizing<String>),
    ClientSecret {
        authority: String,
        tenant: String,
        client_id: String,
        secret: Zeroizing<String>,
    },
    ManagedIdentity {
        endpoint: String,
        client_id: Option<String>,
    },
}

impl fmt::Debug for AzureCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.source {
            Source::AccessToken(_) => f.write_str("AzureCredentials::AccessToken([redacted])"),
            Source::ClientSecret {
                authority,
                tenant,
                client_id,
                ..
            } => f
                .debug_struct("AzureCredentials::ClientSecret")
                .field("authority", authority)
                .field("tenant", tenant)
                .field("client_id", client_id)
                .field("secret", &"[redacted]")
                .finish(),
            Source::ManagedIdentity {
                endpoint,
                client_id,
            } => f
                .debug_struct("AzureCredentials::ManagedIdentity")
                .field("endpoint", endpoint)
                .field("client_id", client_id)
                .finish(),
        }
    }
}

impl AzureCredentials {
    fn new(source: Source) -> AzureCredentials {
        AzureCredentials {
            source,
            resource: String::new(),
        }
    }

    /// A fixed access token for the vault's resource, never refreshed.
    pub fn access_token(token: impl Into<String>) -> AzureCredentials {
        AzureCredentials::new(Source::AccessToken(Zeroizing::new(token.into())))
    }

    /// An Entra app registration's client secret in tenant `tenant` (a GUID or domain),
    /// at the public cloud's authority (see [`authority_host`](Self::authority_host)).
    pub fn client_secret(
        tenant: impl Into<String>,
        client_id: impl Into<String>,
        secret: impl Into<String>,
    ) -> AzureCredentials {
        AzureCredentials::new(Source::ClientSecret {
            authority: DEFAULT_AUTHORITY.to_owned(),
            tenant: tenant.into(),
            client_id: client_id.into(),
            secret: Zeroizing::new(secret.into()),
        })
    }

    /// The managed identity of this VM, scale set or AKS node: the system-assigned one, or
    /// the user-assigned one whose client id is given.
    pub fn managed_identity(client_id: Option<String>) -> AzureCredentials {
        AzureCredentials::new(Source::ManagedIdentity {
            endpoint: DEFAULT_IMDS.to_owned(),
            client_id,
        })
    }

    /// Another Entra authority for a client secret (a sovereign cloud, e.g.
    /// `https://login.microsoftonline.us`, or a local test server); ignored otherwise.
    pub fn authority_host(mut self, url: impl Into<String>) -> AzureCredentials {
        if let Source::ClientSecret { authority, .. } = &mut self.source {
            *authority = url.into().trim_end_matches('/').to_owned();
        }
        self
    }

    /// Another IMDS token endpoint for a managed identity (a local test server); ignored
    /// otherwise.
    pub fn imds_endpoint(mut self, url: impl Into<String>) -> AzureCredentials {
        if let Source::ManagedIdentity { endpoint, .. } = &mut self.source {
            *endpoint = url.into();
        }
        self
    }

    /// As `azure_identity`'s `DefaultAzureCredential` without the developer tools: a client
    /// secret when `AZURE_TENANT_ID`, `AZURE_CLIENT_ID` and `AZURE_CLIENT_SECRET` are all
    /// set (at `AZURE_AUTHORITY_HOST` when set), else the managed identity (user-assigned
    /// when `AZURE_CLIENT_ID` is set).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when only some of the client-secret variables are set.
    pub fn from_env() -> Result<AzureCredentials> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let secret = var("AZURE_CLIENT_SECRET").map(Zeroizing::new);
        match (var("AZURE_TENANT_ID"), var("AZURE_CLIENT_ID"), secret) {
            (Some(tenant), Some(client_id), Some(secret)) => {
                let credentials =
                    AzureCredentials::client_secret(tenant, client_id, secret.as_str());
                Ok(match var("AZURE_AUTHORITY_HOST") {
                    Some(host) => credentials.authority_host(host),
                    None => credentials,
                })
            }
            (_, _, Some(_)) => Err(Error::invalid_argument(
                "AZURE_CLIENT_SECRET needs AZURE_TENANT_ID and AZURE_CLIENT_ID",
            )),
            (_, client_id, None) => Ok(AzureCredentials::managed_identity(client_id)),
        }
    }

    /// These credentials asking for tokens of `resource`, checked.
    pub(super) fn for_resource(mut self, resource: String) -> Result<AzureCredentials> {
        let plain = |s: &str| {
            !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
        };
        match &self.source {
            Source::AccessToken(_) => {}
            Source::ClientSecret {
                authority,
                tenant,
                client_id,
                ..
            } => {
                if !plain(tenant) || !plain(client_id) {
                    return Err(Error::invalid_argument(
                        "Azure tenant and client ids are letters, digits, '-', '.' and '_'",
                    ));
                }
                rest::check_url(authority)?;
            }
            Source::ManagedIdentity {
                endpoint,
                client_id,
            } => {
                if client_id.as_deref().is_some_and(|id| !plain(id)) {
                    return Err(Error::invalid_argument(
                        "Azure client ids are letters, digits, '-', '.' and '_'",
                    ));
                }
                rest::check_metadata_url(endpoint)?;
            }
        }
        self.resource = resource.trim_end_matches('/').to_owned();
        Ok(self)
    }
}

impl TokenSource for AzureCredentials {
    fn fetch(&self, http: &Http) -> Result<(Zeroizing<String>, Option<Duration>)> {
        match &self.source {
            Source::AccessToken(token) => Ok((token.clone(), None)),
            Source::ClientSecret {
                authority,
                tenant,
                client_id,
                secret,
            } => {
                let url = format!("{authority}/{tenant}/oauth2/v2.0/token");
                let scope = format!("{}/.default", self.resource);
                let body = rest::form(&[
                    ("grant_type", "client_credentials"),
                    ("client_id", client_id),
                    ("client_secret", secret),
                    ("scope", &scope),
                ]);
                let request = Request {
                    what: "Microsoft Entra token",
                    url: &url,
                    headers: &[],
                    body: Payload::Form(body.as_bytes()),
                    secrets: &[secret],
                    metadata: false,
                };
                let reply = http.send(&request)?;
                if !(200..300).contains(&reply.status) {
                    return Err(rest::status_error(&request, &reply));
                }
                rest::token_answer(&reply, request.what)
            }
            Source::ManagedIdentity {
                endpoint,
                client_id,
            } => {
                let mut url = format!(
                    "{endpoint}?api-version={IMDS_API_VERSION}&resource={}",
                    rest::url_encode(&self.resource)
                );
                if let Some(id) = client_id {
                    url.push_str("&client_id=");
                    url.push_str(id);
                }
                let request = Request {
                    what: "managed identity token (IMDS)",
                    url: &url,
                    headers: &[("Metadata", "true")],
                    body: Payload::None,
                    secrets: &[],
                    metadata: true,
                };
                let reply = http.send(&request)?;
                if !(200..300).contains(&reply.status) {
                    return Err(rest::status_error(&request, &reply));
                }
                rest::token_answer(&reply, request.what)
            }
        }
    }

    fn refreshable(&self) -> bool {
        !matches!(self.source, Source::AccessToken(_))
    }
}
