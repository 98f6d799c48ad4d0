//! synod-exec: runs a candidate Python program on calls, in a separate, limited `python3`
//! process, and reports what it did.
//!
//! synod judges programs by their behaviour: the outcome of each probe call and whether each
//! contract example is met. This crate turns a [`CheckRequest`] (modules, interface, calls) into
//! a [`CheckReport`] (load error, interface errors, one [`Outcome`](synod_core::Outcome) and one
//! `met` per call). Everything the candidate does wrong (syntax errors, missing functions,
//! exceptions, endless loops, memory hogs, junk on stdout, dying) ends up in the report;
//! [`ExecError`] is kept for failures of the environment (no Python, no scratch space).
//!
//! # Driving it
//!
//! ```
//! use synod_core::{CheckCall, CheckRequest, Call, Expectation, FunctionSig, Program, Value};
//! use synod_exec::{Limits, Sandbox};
//!
//! let sandbox = Sandbox::new(std::env::temp_dir().join("synod-scratch"), Limits::default())?;
//! let program = Program::single("calc", "def add(a, b):\n    return a + b\n");
//! let add = FunctionSig { name: "add".into(), params: vec!["a".into(), "b".into()], doc: String::new() };
//! let request = CheckRequest {
//!     function_modules: [("add".to_string(), "calc".to_string())].into_iter().collect(),
//!     interface: vec![("calc".into(), add)],
//!     calls: vec![CheckCall {
//!         call: Call { function: "add".into(), args: vec![Value::Int(2), Value::Int(3)] },
//!         expect: Some(Expectation::Returns(Value::Int(5))),
//!     }],
//!     program,
//! };
//! let report = sandbox.run(&request)?;
//! assert_eq!(report.met, vec![Some(true)]);
//! # Ok::<(), synod_exec::ExecError>(())
//! ```
//!
//! # How a run goes
//!
//! 1. [`Sandbox::new`] finds the interpreter, detects what isolation the kernel allows
//!    ([`Isolation`]), refuses with [`ExecError::IsolationUnavailable`] if a required mechanism
//!    is missing, and runs one trivial program confined to prove the confinement works.
//! 2. Per run, a fresh scratch directory gets the modules (`prog/<name>.py`) and the embedded
//!    harness (`harness.py`, see `src/harness.py`).
//! 3. `python3 -s -S -B harness.py` starts with a cleared environment (PYTHONHASHSEED=0, so a
//!    set of strings iterates alike in every run), confined between fork
//!    and exec (see `src/isolation.rs`): its own session and process group; resource limits
//!    ([`Limits`]: address space, CPU seconds, file size, open files, processes, no core
//!    dumps); its own network namespace; as root, a uid of its own; landlock (reads only
//!    beneath the interpreter and system libraries, writes only in the scratch directory, no
//!    TCP, no signals out); a seccomp filter (no sockets but `AF_UNIX`).
//! 4. The request goes in as one JSON object on stdin. The harness imports the modules, checks
//!    the interface, runs each call under a per-call alarm and writes one line
//!    `SYNOD <nonce> <json>` per step on its private copy of stdout.
//! 5. This side reads those lines (capped), keeps a tail of stderr, kills the whole process
//!    group (and, with a uid per run, every process of that uid) at the wall-clock limit or once
//!    the interpreter exits, and assembles the report: calls that never reported are
//!    [`Outcome::Timeout`](synod_core::Outcome::Timeout).
//!
//! # Isolation
//!
//! [`Sandbox::isolation`] says what confines candidates, mechanism by mechanism, and
//! implements `Display` (for `synod doctor`) and `Serialize` (for the certificate). Required:
//! a network namespace, landlock, and something that stops a candidate from signalling synod
//! (a uid of its own, or landlock scopes). [`Sandbox::new_unsafe_no_sandbox`] runs with
//! resource limits only, for users who pass `--unsafe-no-sandbox`; its isolation report says
//! so. `tests/hostile.rs` attacks the sandbox (fork and memory bombs, escaping children, TCP,
//! UDP, DNS, writes, reads, deletes outside scratch, signals to synod, floods, forged result
//! lines); the threat model is in `docs/SECURITY.md`.
//!
//! # Outcomes and comparison
//!
//! A returned value is shown as its canonical repr: like Python's `repr`, but dict items and
//! set elements sorted by their own canonical repr, object addresses (` at 0x...`) removed,
//! subclasses of builtin types shown as the base type, nesting past 20 levels shown as `...`, and
//! texts over 2,000 characters cut to 1,000 plus `...<blake2b-128 hex of the whole>`. Equal
//! behaviour therefore gives equal strings across runs and across programs.
//!
//! A `returns` expectation is met when the value equals the expected one with tuples equal to
//! lists, ints and floats compared numerically (floats with a relative tolerance of 1e-9), dict
//! values compared the same way, and bools never equal to ints. A `raises` expectation is met
//! when the exception's class or one of its bases has that name.
//!
//! Time limits make a few outcomes depend on machine speed: a call near `call_ms` may or may not
//! time out, and showing and comparing the result counts towards the call's time.
//!
//! # What it does not do (yet)
//!
//! The candidate runs in the same interpreter as the harness, so a program that goes looking can
//! forge its own results (see the harness docstring): isolation protects the machine, not the
//! honesty of a candidate's report about itself. When synod does not run as root, candidates
//! run as synod's uid (in a user namespace), and a child that calls `setsid` escapes the
//! process-group kill. Time limits are per process: CPU time taken within them is not
//! accounted anywhere else.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use std::{fs, io, thread};

