//! What the pipeline persists: a [`Decision`] per log entry, and the typed [`Fault`]s it
//! records of agents.
//!
//! The log stores an entry as a kind and a JSON body; [`Decision::to_entry`] and
//! [`Decision::from_entry`] are the only way between the two, so a kind or a field is named in
//! exactly one place (the serde attributes below): renaming one breaks the build of everything
//! that reads it, not `synod verify` at run time. Kinds and fields are those of log format 1
//! wherever their meaning is unchanged (ADR 0005).

use super::types::{AgentInfo, AgentRecord, AheadBy, Dissent, OutsideDomain, Question};
use crate::model::*;
use serde::{Deserialize, Serialize};
use std::fmt;

/// The log format this pipeline writes, recorded in [`Decision::BuildStarted`]. Format 1 (no
/// `log_format` field) is the format before typed decisions: `verify` reads it, `--resume`
/// refuses it.
pub const LOG_FORMAT: u32 = 2;

fn log_format_1() -> u32 {
    1
}

/// One decision or piece of evidence, as the log holds it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "body", rename_all = "kebab-case")]
pub enum Decision {
    /// The build began with this prompt, these agents and this budget.
    BuildStarted {
        /// [`LOG_FORMAT`] of the build.
        #[serde(default = "log_format_1")]
        log_format: u32,
        /// P.
        prompt: Prompt,
        /// The agents, in order.
        agents: Vec<AgentInfo>,
        /// n.
        n: usize,
        /// m.
        m: usize,
        /// The build seed.
        seed: u64,
    },
    /// An agent's reply arrived (whatever it held), with what it cost.
    AgentReplied {
        /// The agent.
        agent: AgentId,
        /// The request key (empty for a reply after its deadline).
        request: String,
        /// Prompt tokens.
        input_tokens: u64,
        /// Completion tokens.
        output_tokens: u64,
    },
    /// An agent's work was judged faulty.
    AgentFault {
        /// The agent.
        agent: AgentId,
        /// Its name.
        name: String,
        /// What was wrong.
        #[serde(flatten)]
        fault: Fault,
    },
    /// An agent was silent past its timeout: suspected, its pending asks given to others.
    AgentSuspected {
        /// The agent.
        agent: AgentId,
        /// Its name.
        name: String,
        /// The keys of the asks it had pending.
        requests: Vec<String>,
        /// The timeout it was silent past.
        timeout_ms: u64,
    },
    /// A suspected agent answered: trusted again, with a longer timeout.
    AgentTrusted {
        /// The agent.
        agent: AgentId,
        /// Its new timeout.
        timeout_ms: u64,
    },
    /// A round neither decided nor found ambiguity: every agent is asked afresh.
    Resample {
        /// Clarifications so far.
        round: u32,
        /// The new sample.
        sample: u32,
        /// Why the round did not decide.
        why: String,
    },
    /// Differential testing split a class: these inputs joined the pool.
    ClassSplit {
        /// The distinguishing inputs.
        inputs: Vec<Call>,
    },
    /// The readings split beyond the fault budget: this question went to the user.
    Ambiguity {
        /// The question.
        question: Question,
    },
    /// The user answered: the prompt gains this clarification.
    Clarification {
        /// The answer as given (capped).
        answer: String,
        /// What it adds to the prompt.
        clarification: Clarification,
    },
    /// The tally decided a reading.
    InterpretationDecided {
        /// Clarifications before it.
        round: u32,
        /// Resamples before it.
        sample: u32,
        /// The decided class.
        class: Vec<AgentId>,
        /// Whose reference is the decided reference.
        representative: AgentId,
        /// The reading's summary.
        summary: String,
        /// Digest of the decided reference.
        reference_digest: String,
        /// Probes compared.
        probes: usize,
        /// The outvoted classes.
        dissent: Vec<Dissent>,
        /// Where the decided class's members differ outside the domain (PL-19).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        outside_domain: Option<OutsideDomain>,
        /// Set when the widened rule decided (PL-20).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ahead_by: Option<AheadBy>,
        /// n.
        n: usize,
        /// m.
        m: usize,
    },
    /// The decided reading's components and contract.
    DecompositionDecided {
        /// The interface.
        components: Vec<ComponentSpec>,
        /// Members of the class that hold this interface.
        holders: Vec<AgentId>,
        /// The decided contract.
        contract: Vec<ContractExample>,
    },
    /// A component's candidate passed its refinement check.
    ComponentAccepted {
        /// The component.
        component: String,
        /// Its builder.
        agent: AgentId,
        /// Digest of its source.
        digest: String,
        /// Contract examples met.
        contract_met: usize,
        /// Probes matched.
        probes_matched: usize,
    },
    /// The assembled program passed the integration check.
    IntegrationPassed {
        /// Digest of the program.
        program_digest: String,
        /// Contract examples met.
        contract_met: usize,
        /// Probes matched.
        probes_matched: usize,
    },
    /// The build ended without a program.
    BuildFailed {
        /// The stage that failed.
        stage: String,
        /// Why.
        reason: String,
        /// What the agents did.
        agents: Vec<AgentRecord>,
    },
}

