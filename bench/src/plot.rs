//! Small hand-written SVG plots for BENCHMARKS.md: every sample as a dot on a log-scale axis (a
//! strip plot, one row per series, median and p99 marked), and lines of (x, y) points on log-log
//! axes. No plotting crate: two plot kinds are not worth a dependency tree.

use std::fmt::Write as _;

const W: f64 = 900.0;
const LEFT: f64 = 300.0;
const RIGHT: f64 = 30.0;
const ROW: f64 = 26.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 40.0;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The opening of a plot `h` pixels high: white background, centred title.
fn header(title: &str, h: f64) -> String {
    format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{h}" font-family="sans-serif">
<rect width="100%" height="100%" fill="white"/>
<text x="{}" y="22" font-size="15" text-anchor="middle">{}</text>
"#,
        W / 2.0,
        esc(title)
    )
}

/// Decades covering every positive value (at least one).
fn decades(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for v in values.filter(|v| *v > 0.0 && v.is_finite()) {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    let (a, b) = (lo.log10().floor(), hi.log10().ceil());
    (a, if b > a { b } else { a + 1.0 })
}

fn axis(svg: &mut String, x0: f64, x1: f64, y: f64, dec: (f64, f64), unit: &str) {
    let _ = writeln!(
        svg,
        r#"<line x1="{x0}" y1="{y}" x2="{x1}" y2="{y}" stroke="black"/>"#
    );
    let span = dec.1 - dec.0;
    for k in 0..=(span as i32) {
        let d = dec.0 + f64::from(k);
        let x = x0 + (x1 - x0) * (d - dec.0) / span;
        let _ = writeln!(
            svg,
            r##"<line x1="{x}" y1="{TOP}" x2="{x}" y2="{y}" stroke="#ddd"/><text x="{x}" y="{}" font-size="12" text-anchor="middle">{}</text>"##,
            y + 16.0,
            10f64.powf(d)
        );
    }
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="{}" font-size="12" text-anchor="middle">{}</text>"#,
        (x0 + x1) / 2.0,
        y + 32.0,
        esc(unit)
    );
}

/// A strip plot: one row per (label, samples); values on a log axis. Zero and negative samples
/// are drawn at the axis' left end.
#[must_use]
pub fn strip(title: &str, unit: &str, rows: &[(String, Vec<f64>)]) -> String {
    let dec = decades(rows.iter().flat_map(|(_, v)| v.iter().copied()));
    let h = TOP + BOTTOM + ROW * rows.len() as f64;
    let (x0, x1) = (LEFT, W - RIGHT);
    let pos = |v: f64| {
        let l = if v > 0.0 { v.log10() } else { dec.0 };
        x0 + (x1 - x0) * ((l - dec.0) / (dec.1 - dec.0)).clamp(0.0, 1.0)
    };
    let mut svg = header(title, h);
    axis(&mut svg, x0, x1, h - BOTTOM, dec, unit);
    for (i, (label, v)) in rows.iter().enumerate() {
        let y = TOP + ROW * (i as f64 + 0.5);
        let _ = writeln!(
            svg,
            r#"<text x="{}" y="{}" font-size="12" text-anchor="end">{}</text>"#,
            x0 - 8.0,
            y + 4.0,
            esc(label)
        );
        let color = if label.starts_with("ipmpd") {
            "#c0392b"
        } else {
            "#2c3e50"
        };
        for &s in v {
            let _ = writeln!(
                svg,
                r#"<circle cx="{:.1}" cy="{y}" r="3" fill="{color}" fill-opacity="0.5"/>"#,
                pos(s)
            );
        }
        if !v.is_empty() {
            let mut sorted = v.clone();
            sorted.sort_by(f64::total_cmp);
            for (p, mark) in [(50.0, 10.0), (99.0, 16.0)] {
                let x = pos(crate::stats::pct(&sorted, p));
                let _ = writeln!(
                    svg,
                    r#"<line x1="{x:.1}" y1="{}" x2="{x:.1}" y2="{}" stroke="{color}" stroke-width="2"/>"#,
                    y - mark / 2.0,
                    y + mark / 2.0
                );
            }
        } else {
            let _ = writeln!(
                svg,
                r#"<text x="{}" y="{}" font-size="12">missed every fault</text>"#,
                x0 + 4.0,
                y + 4.0
            );
        }
    }
    svg + "</svg>\n"
}

