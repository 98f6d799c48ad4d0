//! Ben-Or's randomized consensus (1983) against an adversarial scheduler, with coins that are
//! independent, shared, or a mixture.
//!
//! n processes, f = ⌊(n−1)/2⌋ crashes tolerated. Round r:
//!
//! 1. broadcast R(r, x), wait for n − f R messages; if more than n/2 carry v, send P(r, v),
//!    else P(r, ?);
//! 2. wait for n − f P messages; if at least f + 1 carry v, decide v; if at least one does,
//!    x := v; otherwise x := a coin flip.
//!
//! The run is simulated a round at a time: the scheduler chooses which n − f messages each
//! process hears in each phase (every choice it makes is one an asynchronous network allows).
//! If all estimates are equal, everyone decides in that round. Otherwise at most one value v
//! can gather a majority; the scheduler lets at most one process send P(v), so that nobody
//! decides, and chooses who hears it (and adopts v) and who hears only ? (and flips).
//!
//! **Coins.** In each round, with probability ρ all processes use one shared coin draw (agents
//! on one base model: the same habit, so the same "random" choice); otherwise each flips its
//! own. Two schedulers:
//!
//! - **predicting**: the shared draws are predictable (the habit is known) and the scheduler
//!   knows them in advance. When a round's shared coin differs from the majority value v, it
//!   splits the processes between v and the coin, sizing the split so that the next round's
//!   majority differs from the next shared coin; when the coin equals v it cannot stop the
//!   decision. Independent flips it cannot predict, but before a predicted shared coin it keeps a
//!   quorum on the value that differs from it.
//! - **blind**: the scheduler does not know any coin before it is flipped (it still picks the
//!   worst split for independent coins: everyone but one process flips).
//!
//! Runs are seeded and bounded (`rounds_max`); runs that have not decided by then count as
//! undecided and enter the mean at the bound.

use super::LabError;
use super::table;
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;
use synod_core::rng::SeededRng;

/// The correlations the table reports.
pub const RHOS: [f64; 4] = [0.0, 0.5, 0.9, 1.0];
/// The most processes.
pub const PROCESSES_MAX: usize = 15;
/// The most runs per row.
pub const RUNS_MAX: u64 = 100_000;
/// The largest round bound.
pub const ROUNDS_MAX: u32 = 10_000;

/// What to run.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BenOrConfig {
    /// Processes (3..=15).
    pub n: usize,
    /// Seeded runs per (ρ, scheduler).
    pub runs: u64,
    /// A run that has not decided after this many rounds counts as undecided.
    pub rounds_max: u32,
    /// Seed.
    pub seed: u64,
}

/// Which scheduler.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scheduler {
    /// Knows the shared coin draws in advance.
    Predicting,
    /// Knows no coin before it is flipped.
    Blind,
}

/// One (ρ, scheduler) row.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BenOrRow {
    /// Probability that a round's coin is one shared draw.
    pub rho: f64,
    /// The scheduler.
    pub scheduler: Scheduler,
    /// Mean rounds to decide, undecided runs counted at the bound.
    pub mean_rounds: f64,
    /// Median rounds (the bound when more than half are undecided).
    pub p50: u32,
    /// 90th percentile.
    pub p90: u32,
    /// 99th percentile.
    pub p99: u32,
    /// Fraction of runs undecided within the bound.
    pub undecided: f64,
}

/// The result of [`run`].
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BenOrReport {
    /// The configuration.
    pub config: BenOrConfig,
    /// Crashes tolerated, ⌊(n−1)/2⌋.
    pub f: usize,
    /// The initial estimates (alternating 0, 1, …).
    pub inputs: Vec<u8>,
    /// One row per ρ and scheduler.
    pub rows: Vec<BenOrRow>,
}

/// Checks the configuration.
pub fn validate(config: &BenOrConfig) -> Result<(), LabError> {
    if !(3..=PROCESSES_MAX).contains(&config.n) {
        return Err(LabError::InvalidInput(format!(
            "--benor-n {} is out of range (3 to {PROCESSES_MAX})",
            config.n
        )));
    }
    if !(1..=RUNS_MAX).contains(&config.runs) {
        return Err(LabError::InvalidInput(format!(
            "--runs {} is out of range (1 to {RUNS_MAX})",
            config.runs
        )));
    }
    if !(1..=ROUNDS_MAX).contains(&config.rounds_max) {
        return Err(LabError::InvalidInput(format!(
            "--rounds-max {} is out of range (1 to {ROUNDS_MAX})",
            config.rounds_max
        )));
    }
    Ok(())
}

/// One round's coin: shared (with its value) or independent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Coin {
    Shared(u8),
    Independent,
}

