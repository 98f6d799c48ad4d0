//! summary.md and plots, from results.csv (so a resumed run reports every row).

use crate::{EvalConfig, EvalError, RunSummary};
use plotters::prelude::*;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// One parsed row.
#[derive(Clone, Debug)]
pub struct Row {
    /// Task id.
    pub task: String,
    /// Prompt variant.
    pub variant: String,
    /// n.
    pub n: usize,
    /// m.
    pub m: usize,
    /// p (as written).
    pub p: String,
    /// ρ (as written).
    pub rho: String,
    /// Strategy.
    pub strategy: String,
    /// Outcome name.
    pub outcome: String,
    /// Agent calls.
    pub calls: f64,
    /// Interpret calls.
    pub interpret_calls: f64,
    /// Tokens.
    pub tokens: f64,
    /// Questions.
    pub questions: f64,
    /// Seconds.
    pub seconds: f64,
}

/// Reads results.csv.
pub fn read_rows(path: &std::path::Path) -> Vec<Row> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.splitn(16, ',').collect();
            if f.len() < 15 {
                return None;
            }
            Some(Row {
                task: f[1].into(),
                variant: f[2].into(),
                n: f[3].parse().ok()?,
                m: f[4].parse().ok()?,
                p: f[5].into(),
                rho: f[6].into(),
                strategy: f[8].into(),
                outcome: f[9].into(),
                calls: f[10].parse().ok()?,
                interpret_calls: f[11].parse().ok()?,
                tokens: f[12].parse().ok()?,
                questions: f[13].parse().ok()?,
                seconds: f[14].parse().ok()?,
            })
        })
        .collect()
}

/// Aggregate of one group of rows.
#[derive(Clone, Debug, Default)]
pub struct Agg {
    /// Rows.
    pub tasks: usize,
    /// Outcome → count.
    pub outcomes: BTreeMap<String, usize>,
    /// Sums.
    pub calls: f64,
    /// Sum of interpret calls.
    pub interpret_calls: f64,
    /// Sum of tokens.
    pub tokens: f64,
    /// Tasks with at least one question.
    pub asked_any: usize,
    /// Sum of seconds.
    pub seconds: f64,
}

impl Agg {
    fn add(&mut self, r: &Row) {
        self.tasks += 1;
        *self.outcomes.entry(r.outcome.clone()).or_default() += 1;
        self.calls += r.calls;
        self.interpret_calls += r.interpret_calls;
        self.tokens += r.tokens;
        self.seconds += r.seconds;
        if r.questions > 0.0 {
            self.asked_any += 1;
        }
    }

    /// Percentage of rows with this outcome.
    pub fn pct(&self, outcome: &str) -> f64 {
        100.0 * *self.outcomes.get(outcome).unwrap_or(&0) as f64 / self.tasks.max(1) as f64
    }
}

/// Groups rows by (n, m, ρ, p, variant group, strategy).
pub fn aggregate(rows: &[Row]) -> AggMap {
    let order = |s: &str| crate::STRATEGIES.iter().position(|x| *x == s).unwrap_or(99);
    let mut out: BTreeMap<_, Agg> = BTreeMap::new();
    for r in rows {
        let group = if r.variant == "original" {
            "original"
        } else {
            "modified"
        };
        out.entry((
            r.n,
            r.m,
            r.rho.clone(),
            r.p.clone(),
            group.to_string(),
            (order(&r.strategy), r.strategy.clone()),
        ))
        .or_default()
        .add(r);
    }
    out
}

/// Writes summary.md and the plots.
pub fn write(cfg: &EvalConfig, run: &RunSummary) -> Result<(), EvalError> {
    let rows = read_rows(&cfg.out.join("results.csv"));
    let agg = aggregate(&rows);
    let mut md = String::new();
    let _ = writeln!(md, "# synod eval: {}\n", cfg.kind.name());
    let _ = writeln!(
        md,
        "Suite file `{}` (a development set). Seed {}. Simulated agents (fault kinds: {}); synod's resample budget {} (a resample asks every agent afresh). {} rows ({} written now, {} from an earlier run); {} sandbox runs and {} cache hits this run; {:.0} s wall.\n",
        cfg.suite.display(),
        cfg.seed,
        cfg.cells
            .first()
            .map(|c| c
                .mix
                .iter()
                .map(|(k, w)| format!("{k:?}×{w}"))
                .collect::<Vec<_>>()
                .join(", "))
            .unwrap_or_default(),
        cfg.resamples,
        rows.len(),
        run.rows_written,
        run.rows_resumed,
        run.sandbox_runs,
        run.cache_hits,
        run.seconds
    );
    if !run.skipped.is_empty() {
        let _ = writeln!(md, "Skipped tasks ({}):\n", run.skipped.len());
        for (id, why) in &run.skipped {
            let _ = writeln!(md, "- {id}: {why}");
        }
        md.push('\n');
    }
    md.push_str(&table(&agg));
    std::fs::write(cfg.out.join("summary.md"), md).map_err(|source| EvalError::Io {
        what: "write summary.md".into(),
        source,
    })?;
    plot_all(&agg, &cfg.out)
}

