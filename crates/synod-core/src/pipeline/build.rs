//! Build: each component of the decided spec goes to a builder — the decided class first, then
//! the others, round robin, never a suspected agent. A candidate is checked alone (its module
//! plus the decided reference standing in for every other component) for refinement; a failure
//! is the builder's fault and the component goes to the next builder, up to
//! `build_attempts_max` candidates.

use super::*;

/// One component's progress.
#[derive(Clone, Debug)]
pub(super) struct CompState {
    pub(super) spec: ComponentSpec,
    pub(super) tried: Vec<AgentId>,
    pub(super) rejected: Vec<(AgentId, String)>,
    pub(super) accepted: Option<ComponentResult>,
    /// Candidates whose check has not answered yet.
    pub(super) candidates: BTreeMap<AgentId, String>,
    /// Where in the builder list the next pick starts.
    pub(super) next: usize,
}

impl CompState {
    pub(super) fn new(spec: ComponentSpec, next: usize) -> CompState {
        CompState {
            spec,
            tried: Vec::new(),
            rejected: Vec::new(),
            accepted: None,
            candidates: BTreeMap::new(),
            next,
        }
    }
}

/// The decided reading and the components built against it, through integrate.
#[derive(Clone, Debug)]
pub(super) struct Build {
    pub(super) spec: Spec,
    pub(super) reference: String,
    /// The representative's modules when its reading was written one block per module
    /// (PL-26): each is its component's first candidate.
    pub(super) sources: BTreeMap<String, String>,
    pub(super) representative: AgentId,
    pub(super) class: Vec<AgentId>,
    pub(super) dissent: Vec<Dissent>,
    pub(super) outside_domain: Option<OutsideDomain>,
    pub(super) ahead_by: Option<AheadBy>,
    pub(super) pool: Vec<Call>,
    pub(super) ref_behaviour: Behaviour,
    pub(super) builders: Vec<AgentId>,
    pub(super) comps: Vec<CompState>,
    pub(super) agreement: Vec<PairAgreement>,
}

impl Build {
    /// The accepted modules, as one program.
    pub(super) fn program(&self) -> Program {
        let mut p = Program::default();
        for c in &self.comps {
            if let Some(a) = &c.accepted {
                p.modules.insert(a.name.clone(), a.code.clone());
            }
        }
        p
    }
}

impl Pipeline {
    /// Gives every component to its first builder.
    pub(super) fn start_build(&mut self, b: Box<Build>, out: &mut Vec<Output>) -> Stage {
        out.push(Output::Progress(Progress::Stage {
            stage: "build".into(),
            detail: "one agent per component; each candidate is checked for refinement".into(),
        }));
        // PL-21: a one-component reading's decided reference is its first candidate; PL-26:
        // a reading written one block per module gives each component its own block.
        let by_block =
            b.comps.len() > 1 && b.comps.iter().all(|c| b.sources.contains_key(&c.spec.name));
        if self.cfg.reference_first && (b.comps.len() == 1 || by_block) {
            let mut b = b;
            let rep = b.representative;
            for c in 0..b.comps.len() {
                let code = if by_block {
                    b.sources[&b.comps[c].spec.name].clone()
                } else {
                    b.reference.clone()
                };
                b.comps[c].tried.push(rep);
                let request = refinement::component_check(&b, c, &code);
                b.comps[c].candidates.insert(rep, code);
                self.run_check(
                    CheckPurpose::Component {
                        component: c,
                        agent: rep,
                    },
                    request,
                    out,
                );
            }
            return Stage::Build(b);
        }
        let n = b.comps.len();
        let mut stage = Stage::Build(b);
        for c in 0..n {
            stage = match stage {
                Stage::Build(b) => self.next_builder(b, c, out),
                other => return other,
            };
        }
        stage
    }

