//! The HTTP LLM backends: OpenAI chat completions (vLLM, Ollama, llama.cpp server, LM Studio,
//! hosted) and Anthropic Messages, streaming or not.
//!
//! Streaming is the default: each chunk of bytes is a heartbeat, so a model that is slow but
//! alive keeps its deadline, and a stalled stream is the runtime's deadline (and, much later,
//! this backend's own backstop, see [`crate::http`]).

use crate::cache::{CacheKey, ResponseCache};
use crate::config::{
    ANTHROPIC_BASE_URL, AgentConfig, BackendKind, DEFAULT_MAX_TOKENS, DEFAULT_RETRIES_MAX,
    DEFAULT_TIMEOUT_MS, OPENAI_BASE_URL,
};
use crate::http::{self, Attempt, HttpSettings};
use crate::prompts::{Messages, render, role_prompts_digest};
use crate::{Agent, AgentError, AgentReply};
use serde_json::{Value as Json, json};
use std::time::Duration;
use synod_core::pipeline::{Request, Role, Usage};

/// Which wire protocol an [`LlmAgent`] speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// `POST {base_url}/chat/completions`, `Authorization: Bearer`.
    OpenAi,
    /// `POST {base_url}/v1/messages`, `x-api-key`, `anthropic-version: 2023-06-01`.
    Anthropic,
}

/// The Anthropic API version sent.
pub const ANTHROPIC_VERSION: &str = "2023-06-01";

/// An agent answered by a model behind an HTTP endpoint.
pub struct LlmAgent {
    name: String,
    protocol: Protocol,
    model: String,
    base_url: String,
    key_env: Option<String>,
    key: Option<String>,
    temperature: Option<f64>,
    max_tokens: u64,
    stream: bool,
    settings: HttpSettings,
    client: ureq::Agent,
    cache: Option<ResponseCache>,
    /// The endpoint's parallel slots, when the agents file names them.
    slots: Option<std::sync::Arc<crate::slots::Endpoint>>,
    /// Constrain the replies that benefit (distinguish: a list of calls) to a JSON schema
    /// (`structured_output`; OpenAI protocol only). `synod agents check` says whether the
    /// server honours it.
    structured: bool,
    /// Ask llama.cpp for timings in every streamed chunk (`timings_per_token`), so a cut reply
    /// still counts its input tokens.
    timings: bool,
}

/// The schema a distinguish reply is constrained to with `structured_output = true`:
/// `{"calls": ["f(1, 2)", ...]}`, at most 8 calls written as Python.
pub fn calls_schema() -> Json {
    json!({
        "type": "json_schema",
        "json_schema": {
            "name": CALLS_SCHEMA,
            "strict": true,
            "schema": {
                "type": "object",
                "properties": {
                    "calls": {"type": "array", "items": {"type": "string"}, "maxItems": 8}
                },
                "required": ["calls"],
                "additionalProperties": false
            }
        }
    })
}

/// The name of [`calls_schema`] (in the cache key of constrained replies).
pub const CALLS_SCHEMA: &str = "calls";

/// What one exchange with the server gave.
#[derive(Debug, Clone)]
pub struct Exchange {
    /// The reply.
    pub reply: AgentReply,
    /// The model the server says answered (when it says).
    pub served_model: Option<String>,
    /// The reply carried llama.cpp's `timings` (its server sends them with the last chunk):
    /// `agents check` then suggests `timings_per_token`.
    pub llama_timings: bool,
}

