//! Content-addressed caches of sandbox runs.
//!
//! Every strategy, grid cell and pipeline run on a task sees the same few distinct programs on
//! the same calls, so each (program, calls) pair runs once: [`CheckCache::run`] keys a
//! [`CheckRequest`] by the program digest plus a digest of its interface and calls, keeps the
//! report in memory and appends it to `checks.jsonl`.
//!
//! Hidden tests are kept apart: [`CheckCache::hidden_verdict`] runs a program against a task's
//! hidden tests and stores only pass/fail per test under the program's digest in
//! `verdicts.jsonl`. Nothing an agent sees, no probe and no check-cache entry holds a hidden
//! test's input or expected output.

use crate::EvalError;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use synod_core::{
    Call, CheckCall, CheckReport, CheckRequest, Expectation, Outcome, Program, Value,
};
use synod_exec::{Limits, Sandbox};

/// The outcome recorded for a probe call outside the evaluation's input domain.
pub const OUT_OF_DOMAIN: &str = "SynodEvalOutOfDomain";

/// Smallest integer magnitude bound of the input domain.
pub const DOMAIN_INT_FLOOR: i64 = 1_000;

/// The largest integer magnitude a probe may hold for a task whose example has `example`
/// arguments and result: ten times the largest in the example, at least [`DOMAIN_INT_FLOOR`].
/// Probe variants such as ±2⁴⁰ or 1000·n make loop-bound references run for minutes; every
/// program times out on them, at the cost of a sandbox run's whole wall-clock limit, and
/// timing decides which calls time out, which splits classes of correct programs at random.
pub fn domain_int_max<'a>(example: impl IntoIterator<Item = &'a Value>) -> i64 {
    let mut m: i64 = 0;
    for v in example {
        m = m.max(max_int(v));
    }
    m.saturating_mul(10).max(DOMAIN_INT_FLOOR)
}

fn max_int(v: &Value) -> i64 {
    match v {
        Value::Int(n) => n.checked_abs().unwrap_or(i64::MAX),
        Value::Bool(_) | Value::None | Value::Float(_) | Value::Str(_) => 0,
        Value::List(xs) | Value::Tuple(xs) => xs.iter().map(max_int).max().unwrap_or(0),
        Value::Dict(es) => es
            .iter()
            .map(|(k, v)| max_int(k).max(max_int(v)))
            .max()
            .unwrap_or(0),
    }
}

fn ints_within(v: &Value, bound: i64) -> bool {
    max_int(v) <= bound
}

/// Module that runs the hidden tests inside the sandbox.
const HIDDEN_MODULE: &str = "synod_hidden";

/// Sandbox limits for evaluation runs: shorter than a build's, since each run is cached and a
/// looping mutant should cost little. Hidden-test verdicts always get these; probe runs get a
/// per-task call budget ([`call_budget_ms`]) in place of `call_ms`.
pub fn eval_limits() -> Limits {
    Limits {
        wall_ms: 4_000,
        call_ms: 250,
        cpu_s: 6,
        ..Limits::default()
    }
}

/// Smallest per-call budget of a probe run, in ms.
pub const CALL_BUDGET_FLOOR_MS: u64 = 100;

/// Wall-clock limit of a probe run with a budget below [`eval_limits`]'s `call_ms`.
pub const BUDGET_WALL_MS: u64 = 3_000;

/// The per-call budget of probe runs for a task whose reference takes `reference_ms` on its
/// slowest test: ten times that, at least [`CALL_BUDGET_FLOOR_MS`], at most `call_ms` of
/// [`eval_limits`], rounded up to a power-of-two multiple of the floor (so few sandboxes are
/// needed). Unknown reference time: the full `call_ms`.
pub fn call_budget_ms(reference_ms: Option<f64>) -> u64 {
    let cap = eval_limits().call_ms;
    let Some(ms) = reference_ms.filter(|m| m.is_finite() && *m >= 0.0) else {
        return cap;
    };
    let want = (10.0 * ms).ceil() as u64;
    let mut b = CALL_BUDGET_FLOOR_MS;
    while b < want && b < cap {
        b *= 2;
    }
    b.min(cap)
}

#[derive(Serialize, Deserialize)]
struct CheckLine {
    key: String,
    report: CheckReport,
}

#[derive(Serialize, Deserialize)]
struct VerdictLine {
    key: String,
    passed: Vec<bool>,
}

/// Counters, for the profile in the summary.
#[derive(Debug, Default)]
pub struct CacheStats {
    /// Requests answered from memory.
    pub hits: AtomicU64,
    /// Sandbox runs.
    pub runs: AtomicU64,
    /// Milliseconds spent in sandbox runs (all threads).
    pub run_ms: AtomicU64,
    /// Probe runs with at least one call that timed out.
    pub runs_timed_out: AtomicU64,
}

