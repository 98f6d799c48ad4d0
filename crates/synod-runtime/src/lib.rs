//! synod-runtime: drives the core's pipeline with real time, real agents, the sandbox and the
//! store.
//!
//! [`run_build`] owns the loop: it feeds [`Input`]s to the [`Pipeline`] and carries out its
//! [`Output`]s in order — agent calls and checks on worker threads, timers against a monotonic
//! clock, persists into the decision log before anything after them runs — until the pipeline
//! finishes or asks a question nobody can answer. [`verify`] re-checks a build directory
//! offline.

pub mod answers;
pub mod output;
pub mod record;
pub mod verify;

use record::{InputRecord, Record, RunRecord};
use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};
use synod_agents::{Agent, AgentError};
pub use synod_core::pipeline::Knobs;
use synod_core::pipeline::LOG_FORMAT;
use synod_core::pipeline::{
    AgentInfo, AskId, CheckId, Finish, Input, Output, Pipeline, PipelineConfig, Progress, Question,
    ReplyFault, Request, read_answer,
};
use synod_core::{AgentId, CheckReport, CheckRequest, Prompt};
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
    /// The build in the output directory cannot be resumed.
    #[error("cannot resume: {0}")]
    Resume(String),
    /// An answer given in advance looks like a reading's label but names none of the readings
    /// offered; the build stopped at the question, written to `question.json`.
    #[error("{reason}; the question is in {}: answer it with --resume and --answers", question_file.display())]
    Answer {
        /// Why the answer was refused, with the labels that exist.
        reason: String,
        /// Where the question was written.
        question_file: PathBuf,
    },
}

/// How many times a person is asked one question again after an answer that names no reading.
const ASK_AGAIN_MAX: usize = 3;

/// Someone who can answer a question (a person at a terminal); `None` means they declined.
pub type Asker = Box<dyn FnMut(&Question) -> Option<String>>;

