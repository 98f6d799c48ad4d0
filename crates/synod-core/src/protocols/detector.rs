//! Failure detectors (DESIGN §5, rules FD-1 … FD-6 in `docs/PROTOCOL.md`).
//!
//! Two detectors with one interface, [`FailureDetector::step`]: heartbeats and clock ticks in,
//! `Suspect`/`Trust` transitions out.
//!
//! - [`EventuallyPerfect`] (◇P, Chandra & Toueg 1996): a peer is suspected when no heartbeat
//!   came for its timeout; a heartbeat from a suspected peer proves the suspicion false, so the
//!   peer is trusted again and its timeout grows **additively** by `increment_ms` (capped at
//!   `timeout_max_ms`). Once the timeout exceeds the real bound on heartbeat gaps (after GST),
//!   the peer is never wrongly suspected again: eventual strong accuracy. Additive rather than
//!   doubling because doubling overshoots the needed timeout by up to 2×, which doubles the
//!   detection time of a real crash for the rest of the run.
//! - [`PhiAccrual`] (Hayashibara, Défago, Yared, Katayama 2004): a sliding window of
//!   inter-arrival times; the suspicion level is `phi = -log10(1 - F(now - last))` where F is
//!   the normal CDF with the window's mean and standard deviation (the logistic approximation
//!   Akka and Cassandra use); suspect when `phi > threshold`.

use super::NodeId;
use std::collections::{BTreeMap, VecDeque};

/// What a detector is told.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DetectorInput {
    /// A heartbeat (or any sign of life, such as a streamed token) from this peer.
    Heartbeat(NodeId),
    /// The clock moved: re-evaluate every peer.
    Tick,
}

/// A change in what a detector believes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DetectorOutput {
    /// The peer is now suspected of having crashed.
    Suspect(NodeId),
    /// The peer is trusted again (a suspicion turned out false).
    Trust(NodeId),
}

/// Counters of inputs a detector dropped or acted on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DetectorCounters {
    /// Heartbeats from peers that are not monitored (dropped).
    pub unknown_peer: u64,
    /// Suspicions raised.
    pub suspicions: u64,
    /// Suspicions withdrawn because the peer turned out alive (false suspicions).
    pub false_suspicions: u64,
}

/// The common interface of the detectors.
pub trait FailureDetector {
    /// Feeds one input at time `now_ms`; transitions are appended to `out`.
    fn step(&mut self, now_ms: u64, input: DetectorInput, out: &mut Vec<DetectorOutput>);
    /// Whether `peer` is currently suspected.
    fn is_suspected(&self, peer: NodeId) -> bool;
    /// What the detector dropped or did.
    fn counters(&self) -> DetectorCounters;
}

/// Settings of the ◇P detector.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EventuallyPerfectConfig {
    /// Timeout before the first false suspicion.
    pub timeout_initial_ms: u64,
    /// Added to a peer's timeout on each false suspicion (FD-2).
    pub increment_ms: u64,
    /// The timeout never grows past this.
    pub timeout_max_ms: u64,
}

impl Default for EventuallyPerfectConfig {
    fn default() -> Self {
        EventuallyPerfectConfig {
            timeout_initial_ms: 100,
            increment_ms: 50,
            timeout_max_ms: 60_000,
        }
    }
}

#[derive(Clone, Debug)]
struct HeartbeatPeer {
    last_ms: u64,
    timeout_ms: u64,
    suspected: bool,
    /// Only watched peers are judged on a tick (FD-7).
    watched: bool,
}

/// Heartbeat detector with per-peer timeouts that grow on each false suspicion (◇P).
#[derive(Clone, Debug)]
pub struct EventuallyPerfect {
    config: EventuallyPerfectConfig,
    peers: BTreeMap<NodeId, HeartbeatPeer>,
    counters: DetectorCounters,
}

impl EventuallyPerfect {
    /// Monitors `peers`, counting silence from `now_ms`.
    pub fn new(
        config: EventuallyPerfectConfig,
        peers: impl IntoIterator<Item = NodeId>,
        now_ms: u64,
    ) -> Self {
        let peers: Vec<NodeId> = peers.into_iter().collect();
        let mut d = Self::on_demand(
            config,
            peers.iter().map(|p| (*p, config.timeout_initial_ms)),
        );
        for p in peers {
            d.watch(p, now_ms);
        }
        d
    }

