//! The interpreter process: spawning it confined, feeding it the request, draining its output
//! with caps, and killing its process group at the end.

use std::io::{Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use crate::isolation::{Confinement, kill_uid};
use crate::protocol::{HarnessLine, LineSplitter};
use crate::{ExecError, HARNESS_FILE, Limits};

/// How often the wait loop looks at the child.
const POLL_INTERVAL: Duration = Duration::from_millis(2);

/// How long, after the process group is killed, the readers may take to reach end of file. Only
/// a descendant that escaped the group (by `setsid`) can keep the pipes open that long; its
/// output is then abandoned.
const DRAIN_GRACE: Duration = Duration::from_millis(500);

/// Bytes of stderr kept for diagnostics (the end of it).
pub(crate) const STDERR_TAIL_BYTES: usize = 2048;

/// How a run ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum End {
    /// The interpreter exited (by itself, or killed by a signal such as `SIGXCPU`).
    Exited(ExitStatus),
    /// The wall-clock limit passed and the process group was killed.
    WallClock,
}

/// What came out of a run.
#[derive(Debug)]
pub(crate) struct Finished {
    /// Result lines carrying the nonce that parsed, in order.
    pub lines: Vec<HarnessLine>,
    /// How the process ended.
    pub end: End,
    /// The last [`STDERR_TAIL_BYTES`] of stderr, lossily decoded.
    pub stderr_tail: String,
}

/// Runs the harness in `scratch` with `input` on stdin, under `limits` and `confinement`.
/// `run_uid`, if the run has a uid of its own, is the uid whose processes are all killed at the
/// end.
pub(crate) fn run_harness(
    python: &Path,
    scratch: &Path,
    input: Vec<u8>,
    nonce: &str,
    limits: &Limits,
    confinement: Confinement,
    run_uid: Option<u32>,
) -> Result<Finished, ExecError> {
    let mut command = Command::new(python);
    // Not `-I`: it implies `-E`, which ignores PYTHONHASHSEED, and then every run hashes
    // strings with a seed of its own, so a program that iterates a set of strings returns
    // another order each run (MBPP task 2 split its readings, and failed its own refinement
    // check, from one run to the next). The environment is cleared instead, so the only
    // PYTHON* variables are these; PYTHONSAFEPATH keeps the scratch directory off `sys.path`
    // on Python 3.11 and newer, and the harness drops it on older ones.
    command
        .args(["-s", "-S", "-B", HARNESS_FILE])
        .current_dir(scratch)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("LANG", "C.UTF-8")
        .env("PYTHONHASHSEED", "0")
        .env("PYTHONSAFEPATH", "1")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    confine(&mut command, confinement);
    let child = command.spawn().map_err(|source| ExecError::Spawn {
        python: python.to_path_buf(),
        source,
    })?;
    let started = Instant::now();
    // From here on the child must not outlive this function, whatever fails.
    let mut running = Running {
        child,
        run_uid,
        reaped: false,
    };
    let child = &mut running.child;
    let (stdin, stdout, stderr) = (child.stdin.take(), child.stdout.take(), child.stderr.take());
    let thread_error = |source| ExecError::Thread { source };
    if let Some(mut stdin) = stdin {
        // Written from a thread so that a child that never reads cannot stall us past the
        // wall-clock limit. A write error means the child is gone; the report will say why.
        thread::Builder::new()
            .name("synod-exec-stdin".into())
            .spawn(move || {
                let _ = stdin.write_all(&input);
            })
            .map_err(thread_error)?;
    }
    let (line_tx, line_rx) = mpsc::channel();
    if let Some(stdout) = stdout {
        let splitter = LineSplitter::new(nonce, limits.output_bytes);
        thread::Builder::new()
            .name("synod-exec-stdout".into())
            .spawn(move || read_results(stdout, splitter, &line_tx))
            .map_err(thread_error)?;
    }
    let tail = Arc::new(Mutex::new(Tail::default()));
    let (stderr_done_tx, stderr_done_rx) = mpsc::channel::<()>();
    if let Some(stderr) = stderr {
        let tail = Arc::clone(&tail);
        thread::Builder::new()
            .name("synod-exec-stderr".into())
            .spawn(move || {
                read_tail(stderr, &tail);
                drop(stderr_done_tx);
            })
            .map_err(thread_error)?;
    }

    // A limit too large to add to the clock means no wall-clock limit.
    let deadline = started.checked_add(Duration::from_millis(limits.wall_ms));
    let end = loop {
        if has_exited(running.pid()).map_err(|source| ExecError::Wait { source })? {
            break None;
        }
        let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        if left == Some(Duration::ZERO) {
            break Some(End::WallClock);
        }
        thread::sleep(left.map_or(POLL_INTERVAL, |left| left.min(POLL_INTERVAL)));
    };
    let status = running.finish()?;
    let end = end.unwrap_or(End::Exited(status));

    let drain_deadline = Instant::now() + DRAIN_GRACE;
    let lines = collect_lines(&line_rx, drain_deadline);
    let _ = stderr_done_rx.recv_timeout(drain_deadline.saturating_duration_since(Instant::now()));
    let stderr_tail = tail.lock().unwrap_or_else(PoisonError::into_inner).text();
    Ok(Finished {
        lines,
        end,
        stderr_tail,
    })
}

