use std::path::{Path, PathBuf};

use super::*;
use crate::config::LayerKind;
use crate::synth::{write_gguf, Preset};

fn small_file(dir: &Path) -> PathBuf {
    let p = dir.join("m.gguf");
    let mut w = GgufWriter::new();
    w.add("general.architecture", Value::String("lfm2".into()))
        .add(
            "some.array",
            Value::Array(vec![Value::I32(0), Value::I32(-3)]),
        )
        .add("some.f64", Value::F64(0.25))
        .add_tensor("a.weight", &[32, 2], GgmlType::Q8_0)
        .add_tensor("b.weight", &[5], GgmlType::F32);
    w.write(&p, |i, _, buf| {
        buf.iter_mut()
            .enumerate()
            .for_each(|(j, b)| *b = (i + j) as u8);
        Ok(())
    })
    .unwrap();
    p
}

fn err(path: &Path) -> String {
    GgufFile::open(path).unwrap_err().to_string()
}

#[test]
fn written_files_read_back_with_their_metadata_and_aligned_tensors() {
    let dir = tempfile::tempdir().unwrap();
    let g = GgufFile::open(&small_file(dir.path())).unwrap();
    assert_eq!(g.version(), 3);
    assert_eq!(g.get("some.f64"), Some(&Value::F64(0.25)));
    assert_eq!(
        g.get("some.array")
            .and_then(Value::as_array)
            .map(|a| a.len()),
        Some(2)
    );
    let a = g.tensor("a.weight").unwrap();
    assert_eq!((a.dims.clone(), a.type_id, a.len), (vec![32, 2], 8, 68));
    let b = g.tensor("b.weight").unwrap();
    assert_eq!(b.offset % DEFAULT_ALIGNMENT, 0);
    assert_eq!(b.offset - a.offset, 96, "68 bytes padded to 96");
}

#[test]
fn truncation_anywhere_is_an_error_that_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let p = small_file(dir.path());
    let bytes = std::fs::read(&p).unwrap();
    let end = {
        let g = GgufFile::open(&p).unwrap();
        let b = g.tensor("b.weight").unwrap();
        b.offset + b.len
    };
    let cut = dir.path().join("cut.gguf");
    // Every prefix that ends inside the header, the metadata, the tensor infos or the data;
    // only the trailing alignment padding may go missing.
    for n in 0..bytes.len() {
        std::fs::write(&cut, &bytes[..n]).unwrap();
        match GgufFile::open(&cut) {
            Err(e) => assert!(n < end && e.to_string().contains("cut.gguf"), "{n}: {e}"),
            Ok(_) => assert!(n >= end, "a file cut at {n} of {end} bytes opened"),
        }
    }
}

#[test]
fn wrong_magic_old_version_and_big_endian_files_are_named_as_such() {
    let dir = tempfile::tempdir().unwrap();
    let p = small_file(dir.path());
    let bytes = std::fs::read(&p).unwrap();
    let q = dir.path().join("x.gguf");
    let mut b = bytes.clone();
    b[..4].copy_from_slice(b"GGML");
    std::fs::write(&q, &b).unwrap();
    assert!(err(&q).contains("not a GGUF file"));
    let mut b = bytes.clone();
    b[4..8].copy_from_slice(&1u32.to_le_bytes());
    std::fs::write(&q, &b).unwrap();
    assert!(err(&q).contains("version 1"));
    let mut b = bytes.clone();
    b[4..8].copy_from_slice(&3u32.to_be_bytes());
    std::fs::write(&q, &b).unwrap();
    assert!(err(&q).contains("big-endian"));
}

#[test]
fn absurd_counts_are_refused_before_allocating() {
    let dir = tempfile::tempdir().unwrap();
    let p = small_file(dir.path());
    let mut b = std::fs::read(&p).unwrap();
    // tensor count
    b[8..16].copy_from_slice(&u64::MAX.to_le_bytes());
    let q = dir.path().join("x.gguf");
    std::fs::write(&q, &b).unwrap();
    assert!(err(&q).contains("tensor count"), "{}", err(&q));
}

#[test]
fn a_tensor_past_the_end_of_the_file_is_reported_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let p = small_file(dir.path());
    let b = std::fs::read(&p).unwrap();
    let end = GgufFile::open(&p)
        .unwrap()
        .tensor("b.weight")
        .unwrap()
        .offset
        + 20;
    let q = dir.path().join("short.gguf");
    std::fs::write(&q, &b[..end - 4]).unwrap();
    let e = err(&q);
    assert!(
        e.contains("`b.weight`") && e.contains("past the end"),
        "{e}"
    );
}

#[test]
fn unsupported_tensor_types_are_named_when_the_model_asks_for_them() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("q5.gguf");
    let mut w = GgufWriter::new();
    w.add_tensor("a.weight", &[32, 2], GgmlType::Q8_0);
    w.write(&p, |_, _, _| Ok(())).unwrap();
    // Rewrite the type id of a.weight (Q8_0 = 8) to Q5_0 (6): same block size class.
    let mut b = std::fs::read(&p).unwrap();
    let at = b.windows(4).rposition(|w| w == 8u32.to_le_bytes()).unwrap();
    b[at..at + 4].copy_from_slice(&6u32.to_le_bytes());
    std::fs::write(&p, &b).unwrap();
    let g = GgufFile::open(&p).unwrap();
    let e = g.matrix("a.weight", 2, 32).unwrap_err().to_string();
    assert!(e.contains("`a.weight`") && e.contains("Q5_0"), "{e}");
}

#[test]
fn another_architecture_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("llama.gguf");
    let mut w = GgufWriter::new();
    w.add("general.architecture", Value::String("llama".into()));
    w.write(&p, |_, _, _| Ok(())).unwrap();
    let e = config_from_gguf(&GgufFile::open(&p).unwrap())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("`llama`") && e.contains("general.architecture"),
        "{e}"
    );
}

#[test]
fn the_synthetic_1_2b_header_describes_the_published_shape() {
    // Only the header matters here; write the tiny preset and check the lfm2 keys map back.
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("tiny.gguf");
    write_gguf(Preset::Tiny, GgmlType::Q8_0, 3, &p).unwrap();
    let g = GgufFile::open(&p).unwrap();
    let c = config_from_gguf(&g).unwrap();
    let want = crate::config::ModelConfig::from_raw(
        &serde_json::from_value(Preset::Tiny.config()).unwrap(),
        Path::new("config.json"),
    )
    .unwrap();
    assert_eq!(c.layer_kinds, want.layer_kinds);
    assert_eq!(c.layer_kinds[2], LayerKind::Attention);
    assert_eq!(
        (
            c.hidden_size,
            c.ff_dim,
            c.num_heads,
            c.num_kv_heads,
            c.head_dim
        ),
        (
            want.hidden_size,
            want.ff_dim,
            want.num_heads,
            want.num_kv_heads,
            want.head_dim
        )
    );
    assert!(c.tie_word_embeddings && c.synthetic);
    assert_eq!(c.eos_token_ids, vec![7]);
    let t = tokenizer_from_gguf(&g).unwrap();
    let json = crate::synth::synth_tokenizer_json(c.vocab_size, 3).unwrap();
    let reference = crate::text::Tokenizer::from_bytes(json.to_string().as_bytes()).unwrap();
    for text in [
        "Hello world",
        "<|im_start|>user\nx<|im_end|>",
        " a  b\n\nc 123",
    ] {
        assert_eq!(
            t.encode(text).unwrap(),
            reference.encode(text).unwrap(),
            "{text:?}"
        );
    }
}