/// The caches and the sandbox behind them.
pub struct CheckCache {
    /// The pipeline's checks: audited, as in a build (static allow-list and audit hook).
    sandbox: Sandbox,
    /// The baselines' behaviour runs and the hidden tests: scoring, not judging, so without
    /// the audit (the hidden-test module itself uses `exec`); the OS isolation stays.
    scorer: Sandbox,
    /// Sandboxes with a smaller per-call budget, by `call_ms`.
    budgeted: Mutex<HashMap<u64, std::sync::Arc<Sandbox>>>,
    scratch: std::path::PathBuf,
    checks: Mutex<HashMap<String, CheckReport>>,
    verdicts: Mutex<HashMap<String, Vec<bool>>>,
    checks_file: Mutex<File>,
    verdicts_file: Mutex<File>,
    /// Counters.
    pub stats: CacheStats,
}

impl CheckCache {
    /// Opens (or creates) the caches under `dir` and the sandbox.
    pub fn open(dir: &Path) -> Result<CheckCache, EvalError> {
        std::fs::create_dir_all(dir).map_err(|source| EvalError::Io {
            what: format!("create {}", dir.display()),
            source,
        })?;
        let scratch = std::env::temp_dir().join("synod-eval-scratch");
        let sandbox = Sandbox::new(scratch.clone(), eval_limits())
            .map_err(|e| EvalError::Sandbox(e.to_string()))?;
        let checks = load_lines::<CheckLine>(&dir.join("checks.jsonl"))
            .into_iter()
            .map(|l| (l.key, l.report))
            .collect();
        let verdicts = load_lines::<VerdictLine>(&dir.join("verdicts.jsonl"))
            .into_iter()
            .map(|l| (l.key, l.passed))
            .collect();
        let scorer = sandbox.clone().with_audit(synod_exec::Audit::off());
        Ok(CheckCache {
            sandbox,
            scorer,
            budgeted: Mutex::new(HashMap::new()),
            scratch,
            checks: Mutex::new(checks),
            verdicts: Mutex::new(verdicts),
            checks_file: Mutex::new(append(&dir.join("checks.jsonl"))?),
            verdicts_file: Mutex::new(append(&dir.join("verdicts.jsonl"))?),
            stats: CacheStats::default(),
        })
    }

    /// The key of a request run with per-call budget `call_ms`: [`CheckCache::key`], plus the
    /// budget when it is not the default.
    pub fn budget_key(request: &CheckRequest, call_ms: u64) -> String {
        let key = Self::key(request);
        if call_ms == eval_limits().call_ms {
            key
        } else {
            format!("{key}:c{call_ms}w{BUDGET_WALL_MS}")
        }
    }

    fn sandbox_for(&self, call_ms: u64) -> Result<std::sync::Arc<Sandbox>, EvalError> {
        let mut map = self
            .budgeted
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(s) = map.get(&call_ms) {
            return Ok(s.clone());
        }
        let limits = Limits {
            call_ms,
            wall_ms: BUDGET_WALL_MS,
            ..eval_limits()
        };
        let s = std::sync::Arc::new(
            Sandbox::new(self.scratch.clone(), limits)
                .map_err(|e| EvalError::Sandbox(e.to_string()))?,
        );
        map.insert(call_ms, s.clone());
        Ok(s)
    }

    /// The key of an audited request: program digest + digest of everything else, marked
    /// `a3` (`a1`: reports carry the audit's violations since issue 11; `a2`: strings hash
    /// with seed 0 in every run; `a3`: -0.0 is shown as 0.0; reports cached before do not
    /// answer).
    pub fn key(request: &CheckRequest) -> String {
        let rest = serde_json::to_vec(&(
            &request.function_modules,
            &request.interface,
            &request.calls,
        ))
        .expect("serializable");
        format!(
            "{}:{}:a3",
            &request.program.digest()[..32],
            &blake3::hash(&rest).to_hex()[..32]
        )
    }

    /// Runs `request` in the sandbox with the default limits, or answers from the cache.
    pub fn run(&self, request: &CheckRequest) -> Result<CheckReport, EvalError> {
        self.run_budget(request, eval_limits().call_ms)
    }

