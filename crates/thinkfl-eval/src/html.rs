//! A self-contained HTML page of a [`Report`]: inline CSS, hand-written SVG charts (Recall@k per
//! method, strict and lenient; wall time per case as box plots on a log scale; MRR per fault type
//! and method as a heat map) and the tables of the Markdown report. No script, no external file.

use crate::Report;
use std::fmt::Write as _;

const PALETTE: [&str; 10] = [
    "#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7",
    "#9c755f", "#bab0ac",
];

/// Escapes text for HTML and SVG.
pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn legend(s: &mut String, names: &[&str], x: f64, y: f64) {
    for (i, n) in names.iter().enumerate() {
        let yy = y + i as f64 * 16.0;
        let _ = write!(
            s,
            r#"<rect x="{x}" y="{}" width="10" height="10" fill="{}"/><text x="{}" y="{}" font-size="11">{}</text>"#,
            yy,
            PALETTE[i % PALETTE.len()],
            x + 14.0,
            yy + 9.0,
            esc(n)
        );
    }
}

/// Grouped bars: one group per k, one bar per method.
fn recall_chart(r: &Report, strict: bool) -> String {
    let (w, h, left, top, bottom) = (640.0, 260.0, 40.0, 20.0, 30.0);
    let plot_w = w - left - 140.0;
    let plot_h = h - top - bottom;
    let ks = &r.recall_ks;
    let nm = r.methods.len().max(1) as f64;
    let group = plot_w / ks.len().max(1) as f64;
    let bar = (group * 0.8) / nm;
    let mut s = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" role="img"><title>Recall@k ({})</title>"#,
        if strict { "strict" } else { "lenient" }
    );
    for i in 0..=4 {
        let v = i as f64 / 4.0;
        let y = top + plot_h * (1.0 - v);
        let _ = write!(
            s,
            r##"<line x1="{left}" x2="{}" y1="{y}" y2="{y}" stroke="#ddd"/><text x="{}" y="{}" font-size="10" text-anchor="end">{:.0}%</text>"##,
            left + plot_w,
            left - 4.0,
            y + 3.0,
            v * 100.0
        );
    }
    for (gi, &k) in ks.iter().enumerate() {
        let gx = left + gi as f64 * group + group * 0.1;
        for (mi, m) in r.methods.iter().enumerate() {
            let x = if strict {
                &m.overall.strict
            } else {
                &m.overall.lenient
            };
            let v = x.recall_at(k);
            let bh = plot_h * v;
            let _ = write!(
                s,
                r#"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="{}"><title>{} R@{k}: {:.1}%</title></rect>"#,
                gx + mi as f64 * bar,
                top + plot_h - bh,
                bar.max(1.0),
                bh,
                PALETTE[mi % PALETTE.len()],
                esc(&m.method),
                v * 100.0
            );
        }
        let _ = write!(
            s,
            r#"<text x="{:.1}" y="{}" font-size="11" text-anchor="middle">R@{k}</text>"#,
            gx + group * 0.4,
            h - 10.0
        );
    }
    let names: Vec<&str> = r.methods.iter().map(|m| m.method.as_str()).collect();
    legend(&mut s, &names, left + plot_w + 16.0, top);
    s.push_str("</svg>");
    s
}

