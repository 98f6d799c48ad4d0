//! End-to-end tests of the `synod` command line: the real binary, run as a subprocess on the
//! recorded examples, on fixtures with broken agents, and on directories tampered with after a
//! build.
//!
//! Exit codes under test: 0 built or verified; 1 the job ran and the answer is negative (verify
//! found a problem); 2 bad input or usage; 3 a clarification is needed. No invocation here may
//! panic: every run's stderr is checked for it.
//!
//! Every test works in its own directory under the system temp dir (pid, test name, counter),
//! removed when the test ends, and passes `--out` explicitly.

use serde_json::{Value, json};
use std::ffi::OsStr;
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant};
use synod_store::{BuildKey, DecisionLog, Signed};

const SYNOD: &str = env!("CARGO_BIN_EXE_synod");

/// A run that takes longer than this is a hang, not a slow build (the slowest here take ~4 s).
const RUN_TIMEOUT: Duration = Duration::from_secs(90);

/// The decision log's one table, as `synod-store` defines it (`crates/synod-store/src/log.rs`).
const LOG_TABLE: redb::TableDefinition<u64, &[u8]> =
    redb::TableDefinition::new("synod_decision_log_v1");

// ---- helpers ---------------------------------------------------------------------------------

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn example(name: &str) -> PathBuf {
    workspace().join("examples").join(name)
}

fn fixture(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(path)
}

/// A fresh directory for one test, removed on drop (also when the test fails).
struct TempDir(PathBuf);

impl TempDir {
    fn new(test: &str) -> TempDir {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("synod-cli-{}-{test}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", path.display()));
        TempDir(path)
    }

    fn path(&self) -> &Path {
        &self.0
    }

    fn join(&self, p: &str) -> PathBuf {
        self.0.join(p)
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.join(name);
        std::fs::write(&path, text)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// One finished run of the binary.
struct Run {
    args: String,
    code: i32,
    stdout: String,
    stderr: String,
}

impl fmt::Display for Run {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "synod {}\nexit code {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.args, self.code, self.stdout, self.stderr
        )
    }
}

impl Run {
    fn expect_code(&self, code: i32, what: &str) -> &Run {
        assert_eq!(self.code, code, "{what}: expected exit code {code}\n{self}");
        self
    }

    /// The names of the checks `synod verify` reported as failed (`FAIL  <name>: <problem>`).
    fn failed_checks(&self) -> Vec<&str> {
        self.stdout
            .lines()
            .filter_map(|l| l.strip_prefix("FAIL  "))
            .map(|l| l.split(": ").next().unwrap_or(l))
            .collect()
    }

    /// The `FAIL` line of the check named `check`, if it failed.
    fn failure(&self, check: &str) -> Option<&str> {
        self.stdout
            .lines()
            .find(|l| l.starts_with(&format!("FAIL  {check}:")))
    }

    /// For bad input: exit 2, and the error is one line starting `error:` that contains every
    /// one of `needles`.
    fn expect_usage_error(&self, needles: &[&str]) -> &str {
        self.expect_code(2, "bad input");
        let errors: Vec<&str> = self
            .stderr
            .lines()
            .filter(|l| l.starts_with("error:"))
            .collect();
        assert_eq!(errors.len(), 1, "expected one `error:` line\n{self}");
        assert_eq!(
            self.stderr.trim_end().lines().last(),
            Some(errors[0]),
            "the error must be the last line, on one line\n{self}"
        );
        for n in needles {
            assert!(
                errors[0].contains(n),
                "the error should mention {n:?}\n{self}"
            );
        }
        errors[0]
    }
}

/// Runs `synod args` in `cwd` with stdin closed (not a terminal, so nobody is asked anything).
/// Panics if it runs longer than [`RUN_TIMEOUT`], dies by a signal, or panics.
fn synod(cwd: &Path, args: &[&dyn AsRef<OsStr>]) -> Run {
    let shown: Vec<String> = args
        .iter()
        .map(|a| a.as_ref().to_string_lossy().into_owned())
        .collect();
    let shown = shown.join(" ");
    let mut child = Command::new(SYNOD)
        .args(args.iter().map(|a| a.as_ref()))
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {SYNOD}: {e}"));
    let drain = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = r.read_to_string(&mut s);
            s
        })
    };
    let stdout = drain(Box::new(child.stdout.take().expect("piped stdout")));
    let stderr = drain(Box::new(child.stderr.take().expect("piped stderr")));
    let deadline = Instant::now() + RUN_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for synod") {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let run = Run {
        args: shown,
        code: status.and_then(|s| s.code()).unwrap_or(-1),
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    };
    assert!(
        status.is_some(),
        "synod ran longer than {RUN_TIMEOUT:?} and was killed\n{run}"
    );
    assert!(!run.stderr.contains("panicked"), "synod panicked\n{run}");
    assert!(run.code >= 0, "synod was killed by a signal\n{run}");
    run
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap_or_else(|e| panic!("cannot create {}: {e}", to.display()));
    for entry in std::fs::read_dir(from).unwrap_or_else(|e| panic!("{}: {e}", from.display())) {
        let entry = entry.expect("directory entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target)
                .unwrap_or_else(|e| panic!("cannot copy {}: {e}", entry.path().display()));
        }
    }
}

/// The cells of the row of `first` (as written in the first column) in a REPORT.md table.
fn table_row(report: &str, first: &str) -> Vec<String> {
    let start = format!("| {first} |");
    let line = report
        .lines()
        .find(|l| l.starts_with(&start))
        .unwrap_or_else(|| panic!("REPORT.md has no table row for {first}\n{report}"));
    line.trim_matches('|')
        .split(" | ")
        .map(|c| c.trim().to_string())
        .collect()
}

/// Agents table: agent | backend | calls | tokens in | tokens out | suspected | faults |
/// stated results its code met, returned without the token columns: agent | backend | calls |
/// suspected | faults | stated.
fn agent_row(report: &str, agent: &str) -> Vec<String> {
    let mut row = table_row(report, agent);
    assert_eq!(row.len(), 8, "agents table row of {agent}: {row:?}");
    row.drain(3..5);
    row
}

/// Components table: component | interface | built by | rejected candidates.
fn component_row(report: &str, component: &str) -> Vec<String> {
    let row = table_row(report, &format!("`{component}`"));
    assert_eq!(row.len(), 4, "components table row of {component}: {row:?}");
    row
}

// ---- one shared build of the RPN example, copied per test ------------------------------------

/// A finished build of `examples/rpn-calculator`.
struct SharedBuild {
    _tmp: TempDir,
    dir: PathBuf,
    fingerprint: String,
}

/// The RPN example built once and shared by the tests running at the same time in this process.
///
/// Not a `OnceLock`: a static is never dropped, so its directory would outlive the test run.
/// The last holder's drop removes it, and a later test builds again. (cargo-nextest runs every
/// test in its own process, where each test builds once anyway; under `cargo test` concurrent
/// tests share one build.)
fn shared_build() -> Arc<SharedBuild> {
    static SHARED: Mutex<Weak<SharedBuild>> = Mutex::new(Weak::new());
    let mut slot = SHARED.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(built) = slot.upgrade() {
        return built;
    }
    let tmp = TempDir::new("shared-rpn");
    let dir = tmp.join("out");
    let run = synod(
        tmp.path(),
        &[
            &"build",
            &example("rpn-calculator"),
            &"--out",
            &dir,
            &"--json",
        ],
    );
    run.expect_code(0, "building examples/rpn-calculator");
    let result: Value = serde_json::from_str(run.stdout.trim())
        .unwrap_or_else(|e| panic!("build --json printed no JSON object ({e})\n{run}"));
    assert_eq!(result["status"], "built", "{run}");
    let fingerprint = result["fingerprint"]
        .as_str()
        .unwrap_or_else(|| panic!("build --json has no fingerprint\n{run}"))
        .to_string();
    let built = Arc::new(SharedBuild {
        _tmp: tmp,
        dir,
        fingerprint,
    });
    *slot = Arc::downgrade(&built);
    built
}

