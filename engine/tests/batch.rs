//! Batched forward passes: several sessions in one pass give each the logits it gets alone.
//!
//! Four sequences run on a schedule where they join and leave at different steps, and each
//! step mixes prefill chunks with one-token decodes at different positions. Every chunk's
//! logits are compared with the same sequence run alone, chunk by chunk: max abs difference
//! 1e-4 on the f32 checkpoints, and the same greedy token (with the same tolerance) on the
//! GGUF files, whose quantized kernels take the stacked rows as one matrix. Then the same
//! through a `Batcher` from four threads, and its KV budget.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use lfm_engine::batch::{BatchOptions, BatchedSession, Batcher};
use lfm_engine::folder::{LoadOptions, LoadedModel};
use lfm_engine::model::{Lfm2Model, Logits};
use lfm_engine::session::Session;
use lfm_engine::Error;

fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(rel)
}

fn load(rel: &str) -> Arc<Lfm2Model> {
    LoadedModel::load(&fixture(rel), &LoadOptions::default())
        .unwrap_or_else(|e| panic!("{rel}: {e}"))
        .model
}

/// One sequence: its tokens, cut into chunks, and the step at which it joins.
struct Plan {
    tokens: Vec<u32>,
    chunks: Vec<usize>,
    join: usize,
}

fn plans(vocab: u32) -> Vec<Plan> {
    let toks = |seed: u32, n: usize| -> Vec<u32> {
        (0..n as u32)
            .map(|i| (seed * 7919 + i * 104_729 + i * i * 31) % vocab)
            .collect()
    };
    vec![
        // A long prompt in chunks, then decodes; leaves early.
        Plan {
            tokens: toks(1, 21),
            chunks: vec![9, 8, 1, 1, 1, 1],
            join: 0,
        },
        // Short prompt, many decodes: still running when the others leave.
        Plan {
            tokens: toks(2, 14),
            chunks: vec![3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1],
            join: 0,
        },
        // Joins a running batch with a prefill chunk while the others decode.
        Plan {
            tokens: toks(3, 19),
            chunks: vec![12, 4, 1, 1, 1],
            join: 2,
        },
        // Joins last, one-token prompt.
        Plan {
            tokens: toks(4, 5),
            chunks: vec![1, 1, 1, 1, 1],
            join: 4,
        },
    ]
}

fn rows(t: &candle_core::Tensor) -> Vec<Vec<f32>> {
    t.to_vec2::<f32>().unwrap()
}

fn argmax(v: &[f32]) -> usize {
    v.iter()
        .enumerate()
        .fold(
            (0, f32::NEG_INFINITY),
            |b, (i, &x)| if x > b.1 { (i, x) } else { b },
        )
        .0
}

/// Which logits sequence `i` asks for: the same for all, or (`None`) every position for the
/// odd ones and the last for the even ones, so that passes mix both.
fn want_of(want: Option<Logits>, i: usize) -> Logits {
    match want {
        Some(w) => w,
        None if i % 2 == 1 => Logits::All,
        None => Logits::Last,
    }
}

/// Each sequence alone: the logits of every chunk (the rows it asks for).
fn alone(m: &Arc<Lfm2Model>, plans: &[Plan], want: Option<Logits>) -> Vec<Vec<Vec<Vec<f32>>>> {
    plans
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let want = want_of(want, i);
            let mut s = Session::new(m.clone(), 64).unwrap();
            let mut at = 0;
            p.chunks
                .iter()
                .map(|&n| {
                    let out = s.forward(&p.tokens[at..at + n], want).unwrap();
                    at += n;
                    rows(&out)
                })
                .collect()
        })
        .collect()
}

