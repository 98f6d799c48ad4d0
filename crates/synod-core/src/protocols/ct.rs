//! Chandra–Toueg rotating-coordinator consensus with ◇S (rules CT-1 … CT-8 in
//! `docs/PROTOCOL.md`), after Chandra & Toueg 1996, "Unreliable failure detectors for reliable
//! distributed systems", Fig. 6. Crash faults only; safe for any number of crashes and live
//! when a majority is correct (n ≥ 2f + 1) and the detector is eventually weakly accurate.
//!
//! Round r has coordinator r mod n and four phases: every node sends its estimate (with the
//! round it was adopted in, `ts`) to the coordinator (phase 1); the coordinator waits for a
//! majority of estimates and proposes the one with the largest `ts` (phase 2); a node acks the
//! proposal and adopts it, or nacks once it suspects the coordinator (phase 3); a coordinator
//! with a majority of acks reliably broadcasts the decision (phase 4). Suspicions arrive as
//! inputs from a failure detector (see [`super::detector`]).
//!
//! Channels are assumed reliable by the paper; over a lossy network the node retransmits its
//! messages of the current and previous round on a timer (CT-7), and a decided node keeps
//! re-sending the decision.

use super::{NodeId, Round, Value, majority};
use std::collections::{BTreeMap, BTreeSet};

/// Settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CtConfig {
    /// Nodes.
    pub n: usize,
    /// Retransmission period (CT-7).
    pub retransmit_ms: u64,
    /// Rounds are never entered at or beyond this; messages for them are dropped.
    pub rounds_max: u32,
}

impl CtConfig {
    /// Defaults for `n` nodes and message delays around 10 ms.
    pub fn new(n: usize) -> CtConfig {
        CtConfig {
            n,
            retransmit_ms: 100,
            rounds_max: 10_000,
        }
    }

    /// The coordinator of `round`: round robin (CT-1).
    pub fn coordinator(&self, round: Round) -> NodeId {
        NodeId((round.0 as usize % self.n.max(1)) as u16)
    }
}

/// Messages of the protocol.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CtMessage {
    /// Phase 1: (p, r, estimate_p, ts_p) to the coordinator.
    Estimate {
        /// Round.
        round: Round,
        /// The sender's estimate.
        estimate: Value,
        /// The round in which the estimate was adopted from a coordinator (0 if never, so
        /// adopted rounds count from 1: `ts = r + 1`).
        ts: u32,
    },
    /// Phase 2: the coordinator's proposal.
    Propose {
        /// Round.
        round: Round,
        /// The estimate with the largest `ts` among a majority.
        estimate: Value,
    },
    /// Phase 3: the sender adopted the proposal.
    Ack {
        /// Round.
        round: Round,
    },
    /// Phase 3: the sender suspected the coordinator.
    Nack {
        /// Round.
        round: Round,
    },
    /// Phase 4: R-broadcast(decide, v).
    Decide {
        /// The decided value.
        value: Value,
    },
}

/// What a node is told.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CtInput {
    /// Begin round 0.
    Start,
    /// A message.
    Message {
        /// Sender (authenticated channels: crash faults only).
        from: NodeId,
        /// Content.
        message: CtMessage,
    },
    /// The failure detector now suspects this node.
    Suspect(NodeId),
    /// The failure detector trusts this node again.
    Trust(NodeId),
    /// The retransmission timer fired.
    Retransmit,
}

/// What a node asks its driver to do, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CtOutput {
    /// Send to one node.
    Send {
        /// Recipient.
        to: NodeId,
        /// Content.
        message: CtMessage,
    },
    /// Feed `Retransmit` back at this time.
    SetRetransmit {
        /// When.
        at_ms: u64,
    },
    /// The value is decided; emitted once.
    Decide(Value),
}

/// What a node dropped.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CtCounters {
    /// Messages from ids outside `0..n`.
    pub unknown_sender: u64,
    /// Messages for rounds already left or at or beyond `rounds_max`.
    pub out_of_window: u64,
    /// Proposals from a node that is not the round's coordinator, or replies to a node that
    /// does not coordinate that round.
    pub misdirected: u64,
    /// Repeats.
    pub duplicate: u64,
}

#[derive(Clone, Debug, Default)]
struct RoundState {
    estimates: BTreeMap<NodeId, (Value, u32)>,
    proposal: Option<Value>,
    replies: BTreeMap<NodeId, bool>,
    proposed: bool,
    replied: bool,
    coordinator_done: bool,
}