/// Box plots of wall time per case, log10 scale.
fn latency_chart(r: &Report) -> String {
    let row = 26.0;
    let (w, left, top) = (640.0, 110.0, 20.0);
    let h = top + row * r.methods.len() as f64 + 40.0;
    let plot_w = w - left - 20.0;
    let all: Vec<f64> = r
        .methods
        .iter()
        .flat_map(|m| m.cases.iter().map(|c| c.wall_ms.max(1e-3)))
        .collect();
    let lo = all
        .iter()
        .copied()
        .fold(f64::INFINITY, f64::min)
        .log10()
        .floor();
    let hi = all
        .iter()
        .copied()
        .fold(f64::NEG_INFINITY, f64::max)
        .log10()
        .ceil()
        .max(lo + 1.0);
    let (lo, hi) = if lo.is_finite() {
        (lo, hi)
    } else {
        (-3.0, 0.0)
    };
    let xs = |v: f64| left + plot_w * (v.max(1e-3).log10() - lo) / (hi - lo);
    let mut s = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" role="img"><title>Wall time per case (ms, log scale)</title>"#
    );
    let mut d = lo;
    while d <= hi {
        let x = left + plot_w * (d - lo) / (hi - lo);
        let _ = write!(
            s,
            r##"<line x1="{x:.1}" x2="{x:.1}" y1="{top}" y2="{}" stroke="#ddd"/><text x="{x:.1}" y="{}" font-size="10" text-anchor="middle">{}</text>"##,
            h - 30.0,
            h - 16.0,
            fmt_ms(10f64.powf(d))
        );
        d += 1.0;
    }
    let _ = write!(
        s,
        r#"<text x="{}" y="{}" font-size="11" text-anchor="middle">ms per case</text>"#,
        left + plot_w / 2.0,
        h - 3.0
    );
    for (i, m) in r.methods.iter().enumerate() {
        let mut v: Vec<f64> = m.cases.iter().map(|c| c.wall_ms).collect();
        if v.is_empty() {
            continue;
        }
        v.sort_by(f64::total_cmp);
        let q = |p: f64| crate::metrics_quantile(&v, p);
        let y = top + i as f64 * row + row / 2.0;
        let c = PALETTE[i % PALETTE.len()];
        let (a, q1, med, q3, b) = (
            xs(v[0]),
            xs(q(0.25)),
            xs(q(0.5)),
            xs(q(0.75)),
            xs(v[v.len() - 1]),
        );
        let _ = write!(
            s,
            r#"<text x="{}" y="{}" font-size="11" text-anchor="end">{}</text><line x1="{a:.1}" x2="{b:.1}" y1="{y}" y2="{y}" stroke="{c}"/><rect x="{q1:.1}" y="{}" width="{:.1}" height="12" fill="{c}" fill-opacity="0.5" stroke="{c}"><title>{}: p25 {:.2} ms, median {:.2} ms, p75 {:.2} ms</title></rect><line x1="{med:.1}" x2="{med:.1}" y1="{}" y2="{}" stroke="black" stroke-width="2"/>"#,
            left - 6.0,
            y + 4.0,
            esc(&m.method),
            y - 6.0,
            (q3 - q1).max(1.0),
            esc(&m.method),
            q(0.25),
            q(0.5),
            q(0.75),
            y - 6.0,
            y + 6.0
        );
    }
    s.push_str("</svg>");
    s
}

fn fmt_ms(v: f64) -> String {
    if v >= 1.0 {
        format!("{v:.0}")
    } else {
        format!("{v}")
    }
}

