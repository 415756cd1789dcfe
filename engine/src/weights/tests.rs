use super::*;
use std::collections::HashMap;

fn write(dir: &Path, file: &str, tensors: &[(&str, Dtype, Vec<usize>)]) -> PathBuf {
    let data: Vec<(String, Vec<u8>, Dtype, Vec<usize>)> = tensors
        .iter()
        .map(|(n, d, s)| {
            let elems: usize = s.iter().product();
            let bytes = vec![0u8; elems * d.bitsize() / 8];
            (n.to_string(), bytes, *d, s.clone())
        })
        .collect();
    let views: HashMap<String, safetensors::tensor::TensorView<'_>> = data
        .iter()
        .map(|(n, b, d, s)| {
            (
                n.clone(),
                safetensors::tensor::TensorView::new(*d, s.clone(), b).unwrap(),
            )
        })
        .collect();
    let path = dir.join(file);
    safetensors::serialize_to_file(views, None, &path).unwrap();
    path
}

#[test]
fn loads_and_converts_supported_dtypes() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        SINGLE_FILE,
        &[("a", Dtype::BF16, vec![2, 3]), ("b", Dtype::F16, vec![4])],
    );
    let w = WeightFiles::open(dir.path()).unwrap();
    let a = w.load("a", &[2, 3], DType::F32).unwrap();
    assert_eq!(a.dims(), &[2, 3]);
    assert_eq!(a.dtype(), DType::F32);
    assert_eq!(w.dtype_of("b"), Some(DType::F16));
}

#[test]
fn wrong_shape_names_file_and_tensor() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        SINGLE_FILE,
        &[("layer.w", Dtype::F32, vec![2, 3])],
    );
    let w = WeightFiles::open(dir.path()).unwrap();
    let e = w
        .load("layer.w", &[3, 2], DType::F32)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("model.safetensors") && e.contains("layer.w") && e.contains("[3, 2]"),
        "{e}"
    );
    let e = w.load("nope", &[1], DType::F32).unwrap_err().to_string();
    assert!(e.contains("`nope` is missing"), "{e}");
}

#[test]
fn unsupported_dtype_is_named() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), SINGLE_FILE, &[("ids", Dtype::I64, vec![2])]);
    let w = WeightFiles::open(dir.path()).unwrap();
    let e = w.load("ids", &[2], DType::F32).unwrap_err().to_string();
    assert!(e.contains("ids") && e.contains("I64"), "{e}");
}

#[test]
fn truncated_file_is_reported_as_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), SINGLE_FILE, &[("a", Dtype::F32, vec![64])]);
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() - 10]).unwrap();
    let e = WeightFiles::open(dir.path())
        .err()
        .expect("truncated file must fail")
        .to_string();
    assert!(
        e.contains("model.safetensors") && e.contains("corrupt or truncated"),
        "{e}"
    );
    std::fs::write(&path, &bytes[..4]).unwrap();
    assert!(WeightFiles::open(dir.path()).is_err());
}

#[test]
fn sharded_index_is_followed_and_checked() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "model-00001-of-00002.safetensors",
        &[("a", Dtype::F32, vec![2])],
    );
    write(
        dir.path(),
        "model-00002-of-00002.safetensors",
        &[("b", Dtype::F32, vec![3])],
    );
    let index = |map: serde_json::Value| {
        std::fs::write(
            dir.path().join(INDEX_FILE),
            serde_json::json!({"metadata": {}, "weight_map": map}).to_string(),
        )
        .unwrap()
    };
    index(
        serde_json::json!({"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}),
    );
    let w = WeightFiles::open(dir.path()).unwrap();
    assert_eq!(w.load("b", &[3], DType::F32).unwrap().dims(), &[3]);

    index(
        serde_json::json!({"a": "model-00001-of-00002.safetensors", "b": "model-00003-of-00002.safetensors"}),
    );
    let e = WeightFiles::open(dir.path()).err().unwrap().to_string();
    assert!(
        e.contains("model-00003-of-00002.safetensors") && e.contains("missing"),
        "{e}"
    );

    index(serde_json::json!({"a": "model-00002-of-00002.safetensors"}));
    let e = WeightFiles::open(dir.path()).err().unwrap().to_string();
    assert!(e.contains("`a` is missing"), "{e}");
}

#[test]
fn folder_without_weights_says_what_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let e = WeightFiles::open(dir.path()).err().unwrap().to_string();
    assert!(
        e.contains("model.safetensors") && e.contains("missing"),
        "{e}"
    );
}
