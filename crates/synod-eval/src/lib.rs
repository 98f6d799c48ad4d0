//! synod-eval: does agreement beat the usual ways of using several agents?
//!
//! Runs strategies (`single`, `majority-text`, `majority-behaviour`, `codet`, `synod`) on the
//! same simulated agents' same replies over benchmark tasks, judges each delivered program on
//! every test of the task (the example its prompt shows included, [`suite::Task::scoring_tests`]),
//! and writes `results.csv`, `summary.md` and PNG plots.
//!
//! # Driving it
//!
//! Build an [`EvalConfig`] (the CLI's `synod eval` does) and call [`run`]. Per task, once:
//! [`prepare::prepare`] makes K rewrites and K mutants of the reference (cached under
//! `out/programs/`). Per task and grid cell: [`sim::plans`] draws what each agent does, and
//! [`strategies::Cell::run`] runs each strategy. Every sandbox run goes through
//! [`checks::CheckCache`], keyed by program and calls, so a grid of fifty cells costs little
//! more than one.
//!
//! What an agent sees: the task text, the entry point's signature and the first test as the
//! example ([`real::example_prompt`]); real agents on HumanEvalComm see the prompt's own text
//! and the function it declares, by the name it declares, and no test
//! ([`real::agent_prompt`]). The other tests are hidden; with the example they decide
//! correctness and nothing else ([`checks::CheckCache::hidden_verdict`] keeps their verdicts
//! apart from everything else). A program that breaks the example its prompt shows is wrong,
//! as MBPP and HumanEval define it, whatever the hidden tests say: MBPP task 20's hidden tests
//! are both `False`, so a function that always returns `False` passes them.
//!
//! Resamples: synod's pipeline may ask every agent afresh when a round neither decides nor finds
//! ambiguity ([`EvalConfig::resamples`], default [`DEFAULT_RESAMPLES`]). A simulated agent asked
//! for sample s follows [`sim::plans_at`] for s: its fault is drawn again (deterministically in
//! seed, task, agent and sample), so a resample is a real second chance, and it costs calls that
//! results.csv counts.
//!
//! Probe domain: probe calls with an integer beyond [`checks::domain_int_max`] (ten times the
//! example's largest, at least 1000) are not run and read as an out-of-domain error for every
//! program alike; probe runs get a per-call budget from the reference's own time
//! ([`checks::call_budget_ms`]). Both keep huge-int variants (±2⁴⁰, 1000·n) from costing every
//! run its whole wall-clock limit and from splitting classes on timing.
//!
//! Suites: MBPP (one function per task), ClassEval (one class per task, compared through a
//! module-level `run(script)` driver: [`suite::classeval_driver`]) and HumanEvalComm (the
//! original prompt and its modified ones; a simulated user answers questions).
//!
//! A killed run resumes: rows already in `results.csv` are skipped. Keep the resample budget
//! fixed within one output directory (rows do not record it; summary.md does).

pub mod checks;
pub mod prepare;
pub mod real;
pub mod report;
pub mod sim;
pub mod strategies;
pub mod suite;

use indicatif::{ProgressBar, ProgressStyle};
use sim::{SimSpec, SimTask};
use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;
use strategies::{Cell, STRATEGIES};
use suite::{SuiteKind, Task};

/// What went wrong in the harness (never in a candidate: those are verdicts).
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// A file could not be read or written.
    #[error("cannot {what}")]
    Io {
        /// What was being done.
        what: String,
        /// Why.
        source: std::io::Error,
    },
    /// The suite file is not what its kind says.
    #[error("suite {path}: {why}")]
    Suite {
        /// The file.
        path: String,
        /// What is wrong.
        why: String,
    },
    /// The agents description is not usable.
    #[error("agents {0}")]
    Agents(String),
    /// The sandbox could not be set up or run.
    #[error("sandbox: {0}")]
    Sandbox(String),
    /// Something the harness does not do (yet).
    #[error("not supported: {0}")]
    Unsupported(String),
}

