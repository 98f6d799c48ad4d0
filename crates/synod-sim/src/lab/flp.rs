//! FLP (Fischer, Lynch, Paterson 1985), executed: an adversarial scheduler keeps a deterministic
//! consensus protocol undecided, and an eventually accurate failure detector ends the game.
//!
//! **The protocol** is Ben-Or's round structure with the coin replaced by a deterministic rule,
//! for n = 3 processes tolerating f = 1 crash. Each process holds an estimate x (its input at
//! first). Round r:
//!
//! 1. broadcast R(r, x); wait for R messages of round r from n − f processes (its own counts);
//!    if more than n/2 of them carry the same v, send P(r, v), else P(r, ?);
//! 2. wait for P messages of round r from n − f processes; if at least f + 1 carry v ≠ ?,
//!    **decide** v; if at least one carries v ≠ ?, x := v; otherwise x := the R value of the
//!    lowest-numbered process heard in step 1. A process that decided keeps taking part.
//!
//! It is safe: two values cannot both gather a majority of R messages in one round, so all
//! non-? P messages of a round carry one value, and a process that decides saw f + 1 of them,
//! so every other process sees at least one and adopts it. When everyone hears the same
//! messages (a synchronous round) everyone adopts the same x and decides by the next round.
//!
//! **The model** is FLP's: a configuration is the processes' states plus the messages in
//! flight; an event delivers one message to its receiver, which may complete a step and send.
//! Messages a process no longer needs (an earlier round or phase) are dropped, and messages for
//! a later phase wait in the network until the receiver gets there, which is the same as the
//! receiver buffering them. A process that is never scheduled again is indistinguishable from a
//! crashed one, so the configurations reachable from C include those where one process
//! crashes.
//!
//! **Valence** is computed, not assumed: [`explore`] runs a breadth-first search over the
//! configurations reachable from C (memoized, bounded by rounds ahead and states) and returns a
//! shortest schedule to a decision of 0 and one to a decision of 1, when it finds them. Two
//! such schedules prove C bivalent; they are what the witness prints, and [`verify_witness`]
//! replays them.
//!
//! **The adversary** starts from a bivalent initial configuration (FLP's Lemma 2, shown by
//! exploring all eight input vectors) and, at each step, delivers the first pending message,
//! in fairness order (to the process that has taken the fewest steps), whose delivery leaves
//! the configuration bivalent (Lemma 3).
//!
//! **The failure detector** run repeats the game, but from step `stabilize_at` on the detector
//! is accurate: a process waits for the R or P message of every process it does not suspect,
//! and it suspects only crashed ones. Everyone then hears the same messages, and the protocol
//! decides within two rounds whatever the scheduler does.

use super::LabError;
use super::table;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, VecDeque};
use std::fmt::Write as _;

/// Number of processes.
pub const N: usize = 3;
/// Crashes tolerated.
pub const F: usize = 1;
/// The most adversary steps [`run`] accepts.
pub const STEPS_MAX: usize = 200;
/// How many rounds past the configuration's latest round [`explore`] looks.
pub const ROUNDS_AHEAD: u32 = 3;
/// The most configurations one [`explore`] call visits.
pub const STATES_MAX: usize = 200_000;
/// The failure-detector run gives up after this many steps past stabilization.
pub const DETECTOR_STEPS_MAX: usize = 300;

/// A slot of `heard` that has received nothing yet.
pub const NOTHING: u8 = 255;
/// The "?" of a P message.
pub const UNKNOWN: u8 = 2;

/// One process's state.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Process {
    /// Current round, from 1.
    pub round: u32,
    /// 1 (collecting R messages) or 2 (collecting P messages).
    pub phase: u8,
    /// The estimate.
    pub x: u8,
    /// What this phase has heard from each process ([`NOTHING`], 0, 1 or [`UNKNOWN`]).
    pub heard: [u8; N],
    /// The R values heard in phase 1 of this round (for the fallback rule).
    pub phase1: [u8; N],
    /// The decision, once taken.
    pub decided: Option<u8>,
}

