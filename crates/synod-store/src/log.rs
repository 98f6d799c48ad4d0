//! The decision log: a hash-chained, signed, append-only table in a redb file.

use std::fs::OpenOptions;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::RwLock;

use ed25519_dalek::VerifyingKey;
use redb::{
    Builder, Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, StorageBackend,
    TableDefinition, TableError,
};
use serde::{Deserialize, Serialize};

use crate::key::check_signature;
use crate::signed::canonical_json;
use crate::{BodyNotJson, BuildKey, NotALog, PublicKey, StoreError, VerifyError};

/// The one table of a log file: seq → the entry serialized as JSON. The version is in the name so
/// a future layout can live beside this one and old readers refuse it plainly.
const ENTRIES: TableDefinition<u64, &[u8]> = TableDefinition::new("synod_decision_log_v1");

/// `prev` of entry 0.
pub const GENESIS_PREV: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Largest JSON text accepted as an entry body.
pub const ENTRY_BODY_BYTES_MAX: usize = 16 * 1024 * 1024;

/// Longest entry kind, in bytes.
pub const ENTRY_KIND_BYTES_MAX: usize = 128;

/// Largest log file [`verify_log`] reads; it verifies a copy held in memory.
pub const LOG_FILE_BYTES_MAX: u64 = 1024 * 1024 * 1024;

/// One log entry as stored.
///
/// `hash` is blake3 (hex) over this byte string, where `len` is a `u64` little-endian byte count:
///
/// ```text
/// seq (u64 LE) ‖ len(prev) ‖ prev ‖ len(kind) ‖ kind ‖ len(body) ‖ body
/// ```
///
/// `prev` is the previous entry's hash ([`GENESIS_PREV`] for entry 0) and `body` is JSON text,
/// stored and hashed verbatim. `signature` is the build key's ed25519 signature (hex) over the
/// 64 ASCII characters of `hash`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    /// Position in the log, from 0 with no gaps.
    pub seq: u64,
    /// Hash of the previous entry.
    pub prev: String,
    /// What sort of decision this records (chosen by the caller, e.g. `"proposal"`).
    pub kind: String,
    /// The decision itself, as canonical JSON text.
    pub body: String,
    /// blake3 of the encoding above.
    pub hash: String,
    /// Signature over `hash`.
    pub signature: String,
}

impl Entry {
    /// Parses the body.
    pub fn body_json(&self) -> Result<serde_json::Value, StoreError> {
        serde_json::from_str(&self.body).map_err(|source| {
            StoreError::from(BodyNotJson {
                seq: self.seq,
                source,
            })
        })
    }

    /// The hash the entry's contents give; equal to `hash` unless the entry was changed.
    pub fn computed_hash(&self) -> String {
        entry_hash(self.seq, &self.prev, &self.kind, &self.body)
    }

    /// This entry as the head a certificate pins.
    pub fn pin(&self) -> PinnedHead {
        PinnedHead {
            seq: self.seq,
            hash: self.hash.clone(),
        }
    }
}

fn entry_hash(seq: u64, prev: &str, kind: &str, body: &str) -> String {
    let mut hasher = blake3::Hasher::new();
    hasher.update(&seq.to_le_bytes());
    for field in [prev, kind, body] {
        // usize → u64 is lossless on every platform Rust supports.
        hasher.update(&(field.len() as u64).to_le_bytes());
        hasher.update(field.as_bytes());
    }
    hasher.finalize().to_hex().to_string()
}

/// The last entry of a log as recorded elsewhere (in the certificate).
///
/// The chain alone cannot show that entries were cut from its end: what remains is still a valid
/// chain. Comparing with a head pinned at signing time can.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PinnedHead {
    /// The last entry's seq.
    pub seq: u64,
    /// The last entry's hash.
    pub hash: String,
}

