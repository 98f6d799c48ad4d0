//! What the HTTP backends share: one blocking `ureq` client per agent (ADR 0004), the retry
//! loop (exponential backoff with seeded jitter, `Retry-After` honoured, a budget per call),
//! plain-words errors for statuses that cannot succeed, capped body reading, and a
//! server-sent-events decoder.
//!
//! Liveness: the runtime's deadline (restarted by each heartbeat) decides when an agent is
//! suspected. The backend keeps its own backstop so a call never blocks forever after the
//! runtime has given up: no byte for [`STALL_FACTOR`] × `timeout_ms` ends the call (ureq's
//! per-read timeout), and no call lasts longer than [`CALL_LIMIT_FACTOR`] × `timeout_ms`.
//! The backstop is looser than the deadline on purpose: a late reply still reaches the runtime
//! and restores the agent's trust.

use crate::AgentError;
use crate::reply::REPLY_BYTES_MAX;
use std::io::Read;
use std::time::Duration;
use synod_core::rng::SeededRng;

/// No byte for this many `timeout_ms` ends a call.
pub const STALL_FACTOR: u32 = 4;
/// No call lasts longer than this many `timeout_ms`.
pub const CALL_LIMIT_FACTOR: u32 = 16;
/// First backoff before a retry; doubled each time, jittered to 50–150 %.
pub const BACKOFF_BASE_MS: u64 = 250;
/// Longest backoff, and longest `Retry-After` honoured.
pub const BACKOFF_MAX_MS: u64 = 30_000;
/// Most bytes of a response body read (JSON escaping and SSE framing around a reply).
pub const BODY_BYTES_MAX: usize = 4 * REPLY_BYTES_MAX;
/// Most bytes of an error body quoted in a message.
const ERROR_SNIPPET_CHARS: usize = 300;

/// Settings of one HTTP agent.
#[derive(Clone, Debug)]
pub struct HttpSettings {
    /// The runtime's deadline for this agent.
    pub timeout: Duration,
    /// Retries per call.
    pub retries_max: u32,
}

impl HttpSettings {
    /// No byte for this long ends a call.
    pub fn stall(&self) -> Duration {
        self.timeout * STALL_FACTOR
    }

    /// The client: statuses are answers, not errors; no redirects (a redirect from a model
    /// endpoint is a misconfiguration worth seeing).
    pub fn client(&self) -> ureq::Agent {
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .timeout_connect(Some(self.timeout.min(Duration::from_secs(10))))
            .timeout_per_read(Some(self.stall()))
            .timeout_global(Some(self.timeout * CALL_LIMIT_FACTOR))
            .user_agent(concat!("synod/", env!("CARGO_PKG_VERSION")))
            .build()
            .new_agent()
    }
}

/// The outcome of one attempt.
pub enum Attempt<T> {
    /// Done.
    Done(T),
    /// Worth another try (429, 5xx, a broken connection), after at least `after`.
    Retry {
        /// Why, for the final message when the budget runs out.
        reason: String,
        /// The server's `Retry-After`, if any.
        after: Option<Duration>,
    },
    /// Cannot succeed.
    Fail(AgentError),
}

/// Runs attempts until one is done or fails, or the retry budget is spent. The jitter is
/// seeded by `seed` so a run's timing is reproducible.
pub fn with_retries<T>(
    retries_max: u32,
    seed: &str,
    mut attempt: impl FnMut() -> Attempt<T>,
) -> Result<T, AgentError> {
    let mut rng = SeededRng::derive(seed_of(seed), "agent-retry");
    let mut tries = 0u32;
    loop {
        match attempt() {
            Attempt::Done(t) => return Ok(t),
            Attempt::Fail(e) => return Err(e),
            Attempt::Retry { reason, after } => {
                if tries >= retries_max {
                    return Err(AgentError::Failed(if tries == 0 {
                        reason
                    } else {
                        format!("{reason} (gave up after {} attempts)", tries + 1)
                    }));
                }
                std::thread::sleep(backoff(tries, after, &mut rng));
                tries += 1;
            }
        }
    }
}

fn seed_of(s: &str) -> u64 {
    let h = blake3::hash(s.as_bytes());
    u64::from_le_bytes(h.as_bytes()[..8].try_into().unwrap_or([0; 8]))
}

