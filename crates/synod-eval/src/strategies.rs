//! The strategies compared, each run on the same agents' same replies.
//!
//! - `single`: the first agent's first answer.
//! - `majority-text`: the most frequent normalized source text among the n answers.
//! - `majority-behaviour`: the largest class of identical behaviour on the probe pool
//!   (AlphaCode / MBR-exec style).
//! - `codet`: dual execution agreement (CodeT): each agent's tests are its probes with its own
//!   program's outcomes; a solution's score is (solutions passing exactly the same tests) ×
//!   (tests it passes).
//! - `synod`: the full pipeline ([`synod_core::Pipeline`]) driven synchronously in virtual time.
//!
//! Ties go to the earliest agent, as in the agents file.

use crate::EvalError;
use crate::checks::CheckCache;
use crate::sim::{FaultKind, Plan, SimSpec, SimTask, tokens};
use crate::suite::Task;
use std::collections::BTreeMap;
use synod_core::pipeline::drive::{AgentReply, RunEnd, VirtualDriver, World};
use synod_core::pipeline::{
    AgentInfo, Finish, Knobs, Pipeline, PipelineConfig, Question, REFERENCE_MODULE, Reply,
    ReplyFault, Request, Role, Usage,
};
use synod_core::{
    AgentId, Call, CheckCall, CheckReport, CheckRequest, Expectation, Interpretation, Outcome,
    Program, Prompt,
};

/// The strategies, in report order.
pub const STRATEGIES: &[&str] = &[
    "single",
    "majority-text",
    "majority-behaviour",
    "codet",
    "synod",
];

/// A synod strategy's knobs ([`Knobs`]), read from its name: `synod` (the pipeline's
/// defaults), `synod-c8` (at most 8 interpret calls a round), `synod-k0` (the widened tally
/// off, PL-20), `synod-k3-c12`, `synod-s` (PL-22's distinguishing inputs on), `synod-r` (an
/// answer always read again: PL-28 off). Rows keep the
/// name, so one run can score several call budgets on the same replies (the budget curve in
/// docs/RESULTS.md). `None` when it is not a synod strategy.
pub fn synod_knobs(name: &str) -> Option<Knobs> {
    let rest = name.strip_prefix("synod")?;
    let mut k = Knobs::default();
    for part in rest.split('-').skip(1) {
        if part == "s" && !k.distinguish {
            k.distinguish = true;
            continue;
        }
        if part == "r" && !k.reread {
            k.reread = true;
            continue;
        }
        let (what, n) = part.split_at(1.min(part.len()));
        let n: usize = n.parse().ok().filter(|n| *n <= 10_000)?;
        match what {
            "k" if k.ahead_by.is_none() && n <= 64 => k.ahead_by = Some(n),
            "c" if k.interpret_calls_max.is_none() && n >= 1 => k.interpret_calls_max = Some(n),
            _ => return None,
        }
    }
    (rest.is_empty() || rest.starts_with('-')).then_some(k)
}

/// Whether `name` is a strategy the eval runs.
pub fn is_strategy(name: &str) -> bool {
    STRATEGIES.contains(&name) || synod_knobs(name).is_some()
}

/// How a task ended for a strategy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verdict {
    /// Delivered a program that passes every hidden test.
    Correct,
    /// Delivered a program that fails a hidden test.
    SilentlyWrong,
    /// Stopped with a question for the user that nobody answers.
    Asked,
    /// Delivered nothing.
    Abstained,
    /// The harness failed.
    Error,
}

impl Verdict {
    /// Its name in results.csv.
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Correct => "correct",
            Verdict::SilentlyWrong => "silently-wrong",
            Verdict::Asked => "asked",
            Verdict::Abstained => "abstained",
            Verdict::Error => "error",
        }
    }
}

/// A strategy's result on one task.
#[derive(Clone, Debug)]
pub struct StrategyResult {
    /// How it ended.
    pub verdict: Verdict,
    /// Agent calls.
    pub calls: u32,
    /// Of which, calls for readings (the decision).
    pub interpret_calls: u32,
    /// Tokens (estimated for simulated agents).
    pub tokens: u64,
    /// Questions put to the user.
    pub questions: u32,
    /// One line on why.
    pub detail: String,
}

