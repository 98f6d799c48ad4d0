//! Small file and encoding helpers: atomic writes, capped reads of regular files, digests, hex.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Writes `bytes` to `path` so that a reader sees either the old file or the whole new one, never
/// a part: the bytes go to a temporary file in the same directory, which is synced, renamed over
/// `path`, and the directory is synced so the rename survives a crash.
///
/// The new file gets the default permissions (0666 less the umask).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_atomic_mode(path, bytes, 0o666)
}

/// As [`write_atomic`], creating the file with permission bits `mode` (less the umask) from the
/// start, so a secret is never readable by others, not even briefly.
pub(crate) fn write_atomic_mode(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path does not name a file"))?;
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    };
    // pid + counter keeps concurrent writers (threads or processes) off each other's temp files;
    // create_new makes a collision an error instead of a shared file.
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let unique = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut temp_name = std::ffi::OsString::from(".");
    temp_name.push(name);
    temp_name.push(format!(".{}.{unique}.tmp", std::process::id()));
    let temp = dir.join(temp_name);

    let written = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&temp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&temp, path)
    })();
    if let Err(err) = written {
        // The temp file may not exist (create failed); nothing more can be done about a failed
        // clean-up, and the write error is the one worth reporting.
        let _ = std::fs::remove_file(&temp);
        return Err(err);
    }
    sync_dir(&dir)
}

/// Opens `path` for reading if it is a regular file (after symlinks). A named pipe, a device,
/// a socket or a directory is refused with an error that says which it is, without blocking:
/// the file is opened non-blocking (a FIFO with no writer would otherwise hang `open`) and
/// judged by what was opened, not by an earlier `stat` that a swap could outrun.
pub fn open_regular(path: &Path) -> io::Result<File> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    let kind = file.metadata()?.file_type();
    if kind.is_file() {
        return Ok(file);
    }
    let what = if kind.is_dir() {
        "a directory"
    } else if kind.is_fifo() {
        "a named pipe (FIFO)"
    } else if kind.is_char_device() {
        "a character device"
    } else if kind.is_block_device() {
        "a block device"
    } else if kind.is_socket() {
        "a socket"
    } else {
        "not a file"
    };
    Err(io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("not a regular file but {what}"),
    ))
}

/// The bytes of the regular file `path`, refused (kind `FileTooLarge`) when it holds more than
/// `max_bytes`: at most `max_bytes + 1` are ever read, whatever the file claims or becomes.
pub fn read_capped(path: &Path, max_bytes: u64) -> io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    open_regular(path)?
        .take(max_bytes.saturating_add(1))
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max_bytes {
        return Err(io::Error::new(
            io::ErrorKind::FileTooLarge,
            format!("larger than {max_bytes} bytes"),
        ));
    }
    Ok(bytes)
}

/// Syncs a directory so that renames and creations inside it are durable.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// The blake3 digest of `bytes`, as 64 lowercase hex characters.
pub fn digest(bytes: &[u8]) -> String {
    blake3::hash(bytes).to_hex().to_string()
}

/// Lowercase hex of `bytes`.
pub fn hex_encode(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut text = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        text.push(char::from(DIGITS[usize::from(byte >> 4)]));
        text.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    text
}

/// Decodes exactly `N` bytes from `2 * N` hex characters (either case). The error is in words.
pub fn hex_decode<const N: usize>(text: &str) -> Result<[u8; N], String> {
    if text.len() != 2 * N {
        return Err(format!(
            "expected {} hex characters, found {}",
            2 * N,
            text.chars().count()
        ));
    }
    let mut out = [0u8; N];
    for (i, pair) in text.as_bytes().chunks_exact(2).enumerate() {
        let high = hex_value(pair[0]).ok_or_else(|| bad_char(text, 2 * i))?;
        let low = hex_value(pair[1]).ok_or_else(|| bad_char(text, 2 * i + 1))?;
        out[i] = (high << 4) | low;
    }
    Ok(out)
}

fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

fn bad_char(text: &str, byte_index: usize) -> String {
    // byte_index may fall inside a multi-byte character; report the character that holds it.
    let shown = text
        .char_indices()
        .take_while(|(start, _)| *start <= byte_index)
        .last()
        .map_or('?', |(_, c)| c);
    format!("character {shown:?} at position {byte_index} is not a hex digit")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_roundtrips() {
        let bytes = [0u8, 1, 0x7f, 0x80, 0xab, 0xff];
        let text = hex_encode(&bytes);
        assert_eq!(text, "00017f80abff");
        assert_eq!(hex_decode::<6>(&text), Ok(bytes));
        assert_eq!(hex_decode::<6>("00017F80ABFF"), Ok(bytes));
    }

    #[test]
    fn hex_rejects_wrong_length_and_non_hex() {
        assert!(hex_decode::<2>("abc").unwrap_err().contains("expected 4"));
        let err = hex_decode::<2>("ab g").unwrap_err();
        assert!(err.contains("' '"), "{err}");
        // A multi-byte character must not make the decoder slice inside it.
        let err = hex_decode::<2>("aé1").unwrap_err();
        assert!(err.contains('é'), "{err}");
    }

    #[test]
    fn only_regular_files_are_read_and_only_up_to_the_cap() {
        let dir = std::env::temp_dir().join(format!("synod-store-read-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let text = dir.join("text");
        std::fs::write(&text, "0123456789").unwrap();
        assert_eq!(read_capped(&text, 10).unwrap(), b"0123456789");
        let e = read_capped(&text, 9).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::FileTooLarge);
        assert_eq!(e.to_string(), "larger than 9 bytes");
        let zero = dir.join("zero");
        std::os::unix::fs::symlink("/dev/zero", &zero).unwrap();
        let fifo = dir.join("fifo");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        for (path, what) in [
            (&zero, "a character device"),
            (&fifo, "a named pipe (FIFO)"),
            (&dir, "a directory"),
        ] {
            let e = read_capped(path, 1 << 20).unwrap_err();
            assert_eq!(e.to_string(), format!("not a regular file but {what}"));
        }
        assert_eq!(
            read_capped(&dir.join("missing"), 1).unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn digest_is_blake3_hex() {
        assert_eq!(
            digest(b""),
            "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"
        );
    }
}
