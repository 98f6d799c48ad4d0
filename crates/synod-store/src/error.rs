//! The crate's two error types: [`StoreError`] for operations on keys, logs and files, and
//! [`VerifyError`] for a log or document that fails verification. The failures both can report
//! ([`NotALog`], [`InvalidPublicKey`], [`BodyNotJson`]) are one type each, shared by the two.

use std::io;
use std::path::PathBuf;

/// A file that is a redb database but does not hold a decision log.
#[derive(Debug, thiserror::Error)]
#[error("{} is a redb database but holds no synod decision log", path.display())]
pub struct NotALog {
    /// The file.
    pub path: PathBuf,
}

/// A public key that is not 64 hex characters or not a valid ed25519 point.
#[derive(Debug, thiserror::Error)]
#[error("public key {key:?} is not a valid ed25519 key: {reason}")]
pub struct InvalidPublicKey {
    /// The key as given.
    pub key: String,
    /// What is wrong with it.
    pub reason: String,
}

/// An entry whose body is not valid JSON.
#[derive(Debug, thiserror::Error)]
#[error("entry {seq}: body is not valid JSON: {source}")]
pub struct BodyNotJson {
    /// The entry.
    pub seq: u64,
    /// The parse error.
    #[source]
    pub source: serde_json::Error,
}

/// Everything that can go wrong while creating, opening, appending to or reading a decision log,
/// or while handling a build key.
///
/// Every variant that concerns a file names it, so the message alone tells the user where to look.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// An operating-system call on a file failed (open, read, write, rename, sync).
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        /// What was being attempted, as a verb phrase ("read key file").
        action: &'static str,
        /// The file concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },

    /// [`DecisionLog::create`](crate::DecisionLog::create) was asked to create a log where a file
    /// already exists; an existing log is continued with
    /// [`DecisionLog::open`](crate::DecisionLog::open).
    #[error(
        "decision log {} already exists (use DecisionLog::open to continue it)",
        path.display()
    )]
    LogExists {
        /// The existing file.
        path: PathBuf,
    },

    /// redb reported an error: the file is damaged, is not a redb database, or storage failed.
    #[error("decision log {}: {source}", path.display())]
    Database {
        /// The log file.
        path: PathBuf,
        /// redb's error, boxed because it is large.
        #[source]
        source: Box<redb::Error>,
    },

    /// The file is a redb database but does not hold a decision log.
    #[error(transparent)]
    NotALog(#[from] NotALog),

    /// A key file does not hold exactly 64 hex characters (an optional final newline aside).
    #[error("key file {} is malformed: {reason}", path.display())]
    KeyFile {
        /// The key file.
        path: PathBuf,
        /// What is wrong with its contents.
        reason: String,
    },

    /// A public key is not 64 hex characters or not a valid ed25519 point.
    #[error(transparent)]
    PublicKey(#[from] InvalidPublicKey),

    /// A signature is malformed or does not verify.
    #[error("signature does not verify with key {fingerprint}: {reason}")]
    Signature {
        /// Fingerprint of the key the signature was checked against.
        fingerprint: String,
        /// Why it failed.
        reason: String,
    },

    /// The kind given to [`DecisionLog::append`](crate::DecisionLog::append) is empty, too long,
    /// or contains control characters.
    #[error("entry kind {kind:?} is invalid: {reason}")]
    InvalidKind {
        /// The kind as given.
        kind: String,
        /// What is wrong with it.
        reason: String,
    },

    /// An entry body is larger than [`ENTRY_BODY_BYTES_MAX`](crate::ENTRY_BODY_BYTES_MAX).
    #[error("body of {kind:?} entry is {bytes} bytes, over the limit of {max_bytes} bytes")]
    BodyTooLarge {
        /// The kind of the rejected entry.
        kind: String,
        /// Size of its JSON text.
        bytes: usize,
        /// The limit.
        max_bytes: usize,
    },

    /// The existing chain of a log failed verification when it was opened or read. The message
    /// names the last good entry ([`VerifyError::last_good`]).
    #[error(
        "decision log {} fails verification: {source} ({})",
        path.display(),
        last_good_words(source)
    )]
    Chain {
        /// The log file.
        path: PathBuf,
        /// The first failure found.
        #[source]
        source: crate::VerifyError,
    },

    /// An entry's body is not valid JSON.
    #[error(transparent)]
    BodyJson(#[from] BodyNotJson),

    /// The rows on disk no longer match what this handle appended: something else wrote to the
    /// file. The append was not made.
    #[error(
        "decision log {} changed outside this handle: expected {expected} entries, found {found}",
        path.display()
    )]
    ConcurrentChange {
        /// The log file.
        path: PathBuf,
        /// Entry count this handle expected.
        expected: u64,
        /// Entry count found in the file.
        found: u64,
    },
}