    /// Knows `peers`, each with its own first timeout (an agent's `timeout_ms`), none of them
    /// watched yet: silence counts only between [`watch`](Self::watch) and
    /// [`unwatch`](Self::unwatch) (FD-7). The build pipeline's detector.
    pub fn on_demand(
        config: EventuallyPerfectConfig,
        peers: impl IntoIterator<Item = (NodeId, u64)>,
    ) -> Self {
        let peers = peers
            .into_iter()
            .map(|(p, timeout_ms)| {
                (
                    p,
                    HeartbeatPeer {
                        last_ms: 0,
                        timeout_ms: timeout_ms.min(config.timeout_max_ms),
                        suspected: false,
                        watched: false,
                    },
                )
            })
            .collect();
        EventuallyPerfect {
            config,
            peers,
            counters: DetectorCounters::default(),
        }
    }

    /// The current timeout of `peer`, if monitored.
    pub fn timeout_ms(&self, peer: NodeId) -> Option<u64> {
        self.peers.get(&peer).map(|p| p.timeout_ms)
    }

    /// Starts counting `peer`'s silence from `now_ms`, unless it is watched already (a peer
    /// with work pending). Unknown peers are ignored.
    pub fn watch(&mut self, peer: NodeId, now_ms: u64) {
        if let Some(p) = self.peers.get_mut(&peer)
            && !p.watched
        {
            p.watched = true;
            p.last_ms = now_ms;
        }
    }

    /// Stops judging `peer`'s silence (no work of it is pending).
    pub fn unwatch(&mut self, peer: NodeId) {
        if let Some(p) = self.peers.get_mut(&peer) {
            p.watched = false;
        }
    }

    /// The earliest time at which a [`DetectorInput::Tick`] would suspect a peer, and which:
    /// the deadline a driver waits for (quinn-proto's `poll_timeout`). Ties: the lowest id.
    pub fn next_deadline(&self) -> Option<(u64, NodeId)> {
        self.peers
            .iter()
            .filter(|(_, p)| p.watched && !p.suspected)
            .map(|(id, p)| {
                (
                    p.last_ms.saturating_add(p.timeout_ms).saturating_add(1),
                    *id,
                )
            })
            .min()
    }
}

impl FailureDetector for EventuallyPerfect {
    fn step(&mut self, now_ms: u64, input: DetectorInput, out: &mut Vec<DetectorOutput>) {
        match input {
            DetectorInput::Heartbeat(from) => {
                let Some(peer) = self.peers.get_mut(&from) else {
                    self.counters.unknown_peer += 1;
                    return;
                };
                peer.last_ms = peer.last_ms.max(now_ms);
                if peer.suspected {
                    // FD-2: the suspicion was false; trust again and be more patient.
                    peer.suspected = false;
                    peer.timeout_ms = peer
                        .timeout_ms
                        .saturating_add(self.config.increment_ms)
                        .min(self.config.timeout_max_ms);
                    self.counters.false_suspicions += 1;
                    out.push(DetectorOutput::Trust(from));
                }
            }
            DetectorInput::Tick => {
                for (id, peer) in &mut self.peers {
                    // FD-1: silence longer than the timeout → suspect (FD-7: watched peers).
                    if peer.watched
                        && !peer.suspected
                        && now_ms.saturating_sub(peer.last_ms) > peer.timeout_ms
                    {
                        peer.suspected = true;
                        self.counters.suspicions += 1;
                        out.push(DetectorOutput::Suspect(*id));
                    }
                }
            }
        }
    }

    fn is_suspected(&self, peer: NodeId) -> bool {
        self.peers.get(&peer).is_some_and(|p| p.suspected)
    }

    fn counters(&self) -> DetectorCounters {
        self.counters
    }
}

/// Settings of the phi-accrual detector.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PhiAccrualConfig {
    /// Suspect when phi exceeds this (FD-4). 8 is Cassandra's default; 1 means a 10% chance of
    /// a wrong suspicion per check under the fitted distribution.
    pub threshold: f64,
    /// Inter-arrival samples kept (FD-3); older ones are forgotten.
    pub window_max: usize,
    /// Floor on the standard deviation, so a very regular peer is not suspected for a tiny
    /// jitter.
    pub std_min_ms: f64,
    /// The expected heartbeat interval before any sample exists.
    pub first_interval_ms: f64,
    /// Extra pause tolerated on top of the fitted distribution (added to the mean).
    pub pause_ms: f64,
}

impl Default for PhiAccrualConfig {
    fn default() -> Self {
        PhiAccrualConfig {
            threshold: 8.0,
            window_max: 100,
            std_min_ms: 10.0,
            first_interval_ms: 100.0,
            pause_ms: 0.0,
        }
    }
}

#[derive(Clone, Debug)]
struct PhiPeer {
    last_ms: Option<u64>,
    start_ms: u64,
    intervals: VecDeque<f64>,
    sum: f64,
    sum_sq: f64,
    suspected: bool,
}