/// Receives result lines until the reader hits end of file or `deadline` passes.
fn collect_lines(rx: &Receiver<HarnessLine>, deadline: Instant) -> Vec<HarnessLine> {
    let mut lines = Vec::new();
    loop {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(line) => lines.push(line),
            Err(RecvTimeoutError::Disconnected | RecvTimeoutError::Timeout) => return lines,
        }
    }
}

fn read_results(mut stdout: impl Read, mut splitter: LineSplitter, tx: &mpsc::Sender<HarnessLine>) {
    let mut buf = [0u8; 8192];
    loop {
        let n = match stdout.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => return,
        };
        for line in splitter.feed(&buf[..n]) {
            // A send fails once the run is over; keep draining so no writer blocks on a full
            // pipe.
            let _ = tx.send(line);
        }
    }
}

/// The end of a byte stream, at most [`STDERR_TAIL_BYTES`] long.
#[derive(Default)]
struct Tail {
    bytes: Vec<u8>,
}

impl Tail {
    fn push(&mut self, chunk: &[u8]) {
        self.bytes.extend_from_slice(chunk);
        // Trim in batches so that pushing stays linear.
        if self.bytes.len() > 2 * STDERR_TAIL_BYTES {
            let cut = self.bytes.len() - STDERR_TAIL_BYTES;
            self.bytes.drain(..cut);
        }
    }

    fn text(&self) -> String {
        let start = self.bytes.len().saturating_sub(STDERR_TAIL_BYTES);
        String::from_utf8_lossy(&self.bytes[start..]).into_owned()
    }
}

fn read_tail(mut stderr: impl Read, tail: &Mutex<Tail>) {
    let mut buf = [0u8; 8192];
    loop {
        match stderr.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => tail
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return,
        }
    }
}

/// The interpreter, leader of its own process group. However [`run_harness`] ends, the group
/// is killed and the leader reaped, so nothing the candidate started stays behind; with a uid of
/// its own, every process of that uid is killed too, which reaches children that left the group.
struct Running {
    child: Child,
    run_uid: Option<u32>,
    reaped: bool,
}

impl Running {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills the group and the run's uid (the leader is dead or dies with them) and reaps the
    /// leader. The group is killed before reaping: until then the leader's pid cannot be
    /// reused, so it still names our group.
    fn finish(&mut self) -> Result<ExitStatus, ExecError> {
        self.kill_all();
        let status = self
            .child
            .wait()
            .map_err(|source| ExecError::Wait { source })?;
        self.reaped = true;
        Ok(status)
    }

