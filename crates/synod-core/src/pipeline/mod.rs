//! The build pipeline of DESIGN §4 as a sans-IO state machine.
//!
//! Drive it with [`Pipeline::step`]: each [`Input`] (start, an agent replied, a check finished,
//! a timer fired, the user answered) yields [`Output`]s, run in order: ask an agent, run a
//! check in the sandbox, persist a decision, report progress, ask the user, finish. A persist
//! must be durable before any later output is acted on. Time is asked for, not set:
//! [`Pipeline::poll_timeout`] says when the next deadline is due.
//!
//! Stages, a file each: [`interpret`] (ask agents in waves) → [`agree`] (pool probes, run every
//! reference, group by behaviour, apply the [`Tally`], split classes by differential testing) →
//! [`clarify`] (when the rule says ambiguity) → [`decompose`] (the decided class's interface) →
//! [`build`] (one agent per component, each candidate checked for refinement, failures
//! reassigned) → [`integrate`] (the assembled program checked again). [`agents`] holds what is
//! known of each agent (asks, deadlines, suspicion, faults), [`refinement`] the checks that
//! `verify` re-runs.
//!
//! [`Pipeline::step`] is the one entry point: it takes the stage out of the machine, lets
//! [`Pipeline::transition`] match on (stage, input) and hand the stage's state to that stage's
//! handler, and stores the stage the handler returns.

mod agents;
mod agree;
mod build;
mod clarify;
mod decision;
mod decompose;
pub mod drive;
mod integrate;
mod interpret;
mod refinement;
mod types;

pub use clarify::read_answer;
pub use decision::{DECISION_KINDS, Decision, Fault, FaultKind, FaultStage, LOG_FORMAT};
pub use interpret::{
    DEFAULT_MODULE, drop_unusable_calls, resolve_qualified_names, validate_interpretation,
};
pub use refinement::{
    RefinementProblem, component_request, contract_calls, outcome_phrase, probe_calls,
    program_check, refinement_problem,
};
pub use types::*;

use crate::facts::{PromptFacts, prompt_facts};
use crate::model::*;
use crate::protocols::detector::EventuallyPerfect;
use crate::tally::{BudgetError, Tally};
use agents::{AgentState, AskPurpose, PendingAsk};
use build::Build;
use interpret::Interp;
use std::collections::BTreeMap;

/// Module name under which a reference program is loaded in checks.
pub const REFERENCE_MODULE: &str = "synod_reference";

const CONTRACT_MAX: usize = 64;
/// Most examples in the decided contract: the class's (deduplicated) and the clarified ones.
const DECIDED_CONTRACT_MAX: usize = CONTRACT_MAX * 2;
const PROBES_PER_AGENT_MAX: usize = 64;
const COMPONENTS_MAX: usize = 32;
const SOURCE_BYTES_MAX: usize = 256 * 1024;
const QUESTION_PROBES_MAX: usize = 8;
const DISTINGUISHING_MAX: usize = 16;

/// Why a check was started; its report goes to the stage that started it.
#[derive(Clone, Debug)]
enum CheckPurpose {
    /// Load a reading's reference to read its interface (PL-15).
    Interface {
        agent: AgentId,
    },
    /// A reference on the prompt's and the user's examples (`contract_len`), the agent's
    /// stated examples (`stated_len`, evidence only) and the pool.
    Reference {
        agent: AgentId,
        contract_len: usize,
        stated_len: usize,
    },
    Differential {
        agent: AgentId,
    },
    /// An earlier sample's reading (`Interp::carried[index]`) on this sample's pool (PL-20).
    Carried {
        index: usize,
    },
    Component {
        component: usize,
        agent: AgentId,
    },
    Integration,
}

/// Where the build is, with the state that stage owns.
#[derive(Clone, Debug)]
enum Stage {
    /// Not started.
    Idle,
    /// Interpret and agree: readings are asked for, checked and tallied.
    Interpret(Box<Interp>),
    /// The readings split beyond the fault budget; the question is out.
    Clarify(Box<Interp>, Box<Question>),
    /// Components are being built.
    Build(Box<Build>),
    /// The assembled program is being checked.
    Integrate(Box<Build>),
    /// Finished (built or failed).
    Done,
}

/// The build pipeline state machine.
#[derive(Debug)]
pub struct Pipeline {
    cfg: PipelineConfig,
    tally: Tally,
    prompt: Prompt,
    /// What the prompt's text fixes: module, signatures, literal examples (PL-16).
    facts: PromptFacts,
    now_ms: u64,
    next_id: u64,
    agents: Vec<AgentState>,
    asks: BTreeMap<AskId, PendingAsk>,
    expired: BTreeMap<AskId, AgentId>,
    detector: EventuallyPerfect,
    checks: BTreeMap<CheckId, CheckPurpose>,
    stage: Stage,
    /// Whether a [`Output::Finish`] was emitted (exactly when the stage is `Done`).
    finished: bool,
    stray: StrayInputs,
    /// Readings that broke one of the prompt's own examples, by round (PL-24).
    contradictions: Vec<agree::Contradiction>,
    /// What the user's last answer shows each agent of its own program on its first ask of the
    /// round the answer starts (PL-29); taken when that ask is made.
    repairs: BTreeMap<AgentId, Repair>,
}

