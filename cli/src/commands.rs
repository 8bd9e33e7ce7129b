//! What each subcommand does, through the library's public API only.

use std::io::{IsTerminal as _, Write as _};
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use ciphervec::{
    Anchor, Database, DatabaseOptions, EncryptedIndex, Hit, Include, IndexConfig, IndexKey,
    IndexType, Item, MetadataQuery, MetadataSchema, Order, Query,
};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::{Value, json};

use crate::error::CliError;
use crate::input::Total;
use crate::{Cli, Command, FormatArg, UserCommand, input, keys};

/// The database at `db` for a command that reads or changes what it holds: a local folder
/// that does not exist is an error, where opening it would create an empty one (so that a
/// mistyped path in `info` listed nothing and left a new folder behind). Only `create`, and
/// the targets of `backup` and `export --to`, make a database.
fn existing_database(db: &str) -> Result<Database, CliError> {
    let options = DatabaseOptions::from_env()?.create_if_missing(false);
    Database::open_url_with(db, options).map_err(|e| match e {
        ciphervec::Error::Io(io) if io.kind() == std::io::ErrorKind::NotFound => {
            CliError::Other(format!("no database at {db}"))
        }
        e => e.into(),
    })
}

/// The database at `db`, created if missing, with the options the `CIPHERVEC_*`
/// environment variables set.
pub(crate) fn database(db: &str) -> Result<Database, CliError> {
    Ok(Database::open_url_with(db, DatabaseOptions::from_env()?)?)
}

