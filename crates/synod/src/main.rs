//! The `synod` command line: build software with several agents, with agreement, failure
//! detection and checked results; verify what a build left behind.

use anyhow::{Context, Result, anyhow, bail};
use clap::{Parser, Subcommand};
use std::collections::VecDeque;
use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use synod_agents::AgentsFile;
use synod_core::Prompt;
use synod_core::tally::Tally;
use synod_exec::{Limits, Sandbox};
use synod_runtime::{Answers, BuildOptions, BuildResult};

mod agents_cmd;
mod doctor_cmd;
mod eval_cmd;
mod lab_cmd;
mod node_cmd;
mod sim_cmd;
use eval_cmd::numbers;

const EXIT_OK: u8 = 0;
const EXIT_NEGATIVE: u8 = 1;
const EXIT_USAGE: u8 = 2;
const EXIT_CLARIFY: u8 = 3;

const PROMPT_BYTES_MAX: usize = 64 * 1024;
/// The largest prompt or answers file read (a prompt is at most [`PROMPT_BYTES_MAX`] once
/// trimmed): a larger one is refused unread, as is anything but a regular file.
const INPUT_FILE_BYTES_MAX: u64 = 1024 * 1024;

#[derive(Parser)]
#[command(
    name = "synod",
    version,
    about = "Build software with several LLM agents: agreement on what is built, progress when agents fail, checked results.",
    after_help = "Exit codes (every command): 0 success; 1 the job ran and the answer is negative (no agreement or build within budget, verify found a problem); 2 bad input, usage, or an environment that cannot run the job; 3 a clarification is needed (the question is on stdout, JSON with --json)."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Build a program from a prompt: interpret, agree, clarify, decompose, build, integrate.
    ///
    /// INPUT is an example directory (prompt.md, agents.toml, transcript/), a file holding the
    /// prompt, or the prompt text itself. The output directory receives the program, its
    /// contract tests, REPORT.md, certificate.json and the decision log.
    Build(BuildArgs),
    /// Re-check a build directory offline: certificate signature, decision log chain and
    /// signatures, program digests, and the refinement evidence re-run in the sandbox.
    Verify {
        /// The build's output directory.
        dir: PathBuf,
        /// Fingerprint of the key the build must be signed with (printed at the end of the build).
        #[arg(long)]
        key: Option<String>,
        /// Print the result as one JSON object on stdout.
        #[arg(long)]
        json: bool,
        /// Verify a `synod node` peer's directory against this peer list (its public keys,
        /// f and the pinned python): quorum certificates, offers, the tally and refinement
        /// re-run.
        #[arg(long)]
        peers: Option<PathBuf>,
    },
    /// One peer of a decentralized build: peers that trust no tally agree over TCP with the
    /// BFT protocol (quorum n - f, n >= 3f + 1), then build and check; see examples/peers/.
    Node(node_cmd::NodeArgs),
    /// Can candidate programs run safely here? Shows python3 and each isolation mechanism.
    Doctor(doctor_cmd::DoctorArgs),
    /// Agents: check that each configured endpoint answers.
    #[command(subcommand)]
    Agents(AgentsCommand),
    /// Run the consensus protocols in the deterministic simulator: one seed, or a sweep.
    Sim(sim_cmd::SimArgs),
    /// Compare synod with the usual ways of using several agents on real benchmark tasks, with
    /// simulated agents or real ones (`--agents FILE`): delivered-correct, silently-wrong,
    /// asked, cost. On HumanEvalComm a user answers synod's questions.
    Eval(eval_cmd::EvalArgs),
    /// The theory, executable: Byzantine generals, FLP, scaling of the fault bounds, failure
    /// detectors, model checking.
    #[command(subcommand)]
    Lab(LabCommand),
}

