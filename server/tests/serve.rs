//! `ciphervec serve` on a loopback port, driven over HTTP: CyborgDB's REST API v1 as
//! server/WIRE.md writes it down, held to brute force and to the core's own answers.

mod serve {
    mod auth;
    mod common;
    mod kms;
    mod lifecycle;
    mod limits;
    mod replicas;
    mod secrets;
    mod shutdown;
    mod text;
    mod users;
    mod vectors;
}
