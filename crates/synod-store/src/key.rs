//! Build keys (ed25519 signing keys) and their public halves.

use std::fmt;
use std::fs::File;
use std::io::Read;
use std::path::Path;

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

use crate::fs::{hex_decode, hex_encode, write_atomic_mode};
use crate::{InvalidPublicKey, StoreError};

/// Key files are 64 hex characters and a newline; anything much longer is not a key file, and
/// reading it whole would only waste memory.
const KEY_FILE_BYTES_MAX: u64 = 1024;

/// A build's signing key: an ed25519 secret key that signs every log entry and the certificate.
///
/// `Debug` shows only the public fingerprint, never the secret.
#[derive(Clone)]
pub struct BuildKey {
    signing: SigningKey,
}

impl BuildKey {
    /// Generates a fresh key from 32 bytes of `/dev/urandom`.
    pub fn generate() -> Result<BuildKey, StoreError> {
        const SOURCE: &str = "/dev/urandom";
        let mut secret = [0u8; 32];
        File::open(SOURCE)
            .and_then(|mut file| file.read_exact(&mut secret))
            .map_err(|source| StoreError::Io {
                action: "read random bytes from",
                path: SOURCE.into(),
                source,
            })?;
        let key = BuildKey {
            signing: SigningKey::from_bytes(&secret),
        };
        secret.fill(0);
        Ok(key)
    }

    /// Builds a key from its 32 secret bytes, for tests and for callers that keep keys elsewhere.
    pub fn from_secret_bytes(secret: &[u8; 32]) -> BuildKey {
        BuildKey {
            signing: SigningKey::from_bytes(secret),
        }
    }

    /// Writes the key to `path` as the hex of its 32 secret bytes and a newline, atomically
    /// (temp file in the same directory, fsync, rename), with file mode 0600 from the start.
    ///
    /// An existing file at `path` is replaced.
    pub fn save(&self, path: &Path) -> Result<(), StoreError> {
        let mut text = hex_encode(self.signing.as_bytes());
        text.push('\n');
        write_atomic_mode(path, text.as_bytes(), 0o600).map_err(|source| StoreError::Io {
            action: "write key file",
            path: path.to_path_buf(),
            source,
        })
    }

    /// Reads a key written by [`BuildKey::save`]: exactly 64 hex characters, optionally followed
    /// by one newline. Anything else is a [`StoreError::KeyFile`] naming the file.
    pub fn load(path: &Path) -> Result<BuildKey, StoreError> {
        let io_error = |source| StoreError::Io {
            action: "read key file",
            path: path.to_path_buf(),
            source,
        };
        let malformed = |reason: String| StoreError::KeyFile {
            path: path.to_path_buf(),
            reason,
        };
        let mut bytes = Vec::new();
        crate::fs::open_regular(path)
            .and_then(|file| file.take(KEY_FILE_BYTES_MAX + 1).read_to_end(&mut bytes))
            .map_err(io_error)?;
        if bytes.len() as u64 > KEY_FILE_BYTES_MAX {
            return Err(malformed(format!(
                "longer than {KEY_FILE_BYTES_MAX} bytes; a key file is 64 hex characters"
            )));
        }
        let text = std::str::from_utf8(&bytes)
            .map_err(|_| malformed("not UTF-8 text; expected 64 hex characters".to_owned()))?;
        let hex = text.strip_suffix('\n').unwrap_or(text);
        let secret = hex_decode::<32>(hex).map_err(malformed)?;
        Ok(BuildKey::from_secret_bytes(&secret))
    }

    /// The ed25519 key itself, for protocols that sign their own messages (`synod node`'s
    /// BFT votes).
    pub fn ed25519(&self) -> &SigningKey {
        &self.signing
    }

    /// The public half of this key.
    pub fn public(&self) -> PublicKey {
        PublicKey(hex_encode(self.signing.verifying_key().as_bytes()))
    }

    /// Signs `msg`, returning the 64-byte ed25519 signature as 128 hex characters.
    pub fn sign(&self, msg: &[u8]) -> String {
        hex_encode(&self.signing.sign(msg).to_bytes())
    }
}