impl LlmAgent {
    /// From an `[[agent]]` table of backend `openai` or `anthropic`. Fails when the key
    /// variable is named but not set.
    pub fn from_config(c: &AgentConfig, cache: Option<&ResponseCache>) -> Result<LlmAgent, String> {
        let protocol = match c.backend {
            BackendKind::Openai => Protocol::OpenAi,
            BackendKind::Anthropic => Protocol::Anthropic,
            other => {
                return Err(format!(
                    "backend {:?} is not an HTTP backend",
                    other.as_str()
                ));
            }
        };
        let key = match &c.api_key_env {
            Some(var) => Some(http::read_key(var)?),
            None => None,
        };
        let base_url = c.base_url.clone().unwrap_or_else(|| {
            match protocol {
                Protocol::OpenAi => OPENAI_BASE_URL,
                Protocol::Anthropic => ANTHROPIC_BASE_URL,
            }
            .to_string()
        });
        let base_url_for_slots = base_url.clone();
        let settings = HttpSettings {
            timeout: Duration::from_millis(c.timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS)),
            retries_max: c.retries_max.unwrap_or(DEFAULT_RETRIES_MAX),
        };
        Ok(LlmAgent {
            name: c.name.clone(),
            protocol,
            model: c.model.clone().unwrap_or_default(),
            base_url,
            key_env: c.api_key_env.clone(),
            key,
            temperature: c.temperature,
            max_tokens: c.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS),
            stream: c.stream.unwrap_or(true),
            client: settings.client(),
            settings,
            cache: cache.cloned(),
            slots: c
                .slots
                .map(|n| crate::slots::Endpoint::shared(&base_url_for_slots, n as usize)),
            structured: c.structured_output.unwrap_or(false) && protocol == Protocol::OpenAi,
            timings: c.timings_per_token.unwrap_or(false) && protocol == Protocol::OpenAi,
        })
    }

    /// The endpoint asked.
    pub fn url(&self) -> String {
        match self.protocol {
            Protocol::OpenAi => http::join(&self.base_url, "chat/completions"),
            Protocol::Anthropic => {
                if self.base_url.trim_end_matches('/').ends_with("/v1") {
                    http::join(&self.base_url, "messages")
                } else {
                    http::join(&self.base_url, "v1/messages")
                }
            }
        }
    }

    /// The model asked.
    pub fn model(&self) -> &str {
        &self.model
    }

    /// Whether replies are streamed.
    pub fn streams(&self) -> bool {
        self.stream
    }

    fn body(&self, m: &Messages, max_tokens: u64, stream: bool, seed: u32) -> Json {
        let mut body = match self.protocol {
            Protocol::OpenAi => json!({
                "model": self.model,
                "messages": turns(m, Some(&m.system)),
                "max_tokens": max_tokens,
                "stream": stream,
            }),
            Protocol::Anthropic => json!({
                "model": self.model,
                "system": m.system,
                "messages": turns(m, None),
                "max_tokens": max_tokens,
                "stream": stream,
            }),
        };
        if let Some(t) = self.temperature {
            body["temperature"] = json!(t);
        }
        if stream && self.protocol == Protocol::OpenAi {
            body["stream_options"] = json!({"include_usage": true});
            if self.timings {
                body["timings_per_token"] = json!(true);
            }
        }
        if self.protocol == Protocol::OpenAi {
            // llama.cpp's server, vLLM and OpenAI take a sampling seed: a rerun at a high
            // temperature draws the same reply. Anthropic's API has none.
            body["seed"] = json!(seed);
        }
        body
    }

    /// One exchange with retries: the messages, a token cap, streaming or not.
    pub fn exchange(
        &self,
        m: &Messages,
        max_tokens: u64,
        stream: bool,
        seed: &str,
        heartbeat: &dyn Fn(),
    ) -> Result<Exchange, AgentError> {
        self.exchange_with(m, max_tokens, stream, seed, heartbeat, None)
    }

    /// [`LlmAgent::exchange`], the reply constrained by `response_format` when given (OpenAI
    /// protocol: a JSON schema, which llama.cpp's server, vLLM and OpenAI honour).
    pub fn exchange_with(
        &self,
        m: &Messages,
        max_tokens: u64,
        stream: bool,
        seed: &str,
        heartbeat: &dyn Fn(),
        response_format: Option<&Json>,
    ) -> Result<Exchange, AgentError> {
        let url = self.url();
        let mut body = self.body(m, max_tokens, stream, sampling_seed(seed));
        if let (Some(f), Protocol::OpenAi) = (response_format, self.protocol) {
            body["response_format"] = f.clone();
        }
        let body = serde_json::to_vec(&body)
            .map_err(|e| AgentError::Failed(format!("cannot encode the request: {e}")))?;
        http::with_retries(self.settings.retries_max, seed, || {
            let mut req = self
                .client
                .post(&url)
                .header("content-type", "application/json");
            req = match (self.protocol, &self.key) {
                (Protocol::OpenAi, Some(k)) => req.header("authorization", &format!("Bearer {k}")),
                (Protocol::Anthropic, Some(k)) => req.header("x-api-key", k),
                (_, None) => req,
            };
            if self.protocol == Protocol::Anthropic {
                req = req.header("anthropic-version", ANTHROPIC_VERSION);
            }
            if stream {
                req = req.header("accept", "text/event-stream");
            }
            let resp = match req.send(&body[..]) {
                Ok(r) => r,
                Err(e) => return http::transport_error(e, &url, &self.settings),
            };
            if resp.status().as_u16() != 200 {
                return http::status_error(resp, &url, &self.model, self.key_env.as_deref());
            }
            heartbeat();
            let streamed = resp
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.starts_with("text/event-stream"));
            let result = match (self.protocol, streamed) {
                (Protocol::OpenAi, true) => openai_stream(resp, &url, heartbeat),
                (Protocol::Anthropic, true) => anthropic_stream(resp, &url, heartbeat),
                (protocol, false) => match http::read_body(resp, &url) {
                    Attempt::Done(text) => match protocol {
                        Protocol::OpenAi => openai_whole(&text, &url),
                        Protocol::Anthropic => anthropic_whole(&text, &url),
                    },
                    Attempt::Retry { reason, after } => Err(Attempt::Retry { reason, after }),
                    Attempt::Fail(e) => Err(Attempt::Fail(e)),
                },
            };
            match result {
                Ok(x) => Attempt::Done(x),
                Err(Attempt::Done(())) => Attempt::Fail(AgentError::Failed(format!(
                    "{url}: the exchange ended without a reply"
                ))),
                Err(Attempt::Retry { reason, after }) => Attempt::Retry { reason, after },
                Err(Attempt::Fail(e)) => Attempt::Fail(e),
            }
        })
    }

    fn cache_key<'a>(
        &'a self,
        m: &'a Messages,
        digest: &'a str,
        sample: u32,
        seed: u32,
    ) -> CacheKey<'a> {
        CacheKey {
            backend: match self.protocol {
                Protocol::OpenAi => "openai",
                Protocol::Anthropic => "anthropic",
            },
            model: &self.model,
            base_url: &self.base_url,
            temperature: self.temperature,
            max_tokens: self.max_tokens,
            messages: m,
            role_prompts_digest: digest,
            sample,
            seed: (self.protocol == Protocol::OpenAi).then_some(seed),
            schema: None,
            cut: (self.protocol == Protocol::OpenAi && self.streams()).then_some(EXAMPLES_CUT),
        }
    }
}

