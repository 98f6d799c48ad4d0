//! PNG plots of the lab's reports (plotters, bitmap backend).

use super::LabError;
use super::benor::{BenOrReport, Scheduler};
use super::generals::GeneralsReport;
use super::scaling::ScalingReport;
use plotters::coord::Shift;
use plotters::coord::ranged1d::AsRangedCoord;
use plotters::prelude::*;
use std::fmt::Display;
use std::path::Path;

const SIZE: (u32, u32) = (960, 600);

/// Picks (analytic, simulated) out of a scaling row.
type RowValue = fn(&super::scaling::ScalingRow) -> (f64, f64);

/// What a failure of the plotting backend becomes.
type PlotError<'e> = &'e dyn Fn(&dyn Display) -> LabError;

/// A plot's drawing area, written to its file by `present`.
type Canvas<'p> = DrawingArea<BitMapBackend<'p>, Shift>;

/// A chart on a [`Canvas`] with `x` and `y` axes of its own.
type Chart<'c, 'p, X, Y> = ChartContext<'c, BitMapBackend<'p>, Cartesian2d<X, Y>>;

fn plot_error(path: &Path) -> impl Fn(&dyn Display) -> LabError + '_ {
    move |reason| LabError::Plot {
        path: path.display().to_string(),
        reason: reason.to_string(),
    }
}

/// A white canvas of `size` pixels for the PNG at `path`.
fn canvas<'p>(path: &'p Path, size: (u32, u32), e: PlotError) -> Result<Canvas<'p>, LabError> {
    let root = BitMapBackend::new(path, size).into_drawing_area();
    root.fill(&WHITE).map_err(|x| e(&x))?;
    Ok(root)
}

/// A chart over `x` by `y` filling `root`, in the lab's caption font, margin and label areas.
fn chart<'c, 'p, X: AsRangedCoord, Y: AsRangedCoord>(
    root: &'c Canvas<'p>,
    caption: String,
    x: X,
    y: Y,
    e: PlotError,
) -> Result<Chart<'c, 'p, X::CoordDescType, Y::CoordDescType>, LabError> {
    ChartBuilder::on(root)
        .caption(caption, ("sans-serif", 18))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(60)
        .build_cartesian_2d(x, y)
        .map_err(|x| e(&x))
}

/// A legend entry's sample: a short line in the series' colour and width.
fn legend_line(color: RGBColor, width: u32) -> impl Fn((i32, i32)) -> PathElement<(i32, i32)> {
    move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(width))
}

/// One labelled series: a line through `line` (in the legend) and a mark at each of `marks`.
fn line_and_marks<X, Y>(
    chart: &mut Chart<'_, '_, X, Y>,
    label: &str,
    color: RGBColor,
    line: Vec<(f64, f64)>,
    marks: Vec<(f64, f64)>,
    e: PlotError,
) -> Result<(), LabError>
where
    X: Ranged<ValueType = f64>,
    Y: Ranged<ValueType = f64>,
{
    chart
        .draw_series(LineSeries::new(line, color.stroke_width(2)))
        .map_err(|x| e(&x))?
        .label(label)
        .legend(legend_line(color, 2));
    chart
        .draw_series(marks.into_iter().map(|p| Circle::new(p, 4, color.filled())))
        .map_err(|x| e(&x))?;
    Ok(())
}

/// The legend box, at `position`.
fn legend<'c, 'p: 'c, X: Ranged, Y: Ranged>(
    chart: &mut Chart<'c, 'p, X, Y>,
    position: SeriesLabelPosition,
    e: PlotError,
) -> Result<(), LabError> {
    chart
        .configure_series_labels()
        .position(position)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(|x| e(&x))
}

/// P(faults within budget) against n for both bounds: analytic lines, Monte-Carlo markers.
pub fn scaling_png(report: &ScalingReport, path: &Path) -> Result<(), LabError> {
    let e = &plot_error(path);
    let root = canvas(path, SIZE, e)?;
    let c = &report.config;
    let n_max = c.n_max.max(2) as f64;
    let mut chart = chart(
        &root,
        format!(
            "P(faults within budget), p = {}, rho = {}  (lines: analytic; marks: {} simulated trials)",
            c.p, c.rho, c.trials
        ),
        0.5f64..n_max + 0.5,
        0f64..1.02f64,
        e,
    )?;
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
    for (label, color, value) in series {
        let points = |pick: fn((f64, f64)) -> f64| {
            report
                .rows
                .iter()
                .map(|r| (r.n as f64, pick(value(r))))
                .collect()
        };
        line_and_marks(
            &mut chart,
            label,
            color,
            points(|(analytic, _)| analytic),
            points(|(_, simulated)| simulated),
            e,
        )?;
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
        .legend(legend_line(calls, 1));
    legend(&mut chart, SeriesLabelPosition::LowerLeft, e)?;
    root.present().map_err(|x| e(&x))?;
    Ok(())
}

/// The generals table as a grid: green = IC1 and IC2 held, red = violated, grey = skipped.
pub fn generals_png(report: &GeneralsReport, path: &Path) -> Result<(), LabError> {
    let e = &plot_error(path);
    let rows = report.placements.len();
    let cols = report.strategies.len();
    let (label_w, cell_w, cell_h, top) = (170i32, 110i32, 26i32, 70i32);
    let width = (label_w + cell_w * cols as i32 + 20) as u32;
    let height = (top + cell_h * rows as i32 + 20) as u32;
    let root = canvas(path, (width, height), e)?;
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
    let e = &plot_error(path);
    let root = canvas(path, SIZE, e)?;
    let top = f64::from(report.config.rounds_max).max(10.0) * 1.5;
    let mut chart = chart(
        &root,
        format!(
            "Ben-Or, n = {}: mean rounds to decide (undecided runs at the bound of {})",
            report.config.n, report.config.rounds_max
        ),
        -0.05f64..1.05f64,
        (1f64..top).log_scale(),
        e,
    )?;
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
        line_and_marks(&mut chart, label, color, points.clone(), points, e)?;
    }
    legend(&mut chart, SeriesLabelPosition::UpperLeft, e)?;
    root.present().map_err(|x| e(&x))?;
    Ok(())
}