/// The wait before retry number `tries + 1`: the server's `Retry-After` if it gave one (capped),
/// else `BACKOFF_BASE_MS × 2^tries` jittered to 50–150 %, capped.
pub fn backoff(tries: u32, retry_after: Option<Duration>, rng: &mut SeededRng) -> Duration {
    let cap = Duration::from_millis(BACKOFF_MAX_MS);
    if let Some(d) = retry_after {
        return d.min(cap);
    }
    let base = BACKOFF_BASE_MS.saturating_mul(1u64 << tries.min(16));
    let jittered = base / 2 + rng.below(base.max(1));
    Duration::from_millis(jittered).min(cap)
}

/// `Retry-After` in seconds (the HTTP-date form is not honoured: backoff applies).
pub fn retry_after(resp: &ureq::http::Response<ureq::Body>) -> Option<Duration> {
    let v = resp.headers().get("retry-after")?.to_str().ok()?.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    v.parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(|s| Duration::from_millis((s * 1000.0) as u64))
}

/// What a transport error means: a broken or refused connection is worth a retry; a bad URL
/// or a timeout (the runtime has suspected the agent by then) is not.
pub fn transport_error<T>(e: ureq::Error, url: &str, settings: &HttpSettings) -> Attempt<T> {
    match e {
        ureq::Error::Timeout(what) => Attempt::Fail(AgentError::Failed(format!(
            "no answer from {url}: timed out ({what}) after the backstop of {} ms",
            settings.stall().as_millis()
        ))),
        ureq::Error::BadUri(u) => Attempt::Fail(AgentError::Failed(format!(
            "the URL {u:?} is not valid: check base_url"
        ))),
        ureq::Error::HostNotFound => Attempt::Fail(AgentError::Failed(format!(
            "the host of {url} was not found: check base_url"
        ))),
        ureq::Error::Io(io)
            if io.kind() == std::io::ErrorKind::TimedOut
                || io.kind() == std::io::ErrorKind::WouldBlock =>
        {
            Attempt::Fail(AgentError::Failed(format!(
                "no answer from {url}: nothing arrived for {} ms",
                settings.stall().as_millis()
            )))
        }
        ureq::Error::ConnectionFailed | ureq::Error::Io(_) | ureq::Error::Protocol(_) => {
            Attempt::Retry {
                reason: format!(
                    "cannot reach {url} ({e}): is the server running, and is base_url right?"
                ),
                after: None,
            }
        }
        other => Attempt::Fail(AgentError::Failed(format!(
            "request to {url} failed: {other}"
        ))),
    }
}

/// Maps a non-200 status to a retry or a plain-words failure.
pub fn status_error<T>(
    resp: ureq::http::Response<ureq::Body>,
    url: &str,
    model: &str,
    key_env: Option<&str>,
) -> Attempt<T> {
    let status = resp.status().as_u16();
    let after = retry_after(&resp);
    let snippet = error_snippet(resp);
    let detail = if snippet.is_empty() {
        String::new()
    } else {
        format!(": {snippet}")
    };
    match status {
        408 | 409 | 425 | 429 | 500..=599 => Attempt::Retry {
            reason: format!("{url} answered {status}{detail}"),
            after,
        },
        401 | 403 => Attempt::Fail(AgentError::Failed(match key_env {
            Some(var) => format!("the key in ${var} was refused by {url} ({status}){detail}"),
            None => format!(
                "{url} wants a key ({status}): set api_key_env to the name of the variable holding it{detail}"
            ),
        })),
        404 => Attempt::Fail(AgentError::Failed(format!(
            "model {model:?} not found at {url} (404): check the model name and base_url{detail}"
        ))),
        400 | 413 | 422 => Attempt::Fail(AgentError::Failed(format!(
            "{url} refused the request ({status}){detail}"
        ))),
        _ => Attempt::Fail(AgentError::Failed(format!(
            "{url} answered {status}{detail}"
        ))),
    }
}

