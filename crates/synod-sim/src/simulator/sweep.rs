//! Seeded runs with random faults (one seed → one run), and sweeps over ranges of seeds in
//! parallel. Each run has a fault phase (lossy, partitioned network; crashed, slow and
//! Byzantine nodes) with safety checked on every step, then a liveness phase: the network
//! heals, crash-recover nodes come back, and every correct node that is up must decide within
//! a budget.

use super::actors::Strategy;
use super::network::{Delay, NetworkConfig};
use super::sim::{ProtocolKind, SimConfig, SimStats, Simulation, Violation};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use synod_core::rng::SeededRng;

/// Length of the fault phase, virtual ms.
pub const FAULT_PHASE_MS: u64 = 1_000;
/// Budget of the liveness phase, virtual ms.
pub const LIVENESS_BUDGET_MS: u64 = 60_000;
/// Mean message delay, virtual ms: the unit "message delay" of latencies.
pub const MEAN_DELAY_MS: u64 = 10;
/// Failing seeds listed in a sweep report at most (the count is always exact).
pub const FAILING_SEEDS_MAX: usize = 1_000;

/// A named family of runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scenario {
    /// Random network faults and a random fault for each of the f faulty nodes.
    Random,
    /// A perfect network with constant delays and no faulty node (the good case).
    FaultFree,
    /// Random network; every faulty node Byzantine with a random strategy (BFT only).
    Byzantine,
    /// Random network; every faulty node equivocates (BFT only).
    Equivocate,
    /// Random network; faulty nodes crash for good at random times.
    Crash,
    /// A partition that heals; faulty nodes crash and recover.
    Partition,
    /// Heavy loss, duplication and reordering; no node faults.
    Lossy,
}

impl Scenario {
    /// Every scenario, with its name.
    pub const ALL: [(&'static str, Scenario); 7] = [
        ("random", Scenario::Random),
        ("fault-free", Scenario::FaultFree),
        ("byzantine", Scenario::Byzantine),
        ("equivocate", Scenario::Equivocate),
        ("crash", Scenario::Crash),
        ("partition", Scenario::Partition),
        ("lossy", Scenario::Lossy),
    ];

    /// The scenario's name.
    pub fn name(self) -> &'static str {
        Scenario::ALL
            .iter()
            .find(|(_, s)| *s == self)
            .map_or("?", |(n, _)| n)
    }
}

impl std::str::FromStr for Scenario {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Scenario::ALL
            .iter()
            .find(|(n, _)| *n == s)
            .map(|(_, sc)| *sc)
            .ok_or_else(|| {
                let names: Vec<&str> = Scenario::ALL.iter().map(|(n, _)| *n).collect();
                format!(
                    "unknown scenario {s:?}: expected one of {}",
                    names.join(", ")
                )
            })
    }
}

/// What to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunSpec {
    /// Protocol.
    pub protocol: ProtocolKind,
    /// Nodes.
    pub n: usize,
    /// Faulty nodes (also the protocol's fault budget).
    pub f: usize,
    /// Scenario.
    pub scenario: Scenario,
}

impl RunSpec {
    /// Checks the spec; the error says what is wrong.
    pub fn validate(&self) -> Result<(), String> {
        if self.n == 0 || self.n > 256 {
            return Err(format!("--nodes {} is out of range: use 1 to 256", self.n));
        }
        if self.f >= self.n {
            return Err(format!(
                "--faulty {} must be smaller than --nodes {}",
                self.f, self.n
            ));
        }
        if self.protocol == ProtocolKind::Ct
            && matches!(self.scenario, Scenario::Byzantine | Scenario::Equivocate)
        {
            return Err(format!(
                "scenario {} needs Byzantine nodes, but Chandra–Toueg tolerates crash faults only; use --protocol bft",
                self.scenario.name()
            ));
        }
        Ok(())
    }
}

/// One node's part in a run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeReport {
    /// Node index.
    pub node: u16,
    /// "correct", "crash@T", "crash-recover@T", "slow×K" or "byzantine:STRATEGY".
    pub fault: String,
    /// What it decided (none for Byzantine and undecided nodes).
    pub decision: Option<String>,
    /// Its protocol state at the end of the run.
    pub state: String,
}

