//! Agree: pool the probes, run every reading's reference on them, group the readings by
//! behaviour and apply the decision rule ([`Tally::verdict`]).
//!
//! This is also where the differential split happens: before a class whose members are
//! different programs is decided, each distinct member runs on freshly drawn inputs
//! ([`probes::differential_calls`]); inputs on which they differ join the pool and every
//! reference is checked again, which splits the class.

use super::clarify::AskKind;
use super::interpret::Carried;
use super::*;
use crate::domain::Domain;
use crate::probes;
use crate::tally::{self, Verdict, Votes};
use std::collections::BTreeSet;

/// The round's behaviour classes with their agents, largest first ([`Pipeline::classes`]).
type Classes = Vec<(Behaviour, Vec<AgentId>)>;

/// The readings an open prompt's question shows at most (PL-25), largest first.
pub(super) const OPEN_READINGS_MAX: usize = 6;

impl Pipeline {
    /// When no interpret ask is pending: pool the probes and run every reference on them.
    pub(super) fn maybe_check_interpretations(
        &mut self,
        mut it: Box<Interp>,
        out: &mut Vec<Output>,
    ) -> Stage {
        if self.interpret_asks_pending() || it.checks_pending > 0 {
            return Stage::Interpret(it);
        }
        if it.valid.is_empty() {
            return self.no_decision(&it, "no agent gave a valid reading", out);
        }
        let checked = self.checked_examples();
        // Pool: every valid agent's example calls and probes, then the checked examples' calls.
        let mut own: Vec<Call> = Vec::new();
        for i in it
            .valid
            .values()
            .chain(it.carried.iter().map(|c| &c.interp))
        {
            own.extend(i.spec.contract.iter().map(|c| c.call.clone()));
            own.extend(i.probes.iter().cloned());
        }
        own.extend(checked.iter().map(|e| e.call.clone()));
        // The domain (PL-19): what the written examples admit.
        it.domain = Domain::of(&own);
        let seed = self.cfg.seed ^ (u64::from(it.round) << 32) ^ u64::from(it.sample);
        let mut pool = probes::pool(&own, seed, &self.cfg.probe_limits);
        for c in &it.extra {
            if !pool.contains(c) {
                pool.push(c.clone());
            }
        }
        if pool.is_empty() {
            return self.no_decision(&it, "no reading gave an example call to compare on", out);
        }
        it.in_domain = it.domain.mask(&pool);
        // A recheck (a split, a replaced reader) decides afresh: an earlier widened lead
        // describes a group that may no longer exist.
        it.widened = None;
        it.pool = pool.clone();
        it.behaviours.clear();
        let jobs: Vec<(AgentId, Interpretation)> =
            it.valid.iter().map(|(a, i)| (*a, i.clone())).collect();
        it.checks_pending = jobs.len();
        for (agent, interp) in jobs {
            // The checked examples (the prompt's and the user's), then the agent's stated
            // ones (evidence, PL-17), then the pool.
            let mut calls = checked.clone();
            calls.extend(interp.spec.contract.iter().cloned());
            let request = refinement::reference_check(&interp, &calls, &pool);
            let purpose = CheckPurpose::Reference {
                agent,
                contract_len: checked.len(),
                stated_len: interp.spec.contract.len(),
            };
            self.run_check(purpose, request, out);
        }
        // The earlier samples' readings run on this pool too: votes of the widened tally.
        let carried: Vec<Interpretation> = it.carried.iter().map(|c| c.interp.clone()).collect();
        it.checks_pending += carried.len();
        for (index, interp) in carried.iter().enumerate() {
            it.carried[index].behaviour = None;
            let request = refinement::reference_check(interp, &[], &pool);
            self.run_check(CheckPurpose::Carried { index }, request, out);
        }
        Stage::Interpret(it)
    }

    /// An earlier sample's reading ran on this sample's pool.
    pub(super) fn on_carried_check(
        &mut self,
        mut it: Box<Interp>,
        index: usize,
        report: CheckReport,
        out: &mut Vec<Output>,
    ) -> Stage {
        it.checks_pending = it.checks_pending.saturating_sub(1);
        let mut behaviour = report.outcomes;
        behaviour.resize(it.pool.len(), Outcome::Timeout);
        if let Some(c) = it.carried.get_mut(index) {
            c.behaviour = Some(behaviour);
        }
        self.after_reference_checks(it, out)
    }