/// A message in flight; delivering it is an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Message {
    /// Receiver.
    pub to: u8,
    /// Sender.
    pub from: u8,
    /// Round.
    pub round: u32,
    /// 1 for R, 2 for P.
    pub phase: u8,
    /// 0, 1, or [`UNKNOWN`].
    pub value: u8,
}

/// Processes plus messages in flight (kept sorted, so equal configurations compare equal).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Configuration {
    /// The processes, by id.
    pub processes: Vec<Process>,
    /// Messages sent and not yet delivered or dropped.
    pub in_flight: Vec<Message>,
}

/// What a process waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rules {
    /// False: n − f messages (the detector may suspect anyone: asynchrony). True: every
    /// process not crashed (an accurate detector).
    pub wait_for_unsuspected: bool,
    /// A crashed process: it takes no more steps and nothing is delivered to it.
    pub crashed: Option<u8>,
}

impl Rules {
    /// Asynchronous: wait for n − f, nobody crashed yet.
    pub const ASYNC: Rules = Rules {
        wait_for_unsuspected: false,
        crashed: None,
    };
}

impl Configuration {
    /// The initial configuration for the inputs: everyone has sent R(1, input).
    pub fn initial(inputs: [u8; N]) -> Configuration {
        let mut c = Configuration {
            processes: Vec::new(),
            in_flight: Vec::new(),
        };
        for (id, &x) in inputs.iter().enumerate() {
            let mut heard = [NOTHING; N];
            heard[id] = x;
            c.processes.push(Process {
                round: 1,
                phase: 1,
                x,
                heard,
                phase1: [NOTHING; N],
                decided: None,
            });
            c.broadcast(id, 1, 1, x);
        }
        c.in_flight.sort();
        c
    }

    fn broadcast(&mut self, from: usize, round: u32, phase: u8, value: u8) {
        for to in 0..N {
            if to != from {
                self.in_flight.push(Message {
                    to: to as u8,
                    from: from as u8,
                    round,
                    phase,
                    value,
                });
            }
        }
    }

    /// The decided value, if any process has decided (safety makes it unique).
    pub fn decision(&self) -> Option<u8> {
        self.processes.iter().find_map(|p| p.decided)
    }

    /// The events the scheduler may choose: messages whose receiver is alive and in the
    /// message's round and phase. Sorted, without duplicates.
    pub fn enabled(&self, rules: Rules) -> Vec<Message> {
        let mut out: Vec<Message> = self
            .in_flight
            .iter()
            .copied()
            .filter(|m| {
                let p = &self.processes[m.to as usize];
                Some(m.to) != rules.crashed && m.round == p.round && m.phase == p.phase
            })
            .collect();
        out.dedup();
        out
    }

    /// Delivers `event` (which must be enabled) and lets the receiver step.
    pub fn apply(&self, event: Message, rules: Rules) -> Configuration {
        let mut c = self.clone();
        let at = c
            .in_flight
            .iter()
            .position(|m| *m == event)
            .expect("the event is a message in flight");
        c.in_flight.remove(at);
        let id = event.to as usize;
        assert!(
            Some(event.to) != rules.crashed,
            "delivery to a crashed process"
        );
        let p = &mut c.processes[id];
        assert!(
            p.round == event.round && p.phase == event.phase,
            "the event is enabled"
        );
        p.heard[event.from as usize] = event.value;
        let heard = p.heard.iter().filter(|&&v| v != NOTHING).count();
        let needed = if rules.wait_for_unsuspected {
            N - usize::from(rules.crashed.is_some())
        } else {
            N - F
        };
        if heard < needed {
            return c;
        }
        let count = |v: u8, heard: &[u8; N]| heard.iter().filter(|&&h| h == v).count();
        let (round, phase, value) = if p.phase == 1 {
            let pv = [0u8, 1]
                .into_iter()
                .find(|&v| 2 * count(v, &p.heard) > N)
                .unwrap_or(UNKNOWN);
            p.phase1 = p.heard;
            p.phase = 2;
            p.heard = [NOTHING; N];
            p.heard[id] = pv;
            (p.round, 2, pv)
        } else {
            if let Some(v) = [0u8, 1].into_iter().find(|&v| count(v, &p.heard) > F) {
                p.decided.get_or_insert(v);
                p.x = v;
            } else if let Some(v) = [0u8, 1].into_iter().find(|&v| count(v, &p.heard) > 0) {
                p.x = v;
            } else {
                p.x = *p
                    .phase1
                    .iter()
                    .find(|&&v| v != NOTHING)
                    .expect("phase 1 heard someone");
            }
            p.round += 1;
            p.phase = 1;
            p.heard = [NOTHING; N];
            p.heard[id] = p.x;
            p.phase1 = [NOTHING; N];
            (p.round, 1, p.x)
        };
        c.broadcast(id, round, phase, value);
        // Drop what the receiver no longer needs.
        let (r, ph) = (c.processes[id].round, c.processes[id].phase);
        c.in_flight
            .retain(|m| m.to as usize != id || (m.round, m.phase) >= (r, ph));
        c.in_flight.sort();
        c
    }

