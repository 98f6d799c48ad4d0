//! Step tests of the build pipeline: given these inputs, these outputs. Each is named after the
//! rule of `docs/PROTOCOL.md` it checks (`pl_3_…` checks PL-3).
//!
//! Programs here are tiny tags ("abs", "neg", "abs_but_minus_7") whose behaviour a test-side
//! evaluator computes, so the state machine is exercised without a sandbox. The real sandbox is
//! exercised by the runtime's and the binary's tests.

use std::collections::BTreeMap;
use synod_core::pipeline::drive::{AgentReply, RunEnd, VirtualDriver, World};
use synod_core::pipeline::*;
use synod_core::*;

const TIMEOUT_MS: u64 = 1000;

fn agents(n: usize) -> Vec<AgentInfo> {
    (0..n)
        .map(|i| AgentInfo {
            id: AgentId(i as u32),
            name: format!("a{i}"),
            timeout_ms: TIMEOUT_MS,
        })
        .collect()
}

fn call(x: i64) -> Call {
    Call {
        function: "f".into(),
        args: vec![Value::Int(x)],
    }
}

/// The behaviour of a tagged program on f(x).
fn behave(tag: &str, x: i64) -> Outcome {
    let v = match tag.trim() {
        "abs" => x.abs(),
        "neg" => -x,
        // Differs from abs only on one rare input.
        "abs_but_minus_7" => {
            if x == -7 {
                7000
            } else {
                x.abs()
            }
        }
        // Differs from abs only where no random draw goes.
        "abs_but_big" => {
            if x == 123_456 {
                0
            } else {
                x.abs()
            }
        }
        // Agrees with abs on x >= 0; reads a negative x as nothing to count.
        "clamp" => x.max(0),
        "abs_loops" => {
            if x == 0 {
                return Outcome::Timeout;
            }
            x.abs()
        }
        other if other.starts_with("syntax error") => return Outcome::Timeout,
        other => panic!("unknown program tag {other:?}"),
    };
    Outcome::Value(v.to_string())
}

/// Evaluates a check request against tagged programs.
fn evaluate(req: &CheckRequest) -> CheckReport {
    if req.calls.is_empty() && req.function_modules.is_empty() {
        return interface_of(req);
    }
    let module = &req.function_modules["f"];
    let mut src = req.program.modules[module].clone();
    if src.starts_with("from synod_reference import *") {
        src = req.program.modules["synod_reference"].clone();
    }
    if src.starts_with("syntax error") {
        return CheckReport {
            load_error: Some("SyntaxError: invalid syntax (line 1)".into()),
            interface_errors: vec![],
            outcomes: vec![Outcome::Timeout; req.calls.len()],
            met: req
                .calls
                .iter()
                .map(|c| c.expect.as_ref().map(|_| false))
                .collect(),
            ..Default::default()
        };
    }
    let mut outcomes = Vec::new();
    let mut met = Vec::new();
    for c in &req.calls {
        let Value::Int(x) = c.call.args[0] else {
            panic!("tests use int args")
        };
        let o = behave(&src, x);
        met.push(c.expect.as_ref().map(|e| match e {
            Expectation::Returns(v) => o == Outcome::Value(v.python()),
            Expectation::Raises(k) => o == Outcome::Error(k.clone()),
            Expectation::Same(s) => o == *s,
        }));
        outcomes.push(o);
    }
    CheckReport {
        load_error: None,
        interface_errors: vec![],
        outcomes,
        met,
        ..Default::default()
    }
}

/// What the harness reads from a tagged reference loaded with no calls (PL-15): `f(x)`, or
/// `g(x, y=0)` for the tag `no_f`; a `syntax error` does not load.
fn interface_of(req: &CheckRequest) -> CheckReport {
    let src = &req.program.modules[REFERENCE_MODULE];
    if src.starts_with("syntax error") {
        return CheckReport {
            load_error: Some("SyntaxError: invalid syntax (line 1)".into()),
            ..Default::default()
        };
    }
    let (name, params, required) = if src == "no_f" {
        ("g", vec!["x".to_string(), "y".to_string()], 1)
    } else {
        ("f", vec!["x".to_string()], 1)
    };
    CheckReport {
        functions: vec![FoundFunction {
            module: REFERENCE_MODULE.into(),
            name: name.into(),
            params,
            required,
        }],
        ..Default::default()
    }
}

/// A reading written as code (PL-15): no interface listed, calls f(-4) (stated to return
/// `stated`, if given) and f(3).
fn code_reading(tag: &str, stated: Option<i64>) -> Interpretation {
    let mut i = interpretation(tag, &[]);
    i.spec.components[0].name = String::new();
    i.spec.components[0].functions.clear();
    i.probes = vec![call(3)];
    match stated {
        Some(y) => i.spec.contract.push(ContractExample {
            call: call(-4),
            expect: Expectation::Returns(Value::Int(y)),
        }),
        None => i.probes.push(call(-4)),
    }
    i
}

/// The first ask among `out`.
fn first_ask(out: &[Output]) -> AskId {
    out.iter()
        .find_map(|o| match o {
            Output::Ask { ask, .. } => Some(*ask),
            _ => None,
        })
        .expect("an ask")
}

/// Fires the pipeline's next deadline at its time; returns the time and the outputs.
fn fire_next_deadline(p: &mut Pipeline) -> (u64, Vec<Output>) {
    let deadline = p.poll_timeout().expect("a deadline");
    let mut out = Vec::new();
    p.step(
        deadline.at_ms,
        Input::TimerFired {
            timer: deadline.timer,
        },
        &mut out,
    );
    (deadline.at_ms, out)
}

fn interpretation(tag: &str, contract: &[(i64, i64)]) -> Interpretation {
    Interpretation {
        spec: Spec {
            summary: format!("f is {tag}"),
            components: vec![ComponentSpec {
                name: "m".into(),
                functions: vec![FunctionSig {
                    name: "f".into(),
                    params: vec!["x".into()],
                    doc: String::new(),
                }],
            }],
            contract: contract
                .iter()
                .map(|(x, y)| ContractExample {
                    call: call(*x),
                    expect: Expectation::Returns(Value::Int(*y)),
                })
                .collect(),
        },
        reference: tag.to_string(),
        probes: vec![call(3), call(-2)],
        sources: Default::default(),
    }
}

