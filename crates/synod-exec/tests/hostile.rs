//! Hostile candidates: each test runs a program that attacks the machine through
//! `Sandbox::run`, with small limits, and checks that it stayed contained: the attack failed
//! (and the report shows a failure, so synod would mark the agent faulty), the test process
//! is still alive, no process of the run is left, and nothing outside the scratch directory
//! changed.
//!
//! The audit layers (the static allow-list and the audit hook, `tests/audit.rs`) are off here:
//! the OS isolation must hold alone, for a program that gets past both.
//!
//! These tests never skip: if the machine cannot isolate candidates, `Sandbox::new` refuses and
//! every test here fails, naming what is missing. Files the attacks aim at are world-readable
//! and world-writable on purpose, so that file permissions cannot be what stops them.

use std::fs;
use std::io::ErrorKind;
use std::net::{TcpListener, UdpSocket};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use synod_core::{
    Call, CheckCall, CheckReport, CheckRequest, Expectation, Outcome, Program, Value,
};
use synod_exec::{Audit, Limits, Sandbox};

/// A directory of this test alone (the test name and the process id make it unique).
fn test_dir(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("synod-hostile-{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    // Searchable by the candidate's uid: only landlock may stop it below.
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

/// Small limits: attacks end quickly and cannot take the machine with them.
fn small() -> Limits {
    Limits {
        wall_ms: 5_000,
        call_ms: 2_000,
        cpu_s: 4,
        memory_bytes: 512 << 20,
        output_bytes: 64 << 10,
        file_bytes: 1 << 20,
        open_files: 64,
        processes: 16,
        scratch_bytes: 8 << 20,
        scratch_files: 256,
    }
}

/// One attack: a sandbox whose scratch root is this test's own, so that leftovers can be found.
struct Attack {
    dir: PathBuf,
    scratch_root: PathBuf,
    sandbox: Sandbox,
}

impl Attack {
    fn new(name: &str, limits: Limits) -> Attack {
        let dir = test_dir(name);
        let scratch_root = dir.join("scratch");
        let sandbox = Sandbox::new(&scratch_root, limits)
            .unwrap_or_else(|e| {
                panic!(
                    "isolation must be available for these tests (they never skip): {e}\n{}",
                    synod_exec::Isolation::detect()
                )
            })
            .with_audit(Audit::off());
        let isolation = sandbox.isolation();
        assert!(isolation.is_isolated(), "{isolation}");
        Attack {
            dir,
            scratch_root,
            sandbox,
        }
    }

    /// A world-writable directory outside the scratch root.
    fn outside(&self, name: &str) -> PathBuf {
        let path = self.dir.join(name);
        fs::create_dir_all(&path).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o777)).unwrap();
        path
    }

    /// Runs `request`, then checks what every run must leave: no process whose working
    /// directory is in the scratch root, and an empty scratch root.
    fn run(&self, request: &CheckRequest) -> CheckReport {
        let started = Instant::now();
        let report = self.sandbox.run(request).expect("the environment works");
        let limit = Duration::from_millis(self.sandbox.limits().wall_ms) + Duration::from_secs(3);
        assert!(started.elapsed() < limit, "{:?}", started.elapsed());
        wait_until_gone(|| processes_with_cwd_in(&self.scratch_root));
        let left: Vec<_> = fs::read_dir(&self.scratch_root).unwrap().collect();
        assert!(left.is_empty(), "files left in the scratch root: {left:?}");
        report
    }
}

impl Drop for Attack {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// Live (not zombie) processes, as (pid, `/proc/<pid>` directory).
fn live_processes() -> Vec<(u32, PathBuf)> {
    let mut found = Vec::new();
    for entry in fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let dir = entry.path();
        match fs::read_to_string(dir.join("stat")) {
            Ok(stat) if !stat.contains(") Z ") => found.push((pid, dir)),
            _ => {}
        }
    }
    found
}

fn processes_with_cwd_in(root: &Path) -> Vec<u32> {
    live_processes()
        .into_iter()
        .filter(|(_, dir)| fs::read_link(dir.join("cwd")).is_ok_and(|cwd| cwd.starts_with(root)))
        .map(|(pid, _)| pid)
        .collect()
}

