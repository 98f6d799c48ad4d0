//! Per-task preparation, once per task and cached on disk: the entry point, the example, K
//! behaviour-preserving rewrites of the reference and K mutants that fail a hidden test.
//!
//! The work is done by `prepare.py` (Python's `ast`), run as a plain subprocess: it is our own
//! code running the dataset's reference and mutants of it, never agent output.

use crate::EvalError;
use crate::suite::Task;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use synod_core::Value;

/// The helper script.
pub const PREPARE_PY: &str = include_str!("prepare.py");

/// Rewrites and mutants made per task.
pub const PROGRAMS_PER_TASK: usize = 4;

/// A mutant of the reference.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Mutant {
    /// Its source.
    pub src: String,
    /// The mutation (`flipped comparison`, `off-by-one`, …).
    pub kind: String,
    /// Does it still pass the example? (The insidious ones do.)
    pub passes_example: bool,
    /// Hidden tests it fails (at least one).
    pub hidden_failed: usize,
}

/// What the helper found for a task.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Prepared {
    /// Usable?
    pub ok: bool,
    /// If not, why.
    #[serde(default)]
    pub why: String,
    /// The entry point.
    #[serde(default)]
    pub entry: String,
    /// Its parameters.
    #[serde(default)]
    pub params: Vec<String>,
    /// The example's arguments.
    #[serde(default)]
    pub example_args: Vec<Value>,
    /// ClassEval: `run(script)` steps for probes only (each a `[method, [args…]]` list), one
    /// per public method the example does not call, with sample arguments of the documented
    /// types (see `skeleton_steps` in `prepare.py`).
    #[serde(default)]
    pub probe_steps: Vec<Value>,
    /// The reference's result on the example, when it is a plain value.
    #[serde(default)]
    pub example_returns: Option<Value>,
    /// Rewrites with the reference's behaviour (each passes every test).
    #[serde(default)]
    pub rewrites: Vec<String>,
    /// Mutants, each failing at least one hidden test.
    #[serde(default)]
    pub mutants: Vec<Mutant>,
    /// Milliseconds the reference took on its slowest test (sets the per-call budget of probe
    /// runs: [`crate::checks::call_budget_ms`]).
    #[serde(default)]
    pub reference_ms: Option<f64>,
}

/// Prepares `task` (or reads the cached result under `dir`).
pub fn prepare(task: &Task, dir: &Path, seed: u64) -> Result<Prepared, EvalError> {
    let file = dir.join(format!("{}.json", sanitize(&task.id)));
    if let Ok(text) = std::fs::read_to_string(&file)
        && let Ok(p) = serde_json::from_str::<Prepared>(&text)
    {
        return Ok(normalize(p));
    }
    let script = helper_path(dir)?;
    let req = serde_json::json!({
        "code": task.reference,
        "tests": task.tests,
        "setup": task.setup,
        "k": PROGRAMS_PER_TASK,
        "seed": seed,
        "entry": task.entry,
        "kind": if task.skeleton.is_some() { "classeval" } else { "functions" },
        "skeleton": task.skeleton,
    });
    let io_err = |what: &str, source| EvalError::Io {
        what: format!("{what} ({})", task.id),
        source,
    };
    // Reference tests write files where they stand (ClassEval's make databases, zips, CSVs):
    // prepare.py runs in a scratch directory of its own, removed afterwards, and gives each
    // test run a fresh subdirectory, so no run sees another's leftovers.
    static SERIAL: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let serial = SERIAL.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let scratch = Scratch(dir.join(format!(
        "scratch-{}-{}-{serial}",
        sanitize(&task.id),
        std::process::id()
    )));
    std::fs::create_dir_all(&scratch.0).map_err(|e| io_err("create scratch directory", e))?;
    let script = std::path::absolute(&script).map_err(|e| io_err("locate prepare.py", e))?;
    let mut child = Command::new(python())
        .arg("-I")
        .arg(&script)
        .current_dir(&scratch.0)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| io_err("start prepare.py", e))?;
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin is piped");
        stdin
            .write_all(req.to_string().as_bytes())
            .map_err(|e| io_err("write to prepare.py", e))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| io_err("wait for prepare.py", e))?;
    drop(scratch);
    let parsed: Prepared = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| Prepared {
        ok: false,
        why: format!(
            "prepare.py failed ({e}): {}",
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .last()
                .unwrap_or("")
        ),
        entry: String::new(),
        params: vec![],
        example_args: vec![],
        example_returns: None,
        probe_steps: vec![],
        rewrites: vec![],
        mutants: vec![],
        reference_ms: None,
    });
    let parsed = normalize(parsed);
    // Two workers may prepare the same task (HumanEvalComm: one unit per prompt): each writes
    // its own temporary file; the last rename wins, and both hold the same result.
    let tmp = file.with_extension(format!("tmp{}-{serial}", std::process::id()));
    std::fs::write(&tmp, serde_json::to_vec(&parsed).expect("serializable"))
        .and_then(|_| std::fs::rename(&tmp, &file))
        .map_err(|e| io_err("write prepared task", e))?;
    Ok(parsed)
}

/// A directory removed when dropped, whatever happened in it.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn python() -> String {
    std::env::var(synod_exec::PYTHON_ENV).unwrap_or_else(|_| "python3".into())
}

fn helper_path(dir: &Path) -> Result<PathBuf, EvalError> {
    // Workers of one run share the directory and the process id: one writes at a time.
    static WRITING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _guard = WRITING.lock().unwrap_or_else(|e| e.into_inner());
    std::fs::create_dir_all(dir).map_err(|source| EvalError::Io {
        what: format!("create {}", dir.display()),
        source,
    })?;
    let path = dir.join("prepare.py");
    let current = std::fs::read_to_string(&path).unwrap_or_default();
    if current != PREPARE_PY {
        let tmp = dir.join(format!("prepare.py.{}", std::process::id()));
        std::fs::write(&tmp, PREPARE_PY)
            .and_then(|_| std::fs::rename(&tmp, &path))
            .map_err(|source| EvalError::Io {
                what: "write prepare.py".into(),
                source,
            })?;
    }
    Ok(path)
}

/// File-name-safe task id.
pub fn sanitize(id: &str) -> String {
    id.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

/// Python writes floats as `repr`; synod keeps Rust's shortest form.
fn normalize(mut p: Prepared) -> Prepared {
    p.example_args = p.example_args.iter().map(norm_value).collect();
    p.example_returns = p.example_returns.as_ref().map(norm_value);
    p.probe_steps = p.probe_steps.iter().map(norm_value).collect();
    p
}

fn norm_value(v: &Value) -> Value {
    match v {
        Value::Float(s) => s.parse::<f64>().map(Value::float).unwrap_or(Value::None),
        Value::List(xs) => Value::List(xs.iter().map(norm_value).collect()),
        Value::Tuple(xs) => Value::Tuple(xs.iter().map(norm_value).collect()),
        Value::Dict(es) => Value::Dict(
            es.iter()
                .map(|(k, v)| (norm_value(k), norm_value(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}
