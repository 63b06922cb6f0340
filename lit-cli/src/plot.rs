//! SVG charts for `lit bench --plot`: a bar per mode, and the timeline of one streamed pass with
//! a fetch lane and a compute lane, which shows how much storage and compute overlap.

use std::fmt::Write;

/// One bar: a label and a time in milliseconds.
pub(crate) struct Bar {
    pub(crate) label: String,
    pub(crate) ms: f64,
}

/// One interval of a lane, in milliseconds from the start of the pass.
pub(crate) struct Span {
    pub(crate) layer: usize,
    pub(crate) start: f64,
    pub(crate) end: f64,
}

/// A pass's timeline: what was fetched and computed when.
pub(crate) struct Timeline {
    pub(crate) title: String,
    pub(crate) length_ms: f64,
    pub(crate) fetch: Vec<Span>,
    pub(crate) compute: Vec<Span>,
}

const WIDTH: f64 = 900.0;
const LEFT: f64 = 230.0;
const RIGHT: f64 = 60.0;

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The bar chart and (when given) the timeline, one above the other, as an SVG document.
pub(crate) fn chart(title: &str, bars: &[Bar], timeline: Option<&Timeline>) -> String {
    let bar_h = 22.0;
    let bars_h = 40.0 + bars.len() as f64 * (bar_h + 8.0) + 30.0;
    let timeline_h = if timeline.is_some() { 190.0 } else { 0.0 };
    let height = bars_h + timeline_h + 20.0;
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" font-family="sans-serif" font-size="12">"##
    );
    let _ = writeln!(svg, r##"<rect width="100%" height="100%" fill="white"/>"##);
    let _ = writeln!(
        svg,
        r##"<text x="10" y="22" font-size="15" font-weight="bold">{}</text>"##,
        escape(title)
    );
    let max = bars
        .iter()
        .map(|b| b.ms)
        .filter(|v| v.is_finite())
        .fold(1e-9, f64::max);
    let scale = (WIDTH - LEFT - RIGHT) / max;
    for (i, bar) in bars.iter().enumerate() {
        let y = 40.0 + i as f64 * (bar_h + 8.0);
        let w = if bar.ms.is_finite() {
            bar.ms * scale
        } else {
            0.0
        };
        let colour = if bar.label.starts_with("lit") {
            "#2b7bba"
        } else {
            "#9aa5b1"
        };
        let _ = writeln!(
            svg,
            r##"<text x="{:.1}" y="{:.1}" text-anchor="end">{}</text><rect x="{LEFT}" y="{y:.1}" width="{w:.1}" height="{bar_h}" fill="{colour}"/><text x="{:.1}" y="{:.1}">{:.0} ms</text>"##,
            LEFT - 8.0,
            y + 15.0,
            escape(&bar.label),
            LEFT + w + 5.0,
            y + 15.0,
            bar.ms
        );
    }
    let _ = writeln!(
        svg,
        r##"<text x="{LEFT}" y="{:.1}" fill="#555">time per pass (lower is better)</text>"##,
        bars_h - 8.0
    );
    if let Some(t) = timeline {
        draw_timeline(&mut svg, t, bars_h);
    }
    svg.push_str("</svg>\n");
    svg
}

