//! `lfm-prompts` will own the task prompts (triage, ask, extract) and their output schemas,
//! and render the system turn for a task. It holds no model code.
