//! Isolation of candidate processes: what the kernel offers (detected once per [`Sandbox`]), the
//! per-run confinement prepared before `fork`, and the part applied in the child between `fork`
//! and `exec`.
//!
//! # Where the confinement happens, and why there
//!
//! Everything is done in the `pre_exec` hook of [`std::process::Command`], not in a re-exec
//! helper: the hook runs in the forked child just before `exec`, so the interpreter never runs a
//! single instruction unconfined, and there is no second binary to ship or find. The price is
//! that the hook may only make async-signal-safe calls (the parent has other threads, whose
//! locks the child inherits in whatever state they were). So everything that allocates or takes
//! locks is done *before* the fork, in [`Confinement::prepare`]: the landlock ruleset is built
//! with the `landlock` crate in the parent (opening the allowed paths, adding the rules) and only
//! its file descriptor goes into the child; the seccomp BPF program is compiled by `seccompiler`
//! once per sandbox; uid/gid maps are formatted into fixed buffers. In the child,
//! [`Confinement::apply`] then makes plain system calls only: `setsid`, `setrlimit`, `unshare`,
//! `setresgid`/`setresuid`, `capset`, `prctl`, `landlock_restrict_self` and
//! `seccomp(SECCOMP_SET_MODE_FILTER)`, `open`/`write` of `/proc/self/*_map`.
//!
//! # The layers (see docs/SECURITY.md for the threat model)
//!
//! - **Network namespace.** `unshare(CLONE_NEWNET)`: the candidate sees only a loopback device
//!   that is down, so every connect fails, to the outside world and to the host's 127.0.0.1
//!   alike. Run as root, that is all it takes; otherwise a user namespace comes first
//!   (`CLONE_NEWUSER | CLONE_NEWNET`), which grants the right to create the network namespace.
//! - **Unprivileged uid** (when synod runs as root). The candidate runs as a uid of its own,
//!   picked per run from a range no account uses, so that it cannot signal synod's processes
//!   (different uid, no `CAP_KILL`), `RLIMIT_NPROC` is enforced (root ignores it, so a fork bomb
//!   would not stop), and at the end every process of that uid can be killed, including
//!   children that left the process group with `setsid`. It keeps one capability,
//!   `CAP_DAC_READ_SEARCH` (as an ambient capability), because the interpreter may live in a
//!   directory only root can search (pyenv under `/root`): with it, *which* files may be read is
//!   decided by landlock alone. It has no other capability and owns no file outside its scratch
//!   directory. A user namespace is not used as root: entering one would drop that capability
//!   in the initial namespace, and the interpreter could not be read.
//! - **Landlock.** Reads (and execution) only beneath the interpreter's prefixes and its real
//!   executable, `/usr/lib`, `/lib`, `/lib64`, `/etc/ld.so.cache`, `/dev/null`, `/dev/urandom`;
//!   reads and writes only beneath the run's scratch directory. From ABI 4, TCP bind and
//!   connect are denied too; from ABI 6, signals to processes outside the sandbox and abstract
//!   unix sockets outside it are denied (scopes).
//! - **Seccomp** (defence in depth). `socket()` of any family but `AF_UNIX` fails with
//!   `EACCES`; `io_uring` (which can open sockets without `socket()`) and `open_by_handle_at`
//!   (which opens files by handle, with the capability above) fail with `EACCES` too.
//! - **Resource limits and the process group**, as before: see `process.rs`.

use std::fmt;
use std::fs;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use landlock::{
    ABI, Access, AccessFs, AccessNet, Ruleset, RulesetAttr, RulesetCreatedAttr, Scope,
    path_beneath_rules,
};
use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule,
};
use serde::Serialize;

use crate::{ExecError, Limits};

/// First uid (and gid) of the range candidates run as when synod runs as root. The range is far
/// above the ranges distributions hand out to accounts (below 60,000) and to containers
/// (`/etc/subuid`, usually from 100,000 in blocks of 65,536).
pub const SANDBOX_UID_BASE: u32 = 0x6000_0000;

/// Number of uids in the range: a run picks one from the process id, the run serial and the
/// clock, so concurrent runs (even of different synod processes) almost never share one.
pub const SANDBOX_UID_COUNT: u32 = 1 << 24;

/// `CAP_DAC_READ_SEARCH`, from `linux/capability.h`.
const CAP_DAC_READ_SEARCH: u32 = 2;

/// `_LINUX_CAPABILITY_VERSION_3`, from `linux/capability.h`.
const CAPABILITY_VERSION_3: u32 = 0x2008_0522;

/// `LANDLOCK_CREATE_RULESET_VERSION`: asks `landlock_create_ruleset` for the ABI version.
const LANDLOCK_CREATE_RULESET_VERSION: u32 = 1;

/// Paths the interpreter needs besides its own prefix. Missing ones are skipped.
const SYSTEM_READ_PATHS: [&str; 5] = [
    "/usr/lib",
    "/lib",
    "/lib64",
    "/etc/ld.so.cache",
    "/dev/urandom",
];

