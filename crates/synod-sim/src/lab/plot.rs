//! PNG plots of the lab's reports (plotters, bitmap backend).

use super::LabError;
use super::benor::{BenOrReport, Scheduler};
use super::generals::GeneralsReport;
use super::scaling::ScalingReport;
use plotters::prelude::*;
use std::path::Path;

const SIZE: (u32, u32) = (960, 600);

/// Picks (analytic, simulated) out of a scaling row.
type RowValue = fn(&super::scaling::ScalingRow) -> (f64, f64);

fn plot_error(path: &Path) -> impl Fn(String) -> LabError + '_ {
    move |reason| LabError::Plot {
        path: path.display().to_string(),
        reason,
    }
}

/// P(faults within budget) against n for both bounds: analytic lines, Monte-Carlo markers.
pub fn scaling_png(report: &ScalingReport, path: &Path) -> Result<(), LabError> {
    let err = plot_error(path);
    let e = |x: &dyn std::fmt::Display| err(x.to_string());
    let root = BitMapBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(|x| e(&x))?;
    let c = &report.config;
    let n_max = c.n_max.max(2) as f64;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!(
                "P(faults within budget), p = {}, rho = {}  (lines: analytic; marks: {} simulated trials)",
                c.p, c.rho, c.trials
            ),
            ("sans-serif", 18),
        )
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(60)
        .build_cartesian_2d(0.5f64..n_max + 0.5, 0f64..1.02f64)
        .map_err(|x| e(&x))?;
    chart
        .configure_mesh()
        .x_desc("agents n")
        .y_desc("probability")
        .x_labels(c.n_max.min(20))
        .x_label_formatter(&|x| format!("{}", x.round() as i64))
        .draw()
        .map_err(|x| e(&x))?;
    let peer = RGBColor(31, 119, 180);
    let trusted = RGBColor(214, 39, 40);
    let calls = RGBColor(120, 120, 120);
    let series: [(&str, RGBColor, RowValue); 2] = [
        ("peer bound, m = floor((n-1)/3)", peer, |r| {
            (r.peer_analytic, r.peer_simulated)
        }),
        ("trusted checker, m = floor((n-1)/2)", trusted, |r| {
            (r.trusted_analytic, r.trusted_simulated)
        }),
    ];
    for (label, color, value) in &series {
        let color = *color;
        chart
            .draw_series(LineSeries::new(
                report.rows.iter().map(|r| (r.n as f64, value(r).0)),
                color.stroke_width(2),
            ))
            .map_err(|x| e(&x))?
            .label(*label)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
        chart
            .draw_series(
                report
                    .rows
                    .iter()
                    .map(|r| Circle::new((r.n as f64, value(r).1), 4, color.filled())),
            )
            .map_err(|x| e(&x))?;
    }
    // The wave rule's wrong decisions: what correlation costs.
    chart
        .draw_series(LineSeries::new(
            report
                .rows
                .iter()
                .map(|r| (r.n as f64, r.wave_decided_wrong)),
            calls.stroke_width(1),
        ))
        .map_err(|x| e(&x))?
        .label("wave rule decides a wrong answer (simulated)")
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], calls.stroke_width(1)));
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(|x| e(&x))?;
    root.present().map_err(|x| e(&x))?;
    Ok(())
}

