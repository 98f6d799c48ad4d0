//! One peer of `synod node`: the heights in sequence, the BFT core per height, offers,
//! validation off the main thread, the write-ahead log, the failure detector and the
//! certificate (NODE-1 … NODE-9 in `docs/PROTOCOL.md`).
//!
//! The main thread owns all protocol state and never blocks on a check or an agent: agent
//! calls run on one worker thread, sandbox checks on another, and both report back on the
//! network's event channel. Every message the core signs is appended to the log (fsync)
//! before it is sent (BFT-16); every offer this peer signs and every decision too. A peer
//! killed and started again with the same `--out` reads the log back: it keeps its offers (no
//! second, different interpretation for a height), its decided heights and, through
//! [`BftNode::restore`], its votes.

use crate::config::{NodeConfig, PeersFile, bound_refusal, resolve};
use crate::content::{
    BatchVerdict, Checker, Content, Decided, Evaluation, Offer, ReadingValue, component_problem,
    evaluate, hex, program_problem,
};
use crate::net::{Event, Net, NetControls, channel};
use crate::wire::{Frame, WireMessage};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, channel as unbounded};
use std::thread;
use std::time::{Duration, Instant};
use synod_agents::{Agent, AgentsFile, build_agents, reply};
use synod_core::facts::{PromptFacts, prompt_facts, with_prompt_imports};
use synod_core::pipeline::{REFERENCE_MODULE, Request, Role};
use synod_core::protocols::bft::{
    BftConfig, BftInput, BftNode, BftOutput, Payload, SignedMessage, Step, Timeout, VoteKind,
};
use synod_core::protocols::detector::{
    DetectorInput, DetectorOutput, EventuallyPerfect, EventuallyPerfectConfig, FailureDetector,
};
use synod_core::protocols::{NodeId, Round, Value};
use synod_core::{CheckRequest, Interpretation, Program, Prompt, Spec};
use synod_store::{BuildKey, Signed};

/// Format tag of a node certificate.
pub const CERTIFICATE_FORMAT: &str = "synod-node-certificate-v1";
/// Messages buffered for heights this peer has not reached.
const FUTURE_MAX: usize = 4096;
/// Proposed contents kept per round (the core keeps as many proposals per round and proposer,
/// BFT-13); a Byzantine proposer cannot fill the memory with more.
const CONTENTS_PER_ROUND_MAX: usize = synod_core::protocols::bft::MESSAGES_PER_SLOT_MAX;
/// Heartbeats, and the gossip of the own offer, every this many milliseconds.
const HEARTBEAT_MS: u64 = 200;

/// Test-only behaviour of a Byzantine peer (hidden flags; recorded in the certificate).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Byzantine {
    /// As the proposer of round 0 of height 0, sends one value (proposal, prevote,
    /// precommit) to the odd peers and another to the even ones; then falls silent.
    Equivocate,
    /// Also sends votes and offers signed with a key that is not the claimed sender's.
    Forge,
    /// Offers a wrong reading (its functions return None), proposes a verdict its batch does
    /// not tally to, and a component that does not refine.
    Wrong,
    /// Sends nothing at all.
    Silent,
}

impl Byzantine {
    /// Parses a mode name.
    pub fn parse(s: &str) -> Option<Byzantine> {
        Some(match s {
            "equivocate" => Byzantine::Equivocate,
            "forge" => Byzantine::Forge,
            "wrong" => Byzantine::Wrong,
            "silent" => Byzantine::Silent,
            _ => return None,
        })
    }
}

/// Test-only switches (hidden flags of `synod node`); any set one is in the certificate.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TestSwitches {
    /// Lower the n ≥ 3f + 1 guard.
    pub allow_small_n: bool,
    /// Misbehave.
    pub byzantine: Option<Byzantine>,
    /// Network controls.
    pub net: NetControls,
    /// Stop once this height is decided (the counterexample needs only the first).
    pub stop_after_height: Option<u64>,
}

impl TestSwitches {
    fn describe(&self) -> Vec<String> {
        let mut v = Vec::new();
        if self.allow_small_n {
            v.push("allow-small-n".to_string());
        }
        if let Some(b) = self.byzantine {
            v.push(format!("byzantine={b:?}").to_lowercase());
        }
        for (p, ms) in &self.net.delays_ms {
            v.push(format!("frames to peer {p} held until {ms} ms"));
        }
        if let Some(s) = self.net.jitter_seed {
            v.push(format!("jitter seed {s}"));
        }
        if let Some((a, b)) = self.net.partition_ms {
            v.push(format!("partition {a}..{b} ms"));
        }
        if let Some(h) = self.stop_after_height {
            v.push(format!("stop after height {h}"));
        }
        v
    }
}

/// Everything a peer run needs.
pub struct NodeOptions {
    /// Its settings.
    pub config: NodeConfig,
    /// The peer list.
    pub peers: PeersFile,
    /// The prompt.
    pub prompt: String,
    /// Its output directory.
    pub out: PathBuf,
    /// Test switches.
    pub test: TestSwitches,
    /// Milliseconds to keep answering peers that are behind after finishing.
    pub linger_ms: u64,
}

/// How a peer run ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NodeOutcome {
    /// Every height decided and the program written.
    Built {
        /// Digests of the decided heights, in order (hex).
        digests: Vec<String>,
    },
    /// The peers decided that the prompt is ambiguous; `question.json` holds the readings.
    Ambiguous {
        /// Digests of the decided heights (hex).
        digests: Vec<String>,
    },
    /// Stopped after a height (test switch).
    Stopped {
        /// Digests of the decided heights (hex).
        digests: Vec<String>,
    },
    /// No reading was decided, or the program failed its integration check.
    Failed {
        /// Why.
        reason: String,
    },
}

/// Why a peer could not run at all.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct NodeError(pub String);

fn err(s: impl Into<String>) -> NodeError {
    NodeError(s.into())
}

/// The chain id: blake3 over the peer list's canonical text and the prompt.
pub fn chain_id(peers: &PeersFile, prompt: &str) -> [u8; 32] {
    let mut h = blake3::Hasher::new();
    h.update(b"synod-node-chain-v1\n");
    h.update(peers.canonical().as_bytes());
    h.update(&(prompt.len() as u64).to_le_bytes());
    h.update(prompt.as_bytes());
    *h.finalize().as_bytes()
}

/// One decided height, as the log and the certificate keep it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DecidedHeight {
    /// Height.
    pub height: u64,
    /// Round it was decided in.
    pub round: u32,
    /// The digest (hex).
    pub value: String,
    /// What was decided.
    pub content: Content,
    /// The proposal and the precommits for the value (at least n − f).
    pub proof: Vec<WireMessage>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum WalRecord {
    Offer(Box<Offer>),
    Signed(WireMessage),
    Decided(Box<DecidedHeight>),
}

/// The write-ahead log: JSON lines, each appended and fsynced before what it records is acted
/// on. A torn last line (a kill mid-write) is ignored on reading.
struct Wal {
    file: File,
}

