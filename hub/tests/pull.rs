//! `pull`, `list`, `remove` and `resolve` against the local stand-in of the hub's HTTP API.

use lfm_hub::standin::{StandIn, StandInFile};
use lfm_hub::verify::Checked;
use lfm_hub::{Hub, HubError, PullOptions, RepoId};

/// Bytes that are not all alike, so that a wrong range shows in the result.
fn payload(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[3] ^ seed)
        .collect()
}

fn gguf_repo(hub: &StandIn) -> (Vec<u8>, Vec<u8>) {
    let q4 = payload(300_000, 1);
    let q8 = payload(500_000, 2);
    hub.publish(
        "LiquidAI/LFM2.5-1.2B-Instruct-GGUF",
        "c0ffee0000000000000000000000000000000001",
        vec![
            StandInFile::new("README.md", b"# a model\n".to_vec()),
            StandInFile::new("LFM2.5-1.2B-Instruct-Q4_0.gguf", q4.clone()),
            StandInFile::new("LFM2.5-1.2B-Instruct-Q8_0.gguf", q8.clone()),
        ],
    );
    (q4, q8)
}

fn repo() -> RepoId {
    RepoId::parse("LiquidAI/LFM2.5-1.2B-Instruct-GGUF").unwrap()
}

fn hub_at(stand_in: &StandIn, cache: &std::path::Path) -> Hub {
    Hub::new(cache)
        .with_endpoint(stand_in.endpoint())
        .with_retries(0)
}

#[test]
fn a_gguf_pull_downloads_the_default_quant_verifies_it_and_resolves_by_repo_id() {
    let s = StandIn::start().unwrap();
    let (q4, _) = gguf_repo(&s);
    let cache = tempfile::tempdir().unwrap();
    let hub = hub_at(&s, cache.path());

    let p = hub.pull(&repo(), &PullOptions::default()).unwrap();
    assert_eq!(p.files.len(), 1);
    let f = &p.files[0];
    assert_eq!(f.name, "LFM2.5-1.2B-Instruct-Q4_0.gguf");
    assert_eq!(
        (f.checked, f.downloaded, f.bytes),
        (Checked::Sha256, true, 300_000)
    );
    assert_eq!(std::fs::read(&p.model_path).unwrap(), q4);
    assert_eq!(p.commit, "c0ffee0000000000000000000000000000000001");

    // The repo id now names the file, for any --model.
    let resolved = hub.resolve("LiquidAI/LFM2.5-1.2B-Instruct-GGUF").unwrap();
    assert_eq!(std::fs::read(resolved).unwrap(), q4);

    // A second pull finds it cached and verifies it without downloading.
    let before = s.ranges().len();
    let again = hub.pull(&repo(), &PullOptions::default()).unwrap();
    assert!(!again.files[0].downloaded);
    assert_eq!(again.files[0].checked, Checked::Sha256);
    assert_eq!(s.ranges().len(), before, "nothing was downloaded");

    let listed = hub.list().unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].repo, repo());
    assert_eq!(listed[0].files, ["LFM2.5-1.2B-Instruct-Q4_0.gguf"]);
    assert_eq!(listed[0].bytes, 300_000);
}

#[test]
fn a_broken_download_resumes_from_its_partial_file_on_the_next_pull() {
    let s = StandIn::start().unwrap();
    let (q4, _) = gguf_repo(&s);
    let cache = tempfile::tempdir().unwrap();
    let hub = hub_at(&s, cache.path());

    s.cut_next_download_after(120_000);
    let e = hub.pull(&repo(), &PullOptions::default()).unwrap_err();
    assert!(matches!(e, HubError::Api { .. }), "{e}");
    assert!(
        e.to_string()
            .contains("downloading LFM2.5-1.2B-Instruct-Q4_0.gguf"),
        "{e}"
    );

    let p = hub.pull(&repo(), &PullOptions::default()).unwrap();
    assert_eq!(std::fs::read(&p.model_path).unwrap(), q4);
    assert_eq!(p.files[0].checked, Checked::Sha256);
    assert!(
        s.ranges().iter().any(|r| r == "bytes=120000-"),
        "the second pull asked only for the rest: {:?}",
        s.ranges()
    );
}

