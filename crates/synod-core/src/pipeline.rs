//! The build pipeline of DESIGN §4 as a sans-IO state machine.
//!
//! Drive it with [`Pipeline::step`]: each [`Input`] (start, an agent replied, a check finished,
//! a timer fired, the user answered) yields [`Output`]s, run in order: ask an agent, set a timer,
//! run a check in the sandbox, persist a decision, report progress, ask the user, finish. A
//! persist must be durable before any later output is acted on.
//!
//! Stages: interpret (ask agents in waves) → agree (pool probes, run every reference, group by
//! behaviour, apply the [`Tally`], split classes by differential testing) → clarify (when the
//! rule says ambiguity) → decompose (the decided class's interface) → build (one agent per
//! component, each candidate checked for refinement, failures reassigned) → integrate (the
//! assembled program checked again).

use crate::model::*;
use crate::probes::{self, ProbeLimits};
use crate::tally::{BudgetError, Tally, Verdict};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// Module name under which a reference program is loaded in checks.
pub const REFERENCE_MODULE: &str = "synod_reference";

/// An agent as the pipeline knows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentInfo {
    /// Its position in the agents file.
    pub id: AgentId,
    /// Its name, for reports.
    pub name: String,
    /// How long to wait for one reply before suspecting it.
    pub timeout_ms: u64,
}

/// Knobs of the pipeline; every one is a bound.
#[derive(Clone, Debug)]
pub struct PipelineConfig {
    /// The agents, in the order they are asked.
    pub agents: Vec<AgentInfo>,
    /// Fault budget m.
    pub fault_budget: usize,
    /// Seed for probe variants and differential inputs.
    pub seed: u64,
    /// Probe pool limits.
    pub probe_limits: ProbeLimits,
    /// Extra inputs drawn when searching for a split of a class.
    pub differential_max: usize,
    /// Differential searches per interpret round.
    pub differential_rounds_max: u32,
    /// Fresh samples of every agent when a round neither decides nor finds ambiguity.
    pub resamples_max: u32,
    /// Candidates tried per component before the build fails.
    pub build_attempts_max: usize,
    /// Clarification questions before the build gives up.
    pub clarifications_max: u32,
    /// Tokens (in and out, all agents) the build may spend; `None` for no limit.
    pub tokens_max: Option<u64>,
}

impl PipelineConfig {
    /// A configuration with the default bounds.
    pub fn new(agents: Vec<AgentInfo>, fault_budget: usize, seed: u64) -> PipelineConfig {
        let n = agents.len();
        PipelineConfig {
            agents,
            fault_budget,
            seed,
            probe_limits: ProbeLimits::default(),
            differential_max: 300,
            differential_rounds_max: 4,
            resamples_max: 1,
            build_attempts_max: n.max(1),
            clarifications_max: 3,
            tokens_max: None,
        }
    }
}

/// What an agent is asked to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Read P: a spec, a reference program, probes.
    Interpret,
    /// Write one component of the decided spec.
    Implement,
}

/// A request to an agent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    /// What is asked.
    pub role: Role,
    /// The prompt with its clarifications.
    pub prompt: Prompt,
    /// How many clarifications the prompt has had.
    pub round: u32,
    /// Sample index: a deliberate resample asks afresh.
    pub sample: u32,
    /// The decided spec (for implement).
    pub spec: Option<Spec>,
    /// The component to implement.
    pub component: Option<String>,
}

impl Request {
    /// A short stable name of the request (`interpret`, `interpret.r1`, `implement.lexer`),
    /// used by recorded transcripts.
    pub fn key(&self) -> String {
        let mut k = match self.role {
            Role::Interpret => "interpret".to_string(),
            Role::Implement => format!(
                "implement.{}",
                self.component.as_deref().unwrap_or("unknown")
            ),
        };
        if self.round > 0 {
            k.push_str(&format!(".r{}", self.round));
        }
        if self.sample > 0 {
            k.push_str(&format!(".s{}", self.sample));
        }
        k
    }
}

/// A parsed agent reply.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Reply {
    /// An answer to an interpret request.
    Interpretation(Interpretation),
    /// An answer to an implement request: the module's source.
    Implementation(String),
}

/// Why an agent produced no usable reply.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReplyFault {
    /// The agent failed (process died, transport error, refused).
    Crashed(String),
    /// The reply could not be parsed or was out of bounds.
    Invalid(String),
}

impl fmt::Display for ReplyFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReplyFault::Crashed(r) => write!(f, "failed: {r}"),
            ReplyFault::Invalid(r) => write!(f, "invalid reply: {r}"),
        }
    }
}

/// Tokens an agent reply cost, as the backend reported them (zero when it does not).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Prompt tokens.
    pub input_tokens: u64,
    /// Completion tokens.
    pub output_tokens: u64,
}

impl Usage {
    /// Both directions together.
    pub fn total(&self) -> u64 {
        self.input_tokens.saturating_add(self.output_tokens)
    }

    fn add(&mut self, other: Usage) {
        self.input_tokens = self.input_tokens.saturating_add(other.input_tokens);
        self.output_tokens = self.output_tokens.saturating_add(other.output_tokens);
    }
}

/// Identifies an ask.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct AskId(pub u64);
/// Identifies a check.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct CheckId(pub u64);
/// Identifies a timer (the deadline of the ask with the same number).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TimerId(pub u64);

/// Events fed to the pipeline.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Input {
    /// Begin the build.
    Start,
    /// An agent answered an ask.
    Replied {
        /// The ask.
        ask: AskId,
        /// The parsed reply, or why there is none.
        reply: Result<Reply, ReplyFault>,
        /// What the reply cost.
        usage: Usage,
    },
    /// An agent working on an ask showed it is alive (a streamed token, a progress line): its
    /// deadline starts again.
    Heartbeat {
        /// The ask.
        ask: AskId,
    },
    /// A check finished.
    CheckFinished {
        /// The check.
        check: CheckId,
        /// What it found.
        report: CheckReport,
    },
    /// A timer set by [`Output::SetTimer`] fired.
    TimerFired {
        /// The timer.
        timer: TimerId,
    },
    /// The user answered the pending question.
    UserAnswered {
        /// A reading's label (`B`) or free text.
        answer: String,
    },
}

/// Commands from the pipeline, to be run in order.
#[derive(Clone, Debug)]
pub enum Output {
    /// Send a request to an agent.
    Ask {
        /// The ask, to quote in the reply.
        ask: AskId,
        /// The agent.
        agent: AgentId,
        /// What to ask.
        request: Box<Request>,
    },
    /// Fire [`Input::TimerFired`] at this time (ms since the build started). A timer set
    /// again replaces its earlier time.
    SetTimer {
        /// The timer.
        timer: TimerId,
        /// When.
        at_ms: u64,
    },
    /// Run a program in the sandbox and answer with [`Input::CheckFinished`].
    RunCheck {
        /// The check.
        check: CheckId,
        /// What to run.
        request: Box<CheckRequest>,
    },
    /// Append a decision or evidence to the log, durably, before acting on later outputs.
    Persist {
        /// The kind of entry.
        kind: String,
        /// Its content.
        body: serde_json::Value,
    },
    /// Something worth showing the user.
    Progress(Progress),
    /// The readings split beyond the fault budget: ask the user and answer with
    /// [`Input::UserAnswered`].
    AskUser(Box<Question>),
    /// The build is over.
    Finish(Box<Finish>),
}