impl Wal {
    fn open(path: &Path) -> Result<(Wal, Vec<WalRecord>), NodeError> {
        let mut records = Vec::new();
        // Bytes of whole, parsed lines: a torn tail after them is cut off before appending,
        // so that what is appended next is not hidden behind it.
        let mut good = 0u64;
        if path.exists() {
            let f = File::open(path)
                .map_err(|e| err(format!("cannot read {}: {e}", path.display())))?;
            let mut reader = BufReader::new(f);
            let mut line = Vec::new();
            loop {
                line.clear();
                match reader.read_until(b'\n', &mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
                if line.last() != Some(&b'\n') {
                    break; // a torn last line
                }
                match serde_json::from_slice::<WalRecord>(&line) {
                    Ok(r) => records.push(r),
                    Err(_) => break, // a torn tail: everything before it stands
                }
                good += line.len() as u64;
            }
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| err(format!("cannot open {}: {e}", path.display())))?;
        file.set_len(good)
            .and_then(|()| file.sync_data())
            .map_err(|e| {
                err(format!(
                    "cannot cut the torn tail of {}: {e}",
                    path.display()
                ))
            })?;
        Ok((Wal { file }, records))
    }

    fn append(&mut self, r: &WalRecord) -> Result<(), NodeError> {
        let mut line = serde_json::to_vec(r).map_err(|e| err(e.to_string()))?;
        line.push(b'\n');
        self.file
            .write_all(&line)
            .and_then(|()| self.file.sync_data())
            .map_err(|e| err(format!("cannot write the node log: {e}")))
    }
}

enum Job {
    Offer {
        height: u64,
        sample: u32,
    },
    Implement {
        height: u64,
        index: usize,
        spec: Box<Spec>,
    },
    Evaluate {
        height: u64,
        batch: Vec<Offer>,
    },
    ValidateReading {
        height: u64,
        value: Value,
        content: Box<ReadingValue>,
    },
    ValidateComponent {
        height: u64,
        value: Value,
        decided: Box<Decided>,
        index: usize,
        name: String,
        source: String,
    },
    Integrate {
        decided: Box<Decided>,
        program: Program,
    },
}

/// Work done off the main thread.
#[derive(Debug)]
pub enum WorkResult {
    /// This peer's reading for a height.
    Offer {
        /// Height.
        height: u64,
        /// The reading, or why none.
        result: Result<Interpretation, String>,
    },
    /// This peer's candidate for a component.
    Candidate {
        /// Height.
        height: u64,
        /// The source, or why none.
        result: Result<String, String>,
    },
    /// The evaluation of this peer's own batch.
    Evaluated {
        /// Height.
        height: u64,
        /// The evaluation.
        result: Result<Box<Evaluation>, String>,
    },
    /// A verdict on a proposed value.
    Validated {
        /// Height.
        height: u64,
        /// The value.
        value: Value,
        /// The verdict, or a sandbox failure.
        result: Result<(bool, String, Option<Box<Evaluation>>), String>,
    },
    /// The integration check of the assembled program.
    Integrated {
        /// The problem, if any.
        result: Result<Option<String>, String>,
    },
}

struct Ctx {
    n: usize,
    f: usize,
    chain: [u8; 32],
    keys_hex: Vec<String>,
    facts: PromptFacts,
    prompt: String,
    python: String,
}

fn check_reading(
    ctx: &Ctx,
    height: u64,
    content: &ReadingValue,
    checker: &mut Checker,
) -> Result<(bool, String, Option<Box<Evaluation>>), String> {
    let b = &content.batch;
    let shape = if b.len() < ctx.n - ctx.f {
        Some(format!(
            "a batch of {} offers; n - f = {} are needed",
            b.len(),
            ctx.n - ctx.f
        ))
    } else if b.len() > ctx.n || !b.windows(2).all(|w| w[0].from < w[1].from) {
        Some("the batch's offers are not from distinct peers in order".to_string())
    } else {
        b.iter()
            .find(|o| o.height != height || !o.verify(&ctx.chain, &ctx.keys_hex))
            .map(|o| {
                format!(
                    "the offer of peer {} is not signed by it for height {height}",
                    o.from
                )
            })
    };
    if let Some(why) = shape {
        return Ok((false, why, None));
    }
    let e = evaluate(b.clone(), ctx.f, &ctx.facts, &ctx.chain, height, checker)?;
    if e.value == *content {
        Ok((true, String::new(), Some(Box::new(e))))
    } else {
        Ok((
            false,
            format!(
                "the batch tallies to {:?}, not to the proposed {:?}",
                e.value.verdict, content.verdict
            ),
            None,
        ))
    }
}

fn checker_worker(
    ctx: Arc<Ctx>,
    mut checker: Checker,
    jobs: Receiver<Job>,
    events: SyncSender<Event>,
) {
    for job in jobs {
        let result = match job {
            Job::Evaluate { height, batch } => WorkResult::Evaluated {
                height,
                result: evaluate(batch, ctx.f, &ctx.facts, &ctx.chain, height, &mut checker)
                    .map(Box::new),
            },
            Job::ValidateReading {
                height,
                value,
                content,
            } => WorkResult::Validated {
                height,
                value,
                result: check_reading(&ctx, height, &content, &mut checker),
            },
            Job::ValidateComponent {
                height,
                value,
                decided,
                index,
                name,
                source,
            } => WorkResult::Validated {
                height,
                value,
                result: component_problem(&decided, index, &name, &source, &mut checker).map(|p| {
                    match p {
                        None => (true, String::new(), None),
                        Some(why) => (false, why, None),
                    }
                }),
            },
            Job::Integrate { decided, program } => WorkResult::Integrated {
                result: program_problem(&decided, &program, &mut checker),
            },
            Job::Offer { .. } | Job::Implement { .. } => continue,
        };
        if events.send(Event::Work(Box::new(result))).is_err() {
            return;
        }
    }
}

fn agent_worker(
    ctx: Arc<Ctx>,
    agents: Vec<Box<dyn Agent>>,
    mut checker: Checker,
    jobs: Receiver<Job>,
    events: SyncSender<Event>,
) {
    for job in jobs {
        let result = match job {
            Job::Offer { height, sample } => WorkResult::Offer {
                height,
                result: ask_reading(&ctx, &agents, sample, &mut checker),
            },
            Job::Implement {
                height,
                index,
                spec,
            } => WorkResult::Candidate {
                height,
                result: ask_component(&ctx, &agents, &spec, index),
            },
            _ => continue,
        };
        if events.send(Event::Work(Box::new(result))).is_err() {
            return;
        }
    }
}

/// A peer's one reading: its agents in order, the first whose reply parses and whose reference
/// loads in the sandbox and defines a public function.
fn ask_reading(
    ctx: &Ctx,
    agents: &[Box<dyn Agent>],
    sample: u32,
    checker: &mut Checker,
) -> Result<Interpretation, String> {
    let mut why = Vec::new();
    for a in agents {
        let request = Request {
            role: Role::Interpret,
            prompt: Prompt::new(ctx.prompt.clone()),
            round: 0,
            sample,
            spec: None,
            component: None,
            programs: Vec::new(),
            repair: None,
        };
        let text = match a.call(&request, &|| {}) {
            Ok(r) => r.text,
            Err(e) => {
                why.push(format!("{}: {e}", a.name()));
                continue;
            }
        };
        let reading = match reply::parse_interpretation(&text) {
            Ok(r) => r,
            Err(e) => {
                why.push(format!("{}: {e}", a.name()));
                continue;
            }
        };
        let load = CheckRequest {
            program: Program::single(
                REFERENCE_MODULE,
                &with_prompt_imports(&reading.reference, &ctx.facts.imports),
            ),
            function_modules: BTreeMap::new(),
            interface: Vec::new(),
            calls: Vec::new(),
        };
        let report = checker.run(&load)?;
        if let Some(e) = report.load_error.as_ref() {
            why.push(format!("{}: its reference does not load: {e}", a.name()));
        } else if let Some(v) = report.violations.first() {
            why.push(format!("{}: its reference attempts {v}", a.name()));
        } else if report.functions.is_empty() {
            why.push(format!(
                "{}: its reference defines no public function",
                a.name()
            ));
        } else if let Some(problem) =
            synod_core::facts::bodiless_problem(&reading.reference, &ctx.facts.functions)
        {
            why.push(format!("{}: {problem}", a.name()));
        } else {
            return Ok(reading);
        }
    }
    Err(format!(
        "no agent of this peer gave a usable reading: {}",
        why.join("; ")
    ))
}

fn ask_component(
    ctx: &Ctx,
    agents: &[Box<dyn Agent>],
    spec: &Spec,
    index: usize,
) -> Result<String, String> {
    let mut why = Vec::new();
    for a in agents {
        let request = Request {
            role: Role::Implement,
            prompt: Prompt::new(ctx.prompt.clone()),
            round: 0,
            sample: 0,
            spec: Some(spec.clone()),
            component: Some(spec.components[index].name.clone()),
            programs: Vec::new(),
            repair: None,
        };
        match a
            .call(&request, &|| {})
            .map_err(|e| e.to_string())
            .and_then(|r| reply::parse_implementation(&r.text))
        {
            Ok(code) => return Ok(code),
            Err(e) => why.push(format!("{}: {e}", a.name())),
        }
    }
    Err(format!(
        "no agent of this peer wrote the component: {}",
        why.join("; ")
    ))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Reading { attempt: u32 },
    Component { index: usize },
    Done,
}

/// A running peer.
struct Run {
    id: u16,
    ctx: Arc<Ctx>,
    key: BuildKey,
    config: NodeConfig,
    test: TestSwitches,
    out: PathBuf,
    bft_config: BftConfig,
    keys: Vec<ed25519_dalek::VerifyingKey>,
    start: Instant,
    net: Net,
    wal: Wal,
    checker_jobs: std::sync::mpsc::Sender<Job>,
    agent_jobs: std::sync::mpsc::Sender<Job>,
    height: u64,
    phase: Phase,
    decided: Vec<DecidedHeight>,
    decided_reading: Option<Decided>,
    components: Vec<(String, String)>,
    // current height
    offers: BTreeMap<u16, Offer>,
    own_offer_asked: bool,
    quorum_at: Option<Instant>,
    input_asked: bool,
    own_input: Option<Value>,
    bft: Option<BftNode>,
    pending: Vec<SignedMessage>,
    contents: BTreeMap<Value, Content>,
    /// Which proposed contents came in which round (bounded per round).
    contents_round: BTreeMap<u32, BTreeSet<Value>>,
    evaluations: BTreeMap<Value, Evaluation>,
    timers: BTreeSet<(u64, Timeout)>,
    awaiting_evaluation: Option<(DecidedHeight, Value)>,
    integrating: bool,
    // across heights
    restored_signed: Vec<SignedMessage>,
    restored_offers: BTreeMap<u64, Offer>,
    future: Vec<(u16, Frame)>,
    catch_up_sent: BTreeMap<(u16, u64), Instant>,
    detector: EventuallyPerfect,
    suspected: Vec<(u16, u64)>,
    evidence: u64,
    counters: BTreeMap<&'static str, u64>,
    last_beat: Instant,
    /// When the last "still waiting" line was printed.
    last_status: Instant,
    outcome: Option<NodeOutcome>,
    byzantine_done: bool,
    /// Peers that said they have finished.
    done_peers: BTreeSet<u16>,
    /// Per decided height: when its instance started and decided (ms since start), how long
    /// this peer's validation checks took, and how many BFT messages it sent.
    timings: Vec<serde_json::Value>,
    height_started_ms: Option<u64>,
    validate_ms: u64,
    validate_since: BTreeMap<Value, Instant>,
    bft_sent: u64,
    /// When a peer last needed a decision from this one.
    last_help: Option<Instant>,
    log: Box<dyn FnMut(&str) + Send>,
}

/// Runs one peer to its end. `log` gets one line per event worth telling.
pub fn run_node(
    opts: NodeOptions,
    log: Box<dyn FnMut(&str) + Send>,
) -> Result<NodeOutcome, NodeError> {
    let NodeOptions {
        config,
        peers,
        prompt,
        out,
        test,
        linger_ms,
    } = opts;
    let n = peers.n();
    let f = peers.f;
    if let Some(why) = bound_refusal(n, f)
        && !test.allow_small_n
    {
        return Err(err(why));
    }
    if usize::from(config.id) >= n {
        return Err(err(format!(
            "this peer's id {} is not in the peer list ({n} peers)",
            config.id
        )));
    }
    if prompt.trim().is_empty() {
        return Err(err("the prompt is empty"));
    }
    let key = BuildKey::load(&config.key)
        .map_err(|e| err(format!("{e}; make one with `synod node keygen --out FILE`")))?;
    if key.public().0 != peers.peers[usize::from(config.id)].public_key {
        return Err(err(format!(
            "the key {} is not peer {}'s in {}: its public key is {}",
            config.key.display(),
            config.id,
            peers.path.display(),
            key.public().0
        )));
    }
    let agents_file = AgentsFile::load(&config.agents).map_err(|e| err(e.to_string()))?;
    let agents = build_agents(&agents_file, None).map_err(|e| err(e.to_string()))?;
    std::fs::create_dir_all(out.join(".synod"))
        .map_err(|e| err(format!("cannot create {}: {e}", out.display())))?;
    let scratch = out.join(".synod").join("scratch");
    let sandbox = || {
        synod_exec::Sandbox::new(&scratch, synod_exec::Limits::default())
            .map_err(|e| err(format!("the sandbox cannot run: {e}")))
    };
    let checker = Checker::new(sandbox()?);
    if checker.python_version() != peers.python {
        return Err(err(format!(
            "this peer's python3 is {}, the peer list pins {}: outcomes (and so validity) must be the same at every peer",
            checker.python_version(),
            peers.python
        )));
    }
    let agent_checker = Checker::new(sandbox()?);
    let chain = chain_id(&peers, &prompt);
    let ctx = Arc::new(Ctx {
        n,
        f,
        chain,
        keys_hex: peers.peers.iter().map(|p| p.public_key.clone()).collect(),
        facts: prompt_facts(&prompt),
        prompt,
        python: peers.python.clone(),
    });
    let (wal, records) = Wal::open(&out.join(".synod").join("node.wal"))?;
    let addrs = peers
        .peers
        .iter()
        .map(|p| resolve(&p.addr))
        .collect::<Result<Vec<_>, _>>()
        .map_err(err)?;
    let listen = config.listen_addr(&peers).map_err(err)?;
    let (tx, rx) = channel();
    let start = Instant::now();
    let net = Net::start(
        config.id,
        listen,
        addrs,
        Frame::Hello {
            from: config.id,
            chain: hex(&Value(chain.to_vec())),
        },
        test.net.clone(),
        tx.clone(),
        start,
    )
    .map_err(err)?;
    let (cj, cr) = unbounded();
    let (aj, ar) = unbounded();
    {
        let (ctx, tx) = (ctx.clone(), tx.clone());
        thread::Builder::new()
            .name("synod-node-check".into())
            .spawn(move || checker_worker(ctx, checker, cr, tx))
            .map_err(|e| err(e.to_string()))?;
    }
    {
        let (ctx, tx) = (ctx.clone(), tx.clone());
        thread::Builder::new()
            .name("synod-node-agents".into())
            .spawn(move || agent_worker(ctx, agents, agent_checker, ar, tx))
            .map_err(|e| err(e.to_string()))?;
    }
    drop(tx);
    let mut bft_config = BftConfig::new(n, f);
    bft_config.chain = chain;
    bft_config.timeout_propose_ms = config.timeout_propose_ms;
    bft_config.timeout_prevote_ms = 1000;
    bft_config.timeout_precommit_ms = 1000;
    bft_config.timeout_delta_ms = 500;
    bft_config.rebroadcast_ms = 500;
    bft_config.rounds_max = 64;
    let detector = EventuallyPerfect::new(
        EventuallyPerfectConfig {
            timeout_initial_ms: 1500,
            increment_ms: 500,
            timeout_max_ms: 30_000,
        },
        (0..n as u16).filter(|p| *p != config.id).map(NodeId),
        0,
    );
    let keys = peers.keys();
    let mut run = Run {
        id: config.id,
        ctx,
        key,
        config,
        test,
        out,
        bft_config,
        keys,
        start,
        net,
        wal,
        checker_jobs: cj,
        agent_jobs: aj,
        height: 0,
        phase: Phase::Reading { attempt: 0 },
        decided: Vec::new(),
        decided_reading: None,
        components: Vec::new(),
        offers: BTreeMap::new(),
        own_offer_asked: false,
        quorum_at: None,
        input_asked: false,
        own_input: None,
        bft: None,
        pending: Vec::new(),
        contents: BTreeMap::new(),
        contents_round: BTreeMap::new(),
        evaluations: BTreeMap::new(),
        timers: BTreeSet::new(),
        awaiting_evaluation: None,
        integrating: false,
        restored_signed: Vec::new(),
        restored_offers: BTreeMap::new(),
        future: Vec::new(),
        catch_up_sent: BTreeMap::new(),
        detector,
        suspected: Vec::new(),
        evidence: 0,
        counters: BTreeMap::new(),
        last_beat: start,
        last_status: start,
        outcome: None,
        byzantine_done: false,
        done_peers: BTreeSet::new(),
        timings: Vec::new(),
        height_started_ms: None,
        validate_ms: 0,
        validate_since: BTreeMap::new(),
        bft_sent: 0,
        last_help: None,
        log,
    };
    run.restore(records)?;
    run.main_loop(rx, linger_ms)
}

impl Run {
    fn now_ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    /// A checker of its own, for work on the main thread (a restart's replay, the test-only
    /// equivocation); the worker threads have theirs.
    fn fresh_checker(&self) -> Result<Checker, NodeError> {
        synod_exec::Sandbox::new(
            self.out.join(".synod").join("scratch"),
            synod_exec::Limits::default(),
        )
        .map(Checker::new)
        .map_err(|e| err(format!("the sandbox cannot run: {e}")))
    }