    /// Every example the user's clarifications fixed, in order.
    pub(super) fn clarified_examples(&self) -> Vec<ContractExample> {
        self.prompt
            .clarifications
            .iter()
            .flat_map(|c| c.examples.iter().cloned())
            .collect()
    }

    /// The examples whose violation is a fault (PL-16): the prompt's literal examples (calls
    /// written `module.f` name `f`), then the clarified ones.
    pub(super) fn checked_examples(&self) -> Vec<ContractExample> {
        let mut checked = self.prompt_examples();
        for c in self.clarified_examples() {
            if !checked.contains(&c) {
                checked.push(c);
            }
        }
        checked
    }

    /// The prompt's literal examples still in force: one whose call a clarification fixed
    /// otherwise is the user's correction of the prompt (PL-24), and the clarification holds.
    pub(super) fn prompt_examples(&self) -> Vec<ContractExample> {
        let clarified = self.clarified_examples();
        self.facts
            .examples
            .iter()
            .cloned()
            .map(unqualified)
            .filter(|e| !clarified.iter().any(|c| c.call == e.call))
            .collect()
    }

    /// A reference ran on the checked examples, its stated ones and the pool: a reference that
    /// breaks a checked example is a fault (and its agent is replaced); how many of its stated
    /// examples it met is recorded, never counted as a vote; when the last check is in, the
    /// rule.
    pub(super) fn on_reference_check(
        &mut self,
        mut it: Box<Interp>,
        agent: AgentId,
        (contract_len, stated_len): (usize, usize),
        report: CheckReport,
        out: &mut Vec<Output>,
    ) -> Stage {
        it.checks_pending = it.checks_pending.saturating_sub(1);
        let problem = it.valid.get(&agent).and_then(|_| {
            let checked = self.checked_examples();
            refinement_problem(&report, &checked, &[], &[], "reference")
        });
        match problem {
            Some(problem) => {
                // PL-24: a reading that runs and breaks one of the prompt's own examples is
                // kept as evidence that the prompt may contradict itself.
                if problem.kind == FaultKind::BreaksContract
                    && let Some(i) = it.valid.get(&agent)
                {
                    let prompt = self.prompt_examples();
                    if let Some((example, outcome)) =
                        prompt.iter().enumerate().find_map(|(k, e)| {
                            (report.met.get(k).copied().flatten() != Some(true)).then(|| {
                                let o = report.outcomes.get(k).cloned().unwrap_or(Outcome::Timeout);
                                (e.clone(), o)
                            })
                        })
                    {
                        let summary = i.spec.summary.clone();
                        let program = super::interpret::program_text(i);
                        self.contradictions
                            .retain(|c| !(c.round == it.round && c.agent == agent));
                        self.contradictions.push(Contradiction {
                            round: it.round,
                            agent,
                            example,
                            outcome,
                            summary,
                            program,
                        });
                    }
                }
                it.valid.remove(&agent);
                it.note_repair(agent, &problem);
                it.faulted.insert(agent);
                it.replaced += 1;
                self.fault(
                    agent,
                    FaultStage::Interpret,
                    problem.kind,
                    &problem.detail,
                    out,
                );
            }
            None => {
                let stated_end = (contract_len + stated_len).min(report.met.len());
                let met = report.met[contract_len.min(stated_end)..stated_end]
                    .iter()
                    .filter(|m| **m == Some(true))
                    .count();
                // The agent's latest checked reading (a recheck on a grown pool says the same).
                self.agents[agent.0 as usize].stated = SelfConsistency {
                    stated: stated_len as u32,
                    met: met as u32,
                };
                let start = (contract_len + stated_len).min(report.outcomes.len());
                let mut behaviour = report.outcomes[start..].to_vec();
                // A report short of outcomes counts the missing ones as not finished.
                behaviour.resize(it.pool.len(), Outcome::Timeout);
                it.behaviours.insert(agent, behaviour);
            }
        }
        self.after_reference_checks(it, out)
    }