/// A private copy of the shared build, to tamper with.
struct BuildCopy {
    tmp: TempDir,
    dir: PathBuf,
    fingerprint: String,
    _shared: Arc<SharedBuild>,
}

impl BuildCopy {
    fn new(test: &str) -> BuildCopy {
        let shared = shared_build();
        let tmp = TempDir::new(test);
        let dir = tmp.join("build");
        copy_dir(&shared.dir, &dir);
        BuildCopy {
            tmp,
            dir,
            fingerprint: shared.fingerprint.clone(),
            _shared: shared,
        }
    }

    fn verify(&self, key: Option<&str>) -> Run {
        match key {
            None => synod(self.tmp.path(), &[&"verify", &self.dir]),
            Some(k) => synod(self.tmp.path(), &[&"verify", &self.dir, &"--key", &k]),
        }
    }

    fn log(&self) -> PathBuf {
        self.dir.join("log.redb")
    }

    fn certificate(&self) -> Signed {
        serde_json::from_str(&read(&self.dir.join("certificate.json")))
            .expect("certificate.json is a signed document")
    }

    /// The log's entries, read back and verified with the certificate's key.
    fn log_entries(&self) -> Vec<synod_store::Entry> {
        synod_store::verify_log(&self.log(), &self.certificate().public_key)
            .expect("the untampered log verifies")
    }
}

/// Rewrites the stored record of log row `seq` in place, bypassing the log's API: hash and
/// signature stay as they were.
fn rewrite_log_row(log: &Path, seq: u64, edit: impl FnOnce(&mut Value)) {
    use redb::ReadableTable;
    let db = redb::Database::open(log).expect("open log.redb with redb");
    let txn = db.begin_write().expect("write transaction");
    {
        let mut table = txn.open_table(LOG_TABLE).expect("the log table");
        let mut record: Value = {
            let row = table.get(seq).expect("read row").expect("the row exists");
            serde_json::from_slice(row.value()).expect("a row holds a JSON entry")
        };
        edit(&mut record);
        let bytes = serde_json::to_vec(&record).expect("serialize entry");
        table.insert(seq, bytes.as_slice()).expect("rewrite row");
    }
    txn.commit().expect("commit");
}

fn delete_log_row(log: &Path, seq: u64) {
    let db = redb::Database::open(log).expect("open log.redb with redb");
    let txn = db.begin_write().expect("write transaction");
    {
        let mut table = txn.open_table(LOG_TABLE).expect("the log table");
        assert!(
            table.remove(seq).expect("remove row").is_some(),
            "row {seq} exists"
        );
    }
    txn.commit().expect("commit");
}

// ---- the RPN example -------------------------------------------------------------------------

#[test]
fn rpn_example_builds_and_verifies() {
    let tmp = TempDir::new("rpn");
    let out = tmp.join("out");
    let run = synod(
        tmp.path(),
        &[&"build", &example("rpn-calculator"), &"--out", &out],
    );
    run.expect_code(0, "build examples/rpn-calculator");
    let fingerprint = run
        .stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("key:"))
        .map(|k| k.trim().to_string())
        .unwrap_or_else(|| panic!("the build prints no `key:` line\n{run}"));
    assert!(fingerprint.starts_with("blake3:"), "{run}");

    // The report names what went wrong with which agent.
    let report = read(&out.join("REPORT.md"));
    assert!(
        report.starts_with("# synod build report: built"),
        "{report}"
    );
    let ada = agent_row(&report, "ada");
    assert!(
        ada[4].contains("outvoted"),
        "ada misread the prompt: its faults should say it was outvoted: {ada:?}"
    );
    let dissent = report
        .split("### Dissent")
        .nth(1)
        .unwrap_or_else(|| panic!("REPORT.md has no Dissent section\n{report}"));
    assert!(dissent.trim_start().starts_with("- ada "), "{dissent}");
    let bo = agent_row(&report, "bo");
    assert!(
        bo[3].starts_with("yes"),
        "bo stalled: it should be suspected: {bo:?}"
    );
    for good in ["cyd", "dee", "eli"] {
        let row = agent_row(&report, good);
        assert_eq!(
            (row[3].as_str(), row[4].as_str()),
            ("no", "none"),
            "{row:?}"
        );
    }

    // The program and its generated tests.
    let program = out.join("program");
    for module in [
        "rpn_lexer.py",
        "rpn_parser.py",
        "rpn_eval.py",
        "test_contract.py",
    ] {
        assert!(
            program.join(module).is_file(),
            "program/{module} is missing"
        );
    }
    let unittest = Command::new("python3")
        .args(["-m", "unittest"])
        .current_dir(&program)
        .output()
        .expect("run python3 -m unittest");
    assert!(
        unittest.status.success(),
        "python3 -m unittest failed in program/:\n{}{}",
        String::from_utf8_lossy(&unittest.stdout),
        String::from_utf8_lossy(&unittest.stderr)
    );

    let verified = synod(tmp.path(), &[&"verify", &out]);
    verified.expect_code(0, "verify");
    assert!(verified.failed_checks().is_empty(), "{verified}");
    assert_eq!(
        verified.stdout.lines().last(),
        Some("verified"),
        "{verified}"
    );
    let keyed = synod(tmp.path(), &[&"verify", &out, &"--key", &fingerprint]);
    keyed.expect_code(0, "verify --key <the build's fingerprint>");
    assert!(keyed.stdout.contains("ok    signing key"), "{keyed}");
}

// ---- tampering -------------------------------------------------------------------------------

#[test]
fn verify_catches_a_changed_program_file() {
    let b = BuildCopy::new("tamper-program");
    let file = b.dir.join("program/rpn_eval.py");
    let mut src = read(&file);
    src.push_str("# one more line\n");
    std::fs::write(&file, src).expect("write rpn_eval.py");

    let run = b.verify(None);
    run.expect_code(1, "verify after changing program/rpn_eval.py");
    let fail = run
        .failure("program files match the certificate")
        .unwrap_or_else(|| panic!("the program check should fail\n{run}"));
    assert!(fail.contains("rpn_eval.py"), "{run}");
    // Only the program changed: the signature and the log still hold.
    assert_eq!(
        run.failed_checks(),
        ["program files match the certificate"],
        "{run}"
    );
}