    fn note(&mut self, line: String) {
        let t = self.now_ms();
        (self.log)(&format!(
            "[peer {} {:>6} ms h{}] {line}",
            self.id, t, self.height
        ));
    }

    fn count(&mut self, what: &'static str) {
        *self.counters.entry(what).or_default() += 1;
    }

    fn silent(&self) -> bool {
        self.test.byzantine == Some(Byzantine::Silent)
            || (self.test.byzantine == Some(Byzantine::Equivocate) && self.byzantine_done)
    }

    fn broadcast(&self, frame: Frame) {
        if !self.silent() {
            self.net.broadcast(frame);
        }
    }

    fn quorum(&self) -> usize {
        self.ctx.n - self.ctx.f
    }

    /// Reads the log back: offers, decided heights (replayed in order), own signed messages.
    fn restore(&mut self, records: Vec<WalRecord>) -> Result<(), NodeError> {
        if records.is_empty() {
            return Ok(());
        }
        let mut decided = Vec::new();
        let mut checker = self.fresh_checker()?;
        for r in records {
            match r {
                WalRecord::Offer(o) => {
                    self.restored_offers.insert(o.height, *o);
                }
                WalRecord::Signed(m) => {
                    if let Some(s) = m.to_signed() {
                        self.restored_signed.push(s);
                    }
                }
                WalRecord::Decided(d) => decided.push(*d),
            }
        }
        let (offers, heights) = (self.restored_offers.len(), decided.len());
        self.note(format!("restarted from the log: {offers} own offer(s), {heights} decided height(s), {} signed message(s)", self.restored_signed.len()));
        for d in decided {
            if d.height != self.height {
                return Err(err(format!(
                    "the node log decides height {} where {} was expected: the log is not this run's",
                    d.height, self.height
                )));
            }
            if hex(&d.content.digest()) != d.value {
                return Err(err(format!(
                    "the node log is damaged: height {} records a content that is not its digest; move {} aside to start afresh",
                    d.height,
                    self.out.join(".synod").join("node.wal").display()
                )));
            }
            // Replays the decision without logging it again.
            let value = d.content.digest(); // checked above to be the logged value
            if let Content::Reading(r) = &d.content {
                let e = evaluate(
                    r.batch.clone(),
                    self.ctx.f,
                    &self.ctx.facts,
                    &self.ctx.chain,
                    d.height,
                    &mut checker,
                )
                .map_err(err)?;
                self.evaluations.insert(value.clone(), e);
            }
            self.advance(d, value)?;
            if self.outcome.is_some() {
                break;
            }
        }
        Ok(())
    }

