//! Two servers on one database location (as two `serve` processes on one `s3://` prefix):
//! the first holds the writer lock, the second serves reads (refreshed from storage) and
//! answers writes with 409 saying it is a reader replica; once the writer is gone, the
//! second takes over the writes.

use std::time::{Duration, Instant};

use serde_json::json;

use super::common::{self, TestServer};

#[test]
fn a_reader_replica_serves_reads_refuses_writes_and_takes_over_when_the_writer_leaves() {
    let writer = TestServer::start();
    let hex = common::create(&writer, "shared", 3);
    let up = |server: &TestServer, id: &str| {
        server.post(
            "/v1/vectors/upsert",
            &json!({"index_name": "shared", "index_key": hex,
                    "items": [{"id": id, "vector": [1.0, 2.0, 3.0]}]}),
        )
    };
    let count = |server: &TestServer| {
        server.post(
            "/v1/vectors/num_vectors",
            &json!({"index_name": "shared", "index_key": hex}),
        )
    };
    assert_eq!(up(&writer, "a").status, 200);

    let reader = TestServer::start_on(&writer.path, |o| o.refresh_interval = Duration::ZERO);
    let r = count(&reader);
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["result"], 1);

    let r = up(&reader, "b");
    assert_eq!(r.status, 409, "{}", r.text);
    assert!(r.detail().contains("replica"), "{}", r.text);

    // Writes through the writer reach the reader.
    assert_eq!(up(&writer, "c").status, 200);
    assert_eq!(count(&reader).body["result"], 2);

    // When the writer leaves, the reader becomes the writer (it retries about once a second).
    writer.shutdown();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = up(&reader, "d");
        if r.status == 200 {
            break;
        }
        assert_eq!(r.status, 409, "{}", r.text);
        assert!(
            Instant::now() < deadline,
            "the reader never took over the writes"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(count(&reader).body["result"], 3);
}