/// One evaluation.
#[derive(Clone, Debug)]
pub struct EvalConfig {
    /// The suite file.
    pub suite: PathBuf,
    /// Its kind.
    pub kind: SuiteKind,
    /// Grid cells (one for a plain run).
    pub cells: Vec<SimSpec>,
    /// Strategies to run.
    pub strategies: Vec<String>,
    /// First N tasks only.
    pub tasks: Option<usize>,
    /// These tasks only.
    pub task_ids: Option<Vec<String>>,
    /// Seed of everything.
    pub seed: u64,
    /// Worker threads.
    pub jobs: usize,
    /// Output directory.
    pub out: PathBuf,
    /// Show a progress bar on stderr.
    pub progress: bool,
    /// synod's resample budget ([`synod_core::pipeline::PipelineConfig::resamples_max`]):
    /// after a round that neither decides nor finds ambiguity, every agent is asked afresh
    /// (simulated agents draw their faults again) up to this many times.
    pub resamples: u32,
    /// Real agents instead of `cells` (an agents file): every strategy on the same replies.
    pub real: Option<std::sync::Arc<real::RealAgents>>,
    /// Real agents: does a user answer synod's questions ([`real::RealCell::user_answer`],
    /// the task's author running its reference)? `None`: the suite's own protocol, a user on
    /// HumanEvalComm only; elsewhere a question is the outcome `asked`.
    pub user: Option<bool>,
}

/// The resample budget the evaluation gives synod unless told otherwise.
pub const DEFAULT_RESAMPLES: u32 = 2;

/// The MBPP grid: p ∈ {0, .1, .2, .3, .4} × (n, m) ∈ {(3,1), (4,1), (5,2), (7,2), (7,3)} ×
/// ρ ∈ {0, .5}.
pub fn mbpp_grid() -> Vec<SimSpec> {
    let mut out = Vec::new();
    for (n, m) in [(3, 1), (4, 1), (5, 2), (7, 2), (7, 3)] {
        for rho in [0.0, 0.5] {
            for p in [0.0, 0.1, 0.2, 0.3, 0.4] {
                out.push(SimSpec {
                    n,
                    m,
                    p,
                    rho,
                    ..SimSpec::default()
                });
            }
        }
    }
    out
}

/// The smaller grid for ClassEval and HumanEvalComm: p ∈ {0, .2, .4} × (n, m) ∈ {(4,1),
/// (5,2)} × ρ ∈ {0, .5}.
pub fn small_grid() -> Vec<SimSpec> {
    let mut out = Vec::new();
    for (n, m) in [(4, 1), (5, 2)] {
        for rho in [0.0, 0.5] {
            for p in [0.0, 0.2, 0.4] {
                out.push(SimSpec {
                    n,
                    m,
                    p,
                    rho,
                    ..SimSpec::default()
                });
            }
        }
    }
    out
}

/// The columns of results.csv.
pub const CSV_HEADER: &str = "suite,task_id,variant,n,m,p,rho,seed,strategy,outcome,calls,interpret_calls,tokens,questions,seconds,detail";

/// What a run did.
#[derive(Clone, Debug, Default)]
pub struct RunSummary {
    /// Rows written now.
    pub rows_written: usize,
    /// Rows found from an earlier run.
    pub rows_resumed: usize,
    /// Tasks skipped, with why.
    pub skipped: Vec<(String, String)>,
    /// Sandbox runs.
    pub sandbox_runs: u64,
    /// Cache hits.
    pub cache_hits: u64,
    /// Milliseconds spent in sandbox runs (all workers together).
    pub sandbox_ms: u64,
    /// Probe runs in which some call timed out.
    pub runs_timed_out: u64,
    /// Wall time of this run.
    pub seconds: f64,
}

