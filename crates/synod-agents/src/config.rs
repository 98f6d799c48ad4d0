//! The agents file: TOML, one `[[agent]]` table per agent, in the order agents are asked.
//!
//! ```toml
//! fault_budget = 1
//! timeout_increment_ms = 10000   # added to an agent's timeout when a suspicion proves false
//! timeout_max_ms = 600000        # no timeout grows past this
//! [[agent]]
//! name = "ada"
//! backend = "scripted"
//! model = "recorded"
//! transcript = "transcript/ada"
//! timeout_ms = 2000
//! ```

use serde::{Deserialize, Deserializer};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Which implementation answers for an agent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BackendKind {
    /// Replays a recorded transcript (offline).
    Scripted,
    /// OpenAI-compatible chat completions.
    Openai,
    /// Anthropic Messages.
    Anthropic,
    /// A local program speaking JSON lines on stdio.
    Command,
    /// The simulator's fault-injecting agents.
    Sim,
}

impl BackendKind {
    /// The name used in the agents file.
    pub fn as_str(&self) -> &'static str {
        match self {
            BackendKind::Scripted => "scripted",
            BackendKind::Openai => "openai",
            BackendKind::Anthropic => "anthropic",
            BackendKind::Command => "command",
            BackendKind::Sim => "sim",
        }
    }
}

/// A fault a scripted agent plays.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ScriptedFault {
    /// Never answers (sleeps far past any deadline).
    Stall,
    /// Fails at once, like a process that died.
    Crash,
    /// Answers with text that is not a reply.
    Garbage,
}

/// One `[[agent]]` table.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// Unique name, used in reports and transcripts.
    pub name: String,
    /// Which backend answers.
    pub backend: BackendKind,
    /// Model name (for reports; for LLM backends, the model asked).
    #[serde(default)]
    pub model: Option<String>,
    /// Endpoint of an LLM backend.
    #[serde(default)]
    pub base_url: Option<String>,
    /// Name of the environment variable holding the API key (never the key itself).
    #[serde(default)]
    pub api_key_env: Option<String>,
    /// Sampling temperature.
    #[serde(default)]
    pub temperature: Option<f64>,
    /// Most tokens one reply may have (LLM backends; a cap per reply), 1 to
    /// [`MAX_TOKENS_LIMIT`].
    #[serde(default, deserialize_with = "within::<_, u64, 1, MAX_TOKENS_LIMIT>")]
    pub max_tokens: Option<u64>,
    /// LLM backends: stream the reply (default true); each chunk is a heartbeat.
    #[serde(default)]
    pub stream: Option<bool>,
    /// LLM backends: retries of one call on 429, 5xx and connection errors (default 3), 0 to
    /// [`RETRIES_MAX`].
    #[serde(
        default,
        deserialize_with = "within::<_, u32, 0, { RETRIES_MAX as u64 }>"
    )]
    pub retries_max: Option<u32>,
    /// LLM backends: requests the endpoint (`base_url`) answers at once (llama.cpp's
    /// `--parallel`); agents of one endpoint share them and must agree. A call waits for a
    /// free slot and its deadline starts when it has one. Unset: no limit. 1 to [`SLOTS_MAX`].
    #[serde(
        default,
        deserialize_with = "within::<_, u32, 1, { SLOTS_MAX as u64 }>"
    )]
    pub slots: Option<u32>,
    /// LLM backends (OpenAI protocol): constrain the replies that benefit (a distinguish
    /// reply's calls, PL-22) to a JSON schema. `synod agents check` says whether the server
    /// honours it. Default false: every reply is read by the tolerant fenced parser.
    #[serde(default)]
    pub structured_output: Option<bool>,
    /// LLM backends (OpenAI protocol, streaming): ask for llama.cpp's per-chunk timings
    /// (`timings_per_token`), whose prompt count gives a reply's input tokens even when synod
    /// cuts the stream before its usage chunk. llama.cpp's server only; OpenAI's API refuses
    /// the field. Default false.
    #[serde(default)]
    pub timings_per_token: Option<bool>,
    /// Command backend: the program and its arguments (`["python3", "agent.py"]`), relative
    /// paths resolved against the agents file's directory as the working directory.
    #[serde(default)]
    pub command: Option<Vec<String>>,
    /// Deadline for one reply, after which the agent is suspected: 1 to the file's
    /// `timeout_max_ms`.
    #[serde(default, deserialize_with = "within::<_, u64, 1, TIMEOUT_LIMIT_MS>")]
    pub timeout_ms: Option<u64>,
    /// Scripted backend: the directory of recorded replies, relative to the agents file.
    #[serde(default)]
    pub transcript: Option<PathBuf>,
    /// Scripted backend: a fault to play instead of replying.
    #[serde(default)]
    pub fault: Option<ScriptedFault>,
    /// Scripted backend: delay before each reply, at most [`TIMEOUT_LIMIT_MS`].
    #[serde(default, deserialize_with = "within::<_, u64, 0, TIMEOUT_LIMIT_MS>")]
    pub delay_ms: Option<u64>,
}