/// Whether candidates are isolated at all.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum IsolationMode {
    /// Every required mechanism is active.
    Isolated,
    /// The user asked for resource limits only (`--unsafe-no-sandbox`): candidates can read
    /// what the user can read, write where the user can write, and use the network.
    UnsafeNoSandbox,
}

/// One isolation mechanism: active or not, and a one-line explanation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Mechanism {
    /// Whether runs use it.
    pub active: bool,
    /// What it does for synod, or why it is not used.
    pub detail: String,
}

impl Mechanism {
    fn on(detail: impl Into<String>) -> Mechanism {
        Mechanism {
            active: true,
            detail: detail.into(),
        }
    }

    fn off(detail: impl Into<String>) -> Mechanism {
        Mechanism {
            active: false,
            detail: detail.into(),
        }
    }
}

/// What confines candidate processes: found out from the kernel when a [`Sandbox`] is made, and
/// recorded (for instance in the certificate) so that a reader knows what a run was exposed to.
///
/// [`Sandbox`]: crate::Sandbox
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Isolation {
    /// Isolated, or explicitly unsafe.
    pub mode: IsolationMode,
    /// The user id synod runs as.
    pub synod_uid: u32,
    /// A network namespace of its own per run (required).
    pub network_namespace: Mechanism,
    /// A user namespace per run (needed for the network namespace when not root).
    pub user_namespace: Mechanism,
    /// Landlock filesystem rules (required).
    pub landlock: Mechanism,
    /// The kernel's landlock ABI version, if it has landlock.
    pub landlock_abi: Option<u32>,
    /// Landlock TCP rules (ABI 4): bind and connect denied.
    pub landlock_network: Mechanism,
    /// Landlock scopes (ABI 6): no signals to, and no abstract sockets of, outside processes.
    pub landlock_scopes: Mechanism,
    /// A uid of its own per run (when synod runs as root).
    pub unprivileged_uid: Mechanism,
    /// The seccomp filter on `socket()`, `io_uring` and `open_by_handle_at`.
    pub seccomp: Mechanism,
    /// Whether processes a candidate detached with `setsid` are killed at the end of a run.
    pub detached_processes_killed: Mechanism,
    /// Whether a run's writes are bounded in all (a tmpfs of fixed size and inodes as its
    /// working directory), not only per file.
    pub scratch_quota: Mechanism,
}

impl Isolation {
    /// True when every required mechanism is active: a network namespace, landlock, and a way
    /// to stop candidates from signalling synod (a uid of their own or landlock scopes).
    pub fn is_isolated(&self) -> bool {
        self.mode == IsolationMode::Isolated && self.missing().is_empty()
    }

    /// The required mechanisms that are missing, each with the reason.
    pub fn missing(&self) -> Vec<String> {
        let mut missing = Vec::new();
        if self.mode == IsolationMode::UnsafeNoSandbox {
            missing.push("isolation was turned off (--unsafe-no-sandbox)".to_string());
            return missing;
        }
        if !self.network_namespace.active {
            missing.push(format!(
                "no network namespace: {}",
                self.network_namespace.detail
            ));
        }
        if !self.landlock.active {
            missing.push(format!("no landlock: {}", self.landlock.detail));
        }
        if !self.landlock_scopes.active && !self.unprivileged_uid.active {
            missing.push(
                "nothing stops a candidate from signalling synod: landlock scopes need Linux \
                 6.12 or newer, and a separate uid needs synod to run as root"
                    .to_string(),
            );
        }
        missing
    }

    /// The mechanisms, in the order reports list them, with their names.
    pub fn mechanisms(&self) -> [(&'static str, &Mechanism); 9] {
        [
            ("network namespace", &self.network_namespace),
            ("user namespace", &self.user_namespace),
            ("landlock filesystem", &self.landlock),
            ("landlock network", &self.landlock_network),
            ("landlock scopes", &self.landlock_scopes),
            ("unprivileged uid", &self.unprivileged_uid),
            ("seccomp", &self.seccomp),
            ("detached processes killed", &self.detached_processes_killed),
            ("scratch quota", &self.scratch_quota),
        ]
    }

    /// What the kernel offers here, detected by trying each mechanism in a short-lived child
    /// process. Does not need Python.
    pub fn detect() -> Isolation {
        Kernel::detect().isolation()
    }

    /// The report for a sandbox without isolation.
    pub(crate) fn unsafe_no_sandbox() -> Isolation {
        let off = || Mechanism::off("turned off by --unsafe-no-sandbox");
        Isolation {
            mode: IsolationMode::UnsafeNoSandbox,
            synod_uid: current_uid(),
            network_namespace: off(),
            user_namespace: off(),
            landlock: off(),
            landlock_abi: None,
            landlock_network: off(),
            landlock_scopes: off(),
            unprivileged_uid: off(),
            seccomp: off(),
            detached_processes_killed: off(),
            scratch_quota: off(),
        }
    }
}

impl fmt::Display for Isolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.mode {
            IsolationMode::Isolated if self.is_isolated() => writeln!(
                f,
                "sandbox: isolated (synod runs as uid {})",
                self.synod_uid
            )?,
            IsolationMode::Isolated => writeln!(
                f,
                "sandbox: NOT isolated (synod runs as uid {}): {}",
                self.synod_uid,
                self.missing().join("; ")
            )?,
            IsolationMode::UnsafeNoSandbox => writeln!(
                f,
                "sandbox: UNSAFE, no isolation (--unsafe-no-sandbox): candidates run with \
                 resource limits only and can read your files, write where you can and use \
                 the network"
            )?,
        }
        for (name, mechanism) in self.mechanisms() {
            let state = if mechanism.active { "active" } else { "off" };
            writeln!(f, "  {name:<26} {state:<6} {}", mechanism.detail)?;
        }
        Ok(())
    }
}

