#!/usr/bin/env bash
# Build cost of the Google Cloud KMS and Azure Key Vault clients' stack against the official
# SDKs: two scratch crates under target/kms-buildcost/, each built clean in release with -j2,
# one after the other in the same run. Prints wall time and CPU time (user + sys of every
# compiler process, which a busy machine distorts less) and the number of crates locked.
#
#   bench/kms_buildcost.sh     # about 5 min + 25 min on 2 busy cores
set -euo pipefail
cd "$(dirname "$0")/.."
root=target/kms-buildcost
mkdir -p "$root/ours/src" "$root/sdks/src"
cat >"$root/ours/Cargo.toml" <<'TOML'
[package]
name = "buildcost-ours"
version = "0.0.0"
edition = "2024"
publish = false
[workspace]
[dependencies]
# What the gcp-kms and azure-kv features compile: the HTTP stack of the vault feature (ureq
# with rustls on ring), ring for RS256, serde_json, base64, zeroize.
ureq = "3.5"
ring = "0.17"
serde = { version = "1", features = ["derive"] }
serde_json = "1"
base64 = "0.22"
zeroize = "1.9.1"
TOML
cat >"$root/sdks/Cargo.toml" <<'TOML'
[package]
name = "buildcost-sdks"
version = "0.0.0"
edition = "2024"
publish = false
[workspace]
[dependencies]
# The official SDKs: Google's google-cloud-kms-v1 (with its auth), Microsoft's
# azure_security_keyvault_keys + azure_identity, and the runtime they need.
google-cloud-kms-v1 = "1"
azure_security_keyvault_keys = "1"
azure_identity = "1"
tokio = { version = "1", features = ["rt-multi-thread", "macros"] }
TOML
TIMEFORMAT='%R %U %S'
for which in ours sdks; do
    echo 'fn main() {}' >"$root/$which/src/main.rs"
    (
        cd "$root/$which"
        cargo fetch -q
        rm -rf target
        t=$({ time cargo build --release -j2 -q 2>build.err; } 2>&1)
        read -r wall user sys <<<"$t"
        echo "$which: wall ${wall}s, cpu $(echo "$user + $sys" | bc)s," \
            "$(grep -c '^name = ' Cargo.lock) crates, load $(cut -d' ' -f1 /proc/loadavg)"
    )
done
