//! Does adding agents help? The probability that faults stay within the budget, as n grows.
//!
//! n agents, each faulty with probability p. Two budgets:
//!
//! - **peer** (agents must agree among themselves, no trusted checker): m = ⌊(n−1)/3⌋;
//! - **trusted** (a deterministic checker and tally): m = ⌊(n−1)/2⌋.
//!
//! **Fault model** (a mixture, so correlation has one number): with probability ρ all n agents
//! share one fault draw (all faulty with probability p, else none; think of agents on one base
//! model making the same mistake); with probability 1 − ρ each agent is faulty independently
//! with probability p. So
//!
//! P(faults ≤ m) = ρ · (1 − p + p·[n ≤ m]) + (1 − ρ) · Σ_{k≤m} C(n,k) p^k (1−p)^{n−k}.
//!
//! Since m < n, the shared part is 1 − p whatever n is: correlation puts a ceiling on what more
//! agents can buy. As n grows (along n = 2m+1 for the trusted bound), the independent part
//! tends to 1 when p is below the bound's fraction (1/3 peer, 1/2 trusted) and to 0 above it.
//!
//! The same quantities are estimated by seeded Monte-Carlo, and the trusted tally's wave rule
//! is simulated on the same draws: ask the first n − m agents in order; while no class of
//! answers has n − m members, ask as many more as the largest class still needs. Correct
//! agents give one answer; independently faulty agents give answers of their own; agents that
//! share a fault draw give the same wrong answer.

use super::LabError;
use super::table;
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;
use synod_core::rng::SeededRng;

/// The largest n the scaling lab sweeps to.
pub const AGENTS_MAX: usize = 64;
/// The most Monte-Carlo trials per n.
pub const TRIALS_MAX: u64 = 1_000_000;

/// What to compute.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ScalingConfig {
    /// Probability that one agent is faulty.
    pub p: f64,
    /// Probability that all agents share one fault draw (see the module docs).
    pub rho: f64,
    /// Sweep n = 1..=n_max.
    pub n_max: usize,
    /// Monte-Carlo trials per n.
    pub trials: u64,
    /// Seed of the Monte-Carlo draws.
    pub seed: u64,
}

/// One n of the sweep.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ScalingRow {
    /// Number of agents.
    pub n: usize,
    /// Peer budget ⌊(n−1)/3⌋.
    pub m_peer: usize,
    /// Trusted-checker budget ⌊(n−1)/2⌋.
    pub m_trusted: usize,
    /// P(faults ≤ m_peer), analytic.
    pub peer_analytic: f64,
    /// P(faults ≤ m_peer), Monte-Carlo.
    pub peer_simulated: f64,
    /// P(faults ≤ m_trusted), analytic.
    pub trusted_analytic: f64,
    /// P(faults ≤ m_trusted), Monte-Carlo.
    pub trusted_simulated: f64,
    /// Mean agent calls of the wave rule (trusted budget), simulated.
    pub wave_calls_mean: f64,
    /// Fraction of trials in which the wave rule decided the correct answer.
    pub wave_decided_correct: f64,
    /// Fraction in which it decided a wrong answer (only possible beyond the budget).
    pub wave_decided_wrong: f64,
    /// Fraction in which it asked all n agents and could not decide.
    pub wave_undecided: f64,
}

/// The result of [`run`].
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ScalingReport {
    /// The configuration.
    pub config: ScalingConfig,
    /// The fault model, in words.
    pub model: String,
    /// One row per n.
    pub rows: Vec<ScalingRow>,
    /// The largest |simulated − analytic| / standard error over all rows and both bounds.
    pub z_max: f64,
    /// True when every simulated probability is within 4 standard errors (plus 1/trials) of
    /// the analytic one.
    pub simulation_agrees: bool,
    /// Limit of P(faults ≤ m_peer) as n grows: ρ(1−p) + (1−ρ)·[p < 1/3].
    pub peer_limit: f64,
    /// Limit of P(faults ≤ m_trusted) as n grows along n = 2m+1: ρ(1−p) + (1−ρ)·[p < 1/2].
    pub trusted_limit: f64,
}

/// The fault model, in one sentence.
pub const MODEL: &str = "with probability rho all agents share one fault draw (all faulty with \
probability p, else none); otherwise each agent is faulty independently with probability p";

/// Checks the configuration.
pub fn validate(config: &ScalingConfig) -> Result<(), LabError> {
    let unit = |name: &str, v: f64| {
        if (0.0..=1.0).contains(&v) {
            Ok(())
        } else {
            Err(LabError::InvalidInput(format!(
                "--{name} {v} is not a probability (0 to 1)"
            )))
        }
    };
    unit("p", config.p)?;
    unit("rho", config.rho)?;
    if !(1..=AGENTS_MAX).contains(&config.n_max) {
        return Err(LabError::InvalidInput(format!(
            "--n-max {} is out of range (1 to {AGENTS_MAX})",
            config.n_max
        )));
    }
    if !(1..=TRIALS_MAX).contains(&config.trials) {
        return Err(LabError::InvalidInput(format!(
            "--trials {} is out of range (1 to {TRIALS_MAX})",
            config.trials
        )));
    }
    Ok(())
}