/// All sequences on the schedule, batched: the logits of every chunk, per sequence.
fn batched(m: &Arc<Lfm2Model>, plans: &[Plan], want: Option<Logits>) -> Vec<Vec<Vec<Vec<f32>>>> {
    let mut sessions: Vec<Session> = plans
        .iter()
        .map(|_| Session::new(m.clone(), 64).unwrap())
        .collect();
    let mut next = vec![0usize; plans.len()];
    let mut at = vec![0usize; plans.len()];
    let mut out: Vec<Vec<Vec<Vec<f32>>>> = vec![Vec::new(); plans.len()];
    let mut sizes = Vec::new();
    for step in 0.. {
        let live: Vec<usize> = (0..plans.len())
            .filter(|&i| plans[i].join <= step && next[i] < plans[i].chunks.len())
            .collect();
        if live.is_empty() {
            assert!(plans.iter().all(|p| p.join <= step), "a gap in the plan");
            break;
        }
        sizes.push(live.len());
        let chunks: Vec<&[u32]> = live
            .iter()
            .map(|&i| &plans[i].tokens[at[i]..at[i] + plans[i].chunks[next[i]]])
            .collect();
        let mut refs: Vec<&mut Session> = sessions
            .iter_mut()
            .enumerate()
            .filter(|(i, _)| live.contains(i))
            .map(|(_, s)| s)
            .collect();
        let wants: Vec<Logits> = live.iter().map(|&i| want_of(want, i)).collect();
        let logits = Session::forward_batch(&mut refs, &chunks, &wants).unwrap();
        assert_eq!(logits.len(), live.len());
        for (k, &i) in live.iter().enumerate() {
            out[i].push(rows(&logits[k]));
            at[i] += plans[i].chunks[next[i]];
            next[i] += 1;
        }
    }
    // The schedule really batched: a step with all four, and sequences leaving and joining.
    assert!(sizes.contains(&4) && sizes.contains(&1), "{sizes:?}");
    out
}

fn compare(case: &str, quantized: bool) {
    let m = load(case);
    let vocab = m.config().vocab_size as u32;
    let p = plans(vocab);
    for want in [Some(Logits::Last), Some(Logits::All), None] {
        let (a, b) = (alone(&m, &p, want), batched(&m, &p, want));
        let mut worst = 0f32;
        let mut scale = 0f32;
        for (i, (sa, sb)) in a.iter().zip(&b).enumerate() {
            assert_eq!(sa.len(), sb.len(), "{case}: sequence {i}");
            for (c, (ca, cb)) in sa.iter().zip(sb).enumerate() {
                assert_eq!(ca.len(), cb.len(), "{case}: sequence {i} chunk {c}");
                for (ra, rb) in ca.iter().zip(cb) {
                    let d = ra
                        .iter()
                        .zip(rb)
                        .map(|(x, y)| (x - y).abs())
                        .fold(0.0, f32::max);
                    worst = worst.max(d);
                    scale = ra.iter().fold(scale, |m, x| m.max(x.abs()));
                    assert!(d <= 1e-4, "{case} {want:?}: sequence {i} chunk {c}: {d}");
                    if quantized {
                        assert_eq!(argmax(ra), argmax(rb), "{case}: sequence {i} chunk {c}");
                    }
                }
            }
        }
        eprintln!("{case} {want:?}: max abs difference {worst:e} (largest logit {scale})");
    }
}

#[test]
fn batched_f32_sessions_match_each_alone() {
    for case in [
        "parity/convbias_L4_sharded_f32",
        "parity/all_attention_headdim_f32",
        "parity/new_style_untied_mqa_f32",
        "parity/old_style_tied_f32",
    ] {
        compare(case, false);
    }
}

#[test]
fn batched_gguf_sessions_match_each_alone() {
    // f16 KV caches: one-token decodes read them in place, prefill chunks take the tiled path.
    for case in [
        "gguf/micro-q4_0.gguf",
        "gguf/micro-q8_0.gguf",
        "gguf/micro-f16.gguf",
        "gguf/micro-q4_k_m.gguf",
    ] {
        compare(case, true);
    }
}