/// Lines of (x, y) points on log-log axes, one per (label, points).
#[must_use]
pub fn lines(
    title: &str,
    x_unit: &str,
    y_unit: &str,
    series: &[(String, Vec<(f64, f64)>)],
) -> String {
    let palette = ["#c0392b", "#2c3e50", "#27ae60", "#8e44ad"];
    let dx = decades(series.iter().flat_map(|(_, p)| p.iter().map(|q| q.0)));
    let dy = decades(series.iter().flat_map(|(_, p)| p.iter().map(|q| q.1)));
    let h = 420.0;
    let (x0, x1, y0, y1) = (80.0, W - RIGHT - 180.0, h - BOTTOM - 10.0, TOP);
    let px = |v: f64| x0 + (x1 - x0) * (v.max(1e-12).log10() - dx.0) / (dx.1 - dx.0);
    let py = |v: f64| y0 - (y0 - y1) * (v.max(1e-12).log10() - dy.0) / (dy.1 - dy.0);
    let mut svg = header(title, h);
    axis(&mut svg, x0, x1, y0, dx, x_unit);
    for k in 0..=((dy.1 - dy.0) as i32) {
        let d = dy.0 + f64::from(k);
        let y = py(10f64.powf(d));
        let _ = writeln!(
            svg,
            r##"<line x1="{x0}" y1="{y}" x2="{x1}" y2="{y}" stroke="#ddd"/><text x="{}" y="{}" font-size="12" text-anchor="end">{}</text>"##,
            x0 - 6.0,
            y + 4.0,
            10f64.powf(d)
        );
    }
    let _ = writeln!(
        svg,
        r#"<text x="20" y="{}" font-size="12" transform="rotate(-90 20 {})" text-anchor="middle">{}</text>"#,
        (y0 + y1) / 2.0,
        (y0 + y1) / 2.0,
        esc(y_unit)
    );
    for (i, (label, pts)) in series.iter().enumerate() {
        let color = palette[i % palette.len()];
        let path: Vec<String> = pts
            .iter()
            .map(|&(x, y)| format!("{:.1},{:.1}", px(x), py(y)))
            .collect();
        let _ = writeln!(
            svg,
            r#"<polyline points="{}" fill="none" stroke="{color}" stroke-width="2"/>"#,
            path.join(" ")
        );
        for &(x, y) in pts {
            let _ = writeln!(
                svg,
                r#"<circle cx="{:.1}" cy="{:.1}" r="3.5" fill="{color}"/>"#,
                px(x),
                py(y)
            );
        }
        let _ = writeln!(
            svg,
            r#"<text x="{}" y="{}" font-size="12" fill="{color}">{}</text>"#,
            x1 + 12.0,
            y1 + 20.0 + 18.0 * i as f64,
            esc(label)
        );
    }
    svg + "</svg>\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strip_plot_has_one_dot_per_sample_and_escapes_labels() {
        let svg = strip(
            "t",
            "ms",
            &[
                ("ipmpd <x>".into(), vec![1.0, 2.0, 30.0]),
                ("peer".into(), vec![]),
            ],
        );
        assert_eq!(svg.matches("<circle").count(), 3);
        assert!(svg.contains("ipmpd &lt;x&gt;"));
        assert!(svg.contains("missed every fault"));
    }

    #[test]
    fn decades_cover_the_values() {
        assert_eq!(decades([0.5, 20.0].into_iter()), (-1.0, 2.0));
        assert_eq!(decades([0.0].into_iter()), (0.0, 1.0));
    }
}