    fn main_loop(&mut self, rx: Receiver<Event>, linger_ms: u64) -> Result<NodeOutcome, NodeError> {
        let mut done_at: Option<Instant> = None;
        loop {
            if self.outcome.is_some() && done_at.is_none() {
                done_at = Some(Instant::now());
                if let Some(o) = &self.outcome {
                    self.note(format!(
                        "finished: {o:?}; answering late peers for {linger_ms} ms"
                    ));
                }
            }
            // A finished peer stays while others may still need its decisions: until every
            // peer has said it finished, or for linger_ms after it finished and after the last
            // peer it helped catch up.
            let linger = Duration::from_millis(linger_ms);
            let everyone_done = self.done_peers.len() + 1 >= self.ctx.n;
            let quiet = self.last_help.is_none_or(|t| t.elapsed() >= linger);
            if let Some(t) = done_at
                && (everyone_done || (t.elapsed() >= linger && quiet))
            {
                let o = self.outcome.clone().expect("set");
                // Let queued frames (the last decision proofs) go out.
                for _ in 0..50 {
                    if self.net.queued() == 0 {
                        break;
                    }
                    thread::sleep(Duration::from_millis(10));
                }
                return Ok(o);
            }
            self.tick()?;
            let now = self.now_ms();
            let next_timer = self.timers.first().map(|(at, _)| *at).unwrap_or(now + 50);
            let wait = next_timer.saturating_sub(now).clamp(1, 50);
            match rx.recv_timeout(Duration::from_millis(wait)) {
                Ok(Event::Frame { from, frame }) => self.on_frame(from, frame)?,
                Ok(Event::Work(w)) => self.on_work(*w)?,
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                    return Err(err("the node's worker threads stopped"));
                }
            }
        }
    }

    /// Timers, heartbeats, the detector, and starting the current height's instance.
    /// Every 10 s without a finish, one line on what this peer waits for (a peer can wait
    /// forever when fewer than n - f peers are up: FLP; the line says who is suspected).
    fn status(&mut self) {
        if self.outcome.is_some() || self.last_status.elapsed() < Duration::from_secs(10) {
            return;
        }
        self.last_status = Instant::now();
        let suspected: Vec<u16> = (0..self.ctx.n as u16)
            .filter(|p| *p != self.id && self.detector.is_suspected(NodeId(*p)))
            .collect();
        let what = match (&self.bft, self.phase) {
            (None, Phase::Reading { .. }) => format!(
                "offers: {} of the {} needed",
                self.offers.len(),
                self.quorum()
            ),
            (None, _) => "its own candidate".to_string(),
            (Some(b), _) => format!("round {} step {:?}", b.round().0, b.step_kind()),
        };
        self.note(format!(
            "still waiting at height {}: {what}; suspected peers: {suspected:?}",
            self.height
        ));
    }

    fn tick(&mut self) -> Result<(), NodeError> {
        self.status();
        let now = self.now_ms();
        while let Some(&(at, t)) = self.timers.first() {
            if at > now {
                break;
            }
            self.timers.pop_first();
            self.feed(BftInput::Timeout(t))?;
        }
        if self.last_beat.elapsed() >= Duration::from_millis(HEARTBEAT_MS) {
            self.last_beat = Instant::now();
            self.broadcast(Frame::Heartbeat {
                height: self.height,
                done: self.outcome.is_some(),
            });
            if let Some(o) = self.offers.get(&self.id).cloned()
                && matches!(self.phase, Phase::Reading { .. })
                && self.outcome.is_none()
            {
                self.broadcast(Frame::Offer(Box::new(o)));
            }
        }
        let mut fd = Vec::new();
        self.detector.step(now, DetectorInput::Tick, &mut fd);
        self.on_detector(fd)?;
        if self.outcome.is_none() {
            self.start_height_work()?;
        }
        Ok(())
    }

    fn on_detector(&mut self, fd: Vec<DetectorOutput>) -> Result<(), NodeError> {
        for o in fd {
            match o {
                DetectorOutput::Suspect(p) => {
                    let t = self.now_ms();
                    self.suspected.push((p.0, t));
                    self.note(format!("suspects peer {}", p.0));
                    // A suspected proposer is not waited for: its round's propose timeout fires now.
                    if let Some(b) = &self.bft
                        && b.decision().is_none()
                        && b.step_kind() == Step::Propose
                        && self.bft_config.at_height(self.height).proposer(b.round()) == p
                    {
                        let r = b.round();
                        self.feed(BftInput::Timeout(Timeout::Propose(r)))?;
                    }
                }
                DetectorOutput::Trust(p) => self.note(format!("trusts peer {} again", p.0)),
            }
        }
        Ok(())
    }

