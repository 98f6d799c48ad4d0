//! What runs on a simulated node: a correct BFT or CT node, or a Byzantine one.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use synod_core::protocols::bft::{
    BftConfig, BftInput, BftNode, BftOutput, Payload, SignedMessage, Timeout, VerifyCache,
    VoteKind, signing_key,
};
use synod_core::protocols::ct::{CtConfig, CtInput, CtMessage, CtNode, CtOutput};
use synod_core::protocols::detector::{
    DetectorInput, DetectorOutput, EventuallyPerfect, EventuallyPerfectConfig, FailureDetector,
};
use synod_core::protocols::{NodeId, Round, Value};
use synod_core::rng::SeededRng;

/// A message on the simulated wire.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Wire {
    /// A Tendermint message.
    Bft(SignedMessage),
    /// A Chandra–Toueg message.
    Ct(CtMessage),
    /// A failure-detector heartbeat.
    Heartbeat,
}

impl Wire {
    /// Feeds a compact, unambiguous encoding into the trace digest.
    pub fn digest_into(&self, h: &mut blake3::Hasher) {
        match self {
            Wire::Bft(m) => {
                h.update(&[1]);
                h.update(&m.from.0.to_le_bytes());
                h.update(&m.signature);
            }
            Wire::Ct(m) => {
                h.update(&[2]);
                h.update(format!("{m:?}").as_bytes());
            }
            Wire::Heartbeat => {
                h.update(&[3]);
            }
        }
    }

    /// Whether this is protocol traffic (not a heartbeat).
    pub fn is_protocol(&self) -> bool {
        !matches!(self, Wire::Heartbeat)
    }
}

/// What an actor asks the simulator to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Effect {
    /// Send to one node.
    Send(NodeId, Wire),
    /// Send to every other node.
    Broadcast(Wire),
    /// Call `timer(tag)` at `at_ms`.
    Timer {
        /// When.
        at_ms: u64,
        /// Which.
        tag: u64,
    },
    /// The node decided.
    Decide(Value),
    /// The node recorded evidence of a Byzantine peer.
    Evidence,
}

/// A node as the simulator sees it.
pub trait SimActor: Send {
    /// The run begins.
    fn start(&mut self, now_ms: u64, fx: &mut Vec<Effect>);
    /// A message arrived.
    fn message(&mut self, now_ms: u64, from: NodeId, msg: Wire, fx: &mut Vec<Effect>);
    /// A timer fired.
    fn timer(&mut self, now_ms: u64, tag: u64, fx: &mut Vec<Effect>);
    /// The node's decision, if any.
    fn decision(&self) -> Option<Value>;
    /// Messages this node dropped as invalid (bad signature, out of window, …).
    fn dropped(&self) -> u64 {
        0
    }
    /// A one-line summary of the node's protocol state, for failure reports.
    fn describe(&self) -> String {
        String::new()
    }
}

/// The validity predicate used in simulations: values start with `ok:`.
pub fn sim_valid(v: &Value) -> bool {
    v.0.starts_with(b"ok:")
}

/// The value node `id` proposes.
pub fn sim_input(id: NodeId) -> Value {
    Value(format!("ok:{}", id.0).into_bytes())
}

/// What the BFT nodes of one simulation share: public keys and signature verdicts.
#[derive(Clone, Debug)]
pub struct SharedKeys {
    /// Every node's public key, by id.
    pub keys: Vec<ed25519_dalek::VerifyingKey>,
    /// Signature verdicts.
    pub cache: VerifyCache,
}

impl SharedKeys {
    /// The keys of an `n`-node instance keyed by `seed`.
    pub fn new(n: usize, seed: u64) -> SharedKeys {
        SharedKeys {
            keys: (0..n as u16)
                .map(|i| signing_key(seed, NodeId(i)).verifying_key())
                .collect(),
            cache: VerifyCache::new(),
        }
    }
}

/// A correct (or value-faulty) Tendermint node.
pub struct BftActor {
    node: BftNode,
    out: Vec<BftOutput>,
}

