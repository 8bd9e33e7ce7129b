//! `ciphervec`: the command-line tool over the ciphervec library. Keys never appear as a
//! command-line value: `--key-file FILE` or the `CIPHERVEC_KEY` environment variable.
//!
//! Exit codes: 0 ok, 1 other error, 2 usage, 3 wrong key, 4 corrupted, 5 locked,
//! 6 rolled back, 7 storage unavailable, 8 unsupported on-disk format, 9 permission denied.
//! Errors are one line on stderr.

mod commands;
mod error;
mod fastjson;
mod input;
mod keys;
mod serve;

use std::path::PathBuf;
use std::process::ExitCode;

use ciphervec::{Access, IndexType, Metric, StoragePrecision};
use clap::builder::{PossibleValuesParser, TypedValueParser as _};
use clap::{Parser, Subcommand, ValueEnum};

/// An encrypted vector index on disk, from the shell.
#[derive(Parser, Debug)]
#[command(name = "ciphervec", version, about, long_about = None, after_help = error::EXIT_CODES)]
pub(crate) struct Cli {
    /// The index key: a file holding it in base64 (as `openssl rand -base64 32` writes it;
    /// refused when group or others can read it). Without it, `CIPHERVEC_KEY` (base64 or
    /// 64 hex digits) is used.
    #[arg(long, global = true, value_name = "FILE")]
    key_file: Option<PathBuf>,

    /// The key comes through a KMS envelope, unwrapping the key in --wrapped-key-file (which
    /// `create` writes when it does not exist yet), bound to the index name. The service's key
    /// comes from the environment: `aws`: CIPHERVEC_KMS_KEY_ID (and AWS_ENDPOINT_URL, the
    /// standard AWS chain); `gcp`: CIPHERVEC_GCP_KMS_KEY (projects/.../cryptoKeys/...),
    /// credentials CIPHERVEC_GCP_ACCESS_TOKEN or Application Default Credentials
    /// (GOOGLE_APPLICATION_CREDENTIALS, gcloud, the metadata server); `azure`:
    /// CIPHERVEC_AZURE_KEY_ID (https://VAULT/keys/NAME[/VERSION]), credentials
    /// CIPHERVEC_AZURE_ACCESS_TOKEN, AZURE_TENANT_ID + AZURE_CLIENT_ID + AZURE_CLIENT_SECRET, or
    /// the managed identity; `vault`: VAULT_ADDR, VAULT_TOKEN and CIPHERVEC_VAULT_KEY (default
    /// `ciphervec`). Each needs a build with its feature (aws-kms, gcp-kms, azure-kv, vault).
    /// Example: `--kms gcp --wrapped-key-file docs.wrapped create db docs --dim 384`.
    #[arg(long, global = true, value_enum, requires = "wrapped_key_file")]
    kms: Option<KmsArg>,

    /// The KMS-wrapped key of the index (text, safe to store; see --kms, which it needs).
    #[arg(long, global = true, value_name = "FILE", requires = "kms")]
    wrapped_key_file: Option<PathBuf>,

    /// Open the index as this user, granted by `ciphervec user add`: --key-file (or
    /// CIPHERVEC_KEY) is then the user's key, not the index key. A read grant queries, gets,
    /// lists and verifies; its writes exit 9 (permission denied).
    /// Example: `--user analyst --key-file analyst.key query ./db docs --vector '[...]'`.
    #[arg(long, global = true, value_name = "USER")]
    user: Option<String>,

    /// Machine-readable output on stdout (one JSON document).
    #[arg(long, global = true)]
    json: bool,

    #[command(subcommand)]
    command: Command,
}

/// Key management services for `--kms`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum KmsArg {
    /// AWS KMS (feature `aws-kms`).
    Aws,
    /// Google Cloud KMS (feature `gcp-kms`).
    Gcp,
    /// Azure Key Vault or Managed HSM (feature `azure-kv`).
    Azure,
    /// HashiCorp Vault / OpenBao transit (feature `vault`).
    Vault,
}

impl KmsArg {
    /// The library's name of the service.
    pub(crate) fn provider(self) -> ciphervec::kms::KmsProvider {
        use ciphervec::kms::KmsProvider;
        match self {
            KmsArg::Aws => KmsProvider::Aws,
            KmsArg::Gcp => KmsProvider::Gcp,
            KmsArg::Azure => KmsProvider::Azure,
            KmsArg::Vault => KmsProvider::Vault,
        }
    }
}

