//! The discrete-event simulation: a virtual clock, an event queue ordered by (time, sequence),
//! nodes that may crash, recover, run slow or be Byzantine, and safety checkers that watch
//! every decision from outside the nodes.

use super::actors::{
    BftActor, ByzantineActor, CtActor, Effect, SharedKeys, SimActor, Strategy, Wire,
};
use super::actors::{sim_input, sim_valid};
use super::network::NetworkConfig;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use synod_core::protocols::bft::BftConfig;
use synod_core::protocols::{NodeId, Value};
use synod_core::rng::SeededRng;

/// Which protocol the nodes run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProtocolKind {
    /// Tendermint-style Byzantine agreement.
    Bft,
    /// Chandra–Toueg with a ◇P detector.
    Ct,
}

impl std::str::FromStr for ProtocolKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "bft" => Ok(ProtocolKind::Bft),
            "ct" => Ok(ProtocolKind::Ct),
            _ => Err(format!("unknown protocol {s:?}: expected bft or ct")),
        }
    }
}

impl fmt::Display for ProtocolKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ProtocolKind::Bft => "bft",
            ProtocolKind::Ct => "ct",
        })
    }
}

/// Settings of one simulation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SimConfig {
    /// Protocol.
    pub protocol: ProtocolKind,
    /// Nodes.
    pub n: usize,
    /// Faults the protocol is configured to tolerate (BFT quorum n − f).
    pub f: usize,
    /// The network before healing.
    pub network: NetworkConfig,
    /// After healing, delays are capped at this many mean delays (synchrony after GST).
    pub liveness_delay_cap: f64,
    /// Events in flight at most; further messages are dropped and counted.
    pub queue_max: usize,
    /// Events processed at most in one run.
    pub events_max: u64,
}

impl SimConfig {
    /// A configuration over a perfect network with 10 ms delays.
    pub fn new(protocol: ProtocolKind, n: usize, f: usize) -> SimConfig {
        SimConfig {
            protocol,
            n,
            f,
            network: NetworkConfig::constant(10),
            liveness_delay_cap: 4.0,
            queue_max: 200_000,
            events_max: 5_000_000,
        }
    }
}

/// A safety property.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Property {
    /// No two non-Byzantine nodes decide differently.
    Agreement,
    /// A decided value is valid (BFT: the validity predicate; CT: some node's input).
    Validity,
    /// A node decides at most once.
    Integrity,
}

/// A safety violation seen by a checker.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Violation {
    /// Which property.
    pub property: Property,
    /// The node whose decision broke it.
    pub node: u16,
    /// Virtual time.
    pub at_ms: u64,
    /// What happened.
    pub detail: String,
}

/// Counts over a run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimStats {
    /// Events processed.
    pub events: u64,
    /// Protocol messages sent (point to point; a broadcast to n − 1 nodes counts n − 1).
    pub messages: u64,
    /// Heartbeats sent.
    pub heartbeats: u64,
    /// Messages the network lost (loss, partitions, crashed recipients).
    pub lost: u64,
    /// Messages dropped because the event queue was full.
    pub overflow: u64,
    /// Messages the nodes themselves rejected (bad signature, out of window, …).
    pub rejected: u64,
    /// Evidence records produced by correct nodes.
    pub evidence: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    Correct,
    Byzantine,
}

struct Slot {
    actor: Box<dyn SimActor>,
    role: Role,
    up: bool,
    slow: u64,
    held_timers: Vec<u64>,
    held_start: bool,
    decided: Option<(Value, u64)>,
    decide_count: u32,
}

enum Event {
    Start(NodeId),
    Deliver {
        from: NodeId,
        to: NodeId,
        wire: Wire,
    },
    Timer {
        node: NodeId,
        tag: u64,
    },
}

/// A seeded simulation. The same configuration, seed and scenario calls give the same run,
/// byte for byte ([`Simulation::trace_digest`]).
pub struct Simulation {
    config: SimConfig,
    seed: u64,
    /// Public keys and signature verdicts the BFT nodes share (None for CT).
    shared: Option<SharedKeys>,
    now_ms: u64,
    seq: u64,
    queue: BTreeMap<(u64, u64), Event>,
    nodes: Vec<Slot>,
    rng: SeededRng,
    network: NetworkConfig,
    synchronous: bool,
    partition: Option<Vec<u8>>,
    inputs: Vec<Value>,
    violations: Vec<Violation>,
    stats: SimStats,
    trace: blake3::Hasher,
    fx: Vec<Effect>,
}

/// A handle on one node, for scenario code: `sim.node(2).crash()`.
pub struct NodeHandle<'a> {
    sim: &'a mut Simulation,
    id: NodeId,
}

