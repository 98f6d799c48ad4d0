//! The runtime with real scripted agents, the real python3 sandbox and the real log.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use synod_agents::{Agent, ScriptedAgent, ScriptedFault};
use synod_core::Prompt;
use synod_exec::{Limits, Sandbox};
use synod_runtime::{Answers, BuildOptions, BuildResult, run_build, verify};

static COUNTER: AtomicU32 = AtomicU32::new(0);

struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!(
            "synod-runtime-test-{}-{name}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        ));
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

fn interpret_reply(summary: &str, body: &str) -> String {
    format!(
        r#"My reading: {summary}

```json
{{
  "summary": "{summary}",
  "components": [{{"name": "mag", "functions": [{{"name": "magnitude", "params": ["x"]}}]}}],
  "contract": [{{"call": "magnitude", "args": [-3], "returns": 3}},
               {{"call": "magnitude", "args": [4], "returns": 4}}],
  "probes": [{{"call": "magnitude", "args": [5]}}, {{"call": "magnitude", "args": [-12]}}]
}}
```

```python
def magnitude(x):
{body}
```
"#
    )
}

fn implement_reply(body: &str) -> String {
    format!("Here is the module.\n\n```python\ndef magnitude(x):\n{body}\n```\n")
}

/// Writes a transcript for one agent.
fn agent_dir(root: &Path, name: &str, body: &str) -> PathBuf {
    let dir = root.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("interpret.md"),
        interpret_reply("absolute value", body),
    )
    .unwrap();
    std::fs::write(dir.join("implement.mag.md"), implement_reply(body)).unwrap();
    dir
}

fn options(
    root: &TempDir,
    agents: Vec<Box<dyn Agent>>,
    m: usize,
    timeout_ms: u64,
) -> (BuildOptions, PathBuf) {
    let out = root.0.join("out");
    let sandbox = Sandbox::new(root.0.join("scratch"), Limits::default()).unwrap();
    (
        BuildOptions {
            prompt: Prompt::new("magnitude(x): the absolute value of an int"),
            agents: agents.into_iter().map(|a| (a, timeout_ms)).collect(),
            fault_budget: m,
            seed: 3,
            out_dir: out.clone(),
            answers: Answers::List(VecDeque::new()),
            sandbox,
            check_workers: 2,
            tokens_max: None,
            timeout_increment_ms: synod_core::pipeline::TIMEOUT_INCREMENT_MS,
            timeout_max_ms: synod_core::pipeline::TIMEOUT_MAX_MS,
            resume: false,
            cache_dir: None,
            knobs: Default::default(),
        },
        out,
    )
}

const ABS: &str = "    return abs(x)";
const ABS_BY_HAND: &str = "    if x < 0:\n        return -x\n    return x";
// Wrong only when x % 97 == 13: agrees with abs on every probe the agents wrote.
const ABS_RARE_BUG: &str = "    if x % 97 == 13:\n        return -abs(x)\n    return abs(x)";

#[test]
fn a_program_wrong_only_on_rare_inputs_is_split_off_and_outvoted() {
    let root = TempDir::new("rare");
    let t = root.0.join("t");
    let agents: Vec<Box<dyn Agent>> = vec![
        Box::new(ScriptedAgent::new(
            "wrong",
            agent_dir(&t, "wrong", ABS_RARE_BUG),
        )),
        Box::new(ScriptedAgent::new("a", agent_dir(&t, "a", ABS))),
        Box::new(ScriptedAgent::new("b", agent_dir(&t, "b", ABS_BY_HAND))),
        Box::new(ScriptedAgent::new("c", agent_dir(&t, "c", ABS))),
    ];
    let (opts, out) = options(&root, agents, 1, 10_000);
    let mut progress = Vec::new();
    let result = run_build(opts, &mut |p| progress.push(p.to_string())).unwrap();
    let BuildResult::Built {
        outcome,
        fingerprint,
        ..
    } = result
    else {
        panic!("not built: {result:?}\n{}", progress.join("\n"));
    };
    // The wrong program is not in the decided class, and the pool holds an input that shows it.
    let names: Vec<u32> = outcome.class.iter().map(|a| a.0).collect();
    assert_eq!(names, vec![1, 2, 3], "{}", progress.join("\n"));
    assert_eq!(outcome.dissent.len(), 1);
    let (call, _, _) = outcome.dissent[0]
        .example
        .clone()
        .expect("a distinguishing input");
    let synod_core::Value::Int(x) = call.args[0] else {
        panic!("int argument expected")
    };
    assert_eq!(x.rem_euclid(97), 13, "{call}");
    // What was delivered verifies.
    let sandbox = Sandbox::new(root.0.join("scratch-verify"), Limits::default()).unwrap();
    let report = verify(&out, Some(&fingerprint), &sandbox);
    assert!(report.ok(), "{report:?}");
}

