//! What the peers vote on, and how each correct peer decides for itself whether a proposed
//! value is valid (NODE-2 … NODE-5 in `docs/PROTOCOL.md`).
//!
//! A reading height decides a [`ReadingValue`]: a batch of signed interpretations ([`Offer`]s)
//! of at least n − f distinct peers and the verdict the proposer says they tally to. Validity
//! is [`evaluate`] run again by every peer in its own sandbox: the batch's references on one
//! seeded probe pool, classes by behaviour, the trusted tally's rule with m = f. A component
//! height decides a [`Content::Component`]: its source, valid when it refines the decided
//! reading ([`component_problem`]). The BFT core votes on the 32-byte digest of a [`Content`]
//! ([`Content::digest`]); the content travels with the proposal.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use synod_core::facts::{PromptFacts, with_prompt_imports};
use synod_core::pipeline::{
    DEFAULT_MODULE, REFERENCE_MODULE, contract_calls, probe_calls, program_check,
    refinement_problem, resolve_qualified_names,
};
use synod_core::probes::{ProbeLimits, pool};
use synod_core::protocols::Value;
use synod_core::{
    Call, CheckReport, CheckRequest, ComponentSpec, ContractExample, Expectation, FunctionSig,
    Interpretation, Outcome, Program, Spec, tally,
};
use synod_exec::Sandbox;
use synod_store::{BuildKey, PublicKey};

/// Most calls in a decided contract.
pub const CONTRACT_MAX: usize = 128;
/// Largest reference or component source in an offer or a value.
pub const SOURCE_BYTES_MAX: usize = 256 * 1024;

/// One peer's signed interpretation for one reading height.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Offer {
    /// The height it is offered for.
    pub height: u64,
    /// The peer.
    pub from: u16,
    /// The reading, as the peer's agent wrote it (parsed).
    pub reading: Interpretation,
    /// ed25519 over [`offer_bytes`], hex.
    pub signature: String,
}

/// What an offer's signature covers: a domain tag, the chain, the height, the sender and the
/// reading's JSON.
pub fn offer_bytes(chain: &[u8; 32], height: u64, from: u16, reading: &Interpretation) -> Vec<u8> {
    let mut b = b"synod-offer-v1".to_vec();
    b.extend_from_slice(chain);
    b.extend_from_slice(&height.to_le_bytes());
    b.extend_from_slice(&from.to_le_bytes());
    b.extend_from_slice(blake3::hash(&json(reading)).as_bytes());
    b
}

fn json<T: Serialize>(t: &T) -> Vec<u8> {
    serde_json::to_vec(t).expect("plain data encodes")
}

impl Offer {
    /// Signs `reading` as peer `from` for `height`.
    pub fn sign(
        key: &BuildKey,
        chain: &[u8; 32],
        height: u64,
        from: u16,
        reading: Interpretation,
    ) -> Offer {
        let signature = key.sign(&offer_bytes(chain, height, from, &reading));
        Offer {
            height,
            from,
            reading,
            signature,
        }
    }

    /// Whether the signature is `from`'s (keys by peer id).
    pub fn verify(&self, chain: &[u8; 32], keys: &[String]) -> bool {
        keys.get(usize::from(self.from)).is_some_and(|k| {
            PublicKey(k.clone())
                .verify(
                    &offer_bytes(chain, self.height, self.from, &self.reading),
                    &self.signature,
                )
                .is_ok()
        })
    }
}

/// What a batch tallies to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BatchVerdict {
    /// The largest class is decided; its lowest peer's reading is the decided reference.
    Decide {
        /// Peers in the decided class.
        members: Vec<u16>,
        /// Whose reading is decided.
        representative: u16,
    },
    /// Two classes each hold more than f readings: the prompt is ambiguous.
    Ambiguous {
        /// The classes (peer ids), largest first.
        classes: Vec<Vec<u16>>,
    },
    /// Neither: another reading height, with fresh samples.
    NotYet {
        /// The classes (peer ids), largest first.
        classes: Vec<Vec<u16>>,
    },
}

/// A reading height's value.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadingValue {
    /// The offers, by peer id, distinct, at least n − f.
    pub batch: Vec<Offer>,
    /// What they tally to.
    pub verdict: BatchVerdict,
    /// blake3 of the probe pool (JSON): peers that disagree on it disagree on validity.
    pub pool_digest: String,
    /// blake3 of each offer's behaviour (or why it has none), by peer.
    pub behaviours: BTreeMap<u16, String>,
}

