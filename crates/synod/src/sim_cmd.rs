//! `synod sim`, `synod lab detector` and `synod lab check`: thin wrappers over
//! `synod_sim::simulator` (the logic and its tests live there).

use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use synod_sim::simulator::sim::ProtocolKind;
use synod_sim::simulator::sweep::{RunSpec, Scenario, run_seed, sweep};
use synod_sim::simulator::{check, detector_lab};

/// `synod sim`: run the BFT or CT protocol in the seeded simulator.
#[derive(clap::Args, Debug, Clone)]
pub struct SimArgs {
    /// Protocol: bft (Tendermint-style, Byzantine faults) or ct (Chandra–Toueg, crash faults).
    #[arg(long)]
    pub protocol: String,
    /// Number of nodes.
    #[arg(long, value_parser = crate::numbers::whole(0, usize::MAX))]
    pub nodes: usize,
    /// Number of faulty nodes (also the protocol's fault budget).
    #[arg(long, value_parser = crate::numbers::whole(0, usize::MAX))]
    pub faulty: usize,
    /// One seed: print the run in full.
    #[arg(long, conflicts_with = "seeds", required_unless_present = "seeds", value_parser = crate::numbers::whole(0, u64::MAX))]
    pub seed: Option<u64>,
    /// A range of seeds A..B (B excluded): run a sweep in parallel and summarize.
    #[arg(long)]
    pub seeds: Option<String>,
    /// Scenario: random, fault-free, byzantine, equivocate, crash, partition, lossy.
    #[arg(long, default_value = "random")]
    pub scenario: String,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// Worker threads for a sweep, 1 to 256 (default: available cores).
    #[arg(long, value_parser = crate::numbers::whole(1usize, 256))]
    pub jobs: Option<usize>,
}

fn parse_seeds(s: &str) -> Result<std::ops::Range<u64>, String> {
    let (a, b) = s
        .split_once("..")
        .ok_or_else(|| format!("--seeds {s:?}: expected A..B, for example 0..1000"))?;
    let a: u64 = a
        .trim()
        .parse()
        .map_err(|_| format!("--seeds {s:?}: {a:?} is not a number"))?;
    let b: u64 = b
        .trim()
        .parse()
        .map_err(|_| format!("--seeds {s:?}: {b:?} is not a number"))?;
    if b <= a {
        return Err(format!(
            "--seeds {s:?}: the range is empty (B must exceed A)"
        ));
    }
    Ok(a..b)
}

fn spec_of(args: &SimArgs) -> Result<RunSpec, String> {
    let protocol: ProtocolKind = args.protocol.parse()?;
    let scenario: Scenario = args.scenario.parse()?;
    let spec = RunSpec {
        protocol,
        n: args.nodes,
        f: args.faulty,
        scenario,
    };
    spec.validate()?;
    Ok(spec)
}

/// Runs `synod sim`. Exit 0: safe and live; 1: a violation or liveness failure was found
/// (the seeds are printed); 2: bad input.
pub fn run_sim(args: &SimArgs) -> anyhow::Result<u8> {
    let spec = match spec_of(args) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("synod sim: {e}");
            return Ok(2);
        }
    };
    let mut stdout = std::io::stdout().lock();
    if let Some(seed) = args.seed {
        let report = run_seed(&spec, seed);
        if args.json {
            writeln!(stdout, "{}", serde_json::to_string_pretty(&report)?)?;
        } else {
            writeln!(stdout, "{report}")?;
        }
        return Ok(if report.ok() { 0 } else { 1 });
    }
    let seeds = match args.seeds.as_deref().map(parse_seeds) {
        Some(Ok(r)) => r,
        Some(Err(e)) => {
            eprintln!("synod sim: {e}");
            return Ok(2);
        }
        None => {
            eprintln!("synod sim: give --seed S or --seeds A..B");
            return Ok(2);
        }
    };
    let jobs = args
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .clamp(1, 256);
    let last_shown = AtomicU64::new(0);
    let progress = |done: u64, total: u64| {
        let step = (total / 100).max(1);
        let prev = last_shown.load(Ordering::Relaxed);
        if done == total || done >= prev + step {
            last_shown.store(done, Ordering::Relaxed);
            eprint!("\r{done}/{total} runs");
            if done == total {
                eprintln!();
            }
        }
    };
    let report = sweep(&spec, seeds, jobs, &progress);
    if args.json {
        writeln!(stdout, "{}", serde_json::to_string_pretty(&report)?)?;
    } else {
        write!(stdout, "{report}")?;
    }
    Ok(if report.ok() { 0 } else { 1 })
}

/// `synod lab detector`: detection time versus false suspicions, ◇P and phi-accrual.
#[derive(clap::Args, Debug, Clone)]
pub struct DetectorArgs {
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Directory to write `detector.png` into.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// Runs `synod lab detector`. Exit 0, or 2 when the plot cannot be written.
pub fn run_detector(args: &DetectorArgs) -> anyhow::Result<u8> {
    let report = detector_lab::run(&detector_lab::LabConfig::default());
    if let Some(dir) = &args.out {
        if let Err(e) = std::fs::create_dir_all(dir) {
            eprintln!("synod lab detector: cannot create {}: {e}", dir.display());
            return Ok(2);
        }
        let path = dir.join("detector.png");
        if let Err(e) = detector_lab::plot(&report, &path) {
            eprintln!("synod lab detector: cannot write {}: {e}", path.display());
            return Ok(2);
        }
        eprintln!("plot written to {}", path.display());
    }
    let mut stdout = std::io::stdout().lock();
    if args.json {
        writeln!(stdout, "{}", serde_json::to_string_pretty(&report)?)?;
    } else {
        write!(stdout, "{report}")?;
    }
    Ok(0)
}

/// `synod lab check`: the stateright models.
#[derive(clap::Args, Debug, Clone)]
pub struct CheckArgs {
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Runs `synod lab check`. Exit 0 when every model behaves as theory predicts (safe models
/// hold, broken ones yield their counterexample), 1 otherwise.
pub fn run_check(args: &CheckArgs) -> anyhow::Result<u8> {
    let report = check::run_check();
    let mut stdout = std::io::stdout().lock();
    if args.json {
        writeln!(stdout, "{}", serde_json::to_string_pretty(&report)?)?;
    } else {
        write!(stdout, "{report}")?;
    }
    Ok(if report.ok() { 0 } else { 1 })
}