impl BftActor {
    /// Node `id` of an instance keyed by `seed`, proposing `input`.
    pub fn new(id: NodeId, config: BftConfig, seed: u64, input: Value) -> BftActor {
        let keys = (0..config.n as u16)
            .map(|i| signing_key(seed, NodeId(i)).verifying_key())
            .collect();
        let node = BftNode::new(id, config, signing_key(seed, id), keys, input);
        BftActor {
            node,
            out: Vec::new(),
        }
    }

    /// The same node, with every node's public key derived once per simulation and signature
    /// verdicts shared between the simulation's nodes (pure functions: no trace changes).
    pub fn shared(
        id: NodeId,
        config: BftConfig,
        seed: u64,
        input: Value,
        shared: &SharedKeys,
    ) -> BftActor {
        let node = BftNode::new(
            id,
            config,
            signing_key(seed, id),
            shared.keys.clone(),
            input,
        )
        .with_verify_cache(shared.cache.clone());
        BftActor {
            node,
            out: Vec::new(),
        }
    }

    /// The node inside.
    pub fn node(&self) -> &BftNode {
        &self.node
    }

    fn tag(t: Timeout) -> u64 {
        match t {
            Timeout::Propose(r) => u64::from(r.0) << 2,
            Timeout::Prevote(r) => (u64::from(r.0) << 2) | 1,
            Timeout::Precommit(r) => (u64::from(r.0) << 2) | 2,
            Timeout::Rebroadcast => 3,
        }
    }

    fn untag(tag: u64) -> Timeout {
        let r = Round((tag >> 2) as u32);
        match tag & 3 {
            0 => Timeout::Propose(r),
            1 => Timeout::Prevote(r),
            2 => Timeout::Precommit(r),
            _ => Timeout::Rebroadcast,
        }
    }

    fn run(&mut self, now_ms: u64, input: BftInput, fx: &mut Vec<Effect>) {
        self.out.clear();
        // Validity is answered at once; persistence is the memory that survives a crash.
        self.node
            .step_with(now_ms, input, &sim_valid, &mut self.out);
        for o in self.out.drain(..) {
            fx.push(match o {
                BftOutput::Broadcast(m) => Effect::Broadcast(Wire::Bft(m)),
                BftOutput::SetTimer { at_ms, timeout } => Effect::Timer {
                    at_ms,
                    tag: Self::tag(timeout),
                },
                BftOutput::Decide { value, .. } => Effect::Decide(value),
                BftOutput::Evidence(_) => Effect::Evidence,
                BftOutput::Persist(_) | BftOutput::Validate(_) => continue,
            });
        }
    }
}

impl SimActor for BftActor {
    fn start(&mut self, now_ms: u64, fx: &mut Vec<Effect>) {
        self.run(now_ms, BftInput::Start, fx);
    }
    fn message(&mut self, now_ms: u64, _from: NodeId, msg: Wire, fx: &mut Vec<Effect>) {
        if let Wire::Bft(m) = msg {
            self.run(now_ms, BftInput::Message(m), fx);
        }
    }
    fn timer(&mut self, now_ms: u64, tag: u64, fx: &mut Vec<Effect>) {
        self.run(now_ms, BftInput::Timeout(Self::untag(tag)), fx);
    }
    fn decision(&self) -> Option<Value> {
        self.node.decision().map(|(v, _)| v.clone())
    }
    fn dropped(&self) -> u64 {
        let c = self.node.counters();
        c.bad_signature + c.unknown_sender + c.out_of_window + c.not_proposer + c.invalid_value
    }
    fn describe(&self) -> String {
        let n = &self.node;
        format!(
            "round {} step {:?} locked {:?} valid {:?}",
            n.round().0,
            n.step_kind(),
            n.locked(),
            n.valid_value()
        )
    }
}

const CT_RETRANSMIT: u64 = 0;
const CT_HEARTBEAT: u64 = 1;
const CT_TICK: u64 = 2;

/// A Chandra–Toueg node with its own ◇P detector fed by heartbeats.
pub struct CtActor {
    node: CtNode,
    detector: EventuallyPerfect,
    heartbeat_ms: u64,
    tick_ms: u64,
    out: Vec<CtOutput>,
    fd_out: Vec<DetectorOutput>,
}

