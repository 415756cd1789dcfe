//! Backends of the agent loop ([`crate::runner::Backend`]): the embedded engine
//! ([`EngineBackend`]), an OpenAI-compatible server ([`RemoteBackend`]), and a planner/writer pair ([`PlannerWriter`]: a Thinking model plans
//! and calls tools, an Instruct model writes the final answer).

mod engine;
mod remote;

pub use engine::{EngineBackend, EngineOptions, Generated, Observer};
pub use remote::{turn_from_reply, wire_messages, RemoteBackend, RemoteOptions};

use crate::runner::{Backend, BackendError, Turn, TurnRequest};
use crate::toolcall::parse_message;

/// Two models: `planner` takes every turn; when its turn is not a tool call, `writer` writes
/// the final answer from the same conversation (without tools, under the answer schema), and
/// the turn is the planner's thinking followed by the writer's answer.
pub struct PlannerWriter<P, W> {
    /// Plans and calls tools.
    pub planner: P,
    /// Writes the answer.
    pub writer: W,
}

impl<P: Backend, W: Backend> Backend for PlannerWriter<P, W> {
    fn prepare(
        &mut self,
        tools: &[&lfm_tools::ToolSpec],
        answer_schema: Option<&serde_json::Value>,
    ) -> Result<(), String> {
        self.planner.prepare(tools, answer_schema)?;
        self.writer.prepare(&[], answer_schema)
    }

    fn complete(&mut self, req: &TurnRequest<'_>) -> Result<Turn, BackendError> {
        let plan = self.planner.complete(req)?;
        // Names are not checked here: any call, known or not, is the loop's to answer.
        if !parse_message(&plan.text, &|_| true).calls.is_empty() {
            return Ok(plan);
        }
        let writer_req = TurnRequest {
            messages: req.messages,
            tools: &[],
            answer_schema: req.answer_schema,
            // The whole turn budget again: the planner's own answer is discarded, and the loop
            // counts both against the run's token limit.
            max_tokens: req.max_tokens,
            require_call: false,
            cancel: req.cancel,
        };
        let answer = self.writer.complete(&writer_req)?;
        let thinking = match plan.text.rfind("</think>") {
            Some(i) => &plan.text[..i + "</think>".len()],
            None => "",
        };
        Ok(Turn {
            text: format!("{thinking}{}", answer.text),
            prompt_tokens: plan.prompt_tokens + answer.prompt_tokens,
            completion_tokens: plan.completion_tokens + answer.completion_tokens,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed(&'static str, usize);

    impl Backend for Fixed {
        fn complete(&mut self, req: &TurnRequest<'_>) -> Result<Turn, BackendError> {
            self.1 = req.tools.len();
            Ok(Turn {
                text: self.0.to_string(),
                prompt_tokens: 3,
                completion_tokens: 5,
            })
        }
    }

    #[test]
    fn the_writer_answers_only_when_the_planner_does_not_call() {
        let req = TurnRequest {
            messages: &[],
            tools: &[],
            answer_schema: None,
            max_tokens: 100,
            require_call: false,
            cancel: None,
        };
        let mut p = PlannerWriter {
            planner: Fixed("<think>plan</think>{\"x\": 1}", 0),
            writer: Fixed("{\"x\": 2}", 9),
        };
        let t = p.complete(&req).unwrap();
        assert_eq!(t.text, "<think>plan</think>{\"x\": 2}");
        assert_eq!((t.prompt_tokens, t.completion_tokens), (6, 10));
        assert_eq!(p.writer.1, 0, "the writer is offered no tools");

        let mut p = PlannerWriter {
            planner: Fixed("<|tool_call_start|>[f()]<|tool_call_end|>", 0),
            writer: Fixed("unused", 9),
        };
        let t = p.complete(&req).unwrap();
        assert!(t.text.starts_with("<|tool_call_start|>"));
        assert_eq!(p.writer.1, 9, "the writer was not asked");
    }
}