/// The generals table as a grid: green = IC1 and IC2 held, red = violated, grey = skipped.
pub fn generals_png(report: &GeneralsReport, path: &Path) -> Result<(), LabError> {
    let err = plot_error(path);
    let e = |x: &dyn std::fmt::Display| err(x.to_string());
    let rows = report.placements.len();
    let cols = report.strategies.len();
    let (label_w, cell_w, cell_h, top) = (170i32, 110i32, 26i32, 70i32);
    let width = (label_w + cell_w * cols as i32 + 20) as u32;
    let height = (top + cell_h * rows as i32 + 20) as u32;
    let root = BitMapBackend::new(path, (width, height)).into_drawing_area();
    root.fill(&WHITE).map_err(|x| e(&x))?;
    let name = match report.algorithm {
        super::generals::Algorithm::Oral => "OM",
        super::generals::Algorithm::Signed => "SM",
    };
    let title = format!(
        "{name}({}), n = {}: {}",
        report.m,
        report.n,
        if report.holds {
            "IC1 and IC2 hold in every case"
        } else {
            "violated"
        }
    );
    root.draw(&Text::new(title, (10, 10), ("sans-serif", 20)))
        .map_err(|x| e(&x))?;
    for (j, s) in report.strategies.iter().enumerate() {
        let word = serde_json::to_value(s)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        root.draw(&Text::new(
            word,
            (label_w + cell_w * j as i32 + 8, top - 22),
            ("sans-serif", 15),
        ))
        .map_err(|x| e(&x))?;
    }
    for (i, placement) in report.placements.iter().enumerate() {
        let y = top + cell_h * i as i32;
        let label = if placement.is_empty() {
            "no traitor".to_string()
        } else {
            format!(
                "traitors {}",
                placement
                    .iter()
                    .map(|t| if *t == 0 {
                        "C".to_string()
                    } else {
                        t.to_string()
                    })
                    .collect::<Vec<_>>()
                    .join(",")
            )
        };
        root.draw(&Text::new(label, (10, y + 5), ("sans-serif", 15)))
            .map_err(|x| e(&x))?;
        for (j, strategy) in report.strategies.iter().enumerate() {
            let cases: Vec<_> = report
                .cases
                .iter()
                .filter(|c| &c.traitors == placement && c.strategy == *strategy)
                .collect();
            let bad: u64 = cases.iter().map(|c| c.violating_runs).sum();
            let color = if cases.iter().all(|c| c.skipped) {
                RGBColor(200, 200, 200)
            } else if bad == 0 {
                RGBColor(120, 200, 120)
            } else {
                RGBColor(230, 90, 80)
            };
            let x = label_w + cell_w * j as i32;
            root.draw(&Rectangle::new(
                [(x + 2, y + 2), (x + cell_w - 2, y + cell_h - 2)],
                color.filled(),
            ))
            .map_err(|x| e(&x))?;
        }
    }
    root.present().map_err(|x| e(&x))?;
    Ok(())
}

/// Ben-Or's mean rounds to decide against ρ, one line per scheduler (log scale).
pub fn benor_png(report: &BenOrReport, path: &Path) -> Result<(), LabError> {
    let err = plot_error(path);
    let e = |x: &dyn std::fmt::Display| err(x.to_string());
    let root = BitMapBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(|x| e(&x))?;
    let top = f64::from(report.config.rounds_max).max(10.0) * 1.5;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!(
                "Ben-Or, n = {}: mean rounds to decide (undecided runs at the bound of {})",
                report.config.n, report.config.rounds_max
            ),
            ("sans-serif", 18),
        )
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(60)
        .build_cartesian_2d(-0.05f64..1.05f64, (1f64..top).log_scale())
        .map_err(|x| e(&x))?;
    chart
        .configure_mesh()
        .x_desc("rho: probability that a round's coin is one shared draw")
        .y_desc("mean rounds")
        .draw()
        .map_err(|x| e(&x))?;
    for (scheduler, label, color) in [
        (
            Scheduler::Predicting,
            "scheduler predicts shared draws",
            RGBColor(214, 39, 40),
        ),
        (
            Scheduler::Blind,
            "scheduler cannot predict coins",
            RGBColor(31, 119, 180),
        ),
    ] {
        let points: Vec<(f64, f64)> = report
            .rows
            .iter()
            .filter(|r| r.scheduler == scheduler)
            .map(|r| (r.rho, r.mean_rounds.max(1.0)))
            .collect();
        chart
            .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))
            .map_err(|x| e(&x))?
            .label(label)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
        chart
            .draw_series(
                points
                    .into_iter()
                    .map(|p| Circle::new(p, 4, color.filled())),
            )
            .map_err(|x| e(&x))?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(|x| e(&x))?;
    root.present().map_err(|x| e(&x))?;
    Ok(())
}
