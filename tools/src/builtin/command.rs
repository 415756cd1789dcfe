//! Command tools: a program with fixed arguments, declared in `lfm-agent.toml`, that reads
//! the call's arguments as JSON on stdin and writes a JSON result on stdout. Run without a
//! shell, only if the program is on the allowlist, killed at the timeout.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::tool::{Tool, ToolFuture, ToolSpec};
use crate::{Result, ToolError};

/// Most bytes read from a command's stdout (beyond that the call fails).
pub const MAX_STDOUT: usize = 1 << 20;

/// A declared command tool.
pub struct CommandTool {
    spec: ToolSpec,
    program: PathBuf,
    args: Vec<String>,
}

impl CommandTool {
    /// A tool running `program args...`. `allowlist` holds the programs (paths or bare
    /// names, compared as written) that may be run at all; anything else is refused here.
    pub fn new(
        spec: ToolSpec,
        program: &Path,
        args: Vec<String>,
        allowlist: &[PathBuf],
    ) -> Result<Self> {
        if !allowlist.iter().any(|a| a == program) {
            return Err(ToolError::NotAllowed {
                tool: spec.name.to_string(),
                program: program.display().to_string(),
            });
        }
        Ok(CommandTool {
            spec,
            program: program.to_path_buf(),
            args,
        })
    }
}

impl Tool for CommandTool {
    fn spec(&self) -> &ToolSpec {
        &self.spec
    }

    fn call(&self, args: Value) -> ToolFuture<'_> {
        Box::pin(async move {
            let name = self.spec.name.as_str();
            let mut child = tokio::process::Command::new(&self.program)
                .args(&self.args)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                // The registry's timeout drops this future: the process must die with it.
                .kill_on_drop(true)
                .spawn()
                .map_err(|e| {
                    ToolError::failed(
                        name,
                        format!("cannot start {}: {e}", self.program.display()),
                    )
                })?;
            let input = args.to_string();
            let mut stdin = child
                .stdin
                .take()
                .ok_or_else(|| ToolError::failed(name, "no stdin"))?;
            let mut stdout = child
                .stdout
                .take()
                .ok_or_else(|| ToolError::failed(name, "no stdout"))?;
            let mut stderr = child
                .stderr
                .take()
                .ok_or_else(|| ToolError::failed(name, "no stderr"))?;
            let write = async move {
                // A program that does not read its input must not fail the call.
                let _ = stdin.write_all(input.as_bytes()).await;
                drop(stdin);
            };
            let mut out = Vec::new();
            let mut err = Vec::new();
            let mut stdout_capped = (&mut stdout).take(MAX_STDOUT as u64 + 1);
            let mut stderr_capped = (&mut stderr).take(64 * 1024);
            let read_out = stdout_capped.read_to_end(&mut out);
            let read_err = stderr_capped.read_to_end(&mut err);
            let ((), r_out, _) = tokio::join!(write, read_out, read_err);
            r_out.map_err(|e| ToolError::failed(name, e))?;
            let status = child.wait().await.map_err(|e| ToolError::failed(name, e))?;
            if out.len() > MAX_STDOUT {
                return Err(ToolError::failed(
                    name,
                    format!("output larger than {MAX_STDOUT} bytes"),
                ));
            }
            if !status.success() {
                let tail: String = String::from_utf8_lossy(&err)
                    .chars()
                    .rev()
                    .take(500)
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .collect();
                return Err(ToolError::failed(
                    name,
                    format!("{status}: {}", tail.trim()),
                ));
            }
            serde_json::from_slice(&out).map_err(|e| {
                ToolError::failed(
                    name,
                    format!(
                        "stdout is not JSON ({e}): {}",
                        String::from_utf8_lossy(&out[..out.len().min(200)])
                    ),
                )
            })
        })
    }
}