impl PinnedHead {
    /// Checks that `entries` (a verified chain, as [`verify_log`] returns) ends exactly at this
    /// head.
    pub fn check(&self, entries: &[Entry]) -> Result<(), VerifyError> {
        let last = entries.last().map(|entry| entry.seq);
        match last {
            Some(last) if last > self.seq => Err(VerifyError::HeadExceeded {
                pinned: self.seq,
                last,
            }),
            Some(last) if last == self.seq => {
                let found = &entries[entries.len() - 1].hash;
                if *found == self.hash {
                    Ok(())
                } else {
                    Err(VerifyError::HeadHash {
                        seq: self.seq,
                        pinned: self.hash.clone(),
                        found: found.clone(),
                    })
                }
            }
            _ => Err(VerifyError::HeadMissing {
                pinned: self.seq,
                last,
            }),
        }
    }
}

/// Checks a chain one stored row at a time, remembering only the last entry.
struct ChainCheck {
    public: PublicKey,
    key: VerifyingKey,
    last: Option<Entry>,
}

impl ChainCheck {
    fn new(public: &PublicKey) -> Result<ChainCheck, VerifyError> {
        let key = public.verifying_key()?;
        Ok(ChainCheck {
            public: public.clone(),
            key,
            last: None,
        })
    }

    /// Checks the row stored under `row` and returns its entry.
    fn push(&mut self, row: u64, record: &[u8]) -> Result<Entry, VerifyError> {
        let entry: Entry = serde_json::from_slice(record)
            .map_err(|source| VerifyError::RecordUnparsable { seq: row, source })?;
        if entry.seq != row {
            return Err(VerifyError::SeqMismatch {
                row,
                seq: entry.seq,
            });
        }
        let (expected_seq, expected_prev) = match &self.last {
            // The table is keyed by seq, so rows arrive in increasing order and a row's key is
            // never below the expected one; a larger key means a gap.
            Some(last) => (last.seq + 1, last.hash.as_str()),
            None => (0, GENESIS_PREV),
        };
        if entry.seq != expected_seq {
            return Err(VerifyError::Missing {
                seq: expected_seq,
                next: entry.seq,
            });
        }
        if entry.prev != expected_prev {
            return Err(VerifyError::PrevMismatch {
                seq: entry.seq,
                expected: expected_prev.to_owned(),
                found: entry.prev,
            });
        }
        if entry.computed_hash() != entry.hash {
            return Err(VerifyError::HashMismatch { seq: entry.seq });
        }
        check_signature(&self.key, entry.hash.as_bytes(), &entry.signature).map_err(|reason| {
            VerifyError::EntrySignature {
                seq: entry.seq,
                fingerprint: self.public.fingerprint(),
                reason,
            }
        })?;
        if let Err(source) = serde_json::from_str::<serde::de::IgnoredAny>(&entry.body) {
            return Err(BodyNotJson {
                seq: entry.seq,
                source,
            }
            .into());
        }
        self.last = Some(entry.clone());
        Ok(entry)
    }
}

/// Reads every row of a log database through `check`, calling `keep` with each checked entry.
/// Storage errors come back as `Err(Ok(redb error))`, chain failures as `Err(Err(..))`.
fn check_rows(
    db: &impl ReadableDatabase,
    check: &mut ChainCheck,
    mut keep: impl FnMut(Entry),
) -> Result<(), RowsError> {
    let txn = db.begin_read().map_err(storage)?;
    let table = match txn.open_table(ENTRIES) {
        Ok(table) => table,
        Err(TableError::TableDoesNotExist(_)) => return Err(RowsError::NotALog),
        Err(err) => return Err(storage(err)),
    };
    for row in table.iter().map_err(storage)? {
        let (seq, record) = row.map_err(storage)?;
        let entry = check
            .push(seq.value(), record.value())
            .map_err(RowsError::Chain)?;
        keep(entry);
    }
    Ok(())
}

enum RowsError {
    Storage(Box<redb::Error>),
    NotALog,
    Chain(VerifyError),
}

fn storage(err: impl Into<redb::Error>) -> RowsError {
    RowsError::Storage(Box::new(err.into()))
}

