//! The ann-benchmarks picture: recall against queries per second, as an SVG.

use std::path::Path;

use plotters::prelude::*;

use super::ann::AnnReport;

/// Draws recall@10 (x) against queries/s (y, log scale) for each `ef`, with exact search as a
/// reference line, into `path`.
pub fn recall_vs_qps(report: &AnnReport, path: &Path, title: &str) -> Result<(), String> {
    let err = |e: &dyn std::fmt::Display| format!("plotting {}: {e}", path.display());
    let root = SVGBackend::new(path, (900, 600)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let qps: Vec<f64> = report
        .rows
        .iter()
        .map(|r| r.qps)
        .chain([report.exact.qps])
        .collect();
    let low = qps.iter().copied().fold(f64::INFINITY, f64::min).max(1.0) / 1.5;
    let high = qps.iter().copied().fold(0.0, f64::max) * 1.5;
    let min_recall = report
        .rows
        .iter()
        .map(|r| r.recall_10)
        .fold(1.0, f64::min)
        .min(0.9);
    let x_low = ((min_recall - 0.02) * 50.0).floor() / 50.0;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(20)
        .x_label_area_size(50)
        .y_label_area_size(70)
        .build_cartesian_2d(x_low..1.0f64, (low..high).log_scale())
        .map_err(|e| err(&e))?;
    chart
        .configure_mesh()
        .x_desc("recall@10 (against exact search)")
        .y_desc("queries/s, one thread (log)")
        .draw()
        .map_err(|e| err(&e))?;
    let points: Vec<(f64, f64)> = report.rows.iter().map(|r| (r.recall_10, r.qps)).collect();
    chart
        .draw_series(LineSeries::new(points.clone(), BLUE.stroke_width(2)))
        .map_err(|e| err(&e))?
        .label(format!(
            "HNSW (M={}, ef_construction={})",
            report.m, report.ef_construction
        ))
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE));
    chart
        .draw_series(points.iter().map(|&p| Circle::new(p, 4, BLUE.filled())))
        .map_err(|e| err(&e))?;
    chart
        .draw_series(report.rows.iter().map(|r| {
            Text::new(
                format!("ef {}", r.ef),
                (r.recall_10, r.qps * 1.12),
                ("sans-serif", 13),
            )
        }))
        .map_err(|e| err(&e))?;
    chart
        .draw_series(std::iter::once(Circle::new(
            (1.0, report.exact.qps),
            5,
            RED.filled(),
        )))
        .map_err(|e| err(&e))?
        .label("exact search")
        .legend(|(x, y)| Circle::new((x + 10, y), 4, RED.filled()));
    chart
        .configure_series_labels()
        .border_style(BLACK)
        .background_style(WHITE.mix(0.9))
        .position(SeriesLabelPosition::LowerLeft)
        .draw()
        .map_err(|e| err(&e))?;
    root.present().map_err(|e| err(&e))?;
    Ok(())
}