/// The outcome of one seeded run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunReport {
    /// Seed.
    pub seed: u64,
    /// What ran.
    pub spec: RunSpec,
    /// The network of the fault phase.
    pub network: NetworkConfig,
    /// A partition during the fault phase: (start ms, group A).
    pub partition: Option<(u64, Vec<u16>)>,
    /// Every node.
    pub nodes: Vec<NodeReport>,
    /// Safety violations (empty when safe).
    pub violations: Vec<Violation>,
    /// Every correct node that was up decided within the liveness budget.
    pub decided: bool,
    /// When the last correct node decided, in mean message delays.
    pub latency_delays: Option<f64>,
    /// Protocol messages sent until then.
    pub messages: u64,
    /// Counters.
    pub stats: SimStats,
    /// Virtual time at the end of the run, ms.
    pub virtual_ms: u64,
    /// Digest of the whole event trace: the same seed gives the same digest.
    pub trace_digest: String,
}

impl RunReport {
    /// Safe and live.
    pub fn ok(&self) -> bool {
        self.violations.is_empty() && self.decided
    }

    /// The `synod sim` command line that reruns exactly this run.
    pub fn command(&self) -> String {
        format!(
            "synod sim --protocol {} --nodes {} --faulty {} --seed {} --scenario {}",
            self.spec.protocol,
            self.spec.n,
            self.spec.f,
            self.seed,
            self.spec.scenario.name()
        )
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fault {
    Byzantine(Strategy),
    Crash(u64),
    CrashRecover(u64),
    Slow(u64),
}

fn random_network(rng: &mut SeededRng) -> NetworkConfig {
    let families = Delay::families(MEAN_DELAY_MS);
    let (_, delay) = families[rng.index(families.len())];
    NetworkConfig {
        delay,
        loss: rng.below(21) as f64 / 100.0,
        duplicate: rng.below(11) as f64 / 100.0,
        reorder: rng.below(21) as f64 / 100.0,
    }
}

fn shuffled(n: usize, rng: &mut SeededRng) -> Vec<u16> {
    let mut v: Vec<u16> = (0..n as u16).collect();
    for i in (1..v.len()).rev() {
        let j = rng.index(i + 1);
        v.swap(i, j);
    }
    v
}

/// Runs one seed of `spec`. Panics only on a bug in synod (an assertion).
pub fn run_seed(spec: &RunSpec, seed: u64) -> RunReport {
    run_seed_with(spec, seed, true)
}

/// [`run_seed`], with BFT signature verdicts shared between nodes or not
/// ([`Simulation::new_unshared`]): the two give the same report and trace, at different speeds.
pub fn run_seed_with(spec: &RunSpec, seed: u64, share: bool) -> RunReport {
    let mut rng = SeededRng::derive(seed, "scenario");
    let bft = spec.protocol == ProtocolKind::Bft;
    let network = match spec.scenario {
        Scenario::FaultFree => NetworkConfig::constant(MEAN_DELAY_MS),
        Scenario::Lossy => NetworkConfig {
            loss: 0.3,
            duplicate: 0.1,
            reorder: 0.3,
            ..random_network(&mut rng)
        },
        _ => random_network(&mut rng),
    };
    let order = shuffled(spec.n, &mut rng);
    let faulty: Vec<u16> = match spec.scenario {
        Scenario::FaultFree | Scenario::Lossy => Vec::new(),
        _ => order[..spec.f].to_vec(),
    };
    let mut faults: Vec<(u16, Fault)> = Vec::new();
    for &i in &faulty {
        let t = rng.below(FAULT_PHASE_MS / 2);
        let strategy = Strategy::ALL[rng.index(Strategy::ALL.len())];
        let roll = rng.below(10);
        let fault = match spec.scenario {
            Scenario::Byzantine => Fault::Byzantine(strategy),
            Scenario::Equivocate => Fault::Byzantine(Strategy::Equivocate),
            Scenario::Crash => Fault::Crash(t),
            Scenario::Partition => Fault::CrashRecover(t),
            _ if bft && roll < 6 => Fault::Byzantine(strategy),
            _ if roll < 4 => Fault::Crash(t),
            _ if roll < 7 => Fault::CrashRecover(t),
            _ => Fault::Slow(2 + rng.below(4)),
        };
        faults.push((i, fault));
    }
    let partition = match spec.scenario {
        Scenario::Partition => true,
        Scenario::FaultFree | Scenario::Lossy => false,
        _ => rng.chance(0.4),
    }
    .then(|| {
        let at = rng.below(FAULT_PHASE_MS / 2);
        let k = 1 + rng.index(spec.n.saturating_sub(1).max(1));
        let mut a = shuffled(spec.n, &mut rng)[..k.min(spec.n)].to_vec();
        a.sort_unstable();
        (at, a)
    });

    let mut config = SimConfig::new(spec.protocol, spec.n, spec.f);
    config.network = network;
    let mut sim = if share {
        Simulation::new(config, seed)
    } else {
        Simulation::new_unshared(config, seed)
    };
    // Timed scenario actions, in time order.
    let mut actions: Vec<(u64, u16, Fault)> = Vec::new();
    for &(i, fault) in &faults {
        match fault {
            Fault::Byzantine(s) => sim.node(i).byzantine(s),
            Fault::Slow(k) => sim.node(i).slow(k),
            Fault::Crash(t) | Fault::CrashRecover(t) => actions.push((t, i, fault)),
        }
    }
    actions.sort_unstable_by_key(|(t, i, _)| (*t, *i));
    let mut partition_pending = partition.clone();
    for (t, i, _) in &actions {
        if let Some((pt, a)) = partition_pending.take_if(|(pt, _)| *pt <= *t) {
            sim.run_until(pt);
            let b: Vec<u16> = (0..spec.n as u16).filter(|x| !a.contains(x)).collect();
            sim.partition(&a, &b);
        }
        sim.run_until(*t);
        sim.node(*i).crash();
    }
    if let Some((pt, a)) = partition_pending {
        sim.run_until(pt);
        let b: Vec<u16> = (0..spec.n as u16).filter(|x| !a.contains(x)).collect();
        sim.partition(&a, &b);
    }
    if spec.scenario == Scenario::FaultFree {
        sim.run_until_decided(LIVENESS_BUDGET_MS);
    } else {
        sim.run_until(FAULT_PHASE_MS);
        // Liveness phase: heal, recover, require a decision.
        sim.stabilize();
        for &(i, fault) in &faults {
            if let Fault::CrashRecover(_) = fault {
                sim.node(i).recover();
            }
        }
        sim.run_until_decided(LIVENESS_BUDGET_MS);
    }

    let decided = sim.all_decided();
    let decisions = sim.decisions();
    let states = sim.describe_nodes();
    let nodes = (0..spec.n as u16)
        .map(|i| {
            let fault = match faults.iter().find(|(j, _)| *j == i).map(|(_, f)| *f) {
                None => "correct".to_string(),
                Some(Fault::Byzantine(s)) => format!("byzantine:{}", strategy_name(s)),
                Some(Fault::Crash(t)) => format!("crash@{t}ms"),
                Some(Fault::CrashRecover(t)) => format!("crash-recover@{t}ms"),
                Some(Fault::Slow(k)) => format!("slow×{k}"),
            };
            NodeReport {
                node: i,
                fault,
                decision: decisions[usize::from(i)].as_ref().map(|v| v.to_string()),
                state: states[usize::from(i)].clone(),
            }
        })
        .collect();
    let stats = sim.stats();
    RunReport {
        seed,
        spec: *spec,
        network,
        partition,
        nodes,
        violations: sim.violations().to_vec(),
        decided,
        latency_delays: sim
            .all_decided_at_ms()
            .filter(|_| decided)
            .map(|t| t as f64 / network.delay.mean_ms()),
        messages: stats.messages,
        stats,
        virtual_ms: sim.now_ms(),
        trace_digest: sim.trace_digest(),
    }
}

/// The name of a strategy, as in `--json` output.
pub fn strategy_name(s: Strategy) -> &'static str {
    match s {
        Strategy::Equivocate => "equivocate",
        Strategy::DoubleVote => "double-vote",
        Strategy::WrongValue => "wrong-value",
        Strategy::Forge => "forge",
        Strategy::Replay => "replay",
        Strategy::Silent => "silent",
        Strategy::Flood => "flood",
    }
}

impl fmt::Display for RunReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}", self.command())?;
        writeln!(
            f,
            "network: {} delays (mean {:.1} ms), loss {:.2}, duplication {:.2}, reordering {:.2}{}",
            self.network.delay.name(),
            self.network.delay.mean_ms(),
            self.network.loss,
            self.network.duplicate,
            self.network.reorder,
            match &self.partition {
                Some((t, a)) =>
                    format!(", partition {a:?} | rest from {t} ms until {FAULT_PHASE_MS} ms"),
                None => String::new(),
            }
        )?;
        writeln!(f, "{:<6} {:<24} {:<10} state", "node", "fault", "decision")?;
        for nr in &self.nodes {
            writeln!(
                f,
                "{:<6} {:<24} {:<10} {}",
                format!("n{}", nr.node),
                nr.fault,
                nr.decision.as_deref().unwrap_or("-"),
                nr.state
            )?;
        }
        let verdict = |ok: bool| if ok { "ok" } else { "VIOLATED" };
        let has = |p| self.violations.iter().any(|v| v.property == p);
        use super::sim::Property::*;
        writeln!(
            f,
            "agreement: {}   validity: {}   integrity: {}   liveness: {}",
            verdict(!has(Agreement)),
            verdict(!has(Validity)),
            verdict(!has(Integrity)),
            if self.decided {
                "decided"
            } else {
                "NOT DECIDED within budget"
            }
        )?;
        for v in self.violations.iter().take(10) {
            writeln!(f, "  {:?} at {} ms: {}", v.property, v.at_ms, v.detail)?;
        }
        writeln!(
            f,
            "latency: {}   messages: {}   events: {}   rejected by nodes: {}   evidence: {}",
            self.latency_delays
                .map_or("-".to_string(), |l| format!("{l:.1} message delays")),
            self.messages,
            self.stats.events,
            self.stats.rejected,
            self.stats.evidence
        )?;
        write!(f, "trace digest: {}", self.trace_digest)?;
        if !self.ok() {
            write!(f, "\nreproduce: {}", self.command())?;
        }
        Ok(())
    }
}