impl Pipeline {
    /// A pipeline for `prompt`; refuses a fault budget the decision rule cannot honour.
    pub fn new(cfg: PipelineConfig, prompt: Prompt) -> Result<Pipeline, BudgetError> {
        let tally = Tally::new(cfg.agents.len(), cfg.fault_budget)?;
        let agents = cfg.agents.iter().map(AgentState::new).collect();
        let detector = agents::detector(&cfg);
        let facts = prompt_facts(&prompt.text);
        Ok(Pipeline {
            cfg,
            tally,
            facts,
            prompt,
            now_ms: 0,
            next_id: 0,
            agents,
            asks: BTreeMap::new(),
            expired: BTreeMap::new(),
            detector,
            checks: BTreeMap::new(),
            stage: Stage::Idle,
            finished: false,
            stray: StrayInputs::default(),
            contradictions: Vec::new(),
            repairs: BTreeMap::new(),
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

    /// When the next timer is due, if any: the driver waits until then (or for another input)
    /// and feeds [`Input::TimerFired`] with it. It moves as agents show signs of life; a timer
    /// fed early or late is judged at the time it is fed.
    pub fn poll_timeout(&self) -> Option<Deadline> {
        if matches!(self.stage, Stage::Done) {
            return None;
        }
        self.next_deadline()
    }

    /// Inputs that meant nothing where they arrived, by kind: counted and ignored (PL-11).
    pub fn stray(&self) -> StrayInputs {
        self.stray
    }

    /// The most probes a round compares: the pooled probes, plus the distinguishing inputs
    /// every differential round may add.
    pub fn pool_max(&self) -> usize {
        self.cfg.probe_limits.probes_max
            + DISTINGUISHING_MAX * self.cfg.differential_rounds_max as usize
    }

    /// Feeds one input at time `now_ms` (ms since the build started); outputs are appended.
    pub fn step(&mut self, now_ms: u64, input: Input, out: &mut Vec<Output>) {
        self.now_ms = self.now_ms.max(now_ms);
        // The stage is out of the machine while its handler runs: handlers get its state as an
        // argument and return the stage that follows, so none can read a stale one.
        let stage = std::mem::replace(&mut self.stage, Stage::Done);
        self.stage = self.transition(stage, input, out);
        self.check_invariants();
    }

    /// The invariants every step must leave standing. A failure is a bug in the pipeline, so
    /// these are `assert!`s, kept in release builds.
    fn check_invariants(&self) {
        assert_eq!(
            self.finished,
            matches!(self.stage, Stage::Done),
            "the pipeline is done exactly when it has finished"
        );
        match &self.stage {
            Stage::Idle => assert!(self.asks.is_empty() && self.checks.is_empty()),
            Stage::Done => assert!(
                self.asks.is_empty() && self.checks.is_empty(),
                "a finished build waits for nothing"
            ),
            Stage::Interpret(it) => {
                assert!(it.pool.len() <= self.pool_max(), "probe pool over its cap");
                assert!(it.valid.keys().all(|a| it.asked.contains(a)));
                assert!(
                    !self.asks.is_empty() || !self.checks.is_empty(),
                    "interpret waits for nothing"
                );
            }
            Stage::Clarify(..) => assert!(
                self.asks.is_empty() && self.checks.is_empty(),
                "a question is asked only when nothing else is in flight"
            ),
            Stage::Build(b) => {
                for (i, c) in b.comps.iter().enumerate() {
                    let waiting = !c.candidates.is_empty()
                        || self.asks.values().any(|a| {
                            matches!(a.purpose, AskPurpose::Implement { component } if component == i)
                        });
                    assert!(
                        c.accepted.is_some() || waiting,
                        "component {} waits for nothing",
                        c.spec.name
                    );
                }
            }
            Stage::Integrate(_) => assert_eq!(self.checks.len(), 1),
        }
    }

    /// The dispatch: one arm per (stage, input) that means something; the rest change nothing.
    fn transition(&mut self, stage: Stage, input: Input, out: &mut Vec<Output>) -> Stage {
        match (stage, input) {
            (Stage::Idle, Input::Start) => self.start(out),
            (stage, Input::Start) => {
                self.stray.starts += 1;
                stage
            }
            (stage, Input::Replied { ask, reply, usage }) => {
                if let Some(reason) = self.account(ask, usage, &stage, out) {
                    return self.fail("budget", reason, out);
                }
                if !self.asks.contains_key(&ask) && !self.expired.contains_key(&ask) {
                    self.stray.replies += 1;
                    return stage;
                }
                let Some(pending) = self.take_ask(ask, reply.is_ok(), out) else {
                    return stage;
                };
                match (stage, pending.purpose) {
                    (Stage::Interpret(it), AskPurpose::Interpret) => {
                        self.on_reading(it, pending.agent, pending.key, reply, out)
                    }
                    (Stage::Interpret(it), AskPurpose::Distinguish) => {
                        self.on_inputs(it, pending.agent, reply, out)
                    }
                    (Stage::Build(b), AskPurpose::Implement { component }) => {
                        self.on_implementation(b, component, pending.agent, reply, out)
                    }
                    (stage, _) => {
                        self.stray.replies += 1;
                        stage
                    }
                }
            }
            (stage, Input::Heartbeat { ask }) => {
                if !self.on_heartbeat(ask, out) {
                    self.stray.heartbeats += 1;
                }
                stage
            }
            (mut stage, Input::TimerFired { timer }) => {
                for pending in self.expire(timer, out) {
                    stage = self.reassign(stage, pending, out);
                }
                stage
            }
            (stage, Input::CheckFinished { check, report }) => {
                let Some(purpose) = self.checks.remove(&check) else {
                    self.stray.checks += 1;
                    return stage;
                };
                match (stage, purpose) {
                    (Stage::Interpret(it), CheckPurpose::Interface { agent }) => {
                        self.on_interface_check(it, agent, report, out)
                    }
                    (
                        Stage::Interpret(it),
                        CheckPurpose::Reference {
                            agent,
                            contract_len,
                            stated_len,
                        },
                    ) => {
                        self.on_reference_check(it, agent, (contract_len, stated_len), report, out)
                    }
                    (Stage::Interpret(it), CheckPurpose::Differential { agent }) => {
                        self.on_differential_check(it, agent, report, out)
                    }
                    (Stage::Interpret(it), CheckPurpose::Carried { index }) => {
                        self.on_carried_check(it, index, report, out)
                    }
                    (Stage::Build(b), CheckPurpose::Component { component, agent }) => {
                        self.on_component_check(b, component, agent, report, out)
                    }
                    (Stage::Integrate(b), CheckPurpose::Integration) => {
                        self.on_integration_check(b, report, out)
                    }
                    (stage, _) => {
                        self.stray.checks += 1;
                        stage
                    }
                }
            }
            (Stage::Clarify(it, question), Input::UserAnswered { answer }) => {
                self.on_answer(it, question, &answer, out)
            }
            (stage, Input::UserAnswered { .. }) => {
                self.stray.answers += 1;
                stage
            }
        }
    }

    /// An ask whose agent is now suspected: its stage gives the work to someone else.
    fn reassign(&mut self, stage: Stage, pending: PendingAsk, out: &mut Vec<Output>) -> Stage {
        match (stage, pending.purpose) {
            (Stage::Interpret(it), AskPurpose::Interpret) => self.replace_silent_reader(it, out),
            (Stage::Interpret(it), AskPurpose::Distinguish) => {
                let silent = Err(ReplyFault::Crashed("silent past its deadline".into()));
                self.on_inputs(it, pending.agent, silent, out)
            }
            (Stage::Build(b), AskPurpose::Implement { component }) => {
                self.next_builder(b, component, out)
            }
            (stage, _) => stage,
        }
    }

    fn start(&mut self, out: &mut Vec<Output>) -> Stage {
        let started = Decision::BuildStarted {
            log_format: LOG_FORMAT,
            prompt: self.prompt.clone(),
            agents: self.cfg.agents.clone(),
            n: self.tally.n(),
            m: self.tally.m(),
            seed: self.cfg.seed,
        };
        self.persist(started, out);
        self.start_interpret(0, 0, out)
    }

    fn id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    /// Ends the build without a program.
    fn fail(&mut self, stage: &str, reason: String, out: &mut Vec<Output>) -> Stage {
        let failed = Decision::BuildFailed {
            stage: stage.into(),
            reason: reason.clone(),
            agents: self.records(),
        };
        self.persist(failed, out);
        self.finish(
            Finish::Failed {
                stage: stage.into(),
                reason,
                agents: self.records(),
            },
            out,
        );
        self.asks.clear();
        self.checks.clear();
        Stage::Done
    }

    /// Persists a decision: the runtime makes it durable before acting on later outputs.
    fn persist(&self, decision: Decision, out: &mut Vec<Output>) {
        out.push(Output::Persist(Box::new(decision)));
    }

    /// Emits the one [`Output::Finish`] of the build.
    fn finish(&mut self, finish: Finish, out: &mut Vec<Output>) {
        assert!(!self.finished, "a build finishes once");
        self.finished = true;
        out.push(Output::Finish(Box::new(finish)));
    }

    /// Starts a sandbox check whose report goes back to `purpose`.
    fn run_check(&mut self, purpose: CheckPurpose, request: CheckRequest, out: &mut Vec<Output>) {
        let check = CheckId(self.id());
        self.checks.insert(check, purpose);
        out.push(Output::RunCheck {
            check,
            request: Box::new(request),
        });
    }
}

/// The fault an agent's failed reply is.
fn reply_fault(f: &ReplyFault) -> (FaultKind, String) {
    match f {
        ReplyFault::Crashed(_) => (FaultKind::Crashed, f.to_string()),
        ReplyFault::Invalid(_) => (FaultKind::InvalidReply, f.to_string()),
    }
}

pub(crate) fn cap_text(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}
