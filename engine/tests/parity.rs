//! Parity with Hugging Face transformers on the committed random-weight fixtures
//! (`tests/fixtures/parity/`, made by `scripts/reference/make_fixtures.sh`).
//!
//! For every case: one-pass prefill, chunked prefill through a session, one-token-at-a-time
//! decoding and a 16-token greedy continuation must match transformers' logits within 1e-4
//! (f32 compute) and pick identical greedy tokens. The bf16 case is also run in bf16 compute
//! against transformers' bf16 run.

use std::path::{Path, PathBuf};

use candle_core::Tensor;
use lfm_engine::folder::{ComputeDtype, LoadOptions, LoadedModel};
use lfm_engine::generate::{generate, GenerateOptions};
use lfm_engine::model::Logits;
use lfm_engine::sampling::SamplingParams;
use lfm_engine::session::Session;

const F32_TOL: f32 = 1e-4;
/// The f32 engine against transformers' own f32 run: each is an approximation of the exact
/// logits, the engine within [`F32_TOL`] and transformers' f32 run within 6e-5 on these
/// fixtures, so the two may differ by the sum.
const F32_PAIR_TOL: f32 = F32_TOL + 6e-5;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/parity")
}

struct Reference {
    tensors: std::collections::HashMap<String, (Vec<usize>, Vec<u8>, safetensors::Dtype)>,
}

impl Reference {
    fn open(dir: &Path) -> Self {
        let bytes =
            std::fs::read(dir.join("reference.safetensors")).expect("reference.safetensors");
        let st = safetensors::SafeTensors::deserialize(&bytes).expect("valid reference file");
        let tensors = st
            .tensors()
            .into_iter()
            .map(|(n, v)| (n, (v.shape().to_vec(), v.data().to_vec(), v.dtype())))
            .collect();
        Reference { tensors }
    }

    fn f32_rows(&self, name: &str) -> Vec<Vec<f32>> {
        let (shape, data, dtype) = &self.tensors[name];
        let flat: Vec<f32> = match dtype {
            safetensors::Dtype::F32 => data
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                .collect(),
            safetensors::Dtype::F64 => data
                .chunks_exact(8)
                .map(|c| f64::from_le_bytes(c.try_into().unwrap()) as f32)
                .collect(),
            other => panic!("{name}: unexpected dtype {other:?}"),
        };
        flat.chunks(shape[1]).map(<[f32]>::to_vec).collect()
    }

    fn ids(&self, name: &str) -> Vec<u32> {
        let (_, data, dtype) = &self.tensors[name];
        assert_eq!(*dtype, safetensors::Dtype::I64, "{name}");
        data.chunks_exact(8)
            .map(|c| i64::from_le_bytes(c.try_into().unwrap()) as u32)
            .collect()
    }
}

fn rows(t: &Tensor) -> Vec<Vec<f32>> {
    t.to_vec2::<f32>().unwrap()
}

fn max_diff(a: &[Vec<f32>], b: &[Vec<f32>]) -> f32 {
    assert_eq!(a.len(), b.len(), "row count");
    a.iter()
        .zip(b)
        .flat_map(|(x, y)| {
            assert_eq!(x.len(), y.len(), "row width");
            x.iter().zip(y).map(|(p, q)| (p - q).abs())
        })
        .fold(0.0, f32::max)
}

fn load(case: &str, dtype: ComputeDtype) -> LoadedModel {
    LoadedModel::load(&fixtures().join(case), &LoadOptions { dtype })
        .unwrap_or_else(|e| panic!("loading {case}: {e}"))
}

struct Measured {
    prefill: f32,
    chunked: f32,
    incremental: f32,
    greedy_logits: f32,
    greedy_tokens: Vec<u32>,
}