/// Percentiles of a sample.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Percentiles {
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Largest.
    pub max: f64,
    /// Mean.
    pub mean: f64,
}

impl Percentiles {
    /// Of `xs` (any order); zeros when empty.
    pub fn of(mut xs: Vec<f64>) -> Percentiles {
        if xs.is_empty() {
            return Percentiles::default();
        }
        xs.sort_by(f64::total_cmp);
        let at = |q: f64| xs[((xs.len() - 1) as f64 * q).round() as usize];
        Percentiles {
            p50: at(0.5),
            p90: at(0.9),
            p99: at(0.99),
            max: xs[xs.len() - 1],
            mean: xs.iter().sum::<f64>() / xs.len() as f64,
        }
    }
}

/// The summary of a sweep.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SweepReport {
    /// What ran.
    pub spec: RunSpec,
    /// First seed.
    pub seed_first: u64,
    /// One past the last seed.
    pub seed_end: u64,
    /// Runs.
    pub runs: u64,
    /// Runs with at least one safety violation.
    pub safety_violations: u64,
    /// Runs in which some correct node did not decide within the liveness budget.
    pub liveness_failures: u64,
    /// Seeds of failing runs, ascending (at most [`FAILING_SEEDS_MAX`]).
    pub failing_seeds: Vec<u64>,
    /// Latency of decided runs, in mean message delays.
    pub latency_delays: Percentiles,
    /// Protocol messages per decision (per decided run).
    pub messages_per_decision: Percentiles,
    /// Events processed in all runs.
    pub events: u64,
    /// Worker threads.
    pub jobs: usize,
    /// Wall-clock time, ms.
    pub wall_ms: u64,
    /// The first failing run in full, if any.
    pub first_failure: Option<RunReport>,
}