/// One task in one grid cell: the agents' plans and everything the strategies share.
pub struct Cell<'a> {
    /// The task.
    pub task: &'a Task,
    /// The prompt fed.
    pub prompt: &'a str,
    /// The agent-visible task and its programs.
    pub sim: &'a SimTask<'a>,
    /// The agents.
    pub spec: &'a SimSpec,
    /// Each agent's plan the first time it is asked (sample 0).
    pub plans: Vec<Plan>,
    /// Each agent's plan when asked afresh: `resampled[s - 1]` for sample s (see
    /// [`crate::sim::plans_at`]). A sample with no entry repeats sample 0's plans.
    pub resampled: Vec<Vec<Plan>>,
    /// Resample budget of the pipeline ([`PipelineConfig::resamples_max`]).
    pub resamples: u32,
    /// The caches.
    pub cache: &'a CheckCache,
    /// Seed of the task (probe pool, differential inputs).
    pub task_seed: u64,
    /// Simulated user answers questions (HumanEvalComm).
    pub user: bool,
}

impl Cell<'_> {
    /// Agent `agent`'s plan in sample `sample`.
    pub fn plan_at(&self, agent: usize, sample: u32) -> Plan {
        match sample {
            0 => self.plans[agent],
            s => self
                .resampled
                .get(s as usize - 1)
                .and_then(|p| p.get(agent))
                .copied()
                .unwrap_or(self.plans[agent]),
        }
    }

    /// The per-call budget of this task's probe runs.
    fn call_ms(&self) -> u64 {
        crate::checks::call_budget_ms(self.sim.prepared.reference_ms)
    }

    /// The integer magnitude bound of this task's probe domain.
    fn int_max(&self) -> i64 {
        let p = self.sim.prepared;
        crate::checks::domain_int_max(p.example_args.iter().chain(p.example_returns.iter()))
    }

    fn task_key(&self) -> String {
        self.task.id.clone()
    }

    /// Is `src` (module `solution`) correct on the task's tests ([`Task::scoring_tests`])?
    fn judge(&self, src: &str) -> Result<Verdict, EvalError> {
        let ok = self.cache.hidden_verdict(
            &self.task_key(),
            &Program::single("solution", src),
            "solution",
            &self.task.setup,
            self.task.scoring_tests(),
        )?;
        Ok(if ok {
            Verdict::Correct
        } else {
            Verdict::SilentlyWrong
        })
    }

    /// The interpret answers of every agent (`None`: no program).
    fn answers(&self) -> Vec<Option<String>> {
        self.plans.iter().map(|p| self.sim.program(*p, 0)).collect()
    }

    fn call_tokens(&self, answer: Option<&String>) -> u64 {
        tokens(self.prompt.len() + 600) + tokens(answer.map_or(40, |a| a.len() + 400))
    }

    fn result_of(
        &self,
        chosen: Option<usize>,
        answers: &[Option<String>],
        calls: usize,
        why: &str,
    ) -> Result<StrategyResult, EvalError> {
        let tokens = answers
            .iter()
            .take(calls)
            .map(|a| self.call_tokens(a.as_ref()))
            .sum();
        let (verdict, detail) = match chosen.and_then(|i| answers[i].as_ref().map(|a| (i, a))) {
            Some((i, src)) => (self.judge(src)?, format!("{why}: agent {i}")),
            None => (Verdict::Abstained, format!("{why}: no program")),
        };
        Ok(StrategyResult {
            verdict,
            calls: calls as u32,
            interpret_calls: calls as u32,
            tokens,
            questions: 0,
            detail,
        })
    }

    /// The probe pool synod builds in its first round, and the request that checks a
    /// reading on it (the same request as the pipeline's, so they share cache entries).
    fn pool(&self) -> Vec<Call> {
        let spec = self.sim.spec("");
        let mut own: Vec<Call> = spec.contract.iter().map(|c| c.call.clone()).collect();
        own.extend(self.sim.probes.iter().cloned());
        synod_core::probes::pool(&own, self.task_seed, &Default::default())
    }

    fn behaviour(&self, src: &str, pool: &[Call]) -> Result<Option<Vec<Outcome>>, EvalError> {
        let spec = self.sim.spec("");
        let f = &spec.components[0].functions[0];
        let mut calls: Vec<CheckCall> = spec
            .contract
            .iter()
            .map(|c| CheckCall {
                call: c.call.clone(),
                expect: Some(c.expect.clone()),
            })
            .collect();
        let contract_len = calls.len();
        calls.extend(pool.iter().map(|c| CheckCall {
            call: c.clone(),
            expect: None,
        }));
        let request = CheckRequest {
            program: Program::single(REFERENCE_MODULE, src),
            function_modules: [(f.name.clone(), REFERENCE_MODULE.to_string())]
                .into_iter()
                .collect(),
            interface: vec![(REFERENCE_MODULE.to_string(), f.clone())],
            calls,
        };
        let r = self
            .cache
            .run_in_domain(&request, self.call_ms(), self.int_max())?;
        if r.load_error.is_some() || !r.interface_errors.is_empty() {
            return Ok(None);
        }
        Ok(Some(
            r.outcomes[contract_len.min(r.outcomes.len())..].to_vec(),
        ))
    }

    /// Runs one strategy.
    pub fn run(&self, strategy: &str) -> Result<StrategyResult, EvalError> {
        let answers = self.answers();
        let n = answers.len();
        match strategy {
            "single" => self.result_of(Some(0), &answers, 1, "first answer"),
            "majority-text" => {
                let mut counts: BTreeMap<String, (usize, usize)> = BTreeMap::new();
                for (i, a) in answers.iter().enumerate() {
                    if let Some(a) = a {
                        let e = counts.entry(normalize_source(a)).or_insert((0, i));
                        e.0 += 1;
                    }
                }
                let best = counts
                    .values()
                    .max_by(|x, y| x.0.cmp(&y.0).then(y.1.cmp(&x.1)))
                    .map(|x| x.1);
                self.result_of(best, &answers, n, "most frequent text")
            }
            "majority-behaviour" => {
                let pool = self.pool();
                let mut classes: BTreeMap<Vec<Outcome>, (usize, usize)> = BTreeMap::new();
                for (i, a) in answers.iter().enumerate() {
                    if let Some(a) = a
                        && let Some(b) = self.behaviour(a, &pool)?
                    {
                        classes.entry(b).or_insert((0, i)).0 += 1;
                    }
                }
                let best = classes
                    .values()
                    .max_by(|x, y| x.0.cmp(&y.0).then(y.1.cmp(&x.1)))
                    .map(|x| x.1);
                self.result_of(best, &answers, n, "largest behaviour class")
            }
            "codet" => self.codet(&answers),
            other => match synod_knobs(other) {
                Some(knobs) => self.synod(knobs),
                None => Err(EvalError::Unsupported(format!("strategy {other:?}"))),
            },
        }
    }

    fn codet(&self, answers: &[Option<String>]) -> Result<StrategyResult, EvalError> {
        // Each agent's tests: its own probes (and the example) with its own outcomes.
        let mut own: Vec<Call> = self
            .sim
            .spec("")
            .contract
            .iter()
            .map(|c| c.call.clone())
            .collect();
        own.extend(self.sim.probes.iter().cloned());
        // The pool starts with these calls, so its (cached) run holds their outcomes.
        let pool = self.pool();
        let at: Vec<usize> = own
            .iter()
            .filter_map(|c| pool.iter().position(|x| x == c))
            .collect();
        let mut outcomes: Vec<Option<Vec<Outcome>>> = Vec::new();
        for a in answers {
            outcomes.push(match a {
                Some(a) => self
                    .behaviour(a, &pool)?
                    .map(|b| at.iter().map(|k| b[*k].clone()).collect()),
                None => None,
            });
        }
        let best = codet_choice(&outcomes);
        self.result_of(best, answers, answers.len(), "dual agreement")
    }

    /// The full pipeline, in virtual time, with the simulated agents and the cached sandbox.
    fn synod(&self, knobs: Knobs) -> Result<StrategyResult, EvalError> {
        let agents: Vec<AgentInfo> = (0..self.spec.n)
            .map(|i| AgentInfo {
                id: synod_core::AgentId(i as u32),
                name: format!("sim{i}"),
                timeout_ms: 60_000,
            })
            .collect();
        let mut cfg = PipelineConfig::new(agents, self.spec.m, self.task_seed);
        cfg.resamples_max = self.resamples;
        knobs.apply(&mut cfg);
        // The sample each agent was last asked to read in: its implementation (and the
        // simulated user's view of its reading) follows that sample's plan.
        let p = Pipeline::new(cfg, Prompt::new(self.prompt))
            .map_err(|e| EvalError::Agents(e.to_string()))?;
        let mut world = SynodWorld {
            run: self,
            agent_sample: vec![0u32; self.spec.n],
            calls: 0,
            interpret_calls: 0,
            tokens: 0,
            questions: 0,
        };
        let end = VirtualDriver::new(p).run(&mut world)?;
        let (verdict, detail) = synod_verdict(end, &self.sim.prepared.entry, |program, module| {
            let ok = self.cache.hidden_verdict(
                &self.task_key(),
                program,
                module,
                &self.task.setup,
                self.task.scoring_tests(),
            )?;
            Ok(if ok {
                Verdict::Correct
            } else {
                Verdict::SilentlyWrong
            })
        })?;
        Ok(StrategyResult {
            verdict,
            calls: world.calls,
            interpret_calls: world.interpret_calls,
            tokens: world.tokens,
            questions: world.questions,
            detail,
        })
    }

    /// A simulated agent's reply to a pipeline ask; `None` for a stall.
    fn reply(&self, plan: Plan, request: &Request) -> Result<Option<AgentReply>, EvalError> {
        let prompt_len = request.prompt.full_text().len() + 600;
        let fault = |r: Result<Reply, ReplyFault>| {
            Some((
                r,
                Usage {
                    input_tokens: tokens(prompt_len),
                    output_tokens: 10,
                },
            ))
        };
        match plan {
            Plan::Faulty(FaultKind::Stall, _) => return Ok(None),
            Plan::Faulty(FaultKind::Crash, _) => {
                return Ok(fault(Err(ReplyFault::Crashed(
                    "backend exited with status 1".into(),
                ))));
            }
            Plan::Faulty(FaultKind::Garbage, _) => {
                return Ok(fault(Err(ReplyFault::Invalid(
                    "no fenced json spec in the reply".into(),
                ))));
            }
            _ => {}
        }
        let attempt = match request.role {
            Role::Interpret => request.sample as usize,
            Role::Implement => 1,
            // A simulated agent has no model of what inputs might tell programs apart: it
            // proposes none, so PL-22 costs a call and changes nothing in the simulation.
            Role::Distinguish => {
                return Ok(Some((
                    Err(ReplyFault::Invalid(
                        "a simulated agent proposes no inputs".into(),
                    )),
                    Usage::default(),
                )));
            }
        };
        let plan = self.reading_after_clarification(plan, &request.prompt)?;
        let Some(src) = self.sim.program(plan, attempt) else {
            return Ok(fault(Err(ReplyFault::Crashed(
                "no mutant for this task".into(),
            ))));
        };
        let usage = Usage {
            input_tokens: tokens(prompt_len),
            output_tokens: tokens(src.len() + 400),
        };
        let reply = match request.role {
            Role::Interpret => Reply::Interpretation(Interpretation {
                spec: self
                    .sim
                    .spec(request.prompt.text.lines().next().unwrap_or("")),
                reference: src,
                probes: self.sim.probes.clone(),
                sources: Default::default(),
            }),
            Role::Implement | Role::Distinguish => Reply::Implementation(src),
        };
        Ok(Some((Ok(reply), usage)))
    }

    /// A correct agent that took the other reading reads the clarification: it follows
    /// whichever reading meets the chosen outcomes.
    fn reading_after_clarification(&self, plan: Plan, prompt: &Prompt) -> Result<Plan, EvalError> {
        let Plan::Correct { rewrite, alt } = plan else {
            return Ok(plan);
        };
        if self.sim.alt.is_none() || prompt.clarifications.is_empty() {
            return Ok(plan);
        }
        let examples: Vec<_> = prompt
            .clarifications
            .iter()
            .flat_map(|c| c.examples.iter())
            .collect();
        if examples.is_empty() {
            return Ok(plan);
        }
        let calls: Vec<Call> = examples.iter().map(|e| e.call.clone()).collect();
        for take_alt in [alt, !alt] {
            let src = self
                .sim
                .program(
                    Plan::Correct {
                        rewrite,
                        alt: take_alt,
                    },
                    0,
                )
                .unwrap_or_default();
            let Some(b) = self.behaviour(&src, &calls)? else {
                continue;
            };
            let meets = examples.iter().zip(&b).all(|(e, o)| match &e.expect {
                Expectation::Same(want) => want == o,
                _ => true,
            });
            if meets {
                return Ok(Plan::Correct {
                    rewrite,
                    alt: take_alt,
                });
            }
        }
        Ok(plan)
    }

    /// The simulated user: runs the original problem's tests against each reading's program
    /// and names the first that passes, or says it has no preference.
    fn user_answer(&self, q: &Question, agent_sample: &[u32]) -> Result<String, EvalError> {
        for r in &q.readings {
            let Some(agent) = r
                .agents
                .first()
                .and_then(|a| a.strip_prefix("sim"))
                .and_then(|i| i.parse::<usize>().ok())
            else {
                continue;
            };
            let prompt = Prompt::new(self.prompt);
            let sample = agent_sample.get(agent).copied().unwrap_or(0);
            let plan = self.reading_after_clarification(self.plan_at(agent, sample), &prompt)?;
            let Some(src) = self.sim.program(plan, 0) else {
                continue;
            };
            if self.judge(&src)? == Verdict::Correct {
                return Ok(r.label.clone());
            }
        }
        Ok("no preference".into())
    }
}

