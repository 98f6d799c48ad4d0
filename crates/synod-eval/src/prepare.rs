//! Per-task preparation, once per task and cached on disk: the entry point, the example, K
//! behaviour-preserving rewrites of the reference and K mutants that fail a hidden test.
//!
//! The work is done by `prepare.py` (Python's `ast`), run as a plain subprocess: it is our own
//! code running the dataset's reference and mutants of it, never agent output. Its limits are
//! set here ([`PrepareLimits`]) and passed in its request.

use crate::EvalError;
use crate::suite::Task;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, Instant};
use synod_core::Value;

/// The helper script.
pub const PREPARE_PY: &str = include_str!("prepare.py");

/// Rewrites and mutants made per task.
pub const PROGRAMS_PER_TASK: usize = 4;

/// The limits `prepare.py` works within, sent in its request (field names as here).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct PrepareLimits {
    /// Wall-clock time for one task. `prepare.py` gives up at its next test run after it (the
    /// task is then not usable); the process is killed `kill_grace_ms` later.
    pub wall_ms: u64,
    /// How long past `wall_ms` `prepare.py` may take to stop by itself before it is killed: it
    /// looks at the time only between test runs, and one run of a task's tests can take a
    /// while. Not sent.
    #[serde(skip)]
    pub kill_grace_ms: u64,
    /// Interval timer on each guarded run: loading the program, its setup, one test.
    pub test_timeout_ms: u64,
    /// Address space of the process (`RLIMIT_AS`).
    pub memory_bytes_max: u64,
    /// Nesting depth of a value passed to or returned by the entry point.
    pub value_depth_max: usize,
    /// Steps of a ClassEval example script.
    pub example_steps_max: usize,
    /// ClassEval probe steps (one per method the example does not call).
    pub probe_steps_max: usize,
    /// Extra runs of a ClassEval example that must give the first run's results.
    pub example_repeats: usize,
    /// Runs of each reference test timed for [`Prepared::reference_ms`] (the fastest counts).
    pub timing_runs: usize,
    /// Rewrites tried per rewrite wanted.
    pub rewrite_tries_per_program: usize,
    /// Mutation sites tried per mutant wanted.
    pub mutant_tries_per_program: usize,
}

impl PrepareLimits {
    /// The limits every evaluation uses.
    pub const DEFAULT: PrepareLimits = PrepareLimits {
        wall_ms: 600_000,
        kill_grace_ms: 10_000,
        test_timeout_ms: 1_000,
        memory_bytes_max: 1 << 30,
        value_depth_max: 16,
        example_steps_max: 40,
        probe_steps_max: 40,
        example_repeats: 4,
        timing_runs: 3,
        rewrite_tries_per_program: 3,
        mutant_tries_per_program: 12,
    };
}

impl Default for PrepareLimits {
    fn default() -> PrepareLimits {
        PrepareLimits::DEFAULT
    }
}

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

/// Prepares `task` (or reads the cached result under `dir`), within
/// [`PrepareLimits::DEFAULT`].
pub fn prepare(task: &Task, dir: &Path, seed: u64) -> Result<Prepared, EvalError> {
    prepare_within(task, dir, seed, &PrepareLimits::DEFAULT)
}