/// The flags of `synod build`.
#[derive(clap::Args)]
struct BuildArgs {
    /// Example directory, prompt file, or prompt text.
    input: String,
    /// Agents file (TOML). An example directory brings its own.
    #[arg(long)]
    agents: Option<PathBuf>,
    /// Fault budget m, 0 to 31 and n ≥ 2m+1 (default: the agents file's `fault_budget`, else
    /// the largest m with n ≥ 2m+1).
    #[arg(long, value_parser = numbers::whole(0, synod_agents::config::FAULT_BUDGET_MAX))]
    fault_budget: Option<usize>,
    /// Output directory; must be absent or empty.
    #[arg(long, default_value = "synod-out")]
    out: PathBuf,
    /// Answers to clarification questions (TOML: answers = ["B", "..."]), used in order.
    #[arg(long)]
    answers: Option<PathBuf>,
    /// Seed for probe variants and differential testing.
    #[arg(long, default_value_t = 0, value_parser = numbers::whole(0, u64::MAX))]
    seed: u64,
    /// Stop cleanly, with a report, once the agents have spent this many tokens (in and out).
    #[arg(long, value_parser = numbers::whole(0, u64::MAX))]
    max_tokens_total: Option<u64>,
    /// Continue the build in --out (after a kill, or after it stopped with a question): the
    /// log is replayed, answered requests are not sent again. On a finished build: nothing
    /// to do. Without a build in --out: start one.
    #[arg(long)]
    resume: bool,
    /// Run candidate programs with resource limits only, without namespaces, landlock or
    /// seccomp, when the kernel cannot isolate them. Dangerous: generated code can then reach
    /// the network and your files. Recorded in the certificate and the report.
    #[arg(long)]
    unsafe_no_sandbox: bool,
    /// Grant candidate programs a capability beyond pure computation: `files` (read and
    /// write files under their working directory). Only you grant capabilities, never the
    /// agents; network, processes, signals and native code are never granted. Recorded in the
    /// certificate. Give the same value on --resume.
    #[arg(long, value_delimiter = ',', value_parser = parse_capability)]
    allow: Vec<synod_core::Capability>,
    /// Where LLM replies are cached (content-addressed), so repeated and resumed builds never
    /// pay twice. Default: $XDG_CACHE_HOME/synod/responses or ~/.cache/synod/responses.
    #[arg(long, conflicts_with = "no_cache")]
    cache_dir: Option<PathBuf>,
    /// Do not read or write the response cache.
    #[arg(long)]
    no_cache: bool,
    /// Widened tally (PL-20): when the fault budget's rule does not decide, keep sampling
    /// and decide a reading once it holds K more readings than the next, every sample
    /// counted, from more than m agents; 0 turns it off. Give the same value on --resume.
    #[arg(long, default_value_t = synod_core::pipeline::AHEAD_BY as u64, value_parser = clap::value_parser!(u64).range(0..=64))]
    ahead_by: u64,
    /// Interpret calls one round (one prompt, every sample) may make before the build stops
    /// without agreement (default 3 per agent; at least n − m). Give the same value on
    /// --resume.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    max_interpret_calls: Option<u64>,
    /// Before deciding a reading whose agents wrote different programs that agree on every
    /// input tried, ask an agent for inputs that could tell two of them apart and run them
    /// (PL-22, S*): one more call per such decision. Give the same flag on --resume.
    #[arg(long)]
    distinguish: bool,
    /// Print the result as one JSON object on stdout.
    #[arg(long)]
    json: bool,
}

impl BuildArgs {
    /// Where LLM replies are cached: `--cache-dir`, else the default; none with `--no-cache`.
    fn cache_dir(&self) -> Option<PathBuf> {
        if self.no_cache {
            None
        } else {
            self.cache_dir
                .clone()
                .or_else(synod_agents::ResponseCache::default_dir)
        }
    }
}

#[derive(Subcommand)]
enum AgentsCommand {
    /// Reach each agent's endpoint: model, latency, streaming, and plain explanations of
    /// misconfigurations (bad URL, missing key variable, model not found).
    Check(agents_cmd::AgentsCheckArgs),
}