/// One node of a Chandra–Toueg instance.
#[derive(Clone, Debug)]
pub struct CtNode {
    id: NodeId,
    config: CtConfig,
    estimate: Value,
    ts: u32,
    round: Round,
    started: bool,
    suspected: BTreeSet<NodeId>,
    decision: Option<Value>,
    rounds: BTreeMap<Round, RoundState>,
    /// What to retransmit: messages of the current and previous round.
    recent: Vec<(Round, NodeId, CtMessage)>,
    counters: CtCounters,
}

impl CtNode {
    /// Node `id` proposing `input`.
    pub fn new(id: NodeId, config: CtConfig, input: Value) -> CtNode {
        CtNode {
            id,
            config,
            estimate: input,
            ts: 0,
            round: Round(0),
            started: false,
            suspected: BTreeSet::new(),
            decision: None,
            rounds: BTreeMap::new(),
            recent: Vec::new(),
            counters: CtCounters::default(),
        }
    }

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.id
    }
    /// Current round.
    pub fn round(&self) -> Round {
        self.round
    }
    /// Current estimate and the round it was adopted in (`ts`).
    pub fn estimate(&self) -> (&Value, u32) {
        (&self.estimate, self.ts)
    }
    /// The decision, once made.
    pub fn decision(&self) -> Option<&Value> {
        self.decision.as_ref()
    }
    /// Drop counters.
    pub fn counters(&self) -> CtCounters {
        self.counters
    }

    /// The single entry point.
    pub fn step(&mut self, now_ms: u64, input: CtInput, out: &mut Vec<CtOutput>) {
        match input {
            CtInput::Start => {
                if self.started {
                    return;
                }
                self.started = true;
                out.push(CtOutput::SetRetransmit {
                    at_ms: now_ms + self.config.retransmit_ms,
                });
                self.enter_round(Round(0), out);
            }
            CtInput::Message { from, message } => self.receive(from, message, out),
            CtInput::Suspect(p) => {
                if p.index() < self.config.n && p != self.id {
                    self.suspected.insert(p);
                }
            }
            CtInput::Trust(p) => {
                self.suspected.remove(&p);
            }
            CtInput::Retransmit => {
                out.push(CtOutput::SetRetransmit {
                    at_ms: now_ms + self.config.retransmit_ms,
                });
                if let Some(v) = &self.decision {
                    // CT-6: keep the reliable broadcast going.
                    for to in self.others() {
                        out.push(CtOutput::Send {
                            to,
                            message: CtMessage::Decide { value: v.clone() },
                        });
                    }
                    return;
                }
                for (_, to, m) in &self.recent {
                    out.push(CtOutput::Send {
                        to: *to,
                        message: m.clone(),
                    });
                }
                // CT-7: announce the round to everyone, so nodes left behind catch up (CT-9)
                // even when every node waits as the coordinator of its own round.
                let c = self.config.coordinator(self.round);
                for to in self.others().into_iter().filter(|p| *p != c) {
                    out.push(CtOutput::Send {
                        to,
                        message: CtMessage::Estimate {
                            round: self.round,
                            estimate: self.estimate.clone(),
                            ts: self.ts,
                        },
                    });
                }
            }
        }
        if self.started {
            self.progress(out);
        }
    }

    fn others(&self) -> Vec<NodeId> {
        (0..self.config.n as u16)
            .map(NodeId)
            .filter(|p| *p != self.id)
            .collect()
    }

    fn send(&mut self, to: NodeId, message: CtMessage, out: &mut Vec<CtOutput>) {
        if to == self.id {
            self.receive(to, message, out);
            return;
        }
        self.recent.push((self.round, to, message.clone()));
        out.push(CtOutput::Send { to, message });
    }

    fn enter_round(&mut self, round: Round, out: &mut Vec<CtOutput>) {
        self.round = round;
        let keep = Round(round.0.saturating_sub(1));
        self.recent.retain(|(r, _, _)| *r >= keep);
        self.rounds = self.rounds.split_off(&round);
        // CT-2, phase 1: send the estimate to the coordinator.
        let c = self.config.coordinator(round);
        let m = CtMessage::Estimate {
            round,
            estimate: self.estimate.clone(),
            ts: self.ts,
        };
        self.send(c, m, out);
    }

    fn receive(&mut self, from: NodeId, message: CtMessage, out: &mut Vec<CtOutput>) {
        if from.index() >= self.config.n {
            self.counters.unknown_sender += 1;
            return;
        }
        if let CtMessage::Decide { value } = message {
            if self.decision.is_none() {
                // CT-6: R-deliver: relay first, then decide.
                for to in self.others() {
                    out.push(CtOutput::Send {
                        to,
                        message: CtMessage::Decide {
                            value: value.clone(),
                        },
                    });
                }
                self.decision = Some(value.clone());
                out.push(CtOutput::Decide(value));
            } else {
                self.counters.duplicate += 1;
            }
            return;
        }
        let round = match &message {
            CtMessage::Estimate { round, .. }
            | CtMessage::Propose { round, .. }
            | CtMessage::Ack { round }
            | CtMessage::Nack { round } => *round,
            CtMessage::Decide { .. } => return,
        };
        if round < self.round || round.0 >= self.config.rounds_max {
            self.counters.out_of_window += 1;
            return;
        }
        if round > self.round && self.decision.is_none() {
            // CT-9: catch up. Leaving the rounds in between is what a node too slow for them
            // would look like (it neither adopts nor acks there; its estimate and ts are
            // unchanged), so safety is kept; without it a node whose old-round estimates were
            // lost in a partition could wait forever as the coordinator of a round everyone
            // else has left.
            self.enter_round(round, out);
        }
        let coordinator = self.config.coordinator(round);
        let st = self.rounds.entry(round).or_default();
        match message {
            CtMessage::Estimate { estimate, ts, .. } => {
                if coordinator != self.id {
                    // A round announcement (CT-7); CT-9 has already acted on it.
                } else if st.estimates.insert(from, (estimate, ts)).is_some() {
                    self.counters.duplicate += 1;
                }
            }
            CtMessage::Propose { estimate, .. } => {
                if coordinator != from {
                    self.counters.misdirected += 1;
                } else if st.proposal.is_some() {
                    self.counters.duplicate += 1;
                } else {
                    st.proposal = Some(estimate);
                }
            }
            CtMessage::Ack { .. } | CtMessage::Nack { .. } => {
                let ack = matches!(message, CtMessage::Ack { .. });
                if coordinator != self.id {
                    self.counters.misdirected += 1;
                } else if st.replies.insert(from, ack).is_some() {
                    self.counters.duplicate += 1;
                }
            }
            CtMessage::Decide { .. } => {}
        }
    }

    /// Runs every phase that can run, possibly through several rounds.
    fn progress(&mut self, out: &mut Vec<CtOutput>) {
        let maj = majority(self.config.n);
        while self.decision.is_none() {
            let r = self.round;
            let c = self.config.coordinator(r);
            let me = self.id;
            let st = self.rounds.entry(r).or_default();
            if c == me && !st.proposed && st.estimates.len() >= maj {
                // CT-3, phase 2: the estimate with the largest ts (ties: lowest sender id).
                let (v, _) = st
                    .estimates
                    .values()
                    .fold(None::<(Value, u32)>, |best, (v, ts)| match best {
                        Some((bv, bts)) if bts >= *ts => Some((bv, bts)),
                        _ => Some((v.clone(), *ts)),
                    })
                    .unwrap_or_else(|| (self.estimate.clone(), self.ts));
                st.proposed = true;
                for to in self.others() {
                    self.send(
                        to,
                        CtMessage::Propose {
                            round: r,
                            estimate: v.clone(),
                        },
                        out,
                    );
                }
                self.rounds.entry(r).or_default().proposal = Some(v);
                continue;
            }
            let st = self.rounds.entry(r).or_default();
            if !st.replied {
                if let Some(v) = st.proposal.clone() {
                    // CT-4, phase 3: adopt the coordinator's estimate and ack.
                    st.replied = true;
                    self.estimate = v;
                    self.ts = r.0 + 1;
                    self.send(c, CtMessage::Ack { round: r }, out);
                    continue;
                }
                if self.suspected.contains(&c) {
                    // CT-4: the coordinator is suspected: nack and move on.
                    st.replied = true;
                    self.send(c, CtMessage::Nack { round: r }, out);
                    continue;
                }
            }
            let st = self.rounds.entry(r).or_default();
            if c == me && st.proposed && !st.coordinator_done {
                let acks = st.replies.values().filter(|a| **a).count();
                if acks >= maj {
                    // CT-5, phase 4: a majority adopted the estimate: it is locked; decide.
                    st.coordinator_done = true;
                    let v = st.proposal.clone().unwrap_or_else(|| self.estimate.clone());
                    for to in self.others() {
                        out.push(CtOutput::Send {
                            to,
                            message: CtMessage::Decide { value: v.clone() },
                        });
                    }
                    self.decision = Some(v.clone());
                    out.push(CtOutput::Decide(v));
                    return;
                }
                if st.replies.len() >= maj {
                    st.coordinator_done = true;
                }
            }
            let st = self.rounds.entry(r).or_default();
            let done = st.replied && (c != me || st.coordinator_done);
            if done && r.0 + 1 < self.config.rounds_max {
                // CT-8: next round.
                self.enter_round(Round(r.0 + 1), out);
                continue;
            }
            return;
        }
    }
}