#[test]
fn a_stalled_agent_is_suspected_and_the_build_goes_on() {
    let root = TempDir::new("stall");
    let t = root.0.join("t");
    let agents: Vec<Box<dyn Agent>> = vec![
        Box::new(
            ScriptedAgent::new("sleepy", agent_dir(&t, "sleepy", ABS))
                .with_fault(ScriptedFault::Stall),
        ),
        Box::new(
            ScriptedAgent::new("crashy", agent_dir(&t, "crashy", ABS))
                .with_fault(ScriptedFault::Crash),
        ),
        Box::new(ScriptedAgent::new("a", agent_dir(&t, "a", ABS))),
        Box::new(ScriptedAgent::new("b", agent_dir(&t, "b", ABS_BY_HAND))),
        Box::new(ScriptedAgent::new("c", agent_dir(&t, "c", ABS))),
    ];
    let (opts, out) = options(&root, agents, 2, 300);
    let mut progress = Vec::new();
    let result = run_build(opts, &mut |p| progress.push(p.to_string())).unwrap();
    let BuildResult::Built { outcome, .. } = result else {
        panic!("not built: {result:?}");
    };
    assert!(outcome.agents[0].suspected, "{}", progress.join("\n"));
    assert!(
        outcome.agents[1]
            .faults
            .iter()
            .any(|f| f.kind == synod_core::pipeline::FaultKind::Crashed
                && f.detail.contains("crash"))
    );
    let report = std::fs::read_to_string(out.join("REPORT.md")).unwrap();
    assert!(
        report.contains("sleepy") && report.contains("missed deadline"),
        "{report}"
    );
}

#[test]
fn too_few_valid_readings_end_in_a_failure_report() {
    let root = TempDir::new("ask");
    let t = root.0.join("t");
    let neg = "    return -x";
    let agents: Vec<Box<dyn Agent>> = vec![
        Box::new(ScriptedAgent::new("a", agent_dir(&t, "a", ABS))),
        Box::new(ScriptedAgent::new("b", agent_dir(&t, "b", ABS_BY_HAND))),
        Box::new(ScriptedAgent::new("c", agent_dir(&t, "c", neg))),
    ];
    // m = 0: every one of the three must agree.
    let (mut opts, out) = options(&root, agents, 0, 10_000);
    // The prompt states an example literally, so "neg" breaks it: a fault, not a reading
    // (PL-16). Its own stated contract alone would not make it one (next test).
    opts.prompt =
        Prompt::new("magnitude(x): the absolute value of an int.\nassert magnitude(4) == 4");
    // The widened tally (PL-20) would decide a and b's reading after a resample (it leads by
    // 4 readings of 2 agents, more than m = 0): off here, the rule alone refuses.
    opts.knobs.ahead_by = Some(0);
    let result = run_build(opts, &mut |_| {}).unwrap();
    match result {
        BuildResult::Failed { stage, .. } => assert_eq!(stage, "agree"),
        other => panic!("expected a failure with m = 0 and a faulty agent: {other:?}"),
    }
    assert!(
        std::fs::read_to_string(out.join("REPORT.md"))
            .unwrap()
            .contains("not built")
    );
}

#[test]
fn a_build_killed_before_its_first_input_resumes_from_the_start() {
    let root = TempDir::new("early-kill");
    let t = root.0.join("t");
    let agents: Vec<Box<dyn Agent>> = vec![
        Box::new(ScriptedAgent::new("a", agent_dir(&t, "a", ABS))),
        Box::new(ScriptedAgent::new("b", agent_dir(&t, "b", ABS_BY_HAND))),
        Box::new(ScriptedAgent::new("c", agent_dir(&t, "c", ABS))),
    ];
    let (mut opts, out) = options(&root, agents, 1, 10_000);
    // What a build leaves when it dies right after creating its log: the marker, the key, a
    // log holding only the sandbox entry.
    synod_runtime::prepare_out_dir(&out).unwrap();
    let key = synod_store::BuildKey::generate().unwrap();
    key.save(&out.join(".synod/key")).unwrap();
    let mut log = synod_store::DecisionLog::create(&out.join("log.redb"), key).unwrap();
    log.append("run", &serde_json::json!({"sandbox": {"mode": "isolated"}}))
        .unwrap();
    drop(log);
    opts.resume = true;
    let result = run_build(opts, &mut |_| {}).unwrap();
    assert!(matches!(result, BuildResult::Built { .. }), "{result:?}");
}

#[test]
fn a_reading_that_misstates_its_own_examples_is_a_reading_not_a_fault() {
    let root = TempDir::new("stated");
    let t = root.0.join("t");
    let neg = "    return -x";
    let agents: Vec<Box<dyn Agent>> = vec![
        Box::new(ScriptedAgent::new("a", agent_dir(&t, "a", ABS))),
        Box::new(ScriptedAgent::new("b", agent_dir(&t, "b", ABS_BY_HAND))),
        Box::new(ScriptedAgent::new("c", agent_dir(&t, "c", neg))),
    ];
    // "neg" states magnitude(4) == 4 but its code says -4. What an agent states is evidence
    // (PL-17): its code is its reading, and with m = 0 two readings mean a question.
    let (opts, _out) = options(&root, agents, 0, 10_000);
    match run_build(opts, &mut |_| {}).unwrap() {
        BuildResult::NeedsClarification { question, .. } => {
            assert_eq!(question.readings.len(), 2);
            assert_eq!(question.readings[1].agents, vec!["c"]);
        }
        other => panic!("expected a question: {other:?}"),
    }
}