/// Where answers to clarification questions come from.
pub enum Answers {
    /// Nobody can answer: stop with the question.
    None,
    /// Answers given in advance, used in order. One that looks like a label but names no
    /// reading offered stops the build at its question ([`RuntimeError::Answer`]).
    List(VecDeque<String>),
    /// Ask someone (a terminal): `None` means they declined. An answer that names no reading
    /// is refused (a progress line says why) and the question asked again, a few times.
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
    /// Added to an agent's timeout when a suspicion of it proves false.
    pub timeout_increment_ms: u64,
    /// No agent's timeout grows past this.
    pub timeout_max_ms: u64,
    /// Continue the build already in `out_dir` (after a kill or a question), if there is one.
    pub resume: bool,
    /// The response cache the agents use, for the log.
    pub cache_dir: Option<PathBuf>,
    /// The protocol knobs (PL-20, PL-22); the pipeline's defaults where `None`.
    pub knobs: Knobs,
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
    /// `--resume` found a build that had already finished: nothing was done.
    AlreadyFinished {
        /// Whether it was built (else it failed).
        built: bool,
        /// The output directory.
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

/// Runs a build to its end, or resumes one (`opts.resume`). `progress` sees every progress
/// event.
///
/// Every input fed to the pipeline is appended to the log (kind `input`) before the pipeline
/// sees it, and every decision it persists follows it. Resuming replays the logged inputs into a
/// fresh pipeline, which is deterministic: it must persist exactly the entries the log holds
/// (else the resume is refused), and it ends in the state the killed build had. Then asks that
/// were never answered are sent again, checks that never finished run again, and the build goes
/// on, signing with its own key.
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
        answers,
        sandbox,
        check_workers,
        tokens_max,
        timeout_increment_ms,
        timeout_max_ms,
        resume,
        cache_dir,
        knobs,
    } = opts;
    let descriptions: Vec<(String, String)> = agents
        .iter()
        .map(|(a, _)| (a.name().to_string(), a.describe()))
        .collect();
    let mut cfg = PipelineConfig::new(agent_infos(&agents), fault_budget, seed);
    cfg.tokens_max = tokens_max;
    cfg.timeout_increment_ms = timeout_increment_ms;
    cfg.timeout_max_ms = timeout_max_ms;
    knobs.apply(&mut cfg);
    let pipeline = Pipeline::new(cfg, prompt.clone())?;
    let key_file = out_dir.join(MARKER_DIR).join("key");
    let (log, resuming) = match open_log(&out_dir, &key_file, resume)? {
        Opened::Log { log, resuming } => (*log, resuming),
        Opened::Finished(result) => return Ok(result),
    };
    let fingerprint = log.key().public().fingerprint();
    let mut sandbox_info = serde_json::to_value(sandbox.isolation())
        .map_err(|e| RuntimeError::Internal(e.to_string()))?;
    // What candidates were allowed to do: part of what the certificate certifies (issue 11).
    if let Some(info) = sandbox_info.as_object_mut() {
        let names: Vec<&str> = sandbox
            .audit()
            .capabilities
            .iter()
            .map(|c| c.name())
            .collect();
        info.insert("capabilities".into(), serde_json::json!(names));
        let limits = sandbox.limits();
        info.insert(
            "scratch_limits".into(),
            serde_json::json!({
                "bytes": limits.scratch_bytes,
                "files": limits.scratch_files,
                "file_bytes": limits.file_bytes,
            }),
        );
    }
    let run_info = Record::Run(RunRecord {
        sandbox: sandbox_info.clone(),
        response_cache: cache_dir,
        role_prompts_digest: synod_agents::role_prompts_digest(),
        synod_version: env!("CARGO_PKG_VERSION").to_string(),
    });
    let (tx, rx) = mpsc::channel::<Event>();
    let mut d = Driver {
        pipeline,
        log,
        agents: agents.into_iter().map(|(a, _)| Arc::from(a)).collect(),
        sandbox: Arc::new(sandbox),
        slots: Arc::new(Slots {
            free: Mutex::new(check_workers.max(1)),
            cv: Condvar::new(),
        }),
        tx,
        asks: BTreeMap::new(),
        checks: BTreeMap::new(),
        question: None,
        finish: None,
        replay: None,
        progress,
    };
    let (base_ms, replayed) = if resuming { d.replay()? } else { (0, 0) };
    if resuming {
        (d.progress)(&Progress::Stage {
            stage: "resume".into(),
            detail: format!(
                "replayed the log up to {base_ms} ms: {} ask(s) and {} check(s) to redo",
                d.asks.len(),
                d.checks.len()
            ),
        });
    }
    // Which isolation this run's checks have, loudly if none (`--unsafe-no-sandbox`); after
    // the replay, so that it never lands between an input and the decisions it caused.
    let (kind, body) = run_info.to_entry();
    d.log.append(&kind, &body)?;
    d.relaunch();
    let clock = Clock {
        base_ms,
        start: Instant::now(),
    };
    // Nothing logged before the kill, not even the start: start now.
    let first = (replayed == 0).then_some(Input::Start);
    let mut answers = answers;
    let finish = match d.run(first, &clock, &rx, &mut answers)? {
        Stop::Finished(finish) => finish,
        Stop::Asked(question) => {
            output::write_question(&out_dir, &question)?;
            return Ok(BuildResult::NeedsClarification { question, out_dir });
        }
        Stop::Refused(question, reason) => {
            output::write_question(&out_dir, &question)?;
            return Err(RuntimeError::Answer {
                reason,
                question_file: out_dir.join(output::QUESTION_FILE),
            });
        }
    };
    let finished = match *finish {
        Finish::Built(outcome) => {
            output::write_build(
                &out_dir,
                &outcome,
                &descriptions,
                &mut d.log,
                &fingerprint,
                &sandbox_info,
            )?;
            BuildResult::Built {
                outcome,
                fingerprint,
                out_dir: out_dir.clone(),
            }
        }
        Finish::Failed {
            stage,
            reason,
            agents: records,
        } => {
            output::write_failure(&out_dir, &prompt, &stage, &reason, &records, &descriptions)?;
            BuildResult::Failed {
                stage,
                reason,
                out_dir: out_dir.clone(),
            }
        }
    };
    // A question it stopped at earlier is answered now.
    let _ = std::fs::remove_file(out_dir.join(output::QUESTION_FILE));
    // A finished build is never signed again: drop its secret key, so a copy of the directory
    // cannot be re-signed with it.
    std::fs::remove_file(&key_file).map_err(|source| RuntimeError::Io {
        what: "cannot remove the signing key",
        path: key_file.clone(),
        source,
    })?;
    Ok(finished)
}