/// Runs the evaluation and writes results.csv, summary.md and plots under `cfg.out`.
pub fn run(cfg: &EvalConfig) -> Result<RunSummary, EvalError> {
    let t0 = Instant::now();
    let io = |what: String| move |source| EvalError::Io { what, source };
    std::fs::create_dir_all(&cfg.out).map_err(io(format!("create {}", cfg.out.display())))?;
    let mut tasks = suite::load(&cfg.suite, cfg.kind)?;
    if let Some(ids) = &cfg.task_ids {
        tasks.retain(|t| ids.contains(&t.id));
    }
    if let Some(k) = cfg.tasks {
        tasks.truncate(k);
    }
    let csv_path = cfg.out.join("results.csv");
    let done = read_done(&csv_path);
    let rows_resumed = done.len();
    let mut csv = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&csv_path)
        .map_err(io(format!("open {}", csv_path.display())))?;
    if std::fs::metadata(&csv_path).map(|m| m.len()).unwrap_or(0) == 0 {
        writeln!(csv, "{CSV_HEADER}").map_err(io("write results.csv".into()))?;
    }
    let csv = Mutex::new(csv);
    let cache = checks::CheckCache::open(&cfg.out.join("cache"))?;
    let programs_dir = cfg.out.join("programs");
    let units: Vec<(usize, usize)> = tasks
        .iter()
        .enumerate()
        .flat_map(|(i, t)| (0..t.prompts.len()).map(move |v| (i, v)))
        .collect();
    let bar = if cfg.progress {
        ProgressBar::new(units.len() as u64)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template(
            "{elapsed_precise} [{bar:40}] {pos}/{len} tasks ({eta} left) {msg}",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    let next = AtomicUsize::new(0);
    let written = AtomicUsize::new(0);
    let skipped = Mutex::new(Vec::new());
    let failure: Mutex<Option<EvalError>> = Mutex::new(None);
    std::thread::scope(|s| {
        for _ in 0..cfg.jobs.max(1) {
            s.spawn(|| {
                loop {
                    let k = next.fetch_add(1, Ordering::Relaxed);
                    let Some(&(ti, vi)) = units.get(k) else { break };
                    if failure.lock().expect("lock").is_some() {
                        break;
                    }
                    match run_unit(cfg, &tasks[ti], vi, &done, &cache, &programs_dir) {
                        Ok(UnitResult::Rows(rows)) => {
                            if !rows.is_empty() {
                                let mut f = csv.lock().expect("lock");
                                let text: String = rows.iter().map(|r| format!("{r}\n")).collect();
                                if let Err(e) = f.write_all(text.as_bytes()).and_then(|_| f.flush())
                                {
                                    *failure.lock().expect("lock") = Some(EvalError::Io {
                                        what: "append results.csv".into(),
                                        source: e,
                                    });
                                }
                                written.fetch_add(rows.len(), Ordering::Relaxed);
                            }
                        }
                        Ok(UnitResult::Skipped(why)) => {
                            if vi == 0 {
                                skipped
                                    .lock()
                                    .expect("lock")
                                    .push((tasks[ti].id.clone(), why));
                            }
                        }
                        Err(e) => {
                            *failure.lock().expect("lock") = Some(e);
                        }
                    }
                    if let Some(r) = &cfg.real {
                        bar.set_message(r.spent.line());
                    }
                    bar.inc(1);
                }
            });
        }
    });
    bar.finish_and_clear();
    if let Some(e) = failure.into_inner().expect("lock") {
        return Err(e);
    }
    let mut skipped = skipped.into_inner().expect("lock");
    skipped.sort();
    let summary = RunSummary {
        rows_written: written.into_inner(),
        rows_resumed,
        skipped,
        sandbox_runs: cache.stats.runs.load(Ordering::Relaxed),
        cache_hits: cache.stats.hits.load(Ordering::Relaxed),
        sandbox_ms: cache.stats.run_ms.load(Ordering::Relaxed),
        runs_timed_out: cache.stats.runs_timed_out.load(Ordering::Relaxed),
        seconds: t0.elapsed().as_secs_f64(),
    };
    report::write(cfg, &summary)?;
    Ok(summary)
}

enum UnitResult {
    Rows(Vec<String>),
    Skipped(String),
}

/// Task seed: the run's seed and the task id.
pub fn task_seed(seed: u64, task: &str) -> u64 {
    let h = blake3::hash(format!("{seed}/{task}").as_bytes());
    u64::from_le_bytes(h.as_bytes()[..8].try_into().expect("8 bytes"))
}

fn row_key(task: &str, variant: &str, c: &SimSpec, seed: u64, strategy: &str) -> String {
    key_of(
        task,
        variant,
        (c.n, c.m),
        (&c.p.to_string(), &c.rho.to_string()),
        seed,
        strategy,
    )
}

/// A row's key: everything before its outcome. Real agents write `p` = `real` and their
/// set's label as `rho`.
fn key_of(
    task: &str,
    variant: &str,
    (n, m): (usize, usize),
    (p, rho): (&str, &str),
    seed: u64,
    strategy: &str,
) -> String {
    format!("{task},{variant},{n},{m},{p},{rho},{seed},{strategy}")
}

fn read_done(path: &Path) -> BTreeSet<String> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return BTreeSet::new();
    };
    text.lines()
        .skip(1)
        .filter(|l| l.split(',').count() >= 15)
        .map(|l| l.split(',').skip(1).take(8).collect::<Vec<_>>().join(","))
        .collect()
}

