//! `synod node`, `synod node keygen` and `synod verify DIR --peers FILE` (issue 12): thin
//! wrappers over `synod_node` (the logic and its tests live there and in tests/node.rs).

use anyhow::{Context, Result, bail};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use synod_node::config::{NodeConfig, PeersFile};
use synod_node::net::NetControls;
use synod_node::{Byzantine, NodeOptions, NodeOutcome, TestSwitches};

const EXIT_OK: u8 = 0;
const EXIT_NEGATIVE: u8 = 1;
const EXIT_CLARIFY: u8 = 3;

/// Largest prompt file read.
const PROMPT_BYTES_MAX: u64 = 256 * 1024;

/// `synod node`: one peer of a decentralized build.
#[derive(clap::Args, Debug, Clone)]
#[command(args_conflicts_with_subcommands = true)]
pub struct NodeArgs {
    #[command(subcommand)]
    command: Option<NodeCommand>,
    /// This peer's settings (id, key, peers, agents; see examples/peers/).
    #[arg(long)]
    config: Option<PathBuf>,
    /// The prompt file (the same text at every peer: it is part of the chain id).
    #[arg(long)]
    prompt: Option<PathBuf>,
    /// This peer's output directory: program/, certificate.json, REPORT.md and its log
    /// (.synod/node.wal; start again with the same --out after a crash to resume).
    #[arg(long)]
    out: Option<PathBuf>,
    /// A finished peer keeps answering peers that are behind until every peer has said it
    /// finished, or for this many milliseconds after it finished and after the last peer it
    /// helped.
    #[arg(long, default_value_t = 2000, value_parser = crate::numbers::whole(0u64, 600_000u64))]
    linger_ms: u64,
    /// Print the result as one JSON object on stdout.
    #[arg(long)]
    json: bool,
    /// Test only: lower the n >= 3f + 1 guard (recorded in the certificate).
    #[arg(long, hide = true)]
    test_allow_small_n: bool,
    /// Test only: behave as a Byzantine peer: equivocate, forge, wrong or silent.
    #[arg(long, hide = true)]
    test_byzantine: Option<String>,
    /// Test only: hold the frames sent to PEER until MS ms after start, PEER=MS (repeatable).
    #[arg(long, hide = true)]
    test_delay: Vec<String>,
    /// Test only: seeded jitter of 0-20 ms per frame.
    #[arg(long, hide = true)]
    test_jitter_seed: Option<u64>,
    /// Test only: drop every frame sent or received from A to B ms after start, A..B.
    #[arg(long, hide = true)]
    test_partition: Option<String>,
    /// Test only: stop once this height is decided.
    #[arg(long, hide = true)]
    test_stop_after_height: Option<u64>,
}

#[derive(clap::Subcommand, Debug, Clone)]
enum NodeCommand {
    /// Make a peer key (ed25519, saved 0600) and print its public key for the peer list.
    Keygen {
        /// Where to write the key.
        #[arg(long)]
        out: PathBuf,
    },
}

fn test_switches(a: &NodeArgs) -> Result<TestSwitches> {
    let mut delays_ms = BTreeMap::new();
    for d in &a.test_delay {
        let (p, ms) = d
            .split_once('=')
            .and_then(|(p, ms)| Some((p.parse::<u16>().ok()?, ms.parse::<u64>().ok()?)))
            .with_context(|| format!("--test-delay {d:?}: use PEER=MS"))?;
        delays_ms.insert(p, ms.min(3_600_000));
    }
    let partition_ms = match &a.test_partition {
        None => None,
        Some(w) => Some(
            w.split_once("..")
                .and_then(|(x, y)| Some((x.parse::<u64>().ok()?, y.parse::<u64>().ok()?)))
                .filter(|(x, y)| x < y)
                .with_context(|| format!("--test-partition {w:?}: use FROM..TO in ms"))?,
        ),
    };
    let byzantine = match &a.test_byzantine {
        None => None,
        Some(m) => Some(Byzantine::parse(m).with_context(|| {
            format!("--test-byzantine {m:?}: use equivocate, forge, wrong or silent")
        })?),
    };
    Ok(TestSwitches {
        allow_small_n: a.test_allow_small_n,
        byzantine,
        net: NetControls {
            delays_ms,
            jitter_seed: a.test_jitter_seed,
            partition_ms,
        },
        stop_after_height: a.test_stop_after_height,
    })
}

