//! `eval --report FILE.html`: what `eval` measured, as one self-contained HTML file to keep or
//! send: accuracy, precision and recall per label, the confusion matrix drawn as a picture,
//! the test pictures the head got wrong (as thumbnails of what it looked at, its region when it
//! has one, embedded in the file), and the training's learning curve. Everything from the
//! pictures and the head file (labels, paths) is escaped; the file loads nothing from outside.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use base64::Engine as _;

use crate::head::curve::{verdict, CurvePoint};
use crate::head::Head;
use crate::metrics::EvalReport;

/// A test picture the head took for another label.
#[derive(Debug, Clone, PartialEq)]
pub struct Wrong {
    pub path: PathBuf,
    pub label: String,
    pub taken_for: String,
    /// The probability of what it was taken for.
    pub prob: f32,
}

/// Thumbnails embedded at most; the rest are listed by name.
pub const MAX_THUMBNAILS: usize = 100;
/// Longest side of a thumbnail, in pixels.
const THUMBNAIL: u32 = 128;

/// What the report shows.
pub struct ReportInput<'a> {
    pub head_path: &'a Path,
    pub head: &'a Head,
    pub testset: &'a Path,
    pub report: &'a EvalReport,
    pub wrong: &'a [Wrong],
    /// Pictures that could not be read, with why.
    pub skipped: &'a [String],
}

/// Text for HTML (element content and quoted attribute values).
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The thumbnail of what the head looked at in `path`, as a `data:` URI; `None` for a picture
/// that does not decode now.
fn thumbnail(path: &Path, head: &Head) -> Option<String> {
    let frame = crate::preprocess::decode_file(path).ok()?;
    let frame = match &head.region {
        Some(r) => r.crop(&frame),
        None => frame,
    };
    // The longer side THUMBNAIL pixels (or as it is, when smaller), the shape kept.
    let (w, h) = (frame.width(), frame.height());
    let scale = (THUMBNAIL as f64 / w.max(h) as f64).min(1.0);
    let small = image::imageops::thumbnail(
        &frame.image,
        ((w as f64 * scale).round() as u32).max(1),
        ((h as f64 * scale).round() as u32).max(1),
    );
    let mut jpeg = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 80)
        .encode_image(&small)
        .ok()?;
    Some(format!(
        "data:image/jpeg;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(jpeg)
    ))
}

/// The confusion matrix as an SVG picture: rows are the labels, columns what they were taken
/// for, each cell shaded by its share of the row (green on the diagonal, red off it).
pub fn confusion_svg(labels: &[String], confusion: &[Vec<usize>]) -> String {
    let n = labels.len();
    let cell = 26.0;
    let longest = labels.iter().map(|l| l.chars().count()).max().unwrap_or(1) as f64;
    let pad = 12.0 + 6.5 * longest;
    let size = pad + n as f64 * cell;
    let width = size + pad / 2.0;
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {width} {size}\" width=\"{width}\" \
         role=\"img\" aria-label=\"confusion matrix: rows are labels, columns what they were taken for\">"
    );
    for (i, l) in labels.iter().enumerate() {
        let (x, y) = (pad + i as f64 * cell + 16.0, pad - 4.0);
        let _ = write!(
            s,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"end\" font-size=\"11\" fill=\"currentColor\">{}</text>\
             <text x=\"{x}\" y=\"{y}\" font-size=\"11\" fill=\"currentColor\" transform=\"rotate(-60 {x} {y})\">{}</text>",
            pad - 4.0,
            pad + i as f64 * cell + 16.0,
            escape(l),
            escape(l)
        );
    }
    for (i, row) in confusion.iter().enumerate() {
        let total = row.iter().sum::<usize>().max(1) as f64;
        for (j, &v) in row.iter().enumerate() {
            let (x, y) = (pad + j as f64 * cell, pad + i as f64 * cell);
            let fill = if v == 0 {
                "rgba(128,128,128,0.15)".to_string()
            } else {
                let hue = if i == j { "76,175,80" } else { "239,83,80" };
                format!("rgba({hue},{:.3})", 0.25 + 0.75 * v as f64 / total)
            };
            let _ = write!(
                s,
                "<rect x=\"{x}\" y=\"{y}\" width=\"{}\" height=\"{}\" fill=\"{fill}\"/>",
                cell - 1.0,
                cell - 1.0
            );
            if v > 0 {
                // White on a strong cell, the text colour on a pale one.
                let ink = if v as f64 / total > 0.5 {
                    "#fff"
                } else {
                    "currentColor"
                };
                let _ = write!(
                    s,
                    "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" font-size=\"10\" fill=\"{ink}\">{v}</text>",
                    x + cell / 2.0,
                    y + 16.0
                );
            }
        }
    }
    s.push_str("</svg>");
    s
}

