//! The `command` backend: any program that speaks JSON lines on stdio can be an agent (an
//! existing coding CLI behind a small wrapper, a local model runner, a test double).
//!
//! Protocol (docs/AGENTS.md has an example script):
//! - synod starts the program (in the agents file's directory, in its own process group) and
//!   writes one JSON line on its stdin, then closes stdin:
//!   `{"protocol": "synod-command-v1", "agent": ..., "role": "interpret"|"implement",
//!     "key": "interpret.r1", "system": ..., "user": ..., "request": {...},
//!     "max_tokens": N, "temperature": T|null}`
//! - the program writes JSON lines on stdout: `{"progress": "..."}` (any number: each is a
//!   heartbeat), then `{"reply": "...", "usage": {"input_tokens": N, "output_tokens": N}}`
//!   (usage optional) or `{"error": "..."}`. Other lines are ignored; a line is at most 1 MiB.
//! - stderr is kept (the last 2 KiB) for the failure message.
//!
//! A program that stays silent for [`crate::http::STALL_FACTOR`] × `timeout_ms`, or runs past
//! [`crate::http::CALL_LIMIT_FACTOR`] × `timeout_ms`, is killed (its whole process group).

use crate::cache::{CacheKey, ResponseCache};
use crate::config::{AgentConfig, DEFAULT_MAX_TOKENS, DEFAULT_TIMEOUT_MS};
use crate::http::{CALL_LIMIT_FACTOR, STALL_FACTOR};
use crate::prompts::{render, role_prompts_digest};
use crate::reply::REPLY_BYTES_MAX;
use crate::{Agent, AgentError, AgentReply};
use serde_json::{Value as Json, json};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use synod_core::pipeline::{Request, Role, Usage};

/// Longest stdout line read.
pub const LINE_BYTES_MAX: usize = 1024 * 1024 + 64 * 1024;
/// Most stdout lines read in one call.
pub const LINES_MAX: usize = 100_000;
/// Bytes of stderr kept for messages.
const STDERR_KEPT: usize = 2048;

/// An agent answered by a local program.
pub struct CommandAgent {
    name: String,
    argv: Vec<String>,
    cwd: PathBuf,
    temperature: Option<f64>,
    max_tokens: u64,
    timeout: Duration,
    cache: Option<ResponseCache>,
}

