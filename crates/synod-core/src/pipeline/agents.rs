//! What the pipeline knows of each agent: the asks waiting for it, whether it is suspected,
//! its faults and what its replies cost. Stage-independent: every stage asks agents through
//! [`Pipeline::ask`] and hears of replies and suspicions from here.
//!
//! Suspicion is the protocol's ◇P detector ([`EventuallyPerfect`], rules FD-1, FD-2, FD-7), the
//! code the lab and the simulator check: an agent is watched while an ask to it is pending; a
//! reply or a heartbeat on a pending ask is a sign of life; silent past its timeout, it is
//! suspected and all its pending asks go to others; a late reply proves the suspicion false, and
//! its timeout grows by the agents file's increment, up to the cap.

use super::*;
use crate::protocols::NodeId;
use crate::protocols::detector::{
    DetectorInput, DetectorOutput, EventuallyPerfect, FailureDetector,
};

/// One agent's record during the build.
#[derive(Clone, Debug)]
pub(super) struct AgentState {
    pub(super) info: AgentInfo,
    pub(super) calls: u32,
    pub(super) faults: Vec<Fault>,
    pub(super) suspicions: u32,
    pub(super) usage: Usage,
    /// Examples it stated a result for, and how many of them its own reference met.
    pub(super) stated: SelfConsistency,
}

impl AgentState {
    pub(super) fn new(info: &AgentInfo) -> AgentState {
        AgentState {
            info: info.clone(),
            calls: 0,
            faults: Vec::new(),
            suspicions: 0,
            usage: Usage::default(),
            stated: SelfConsistency::default(),
        }
    }
}

/// What an ask is for: which stage its reply goes to.
#[derive(Clone, Debug)]
pub(super) enum AskPurpose {
    Interpret,
    Implement { component: usize },
    Distinguish,
}

/// An ask sent and not yet answered.
#[derive(Clone, Debug)]
pub(super) struct PendingAsk {
    pub(super) agent: AgentId,
    pub(super) purpose: AskPurpose,
    pub(super) key: String,
}

/// The detector's name for an agent.
pub(super) fn node(a: AgentId) -> NodeId {
    NodeId(a.0 as u16)
}

/// The pipeline's failure detector: every agent known, with its own first timeout.
pub(super) fn detector(cfg: &PipelineConfig) -> EventuallyPerfect {
    let config = crate::protocols::detector::EventuallyPerfectConfig {
        timeout_initial_ms: 0,
        increment_ms: cfg.timeout_increment_ms,
        timeout_max_ms: cfg.timeout_max_ms,
    };
    EventuallyPerfect::on_demand(
        config,
        cfg.agents.iter().map(|a| (node(a.id), a.timeout_ms)),
    )
}

impl Pipeline {
    pub(super) fn name(&self, a: AgentId) -> String {
        self.agents[a.0 as usize].info.name.clone()
    }

    pub(super) fn records(&self) -> Vec<AgentRecord> {
        self.agents
            .iter()
            .map(|a| AgentRecord {
                id: a.info.id,
                name: a.info.name.clone(),
                calls: a.calls,
                faults: a.faults.clone(),
                suspicions: a.suspicions,
                suspected: self.is_suspected(a.info.id),
                usage: a.usage,
                self_consistency: a.stated,
            })
            .collect()
    }

    /// Records a fault of `agent`.
    pub(super) fn fault(
        &mut self,
        agent: AgentId,
        stage: FaultStage,
        kind: FaultKind,
        detail: &str,
        out: &mut Vec<Output>,
    ) {
        let fault = Fault {
            stage,
            kind,
            detail: cap_text(detail, 400),
        };
        self.agents[agent.0 as usize].faults.push(fault.clone());
        out.push(Output::Progress(Progress::Fault {
            agent: self.name(agent),
            reason: fault.detail.clone(),
        }));
        self.persist(
            Decision::AgentFault {
                agent,
                name: self.name(agent),
                fault,
            },
            out,
        );
    }

    /// Whether the detector suspects `agent`.
    pub(super) fn is_suspected(&self, agent: AgentId) -> bool {
        self.detector.is_suspected(node(agent))
    }

    /// `agent`'s current timeout.
    pub(super) fn timeout_ms(&self, agent: AgentId) -> u64 {
        self.detector.timeout_ms(node(agent)).unwrap_or(0)
    }