/// Why a decision log or a signed document failed verification.
///
/// Chain failures name the entry (its `seq`) and the part that failed, in words a user can act on.
/// Verification stops at the first failure.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// The log file could not be read at all.
    #[error("cannot read decision log {}: {source}", path.display())]
    ReadFile {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },

    /// The log file is larger than [`LOG_FILE_BYTES_MAX`](crate::LOG_FILE_BYTES_MAX).
    #[error("decision log {} is {bytes} bytes, over the verification limit of {max_bytes} bytes", path.display())]
    FileTooLarge {
        /// The file.
        path: PathBuf,
        /// Its size.
        bytes: u64,
        /// The limit.
        max_bytes: u64,
    },

    /// The file is not a readable redb database: garbage, truncated, or damaged pages.
    #[error("{} is not a readable decision log (damaged, truncated, or not a redb file): {source}", path.display())]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// redb's error, boxed because it is large.
        #[source]
        source: Box<redb::Error>,
    },

    /// The file is a redb database but does not hold a decision log.
    #[error(transparent)]
    NotALog(#[from] NotALog),

    /// The stored record of an entry is not a valid entry.
    #[error("entry {seq}: stored record does not parse: {source}")]
    RecordUnparsable {
        /// The row's key.
        seq: u64,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },

    /// A row's key differs from the `seq` recorded inside it: the record was moved.
    #[error("entry {row}: the record stored here says it is entry {seq} (moved)")]
    SeqMismatch {
        /// The row's key.
        row: u64,
        /// The seq inside the record.
        seq: u64,
    },

    /// An entry is absent where the next one was expected.
    #[error("entry {seq} missing: {}", gap_words(*.seq, *.next))]
    Missing {
        /// The absent entry.
        seq: u64,
        /// The entry found in its place.
        next: u64,
    },

    /// An entry's `prev` is not the hash of the entry before it.
    #[error("entry {seq}: {}", prev_words(*.seq, .expected, .found))]
    PrevMismatch {
        /// The entry.
        seq: u64,
        /// The hash it should link to.
        expected: String,
        /// The hash it links to.
        found: String,
    },

    /// An entry's hash does not recompute from its contents.
    #[error("entry {seq}: hash does not match its contents (changed after signing)")]
    HashMismatch {
        /// The entry.
        seq: u64,
    },

    /// An entry's signature is malformed or was not made by the given key over its hash.
    #[error("signature of entry {seq} does not verify with key {fingerprint}: {reason}")]
    EntrySignature {
        /// The entry.
        seq: u64,
        /// Fingerprint of the key checked against.
        fingerprint: String,
        /// Why it failed.
        reason: String,
    },

    /// An entry is correctly signed, but its body is not valid JSON.
    #[error(transparent)]
    BodyNotJson(#[from] BodyNotJson),

    /// The public key to verify with is not a valid ed25519 key.
    #[error(transparent)]
    PublicKey(#[from] InvalidPublicKey),

    /// The log ends before the head pinned by a certificate: entries were removed from the end.
    #[error("entry {pinned} missing: {} but the certificate pins head {pinned}", end_words(*.last))]
    HeadMissing {
        /// The pinned head's seq.
        pinned: u64,
        /// The last entry present, if any.
        last: Option<u64>,
    },

    /// The log continues past the head pinned by a certificate.
    #[error(
        "log has entries up to {last} but the certificate pins head {pinned}: entries were added after the certificate"
    )]
    HeadExceeded {
        /// The pinned head's seq.
        pinned: u64,
        /// The last entry present.
        last: u64,
    },

    /// The entry at the pinned seq has a different hash than the certificate records.
    #[error("entry {seq}: hash {found} differs from the head {pinned} pinned by the certificate")]
    HeadHash {
        /// The entry.
        seq: u64,
        /// The hash the certificate pins.
        pinned: String,
        /// The hash in the log.
        found: String,
    },

    /// A signed document's signature is malformed or does not match its body.
    #[error("signature of the document does not verify with key {fingerprint}: {reason}")]
    DocumentSignature {
        /// Fingerprint of the key named in the document.
        fingerprint: String,
        /// Why it failed.
        reason: String,
    },

    /// A signed document was signed by a key other than the one expected.
    #[error("document is signed by key {found}, not by the expected key {expected}")]
    WrongKey {
        /// Fingerprint of the expected key.
        expected: String,
        /// Fingerprint of the key in the document.
        found: String,
    },
}

impl VerifyError {
    /// The last entry that verified before this failure, when the failure is in the chain:
    /// entries `0..=last_good` are intact. `None` when the failure is at entry 0, or when no
    /// entry could be read at all (a file redb refuses, a key that is not a key) — then no entry
    /// is known good.
    pub fn last_good(&self) -> Option<u64> {
        match self {
            VerifyError::RecordUnparsable { seq, .. }
            | VerifyError::Missing { seq, .. }
            | VerifyError::PrevMismatch { seq, .. }
            | VerifyError::HashMismatch { seq }
            | VerifyError::EntrySignature { seq, .. }
            | VerifyError::BodyNotJson(BodyNotJson { seq, .. })
            | VerifyError::HeadHash { seq, .. } => seq.checked_sub(1),
            VerifyError::SeqMismatch { row, .. } => row.checked_sub(1),
            VerifyError::HeadMissing { last, .. } => *last,
            VerifyError::HeadExceeded { pinned, .. } => Some(*pinned),
            VerifyError::ReadFile { .. }
            | VerifyError::FileTooLarge { .. }
            | VerifyError::Unreadable { .. }
            | VerifyError::NotALog { .. }
            | VerifyError::PublicKey { .. }
            | VerifyError::DocumentSignature { .. }
            | VerifyError::WrongKey { .. } => None,
        }
    }
}

fn last_good_words(error: &VerifyError) -> String {
    match error.last_good() {
        Some(good) => format!("entries 0 to {good} verify; the last good entry is {good}"),
        None => "no entry verifies".to_owned(),
    }
}

fn gap_words(seq: u64, next: u64) -> String {
    match seq.checked_sub(1) {
        Some(before) => format!("log jumps from {before} to {next}"),
        None => format!("log starts at {next}"),
    }
}

fn prev_words(seq: u64, expected: &str, found: &str) -> String {
    match seq.checked_sub(1) {
        Some(before) => format!(
            "link to the previous entry is broken (prev is {found} but entry {before} has hash \
             {expected}): an entry before it was changed, removed or reordered"
        ),
        None => format!("first entry's prev is {found}, expected {expected}"),
    }
}

fn end_words(last: Option<u64>) -> String {
    match last {
        Some(last) => format!("log ends at {last}"),
        None => "log is empty".to_owned(),
    }
}