/// Runs the command `cli` names.
pub(crate) fn run(cli: &Cli) -> Result<(), CliError> {
    let key = |name: &str| keys::for_index(cli, name, false);
    // With --user, the key is the user's and every open goes through its grant (a read
    // grant's handle refuses writes as `PermissionDenied`, exit 9).
    let open = |db: &str, name: &str| -> Result<EncryptedIndex, CliError> {
        let database = existing_database(db)?;
        Ok(match &cli.user {
            Some(user) => database.open_index_as(name, user, &key(name)?)?,
            None => database.open_index(name, &key(name)?)?,
        })
    };
    let open_read = |db: &str, name: &str| -> Result<EncryptedIndex, CliError> {
        let database = existing_database(db)?;
        Ok(match &cli.user {
            Some(user) => database.open_index_as(name, user, &key(name)?)?,
            None => database.open_index_read_only(name, &key(name)?)?,
        })
    };
    if cli.user.is_some()
        && matches!(
            cli.command,
            Command::Create { .. } | Command::RotateKey { .. } | Command::Serve(_)
        )
    {
        return Err(CliError::Usage(
            "--user opens an existing index; create, rotate-key and serve need the index key"
                .into(),
        ));
    }
    match &cli.command {
        Command::User(action) => user_command(cli, action, &open),
        Command::Keygen { out } => keygen(out.as_deref()),
        Command::Serve(args) => crate::serve::serve(args),
        Command::Create {
            db,
            name,
            dim,
            index_type,
            metric,
            pq_m,
            refine_bits,
            full_text,
            text_fields,
            precision,
            schema,
            no_auto_train,
        } => {
            let mut config = IndexConfig::new(*dim, *index_type)
                .metric(*metric)
                .full_text(*full_text)
                .auto_train(!*no_auto_train);
            // The library refuses subquantizers for a type without codes.
            if let Some(m) = pq_m {
                config = config.n_subquantizers(*m);
            }
            if let Some(bits) = refine_bits {
                config = config.refine_bits(*bits);
            }
            if let Some(schema) = schema {
                let json: Value = serde_json::from_str(schema)
                    .map_err(|_| CliError::Usage("--schema is not JSON".into()))?;
                config = config.metadata_schema(MetadataSchema::from_json(&json)?);
            }
            let fields: Vec<&str> = text_fields.iter().map(String::as_str).collect();
            config = config.text_fields(&fields).storage_precision(*precision);
            let database = database(db)?;
            database.create_index(name, &keys::for_index(cli, name, true)?, config)?;
            say(
                cli,
                &json!({"created": name}),
                &format!("created index {name}"),
            );
            Ok(())
        }
        Command::Import {
            db,
            name,
            file,
            format,
            batch,
            train,
            resume,
            ids,
        } => {
            let index = open(db, name)?;
            let format = match format {
                Some(f) => *f,
                None => input::format_of(file)?,
            };
            let options = ImportOptions {
                db,
                name,
                batch: (*batch).max(1),
                resume: *resume,
            };
            let n = import(&index, file, format, ids.as_deref(), &options)?;
            if *train {
                index.train()?;
            }
            // A training the import started in the background would die with this process
            // (and start over at the next write): it finishes first.
            if index.is_training() {
                if !cli.json {
                    eprintln!("training in the background; waiting for it to finish");
                }
                while index.is_training() {
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
            }
            say(
                cli,
                &json!({"imported": n, "items": index.len(), "trained": index.is_trained()}),
                &format!("imported {n} items; the index holds {}", index.len()),
            );
            Ok(())
        }
        Command::Train { db, name } => {
            let index = open(db, name)?;
            index.train()?;
            say(
                cli,
                &json!({"trained": true, "lists": index.n_lists()}),
                &format!("trained: {} lists", index.n_lists()),
            );
            Ok(())
        }
        Command::ListIds { db, name } => {
            let ids = open(db, name)?.list_ids()?;
            if cli.json {
                println!("{}", Value::from(ids));
            } else {
                let mut out = std::io::stdout().lock();
                for id in ids {
                    writeln!(out, "{id}").map_err(stdout_error)?;
                }
            }
            Ok(())
        }
        Command::Compact { db, name } => {
            open(db, name)?.compact()?;
            say(cli, &json!({"compacted": true}), "compacted");
            Ok(())
        }
        Command::RotateDataKey { db, name } => {
            open(db, name)?.rotate_data_key()?;
            say(cli, &json!({"rotated": "data key"}), "data key rotated");
            Ok(())
        }
        Command::Verify { db, name, anchor } => {
            let index = open_read(db, name)?;
            let report = index.verify()?;
            if let Some(text) = anchor {
                index.check_anchor(&text.parse::<Anchor>()?)?;
            }
            say(
                cli,
                &json!({"ok": true, "segments": report.segments, "records": report.records,
                        "bytes": report.bytes}),
                &format!(
                    "ok: {} segments, {} records, {} bytes checked",
                    report.segments, report.records, report.bytes
                ),
            );
            Ok(())
        }
        Command::Query {
            db,
            name,
            vector,
            file,
            k,
            filter,
            include,
            text,
        } => {
            let index = open_read(db, name)?;
            let options = QueryOptions {
                k: *k,
                filter: filter.as_deref(),
                include,
                text: text.as_deref(),
            };
            query(cli, &index, vector.as_deref(), file.as_deref(), &options)
        }
        Command::QueryMetadata {
            db,
            name,
            filter,
            text,
            order_by,
            desc,
            k,
        } => {
            let index = open_read(db, name)?;
            let mut q = MetadataQuery::new();
            if let Some(f) = filter {
                let f: Value = serde_json::from_str(f)
                    .map_err(|_| CliError::Usage("--filter is not JSON".into()))?;
                q = q.filter(f);
            }
            if let Some(t) = text {
                q = q.text(t);
            }
            if let Some(field) = order_by {
                q = q.order_by(
                    field,
                    if *desc {
                        Order::Descending
                    } else {
                        Order::Ascending
                    },
                );
            }
            if let Some(k) = k {
                q = q.top_k(*k);
            }
            let hits = index.query_metadata(&q)?;
            if cli.json {
                let docs: Vec<Value> = hits
                    .iter()
                    .map(|h| match h.score {
                        Some(s) => json!({"id": h.id, "score": s}),
                        None => json!({"id": h.id}),
                    })
                    .collect();
                println!("{}", Value::from(docs));
            } else {
                let mut out = std::io::stdout().lock();
                for h in &hits {
                    match h.score {
                        Some(s) => writeln!(out, "{}\t{s}", h.id),
                        None => writeln!(out, "{}", h.id),
                    }
                    .map_err(stdout_error)?;
                }
            }
            Ok(())
        }
        Command::Get { db, name, ids } => {
            let index = open_read(db, name)?;
            let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
            let records = index.get(&refs, Include::METADATA | Include::CONTENTS)?;
            let docs: Vec<Value> = records
                .iter()
                .map(|r| fields_json(&r.id, r.metadata.as_ref(), r.contents.as_deref()))
                .collect();
            if cli.json {
                println!("{}", Value::from(docs));
            } else {
                for d in docs {
                    println!("{d}");
                }
            }
            Ok(())
        }
        Command::Delete { db, name, ids } => {
            let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
            let n = open(db, name)?.delete(&refs)?;
            say(cli, &json!({"deleted": n}), &format!("deleted {n}"));
            Ok(())
        }
        Command::Info { db, name } => info(cli, db, name.as_deref()),
        Command::RotateKey {
            db,
            name,
            new_key_file,
            data_key,
        } => {
            let new = keys::key_from_file(new_key_file)?;
            let database = existing_database(db)?;
            if *data_key {
                database.rotate_keys(name, &key(name)?, &new)?;
            } else {
                database.rotate_index_key(name, &key(name)?, &new)?;
            }
            say(
                cli,
                &json!({"rotated": "index key", "data_key": data_key}),
                "key rotated",
            );
            Ok(())
        }
        Command::Backup { db, name, dest } => {
            let index = open_read(db, name)?;
            index.backup_to(dest)?;
            say(
                cli,
                &json!({"backup": dest, "anchor": index.anchor().to_string()}),
                &format!("backed up to {}", dest.display()),
            );
            Ok(())
        }
        Command::Export {
            db,
            name,
            out,
            to,
            new_key_file,
        } => {
            let index = open_read(db, name)?;
            match (out, to.as_slice()) {
                (Some(out), _) => export_jsonl(cli, &index, out),
                (None, [db2, name2]) => {
                    let file = new_key_file
                        .as_deref()
                        .ok_or_else(|| CliError::Usage("--to needs --new-key-file".into()))?;
                    export_to(cli, &index, db2, name2, &keys::key_from_file(file)?)
                }
                _ => Err(CliError::Usage("give --out FILE or --to DB2 NAME2".into())),
            }
        }
    }
}

/// `ciphervec user add|list|revoke`: through the index key, or an admin's `--user`.
fn user_command(
    cli: &Cli,
    action: &UserCommand,
    open: &dyn Fn(&str, &str) -> Result<EncryptedIndex, CliError>,
) -> Result<(), CliError> {
    match action {
        UserCommand::Add {
            db,
            name,
            grantee,
            user_key_file,
            access,
        } => {
            let user_key = keys::key_from_file(user_key_file)?;
            open(db, name)?.grant(grantee, &user_key, *access)?;
            say(
                cli,
                &json!({"granted": grantee, "access": access.name()}),
                &format!("granted {grantee} {access} access"),
            );
        }
        UserCommand::List { db, name } => {
            let users = open(db, name)?.users()?;
            if cli.json {
                let docs: Vec<Value> = users
                    .iter()
                    .map(|(u, a)| json!({"user": u, "access": a.name()}))
                    .collect();
                println!("{}", Value::from(docs));
            } else {
                let mut out = std::io::stdout().lock();
                for (u, a) in &users {
                    writeln!(out, "{u}\t{a}").map_err(stdout_error)?;
                }
            }
        }
        UserCommand::Revoke { db, name, grantee } => {
            open(db, name)?.revoke(grantee)?;
            say(
                cli,
                &json!({"revoked": grantee}),
                &format!("revoked {grantee}; the data key was rotated"),
            );
        }
    }
    Ok(())
}

/// Prints `doc` with `--json`, else `text`.
fn say(cli: &Cli, doc: &Value, text: &str) {
    if cli.json {
        println!("{doc}");
    } else {
        println!("{text}");
    }
}

fn stdout_error(e: std::io::Error) -> CliError {
    CliError::Other(format!("stdout: {e}"))
}

fn keygen(out: Option<&Path>) -> Result<(), CliError> {
    let key = IndexKey::generate();
    match out {
        Some(path) => {
            keys::write_key_file(path, &key)?;
            eprintln!(
                "wrote a new key to {} (mode 0600); keep a copy apart from the data",
                path.display()
            );
        }
        None => println!("{}", key.to_base64().as_str()),
    }
    Ok(())
}

/// Where and how an import runs.
struct ImportOptions<'a> {
    db: &'a str,
    name: &'a str,
    batch: usize,
    resume: bool,
}