fn processes_with_marker(marker: &str) -> Vec<u32> {
    live_processes()
        .into_iter()
        .filter(|(_, dir)| {
            fs::read(dir.join("cmdline"))
                .is_ok_and(|cmdline| String::from_utf8_lossy(&cmdline).contains(marker))
        })
        .map(|(pid, _)| pid)
        .collect()
}

/// Waits (up to 3 s: a killed process takes a moment to die) until `find` finds nothing.
fn wait_until_gone(find: impl Fn() -> Vec<u32>) {
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let left = find();
        if left.is_empty() {
            return;
        }
        assert!(Instant::now() < deadline, "processes left behind: {left:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Is this test process unprivileged (the user-namespace path)?
fn synod_exec_is_unprivileged() -> bool {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(1) != Some("0"))
        })
        .unwrap_or(false)
}

/// A unique marker for this test's processes.
fn marker(name: &str) -> String {
    format!("synod-hostile-marker-{name}-{}", std::process::id())
}

fn call(function: &str, args: Vec<Value>, expect: Option<Expectation>) -> CheckCall {
    CheckCall {
        call: Call {
            function: function.into(),
            args,
        },
        expect,
    }
}

/// A call whose contract says it returns `'escaped'`: the attack's success. A contained attack
/// fails the expectation, which is what makes synod mark the agent faulty.
fn escaped(function: &str, args: Vec<Value>) -> CheckCall {
    call(
        function,
        args,
        Some(Expectation::Returns(Value::Str("escaped".into()))),
    )
}

fn text(s: &str) -> Value {
    Value::Str(s.into())
}

fn path_arg(path: &Path) -> Value {
    text(path.to_str().unwrap())
}

/// A one-module program `m` running `calls`. The interface is left empty: these programs are
/// judged by their calls, and an interface error would be a second, unrelated failure.
fn request(source: &str, calls: Vec<CheckCall>) -> CheckRequest {
    let function_modules = calls
        .iter()
        .map(|c| (c.call.function.clone(), "m".to_string()))
        .collect();
    CheckRequest {
        program: Program::single("m", source),
        function_modules,
        interface: Vec::new(),
        calls,
    }
}

/// Every call failed its contract and none reported `'escaped'`.
fn assert_all_failed(report: &CheckReport) {
    assert_eq!(report.load_error, None);
    for (i, outcome) in report.outcomes.iter().enumerate() {
        assert_ne!(outcome, &Outcome::Value("'escaped'".into()), "call {i}");
        assert_eq!(report.met[i], Some(false), "call {i}: {outcome:?}");
    }
}

fn is_error(outcome: &Outcome) -> bool {
    matches!(outcome, Outcome::Error(_))
}

#[test]
fn fork_bomb_is_stopped_by_the_process_limit() {
    let attack = Attack::new(
        "fork-bomb",
        Limits {
            wall_ms: 3_000,
            call_ms: 1_500,
            ..small()
        },
    );
    let source = "\
import os, time

def count():
    n = 0
    while True:
        try:
            pid = os.fork()
        except OSError:
            return n
        if pid == 0:
            time.sleep(60)
            os._exit(0)
        n += 1

def bomb():
    while True:
        try:
            os.fork()
        except OSError:
            time.sleep(0.01)
";
    let report = attack.run(&request(
        source,
        vec![call("count", vec![], None), escaped("bomb", vec![])],
    ));
    let Outcome::Value(forks) = &report.outcomes[0] else {
        panic!("{:?}", report.outcomes);
    };
    let forks: u64 = forks.parse().unwrap();
    assert!(forks < small().processes, "{forks} forks succeeded");
    assert_eq!(report.outcomes[1], Outcome::Timeout);
    assert_eq!(report.met[1], Some(false));
    // The machine can still start processes.
    assert!(
        std::process::Command::new("true")
            .status()
            .unwrap()
            .success()
    );
}