#[test]
fn verify_catches_a_changed_log_entry() {
    let b = BuildCopy::new("tamper-log-body");
    let entries = b.log_entries();
    let decided = entries
        .iter()
        .find(|e| e.kind == "interpretation-decided")
        .expect("the log records the decided interpretation");
    // Claim that agent 0 (ada, the misreading agent) gave the decided reading.
    rewrite_log_row(&b.log(), decided.seq, |record| {
        let mut body: Value =
            serde_json::from_str(record["body"].as_str().expect("body is a string")).unwrap();
        assert_ne!(body["representative"], json!(0));
        body["representative"] = json!(0);
        record["body"] = json!(body.to_string());
    });

    let run = b.verify(None);
    run.expect_code(1, "verify after rewriting a log entry's body");
    let fail = run
        .failure("decision log chain and signatures")
        .unwrap_or_else(|| panic!("the log check should fail\n{run}"));
    assert!(
        fail.contains(&format!("entry {}", decided.seq)),
        "the failure names the entry\n{run}"
    );
}

#[test]
fn verify_catches_a_log_entry_removed_from_the_middle() {
    let b = BuildCopy::new("tamper-log-middle");
    let n = b.log_entries().len() as u64;
    assert!(n >= 3, "the log has {n} entries");
    delete_log_row(&b.log(), n / 2);

    let run = b.verify(None);
    run.expect_code(1, "verify after removing a log entry from the middle");
    let fail = run
        .failure("decision log chain and signatures")
        .unwrap_or_else(|| panic!("the chain check should fail\n{run}"));
    assert!(
        fail.contains(&format!("entry {} missing", n / 2)),
        "the failure names the missing entry\n{run}"
    );
}

#[test]
fn verify_catches_the_last_log_entry_removed() {
    let b = BuildCopy::new("tamper-log-last");
    let entries = b.log_entries();
    let last = entries.last().expect("entries");
    assert_eq!(last.kind, "certificate");
    delete_log_row(&b.log(), last.seq);

    // What is left is a valid chain: only the head the certificate pins shows the cut.
    let run = b.verify(None);
    run.expect_code(1, "verify after removing the last log entry");
    assert_eq!(
        run.failed_checks(),
        ["decision log matches the certificate"],
        "{run}"
    );
}

#[test]
fn verify_catches_a_changed_certificate_field() {
    type Edit = fn(&mut Value);
    let edits: [(&str, Edit); 2] = [
        ("representative", |body| {
            body["decided"]["representative"] = json!("ada");
        }),
        ("probe", |body| {
            body["probes"][0]["args"][0]["v"] = json!("1 2 +");
        }),
    ];
    // Held across the loop so both copies come from one build.
    let _shared = shared_build();
    for (what, edit) in edits {
        let b = BuildCopy::new(&format!("tamper-cert-{what}"));
        let path = b.dir.join("certificate.json");
        let mut cert: Value = serde_json::from_str(&read(&path)).expect("certificate JSON");
        let before = cert["body"].clone();
        edit(&mut cert["body"]);
        assert_ne!(
            cert["body"], before,
            "the edit of {what} changes the certificate"
        );
        std::fs::write(&path, serde_json::to_string_pretty(&cert).unwrap()).unwrap();

        let run = b.verify(None);
        run.expect_code(
            1,
            &format!("verify after changing the certificate's {what}"),
        );
        assert!(
            run.failure("certificate signature").is_some(),
            "changing the {what} should break the certificate signature\n{run}"
        );
    }
}

#[test]
fn verify_with_key_catches_a_build_re_signed_with_another_key() {
    let b = BuildCopy::new("re-signed");
    let original = b.certificate();
    let entries = b.log_entries();
    let (certificate_entry, decisions) = entries.split_last().expect("entries");
    assert_eq!(certificate_entry.kind, "certificate");

    // A forger rebuilds the whole log with a key of their own ...
    let key = BuildKey::generate().expect("generate a key");
    let fingerprint = key.public().fingerprint();
    assert_ne!(fingerprint, b.fingerprint);
    std::fs::remove_file(b.log()).expect("remove log.redb");
    let mut log = DecisionLog::create(&b.log(), key.clone()).expect("create log");
    for e in decisions {
        log.append(&e.kind, &e.body_json().expect("entry body"))
            .expect("append");
    }
    // ... and signs the certificate with it, pinning the new head, then records it in the log
    // the way a build does.
    let mut body = original.body.clone();
    body["log_head"] = serde_json::to_value(log.head().expect("head").pin()).unwrap();
    body["key_fingerprint"] = json!(fingerprint);
    let signed = Signed::sign(body, &key);
    std::fs::write(
        b.dir.join("certificate.json"),
        serde_json::to_string_pretty(&signed).unwrap(),
    )
    .unwrap();
    let certificate_digest = synod_store::digest(signed.body.to_string().as_bytes());
    log.append(
        "certificate",
        &json!({"certificate_digest": certificate_digest, "fingerprint": fingerprint}),
    )
    .expect("append the certificate entry");
    drop(log);

    // Without --key, verify can only check the directory against itself: a forger who re-signs
    // everything is indistinguishable from the real build. This is why the build prints its
    // fingerprint and `verify --key` exists.
    b.verify(None)
        .expect_code(0, "verify without --key of a consistently re-signed build");
    b.verify(Some(&fingerprint))
        .expect_code(0, "verify with the forger's own key");
    let run = b.verify(Some(&b.fingerprint));
    run.expect_code(
        1,
        "verify --key <original fingerprint> of a re-signed build",
    );
    assert_eq!(run.failed_checks(), ["signing key"], "{run}");
    assert!(
        run.failure("signing key").unwrap().contains(&b.fingerprint),
        "{run}"
    );
}

// ---- clarification ---------------------------------------------------------------------------

#[test]
fn rounding_example_asks_then_completes_with_answers() {
    let tmp = TempDir::new("rounding");
    let rounding = example("rounding");

    // No answers and stdin is not a terminal: stop with the question.
    let asked = synod(
        tmp.path(),
        &[&"build", &rounding, &"--out", &tmp.join("asked")],
    );
    asked.expect_code(3, "build examples/rounding without answers");
    for reading in ["reading A (", "reading B ("] {
        assert!(
            asked.stdout.contains(reading),
            "the question shows {reading}\n{asked}"
        );
    }
    assert!(
        asked
            .stdout
            .lines()
            .any(|l| l.contains("→") && l.contains("A: ") && l.contains("| B: ")),
        "the question shows an input the readings differ on\n{asked}"
    );
    assert!(asked.stdout.contains("--answers"), "{asked}");

    let json_run = synod(
        tmp.path(),
        &[
            &"build",
            &rounding,
            &"--out",
            &tmp.join("asked-json"),
            &"--json",
        ],
    );
    json_run.expect_code(3, "build examples/rounding --json without answers");
    let result: Value = serde_json::from_str(&json_run.stdout)
        .unwrap_or_else(|e| panic!("stdout is not one JSON object ({e})\n{json_run}"));
    assert_eq!(result["status"], "needs_clarification", "{json_run}");
    let readings = result["question"]["readings"].as_array().expect("readings");
    assert_eq!(readings.len(), 2, "{json_run}");
    assert!(
        !result["question"]["differing"]
            .as_array()
            .expect("differing")
            .is_empty(),
        "{json_run}"
    );

    let out = tmp.join("answered");
    let answered = synod(
        tmp.path(),
        &[
            &"build",
            &rounding,
            &"--out",
            &out,
            &"--answers",
            &rounding.join("answers.toml"),
        ],
    );
    answered.expect_code(0, "build examples/rounding --answers answers.toml");
    synod(tmp.path(), &[&"verify", &out]).expect_code(0, "verify the answered build");
    let report = read(&out.join("REPORT.md"));
    let clarifications = report
        .split("### Clarifications")
        .nth(1)
        .unwrap_or_else(|| panic!("REPORT.md has no Clarifications section\n{report}"));
    assert!(clarifications.contains("reading B"), "{report}");
}