/// A progress event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Progress {
    /// A stage began.
    Stage {
        /// Its name.
        stage: String,
        /// What it is about.
        detail: String,
    },
    /// An agent was asked.
    Asked {
        /// Agent name.
        agent: String,
        /// Request key.
        request: String,
    },
    /// An agent answered in time.
    Answered {
        /// Agent name.
        agent: String,
        /// Request key.
        request: String,
    },
    /// An agent's work was judged faulty.
    Fault {
        /// Agent name.
        agent: String,
        /// Why.
        reason: String,
    },
    /// An agent missed its deadline and is suspected.
    Suspected {
        /// Agent name.
        agent: String,
        /// The deadline it missed.
        timeout_ms: u64,
    },
    /// A suspected agent answered late: the suspicion was false and its timeout grows.
    Trusted {
        /// Agent name.
        agent: String,
        /// Its new timeout.
        timeout_ms: u64,
    },
    /// Readings were grouped by behaviour.
    Classes {
        /// Class sizes, largest first.
        sizes: Vec<usize>,
        /// Probes compared.
        probes: usize,
        /// What the rule said.
        verdict: String,
    },
    /// Differential testing split a class.
    Split {
        /// Inputs that told the programs apart.
        inputs: usize,
    },
    /// A check passed.
    CheckPassed {
        /// What was checked.
        what: String,
    },
    /// Something was decided.
    Decided {
        /// What.
        what: String,
    },
}

impl fmt::Display for Progress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Progress::Stage { stage, detail } => write!(f, "[{stage}] {detail}"),
            Progress::Asked { agent, request } => write!(f, "  asked {agent} ({request})"),
            Progress::Answered { agent, request } => {
                write!(f, "  {agent} answered ({request})")
            }
            Progress::Fault { agent, reason } => write!(f, "  fault: {agent}: {reason}"),
            Progress::Suspected { agent, timeout_ms } => {
                write!(f, "  suspect: {agent} gave no reply within {timeout_ms} ms")
            }
            Progress::Trusted { agent, timeout_ms } => write!(
                f,
                "  {agent} answered late: trusted again, timeout now {timeout_ms} ms"
            ),
            Progress::Classes {
                sizes,
                probes,
                verdict,
            } => write!(
                f,
                "  behaviour classes {sizes:?} on {probes} probes: {verdict}"
            ),
            Progress::Split { inputs } => write!(
                f,
                "  differential testing split a class ({inputs} distinguishing inputs)"
            ),
            Progress::CheckPassed { what } => write!(f, "  check passed: {what}"),
            Progress::Decided { what } => write!(f, "  decided: {what}"),
        }
    }
}

/// A question for the user when readings split beyond the fault budget.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Question {
    /// Clarifications given so far.
    pub round: u32,
    /// The prompt as the agents read it.
    pub prompt: String,
    /// The readings, largest class first, labelled A, B, …
    pub readings: Vec<Reading>,
    /// Probes on which the readings differ, with each reading's outcome (in reading order).
    pub differing: Vec<DifferingProbe>,
}

/// One reading in a question.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reading {
    /// `A`, `B`, …
    pub label: String,
    /// Names of the agents holding it.
    pub agents: Vec<String>,
    /// The summary of its first agent's spec.
    pub summary: String,
}

/// A probe where readings differ.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DifferingProbe {
    /// The call.
    pub call: Call,
    /// Outcome under each reading, in reading order.
    pub outcomes: Vec<Outcome>,
}

impl fmt::Display for Question {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "The agents read the prompt in {} different ways, each held by more agents than the fault budget explains:",
            self.readings.len()
        )?;
        for r in &self.readings {
            writeln!(
                f,
                "  reading {} ({}): {}",
                r.label,
                r.agents.join(", "),
                r.summary
            )?;
        }
        writeln!(f, "They differ on these inputs:")?;
        for d in &self.differing {
            let outs: Vec<String> = self
                .readings
                .iter()
                .zip(&d.outcomes)
                .map(|(r, o)| format!("{}: {o}", r.label))
                .collect();
            writeln!(f, "  {}  →  {}", d.call, outs.join(" | "))?;
        }
        write!(
            f,
            "Which reading is meant? Answer with its letter, or describe what you want."
        )
    }
}

/// How the build ended.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Finish {
    /// A program was built and checked.
    Built(Box<BuildOutcome>),
    /// No agreement or no build within budget.
    Failed {
        /// The stage that failed.
        stage: String,
        /// Why, in a sentence.
        reason: String,
        /// What the agents did.
        agents: Vec<AgentRecord>,
    },
}

/// Everything a report and a certificate need about a successful build.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BuildOutcome {
    /// P with its clarifications.
    pub prompt: Prompt,
    /// The decided spec (its contract is the union of the decided class's contracts and the
    /// user's clarifications).
    pub spec: Spec,
    /// The reference program of the decided class's representative.
    pub reference: String,
    /// The representative agent.
    pub representative: AgentId,
    /// Agents in the decided class.
    pub class: Vec<AgentId>,
    /// The other classes, with an example of where each differed.
    pub dissent: Vec<Dissent>,
    /// The probes of the final comparison.
    pub probes: Vec<Call>,
    /// The reference's behaviour on them.
    pub reference_behaviour: Behaviour,
    /// The components as built.
    pub components: Vec<ComponentResult>,
    /// The assembled program.
    pub program: Program,
    /// The integration check's report.
    pub integration: CheckReport,
    /// Agents: calls, faults, suspicions.
    pub agents: Vec<AgentRecord>,
    /// The fault budget m the decision was made with.
    pub fault_budget: usize,
    /// For each pair of agents with a checked reading in the deciding round: on how many of
    /// the probes their references behaved the same. Agents that always agree with each other
    /// are not independent evidence.
    #[serde(default)]
    pub agreement: Vec<PairAgreement>,
}

/// How often two agents' references behaved the same on the probes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PairAgreement {
    /// One agent.
    pub a: AgentId,
    /// The other.
    pub b: AgentId,
    /// Probes with the same outcome.
    pub same: usize,
    /// Probes compared.
    pub probes: usize,
}

/// A class that was outvoted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dissent {
    /// Its agents.
    pub agents: Vec<AgentId>,
    /// Its summary.
    pub summary: String,
    /// A probe where it differs from the decided class: the call, the decided outcome, its
    /// outcome.
    pub example: Option<(Call, Outcome, Outcome)>,
}

/// A component as built.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ComponentResult {
    /// Its name (module).
    pub name: String,
    /// The agent whose candidate was accepted.
    pub agent: AgentId,
    /// The source.
    pub code: String,
    /// Digest of the source.
    pub digest: String,
    /// Contract examples met and probes matched in its refinement check.
    pub contract_met: usize,
    /// Probes on which it matched the decided reference.
    pub probes_matched: usize,
    /// Rejected candidates: agent and reason.
    pub rejected: Vec<(AgentId, String)>,
}

/// What one agent did in the build.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentRecord {
    /// Its id.
    pub id: AgentId,
    /// Its name.
    pub name: String,
    /// Requests sent to it.
    pub calls: u32,
    /// Faults attributed to it, with the stage.
    pub faults: Vec<String>,
    /// Times it missed a deadline.
    pub suspicions: u32,
    /// Whether it is suspected at the end.
    pub suspected: bool,
    /// Tokens its replies cost.
    #[serde(default)]
    pub usage: Usage,
}

#[derive(Clone, Debug)]
struct AgentState {
    info: AgentInfo,
    timeout_ms: u64,
    suspected: bool,
    calls: u32,
    faults: Vec<String>,
    suspicions: u32,
    usage: Usage,
}

#[derive(Clone, Debug)]
enum AskPurpose {
    Interpret,
    Implement { component: usize },
}

#[derive(Clone, Debug)]
struct PendingAsk {
    agent: AgentId,
    purpose: AskPurpose,
    key: String,
    deadline_ms: u64,
}

#[derive(Clone, Debug)]
enum CheckPurpose {
    Reference { agent: AgentId, contract_len: usize },
    Differential { agent: AgentId },
    Component { component: usize, agent: AgentId },
    Integration,
}