/// Runs every path of the engine over the case's prompt; `suffix` picks the recordings.
fn measure(m: &LoadedModel, r: &Reference, suffix: &str) -> Measured {
    let prompt = r.ids("prompt_tokens");
    let model = m.model.clone();
    let ctx = 64;

    let mut s = Session::new(model.clone(), ctx).unwrap();
    let prefill = rows(&s.forward(&prompt, Logits::All).unwrap());
    let prefill = max_diff(&prefill, &r.f32_rows(&format!("prefill_logits{suffix}")));

    let mut s = Session::new(model.clone(), ctx).unwrap();
    let mut chunked = Vec::new();
    for part in prompt.chunks(5) {
        chunked.extend(rows(&s.forward(part, Logits::All).unwrap()));
    }
    let chunked = max_diff(&chunked, &r.f32_rows(&format!("prefill_logits{suffix}")));

    let mut s = Session::new(model.clone(), ctx).unwrap();
    let inc: Vec<Vec<f32>> = prompt.iter().map(|&t| s.decode(t).unwrap()).collect();
    let incremental = max_diff(&inc, &r.f32_rows(&format!("incremental_logits{suffix}")));

    let want_tokens = r.ids(&format!("greedy_tokens{suffix}"));
    let mut s = Session::new(model.clone(), ctx).unwrap();
    let mut logits = s.prefill(&prompt, 7).unwrap();
    let mut got_logits = Vec::new();
    for &t in &want_tokens {
        got_logits.push(logits.clone());
        logits = s.decode(t).unwrap();
    }
    let greedy_logits = max_diff(&got_logits, &r.f32_rows(&format!("greedy_logits{suffix}")));

    let mut s = Session::new(model, ctx).unwrap();
    let opts = GenerateOptions {
        max_tokens: want_tokens.len(),
        sampling: SamplingParams::greedy(),
        stop_tokens: Vec::new(),
        stop_strings: Vec::new(),
        prefill_chunk: 4,
        draft: None,
    };
    let out = generate(&mut s, None, &prompt, &opts, &mut |_| {}).unwrap();
    Measured {
        prefill,
        chunked,
        incremental,
        greedy_logits,
        greedy_tokens: out.tokens,
    }
}

fn assert_within(case: &str, label: &str, got: &Measured, tol: f32) {
    eprintln!(
        "parity {case:<26} {label:<22} prefill {:.2e}  chunked {:.2e}  incremental {:.2e}  greedy-logits {:.2e}",
        got.prefill, got.chunked, got.incremental, got.greedy_logits
    );
    for (what, d) in [
        ("prefill", got.prefill),
        ("chunked prefill", got.chunked),
        ("incremental", got.incremental),
        ("greedy logits", got.greedy_logits),
    ] {
        assert!(
            d <= tol,
            "{case} ({label}): {what} max abs logit difference {d} > {tol}"
        );
    }
}

/// The f32 engine against transformers in float64 (the exact computation) within 1e-4, and
/// against transformers' own f32 run within 1.6e-4 (that run is itself 3e-5 to 6e-5 off its
/// f64 run on these fixtures, at |logit| up to 30). The f64 engine against the f64 reference
/// within 5e-5: the reference builds its RoPE tables in f32 even in a float64 model (its own
/// token-by-token and one-pass f64 logits differ by up to 1e-5), and the engine returns f32
/// logits.
fn check_f32_case(case: &str) {
    let r = Reference::open(&fixtures().join(case));
    let m = load(case, ComputeDtype::Auto);
    let vs_exact = measure(&m, &r, "_f64");
    assert_within(case, "f32 vs transformers f64", &vs_exact, F32_TOL);
    assert_eq!(
        vs_exact.greedy_tokens,
        r.ids("greedy_tokens_f64"),
        "{case}: greedy tokens vs f64"
    );
    let vs_f32 = measure(&m, &r, "");
    assert_within(case, "f32 vs transformers f32", &vs_f32, F32_PAIR_TOL);
    assert_eq!(
        vs_f32.greedy_tokens,
        r.ids("greedy_tokens"),
        "{case}: greedy tokens vs f32"
    );

    let m = load(case, ComputeDtype::F64);
    let both_f64 = measure(&m, &r, "_f64");
    assert_within(case, "f64 vs transformers f64", &both_f64, 5e-5);
    assert_eq!(
        both_f64.greedy_tokens,
        r.ids("greedy_tokens_f64"),
        "{case}: f64 greedy tokens"
    );
}

