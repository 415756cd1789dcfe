//! Tests of the KV cache: attention read in place, and which copies group. Compiled only for
//! tests (`#[cfg(test)] mod tests` in `mod.rs`): the `unwrap`s here fail the test that hit them.

mod attend {
    use super::super::*;

    /// `attend` of one query against the widened copy and plain softmax attention, with GQA
    /// (8 query heads over 2 KV heads) and a capacity larger than the length.
    #[test]
    fn attend_matches_attention_over_the_widened_cache() {
        let (nkv, nh, hd, len) = (2, 8, 16, 37);
        let mut c = KvCache::new(nkv, hd, 64, 64, DType::F16, DType::F32).unwrap();
        let val = |i: usize| ((i * 7919 % 1000) as f32 / 500.0) - 1.0;
        let k: Vec<f32> = (0..nkv * len * hd).map(val).collect();
        let v: Vec<f32> = (0..nkv * len * hd).map(|i| val(i + 13)).collect();
        let kt = Tensor::from_vec(k, (nkv, len, hd), &Device::Cpu).unwrap();
        let vt = Tensor::from_vec(v, (nkv, len, hd), &Device::Cpu).unwrap();
        c.append(&kt, &vt).unwrap();
        let q: Vec<f32> = (0..nh * hd).map(|i| val(i + 101)).collect();
        let scale = 0.25f32;
        let worst = attend_vs_view(&c, &q, nh, scale);
        assert!(worst < 1e-5, "max difference {worst}");
        // Not f32 compute: the caller takes the general path.
        let mut f = KvCache::new(nkv, hd, 64, 64, DType::F16, DType::F16).unwrap();
        f.append(
            &kt.to_dtype(DType::F16).unwrap(),
            &vt.to_dtype(DType::F16).unwrap(),
        )
        .unwrap();
        assert!(f.attend(&q, 1, nh, scale).unwrap().is_none());
    }

    /// The largest difference between `attend` of one query (`[nh, hd]`) and plain softmax
    /// attention over the cache's widened copy ([`KvCache::view`]).
    fn attend_vs_view(c: &KvCache, q: &[f32], nh: usize, scale: f32) -> f32 {
        let got = c.attend(q, 1, nh, scale).unwrap().unwrap();
        let (kw, vw) = c.view().unwrap();
        let kw: Vec<Vec<Vec<f32>>> = kw.to_vec3().unwrap();
        let vw: Vec<Vec<Vec<f32>>> = vw.to_vec3().unwrap();
        let (hd, len) = (kw[0][0].len(), c.len());
        let g = nh / kw.len();
        let mut worst = 0f32;
        for i in 0..nh {
            let h = i / g;
            let qi = &q[i * hd..(i + 1) * hd];
            let s: Vec<f32> = (0..len)
                .map(|t| qi.iter().zip(&kw[h][t]).map(|(a, b)| a * b).sum::<f32>() * scale)
                .collect();
            let max = s.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let e: Vec<f32> = s.iter().map(|x| (x - max).exp()).collect();
            let sum: f32 = e.iter().sum();
            for d in 0..hd {
                let want: f32 = (0..len).map(|t| e[t] / sum * vw[h][t][d]).sum();
                worst = worst.max((want - got[i * hd + d]).abs());
            }
        }
        worst
    }

    /// Keys are held in transposed blocks of 256 positions: appends of uneven sizes across
    /// block ends and through growth read back as written ([`KvCache::view`], f32 storage),
    /// as do a deep copy and rows rewritten after a rollback; attention over them matches.
    #[test]
    fn appends_across_blocks_read_back_as_written() {
        let (nkv, hd) = (2, 24);
        let val = |i: usize| ((i * 7919 % 1000) as f32 / 500.0) - 1.0;
        let rows = |n: usize, seed: usize| {
            let k: Vec<f32> = (0..nkv * n * hd).map(|i| val(i + seed)).collect();
            let v: Vec<f32> = (0..nkv * n * hd).map(|i| val(i + seed + 7)).collect();
            (
                Tensor::from_vec(k, (nkv, n, hd), &Device::Cpu).unwrap(),
                Tensor::from_vec(v, (nkv, n, hd), &Device::Cpu).unwrap(),
            )
        };
        let mut c = KvCache::new(nkv, hd, 16, 1024, DType::F32, DType::F32).unwrap();
        let (mut ks, mut vs) = (vec![], vec![]);
        for (i, n) in [5, 300, 1, 250, 3].into_iter().enumerate() {
            let (k, v) = rows(n, 1000 * i);
            c.append(&k, &v).unwrap();
            ks.push(k);
            vs.push(v);
        }
        let same = |c: &KvCache, ks: &[Tensor], vs: &[Tensor]| {
            let (k, v) = c.view().unwrap();
            let want_k: Vec<Vec<Vec<f32>>> = Tensor::cat(ks, 1).unwrap().to_vec3().unwrap();
            let want_v: Vec<Vec<Vec<f32>>> = Tensor::cat(vs, 1).unwrap().to_vec3().unwrap();
            assert_eq!(k.to_vec3::<f32>().unwrap(), want_k);
            assert_eq!(v.to_vec3::<f32>().unwrap(), want_v);
        };
        assert_eq!(c.len(), 559);
        same(&c, &ks, &vs);
        same(&c.deep_clone(0).unwrap(), &ks, &vs);
        let q: Vec<f32> = (0..4 * nkv * hd).map(|i| val(i + 77)).collect();
        let worst = attend_vs_view(&c, &q, 4 * nkv, 0.2);
        assert!(worst < 1e-5, "max difference {worst}");
        // Back to 260 (inside the second block) and on with other rows.
        c.truncate(260);
        let (k, v) = rows(10, 5000);
        c.append(&k, &v).unwrap();
        let head = |t: &Tensor| t.narrow(1, 0, 255).unwrap();
        same(
            &c,
            &[ks[0].clone(), head(&ks[1]), k],
            &[vs[0].clone(), head(&vs[1]), v],
        );
    }
}