#[derive(Clone, Debug, Default)]
struct Interp {
    round: u32,
    sample: u32,
    asked: BTreeSet<AgentId>,
    valid: BTreeMap<AgentId, Interpretation>,
    behaviours: BTreeMap<AgentId, Behaviour>,
    pool: Vec<Call>,
    extra: Vec<Call>,
    checks_pending: usize,
    replaced: usize,
    differential_rounds: u32,
    differential: BTreeMap<AgentId, Behaviour>,
    differential_calls: Vec<Call>,
}

#[derive(Clone, Debug)]
struct CompState {
    spec: ComponentSpec,
    tried: Vec<AgentId>,
    rejected: Vec<(AgentId, String)>,
    accepted: Option<ComponentResult>,
    candidates: BTreeMap<AgentId, String>,
    next: usize,
}

#[derive(Clone, Debug)]
struct Build {
    spec: Spec,
    reference: String,
    representative: AgentId,
    class: Vec<AgentId>,
    dissent: Vec<Dissent>,
    pool: Vec<Call>,
    ref_behaviour: Behaviour,
    builders: Vec<AgentId>,
    comps: Vec<CompState>,
    agreement: Vec<PairAgreement>,
}

#[derive(Clone, Debug)]
enum Stage {
    Idle,
    Interpret(Interp),
    Clarify(Interp, Box<Question>),
    Build(Box<Build>),
    Integrate(Box<Build>),
    Done,
}

/// The build pipeline state machine.
#[derive(Debug)]
pub struct Pipeline {
    cfg: PipelineConfig,
    tally: Tally,
    prompt: Prompt,
    now_ms: u64,
    next_id: u64,
    agents: Vec<AgentState>,
    asks: BTreeMap<AskId, PendingAsk>,
    expired: BTreeMap<AskId, AgentId>,
    checks: BTreeMap<CheckId, CheckPurpose>,
    stage: Stage,
}

const CONTRACT_MAX: usize = 64;
const PROBES_PER_AGENT_MAX: usize = 64;
const COMPONENTS_MAX: usize = 32;
const SOURCE_BYTES_MAX: usize = 256 * 1024;
const QUESTION_PROBES_MAX: usize = 8;
const DISTINGUISHING_MAX: usize = 16;

impl Pipeline {
    /// A pipeline for `prompt`; refuses a fault budget the decision rule cannot honour.
    pub fn new(cfg: PipelineConfig, prompt: Prompt) -> Result<Pipeline, BudgetError> {
        let tally = Tally::new(cfg.agents.len(), cfg.fault_budget)?;
        let agents = cfg
            .agents
            .iter()
            .map(|a| AgentState {
                info: a.clone(),
                timeout_ms: a.timeout_ms,
                suspected: false,
                calls: 0,
                faults: Vec::new(),
                suspicions: 0,
                usage: Usage::default(),
            })
            .collect();
        Ok(Pipeline {
            cfg,
            tally,
            prompt,
            now_ms: 0,
            next_id: 0,
            agents,
            asks: BTreeMap::new(),
            expired: BTreeMap::new(),
            checks: BTreeMap::new(),
            stage: Stage::Idle,
        })
    }

    /// The tally in use.
    pub fn tally(&self) -> Tally {
        self.tally
    }

    /// Is the build over?
    pub fn is_done(&self) -> bool {
        matches!(self.stage, Stage::Done)
    }

    /// Asks still waiting for a reply.
    pub fn pending_asks(&self) -> usize {
        self.asks.len()
    }

    /// Feeds one input at time `now_ms` (ms since the build started); outputs are appended.
    pub fn step(&mut self, now_ms: u64, input: Input, out: &mut Vec<Output>) {
        self.now_ms = self.now_ms.max(now_ms);
        match input {
            Input::Start => {
                if matches!(self.stage, Stage::Idle) {
                    out.push(Output::Persist {
                        kind: "build-started".into(),
                        body: json!({
                            "prompt": self.prompt,
                            "agents": self.cfg.agents,
                            "n": self.tally.n(),
                            "m": self.tally.m(),
                            "seed": self.cfg.seed,
                        }),
                    });
                    self.start_interpret(0, 0, out);
                }
            }
            Input::Replied { ask, reply, usage } => {
                if self.account(ask, usage, out) {
                    self.on_reply(ask, reply, out)
                }
            }
            Input::Heartbeat { ask } => self.on_heartbeat(ask, out),
            Input::CheckFinished { check, report } => self.on_check(check, report, out),
            Input::TimerFired { timer } => self.on_timer(timer, out),
            Input::UserAnswered { answer } => self.on_answer(answer, out),
        }
    }

    fn id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    fn name(&self, a: AgentId) -> String {
        self.agents[a.0 as usize].info.name.clone()
    }

    fn records(&self) -> Vec<AgentRecord> {
        self.agents
            .iter()
            .map(|a| AgentRecord {
                id: a.info.id,
                name: a.info.name.clone(),
                calls: a.calls,
                faults: a.faults.clone(),
                suspicions: a.suspicions,
                suspected: a.suspected,
                usage: a.usage,
            })
            .collect()
    }

    fn fault(&mut self, agent: AgentId, stage: &str, reason: String, out: &mut Vec<Output>) {
        let reason = cap_text(&reason, 400);
        self.agents[agent.0 as usize]
            .faults
            .push(format!("{stage}: {reason}"));
        out.push(Output::Progress(Progress::Fault {
            agent: self.name(agent),
            reason: reason.clone(),
        }));
        out.push(Output::Persist {
            kind: "agent-fault".into(),
            body: json!({"agent": agent, "name": self.name(agent), "stage": stage, "reason": reason}),
        });
    }

    fn ask(
        &mut self,
        agent: AgentId,
        purpose: AskPurpose,
        request: Request,
        out: &mut Vec<Output>,
    ) {
        let ask = AskId(self.id());
        let key = request.key();
        let st = &mut self.agents[agent.0 as usize];
        st.calls += 1;
        let at_ms = self.now_ms + st.timeout_ms;
        self.asks.insert(
            ask,
            PendingAsk {
                agent,
                purpose,
                key: key.clone(),
                deadline_ms: at_ms,
            },
        );
        out.push(Output::Progress(Progress::Asked {
            agent: self.name(agent),
            request: key,
        }));
        out.push(Output::Ask {
            ask,
            agent,
            request: Box::new(request),
        });
        out.push(Output::SetTimer {
            timer: TimerId(ask.0),
            at_ms,
        });
    }

    fn fail(&mut self, stage: &str, reason: String, out: &mut Vec<Output>) {
        out.push(Output::Persist {
            kind: "build-failed".into(),
            body: json!({"stage": stage, "reason": reason, "agents": self.records()}),
        });
        out.push(Output::Finish(Box::new(Finish::Failed {
            stage: stage.into(),
            reason,
            agents: self.records(),
        })));
        self.asks.clear();
        self.checks.clear();
        self.stage = Stage::Done;
    }

    // ---- interpret and agree ------------------------------------------------------------

    fn start_interpret(&mut self, round: u32, sample: u32, out: &mut Vec<Output>) {
        out.push(Output::Progress(Progress::Stage {
            stage: "interpret".into(),
            detail: format!(
                "asking {} of {} agents for a reading (fault budget {}{}{})",
                self.tally.first_wave(),
                self.tally.n(),
                self.tally.m(),
                if round > 0 {
                    format!(", after clarification {round}")
                } else {
                    String::new()
                },
                if sample > 0 {
                    format!(", resample {sample}")
                } else {
                    String::new()
                },
            ),
        }));
        self.stage = Stage::Interpret(Interp {
            round,
            sample,
            ..Interp::default()
        });
        let wave = self.tally.first_wave();
        if self.ask_more_interpret(wave, out) == 0 {
            self.fail(
                "interpret",
                "every agent is suspected: none left to ask".into(),
                out,
            );
        }
    }

