//! `synod verify`: re-checks a build directory offline, without calling any model.
//!
//! Each check is independent and named, so a tampered directory shows exactly what no longer
//! holds: the certificate's signature, the key (against `--key`), the log's chain and
//! signatures, the log's agreement with the certificate, the program files' digests, and the
//! refinement evidence, re-run in the sandbox.

use crate::output::{CERT_FILE, CertificateBody, LOG_FILE, PROGRAM_DIR, canonical};
use crate::record::Record;
use serde::Serialize;
use std::path::Path;
use synod_core::pipeline::{Decision, LOG_FORMAT, program_check, refinement_problem};
use synod_core::{Program, Spec};
use synod_exec::Sandbox;
use synod_store::{Entry, Signed, verify_log};

/// The largest certificate read: its body is one log entry, pretty-printed and signed.
const CERT_FILE_BYTES_MAX: u64 = 4 * synod_store::ENTRY_BODY_BYTES_MAX as u64;

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

/// Verifies the build in `dir`. `expected_key` is a fingerprint the user trusts (printed at the
/// end of the build); without it the certificate's own key is used.
pub fn verify(dir: &Path, expected_key: Option<&str>, sandbox: &Sandbox) -> VerifyReport {
    let mut report = VerifyReport {
        checks: Vec::new(),
        fingerprint: None,
    };
    // 1. The certificate and its signature.
    let cert_path = dir.join(CERT_FILE);
    let signed: Signed = match synod_store::read_capped(&cert_path, CERT_FILE_BYTES_MAX)
        .map_err(|e| format!("cannot read {}: {e}", cert_path.display()))
        .and_then(|t| {
            serde_json::from_slice(&t)
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
    let cert = CertificateBody::from_value(&signed.body);
    // 3. The log: chain, signatures, pinned head, the certificate entry, the decisions.
    match verify_log(&dir.join(LOG_FILE), &signed.public_key) {
        Ok(entries) => {
            report.push("decision log chain and signatures", None);
            let matches = cert
                .as_ref()
                .map_err(Clone::clone)
                .and_then(|c| log_matches(&signed.body, c, &entries));
            report.push("decision log matches the certificate", matches.err());
        }
        Err(e) => report.push("decision log chain and signatures", Some(e.to_string())),
    }
    let cert = match cert {
        Ok(c) => c,
        Err(e) => {
            report.push("program files match the certificate", Some(e.clone()));
            report.push("refinement evidence re-run", Some(e));
            return report;
        }
    };
    // 4. The program files.
    let program = read_program(dir, &cert.spec);
    let files = program
        .as_ref()
        .map_err(Clone::clone)
        .and_then(|p| program_matches(p, &cert));
    report.push("program files match the certificate", files.err());
    // 5. Refinement evidence, re-run.
    match program {
        Ok(program) => {
            let request = program_check(&cert.spec, &program, &cert.probes);
            // Re-run with the capabilities the build granted, as the certificate records them.
            let sandbox =
                sandbox
                    .clone()
                    .with_audit(synod_exec::Audit::granting(certified_capabilities(
                        &cert.sandbox,
                    )));
            let problem = match sandbox.run(&request) {
                Ok(r) => refinement_problem(
                    &r,
                    &cert.spec.contract,
                    &cert.probes,
                    &cert.reference_behaviour,
                    "the program",
                )
                .map(|p| p.detail),
                Err(e) => Some(format!("the sandbox could not run the program: {e}")),
            };
            report.push(
                &format!(
                    "program meets the contract ({} examples) and matches the decided reference ({} probes), re-run in the sandbox",
                    cert.spec.contract.len(),
                    cert.probes.len()
                ),
                problem,
            );
        }
        Err(e) => report.push("refinement evidence re-run", Some(e)),
    }
    report
}

/// Each delivered file has the digest the certificate states, and so has the whole program.
fn program_matches(p: &Program, cert: &CertificateBody) -> Result<(), String> {
    for c in &cert.components {
        let got = p
            .modules
            .get(&c.name)
            .map(|src| Program::single(&c.name, src).digest());
        if got.as_deref() != Some(c.digest.as_str()) {
            return Err(format!(
                "{PROGRAM_DIR}/{}.py does not match the digest in the certificate (changed after the build)",
                c.name
            ));
        }
    }
    if cert.program_digest != p.digest() {
        return Err("the program's digest differs from the certificate's".into());
    }
    Ok(())
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
        // A module is no longer than the reply that brought it.
        let cap = synod_agents::reply::REPLY_BYTES_MAX as u64;
        let src = synod_store::read_capped(&path, cap)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))
            .and_then(|b| {
                String::from_utf8(b).map_err(|_| format!("{} is not UTF-8 text", path.display()))
            })?;
        p.modules.insert(c.name.clone(), src);
    }
    Ok(p)
}

/// The log ends at the head the certificate pins, then the certificate's own entry; and the
/// decisions the certificate states are the ones the log records.
fn log_matches(
    body: &serde_json::Value,
    cert: &CertificateBody,
    entries: &[Entry],
) -> Result<(), String> {
    let head = &cert.log_head;
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
    let Ok(Record::Certificate(logged)) = Record::parse(last) else {
        return Err(format!(
            "the last log entry is {:?}, not the certificate",
            last.kind
        ));
    };
    let want = synod_store::digest(canonical(body).as_bytes());
    if logged.certificate_digest != want {
        return Err("the log's certificate entry records a different certificate".into());
    }
    let decisions = decisions(entries)?;
    let integration = decisions.iter().rev().find_map(|d| match d {
        Decision::IntegrationPassed { program_digest, .. } => Some(program_digest),
        _ => None,
    });
    if integration != Some(&cert.program_digest) {
        return Err("the log's integration entry records a different program".into());
    }
    for c in &cert.components {
        let accepted = decisions.iter().any(|d| {
            matches!(d, Decision::ComponentAccepted { component, digest, .. }
                if *component == c.name && *digest == c.digest)
        });
        if !accepted {
            return Err(format!(
                "the log has no acceptance of component {} with the certificate's digest",
                c.name
            ));
        }
    }
    if !decisions
        .iter()
        .any(|d| matches!(d, Decision::InterpretationDecided { .. }))
    {
        return Err("the log records no decided interpretation".into());
    }
    Ok(())
}

/// The log's decisions. A log of this synod's format must parse whole; one of format 1 (before
/// typed decisions, ADR 0005) is read for the decisions whose shape has not changed.
fn decisions(entries: &[Entry]) -> Result<Vec<Decision>, String> {
    let strict = crate::record::log_format(entries).is_some_and(|f| f >= LOG_FORMAT);
    let mut decisions = Vec::new();
    for e in entries {
        match Record::parse(e) {
            Ok(Record::Decision(d)) => decisions.push(*d),
            Ok(_) => {}
            Err(why) if strict => return Err(why),
            Err(_) => {}
        }
    }
    Ok(decisions)
}

/// The capabilities a certificate's sandbox record grants (`"capabilities": ["files"]`);
/// none when it names none (pure computation, and every certificate from before issue 11).
pub fn certified_capabilities(sandbox: &serde_json::Value) -> Vec<synod_core::Capability> {
    sandbox
        .get("capabilities")
        .and_then(|c| c.as_array())
        .map(|names| {
            names
                .iter()
                .filter_map(|n| n.as_str().and_then(synod_core::Capability::parse))
                .collect()
        })
        .unwrap_or_default()
}