impl fmt::Debug for BuildKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BuildKey")
            .field("public", &self.public().fingerprint())
            .finish_non_exhaustive()
    }
}

/// The public half of a [`BuildKey`], as 64 lowercase hex characters.
///
/// The string is not checked on construction (it usually comes from a file); every use that
/// needs the key parses it and reports a malformed one as an error.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicKey(pub String);

impl PublicKey {
    /// A short name for the key to show users: `"blake3:"` and the first 32 hex characters of
    /// blake3 over the 32 public key bytes.
    ///
    /// A string that is not valid hex is fingerprinted over its text, so that even a malformed
    /// key has a stable name in error messages.
    pub fn fingerprint(&self) -> String {
        let hash = match hex_decode::<32>(&self.0) {
            Ok(bytes) => blake3::hash(&bytes),
            Err(_) => blake3::hash(self.0.as_bytes()),
        };
        let hex = hash.to_hex();
        format!("blake3:{}", &hex.as_str()[..32])
    }

    /// Checks that `sig_hex` is this key's signature over `msg`.
    ///
    /// Uses ed25519's strict verification, which also rejects weak keys and malleable signatures.
    pub fn verify(&self, msg: &[u8], sig_hex: &str) -> Result<(), StoreError> {
        let key = self.verifying_key()?;
        check_signature(&key, msg, sig_hex).map_err(|reason| StoreError::Signature {
            fingerprint: self.fingerprint(),
            reason,
        })
    }

    /// Parses the hex into a dalek key; the error is in words.
    pub fn verifying_key(&self) -> Result<VerifyingKey, InvalidPublicKey> {
        let invalid = |reason| InvalidPublicKey {
            key: self.0.clone(),
            reason,
        };
        let bytes = hex_decode::<32>(&self.0).map_err(invalid)?;
        VerifyingKey::from_bytes(&bytes)
            .map_err(|_| invalid("the bytes are not a point on the ed25519 curve".to_owned()))
    }
}

/// Checks one signature with an already parsed key; the error is in words.
pub(crate) fn check_signature(key: &VerifyingKey, msg: &[u8], sig_hex: &str) -> Result<(), String> {
    let bytes =
        hex_decode::<64>(sig_hex).map_err(|reason| format!("malformed signature: {reason}"))?;
    let signature = Signature::from_bytes(&bytes);
    key.verify_strict(msg, &signature)
        .map_err(|_| "it was made by another key or over different data".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> BuildKey {
        BuildKey::from_secret_bytes(&[byte; 32])
    }

    #[test]
    fn signature_verifies_with_own_key_only() {
        let sig = key(1).sign(b"hello");
        assert_eq!(sig.len(), 128);
        key(1).public().verify(b"hello", &sig).unwrap();
        assert!(matches!(
            key(1).public().verify(b"hellO", &sig),
            Err(StoreError::Signature { .. })
        ));
        assert!(matches!(
            key(2).public().verify(b"hello", &sig),
            Err(StoreError::Signature { .. })
        ));
    }

    #[test]
    fn malformed_public_key_and_signature_are_errors() {
        let err = PublicKey("zz".into()).verify(b"x", "00").unwrap_err();
        assert!(matches!(err, StoreError::PublicKey { .. }), "{err}");
        let err = key(1).public().verify(b"x", "not hex").unwrap_err();
        assert!(err.to_string().contains("malformed signature"), "{err}");
    }

    #[test]
    fn fingerprint_has_the_documented_shape() {
        let fingerprint = key(1).public().fingerprint();
        assert!(fingerprint.starts_with("blake3:"));
        assert_eq!(fingerprint.len(), "blake3:".len() + 32);
        assert_ne!(fingerprint, key(2).public().fingerprint());
        // Malformed keys still get a name.
        assert!(
            PublicKey("nope".into())
                .fingerprint()
                .starts_with("blake3:")
        );
    }

    #[test]
    fn debug_does_not_show_the_secret() {
        let shown = format!("{:?}", key(0xab));
        assert!(!shown.contains("abab"), "{shown}");
        assert!(shown.contains("blake3:"), "{shown}");
    }
}
