//! `synod build` with LLM agents over real HTTP: an OpenAI-wire-protocol server (a Python
//! stdlib process, streaming SSE) serving the rpn-calculator example's recorded replies per
//! model, one of them a stream that stalls; and, run by `.ci/run`, the real local coding models
//! behind llama.cpp's server.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

mod common;
use common::{TempDir, root};

/// A child process killed when dropped.
struct Server {
    child: Child,
    port: u16,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_server(stall: &str, counts: &Path) -> Server {
    let mut child = Command::new("python3")
        .arg(root().join("crates/synod/tests/fixtures/llm/openai_server.py"))
        .arg(root().join("examples/rpn-calculator/transcript"))
        .arg(stall)
        .arg(counts)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("python3 runs the test server");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port = line.trim().parse().expect("the server prints its port");
    Server { child, port }
}

fn agents_file(dir: &Path, port: u16) -> PathBuf {
    let mut toml = String::from("fault_budget = 1\n");
    for name in ["bo", "cyd", "dee", "eli"] {
        toml.push_str(&format!(
            "\n[[agent]]\nname = \"{name}\"\nbackend = \"openai\"\nmodel = \"{name}\"\nbase_url = \"http://127.0.0.1:{port}/v1\"\ntemperature = 0.2\nmax_tokens = 4096\ntimeout_ms = 1500\n"
        ));
    }
    let path = dir.join("agents.toml");
    std::fs::write(&path, toml).unwrap();
    path
}

fn counts(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap_or_else(|_| "{}".into())).unwrap()
}

fn build(agents: &Path, out: &Path, cache: Option<&Path>) -> (i32, serde_json::Value, String) {
    let mut c = Command::new(env!("CARGO_BIN_EXE_synod"));
    c.current_dir(root())
        .args(["build", "examples/rpn-calculator", "--json", "--agents"])
        .arg(agents)
        .arg("--out")
        .arg(out)
        .stdin(Stdio::null());
    match cache {
        Some(dir) => c.arg("--cache-dir").arg(dir),
        None => c.arg("--no-cache"),
    };
    let o = c.output().unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
    let json = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {stderr}"));
    (o.status.code().unwrap_or(-1), json, stderr)
}

#[test]
fn openai_agents_build_the_example_suspect_the_stalled_stream_and_count_tokens() {
    let tmp = TempDir::new("build");
    let server = start_server("bo", &tmp.0.join("counts.json"));
    let agents = agents_file(&tmp.0, server.port);
    let out = tmp.0.join("out");
    let (code, json, stderr) = build(&agents, &out, None);
    assert_eq!(code, 0, "{json}\n{stderr}");
    assert_eq!(json["status"], "built");
    let records = json["agents"].as_array().unwrap();
    let bo = &records[0];
    assert_eq!(bo["name"], "bo");
    assert_eq!(
        bo["suspected"], true,
        "the stalled stream is suspected: {bo}"
    );
    for r in &records[1..] {
        assert!(
            r["usage"]["input_tokens"].as_u64().unwrap() > 0
                && r["usage"]["output_tokens"].as_u64().unwrap() > 0,
            "tokens are recorded: {r}"
        );
    }
    let report = std::fs::read_to_string(out.join("REPORT.md")).unwrap();
    assert!(report.contains("| bo | openai"), "{report}");
    assert!(report.contains("missed deadline"), "{report}");
    // The stalled request is not retried.
    assert_eq!(counts(&tmp.0.join("counts.json"))["bo"], 1);
    let verify = Command::new(env!("CARGO_BIN_EXE_synod"))
        .arg("verify")
        .arg(&out)
        .output()
        .unwrap();
    assert!(verify.status.success());
}

