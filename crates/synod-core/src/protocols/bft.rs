//! Tendermint-style Byzantine agreement for one height (rules BFT-1 … BFT-14 in
//! `docs/PROTOCOL.md`), after Buchman, Kwon, Milosevic 2018, "The latest gossip on BFT
//! consensus", Algorithm 1. Comments `// L22` cite that algorithm's lines.
//!
//! One [`BftNode`] decides one value. Quorums are n − f votes and round skips need f + 1
//! senders, so two quorums share a correct node exactly when n ≥ 3f + 1; [`BftConfig::new`]
//! accepts smaller n on purpose, so that the simulator and the model checker can show the
//! agreement violation at n = 3f.
//!
//! Every message is signed with ed25519 over a canonical encoding ([`signing_bytes`]); a
//! message with a bad signature, an unknown sender, a round outside the window or a proposal
//! from a node that is not the round's proposer is dropped and counted; two different messages
//! from one node for one round and step are kept as [`Evidence`]. The external validity
//! predicate is the caller's (synod: "this batch of signed interpretations tallies to this
//! decision").
//!
//! The core is sans-IO in all three of its dealings with the outside (issue 12):
//! - **validity** is an output/input pair: the node asks [`BftOutput::Validate`] once per value
//!   and waits for [`BftInput::Validated`] (synod's runtime runs the batch's references in its
//!   sandbox meanwhile); until the verdict arrives no rule that needs it fires, and no later
//!   rule is tried either, so an answer given at once ([`BftNode::step_with`]) yields exactly
//!   the outputs of a synchronous predicate;
//! - **persistence**: every message the node signs is first handed out as
//!   [`BftOutput::Persist`], before its [`BftOutput::Broadcast`]; [`BftNode::restore`] rebuilds
//!   a node from those records (its lock is its latest precommit for a value), and a restored
//!   node re-sends what it signed instead of signing anything new for a slot it already
//!   filled, so a node killed and restarted never equivocates (BFT-16);
//! - **heights**: one node decides one height; every message carries its height and is signed
//!   over it and the instance's chain id ([`BftConfig::chain`]), so a vote for one height or
//!   one instance is never counted in another. The runtime runs the heights in sequence.

use super::{NodeId, Round, Value};
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::{Arc, Mutex};

/// Signature verdicts shared by the nodes of one process (the simulator's): whether a signature
/// verifies is a pure function of the key, the signed bytes and the signature, so a message
/// broadcast to n − 1 nodes needs one ed25519 verification, not n − 1. Keyed by blake3 of all
/// three; bounded (cleared when full). Sharing changes no verdict, so no output and no trace.
#[derive(Clone, Debug, Default)]
pub struct VerifyCache(Arc<Mutex<BTreeMap<[u8; 32], bool>>>);

/// Verdicts a [`VerifyCache`] keeps before it starts afresh.
pub const VERIFY_CACHE_MAX: usize = 1 << 20;

impl VerifyCache {
    /// An empty cache.
    pub fn new() -> VerifyCache {
        VerifyCache::default()
    }

    fn verify(&self, m: &SignedMessage, chain: &[u8; 32], keys: &[VerifyingKey]) -> bool {
        let Some(key) = keys.get(m.from.index()) else {
            return false;
        };
        let mut h = blake3::Hasher::new();
        h.update(key.as_bytes());
        h.update(&signing_bytes(chain, m.height, m.from, &m.payload));
        h.update(&m.signature);
        let id = *h.finalize().as_bytes();
        if let Some(ok) = self.0.lock().ok().and_then(|c| c.get(&id).copied()) {
            return ok;
        }
        let ok = m.verify_in(chain, keys);
        if let Ok(mut c) = self.0.lock() {
            if c.len() >= VERIFY_CACHE_MAX {
                c.clear();
            }
            c.insert(id, ok);
        }
        ok
    }

