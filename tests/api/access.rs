//! Access control you can prove: read grants read and never write, write grants write and
//! readers see it, revocation locks the user out of everything written after, a commit
//! forged with a reader's secrets is refused by every opener, grants survive a crash at
//! every I/O of a revocation, and no user name reaches a stored byte.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use ciphervec::internals::{
    FaultyFs, forge_upsert_as_reader, open_database_with_fs, user_opens_segment,
};
use ciphervec::{
    Access, Database, EncryptedIndex, Error, Include, IndexConfig, IndexKey, Item, Metric, Query,
};

use super::common::*;

const DIM: usize = 8;

/// id -> vector: what the index must hold.
type Model = BTreeMap<String, Vec<f32>>;

fn batch(seed: u64, prefix: &str, n: usize) -> Vec<(String, Vec<f32>)> {
    let mut rng = Rng::new(seed);
    clustered(&mut rng, n, DIM, 5)
        .into_iter()
        .enumerate()
        .map(|(i, v)| (format!("{prefix}-{i}"), v))
        .collect()
}

fn upsert(index: &EncryptedIndex, model: &mut Model, items: Vec<(String, Vec<f32>)>) {
    index
        .upsert(items.iter().map(|(id, v)| Item::new(id.clone(), v.clone())))
        .unwrap();
    model.extend(items);
}

fn contents(index: &EncryptedIndex) -> Model {
    let ids = index.list_ids().unwrap();
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    index
        .get(&refs, Include::VECTOR)
        .unwrap()
        .into_iter()
        .map(|r| (r.id, r.vector.unwrap()))
        .collect()
}

/// The handle holds exactly `model`, and exact queries return brute force's distances.
fn assert_serves(index: &EncryptedIndex, model: &Model, what: &str) {
    assert!(contents(index) == *model, "{what}: contents differ");
    let ids: Vec<&String> = model.keys().collect();
    let vectors: Vec<Vec<f32>> = model.values().cloned().collect();
    let mut rng = Rng::new(5);
    for _ in 0..5 {
        let q: Vec<f32> = (0..DIM).map(|_| rng.f32() * 4.0).collect();
        let want = brute_force(Metric::Euclidean, &vectors, &q, 11);
        let hits = index
            .query(&Query::new(q).top_k(10).n_probes(usize::MAX))
            .unwrap();
        assert_eq!(hits.len(), want.len().min(10), "{what}");
        for (h, (_, d)) in hits.iter().zip(&want) {
            assert!((h.distance - d).abs() <= 1e-4 * d.max(1.0), "{what}");
        }
        // Without a tie at the cut, the same ids.
        if want.len() == 11 && want[10].1 - want[9].1 > 1e-3 {
            let mut got: Vec<&str> = hits.iter().map(|h| h.id.as_str()).collect();
            let mut expected: Vec<&str> =
                want[..10].iter().map(|(i, _)| ids[*i].as_str()).collect();
            got.sort_unstable();
            expected.sort_unstable();
            assert_eq!(got, expected, "{what}");
        }
    }
}

/// Every file of index `name` in `dir`: (name, bytes).
fn files(dir: &Path, name: &str) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir.join(name))
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    out.sort();
    out
}

fn is_permission_denied<T: std::fmt::Debug>(r: ciphervec::Result<T>) -> bool {
    matches!(r, Err(Error::PermissionDenied))
}

fn is_corrupted<T>(r: ciphervec::Result<T>) -> bool {
    matches!(r, Err(Error::Corrupted { .. }))
}

/// An index "t" with 300 items (trained), its owner's key, and the model.
fn owned_index(dir: &Path) -> (IndexKey, Model) {
    let key = IndexKey::generate();
    let db = Database::open(dir).unwrap();
    let index = db
        .create_index("t", &key, IndexConfig::ivf_flat(DIM))
        .unwrap();
    let mut model = Model::new();
    upsert(&index, &mut model, batch(1, "a", 300));
    index.train().unwrap();
    (key, model)
}