impl Decision {
    /// The entry's kind and body, as the log stores them.
    pub fn to_entry(&self) -> (String, serde_json::Value) {
        let mut v = serde_json::to_value(self).unwrap_or_default();
        let kind = v
            .get("kind")
            .and_then(|k| k.as_str())
            .unwrap_or_default()
            .to_string();
        let body = v
            .get_mut("body")
            .map(serde_json::Value::take)
            .unwrap_or_default();
        (kind, body)
    }

    /// The entry's kind.
    pub fn kind(&self) -> String {
        self.to_entry().0
    }

    /// Reads an entry back; an error names what does not fit.
    pub fn from_entry(kind: &str, body: &serde_json::Value) -> Result<Decision, String> {
        let v = serde_json::json!({"kind": kind, "body": body});
        serde_json::from_value(v).map_err(|e| format!("not a {kind:?} decision: {e}"))
    }

    /// Whether `kind` names a decision (rather than another kind of log entry).
    pub fn is_decision_kind(kind: &str) -> bool {
        DECISION_KINDS.contains(&kind)
    }
}

/// Every decision kind, as [`Decision::to_entry`] names them.
pub const DECISION_KINDS: &[&str] = &[
    "build-started",
    "agent-replied",
    "agent-fault",
    "agent-suspected",
    "agent-trusted",
    "resample",
    "class-split",
    "ambiguity",
    "clarification",
    "interpretation-decided",
    "decomposition-decided",
    "component-accepted",
    "integration-passed",
    "build-failed",
];

/// The stage in which a fault was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultStage {
    /// Its reading (the reply, or its reference's own check).
    Interpret,
    /// Its reading was outvoted.
    Vote,
    /// A component it built.
    Build,
}

impl fmt::Display for FaultStage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FaultStage::Interpret => "interpret",
            FaultStage::Vote => "vote",
            FaultStage::Build => "build",
        })
    }
}

/// What kind of fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    /// The agent failed (process died, transport error, refused).
    Crashed,
    /// The reply did not parse, was out of bounds, or answered another question.
    InvalidReply,
    /// Its program does not load.
    DoesNotLoad,
    /// Its program does not have the agreed interface.
    InterfaceMismatch,
    /// Its program breaks the contract (a reference its own, a candidate the decided one).
    BreaksContract,
    /// Its candidate differs from the decided reference on a probe.
    DiffersFromReference,
    /// Its reading is not the decided one.
    Outvoted,
    /// Its program contains or attempted an operation outside the capability set (the static
    /// allow-list or the audit hook; docs/SECURITY.md).
    Forbidden,
}

