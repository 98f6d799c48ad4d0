//! Interpret: ask agents for readings of the prompt, in waves, and check each reply's shape.
//!
//! The first wave is n − m agents in agents-file order; a faulty or silent agent is replaced by
//! the next one not yet asked. When no interpret ask is pending, [`agree`](super::agree) takes
//! over.

use super::*;
use std::collections::BTreeSet;

/// The state of one interpret round (one prompt, one sample), through agree.
#[derive(Clone, Debug, Default)]
pub(super) struct Interp {
    pub(super) round: u32,
    pub(super) sample: u32,
    pub(super) asked: BTreeSet<AgentId>,
    pub(super) valid: BTreeMap<AgentId, Interpretation>,
    pub(super) behaviours: BTreeMap<AgentId, Behaviour>,
    pub(super) pool: Vec<Call>,
    pub(super) extra: Vec<Call>,
    pub(super) checks_pending: usize,
    pub(super) replaced: usize,
    pub(super) differential_rounds: u32,
    pub(super) differential: BTreeMap<AgentId, Behaviour>,
    pub(super) differential_calls: Vec<Call>,
}

impl Pipeline {
    /// Starts a round: after `round` clarifications, `sample` resamples.
    pub(super) fn start_interpret(
        &mut self,
        round: u32,
        sample: u32,
        out: &mut Vec<Output>,
    ) -> Stage {
        out.push(Output::Progress(Progress::Stage {
            stage: "interpret".into(),
            detail: format!(
                "asking {} of {} agents for a reading (fault budget {}{}{})",
                self.tally.first_wave(),
                self.tally.n(),
                self.tally.m(),
                if round > 0 {
                    format!(", after clarification {round}")
                } else {
                    String::new()
                },
                if sample > 0 {
                    format!(", resample {sample}")
                } else {
                    String::new()
                },
            ),
        }));
        let mut it = Box::new(Interp {
            round,
            sample,
            ..Interp::default()
        });
        let wave = self.tally.first_wave();
        if self.ask_more_interpret(&mut it, wave, out) == 0 {
            return self.fail(
                "interpret",
                "every agent is suspected: none left to ask".into(),
                out,
            );
        }
        Stage::Interpret(it)
    }

    /// Asks up to `k` more agents that are not suspected and not yet asked this sample, in
    /// agents-file order. Returns how many were asked.
    pub(super) fn ask_more_interpret(
        &mut self,
        it: &mut Interp,
        k: usize,
        out: &mut Vec<Output>,
    ) -> usize {
        let chosen: Vec<AgentId> = self
            .agents
            .iter()
            .filter(|a| !self.is_suspected(a.info.id) && !it.asked.contains(&a.info.id))
            .map(|a| a.info.id)
            .take(k)
            .collect();
        for a in &chosen {
            it.asked.insert(*a);
        }
        for a in &chosen {
            let request = Request {
                role: Role::Interpret,
                prompt: self.prompt.clone(),
                round: it.round,
                sample: it.sample,
                spec: None,
                component: None,
            };
            self.ask(*a, AskPurpose::Interpret, request, out);
        }
        chosen.len()
    }

    pub(super) fn interpret_asks_pending(&self) -> bool {
        self.asks
            .values()
            .any(|a| matches!(a.purpose, AskPurpose::Interpret))
    }

    /// A reply to an interpret ask: a valid reading joins the round, anything else is the
    /// agent's fault and the next agent is asked.
    pub(super) fn on_reading(
        &mut self,
        mut it: Box<Interp>,
        agent: AgentId,
        reply: Result<Reply, ReplyFault>,
        out: &mut Vec<Output>,
    ) -> Stage {
        let invalid = |detail: String| (FaultKind::InvalidReply, detail);
        let checked = match reply {
            Ok(Reply::Interpretation(mut i)) => {
                resolve_qualified_names(&mut i);
                validate_interpretation(&i).map(|()| i).map_err(invalid)
            }
            Ok(Reply::Implementation(_)) => Err(invalid(
                "answered with code where a reading was asked".into(),
            )),
            Err(f) => Err(reply_fault(&f)),
        };
        match checked {
            Ok(i) => {
                it.valid.insert(agent, i);
            }
            Err((kind, detail)) => {
                self.fault(agent, FaultStage::Interpret, kind, &detail, out);
                self.ask_more_interpret(&mut it, 1, out);
            }
        }
        self.maybe_check_interpretations(it, out)
    }

