//! `lfm-tools` will own the `Tool` trait, the tool registry, JSON Schema validation of tool
//! arguments (`jsonschema`), the built-in tools, command tools and the MCP client.
//! It must never depend on the engine: to the engine a tool call is only a grammar.