impl CtActor {
    /// Node `id` of `n`, proposing `input`.
    pub fn new(id: NodeId, n: usize, input: Value) -> CtActor {
        let peers = (0..n as u16).map(NodeId).filter(|p| *p != id);
        CtActor {
            node: CtNode::new(id, CtConfig::new(n), input),
            detector: EventuallyPerfect::new(
                EventuallyPerfectConfig {
                    timeout_initial_ms: 60,
                    increment_ms: 40,
                    timeout_max_ms: 10_000,
                },
                peers,
                0,
            ),
            heartbeat_ms: 20,
            tick_ms: 10,
            out: Vec::new(),
            fd_out: Vec::new(),
        }
    }

    /// The node inside.
    pub fn node(&self) -> &CtNode {
        &self.node
    }

    fn run(&mut self, now_ms: u64, input: CtInput, fx: &mut Vec<Effect>) {
        self.out.clear();
        self.node.step(now_ms, input, &mut self.out);
        for o in self.out.drain(..) {
            fx.push(match o {
                CtOutput::Send { to, message } => Effect::Send(to, Wire::Ct(message)),
                CtOutput::SetRetransmit { at_ms } => Effect::Timer {
                    at_ms,
                    tag: CT_RETRANSMIT,
                },
                CtOutput::Decide(v) => Effect::Decide(v),
            });
        }
    }

    fn detect(&mut self, now_ms: u64, input: DetectorInput, fx: &mut Vec<Effect>) {
        self.fd_out.clear();
        self.detector.step(now_ms, input, &mut self.fd_out);
        let changes: Vec<DetectorOutput> = self.fd_out.drain(..).collect();
        for c in changes {
            let input = match c {
                DetectorOutput::Suspect(p) => CtInput::Suspect(p),
                DetectorOutput::Trust(p) => CtInput::Trust(p),
            };
            self.run(now_ms, input, fx);
        }
    }
}

impl SimActor for CtActor {
    fn start(&mut self, now_ms: u64, fx: &mut Vec<Effect>) {
        self.run(now_ms, CtInput::Start, fx);
        fx.push(Effect::Broadcast(Wire::Heartbeat));
        fx.push(Effect::Timer {
            at_ms: now_ms + self.heartbeat_ms,
            tag: CT_HEARTBEAT,
        });
        fx.push(Effect::Timer {
            at_ms: now_ms + self.tick_ms,
            tag: CT_TICK,
        });
    }
    fn message(&mut self, now_ms: u64, from: NodeId, msg: Wire, fx: &mut Vec<Effect>) {
        // Any message is a sign of life.
        self.detect(now_ms, DetectorInput::Heartbeat(from), fx);
        if let Wire::Ct(message) = msg {
            self.run(now_ms, CtInput::Message { from, message }, fx);
        }
    }
    fn timer(&mut self, now_ms: u64, tag: u64, fx: &mut Vec<Effect>) {
        match tag {
            CT_RETRANSMIT => self.run(now_ms, CtInput::Retransmit, fx),
            CT_HEARTBEAT => {
                fx.push(Effect::Broadcast(Wire::Heartbeat));
                fx.push(Effect::Timer {
                    at_ms: now_ms + self.heartbeat_ms,
                    tag: CT_HEARTBEAT,
                });
            }
            _ => {
                self.detect(now_ms, DetectorInput::Tick, fx);
                fx.push(Effect::Timer {
                    at_ms: now_ms + self.tick_ms,
                    tag: CT_TICK,
                });
            }
        }
    }
    fn decision(&self) -> Option<Value> {
        self.node.decision().cloned()
    }
    fn dropped(&self) -> u64 {
        let c = self.node.counters();
        c.unknown_sender + c.out_of_window + c.misdirected
    }
    fn describe(&self) -> String {
        let (e, ts) = self.node.estimate();
        let suspected: Vec<u16> = (0..64)
            .map(NodeId)
            .filter(|p| self.detector.is_suspected(*p))
            .map(|p| p.0)
            .collect();
        format!(
            "round {} estimate {e} ts {ts} suspects {suspected:?}",
            self.node.round().0
        )
    }
}

/// How a Byzantine BFT node misbehaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// Tells one half of the nodes value A and the other half value B, in every step.
    Equivocate,
    /// Votes for two values (and nil) to everyone in every step.
    DoubleVote,
    /// Follows the protocol but proposes a value the validity predicate rejects.
    WrongValue,
    /// Sends messages in other nodes' names with signatures that do not verify.
    Forge,
    /// Replays old signed messages it has seen, to random nodes.
    Replay,
    /// Sends nothing at all.
    Silent,
    /// Sends many signed messages for random rounds and values (bounded per tick).
    Flood,
}

