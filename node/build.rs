//! Link settings of a Node-API addon (the symbols come from the Node process that loads it).

fn main() {
    napi_build::setup();
}
