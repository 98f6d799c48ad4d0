//! The simulated network: delay distributions, loss, duplication, reordering.

use serde::{Deserialize, Serialize};
use synod_core::rng::SeededRng;

/// How long a message takes, in virtual milliseconds.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Delay {
    /// Always this long.
    Constant {
        /// Delay.
        ms: u64,
    },
    /// Uniform in `lo_ms..=hi_ms`.
    Uniform {
        /// Smallest delay.
        lo_ms: u64,
        /// Largest delay.
        hi_ms: u64,
    },
    /// Exponential with this mean (plus 1 ms so no message is instantaneous).
    Exponential {
        /// Mean.
        mean_ms: f64,
    },
    /// Pareto (heavy tailed, like LLM latencies): `scale_ms / U^(1/shape)`, capped at
    /// `cap_ms`.
    Pareto {
        /// Minimum delay x_m.
        scale_ms: f64,
        /// Tail index α (> 1 for a finite mean; smaller is heavier).
        shape: f64,
        /// Largest delay drawn.
        cap_ms: u64,
    },
}

impl Delay {
    /// The four families with a mean near `mean_ms`, for sweeps and the detector lab.
    pub fn families(mean_ms: u64) -> Vec<(&'static str, Delay)> {
        let m = mean_ms as f64;
        vec![
            ("constant", Delay::Constant { ms: mean_ms }),
            (
                "uniform",
                Delay::Uniform {
                    lo_ms: mean_ms / 2,
                    hi_ms: mean_ms + mean_ms / 2,
                },
            ),
            ("exponential", Delay::Exponential { mean_ms: m - 1.0 }),
            (
                "pareto",
                Delay::Pareto {
                    // mean = α·x_m/(α−1) = 3·x_m at α = 1.5
                    scale_ms: m / 3.0,
                    shape: 1.5,
                    cap_ms: mean_ms * 100,
                },
            ),
        ]
    }

    /// One delay, at least 1 ms.
    pub fn sample(&self, rng: &mut SeededRng) -> u64 {
        let ms = match *self {
            Delay::Constant { ms } => ms as f64,
            Delay::Uniform { lo_ms, hi_ms } => {
                rng.range_i64(lo_ms as i64, hi_ms.max(lo_ms) as i64) as f64
            }
            Delay::Exponential { mean_ms } => 1.0 - mean_ms * unit_open(rng).ln(),
            Delay::Pareto {
                scale_ms,
                shape,
                cap_ms,
            } => (scale_ms / unit_open(rng).powf(1.0 / shape)).min(cap_ms as f64),
        };
        (ms.round() as u64).max(1)
    }

    /// The mean delay: the unit in which latencies are reported ("message delays").
    pub fn mean_ms(&self) -> f64 {
        match *self {
            Delay::Constant { ms } => ms as f64,
            Delay::Uniform { lo_ms, hi_ms } => (lo_ms + hi_ms.max(lo_ms)) as f64 / 2.0,
            Delay::Exponential { mean_ms } => 1.0 + mean_ms,
            Delay::Pareto {
                scale_ms, shape, ..
            } => {
                if shape > 1.0 {
                    shape * scale_ms / (shape - 1.0)
                } else {
                    scale_ms * 10.0
                }
            }
        }
    }

    /// A short name.
    pub fn name(&self) -> &'static str {
        match self {
            Delay::Constant { .. } => "constant",
            Delay::Uniform { .. } => "uniform",
            Delay::Exponential { .. } => "exponential",
            Delay::Pareto { .. } => "pareto",
        }
    }
}

/// A uniform draw in (0, 1].
fn unit_open(rng: &mut SeededRng) -> f64 {
    ((rng.next_u64() >> 11) as f64 + 1.0) / (1u64 << 53) as f64
}

/// The network's behaviour.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct NetworkConfig {
    /// Delay of each message.
    pub delay: Delay,
    /// Probability that a message is lost.
    pub loss: f64,
    /// Probability that a message is delivered twice.
    pub duplicate: f64,
    /// Probability that a message is held back by an extra 2–5 delays (reordering).
    pub reorder: f64,
}

impl NetworkConfig {
    /// A network that delivers every message once after exactly `ms`.
    pub fn constant(ms: u64) -> NetworkConfig {
        NetworkConfig {
            delay: Delay::Constant { ms },
            loss: 0.0,
            duplicate: 0.0,
            reorder: 0.0,
        }
    }
}