/// How a scripted agent in these tests behaves.
#[derive(Clone, Debug)]
enum Plays {
    /// Reads f as this tag and implements it with this tag.
    Reads(&'static str, &'static str),
    /// Reads f as this tag, with the contract's full 64 examples on x = base, base + 1, …
    ReadsWide(&'static str, i64),
    /// Never answers.
    Silent,
    /// Answers garbage.
    Invalid,
    /// Reads f as code with this tag (PL-15), stating f(-4) returns this, if anything.
    FromCode(&'static str, Option<i64>),
    /// Answers garbage to its first sample, then reads f as this tag.
    InvalidOnce(&'static str),
    /// Reads f as this tag with examples on positive x only (f(3), f(5)).
    ReadsPositive(&'static str),
    /// Reads (and implements) f as the tag of the request's sample (the last one after).
    BySample(&'static [&'static str]),
    /// Reads f as this tag, in a component of this name.
    ReadsAsModule(&'static str, &'static str),
}

/// The test's world: scripted agents, the tag evaluator, a record of what the pipeline did.
struct Script {
    plays: Vec<Plays>,
    /// After clarification, agents whose reading changes.
    after_clarification: BTreeMap<u32, &'static str>,
    /// Agents that read as this tag when shown their own program to fix (PL-29).
    fixes_on_repair: BTreeMap<u32, &'static str>,
    /// Every interpret ask: its agent, round and what it was shown of its own program.
    repairs: Vec<(AgentId, u32, Option<Repair>)>,
    /// What every agent proposes to a distinguish request (PL-22): f(x) for each x.
    distinguish: Vec<i64>,
    asks: Vec<(AgentId, String)>,
    persisted: Vec<String>,
    progress: Vec<Progress>,
}

impl World for Script {
    type Error = std::convert::Infallible;

    fn reply(&mut self, agent: AgentId, req: &Request) -> Result<Option<AgentReply>, Self::Error> {
        self.asks.push((agent, req.key()));
        if req.role == Role::Distinguish {
            let reply = if self.distinguish.is_empty() {
                Err(ReplyFault::Invalid("no inputs".into()))
            } else {
                Ok(Reply::Inputs(
                    self.distinguish.iter().map(|x| call(*x)).collect(),
                ))
            };
            return Ok(Some((reply, Usage::default())));
        }
        let mut play = self.plays[agent.0 as usize].clone();
        if req.round > 0
            && let Some(tag) = self.after_clarification.get(&agent.0)
        {
            play = Plays::Reads(tag, tag);
        }
        if req.role == Role::Interpret {
            self.repairs.push((agent, req.round, req.repair.clone()));
            if req.repair.is_some()
                && let Some(tag) = self.fixes_on_repair.get(&agent.0)
            {
                play = Plays::Reads(tag, tag);
            }
        }
        let reply = match play {
            Plays::ReadsWide(reading, base) => Ok(match req.role {
                Role::Interpret => {
                    let contract: Vec<(i64, i64)> = (base..base + 64)
                        .map(|x| match behave(reading, x) {
                            Outcome::Value(y) => (x, y.parse().unwrap()),
                            other => panic!("{other:?}"),
                        })
                        .collect();
                    Reply::Interpretation(interpretation(reading, &contract))
                }
                Role::Implement | Role::Distinguish => Reply::Implementation(reading.to_string()),
            }),
            Plays::Silent => return Ok(None),
            Plays::InvalidOnce(_) if req.role == Role::Interpret && req.sample == 0 => {
                Err(ReplyFault::Invalid("no program".into()))
            }
            Plays::InvalidOnce(tag) => Ok(match req.role {
                Role::Interpret => Reply::Interpretation(interpretation(tag, &[(-4, 4)])),
                Role::Implement | Role::Distinguish => Reply::Implementation(tag.to_string()),
            }),
            Plays::FromCode(tag, stated) => Ok(match req.role {
                Role::Interpret => Reply::Interpretation(code_reading(tag, stated)),
                Role::Implement | Role::Distinguish => Reply::Implementation(tag.to_string()),
            }),
            Plays::Invalid => Err(ReplyFault::Invalid("no JSON spec".into())),
            Plays::BySample(tags) => {
                let tag = tags[(req.sample as usize).min(tags.len() - 1)];
                Ok(match req.role {
                    Role::Interpret => {
                        let Outcome::Value(y) = behave(tag, -4) else {
                            unreachable!()
                        };
                        Reply::Interpretation(interpretation(tag, &[(-4, y.parse().unwrap())]))
                    }
                    Role::Implement | Role::Distinguish => Reply::Implementation(tag.to_string()),
                })
            }
            Plays::ReadsPositive(tag) => Ok(match req.role {
                Role::Interpret => {
                    let mut i = interpretation(tag, &[(3, 3), (5, 5)]);
                    i.probes = vec![call(4)];
                    Reply::Interpretation(i)
                }
                Role::Implement | Role::Distinguish => Reply::Implementation(tag.to_string()),
            }),
            Plays::ReadsAsModule(tag, module) => Ok(match req.role {
                Role::Interpret => {
                    let mut i = interpretation(tag, &[(-4, 4)]);
                    i.spec.components[0].name = module.into();
                    Reply::Interpretation(i)
                }
                Role::Implement | Role::Distinguish => Reply::Implementation(tag.to_string()),
            }),
            Plays::Reads(reading, code) => Ok(match req.role {
                Role::Interpret => {
                    let y = behave(reading, -4);
                    let Outcome::Value(y) = y else { unreachable!() };
                    Reply::Interpretation(interpretation(reading, &[(-4, y.parse().unwrap())]))
                }
                Role::Implement | Role::Distinguish => Reply::Implementation(code.to_string()),
            }),
        };
        Ok(Some((reply, Usage::default())))
    }

    fn check(&mut self, request: &CheckRequest) -> Result<CheckReport, Self::Error> {
        Ok(evaluate(request))
    }

    fn answer(&mut self, _question: &Question) -> Result<Option<String>, Self::Error> {
        Ok(None)
    }

    fn observe(&mut self, output: &Output) {
        match output {
            Output::Persist(d) => self.persisted.push(d.kind()),
            Output::Progress(p) => self.progress.push(p.clone()),
            _ => {}
        }
    }
}

/// The shared virtual-time driver and the test's world.
struct Driver {
    v: VirtualDriver,
    w: Script,
    question: Option<Question>,
    finish: Option<Finish>,
}

impl std::ops::Deref for Driver {
    type Target = Script;
    fn deref(&self) -> &Script {
        &self.w
    }
}

impl Driver {
    fn new(n: usize, m: usize, plays: Vec<Plays>) -> Driver {
        Driver::with_prompt(n, m, plays, "write f")
    }

    fn with_prompt(n: usize, m: usize, plays: Vec<Plays>, prompt: &str) -> Driver {
        Driver::build(n, m, plays, prompt, |_| {})
    }

    fn with_config(
        n: usize,
        m: usize,
        plays: Vec<Plays>,
        tune: impl FnOnce(&mut PipelineConfig),
    ) -> Driver {
        Driver::build(n, m, plays, "write f", tune)
    }

    fn build(
        n: usize,
        m: usize,
        plays: Vec<Plays>,
        prompt: &str,
        tune: impl FnOnce(&mut PipelineConfig),
    ) -> Driver {
        let mut cfg = PipelineConfig::new(agents(n), m, 7);
        tune(&mut cfg);
        Driver {
            v: VirtualDriver::new(Pipeline::new(cfg, Prompt::new(prompt)).unwrap()),
            w: Script {
                plays,
                after_clarification: BTreeMap::new(),
                fixes_on_repair: BTreeMap::new(),
                repairs: vec![],
                distinguish: vec![],
                asks: vec![],
                persisted: vec![],
                progress: vec![],
            },
            question: None,
            finish: None,
        }
    }

    /// Runs until the pipeline finishes or asks the user.
    fn run(&mut self) {
        match self.v.run(&mut self.w) {
            Ok(RunEnd::Finished(f)) => self.finish = Some(*f),
            Ok(RunEnd::Asked(q)) => self.question = Some(*q),
            Ok(other) => panic!("pipeline stopped: {other:?}"),
            Err(e) => match e {},
        }
    }

    fn built(&self) -> &BuildOutcome {
        match &self.finish {
            Some(Finish::Built(b)) => b,
            other => panic!("not built: {other:?}"),
        }
    }

    /// What the interpret asks of round `round` showed their agents of their programs (PL-29).
    fn shown(&self, round: u32) -> Vec<&Repair> {
        self.repairs
            .iter()
            .filter(|(_, r, _)| *r == round)
            .filter_map(|(_, _, r)| r.as_ref())
            .collect()
    }

    fn interpret_asks(&self) -> Vec<u32> {
        self.asks
            .iter()
            .filter(|(_, k)| k.starts_with("interpret"))
            .map(|(a, _)| a.0)
            .collect()
    }
}

#[test]
fn pl_1_first_wave_asks_n_minus_m_agents_in_file_order() {
    let mut d = Driver::new(5, 2, vec![Plays::Silent; 5]);
    let mut out = Vec::new();
    d.v.pipeline.step(0, Input::Start, &mut out);
    let asked: Vec<u32> = out
        .iter()
        .filter_map(|o| match o {
            Output::Ask { agent, .. } => Some(agent.0),
            _ => None,
        })
        .collect();
    assert_eq!(asked, vec![0, 1, 2]);
    assert!(matches!(&out[0], Output::Persist(d) if matches!(**d, Decision::BuildStarted { .. })));
    // Every ask has a deadline: silence for longer than the timeout.
    assert_eq!(
        d.v.pipeline.poll_timeout(),
        Some(Deadline {
            at_ms: TIMEOUT_MS + 1,
            timer: Timer::AskDeadline(AgentId(0)),
        })
    );
}

#[test]
fn pl_1_fault_free_decision_costs_n_minus_m_calls() {
    let mut d = Driver::new(5, 2, vec![Plays::Reads("abs", "abs"); 5]);
    d.run();
    let b = d.built();
    assert_eq!(
        d.interpret_asks(),
        vec![0, 1, 2],
        "agents 3 and 4 are never asked"
    );
    assert_eq!(b.class, vec![AgentId(0), AgentId(1), AgentId(2)]);
    assert!(b.dissent.is_empty());
    assert_eq!(
        d.persisted
            .iter()
            .filter(|k| *k == "interpretation-decided")
            .count(),
        1
    );
    assert_eq!(
        d.persisted.last().map(String::as_str),
        Some("integration-passed")
    );
}

#[test]
fn pl_3_silent_agent_is_suspected_and_replaced_misreader_outvoted() {
    // The example of the spine issue: misreader and silent agent both in the first wave.
    let mut d = Driver::new(
        5,
        2,
        vec![
            Plays::Reads("neg", "neg"),
            Plays::Silent,
            Plays::Reads("abs", "abs"),
            Plays::Reads("abs", "abs"),
            Plays::Reads("abs", "abs"),
        ],
    );
    d.run();
    assert_eq!(d.interpret_asks(), vec![0, 1, 2, 3, 4]);
    assert!(d.progress.iter().any(
        |p| matches!(p, Progress::Suspected { agent, timeout_ms } if agent == "a1" && *timeout_ms == TIMEOUT_MS)
    ));
    let b = d.built();
    assert_eq!(b.class, vec![AgentId(2), AgentId(3), AgentId(4)]);
    assert_eq!(b.dissent.len(), 1);
    assert_eq!(b.dissent[0].agents, vec![AgentId(0)]);
    let rec = &b.agents;
    assert!(rec[0].faults.iter().any(|f| f.kind == FaultKind::Outvoted));
    assert!(rec[1].suspected && rec[1].suspicions == 1);
    // The suspected agent is never given a component.
    assert!(
        !d.asks
            .iter()
            .any(|(a, k)| a.0 == 1 && k.starts_with("implement"))
    );
}

#[test]
fn pl_2_invalid_reply_is_a_fault_and_the_next_agent_is_asked() {
    let mut d = Driver::new(
        3,
        1,
        vec![
            Plays::Invalid,
            Plays::Reads("abs", "abs"),
            Plays::Reads("abs", "abs"),
        ],
    );
    d.run();
    assert_eq!(d.interpret_asks(), vec![0, 1, 2]);
    let b = d.built();
    assert_eq!(b.class, vec![AgentId(1), AgentId(2)]);
    assert_eq!(b.agents[0].faults[0].kind, FaultKind::InvalidReply);
    assert!(b.agents[0].faults[0].detail.contains("no JSON spec"));
}

/// Five agents whose readings split 3-2, "abs" against "neg": two classes of more than m = 1.
fn split_3_2() -> Vec<Plays> {
    vec![
        Plays::Reads("abs", "abs"),
        Plays::Reads("abs", "abs"),
        Plays::Reads("abs", "abs"),
        Plays::Reads("neg", "neg"),
        Plays::Reads("neg", "neg"),
    ]
}

#[test]
fn pl_8_split_beyond_budget_asks_the_user_then_the_answer_constrains_the_next_round() {
    // 5 agents, m = 1, readings split 3–2; the answer is read again (PL-28 off).
    let mut d = Driver::with_config(5, 1, split_3_2(), |c| c.answer_decides = false);
    d.run();
    let q = d.question.clone().expect("a question");
    assert_eq!(q.readings.len(), 2);
    assert_eq!(q.readings[0].agents, vec!["a0", "a1", "a2"]);
    assert_eq!(q.readings[1].label, "B");
    assert!(!q.differing.is_empty());
    for dp in &q.differing {
        assert_ne!(dp.outcomes[0], dp.outcomes[1]);
    }
    assert!(d.persisted.contains(&"ambiguity".to_string()));
    // The user picks B; the first three change their reading, the clarified outcomes become
    // contract examples every later reading must meet.
    for a in 0..3 {
        d.w.after_clarification.insert(a, "neg");
    }
    d.v.push(Input::UserAnswered { answer: "B".into() });
    d.run();
    let b = d.built();
    assert_eq!(b.prompt.clarifications.len(), 1);
    assert!(
        b.prompt.clarifications[0]
            .text
            .starts_with("Follow reading B")
    );
    assert!(
        b.spec
            .contract
            .iter()
            .any(|c| matches!(c.expect, Expectation::Same(_)))
    );
    assert_eq!(
        b.class.len(),
        4,
        "the second round decides with its first wave"
    );
}

/// PL-28: the user's choice of a reading held by more than m agents decides its class, with
/// no second round: at most m agents are faulty, so one of the two is correct, and both read
/// alike on every probe. The clarification's examples are in the contract, as after a re-read.
#[test]
fn pl_28_the_users_choice_of_a_reading_held_by_more_than_m_agents_decides_it() {
    let mut d = Driver::new(5, 1, split_3_2());
    d.run();
    let asks = d.interpret_asks().len();
    d.v.push(Input::UserAnswered { answer: "B".into() });
    d.run();
    let b = d.built();
    assert_eq!(b.class, vec![AgentId(3), AgentId(4)]);
    assert_eq!(d.interpret_asks().len(), asks, "no agent reads again");
    assert_eq!(b.prompt.clarifications.len(), 1);
    assert!(
        b.spec
            .contract
            .iter()
            .any(|c| matches!(c.expect, Expectation::Same(_)))
    );
    assert!(
        d.w.progress
            .iter()
            .any(|p| p.to_string().contains("decided (PL-28)")),
        "{:?}",
        d.w.progress
    );
    // Reading A (three agents) likewise.
    let mut d = Driver::new(5, 1, split_3_2());
    d.run();
    d.v.push(Input::UserAnswered { answer: "A".into() });
    d.run();
    assert_eq!(d.built().class, vec![AgentId(0), AgentId(1), AgentId(2)]);
    // Free text chooses no reading: every agent reads again.
    let mut d = Driver::new(5, 1, split_3_2());
    d.run();
    let asks = d.interpret_asks().len();
    d.v.push(Input::UserAnswered {
        answer: "the negative one, please".into(),
    });
    d.run();
    assert!(d.interpret_asks().len() > asks);
}

/// PL-29: after an answer PL-28 does not decide, an agent whose reading the user did not choose
/// is shown its program with the calls where it does otherwise; agents that ignore the
/// clarification but fix what they are shown then build the chosen reading.
#[test]
fn pl_29_the_next_round_shows_each_agent_its_program_and_where_the_answer_differs() {
    let mut d = Driver::with_config(5, 1, split_3_2(), |c| c.answer_decides = false);
    d.run();
    let q = d.question.clone().expect("a question");
    // Agents 0–2 read "abs" whatever the clarification says, and fix their program when
    // shown it.
    for a in 0..3 {
        d.w.fixes_on_repair.insert(a, "neg");
    }
    d.v.push(Input::UserAnswered { answer: "B".into() });
    d.run();
    let b = d.built();
    assert_eq!(b.class.len(), 4, "{:?}", b.class);
    let second: Vec<&(AgentId, u32, Option<Repair>)> =
        d.repairs.iter().filter(|(_, r, _)| *r == 1).collect();
    let d0 = &q.differing[0];
    let want = format!(
        "the user chose another reading (clarification 1): {} should return {}, but your program returns {}",
        d0.call, d0.outcomes[1], d0.outcomes[0]
    );
    for (agent, _, repair) in &second {
        if agent.0 >= 3 {
            assert_eq!(repair, &None, "agent {agent:?} read B: nothing to fix");
            continue;
        }
        let r = repair.as_ref().expect("a repair");
        assert_eq!(r.program, "# module: m\nabs");
        assert!(r.problem.starts_with(&want), "{}\n{want}", r.problem);
    }
    assert!(second.iter().any(|(a, _, r)| a.0 < 3 && r.is_some()));
    let calls = |b: &BuildOutcome| b.agents.iter().map(|a| a.calls).sum::<u32>();
    let repaired = calls(b);
    // Agents that ignore what they are shown repeat "abs" and break the clarification: only
    // agents 3 and 4 read B, and the round needs PL-20's resamples to decide it.
    let mut d = Driver::with_config(5, 1, split_3_2(), |c| c.answer_decides = false);
    d.run();
    d.v.push(Input::UserAnswered { answer: "B".into() });
    d.run();
    let b = d.built();
    assert_eq!(b.class, vec![AgentId(3), AgentId(4)]);
    assert!(calls(b) > repaired, "{} against {repaired}", calls(b));
    // An answer in words shows every program of the round with the words.
    let mut d = Driver::with_config(5, 1, split_3_2(), |c| c.answer_decides = false);
    d.run();
    d.v.push(Input::UserAnswered {
        answer: "the negative one, please".into(),
    });
    d.run();
    let shown = d.shown(1);
    assert!(!shown.is_empty());
    for r in shown {
        assert!(
            r.problem.contains("answered: \"the negative one, please\""),
            "{}",
            r.problem
        );
    }
}

/// PL-29 after a PL-24 question: the user keeps the prompt's example, and the agents whose
/// readings broke it (faults, whose programs are kept with the contradiction) are shown their
/// program and the example.
#[test]
fn pl_29_after_keeping_the_prompts_example_the_readings_that_broke_it_are_shown_it() {
    let prompt = "Write `f(x)`, the negation of x.\nassert f(4) == 4";
    let mut d = Driver::with_prompt(4, 1, vec![Plays::FromCode("neg", None); 4], prompt);
    d.run();
    assert!(d.question.as_ref().is_some_and(|q| q.contradicts.is_some()));
    for a in 0..4 {
        d.w.fixes_on_repair.insert(a, "abs");
    }
    d.v.push(Input::UserAnswered { answer: "A".into() });
    d.run();
    assert_eq!(d.built().reference, "abs");
    let shown = d.shown(1);
    assert!(!shown.is_empty());
    for r in shown {
        assert_eq!(r.program, "# module: solution\nneg");
        assert!(
            r.problem
                .contains("f(4) should return 4, but your program returns -4"),
            "{}",
            r.problem
        );
    }
}

/// PL-30: an answer in words that writes examples out (`f(3) == -3`) makes them checks: a
/// reading that breaks one is a fault, and they join the decided contract.
#[test]
fn pl_30_examples_written_in_an_answer_are_checks() {
    // Agents 0–2 read "abs" whatever they are told or shown.
    let mut d = Driver::new(5, 1, split_3_2());
    d.run();
    d.v.push(Input::UserAnswered {
        answer: "the negative one: `f(3) == -3`".into(),
    });
    d.run();
    let b = d.built();
    let example = ContractExample {
        call: call(3),
        expect: Expectation::Returns(Value::Int(-3)),
    };
    assert_eq!(b.prompt.clarifications[0].examples, vec![example.clone()]);
    assert!(b.spec.contract.contains(&example), "{:?}", b.spec.contract);
    assert_eq!(b.reference, "neg");
    // Agent 0 read "abs" again and broke the written example.
    let fault = &b.agents[0].faults[0];
    assert_eq!(fault.kind, FaultKind::BreaksContract, "{fault:?}");
    assert!(
        fault.detail.contains("f(3) should return -3"),
        "{}",
        fault.detail
    );
}

/// PL-29: a retry after a fault (PL-18) shows the agent its faulted program and why.
#[test]
fn pl_29_a_retry_shows_the_agent_its_faulted_program_and_why() {
    let plays = || {
        vec![
            Plays::Reads("neg", "neg"),
            Plays::Reads("abs", "abs"),
            Plays::Invalid,
        ]
    };
    let prompt = "Write `f(x)`, the magnitude of x.\nassert f(4) == 4";
    let mut d = Driver::with_prompt(3, 1, plays(), prompt);
    d.w.fixes_on_repair.insert(0, "abs");
    d.run();
    assert_eq!(d.built().class, vec![AgentId(0), AgentId(1)]);
    let retry = d
        .repairs
        .iter()
        .filter(|(a, _, _)| a.0 == 0)
        .nth(1)
        .and_then(|(_, _, r)| r.clone())
        .expect("agent 0's retry shows its program");
    assert_eq!(retry.program, "# module: m\nneg");
    assert_eq!(
        retry.problem,
        "f(4) should return 4 (the request's examples and the user's answers say so), but your program returns -4."
    );
    // The repaired retry is another request than the plain sample 1 (PL-20 counts readings by
    // agent and key).
    let keys: Vec<&str> = d
        .asks
        .iter()
        .filter(|(a, k)| a.0 == 0 && k.starts_with("interpret"))
        .map(|(_, k)| k.as_str())
        .collect();
    assert_eq!(keys.len(), 2, "{keys:?}");
    assert_eq!(keys[0], "interpret");
    assert!(
        keys[1].starts_with("interpret.s1.fix-") && keys[1].len() == "interpret.s1.fix-".len() + 8,
        "{keys:?}"
    );
    // The first asks show nothing; agent 2's reply had no program, so its retry shows none.
    assert!(
        d.repairs
            .iter()
            .filter(|(a, _, _)| a.0 != 0)
            .all(|(_, _, r)| r.is_none())
    );
    // An agent that ignores what it is shown is faulted again, and the round fails.
    let mut d = Driver::with_prompt(3, 1, plays(), prompt);
    d.run();
    assert!(
        matches!(d.finish, Some(Finish::Failed { .. })),
        "{:?}",
        d.finish
    );
}

#[test]
fn pl_8_an_answer_that_looks_like_a_label_but_names_no_reading_is_refused_and_asked_again() {
    // Issue 11: "C" with readings A and B was appended to the prompt as free text.
    let mut d = Driver::new(5, 1, split_3_2());
    d.run();
    let q = d.question.take().expect("a question");
    for wrong in ["C", "reading c", "AB", "z", "R7"] {
        d.w.progress.clear();
        d.v.push(Input::UserAnswered {
            answer: wrong.into(),
        });
        d.run();
        assert_eq!(d.question.take().as_ref(), Some(&q), "{wrong}: asked again");
        let refused = d.progress.iter().any(|p| {
            matches!(p, Progress::Stage { stage, detail } if stage == "clarify"
                && detail.contains(&format!("{:?} names no reading", wrong))
                && detail.contains("the readings are A and B"))
        });
        assert!(refused, "{wrong}: {:?}", d.progress);
        assert!(
            !d.persisted.contains(&"clarification".to_string()),
            "{wrong}"
        );
    }
    for a in 0..3 {
        d.w.after_clarification.insert(a, "neg");
    }
    d.v.push(Input::UserAnswered {
        answer: "reading b".into(),
    });
    d.run();
    let b = d.built();
    assert_eq!(b.prompt.clarifications.len(), 1);
    assert!(
        b.prompt.clarifications[0]
            .text
            .starts_with("Follow reading B")
    );
    // Labels, free text and the refused, read on their own.
    for (answer, read) in [
        ("A", Ok(Some(0))),
        ("b", Ok(Some(1))),
        (" Reading B ", Ok(Some(1))),
        ("ok", Ok(None)),
        ("B.", Ok(None)),
        ("the empty list counts as zero", Ok(None)),
        ("reading B is right", Ok(None)),
    ] {
        assert_eq!(read_answer(&q, answer), read, "{answer:?}");
    }
    assert!(
        read_answer(&q, "OK").is_err(),
        "two capitals look like a label"
    );
}

#[test]
fn pl_5_reading_contradicting_a_clarification_is_a_fault() {
    // The answer is read again (PL-28 off: it would decide the chosen class at once).
    let mut d = Driver::with_config(5, 1, split_3_2(), |c| c.answer_decides = false);
    d.run();
    // Agents 0 and 1 change their minds; agent 2 keeps "abs", which contradicts B, and is
    // replaced by agent 4.
    d.w.after_clarification.insert(0, "neg");
    d.w.after_clarification.insert(1, "neg");
    d.v.push(Input::UserAnswered {
        answer: "reading B".into(),
    });
    d.run();
    let b = d.built();
    assert_eq!(
        b.class,
        vec![AgentId(0), AgentId(1), AgentId(3), AgentId(4)]
    );
    assert!(
        b.agents[2]
            .faults
            .iter()
            .any(|f| f.kind == FaultKind::BreaksContract && f.stage == FaultStage::Interpret)
    );
}

#[test]
fn pl_7_differential_testing_splits_programs_that_differ_on_a_rare_input() {
    // Four agents agree on every pooled probe; one of them is wrong only at x = -7.
    // n = 4, m = 1: without the split the wrong program could be the representative.
    let mut d = Driver::new(
        4,
        1,
        vec![
            Plays::Reads("abs_but_minus_7", "abs_but_minus_7"),
            Plays::Reads("abs", "abs"),
            Plays::Reads("abs", "abs"),
            Plays::Reads("abs", "abs"),
        ],
    );
    d.run();
    assert!(
        d.progress
            .iter()
            .any(|p| matches!(p, Progress::Split { .. })),
        "differential testing found x = -7"
    );
    let b = d.built();
    assert_eq!(b.class, vec![AgentId(1), AgentId(2), AgentId(3)]);
    assert!(b.probes.contains(&call(-7)));
    assert_eq!(b.dissent[0].agents, vec![AgentId(0)]);
}

#[test]
fn pl_10_failed_refinement_sends_the_component_to_another_agent() {
    // Agent 0 reads right but writes code that loops on 0; agent 1 writes it right. (Builders
    // are asked: the reference is not the first candidate here, PL-21.)
    let mut d = Driver::with_config(
        3,
        1,
        vec![
            Plays::Reads("abs", "abs_loops"),
            Plays::Reads("abs", "abs"),
            Plays::Reads("abs", "abs"),
        ],
        |c| c.reference_first = false,
    );
    d.run();
    let b = d.built();
    assert_eq!(b.components[0].agent, AgentId(1));
    assert_eq!(b.components[0].rejected.len(), 1);
    assert!(
        b.components[0].rejected[0]
            .1
            .contains("differs from the decided reference")
    );
}

#[test]
fn pl_10_component_budget_exhausted_fails_with_evidence() {
    let mut d = Driver::with_config(
        3,
        1,
        vec![
            Plays::Reads("abs", "syntax error"),
            Plays::Reads("abs", "syntax error"),
            Plays::Reads("abs", "neg"),
        ],
        |c| c.reference_first = false,
    );
    d.run();
    match &d.finish {
        Some(Finish::Failed { stage, reason, .. }) => {
            assert_eq!(stage, "build");
            assert!(reason.contains("does not load"), "{reason}");
        }
        other => panic!("expected failure, got {other:?}"),
    }
    assert_eq!(d.persisted.last().map(String::as_str), Some("build-failed"));
}

#[test]
fn pl_6_no_agreement_within_budget_fails() {
    // Three readings, none above m: resample once, then fail. (The prompt gives no example,
    // so PL-25 would ask instead; it is off here.)
    let mut d = Driver::with_config(
        3,
        1,
        vec![
            Plays::Reads("abs", "abs"),
            Plays::Reads("neg", "neg"),
            Plays::Reads("abs_but_minus_7", "abs_but_minus_7"),
        ],
        |c| c.ask_open = false,
    );
    d.run();
    match &d.finish {
        Some(Finish::Failed { stage, reason, .. }) => {
            assert_eq!(stage, "agree");
            assert!(reason.contains("no agreement"), "{reason}");
        }
        other => panic!("expected failure, got {other:?}"),
    }
    assert!(d.persisted.contains(&"resample".to_string()));
    assert!(d.asks.iter().any(|(_, k)| k == "interpret.s1"));
}

#[test]
fn pl_4_late_reply_restores_trust_and_grows_the_timeout_by_the_increment() {
    let mut cfg = PipelineConfig::new(agents(3), 1, 1);
    cfg.timeout_increment_ms = 250;
    cfg.timeout_max_ms = TIMEOUT_MS + 400;
    let mut p = Pipeline::new(cfg, Prompt::new("p")).unwrap();
    let mut out = Vec::new();
    p.step(0, Input::Start, &mut out);
    let first_ask = first_ask(&out);
    let (at_ms, mut out) = fire_next_deadline(&mut p);
    assert!(
        out.iter().any(
            |o| matches!(o, Output::Progress(Progress::Suspected { agent, .. }) if agent == "a0")
        ),
        "{out:?}"
    );
    out.clear();
    p.step(
        at_ms + 5,
        Input::Replied {
            ask: first_ask,
            reply: Ok(Reply::Interpretation(interpretation("abs", &[(1, 1)]))),
            usage: Usage::default(),
        },
        &mut out,
    );
    let grown: Vec<u64> = out
        .iter()
        .filter_map(|o| match o {
            Output::Progress(Progress::Trusted { agent, timeout_ms }) if agent == "a0" => {
                Some(*timeout_ms)
            }
            _ => None,
        })
        .collect();
    // FD-2: additive, not doubling.
    assert_eq!(grown, vec![TIMEOUT_MS + 250]);
}

#[test]
fn pl_4_a_timeout_never_grows_past_the_cap() {
    let mut cfg = PipelineConfig::new(agents(1), 0, 1);
    cfg.timeout_increment_ms = 5_000;
    cfg.timeout_max_ms = TIMEOUT_MS + 1_000;
    let mut p = Pipeline::new(cfg, Prompt::new("p")).unwrap();
    let mut out = Vec::new();
    p.step(0, Input::Start, &mut out);
    let ask = first_ask(&out);
    let (at_ms, _) = fire_next_deadline(&mut p);
    out.clear();
    p.step(
        at_ms + 1,
        Input::Replied {
            ask,
            reply: Err(ReplyFault::Invalid("late and bad".into())),
            usage: Usage::default(),
        },
        &mut out,
    );
    assert!(out.iter().any(|o| matches!(
        o,
        Output::Progress(Progress::Trusted { timeout_ms, .. }) if *timeout_ms == TIMEOUT_MS + 1_000
    )), "{out:?}");
}

#[test]
fn pl_6_a_fault_budget_the_rule_cannot_honour_is_refused() {
    let cfg = PipelineConfig::new(agents(4), 2, 0);
    let e = Pipeline::new(cfg, Prompt::new("p")).unwrap_err();
    assert!(e.to_string().contains("at least 5"), "{e}");
}

#[test]
fn pl_14_runs_are_reproducible() {
    let plays = vec![
        Plays::Reads("abs_but_minus_7", "abs_but_minus_7"),
        Plays::Reads("abs", "abs"),
        Plays::Reads("abs", "abs"),
        Plays::Reads("abs", "abs"),
    ];
    let mut a = Driver::new(4, 1, plays.clone());
    a.run();
    let mut b = Driver::new(4, 1, plays);
    b.run();
    assert_eq!(a.asks, b.asks);
    assert_eq!(a.persisted, b.persisted);
    assert_eq!(a.built().probes, b.built().probes);
}

#[test]
fn pl_3_heartbeat_moves_the_deadline_and_the_old_one_suspects_nobody_alive() {
    let cfg = PipelineConfig::new(agents(3), 1, 1);
    let mut p = Pipeline::new(cfg, Prompt::new("p")).unwrap();
    let mut out = Vec::new();
    p.step(0, Input::Start, &mut out);
    let ask = first_ask(&out);
    out.clear();
    p.step(600, Input::Heartbeat { ask }, &mut out);
    assert!(out.is_empty(), "{out:?}");
    // The first wave is a0 and a1; a1 was silent since 0, a0 since 600.
    let timer = Timer::AskDeadline(AgentId(0));
    // The original deadline passes: a0 is alive, only a1 is suspected (and a2 asked).
    p.step(TIMEOUT_MS + 1, Input::TimerFired { timer }, &mut out);
    let suspected: Vec<&str> = out
        .iter()
        .filter_map(|o| match o {
            Output::Progress(Progress::Suspected { agent, .. }) => Some(agent.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(suspected, vec!["a1"], "{out:?}");
    assert_eq!(
        p.poll_timeout(),
        Some(Deadline {
            at_ms: 600 + TIMEOUT_MS + 1,
            timer
        }),
        "a0's deadline moved; a2 asked at {} is due later",
        TIMEOUT_MS + 1
    );
    out.clear();
    // The moved deadline passes with no reply: suspected.
    p.step(600 + TIMEOUT_MS + 1, Input::TimerFired { timer }, &mut out);
    assert!(out.iter().any(
        |o| matches!(o, Output::Progress(Progress::Suspected { agent, .. }) if agent == "a0")
    ));
}

#[test]
fn pl_13_token_budget_stops_the_build_cleanly() {
    let mut cfg = PipelineConfig::new(agents(3), 1, 1);
    cfg.tokens_max = Some(1500);
    let mut p = Pipeline::new(cfg, Prompt::new("p")).unwrap();
    let mut out = Vec::new();
    p.step(0, Input::Start, &mut out);
    let asks: Vec<AskId> = out
        .iter()
        .filter_map(|o| match o {
            Output::Ask { ask, .. } => Some(*ask),
            _ => None,
        })
        .collect();
    let usage = Usage {
        input_tokens: 500,
        output_tokens: 300,
    };
    out.clear();
    p.step(
        1,
        Input::Replied {
            ask: asks[0],
            reply: Ok(Reply::Interpretation(interpretation("abs", &[(1, 1)]))),
            usage,
        },
        &mut out,
    );
    assert!(!p.is_done());
    out.clear();
    p.step(
        2,
        Input::Replied {
            ask: asks[1],
            reply: Ok(Reply::Interpretation(interpretation("abs", &[(1, 1)]))),
            usage,
        },
        &mut out,
    );
    assert!(p.is_done());
    match out.last() {
        Some(Output::Finish(f)) => match f.as_ref() {
            Finish::Failed {
                stage,
                reason,
                agents,
            } => {
                assert_eq!(stage, "budget");
                assert!(reason.contains("1600"), "{reason}");
                assert_eq!(agents[0].usage, usage);
            }
            other => panic!("{other:?}"),
        },
        other => panic!("{other:?}"),
    }
}

#[test]
fn pl_13_absurd_token_counts_from_servers_saturate_instead_of_overflowing() {
    // Issue 11: usage is what a server says; two agents at u64::MAX overflowed the sum.
    for tokens_max in [None, Some(u64::MAX)] {
        let mut cfg = PipelineConfig::new(agents(3), 1, 1);
        cfg.tokens_max = tokens_max;
        let mut p = Pipeline::new(cfg, Prompt::new("p")).unwrap();
        let mut out = Vec::new();
        p.step(0, Input::Start, &mut out);
        let asks: Vec<AskId> = out
            .iter()
            .filter_map(|o| match o {
                Output::Ask { ask, .. } => Some(*ask),
                _ => None,
            })
            .collect();
        assert_eq!(asks.len(), 2);
        let usage = Usage {
            input_tokens: u64::MAX,
            output_tokens: u64::MAX,
        };
        for (t, ask) in asks.iter().enumerate() {
            out.clear();
            p.step(
                t as u64 + 1,
                Input::Replied {
                    ask: *ask,
                    reply: Ok(Reply::Interpretation(interpretation("abs", &[(1, 1)]))),
                    usage,
                },
                &mut out,
            );
        }
        assert!(!p.is_done(), "no budget is exceeded: {tokens_max:?}");
    }
}

/// The pipeline driven by an adversarial scheduler: legitimate inputs delivered in random
/// order, interleaved with stray ones — replies from agents never asked, duplicated replies
/// and check reports, answers when no question is pending, timers for finished asks, a second
/// `Start`. After every step: at most one `Finish`, and a finished machine has said so; no ask
/// to a suspected agent; the pool within its cap; every clarified example kept.
mod stray {
    use super::*;
    use proptest::prelude::*;

    #[derive(Clone, Debug)]
    enum Act {
        /// Deliver the pending input at this index (modulo their number).
        Deliver(usize),
        /// Fire the earliest timer.
        Tick,
        StrayReply(u64, bool),
        DuplicateReply(usize),
        StrayHeartbeat(u64),
        StrayCheck(u64, usize),
        DuplicateCheck(usize),
        StrayTimer(u64),
        Answer(u8),
        Start,
    }

    fn act() -> impl Strategy<Value = Act> {
        prop_oneof![
            6 => any::<usize>().prop_map(Act::Deliver),
            2 => Just(Act::Tick),
            1 => (0u64..60, any::<bool>()).prop_map(|(a, ok)| Act::StrayReply(a, ok)),
            1 => any::<usize>().prop_map(Act::DuplicateReply),
            1 => (0u64..60).prop_map(Act::StrayHeartbeat),
            1 => (0u64..60, 0usize..6).prop_map(|(c, n)| Act::StrayCheck(c, n)),
            1 => any::<usize>().prop_map(Act::DuplicateCheck),
            1 => (0u64..60).prop_map(Act::StrayTimer),
            1 => (0u8..4).prop_map(Act::Answer),
            1 => Just(Act::Start),
        ]
    }

    fn play() -> impl Strategy<Value = Plays> {
        prop_oneof![
            3 => Just(Plays::Reads("abs", "abs")),
            1 => Just(Plays::Reads("neg", "neg")),
            1 => Just(Plays::Reads("abs_but_minus_7", "abs_but_minus_7")),
            1 => Just(Plays::Reads("abs", "syntax error")),
            1 => Just(Plays::Silent),
            1 => Just(Plays::Invalid),
        ]
    }

    struct Watch {
        finishes: usize,
        suspected: std::collections::BTreeSet<String>,
        clarified: Vec<ContractExample>,
        names: Vec<String>,
    }

    impl Watch {
        fn see(&mut self, p: &Pipeline, out: &[Output]) -> Result<(), TestCaseError> {
            for o in out {
                match o {
                    Output::Progress(Progress::Suspected { agent, .. }) => {
                        self.suspected.insert(agent.clone());
                    }
                    Output::Progress(Progress::Trusted { agent, .. }) => {
                        self.suspected.remove(agent);
                    }
                    Output::Progress(Progress::Classes { probes, .. }) => {
                        prop_assert!(*probes <= p.pool_max(), "pool of {probes}");
                    }
                    Output::Ask { agent, request, .. } => {
                        let name = &self.names[agent.0 as usize];
                        prop_assert!(!self.suspected.contains(name), "asked suspected {name}");
                        let kept: Vec<ContractExample> = request
                            .prompt
                            .clarifications
                            .iter()
                            .flat_map(|c| c.examples.clone())
                            .collect();
                        prop_assert_eq!(&kept, &self.clarified);
                    }
                    Output::Persist(d) => {
                        if let Decision::Clarification { clarification, .. } = d.as_ref() {
                            self.clarified.extend(clarification.examples.clone());
                        }
                    }
                    Output::Finish(f) => {
                        self.finishes += 1;
                        if let Finish::Built(b) = f.as_ref() {
                            for e in &self.clarified {
                                prop_assert!(b.spec.contract.contains(e), "dropped {e:?}");
                            }
                        }
                    }
                    _ => {}
                }
            }
            prop_assert!(self.finishes <= 1, "finished twice");
            prop_assert_eq!(p.is_done(), self.finishes == 1, "done without a Finish");
            Ok(())
        }
    }

    fn bogus_report(n: usize) -> CheckReport {
        CheckReport {
            load_error: None,
            interface_errors: vec![],
            outcomes: (0..n).map(|k| Outcome::Value(k.to_string())).collect(),
            met: vec![Some(true); n],
            ..Default::default()
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        #[test]
        fn pl_11_stray_inputs_are_counted_and_ignored_and_invariants_hold(
            (n, m) in (3usize..=6).prop_flat_map(|n| (Just(n), 0..=(n - 1) / 2)),
            plays in proptest::collection::vec(play(), 6),
            acts in proptest::collection::vec(act(), 1..300),
        ) {
            let cfg = PipelineConfig::new(agents(n), m, 3);
            let mut p = Pipeline::new(cfg, Prompt::new("write f")).unwrap();
            let mut script = Script {
                plays,
                after_clarification: BTreeMap::new(),
                fixes_on_repair: BTreeMap::new(),
                repairs: vec![],
                distinguish: vec![],
                asks: vec![],
                persisted: vec![],
                progress: vec![],
            };
            let mut watch = Watch {
                finishes: 0,
                suspected: Default::default(),
                clarified: vec![],
                names: agents(n).into_iter().map(|a| a.name).collect(),
            };
            let mut pending: Vec<Input> = vec![];
            let mut delivered_replies: Vec<Input> = vec![];
            let mut delivered_checks: Vec<Input> = vec![];
            let mut now = 0u64;
            let mut out = Vec::new();
            p.step(now, Input::Start, &mut out);
            for a in acts {
                watch.see(&p, &out)?;
                for o in out.drain(..) {
                    match o {
                        Output::Ask { ask, agent, request } => {
                            if let Ok(Some((reply, usage))) = script.reply(agent, &request) {
                                pending.push(Input::Replied { ask, reply, usage });
                            }
                        }
                        Output::RunCheck { check, request } => pending.push(Input::CheckFinished {
                            check,
                            report: evaluate(&request),
                        }),
                        _ => {}
                    }
                }
                let input = match a {
                    Act::Deliver(i) if !pending.is_empty() => {
                        let input = pending.remove(i % pending.len());
                        match &input {
                            Input::Replied { .. } => delivered_replies.push(input.clone()),
                            Input::CheckFinished { .. } => delivered_checks.push(input.clone()),
                            _ => {}
                        }
                        input
                    }
                    Act::Deliver(_) | Act::Tick => {
                        let Some(deadline) = p.poll_timeout() else {
                            continue;
                        };
                        now = now.max(deadline.at_ms);
                        Input::TimerFired { timer: deadline.timer }
                    }
                    Act::StrayReply(ask, ok) => Input::Replied {
                        ask: AskId(ask),
                        reply: if ok {
                            Ok(Reply::Implementation("abs".into()))
                        } else {
                            Err(ReplyFault::Crashed("gone".into()))
                        },
                        usage: Usage::default(),
                    },
                    Act::DuplicateReply(i) if !delivered_replies.is_empty() => {
                        delivered_replies[i % delivered_replies.len()].clone()
                    }
                    Act::DuplicateCheck(i) if !delivered_checks.is_empty() => {
                        delivered_checks[i % delivered_checks.len()].clone()
                    }
                    Act::DuplicateReply(_) | Act::DuplicateCheck(_) => continue,
                    Act::StrayHeartbeat(ask) => Input::Heartbeat { ask: AskId(ask) },
                    Act::StrayCheck(check, k) => Input::CheckFinished {
                        check: CheckId(check),
                        report: bogus_report(k),
                    },
                    Act::StrayTimer(t) => Input::TimerFired {
                        timer: Timer::AskDeadline(AgentId(t as u32 % 8)),
                    },
                    Act::Answer(k) => Input::UserAnswered {
                        answer: ["A", "B", "reading a", "whatever you think"][k as usize].into(),
                    },
                    Act::Start => Input::Start,
                };
                p.step(now, input, &mut out);
            }
            watch.see(&p, &out)?;
        }
    }
}

#[test]
fn pl_11_an_answer_with_no_question_is_counted_and_ignored() {
    let cfg = PipelineConfig::new(agents(3), 1, 1);
    let mut p = Pipeline::new(cfg, Prompt::new("p")).unwrap();
    let mut out = Vec::new();
    p.step(0, Input::Start, &mut out);
    out.clear();
    p.step(1, Input::UserAnswered { answer: "B".into() }, &mut out);
    assert!(out.is_empty(), "{out:?}");
    assert!(!p.is_done(), "a stray answer does not end the build");
    assert_eq!(p.stray().answers, 1);
    p.step(2, Input::Start, &mut out);
    p.step(3, Input::Heartbeat { ask: AskId(99) }, &mut out);
    assert_eq!(p.stray().total(), 3);
    assert!(out.is_empty());
}

#[test]
fn pl_9_the_decided_contract_keeps_every_clarified_example_under_its_cap() {
    // 5 agents, m = 1, readings split 3–2; after the answer every agent reads "abs" with 64
    // contract examples of its own: 320 examples, more than the decided contract holds.
    // The answer is read again (PL-28 off: it would decide the chosen class at once).
    let mut d = Driver::with_config(5, 1, split_3_2(), |c| c.answer_decides = false);
    d.run();
    assert!(d.question.is_some());
    for (a, base) in [(0, 100), (1, 200), (2, 300), (3, 400), (4, 500)] {
        d.w.plays[a] = Plays::ReadsWide("abs", base);
    }
    d.v.push(Input::UserAnswered { answer: "A".into() });
    d.run();
    let b = d.built();
    let clarified: Vec<&ContractExample> = b
        .prompt
        .clarifications
        .iter()
        .flat_map(|c| c.examples.iter())
        .collect();
    assert!(!clarified.is_empty());
    assert_eq!(b.spec.contract.len(), 128, "capped");
    for e in clarified {
        assert!(b.spec.contract.contains(e), "dropped {e:?}");
    }
}

#[test]
fn pl_12_only_a_program_that_passes_integration_is_delivered() {
    /// The script's world, but the assembled program (no reference module in it) fails.
    struct BrokenAssembly(Script);
    impl World for BrokenAssembly {
        type Error = std::convert::Infallible;
        fn reply(
            &mut self,
            agent: AgentId,
            req: &Request,
        ) -> Result<Option<AgentReply>, Self::Error> {
            self.0.reply(agent, req)
        }
        fn check(&mut self, request: &CheckRequest) -> Result<CheckReport, Self::Error> {
            let mut report = evaluate(request);
            if !request.program.modules.contains_key(REFERENCE_MODULE) {
                report.load_error = Some("ImportError: circular import".into());
            }
            Ok(report)
        }
        fn answer(&mut self, q: &Question) -> Result<Option<String>, Self::Error> {
            self.0.answer(q)
        }
        fn observe(&mut self, output: &Output) {
            self.0.observe(output)
        }
    }
    let d = Driver::new(3, 1, vec![Plays::Reads("abs", "abs"); 3]);
    let (mut v, w) = (d.v, d.w);
    let mut world = BrokenAssembly(w);
    let Ok(RunEnd::Finished(f)) = v.run(&mut world) else {
        panic!("not finished")
    };
    match *f {
        Finish::Failed { stage, reason, .. } => {
            assert_eq!(stage, "integrate");
            assert!(reason.contains("circular import"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    assert!(
        world
            .0
            .persisted
            .contains(&"component-accepted".to_string())
    );
    assert!(
        !world
            .0
            .persisted
            .contains(&"integration-passed".to_string())
    );
}

#[test]
fn pl_2_a_component_named_like_synods_files_or_the_standard_library_is_the_agents_fault() {
    // Issue 11: a component `test_contract` was overwritten by the generated tests.
    for (module, why) in [
        ("test_contract", "contract tests synod writes"),
        ("Test_Contract", "contract tests synod writes"),
        ("synod_reference", "synod's own modules"),
        ("synod_audit", "synod's own modules"),
        ("harness", "synod's own modules"),
        ("json", "standard-library module"),
        ("__init__", "meaning of its own"),
    ] {
        let mut d = Driver::new(
            3,
            1,
            vec![
                Plays::ReadsAsModule("abs", module),
                Plays::Reads("abs", "abs"),
                Plays::Reads("abs", "abs"),
            ],
        );
        d.run();
        assert_eq!(d.interpret_asks(), vec![0, 1, 2], "{module}");
        let b = d.built();
        assert_eq!(b.class, vec![AgentId(1), AgentId(2)], "{module}");
        let fault = &b.agents[0].faults[0];
        assert_eq!(fault.kind, FaultKind::InvalidReply, "{module}");
        assert!(
            fault.detail.contains(module) && fault.detail.contains(why),
            "{module}: {}",
            fault.detail
        );
        assert!(b.spec.components.iter().all(|c| c.name == "m"));
    }
    let mut i = interpretation("abs", &[(-4, 4)]);
    i.spec.components[0].name = "solution".into();
    assert_eq!(validate_interpretation(&i), Ok(()));
}

#[test]
fn pl_2_qualified_calls_name_the_same_function_and_unknown_ones_are_rejected() {
    let arities: BTreeMap<String, (usize, usize)> = [("f".to_string(), (1, 1))].into();
    let mut i = interpretation("abs", &[(-4, 4)]);
    i.spec.contract[0].call.function = "m.f".into();
    i.probes[0].function = "m.f".into();
    resolve_qualified_names(&mut i);
    assert_eq!(i.spec.contract[0].call.function, "f");
    assert_eq!(i.probes[0].function, "f");
    assert_eq!(validate_interpretation(&i), Ok(()));
    assert!(drop_unusable_calls(&mut i, &arities).is_empty());
    for wrong in ["solution.f", "m.g", "m.f.x", ".f"] {
        let mut i = interpretation("abs", &[(-4, 4)]);
        i.spec.contract[0].call.function = wrong.into();
        resolve_qualified_names(&mut i);
        let before = i.spec.contract.len();
        let dropped = drop_unusable_calls(&mut i, &arities);
        assert_eq!(i.spec.contract.len(), before - 1, "{wrong}");
        assert!(
            dropped[0].contains("calls a function the reading does not define"),
            "{wrong}: {dropped:?}"
        );
    }
    // A call with the wrong number of arguments is rejected too; defaults widen the range.
    let mut i = interpretation("abs", &[(-4, 4)]);
    i.probes[0].args.push(Value::Int(1));
    let dropped = drop_unusable_calls(&mut i, &arities);
    assert!(
        dropped[0].contains("passes 2 argument(s); f takes 1"),
        "{dropped:?}"
    );
    let mut i = interpretation("abs", &[(-4, 4)]);
    i.probes[0].args.push(Value::Int(1));
    let wide: BTreeMap<String, (usize, usize)> = [("f".to_string(), (1, 2))].into();
    assert!(drop_unusable_calls(&mut i, &wide).is_empty());
}

/// PL-27: a quarter of real Qwen replies on HumanEvalComm copied the prompt's stub, signature
/// and docstring, and wrote no body. Such a reference loads and "returns" None everywhere; it is
/// no reading, so it is its agent's fault and the next agent is asked.
#[test]
fn pl_27_a_reference_that_repeats_the_prompts_stub_is_no_reading() {
    let mut d = Driver::new(
        4,
        1,
        vec![
            Plays::FromCode("def f(x):\n    \"\"\"Doc.\"\"\"\n", None),
            Plays::FromCode("abs", None),
            Plays::FromCode("abs", None),
            Plays::FromCode("abs", None),
        ],
    );
    d.run();
    let b = d.built();
    assert_eq!(b.class, vec![AgentId(1), AgentId(2), AgentId(3)]);
    let f = &b.agents[0].faults[0];
    assert_eq!(
        (f.stage, f.kind),
        (FaultStage::Interpret, FaultKind::InvalidReply)
    );
    assert!(f.detail.contains("f() has no body"), "{}", f.detail);
}

#[test]
fn pl_15_a_reading_written_as_code_has_the_interface_its_code_defines() {
    let mut d = Driver::new(
        4,
        1,
        vec![
            Plays::FromCode("syntax error", None),
            Plays::FromCode("abs", None),
            Plays::FromCode("abs", Some(4)),
            Plays::FromCode("abs", None),
        ],
    );
    d.run();
    let b = d.built();
    // The interface came from the code, and the module is `solution` (neither the reply nor
    // the prompt named one).
    assert_eq!(b.spec.components[0].name, DEFAULT_MODULE);
    assert_eq!(
        b.spec.components[0].functions,
        vec![FunctionSig {
            name: "f".into(),
            params: vec!["x".into()],
            doc: String::new()
        }]
    );
    assert_eq!(b.class, vec![AgentId(1), AgentId(2), AgentId(3)]);
    let f = &b.agents[0].faults[0];
    assert_eq!(
        (f.stage, f.kind),
        (FaultStage::Interpret, FaultKind::DoesNotLoad)
    );
    // The prompt's module name wins over the default.
    let mut d = Driver::with_prompt(
        3,
        1,
        vec![Plays::FromCode("abs", None); 3],
        "Write a module named `calc` with `f(x)`.",
    );
    d.run();
    assert_eq!(d.built().spec.components[0].name, "calc");
}

#[test]
fn pl_16_the_prompts_names_and_literal_examples_are_checks() {
    let mut d = Driver::with_prompt(
        5,
        2,
        vec![
            Plays::FromCode("neg", None),
            Plays::FromCode("no_f", None),
            Plays::FromCode("abs", None),
            Plays::FromCode("abs", None),
            Plays::FromCode("abs", None),
        ],
        "Write `f(x)`, the magnitude of x.\nassert f(4) == 4",
    );
    d.run();
    let b = d.built();
    assert_eq!(b.class, vec![AgentId(2), AgentId(3), AgentId(4)]);
    let neg = &b.agents[0].faults[0];
    assert_eq!(neg.kind, FaultKind::BreaksContract, "{neg:?}");
    assert!(
        neg.detail.contains("f(4) should return 4"),
        "{}",
        neg.detail
    );
    let no_f = &b.agents[1].faults[0];
    assert_eq!(no_f.kind, FaultKind::InterfaceMismatch, "{no_f:?}");
    assert!(
        no_f.detail.contains("does not define f(x)"),
        "{}",
        no_f.detail
    );
    // The prompt's example is in the decided contract as it was written.
    assert_eq!(
        b.spec.contract[0],
        ContractExample {
            call: call(4),
            expect: Expectation::Returns(Value::Int(4))
        }
    );
}

#[test]
fn pl_17_what_an_agent_says_its_examples_return_is_evidence_not_a_vote() {
    let mut d = Driver::new(
        3,
        1,
        vec![
            // Right code, wrong arithmetic in the stated example (as real models do).
            Plays::FromCode("abs", Some(3)),
            Plays::FromCode("abs", Some(4)),
            Plays::FromCode("abs", None),
        ],
    );
    d.run();
    let b = d.built();
    assert_eq!(b.class, vec![AgentId(0), AgentId(1)]);
    assert!(
        b.agents.iter().all(|a| a.faults.is_empty()),
        "{:?}",
        b.agents
    );
    assert_eq!(
        b.agents[0].self_consistency,
        SelfConsistency { stated: 1, met: 0 }
    );
    assert_eq!(
        b.agents[1].self_consistency,
        SelfConsistency { stated: 1, met: 1 }
    );
    // The contract is what the decided reference does on the class's example calls.
    assert!(b.spec.contract.contains(&ContractExample {
        call: call(-4),
        expect: Expectation::Same(Outcome::Value("4".into()))
    }));
    assert!(
        !b.spec
            .contract
            .iter()
            .any(|c| c.expect == Expectation::Returns(Value::Int(3)))
    );
}

#[test]
fn pl_18_an_agent_whose_reading_was_faulted_is_asked_once_more_when_nobody_else_is_left() {
    let mut d = Driver::new(
        3,
        1,
        vec![
            Plays::InvalidOnce("abs"),
            Plays::Reads("abs", "abs"),
            Plays::Invalid,
        ],
    );
    d.run();
    let b = d.built();
    assert_eq!(b.class, vec![AgentId(0), AgentId(1)]);
    let interpret: Vec<(u32, String)> = d
        .asks
        .iter()
        .filter(|(_, k)| k.starts_with("interpret"))
        .map(|(a, k)| (a.0, k.clone()))
        .collect();
    assert_eq!(
        interpret,
        vec![
            (0, "interpret".to_string()),
            (1, "interpret".to_string()),
            (2, "interpret".to_string()),
            // Nobody fresh is left: the first faulted agent draws a fresh sample.
            (0, "interpret.s1".to_string()),
        ]
    );
    // The budget is one fresh sample per agent and round: always-invalid agents then fail.
    let mut d = Driver::new(
        3,
        1,
        vec![Plays::Invalid, Plays::Reads("abs", "abs"), Plays::Invalid],
    );
    d.run();
    let first_round: Vec<(u32, &str)> =
        d.asks[..5].iter().map(|(a, k)| (a.0, k.as_str())).collect();
    assert_eq!(
        first_round,
        vec![
            (0, "interpret"),
            (1, "interpret"),
            (2, "interpret"),
            (0, "interpret.s1"),
            (2, "interpret.s1"),
        ]
    );
    // Then the round's resample (sample 1: the retries' requests again), with its own retries.
    assert_eq!(d.asks[5].1, "interpret.s1");
    assert!(
        matches!(d.finish, Some(Finish::Failed { .. })),
        "{:?}",
        d.finish
    );
}

#[test]
fn pl_19_programs_that_differ_only_outside_the_examples_domain_are_one_reading() {
    // Every example is positive; clamp and abs differ only on negative x, which the pool's
    // variants reach. n = 3, m = 1: the first wave of two decides, nobody is outvoted.
    let mut d = Driver::new(
        3,
        1,
        vec![
            Plays::ReadsPositive("abs"),
            Plays::ReadsPositive("clamp"),
            Plays::ReadsPositive("abs"),
        ],
    );
    d.run();
    assert_eq!(d.interpret_asks(), vec![0, 1]);
    let b = d.built();
    assert_eq!(b.class, vec![AgentId(0), AgentId(1)]);
    assert!(b.dissent.is_empty());
    assert!(b.agents.iter().all(|a| a.faults.is_empty()));
    // The build is held to the inputs in the domain only; the difference is reported.
    assert!(!b.probes.is_empty());
    assert!(
        b.probes
            .iter()
            .all(|c| matches!(c.args[0], Value::Int(x) if x > 0))
    );
    let o = b.outside_domain.as_ref().expect("reported");
    assert_eq!(o.groups, vec![vec![AgentId(0)], vec![AgentId(1)]]);
    let first = &o.differing[0];
    assert!(
        matches!(first.call.args[0], Value::Int(x) if x < 0),
        "{}",
        first.call
    );
    assert_ne!(first.outcomes[0], first.outcomes[1]);
    assert!(d.progress.iter().any(
        |p| matches!(p, Progress::Note { note, .. } if note.contains("outside the examples' domain"))
    ));
    // An example at a negative x widens the domain: the same readings split and are outvoted.
    let mut d = Driver::new(
        3,
        1,
        vec![
            Plays::Reads("abs", "abs"),
            Plays::ReadsPositive("clamp"),
            Plays::ReadsPositive("abs"),
        ],
    );
    d.run();
    let b = d.built();
    assert_eq!(b.class, vec![AgentId(0), AgentId(2)]);
    assert_eq!(b.dissent[0].agents, vec![AgentId(1)]);
}

#[test]
fn pl_19_a_difference_outside_the_domain_that_splits_two_large_groups_is_asked() {
    // n = 5, m = 1: the first wave of four agrees on the domain but splits 2 | 2 outside it.
    let mut d = Driver::new(
        5,
        1,
        vec![
            Plays::ReadsPositive("abs"),
            Plays::ReadsPositive("clamp"),
            Plays::ReadsPositive("abs"),
            Plays::ReadsPositive("clamp"),
            Plays::ReadsPositive("abs"),
        ],
    );
    d.run();
    let q = d.question.clone().expect("a question");
    assert!(q.outside_domain);
    assert_eq!(q.readings.len(), 2);
    assert!(
        q.differing
            .iter()
            .all(|p| matches!(p.call.args[0], Value::Int(x) if x < 0))
    );
    assert!(q.to_string().contains("differ outside that domain"));
}

/// Four agents that never agree three at a time in one sample, while abs gathers readings.
fn drifting() -> Vec<Plays> {
    vec![
        Plays::BySample(&["abs"]),
        Plays::BySample(&["neg"]),
        Plays::BySample(&["clamp", "abs"]),
        Plays::BySample(&["abs", "clamp"]),
    ]
}

#[test]
fn pl_20_a_class_that_leads_by_k_readings_over_the_samples_is_decided() {
    // The prompt's example (all three readings meet it) keeps PL-25 out: the split is noise
    // to resample, not an open prompt to ask about.
    let mut d = Driver::build(4, 1, drifting(), "write f; `f(0) == 0`", |_| {});
    d.run();
    let b = d.built();
    // Sample 0: abs 2, neg 1, clamp 1 (not yet). Sample 1's first wave: abs (a0, a2), neg:
    // every sample counted, abs holds 4 readings of 3 agents, neg 2, clamp 1.
    assert_eq!(d.interpret_asks(), vec![0, 1, 2, 3, 0, 1, 2]);
    assert_eq!(b.class, vec![AgentId(0), AgentId(2), AgentId(3)]);
    assert_eq!(b.dissent.len(), 1);
    assert_eq!(b.dissent[0].agents, vec![AgentId(1)]);
    let a = b.ahead_by.as_ref().expect("decided by the widened rule");
    assert_eq!((a.k, a.readings, a.agents, a.of, a.calls), (2, 4, 3, 7, 7));
    assert!(d.persisted.iter().any(|k| k == "resample"));
}

#[test]
fn pl_20_without_a_lead_the_round_stops_at_its_call_budget() {
    // k = 0: the widened rule is off, the same agents resample until the budget is spent.
    let mut d = Driver::with_config(4, 1, drifting(), |c| {
        c.ahead_by = 0;
        c.resamples_max = 100;
        c.ask_open = false;
    });
    d.run();
    let asks = d.interpret_asks().len();
    match &d.finish {
        Some(Finish::Failed { stage, reason, .. }) => {
            assert_eq!(stage, "agree");
            assert!(reason.contains("the round's budget"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(asks, 12, "3n interpret calls, no more");
    // Three readings that each gather one reading per sample: no lead ever, so no decision.
    let mut d = Driver::with_config(
        3,
        1,
        vec![
            Plays::BySample(&["abs"]),
            Plays::BySample(&["neg"]),
            Plays::BySample(&["clamp"]),
        ],
        |c| {
            c.resamples_max = 100;
            c.ask_open = false;
        },
    );
    d.run();
    match &d.finish {
        // The failure names the readings and an input where they differ.
        Some(Finish::Failed { reason, .. }) => assert!(
            reason.contains("readings [a0] | [a1] | [a2], e.g. f(") && reason.contains(" | "),
            "{reason}"
        ),
        other => panic!("{other:?}"),
    }
}

/// PL-25: the prompt gives no example, every agent was asked and the readings split 2-1-1.
/// Nothing tells a guess from an understanding, so the user is asked, with every reading,
/// after n calls, instead of resampling to a statistical lead (PL-20 decides abs after 7).
#[test]
fn pl_25_an_open_prompt_that_splits_is_a_question_not_a_statistical_lead() {
    let mut d = Driver::new(4, 1, drifting());
    d.run();
    let q = d.question.clone().expect("a question");
    assert!(
        q.open && !q.outside_domain && q.contradicts.is_none(),
        "{q:?}"
    );
    assert_eq!(d.interpret_asks(), vec![0, 1, 2, 3], "no resample");
    let held: Vec<Vec<String>> = q.readings.iter().map(|r| r.agents.clone()).collect();
    assert_eq!(held, vec![vec!["a0", "a3"], vec!["a1"], vec!["a2"]]);
    assert!(
        q.to_string().starts_with("The prompt gives no example"),
        "{q}"
    );
    assert!(!q.differing.is_empty());
    assert!(!d.persisted.iter().any(|k| k == "resample"));
    // The user means reading A; the answer's examples pin the next round, which decides.
    for a in [1, 2] {
        d.w.after_clarification.insert(a, "abs");
    }
    d.v.push(Input::UserAnswered { answer: "A".into() });
    d.run();
    let b = d.built();
    assert_eq!(b.prompt.clarifications.len(), 1);
    assert!(b.ahead_by.is_none(), "decided by the fault budget");
    // With the rule off, the same agents are resampled and abs is decided by its lead.
    let mut d = Driver::with_config(4, 1, drifting(), |c| c.ask_open = false);
    d.run();
    assert!(d.built().ahead_by.is_some());
}

/// PL-25 needs a split: an open prompt whose readings agree is built, and one whose only valid
/// readings form one class is resampled as before.
#[test]
fn pl_25_an_open_prompt_whose_readings_agree_is_built() {
    let mut d = Driver::new(
        4,
        1,
        vec![
            Plays::Reads("abs", "abs"),
            Plays::Reads("abs", "abs"),
            Plays::Reads("abs", "abs"),
            Plays::Reads("neg", "neg"),
        ],
    );
    d.run();
    assert_eq!(d.built().class.len(), 3);
    assert!(d.question.is_none());
}

#[test]
fn pl_21_a_one_component_readings_reference_is_its_first_candidate() {
    // Every builder would write code that does not even load: no builder is asked.
    let mut d = Driver::new(
        3,
        1,
        vec![
            Plays::Reads("abs", "syntax error"),
            Plays::Reads("abs", "syntax error"),
            Plays::Reads("abs", "syntax error"),
        ],
    );
    d.run();
    let b = d.built();
    assert_eq!(b.components[0].agent, b.representative);
    assert_eq!(b.components[0].code, "abs");
    assert!(b.components[0].rejected.is_empty());
    assert!(
        d.asks.iter().all(|(_, k)| !k.starts_with("implement")),
        "{:?}",
        d.asks
    );
}

#[test]
fn pl_22_an_agents_distinguishing_input_splits_a_class_the_random_search_did_not() {
    let plays = || {
        vec![
            Plays::Reads("abs_but_big", "abs_but_big"),
            Plays::Reads("abs", "abs"),
            Plays::Reads("abs", "abs"),
            Plays::Reads("abs", "abs"),
        ]
    };
    // Off (the default): the wrong program hides in the class of three.
    let mut d = Driver::new(4, 1, plays());
    d.w.distinguish = vec![123_456, 5];
    d.run();
    assert_eq!(d.built().class, vec![AgentId(0), AgentId(1), AgentId(2)]);
    assert!(d.asks.iter().all(|(_, k)| !k.starts_with("distinguish")));
    // On: one distinguish call, f(123456) splits the class, the fourth agent makes it 3 to 1.
    let mut d = Driver::with_config(4, 1, plays(), |c| c.distinguish = true);
    d.w.distinguish = vec![123_456, 5];
    d.run();
    let b = d.built();
    assert_eq!(b.class, vec![AgentId(1), AgentId(2), AgentId(3)]);
    assert_eq!(b.dissent[0].agents, vec![AgentId(0)]);
    assert!(b.probes.contains(&call(123_456)));
    let asked: Vec<&str> = d.asks.iter().map(|(_, k)| k.as_str()).collect();
    assert_eq!(
        asked.iter().filter(|k| **k == "distinguish").count(),
        1,
        "{asked:?}"
    );
    // An agent that proposes nothing usable costs its call and changes nothing.
    let mut d = Driver::with_config(4, 1, plays(), |c| c.distinguish = true);
    d.run();
    assert_eq!(d.built().class, vec![AgentId(0), AgentId(1), AgentId(2)]);
    assert!(
        d.built()
            .agents
            .iter()
            .all(|a| a.faults.iter().all(|f| f.kind != FaultKind::InvalidReply))
    );
}

#[test]
fn pl_24_readings_that_break_the_prompts_own_example_alike_ask_whether_the_example_or_the_text_holds()
 {
    // The text asks for the negation, its example for the identity (HumanEvalComm's
    // "inconsistent" prompts): every agent reads the text, so every reading breaks the example.
    let mut d = Driver::with_prompt(
        4,
        1,
        vec![Plays::FromCode("neg", None); 4],
        "Write `f(x)`, the negation of x.\nassert f(4) == 4",
    );
    d.run();
    let q = d.question.clone().expect("a question, not a failure");
    let ex = q.contradicts.clone().expect("about the prompt's example");
    assert_eq!(ex.call, call(4));
    assert_eq!(q.readings[0].label, "A");
    assert!(q.readings[0].summary.contains("f(4) == 4"), "{q:?}");
    assert!(
        q.readings[1].agents.len() > 1,
        "more than m agents read the text: {q:?}"
    );
    assert_eq!(q.differing[0].outcomes[1], Outcome::Value("-4".into()));
    assert!(q.to_string().contains("contradicts itself"), "{q}");
    // The user says the text holds: the clarification replaces the example on f(4), and the
    // next round decides the negation.
    d.v.push(Input::UserAnswered { answer: "B".into() });
    d.run();
    let b = d.built();
    assert_eq!(b.class.len(), 3, "{:?}", b.agents);
    assert!(
        b.spec
            .contract
            .iter()
            .all(|c| c.expect != Expectation::Returns(Value::Int(4))),
        "the prompt's example no longer holds: {:?}",
        b.spec.contract
    );
}

#[test]
fn pl_24_a_reading_or_two_that_break_the_example_are_faults_not_a_question() {
    // One agent in four misreads: within the fault budget, no question.
    let mut d = Driver::with_prompt(
        4,
        1,
        vec![
            Plays::FromCode("neg", None),
            Plays::FromCode("abs", None),
            Plays::FromCode("abs", None),
            Plays::FromCode("abs", None),
        ],
        "Write `f(x)`, the magnitude of x.\nassert f(4) == 4",
    );
    d.run();
    assert!(d.question.is_none());
    assert_eq!(d.built().class.len(), 3);
}
