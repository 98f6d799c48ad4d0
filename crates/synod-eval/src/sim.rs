//! Simulated agents over real tasks.
//!
//! Each agent gets a [`Plan`] per task, drawn from the seed: correct (the reference rewritten
//! without changing behaviour), Dunning-Kruger (a mutant that fails a hidden test, claimed as
//! correct: its contract states the example's expected result), crash, stall past the
//! deadline, garbage, or hostile code (tries to read, connect and spawn, then returns the
//! example's answer for every input). An agent is faulty iff its uniform draw is below p, so
//! the same seed gives nested fault sets as p grows. With probability ρ a faulty agent repeats
//! the first faulty agent's mistake exactly (correlated faults); otherwise it draws its own
//! kind, and Dunning-Kruger agents take distinct mutants while there are any.

use crate::EvalError;
use crate::prepare::Prepared;
use synod_core::rng::SeededRng;
use synod_core::{Call, ComponentSpec, ContractExample, Expectation, FunctionSig, Spec, Value};

/// How an agent fails.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum FaultKind {
    /// Returns a mutant that fails a hidden test and claims it is right.
    DunningKruger,
    /// The backend fails.
    Crash,
    /// Never answers within the deadline.
    Stall,
    /// Answers text that does not parse.
    Garbage,
    /// Returns code that attacks the sandbox and hard-codes the example.
    Hostile,
}

impl FaultKind {
    fn parse(s: &str) -> Option<FaultKind> {
        Some(match s {
            "dk" | "dunning-kruger" => FaultKind::DunningKruger,
            "crash" => FaultKind::Crash,
            "stall" => FaultKind::Stall,
            "garbage" => FaultKind::Garbage,
            "hostile" => FaultKind::Hostile,
            _ => return None,
        })
    }
}

/// The simulated agents of one grid cell.
#[derive(Clone, Debug, PartialEq)]
pub struct SimSpec {
    /// Agents.
    pub n: usize,
    /// Fault budget.
    pub m: usize,
    /// Probability that an agent is faulty on a task.
    pub p: f64,
    /// Probability that a faulty agent repeats the first faulty agent's mistake.
    pub rho: f64,
    /// Fault kinds and weights.
    pub mix: Vec<(FaultKind, f64)>,
    /// HumanEvalComm: probability that a correct agent takes the other reading.
    pub split: f64,
}

impl Default for SimSpec {
    fn default() -> SimSpec {
        SimSpec {
            n: 4,
            m: 1,
            p: 0.2,
            rho: 0.0,
            mix: vec![(FaultKind::DunningKruger, 1.0)],
            split: 0.5,
        }
    }
}

impl SimSpec {
    /// Parses `sim:n=4,m=1,p=0.2,rho=0,mix=dk:0.6+crash:0.2+hostile:0.2,split=0.5`.
    pub fn parse(spec: &str) -> Result<SimSpec, EvalError> {
        let bad = |why: String| EvalError::Agents(format!("{spec:?}: {why}"));
        let body = spec
            .strip_prefix("sim:")
            .or_else(|| (spec == "sim").then_some(""))
            .ok_or_else(|| bad("simulated agents are written sim:n=..,m=..,p=..,rho=..".into()))?;
        let mut s = SimSpec::default();
        let mut m_given = false;
        for part in body.split(',').filter(|p| !p.is_empty()) {
            let (k, v) = part
                .split_once('=')
                .ok_or_else(|| bad(format!("{part:?} is not key=value")))?;
            let num = |v: &str| {
                v.parse::<f64>()
                    .map_err(|_| bad(format!("{k}={v} is not a number")))
            };
            match k {
                "n" => s.n = num(v)? as usize,
                "m" => {
                    s.m = num(v)? as usize;
                    m_given = true
                }
                "p" => s.p = num(v)?,
                "rho" => s.rho = num(v)?,
                "split" => s.split = num(v)?,
                "mix" => {
                    s.mix = Vec::new();
                    for item in v.split('+') {
                        let (kind, w) = item.split_once(':').unwrap_or((item, "1"));
                        let kind = FaultKind::parse(kind).ok_or_else(|| {
                            bad(format!(
                                "unknown fault kind {kind:?} (dk, crash, stall, garbage, hostile)"
                            ))
                        })?;
                        s.mix.push((kind, num(w)?));
                    }
                }
                other => return Err(bad(format!("unknown key {other:?}"))),
            }
        }
        if !m_given {
            s.m = synod_core::Tally::default_budget(s.n);
        }
        if s.n == 0 || s.n > 32 {
            return Err(bad("n must be 1..=32".into()));
        }
        if !(0.0..=1.0).contains(&s.p) || !(0.0..=1.0).contains(&s.rho) {
            return Err(bad("p and rho are probabilities".into()));
        }
        if s.mix.is_empty() || s.mix.iter().map(|x| x.1).sum::<f64>() <= 0.0 {
            return Err(bad("the mix needs a positive weight".into()));
        }
        synod_core::Tally::new(s.n, s.m).map_err(|e| bad(e.to_string()))?;
        Ok(s)
    }

