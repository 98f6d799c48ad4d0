//! The scripted backend: replays replies recorded the way a model writes them, one file per
//! request, so the real reply parser runs on them.
//!
//! A transcript directory holds `<request key>.md` files: `interpret.md`, `interpret.r1.md`
//! (after the first clarification), `implement.<component>.md`. A request without its own file
//! falls back to the same request of an earlier clarification round, then of sample 0: an agent
//! that does not change its mind keeps its reply.

use crate::config::{AgentConfig, ScriptedFault};
use crate::{Agent, AgentError, AgentReply};
use std::path::{Path, PathBuf};
use std::time::Duration;
use synod_core::pipeline::{Request, Role};

/// When set, every scripted call appends `<agent> <request key>` to the file it names, so
/// tests can count the requests a build sends (for example across a kill and a resume).
pub const CALL_LOG_ENV: &str = "SYNOD_SCRIPTED_CALL_LOG";

fn record_call(path: &Path, agent: &str, key: &str) {
    use std::io::Write as _;
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        let _ = writeln!(f, "{agent} {key}");
    }
}

/// How long a stalled scripted agent sleeps: far past any sensible deadline.
const STALL: Duration = Duration::from_secs(3600);

/// An agent that replays a recorded transcript.
#[derive(Debug, Clone)]
pub struct ScriptedAgent {
    name: String,
    model: String,
    dir: PathBuf,
    fault: Option<ScriptedFault>,
    delay: Duration,
}

impl ScriptedAgent {
    /// A scripted agent reading replies from `dir`.
    pub fn new(name: &str, dir: impl Into<PathBuf>) -> ScriptedAgent {
        ScriptedAgent {
            name: name.into(),
            model: "recorded".into(),
            dir: dir.into(),
            fault: None,
            delay: Duration::ZERO,
        }
    }

    /// From an `[[agent]]` table; the transcript path is relative to `base_dir`.
    pub fn from_config(c: &AgentConfig, base_dir: &Path) -> ScriptedAgent {
        ScriptedAgent {
            name: c.name.clone(),
            model: c.model.clone().unwrap_or_else(|| "recorded".into()),
            dir: base_dir.join(c.transcript.clone().unwrap_or_default()),
            fault: c.fault,
            delay: Duration::from_millis(c.delay_ms.unwrap_or(0)),
        }
    }

    /// Plays this fault instead of replying.
    pub fn with_fault(mut self, fault: ScriptedFault) -> ScriptedAgent {
        self.fault = Some(fault);
        self
    }

    /// The files tried for a request, most specific first.
    pub fn candidates(&self, request: &Request) -> Vec<PathBuf> {
        let base = match request.role {
            Role::Interpret => "interpret".to_string(),
            Role::Distinguish => "distinguish".to_string(),
            Role::Implement => format!(
                "implement.{}",
                request.component.as_deref().unwrap_or("unknown")
            ),
        };
        let mut keys = Vec::new();
        for round in (0..=request.round).rev() {
            let r = if round > 0 {
                format!(".r{round}")
            } else {
                String::new()
            };
            if request.sample > 0 {
                keys.push(format!("{base}{r}.s{}", request.sample));
            }
            keys.push(format!("{base}{r}"));
        }
        keys.into_iter()
            .map(|k| self.dir.join(format!("{k}.md")))
            .collect()
    }
}

impl Agent for ScriptedAgent {
    fn name(&self) -> &str {
        &self.name
    }

    fn describe(&self) -> String {
        format!("scripted/{}", self.model)
    }

    fn call(&self, request: &Request, _heartbeat: &dyn Fn()) -> Result<AgentReply, AgentError> {
        if let Some(path) = std::env::var_os(CALL_LOG_ENV) {
            record_call(Path::new(&path), &self.name, &request.key());
        }
        if !self.delay.is_zero() {
            std::thread::sleep(self.delay);
        }
        match self.fault {
            Some(ScriptedFault::Stall) => {
                std::thread::sleep(STALL);
                return Err(AgentError::Failed("stalled".into()));
            }
            Some(ScriptedFault::Crash) => {
                return Err(AgentError::Failed(
                    "scripted crash: the agent process died".into(),
                ));
            }
            Some(ScriptedFault::Garbage) => {
                return Ok(AgentReply::text(
                    "\u{1b}[2J garbage \u{0} ]]}{ lorem ipsum ```",
                ));
            }
            None => {}
        }
        for path in self.candidates(request) {
            // A recorded reply is no longer than a reply may be; a transcript that is a FIFO
            // or /dev/zero is refused, not read until memory runs out.
            match synod_store::read_capped(&path, crate::reply::REPLY_BYTES_MAX as u64) {
                Ok(bytes) => {
                    return String::from_utf8(bytes).map(AgentReply::text).map_err(|_| {
                        AgentError::Failed(format!("{} is not UTF-8", path.display()))
                    });
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => {
                    return Err(AgentError::Failed(format!(
                        "cannot read {}: {e}",
                        path.display()
                    )));
                }
            }
        }
        Err(AgentError::NoReply(request.key()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use synod_core::Prompt;

    fn req(role: Role, round: u32, sample: u32, component: Option<&str>) -> Request {
        Request {
            role,
            prompt: Prompt::new("p"),
            round,
            sample,
            spec: None,
            component: component.map(str::to_string),
            programs: Vec::new(),
            repair: None,
        }
    }

    #[test]
    fn falls_back_to_earlier_rounds() {
        let a = ScriptedAgent::new("a", "/t");
        let names: Vec<String> = a
            .candidates(&req(Role::Interpret, 2, 1, None))
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            [
                "interpret.r2.s1.md",
                "interpret.r2.md",
                "interpret.r1.s1.md",
                "interpret.r1.md",
                "interpret.s1.md",
                "interpret.md"
            ]
        );
        let names = a.candidates(&req(Role::Implement, 0, 0, Some("lexer")));
        assert!(names[0].ends_with("implement.lexer.md"));
    }

    #[test]
    fn missing_transcript_is_no_reply_and_faults_play() {
        let a = ScriptedAgent::new("a", "/nonexistent-synod-dir");
        assert!(matches!(
            a.call(&req(Role::Interpret, 0, 0, None), &|| {}),
            Err(AgentError::NoReply(_))
        ));
        let c = a.clone().with_fault(ScriptedFault::Crash);
        assert!(matches!(
            c.call(&req(Role::Interpret, 0, 0, None), &|| {}),
            Err(AgentError::Failed(_))
        ));
        let g = a.with_fault(ScriptedFault::Garbage);
        let text = g
            .call(&req(Role::Interpret, 0, 0, None), &|| {})
            .unwrap()
            .text;
        assert!(crate::reply::parse_interpretation(&text).is_err());
    }
}
