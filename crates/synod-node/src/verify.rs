//! `synod verify DIR --peers FILE`: a peer's certificate checked offline with the peers'
//! public keys alone (NODE-9). Every check is re-done, none is taken from the certificate:
//! the peer's signature over the certificate, the chain id from the peer list and the prompt,
//! per height the digest of the content and a quorum of valid precommit signatures for it,
//! every offer's signature, the reading's tally re-run in the sandbox, each component's
//! refinement, and the program files on disk.

use crate::config::{PeersFile, bound_refusal};
use crate::content::{
    BatchVerdict, Checker, Content, Decided, component_problem, evaluate, hex, program_problem,
};
use crate::node::{CERTIFICATE_FORMAT, DecidedHeight, chain_id, quorum_round};
use crate::wire::WireMessage;
use std::path::Path;
use synod_core::Program;
use synod_core::facts::prompt_facts;
use synod_core::protocols::bft::SignedMessage;
use synod_store::{PublicKey, Signed};

/// Largest certificate read.
const CERTIFICATE_BYTES_MAX: u64 = 64 * 1024 * 1024;

/// What a verified node directory holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedNode {
    /// Whose directory.
    pub peer: u16,
    /// built, ambiguous, failed or stopped.
    pub outcome: String,
    /// The decided digests, by height (hex).
    pub digests: Vec<String>,
    /// Test switches the run was made with (a certificate of a test run says so).
    pub test_switches: Vec<String>,
}

/// Whether `dir` holds a node certificate (rather than a build's).
pub fn is_node_dir(dir: &Path) -> bool {
    synod_store::read_capped(&dir.join("certificate.json"), CERTIFICATE_BYTES_MAX)
        .ok()
        .and_then(|b| serde_json::from_slice::<Signed>(&b).ok())
        .is_some_and(|s| s.body.get("format").and_then(|f| f.as_str()) == Some(CERTIFICATE_FORMAT))
}

