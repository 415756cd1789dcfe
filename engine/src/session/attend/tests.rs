use half::f16;

use super::kernels::exp2;
use super::*;

/// Plain softmax attention over f32 rows (in f64), query `i` seeing keys `0..=pos + i`.
fn reference(q: &[f32], k: &[f32], v: &[f32], s: Shape, scale: f32) -> Vec<f32> {
    let (hd, g) = (s.head_dim, s.heads / s.kv_heads);
    let mut out = vec![0f32; s.queries * s.heads * hd];
    for i in 0..s.queries {
        for head in 0..s.heads {
            let kvh = head / g;
            let qi = &q[(i * s.heads + head) * hd..][..hd];
            let n = s.pos + i + 1;
            let row = |t: usize| (kvh * s.stride + t) * hd;
            let sc: Vec<f64> = (0..n)
                .map(|t| {
                    let d: f64 = (0..hd).map(|d| qi[d] as f64 * k[row(t) + d] as f64).sum();
                    d * scale as f64
                })
                .collect();
            let mx = sc.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let e: Vec<f64> = sc.iter().map(|x| (x - mx).exp()).collect();
            let sum: f64 = e.iter().sum();
            for d in 0..hd {
                let want: f64 = (0..n).map(|t| e[t] / sum * v[row(t) + d] as f64).sum();
                out[(i * s.heads + head) * hd + d] = want as f32;
            }
        }
    }
    out
}

/// Keys in rows (`[kv_heads, stride, head_dim]`, as [`reference`] reads them) in the
/// cache's transposed blocks, `[blocks, kv_heads, head_dim, BLOCK]` (past `stride`, `pad`).
fn transposed<T: Copy>(k: &[T], stride: usize, hd: usize, pad: T) -> Vec<T> {
    let heads = k.len() / (stride * hd);
    let mut t = Vec::with_capacity(k.len());
    for b in 0..stride.div_ceil(BLOCK) {
        for h in 0..heads {
            for d in 0..hd {
                t.extend((b * BLOCK..(b + 1) * BLOCK).map(|p| {
                    if p < stride {
                        k[(h * stride + p) * hd + d]
                    } else {
                        pad
                    }
                }));
            }
        }
    }
    t
}

fn values(n: usize, seed: usize) -> Vec<f32> {
    (0..n)
        .map(|i| (((i + seed) * 7919 % 2003) as f32 / 1001.0) - 1.0)
        .collect()
}

/// Tiles and blocks of every kind (one query, a tile boundary inside a block, a block
/// boundary inside a tile, a head dim that is not a lane multiple, no grouping), for f32 and
/// f16 storage and in every instruction set this CPU runs.
#[test]
fn matches_plain_softmax_attention() {
    let cases = [
        // heads, kv_heads, head_dim, queries, pos
        (8, 2, 16, 1, 0),
        (8, 2, 16, 1, 300),
        (8, 2, 64, 37, 0),
        (8, 2, 64, 70, 250),
        (4, 4, 24, 33, 520),
        (6, 2, 8, 300, 5),
        (16, 4, 64, 40, 600),
        // a decoded token's few rows over several blocks
        (32, 8, 64, 3, 700),
        (8, 2, 32, 2, 257),
    ];
    for (heads, kv_heads, head_dim, queries, pos) in cases {
        matches_reference(heads, kv_heads, head_dim, queries, pos, 2e-6);
    }
}

/// Long contexts, as long prompts and the 32K context make them: decoded tokens of the 1.2B
/// model's head shape after 16K keys and at the end of a 32K context, and a tiled prefill
/// chunk after 8K. The running sums fold in up to 128 blocks of keys here: f32 sums of 32K
/// terms (measured: 1.3e-5 at most, scalar, 32K keys), against an output whose every
/// block of keys moves it by more.
#[test]
fn matches_plain_softmax_attention_over_long_contexts() {
    for (heads, kv_heads, head_dim, queries, pos) in [
        (32, 8, 64, 1, 16_384),
        (8, 2, 64, 2, 32_766),
        (8, 2, 64, 33, 8_190),
    ] {
        matches_reference(heads, kv_heads, head_dim, queries, pos, 1e-4);
    }
}

