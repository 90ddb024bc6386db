//! Helpers shared by the binary's end-to-end tests.
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "helpers shared by test binaries that each use some; tests fail by panicking"
)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The repository root (where `examples/`, `tests/` and `../shared` are found).
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Run the built `wasmscale` in the repository root, with a compile cache of
/// this test process's own.
pub fn wasmscale(args: &[&str]) -> Output {
    let cache =
        std::env::temp_dir().join(format!("wasmscale-cli-test-cache-{}", std::process::id()));
    Command::new(env!("CARGO_BIN_EXE_wasmscale"))
        .args(args)
        .arg("--cache-dir")
        .arg(&cache)
        .current_dir(root())
        .output()
        .expect("run wasmscale")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A port on 127.0.0.1 that was free a moment ago (for a server the test starts).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