mod share {
    use super::super::read::{shared_groups, KvRead};
    use super::super::*;

    fn rows(n: usize, seed: usize) -> (Tensor, Tensor) {
        let val = |i: usize| (((i + seed) * 7919 % 2003) as f32 / 1001.0) - 1.0;
        let k: Vec<f32> = (0..2 * n * 64).map(val).collect();
        let v: Vec<f32> = (0..2 * n * 64).map(|i| val(i + 5)).collect();
        (
            Tensor::from_vec(k, (2, n, 64), &Device::Cpu).unwrap(),
            Tensor::from_vec(v, (2, n, 64), &Device::Cpu).unwrap(),
        )
    }

    fn cache() -> KvCache {
        KvCache::new(2, 64, 16, 2048, DType::F16, DType::F32).unwrap()
    }

    fn push(c: &mut KvCache, n: usize, seed: usize) {
        let (k, v) = rows(n, seed);
        c.append(&k, &v).unwrap();
    }

    /// `(len of the group, members)` of each shared group, for `counts` queries each.
    fn groups(caches: &[&KvCache], counts: &[usize]) -> Vec<(usize, Vec<usize>)> {
        let reads: Vec<KvRead> = caches.iter().map(|c| c.read().unwrap().unwrap()).collect();
        shared_groups(caches, counts, &reads)
            .into_iter()
            .map(|g| (g.len, g.members))
            .collect()
    }

    /// Copies of one prefix (and copies of copies) group for the rows they hold alike, the
    /// source too; a copy that rewrites a prefix row holds only the rows before it alike, and
    /// copies made after the source rewrote its rows group apart from the earlier ones.
    #[test]
    fn copies_of_one_prefix_group_until_their_rows_differ() {
        let mut src = cache();
        push(&mut src, 600, 1);
        let mut a = src.deep_clone(700).unwrap();
        let mut b = cache();
        src.copy_into(&mut b).unwrap();
        let mut c = a.deep_clone(700).unwrap(); // a copy of a copy
        push(&mut a, 1, 2);
        push(&mut b, 40, 3);
        push(&mut c, 1, 4);
        push(&mut src, 1, 5);
        // Every query comes after the 600 rows they share.
        assert_eq!(
            groups(&[&a, &b, &c, &src], &[1, 40, 1, 1]),
            [(600, vec![0, 1, 2, 3])]
        );
        // Queries that reach into the prefix shorten the shared part.
        assert_eq!(groups(&[&a, &b], &[1, 300]), [(340, vec![0, 1])]);
        // `b` goes back to 500 and writes there: it holds 500 rows alike.
        b.truncate(500);
        push(&mut b, 2, 6);
        assert_eq!(groups(&[&a, &b], &[1, 2]), [(500, vec![0, 1])]);
        // Under the threshold nothing is shared.
        b.truncate(200);
        push(&mut b, 1, 7);
        assert!(groups(&[&a, &b], &[1, 1]).is_empty());
        // The source rewrites its rows: a copy made now is of other rows than `a`'s.
        src.truncate(10);
        push(&mut src, 700, 8);
        let d = src.deep_clone(800).unwrap();
        assert_eq!(groups(&[&a, &d, &src], &[1, 1, 1]), [(709, vec![1, 2])]);
        // A cache that other rows are copied into leaves its old group.
        let mut e = d.deep_clone(800).unwrap();
        assert_eq!(groups(&[&d, &e], &[1, 1]).len(), 1);
        a.copy_into(&mut e).unwrap();
        assert!(groups(&[&d, &e], &[1, 1]).is_empty());
        e.release().unwrap();
        push(&mut e, 600, 1);
        assert!(groups(&[&a, &e], &[1, 1]).is_empty());
    }

    /// The batched attention of copies of one prefix (read once through a group) gives what
    /// each cache gives alone.
    #[test]
    fn forked_caches_attend_as_each_alone() {
        let mut src = cache();
        push(&mut src, 700, 1);
        let mut forks: Vec<KvCache> = (0..3).map(|_| src.deep_clone(800).unwrap()).collect();
        let counts = [1, 5, 1];
        for (i, (f, &n)) in forks.iter_mut().zip(&counts).enumerate() {
            push(f, 3 * i + n, 10 + i);
        }
        let refs: Vec<&KvCache> = forks.iter().collect();
        assert_eq!(groups(&refs, &counts), [(700, vec![0, 1, 2])]);
        let nh = 8;
        let q: Vec<f32> = (0..7 * nh * 64)
            .map(|i| ((i * 31 % 97) as f32 / 48.0) - 1.0)
            .collect();
        let got = attend_all(&refs, &q, &counts, nh, 0.125).unwrap().unwrap();
        let mut at = 0;
        let mut want = Vec::new();
        for (f, &n) in forks.iter().zip(&counts) {
            let w = n * nh * 64;
            want.extend(f.attend(&q[at..at + w], n, nh, 0.125).unwrap().unwrap());
            at += w;
        }
        let worst = want
            .iter()
            .zip(&got)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(got.len() == want.len() && worst < 1e-6, "{worst}");
    }
}
