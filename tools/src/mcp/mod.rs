//! Tools from Model Context Protocol servers over stdio (the `rmcp` client).
//!
//! A server is a program the config declares (`[[tools.mcp]]`): it is started once, asked
//! for its tools (`tools/list`), and each tool becomes an [`McpTool`] in the registry like a
//! built-in: the model sees its name, description and input schema; the registry validates
//! the arguments against that schema, applies the timeout and caps the output; only then is
//! `tools/call` sent. The program must be on the same allowlist as command tools.
//!
//! A tool whose name an OpenAI-style client cannot use (`[A-Za-z_][A-Za-z0-9_-]{0,63}`,
//! after the optional prefix) or whose schema does not compile is left out with a warning,
//! unless the config names it in `tools`, which makes it an error.
//!
//! The server keeps running while any of its tools is alive; [`McpServer::close`] ends it
//! (stdin closed, then SIGTERM, then kill), and must run inside the runtime that connected.

mod result;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rmcp::model::{CallToolRequestParams, JsonObject};
use rmcp::service::RunningService;
use rmcp::transport::TokioChildProcess;
use rmcp::{RoleClient, ServiceExt};
use serde_json::Value;

use crate::tool::{Tool, ToolFuture, ToolName, ToolSpec};
use crate::{Result, ToolError};

/// How to start one MCP server and which of its tools to take.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct McpServerConfig {
    /// Its name, in errors and logs.
    pub name: String,
    /// The program (no shell); must be on the allowlist.
    pub program: PathBuf,
    /// Its arguments.
    pub args: Vec<String>,
    /// Environment variables added to ours.
    pub env: BTreeMap<String, String>,
    /// Only these of its tools (by the server's names); `None`: all.
    pub tools: Option<Vec<String>>,
    /// Put before each tool's name, to keep two servers' tools apart.
    pub prefix: String,
}

/// A running MCP server.
pub struct McpServer {
    name: String,
    service: Mutex<Option<RunningService<RoleClient, ()>>>,
    peer: rmcp::Peer<RoleClient>,
    listed: Vec<rmcp::model::Tool>,
}

impl std::fmt::Debug for McpServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpServer")
            .field("name", &self.name)
            .field("tools", &self.listed.len())
            .finish()
    }
}

fn mcp_err(server: &str, why: impl std::fmt::Display) -> ToolError {
    ToolError::Mcp {
        server: server.to_string(),
        why: why.to_string(),
    }
}

impl McpServer {
    /// Starts the server, initializes the session and lists its tools, each step bounded
    /// by `timeout`. Call inside a tokio runtime that outlives the server.
    pub async fn connect(
        cfg: &McpServerConfig,
        allowlist: &[PathBuf],
        timeout: Duration,
    ) -> Result<Arc<McpServer>> {
        let name = cfg.name.as_str();
        if !allowlist.iter().any(|a| a == &cfg.program) {
            return Err(mcp_err(
                name,
                format!(
                    "program `{}` is not on the allowlist (tools.allow_programs)",
                    cfg.program.display()
                ),
            ));
        }
        let mut cmd = tokio::process::Command::new(&cfg.program);
        // The last resort: a server whose client is dropped without closing it is killed.
        cmd.args(&cfg.args).envs(&cfg.env).kill_on_drop(true);
        let transport = TokioChildProcess::new(cmd)
            .map_err(|e| mcp_err(name, format!("cannot start {}: {e}", cfg.program.display())))?;
        let service = tokio::time::timeout(timeout, ().serve(transport))
            .await
            .map_err(|_| mcp_err(name, format!("no answer to initialize within {timeout:?}")))?
            .map_err(|e| mcp_err(name, format!("initialize failed: {e}")))?;
        let listed = tokio::time::timeout(timeout, service.list_all_tools())
            .await
            .map_err(|_| mcp_err(name, format!("no answer to tools/list within {timeout:?}")))?
            .map_err(|e| mcp_err(name, format!("tools/list failed: {e}")))?;
        let server_info = service.peer_info().and_then(|i| {
            i.server_info
                .as_ref()
                .map(|s| format!("{} {}", s.name, s.version))
        });
        tracing::info!(server = name, info = ?server_info, tools = listed.len(), "MCP server connected");
        Ok(Arc::new(McpServer {
            name: name.to_string(),
            peer: service.peer().clone(),
            service: Mutex::new(Some(service)),
            listed,
        }))
    }

    /// The server's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its tools as registry tools, per `cfg.tools` and `cfg.prefix`.
    pub fn tools(self: &Arc<Self>, cfg: &McpServerConfig) -> Result<Vec<Arc<dyn Tool>>> {
        let wanted = cfg.tools.as_deref();
        if let Some(w) = wanted {
            for n in w {
                if !self.listed.iter().any(|t| t.name == n.as_str()) {
                    let have: Vec<&str> = self.listed.iter().map(|t| t.name.as_ref()).collect();
                    return Err(mcp_err(
                        &self.name,
                        format!("has no tool `{n}` (it has: {})", have.join(", ")),
                    ));
                }
            }
        }
        let mut out: Vec<Arc<dyn Tool>> = Vec::new();
        for t in &self.listed {
            let named = wanted.is_some_and(|w| w.iter().any(|n| t.name == n.as_str()));
            if wanted.is_some() && !named {
                continue;
            }
            match self.spec_of(t, &cfg.prefix) {
                Ok(spec) => out.push(Arc::new(McpTool {
                    server: Arc::clone(self),
                    remote: t.name.to_string(),
                    spec,
                })),
                Err(e) if named => return Err(e),
                Err(e) => tracing::warn!(server = %self.name, "tool left out: {e}"),
            }
        }
        Ok(out)
    }

    fn spec_of(&self, t: &rmcp::model::Tool, prefix: &str) -> Result<ToolSpec> {
        let full = format!("{prefix}{}", t.name);
        let name = ToolName::new(full.clone())
            .map_err(|e| mcp_err(&self.name, format!("tool `{}`: {e}", t.name)))?;
        let parameters = Value::Object(t.input_schema.as_ref().clone());
        jsonschema::options()
            .with_draft(jsonschema::Draft::Draft202012)
            .build(&parameters)
            .map_err(|e| {
                mcp_err(
                    &self.name,
                    format!("tool `{}`: bad input schema: {e}", t.name),
                )
            })?;
        let description = t
            .description
            .as_deref()
            .or(t.title.as_deref())
            .unwrap_or_default()
            .to_string();
        Ok(ToolSpec {
            name,
            description,
            parameters,
        })
    }

    /// Ends the session and the server process. Later calls fail with an error naming it.
    pub async fn close(&self) {
        let service = self
            .service
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(s) = service {
            if let Err(e) = s.cancel().await {
                tracing::warn!(server = %self.name, "MCP server shutdown: {e}");
            }
        }
    }
}

/// One tool of an MCP server.
pub struct McpTool {
    server: Arc<McpServer>,
    remote: String,
    spec: ToolSpec,
}

impl Tool for McpTool {
    fn spec(&self) -> &ToolSpec {
        &self.spec
    }

    fn call(&self, args: Value) -> ToolFuture<'_> {
        Box::pin(async move {
            let tool = self.spec.name.as_str();
            let mut params = CallToolRequestParams::new(self.remote.clone());
            if let Value::Object(map) = args {
                params = params.with_arguments(JsonObject::from_iter(map));
            }
            let res = self.server.peer.call_tool(params).await.map_err(|e| {
                ToolError::failed(tool, format!("MCP server `{}`: {e}", self.server.name))
            })?;
            result::to_value(tool, res)
        })
    }
}