/// Verifies a log file without any secret: reads it, checks every entry with `key`, and returns
/// the entries.
///
/// Checks, in order for each entry, stopping at the first failure: the stored record parses and
/// sits under its own seq; seqs run 0, 1, 2, … with no gaps; each `prev` is the previous entry's
/// hash; each hash recomputes from the contents; each signature verifies with `key`; each body is
/// JSON.
///
/// The file is never opened for writing and never locked. redb's integrity check (every page
/// checksum) runs over an in-memory copy, so a damaged file is reported instead of trusted. Run
/// it on a log that no process is appending to; a copy read mid-append shows the last complete
/// commit at best.
///
/// A log whose last entries were cut off still verifies: pin the head ([`verify_log_pinned`]).
pub fn verify_log(path: &Path, key: &PublicKey) -> Result<Vec<Entry>, VerifyError> {
    let mut check = ChainCheck::new(key)?;
    let bytes = read_log_file(path)?;
    let unreadable = |err: redb::Error| VerifyError::Unreadable {
        path: path.to_path_buf(),
        source: Box::new(err),
    };
    let db = Builder::new()
        .set_check_integrity_on_open(true)
        .create_with_backend(SnapshotBackend::new(bytes))
        .map_err(|err| unreadable(err.into()))?;
    let mut entries = Vec::new();
    check_rows(&db, &mut check, |entry| entries.push(entry)).map_err(|err| match err {
        RowsError::Storage(err) => unreadable(*err),
        RowsError::NotALog => NotALog {
            path: path.to_path_buf(),
        }
        .into(),
        RowsError::Chain(err) => err,
    })?;
    Ok(entries)
}

/// [`verify_log`], then checks that the log ends exactly at `head` (see [`PinnedHead::check`]).
pub fn verify_log_pinned(
    path: &Path,
    key: &PublicKey,
    head: &PinnedHead,
) -> Result<Vec<Entry>, VerifyError> {
    let entries = verify_log(path, key)?;
    head.check(&entries)?;
    Ok(entries)
}

fn read_log_file(path: &Path) -> Result<Vec<u8>, VerifyError> {
    use std::io::Read;
    let read_error = |source| VerifyError::ReadFile {
        path: path.to_path_buf(),
        source,
    };
    let mut bytes = Vec::new();
    crate::fs::open_regular(path)
        .and_then(|file| file.take(LOG_FILE_BYTES_MAX + 1).read_to_end(&mut bytes))
        .map_err(read_error)?;
    let len = bytes.len() as u64;
    if len > LOG_FILE_BYTES_MAX {
        let bytes = std::fs::metadata(path).map_or(len, |meta| meta.len());
        return Err(VerifyError::FileTooLarge {
            path: path.to_path_buf(),
            bytes,
            max_bytes: LOG_FILE_BYTES_MAX,
        });
    }
    if bytes.is_empty() {
        // redb would initialize an empty backend as a new database; an empty file is not a log.
        return Err(VerifyError::ReadFile {
            path: path.to_path_buf(),
            source: io::Error::new(io::ErrorKind::UnexpectedEof, "the file is empty"),
        });
    }
    Ok(bytes)
}

/// An in-memory copy of a log file for redb to open. redb's integrity check writes (it commits
/// its repair), and it must not write to the file being verified, nor take locks on it.
#[derive(Debug)]
struct SnapshotBackend {
    bytes: RwLock<Vec<u8>>,
}

impl SnapshotBackend {
    fn new(bytes: Vec<u8>) -> SnapshotBackend {
        SnapshotBackend {
            bytes: RwLock::new(bytes),
        }
    }

    fn range(offset: u64, len: usize, total: usize) -> io::Result<std::ops::Range<usize>> {
        let start = usize::try_from(offset).ok();
        match start.and_then(|start| Some(start..start.checked_add(len)?)) {
            Some(range) if range.end <= total => Ok(range),
            _ => Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("access of {len} bytes at offset {offset} is past the end ({total} bytes)"),
            )),
        }
    }
}

fn poisoned() -> io::Error {
    io::Error::other("snapshot lock poisoned by an earlier panic")
}

