//! `synod verify`: re-checks a build directory offline, without calling any model.
//!
//! Each check is independent and named, so a tampered directory shows exactly what no longer
//! holds: the certificate's signature, the key (against `--key`), the log's chain and
//! signatures, the log's agreement with the certificate, the program files' digests, and the
//! refinement evidence, re-run in the sandbox.

use crate::output::{CERT_FILE, LOG_FILE, PROGRAM_DIR, canonical};
use serde::Serialize;
use std::path::Path;
use synod_core::pipeline::{program_check, refinement_problem};
use synod_core::{Call, Outcome, Program, Spec};
use synod_exec::Sandbox;
use synod_store::{Entry, PinnedHead, Signed, verify_log};

/// One named check and its result.
#[derive(Debug, Clone, Serialize)]
pub struct VerifyCheck {
    /// What was checked.
    pub name: String,
    /// `None` if it holds, else what does not.
    pub problem: Option<String>,
}

/// The result of verifying a build directory.
#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    /// The checks, in order.
    pub checks: Vec<VerifyCheck>,
    /// The certificate's key fingerprint, when it could be read.
    pub fingerprint: Option<String>,
}

impl VerifyReport {
    /// Does everything hold?
    pub fn ok(&self) -> bool {
        !self.checks.is_empty() && self.checks.iter().all(|c| c.problem.is_none())
    }

    fn push(&mut self, name: &str, problem: Option<String>) {
        self.checks.push(VerifyCheck {
            name: name.into(),
            problem,
        });
    }
}

fn field<T: serde::de::DeserializeOwned>(body: &serde_json::Value, key: &str) -> Result<T, String> {
    serde_json::from_value(body.get(key).cloned().unwrap_or(serde_json::Value::Null))
        .map_err(|e| format!("certificate field `{key}` is missing or malformed: {e}"))
}

/// Verifies the build in `dir`. `expected_key` is a fingerprint the user trusts (printed at the
/// end of the build); without it the certificate's own key is used.
pub fn verify(dir: &Path, expected_key: Option<&str>, sandbox: &Sandbox) -> VerifyReport {
    let mut report = VerifyReport {
        checks: Vec::new(),
        fingerprint: None,
    };
    // 1. The certificate and its signature.
    let cert_path = dir.join(CERT_FILE);
    let signed: Signed = match std::fs::read_to_string(&cert_path)
        .map_err(|e| format!("cannot read {}: {e}", cert_path.display()))
        .and_then(|t| {
            serde_json::from_str(&t)
                .map_err(|e| format!("{} is not a certificate: {e}", cert_path.display()))
        }) {
        Ok(s) => s,
        Err(e) => {
            report.push("certificate signature", Some(e));
            return report;
        }
    };
    let fingerprint = signed.public_key.fingerprint();
    report.fingerprint = Some(fingerprint.clone());
    report.push(
        "certificate signature",
        signed.verify().err().map(|e| e.to_string()),
    );
    // 2. The key.
    if let Some(k) = expected_key {
        let k = k.trim();
        let matches = k == fingerprint || format!("blake3:{k}") == fingerprint;
        report.push(
            "signing key",
            (!matches).then(|| {
                format!("the certificate is signed by key {fingerprint}, not by the expected {k}")
            }),
        );
    }
    let body = &signed.body;
    // 3. The log: chain, signatures, pinned head, the certificate entry.
    let entries = match verify_log(&dir.join(LOG_FILE), &signed.public_key) {
        Ok(e) => {
            report.push("decision log chain and signatures", None);
            Some(e)
        }
        Err(e) => {
            report.push("decision log chain and signatures", Some(e.to_string()));
            None
        }
    };
    if let Some(entries) = &entries {
        report.push(
            "decision log matches the certificate",
            log_matches(body, entries).err(),
        );
    }
    // 4. The program files.
    let spec: Result<Spec, String> = field(body, "spec");
    let program = match &spec {
        Ok(spec) => read_program(dir, spec),
        Err(e) => Err(e.clone()),
    };
    match (
        &program,
        field::<Vec<serde_json::Value>>(body, "components"),
    ) {
        (Ok(p), Ok(comps)) => {
            let mut problem = None;
            for c in &comps {
                let name = c.get("name").and_then(|v| v.as_str()).unwrap_or("");
                let want = c.get("digest").and_then(|v| v.as_str()).unwrap_or("");
                let got = p
                    .modules
                    .get(name)
                    .map(|src| Program::single(name, src).digest());
                if got.as_deref() != Some(want) {
                    problem = Some(format!(
                        "{PROGRAM_DIR}/{name}.py does not match the digest in the certificate (changed after the build)"
                    ));
                    break;
                }
            }
            if problem.is_none() {
                let want: Result<String, String> = field(body, "program_digest");
                if want.as_deref() != Ok(p.digest().as_str()) {
                    problem = Some("the program's digest differs from the certificate's".into());
                }
            }
            report.push("program files match the certificate", problem);
        }
        (Err(e), _) => report.push("program files match the certificate", Some(e.clone())),
        (_, Err(e)) => report.push("program files match the certificate", Some(e)),
    }
    // 5. Refinement evidence, re-run.
    let probes: Result<Vec<Call>, String> = field(body, "probes");
    let behaviour: Result<Vec<Outcome>, String> = field(body, "reference_behaviour");
    match (spec, program, probes, behaviour) {
        (Ok(spec), Ok(program), Ok(probes), Ok(behaviour)) => {
            let request = program_check(&spec, &program, &probes);
            let problem = match sandbox.run(&request) {
                Ok(r) => refinement_problem(&r, &spec.contract, &probes, &behaviour, "the program"),
                Err(e) => Some(format!("the sandbox could not run the program: {e}")),
            };
            report.push(
                &format!(
                    "program meets the contract ({} examples) and matches the decided reference ({} probes), re-run in the sandbox",
                    spec.contract.len(),
                    probes.len()
                ),
                problem,
            );
        }
        (a, b, c, d) => {
            let e = [a.err(), b.err(), c.err(), d.err()]
                .into_iter()
                .flatten()
                .next();
            report.push("refinement evidence re-run", e);
        }
    }
    report
}