impl Agent for LlmAgent {
    fn name(&self) -> &str {
        &self.name
    }

    fn describe(&self) -> String {
        let backend = match self.protocol {
            Protocol::OpenAi => "openai",
            Protocol::Anthropic => "anthropic",
        };
        format!("{backend}/{}", self.model)
    }

    fn call(&self, request: &Request, heartbeat: &dyn Fn()) -> Result<AgentReply, AgentError> {
        let m = render(request);
        let first = self.answer(request, &m, heartbeat)?;
        let Some(user) = crate::prompts::stub_follow_up(request, &first.text) else {
            return Ok(first);
        };
        // A stub repeated (PL-27): asked once more in the same conversation.
        let m = Messages {
            follow_up: Some(crate::prompts::FollowUp {
                reply: first.text,
                user,
            }),
            ..m
        };
        let second = self.answer(request, &m, heartbeat)?;
        let mut usage = first.usage;
        usage.add(second.usage);
        Ok(AgentReply {
            text: second.text,
            usage,
            cached: first.cached && second.cached,
            follow_ups: 1,
        })
    }
}

impl LlmAgent {
    /// One model call for `request` with messages `m`, or its cached reply.
    fn answer(
        &self,
        request: &Request,
        m: &Messages,
        heartbeat: &dyn Fn(),
    ) -> Result<AgentReply, AgentError> {
        let digest = role_prompts_digest();
        // The agent's name is in the seed: two agents of one model and temperature draw
        // different samples, and each draws the same one again on a rerun.
        let seed = format!("{}/{}", self.name, request.key());
        let schema = (self.structured && request.role == Role::Distinguish).then(calls_schema);
        let mut key = self.cache_key(m, &digest, request.sample, sampling_seed(&seed));
        key.schema = schema.as_ref().map(|_| CALLS_SCHEMA);
        if let Some(cache) = &self.cache {
            if let Some(hit) = cache.lookup(&key) {
                return Ok(hit);
            }
            if key.cut == Some(EXAMPLES_CUT) {
                for name in EXAMPLES_CUTS_BEFORE {
                    let mut older = key.clone();
                    older.cut = Some(name);
                    if let Some(hit) = cache.lookup(&older)
                        && !cut_earlier(&hit.text)
                    {
                        // The same reply the newer rule reads: kept under its key from now on.
                        let _ = cache.store(&key, &hit);
                        return Ok(hit);
                    }
                }
            }
        }
        // At most the endpoint's slots in flight; the deadline starts with the slot.
        let slot = self.slots.as_deref().map(|e| e.acquire(heartbeat));
        let beat = || {
            if let Some(e) = &self.slots {
                e.progress();
            }
            heartbeat();
        };
        let x = self.exchange_with(
            m,
            self.max_tokens,
            self.stream,
            &seed,
            &beat,
            schema.as_ref(),
        )?;
        drop(slot);
        if let Some(cache) = &self.cache {
            // A reply that cannot be cached is still a good reply.
            let _ = cache.store(&key, &x.reply);
        }
        Ok(x.reply)
    }
}