    /// Short label for tables: `n=4 m=1 p=0.2 rho=0`.
    pub fn label(&self) -> String {
        format!("n={} m={} p={} rho={}", self.n, self.m, self.p, self.rho)
    }
}

/// What one agent does on one task.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Plan {
    /// Correct; `alt` when it took the other reading of an ambiguous prompt.
    Correct {
        /// Which rewrite it writes first.
        rewrite: usize,
        /// Took the other reading (HumanEvalComm).
        alt: bool,
    },
    /// A fault.
    Faulty(FaultKind, usize),
}

/// Draws every agent's plan for a task (sample 0: the first time each agent is asked).
pub fn plans(
    spec: &SimSpec,
    seed: u64,
    task: &str,
    prepared: &Prepared,
    ambiguous: bool,
) -> Vec<Plan> {
    plans_at(spec, seed, task, prepared, ambiguous, 0)
}

/// Draws every agent's plan for sample `sample` of a task. A resample asks afresh: each agent
/// is faulty again with probability p, the ρ correlation is drawn again within the sample, and
/// Dunning-Kruger agents start from a mutant drawn for the sample; all of it deterministic in
/// (seed, task, agent, sample). Sample 0 is what [`plans`] returns.
pub fn plans_at(
    spec: &SimSpec,
    seed: u64,
    task: &str,
    prepared: &Prepared,
    ambiguous: bool,
    sample: u32,
) -> Vec<Plan> {
    let label = if sample == 0 {
        format!("plans/{task}")
    } else {
        format!("plans/{task}/s{sample}")
    };
    let mut rng = SeededRng::derive(seed, &label);
    // Draw everything in a fixed order, whatever p and ρ are, so cells nest.
    let draws: Vec<[u64; 5]> = (0..spec.n)
        .map(|_| std::array::from_fn(|_| rng.next_u64()))
        .collect();
    let unit = |x: u64| (x >> 11) as f64 / (1u64 << 53) as f64;
    let total: f64 = spec.mix.iter().map(|x| x.1).sum();
    let kind_of = |u: f64| {
        let mut acc = 0.0;
        for (k, w) in &spec.mix {
            acc += w / total;
            if u < acc {
                return *k;
            }
        }
        spec.mix.last().expect("non-empty mix").0
    };
    let mutants = prepared.mutants.len().max(1);
    let mut first_fault: Option<Plan> = None;
    // Sample 0 hands out mutants from the first; a resample from one drawn for it (drawn
    // after the agents' draws, so sample 0 is unchanged by this).
    let mut next_mutant = if sample == 0 {
        0
    } else {
        (rng.next_u64() % mutants as u64) as usize
    };
    let mut out = Vec::new();
    for d in &draws {
        if unit(d[0]) >= spec.p {
            out.push(Plan::Correct {
                rewrite: (d[1] % prepared.rewrites.len().max(1) as u64) as usize,
                alt: ambiguous && unit(d[4]) < spec.split,
            });
            continue;
        }
        let plan = match first_fault {
            Some(f) if unit(d[2]) < spec.rho => f,
            _ => {
                let kind = kind_of(unit(d[3]));
                let idx = next_mutant % mutants;
                if kind == FaultKind::DunningKruger {
                    next_mutant += 1;
                }
                Plan::Faulty(kind, idx)
            }
        };
        first_fault.get_or_insert(plan);
        out.push(plan);
    }
    out
}