    /// When the last reference check of the pool is in: replace faulted readers, or apply the
    /// rule.
    fn after_reference_checks(&mut self, mut it: Box<Interp>, out: &mut Vec<Output>) -> Stage {
        if it.checks_pending > 0 {
            return Stage::Interpret(it);
        }
        // Agents whose reference failed a checked example are replaced, then everything is
        // checked again on the grown pool.
        let replace = std::mem::take(&mut it.replaced);
        if replace > 0 && self.ask_more_interpret(&mut it, replace, out) > 0 {
            return Stage::Interpret(it);
        }
        self.apply_rule(it, out)
    }

    /// The behaviour classes of the round, largest first (ties: the first agent in file order).
    /// Readings are grouped by their outcomes on the pool's inputs in the domain (PL-19); each
    /// class carries the full behaviour of its leading sub-class (`sub_classes`), whose agents
    /// come first.
    pub(super) fn classes(it: &Interp) -> Vec<(Behaviour, Vec<AgentId>)> {
        let mut by: BTreeMap<Vec<&Outcome>, Vec<AgentId>> = BTreeMap::new();
        for (a, b) in &it.behaviours {
            by.entry(in_domain(it, b)).or_default().push(*a);
        }
        let mut cs: Vec<(Behaviour, Vec<AgentId>)> = by
            .into_values()
            .map(|agents| {
                let subs = Self::sub_classes(it, &agents);
                let behaviour = subs[0].0.clone();
                (behaviour, subs.into_iter().flat_map(|s| s.1).collect())
            })
            .collect();
        cs.sort_by(|x, y| {
            y.1.len()
                .cmp(&x.1.len())
                .then(x.1.iter().min().cmp(&y.1.iter().min()))
        });
        cs
    }

    /// The agents grouped by their behaviour on the whole pool, in and out of the domain,
    /// largest first (ties: the first agent in file order).
    pub(super) fn sub_classes(it: &Interp, agents: &[AgentId]) -> Vec<(Behaviour, Vec<AgentId>)> {
        let mut by: BTreeMap<&Behaviour, Vec<AgentId>> = BTreeMap::new();
        for a in agents {
            by.entry(&it.behaviours[a]).or_default().push(*a);
        }
        let mut cs: Vec<(Behaviour, Vec<AgentId>)> =
            by.into_iter().map(|(b, a)| (b.clone(), a)).collect();
        cs.sort_by(|x, y| y.1.len().cmp(&x.1.len()).then(x.1[0].cmp(&y.1[0])));
        cs
    }

    /// Decides the largest class, unless its sub-classes (readings that differ only outside
    /// the domain) include two with more than m members each: then that difference is all that
    /// separates two readings correct agents hold, and the user is asked (PL-19).
    fn decide_in_domain(
        &mut self,
        it: Box<Interp>,
        classes: Vec<(Behaviour, Vec<AgentId>)>,
        out: &mut Vec<Output>,
    ) -> Stage {
        let subs = Self::sub_classes(&it, &classes[0].1);
        let big: Vec<usize> = (0..subs.len())
            .filter(|k| subs[*k].1.len() > self.tally.m())
            .collect();
        if big.len() >= 2 {
            return self.ask_user(it, &subs, &big, AskKind::OutsideDomain, out);
        }
        self.decide(it, classes, out)
    }