/// Issue 11: an answer that looks like a label but names no reading was taken as free text.
#[test]
fn rounding_example_refuses_an_answer_naming_no_reading_then_resumes_with_a_good_one() {
    let tmp = TempDir::new("rounding-no-such-reading");
    let rounding = example("rounding");
    let out = tmp.join("out");
    let wrong = tmp.write("wrong.toml", "answers = [\"C\"]\n");
    let run = synod(
        tmp.path(),
        &[&"build", &rounding, &"--out", &out, &"--answers", &wrong],
    );
    run.expect_usage_error(&[
        "\"C\" names no reading",
        "the readings are A and B",
        "question.json",
        "--resume",
    ]);
    assert!(out.join("question.json").is_file(), "the question is kept");
    assert!(!out.join("REPORT.md").exists(), "nothing was built\n{run}");
    // Free text stays free text; the good answer finishes the same build.
    let resumed = synod(
        tmp.path(),
        &[
            &"build",
            &rounding,
            &"--out",
            &out,
            &"--resume",
            &"--answers",
            &rounding.join("answers.toml"),
        ],
    );
    resumed.expect_code(0, "--resume with a label that exists");
    let report = read(&out.join("REPORT.md"));
    assert!(report.contains("reading B"), "{report}");
    assert!(
        !report.contains("\"C\""),
        "the refused answer is not a clarification\n{report}"
    );
    synod(tmp.path(), &[&"verify", &out]).expect_code(0, "verify the resumed build");
}

// ---- bad input -------------------------------------------------------------------------------

/// `examples/rpn-calculator/agents.toml` with `extra` added to the first `[[agent]]` table (and
/// its transcripts reachable), written into `tmp`.
fn rpn_agents_with(tmp: &TempDir, extra: &str) -> PathBuf {
    let text = read(&example("rpn-calculator/agents.toml"))
        .replace(
            "transcript = \"transcript/",
            &format!(
                "transcript = \"{}/",
                example("rpn-calculator/transcript").display()
            ),
        )
        .replacen("[[agent]]\n", &format!("[[agent]]\n{extra}\n"), 1);
    tmp.write("agents.toml", &text)
}

#[test]
fn bad_input_missing_prompt_file() {
    let tmp = TempDir::new("missing-prompt");
    let out = tmp.join("out");
    let run = synod(tmp.path(), &[&"build", &"nosuch/prompt.md", &"--out", &out]);
    run.expect_usage_error(&["nosuch/prompt.md"]);
    assert!(!out.exists(), "nothing is written for bad input");
}

#[test]
fn bad_input_empty_prompt_file() {
    let tmp = TempDir::new("empty-prompt");
    let prompt = tmp.write("prompt.md", " \n\n");
    let out = tmp.join("out");
    let run = synod(
        tmp.path(),
        &[
            &"build",
            &prompt,
            &"--agents",
            &example("rpn-calculator/agents.toml"),
            &"--out",
            &out,
        ],
    );
    run.expect_usage_error(&["empty"]);
    assert!(!out.exists());
}

#[test]
fn bad_input_agents_file_is_not_toml() {
    let tmp = TempDir::new("agents-syntax");
    let agents = tmp.write("agents.toml", "[[agent]\nname = \"a\"\n");
    let out = tmp.join("out");
    let run = synod(
        tmp.path(),
        &[
            &"build",
            &example("rpn-calculator/prompt.md"),
            &"--agents",
            &agents,
            &"--out",
            &out,
        ],
    );
    run.expect_usage_error(&[&agents.display().to_string(), "line 1"]);
    assert!(!out.exists());
}

#[test]
fn bad_input_agents_file_with_an_unknown_field() {
    let tmp = TempDir::new("agents-unknown-field");
    let agents = rpn_agents_with(&tmp, "colour = \"red\"");
    let out = tmp.join("out");
    let run = synod(
        tmp.path(),
        &[
            &"build",
            &example("rpn-calculator/prompt.md"),
            &"--agents",
            &agents,
            &"--out",
            &out,
        ],
    );
    run.expect_usage_error(&[&agents.display().to_string(), "colour"]);
    assert!(!out.exists());
}

#[test]
fn bad_input_fault_budget_the_rule_cannot_honour() {
    let tmp = TempDir::new("fault-budget");
    let out = tmp.join("out");
    let run = synod(
        tmp.path(),
        &[
            &"build",
            &example("rpn-calculator"),
            &"--fault-budget",
            &"3",
            &"--out",
            &out,
        ],
    );
    // 5 agents, m = 3: n ≥ 2m+1 needs 7.
    run.expect_usage_error(&["n ≥ 2m+1", "at least 7", "at most 2"]);
    assert!(!out.exists());
}

/// `examples/rpn-calculator/agents.toml` with its transcripts reachable and `edit` applied.
fn rpn_agents_edited(tmp: &TempDir, name: &str, edit: impl Fn(&str) -> String) -> PathBuf {
    let text = read(&example("rpn-calculator/agents.toml")).replace(
        "transcript = \"transcript/",
        &format!(
            "transcript = \"{}/",
            example("rpn-calculator/transcript").display()
        ),
    );
    let edited = edit(&text);
    assert_ne!(edited, text, "the edit applies");
    tmp.write(name, &edited)
}

/// Issue 11: these panicked (exit 101), and every `--resume` of the directory panicked again.
#[test]
fn bad_input_extreme_numbers_in_the_agents_file_are_refused_with_their_range() {
    let tmp = TempDir::new("agents-extreme-numbers");
    let max = u64::MAX.to_string();
    let cases = [
        (
            "timeout.toml",
            "timeout_ms = 3000".to_string(),
            format!("timeout_ms = {max}"),
            "a whole number from 1 to 86400000",
        ),
        (
            "budget.toml",
            "\nfault_budget = 2\n".to_string(),
            format!("\nfault_budget = {max}\n"),
            "a whole number from 0 to 31",
        ),
    ];
    let prompt = example("rpn-calculator/prompt.md");
    for (name, from, to, range) in cases {
        let agents = rpn_agents_edited(&tmp, name, |t| t.replacen(&from, &to, 1));
        let out = tmp.join(&format!("out-{name}"));
        for resume in [false, true] {
            let mut args: Vec<&dyn AsRef<OsStr>> =
                vec![&"build", &prompt, &"--agents", &agents, &"--out", &out];
            if resume {
                args.push(&"--resume");
            }
            let run = synod(tmp.path(), &args);
            run.expect_usage_error(&[&agents.display().to_string(), to.trim(), range]);
            assert!(!out.exists(), "nothing is written for bad input");
        }
    }
}