fn run_unit(
    cfg: &EvalConfig,
    task: &Task,
    variant: usize,
    done: &BTreeSet<String>,
    cache: &checks::CheckCache,
    programs_dir: &Path,
) -> Result<UnitResult, EvalError> {
    if let Some(real) = &cfg.real {
        return run_unit_real(cfg, real, task, variant, done, cache, programs_dir);
    }
    let v = &task.prompts[variant];
    let todo: Vec<(&SimSpec, &String)> = cfg
        .cells
        .iter()
        .flat_map(|c| cfg.strategies.iter().map(move |s| (c, s)))
        .filter(|(c, s)| !done.contains(&row_key(&task.id, &v.name, c, cfg.seed, s)))
        .collect();
    if todo.is_empty() {
        return Ok(UnitResult::Rows(Vec::new()));
    }
    let hec = cfg.kind == SuiteKind::Humanevalcomm;
    if task.tests.len() < 2 || (hec && !task.tests[0].contains(") == ")) {
        return Ok(UnitResult::Skipped(
            "fewer than two usable tests, or no plain example".into(),
        ));
    }
    let tseed = task_seed(cfg.seed, &task.id);
    let prepared = prepare::prepare(task, programs_dir, tseed)?;
    if !prepared.ok {
        return Ok(UnitResult::Skipped(prepared.why.clone()));
    }
    if prepared.example_args.len() != prepared.params.len() {
        // The example leaves out parameters that have defaults: the contract call would not
        // match the interface every reading states.
        return Ok(UnitResult::Skipped(
            "the example call leaves out parameters with defaults".into(),
        ));
    }
    if prepared.example_returns.is_none() {
        // No contract example can be stated (a set, a complex number, an object): agents'
        // specs would carry none and synod would find no valid reading. Skipped for every
        // strategy alike.
        return Ok(UnitResult::Skipped(
            "the example's result is not a plain value (set, complex, object)".into(),
        ));
    }
    let mut sim_task = SimTask::new(&prepared, &task.reference, tseed, &task.id);
    // HumanEvalComm: a simulated user answers questions on every prompt; the modified
    // prompts' ambiguity is injected (correct agents split between the reading and the other
    // reading with probability `split`); the original prompts get no split, so a question
    // there is over-asking.
    let user = cfg.kind == SuiteKind::Humanevalcomm;
    let ambiguous = user && v.name != "original";
    if ambiguous {
        // The other reading: a mutant stands in for it (injected ambiguity).
        sim_task.alt = prepared.mutants.first().map(|m| m.src.clone());
    }
    // What an agent sees: the task text, the signature and the example as a literal (the
    // prompt real agents get, so the example is a checked example, PL-16). ClassEval's
    // prompt already carries the class skeleton.
    let prompt = if cfg.kind == SuiteKind::Classeval {
        v.text.clone()
    } else {
        real::example_prompt(task, variant, &prepared).unwrap_or_else(|| v.text.clone())
    };
    let mut rows = Vec::new();
    for (cell, strategy) in todo {
        let amb = ambiguous && sim_task.alt.is_some();
        let plans = sim::plans(cell, cfg.seed, &task.id, &prepared, amb);
        let resampled = (1..=cfg.resamples)
            .map(|s| sim::plans_at(cell, cfg.seed, &task.id, &prepared, amb, s))
            .collect();
        let c = Cell {
            task,
            prompt: &prompt,
            sim: &sim_task,
            spec: cell,
            plans,
            resampled,
            resamples: cfg.resamples,
            cache,
            task_seed: tseed,
            user,
        };
        let t = Instant::now();
        let r = c.run(strategy)?;
        let secs = t.elapsed().as_secs_f64();
        let key = row_key(&task.id, &v.name, cell, cfg.seed, strategy);
        rows.push(csv_row(cfg.kind, &key, &r, secs, &r.detail));
    }
    Ok(UnitResult::Rows(rows))
}

