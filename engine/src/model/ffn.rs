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
        let gate = self.w1.forward(x)?.silu()?;
        let up = self.w3.forward(x)?;
        self.w2.forward(&(gate * up)?)
    }
}
