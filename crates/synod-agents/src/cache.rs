//! The response cache: a repeated or resumed build spends nothing twice.
//!
//! Content-addressed by everything that shapes a reply: backend, model, base URL, temperature,
//! token cap, the rendered messages, the role prompts' digest, and the request's sample index
//! (a deliberate resample asks afresh). One JSON file per reply under
//! `<dir>/<first two hex digits>/<blake3 hex>.json`, written to a temporary file and renamed,
//! so a crash never leaves half an entry. Scripted agents are not cached.

use crate::AgentReply;
use crate::prompts::Messages;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};
use synod_core::pipeline::Usage;

/// Largest cache entry read back, in bytes (a reply is at most 512 KiB; JSON escaping can
/// double it).
const ENTRY_BYTES_MAX: u64 = 2 * 1024 * 1024;

/// Everything a cached reply depends on.
#[derive(Clone, Debug, Serialize)]
pub struct CacheKey<'a> {
    /// `openai`, `anthropic` or `command`.
    pub backend: &'a str,
    /// The model (for command agents: the command line).
    pub model: &'a str,
    /// The endpoint (empty for command agents).
    pub base_url: &'a str,
    /// Sampling temperature, if set.
    pub temperature: Option<f64>,
    /// Token cap per reply.
    pub max_tokens: u64,
    /// The rendered request.
    pub messages: &'a Messages,
    /// [`crate::role_prompts_digest`].
    pub role_prompts_digest: &'a str,
    /// The request's sample index.
    pub sample: u32,
    /// The sampling seed sent with the request, where the backend takes one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<u32>,
    /// The JSON schema the reply was constrained to, by name (`None`: free text).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schema: Option<&'a str>,
    /// The client-side stop rule the reply was read under (`None`: read to its end), so a cut
    /// reply never stands in for a whole one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cut: Option<&'a str>,
}

impl CacheKey<'_> {
    /// The content address: blake3 over the key's JSON, hex.
    pub fn digest(&self) -> String {
        let json = serde_json::to_vec(self).unwrap_or_default();
        blake3::hash(&json).to_hex().to_string()
    }
}

#[derive(Serialize, Deserialize)]
struct Entry {
    text: String,
    input_tokens: u64,
    output_tokens: u64,
}

/// A directory of cached replies.
#[derive(Clone, Debug)]
pub struct ResponseCache {
    dir: PathBuf,
}

impl ResponseCache {
    /// A cache in `dir` (created on first write).
    pub fn new(dir: impl Into<PathBuf>) -> ResponseCache {
        ResponseCache { dir: dir.into() }
    }

    /// `$XDG_CACHE_HOME/synod/responses`, else `~/.cache/synod/responses`; `None` when neither
    /// variable is set.
    pub fn default_dir() -> Option<PathBuf> {
        let base = std::env::var_os("XDG_CACHE_HOME")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .or_else(|| {
                std::env::var_os("HOME")
                    .filter(|v| !v.is_empty())
                    .map(|h| PathBuf::from(h).join(".cache"))
            })?;
        Some(base.join("synod").join("responses"))
    }

    /// The cache directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, digest: &str) -> PathBuf {
        self.dir.join(&digest[..2]).join(format!("{digest}.json"))
    }

    /// The cached reply for a key, marked `cached`. A missing, unreadable or corrupt entry is
    /// a miss (the call is made again and the entry rewritten).
    pub fn lookup(&self, key: &CacheKey<'_>) -> Option<AgentReply> {
        let path = self.path(&key.digest());
        let bytes = synod_store::read_capped(&path, ENTRY_BYTES_MAX).ok()?;
        let e: Entry = serde_json::from_slice(&bytes).ok()?;
        Some(AgentReply {
            follow_ups: 0,
            text: e.text,
            usage: Usage {
                input_tokens: e.input_tokens,
                output_tokens: e.output_tokens,
            },
            cached: true,
        })
    }

    /// Stores a reply atomically (temporary file in the same directory, fsync, rename). A
    /// failure to write is reported, and the reply is still good to use.
    pub fn store(&self, key: &CacheKey<'_>, reply: &AgentReply) -> std::io::Result<()> {
        let path = self.path(&key.digest());
        let dir = path.parent().unwrap_or(&self.dir);
        std::fs::create_dir_all(dir)?;
        let entry = Entry {
            text: reply.text.clone(),
            input_tokens: reply.usage.input_tokens,
            output_tokens: reply.usage.output_tokens,
        };
        let tmp = dir.join(format!(
            ".{}.{}.{:?}.tmp",
            path.file_name().and_then(|n| n.to_str()).unwrap_or("entry"),
            std::process::id(),
            std::thread::current().id()
        ));
        let result = (|| {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&serde_json::to_vec(&entry).map_err(std::io::Error::other)?)?;
            f.sync_all()?;
            std::fs::rename(&tmp, &path)
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key<'a>(m: &'a Messages, sample: u32, temperature: Option<f64>) -> CacheKey<'a> {
        CacheKey {
            backend: "openai",
            model: "m",
            base_url: "http://127.0.0.1:1/v1",
            temperature,
            max_tokens: 64,
            messages: m,
            role_prompts_digest: "d",
            sample,
            seed: None,
            schema: None,
            cut: None,
        }
    }

    #[test]
    fn stores_and_finds_by_content_and_sample() {
        let dir = std::env::temp_dir().join(format!("synod-cache-unit-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let cache = ResponseCache::new(&dir);
        let m = Messages {
            system: "s".into(),
            user: "u".into(),
            follow_up: None,
        };
        assert!(cache.lookup(&key(&m, 0, None)).is_none());
        let reply = AgentReply {
            text: "hello".into(),
            usage: Usage {
                input_tokens: 3,
                output_tokens: 4,
            },
            cached: false,
            follow_ups: 0,
        };
        cache.store(&key(&m, 0, None), &reply).unwrap();
        let hit = cache.lookup(&key(&m, 0, None)).unwrap();
        assert!(hit.cached && hit.text == "hello" && hit.usage.output_tokens == 4);
        assert!(
            cache.lookup(&key(&m, 1, None)).is_none(),
            "a resample asks afresh"
        );
        assert!(cache.lookup(&key(&m, 0, Some(0.7))).is_none());
        // A corrupt entry is a miss, not an error.
        let path = cache.path(&key(&m, 0, None).digest());
        std::fs::write(&path, b"{not json").unwrap();
        assert!(cache.lookup(&key(&m, 0, None)).is_none());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