impl NodeHandle<'_> {
    /// The node stops: it loses messages sent to it and its timers wait for a recovery.
    pub fn crash(self) {
        self.sim.nodes[self.id.index()].up = false;
    }
    /// The node comes back with its state (everything it had was persisted); timers that
    /// fired while it was down fire now.
    pub fn recover(self) {
        let now = self.sim.now_ms;
        let slot = &mut self.sim.nodes[self.id.index()];
        if slot.up {
            return;
        }
        slot.up = true;
        let held = std::mem::take(&mut slot.held_timers);
        if std::mem::take(&mut slot.held_start) {
            self.sim.push(now, Event::Start(self.id));
        }
        for tag in held {
            self.sim.push(now, Event::Timer { node: self.id, tag });
        }
    }
    /// The node's messages take `factor` times longer.
    pub fn slow(self, factor: u64) {
        self.sim.nodes[self.id.index()].slow = factor.max(1);
    }
    /// The node becomes Byzantine with this strategy (call before running). Its decisions
    /// are not checked.
    pub fn byzantine(self, strategy: Strategy) {
        let sim = self.sim;
        let id = self.id;
        assert_eq!(
            sim.config.protocol,
            ProtocolKind::Bft,
            "Chandra–Toueg tolerates crash faults only"
        );
        let cfg = sim.bft_config();
        let actor: Box<dyn SimActor> = match strategy {
            Strategy::WrongValue => match &sim.shared {
                Some(shared) => Box::new(BftActor::shared(
                    id,
                    cfg,
                    sim.seed,
                    Value(b"not-ok".to_vec()),
                    shared,
                )),
                None => Box::new(BftActor::new(id, cfg, sim.seed, Value(b"not-ok".to_vec()))),
            },
            s if sim.shared.is_some() => {
                Box::new(ByzantineActor::new(id, cfg, sim.seed, s).reusing_signatures())
            }
            s => Box::new(ByzantineActor::new(id, cfg, sim.seed, s)),
        };
        let slot = &mut sim.nodes[id.index()];
        slot.actor = actor;
        slot.role = Role::Byzantine;
    }
    /// The node's decision so far.
    pub fn decision(&self) -> Option<Value> {
        self.sim.nodes[self.id.index()]
            .decided
            .as_ref()
            .map(|(v, _)| v.clone())
    }
}

impl Simulation {
    /// n correct nodes running `config.protocol`, all starting at time 0. BFT nodes share
    /// public keys and signature verdicts ([`SharedKeys`]).
    pub fn new(config: SimConfig, seed: u64) -> Simulation {
        Simulation::build(config, seed, true)
    }

    /// The same simulation with every node deriving its own keys and verifying every message
    /// itself, as before the verdicts were shared: the baseline the benchmark compares with,
    /// and the proof (`shared_verification_changes_no_trace`) that sharing changes nothing.
    pub fn new_unshared(config: SimConfig, seed: u64) -> Simulation {
        Simulation::build(config, seed, false)
    }

    fn build(config: SimConfig, seed: u64, share: bool) -> Simulation {
        let inputs: Vec<Value> = (0..config.n as u16).map(|i| sim_input(NodeId(i))).collect();
        let mut sim = Simulation {
            network: config.network,
            seed,
            now_ms: 0,
            seq: 0,
            queue: BTreeMap::new(),
            nodes: Vec::new(),
            rng: SeededRng::derive(seed, "network"),
            synchronous: false,
            partition: None,
            shared: (share && config.protocol == ProtocolKind::Bft)
                .then(|| SharedKeys::new(config.n, seed)),
            inputs,
            violations: Vec::new(),
            stats: SimStats::default(),
            trace: blake3::Hasher::new(),
            fx: Vec::new(),
            config,
        };
        for i in 0..sim.config.n as u16 {
            let id = NodeId(i);
            let actor: Box<dyn SimActor> = match sim.config.protocol {
                ProtocolKind::Bft => match &sim.shared {
                    Some(shared) => Box::new(BftActor::shared(
                        id,
                        sim.bft_config(),
                        seed,
                        sim.inputs[id.index()].clone(),
                        shared,
                    )),
                    None => Box::new(BftActor::new(
                        id,
                        sim.bft_config(),
                        seed,
                        sim.inputs[id.index()].clone(),
                    )),
                },
                ProtocolKind::Ct => Box::new(CtActor::new(
                    id,
                    sim.config.n,
                    sim.inputs[id.index()].clone(),
                )),
            };
            sim.nodes.push(Slot {
                actor,
                role: Role::Correct,
                up: true,
                slow: 1,
                held_timers: Vec::new(),
                held_start: false,
                decided: None,
                decide_count: 0,
            });
            sim.push(0, Event::Start(id));
        }
        sim
    }

    fn bft_config(&self) -> BftConfig {
        BftConfig::new(self.config.n, self.config.f)
    }

