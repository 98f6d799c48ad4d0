//! What a build leaves in its output directory: the program, its contract tests, `REPORT.md`,
//! `certificate.json` and the decision log.

use crate::RuntimeError;
use crate::record::{CertificateRecord, Record};
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use synod_core::pipeline::{AgentRecord, BuildOutcome, Dissent, Question, SelfConsistency};
use synod_core::{AgentId, Call, ContractExample, Expectation, Outcome, Program, Prompt, Spec};
use synod_store::{DecisionLog, PinnedHead, Signed, write_atomic};

/// The decision log file.
pub const LOG_FILE: &str = "log.redb";
/// The signed certificate.
pub const CERT_FILE: &str = "certificate.json";
/// The report for people.
pub const REPORT_FILE: &str = "REPORT.md";
/// The directory holding the program's modules.
pub const PROGRAM_DIR: &str = "program";
/// The generated contract tests, inside [`PROGRAM_DIR`]: the module
/// [`synod_core::reserved::TESTS_MODULE`], which no component may be named.
pub const TESTS_FILE: &str = "test_contract.py";
/// The pending question of a build that needs a clarification.
pub const QUESTION_FILE: &str = "question.json";
/// Certificate format version.
pub const CERT_FORMAT: u32 = 1;

fn write(path: PathBuf, bytes: &[u8]) -> Result<(), RuntimeError> {
    write_atomic(&path, bytes).map_err(|source| RuntimeError::Io {
        what: "cannot write",
        path,
        source,
    })
}

/// Writes the pending question.
pub fn write_question(out: &Path, q: &Question) -> Result<(), RuntimeError> {
    let text =
        serde_json::to_string_pretty(q).map_err(|e| RuntimeError::Internal(e.to_string()))?;
    write(out.join(QUESTION_FILE), text.as_bytes())
}

fn agent_name(agents: &[(String, String)], id: AgentId) -> String {
    agents
        .get(id.0 as usize)
        .map(|a| a.0.clone())
        .unwrap_or_else(|| id.to_string())
}

/// What `certificate.json` signs: written by [`write_build`] and read back by `verify`
/// through this one type (ADR 0005).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CertificateBody {
    /// [`CERT_FORMAT`].
    pub format: u32,
    /// The synod that built it.
    pub synod_version: String,
    /// P with its clarifications.
    pub prompt: Prompt,
    /// The agents, in order.
    pub agents: Vec<CertifiedAgent>,
    /// The decided reading.
    pub decided: DecidedReading,
    /// The decided spec and contract.
    pub spec: Spec,
    /// The probes of the final comparison.
    pub probes: Vec<Call>,
    /// The decided reference's behaviour on them.
    pub reference_behaviour: Vec<Outcome>,
    /// The components as delivered.
    pub components: Vec<CertifiedComponent>,
    /// Digest of the assembled program.
    pub program_digest: String,
    /// Fingerprint of the key that signed this.
    pub key_fingerprint: String,
    /// The fault budget m.
    pub fault_budget: usize,
    /// Digest of the role prompts.
    pub role_prompts_digest: String,
    /// The sandbox's isolation during the build.
    pub sandbox: serde_json::Value,
    /// The last log entry before the certificate's own.
    pub log_head: PinnedHead,
}

/// An agent, as the certificate names it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertifiedAgent {
    /// Its name.
    pub name: String,
    /// Its backend, described.
    pub backend: String,
}

/// The decided reading, as the certificate states it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DecidedReading {
    /// The agents of the decided class.
    pub class: Vec<String>,
    /// Whose reference is the decided one.
    pub representative: String,
    /// Digest of the decided reference.
    pub reference_digest: String,
    /// The outvoted classes.
    pub dissent: Vec<Dissent>,
}

/// A delivered component.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertifiedComponent {
    /// Its module name.
    pub name: String,
    /// Its file in the build directory.
    pub file: String,
    /// Digest of its source.
    pub digest: String,
    /// Its builder.
    pub agent: String,
    /// Contract examples met.
    pub contract_met: usize,
    /// Probes matched.
    pub probes_matched: usize,
    /// Candidates rejected before it.
    pub rejected: Vec<Rejection>,
}