use synod_core::{CheckReport, CheckRequest, is_identifier};

mod isolation;
mod process;
mod protocol;

pub use isolation::{Isolation, IsolationMode, Mechanism, SANDBOX_UID_BASE, SANDBOX_UID_COUNT};

use isolation::{Confinement, Kernel};

/// What candidates may do, and which audit layers judge them (issue 11; docs/SECURITY.md).
/// The default grants nothing beyond pure computation and turns both layers on; a layer is
/// turned off only by tests that show the other one works alone.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Audit {
    /// Granted capabilities, sorted, without repeats.
    pub capabilities: Vec<synod_core::Capability>,
    /// The allow-list check of the source before anything runs.
    pub static_layer: bool,
    /// The audit hook (PEP 578) while the program runs.
    pub runtime_layer: bool,
}

impl Default for Audit {
    fn default() -> Audit {
        Audit {
            capabilities: Vec::new(),
            static_layer: true,
            runtime_layer: true,
        }
    }
}

impl Audit {
    /// Both layers, granting `capabilities`.
    pub fn granting(capabilities: impl IntoIterator<Item = synod_core::Capability>) -> Audit {
        let mut capabilities: Vec<_> = capabilities.into_iter().collect();
        capabilities.sort();
        capabilities.dedup();
        Audit {
            capabilities,
            ..Audit::default()
        }
    }

    /// Both layers off: only the OS isolation stands. For tests that show the isolation holds
    /// alone, and the control experiments.
    pub fn off() -> Audit {
        Audit {
            capabilities: Vec::new(),
            static_layer: false,
            runtime_layer: false,
        }
    }

    /// The capability names, for people (`pure computation` when none).
    pub fn describe(&self) -> String {
        if self.capabilities.is_empty() {
            "pure computation".into()
        } else {
            let names: Vec<&str> = self.capabilities.iter().map(|c| c.name()).collect();
            format!("pure computation + {}", names.join(", "))
        }
    }
}

/// Limits on one run of a candidate program.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Wall-clock time for the whole run (load, interface check and all calls); past it the
    /// process group is killed and calls that have not reported time out.
    pub wall_ms: u64,
    /// Time for each call (and for each module import), enforced with an alarm inside the
    /// interpreter.
    pub call_ms: u64,
    /// CPU seconds for the interpreter (`RLIMIT_CPU`).
    pub cpu_s: u64,
    /// Address space of the interpreter (`RLIMIT_AS`).
    pub memory_bytes: u64,
    /// Bytes of the candidate's own output (stdout and stderr together) passed on, and bytes of
    /// result lines accepted from the harness.
    pub output_bytes: usize,
    /// Largest file the candidate may write (`RLIMIT_FSIZE`).
    pub file_bytes: u64,
    /// Open file descriptors (`RLIMIT_NOFILE`).
    pub open_files: u64,
    /// Processes of the user (`RLIMIT_NPROC`; not enforced for root).
    pub processes: u64,
    /// Bytes a run may write in all (its working directory is a tmpfs of this size).
    pub scratch_bytes: u64,
    /// Files and directories a run may create (the tmpfs's inodes).
    pub scratch_files: u64,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            wall_ms: 20_000,
            call_ms: 2_000,
            cpu_s: 20,
            memory_bytes: 1 << 30,
            output_bytes: 1 << 20,
            file_bytes: 16 << 20,
            open_files: 64,
            processes: 64,
            scratch_bytes: 64 << 20,
            scratch_files: 1024,
        }
    }
}

