//! Exhaustive model checking with stateright (DESIGN §6).
//!
//! - [`BftModel`]: an abstraction of one height of the Tendermint core (the rules of
//!   `synod_core::protocols::bft`, L11–L67) with **two rounds and two values (A, B) plus nil**.
//!   The network is a set of messages (the standard TLA+ treatment of Tendermint): a correct
//!   node may act on any message already sent, at any time, so every delivery order and every
//!   timeout is explored. Node 0 is Byzantine and the proposer of round 0; it may have sent
//!   any message of the bounded set (proposals of A or B with validRound −1 or 0, prevotes
//!   and precommits for A, B or nil in rounds 0 and 1) to anyone, which covers equivocation.
//!   Correct proposers choose getValue() from {A, B}. The real core (signatures, gossip,
//!   unbounded rounds) is too big to explore exhaustively; the simulator covers it.
//! - [`TallyModel`]: the trusted tally (`synod_core::tally::rule`) applied after every vote
//!   as agents answer one by one; m faulty agents vote adversarially (a wrong reading X, either
//!   correct reading, or no vote), correct agents vote for reading R0 or R1.
//!
//! [`run_check`] explores four models: BFT at n = 4, f = 1 (agreement always holds, a
//! decision is sometimes reached), BFT at n = 3, f = 1 (quorum 2: the checker finds the
//! equivocation counterexample), the tally at n = 2m + 1 (a decided class always holds a
//! correct agent) and at n = 2m (it can be all faulty).

use serde::{Deserialize, Serialize};
use stateright::{Checker, Model, Property};
use std::fmt;
use std::time::Instant;
use synod_core::tally::{Verdict, rule};

/// Rounds explored by [`BftModel`].
pub const BFT_ROUNDS: usize = 2;
const NIL: u8 = 0;
const NONE: u8 = 255;

fn value_name(v: u8) -> &'static str {
    match v {
        0 => "nil",
        1 => "A",
        2 => "B",
        _ => "-",
    }
}

/// One correct node of the abstraction.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct BftNodeState {
    round: u8,
    /// 0 propose, 1 prevote, 2 precommit.
    step: u8,
    locked: Option<(u8, u8)>,
    valid: Option<(u8, u8)>,
    decision: Option<u8>,
    prevote: [u8; BFT_ROUNDS],
    precommit: [u8; BFT_ROUNDS],
    fired36: [bool; BFT_ROUNDS],
}

/// A state: the correct nodes and the proposals correct proposers have sent.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct BftState {
    nodes: Vec<BftNodeState>,
    /// (round, value, validRound or −1) proposed by correct proposers.
    proposals: Vec<(u8, u8, i8)>,
}

/// A step of one correct node (index among all nodes; node 0 is Byzantine).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum BftAction {
    /// L14-L19: the proposer of its round proposes.
    Propose(usize, u8),
    /// L22/L28: prevote for the proposal (round, value, validRound) or nil.
    PrevoteOn(usize, u8, i8),
    /// L57: timeout propose → prevote nil.
    TimeoutPropose(usize),
    /// L36: quorum of prevotes for v with its proposal.
    Lock(usize, u8),
    /// L44: quorum of nil prevotes.
    PrecommitNil(usize),
    /// L61: timeout prevote → precommit nil.
    TimeoutPrevote(usize),
    /// L49: decide (round, value).
    Decide(usize, u8, u8),
    /// L65: timeout precommit → next round.
    TimeoutPrecommit(usize),
    /// L55: skip to a round with f + 1 senders.
    Skip(usize, u8),
}

/// Tendermint, one height, two rounds, node 0 Byzantine.
#[derive(Clone, Debug)]
pub struct BftModel {
    /// Nodes (node 0 Byzantine).
    pub n: usize,
    /// Fault budget: quorum n − f, skip threshold f + 1.
    pub f: usize,
}