/// [`prepare`] within `limits`. A cached result is used whatever limits made it.
pub fn prepare_within(
    task: &Task,
    dir: &Path,
    seed: u64,
    limits: &PrepareLimits,
) -> Result<Prepared, EvalError> {
    let file = dir.join(format!("{}.json", sanitize(&task.id)));
    if let Ok(text) = std::fs::read_to_string(&file)
        && let Ok(p) = serde_json::from_str::<Prepared>(&text)
    {
        return Ok(normalize(p));
    }
    let script = helper_path(dir)?;
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
    let script = std::path::absolute(&script).map_err(|e| io_err("locate prepare.py", e))?;
    let run = run_helper(&script, &scratch.0, &request(task, seed, limits), limits)
        .map_err(|(what, e)| io_err(what, e))?;
    drop(scratch);
    let parsed = match run {
        HelperRun::Exited { stdout, stderr } => {
            serde_json::from_slice(&stdout).unwrap_or_else(|e| {
                unusable(format!(
                    "prepare.py failed ({e}): {}",
                    String::from_utf8_lossy(&stderr)
                        .lines()
                        .last()
                        .unwrap_or("")
                ))
            })
        }
        HelperRun::Killed => unusable(format!(
            "prepare.py ran past its wall-clock limit of {} ms and was killed",
            limits.wall_ms
        )),
    };
    let parsed = normalize(parsed);
    // Two workers may prepare the same task (HumanEvalComm: one unit per prompt): each writes
    // its own temporary file; the last rename wins, and both hold the same result.
    let tmp = file.with_extension(format!("tmp{}-{serial}", std::process::id()));
    std::fs::write(&tmp, serde_json::to_vec(&parsed).expect("serializable"))
        .and_then(|_| std::fs::rename(&tmp, &file))
        .map_err(|e| io_err("write prepared task", e))?;
    Ok(parsed)
}

/// What `prepare.py` is asked (its docstring describes the fields).
fn request(task: &Task, seed: u64, limits: &PrepareLimits) -> serde_json::Value {
    serde_json::json!({
        "code": task.reference,
        "tests": task.tests,
        "setup": task.setup,
        "k": PROGRAMS_PER_TASK,
        "seed": seed,
        "entry": task.entry,
        "kind": if task.skeleton.is_some() { "classeval" } else { "functions" },
        "skeleton": task.skeleton,
        "limits": limits,
    })
}

/// A task that cannot be used, and why.
fn unusable(why: String) -> Prepared {
    Prepared {
        ok: false,
        why,
        entry: String::new(),
        params: vec![],
        example_args: vec![],
        example_returns: None,
        probe_steps: vec![],
        rewrites: vec![],
        mutants: vec![],
        reference_ms: None,
    }
}

/// How a run of `prepare.py` ended.
enum HelperRun {
    /// It exited (successfully or not) with this output.
    Exited { stdout: Vec<u8>, stderr: Vec<u8> },
    /// It was still running at the wall-clock limit and its grace, and was killed.
    Killed,
}

/// Runs `prepare.py` on `request` with `scratch/work` as its working directory. Request and
/// output go through files in `scratch`, so a process that stops reading or writing cannot
/// block this one. Fails with what was being done.
fn run_helper(
    script: &Path,
    scratch: &Path,
    request: &serde_json::Value,
    limits: &PrepareLimits,
) -> Result<HelperRun, (&'static str, std::io::Error)> {
    let work = scratch.join("work");
    std::fs::create_dir_all(&work).map_err(|e| ("create scratch directory", e))?;
    let (request_file, stdout_file, stderr_file) = (
        scratch.join("request.json"),
        scratch.join("stdout"),
        scratch.join("stderr"),
    );
    std::fs::write(&request_file, request.to_string())
        .map_err(|e| ("write the request of prepare.py", e))?;
    let open = |path: &Path| std::fs::File::open(path);
    let create = |path: &Path| std::fs::File::create(path);
    // Not `-I`, which ignores PYTHONHASHSEED: a reference that iterates a set of strings must
    // give the example the same result on every run. The variables `-E` would ignore go instead.
    let mut child = Command::new(python())
        .args(["-s", "-B"])
        .arg(script)
        .env("PYTHONHASHSEED", "0")
        .env("PYTHONSAFEPATH", "1")
        .env_remove("PYTHONPATH")
        .env_remove("PYTHONHOME")
        .env_remove("PYTHONSTARTUP")
        .env_remove("PYTHONWARNINGS")
        .current_dir(&work)
        .stdin(open(&request_file).map_err(|e| ("read the request of prepare.py", e))?)
        .stdout(create(&stdout_file).map_err(|e| ("create the output of prepare.py", e))?)
        .stderr(create(&stderr_file).map_err(|e| ("create the output of prepare.py", e))?)
        .spawn()
        .map_err(|e| ("start prepare.py", e))?;
    let allowed = Duration::from_millis(limits.wall_ms.saturating_add(limits.kill_grace_ms));
    if wait_until(&mut child, Instant::now() + allowed)
        .map_err(|e| ("wait for prepare.py", e))?
        .is_none()
    {
        let _ = child.kill();
        let _ = child.wait();
        return Ok(HelperRun::Killed);
    }
    let read = |path: &Path| std::fs::read(path).map_err(|e| ("read the output of prepare.py", e));
    Ok(HelperRun::Exited {
        stdout: read(&stdout_file)?,
        stderr: read(&stderr_file)?,
    })
}