/// The task as agents see it, and the programs behind each plan.
pub struct SimTask<'a> {
    /// Preparation of the task.
    pub prepared: &'a Prepared,
    /// The reference (a plan with no rewrite falls back to it).
    pub reference: &'a str,
    /// The example call.
    pub example: Call,
    /// Probes every agent proposes: type-directed variants of the example's inputs.
    pub probes: Vec<Call>,
    /// The other reading's program, for injected ambiguity.
    pub alt: Option<String>,
}

impl<'a> SimTask<'a> {
    /// Builds the agent-visible task from a preparation.
    pub fn new(prepared: &'a Prepared, reference: &'a str, seed: u64, task: &str) -> SimTask<'a> {
        let example = Call {
            function: prepared.entry.clone(),
            args: prepared.example_args.clone(),
        };
        SimTask {
            prepared,
            reference,
            probes: agent_probes(&example, &prepared.probe_steps, seed, task),
            example,
            alt: None,
        }
    }

    /// The component spec every agent proposes.
    pub fn spec(&self, summary: &str) -> Spec {
        Spec {
            summary: summary.chars().take(300).collect(),
            components: vec![ComponentSpec {
                name: "solution".into(),
                functions: vec![FunctionSig {
                    name: self.prepared.entry.clone(),
                    params: self.prepared.params.clone(),
                    doc: String::new(),
                }],
            }],
            contract: self
                .prepared
                .example_returns
                .iter()
                .map(|v| ContractExample {
                    call: self.example.clone(),
                    expect: Expectation::Returns(v.clone()),
                })
                .collect(),
        }
    }

    /// The program an agent with `plan` writes (`attempt` 0 for its reading, 1 for an
    /// implementation); `None` when it writes no program.
    pub fn program(&self, plan: Plan, attempt: usize) -> Option<String> {
        let rw = &self.prepared.rewrites;
        match plan {
            Plan::Correct { alt: true, .. } if self.alt.is_some() => self.alt.clone(),
            Plan::Correct { rewrite, .. } => Some(if rw.is_empty() {
                self.reference.to_string()
            } else {
                rw[(rewrite + attempt) % rw.len()].clone()
            }),
            Plan::Faulty(FaultKind::DunningKruger, i) => {
                self.prepared.mutants.get(i).map(|m| m.src.clone())
            }
            Plan::Faulty(FaultKind::Hostile, _) => Some(self.hostile()),
            Plan::Faulty(_, _) => None,
        }
    }

    fn hostile(&self) -> String {
        let answer = self
            .prepared
            .example_returns
            .as_ref()
            .map(Value::python)
            .unwrap_or_else(|| "None".into());
        format!(
            "import os, socket, subprocess\n\
             try:\n    _loot = open('/etc/passwd').read()\n    open('/tmp/synod-eval-owned', 'w').write(_loot)\nexcept Exception:\n    pass\n\
             try:\n    socket.create_connection(('10.0.0.1', 80), timeout=0.2)\nexcept Exception:\n    pass\n\
             try:\n    subprocess.run(['sh', '-c', 'kill -9 -1'], timeout=1)\nexcept Exception:\n    pass\n\n\
             def {}({}):\n    return {answer}\n",
            self.prepared.entry,
            self.prepared.params.join(", "),
        )
    }
}