impl BftModel {
    fn q(&self) -> usize {
        self.n - self.f
    }
    fn proposer(&self, r: u8) -> usize {
        usize::from(r) % self.n
    }
    /// Byzantine nodes: node 0 only.
    fn byz(&self) -> usize {
        1
    }
    fn node(&self, s: &BftState, i: usize) -> Option<BftNodeState> {
        i.checked_sub(1).map(|k| s.nodes[k].clone())
    }
    /// Proposals available in round r: (value, validRound).
    fn proposals(&self, s: &BftState, r: u8) -> Vec<(u8, i8)> {
        if self.proposer(r) == 0 {
            // The Byzantine proposer may have proposed anything.
            let mut v = vec![(1, -1), (2, -1)];
            if r > 0 {
                v.extend([(1, 0), (2, 0)]);
            }
            v
        } else {
            s.proposals
                .iter()
                .filter(|(pr, _, _)| *pr == r)
                .map(|(_, v, vr)| (*v, *vr))
                .collect()
        }
    }
    fn prevotes(&self, s: &BftState, r: u8, v: u8) -> usize {
        self.byz()
            + s.nodes
                .iter()
                .filter(|n| n.prevote[usize::from(r)] == v)
                .count()
    }
    fn prevotes_any(&self, s: &BftState, r: u8) -> usize {
        self.byz()
            + s.nodes
                .iter()
                .filter(|n| n.prevote[usize::from(r)] != NONE)
                .count()
    }
    fn precommits(&self, s: &BftState, r: u8, v: u8) -> usize {
        self.byz()
            + s.nodes
                .iter()
                .filter(|n| n.precommit[usize::from(r)] == v)
                .count()
    }
    fn precommits_any(&self, s: &BftState, r: u8) -> usize {
        self.byz()
            + s.nodes
                .iter()
                .filter(|n| n.precommit[usize::from(r)] != NONE)
                .count()
    }
    fn senders(&self, s: &BftState, r: u8) -> usize {
        let ri = usize::from(r);
        self.byz()
            + s.nodes
                .iter()
                .enumerate()
                .filter(|(k, n)| {
                    n.prevote[ri] != NONE
                        || n.precommit[ri] != NONE
                        || (self.proposer(r) == k + 1
                            && s.proposals.iter().any(|(pr, _, _)| *pr == r))
                })
                .count()
    }
}

fn start_round(n: &mut BftNodeState, r: u8) {
    n.round = r;
    n.step = 0;
}

impl Model for BftModel {
    type State = BftState;
    type Action = BftAction;

    fn init_states(&self) -> Vec<BftState> {
        let node = BftNodeState {
            round: 0,
            step: 0,
            locked: None,
            valid: None,
            decision: None,
            prevote: [NONE; BFT_ROUNDS],
            precommit: [NONE; BFT_ROUNDS],
            fired36: [false; BFT_ROUNDS],
        };
        vec![BftState {
            nodes: vec![node; self.n - 1],
            proposals: Vec::new(),
        }]
    }

    fn actions(&self, s: &BftState, acts: &mut Vec<BftAction>) {
        let q = self.q();
        for i in 1..self.n {
            let Some(me) = self.node(s, i) else { continue };
            if me.decision.is_some() {
                continue;
            }
            let r = me.round;
            let ri = usize::from(r);
            if me.step == 0 {
                if self.proposer(r) == i && !s.proposals.iter().any(|(pr, _, _)| *pr == r) {
                    match me.valid {
                        Some((v, _)) => acts.push(BftAction::Propose(i, v)),
                        None => {
                            acts.push(BftAction::Propose(i, 1));
                            acts.push(BftAction::Propose(i, 2));
                        }
                    }
                }
                for (v, vr) in self.proposals(s, r) {
                    if vr < 0 || (vr < r as i8 && self.prevotes(s, vr as u8, v) >= q) {
                        acts.push(BftAction::PrevoteOn(i, v, vr));
                    }
                }
                acts.push(BftAction::TimeoutPropose(i));
            }
            if me.step >= 1 && !me.fired36[ri] {
                for (v, _) in self.proposals(s, r) {
                    if self.prevotes(s, r, v) >= q {
                        acts.push(BftAction::Lock(i, v));
                    }
                }
            }
            if me.step == 1 {
                if self.prevotes(s, r, NIL) >= q {
                    acts.push(BftAction::PrecommitNil(i));
                }
                if self.prevotes_any(s, r) >= q {
                    acts.push(BftAction::TimeoutPrevote(i));
                }
            }
            for pr in 0..BFT_ROUNDS as u8 {
                for (v, _) in self.proposals(s, pr) {
                    if self.precommits(s, pr, v) >= q {
                        acts.push(BftAction::Decide(i, pr, v));
                    }
                }
            }
            if self.precommits_any(s, r) >= q && ri + 1 < BFT_ROUNDS {
                acts.push(BftAction::TimeoutPrecommit(i));
            }
            for rr in (r + 1)..BFT_ROUNDS as u8 {
                if self.senders(s, rr) > self.f {
                    acts.push(BftAction::Skip(i, rr));
                }
            }
        }
    }