/// What a height decides.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Content {
    /// The reading.
    Reading(ReadingValue),
    /// One component of the decided reading.
    Component {
        /// Its index in the decided spec.
        index: u32,
        /// Its module name.
        name: String,
        /// Its source.
        source: String,
    },
}

impl Content {
    /// The value the BFT core votes on: blake3 of the content's JSON.
    pub fn digest(&self) -> Value {
        Value(blake3::hash(&json(self)).as_bytes().to_vec())
    }
}

/// The hex of a value's bytes.
pub fn hex(v: &Value) -> String {
    synod_store::hex_encode(&v.0)
}

/// The sandbox with a cache of reports by request (a batch's references are checked again
/// for each proposal that holds them).
pub struct Checker {
    sandbox: Sandbox,
    cache: BTreeMap<String, CheckReport>,
    /// Sandbox runs made (not served from the cache).
    pub runs: u64,
}

impl Checker {
    /// A checker over `sandbox`.
    pub fn new(sandbox: Sandbox) -> Checker {
        Checker {
            sandbox,
            cache: BTreeMap::new(),
            runs: 0,
        }
    }

    /// The sandbox's python version.
    pub fn python_version(&self) -> &str {
        self.sandbox.python_version()
    }

    /// The sandbox.
    pub fn sandbox(&self) -> &Sandbox {
        &self.sandbox
    }

    /// Runs `request` (or returns the cached report). A sandbox that cannot run at all is an
    /// error: no verdict is made up.
    pub fn run(&mut self, request: &CheckRequest) -> Result<CheckReport, String> {
        let key = blake3::hash(&json(request)).to_hex().to_string();
        if let Some(r) = self.cache.get(&key) {
            return Ok(r.clone());
        }
        let report = self.sandbox.run(request).map_err(|e| e.to_string())?;
        self.runs += 1;
        if self.cache.len() < 4096 {
            self.cache.insert(key, report.clone());
        }
        Ok(report)
    }
}

/// How one offer voted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Vote {
    /// Its behaviour on the pool, and the public functions its reference defines.
    Behaviour(Vec<Outcome>, Vec<FunctionSig>),
    /// No vote: a call did not finish (a timeout is no outcome: it depends on the machine).
    NoVote(String),
    /// A faulty reading: it does not load, attempts something forbidden, or breaks what the
    /// prompt states.
    Faulty(String),
}

impl Vote {
    fn digest(&self) -> String {
        let text = match self {
            Vote::Behaviour(b, _) => format!("behaviour {}", String::from_utf8_lossy(&json(b))),
            Vote::NoVote(r) => format!("no vote: {r}"),
            Vote::Faulty(r) => format!("faulty: {r}"),
        };
        blake3::hash(text.as_bytes()).to_hex()[..32].to_string()
    }
}

/// The decided reading, as every later height needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decided {
    /// The decided spec: the representative's interface, the decided contract.
    pub spec: Spec,
    /// The decided reference (with the prompt's imports).
    pub reference: String,
    /// The probe pool.
    pub pool: Vec<Call>,
    /// The decided reference's outcomes on the pool.
    pub expected: Vec<Outcome>,
    /// Who offered it.
    pub representative: u16,
}

/// A batch's evaluation.
#[derive(Clone, Debug)]
pub struct Evaluation {
    /// The value it makes (batch, verdict, digests).
    pub value: ReadingValue,
    /// Each offer's vote.
    pub votes: BTreeMap<u16, Vote>,
    /// The decided reading, when the verdict decides.
    pub decided: Option<Decided>,
}

/// The seed of a height's probe pool.
fn pool_seed(chain: &[u8; 32], height: u64) -> u64 {
    let mut h = blake3::Hasher::new();
    h.update(b"synod-node-pool");
    h.update(chain);
    h.update(&height.to_le_bytes());
    let d = h.finalize();
    u64::from_le_bytes(d.as_bytes()[..8].try_into().expect("8 bytes"))
}

fn reference_of(o: &Offer, facts: &PromptFacts) -> String {
    with_prompt_imports(&o.reading.reference, &facts.imports)
}

