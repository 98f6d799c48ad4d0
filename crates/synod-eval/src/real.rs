//! Evaluation with real agents: every strategy scored on the same real replies.
//!
//! Each agent is asked once per task for a reading (role interpret, sample 0) of the prompt an
//! agent sees ([`agent_prompt`]; no hidden test): MBPP's task text, signature and first test as
//! the example; HumanEvalComm's prompt text (with its own doctests) and the function it
//! declares, by its declared name (the modified prompts say `candidate`), which the hidden
//! tests then reach through an alias. Those n replies are what `single` (the first agent's), `majority-text`,
//! `majority-behaviour` and `codet` choose among; `synod` runs the whole pipeline, whose
//! first wave sends exactly those requests again. Replies go through the agents' response
//! cache (content-addressed by model, messages, temperature, sample and seed), so a rerun, a
//! resumed run or a new strategy costs no model time; only the calls synod adds (more
//! readings, implementations) are new.

use crate::checks::CheckCache;
use crate::prepare::Prepared;
use crate::strategies::{StrategyResult, Verdict, normalize_source};
use crate::suite::Task;
use crate::{EvalError, prepare};
use std::collections::BTreeMap;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;
use synod_agents::Agent;
use synod_core::pipeline::drive::{AgentReply, VirtualDriver, World};
use synod_core::pipeline::{
    AgentInfo, Output, Pipeline, PipelineConfig, Progress, Question, Reply, ReplyFault, Request,
    Role,
};
use synod_core::{
    AgentId, Call, CheckReport, CheckRequest, Interpretation, Outcome, Program, Prompt,
};

/// Questions the evaluation's user answers in one run; a later one is the outcome `asked`
/// (the pipeline itself stops after `clarifications_max` rounds).
pub const USER_ANSWERS_MAX: u32 = 2;
/// Differing calls the user reads in one question (a question shows at most a handful).
pub const USER_CALLS_MAX: usize = 8;

/// Real agents for an evaluation: an agents file's agents and fault budget.
pub struct RealAgents {
    /// A short name for the set (the CSV's `rho` column; `p` is `real`).
    pub label: String,
    /// The agents, in file order.
    pub agents: Vec<Box<dyn Agent>>,
    /// The fault budget.
    pub m: usize,
    /// Most model calls in flight at once (the server's slots).
    pub slots: usize,
    /// What the run has cost so far.
    pub spent: Spent,
}

impl std::fmt::Debug for RealAgents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RealAgents")
            .field("label", &self.label)
            .field("n", &self.agents.len())
            .field("m", &self.m)
            .finish()
    }
}

/// Model calls and tokens spent by this run (cache hits are free and counted apart).
#[derive(Debug, Default)]
pub struct Spent {
    /// Calls the model answered now.
    pub calls: AtomicU64,
    /// Calls served from the response cache.
    pub cached: AtomicU64,
    /// Output tokens of the calls answered now.
    pub tokens_out: AtomicU64,
    /// Milliseconds spent waiting for the model (all calls together).
    pub model_ms: AtomicU64,
}

impl Spent {
    /// `calls done, tokens/s` for the progress bar.
    pub fn line(&self) -> String {
        let calls = self.calls.load(Ordering::Relaxed);
        let cached = self.cached.load(Ordering::Relaxed);
        let toks = self.tokens_out.load(Ordering::Relaxed);
        let ms = self.model_ms.load(Ordering::Relaxed).max(1);
        format!(
            "{calls} model calls ({cached} cached), {:.1} tokens/s",
            toks as f64 * 1000.0 / ms as f64
        )
    }
}