    /// Verdicts held.
    pub fn len(&self) -> usize {
        self.0.lock().map(|c| c.len()).unwrap_or(0)
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Settings of one consensus instance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BftConfig {
    /// Nodes.
    pub n: usize,
    /// Byzantine nodes tolerated; the quorum is n − f.
    pub f: usize,
    /// timeoutPropose(0); round r waits `timeout_propose_ms + r * timeout_delta_ms`.
    pub timeout_propose_ms: u64,
    /// timeoutPrevote(0).
    pub timeout_prevote_ms: u64,
    /// timeoutPrecommit(0).
    pub timeout_precommit_ms: u64,
    /// Added to every timeout per round (BFT-11: timeouts grow with the round).
    pub timeout_delta_ms: u64,
    /// Period of gossip: own recent messages, the valid round's prevotes, the decision's proof.
    pub rebroadcast_ms: u64,
    /// No round at or beyond this is entered or stored.
    pub rounds_max: u32,
    /// Messages more than this many rounds ahead of the node's round are dropped.
    pub rounds_ahead_max: u32,
    /// Evidence kept; more is counted only.
    pub evidence_max: usize,
    /// The height this instance decides (0, 1, …); signed into every message.
    pub height: u64,
    /// The instance's identity, signed into every message (synod: a digest of the peer list
    /// and the prompt), so that no message is valid in another instance.
    pub chain: [u8; 32],
}

impl BftConfig {
    /// Defaults for `n` nodes tolerating `f` Byzantine ones, with timeouts suited to message
    /// delays around 10 ms.
    pub fn new(n: usize, f: usize) -> BftConfig {
        BftConfig {
            n,
            f,
            timeout_propose_ms: 60,
            timeout_prevote_ms: 40,
            timeout_precommit_ms: 40,
            timeout_delta_ms: 20,
            rebroadcast_ms: 200,
            rounds_max: 200,
            rounds_ahead_max: 8,
            evidence_max: 64,
            height: 0,
            chain: [0; 32],
        }
    }

    /// The same settings for another height.
    pub fn at_height(&self, height: u64) -> BftConfig {
        BftConfig {
            height,
            ..self.clone()
        }
    }

    /// n − f: votes needed for a quorum (2f + 1 when n = 3f + 1).
    pub fn quorum(&self) -> usize {
        self.n - self.f.min(self.n)
    }

    /// The proposer of `round`: round robin, starting at node `height mod n` (BFT-1), so
    /// consecutive heights start with consecutive proposers.
    pub fn proposer(&self, round: Round) -> NodeId {
        let n = self.n.max(1) as u64;
        NodeId(((u64::from(round.0) + self.height % n) % n) as u16)
    }

    fn timeout_ms(&self, base_ms: u64, round: Round) -> u64 {
        base_ms.saturating_add(self.timeout_delta_ms.saturating_mul(u64::from(round.0)))
    }
}

/// The step of a node within a round.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Step {
    /// Waiting for the proposal.
    Propose,
    /// Prevoted; waiting for prevotes.
    Prevote,
    /// Precommitted; waiting for precommits.
    Precommit,
}

/// The two kinds of vote.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum VoteKind {
    /// First voting step.
    Prevote,
    /// Second voting step.
    Precommit,
}

/// What a message says.
#[derive(
    Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Payload {
    /// PROPOSAL(h, round, v, validRound).
    Proposal {
        /// The round proposed in.
        round: Round,
        /// The proposed value.
        value: Value,
        /// The round in which the proposer saw a quorum of prevotes for `value`, or none (-1).
        valid_round: Option<Round>,
    },
    /// PREVOTE or PRECOMMIT(h, round, id(v) or nil).
    Vote {
        /// Prevote or precommit.
        kind: VoteKind,
        /// The round voted in.
        round: Round,
        /// The value voted for, or nil.
        value: Option<Value>,
    },
}

impl Payload {
    /// The round the message belongs to.
    pub fn round(&self) -> Round {
        match self {
            Payload::Proposal { round, .. } | Payload::Vote { round, .. } => *round,
        }
    }
}

/// A payload with its sender and the sender's ed25519 signature over [`signing_bytes`].
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SignedMessage {
    /// The height the message belongs to.
    pub height: u64,
    /// Claimed sender.
    pub from: NodeId,
    /// Content.
    pub payload: Payload,
    /// Signature by `from`'s key.
    pub signature: [u8; 64],
}

impl fmt::Debug for SignedMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@h{}:{:?}", self.from, self.height, self.payload)
    }
}

/// The canonical bytes a signature covers: a domain tag, the instance's chain id, the height,
/// the sender and the payload.
pub fn signing_bytes(chain: &[u8; 32], height: u64, from: NodeId, payload: &Payload) -> Vec<u8> {
    let mut b = Vec::with_capacity(112);
    b.extend_from_slice(b"synod-bft-v2");
    b.extend_from_slice(chain);
    b.extend_from_slice(&height.to_le_bytes());
    b.extend_from_slice(&from.0.to_le_bytes());
    let put_value = |b: &mut Vec<u8>, v: &Value| {
        b.extend_from_slice(&(v.0.len() as u32).to_le_bytes());
        b.extend_from_slice(&v.0);
    };
    match payload {
        Payload::Proposal {
            round,
            value,
            valid_round,
        } => {
            b.push(0);
            b.extend_from_slice(&round.0.to_le_bytes());
            put_value(&mut b, value);
            match valid_round {
                Some(r) => {
                    b.push(1);
                    b.extend_from_slice(&r.0.to_le_bytes());
                }
                None => b.push(0),
            }
        }
        Payload::Vote { kind, round, value } => {
            b.push(match kind {
                VoteKind::Prevote => 1,
                VoteKind::Precommit => 2,
            });
            b.extend_from_slice(&round.0.to_le_bytes());
            match value {
                Some(v) => {
                    b.push(1);
                    put_value(&mut b, v);
                }
                None => b.push(0),
            }
        }
    }
    b
}