    /// Asks up to `k` more agents that are not suspected and not yet asked this sample, in
    /// agents-file order. Returns how many were asked.
    fn ask_more_interpret(&mut self, k: usize, out: &mut Vec<Output>) -> usize {
        let Stage::Interpret(it) = &mut self.stage else {
            return 0;
        };
        let mut chosen = Vec::new();
        for a in &self.agents {
            if chosen.len() >= k {
                break;
            }
            if !a.suspected && !it.asked.contains(&a.info.id) {
                chosen.push(a.info.id);
            }
        }
        for a in &chosen {
            it.asked.insert(*a);
        }
        let (round, sample) = (it.round, it.sample);
        for a in &chosen {
            let request = Request {
                role: Role::Interpret,
                prompt: self.prompt.clone(),
                round,
                sample,
                spec: None,
                component: None,
            };
            self.ask(*a, AskPurpose::Interpret, request, out);
        }
        chosen.len()
    }

    fn interpret_asks_pending(&self) -> bool {
        self.asks
            .values()
            .any(|a| matches!(a.purpose, AskPurpose::Interpret))
    }

    fn on_reply(&mut self, ask: AskId, reply: Result<Reply, ReplyFault>, out: &mut Vec<Output>) {
        let Some(pending) = self.asks.remove(&ask) else {
            if let Some(agent) = self.expired.remove(&ask) {
                // A false suspicion: trust again, wait longer next time (◇P).
                let st = &mut self.agents[agent.0 as usize];
                st.suspected = false;
                st.timeout_ms = st.timeout_ms.saturating_mul(2);
                let timeout_ms = st.timeout_ms;
                out.push(Output::Progress(Progress::Trusted {
                    agent: self.name(agent),
                    timeout_ms,
                }));
                out.push(Output::Persist {
                    kind: "agent-trusted".into(),
                    body: json!({"agent": agent, "timeout_ms": timeout_ms}),
                });
            }
            return;
        };
        let agent = pending.agent;
        if reply.is_ok() {
            out.push(Output::Progress(Progress::Answered {
                agent: self.name(agent),
                request: pending.key.clone(),
            }));
        }
        match pending.purpose {
            AskPurpose::Interpret => self.on_interpretation(agent, reply, out),
            AskPurpose::Implement { component } => {
                self.on_implementation(component, agent, reply, out)
            }
        }
    }

    /// Records what a reply cost; stops the build when the token budget is spent. Returns
    /// whether the build goes on.
    fn account(&mut self, ask: AskId, usage: Usage, out: &mut Vec<Output>) -> bool {
        let agent = self
            .asks
            .get(&ask)
            .map(|p| (p.agent, p.key.clone()))
            .or_else(|| self.expired.get(&ask).map(|a| (*a, String::new())));
        let Some((agent, key)) = agent else {
            return true;
        };
        self.agents[agent.0 as usize].usage.add(usage);
        out.push(Output::Persist {
            kind: "agent-replied".into(),
            body: json!({
                "agent": agent,
                "request": key,
                "input_tokens": usage.input_tokens,
                "output_tokens": usage.output_tokens,
            }),
        });
        let spent: u64 = self.agents.iter().map(|a| a.usage.total()).sum();
        match self.cfg.tokens_max {
            Some(max) if spent > max && !self.is_done() => {
                self.fail(
                    "budget",
                    format!("token budget exhausted: {spent} tokens spent, at most {max} allowed"),
                    out,
                );
                false
            }
            _ => true,
        }
    }

    fn on_heartbeat(&mut self, ask: AskId, out: &mut Vec<Output>) {
        let Some(pending) = self.asks.get_mut(&ask) else {
            return;
        };
        let at_ms = self.now_ms + self.agents[pending.agent.0 as usize].timeout_ms;
        if at_ms > pending.deadline_ms {
            pending.deadline_ms = at_ms;
            out.push(Output::SetTimer {
                timer: TimerId(ask.0),
                at_ms,
            });
        }
    }

    fn on_timer(&mut self, timer: TimerId, out: &mut Vec<Output>) {
        let ask = AskId(timer.0);
        match self.asks.get(&ask) {
            // A deadline that a heartbeat has moved on.
            Some(p) if p.deadline_ms > self.now_ms => return,
            Some(_) => {}
            None => return,
        }
        let Some(pending) = self.asks.remove(&ask) else {
            return;
        };
        let agent = pending.agent;
        let st = &mut self.agents[agent.0 as usize];
        st.suspected = true;
        st.suspicions += 1;
        let timeout_ms = st.timeout_ms;
        self.expired.insert(ask, agent);
        out.push(Output::Progress(Progress::Suspected {
            agent: self.name(agent),
            timeout_ms,
        }));
        out.push(Output::Persist {
            kind: "agent-suspected".into(),
            body: json!({"agent": agent, "name": self.name(agent), "request": pending.key, "timeout_ms": timeout_ms}),
        });
        match pending.purpose {
            AskPurpose::Interpret => {
                self.ask_more_interpret(1, out);
                self.maybe_check_interpretations(out);
            }
            AskPurpose::Implement { component } => self.next_builder(component, out),
        }
    }

    fn on_interpretation(
        &mut self,
        agent: AgentId,
        reply: Result<Reply, ReplyFault>,
        out: &mut Vec<Output>,
    ) {
        if !matches!(self.stage, Stage::Interpret(_)) {
            return;
        }
        let checked = match reply {
            Ok(Reply::Interpretation(i)) => validate_interpretation(&i).map(|()| i),
            Ok(Reply::Implementation(_)) => {
                Err("answered with code where a reading was asked".into())
            }
            Err(f) => Err(f.to_string()),
        };
        match checked {
            Ok(i) => {
                if let Stage::Interpret(it) = &mut self.stage {
                    it.valid.insert(agent, i);
                }
            }
            Err(reason) => {
                self.fault(agent, "interpret", reason, out);
                self.ask_more_interpret(1, out);
            }
        }
        self.maybe_check_interpretations(out);
    }

    /// When no interpret ask is pending: pool the probes and run every reference on them.
    fn maybe_check_interpretations(&mut self, out: &mut Vec<Output>) {
        if self.interpret_asks_pending() {
            return;
        }
        let Stage::Interpret(it) = &mut self.stage else {
            return;
        };
        if it.checks_pending > 0 {
            return;
        }
        if it.valid.is_empty() {
            self.no_decision("no agent gave a valid reading", out);
            return;
        }
        // Pool: every valid agent's probes and contract calls, then the clarification calls.
        let mut own: Vec<Call> = Vec::new();
        for i in it.valid.values() {
            own.extend(i.spec.contract.iter().map(|c| c.call.clone()));
            own.extend(i.probes.iter().cloned());
        }
        for c in &self.prompt.clarifications {
            own.extend(c.examples.iter().map(|e| e.call.clone()));
        }
        let seed = self.cfg.seed ^ (u64::from(it.round) << 32) ^ u64::from(it.sample);
        let mut pool = probes::pool(&own, seed, &self.cfg.probe_limits);
        for c in &it.extra {
            if !pool.contains(c) {
                pool.push(c.clone());
            }
        }
        it.pool = pool.clone();
        it.behaviours.clear();
        let clarified: Vec<ContractExample> = self
            .prompt
            .clarifications
            .iter()
            .flat_map(|c| c.examples.iter().cloned())
            .collect();
        let jobs: Vec<(AgentId, Interpretation)> =
            it.valid.iter().map(|(a, i)| (*a, i.clone())).collect();
        it.checks_pending = jobs.len();
        for (agent, interp) in jobs {
            let mut contract = interp.spec.contract.clone();
            contract.extend(clarified.iter().cloned());
            let request = reference_check(&interp, &contract, &pool);
            let check = CheckId(self.id());
            self.checks.insert(
                check,
                CheckPurpose::Reference {
                    agent,
                    contract_len: contract.len(),
                },
            );
            out.push(Output::RunCheck {
                check,
                request: Box::new(request),
            });
        }
    }