#[test]
fn bad_input_extreme_numbers_on_the_command_line_are_refused_with_their_range() {
    let tmp = TempDir::new("cli-extreme-numbers");
    let out = tmp.join("out");
    let max = u64::MAX.to_string();
    let beyond = "18446744073709551616";
    for (flag, value, range) in [
        ("--fault-budget", max.as_str(), "from 0 to 31"),
        ("--seed", beyond, "from 0 to 18446744073709551615"),
        (
            "--max-tokens-total",
            beyond,
            "from 0 to 18446744073709551615",
        ),
        ("--ahead-by", max.as_str(), "0..=64"),
    ] {
        let run = synod(
            tmp.path(),
            &[
                &"build",
                &example("rpn-calculator"),
                &flag,
                &value,
                &"--out",
                &out,
            ],
        );
        run.expect_code(2, flag);
        let errors: Vec<&str> = run
            .stderr
            .lines()
            .filter(|l| l.starts_with("error:"))
            .collect();
        assert_eq!(errors.len(), 1, "one error line\n{run}");
        assert!(
            errors[0].contains(flag) && errors[0].contains(range),
            "{run}"
        );
        assert!(!out.exists());
    }
    // In range for the flag, beyond what five agents tolerate: the tally says how far.
    let run = synod(
        tmp.path(),
        &[
            &"build",
            &example("rpn-calculator"),
            &"--fault-budget",
            &"31",
            &"--out",
            &out,
        ],
    );
    run.expect_usage_error(&["at least 63 agents", "at most 2"]);
}

/// A named pipe at `path` (nobody ever writes to it).
fn mkfifo(path: &Path) {
    let made = Command::new("mkfifo")
        .arg(path)
        .status()
        .expect("run mkfifo");
    assert!(made.success(), "mkfifo {}", path.display());
}

/// A symlink at `path` to `/dev/zero`, which never ends.
fn dev_zero(path: &Path) {
    std::os::unix::fs::symlink("/dev/zero", path)
        .unwrap_or_else(|e| panic!("symlink {}: {e}", path.display()));
}

/// Issue 11: inputs were read whole before any cap applied (a symlink to /dev/zero reads until
/// memory runs out; a FIFO blocks the open for ever).
#[test]
fn bad_input_a_prompt_agents_or_answers_file_that_is_not_a_regular_file_is_refused() {
    let tmp = TempDir::new("not-regular");
    let out = tmp.join("out");
    let zero = tmp.join("zero.md");
    dev_zero(&zero);
    let fifo = tmp.join("fifo.md");
    mkfifo(&fifo);
    let agents = example("rpn-calculator/agents.toml");
    let prompt = example("rpn-calculator/prompt.md");
    for (bad, what) in [(&zero, "a character device"), (&fifo, "a named pipe")] {
        let shown = bad.display().to_string();
        for (role, args) in [
            (
                "prompt",
                [&"build" as &dyn AsRef<OsStr>, bad, &"--agents", &agents],
            ),
            ("agents", [&"build", &prompt, &"--agents", bad]),
            (
                "answers",
                [&"build", &example("rpn-calculator"), &"--answers", bad],
            ),
        ] {
            let mut args = args.to_vec();
            args.extend([&"--out" as &dyn AsRef<OsStr>, &out]);
            let run = synod(tmp.path(), &args);
            run.expect_usage_error(&[role, &shown, "not a regular file", what]);
            assert!(!out.exists(), "nothing is written for bad input");
        }
    }
    // A prompt file past the read cap is refused unread.
    let big = tmp.write("big.md", &"x".repeat(1024 * 1024 + 1));
    let run = synod(
        tmp.path(),
        &[&"build", &big, &"--agents", &agents, &"--out", &out],
    );
    run.expect_usage_error(&[&big.display().to_string(), "larger than 1048576 bytes"]);
}

#[test]
fn bad_input_new_prompt_without_agents() {
    let tmp = TempDir::new("no-agents");
    let out = tmp.join("out");
    let run = synod(
        tmp.path(),
        &[
            &"build",
            &"Write a function that reverses a string.",
            &"--out",
            &out,
        ],
    );
    run.expect_usage_error(&["needs agents", "--agents", "examples/rpn-calculator"]);
    assert!(!out.exists());
}

#[test]
fn bad_input_out_dir_with_a_foreign_file() {
    let tmp = TempDir::new("out-foreign");
    let out = tmp.join("out");
    std::fs::create_dir(&out).unwrap();
    let notes = out.join("notes.txt");
    std::fs::write(&notes, "my notes\n").unwrap();
    let run = synod(
        tmp.path(),
        &[&"build", &example("rpn-calculator"), &"--out", &out],
    );
    run.expect_usage_error(&[&out.display().to_string(), "not a synod build"]);
    assert_eq!(read(&notes), "my notes\n", "the foreign file is untouched");
    let left: Vec<_> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, ["notes.txt"], "nothing was added to the directory");
}

#[test]
fn bad_input_out_dir_holding_an_earlier_build() {
    let b = BuildCopy::new("out-earlier");
    let certificate = read(&b.dir.join("certificate.json"));
    let run = synod(
        b.tmp.path(),
        &[&"build", &example("rpn-calculator"), &"--out", &b.dir],
    );
    run.expect_usage_error(&[&b.dir.display().to_string(), "earlier synod build"]);
    assert_eq!(read(&b.dir.join("certificate.json")), certificate);
    b.verify(Some(&b.fingerprint))
        .expect_code(0, "the earlier build still verifies");
}

#[test]
fn bad_input_malformed_answers_file() {
    let tmp = TempDir::new("answers");
    for (name, text, needle) in [
        ("not-a-list.toml", "answers = \"B\"\n", "not valid"),
        ("not-toml.toml", "answers = [\"B\"\n", "not valid"),
        (
            "empty-answer.toml",
            "answers = [\"  \"]\n",
            "1 to 2000 characters",
        ),
    ] {
        let answers = tmp.write(name, text);
        let out = tmp.join(&format!("out-{name}"));
        let run = synod(
            tmp.path(),
            &[
                &"build",
                &example("rpn-calculator"),
                &"--answers",
                &answers,
                &"--out",
                &out,
            ],
        );
        run.expect_usage_error(&[&answers.display().to_string(), needle]);
        assert!(!out.exists());
    }
}

#[test]
fn bad_input_verify_of_a_missing_directory() {
    let tmp = TempDir::new("verify-missing");
    let missing = tmp.join("nosuch");
    synod(tmp.path(), &[&"verify", &missing]).expect_usage_error(&[&missing.display().to_string()]);
}

// ---- agent faults that must not stop the build -----------------------------------------------

/// Builds the RPN prompt with the agents of `fixtures/agent-faults/<agents>`; returns the run,
/// the report and the verify run.
fn build_with_fixture(agents: &str) -> (Run, String, Run) {
    let tmp = TempDir::new(agents.trim_end_matches(".toml"));
    let out = tmp.join("out");
    let run = synod(
        tmp.path(),
        &[
            &"build",
            &example("rpn-calculator/prompt.md"),
            &"--agents",
            &fixture(&format!("agent-faults/{agents}")),
            &"--out",
            &out,
        ],
    );
    run.expect_code(0, &format!("build with {agents}"));
    let report = read(&out.join("REPORT.md"));
    let verified = synod(tmp.path(), &[&"verify", &out]);
    verified.expect_code(0, &format!("verify the build with {agents}"));
    (run, report, verified)
}

#[test]
fn agent_fault_interpret_reply_without_json_is_a_fault_not_a_stop() {
    let (_, report, _) = build_with_fixture("interpret-no-json.toml");
    let gus = agent_row(&report, "gus");
    assert!(
        gus[4].contains("no Python program"),
        "gus's reply had no program: its faults should say so: {gus:?}"
    );
    assert!(
        report.contains("Reading held by **cyd, dee, eli**"),
        "the three correct agents decide\n{report}"
    );
}