/// A request's chat messages: the system message (OpenAI; Anthropic sends it apart), the user
/// message, and a follow-up's two turns.
fn turns(m: &Messages, system: Option<&str>) -> Json {
    let mut out = Vec::new();
    if let Some(system) = system {
        out.push(json!({"role": "system", "content": system}));
    }
    out.push(json!({"role": "user", "content": m.user}));
    if let Some(f) = &m.follow_up {
        out.push(json!({"role": "assistant", "content": f.reply}));
        out.push(json!({"role": "user", "content": f.user}));
    }
    Json::Array(out)
}

/// The sampling seed sent with a request: 31 bits of blake3 over the request's seed text
/// (servers differ on wider seeds).
pub fn sampling_seed(seed: &str) -> u32 {
    let h = blake3::hash(seed.as_bytes());
    u32::from_le_bytes([
        h.as_bytes()[0],
        h.as_bytes()[1],
        h.as_bytes()[2],
        h.as_bytes()[3],
    ]) & 0x7fff_ffff
}

type Parsed = Result<Exchange, Attempt<()>>;

fn fail(e: AgentError) -> Attempt<()> {
    Attempt::Fail(e)
}

fn u64_at(v: &Json, path: &[&str]) -> u64 {
    let mut cur = v;
    for p in path {
        match cur.get(p) {
            Some(next) => cur = next,
            None => return 0,
        }
    }
    cur.as_u64().unwrap_or(0)
}

fn served_model(v: &Json) -> Option<String> {
    v.get("model").and_then(Json::as_str).map(str::to_string)
}

/// An error object inside a 200 body or an event (`{"error": {...}}`): overloads are retried.
fn embedded_error(v: &Json, url: &str) -> Option<Attempt<()>> {
    let e = v.get("error")?;
    if e.is_null() {
        return None;
    }
    let msg = e
        .get("message")
        .and_then(Json::as_str)
        .or_else(|| e.as_str())
        .unwrap_or("unspecified error");
    let kind = e.get("type").and_then(Json::as_str).unwrap_or("");
    let msg: String = msg.chars().filter(|c| !c.is_control()).take(300).collect();
    if kind.contains("overloaded") || kind.contains("rate_limit") || kind == "api_error" {
        Some(Attempt::Retry {
            reason: format!("{url} reported {kind}: {msg}"),
            after: None,
        })
    } else {
        Some(fail(AgentError::Failed(format!(
            "{url} reported an error: {msg}"
        ))))
    }
}