impl Strategy {
    /// Every strategy.
    pub const ALL: [Strategy; 7] = [
        Strategy::Equivocate,
        Strategy::DoubleVote,
        Strategy::WrongValue,
        Strategy::Forge,
        Strategy::Replay,
        Strategy::Silent,
        Strategy::Flood,
    ];
}

const BYZ_TICK_MS: u64 = 50;
const FLOOD_PER_TICK: usize = 32;
const REPLAY_KEEP: usize = 256;

/// A Byzantine Tendermint node that holds its own valid key (and no one else's).
pub struct ByzantineActor {
    id: NodeId,
    config: BftConfig,
    key: ed25519_dalek::SigningKey,
    strategy: Strategy,
    rng: SeededRng,
    acted: BTreeSet<u32>,
    round_max_seen: u32,
    seen: Vec<SignedMessage>,
    group_a: Vec<NodeId>,
    group_b: Vec<NodeId>,
    /// Signatures it made, by payload: ed25519 signing is deterministic (RFC 8032), so a
    /// payload signed again gets the same bytes, and a flood repeats payloads often.
    signed: std::cell::RefCell<BTreeMap<Payload, SignedMessage>>,
    reuse: bool,
}

/// Signatures a Byzantine actor keeps for re-use.
const SIGNED_KEEP: usize = 4096;

impl ByzantineActor {
    /// Node `id` of an instance keyed by `seed`, misbehaving by `strategy`.
    pub fn new(id: NodeId, config: BftConfig, seed: u64, strategy: Strategy) -> ByzantineActor {
        let mut rng = SeededRng::derive(seed, &format!("byzantine-{}", id.0));
        let mut others: Vec<NodeId> = (0..config.n as u16)
            .map(NodeId)
            .filter(|p| *p != id)
            .collect();
        // A seeded shuffle decides who hears which value.
        for i in (1..others.len()).rev() {
            let j = rng.index(i + 1);
            others.swap(i, j);
        }
        let half = others.len() / 2;
        let group_b = others.split_off(half);
        ByzantineActor {
            id,
            key: signing_key(seed, id),
            config,
            strategy,
            rng,
            acted: BTreeSet::new(),
            round_max_seen: 0,
            seen: Vec::new(),
            group_a: others,
            group_b,
            signed: std::cell::RefCell::new(BTreeMap::new()),
            reuse: false,
        }
    }

    /// Keeps the signatures it makes for re-use (the simulator's shared mode; a pure
    /// function, so no trace changes).
    pub fn reusing_signatures(mut self) -> ByzantineActor {
        self.reuse = true;
        self
    }

    fn sign(&self, payload: Payload) -> SignedMessage {
        if !self.reuse {
            return SignedMessage::sign(&self.key, self.id, payload);
        }
        if let Some(m) = self.signed.borrow().get(&payload) {
            return m.clone();
        }
        let m = SignedMessage::sign(&self.key, self.id, payload.clone());
        let mut cache = self.signed.borrow_mut();
        if cache.len() < SIGNED_KEEP {
            cache.insert(payload, m.clone());
        }
        m
    }

    fn value(tag: &str) -> Value {
        Value(format!("ok:{tag}").into_bytes())
    }

    fn step_messages(&self, round: Round, value: Option<Value>) -> Vec<SignedMessage> {
        let mut ms = Vec::new();
        if self.config.proposer(round) == self.id
            && let Some(v) = &value
        {
            ms.push(self.sign(Payload::Proposal {
                round,
                value: v.clone(),
                valid_round: None,
            }));
        }
        for kind in [VoteKind::Prevote, VoteKind::Precommit] {
            ms.push(self.sign(Payload::Vote {
                kind,
                round,
                value: value.clone(),
            }));
        }
        ms
    }