/// Tallies `batch` (sorted, distinct peers, signatures already checked) at `height` with m = f:
/// deterministic in the batch, the prompt and the python the peer list pins.
pub fn evaluate(
    batch: Vec<Offer>,
    f: usize,
    facts: &PromptFacts,
    chain: &[u8; 32],
    height: u64,
    checker: &mut Checker,
) -> Result<Evaluation, String> {
    let mut own: Vec<Call> = facts.examples.iter().map(|e| e.call.clone()).collect();
    let mut readings: Vec<Interpretation> = Vec::new();
    for o in &batch {
        let mut r = o.reading.clone();
        resolve_qualified_names(&mut r);
        own.extend(r.spec.contract.iter().map(|c| c.call.clone()));
        own.extend(r.probes.iter().cloned());
        readings.push(r);
    }
    let calls = pool(&own, pool_seed(chain, height), &ProbeLimits::default());
    let pool_digest = blake3::hash(&json(&calls)).to_hex().to_string();
    let mut votes = BTreeMap::new();
    for o in &batch {
        let vote = vote_of(o, facts, &calls, checker)?;
        votes.insert(o.from, vote);
    }
    // Classes by behaviour; largest first, ties by lowest peer.
    let mut classes: BTreeMap<&Vec<Outcome>, Vec<u16>> = BTreeMap::new();
    for (from, v) in &votes {
        if let Vote::Behaviour(b, _) = v {
            classes.entry(b).or_default().push(*from);
        }
    }
    let mut classes: Vec<Vec<u16>> = classes.into_values().collect();
    classes.sort_by(|a, b| b.len().cmp(&a.len()).then(a[0].cmp(&b[0])));
    let sizes: Vec<usize> = classes.iter().map(Vec::len).collect();
    let verdict = match tally::rule(batch.len(), f, &sizes) {
        tally::Verdict::Decide => BatchVerdict::Decide {
            members: classes[0].clone(),
            representative: classes[0][0],
        },
        tally::Verdict::Ambiguous(big) => BatchVerdict::Ambiguous {
            classes: big.iter().map(|i| classes[*i].clone()).collect(),
        },
        tally::Verdict::NotYet => BatchVerdict::NotYet {
            classes: classes.clone(),
        },
    };
    let decided = match &verdict {
        BatchVerdict::Decide {
            members,
            representative,
        } => Some(decide(
            &batch,
            &readings,
            &votes,
            members,
            *representative,
            facts,
            &calls,
        )),
        _ => None,
    };
    let behaviours = votes.iter().map(|(k, v)| (*k, v.digest())).collect();
    Ok(Evaluation {
        value: ReadingValue {
            batch,
            verdict,
            pool_digest,
            behaviours,
        },
        votes,
        decided,
    })
}

fn vote_of(
    o: &Offer,
    facts: &PromptFacts,
    calls: &[Call],
    checker: &mut Checker,
) -> Result<Vote, String> {
    if o.reading.reference.len() > SOURCE_BYTES_MAX {
        return Ok(Vote::Faulty("reference over 256 KiB".into()));
    }
    let function_modules = calls
        .iter()
        .map(|c| (c.function.clone(), REFERENCE_MODULE.to_string()))
        .chain(
            facts
                .examples
                .iter()
                .map(|e| (e.call.function.clone(), REFERENCE_MODULE.to_string())),
        )
        .collect();
    let mut checks = contract_calls(&facts.examples);
    checks.extend(probe_calls(calls));
    let request = CheckRequest {
        program: Program::single(REFERENCE_MODULE, &reference_of(o, facts)),
        function_modules,
        interface: Vec::new(),
        calls: checks,
    };
    let report = checker.run(&request)?;
    if let Some(v) = report.violations.first() {
        return Ok(Vote::Faulty(format!("attempts {v}")));
    }
    if let Some(e) = &report.load_error {
        return Ok(Vote::Faulty(format!("does not load: {e}")));
    }
    let functions: Vec<FunctionSig> = report
        .functions
        .iter()
        .filter(|f| f.module == REFERENCE_MODULE)
        .map(|f| FunctionSig {
            name: f.name.clone(),
            params: f.params.clone(),
            doc: String::new(),
        })
        .collect();
    if functions.is_empty() {
        return Ok(Vote::Faulty("defines no public function".into()));
    }
    if let Some(why) = synod_core::facts::bodiless_problem(&o.reading.reference, &facts.functions) {
        return Ok(Vote::Faulty(why));
    }
    if let Some(missing) = facts
        .functions
        .iter()
        .find(|f| !functions.iter().any(|g| g.name == f.name))
    {
        return Ok(Vote::Faulty(format!(
            "does not define {}, which the prompt names",
            missing.name
        )));
    }
    let k = facts.examples.len();
    for (i, e) in facts.examples.iter().enumerate() {
        if report.met.get(i).copied().flatten() != Some(true) {
            return Ok(Vote::Faulty(format!(
                "breaks the prompt's example {} {}",
                e.call, e.expect
            )));
        }
    }
    let outcomes: Vec<Outcome> = report.outcomes.iter().skip(k).cloned().collect();
    if outcomes.len() != calls.len() || outcomes.contains(&Outcome::Timeout) {
        return Ok(Vote::NoVote("a call did not finish".into()));
    }
    Ok(Vote::Behaviour(outcomes, functions))
}