/// What the kernel allows, found out once.
#[derive(Clone, Debug)]
pub(crate) struct Kernel {
    /// Landlock ABI version, 0 without landlock.
    landlock_abi: i32,
    /// synod runs as root: candidates get a uid of their own and no user namespace.
    as_root: bool,
    /// A network namespace (with a user namespace first when not root) can be made.
    netns: Result<(), String>,
    /// Root can switch to another uid keeping `CAP_DAC_READ_SEARCH` as ambient capability.
    uid_switch: Result<(), String>,
    /// A mount namespace with a size-limited tmpfs can be made (the scratch quota).
    tmpfs: Result<(), String>,
    /// The seccomp filter installs.
    seccomp: Result<(), String>,
    /// The compiled seccomp filter.
    filter: Arc<BpfProgram>,
}

impl Kernel {
    pub(crate) fn detect() -> Kernel {
        let as_root = current_uid() == 0;
        let landlock_abi = landlock_abi();
        let netns = if as_root {
            in_child(|| unshare(libc::CLONE_NEWNET))
        } else {
            // With the PID namespace each run gets on this path (see `Confinement::apply`).
            in_child(|| unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWNET | libc::CLONE_NEWPID))
        };
        let tmpfs = detect_tmpfs(as_root);
        let uid_switch = if as_root {
            in_child(|| {
                let id = SANDBOX_UID_BASE;
                drop_to_uid(id, id)
            })
        } else {
            Err("synod does not run as root".to_string())
        };
        let filter = Arc::new(seccomp_filter());
        let seccomp = if filter.is_empty() {
            Err("the filter could not be compiled for this architecture".to_string())
        } else {
            let filter = Arc::clone(&filter);
            in_child(move || {
                no_new_privs()?;
                seccompiler::apply_filter(&filter).map_err(|_| io::Error::last_os_error())
            })
        };
        Kernel {
            landlock_abi,
            as_root,
            netns,
            uid_switch,
            tmpfs,
            seccomp,
            filter,
        }
    }

    pub(crate) fn isolation(&self) -> Isolation {
        let abi = self.landlock_abi;
        let netns = match &self.netns {
            Ok(()) => Mechanism::on(
                "each run has its own network namespace: no interfaces up, every connect fails",
            ),
            Err(why) => Mechanism::off(format!("unshare failed: {why}")),
        };
        let userns = if self.as_root {
            Mechanism::off(
                "not needed as root (and it would hide the interpreter from the candidate's uid)",
            )
        } else {
            match &self.netns {
                Ok(()) => Mechanism::on(
                    "each run has its own user namespace, which lets it make the network namespace",
                ),
                Err(why) => Mechanism::off(format!("unshare failed: {why}")),
            }
        };
        let landlock = if abi >= 1 {
            Mechanism::on(format!(
                "ABI {abi}: reads only beneath the interpreter, system libraries and the run's scratch directory; writes only in the scratch directory"
            ))
        } else {
            Mechanism::off(
                "the kernel has no landlock (Linux 5.13+ with landlock in the lsm= boot list)",
            )
        };
        let landlock_network = if abi >= 4 {
            Mechanism::on("TCP bind and connect denied")
        } else {
            Mechanism::off("needs landlock ABI 4 (Linux 6.7)")
        };
        let landlock_scopes = if abi >= 6 {
            Mechanism::on("no signals to outside processes, no outside abstract unix sockets")
        } else {
            Mechanism::off("needs landlock ABI 6 (Linux 6.12)")
        };
        let uid = match &self.uid_switch {
            Ok(()) => Mechanism::on(format!(
                "each run has a uid of its own from {SANDBOX_UID_BASE}: it cannot signal synod, RLIMIT_NPROC holds"
            )),
            Err(why) => Mechanism::off(format!("{why}: candidates run as synod's uid")),
        };
        let seccomp = match &self.seccomp {
            Ok(()) => Mechanism::on(
                "socket() only for AF_UNIX, and no connect, bind or addressed send (socket pairs only); no io_uring, no open_by_handle_at",
            ),
            Err(why) => Mechanism::off(format!("the filter does not install: {why}")),
        };
        let detached = if self.uid_switch.is_ok() {
            Mechanism::on("every process of the run's uid is killed at the end")
        } else if !self.as_root && self.netns.is_ok() {
            Mechanism::on(
                "each run's children live in a PID namespace of its own, killed whole at the end",
            )
        } else {
            Mechanism::off(
                "needs a uid per run (root) or a user namespace: a child that calls setsid can outlive its run",
            )
        };
        Isolation {
            mode: IsolationMode::Isolated,
            synod_uid: current_uid(),
            network_namespace: netns,
            user_namespace: userns,
            landlock,
            landlock_abi: u32::try_from(abi).ok().filter(|abi| *abi > 0),
            landlock_network,
            landlock_scopes,
            unprivileged_uid: uid,
            seccomp,
            detached_processes_killed: detached,
            scratch_quota: match &self.tmpfs {
                Ok(()) => Mechanism::on(
                    "each run writes only in a tmpfs of its own (Limits::scratch_bytes, scratch_files), gone with the run",
                ),
                Err(why) => Mechanism::off(format!(
                    "no tmpfs in a mount namespace ({why}): only single files are capped"
                )),
            },
        }
    }

    /// The confinement of one run in `scratch`, reading beneath `read_roots`. `uid` is the run's
    /// own uid, used when running as root.
    pub(crate) fn prepare(
        &self,
        limits: &Limits,
        scratch: &Path,
        read_roots: &[PathBuf],
        uid: u32,
    ) -> Result<Confinement, ExecError> {
        let confine_error = |detail: String| ExecError::Confine { detail };
        let identity = if self.as_root && self.uid_switch.is_ok() {
            std::os::unix::fs::chown(scratch, Some(uid), Some(uid)).map_err(|source| {
                ExecError::Scratch {
                    path: scratch.to_path_buf(),
                    source,
                }
            })?;
            Identity::Switch { uid }
        } else if self.as_root {
            Identity::Keep
        } else {
            Identity::UserNamespace(IdMaps::new(current_uid(), current_gid()))
        };
        let work = scratch.join(crate::WORK_DIR);
        if let Identity::Switch { uid } = identity {
            std::os::unix::fs::chown(&work, Some(uid), Some(uid)).map_err(|source| {
                ExecError::Scratch {
                    path: work.clone(),
                    source,
                }
            })?;
        }
        // With the tmpfs, the working directory's rule is added in the child after the mount:
        // landlock ignores a rule on a directory that a mount hides.
        let with_tmpfs = self.tmpfs.is_ok();
        let landlock = if self.landlock_abi >= 1 {
            let work_rule = (!with_tmpfs).then_some(work.as_path());
            Some(
                landlock_ruleset(self.landlock_abi, scratch, work_rule, read_roots)
                    .map_err(confine_error)?,
            )
        } else {
            None
        };
        let work_access = AccessFs::from_all(ABI::from(self.landlock_abi)).bits();
        let tmpfs = if self.tmpfs.is_ok() {
            let owner = match identity {
                Identity::Switch { uid } => format!(",uid={uid},gid={uid}"),
                _ => String::new(),
            };
            let target = std::ffi::CString::new(work.as_os_str().as_encoded_bytes())
                .map_err(|_| confine_error("the scratch path holds a NUL byte".into()))?;
            let options = std::ffi::CString::new(format!(
                "size={},nr_inodes={},mode=0700{owner}",
                limits.scratch_bytes.max(4096),
                limits.scratch_files.max(16)
            ))
            .map_err(|_| confine_error("the tmpfs options hold a NUL byte".into()))?;
            Some((target, options))
        } else {
            None
        };
        Ok(Confinement {
            rlimits: rlimits(limits),
            new_network: self.netns.is_ok(),
            identity,
            landlock,
            filter: self.seccomp.is_ok().then(|| Arc::clone(&self.filter)),
            tmpfs,
            work_access,
        })
    }

    /// The uid whose processes are killed after a run, if runs get a uid of their own.
    pub(crate) fn run_uid(&self, uid: u32) -> Option<u32> {
        (self.as_root && self.uid_switch.is_ok()).then_some(uid)
    }
}