    fn act(&mut self, round: Round, fx: &mut Vec<Effect>) {
        match self.strategy {
            Strategy::Equivocate => {
                let a = self.step_messages(round, Some(Self::value("A")));
                let b = self.step_messages(round, Some(Self::value("B")));
                for to in &self.group_a {
                    for m in &a {
                        fx.push(Effect::Send(*to, Wire::Bft(m.clone())));
                    }
                }
                for to in &self.group_b {
                    for m in &b {
                        fx.push(Effect::Send(*to, Wire::Bft(m.clone())));
                    }
                }
            }
            Strategy::DoubleVote => {
                for v in [Some(Self::value("A")), Some(Self::value("B")), None] {
                    for m in self.step_messages(round, v) {
                        fx.push(Effect::Broadcast(Wire::Bft(m)));
                    }
                }
            }
            Strategy::Forge => {
                for victim in 0..self.config.n as u16 {
                    let victim = NodeId(victim);
                    if victim == self.id {
                        continue;
                    }
                    // Signed with our own key in the victim's name: must not verify.
                    let payload = Payload::Vote {
                        kind: VoteKind::Precommit,
                        round,
                        value: Some(Self::value("FORGED")),
                    };
                    let mut m = self.sign(payload);
                    m.from = victim;
                    fx.push(Effect::Broadcast(Wire::Bft(m)));
                    let mut p = self.sign(Payload::Proposal {
                        round,
                        value: Self::value("FORGED"),
                        valid_round: None,
                    });
                    p.from = self.config.proposer(round);
                    p.signature[0] ^= 1;
                    fx.push(Effect::Broadcast(Wire::Bft(p)));
                }
            }
            Strategy::Replay | Strategy::Silent | Strategy::Flood | Strategy::WrongValue => {}
        }
    }

    fn tick(&mut self, fx: &mut Vec<Effect>) {
        match self.strategy {
            Strategy::Equivocate | Strategy::DoubleVote | Strategy::Forge => {
                // Repeat the lie for the latest round, in case the network lost it.
                self.act(Round(self.round_max_seen), fx);
            }
            Strategy::Replay => {
                for _ in 0..8.min(self.seen.len()) {
                    let m = self.seen[self.rng.index(self.seen.len())].clone();
                    let to = NodeId(self.rng.below(self.config.n as u64) as u16);
                    if to != self.id {
                        fx.push(Effect::Send(to, Wire::Bft(m)));
                    }
                }
            }
            Strategy::Flood => {
                for _ in 0..FLOOD_PER_TICK {
                    let round =
                        Round(self.rng.below(u64::from(self.config.rounds_max) + 10) as u32);
                    let value = match self.rng.below(3) {
                        0 => None,
                        1 => Some(Self::value(&format!("F{}", self.rng.below(4)))),
                        _ => Some(Value(b"junk".to_vec())),
                    };
                    let kind = if self.rng.chance(0.5) {
                        VoteKind::Prevote
                    } else {
                        VoteKind::Precommit
                    };
                    let m = self.sign(Payload::Vote { kind, round, value });
                    fx.push(Effect::Broadcast(Wire::Bft(m)));
                }
            }
            Strategy::Silent | Strategy::WrongValue => {}
        }
    }
}

impl SimActor for ByzantineActor {
    fn start(&mut self, now_ms: u64, fx: &mut Vec<Effect>) {
        self.acted.insert(0);
        self.act(Round(0), fx);
        fx.push(Effect::Timer {
            at_ms: now_ms + BYZ_TICK_MS,
            tag: 0,
        });
    }
    fn message(&mut self, _now_ms: u64, _from: NodeId, msg: Wire, fx: &mut Vec<Effect>) {
        let Wire::Bft(m) = msg else {
            return;
        };
        let r = m.payload.round().0;
        if self.seen.len() < REPLAY_KEEP {
            self.seen.push(m);
        } else {
            let i = self.rng.index(REPLAY_KEEP);
            self.seen[i] = m;
        }
        if r < self.config.rounds_max && self.acted.insert(r) {
            self.round_max_seen = self.round_max_seen.max(r);
            self.act(Round(r), fx);
        }
    }
    fn timer(&mut self, now_ms: u64, _tag: u64, fx: &mut Vec<Effect>) {
        self.tick(fx);
        fx.push(Effect::Timer {
            at_ms: now_ms + BYZ_TICK_MS,
            tag: 0,
        });
    }
    fn decision(&self) -> Option<Value> {
        None
    }
}
