//! The report works in a real browser: two stored runs of a suite are rendered, headless
//! Chromium (Debian's `chromium` package) takes a screenshot, and the picture is checked for
//! content: text and the charts' colours, not a blank page. Without Chromium the test is
//! skipped with a warning, except under `CI=true`, where `.ci/run` installs it and its absence
//! is a failure.

use std::path::{Path, PathBuf};
use std::process::Command;

use lfm_evals::report::{self, Section};
use lfm_evals::score::{score_case, summarize, Observation};
use lfm_evals::store::{ResultStore, RunMeta};
use lfm_evals::Suite;
use serde_json::json;

fn chromium() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("LFM_CHROMIUM") {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH")?;
    for dir in std::env::split_paths(&path) {
        for name in ["chromium", "chromium-browser", "google-chrome"] {
            let p = dir.join(name);
            if p.is_file() {
                return Some(p);
            }
        }
    }
    None
}

/// Two runs of the tool-calls suite: the second gets more calls right.
fn stored_report(db: &Path) -> String {
    let suite =
        Suite::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("suites/tool-calls")).unwrap();
    let mut store = ResultStore::open(db).unwrap();
    for (run, right_every) in [(0, 3), (1, 2)] {
        let results: Vec<_> = suite
            .cases
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let output = if i % right_every == 0 {
                    c.gold.clone()
                } else {
                    json!({"name": "no_such_tool", "arguments": {}})
                };
                let obs = Observation {
                    output: Some(output),
                    stop: "answered".into(),
                    steps: 1,
                    latency_ms: 100.0 + (i * 37 % 400) as f64,
                    completion_tokens: 40,
                    model_ms: 90.0,
                    ..Observation::default()
                };
                score_case(&suite, c, &obs)
            })
            .collect();
        let meta = RunMeta {
            suite: suite.name.clone(),
            task: suite.task.name().into(),
            model: format!("models/test-{run}"),
            synthetic: true,
            started_ms: 0,
            wall_ms: 1000,
            settings: "test".into(),
        };
        store.record(&meta, &summarize(&results), &results).unwrap();
    }
    let run = store.runs().unwrap().remove(0);
    let prev = store.previous(&run).unwrap().unwrap();
    let section = Section {
        cases: store.cases(run.id).unwrap(),
        previous: Some((prev.clone(), store.cases(prev.id).unwrap())),
        run,
    };
    // The text table says the same: tool_name went from 34% (17 of 50) to 50%.
    let t = report::table(&section);
    assert!(t.contains("SYNTHETIC"), "{t}");
    let line = t.lines().find(|l| l.starts_with("tool_name")).unwrap();
    assert!(
        line.contains("50.0%") && line.contains("34.0%") && line.contains("better"),
        "{line}"
    );
    report::render("eval report test", &[section])
}

#[test]
fn the_report_renders_in_headless_chromium() {
    let tmp = tempfile::tempdir().unwrap();
    let html = stored_report(&tmp.path().join("r.sqlite"));
    assert!(
        html.contains("Synthetic model.") && html.contains("<svg") && html.contains("improved")
    );
    let page = tmp.path().join("report.html");
    std::fs::write(&page, &html).unwrap();
    let Some(chrome) = chromium() else {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("CI=true but no chromium on PATH: .ci/run installs Debian's chromium package");
        }
        eprintln!(
            "WARNING: no chromium on PATH (apt-get install chromium): the browser check is skipped"
        );
        return;
    };
    let png_path = tmp.path().join("shot.png");
    let out = Command::new(&chrome)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--window-size=1200,1400",
        ])
        .arg(format!(
            "--user-data-dir={}",
            tmp.path().join("profile").display()
        ))
        .arg(format!("--screenshot={}", png_path.display()))
        .arg(format!("file://{}", page.display()))
        .output()
        .unwrap();
    assert!(
        png_path.is_file(),
        "no screenshot: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let decoder = png::Decoder::new(std::io::BufReader::new(
        std::fs::File::open(&png_path).unwrap(),
    ));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    assert_eq!((info.width, info.height), (1200, 1400));
    let channels = info.color_type.samples();
    assert!(channels >= 3, "{:?}", info.color_type);
    let (mut ink, mut blue, mut orange, mut total) = (0usize, 0usize, 0usize, 0usize);
    for px in buf[..info.buffer_size()].chunks(channels) {
        let (r, g, b) = (px[0] as i32, px[1] as i32, px[2] as i32);
        total += 1;
        if r < 200 || g < 200 || b < 200 {
            ink += 1;
        }
        // The score bars (#2f6fdf) and the latency bars (#e07b39).
        if (r - 0x2f).abs() < 12 && (g - 0x6f).abs() < 12 && (b - 0xdf).abs() < 12 {
            blue += 1;
        }
        if (r - 0xe0).abs() < 12 && (g - 0x7b).abs() < 12 && (b - 0x39).abs() < 12 {
            orange += 1;
        }
    }
    assert!(
        ink * 100 > total,
        "the page is blank: {ink} of {total} pixels are not white"
    );
    assert!(
        blue > 1000 && orange > 1000,
        "the charts did not render: {blue} blue, {orange} orange pixels"
    );
}