/// What a real agent sees of a task variant. MBPP: the text, the module and signature, the
/// first test as the example, written as a literal example (so PL-16 makes it a check).
/// HumanEvalComm: the variant's text, which carries its own doctest examples (or, in the
/// incomplete variants, none by design), and the module and the function it declares, by the
/// name it declares (`candidate` in most modified prompts) and with the parameters only when the
/// text gives them; no test is added, since the first test would tell an agent what a modified
/// prompt leaves out. Nothing else: no hidden test reaches an agent.
pub fn agent_prompt(task: &Task, variant: usize, p: &Prepared) -> Option<String> {
    let v = task.prompts.get(variant)?;
    let Some(d) = &v.declares else {
        return example_prompt(task, variant, p);
    };
    let signature = match &d.params {
        Some(params) => format!("{}({})", d.name, params.join(", ")),
        None => d.name.clone(),
    };
    Some(format!(
        "{}\n\nWrite a Python module named `solution` (standard library only) with the function \
         `{signature}`.\n",
        v.text.trim_end(),
    ))
}

/// The task text, the module and the entry point's signature, and the first test as a literal
/// example: what simulated agents see of every task (their programs are rewrites of the
/// reference, so they define the entry point), and real agents of an MBPP task.
pub fn example_prompt(task: &Task, variant: usize, p: &Prepared) -> Option<String> {
    let returns = p.example_returns.as_ref()?;
    let args: Vec<String> = p.example_args.iter().map(|a| a.python()).collect();
    Some(format!(
        "{}\n\nWrite a Python module named `solution` (standard library only) with the function \
         `{}({})`.\nFor example:\n\nassert {}({}) == {}\n",
        task.prompts[variant].text.trim(),
        p.entry,
        p.params.join(", "),
        p.entry,
        args.join(", "),
        returns.python()
    ))
}

/// One agent's reply to the task's first reading request.
struct Drawn {
    interpretation: Option<Interpretation>,
    /// Why the reply gave no usable reading: a transport failure, the parser's reason, or a
    /// program whose functions have no body (PL-27; its reading is still kept for the baselines).
    unusable: Option<String>,
    tokens: u64,
    /// Follow-up turns its agent took (a stub repaired): model calls beyond the one.
    follow_ups: u32,
}

/// Everything one task's strategies share: the prompt, the agents, the caches.
pub struct RealCell<'a> {
    /// The task.
    pub task: &'a Task,
    /// Its preparation (entry point, example, timing).
    pub prepared: &'a Prepared,
    /// The prompt agents see.
    pub prompt: String,
    /// The function agents are asked for: the entry point, or the name the variant declares
    /// (HumanEvalComm's `candidate`); the hidden tests call it through an alias.
    pub function: String,
    /// The agents.
    pub real: &'a RealAgents,
    /// The sandbox cache.
    pub cache: &'a CheckCache,
    /// Seed of the probe pool and the pipeline.
    pub task_seed: u64,
    /// synod's resample budget.
    pub resamples: u32,
    /// A user answers synod's questions (HumanEvalComm, as its benchmark does):
    /// [`RealCell::user_answer`].
    pub user: bool,
    drawn: OnceLock<Vec<Drawn>>,
    /// What synod asked and was answered, which agents it faulted and why, and why a run that
    /// built nothing stopped, as JSON lines for `dialogue.jsonl` ([`RealCell::take_dialogue`]).
    dialogue: std::sync::Mutex<Vec<serde_json::Value>>,
    /// Every progress event of synod's runs (asks with their request keys, answers, faults,
    /// tallies, decisions), as JSON lines for `trace.jsonl` ([`RealCell::take_trace`]): what
    /// a reader needs to see why a run on real replies ended as it did.
    trace: std::sync::Mutex<Vec<serde_json::Value>>,
}

impl<'a> RealCell<'a> {
    /// A cell for a variant of a task (`None` when it has no prompt to give: an MBPP task
    /// without a plain example).
    pub fn new(
        (task, variant): (&'a Task, usize),
        prepared: &'a Prepared,
        real: &'a RealAgents,
        cache: &'a CheckCache,
        task_seed: u64,
        resamples: u32,
        user: bool,
    ) -> Option<RealCell<'a>> {
        let prompt = agent_prompt(task, variant, prepared)?;
        let function = task.prompts[variant]
            .declares
            .as_ref()
            .map_or_else(|| prepared.entry.clone(), |d| d.name.clone());
        Some(RealCell {
            task,
            prepared,
            prompt,
            function,
            real,
            cache,
            task_seed,
            resamples,
            user,
            drawn: OnceLock::new(),
            dialogue: Default::default(),
            trace: Default::default(),
        })
    }

