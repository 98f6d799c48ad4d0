//! Interpret: ask agents for readings of the prompt, in waves, and check each reply's shape.
//!
//! The first wave is n − m agents in agents-file order; a faulty or silent agent is replaced by
//! the next one not yet asked. When no interpret ask is pending, [`agree`](super::agree) takes
//! over.

use super::*;
use std::collections::BTreeSet;

/// The module a reading from code is, when neither it nor the prompt names one.
pub const DEFAULT_MODULE: &str = "solution";
/// Most functions taken from a reference's interface.
const FUNCTIONS_MAX: usize = 64;

/// A valid reading of an earlier sample of the round: a vote in the widened tally (PL-20).
#[derive(Clone, Debug)]
pub(super) struct Carried {
    pub(super) agent: AgentId,
    /// The request it answered.
    pub(super) key: String,
    pub(super) interp: Interpretation,
    /// Its reference's behaviour on this sample's pool, once checked.
    pub(super) behaviour: Option<Behaviour>,
}

/// The state of one interpret round (one prompt, one sample), through agree.
#[derive(Clone, Debug, Default)]
pub(super) struct Interp {
    pub(super) round: u32,
    pub(super) sample: u32,
    pub(super) asked: BTreeSet<AgentId>,
    pub(super) valid: BTreeMap<AgentId, Interpretation>,
    /// The request key each agent's latest reply answered (a reading's identity, PL-20).
    pub(super) keys: BTreeMap<AgentId, String>,
    /// Valid readings of earlier samples of this round, still votes in the widened tally.
    pub(super) carried: Vec<Carried>,
    /// Interpret calls made this round, every sample counted (PL-20's budget).
    pub(super) calls: usize,
    /// A member of the class being decided while its differential search runs.
    pub(super) deciding: Option<AgentId>,
    /// Whether PL-22's agent was asked this round (once per round).
    pub(super) distinguish_asked: bool,
    /// The distinct members PL-22's inputs will run on.
    pub(super) distinguish_reps: Vec<AgentId>,
    /// How the widened rule decided, when it did (PL-20).
    pub(super) widened: Option<AheadBy>,
    /// Readings from code whose reference is being loaded to read its interface.
    pub(super) reading_code: BTreeMap<AgentId, Interpretation>,
    /// Agents whose latest reading this round was faulted (PL-18 may ask them again).
    pub(super) faulted: BTreeSet<AgentId>,
    /// Fresh samples asked of each agent this round after a faulted reading (PL-18).
    pub(super) retries: BTreeMap<AgentId, u32>,
    /// Each agent's latest program this sample, as [`program_text`] shows it (PL-29).
    pub(super) programs: BTreeMap<AgentId, String>,
    /// What each agent's next ask this sample shows it of its own latest program: the fault
    /// of its latest program, or what the last answer showed it (PL-29).
    pub(super) repairs: BTreeMap<AgentId, Repair>,
    pub(super) behaviours: BTreeMap<AgentId, Behaviour>,
    pub(super) pool: Vec<Call>,
    /// What the round's written examples admit (PL-19).
    pub(super) domain: crate::domain::Domain,
    /// For each pool input, whether it is in the domain.
    pub(super) in_domain: Vec<bool>,
    pub(super) extra: Vec<Call>,
    pub(super) checks_pending: usize,
    pub(super) replaced: usize,
    pub(super) differential_rounds: u32,
    pub(super) differential: BTreeMap<AgentId, Behaviour>,
    pub(super) differential_calls: Vec<Call>,
}

impl Interp {
    /// PL-29: the agent's program this sample was faulted (it runs, or loads, and is wrong):
    /// its next ask this sample shows it the program and the reason as it is told it
    /// ([`RefinementProblem::told`]).
    pub(super) fn note_repair(&mut self, agent: AgentId, problem: &RefinementProblem) {
        if let Some(program) = self.programs.get(&agent) {
            self.repairs.insert(
                agent,
                Repair {
                    program: program.clone(),
                    problem: problem.told.clone(),
                },
            );
        }
    }
}