    fn next_state(&self, s: &BftState, a: BftAction) -> Option<BftState> {
        let mut t = s.clone();
        match a {
            BftAction::Propose(i, v) => {
                let me = &t.nodes[i - 1];
                let vr = me.valid.map_or(-1, |(_, vr)| vr as i8);
                t.proposals.push((me.round, v, vr));
                t.proposals.sort_unstable();
            }
            BftAction::PrevoteOn(i, v, vr) => {
                let me = &mut t.nodes[i - 1];
                let ok = if vr < 0 {
                    me.locked.is_none_or(|(lv, _)| lv == v) // L23
                } else {
                    me.locked.is_none_or(|(lv, lr)| lr as i8 <= vr || lv == v) // L29
                };
                me.prevote[usize::from(me.round)] = if ok { v } else { NIL };
                me.step = 1;
            }
            BftAction::TimeoutPropose(i) => {
                let me = &mut t.nodes[i - 1];
                me.prevote[usize::from(me.round)] = NIL;
                me.step = 1;
            }
            BftAction::Lock(i, v) => {
                let me = &mut t.nodes[i - 1];
                let r = me.round;
                me.fired36[usize::from(r)] = true;
                if me.step == 1 {
                    me.locked = Some((v, r));
                    me.precommit[usize::from(r)] = v;
                    me.step = 2;
                }
                me.valid = Some((v, r));
            }
            BftAction::PrecommitNil(i) | BftAction::TimeoutPrevote(i) => {
                let me = &mut t.nodes[i - 1];
                me.precommit[usize::from(me.round)] = NIL;
                me.step = 2;
            }
            BftAction::Decide(i, _, v) => t.nodes[i - 1].decision = Some(v),
            BftAction::TimeoutPrecommit(i) => {
                let me = &mut t.nodes[i - 1];
                let r = me.round + 1;
                start_round(me, r);
            }
            BftAction::Skip(i, r) => start_round(&mut t.nodes[i - 1], r),
        }
        Some(t)
    }

    fn format_action(&self, a: &BftAction) -> String {
        match a {
            BftAction::Propose(i, v) => format!("n{i} proposes {}", value_name(*v)),
            BftAction::PrevoteOn(i, v, vr) => {
                format!("n{i} prevotes on proposal {} (vr {vr})", value_name(*v))
            }
            BftAction::TimeoutPropose(i) => format!("n{i} times out waiting for a proposal"),
            BftAction::Lock(i, v) => format!("n{i} sees a prevote quorum for {}", value_name(*v)),
            BftAction::PrecommitNil(i) => format!("n{i} precommits nil"),
            BftAction::TimeoutPrevote(i) => format!("n{i} prevote timeout: precommits nil"),
            BftAction::Decide(i, r, v) => format!("n{i} DECIDES {} in round {r}", value_name(*v)),
            BftAction::TimeoutPrecommit(i) => format!("n{i} precommit timeout: next round"),
            BftAction::Skip(i, r) => format!("n{i} skips to round {r}"),
        }
    }

    fn properties(&self) -> Vec<Property<Self>> {
        vec![
            Property::always("agreement", |_, s: &BftState| {
                let mut ds = s.nodes.iter().filter_map(|n| n.decision);
                match ds.next() {
                    Some(first) => ds.all(|d| d == first),
                    None => true,
                }
            }),
            Property::sometimes("decision", |_, s: &BftState| {
                s.nodes.iter().any(|n| n.decision.is_some())
            }),
        ]
    }
}