/// Sessions forked from one prefilled prompt (the pipelines' shared system turn), batched with
/// the session they were forked from: their attention reads the prefix they hold alike once
/// for all of them, and each still gets the logits it gets alone (a fresh session prefilling
/// the whole prompt): decodes and a prefill chunk, over several steps. Max abs difference 1e-4
/// in f32; on the GGUF files the same greedy token (the bar), within 1e-2.
fn compare_forks(case: &str, quantized: bool) {
    let m = load(case);
    let vocab = m.config().vocab_size as u32;
    let toks = |seed: u32, n: usize| -> Vec<u32> {
        (0..n as u32)
            .map(|i| (seed * 7919 + i * 104_729 + i * i * 31) % vocab)
            .collect()
    };
    let prefix = toks(9, 300);
    // Each sequence's chunks after the prefix: the root and two forks decode, one fork
    // prefills a chunk first.
    let plans: Vec<Vec<Vec<u32>>> = (0..4u32)
        .map(|i| {
            let first = if i == 2 { 12 } else { 1 };
            let t = toks(20 + i, first + 4);
            let mut chunks = vec![t[..first].to_vec()];
            chunks.extend(t[first..].chunks(1).map(<[u32]>::to_vec));
            chunks
        })
        .collect();
    let alone: Vec<Vec<Vec<f32>>> = plans
        .iter()
        .map(|chunks| {
            let mut s = Session::new(m.clone(), 512).unwrap();
            s.prefill(&prefix, 64).unwrap();
            chunks
                .iter()
                .map(|c| {
                    s.forward(c, Logits::Last)
                        .unwrap()
                        .flatten_all()
                        .unwrap()
                        .to_vec1()
                        .unwrap()
                })
                .collect()
        })
        .collect();
    let mut root = Session::new(m.clone(), 512).unwrap();
    root.prefill(&prefix, 64).unwrap();
    let mut sessions = vec![];
    for _ in 1..plans.len() {
        sessions.push(root.fork().unwrap());
    }
    sessions.insert(0, root);
    let mut worst = 0f32;
    for step in 0..plans[0].len() {
        let chunks: Vec<&[u32]> = plans.iter().map(|p| p[step].as_slice()).collect();
        let mut refs: Vec<&mut Session> = sessions.iter_mut().collect();
        let wants = vec![Logits::Last; chunks.len()];
        let logits = Session::forward_batch(&mut refs, &chunks, &wants).unwrap();
        for (i, l) in logits.iter().enumerate() {
            let got: Vec<f32> = l.flatten_all().unwrap().to_vec1().unwrap();
            let want = &alone[i][step];
            let d = want
                .iter()
                .zip(&got)
                .map(|(x, y)| (x - y).abs())
                .fold(0.0, f32::max);
            worst = worst.max(d);
            // The shared keys are read once but each row meets them as it does alone, so
            // the bound is that of any batched sequence (see `compare`).
            assert!(d <= 1e-4, "{case}: sequence {i} step {step}: {d}");
            if quantized {
                assert_eq!(
                    argmax(want),
                    argmax(&got),
                    "{case}: sequence {i} step {step}"
                );
            }
        }
    }
    eprintln!("{case} forks: max abs difference {worst:e}");
}

#[test]
fn batched_forks_of_one_prefix_match_each_alone() {
    for (case, quantized) in [
        ("parity/all_attention_headdim_f32", false),
        ("parity/new_style_untied_mqa_f32", false),
        ("gguf/micro-q4_0.gguf", true),
        ("gguf/micro-f16.gguf", true),
    ] {
        compare_forks(case, quantized);
    }
}