/// The synod strategy's world: the simulated agents, the cached sandbox, the simulated user,
/// and what the run cost.
struct SynodWorld<'r, 't> {
    run: &'r Cell<'t>,
    /// The sample each agent was last asked to read in: its implementation (and the simulated
    /// user's view of its reading) follows that sample's plan.
    agent_sample: Vec<u32>,
    calls: u32,
    interpret_calls: u32,
    tokens: u64,
    questions: u32,
}

impl World for SynodWorld<'_, '_> {
    type Error = EvalError;

    fn reply(
        &mut self,
        agent: AgentId,
        request: &Request,
    ) -> Result<Option<AgentReply>, EvalError> {
        self.calls += 1;
        let a = agent.0 as usize;
        if request.role == Role::Interpret {
            self.interpret_calls += 1;
            self.agent_sample[a] = request.sample;
        }
        let plan = self.run.plan_at(a, self.agent_sample[a]);
        let reply = self.run.reply(plan, request)?;
        if let Some((_, usage)) = &reply {
            self.tokens += usage.total();
        }
        Ok(reply)
    }

    fn check(&mut self, request: &CheckRequest) -> Result<CheckReport, EvalError> {
        self.run
            .cache
            .run_in_domain(request, self.run.call_ms(), self.run.int_max())
    }

