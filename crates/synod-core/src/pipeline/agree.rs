//! Agree: pool the probes, run every reading's reference on them, group the readings by
//! behaviour and apply the decision rule ([`Tally::verdict`]).
//!
//! This is also where the differential split happens: before a class whose members are
//! different programs is decided, each distinct member runs on freshly drawn inputs
//! ([`probes::differential_calls`]); inputs on which they differ join the pool and every
//! reference is checked again, which splits the class.

use super::*;
use crate::probes;
use crate::tally::Verdict;

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
        for i in it.valid.values() {
            own.extend(i.spec.contract.iter().map(|c| c.call.clone()));
            own.extend(i.probes.iter().cloned());
        }
        own.extend(checked.iter().map(|e| e.call.clone()));
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
        Stage::Interpret(it)
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
        let mut checked: Vec<ContractExample> = self
            .facts
            .examples
            .iter()
            .map(|e| {
                let mut e = e.clone();
                if let Some((_, f)) = e.call.function.rsplit_once('.') {
                    e.call.function = f.to_string();
                }
                e
            })
            .collect();
        for c in self.clarified_examples() {
            if !checked.contains(&c) {
                checked.push(c);
            }
        }
        checked
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
                it.valid.remove(&agent);
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
    pub(super) fn classes(it: &Interp) -> Vec<(Behaviour, Vec<AgentId>)> {
        let mut by: BTreeMap<&Behaviour, Vec<AgentId>> = BTreeMap::new();
        for (a, b) in &it.behaviours {
            by.entry(b).or_default().push(*a);
        }
        let mut cs: Vec<(Behaviour, Vec<AgentId>)> =
            by.into_iter().map(|(b, a)| (b.clone(), a)).collect();
        cs.sort_by(|x, y| y.1.len().cmp(&x.1.len()).then(x.1[0].cmp(&y.1[0])));
        cs
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
            Verdict::Decide => {
                // Members that differ as programs: look for an input that splits them.
                let mut by_digest: BTreeMap<String, AgentId> = BTreeMap::new();
                for a in &classes[0].1 {
                    let d = Program::single(REFERENCE_MODULE, &it.valid[a].reference).digest();
                    by_digest.entry(d).or_insert(*a);
                }
                if by_digest.len() > 1 && it.differential_rounds < self.cfg.differential_rounds_max
                {
                    let reps: Vec<AgentId> = by_digest.into_values().collect();
                    self.start_differential(it, reps, out)
                } else {
                    self.decide(it, classes, out)
                }
            }
            Verdict::Ambiguous(idx) => self.ask_user(it, &classes, &idx, out),
            Verdict::NotYet => self.ask_for_more(it, &sizes, out),
        }
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
        let why = format!(
            "largest class has {} of the {} needed (n − m) and no agent is left to ask",
            sizes.first().copied().unwrap_or(0),
            self.tally.first_wave()
        );
        self.no_decision(&it, &why, out)
    }

    /// Nobody left to ask: resample every agent once, then give up with the evidence.
    pub(super) fn no_decision(&mut self, it: &Interp, why: &str, out: &mut Vec<Output>) -> Stage {
        let (round, sample) = (it.round, it.sample);
        if sample < self.cfg.resamples_max {
            let decision = Decision::Resample {
                round,
                sample: sample + 1,
                why: why.to_string(),
            };
            self.persist(decision, out);
            self.start_interpret(round, sample + 1, out)
        } else {
            self.fail("agree", format!("no agreement within budget: {why}"), out)
        }
    }

    fn start_differential(
        &mut self,
        mut it: Box<Interp>,
        reps: Vec<AgentId>,
        out: &mut Vec<Output>,
    ) -> Stage {
        it.differential_rounds += 1;
        let seed = self.cfg.seed ^ u64::from(it.differential_rounds) ^ (u64::from(it.round) << 40);
        let calls = probes::differential_calls(
            &it.pool,
            seed,
            self.cfg.differential_max,
            &self.cfg.probe_limits,
        );
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
        if distinguishing.is_empty() {
            let classes = Self::classes(&it);
            return self.decide(it, classes, out);
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