/// A rejected candidate.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rejection {
    /// Its builder.
    pub agent: String,
    /// Why.
    pub reason: String,
}

impl CertificateBody {
    /// The certificate of a build.
    pub fn new(
        outcome: &BuildOutcome,
        agents: &[(String, String)],
        fingerprint: &str,
        sandbox: &serde_json::Value,
        log_head: PinnedHead,
    ) -> CertificateBody {
        let components = outcome
            .components
            .iter()
            .map(|c| CertifiedComponent {
                name: c.name.clone(),
                file: format!("{PROGRAM_DIR}/{}.py", c.name),
                digest: c.digest.clone(),
                agent: agent_name(agents, c.agent),
                contract_met: c.contract_met,
                probes_matched: c.probes_matched,
                rejected: c
                    .rejected
                    .iter()
                    .map(|(a, r)| Rejection {
                        agent: agent_name(agents, *a),
                        reason: r.clone(),
                    })
                    .collect(),
            })
            .collect();
        CertificateBody {
            format: CERT_FORMAT,
            synod_version: env!("CARGO_PKG_VERSION").to_string(),
            prompt: outcome.prompt.clone(),
            agents: agents
                .iter()
                .map(|(n, d)| CertifiedAgent {
                    name: n.clone(),
                    backend: d.clone(),
                })
                .collect(),
            decided: DecidedReading {
                class: outcome
                    .class
                    .iter()
                    .map(|a| agent_name(agents, *a))
                    .collect(),
                representative: agent_name(agents, outcome.representative),
                reference_digest: Program::single(
                    synod_core::pipeline::REFERENCE_MODULE,
                    &outcome.reference,
                )
                .digest(),
                dissent: outcome.dissent.clone(),
            },
            spec: outcome.spec.clone(),
            probes: outcome.probes.clone(),
            reference_behaviour: outcome.reference_behaviour.clone(),
            components,
            program_digest: outcome.program.digest(),
            key_fingerprint: fingerprint.to_string(),
            fault_budget: outcome.fault_budget,
            role_prompts_digest: synod_agents::role_prompts_digest(),
            sandbox: sandbox.clone(),
            log_head,
        }
    }

    /// Reads a certificate's body; the error names the field that does not fit.
    pub fn from_value(body: &serde_json::Value) -> Result<CertificateBody, String> {
        serde_json::from_value(body.clone())
            .map_err(|e| format!("the certificate body is missing or has a malformed field: {e}"))
    }
}

/// Writes a successful build: program, tests, certificate (and its log entry), report.
pub fn write_build(
    out: &Path,
    outcome: &BuildOutcome,
    agents: &[(String, String)],
    log: &mut DecisionLog,
    fingerprint: &str,
    sandbox: &serde_json::Value,
) -> Result<(), RuntimeError> {
    let dir = out.join(PROGRAM_DIR);
    std::fs::create_dir_all(&dir).map_err(|source| RuntimeError::Io {
        what: "cannot create",
        path: dir.clone(),
        source,
    })?;
    for (name, src) in &outcome.program.modules {
        // Refused when the reading was validated; a module here that the tests would
        // overwrite is a bug.
        if let Some(why) = synod_core::reserved::module_name_problem(name) {
            return Err(RuntimeError::Internal(format!(
                "a delivered module has a reserved name: {why}"
            )));
        }
        write(dir.join(format!("{name}.py")), src.as_bytes())?;
    }
    write(
        dir.join(TESTS_FILE),
        contract_tests(
            &outcome.spec.contract,
            &outcome.probes,
            &outcome.reference_behaviour,
            &outcome.spec.function_modules(),
        )
        .as_bytes(),
    )?;
    // The certificate pins the last decision before its own log entry. A resumed build that
    // was killed after logging the certificate finds that entry already there; ed25519 and the
    // body are deterministic, so it recomputes the same certificate.
    let entries = log.entries()?;
    let logged = entries
        .last()
        .filter(|e| Record::is_certificate(e))
        .cloned();
    let head = entries
        .iter()
        .rev()
        .find(|e| !Record::is_certificate(e))
        .map(|e| e.pin())
        .ok_or_else(|| RuntimeError::Internal("empty decision log at the end of a build".into()))?;
    let certificate = CertificateBody::new(outcome, agents, fingerprint, sandbox, head);
    let body =
        serde_json::to_value(&certificate).map_err(|e| RuntimeError::Internal(e.to_string()))?;
    let signed = Signed::sign(body, log.key());
    let digest = synod_store::digest(canonical(&signed.body).as_bytes());
    let (kind, entry) = Record::Certificate(CertificateRecord {
        certificate_digest: digest,
        fingerprint: fingerprint.to_string(),
    })
    .to_entry();
    match logged {
        Some(e) if e.body_json().ok().as_ref() == Some(&entry) => {}
        Some(e) => {
            return Err(RuntimeError::Resume(format!(
                "log entry {} records another certificate than this build produces",
                e.seq
            )));
        }
        None => {
            log.append(&kind, &entry)?;
        }
    }
    // Log first, then the file: a certificate file always has its log entry.
    let text =
        serde_json::to_string_pretty(&signed).map_err(|e| RuntimeError::Internal(e.to_string()))?;
    write(out.join(CERT_FILE), text.as_bytes())?;
    write(
        out.join(REPORT_FILE),
        report(outcome, agents, fingerprint, out, sandbox).as_bytes(),
    )?;
    Ok(())
}