    fn answer(&mut self, question: &Question) -> Result<Option<String>, EvalError> {
        self.questions += 1;
        if !self.run.user {
            return Ok(None);
        }
        self.run.user_answer(question, &self.agent_sample).map(Some)
    }
}

/// CodeT's choice (dual execution agreement): each program's tests are every program's own
/// calls with that program's outcomes; a program's score is (programs passing exactly the same
/// tests) × (tests it passes). `outcomes[i]` is program i's outcomes on the shared calls
/// (`None`: no program). Ties go to the earliest.
pub fn codet_choice(outcomes: &[Option<Vec<Outcome>>]) -> Option<usize> {
    let tests: Vec<(usize, Outcome)> = outcomes
        .iter()
        .flatten()
        .flat_map(|o| o.iter().cloned().enumerate())
        .collect();
    let passed: Vec<Option<Vec<bool>>> = outcomes
        .iter()
        .map(|o| {
            o.as_ref()
                .map(|o| tests.iter().map(|(k, want)| o[*k] == *want).collect())
        })
        .collect();
    let mut best: Option<(usize, usize)> = None;
    for (i, p) in passed.iter().enumerate() {
        let Some(p) = p else { continue };
        let agreeing = passed.iter().flatten().filter(|q| *q == p).count();
        let score = agreeing * p.iter().filter(|b| **b).count();
        if best.is_none_or(|(s, _)| score > s) {
            best = Some((score, i));
        }
    }
    best.map(|b| b.1)
}

