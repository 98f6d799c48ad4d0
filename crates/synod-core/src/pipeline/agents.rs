//! What the pipeline knows of each agent: the asks waiting for it, their deadlines, whether it
//! is suspected, its faults and what its replies cost. Stage-independent: every stage asks
//! agents through [`Pipeline::ask`] and hears of replies and missed deadlines from here.

use super::*;

/// One agent's record during the build.
#[derive(Clone, Debug)]
pub(super) struct AgentState {
    pub(super) info: AgentInfo,
    pub(super) timeout_ms: u64,
    pub(super) suspected: bool,
    pub(super) calls: u32,
    pub(super) faults: Vec<String>,
    pub(super) suspicions: u32,
    pub(super) usage: Usage,
}

impl AgentState {
    pub(super) fn new(info: &AgentInfo) -> AgentState {
        AgentState {
            info: info.clone(),
            timeout_ms: info.timeout_ms,
            suspected: false,
            calls: 0,
            faults: Vec::new(),
            suspicions: 0,
            usage: Usage::default(),
        }
    }
}

/// What an ask is for: which stage its reply goes to.
#[derive(Clone, Debug)]
pub(super) enum AskPurpose {
    Interpret,
    Implement { component: usize },
}

/// An ask sent and not yet answered.
#[derive(Clone, Debug)]
pub(super) struct PendingAsk {
    pub(super) agent: AgentId,
    pub(super) purpose: AskPurpose,
    pub(super) key: String,
    pub(super) deadline_ms: u64,
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
                suspected: a.suspected,
                usage: a.usage,
            })
            .collect()
    }

    /// Records a fault of `agent` in `stage`.
    pub(super) fn fault(
        &mut self,
        agent: AgentId,
        stage: &str,
        reason: String,
        out: &mut Vec<Output>,
    ) {
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

    /// Sends `request` to `agent`, with a deadline of its current timeout.
    pub(super) fn ask(
        &mut self,
        agent: AgentId,
        purpose: AskPurpose,
        request: Request,
        out: &mut Vec<Output>,
    ) {
        let ask = AskId(self.id());
        let key = request.key();
        let st = &mut self.agents[agent.0 as usize];
        assert!(!st.suspected, "a suspected agent is never asked");
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
            Some(max) if spent > max && !matches!(stage, Stage::Done) => Some(format!(
                "token budget exhausted: {spent} tokens spent, at most {max} allowed"
            )),
            _ => None,
        }
    }

    /// The ask a reply answers, if it is still waiting. A reply to an ask whose deadline passed
    /// proves the suspicion false: the agent is trusted again (its work stays reassigned).
    pub(super) fn take_ask(
        &mut self,
        ask: AskId,
        usable: bool,
        out: &mut Vec<Output>,
    ) -> Option<PendingAsk> {
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
            return None;
        };
        if usable {
            out.push(Output::Progress(Progress::Answered {
                agent: self.name(pending.agent),
                request: pending.key.clone(),
            }));
        }
        Some(pending)
    }

    /// A sign of life from the agent working on `ask`: its deadline starts again. Returns
    /// whether the ask is waiting.
    pub(super) fn on_heartbeat(&mut self, ask: AskId, out: &mut Vec<Output>) -> bool {
        let Some(pending) = self.asks.get_mut(&ask) else {
            return false;
        };
        let at_ms = self.now_ms + self.agents[pending.agent.0 as usize].timeout_ms;
        if at_ms > pending.deadline_ms {
            pending.deadline_ms = at_ms;
            out.push(Output::SetTimer {
                timer: TimerId(ask.0),
                at_ms,
            });
        }
        true
    }

    /// A deadline passed: the ask's agent is suspected and the ask is returned, for its stage to
    /// give the work to someone else. `None` for a deadline a heartbeat moved on, or an ask
    /// already answered.
    pub(super) fn expire(&mut self, timer: TimerId, out: &mut Vec<Output>) -> Option<PendingAsk> {
        let ask = AskId(timer.0);
        let Some(waiting) = self.asks.get(&ask) else {
            self.stray.timers += 1;
            return None;
        };
        if waiting.deadline_ms > self.now_ms {
            return None;
        }
        let pending = self.asks.remove(&ask)?;
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
        Some(pending)
    }
}
