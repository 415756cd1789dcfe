//! Helpers shared by the CLI test binaries.

#![allow(dead_code)] // each test binary uses a different subset

pub mod serve;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The `lfm-agent` binary.
pub fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_lfm-agent"))
}

/// The repository root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .unwrap()
}

/// A finished command's stdout and stderr, for assertions and failure messages.
pub fn text(o: &Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}
