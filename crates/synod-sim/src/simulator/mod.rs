//! A seeded, deterministic discrete-event simulator for the core's sans-IO protocols
//! (DESIGN §6), and the stateright models.
//!
//! - [`network`]: delay distributions (constant, uniform, exponential, Pareto), loss,
//!   duplication, reordering.
//! - [`actors`]: correct BFT and CT nodes, and Byzantine BFT nodes with seven strategies.
//! - [`sim`]: the event loop, the scenario API (`sim.node(2).crash()`,
//!   `sim.partition(&[0], &[1, 2, 3])`, `sim.run_until_decided(budget_ms)`) and the safety
//!   checkers (agreement, validity, integrity) that watch every decision from outside.
//! - [`sweep`]: one seed → one run with random faults and a liveness phase; sweeps in parallel.
//! - [`check`]: stateright models of the BFT core and of the trusted tally.
//! - [`detector_lab`]: detection time versus false suspicions for ◇P and phi-accrual.
//!
//! ```
//! use synod_sim::simulator::sim::{ProtocolKind, SimConfig, Simulation};
//! let mut sim = Simulation::new(SimConfig::new(ProtocolKind::Bft, 4, 1), 7);
//! sim.node(3).crash();
//! assert!(sim.run_until_decided(10_000));
//! assert!(sim.violations().is_empty());
//! ```

pub mod actors;
pub mod check;
pub mod detector_lab;
pub mod network;
pub mod sim;
pub mod sweep;