    fn on_check(&mut self, check: CheckId, report: CheckReport, out: &mut Vec<Output>) {
        let Some(purpose) = self.checks.remove(&check) else {
            return;
        };
        match purpose {
            CheckPurpose::Reference {
                agent,
                contract_len,
            } => self.on_reference_check(agent, contract_len, report, out),
            CheckPurpose::Differential { agent } => self.on_differential_check(agent, report, out),
            CheckPurpose::Component { component, agent } => {
                self.on_component_check(component, agent, report, out)
            }
            CheckPurpose::Integration => self.on_integration_check(report, out),
        }
    }

    fn on_reference_check(
        &mut self,
        agent: AgentId,
        contract_len: usize,
        report: CheckReport,
        out: &mut Vec<Output>,
    ) {
        let Stage::Interpret(it) = &mut self.stage else {
            return;
        };
        it.checks_pending = it.checks_pending.saturating_sub(1);
        let problem = {
            let interp = it.valid.get(&agent);
            interp.and_then(|i| {
                let mut contract = i.spec.contract.clone();
                contract.extend(
                    self.prompt
                        .clarifications
                        .iter()
                        .flat_map(|c| c.examples.iter().cloned()),
                );
                refinement_problem(&report, &contract, &[], &[], "reference")
            })
        };
        match problem {
            Some(reason) => {
                it.valid.remove(&agent);
                it.replaced += 1;
                self.fault(agent, "interpret", reason, out);
            }
            None => {
                let behaviour = report.outcomes[contract_len.min(report.outcomes.len())..].to_vec();
                it.behaviours.insert(agent, behaviour);
            }
        }
        let Stage::Interpret(it) = &mut self.stage else {
            return;
        };
        if it.checks_pending > 0 {
            return;
        }
        // Agents whose reference failed its own contract are replaced, then everything is
        // checked again on the grown pool.
        let replace = std::mem::take(&mut it.replaced);
        if replace > 0 && self.ask_more_interpret(replace, out) > 0 {
            return;
        }
        self.apply_rule(out);
    }

    fn classes(&self) -> Vec<(Behaviour, Vec<AgentId>)> {
        let Stage::Interpret(it) = &self.stage else {
            return Vec::new();
        };
        let mut by: BTreeMap<&Behaviour, Vec<AgentId>> = BTreeMap::new();
        for (a, b) in &it.behaviours {
            by.entry(b).or_default().push(*a);
        }
        let mut cs: Vec<(Behaviour, Vec<AgentId>)> =
            by.into_iter().map(|(b, a)| (b.clone(), a)).collect();
        cs.sort_by(|x, y| y.1.len().cmp(&x.1.len()).then(x.1[0].cmp(&y.1[0])));
        cs
    }

    fn apply_rule(&mut self, out: &mut Vec<Output>) {
        let classes = self.classes();
        let sizes: Vec<usize> = classes.iter().map(|c| c.1.len()).collect();
        let verdict = self.tally.verdict(&sizes);
        let Stage::Interpret(it) = &self.stage else {
            return;
        };
        out.push(Output::Progress(Progress::Classes {
            sizes: sizes.clone(),
            probes: it.pool.len(),
            verdict: match &verdict {
                Verdict::Decide => format!("decide (≥ n−m = {})", self.tally.first_wave()),
                Verdict::Ambiguous(_) => "ambiguous".into(),
                Verdict::NotYet => "not yet".into(),
            },
        }));
        match verdict {
            Verdict::Decide => {
                // Members that differ as programs: look for an input that splits them.
                let members = &classes[0].1;
                let mut by_digest: BTreeMap<String, AgentId> = BTreeMap::new();
                for a in members {
                    let d = Program::single(REFERENCE_MODULE, &it.valid[a].reference).digest();
                    by_digest.entry(d).or_insert(*a);
                }
                if by_digest.len() > 1 && it.differential_rounds < self.cfg.differential_rounds_max
                {
                    let reps: Vec<AgentId> = by_digest.into_values().collect();
                    self.start_differential(reps, out);
                } else {
                    self.decide(classes, out);
                }
            }
            Verdict::Ambiguous(idx) => self.ask_user(&classes, &idx, out),
            Verdict::NotYet => {
                let k = self.tally.more_needed(&sizes);
                if self.ask_more_interpret(k, out) == 0 {
                    self.no_decision(
                        &format!(
                            "largest class has {} of the {} needed (n − m) and no agent is left to ask",
                            sizes.first().copied().unwrap_or(0),
                            self.tally.first_wave()
                        ),
                        out,
                    );
                }
            }
        }
    }

    fn no_decision(&mut self, why: &str, out: &mut Vec<Output>) {
        let (round, sample) = match &self.stage {
            Stage::Interpret(it) => (it.round, it.sample),
            _ => (0, 0),
        };
        if sample < self.cfg.resamples_max {
            out.push(Output::Persist {
                kind: "resample".into(),
                body: json!({"round": round, "sample": sample + 1, "why": why}),
            });
            self.start_interpret(round, sample + 1, out);
        } else {
            self.fail("agree", format!("no agreement within budget: {why}"), out);
        }
    }

    fn start_differential(&mut self, reps: Vec<AgentId>, out: &mut Vec<Output>) {
        let Stage::Interpret(it) = &mut self.stage else {
            return;
        };
        it.differential_rounds += 1;
        let seed = self.cfg.seed ^ u64::from(it.differential_rounds) ^ (u64::from(it.round) << 40);
        let calls = probes::differential_calls(
            &it.pool,
            seed,
            self.cfg.differential_max,
            &self.cfg.probe_limits,
        );
        it.differential_calls = calls.clone();
        it.differential.clear();
        it.checks_pending = reps.len();
        let jobs: Vec<(AgentId, Interpretation)> =
            reps.iter().map(|a| (*a, it.valid[a].clone())).collect();
        for (agent, interp) in jobs {
            let request = reference_check(&interp, &[], &calls);
            let check = CheckId(self.id());
            self.checks
                .insert(check, CheckPurpose::Differential { agent });
            out.push(Output::RunCheck {
                check,
                request: Box::new(request),
            });
        }
    }

    fn on_differential_check(
        &mut self,
        agent: AgentId,
        report: CheckReport,
        out: &mut Vec<Output>,
    ) {
        let Stage::Interpret(it) = &mut self.stage else {
            return;
        };
        it.checks_pending = it.checks_pending.saturating_sub(1);
        it.differential.insert(agent, report.outcomes);
        if it.checks_pending > 0 {
            return;
        }
        let behaviours: Vec<&Behaviour> = it.differential.values().collect();
        let mut distinguishing = Vec::new();
        for (k, call) in it.differential_calls.iter().enumerate() {
            let first = behaviours[0].get(k);
            if behaviours.iter().any(|b| b.get(k) != first) {
                distinguishing.push(call.clone());
                if distinguishing.len() >= DISTINGUISHING_MAX {
                    break;
                }
            }
        }
        if distinguishing.is_empty() {
            let classes = self.classes();
            self.decide(classes, out);
        } else {
            out.push(Output::Progress(Progress::Split {
                inputs: distinguishing.len(),
            }));
            out.push(Output::Persist {
                kind: "class-split".into(),
                body: json!({"inputs": distinguishing}),
            });
            it.extra.extend(distinguishing);
            self.maybe_check_interpretations(out);
        }
    }