#[test]
fn a_bad_batch_moves_no_session() {
    let m = load("parity/convbias_L4_sharded_f32");
    let mut a = Session::new(m.clone(), 16).unwrap();
    let mut b = Session::new(m.clone(), 8).unwrap();
    a.prefill(&[1, 2, 3], 3).unwrap();
    b.prefill(&[4, 5], 2).unwrap();
    let before = a.prefill(&[9], 1).unwrap();
    let snap = a.snapshot();
    // b cannot take 7 more tokens: nothing runs, a stays where it was.
    let last = [Logits::Last; 2];
    let e = Session::forward_batch(&mut [&mut a, &mut b], &[&[6], &[1; 7]], &last);
    assert!(matches!(e, Err(Error::ContextFull { .. })), "{e:?}");
    // A token out of range fails inside the pass: both are rolled back.
    let vocab = m.config().vocab_size as u32;
    let e = Session::forward_batch(&mut [&mut a, &mut b], &[&[6], &[vocab]], &last);
    assert!(matches!(e, Err(Error::TokenOutOfRange { .. })), "{e:?}");
    assert_eq!((a.len(), b.len()), (4, 2));
    let e = Session::forward_batch(&mut [&mut a], &[&[1], &[2]], &last[..1]);
    assert!(e.is_err());
    // As many logits choices as sessions, or nothing runs.
    let e = Session::forward_batch(&mut [&mut a, &mut b], &[&[6], &[1]], &last[..1]);
    assert!(
        matches!(&e, Err(e) if e.to_string().contains("wants")),
        "{e:?}"
    );
    // After the refusals, a continues exactly as if they never happened.
    a.restore(&snap).unwrap();
    let x = a.decode(7).unwrap();
    let mut c = Session::new(m, 16).unwrap();
    c.prefill(&[1, 2, 3, 9], 4).unwrap();
    let y = c.decode(7).unwrap();
    let d = x
        .iter()
        .zip(&y)
        .map(|(p, q)| (p - q).abs())
        .fold(0.0, f32::max);
    // Same tolerance as the equivalence tests above: a's positions ran as chunks of 3, 1 and 1,
    // c's as one chunk of 4, so their projections sum in different orders.
    assert!(d <= 1e-4 && before.len() == x.len(), "{d}");
}

/// Greedy continuation of `prompt` for `n` tokens on `s`.
fn greedy(s: &mut lfm_engine::batch::BatchedSession, prompt: &[u32], n: usize) -> Vec<u32> {
    let mut logits = s.prefill(prompt, 4).unwrap();
    let mut out = Vec::new();
    for _ in 0..n {
        let t = argmax(&logits) as u32;
        out.push(t);
        logits = s.decode(t).unwrap();
    }
    out
}