/// Probes per task: type-directed variants of the example's inputs, seeded by the task (never
/// drawn from hidden tests). Eight for a function; for a ClassEval script, see
/// [`script_probes`] (`extra` holds its steps for the methods the example does not call).
pub fn agent_probes(example: &Call, extra: &[Value], seed: u64, task: &str) -> Vec<Call> {
    let mut rng = SeededRng::derive(seed, &format!("agent-probes/{task}"));
    if example.function == crate::suite::CLASSEVAL_ENTRY
        && let [Value::List(script)] = example.args.as_slice()
        && let Some(steps) = script_steps(script)
    {
        let extra = script_steps(extra).unwrap_or_default();
        return script_probes(&steps, &extra, &mut rng)
            .into_iter()
            .map(|s| Call {
                function: example.function.clone(),
                args: vec![s],
            })
            .collect();
    }
    let mut out: Vec<Call> = Vec::new();
    for (i, arg) in example.args.iter().enumerate() {
        for v in synod_core::probes::variants_of(arg, &mut rng, 4, 2) {
            let mut c = example.clone();
            c.args[i] = v;
            if !out.contains(&c) {
                out.push(c);
            }
        }
    }
    out.truncate(8);
    out
}

/// Most probes for one ClassEval task.
pub const SCRIPT_PROBES_MAX: usize = 64;

/// Most example arguments tried in place of one argument of a probe step.
const SAME_KIND_MAX: usize = 6;

/// A `run(script)` step: a method name and its arguments.
type Step = (String, Vec<Value>);

/// The steps of a script, if every element is a `[name, [args…]]` pair.
fn script_steps(script: &[Value]) -> Option<Vec<Step>> {
    script
        .iter()
        .map(|step| match step {
            Value::List(pair) | Value::Tuple(pair) => match pair.as_slice() {
                [Value::Str(name), Value::List(args) | Value::Tuple(args)] => {
                    Some((name.clone(), args.clone()))
                }
                _ => None,
            },
            _ => None,
        })
        .collect()
}

fn script_value(steps: &[Step]) -> Value {
    Value::List(
        steps
            .iter()
            .map(|(name, args)| {
                Value::List(vec![Value::Str(name.clone()), Value::List(args.clone())])
            })
            .collect(),
    )
}