    /// Asks for this peer's offer, forms its batch, builds its input and starts the instance,
    /// each once its inputs are there.
    fn start_height_work(&mut self) -> Result<(), NodeError> {
        match self.phase {
            Phase::Reading { attempt } => {
                if !self.own_offer_asked {
                    self.own_offer_asked = true;
                    if let Some(o) = self.restored_offers.get(&self.height).cloned() {
                        self.offers.insert(self.id, o.clone());
                        self.broadcast(Frame::Offer(Box::new(o)));
                    } else {
                        let _ = self.agent_jobs.send(Job::Offer {
                            height: self.height,
                            sample: attempt,
                        });
                    }
                }
                if self.input_asked || !self.offers.contains_key(&self.id) {
                    return Ok(());
                }
                let have = self.offers.len();
                if have >= self.quorum() && self.quorum_at.is_none() {
                    self.quorum_at = Some(Instant::now());
                }
                let missing_suspected = (0..self.ctx.n as u16)
                    .filter(|p| !self.offers.contains_key(p))
                    .all(|p| self.detector.is_suspected(NodeId(p)));
                let waited = self
                    .quorum_at
                    .is_some_and(|t| t.elapsed() >= Duration::from_millis(1000));
                if have == self.ctx.n || (have >= self.quorum() && (waited || missing_suspected)) {
                    self.input_asked = true;
                    let batch: Vec<Offer> = self.offers.values().cloned().collect();
                    let _ = self.checker_jobs.send(Job::Evaluate {
                        height: self.height,
                        batch,
                    });
                }
            }
            Phase::Component { index } => {
                if self.input_asked {
                    return Ok(());
                }
                self.input_asked = true;
                let d = self
                    .decided_reading
                    .clone()
                    .expect("a component height follows a decided reading");
                if d.spec.components.len() == 1 {
                    // PL-21: the decided reference is the first candidate of a one-module reading.
                    let source = d.reference.clone();
                    self.set_component_input(index, source)?;
                } else {
                    let _ = self.agent_jobs.send(Job::Implement {
                        height: self.height,
                        index,
                        spec: Box::new(d.spec.clone()),
                    });
                }
            }
            Phase::Done => {}
        }
        Ok(())
    }

    fn set_component_input(&mut self, index: usize, mut source: String) -> Result<(), NodeError> {
        let d = self.decided_reading.as_ref().expect("decided");
        let comp = &d.spec.components[index];
        if self.test.byzantine == Some(Byzantine::Wrong) {
            for f in &comp.functions {
                source.push_str(&format!(
                    "\n\ndef {}(*args, **kwargs):\n    return None\n",
                    f.name
                ));
            }
        }
        let content = Content::Component {
            index: index as u32,
            name: comp.name.clone(),
            source,
        };
        self.start_instance(content)
    }

    fn start_instance(&mut self, content: Content) -> Result<(), NodeError> {
        self.height_started_ms = Some(self.now_ms());
        let value = content.digest();
        self.contents.insert(value.clone(), content);
        self.own_input = Some(value.clone());
        let config = self.bft_config.at_height(self.height);
        let own: Vec<SignedMessage> = self
            .restored_signed
            .iter()
            .filter(|m| m.height == self.height)
            .cloned()
            .collect();
        let node = BftNode::restore(
            NodeId(self.id),
            config,
            self.key.ed25519().clone(),
            self.keys.clone(),
            value,
            &own,
        );
        self.bft = Some(node);
        if self.test.byzantine == Some(Byzantine::Equivocate) && self.height == 0 && self.id == 0 {
            return self.equivocate();
        }
        self.feed(BftInput::Start)?;
        for m in std::mem::take(&mut self.pending) {
            self.feed(BftInput::Message(m))?;
        }
        Ok(())
    }

    /// Byzantine, test only: two proposals for round 0, each with its prevote and precommit,
    /// to two halves of the peers; then silence.
    fn equivocate(&mut self) -> Result<(), NodeError> {
        let a_value = self.own_input.clone().expect("set");
        let Some(Content::Reading(a)) = self.contents.get(&a_value).cloned() else {
            return Ok(());
        };
        // The second value: the same offers less the last one not its own (still n − f), with
        // its own verdict.
        let mut batch = a.batch.clone();
        if let Some(pos) = batch.iter().rposition(|o| o.from != self.id)
            && batch.len() > self.quorum()
        {
            batch.remove(pos);
        } else {
            batch.reverse(); // an invalid order: still a different value
        }
        let b_eval = evaluate(
            batch,
            self.ctx.f,
            &self.ctx.facts,
            &self.ctx.chain,
            self.height,
            &mut self.fresh_checker()?,
        )
        .map_err(err)?;
        let b = Content::Reading(b_eval.value);
        let b_value = b.digest();
        self.note(format!(
            "BYZANTINE: equivocates at height 0 round 0: {} to odd peers, {} to even peers",
            short(&hex(&a_value)),
            short(&hex(&b_value))
        ));
        for (value, content, odd) in [(a_value, Content::Reading(a), true), (b_value, b, false)] {
            let sign = |payload| {
                SignedMessage::sign_in(
                    self.key.ed25519(),
                    &self.ctx.chain,
                    self.height,
                    NodeId(self.id),
                    payload,
                )
            };
            let msgs = [
                sign(Payload::Proposal {
                    round: Round(0),
                    value: value.clone(),
                    valid_round: None,
                }),
                sign(Payload::Vote {
                    kind: VoteKind::Prevote,
                    round: Round(0),
                    value: Some(value.clone()),
                }),
                sign(Payload::Vote {
                    kind: VoteKind::Precommit,
                    round: Round(0),
                    value: Some(value.clone()),
                }),
            ];
            for (i, m) in msgs.iter().enumerate() {
                let frame = Arc::new(Frame::Bft {
                    message: WireMessage::from(m),
                    content: (i == 0).then(|| Box::new(content.clone())),
                });
                for p in (0..self.ctx.n as u16).filter(|p| *p != self.id && (p % 2 == 1) == odd) {
                    self.net.send(p, frame.clone());
                }
            }
        }
        self.byzantine_done = true;
        Ok(())
    }

    /// Steps the current instance and carries out its outputs in order.
    fn feed(&mut self, input: BftInput) -> Result<(), NodeError> {
        let Some(node) = self.bft.as_mut() else {
            if let BftInput::Message(m) = input
                && self.pending.len() < FUTURE_MAX
            {
                self.pending.push(m);
            }
            return Ok(());
        };
        if self.byzantine_done || self.awaiting_evaluation.is_some() {
            // Decided already (waiting only for its own evaluation of the value).
            return Ok(());
        }
        let now = self.start.elapsed().as_millis() as u64;
        let mut out = Vec::new();
        node.step(now, input, &mut out);
        for o in out {
            match o {
                BftOutput::Persist(m) => {
                    self.wal.append(&WalRecord::Signed(WireMessage::from(&m)))?
                }
                BftOutput::Broadcast(m) => {
                    let content = match &m.payload {
                        Payload::Proposal { value, .. } => {
                            self.contents.get(value).cloned().map(Box::new)
                        }
                        Payload::Vote { .. } => None,
                    };
                    if self.test.byzantine == Some(Byzantine::Forge) {
                        self.forge(&m);
                    }
                    self.bft_sent += self.ctx.n as u64 - 1;
                    self.broadcast(Frame::Bft {
                        message: WireMessage::from(&m),
                        content,
                    });
                }
                BftOutput::SetTimer { at_ms, timeout } => {
                    self.timers.insert((at_ms, timeout));
                }
                BftOutput::Validate(v) => self.validate(v)?,
                BftOutput::Decide { value, round } => {
                    let proof = self
                        .bft
                        .as_ref()
                        .map(|b| b.decision_proof().iter().map(WireMessage::from).collect())
                        .unwrap_or_default();
                    let content = self
                        .contents
                        .get(&value)
                        .cloned()
                        .ok_or_else(|| err("decided a value whose content is unknown"))?;
                    let d = DecidedHeight {
                        height: self.height,
                        round: round.0,
                        value: hex(&value),
                        content,
                        proof,
                    };
                    self.note(format!("decided {} in round {}", short(&d.value), round.0));
                    self.record_timing(round.0, "decided");
                    self.wal.append(&WalRecord::Decided(Box::new(d.clone())))?;
                    self.advance(d, value)?;
                    return Ok(());
                }
                BftOutput::Evidence(e) => {
                    self.evidence += 1;
                    self.note(
                        format!("evidence of a Byzantine peer: {e:?}")
                            .chars()
                            .take(200)
                            .collect(),
                    );
                }
            }
        }
        Ok(())
    }

    fn record_timing(&mut self, round: u32, how: &str) {
        let now = self.now_ms();
        self.timings.push(serde_json::json!({
            "height": self.height,
            "round": round,
            "how": how,
            "started_ms": self.height_started_ms,
            "decided_ms": now,
            "validate_ms": self.validate_ms,
            "bft_messages_sent": self.bft_sent,
        }));
        self.validate_ms = 0;
        self.bft_sent = 0;
        self.height_started_ms = None;
    }