impl SignedMessage {
    /// Signs `payload` as `from` with `key`, at height 0 of the all-zero chain (tests and the
    /// simulator).
    pub fn sign(key: &SigningKey, from: NodeId, payload: Payload) -> SignedMessage {
        SignedMessage::sign_in(key, &[0; 32], 0, from, payload)
    }

    /// Signs `payload` as `from` with `key`, at `height` of `chain`.
    pub fn sign_in(
        key: &SigningKey,
        chain: &[u8; 32],
        height: u64,
        from: NodeId,
        payload: Payload,
    ) -> SignedMessage {
        let signature = key
            .sign(&signing_bytes(chain, height, from, &payload))
            .to_bytes();
        SignedMessage {
            height,
            from,
            payload,
            signature,
        }
    }

    /// Whether the signature is `from`'s over this message in the all-zero chain, given every
    /// node's public key.
    pub fn verify(&self, keys: &[VerifyingKey]) -> bool {
        self.verify_in(&[0; 32], keys)
    }

    /// Whether the signature is `from`'s over this message in `chain`.
    pub fn verify_in(&self, chain: &[u8; 32], keys: &[VerifyingKey]) -> bool {
        let Some(key) = keys.get(self.from.index()) else {
            return false;
        };
        let sig = Signature::from_bytes(&self.signature);
        key.verify(
            &signing_bytes(chain, self.height, self.from, &self.payload),
            &sig,
        )
        .is_ok()
    }
}

/// The deterministic signing key of `node` in the instance seeded with `seed` (simulation and
/// tests; a real deployment loads each node's own key).
pub fn signing_key(seed: u64, node: NodeId) -> SigningKey {
    let mut h = blake3::Hasher::new();
    h.update(b"synod-bft-key");
    h.update(&seed.to_le_bytes());
    h.update(&node.0.to_le_bytes());
    SigningKey::from_bytes(h.finalize().as_bytes())
}

/// Byzantine behaviour a node can prove.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Evidence {
    /// Two different signed messages from one node for one round and step (BFT-13).
    Equivocation {
        /// The message seen first.
        first: SignedMessage,
        /// The conflicting one.
        second: SignedMessage,
    },
}

/// The timers of a node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Timeout {
    /// OnTimeoutPropose(h, round) (L57).
    Propose(Round),
    /// OnTimeoutPrevote(h, round) (L61).
    Prevote(Round),
    /// OnTimeoutPrecommit(h, round) (L65).
    Precommit(Round),
    /// Time to gossip again (BFT-12).
    Rebroadcast,
}

/// What a node is told.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BftInput {
    /// Start the instance: StartRound(0) (L10).
    Start,
    /// A message from the network (possibly a relay, possibly forged).
    Message(SignedMessage),
    /// A timer set earlier fired.
    Timeout(Timeout),
    /// The verdict on a value the node asked about with [`BftOutput::Validate`].
    Validated {
        /// The value.
        value: Value,
        /// Whether it is valid.
        valid: bool,
    },
}

/// What a node asks its driver to do, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BftOutput {
    /// Store this message the node signed durably before carrying out any later output
    /// (BFT-16): [`BftNode::restore`] takes these records back.
    Persist(SignedMessage),
    /// Send to every other node.
    Broadcast(SignedMessage),
    /// Decide whether this value is valid and answer with [`BftInput::Validated`]; asked once
    /// per value (BFT-15).
    Validate(Value),
    /// Feed `Timeout(timeout)` back at `at_ms`.
    SetTimer {
        /// When.
        at_ms: u64,
        /// Which.
        timeout: Timeout,
    },
    /// The value is decided (L51); emitted once.
    Decide {
        /// The decided value.
        value: Value,
        /// The round it was decided in.
        round: Round,
    },
    /// Proof of a Byzantine node.
    Evidence(Evidence),
}

/// What a node dropped or noticed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BftCounters {
    /// Messages whose signature did not verify (BFT-14).
    pub bad_signature: u64,
    /// Messages from a node id outside `0..n`.
    pub unknown_sender: u64,
    /// Messages for rounds outside the window.
    pub out_of_window: u64,
    /// Proposals from a node that is not the round's proposer.
    pub not_proposer: u64,
    /// Exact repeats (relays, retransmissions, replays).
    pub duplicate: u64,
    /// Equivocations seen (evidence kept up to `evidence_max`).
    pub equivocation: u64,
    /// Proposals whose value the validity predicate rejected.
    pub invalid_value: u64,
    /// Messages of another height.
    pub other_height: u64,
}

/// Distinct messages kept per round, step and sender; an equivocator's further messages are
/// counted as evidence only.
pub const MESSAGES_PER_SLOT_MAX: usize = 3;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Slot {
    Proposal,
    Prevote,
    Precommit,
}

