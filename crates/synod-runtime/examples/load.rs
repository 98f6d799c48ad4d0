//! Load scenario generator: writes an example directory (`prompt.md`, `agents.toml`,
//! transcripts) that `synod build <dir>` runs, with many agents answering concurrently after
//! seeded random delays, some of them faulty.
//!
//! ```text
//! cargo run -p synod-runtime --example load -- <dir> [agents] [functions] [components] [seed]
//! /usr/bin/time -v target/debug/synod build <dir> --out <out>
//! ```
//!
//! Function k is `f_k(x) = x * (k + 1) + k`, in component `c_{k mod components}`. Agent 0
//! misreads f_0 (`+ k + 1`), agent 1 stalls (500 ms timeout), agent 2 answers garbage; the rest
//! are correct, each with its own delay (0 to 300 ms, SplitMix64 from the seed). Numbers for
//! `docs/BENCHMARKS.md`, "Load".

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The body of f_k as an agent reads it.
fn body(k: usize, misread: bool) -> String {
    if misread && k == 0 {
        format!("x * {} + {}", k + 1, k + 1)
    } else {
        format!("x * {} + {k}", k + 1)
    }
}

fn module(functions: &[usize], misread: bool) -> String {
    let mut out = String::new();
    for &k in functions {
        let _ = write!(
            out,
            "def f_{k}(x):\n    if not isinstance(x, int) or isinstance(x, bool):\n        raise TypeError(\"x must be an int\")\n    return {}\n\n",
            body(k, misread)
        );
    }
    out
}

fn interpret(functions: usize, components: usize, misread: bool) -> String {
    let comps: Vec<String> = (0..components)
        .map(|c| {
            let fs: Vec<String> = (0..functions)
                .filter(|k| k % components == c)
                .map(|k| {
                    format!(
                        r#"{{"name": "f_{k}", "params": ["x"], "doc": "x * {} + {k}"}}"#,
                        k + 1
                    )
                })
                .collect();
            format!(r#"{{"name": "c_{c}", "functions": [{}]}}"#, fs.join(", "))
        })
        .collect();
    let contract: Vec<String> = (0..functions)
        .map(|k| {
            let x = 2;
            let y = if misread && k == 0 {
                x * (k + 1) + k + 1
            } else {
                x * (k + 1) + k
            };
            format!(r#"{{"call": "f_{k}", "args": [{x}], "returns": {y}}}"#)
        })
        .chain([r#"{"call": "f_1", "args": ["a"], "raises": "TypeError"}"#.to_string()])
        .collect();
    let probes: Vec<String> = (0..functions)
        .flat_map(|k| {
            [
                format!(r#"{{"call": "f_{k}", "args": [-7]}}"#),
                format!(r#"{{"call": "f_{k}", "args": [1000]}}"#),
            ]
        })
        .take(64)
        .collect();
    let all: Vec<usize> = (0..functions).collect();
    format!(
        "My reading.\n\n```json\n{{\n  \"summary\": \"{functions} affine functions f_k(x) = x * (k + 1) + k over {components} modules\",\n  \"components\": [{}],\n  \"contract\": [{}],\n  \"probes\": [{}]\n}}\n```\n\n```python\n{}```\n",
        comps.join(", "),
        contract.join(",\n    "),
        probes.join(", "),
        module(&all, misread)
    )
}

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let dir = PathBuf::from(args.first().map_or("load-scenario", String::as_str));
    let num =
        |i: usize, default: usize| args.get(i).and_then(|a| a.parse().ok()).unwrap_or(default);
    let agents = num(1, 16);
    let functions = num(2, 20);
    let components = num(3, 16).max(1);
    let mut seed = num(4, 1) as u64;
    write_scenario(&dir, agents, functions, components, &mut seed)?;
    println!(
        "wrote {} ({agents} agents, {functions} functions, {components} components)",
        dir.display()
    );
    Ok(())
}

fn write_scenario(
    dir: &Path,
    agents: usize,
    functions: usize,
    components: usize,
    seed: &mut u64,
) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(
        dir.join("prompt.md"),
        format!(
            "Write {functions} Python functions f_0 .. f_{} in {components} modules c_0 .. c_{}: f_k(x) = x * (k + 1) + k for an int x (TypeError otherwise); f_k lives in module c_(k mod {components}).\n",
            functions - 1,
            components - 1
        ),
    )?;
    let mut toml = format!("fault_budget = {}\n", (agents.saturating_sub(1)) / 5);
    for a in 0..agents {
        let name = format!("agent{a:02}");
        let t = dir.join("transcript").join(&name);
        std::fs::create_dir_all(&t)?;
        let delay = splitmix(seed) % 300;
        let (fault, timeout) = match a {
            1 => ("fault = \"stall\"\n", 500),
            2 => ("fault = \"garbage\"\n", 20_000),
            _ => ("", 20_000),
        };
        let _ = write!(
            toml,
            "\n[[agent]]\nname = \"{name}\"\nbackend = \"scripted\"\ntranscript = \"transcript/{name}\"\ntimeout_ms = {timeout}\ndelay_ms = {delay}\n{fault}"
        );
        let misread = a == 0;
        std::fs::write(
            t.join("interpret.md"),
            interpret(functions, components, misread),
        )?;
        for c in 0..components {
            let fs: Vec<usize> = (0..functions).filter(|k| k % components == c).collect();
            std::fs::write(
                t.join(format!("implement.c_{c}.md")),
                format!("Module c_{c}:\n\n```python\n{}```\n", module(&fs, misread)),
            )?;
        }
    }
    std::fs::write(dir.join("agents.toml"), toml)
}
