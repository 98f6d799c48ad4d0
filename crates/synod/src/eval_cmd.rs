//! `synod eval`: compare ways of using several agents on a benchmark suite.

// Declared here rather than in main.rs: crates/synod-eval/examples/eval.rs compiles this file
// alone, and its options are read by the same parsers (the example uses only some of them).
#[path = "numbers.rs"]
#[allow(dead_code)]
pub mod numbers;

use std::path::PathBuf;
use synod_eval::sim::SimSpec;
use synod_eval::suite::SuiteKind;

/// The most resamples `--resamples` may ask for: each costs a round of calls per task.
const RESAMPLES_LIMIT: u32 = 32;

/// Arguments of `synod eval`.
#[derive(clap::Args, Debug, Clone)]
pub struct EvalArgs {
    /// The suite file (MBPP `sanitized-mbpp.json`, ClassEval `ClassEval_data.json`,
    /// HumanEvalComm `*.jsonl`).
    #[arg(long)]
    pub suite: PathBuf,
    /// What the suite file holds.
    #[arg(long, value_enum)]
    pub suite_kind: SuiteKind,
    /// Simulated agents, `sim:n=4,m=1,p=0.2,rho=0[,mix=dk:0.6+crash:0.2+hostile:0.2][,split=0.5]`,
    /// or an agents file (real models; its fault_budget is m): every strategy is scored on the
    /// same replies, cached. Default: sim:n=4,m=1,p=0.2,rho=0 (Dunning-Kruger faults).
    #[arg(long)]
    pub agents: Option<String>,
    /// Real agents: the response cache (default ~/.cache/synod/responses; keep it outside the
    /// clone so a long run survives). A rerun or a new strategy costs no model time.
    #[arg(long)]
    pub cache_dir: Option<PathBuf>,
    /// Real agents: most model calls in flight at once (the server's parallel slots).
    #[arg(long, default_value_t = 2, value_parser = numbers::whole(1, synod_agents::config::SLOTS_MAX as usize))]
    pub slots: usize,
    /// Run the standard grid for the suite instead of one cell (MBPP: 50 cells; others: 12).
    #[arg(long)]
    pub grid: bool,
    /// Strategies, comma-separated: single, majority-text, majority-behaviour, codet, synod.
    /// `synod-cN` caps a round at N interpret calls and `synod-kN` sets the widened tally's
    /// lead (PL-20; k0: off), `synod-s` asks for distinguishing inputs (PL-22), `synod-r` reads
    /// every answer again (PL-28 off), e.g. synod-c4,synod-c8,synod-c12 for a call-budget curve.
    #[arg(long, value_delimiter = ',')]
    pub strategy: Option<Vec<String>>,
    /// Run the first N tasks only.
    #[arg(long, value_parser = numbers::whole(1, usize::MAX))]
    pub tasks: Option<usize>,
    /// Run these task ids only.
    #[arg(long, value_delimiter = ',', num_args = 1..)]
    pub task_ids: Option<Vec<String>>,
    /// Seed of the simulated agents, probes and differential inputs.
    #[arg(long, default_value_t = 1, value_parser = numbers::whole(0, u64::MAX))]
    pub seed: u64,
    /// Worker threads (1 to 256).
    #[arg(long, default_value_t = 2, value_parser = numbers::whole(1usize, 256))]
    pub jobs: usize,
    /// Output directory (results.csv, summary.md, plots, caches; with real agents also usable.csv, dialogue.jsonl: questions, answers, faults, and trace.jsonl: every ask with its request key, every tally). Re-running resumes.
    #[arg(long, default_value = "eval-out")]
    pub out: PathBuf,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
    /// synod's resample budget: after a round that neither decides nor finds ambiguity,
    /// every agent is asked afresh (simulated agents draw their faults again), up to this many
    /// times. The extra calls are counted in calls/task. Keep it fixed within one --out.
    #[arg(long, default_value_t = synod_eval::DEFAULT_RESAMPLES, value_parser = numbers::whole(0, RESAMPLES_LIMIT))]
    pub resamples: u32,
    /// Real agents: whether a user answers synod's questions: the task's author, who runs the
    /// task's reference (never shown to an agent) on the calls a question shows and names the
    /// reading that matches, or writes its values as examples. Default: as the suite's own
    /// protocol has it, on HumanEvalComm and off elsewhere (a question is then the outcome
    /// `asked`). Keep it fixed within one --out.
    #[arg(long, value_enum)]
    pub user: Option<UserArg>,
}

/// `--user`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum UserArg {
    /// The user answers.
    On,
    /// Nobody answers: a question is the outcome `asked`.
    Off,
}