/// The trusted tally with agents voting one by one; agents `0..m` are faulty.
#[derive(Clone, Debug)]
pub struct TallyModel {
    /// Agents.
    pub n: usize,
    /// Faulty agents (and the rule's fault budget).
    pub m: usize,
}

/// Reading labels: X (wrong, label 0, so ties favour it: adversarial), R0, R1; 3 = no vote.
const TALLY_X: u8 = 0;
const TALLY_NO_VOTE: u8 = 3;

/// Votes so far and the decided class, if any.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TallyState {
    votes: Vec<u8>,
    decided: Option<u8>,
}

impl TallyModel {
    fn decide(&self, votes: &[u8]) -> Option<u8> {
        let mut counts = [0usize; 3];
        for v in votes {
            if *v < 3 {
                counts[usize::from(*v)] += 1;
            }
        }
        let mut classes: Vec<(usize, u8)> = (0..3u8)
            .filter(|c| counts[usize::from(*c)] > 0)
            .map(|c| (counts[usize::from(c)], c))
            .collect();
        classes.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        let sizes: Vec<usize> = classes.iter().map(|c| c.0).collect();
        (rule(self.n, self.m, &sizes) == Verdict::Decide).then(|| classes[0].1)
    }
}

impl Model for TallyModel {
    type State = TallyState;
    type Action = u8;

    fn init_states(&self) -> Vec<TallyState> {
        vec![TallyState {
            votes: Vec::new(),
            decided: None,
        }]
    }

    fn actions(&self, s: &TallyState, acts: &mut Vec<u8>) {
        if s.decided.is_some() || s.votes.len() >= self.n {
            return;
        }
        if s.votes.len() < self.m {
            acts.extend([TALLY_X, 1, 2, TALLY_NO_VOTE]);
        } else {
            acts.extend([1, 2]);
        }
    }

    fn next_state(&self, s: &TallyState, a: u8) -> Option<TallyState> {
        let mut t = s.clone();
        t.votes.push(a);
        t.decided = self.decide(&t.votes);
        Some(t)
    }

    fn format_action(&self, a: &u8) -> String {
        match *a {
            TALLY_X => "a faulty agent votes for the wrong reading X".into(),
            TALLY_NO_VOTE => "a faulty agent gives no vote".into(),
            r => format!("an agent votes for reading R{}", r - 1),
        }
    }

    fn properties(&self) -> Vec<Property<Self>> {
        vec![
            Property::always(
                "decided class has a correct agent",
                |m: &TallyModel, s: &TallyState| match s.decided {
                    None => true,
                    Some(c) => s.votes.iter().enumerate().any(|(i, v)| *v == c && i >= m.m),
                },
            ),
            Property::sometimes("decision", |_, s: &TallyState| s.decided.is_some()),
        ]
    }
}

/// One line of the check table.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckRow {
    /// Model and size.
    pub model: String,
    /// Property checked.
    pub property: String,
    /// What theory predicts: "holds", "violated" or "reachable".
    pub expected: String,
    /// What the checker found.
    pub result: String,
    /// Whether the result matches the prediction.
    pub ok: bool,
    /// Unique states explored.
    pub states: usize,
    /// Deepest path explored.
    pub depth: usize,
    /// Wall-clock time of the whole model's exploration, ms.
    pub time_ms: u64,
    /// The counterexample or example trace, step by step, when one was found.
    pub trace: Vec<String>,
}

/// The result of [`run_check`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckReport {
    /// Bounds of the BFT abstraction.
    pub bounds: String,
    /// One row per (model, property).
    pub rows: Vec<CheckRow>,
}

impl CheckReport {
    /// Every result matched theory.
    pub fn ok(&self) -> bool {
        self.rows.iter().all(|r| r.ok)
    }
}