/// Items reuse their thread's buffers. One over a wider head whose keys and values are all NaN
/// leaves NaN in every buffer, past the next item's head size too: the next item, a narrower
/// head padded to the same width, must still match the reference (its keys' padding rows meet
/// the queries' zero padding, so they must be zeroed, not left as they were).
#[test]
fn an_item_leaves_nothing_to_the_next_on_its_thread() {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .expect("a one-thread pool");
    pool.install(|| {
        let (hd, stride, queries) = (32, 300, 40);
        let s = Shape {
            heads: 4,
            kv_heads: 4,
            head_dim: hd,
            stride,
            queries,
            pos: stride - queries,
        };
        let nan = vec![f32::NAN; s.kv_heads * stride * hd];
        let keys = transposed(&nan, stride, hd, f32::NAN);
        let q = values(queries * s.heads * hd, 1);
        for isa in Isa::available() {
            let job = Job {
                q: &q,
                keys: Rows::F32(&keys),
                values: Rows::F32(&nan),
                shape: s,
                scale: 0.3,
            };
            assert!(attend_with(&job, isa).iter().all(|x| x.is_nan()));
        }
        // Head size 24, padded to 32 like the one above.
        matches_reference(4, 4, 24, 33, 520, 2e-6);
    });
}

/// One shape against [`reference`], for f32 and f16 storage, in every instruction set.
fn matches_reference(
    heads: usize,
    kv_heads: usize,
    head_dim: usize,
    queries: usize,
    pos: usize,
    bound: f32,
) {
    let stride = pos + queries + 3;
    let s = Shape {
        heads,
        kv_heads,
        head_dim,
        stride,
        queries,
        pos,
    };
    let q = values(queries * heads * head_dim, 1);
    let k = values(kv_heads * stride * head_dim, 2);
    let v = values(kv_heads * stride * head_dim, 3);
    let scale = 1.7 / (head_dim as f32).sqrt();
    // f16 storage reads the same rows rounded.
    let k16: Vec<f16> = k.iter().map(|&x| f16::from_f32(x)).collect();
    let v16: Vec<f16> = v.iter().map(|&x| f16::from_f32(x)).collect();
    let kr: Vec<f32> = k16.iter().map(|x| x.to_f32()).collect();
    let vr: Vec<f32> = v16.iter().map(|x| x.to_f32()).collect();
    let (kt, kt16) = (
        transposed(&k, stride, head_dim, 0.0),
        transposed(&k16, stride, head_dim, f16::ZERO),
    );
    let stored = [
        (
            "f32",
            Rows::F32(&kt),
            Rows::F32(&v),
            reference(&q, &k, &v, s, scale),
        ),
        (
            "f16",
            Rows::F16(&kt16),
            Rows::F16(&v16),
            reference(&q, &kr, &vr, s, scale),
        ),
    ];
    for (dtype, keys, values, want) in &stored {
        for isa in Isa::available() {
            let job = Job {
                q: &q,
                keys: *keys,
                values: *values,
                shape: s,
                scale,
            };
            let got = attend_with(&job, isa);
            let worst = want
                .iter()
                .zip(&got)
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            assert!(
                worst < bound,
                "{s:?} {dtype} {isa:?}: max difference {worst}"
            );
        }
    }
}

#[test]
fn exp2_is_close_to_the_library_function() {
    let mut worst = 0f32;
    for i in 0..=20_000 {
        let x = -(i as f32) * 0.006;
        let rel = ((exp2(x) - x.exp2()) / x.exp2()).abs();
        worst = worst.max(rel);
    }
    assert!(worst < 1e-6, "relative error {worst}");
    assert_eq!(exp2(f32::NEG_INFINITY), 0.0);
    assert_eq!(exp2(-200.0), 0.0);
    assert_eq!(exp2(0.0), 1.0);
}

/// Several jobs in one loop (a batched pass: each sequence over its own cache, queries of
/// different counts and positions, f16 and f32 storage) give each job's output alone, bit for
/// bit, stacked in order.
#[test]
fn several_jobs_give_each_alone_stacked() {
    let (heads, kv_heads, hd) = (8, 2, 32);
    // queries, pos: a decoded token, a prefill chunk over a tile boundary, a fresh prompt
    let shapes = [(1, 300), (45, 20), (7, 0)];
    // Each job's queries, keys, values and shape.
    type Data = (Vec<f32>, Vec<f32>, Vec<f32>, Shape);
    let data: Vec<Data> = shapes
        .iter()
        .enumerate()
        .map(|(i, &(queries, pos))| {
            let stride = pos + queries + 5;
            let s = Shape {
                heads,
                kv_heads,
                head_dim: hd,
                stride,
                queries,
                pos,
            };
            (
                values(queries * heads * hd, 10 + i),
                transposed(&values(kv_heads * stride * hd, 20 + i), stride, hd, 0.0),
                values(kv_heads * stride * hd, 30 + i),
                s,
            )
        })
        .collect();
    let halves: Vec<(Vec<f16>, Vec<f16>)> = data
        .iter()
        .map(|(_, k, v, _)| {
            let h = |x: &Vec<f32>| x.iter().map(|&x| f16::from_f32(x)).collect();
            (h(k), h(v))
        })
        .collect();
    let jobs: Vec<Job> = data
        .iter()
        .zip(&halves)
        .enumerate()
        .map(|(i, ((q, k, v, s), (k16, v16)))| Job {
            q,
            keys: if i == 1 { Rows::F16(k16) } else { Rows::F32(k) },
            values: if i == 1 { Rows::F16(v16) } else { Rows::F32(v) },
            shape: *s,
            scale: 0.3,
        })
        .collect();
    for isa in Isa::available() {
        let want: Vec<f32> = jobs.iter().flat_map(|j| attend_with(j, isa)).collect();
        assert_eq!(attend_many_with(&jobs, &[], isa), want, "{isa:?}");
    }
    assert!(attend_many(&[], &[]).is_empty());
}

