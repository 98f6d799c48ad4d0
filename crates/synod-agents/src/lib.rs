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
use synod_core::pipeline::Request;

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

/// An agent: something that answers requests with text.
pub trait Agent: Send + Sync {
    /// Its name.
    fn name(&self) -> &str;
    /// Backend and model, for reports (`scripted/recorded`).
    fn describe(&self) -> String;
    /// Answers one request. May block; the runtime enforces the deadline.
    fn call(&self, request: &Request) -> Result<String, AgentError>;
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