#[derive(Subcommand)]
enum LabCommand {
    /// Lamport's OM(m) (and SM(m) with --signed), over every traitor placement and strategy.
    Generals(lab_cmd::GeneralsArgs),
    /// An adversary keeps a consensus protocol undecided; a failure detector lets it decide;
    /// Ben-Or's randomized consensus with independent and correlated coins.
    Flp(lab_cmd::FlpArgs),
    /// Probability that faults stay within budget, and agent calls, as the number of agents grows.
    Scaling(lab_cmd::ScalingArgs),
    /// Detection time versus false suspicions for both failure detectors under several delay
    /// distributions.
    Detector(sim_cmd::DetectorArgs),
    /// Model checking (stateright): the BFT core and the trusted tally, at and below their bounds.
    Check(sim_cmd::CheckArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Build(args) => build(&args),
        Command::Verify {
            dir,
            key,
            json,
            peers: Some(peers),
        } if key.is_none() => node_cmd::verify_node(&dir, &peers, json),
        Command::Verify { peers: Some(_), .. } => Err(anyhow::anyhow!(
            "--peers verifies a node directory by its peers' keys; --key is for build directories"
        )),
        Command::Verify { dir, key, json, .. } => verify(&dir, key.as_deref(), json),
        Command::Node(args) => node_cmd::run_node(&args),
        Command::Doctor(args) => doctor_cmd::run_doctor(&args),
        Command::Agents(AgentsCommand::Check(args)) => agents_cmd::run_agents_check(&args),
        Command::Sim(args) => sim_cmd::run_sim(&args),
        Command::Eval(args) => eval_cmd::run_eval(&args),
        Command::Lab(LabCommand::Generals(args)) => lab_cmd::run_generals(&args),
        Command::Lab(LabCommand::Flp(args)) => lab_cmd::run_flp(&args),
        Command::Lab(LabCommand::Scaling(args)) => lab_cmd::run_scaling(&args),
        Command::Lab(LabCommand::Detector(args)) => sim_cmd::run_detector(&args),
        Command::Lab(LabCommand::Check(args)) => sim_cmd::run_check(&args),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(EXIT_USAGE)
        }
    }
}

/// What the positional input of `build` turned out to be.
struct Input {
    prompt: String,
    agents: Option<PathBuf>,
    /// The file the prompt came from.
    source: Option<PathBuf>,
}

fn read_prompt_file(path: &Path) -> Result<String> {
    let bytes = synod_store::read_capped(path, INPUT_FILE_BYTES_MAX)
        .with_context(|| format!("cannot read prompt file {}", path.display()))?;
    String::from_utf8(bytes)
        .map_err(|_| anyhow!("prompt file {} is not UTF-8 text", path.display()))
}

fn resolve_input(input: &str) -> Result<Input> {
    let path = Path::new(input);
    if path.is_dir() {
        let prompt_file = path.join("prompt.md");
        // Anything by that name is read, so that a FIFO or a device is refused as such.
        if !exists(&prompt_file) {
            bail!(
                "{} is a directory without prompt.md: an example directory holds prompt.md, agents.toml and transcript/",
                path.display()
            );
        }
        let agents = path.join("agents.toml");
        return Ok(Input {
            prompt: read_prompt_file(&prompt_file)?,
            agents: exists(&agents).then_some(agents),
            source: Some(prompt_file),
        });
    }
    if exists(path) {
        return Ok(Input {
            prompt: read_prompt_file(path)?,
            agents: None,
            source: Some(path.to_path_buf()),
        });
    }
    let looks_like_path = !input.contains(char::is_whitespace)
        && (input.contains('/') || input.ends_with(".md") || input.ends_with(".txt"));
    if looks_like_path {
        bail!("no such file or directory: {input}");
    }
    Ok(Input {
        prompt: input.to_string(),
        agents: None,
        source: None,
    })
}

/// Is there anything at `path` (a dangling symlink counts, and is refused when read)?
fn exists(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok()
}

