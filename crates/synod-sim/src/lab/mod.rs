//! The lab: executable versions of the impossibility results and bounds synod rests on.
//!
//! Each experiment is a pure function from a configuration to a report that serializes with
//! serde and renders as a text table; the command line (`synod lab …`) only parses arguments,
//! prints and writes plots.
//!
//! - [`generals`]: Lamport, Shostak and Pease's OM(m) and SM(m), run exhaustively over traitor
//!   placements and strategies, checking IC1 and IC2.
//! - [`flp`]: an adversarial scheduler that keeps a deterministic protocol bivalent, with
//!   valence computed by exploring reachable configurations; the same protocol with an
//!   eventually accurate failure detector decides.
//! - [`benor`]: Ben-Or's randomized consensus with independent and correlated coins.
//! - [`scaling`]: the probability that faults stay within the peer (3m+1) and trusted-checker
//!   (2m+1) budgets as agents are added, analytic and Monte-Carlo, and the cost of the wave rule.
//! - [`plot`]: PNG plots of the reports.

pub mod benor;
pub mod flp;
pub mod generals;
pub mod plot;
pub mod scaling;
mod table;

/// Why a lab experiment refused to run.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    /// A parameter is outside the range the experiment accepts; the message names it and the
    /// range.
    #[error("{0}")]
    InvalidInput(String),
    /// Drawing or writing a plot failed.
    #[error("cannot write plot {path}: {reason}")]
    Plot {
        /// The file that was being written.
        path: String,
        /// What the plotting backend reported.
        reason: String,
    },
}