/// The agents as the pipeline knows them: position, name, timeout.
fn agent_infos(agents: &[(Box<dyn Agent>, u64)]) -> Vec<AgentInfo> {
    agents
        .iter()
        .enumerate()
        .map(|(i, (a, t))| AgentInfo {
            id: synod_core::AgentId(i as u32),
            name: a.name().to_string(),
            timeout_ms: *t,
        })
        .collect()
}

/// The build's log, or the news that there is nothing to do.
enum Opened {
    /// The log to go on with; `resuming` when it holds an earlier run's inputs.
    Log {
        log: Box<DecisionLog>,
        resuming: bool,
    },
    /// `--resume` found a finished build.
    Finished(BuildResult),
}

/// Opens the log of a build being resumed, or creates the directory and log of a new one.
fn open_log(out_dir: &Path, key_file: &Path, resume: bool) -> Result<Opened, RuntimeError> {
    let log_file = out_dir.join(output::LOG_FILE);
    // The log appears under its name only once it exists whole (created aside, then renamed):
    // a build killed before that decided nothing, and --resume starts it afresh.
    if resume && out_dir.join(MARKER_DIR).is_dir() && !log_file.exists() {
        discard_unstarted(out_dir)?;
    }
    if resume && out_dir.join(MARKER_DIR).is_dir() && log_file.exists() {
        // The report is written last: with it, the build finished.
        if out_dir.join(output::REPORT_FILE).exists() || !key_file.exists() {
            return finished_already(out_dir, key_file).map(Opened::Finished);
        }
        let log = DecisionLog::open(&log_file, BuildKey::load(key_file)?)?;
        return Ok(Opened::Log {
            log: Box::new(log),
            resuming: true,
        });
    }
    prepare_out_dir(out_dir)?;
    let key = BuildKey::generate()?;
    key.save(key_file)?;
    let fresh = out_dir.join(MARKER_DIR).join("log.redb.new");
    let _ = std::fs::remove_file(&fresh);
    drop(DecisionLog::create(&fresh, key.clone())?);
    std::fs::rename(&fresh, &log_file).map_err(|source| RuntimeError::Io {
        what: "cannot move the new decision log to",
        path: log_file.clone(),
        source,
    })?;
    Ok(Opened::Log {
        log: Box::new(DecisionLog::open(&log_file, key)?),
        resuming: false,
    })
}

/// Build time in ms: continued from the replayed log's last input.
struct Clock {
    base_ms: u64,
    start: Instant,
}

impl Clock {
    fn now_ms(&self) -> u64 {
        // base_ms comes from the log being resumed: saturate rather than overflow.
        let elapsed = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.base_ms.saturating_add(elapsed)
    }
}

/// How the loop stopped.
enum Stop {
    Finished(Box<Finish>),
    Asked(Box<Question>),
    /// An answer given in advance names no reading: why.
    Refused(Box<Question>, String),
}

/// A build directory whose log was never created: nothing was decided. Remove what the killed
/// start left (the marker directory only), so a fresh build can start there.
fn discard_unstarted(out_dir: &Path) -> Result<(), RuntimeError> {
    let mut others = std::fs::read_dir(out_dir)
        .map_err(|source| RuntimeError::Io {
            what: "cannot read",
            path: out_dir.to_path_buf(),
            source,
        })?
        .filter_map(Result::ok)
        .filter(|e| e.file_name() != MARKER_DIR);
    if let Some(other) = others.next() {
        return Err(RuntimeError::OutDir {
            path: out_dir.to_path_buf(),
            message: format!(
                "has no decision log but holds {:?}: not a build that can be resumed",
                other.file_name()
            ),
        });
    }
    std::fs::remove_dir_all(out_dir.join(MARKER_DIR)).map_err(|source| RuntimeError::Io {
        what: "cannot remove",
        path: out_dir.join(MARKER_DIR),
        source,
    })
}