/// Runs `synod node …`.
pub fn run_node(a: &NodeArgs) -> Result<u8> {
    if let Some(NodeCommand::Keygen { out }) = &a.command {
        return keygen(out);
    }
    let (Some(config), Some(prompt), Some(out)) = (&a.config, &a.prompt, &a.out) else {
        bail!(
            "synod node needs --config FILE, --prompt FILE and --out DIR (or: synod node keygen --out FILE)"
        );
    };
    let config = NodeConfig::load(config)?;
    let peers = PeersFile::load(&config.peers)?;
    let bytes = synod_store::read_capped(prompt, PROMPT_BYTES_MAX)
        .with_context(|| format!("cannot read the prompt {}", prompt.display()))?;
    let prompt = String::from_utf8(bytes).context("the prompt is not UTF-8 text")?;
    let test = test_switches(a)?;
    let json = a.json;
    let opts = NodeOptions {
        config,
        peers,
        prompt,
        out: out.clone(),
        test,
        linger_ms: a.linger_ms,
    };
    let outcome = synod_node::run_node(opts, Box::new(|line| eprintln!("{line}")))?;
    let (code, status, detail) = match &outcome {
        NodeOutcome::Built { digests } => (EXIT_OK, "built", digests.join(" ")),
        NodeOutcome::Stopped { digests } => (EXIT_OK, "stopped", digests.join(" ")),
        NodeOutcome::Ambiguous { digests } => (EXIT_CLARIFY, "ambiguous", digests.join(" ")),
        NodeOutcome::Failed { reason } => (EXIT_NEGATIVE, "failed", reason.clone()),
    };
    if json {
        println!(
            "{}",
            serde_json::json!({"status": status, "detail": detail, "out": out})
        );
    } else {
        println!("{status}: {detail}");
        if code == EXIT_OK {
            println!("certificate: {}", out.join("certificate.json").display());
        }
        if code == EXIT_CLARIFY {
            println!("question: {}", out.join("question.json").display());
        }
    }
    Ok(code)
}

fn keygen(out: &Path) -> Result<u8> {
    if out.exists() {
        bail!(
            "{} exists; a peer key is never overwritten (remove it first if you mean it)",
            out.display()
        );
    }
    let key = synod_store::BuildKey::generate()?;
    key.save(out)?;
    println!("public_key = \"{}\"", key.public().0);
    Ok(EXIT_OK)
}

/// `synod verify DIR --peers FILE`.
pub fn verify_node(dir: &Path, peers: &Path, json: bool) -> Result<u8> {
    let peers = PeersFile::load(peers)?;
    synod_exec::remove_stale_scratch(&std::env::temp_dir(), "synod-verify-");
    let scratch = std::env::temp_dir().join(format!("synod-verify-{}", std::process::id()));
    let sandbox = synod_exec::Sandbox::new(&scratch, synod_exec::Limits::default())
        .context("the sandbox cannot re-run the checks")?;
    if sandbox.python_version() != peers.python {
        bail!(
            "this python3 is {}, the peer list pins {}: the checks can only be re-run with that version",
            sandbox.python_version(),
            peers.python
        );
    }
    let mut checker = synod_node::content::Checker::new(sandbox);
    let result = synod_node::verify::verify_node_dir(dir, &peers, &mut checker);
    let _ = std::fs::remove_dir_all(&scratch);
    match result {
        Ok(v) => {
            if json {
                println!(
                    "{}",
                    serde_json::json!({"ok": true, "peer": v.peer, "outcome": v.outcome, "digests": v.digests, "test_switches": v.test_switches})
                );
            } else {
                println!("ok    peer {}'s certificate is signed by its key", v.peer);
                println!(
                    "ok    {} height(s), each with a quorum certificate of valid precommits",
                    v.digests.len()
                );
                println!("ok    tally and refinement re-run here; program files match");
                for (h, d) in v.digests.iter().enumerate() {
                    println!("      height {h}: {d}");
                }
                if !v.test_switches.is_empty() {
                    println!(
                        "note  made with test switches: {}",
                        v.test_switches.join(", ")
                    );
                }
                println!("verified ({})", v.outcome);
            }
            Ok(EXIT_OK)
        }
        Err(why) => {
            if json {
                println!("{}", serde_json::json!({"ok": false, "problem": why}));
            } else {
                println!("FAIL  {why}");
                println!("NOT verified");
            }
            Ok(EXIT_NEGATIVE)
        }
    }
}
