//! Integration tests for synod-store, on real files in a fresh temporary directory per test.
//!
//! Tamper tests edit the redb file through redb itself, as an attacker with write access would:
//! the file stays a valid database, so only the chain's own checks can catch the change.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use redb::{Database, ReadableTable, TableDefinition};
use serde_json::{Value, json};
use synod_store::{
    BuildKey, DecisionLog, Entry, GENESIS_PREV, PublicKey, Signed, StoreError, VerifyError, digest,
    verify_log, verify_log_pinned, write_atomic,
};

/// The log's table, as an attacker would name it after reading the source.
const ENTRIES: TableDefinition<u64, &[u8]> = TableDefinition::new("synod_decision_log_v1");

/// A directory under the system temp dir, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(test: &str) -> TempDir {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let unique = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!(
            "synod-store-{test}-{}-{unique}",
            std::process::id()
        ));
        if path.exists() {
            std::fs::remove_dir_all(&path).unwrap();
        }
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }

    fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn key(byte: u8) -> BuildKey {
    BuildKey::from_secret_bytes(&[byte; 32])
}

/// A closed log at `path` with `n` entries, signed by `key(1)`; returns its entries.
fn write_log(path: &Path, n: u64) -> Vec<Entry> {
    let mut log = DecisionLog::create(path, key(1)).unwrap();
    for i in 0..n {
        log.append("step", &json!({"i": i, "note": format!("decision {i}")}))
            .unwrap();
    }
    log.entries().unwrap()
}

/// Rewrites the log's table directly through redb.
fn tamper(path: &Path, edit: impl FnOnce(&mut redb::Table<u64, &[u8]>)) {
    let db = Database::open(path).unwrap();
    let txn = db.begin_write().unwrap();
    {
        let mut table = txn.open_table(ENTRIES).unwrap();
        edit(&mut table);
    }
    txn.commit().unwrap();
}

fn read_row(table: &redb::Table<u64, &[u8]>, seq: u64) -> Entry {
    serde_json::from_slice(table.get(seq).unwrap().unwrap().value()).unwrap()
}

fn write_row(table: &mut redb::Table<u64, &[u8]>, entry: &Entry) {
    let record = serde_json::to_vec(entry).unwrap();
    table.insert(entry.seq, record.as_slice()).unwrap();
}

/// The hash of an entry's contents, computed independently from the documented encoding.
fn recompute_hash(entry: &Entry) -> String {
    let mut bytes = entry.seq.to_le_bytes().to_vec();
    for field in [&entry.prev, &entry.kind, &entry.body] {
        bytes.extend_from_slice(&(field.len() as u64).to_le_bytes());
        bytes.extend_from_slice(field.as_bytes());
    }
    digest(&bytes)
}

#[test]
fn append_and_read_back() {
    let dir = TempDir::new("append");
    let path = dir.join("log.redb");
    let mut log = DecisionLog::create(&path, key(1)).unwrap();
    assert_eq!(log.len(), 0);
    assert!(log.head().is_none());

    let first = log
        .append("proposal", &json!({"b": 2, "a": [1, "x"]}))
        .unwrap();
    let second = log.append("decide", &json!({"value": null})).unwrap();

    assert_eq!(first.seq, 0);
    assert_eq!(first.prev, GENESIS_PREV);
    assert_eq!(
        first.body, r#"{"a":[1,"x"],"b":2}"#,
        "body is canonical JSON"
    );
    assert_eq!(first.hash, recompute_hash(&first));
    key(1)
        .public()
        .verify(first.hash.as_bytes(), &first.signature)
        .unwrap();
    assert_eq!(second.seq, 1);
    assert_eq!(second.prev, first.hash);
    assert_eq!(second.body_json().unwrap(), json!({"value": null}));

    assert_eq!(log.len(), 2);
    assert_eq!(log.head(), Some(&second));
    assert_eq!(log.entries().unwrap(), vec![first, second]);
}

#[test]
fn reopen_after_drop_continues_the_chain() {
    let dir = TempDir::new("reopen");
    let path = dir.join("log.redb");
    let before = write_log(&path, 3);

    let mut log = DecisionLog::open(&path, key(1)).unwrap();
    assert_eq!(log.len(), 3);
    assert_eq!(log.head(), before.last());
    let next = log.append("resumed", &json!({"after": "crash"})).unwrap();
    assert_eq!(next.seq, 3);
    assert_eq!(next.prev, before[2].hash);
    drop(log);

    let entries = verify_log(&path, &key(1).public()).unwrap();
    assert_eq!(entries.len(), 4);
    assert_eq!(entries[..3], before[..]);
    assert_eq!(entries[3], next);
}