    fn latest_round(&self) -> u32 {
        self.processes.iter().map(|p| p.round).max().unwrap_or(1)
    }

    /// One line per process.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for (id, p) in self.processes.iter().enumerate() {
            let heard: Vec<String> = p
                .heard
                .iter()
                .enumerate()
                .filter(|(_, v)| **v != NOTHING)
                .map(|(q, v)| format!("p{q}:{}", value_word(*v)))
                .collect();
            let _ = write!(
                out,
                "p{id}: round {} {} x={} heard [{}]{}; ",
                p.round,
                if p.phase == 1 { "R" } else { "P" },
                p.x,
                heard.join(" "),
                match p.decided {
                    Some(v) => format!(" DECIDED {v}"),
                    None => String::new(),
                }
            );
        }
        let _ = write!(out, "{} in flight", self.in_flight.len());
        out
    }
}

fn value_word(v: u8) -> String {
    match v {
        UNKNOWN => "?".into(),
        NOTHING => "-".into(),
        v => v.to_string(),
    }
}

/// An event as text: `p0<-p2 R1(1)`.
pub fn event_word(m: &Message) -> String {
    format!(
        "p{}<-p{} {}{}({})",
        m.to,
        m.from,
        if m.phase == 1 { "R" } else { "P" },
        m.round,
        value_word(m.value)
    )
}

/// The decisions reachable from a configuration, with a shortest schedule to each.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Valence {
    /// A schedule that leads to a decision of 0.
    pub zero: Option<Vec<Message>>,
    /// A schedule that leads to a decision of 1.
    pub one: Option<Vec<Message>>,
    /// Configurations visited.
    pub states: usize,
    /// True when the search ran out of configurations to visit (within the round bound)
    /// rather than out of budget or because it found both decisions.
    pub exhausted: bool,
}

impl Valence {
    /// Both decisions are reachable (proved by the two schedules).
    pub fn bivalent(&self) -> bool {
        self.zero.is_some() && self.one.is_some()
    }

    /// "bivalent", "0-valent", "1-valent" (as far as the search saw) or "undecided".
    pub fn word(&self) -> &'static str {
        match (self.zero.is_some(), self.one.is_some()) {
            (true, true) => "bivalent",
            (true, false) => "0-valent",
            (false, true) => "1-valent",
            (false, false) => "no decision found",
        }
    }
}