impl CommandAgent {
    /// From an `[[agent]]` table of backend `command`.
    pub fn from_config(
        c: &AgentConfig,
        base_dir: &Path,
        cache: Option<&ResponseCache>,
    ) -> CommandAgent {
        CommandAgent {
            name: c.name.clone(),
            argv: c.command.clone().unwrap_or_default(),
            cwd: base_dir.to_path_buf(),
            temperature: c.temperature,
            max_tokens: c.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS),
            timeout: Duration::from_millis(c.timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS)),
            cache: cache.cloned(),
        }
    }

    fn run(&self, request: &Request, heartbeat: &dyn Fn()) -> Result<AgentReply, AgentError> {
        let m = render(request);
        let line = json!({
            "protocol": "synod-command-v1",
            "agent": self.name,
            "role": match request.role { Role::Interpret => "interpret", Role::Implement => "implement", Role::Distinguish => "distinguish" },
            "key": request.key(),
            "system": m.system,
            "user": m.user,
            "request": request,
            "max_tokens": self.max_tokens,
            "temperature": self.temperature,
        });
        let mut child = Command::new(&self.argv[0])
            .args(&self.argv[1..])
            .current_dir(&self.cwd)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .map_err(|e| {
                AgentError::Failed(format!(
                    "cannot start {:?} (in {}): {e}",
                    self.argv[0],
                    self.cwd.display()
                ))
            })?;
        let (stdin, stdout, stderr) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take());
        let mut guard = ChildGuard(child);
        // stdin: write the request on a thread so a program that does not read cannot block us.
        if let Some(mut stdin) = stdin {
            let mut bytes = serde_json::to_vec(&line).unwrap_or_default();
            bytes.push(b'\n');
            std::thread::spawn(move || {
                let _ = stdin.write_all(&bytes);
            });
        }
        let stderr_tail = std::sync::Arc::new(std::sync::Mutex::new(Vec::<u8>::new()));
        if let Some(mut stderr) = stderr {
            let tail = std::sync::Arc::clone(&stderr_tail);
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n) = stderr.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    let mut t = tail.lock().unwrap_or_else(|e| e.into_inner());
                    t.extend_from_slice(&buf[..n]);
                    let excess = t.len().saturating_sub(STDERR_KEPT);
                    t.drain(..excess);
                }
            });
        }
        let (tx, rx) = mpsc::sync_channel::<Result<Vec<u8>, String>>(64);
        if let Some(stdout) = stdout {
            std::thread::spawn(move || {
                let mut r = BufReader::new(stdout);
                for _ in 0..LINES_MAX {
                    let mut line = Vec::new();
                    match (&mut r)
                        .take(LINE_BYTES_MAX as u64 + 1)
                        .read_until(b'\n', &mut line)
                    {
                        Ok(0) => return,
                        Ok(_) if line.len() > LINE_BYTES_MAX => {
                            let _ = tx.send(Err(format!(
                                "a stdout line is longer than {LINE_BYTES_MAX} bytes"
                            )));
                            return;
                        }
                        Ok(_) => {
                            if tx.send(Ok(line)).is_err() {
                                return;
                            }
                        }
                        Err(e) => {
                            let _ = tx.send(Err(format!("cannot read its stdout: {e}")));
                            return;
                        }
                    }
                }
                let _ = tx.send(Err(format!("more than {LINES_MAX} stdout lines")));
            });
        }
        let stall = self.timeout * STALL_FACTOR;
        let limit = Instant::now() + self.timeout * CALL_LIMIT_FACTOR;
        let who = format!("the command {:?}", self.argv.join(" "));
        loop {
            let now = Instant::now();
            if now >= limit {
                return Err(AgentError::Failed(format!(
                    "{who} ran past {} ms and was killed",
                    (self.timeout * CALL_LIMIT_FACTOR).as_millis()
                )));
            }
            let line = match rx.recv_timeout(stall.min(limit - now)) {
                Ok(Ok(line)) => line,
                Ok(Err(e)) => return Err(AgentError::Failed(format!("{who}: {e}"))),
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if Instant::now() >= limit {
                        continue;
                    }
                    return Err(AgentError::Failed(format!(
                        "{who} said nothing for {} ms and was killed",
                        stall.as_millis()
                    )));
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    // stdout closed without a reply: report how it ended.
                    let status = guard.wait_briefly();
                    let tail = stderr_tail.lock().map(|t| t.clone()).unwrap_or_default();
                    let tail = String::from_utf8_lossy(&tail);
                    let tail = tail.trim();
                    return Err(AgentError::Failed(format!(
                        "{who} ended ({}) without a reply{}",
                        status,
                        if tail.is_empty() {
                            String::new()
                        } else {
                            format!("; its stderr ends: {tail}")
                        }
                    )));
                }
            };
            let text = std::str::from_utf8(&line).map_err(|e| {
                AgentError::Failed(format!(
                    "{who} wrote bytes that are not UTF-8 (at byte {} of a line)",
                    e.valid_up_to()
                ))
            })?;
            let Ok(v) = serde_json::from_str::<Json>(text.trim()) else {
                continue; // not a protocol line: ignored
            };
            if v.get("progress").is_some() {
                heartbeat();
                continue;
            }
            if let Some(e) = v.get("error") {
                let msg = e
                    .as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| e.to_string());
                return Err(AgentError::Failed(format!(
                    "{who} reported an error: {}",
                    msg.chars().take(300).collect::<String>()
                )));
            }
            if let Some(r) = v.get("reply") {
                let Some(text) = r.as_str() else {
                    return Err(AgentError::Failed(format!(
                        "{who}: `reply` must be a string"
                    )));
                };
                if text.len() > REPLY_BYTES_MAX {
                    return Err(AgentError::Failed(format!(
                        "{who} replied with {} bytes; at most {REPLY_BYTES_MAX} are accepted",
                        text.len()
                    )));
                }
                let u = |k: &str| {
                    v.get("usage")
                        .and_then(|u| u.get(k))
                        .and_then(Json::as_u64)
                        .unwrap_or(0)
                };
                return Ok(AgentReply {
                    follow_ups: 0,
                    text: text.to_string(),
                    usage: Usage {
                        input_tokens: u("input_tokens"),
                        output_tokens: u("output_tokens"),
                    },
                    cached: false,
                });
            }
        }
    }
}

/// Kills the child's process group when the call ends, however it ends.
struct ChildGuard(Child);

impl ChildGuard {
    fn wait_briefly(&mut self) -> String {
        let until = Instant::now() + Duration::from_millis(500);
        while Instant::now() < until {
            if let Ok(Some(s)) = self.0.try_wait() {
                return describe_status(s);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        "still running".into()
    }
}

fn describe_status(s: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (s.code(), s.signal()) {
        (Some(c), _) => format!("exit status {c}"),
        (None, Some(sig)) => format!("killed by signal {sig}"),
        _ => "unknown status".into(),
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            // The whole group: a wrapper's own children die with it.
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", self.0.id())])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            let _ = self.0.kill();
        }
        let _ = self.0.wait();
    }
}

impl Agent for CommandAgent {
    fn name(&self) -> &str {
        &self.name
    }

    fn describe(&self) -> String {
        format!("command/{}", self.argv.join(" "))
    }

    fn call(&self, request: &Request, heartbeat: &dyn Fn()) -> Result<AgentReply, AgentError> {
        let m = render(request);
        let digest = role_prompts_digest();
        let model = self.argv.join("\u{1f}");
        let key = CacheKey {
            backend: "command",
            model: &model,
            base_url: "",
            temperature: self.temperature,
            max_tokens: self.max_tokens,
            messages: &m,
            role_prompts_digest: &digest,
            sample: request.sample,
            seed: None,
            schema: None,
            cut: None,
        };
        if let Some(cache) = &self.cache
            && let Some(hit) = cache.lookup(&key)
        {
            return Ok(hit);
        }
        let reply = self.run(request, heartbeat)?;
        if let Some(cache) = &self.cache {
            let _ = cache.store(&key, &reply);
        }
        Ok(reply)
    }
}