/// One node of a Tendermint instance for one height.
pub struct BftNode {
    id: NodeId,
    config: BftConfig,
    key: SigningKey,
    keys: Vec<VerifyingKey>,
    /// Shared signature verdicts, if any ([`BftNode::with_verify_cache`]).
    verify_cache: Option<VerifyCache>,
    /// Verdicts of [`BftInput::Validated`], by value.
    verdicts: BTreeMap<Value, bool>,
    /// Values asked about and not yet answered.
    validating: BTreeSet<Value>,
    /// A rule is waiting for a verdict: no later rule is tried this step.
    blocked: bool,
    /// getValue(): what this node proposes when it has no valid value.
    input: Value,
    round: Round,
    step: Step,
    started: bool,
    /// Rebuilt by [`BftNode::restore`] from messages it had signed.
    restored: bool,
    locked: Option<(Value, Round)>,
    valid_value: Option<(Value, Round)>,
    decision: Option<(Value, Round)>,
    proof: Vec<SignedMessage>,
    /// Distinct messages per (round, slot, sender), first first, at most
    /// [`MESSAGES_PER_SLOT_MAX`]. A sender counts once towards each value it signed, so a
    /// node that has seen both sides of an equivocation can still verify a decision's quorum
    /// (the paper's "upon 2f+1 messages" counts signed messages received, whatever else the
    /// sender signed).
    log: BTreeMap<(Round, Slot, NodeId), Vec<SignedMessage>>,
    /// "For the first time" guards of L34, L36, L47.
    fired: BTreeSet<(Round, u8)>,
    evidence: Vec<Evidence>,
    counters: BftCounters,
}

impl fmt::Debug for BftNode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BftNode")
            .field("id", &self.id)
            .field("round", &self.round)
            .field("step", &self.step)
            .field("locked", &self.locked)
            .field("valid", &self.valid_value)
            .field("decision", &self.decision)
            .finish()
    }
}

impl BftNode {
    /// Node `id` with its signing key, every node's public key (indexed by id) and the value
    /// it proposes when it has none from an earlier round. Validity is asked with
    /// [`BftOutput::Validate`].
    pub fn new(
        id: NodeId,
        config: BftConfig,
        key: SigningKey,
        keys: Vec<VerifyingKey>,
        input: Value,
    ) -> BftNode {
        assert_eq!(keys.len(), config.n, "one public key per node");
        BftNode {
            id,
            config,
            key,
            keys,
            verify_cache: None,
            verdicts: BTreeMap::new(),
            validating: BTreeSet::new(),
            blocked: false,
            input,
            round: Round(0),
            step: Step::Propose,
            started: false,
            restored: false,
            locked: None,
            valid_value: None,
            decision: None,
            proof: Vec::new(),
            log: BTreeMap::new(),
            fired: BTreeSet::new(),
            evidence: Vec::new(),
            counters: BftCounters::default(),
        }
    }