    /// An interpret ask's deadline passed (its agent is now suspected): ask the next agent.
    pub(super) fn replace_silent_reader(
        &mut self,
        mut it: Box<Interp>,
        out: &mut Vec<Output>,
    ) -> Stage {
        self.ask_more_interpret(&mut it, 1, out);
        self.maybe_check_interpretations(it, out)
    }
}

/// `module.func` and `func` name the same function when `module` is a component of the spec
/// that defines `func` (models write calls both ways): qualified calls in the contract and the
/// probes are rewritten to the bare name. Anything else is left as it is, so a call to a
/// function that does not exist is still rejected by [`validate_interpretation`] (PL-2).
pub fn resolve_qualified_names(i: &mut Interpretation) {
    let defined: BTreeSet<(String, String)> = i
        .spec
        .components
        .iter()
        .flat_map(|c| c.functions.iter().map(|f| (c.name.clone(), f.name.clone())))
        .collect();
    let resolve = |call: &mut Call| {
        if let Some((module, func)) = call.function.rsplit_once('.')
            && defined.contains(&(module.to_string(), func.to_string()))
        {
            call.function = func.to_string();
        }
    };
    for c in &mut i.spec.contract {
        resolve(&mut c.call);
    }
    for p in &mut i.probes {
        resolve(p);
    }
}

/// Semantic checks of a parsed interpretation: names, arities, bounds.
pub fn validate_interpretation(i: &Interpretation) -> Result<(), String> {
    let spec = &i.spec;
    if spec.components.is_empty() {
        return Err("the spec names no component".into());
    }
    if spec.components.len() > COMPONENTS_MAX {
        return Err(format!("more than {COMPONENTS_MAX} components"));
    }
    let mut modules = BTreeSet::new();
    let mut arity: BTreeMap<&str, usize> = BTreeMap::new();
    for c in &spec.components {
        if !is_identifier(&c.name) || c.name == REFERENCE_MODULE {
            return Err(format!(
                "component name {:?} is not a usable module name",
                c.name
            ));
        }
        if !modules.insert(c.name.as_str()) {
            return Err(format!("component {} is named twice", c.name));
        }
        if c.functions.is_empty() {
            return Err(format!("component {} has no function", c.name));
        }
        for f in &c.functions {
            if !is_identifier(&f.name) {
                return Err(format!("function name {:?} is not an identifier", f.name));
            }
            if let Some(p) = f.params.iter().find(|p| !is_identifier(p)) {
                return Err(format!(
                    "parameter {p:?} of {} is not an identifier",
                    f.name
                ));
            }
            if arity.insert(&f.name, f.params.len()).is_some() {
                return Err(format!("function {} is defined by two components", f.name));
            }
        }
    }
    if spec.contract.is_empty() {
        return Err("the spec has no contract examples".into());
    }
    if spec.contract.len() > CONTRACT_MAX {
        return Err(format!("more than {CONTRACT_MAX} contract examples"));
    }
    if i.probes.len() > PROBES_PER_AGENT_MAX {
        return Err(format!("more than {PROBES_PER_AGENT_MAX} probes"));
    }
    if i.reference.len() > SOURCE_BYTES_MAX {
        return Err(format!("reference larger than {SOURCE_BYTES_MAX} bytes"));
    }
    if i.reference.trim().is_empty() {
        return Err("no reference program".into());
    }
    let calls = spec
        .contract
        .iter()
        .map(|c| (&c.call, "contract example"))
        .chain(i.probes.iter().map(|c| (c, "probe")));
    for (call, what) in calls {
        match arity.get(call.function.as_str()) {
            None => {
                return Err(format!(
                    "{what} {call} calls a function the spec does not define"
                ));
            }
            Some(n) if *n != call.args.len() => {
                return Err(format!(
                    "{what} {call} passes {} argument(s); {} takes {n}",
                    call.args.len(),
                    call.function
                ));
            }
            _ => {}
        }
    }
    Ok(())
}
