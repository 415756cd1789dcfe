//! The HTML page.

use super::{case_changes, change, previous_rows, rows, show, svg, Section};

/// Escapes text for HTML.
pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

const STYLE: &str = "body{font:14px/1.45 system-ui,sans-serif;margin:24px auto;max-width:1100px;color:#1d2430;padding:0 16px}\
h1{font-size:22px}h2{font-size:18px;margin-top:36px;border-bottom:1px solid #d5dae1;padding-bottom:4px}\
table{border-collapse:collapse;margin:8px 0}td,th{padding:3px 10px;border-bottom:1px solid #e6e9ee;text-align:right}\
td:first-child,th:first-child{text-align:left}.good{color:#11833b}.bad{color:#c62828;font-weight:600}\
.warn{background:#fff4d6;border:1px solid #e8c25a;padding:8px 12px;border-radius:4px}\
.cases td{font-size:12px;vertical-align:top}.cases td.out{text-align:left;max-width:420px;overflow-wrap:anywhere;color:#444}\
.meta{color:#555}";

/// The page for `sections`, titled `title`.
pub fn render(title: &str, sections: &[Section]) -> String {
    let mut h = format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title><style>{STYLE}</style></head><body><h1>{}</h1>",
        esc(title),
        esc(title)
    );
    if sections.is_empty() {
        h.push_str(
            "<p>No eval runs recorded yet: run <code>lfm-agent eval SUITE</code> first.</p>",
        );
    }
    if sections.iter().any(|s| s.run.meta.synthetic) {
        h.push_str("<p class=\"warn\"><b>Synthetic model.</b> Runs marked synthetic used random weights (lfm-agent synth): their schema validity, steps and speed are real measurements, but their accuracy, F1, citation and key-point figures mean nothing.</p>");
    }
    for s in sections {
        section(&mut h, s);
    }
    h.push_str("</body></html>\n");
    h
}

fn section(h: &mut String, s: &Section) {
    let m = &s.run.meta;
    h.push_str(&format!(
        "<h2>{} <span class=\"meta\">run {}</span></h2><p class=\"meta\">task {}, model <code>{}</code>{}, {} cases in {:.1} s; {}</p>",
        esc(&m.suite),
        s.run.id,
        esc(&m.task),
        esc(&m.model),
        if m.synthetic { " <b>(synthetic random weights)</b>" } else { "" },
        s.run.summary.cases,
        m.wall_ms as f64 / 1000.0,
        esc(&m.settings)
    ));
    let before = previous_rows(s);
    match &s.previous {
        Some((p, _)) => h.push_str(&format!(
            "<p>Compared with run {} of the same suite (model <code>{}</code>).</p>",
            p.id,
            esc(&p.meta.model)
        )),
        None => h.push_str("<p>No earlier run of this suite to compare with.</p>"),
    }
    h.push_str("<table><tr><th>measure</th><th>n</th><th>this run</th><th>previous</th><th>change</th></tr>");
    let mut bars = Vec::new();
    for r in rows(&s.run.summary) {
        let prev = before.get(&r.name);
        let (prev_text, change_cell) = match prev {
            Some(b) => {
                let (t, good) = change(&r, b.value);
                let class = match good {
                    Some(true) => " class=\"good\"",
                    Some(false) => " class=\"bad\"",
                    None => "",
                };
                (show(b), format!("<td{class}>{t}</td>"))
            }
            None => ("-".into(), "<td></td>".into()),
        };
        h.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td>{change_cell}</tr>",
            esc(&r.name),
            r.n.map_or(String::new(), |n| n.to_string()),
            show(&r),
            prev_text
        ));
        if r.unit_share {
            bars.push((r.name.clone(), r.value, prev.map(|p| p.value)));
        }
    }
    h.push_str("</table>");
    h.push_str(&svg::score_bars(&bars));
    let lat: Vec<f64> = s.cases.iter().map(|c| c.observation.latency_ms).collect();
    h.push_str("<h3>Latency per case</h3>");
    h.push_str(&svg::latency_histogram(&lat));
    if let Some((_, prev_cases)) = &s.previous {
        let (worse, better) = case_changes(&s.cases, prev_cases);
        h.push_str(&format!("<h3>Cases that changed</h3><p><span class=\"bad\">{} regressed</span>, <span class=\"good\">{} improved</span> (mean of each case's scores).</p>", worse.len(), better.len()));
        for (label, list, class) in [("regressed", &worse, "bad"), ("improved", &better, "good")] {
            if list.is_empty() {
                continue;
            }
            h.push_str(&format!("<p class=\"{class}\">{label}: "));
            let items: Vec<String> = list
                .iter()
                .map(|(id, a, b)| format!("{} ({:.2} → {:.2})", esc(id), a, b))
                .collect();
            h.push_str(&items.join(", "));
            h.push_str("</p>");
        }
    }
    h.push_str("<h3>Cases</h3><table class=\"cases\"><tr><th>case</th><th>stop</th><th>valid</th><th>scores</th><th>steps</th><th>ms</th><th>output</th></tr>");
    for c in &s.cases {
        let o = &c.observation;
        let scores: Vec<String> = c
            .scores
            .iter()
            .map(|(k, v)| format!("{k} {v:.2}"))
            .collect();
        let out = o
            .output
            .as_ref()
            .map_or_else(|| o.error.clone().unwrap_or_default(), |v| v.to_string());
        let out: String = out.chars().take(240).collect();
        h.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.0}</td><td class=\"out\">{}</td></tr>",
            esc(&c.case_id),
            esc(&o.stop),
            match c.valid {
                Some(true) => "yes",
                Some(false) => "<span class=\"bad\">no</span>",
                None => "-",
            },
            esc(&scores.join(", ")),
            o.steps,
            o.latency_ms,
            esc(&out)
        ));
    }
    h.push_str("</table>");
}
