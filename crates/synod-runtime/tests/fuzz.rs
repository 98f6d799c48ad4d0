//! Bad input, fuzzed: the answers file, and a resumed build whose log was damaged.

use proptest::prelude::*;
use proptest::test_runner::Config;
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use synod_agents::{Agent, ScriptedAgent};
use synod_core::Prompt;
use synod_exec::{Limits, Sandbox};
use synod_runtime::answers::{ANSWER_BYTES_MAX, ANSWERS_MAX, parse_answers};
use synod_runtime::{Answers, BuildOptions, BuildResult, RuntimeError, run_build};

const CASES: u32 = 512;
const ANSWERS_PATH: &str = "somewhere/answers-fuzz.toml";

fn check_answers(text: &str) {
    match parse_answers(text, Path::new(ANSWERS_PATH)) {
        Ok(answers) => {
            assert!(answers.len() <= ANSWERS_MAX);
            for a in &answers {
                assert!(!a.trim().is_empty() && a.len() <= ANSWER_BYTES_MAX, "{a:?}");
            }
        }
        Err(reason) => assert!(reason.contains(ANSWERS_PATH), "{reason}"),
    }
}

fn answers_piece() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("answers = [".to_string()),
        Just("]".to_string()),
        Just("\"B\"".to_string()),
        Just("\"\"".to_string()),
        Just("\"   \"".to_string()),
        Just("'''long\nanswer'''".to_string()),
        Just(", ".to_string()),
        Just("\n".to_string()),
        Just("answers = 1\n".to_string()),
        Just("[answers]\n".to_string()),
        Just("other = 2\n".to_string()),
        Just("[".to_string()),
        (0usize..3000).prop_map(|n| format!("\"{}\"", "a".repeat(n))),
        "\\PC{0,12}",
    ]
}

proptest! {
    #![proptest_config(Config { cases: CASES, failure_persistence: None, ..Config::default() })]

    #[test]
    fn arbitrary_text_as_answers_never_panics(text in any::<String>()) {
        check_answers(&text);
    }

    #[test]
    fn answers_soup_is_accepted_or_refused_naming_the_file(
        pieces in prop::collection::vec(answers_piece(), 0..30),
    ) {
        check_answers(&pieces.concat());
    }

    #[test]
    fn well_formed_answers_round_trip(
        answers in prop::collection::vec("[A-Za-z][A-Za-z0-9 .,]{0,40}", 0..ANSWERS_MAX),
    ) {
        let text = format!("answers = {}\n", serde_json::to_string(&answers).unwrap());
        let parsed = parse_answers(&text, Path::new(ANSWERS_PATH)).unwrap();
        prop_assert_eq!(parsed, VecDeque::from(answers));
    }
}

#[test]
fn too_many_or_too_long_answers_are_refused() {
    let many = format!("answers = [{}]", vec!["\"B\""; ANSWERS_MAX + 1].join(", "));
    let e = parse_answers(&many, Path::new(ANSWERS_PATH)).unwrap_err();
    assert!(e.contains("at most") && e.contains(ANSWERS_PATH), "{e}");
    let long = format!("answers = [\"{}\"]", "x".repeat(ANSWER_BYTES_MAX + 1));
    let e = parse_answers(&long, Path::new(ANSWERS_PATH)).unwrap_err();
    assert!(e.contains("characters"), "{e}");
    let deep = format!("answers = {}", "[".repeat(100_000));
    assert!(parse_answers(&deep, Path::new(ANSWERS_PATH)).is_err());
}

// --- resuming from a damaged log ---------------------------------------------------------------

struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let p =
            std::env::temp_dir().join(format!("synod-runtime-fuzz-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// An interpret reply reading `f(x)` as `body`.
fn interpret_reply(summary: &str, body: &str, contract: &str) -> String {
    format!(
        r#"```json
{{
  "summary": "{summary}",
  "components": [{{"name": "fx", "functions": [{{"name": "f", "params": ["x"]}}]}}],
  "contract": [{contract}],
  "probes": [{{"call": "f", "args": [3]}}, {{"call": "f", "args": [-2]}}]
}}
```

```python
def f(x):
    return {body}
```
"#
    )
}

/// Two readings, two agents each: with m = 1 the build stops at a question, its log and key kept.
fn agents(root: &Path) -> Vec<(Box<dyn Agent>, u64)> {
    let double = interpret_reply(
        "double",
        "2 * x",
        r#"{"call": "f", "args": [1], "returns": 2}"#,
    );
    let square = interpret_reply(
        "square",
        "x * x",
        r#"{"call": "f", "args": [0], "returns": 0}"#,
    );
    ["a", "b", "c", "d"]
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let dir = root.join("t").join(name);
            std::fs::create_dir_all(&dir).unwrap();
            let reply = if i % 2 == 0 { &double } else { &square };
            std::fs::write(dir.join("interpret.md"), reply).unwrap();
            (
                Box::new(ScriptedAgent::new(name, dir)) as Box<dyn Agent>,
                20_000,
            )
        })
        .collect()
}

fn options(root: &Path, out: &Path, resume: bool) -> BuildOptions {
    BuildOptions {
        prompt: Prompt::new("f(x): double it, or square it?"),
        agents: agents(root),
        fault_budget: 1,
        seed: 11,
        out_dir: out.to_path_buf(),
        answers: Answers::None,
        sandbox: Sandbox::new(root.join("scratch"), Limits::default()).unwrap(),
        check_workers: 2,
        tokens_max: None,
        timeout_increment_ms: synod_core::pipeline::TIMEOUT_INCREMENT_MS,
        timeout_max_ms: synod_core::pipeline::TIMEOUT_MAX_MS,
        resume,
        cache_dir: None,
        knobs: Default::default(),
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

#[test]
fn resuming_from_a_damaged_log_fails_clearly_and_leaves_the_log_alone() {
    let root = TempDir::new("resume-damaged");
    let out = root.0.join("out");
    let result = run_build(options(&root.0, &out, false), &mut |_| {}).unwrap();
    assert!(
        matches!(result, BuildResult::NeedsClarification { .. }),
        "the scenario must stop at a question with its log kept: {result:?}"
    );
    let log = out.join(synod_runtime::output::LOG_FILE);
    let original = std::fs::read(&log).unwrap();
    let key = synod_store::BuildKey::load(&out.join(".synod/key")).unwrap();
    let entries = synod_store::verify_log(&log, &key.public()).unwrap();
    assert!(entries.len() > 3, "{} entries", entries.len());

    // Damage that verification detects: a flipped byte in a data page (the first offset, from
    // the middle of the file on, whose flip `verify_log` refuses), a zeroed page, a cut.
    let scratch = root.0.join("probe.redb");
    let flipped = (original.len() / 2..original.len())
        .step_by(13)
        .find_map(|at| {
            let mut bytes = original.clone();
            bytes[at] ^= 0x20;
            std::fs::write(&scratch, &bytes).unwrap();
            synod_store::verify_log(&scratch, &key.public())
                .is_err()
                .then_some(bytes)
        })
        .expect("some flipped byte is detected");
    // The first page from the middle on whose zeroing `verify_log` refuses: which pages hold
    // live data depends on the records' sizes, and a zeroed free page is no damage.
    let zeroed = ((original.len() / 2) & !4095..original.len())
        .step_by(4096)
        .find_map(|page| {
            let mut bytes = original.clone();
            bytes[page..(page + 4096).min(original.len())].fill(0);
            std::fs::write(&scratch, &bytes).unwrap();
            synod_store::verify_log(&scratch, &key.public())
                .is_err()
                .then_some(bytes)
        })
        .expect("some zeroed page is detected");
    let cut = original[..original.len() / 2].to_vec();

    for (what, damaged) in [("flipped", flipped), ("zeroed", zeroed), ("cut", cut)] {
        let copy = root.0.join(format!("out-{what}"));
        copy_dir(&out, &copy);
        let copy_log = copy.join(synod_runtime::output::LOG_FILE);
        std::fs::write(&copy_log, &damaged).unwrap();
        let err = match run_build(options(&root.0, &copy, true), &mut |_| {}) {
            Err(e) => e,
            Ok(r) => panic!("{what}: a damaged log was resumed: {r:?}"),
        };
        assert!(matches!(err, RuntimeError::Store(_)), "{what}: {err:?}");
        let message = err.to_string();
        assert!(message.contains("log.redb"), "{what}: {message}");
        assert!(
            std::fs::read(&copy_log).unwrap() == damaged,
            "{what}: the damaged log was changed by the refused resume ({message})"
        );
    }
}
