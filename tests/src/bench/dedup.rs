//! De-duplication on a labelled registry (`outpost_server::dedup::synth`: about 1,000,000
//! people, a tenth of them registered again with field registration's mistakes, no national
//! IDs): precision and recall at the default threshold, the whole-registry run's wall time,
//! pairs compared per second and peak memory, and the precision/recall curve over thresholds
//! as an SVG a programme can choose its threshold by.

use std::{fmt::Write as _, path::Path, time::Instant};

use outpost_server::dedup::{
    self,
    matching::{self, DEFAULT_THRESHOLD, Frequencies, Prepared},
    synth,
};

use super::{Figure, figure, heap, peak_rss_mib};

/// Written beside the benchmark's working directory (or where `OUTPOST_DEDUP_SVG` says).
const CURVE: &str = "dedup-precision-recall.svg";

pub fn run(_dir: &Path, quick: bool) -> Vec<Figure> {
    // OUTPOST_DEDUP_HOUSEHOLDS sets another size (some 4.7 records a household).
    let households = std::env::var("OUTPOST_DEDUP_HOUSEHOLDS")
        .ok()
        .and_then(|h| h.parse().ok())
        .unwrap_or(if quick { 4_000 } else { 220_000 });
    let start = Instant::now();
    let registry = synth::registry(2026, households, 0.1);
    eprintln!(
        "dedup: {} records ({} true pairs) generated in {:.1} s",
        registry.people.len(),
        registry.true_pairs().len(),
        start.elapsed().as_secs_f64()
    );

    heap::start();
    let start = Instant::now();
    let run = dedup::run(&registry.people, None, DEFAULT_THRESHOLD);
    let wall = start.elapsed().as_secs_f64();
    let peak_heap = heap::peak() as f64 / (1 << 20) as f64;
    heap::stop();
    let q = registry.quality(
        run.matches
            .iter()
            .map(|m| (m.first as u32, m.second as u32)),
    );
    eprintln!(
        "dedup: {} pairs compared, {} proposed, {} blocks skipped, in {wall:.1} s",
        run.compared,
        run.matches.len(),
        run.skipped_blocks
    );

    // The curve: every candidate scored once with the run's model, then cut at each threshold.
    let prepared: Vec<Prepared> = registry.people.iter().map(Prepared::new).collect();
    let candidates = matching::candidates(&prepared);
    let freq = Frequencies::of(&prepared);
    let compared = matching::compare_all(&prepared, &candidates.pairs);
    let scored = matching::score(
        &prepared,
        &candidates.pairs,
        &compared,
        &run.model,
        &freq,
        0.01,
    );
    let mut points = Vec::new();
    for t in (1..100).map(|i| i as f64 / 100.0) {
        let cut = registry.quality(
            scored
                .iter()
                .filter(|s| s.probability >= t)
                .map(|s| (s.first, s.second)),
        );
        points.push((t, cut.precision(), cut.recall()));
    }
    for (t, p, r) in points
        .iter()
        .filter(|p| [10, 30, 50, 60, 70, 80, 85, 90, 95].contains(&((p.0 * 100.0).round() as i32)))
    {
        eprintln!("dedup: at threshold {t:.2}: precision {p:.3}, recall {r:.3}");
    }
    let path = std::env::var("OUTPOST_DEDUP_SVG").unwrap_or_else(|_| CURVE.to_owned());
    std::fs::write(&path, curve_svg(&points, DEFAULT_THRESHOLD)).expect("write the curve");
    eprintln!("dedup: precision/recall curve written to {path}");

    vec![
        figure(
            "dedup: records in the labelled registry",
            registry.people.len() as f64,
            "records",
            "1,000,000",
            "higher",
        ),
        figure(
            "dedup: precision at the default threshold",
            q.precision(),
            "ratio",
            ">= 0.95",
            "higher",
        ),
        figure(
            "dedup: recall at the default threshold",
            q.recall(),
            "ratio",
            ">= 0.95",
            "higher",
        ),
        figure("dedup: whole-registry run", wall, "s", "<= 60 s", "lower"),
        figure(
            "dedup: pairs compared",
            run.compared as f64,
            "pairs",
            "-",
            "lower",
        ),
        figure(
            "dedup: pairs compared per second",
            run.compared as f64 / wall,
            "pairs/s",
            "-",
            "higher",
        ),
        figure(
            "dedup: peak heap during the run",
            peak_heap,
            "MiB",
            "<= 2 GiB",
            "lower",
        ),
        figure(
            "dedup: peak resident memory",
            peak_rss_mib(),
            "MiB",
            "<= 2 GiB",
            "lower",
        ),
    ]
}

/// Precision and recall against the threshold, the default marked: plain SVG, no script.
fn curve_svg(points: &[(f64, f64, f64)], default: f64) -> String {
    let (w, h, pad) = (640.0, 400.0, 50.0);
    let x = |t: f64| pad + t * (w - 2.0 * pad);
    let y = |v: f64| h - pad - v * (h - 2.0 * pad);
    let line = |pick: fn(&(f64, f64, f64)) -> f64| {
        points
            .iter()
            .map(|p| format!("{:.1},{:.1}", x(p.0), y(pick(p))))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"{}\" y=\"20\" text-anchor=\"middle\" font-size=\"14\">Precision and recall by match-probability threshold</text>\n",
        w / 2.0
    );
    for i in 0..=10 {
        let v = i as f64 / 10.0;
        let _ = writeln!(
            svg,
            "<line x1=\"{:.1}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\" stroke=\"#ddd\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{v:.1}</text>\
             <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{v:.1}</text>",
            x(0.0),
            y(v),
            x(1.0),
            y(v),
            x(0.0) - 6.0,
            y(v) + 4.0,
            x(v),
            y(0.0) + 18.0
        );
    }
    let _ = writeln!(
        svg,
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">threshold (match probability)</text>\n\
         <polyline fill=\"none\" stroke=\"#1f77b4\" stroke-width=\"2\" points=\"{}\"/>\n\
         <polyline fill=\"none\" stroke=\"#d62728\" stroke-width=\"2\" points=\"{}\"/>\n\
         <line x1=\"{dx:.1}\" y1=\"{:.1}\" x2=\"{dx:.1}\" y2=\"{:.1}\" stroke=\"#555\" stroke-dasharray=\"4 3\"/>\n\
         <text x=\"{:.1}\" y=\"{:.1}\">default {default}</text>\n\
         <text x=\"{:.1}\" y=\"{:.1}\" fill=\"#1f77b4\">precision</text>\n\
         <text x=\"{:.1}\" y=\"{:.1}\" fill=\"#d62728\">recall</text>\n</svg>\n",
        w / 2.0,
        h - 10.0,
        line(|p| p.1),
        line(|p| p.2),
        y(0.0),
        y(1.0),
        x(default) + 4.0,
        y(0.05),
        x(0.02),
        y(0.12),
        x(0.02),
        y(0.05),
        dx = x(default),
    );
    svg
}