/// Breadth-first search of the configurations reachable from `start` under `rules`, up to
/// [`ROUNDS_AHEAD`] rounds past its latest round and [`STATES_MAX`] configurations; stops when
/// both decisions are found. A configuration in which someone decided is not expanded.
pub fn explore(start: &Configuration, rules: Rules) -> Valence {
    let round_limit = start.latest_round() + ROUNDS_AHEAD;
    let mut states: Vec<Configuration> = vec![start.clone()];
    let mut parent: Vec<Option<(usize, Message)>> = vec![None];
    let mut index: HashMap<Configuration, usize> = HashMap::new();
    index.insert(start.clone(), 0);
    let mut queue = VecDeque::from([0usize]);
    let mut found: [Option<usize>; 2] = [None, None];
    let mut exhausted = true;
    while let Some(i) = queue.pop_front() {
        if let Some(v) = states[i].decision() {
            if found[v as usize].is_none() {
                found[v as usize] = Some(i);
            }
            if found.iter().all(Option::is_some) {
                exhausted = false;
                break;
            }
            continue;
        }
        if states[i].latest_round() > round_limit {
            continue;
        }
        for event in states[i].enabled(rules) {
            let next = states[i].apply(event, rules);
            if index.contains_key(&next) {
                continue;
            }
            if states.len() >= STATES_MAX {
                exhausted = false;
                queue.clear();
                break;
            }
            index.insert(next.clone(), states.len());
            states.push(next);
            parent.push(Some((i, event)));
            queue.push_back(states.len() - 1);
        }
    }
    let path = |mut i: usize| {
        let mut events = Vec::new();
        while let Some((p, e)) = parent[i] {
            events.push(e);
            i = p;
        }
        events.reverse();
        events
    };
    Valence {
        zero: found[0].map(path),
        one: found[1].map(path),
        states: states.len(),
        exhausted,
    }
}

/// Replays `schedule` from `start`; the decision it reaches, or an error naming the event that
/// was not enabled.
pub fn replay(
    start: &Configuration,
    schedule: &[Message],
    rules: Rules,
) -> Result<Configuration, String> {
    let mut c = start.clone();
    for (i, e) in schedule.iter().enumerate() {
        if !c.enabled(rules).contains(e) {
            return Err(format!(
                "event {i} ({}) is not enabled in {}",
                event_word(e),
                c.render()
            ));
        }
        c = c.apply(*e, rules);
    }
    Ok(c)
}

/// What to run.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FlpConfig {
    /// Adversary steps to keep the protocol bivalent.
    pub steps: usize,
    /// The inputs; `None`: the first bivalent input vector.
    pub inputs: Option<[u8; N]>,
    /// The step from which the failure detector is accurate, in the detector run.
    pub stabilize_at: usize,
    /// A process that crashes, and the step at which it does, in the detector run.
    pub crash: Option<(u8, usize)>,
}

/// The valence of one input vector (FLP's Lemma 2).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct InitialValence {
    /// The inputs of p0, p1, p2.
    pub inputs: [u8; N],
    /// "bivalent", "0-valent" or "1-valent" as far as the search saw.
    pub valence: String,
    /// Configurations visited.
    pub states: usize,
}

/// One step of the adversary.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AdversaryStep {
    /// 1-based.
    pub step: usize,
    /// The event the adversary chose.
    pub event: Message,
    /// Events it considered first and rejected because their result was not bivalent.
    pub rejected: Vec<Message>,
    /// The configuration after the event.
    pub configuration: Configuration,
    /// A schedule from it to a decision of 0.
    pub to_zero: Vec<Message>,
    /// A schedule from it to a decision of 1.
    pub to_one: Vec<Message>,
    /// Configurations the explorer visited to show it.
    pub states: usize,
}

/// One step of the failure-detector run.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DetectorStep {
    /// 1-based.
    pub step: usize,
    /// Whether the detector was accurate at this step.
    pub accurate: bool,
    /// The event.
    pub event: Message,
    /// The valence after it, as the explorer saw it under the rules of that step.
    pub valence: String,
    /// The configuration after the event.
    pub configuration: Configuration,
}

/// The failure-detector run.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DetectorRun {
    /// The step from which the detector is accurate.
    pub stabilize_at: usize,
    /// The crash, if any: process and step.
    pub crash: Option<(u8, usize)>,
    /// The step at which the first process decided.
    pub decided_at: Option<usize>,
    /// The value decided.
    pub decision: Option<u8>,
    /// The step at which every live process had decided.
    pub all_decided_at: Option<usize>,
    /// Every step.
    pub steps: Vec<DetectorStep>,
}

/// The result of [`run`].
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FlpReport {
    /// The protocol, in a sentence.
    pub protocol: String,
    /// Valence of every input vector.
    pub initial: Vec<InitialValence>,
    /// The inputs the adversary starts from.
    pub inputs: [u8; N],
    /// Steps asked for.
    pub steps_requested: usize,
    /// The adversary's steps; every configuration in it is bivalent.
    pub steps: Vec<AdversaryStep>,
    /// True when the adversary kept the protocol bivalent for every step asked.
    pub bivalent_throughout: bool,
    /// Events delivered to each process (none starved means the run is fair, not a crash).
    pub deliveries_per_process: [usize; N],
    /// The same protocol with an eventually accurate failure detector.
    pub detector: DetectorRun,
}

