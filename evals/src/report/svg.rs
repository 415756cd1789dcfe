//! Inline SVG charts: bars of [0, 1] scores (this run beside the previous one) and a
//! latency histogram.

use super::html::esc;

/// Horizontal bars: one group per `(name, now, before)`, values in [0, 1].
pub fn score_bars(items: &[(String, f64, Option<f64>)]) -> String {
    let (label_w, bar_w, row_h) = (210.0, 360.0, 26.0);
    let height = row_h * items.len() as f64 + 30.0;
    let mut s = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{height}" role="img" aria-label="scores">"#,
        w = label_w + bar_w + 70.0
    );
    for (i, (name, now, before)) in items.iter().enumerate() {
        let y = 10.0 + row_h * i as f64;
        s.push_str(&format!(
            r#"<text x="{x}" y="{ty}" text-anchor="end" font-size="12">{}</text>"#,
            esc(name),
            x = label_w - 8.0,
            ty = y + 14.0
        ));
        s.push_str(&format!(
            r##"<rect x="{label_w}" y="{y}" width="{bar_w}" height="18" fill="#eef1f5"/>"##
        ));
        if let Some(b) = before {
            s.push_str(&format!(
                r##"<rect x="{label_w}" y="{y2}" width="{w}" height="5" fill="#9aa5b1"><title>previous {:.1}%</title></rect>"##,
                b * 100.0,
                y2 = y + 13.0,
                w = bar_w * b.clamp(0.0, 1.0)
            ));
        }
        s.push_str(&format!(
            r##"<rect x="{label_w}" y="{y}" width="{w}" height="12" fill="#2f6fdf"><title>{:.1}%</title></rect>"##,
            now * 100.0,
            w = bar_w * now.clamp(0.0, 1.0)
        ));
        s.push_str(&format!(
            r#"<text x="{x}" y="{ty}" font-size="12">{:.1}%</text>"#,
            now * 100.0,
            x = label_w + bar_w + 6.0,
            ty = y + 12.0
        ));
    }
    s.push_str(&format!(
        r##"<text x="{label_w}" y="{y}" font-size="11" fill="#555">blue: this run; grey: the previous run</text></svg>"##,
        y = height - 6.0
    ));
    s
}

/// A histogram of `ms` in up to 12 equal bins.
pub fn latency_histogram(ms: &[f64]) -> String {
    let (w, h) = (560.0, 160.0);
    let mut s = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" role="img" aria-label="latency histogram">"#
    );
    if ms.is_empty() {
        s.push_str(r#"<text x="10" y="20" font-size="12">no cases</text></svg>"#);
        return s;
    }
    let lo = ms.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = ms.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let bins = 12usize.min(ms.len().max(1));
    let width = ((hi - lo) / bins as f64).max(1e-9);
    let mut counts = vec![0usize; bins];
    for &x in ms {
        let i = (((x - lo) / width) as usize).min(bins - 1);
        counts[i] += 1;
    }
    let top = counts.iter().copied().max().unwrap_or(1).max(1) as f64;
    let (plot_h, bar) = (h - 40.0, (w - 20.0) / bins as f64);
    for (i, &c) in counts.iter().enumerate() {
        let bh = plot_h * c as f64 / top;
        s.push_str(&format!(
            r##"<rect x="{x}" y="{y}" width="{bw}" height="{bh}" fill="#e07b39"><title>{a:.0}-{b:.0} ms: {c}</title></rect>"##,
            x = 10.0 + bar * i as f64,
            y = 10.0 + plot_h - bh,
            bw = (bar - 2.0).max(1.0),
            a = lo + width * i as f64,
            b = lo + width * (i + 1) as f64,
        ));
    }
    s.push_str(&format!(
        r##"<text x="10" y="{y}" font-size="11" fill="#555">{lo:.0} ms</text><text x="{x}" y="{y}" font-size="11" fill="#555" text-anchor="end">{hi:.0} ms</text></svg>"##,
        y = h - 12.0,
        x = w - 10.0
    ));
    s
}