/// Input formats of `import`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum FormatArg {
    /// One JSON object per line: {"id", "vector", "contents"?, "metadata"?}.
    Jsonl,
    /// TEXMEX .fvecs (ids are row numbers, 0-based, unless --ids).
    Fvecs,
    /// NumPy .npy, float32, 2-D, C order (ids are row numbers unless --ids).
    Npy,
    #[cfg_attr(
        feature = "parquet",
        doc = "Parquet: `id` and `vector` columns, optional `contents` and `metadata` (JSON text)."
    )]
    #[cfg_attr(
        not(feature = "parquet"),
        doc = "Parquet (needs a build with the `parquet` feature)."
    )]
    Parquet,
}

#[derive(Subcommand, Debug)]
pub(crate) enum Command {
    /// Writes a new random key, base64, to FILE (mode 0600; never overwrites) or stdout.
    ///
    /// Example: ciphervec keygen -o index_key.txt
    Keygen {
        /// Where to write the key.
        #[arg(short = 'o', long = "out")]
        out: Option<PathBuf>,
    },
    /// Creates an empty index.
    ///
    /// Example: ciphervec create ./db docs --dim 384 --type ivf_pq --pq-m 96 --key-file k.txt
    Create {
        /// The database (a directory, file:///path or memory://).
        db: String,
        /// The index name.
        name: String,
        /// Vector dimension.
        #[arg(long)]
        dim: usize,
        /// Index type (any case).
        #[arg(long = "type", default_value = "ivf_flat", ignore_case = true,
              value_parser = core_names::<IndexType>(IndexType::ALL.map(IndexType::name)))]
        index_type: IndexType,
        /// Distance metric (any case).
        #[arg(long, default_value = "euclidean", ignore_case = true,
              value_parser = core_names::<Metric>(Metric::ALL.map(Metric::name)))]
        metric: Metric,
        /// Subquantizers for ivf_pq only (default: dimension / 4, or the largest divisor of
        /// the dimension below it).
        #[arg(long = "pq-m")]
        pq_m: Option<usize>,
        /// Bits per dimension of ivf_pq's refine code: 6 (default) or 8, which decrypts
        /// fewer vectors per query when only codes are in RAM, for a quarter byte more per
        /// dimension.
        #[arg(long = "refine-bits")]
        refine_bits: Option<u8>,
        /// Index the items' contents for full-text (BM25) and hybrid queries.
        #[arg(long)]
        full_text: bool,
        /// A metadata string field to index for BM25 (repeat for several): text queries
        /// search it, listings cannot filter on it.
        #[arg(long = "text-field", value_name = "F")]
        text_fields: Vec<String>,
        /// How re-rank vectors are stored: float32 (default), float16 or int8.
        #[arg(long, default_value = "float32", ignore_case = true,
              value_parser = core_names::<StoragePrecision>(StoragePrecision::ALL.map(StoragePrecision::as_str)))]
        precision: StoragePrecision,
        /// The metadata schema as JSON: {"field": {"filterable": bool, "pattern": bool,
        /// "full_text": bool}}; fields it does not name are filterable.
        ///
        /// Example: --schema '{"title": {"pattern": true}, "raw": {"filterable": false}}'
        #[arg(long, value_name = "JSON")]
        schema: Option<String>,
        /// Never train, retrain or split lists by itself (by default an index trains in the
        /// background once it holds 10,000 items, and keeps its lists fitted as it grows).
        #[arg(long = "no-auto-train")]
        no_auto_train: bool,
    },
    /// Imports items from a file, one durable batch at a time; --resume continues after the
    /// last durable batch of an interrupted import. An item the index refuses (a wrong
    /// dimension, a non-finite value, a bad id) stops the import and is named by its position
    /// in the file; the batches before its own are imported.
    ///
    /// Example: ciphervec import ./db docs vectors.fvecs --batch 10000 --train --key-file k.txt
    Import {
        /// The database.
        db: String,
        /// The index name.
        name: String,
        /// The input file.
        file: PathBuf,
        /// The input format (default: from the file's extension).
        #[arg(long, value_enum)]
        format: Option<FormatArg>,
        /// Items per batch (each batch is durable before the next).
        #[arg(long, default_value_t = 10_000)]
        batch: usize,
        /// Train the index after importing.
        #[arg(long)]
        train: bool,
        /// Continue an interrupted import from its checkpoint.
        #[arg(long)]
        resume: bool,
        /// A file of ids, one per line, for .fvecs and .npy rows.
        #[arg(long)]
        ids: Option<PathBuf>,
    },
    /// Trains the index (k-means lists, codes).
    ///
    /// Example: ciphervec train ./db docs --key-file k.txt
    Train {
        /// The database.
        db: String,
        /// The index name.
        name: String,
    },
    /// Prints every id, sorted.
    ///
    /// Example: ciphervec list-ids ./db docs --key-file k.txt
    ListIds {
        /// The database.
        db: String,
        /// The index name.
        name: String,
    },
    /// Rewrites the index without dead entries.
    ///
    /// Example: ciphervec compact ./db docs --key-file k.txt
    Compact {
        /// The database.
        db: String,
        /// The index name.
        name: String,
    },
    /// Re-encrypts everything under a fresh data key.
    ///
    /// Example: ciphervec rotate-data-key ./db docs --key-file k.txt
    RotateDataKey {
        /// The database.
        db: String,
        /// The index name.
        name: String,
    },
    /// Checks every byte of the index: exit 0 when clean, 4 naming the first bad file, 6 when
    /// older than the anchor.
    ///
    /// Example: ciphervec verify ./db docs --anchor cvanchor1-...-42 --key-file k.txt
    Verify {
        /// The database.
        db: String,
        /// The index name.
        name: String,
        /// An anchor taken earlier (`info` prints the current one).
        #[arg(long)]
        anchor: Option<String>,
    },
    /// Nearest neighbours of one vector (--vector) or of each line of a file (--file, JSON
    /// arrays, one per line).
    ///
    /// Example: ciphervec query ./db docs --vector '[0.1, 0.2, 0.3]' -k 5 --json --key-file k.txt
    Query {
        /// The database.
        db: String,
        /// The index name.
        name: String,
        /// The query vector as a JSON array.
        #[arg(long, conflicts_with = "file", required_unless_present_any = ["file", "text"])]
        vector: Option<String>,
        /// A file of query vectors, one JSON array per line.
        #[arg(long)]
        file: Option<PathBuf>,
        /// Results per query.
        #[arg(short = 'k', long = "top-k", default_value_t = 10)]
        k: usize,
        /// A MongoDB-style metadata filter (JSON).
        #[arg(long)]
        filter: Option<String>,
        /// Fields to include: metadata, contents (comma-separated).
        #[arg(long, value_delimiter = ',')]
        include: Vec<String>,
        /// Words to match in the contents (BM25; the index needs --full-text): alone, a
        /// full-text query; with --vector or --file, a hybrid one. Hits then carry a score.
        #[arg(long)]
        text: Option<String>,
    },
    /// Lists items by metadata alone: every item --filter matches (all without it), in id
    /// order or by --order-by FIELD (--desc for largest first; missing values last); or
    /// with --text, the items BM25 finds in the full-text fields, best first, with scores.
    /// The metadata schema is enforced ($regex and $contains need a pattern field).
    ///
    /// Example: ciphervec query-metadata ./db docs --filter '{"team": "billing"}' --order-by date --desc -k 20 --key-file k.txt
    QueryMetadata {
        /// The database.
        db: String,
        /// The index name.
        name: String,
        /// A MongoDB-style metadata filter (JSON).
        #[arg(long)]
        filter: Option<String>,
        /// Words to rank by (BM25 over the full-text fields).
        #[arg(long)]
        text: Option<String>,
        /// A metadata field to order by (a dotted path).
        #[arg(long = "order-by", value_name = "FIELD")]
        order_by: Option<String>,
        /// Largest first (with --order-by).
        #[arg(long, requires = "order_by")]
        desc: bool,
        /// At most this many hits (default: every one).
        #[arg(short = 'k', long = "top-k")]
        k: Option<usize>,
    },
    /// Prints the stored items with these ids (metadata and contents).
    ///
    /// Example: ciphervec get ./db docs id1 id2 --key-file k.txt
    Get {
        /// The database.
        db: String,
        /// The index name.
        name: String,
        /// Ids.
        #[arg(required = true)]
        ids: Vec<String>,
    },
    /// Deletes items; prints how many existed.
    ///
    /// Example: ciphervec delete ./db docs id1 id2 --key-file k.txt
    Delete {
        /// The database.
        db: String,
        /// The index name.
        name: String,
        /// Ids.
        #[arg(required = true)]
        ids: Vec<String>,
    },
    /// Without a key: what the storage shows anyway. With one (and NAME): items, dimension,
    /// type, training, epoch and anchor.
    ///
    /// Example: ciphervec info ./db docs --key-file k.txt
    Info {
        /// The database.
        db: String,
        /// The index name.
        name: Option<String>,
    },
    /// Rotates the index key to the key in --new-key-file (and the data key with --data-key).
    ///
    /// Example: ciphervec rotate-key ./db docs --new-key-file new.txt --key-file old.txt
    RotateKey {
        /// The database.
        db: String,
        /// The index name.
        name: String,
        /// The new key's file.
        #[arg(long)]
        new_key_file: PathBuf,
        /// Replace the data key too (after a leak).
        #[arg(long)]
        data_key: bool,
    },
    /// Writes a consistent copy of the index into the directory DEST.
    ///
    /// Example: ciphervec backup ./db docs /backups/2026-11-30 --key-file k.txt
    Backup {
        /// The database.
        db: String,
        /// The index name.
        name: String,
        /// The target directory.
        dest: PathBuf,
    },
    /// Writes every item (id, vector, contents, metadata) as JSONL: PLAINTEXT, created 0600;
    /// or, with --to, re-encrypts into another index under --new-key-file.
    ///
    /// Example: ciphervec export ./db docs --out items.jsonl --key-file k.txt
    Export {
        /// The database.
        db: String,
        /// The index name.
        name: String,
        /// The JSONL file to create.
        #[arg(long, required_unless_present = "to")]
        out: Option<PathBuf>,
        /// Another database and index name to copy into, encrypted under --new-key-file.
        #[arg(long, num_args = 2, value_names = ["DB2", "NAME2"])]
        to: Vec<String>,
        /// The key of the --to index.
        #[arg(long, requires = "to")]
        new_key_file: Option<PathBuf>,
    },
    /// Serves CyborgDB's REST API v1 over the database, so that CyborgDB's SDKs (Python
    /// `cyborgdb` 0.18, JavaScript 0.14) and its cURL calls work against it. The service API
    /// key comes from --api-key-file or CIPHERVEC_API_KEY; index keys arrive with each
    /// request. Stops on SIGINT/SIGTERM after in-flight requests finish.
    ///
    /// Example: CIPHERVEC_API_KEY=$(openssl rand -hex 24) ciphervec serve ./db --listen 127.0.0.1:8000
    Serve(serve::ServeArgs),
    /// Manages who may open an index with a key of their own: grants (read, write or admin
    /// scope), revocation (which also rotates the data key) and the list of users. Needs the
    /// index key, or --user with an admin grant.
    ///
    /// Example: ciphervec user add ./db docs analyst --user-key-file analyst.key --access read --key-file k.txt
    #[command(subcommand)]
    User(UserCommand),
}