#[test]
fn a_read_grant_queries_and_gets_and_every_write_is_permission_denied_before_any_io() {
    let dir = tempfile::tempdir().unwrap();
    let (key, model) = owned_index(dir.path());
    let analyst_key = IndexKey::generate();
    {
        let db = Database::open(dir.path()).unwrap();
        let owner = db.open_index("t", &key).unwrap();
        assert_eq!(owner.users().unwrap(), vec![]);
        owner.grant("analyst", &analyst_key, Access::Read).unwrap();
        assert_eq!(
            owner.users().unwrap(),
            vec![("analyst".to_owned(), Access::Read)]
        );
        assert_eq!(owner.access(), None);
        assert_serves(&owner, &model, "owner after the first grant");
    }
    let db = Database::open(dir.path()).unwrap();
    let reader = db.open_index_as("t", "analyst", &analyst_key).unwrap();
    assert_eq!(reader.access(), Some(Access::Read));
    assert_serves(&reader, &model, "read grant");
    let got = reader
        .get(&["a-3", "nope", "a-1"], Include::VECTOR)
        .unwrap();
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].vector.as_ref(), model.get("a-3"));
    assert!(reader.verify().is_ok());

    let before = files(dir.path(), "t");
    let item = || vec![Item::new("x", vec![1.0; DIM])];
    assert!(is_permission_denied(reader.upsert(item())));
    assert!(is_permission_denied(
        reader.upsert_rows(&["x"], &[1.0; DIM])
    ));
    assert!(is_permission_denied(reader.delete(&["a-1"])));
    assert!(is_permission_denied(reader.train()));
    assert!(is_permission_denied(reader.compact()));
    assert!(is_permission_denied(reader.rotate_data_key()));
    assert!(is_permission_denied(reader.enable_full_text()));
    assert!(is_permission_denied(reader.grant(
        "mallory",
        &IndexKey::generate(),
        Access::Admin
    )));
    assert!(is_permission_denied(reader.revoke("analyst")));
    assert!(is_permission_denied(reader.users()));
    // Nothing was written: every stored byte is as before.
    assert!(
        files(dir.path(), "t") == before,
        "a refused write changed storage"
    );
    assert_serves(&reader, &model, "read grant after refused writes");
}

#[test]
fn a_write_grant_writes_and_a_read_grants_refresh_sees_it() {
    let dir = tempfile::tempdir().unwrap();
    let (key, mut model) = owned_index(dir.path());
    let (writer_key, reader_key) = (IndexKey::generate(), IndexKey::generate());
    {
        let db = Database::open(dir.path()).unwrap();
        let owner = db.open_index("t", &key).unwrap();
        owner
            .grant("ingest", &writer_key, Access::ReadWrite)
            .unwrap();
        owner.grant("dash", &reader_key, Access::Read).unwrap();
    }
    let readers = Database::open(dir.path()).unwrap();
    let reader = readers.open_index_as("t", "dash", &reader_key).unwrap();
    assert_serves(&reader, &model, "reader before");
    let db = Database::open(dir.path()).unwrap();
    let writer = db.open_index_as("t", "ingest", &writer_key).unwrap();
    assert_eq!(writer.access(), Some(Access::ReadWrite));
    upsert(&writer, &mut model, batch(2, "w", 50));
    let gone = ["a-1", "a-2", "w-3"];
    assert_eq!(writer.delete(&gone).unwrap(), 3);
    for id in gone {
        model.remove(id);
    }
    writer.compact().unwrap();
    upsert(&writer, &mut model, batch(3, "v", 20));
    // Managing grants is an admin's.
    assert!(is_permission_denied(writer.grant(
        "x",
        &IndexKey::generate(),
        Access::Read
    )));
    assert!(is_permission_denied(writer.users()));
    assert!(is_permission_denied(writer.rotate_data_key()));
    assert!(reader.refresh().unwrap());
    assert_serves(&reader, &model, "reader after the writer's commits");
    drop(writer);
    drop(db);
    // The owner opens what the writer signed, and so does a reader that opens afresh.
    let owner = Database::open(dir.path())
        .unwrap()
        .open_index("t", &key)
        .unwrap();
    assert_serves(&owner, &model, "owner after the writer");
    assert!(owner.verify().is_ok());
    drop(owner);
    let again = Database::open(dir.path())
        .unwrap()
        .open_index_as("t", "dash", &reader_key)
        .unwrap();
    assert_serves(&again, &model, "a fresh reader");
}