/// The tokens counted under `usage.{input}` and `usage.{output}` (0 where absent).
fn usage_at(v: &Json, input: &str, output: &str) -> Usage {
    Usage {
        input_tokens: u64_at(v, &["usage", input]),
        output_tokens: u64_at(v, &["usage", output]),
    }
}

/// What a reply, whole or streamed, has given so far.
#[derive(Default)]
struct Gathered {
    text: String,
    usage: Usage,
    model: Option<String>,
    /// A `timings` object was seen (llama.cpp).
    timings: bool,
}

impl Gathered {
    fn into_exchange(self) -> Exchange {
        Exchange {
            reply: AgentReply {
                text: self.text,
                usage: self.usage,
                cached: false,
                follow_ups: 0,
            },
            served_model: self.model,
            llama_timings: self.timings,
        }
    }
}

/// Reads a streamed reply: `on_event` folds each event into what is gathered and returns
/// `Ok(true)` at the stream's end marker, named by `marker`. A stream that stops short of the
/// marker is retried.
fn read_stream(
    resp: ureq::http::Response<ureq::Body>,
    url: &str,
    heartbeat: &dyn Fn(),
    marker: &str,
    mut on_event: impl FnMut(http::SseEvent, &mut Gathered) -> Result<bool, Attempt<()>>,
) -> Parsed {
    let mut gathered = Gathered::default();
    let done = http::read_sse(resp, url, heartbeat, |ev| on_event(ev, &mut gathered))?;
    if !done {
        return Err(Attempt::Retry {
            reason: format!("the stream from {url} ended before {marker}"),
            after: None,
        });
    }
    Ok(gathered.into_exchange())
}

fn openai_whole(text: &str, url: &str) -> Parsed {
    let v = http::parse_json(text, url, "a reply").map_err(fail)?;
    if let Some(e) = embedded_error(&v, url) {
        return Err(e);
    }
    let content = v
        .get("choices")
        .and_then(|c| c.get(0))
        .and_then(|c| c.get("message"))
        .ok_or_else(|| {
            fail(AgentError::Failed(format!(
                "{url} sent a reply without choices[0].message"
            )))
        })?
        .get("content")
        .and_then(Json::as_str)
        .unwrap_or("")
        .to_string();
    Ok(Gathered {
        text: content,
        usage: usage_at(&v, "prompt_tokens", "completion_tokens"),
        model: served_model(&v),
        timings: v.get("timings").is_some_and(Json::is_object),
    }
    .into_exchange())
}

/// Lines an open examples block may reach before a streamed reply is cut there. Small models
/// often keep listing examples until the token cap: 22 of 45 real Qwen replies on HumanEvalComm
/// did (1,024 tokens, up to five minutes on 2 cores, for a 300-token program), while every block
/// a reply closed itself had at most 15 lines. A reading's stated examples are evidence only
/// (PL-17) and seed its probes; sixteen are plenty, and the cut would have saved 27 % of those
/// replies' output tokens.
pub const EXAMPLE_LINES_MAX: usize = 16;

/// The stop rule's name in the cache key.
const EXAMPLES_CUT: &str = "examples-16-any-line-400-rep-24";

/// The rules before [`EXAMPLES_CUT`], newest first: `examples-16` cut tagged blocks only,
/// `examples-16-any` any block but not a runaway line, `examples-16-any-line-400` not a
/// repeating block or a degenerate line. A reply cached under one of them is the reply the
/// current rule reads whenever the current rule would not have cut it earlier
/// ([`cut_earlier`]), so it is reused rather than drawn again.
const EXAMPLES_CUTS_BEFORE: [&str; 3] =
    ["examples-16-any-line-400", "examples-16-any", "examples-16"];