/// The learning curve as an SVG line chart.
pub fn curve_svg(points: &[CurvePoint]) -> String {
    let (w, h, left, bottom) = (320.0, 140.0, 40.0, 24.0);
    let max_n = points.last().map_or(1, |p| p.per_label).max(1) as f64;
    let lowest = points.iter().map(|p| p.accuracy).fold(1.0, f64::min);
    let low = ((10.0 * lowest).floor() / 10.0 - 0.1).max(0.0);
    let x = |n: usize| left + (w - left - 10.0) * n as f64 / max_n;
    let y = |a: f64| 8.0 + (h - bottom - 8.0) * (1.0 - (a - low) / (1.0 - low).max(1e-9));
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {w} {h}\" width=\"{w}\" role=\"img\" \
         aria-label=\"cross-validated accuracy by pictures per label\">\
         <line x1=\"{left}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"#999\"/>\
         <line x1=\"{left}\" y1=\"{}\" x2=\"{left}\" y2=\"{}\" stroke=\"#999\"/>",
        y(low),
        w - 10.0,
        y(low),
        y(low),
        y(1.0)
    );
    for a in [low, (low + 1.0) / 2.0, 1.0] {
        let _ = write!(
            s,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"end\" font-size=\"10\" fill=\"currentColor\">{:.0}%</text>",
            left - 4.0,
            y(a) + 4.0,
            100.0 * a
        );
    }
    let line: Vec<String> = points
        .iter()
        .map(|p| format!("{:.1},{:.1}", x(p.per_label), y(p.accuracy)))
        .collect();
    let _ = write!(
        s,
        "<polyline points=\"{}\" fill=\"none\" stroke=\"#1565c0\" stroke-width=\"2\"/>",
        line.join(" ")
    );
    for p in points {
        let _ = write!(
            s,
            "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"#1565c0\"/>\
             <text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\" font-size=\"10\" fill=\"currentColor\">{}</text>",
            x(p.per_label),
            y(p.accuracy),
            x(p.per_label),
            h - 8.0,
            p.per_label
        );
    }
    s.push_str("</svg>");
    s
}