/// Heat map: fault types down, methods across, cell = strict MRR (lenient in the tooltip).
fn fault_type_chart(r: &Report) -> String {
    let (cell_w, cell_h, left, top) = (78.0, 20.0, 200.0, 60.0);
    let w = left + cell_w * r.methods.len() as f64 + 10.0;
    let h = top + cell_h * r.fault_types.len() as f64 + 10.0;
    let mut s = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" role="img"><title>MRR per fault type (strict)</title>"#
    );
    for (j, m) in r.methods.iter().enumerate() {
        let x = left + j as f64 * cell_w + cell_w / 2.0;
        let _ = write!(
            s,
            r#"<text x="{x}" y="{}" font-size="11" text-anchor="middle">{}</text>"#,
            top - 8.0,
            esc(&m.method)
        );
    }
    for (i, (ft, n)) in r.fault_types.iter().enumerate() {
        let y = top + i as f64 * cell_h;
        let _ = write!(
            s,
            r#"<text x="{}" y="{}" font-size="11" text-anchor="end">{} ({n})</text>"#,
            left - 6.0,
            y + 14.0,
            esc(ft)
        );
        for (j, m) in r.methods.iter().enumerate() {
            let x = left + j as f64 * cell_w;
            let Some(sm) = m.by_fault_type.get(ft) else {
                continue;
            };
            let v = sm.strict.mrr;
            // White to blue.
            let shade = |c: f64| (255.0 - (255.0 - c) * v).round() as u8;
            let fill = format!("rgb({},{},{})", shade(33.0), shade(102.0), shade(172.0));
            let text = if v > 0.55 { "white" } else { "black" };
            let _ = write!(
                s,
                r##"<rect x="{x}" y="{y}" width="{cell_w}" height="{cell_h}" fill="{fill}" stroke="#fff"><title>{} / {}: MRR strict {:.3}, lenient {:.3}</title></rect><text x="{}" y="{}" font-size="10" text-anchor="middle" fill="{text}">{:.2}</text>"##,
                esc(&m.method),
                esc(ft),
                v,
                sm.lenient.mrr,
                x + cell_w / 2.0,
                y + 14.0,
                v
            );
        }
    }
    s.push_str("</svg>");
    s
}

/// Minimal Markdown-table-to-HTML for the report's own tables (pipes, headers, separator rows).
fn tables_html(md: &str) -> String {
    let mut out = String::new();
    let mut in_table = false;
    let mut header = true;
    for line in md.lines() {
        if line.starts_with('|') {
            let cells: Vec<&str> = line
                .trim()
                .trim_matches('|')
                .split('|')
                .map(str::trim)
                .collect();
            if cells
                .iter()
                .all(|c| c.chars().all(|ch| ch == '-' || ch == ':'))
            {
                continue;
            }
            if !in_table {
                out.push_str("<table>");
                in_table = true;
                header = true;
            }
            let tag = if header { "th" } else { "td" };
            out.push_str("<tr>");
            for c in cells {
                let _ = write!(out, "<{tag}>{}</{tag}>", esc(c.trim_matches('*')));
            }
            out.push_str("</tr>");
            header = false;
        } else {
            if in_table {
                out.push_str("</table>");
                in_table = false;
            }
            if let Some(h) = line.strip_prefix("## ") {
                let _ = write!(out, "<h2>{}</h2>", esc(h));
            } else if let Some(h) = line.strip_prefix("# ") {
                let _ = write!(out, "<h1>{}</h1>", esc(h));
            } else if !line.trim().is_empty() {
                let _ = write!(out, "<p>{}</p>", esc(line));
            }
        }
    }
    if in_table {
        out.push_str("</table>");
    }
    out
}

/// The whole page.
pub fn render(r: &Report) -> String {
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>thinkfl evaluation: {}</title><style>body{{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;color:#222}}table{{border-collapse:collapse;margin:1em 0}}td,th{{border:1px solid #ccc;padding:3px 8px;font-size:13px;text-align:right}}td:first-child,th:first-child{{text-align:left}}figure{{margin:1.5em 0}}figcaption{{font-size:13px;color:#555}}</style></head><body>"#,
        esc(&r.dataset)
    );
    let _ = write!(
        s,
        "<figure>{}<figcaption>Recall@k, strict (ground-truth level)</figcaption></figure>",
        recall_chart(r, true)
    );
    let _ = write!(
        s,
        "<figure>{}<figcaption>Recall@k, lenient (service level)</figcaption></figure>",
        recall_chart(r, false)
    );
    let _ = write!(
        s,
        "<figure>{}<figcaption>Wall time per case: whisker min to max, box p25 to p75, bar median</figcaption></figure>",
        latency_chart(r)
    );
    let _ = write!(
        s,
        "<figure>{}<figcaption>MRR per fault type (strict; lenient in the tooltip)</figcaption></figure>",
        fault_type_chart(r)
    );
    s.push_str(&tables_html(&r.to_markdown()));
    s.push_str("</body></html>\n");
    s
}