    /// Byzantine, test only: a copy of each vote claiming another sender, signed with its own
    /// key, for a made-up value; and a forged offer.
    fn forge(&self, m: &SignedMessage) {
        let victim = NodeId((self.id + 1) % self.ctx.n as u16);
        let mut forged = SignedMessage::sign_in(
            self.key.ed25519(),
            &self.ctx.chain,
            m.height,
            NodeId(self.id),
            Payload::Vote {
                kind: VoteKind::Precommit,
                round: m.payload.round(),
                value: Some(Value(vec![0xee; 32])),
            },
        );
        forged.from = victim;
        self.net.broadcast(Frame::Bft {
            message: WireMessage::from(&forged),
            content: None,
        });
    }

    fn validate(&mut self, v: Value) -> Result<(), NodeError> {
        // Its own reading value was evaluated by itself; a Byzantine "wrong" peer also backs
        // its own component. Every other value (and its own component) is checked.
        let own = self.own_input.as_ref() == Some(&v);
        if own
            && (matches!(self.phase, Phase::Reading { .. })
                || self.test.byzantine == Some(Byzantine::Wrong))
        {
            return self.feed(BftInput::Validated {
                value: v,
                valid: true,
            });
        }
        let Some(content) = self.contents.get(&v).cloned() else {
            return self.feed(BftInput::Validated {
                value: v,
                valid: false,
            });
        };
        let job = match (content, self.phase) {
            (Content::Reading(r), Phase::Reading { .. }) => Job::ValidateReading {
                height: self.height,
                value: v,
                content: Box::new(r),
            },
            (
                Content::Component {
                    index,
                    name,
                    source,
                },
                Phase::Component { .. },
            ) => Job::ValidateComponent {
                height: self.height,
                value: v,
                decided: Box::new(self.decided_reading.clone().expect("decided")),
                index: index as usize,
                name,
                source,
            },
            _ => {
                return self.feed(BftInput::Validated {
                    value: v,
                    valid: false,
                });
            }
        };
        self.validate_since.insert(v_key(&job), Instant::now());
        let _ = self.checker_jobs.send(job);
        Ok(())
    }

    fn on_work(&mut self, w: WorkResult) -> Result<(), NodeError> {
        match w {
            WorkResult::Offer { height, result } if height == self.height => match result {
                Ok(mut reading) => {
                    if self.test.byzantine == Some(Byzantine::Wrong) {
                        // A wrong reading: every function it defines returns None.
                        let names: Vec<String> = reading
                            .reference
                            .lines()
                            .filter_map(|l| l.strip_prefix("def "))
                            .filter_map(|l| l.split('(').next())
                            .map(str::to_string)
                            .collect();
                        for name in names {
                            reading.reference.push_str(&format!(
                                "\n\ndef {name}(*args, **kwargs):\n    return None\n"
                            ));
                        }
                    }
                    let o = Offer::sign(&self.key, &self.ctx.chain, height, self.id, reading);
                    self.wal.append(&WalRecord::Offer(Box::new(o.clone())))?;
                    self.note("offers its reading".into());
                    self.offers.insert(self.id, o.clone());
                    self.broadcast(Frame::Offer(Box::new(o)));
                    if self.test.byzantine == Some(Byzantine::Forge) {
                        let mut forged = Offer::sign(
                            &self.key,
                            &self.ctx.chain,
                            height,
                            self.id,
                            self.offers[&self.id].reading.clone(),
                        );
                        forged.from = (self.id + 1) % self.ctx.n as u16;
                        self.net.broadcast(Frame::Offer(Box::new(forged)));
                    }
                }
                Err(why) => {
                    self.note(why.clone());
                    self.outcome = Some(NodeOutcome::Failed { reason: why });
                }
            },
            WorkResult::Candidate { height, result } if height == self.height => {
                match (result, self.phase) {
                    (Ok(source), Phase::Component { index }) => {
                        self.set_component_input(index, source)?
                    }
                    (Err(why), _) => {
                        // No candidate of its own: it still votes on the others'.
                        self.note(why);
                        let d = self.decided_reading.clone().expect("decided");
                        if let Phase::Component { index } = self.phase {
                            self.set_component_input(
                                index,
                                format!(
                                    "raise ImportError('peer {} has no candidate for {}')\n",
                                    self.id, d.spec.components[index].name
                                ),
                            )?;
                        }
                    }
                    _ => {}
                }
            }
            WorkResult::Evaluated { height, result } if height == self.height => {
                let mut e = *result.map_err(|e| err(format!("the sandbox failed: {e}")))?;
                if self.test.byzantine == Some(Byzantine::Wrong) {
                    e.value.verdict = BatchVerdict::Decide {
                        members: vec![self.id],
                        representative: self.id,
                    };
                }
                let content = Content::Reading(e.value.clone());
                self.evaluations.insert(content.digest(), e);
                self.start_instance(content)?;
            }
            WorkResult::Validated {
                height,
                value,
                result,
            } if height == self.height => {
                if let Some(t) = self.validate_since.remove(&value) {
                    self.validate_ms += t.elapsed().as_millis() as u64;
                }
                let (valid, why, evaluation) =
                    result.map_err(|e| err(format!("the sandbox failed: {e}")))?;
                if !valid {
                    self.note(format!("rejects {}: {why}", short(&hex(&value))));
                }
                if let Some(e) = evaluation {
                    self.evaluations.insert(value.clone(), *e);
                }
                if self
                    .awaiting_evaluation
                    .as_ref()
                    .is_some_and(|(_, v)| *v == value)
                {
                    let (d, v) = self.awaiting_evaluation.take().expect("checked");
                    if !self.evaluations.contains_key(&v) {
                        let reason =
                            format!("the decided reading does not evaluate at this peer: {why}");
                        self.outcome = Some(NodeOutcome::Failed { reason });
                        return self.write_certificate("failed");
                    }
                    return self.advance(d, v);
                }
                self.feed(BftInput::Validated { value, valid })?;
            }
            WorkResult::Integrated { result } => {
                let problem = result.map_err(|e| err(format!("the sandbox failed: {e}")))?;
                self.finish(problem)?;
            }
            _ => {} // work for a height already left
        }
        Ok(())
    }

    fn on_frame(&mut self, from: u16, frame: Frame) -> Result<(), NodeError> {
        if usize::from(from) < self.ctx.n && from != self.id {
            let mut fd = Vec::new();
            self.detector.step(
                self.now_ms(),
                DetectorInput::Heartbeat(NodeId(from)),
                &mut fd,
            );
            self.on_detector(fd)?;
        }
        match frame {
            Frame::Hello { .. } => {}
            Frame::Heartbeat { height, done } => {
                if height < self.height {
                    self.help_catch_up(from, height);
                }
                if done && usize::from(from) < self.ctx.n {
                    self.done_peers.insert(from);
                }
            }
            Frame::Offer(o) => {
                if o.height < self.height {
                    self.help_catch_up(from, o.height);
                    return Ok(());
                }
                if o.height > self.height {
                    if self.future.len() < FUTURE_MAX {
                        self.future.push((from, Frame::Offer(o)));
                    }
                    return Ok(());
                }
                if !matches!(self.phase, Phase::Reading { .. }) {
                    return Ok(());
                }
                if usize::from(o.from) >= self.ctx.n
                    || !o.verify(&self.ctx.chain, &self.ctx.keys_hex)
                {
                    self.count("offers with a bad signature");
                    return Ok(());
                }
                match self.offers.get(&o.from) {
                    None if !self.input_asked => {
                        self.offers.insert(o.from, *o);
                    }
                    Some(first) if *first != *o => {
                        self.evidence += 1;
                        self.note(format!(
                            "evidence: peer {} signed two offers for height {}",
                            o.from, o.height
                        ));
                    }
                    _ => {}
                }
            }
            Frame::Bft { message, content } => {
                let Some(m) = message.to_signed() else {
                    self.count("messages that do not parse");
                    return Ok(());
                };
                if m.height < self.height {
                    self.help_catch_up(from, m.height);
                    return Ok(());
                }
                if m.height > self.height {
                    if self.future.len() < FUTURE_MAX {
                        self.future.push((from, Frame::Bft { message, content }));
                    }
                    return Ok(());
                }
                if let Payload::Proposal { value, round, .. } = &m.payload {
                    // A proposal counts only with the content its value is the digest of, and
                    // content is kept only from the round's proposer, signed, and for a bounded
                    // number of values per height.
                    let proposer = self.bft_config.at_height(self.height).proposer(*round);
                    let in_round = self.contents_round.get(&round.0).map_or(0, BTreeSet::len);
                    let current = self.bft.as_ref().map_or(0, |b| b.round().0);
                    let ahead = round.0 > current + self.bft_config.rounds_ahead_max;
                    let known = self.contents.contains_key(value);
                    if m.from != proposer
                        || ahead
                        || (!known && in_round >= CONTENTS_PER_ROUND_MAX)
                        || !m.verify_in(&self.ctx.chain, &self.keys)
                    {
                        self.count("proposals not kept");
                        return Ok(());
                    }
                    match content {
                        Some(c) if c.digest() == *value => {
                            self.contents_round
                                .entry(round.0)
                                .or_default()
                                .insert(value.clone());
                            self.contents.entry(value.clone()).or_insert(*c);
                        }
                        _ => {
                            self.count("proposals without their content");
                            return Ok(());
                        }
                    }
                }
                self.feed(BftInput::Message(m))?;
            }
            Frame::Decided {
                height,
                content,
                proof,
            } => {
                if height == self.height
                    && self.outcome.is_none()
                    && self.awaiting_evaluation.is_none()
                {
                    self.adopt(height, *content, proof)?;
                } else if height > self.height && self.future.len() < FUTURE_MAX {
                    self.future.push((
                        from,
                        Frame::Decided {
                            height,
                            content,
                            proof,
                        },
                    ));
                }
            }
        }
        Ok(())
    }