impl StorageBackend for SnapshotBackend {
    fn len(&self) -> io::Result<u64> {
        Ok(self.bytes.read().map_err(|_| poisoned())?.len() as u64)
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> io::Result<()> {
        let bytes = self.bytes.read().map_err(|_| poisoned())?;
        let range = Self::range(offset, out.len(), bytes.len())?;
        out.copy_from_slice(&bytes[range]);
        Ok(())
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        let len = usize::try_from(len).map_err(|_| io::Error::other("length exceeds memory"))?;
        if len as u64 > LOG_FILE_BYTES_MAX.saturating_mul(2) {
            return Err(io::Error::other(
                "verification copy would grow past its limit",
            ));
        }
        self.bytes.write().map_err(|_| poisoned())?.resize(len, 0);
        Ok(())
    }

    fn sync_data(&self) -> io::Result<()> {
        Ok(())
    }

    fn write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        let mut bytes = self.bytes.write().map_err(|_| poisoned())?;
        let range = Self::range(offset, data.len(), bytes.len())?;
        bytes[range].copy_from_slice(data);
        Ok(())
    }
}

/// The decision log of one build, open for appending.
///
/// Holds the redb file exclusively while it exists (a second handle, in this process or another,
/// fails to open it). Each [`append`](DecisionLog::append) is one durable write transaction,
/// committed before it returns.
#[derive(Debug)]
pub struct DecisionLog {
    path: PathBuf,
    db: Database,
    key: BuildKey,
    head: Option<Entry>,
}