/// A failure of the environment, not of the candidate program.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// The scratch root directory could not be created.
    #[error("cannot create the scratch root {path}")]
    ScratchRoot {
        /// The scratch root.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The Python interpreter could not be started to ask its version.
    #[error("cannot start python {python}")]
    PythonStart {
        /// The interpreter as configured (`SYNOD_PYTHON` or `python3`).
        python: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The interpreter started but did not answer the version probe as expected.
    #[error("python {python} failed the version probe: {detail}")]
    PythonProbe {
        /// The interpreter as configured.
        python: PathBuf,
        /// What went wrong.
        detail: String,
    },
    /// Waiting for or reading from the version probe failed.
    #[error("cannot read the version of python {python}")]
    PythonProbeIo {
        /// The interpreter as configured.
        python: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The interpreter is older than Python 3.8.
    #[error("python {python} is version {version}; synod needs 3.8 or newer")]
    PythonTooOld {
        /// The interpreter as configured.
        python: PathBuf,
        /// Its version.
        version: String,
    },
    /// A run's scratch directory, or a file in it, could not be written.
    #[error("cannot prepare the scratch directory {path}")]
    Scratch {
        /// The directory or file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The request could not be encoded as JSON for the harness.
    #[error("cannot encode the request for the harness")]
    Encode {
        /// Why.
        source: serde_json::Error,
    },
    /// The interpreter process for a run could not be spawned.
    #[error("cannot spawn python {python}")]
    Spawn {
        /// The interpreter.
        python: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// A thread to feed or drain the interpreter could not be started.
    #[error("cannot start a thread to talk to the interpreter")]
    Thread {
        /// Why.
        source: io::Error,
    },
    /// Waiting for the interpreter process failed.
    #[error("cannot wait for the interpreter process")]
    Wait {
        /// Why.
        source: io::Error,
    },
    /// Candidates cannot be isolated here: a required mechanism is missing, or a confined
    /// interpreter does not work. [`Sandbox::new`] refuses rather than run hostile code
    /// unconfined.
    #[error("candidate programs cannot be isolated on this machine: {what}. {how_to_proceed}")]
    IsolationUnavailable {
        /// What is missing or failed.
        what: String,
        /// What the user can do about it.
        how_to_proceed: String,
    },
    /// A run's confinement could not be prepared (the landlock ruleset could not be built).
    #[error("cannot prepare the confinement of a run: {detail}")]
    Confine {
        /// What failed.
        detail: String,
    },
}

/// What [`ExecError::IsolationUnavailable`] tells the user to do.
const HOW_TO_PROCEED: &str = "Run `synod doctor` to see each mechanism and what it needs \
     (Linux 5.13+ with landlock enabled, network namespaces; as a non-root user, unprivileged \
     user namespaces). If you accept that generated code may read your files, write where you \
     can and use the network, pass --unsafe-no-sandbox: candidates then run with resource \
     limits only, and the certificate says so";

/// Runs candidate programs in limited `python3` processes. Cheap to share between threads:
/// concurrent runs use separate scratch directories.
#[derive(Clone, Debug)]
pub struct Sandbox {
    python: PathBuf,
    python_version: String,
    scratch_root: PathBuf,
    limits: Limits,
    /// What the kernel allows; `None` in the unsafe mode.
    kernel: Option<Kernel>,
    isolation: Isolation,
    /// Beneath these the interpreter may read: its prefixes and real executable.
    read_roots: Vec<PathBuf>,
    /// What candidates may do.
    audit: Audit,
}

/// Environment variable naming the interpreter to use instead of `python3` on `PATH`.
pub const PYTHON_ENV: &str = "SYNOD_PYTHON";

/// Oldest Python the harness supports.
const PYTHON_MIN: (u32, u32) = (3, 8);

/// How long the version probe may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// Printed by the version probe: the real interpreter (not a shim), its version, and the
/// directories it reads its standard library from.
const PROBE_SCRIPT: &str = "import sys; print(sys.executable); \
     print('%d.%d.%d' % tuple(sys.version_info[:3])); \
     print(sys.prefix); print(sys.base_prefix); print(sys.exec_prefix); \
     print(sys.base_exec_prefix)";

/// Numbers runs of this process, for unique scratch directory names and nonces.
static RUN_SERIAL: AtomicU64 = AtomicU64::new(0);

impl Sandbox {
    /// Finds python3 (the `SYNOD_PYTHON` environment variable if set, else `python3` on
    /// `PATH`), checks that it runs and is at least 3.8, creates `scratch_root` if missing,
    /// detects the isolation the kernel allows and checks that a confined interpreter works.
    /// Scratch directories of runs are made under `scratch_root`.
    ///
    /// Refuses with [`ExecError::IsolationUnavailable`] if candidates cannot be isolated (see
    /// [`Isolation::missing`]); [`Sandbox::new_unsafe_no_sandbox`] is the explicit way around.
    pub fn new(scratch_root: impl Into<PathBuf>, limits: Limits) -> Result<Sandbox, ExecError> {
        Sandbox::with_python(default_python(), scratch_root, limits)
    }

    /// Like [`Sandbox::new`], with the interpreter given explicitly (a path, or a name looked up
    /// on `PATH`).
    pub fn with_python(
        python: impl Into<PathBuf>,
        scratch_root: impl Into<PathBuf>,
        limits: Limits,
    ) -> Result<Sandbox, ExecError> {
        let mut sandbox = Sandbox::unconfined(python.into(), scratch_root.into(), limits)?;
        let kernel = Kernel::detect();
        let isolation = kernel.isolation();
        let missing = isolation.missing();
        if !missing.is_empty() {
            return Err(ExecError::IsolationUnavailable {
                what: missing.join("; "),
                how_to_proceed: HOW_TO_PROCEED.to_string(),
            });
        }
        sandbox.kernel = Some(kernel);
        sandbox.isolation = isolation;
        sandbox.check_confined_run()?;
        Ok(sandbox)
    }

    /// **Unsafe.** Like [`Sandbox::new`], but candidates run with resource limits, their own
    /// process group and the wall-clock limit only: no namespaces, no landlock, no seccomp, as
    /// synod's own user. They can read the user's files, write where the user can, use the
    /// network and signal synod. For machines where isolation is unavailable and the user has
    /// said `--unsafe-no-sandbox`; [`Sandbox::isolation`] says so, for the certificate.
    pub fn new_unsafe_no_sandbox(
        scratch_root: impl Into<PathBuf>,
        limits: Limits,
    ) -> Result<Sandbox, ExecError> {
        Sandbox::with_python_unsafe_no_sandbox(default_python(), scratch_root, limits)
    }

    /// **Unsafe.** [`Sandbox::new_unsafe_no_sandbox`] with the interpreter given explicitly.
    pub fn with_python_unsafe_no_sandbox(
        python: impl Into<PathBuf>,
        scratch_root: impl Into<PathBuf>,
        limits: Limits,
    ) -> Result<Sandbox, ExecError> {
        Sandbox::unconfined(python.into(), scratch_root.into(), limits)
    }

    /// A sandbox in the unsafe mode: the common part of both constructors.
    fn unconfined(
        python: PathBuf,
        scratch_root: PathBuf,
        limits: Limits,
    ) -> Result<Sandbox, ExecError> {
        fs::create_dir_all(&scratch_root).map_err(|source| ExecError::ScratchRoot {
            path: scratch_root.clone(),
            source,
        })?;
        let probe = probe_python(&python)?;
        Ok(Sandbox {
            python: probe.executable,
            python_version: probe.version,
            scratch_root,
            limits,
            kernel: None,
            isolation: Isolation::unsafe_no_sandbox(),
            read_roots: probe.read_roots,
            audit: Audit::default(),
        })
    }

    /// Runs a trivial program confined, so that a rule that keeps the interpreter from starting
    /// (say, its prefix outside what landlock allows) is found now and not as a load error of
    /// every candidate.
    fn check_confined_run(&self) -> Result<(), ExecError> {
        let request = CheckRequest {
            program: synod_core::Program::single("synod_smoke", "def ok():\n    return 1\n"),
            function_modules: [("ok".to_string(), "synod_smoke".to_string())]
                .into_iter()
                .collect(),
            interface: Vec::new(),
            calls: vec![synod_core::CheckCall {
                call: synod_core::Call {
                    function: "ok".into(),
                    args: Vec::new(),
                },
                expect: None,
            }],
        };
        let failed = |detail: String| ExecError::IsolationUnavailable {
            what: format!(
                "a confined python ({}) does not work: {detail}",
                self.python.display()
            ),
            how_to_proceed: HOW_TO_PROCEED.to_string(),
        };
        let report = self.run(&request).map_err(|e| failed(error_chain(&e)))?;
        if let Some(reason) = report.load_error {
            return Err(failed(reason));
        }
        if report.outcomes != [synod_core::Outcome::Value("1".into())] {
            return Err(failed(format!("a trivial call gave {:?}", report.outcomes)));
        }
        Ok(())
    }

    /// What confines candidates: each mechanism, active or not, and why.
    pub fn isolation(&self) -> &Isolation {
        &self.isolation
    }

    /// The limits every run gets.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The interpreter's version, as `3.11.7`.
    pub fn python_version(&self) -> &str {
        &self.python_version
    }

    /// The interpreter runs use: the real executable the configured name resolved to (so runs
    /// work with a cleared `PATH` and behind version-manager shims).
    pub fn python(&self) -> &Path {
        &self.python
    }

    /// The same sandbox with another audit (capabilities and layers).
    pub fn with_audit(mut self, audit: Audit) -> Sandbox {
        self.audit = audit;
        self
    }

    /// What candidates may do in this sandbox.
    pub fn audit(&self) -> &Audit {
        &self.audit
    }

    /// Runs the request: loads the program, checks its interface, runs every call.
    ///
    /// Returns `Err` only for failures of the environment (the scratch directory cannot be
    /// written, the interpreter cannot be spawned). Everything the candidate does wrong is in
    /// the report.
    pub fn run(&self, request: &CheckRequest) -> Result<CheckReport, ExecError> {
        if let Some(bad) = request
            .program
            .modules
            .keys()
            .find(|name| !is_identifier(name))
        {
            return Ok(protocol::not_loaded(
                request,
                format!("module name {bad:?} is not a Python identifier"),
            ));
        }
        let serial = RUN_SERIAL.fetch_add(1, Ordering::Relaxed);
        let scratch = Scratch::create(&self.scratch_root, serial)?;
        scratch.write_program(request)?;
        let nonce = nonce(serial);
        let input = protocol::harness_request(request, &nonce, &self.limits, &self.audit)
            .map_err(|source| ExecError::Encode { source })?;
        let (confinement, run_uid) = match &self.kernel {
            Some(kernel) => {
                let uid = isolation::run_uid(serial);
                let confinement =
                    kernel.prepare(&self.limits, scratch.path(), &self.read_roots, uid)?;
                (confinement, kernel.run_uid(uid))
            }
            None => (Confinement::limits_only(&self.limits), None),
        };
        let run = process::run_harness(
            &self.python,
            scratch.path(),
            input,
            &nonce,
            &self.limits,
            confinement,
            run_uid,
        )?;
        Ok(protocol::report(request, &run, &self.limits))
    }
}

/// Removes the scratch directories `<dir>/<prefix><pid>` whose process is gone: a build or
/// verify killed with SIGKILL leaves its scratch (candidate code in directories owned by
/// per-run uids) behind, and the next run removes it (issue 11, item 6). A directory whose pid
/// is alive, or whose name has no pid, is left alone. Returns how many were removed.
pub fn remove_stale_scratch(dir: &Path, prefix: &str) -> usize {
    let Ok(entries) = fs::read_dir(dir) else {
        return 0;
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix(prefix))
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == std::process::id() || Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        if entry.file_type().is_ok_and(|t| t.is_dir()) && fs::remove_dir_all(entry.path()).is_ok() {
            removed += 1;
        }
    }
    removed
}

/// The interpreter named by `SYNOD_PYTHON`, else `python3`.
fn default_python() -> PathBuf {
    std::env::var_os(PYTHON_ENV)
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("python3"))
}

/// An error and its causes, on one line.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// What the version probe found out.
struct PythonProbe {
    /// The real executable.
    executable: PathBuf,
    /// As `3.11.7`.
    version: String,
    /// The prefixes and the executable, canonical and existing.
    read_roots: Vec<PathBuf>,
}

/// Asks `python` for its real executable, version and prefixes, with a timeout.
fn probe_python(python: &Path) -> Result<PythonProbe, ExecError> {
    let probe_error = |detail: String| ExecError::PythonProbe {
        python: python.to_path_buf(),
        detail,
    };
    let probe_io = |source| ExecError::PythonProbeIo {
        python: python.to_path_buf(),
        source,
    };
    let mut child = Command::new(python)
        .args(["-I", "-S", "-B", "-c", PROBE_SCRIPT])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| ExecError::PythonStart {
            python: python.to_path_buf(),
            source,
        })?;
    // The probe prints two short lines, far below a pipe's buffer, so waiting before reading
    // cannot deadlock.
    let started = Instant::now();
    loop {
        if child.try_wait().map_err(probe_io)?.is_some() {
            break;
        }
        if started.elapsed() > PROBE_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            return Err(probe_error(format!(
                "no answer within {} s",
                PROBE_TIMEOUT.as_secs()
            )));
        }
        thread::sleep(Duration::from_millis(5));
    }
    let output = child.wait_with_output().map_err(probe_io)?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Err(probe_error(format!(
            "{}: {}",
            output.status,
            protocol::truncate_chars(stderr.trim(), 500)
        )));
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let mut lines = stdout.lines();
    let executable = lines.next().unwrap_or_default().trim();
    let version = lines.next().unwrap_or_default().trim().to_string();
    let parsed = parse_version(&version)
        .ok_or_else(|| probe_error(format!("unexpected version text {version:?}")))?;
    if parsed < PYTHON_MIN {
        return Err(ExecError::PythonTooOld {
            python: python.to_path_buf(),
            version,
        });
    }
    let prefixes: Vec<&str> = lines.map(str::trim).collect();
    let real = if executable.is_empty() {
        python.to_path_buf()
    } else {
        PathBuf::from(executable)
    };
    let mut roots: Vec<&str> = prefixes;
    roots.push(executable);
    Ok(PythonProbe {
        executable: real,
        version,
        read_roots: isolation::existing(&roots),
    })
}