fn read_answers(path: &Path) -> Result<VecDeque<String>> {
    let bytes = synod_store::read_capped(path, INPUT_FILE_BYTES_MAX)
        .with_context(|| format!("cannot read answers file {}", path.display()))?;
    let text = String::from_utf8(bytes)
        .map_err(|_| anyhow!("answers file {} is not UTF-8 text", path.display()))?;
    synod_runtime::answers::parse_answers(&text, path).map_err(|e| anyhow!(e))
}

/// Runs `synod build`: checks the input, starts the agents, runs the build and prints its
/// result. The exit code follows the result (see the CLI's exit codes).
fn build(args: &BuildArgs) -> Result<u8> {
    let input = resolve_input(&args.input)?;
    let prompt = checked_prompt(&input)?;
    let agents_path = agents_path(args.agents.clone(), input.agents)?;
    let file = AgentsFile::load(&agents_path)?;
    let n = file.agents.len();
    let m = fault_budget(&file, args.fault_budget, &agents_path)?;
    let cache_dir = args.cache_dir();
    let agents = start_agents(&file, cache_dir.as_ref())?;
    let answers = answers(args.answers.as_deref(), args.json)?;
    // Scratch of builds killed earlier (their pid is gone) is removed first.
    synod_exec::remove_stale_scratch(&std::env::temp_dir(), "synod-build-");
    let scratch = std::env::temp_dir().join(format!("synod-build-{}", std::process::id()));
    let sandbox = candidate_sandbox(&scratch, args.unsafe_no_sandbox)?
        .with_audit(synod_exec::Audit::granting(args.allow.iter().copied()));
    let opts = BuildOptions {
        prompt: Prompt::new(prompt),
        agents,
        fault_budget: m,
        seed: args.seed,
        out_dir: args.out.clone(),
        answers,
        sandbox,
        check_workers: std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2)
            .min(4),
        tokens_max: args.max_tokens_total,
        timeout_increment_ms: file.timeout_increment_ms,
        timeout_max_ms: file.timeout_max_ms,
        resume: args.resume,
        cache_dir,
        knobs: synod_runtime::Knobs {
            ahead_by: Some(args.ahead_by as usize),
            interpret_calls_max: args.max_interpret_calls.map(|c| c as usize),
            distinguish: args.distinguish,
            reread: false,
        },
    };
    eprintln!(
        "synod: {n} agents, fault budget m = {m} (decide needs {} agreeing)",
        n - m
    );
    let result = synod_runtime::run_build(opts, &mut |p| eprintln!("{p}"));
    let _ = std::fs::remove_dir_all(&scratch);
    Ok(print_build_result(result?, args.json))
}

/// The prompt, trimmed: refused when empty or over [`PROMPT_BYTES_MAX`].
fn checked_prompt(input: &Input) -> Result<String> {
    let prompt = input.prompt.trim().to_string();
    if prompt.is_empty() {
        match &input.source {
            Some(p) => bail!("the prompt in {} is empty: say what to build", p.display()),
            None => bail!("the prompt is empty: say what to build"),
        }
    }
    if prompt.len() > PROMPT_BYTES_MAX {
        bail!(
            "the prompt is {} bytes; at most {PROMPT_BYTES_MAX} are accepted",
            prompt.len()
        );
    }
    Ok(prompt)
}

/// The agents file: `--agents`, else the example directory's own.
fn agents_path(flag: Option<PathBuf>, example: Option<PathBuf>) -> Result<PathBuf> {
    let Some(path) = flag.or(example) else {
        bail!(
            "synod needs agents to build a new prompt: pass --agents FILE (see README.md, \"Agents\"). \
             An agent is a model behind an OpenAI-compatible or Anthropic endpoint (backends \
             \"openai\", \"anthropic\"), a program speaking JSON lines on stdio (\"command\"), or a \
             recorded transcript (\"scripted\"). To see a whole build offline, run an example: \
             synod build examples/rpn-calculator --out out/rpn"
        );
    };
    Ok(path)
}