    /// Shares signature verdicts with other nodes through `cache` (the simulator's nodes share
    /// one).
    pub fn with_verify_cache(mut self, cache: VerifyCache) -> BftNode {
        self.verify_cache = Some(cache);
        self
    }

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.id
    }
    /// round_p.
    pub fn round(&self) -> Round {
        self.round
    }
    /// step_p.
    pub fn step_kind(&self) -> Step {
        self.step
    }
    /// lockedValue and lockedRound.
    pub fn locked(&self) -> Option<&(Value, Round)> {
        self.locked.as_ref()
    }
    /// validValue and validRound.
    pub fn valid_value(&self) -> Option<&(Value, Round)> {
        self.valid_value.as_ref()
    }
    /// decision_p, with its round.
    pub fn decision(&self) -> Option<&(Value, Round)> {
        self.decision.as_ref()
    }
    /// The signed proposal and precommits that justify the decision.
    pub fn decision_proof(&self) -> &[SignedMessage] {
        &self.proof
    }
    /// Evidence collected.
    pub fn evidence(&self) -> &[Evidence] {
        &self.evidence
    }
    /// Drop and event counters.
    pub fn counters(&self) -> BftCounters {
        self.counters
    }
    /// The configuration.
    pub fn config(&self) -> &BftConfig {
        &self.config
    }

    /// A node rebuilt from the messages it signed before a crash ([`BftOutput::Persist`]
    /// records, any order; records of another sender or height are ignored). It resumes in
    /// the latest round it signed in, at the step its messages there show, locked on its
    /// latest precommit for a value, and re-sends what it signed instead of signing anew.
    /// Feed it [`BftInput::Start`] like a fresh node.
    pub fn restore(
        id: NodeId,
        config: BftConfig,
        key: SigningKey,
        keys: Vec<VerifyingKey>,
        input: Value,
        own: &[SignedMessage],
    ) -> BftNode {
        let mut node = BftNode::new(id, config, key, keys, input);
        let height = node.config.height;
        let mut sink = Vec::new();
        for m in own.iter().filter(|m| m.from == id && m.height == height) {
            node.record(m.clone(), &mut sink);
        }
        let mine: Vec<&SignedMessage> = node
            .log
            .iter()
            .filter(|((_, _, from), _)| *from == id)
            .flat_map(|(_, ms)| ms.iter())
            .collect();
        let mut lock: Option<(Value, Round)> = None;
        let mut round = Round(0);
        for m in &mine {
            round = round.max(m.payload.round());
            if let Payload::Vote {
                kind: VoteKind::Precommit,
                round: r,
                value: Some(v),
            } = &m.payload
                && lock.as_ref().is_none_or(|(_, lr)| lr < r)
            {
                lock = Some((v.clone(), *r));
            }
        }
        let signed = |slot: Slot| node.log.contains_key(&(round, slot, id));
        node.step = if signed(Slot::Precommit) {
            Step::Precommit
        } else if signed(Slot::Prevote) {
            Step::Prevote
        } else {
            Step::Propose
        };
        node.round = round;
        node.valid_value = lock.clone();
        node.locked = lock;
        node.restored = !mine.is_empty();
        node
    }

    /// The single entry point: one input at `now_ms`, outputs appended to `out`.
    pub fn step(&mut self, now_ms: u64, input: BftInput, out: &mut Vec<BftOutput>) {
        self.blocked = false;
        match input {
            BftInput::Start => {
                if self.started {
                    return;
                }
                self.started = true;
                out.push(BftOutput::SetTimer {
                    at_ms: now_ms + self.config.rebroadcast_ms,
                    timeout: Timeout::Rebroadcast,
                });
                if self.restored && self.step != Step::Propose {
                    // BFT-16: resume where the persisted messages left off; re-send them.
                    self.gossip(out);
                } else {
                    self.start_round(now_ms, self.round, out); // L10
                }
            }
            BftInput::Validated { value, valid } => {
                if !self.validating.remove(&value) {
                    return; // not asked (or answered already): ignored
                }
                self.verdicts.insert(value, valid);
                if !self.started {
                    return;
                }
            }
            BftInput::Message(m) => {
                if !self.accept(m, out) || !self.started {
                    return;
                }
            }
            BftInput::Timeout(t) => {
                if !self.started {
                    return;
                }
                self.on_timeout(now_ms, t, out);
            }
        }
        self.apply_rules(now_ms, out);
    }

    /// [`BftNode::step`], answering every [`BftOutput::Validate`] at once with `valid` (the
    /// simulator's and the tests' synchronous predicate). The `Validate` outputs stay in `out`.
    pub fn step_with(
        &mut self,
        now_ms: u64,
        input: BftInput,
        valid: &dyn Fn(&Value) -> bool,
        out: &mut Vec<BftOutput>,
    ) {
        let mut from = out.len();
        self.step(now_ms, input, out);
        loop {
            let asked: Vec<Value> = out[from..]
                .iter()
                .filter_map(|o| match o {
                    BftOutput::Validate(v) => Some(v.clone()),
                    _ => None,
                })
                .collect();
            if asked.is_empty() {
                return;
            }
            from = out.len();
            for value in asked {
                let ok = valid(&value);
                self.step(now_ms, BftInput::Validated { value, valid: ok }, out);
            }
        }
    }

    fn start_round(&mut self, now_ms: u64, round: Round, out: &mut Vec<BftOutput>) {
        // L11-L21
        self.round = round;
        self.step = Step::Propose;
        if self.config.proposer(round) == self.id {
            // L14-L19: propose validValue if there is one, else getValue().
            let (value, valid_round) = match &self.valid_value {
                Some((v, vr)) => (v.clone(), Some(*vr)),
                None => (self.input.clone(), None),
            };
            self.broadcast(
                Payload::Proposal {
                    round,
                    value,
                    valid_round,
                },
                out,
            );
        } else {
            // L21
            out.push(BftOutput::SetTimer {
                at_ms: now_ms
                    + self
                        .config
                        .timeout_ms(self.config.timeout_propose_ms, round),
                timeout: Timeout::Propose(round),
            });
        }
    }

    fn on_timeout(&mut self, now_ms: u64, t: Timeout, out: &mut Vec<BftOutput>) {
        if self.decision.is_some() && t != Timeout::Rebroadcast {
            return;
        }
        match t {
            Timeout::Propose(r) if r == self.round && self.step == Step::Propose => {
                // L57-L60
                self.vote(VoteKind::Prevote, None, out);
                self.step = Step::Prevote;
            }
            Timeout::Prevote(r) if r == self.round && self.step == Step::Prevote => {
                // L61-L64
                self.vote(VoteKind::Precommit, None, out);
                self.step = Step::Precommit;
            }
            Timeout::Precommit(r) if r == self.round && r.0 + 1 < self.config.rounds_max => {
                // L65-L67 (no round at or beyond rounds_max is entered)
                self.start_round(now_ms, Round(r.0 + 1), out);
            }
            Timeout::Rebroadcast => {
                self.gossip(out);
                out.push(BftOutput::SetTimer {
                    at_ms: now_ms + self.config.rebroadcast_ms,
                    timeout: Timeout::Rebroadcast,
                });
            }
            _ => {}
        }
    }

    /// BFT-12: send again what lagging or partitioned nodes need. Relayed messages keep their
    /// original signature, so relaying needs no trust in the relay.
    fn gossip(&mut self, out: &mut Vec<BftOutput>) {
        if self.decision.is_some() {
            for m in &self.proof {
                out.push(BftOutput::Broadcast(m.clone()));
            }
            return;
        }
        let lo = Round(self.round.0.saturating_sub(1));
        for ((r, _, from), ms) in self.log.range((lo, Slot::Proposal, NodeId(0))..) {
            if *from == self.id || (*r == self.round && self.config.proposer(*r) == *from) {
                for m in ms {
                    out.push(BftOutput::Broadcast(m.clone()));
                }
            }
        }
        if let Some((v, vr)) = self.valid_value.clone() {
            // The quorum of prevotes that lets others accept a re-proposal of v (L28).
            for (_, ms) in self
                .log
                .range((vr, Slot::Prevote, NodeId(0))..=(vr, Slot::Prevote, NodeId(u16::MAX)))
            {
                for m in ms {
                    if matches!(&m.payload, Payload::Vote { value: Some(x), .. } if *x == v) {
                        out.push(BftOutput::Broadcast(m.clone()));
                    }
                }
            }
        }
    }

    /// Signs, persists, records and sends `payload`, unless this node already signed a
    /// message for that round and step (after a restore): then that one is sent again, and
    /// nothing new is signed (BFT-16).
    fn broadcast(&mut self, payload: Payload, out: &mut Vec<BftOutput>) {
        let m = SignedMessage::sign_in(
            &self.key,
            &self.config.chain,
            self.config.height,
            self.id,
            payload,
        );
        if let Some(first) = self.log.get(&Self::slot_key(&m)).and_then(|ms| ms.first()) {
            let again = first.clone();
            out.push(BftOutput::Broadcast(again));
            return;
        }
        out.push(BftOutput::Persist(m.clone()));
        self.record(m.clone(), out);
        out.push(BftOutput::Broadcast(m));
    }

    fn vote(&mut self, kind: VoteKind, value: Option<Value>, out: &mut Vec<BftOutput>) {
        let round = self.round;
        self.broadcast(Payload::Vote { kind, round, value }, out);
    }

    /// Checks a message from the network and stores it; false if dropped.
    fn accept(&mut self, m: SignedMessage, out: &mut Vec<BftOutput>) -> bool {
        if m.height != self.config.height {
            self.counters.other_height += 1;
            return false;
        }
        if m.from.index() >= self.config.n {
            self.counters.unknown_sender += 1;
            return false;
        }
        let r = m.payload.round();
        if r.0 >= self.config.rounds_max || r.0 > self.round.0 + self.config.rounds_ahead_max {
            self.counters.out_of_window += 1;
            return false;
        }
        if let Payload::Proposal { round, .. } = &m.payload
            && self.config.proposer(*round) != m.from
        {
            self.counters.not_proposer += 1;
            return false;
        }
        // Cheap checks first; an exact repeat of a stored message needs no verification.
        if self
            .log
            .get(&Self::slot_key(&m))
            .is_some_and(|ms| ms.contains(&m))
        {
            self.counters.duplicate += 1;
            return false;
        }
        let valid = match &self.verify_cache {
            Some(c) => c.verify(&m, &self.config.chain, &self.keys),
            None => m.verify_in(&self.config.chain, &self.keys),
        };
        if !valid {
            self.counters.bad_signature += 1; // BFT-14
            return false;
        }
        self.record(m, out)
    }

    fn slot_key(m: &SignedMessage) -> (Round, Slot, NodeId) {
        let slot = match &m.payload {
            Payload::Proposal { .. } => Slot::Proposal,
            Payload::Vote {
                kind: VoteKind::Prevote,
                ..
            } => Slot::Prevote,
            Payload::Vote {
                kind: VoteKind::Precommit,
                ..
            } => Slot::Precommit,
        };
        (m.payload.round(), slot, m.from)
    }

    fn record(&mut self, m: SignedMessage, out: &mut Vec<BftOutput>) -> bool {
        let key = Self::slot_key(&m);
        let ms = self.log.entry(key).or_default();
        if ms.is_empty() {
            ms.push(m);
            return true;
        }
        if ms.contains(&m) {
            self.counters.duplicate += 1;
            return false;
        }
        // BFT-13: a second, different message for the same slot is an equivocation.
        self.counters.equivocation += 1;
        let first = ms[0].clone();
        let kept = ms.len() < MESSAGES_PER_SLOT_MAX;
        if kept {
            ms.push(m.clone());
        }
        if self.evidence.len() < self.config.evidence_max {
            let e = Evidence::Equivocation { first, second: m };
            self.evidence.push(e.clone());
            out.push(BftOutput::Evidence(e));
        }
        kept
    }

    /// The first proposal of `round` from its proposer (the one L22/L28 prevote on).
    fn proposal(&self, round: Round) -> Option<(&Value, Option<Round>)> {
        self.proposals(round).next()
    }

    /// Every distinct proposal of `round` from its proposer (L36 and L49 accept any).
    fn proposals(&self, round: Round) -> impl Iterator<Item = (&Value, Option<Round>)> {
        let from = self.config.proposer(round);
        self.log
            .get(&(round, Slot::Proposal, from))
            .into_iter()
            .flatten()
            .filter_map(|m| match &m.payload {
                Payload::Proposal {
                    value, valid_round, ..
                } => Some((value, *valid_round)),
                Payload::Vote { .. } => None,
            })
    }

    /// Senders of a vote of this slot in `round` for `value` (nil when None).
    fn count(&self, round: Round, slot: Slot, value: Option<&Value>) -> usize {
        self.log
            .range((round, slot, NodeId(0))..=(round, slot, NodeId(u16::MAX)))
            .filter(|(_, ms)| {
                ms.iter().any(|m| match &m.payload {
                    Payload::Vote { value: v, .. } => v.as_ref() == value,
                    Payload::Proposal { .. } => false,
                })
            })
            .count()
    }

    /// Senders of any vote of this slot in `round`.
    fn count_any(&self, round: Round, slot: Slot) -> usize {
        self.log
            .range((round, slot, NodeId(0))..=(round, slot, NodeId(u16::MAX)))
            .filter(|(_, ms)| !ms.is_empty())
            .count()
    }

    /// The verdict on `v`, if known. Unknown: asks for it once ([`BftOutput::Validate`]) and
    /// blocks the rest of this step's scan, so the rules fire in the same order whenever the
    /// answer comes.
    fn is_valid(&mut self, v: &Value, out: &mut Vec<BftOutput>) -> Option<bool> {
        match self.verdicts.get(v) {
            Some(ok) => {
                if !ok {
                    self.counters.invalid_value += 1;
                }
                Some(*ok)
            }
            None => {
                if self.validating.insert(v.clone()) {
                    out.push(BftOutput::Validate(v.clone()));
                }
                self.blocked = true;
                None
            }
        }
    }

    /// Fires every enabled upon-rule until none is; each rule changes the state, so this
    /// terminates (steps only advance, rounds only grow, guards fire once). The rules are
    /// tried in this order, and after one fires the scan starts again from the first.
    fn apply_rules(&mut self, now_ms: u64, out: &mut Vec<BftOutput>) {
        for _ in 0..(4 * self.config.rounds_max as usize + 16) {
            if self.decision.is_some() || self.blocked {
                return;
            }
            let fired = self.upon_precommit_quorum(out)
                || (!self.blocked && self.upon_later_round(now_ms, out))
                || (!self.blocked && self.upon_proposal(out))
                || (!self.blocked && self.upon_prevote_quorum_any(now_ms, out))
                || (!self.blocked && self.upon_prevote_quorum_for_value(out))
                || (!self.blocked && self.upon_prevote_quorum_nil(out))
                || (!self.blocked && self.upon_precommit_quorum_any(now_ms, out));
            if !fired {
                return;
            }
        }
    }

    /// BFT-7 (L49-L54): decide on a proposal with a quorum of precommits, in any round.
    fn upon_precommit_quorum(&mut self, out: &mut Vec<BftOutput>) -> bool {
        match self.precommitted_proposal() {
            Some((v, pr)) if self.is_valid(&v, out) == Some(true) => {
                self.decide(v, pr, out);
                true
            }
            _ => false,
        }
    }

    /// The first proposal, by round, that has a quorum of precommits for its value.
    fn precommitted_proposal(&self) -> Option<(Value, Round)> {
        let q = self.config.quorum();
        let mut rounds = self
            .log
            .keys()
            .filter(|(_, s, _)| *s == Slot::Proposal)
            .map(|(r, _, _)| *r);
        rounds.find_map(|pr| {
            self.proposals(pr)
                .find(|(v, _)| self.count(pr, Slot::Precommit, Some(v)) >= q)
                .map(|(v, _)| (v.clone(), pr))
        })
    }

    /// Decides `v` in round `pr`, keeping the proposal and the precommits for it as the proof.
    fn decide(&mut self, v: Value, pr: Round, out: &mut Vec<BftOutput>) {
        let from = self.config.proposer(pr);
        self.proof = self
            .log
            .range((pr, Slot::Proposal, from)..=(pr, Slot::Precommit, NodeId(u16::MAX)))
            .filter(|((_, s, f), _)| (*s == Slot::Proposal && *f == from) || *s == Slot::Precommit)
            .flat_map(|(_, ms)| ms.iter())
            .filter(|m| match &m.payload {
                Payload::Proposal { value, .. } => *value == v,
                Payload::Vote { value, .. } => value.as_ref() == Some(&v),
            })
            .cloned()
            .collect();
        self.decision = Some((v.clone(), pr));
        out.push(BftOutput::Decide {
            value: v,
            round: pr,
        });
    }

    /// BFT-8 (L55-L56): f+1 senders of round r' > round_p → skip to r'.
    fn upon_later_round(&mut self, now_ms: u64, out: &mut Vec<BftOutput>) -> bool {
        match self.later_round() {
            Some(rr) => {
                self.start_round(now_ms, rr, out);
                true
            }
            None => false,
        }
    }

    /// The highest round beyond ours with messages from more than f senders.
    fn later_round(&self) -> Option<Round> {
        let senders: BTreeMap<Round, BTreeSet<NodeId>> = self
            .log
            .range((Round(self.round.0 + 1), Slot::Proposal, NodeId(0))..)
            .fold(BTreeMap::new(), |mut acc, ((rr, _, from), _)| {
                acc.entry(*rr).or_default().insert(*from);
                acc
            });
        senders
            .iter()
            .rev()
            .find(|(_, s)| s.len() > self.config.f)
            .map(|(rr, _)| *rr)
    }

    /// BFT-2 … BFT-4 (L22-L33): in step propose, prevote on the round's proposal: v when it is
    /// valid and the lock allows it (BFT-3), else nil.
    fn upon_proposal(&mut self, out: &mut Vec<BftOutput>) -> bool {
        let r = self.round;
        if self.step != Step::Propose {
            return false;
        }
        let Some((v, vr)) = self.proposal(r).map(|(v, vr)| (v.clone(), vr)) else {
            return false;
        };
        let lock_allows = match vr {
            // L22-L27
            None => self.locked.is_none() || self.locked.as_ref().is_some_and(|(lv, _)| *lv == v),
            // L28-L33
            Some(vr)
                if vr < r && self.count(vr, Slot::Prevote, Some(&v)) >= self.config.quorum() =>
            {
                self.locked.as_ref().is_none_or(|(_, lr)| *lr <= vr)
                    || self.locked.as_ref().is_some_and(|(lv, _)| *lv == v)
            }
            _ => return false,
        };
        let Some(valid) = self.is_valid(&v, out) else {
            return false; // waiting for the verdict
        };
        let ok = valid && lock_allows;
        self.vote(VoteKind::Prevote, ok.then_some(v), out);
        self.step = Step::Prevote;
        true
    }

    /// BFT-10 (L34-L35): a quorum of prevotes of any kind in step prevote, the first time:
    /// set timeoutPrevote(r).
    fn upon_prevote_quorum_any(&mut self, now_ms: u64, out: &mut Vec<BftOutput>) -> bool {
        let r = self.round;
        if self.step == Step::Prevote
            && self.count_any(r, Slot::Prevote) >= self.config.quorum()
            && self.fired.insert((r, 34))
        {
            out.push(BftOutput::SetTimer {
                at_ms: now_ms + self.config.timeout_ms(self.config.timeout_prevote_ms, r),
                timeout: Timeout::Prevote(r),
            });
            return true;
        }
        false
    }

    /// BFT-5 (L36-L43): the round's proposal with a quorum of prevotes for it, in step prevote
    /// or later, the first time: lock and precommit it (in step prevote), and make it the valid
    /// value.
    fn upon_prevote_quorum_for_value(&mut self, out: &mut Vec<BftOutput>) -> bool {
        let r = self.round;
        let l36 = if self.step >= Step::Prevote && !self.fired.contains(&(r, 36)) {
            let q = self.config.quorum();
            self.proposals(r)
                .map(|(v, _)| v.clone())
                .find(|v| self.count(r, Slot::Prevote, Some(v)) >= q)
        } else {
            None
        };
        let Some(v) = l36 else {
            return false;
        };
        if self.is_valid(&v, out) != Some(true) {
            return false;
        }
        self.fired.insert((r, 36));
        if self.step == Step::Prevote {
            self.locked = Some((v.clone(), r));
            self.vote(VoteKind::Precommit, Some(v.clone()), out);
            self.step = Step::Precommit;
        }
        self.valid_value = Some((v, r));
        true
    }

    /// BFT-6 (L44-L46): in step prevote, a quorum of nil prevotes → precommit nil.
    fn upon_prevote_quorum_nil(&mut self, out: &mut Vec<BftOutput>) -> bool {
        if self.step == Step::Prevote
            && self.count(self.round, Slot::Prevote, None) >= self.config.quorum()
        {
            self.vote(VoteKind::Precommit, None, out);
            self.step = Step::Precommit;
            return true;
        }
        false
    }

    /// BFT-11 (L47-L48): a quorum of precommits of any kind, the first time: set
    /// timeoutPrecommit(r).
    fn upon_precommit_quorum_any(&mut self, now_ms: u64, out: &mut Vec<BftOutput>) -> bool {
        let r = self.round;
        if self.count_any(r, Slot::Precommit) >= self.config.quorum() && self.fired.insert((r, 47))
        {
            out.push(BftOutput::SetTimer {
                at_ms: now_ms + self.config.timeout_ms(self.config.timeout_precommit_ms, r),
                timeout: Timeout::Precommit(r),
            });
            return true;
        }
        false
    }
}