/// Verifies a peer's output directory against the peer list; `checker` re-runs the checks.
pub fn verify_node_dir(
    dir: &Path,
    peers: &PeersFile,
    checker: &mut Checker,
) -> Result<VerifiedNode, String> {
    if let Some(why) = bound_refusal(peers.n(), peers.f) {
        return Err(format!(
            "this peer list cannot make a quorum certificate unique, so no certificate under it proves agreement: {why}"
        ));
    }
    let path = dir.join("certificate.json");
    let bytes = synod_store::read_capped(&path, CERTIFICATE_BYTES_MAX)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let signed: Signed = serde_json::from_slice(&bytes)
        .map_err(|e| format!("{} is not a certificate: {e}", path.display()))?;
    let body = &signed.body;
    if body.get("format").and_then(|f| f.as_str()) != Some(CERTIFICATE_FORMAT) {
        return Err(format!(
            "{} is not a node certificate ({CERTIFICATE_FORMAT})",
            path.display()
        ));
    }
    let field = |k: &str| {
        body.get(k)
            .ok_or_else(|| format!("the certificate has no {k}"))
    };
    let peer = field("peer")?
        .as_u64()
        .filter(|p| (*p as usize) < peers.n())
        .ok_or("the certificate names no peer of the list")? as u16;
    signed
        .verify_with(&PublicKey(
            peers.peers[usize::from(peer)].public_key.clone(),
        ))
        .map_err(|e| format!("the certificate is not signed by peer {peer}'s key: {e}"))?;
    let prompt = field("prompt")?
        .as_str()
        .ok_or("the prompt is not text")?
        .to_string();
    let chain = chain_id(peers, &prompt);
    if field("chain")?.as_str() != Some(hex(&synod_core::protocols::Value(chain.to_vec())).as_str())
    {
        return Err("the certificate's chain id is not this peer list's and prompt's: it belongs to another instance".into());
    }
    if field("n")?.as_u64() != Some(peers.n() as u64)
        || field("f")?.as_u64() != Some(peers.f as u64)
    {
        return Err("the certificate's n and f are not the peer list's".into());
    }
    let heights: Vec<DecidedHeight> = serde_json::from_value(field("heights")?.clone())
        .map_err(|e| format!("the heights do not parse: {e}"))?;
    let outcome = field("outcome")?.as_str().unwrap_or("").to_string();
    let keys = peers.keys();
    let keys_hex: Vec<String> = peers.peers.iter().map(|p| p.public_key.clone()).collect();
    let facts = prompt_facts(&prompt);
    let quorum = peers.n() - peers.f;
    let mut decided: Option<Decided> = None;
    let mut components: Vec<(String, String)> = Vec::new();
    for (i, d) in heights.iter().enumerate() {
        let at = format!("height {}", d.height);
        if d.height != i as u64 {
            return Err(format!(
                "{at} is listed {}: heights must run 0, 1, 2, …",
                i + 1
            ));
        }
        let value = d.content.digest();
        if hex(&value) != d.value {
            return Err(format!(
                "{at}: the content is not what the decided digest names"
            ));
        }
        let proof: Vec<SignedMessage> = d.proof.iter().filter_map(WireMessage::to_signed).collect();
        match quorum_round(&proof, &value, d.height, &chain, &keys, quorum) {
            Some(r) if r == d.round => {}
            _ => {
                return Err(format!(
                    "{at}: no {quorum} valid precommit signatures of distinct peers for its digest in round {}",
                    d.round
                ));
            }
        }
        match &d.content {
            Content::Reading(r) => {
                if decided.is_some() {
                    return Err(format!(
                        "{at} decides a reading after the reading was decided"
                    ));
                }
                if let Some(o) = r
                    .batch
                    .iter()
                    .find(|o| o.height != d.height || !o.verify(&chain, &keys_hex))
                {
                    return Err(format!(
                        "{at}: the offer of peer {} is not signed by it",
                        o.from
                    ));
                }
                let e = evaluate(r.batch.clone(), peers.f, &facts, &chain, d.height, checker)?;
                if e.value != *r {
                    return Err(format!(
                        "{at}: re-run here, the batch tallies to {:?}, not to the decided {:?}",
                        e.value.verdict, r.verdict
                    ));
                }
                if matches!(r.verdict, BatchVerdict::Decide { .. }) {
                    decided = e.decided;
                }
            }
            Content::Component {
                index,
                name,
                source,
            } => {
                let Some(dr) = decided.as_ref() else {
                    return Err(format!("{at} decides a component before any reading"));
                };
                if *index as usize != components.len() {
                    return Err(format!("{at} decides component {index} out of order"));
                }
                if let Some(p) = component_problem(dr, *index as usize, name, source, checker)? {
                    return Err(format!(
                        "{at}: re-checked here, the component does not refine the decided reading: {p}"
                    ));
                }
                components.push((name.clone(), source.clone()));
            }
        }
    }
    if outcome == "built" {
        let d = decided
            .as_ref()
            .ok_or("a built certificate without a decided reading")?;
        if components.len() != d.spec.components.len() {
            return Err("a built certificate without every component decided".into());
        }
        let mut program = Program::default();
        for (name, source) in &components {
            let file = dir.join("program").join(format!("{name}.py"));
            let on_disk = synod_store::read_capped(&file, 1 << 20)
                .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
            if on_disk != source.as_bytes() {
                return Err(format!("{} is not the decided component", file.display()));
            }
            program.modules.insert(name.clone(), source.clone());
        }
        if field("program_digest")?.as_str() != Some(program.digest().as_str()) {
            return Err("the program digest is not the decided components'".into());
        }
        if let Some(p) = program_problem(d, &program, checker)? {
            return Err(format!(
                "re-checked here, the program does not refine the decided reading: {p}"
            ));
        }
    }
    let test_switches = body
        .get("test_switches")
        .and_then(|v| serde_json::from_value(v.clone()).ok())
        .unwrap_or_default();
    Ok(VerifiedNode {
        peer,
        outcome,
        digests: heights.iter().map(|d| d.value.clone()).collect(),
        test_switches,
    })
}