#[test]
fn memory_bomb_gets_memory_error() {
    let attack = Attack::new("memory-bomb", small());
    let source = "\
def hog():
    blocks = []
    while True:
        blocks.append(bytearray(64 << 20))
";
    let report = attack.run(&request(source, vec![escaped("hog", vec![])]));
    assert_all_failed(&report);
    assert_eq!(report.outcomes, vec![Outcome::Error("MemoryError".into())]);
}

#[test]
fn infinite_loop_times_out() {
    let attack = Attack::new("loop", small());
    let source = "\
def spin():
    while True:
        pass

def fine():
    return 'fine'
";
    let report = attack.run(&request(
        source,
        vec![escaped("spin", vec![]), call("fine", vec![], None)],
    ));
    assert_eq!(
        report.outcomes,
        vec![Outcome::Timeout, Outcome::Value("'fine'".into())]
    );
    assert_eq!(report.met, vec![Some(false), None]);
}

/// One child that calls setsid and stays alive (as root: the run's uid is killed; as an
/// unprivileged user: the run's PID namespace is).
#[test]
fn a_detached_child_that_stays_alive_does_not_outlive_the_run() {
    let attack = Attack::new("setsid-child", small());
    let marker = marker("setsid-child");
    let source = format!(
        "\
import os, sys

def escape():
    child = os.fork()
    if child == 0:
        os.setsid()
        os.execv(sys.executable, [sys.executable, '-c', 'import time\\nwhile True: time.sleep(0.05)', '{marker}'])
    return 'started'
"
    );
    let report = attack.run(&request(&source, vec![call("escape", vec![], None)]));
    assert_eq!(report.outcomes, vec![Outcome::Value("'started'".into())]);
    wait_until_gone(|| processes_with_marker(&marker));
}

#[test]
fn double_forked_child_does_not_outlive_the_run() {
    let attack = Attack::new("double-fork", small());
    let marker = marker("double-fork");
    let source = format!(
        "\
import os, sys

def escape():
    read_end, write_end = os.pipe()
    os.set_inheritable(write_end, True)
    child = os.fork()
    if child == 0:
        os.setsid()
        grandchild = os.fork()
        if grandchild == 0:
            os.chdir('/')
            program = 'import os, sys, time\\nos.write(int(sys.argv[1]), b\\'up\\')\\nwhile True: time.sleep(0.05)'
            os.execv(sys.executable, [sys.executable, '-c', program, str(write_end), '{marker}'])
        os.write(write_end, b'%d;' % grandchild)
        os._exit(0)
    os.waitpid(child, 0)
    os.close(write_end)
    seen = b''
    while not seen.endswith(b'up'):
        chunk = os.read(read_end, 64)
        if not chunk:
            return -1
        seen += chunk
    return int(seen.split(b';')[0])
"
    );
    let report = attack.run(&request(&source, vec![call("escape", vec![], None)]));
    let Outcome::Value(pid) = &report.outcomes[0] else {
        panic!("{:?} {:?}", report.outcomes, report.load_error);
    };
    let pid: i64 = pid.parse().unwrap();
    // As root the grandchild runs until the run's uid is killed. As an unprivileged user the
    // candidate is in a PID namespace of its own, whose init (the child) has exited: the
    // kernel may kill the grandchild before it reports (-1).
    assert!(
        pid > 0 || synod_exec_is_unprivileged(),
        "the grandchild must have been running during the run"
    );
    wait_until_gone(|| processes_with_marker(&marker));
}