#[test]
fn verify_passes_on_an_untouched_log() {
    let dir = TempDir::new("verify");
    let path = dir.join("log.redb");
    let written = write_log(&path, 5);
    assert_eq!(verify_log(&path, &key(1).public()).unwrap(), written);
    let head = written.last().unwrap().pin();
    verify_log_pinned(&path, &key(1).public(), &head).unwrap();

    let empty = dir.join("empty.redb");
    drop(DecisionLog::create(&empty, key(1)).unwrap());
    assert_eq!(verify_log(&empty, &key(1).public()).unwrap(), vec![]);
    assert_eq!(DecisionLog::open(&empty, key(1)).unwrap().len(), 0);
}

#[test]
fn create_refuses_an_existing_file_and_open_a_missing_one() {
    let dir = TempDir::new("exists");
    let path = dir.join("log.redb");
    write_log(&path, 1);
    let err = DecisionLog::create(&path, key(1)).unwrap_err();
    assert!(matches!(err, StoreError::LogExists { .. }), "{err}");
    assert!(err.to_string().contains("log.redb"), "{err}");
    // The refused create left the existing log alone.
    assert_eq!(verify_log(&path, &key(1).public()).unwrap().len(), 1);

    let missing = dir.join("missing.redb");
    let err = DecisionLog::open(&missing, key(1)).unwrap_err();
    assert!(err.to_string().contains("missing.redb"), "{err}");
    let err = verify_log(&missing, &key(1).public()).unwrap_err();
    assert!(matches!(err, VerifyError::ReadFile { .. }), "{err}");
}

#[test]
fn a_log_open_for_appending_cannot_be_opened_twice() {
    let dir = TempDir::new("twice");
    let path = dir.join("log.redb");
    write_log(&path, 1);
    let _log = DecisionLog::open(&path, key(1)).unwrap();
    let err = DecisionLog::open(&path, key(1)).unwrap_err();
    assert!(matches!(err, StoreError::Database { .. }), "{err}");
}

#[test]
fn append_rejects_a_bad_kind_and_leaves_the_log_unchanged() {
    let dir = TempDir::new("kind");
    let path = dir.join("log.redb");
    let mut log = DecisionLog::create(&path, key(1)).unwrap();
    log.append("ok", &json!(1)).unwrap();
    for kind in ["", "two\nlines", &"k".repeat(200)] {
        let err = log.append(kind, &json!(2)).unwrap_err();
        assert!(matches!(err, StoreError::InvalidKind { .. }), "{err}");
    }
    assert_eq!(log.len(), 1);
    let next = log.append("ok", &json!(3)).unwrap();
    assert_eq!(next.seq, 1);
    drop(log);
    assert_eq!(verify_log(&path, &key(1).public()).unwrap().len(), 2);
}

#[test]
fn tamper_changed_body_fails_the_hash_check() {
    let dir = TempDir::new("body");
    let path = dir.join("log.redb");
    write_log(&path, 5);
    tamper(&path, |table| {
        let mut entry = read_row(table, 3);
        entry.body = r#"{"i":3,"note":"something else"}"#.into();
        write_row(table, &entry);
    });
    let err = verify_log(&path, &key(1).public()).unwrap_err();
    assert!(
        matches!(err, VerifyError::HashMismatch { seq: 3 }),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "entry 3: hash does not match its contents (changed after signing)"
    );
    // A resumed build refuses the log too.
    let err = DecisionLog::open(&path, key(1)).unwrap_err();
    assert!(matches!(err, StoreError::Chain { .. }), "{err}");
    assert!(
        err.to_string().contains("entry 3: hash does not match"),
        "{err}"
    );
}