/// Jobs whose caches begin with the same rows (sequences forked from one prefix), read once
/// for all of them through a shared group, give what each gives alone, bit for bit: decoded
/// tokens and a prefill chunk (stacked with the decoded rows in the shared items, alone in
/// tiles of their own), two shared blocks and a shared length that is not a block multiple,
/// f16 and f32 storage, and a job outside the group beside them.
#[test]
fn a_shared_prefix_read_once_gives_each_job_alone() {
    // heads, kv_heads, head_dim: the 1.2B model's group of 4 and head size 64, small
    // heads under one lane, a head size over one lane, multi-query.
    for (heads, kv_heads, hd) in [(8, 2, 64), (4, 2, 8), (6, 3, 24), (4, 1, 16)] {
        shared_prefix_case(heads, kv_heads, hd);
    }
}

fn shared_prefix_case(heads: usize, kv_heads: usize, hd: usize) {
    let shared = 560;
    // queries, pos of each job: decoded tokens right after the prefix and later, a prefill
    // chunk over several tiles; the last job is outside the group.
    let shapes = [(1, 560), (1, 700), (40, 570), (1, 800)];
    let stride = 900;
    let prefix = (
        values(kv_heads * stride * hd, 40),
        values(kv_heads * stride * hd, 41),
    );
    // Each job's cache: rows of its own, the first `shared` of each head copied from the
    // common prefix in the group's jobs.
    let caches: Vec<(Vec<f32>, Vec<f32>)> = (0..shapes.len())
        .map(|i| {
            let mut k = values(kv_heads * stride * hd, 50 + i);
            let mut v = values(kv_heads * stride * hd, 70 + i);
            for h in (0..kv_heads).filter(|_| i < 3) {
                let rows = h * stride * hd..(h * stride + shared) * hd;
                k[rows.clone()].copy_from_slice(&prefix.0[rows.clone()]);
                v[rows.clone()].copy_from_slice(&prefix.1[rows]);
            }
            (transposed(&k, stride, hd, 0.0), v)
        })
        .collect();
    let halves: Vec<(Vec<f16>, Vec<f16>)> = caches
        .iter()
        .map(|(k, v)| {
            let h = |x: &Vec<f32>| x.iter().map(|&x| f16::from_f32(x)).collect();
            (h(k), h(v))
        })
        .collect();
    let qs: Vec<Vec<f32>> = shapes
        .iter()
        .enumerate()
        .map(|(i, &(n, _))| values(n * heads * hd, 60 + i))
        .collect();
    for half in [false, true] {
        let rows = |i: usize| -> (Rows, Rows) {
            if half {
                (Rows::F16(&halves[i].0), Rows::F16(&halves[i].1))
            } else {
                (Rows::F32(&caches[i].0), Rows::F32(&caches[i].1))
            }
        };
        let jobs: Vec<Job> = shapes
            .iter()
            .enumerate()
            .map(|(i, &(queries, pos))| {
                let (keys, values) = rows(i);
                Job {
                    q: &qs[i],
                    keys,
                    values,
                    shape: Shape {
                        heads,
                        kv_heads,
                        head_dim: hd,
                        stride,
                        queries,
                        pos,
                    },
                    scale: 0.2,
                }
            })
            .collect();
        for isa in Isa::available() {
            let alone: Vec<f32> = jobs.iter().flat_map(|j| attend_with(j, isa)).collect();
            let (keys, values) = rows(1);
            let group = Shared {
                keys,
                values,
                stride,
                len: shared,
                members: vec![0, 1, 2],
            };
            let got = attend_many_with(&jobs, &[group], isa);
            assert_eq!(got, alone, "{heads}/{kv_heads}x{hd} f16 {half} {isa:?}");
        }
    }
}
