//! synod-runtime: drives the core's pipeline with real time, real agents, the sandbox and the
//! store.
//!
//! [`run_build`] owns the loop: it feeds [`Input`]s to the [`Pipeline`] and carries out its
//! [`Output`]s in order — agent calls and checks on worker threads, timers against a monotonic
//! clock, persists into the decision log before anything after them runs — until the pipeline
//! finishes or asks a question nobody can answer. [`verify`] re-checks a build directory
//! offline.

pub mod output;
pub mod verify;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};
use synod_agents::{Agent, AgentError};
use synod_core::pipeline::{
    AgentInfo, CheckId, Finish, Input, Output, Pipeline, PipelineConfig, Progress, Question,
    ReplyFault, TimerId,
};
use synod_core::{CheckReport, Prompt};
use synod_exec::Sandbox;
use synod_store::{BuildKey, DecisionLog};

pub use verify::{VerifyReport, verify};

/// Heartbeats from one agent call reach the pipeline at most this often.
const HEARTBEAT_INTERVAL: Duration = Duration::from_millis(100);

/// Name of the marker directory that makes an output directory ours.
pub const MARKER_DIR: &str = ".synod";

/// Why a build could not run (as opposed to a build that ran and failed).
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The output directory cannot be used.
    #[error("output directory {path}: {message}")]
    OutDir {
        /// The directory.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// Reading or writing build files failed.
    #[error("{what} {path}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The decision log failed.
    #[error("decision log: {0}")]
    Store(#[from] synod_store::StoreError),
    /// The sandbox failed for reasons outside the candidate program.
    #[error("sandbox: {0}")]
    Exec(#[from] synod_exec::ExecError),
    /// The fault budget cannot be honoured.
    #[error("{0}")]
    Budget(#[from] synod_core::tally::BudgetError),
    /// An invariant of the loop broke (a bug).
    #[error("internal error: {0}")]
    Internal(String),
}

/// Someone who can answer a question (a person at a terminal); `None` means they declined.
pub type Asker = Box<dyn FnMut(&Question) -> Option<String>>;

/// Where answers to clarification questions come from.
pub enum Answers {
    /// Nobody can answer: stop with the question.
    None,
    /// Answers given in advance, used in order.
    List(VecDeque<String>),
    /// Ask someone (a terminal): `None` means they declined.
    Ask(Asker),
}

/// Everything a build needs.
pub struct BuildOptions {
    /// The prompt.
    pub prompt: Prompt,
    /// The agents, in order, with their deadlines.
    pub agents: Vec<(Box<dyn Agent>, u64)>,
    /// Fault budget m.
    pub fault_budget: usize,
    /// Seed for probe variants and differential inputs.
    pub seed: u64,
    /// Output directory (created; must be empty or absent).
    pub out_dir: PathBuf,
    /// Answers to clarification questions.
    pub answers: Answers,
    /// The sandbox checks run in.
    pub sandbox: Sandbox,
    /// Checks run at once.
    pub check_workers: usize,
    /// Tokens the build may spend, all agents together; `None` for no limit.
    pub tokens_max: Option<u64>,
}

/// How a build ended.
#[derive(Debug)]
pub enum BuildResult {
    /// Built: the program, report and certificate are in the output directory.
    Built {
        /// The outcome.
        outcome: Box<synod_core::pipeline::BuildOutcome>,
        /// Fingerprint of the build key (for `verify --key`).
        fingerprint: String,
        /// The output directory.
        out_dir: PathBuf,
    },
    /// The job ran and could not agree or build within budget.
    Failed {
        /// The failed stage.
        stage: String,
        /// Why.
        reason: String,
        /// The output directory (its report says more).
        out_dir: PathBuf,
    },
    /// A clarification is needed and no answer was available.
    NeedsClarification {
        /// The question.
        question: Box<Question>,
        /// The output directory.
        out_dir: PathBuf,
    },
}

enum Event {
    Replied {
        ask: synod_core::pipeline::AskId,
        reply: Result<synod_core::pipeline::Reply, ReplyFault>,
        usage: synod_core::pipeline::Usage,
    },
    Heartbeat {
        ask: synod_core::pipeline::AskId,
    },
    Checked {
        check: CheckId,
        report: CheckReport,
    },
    CheckFailed {
        error: synod_exec::ExecError,
    },
}

/// A counting semaphore bounding concurrent checks.
struct Slots {
    free: Mutex<usize>,
    cv: Condvar,
}

impl Slots {
    fn acquire(&self) {
        let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
        while *free == 0 {
            free = self.cv.wait(free).unwrap_or_else(|e| e.into_inner());
        }
        *free -= 1;
    }
    fn release(&self) {
        let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
        *free += 1;
        self.cv.notify_one();
    }
}

/// Prepares `out`: absent or empty is fine; a directory with files that are not a synod build
/// is refused; a finished or started build is refused too (choose another directory).
pub fn prepare_out_dir(out: &Path) -> Result<(), RuntimeError> {
    let err = |message: String| RuntimeError::OutDir {
        path: out.to_path_buf(),
        message,
    };
    if out.exists() {
        if !out.is_dir() {
            return Err(err("exists and is not a directory".into()));
        }
        let mut entries = std::fs::read_dir(out).map_err(|e| err(e.to_string()))?;
        if entries.next().is_some() {
            if out.join(MARKER_DIR).is_dir() {
                return Err(err(
                    "holds an earlier synod build; remove it or choose another --out".into(),
                ));
            }
            return Err(err(
                "exists, is not empty and is not a synod build; refusing to write into it".into(),
            ));
        }
    }
    std::fs::create_dir_all(out.join(MARKER_DIR)).map_err(|source| RuntimeError::Io {
        what: "cannot create",
        path: out.join(MARKER_DIR),
        source,
    })?;
    Ok(())
}

/// Runs a build to its end. `progress` sees every progress event.
pub fn run_build(
    opts: BuildOptions,
    progress: &mut dyn FnMut(&Progress),
) -> Result<BuildResult, RuntimeError> {
    let BuildOptions {
        prompt,
        agents,
        fault_budget,
        seed,
        out_dir,
        mut answers,
        sandbox,
        check_workers,
        tokens_max,
    } = opts;
    let infos: Vec<AgentInfo> = agents
        .iter()
        .enumerate()
        .map(|(i, (a, t))| AgentInfo {
            id: synod_core::AgentId(i as u32),
            name: a.name().to_string(),
            timeout_ms: *t,
        })
        .collect();
    let descriptions: Vec<(String, String)> = agents
        .iter()
        .map(|(a, _)| (a.name().to_string(), a.describe()))
        .collect();
    let mut cfg = PipelineConfig::new(infos, fault_budget, seed);
    cfg.tokens_max = tokens_max;
    let mut pipeline = Pipeline::new(cfg, prompt.clone())?;
    prepare_out_dir(&out_dir)?;
    let key = BuildKey::generate()?;
    key.save(&out_dir.join(MARKER_DIR).join("key"))?;
    let fingerprint = key.public().fingerprint();
    let mut log = DecisionLog::create(&out_dir.join(output::LOG_FILE), key)?;

    let agents: Vec<Arc<dyn Agent>> = agents.into_iter().map(|(a, _)| Arc::from(a)).collect();
    let sandbox = Arc::new(sandbox);
    let slots = Arc::new(Slots {
        free: Mutex::new(check_workers.max(1)),
        cv: Condvar::new(),
    });
    let (tx, rx) = mpsc::channel::<Event>();
    let start = Instant::now();
    let now_ms = || start.elapsed().as_millis() as u64;
    let mut timers: BTreeSet<(u64, u64)> = BTreeSet::new();
    let mut inflight_checks = 0usize;
    // Deadline of each ask still waiting, so a timer can be dropped when its reply comes.
    let mut timer_at: BTreeMap<u64, u64> = BTreeMap::new();
    let mut queue: VecDeque<Input> = VecDeque::from([Input::Start]);
    let mut outputs = Vec::new();

    loop {
        while let Some(input) = queue.pop_front() {
            outputs.clear();
            pipeline.step(now_ms(), input, &mut outputs);
            for o in outputs.drain(..) {
                match o {
                    Output::Persist { kind, body } => {
                        log.append(&kind, &body)?;
                    }
                    Output::Progress(p) => progress(&p),
                    Output::SetTimer { timer, at_ms } => {
                        if let Some(old) = timer_at.insert(timer.0, at_ms) {
                            timers.remove(&(old, timer.0));
                        }
                        timers.insert((at_ms, timer.0));
                    }
                    Output::Ask {
                        ask,
                        agent,
                        request,
                    } => {
                        let a = Arc::clone(&agents[agent.0 as usize]);
                        let tx = tx.clone();
                        std::thread::spawn(move || {
                            let role = request.role;
                            // At most one heartbeat event per interval reaches the loop.
                            let last_beat = Mutex::new(Instant::now());
                            let beat_tx = tx.clone();
                            let heartbeat = move || {
                                let mut last = last_beat.lock().unwrap_or_else(|e| e.into_inner());
                                if last.elapsed() >= HEARTBEAT_INTERVAL {
                                    *last = Instant::now();
                                    let _ = beat_tx.send(Event::Heartbeat { ask });
                                }
                            };
                            let (reply, usage) = match a.call(&request, &heartbeat) {
                                Ok(r) => (synod_agents::reply::parse_reply(role, &r.text), r.usage),
                                Err(AgentError::Failed(e)) => {
                                    (Err(ReplyFault::Crashed(e)), Default::default())
                                }
                                Err(e @ AgentError::NoReply(_)) => {
                                    (Err(ReplyFault::Crashed(e.to_string())), Default::default())
                                }
                            };
                            let _ = tx.send(Event::Replied { ask, reply, usage });
                        });
                    }
                    Output::RunCheck { check, request } => {
                        let sb = Arc::clone(&sandbox);
                        let slots = Arc::clone(&slots);
                        let tx = tx.clone();
                        inflight_checks += 1;
                        std::thread::spawn(move || {
                            slots.acquire();
                            let result = sb.run(&request);
                            slots.release();
                            let _ = tx.send(match result {
                                Ok(report) => Event::Checked { check, report },
                                Err(error) => Event::CheckFailed { error },
                            });
                        });
                    }
                    Output::AskUser(question) => {
                        let answer = match &mut answers {
                            Answers::None => None,
                            Answers::List(list) => list.pop_front(),
                            Answers::Ask(f) => f(&question),
                        };
                        match answer {
                            Some(answer) => queue.push_back(Input::UserAnswered { answer }),
                            None => {
                                output::write_question(&out_dir, &question)?;
                                return Ok(BuildResult::NeedsClarification { question, out_dir });
                            }
                        }
                    }
                    Output::Finish(finish) => {
                        // A finished build is never signed again: drop its secret key, so a
                        // copy of the directory cannot be re-signed with it.
                        let key_file = out_dir.join(MARKER_DIR).join("key");
                        let finished = match *finish {
                            Finish::Built(outcome) => {
                                output::write_build(
                                    &out_dir,
                                    &outcome,
                                    &descriptions,
                                    &mut log,
                                    &fingerprint,
                                )?;
                                Ok(BuildResult::Built {
                                    outcome,
                                    fingerprint,
                                    out_dir,
                                })
                            }
                            Finish::Failed {
                                stage,
                                reason,
                                agents: records,
                            } => {
                                output::write_failure(
                                    &out_dir,
                                    &prompt,
                                    &stage,
                                    &reason,
                                    &records,
                                    &descriptions,
                                )?;
                                Ok(BuildResult::Failed {
                                    stage,
                                    reason,
                                    out_dir,
                                })
                            }
                        };
                        std::fs::remove_file(&key_file).map_err(|source| RuntimeError::Io {
                            what: "cannot remove the signing key",
                            path: key_file,
                            source,
                        })?;
                        return finished;
                    }
                }
            }
        }
        // Wait for the next event or the next timer.
        let next_timer = timers.iter().next().copied();
        if next_timer.is_none() && inflight_checks == 0 && pipeline.pending_asks() == 0 {
            return Err(RuntimeError::Internal(
                "the pipeline is waiting but nothing is in flight".into(),
            ));
        }
        let event = match next_timer {
            Some((at, _)) => {
                let wait = at.saturating_sub(now_ms());
                match rx.recv_timeout(Duration::from_millis(wait)) {
                    Ok(e) => Some(e),
                    Err(mpsc::RecvTimeoutError::Timeout) => None,
                    Err(mpsc::RecvTimeoutError::Disconnected) => {
                        return Err(RuntimeError::Internal("event channel closed".into()));
                    }
                }
            }
            None => Some(
                rx.recv()
                    .map_err(|_| RuntimeError::Internal("event channel closed".into()))?,
            ),
        };
        match event {
            Some(Event::Replied { ask, reply, usage }) => {
                if let Some(at) = timer_at.remove(&ask.0) {
                    timers.remove(&(at, ask.0));
                }
                queue.push_back(Input::Replied { ask, reply, usage });
            }
            Some(Event::Heartbeat { ask }) => queue.push_back(Input::Heartbeat { ask }),
            Some(Event::Checked { check, report }) => {
                inflight_checks -= 1;
                queue.push_back(Input::CheckFinished { check, report });
            }
            Some(Event::CheckFailed { error }) => return Err(RuntimeError::Exec(error)),
            None => {
                let now = now_ms();
                while let Some(&(at, id)) = timers.iter().next() {
                    if at > now {
                        break;
                    }
                    timers.remove(&(at, id));
                    timer_at.remove(&id);
                    queue.push_back(Input::TimerFired { timer: TimerId(id) });
                }
            }
        }
    }
}
