//! synod-agents: the agents that answer synod's requests.
//!
//! - [`Agent`]: the trait every backend implements: take a [`Request`], return the raw reply
//!   text (or a failure). The runtime calls it on its own thread, with a deadline it enforces.
//! - [`config`]: the agents file (TOML).
//! - [`reply`]: parsing raw replies into the core's typed [`synod_core::pipeline::Reply`].
//! - [`scripted`]: the offline backend that replays recorded replies, and can play a crash, a
//!   stall or garbage.
//! - [`llm`]: OpenAI chat completions and Anthropic Messages over blocking HTTP (`ureq`, ADR
//!   0004), streamed by default, with retries ([`http`]).
//! - [`command`]: any program speaking JSON lines on stdio.
//! - [`prompts`]: the role prompts (files in the repository, versioned, hashed:
//!   [`role_prompts_digest`]) and [`render`], which turns a request into chat messages.
//! - [`cache`]: the content-addressed [`ResponseCache`].
//! - [`check`]: `synod agents check`: reach each endpoint and explain what is wrong.
//!
//! Drive it with [`build_agents`] on a loaded [`AgentsFile`], then [`Agent::call`] on a thread.

pub mod cache;
pub mod check;
pub mod command;
pub mod config;
pub mod http;
pub mod llm;
pub mod prompts;
pub mod reply;
pub mod scripted;
pub mod slots;

pub use cache::ResponseCache;
pub use command::CommandAgent;
pub use config::{AgentConfig, AgentsFile, BackendKind, ConfigError, ScriptedFault};
pub use llm::LlmAgent;
pub use prompts::{Messages, render, role_prompts_digest};
pub use scripted::ScriptedAgent;
use synod_core::pipeline::{Request, Usage};

/// Why an agent produced no reply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AgentError {
    /// The agent failed: a process died, a transport broke, a recorded crash.
    #[error("agent failed: {0}")]
    Failed(String),
    /// The agent has no reply for this request (a transcript without it).
    #[error("no reply recorded for request {0}")]
    NoReply(String),
}

/// A raw reply and what it cost.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentReply {
    /// The text, as the model wrote it.
    pub text: String,
    /// Tokens, as the backend reported them (zero when it does not). For a cached reply, the
    /// usage recorded when it was first paid for.
    pub usage: Usage,
    /// Served from the response cache: nothing was spent on it this time.
    pub cached: bool,
    /// Follow-up turns the agent took to answer (0 or 1: a stub repaired, see
    /// [`prompts::stub_follow_up`]); each is one more model call, its tokens in `usage`.
    pub follow_ups: u32,
}

impl AgentReply {
    /// A reply whose cost is not reported.
    pub fn text(text: impl Into<String>) -> AgentReply {
        AgentReply {
            text: text.into(),
            usage: Usage::default(),
            cached: false,
            follow_ups: 0,
        }
    }
}

/// An agent: something that answers requests with text.
pub trait Agent: Send + Sync {
    /// Its name.
    fn name(&self) -> &str;
    /// Backend and model, for reports (`scripted/recorded`).
    fn describe(&self) -> String;
    /// Answers one request. May block; the runtime enforces the deadline. `heartbeat` is called
    /// whenever the agent shows it is alive (a streamed token, a progress line); each call
    /// restarts the deadline. It is cheap to call often.
    fn call(&self, request: &Request, heartbeat: &dyn Fn()) -> Result<AgentReply, AgentError>;
}

/// Builds the agents of an agents file. LLM and command agents use `cache` when given;
/// scripted agents never do. Fails naming the agent when its key variable is missing.
pub fn build_agents(
    file: &AgentsFile,
    cache: Option<&ResponseCache>,
) -> Result<Vec<Box<dyn Agent>>, ConfigError> {
    file.agents
        .iter()
        .enumerate()
        .map(|(i, a)| {
            build_agent(a, &file.base_dir, cache).map_err(|message| ConfigError::Invalid {
                path: file.base_dir.clone(),
                message: format!("agent {} ({:?}): {message}", i + 1, a.name),
            })
        })
        .collect()
}

/// Builds one agent; `Err` says what is wrong in plain words.
pub fn build_agent(
    a: &AgentConfig,
    base_dir: &std::path::Path,
    cache: Option<&ResponseCache>,
) -> Result<Box<dyn Agent>, String> {
    match a.backend {
        BackendKind::Scripted => Ok(Box::new(ScriptedAgent::from_config(a, base_dir))),
        BackendKind::Openai | BackendKind::Anthropic => {
            Ok(Box::new(LlmAgent::from_config(a, cache)?))
        }
        BackendKind::Command => Ok(Box::new(CommandAgent::from_config(a, base_dir, cache))),
        BackendKind::Sim => Err("backend \"sim\" is only for the simulator".into()),
    }
}

/// Warnings about agents whose mistakes would be correlated: when every agent runs the same
/// model at the same temperature, a fault budget of m assumes independence that is not there.
pub fn independence_warnings(file: &AgentsFile) -> Vec<String> {
    let mut out = Vec::new();
    let llm: Vec<&AgentConfig> = file
        .agents
        .iter()
        .filter(|a| a.backend != BackendKind::Scripted)
        .collect();
    if llm.len() < 2 {
        return out;
    }
    let same = |a: &&AgentConfig| {
        (
            a.backend,
            a.model.clone().unwrap_or_default(),
            a.base_url.clone().unwrap_or_default(),
            a.command.clone(),
            a.temperature.map(f64::to_bits),
        )
    };
    let first = same(&llm[0]);
    if llm.iter().all(|a| same(a) == first) {
        let what = match llm[0].backend {
            BackendKind::Command => format!(
                "command {:?}",
                llm[0].command.clone().unwrap_or_default().join(" ")
            ),
            _ => format!("model {:?}", llm[0].model.clone().unwrap_or_default()),
        };
        let temp = llm[0]
            .temperature
            .map(|t| format!("temperature {t}"))
            .unwrap_or_else(|| "the server's default temperature".into());
        out.push(format!(
            "all {} agents run the same {what} at {temp}: their mistakes are correlated, so the fault budget assumes an independence that is not there; mix models, or at least temperatures",
            llm.len()
        ));
    } else {
        let models: std::collections::BTreeSet<String> = llm
            .iter()
            .map(|a| {
                a.model
                    .clone()
                    .or_else(|| a.command.as_ref().map(|c| c.join(" ")))
                    .unwrap_or_default()
            })
            .collect();
        if models.len() == 1 {
            out.push(format!(
                "all {} agents run the same model {:?} (at different temperatures): their mistakes are likely correlated",
                llm.len(),
                models.iter().next().cloned().unwrap_or_default()
            ));
        }
    }
    out
}