    /// Runs `request` with a per-call budget of `call_ms` (see [`call_budget_ms`]), or answers
    /// from the cache.
    pub fn run_budget(
        &self,
        request: &CheckRequest,
        call_ms: u64,
    ) -> Result<CheckReport, EvalError> {
        let key = Self::budget_key(request, call_ms);
        if let Some(r) = self
            .checks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&key)
        {
            self.stats.hits.fetch_add(1, Ordering::Relaxed);
            return Ok(r.clone());
        }
        let t = std::time::Instant::now();
        let report = if call_ms == eval_limits().call_ms {
            self.sandbox.run(request)
        } else {
            self.sandbox_for(call_ms)?.run(request)
        }
        .map_err(|e| EvalError::Sandbox(e.to_string()))?;
        if report.outcomes.contains(&Outcome::Timeout) {
            self.stats.runs_timed_out.fetch_add(1, Ordering::Relaxed);
        }
        self.stats.runs.fetch_add(1, Ordering::Relaxed);
        self.stats
            .run_ms
            .fetch_add(t.elapsed().as_millis() as u64, Ordering::Relaxed);
        self.remember(key, &report)?;
        Ok(report)
    }

    /// Runs `request` with per-call budget `call_ms`, except for probe calls (calls with no
    /// expectation, or a `Same` one) outside the evaluation's input domain: those with an integer argument of
    /// magnitude above `int_max` (see [`domain_int_max`]). They are not run; their outcome is
    /// the error [`OUT_OF_DOMAIN`] for every program alike, so they never split a class, and
    /// the cache holds the run of the remaining calls.
    pub fn run_in_domain(
        &self,
        request: &CheckRequest,
        call_ms: u64,
        int_max: i64,
    ) -> Result<CheckReport, EvalError> {
        let inside: Vec<bool> = request
            .calls
            .iter()
            // A `Same` expectation is the decided reference's outcome on a probe, so it
            // follows the probes' domain rule: out of the domain it is OUT_OF_DOMAIN for both.
            .map(|c| {
                matches!(
                    c.expect,
                    Some(Expectation::Returns(_) | Expectation::Raises(_))
                ) || c.call.args.iter().all(|a| ints_within(a, int_max))
            })
            .collect();
        if inside.iter().all(|b| *b) {
            return self.run_budget(request, call_ms);
        }
        let mut sub = request.clone();
        sub.calls = request
            .calls
            .iter()
            .zip(&inside)
            .filter(|(_, i)| **i)
            .map(|(c, _)| c.clone())
            .collect();
        let r = self.run_budget(&sub, call_ms)?;
        let mut got = r
            .outcomes
            .iter()
            .zip(r.met.iter().chain(std::iter::repeat(&None)));
        let mut outcomes = Vec::with_capacity(inside.len());
        let mut met = Vec::with_capacity(inside.len());
        for i in &inside {
            if *i {
                let (o, m) = got
                    .next()
                    .map(|(o, m)| (o.clone(), *m))
                    .unwrap_or((Outcome::Timeout, None));
                outcomes.push(o);
                met.push(m);
            } else {
                outcomes.push(Outcome::Error(OUT_OF_DOMAIN.into()));
                met.push(None);
            }
        }
        Ok(CheckReport {
            load_error: r.load_error,
            interface_errors: r.interface_errors,
            outcomes,
            met,
            functions: r.functions,
            violations: r.violations,
        })
    }

    /// Runs the probe calls `calls` of `entry` on a one-module program `solution`.
    pub fn behaviour(
        &self,
        source: &str,
        entry: &str,
        calls: &[Call],
    ) -> Result<Option<Vec<Outcome>>, EvalError> {
        let request = CheckRequest {
            program: Program::single("solution", source),
            function_modules: [(entry.to_string(), "solution".to_string())]
                .into_iter()
                .collect(),
            interface: vec![],
            calls: calls
                .iter()
                .map(|c| CheckCall {
                    call: c.clone(),
                    expect: None,
                })
                .collect(),
        };
        let report = self.run_scoring(&request)?;
        Ok(report.load_error.is_none().then_some(report.outcomes))
    }

    /// Runs `request` without the audit (the baselines' behaviour), or answers from the cache.
    fn run_scoring(&self, request: &CheckRequest) -> Result<CheckReport, EvalError> {
        let key = format!("{}:u", Self::key(request));
        if let Some(r) = self
            .checks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&key)
        {
            self.stats.hits.fetch_add(1, Ordering::Relaxed);
            return Ok(r.clone());
        }
        let t = std::time::Instant::now();
        let report = self
            .scorer
            .run(request)
            .map_err(|e| EvalError::Sandbox(e.to_string()))?;
        self.stats.runs.fetch_add(1, Ordering::Relaxed);
        self.stats
            .run_ms
            .fetch_add(t.elapsed().as_millis() as u64, Ordering::Relaxed);
        self.remember(key, &report)?;
        Ok(report)
    }

    fn remember(&self, key: String, report: &CheckReport) -> Result<(), EvalError> {
        let line = CheckLine {
            key: key.clone(),
            report: report.clone(),
        };
        append_line(&self.checks_file, "checks.jsonl", &line)?;
        self.checks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(key, report.clone());
        Ok(())
    }

    /// Does `program` (whose module `module` defines the entry point) pass every test of
    /// `tests` (with `setup` run first; the task's [`crate::suite::Task::scoring_tests`])? Runs inside the sandbox; only the pass/fail vector is
    /// stored, under the program's digest and a digest of the tests and setup, so a verdict on
    /// another set of tests is never reused.
    pub fn hidden_verdict(
        &self,
        task_key: &str,
        program: &Program,
        module: &str,
        setup: &str,
        tests: &[String],
    ) -> Result<bool, EvalError> {
        let mut digest = blake3::Hasher::new();
        digest.update(setup.as_bytes());
        for t in tests {
            digest.update(&(t.len() as u64).to_le_bytes());
            digest.update(t.as_bytes());
        }
        // `:h0`: judged with strings hashed by seed 0 (see `key`).
        let key = format!(
            "{task_key}:{}:h0:{}",
            program.digest(),
            &digest.finalize().to_hex()[..16]
        );
        if let Some(v) = self
            .verdicts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&key)
        {
            self.stats.hits.fetch_add(1, Ordering::Relaxed);
            return Ok(!v.is_empty() && v.iter().all(|b| *b));
        }
        let mut prog = program.clone();
        prog.modules
            .insert(HIDDEN_MODULE.into(), hidden_module(module, setup, tests));
        let request = CheckRequest {
            program: prog,
            function_modules: [("hidden_test".to_string(), HIDDEN_MODULE.to_string())]
                .into_iter()
                .collect(),
            interface: vec![],
            calls: (0..tests.len())
                .map(|i| CheckCall {
                    call: Call {
                        function: "hidden_test".into(),
                        args: vec![Value::Int(i as i64)],
                    },
                    expect: None,
                })
                .collect(),
        };
        let t = std::time::Instant::now();
        let report = self
            .scorer
            .run(&request)
            .map_err(|e| EvalError::Sandbox(e.to_string()))?;
        self.stats.runs.fetch_add(1, Ordering::Relaxed);
        self.stats
            .run_ms
            .fetch_add(t.elapsed().as_millis() as u64, Ordering::Relaxed);
        let passed: Vec<bool> = if report.load_error.is_some() {
            vec![false; tests.len()]
        } else {
            report
                .outcomes
                .iter()
                .map(|o| *o == Outcome::Value("True".into()))
                .collect()
        };
        let line = VerdictLine {
            key: key.clone(),
            passed: passed.clone(),
        };
        append_line(&self.verdicts_file, "verdicts.jsonl", &line)?;
        let ok = !passed.is_empty() && passed.iter().all(|b| *b);
        self.verdicts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(key, passed);
        Ok(ok)
    }
}

