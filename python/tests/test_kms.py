"""Key services from Python (cv.GcpKms, cv.AzureKeyVault, cv.VaultTransit, cv.AwsKms) against
the local servers of scripts/kms_servers.sh (run by scripts/test_kms.sh): an index created
with a generated key opens with the unwrapped key, another index's name is refused as
KeyServiceError, and no secret shows in a repr. Skipped (never passed) without the servers."""

import json
import pathlib

import numpy as np
import pytest

import ciphervec as cv

ENV_FILE = pathlib.Path(__file__).resolve().parents[2] / "target" / "kms-servers.env"


@pytest.fixture(scope="module")
def servers():
    if not ENV_FILE.exists():
        pytest.skip(f"no local KMS servers ({ENV_FILE} missing): run scripts/test_kms.sh")
    pairs = (line.split("=", 1) for line in ENV_FILE.read_text().splitlines() if "=" in line)
    return dict(pairs)


def envelope_round_trip(kms, tmp_path):
    key, wrapped = kms.generate_key("docs")
    assert isinstance(key, bytes) and len(key) == 32
    assert isinstance(wrapped, str) and key.hex() not in wrapped
    client = cv.Client(tmp_path / "db")
    index = client.create_index("docs", key, dimension=4)
    index.upsert(["a", "b"], np.eye(2, 4, dtype=np.float32))
    del index
    again = kms.unwrap_key(wrapped, "docs")
    assert again == key
    hits = client.load_index("docs", again).query(np.array([1, 0, 0, 0], np.float32), top_k=1)
    assert hits[0]["id"] == "a"
    with pytest.raises(cv.KeyServiceError, match="refused"):
        kms.unwrap_key(wrapped, "another-index")
    with pytest.raises(cv.InvalidArgumentError):
        kms.unwrap_key("not a wrapped key", "docs")


def test_gcp_kms_with_a_service_account_and_a_token(servers, tmp_path):
    sa = servers["CIPHERVEC_TEST_GCP_SERVICE_ACCOUNT"]
    kms = cv.GcpKms(
        servers["CIPHERVEC_TEST_GCP_KEY"],
        endpoint=servers["CIPHERVEC_TEST_GCP_ENDPOINT"],
        credentials_file=sa,
    )
    envelope_round_trip(kms, tmp_path / "sa")
    private_key = json.loads(pathlib.Path(sa).read_text())["private_key"]
    assert "PRIVATE" not in repr(kms) and private_key[40:80] not in repr(kms)
    token = servers["CIPHERVEC_TEST_GCP_TOKEN"]
    with_token = cv.GcpKms(
        servers["CIPHERVEC_TEST_GCP_KEY"],
        endpoint=servers["CIPHERVEC_TEST_GCP_ENDPOINT"],
        access_token=token,
    )
    assert token not in repr(with_token)
    envelope_round_trip(with_token, tmp_path / "token")


def test_azure_key_vault_with_a_client_secret_and_a_managed_identity(servers, tmp_path):
    secret = servers["CIPHERVEC_TEST_AZURE_CLIENT_SECRET"]
    kms = cv.AzureKeyVault(
        servers["CIPHERVEC_TEST_AZURE_KEY_ID"],
        tenant_id=servers["CIPHERVEC_TEST_AZURE_TENANT"],
        client_id=servers["CIPHERVEC_TEST_AZURE_CLIENT_ID"],
        client_secret=secret,
        authority_host=servers["CIPHERVEC_TEST_AZURE_VAULT"],
    )
    assert secret not in repr(kms)
    envelope_round_trip(kms, tmp_path / "secret")
    identity = cv.AzureKeyVault(
        servers["CIPHERVEC_TEST_AZURE_KEY_ID"],
        managed_identity=True,
        imds_endpoint=servers["CIPHERVEC_TEST_AZURE_VAULT"] + "/metadata/identity/oauth2/token",
    )
    envelope_round_trip(identity, tmp_path / "identity")


def test_vault_transit(servers, tmp_path):
    kms = cv.VaultTransit(
        servers["CIPHERVEC_TEST_VAULT_ADDR"],
        servers["CIPHERVEC_TEST_VAULT_TOKEN"],
        servers["CIPHERVEC_TEST_VAULT_KEY"],
    )
    assert servers["CIPHERVEC_TEST_VAULT_TOKEN"] not in repr(kms)
    envelope_round_trip(kms, tmp_path)


def test_refusals_are_typed_and_hold_no_secret(servers):
    token = "ya29.made-up-token-that-must-not-leak"
    kms = cv.GcpKms(
        servers["CIPHERVEC_TEST_GCP_KEY"],
        endpoint=servers["CIPHERVEC_TEST_GCP_ENDPOINT"],
        access_token=token,
        max_retries=0,
    )
    with pytest.raises(cv.KeyServiceError) as refused:
        kms.generate_key("docs")
    assert "UNAUTHENTICATED" in str(refused.value) and token not in str(refused.value)


def test_bad_settings_are_invalid_arguments():
    # No servers needed: checked before anything is sent.
    with pytest.raises(cv.InvalidArgumentError):
        cv.GcpKms("not/a/key/name", access_token="t")
    with pytest.raises(cv.InvalidArgumentError, match="https"):
        cv.GcpKms(
            "projects/p/locations/l/keyRings/r/cryptoKeys/k",
            endpoint="http://cloudkms.example.com",
            access_token="t",
        )
    with pytest.raises(cv.InvalidArgumentError, match="https"):
        cv.AzureKeyVault("http://acme.vault.azure.net/keys/k", access_token="t")
    with pytest.raises(cv.InvalidArgumentError):
        cv.AzureKeyVault("https://acme.vault.azure.net/keys/k", client_secret="s")
    with pytest.raises(cv.InvalidArgumentError, match="timeout"):
        cv.GcpKms("projects/p/locations/l/keyRings/r/cryptoKeys/k", access_token="t", timeout=0)