    fn apply_rule(&mut self, it: Box<Interp>, out: &mut Vec<Output>) -> Stage {
        let classes = Self::classes(&it);
        let sizes: Vec<usize> = classes.iter().map(|c| c.1.len()).collect();
        let verdict = self.tally.verdict(&sizes);
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
            Verdict::Decide => self.decide_checked(it, classes, out),
            Verdict::Ambiguous(idx) => self.ask_user(it, &classes, &idx, AskKind::Split, out),
            Verdict::NotYet => match self.widened_leader(&it) {
                Some((leader, sizes)) => self.decide_widened(it, leader, sizes, out),
                None => self.ask_for_more(it, &sizes, out),
            },
        }
    }

    /// Decides `classes[0]`, after a differential search when its members are different
    /// programs (PL-7).
    pub(super) fn decide_checked(
        &mut self,
        mut it: Box<Interp>,
        classes: Vec<(Behaviour, Vec<AgentId>)>,
        out: &mut Vec<Output>,
    ) -> Stage {
        let mut by_digest: BTreeMap<String, AgentId> = BTreeMap::new();
        for a in &classes[0].1 {
            let d = Program::single(REFERENCE_MODULE, &it.valid[a].reference).digest();
            by_digest.entry(d).or_insert(*a);
        }
        if by_digest.len() > 1 && it.differential_rounds < self.cfg.differential_rounds_max {
            it.deciding = classes[0].1.first().copied();
            let reps: Vec<AgentId> = by_digest.into_values().collect();
            self.start_differential(it, reps, out)
        } else {
            self.decide_in_domain(it, classes, out)
        }
    }

    /// Every reading of the round as a vote (PL-20): each agent's current one, then the
    /// earlier samples' (a request answered twice counts once), grouped by behaviour in the
    /// domain. Returns the leading group's readings — (agent, index into `carried`, `None`
    /// for the current reading) — when the widened rule decides it.
    fn widened_leader(&self, it: &Interp) -> Option<(Vec<Vote>, Vec<usize>)> {
        if self.cfg.ahead_by == 0 || it.carried.is_empty() {
            return None;
        }
        let mut seen: BTreeSet<(AgentId, &str)> = BTreeSet::new();
        let mut by: BTreeMap<Vec<&Outcome>, Vec<Vote>> = BTreeMap::new();
        for (a, b) in &it.behaviours {
            let key = it.keys.get(a).map_or("", String::as_str);
            seen.insert((*a, key));
            by.entry(in_domain(it, b)).or_default().push((*a, None));
        }
        for (k, c) in it.carried.iter().enumerate() {
            let Some(b) = &c.behaviour else { continue };
            if seen.insert((c.agent, c.key.as_str())) {
                by.entry(in_domain(it, b))
                    .or_default()
                    .push((c.agent, Some(k)));
            }
        }
        let mut groups: Vec<(Votes, Vec<Vote>)> = by
            .into_values()
            .map(|g| {
                let agents: BTreeSet<AgentId> = g.iter().map(|v| v.0).collect();
                let votes = Votes {
                    readings: g.len(),
                    agents: agents.len(),
                };
                (votes, g)
            })
            .collect();
        groups.sort_by_key(|g| std::cmp::Reverse(g.0.readings));
        let votes: Vec<Votes> = groups.iter().map(|g| g.0).collect();
        let sizes = votes.iter().map(|v| v.readings).collect();
        tally::ahead_by(self.cfg.ahead_by, self.tally.m(), &votes)
            .then(|| (groups.remove(0).1, sizes))
    }

    /// The widened rule decided a group: each of its agents' readings in the group becomes
    /// that agent's reading (its earliest one, when its current reading is elsewhere), and
    /// the class they form is decided like any other.
    fn decide_widened(
        &mut self,
        mut it: Box<Interp>,
        leader: Vec<Vote>,
        sizes: Vec<usize>,
        out: &mut Vec<Output>,
    ) -> Stage {
        let readings = leader.len();
        let mut agents: BTreeSet<AgentId> = BTreeSet::new();
        for (a, from) in &leader {
            let Some(k) = from else {
                agents.insert(*a);
                continue;
            };
            if agents.contains(a) {
                continue;
            }
            let in_leader_now = leader.iter().any(|(b, f)| b == a && f.is_none());
            if !in_leader_now {
                let c = it.carried[*k].clone();
                if let Some(b) = c.behaviour {
                    // The displaced reading stays a vote.
                    if let (Some(i), Some(old)) = (it.valid.remove(a), it.behaviours.remove(a)) {
                        let key = it.keys.get(a).cloned().unwrap_or_default();
                        it.carried.push(Carried {
                            agent: *a,
                            key,
                            interp: i,
                            behaviour: Some(old),
                        });
                    }
                    it.valid.insert(*a, c.interp);
                    it.keys.insert(*a, c.key);
                    it.behaviours.insert(*a, b);
                    it.asked.insert(*a);
                }
            }
            agents.insert(*a);
        }
        let mut classes = Self::classes(&it);
        to_front(&mut classes, |c| c.1.iter().any(|a| agents.contains(a)));
        let total = sizes.iter().sum();
        it.widened = Some(AheadBy {
            k: self.cfg.ahead_by,
            readings,
            agents: agents.len(),
            of: total,
            calls: it.calls,
        });
        out.push(Output::Progress(Progress::Classes {
            sizes,
            probes: it.pool.len(),
            verdict: format!(
                "ahead by {} (PL-20): {readings} readings of {} agents, every sample counted",
                self.cfg.ahead_by,
                agents.len()
            ),
        }));
        self.decide_checked(it, classes, out)
    }

    /// Not yet: ask as many more agents as could still make a class large enough.
    fn ask_for_more(
        &mut self,
        mut it: Box<Interp>,
        sizes: &[usize],
        out: &mut Vec<Output>,
    ) -> Stage {
        let k = self.tally.more_needed(sizes);
        if self.ask_more_interpret(&mut it, k, out) > 0 {
            return Stage::Interpret(it);
        }
        if let Some((classes, idx)) = self.open_prompt_split(&it) {
            return self.ask_user(it, &classes, &idx, AskKind::Open, out);
        }
        let why = format!(
            "largest class has {} of the {} needed (n − m) and no agent is left to ask{}",
            sizes.first().copied().unwrap_or(0),
            self.tally.first_wave(),
            self.split_summary(&it)
        );
        self.no_decision(&it, &why, out)
    }

    /// PL-25: the prompt fixes no example (none in its text, none clarified), every agent was
    /// asked, and the valid readings split into classes none of which can decide. Nothing in
    /// the prompt tells a reading that guessed from one that understood, so the split is shown
    /// to the user (the round's classes and the indices of those shown, largest first, at
    /// most [`OPEN_READINGS_MAX`]) instead of resampled and decided by a statistical lead
    /// (PL-20).
    fn open_prompt_split(&self, it: &Interp) -> Option<(Classes, Vec<usize>)> {
        if !self.cfg.ask_open || !self.checked_examples().is_empty() {
            return None;
        }
        let classes = Self::classes(it);
        let shown = (0..classes.len().min(OPEN_READINGS_MAX)).collect();
        (classes.len() >= 2).then_some((classes, shown))
    }

    /// The round's classes, by agent, and the first input in the domain where the two largest
    /// differ, with each one's outcome: "; readings [a, b] | [c], e.g. f(0): 1 | raises
    /// ZeroDivisionError". Empty with fewer than two classes.
    fn split_summary(&self, it: &Interp) -> String {
        let classes = Self::classes(it);
        if classes.len() < 2 {
            return String::new();
        }
        let groups: Vec<String> = classes
            .iter()
            .map(|(_, agents)| {
                let names: Vec<String> = agents.iter().map(|a| self.name(*a)).collect();
                format!("[{}]", names.join(", "))
            })
            .collect();
        let (a, b) = (&classes[0].0, &classes[1].0);
        let example = it
            .pool
            .iter()
            .enumerate()
            .find(|(p, _)| it.in_domain.get(*p) == Some(&true) && a.get(*p) != b.get(*p))
            .map(|(p, c)| {
                let outs: Vec<String> = classes
                    .iter()
                    .filter_map(|(beh, _)| beh.get(p).map(|o| o.to_string()))
                    .collect();
                format!(", e.g. {c}: {}", cap_text(&outs.join(" | "), 300))
            })
            .unwrap_or_default();
        format!("; readings {}{example}", groups.join(" | "))
    }

    /// PL-24: the round ends without a decision, and more agents than the fault budget explains,
    /// and no fewer than hold readings that meet the examples, read the prompt's text against
    /// one of its own examples the same way (the same outcome on it): the prompt may contradict
    /// itself, so the user is asked which holds, the example
    /// (reading A) or the text as they read it (B, C, …), instead of giving up.
    fn ask_about_contradiction(&mut self, it: &Interp, out: &mut Vec<Output>) -> Option<Stage> {
        if it.round >= self.cfg.clarifications_max {
            return None;
        }
        let mut groups: Vec<(ContractExample, Outcome, Vec<AgentId>, String)> = Vec::new();
        for c in self.contradictions.iter().filter(|c| c.round == it.round) {
            match groups
                .iter_mut()
                .find(|g| g.0 == c.example && g.1 == c.outcome)
            {
                Some(g) => {
                    if !g.2.contains(&c.agent) {
                        g.2.push(c.agent);
                    }
                }
                None => groups.push((
                    c.example.clone(),
                    c.outcome.clone(),
                    vec![c.agent],
                    c.summary.clone(),
                )),
            }
        }
        // The largest group (ties: the first seen) on one example, and the others on it.
        let best = groups
            .iter()
            .enumerate()
            .max_by(|(i, a), (j, b)| a.2.len().cmp(&b.2.len()).then(j.cmp(i)))?
            .1
            .clone();
        // More than the fault budget explains, and no fewer than the readings that meet the
        // example: otherwise the example stands and the contradicting readings are faults.
        let meeting: BTreeSet<AgentId> = it
            .valid
            .keys()
            .copied()
            .chain(it.carried.iter().map(|c| c.agent))
            .collect();
        if best.2.len() <= self.cfg.fault_budget || best.2.len() < meeting.len() {
            return None;
        }
        let example = best.0.clone();
        let mut on_it: Vec<_> = groups.into_iter().filter(|g| g.0 == example).collect();
        on_it.sort_by_key(|g| std::cmp::Reverse(g.2.len()));
        let keep: Vec<String> = meeting.iter().map(|a| self.name(*a)).collect();
        let mut readings = vec![Reading {
            label: "A".into(),
            agents: keep,
            summary: format!("as the prompt's example says: {}", example_text(&example)),
        }];
        let mut outcomes = vec![match &example.expect {
            Expectation::Returns(v) => Outcome::Value(v.python()),
            Expectation::Raises(e) => Outcome::Error(e.clone()),
            Expectation::Same(o) => o.clone(),
        }];
        for (k, g) in on_it.iter().enumerate() {
            // A reading from code often has no summary: say what it does where it matters.
            let summary = if g.3.trim().is_empty() {
                format!(
                    "as these agents read the text: {} {}",
                    example.call,
                    super::refinement::outcome_phrase(&g.1)
                )
            } else {
                g.3.clone()
            };
            readings.push(Reading {
                label: super::clarify::label(k + 1),
                agents: g.2.iter().map(|a| self.name(*a)).collect(),
                summary,
            });
            outcomes.push(g.1.clone());
        }
        let question = Question {
            round: it.round,
            prompt: self.prompt.full_text(),
            readings,
            differing: vec![DifferingProbe {
                call: example.call.clone(),
                outcomes,
            }],
            outside_domain: false,
            contradicts: Some(example),
            open: false,
        };
        self.persist(
            Decision::Ambiguity {
                question: question.clone(),
            },
            out,
        );
        out.push(Output::AskUser(Box::new(question.clone())));
        Some(Stage::Clarify(Box::new(it.clone()), Box::new(question)))
    }

    /// Nobody left to ask: resample every agent once, then give up with the evidence.
    pub(super) fn no_decision(&mut self, it: &Interp, why: &str, out: &mut Vec<Output>) -> Stage {
        let (round, sample) = (it.round, it.sample);
        let budget = self.cfg.interpret_calls_max.max(self.tally.first_wave());
        if sample < self.cfg.resamples_max && it.calls < budget {
            let decision = Decision::Resample {
                round,
                sample: sample + 1,
                why: why.to_string(),
            };
            self.persist(decision, out);
            // This sample's valid readings stay votes of the widened tally (PL-20).
            let mut carried = it.carried.clone();
            for (a, i) in &it.valid {
                let key = it.keys.get(a).cloned().unwrap_or_default();
                if !carried.iter().any(|c| c.agent == *a && c.key == key) {
                    carried.push(Carried {
                        agent: *a,
                        key,
                        interp: i.clone(),
                        behaviour: None,
                    });
                }
            }
            let (calls, asked) = (it.calls, it.distinguish_asked);
            self.start_sample(round, sample + 1, carried, (calls, asked), out)
        } else if let Some(stage) = self.ask_about_contradiction(it, out) {
            stage
        } else {
            let spent = if it.calls >= budget {
                format!(" ({} interpret calls, the round's budget)", it.calls)
            } else {
                String::new()
            };
            self.fail(
                "agree",
                format!("no agreement within budget{spent}: {why}"),
                out,
            )
        }
    }

    /// PL-22: asks an agent (the first not suspected, in agents-file order) for inputs on which
    /// two distinct members of the class under decision could differ.
    fn ask_distinguish(
        &mut self,
        mut it: Box<Interp>,
        reps: Vec<AgentId>,
        out: &mut Vec<Output>,
    ) -> Stage {
        it.distinguish_asked = true;
        let Some(agent) = self
            .agents
            .iter()
            .map(|a| a.info.id)
            .find(|a| !self.is_suspected(*a))
        else {
            return self.decide_deciding(it, out);
        };
        let request = Request {
            role: Role::Distinguish,
            prompt: self.prompt.clone(),
            round: it.round,
            sample: it.sample,
            spec: Some(it.valid[&reps[0]].spec.clone()),
            component: None,
            programs: reps[..2]
                .iter()
                .map(|a| it.valid[a].reference.clone())
                .collect(),
            repair: None,
        };
        it.distinguish_reps = reps;
        self.ask(agent, AskPurpose::Distinguish, request, out);
        Stage::Interpret(it)
    }

    /// PL-22's inputs arrived: those that call a function of the class's interface with as many
    /// arguments as it takes, and are in the domain, run on the distinct members (as in PL-7);
    /// none, or a reply without any, and the class is decided. A reply here is never a fault.
    pub(super) fn on_inputs(
        &mut self,
        mut it: Box<Interp>,
        agent: AgentId,
        reply: Result<Reply, ReplyFault>,
        out: &mut Vec<Output>,
    ) -> Stage {
        let proposed = match reply {
            Ok(Reply::Inputs(calls)) => calls,
            Ok(_) => Vec::new(),
            Err(f) => {
                out.push(Output::Progress(Progress::Note {
                    agent: self.name(agent),
                    note: format!("no distinguishing inputs (PL-22): {f}"),
                }));
                Vec::new()
            }
        };
        let arities: BTreeMap<String, usize> = it
            .distinguish_reps
            .first()
            .map(|a| {
                it.valid[a]
                    .spec
                    .components
                    .iter()
                    .flat_map(|c| &c.functions)
                    .map(|f| (f.name.clone(), f.params.len()))
                    .collect()
            })
            .unwrap_or_default();
        let mut calls: Vec<Call> = Vec::new();
        for mut c in proposed {
            if let Some((_, f)) = c.function.rsplit_once('.') {
                c.function = f.to_string();
            }
            let fits = arities.get(&c.function).is_some_and(|n| *n >= c.args.len())
                && it.domain.admits(&c)
                && c.args
                    .iter()
                    .all(|a| a.size() <= self.cfg.probe_limits.value_size_max)
                && !calls.contains(&c);
            if fits && calls.len() < DISTINGUISHING_MAX {
                calls.push(c);
            }
        }
        out.push(Output::Progress(Progress::Note {
            agent: self.name(agent),
            note: format!(
                "{} distinguishing input(s) proposed in the domain (PL-22)",
                calls.len()
            ),
        }));
        if calls.is_empty() {
            return self.decide_deciding(it, out);
        }
        let reps = std::mem::take(&mut it.distinguish_reps);
        self.run_differential(it, reps, calls, out)
    }

    /// Decides the class under decision (`Interp::deciding`, first).
    fn decide_deciding(&mut self, it: Box<Interp>, out: &mut Vec<Output>) -> Stage {
        let mut classes = Self::classes(&it);
        if let Some(d) = it.deciding {
            to_front(&mut classes, |c| c.1.contains(&d));
        }
        self.decide_in_domain(it, classes, out)
    }

    fn start_differential(
        &mut self,
        mut it: Box<Interp>,
        reps: Vec<AgentId>,
        out: &mut Vec<Output>,
    ) -> Stage {
        it.differential_rounds += 1;
        let seed = self.cfg.seed ^ u64::from(it.differential_rounds) ^ (u64::from(it.round) << 40);
        // Only inputs in the domain can split a class (PL-19).
        let mut calls = probes::differential_calls(
            &it.pool,
            seed,
            self.cfg.differential_max,
            &self.cfg.probe_limits,
        );
        calls.retain(|c| it.domain.admits(c));
        self.run_differential(it, reps, calls, out)
    }

    /// Runs each distinct member `reps` on `calls` (PL-7's random inputs or PL-22's proposed
    /// ones); [`Pipeline::on_differential_check`] takes the reports.
    fn run_differential(
        &mut self,
        mut it: Box<Interp>,
        reps: Vec<AgentId>,
        calls: Vec<Call>,
        out: &mut Vec<Output>,
    ) -> Stage {
        it.differential_calls = calls.clone();
        it.differential.clear();
        it.checks_pending = reps.len();
        for agent in reps {
            let request = refinement::reference_check(&it.valid[&agent], &[], &calls);
            self.run_check(CheckPurpose::Differential { agent }, request, out);
        }
        Stage::Interpret(it)
    }

    /// A distinct member ran on the differential inputs; when all have, either the class holds
    /// (decide) or the distinguishing inputs join the pool and every reference runs again.
    pub(super) fn on_differential_check(
        &mut self,
        mut it: Box<Interp>,
        agent: AgentId,
        report: CheckReport,
        out: &mut Vec<Output>,
    ) -> Stage {
        it.checks_pending = it.checks_pending.saturating_sub(1);
        let mut outcomes = report.outcomes;
        outcomes.resize(it.differential_calls.len(), Outcome::Timeout);
        it.differential.insert(agent, outcomes);
        if it.checks_pending > 0 {
            return Stage::Interpret(it);
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
        if distinguishing.is_empty() && self.cfg.distinguish && !it.distinguish_asked {
            let reps: Vec<AgentId> = it.differential.keys().copied().collect();
            if reps.len() >= 2 {
                return self.ask_distinguish(it, reps, out);
            }
        }
        if distinguishing.is_empty() {
            // The class under decision first (a widened decision's need not be the largest).
            return self.decide_deciding(it, out);
        }
        out.push(Output::Progress(Progress::Split {
            inputs: distinguishing.len(),
        }));
        self.persist(
            Decision::ClassSplit {
                inputs: distinguishing.clone(),
            },
            out,
        );
        it.extra.extend(distinguishing);
        self.maybe_check_interpretations(it, out)
    }
}