/// Whole lines of an open block looked at for repetition: when the last 24 hold at most
/// [`REPEAT_DISTINCT_MAX`] distinct lines, the model is looping (real replies repeat a call and
/// its result, `f('(()())')` then `[2, 3, 1, 3]`, until the cap).
pub const REPEAT_WINDOW: usize = 24;

/// Distinct lines the repetition window may hold before the block counts as looping.
const REPEAT_DISTINCT_MAX: usize = 3;

/// Characters at a line's end that, all one character, make a long line degenerate
/// (`0.5000000…`).
const DEGENERATE_TAIL: usize = 100;

/// How far past the point where the current rule cuts, a reply read under an earlier rule may
/// go and still be the same reply: the stream is looked at after every piece, and a piece is a
/// token or a few.
const PIECE_SLACK: usize = 32;

/// Longest example line a streamed reply may write before it is cut there: real Qwen replies
/// on HumanEvalComm ran to the 1,024-token cap inside one line (`candidate(10.000…` and
/// `truncate_number(1000…`, some 700 digits each, 2 of 167 cached replies).
pub const EXAMPLE_LINE_CHARS_MAX: usize = 400;

/// Is `line` an example call as small models list them: `f(x) == y`, `assert …`, `>>> …`?
fn example_like(line: &str) -> bool {
    let t = line.trim();
    t.starts_with("assert ") || t.starts_with(">>>") || (t.contains("==") && t.contains('('))
}

/// Is `text` running away with examples, so that a streamed reply is cut here? Either its open
/// ` ```examples ` block has more than [`EXAMPLE_LINES_MAX`] lines, or the open fenced block of
/// any kind ends in more than [`EXAMPLE_LINES_MAX`] whole lines in a row that are example
/// calls. Real replies do both: "2. Example calls:" and a bare fence, or an `examples = """`
/// string inside the program block, each listing the same calls until the token cap. A
/// program block ending in seventeen asserts is cut too; its reading keeps what came before.
pub fn runaway_examples(text: &str) -> bool {
    runaway_tagged(text) || runaway_any(text) || repeating(text)
}

/// The open fenced block's last [`REPEAT_WINDOW`] whole lines hold at most
/// [`REPEAT_DISTINCT_MAX`] distinct non-blank lines, and at least half of them are non-blank.
fn repeating(text: &str) -> bool {
    let Some(whole) = open_whole_lines(text) else {
        return false;
    };
    let last: Vec<&str> = whole.split('\n').rev().take(REPEAT_WINDOW).collect();
    if last.len() < REPEAT_WINDOW {
        return false;
    }
    let filled: Vec<&str> = last
        .iter()
        .map(|l| l.trim())
        .filter(|l| !l.is_empty())
        .collect();
    let distinct: std::collections::BTreeSet<&str> = filled.iter().copied().collect();
    filled.len() * 2 >= REPEAT_WINDOW && distinct.len() <= REPEAT_DISTINCT_MAX
}

/// The open ` ```examples ` block has more than [`EXAMPLE_LINES_MAX`] lines.
fn runaway_tagged(text: &str) -> bool {
    text.rfind("```examples").is_some_and(|at| {
        let rest = &text[at + "```examples".len()..];
        !rest.contains("```") && rest.matches('\n').count() > EXAMPLE_LINES_MAX
    })
}

/// The open fenced block ends in more than [`EXAMPLE_LINES_MAX`] whole example lines.
fn runaway_any(text: &str) -> bool {
    let Some(whole) = open_whole_lines(text) else {
        return false;
    };
    whole
        .split('\n')
        .rev()
        .take_while(|l| example_like(l))
        .take(EXAMPLE_LINES_MAX + 1)
        .count()
        > EXAMPLE_LINES_MAX
}

/// Is the line being written (after the last newline) an example call (or a line that starts
/// with a call, or a degenerate one) in an open fenced block that has grown past
/// [`EXAMPLE_LINE_CHARS_MAX`] characters? Looked at after every piece: such a line never ends.
pub fn runaway_line(text: &str) -> bool {
    let start = text.rfind('\n').map_or(0, |i| i + 1);
    let line = &text[start..];
    line.len() > EXAMPLE_LINE_CHARS_MAX
        && (example_like(line) || starts_like_call(line) || degenerate(line))
        && open_fence(text).is_some()
}