/// The checkpoint of an import: rows made durable so far. It names the database, the index
/// and the input's length, never an item.
fn checkpoint_path(file: &Path) -> PathBuf {
    let mut name = file.file_name().unwrap_or_default().to_os_string();
    name.push(".ciphervec-import");
    file.with_file_name(name)
}

/// The largest checkpoint read (one is under 1 KiB): anything else at its name is ignored.
const MAX_CHECKPOINT_LEN: u64 = 64 << 10;

fn read_checkpoint(path: &Path, db: &str, name: &str, input_len: u64) -> Option<u64> {
    use std::io::Read as _;
    // Only a regular file (not a link, a FIFO or a device), and only its first bytes.
    if !std::fs::symlink_metadata(path).ok()?.is_file() {
        return None;
    }
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .ok()?
        .take(MAX_CHECKPOINT_LEN + 1)
        .read_to_end(&mut bytes)
        .ok()?;
    if bytes.len() as u64 > MAX_CHECKPOINT_LEN {
        return None;
    }
    let doc: Value = serde_json::from_slice(&bytes).ok()?;
    (doc["db"] == db && doc["index"] == name && doc["input_len"] == input_len)
        .then(|| doc["rows"].as_u64())
        .flatten()
}

/// Replaces the checkpoint atomically (temp file, rename), without syncing it: it is written
/// after the batch's commit is durable, so it never claims more than the index holds, and one
/// that is older or lost (a power cut, not `kill -9`, which keeps written pages) only makes a
/// resume upsert some rows again, which replaces them by id: no duplicate, nothing lost. Its
/// sync was an extra flush per batch (import from `.fvecs` to disk measured 0.77x of `upsert`
/// with it, against 0.97x in memory).
fn write_checkpoint(path: &Path, doc: &Value) -> Result<(), CliError> {
    // `<checkpoint>.tmp`, never a name of the user's (`<input>.tmp` was): a leftover there,
    // or a planted link, is unlinked and the file created anew (0600), never written
    // through or truncated.
    let mut tmp = path.as_os_str().to_os_string();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let write = || -> std::io::Result<()> {
        match std::fs::remove_file(&tmp) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt as _;
            options.mode(0o600);
        }
        let mut f = options.open(&tmp)?;
        f.write_all(doc.to_string().as_bytes())?;
        std::fs::rename(&tmp, path)
    };
    write().map_err(|e| CliError::Other(format!("checkpoint {}: {e}", path.display())))
}

