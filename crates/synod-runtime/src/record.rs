//! What a build's log holds, as types: the pipeline's [`Decision`]s and the runtime's own
//! entries (each logged input, how a run was set up, the certificate's digest). Written and read
//! by the same code, so a renamed kind or field breaks the build, not `verify` (ADR 0005).

use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use synod_core::pipeline::{Decision, Input};
use synod_store::Entry;

/// One log entry.
#[derive(Clone, Debug, PartialEq)]
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

impl PartialEq for InputRecord {
    fn eq(&self, other: &Self) -> bool {
        // `Input` holds replies and reports; compare what the log would hold.
        serde_json::to_value(self).ok() == serde_json::to_value(other).ok()
    }
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

#[derive(Serialize, Deserialize)]
#[serde(tag = "kind", content = "body", rename_all = "kebab-case")]
enum Other {
    Input(InputRecord),
    Run(RunRecord),
    Certificate(CertificateRecord),
}

impl Record {
    /// The entry's kind and body, as the log stores them.
    pub fn to_entry(&self) -> (String, serde_json::Value) {
        let other = match self {
            Record::Decision(d) => return d.to_entry(),
            Record::Input(r) => Other::Input(r.clone()),
            Record::Run(r) => Other::Run(r.clone()),
            Record::Certificate(r) => Other::Certificate(r.clone()),
        };
        let mut v = serde_json::to_value(other).unwrap_or_default();
        let kind = v["kind"].as_str().unwrap_or_default().to_string();
        (kind, v["body"].take())
    }

    /// Reads a log entry; an error names the entry and what does not fit.
    pub fn parse(entry: &Entry) -> Result<Record, String> {
        let body = entry
            .body_json()
            .map_err(|e| format!("entry {}: {e}", entry.seq))?;
        if Decision::is_decision_kind(&entry.kind) {
            return Decision::from_entry(&entry.kind, &body)
                .map(|d| Record::Decision(Box::new(d)))
                .map_err(|e| format!("entry {}: {e}", entry.seq));
        }
        let v = serde_json::json!({"kind": entry.kind, "body": body});
        match serde_json::from_value::<Other>(v) {
            Ok(Other::Input(r)) => Ok(Record::Input(r)),
            Ok(Other::Run(r)) => Ok(Record::Run(r)),
            Ok(Other::Certificate(r)) => Ok(Record::Certificate(r)),
            Err(e) => Err(format!(
                "entry {} ({:?}) is not a record this synod knows: {e}",
                entry.seq, entry.kind
            )),
        }
    }

    /// The kind a certificate entry has.
    pub fn is_certificate(entry: &Entry) -> bool {
        entry.kind == Record::Certificate(CertificateRecord::default()).kind()
    }

    /// The kind a run entry has.
    pub fn is_run(entry: &Entry) -> bool {
        entry.kind == Record::Run(RunRecord::default()).kind()
    }

    /// The kind an input entry has.
    pub fn is_input(entry: &Entry) -> bool {
        entry.kind
            == Record::Input(InputRecord {
                now_ms: 0,
                input: Input::Start,
            })
            .kind()
    }

    /// This record's kind.
    pub fn kind(&self) -> String {
        self.to_entry().0
    }
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