/// The protocol in one sentence.
pub const PROTOCOL: &str = "3 processes, f = 1, binary inputs; Ben-Or's two-phase rounds with \
the coin replaced by a deterministic rule (adopt the value of the lowest-numbered process heard \
in phase 1); waits for n - f = 2 messages per phase";

/// Checks the configuration.
pub fn validate(config: &FlpConfig) -> Result<(), LabError> {
    if config.steps == 0 || config.steps > STEPS_MAX {
        return Err(LabError::InvalidInput(format!(
            "--steps {} is out of range (1 to {STEPS_MAX})",
            config.steps
        )));
    }
    if let Some(inputs) = config.inputs
        && inputs.iter().any(|&v| v > 1)
    {
        return Err(LabError::InvalidInput(
            "--inputs must be three binary values, such as 0,0,1".into(),
        ));
    }
    if config.stabilize_at > STEPS_MAX {
        return Err(LabError::InvalidInput(format!(
            "--stabilize-at {} is out of range (0 to {STEPS_MAX})",
            config.stabilize_at
        )));
    }
    if let Some((p, at)) = config.crash
        && (p as usize >= N || at > STEPS_MAX)
    {
        return Err(LabError::InvalidInput(format!(
            "--crash {p}@{at}: the process must be 0, 1 or 2 and the step at most {STEPS_MAX}"
        )));
    }
    Ok(())
}

/// Runs Lemma 2 (initial valences), the adversary for `steps` steps, and the failure-detector
/// run.
pub fn run(config: &FlpConfig) -> Result<FlpReport, LabError> {
    validate(config)?;
    let mut initial = Vec::new();
    let mut first_bivalent = None;
    for bits in 0..8u8 {
        let inputs = [bits >> 2 & 1, bits >> 1 & 1, bits & 1];
        let v = explore(&Configuration::initial(inputs), Rules::ASYNC);
        if v.bivalent() && first_bivalent.is_none() {
            first_bivalent = Some(inputs);
        }
        initial.push(InitialValence {
            inputs,
            valence: v.word().to_string(),
            states: v.states,
        });
    }
    let inputs = config
        .inputs
        .or(first_bivalent)
        .expect("some input vector is bivalent (FLP Lemma 2)");
    let start = Configuration::initial(inputs);
    let mut c = start.clone();
    let mut delivered = [0usize; N];
    let mut steps = Vec::new();
    if explore(&c, Rules::ASYNC).bivalent() {
        for step in 1..=config.steps {
            let mut candidates = c.enabled(Rules::ASYNC);
            candidates.sort_by_key(|e| (delivered[e.to as usize], e.to, e.from));
            let mut rejected = Vec::new();
            let mut chosen = None;
            for e in candidates {
                let next = c.apply(e, Rules::ASYNC);
                let v = explore(&next, Rules::ASYNC);
                if v.bivalent() {
                    chosen = Some((e, next, v));
                    break;
                }
                rejected.push(e);
            }
            let Some((event, next, v)) = chosen else {
                break;
            };
            delivered[event.to as usize] += 1;
            steps.push(AdversaryStep {
                step,
                event,
                rejected,
                configuration: next.clone(),
                to_zero: v.zero.expect("bivalent"),
                to_one: v.one.expect("bivalent"),
                states: v.states,
            });
            c = next;
        }
    }
    let bivalent_throughout = steps.len() == config.steps;
    let detector = detector_run(&start, config);
    Ok(FlpReport {
        protocol: PROTOCOL.to_string(),
        initial,
        inputs,
        steps_requested: config.steps,
        steps,
        bivalent_throughout,
        deliveries_per_process: delivered,
        detector,
    })
}