/// Who the candidate runs as.
enum Identity {
    /// Root switching to the run's own uid (and gid), keeping `CAP_DAC_READ_SEARCH`.
    Switch { uid: u32 },
    /// Root, staying root: only when switching is impossible, and then the sandbox is not
    /// isolated unless landlock scopes stop signals.
    Keep,
    /// Not root: a user namespace mapping synod's uid and gid to themselves.
    UserNamespace(IdMaps),
}

/// `/proc/self/{uid_map,gid_map}` lines, formatted before the fork.
struct IdMaps {
    uid_map: Vec<u8>,
    gid_map: Vec<u8>,
}

impl IdMaps {
    fn new(uid: u32, gid: u32) -> IdMaps {
        IdMaps {
            uid_map: format!("{uid} {uid} 1\n").into_bytes(),
            gid_map: format!("{gid} {gid} 1\n").into_bytes(),
        }
    }
}

/// Everything one run's child applies to itself, prepared before the fork.
pub(crate) struct Confinement {
    /// (resource, soft limit, hard limit).
    rlimits: [(libc::__rlimit_resource_t, u64, u64); 6],
    new_network: bool,
    identity: Identity,
    /// The landlock ruleset, built and filled in the parent.
    landlock: Option<OwnedFd>,
    filter: Option<Arc<BpfProgram>>,
    /// The working directory to mount a tmpfs on, and the mount's options (the quota).
    tmpfs: Option<(std::ffi::CString, std::ffi::CString)>,
    /// The landlock rights on the working directory (added after its tmpfs is mounted).
    work_access: u64,
}