/// The peer budget for n agents: the largest m with n ≥ 3m+1.
pub fn peer_budget(n: usize) -> usize {
    n.saturating_sub(1) / 3
}

/// The trusted-checker budget for n agents: the largest m with n ≥ 2m+1.
pub fn trusted_budget(n: usize) -> usize {
    n.saturating_sub(1) / 2
}

/// P(Binomial(n, p) ≤ m).
pub fn binomial_cdf(n: usize, m: usize, p: f64) -> f64 {
    if m >= n {
        return 1.0;
    }
    let mut sum = 0.0;
    let mut choose = 1.0f64; // C(n, k)
    for k in 0..=m {
        if k > 0 {
            choose = choose * (n - k + 1) as f64 / k as f64;
        }
        sum += choose * p.powi(k as i32) * (1.0 - p).powi((n - k) as i32);
    }
    sum.min(1.0)
}

/// P(faults ≤ m) for n agents under the mixture model.
pub fn within_budget(n: usize, m: usize, p: f64, rho: f64) -> f64 {
    let shared = if n <= m { 1.0 } else { 1.0 - p };
    rho * shared + (1.0 - rho) * binomial_cdf(n, m, p)
}

/// What the wave rule did in one trial.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WaveOutcome {
    /// Decided the correct answer.
    Correct,
    /// Decided a wrong answer.
    Wrong,
    /// Asked everyone, no class reached n − m.
    Undecided,
}

/// Runs the trusted tally's wave rule over agents whose answers are `answers` (agent i answers
/// `answers[i]`; 0 is the correct answer). Returns the outcome and the number of agents asked.
pub fn wave_rule(answers: &[u32], m: usize) -> (WaveOutcome, usize) {
    let n = answers.len();
    assert!(n > 2 * m, "the wave rule needs n >= 2m+1");
    let quorum = n - m;
    let mut asked = quorum;
    loop {
        let mut counts: std::collections::BTreeMap<u32, usize> = Default::default();
        for &a in &answers[..asked] {
            *counts.entry(a).or_default() += 1;
        }
        let (&top, &size) = counts
            .iter()
            .max_by_key(|(answer, size)| (**size, std::cmp::Reverse(**answer)))
            .expect("at least one agent asked");
        if size >= quorum {
            let outcome = if top == 0 {
                WaveOutcome::Correct
            } else {
                WaveOutcome::Wrong
            };
            return (outcome, asked);
        }
        if asked == n {
            return (WaveOutcome::Undecided, asked);
        }
        asked = (asked + (quorum - size)).min(n);
    }
}

/// Computes the sweep.
pub fn run(config: &ScalingConfig) -> Result<ScalingReport, LabError> {
    validate(config)?;
    let (p, rho) = (config.p, config.rho);
    let mut rows = Vec::new();
    let mut z_max: f64 = 0.0;
    let mut agrees = true;
    for n in 1..=config.n_max {
        let m_peer = peer_budget(n);
        let m_trusted = trusted_budget(n);
        let mut rng = SeededRng::derive(config.seed, &format!("lab scaling n={n}"));
        let (mut ok_peer, mut ok_trusted, mut calls) = (0u64, 0u64, 0u64);
        let (mut correct, mut wrong, mut undecided) = (0u64, 0u64, 0u64);
        let mut answers = vec![0u32; n];
        for _ in 0..config.trials {
            let faults = if rng.chance(rho) {
                let all = rng.chance(p);
                answers.fill(u32::from(all));
                if all { n } else { 0 }
            } else {
                let mut faults = 0;
                for (i, a) in answers.iter_mut().enumerate() {
                    *a = if rng.chance(p) {
                        faults += 1;
                        2 + i as u32
                    } else {
                        0
                    };
                }
                faults
            };
            ok_peer += u64::from(faults <= m_peer);
            ok_trusted += u64::from(faults <= m_trusted);
            let (outcome, asked) = wave_rule(&answers, m_trusted);
            calls += asked as u64;
            match outcome {
                WaveOutcome::Correct => correct += 1,
                WaveOutcome::Wrong => wrong += 1,
                WaveOutcome::Undecided => undecided += 1,
            }
        }
        let t = config.trials as f64;
        let row = ScalingRow {
            n,
            m_peer,
            m_trusted,
            peer_analytic: within_budget(n, m_peer, p, rho),
            peer_simulated: ok_peer as f64 / t,
            trusted_analytic: within_budget(n, m_trusted, p, rho),
            trusted_simulated: ok_trusted as f64 / t,
            wave_calls_mean: calls as f64 / t,
            wave_decided_correct: correct as f64 / t,
            wave_decided_wrong: wrong as f64 / t,
            wave_undecided: undecided as f64 / t,
        };
        for (analytic, simulated) in [
            (row.peer_analytic, row.peer_simulated),
            (row.trusted_analytic, row.trusted_simulated),
        ] {
            let se = (analytic * (1.0 - analytic) / t).sqrt();
            let diff = (simulated - analytic).abs();
            if se > 0.0 {
                z_max = z_max.max(diff / se);
            }
            if diff > 4.0 * se + 1.0 / t {
                agrees = false;
            }
        }
        rows.push(row);
    }
    let limit = |fraction: f64| rho * (1.0 - p) + (1.0 - rho) * f64::from(u8::from(p < fraction));
    Ok(ScalingReport {
        config: config.clone(),
        model: MODEL.to_string(),
        rows,
        z_max,
        simulation_agrees: agrees,
        peer_limit: limit(1.0 / 3.0),
        trusted_limit: limit(0.5),
    })
}