/// The summary table in Markdown.
pub fn table(agg: &AggMap) -> String {
    let mut md = String::from(
        "| n | m | ρ | p | prompts | strategy | tasks | correct % | silently wrong % | asked % | abstained % | error % | asked any % | calls/task | reading calls/task | tokens/task | s/task |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for ((n, m, rho, p, group, s), a) in agg {
        let t = a.tasks.max(1) as f64;
        let _ = writeln!(
            md,
            "| {n} | {m} | {rho} | {p} | {group} | {} | {} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {:.2} | {:.2} | {:.0} | {:.3} |",
            s.1,
            a.tasks,
            a.pct("correct"),
            a.pct("silently-wrong"),
            a.pct("asked"),
            a.pct("abstained"),
            a.pct("error"),
            100.0 * a.asked_any as f64 / t,
            a.calls / t,
            a.interpret_calls / t,
            a.tokens / t,
            a.seconds / t,
        );
    }
    md
}

/// Aggregates keyed by (n, m, ρ, p, variant group, (strategy's report order, its name)).
pub type AggMap = BTreeMap<(usize, usize, String, String, String, (usize, String)), Agg>;

fn plot_all(agg: &AggMap, out: &std::path::Path) -> Result<(), EvalError> {
    let mut nms: Vec<(usize, usize)> = agg.keys().map(|k| (k.0, k.1)).collect();
    nms.dedup();
    let mut rhos: Vec<String> = agg.keys().map(|k| k.2.clone()).collect();
    rhos.sort();
    rhos.dedup();
    let ps: std::collections::BTreeSet<&String> = agg.keys().map(|k| &k.3).collect();
    if ps.len() < 2 {
        return Ok(());
    }
    let (n, m) = if nms.contains(&(4, 1)) {
        (4, 1)
    } else {
        nms[0]
    };
    for rho in &rhos {
        for (metric, label) in [
            ("silently-wrong", "silently wrong %"),
            ("correct", "delivered correct %"),
        ] {
            let path = out.join(format!(
                "{}_n{n}m{m}_rho{}.png",
                metric.replace('-', "_"),
                rho.replace('.', "")
            ));
            plot(agg, n, m, rho, metric, label, &path).map_err(|e| EvalError::Io {
                what: format!("draw {}", path.display()),
                source: std::io::Error::other(e),
            })?;
        }
    }
    Ok(())
}

fn plot(
    agg: &AggMap,
    n: usize,
    m: usize,
    rho: &str,
    metric: &str,
    label: &str,
    path: &std::path::Path,
) -> Result<(), String> {
    let root = BitMapBackend::new(path, (720, 480)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!("{label} vs fault rate p (n={n}, m={m}, rho={rho})"),
            ("sans-serif", 20),
        )
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(48)
        .build_cartesian_2d(0f64..0.42f64, 0f64..100f64)
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .x_desc("p")
        .y_desc(label)
        .draw()
        .map_err(|e| e.to_string())?;
    let colors = [RED, BLUE, GREEN, MAGENTA, BLACK];
    for (si, s) in crate::STRATEGIES.iter().enumerate() {
        let pts: Vec<(f64, f64)> = agg
            .iter()
            .filter(|(k, _)| k.0 == n && k.1 == m && k.2 == rho && k.4 == "original" && k.5.1 == *s)
            .filter_map(|(k, a)| Some((k.3.parse::<f64>().ok()?, a.pct(metric))))
            .collect();
        if pts.is_empty() {
            continue;
        }
        let color = colors[si % colors.len()];
        chart
            .draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))
            .map_err(|e| e.to_string())?
            .label(*s)
            .legend(move |(x, y)| Rectangle::new([(x, y - 4), (x + 18, y + 4)], color.filled()));
        chart
            .draw_series(pts.iter().map(|p| Circle::new(*p, 3, color.filled())))
            .map_err(|e| e.to_string())?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|e| e.to_string())?;
    root.present().map_err(|e| e.to_string())
}