/// How a pipeline run ended, as a verdict and a line: a built program is judged by `judge`
/// (the program and the module defining `entry`).
pub fn synod_verdict(
    end: RunEnd,
    entry: &str,
    judge: impl FnOnce(&Program, &str) -> Result<Verdict, EvalError>,
) -> Result<(Verdict, String), EvalError> {
    Ok(match end {
        RunEnd::Finished(f) => match *f {
            Finish::Built(b) => {
                let module = b
                    .spec
                    .function_modules()
                    .get(entry)
                    .cloned()
                    .unwrap_or_else(|| "solution".into());
                (
                    judge(&b.program, &module)?,
                    format!("class of {}", b.class.len()),
                )
            }
            Finish::Failed { stage, reason, .. } => (
                Verdict::Abstained,
                format!("{stage}: {}", reason.chars().take(80).collect::<String>()),
            ),
        },
        RunEnd::Asked(q) => (Verdict::Asked, format!("{} readings", q.readings.len())),
        RunEnd::Stuck => (Verdict::Error, "pipeline stuck: nothing in flight".into()),
        RunEnd::StepLimit => (
            Verdict::Error,
            "pipeline did not finish within the step budget".into(),
        ),
    })
}

/// Source text as a text vote sees it: comments, blank lines and trailing spaces dropped.
pub fn normalize_source(src: &str) -> String {
    src.lines()
        .map(|l| l.split('#').next().unwrap_or("").trim_end())
        .filter(|l| !l.trim().is_empty())
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod knob_tests {
    use super::*;

    #[test]
    fn synod_strategy_names_carry_their_knobs() {
        assert_eq!(synod_knobs("synod"), Some(Knobs::default()));
        let k = synod_knobs("synod-k3-c12").unwrap();
        assert_eq!((k.ahead_by, k.interpret_calls_max), (Some(3), Some(12)));
        assert_eq!(
            synod_knobs("synod-c8").unwrap().interpret_calls_max,
            Some(8)
        );
        assert!(synod_knobs("synod-s-c8").unwrap().distinguish);
        assert!(synod_knobs("synod-r").unwrap().reread && !synod_knobs("synod").unwrap().reread);
        let mut cfg = synod_core::pipeline::PipelineConfig::new(vec![], 0, 1);
        synod_knobs("synod-r").unwrap().apply(&mut cfg);
        assert!(!cfg.answer_decides);
        for bad in [
            "synodx",
            "synod-",
            "synod-c0",
            "synod-k99",
            "synod-c8-c9",
            "synod-z1",
            "synod-s-s",
            "synod-r-r",
            "single",
        ] {
            assert_eq!(synod_knobs(bad), None, "{bad}");
        }
        assert!(is_strategy("codet") && is_strategy("synod-k0") && !is_strategy("synod-c"));
    }
}