impl Confinement {
    /// Only resource limits and the process group: the unsafe mode.
    pub(crate) fn limits_only(limits: &Limits) -> Confinement {
        Confinement {
            rlimits: rlimits(limits),
            new_network: false,
            identity: Identity::Keep,
            landlock: None,
            filter: None,
            tmpfs: None,
            work_access: 0,
        }
    }

    /// Applies the confinement to the calling process. Called in the forked child before
    /// `exec`: only async-signal-safe system calls, no allocation, no locks. The order matters:
    /// the network namespace needs root's (or the user namespace's) `CAP_SYS_ADMIN`, so it comes
    /// before the uid switch; landlock and seccomp need `no_new_privs` and come last.
    #[allow(unsafe_code)]
    pub(crate) fn apply(&self) -> io::Result<()> {
        // SAFETY: setsid has no preconditions.
        if unsafe { libc::setsid() } == -1 {
            return Err(io::Error::last_os_error());
        }
        match &self.identity {
            Identity::UserNamespace(maps) => {
                // Without a uid of its own, a child that calls setsid escapes the process-group
                // kill. In a PID namespace of its own the candidate's first child is that
                // namespace's init: when it exits, the kernel kills every process left in the
                // namespace, so a double fork leaves nothing behind (seen as an unprivileged
                // user: the grandchild outlived the run without it).
                let mut flags = libc::CLONE_NEWUSER | libc::CLONE_NEWPID;
                if self.new_network {
                    flags |= libc::CLONE_NEWNET;
                }
                if self.tmpfs.is_some() {
                    flags |= libc::CLONE_NEWNS;
                }
                unshare(flags)?;
                write_file(c"/proc/self/setgroups", b"deny")?;
                write_file(c"/proc/self/uid_map", &maps.uid_map)?;
                write_file(c"/proc/self/gid_map", &maps.gid_map)?;
                self.mount_work()?;
                // The namespace's init is a process of ours that only waits, holding no file
                // descriptor, in the run's process group: the group kill at the end of the run
                // kills it, and with it the kernel kills everything left in the namespace, a
                // child that called setsid included. From inside, init ignores even SIGKILL.
                // SAFETY: fork in the pre-exec child; the new process makes only
                // async-signal-safe calls (close_range, pause) and never returns.
                match unsafe { libc::fork() } {
                    -1 => return Err(io::Error::last_os_error()),
                    0 => unsafe {
                        libc::syscall(libc::SYS_close_range, 0u32, u32::MAX, 0u32);
                        loop {
                            libc::pause();
                        }
                    },
                    _ => {}
                }
            }
            Identity::Switch { uid } => {
                if self.new_network {
                    unshare(libc::CLONE_NEWNET)?;
                }
                if self.tmpfs.is_some() {
                    unshare(libc::CLONE_NEWNS)?;
                    self.mount_work()?;
                }
                drop_to_uid(*uid, *uid)?;
            }
            Identity::Keep => {
                if self.new_network {
                    unshare(libc::CLONE_NEWNET)?;
                }
                if self.tmpfs.is_some() {
                    unshare(libc::CLONE_NEWNS)?;
                    self.mount_work()?;
                }
            }
        }
        // After the namespaces and the namespace's init (above), so that the process limit
        // applies to the candidate and not to the init synod starts for it.
        for (resource, soft, hard) in self.rlimits {
            set_rlimit(resource, soft, hard)?;
        }
        if self.landlock.is_some() || self.filter.is_some() {
            no_new_privs()?;
        }
        if let Some(ruleset) = &self.landlock {
            // SAFETY: a plain system call on a ruleset descriptor we own; no memory is passed.
            let rc = unsafe {
                libc::syscall(
                    libc::SYS_landlock_restrict_self,
                    ruleset.as_raw_fd(),
                    0 as libc::c_uint,
                )
            };
            if rc != 0 {
                return Err(io::Error::last_os_error());
            }
        }
        if let Some(filter) = &self.filter {
            // apply_filter builds a sock_fprog on the stack over the already compiled program
            // and makes one seccomp system call: no allocation on success or failure.
            seccompiler::apply_filter(filter).map_err(|_| io::Error::last_os_error())?;
        }
        Ok(())
    }
}