    /// A peer that sent a message for a height this peer has decided is behind: send it the
    /// decision (at most once a second per peer and height).
    fn help_catch_up(&mut self, peer: u16, height: u64) {
        let Some(d) = self.decided.get(height as usize) else {
            return;
        };
        let recent = self
            .catch_up_sent
            .get(&(peer, height))
            .is_some_and(|t| t.elapsed() < Duration::from_millis(1000));
        if recent || self.silent() || usize::from(peer) >= self.ctx.n {
            return;
        }
        self.catch_up_sent.insert((peer, height), Instant::now());
        self.last_help = Some(Instant::now());
        let frame = Frame::Decided {
            height,
            content: Box::new(d.content.clone()),
            proof: d.proof.clone(),
        };
        self.net.send(peer, Arc::new(frame));
    }

    /// A decision proof from a peer: the content, its proposal and a quorum of precommits for
    /// its digest in one round, every signature checked (n − f ≥ 2f + 1 signers include f + 1
    /// correct peers, each of which validated it).
    fn adopt(
        &mut self,
        height: u64,
        content: Content,
        proof: Vec<WireMessage>,
    ) -> Result<(), NodeError> {
        let value = content.digest();
        let signed: Vec<SignedMessage> = proof.iter().filter_map(WireMessage::to_signed).collect();
        let Some(round) = quorum_round(
            &signed,
            &value,
            height,
            &self.ctx.chain,
            &self.keys,
            self.quorum(),
        ) else {
            self.count("decision proofs that do not hold");
            return Ok(());
        };
        let d = DecidedHeight {
            height,
            round,
            value: hex(&value),
            content,
            proof,
        };
        self.record_timing(round, "adopted");
        self.note(format!(
            "adopts the decision {} of round {round} from a peer's proof",
            short(&d.value)
        ));
        self.wal.append(&WalRecord::Decided(Box::new(d.clone())))?;
        self.contents.insert(value.clone(), d.content.clone());
        self.advance(d, value)
    }

    /// After a decision: the next height, the question, or the program.
    fn advance(&mut self, d: DecidedHeight, value: Value) -> Result<(), NodeError> {
        if let Content::Reading(_) = &d.content
            && !self.evaluations.contains_key(&value)
        {
            // Decided by others' proof: evaluate it here before going on.
            if let Content::Reading(r) = &d.content {
                let _ = self.checker_jobs.send(Job::ValidateReading {
                    height: d.height,
                    value: value.clone(),
                    content: Box::new(r.clone()),
                });
            }
            self.awaiting_evaluation = Some((d, value));
            return Ok(());
        }
        let mut next = match (&d.content, self.phase) {
            (Content::Reading(r), Phase::Reading { attempt }) => match &r.verdict {
                BatchVerdict::Decide { representative, .. } => {
                    let e = self.evaluations.get(&value).expect("evaluated");
                    self.decided_reading = Some(e.decided.clone().ok_or_else(|| {
                        err("the decided verdict names a reading this peer's evaluation does not decide")
                    })?);
                    self.note(format!("the reading of peer {representative} is decided"));
                    Some(Phase::Component { index: 0 })
                }
                BatchVerdict::Ambiguous { classes } => {
                    let text = serde_json::json!({
                        "question": "the peers' readings of the prompt differ beyond the fault budget: clarify the prompt (the same text at every peer) and run again",
                        "classes": classes,
                        "readings": r.batch.iter().map(|o| serde_json::json!({"peer": o.from, "reference": o.reading.reference})).collect::<Vec<_>>(),
                    });
                    write_file(
                        &self.out.join("question.json"),
                        &serde_json::to_string_pretty(&text).unwrap_or_default(),
                    )?;
                    self.decided.push(d.clone());
                    self.outcome = Some(NodeOutcome::Ambiguous {
                        digests: self.digests(),
                    });
                    self.write_certificate("ambiguous")?;
                    None
                }
                BatchVerdict::NotYet { .. } => {
                    if attempt + 1 < self.config.reading_heights_max {
                        Some(Phase::Reading {
                            attempt: attempt + 1,
                        })
                    } else {
                        self.decided.push(d.clone());
                        let reason = format!(
                            "no reading decided in {} height(s): the readings split within the fault budget",
                            attempt + 1
                        );
                        self.outcome = Some(NodeOutcome::Failed { reason });
                        self.write_certificate("failed")?;
                        None
                    }
                }
            },
            (Content::Component { name, source, .. }, Phase::Component { index }) => {
                self.components.push((name.clone(), source.clone()));
                let total = self
                    .decided_reading
                    .as_ref()
                    .map_or(0, |r| r.spec.components.len());
                if index + 1 < total {
                    Some(Phase::Component { index: index + 1 })
                } else {
                    Some(Phase::Done)
                }
            }
            _ => {
                return Err(err(format!(
                    "height {} decided a {} where another kind was due",
                    d.height,
                    match d.content {
                        Content::Reading(_) => "reading",
                        Content::Component { .. } => "component",
                    }
                )));
            }
        };
        if self.outcome.is_some() {
            return Ok(());
        }
        self.decided.push(d);
        if let Some(h) = self.test.stop_after_height
            && self.height >= h
        {
            self.outcome = Some(NodeOutcome::Stopped {
                digests: self.digests(),
            });
            self.write_certificate("stopped")?;
            return Ok(());
        }
        // Next height: fresh state, then what arrived early.
        self.height += 1;
        self.offers.clear();
        self.own_offer_asked = false;
        self.quorum_at = None;
        self.input_asked = false;
        self.own_input = None;
        self.bft = None;
        self.pending.clear();
        self.timers.clear();
        self.contents.clear();
        self.contents_round.clear();
        if next == Some(Phase::Done) {
            self.phase = Phase::Done;
            self.integrate();
            next = None;
        }
        if let Some(p) = next {
            self.phase = p;
        }
        for (from, frame) in std::mem::take(&mut self.future) {
            self.on_frame(from, frame)?;
        }
        Ok(())
    }

    fn integrate(&mut self) {
        if self.integrating {
            return;
        }
        self.integrating = true;
        let mut program = Program::default();
        for (name, source) in &self.components {
            program.modules.insert(name.clone(), source.clone());
        }
        let decided = self.decided_reading.clone().expect("decided");
        let _ = self.checker_jobs.send(Job::Integrate {
            decided: Box::new(decided),
            program,
        });
    }

    fn finish(&mut self, problem: Option<String>) -> Result<(), NodeError> {
        if let Some(p) = problem {
            self.outcome = Some(NodeOutcome::Failed {
                reason: format!("the assembled program fails its integration check: {p}"),
            });
            return self.write_certificate("failed");
        }
        let dir = self.out.join("program");
        std::fs::create_dir_all(&dir)
            .map_err(|e| err(format!("cannot create {}: {e}", dir.display())))?;
        for (name, source) in &self.components {
            write_file(&dir.join(format!("{name}.py")), source)?;
        }
        self.outcome = Some(NodeOutcome::Built {
            digests: self.digests(),
        });
        self.write_certificate("built")
    }