#[test]
fn a_revoked_user_cannot_open_and_its_old_grant_opens_nothing_written_after() {
    let dir = tempfile::tempdir().unwrap();
    let (key, mut model) = owned_index(dir.path());
    let (bob_key, alice_key) = (IndexKey::generate(), IndexKey::generate());
    let db = Database::open(dir.path()).unwrap();
    let owner = db.open_index("t", &key).unwrap();
    owner.grant("bob", &bob_key, Access::ReadWrite).unwrap();
    owner.grant("alice", &alice_key, Access::Read).unwrap();
    let readers = Database::open(dir.path()).unwrap();
    let alice_reading = readers.open_index_as("t", "alice", &alice_key).unwrap();
    // What bob could keep: the manifest with his grant, and a segment he could read.
    let old_manifest = std::fs::read(dir.path().join("t/MANIFEST")).unwrap();
    let segment_of = |files: &[(String, Vec<u8>)]| {
        files
            .iter()
            .filter_map(|(n, b)| {
                let hex = n.strip_prefix("seg-")?.strip_suffix(".cvs")?;
                Some((u64::from_str_radix(hex, 16).unwrap(), b.clone()))
            })
            .max_by_key(|(s, _)| *s)
            .unwrap()
    };
    let (seq, before) = segment_of(&files(dir.path(), "t"));
    assert!(user_opens_segment(&old_manifest, ("bob", &bob_key), &before, seq).unwrap() > 0);

    owner.revoke("bob").unwrap();
    assert_eq!(
        owner.users().unwrap(),
        vec![("alice".to_owned(), Access::Read)]
    );
    upsert(&owner, &mut model, batch(4, "after", 40));
    let (seq, after) = segment_of(&files(dir.path(), "t"));
    assert!(is_corrupted(user_opens_segment(
        &old_manifest,
        ("bob", &bob_key),
        &after,
        seq
    )));
    // Every segment stored now is beyond bob's old key.
    for (n, b) in files(dir.path(), "t") {
        if let Some(hex) = n.strip_prefix("seg-").and_then(|h| h.strip_suffix(".cvs")) {
            let s = u64::from_str_radix(hex, 16).unwrap();
            assert!(is_corrupted(user_opens_segment(
                &old_manifest,
                ("bob", &bob_key),
                &b,
                s
            )));
        }
    }
    let new_manifest = std::fs::read(dir.path().join("t/MANIFEST")).unwrap();
    assert!(matches!(
        user_opens_segment(&new_manifest, ("bob", &bob_key), &after, seq),
        Err(Error::WrongKey)
    ));
    drop(owner);
    drop(db);
    assert!(matches!(
        Database::open(dir.path())
            .unwrap()
            .open_index_as("t", "bob", &bob_key),
        Err(Error::WrongKey)
    ));
    // Alice's grant survived, and her open handle follows the new keys.
    assert!(alice_reading.refresh().unwrap());
    assert_serves(
        &alice_reading,
        &model,
        "alice's handle after the revocation",
    );
    let alice = Database::open(dir.path())
        .unwrap()
        .open_index_as("t", "alice", &alice_key)
        .unwrap();
    assert_serves(&alice, &model, "alice after the revocation");
    // Another name with bob's key, or bob with another key: no grant.
    for (user, k) in [("alice", &bob_key), ("bob", &alice_key)] {
        assert!(matches!(
            Database::open(dir.path())
                .unwrap()
                .open_index_as("t", user, k),
            Err(Error::WrongKey)
        ));
    }
}