#[test]
fn retries_within_one_pull_resume_where_the_connection_broke() {
    let s = StandIn::start().unwrap();
    let (q4, _) = gguf_repo(&s);
    let cache = tempfile::tempdir().unwrap();
    let hub = hub_at(&s, cache.path()).with_retries(2);
    s.cut_next_download_after(50_000);
    let p = hub.pull(&repo(), &PullOptions::default()).unwrap();
    assert_eq!(std::fs::read(&p.model_path).unwrap(), q4);
    assert!(
        s.ranges().iter().any(|r| r == "bytes=50000-"),
        "{:?}",
        s.ranges()
    );
}

#[test]
fn a_download_that_fails_its_checksum_is_removed_and_named() {
    let s = StandIn::start().unwrap();
    let (q4, _) = gguf_repo(&s);
    let cache = tempfile::tempdir().unwrap();
    let hub = hub_at(&s, cache.path());
    s.corrupt_downloads(true);
    let e = hub.pull(&repo(), &PullOptions::default()).unwrap_err();
    let HubError::Checksum { file, expected, .. } = &e else {
        panic!("{e}")
    };
    assert_eq!(file, "LFM2.5-1.2B-Instruct-Q4_0.gguf");
    assert_eq!(expected, &lfm_hub::verify::sha256_hex(&q4));
    assert!(hub.resolve("LiquidAI/LFM2.5-1.2B-Instruct-GGUF").is_err());

    s.corrupt_downloads(false);
    let p = hub.pull(&repo(), &PullOptions::default()).unwrap();
    assert_eq!(std::fs::read(&p.model_path).unwrap(), q4);
}

#[test]
fn offline_pulls_answer_from_the_cache_and_name_what_is_missing() {
    let s = StandIn::start().unwrap();
    gguf_repo(&s);
    let cache = tempfile::tempdir().unwrap();
    let offline = hub_at(&s, cache.path()).with_offline(true);
    let e = offline.pull(&repo(), &PullOptions::default()).unwrap_err();
    assert!(matches!(e, HubError::Offline { .. }), "{e}");
    assert!(e.to_string().contains("HF_HUB_OFFLINE"), "{e}");
    assert!(s.ranges().is_empty(), "offline made no request");

    hub_at(&s, cache.path())
        .pull(&repo(), &PullOptions::default())
        .unwrap();
    drop(s); // the hub is gone
    let p = offline.pull(&repo(), &PullOptions::default()).unwrap();
    assert!(!p.files[0].downloaded);
    assert_eq!(p.files[0].checked, Checked::Sha256);
}

