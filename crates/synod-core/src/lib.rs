//! synod-core: the model, the decision rule and the build pipeline, as sans-IO state machines.
//!
//! Nothing here does IO, reads the clock or draws OS randomness: time is an argument, randomness
//! comes from a seed, and every collection iterates in a fixed order. The same code runs under
//! the real runtime, the simulator and the tests.

pub mod model;
pub mod value;

pub use model::*;
pub use value::{Value, ValueError};
pub mod pipeline;
pub mod probes;
pub mod protocols;
pub mod rng;
pub mod tally;

pub use pipeline::{Input, Output, Pipeline, PipelineConfig};
pub use tally::{Tally, Verdict};
