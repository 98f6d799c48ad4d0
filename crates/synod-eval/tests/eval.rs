//! The evaluation harness on a few real MBPP tasks and on constructed ones.

use std::path::PathBuf;
use synod_eval::checks::CheckCache;
use synod_eval::prepare::{Mutant, Prepared, prepare};
use synod_eval::sim::{FaultKind, Plan, SimSpec, SimTask};
use synod_eval::strategies::{Cell, Verdict};
use synod_eval::suite::{PromptVariant, SuiteKind, Task, load};
use synod_eval::{EvalConfig, all_strategies, run};

fn data() -> PathBuf {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data");
    assert!(
        p.join("mbpp-sanitized/sanitized-mbpp.json").exists(),
        "benchmark data missing: expected {} (see shared/data/README.md)",
        p.display()
    );
    p
}

fn mbpp() -> PathBuf {
    data().join("mbpp-sanitized/sanitized-mbpp.json")
}

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("synod-eval-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// Task ids used in CI: small and quick, and no probe near the per-call time limit (task 3,
/// `is_not_prime`, loops ~10⁶ times on a 2⁴⁰ probe and times out or not with machine load).
const SLICE: &[&str] = &["2", "4", "6"];

fn config(out: PathBuf, cell: SimSpec) -> EvalConfig {
    EvalConfig {
        suite: mbpp(),
        kind: SuiteKind::Mbpp,
        cells: vec![cell],
        strategies: all_strategies(),
        tasks: None,
        task_ids: Some(SLICE.iter().map(|s| s.to_string()).collect()),
        seed: 7,
        jobs: 1,
        out,
        progress: false,
        resamples: synod_eval::DEFAULT_RESAMPLES,
        real: None,
        user: None,
    }
}

fn without_seconds(csv: &str) -> Vec<String> {
    let mut rows: Vec<String> = csv
        .lines()
        .map(|l| {
            let mut f: Vec<&str> = l.split(',').collect();
            if f.len() > 14 {
                f.remove(14);
            }
            f.join(",")
        })
        .collect();
    rows.sort();
    rows
}

#[test]
fn same_seed_gives_identical_results() {
    let cell = SimSpec {
        p: 0.4,
        ..SimSpec::default()
    };
    let (a, b) = (scratch("det-a"), scratch("det-b"));
    run(&config(a.clone(), cell.clone())).unwrap();
    run(&config(b.clone(), cell)).unwrap();
    let ra = std::fs::read_to_string(a.join("results.csv")).unwrap();
    let rb = std::fs::read_to_string(b.join("results.csv")).unwrap();
    assert_eq!(ra.lines().count(), 1 + SLICE.len() * 5);
    assert_eq!(without_seconds(&ra), without_seconds(&rb));
    // Resuming finds every row and writes none.
    let again = run(&config(a.clone(), SimSpec::default().clone())).unwrap();
    assert!(again.rows_resumed >= SLICE.len() * 5);
    let _ = std::fs::remove_dir_all(a);
    let _ = std::fs::remove_dir_all(b);
}

#[test]
fn hidden_tests_never_reach_agents_probes_or_the_check_cache() {
    let out = scratch("leak");
    let cell = SimSpec {
        p: 0.4,
        ..SimSpec::default()
    };
    run(&config(out.clone(), cell)).unwrap();
    let tasks = load(&mbpp(), SuiteKind::Mbpp).unwrap();
    let checks = std::fs::read_to_string(out.join("cache/checks.jsonl")).unwrap();
    for id in SLICE {
        let task = tasks.iter().find(|t| t.id == *id).unwrap();
        let prepared = prepare(task, &out.join("programs"), synod_eval::task_seed(7, id)).unwrap();
        let sim = SimTask::new(&prepared, &task.reference, synod_eval::task_seed(7, id), id);
        // What agents see: the prompt, the signature, the example; what they propose.
        let mut seen = task.prompts[0].text.clone();
        seen.push_str(&serde_json::to_string(&sim.spec(&task.prompts[0].text)).unwrap());
        seen.push_str(&serde_json::to_string(&sim.probes).unwrap());
        // The prompt real agents get (`--agents FILE`).
        seen.push_str(&synod_eval::real::agent_prompt(task, 0, &prepared).unwrap());
        // The probe pool every strategy and the pipeline's first round run.
        let mut own = vec![sim.example.clone()];
        own.extend(sim.probes.iter().cloned());
        let pool =
            synod_core::probes::pool(&own, synod_eval::task_seed(7, id), &Default::default());
        let pool_text: String = pool.iter().map(|c| format!("{c}\n")).collect();
        for hidden in task.hidden_tests() {
            // The cache holds reports only: never a hidden test's text.
            assert!(
                !checks.contains(hidden.as_str()),
                "task {id}: hidden test in the cache"
            );
            // The literal inputs and outputs of each hidden assert, as Python text.
            for piece in literals(hidden) {
                if task.tests[0].contains(&piece) {
                    continue; // also in the example, which agents may see
                }
                assert!(
                    !seen.contains(&piece),
                    "task {id}: {piece:?} reached the agents"
                );
                assert!(
                    !pool_text.contains(&piece),
                    "task {id}: {piece:?} is a probe"
                );
            }
        }
    }
    let _ = std::fs::remove_dir_all(out);
}

/// Bracketed or parenthesised literals of an assert (the inputs and expected values that are
/// long enough not to occur by chance).
fn literals(test: &str) -> Vec<String> {
    let mut out = Vec::new();
    let chars: Vec<char> = test.chars().collect();
    for (i, c) in chars.iter().enumerate() {
        if *c == '[' || *c == '(' {
            let close = if *c == '[' { ']' } else { ')' };
            let mut depth = 0;
            for (j, d) in chars.iter().enumerate().skip(i) {
                if *d == *c {
                    depth += 1;
                } else if *d == close {
                    depth -= 1;
                    if depth == 0 {
                        // Whole bracketed values, so a longer probe list that merely
                        // starts with the same elements does not count.
                        let s: String = chars[i..=j].iter().collect();
                        if s.len() >= 10 && !s[1..].contains('(') && !s.contains('=') {
                            out.push(s);
                        }
                        break;
                    }
                }
            }
        }
    }
    out
}

#[test]
fn every_mutant_fails_a_hidden_test_and_every_rewrite_passes() {
    let out = scratch("mutants");
    let cache = CheckCache::open(&out.join("cache")).unwrap();
    let tasks = load(&mbpp(), SuiteKind::Mbpp).unwrap();
    for id in SLICE {
        let task = tasks.iter().find(|t| t.id == *id).unwrap();
        let p = prepare(task, &out.join("programs"), 1).unwrap();
        assert!(p.ok, "{id}: {}", p.why);
        assert!(!p.mutants.is_empty(), "task {id}: no mutant found");
        assert!(!p.rewrites.is_empty(), "task {id}: no rewrite");
        let judge = |src: &str| {
            cache
                .hidden_verdict(
                    id,
                    &synod_core::Program::single("solution", src),
                    "solution",
                    &task.setup,
                    task.hidden_tests(),
                )
                .unwrap()
        };
        for m in &p.mutants {
            assert!(
                !judge(&m.src),
                "task {id}: mutant ({}) passes every hidden test",
                m.kind
            );
        }
        for r in &p.rewrites {
            assert_ne!(r.trim(), task.reference.trim());
            assert!(judge(r), "task {id}: rewrite fails a hidden test:\n{r}");
        }
    }
    let _ = std::fs::remove_dir_all(out);
}

/// A constructed task: `f(x) = x * 2`; rewrites and mutants written by hand.
fn constructed() -> (Task, Prepared) {
    let task = Task {
        id: "double".into(),
        prompts: vec![PromptVariant {
            name: "original".into(),
            // The example as a literal line, as the MBPP suite shows it (PL-16): every mutant
            // below meets it, so it faults none of them, and the prompt is not open (PL-25).
            text: "Write f(x) returning twice x.\n\nassert f(3) == 6\n".into(),
            declares: None,
        }],
        reference: "def f(x):\n    return x * 2\n".into(),
        tests: vec![
            "assert f(3) == 6".into(),
            "assert f(-5) == -10".into(),
            "assert f(0) == 0".into(),
        ],
        setup: String::new(),
        entry: Some("f".into()),
        skeleton: None,
    };
    let prepared = Prepared {
        ok: true,
        why: String::new(),
        entry: "f".into(),
        params: vec!["x".into()],
        example_args: vec![synod_core::Value::Int(3)],
        example_returns: Some(synod_core::Value::Int(6)),
        probe_steps: vec![],
        rewrites: vec![
            "def f(x):\n    y = x + x\n    return y\n".into(),
            "def f(x):\n    return 2 * x  # doubled\n".into(),
        ],
        mutants: vec![
            // Passes the example (3 → 6) but not the hidden tests.
            Mutant {
                src: "def f(x):\n    return x + 3\n".into(),
                kind: "constructed".into(),
                passes_example: true,
                hidden_failed: 2,
            },
            Mutant {
                src: "def f(x):\n    return abs(x) * 2\n".into(),
                kind: "constructed".into(),
                passes_example: true,
                hidden_failed: 1,
            },
        ],
        reference_ms: Some(0.01),
    };
    (task, prepared)
}

fn cell_verdict(plans: Vec<Plan>, strategy: &str, n: usize, m: usize) -> (Verdict, String) {
    let r = cell_result(plans, vec![], strategy, n, m);
    (r.verdict, r.detail)
}

fn cell_result(
    plans: Vec<Plan>,
    resampled: Vec<Vec<Plan>>,
    strategy: &str,
    n: usize,
    m: usize,
) -> synod_eval::strategies::StrategyResult {
    let (task, prepared) = constructed();
    let out = scratch(&format!("constructed-{strategy}"));
    let cache = CheckCache::open(&out.join("cache")).unwrap();
    let sim = SimTask::new(&prepared, &task.reference, 11, "double");
    let spec = SimSpec {
        n,
        m,
        ..SimSpec::default()
    };
    let cell = Cell {
        task: &task,
        prompt: &task.prompts[0].text,
        sim: &sim,
        spec: &spec,
        plans,
        resampled,
        resamples: 1,
        cache: &cache,
        task_seed: 11,
        user: false,
    };
    let r = cell.run(strategy).unwrap();
    let _ = std::fs::remove_dir_all(out);
    r
}

const RIGHT0: Plan = Plan::Correct {
    rewrite: 0,
    alt: false,
};
const RIGHT1: Plan = Plan::Correct {
    rewrite: 1,
    alt: false,
};
const WRONG0: Plan = Plan::Faulty(FaultKind::DunningKruger, 0);

#[test]
fn single_takes_the_first_agent() {
    let (v, d) = cell_verdict(vec![WRONG0, RIGHT0, RIGHT1], "single", 3, 1);
    assert_eq!(v, Verdict::SilentlyWrong, "{d}");
}

#[test]
fn majority_text_is_fooled_by_one_repeated_mistake_among_rewrites() {
    // Two correct agents wrote different texts; two faulty ones the same mutant.
    let (v, d) = cell_verdict(vec![RIGHT0, RIGHT1, WRONG0, WRONG0], "majority-text", 4, 1);
    assert_eq!(v, Verdict::SilentlyWrong, "{d}");
}

#[test]
fn majority_behaviour_sees_through_rewrites() {
    let (v, d) = cell_verdict(vec![WRONG0, RIGHT0, RIGHT1], "majority-behaviour", 3, 1);
    assert_eq!(v, Verdict::Correct, "{d}");
    assert!(d.ends_with("agent 1"), "{d}");
}

#[test]
fn codet_picks_the_solution_with_most_agreement() {
    let (v, d) = cell_verdict(
        vec![
            WRONG0,
            Plan::Faulty(FaultKind::DunningKruger, 1),
            RIGHT0,
            RIGHT1,
        ],
        "codet",
        4,
        1,
    );
    assert_eq!(v, Verdict::Correct, "{d}");
}

#[test]
fn synod_decides_the_class_of_n_minus_m() {
    let (v, d) = cell_verdict(vec![WRONG0, RIGHT0, RIGHT1, RIGHT0], "synod", 4, 1);
    assert_eq!(v, Verdict::Correct, "{d}");
}

#[test]
fn synod_asks_when_a_mistake_is_shared_beyond_the_budget() {
    let (v, d) = cell_verdict(vec![WRONG0, WRONG0, RIGHT0, RIGHT1], "synod", 4, 1);
    assert_eq!(v, Verdict::Asked, "{d}");
}

const WRONG1: Plan = Plan::Faulty(FaultKind::DunningKruger, 1);

#[test]
fn synod_widens_when_a_resample_repeats_the_same_mistakes() {
    // Two distinct mistakes and a correct class of 2 < n − m: not yet; all four asked; the
    // resample (no fresh plans given) returns the same replies. Without the widened tally the
    // rule refuses; with it (PL-20) the correct class leads by 2 readings after one resample.
    let plans = vec![WRONG0, WRONG1, RIGHT0, RIGHT1];
    let r = cell_result(plans.clone(), vec![], "synod-k0", 4, 1);
    assert_eq!(r.verdict, Verdict::Abstained, "{}", r.detail);
    let r = cell_result(plans, vec![], "synod", 4, 1);
    assert_eq!(r.verdict, Verdict::Correct, "{}", r.detail);
    assert_eq!(r.interpret_calls, 8, "{}", r.detail);
}

#[test]
fn synod_decides_after_a_fresh_resample() {
    // The resample asks afresh: this time only the last agent is faulty, and the first wave
    // of n − m agrees. Cost: 4 reading calls, then 3.
    let r = cell_result(
        vec![WRONG0, WRONG1, RIGHT0, RIGHT1],
        vec![vec![RIGHT1, RIGHT0, RIGHT1, WRONG0]],
        "synod",
        4,
        1,
    );
    assert_eq!(r.verdict, Verdict::Correct, "{}", r.detail);
    assert_eq!(r.interpret_calls, 7);
}

#[test]
fn resampled_plans_are_fresh_and_deterministic() {
    let (_, prepared) = constructed();
    let spec = SimSpec {
        n: 7,
        m: 2,
        p: 0.5,
        rho: 0.5,
        ..SimSpec::default()
    };
    let s0 = synod_eval::sim::plans(&spec, 3, "double", &prepared, false);
    assert_eq!(
        s0,
        synod_eval::sim::plans_at(&spec, 3, "double", &prepared, false, 0)
    );
    let later: Vec<Vec<Plan>> = (1..=4)
        .map(|s| synod_eval::sim::plans_at(&spec, 3, "double", &prepared, false, s))
        .collect();
    assert!(later.iter().any(|p| *p != s0), "resamples repeat sample 0");
    for (i, p) in later.iter().enumerate() {
        let again = synod_eval::sim::plans_at(&spec, 3, "double", &prepared, false, i as u32 + 1);
        assert_eq!(*p, again);
    }
    // With p = 0 every sample is fault-free.
    let clean = SimSpec { p: 0.0, ..spec };
    for s in 0..4 {
        let p = synod_eval::sim::plans_at(&clean, 3, "double", &prepared, false, s);
        assert!(p.iter().all(|x| matches!(x, Plan::Correct { .. })));
    }
}

#[test]
fn synod_spends_n_minus_m_reading_calls_without_faults() {
    let (task, prepared) = constructed();
    let out = scratch("cost");
    let cache = CheckCache::open(&out.join("cache")).unwrap();
    let sim = SimTask::new(&prepared, &task.reference, 11, "double");
    let spec = SimSpec {
        n: 5,
        m: 2,
        ..SimSpec::default()
    };
    let cell = Cell {
        task: &task,
        prompt: &task.prompts[0].text,
        sim: &sim,
        spec: &spec,
        plans: vec![RIGHT0, RIGHT1, RIGHT0, RIGHT1, RIGHT0],
        resampled: vec![],
        resamples: 1,
        cache: &cache,
        task_seed: 11,
        user: false,
    };
    let r = cell.run("synod").unwrap();
    assert_eq!(r.verdict, Verdict::Correct);
    assert_eq!(r.interpret_calls, 3);
    let _ = std::fs::remove_dir_all(out);
}

#[test]
fn sim_spec_parses_and_refuses() {
    let s = SimSpec::parse("sim:n=7,m=2,p=0.3,rho=0.5,mix=dk:2+crash:1").unwrap();
    assert_eq!((s.n, s.m), (7, 2));
    assert_eq!(s.mix.len(), 2);
    assert!(
        SimSpec::parse("sim:n=4,m=2").is_err(),
        "n = 2m cannot be honoured"
    );
    assert!(SimSpec::parse("sim:n=4,q=1").is_err());
    assert!(SimSpec::parse("agents.toml").is_err());
}

#[test]
fn probe_domain_and_call_budget() {
    use synod_core::Value;
    use synod_eval::checks::{call_budget_ms, domain_int_max};
    assert_eq!(domain_int_max(&[Value::Int(15)]), 1_000);
    let big = Value::List(vec![Value::Int(3), Value::Int(-40_000)]);
    assert_eq!(domain_int_max([&big]), 400_000);
    assert_eq!(call_budget_ms(None), 250);
    assert_eq!(call_budget_ms(Some(0.05)), 100);
    assert_eq!(call_budget_ms(Some(15.0)), 200);
    assert_eq!(call_budget_ms(Some(1e6)), 250);
}

#[test]
fn classeval_task_runs_through_the_driver() {
    let path = data().join("classeval/ClassEval_data.json");
    let tasks = load(&path, SuiteKind::Classeval).unwrap();
    assert_eq!(tasks.len(), 100);
    let task = tasks.iter().find(|t| t.id == "ClassEval_1").unwrap();
    assert!(task.hidden_tests().len() >= 5);
    let out = scratch("classeval");
    let cache = CheckCache::open(&out.join("cache")).unwrap();
    let p = prepare(task, &out.join("programs"), 1).unwrap();
    assert!(p.ok, "{}", p.why);
    assert_eq!(p.entry, "run");
    assert!(p.example_returns.is_some(), "the doctest became an example");
    let judge = |src: &str| {
        cache
            .hidden_verdict(
                &task.id,
                &synod_core::Program::single("solution", src),
                "solution",
                &task.setup,
                task.hidden_tests(),
            )
            .unwrap()
    };
    assert!(judge(&task.reference));
    assert!(!p.mutants.is_empty());
    assert!(!judge(&p.mutants[0].src));
    let _ = std::fs::remove_dir_all(out);
}

#[test]
fn classeval_probes_reach_every_method_by_name() {
    let path = data().join("classeval/ClassEval_data.json");
    let tasks = load(&path, SuiteKind::Classeval).unwrap();
    // BankAccount: its one doctest makes two accounts; deposit, withdraw and view_balance are
    // in no doctest.
    let task = tasks.iter().find(|t| t.id == "ClassEval_8").unwrap();
    let out = scratch("classeval-probes");
    let p = prepare(task, &out.join("programs"), 1).unwrap();
    assert!(p.ok, "{}", p.why);
    let sim = SimTask::new(&p, &task.reference, 1, &task.id);
    let names = |v: &synod_core::Value| -> Vec<String> {
        let synod_core::Value::List(steps) = v else {
            panic!("a script is a list: {v:?}")
        };
        steps
            .iter()
            .map(|s| match s {
                synod_core::Value::List(pair) => match &pair[0] {
                    synod_core::Value::Str(n) => n.clone(),
                    other => panic!("a step starts with its name: {other:?}"),
                },
                other => panic!("a step is a list: {other:?}"),
            })
            .collect()
    };
    // The example follows the doctest's first account: made, then a deposit.
    assert_eq!(names(&sim.example.args[0]), ["__init__", "deposit"]);
    let mut reached = std::collections::BTreeSet::new();
    for probe in &sim.probes {
        for n in names(&probe.args[0]) {
            assert!(
                [
                    "__init__",
                    "deposit",
                    "withdraw",
                    "view_balance",
                    "transfer"
                ]
                .contains(&n.as_str()),
                "probes keep method names: {n}"
            );
            reached.insert(n);
        }
    }
    for m in ["deposit", "withdraw", "view_balance", "transfer"] {
        assert!(reached.contains(m), "no probe calls {m}: {:?}", sim.probes);
    }
    assert!(sim.probes.len() <= synod_eval::sim::SCRIPT_PROBES_MAX);
    // Every mutant that passes the example is told apart from the reference by some probe
    // (with the one-value variants of the script, several were not).
    let cache = CheckCache::open(&out.join("cache")).unwrap();
    let reference = cache
        .behaviour(&task.reference, "run", &sim.probes)
        .unwrap()
        .unwrap();
    let mut told = 0;
    for m in p.mutants.iter().filter(|m| m.passes_example) {
        let b = cache.behaviour(&m.src, "run", &sim.probes).unwrap();
        assert_ne!(
            b.as_ref(),
            Some(&reference),
            "probe-blind mutant ({}):\n{}",
            m.kind,
            m.src
        );
        told += 1;
    }
    assert!(told >= 2, "only {told} mutants pass the example");
    let _ = std::fs::remove_dir_all(out);
}

#[test]
fn random_doctest_steps_are_dropped_from_the_example() {
    let path = data().join("classeval/ClassEval_data.json");
    let tasks = load(&path, SuiteKind::Classeval).unwrap();
    // BlackjackGame: create_deck shuffles; the hand-value and winner doctests are fixed.
    let task = tasks.iter().find(|t| t.id == "ClassEval_12").unwrap();
    let out = scratch("classeval-random");
    let p = prepare(task, &out.join("programs"), 1).unwrap();
    assert!(p.ok, "{}", p.why);
    let example = format!("{:?}", p.example_args);
    assert!(!example.contains("create_deck"), "{example}");
    assert!(example.contains("check_winner"), "{example}");
    let _ = std::fs::remove_dir_all(out);
}

#[test]
fn reference_tests_leave_no_files_behind() {
    // A test that writes where it stands, as ClassEval's do (databases, zips, CSVs).
    let task = Task {
        id: "litter".into(),
        prompts: vec![PromptVariant {
            name: "original".into(),
            text: "Write f(x) returning x.".into(),
            declares: None,
        }],
        reference: "def f(x):\n    return x\n".into(),
        tests: vec![
            "assert f(1) == 1".into(),
            "import os\nassert not os.path.exists('synod-litter.txt')\nopen('synod-litter.txt', 'w').write('x')\nassert f(2) == 2".into(),
        ],
        setup: String::new(),
        entry: Some("f".into()),
        skeleton: None,
    };
    let out = scratch("litter");
    let programs = out.join("programs");
    let p = prepare(&task, &programs, 1).unwrap();
    // Every run of the test (reference, rewrites, mutants, timing) found no earlier file.
    assert!(p.ok, "{}", p.why);
    assert!(!p.rewrites.is_empty());
    let cwd = std::env::current_dir().unwrap();
    assert!(
        !cwd.join("synod-litter.txt").exists(),
        "a test wrote into {}",
        cwd.display()
    );
    let mut left: Vec<String> = std::fs::read_dir(&programs)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(left, ["litter.json", "prepare.py"]);
    let _ = std::fs::remove_dir_all(out);
}

// ---- HumanEvalComm's user with real agents ----------------------------------------------------

/// A question of two readings on the calls where they differ (outcomes in reading order).
fn question(differing: Vec<(i64, [i64; 2])>) -> synod_core::pipeline::Question {
    use synod_core::pipeline::{DifferingProbe, Question, Reading};
    use synod_core::{Call, Outcome, Value};
    let reading = |label: &str| Reading {
        label: label.into(),
        agents: vec![format!("agent-{label}")],
        summary: String::new(),
    };
    Question {
        round: 0,
        prompt: String::new(),
        readings: vec![reading("A"), reading("B")],
        differing: differing
            .into_iter()
            .map(|(x, outs)| DifferingProbe {
                call: Call {
                    function: "candidate".into(),
                    args: vec![Value::Int(x)],
                },
                outcomes: outs.iter().map(|o| Outcome::Value(o.to_string())).collect(),
            })
            .collect(),
        outside_domain: false,
        contradicts: None,
        open: true,
    }
}

/// The user of a real HumanEvalComm run is the original problem's author: it runs the
/// dataset's reference (never shown to an agent) on the question's calls, under the name the
/// modified prompt uses, and answers the reading that does the same on every call, or, when
/// none does, what the reference does, in words; a question with no call gets no answer.
#[test]
fn the_real_evaluations_user_answers_with_what_the_reference_does() {
    use synod_eval::real::{RealAgents, RealCell};
    use synod_eval::suite::Declared;
    let (mut task, prepared) = constructed();
    task.prompts[0].text = "def f(x: int) -> int:\n    \"\"\"Twice x.\"\"\"\n".into();
    task.prompts.push(PromptVariant {
        name: "prompt1p".into(),
        text: "def candidate(...):\n    \"\"\"Do something with x.\"\"\"\n".into(),
        declares: Some(Declared {
            name: "candidate".into(),
            params: None,
        }),
    });
    let out = scratch("real-user");
    let cache = CheckCache::open(&out.join("cache")).unwrap();
    let real = RealAgents {
        label: "none".into(),
        agents: Vec::new(),
        m: 0,
        slots: 1,
        spent: Default::default(),
    };
    let cell = RealCell::new((&task, 1), &prepared, &real, &cache, 11, 1, true).unwrap();
    let answer = |q| cell.user_answer(&q).unwrap();
    // f doubles: B does what the reference does on both calls.
    assert_eq!(
        answer(question(vec![(2, [5, 4]), (-1, [1, -2])])),
        Some("B".into())
    );
    assert_eq!(answer(question(vec![(2, [4, 5])])), Some("A".into()));
    // Neither reading doubles 7: the user says what it means, by the variant's name.
    assert_eq!(
        answer(question(vec![(2, [4, 4]), (7, [15, 49])])),
        Some("None of these readings. I mean: `candidate(2) == 4`; `candidate(7) == 14`.".into())
    );
    assert_eq!(answer(question(vec![])), None);
    // Calls the original cannot take (the agents guessed one more parameter): the author says
    // what the function takes, from the original's `def` line.
    let mut q = question(vec![(2, [4, 5])]);
    q.differing[0].call.args.push(synod_core::Value::Int(1));
    assert_eq!(
        answer(q),
        Some("None of these readings. The function is `candidate(x: int) -> int`.".into())
    );
    let _ = std::fs::remove_dir_all(out);
}