/// Does `line` end in [`DEGENERATE_TAIL`] copies of one character (`…0000`)?
fn degenerate(line: &str) -> bool {
    let tail: Vec<char> = line
        .trim_end()
        .chars()
        .rev()
        .take(DEGENERATE_TAIL)
        .collect();
    tail.len() == DEGENERATE_TAIL && tail.iter().all(|c| *c == tail[0])
}

/// Does `line` start with a call, `name(`? (A runaway line is often still inside the call's
/// first argument: `candidate(10.000…`.)
fn starts_like_call(line: &str) -> bool {
    let t = line.trim_start();
    let name: String = t
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == '.')
        .collect();
    !name.is_empty() && t[name.len()..].starts_with('(')
}

/// The whole lines of the open fenced block's body, if a block is open and has one: what
/// follows the last newline is still being written.
fn open_whole_lines(text: &str) -> Option<&str> {
    let body = &text[open_fence(text)?..];
    body.rfind('\n').map(|end| &body[..end])
}

/// Where the open fenced block's body starts, if a block is open: the fences are lines that
/// start with three backticks, and an odd count leaves one open.
fn open_fence(text: &str) -> Option<usize> {
    let mut open = None;
    let mut at = 0;
    for line in text.split_inclusive('\n') {
        if line.trim_start().starts_with("```") {
            open = match open {
                None => Some(at + line.len()),
                Some(_) => None,
            };
        }
        at += line.len();
    }
    open.map(|start: usize| start.min(text.len()))
}

/// Where the stream rule first cuts `text`: the length of the prefix read when it fires. It
/// looks after every piece; llama.cpp sends a piece per token, so the rule over lines fires at
/// the newline that completes the runaway list, and the rule over one line once the line passes
/// [`EXAMPLE_LINE_CHARS_MAX`].
fn first_cut(text: &str) -> Option<usize> {
    let mut start = 0;
    for line in text.split_inclusive('\n') {
        let body = line.strip_suffix('\n').unwrap_or(line);
        if body.len() > EXAMPLE_LINE_CHARS_MAX {
            let mut at = start + EXAMPLE_LINE_CHARS_MAX + 1;
            while !text.is_char_boundary(at) {
                at += 1;
            }
            if runaway_line(&text[..at]) {
                return Some(at);
            }
        }
        start += line.len();
        if line.ends_with('\n') && runaway_examples(&text[..start]) {
            return Some(start);
        }
    }
    None
}

/// Would the current stream rule have cut `text`, a reply read under an earlier rule, before
/// it ended? If not, the two rules read the same reply: a seeded stream is the same up to the
/// cut, and a reply that ends where the current rule cuts (within [`PIECE_SLACK`] bytes: the
/// piece that crossed the line), or is never cut, is what the current rule reads.
pub fn cut_earlier(text: &str) -> bool {
    first_cut(text).is_some_and(|at| text.len() > at + PIECE_SLACK)
}

