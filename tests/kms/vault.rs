//! Vault / OpenBao transit (`datakey` / `decrypt`) against an OpenBao dev server: the round
//! trip, a bad token, an unknown key, an unreachable server.

use std::collections::HashMap;
use std::time::Duration;

use ciphervec::KeyServiceFailure;
use ciphervec::kms::Kms;
use ciphervec::kms::vault::VaultTransit;

use super::common::{DEAD_ENDPOINT, exercise, is_failure, servers};

fn client(servers: &HashMap<String, String>) -> VaultTransit {
    VaultTransit::new(
        &servers["CIPHERVEC_TEST_VAULT_ADDR"],
        &servers["CIPHERVEC_TEST_VAULT_TOKEN"],
        &servers["CIPHERVEC_TEST_VAULT_KEY"],
    )
}

#[test]
#[ignore = "needs the local KMS servers: scripts/test_kms.sh"]
fn generate_unwrap_bind_and_rotate() {
    let servers = servers();
    exercise(|| client(&servers));
}

#[test]
#[ignore = "needs the local KMS servers: scripts/test_kms.sh"]
fn bad_token_and_unknown_key_are_refused() {
    let servers = servers();
    let addr = &servers["CIPHERVEC_TEST_VAULT_ADDR"];
    let bad_token = VaultTransit::new(addr, "not-a-token", &servers["CIPHERVEC_TEST_VAULT_KEY"]);
    assert!(is_failure(
        &bad_token.generate_key("docs"),
        KeyServiceFailure::Refused
    ));
    let (_, wrapped) = client(&servers).generate_key("docs").unwrap();
    let unknown = VaultTransit::new(addr, &servers["CIPHERVEC_TEST_VAULT_TOKEN"], "no-such-key");
    assert!(is_failure(
        &unknown.unwrap_key(&wrapped, "docs"),
        KeyServiceFailure::Refused
    ));
}

#[test]
fn unreachable_server_is_a_typed_error() {
    let kms =
        VaultTransit::new(DEAD_ENDPOINT, "token", "ciphervec").timeout(Duration::from_secs(5));
    assert!(is_failure(
        &kms.generate_key("docs"),
        KeyServiceFailure::Unreachable
    ));
}