    fn ask_user(
        &mut self,
        classes: &[(Behaviour, Vec<AgentId>)],
        idx: &[usize],
        out: &mut Vec<Output>,
    ) {
        let Stage::Interpret(it) = &self.stage else {
            return;
        };
        if it.round >= self.cfg.clarifications_max {
            self.fail(
                "clarify",
                format!("the readings still split after {} clarifications", it.round),
                out,
            );
            return;
        }
        let chosen: Vec<&(Behaviour, Vec<AgentId>)> = idx.iter().map(|i| &classes[*i]).collect();
        let readings: Vec<Reading> = chosen
            .iter()
            .enumerate()
            .map(|(k, (_, agents))| Reading {
                label: label(k),
                agents: agents.iter().map(|a| self.name(*a)).collect(),
                summary: it.valid[&agents[0]].spec.summary.clone(),
            })
            .collect();
        let mut differing = Vec::new();
        for (p, call) in it.pool.iter().enumerate() {
            let outcomes: Vec<Outcome> = chosen.iter().map(|(b, _)| b[p].clone()).collect();
            if outcomes.iter().any(|o| *o != outcomes[0]) {
                differing.push(DifferingProbe {
                    call: call.clone(),
                    outcomes,
                });
                if differing.len() >= QUESTION_PROBES_MAX {
                    break;
                }
            }
        }
        let question = Question {
            round: it.round,
            prompt: self.prompt.full_text(),
            readings,
            differing,
        };
        out.push(Output::Persist {
            kind: "ambiguity".into(),
            body: json!({"question": question}),
        });
        out.push(Output::AskUser(Box::new(question.clone())));
        let Stage::Interpret(it) = std::mem::replace(&mut self.stage, Stage::Done) else {
            return;
        };
        self.stage = Stage::Clarify(it, Box::new(question));
    }

    fn on_answer(&mut self, answer: String, out: &mut Vec<Output>) {
        let Stage::Clarify(it, question) = std::mem::replace(&mut self.stage, Stage::Done) else {
            return;
        };
        let trimmed = answer.trim();
        let letter = trimmed
            .strip_prefix("reading ")
            .or_else(|| trimmed.strip_prefix("Reading "))
            .unwrap_or(trimmed)
            .trim()
            .to_uppercase();
        let chosen = question.readings.iter().position(|r| r.label == letter);
        let clarification = match chosen {
            Some(k) => {
                let examples: Vec<ContractExample> = question
                    .differing
                    .iter()
                    .map(|d| ContractExample {
                        call: d.call.clone(),
                        expect: Expectation::Same(d.outcomes[k].clone()),
                    })
                    .collect();
                let cases: Vec<String> = question
                    .differing
                    .iter()
                    .map(|d| format!("{} {}", d.call, outcome_phrase(&d.outcomes[k])))
                    .collect();
                Clarification {
                    text: format!(
                        "Follow reading {}: {}. In particular: {}.",
                        letter,
                        question.readings[k].summary.trim().trim_end_matches('.'),
                        cases.join("; ")
                    ),
                    examples,
                }
            }
            None => Clarification {
                text: cap_text(trimmed, 2000),
                examples: Vec::new(),
            },
        };
        out.push(Output::Persist {
            kind: "clarification".into(),
            body: json!({"answer": cap_text(trimmed, 2000), "clarification": clarification}),
        });
        out.push(Output::Progress(Progress::Decided {
            what: format!("clarification {}: {}", it.round + 1, clarification.text),
        }));
        self.prompt.clarifications.push(clarification);
        self.start_interpret(it.round + 1, 0, out);
    }

