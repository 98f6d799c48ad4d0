//! The peer list (`peers.toml`, the same file at every peer) and one peer's own settings
//! (`peerN.toml`). Both are TOML with unknown fields refused; every number has a bound.

use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use synod_store::PublicKey;

/// Most peers in a peer list.
pub const PEERS_MAX: usize = 64;
/// Largest config or peer file read.
const FILE_BYTES_MAX: u64 = 256 * 1024;

/// A config or peer file that cannot be used, with what to do.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {reason}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The file is not valid.
    #[error("{path}: {reason}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// One peer as every peer knows it.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Peer {
    /// Its index, 0..n, unique; peers are listed in this order.
    pub id: u16,
    /// Where it listens (`host:port`).
    pub addr: String,
    /// Its ed25519 public key, 64 hex characters (`synod node keygen` prints it).
    pub public_key: String,
}

/// The peer list.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeersFile {
    /// Byzantine peers tolerated: quorums are n − f, and n ≥ 3f + 1 is required.
    pub f: usize,
    /// `python3 --version` every peer's sandbox must report (its number, `3.11.2`): outcomes
    /// of a reference depend on it, and validity must be the same at every correct peer.
    pub python: String,
    /// The peers, ids 0..n in order.
    #[serde(rename = "peer")]
    pub peers: Vec<Peer>,
    /// Where the file was read from (not in the file).
    #[serde(skip)]
    pub path: PathBuf,
    /// The public keys, parsed when the file was (not in the file).
    #[serde(skip)]
    keys: Vec<ed25519_dalek::VerifyingKey>,
}

/// The refusal when n < 3f + 1 (Lamport, Shostak, Pease 1982), or `None` when the bound holds.
pub fn bound_refusal(n: usize, f: usize) -> Option<String> {
    let need = 3u128 * f as u128 + 1;
    ((n as u128) < need).then(|| {
        format!(
            "{n} peers cannot tolerate {f} Byzantine one(s): that needs n >= 3f + 1 = {need} \
             (Lamport, Shostak, Pease 1982: with n <= 3f, f traitors can make two correct peers \
             decide differently; `synod lab generals` shows it). Add peers or lower f to at \
             most {}",
            n.saturating_sub(1) / 3
        )
    })
}

