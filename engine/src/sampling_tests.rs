use super::*;

fn sampler(p: SamplingParams) -> Sampler {
    Sampler::new(p).expect("valid params")
}

#[test]
fn greedy_takes_the_first_maximum() {
    let mut s = sampler(SamplingParams::greedy());
    assert_eq!(s.sample(&[0.1, 3.0, 3.0, -1.0], &[]).unwrap(), 1);
}

#[test]
fn repetition_penalty_divides_positive_and_multiplies_negative_logits() {
    let mut l = vec![2.0, -2.0, 1.0];
    apply_repetition_penalty(&mut l, &[0, 1, 0], 2.0);
    assert_eq!(l, vec![1.0, -4.0, 1.0]);
    // Penalised token 0 now ties token 2; greedy keeps the first.
    let mut s = sampler(SamplingParams {
        repetition_penalty: 2.5,
        ..SamplingParams::greedy()
    });
    assert_eq!(s.sample(&[2.0, -2.0, 1.0], &[0]).unwrap(), 2);
}

#[test]
fn same_seed_same_tokens_different_seed_differs() {
    let logits: Vec<f32> = (0..50).map(|i| ((i * 37) % 11) as f32 * 0.3).collect();
    let draw = |seed| {
        let mut s = sampler(SamplingParams {
            temperature: 1.0,
            seed,
            ..Default::default()
        });
        (0..64)
            .map(|_| s.sample(&logits, &[]).unwrap())
            .collect::<Vec<_>>()
    };
    assert_eq!(draw(7), draw(7));
    assert_ne!(draw(7), draw(8));
}

#[test]
fn top_k_top_p_and_min_p_restrict_the_support() {
    let logits = [5.0, 4.0, 3.0, 0.0, -1.0];
    let support = |p: SamplingParams| {
        let mut s = sampler(p);
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..2000 {
            seen.insert(s.sample(&logits, &[]).unwrap());
        }
        seen.into_iter().collect::<Vec<_>>()
    };
    let base = SamplingParams {
        temperature: 1.0,
        ..Default::default()
    };
    assert_eq!(
        support(SamplingParams {
            top_k: Some(2),
            ..base.clone()
        }),
        vec![0, 1]
    );
    // p(0) = 0.66, p(0)+p(1) = 0.91: top_p 0.9 keeps two tokens.
    assert_eq!(
        support(SamplingParams {
            top_p: Some(0.9),
            ..base.clone()
        }),
        vec![0, 1]
    );
    // min_p 0.3: p(1)/p(0) = e^-1 = 0.37 stays, p(2)/p(0) = 0.135 goes.
    assert_eq!(
        support(SamplingParams {
            min_p: Some(0.3),
            ..base.clone()
        }),
        vec![0, 1]
    );
    assert_eq!(support(base).len(), 5);
}

#[test]
fn masked_logits_are_never_drawn() {
    let mut s = sampler(SamplingParams {
        temperature: 2.0,
        ..Default::default()
    });
    let logits = [f32::NEG_INFINITY, 0.0, f32::NEG_INFINITY, 0.0];
    for _ in 0..200 {
        let t = s.sample(&logits, &[]).unwrap();
        assert!(t == 1 || t == 3);
    }
    assert!(s.sample(&[f32::NEG_INFINITY; 3], &[]).is_err());
}

#[test]
fn invalid_params_name_the_argument() {
    let e = Sampler::new(SamplingParams {
        top_p: Some(1.5),
        ..Default::default()
    })
    .unwrap_err();
    assert!(e.to_string().contains("top_p"));
    let e = Sampler::new(SamplingParams {
        temperature: -1.0,
        ..Default::default()
    })
    .unwrap_err();
    assert!(e.to_string().contains("temperature"));
}