#[test]
fn tamper_changed_body_with_recomputed_hash_fails_the_signature() {
    let dir = TempDir::new("rehash");
    let path = dir.join("log.redb");
    write_log(&path, 5);
    tamper(&path, |table| {
        let mut entry = read_row(table, 2);
        entry.body = r#"{"i":2,"note":"forged"}"#.into();
        entry.hash = recompute_hash(&entry);
        write_row(table, &entry);
    });
    let err = verify_log(&path, &key(1).public()).unwrap_err();
    assert!(
        matches!(err, VerifyError::EntrySignature { seq: 2, .. }),
        "{err:?}"
    );
    let message = err.to_string();
    let expected = format!(
        "signature of entry 2 does not verify with key {}",
        key(1).public().fingerprint()
    );
    assert!(message.starts_with(&expected), "{message}");
}

#[test]
fn tamper_deleted_middle_entry_is_detected() {
    let dir = TempDir::new("gap");
    let path = dir.join("log.redb");
    write_log(&path, 5);
    tamper(&path, |table| {
        table.remove(2).unwrap();
    });
    let err = verify_log(&path, &key(1).public()).unwrap_err();
    assert!(
        matches!(err, VerifyError::Missing { seq: 2, next: 3 }),
        "{err:?}"
    );
    assert_eq!(err.to_string(), "entry 2 missing: log jumps from 1 to 3");
}

#[test]
fn tamper_deleted_middle_entry_with_renumbering_breaks_the_chain() {
    let dir = TempDir::new("renumber");
    let path = dir.join("log.redb");
    write_log(&path, 4);
    // Remove entry 1 and shift the later ones down, fixing seq so there is no gap.
    tamper(&path, |table| {
        let later: Vec<Entry> = (2..4).map(|seq| read_row(table, seq)).collect();
        table.remove(3).unwrap();
        for mut entry in later {
            entry.seq -= 1;
            write_row(table, &entry);
        }
    });
    let err = verify_log(&path, &key(1).public()).unwrap_err();
    assert!(
        matches!(err, VerifyError::PrevMismatch { seq: 1, .. }),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .contains("entry 1: link to the previous entry is broken"),
        "{err}"
    );
}

#[test]
fn tamper_swapped_rows_are_detected() {
    let dir = TempDir::new("swap");
    let path = dir.join("log.redb");
    write_log(&path, 4);
    tamper(&path, |table| {
        let one = table.get(1).unwrap().unwrap().value().to_vec();
        let two = table.get(2).unwrap().unwrap().value().to_vec();
        table.insert(1, two.as_slice()).unwrap();
        table.insert(2, one.as_slice()).unwrap();
    });
    let err = verify_log(&path, &key(1).public()).unwrap_err();
    assert!(
        matches!(err, VerifyError::SeqMismatch { row: 1, seq: 2 }),
        "{err:?}"
    );
}

#[test]
fn tamper_unparsable_record_is_a_clear_error() {
    let dir = TempDir::new("record");
    let path = dir.join("log.redb");
    write_log(&path, 3);
    tamper(&path, |table| {
        table.insert(1, b"{not json".as_slice()).unwrap();
    });
    let err = verify_log(&path, &key(1).public()).unwrap_err();
    assert!(
        matches!(err, VerifyError::RecordUnparsable { seq: 1, .. }),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .starts_with("entry 1: stored record does not parse"),
        "{err}"
    );
    let err = DecisionLog::open(&path, key(1)).unwrap_err();
    assert!(
        err.to_string()
            .contains("entry 1: stored record does not parse"),
        "{err}"
    );
}

/// Cutting entries off the end leaves a valid chain: the log alone cannot show it. The
/// certificate pins the head, and comparing with the pinned head catches the cut.
#[test]
fn tamper_deleted_last_entry_passes_verify_log_but_not_the_pinned_head() {
    let dir = TempDir::new("tail");
    let path = dir.join("log.redb");
    let written = write_log(&path, 5);
    let certificate = Signed::sign(json!({"log_head": written.last().unwrap().pin()}), &key(1));
    tamper(&path, |table| {
        table.remove(4).unwrap();
    });

    let entries = verify_log(&path, &key(1).public()).unwrap();
    assert_eq!(entries, written[..4], "the shortened chain is still valid");

    certificate.verify_with(&key(1).public()).unwrap();
    let head = serde_json::from_value(certificate.body["log_head"].clone()).unwrap();
    let err = verify_log_pinned(&path, &key(1).public(), &head).unwrap_err();
    assert!(
        matches!(
            err,
            VerifyError::HeadMissing {
                pinned: 4,
                last: Some(3)
            }
        ),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "entry 4 missing: log ends at 3 but the certificate pins head 4"
    );
}