    /// Scenario handle on node `i`.
    pub fn node(&mut self, i: u16) -> NodeHandle<'_> {
        assert!(usize::from(i) < self.nodes.len(), "no node {i}");
        NodeHandle {
            sim: self,
            id: NodeId(i),
        }
    }

    /// Cuts the network into these groups; nodes in no group form one more group.
    pub fn partition(&mut self, a: &[u16], b: &[u16]) {
        let mut groups = vec![2u8; self.nodes.len()];
        for i in a {
            groups[usize::from(*i)] = 0;
        }
        for i in b {
            groups[usize::from(*i)] = 1;
        }
        self.partition = Some(groups);
    }

    /// Removes every partition.
    pub fn heal(&mut self) {
        self.partition = None;
    }

    /// The liveness phase begins: partitions heal, the network stops losing, duplicating and
    /// reordering, and delays are capped (GST).
    pub fn stabilize(&mut self) {
        self.heal();
        self.synchronous = true;
    }

    /// Changes the network (before or during a run).
    pub fn set_network(&mut self, network: NetworkConfig) {
        self.network = network;
    }

    fn push(&mut self, at_ms: u64, e: Event) {
        self.seq += 1;
        self.queue.insert((at_ms.max(self.now_ms), self.seq), e);
    }

    /// Virtual time now.
    pub fn now_ms(&self) -> u64 {
        self.now_ms
    }

    /// Processes one event; false when the queue is empty or the event budget is spent.
    pub fn step(&mut self) -> bool {
        if self.stats.events >= self.config.events_max {
            return false;
        }
        let Some(((t, _), event)) = self.queue.pop_first() else {
            return false;
        };
        self.now_ms = t;
        self.stats.events += 1;
        self.trace.update(&t.to_le_bytes());
        let mut fx = std::mem::take(&mut self.fx);
        fx.clear();
        let actor_id = match event {
            Event::Start(id) => {
                self.trace.update(&[0, id.0 as u8]);
                let slot = &mut self.nodes[id.index()];
                if slot.up {
                    slot.actor.start(t, &mut fx);
                } else {
                    slot.held_start = true;
                }
                id
            }
            Event::Deliver { from, to, wire } => {
                self.trace.update(&[1]);
                self.trace.update(&from.0.to_le_bytes());
                self.trace.update(&to.0.to_le_bytes());
                wire.digest_into(&mut self.trace);
                let slot = &mut self.nodes[to.index()];
                if slot.up {
                    let before = slot.actor.dropped();
                    slot.actor.message(t, from, wire, &mut fx);
                    if slot.role == Role::Correct {
                        self.stats.rejected += slot.actor.dropped() - before;
                    }
                } else {
                    self.stats.lost += 1;
                }
                to
            }
            Event::Timer { node, tag } => {
                self.trace.update(&[2]);
                self.trace.update(&node.0.to_le_bytes());
                self.trace.update(&tag.to_le_bytes());
                let slot = &mut self.nodes[node.index()];
                if slot.up {
                    slot.actor.timer(t, tag, &mut fx);
                } else {
                    slot.held_timers.push(tag);
                }
                node
            }
        };
        for e in fx.drain(..) {
            self.apply(actor_id, e);
        }
        self.fx = fx;
        true
    }

    fn apply(&mut self, from: NodeId, e: Effect) {
        match e {
            Effect::Send(to, wire) => self.send(from, to, wire),
            Effect::Broadcast(wire) => {
                for to in 0..self.nodes.len() as u16 {
                    if to != from.0 {
                        self.send(from, NodeId(to), wire.clone());
                    }
                }
            }
            Effect::Timer { at_ms, tag } => self.push(at_ms, Event::Timer { node: from, tag }),
            Effect::Decide(v) => self.check_decision(from, v),
            Effect::Evidence => {
                if self.nodes[from.index()].role == Role::Correct {
                    self.stats.evidence += 1;
                }
            }
        }
    }

    fn send(&mut self, from: NodeId, to: NodeId, wire: Wire) {
        if to.index() >= self.nodes.len() {
            return;
        }
        if wire.is_protocol() {
            self.stats.messages += 1;
        } else {
            self.stats.heartbeats += 1;
        }
        if let Some(groups) = &self.partition
            && groups[from.index()] != groups[to.index()]
        {
            self.stats.lost += 1;
            return;
        }
        let net = self.network;
        if !self.synchronous && net.loss > 0.0 && self.rng.chance(net.loss) {
            self.stats.lost += 1;
            return;
        }
        let copies = if !self.synchronous && net.duplicate > 0.0 && self.rng.chance(net.duplicate) {
            2
        } else {
            1
        };
        for _ in 0..copies {
            let mut d = net.delay.sample(&mut self.rng);
            if self.synchronous {
                let cap = (net.delay.mean_ms() * self.config.liveness_delay_cap).ceil() as u64;
                d = d.min(cap.max(1));
            } else if net.reorder > 0.0 && self.rng.chance(net.reorder) {
                d += d * (2 + self.rng.below(4));
            }
            d *= self.nodes[from.index()].slow;
            if self.queue.len() >= self.config.queue_max {
                self.stats.overflow += 1;
                continue;
            }
            let at = self.now_ms + d;
            self.push(
                at,
                Event::Deliver {
                    from,
                    to,
                    wire: wire.clone(),
                },
            );
        }
    }

    fn check_decision(&mut self, node: NodeId, v: Value) {
        let now = self.now_ms;
        self.trace.update(b"decide");
        self.trace.update(&node.0.to_le_bytes());
        self.trace.update(&v.0);
        let slot = &mut self.nodes[node.index()];
        slot.decide_count += 1;
        if slot.role == Role::Byzantine {
            return;
        }
        if let Some((first, _)) = &slot.decided {
            let detail = format!("{node} decided again: {v} after {first}");
            self.violations.push(Violation {
                property: Property::Integrity,
                node: node.0,
                at_ms: now,
                detail,
            });
            return;
        }
        slot.decided = Some((v.clone(), now));
        let valid = match self.config.protocol {
            ProtocolKind::Bft => sim_valid(&v),
            ProtocolKind::Ct => self.inputs.contains(&v),
        };
        if !valid {
            self.violations.push(Violation {
                property: Property::Validity,
                node: node.0,
                at_ms: now,
                detail: format!("{node} decided {v}, which is not valid"),
            });
        }
        for (i, other) in self.nodes.iter().enumerate() {
            if i == node.index() || other.role == Role::Byzantine {
                continue;
            }
            if let Some((w, _)) = &other.decided
                && *w != v
            {
                self.violations.push(Violation {
                    property: Property::Agreement,
                    node: node.0,
                    at_ms: now,
                    detail: format!("{node} decided {v} but n{i} decided {w}"),
                });
                break;
            }
        }
    }

    /// Runs every event up to `t_ms` (virtual), or until the queue or event budget is spent.
    pub fn run_until(&mut self, t_ms: u64) {
        while self
            .queue
            .first_key_value()
            .is_some_and(|((t, _), _)| *t <= t_ms)
        {
            if !self.step() {
                break;
            }
        }
        self.now_ms = self.now_ms.max(t_ms);
    }

    /// Runs until every non-Byzantine node that is up has decided, for at most `budget_ms`
    /// of virtual time; true if they all decided.
    pub fn run_until_decided(&mut self, budget_ms: u64) -> bool {
        let deadline = self.now_ms.saturating_add(budget_ms);
        loop {
            if self.all_decided() {
                return true;
            }
            if self
                .queue
                .first_key_value()
                .is_none_or(|((t, _), _)| *t > deadline)
            {
                return false;
            }
            if !self.step() {
                return false;
            }
        }
    }

    /// Whether every non-Byzantine node that is up has decided.
    pub fn all_decided(&self) -> bool {
        self.nodes
            .iter()
            .filter(|s| s.role == Role::Correct && s.up)
            .all(|s| s.decided.is_some())
    }

    /// The time the last non-Byzantine, up node decided, if all have.
    pub fn all_decided_at_ms(&self) -> Option<u64> {
        let mut last = 0;
        for s in self
            .nodes
            .iter()
            .filter(|s| s.role == Role::Correct && s.up)
        {
            last = last.max(s.decided.as_ref()?.1);
        }
        Some(last)
    }

    /// Each node's decision (None for undecided and Byzantine nodes).
    pub fn decisions(&self) -> Vec<Option<Value>> {
        self.nodes
            .iter()
            .map(|s| s.decided.as_ref().map(|(v, _)| v.clone()))
            .collect()
    }

    /// Each node's protocol state in one line.
    pub fn describe_nodes(&self) -> Vec<String> {
        self.nodes.iter().map(|s| s.actor.describe()).collect()
    }

    /// Which nodes are Byzantine.
    pub fn byzantine(&self) -> Vec<bool> {
        self.nodes
            .iter()
            .map(|s| s.role == Role::Byzantine)
            .collect()
    }

    /// Which nodes are up.
    pub fn up(&self) -> Vec<bool> {
        self.nodes.iter().map(|s| s.up).collect()
    }

    /// Safety violations so far.
    pub fn violations(&self) -> &[Violation] {
        &self.violations
    }

    /// Counters.
    pub fn stats(&self) -> SimStats {
        self.stats
    }

    /// The configuration.
    pub fn config(&self) -> &SimConfig {
        &self.config
    }

    /// The seed.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// A digest of every event processed so far (blake3, hex): equal digests mean equal runs.
    pub fn trace_digest(&self) -> String {
        self.trace.clone().finalize().to_hex()[..32].to_string()
    }
}
