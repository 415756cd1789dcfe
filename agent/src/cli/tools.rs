//! `lfm-agent tools list|call`: the tools the config declares (built-ins, command tools, MCP
//! servers' tools), as the agent sees them, and one call through the same path the agent's
//! calls take (schema validation, timeout, output cap).

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use lfm_agent::config::Config;
use serde_json::Value;

use super::agent_args::{build_tools, open_index, shut_down};

#[derive(Debug, Args)]
pub struct ToolsCmd {
    #[command(subcommand)]
    command: ToolsSub,
    /// Config file (default: ./lfm-agent.toml when it exists).
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Print JSON.
    #[arg(long, global = true)]
    json: bool,
}

#[derive(Debug, Subcommand)]
enum ToolsSub {
    /// Every tool: name, description, parameters.
    List,
    /// Call one tool with JSON arguments.
    Call {
        /// The tool's name.
        name: String,
        /// Its arguments, a JSON object.
        #[arg(default_value = "{}")]
        args: String,
    },
}

pub fn run(c: ToolsCmd) -> Result<()> {
    let config = Config::load(c.config.as_deref())?;
    let call = match &c.command {
        ToolsSub::Call { name, args } => {
            let args: Value = serde_json::from_str(args)
                .with_context(|| format!("arguments: not JSON: {args}"))?;
            Some((name.clone(), args))
        }
        ToolsSub::List => None,
    };
    let retriever = open_index(&config.index, &[])?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let (reg, servers) = build_tools(&config, retriever, &rt)?;
    let out = match call {
        None => list(&reg, c.json),
        Some((name, args)) => rt
            .block_on(reg.call(&name, args))
            .map_err(anyhow::Error::from)
            .map(|o| {
                if c.json {
                    println!(
                        "{}",
                        serde_json::json!({"value": o.value, "truncated": o.truncated})
                    );
                } else {
                    println!("{}", o.text);
                }
            }),
    };
    shut_down(rt, servers);
    out
}

fn list(reg: &lfm_tools::Registry, json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(&reg.specs())?);
    } else {
        for s in reg.specs() {
            println!(
                "{}: {}\n    parameters: {}",
                s.name, s.description, s.parameters
            );
        }
    }
    Ok(())
}