impl SweepReport {
    /// No violation and no liveness failure.
    pub fn ok(&self) -> bool {
        self.safety_violations == 0 && self.liveness_failures == 0
    }
}

/// Runs every seed in `seeds` on `jobs` threads; `progress(done, total)` is called after each
/// run (from worker threads).
pub fn sweep(
    spec: &RunSpec,
    seeds: std::ops::Range<u64>,
    jobs: usize,
    progress: &(dyn Fn(u64, u64) + Sync),
) -> SweepReport {
    let started = std::time::Instant::now();
    let total = seeds.end.saturating_sub(seeds.start);
    // Workers claim offsets into the range, not seeds: an offset grows past `total` by at most
    // one per worker, where a seed counter would wrap past u64::MAX and start again at 0.
    let next = AtomicU64::new(0);
    let done = AtomicU64::new(0);
    let jobs = jobs.max(1);
    struct Acc {
        failing: Vec<u64>,
        safety: u64,
        liveness: u64,
        latencies: Vec<f64>,
        messages: Vec<f64>,
        events: u64,
        first_failure: Option<RunReport>,
    }
    let acc = Mutex::new(Acc {
        failing: Vec::new(),
        safety: 0,
        liveness: 0,
        latencies: Vec::new(),
        messages: Vec::new(),
        events: 0,
        first_failure: None,
    });
    std::thread::scope(|s| {
        for _ in 0..jobs {
            s.spawn(|| {
                loop {
                    let offset = next.fetch_add(1, Ordering::Relaxed);
                    if offset >= total {
                        break;
                    }
                    let seed = seeds.start + offset;
                    let r = run_seed(spec, seed);
                    {
                        let mut a = acc.lock().unwrap_or_else(|e| e.into_inner());
                        a.events += r.stats.events;
                        if !r.violations.is_empty() {
                            a.safety += 1;
                        }
                        if !r.decided {
                            a.liveness += 1;
                        }
                        if r.ok() {
                            if let Some(l) = r.latency_delays {
                                a.latencies.push(l);
                            }
                            a.messages.push(r.messages as f64);
                        } else {
                            a.failing.push(seed);
                            if a.first_failure.as_ref().is_none_or(|f| f.seed > seed) {
                                a.first_failure = Some(r);
                            }
                        }
                    }
                    let d = done.fetch_add(1, Ordering::Relaxed) + 1;
                    progress(d, total);
                }
            });
        }
    });
    let mut a = acc.into_inner().unwrap_or_else(|e| e.into_inner());
    a.failing.sort_unstable();
    a.failing.truncate(FAILING_SEEDS_MAX);
    SweepReport {
        spec: *spec,
        seed_first: seeds.start,
        seed_end: seeds.end,
        runs: total,
        safety_violations: a.safety,
        liveness_failures: a.liveness,
        failing_seeds: a.failing,
        latency_delays: Percentiles::of(a.latencies),
        messages_per_decision: Percentiles::of(a.messages),
        events: a.events,
        jobs,
        wall_ms: started.elapsed().as_millis() as u64,
        first_failure: a.first_failure,
    }
}