#[test]
fn threads_sharing_a_batcher_get_what_they_get_alone() {
    let m = load("gguf/micro-q8_0.gguf");
    let vocab = m.config().vocab_size as u32;
    let p = plans(vocab);
    let alone: Vec<Vec<u32>> = p
        .iter()
        .map(|p| {
            let mut s = BatchedSession::new(Session::new(m.clone(), 64).unwrap(), None).unwrap();
            greedy(&mut s, &p.tokens, 12)
        })
        .collect();
    let b = Batcher::new(BatchOptions {
        max_batch: 4,
        kv_budget: 4 * 40,
        wait: Duration::from_millis(20),
    })
    .unwrap();
    let shared: Vec<Vec<u32>> = std::thread::scope(|sc| {
        let hs: Vec<_> = p
            .iter()
            .map(|p| {
                let (m, b) = (m.clone(), b.clone());
                sc.spawn(move || {
                    let mut s = BatchedSession::new(Session::new(m, 64).unwrap(), Some(b)).unwrap();
                    s.begin(p.tokens.len() + 12, None).unwrap();
                    let out = greedy(&mut s, &p.tokens, 12);
                    s.end();
                    out
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(alone, shared);
    let (passes, per_pass) = b.stats();
    assert!(per_pass > 1.5, "{passes} passes, {per_pass} per pass");
    assert!(
        b.pass_time() > Duration::ZERO,
        "the passes' time is counted"
    );

    // The KV budget: more than all of it is refused; a hold that does not fit waits for
    // room (the parked sessions were dropped with their owners).
    assert_eq!(b.budget_use().used, 0);
    assert!(matches!(b.hold(161, None), Err(Error::ContextFull { .. })));
    let big = b.hold(150, None).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::scope(|sc| {
        let b = b.clone();
        sc.spawn(move || {
            let _m = b.hold(20, None).unwrap();
            tx.send(()).unwrap();
        });
        assert!(
            rx.recv_timeout(Duration::from_millis(200)).is_err(),
            "joined over budget"
        );
        drop(big);
        rx.recv_timeout(Duration::from_secs(5))
            .expect("joined once room was freed");
    });
}

/// Waits until `n` turns are in line for room in `b`.
fn until_waiting(b: &Batcher, n: usize) {
    let start = std::time::Instant::now();
    while b.waiting() != n {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{} waiting, not {n}",
            b.waiting()
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Turns get room in the order they asked for it (a small turn that would fit does not
/// overtake a larger one ahead of it), and a cancelled wait leaves the line.
#[test]
fn holds_wait_in_line_and_can_be_cancelled() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let b = Batcher::new(BatchOptions {
        max_batch: 4,
        kv_budget: 100,
        wait: Duration::from_millis(1),
    })
    .unwrap();
    let mut held = b.hold(90, None).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::scope(|sc| {
        for (name, tokens, ahead) in [("large", 60, 0), ("small", 5, 1)] {
            until_waiting(&b, ahead);
            let (b, tx) = (b.clone(), tx.clone());
            sc.spawn(move || {
                let m = b.hold(tokens, None).unwrap();
                tx.send(name).unwrap();
                // Gives the room back only once it has reported.
                drop(m);
            });
        }
        until_waiting(&b, 2);
        assert!(
            rx.recv_timeout(Duration::from_millis(200)).is_err(),
            "a turn overtook the one ahead of it"
        );
        // Room for the large turn only: the small one gets room when the large one has
        // reported and given it back, so the reports come in the order of the grants (with
        // all the room free at once, both threads would race to report).
        held.shrink(40);
        let order: Vec<&str> = (0..2)
            .map(|_| rx.recv_timeout(Duration::from_secs(5)).unwrap())
            .collect();
        assert_eq!(order, ["large", "small"]);
    });
    assert_eq!(b.waiting(), 0);
    drop(held);

    let held = b.hold(90, None).unwrap();
    let cancel = AtomicBool::new(false);
    std::thread::scope(|sc| {
        let waiter = sc.spawn(|| b.hold(60, Some(&cancel)).map(|_| ()));
        until_waiting(&b, 1);
        cancel.store(true, Ordering::Relaxed);
        let e = waiter.join().unwrap();
        assert!(matches!(e, Err(Error::Cancelled(_))), "{e:?}");
    });
    // The cancelled turn left the line: a turn that fits joins at once.
    assert_eq!(b.waiting(), 0);
    let _small = b.hold(10, None).unwrap();
    drop(held);
}

/// A session's turn that does not fit waits while another session is in its turn, and gets
/// its room when that turn ends: the ended session is parked, and evicted for it.
#[test]
fn a_turn_short_of_room_waits_for_a_running_turn_to_end() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let m = load("gguf/micro-q8_0.gguf");
    let b = Batcher::new(BatchOptions {
        max_batch: 4,
        kv_budget: 64,
        wait: Duration::from_millis(1),
    })
    .unwrap();
    let session = |m: &Arc<Lfm2Model>| {
        let kv = m.default_kv_dtype();
        let s = Session::with_capacity(m.clone(), 64, kv, 0).unwrap();
        BatchedSession::new(s, Some(b.clone())).unwrap()
    };
    let mut first = session(&m);
    first.begin(48, None).unwrap();
    first.prefill(&[1, 2, 3, 4, 5], 4).unwrap();
    let ended = AtomicBool::new(false);
    std::thread::scope(|sc| {
        let waiter = sc.spawn(|| {
            let mut second = session(&m);
            second.begin(32, None).unwrap();
            // Its room came only once the first turn had ended.
            let after_end = ended.load(Ordering::SeqCst);
            let logits = second.prefill(&[6, 7, 8], 4).unwrap();
            second.end();
            (after_end, logits.len())
        });
        until_waiting(&b, 1);
        ended.store(true, Ordering::SeqCst);
        first.end();
        let (after_end, n) = waiter.join().unwrap();
        assert!(
            after_end,
            "the second turn began while the first held the room"
        );
        assert_eq!(n, m.config().vocab_size);
    });
    let used = b.budget_use();
    assert_eq!(used.evictions, 1, "{used:?}");
    assert!(used.peak <= 64, "{used:?}");
    // The first session was evicted while parked: its next turn starts from nothing.
    first.begin(8, None).unwrap();
    assert!(first.tokens().is_empty());
    first.end();
}