/// `(major, minor)` of a `3.11.7` version text.
fn parse_version(text: &str) -> Option<(u32, u32)> {
    let mut parts = text.split('.');
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

/// A nonce for a run's result lines: a hash of the process id, the run serial and the time.
/// Not a secret against a determined candidate (see the harness docstring); it only makes
/// accidental forgery impossible.
fn nonce(serial: u64) -> String {
    use std::hash::BuildHasher;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let state = std::hash::RandomState::new();
    let word = |salt: u8| state.hash_one((salt, std::process::id(), serial, nanos));
    format!("{:016x}{:016x}", word(0), word(1))
}

/// A run's scratch directory, removed (best effort) when dropped.
struct Scratch {
    path: PathBuf,
}

/// Directory under the scratch directory holding the candidate's modules.
const MODULES_DIR: &str = "prog";

/// The run's working directory under the scratch directory: the only place it may write, a
/// tmpfs of `Limits::scratch_bytes` and `scratch_files` when the kernel allows the mount.
pub(crate) const WORK_DIR: &str = "work";

/// File name of the harness in the scratch directory.
const HARNESS_FILE: &str = "harness.py";

/// The harness, embedded so that the binary needs no data files.
const HARNESS_SOURCE: &str = include_str!("harness.py");

/// The harness's canonical text of a value (`_canonical(value, depth)` and what it needs, short
/// of `re` and `sys`): the region of `harness.py` between its `canonical text` markers. A
/// build's `test_contract.py` embeds it, so that its tests read an outcome as the sandbox
/// wrote it.
pub fn canonical_source() -> &'static str {
    const BEGIN: &str = "# --- canonical text: begin";
    const END: &str = "# --- canonical text: end";
    let start = HARNESS_SOURCE.find(BEGIN).unwrap_or(0);
    let end = HARNESS_SOURCE[start..]
        .find(END)
        .map_or(HARNESS_SOURCE.len(), |e| start + e);
    &HARNESS_SOURCE[start..end]
}