/// The fault budget m: `--fault-budget`, else the agents file's, else the largest m with
/// n ≥ 2m+1; refused when the agents cannot tolerate it.
fn fault_budget(file: &AgentsFile, flag: Option<usize>, agents_path: &Path) -> Result<usize> {
    let n = file.agents.len();
    let m = flag
        .or(file.fault_budget)
        .unwrap_or_else(|| Tally::default_budget(n));
    Tally::new(n, m).with_context(|| {
        format!(
            "fault budget {m} with the agents of {}",
            agents_path.display()
        )
    })?;
    Ok(m)
}

/// The agents of `file`, each with its deadline, after warning about agents that are not
/// independent.
fn start_agents(
    file: &AgentsFile,
    cache_dir: Option<&PathBuf>,
) -> Result<Vec<(Box<dyn synod_agents::Agent>, u64)>> {
    for w in synod_agents::independence_warnings(file) {
        eprintln!("warning: {w}");
    }
    let cache = cache_dir.map(synod_agents::ResponseCache::new);
    let built = synod_agents::build_agents(file, cache.as_ref())?;
    Ok(built
        .into_iter()
        .zip(&file.agents)
        .map(|(a, c)| {
            (
                a,
                c.timeout_ms
                    .unwrap_or(synod_agents::config::DEFAULT_TIMEOUT_MS),
            )
        })
        .collect())
}

/// Where answers to clarification questions come from: the `--answers` file, else the
/// terminal when there is one (and no `--json`), else nowhere.
fn answers(path: Option<&Path>, json: bool) -> Result<Answers> {
    Ok(match path {
        Some(p) => Answers::List(read_answers(p)?),
        None if !json && std::io::stdin().is_terminal() && std::io::stderr().is_terminal() => {
            Answers::Ask(Box::new(|q| {
                eprintln!("\n{q}");
                eprint!("answer> ");
                let _ = std::io::stderr().flush();
                let mut line = String::new();
                match std::io::stdin().lock().read_line(&mut line) {
                    Ok(0) | Err(_) => None,
                    Ok(_) if line.trim().is_empty() => None,
                    Ok(_) => Some(line.trim().to_string()),
                }
            }))
        }
        None => Answers::None,
    })
}

/// `--allow NAME`: a capability synod can grant.
fn parse_capability(name: &str) -> std::result::Result<synod_core::Capability, String> {
    synod_core::Capability::parse(name).ok_or_else(|| {
        let names: Vec<&str> = synod_core::Capability::ALL.iter().map(|(_, n)| *n).collect();
        format!(
            "{name:?} is not a capability synod grants (it grants: {}; network, processes, signals and native code are never granted)",
            names.join(", ")
        )
    })
}

/// The sandbox candidate programs run in, under `scratch`; with `--unsafe-no-sandbox`,
/// resource limits only.
fn candidate_sandbox(scratch: &Path, unsafe_no_sandbox: bool) -> Result<Sandbox> {
    if unsafe_no_sandbox {
        eprintln!(
            "WARNING: --unsafe-no-sandbox: candidate programs run with resource limits only; they can reach the network and read your files"
        );
        Sandbox::new_unsafe_no_sandbox(scratch, Limits::default())
    } else {
        Sandbox::new(scratch, Limits::default())
    }
    .context("the sandbox cannot run candidate programs")
}

