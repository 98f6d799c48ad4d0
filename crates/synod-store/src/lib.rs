//! Storage that can be checked by anyone: synod's signed, hash-chained decision log, signed JSON
//! documents (the certificate), and the build key that signs both.
//!
//! Every decision a synod build makes is appended to a [`DecisionLog`], a redb file with one
//! table, seq → [`Entry`]. Each entry carries the hash of the one before it and is signed by the
//! build's [`BuildKey`]; at the end of a build the certificate ([`Signed`]) pins the log's last
//! entry ([`PinnedHead`]) and names the public key. Verifying needs only the files and the public
//! key: [`verify_log`] re-checks every link, hash and signature offline, without a secret and
//! without writing to the file.
//!
//! # How to drive it
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use serde_json::json;
//! use synod_store::{BuildKey, DecisionLog, Signed, verify_log_pinned};
//!
//! # let dir = std::env::temp_dir().join(format!("synod-store-doc-{}", std::process::id()));
//! # std::fs::create_dir_all(&dir)?;
//! # let dir = dir.as_path();
//! // `dir` is the build's directory.
//! // Once per build: make a key and keep it (mode 0600) so a resumed build can continue.
//! let key = BuildKey::generate()?;
//! key.save(&dir.join("build.key"))?;
//!
//! // Append decisions; each is durable when `append` returns.
//! let mut log = DecisionLog::create(&dir.join("decisions.redb"), key.clone())?;
//! log.append("proposal", &json!({"round": 0, "by": "agent-1"}))?;
//! log.append("decide", &json!({"round": 0, "value": "candidate-3"}))?;
//!
//! // After a crash or restart: reopen, which re-verifies the chain, and continue.
//! drop(log);
//! let key = BuildKey::load(&dir.join("build.key"))?;
//! let mut log = DecisionLog::open(&dir.join("decisions.redb"), key.clone())?;
//! log.append("note", &json!({"resumed": true}))?;
//!
//! // The certificate pins the head, so cutting entries off the end is caught too.
//! let head = log.head().expect("three entries").pin();
//! let certificate = Signed::sign(json!({"log_head": head, "result": "ok"}), &key);
//! drop(log);
//!
//! // Anyone, later, with only the files and the public key:
//! certificate.verify_with(&key.public())?;
//! let entries = verify_log_pinned(&dir.join("decisions.redb"), &certificate.public_key, &head)?;
//! assert_eq!(entries.len(), 3);
//! # std::fs::remove_dir_all(dir)?;
//! # Ok(())
//! # }
//! ```
//!
//! # What verification does and does not show
//!
//! - A changed entry fails its hash; a changed entry with a recomputed hash fails its signature;
//!   a removed, inserted or reordered entry breaks the seq numbering or the `prev` links.
//! - A chain re-signed with another key verifies only with that other key: always verify with the
//!   public key you expect, not one taken from the same place as the log.
//! - Entries cut from the *end* leave a valid, shorter chain. Only a head recorded elsewhere (the
//!   certificate's [`PinnedHead`]) shows this.
//!
//! # Formats
//!
//! Hashes are blake3, 64 lowercase hex characters ([`digest`]). Keys are ed25519: a key file holds
//! the 64 hex characters of the 32 secret bytes; a [`PublicKey`] is 64 hex characters; signatures
//! are 128. The exact bytes an entry hash covers are documented on [`Entry`].

mod error;
mod fs;
mod key;
mod log;
mod signed;

pub use error::{BodyNotJson, InvalidPublicKey, NotALog, StoreError, VerifyError};
pub use fs::{digest, hex_decode, hex_encode, open_regular, read_capped, write_atomic};
pub use key::{BuildKey, PublicKey};
pub use log::{
    DecisionLog, ENTRY_BODY_BYTES_MAX, ENTRY_KIND_BYTES_MAX, Entry, GENESIS_PREV,
    LOG_FILE_BYTES_MAX, PinnedHead, verify_log, verify_log_pinned,
};
pub use signed::{Signed, canonical_json};

#[cfg(test)]
mod tests {
    fn shareable<T: Send + Sync + 'static>() {}

    /// Callers put these in `anyhow` errors and move logs between threads.
    #[test]
    fn errors_and_handles_are_send_and_sync() {
        shareable::<crate::StoreError>();
        shareable::<crate::VerifyError>();
        shareable::<crate::DecisionLog>();
        shareable::<crate::BuildKey>();
    }
}