/// The same adversary, with the detector accurate from `stabilize_at` on (and an optional
/// crash): it still prefers events that keep the configuration bivalent, and the protocol
/// decides anyway.
fn detector_run(start: &Configuration, config: &FlpConfig) -> DetectorRun {
    let mut c = start.clone();
    let mut delivered = [0usize; N];
    let mut run = DetectorRun {
        stabilize_at: config.stabilize_at,
        crash: config.crash,
        decided_at: None,
        decision: None,
        all_decided_at: None,
        steps: Vec::new(),
    };
    let limit = config.stabilize_at + DETECTOR_STEPS_MAX;
    for step in 1..=limit {
        let crashed = config.crash.and_then(|(p, at)| (step > at).then_some(p));
        let rules = Rules {
            wait_for_unsuspected: step > config.stabilize_at,
            crashed,
        };
        let mut candidates = c.enabled(rules);
        if candidates.is_empty() {
            break;
        }
        candidates.sort_by_key(|e| (delivered[e.to as usize], e.to, e.from));
        let mut chosen = None;
        for &e in &candidates {
            let next = c.apply(e, rules);
            let v = explore(&next, rules);
            if v.bivalent() {
                chosen = Some((e, next, v.word()));
                break;
            }
        }
        let (event, next, valence) = match chosen {
            Some(x) => x,
            None => {
                let e = candidates[0];
                let next = c.apply(e, rules);
                let v = explore(&next, rules);
                (e, next, v.word())
            }
        };
        delivered[event.to as usize] += 1;
        run.steps.push(DetectorStep {
            step,
            accurate: rules.wait_for_unsuspected,
            event,
            valence: valence.to_string(),
            configuration: next.clone(),
        });
        c = next;
        if run.decided_at.is_none()
            && let Some(v) = c.decision()
        {
            run.decided_at = Some(step);
            run.decision = Some(v);
        }
        let live_decided = c
            .processes
            .iter()
            .enumerate()
            .filter(|(id, _)| Some(*id as u8) != crashed)
            .all(|(_, p)| p.decided.is_some());
        if live_decided {
            run.all_decided_at = Some(step);
            break;
        }
    }
    run
}

/// Re-checks a report: replays the adversary's events from the initial configuration
/// (each must be enabled and give the recorded configuration), re-explores every recorded
/// configuration (it must be bivalent), and replays both recorded schedules of every step
/// (they must end in decisions of 0 and of 1).
pub fn verify_witness(report: &FlpReport) -> Result<(), String> {
    let mut c = Configuration::initial(report.inputs);
    for s in &report.steps {
        c = replay(&c, &[s.event], Rules::ASYNC)?;
        if c != s.configuration {
            return Err(format!(
                "step {}: the recorded configuration differs",
                s.step
            ));
        }
        if !explore(&c, Rules::ASYNC).bivalent() {
            return Err(format!(
                "step {}: the configuration is not bivalent",
                s.step
            ));
        }
        for (schedule, want) in [(&s.to_zero, 0u8), (&s.to_one, 1)] {
            let end = replay(&c, schedule, Rules::ASYNC)?;
            if end.decision() != Some(want) {
                return Err(format!(
                    "step {}: the schedule to {want} ends in {:?}",
                    s.step,
                    end.decision()
                ));
            }
        }
    }
    Ok(())
}