/// One seeded run; the round in which everyone decides, or `None` within `rounds_max`.
pub fn run_once(
    n: usize,
    rho: f64,
    scheduler: Scheduler,
    rounds_max: u32,
    rng: &mut SeededRng,
) -> Option<u32> {
    let f = (n - 1) / 2;
    let quorum = n - f;
    let mut x: Vec<u8> = (0..n).map(|i| (i % 2) as u8).collect();
    // The coins of every round, drawn up front: the predicting scheduler may read ahead.
    let draw = |rng: &mut SeededRng| {
        if rng.chance(rho) {
            Coin::Shared(u8::from(rng.chance(0.5)))
        } else {
            Coin::Independent
        }
    };
    let mut coin = draw(rng);
    for round in 1..=rounds_max {
        let next_coin = draw(rng);
        let ones = x.iter().filter(|&&v| v == 1).count();
        if ones == 0 || ones == n {
            return Some(round);
        }
        // The value that can gather a majority of a quorum, if any.
        let majority = if ones >= quorum {
            Some(1u8)
        } else if n - ones >= quorum {
            Some(0)
        } else {
            None
        };
        let visible = scheduler == Scheduler::Predicting;
        // How many processes adopt the majority value (the rest flip).
        let adopters = match majority {
            None => 0,
            Some(v) => match (coin, visible) {
                (Coin::Shared(c), true) if c == v => 0,
                (Coin::Shared(_), true) => match next_coin {
                    // Make the next majority the opposite of the next shared coin: a count
                    // of v at least the quorum, or at most f.
                    Coin::Shared(c2) if c2 == v => 1,
                    Coin::Shared(_) => quorum.min(n - 1),
                    Coin::Independent => 1,
                },
                // Independent flips it cannot predict, but it can prepare for a predicted
                // shared coin next round: if v differs from it, keep a quorum on v (only
                // if all f flippers flip v does the next round start unanimous).
                (Coin::Independent, true) => match next_coin {
                    Coin::Shared(c2) if c2 != v => quorum.min(n - 1),
                    _ => 1,
                },
                _ => 1,
            },
        };
        let v = majority.unwrap_or(0);
        for (i, xi) in x.iter_mut().enumerate() {
            *xi = if i < adopters {
                v
            } else {
                match coin {
                    Coin::Shared(c) => c,
                    Coin::Independent => u8::from(rng.chance(0.5)),
                }
            };
        }
        coin = next_coin;
    }
    None
}

/// Runs the table.
pub fn run(config: &BenOrConfig) -> Result<BenOrReport, LabError> {
    validate(config)?;
    let mut rows = Vec::new();
    for scheduler in [Scheduler::Predicting, Scheduler::Blind] {
        for rho in RHOS {
            let mut rng = SeededRng::derive(
                config.seed,
                &format!("lab benor n={} rho={rho} {scheduler:?}", config.n),
            );
            let mut rounds: Vec<u32> = Vec::new();
            let mut undecided = 0u64;
            for _ in 0..config.runs {
                match run_once(config.n, rho, scheduler, config.rounds_max, &mut rng) {
                    Some(r) => rounds.push(r),
                    None => {
                        undecided += 1;
                        rounds.push(config.rounds_max);
                    }
                }
            }
            rounds.sort_unstable();
            let pct = |q: f64| {
                let i = ((rounds.len() as f64 * q).ceil() as usize).clamp(1, rounds.len()) - 1;
                rounds[i]
            };
            rows.push(BenOrRow {
                rho,
                scheduler,
                mean_rounds: rounds.iter().map(|&r| f64::from(r)).sum::<f64>()
                    / rounds.len() as f64,
                p50: pct(0.5),
                p90: pct(0.9),
                p99: pct(0.99),
                undecided: undecided as f64 / config.runs as f64,
            });
        }
    }
    Ok(BenOrReport {
        f: (config.n - 1) / 2,
        inputs: (0..config.n).map(|i| (i % 2) as u8).collect(),
        config: config.clone(),
        rows,
    })
}

impl BenOrReport {
    /// The report as a table.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "Ben-Or, n = {}, f = {}, inputs {:?}; {} seeded runs per row, at most {} rounds \
             (undecided runs count at the bound).",
            self.config.n, self.f, self.inputs, self.config.runs, self.config.rounds_max
        );
        let _ = writeln!(
            out,
            "rho = probability that a round's coin is one shared draw; predicting = the \
             scheduler knows shared draws in advance, blind = it knows no coin in advance.\n"
        );
        let rows: Vec<Vec<String>> = self
            .rows
            .iter()
            .map(|r| {
                vec![
                    format!("{:.1}", r.rho),
                    match r.scheduler {
                        Scheduler::Predicting => "predicting".into(),
                        Scheduler::Blind => "blind".into(),
                    },
                    format!("{:.2}", r.mean_rounds),
                    r.p50.to_string(),
                    r.p90.to_string(),
                    r.p99.to_string(),
                    format!("{:.3}", r.undecided),
                ]
            })
            .collect();
        out.push_str(&table::render(
            &[
                "rho",
                "scheduler",
                "mean rounds",
                "p50",
                "p90",
                "p99",
                "undecided",
            ],
            &rows,
        ));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unanimous_estimates_decide_in_the_first_round() {
        let mut rng = SeededRng::new(1);
        // n = 3 with inputs 0,1,0 is not unanimous, so it takes at least two rounds.
        let r = run_once(3, 0.0, Scheduler::Blind, 1000, &mut rng).expect("decides");
        assert!(r >= 2);
    }

    #[test]
    fn a_predicted_shared_coin_can_block_forever() {
        // Some seed lets the predicting scheduler keep n = 5 undecided for 1000 rounds.
        let blocked = (0..20).any(|seed| {
            let mut rng = SeededRng::new(seed);
            run_once(5, 1.0, Scheduler::Predicting, 1000, &mut rng).is_none()
        });
        assert!(blocked);
    }
}