#[test]
fn a_repeated_build_is_answered_from_the_response_cache() {
    let tmp = TempDir::new("cache");
    let counts_file = tmp.0.join("counts.json");
    let server = start_server("bo", &counts_file);
    let agents = agents_file(&tmp.0, server.port);
    let cache = tmp.0.join("cache");
    let (code, _, stderr) = build(&agents, &tmp.0.join("out1"), Some(&cache));
    assert_eq!(code, 0, "{stderr}");
    let first = counts(&counts_file);
    let (code, json, stderr) = build(&agents, &tmp.0.join("out2"), Some(&cache));
    assert_eq!(code, 0, "{stderr}");
    let second = counts(&counts_file);
    for agent in ["cyd", "dee", "eli"] {
        assert_eq!(
            first[agent], second[agent],
            "{agent}: every reply of the second build comes from the cache"
        );
    }
    // Cached replies cost nothing the second time.
    for r in &json["agents"].as_array().unwrap()[1..] {
        assert_eq!(r["usage"]["output_tokens"], 0, "{r}");
    }
}

/// The real local coding models (Qwen2.5-Coder 1.5B and 0.5B behind llama.cpp, started by
/// `scripts/llama-server.sh local` on ports 18091 and 18092) build the count_vowels
/// prompt and `examples/local-models`: both must be built (exit 0) and verify. Replies go to a
/// response cache outside the clone (`~/.cache/synod/ci-responses`, or `SYNOD_CI_RESPONSES`):
/// the first run on a machine draws them from the models (cold), later runs reuse them (warm).
/// The ports are fixed because the endpoint is part of a reply's cache key.
#[test]
#[ignore = "needs llama.cpp and the Qwen models: run by .ci/run (scripts/llama-server.sh local)"]
fn local_models_build_and_verify() {
    let tmp = TempDir::new("local");
    let ports = [18091u16, 18092];
    let cache = std::env::var_os("SYNOD_CI_RESPONSES")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").expect("HOME is set"))
                .join(".cache/synod/ci-responses")
        });
    let o = Command::new("bash")
        .arg(root().join("scripts/llama-server.sh"))
        .arg("local")
        .env("SYNOD_LOCAL_PORTS", format!("{} {}", ports[0], ports[1]))
        .output()
        .expect("scripts/llama-server.sh runs");
    assert!(
        o.status.success(),
        "llama-server.sh local: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let _servers: Vec<KillOnDrop> = String::from_utf8_lossy(&o.stdout)
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .map(KillOnDrop)
        .collect();
    // The example's agents file, pointed at this test's ports.
    let example = root().join("examples/local-models");
    let agents = std::fs::read_to_string(example.join("agents.toml"))
        .unwrap()
        .replace("127.0.0.1:8091", &format!("127.0.0.1:{}", ports[0]))
        .replace("127.0.0.1:8092", &format!("127.0.0.1:{}", ports[1]));
    let agents_path = tmp.0.join("agents.toml");
    std::fs::write(&agents_path, agents).unwrap();
    let count_vowels = "Write a Python module named `solution` (standard library only) with a \
        function `count_vowels(text)` that returns how many vowels (a, e, i, o, u, in either \
        case) the string `text` contains.";
    let roman = std::fs::read_to_string(example.join("prompt.md")).unwrap();
    for (name, prompt) in [
        ("count_vowels", count_vowels),
        ("local-models", roman.as_str()),
    ] {
        let out = tmp.0.join(name);
        let started = std::time::Instant::now();
        let o = Command::new(env!("CARGO_BIN_EXE_synod"))
            .args(["build", prompt, "--cache-dir"])
            .arg(&cache)
            .arg("--agents")
            .arg(&agents_path)
            .arg("--out")
            .arg(&out)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&o.stderr);
        println!("{name}: {:.0} s\n{stderr}", started.elapsed().as_secs_f64());
        let report = std::fs::read_to_string(out.join("REPORT.md")).unwrap_or_default();
        assert_eq!(
            o.status.code(),
            Some(0),
            "{name} must build with the local models\n{stderr}\n{report}"
        );
        let v = Command::new(env!("CARGO_BIN_EXE_synod"))
            .arg("verify")
            .arg(&out)
            .output()
            .unwrap();
        assert!(
            v.status.success(),
            "{name}: verify failed: {}",
            String::from_utf8_lossy(&v.stdout)
        );
    }
}

struct KillOnDrop(i32);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg(self.0.to_string()).status();
    }
}
