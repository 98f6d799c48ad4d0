//! What a build's log holds, as types: the pipeline's [`Decision`]s and the runtime's own
//! entries (each logged input, how a run was set up, the certificate's digest). Written and read
//! by the same code, so a renamed kind or field breaks the build, not `verify` (ADR 0005).

use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use synod_core::pipeline::{Decision, Input};
use synod_store::Entry;

/// The kind of an input entry.
const INPUT: &str = "input";
/// The kind of a run entry.
const RUN: &str = "run";
/// The kind of the certificate entry.
const CERTIFICATE: &str = "certificate";

/// One log entry.
#[derive(Clone, Debug)]
pub enum Record {
    /// A decision or piece of evidence of the pipeline.
    Decision(Box<Decision>),
    /// An input fed to the pipeline, logged before it was fed (for replay).
    Input(InputRecord),
    /// How the run that follows was set up.
    Run(RunRecord),
    /// The certificate's digest: the last entry of a finished build.
    Certificate(CertificateRecord),
}

/// An input and the time it was fed.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct InputRecord {
    /// Ms since the build started (across resumes).
    pub now_ms: u64,
    /// The input.
    pub input: Input,
}

/// How a run (the first, or one after a resume) was set up.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// The sandbox's isolation, as `synod doctor` reports it.
    pub sandbox: serde_json::Value,
    /// The response cache the agents used, if any.
    pub response_cache: Option<PathBuf>,
    /// Digest of the role prompts the agents were given.
    pub role_prompts_digest: String,
    /// The synod that ran.
    pub synod_version: String,
}

/// The certificate a finished build signed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertificateRecord {
    /// blake3 of the certificate body's canonical text.
    pub certificate_digest: String,
    /// Fingerprint of the key that signed it.
    pub fingerprint: String,
}

impl Record {
    /// The entry's kind and body, as the log stores them.
    pub fn to_entry(&self) -> (String, serde_json::Value) {
        let (kind, body) = match self {
            Record::Decision(d) => return d.to_entry(),
            Record::Input(r) => (INPUT, serde_json::to_value(r)),
            Record::Run(r) => (RUN, serde_json::to_value(r)),
            Record::Certificate(r) => (CERTIFICATE, serde_json::to_value(r)),
        };
        (kind.to_string(), body.unwrap_or_default())
    }

    /// Reads a log entry; an error names the entry and what does not fit.
    pub fn parse(entry: &Entry) -> Result<Record, String> {
        let body = entry
            .body_json()
            .map_err(|e| format!("entry {}: {e}", entry.seq))?;
        let fits = |e: serde_json::Error| {
            format!(
                "entry {} ({:?}) is not a record this synod knows: {e}",
                entry.seq, entry.kind
            )
        };
        match entry.kind.as_str() {
            INPUT => serde_json::from_value(body)
                .map(Record::Input)
                .map_err(fits),
            RUN => serde_json::from_value(body).map(Record::Run).map_err(fits),
            CERTIFICATE => serde_json::from_value(body)
                .map(Record::Certificate)
                .map_err(fits),
            kind => Decision::from_entry(kind, &body)
                .map(|d| Record::Decision(Box::new(d)))
                .map_err(|e| format!("entry {}: {e}", entry.seq)),
        }
    }

    /// Whether `entry` is the certificate entry.
    pub fn is_certificate(entry: &Entry) -> bool {
        entry.kind == CERTIFICATE
    }

    /// Whether `entry` records how a run was set up.
    pub fn is_run(entry: &Entry) -> bool {
        entry.kind == RUN
    }

    /// Whether `entry` is a logged input.
    pub fn is_input(entry: &Entry) -> bool {
        entry.kind == INPUT
    }

    /// This record's kind.
    pub fn kind(&self) -> String {
        self.to_entry().0
    }
}

/// The log format a build's `build-started` decision records, if the log has one that parses
/// (format 1, before typed decisions, has no field for it: ADR 0005).
pub fn log_format(entries: &[Entry]) -> Option<u32> {
    entries.iter().find_map(|e| match Record::parse(e) {
        Ok(Record::Decision(d)) => match *d {
            Decision::BuildStarted { log_format, .. } => Some(log_format),
            _ => None,
        },
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_are_those_of_log_format_1() {
        assert_eq!(Record::Run(RunRecord::default()).kind(), "run");
        assert_eq!(
            Record::Certificate(CertificateRecord::default()).kind(),
            "certificate"
        );
        let input = Record::Input(InputRecord {
            now_ms: 5,
            input: Input::Start,
        });
        assert_eq!(input.kind(), "input");
        assert_eq!(
            input.to_entry().1,
            serde_json::json!({"now_ms": 5, "input": "Start"})
        );
    }
}