impl DecisionLog {
    /// Creates a new, empty log at `path`. Fails with [`StoreError::LogExists`] if any file is
    /// already there.
    pub fn create(path: &Path, key: BuildKey) -> Result<DecisionLog, StoreError> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(path)
            .map_err(|source| match source.kind() {
                io::ErrorKind::AlreadyExists => StoreError::LogExists {
                    path: path.to_path_buf(),
                },
                _ => StoreError::Io {
                    action: "create decision log",
                    path: path.to_path_buf(),
                    source,
                },
            })?;
        let created = Self::initialize(path, file);
        match created {
            Ok(db) => Ok(DecisionLog {
                path: path.to_path_buf(),
                db,
                key,
                head: None,
            }),
            Err(err) => {
                // Leave no half-made log behind, so a retry can create it again.
                let _ = std::fs::remove_file(path);
                Err(err)
            }
        }
    }

    fn initialize(path: &Path, file: std::fs::File) -> Result<Database, StoreError> {
        let backend = redb::backends::FileBackend::new(file).at(path)?;
        let db = Builder::new().create_with_backend(backend).at(path)?;
        let txn = db.begin_write().at(path)?;
        txn.open_table(ENTRIES).at(path)?;
        txn.commit().at(path)?;
        let dir = match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        };
        crate::fs::sync_dir(dir).map_err(|source| StoreError::Io {
            action: "sync the directory of",
            path: path.to_path_buf(),
            source,
        })?;
        Ok(db)
    }

    /// Opens an existing log to continue it (after a resume). redb checks every page checksum,
    /// then the whole chain is verified with `key`'s public half; a log that fails either is
    /// refused (a wrong key fails at entry 0's signature).
    ///
    /// If the last commit was interrupted by a crash, redb's recovery rewrites the file back to
    /// the last complete commit before the chain is checked.
    ///
    /// A log that fails is left exactly as it was: it is first verified on an in-memory copy
    /// ([`verify_log`]), because redb's integrity check commits on open, and a damaged log must
    /// never be silently repaired or extended.
    pub fn open(path: &Path, key: BuildKey) -> Result<DecisionLog, StoreError> {
        if let Err(source) = std::fs::metadata(path) {
            return Err(StoreError::Io {
                action: "open decision log",
                path: path.to_path_buf(),
                source,
            });
        }
        verify_log(path, &key.public()).map_err(|err| match err {
            VerifyError::ReadFile { source, .. } => StoreError::Io {
                action: "read decision log",
                path: path.to_path_buf(),
                source,
            },
            VerifyError::Unreadable { source, .. } => StoreError::Database {
                path: path.to_path_buf(),
                source,
            },
            VerifyError::NotALog(not_a_log) => StoreError::NotALog(not_a_log),
            source => StoreError::Chain {
                path: path.to_path_buf(),
                source,
            },
        })?;
        let db = Builder::new()
            .set_check_integrity_on_open(true)
            .open(path)
            .at(path)?;
        let mut check = ChainCheck::new(&key.public()).map_err(|source| StoreError::Chain {
            path: path.to_path_buf(),
            source,
        })?;
        check_rows(&db, &mut check, drop).map_err(|err| match err {
            RowsError::Storage(source) => StoreError::Database {
                path: path.to_path_buf(),
                source,
            },
            RowsError::NotALog => NotALog {
                path: path.to_path_buf(),
            }
            .into(),
            RowsError::Chain(source) => StoreError::Chain {
                path: path.to_path_buf(),
                source,
            },
        })?;
        Ok(DecisionLog {
            path: path.to_path_buf(),
            db,
            key,
            head: check.last,
        })
    }

    /// Appends one entry of `kind` with `body` (stored as canonical JSON: object keys sorted) and
    /// returns it once it is durably committed.
    ///
    /// `kind` must be 1 to [`ENTRY_KIND_BYTES_MAX`] bytes without control characters; the body's
    /// JSON text must fit in [`ENTRY_BODY_BYTES_MAX`]. On any error nothing is written and the
    /// log is as before.
    pub fn append(&mut self, kind: &str, body: &serde_json::Value) -> Result<Entry, StoreError> {
        check_kind(kind)?;
        let body = canonical_json(body);
        if body.len() > ENTRY_BODY_BYTES_MAX {
            return Err(StoreError::BodyTooLarge {
                kind: kind.to_owned(),
                bytes: body.len(),
                max_bytes: ENTRY_BODY_BYTES_MAX,
            });
        }
        let (seq, prev) = match &self.head {
            Some(head) => (head.seq + 1, head.hash.clone()),
            None => (0, GENESIS_PREV.to_owned()),
        };
        let hash = entry_hash(seq, &prev, kind, &body);
        let signature = self.key.sign(hash.as_bytes());
        let entry = Entry {
            seq,
            prev,
            kind: kind.to_owned(),
            body,
            hash,
            signature,
        };
        let record = serde_json::to_vec(&entry).expect("an Entry of strings and a u64 serializes");

        let mut txn = self.db.begin_write().at(&self.path)?;
        // An audit log is worth the extra fsync: a crash mid-commit cannot leave a partial commit.
        txn.set_two_phase_commit(true);
        {
            let mut table = txn.open_table(ENTRIES).at(&self.path)?;
            // The handle holds the file exclusively, so this only fails if our own state is wrong
            // or the file was rewritten behind redb's back; never overwrite an entry either way.
            let found = table.len().at(&self.path)?;
            if found != seq {
                return Err(StoreError::ConcurrentChange {
                    path: self.path.clone(),
                    expected: seq,
                    found,
                });
            }
            table.insert(seq, record.as_slice()).at(&self.path)?;
        }
        txn.commit().at(&self.path)?;
        self.head = Some(entry.clone());
        Ok(entry)
    }

    /// Every entry, in order, read back from the file. Records are parsed and their seqs checked;
    /// hashes and signatures were checked on open and by `append`, so they are not re-checked
    /// here (use [`verify_log`] for a full check).
    pub fn entries(&self) -> Result<Vec<Entry>, StoreError> {
        let chain_error = |source| StoreError::Chain {
            path: self.path.clone(),
            source,
        };
        let txn = self.db.begin_read().at(&self.path)?;
        let table = txn.open_table(ENTRIES).at(&self.path)?;
        let mut entries = Vec::new();
        for row in table.iter().at(&self.path)? {
            let (seq, record) = row.at(&self.path)?;
            let seq = seq.value();
            let entry: Entry = serde_json::from_slice(record.value())
                .map_err(|source| chain_error(VerifyError::RecordUnparsable { seq, source }))?;
            let expected = entries.len() as u64;
            if seq != expected {
                return Err(chain_error(VerifyError::Missing {
                    seq: expected,
                    next: seq,
                }));
            }
            if entry.seq != seq {
                return Err(chain_error(VerifyError::SeqMismatch {
                    row: seq,
                    seq: entry.seq,
                }));
            }
            entries.push(entry);
        }
        Ok(entries)
    }

    /// The last entry, if any.
    pub fn head(&self) -> Option<&Entry> {
        self.head.as_ref()
    }

    /// Number of entries.
    pub fn len(&self) -> u64 {
        self.head.as_ref().map_or(0, |head| head.seq + 1)
    }

    /// Whether the log has no entries.
    pub fn is_empty(&self) -> bool {
        self.head.is_none()
    }

    /// The key entries are signed with (to sign the certificate with the same key).
    pub fn key(&self) -> &BuildKey {
        &self.key
    }

    /// The log file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Attaches the log's path to a redb error.