/// The fixture's broken agent `bad` built rpn_eval first; the candidate was rejected for a
/// reason containing `why`, and another agent built the component.
fn assert_reassigned(report: &str, bad: &str, why: &str) {
    let row = component_row(report, "rpn_eval");
    assert_ne!(
        row[2], bad,
        "rpn_eval must be built by another agent: {row:?}"
    );
    assert!(
        row[3].starts_with(&format!("{bad}: ")) && row[3].contains(why),
        "rpn_eval's rejected candidates should list {bad} ({why}): {row:?}"
    );
    let agent = agent_row(report, bad);
    assert!(agent[4].contains(why), "{bad}'s faults: {agent:?}");
}

#[test]
fn agent_fault_implement_reply_without_code_is_reassigned() {
    let (_, report, _) = build_with_fixture("implement-no-code.toml");
    assert_reassigned(&report, "hal", "no Python code block");
}

#[test]
fn agent_fault_implement_code_with_a_syntax_error_is_reassigned() {
    let (_, report, _) = build_with_fixture("implement-syntax-error.toml");
    assert_reassigned(&report, "ike", "SyntaxError");
}

#[test]
fn agent_fault_implement_code_that_hangs_on_a_probe_is_reassigned() {
    let (_, report, _) = build_with_fixture("implement-hang.toml");
    assert_reassigned(&report, "jay", "does not finish");
    let row = component_row(&report, "rpn_eval");
    assert!(
        row[3].contains("calculate('7 2 /')"),
        "the hanging input is named: {row:?}"
    );
}

/// Issue 11: a scripted agent's transcript was read whole: one that is a symlink to /dev/zero
/// read until memory ran out, a FIFO hung the agent's call for ever.
#[test]
fn agent_fault_a_transcript_that_is_not_a_regular_file_is_a_fault_not_a_hang() {
    for (kind, make, what) in [
        ("zero", dev_zero as fn(&Path), "a character device"),
        ("fifo", mkfifo, "a named pipe"),
    ] {
        let tmp = TempDir::new(&format!("transcript-{kind}"));
        let dir = tmp.join("rpn");
        copy_dir(&example("rpn-calculator"), &dir);
        let reply = dir.join("transcript/ada/interpret.md");
        std::fs::remove_file(&reply).expect("remove ada's reply");
        make(&reply);
        let out = tmp.join("out");
        let run = synod(tmp.path(), &[&"build", &dir, &"--out", &out]);
        run.expect_code(0, "the other agents build it");
        let ada = agent_row(&read(&out.join("REPORT.md")), "ada");
        assert!(
            ada[4].contains("not a regular file") && ada[4].contains(what),
            "ada's fault names the file's kind: {ada:?}"
        );
    }
}

#[test]
fn verify_refuses_a_program_file_that_is_not_a_regular_file() {
    let b = BuildCopy::new("program-fifo");
    let file = b.dir.join("program/rpn_eval.py");
    std::fs::remove_file(&file).expect("remove rpn_eval.py");
    mkfifo(&file);
    let run = b.verify(None);
    run.expect_code(1, "verify with a FIFO for program/rpn_eval.py");
    let fail = run
        .failure("program files match the certificate")
        .unwrap_or_else(|| panic!("the program check should fail\n{run}"));
    assert!(
        fail.contains("rpn_eval.py") && fail.contains("not a regular file"),
        "{run}"
    );
}

// ---- builds made before typed decisions (log format 1, ADR 0005) -----------------------------

#[test]
fn verify_reads_a_build_made_before_typed_decisions() {
    // Built by synod at commit 3754edd (log format 1): `synod build examples/rpn-calculator`.
    let tmp = TempDir::new("format1-verify");
    let dir = tmp.join("rpn");
    copy_dir(&fixture("format1-rpn"), &dir);
    let run = synod(tmp.path(), &[&"verify", &dir]);
    run.expect_code(0, "verify of a format-1 build");
    assert!(run.failed_checks().is_empty(), "{run}");
}

#[test]
fn resume_refuses_a_build_started_before_typed_decisions() {
    // Stopped at its question by synod at commit 3754edd: `synod build examples/rounding`.
    let tmp = TempDir::new("format1-resume");
    let dir = tmp.join("rounding");
    copy_dir(&fixture("format1-rounding"), &dir);
    let answers = example("rounding").join("answers.toml");
    let run = synod(
        &workspace(),
        &[
            &"build",
            &example("rounding"),
            &"--out",
            &dir,
            &"--resume",
            &"--answers",
            &answers,
        ],
    );
    assert_ne!(run.code, 0, "{run}");
    assert!(
        run.stderr.contains("log has format 1") && run.stderr.contains("start the build afresh"),
        "{run}"
    );
    // Nothing of it was changed: the question is still there to read.
    assert!(dir.join("question.json").exists());
}

// ---- eval with real (command) agents on HumanEvalComm -----------------------------------------

/// A command agent that logs every prompt it sees and writes a correct `has_close_elements`
/// under whatever name the prompt asks for.
const HEC_AGENT: &str = r#"import json, re, sys
req = json.loads(sys.stdin.readline())
with open("prompts.log", "a") as f:
    f.write(req["user"] + "\n=====\n")
m = re.search(r"with the function `(\w+)", req["user"])
name = m.group(1) if m else "has_close_elements"
code = (f"def {name}(numbers, threshold):\n"
        "    return any(abs(a - b) < threshold\n"
        "               for i, a in enumerate(numbers) for b in numbers[i + 1:])\n")
reply = "```python\n" + code + "```\n"
print(json.dumps({"reply": reply}), flush=True)
"#;

/// HumanEvalComm's first row (HumanEval/0 and its variants).
fn hec_first_row() -> String {
    let suite = std::fs::read_to_string(
        workspace().join("../shared/data/humanevalcomm-dev/HumanEvalComm-even.jsonl"),
    )
    .expect("the HumanEvalComm dev set (../shared/data)");
    let first = suite.lines().next().expect("one row");
    assert!(
        first.contains("\"HumanEval/0\""),
        "the first row is HumanEval/0"
    );
    first.to_string()
}

/// `synod eval` of `single` and `synod` on `hec.jsonl` with `agents.toml`, in `tmp`; results
/// in `out/`.
fn hec_eval(tmp: &TempDir) {
    hec_eval_with(tmp, "on");
}

/// [`hec_eval`] with `--user USER`.
fn hec_eval_with(tmp: &TempDir, user: &str) {
    eval_with(tmp, "hec.jsonl", "humanevalcomm", user);
}

/// The row of `results.csv` (its text `csv`) for `variant` and `strategy`, split at commas
/// (column 9 is the outcome).
fn result_row(csv: &str, variant: &str, strategy: &str) -> Vec<String> {
    csv.lines()
        .find(|l| l.contains(&format!(",{variant},")) && l.contains(&format!(",{strategy},")))
        .unwrap_or_else(|| panic!("no {variant} {strategy} row\n{csv}"))
        .split(',')
        .map(str::to_string)
        .collect()
}