/// Imports `file` in batches, each durable (and checkpointed) before the next; returns how
/// many items this run imported.
fn import(
    index: &EncryptedIndex,
    file: &Path,
    format: FormatArg,
    ids: Option<&Path>,
    options: &ImportOptions<'_>,
) -> Result<u64, CliError> {
    let input_len = std::fs::metadata(file)
        .map_err(|e| CliError::Other(format!("{}: {e}", file.display())))?
        .len();
    let checkpoint = checkpoint_path(file);
    let done = if options.resume {
        read_checkpoint(&checkpoint, options.db, options.name, input_len).unwrap_or(0)
    } else {
        0
    };
    let input = input::open(file, format, ids)?;
    let bar = progress(input.total);
    bar.set_position(done);
    let mut items = input.items.skip(done as usize);
    let mut rows = done;
    let batch_len = options.batch;
    // Reading and parsing the next batch overlaps the upsert of this one: a reader thread
    // hands over whole batches through a channel of two.
    std::thread::scope(|scope| -> Result<(), CliError> {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Result<Vec<Item>, CliError>>(2);
        scope.spawn(move || {
            loop {
                let batch: Result<Vec<Item>, CliError> = items.by_ref().take(batch_len).collect();
                let last = batch.as_ref().map_or(true, Vec::is_empty);
                if tx.send(batch).is_err() || last {
                    break;
                }
            }
        });
        for batch in rx {
            let batch = batch?;
            if batch.is_empty() {
                break;
            }
            let n = batch.len() as u64;
            if let Err(e) = index.upsert(batch) {
                let batch = rows..rows + n;
                return Err(refused_batch(e, index, (file, format, ids), batch));
            }
            rows += n;
            write_checkpoint(
                &checkpoint,
                &json!({"db": options.db, "index": options.name, "input_len": input_len,
                        "rows": rows}),
            )?;
            if bar.length().is_some_and(|len| rows > len) {
                bar.set_length(rows); // an estimate fell short
            }
            bar.set_position(rows);
        }
        Ok(())
    })?;
    bar.finish_and_clear();
    std::fs::remove_file(&checkpoint).ok();
    Ok(rows - done)
}

