//! synod-node: the decentralized mode (`synod node`, issue 12).
//!
//! n peers, each with its own key and agents, agree with the Tendermint-style core of
//! `synod_core::protocols::bft` over TCP, without trusting each other's tally: first on a
//! reading (a batch of signed interpretations and the verdict it tallies to, which every
//! correct peer re-checks in its own sandbox before it prevotes), then on each component
//! (built by a designated peer, checked for refinement by every peer). Each correct peer ends
//! with the same decided digests and a certificate carrying, per height, the n − f precommit
//! signatures (a quorum certificate) that `synod verify DIR --peers FILE` checks offline.
//!
//! - [`config`]: the peer list and a peer's own settings;
//! - [`content`]: offers, the values voted on and their deterministic validity;
//! - [`wire`]: length-delimited JSON frames;
//! - [`net`]: TCP on threads, bounded queues, reconnects, test-only network controls;
//! - [`node`]: one peer's run; [`verify`]: a certificate's offline check.

pub mod config;
pub mod content;
pub mod net;
pub mod node;
pub mod verify;
pub mod wire;

pub use config::{NodeConfig, PeersFile};
pub use node::{Byzantine, NodeError, NodeOptions, NodeOutcome, TestSwitches, run_node};
