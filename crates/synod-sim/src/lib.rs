//! synod-sim: makes the theory synod rests on executable.
//!
//! - [`simulator`]: a seeded discrete-event simulator that runs the core's sans-IO protocols
//!   over a faulty network with crashed, slow and Byzantine nodes, with safety checkers on every
//!   step and a liveness phase; model checking with stateright.
//! - [`lab`]: Lamport's OM(m) and SM(m), an FLP adversary scheduler, Ben-Or's randomized
//!   consensus, and the scaling analysis of the fault bounds.

pub mod lab;
pub mod simulator;