fn read(path: &Path) -> Result<String, ConfigError> {
    let bytes = synod_store::read_capped(path, FILE_BYTES_MAX).map_err(|e| ConfigError::Read {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    String::from_utf8(bytes).map_err(|_| ConfigError::Invalid {
        path: path.to_path_buf(),
        reason: "not UTF-8 text".into(),
    })
}

impl PeersFile {
    /// Reads and checks a peer list.
    pub fn load(path: &Path) -> Result<PeersFile, ConfigError> {
        PeersFile::parse(&read(path)?, path)
    }

    /// Parses and checks a peer list: ids 0..n in order, distinct addresses and keys, keys
    /// that are ed25519 points, n ≤ 64. The bound n ≥ 3f + 1 is checked by [`PeersFile::n`]'s
    /// users, so that a test can lower it.
    pub fn parse(text: &str, path: &Path) -> Result<PeersFile, ConfigError> {
        let invalid = |reason: String| ConfigError::Invalid {
            path: path.to_path_buf(),
            reason,
        };
        let mut file: PeersFile =
            toml::from_str(text).map_err(|e| invalid(e.to_string().trim().to_string()))?;
        file.path = path.to_path_buf();
        if file.peers.is_empty() {
            return Err(invalid("no [[peer]] listed".into()));
        }
        if file.peers.len() > PEERS_MAX {
            return Err(invalid(format!(
                "{} peers; at most {PEERS_MAX}",
                file.peers.len()
            )));
        }
        let mut keys = Vec::with_capacity(file.peers.len());
        for (i, p) in file.peers.iter().enumerate() {
            if usize::from(p.id) != i {
                return Err(invalid(format!(
                    "peer ids must be 0, 1, 2, … in order: peer {} is listed {}",
                    p.id,
                    i + 1
                )));
            }
            let key = PublicKey(p.public_key.clone())
                .verifying_key()
                .map_err(|e| invalid(format!("peer {}: {e}", p.id)))?;
            keys.push(key);
            if file.peers[..i].iter().any(|q| q.public_key == p.public_key) {
                return Err(invalid(format!(
                    "peer {} has the same public key as an earlier peer",
                    p.id
                )));
            }
            if file.peers[..i].iter().any(|q| q.addr == p.addr) {
                return Err(invalid(format!(
                    "peer {} has the same address as an earlier peer ({})",
                    p.id, p.addr
                )));
            }
        }
        if file.f >= file.peers.len() {
            return Err(invalid(format!(
                "f = {} with {} peers: f must be smaller than n",
                file.f,
                file.peers.len()
            )));
        }
        if file.python.is_empty() || file.python.len() > 32 {
            return Err(invalid(
                "python must be the version every peer's python3 reports, such as \"3.11.2\""
                    .into(),
            ));
        }
        file.keys = keys;
        Ok(file)
    }

    /// n, the number of peers.
    pub fn n(&self) -> usize {
        self.peers.len()
    }

    /// Every peer's public key, by id.
    pub fn keys(&self) -> Vec<ed25519_dalek::VerifyingKey> {
        self.keys.clone()
    }

    /// The canonical text that the chain id covers: f, python and each peer's id and key
    /// (not the addresses: a peer may move without changing what it signs).
    pub fn canonical(&self) -> String {
        let mut s = format!("f={}\npython={}\n", self.f, self.python);
        for p in &self.peers {
            s.push_str(&format!("{} {}\n", p.id, p.public_key));
        }
        s
    }
}

/// One peer's own settings.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// This peer's id in the peer list.
    pub id: u16,
    /// Its key file (`synod node keygen --out FILE`), relative to this file.
    pub key: PathBuf,
    /// The peer list, relative to this file.
    pub peers: PathBuf,
    /// Its own agents file, relative to this file.
    pub agents: PathBuf,
    /// Where to listen; default: its address in the peer list.
    #[serde(default)]
    pub listen: Option<String>,
    /// Milliseconds a round waits for the proposal at first (then more each round).
    #[serde(default = "default_propose_ms")]
    pub timeout_propose_ms: u64,
    /// Most heights spent on the reading before giving up (each "not yet" starts another,
    /// with fresh samples from every peer's agents).
    #[serde(default = "default_reading_heights")]
    pub reading_heights_max: u32,
}

fn default_propose_ms() -> u64 {
    3000
}
fn default_reading_heights() -> u32 {
    3
}

impl NodeConfig {
    /// Reads a peer's settings; relative paths are taken relative to the file.
    pub fn load(path: &Path) -> Result<NodeConfig, ConfigError> {
        let text = read(path)?;
        let invalid = |reason: String| ConfigError::Invalid {
            path: path.to_path_buf(),
            reason,
        };
        let mut c: NodeConfig =
            toml::from_str(&text).map_err(|e| invalid(e.to_string().trim().to_string()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        for p in [&mut c.key, &mut c.peers, &mut c.agents] {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
        if !(100..=600_000).contains(&c.timeout_propose_ms) {
            return Err(invalid(format!(
                "timeout_propose_ms = {}: use 100 … 600000",
                c.timeout_propose_ms
            )));
        }
        if !(1..=16).contains(&c.reading_heights_max) {
            return Err(invalid(format!(
                "reading_heights_max = {}: use 1 … 16",
                c.reading_heights_max
            )));
        }
        Ok(c)
    }

    /// The address to listen on.
    pub fn listen_addr(&self, peers: &PeersFile) -> Result<SocketAddr, String> {
        let text = match &self.listen {
            Some(a) => a.clone(),
            None => peers
                .peers
                .get(usize::from(self.id))
                .map(|p| p.addr.clone())
                .ok_or_else(|| format!("id {} is not in the peer list", self.id))?,
        };
        resolve(&text)
    }
}

/// `host:port` to a socket address.
pub fn resolve(text: &str) -> Result<SocketAddr, String> {
    use std::net::ToSocketAddrs;
    text.to_socket_addrs()
        .map_err(|e| format!("address {text:?}: {e}"))?
        .next()
        .ok_or_else(|| format!("address {text:?} resolves to nothing"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY_A: &str = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";
    const KEY_B: &str = "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c";

    fn peers(body: &str) -> Result<PeersFile, ConfigError> {
        PeersFile::parse(body, Path::new("peers.toml"))
    }

    fn two(f: usize, key_b: &str, id_b: u16, addr_b: &str) -> String {
        format!(
            "f = {f}\npython = \"3.11.2\"\n[[peer]]\nid = 0\naddr = \"127.0.0.1:1\"\npublic_key = \"{KEY_A}\"\n[[peer]]\nid = {id_b}\naddr = \"{addr_b}\"\npublic_key = \"{key_b}\"\n"
        )
    }

    #[test]
    fn a_good_peer_list_parses_and_its_canonical_text_leaves_out_addresses() {
        let p = peers(&two(0, KEY_B, 1, "127.0.0.1:2")).unwrap();
        assert_eq!(p.n(), 2);
        let moved = peers(&two(0, KEY_B, 1, "127.0.0.1:9")).unwrap();
        assert_eq!(p.canonical(), moved.canonical());
    }

    #[test]
    fn bad_peer_lists_get_a_reason() {
        let cases = [
            (two(0, KEY_B, 2, "127.0.0.1:2"), "in order"),
            (two(0, KEY_A, 1, "127.0.0.1:2"), "same public key"),
            (two(0, KEY_B, 1, "127.0.0.1:1"), "same address"),
            (two(2, KEY_B, 1, "127.0.0.1:2"), "smaller than n"),
            (two(0, "zz", 1, "127.0.0.1:2"), "peer 1"),
            (
                "f = 0\npython = \"3.11.2\"\npeer = []\n".to_string(),
                "no [[peer]]",
            ),
            (
                "f = 0\npython = \"3.11.2\"\nextra = 1\n".to_string(),
                "unknown field",
            ),
            ("f = -1\n".to_string(), "peers.toml"),
        ];
        for (text, want) in cases {
            let e = peers(&text).unwrap_err().to_string();
            assert!(e.contains(want), "{want:?} not in {e:?}");
        }
    }

    #[test]
    fn the_bound_is_refused_with_the_reason() {
        assert!(bound_refusal(4, 1).is_none());
        assert!(bound_refusal(1, 0).is_none());
        let why = bound_refusal(3, 1).unwrap();
        assert!(
            why.contains("3f + 1 = 4") && why.contains("Lamport"),
            "{why}"
        );
        // Absurd numbers do not overflow.
        assert!(bound_refusal(64, usize::MAX).is_some());
    }

    #[test]
    fn node_settings_have_bounds() {
        let dir = std::env::temp_dir().join(format!("synod-node-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("peer.toml");
        for (body, want) in [
            (
                "id = 0\nkey = \"k\"\npeers = \"p\"\nagents = \"a\"\ntimeout_propose_ms = 5\n",
                "timeout_propose_ms",
            ),
            (
                "id = 0\nkey = \"k\"\npeers = \"p\"\nagents = \"a\"\nreading_heights_max = 999\n",
                "reading_heights_max",
            ),
            ("id = 0\nkey = \"k\"\n", "missing field"),
        ] {
            std::fs::write(&path, body).unwrap();
            let e = NodeConfig::load(&path).unwrap_err().to_string();
            assert!(e.contains(want), "{want:?} not in {e:?}");
        }
        std::fs::write(
            &path,
            "id = 0\nkey = \"k\"\npeers = \"p\"\nagents = \"a\"\n",
        )
        .unwrap();
        let c = NodeConfig::load(&path).unwrap();
        assert_eq!(c.key, dir.join("k"), "relative to the file");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