fn read_program(dir: &Path, spec: &Spec) -> Result<Program, String> {
    let mut p = Program::default();
    for c in &spec.components {
        if !synod_core::is_identifier(&c.name) {
            return Err(format!(
                "component name {:?} in the certificate is not a module name",
                c.name
            ));
        }
        let path = dir.join(PROGRAM_DIR).join(format!("{}.py", c.name));
        let src = std::fs::read_to_string(&path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        p.modules.insert(c.name.clone(), src);
    }
    Ok(p)
}

fn log_matches(body: &serde_json::Value, entries: &[Entry]) -> Result<(), String> {
    let head: PinnedHead = field(body, "log_head")?;
    let upto = (head.seq as usize).min(entries.len().saturating_sub(1));
    head.check(&entries[..=upto]).map_err(|e| e.to_string())?;
    let last = entries
        .get(head.seq as usize + 1)
        .ok_or("the log has no certificate entry after the pinned head (entries were removed)")?;
    if entries.len() != head.seq as usize + 2 {
        return Err(format!(
            "the log has {} entries after the certificate entry",
            entries.len() - head.seq as usize - 2
        ));
    }
    let last_body = last.body_json().map_err(|e| e.to_string())?;
    if last.kind != "certificate" {
        return Err(format!(
            "the last log entry is {:?}, not the certificate",
            last.kind
        ));
    }
    let want = synod_store::digest(canonical(body).as_bytes());
    if last_body.get("certificate_digest").and_then(|v| v.as_str()) != Some(want.as_str()) {
        return Err("the log's certificate entry records a different certificate".into());
    }
    // The decisions the certificate states are the ones the log records.
    let find = |kind: &str| -> Vec<serde_json::Value> {
        entries
            .iter()
            .filter(|e| e.kind == kind)
            .filter_map(|e| e.body_json().ok())
            .collect()
    };
    let integration = find("integration-passed");
    let program_digest: String = field(body, "program_digest")?;
    if integration
        .last()
        .and_then(|b| b.get("program_digest"))
        .and_then(|v| v.as_str())
        != Some(program_digest.as_str())
    {
        return Err("the log's integration entry records a different program".into());
    }
    let accepted = find("component-accepted");
    let comps: Vec<serde_json::Value> = field(body, "components")?;
    for c in &comps {
        let name = c.get("name");
        let digest = c.get("digest");
        if !accepted
            .iter()
            .any(|a| a.get("component") == name && a.get("digest") == digest)
        {
            return Err(format!(
                "the log has no acceptance of component {} with the certificate's digest",
                name.and_then(|v| v.as_str()).unwrap_or("?")
            ));
        }
    }
    if find("interpretation-decided").is_empty() {
        return Err("the log records no decided interpretation".into());
    }
    Ok(())
}