/// `--resume` on a build that already finished: nothing to do.
fn finished_already(out_dir: &Path, key_file: &Path) -> Result<BuildResult, RuntimeError> {
    let built = out_dir.join(output::CERT_FILE).exists();
    if out_dir.join(output::REPORT_FILE).exists() {
        // Killed after the report but before the key was dropped.
        if key_file.exists() {
            std::fs::remove_file(key_file).map_err(|source| RuntimeError::Io {
                what: "cannot remove the signing key",
                path: key_file.to_path_buf(),
                source,
            })?;
        }
        return Ok(BuildResult::AlreadyFinished {
            built,
            out_dir: out_dir.to_path_buf(),
        });
    }
    Err(RuntimeError::OutDir {
        path: out_dir.to_path_buf(),
        message:
            "holds a build whose signing key is gone but which never finished: it cannot be resumed"
                .into(),
    })
}

/// The loop's state: the pipeline, the log, what is in flight.
struct Driver<'p> {
    pipeline: Pipeline,
    log: DecisionLog,
    agents: Vec<Arc<dyn Agent>>,
    sandbox: Arc<Sandbox>,
    slots: Arc<Slots>,
    tx: mpsc::Sender<Event>,
    /// Asks sent and not answered.
    asks: BTreeMap<u64, (AgentId, Box<Request>)>,
    /// Checks started and not finished.
    checks: BTreeMap<u64, Box<CheckRequest>>,
    question: Option<Box<Question>>,
    finish: Option<Box<Finish>>,
    /// While replaying: the entries the current input must persist, in order.
    replay: Option<VecDeque<synod_store::Entry>>,
    progress: &'p mut dyn FnMut(&Progress),
}