#[test]
fn tamper_chain_resigned_with_another_key_fails_with_the_original_key() {
    let dir = TempDir::new("resign");
    let path = dir.join("log.redb");
    write_log(&path, 4);
    let attacker = key(9);
    tamper(&path, |table| {
        let mut prev = GENESIS_PREV.to_owned();
        for seq in 0..4 {
            let mut entry = read_row(table, seq);
            entry.body = json!({"i": seq, "note": "rewritten history"}).to_string();
            entry.prev = prev;
            entry.hash = recompute_hash(&entry);
            entry.signature = attacker.sign(entry.hash.as_bytes());
            prev = entry.hash.clone();
            write_row(table, &entry);
        }
    });
    // The forged chain is internally consistent...
    verify_log(&path, &attacker.public()).unwrap();
    // ...but not signed by the build's key.
    let err = verify_log(&path, &key(1).public()).unwrap_err();
    assert!(
        matches!(err, VerifyError::EntrySignature { seq: 0, .. }),
        "{err:?}"
    );
    assert!(
        err.to_string().contains(&key(1).public().fingerprint()),
        "{err}"
    );
    let err = DecisionLog::open(&path, key(1)).unwrap_err();
    assert!(matches!(err, StoreError::Chain { .. }), "{err}");
}

#[test]
fn verify_with_a_malformed_public_key_is_an_error() {
    let dir = TempDir::new("badkey");
    let path = dir.join("log.redb");
    write_log(&path, 1);
    let err = verify_log(&path, &PublicKey("abc".into())).unwrap_err();
    assert!(matches!(err, VerifyError::PublicKey { .. }), "{err:?}");
}

#[test]
fn garbage_files_are_errors_not_panics() {
    let dir = TempDir::new("garbage");
    let public = key(1).public();

    let mut noise = Vec::new();
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    for _ in 0..(64 * 1024) {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        noise.push(state.to_le_bytes()[0]);
    }
    let real = dir.join("real.redb");
    write_log(&real, 3);
    let real_bytes = std::fs::read(&real).unwrap();

    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty", Vec::new()),
        ("text", b"this is not a database\n".to_vec()),
        ("zeros", vec![0; 64 * 1024]),
        ("noise", noise),
        ("truncated-header", real_bytes[..100].to_vec()),
        (
            "truncated-half",
            real_bytes[..real_bytes.len() / 2].to_vec(),
        ),
        (
            "truncated-last-byte",
            real_bytes[..real_bytes.len() - 1].to_vec(),
        ),
    ];
    for (name, bytes) in cases {
        let path = dir.join(name);
        std::fs::write(&path, &bytes).unwrap();
        let err = verify_log(&path, &public).expect_err(name);
        assert!(err.to_string().contains(name), "{name}: {err}");
        let err = DecisionLog::open(&path, key(1)).expect_err(name);
        assert!(err.to_string().contains(name), "{name}: {err}");
    }
}

/// Damaged bytes anywhere in the file give an error or, where the bytes are unused, the original
/// entries: never a panic, never different entries.
///
/// Samples offsets to stay fast; flipping every byte of such a file (about 49,000 cases) was run
/// once by hand with the same result.
#[test]
fn damaged_bytes_never_panic_or_change_the_entries() {
    let dir = TempDir::new("damage");
    let public = key(1).public();
    let real = dir.join("real.redb");
    let written = write_log(&real, 3);
    let bytes = std::fs::read(&real).unwrap();
    let copy = dir.join("copy.redb");

    let check = |damaged: &[u8], what: &str| {
        std::fs::write(&copy, damaged).unwrap();
        if let Ok(entries) = verify_log(&copy, &public) {
            assert_eq!(entries, written, "{what} changed the verified entries");
        }
        if let Ok(log) = DecisionLog::open(&copy, key(1)) {
            assert_eq!(
                log.entries().unwrap(),
                written,
                "{what} changed the opened entries"
            );
        }
    };
    let mut offsets: Vec<usize> = (0..4096.min(bytes.len())).step_by(7).collect();
    offsets.extend((4096..bytes.len()).step_by(997));
    for offset in offsets {
        let mut damaged = bytes.clone();
        damaged[offset] ^= 0x5a;
        check(&damaged, &format!("flipping byte {offset}"));
    }
    for (page, start) in (0..bytes.len()).step_by(4096).enumerate() {
        let mut damaged = bytes.clone();
        let end = (start + 4096).min(bytes.len());
        damaged[start..end].fill(0);
        check(&damaged, &format!("zeroing page {page}"));
        check(
            &bytes[..start.max(1)],
            &format!("truncating to {start} bytes"),
        );
    }
}