/// The error of an import whose batch of input items `batch` (0-based positions) the index
/// refused, naming the first item it refuses when the error is about an item. That item is
/// found by reading the input again up to the batch's end (so the message may take as long
/// as the import so far) and trying the batch's items one at a time in an empty in-memory
/// index of the same configuration: only after a failure, so an import pays nothing for it.
fn refused_batch(
    e: ciphervec::Error,
    index: &EncryptedIndex,
    (file, format, ids): (&Path, FormatArg, Option<&Path>),
    batch: std::ops::Range<u64>,
) -> CliError {
    use ciphervec::Error;
    if !matches!(
        e,
        Error::DimensionMismatch { .. } | Error::InvalidVector | Error::InvalidArgument { .. }
    ) {
        return e.into();
    }
    let first_refused = || -> Option<u64> {
        let probe = Database::in_memory()
            .create_index("probe", &IndexKey::generate(), index.config().clone())
            .ok()?;
        let items = input::open(file, format, ids).ok()?.items;
        let again = items
            .skip(batch.start as usize)
            .take((batch.end - batch.start) as usize);
        let mut positions = batch.clone();
        again
            .zip(&mut positions)
            .find(|(item, _)| {
                item.as_ref()
                    .is_ok_and(|i| probe.upsert([i.clone()]).is_err())
            })
            .map(|(_, at)| at)
    };
    let imported = format!(
        "nothing of its batch was imported; the {} items before it were",
        batch.start
    );
    match first_refused() {
        Some(at) => CliError::Other(format!(
            "item {} of the input (counting vectors or non-empty lines from 1): {e}; {imported}",
            at + 1
        )),
        None => CliError::Other(format!(
            "items {}-{} of the input: {e}; {imported}",
            batch.start + 1,
            batch.end
        )),
    }
}

/// A progress bar on stderr when it is a terminal (items, items/s, ETA; for an estimated
/// total, "~" before it), else hidden.
fn progress(total: Option<Total>) -> ProgressBar {
    let target = if std::io::stderr().is_terminal() {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    };
    let (len, template) = match total {
        Some(Total::Exact(n)) => (
            Some(n),
            "{bar:40} {human_pos}/{human_len} items  {rate}  ETA {eta}",
        ),
        Some(Total::About(n)) => (
            Some(n),
            "{bar:40} {human_pos}/~{human_len} items  {rate}  ETA {eta}",
        ),
        None => (None, "{spinner} {human_pos} items  {rate}"),
    };
    let bar = ProgressBar::with_draw_target(len, target);
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.with_key(
            "rate",
            |state: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                let _ = write!(w, "{}/s", indicatif::HumanCount(state.per_sec() as u64));
            },
        ));
    }
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

/// A hit or record as JSON: contents as text when UTF-8, else `contents_base64`.
fn fields_json(id: &str, metadata: Option<&Value>, contents: Option<&[u8]>) -> Value {
    let mut doc = json!({"id": id});
    if let Some(m) = metadata {
        doc["metadata"] = m.clone();
    }
    if let Some(c) = contents {
        match std::str::from_utf8(c) {
            Ok(text) => doc["contents"] = Value::from(text),
            Err(_) => {
                doc["contents_base64"] =
                    Value::from(base64::engine::general_purpose::STANDARD.encode(c));
            }
        }
    }
    doc
}

fn hit_json(hit: &Hit) -> Value {
    let mut doc = fields_json(&hit.id, hit.metadata.as_ref(), hit.contents.as_deref());
    doc["distance"] = Value::from(hit.distance);
    if let Some(score) = hit.score {
        doc["score"] = Value::from(score);
    }
    doc
}

fn parse_vector(text: &str) -> Result<Vec<f32>, CliError> {
    let v: Vec<f64> = serde_json::from_str(text)
        .map_err(|_| CliError::Usage("a query vector is a JSON array of numbers".into()))?;
    Ok(v.into_iter().map(|x| x as f32).collect())
}

/// What `query` asks besides its vectors.
struct QueryOptions<'a> {
    k: usize,
    filter: Option<&'a str>,
    include: &'a [String],
    text: Option<&'a str>,
}

