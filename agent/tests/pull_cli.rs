//! `lfm-agent pull`, `models list|rm` and `--model OWNER/NAME`, end to end against the local
//! stand-in of the hub's HTTP API (`lfm_hub::standin`); no hub is reachable from here.

use std::path::Path;
use std::process::{Command, Output};

use lfm_hub::standin::{StandIn, StandInFile};

fn fixture(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../engine/tests/fixtures/gguf")
        .join(name)
}

fn lfm(home: &Path, endpoint: &str, args: &[&str], offline: bool) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_lfm-agent"));
    c.args(args)
        .env("HF_HOME", home)
        .env("HF_ENDPOINT", endpoint)
        .env_remove("HF_HUB_CACHE")
        .env_remove("HF_TOKEN");
    if offline {
        c.env("HF_HUB_OFFLINE", "1");
    } else {
        c.env_remove("HF_HUB_OFFLINE");
    }
    c.output().unwrap()
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn a_pulled_gguf_runs_by_its_repo_id_exactly_like_the_file_and_rm_removes_it() {
    let hub = StandIn::start().unwrap();
    let q4 = std::fs::read(fixture("micro-q4_0.gguf")).unwrap();
    let q8 = std::fs::read(fixture("micro-q8_0.gguf")).unwrap();
    hub.publish(
        "LiquidAI/LFM2.5-micro-GGUF",
        "feedface00000000000000000000000000000000",
        vec![
            StandInFile::new("README.md", b"synthetic\n".to_vec()),
            StandInFile::new("LFM2.5-micro-Q4_0.gguf", q4),
            StandInFile::new("LFM2.5-micro-Q8_0.gguf", q8),
        ],
    );
    let home = tempfile::tempdir().unwrap();
    let ep = hub.endpoint().to_string();

    let o = lfm(
        home.path(),
        &ep,
        &["pull", "LiquidAI/LFM2.5-micro-GGUF"],
        false,
    );
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}{err}");
    assert!(
        out.contains("LFM2.5-micro-Q4_0.gguf") && out.contains("sha256 ok"),
        "{out}"
    );
    assert!(out.contains("--model LiquidAI/LFM2.5-micro-GGUF"), "{out}");

    // The repo id loads the pulled file: the same greedy tokens as the fixture by path.
    let gen = |model: &str| {
        let o = lfm(
            home.path(),
            &ep,
            &[
                "generate",
                "--model",
                model,
                "--prompt",
                "hello",
                "--max-tokens",
                "6",
            ],
            true,
        );
        let (out, err) = text(&o);
        assert!(o.status.success(), "{model}: {out}{err}");
        out
    };
    let by_id = gen("LiquidAI/LFM2.5-micro-GGUF");
    let by_path = gen(fixture("micro-q4_0.gguf").to_str().unwrap());
    assert!(!by_id.is_empty());
    assert_eq!(by_id, by_path);

    // Offline, a pull answers from the cache; a file it does not have is named.
    let o = lfm(
        home.path(),
        &ep,
        &["pull", "LiquidAI/LFM2.5-micro-GGUF"],
        true,
    );
    assert!(o.status.success(), "{:?}", text(&o));
    assert!(text(&o).0.contains("already here"));
    let o = lfm(
        home.path(),
        &ep,
        &[
            "pull",
            "LiquidAI/LFM2.5-micro-GGUF",
            "--file",
            "LFM2.5-micro-Q8_0.gguf",
        ],
        true,
    );
    let (_, err) = text(&o);
    assert!(!o.status.success());
    assert!(
        err.contains("HF_HUB_OFFLINE") && err.contains("LiquidAI/LFM2.5-micro-GGUF"),
        "{err}"
    );

    let o = lfm(home.path(), &ep, &["models", "list"], true);
    let (out, _) = text(&o);
    assert!(
        out.contains("LiquidAI/LFM2.5-micro-GGUF") && out.contains("LFM2.5-micro-Q4_0.gguf"),
        "{out}"
    );

    let o = lfm(
        home.path(),
        &ep,
        &["models", "rm", "LiquidAI/LFM2.5-micro-GGUF"],
        true,
    );
    assert!(o.status.success(), "{:?}", text(&o));
    let o = lfm(home.path(), &ep, &["models", "list"], true);
    assert!(text(&o).0.contains("no models pulled"), "{:?}", text(&o));

    // A model reference that is neither a path nor pulled says both.
    let o = lfm(
        home.path(),
        &ep,
        &[
            "generate",
            "--model",
            "LiquidAI/LFM2.5-micro-GGUF",
            "--prompt",
            "x",
        ],
        true,
    );
    let (_, err) = text(&o);
    assert!(!o.status.success());
    assert!(
        err.contains("--model") && err.contains("lfm-agent pull LiquidAI/LFM2.5-micro-GGUF"),
        "{err}"
    );
    let o = lfm(home.path(), &ep, &["pull", "not a repo"], false);
    assert!(
        text(&o).1.contains("not a Hugging Face repo id"),
        "{:?}",
        text(&o)
    );
}