fn openai_stream(
    resp: ureq::http::Response<ureq::Body>,
    url: &str,
    heartbeat: &dyn Fn(),
) -> Parsed {
    // Content chunks seen: llama.cpp sends one per token, the count when a cut reply brings
    // no usage.
    let mut pieces = 0u64;
    read_stream(resp, url, heartbeat, "[DONE]", |ev, got| {
        if ev.data.trim() == "[DONE]" {
            return Ok(true);
        }
        let v = http::parse_json(&ev.data, url, "a stream chunk").map_err(fail)?;
        if let Some(e) = embedded_error(&v, url) {
            return Err(e);
        }
        if got.model.is_none() {
            got.model = served_model(&v);
        }
        if let Some(piece) = v
            .get("choices")
            .and_then(|c| c.get(0))
            .and_then(|c| c.get("delta"))
            .and_then(|d| d.get("content"))
            .and_then(Json::as_str)
        {
            http::push_capped(&mut got.text, piece, url)?;
            pieces += 1;
            let tail = got.text.len() - got.text.rfind('\n').map_or(0, |i| i + 1);
            if (piece.contains('\n') && runaway_examples(&got.text))
                || (tail > EXAMPLE_LINE_CHARS_MAX && runaway_line(&got.text))
            {
                // Cut at the open examples block: closing the stream stops the generation.
                got.usage.output_tokens = got.usage.output_tokens.max(pieces);
                return Ok(true);
            }
        }
        got.timings |= v.get("timings").is_some_and(Json::is_object);
        if v.get("usage").is_some_and(|u| !u.is_null()) {
            got.usage = usage_at(&v, "prompt_tokens", "completion_tokens");
        } else if let Some(t) = v.get("timings") {
            // llama.cpp with timings_per_token: the prompt's tokens, evaluated and cached.
            let n = |k: &str| t.get(k).and_then(Json::as_u64).unwrap_or(0);
            got.usage.input_tokens = got.usage.input_tokens.max(n("prompt_n") + n("cache_n"));
        }
        Ok(false)
    })
}

fn anthropic_text(v: &Json) -> String {
    v.get("content")
        .and_then(Json::as_array)
        .map(|blocks| {
            blocks
                .iter()
                .filter(|b| b.get("type").and_then(Json::as_str) == Some("text"))
                .filter_map(|b| b.get("text").and_then(Json::as_str))
                .collect::<Vec<_>>()
                .join("")
        })
        .unwrap_or_default()
}

fn anthropic_whole(text: &str, url: &str) -> Parsed {
    let v = http::parse_json(text, url, "a reply").map_err(fail)?;
    if let Some(e) = embedded_error(&v, url) {
        return Err(e);
    }
    if v.get("content").and_then(Json::as_array).is_none() {
        return Err(fail(AgentError::Failed(format!(
            "{url} sent a reply without `content`"
        ))));
    }
    Ok(Gathered {
        text: anthropic_text(&v),
        usage: usage_at(&v, "input_tokens", "output_tokens"),
        model: served_model(&v),
        timings: false,
    }
    .into_exchange())
}

fn anthropic_stream(
    resp: ureq::http::Response<ureq::Body>,
    url: &str,
    heartbeat: &dyn Fn(),
) -> Parsed {
    read_stream(resp, url, heartbeat, "message_stop", |ev, got| {
        let v = http::parse_json(&ev.data, url, "a stream event").map_err(fail)?;
        let kind = v
            .get("type")
            .and_then(Json::as_str)
            .unwrap_or(ev.event.as_str())
            .to_string();
        match kind.as_str() {
            "message_start" => {
                got.model = v
                    .get("message")
                    .and_then(|m| m.get("model"))
                    .and_then(Json::as_str)
                    .map(str::to_string);
                got.usage.input_tokens = u64_at(&v, &["message", "usage", "input_tokens"]);
                got.usage.output_tokens = u64_at(&v, &["message", "usage", "output_tokens"]);
            }
            "content_block_delta" => {
                if let Some(piece) = v
                    .get("delta")
                    .filter(|d| d.get("type").and_then(Json::as_str) == Some("text_delta"))
                    .and_then(|d| d.get("text"))
                    .and_then(Json::as_str)
                {
                    http::push_capped(&mut got.text, piece, url)?;
                }
            }
            "message_delta" => {
                // Cumulative output tokens; input tokens may be restated.
                let out = u64_at(&v, &["usage", "output_tokens"]);
                if out > 0 {
                    got.usage.output_tokens = out;
                }
                let input = u64_at(&v, &["usage", "input_tokens"]);
                if input > 0 {
                    got.usage.input_tokens = input;
                }
            }
            "message_stop" => return Ok(true),
            "error" => {
                return Err(embedded_error(&v, url).unwrap_or_else(|| {
                    fail(AgentError::Failed(format!("{url} sent an error event")))
                }));
            }
            _ => {}
        }
        Ok(false)
    })
}
