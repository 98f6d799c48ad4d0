//! `synod agents check`: reach each agent's endpoint with a tiny request and say, in plain
//! words, what works and what does not (bad URL, missing key variable, refused key, unknown
//! model, no streaming).

use crate::config::{AgentConfig, AgentsFile, BackendKind};
use crate::llm::LlmAgent;
use crate::prompts::Messages;
use serde::Serialize;
use std::path::Path;
use std::time::Instant;

/// Token cap of the check request.
pub const CHECK_MAX_TOKENS: u64 = 8;
/// Longest deadline used for a check, in milliseconds.
pub const CHECK_TIMEOUT_MS_MAX: u64 = 30_000;

/// What the check found for one agent.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct AgentCheck {
    /// The agent.
    pub name: String,
    /// Its backend.
    pub backend: String,
    /// The model asked (or the command, for command agents).
    pub model: String,
    /// The endpoint reached (empty when none).
    pub endpoint: String,
    /// Whether the agent can answer.
    pub usable: bool,
    /// Time to a complete tiny reply, in milliseconds.
    pub latency_ms: Option<u64>,
    /// Whether a streamed reply worked (`None`: not tried).
    pub streaming: Option<bool>,
    /// Whether the server constrains a reply to a JSON schema (`response_format`, OpenAI
    /// protocol; `None`: not tried). When it does, `structured_output = true` may be set.
    pub structured_output: Option<bool>,
    /// The model the server says answered, when it differs from the one asked.
    pub served_model: Option<String>,
    /// What is wrong, in plain words.
    pub problem: Option<String>,
    /// Anything else worth knowing.
    pub note: Option<String>,
}

/// Checks every agent of a file, in order.
pub fn check_file(file: &AgentsFile) -> Vec<AgentCheck> {
    file.agents
        .iter()
        .map(|a| check_agent(a, &file.base_dir))
        .collect()
}

/// Checks one agent.
pub fn check_agent(a: &AgentConfig, base_dir: &Path) -> AgentCheck {
    let mut out = AgentCheck {
        name: a.name.clone(),
        backend: a.backend.as_str().to_string(),
        model: a.model.clone().unwrap_or_default(),
        endpoint: String::new(),
        usable: false,
        latency_ms: None,
        streaming: None,
        structured_output: None,
        served_model: None,
        problem: None,
        note: None,
    };
    match a.backend {
        BackendKind::Scripted => {
            let dir = base_dir.join(a.transcript.clone().unwrap_or_default());
            out.endpoint = dir.display().to_string();
            if dir.is_dir() {
                out.usable = true;
                out.note = Some("recorded transcript (offline)".into());
            } else {
                out.problem = Some(format!(
                    "the transcript directory {} does not exist",
                    dir.display()
                ));
            }
        }
        BackendKind::Command => {
            let argv = a.command.clone().unwrap_or_default();
            out.model = argv.join(" ");
            let program = argv.first().cloned().unwrap_or_default();
            match resolve_program(&program, base_dir) {
                Some(p) => {
                    out.usable = true;
                    out.endpoint = p;
                    out.note = Some("program found; not run (a check costs nothing)".into());
                }
                None => {
                    out.problem = Some(format!(
                        "the program {program:?} is neither a file (relative to {}) nor on PATH",
                        base_dir.display()
                    ));
                }
            }
        }
        BackendKind::Sim => out.problem = Some("\"sim\" agents exist only in the simulator".into()),
        BackendKind::Openai | BackendKind::Anthropic => check_llm(a, &mut out),
    }
    out
}