fn error_snippet(resp: ureq::http::Response<ureq::Body>) -> String {
    let mut buf = Vec::new();
    let _ = resp
        .into_body()
        .into_reader()
        .take(4096)
        .read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf);
    // Prefer the provider's own message ({"error": {"message": ...}} or {"error": "..."}).
    let msg = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| {
            let e = v.get("error")?;
            e.get("message")
                .and_then(|m| m.as_str())
                .or_else(|| e.as_str())
                .map(str::to_string)
        })
        .unwrap_or_else(|| text.into_owned());
    msg.chars()
        .filter(|c| !c.is_control())
        .take(ERROR_SNIPPET_CHARS)
        .collect::<String>()
        .trim()
        .to_string()
}

/// Reads a whole body, at most [`BODY_BYTES_MAX`] bytes, as UTF-8.
pub fn read_body(resp: ureq::http::Response<ureq::Body>, url: &str) -> Attempt<String> {
    let mut buf = Vec::new();
    let r = resp
        .into_body()
        .into_reader()
        .take(BODY_BYTES_MAX as u64 + 1)
        .read_to_end(&mut buf);
    if let Err(e) = r {
        return io_error(e, url);
    }
    if buf.len() > BODY_BYTES_MAX {
        return Attempt::Fail(AgentError::Failed(format!(
            "{url} sent more than {BODY_BYTES_MAX} bytes; stopped reading"
        )));
    }
    match String::from_utf8(buf) {
        Ok(s) => Attempt::Done(s),
        Err(e) => Attempt::Fail(not_utf8(url, e.utf8_error().valid_up_to())),
    }
}

/// The error for bytes that are not UTF-8.
pub fn not_utf8(url: &str, at: usize) -> AgentError {
    AgentError::Failed(format!(
        "{url} sent bytes that are not UTF-8 (at byte {at})"
    ))
}

/// An I/O error while reading a body: a stall ends the call, a broken stream is retried.
pub fn io_error<T>(e: std::io::Error, url: &str) -> Attempt<T> {
    let text = e.to_string();
    if matches!(
        e.kind(),
        std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock
    ) || text.contains("timeout")
        || text.contains("Timeout")
    {
        Attempt::Fail(AgentError::Failed(format!("{url} stopped sending: {text}")))
    } else {
        Attempt::Retry {
            reason: format!("the stream from {url} broke: {text}"),
            after: None,
        }
    }
}

/// One server-sent event.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` field (empty when absent).
    pub event: String,
    /// The `data:` lines, joined by newlines.
    pub data: String,
}

/// Reads server-sent events from a body, calling `on_event` for each (and `heartbeat` for each
/// chunk of bytes). `on_event` returns `Ok(true)` to stop (the stream's end marker). Returns
/// `Ok(true)` when stopped by the marker, `Ok(false)` at the end of the body.
pub fn read_sse(
    resp: ureq::http::Response<ureq::Body>,
    url: &str,
    heartbeat: &dyn Fn(),
    mut on_event: impl FnMut(SseEvent) -> Result<bool, Attempt<()>>,
) -> Result<bool, Attempt<()>> {
    let mut reader = resp.into_body().into_reader();
    let mut pending: Vec<u8> = Vec::new();
    let mut event = SseEvent::default();
    let mut total = 0usize;
    let mut chunk = vec![0u8; 16 * 1024];
    loop {
        let n = match reader.read(&mut chunk) {
            Ok(0) => return Ok(false),
            Ok(n) => n,
            Err(e) => return Err(io_error(e, url)),
        };
        heartbeat();
        total += n;
        if total > BODY_BYTES_MAX {
            return Err(Attempt::Fail(AgentError::Failed(format!(
                "{url} streamed more than {BODY_BYTES_MAX} bytes; stopped reading"
            ))));
        }
        pending.extend_from_slice(&chunk[..n]);
        while let Some(pos) = pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = pending.drain(..=pos).collect();
            let line = match std::str::from_utf8(&line) {
                Ok(l) => l.trim_end_matches(['\n', '\r']).to_string(),
                Err(e) => {
                    return Err(Attempt::Fail(not_utf8(
                        url,
                        total - pending.len() - line.len() + e.valid_up_to(),
                    )));
                }
            };
            if line.is_empty() {
                if (!event.data.is_empty() || !event.event.is_empty())
                    && on_event(std::mem::take(&mut event))?
                {
                    return Ok(true);
                }
                continue;
            }
            if line.starts_with(':') {
                continue;
            }
            let (field, value) = match line.split_once(':') {
                Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
                None => (line.as_str(), ""),
            };
            match field {
                "event" => event.event = value.to_string(),
                "data" => {
                    if !event.data.is_empty() {
                        event.data.push('\n');
                    }
                    event.data.push_str(value);
                }
                _ => {}
            }
        }
        if pending.len() > BODY_BYTES_MAX {
            return Err(Attempt::Fail(AgentError::Failed(format!(
                "{url} sent a line longer than {BODY_BYTES_MAX} bytes"
            ))));
        }
    }
}

