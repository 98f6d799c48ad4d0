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
use synod_core::{Call, CheckCall, CheckReport, CheckRequest, Outcome, Program, Value};
use synod_exec::{Limits, Sandbox};

/// Module that runs the hidden tests inside the sandbox.
const HIDDEN_MODULE: &str = "synod_hidden";

/// Sandbox limits for evaluation runs: shorter than a build's, since each run is cached and a
/// looping mutant should cost little.
pub fn eval_limits() -> Limits {
    Limits {
        wall_ms: 4_000,
        call_ms: 250,
        cpu_s: 6,
        ..Limits::default()
    }
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
}

/// The caches and the sandbox behind them.
pub struct CheckCache {
    sandbox: Sandbox,
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
        let sandbox = Sandbox::new(
            std::env::temp_dir().join("synod-eval-scratch"),
            eval_limits(),
        )
        .map_err(|e| EvalError::Sandbox(e.to_string()))?;
        let checks = load_lines::<CheckLine>(&dir.join("checks.jsonl"))
            .into_iter()
            .map(|l| (l.key, l.report))
            .collect();
        let verdicts = load_lines::<VerdictLine>(&dir.join("verdicts.jsonl"))
            .into_iter()
            .map(|l| (l.key, l.passed))
            .collect();
        Ok(CheckCache {
            sandbox,
            checks: Mutex::new(checks),
            verdicts: Mutex::new(verdicts),
            checks_file: Mutex::new(append(&dir.join("checks.jsonl"))?),
            verdicts_file: Mutex::new(append(&dir.join("verdicts.jsonl"))?),
            stats: CacheStats::default(),
        })
    }

    /// The key of a request: program digest + digest of everything else.
    pub fn key(request: &CheckRequest) -> String {
        let rest = serde_json::to_vec(&(
            &request.function_modules,
            &request.interface,
            &request.calls,
        ))
        .expect("serializable");
        format!(
            "{}:{}",
            &request.program.digest()[..32],
            &blake3::hash(&rest).to_hex()[..32]
        )
    }

    /// Runs `request` in the sandbox, or answers from the cache.
    pub fn run(&self, request: &CheckRequest) -> Result<CheckReport, EvalError> {
        let key = Self::key(request);
        if let Some(r) = self.checks.lock().expect("lock").get(&key) {
            self.stats.hits.fetch_add(1, Ordering::Relaxed);
            return Ok(r.clone());
        }
        let t = std::time::Instant::now();
        let report = self
            .sandbox
            .run(request)
            .map_err(|e| EvalError::Sandbox(e.to_string()))?;
        self.stats.runs.fetch_add(1, Ordering::Relaxed);
        self.stats
            .run_ms
            .fetch_add(t.elapsed().as_millis() as u64, Ordering::Relaxed);
        let line = serde_json::to_string(&CheckLine {
            key: key.clone(),
            report: report.clone(),
        })
        .expect("serializable");
        writeln!(self.checks_file.lock().expect("lock"), "{line}").map_err(|source| {
            EvalError::Io {
                what: "append checks.jsonl".into(),
                source,
            }
        })?;
        self.checks
            .lock()
            .expect("lock")
            .insert(key, report.clone());
        Ok(report)
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
        let report = self.run(&request)?;
        Ok(report.load_error.is_none().then_some(report.outcomes))
    }

    /// Does `program` (whose module `module` defines the entry point) pass every hidden test
    /// of the task? Runs inside the sandbox; only the pass/fail vector is stored.
    pub fn hidden_verdict(
        &self,
        task_key: &str,
        program: &Program,
        module: &str,
        setup: &str,
        hidden: &[String],
    ) -> Result<bool, EvalError> {
        let key = format!("{task_key}:{}", program.digest());
        if let Some(v) = self.verdicts.lock().expect("lock").get(&key) {
            self.stats.hits.fetch_add(1, Ordering::Relaxed);
            return Ok(!v.is_empty() && v.iter().all(|b| *b));
        }
        let mut prog = program.clone();
        prog.modules
            .insert(HIDDEN_MODULE.into(), hidden_module(module, setup, hidden));
        let request = CheckRequest {
            program: prog,
            function_modules: [("hidden_test".to_string(), HIDDEN_MODULE.to_string())]
                .into_iter()
                .collect(),
            interface: vec![],
            calls: (0..hidden.len())
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
            .sandbox
            .run(&request)
            .map_err(|e| EvalError::Sandbox(e.to_string()))?;
        self.stats.runs.fetch_add(1, Ordering::Relaxed);
        self.stats
            .run_ms
            .fetch_add(t.elapsed().as_millis() as u64, Ordering::Relaxed);
        let passed: Vec<bool> = if report.load_error.is_some() {
            vec![false; hidden.len()]
        } else {
            report
                .outcomes
                .iter()
                .map(|o| *o == Outcome::Value("True".into()))
                .collect()
        };
        let line = serde_json::to_string(&VerdictLine {
            key: key.clone(),
            passed: passed.clone(),
        })
        .expect("serializable");
        writeln!(self.verdicts_file.lock().expect("lock"), "{line}").map_err(|source| {
            EvalError::Io {
                what: "append verdicts.jsonl".into(),
                source,
            }
        })?;
        let ok = !passed.is_empty() && passed.iter().all(|b| *b);
        self.verdicts.lock().expect("lock").insert(key, passed);
        Ok(ok)
    }
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