/// Appends `line` as one JSON line to a cache file (`what` names it in the error).
fn append_line(
    file: &Mutex<File>,
    what: &str,
    line: &impl serde::Serialize,
) -> Result<(), EvalError> {
    let text = serde_json::to_string(line).map_err(|e| EvalError::Io {
        what: format!("encode a line of {what}"),
        source: std::io::Error::other(e),
    })?;
    let mut file = file
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    writeln!(file, "{text}").map_err(|source| EvalError::Io {
        what: format!("append {what}"),
        source,
    })
}

/// A module that runs hidden test `i` in a namespace made of the candidate module's globals.
fn hidden_module(module: &str, setup: &str, hidden: &[String]) -> String {
    let tests: Vec<String> = hidden
        .iter()
        .map(|t| synod_core::value::python_str(t))
        .collect();
    format!(
        "import importlib\n\
         _TESTS = [{}]\n\
         _SETUP = {}\n\
         def hidden_test(i):\n    \
             mod = importlib.import_module({})\n    \
             env = dict(vars(mod))\n    \
             exec(_SETUP, env)\n    \
             exec(_TESTS[i], env)\n    \
             return True\n",
        tests.join(", "),
        synod_core::value::python_str(setup),
        synod_core::value::python_str(module),
    )
}

fn load_lines<T: for<'de> Deserialize<'de>>(path: &Path) -> Vec<T> {
    let Ok(f) = File::open(path) else {
        return Vec::new();
    };
    // A line cut short by a kill is skipped: that run is simply repeated.
    BufReader::new(f)
        .lines()
        .map_while(Result::ok)
        .filter_map(|l| serde_json::from_str(&l).ok())
        .collect()
}

fn append(path: &Path) -> Result<File, EvalError> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|source| EvalError::Io {
            what: format!("open {}", path.display()),
            source,
        })
}