    fn request(&self) -> Request {
        Request {
            role: Role::Interpret,
            prompt: Prompt::new(self.prompt.clone()),
            round: 0,
            sample: 0,
            spec: None,
            component: None,
            programs: Vec::new(),
            repair: None,
        }
    }

    /// One call of an agent, counted.
    fn call(&self, agent: usize, request: &Request) -> Result<synod_agents::AgentReply, String> {
        let t = Instant::now();
        let r = self.real.agents[agent]
            .call(request, &|| {})
            .map_err(|e| e.to_string())?;
        let spent = &self.real.spent;
        if r.cached {
            spent.cached.fetch_add(1, Ordering::Relaxed);
        } else {
            spent
                .calls
                .fetch_add(1 + u64::from(r.follow_ups), Ordering::Relaxed);
            spent
                .tokens_out
                .fetch_add(r.usage.output_tokens, Ordering::Relaxed);
            spent
                .model_ms
                .fetch_add(t.elapsed().as_millis() as u64, Ordering::Relaxed);
        }
        Ok(r)
    }

    /// The n first replies, drawn once (up to `slots` at a time) and kept.
    fn drawn(&self) -> &[Drawn] {
        self.drawn.get_or_init(|| {
            let request = self.request();
            let agents: Vec<usize> = (0..self.real.agents.len()).collect();
            let mut out = Vec::with_capacity(agents.len());
            for chunk in agents.chunks(self.real.slots.max(1)) {
                std::thread::scope(|s| {
                    let hs: Vec<_> = chunk
                        .iter()
                        .map(|&a| {
                            let request = &request;
                            s.spawn(move || self.draw(a, request))
                        })
                        .collect();
                    // A drawing thread does not panic (errors are replies); if one did, the
                    // panic goes on here.
                    for h in hs {
                        out.push(h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)));
                    }
                });
            }
            out
        })
    }

    fn draw(&self, agent: usize, request: &Request) -> Drawn {
        match self.call(agent, request) {
            Ok(r) => {
                let (interpretation, unusable) =
                    match synod_agents::reply::parse_reply(Role::Interpret, &r.text) {
                        Ok(Reply::Interpretation(mut i)) => {
                            // Every strategy runs a reply's program in the prompt's context, as
                            // synod's pipeline does (PL-23): with the import lines the prompt's
                            // code shows, where the program uses them. Without this, `single`
                            // and the other baselines lose HumanEval tasks to a missing
                            // `from typing import List` that synod adds.
                            let facts = synod_core::facts::prompt_facts(&self.prompt);
                            i.reference = synod_core::facts::with_prompt_imports(
                                &i.reference,
                                &facts.imports,
                            );
                            // A program whose functions have no body (the prompt's stub
                            // repeated, PL-27) is no usable reading; the baselines still get
                            // it, as a single model's user would.
                            let why =
                                synod_core::facts::bodiless_problem(&i.reference, &facts.functions);
                            (Some(i), why)
                        }
                        Ok(Reply::Implementation(_) | Reply::Inputs(_)) => {
                            (None, Some("not a reading".into()))
                        }
                        Err(e) => (None, Some(e.to_string())),
                    };
                Drawn {
                    interpretation,
                    unusable,
                    tokens: r.usage.total(),
                    follow_ups: r.follow_ups,
                }
            }
            Err(e) => Drawn {
                interpretation: None,
                unusable: Some(e),
                tokens: 0,
                follow_ups: 0,
            },
        }
    }

    /// The user's answer to a question: HumanEvalComm's user is the author of the original
    /// problem, who knows what it means and nothing of the agents. So the dataset's reference
    /// (the original problem's solution, which the agents never see) is run on the calls where
    /// the readings differ, as the question shows them; the answer is the reading that does
    /// what the reference does on every one of them, or, when none does, what the reference
    /// does, in words (free text, ADR 0002), each value as an example the pipeline checks
    /// (PL-30): ``None of these readings. I mean: `f(3.5) == 0.5`; …``, and what the
    /// function takes when the calls do not fit it (`TypeError`). `None` (no answer: the
    /// outcome `asked`) when the question shows no call or the reference does not load.
    /// Deterministic: the reference's outcomes are sandbox runs, cached like every other.
    pub fn user_answer(&self, q: &Question) -> Result<Option<String>, EvalError> {
        let calls: Vec<Call> = q
            .differing
            .iter()
            .take(USER_CALLS_MAX)
            .map(|d| d.call.clone())
            .collect();
        if calls.is_empty() {
            return Ok(None);
        }
        let mut source = synod_core::facts::with_prompt_imports(
            &self.task.reference,
            &synod_core::facts::prompt_facts(&self.task.prompts[0].text).imports,
        );
        let entry = &self.prepared.entry;
        if self.function != *entry {
            // The variant's name for the function (`candidate`) is the original's.
            source.push_str(&format!("\n\n{} = {entry}\n", self.function));
        }
        let Some(want) = self.cache.behaviour(&source, &self.function, &calls)? else {
            return Ok(None);
        };
        let meant = q.readings.iter().enumerate().find(|(k, _)| {
            q.differing
                .iter()
                .zip(&want)
                .all(|(d, w)| d.outcomes.get(*k) == Some(w))
        });
        if let Some((_, r)) = meant {
            return Ok(Some(r.label.clone()));
        }
        // A call the original's function cannot take (another number of arguments: the
        // agents guessed the parameters of `candidate(...)`) says nothing about results; the
        // author says what the function takes instead.
        let misfit = |w: &Outcome| matches!(w, Outcome::Error(k) if k == "TypeError");
        let cases: Vec<String> = calls
            .iter()
            .zip(&want)
            .filter(|(_, w)| !misfit(w))
            // A value is written as an example (`f(2) == 4`), which the pipeline checks as
            // it checks the prompt's (PL-30); an exception in words.
            .map(|(c, w)| match w {
                Outcome::Value(v) => format!("`{c} == {v}`"),
                other => format!("{c} {}", synod_core::pipeline::outcome_phrase(other)),
            })
            .collect();
        let mut answer = String::from("None of these readings.");
        if want.iter().any(misfit)
            && let Some(signature) = self.original_signature()
        {
            answer.push_str(&format!(" The function is `{signature}`."));
        }
        if !cases.is_empty() {
            answer.push_str(&format!(" I mean: {}.", cases.join("; ")));
        }
        Ok(Some(answer))
    }

    /// The original problem's signature, under the variant's name:
    /// `candidate(numbers: List[float], threshold: float) -> bool`.
    fn original_signature(&self) -> Option<String> {
        let entry = &self.prepared.entry;
        let text = &self.task.prompts[0].text;
        let at = text.find(&format!("def {entry}("))?;
        let rest = &text[at + 4..];
        let end = rest.find(":\n").or_else(|| rest.find(':'))?;
        let signature = rest[..end].split_whitespace().collect::<Vec<_>>().join(" ");
        Some(format!("{}{}", self.function, &signature[entry.len()..]))
    }

    /// The dialogue lines of the runs so far, taken (each a JSON object: `question` and
    /// `answer`, `fault` and `reason`, or `stopped`).
    pub fn take_dialogue(&self) -> Vec<serde_json::Value> {
        std::mem::take(
            &mut *self
                .dialogue
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }

    /// The trace lines of the runs so far, taken (each a [`Progress`] event as JSON, its kind
    /// in `event`, or a question put to the user, `"event": "question"`).
    pub fn take_trace(&self) -> Vec<serde_json::Value> {
        std::mem::take(
            &mut *self
                .trace
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }

    fn note(&self, line: serde_json::Value) {
        self.dialogue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(line);
    }

    fn traced(&self, progress: &Progress) {
        // A progress event always serializes (strings, numbers and lists of them).
        if let Ok(line) = serde_json::to_value(progress) {
            self.trace_line(line);
        }
    }

    fn trace_line(&self, line: serde_json::Value) {
        self.trace
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(line);
    }

    /// Per agent: its name, backend and model, and why its first reply gave no reading (`None`
    /// when it parsed). Whether the program then loads is the pipeline's business (PL-15).
    pub fn usable_rows(&self) -> Vec<(String, String, Option<String>)> {
        self.real
            .agents
            .iter()
            .zip(self.drawn())
            .map(|(a, d)| (a.name().to_string(), a.describe(), d.unusable.clone()))
            .collect()
    }

    /// Usable replies: those that parse into a reading with a program whose functions have a
    /// body (PL-27).
    pub fn usable(&self) -> usize {
        self.drawn()
            .iter()
            .filter(|x| x.interpretation.is_some() && x.unusable.is_none())
            .count()
    }

    fn judge(&self, program: &Program, module: &str) -> Result<Verdict, EvalError> {
        // The hidden tests call the entry point: a variant that names its function otherwise
        // gets the entry point as an alias of it (and verdicts of their own).
        let entry = &self.prepared.entry;
        let (key, setup) = if self.function == *entry {
            (self.task.id.clone(), self.task.setup.clone())
        } else {
            (
                format!("{}~{}", self.task.id, self.function),
                format!("{}\n{entry} = {}\n", self.task.setup, self.function),
            )
        };
        let ok =
            self.cache
                .hidden_verdict(&key, program, module, &setup, self.task.scoring_tests())?;
        Ok(if ok {
            Verdict::Correct
        } else {
            Verdict::SilentlyWrong
        })
    }

    /// Runs one strategy.
    pub fn run(&self, strategy: &str) -> Result<StrategyResult, EvalError> {
        if let Some(knobs) = crate::strategies::synod_knobs(strategy) {
            return self.synod(knobs);
        }
        let drawn = self.drawn();
        let answers: Vec<Option<&str>> = drawn
            .iter()
            .map(|d| d.interpretation.as_ref().map(|i| i.reference.as_str()))
            .collect();
        let n = answers.len();
        let (chosen, calls, why) = match strategy {
            "single" => (
                answers.first().copied().flatten().map(|_| 0),
                1,
                "first answer",
            ),
            "majority-text" => {
                let mut counts: BTreeMap<String, (usize, usize)> = BTreeMap::new();
                for (i, a) in answers.iter().enumerate() {
                    if let Some(a) = a {
                        counts.entry(normalize_source(a)).or_insert((0, i)).0 += 1;
                    }
                }
                (best(counts.into_values()), n, "most frequent text")
            }
            "majority-behaviour" => {
                let pool = self.pool(drawn);
                let mut classes: BTreeMap<Vec<Outcome>, (usize, usize)> = BTreeMap::new();
                for (i, a) in answers.iter().enumerate() {
                    if let Some(a) = a
                        && let Some(b) = self.cache.behaviour(a, &self.function, &pool)?
                    {
                        classes.entry(b).or_insert((0, i)).0 += 1;
                    }
                }
                (best(classes.into_values()), n, "largest behaviour class")
            }
            "codet" => (self.codet(drawn, &answers)?, n, "dual agreement"),
            other => return Err(EvalError::Unsupported(format!("strategy {other:?}"))),
        };
        let tokens = drawn.iter().take(calls).map(|d| d.tokens).sum();
        let follow_ups: u32 = drawn.iter().take(calls).map(|d| d.follow_ups).sum();
        let (verdict, detail) = match chosen.and_then(|i| answers[i].map(|a| (i, a))) {
            Some((i, src)) => (
                self.judge(&Program::single("solution", src), "solution")?,
                format!("{why}: agent {i}"),
            ),
            None => (Verdict::Abstained, format!("{why}: no program")),
        };
        Ok(StrategyResult {
            verdict,
            calls: calls as u32 + follow_ups,
            interpret_calls: calls as u32 + follow_ups,
            tokens,
            questions: 0,
            detail,
        })
    }

    /// The agents' own example calls (of the entry point, `module.f` read as `f`) and the
    /// prompt's example, grown into a probe pool as synod grows its own.
    fn own_calls(&self, drawn: &[Drawn]) -> Vec<Vec<Call>> {
        let entry = &self.function;
        drawn
            .iter()
            .map(|d| {
                let Some(i) = &d.interpretation else {
                    return Vec::new();
                };
                i.spec
                    .contract
                    .iter()
                    .map(|c| c.call.clone())
                    .chain(i.probes.iter().cloned())
                    .filter_map(|mut c| {
                        if let Some((_, f)) = c.function.rsplit_once('.') {
                            c.function = f.to_string();
                        }
                        (c.function == *entry && c.args.len() == self.prepared.params.len())
                            .then_some(c)
                    })
                    .collect()
            })
            .collect()
    }

    fn example(&self) -> Call {
        Call {
            function: self.function.clone(),
            args: self.prepared.example_args.clone(),
        }
    }

    fn pool(&self, drawn: &[Drawn]) -> Vec<Call> {
        let mut own = vec![self.example()];
        own.extend(self.own_calls(drawn).into_iter().flatten());
        synod_core::probes::pool(&own, self.task_seed, &Default::default())
    }

    fn codet(&self, drawn: &[Drawn], answers: &[Option<&str>]) -> Result<Option<usize>, EvalError> {
        // Each agent's tests: its own calls and the example, with its own program's outcomes.
        let mut calls = vec![self.example()];
        for c in self.own_calls(drawn).into_iter().flatten() {
            if !calls.contains(&c) {
                calls.push(c);
            }
        }
        let mut outcomes: Vec<Option<Vec<Outcome>>> = Vec::new();
        for a in answers {
            outcomes.push(match a {
                Some(a) => self.cache.behaviour(a, &self.function, &calls)?,
                None => None,
            });
        }
        Ok(crate::strategies::codet_choice(&outcomes))
    }

    /// The full pipeline in virtual time, with the real agents behind the response cache.
    fn synod(&self, knobs: synod_core::pipeline::Knobs) -> Result<StrategyResult, EvalError> {
        // The first wave's requests are the baselines' requests: draw them first (two at a
        // time), so the pipeline's own asks are cache hits.
        self.drawn();
        let agents: Vec<AgentInfo> = self
            .real
            .agents
            .iter()
            .enumerate()
            .map(|(i, a)| AgentInfo {
                id: AgentId(i as u32),
                name: a.name().to_string(),
                timeout_ms: 600_000,
            })
            .collect();
        let mut cfg = PipelineConfig::new(agents, self.real.m, self.task_seed);
        cfg.resamples_max = self.resamples;
        knobs.apply(&mut cfg);
        let p = Pipeline::new(cfg, Prompt::new(self.prompt.clone()))
            .map_err(|e| EvalError::Agents(e.to_string()))?;
        let mut world = RealWorld {
            cell: self,
            tallies: Vec::new(),
            calls: 0,
            interpret_calls: 0,
            tokens: 0,
            questions: 0,
            answered: 0,
        };
        let end = VirtualDriver::new(p).run(&mut world)?;
        if let synod_core::pipeline::drive::RunEnd::Finished(f) = &end
            && let synod_core::pipeline::Finish::Failed { stage, reason, .. } = f.as_ref()
        {
            self.note(serde_json::json!({"stopped": format!("{stage}: {reason}")}));
        }
        let (verdict, detail) =
            crate::strategies::synod_verdict(end, &self.function, |p, m| self.judge(p, m))?;
        let tallies: Vec<String> = world
            .tallies
            .iter()
            .map(|t| {
                t.iter()
                    .map(|x| x.to_string())
                    .collect::<Vec<_>>()
                    .join("-")
            })
            .collect();
        Ok(StrategyResult {
            verdict,
            calls: world.calls,
            interpret_calls: world.interpret_calls,
            tokens: world.tokens,
            questions: world.questions,
            detail: format!("{detail}; classes {}", tallies.join(" ")),
        })
    }
}

/// The largest count, ties to the earliest agent.
fn best(counts: impl Iterator<Item = (usize, usize)>) -> Option<usize> {
    counts
        .max_by(|x, y| x.0.cmp(&y.0).then(y.1.cmp(&x.1)))
        .map(|x| x.1)
}

struct RealWorld<'c, 'a> {
    cell: &'c RealCell<'a>,
    /// The class sizes of every tally, in order (`[3]`, `[2, 1]`, …).
    tallies: Vec<Vec<usize>>,
    calls: u32,
    interpret_calls: u32,
    tokens: u64,
    questions: u32,
    /// Questions the user answered.
    answered: u32,
}

impl World for RealWorld<'_, '_> {
    type Error = EvalError;

    fn reply(
        &mut self,
        agent: AgentId,
        request: &Request,
    ) -> Result<Option<AgentReply>, EvalError> {
        self.calls += 1;
        if request.role == Role::Interpret {
            self.interpret_calls += 1;
        }
        let reply = match self.cell.call(agent.0 as usize, request) {
            Ok(r) => {
                self.tokens += r.usage.total();
                // A stub repaired in a second turn is a second model call.
                self.calls += r.follow_ups;
                if request.role == Role::Interpret {
                    self.interpret_calls += r.follow_ups;
                }
                (
                    synod_agents::reply::parse_reply(request.role, &r.text),
                    r.usage,
                )
            }
            Err(e) => (Err(ReplyFault::Crashed(e)), Default::default()),
        };
        Ok(Some(reply))
    }

    fn check(&mut self, request: &CheckRequest) -> Result<CheckReport, EvalError> {
        let p = self.cell.prepared;
        self.cell.cache.run_in_domain(
            request,
            crate::checks::call_budget_ms(p.reference_ms),
            crate::checks::domain_int_max(p.example_args.iter().chain(p.example_returns.iter())),
        )
    }

    fn observe(&mut self, output: &Output) {
        if let Output::Progress(p) = output {
            self.cell.traced(p);
        }
        match output {
            Output::Progress(Progress::Classes { sizes, .. }) => self.tallies.push(sizes.clone()),
            Output::Progress(Progress::Fault { agent, reason }) => {
                self.cell
                    .note(serde_json::json!({"fault": agent, "reason": reason}));
            }
            _ => {}
        }
    }

    fn answer(&mut self, question: &Question) -> Result<Option<String>, EvalError> {
        self.questions += 1;
        // The trace holds every question, answered or not (MBPP has no user by default).
        if let Ok(q) = serde_json::to_value(question) {
            self.cell
                .trace_line(serde_json::json!({"event": "question", "question": q}));
        }
        // Without a user (MBPP by default), or past the user's patience, a question is the
        // outcome `asked`.
        if !self.cell.user || self.answered >= USER_ANSWERS_MAX {
            return Ok(None);
        }
        let answer = self.cell.user_answer(question)?;
        self.answered += u32::from(answer.is_some());
        self.cell
            .note(serde_json::json!({"question": question, "answer": answer}));
        Ok(answer)
    }
}

/// Prepares a task for real agents: `Err(why)` when it is skipped.
pub fn prepare_task(
    task: &Task,
    programs_dir: &std::path::Path,
    seed: u64,
) -> Result<Result<Prepared, String>, EvalError> {
    let prepared = prepare::prepare(task, programs_dir, seed)?;
    if !prepared.ok {
        return Ok(Err(prepared.why));
    }
    if prepared.example_returns.is_none() {
        return Ok(Err(
            "the example's result is not a plain value (set, complex, object)".into(),
        ));
    }
    Ok(Ok(prepared))
}
