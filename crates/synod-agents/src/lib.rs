//! synod-agents: the agents that answer synod's requests.
//!
//! - [`Agent`]: the trait every backend implements: take a [`Request`], return the raw reply
//!   text (or a failure). The runtime calls it on its own thread, with a deadline it enforces.
//! - [`config`]: the agents file (TOML).
//! - [`reply`]: parsing raw replies into the core's typed [`synod_core::pipeline::Reply`].
//! - [`scripted`]: the offline backend that replays recorded replies, and can play a crash, a
//!   stall or garbage.

pub mod config;
pub mod reply;
pub mod scripted;

pub use config::{AgentConfig, AgentsFile, BackendKind, ConfigError, ScriptedFault};
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
    /// Tokens, as the backend reported them (zero when it does not).
    pub usage: Usage,
}

impl AgentReply {
    /// A reply whose cost is not reported.
    pub fn text(text: impl Into<String>) -> AgentReply {
        AgentReply {
            text: text.into(),
            usage: Usage::default(),
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

/// Builds the agents of an agents file.
pub fn build_agents(file: &AgentsFile) -> Result<Vec<Box<dyn Agent>>, ConfigError> {
    file.agents
        .iter()
        .map(|a| match a.backend {
            BackendKind::Scripted => {
                Ok(Box::new(ScriptedAgent::from_config(a, &file.base_dir)) as Box<dyn Agent>)
            }
            other => Err(ConfigError::Invalid {
                path: file.base_dir.clone(),
                message: format!("backend {:?} is not available yet", other.as_str()),
            }),
        })
        .collect()
}