/// Runs `synod eval`: 0 when the evaluation finished, 2 for arguments it does not accept.
pub fn run_eval(args: &EvalArgs) -> anyhow::Result<u8> {
    let mut real = None;
    let cells = match (&args.agents, args.grid) {
        (Some(_), true) => {
            eprintln!("synod eval: --grid sets the agents itself; drop --agents");
            return Ok(2);
        }
        (_, true) => match args.suite_kind {
            SuiteKind::Mbpp => synod_eval::mbpp_grid(),
            _ => synod_eval::small_grid(),
        },
        (None, false) => {
            eprintln!(
                "synod eval: no --agents: simulated agents sim:n=4,m=1,p=0.2,rho=0 (Dunning-Kruger faults)"
            );
            vec![SimSpec::default()]
        }
        (Some(spec), false) if spec.starts_with("sim") => match SimSpec::parse(spec) {
            Ok(s) => vec![s],
            Err(e) => {
                eprintln!("synod eval: {e}");
                return Ok(2);
            }
        },
        (Some(file), false) => {
            let path = PathBuf::from(file);
            let agents_file = match synod_agents::AgentsFile::load(&path) {
                Ok(f) => f,
                Err(e) => {
                    eprintln!("synod eval: {e}");
                    return Ok(2);
                }
            };
            let cache_dir = args
                .cache_dir
                .clone()
                .or_else(synod_agents::ResponseCache::default_dir);
            let cache = cache_dir.map(synod_agents::ResponseCache::new);
            let agents = match synod_agents::build_agents(&agents_file, cache.as_ref()) {
                Ok(a) => a,
                Err(e) => {
                    eprintln!("synod eval: {e}");
                    return Ok(2);
                }
            };
            let m = agents_file.fault_budget.unwrap_or(1);
            if agents.len() < 2 * m + 1 {
                eprintln!(
                    "synod eval: {} agents cannot tolerate fault_budget = {m} (needs n >= 2m + 1)",
                    agents.len()
                );
                return Ok(2);
            }
            // The file's name, or its directory's for an `agents.toml` (`local-models`).
            let stem = |p: &std::path::Path| p.file_stem().map(|s| s.to_string_lossy().to_string());
            let label = stem(&path)
                .filter(|s| s != "agents")
                .or_else(|| path.canonicalize().ok()?.parent().and_then(stem))
                .unwrap_or_else(|| "agents".into())
                .replace(',', "_");
            eprintln!(
                "synod eval: {} real agents from {file}, m = {m}, replies cached in {}",
                agents.len(),
                cache
                    .as_ref()
                    .map(|c| c.dir().display().to_string())
                    .unwrap_or_else(|| "(no cache: set --cache-dir)".into())
            );
            real = Some(std::sync::Arc::new(synod_eval::real::RealAgents {
                label,
                agents,
                m,
                slots: args.slots.max(1),
                spent: Default::default(),
            }));
            Vec::new()
        }
    };
    if args.user.is_some() && real.is_none() {
        eprintln!(
            "synod eval: --user is for real agents (--agents FILE); simulated agents have the suite's own user"
        );
        return Ok(2);
    }
    let strategies = args
        .strategy
        .clone()
        .unwrap_or_else(synod_eval::all_strategies);
    if let Some(bad) = strategies
        .iter()
        .find(|s| !synod_eval::strategies::is_strategy(s))
    {
        eprintln!(
            "synod eval: unknown strategy {bad:?} (known: {}; synod-cN caps a round at N interpret calls, synod-kN sets the widened tally's lead, synod-s turns on distinguishing inputs, e.g. synod-k0-c8)",
            synod_eval::strategies::STRATEGIES.join(", ")
        );
        return Ok(2);
    }
    let cfg = synod_eval::EvalConfig {
        suite: args.suite.clone(),
        kind: args.suite_kind,
        cells,
        strategies,
        tasks: args.tasks,
        task_ids: args.task_ids.clone(),
        seed: args.seed,
        jobs: args.jobs.max(1),
        out: args.out.clone(),
        progress: !args.quiet,
        resamples: args.resamples,
        real,
        user: args.user.map(|u| u == UserArg::On),
    };
    let summary = synod_eval::run(&cfg)?;
    eprintln!(
        "synod eval: {} rows written ({} resumed), {} tasks skipped, {} sandbox runs ({:.0} s in the sandbox, {} with a timed-out call), {} cache hits, {:.0} s; see {}",
        summary.rows_written,
        summary.rows_resumed,
        summary.skipped.len(),
        summary.sandbox_runs,
        summary.sandbox_ms as f64 / 1000.0,
        summary.runs_timed_out,
        summary.cache_hits,
        summary.seconds,
        cfg.out.join("summary.md").display()
    );
    if let Some(r) = &cfg.real {
        eprintln!("synod eval: real agents: {}", r.spent.line());
    }
    Ok(0)
}