    fn decide(&mut self, classes: Vec<(Behaviour, Vec<AgentId>)>, out: &mut Vec<Output>) {
        let Stage::Interpret(it) = std::mem::replace(&mut self.stage, Stage::Done) else {
            return;
        };
        let (ref_behaviour, members) = classes[0].clone();
        // Decompose: the interface most members of the decided class share (ties: agents-file
        // order), and its first holder is the representative.
        let mut by_iface: BTreeMap<Vec<ComponentSpec>, Vec<AgentId>> = BTreeMap::new();
        for a in &members {
            by_iface
                .entry(it.valid[a].spec.interface_key())
                .or_default()
                .push(*a);
        }
        let (_, holders) = by_iface
            .iter()
            .max_by(|x, y| x.1.len().cmp(&y.1.len()).then(y.1[0].cmp(&x.1[0])))
            .map(|(k, v)| (k.clone(), v.clone()))
            .unwrap_or_default();
        let representative = holders.first().copied().unwrap_or(members[0]);
        let rep = it.valid[&representative].clone();
        let mut contract: Vec<ContractExample> = Vec::new();
        for a in &members {
            for c in &it.valid[a].spec.contract {
                if !contract.contains(c) {
                    contract.push(c.clone());
                }
            }
        }
        for c in &self.prompt.clarifications {
            for e in &c.examples {
                if !contract.contains(e) {
                    contract.push(e.clone());
                }
            }
        }
        contract.truncate(CONTRACT_MAX * 2);
        let mut spec = rep.spec.clone();
        spec.contract = contract;
        let dissent: Vec<Dissent> = classes[1..]
            .iter()
            .map(|(b, agents)| Dissent {
                agents: agents.clone(),
                summary: it.valid[&agents[0]].spec.summary.clone(),
                example: it
                    .pool
                    .iter()
                    .enumerate()
                    .find(|(p, _)| b[*p] != ref_behaviour[*p])
                    .map(|(p, c)| (c.clone(), ref_behaviour[p].clone(), b[p].clone())),
            })
            .collect();
        for d in &dissent {
            let reason = match &d.example {
                Some((c, ours, theirs)) => format!(
                    "outvoted: its reading differs from the decided one on {c}: {theirs} instead of {ours}"
                ),
                None => "outvoted".into(),
            };
            for a in &d.agents {
                self.fault(*a, "vote", reason.clone(), out);
            }
        }
        let names: Vec<String> = members.iter().map(|a| self.name(*a)).collect();
        out.push(Output::Persist {
            kind: "interpretation-decided".into(),
            body: json!({
                "round": it.round,
                "sample": it.sample,
                "class": members,
                "representative": representative,
                "summary": spec.summary,
                "reference_digest": Program::single(REFERENCE_MODULE, &rep.reference).digest(),
                "probes": it.pool.len(),
                "dissent": dissent,
                "n": self.tally.n(),
                "m": self.tally.m(),
            }),
        });
        out.push(Output::Progress(Progress::Decided {
            what: format!(
                "reading of {} ({} of {} agents; needed {})",
                names.join(", "),
                members.len(),
                self.tally.n(),
                self.tally.first_wave()
            ),
        }));
        out.push(Output::Persist {
            kind: "decomposition-decided".into(),
            body: json!({
                "components": spec.components,
                "holders": holders,
                "contract": spec.contract,
            }),
        });
        out.push(Output::Progress(Progress::Decided {
            what: format!(
                "decomposition into {} component(s): {}",
                spec.components.len(),
                spec.components
                    .iter()
                    .map(|c| c.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }));
        // Builders: the decided class first, then the other agents, in file order.
        let mut builders: Vec<AgentId> = members.clone();
        for a in &self.agents {
            if !builders.contains(&a.info.id) {
                builders.push(a.info.id);
            }
        }
        let checked: Vec<(&AgentId, &Behaviour)> = it.behaviours.iter().collect();
        let mut agreement = Vec::new();
        for (i, (a, ba)) in checked.iter().enumerate() {
            for (b, bb) in &checked[i + 1..] {
                agreement.push(PairAgreement {
                    a: **a,
                    b: **b,
                    same: ba.iter().zip(bb.iter()).filter(|(x, y)| x == y).count(),
                    probes: ba.len().min(bb.len()),
                });
            }
        }
        let comps = spec
            .components
            .iter()
            .enumerate()
            .map(|(i, c)| CompState {
                spec: c.clone(),
                tried: Vec::new(),
                rejected: Vec::new(),
                accepted: None,
                candidates: BTreeMap::new(),
                // First builders come from the decided class, round robin; the others only
                // when a candidate fails.
                next: i % members.len().max(1),
            })
            .collect();
        self.stage = Stage::Build(Box::new(Build {
            spec,
            reference: rep.reference.clone(),
            representative,
            class: members,
            dissent,
            pool: it.pool.clone(),
            ref_behaviour,
            builders,
            comps,
            agreement,
        }));
        out.push(Output::Progress(Progress::Stage {
            stage: "build".into(),
            detail: "one agent per component; each candidate is checked for refinement".into(),
        }));
        let n = match &self.stage {
            Stage::Build(b) => b.comps.len(),
            _ => 0,
        };
        for c in 0..n {
            self.next_builder(c, out);
        }
    }

    // ---- build and integrate -------------------------------------------------------------

    fn next_builder(&mut self, component: usize, out: &mut Vec<Output>) {
        let Stage::Build(b) = &mut self.stage else {
            return;
        };
        let comp = &mut b.comps[component];
        if comp.accepted.is_some() {
            return;
        }
        let len = b.builders.len();
        let mut pick = None;
        if comp.tried.len() < self.cfg.build_attempts_max {
            for k in 0..len {
                let a = b.builders[(comp.next + k) % len];
                if !self.agents[a.0 as usize].suspected && !comp.tried.contains(&a) {
                    pick = Some(a);
                    comp.next = (comp.next + k + 1) % len;
                    break;
                }
            }
        }
        let Some(agent) = pick else {
            let name = comp.spec.name.clone();
            let tried = comp.rejected.clone();
            let why: Vec<String> = tried
                .iter()
                .map(|(a, r)| format!("{}: {r}", self.name(*a)))
                .collect();
            self.fail(
                "build",
                format!(
                    "no candidate for component {name} passed its refinement check within budget ({})",
                    why.join("; ")
                ),
                out,
            );
            return;
        };
        comp.tried.push(agent);
        let request = Request {
            role: Role::Implement,
            prompt: self.prompt.clone(),
            round: 0,
            sample: 0,
            spec: Some(b.spec.clone()),
            component: Some(comp.spec.name.clone()),
        };
        self.ask(agent, AskPurpose::Implement { component }, request, out);
    }

    fn on_implementation(
        &mut self,
        component: usize,
        agent: AgentId,
        reply: Result<Reply, ReplyFault>,
        out: &mut Vec<Output>,
    ) {
        let Stage::Build(b) = &self.stage else {
            return;
        };
        let code = match reply {
            Ok(Reply::Implementation(code)) if code.trim().is_empty() => {
                Err("empty module".to_string())
            }
            Ok(Reply::Implementation(code)) if code.len() > SOURCE_BYTES_MAX => {
                Err(format!("module larger than {SOURCE_BYTES_MAX} bytes"))
            }
            Ok(Reply::Implementation(code)) => Ok(code),
            Ok(Reply::Interpretation(_)) => {
                Err("answered with a reading where code was asked".into())
            }
            Err(f) => Err(f.to_string()),
        };
        match code {
            Ok(code) => {
                let request = component_check(b, component, &code);
                let check = CheckId(self.id());
                self.checks
                    .insert(check, CheckPurpose::Component { component, agent });
                if let Stage::Build(b) = &mut self.stage {
                    // Kept until its check answers.
                    b.comps[component].candidates.insert(agent, code);
                }
                out.push(Output::RunCheck {
                    check,
                    request: Box::new(request),
                });
            }
            Err(reason) => {
                let name = b.comps[component].spec.name.clone();
                self.reject(component, agent, format!("{name}: {reason}"), out);
            }
        }
    }

    fn reject(&mut self, component: usize, agent: AgentId, reason: String, out: &mut Vec<Output>) {
        if let Stage::Build(b) = &mut self.stage {
            b.comps[component].rejected.push((agent, reason.clone()));
        }
        self.fault(agent, "build", reason, out);
        self.next_builder(component, out);
    }

    fn on_component_check(
        &mut self,
        component: usize,
        agent: AgentId,
        report: CheckReport,
        out: &mut Vec<Output>,
    ) {
        let Stage::Build(b) = &mut self.stage else {
            return;
        };
        let name = b.comps[component].spec.name.clone();
        let code = b.comps[component]
            .candidates
            .remove(&agent)
            .unwrap_or_default();
        let problem = refinement_problem(
            &report,
            &b.spec.contract,
            &b.pool,
            &b.ref_behaviour,
            "candidate",
        );
        if let Some(reason) = problem {
            self.reject(component, agent, format!("{name}: {reason}"), out);
            return;
        }
        let digest = Program::single(&name, &code).digest();
        let result = ComponentResult {
            name: name.clone(),
            agent,
            digest: digest.clone(),
            code,
            contract_met: b.spec.contract.len(),
            probes_matched: b.pool.len(),
            rejected: b.comps[component].rejected.clone(),
        };
        b.comps[component].accepted = Some(result);
        let all_done = b.comps.iter().all(|c| c.accepted.is_some());
        out.push(Output::Persist {
            kind: "component-accepted".into(),
            body: json!({
                "component": name,
                "agent": agent,
                "digest": digest,
                "contract_met": b.spec.contract.len(),
                "probes_matched": b.pool.len(),
            }),
        });
        out.push(Output::Progress(Progress::CheckPassed {
            what: format!(
                "{name} by {} refines the decided reading ({} contract examples, {} probes)",
                self.name(agent),
                match &self.stage {
                    Stage::Build(b) => b.spec.contract.len(),
                    _ => 0,
                },
                match &self.stage {
                    Stage::Build(b) => b.pool.len(),
                    _ => 0,
                }
            ),
        }));
        if all_done {
            self.integrate(out);
        }
    }

    fn integrate(&mut self, out: &mut Vec<Output>) {
        let Stage::Build(b) = std::mem::replace(&mut self.stage, Stage::Done) else {
            return;
        };
        out.push(Output::Progress(Progress::Stage {
            stage: "integrate".into(),
            detail: "assembling the components and checking the whole program".into(),
        }));
        let program = b.program();
        let request = program_check(&b.spec, &program, &b.pool);
        let check = CheckId(self.id());
        self.checks.insert(check, CheckPurpose::Integration);
        out.push(Output::RunCheck {
            check,
            request: Box::new(request),
        });
        self.stage = Stage::Integrate(b);
    }

    fn on_integration_check(&mut self, report: CheckReport, out: &mut Vec<Output>) {
        let Stage::Integrate(b) = std::mem::replace(&mut self.stage, Stage::Done) else {
            return;
        };
        if let Some(reason) = refinement_problem(
            &report,
            &b.spec.contract,
            &b.pool,
            &b.ref_behaviour,
            "assembled program",
        ) {
            self.stage = Stage::Integrate(b);
            self.fail("integrate", reason, out);
            return;
        }
        let program = b.program();
        out.push(Output::Persist {
            kind: "integration-passed".into(),
            body: json!({
                "program_digest": program.digest(),
                "contract_met": b.spec.contract.len(),
                "probes_matched": b.pool.len(),
            }),
        });
        out.push(Output::Progress(Progress::CheckPassed {
            what: format!(
                "assembled program meets the contract ({} examples) and matches the decided reference on {} probes",
                b.spec.contract.len(),
                b.pool.len()
            ),
        }));
        let outcome = BuildOutcome {
            prompt: self.prompt.clone(),
            spec: b.spec.clone(),
            reference: b.reference.clone(),
            representative: b.representative,
            class: b.class.clone(),
            dissent: b.dissent.clone(),
            probes: b.pool.clone(),
            reference_behaviour: b.ref_behaviour.clone(),
            components: b.comps.iter().filter_map(|c| c.accepted.clone()).collect(),
            program,
            integration: report,
            agents: self.records(),
            fault_budget: self.tally.m(),
            agreement: b.agreement.clone(),
        };
        out.push(Output::Finish(Box::new(Finish::Built(Box::new(outcome)))));
        self.asks.clear();
        self.stage = Stage::Done;
    }
}

impl Build {
    fn program(&self) -> Program {
        let mut p = Program::default();
        for c in &self.comps {
            if let Some(a) = &c.accepted {
                p.modules.insert(a.name.clone(), a.code.clone());
            }
        }
        p
    }
}

fn label(k: usize) -> String {
    let letters = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ";
    if k < letters.len() {
        (letters[k] as char).to_string()
    } else {
        format!("R{k}")
    }
}

fn outcome_phrase(o: &Outcome) -> String {
    match o {
        Outcome::Value(v) => format!("returns {v}"),
        Outcome::Error(k) => format!("raises {k}"),
        Outcome::Timeout => "does not finish".into(),
    }
}

fn cap_text(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// Semantic checks of a parsed interpretation: names, arities, bounds.
pub fn validate_interpretation(i: &Interpretation) -> Result<(), String> {
    let spec = &i.spec;
    if spec.components.is_empty() {
        return Err("the spec names no component".into());
    }
    if spec.components.len() > COMPONENTS_MAX {
        return Err(format!("more than {COMPONENTS_MAX} components"));
    }
    let mut modules = BTreeSet::new();
    let mut arity: BTreeMap<&str, usize> = BTreeMap::new();
    for c in &spec.components {
        if !is_identifier(&c.name) || c.name == REFERENCE_MODULE {
            return Err(format!(
                "component name {:?} is not a usable module name",
                c.name
            ));
        }
        if !modules.insert(c.name.as_str()) {
            return Err(format!("component {} is named twice", c.name));
        }
        if c.functions.is_empty() {
            return Err(format!("component {} has no function", c.name));
        }
        for f in &c.functions {
            if !is_identifier(&f.name) {
                return Err(format!("function name {:?} is not an identifier", f.name));
            }
            if let Some(p) = f.params.iter().find(|p| !is_identifier(p)) {
                return Err(format!(
                    "parameter {p:?} of {} is not an identifier",
                    f.name
                ));
            }
            if arity.insert(&f.name, f.params.len()).is_some() {
                return Err(format!("function {} is defined by two components", f.name));
            }
        }
    }
    if spec.contract.is_empty() {
        return Err("the spec has no contract examples".into());
    }
    if spec.contract.len() > CONTRACT_MAX {
        return Err(format!("more than {CONTRACT_MAX} contract examples"));
    }
    if i.probes.len() > PROBES_PER_AGENT_MAX {
        return Err(format!("more than {PROBES_PER_AGENT_MAX} probes"));
    }
    if i.reference.len() > SOURCE_BYTES_MAX {
        return Err(format!("reference larger than {SOURCE_BYTES_MAX} bytes"));
    }
    if i.reference.trim().is_empty() {
        return Err("no reference program".into());
    }
    let calls = spec
        .contract
        .iter()
        .map(|c| (&c.call, "contract example"))
        .chain(i.probes.iter().map(|c| (c, "probe")));
    for (call, what) in calls {
        match arity.get(call.function.as_str()) {
            None => {
                return Err(format!(
                    "{what} {call} calls a function the spec does not define"
                ));
            }
            Some(n) if *n != call.args.len() => {
                return Err(format!(
                    "{what} {call} passes {} argument(s); {} takes {n}",
                    call.args.len(),
                    call.function
                ));
            }
            _ => {}
        }
    }
    Ok(())
}

fn contract_calls(contract: &[ContractExample]) -> Vec<CheckCall> {
    contract
        .iter()
        .map(|c| CheckCall {
            call: c.call.clone(),
            expect: Some(c.expect.clone()),
        })
        .collect()
}

fn probe_calls(pool: &[Call]) -> Vec<CheckCall> {
    pool.iter()
        .map(|c| CheckCall {
            call: c.clone(),
            expect: None,
        })
        .collect()
}

/// A check of a reference program: its contract, then the probes.
fn reference_check(
    i: &Interpretation,
    contract: &[ContractExample],
    pool: &[Call],
) -> CheckRequest {
    let mut fm = BTreeMap::new();
    let mut interface = Vec::new();
    for c in &i.spec.components {
        for f in &c.functions {
            fm.insert(f.name.clone(), REFERENCE_MODULE.to_string());
            interface.push((REFERENCE_MODULE.to_string(), f.clone()));
        }
    }
    let mut calls = contract_calls(contract);
    calls.extend(probe_calls(pool));
    CheckRequest {
        program: Program::single(REFERENCE_MODULE, &i.reference),
        function_modules: fm,
        interface,
        calls,
    }
}

/// A check of one component: the candidate for it, the decided reference behind every other
/// component.
fn component_check(b: &Build, component: usize, code: &str) -> CheckRequest {
    let mut program = Program::single(REFERENCE_MODULE, &b.reference);
    for (i, c) in b.spec.components.iter().enumerate() {
        let src = if i == component {
            code.to_string()
        } else {
            format!("from {REFERENCE_MODULE} import *  # stands in for the decided reference\n")
        };
        program.modules.insert(c.name.clone(), src);
    }
    let interface = b.spec.components[component]
        .functions
        .iter()
        .map(|f| (b.spec.components[component].name.clone(), f.clone()))
        .collect();
    let mut calls = contract_calls(&b.spec.contract);
    calls.extend(probe_calls(&b.pool));
    CheckRequest {
        program,
        function_modules: b.spec.function_modules(),
        interface,
        calls,
    }
}

/// A check of an assembled program against a spec: interface, contract, probes.
pub fn program_check(spec: &Spec, program: &Program, pool: &[Call]) -> CheckRequest {
    let interface = spec
        .components
        .iter()
        .flat_map(|c| c.functions.iter().map(|f| (c.name.clone(), f.clone())))
        .collect();
    let mut calls = contract_calls(&spec.contract);
    calls.extend(probe_calls(pool));
    CheckRequest {
        program: program.clone(),
        function_modules: spec.function_modules(),
        interface,
        calls,
    }
}

/// Did a check show refinement? `None` if so, else the first reason it does not: load error,
/// interface mismatch, an unmet contract example, or a probe where the outcome differs from
/// `expected` (the decided reference's behaviour). The report's calls are the contract first,
/// then the probes.
pub fn refinement_problem(
    report: &CheckReport,
    contract: &[ContractExample],
    pool: &[Call],
    expected: &[Outcome],
    what: &str,
) -> Option<String> {
    if let Some(e) = &report.load_error {
        return Some(format!("{what} does not load: {e}"));
    }
    if let Some(e) = report.interface_errors.first() {
        return Some(format!("{what} does not match the interface: {e}"));
    }
    for (k, ex) in contract.iter().enumerate() {
        let outcome = report.outcomes.get(k).cloned().unwrap_or(Outcome::Timeout);
        let met = match &ex.expect {
            Expectation::Same(o) => outcome == *o,
            _ => report.met.get(k).copied().flatten() == Some(true),
        };
        if !met {
            return Some(format!(
                "{what} breaks the contract: {} should {}, but {}",
                ex.call,
                match &ex.expect {
                    Expectation::Returns(v) => format!("return {}", v.python()),
                    Expectation::Raises(e) => format!("raise {e}"),
                    Expectation::Same(Outcome::Value(v)) => format!("return {v}"),
                    Expectation::Same(Outcome::Error(e)) => format!("raise {e}"),
                    Expectation::Same(Outcome::Timeout) => "not finish".into(),
                },
                outcome_phrase(&outcome)
            ));
        }
    }
    for (p, call) in pool.iter().enumerate() {
        let got = report
            .outcomes
            .get(contract.len() + p)
            .cloned()
            .unwrap_or(Outcome::Timeout);
        if let Some(want) = expected.get(p)
            && got != *want
        {
            return Some(format!(
                "{what} differs from the decided reference on {call}: {} instead of {}",
                outcome_phrase(&got),
                outcome_phrase(want)
            ));
        }
    }
    None
}