/// Appends streamed text, refusing to grow past the reply cap.
pub fn push_capped(text: &mut String, piece: &str, url: &str) -> Result<(), Attempt<()>> {
    if text.len() + piece.len() > REPLY_BYTES_MAX {
        return Err(Attempt::Fail(AgentError::Failed(format!(
            "the reply from {url} grew past {REPLY_BYTES_MAX} bytes; stopped reading"
        ))));
    }
    text.push_str(piece);
    Ok(())
}

/// Parses a JSON document from a server, naming the server when it is not JSON.
pub fn parse_json(text: &str, url: &str, what: &str) -> Result<serde_json::Value, AgentError> {
    serde_json::from_str(text).map_err(|e| {
        AgentError::Failed(format!(
            "{url} sent {what} that is not JSON ({e}): {}",
            text.chars().take(120).collect::<String>()
        ))
    })
}

/// Joins a base URL and a path without doubling slashes.
pub fn join(base: &str, path: &str) -> String {
    format!(
        "{}/{}",
        base.trim_end_matches('/'),
        path.trim_start_matches('/')
    )
}

/// Reads the API key from the variable named in the file. `Err` names the variable.
pub fn read_key(var: &str) -> Result<String, String> {
    match std::env::var(var) {
        Ok(k) if !k.trim().is_empty() => Ok(k.trim().to_string()),
        Ok(_) => Err(format!("the key variable ${var} is empty")),
        Err(std::env::VarError::NotPresent) => Err(format!(
            "the key variable ${var} is not set (api_key_env names the variable that holds the key)"
        )),
        Err(std::env::VarError::NotUnicode(_)) => {
            Err(format!("the key variable ${var} is not valid text"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_and_honours_retry_after() {
        let mut rng = SeededRng::derive(1, "t");
        for tries in 0..5u32 {
            let d = backoff(tries, None, &mut rng).as_millis() as u64;
            let base = BACKOFF_BASE_MS << tries;
            assert!(d >= base / 2 && d < base / 2 + base, "{tries}: {d}");
        }
        assert_eq!(
            backoff(0, Some(Duration::from_secs(2)), &mut rng),
            Duration::from_secs(2)
        );
        assert_eq!(
            backoff(0, Some(Duration::from_secs(3600)), &mut rng),
            Duration::from_millis(BACKOFF_MAX_MS)
        );
        assert!(backoff(40, None, &mut rng) <= Duration::from_millis(BACKOFF_MAX_MS));
        // Seeded: the same seed gives the same waits.
        let a: Vec<_> = (0..3)
            .map(|t| backoff(t, None, &mut SeededRng::derive(7, "x")))
            .collect();
        let b: Vec<_> = (0..3)
            .map(|t| backoff(t, None, &mut SeededRng::derive(7, "x")))
            .collect();
        assert_eq!(a, b);
    }

    #[test]
    fn retries_stop_at_the_budget() {
        let mut n = 0;
        let r: Result<(), _> = with_retries(2, "s", || {
            n += 1;
            Attempt::Retry {
                reason: "busy".into(),
                after: Some(Duration::ZERO),
            }
        });
        assert_eq!(n, 3);
        assert!(
            r.unwrap_err()
                .to_string()
                .contains("gave up after 3 attempts")
        );
    }

    #[test]
    fn joins_urls() {
        assert_eq!(
            join("http://h/v1/", "/chat/completions"),
            "http://h/v1/chat/completions"
        );
        assert!(
            read_key("SYNOD_TEST_SURELY_UNSET_VAR")
                .unwrap_err()
                .contains("not set")
        );
    }
}