/// Default deadline for one reply.
pub const DEFAULT_TIMEOUT_MS: u64 = 120_000;
/// Most `slots` an endpoint may have.
pub const SLOTS_MAX: u32 = 64;
/// Default retries of one LLM call.
pub const DEFAULT_RETRIES_MAX: u32 = 3;
/// Most retries of one LLM call that a file may ask for.
pub const RETRIES_MAX: u32 = 10;
/// Default cap on tokens per reply when the file names none.
pub const DEFAULT_MAX_TOKENS: u64 = 4096;
/// Default endpoint of the `openai` backend.
pub const OPENAI_BASE_URL: &str = "https://api.openai.com/v1";
/// Default endpoint of the `anthropic` backend.
pub const ANTHROPIC_BASE_URL: &str = "https://api.anthropic.com";
/// Most agents in one file.
pub const AGENTS_MAX: usize = 64;
/// The largest timeout, increment, cap or delay an agents file may set: a day.
pub const TIMEOUT_LIMIT_MS: u64 = 86_400_000;
/// The largest `fault_budget` a file may give: n ≥ 2m + 1 with at most [`AGENTS_MAX`] agents.
pub const FAULT_BUDGET_MAX: usize = (AGENTS_MAX - 1) / 2;
/// The largest `max_tokens` a file may give.
pub const MAX_TOKENS_LIMIT: u64 = 1_000_000;
/// The largest agents file read: a file beyond it is refused unread.
pub const AGENTS_FILE_BYTES_MAX: u64 = 1024 * 1024;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(
        default,
        deserialize_with = "within::<_, usize, 0, { FAULT_BUDGET_MAX as u64 }>"
    )]
    fault_budget: Option<usize>,
    #[serde(default, deserialize_with = "within::<_, u64, 0, TIMEOUT_LIMIT_MS>")]
    timeout_increment_ms: Option<u64>,
    #[serde(default, deserialize_with = "within::<_, u64, 0, TIMEOUT_LIMIT_MS>")]
    timeout_max_ms: Option<u64>,
    #[serde(default, rename = "agent")]
    agents: Vec<AgentConfig>,
}

/// A parsed, validated agents file.
#[derive(Clone, Debug, PartialEq)]
pub struct AgentsFile {
    /// `fault_budget`, if given.
    pub fault_budget: Option<usize>,
    /// Added to an agent's timeout each time a suspicion of it proves false (◇P, FD-2).
    pub timeout_increment_ms: u64,
    /// No agent's timeout grows past this; every agent's `timeout_ms` must be within it.
    pub timeout_max_ms: u64,
    /// The agents, in order.
    pub agents: Vec<AgentConfig>,
    /// The directory relative paths are resolved against.
    pub base_dir: PathBuf,
}

/// Why an agents file was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read agents file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The TOML does not parse or has unknown or mistyped fields.
    #[error("agents file {path} is not valid: {message}")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// What the parser said, with line and column.
        message: String,
    },
    /// The content is well-formed but unusable.
    #[error("agents file {path}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