/// Probes of a class through its `run(script)` driver that reach each method on its own and
/// in sequence: method names are kept (a varied name only raises `AttributeError` for every
/// program) and what varies is what reaches a method. `steps` is the example script; `extra`
/// holds one step per method the example does not call (after a leading `__init__` step when
/// the constructor needs arguments). The probe walk is the example followed by the extra
/// steps on the same object, so that a method meets the state the others leave. In order of
/// use, up to [`SCRIPT_PROBES_MAX`]: the walk; each method step alone on a fresh object (made
/// as in the walk); the walk with its method steps reversed; each step (constructors too) with
/// one argument replaced by an example argument of the same type or by a type-directed variant, alone (a constructor with its object's method
/// steps) and in the walk (all of them for the steps the example does not show, then round-robin over
/// the example's steps); and each method step of the walk twice
/// in a row.
pub fn script_probes(steps: &[Step], extra: &[Step], rng: &mut SeededRng) -> Vec<Value> {
    let mut walk: Vec<Step> = steps.to_vec();
    for step in extra {
        if step.0 == "__init__" {
            if !walk.iter().any(|(n, _)| n == "__init__") {
                walk.insert(0, step.clone());
            }
        } else {
            walk.push(step.clone());
        }
    }
    // (the object's maker, the step, its index in the walk)
    let targets: Vec<(Option<Step>, Step, usize)> = (0..walk.len())
        .filter(|&i| walk[i].0 != "__init__")
        .map(|i| {
            // The object a step acts on: made by the latest `__init__` step before it.
            let maker = walk[..i]
                .iter()
                .rev()
                .find(|(n, _)| n == "__init__")
                .cloned();
            (maker, walk[i].clone(), i)
        })
        .collect();
    let mut out: Vec<Value> = Vec::new();
    let push = |out: &mut Vec<Value>, s: Vec<Step>| {
        let v = script_value(&s);
        if out.len() < SCRIPT_PROBES_MAX && s != steps && !out.contains(&v) {
            out.push(v);
        }
    };
    let alone = |maker: &Option<Step>, step: Step| -> Vec<Step> {
        maker.iter().cloned().chain(std::iter::once(step)).collect()
    };
    push(&mut out, walk.clone());
    for (maker, step, _) in &targets {
        push(&mut out, alone(maker, step.clone()));
    }
    let methods: Vec<usize> = targets.iter().map(|t| t.2).collect();
    if methods.len() > 1 {
        let mut reversed = walk.clone();
        let order: Vec<Step> = methods.iter().rev().map(|&i| walk[i].clone()).collect();
        for (&i, step) in methods.iter().zip(order) {
            reversed[i] = step;
        }
        push(&mut out, reversed);
    }
    // Argument variants, one step at a time (constructors too), round-robin so every step
    // gets some. A varied method step also runs alone; a varied constructor step also runs
    // with the method steps of its own object.
    // Arguments the example passes, for the steps it does not show: a method that looks up
    // what another stored (`get_course_average('math')`) needs the example's own values.
    let mut example_args: Vec<&Value> = Vec::new();
    for v in steps.iter().flat_map(|(_, args)| args) {
        if !example_args.contains(&v) {
            example_args.push(v);
        }
    }
    let per_step: Vec<Vec<Step>> = walk
        .iter()
        .map(|(name, args)| {
            let mut mine = Vec::new();
            for (a, arg) in args.iter().enumerate() {
                let same_kind = example_args
                    .iter()
                    .filter(|v| std::mem::discriminant(**v) == std::mem::discriminant(arg))
                    .filter(|v| **v != arg)
                    .take(SAME_KIND_MAX)
                    .map(|v| (*v).clone());
                let varied = synod_core::probes::variants_of(arg, rng, 3, 2);
                for v in same_kind.chain(varied) {
                    let mut args2 = args.clone();
                    args2[a] = v;
                    mine.push((name.clone(), args2));
                }
            }
            mine
        })
        .collect();
    let vary = |out: &mut Vec<Value>, at: usize, step: &Step| {
        if step.0 == "__init__" {
            let own: Vec<Step> = std::iter::once(step.clone())
                .chain(
                    walk[at + 1..]
                        .iter()
                        .take_while(|(n, _)| n != "__init__")
                        .cloned(),
                )
                .collect();
            push(out, own);
        } else {
            let maker = walk[..at]
                .iter()
                .rev()
                .find(|(n, _)| n == "__init__")
                .cloned();
            push(out, alone(&maker, step.clone()));
        }
        let mut whole = walk.clone();
        whole[at] = step.clone();
        push(out, whole);
    };
    // The steps the example does not show (the walk's tail) have no other probes: all of
    // theirs first, then round-robin over the example's steps.
    let shown = walk.len() - extra.iter().filter(|(n, _)| n != "__init__").count();
    for (at, mine) in per_step.iter().enumerate().skip(shown) {
        for step in mine {
            vary(&mut out, at, step);
        }
    }
    let rounds = per_step.iter().map(Vec::len).max().unwrap_or(0);
    for r in 0..rounds {
        for (at, mine) in per_step.iter().enumerate().take(shown) {
            if let Some(step) = mine.get(r) {
                vary(&mut out, at, step);
            }
        }
    }
    for &i in &methods {
        let mut twice = walk.clone();
        twice.insert(i, walk[i].clone());
        push(&mut out, twice);
    }
    out
}

/// A rough token count for a simulated exchange: four characters a token.
pub fn tokens(text_len: usize) -> u64 {
    (text_len as u64).div_ceil(4)
}
