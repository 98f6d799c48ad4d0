//! `synod doctor`: can candidate programs run safely on this machine? Prints the interpreter and
//! each isolation mechanism with a one-line explanation. Exit 0: fully isolated; 2: synod would
//! refuse to run candidates (or has no usable python3).

use anyhow::Result;
use synod_exec::{ExecError, Isolation, Limits, Sandbox};

/// Arguments of `synod doctor`.
#[derive(clap::Args, Debug, Clone)]
pub struct DoctorArgs {
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Runs the checks and prints the findings; returns the exit code.
pub fn run_doctor(args: &DoctorArgs) -> Result<u8> {
    let scratch = std::env::temp_dir().join(format!("synod-doctor-{}", std::process::id()));
    let outcome = Sandbox::new(&scratch, Limits::default());
    let _ = std::fs::remove_dir_all(&scratch);
    let (python, version, isolation, problem) = match &outcome {
        Ok(sandbox) => (
            Some(sandbox.python().display().to_string()),
            Some(sandbox.python_version().to_string()),
            sandbox.isolation().clone(),
            None,
        ),
        Err(error) => (None, None, Isolation::detect(), Some(describe(error))),
    };
    let ok = problem.is_none() && isolation.is_isolated();
    if args.json {
        let report = serde_json::json!({
            "ok": ok,
            "python": python,
            "python_version": version,
            "isolation": isolation,
            "problem": problem,
        });
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        match (&python, &version) {
            (Some(python), Some(version)) => println!("python: {python} ({version})"),
            _ => println!("python: not usable (see below)"),
        }
        print!("{isolation}");
        if let Some(problem) = &problem {
            println!("problem: {problem}");
        }
    }
    Ok(if ok { 0 } else { 2 })
}

/// An error with its causes, on one line.
fn describe(error: &ExecError) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
