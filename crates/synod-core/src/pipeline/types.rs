//! The pipeline's vocabulary: its configuration, what goes in ([`Input`]) and out ([`Output`]),
//! the requests agents get, and what a finished build reports.

use super::decision::{Decision, Fault};
use crate::model::*;
use crate::probes::ProbeLimits;
use serde::{Deserialize, Serialize};
use std::fmt;

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

/// Default of [`PipelineConfig::timeout_increment_ms`].
pub const TIMEOUT_INCREMENT_MS: u64 = 10_000;
/// Default of [`PipelineConfig::timeout_max_ms`].
pub const TIMEOUT_MAX_MS: u64 = 600_000;

/// Default of [`PipelineConfig::resamples_max`].
pub const RESAMPLES_MAX: u32 = 4;
/// Default of [`PipelineConfig::ahead_by`].
pub const AHEAD_BY: usize = 2;
/// Default of [`PipelineConfig::interpret_calls_max`], per agent: 3n calls a round.
pub const INTERPRET_CALLS_PER_AGENT: usize = 3;

/// The protocol knobs a user or an eval strategy may set on a build (PL-20, PL-22); `None`
/// keeps the pipeline's default.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Knobs {
    /// PL-20's k (0: the widened tally off).
    pub ahead_by: Option<usize>,
    /// Interpret calls a round may make.
    pub interpret_calls_max: Option<usize>,
    /// PL-22 on.
    pub distinguish: bool,
    /// PL-28 off: an answer is always read again.
    pub reread: bool,
}

impl Knobs {
    /// Sets them on a pipeline configuration.
    pub fn apply(&self, cfg: &mut PipelineConfig) {
        if let Some(k) = self.ahead_by {
            cfg.ahead_by = k;
        }
        if let Some(c) = self.interpret_calls_max {
            cfg.interpret_calls_max = c;
        }
        cfg.distinguish |= self.distinguish;
        cfg.answer_decides &= !self.reread;
    }
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
    /// PL-20's k: a class that holds k readings more than the next, every sample of the round
    /// counted, and readings of more than m distinct agents is decided; 0 turns it off.
    pub ahead_by: usize,
    /// Interpret calls one round (one prompt, every sample) may make; at least n − m.
    pub interpret_calls_max: usize,
    /// Fresh samples of one agent, within a round, after its reading was faulted and no
    /// agent is left that was not asked (PL-18).
    pub retries_max: u32,
    /// Candidates tried per component before the build fails.
    pub build_attempts_max: usize,
    /// PL-22: before deciding a class whose members are different programs and that the
    /// differential search did not split, ask an agent for inputs that could tell two of them
    /// apart (S*). Off by default: one more call per such decision.
    pub distinguish: bool,
    /// PL-21: a one-component reading's decided reference is the component's first candidate
    /// (checked like any other); builders are asked only if it fails.
    pub reference_first: bool,
    /// PL-25: when the prompt fixes no example and the readings split with nobody left to ask,
    /// ask the user rather than resample and decide by a statistical lead (PL-20).
    pub ask_open: bool,
    /// PL-28: a user's choice of a reading held by more than m agents decides that reading's
    /// class; otherwise (or when off) every agent reads again with the clarification.
    pub answer_decides: bool,
    /// Clarification questions before the build gives up.
    pub clarifications_max: u32,
    /// Tokens (in and out, all agents) the build may spend; `None` for no limit.
    pub tokens_max: Option<u64>,
    /// Added to an agent's timeout each time a suspicion of it proves false (FD-2).
    pub timeout_increment_ms: u64,
    /// No agent's timeout grows past this.
    pub timeout_max_ms: u64,
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
            resamples_max: RESAMPLES_MAX,
            ahead_by: AHEAD_BY,
            interpret_calls_max: INTERPRET_CALLS_PER_AGENT * n.max(1),
            retries_max: 1,
            build_attempts_max: n.max(1),
            reference_first: true,
            distinguish: false,
            ask_open: true,
            answer_decides: true,
            clarifications_max: 3,
            tokens_max: None,
            timeout_increment_ms: TIMEOUT_INCREMENT_MS,
            timeout_max_ms: TIMEOUT_MAX_MS,
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
    /// Propose inputs on which two programs of one class could differ (PL-22).
    Distinguish,
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
    /// Distinguish: the programs to tell apart.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub programs: Vec<String>,
    /// Interpret (PL-29): the agent's own earlier program of this prompt and what was wrong
    /// with it. Not serialized when absent, so a request without it keys the response cache
    /// as before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repair: Option<Repair>,
}