/// Four `command` agents running `agent.py` (m = 1), agent k at temperature 0.k, with
/// `arg(k)` as its argument if any.
fn command_agents(arg: impl Fn(usize) -> Option<usize>) -> String {
    let mut agents = String::from("fault_budget = 1\n");
    for k in 0..4 {
        let arg = arg(k).map_or(String::new(), |a| format!(", \"{a}\""));
        agents.push_str(&format!(
            "[[agent]]\nname = \"a{k}\"\nbackend = \"command\"\ncommand = [\"python3\", \"agent.py\"{arg}]\ntemperature = 0.{k}\n"
        ));
    }
    agents
}

/// `synod eval` of `single` and `synod` on `suite` (of `kind`) with `agents.toml`, in `tmp`,
/// with `--user USER`; results in `out/`.
fn eval_with(tmp: &TempDir, suite: &str, kind: &str, user: &str) {
    let run = synod(
        tmp.path(),
        &[
            &"eval",
            &"--suite",
            &suite,
            &"--suite-kind",
            &kind,
            &"--agents",
            &"agents.toml",
            &"--cache-dir",
            &"responses",
            &"--strategy",
            &"single,synod",
            &"--quiet",
            &"--user",
            &user,
            &"--out",
            &"out",
        ],
    );
    run.expect_code(0, "eval with command agents");
}

/// HumanEvalComm's modified prompts rename the function to `candidate` (and some hide its
/// parameters): real agents are asked for it by that name, see no test, and a program defining
/// only `candidate` is scored through an alias; the prompt's doctests (which call `candidate`)
/// are met, so synod decides instead of faulting every reading.
#[test]
fn eval_humanevalcomm_asks_for_the_function_each_prompt_declares() {
    let tmp = TempDir::new("eval-hec-declared");
    tmp.write("hec.jsonl", &hec_first_row());
    tmp.write("agent.py", HEC_AGENT);
    tmp.write("agents.toml", &command_agents(|_| None));
    hec_eval(&tmp);
    let prompts = read(&tmp.join("prompts.log"));
    let csv = read(&tmp.join("out/results.csv"));
    let outcome = |variant: &str, strategy: &str| result_row(&csv, variant, strategy)[9].clone();
    // What the agents were asked for: the declared name, parameters only where the text has them.
    assert!(
        prompts.contains("with the function `candidate(numbers, threshold)`"),
        "{prompts}"
    );
    assert!(
        prompts.contains("with the function `candidate`."),
        "{prompts}"
    );
    assert!(
        prompts.contains("with the function `has_close_elements(numbers, threshold)`"),
        "{prompts}"
    );
    // No test reaches an agent (HumanEvalComm's prompts carry their own examples).
    assert!(!prompts.contains("assert "), "{prompts}");
    for variant in ["original", "prompt1a", "prompt1c", "prompt1p", "prompt2ap"] {
        assert_eq!(outcome(variant, "single"), "correct", "{variant}\n{csv}");
    }
    // The doctests of prompt1a call `candidate`, which every reading defines.
    assert_eq!(outcome("prompt1a", "synod"), "correct", "{csv}");
}

/// A command agent for HumanEvalComm's user: agents 0 and 1 read "close" (`<`), agents 2 and
/// 3 read "larger" (`>`), until the user has clarified; then all follow the clarification.
const HEC_SPLIT_AGENT: &str = r#"import json, re, sys
req = json.loads(sys.stdin.readline())
with open("prompts.log", "a") as f:
    f.write(req["user"] + "\n=====\n")
m = re.search(r"with the function `(\w+)", req["user"])
name = m.group(1) if m else "has_close_elements"
larger = int(sys.argv[1]) >= 2 and "Clarifications from the user" not in req["user"]
test = "abs(a - b) > threshold" if larger else "abs(a - b) < threshold"
code = (f"def {name}(numbers, threshold):\n"
        f"    return any({test}\n"
        "               for i, a in enumerate(numbers) for b in numbers[i + 1:])\n")
examples = f"{name}([1.0, 2.0, 3.0], 0.5)\n{name}([1.0, 1.2], 0.5)\n{name}([], 1.0)\n"
reply = "```python\n" + code + "```\n\n```examples\n" + examples + "```\n"
print(json.dumps({"reply": reply}), flush=True)
"#;

/// With real agents on HumanEvalComm a user answers synod's questions, as the benchmark's
/// own protocol does: the author of the original problem, who runs its solution (which no
/// agent sees) on the calls the question shows and names the reading that matches. On
/// `prompt1p` ("Check given a list of number.", no example) the agents split 2-2, synod asks
/// (PL-25), and the user's choice of a reading held by two agents (more than m) decides it
/// (PL-28): no agent reads again; `single` stays with its agent's first reading.
#[test]
fn eval_humanevalcomm_user_answers_and_synod_builds_what_was_meant() {
    let tmp = TempDir::new("eval-hec-user");
    tmp.write("hec.jsonl", &hec_first_row());
    tmp.write("agent.py", HEC_SPLIT_AGENT);
    // The wrong readers come first, so `single` takes a wrong reading.
    tmp.write("agents.toml", &command_agents(|k| Some(3 - k)));
    hec_eval(&tmp);
    let csv = read(&tmp.join("out/results.csv"));
    let row = |variant: &str, strategy: &str| result_row(&csv, variant, strategy);
    assert_eq!(row("prompt1p", "single")[9], "silently-wrong", "{csv}");
    let synod_row = row("prompt1p", "synod");
    assert_eq!(synod_row[9], "correct", "{csv}");
    assert_eq!(synod_row[13], "1", "one question, answered\n{csv}");
    assert_eq!(synod_row[10], "4", "the first wave's calls only\n{csv}");
    let dialogue = read(&tmp.join("out/dialogue.jsonl"));
    assert!(
        dialogue.contains("\"variant\":\"prompt1p\"") && dialogue.contains("\"answer\":\"B\""),
        "the question and the user's answer are in dialogue.jsonl\n{dialogue}"
    );
    // trace.jsonl: every ask with its request key, the tallies, and the question.
    let trace = read(&tmp.join("out/trace.jsonl"));
    let synod_1p: Vec<serde_json::Value> = trace
        .lines()
        .map(|l| serde_json::from_str(l).expect("a trace line is JSON"))
        .filter(|v: &serde_json::Value| v["variant"] == "prompt1p" && v["strategy"] == "synod")
        .collect();
    let events = |kind: &str| synod_1p.iter().filter(|v| v["event"] == kind).count();
    assert_eq!(events("asked"), 4, "{trace}");
    assert!(
        synod_1p
            .iter()
            .any(|v| v["event"] == "asked" && v["request"] == "interpret"),
        "{trace}"
    );
    assert_eq!(events("question"), 1, "{trace}");
    assert!(events("classes") >= 1, "{trace}");
    let prompts = read(&tmp.join("prompts.log"));
    assert!(
        !prompts.contains("## Clarifications from the user"),
        "decided by the answer, not read again\n{prompts}"
    );
    // The user saw only what the question shows: no hidden test reaches an agent.
    assert!(!prompts.contains("assert "), "{prompts}");
}