/// File name of the audit layer the harness loads before the candidate.
const AUDIT_FILE: &str = "synod_audit.py";

/// The audit layer (static allow-list and audit hook), embedded like the harness.
const AUDIT_SOURCE: &str = include_str!("audit.py");

impl Scratch {
    fn create(root: &Path, serial: u64) -> Result<Scratch, ExecError> {
        let path = root.join(format!("run-{}-{serial}", std::process::id()));
        let scratch_error = |source| ExecError::Scratch {
            path: path.clone(),
            source,
        };
        match fs::create_dir(&path) {
            Ok(()) => {}
            // Left over from an earlier process that had the same pid.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                fs::remove_dir_all(&path).map_err(scratch_error)?;
                fs::create_dir(&path).map_err(scratch_error)?;
            }
            Err(e) => return Err(scratch_error(e)),
        }
        Ok(Scratch { path })
    }

    fn path(&self) -> &Path {
        &self.path
    }

    /// Writes the modules (names already checked to be identifiers) and the harness.
    fn write_program(&self, request: &CheckRequest) -> Result<(), ExecError> {
        let write = |path: PathBuf, contents: &str| {
            fs::write(&path, contents).map_err(|source| ExecError::Scratch { path, source })
        };
        let modules = self.path.join(MODULES_DIR);
        fs::create_dir(&modules).map_err(|source| ExecError::Scratch {
            path: modules.clone(),
            source,
        })?;
        let work = self.path.join(WORK_DIR);
        fs::create_dir(&work).map_err(|source| ExecError::Scratch {
            path: work.clone(),
            source,
        })?;
        for (name, source) in &request.program.modules {
            assert!(
                is_identifier(name),
                "module names are checked before writing"
            );
            write(modules.join(format!("{name}.py")), source)?;
        }
        write(self.path.join(AUDIT_FILE), AUDIT_SOURCE)?;
        write(self.path.join(HARNESS_FILE), HARNESS_SOURCE)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_canonical_source_is_the_harness_region_alone() {
        let region = canonical_source();
        assert!(
            region.starts_with("# --- canonical text: begin"),
            "{region}"
        );
        assert!(region.contains("def _canonical(value, depth):"));
        assert!(!region.contains("canonical text: end") && !region.contains("def main"));
    }

    #[test]
    fn versions_parse() {
        assert_eq!(parse_version("3.11.7"), Some((3, 11)));
        assert_eq!(parse_version("3.8"), Some((3, 8)));
        assert_eq!(parse_version("three"), None);
        assert!(parse_version("3.7.16").is_some_and(|v| v < PYTHON_MIN));
        assert!(parse_version("3.10.1").is_some_and(|v| v >= PYTHON_MIN));
    }

    #[test]
    fn nonces_are_hex_and_differ_per_run() {
        let a = nonce(1);
        let b = nonce(2);
        assert_eq!(a.len(), 32);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }

    #[test]
    fn scratch_dirs_are_unique_and_removed() {
        let root = std::env::temp_dir().join(format!("synod-exec-unit-{}", std::process::id()));
        fs::create_dir_all(&root).unwrap();
        let a = Scratch::create(&root, 1).unwrap();
        let b = Scratch::create(&root, 2).unwrap();
        assert_ne!(a.path(), b.path());
        let kept = a.path().to_path_buf();
        assert!(kept.is_dir());
        drop(a);
        assert!(!kept.exists());
        drop(b);
        fs::remove_dir_all(&root).unwrap();
    }
}
