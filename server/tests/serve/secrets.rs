//! No index key (in any form), API key, user key, user id, id, vector, content, metadata value, filter value or
//! index name reaches the server's log or an error body, through successes and every kind
//! of failure; and the folder on disk holds none of the data in clear.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

use super::common::{self, API_KEY, TestServer, hex_key};

#[test]
fn logs_and_error_bodies_hold_no_key_id_vector_or_data() {
    let server = TestServer::start();
    let name = "secretnameqx7";
    let (hex, key) = hex_key();
    let b64 = key.to_base64().to_string();
    let id = "secretidzq91";
    let meta = "secretmetavj55";
    let contents = "secretcontentsrw83";
    let vector = [0.123_456_79_f32, 9.876_543, 4.567_891_5, 7.654_321];
    let wrong_api = "wrong-api-key-secret-xk29";
    let mut bodies: Vec<String> = Vec::new();
    let mut run = |path: &str, body: Value| {
        let r = server.post(path, &body);
        if r.status >= 400 {
            bodies.push(r.text);
        }
    };
    run(
        "/v1/indexes/create",
        json!({"index_name": name, "index_key": hex, "dimension": 4}),
    );
    run(
        "/v1/indexes/create",
        json!({"index_name": name, "index_key": b64, "dimension": 4}),
    );
    run(
        "/v1/vectors/upsert",
        json!({"index_name": name, "index_key": hex, "items": [
        {"id": id, "vector": vector, "metadata": {"field": meta}, "contents": contents}]}),
    );
    // Failures of every kind, each carrying the secrets.
    run(
        "/v1/vectors/upsert",
        json!({"index_name": name, "index_key": hex, "items": [
        {"id": id, "vector": [vector[0], vector[1]], "metadata": {"field": meta}, "contents": contents}]}),
    );
    run(
        "/v1/vectors/upsert",
        json!({"index_name": name, "index_key": hex, "items": [
        {"id": id, "vector": vector, "metadata": meta}]}),
    );
    run(
        "/v1/vectors/upsert",
        json!({"index_name": name, "index_key": hex, "items": [
        {"id": id, "vector": vector, "metadata": {"field": meta}, "contents": 5}]}),
    );
    run(
        "/v1/vectors/upsert",
        json!({"index_name": name, "index_key": hex, "items": [
        {"id": id, "vector": [meta], "metadata": {"field": meta}}]}),
    );
    run(
        "/v1/vectors/query",
        json!({"index_name": name, "index_key": hex, "query_vectors": vector,
        "filters": {"field": {"$bogus": meta}}}),
    );
    run(
        "/v1/vectors/query",
        json!({"index_name": name, "index_key": hex, "query_vectors": vector,
        "filters": {"field": meta}, "include": ["metadata"]}),
    );
    run(
        "/v1/vectors/query",
        json!({"index_name": name, "index_key": hex, "query_vectors": [vector[0]]}),
    );
    // Listings, text and schemas: values in bad regexes, text, directions and settings.
    run(
        "/v1/vectors/query_metadata",
        json!({"index_name": name, "index_key": hex,
        "filters": {"field": {"$regex": format!("({meta}")}}}),
    );
    run(
        "/v1/vectors/query_metadata",
        json!({"index_name": name, "index_key": hex, "filters": {"field": {"$contains": meta}}}),
    );
    run(
        "/v1/vectors/query_metadata",
        json!({"index_name": name, "index_key": hex, "text": meta}),
    );
    run(
        "/v1/vectors/query_metadata",
        json!({"index_name": name, "index_key": hex, "order_by": {"field": meta}}),
    );
    run(
        "/v1/vectors/query",
        json!({"index_name": name, "index_key": hex, "query_vectors": vector, "text": meta}),
    );
    run(
        "/v1/indexes/create",
        json!({"index_name": format!("{name}-2"), "index_key": hex, "dimension": 2,
        "metadata_schema": {"field": {"pattern": meta}}, "storage_precision": contents}),
    );
    run(
        "/v1/indexes/create",
        json!({"index_name": format!("{name}-3"), "index_key": hex, "dimension": 2,
        "storage_precision": meta}),
    );
    run(
        "/v1/vectors/get",
        json!({"index_name": name, "index_key": hex, "ids": [id], "include": ["metdata"]}),
    );
    run(
        "/v1/vectors/get",
        json!({"index_name": name, "index_key": hex, "ids": [id]}),
    );
    run(
        "/v1/vectors/delete",
        json!({"index_name": name, "index_key": hex, "ids": [7]}),
    );
    run(
        "/v1/indexes/describe",
        json!({"index_name": name, "index_key": format!("{hex}00")}),
    );
    run(
        "/v1/indexes/describe",
        json!({"index_name": name, "index_key": hex_key().0}),
    );
    run(
        "/v1/indexes/describe",
        json!({"index_name": format!("{name}-missing"), "index_key": hex}),
    );
    run(
        "/v1/indexes/train",
        json!({"index_name": name, "index_key": hex, "max_memory": 5}),
    );
    let r = server.send(
        "POST",
        "/v1/indexes/describe",
        Some(
            json!({"index_name": name, "index_key": hex})
                .to_string()
                .into_bytes(),
        ),
        Some(wrong_api),
    );
    bodies.push(r.text);
    // Users: a read user's write (403), a user key on user management (403), a user that
    // does not exist (404), a bad permission (400) and a deleted user's key (401), each
    // carrying the user key, the user id, or both.
    let users = format!("/v1/indexes/{name}/users");
    let r = server.post(&users, &json!({"permissions": ["read"], "index_key": hex}));
    assert_eq!(r.status, 200, "{}", r.text);
    let user_key = r.body["api_key"].as_str().unwrap().to_owned();
    let user_id = r.body["user_id"].as_str().unwrap().to_owned();
    let as_user = |path: &str, body: Value| {
        server.send(
            "POST",
            path,
            Some(body.to_string().into_bytes()),
            Some(&user_key),
        )
    };
    for (path, body, status) in [
        (
            "/v1/vectors/upsert",
            json!({"index_name": name, "items": [{"id": id, "vector": vector}]}),
            403,
        ),
        (users.as_str(), json!({"permissions": ["read"]}), 403),
    ] {
        let r = as_user(path, body);
        assert_eq!(r.status, status, "{path}: {}", r.text);
        bodies.push(r.text);
    }
    let r = server.post(
        &users,
        &json!({"permissions": ["read", user_id.as_str()], "index_key": hex}),
    );
    assert_eq!(r.status, 400, "{}", r.text);
    bodies.push(r.text);
    let user_path = format!("{users}/{user_id}");
    let revoke = |path: &str| {
        server.send_with(
            "DELETE",
            path,
            None,
            Some(API_KEY),
            &[("X-Index-Key", &hex)],
        )
    };
    let r = revoke(&user_path);
    assert_eq!(r.status, 204, "{}", r.text);
    let r = revoke(&user_path);
    assert_eq!(r.status, 404, "{}", r.text);
    bodies.push(r.text);
    let r = as_user("/v1/vectors/list_ids", json!({"index_name": name}));
    assert_eq!(r.status, 401, "{}", r.text);
    bodies.push(r.text);
    let raw = STANDARD.decode(&b64).unwrap();
    let upper_hex = hex.to_uppercase();
    let logs = common::logs();
    let mut secrets: Vec<String> = vec![
        hex.clone(),
        upper_hex,
        b64.clone(),
        API_KEY.to_owned(),
        wrong_api.to_owned(),
        id.to_owned(),
        meta.to_owned(),
        contents.to_owned(),
        name.to_owned(),
        STANDARD.encode(contents),
        "0.12345679".to_owned(),
        "9.876543".to_owned(),
        user_key.clone(),
        user_id.clone(),
    ];
    secrets.push(String::from_utf8_lossy(&raw).into_owned());
    assert!(bodies.len() >= 21, "{bodies:?}");
    for secret in &secrets {
        assert!(!logs.contains(secret.as_str()), "the log holds {secret:?}");
        for body in &bodies {
            assert!(
                !body.contains(secret.as_str()),
                "an error body holds {secret:?}: {body}"
            );
        }
    }
    // The log did record the requests (so the check above looked at something).
    assert!(
        logs.contains("/v1/vectors/upsert") && logs.contains("status=400"),
        "{logs}"
    );

    // On disk: no id, metadata, contents or vector bytes in any file.
    let mut files = 0;
    let needles: Vec<Vec<u8>> = vec![
        id.as_bytes().to_vec(),
        meta.as_bytes().to_vec(),
        contents.as_bytes().to_vec(),
        vector.iter().flat_map(|x| x.to_le_bytes()).collect(),
    ];
    for entry in walk(&server.path) {
        let bytes = std::fs::read(&entry).unwrap();
        files += 1;
        for needle in &needles {
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle.as_slice()),
                "{} holds plaintext",
                entry.display()
            );
        }
    }
    assert!(files > 0);
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}