    fn digests(&self) -> Vec<String> {
        self.decided.iter().map(|d| d.value.clone()).collect()
    }

    fn write_certificate(&mut self, outcome: &str) -> Result<(), NodeError> {
        let program = self
            .components
            .iter()
            .map(|(n, s)| (n.clone(), s.clone()))
            .collect::<BTreeMap<_, _>>();
        let body = serde_json::json!({
            "format": CERTIFICATE_FORMAT,
            "peer": self.id,
            "chain": hex(&Value(self.ctx.chain.to_vec())),
            "prompt": self.ctx.prompt,
            "n": self.ctx.n,
            "f": self.ctx.f,
            "python": self.checker_python(),
            "outcome": outcome,
            "heights": self.decided,
            "program_digest": Program { modules: program }.digest(),
            "components": self.components.iter().map(|(n, s)| serde_json::json!({"name": n, "digest": blake3::hash(s.as_bytes()).to_hex().to_string()})).collect::<Vec<_>>(),
            "evidence": self.evidence,
            "suspected": self.suspected,
            "dropped": self.counters,
            "test_switches": self.test.describe(),
            "timings": self.timings,
            "messages": { "sent": self.net.sent.load(std::sync::atomic::Ordering::Relaxed), "received": self.net.received.load(std::sync::atomic::Ordering::Relaxed) },
        });
        let signed = Signed::sign(body, &self.key);
        let text = serde_json::to_string_pretty(&signed).map_err(|e| err(e.to_string()))?;
        write_file(&self.out.join("certificate.json"), &text)?;
        write_file(&self.out.join("REPORT.md"), &self.report(outcome))
    }

    fn checker_python(&self) -> String {
        self.ctx.python.clone()
    }

    fn report(&self, outcome: &str) -> String {
        let mut s = format!(
            "# synod node: peer {} of {} (f = {})\n\nOutcome: **{outcome}**.\n\n| height | decides | round | digest |\n|---|---|---|---|\n",
            self.id, self.ctx.n, self.ctx.f
        );
        for d in &self.decided {
            let what = match &d.content {
                Content::Reading(r) => format!("reading: {:?}", r.verdict)
                    .chars()
                    .take(80)
                    .collect::<String>(),
                Content::Component { name, .. } => format!("component {name}"),
            };
            s.push_str(&format!(
                "| {} | {} | {} | `{}` |\n",
                d.height,
                what,
                d.round,
                short(&d.value)
            ));
        }
        if !self.test.describe().is_empty() {
            s.push_str(&format!(
                "\nTest switches: {}.\n",
                self.test.describe().join(", ")
            ));
        }
        s.push_str(&format!(
            "\nEvidence of Byzantine peers: {}. Suspicions: {}.\n",
            self.evidence,
            self.suspected.len()
        ));
        s
    }
}

/// The first 12 characters of a digest, for log lines (all of a shorter one).
fn short(hex: &str) -> &str {
    hex.get(..12).unwrap_or(hex)
}

fn v_key(job: &Job) -> Value {
    match job {
        Job::ValidateReading { value, .. } | Job::ValidateComponent { value, .. } => value.clone(),
        _ => Value(Vec::new()),
    }
}

fn write_file(path: &Path, text: &str) -> Result<(), NodeError> {
    synod_store::write_atomic(path, text.as_bytes())
        .map_err(|e| err(format!("cannot write {}: {e}", path.display())))
}

/// The round in which `proof` holds precommits for `value` from at least `quorum` distinct
/// peers, every one's signature valid for `height` in `chain`; `None` if there is none.
pub fn quorum_round(
    proof: &[SignedMessage],
    value: &Value,
    height: u64,
    chain: &[u8; 32],
    keys: &[ed25519_dalek::VerifyingKey],
    quorum: usize,
) -> Option<u32> {
    let mut by_round: BTreeMap<u32, BTreeSet<u16>> = BTreeMap::new();
    for m in proof {
        if m.height != height {
            continue;
        }
        if let Payload::Vote {
            kind: VoteKind::Precommit,
            round,
            value: Some(v),
        } = &m.payload
            && v == value
            && m.verify_in(chain, keys)
        {
            by_round.entry(round.0).or_default().insert(m.from.0);
        }
    }
    by_round
        .into_iter()
        .find(|(_, s)| s.len() >= quorum)
        .map(|(r, _)| r)
}

#[cfg(test)]
mod tests {
    use super::*;
    use synod_core::protocols::bft::signing_key;

    #[test]
    fn quorum_round_counts_valid_distinct_signers_only() {
        let chain = [3u8; 32];
        let keys: Vec<_> = (0..4u16)
            .map(|i| signing_key(9, NodeId(i)).verifying_key())
            .collect();
        let v = Value(vec![1; 32]);
        let pc = |from: u16, height: u64, round: u32| {
            SignedMessage::sign_in(
                &signing_key(9, NodeId(from)),
                &chain,
                height,
                NodeId(from),
                Payload::Vote {
                    kind: VoteKind::Precommit,
                    round: Round(round),
                    value: Some(v.clone()),
                },
            )
        };
        let good = vec![pc(0, 5, 2), pc(1, 5, 2), pc(2, 5, 2)];
        assert_eq!(quorum_round(&good, &v, 5, &chain, &keys, 3), Some(2));
        // One signer twice is one signer.
        let twice = vec![pc(0, 5, 2), pc(0, 5, 2), pc(1, 5, 2)];
        assert_eq!(quorum_round(&twice, &v, 5, &chain, &keys, 3), None);
        // A flipped signature, a precommit of another height or round, another chain: not counted.
        let mut forged = pc(2, 5, 2);
        forged.signature[0] ^= 1;
        let mixed = vec![pc(0, 5, 2), pc(1, 5, 2), forged, pc(3, 4, 2), pc(3, 5, 1)];
        assert_eq!(quorum_round(&mixed, &v, 5, &chain, &keys, 3), None);
        assert_eq!(quorum_round(&good, &v, 5, &[4u8; 32], &keys, 3), None);
        // A sender claiming another's id with its own signature is not that peer.
        let mut claimed = pc(3, 5, 2);
        claimed.from = NodeId(2);
        let stolen = vec![pc(0, 5, 2), pc(1, 5, 2), claimed];
        assert_eq!(quorum_round(&stolen, &v, 5, &chain, &keys, 3), None);
    }

    #[test]
    fn a_torn_log_tail_is_ignored_and_what_came_before_stands() {
        let dir = std::env::temp_dir().join(format!("synod-node-wal-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("node.wal");
        let m = SignedMessage::sign(
            &signing_key(1, NodeId(0)),
            NodeId(0),
            Payload::Vote {
                kind: VoteKind::Prevote,
                round: Round(0),
                value: None,
            },
        );
        {
            let (mut wal, records) = Wal::open(&path).unwrap();
            assert!(records.is_empty());
            wal.append(&WalRecord::Signed(WireMessage::from(&m)))
                .unwrap();
            wal.append(&WalRecord::Signed(WireMessage::from(&m)))
                .unwrap();
        }
        // A kill in the middle of a write leaves half a line.
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"{\"signed\":{\"height\":0,\"fr").unwrap();
        let (mut wal, records) = Wal::open(&path).unwrap();
        assert_eq!(records.len(), 2);
        // What is appended after the restart is read back too: the torn half line is gone.
        wal.append(&WalRecord::Signed(WireMessage::from(&m)))
            .unwrap();
        drop(wal);
        let (_, records) = Wal::open(&path).unwrap();
        assert_eq!(records.len(), 3);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_chain_id_covers_the_prompt_and_the_peer_keys() {
        let text = |key: &str| {
            format!(
                "f = 0\npython = \"3.11.2\"\n[[peer]]\nid = 0\naddr = \"127.0.0.1:1\"\npublic_key = \"{key}\"\n"
            )
        };
        let a = PeersFile::parse(
            &text("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"),
            Path::new("p"),
        )
        .unwrap();
        let b = PeersFile::parse(
            &text("3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c"),
            Path::new("p"),
        )
        .unwrap();
        assert_ne!(chain_id(&a, "x"), chain_id(&a, "y"));
        assert_ne!(chain_id(&a, "x"), chain_id(&b, "x"));
        assert_eq!(chain_id(&a, "x"), chain_id(&a, "x"));
    }
}