trait AtPath<T> {
    fn at(self, path: &Path) -> Result<T, StoreError>;
}

impl<T, E: Into<redb::Error>> AtPath<T> for Result<T, E> {
    fn at(self, path: &Path) -> Result<T, StoreError> {
        self.map_err(|err| StoreError::Database {
            path: path.to_path_buf(),
            source: Box::new(err.into()),
        })
    }
}

fn check_kind(kind: &str) -> Result<(), StoreError> {
    let invalid = |reason: &str| StoreError::InvalidKind {
        kind: kind.chars().take(ENTRY_KIND_BYTES_MAX).collect(),
        reason: reason.to_owned(),
    };
    if kind.is_empty() {
        return Err(invalid("it is empty"));
    }
    if kind.len() > ENTRY_KIND_BYTES_MAX {
        return Err(invalid(&format!(
            "it is {} bytes, over the limit of {ENTRY_KIND_BYTES_MAX}",
            kind.len()
        )));
    }
    if kind.chars().any(char::is_control) {
        return Err(invalid("it contains control characters"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_is_length_prefixed() {
        // Moving a byte between fields must change the hash; plain concatenation would not.
        assert_ne!(
            entry_hash(0, "ab", "c", "{}"),
            entry_hash(0, "a", "bc", "{}")
        );
        assert_ne!(entry_hash(0, "a", "b", "{}"), entry_hash(1, "a", "b", "{}"));
    }

    #[test]
    fn hash_matches_the_documented_encoding() {
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&7u64.to_le_bytes());
        for field in ["p", "kind", "{\"a\":1}"] {
            bytes.extend_from_slice(&(field.len() as u64).to_le_bytes());
            bytes.extend_from_slice(field.as_bytes());
        }
        assert_eq!(
            entry_hash(7, "p", "kind", "{\"a\":1}"),
            crate::digest(&bytes)
        );
    }

    #[test]
    fn kinds_are_checked() {
        check_kind("proposal").unwrap();
        assert!(check_kind("").is_err());
        assert!(check_kind("a\nb").is_err());
        assert!(check_kind(&"x".repeat(ENTRY_KIND_BYTES_MAX + 1)).is_err());
    }

    fn entry(seq: u64, hash: &str) -> Entry {
        Entry {
            seq,
            prev: String::new(),
            kind: "k".into(),
            body: "{}".into(),
            hash: hash.into(),
            signature: String::new(),
        }
    }

    #[test]
    fn pinned_head_rule_log_must_end_exactly_at_the_pin() {
        let pin = PinnedHead {
            seq: 1,
            hash: "h1".into(),
        };
        pin.check(&[entry(0, "h0"), entry(1, "h1")]).unwrap();
        assert!(matches!(
            pin.check(&[entry(0, "h0")]),
            Err(VerifyError::HeadMissing {
                pinned: 1,
                last: Some(0)
            })
        ));
        assert!(matches!(
            pin.check(&[]),
            Err(VerifyError::HeadMissing {
                pinned: 1,
                last: None
            })
        ));
        assert!(matches!(
            pin.check(&[entry(0, "h0"), entry(1, "other")]),
            Err(VerifyError::HeadHash { seq: 1, .. })
        ));
        assert!(matches!(
            pin.check(&[entry(0, "h0"), entry(1, "h1"), entry(2, "h2")]),
            Err(VerifyError::HeadExceeded { pinned: 1, last: 2 })
        ));
    }
}