#[test]
fn an_admin_grant_manages_users_and_the_owner_key_still_rotates() {
    let dir = tempfile::tempdir().unwrap();
    let (key, model) = owned_index(dir.path());
    let (ops_key, carol_key, dave_key) = (
        IndexKey::generate(),
        IndexKey::generate(),
        IndexKey::generate(),
    );
    {
        let db = Database::open(dir.path()).unwrap();
        let owner = db.open_index("t", &key).unwrap();
        owner.grant("ops", &ops_key, Access::Admin).unwrap();
    }
    {
        let db = Database::open(dir.path()).unwrap();
        let ops = db.open_index_as("t", "ops", &ops_key).unwrap();
        ops.grant("carol", &carol_key, Access::Read).unwrap();
        ops.grant("dave", &dave_key, Access::ReadWrite).unwrap();
        ops.revoke("dave").unwrap();
        ops.rotate_data_key().unwrap();
        assert_eq!(
            ops.users().unwrap(),
            vec![
                ("carol".to_owned(), Access::Read),
                ("ops".to_owned(), Access::Admin)
            ]
        );
        assert_serves(&ops, &model, "admin");
    }
    // The owner opens what the admin committed; a new index key keeps every grant.
    let new_key = IndexKey::generate();
    let db = Database::open(dir.path()).unwrap();
    db.rotate_index_key("t", &key, &new_key).unwrap();
    let newer_key = IndexKey::generate();
    db.rotate_keys("t", &new_key, &newer_key).unwrap();
    assert!(matches!(db.open_index("t", &key), Err(Error::WrongKey)));
    let owner = db.open_index("t", &newer_key).unwrap();
    assert_serves(&owner, &model, "owner after key rotations");
    drop(owner);
    let carol = db.open_index_as("t", "carol", &carol_key).unwrap();
    assert_serves(&carol, &model, "carol after key rotations");
    assert!(matches!(
        db.open_index_as("t", "dave", &dave_key),
        Err(Error::WrongKey)
    ));
    drop(carol);
    let ops = db.open_index_as("t", "ops", &ops_key).unwrap();
    assert_serves(&ops, &model, "admin after key rotations");
}

/// Every way of opening index "t" in `dir`: each must refuse a forged commit.
fn every_opener(dir: &Path, key: &IndexKey, users: &[(&str, &IndexKey)]) -> Vec<(String, bool)> {
    let mut out = Vec::new();
    let db = Database::open(dir).unwrap();
    out.push(("owner".into(), is_corrupted(db.open_index("t", key))));
    out.push((
        "owner read-only".into(),
        is_corrupted(db.open_index_read_only("t", key)),
    ));
    for (user, k) in users {
        out.push(((*user).into(), is_corrupted(db.open_index_as("t", user, k))));
    }
    out
}

#[test]
fn a_commit_forged_with_a_readers_secrets_is_refused_by_every_opener() {
    for segment_only in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let (key, model) = owned_index(dir.path());
        let keys: Vec<(&str, IndexKey)> = vec![
            ("reader", IndexKey::generate()),
            ("writer", IndexKey::generate()),
            ("admin", IndexKey::generate()),
        ];
        {
            let db = Database::open(dir.path()).unwrap();
            let owner = db.open_index("t", &key).unwrap();
            for ((user, k), access) in keys.iter().zip(Access::ALL) {
                owner.grant(user, k, access).unwrap();
            }
        }
        let db = Database::open(dir.path()).unwrap();
        let watching = db.open_index_as("t", "reader", &keys[0].1).unwrap();
        let forger = Database::open(dir.path())
            .unwrap()
            .open_index_as("t", "reader", &keys[0].1)
            .unwrap();
        let manifest = std::fs::read(dir.path().join("t/MANIFEST")).unwrap();
        forge_upsert_as_reader(&forger, vec![Item::new("forged", vec![9.0; DIM])]).unwrap();
        if segment_only {
            // Only the forged segment: roll-forward must refuse it, not apply it.
            std::fs::write(dir.path().join("t/MANIFEST"), &manifest).unwrap();
        }
        let users: Vec<(&str, &IndexKey)> = keys.iter().map(|(u, k)| (*u, k)).collect();
        for (who, refused) in every_opener(dir.path(), &key, &users) {
            assert!(
                refused,
                "segment only: {segment_only}: {who} accepted a forgery"
            );
        }
        assert!(is_corrupted(watching.refresh()), "a reader's refresh");
        // The handle keeps serving what it had.
        assert_serves(&watching, &model, "the reader's handle after the forgery");
    }
}