/// Prints how the build ended (one JSON object with `--json`) and returns the exit code.
fn print_build_result(result: BuildResult, json: bool) -> u8 {
    match result {
        BuildResult::Built {
            outcome,
            fingerprint,
            out_dir,
        } => {
            print_built(&outcome, &fingerprint, &out_dir, json);
            EXIT_OK
        }
        BuildResult::Failed {
            stage,
            reason,
            out_dir,
        } => {
            if json {
                println!(
                    "{}",
                    serde_json::json!({"status": "failed", "stage": stage, "reason": reason, "out": out_dir})
                );
            } else {
                println!("not built ({stage}): {reason}");
                println!("  report: {}", out_dir.join("REPORT.md").display());
            }
            EXIT_NEGATIVE
        }
        BuildResult::AlreadyFinished { built, out_dir } => {
            if json {
                println!(
                    "{}",
                    serde_json::json!({"status": if built { "built" } else { "failed" }, "already_finished": true, "out": out_dir})
                );
            } else {
                println!(
                    "{} already finished ({}): nothing to resume",
                    out_dir.display(),
                    if built { "built" } else { "not built" }
                );
            }
            if built { EXIT_OK } else { EXIT_NEGATIVE }
        }
        BuildResult::NeedsClarification { question, out_dir } => {
            if json {
                println!(
                    "{}",
                    serde_json::json!({"status": "needs_clarification", "question": question, "out": out_dir})
                );
            } else {
                println!("{question}");
                println!(
                    "\nNo answer was available. Continue with --resume --answers FILE (answers = [\"A\"]) and the same --out, or on a terminal to answer interactively. The question is also in {}.",
                    out_dir.join("question.json").display()
                );
            }
            EXIT_CLARIFY
        }
    }
}

/// Prints where a finished build put the program, report and certificate, and how to verify it.
fn print_built(
    outcome: &synod_core::pipeline::BuildOutcome,
    fingerprint: &str,
    out_dir: &Path,
    json: bool,
) {
    if json {
        println!(
            "{}",
            serde_json::json!({
                "status": "built",
                "out": out_dir,
                "fingerprint": fingerprint,
                "components": outcome.components.iter().map(|c| serde_json::json!({"name": c.name, "agent": outcome.agents[c.agent.0 as usize].name, "digest": c.digest})).collect::<Vec<_>>(),
                "agents": outcome.agents,
                "probes": outcome.probes.len(),
                "contract": outcome.spec.contract.len(),
            })
        );
    } else {
        println!("built: {}", out_dir.display());
        println!("  program:     {}", out_dir.join("program").display());
        println!("  report:      {}", out_dir.join("REPORT.md").display());
        println!(
            "  certificate: {}",
            out_dir.join("certificate.json").display()
        );
        println!("  key:         {fingerprint}");
        println!(
            "verify with:  synod verify {} --key {fingerprint}",
            out_dir.display()
        );
    }
}

fn verify(dir: &Path, key: Option<&str>, json: bool) -> Result<u8> {
    if !dir.is_dir() {
        bail!("{} is not a directory", dir.display());
    }
    if !dir.join("certificate.json").exists() && !dir.join("log.redb").exists() {
        bail!(
            "{} is not a synod build directory (no certificate.json, no log.redb)",
            dir.display()
        );
    }
    if let Some(k) = key {
        let hex = k.trim().strip_prefix("blake3:").unwrap_or(k.trim());
        if hex.len() != 32 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            bail!(
                "--key {k:?} is not a key fingerprint (blake3: followed by 32 hex digits, as printed at the end of a build)"
            );
        }
    }
    synod_exec::remove_stale_scratch(&std::env::temp_dir(), "synod-verify-");
    let scratch = std::env::temp_dir().join(format!("synod-verify-{}", std::process::id()));
    let sandbox =
        Sandbox::new(&scratch, Limits::default()).context("the sandbox cannot run the program")?;
    let report = synod_runtime::verify(dir, key, &sandbox);
    let _ = std::fs::remove_dir_all(&scratch);
    if json {
        println!(
            "{}",
            serde_json::json!({"ok": report.ok(), "fingerprint": report.fingerprint, "checks": report.checks})
        );
    } else {
        for c in &report.checks {
            match &c.problem {
                None => println!("ok    {}", c.name),
                Some(p) => println!("FAIL  {}: {p}", c.name),
            }
        }
        if let Some(f) = &report.fingerprint {
            println!("key: {f}");
        }
        println!(
            "{}",
            if report.ok() {
                "verified"
            } else {
                "NOT verified"
            }
        );
    }
    Ok(if report.ok() { EXIT_OK } else { EXIT_NEGATIVE })
}
