//! The f32 values of a CPU tensor, read in place.

use candle_core::{CpuStorage, DType, Storage, Tensor};

use crate::error::Result;

/// Runs `f` on the values of `x` in row-major order: in place when `x` is a contiguous f32
/// tensor in CPU memory (the activations of every f32 pass), else on a converted copy. The
/// tensor's storage stays read-locked while `f` runs, so `f` must not write to it.
pub(crate) fn with_f32<R>(x: &Tensor, f: impl FnOnce(&[f32]) -> R) -> Result<R> {
    {
        let (storage, layout) = x.storage_and_layout();
        if let (Storage::Cpu(CpuStorage::F32(v)), Some((a, b))) =
            (&*storage, layout.contiguous_offsets())
        {
            return Ok(f(&v[a..b]));
        }
    }
    let v = x.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
    Ok(f(&v))
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn views_and_copies_give_the_same_values() -> Result<()> {
        let x = Tensor::arange(0f32, 24., &Device::Cpu)?.reshape((4, 6))?;
        let want: Vec<f32> = (0..24).map(|i| i as f32).collect();
        // In place (contiguous), a narrowed view, a transposed view (copied), another dtype.
        assert_eq!(with_f32(&x, |v| v.to_vec())?, want);
        assert_eq!(with_f32(&x.narrow(0, 1, 2)?, |v| v.to_vec())?, &want[6..18]);
        let t = x.t()?;
        let tv: Vec<f32> = t.flatten_all()?.to_vec1()?;
        assert_eq!(with_f32(&t, |v| v.to_vec())?, tv);
        assert_eq!(with_f32(&x.to_dtype(DType::F64)?, |v| v.to_vec())?, want);
        Ok(())
    }
}