/// A crash (every later call failing, unsynced files torn) at every file-changing call of
/// a revocation: the index then opens with either the grants before (bob still granted) or
/// after (bob revoked), every remaining user opens it, and it holds every item.
#[test]
fn a_crash_at_every_call_of_a_revocation_loses_no_grant() {
    let key = IndexKey::generate();
    let users: Vec<(&str, IndexKey, Access)> = vec![
        ("alice", IndexKey::generate(), Access::Read),
        ("bob", IndexKey::generate(), Access::ReadWrite),
        ("carol", IndexKey::generate(), Access::Admin),
    ];
    let setup = |dir: &Path| -> (Arc<FaultyFs>, Database, EncryptedIndex, Model) {
        let fs = Arc::new(FaultyFs::new(usize::MAX, 5, true));
        let db = open_database_with_fs(dir, fs.clone()).unwrap();
        let index = db
            .create_index("t", &key, IndexConfig::ivf_flat(DIM))
            .unwrap();
        let mut model = Model::new();
        upsert(&index, &mut model, batch(7, "c", 120));
        for (u, k, a) in &users {
            index.grant(u, k, *a).unwrap();
        }
        upsert(&index, &mut model, batch(8, "d", 30));
        (fs, db, index, model)
    };
    let calls = {
        let dir = tempfile::tempdir().unwrap();
        let (fs, _db, index, _) = setup(dir.path());
        let before = fs.calls();
        index.revoke("bob").unwrap();
        fs.calls() - before
    };
    assert!(calls >= 4, "{calls} calls");
    let mut rng = Rng::new(11);
    let (mut revoked, mut kept) = (0, 0);
    for crash_at in 0..calls {
        let dir = tempfile::tempdir().unwrap();
        let (fs, db, index, model) = setup(dir.path());
        fs.fail_after(crash_at);
        // A crash in the cleanup after the commit still returns Ok (the cleanup is best
        // effort); anywhere else, an error.
        let _ = index.revoke("bob");
        drop(index);
        drop(db);
        tear_unsynced(&fs.log(), &mut rng);
        let what = format!("crash at call {crash_at} of {calls}");
        let db = Database::open(dir.path()).unwrap();
        let owner = db.open_index("t", &key).unwrap();
        assert_serves(&owner, &model, &what);
        let granted = owner.users().unwrap();
        let bob_granted = granted.iter().any(|(u, _)| u == "bob");
        let want: Vec<(String, Access)> = users
            .iter()
            .filter(|(u, _, _)| bob_granted || *u != "bob")
            .map(|(u, _, a)| ((*u).to_owned(), *a))
            .collect();
        assert_eq!(granted, want, "{what}");
        if bob_granted {
            kept += 1;
        } else {
            revoked += 1;
        }
        drop(owner);
        for (u, k, _) in &users {
            let opened = db.open_index_as("t", u, k);
            if *u == "bob" && !bob_granted {
                assert!(matches!(opened, Err(Error::WrongKey)), "{what}: {u}");
            } else {
                let index = opened.unwrap_or_else(|e| panic!("{what}: {u}: {e:?}"));
                assert_serves(&index, &model, &format!("{what}: {u}"));
            }
        }
    }
    println!("{calls} crash points: {revoked} revoked, {kept} as before");
    assert!(revoked > 0 && kept > 0);
}