/// Issue 11: a person's answer that looks like a label but names no reading is refused with
/// the labels that exist and the question asked again (a few times), never taken as text.
#[test]
fn a_persons_answer_naming_no_reading_is_refused_and_the_question_asked_again() {
    let root = TempDir::new("ask-again");
    let t = root.0.join("t");
    let agents: Vec<Box<dyn Agent>> = vec![
        Box::new(ScriptedAgent::new("a", agent_dir(&t, "a", ABS))),
        Box::new(ScriptedAgent::new("b", agent_dir(&t, "b", ABS_BY_HAND))),
        Box::new(ScriptedAgent::new("c", agent_dir(&t, "c", "    return -x"))),
    ];
    let (mut opts, out) = options(&root, agents, 0, 10_000);
    let asked = std::rc::Rc::new(std::cell::Cell::new(0));
    let counter = std::rc::Rc::clone(&asked);
    opts.answers = Answers::Ask(Box::new(move |_| {
        counter.set(counter.get() + 1);
        Some("C".to_string())
    }));
    let mut refusals = Vec::new();
    let result = run_build(opts, &mut |p| {
        if let synod_core::pipeline::Progress::Stage { stage, detail } = p
            && stage == "clarify"
        {
            refusals.push(detail.clone());
        }
    })
    .unwrap();
    assert!(
        matches!(result, BuildResult::NeedsClarification { .. }),
        "{result:?}"
    );
    assert_eq!(asked.get(), 4, "asked, then again three times");
    assert_eq!(refusals.len(), 4, "{refusals:?}");
    assert!(
        refusals[0].contains("\"C\" names no reading: the readings are A and B"),
        "{refusals:?}"
    );
    assert!(out.join("question.json").is_file());
}

/// The `test_contract.py` a build writes reads an outcome as the sandbox wrote it, on values that
/// tell simpler canonical forms apart (a signed zero, sets of strings, an enum member, a
/// namedtuple, a huge int, an object's address). The exported tests once had a canonical form of
/// their own that kept `-0.0` while the harness wrote `0.0`, and the rpn build's own tests failed
/// on `parse(['-0.0'])`; they now embed the harness's.
#[test]
fn the_exported_tests_read_outcomes_as_the_sandbox_writes_them() {
    use std::collections::BTreeMap;
    use synod_core::{Call, CheckCall, CheckRequest, FunctionSig, Program, Value};
    let source = r#"
import collections, enum

class Color(enum.IntEnum):
    RED = 1

class Plain:
    pass

Point = collections.namedtuple("Point", "x y")

VALUES = [
    -0.0, [-0.0, 1.5, -2.0], {"b": {"z", "y", "x"}, "a": frozenset({"q", "p"})}, Color.RED,
    Point(1, -0.0), collections.OrderedDict([("k", 2), ("j", 1)]), 10 ** 5000 % 10 ** 1900,
    (1,), set(), frozenset(), True, None, "it's", Plain(), {(2, "b"): [None], (1, "a"): {}},
]

def value(i):
    return VALUES[i]
"#;
    let count = 15;
    let calls: Vec<CheckCall> = (0..count)
        .map(|i| CheckCall {
            call: Call {
                function: "value".into(),
                args: vec![Value::Int(i)],
            },
            expect: None,
        })
        .collect();
    let request = CheckRequest {
        program: Program::single("values", source),
        function_modules: BTreeMap::from([("value".to_string(), "values".to_string())]),
        interface: vec![(
            "values".to_string(),
            FunctionSig {
                name: "value".into(),
                params: vec!["i".into()],
                doc: String::new(),
            },
        )],
        calls: calls.clone(),
    };
    let root = TempDir::new("canon");
    let sandbox = Sandbox::new(root.0.join("scratch"), Limits::default()).unwrap();
    let report = sandbox.run(&request).expect("the sandbox runs");
    assert_eq!(report.outcomes.len(), count as usize);
    assert_eq!(report.outcomes[0], synod_core::Outcome::Value("0.0".into()));
    let probes: Vec<Call> = calls.into_iter().map(|c| c.call).collect();
    let tests = synod_runtime::output::contract_tests(
        &[],
        &probes,
        &report.outcomes,
        &request.function_modules,
    );
    let dir = root.0.join("program");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("values.py"), source).unwrap();
    std::fs::write(dir.join(synod_runtime::output::TESTS_FILE), tests).unwrap();
    let run = std::process::Command::new("python3")
        .args(["-B", "-m", "unittest", "-q"])
        .current_dir(&dir)
        .output()
        .expect("python3 runs");
    assert!(
        run.status.success(),
        "the exported tests disagree with the sandbox:\n{}\n{:?}",
        String::from_utf8_lossy(&run.stderr),
        report.outcomes
    );
}