impl Confinement {
    /// In the run's own mount namespace: nothing propagates back to the host, and the working
    /// directory becomes a tmpfs of the run's size and inode limits (gone when the run's last
    /// process is).
    #[allow(unsafe_code)]
    fn mount_work(&self) -> io::Result<()> {
        let Some((target, options)) = &self.tmpfs else {
            return Ok(());
        };
        mount_private_tmpfs(target, options)?;
        if let Some(ruleset) = &self.landlock {
            /// `struct landlock_path_beneath_attr` (packed in the kernel's header).
            #[repr(C, packed)]
            struct PathBeneath {
                allowed_access: u64,
                parent_fd: i32,
            }
            const LANDLOCK_RULE_PATH_BENEATH: libc::c_int = 1;
            // SAFETY: open, landlock_add_rule and close take a C string, integers and a
            // pointer to a struct on this stack frame.
            unsafe {
                let fd = libc::open(target.as_ptr(), libc::O_PATH | libc::O_CLOEXEC);
                if fd < 0 {
                    return Err(io::Error::last_os_error());
                }
                let attr = PathBeneath {
                    allowed_access: self.work_access,
                    parent_fd: fd,
                };
                let rc = libc::syscall(
                    libc::SYS_landlock_add_rule,
                    ruleset.as_raw_fd(),
                    LANDLOCK_RULE_PATH_BENEATH,
                    &attr as *const PathBeneath,
                    0 as libc::c_uint,
                );
                libc::close(fd);
                if rc != 0 {
                    return Err(io::Error::last_os_error());
                }
            }
        }
        Ok(())
    }
}