/// Waits for `child` to exit until `deadline`; `None` if it is still running then.
fn wait_until(child: &mut Child, deadline: Instant) -> std::io::Result<Option<ExitStatus>> {
    // Short first sleeps: most tasks take a fraction of a second.
    let mut nap = Duration::from_millis(1);
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        let now = Instant::now();
        if now >= deadline {
            return Ok(None);
        }
        std::thread::sleep(nap.min(deadline - now));
        nap = (nap * 2).min(Duration::from_millis(20));
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn task(id: &str, reference: &str) -> Task {
        Task {
            id: id.into(),
            prompts: vec![],
            reference: reference.into(),
            tests: vec![
                "assert f(3) == 6".into(),
                "assert f(-5) == -10".into(),
                "assert f(0) == 0".into(),
            ],
            setup: String::new(),
            entry: Some("f".into()),
            skeleton: None,
        }
    }

    fn scratch(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("synod-prepare-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn the_default_limits_prepare_a_task() {
        let dir = scratch("default");
        let p = prepare(&task("double", "def f(x):\n    return x * 2\n"), &dir, 1).unwrap();
        assert!(p.ok, "{}", p.why);
        assert_eq!(p.entry, "f");
        assert!(!p.rewrites.is_empty() && !p.mutants.is_empty());
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn past_the_wall_clock_limit_the_task_is_not_usable() {
        let dir = scratch("wall");
        let limits = PrepareLimits {
            wall_ms: 0,
            ..PrepareLimits::DEFAULT
        };
        let t = task("double", "def f(x):\n    return x * 2\n");
        let p = prepare_within(&t, &dir, 1, &limits).unwrap();
        assert!(!p.ok);
        assert!(p.why.contains("wall-clock limit of 0 ms"), "{}", p.why);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_helper_that_does_not_stop_is_killed() {
        let dir = scratch("kill");
        let limits = PrepareLimits {
            wall_ms: 0,
            kill_grace_ms: 300,
            ..PrepareLimits::DEFAULT
        };
        // One long call into C: no signal handler runs until it returns, so only the kill
        // stops it.
        let t = task(
            "slow",
            "x = sum(range(10 ** 12))\ndef f(x):\n    return x * 2\n",
        );
        let started = Instant::now();
        let p = prepare_within(&t, &dir, 1, &limits).unwrap();
        assert!(!p.ok);
        assert!(p.why.contains("was killed"), "{}", p.why);
        assert!(started.elapsed() < Duration::from_secs(30));
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_request_without_limits_is_refused() {
        let dir = scratch("nolimits");
        let script = std::path::absolute(helper_path(&dir).unwrap()).unwrap();
        let mut req = request(
            &task("double", "def f(x):\n    return x * 2\n"),
            1,
            &PrepareLimits::DEFAULT,
        );
        req.as_object_mut().unwrap().remove("limits");
        let run = run_helper(&script, &dir.join("scratch"), &req, &PrepareLimits::DEFAULT).unwrap();
        let HelperRun::Exited { stdout, stderr } = run else {
            panic!("killed")
        };
        assert!(stdout.is_empty());
        assert!(String::from_utf8_lossy(&stderr).contains("limits"));
        let _ = std::fs::remove_dir_all(dir);
    }
}