/// A whole number from `LO` to `HI`, whatever TOML holds (a negative or huge integer, a float, a
/// string): anything else is refused with a message that states the range. The bounds are
/// checked as the file is read, so no later arithmetic sees a number outside them.
fn within<'de, D, T, const LO: u64, const HI: u64>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: TryFrom<u64>,
{
    struct Whole<const LO: u64, const HI: u64>;
    impl<const LO: u64, const HI: u64> Whole<LO, HI> {
        fn refuse<E: serde::de::Error>(shown: impl std::fmt::Display) -> E {
            E::custom(format!(
                "{shown} is outside the allowed range: a whole number from {LO} to {HI}"
            ))
        }
    }
    impl<const LO: u64, const HI: u64> serde::de::Visitor<'_> for Whole<LO, HI> {
        type Value = u64;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "a whole number from {LO} to {HI}")
        }
        fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<u64, E> {
            if (LO..=HI).contains(&v) {
                Ok(v)
            } else {
                Err(Self::refuse(v))
            }
        }
        fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<u64, E> {
            u64::try_from(v).map_or_else(|_| Err(Self::refuse(v)), |v| self.visit_u64(v))
        }
        fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<u64, E> {
            Err(Self::refuse(v))
        }
    }
    let v = d.deserialize_any(Whole::<LO, HI>)?;
    T::try_from(v)
        .map(Some)
        .map_err(|_| Whole::<LO, HI>::refuse(v))
}

