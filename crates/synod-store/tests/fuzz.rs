//! Bad input, fuzzed: a real log file with random bytes flipped, cut short or extended. Reading
//! it back (`verify_log`, `DecisionLog::open`) gives an error with a reason, or exactly the
//! entries written: never a panic, never other entries. A log that is refused is left exactly as
//! it was (never silently repaired), and chain failures name the last good entry.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use proptest::prelude::*;
use proptest::test_runner::Config;
use redb::{Database, ReadableTable, TableDefinition};
use serde_json::json;
use synod_store::{BuildKey, DecisionLog, Entry, StoreError, VerifyError, verify_log};

const CASES: u32 = 256;

const ENTRIES: TableDefinition<u64, &[u8]> = TableDefinition::new("synod_decision_log_v1");

struct TempDir(PathBuf);

impl TempDir {
    fn new(test: &str) -> TempDir {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let path = std::env::temp_dir().join(format!(
            "synod-store-fuzz-{test}-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn key() -> BuildKey {
    BuildKey::from_secret_bytes(&[7; 32])
}

/// A log as the runtime leaves it: created, closed, reopened, appended to.
fn write_log(path: &Path, n: u64) -> Vec<Entry> {
    drop(DecisionLog::create(path, key()).unwrap());
    let mut log = DecisionLog::open(path, key()).unwrap();
    for i in 0..n {
        let body = json!({"i": i, "pad": "p".repeat((i as usize * 37) % 300)});
        log.append("input", &body).unwrap();
    }
    log.entries().unwrap()
}

/// One change to the file's bytes.
#[derive(Clone, Debug)]
enum Damage {
    Flip { at: usize, xor: u8 },
    Zero { at: usize, len: usize },
    Truncate { keep: usize },
    Extend { bytes: Vec<u8> },
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        6 => (any::<usize>(), 1u8..=255).prop_map(|(at, xor)| Damage::Flip { at, xor }),
        2 => (any::<usize>(), 1usize..8192).prop_map(|(at, len)| Damage::Zero { at, len }),
        1 => any::<usize>().prop_map(|keep| Damage::Truncate { keep }),
        1 => prop::collection::vec(any::<u8>(), 1..5000).prop_map(|bytes| Damage::Extend { bytes }),
    ]
}

fn apply(bytes: &mut Vec<u8>, d: &Damage) {
    if bytes.is_empty() {
        return;
    }
    match d {
        Damage::Flip { at, xor } => {
            let i = at % bytes.len();
            bytes[i] ^= xor;
        }
        Damage::Zero { at, len } => {
            let start = at % bytes.len();
            let end = (start + len).min(bytes.len());
            bytes[start..end].fill(0);
        }
        Damage::Truncate { keep } => bytes.truncate(keep % bytes.len()),
        Damage::Extend { bytes: more } => bytes.extend_from_slice(more),
    }
}

/// What reading a damaged copy found, for the totals printed at the end.
#[derive(Default, Debug)]
struct Seen {
    verified_same: u64,
    verify_refused: u64,
    opened_same: u64,
    open_refused: u64,
}

fn check_damaged(
    dir: &Path,
    original: &[u8],
    written: &[Entry],
    damage: &[Damage],
    seen: &mut Seen,
) {
    let mut bytes = original.to_vec();
    for d in damage {
        apply(&mut bytes, d);
    }
    if bytes == original {
        return;
    }
    let path = dir.join("damaged.redb");
    let _ = std::fs::remove_file(&path);
    std::fs::write(&path, &bytes).unwrap();

    match verify_log(&path, &key().public()) {
        Ok(entries) => {
            assert_eq!(entries, written, "{damage:?} changed the verified entries");
            seen.verified_same += 1;
        }
        Err(e) => {
            let message = e.to_string();
            assert!(!message.trim().is_empty());
            if e.last_good().is_none() {
                // Nothing was readable, or the failure is at entry 0: the message says which.
                assert!(
                    message.contains("damaged.redb") || message.contains("entry 0"),
                    "{damage:?}: {message}"
                );
            }
            seen.verify_refused += 1;
        }
    }
    assert!(
        std::fs::read(&path).unwrap() == bytes,
        "verify_log wrote to the file"
    );

    match DecisionLog::open(&path, key()) {
        Ok(log) => {
            assert_eq!(
                log.entries().unwrap(),
                written,
                "{damage:?} changed the opened entries"
            );
            assert_eq!(log.len(), written.len() as u64);
            seen.opened_same += 1;
        }
        Err(e) => {
            let message = e.to_string();
            assert!(message.contains("damaged.redb"), "{damage:?}: {message}");
            assert!(
                std::fs::read(&path).unwrap() == bytes,
                "{damage:?}: a refused log was changed (repaired?): {message}"
            );
            seen.open_refused += 1;
        }
    }
}

#[test]
fn damaged_logs_are_refused_with_a_reason_or_read_unchanged() {
    let dir = TempDir::new("damage");
    let real = dir.0.join("real.redb");
    let written = write_log(&real, 6);
    let original = std::fs::read(&real).unwrap();
    let seen = std::cell::RefCell::new(Seen::default());
    let mut runner = proptest::test_runner::TestRunner::new(Config {
        cases: CASES,
        failure_persistence: None,
        ..Config::default()
    });
    let result = runner.run(&prop::collection::vec(damage(), 1..4), |damage| {
        check_damaged(&dir.0, &original, &written, &damage, &mut seen.borrow_mut());
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    let seen = seen.into_inner();
    eprintln!("damaged logs: {seen:?}");
    // The property must see both sides, or it tests nothing.
    assert!(seen.verify_refused > 0 && seen.open_refused > 0, "{seen:?}");
}

/// Damage confined to the last commit (the pages written last, at the end of the file) must not
/// be "recovered" by falling back to the previous commit: that would drop the last entry
/// silently.
#[test]
fn damage_to_the_last_commit_is_not_rolled_back_silently() {
    let dir = TempDir::new("lastcommit");
    let real = dir.0.join("real.redb");
    let written = write_log(&real, 4);
    let original = std::fs::read(&real).unwrap();
    let mut seen = Seen::default();
    let tail = original.len().saturating_sub(16 * 1024);
    for at in (tail..original.len())
        .step_by(257)
        .chain((0..4096usize).step_by(31))
    {
        let damage = [Damage::Flip { at, xor: 0x41 }];
        check_damaged(&dir.0, &original, &written, &damage, &mut seen);
    }
    eprintln!("last commit: {seen:?}");
}

fn tamper(path: &Path, change: impl FnOnce(&mut redb::Table<u64, &[u8]>)) {
    let db = Database::open(path).unwrap();
    let txn = db.begin_write().unwrap();
    {
        let mut table = txn.open_table(ENTRIES).unwrap();
        change(&mut table);
    }
    txn.commit().unwrap();
}

/// "A corrupted or truncated log is detected and reported with the last good entry."
#[test]
fn chain_failures_name_the_last_good_entry() {
    let dir = TempDir::new("lastgood");
    for (bad, expected) in [(0u64, None), (1, Some(0)), (4, Some(3))] {
        let path = dir.0.join(format!("log-{bad}.redb"));
        write_log(&path, 6);
        tamper(&path, |table| {
            let mut entry: Entry =
                serde_json::from_slice(table.get(bad).unwrap().unwrap().value()).unwrap();
            entry.body = r#"{"changed":true}"#.into();
            let record = serde_json::to_vec(&entry).unwrap();
            table.insert(bad, record.as_slice()).unwrap();
        });
        let before = std::fs::read(&path).unwrap();
        let err = verify_log(&path, &key().public()).unwrap_err();
        assert!(
            matches!(err, VerifyError::HashMismatch { seq } if seq == bad),
            "{err}"
        );
        assert_eq!(err.last_good(), expected);
        let err = DecisionLog::open(&path, key()).unwrap_err();
        let message = err.to_string();
        match expected {
            Some(good) => assert!(
                message.contains(&format!("last good entry is {good}")),
                "{message}"
            ),
            None => assert!(message.contains("no entry verifies"), "{message}"),
        }
        assert!(matches!(err, StoreError::Chain { .. }));
        assert!(
            std::fs::read(&path).unwrap() == before,
            "a refused log was changed: {message}"
        );
    }
    // A removed entry: the gap names the entry before it.
    let path = dir.0.join("gap.redb");
    write_log(&path, 6);
    tamper(&path, |table| {
        table.remove(3).unwrap();
    });
    let err = verify_log(&path, &key().public()).unwrap_err();
    assert_eq!(err.last_good(), Some(2), "{err}");
    let message = DecisionLog::open(&path, key()).unwrap_err().to_string();
    assert!(message.contains("last good entry is 2"), "{message}");
}
