//! SwiGLU feed-forward: `w2(silu(w1·x) ⊙ w3·x)`.

use candle_core::Tensor;

use super::linear::Linear;
use crate::error::Result;

/// The feed-forward block of every decoder layer.
#[derive(Debug, Clone)]
pub struct FeedForward {
    pub(crate) w1: Linear,
    pub(crate) w2: Linear,
    pub(crate) w3: Linear,
}

impl FeedForward {
    /// Applies the block to `[T, H]`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut gu = Linear::forward_many(&[&self.w1, &self.w3], x)?.into_iter();
        let (Some(gate), Some(up)) = (gu.next(), gu.next()) else {
            unreachable!("forward_many returns one output per layer")
        };
        self.w2.forward(&(gate.silu()? * up)?)
    }
}