#[test]
fn a_safetensors_repo_pulls_as_a_model_folder_with_git_checksums_for_small_files() {
    let s = StandIn::start().unwrap();
    s.publish(
        "LiquidAI/LFM2.5-1.2B-Thinking",
        "0123456789abcdef0123456789abcdef01234567",
        vec![
            StandInFile::new(".gitattributes", b"*.safetensors filter=lfs\n".to_vec()),
            StandInFile::new("config.json", br#"{"model_type":"lfm2"}"#.to_vec()),
            StandInFile::new("tokenizer.json", b"{}".to_vec()),
            StandInFile::new("model.safetensors", payload(70_000, 3)),
        ],
    );
    let cache = tempfile::tempdir().unwrap();
    let hub = hub_at(&s, cache.path());
    let id = RepoId::parse("LiquidAI/LFM2.5-1.2B-Thinking").unwrap();
    let p = hub.pull(&id, &PullOptions::default()).unwrap();
    let names: Vec<_> = p
        .files
        .iter()
        .map(|f| (f.name.as_str(), f.checked))
        .collect();
    assert_eq!(
        names,
        [
            ("config.json", Checked::GitSha1),
            ("tokenizer.json", Checked::GitSha1),
            ("model.safetensors", Checked::Sha256)
        ]
    );
    assert!(p.model_path.join("config.json").is_file());
    assert_eq!(
        hub.resolve("LiquidAI/LFM2.5-1.2B-Thinking").unwrap(),
        p.model_path
    );
}

#[test]
fn bad_references_and_missing_files_get_errors_that_name_them() {
    let s = StandIn::start().unwrap();
    gguf_repo(&s);
    let cache = tempfile::tempdir().unwrap();
    let hub = hub_at(&s, cache.path());

    let missing = RepoId::parse("LiquidAI/nope").unwrap();
    let e = hub
        .pull(&missing, &PullOptions::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("LiquidAI/nope") && e.contains("404"), "{e}");

    let opts = PullOptions {
        file: Some("x-F16.gguf".into()),
        ..PullOptions::default()
    };
    let e = hub.pull(&repo(), &opts).unwrap_err().to_string();
    assert!(e.contains("x-F16.gguf") && e.contains("Q8_0.gguf"), "{e}");

    let e = hub.resolve("some/model").unwrap_err().to_string();
    assert!(
        e.contains("`some/model`") && e.contains("lfm-agent pull some/model"),
        "{e}"
    );
}

#[test]
fn two_pulled_ggufs_need_a_file_name_and_rm_frees_them() {
    let s = StandIn::start().unwrap();
    let (_, q8) = gguf_repo(&s);
    let cache = tempfile::tempdir().unwrap();
    let hub = hub_at(&s, cache.path());
    hub.pull(&repo(), &PullOptions::default()).unwrap();
    let opts = PullOptions {
        file: Some("LFM2.5-1.2B-Instruct-Q8_0.gguf".into()),
        ..PullOptions::default()
    };
    hub.pull(&repo(), &opts).unwrap();

    let e = hub
        .resolve("LiquidAI/LFM2.5-1.2B-Instruct-GGUF")
        .unwrap_err();
    assert!(matches!(e, HubError::Ambiguous { .. }), "{e}");
    let p = hub
        .resolve("LiquidAI/LFM2.5-1.2B-Instruct-GGUF:LFM2.5-1.2B-Instruct-Q8_0.gguf")
        .unwrap();
    assert_eq!(std::fs::read(p).unwrap(), q8);

    assert_eq!(hub.remove(&repo()).unwrap(), 800_000);
    assert!(hub.list().unwrap().is_empty());
    assert!(matches!(
        hub.remove(&repo()),
        Err(HubError::NotFound { .. })
    ));
}

#[test]
fn unsafe_names_and_commits_from_the_hub_are_refused() {
    let s = StandIn::start().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let hub = hub_at(&s, cache.path());
    s.publish(
        "o/evil",
        "0123456789abcdef0123456789abcdef01234567",
        vec![
            StandInFile::new("../../escaped.gguf", b"x".to_vec()),
            StandInFile::new("README.md", b"r".to_vec()),
        ],
    );
    let e = hub
        .pull(&RepoId::parse("o/evil").unwrap(), &PullOptions::default())
        .unwrap_err();
    assert!(
        matches!(e, HubError::NothingToPull { .. }),
        "the unsafe name is dropped: {e}"
    );
    assert!(!cache.path().join("escaped.gguf").exists());

    s.publish(
        "o/badsha",
        "../../../tmp",
        vec![StandInFile::new("m.gguf", b"x".to_vec())],
    );
    let e = hub
        .pull(&RepoId::parse("o/badsha").unwrap(), &PullOptions::default())
        .unwrap_err();
    assert!(matches!(e, HubError::Unsafe { what: "commit", .. }), "{e}");

    for (file, revision) in [(Some("../x.gguf"), "main"), (None, "../../x")] {
        let opts = PullOptions {
            file: file.map(str::to_string),
            revision: revision.to_string(),
        };
        let e = hub.pull(&repo(), &opts).unwrap_err();
        assert!(matches!(e, HubError::Unsafe { .. }), "{e}");
    }
    let e = hub.resolve("/no/such/model.gguf").unwrap_err();
    assert!(matches!(e, HubError::NoSuchPath(_)), "{e}");
}

#[test]
fn the_branch_points_at_a_commit_only_once_its_files_are_checked() {
    let s = StandIn::start().unwrap();
    let (q4, _) = gguf_repo(&s);
    let cache = tempfile::tempdir().unwrap();
    let hub = hub_at(&s, cache.path());
    hub.pull(&repo(), &PullOptions::default()).unwrap();
    // A new commit whose file arrives corrupted: the pull fails and `OWNER/NAME` still
    // resolves to the checked file of the old commit.
    s.publish(
        "LiquidAI/LFM2.5-1.2B-Instruct-GGUF",
        "c0ffee0000000000000000000000000000000002",
        vec![StandInFile::new(
            "LFM2.5-1.2B-Instruct-Q4_0.gguf",
            payload(1000, 9),
        )],
    );
    s.corrupt_downloads(true);
    let e = hub.pull(&repo(), &PullOptions::default()).unwrap_err();
    assert!(matches!(e, HubError::Checksum { .. }), "{e}");
    let p = hub.resolve("LiquidAI/LFM2.5-1.2B-Instruct-GGUF").unwrap();
    assert_eq!(std::fs::read(p).unwrap(), q4);
}
