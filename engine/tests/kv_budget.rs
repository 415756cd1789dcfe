//! The KV budget bounds resident memory: six conversations of three turns each share a
//! batcher whose budget fits about two of them, so idle sessions are evicted and turns wait
//! for room. The KV buffers held in the process (counted where they are allocated and freed)
//! never exceed the budget, every conversation gets the greedy tokens it gets alone, and
//! everything is given back at the end.
//!
//! One test in its own binary: the KV counter is process-wide, and no other test may allocate
//! KV while this one measures.

use std::path::Path;
use std::sync::{Arc, Barrier};
use std::time::Duration;

use lfm_engine::batch::{BatchOptions, BatchedSession, Batcher};
use lfm_engine::folder::{LoadOptions, LoadedModel};
use lfm_engine::model::Lfm2Model;
use lfm_engine::session::{kv_memory, reset_kv_peak, Session, Snapshot};

const CONTEXT: usize = 64;
const NEW_TOKENS: usize = 6;
const TURNS: usize = 3;

fn argmax(v: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &x) in v.iter().enumerate() {
        if x > v[best] {
            best = i;
        }
    }
    best as u32
}

/// The user's part of turn `turn` of conversation `c`.
fn user(c: u32, turn: usize, vocab: u32) -> Vec<u32> {
    let n = 9 + (c as usize + turn) % 5;
    (0..n as u32)
        .map(|i| (c * 7919 + turn as u32 * 613 + i * 104_729 + i * i * 31) % vocab)
        .collect()
}

/// Runs a conversation on `s`: each turn holds room for the whole conversation so far plus
/// its new tokens, goes on from the previous turn's state when that is still there (else
/// prefills the conversation again), and decodes greedily. Returns the generated tokens.
/// With `together`, every conversation begins each turn at once (so that, from the second
/// turn on, the first to begin finds the others parked and must evict one).
fn converse(s: &mut BatchedSession, c: u32, vocab: u32, together: Option<&Barrier>) -> Vec<u32> {
    let mut convo: Vec<u32> = Vec::new();
    let mut point: Option<Snapshot> = None;
    let mut generated = Vec::new();
    for turn in 0..TURNS {
        if let Some(b) = together {
            b.wait();
        }
        convo.extend(user(c, turn, vocab));
        s.begin(convo.len() + NEW_TOKENS, None).unwrap();
        let start = match &point {
            Some(p) if s.can_restore(p) => {
                s.restore(p).unwrap();
                p.tokens().len()
            }
            _ => {
                s.reset().unwrap();
                0
            }
        };
        let mut logits = s.prefill(&convo[start..], 5).unwrap();
        for _ in 0..NEW_TOKENS {
            let t = argmax(&logits);
            generated.push(t);
            convo.push(t);
            logits = s.decode(t).unwrap();
        }
        point = Some(s.snapshot().unwrap());
        s.end();
    }
    generated
}

#[test]
fn resident_kv_stays_within_the_budget() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/gguf/micro-q8_0.gguf");
    let m: Arc<Lfm2Model> = LoadedModel::load(&path, &LoadOptions::default())
        .unwrap()
        .model;
    let vocab = m.config().vocab_size as u32;
    let conversations = 6u32;
    let alone: Vec<Vec<u32>> = (0..conversations)
        .map(|c| {
            let s = Session::new(m.clone(), CONTEXT).unwrap();
            converse(&mut BatchedSession::new(s, None).unwrap(), c, vocab, None)
        })
        .collect();

    let per_token = {
        let mut s = Session::new(m.clone(), CONTEXT).unwrap();
        s.release_kv().unwrap();
        s.reserve_kv(10).unwrap();
        s.kv_bytes() / 10
    };
    // The longest conversation's last turn is 3 × 13 + 3 × 6 = 57 tokens; two fit at once.
    let budget = 120;
    let b = Batcher::new(BatchOptions {
        max_batch: 4,
        kv_budget: budget,
        wait: Duration::from_millis(5),
    })
    .unwrap();
    let before = kv_memory();
    reset_kv_peak();
    let together = Barrier::new(conversations as usize);
    let batched: Vec<Vec<u32>> = std::thread::scope(|sc| {
        let hs: Vec<_> = (0..conversations)
            .map(|c| {
                let (m, b, together) = (m.clone(), b.clone(), &together);
                sc.spawn(move || {
                    let kv = m.default_kv_dtype();
                    let s = Session::with_capacity(m, CONTEXT, kv, 0).unwrap();
                    let mut s = BatchedSession::new(s, Some(b)).unwrap();
                    converse(&mut s, c, vocab, Some(together))
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let after = kv_memory();
    let used = b.budget_use();

    assert_eq!(
        alone, batched,
        "a conversation's tokens changed when batched"
    );
    assert!(
        after.peak - before.live <= budget * per_token,
        "peak KV {} bytes over the budget's {}",
        after.peak - before.live,
        budget * per_token,
    );
    assert!(used.peak <= budget, "{used:?}");
    // Six sequences, at most four in a pass.
    assert!(
        (1..=4).contains(&b.largest_pass()),
        "{} sequences in one pass",
        b.largest_pass()
    );
    assert!(
        used.evictions > 0,
        "the budget never forced an eviction: {used:?}"
    );
    // Every session dropped: nothing held, in the budget or in memory.
    assert_eq!(used.used, 0, "{used:?}");
    assert_eq!(after.live, before.live);
}