fn query(
    cli: &Cli,
    index: &EncryptedIndex,
    vector: Option<&str>,
    file: Option<&Path>,
    options: &QueryOptions<'_>,
) -> Result<(), CliError> {
    let QueryOptions {
        k,
        filter,
        include,
        text,
    } = *options;
    let mut fields = Include::NONE;
    for f in include {
        fields |= match f.trim() {
            "metadata" => Include::METADATA,
            "contents" => Include::CONTENTS,
            "" => Include::NONE,
            other => {
                return Err(CliError::Usage(format!(
                    "--include takes metadata, contents (not '{other}')"
                )));
            }
        };
    }
    let filter: Option<Value> = filter
        .map(serde_json::from_str)
        .transpose()
        .map_err(|_| CliError::Usage("--filter is not JSON".into()))?;
    let finish = |q: Query| {
        let q = q.top_k(k).include(fields);
        match &filter {
            Some(f) => q.filter(f.clone()),
            None => q,
        }
    };
    let make = |v: Vec<f32>| {
        let q = Query::new(v);
        finish(match text {
            Some(t) => q.text(t),
            None => q,
        })
    };
    let several = file.is_some();
    let queries: Vec<Query> = match (vector, file) {
        (None, None) if text.is_some() => vec![finish(Query::text_only(text.unwrap_or_default()))],
        (Some(v), _) => vec![make(parse_vector(v)?)],
        (None, Some(f)) => std::fs::read_to_string(f)
            .map_err(|e| CliError::Other(format!("{}: {e}", f.display())))?
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| parse_vector(l).map(make))
            .collect::<Result<_, _>>()?,
        (None, None) => return Err(CliError::Usage("give --vector or --file".into())),
    };
    let results = index.query_batch(&queries)?;
    if cli.json {
        let docs: Vec<Value> = results
            .iter()
            .map(|hits| Value::from(hits.iter().map(hit_json).collect::<Vec<_>>()))
            .collect();
        if several {
            println!("{}", Value::from(docs));
        } else {
            println!("{}", docs.into_iter().next().unwrap_or(Value::Null));
        }
    } else {
        let mut out = std::io::stdout().lock();
        for (i, hits) in results.iter().enumerate() {
            if several {
                writeln!(out, "# query {i}").map_err(stdout_error)?;
            }
            for h in hits {
                writeln!(out, "{}\t{}", h.id, h.distance).map_err(stdout_error)?;
            }
        }
    }
    Ok(())
}

/// `info`: what the storage shows without a key; with a key and a name, the index's state.
fn info(cli: &Cli, db: &str, name: Option<&str>) -> Result<(), CliError> {
    let database = existing_database(db)?;
    let with_key = name.is_some() && keys::any_key(cli);
    if let (true, Some(name)) = (with_key, name) {
        let key = keys::for_index(cli, name, false)?;
        let index = match &cli.user {
            Some(user) => database.open_index_as(name, user, &key)?,
            None => database.open_index_read_only(name, &key)?,
        };
        let config = index.config();
        let anchor = index.anchor();
        let mut doc = json!({
            "name": name,
            "items": index.len(),
            "dimension": config.dimension(),
            "type": config.index_type().to_string(),
            "metric": config.distance_metric().to_string(),
            "trained": index.is_trained(),
            "lists": index.n_lists(),
            "auto_train": config.is_auto_train(),
            "trained_at_items": index.training_status().trained_at_items,
            "epoch": anchor.epoch(),
            "anchor": anchor.to_string(),
            "format_version": database.storage_info(name)?.format_version,
        });
        if let IndexType::IvfPq { n_subquantizers } = config.index_type() {
            doc["n_subquantizers"] = json!(n_subquantizers);
            doc["refine_bits"] = json!(config.refine_code_bits());
        }
        doc["precision"] = json!(config.precision().as_str());
        if config.schema().fields().next().is_some() {
            doc["schema"] = config.schema().to_json();
        }
        if cli.json {
            println!("{doc}");
        } else {
            for (k, v) in doc.as_object().into_iter().flatten() {
                println!(
                    "{k}: {}",
                    v.as_str().map_or_else(|| v.to_string(), str::to_owned)
                );
            }
        }
        return Ok(());
    }
    let names = match name {
        Some(n) => vec![n.to_owned()],
        None => database.list_indexes()?,
    };
    let docs = names
        .iter()
        .map(|n| {
            let stored = database.storage_info(n)?;
            Ok(
                json!({"name": n, "files": stored.files, "bytes": stored.bytes,
                      "format_version": stored.format_version}),
            )
        })
        .collect::<Result<Vec<Value>, CliError>>()?;
    if cli.json {
        println!("{}", Value::from(docs));
    } else {
        for d in docs {
            println!(
                "{}: {} files, {} bytes, format {}",
                d["name"].as_str().unwrap_or_default(),
                d["files"],
                d["bytes"],
                d["format_version"]
            );
        }
    }
    Ok(())
}