/// The whole report.
pub fn html(input: &ReportInput) -> String {
    let r = input.report;
    let head = input.head;
    let mut s = String::new();
    let _ = write!(
        s,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>edge-tl eval: {title}</title><style>\
         body{{font-family:system-ui,sans-serif;max-width:900px;margin:auto;padding:12px;color:#222}}\
         table{{border-collapse:collapse}}td,th{{padding:3px 10px;text-align:left}}\
         tr:nth-child(even){{background:#f4f4f4}}.grid{{display:flex;flex-wrap:wrap;gap:8px}}\
         figure{{margin:0;width:140px;font-size:.8em}}figure img{{max-width:128px;display:block}}figure small{{word-break:break-all}}\
         svg{{max-width:100%;height:auto}}</style></head><body>\
         <h1>{title}</h1><p>Head <code>{head_path}</code> ({kind}, backbone {backbone}{region}) on \
         <code>{testset}</code>.</p>\
         <p><b>Accuracy {acc:.1}%</b> on {n} pictures; top-5 {top5:.1}%.</p>",
        title = escape(&format!(
            "{} on {}",
            input.head_path.file_name().unwrap_or_default().to_string_lossy(),
            input.testset.display()
        )),
        head_path = escape(&input.head_path.display().to_string()),
        kind = match head.classifier {
            crate::head::Classifier::Logistic { .. } => "logistic",
            crate::head::Classifier::Centroid { .. } => "centroid",
        },
        backbone = escape(&head.backbone.name),
        region = head
            .region
            .map_or(String::new(), |r| format!(", looking at the region {r}")),
        testset = escape(&input.testset.display().to_string()),
        acc = 100.0 * r.accuracy,
        n = r.n,
        top5 = 100.0 * r.top5_accuracy,
    );
    s.push_str("<h2>Per label</h2><table><tr><th>label</th><th>precision</th><th>recall</th><th>pictures</th></tr>");
    for c in &r.per_class {
        let _ = write!(
            s,
            "<tr><td>{}</td><td>{:.1}%</td><td>{:.1}%</td><td>{}</td></tr>",
            escape(&c.label),
            100.0 * c.precision,
            100.0 * c.recall,
            c.support
        );
    }
    s.push_str("</table><h2>Confusion matrix</h2><p>Rows: the pictures' labels; columns: what the head said.</p>");
    s.push_str(&confusion_svg(&r.labels, &r.confusion));
    let _ = write!(
        s,
        "<h2>Taken for another label ({})</h2>",
        input.wrong.len()
    );
    if input.wrong.is_empty() {
        s.push_str("<p>None.</p>");
    } else {
        s.push_str("<div class=\"grid\">");
        for w in input.wrong.iter().take(MAX_THUMBNAILS) {
            let name = w.path.display().to_string();
            let picture = thumbnail(&w.path, head).map_or(String::new(), |uri| {
                format!("<img src=\"{uri}\" alt=\"{}\">", escape(&name))
            });
            let _ = write!(
                s,
                "<figure>{picture}<figcaption>{} taken for {} ({:.0}%)<br><small>{}</small></figcaption></figure>",
                escape(&w.label),
                escape(&w.taken_for),
                100.0 * w.prob,
                escape(&name)
            );
        }
        s.push_str("</div>");
        if input.wrong.len() > MAX_THUMBNAILS {
            s.push_str("<ul>");
            for w in &input.wrong[MAX_THUMBNAILS..] {
                let _ = write!(
                    s,
                    "<li>{} ({} taken for {})</li>",
                    escape(&w.path.display().to_string()),
                    escape(&w.label),
                    escape(&w.taken_for)
                );
            }
            s.push_str("</ul>");
        }
    }
    match head.training.learning_curve.as_deref() {
        Some(curve) if curve.len() > 1 => {
            s.push_str("<h2>Enough pictures?</h2><p>Cross-validated accuracy of the training pictures by pictures per label:</p>");
            s.push_str(&curve_svg(curve));
            if let Some(v) = verdict(curve) {
                let _ = write!(s, "<p>{}</p>", escape(&v));
            }
        }
        _ => {}
    }
    if !input.skipped.is_empty() {
        s.push_str("<h2>Pictures that could not be read</h2><ul>");
        for k in input.skipped {
            let _ = write!(s, "<li>{}</li>", escape(k));
        }
        s.push_str("</ul>");
    }
    s.push_str("</body></html>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_what_could_be_markup() {
        assert_eq!(
            escape("<b>\"cat\" & 'dog'</b>"),
            "&lt;b&gt;&quot;cat&quot; &amp; &#39;dog&#39;&lt;/b&gt;"
        );
        let svg = confusion_svg(&["<x>".into(), "y".into()], &[vec![3, 1], vec![0, 4]]);
        assert!(svg.contains("&lt;x&gt;") && !svg.contains("<x>"));
        assert_eq!(svg.matches("<rect").count(), 4);
        assert!(svg.contains(">3</text>") && svg.contains(">4</text>"));
    }
}