/// Phi-accrual detector (Hayashibara et al. 2004).
#[derive(Clone, Debug)]
pub struct PhiAccrual {
    config: PhiAccrualConfig,
    peers: BTreeMap<NodeId, PhiPeer>,
    counters: DetectorCounters,
}

impl PhiAccrual {
    /// Monitors `peers`, counting silence from `now_ms`.
    pub fn new(
        config: PhiAccrualConfig,
        peers: impl IntoIterator<Item = NodeId>,
        now_ms: u64,
    ) -> Self {
        let config = PhiAccrualConfig {
            window_max: config.window_max.max(1),
            ..config
        };
        let peers = peers
            .into_iter()
            .map(|p| {
                (
                    p,
                    PhiPeer {
                        last_ms: None,
                        start_ms: now_ms,
                        intervals: VecDeque::new(),
                        sum: 0.0,
                        sum_sq: 0.0,
                        suspected: false,
                    },
                )
            })
            .collect();
        PhiAccrual {
            config,
            peers,
            counters: DetectorCounters::default(),
        }
    }

    /// The suspicion level of `peer` at `now_ms` (FD-4), if monitored.
    pub fn phi(&self, peer: NodeId, now_ms: u64) -> Option<f64> {
        self.peers.get(&peer).map(|p| self.phi_of(p, now_ms))
    }

    fn phi_of(&self, p: &PhiPeer, now_ms: u64) -> f64 {
        let (mean, std) = if p.intervals.is_empty() {
            // Bootstrap as Akka does: the expected interval, a quarter of it as deviation.
            (
                self.config.first_interval_ms,
                self.config.first_interval_ms / 4.0,
            )
        } else {
            let k = p.intervals.len() as f64;
            let mean = p.sum / k;
            let var = (p.sum_sq / k - mean * mean).max(0.0);
            (mean, var.sqrt())
        };
        let std = std.max(self.config.std_min_ms);
        let mean = mean + self.config.pause_ms;
        let since = now_ms.saturating_sub(p.last_ms.unwrap_or(p.start_ms)) as f64;
        phi(since, mean, std)
    }
}

/// `-log10(1 - F(t))` for a normal distribution with this mean and deviation, with the
/// logistic approximation of the normal CDF (error below 1.4e-4). Finite for every input.
pub fn phi(t: f64, mean: f64, std: f64) -> f64 {
    let y = (t - mean) / std;
    let e = (-y * (1.5976 + 0.070566 * y * y)).exp();
    let v = if t > mean {
        -(e / (1.0 + e)).log10()
    } else {
        -(1.0 - 1.0 / (1.0 + e)).log10()
    };
    if v.is_finite() { v } else { f64::MAX }
}

impl FailureDetector for PhiAccrual {
    fn step(&mut self, now_ms: u64, input: DetectorInput, out: &mut Vec<DetectorOutput>) {
        match input {
            DetectorInput::Heartbeat(from) => {
                let window_max = self.config.window_max;
                let Some(p) = self.peers.get_mut(&from) else {
                    self.counters.unknown_peer += 1;
                    return;
                };
                if let Some(last) = p.last_ms {
                    // FD-3: slide the window of inter-arrival times.
                    let gap = now_ms.saturating_sub(last) as f64;
                    if p.intervals.len() == window_max
                        && let Some(old) = p.intervals.pop_front()
                    {
                        p.sum -= old;
                        p.sum_sq -= old * old;
                    }
                    p.intervals.push_back(gap);
                    p.sum += gap;
                    p.sum_sq += gap * gap;
                }
                p.last_ms = Some(now_ms.max(p.last_ms.unwrap_or(0)));
                if p.suspected {
                    // FD-5: a heartbeat from a suspected peer → trust again.
                    p.suspected = false;
                    self.counters.false_suspicions += 1;
                    out.push(DetectorOutput::Trust(from));
                }
            }
            DetectorInput::Tick => {
                let ids: Vec<NodeId> = self.peers.keys().copied().collect();
                for id in ids {
                    let Some(p) = self.peers.get(&id) else {
                        continue;
                    };
                    if p.suspected {
                        continue;
                    }
                    // FD-4: suspect when phi exceeds the threshold.
                    if self.phi_of(p, now_ms) > self.config.threshold {
                        if let Some(p) = self.peers.get_mut(&id) {
                            p.suspected = true;
                        }
                        self.counters.suspicions += 1;
                        out.push(DetectorOutput::Suspect(id));
                    }
                }
            }
        }
    }

    fn is_suspected(&self, peer: NodeId) -> bool {
        self.peers.get(&peer).is_some_and(|p| p.suspected)
    }

    fn counters(&self) -> DetectorCounters {
        self.counters
    }
}