    /// Sends `request` to `agent` and watches it until it answers.
    pub(super) fn ask(
        &mut self,
        agent: AgentId,
        purpose: AskPurpose,
        request: Request,
        out: &mut Vec<Output>,
    ) {
        assert!(
            !self.is_suspected(agent),
            "a suspected agent is never asked"
        );
        let ask = AskId(self.id());
        let key = request.key();
        self.agents[agent.0 as usize].calls += 1;
        self.detector.watch(node(agent), self.now_ms);
        self.asks.insert(
            ask,
            PendingAsk {
                agent,
                purpose,
                key: key.clone(),
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
    }

    /// The next deadline: when the first watched agent would be suspected.
    pub(super) fn next_deadline(&self) -> Option<Deadline> {
        let (at_ms, peer) = self.detector.next_deadline()?;
        Some(Deadline {
            at_ms,
            timer: Timer::AskDeadline(AgentId(u32::from(peer.0))),
        })
    }

    /// A sign of life from `agent`: FD-2 trusts a suspected agent again, with a longer timeout.
    fn alive(&mut self, agent: AgentId, out: &mut Vec<Output>) {
        let mut changes = Vec::new();
        self.detector.step(
            self.now_ms,
            DetectorInput::Heartbeat(node(agent)),
            &mut changes,
        );
        if changes.contains(&DetectorOutput::Trust(node(agent))) {
            let timeout_ms = self.timeout_ms(agent);
            out.push(Output::Progress(Progress::Trusted {
                agent: self.name(agent),
                timeout_ms,
            }));
            self.persist(Decision::AgentTrusted { agent, timeout_ms }, out);
        }
    }

    /// Records what a reply cost. Returns why the build must stop when the token budget is
    /// spent.
    pub(super) fn account(
        &mut self,
        ask: AskId,
        usage: Usage,
        stage: &Stage,
        out: &mut Vec<Output>,
    ) -> Option<String> {
        let agent = self
            .asks
            .get(&ask)
            .map(|p| (p.agent, p.key.clone()))
            .or_else(|| self.expired.get(&ask).map(|a| (*a, String::new())));
        let (agent, key) = agent?;
        self.agents[agent.0 as usize].usage.add(usage);
        self.persist(
            Decision::AgentReplied {
                agent,
                request: key,
                input_tokens: usage.input_tokens,
                output_tokens: usage.output_tokens,
            },
            out,
        );
        // Usage is what the agents' servers say: saturate rather than overflow on absurd counts.
        let spent = self
            .agents
            .iter()
            .fold(0u64, |sum, a| sum.saturating_add(a.usage.total()));
        match self.cfg.tokens_max {
            Some(max) if spent > max && !matches!(stage, Stage::Done) => Some(format!(
                "token budget exhausted: {spent} tokens spent, at most {max} allowed"
            )),
            _ => None,
        }
    }

    /// The ask a reply answers, if it is still waiting. A reply to an ask whose agent was
    /// suspected proves the suspicion false: the agent is trusted again (its work stays
    /// reassigned).
    pub(super) fn take_ask(
        &mut self,
        ask: AskId,
        usable: bool,
        out: &mut Vec<Output>,
    ) -> Option<PendingAsk> {
        let Some(pending) = self.asks.remove(&ask) else {
            if let Some(agent) = self.expired.remove(&ask) {
                self.alive(agent, out);
            }
            return None;
        };
        self.alive(pending.agent, out);
        if !self.asks.values().any(|a| a.agent == pending.agent) {
            self.detector.unwatch(node(pending.agent));
        }
        if usable {
            out.push(Output::Progress(Progress::Answered {
                agent: self.name(pending.agent),
                request: pending.key.clone(),
            }));
        }
        Some(pending)
    }

    /// A sign of life from the agent working on `ask`. Returns whether the ask is waiting.
    pub(super) fn on_heartbeat(&mut self, ask: AskId, out: &mut Vec<Output>) -> bool {
        let Some(agent) = self.asks.get(&ask).map(|p| p.agent) else {
            return false;
        };
        self.alive(agent, out);
        true
    }

    /// A deadline passed: the detector suspects every agent silent past its timeout, and their
    /// pending asks are returned (in the order they were sent) for their stages to give the work
    /// to others. Empty when nobody is due (a deadline a heartbeat moved on).
    pub(super) fn expire(&mut self, timer: Timer, out: &mut Vec<Output>) -> Vec<PendingAsk> {
        let Timer::AskDeadline(due) = timer;
        if !self.asks.values().any(|a| a.agent == due) {
            self.stray.timers += 1;
        }
        let mut changes = Vec::new();
        self.detector
            .step(self.now_ms, DetectorInput::Tick, &mut changes);
        let mut expired = Vec::new();
        for change in changes {
            let DetectorOutput::Suspect(peer) = change else {
                continue;
            };
            let agent = AgentId(u32::from(peer.0));
            self.detector.unwatch(peer);
            self.agents[agent.0 as usize].suspicions += 1;
            let asks: Vec<AskId> = self
                .asks
                .iter()
                .filter(|(_, p)| p.agent == agent)
                .map(|(a, _)| *a)
                .collect();
            let mut requests = Vec::new();
            for ask in asks {
                if let Some(p) = self.asks.remove(&ask) {
                    self.expired.insert(ask, agent);
                    requests.push(p.key.clone());
                    expired.push((ask, p));
                }
            }
            let timeout_ms = self.timeout_ms(agent);
            out.push(Output::Progress(Progress::Suspected {
                agent: self.name(agent),
                timeout_ms,
            }));
            let name = self.name(agent);
            self.persist(
                Decision::AgentSuspected {
                    agent,
                    name,
                    requests,
                    timeout_ms,
                },
                out,
            );
        }
        expired.sort_by_key(|(ask, _)| *ask);
        expired.into_iter().map(|(_, p)| p).collect()
    }
}