    /// Asks the next builder for `component`; fails the build when none is left.
    pub(super) fn next_builder(
        &mut self,
        mut b: Box<Build>,
        component: usize,
        out: &mut Vec<Output>,
    ) -> Stage {
        let comp = &mut b.comps[component];
        if comp.accepted.is_some() {
            return Stage::Build(b);
        }
        let len = b.builders.len();
        let mut pick = None;
        if comp.tried.len() < self.cfg.build_attempts_max {
            for k in 0..len {
                let a = b.builders[(comp.next + k) % len];
                if !self.is_suspected(a) && !comp.tried.contains(&a) {
                    pick = Some(a);
                    comp.next = (comp.next + k + 1) % len;
                    break;
                }
            }
        }
        let Some(agent) = pick else {
            let why: Vec<String> = comp
                .rejected
                .iter()
                .map(|(a, r)| format!("{}: {r}", self.name(*a)))
                .collect();
            let reason = format!(
                "no candidate for component {} passed its refinement check within budget ({})",
                comp.spec.name,
                why.join("; ")
            );
            return self.fail("build", reason, out);
        };
        comp.tried.push(agent);
        let request = Request {
            role: Role::Implement,
            prompt: self.prompt.clone(),
            round: 0,
            sample: 0,
            spec: Some(b.spec.clone()),
            component: Some(comp.spec.name.clone()),
            programs: Vec::new(),
            repair: None,
        };
        self.ask(agent, AskPurpose::Implement { component }, request, out);
        Stage::Build(b)
    }

    /// A builder answered: a usable module is checked for refinement, anything else rejected.
    pub(super) fn on_implementation(
        &mut self,
        mut b: Box<Build>,
        component: usize,
        agent: AgentId,
        reply: Result<Reply, ReplyFault>,
        out: &mut Vec<Output>,
    ) -> Stage {
        let invalid = |detail: String| (FaultKind::InvalidReply, detail);
        let code = match reply {
            Ok(Reply::Implementation(code)) if code.trim().is_empty() => {
                Err(invalid("empty module".to_string()))
            }
            Ok(Reply::Implementation(code)) if code.len() > SOURCE_BYTES_MAX => Err(invalid(
                format!("module larger than {SOURCE_BYTES_MAX} bytes"),
            )),
            Ok(Reply::Implementation(code)) => Ok(code),
            Ok(Reply::Interpretation(_) | Reply::Inputs(_)) => Err(invalid(
                "answered with a reading where code was asked".into(),
            )),
            Err(f) => Err(reply_fault(&f)),
        };
        match code {
            Ok(code) => {
                let request = refinement::component_check(&b, component, &code);
                // Kept until its check answers.
                b.comps[component].candidates.insert(agent, code);
                self.run_check(CheckPurpose::Component { component, agent }, request, out);
                Stage::Build(b)
            }
            Err((kind, reason)) => {
                let reason = format!("{}: {reason}", b.comps[component].spec.name);
                self.reject(b, component, agent, kind, reason, out)
            }
        }
    }

    fn reject(
        &mut self,
        mut b: Box<Build>,
        component: usize,
        agent: AgentId,
        kind: FaultKind,
        reason: String,
        out: &mut Vec<Output>,
    ) -> Stage {
        self.fault(agent, FaultStage::Build, kind, &reason, out);
        b.comps[component].rejected.push((agent, reason));
        self.next_builder(b, component, out)
    }

    /// A candidate's refinement check finished: accept it, or reject it and ask the next
    /// builder. When every component is accepted, integrate.
    pub(super) fn on_component_check(
        &mut self,
        mut b: Box<Build>,
        component: usize,
        agent: AgentId,
        report: CheckReport,
        out: &mut Vec<Output>,
    ) -> Stage {
        let name = b.comps[component].spec.name.clone();
        let code = b.comps[component]
            .candidates
            .remove(&agent)
            .unwrap_or_default();
        let problem = refinement_problem(
            &report,
            &b.spec.contract,
            &b.pool,
            &b.ref_behaviour,
            "candidate",
        );
        if let Some(p) = problem {
            let reason = format!("{name}: {}", p.detail);
            return self.reject(b, component, agent, p.kind, reason, out);
        }
        let digest = Program::single(&name, &code).digest();
        let (contract_met, probes_matched) = (b.spec.contract.len(), b.pool.len());
        let result = ComponentResult {
            name: name.clone(),
            agent,
            digest: digest.clone(),
            code,
            contract_met,
            probes_matched,
            rejected: b.comps[component].rejected.clone(),
        };
        b.comps[component].accepted = Some(result);
        self.persist(
            Decision::ComponentAccepted {
                component: name.clone(),
                agent,
                digest,
                contract_met,
                probes_matched,
            },
            out,
        );
        out.push(Output::Progress(Progress::CheckPassed {
            what: format!(
                "{name} by {} refines the decided reading ({contract_met} contract examples, {probes_matched} probes)",
                self.name(agent),
            ),
        }));
        if b.comps.iter().all(|c| c.accepted.is_some()) {
            self.integrate(b, out)
        } else {
            Stage::Build(b)
        }
    }
}