/// `ciphervec user ...`.
#[derive(Subcommand, Debug)]
pub(crate) enum UserCommand {
    /// Grants USER, who holds the key in --user-key-file (`ciphervec keygen` writes one),
    /// access to the index (granting again replaces the grant).
    ///
    /// Example: ciphervec user add ./db docs analyst --user-key-file analyst.key --access read
    Add {
        /// The database.
        db: String,
        /// The index name.
        name: String,
        /// The user name (stored only sealed).
        #[arg(value_name = "USER")]
        grantee: String,
        /// The user's key (base64, as `ciphervec keygen` writes it).
        #[arg(long, value_name = "FILE")]
        user_key_file: PathBuf,
        /// The scope.
        #[arg(long, default_value = "read",
              value_parser = core_names::<Access>(Access::ALL.map(Access::name)))]
        access: Access,
    },
    /// Lists the users and their scopes.
    ///
    /// Example: ciphervec user list ./db docs --key-file k.txt --json
    List {
        /// The database.
        db: String,
        /// The index name.
        name: String,
    },
    /// Revokes USER's grant and rotates the data key: its key opens nothing written after.
    ///
    /// Example: ciphervec user revoke ./db docs analyst --key-file k.txt
    Revoke {
        /// The database.
        db: String,
        /// The index name.
        name: String,
        /// The user name.
        #[arg(value_name = "USER")]
        grantee: String,
    },
}

/// A parser of the names the library gives a vocabulary (`IndexType::ALL`, `Metric::ALL`),
/// parsed by the library: `--help` and errors list exactly the names it accepts.
fn core_names<T>(
    names: impl IntoIterator<Item = &'static str>,
) -> impl clap::builder::TypedValueParser<Value = T>
where
    T: std::str::FromStr<Err = ciphervec::Error> + Clone + Send + Sync + 'static,
{
    PossibleValuesParser::new(names).try_map(|name| name.parse::<T>())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match commands::run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ciphervec: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}