fn draw_timeline(svg: &mut String, t: &Timeline, top: f64) {
    let _ = writeln!(
        svg,
        r##"<text x="10" y="{:.1}" font-size="14" font-weight="bold">{}</text>"##,
        top + 20.0,
        escape(&t.title)
    );
    let scale = (WIDTH - LEFT - RIGHT) / t.length_ms.max(1e-9);
    let lanes = [
        ("fetch (storage)", &t.fetch, "#e8923a", top + 40.0),
        ("compute", &t.compute, "#2b7bba", top + 90.0),
    ];
    for (name, spans, colour, y) in lanes {
        let _ = writeln!(
            svg,
            r##"<text x="{:.1}" y="{:.1}" text-anchor="end">{name}</text><rect x="{LEFT}" y="{y:.1}" width="{:.1}" height="34" fill="#f3f4f6"/>"##,
            LEFT - 8.0,
            y + 21.0,
            WIDTH - LEFT - RIGHT
        );
        for span in spans.iter() {
            let x = LEFT + span.start.max(0.0) * scale;
            let w = ((span.end.min(t.length_ms) - span.start.max(0.0)) * scale).max(0.8);
            let _ = writeln!(
                svg,
                r##"<rect x="{x:.1}" y="{y:.1}" width="{w:.1}" height="34" fill="{colour}" stroke="white" stroke-width="0.6"><title>layer {} {:.1}–{:.1} ms</title></rect>"##,
                span.layer, span.start, span.end
            );
            if w > 18.0 {
                let _ = writeln!(
                    svg,
                    r##"<text x="{:.1}" y="{:.1}" fill="white" font-size="10" text-anchor="middle">{}</text>"##,
                    x + w / 2.0,
                    y + 21.0,
                    span.layer
                );
            }
        }
    }
    let axis_y = top + 140.0;
    for k in 0..=4 {
        let ms = t.length_ms * k as f64 / 4.0;
        let x = LEFT + ms * scale;
        let _ = writeln!(
            svg,
            r##"<line x1="{x:.1}" y1="{:.1}" x2="{x:.1}" y2="{axis_y:.1}" stroke="#bbb"/><text x="{x:.1}" y="{:.1}" text-anchor="middle" fill="#555">{ms:.0} ms</text>"##,
            top + 36.0,
            axis_y + 14.0
        );
    }
}

/// The last complete pass of a `lit run --events` file as a timeline.
pub(crate) fn timeline_from_events(doc: &serde_json::Value, title: &str) -> Option<Timeline> {
    let ends: Vec<f64> = doc["pass_end_ms"]
        .as_array()?
        .iter()
        .filter_map(|v| v.as_f64())
        .collect();
    let (start, end) = match ends.len() {
        0 => return None,
        1 => (0.0, ends[0]),
        n => (ends[n - 2], ends[n - 1]),
    };
    let events = doc["events"].as_array()?;
    let mut open: std::collections::HashMap<(bool, usize), f64> = Default::default();
    let (mut fetch, mut compute) = (Vec::new(), Vec::new());
    for e in events {
        let (Some(kind), Some(layer), Some(t)) =
            (e["kind"].as_str(), e["layer"].as_u64(), e["t_ms"].as_f64())
        else {
            continue;
        };
        let layer = layer as usize;
        let is_fetch = kind.starts_with("fetch");
        if kind.ends_with("_start") {
            open.insert((is_fetch, layer), t);
        } else if let Some(s) = open.remove(&(is_fetch, layer))
            && t > start
            && s < end
            // A resident layer's "fetch" is instant and reads nothing.
            && (!is_fetch || e["bytes"].as_u64().unwrap_or(0) > 0)
        {
            let span = Span {
                layer,
                start: s - start,
                end: t - start,
            };
            if is_fetch {
                fetch.push(span)
            } else {
                compute.push(span)
            }
        }
    }
    Some(Timeline {
        title: title.to_string(),
        length_ms: end - start,
        fetch,
        compute,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_pass_is_cut_out_of_the_events() {
        let doc = serde_json::json!({
            "pass_end_ms": [100.0, 200.0],
            "events": [
                {"t_ms": 10.0, "kind": "compute_start", "layer": 0, "bytes": 0},
                {"t_ms": 20.0, "kind": "compute_end", "layer": 0, "bytes": 0},
                {"t_ms": 90.0, "kind": "fetch_start", "layer": 1, "bytes": 0},
                {"t_ms": 130.0, "kind": "fetch_end", "layer": 1, "bytes": 64},
                {"t_ms": 140.0, "kind": "compute_start", "layer": 1, "bytes": 0},
                {"t_ms": 190.0, "kind": "compute_end", "layer": 1, "bytes": 0},
            ]
        });
        let t = timeline_from_events(&doc, "pass").unwrap();
        assert_eq!(t.length_ms, 100.0);
        assert_eq!(t.compute.len(), 1);
        assert_eq!((t.compute[0].start, t.compute[0].end), (40.0, 90.0));
        assert_eq!((t.fetch[0].start, t.fetch[0].end), (-10.0, 30.0));
        let svg = chart(
            "t",
            &[Bar {
                label: "lit <k>".into(),
                ms: 5.0,
            }],
            Some(&t),
        );
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert!(svg.contains("lit &lt;k&gt;"));
    }
}