impl FlpReport {
    /// The report as text: Lemma 2's table, the witness step by step, the detector run.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "Protocol: {}.\n", self.protocol);
        let _ = writeln!(
            out,
            "Initial configurations (valence by exhaustive search, up to {ROUNDS_AHEAD} rounds ahead):"
        );
        let rows: Vec<Vec<String>> = self
            .initial
            .iter()
            .map(|i| {
                vec![
                    format!("{}{}{}", i.inputs[0], i.inputs[1], i.inputs[2]),
                    i.valence.clone(),
                    i.states.to_string(),
                ]
            })
            .collect();
        out.push_str(&table::render(&["inputs", "valence", "states"], &rows));
        let _ = writeln!(
            out,
            "\nAdversary from inputs {}{}{} (bivalent), {} step(s):",
            self.inputs[0], self.inputs[1], self.inputs[2], self.steps_requested
        );
        for s in &self.steps {
            let _ = writeln!(
                out,
                "step {:>3}: deliver {}{}",
                s.step,
                event_word(&s.event),
                if s.rejected.is_empty() {
                    String::new()
                } else {
                    format!(
                        "  (rejected, univalent after: {})",
                        s.rejected
                            .iter()
                            .map(event_word)
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                }
            );
            let _ = writeln!(out, "          {}", s.configuration.render());
            let _ = writeln!(
                out,
                "          still bivalent ({} states): 0 via {}; 1 via {}",
                s.states,
                schedule_word(&s.to_zero),
                schedule_word(&s.to_one)
            );
        }
        let _ = writeln!(
            out,
            "\n{} Deliveries per process: p0 {}, p1 {}, p2 {}.",
            if self.bivalent_throughout {
                format!(
                    "Undecided after all {} steps: every configuration above is bivalent.",
                    self.steps_requested
                )
            } else {
                format!(
                    "The adversary found no bivalent successor after step {}.",
                    self.steps.len()
                )
            },
            self.deliveries_per_process[0],
            self.deliveries_per_process[1],
            self.deliveries_per_process[2]
        );
        let d = &self.detector;
        let _ = writeln!(
            out,
            "\nWith an eventually accurate failure detector (accurate from step {}{}):",
            d.stabilize_at,
            match d.crash {
                Some((p, at)) => format!(", p{p} crashes after step {at}"),
                None => String::new(),
            }
        );
        for s in d.steps.iter().filter(|s| s.step + 3 > d.stabilize_at) {
            let _ = writeln!(
                out,
                "step {:>3}{}: deliver {}  -> {}  | {}",
                s.step,
                if s.accurate { "*" } else { " " },
                event_word(&s.event),
                s.valence,
                s.configuration.render()
            );
        }
        let _ = writeln!(
            out,
            "{}",
            match (d.decided_at, d.decision, d.all_decided_at) {
                (Some(at), Some(v), Some(all)) => format!(
                    "Decided {v} at step {at}; every live process had decided by step {all} \
                     (* = detector accurate)."
                ),
                (Some(at), Some(v), None) => format!("Decided {v} at step {at}."),
                _ => "No decision within the step limit.".to_string(),
            }
        );
        out
    }
}

fn schedule_word(schedule: &[Message]) -> String {
    format!(
        "[{}]",
        schedule
            .iter()
            .map(event_word)
            .collect::<Vec<_>>()
            .join(" ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unanimous_inputs_are_univalent() {
        let v = explore(&Configuration::initial([0, 0, 0]), Rules::ASYNC);
        assert_eq!(v.word(), "0-valent");
        let v = explore(&Configuration::initial([1, 1, 1]), Rules::ASYNC);
        assert_eq!(v.word(), "1-valent");
    }

    #[test]
    fn the_protocol_is_safe_wherever_the_explorer_goes() {
        // No reachable configuration (within the bound) has two different decisions.
        for bits in 0..8u8 {
            let start = Configuration::initial([bits >> 2 & 1, bits >> 1 & 1, bits & 1]);
            let mut seen = std::collections::HashSet::new();
            let mut stack = vec![start];
            while let Some(c) = stack.pop() {
                if seen.len() > 20_000 || !seen.insert(c.clone()) {
                    continue;
                }
                let decided: std::collections::BTreeSet<u8> =
                    c.processes.iter().filter_map(|p| p.decided).collect();
                assert!(decided.len() <= 1, "disagreement in {}", c.render());
                if c.latest_round() <= 3 {
                    for e in c.enabled(Rules::ASYNC) {
                        stack.push(c.apply(e, Rules::ASYNC));
                    }
                }
            }
        }
    }

    #[test]
    fn synchronous_rounds_decide() {
        // Deliver every message of the round before anyone moves on: all hear the same.
        let rules = Rules {
            wait_for_unsuspected: true,
            crashed: None,
        };
        let mut c = Configuration::initial([0, 1, 1]);
        for _ in 0..40 {
            if c.processes.iter().all(|p| p.decided.is_some()) {
                break;
            }
            let e = c.enabled(rules)[0];
            c = c.apply(e, rules);
        }
        assert!(c.processes.iter().all(|p| p.decided == Some(1)));
    }
}