impl fmt::Display for SweepReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "synod sim --protocol {} --nodes {} --faulty {} --seeds {}..{} --scenario {}",
            self.spec.protocol,
            self.spec.n,
            self.spec.f,
            self.seed_first,
            self.seed_end,
            self.spec.scenario.name()
        )?;
        let secs = self.wall_ms as f64 / 1000.0;
        writeln!(
            f,
            "runs {}   safety violations {}   liveness failures {}   ({:.1} s on {} threads, {:.0} events/s)",
            self.runs,
            self.safety_violations,
            self.liveness_failures,
            secs,
            self.jobs,
            self.events as f64 / secs.max(1e-9)
        )?;
        let l = &self.latency_delays;
        writeln!(
            f,
            "latency (message delays)   p50 {:.1}   p90 {:.1}   p99 {:.1}   max {:.1}",
            l.p50, l.p90, l.p99, l.max
        )?;
        let m = &self.messages_per_decision;
        writeln!(
            f,
            "messages per decision      p50 {:.0}   p90 {:.0}   p99 {:.0}   mean {:.1}",
            m.p50, m.p90, m.p99, m.mean
        )?;
        if !self.failing_seeds.is_empty() {
            let shown: Vec<String> = self
                .failing_seeds
                .iter()
                .take(20)
                .map(u64::to_string)
                .collect();
            writeln!(
                f,
                "failing seeds: {}{}",
                shown.join(" "),
                if self.failing_seeds.len() > 20 {
                    " …"
                } else {
                    ""
                }
            )?;
            if let Some(r) = &self.first_failure {
                writeln!(f, "first failure:")?;
                writeln!(f, "{r}")?;
            }
        }
        Ok(())
    }
}
