//! `synod agents check --agents FILE [--json]`: reach each agent and say in plain words what
//! works and what does not. Exit 0: every agent usable; 1: some agent unusable; 2: the file
//! itself is bad.

use std::path::PathBuf;
use synod_agents::check::{AgentCheck, check_file};
use synod_agents::{AgentsFile, independence_warnings};

/// Arguments of `synod agents check`.
#[derive(clap::Args, Debug, Clone)]
pub struct AgentsCheckArgs {
    /// The agents file (TOML).
    #[arg(long, value_name = "FILE")]
    pub agents: PathBuf,
    /// Print the result as JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Runs the check; returns the exit code.
pub fn run_agents_check(args: &AgentsCheckArgs) -> anyhow::Result<u8> {
    let file = match AgentsFile::load(&args.agents) {
        Ok(f) => f,
        Err(e) => {
            if args.json {
                println!(
                    "{}",
                    serde_json::json!({"ok": false, "error": e.to_string(), "agents": []})
                );
            } else {
                eprintln!("error: {e}");
            }
            return Ok(2);
        }
    };
    let checks = check_file(&file);
    let warnings = independence_warnings(&file);
    let ok = checks.iter().all(|c| c.usable);
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "ok": ok,
                "agents": checks,
                "warnings": warnings,
            }))?
        );
    } else {
        print!("{}", table(&checks));
        for w in &warnings {
            println!("warning: {w}");
        }
        let bad = checks.iter().filter(|c| !c.usable).count();
        if ok {
            println!("all {} agents usable", checks.len());
        } else {
            println!("{bad} of {} agents unusable", checks.len());
        }
    }
    Ok(if ok { 0 } else { 1 })
}

/// The human-readable table, one agent a row, then the problems and notes in words.
pub fn table(checks: &[AgentCheck]) -> String {
    let header = [
        "agent",
        "backend",
        "model",
        "status",
        "latency",
        "streaming",
        "json schema",
    ];
    let rows: Vec<[String; 7]> = checks
        .iter()
        .map(|c| {
            [
                c.name.clone(),
                c.backend.clone(),
                match &c.served_model {
                    Some(s) => format!("{} (served: {s})", c.model),
                    None => c.model.clone(),
                },
                if c.usable { "ok" } else { "UNUSABLE" }.to_string(),
                c.latency_ms
                    .map(|l| format!("{l} ms"))
                    .unwrap_or_else(|| "-".into()),
                match c.streaming {
                    Some(true) => "yes",
                    Some(false) => "no",
                    None => "-",
                }
                .to_string(),
                match c.structured_output {
                    Some(true) => "yes",
                    Some(false) => "no",
                    None => "-",
                }
                .to_string(),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for r in &rows {
        for (w, cell) in widths.iter_mut().zip(r) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &[String]| {
        let mut s = String::new();
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            if i > 0 {
                s.push_str("  ");
            }
            s.push_str(&format!("{cell:<w$}"));
        }
        s.trim_end().to_string() + "\n"
    };
    let mut out = line(&header.map(String::from));
    for r in &rows {
        out.push_str(&line(r));
    }
    for c in checks {
        if let Some(p) = &c.problem {
            out.push_str(&format!("{}: {p}\n", c.name));
        } else if let Some(n) = &c.note {
            out.push_str(&format!("{}: note: {n}\n", c.name));
        }
        if !c.endpoint.is_empty() && !c.usable {
            out.push_str(&format!("{}: endpoint {}\n", c.name, c.endpoint));
        }
    }
    out
}