/// `--user off`: nobody answers, so the question synod puts on `prompt1p` is its outcome
/// (`asked`), and the trace still holds it; `--user` with simulated agents is refused.
#[test]
fn eval_without_a_user_a_question_is_the_outcome() {
    let tmp = TempDir::new("eval-hec-no-user");
    tmp.write("hec.jsonl", &hec_first_row());
    tmp.write("agent.py", HEC_SPLIT_AGENT);
    tmp.write("agents.toml", &command_agents(|k| Some(3 - k)));
    hec_eval_with(&tmp, "off");
    let csv = read(&tmp.join("out/results.csv"));
    let row = result_row(&csv, "prompt1p", "synod");
    assert_eq!(row[9], "asked", "{csv}");
    assert_eq!(row[13], "1", "{csv}");
    let trace = read(&tmp.join("out/trace.jsonl"));
    assert!(
        trace.lines().any(|l| l.contains("\"variant\":\"prompt1p\"")
            && l.contains("\"event\":\"question\"")),
        "{trace}"
    );
    let dialogue = std::fs::read_to_string(tmp.join("out/dialogue.jsonl")).unwrap_or_default();
    assert!(
        !dialogue.contains("\"answer\""),
        "nobody answered\n{dialogue}"
    );
    let refused = synod(
        tmp.path(),
        &[
            &"eval",
            &"--suite",
            &"hec.jsonl",
            &"--suite-kind",
            &"humanevalcomm",
            &"--user",
            &"on",
            &"--out",
            &"out-sim",
        ],
    );
    refused.expect_code(2, "--user with simulated agents");
    assert!(
        refused.stderr.contains("--user is for real agents"),
        "{}",
        refused.stderr
    );
}

/// A command agent that writes Fibonacci where MBPP task 84 asks for the Newman-Conway
/// sequence: it breaks the prompt's own example (`sequence(10) == 6`, Fibonacci's is 55) and
/// passes the task's two other tests (`sequence(2) == 1`, `sequence(3) == 2`), as the local
/// 1.5B model's first reply did.
const FIBONACCI_AGENT: &str = r#"import json, sys
sys.stdin.readline()
code = ("def sequence(n):\n"
        "    a, b = 0, 1\n"
        "    for _ in range(n):\n"
        "        a, b = b, a + b\n"
        "    return a\n")
print(json.dumps({"reply": "```python\n" + code + "```\n"}), flush=True)
"#;

/// A delivered program is scored on every test of the task, the example its prompt shows
/// included, as MBPP defines a correct program: before, only the tests after the example were
/// run, and a `single` program breaking the example it was shown was scored correct (MBPP tasks
/// 20, 74 and 84 with the local models).
#[test]
fn eval_scores_a_program_on_the_example_its_prompt_shows() {
    let tmp = TempDir::new("eval-mbpp-example");
    let suite = std::fs::read_to_string(
        workspace().join("../shared/data/mbpp-sanitized/sanitized-mbpp.json"),
    )
    .expect("the MBPP dev set (../shared/data)");
    let rows: Vec<serde_json::Value> = serde_json::from_str(&suite).expect("MBPP JSON");
    let task = rows
        .into_iter()
        .find(|r| r["task_id"] == 84)
        .expect("task 84");
    tmp.write("mbpp.json", &serde_json::to_string(&[task]).unwrap());
    tmp.write("agent.py", FIBONACCI_AGENT);
    tmp.write("agents.toml", &command_agents(|_| None));
    // MBPP has no user by default.
    eval_with(&tmp, "mbpp.json", "mbpp", "off");
    let csv = read(&tmp.join("out/results.csv"));
    let outcome = |strategy: &str| result_row(&csv, "original", strategy)[9].clone();
    assert_eq!(outcome("single"), "silently-wrong", "{csv}");
    // Every reading breaks the prompt's example: synod delivers nothing.
    assert_ne!(outcome("synod"), "correct", "{csv}");
    assert_ne!(outcome("synod"), "silently-wrong", "{csv}");
}

/// Contained is not rejected (issue 11): a correct candidate that also tries to write outside
/// its directory, swallowing the error, is refused by the audit and rebuilt by another agent;
/// the report names the operation, and the build verifies.
#[test]
fn agent_fault_implement_code_that_attempts_a_forbidden_write_is_reassigned() {
    let (_, report, _) = build_with_fixture("implement-forbidden.toml");
    assert_reassigned(&report, "kim", "capability set does not grant");
    let agent = agent_row(&report, "kim");
    assert!(
        agent[4].contains("uses open") && agent[4].contains("module rpn_eval line"),
        "the operation and where it is are named: {agent:?}"
    );
    assert!(
        report.contains("Capabilities: pure computation."),
        "the report states the capability set\n{report}"
    );
}

#[test]
fn bad_input_allow_names_no_capability() {
    let tmp = TempDir::new("allow-network");
    let run = synod(
        tmp.path(),
        &[
            &"build",
            &example("rpn-calculator"),
            &"--allow",
            &"network",
            &"--out",
            &tmp.join("out"),
        ],
    );
    run.expect_code(2, "--allow network");
    assert!(
        run.stderr.contains("never granted") && run.stderr.contains("files"),
        "{run}"
    );
}

// ---- readings written one block per module (PL-26, ADR 0001) --------------------------------

/// Issue 10: a v2 reply with one named block per module is a reading of several components.
/// Three recorded agents write two modules, the second importing the first; synod decides by
/// behaviour, gives each component its own block as its first candidate (no implement call:
/// the transcripts hold none), delivers both modules and verifies them.
#[test]
fn a_reading_written_one_block_per_module_builds_both_modules() {
    let tmp = TempDir::new("modules");
    let dir = tmp.join("two");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("prompt.md"),
        "Write two Python modules, standard library only. Module `textstats`, function \
         `word_count(text)`: how many whitespace-separated words `text` has. Module `report`, \
         function `summary(text)`: the string `'N words'`, N being `word_count(text)`.\n",
    )
    .unwrap();
    let mut agents = String::from("fault_budget = 1\n");
    let counts = [
        "len(text.split())",
        "len([w for w in text.split()])",
        "sum(1 for _ in text.split())",
    ];
    for (k, count) in counts.iter().enumerate() {
        let name = format!("a{k}");
        let t = dir.join("transcript").join(&name);
        std::fs::create_dir_all(&t).unwrap();
        std::fs::write(
            t.join("interpret.md"),
            format!(
                "```python\n# module: textstats\ndef word_count(text):\n    return {count}\n```\n\n\
                 ```python\n# module: report\nfrom textstats import word_count\n\n\
                 def summary(text):\n    return f'{{word_count(text)}} words'\n```\n\n\
                 ```examples\nword_count('a b c') == 3\nsummary('a b') == '2 words'\nsummary('') == '0 words'\n```\n"
            ),
        )
        .unwrap();
        agents.push_str(&format!(
            "\n[[agent]]\nname = \"{name}\"\nbackend = \"scripted\"\nmodel = \"recorded\"\ntimeout_ms = 3000\ntranscript = \"transcript/{name}\"\n"
        ));
    }
    std::fs::write(dir.join("agents.toml"), agents).unwrap();
    let out = tmp.join("out");
    let run = synod(tmp.path(), &[&"build", &dir, &"--out", &out]);
    run.expect_code(0, "a two-module reading builds");
    assert!(
        run.stderr
            .contains("decomposition into 2 component(s): textstats, report"),
        "{run}"
    );
    let report_py = read(&out.join("program/report.py"));
    assert!(
        report_py.contains("from textstats import word_count"),
        "the module as its agent wrote it: {report_py}"
    );
    assert!(read(&out.join("program/textstats.py")).contains("def word_count"));
    let verify = synod(tmp.path(), &[&"verify", &out]);
    verify.expect_code(0, "verify the two-module program");
}