/// A reading's program as its agent is shown it again (PL-29): one `# module: NAME` block per
/// module, the prompt's imports included (PL-23).
pub(super) fn program_text(i: &Interpretation) -> String {
    let with_header = |name: &str, code: &str| {
        if code.trim_start().starts_with("# module:") {
            code.trim().to_string()
        } else {
            format!("# module: {name}\n{}", code.trim())
        }
    };
    if i.sources.is_empty() {
        let name = i
            .spec
            .components
            .first()
            .map_or(DEFAULT_MODULE, |c| c.name.as_str());
        with_header(name, &i.reference)
    } else {
        i.sources
            .iter()
            .map(|(name, code)| with_header(name, code))
            .collect::<Vec<_>>()
            .join("\n\n")
    }
}

impl Pipeline {
    /// Starts a round: after `round` clarifications, `sample` resamples.
    pub(super) fn start_interpret(
        &mut self,
        round: u32,
        sample: u32,
        out: &mut Vec<Output>,
    ) -> Stage {
        self.start_sample(round, sample, Vec::new(), (0, false), out)
    }

    /// Starts sample `sample` of a round, with the earlier samples' valid readings, the calls
    /// they cost and whether PL-22's agent was asked (once per round).
    pub(super) fn start_sample(
        &mut self,
        round: u32,
        sample: u32,
        carried: Vec<Carried>,
        (calls, distinguish_asked): (usize, bool),
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
            carried,
            calls,
            distinguish_asked,
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
    /// agents-file order; when those run out, agents whose reading this round was faulted
    /// are asked for a fresh sample, at most `retries_max` times each (PL-18). Returns how
    /// many were asked.
    pub(super) fn ask_more_interpret(
        &mut self,
        it: &mut Interp,
        k: usize,
        out: &mut Vec<Output>,
    ) -> usize {
        let mut chosen: Vec<(AgentId, u32)> = self
            .agents
            .iter()
            .filter(|a| !self.is_suspected(a.info.id) && !it.asked.contains(&a.info.id))
            .map(|a| (a.info.id, it.sample))
            .take(k)
            .collect();
        for a in self.agents.iter().map(|a| a.info.id) {
            if chosen.len() >= k {
                break;
            }
            let tries = it.retries.get(&a).copied().unwrap_or(0);
            if it.faulted.contains(&a) && !self.is_suspected(a) && tries < self.cfg.retries_max {
                it.faulted.remove(&a);
                it.retries.insert(a, tries + 1);
                // A sample index of its own: a later resample of the round asks the same
                // request and reuses the reply.
                chosen.push((a, it.sample + tries + 1));
            }
        }
        // The round's call budget (PL-20); the first wave always fits (at least n − m).
        let room = self
            .cfg
            .interpret_calls_max
            .max(self.tally.first_wave())
            .saturating_sub(it.calls);
        chosen.truncate(room);
        it.calls += chosen.len();
        for (a, _) in &chosen {
            it.asked.insert(*a);
        }
        for (a, sample) in &chosen {
            // PL-29: the fault of the agent's latest program this sample, else what the last
            // answer showed it, on its first ask after that answer.
            if !it.repairs.contains_key(a)
                && let Some(r) = self.repairs.remove(a)
            {
                it.repairs.insert(*a, r);
            }
            let request = Request {
                role: Role::Interpret,
                prompt: self.prompt.clone(),
                round: it.round,
                sample: *sample,
                spec: None,
                component: None,
                programs: Vec::new(),
                repair: it.repairs.get(a).cloned(),
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

    /// A reply to an interpret ask. A reading whose interface the reply states (the JSON
    /// spec) is checked at once; one whose interface is its code (PL-15) is loaded in the
    /// sandbox first. Anything unusable is the agent's fault and the next agent is asked.
    pub(super) fn on_reading(
        &mut self,
        mut it: Box<Interp>,
        agent: AgentId,
        key: String,
        reply: Result<Reply, ReplyFault>,
        out: &mut Vec<Output>,
    ) -> Stage {
        it.keys.insert(agent, key);
        let invalid = |detail: String| (FaultKind::InvalidReply, detail);
        let checked = match reply {
            Ok(Reply::Interpretation(mut i)) => {
                self.name_components(&mut i);
                // PL-23: the imports the prompt's code shows, where the reading uses them.
                i.reference = crate::facts::with_prompt_imports(&i.reference, &self.facts.imports);
                for code in i.sources.values_mut() {
                    *code = crate::facts::with_prompt_imports(code, &self.facts.imports);
                }
                validate_interpretation(&i)
                    .and_then(|()| {
                        match crate::facts::bodiless_problem(&i.reference, &self.facts.functions) {
                            Some(why) => Err(why),
                            None => Ok(i),
                        }
                    })
                    .map_err(invalid)
            }
            Ok(Reply::Implementation(_) | Reply::Inputs(_)) => Err(invalid(
                "answered with code where a reading was asked".into(),
            )),
            Err(f) => Err(reply_fault(&f)),
        };
        if let Ok(i) = &checked {
            it.programs.insert(agent, program_text(i));
        }
        match checked {
            Ok(i) if interface_from_code(&i) => {
                let request = CheckRequest {
                    program: Program::single(REFERENCE_MODULE, &i.reference),
                    function_modules: BTreeMap::new(),
                    interface: Vec::new(),
                    calls: Vec::new(),
                };
                it.reading_code.insert(agent, i);
                it.checks_pending += 1;
                self.run_check(CheckPurpose::Interface { agent }, request, out);
                return Stage::Interpret(it);
            }
            Ok(i) => {
                let arities = i
                    .spec
                    .components
                    .iter()
                    .flat_map(|c| &c.functions)
                    .map(|f| (f.name.clone(), (f.params.len(), f.params.len())))
                    .collect();
                self.accept_reading(&mut it, agent, i, &arities, out);
            }
            Err((kind, detail)) => {
                self.fault(agent, FaultStage::Interpret, kind, &detail, out);
                it.faulted.insert(agent);
                self.ask_more_interpret(&mut it, 1, out);
            }
        }
        self.maybe_check_interpretations(it, out)
    }

    /// A single-component reading is the module the prompt names, if it names one (its
    /// name is the prompt's, not the model's); a reading from code without a module name is
    /// `solution` unless the prompt names another.
    fn name_components(&self, i: &mut Interpretation) {
        let fixed = self.facts.module.clone();
        if let [only] = i.spec.components.as_mut_slice() {
            if let Some(m) = fixed {
                only.name = m;
            } else if only.name.is_empty() {
                only.name = DEFAULT_MODULE.to_string();
            }
        }
    }

    /// A reading's reference was loaded: its public functions are its interface (PL-15).
    pub(super) fn on_interface_check(
        &mut self,
        mut it: Box<Interp>,
        agent: AgentId,
        report: CheckReport,
        out: &mut Vec<Output>,
    ) -> Stage {
        it.checks_pending = it.checks_pending.saturating_sub(1);
        let Some(mut i) = it.reading_code.remove(&agent) else {
            return self.maybe_check_interpretations(it, out);
        };
        let found: Vec<&FoundFunction> = report
            .functions
            .iter()
            .filter(|f| f.module == REFERENCE_MODULE)
            .collect();
        let problem = if let Some(v) = report.violations.first() {
            Some(super::refinement::forbidden("reference", &report, v))
        } else if let Some(e) = &report.load_error {
            Some(super::refinement::problem(
                FaultKind::DoesNotLoad,
                "reference",
                format!("does not load: {e}"),
            ))
        } else if found.is_empty() {
            Some(super::refinement::problem(
                FaultKind::InterfaceMismatch,
                "reference",
                "defines no public function".to_string(),
            ))
        } else {
            None
        };
        if let Some(p) = problem {
            self.fault(agent, FaultStage::Interpret, p.kind, &p.detail, out);
            it.note_repair(agent, &p);
            it.faulted.insert(agent);
            self.ask_more_interpret(&mut it, 1, out);
            return self.maybe_check_interpretations(it, out);
        }
        // Each function belongs to the module whose block defines it (PL-26); a one-module
        // reading's functions are all its one component's.
        for f in found.iter().take(FUNCTIONS_MAX) {
            let k = i
                .spec
                .components
                .iter()
                .position(|c| {
                    i.sources.get(&c.name).is_some_and(|code| {
                        crate::facts::top_level_functions(code)
                            .iter()
                            .any(|(n, _)| *n == f.name)
                    })
                })
                .unwrap_or(0);
            i.spec.components[k].functions.push(FunctionSig {
                name: f.name.clone(),
                params: f.params.clone(),
                doc: String::new(),
            });
        }
        let arities = found
            .iter()
            .map(|f| (f.name.clone(), (f.required, f.params.len())))
            .collect();
        self.accept_reading(&mut it, agent, i, &arities, out);
        self.maybe_check_interpretations(it, out)
    }

    /// A reading whose interface is known: its calls are resolved (PL-2) and it must define
    /// what the prompt names (PL-16); then it joins the round. A reading without example calls
    /// of its own still votes: its behaviour on the others' calls is its reading.
    fn accept_reading(
        &mut self,
        it: &mut Interp,
        agent: AgentId,
        mut i: Interpretation,
        arities: &BTreeMap<String, (usize, usize)>,
        out: &mut Vec<Output>,
    ) {
        resolve_qualified_names(&mut i);
        let dropped = drop_unusable_calls(&mut i, arities);
        let missing = self.facts.functions.iter().find(|f| {
            !arities
                .get(&f.name)
                .is_some_and(|(lo, hi)| (*lo..=*hi).contains(&f.params.len()))
        });
        let problem = missing.map(|f| {
            let signature = format!("{}({})", f.name, f.params.join(", "));
            RefinementProblem {
                kind: FaultKind::InterfaceMismatch,
                detail: format!(
                    "its reference does not define {signature}, which the prompt names"
                ),
                told: format!("your program does not define {signature}, which the request names."),
            }
        });
        match problem {
            Some(p) => {
                self.fault(agent, FaultStage::Interpret, p.kind, &p.detail, out);
                it.note_repair(agent, &p);
                it.faulted.insert(agent);
                self.ask_more_interpret(it, 1, out);
            }
            None => {
                if !dropped.is_empty() {
                    out.push(Output::Progress(Progress::Note {
                        agent: self.name(agent),
                        note: format!("{} example call(s) dropped: {}", dropped.len(), dropped[0]),
                    }));
                }
                it.valid.insert(agent, i);
            }
        }
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

/// Is this a reading whose interface is its code (no function listed: PL-15)?
fn interface_from_code(i: &Interpretation) -> bool {
    i.spec.components.iter().all(|c| c.functions.is_empty())
}

/// Drops the example calls (stated ones and probes) that name no function of the reading or
/// pass a number of arguments it does not take: such a call is rejected, the reading is not
/// (PL-2). Returns one line per dropped call.
pub fn drop_unusable_calls(
    i: &mut Interpretation,
    arities: &BTreeMap<String, (usize, usize)>,
) -> Vec<String> {
    let mut dropped = Vec::new();
    let mut usable = |call: &Call| match arities.get(&call.function) {
        None => {
            dropped.push(format!(
                "{call} calls a function the reading does not define"
            ));
            false
        }
        Some((lo, hi)) if !(*lo..=*hi).contains(&call.args.len()) => {
            dropped.push(format!(
                "{call} passes {} argument(s); {} takes {}",
                call.args.len(),
                call.function,
                if lo == hi {
                    lo.to_string()
                } else {
                    format!("{lo} to {hi}")
                }
            ));
            false
        }
        _ => true,
    };
    i.spec.contract.retain(|c| usable(&c.call));
    i.probes.retain(|c| usable(c));
    dropped
}

/// Shape checks of a parsed interpretation: names (identifiers, and no module name synod or
/// Python reserves: [`crate::reserved`]) and bounds. Calls are checked against the
/// interface once it is known ([`drop_unusable_calls`]).
pub fn validate_interpretation(i: &Interpretation) -> Result<(), String> {
    let spec = &i.spec;
    if spec.components.is_empty() {
        return Err("the spec names no component".into());
    }
    if spec.components.len() > COMPONENTS_MAX {
        return Err(format!("more than {COMPONENTS_MAX} components"));
    }
    let one_block_per_module = spec.components.len() == i.sources.len()
        && spec
            .components
            .iter()
            .all(|c| i.sources.contains_key(&c.name));
    if interface_from_code(i) && spec.components.len() > 1 && !one_block_per_module {
        return Err(
            "a reading whose interface is its code has one module, or one named block per module"
                .into(),
        );
    }
    if !i.sources.is_empty() && !one_block_per_module {
        return Err("its modules' blocks do not match its components".into());
    }
    let mut modules = BTreeSet::new();
    let mut functions = BTreeSet::new();
    for c in &spec.components {
        if !is_identifier(&c.name) {
            return Err(format!(
                "component name {:?} is not a usable module name",
                c.name
            ));
        }
        if let Some(why) = crate::reserved::module_name_problem(&c.name) {
            return Err(format!("component name {why}; choose another name"));
        }
        if !modules.insert(c.name.as_str()) {
            return Err(format!("component {} is named twice", c.name));
        }
        if c.functions.is_empty() && !interface_from_code(i) {
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
            if !functions.insert(f.name.as_str()) {
                return Err(format!("function {} is defined by two components", f.name));
            }
        }
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
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::model::{Call, CheckReport, ContractExample, Expectation, Outcome};
    use crate::pipeline::refinement_problem;
    use crate::value::Value;

    fn told(report: CheckReport, contract: &[ContractExample]) -> (String, String) {
        let p = refinement_problem(&report, contract, &[], &[], "reference").expect("a problem");
        (p.detail, p.told)
    }

    /// PL-29: a fault's reason as its agent is told it, built beside the log's sentence from
    /// the same parts (no parsing of the sentence: a string argument holding ", but " is told
    /// as it is).
    #[test]
    fn a_faults_reason_is_told_to_its_agent_in_its_words() {
        let example = |arg: Value, want: Value| ContractExample {
            call: Call {
                function: "f".into(),
                args: vec![arg],
            },
            expect: Expectation::Returns(want),
        };
        let broken = |got: &str| CheckReport {
            outcomes: vec![Outcome::Value(got.into())],
            met: vec![Some(false)],
            ..Default::default()
        };
        assert_eq!(
            told(broken("-4"), &[example(Value::Int(4), Value::Int(4))]),
            (
                "reference breaks the contract: f(4) should return 4, but returns -4".into(),
                "f(4) should return 4 (the request's examples and the user's answers say so), but your program returns -4.".into()
            )
        );
        let text = Value::Str("a, but b".into());
        assert_eq!(
            told(broken("'x, but y'"), &[example(text.clone(), text)]).1,
            "f('a, but b') should return 'a, but b' (the request's examples and the user's answers say so), but your program returns 'x, but y'."
        );
        let load = CheckReport {
            load_error: Some("SyntaxError: invalid syntax (line 3)".into()),
            ..Default::default()
        };
        assert_eq!(
            told(load, &[]),
            (
                "reference does not load: SyntaxError: invalid syntax (line 3)".into(),
                "your program does not load: SyntaxError: invalid syntax (line 3).".into()
            )
        );
    }
}