impl ScalingReport {
    /// The report as text: the model, the table, the limits and what they mean.
    pub fn render(&self) -> String {
        let c = &self.config;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "Fault budgets as agents are added: p = {}, rho = {}, {} trials per n, seed {}.",
            c.p, c.rho, c.trials, c.seed
        );
        let _ = writeln!(out, "Model: {}.", self.model);
        let _ = writeln!(
            out,
            "P(peer) = P(faults <= floor((n-1)/3)); P(trusted) = P(faults <= floor((n-1)/2)); \
             sim = Monte-Carlo. Wave rule (trusted budget): mean calls, decided wrong, undecided.\n"
        );
        let headers = [
            "n",
            "m peer",
            "P(peer)",
            "sim",
            "m trusted",
            "P(trusted)",
            "sim",
            "calls",
            "wrong",
            "undecided",
        ];
        let rows: Vec<Vec<String>> = self
            .rows
            .iter()
            .map(|r| {
                vec![
                    r.n.to_string(),
                    r.m_peer.to_string(),
                    format!("{:.4}", r.peer_analytic),
                    format!("{:.4}", r.peer_simulated),
                    r.m_trusted.to_string(),
                    format!("{:.4}", r.trusted_analytic),
                    format!("{:.4}", r.trusted_simulated),
                    format!("{:.2}", r.wave_calls_mean),
                    format!("{:.4}", r.wave_decided_wrong),
                    format!("{:.4}", r.wave_undecided),
                ]
            })
            .collect();
        out.push_str(&table::render(&headers, &rows));
        let _ = writeln!(
            out,
            "\nSimulation vs analytic: largest deviation {:.2} standard errors ({}).",
            self.z_max,
            if self.simulation_agrees {
                "agree"
            } else {
                "DISAGREE"
            }
        );
        let _ = writeln!(
            out,
            "As n grows: P(peer) -> {:.4}, P(trusted) -> {:.4} (rho(1-p) + (1-rho)[p below 1/3 \
             or 1/2]).",
            self.peer_limit, self.trusted_limit
        );
        let first = self.rows.first().map_or(0.0, |r| r.trusted_analytic);
        let last = self
            .rows
            .iter()
            .rev()
            .find(|r| r.n % 2 == 1)
            .map_or(first, |r| r.trusted_analytic);
        let verdict = if last > first + 1e-9 {
            "more agents help"
        } else {
            "more agents do not help"
        };
        let _ = writeln!(
            out,
            "Trusted budget, one agent vs the largest odd n: {first:.4} -> {last:.4}: {verdict}."
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binomial_cdf_matches_hand_values() {
        assert!((binomial_cdf(3, 1, 0.1) - 0.972).abs() < 1e-12);
        assert!((binomial_cdf(4, 1, 0.1) - 0.9477).abs() < 1e-12);
        assert_eq!(binomial_cdf(3, 3, 0.7), 1.0);
        assert!((binomial_cdf(5, 0, 0.5) - 1.0 / 32.0).abs() < 1e-15);
    }

    #[test]
    fn budgets_are_the_largest_m_the_bounds_allow() {
        assert_eq!(
            (1..=8).map(peer_budget).collect::<Vec<_>>(),
            [0, 0, 0, 1, 1, 1, 2, 2]
        );
        assert_eq!(
            (1..=8).map(trusted_budget).collect::<Vec<_>>(),
            [0, 0, 1, 1, 2, 2, 3, 3]
        );
    }

    #[test]
    fn wave_rule_asks_only_the_first_wave_when_it_agrees() {
        assert_eq!(wave_rule(&[0, 0, 0, 0, 0], 2), (WaveOutcome::Correct, 3));
        // One fault in the first wave: one more agent is asked.
        assert_eq!(wave_rule(&[0, 7, 0, 0, 0], 2), (WaveOutcome::Correct, 4));
        // A shared mistake in the first wave is decided.
        assert_eq!(wave_rule(&[1, 1, 1, 0, 0], 2), (WaveOutcome::Wrong, 3));
        assert_eq!(wave_rule(&[5, 6, 0, 0, 7], 2), (WaveOutcome::Undecided, 5));
    }
}