/// A fault of an agent: where, what kind, and the evidence in a sentence.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fault {
    /// Where.
    pub stage: FaultStage,
    /// What kind.
    pub kind: FaultKind,
    /// The evidence, for people (capped at 400 bytes).
    pub detail: String,
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.stage, self.detail)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::types::{AgentRecord, Question};

    /// One decision of every kind. The match makes a new variant break this test's build until
    /// it is listed here and in [`DECISION_KINDS`].
    fn one_of_each() -> Vec<Decision> {
        let all = vec![
            Decision::BuildStarted {
                log_format: LOG_FORMAT,
                prompt: Prompt::new("p"),
                agents: vec![],
                n: 3,
                m: 1,
                seed: 7,
            },
            Decision::AgentReplied {
                agent: AgentId(0),
                request: "interpret".into(),
                input_tokens: 1,
                output_tokens: 2,
            },
            Decision::AgentFault {
                agent: AgentId(1),
                name: "b".into(),
                fault: Fault {
                    stage: FaultStage::Build,
                    kind: FaultKind::DiffersFromReference,
                    detail: "m: differs".into(),
                },
            },
            Decision::AgentSuspected {
                agent: AgentId(2),
                name: "c".into(),
                requests: vec!["interpret".into()],
                timeout_ms: 5,
            },
            Decision::AgentTrusted {
                agent: AgentId(2),
                timeout_ms: 10,
            },
            Decision::Resample {
                round: 0,
                sample: 1,
                why: "w".into(),
            },
            Decision::ClassSplit { inputs: vec![] },
            Decision::Ambiguity {
                question: Question {
                    round: 0,
                    prompt: "p".into(),
                    readings: vec![],
                    differing: vec![],
                    outside_domain: false,
                    contradicts: None,
                    open: false,
                },
            },
            Decision::Clarification {
                answer: "A".into(),
                clarification: Clarification {
                    text: "t".into(),
                    examples: vec![],
                },
            },
            Decision::InterpretationDecided {
                round: 0,
                sample: 0,
                class: vec![AgentId(0)],
                representative: AgentId(0),
                summary: "s".into(),
                reference_digest: "d".into(),
                probes: 3,
                dissent: vec![],
                outside_domain: None,
                ahead_by: None,
                n: 3,
                m: 1,
            },
            Decision::DecompositionDecided {
                components: vec![],
                holders: vec![],
                contract: vec![],
            },
            Decision::ComponentAccepted {
                component: "m".into(),
                agent: AgentId(0),
                digest: "d".into(),
                contract_met: 1,
                probes_matched: 2,
            },
            Decision::IntegrationPassed {
                program_digest: "d".into(),
                contract_met: 1,
                probes_matched: 2,
            },
            Decision::BuildFailed {
                stage: "agree".into(),
                reason: "r".into(),
                agents: vec![AgentRecord {
                    id: AgentId(0),
                    name: "a".into(),
                    calls: 1,
                    faults: vec![],
                    suspicions: 0,
                    suspected: false,
                    usage: Default::default(),
                    self_consistency: Default::default(),
                }],
            },
        ];
        for d in &all {
            match d {
                Decision::BuildStarted { .. }
                | Decision::AgentReplied { .. }
                | Decision::AgentFault { .. }
                | Decision::AgentSuspected { .. }
                | Decision::AgentTrusted { .. }
                | Decision::Resample { .. }
                | Decision::ClassSplit { .. }
                | Decision::Ambiguity { .. }
                | Decision::Clarification { .. }
                | Decision::InterpretationDecided { .. }
                | Decision::DecompositionDecided { .. }
                | Decision::ComponentAccepted { .. }
                | Decision::IntegrationPassed { .. }
                | Decision::BuildFailed { .. } => {}
            }
        }
        all
    }

    #[test]
    fn every_decision_round_trips_through_its_log_entry() {
        let all = one_of_each();
        let kinds: Vec<String> = all.iter().map(Decision::kind).collect();
        assert_eq!(kinds, DECISION_KINDS);
        for d in all {
            let (kind, body) = d.to_entry();
            assert!(Decision::is_decision_kind(&kind));
            assert_eq!(Decision::from_entry(&kind, &body).unwrap(), d);
        }
    }

    #[test]
    fn a_fault_entry_keeps_its_fields_flat() {
        let d = &one_of_each()[2];
        let (_, body) = d.to_entry();
        assert_eq!(body["stage"], "build");
        assert_eq!(body["kind"], "differs_from_reference");
        assert_eq!(body["detail"], "m: differs");
    }

    #[test]
    fn a_format_1_build_start_reads_as_format_1() {
        let body = serde_json::json!({"prompt": Prompt::new("p"), "agents": [], "n": 3, "m": 1, "seed": 0});
        let Decision::BuildStarted { log_format, .. } =
            Decision::from_entry("build-started", &body).unwrap()
        else {
            panic!("not a build start")
        };
        assert_eq!(log_format, 1);
        assert!(Decision::from_entry("build-sterted", &body).is_err());
    }
}
