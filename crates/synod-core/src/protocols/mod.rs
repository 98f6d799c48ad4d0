//! Sans-IO protocol cores (DESIGN §5): failure detectors, Chandra–Toueg consensus with ◇S and
//! Tendermint-style Byzantine agreement.
//!
//! Every core has one entry point, `step(&mut self, now_ms, input, &mut Vec<Output>)`. Time is
//! an argument, randomness (keys) comes from a seed, collections are `BTreeMap`s and `Vec`s,
//! and every store has a bound. Bad or Byzantine peer input is never an `Err` and never a
//! panic: it is dropped and counted, or kept as evidence. The rules each core implements are
//! numbered in `docs/PROTOCOL.md`; tests in `tests/protocols.rs` name the rule they check.
//!
//! Driving a core: feed it inputs (a message from a peer, a timer that fired, a suspicion) with
//! the current time, then carry out its outputs in order (send, set a timer, decide).

pub mod bft;
pub mod ct;
pub mod detector;

use serde::{Deserialize, Serialize};
use std::fmt;

/// A node (process, agent) of a protocol instance: an index `0..n`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct NodeId(pub u16);

impl NodeId {
    /// The index as a `usize`, for tables indexed by node.
    pub fn index(self) -> usize {
        usize::from(self.0)
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "n{}", self.0)
    }
}

/// A round of a consensus instance, counted from 0.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Round(pub u32);

impl fmt::Display for Round {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "r{}", self.0)
    }
}

/// An opaque value to agree on (for synod: the digest of a batch of signed interpretations).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Value(pub Vec<u8>);

impl Value {
    /// A value holding these bytes.
    pub fn from_bytes(bytes: &[u8]) -> Value {
        Value(bytes.to_vec())
    }
}

impl fmt::Debug for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", String::from_utf8_lossy(&self.0))
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", String::from_utf8_lossy(&self.0))
    }
}

/// The smallest majority of `n`: ⌈(n+1)/2⌉.
pub fn majority(n: usize) -> usize {
    n / 2 + 1
}