fn decide(
    batch: &[Offer],
    readings: &[Interpretation],
    votes: &BTreeMap<u16, Vote>,
    members: &[u16],
    representative: u16,
    facts: &PromptFacts,
    calls: &[Call],
) -> Decided {
    let at = batch
        .iter()
        .position(|o| o.from == representative)
        .expect("the representative is in the batch");
    let reading = &readings[at];
    let (expected, functions) = match &votes[&representative] {
        Vote::Behaviour(b, f) => (b.clone(), f.clone()),
        _ => unreachable!("a decided class holds behaviours only"),
    };
    let mut components = reading.spec.components.clone();
    let from_code = components.iter().all(|c| c.functions.is_empty());
    if from_code || components.len() <= 1 {
        let name = facts
            .module
            .clone()
            .or_else(|| components.first().map(|c| c.name.clone()))
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| DEFAULT_MODULE.to_string());
        components = vec![ComponentSpec { name, functions }];
    }
    // The contract: the prompt's examples, then the decided reference's outcomes on the
    // class's own example calls (PL-17), timeouts left out.
    let mut contract: Vec<ContractExample> = facts.examples.clone();
    let stated: std::collections::BTreeSet<Call> = batch
        .iter()
        .zip(readings)
        .filter(|(o, _)| members.contains(&o.from))
        .flat_map(|(_, r)| r.spec.contract.iter().map(|c| c.call.clone()))
        .collect();
    for (call, outcome) in calls.iter().zip(&expected) {
        if contract.len() >= CONTRACT_MAX {
            break;
        }
        if stated.contains(call) && *outcome != Outcome::Timeout {
            contract.push(ContractExample {
                call: call.clone(),
                expect: Expectation::Same(outcome.clone()),
            });
        }
    }
    Decided {
        spec: Spec {
            summary: reading.spec.summary.clone(),
            components,
            contract,
        },
        reference: with_prompt_imports(&reading.reference, &facts.imports),
        pool: calls.to_vec(),
        expected,
        representative,
    }
}

/// A component candidate's check: the candidate for component `index`, the decided reference
/// behind every other component (the pipeline's own check, PL-21).
pub fn component_request(d: &Decided, index: usize, source: &str) -> CheckRequest {
    synod_core::pipeline::component_request(&d.spec, &d.reference, &d.pool, index, source)
}

/// Why a candidate does not refine the decided reading, or `None` when it does.
pub fn component_problem(
    d: &Decided,
    index: usize,
    name: &str,
    source: &str,
    checker: &mut Checker,
) -> Result<Option<String>, String> {
    let Some(c) = d.spec.components.get(index) else {
        return Ok(Some(format!(
            "the decided reading has no component {index}"
        )));
    };
    if c.name != name {
        return Ok(Some(format!("component {index} is {}, not {name}", c.name)));
    }
    if source.len() > SOURCE_BYTES_MAX {
        return Ok(Some("source over 256 KiB".into()));
    }
    let report = checker.run(&component_request(d, index, source))?;
    Ok(
        refinement_problem(&report, &d.spec.contract, &d.pool, &d.expected, "component")
            .map(|p| p.detail),
    )
}

/// Why the assembled program does not refine the decided reading, or `None` when it does.
pub fn program_problem(
    d: &Decided,
    program: &Program,
    checker: &mut Checker,
) -> Result<Option<String>, String> {
    let report = checker.run(&program_check(&d.spec, program, &d.pool))?;
    Ok(
        refinement_problem(&report, &d.spec.contract, &d.pool, &d.expected, "program")
            .map(|p| p.detail),
    )
}
