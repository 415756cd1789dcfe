//! `lfm-evals` will own the task suites, their scoring and the report: measured quality, speed
//! and validity for every task, using the agent exactly as a user would.