/// The result of exploring one model: per property (found, trace), states, depth, time.
pub struct Explored {
    /// Per property: name, expectation ("holds" or "reachable"), discovery trace if any.
    pub discoveries: Vec<(&'static str, bool, Option<Vec<String>>)>,
    /// Unique states.
    pub states: usize,
    /// Max depth.
    pub depth: usize,
    /// Time, ms.
    pub time_ms: u64,
}

/// Explores `model` exhaustively (BFS, one thread, so state counts are reproducible).
pub fn explore<M>(model: M) -> Explored
where
    M: Model + Clone + Send + Sync + 'static,
    M::State: Clone + fmt::Debug + std::hash::Hash + PartialEq + Send + Sync,
    M::Action: Clone + fmt::Debug + PartialEq,
{
    let started = Instant::now();
    let props: Vec<(&'static str, bool)> = model
        .properties()
        .iter()
        .map(|p| {
            (
                p.name,
                matches!(p.expectation, stateright::Expectation::Always),
            )
        })
        .collect();
    let fmt_model = model.clone();
    let checker = model.checker().threads(1).spawn_bfs().join();
    let discoveries = props
        .iter()
        .map(|(name, always)| {
            let trace = checker.discovery(name).map(|path| {
                path.into_actions()
                    .iter()
                    .map(|a| fmt_model.format_action(a))
                    .collect()
            });
            (*name, *always, trace)
        })
        .collect();
    Explored {
        discoveries,
        states: checker.unique_state_count(),
        depth: checker.max_depth(),
        time_ms: started.elapsed().as_millis() as u64,
    }
}

fn rows(model: &str, expect_safe: bool, e: Explored) -> Vec<CheckRow> {
    e.discoveries
        .into_iter()
        .map(|(name, always, trace)| {
            let found = trace.is_some();
            let (expected, result, ok) = if always {
                let expected = if expect_safe { "holds" } else { "violated" };
                let result = if found { "violated" } else { "holds" };
                (expected, result, found != expect_safe)
            } else {
                (
                    "reachable",
                    if found { "reachable" } else { "unreachable" },
                    found,
                )
            };
            CheckRow {
                model: model.to_string(),
                property: name.to_string(),
                expected: expected.to_string(),
                result: result.to_string(),
                ok,
                states: e.states,
                depth: e.depth,
                time_ms: e.time_ms,
                trace: if always {
                    trace.unwrap_or_default()
                } else {
                    Vec::new()
                },
            }
        })
        .collect()
}

/// Runs the four models of the module docs.
pub fn run_check() -> CheckReport {
    let mut out = Vec::new();
    out.extend(rows(
        "bft n=4 f=1 (quorum 3)",
        true,
        explore(BftModel { n: 4, f: 1 }),
    ));
    out.extend(rows(
        "bft n=3 f=1 (quorum 2)",
        false,
        explore(BftModel { n: 3, f: 1 }),
    ));
    out.extend(rows(
        "tally n=5 m=2 (n=2m+1)",
        true,
        explore(TallyModel { n: 5, m: 2 }),
    ));
    out.extend(rows(
        "tally n=4 m=2 (n=2m)",
        false,
        explore(TallyModel { n: 4, m: 2 }),
    ));
    CheckReport {
        bounds: format!(
            "bft: one height, {BFT_ROUNDS} rounds, values A, B and nil; node 0 Byzantine (any proposal, prevote, precommit of that set, to anyone); tally: agents vote one by one, m faulty ones vote X, R0, R1 or nothing"
        ),
        rows: out,
    }
}

impl fmt::Display for CheckReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "bounds: {}", self.bounds)?;
        writeln!(
            f,
            "{:<24} {:<34} {:<10} {:<12} {:>9} {:>6} {:>8}",
            "model", "property", "expected", "result", "states", "depth", "time"
        )?;
        for r in &self.rows {
            writeln!(
                f,
                "{:<24} {:<34} {:<10} {:<12} {:>9} {:>6} {:>6}ms{}",
                r.model,
                r.property,
                r.expected,
                r.result,
                r.states,
                r.depth,
                r.time_ms,
                if r.ok { "" } else { "  MISMATCH" }
            )?;
        }
        for r in self.rows.iter().filter(|r| !r.trace.is_empty()) {
            writeln!(f, "\ncounterexample: {} / {}", r.model, r.property)?;
            for (i, step) in r.trace.iter().enumerate() {
                writeln!(f, "  {:>2}. {step}", i + 1)?;
            }
        }
        Ok(())
    }
}