/// An agent's earlier program and why it is not a reading (PL-29): shown to the same agent,
/// which is asked to fix it rather than to read the prompt afresh.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Repair {
    /// The program as the agent wrote it, one `# module:` block per module.
    pub program: String,
    /// What it does that the request, its examples or the user's answers say it must not, in
    /// words addressed to the agent ("… should return False, but your program returns True").
    pub problem: String,
}

impl Request {
    /// A short stable name of the request (`interpret`, `interpret.r1`, `implement.lexer`,
    /// `interpret.s1.fix-0123abcd` for a repaired ask, PL-29), used by progress lines and as
    /// a reading's identity (PL-20). Scripted transcripts are looked up by role, round and
    /// sample, not by this key.
    pub fn key(&self) -> String {
        let mut k = match self.role {
            Role::Interpret => "interpret".to_string(),
            Role::Distinguish => "distinguish".to_string(),
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
        if let Some(r) = &self.repair {
            // A repaired ask is another request than the plain one of its sample (PL-29): a
            // reading's identity in the widened tally (PL-20) is its agent and this key.
            let mut h = blake3::Hasher::new();
            h.update(&(r.program.len() as u64).to_le_bytes());
            h.update(r.program.as_bytes());
            h.update(r.problem.as_bytes());
            k.push_str(&format!(".fix-{}", &h.finalize().to_hex()[..8]));
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
    /// An answer to a distinguish request: the proposed calls.
    Inputs(Vec<Call>),
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

    /// Adds `other`'s tokens (saturating).
    pub fn add(&mut self, other: Usage) {
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
/// What a deadline is for: the pipeline's timers are typed, and the pipeline says when the
/// next one is due ([`Pipeline::poll_timeout`](super::Pipeline::poll_timeout)).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Timer {
    /// The deadline of the asks pending with this agent: silent past it (no reply, no
    /// heartbeat on any of them), it is suspected and its work goes to others (PL-3).
    AskDeadline(AgentId),
}

/// When the next timer is due, and which.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deadline {
    /// Ms since the build started.
    pub at_ms: u64,
    /// The timer to fire then, with [`Input::TimerFired`].
    pub timer: Timer,
}

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
    /// A deadline the pipeline announced ([`Pipeline::poll_timeout`](super::Pipeline::poll_timeout))
    /// passed.
    TimerFired {
        /// The timer.
        timer: Timer,
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
    /// Run a program in the sandbox and answer with [`Input::CheckFinished`].
    RunCheck {
        /// The check.
        check: CheckId,
        /// What to run.
        request: Box<CheckRequest>,
    },
    /// Append a decision or evidence to the log, durably, before acting on later outputs.
    Persist(Box<Decision>),
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
    /// A suspected agent answered late: the suspicion was false and its timeout grows by the
    /// increment, up to the cap (FD-2).
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
    /// Something about an agent's reply worth knowing that is not a fault.
    Note {
        /// Agent name.
        agent: String,
        /// What.
        note: String,
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
            Progress::Note { agent, note } => write!(f, "  note: {agent}: {note}"),
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
    /// The readings agree on every input shaped like the examples and differ only on inputs
    /// outside that domain (PL-19).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub outside_domain: bool,
    /// PL-24: the prompt's own example that more agents than the fault budget explains read
    /// the text against. Reading A keeps the example; the others follow the text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contradicts: Option<ContractExample>,
    /// PL-25: the prompt fixes no example and every agent was asked, and no reading is held by
    /// enough agents to decide: the readings are shown whatever their size.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub open: bool,
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

/// How the widened rule (PL-20) decided a reading: not by the fault budget alone, but by a
/// lead of k readings, every sample of the round counted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AheadBy {
    /// The lead required.
    pub k: usize,
    /// Readings in the decided group.
    pub readings: usize,
    /// Distinct agents among them (more than m).
    pub agents: usize,
    /// Readings counted in all.
    pub of: usize,
    /// Interpret calls the round had made.
    pub calls: usize,
}

/// Members of a decided class that behave the same on every input in the domain and differ
/// outside it (PL-19): not a vote, evidence for the report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutsideDomain {
    /// The sub-classes, the decided reference's first.
    pub groups: Vec<Vec<AgentId>>,
    /// Inputs outside the domain on which they differ (at most 8), outcomes in group order.
    pub differing: Vec<DifferingProbe>,
}

/// A probe where readings differ.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DifferingProbe {
    /// The call.
    pub call: Call,
    /// Outcome under each reading, in reading order.
    pub outcomes: Vec<Outcome>,
}

/// A checked example as a person reads it: `f(2) == 4`, `f(0) raises ValueError`.
pub fn example_text(ex: &ContractExample) -> String {
    match &ex.expect {
        Expectation::Returns(v) => format!("{} == {}", ex.call, v.python()),
        Expectation::Raises(e) => format!("{} raises {e}", ex.call),
        Expectation::Same(o) => format!("{} gives {o}", ex.call),
    }
}

impl fmt::Display for Question {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(ex) = &self.contradicts {
            writeln!(
                f,
                "The prompt contradicts itself: its example `{}` is not what {} of the agents read from its text:",
                example_text(ex),
                self.readings
                    .iter()
                    .skip(1)
                    .map(|r| r.agents.len())
                    .sum::<usize>()
            )?;
        } else if self.open {
            writeln!(
                f,
                "The prompt gives no example, and the agents read it in {} different ways, none held by enough of them to decide:",
                self.readings.len()
            )?;
        } else if self.outside_domain {
            writeln!(
                f,
                "The agents agree on every input shaped like the examples, but their programs differ outside that domain in {} ways, each held by more agents than the fault budget explains:",
                self.readings.len()
            )?;
        } else {
            writeln!(
                f,
                "The agents read the prompt in {} different ways, each held by more agents than the fault budget explains:",
                self.readings.len()
            )?;
        }
        for r in &self.readings {
            write!(f, "  reading {} ({})", r.label, r.agents.join(", "))?;
            // A reading from code has no summary of its own (PL-15): its outcomes below are
            // what it says.
            match r.summary.trim() {
                "" => writeln!(f)?,
                summary => writeln!(f, ": {summary}")?,
            }
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
    /// Where the decided class's members differ outside the domain (PL-19), if they do.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outside_domain: Option<OutsideDomain>,
    /// Set when the widened rule decided the reading (PL-20).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ahead_by: Option<AheadBy>,
    /// The probes of the final comparison (those in the domain).
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
    /// Faults attributed to it.
    pub faults: Vec<Fault>,
    /// Times it missed a deadline.
    pub suspicions: u32,
    /// Whether it is suspected at the end.
    pub suspected: bool,
    /// Tokens its replies cost.
    #[serde(default)]
    pub usage: Usage,
    /// How often its own reference did what it said its examples return: evidence about the
    /// agent, never a vote (PL-17).
    #[serde(default)]
    pub self_consistency: SelfConsistency,
}

/// An agent's stated examples, and how many its own reference met.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SelfConsistency {
    /// Examples it stated a result for.
    pub stated: u32,
    /// Of those, met by its own reference.
    pub met: u32,
}

/// Inputs that meant nothing where they arrived, counted by kind and otherwise ignored.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StrayInputs {
    /// `Start` after the build started.
    pub starts: u64,
    /// Replies to asks never sent or already answered, or for a stage that is over.
    pub replies: u64,
    /// Heartbeats for asks that are not waiting.
    pub heartbeats: u64,
    /// Timers for asks that are answered or expired.
    pub timers: u64,
    /// Check reports nobody waits for (unknown, duplicated, or for a stage that is over).
    pub checks: u64,
    /// Answers when no question is pending.
    pub answers: u64,
}

impl StrayInputs {
    /// All of them.
    pub fn total(&self) -> u64 {
        self.starts + self.replies + self.heartbeats + self.timers + self.checks + self.answers
    }
}