#[test]
fn old_style_config_tied_f32_matches_transformers() {
    check_f32_case("old_style_tied_f32");
}

#[test]
fn new_style_config_untied_single_kv_head_matches_transformers() {
    check_f32_case("new_style_untied_mqa_f32");
}

#[test]
fn bf16_checkpoint_upcast_to_f32_matches_transformers_f32() {
    check_f32_case("bf16_gqa_autoff");
}

#[test]
fn conv_bias_window_4_sharded_matches_transformers() {
    check_f32_case("convbias_L4_sharded_f32");
}

#[test]
fn all_attention_explicit_head_dim_matches_transformers() {
    check_f32_case("all_attention_headdim_f32");
}

/// bf16 compute against transformers' bf16 run. Both round every matmul output and
/// activation to bf16 (8 significant bits), but not at bit-identical points (different
/// accumulation orders in the matmuls flip an occasional last bit, and random weights amplify
/// it), so two correct bf16 engines differ by about as much as either differs from exact.
/// "Within bf16 rounding" is therefore checked as: the engine's bf16 logits are no further from
/// the exact (float64) logits than 1.5x transformers' own bf16 logits are, the two bf16 runs
/// are within 2x that error of each other, and the greedy tokens are identical.
#[test]
fn bf16_compute_matches_transformers_bf16_within_bf16_rounding() {
    let case = "bf16_gqa_autoff";
    let r = Reference::open(&fixtures().join(case));
    let exact = r.f32_rows("prefill_logits_f64");
    let theirs = r.f32_rows("prefill_logits_bf16");
    let their_err = max_diff(&theirs, &exact);
    let m = load(case, ComputeDtype::Bf16);
    let prompt = r.ids("prompt_tokens");
    let mut s = Session::new(m.model.clone(), 64).unwrap();
    let ours = rows(&s.forward(&prompt, Logits::All).unwrap());
    let our_err = max_diff(&ours, &exact);
    let between = max_diff(&ours, &theirs);
    let got = measure(&m, &r, "_bf16");
    eprintln!(
        "parity {case:<26} bf16: |ours-exact| {our_err:.3}  |transformers-exact| {their_err:.3}  |ours-transformers| {between:.3}  \
         (chunked {:.3}, incremental {:.3}, greedy-logits {:.3})",
        got.chunked, got.incremental, got.greedy_logits
    );
    assert!(
        our_err <= 1.5 * their_err,
        "bf16 error {our_err} vs transformers' own {their_err}"
    );
    for (what, d) in [
        ("prefill", between),
        ("chunked prefill", got.chunked),
        ("incremental", got.incremental),
        ("greedy logits", got.greedy_logits),
    ] {
        assert!(
            d <= 2.0 * their_err,
            "{case} bf16: {what} differs by {d} (transformers' own bf16 error {their_err})"
        );
    }
    assert_eq!(
        got.greedy_tokens,
        r.ids("greedy_tokens_bf16"),
        "{case} bf16: greedy tokens"
    );
}

#[test]
fn interleaved_sessions_on_one_model_do_not_disturb_each_other() {
    let case = "convbias_L4_sharded_f32";
    let r = Reference::open(&fixtures().join(case));
    let m = load(case, ComputeDtype::Auto);
    let prompt = r.ids("prompt_tokens");
    let want = r.f32_rows("incremental_logits_f64");
    let mut a = Session::new(m.model.clone(), 64).unwrap();
    let mut b = Session::new(m.model.clone(), 64).unwrap();
    let (mut ra, mut rb) = (Vec::new(), Vec::new());
    for &t in &prompt {
        ra.push(a.decode(t).unwrap());
        b.decode((t + 1) % 256).unwrap(); // unrelated traffic in between
        rb.push(b.decode(t).unwrap());
    }
    assert!(max_diff(&ra, &want) <= F32_TOL);
    assert_eq!(a.len(), prompt.len());
    assert_eq!(b.len(), 2 * prompt.len());
}