/// Every item with everything stored, in id order, in batches.
fn all_records(
    index: &EncryptedIndex,
) -> Result<impl Iterator<Item = Result<Vec<ciphervec::Record>, CliError>> + '_, CliError> {
    let ids = index.list_ids()?;
    let chunks: Vec<Vec<String>> = ids.chunks(1000).map(<[String]>::to_vec).collect();
    Ok(chunks.into_iter().map(move |chunk| {
        let refs: Vec<&str> = chunk.iter().map(String::as_str).collect();
        Ok(index.get(&refs, Include::ALL)?)
    }))
}

fn export_jsonl(cli: &Cli, index: &EncryptedIndex, out: &Path) -> Result<(), CliError> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let file = options
        .open(out)
        .map_err(|e| CliError::Other(format!("{}: {e}", out.display())))?;
    let mut writer = std::io::BufWriter::new(file);
    let mut n = 0u64;
    for batch in all_records(index)? {
        for r in batch? {
            let text = r.contents.as_deref().map(std::str::from_utf8);
            let line = ExportLine {
                id: &r.id,
                vector: r.vector.as_deref().unwrap_or_default(),
                contents: text.and_then(Result::ok),
                contents_base64: match (text, r.contents.as_deref()) {
                    (Some(Err(_)), Some(bytes)) => {
                        Some(base64::engine::general_purpose::STANDARD.encode(bytes))
                    }
                    _ => None,
                },
                metadata: r.metadata.as_ref(),
            };
            // Typed, so that vectors print as f32 (the shortest text that reads back the same).
            let doc = serde_json::to_string(&line)
                .map_err(|e| CliError::Other(format!("export: {e}")))?;
            writeln!(writer, "{doc}")
                .map_err(|e| CliError::Other(format!("{}: {e}", out.display())))?;
            n += 1;
        }
    }
    writer
        .into_inner()
        .map_err(|e| CliError::Other(format!("{}: {e}", out.display())))?
        .sync_all()
        .map_err(|e| CliError::Other(format!("{}: {e}", out.display())))?;
    eprintln!(
        "wrote {n} items to {} in PLAINTEXT (mode 0600): protect or delete it",
        out.display()
    );
    say(
        cli,
        &json!({"exported": n, "plaintext": true}),
        &format!("exported {n} items"),
    );
    Ok(())
}

/// One line of an export: the fields `import` reads back.
#[derive(serde::Serialize)]
struct ExportLine<'a> {
    id: &'a str,
    vector: &'a [f32],
    #[serde(skip_serializing_if = "Option::is_none")]
    contents: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    contents_base64: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    metadata: Option<&'a Value>,
}

fn export_to(
    cli: &Cli,
    index: &EncryptedIndex,
    db2: &str,
    name2: &str,
    key2: &IndexKey,
) -> Result<(), CliError> {
    let target = database(db2)?.create_index(name2, key2, index.config().clone())?;
    let mut n = 0u64;
    for batch in all_records(index)? {
        let items: Vec<Item> = batch?
            .into_iter()
            .map(|r| {
                let mut item = Item::new(r.id, r.vector.unwrap_or_default());
                if let Some(c) = r.contents {
                    item = item.with_contents(c);
                }
                if let Some(m) = r.metadata {
                    item = item.with_metadata(m);
                }
                item
            })
            .collect();
        n += items.len() as u64;
        target.upsert(items)?;
    }
    if index.is_trained() {
        target.train()?;
    }
    say(
        cli,
        &json!({"exported": n, "to": name2}),
        &format!("copied {n} items into {name2}, encrypted under the new key"),
    );
    Ok(())
}
