//! Sessions: chunked prefill, decode, snapshot / restore / fork, context limits.

use std::path::Path;
use std::sync::Arc;

use lfm_engine::folder::{LoadOptions, LoadedModel};
use lfm_engine::model::{Lfm2Model, Logits};
use lfm_engine::session::Session;
use lfm_engine::Error;

fn model(case: &str) -> Arc<Lfm2Model> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/parity")
        .join(case);
    LoadedModel::load(&dir, &LoadOptions::default())
        .unwrap()
        .model
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

const PROMPT: [u32; 10] = [1, 17, 40, 3, 99, 250, 7, 7, 12, 201];

#[test]
fn restore_returns_to_the_exact_state_for_every_layer_kind() {
    for case in [
        "old_style_tied_f32",
        "convbias_L4_sharded_f32",
        "all_attention_headdim_f32",
    ] {
        let mut s = Session::new(model(case), 64).unwrap();
        s.prefill(&PROMPT[..6], 4).unwrap();
        let snap = s.snapshot();
        let a = s.prefill(&PROMPT[6..], 4).unwrap();
        // Go somewhere else entirely, then come back.
        s.restore(&snap).unwrap();
        assert_eq!(s.tokens(), &PROMPT[..6]);
        let b = s.prefill(&PROMPT[6..], 2).unwrap();
        assert!(
            max_diff(&a, &b) < 1e-5,
            "{case}: after restore {}",
            max_diff(&a, &b)
        );
    }
}

#[test]
fn fork_is_independent_of_its_parent() {
    let m = model("convbias_L4_sharded_f32");
    let mut parent = Session::new(m.clone(), 64).unwrap();
    parent.prefill(&PROMPT[..5], 5).unwrap();
    let mut child = parent.fork().unwrap();
    let from_child = child.prefill(&[33, 44, 55], 3).unwrap();
    let from_parent = parent.prefill(&PROMPT[5..], 5).unwrap();

    let mut fresh = Session::new(m.clone(), 64).unwrap();
    let want_parent = fresh.prefill(&PROMPT, 3).unwrap();
    // The child against a fresh session fed the same chunks (so the same kernels run):
    // anything the parent did after the fork would show.
    let mut fresh = Session::new(m, 64).unwrap();
    fresh.prefill(&PROMPT[..5], 5).unwrap();
    let want_child = fresh.prefill(&[33, 44, 55], 3).unwrap();
    assert!(max_diff(&from_parent, &want_parent) < 1e-5);
    assert_eq!(max_diff(&from_child, &want_child), 0.0);
}

#[test]
fn snapshot_after_rewritten_positions_is_refused_not_wrong() {
    let mut s = Session::new(model("old_style_tied_f32"), 64).unwrap();
    s.prefill(&PROMPT[..3], 3).unwrap();
    let early = s.snapshot();
    s.prefill(&PROMPT[3..8], 5).unwrap();
    let late = s.snapshot();
    s.restore(&early).unwrap();
    // Same tokens again: the KV rows are unchanged, so `late` is still valid.
    s.prefill(&PROMPT[3..5], 2).unwrap();
    s.restore(&late).unwrap();
    assert_eq!(s.len(), 8);
    // ... and it really is the state after PROMPT[..8]: the next step matches a fresh run.
    let resumed = s.decode(PROMPT[8]).unwrap();
    let mut fresh = Session::new(model("old_style_tied_f32"), 64).unwrap();
    let want = fresh.prefill(&PROMPT[..9], 9).unwrap();
    assert!(
        max_diff(&resumed, &want) < 1e-4,
        "{}",
        max_diff(&resumed, &want)
    );
    s.restore(&late).unwrap();
    // Different tokens overwrite rows 3..: `late` must now be refused.
    s.restore(&early).unwrap();
    s.prefill(&[60, 61], 2).unwrap();
    let e = s.restore(&late).unwrap_err();
    assert!(matches!(e, Error::StaleSnapshot(_)), "{e}");
    // A snapshot from a session of another lineage is refused too.
    let other = Session::new(model("old_style_tied_f32"), 64)
        .unwrap()
        .snapshot();
    assert!(matches!(s.restore(&other), Err(Error::StaleSnapshot(_))));
}

#[test]
fn kv_cache_grows_past_its_initial_reservation() {
    // 512 rows are reserved up front; go well past it and compare with chunked prefill.
    let m = model("all_attention_headdim_f32");
    let tokens: Vec<u32> = (0..700u32).map(|i| (i * 37 + 11) % 256).collect();
    let mut a = Session::new(m.clone(), 1024).unwrap();
    let la = a.prefill(&tokens, 700).unwrap();
    let mut b = Session::new(m, 1024).unwrap();
    let lb = b.prefill(&tokens, 97).unwrap();
    assert!(max_diff(&la, &lb) < 1e-4, "{}", max_diff(&la, &lb));
    assert!(b.kv_bytes() > 0);
}

#[test]
fn exceeding_the_context_is_an_error_and_changes_nothing() {
    let mut s = Session::new(model("old_style_tied_f32"), 8).unwrap();
    s.prefill(&PROMPT[..6], 6).unwrap();
    let e = s.prefill(&PROMPT[6..], 4).unwrap_err();
    assert!(
        matches!(
            e,
            Error::ContextFull {
                needed: 10,
                limit: 8
            }
        ),
        "{e}"
    );
    assert_eq!(s.len(), 6);
    s.decode(5).unwrap();
    s.decode(6).unwrap();
    assert!(matches!(s.decode(7), Err(Error::ContextFull { .. })));
    let too_big = Session::new(model("old_style_tied_f32"), 10_000_000);
    assert!(too_big.is_err());
}

#[test]
fn out_of_range_tokens_leave_the_session_untouched() {
    let m = model("old_style_tied_f32");
    let mut s = Session::new(m.clone(), 32).unwrap();
    s.prefill(&PROMPT[..4], 4).unwrap();
    let e = s.forward(&[5, 100_000], Logits::All).unwrap_err();
    assert!(
        matches!(e, Error::TokenOutOfRange { id: 100_000, .. }),
        "{e}"
    );
    assert_eq!(s.len(), 4);
    let after = s.prefill(&PROMPT[4..], 6).unwrap();
    let mut fresh = Session::new(m, 32).unwrap();
    assert!(max_diff(&after, &fresh.prefill(&PROMPT, 10).unwrap()) < 1e-5);
}

#[test]
fn reset_starts_over() {
    let m = model("new_style_untied_mqa_f32");
    let mut s = Session::new(m, 32).unwrap();
    let first = s.prefill(&PROMPT, 10).unwrap();
    s.reset().unwrap();
    assert!(s.is_empty());
    let again = s.prefill(&PROMPT, 10).unwrap();
    assert_eq!(
        first, again,
        "same chunking after reset must be bit-identical"
    );
    s.reset().unwrap();
    let d = max_diff(&first, &s.prefill(&PROMPT, 3).unwrap());
    assert!(d < 1e-4, "{d}");
}