fn check_llm(a: &AgentConfig, out: &mut AgentCheck) {
    let mut c = a.clone();
    c.retries_max = Some(0);
    c.timeout_ms = Some(
        a.timeout_ms
            .unwrap_or(CHECK_TIMEOUT_MS_MAX)
            .min(CHECK_TIMEOUT_MS_MAX),
    );
    let agent = match LlmAgent::from_config(&c, None) {
        Ok(agent) => agent,
        Err(e) => {
            out.problem = Some(e);
            return;
        }
    };
    out.endpoint = agent.url();
    let m = Messages {
        system: "You are a health check. Answer with the single word OK.".into(),
        user: "Are you there?".into(),
        follow_up: None,
    };
    let seed = format!("check/{}", a.name);
    let started = Instant::now();
    let mut llama = false;
    match agent.exchange(&m, CHECK_MAX_TOKENS, true, &seed, &|| {}) {
        Ok(x) => {
            llama = x.llama_timings;
            out.usable = true;
            out.streaming = Some(true);
            out.latency_ms = Some(started.elapsed().as_millis() as u64);
            out.served_model = x.served_model.filter(|s| s != agent.model());
            if x.reply.usage.total() == 0 {
                out.note = Some("the server reports no token usage: cost accounting sees 0".into());
            }
        }
        Err(stream_err) => {
            // Streaming failed: does a plain request work?
            let started = Instant::now();
            match agent.exchange(&m, CHECK_MAX_TOKENS, false, &seed, &|| {}) {
                Ok(x) => {
                    llama = x.llama_timings;
                    out.usable = true;
                    out.streaming = Some(false);
                    out.latency_ms = Some(started.elapsed().as_millis() as u64);
                    out.served_model = x.served_model.filter(|s| s != agent.model());
                    out.note = Some(format!(
                        "streaming failed ({stream_err}); set `stream = false` for this agent"
                    ));
                }
                Err(_) => out.problem = Some(explain(&stream_err.to_string())),
            }
        }
    }
    if out.usable && a.backend == BackendKind::Openai {
        out.structured_output = Some(honours_schema(&agent, a));
        if out.structured_output == Some(true) && a.structured_output != Some(true) {
            add_note(
                out,
                "the server honours a JSON schema: `structured_output = true` constrains its distinguish replies (PL-22)",
            );
        }
    }
    if out.usable && llama && a.timings_per_token != Some(true) {
        add_note(
            out,
            "the server is llama.cpp (it reports timings): `timings_per_token = true` counts the input tokens of a reply synod cuts short",
        );
    }
    if out.usable && agent.streams() && out.streaming == Some(false) {
        out.usable = false;
        out.problem = Some(format!(
            "the agent streams (the default), but streaming failed and a plain request worked: set `stream = false`; {}",
            out.note.take().unwrap_or_default()
        ));
    }
}

/// Appends `tip` to the check's note.
fn add_note(out: &mut AgentCheck, tip: &str) {
    out.note = Some(match out.note.take() {
        Some(n) => format!("{n}; {tip}"),
        None => tip.to_string(),
    });
}

/// Asks for a list of calls constrained to [`crate::llm::calls_schema`]: does the reply hold to
/// it? A server that ignores `response_format` answers in prose or fences.
fn honours_schema(agent: &LlmAgent, a: &AgentConfig) -> bool {
    let m = Messages {
        system: "You propose test inputs.".into(),
        user: "Give two example calls of a Python function f(x) with literal arguments.".into(),
        follow_up: None,
    };
    let seed = format!("check-schema/{}", a.name);
    let schema = crate::llm::calls_schema();
    let Ok(x) = agent.exchange_with(&m, 64, agent.streams(), &seed, &|| {}, Some(&schema)) else {
        return false;
    };
    serde_json::from_str::<serde_json::Value>(x.reply.text.trim())
        .ok()
        .and_then(|v| v.get("calls").and_then(|c| c.as_array()).cloned())
        .is_some_and(|calls| calls.iter().all(|c| c.is_string()))
}

fn explain(message: &str) -> String {
    message
        .strip_prefix("agent failed: ")
        .unwrap_or(message)
        .to_string()
}

fn resolve_program(program: &str, base_dir: &Path) -> Option<String> {
    if program.is_empty() {
        return None;
    }
    if program.contains('/') {
        let p = base_dir.join(program);
        return p.is_file().then(|| p.display().to_string());
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(program))
        .find(|p| p.is_file())
        .map(|p| p.display().to_string())
}