/// One task variant with real agents: the replies drawn once, every strategy on them.
fn run_unit_real(
    cfg: &EvalConfig,
    real: &real::RealAgents,
    task: &Task,
    variant: usize,
    done: &BTreeSet<String>,
    cache: &checks::CheckCache,
    programs_dir: &Path,
) -> Result<UnitResult, EvalError> {
    let v = &task.prompts[variant];
    let nm = (real.agents.len(), real.m);
    let cell = ("real", real.label.as_str());
    let todo: Vec<&String> = cfg
        .strategies
        .iter()
        .filter(|s| !done.contains(&key_of(&task.id, &v.name, nm, cell, cfg.seed, s)))
        .collect();
    let usable_path = cfg.out.join("usable.csv");
    let usable_key = format!("{},{},", task.id, v.name);
    let usable_done = std::fs::read_to_string(&usable_path)
        .map(|t| {
            t.lines()
                .any(|l| l.starts_with(&usable_key) && l.contains(&format!(",{},", real.label)))
        })
        .unwrap_or(false);
    if todo.is_empty() && usable_done {
        return Ok(UnitResult::Rows(Vec::new()));
    }
    if cfg.kind == SuiteKind::Classeval {
        return Ok(UnitResult::Skipped(
            "ClassEval with real agents is not supported yet".into(),
        ));
    }
    let hec = cfg.kind == SuiteKind::Humanevalcomm;
    if task.tests.len() < 2 || (hec && !task.tests[0].contains(") == ")) {
        return Ok(UnitResult::Skipped(
            "fewer than two usable tests, or no plain example".into(),
        ));
    }
    let tseed = task_seed(cfg.seed, &task.id);
    let prepared = match real::prepare_task(task, programs_dir, tseed)? {
        Ok(p) => p,
        Err(why) => return Ok(UnitResult::Skipped(why)),
    };
    let Some(c) = real::RealCell::new(
        (task, variant),
        &prepared,
        real,
        cache,
        tseed,
        cfg.resamples,
        cfg.user.unwrap_or(hec),
    ) else {
        return Ok(UnitResult::Skipped("no plain example".into()));
    };
    if !usable_done {
        // usable.csv: one row per agent and task variant, whether its first reply gave a
        // reading (the usable-reply rate per model in docs/RESULTS.md).
        let mut text = String::new();
        for (agent, model, why) in c.usable_rows() {
            text.push_str(&format!(
                "{usable_key}{},{agent},{model},{},{}\n",
                real.label,
                why.is_none(),
                csv_field(why.as_deref().unwrap_or(""))
            ));
        }
        append(&usable_path, &text)?;
    }
    let mut rows = Vec::new();
    for strategy in todo {
        let t = Instant::now();
        let r = c.run(strategy)?;
        let secs = t.elapsed().as_secs_f64();
        let mut detail = r.detail.clone();
        if strategy.starts_with("synod") {
            detail.push_str(&format!("; usable {}/{}", c.usable(), nm.0));
        }
        let key = key_of(&task.id, &v.name, nm, cell, cfg.seed, strategy);
        // dialogue.jsonl: what synod asked, what the user answered, why a run stopped;
        // trace.jsonl: every progress event of the run.
        for (file, lines) in [
            ("dialogue.jsonl", c.take_dialogue()),
            ("trace.jsonl", c.take_trace()),
        ] {
            let mut text = String::new();
            for mut line in lines {
                line["task"] = task.id.clone().into();
                line["variant"] = v.name.clone().into();
                line["strategy"] = strategy.to_string().into();
                text.push_str(&format!("{line}\n"));
            }
            if !text.is_empty() {
                append(&cfg.out.join(file), &text)?;
            }
        }
        rows.push(csv_row(cfg.kind, &key, &r, secs, &detail));
    }
    Ok(UnitResult::Rows(rows))
}

/// Appends `text` to the file at `path` (created when missing).
fn append(path: &std::path::Path, text: &str) -> Result<(), EvalError> {
    let io = |source| EvalError::Io {
        what: format!("append {}", path.display()),
        source,
    };
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(io)?
        .write_all(text.as_bytes())
        .map_err(io)
}

/// One results.csv row: the suite, the row's key, then the strategy's result.
fn csv_row(
    kind: SuiteKind,
    key: &str,
    r: &strategies::StrategyResult,
    secs: f64,
    detail: &str,
) -> String {
    format!(
        "{},{key},{},{},{},{},{},{secs:.3},{}",
        kind.name(),
        r.verdict.name(),
        r.calls,
        r.interpret_calls,
        r.tokens,
        r.questions,
        csv_field(detail)
    )
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\"").replace('\n', " "))
    } else {
        s.to_string()
    }
}

/// The default strategies.
pub fn all_strategies() -> Vec<String> {
    STRATEGIES.iter().map(|s| s.to_string()).collect()
}