impl Driver<'_> {
    /// Logs an input (unless replaying), then steps the pipeline and carries out its outputs.
    fn feed(&mut self, now_ms: u64, input: Input) -> Result<(), RuntimeError> {
        if self.replay.is_none() {
            let record = Record::Input(InputRecord {
                now_ms,
                input: input.clone(),
            });
            let (kind, body) = record.to_entry();
            self.log.append(&kind, &body)?;
        }
        match &input {
            Input::Replied { ask, .. } => {
                self.asks.remove(&ask.0);
            }
            Input::CheckFinished { check, .. } => {
                self.checks.remove(&check.0);
            }
            _ => {}
        }
        let mut outputs = Vec::new();
        self.pipeline.step(now_ms, input, &mut outputs);
        for o in outputs {
            self.carry_out(o)?;
        }
        Ok(())
    }

    fn carry_out(&mut self, o: Output) -> Result<(), RuntimeError> {
        let live = self.replay.is_none();
        match o {
            Output::Persist(decision) => {
                let (kind, body) = decision.to_entry();
                match self.replay.as_mut().and_then(|r| r.pop_front()) {
                    Some(logged) => {
                        let same =
                            logged.kind == kind && logged.body_json().ok().as_ref() == Some(&body);
                        if !same {
                            return Err(RuntimeError::Resume(format!(
                                "replaying the log gives {kind:?} where entry {} holds {:?}: the prompt, agents file or synod version differ from the build being resumed",
                                logged.seq, logged.kind
                            )));
                        }
                    }
                    // The build was killed after logging this input but before all its decisions
                    // were persisted: persist the rest now.
                    None => {
                        self.log.append(&kind, &body)?;
                    }
                }
            }
            Output::Progress(p) => {
                if live {
                    (self.progress)(&p)
                }
            }
            Output::Ask {
                ask,
                agent,
                request,
            } => {
                if live {
                    self.spawn_ask(ask, agent, &request);
                }
                self.asks.insert(ask.0, (agent, request));
            }
            Output::RunCheck { check, request } => {
                if live {
                    self.spawn_check(check, &request);
                }
                self.checks.insert(check.0, request);
            }
            Output::AskUser(q) => self.question = Some(q),
            Output::Finish(f) => self.finish = Some(f),
        }
        Ok(())
    }

    fn spawn_ask(&self, ask: AskId, agent: AgentId, request: &Request) {
        let a = Arc::clone(&self.agents[agent.0 as usize]);
        let tx = self.tx.clone();
        let request = request.clone();
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
                // A cached reply was paid for by an earlier build: it costs nothing now.
                Ok(r) if r.cached => (
                    synod_agents::reply::parse_reply(role, &r.text),
                    Default::default(),
                ),
                Ok(r) => (synod_agents::reply::parse_reply(role, &r.text), r.usage),
                Err(AgentError::Failed(e)) => (Err(ReplyFault::Crashed(e)), Default::default()),
                Err(e @ AgentError::NoReply(_)) => {
                    (Err(ReplyFault::Crashed(e.to_string())), Default::default())
                }
            };
            let _ = tx.send(Event::Replied { ask, reply, usage });
        });
    }

    fn spawn_check(&self, check: CheckId, request: &CheckRequest) {
        let sb = Arc::clone(&self.sandbox);
        let slots = Arc::clone(&self.slots);
        let tx = self.tx.clone();
        let request = request.clone();
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

    /// The loop of `synod_core::pipeline::drive::VirtualDriver::run` in real time: feed the
    /// queued inputs; stop at a finish or an unanswered question; else wait for the next event
    /// (a reply, a heartbeat, a check) or the pipeline's next deadline, whichever comes first.
    fn run(
        &mut self,
        first: Option<Input>,
        clock: &Clock,
        rx: &mpsc::Receiver<Event>,
        answers: &mut Answers,
    ) -> Result<Stop, RuntimeError> {
        let mut queue: VecDeque<Input> = first.into_iter().collect();
        loop {
            while let Some(input) = queue.pop_front() {
                self.feed(clock.now_ms(), input)?;
            }
            if let Some(finish) = self.finish.take() {
                return Ok(Stop::Finished(finish));
            }
            if let Some(question) = self.question.take() {
                let answer = match answers {
                    Answers::None => None,
                    Answers::List(list) => match list.pop_front() {
                        Some(a) => match read_answer(&question, &a) {
                            Ok(_) => Some(a),
                            Err(why) => return Ok(Stop::Refused(question, why)),
                        },
                        None => None,
                    },
                    Answers::Ask(f) => self.ask_person(f, &question),
                };
                match answer {
                    Some(answer) => queue.push_back(Input::UserAnswered { answer }),
                    None => return Ok(Stop::Asked(question)),
                }
                continue;
            }
            queue.push_back(self.next_input(clock, rx)?);
        }
    }

    /// A person's answer to `question`, asked again (up to [`ASK_AGAIN_MAX`] times, saying why)
    /// while it looks like a label but names no reading; `None` when they decline.
    fn ask_person(&mut self, ask: &mut Asker, question: &Question) -> Option<String> {
        for _ in 0..=ASK_AGAIN_MAX {
            let answer = ask(question)?;
            match read_answer(question, &answer) {
                Ok(_) => return Some(answer),
                Err(why) => (self.progress)(&Progress::Stage {
                    stage: "clarify".into(),
                    detail: why,
                }),
            }
        }
        None
    }

    /// Waits for the next event, or for the pipeline's next deadline to pass.
    fn next_input(&self, clock: &Clock, rx: &mpsc::Receiver<Event>) -> Result<Input, RuntimeError> {
        let deadline = self.pipeline.poll_timeout();
        if deadline.is_none() && self.checks.is_empty() && self.pipeline.pending_asks() == 0 {
            return Err(RuntimeError::Internal(
                "the pipeline is waiting but nothing is in flight".into(),
            ));
        }
        let closed = || RuntimeError::Internal("event channel closed".into());
        let event = match deadline {
            Some(deadline) => {
                let wait = deadline.at_ms.saturating_sub(clock.now_ms());
                match rx.recv_timeout(Duration::from_millis(wait)) {
                    Ok(e) => e,
                    Err(mpsc::RecvTimeoutError::Timeout) => {
                        return Ok(Input::TimerFired {
                            timer: deadline.timer,
                        });
                    }
                    Err(mpsc::RecvTimeoutError::Disconnected) => return Err(closed()),
                }
            }
            None => rx.recv().map_err(|_| closed())?,
        };
        match event {
            Event::Replied { ask, reply, usage } => Ok(Input::Replied { ask, reply, usage }),
            Event::Heartbeat { ask } => Ok(Input::Heartbeat { ask }),
            Event::Checked { check, report } => Ok(Input::CheckFinished { check, report }),
            Event::CheckFailed { error } => Err(RuntimeError::Exec(error)),
        }
    }

    /// Replays the logged inputs; returns the time of the last one and how many there were.
    fn replay(&mut self) -> Result<(u64, usize), RuntimeError> {
        let entries = self.log.entries()?;
        refuse_older_log_format(&entries)?;
        // Entries a logged input did not cause: the setup of each run, the certificate.
        let aside = |e: &synod_store::Entry| Record::is_run(e) || Record::is_certificate(e);
        let mut last_ms = 0;
        let mut replayed = 0;
        let mut i = 0;
        while i < entries.len() {
            let e = &entries[i];
            if aside(e) {
                i += 1;
                continue;
            }
            let InputRecord { now_ms, input } = match Record::parse(e) {
                Ok(Record::Input(r)) => r,
                Ok(_) => {
                    return Err(RuntimeError::Resume(format!(
                        "entry {} ({:?}) is not the consequence of any logged input",
                        e.seq, e.kind
                    )));
                }
                Err(why) => return Err(RuntimeError::Resume(why)),
            };
            let mut j = i + 1;
            let mut expected = VecDeque::new();
            while j < entries.len() && !Record::is_input(&entries[j]) && !aside(&entries[j]) {
                expected.push_back(entries[j].clone());
                j += 1;
            }
            self.replay = Some(expected);
            self.feed(now_ms, input)?;
            if let Some(left) = self.replay.take()
                && let Some(extra) = left.front()
            {
                return Err(RuntimeError::Resume(format!(
                    "replaying the log does not produce entry {} ({:?}): the prompt, agents file or synod version differ from the build being resumed",
                    extra.seq, extra.kind
                )));
            }
            last_ms = now_ms;
            replayed += 1;
            i = j;
        }
        Ok((last_ms, replayed))
    }

    /// After a replay: send again what was in flight when the build stopped.
    fn relaunch(&mut self) {
        let asks: Vec<(u64, AgentId, Box<Request>)> = self
            .asks
            .iter()
            .map(|(k, (a, r))| (*k, *a, r.clone()))
            .collect();
        for (ask, agent, request) in asks {
            (self.progress)(&Progress::Asked {
                agent: self.agents[agent.0 as usize].name().to_string(),
                request: format!("{} (again, after resume)", request.key()),
            });
            self.spawn_ask(AskId(ask), agent, &request);
        }
        let checks: Vec<(u64, Box<CheckRequest>)> =
            self.checks.iter().map(|(k, r)| (*k, r.clone())).collect();
        for (check, request) in checks {
            self.spawn_check(CheckId(check), &request);
        }
    }
}

/// A build started by an earlier synod, whose log this one cannot replay (ADR 0005).
fn refuse_older_log_format(entries: &[synod_store::Entry]) -> Result<(), RuntimeError> {
    match record::log_format(entries) {
        Some(format) if format != LOG_FORMAT => Err(RuntimeError::Resume(format!(
            "this build's log has format {format} and this synod resumes format {LOG_FORMAT} only (ADR 0005); `synod verify` still reads it, but to go on, start the build afresh in a new --out"
        ))),
        _ => Ok(()),
    }
}