/// Moves the first class that `pick` chooses to the front (the rest keep their order).
pub(super) fn to_front(
    classes: &mut Vec<(Behaviour, Vec<AgentId>)>,
    pick: impl Fn(&(Behaviour, Vec<AgentId>)) -> bool,
) {
    if let Some(k) = classes.iter().position(pick) {
        let c = classes.remove(k);
        classes.insert(0, c);
    }
}

/// Where `groups` (each a behaviour on the pool) differ: the first [`QUESTION_PROBES_MAX`]
/// pool inputs on which they do, among those `keep` admits by pool index, with each group's
/// outcome in group order.
pub(super) fn differing_probes<'a>(
    it: &Interp,
    groups: impl IntoIterator<Item = &'a Behaviour> + Clone,
    keep: impl Fn(usize) -> bool,
) -> Vec<DifferingProbe> {
    let mut differing = Vec::new();
    for (p, call) in it.pool.iter().enumerate() {
        if !keep(p) {
            continue;
        }
        let outcomes: Vec<Outcome> = groups.clone().into_iter().map(|b| b[p].clone()).collect();
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
    differing
}

/// One reading of the widened tally: its agent and where it is (an index into
/// `Interp::carried`, `None` for the agent's current reading).
type Vote = (AgentId, Option<usize>);

/// A behaviour's outcomes on the pool's inputs in the domain.
pub(super) fn in_domain<'a>(it: &Interp, b: &'a Behaviour) -> Vec<&'a Outcome> {
    b.iter()
        .zip(&it.in_domain)
        .filter(|(_, d)| **d)
        .map(|(o, _)| o)
        .collect()
}

/// A literal example's call by the function's bare name: `module.f(2) == 4` is `f(2) == 4`
/// (PL-2).
pub(super) fn unqualified(mut e: ContractExample) -> ContractExample {
    if let Some((_, f)) = e.call.function.rsplit_once('.') {
        e.call.function = f.to_string();
    }
    e
}

/// A reading that broke one of the prompt's own examples (PL-24).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Contradiction {
    pub(super) round: u32,
    pub(super) agent: AgentId,
    /// The example it broke (the first, in the prompt's order).
    pub(super) example: ContractExample,
    /// What its reference gave there.
    pub(super) outcome: Outcome,
    /// Its summary.
    pub(super) summary: String,
    /// Its program, as its agent is shown it again (PL-29).
    pub(super) program: String,
}
