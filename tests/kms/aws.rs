//! AWS KMS (`GenerateDataKey` / `Decrypt`) against moto: the round trip, an unknown key,
//! an unreachable endpoint, and use from inside another async runtime.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use ciphervec::kms::Kms;
use ciphervec::kms::aws::AwsKms;
use ciphervec::{Error, KeyServiceFailure};

use super::common::{DEAD_ENDPOINT, exercise, servers};

fn client(servers: &HashMap<String, String>, endpoint: &str) -> AwsKms {
    AwsKms::builder(&servers["CIPHERVEC_TEST_AWS_KEY_ID"])
        .endpoint(endpoint)
        .region("us-east-1")
        .static_credentials("test", "test")
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap()
}

#[test]
#[ignore = "needs the local KMS servers: scripts/test_kms.sh"]
fn generate_unwrap_bind_and_rotate() {
    let servers = servers();
    exercise(|| client(&servers, &servers["CIPHERVEC_TEST_AWS_ENDPOINT"]));
}

#[test]
#[ignore = "needs the local KMS servers: scripts/test_kms.sh"]
fn unknown_key_is_refused() {
    let servers = servers();
    let kms = AwsKms::builder("00000000-0000-0000-0000-000000000000")
        .endpoint(&servers["CIPHERVEC_TEST_AWS_ENDPOINT"])
        .region("us-east-1")
        .static_credentials("test", "test")
        .build()
        .unwrap();
    assert!(matches!(
        kms.generate_key("docs"),
        Err(Error::KeyService {
            kind: KeyServiceFailure::Refused,
            ..
        })
    ));
}

#[test]
fn unreachable_server_is_a_typed_error() {
    let kms = AwsKms::builder("00000000-0000-0000-0000-000000000000")
        .endpoint(DEAD_ENDPOINT)
        .region("us-east-1")
        .static_credentials("test", "test")
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let started = Instant::now();
    let error = kms
        .generate_key("docs")
        .map(|_| ())
        .expect_err("no server there");
    assert!(
        matches!(
            error,
            Error::KeyService {
                kind: KeyServiceFailure::Unreachable,
                ..
            }
        ),
        "{error}"
    );
    println!(
        "unreachable reported after {:?}: {error}",
        started.elapsed()
    );
}

#[test]
#[ignore = "needs the local KMS servers: scripts/test_kms.sh"]
fn works_when_called_inside_another_runtime() {
    let servers = servers();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let endpoint = servers["CIPHERVEC_TEST_AWS_ENDPOINT"].clone();
    runtime.block_on(async {
        let kms = client(&servers, &endpoint);
        let (key, wrapped) = kms.generate_key("docs").unwrap();
        assert_eq!(kms.unwrap_key(&wrapped, "docs").unwrap(), key);
        drop(kms); // dropping the client inside a runtime must not panic
    });
}

#[test]
fn builder_debug_hides_the_secret_access_key() {
    let builder =
        AwsKms::builder("alias/k").static_credentials("AKIAEXAMPLE", "wJalrXUtnFEMI-very-secret");
    let text = format!("{builder:?}");
    assert!(!text.contains("very-secret"), "{text}");
    assert!(text.contains("AKIAEXAMPLE"), "{text}");
}