    fn kill_all(&self) {
        kill_group(self.pid());
        if let Some(uid) = self.run_uid {
            kill_uid(uid);
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if !self.reaped {
            self.kill_all();
            let _ = self.child.wait();
        }
    }
}

/// Makes the child confine itself between fork and exec (see `isolation.rs` for what and why
/// there).
#[allow(unsafe_code)]
fn confine(command: &mut Command, confinement: Confinement) {
    // SAFETY: the closure runs in the forked child between fork and exec, where only
    // async-signal-safe calls are allowed. `Confinement::apply` makes plain system calls only
    // (setsid, setrlimit, unshare, setres[ug]id, capset, prctl, open/write/close,
    // landlock_restrict_self, seccomp) on data prepared before the fork, allocates nothing and
    // takes no locks.
    unsafe {
        command.pre_exec(move || confinement.apply());
    }
}

/// Has the child `pid` exited? Does not reap it, so its pid (and process group id) stays ours.
#[allow(unsafe_code)]
fn has_exited(pid: u32) -> std::io::Result<bool> {
    // SAFETY: siginfo_t is plain data for which all-zero bytes are a valid value.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    // SAFETY: `info` is a live, writable siginfo_t; WNOWAIT leaves the child unreaped.
    let rc = unsafe {
        libc::waitid(
            libc::P_PID,
            pid as libc::id_t,
            &mut info,
            libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: waitid filled `info` (or left it zeroed, meaning no child has exited); si_pid is
    // valid to read for SIGCHLD information, and zero otherwise.
    Ok(unsafe { info.si_pid() } != 0)
}

/// Sends SIGKILL to the process group `pgid` (the interpreter ran `setsid`, so its pid is the
/// group id). Errors (the group is already gone) are of no interest.
#[allow(unsafe_code)]
fn kill_group(pgid: u32) {
    let Ok(pgid) = libc::pid_t::try_from(pgid) else {
        return;
    };
    // SAFETY: kill has no memory-safety preconditions; a negative pid addresses a process
    // group, and ours is still reserved because its leader has not been reaped.
    unsafe {
        libc::kill(-pgid, libc::SIGKILL);
    }
}

/// A description of how the interpreter ended, for load errors.
/// The name of the signal a run died of by itself (`SIGSEGV`, `SIGABRT`, `SIGBUS`, `SIGFPE`,
/// `SIGILL`), if it did. Kills by synod or by a limit (wall clock, SIGKILL, SIGXCPU, SIGXFSZ)
/// are not named here: those calls did not finish.
pub(crate) fn fatal_signal(end: &End) -> Option<&'static str> {
    let End::Exited(status) = end else {
        return None;
    };
    match status.signal()? {
        libc::SIGSEGV => Some("SIGSEGV"),
        libc::SIGABRT => Some("SIGABRT"),
        libc::SIGBUS => Some("SIGBUS"),
        libc::SIGFPE => Some("SIGFPE"),
        libc::SIGILL => Some("SIGILL"),
        _ => None,
    }
}

pub(crate) fn describe_end(end: &End, limits: &Limits) -> String {
    match end {
        End::WallClock => format!("killed after the wall-clock limit of {} ms", limits.wall_ms),
        End::Exited(status) => match (status.code(), status.signal()) {
            (Some(code), _) => format!("exited with status {code}"),
            (None, Some(libc::SIGXCPU)) => {
                format!("killed by SIGXCPU (CPU limit of {} s)", limits.cpu_s)
            }
            (None, Some(libc::SIGKILL)) => "killed by SIGKILL".to_string(),
            (None, Some(libc::SIGSEGV)) => "killed by SIGSEGV (crashed)".to_string(),
            (None, Some(libc::SIGABRT)) => "killed by SIGABRT (aborted)".to_string(),
            (None, Some(libc::SIGXFSZ)) => {
                format!(
                    "killed by SIGXFSZ (file size limit of {} bytes)",
                    limits.file_bytes
                )
            }
            (None, Some(signal)) => format!("killed by signal {signal}"),
            (None, None) => status.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_keeps_the_end() {
        let mut tail = Tail::default();
        for i in 0..5000u32 {
            tail.push(format!("{i:05}\n").as_bytes());
        }
        let text = tail.text();
        assert_eq!(text.len(), STDERR_TAIL_BYTES);
        assert!(text.ends_with("04999\n"));
    }

    #[test]
    fn ends_are_described() {
        let limits = Limits::default();
        assert_eq!(
            describe_end(&End::WallClock, &limits),
            "killed after the wall-clock limit of 20000 ms"
        );
        let xcpu = ExitStatus::from_raw(libc::SIGXCPU);
        assert!(describe_end(&End::Exited(xcpu), &limits).contains("CPU limit of 20 s"));
        let code = ExitStatus::from_raw(3 << 8);
        assert_eq!(
            describe_end(&End::Exited(code), &limits),
            "exited with status 3"
        );
    }
}