/// The canonical text of a JSON value: keys sorted, as signatures use it.
pub fn canonical(v: &serde_json::Value) -> String {
    synod_store::canonical_json(v)
}

/// Writes the report of a build that ran and failed.
pub fn write_failure(
    out: &Path,
    prompt: &Prompt,
    stage: &str,
    reason: &str,
    records: &[AgentRecord],
    agents: &[(String, String)],
) -> Result<(), RuntimeError> {
    let mut r = String::new();
    let _ = writeln!(r, "# synod build report: not built\n");
    let _ = writeln!(r, "## Prompt\n\n{}\n", quote(&prompt.full_text()));
    let _ = writeln!(
        r,
        "## Outcome\n\nThe build stopped in stage **{stage}**: {reason}\n"
    );
    agents_table(&mut r, records, agents);
    let _ = writeln!(
        r,
        "The decision log (`{LOG_FILE}`) holds every decision and fault up to this point."
    );
    write(out.join(REPORT_FILE), r.as_bytes())
}

fn quote(s: &str) -> String {
    s.lines()
        .map(|l| format!("> {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn agents_table(r: &mut String, records: &[AgentRecord], agents: &[(String, String)]) {
    let _ = writeln!(r, "## Agents\n");
    let _ = writeln!(
        r,
        "| agent | backend | calls | tokens in | tokens out | suspected | faults | stated results its code met |"
    );
    let _ = writeln!(r, "|---|---|---|---|---|---|---|---|");
    for a in records {
        let backend = agents
            .get(a.id.0 as usize)
            .map(|x| x.1.as_str())
            .unwrap_or("");
        let faults = if a.faults.is_empty() {
            "none".to_string()
        } else {
            a.faults
                .iter()
                .map(|f| f.to_string().replace('|', "\\|"))
                .collect::<Vec<_>>()
                .join("<br>")
        };
        let stated = match a.self_consistency {
            SelfConsistency { stated: 0, .. } => "none stated".to_string(),
            SelfConsistency { stated, met } => format!("{met} of {stated}"),
        };
        let _ = writeln!(
            r,
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            a.name,
            backend,
            a.calls,
            a.usage.input_tokens,
            a.usage.output_tokens,
            if a.suspicions > 0 {
                format!(
                    "yes ({} missed deadline{})",
                    a.suspicions,
                    if a.suspicions == 1 { "" } else { "s" }
                )
            } else {
                "no".into()
            },
            faults,
            stated
        );
    }
    let calls: u32 = records.iter().map(|a| a.calls).sum();
    let tin: u64 = records.iter().map(|a| a.usage.input_tokens).sum();
    let tout: u64 = records.iter().map(|a| a.usage.output_tokens).sum();
    let _ = write!(
        r,
        "\nCost: {calls} agent calls, {tin} tokens in, {tout} tokens out"
    );
    if tin + tout == 0 {
        let _ = write!(
            r,
            " (these agents do not report tokens; scripted replies cost nothing)"
        );
    }
    let _ = writeln!(r, ".\n");
}

fn report(
    outcome: &BuildOutcome,
    agents: &[(String, String)],
    fingerprint: &str,
    out: &Path,
    sandbox: &serde_json::Value,
) -> String {
    let n = agents.len();
    let mut r = String::new();
    let _ = writeln!(r, "# synod build report: built\n");
    let _ = writeln!(r, "## Prompt\n\n{}\n", quote(&outcome.prompt.full_text()));
    let _ = writeln!(r, "## What was decided\n");
    let _ = writeln!(r, "{}\n", outcome.spec.summary);
    let class: Vec<String> = outcome
        .class
        .iter()
        .map(|a| agent_name(agents, *a))
        .collect();
    let m = outcome.fault_budget;
    let _ = writeln!(
        r,
        "Reading held by **{}** ({} of {n} agents; with fault budget m = {m} a decision needs n − m = {}), compared by behaviour on {} probes. The spec and reference of {} were taken.\n",
        class.join(", "),
        class.len(),
        n - m,
        outcome.probes.len(),
        agent_name(agents, outcome.representative)
    );
    if let Some(a) = &outcome.ahead_by {
        let _ = writeln!(
            r,
            "**Decided by the widened tally (PL-20), not by the fault budget alone:** no class reached n − m readings in one sample, so synod kept sampling; this reading holds {} of the {} readings counted (every sample of the round), from {} agents, at least {} more than any other, after {} interpret calls. This is a statistical decision: it assumes the agents' errors are independent enough that the right reading leads.\n",
            a.readings, a.of, a.agents, a.k, a.calls
        );
    }
    if outcome.dissent.is_empty() {
        let _ = writeln!(r, "No agent dissented.\n");
    } else {
        let _ = writeln!(r, "### Dissent\n");
        for d in &outcome.dissent {
            let who: Vec<String> = d.agents.iter().map(|a| agent_name(agents, *a)).collect();
            let _ = write!(r, "- {} read it differently", who.join(", "));
            if !d.summary.trim().is_empty() {
                let _ = write!(r, " (\"{}\")", d.summary);
            }
            if let Some((call, ours, theirs)) = &d.example {
                let _ = write!(
                    r,
                    ": on `{call}` it gives `{theirs}` where the decided reading gives `{ours}`"
                );
            }
            let _ = writeln!(
                r,
                "{}",
                if outcome.ahead_by.is_some() {
                    ". Outvoted by the widened tally (PL-20): the decided reading led it by the required readings."
                } else {
                    ". Outvoted: the class is within the fault budget, so it is judged faulty."
                }
            );
        }
        let _ = writeln!(r);
    }
    if let Some(o) = &outcome.outside_domain {
        let groups: Vec<String> = o
            .groups
            .iter()
            .map(|g| {
                g.iter()
                    .map(|a| agent_name(agents, *a))
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .collect();
        let _ = writeln!(
            r,
            "### Outside the domain\n\nThe decided class's programs behave the same on every input shaped like the examples (PL-19) and differ outside that domain, so this is not a vote. Groups: {} (the delivered reading's first). Where they differ:\n",
            groups
                .iter()
                .map(|g| format!("[{g}]"))
                .collect::<Vec<_>>()
                .join(" | ")
        );
        for d in &o.differing {
            let outs: Vec<String> = d.outcomes.iter().map(|x| format!("`{x}`")).collect();
            let _ = writeln!(r, "- `{}`: {}", d.call, outs.join(" | "));
        }
        let _ = writeln!(
            r,
            "\nIf one of these inputs matters, say what it should return in the prompt (an example such as `f(0) == 0`) and build again.\n"
        );
    }
    if !outcome.prompt.clarifications.is_empty() {
        let _ = writeln!(r, "### Clarifications\n");
        for (i, c) in outcome.prompt.clarifications.iter().enumerate() {
            let _ = writeln!(r, "{}. {}", i + 1, c.text);
        }
        let _ = writeln!(r);
    }
    let _ = writeln!(r, "## Components\n");
    let _ = writeln!(
        r,
        "| component | interface | built by | rejected candidates |"
    );
    let _ = writeln!(r, "|---|---|---|---|");
    for c in &outcome.components {
        let iface: Vec<String> = outcome
            .spec
            .components
            .iter()
            .find(|s| s.name == c.name)
            .map(|s| s.functions.iter().map(|f| format!("`{f}`")).collect())
            .unwrap_or_default();
        let rejected = if c.rejected.is_empty() {
            "none".to_string()
        } else {
            c.rejected
                .iter()
                .map(|(a, why)| format!("{}: {}", agent_name(agents, *a), why.replace('|', "\\|")))
                .collect::<Vec<_>>()
                .join("<br>")
        };
        let _ = writeln!(
            r,
            "| `{}` | {} | {} | {} |",
            c.name,
            iface.join(", "),
            agent_name(agents, c.agent),
            rejected
        );
    }
    let _ = writeln!(
        r,
        "\nEach component was checked alone (with the decided reference behind the others) and the assembled program again: it loads, matches the interface, meets all {} contract examples and agrees with the decided reference on all {} probes.\n",
        outcome.spec.contract.len(),
        outcome.probes.len()
    );
    agents_table(&mut r, &outcome.agents, agents);
    if !outcome.agreement.is_empty() {
        let _ = writeln!(r, "### Pairwise agreement\n");
        let _ = writeln!(
            r,
            "Share of the probes on which two agents' references behaved the same. Agents that agree on everything, including their mistakes, are not independent: mix models, temperatures and prompts.\n"
        );
        let _ = writeln!(r, "| agents | same outcome |");
        let _ = writeln!(r, "|---|---|");
        for p in &outcome.agreement {
            let pct = if p.probes == 0 {
                0.0
            } else {
                100.0 * p.same as f64 / p.probes as f64
            };
            let _ = writeln!(
                r,
                "| {} · {} | {pct:.1}% ({}/{}) |",
                agent_name(agents, p.a),
                agent_name(agents, p.b),
                p.same,
                p.probes
            );
        }
        let _ = writeln!(r);
    }
    let _ = writeln!(r, "## Sandbox\n");
    if sandbox.get("mode").and_then(|m| m.as_str()) == Some("isolated") {
        let _ = writeln!(
            r,
            "Candidate programs ran isolated: own network namespace, landlock, seccomp, resource limits (see `synod doctor`).\n"
        );
    } else {
        let _ = writeln!(
            r,
            "**UNSAFE: candidate programs ran without isolation (`--unsafe-no-sandbox`): resource limits only.**\n"
        );
    }
    let granted: Vec<&str> = sandbox
        .get("capabilities")
        .and_then(|c| c.as_array())
        .map(|a| a.iter().filter_map(|n| n.as_str()).collect())
        .unwrap_or_default();
    let _ = writeln!(
        r,
        "Capabilities: pure computation{}. Every candidate was judged by the static allow-list before it ran and by the audit hook while it ran; an operation outside this set is its author's fault (`docs/SECURITY.md`).\n",
        if granted.is_empty() {
            String::new()
        } else {
            format!(" + {}", granted.join(", "))
        }
    );
    let _ = writeln!(r, "## Files\n");
    let _ = writeln!(
        r,
        "- `{PROGRAM_DIR}/`: the program, and `{TESTS_FILE}` (run `python3 -m unittest` in that directory)"
    );
    let _ = writeln!(
        r,
        "- `{CERT_FILE}`: the signed certificate; `{LOG_FILE}`: the signed, hash-chained decision log"
    );
    let _ = writeln!(
        r,
        "\nBuild key fingerprint: `{fingerprint}`. Re-check everything offline with:\n"
    );
    let _ = writeln!(r, "    synod verify {} --key {fingerprint}", out.display());
    r
}

/// A Python unittest file for the contract and the probes (as regression tests).
pub fn contract_tests(
    contract: &[ContractExample],
    probes: &[Call],
    behaviour: &[Outcome],
    function_modules: &std::collections::BTreeMap<String, String>,
) -> String {
    let mut t = String::new();
    t.push_str(TEST_PRELUDE);
    t.push_str(synod_exec::canonical_source());
    t.push_str(TEST_HELPERS);
    let mut imports: Vec<String> = function_modules
        .iter()
        .map(|(f, m)| format!("from {m} import {f}"))
        .collect();
    imports.sort();
    for i in imports {
        let _ = writeln!(t, "{i}");
    }
    t.push_str("\n\nCONTRACT = [\n");
    for c in contract {
        let (kind, val) = match &c.expect {
            Expectation::Returns(v) => ("returns", v.python()),
            Expectation::Raises(e) => ("raises", synod_core::value::python_str(e)),
            Expectation::Same(o) => outcome_pair(o),
        };
        let _ = writeln!(
            t,
            "    ({}, {}, {:?}, {}),",
            c.call.function,
            args_tuple(&c.call),
            kind,
            val
        );
    }
    t.push_str("]\n\nPROBES = [\n");
    for (c, o) in probes.iter().zip(behaviour) {
        let (kind, val) = outcome_pair(o);
        let _ = writeln!(
            t,
            "    ({}, {}, {:?}, {}),",
            c.function,
            args_tuple(c),
            kind,
            val
        );
    }
    t.push_str("]\n");
    t.push_str(TEST_BODY);
    t
}

fn outcome_pair(o: &Outcome) -> (&'static str, String) {
    match o {
        Outcome::Value(v) => ("repr", synod_core::value::python_str(v)),
        Outcome::Error(e) => ("raises", synod_core::value::python_str(e)),
        Outcome::Timeout => ("timeout", "None".into()),
    }
}

fn args_tuple(c: &Call) -> String {
    let mut s = String::from("(");
    for a in &c.args {
        s.push_str(&a.python());
        s.push_str(", ");
    }
    s.push(')');
    s
}

const TEST_PRELUDE: &str = r#""""Contract and probe tests written by synod for the decided spec.

Run with `python3 -m unittest` in this directory. Contract examples come from the agreed spec;
probes are regression tests: the outcomes of the decided reference program.
"""
import copy
import math
import re
import sys
import unittest

sys.setrecursionlimit(10000)


"#;

/// After the canonical text (`synod_exec::canonical_source`), what the tests compare with.
const TEST_HELPERS: &str = r#"def _norm(v):
    if isinstance(v, (list, tuple)):
        return [_norm(x) for x in v]
    if isinstance(v, dict):
        return {k: _norm(x) for k, x in v.items()}
    return v


def _equal(a, b):
    a, b = _norm(a), _norm(b)
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b or math.isclose(a, b, rel_tol=1e-9, abs_tol=0.0)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    return a == b


def _raised_name(exc, name):
    return any(c.__name__ == name for c in type(exc).__mro__)

"#;

const TEST_BODY: &str = r#"

def _limit(text):
    return text if len(text) <= 2000 else None


class ContractTest(unittest.TestCase):
    def check(self, fn, args, kind, expected):
        try:
            result = fn(*copy.deepcopy(args))
        except Exception as e:  # noqa: BLE001
            if kind == "raises":
                self.assertTrue(_raised_name(e, expected), f"{fn.__name__}{args!r} raised {type(e).__name__}, expected {expected}")
                return
            raise
        if kind == "returns":
            self.assertTrue(_equal(result, expected), f"{fn.__name__}{args!r} returned {result!r}, expected {expected!r}")
        elif kind == "repr":
            got = _canonical(result, 0)
            if _limit(got) is not None and _limit(expected) is not None:
                self.assertEqual(got, expected, f"{fn.__name__}{args!r}")
        elif kind == "raises":
            self.fail(f"{fn.__name__}{args!r} returned {result!r}, expected it to raise {expected}")

    def test_contract(self):
        for fn, args, kind, expected in CONTRACT:
            with self.subTest(call=f"{fn.__name__}{args!r}"):
                self.check(fn, args, kind, expected)

    def test_probes(self):
        for fn, args, kind, expected in PROBES:
            if kind == "timeout":
                continue
            with self.subTest(call=f"{fn.__name__}{args!r}"):
                self.check(fn, args, kind, expected)


if __name__ == "__main__":
    unittest.main()
"#;

#[cfg(test)]
mod tests {
    #[test]
    fn the_tests_file_is_the_reserved_tests_module() {
        assert_eq!(
            super::TESTS_FILE,
            format!("{}.py", synod_core::reserved::TESTS_MODULE)
        );
    }
}