#[test]
fn no_user_name_or_user_key_reaches_a_stored_byte() {
    let dir = tempfile::tempdir().unwrap();
    let (key, _) = owned_index(dir.path());
    let names = [
        "zebra-analyst-7781",
        "Ünïcödé-support-tool",
        "ops@example.com",
    ];
    let user_keys: Vec<IndexKey> = names.iter().map(|_| IndexKey::generate()).collect();
    {
        let db = Database::open(dir.path()).unwrap();
        let owner = db.open_index("t", &key).unwrap();
        for ((n, k), a) in names.iter().zip(&user_keys).zip(Access::ALL) {
            owner.grant(n, k, a).unwrap();
        }
        owner.revoke(names[1]).unwrap();
        owner.grant(names[1], &user_keys[1], Access::Read).unwrap();
        let writer =
            Database::open(dir.path())
                .unwrap()
                .open_index_as("t", names[2], &user_keys[2]);
        // The owner's handle holds the writer lock.
        assert!(matches!(writer, Err(Error::Locked)));
    }
    let mut needles: Vec<Vec<u8>> = names.iter().map(|n| n.as_bytes().to_vec()).collect();
    // Parts of names too, and the keys.
    needles.extend(names.iter().map(|n| n.as_bytes()[..8].to_vec()));
    needles.extend(user_keys.iter().map(|k| k.to_base64().as_bytes().to_vec()));
    let mut scanned = 0;
    for (file, bytes) in files(dir.path(), "t") {
        for needle in &needles {
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle.as_slice()),
                "{file} holds a user name or key"
            );
        }
        scanned += bytes.len();
    }
    assert!(scanned > 10_000);
    // The names are in the sealed roster: an admin reads them back.
    let db = Database::open(dir.path()).unwrap();
    let owner = db.open_index("t", &key).unwrap();
    let mut want: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
    want.sort();
    let got: Vec<String> = owner.users().unwrap().into_iter().map(|(n, _)| n).collect();
    assert_eq!(got, want);
}

#[test]
fn an_index_without_grants_stores_no_access_section_and_user_opens_fail() {
    let dir = tempfile::tempdir().unwrap();
    let (key, model) = owned_index(dir.path());
    let manifest = std::fs::read(dir.path().join("t/MANIFEST")).unwrap();
    // The flags field of the clear header: 0 without access control.
    assert_eq!(&manifest[10..12], &[0, 0]);
    let db = Database::open(dir.path()).unwrap();
    assert!(matches!(
        db.open_index_as("t", "anyone", &key),
        Err(Error::WrongKey)
    ));
    assert!(matches!(
        db.open_index_as("t", "", &key),
        Err(Error::InvalidArgument { .. })
    ));
    let owner = db.open_index("t", &key).unwrap();
    assert_serves(&owner, &model, "owner");
    assert_eq!(owner.users().unwrap(), vec![]);
    assert!(matches!(
        owner.revoke("nobody"),
        Err(Error::InvalidArgument { .. })
    ));
    owner
        .grant("first", &IndexKey::generate(), Access::Read)
        .unwrap();
    drop(owner);
    let manifest = std::fs::read(dir.path().join("t/MANIFEST")).unwrap();
    assert_eq!(&manifest[10..12], &[1, 0]);
}

#[test]
fn access_names_parse_in_any_case_and_refuse_others() {
    for a in Access::ALL {
        assert_eq!(a.name().parse::<Access>().unwrap(), a);
        assert_eq!(a.to_string().to_uppercase().parse::<Access>().unwrap(), a);
    }
    assert!(matches!(
        "owner".parse::<Access>(),
        Err(Error::InvalidArgument { .. })
    ));
}
