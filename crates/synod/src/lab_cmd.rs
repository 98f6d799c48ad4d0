//! `synod lab generals`, `synod lab flp` and `synod lab scaling`: thin wrappers over
//! `synod_sim::lab` (the logic and its tests live there).

use std::path::{Path, PathBuf};
use synod_sim::lab::benor::{self, BenOrConfig};
use synod_sim::lab::flp::{self, FlpConfig};
use synod_sim::lab::generals::{self, Algorithm, GeneralsConfig};
use synod_sim::lab::scaling::{self, ScalingConfig};
use synod_sim::lab::{LabError, plot};

const EXIT_OK: u8 = 0;
const EXIT_NEGATIVE: u8 = 1;
const EXIT_USAGE: u8 = 2;

/// `synod lab generals`: Lamport–Shostak–Pease OM(m) or SM(m), every traitor placement and
/// strategy.
#[derive(clap::Args, Debug, Clone)]
pub struct GeneralsArgs {
    /// Number of generals, the commander included (2 to 7).
    #[arg(long, value_parser = crate::numbers::whole(0, usize::MAX))]
    pub n: usize,
    /// Traitors tolerated: the m of OM(m)/SM(m) (0 to 2); every placement of up to m
    /// traitors is tried.
    #[arg(long, value_parser = crate::numbers::whole(0, usize::MAX))]
    pub m: usize,
    /// Run SM(m) (signed messages) instead of OM(m) (oral messages).
    #[arg(long)]
    pub signed: bool,
    /// Print the report as one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
    /// Write a PNG of the table into this directory.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// `synod lab flp`: an FLP adversary against a deterministic protocol, the same protocol
/// with an eventually accurate failure detector, and Ben-Or with correlated coins.
#[derive(clap::Args, Debug, Clone)]
pub struct FlpArgs {
    /// Adversary steps during which the protocol must stay bivalent (1 to 200).
    #[arg(long, default_value_t = 20, value_parser = crate::numbers::whole(0, usize::MAX))]
    pub steps: usize,
    /// Inputs of p0, p1, p2, such as 0,1,0 (default: the first bivalent input vector).
    #[arg(long)]
    pub inputs: Option<String>,
    /// Step from which the failure detector is accurate, in the detector run.
    #[arg(long, default_value_t = 10, value_parser = crate::numbers::whole(0, usize::MAX))]
    pub stabilize_at: usize,
    /// Crash a process in the detector run: P@STEP, such as 2@5.
    #[arg(long)]
    pub crash: Option<String>,
    /// Processes in the Ben-Or runs (3 to 15).
    #[arg(long, default_value_t = 5, value_parser = crate::numbers::whole(0, usize::MAX))]
    pub benor_n: usize,
    /// Seeded Ben-Or runs per row.
    #[arg(long, default_value_t = 2000, value_parser = crate::numbers::whole(0, u64::MAX))]
    pub runs: u64,
    /// Ben-Or round bound: a run not decided by then counts as undecided.
    #[arg(long, default_value_t = 500, value_parser = crate::numbers::whole(0, u32::MAX))]
    pub rounds_max: u32,
    /// Seed of the Ben-Or runs.
    #[arg(long, default_value_t = 1, value_parser = crate::numbers::whole(0, u64::MAX))]
    pub seed: u64,
    /// Print the report as one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
    /// Write a PNG of the Ben-Or table into this directory.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// `synod lab scaling`: the probability that faults stay within the peer and trusted budgets
/// as agents are added.
#[derive(clap::Args, Debug, Clone)]
pub struct ScalingArgs {
    /// Probability that one agent is faulty.
    #[arg(long, value_parser = crate::numbers::fraction(0.0, 1.0))]
    pub p: f64,
    /// Probability that all agents share one fault draw (correlation).
    #[arg(long, default_value_t = 0.0, value_parser = crate::numbers::fraction(0.0, 1.0))]
    pub rho: f64,
    /// Sweep n = 1..=N (at most 64).
    #[arg(long, default_value_t = 15, value_parser = crate::numbers::whole(0, usize::MAX))]
    pub n_max: usize,
    /// Monte-Carlo trials per n.
    #[arg(long, default_value_t = 20_000, value_parser = crate::numbers::whole(0, u64::MAX))]
    pub trials: u64,
    /// Seed of the Monte-Carlo draws.
    #[arg(long, default_value_t = 1, value_parser = crate::numbers::whole(0, u64::MAX))]
    pub seed: u64,
    /// Print the report as one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
    /// Write a PNG plot into this directory.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

fn usage(command: &str, e: impl std::fmt::Display) -> u8 {
    eprintln!("synod lab {command}: {e}");
    EXIT_USAGE
}

fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// Creates `dir` if needed and returns `dir/name`.
fn plot_path(dir: &Path, name: &str) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(dir)
        .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", dir.display()))?;
    Ok(dir.join(name))
}

fn wrote(path: &Path, json: bool) {
    // With --json, stdout holds only the JSON.
    if json {
        eprintln!("wrote {}", path.display());
    } else {
        println!("wrote {}", path.display());
    }
}

/// Prints a report on stdout: as JSON with `--json`, else as `render` gives it.
fn print_report(
    json: bool,
    report: &impl serde::Serialize,
    render: impl FnOnce() -> String,
) -> anyhow::Result<()> {
    if json {
        print_json(report)
    } else {
        print!("{}", render());
        Ok(())
    }
}

/// With `--out DIR`, draws a plot into `DIR/name` and says so.
fn write_plot(
    out: Option<&Path>,
    name: &str,
    json: bool,
    draw: impl FnOnce(&Path) -> Result<(), LabError>,
) -> anyhow::Result<()> {
    if let Some(dir) = out {
        let path = plot_path(dir, name)?;
        draw(&path)?;
        wrote(&path, json);
    }
    Ok(())
}

/// Runs `synod lab generals`. Exit 0: IC1 and IC2 hold in every case tried; 1: a case
/// violates them (the trace is printed); 2: bad input.
pub fn run_generals(args: &GeneralsArgs) -> anyhow::Result<u8> {
    let config = GeneralsConfig {
        n: args.n,
        m: args.m,
        algorithm: if args.signed {
            Algorithm::Signed
        } else {
            Algorithm::Oral
        },
    };
    let report = match generals::run(&config) {
        Ok(r) => r,
        Err(e) => return Ok(usage("generals", e)),
    };
    print_report(args.json, &report, || report.render())?;
    let name = format!(
        "generals-{}-n{}-m{}.png",
        if args.signed { "sm" } else { "om" },
        args.n,
        args.m
    );
    write_plot(args.out.as_deref(), &name, args.json, |path| {
        plot::generals_png(&report, path)
    })?;
    Ok(if report.holds { EXIT_OK } else { EXIT_NEGATIVE })
}

fn parse_inputs(s: &str) -> Result<[u8; flp::N], String> {
    let values: Vec<&str> = s.split(',').map(str::trim).collect();
    let bad = || format!("--inputs {s:?}: expected three binary values, such as 0,1,0");
    if values.len() != flp::N {
        return Err(bad());
    }
    let mut out = [0u8; flp::N];
    for (o, v) in out.iter_mut().zip(values) {
        *o = match v {
            "0" => 0,
            "1" => 1,
            _ => return Err(bad()),
        };
    }
    Ok(out)
}

fn parse_crash(s: &str) -> Result<(u8, usize), String> {
    let bad = || format!("--crash {s:?}: expected PROCESS@STEP, such as 2@5");
    let (p, at) = s.split_once('@').ok_or_else(bad)?;
    let p: u8 = p.trim().parse().map_err(|_| bad())?;
    let at: usize = at.trim().parse().map_err(|_| bad())?;
    Ok((p, at))
}

/// Runs `synod lab flp`. Exit 0: the adversary kept the protocol bivalent for every step and
/// the failure-detector run decided; 1: either did not happen; 2: bad input.
pub fn run_flp(args: &FlpArgs) -> anyhow::Result<u8> {
    let inputs = match args.inputs.as_deref().map(parse_inputs).transpose() {
        Ok(i) => i,
        Err(e) => return Ok(usage("flp", e)),
    };
    let crash = match args.crash.as_deref().map(parse_crash).transpose() {
        Ok(c) => c,
        Err(e) => return Ok(usage("flp", e)),
    };
    let config = FlpConfig {
        steps: args.steps,
        inputs,
        stabilize_at: args.stabilize_at,
        crash,
    };
    let benor_config = BenOrConfig {
        n: args.benor_n,
        runs: args.runs,
        rounds_max: args.rounds_max,
        seed: args.seed,
    };
    if let Err(e) = flp::validate(&config).and_then(|()| benor::validate(&benor_config)) {
        return Ok(usage("flp", e));
    }
    let report = flp::run(&config).map_err(lab_error)?;
    let ben_or = benor::run(&benor_config).map_err(lab_error)?;
    if args.json {
        print_json(&serde_json::json!({ "flp": report, "ben_or": ben_or }))?;
    } else {
        print!("{}", report.render());
        println!();
        print!("{}", ben_or.render());
    }
    let name = format!("benor-n{}.png", args.benor_n);
    write_plot(args.out.as_deref(), &name, args.json, |path| {
        plot::benor_png(&ben_or, path)
    })?;
    let shown = report.bivalent_throughout && report.detector.all_decided_at.is_some();
    Ok(if shown { EXIT_OK } else { EXIT_NEGATIVE })
}

fn lab_error(e: LabError) -> anyhow::Error {
    anyhow::anyhow!(e)
}

/// Runs `synod lab scaling`. Exit 0 (the sweep is an answer either way); 2: bad input.
pub fn run_scaling(args: &ScalingArgs) -> anyhow::Result<u8> {
    let config = ScalingConfig {
        p: args.p,
        rho: args.rho,
        n_max: args.n_max,
        trials: args.trials,
        seed: args.seed,
    };
    let report = match scaling::run(&config) {
        Ok(r) => r,
        Err(e) => return Ok(usage("scaling", e)),
    };
    print_report(args.json, &report, || report.render())?;
    let name = format!("scaling-p{}-rho{}.png", args.p, args.rho);
    write_plot(args.out.as_deref(), &name, args.json, |path| {
        plot::scaling_png(&report, path)
    })?;
    Ok(EXIT_OK)
}
