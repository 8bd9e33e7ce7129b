//! Envelope encryption of an index key through a KMS, the production setup: the application
//! keeps only the *wrapped* key in its configuration and asks the KMS to unwrap it at start.
//!
//! Against the local servers of `scripts/kms_servers.sh start` (moto for AWS KMS, OpenBao for
//! Vault transit, the repository's Google Cloud KMS and Azure Key Vault servers):
//!
//! ```sh
//! scripts/kms_servers.sh start
//! features=aws-kms,vault,gcp-kms,azure-kv
//! cargo run --release --features $features --example kms_envelope -- vault
//! cargo run --release --features $features --example kms_envelope -- aws
//! cargo run --release --features $features --example kms_envelope -- gcp
//! cargo run --release --features $features --example kms_envelope -- azure
//! scripts/kms_servers.sh stop
//! ```
//!
//! Against real services, set the same variables as `target/kms-servers.env` to your Vault
//! address/token/key, or your KMS key id (credentials and region then come from the
//! standard AWS chain when no endpoint is set), your Cloud KMS key name with
//! `GOOGLE_APPLICATION_CREDENTIALS`, or your Key Vault key identifier with a token. (An
//! application reading its settings from its own environment would use
//! `ciphervec::kms::KmsSettings::from_env` instead, as the command line does.)

use std::collections::HashMap;

use ciphervec::kms::aws::AwsKms;
use ciphervec::kms::azure::AzureKeyVault;
use ciphervec::kms::gcp::GcpKms;
use ciphervec::kms::vault::VaultTransit;
use ciphervec::kms::{Kms, KmsEnvelope, WrappedKey};
use ciphervec::{Database, Error, IndexConfig, Item, KeyProvider, Query};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let which = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "vault".to_owned());
    let settings = settings()?;
    match which.as_str() {
        "vault" => run("Vault transit", || vault(&settings)),
        "aws" => run("AWS KMS", || aws(&settings)),
        "gcp" => run("Google Cloud KMS", || gcp(&settings)),
        "azure" => run("Azure Key Vault", || azure(&settings)),
        other => Err(format!("unknown KMS {other:?}: say vault, aws, gcp or azure").into()),
    }
}

/// The whole life of a KMS-protected index: first start, restart, key rotation.
fn run<K: Kms>(
    label: &str,
    make: impl Fn() -> Result<K, Error>,
) -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::temp_dir().join(format!("ciphervec-kms-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let config_file = dir.join("wrapped_key.txt");
    std::fs::create_dir_all(&dir)?;
    let db = Database::open(dir.join("data"))?;

    // 1. First start: the KMS generates the index key; only its wrapped form is stored.
    let (provider, key) = KmsEnvelope::generate(make()?, "articles")?;
    std::fs::write(&config_file, provider.wrapped_key().as_str())?;
    let index = db.create_index("articles", &key, IndexConfig::ivf_flat(3))?;
    drop(key); // the plaintext key is wiped; from now on only the KMS can produce it
    index.upsert([
        Item::new("a", vec![1.0, 0.0, 0.0]).with_contents("about apples"),
        Item::new("b", vec![0.0, 1.0, 0.0]).with_contents("about bananas"),
        Item::new("c", vec![0.0, 0.0, 1.0]).with_contents("about cherries"),
    ])?;
    drop(index);
    println!(
        "{label}: generated a data key, stored the wrapped form ({} chars) in {}",
        provider.wrapped_key().as_str().len(),
        config_file.display()
    );

    // 2. Restart: read the wrapped key from the configuration, let the KMS unwrap it.
    let wrapped = WrappedKey::new(std::fs::read_to_string(&config_file)?)?;
    let provider = KmsEnvelope::new(make()?, wrapped.clone(), "articles");
    let index = db.open_index_with("articles", &provider)?;
    let hits = index.query(&Query::new(vec![0.9, 0.1, 0.0]).top_k(1))?;
    println!(
        "{label}: reopened through the KMS; nearest to [0.9, 0.1, 0] is {:?}",
        hits[0].id
    );
    drop(index);

    // The wrapped key is bound to the index name: it does not unwrap for another index.
    let elsewhere = KmsEnvelope::new(make()?, wrapped, "other-index");
    match elsewhere.index_key() {
        Err(e) => println!("{label}: the same wrapped key for another index name: {e}"),
        Ok(_) => return Err("the KMS ignored the encryption context".into()),
    }

    // 3. Rotation: a new data key from the KMS re-wraps the index's key; nothing is rewritten.
    let (rotated, new_key) = KmsEnvelope::generate(make()?, "articles")?;
    db.rotate_index_key("articles", &provider.index_key()?, &new_key)?;
    std::fs::write(&config_file, rotated.wrapped_key().as_str())?;
    let old = db.open_index_with("articles", &provider).err();
    println!("{label}: rotated; the old wrapped key now gives: {old:?}");
    println!(
        "{label}: the new one opens {} items",
        db.open_index_with("articles", &rotated)?.len()
    );
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

fn vault(s: &HashMap<String, String>) -> Result<VaultTransit, Error> {
    Ok(VaultTransit::new(
        get(s, "CIPHERVEC_TEST_VAULT_ADDR")?,
        get(s, "CIPHERVEC_TEST_VAULT_TOKEN")?,
        get(s, "CIPHERVEC_TEST_VAULT_KEY")?,
    ))
}

fn aws(s: &HashMap<String, String>) -> Result<AwsKms, Error> {
    let mut builder = AwsKms::builder(get(s, "CIPHERVEC_TEST_AWS_KEY_ID")?);
    if let Ok(endpoint) = get(s, "CIPHERVEC_TEST_AWS_ENDPOINT") {
        // A local server: moto accepts any credentials.
        builder = builder
            .endpoint(endpoint)
            .region("us-east-1")
            .static_credentials("test", "test");
    }
    builder.build()
}

fn gcp(s: &HashMap<String, String>) -> Result<GcpKms, Error> {
    let mut builder = GcpKms::builder(get(s, "CIPHERVEC_TEST_GCP_KEY")?);
    if let Ok(endpoint) = get(s, "CIPHERVEC_TEST_GCP_ENDPOINT") {
        builder = builder.endpoint(endpoint);
    }
    // A service-account key file: its signed JWT is exchanged for a token at its token_uri.
    match get(s, "CIPHERVEC_TEST_GCP_SERVICE_ACCOUNT") {
        Ok(file) => builder.credentials_file(file).build(),
        Err(_) => builder.build(), // Application Default Credentials
    }
}

fn azure(s: &HashMap<String, String>) -> Result<AzureKeyVault, Error> {
    let builder = AzureKeyVault::builder(get(s, "CIPHERVEC_TEST_AZURE_KEY_ID")?);
    match get(s, "CIPHERVEC_TEST_AZURE_TOKEN") {
        Ok(token) => builder.access_token(token).build(),
        Err(_) => builder.build(), // AZURE_* client secret, else the managed identity
    }
}

fn get<'a>(s: &'a HashMap<String, String>, name: &str) -> Result<&'a str, Error> {
    s.get(name)
        .map(String::as_str)
        .ok_or_else(|| Error::InvalidArgument {
            reason: format!("{name} is not set (run scripts/kms_servers.sh start)"),
        })
}

/// Settings from the environment, over those in `target/kms-servers.env`.
fn settings() -> Result<HashMap<String, String>, std::io::Error> {
    let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/kms-servers.env");
    let mut settings: HashMap<String, String> = std::fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .filter_map(|line| line.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    settings.extend(std::env::vars().filter(|(k, _)| k.starts_with("CIPHERVEC_TEST_")));
    Ok(settings)
}