impl AgentsFile {
    /// Reads and validates an agents file: a regular file of at most
    /// [`AGENTS_FILE_BYTES_MAX`] bytes of UTF-8.
    pub fn load(path: &Path) -> Result<AgentsFile, ConfigError> {
        let read_error = |source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        };
        let bytes = synod_store::read_capped(path, AGENTS_FILE_BYTES_MAX).map_err(read_error)?;
        let text = String::from_utf8(bytes).map_err(|_| {
            read_error(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "not UTF-8 text",
            ))
        })?;
        // `agents.toml` has the parent "", which no process can be started in.
        let base_dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        AgentsFile::parse(&text, path, &base_dir)
    }

    /// Parses and validates agents-file text; `path` is only used in messages.
    pub fn parse(text: &str, path: &Path, base_dir: &Path) -> Result<AgentsFile, ConfigError> {
        let raw: RawFile = toml::from_str(text).map_err(|e| ConfigError::Syntax {
            path: path.to_path_buf(),
            message: e.to_string().trim().replace('\n', " "),
        })?;
        let invalid = |message: String| ConfigError::Invalid {
            path: path.to_path_buf(),
            message,
        };
        if raw.agents.is_empty() {
            return Err(invalid(
                "no [[agent]] tables: at least one agent is needed".into(),
            ));
        }
        if raw.agents.len() > AGENTS_MAX {
            return Err(invalid(format!("more than {AGENTS_MAX} agents")));
        }
        let mut names = BTreeSet::new();
        for (i, a) in raw.agents.iter().enumerate() {
            let at = format!("agent {} ({:?})", i + 1, a.name);
            if a.name.trim().is_empty()
                || a.name.len() > 64
                || !a
                    .name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            {
                return Err(invalid(format!(
                    "{at}: name must be 1-64 letters, digits, '-', '_' or '.'"
                )));
            }
            if !names.insert(a.name.clone()) {
                return Err(invalid(format!("{at}: the name is used twice")));
            }
            if let Some(t) = a.temperature
                && !(0.0..=2.0).contains(&t)
            {
                return Err(invalid(format!(
                    "{at}: temperature {t} is outside the allowed range: a number from 0 to 2"
                )));
            }
            match a.backend {
                BackendKind::Scripted => {
                    if a.transcript.is_none() {
                        return Err(invalid(format!(
                            "{at}: a scripted agent needs `transcript`, the directory of its recorded replies"
                        )));
                    }
                }
                BackendKind::Openai | BackendKind::Anthropic => {
                    let model_ok = a.model.as_deref().is_some_and(|m| !m.trim().is_empty());
                    if !model_ok {
                        return Err(invalid(format!(
                            "{at}: an {} agent needs `model`, the model name the server knows",
                            a.backend.as_str()
                        )));
                    }
                    if let Some(url) = &a.base_url
                        && !(url.starts_with("http://") || url.starts_with("https://"))
                    {
                        return Err(invalid(format!(
                            "{at}: base_url {url:?} must start with http:// or https://"
                        )));
                    }
                    if let Some(var) = &a.api_key_env
                        && (var.is_empty()
                            || !var.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
                    {
                        return Err(invalid(format!(
                            "{at}: api_key_env must be the *name* of an environment variable (letters, digits, '_'), not the key itself"
                        )));
                    }
                    if a.backend == BackendKind::Anthropic && a.api_key_env.is_none() {
                        return Err(invalid(format!(
                            "{at}: an anthropic agent needs `api_key_env`, the name of the variable holding the key (e.g. \"ANTHROPIC_API_KEY\")"
                        )));
                    }
                    if a.command.is_some() || a.transcript.is_some() {
                        return Err(invalid(format!(
                            "{at}: `command` and `transcript` are not for {} agents",
                            a.backend.as_str()
                        )));
                    }
                }
                BackendKind::Command => match &a.command {
                    Some(argv) if !argv.is_empty() && !argv[0].is_empty() => {}
                    _ => {
                        return Err(invalid(format!(
                            "{at}: a command agent needs `command`, the program and its arguments, e.g. [\"python3\", \"agent.py\"]"
                        )));
                    }
                },
                BackendKind::Sim => {
                    return Err(invalid(format!(
                        "{at}: backend \"sim\" is only for the simulator; it cannot run in a build"
                    )));
                }
            }
            if a.slots.is_some()
                && !matches!(a.backend, BackendKind::Openai | BackendKind::Anthropic)
            {
                return Err(invalid(format!("{at}: `slots` is only for LLM backends")));
            }
            if let Some(other) = raw
                .agents
                .iter()
                .find(|b| b.base_url.is_some() && b.base_url == a.base_url && b.slots != a.slots)
            {
                return Err(invalid(format!(
                    "{at}: agents of one endpoint share its slots, but {:?} gives {} and {:?} gives {}",
                    a.name,
                    a.slots.map_or("none".into(), |s| s.to_string()),
                    other.name,
                    other.slots.map_or("none".into(), |s| s.to_string()),
                )));
            }
            if a.fault.is_some() && a.backend != BackendKind::Scripted {
                return Err(invalid(format!(
                    "{at}: `fault` is only for scripted agents"
                )));
            }
        }
        let timeout_increment_ms = raw
            .timeout_increment_ms
            .unwrap_or(synod_core::pipeline::TIMEOUT_INCREMENT_MS);
        let timeout_max_ms = raw
            .timeout_max_ms
            .unwrap_or(synod_core::pipeline::TIMEOUT_MAX_MS);
        for (i, a) in raw.agents.iter().enumerate() {
            let t = a.timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS);
            if t > timeout_max_ms {
                return Err(invalid(format!(
                    "agent {} ({:?}): timeout_ms {t} is above timeout_max_ms {timeout_max_ms} (the allowed range is 1 to {timeout_max_ms}); raise timeout_max_ms or lower the agent's timeout",
                    i + 1,
                    a.name
                )));
            }
        }
        Ok(AgentsFile {
            fault_budget: raw.fault_budget,
            timeout_increment_ms,
            timeout_max_ms,
            agents: raw.agents,
            base_dir: base_dir.to_path_buf(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parse(s: &str) -> Result<AgentsFile, ConfigError> {
        AgentsFile::parse(s, Path::new("agents.toml"), Path::new("."))
    }

    #[test]
    fn a_valid_file_parses() {
        let f = parse(
            r#"fault_budget = 1
[[agent]]
name = "a"
backend = "scripted"
transcript = "t/a"
timeout_ms = 100
[[agent]]
name = "b"
backend = "scripted"
transcript = "t/b"
fault = "stall"
"#,
        )
        .unwrap();
        assert_eq!(f.fault_budget, Some(1));
        assert_eq!(f.agents.len(), 2);
        assert_eq!(f.agents[1].fault, Some(ScriptedFault::Stall));
    }

    #[test]
    fn errors_name_the_problem() {
        let e = parse(
            "[[agent]]\nname = \"a\"\nbackend = \"scripted\"\ntranscript = \"x\"\ncolour = 1\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("agents.toml") && e.contains("colour"), "{e}");
        let e = parse("[[agent]\n").unwrap_err().to_string();
        assert!(e.contains("not valid"), "{e}");
        let e = parse("fault_budget = 1\n").unwrap_err().to_string();
        assert!(e.contains("no [[agent]]"), "{e}");
        let agent = "[[agent]]\nname = \"a\"\nbackend = \"scripted\"\ntranscript = \"x\"\ntimeout_ms = 5000\n";
        let e = parse(&format!("timeout_max_ms = 4000\n{agent}"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("above timeout_max_ms 4000"), "{e}");
        let e = parse(&format!("timeout_increment_ms = 99999999999\n{agent}"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("whole number from 0 to 86400000"), "{e}");
        let f = parse(&format!(
            "timeout_increment_ms = 250\ntimeout_max_ms = 9000\n{agent}"
        ))
        .unwrap();
        assert_eq!((f.timeout_increment_ms, f.timeout_max_ms), (250, 9000));
        let e = parse("[[agent]]\nname = \"a\"\nbackend = \"scripted\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("transcript"), "{e}");
        let e = parse("[[agent]]\nname = \"a\"\nbackend = \"telepathy\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("telepathy"), "{e}");
        let e = parse("[[agent]]\nname = \"a\"\nbackend = \"openai\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("needs `model`"), "{e}");
        let e = parse("[[agent]]\nname = \"a\"\nbackend = \"openai\"\nmodel = \"m\"\napi_key_env = \"sk-abc123-xyz\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("*name*"), "{e}");
        let e = parse("[[agent]]\nname = \"a\"\nbackend = \"command\"\ncommand = []\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("needs `command`"), "{e}");
        let two = "[[agent]]\nname = \"a\"\nbackend = \"scripted\"\ntranscript = \"x\"\n";
        let e = parse(&format!("{two}{two}")).unwrap_err().to_string();
        assert!(e.contains("twice"), "{e}");
    }

    #[test]
    fn every_number_is_refused_outside_its_range_with_the_range() {
        let agent = |extra: &str| {
            format!("[[agent]]\nname = \"a\"\nbackend = \"openai\"\nmodel = \"m\"\n{extra}\n")
        };
        for (line, range) in [
            ("fault_budget = 18446744073709551615\n", "from 0 to 31"),
            ("fault_budget = 32\n", "from 0 to 31"),
            ("fault_budget = -1\n", "from 0 to 31"),
            ("fault_budget = 1.5\n", "from 0 to 31"),
            (
                "timeout_max_ms = 18446744073709551615\n",
                "from 0 to 86400000",
            ),
            (
                "timeout_increment_ms = -9223372036854775808\n",
                "from 0 to 86400000",
            ),
        ] {
            let e = parse(&format!("{line}{}", agent("")))
                .unwrap_err()
                .to_string();
            assert!(e.contains(range) && !e.contains('\n'), "{line}: {e}");
        }
        for (field, range) in [
            ("timeout_ms = 18446744073709551615", "from 1 to 86400000"),
            ("timeout_ms = 0", "from 1 to 86400000"),
            ("delay_ms = 18446744073709551615", "from 0 to 86400000"),
            ("max_tokens = 0", "from 1 to 1000000"),
            ("max_tokens = 4294967296", "from 1 to 1000000"),
            ("retries_max = 4294967295", "from 0 to 10"),
            ("slots = 0", "from 1 to 64"),
            ("slots = inf", "from 1 to 64"),
            ("temperature = nan", "from 0 to 2"),
            ("temperature = 1e308", "from 0 to 2"),
        ] {
            let e = parse(&agent(field)).unwrap_err().to_string();
            assert!(e.contains(range) && !e.contains('\n'), "{field}: {e}");
        }
    }

    /// A TOML literal of any kind of number: the extremes, negative, fractional, not finite,
    /// beyond 64 bits, quoted, and arbitrary ones.
    fn number() -> impl Strategy<Value = String> {
        let fixed: Vec<String> = [
            "0",
            "1",
            "-1",
            "2",
            "4294967295",
            "4294967296",
            "18446744073709551615",
            "18446744073709551616",
            "9223372036854775807",
            "-9223372036854775808",
            "86400000",
            "86400001",
            "0.5",
            "-0.0",
            "1e308",
            "nan",
            "inf",
            "-inf",
            "\"12\"",
            "\"\"",
            "true",
        ]
        .iter()
        .map(|s| s.to_string())
        .chain(["9".repeat(400), format!("\"{}\"", "7".repeat(100_000))])
        .collect();
        prop_oneof![
            2 => proptest::sample::select(fixed),
            1 => any::<i64>().prop_map(|v| v.to_string()),
            1 => any::<u64>().prop_map(|v| v.to_string()),
            1 => (0u64..=200_000).prop_map(|v| v.to_string()),
            1 => any::<f64>()
                .prop_filter("finite", |v| v.is_finite())
                .prop_map(|v| format!("{v:e}")),
        ]
    }

    /// `key = value` when the field is present: mostly a number in `lo..=hi` (so that many
    /// files parse and drive the pipeline), else any number at all.
    fn field(key: &'static str, lo: u64, hi: u64) -> impl Strategy<Value = String> {
        let value = prop_oneof![3 => (lo..=hi).prop_map(|v| v.to_string()), 1 => number()];
        proptest::option::weighted(0.7, value)
            .prop_map(move |v| v.map(|v| format!("{key} = {v}\n")).unwrap_or_default())
    }

    fn agents_file() -> impl Strategy<Value = String> {
        let top = (
            field("fault_budget", 0, 3),
            field("timeout_increment_ms", 0, 86_400_000),
            field("timeout_max_ms", 120_000, 86_400_000),
        );
        let llm = (
            field("temperature", 0, 2),
            field("max_tokens", 1, 1_000_000),
            field("retries_max", 0, 10),
            field("slots", 1, 64),
            field("timeout_ms", 1, 120_000),
        );
        let scripted = proptest::collection::vec(
            (field("timeout_ms", 1, 120_000), field("delay_ms", 0, 50)),
            0..4,
        );
        (top, llm, scripted).prop_map(|((f, i, x), (t, mt, r, sl, to), scripted)| {
            let mut text = format!(
                "{f}{i}{x}[[agent]]\nname = \"llm\"\nbackend = \"openai\"\nmodel = \"m\"\nbase_url = \"http://127.0.0.1:9\"\n{t}{mt}{r}{sl}{to}"
            );
            for (k, (to, d)) in scripted.iter().enumerate() {
                text.push_str(&format!(
                    "[[agent]]\nname = \"s{k}\"\nbackend = \"scripted\"\ntranscript = \"t\"\n{to}{d}"
                ));
            }
            text
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1024))]

        /// Issue 11: any number in any numeric field gives a parsed file or a one-line error,
        /// never a panic, and whatever parses drives the tally, the agents and the pipeline's
        /// clock (its deadlines fired at once and at the end of time) without a panic either.
        #[test]
        fn any_number_in_any_field_is_a_clean_ok_or_error(text in agents_file()) {
            match parse(&text) {
                Err(e) => prop_assert!(!e.to_string().contains('\n'), "{e}"),
                Ok(f) => drive(&f),
            }
        }
    }

    /// What a build does with a parsed file's numbers before any agent is called.
    fn drive(f: &AgentsFile) {
        use synod_core::pipeline::{AgentInfo, Input, Pipeline, PipelineConfig};
        let n = f.agents.len();
        let m = f
            .fault_budget
            .unwrap_or_else(|| synod_core::Tally::default_budget(n));
        if synod_core::Tally::new(n, m).is_err() {
            return;
        }
        crate::build_agents(f, None).expect("a valid file builds its agents");
        let infos = f
            .agents
            .iter()
            .enumerate()
            .map(|(i, a)| AgentInfo {
                id: synod_core::AgentId(i as u32),
                name: a.name.clone(),
                timeout_ms: a.timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS),
            })
            .collect();
        let mut cfg = PipelineConfig::new(infos, m, 1);
        cfg.timeout_increment_ms = f.timeout_increment_ms;
        cfg.timeout_max_ms = f.timeout_max_ms;
        let mut p = Pipeline::new(cfg, synod_core::Prompt::new("p")).expect("budget checked");
        let mut out = Vec::new();
        p.step(0, Input::Start, &mut out);
        for now in [None, Some(u64::MAX)] {
            if let Some(d) = p.poll_timeout() {
                out.clear();
                p.step(
                    now.unwrap_or(d.at_ms),
                    Input::TimerFired { timer: d.timer },
                    &mut out,
                );
            }
        }
    }
}