/// In a mount namespace of the caller's own: makes every mount private (nothing propagates
/// back to the host), then mounts a tmpfs with `options` on `target`. Async-signal-safe.
#[allow(unsafe_code)]
fn mount_private_tmpfs(target: &std::ffi::CStr, options: &std::ffi::CStr) -> io::Result<()> {
    // SAFETY: mount takes C strings that outlive the calls and null pointers where allowed.
    unsafe {
        if libc::mount(
            std::ptr::null(),
            c"/".as_ptr(),
            std::ptr::null(),
            libc::MS_REC | libc::MS_PRIVATE,
            std::ptr::null(),
        ) != 0
            || libc::mount(
                c"tmpfs".as_ptr(),
                target.as_ptr(),
                c"tmpfs".as_ptr(),
                libc::MS_NOSUID | libc::MS_NODEV,
                options.as_ptr().cast(),
            ) != 0
        {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Can a child make a mount namespace and mount a size-limited tmpfs in it (with a user
/// namespace first when not root)? Tried on `/tmp` inside the child's own namespace.
fn detect_tmpfs(as_root: bool) -> Result<(), String> {
    in_child(move || {
        if as_root {
            unshare(libc::CLONE_NEWNS)?;
        } else {
            unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWNS)?;
        }
        mount_private_tmpfs(c"/tmp", c"size=1m,nr_inodes=16")?;
        Ok(())
    })
}

/// The resource limits of a run. CPU gets a second of slack on the hard limit so that the soft
/// limit's SIGXCPU, not SIGKILL, is what normally ends a CPU hog.
fn rlimits(limits: &Limits) -> [(libc::__rlimit_resource_t, u64, u64); 6] {
    [
        (libc::RLIMIT_AS, limits.memory_bytes, limits.memory_bytes),
        (
            libc::RLIMIT_CPU,
            limits.cpu_s,
            limits.cpu_s.saturating_add(1),
        ),
        (libc::RLIMIT_FSIZE, limits.file_bytes, limits.file_bytes),
        (libc::RLIMIT_NOFILE, limits.open_files, limits.open_files),
        (libc::RLIMIT_NPROC, limits.processes, limits.processes),
        (libc::RLIMIT_CORE, 0, 0),
    ]
}

#[allow(unsafe_code)]
fn set_rlimit(resource: libc::__rlimit_resource_t, soft: u64, hard: u64) -> io::Result<()> {
    let mut current = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `current` is a live, writable rlimit.
    if unsafe { libc::getrlimit(resource, &mut current) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // Without privileges a hard limit can only go down; never ask for more than we have.
    let hard = (hard as libc::rlim_t).min(current.rlim_max);
    let wanted = libc::rlimit {
        rlim_cur: (soft as libc::rlim_t).min(hard),
        rlim_max: hard,
    };
    // SAFETY: `wanted` is a live rlimit.
    if unsafe { libc::setrlimit(resource, &wanted) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[allow(unsafe_code)]
fn unshare(flags: libc::c_int) -> io::Result<()> {
    // SAFETY: unshare has no memory-safety preconditions.
    if unsafe { libc::unshare(flags) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[allow(unsafe_code)]
fn no_new_privs() -> io::Result<()> {
    // SAFETY: prctl with integer arguments only.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Writes `data` to `path` with one `open` and one `write` (async-signal-safe).
#[allow(unsafe_code)]
fn write_file(path: &std::ffi::CStr, data: &[u8]) -> io::Result<()> {
    // SAFETY: `path` is NUL-terminated; the descriptor is closed on every path below.
    let fd = unsafe { libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `data` is a live slice of `data.len()` bytes.
    let written = unsafe { libc::write(fd, data.as_ptr().cast(), data.len()) };
    let error = io::Error::last_os_error();
    // SAFETY: `fd` is ours and open.
    unsafe { libc::close(fd) };
    if written != data.len() as isize {
        return Err(error);
    }
    Ok(())
}

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// Root becomes `uid`/`gid` with no supplementary groups, keeping only `CAP_DAC_READ_SEARCH`
/// (effective, permitted, inheritable and ambient, so that it survives `exec`). Only plain
/// system calls: callable between fork and exec.
#[allow(unsafe_code)]
fn drop_to_uid(uid: u32, gid: u32) -> io::Result<()> {
    let check = |rc: libc::c_long| {
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    };
    // SAFETY: prctl, setgroups, setresgid and setresuid take integers (and a null group list
    // of length 0); capset gets pointers to live, correctly laid out structures (version 3
    // takes two CapData entries).
    unsafe {
        check(libc::prctl(libc::PR_SET_KEEPCAPS, 1, 0, 0, 0).into())?;
        check(libc::setgroups(0, std::ptr::null()).into())?;
        check(libc::setresgid(gid, gid, gid).into())?;
        check(libc::setresuid(uid, uid, uid).into())?;
        let mut header = CapHeader {
            version: CAPABILITY_VERSION_3,
            pid: 0,
        };
        let bit = 1u32 << CAP_DAC_READ_SEARCH;
        let data = [
            CapData {
                effective: bit,
                permitted: bit,
                inheritable: bit,
            },
            CapData {
                effective: 0,
                permitted: 0,
                inheritable: 0,
            },
        ];
        check(libc::syscall(
            libc::SYS_capset,
            &mut header as *mut CapHeader,
            data.as_ptr(),
        ))?;
        check(
            libc::prctl(
                libc::PR_CAP_AMBIENT,
                libc::PR_CAP_AMBIENT_RAISE,
                CAP_DAC_READ_SEARCH as libc::c_ulong,
                0,
                0,
            )
            .into(),
        )?;
        check(libc::prctl(libc::PR_SET_KEEPCAPS, 0, 0, 0, 0).into())?;
    }
    Ok(())
}

/// The landlock ABI version of the kernel, 0 without landlock.
#[allow(unsafe_code)]
fn landlock_abi() -> i32 {
    // SAFETY: with a null attribute and size 0, the call only returns the version.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<u8>(),
            0usize,
            LANDLOCK_CREATE_RULESET_VERSION,
        )
    };
    i32::try_from(rc).unwrap_or(0).max(0)
}

/// Builds the run's landlock ruleset: everything the kernel can restrict is restricted, then
/// reading is allowed beneath `read_roots` and the system paths, and everything beneath
/// `scratch`.
fn landlock_ruleset(
    abi: i32,
    scratch: &Path,
    work: Option<&Path>,
    read_roots: &[PathBuf],
) -> Result<OwnedFd, String> {
    let abi = ABI::from(abi);
    let text = |e: landlock::RulesetError| e.to_string();
    let mut ruleset = Ruleset::default()
        .handle_access(AccessFs::from_all(abi))
        .map_err(text)?;
    if !AccessNet::from_all(abi).is_empty() {
        ruleset = ruleset
            .handle_access(AccessNet::from_all(abi))
            .map_err(text)?;
    }
    if !Scope::from_all(abi).is_empty() {
        ruleset = ruleset.scope(Scope::from_all(abi)).map_err(text)?;
    }
    let readable: Vec<PathBuf> = read_roots
        .iter()
        .cloned()
        .chain(SYSTEM_READ_PATHS.iter().map(PathBuf::from))
        .filter(|path| path.exists())
        .collect();
    let created = ruleset
        .create()
        .map_err(text)?
        .add_rules(path_beneath_rules(&readable, AccessFs::from_read(abi)))
        .map_err(text)?
        .add_rules(path_beneath_rules(
            ["/dev/null"],
            AccessFs::from_read(abi) | AccessFs::WriteFile,
        ))
        .map_err(text)?
        // The harness, the audit layer and the program are read-only; only the working
        // directory (the run's tmpfs, where the kernel allows it) is writable.
        .add_rules(path_beneath_rules([scratch], AccessFs::from_read(abi)))
        .map_err(text)?
        .add_rules(path_beneath_rules(work, AccessFs::from_all(abi)))
        .map_err(text)?;
    Option::<OwnedFd>::from(created)
        .ok_or_else(|| "landlock returned no ruleset descriptor".to_string())
}

/// The seccomp program: `socket()` of a family other than `AF_UNIX`, `io_uring_*` and
/// `open_by_handle_at` fail with `EACCES`. Each rule is repeated with the x32
/// system call number (bit 30 set), which the x86-64 architecture check lets through. Empty
/// if the architecture is not supported.
fn seccomp_filter() -> BpfProgram {
    let Ok(arch) = std::env::consts::ARCH.try_into() else {
        return BpfProgram::new();
    };
    let build = || -> Result<BpfProgram, seccompiler::BackendError> {
        let not_unix = SeccompRule::new(vec![SeccompCondition::new(
            0,
            SeccompCmpArgLen::Dword,
            SeccompCmpOp::Ne,
            libc::AF_UNIX as u64,
        )?])?;
        let mut rules = x32_too(libc::SYS_socket, vec![not_unix]);
        // The AF_UNIX sockets left are for socket pairs: nothing may name an address, so no
        // socket a host process listens on can be reached (connect, an addressed sendto,
        // sendmsg, which may carry one) or made (bind).
        let addressed = SeccompRule::new(vec![SeccompCondition::new(
            4,
            SeccompCmpArgLen::Qword,
            SeccompCmpOp::Ne,
            0,
        )?])?;
        rules.extend(x32_too(libc::SYS_sendto, vec![addressed]));
        for call in [
            libc::SYS_io_uring_setup,
            libc::SYS_io_uring_enter,
            libc::SYS_io_uring_register,
            libc::SYS_open_by_handle_at,
            libc::SYS_connect,
            libc::SYS_bind,
            libc::SYS_sendmsg,
            libc::SYS_sendmmsg,
        ] {
            rules.extend(x32_too(call, Vec::new()));
        }
        SeccompFilter::new(
            rules,
            SeccompAction::Allow,
            SeccompAction::Errno(libc::EACCES as u32),
            arch,
        )?
        .try_into()
    };
    build().unwrap_or_default()
}

/// The syscall `nr` and its x32 twin, each with `rules`.
fn x32_too(
    nr: libc::c_long,
    rules: Vec<SeccompRule>,
) -> std::collections::BTreeMap<i64, Vec<SeccompRule>> {
    const X32_SYSCALL_BIT: i64 = 0x4000_0000;
    [(nr, rules.clone()), (nr | X32_SYSCALL_BIT, rules)]
        .into_iter()
        .collect()
}

/// The real uid of this process.
#[allow(unsafe_code)]
pub(crate) fn current_uid() -> u32 {
    // SAFETY: getuid cannot fail.
    unsafe { libc::getuid() }
}

#[allow(unsafe_code)]
fn current_gid() -> u32 {
    // SAFETY: getgid cannot fail.
    unsafe { libc::getgid() }
}

/// Runs `f` in a forked child and says whether it succeeded. `f` must be async-signal-safe
/// (this process may have other threads).
#[allow(unsafe_code)]
fn in_child(f: impl FnOnce() -> io::Result<()>) -> Result<(), String> {
    // SAFETY: the child runs only `f` (async-signal-safe by contract) and `_exit`.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(format!("fork failed: {}", io::Error::last_os_error()));
    }
    if pid == 0 {
        let code = match f() {
            Ok(()) => 0,
            Err(e) => e.raw_os_error().unwrap_or(255).clamp(1, 255),
        };
        // SAFETY: _exit ends the child without running the parent's destructors.
        unsafe { libc::_exit(code) };
    }
    let mut status = 0;
    // SAFETY: `status` is a live int; `pid` is our child.
    let rc = unsafe { libc::waitpid(pid, &mut status, 0) };
    if rc != pid {
        return Err(format!("waitpid failed: {}", io::Error::last_os_error()));
    }
    if libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0 {
        Ok(())
    } else if libc::WIFEXITED(status) {
        Err(io::Error::from_raw_os_error(libc::WEXITSTATUS(status)).to_string())
    } else {
        Err(format!("the probe died (wait status {status})"))
    }
}

/// Kills every process of `uid` (a run's own uid): a forked child takes that uid and sends
/// SIGKILL to every process it may signal, which are exactly the processes of that uid. Reaches
/// processes that left the run's process group.
#[allow(unsafe_code)]
pub(crate) fn kill_uid(uid: u32) {
    let _ = in_child(move || {
        // SAFETY: setresuid and kill take integers. kill(-1) never signals the caller itself.
        unsafe {
            if libc::setresuid(uid, uid, uid) != 0 {
                return Err(io::Error::last_os_error());
            }
            // A second pass catches a child forked while the first was under way.
            libc::kill(-1, libc::SIGKILL);
            libc::kill(-1, libc::SIGKILL);
        }
        Ok(())
    });
}

/// A uid for the run numbered `serial`.
pub(crate) fn run_uid(serial: u64) -> u32 {
    use std::hash::BuildHasher;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let word = std::hash::RandomState::new().hash_one((std::process::id(), serial, nanos));
    SANDBOX_UID_BASE + (word % u64::from(SANDBOX_UID_COUNT)) as u32
}

/// `paths` made canonical, without empty, missing and repeated ones.
pub(crate) fn existing(paths: &[&str]) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = Vec::new();
    for path in paths.iter().filter(|p| !p.is_empty()) {
        let path = fs::canonicalize(path).unwrap_or_else(|_| PathBuf::from(path));
        if path.exists() && !out.contains(&path) {
            out.push(path);
        }
    }
    out
}
