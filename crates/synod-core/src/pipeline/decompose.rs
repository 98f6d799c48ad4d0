//! Decompose: the tally decided a class; its reading becomes the decided spec (ADR 0001).
//!
//! The components are the interface held by the most members of the decided class (ties:
//! agents-file order); its first holder is the representative whose reference becomes the
//! decided reference. The contract is the prompt's and the user's examples, then the decided
//! reference's outcomes on the class's example calls (PL-17). The outvoted classes are recorded as dissent, each with a probe where it differs.

use super::build::CompState;
use super::*;

impl Pipeline {
    /// Decides `classes[0]` and starts the build.
    pub(super) fn decide(
        &mut self,
        it: Box<Interp>,
        classes: Vec<(Behaviour, Vec<AgentId>)>,
        out: &mut Vec<Output>,
    ) -> Stage {
        let members = classes[0].1.clone();
        let holders = interface_holders(&it, &members);
        let representative = holders.first().copied().unwrap_or(members[0]);
        let rep = it.valid[&representative].clone();
        let full_behaviour = it.behaviours[&representative].clone();
        let mut spec = rep.spec.clone();
        spec.contract = self.decided_contract(&it, &members, &full_behaviour);
        let dissent = dissent(&it, &classes, &classes[0].0);
        self.fault_outvoted(&dissent, out);
        let outside_domain = outside_domain(&it, &members, representative);
        if let Some((o, first)) = outside_domain
            .as_ref()
            .and_then(|o| o.differing.first().map(|f| (o, f)))
        {
            let groups: Vec<String> = o
                .groups
                .iter()
                .map(|g| {
                    g.iter()
                        .map(|a| self.name(*a))
                        .collect::<Vec<_>>()
                        .join(", ")
                })
                .collect();
            out.push(Output::Progress(Progress::Note {
                agent: groups.join(" | "),
                note: format!(
                    "programs differ only outside the examples' domain, on {} input(s) such as {}: not a vote (PL-19)",
                    o.differing.len(),
                    first.call
                ),
            }));
        }
        // The build is held to the reference on the inputs in the domain only (PL-19).
        let (pool, ref_behaviour): (Vec<Call>, Behaviour) = it
            .pool
            .iter()
            .zip(&full_behaviour)
            .zip(&it.in_domain)
            .filter(|(_, d)| **d)
            .map(|((c, o), _)| (c.clone(), o.clone()))
            .unzip();
        let names: Vec<String> = members.iter().map(|a| self.name(*a)).collect();
        let decided = Decision::InterpretationDecided {
            round: it.round,
            sample: it.sample,
            class: members.clone(),
            representative,
            summary: spec.summary.clone(),
            reference_digest: Program::single(REFERENCE_MODULE, &rep.reference).digest(),
            probes: pool.len(),
            dissent: dissent.clone(),
            outside_domain: outside_domain.clone(),
            ahead_by: it.widened.clone(),
            n: self.tally.n(),
            m: self.tally.m(),
        };
        self.persist(decided, out);
        out.push(Output::Progress(Progress::Decided {
            what: format!(
                "reading of {} ({} of {} agents; needed {})",
                names.join(", "),
                members.len(),
                self.tally.n(),
                self.tally.first_wave()
            ),
        }));
        let decomposition = Decision::DecompositionDecided {
            components: spec.components.clone(),
            holders,
            contract: spec.contract.clone(),
        };
        self.persist(decomposition, out);
        out.push(Output::Progress(Progress::Decided {
            what: format!(
                "decomposition into {} component(s): {}",
                spec.components.len(),
                spec.components
                    .iter()
                    .map(|c| c.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }));
        let comps = spec
            .components
            .iter()
            .enumerate()
            // First builders come from the decided class, round robin; the others only when a
            // candidate fails.
            .map(|(i, c)| CompState::new(c.clone(), i % members.len().max(1)))
            .collect();
        let builders = self.builders(&members);
        let build = Build {
            spec,
            reference: rep.reference.clone(),
            sources: rep.sources.clone(),
            representative,
            class: members,
            dissent,
            outside_domain,
            ahead_by: it.widened.clone(),
            pool,
            ref_behaviour,
            builders,
            comps,
            agreement: agreement(&it),
        };
        self.start_build(Box::new(build), out)
    }

    /// Every agent of an outvoted class gets a `vote` fault, with a probe where it differs.
    fn fault_outvoted(&mut self, dissent: &[Dissent], out: &mut Vec<Output>) {
        for d in dissent {
            let reason = match &d.example {
                Some((c, ours, theirs)) => format!(
                    "outvoted: its reading differs from the decided one on {c}: {theirs} instead of {ours}"
                ),
                None => "outvoted".into(),
            };
            for a in &d.agents {
                self.fault(*a, FaultStage::Vote, FaultKind::Outvoted, &reason, out);
            }
        }
    }

    /// Builders: the decided class first, then the other agents, in file order.
    fn builders(&self, members: &[AgentId]) -> Vec<AgentId> {
        let mut builders = members.to_vec();
        for a in &self.agents {
            if !builders.contains(&a.info.id) {
                builders.push(a.info.id);
            }
        }
        builders
    }

    /// The decided contract (PL-17): the checked examples (the prompt's and the user's),
    /// then the decided reference's own outcome on each example call the class's members
    /// wrote (timeouts excluded), at most [`DECIDED_CONTRACT_MAX`] examples. What an agent said
    /// a call returns is not in it: the cap trims the class's examples, never the checked
    /// ones, which every later reading must meet (ADR 0002, PL-9).
    fn decided_contract(
        &self,
        it: &Interp,
        members: &[AgentId],
        behaviour: &Behaviour,
    ) -> Vec<ContractExample> {
        let mut contract = self.checked_examples();
        let checked = contract.len();
        let room = DECIDED_CONTRACT_MAX.saturating_sub(checked);
        let calls = members.iter().flat_map(|a| {
            let i = &it.valid[a];
            i.spec
                .contract
                .iter()
                .map(|c| &c.call)
                .chain(i.probes.iter())
        });
        let mut taken = 0;
        for call in calls {
            if taken >= room {
                break;
            }
            if contract.iter().any(|c| c.call == *call) {
                continue;
            }
            let Some(outcome) = it
                .pool
                .iter()
                .position(|p| p == call)
                .and_then(|k| behaviour.get(k))
            else {
                continue;
            };
            if *outcome == Outcome::Timeout {
                continue;
            }
            contract.push(ContractExample {
                call: call.clone(),
                expect: Expectation::Same(outcome.clone()),
            });
            taken += 1;
        }
        assert!(
            self.clarified_examples()
                .iter()
                .all(|c| contract.contains(c)),
            "the decided contract keeps every clarified example"
        );
        contract
    }
}

/// The agents of the class that hold its most common interface (ties: agents-file order).
fn interface_holders(it: &Interp, members: &[AgentId]) -> Vec<AgentId> {
    let mut by_iface: BTreeMap<Vec<ComponentSpec>, Vec<AgentId>> = BTreeMap::new();
    for a in members {
        by_iface
            .entry(it.valid[a].spec.interface_key())
            .or_default()
            .push(*a);
    }
    by_iface
        .into_values()
        .max_by(|x, y| x.len().cmp(&y.len()).then(y[0].cmp(&x[0])))
        .unwrap_or_default()
}

/// The outvoted classes, each with the first probe where it differs from the decided one.
fn dissent(
    it: &Interp,
    classes: &[(Behaviour, Vec<AgentId>)],
    decided: &Behaviour,
) -> Vec<Dissent> {
    classes[1..]
        .iter()
        .map(|(b, agents)| Dissent {
            agents: agents.clone(),
            summary: it.valid[&agents[0]].spec.summary.clone(),
            example: it
                .pool
                .iter()
                .enumerate()
                .find(|(p, _)| it.in_domain[*p] && b[*p] != decided[*p])
                .map(|(p, c)| (c.clone(), decided[p].clone(), b[p].clone())),
        })
        .collect()
}

/// Where the class's members differ outside the domain: its sub-classes (the representative's
/// first) and up to [`QUESTION_PROBES_MAX`] inputs with each one's outcome; `None` when they
/// behave the same everywhere.
fn outside_domain(it: &Interp, members: &[AgentId], rep: AgentId) -> Option<OutsideDomain> {
    let mut subs = Pipeline::sub_classes(it, members);
    if subs.len() < 2 {
        return None;
    }
    super::agree::to_front(&mut subs, |s| s.1.contains(&rep));
    let differing = super::agree::differing_probes(it, subs.iter().map(|(b, _)| b), |_| true);
    Some(OutsideDomain {
        groups: subs.into_iter().map(|s| s.1).collect(),
        differing,
    })
}

/// For each pair of agents with a checked reading: on how many probes they behaved the same.
fn agreement(it: &Interp) -> Vec<PairAgreement> {
    let checked: Vec<(&AgentId, &Behaviour)> = it.behaviours.iter().collect();
    let mut agreement = Vec::new();
    for (i, (a, ba)) in checked.iter().enumerate() {
        for (b, bb) in &checked[i + 1..] {
            agreement.push(PairAgreement {
                a: **a,
                b: **b,
                same: ba.iter().zip(bb.iter()).filter(|(x, y)| x == y).count(),
                probes: ba.len().min(bb.len()),
            });
        }
    }
    agreement
}