#[test]
fn a_redb_file_without_a_log_is_not_a_log() {
    let dir = TempDir::new("notalog");
    let path = dir.join("other.redb");
    {
        let db = Database::create(&path).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(TableDefinition::<u64, u64>::new("other"))
            .unwrap()
            .insert(1, 2)
            .unwrap();
        txn.commit().unwrap();
    }
    let err = verify_log(&path, &key(1).public()).unwrap_err();
    assert!(matches!(err, VerifyError::NotALog { .. }), "{err:?}");
    let err = DecisionLog::open(&path, key(1)).unwrap_err();
    assert!(matches!(err, StoreError::NotALog { .. }), "{err}");
}

#[test]
fn key_save_load_roundtrip() {
    use std::os::unix::fs::PermissionsExt;
    let dir = TempDir::new("key");
    let path = dir.join("build.key");
    let generated = BuildKey::generate().unwrap();
    generated.save(&path).unwrap();

    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(text.len(), 65);
    assert!(text.ends_with('\n'));

    let loaded = BuildKey::load(&path).unwrap();
    assert_eq!(loaded.public(), generated.public());
    assert_eq!(loaded.sign(b"msg"), generated.sign(b"msg"));
    assert_ne!(BuildKey::generate().unwrap().public(), generated.public());
    // Nothing but the key file is left in the directory.
    assert_eq!(std::fs::read_dir(&dir.0).unwrap().count(), 1);
}

#[test]
fn malformed_key_files_are_errors_naming_the_file() {
    let dir = TempDir::new("badkeyfile");
    let cases: [(&str, &[u8]); 5] = [
        ("short.key", b"abcd\n"),
        ("nonhex.key", &[b'g'; 64]),
        ("binary.key", &[0xff; 64]),
        ("two-newlines.key", &[b'a'; 66]),
        ("huge.key", &[b'a'; 4096]),
    ];
    for (name, bytes) in cases {
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        let err = BuildKey::load(&path).unwrap_err();
        assert!(matches!(err, StoreError::KeyFile { .. }), "{name}: {err}");
        assert!(err.to_string().contains(name), "{name}: {err}");
    }
    let err = BuildKey::load(&dir.join("absent.key")).unwrap_err();
    assert!(matches!(err, StoreError::Io { .. }), "{err}");
    assert!(err.to_string().contains("absent.key"), "{err}");
}

#[test]
fn signed_document_fails_when_a_body_field_changes() {
    let dir = TempDir::new("signed");
    let path = dir.join("certificate.json");
    let certificate = Signed::sign(
        json!({"result": "accepted", "tests": {"passed": 12, "failed": 0}}),
        &key(1),
    );
    write_atomic(
        &path,
        serde_json::to_string_pretty(&certificate)
            .unwrap()
            .as_bytes(),
    )
    .unwrap();

    let stored: Signed = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    stored.verify().unwrap();
    stored.verify_with(&key(1).public()).unwrap();

    let mut changed = stored.clone();
    changed.body["tests"]["failed"] = Value::from(1);
    let err = changed.verify().unwrap_err();
    assert!(
        matches!(err, VerifyError::DocumentSignature { .. }),
        "{err:?}"
    );

    let mut added = stored.clone();
    added.body["extra"] = Value::from(true);
    assert!(added.verify().is_err());

    // Swapping in another key's public half does not help.
    let mut rekeyed = stored;
    rekeyed.public_key = key(2).public();
    assert!(rekeyed.verify().is_err());
}

#[test]
fn write_atomic_replaces_the_whole_file_and_leaves_no_temp_files() {
    let dir = TempDir::new("atomic");
    let path = dir.join("out.txt");
    write_atomic(&path, b"first version, longer").unwrap();
    write_atomic(&path, b"second").unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), b"second");
    assert_eq!(std::fs::read_dir(&dir.0).unwrap().count(), 1);
    assert!(write_atomic(&dir.join("no-such-dir/out.txt"), b"x").is_err());
}