/// A Unix socket a host process listens on is out of reach (issue 11, item 2: a candidate
/// once connected 80 times and its reply reached REPORT.md): no connect, bind or addressed send
/// on `AF_UNIX`, while a socket pair still works.
#[test]
fn host_unix_sockets_are_unreachable_and_socketpairs_work() {
    use std::os::unix::net::{UnixDatagram, UnixListener};
    let attack = Attack::new("unix", small());
    let dir = attack.outside("sockets");
    let stream_path = dir.join("host.sock");
    let listener = UnixListener::bind(&stream_path).unwrap();
    listener.set_nonblocking(true).unwrap();
    fs::set_permissions(&stream_path, fs::Permissions::from_mode(0o777)).unwrap();
    let dgram_path = dir.join("host.dgram");
    let dgram = UnixDatagram::bind(&dgram_path).unwrap();
    dgram.set_nonblocking(true).unwrap();
    fs::set_permissions(&dgram_path, fs::Permissions::from_mode(0o777)).unwrap();
    let source = "\
import socket

def stream(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(path)
    s.sendall(b'hello')
    return 'escaped'

def datagram(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.sendto(b'hello', path)
    return 'escaped'

def listen(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(path + '.mine')
    return 'escaped'

def pair():
    a, b = socket.socketpair()
    a.sendall(b'ok')
    return b.recv(2).decode()
";
    let path = |p: &Path| vec![path_arg(p)];
    let report = attack.run(&request(
        source,
        vec![
            escaped("stream", path(&stream_path)),
            escaped("datagram", path(&dgram_path)),
            escaped("listen", path(&stream_path)),
            call(
                "pair",
                vec![],
                Some(Expectation::Returns(Value::Str("ok".into()))),
            ),
        ],
    ));
    assert_eq!(report.load_error, None);
    assert_eq!(
        report.met,
        vec![Some(false), Some(false), Some(false), Some(true)],
        "{:?}",
        report.outcomes
    );
    assert!(listener.accept().is_err(), "a connection reached the host");
    let mut buf = [0u8; 16];
    assert!(dgram.recv(&mut buf).is_err(), "a datagram reached the host");
    assert!(!dir.join("host.sock.mine").exists());
}

/// A run's writes are bounded in all, not only per file (issue 11, item 3: one candidate once
/// wrote 1.97 GiB and 20,000 files into scratch): its working directory is a tmpfs of
/// `scratch_bytes` (8 MiB here) and `scratch_files` (256) inodes, and above it nothing is
/// writable.
#[test]
fn a_disk_flood_stops_at_the_scratch_quota() {
    let attack = Attack::new("flood", small());
    assert!(
        attack.sandbox.isolation().scratch_quota.active,
        "{}",
        attack.sandbox.isolation()
    );
    let source = "\
import os

def many_files():
    n = 0
    try:
        while n < 100000:
            with open('f%d' % n, 'w') as fh:
                fh.write('x')
            n += 1
    except OSError:
        pass
    return n

def many_bytes():
    total = 0
    block = b'x' * (256 * 1024)
    k = 0
    try:
        while total < (1 << 30):
            with open('big%d' % k, 'wb') as fh:
                for _ in range(3):
                    fh.write(block)
                    fh.flush()
                    total += len(block)
            k += 1
    except OSError:
        pass
    for j in range(k + 1):
        if os.path.exists('big%d' % j):
            os.remove('big%d' % j)
    return total

def above():
    try:
        with open('../outside', 'w') as fh:
            fh.write('x')
        return 'escaped'
    except OSError:
        return 'refused'
";
    let report = attack.run(&request(
        source,
        vec![
            call("many_bytes", vec![], None),
            call("many_files", vec![], None),
            call("above", vec![], None),
        ],
    ));
    let number = |o: &Outcome| match o {
        Outcome::Value(v) => v.parse::<u64>().unwrap_or(u64::MAX),
        other => panic!("{other:?} {:?}", report.load_error),
    };
    let bytes = number(&report.outcomes[0]);
    let files = number(&report.outcomes[1]);
    assert!(files > 0 && files <= 256, "files created: {files}");
    assert!(bytes > 0 && bytes <= 8 << 20, "bytes written: {bytes}");
    assert_eq!(report.outcomes[2], Outcome::Value("'refused'".into()));
}

#[test]
fn tcp_and_udp_to_the_host_fail() {
    let attack = Attack::new("tcp", small());
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.set_nonblocking(true).unwrap();
    let udp_port = udp.local_addr().unwrap().port();
    let source = "\
import socket

def connect(port):
    s = socket.create_connection(('127.0.0.1', port), timeout=1)
    s.sendall(b'hello')
    return 'escaped'

def connect6(port):
    s = socket.create_connection(('::ffff:127.0.0.1', port), timeout=1)
    s.sendall(b'hello')
    return 'escaped'

def datagram(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.sendto(b'hello', ('127.0.0.1', port))
    return 'escaped'

def raw():
    socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    return 'escaped'
";
    let port_arg = vec![Value::Int(i64::from(port))];
    let report = attack.run(&request(
        source,
        vec![
            escaped("connect", port_arg.clone()),
            escaped("connect6", port_arg),
            escaped("datagram", vec![Value::Int(i64::from(udp_port))]),
            escaped("raw", vec![]),
        ],
    ));
    assert_all_failed(&report);
    assert!(
        report.outcomes.iter().all(is_error),
        "{:?}",
        report.outcomes
    );
    assert_eq!(
        listener.accept().map(|_| ()).unwrap_err().kind(),
        ErrorKind::WouldBlock,
        "the listener accepted a connection"
    );
    let mut buf = [0u8; 16];
    assert_eq!(
        udp.recv_from(&mut buf).map(|_| ()).unwrap_err().kind(),
        ErrorKind::WouldBlock,
        "a datagram arrived"
    );
}

#[test]
fn name_lookups_lead_nowhere() {
    let attack = Attack::new("dns", small());
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let source = "\
import socket

def via_localhost(port):
    for family, kind, proto, _, address in socket.getaddrinfo('localhost', port,
                                                              type=socket.SOCK_STREAM):
        try:
            s = socket.socket(family, kind, proto)
            s.settimeout(1)
            s.connect(address)
            return 'escaped'
        except OSError:
            pass
    return 'resolved, not connected'

def remote():
    socket.getaddrinfo('example.com', 80)
    return 'escaped'
";
    let report = attack.run(&request(
        source,
        vec![
            escaped("via_localhost", vec![Value::Int(i64::from(port))]),
            escaped("remote", vec![]),
        ],
    ));
    assert_all_failed(&report);
    assert!(is_error(&report.outcomes[1]), "{:?}", report.outcomes);
    assert_eq!(
        listener.accept().map(|_| ()).unwrap_err().kind(),
        ErrorKind::WouldBlock,
        "the listener accepted a connection"
    );
}

#[test]
fn writes_outside_scratch_fail() {
    let attack = Attack::new("write", small());
    let outside = attack.outside("outside");
    let source = "\
import os

def write(directory):
    with open(os.path.join(directory, 'escaped.txt'), 'w') as f:
        f.write('escaped')
    return 'escaped'

def make_dir(directory):
    os.mkdir(os.path.join(directory, 'escaped-dir'))
    return 'escaped'

def symlink(directory):
    os.symlink('/etc/passwd', os.path.join(directory, 'escaped-link'))
    return 'escaped'

def move_in(directory):
    with open('mine.txt', 'w') as f:
        f.write('escaped')
    os.rename('mine.txt', os.path.join(directory, 'escaped-moved.txt'))
    return 'escaped'

def tmp(name):
    with open('/tmp/' + name, 'w') as f:
        f.write('escaped')
    return 'escaped'
";
    let tmp_name = marker("write-tmp");
    let dir = vec![path_arg(&outside)];
    let report = attack.run(&request(
        source,
        vec![
            escaped("write", dir.clone()),
            escaped("make_dir", dir.clone()),
            escaped("symlink", dir.clone()),
            escaped("move_in", dir),
            escaped("tmp", vec![text(&tmp_name)]),
        ],
    ));
    assert_all_failed(&report);
    assert!(
        report.outcomes.iter().all(is_error),
        "{:?}",
        report.outcomes
    );
    let made: Vec<_> = fs::read_dir(&outside).unwrap().collect();
    assert!(made.is_empty(), "{made:?}");
    assert!(!Path::new("/tmp").join(&tmp_name).exists());
}

#[test]
fn secrets_outside_scratch_cannot_be_read() {
    let attack = Attack::new("secret", small());
    let outside = attack.outside("secrets");
    let secret_text = format!("the secret is {}", marker("secret"));
    let secret = outside.join("secret.txt");
    fs::write(&secret, &secret_text).unwrap();
    fs::set_permissions(&secret, fs::Permissions::from_mode(0o644)).unwrap();
    let source = "\
import os

def read(path):
    with open(path) as f:
        return f.read()

def via_symlink(path):
    os.symlink(path, 'link')
    with open('link') as f:
        return f.read()

def via_hardlink(path):
    os.link(path, 'hard')
    with open('hard') as f:
        return f.read()

def via_proc(path):
    with open('/proc/self/root' + path) as f:
        return f.read()

def list_dir(path):
    return sorted(os.listdir(os.path.dirname(path)))

def home(path):
    return sorted(os.listdir(path))

def passwd():
    with open('/etc/passwd') as f:
        return f.read()
";
    let home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
    let arg = vec![path_arg(&secret)];
    let report = attack.run(&request(
        source,
        vec![
            escaped("read", arg.clone()),
            escaped("via_symlink", arg.clone()),
            escaped("via_hardlink", arg.clone()),
            escaped("via_proc", arg.clone()),
            escaped("list_dir", arg),
            escaped("home", vec![text(&home)]),
            escaped("passwd", vec![]),
        ],
    ));
    assert_all_failed(&report);
    assert!(
        report.outcomes.iter().all(is_error),
        "{:?}",
        report.outcomes
    );
    let everything = format!("{report:?}");
    assert!(!everything.contains(&secret_text), "{everything}");
    assert!(!everything.contains("secret.txt"), "{everything}");
    assert_eq!(fs::read_to_string(&secret).unwrap(), secret_text);
}

#[test]
fn a_gigabyte_of_output_is_capped() {
    let attack = Attack::new(
        "output",
        Limits {
            wall_ms: 15_000,
            call_ms: 12_000,
            cpu_s: 14,
            ..small()
        },
    );
    let source = "\
import os, sys

def flood():
    # 2 x 512 MiB through the harness's capped writers, 2 x 512 MiB straight to the descriptors.
    chunk = 'x' * (1 << 20)
    for _ in range(512):
        sys.stdout.write(chunk)
        sys.stderr.write(chunk)
    block = b'y' * (1 << 20)
    for _ in range(512):
        os.write(1, block)
        os.write(2, block)
    return 'escaped'
";
    // Flooding is not a fault in itself: the run must end, with a bounded report.
    let flood = || call("flood", vec![], None);
    let report = attack.run(&request(source, vec![flood(), flood()]));
    assert_eq!(report.load_error, None);
    for outcome in &report.outcomes {
        assert!(
            matches!(outcome, Outcome::Value(v) if v == "'escaped'")
                || outcome == &Outcome::Timeout,
            "{outcome:?}"
        );
    }
    // Whatever finished is bounded: the report is small.
    let size = format!("{report:?}").len();
    assert!(size < 4096, "report of {size} bytes");
}

#[test]
fn build_directory_files_survive() {
    let attack = Attack::new("build-dir", small());
    let build = attack.outside("build");
    let program = build.join("program.py");
    fs::write(&program, "print('the delivered program')\n").unwrap();
    fs::set_permissions(&program, fs::Permissions::from_mode(0o666)).unwrap();
    let source = "\
import os, shutil

def remove(path):
    os.remove(path)
    return 'escaped'

def truncate(path):
    open(path, 'w').close()
    return 'escaped'

def rename(path):
    os.rename(path, path + '.moved')
    return 'escaped'

def rmtree(path):
    shutil.rmtree(os.path.dirname(path))
    return 'escaped'
";
    let arg = vec![path_arg(&program)];
    let report = attack.run(&request(
        source,
        vec![
            escaped("remove", arg.clone()),
            escaped("truncate", arg.clone()),
            escaped("rename", arg.clone()),
            escaped("rmtree", arg),
        ],
    ));
    assert_all_failed(&report);
    assert!(
        report.outcomes.iter().all(is_error),
        "{:?}",
        report.outcomes
    );
    assert_eq!(
        fs::read_to_string(&program).unwrap(),
        "print('the delivered program')\n"
    );
    let names: Vec<_> = fs::read_dir(&build)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("program.py")]);
}

#[test]
fn signals_to_synod_are_refused() {
    let attack = Attack::new("kill-parent", small());
    let source = "\
import os, signal

def kill_parent():
    os.kill(os.getppid(), signal.SIGKILL)
    return 'escaped'

def kill_parent_group():
    os.killpg(os.getpgid(os.getppid()), signal.SIGKILL)
    return 'escaped'

def stop_parent():
    os.kill(os.getppid(), signal.SIGSTOP)
    return 'escaped'

def probe_parent():
    os.kill(os.getppid(), 0)
    return 'escaped'

def init():
    os.kill(1, 0)
    return 'escaped'
";
    let report = attack.run(&request(
        source,
        vec![
            escaped("kill_parent", vec![]),
            escaped("kill_parent_group", vec![]),
            escaped("stop_parent", vec![]),
            escaped("probe_parent", vec![]),
            escaped("init", vec![]),
        ],
    ));
    // Still here, and not stopped: this line runs. (`kill(-1, sig)` is not probed: it reports
    // success even when every process refuses the signal.)
    assert_all_failed(&report);
    assert!(
        report.outcomes.iter().all(is_error),
        "{:?}",
        report.outcomes
    );
}

#[test]
fn forged_result_lines_with_a_guessed_nonce_are_ignored() {
    let attack = Attack::new("forge", small());
    let source = r#"
import os, sys

FAKE = '0123456789abcdef0123456789abcdef'

def forge(line):
    text = 'SYNOD ' + FAKE + ' ' + line + '\n'
    print(text, end='')
    sys.stderr.write(text)
    for stream in (sys.__stdout__, sys.__stderr__):
        try:
            stream.write(text)
            stream.flush()
        except Exception:
            pass
    # Every descriptor, including the harness's private result stream.
    for fd in range(1, 64):
        try:
            os.write(fd, text.encode())
        except OSError:
            pass

forge('{"loaded": true, "load_error": null, "interface_errors": []}')
forge('{"i": 0, "outcome": {"value": "\'escaped\'"}, "met": true}')
forge('{"done": true}')

def answer():
    forge('{"i": 0, "outcome": {"value": "\'escaped\'"}, "met": true}')
    forge('{"i": 1, "outcome": {"value": "\'escaped\'"}, "met": true}')
    forge('{"done": true}')
    return 'honest'
"#;
    let report = attack.run(&request(
        source,
        vec![escaped("answer", vec![]), escaped("answer", vec![])],
    ));
    assert_all_failed(&report);
    assert_eq!(
        report.outcomes,
        vec![
            Outcome::Value("'honest'".into()),
            Outcome::Value("'honest'".into())
        ]
    );
}

/// The control experiment: without isolation the same attacks succeed, so the tests above can
/// fail. Uses only targets this test owns (its own listener, directory and file).
#[test]
fn without_isolation_the_attacks_succeed() {
    let dir = test_dir("control");
    let sandbox = Sandbox::new_unsafe_no_sandbox(dir.join("scratch"), small())
        .unwrap()
        .with_audit(Audit::off());
    assert!(!sandbox.isolation().is_isolated());
    assert!(sandbox.isolation().to_string().contains("UNSAFE"));
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let outside = dir.join("outside");
    fs::create_dir_all(&outside).unwrap();
    let secret = outside.join("secret.txt");
    fs::write(&secret, "control secret").unwrap();
    let source = "\
import os, socket

def connect(port):
    socket.create_connection(('127.0.0.1', port), timeout=1).close()
    return 'escaped'

def write(directory):
    with open(os.path.join(directory, 'escaped.txt'), 'w') as f:
        f.write('escaped')
    return 'escaped'

def read(path):
    with open(path) as f:
        return f.read()
";
    let report = sandbox
        .run(&request(
            source,
            vec![
                escaped("connect", vec![Value::Int(i64::from(port))]),
                escaped("write", vec![path_arg(&outside)]),
                call("read", vec![path_arg(&secret)], None),
            ],
        ))
        .unwrap();
    assert_eq!(
        report.outcomes,
        vec![
            Outcome::Value("'escaped'".into()),
            Outcome::Value("'escaped'".into()),
            Outcome::Value("'control secret'".into()),
        ]
    );
    assert!(outside.join("escaped.txt").exists());
    let _ = fs::remove_dir_all(&dir);
}
