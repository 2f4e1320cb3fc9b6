//! A real systemd + D-Bus + dockerd host for integration tests, booted with `testhost.sh`
//! (systemd-nspawn on a cached Debian tree; see README.md beside this file).
//!
//! Use from a test file in `tests/`:
//!
//! ```ignore
//! #[path = "testhost/mod.rs"]
//! mod testhost;
//!
//! let host = testhost::Host::boot("plan");
//! let out = host.ok("docker-userns plan --json");
//! ```
//!
//! Every [`Host`] is a fresh copy of the pristine tree with the freshly built product binary at
//! `/usr/local/sbin/docker-userns`; dropping it powers the container off and removes the copy,
//! also when the test panicked. Everything panics (never skips) when not root or when a step
//! of the harness fails, with the script's stderr in the message.
#![allow(dead_code)]

pub mod deb;

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::Write;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Instant;

/// The harness script.
pub const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/testhost/testhost.sh");
/// The product binary built by cargo for this test run.
pub const PRODUCT: &str = env!("CARGO_BIN_EXE_docker-userns");
/// Where the product binary is installed inside every host.
pub const PRODUCT_INSIDE: &str = "/usr/local/sbin/docker-userns";
/// Default Debian suite (`bookworm`: systemd 252, docker.io 20.10.24).
pub const DEFAULT_SUITE: &str = "bookworm";
/// PATH of the commands run inside (set by `testhost.sh exec` in a clean environment).
pub const INNER_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Result of a command run inside a host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    /// Exit code; 128 + N when killed by signal N.
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    pub fn success(&self) -> bool {
        self.code == 0
    }
}

impl std::fmt::Display for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit code {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.code,
            self.stdout.trim_end(),
            self.stderr.trim_end()
        )
    }
}

struct Raw {
    code: i32,
    stdout: Vec<u8>,
    stderr: String,
}

impl Raw {
    fn text(self) -> Output {
        Output {
            code: self.code,
            stdout: String::from_utf8_lossy(&self.stdout).into_owned(),
            stderr: self.stderr,
        }
    }
}

/// Runs `testhost.sh ARGS...` on the host, optionally feeding `stdin`.
fn script(args: &[&str], stdin: Option<&[u8]>) -> Raw {
    let host_path = std::env::var("PATH").unwrap_or_default();
    let mut cmd = Command::new("bash");
    cmd.arg(SCRIPT)
        .args(args)
        // The script needs sbin tools (debootstrap, nsenter...) whatever PATH cargo got.
        .env("PATH", format!("{INNER_PATH}:{host_path}"))
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("testhost: cannot run bash {SCRIPT}: {e}"));
    let feeder = stdin.map(|data| {
        let mut pipe = child.stdin.take().expect("piped stdin");
        let data = data.to_vec();
        // A thread, so a command that writes much before reading cannot deadlock us.
        std::thread::spawn(move || {
            let _ = pipe.write_all(&data);
        })
    });
    let out = child
        .wait_with_output()
        .unwrap_or_else(|e| panic!("testhost: waiting for {SCRIPT} {args:?}: {e}"));
    if let Some(t) = feeder {
        let _ = t.join();
    }
    let code = out
        .status
        .code()
        .unwrap_or_else(|| 128 + out.status.signal().unwrap_or(0));
    Raw {
        code,
        stdout: out.stdout,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Runs a harness step that must succeed; returns its trimmed stdout.
fn step(what: &str, args: &[&str]) -> Result<String, String> {
    let t0 = Instant::now();
    let r = script(args, None);
    if r.code != 0 {
        return Err(format!(
            "testhost: {what} failed: `testhost.sh {}` exited {} after {} ms\n--- stderr ---\n{}\n--- stdout ---\n{}",
            args.join(" "),
            r.code,
            t0.elapsed().as_millis(),
            r.stderr.trim_end(),
            String::from_utf8_lossy(&r.stdout).trim_end()
        ));
    }
    Ok(String::from_utf8_lossy(&r.stdout).trim().to_string())
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A test that panicked while holding one of these must not break the others.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn euid() -> Option<u32> {
    let status = fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(2)?.parse().ok()
}

/// Start time (clock ticks since boot) of a process: with the PID it identifies the process
/// even when PIDs are reused.
fn start_time(pid: u32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    // Fields after "comm": state is field 3; starttime is field 22.
    rest.split_whitespace().nth(22 - 3)?.parse().ok()
}

fn require_root() {
    match euid() {
        Some(0) => {}
        other => panic!(
            "testhost: the real-host tests must run as root (they boot systemd-nspawn containers); \
             effective uid is {other:?}. Run `cargo test` as root (CI does)."
        ),
    }
}

/// deps + rootfs, once per suite per process (the script itself serializes processes: `deps`
/// and the rootfs build take flocks in the cache dir). Value: the cache dir, or the error.
static PREPARED: Mutex<Option<HashMap<String, Result<PathBuf, String>>>> = Mutex::new(None);

fn prepare(suite: &str) -> PathBuf {
    require_root();
    let mut guard = lock(&PREPARED);
    let map = guard.get_or_insert_with(HashMap::new);
    let result = map
        .entry(suite.to_string())
        .or_insert_with(|| {
            let t0 = Instant::now();
            step("deps", &["deps"])?;
            let rootfs = step("rootfs", &["rootfs", suite])?;
            let cache = Path::new(&rootfs)
                .parent()
                .ok_or_else(|| format!("testhost: odd rootfs path {rootfs:?}"))?
                .to_path_buf();
            eprintln!(
                "testhost: deps + rootfs {suite} ready in {} ms ({rootfs})",
                t0.elapsed().as_millis()
            );
            reap_orphans(&cache);
            Ok(cache)
        })
        .clone();
    drop(guard);
    result.unwrap_or_else(|e| panic!("{e}"))
}

/// `testhost.sh pkgdeps`, once per process: what building and checking the .deb needs on the
/// host (dpkg-dev, binutils, lintian and man-db with apt when missing; cargo-deb, pinned, with
/// `cargo install` into `<repo>/target/tools` when missing; the script serializes processes
/// with flocks). Returns the path of that cargo-deb. Panics (never skips) when an install fails.
pub fn package_tools() -> PathBuf {
    static TOOLS: Mutex<Option<Result<PathBuf, String>>> = Mutex::new(None);
    require_root();
    let mut guard = lock(&TOOLS);
    let result = guard
        .get_or_insert_with(|| {
            let t0 = Instant::now();
            let cargo_deb = PathBuf::from(step("pkgdeps", &["pkgdeps"])?);
            eprintln!(
                "testhost: pkgdeps ready in {} ms ({})",
                t0.elapsed().as_millis(),
                cargo_deb.display()
            );
            Ok(cargo_deb)
        })
        .clone();
    drop(guard);
    result.unwrap_or_else(|e| panic!("{e}"))
}

/// `testhost.sh promparser`, once per process: prometheus-client, pinned, installed from PyPI
/// with pip into `<repo>/target/tools/python` when missing (the script serializes processes
/// with a flock). Returns that directory, for `PYTHONPATH` of the `python3` on `PATH`. Panics
/// (never skips) when the install fails.
pub fn prometheus_parser() -> PathBuf {
    static DIR: Mutex<Option<Result<PathBuf, String>>> = Mutex::new(None);
    require_root();
    let mut guard = lock(&DIR);
    let result = guard
        .get_or_insert_with(|| {
            let t0 = Instant::now();
            let dir = PathBuf::from(step("promparser", &["promparser"])?);
            eprintln!(
                "testhost: promparser ready in {} ms ({})",
                t0.elapsed().as_millis(),
                dir.display()
            );
            Ok(dir)
        })
        .clone();
    drop(guard);
    result.unwrap_or_else(|e| panic!("{e}"))
}

/// `testhost.sh lintdeps`, once per process: ansible-lint (pinned, from PyPI) in a venv under
/// `<repo>/target/tools/ansible-lint` (python3-venv with apt when missing). Returns the path
/// of that ansible-lint. Panics (never skips) when an install fails.
pub fn ansible_lint() -> PathBuf {
    static LINT: Mutex<Option<Result<PathBuf, String>>> = Mutex::new(None);
    require_root();
    let mut guard = lock(&LINT);
    let result = guard
        .get_or_insert_with(|| {
            let t0 = Instant::now();
            let lint = PathBuf::from(step("lintdeps", &["lintdeps"])?);
            eprintln!(
                "testhost: lintdeps ready in {} ms ({})",
                t0.elapsed().as_millis(),
                lint.display()
            );
            Ok(lint)
        })
        .clone();
    drop(guard);
    result.unwrap_or_else(|e| panic!("{e}"))
}

/// Containers whose test process is gone (killed test run, Ctrl-C: nspawn runs in its own
/// session and survives) are shut down, so they do not pile up.
fn reap_orphans(cache: &Path) {
    let dir = cache.join("owners");
    let Ok(entries) = fs::read_dir(&dir) else {
        return;
    };
    // Serialize reapers of concurrent test processes.
    let Ok(lockfile) = File::create(cache.join("owners.lock")) else {
        return;
    };
    if lockfile.lock().is_err() {
        return;
    }
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let content = fs::read_to_string(entry.path()).unwrap_or_default();
        let mut words = content.split_whitespace();
        let pid = words.next().and_then(|w| w.parse::<u32>().ok());
        let start = words.next().and_then(|w| w.parse::<u64>().ok());
        let owner_alive = match (pid, start) {
            (Some(pid), Some(start)) => start_time(pid) == Some(start),
            _ => false,
        };
        if owner_alive {
            continue;
        }
        eprintln!("testhost: shutting down orphaned container {name} (its test process is gone)");
        match step("shutdown of an orphan", &["shutdown", &name]) {
            Ok(_) => {
                let _ = fs::remove_file(entry.path());
            }
            Err(e) => eprintln!("{e}"),
        }
    }
    let _ = lockfile.unlock();
}

/// At most this many boots (tree copy + boot) at once in one process: the copy is disk bound.
/// `TESTHOST_PARALLEL_BOOTS` overrides (default 2). Running hosts are not limited.
static BOOTING: (Mutex<usize>, Condvar) = (Mutex::new(0), Condvar::new());

struct BootSlot;

impl BootSlot {
    fn take() -> BootSlot {
        let max = std::env::var("TESTHOST_PARALLEL_BOOTS")
            .ok()
            .and_then(|v| v.parse::<usize>().ok())
            .filter(|&n| n > 0)
            .unwrap_or(2);
        let (m, cv) = &BOOTING;
        let mut n = lock(m);
        while *n >= max {
            n = cv.wait(n).unwrap_or_else(|p| p.into_inner());
        }
        *n += 1;
        BootSlot
    }
}

impl Drop for BootSlot {
    fn drop(&mut self) {
        let (m, cv) = &BOOTING;
        *lock(m) -= 1;
        cv.notify_one();
    }
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// `PREFIX-PID-N`: unique across the threads and processes of a test run, valid as a machine
/// name (letters, digits, '-'; at most 64 characters; here at most ~40).
fn unique_name(prefix: &str) -> String {
    let mut p: String = prefix
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .take(24)
        .collect();
    p = p.trim_matches('-').to_string();
    if p.is_empty() {
        p = "th".to_string();
    }
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{p}-{}-{n}", std::process::id())
}

/// A booted test host. Dropping it shuts the container down.
pub struct Host {
    name: String,
    pid: u32,
    suite: String,
    cache: PathBuf,
}

impl Host {
    /// Boots a fresh `bookworm` host named after `name_prefix` (see [`Host::boot_suite`]).
    pub fn boot(name_prefix: &str) -> Host {
        Host::boot_suite(name_prefix, DEFAULT_SUITE)
    }

    /// Boots a fresh host of `suite` (`bookworm`, `trixie`, `forky` or `docker29`: forky with
    /// docker-ce's dockerd 29 and units, the containerd image store): deps and the cached rootfs are
    /// ensured first (once per process), docker.service is active and `busybox:local` imported
    /// when this returns, and the product binary is at `/usr/local/sbin/docker-userns`.
    pub fn boot_suite(name_prefix: &str, suite: &str) -> Host {
        let cache = prepare(suite);
        let name = unique_name(name_prefix);

        // Owner record first, so a test process killed mid-boot still gets reaped later.
        let owners = cache.join("owners");
        let owner_file = owners.join(&name);
        let me = std::process::id();
        let record = format!("{me} {}\n", start_time(me).unwrap_or(0));
        if let Err(e) = fs::create_dir_all(&owners).and_then(|_| fs::write(&owner_file, record)) {
            panic!("testhost: cannot write {}: {e}", owner_file.display());
        }

        let t0 = Instant::now();
        let slot = BootSlot::take();
        let waited = t0.elapsed();
        let booted = step("boot", &["boot", &name, suite]);
        drop(slot);
        let stdout = match booted {
            Ok(s) => s,
            Err(e) => {
                // The script leaves a failed container running for inspection: stop it (the
                // boot log stays in the cache dir).
                let _ = script(&["shutdown", &name], None);
                let _ = fs::remove_file(&owner_file);
                panic!("{e}\n(boot log kept: {}/run-{name}.log)", cache.display());
            }
        };
        let pid = stdout
            .lines()
            .last()
            .and_then(|l| l.trim().parse::<u32>().ok())
            .unwrap_or_else(|| {
                let _ = script(&["shutdown", &name], None);
                let _ = fs::remove_file(&owner_file);
                panic!("testhost: boot of {name} printed no init PID: {stdout:?}")
            });
        // From here on Drop cleans up, also when a later step panics.
        let host = Host {
            name,
            pid,
            suite: suite.to_string(),
            cache,
        };
        host.cp_in(PRODUCT, PRODUCT_INSIDE);
        host.ok(&format!("chmod 0755 {PRODUCT_INSIDE}"));
        eprintln!(
            "testhost: {} up (init PID {pid}) in {} ms (waited {} ms for a boot slot)",
            host.name,
            t0.elapsed().as_millis(),
            waited.as_millis()
        );
        host
    }

    /// The container (machine) name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// PID (on the host) of the container's systemd.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The Debian suite it runs.
    pub fn suite(&self) -> &str {
        &self.suite
    }

    /// The container's console log on the host (kept after shutdown).
    pub fn log_path(&self) -> PathBuf {
        self.cache.join(format!("run-{}.log", self.name))
    }

    /// The container's system bus, reachable from the host (as root in the same user namespace).
    pub fn system_bus_address(&self) -> String {
        format!(
            "unix:path=/proc/{}/root/run/dbus/system_bus_socket",
            self.pid
        )
    }

    fn exec_raw(&self, args: &[&str], stdin: Option<&[u8]>) -> Raw {
        assert!(!args.is_empty(), "testhost: exec needs a command");
        let mut full = vec!["exec", self.name.as_str()];
        full.extend_from_slice(args);
        script(&full, stdin)
    }

    /// Runs `args` inside, in all the container's namespaces, as root, with a clean environment
    /// (`PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin`, HOME=/root,
    /// LANG=C.UTF-8); stdin is /dev/null. Pass variables with `["env", "K=V", CMD...]`.
    pub fn exec(&self, args: &[&str]) -> Output {
        self.exec_raw(args, None).text()
    }

    /// Runs `sh -c script` inside.
    pub fn sh(&self, script: &str) -> Output {
        self.exec(&["sh", "-c", script])
    }

    /// Runs `sh -c script` inside and returns its stdout; panics with the whole output unless
    /// it exits 0.
    pub fn ok(&self, script: &str) -> String {
        let out = self.sh(script);
        if out.code != 0 {
            panic!("testhost {}: `{script}` failed: {out}", self.name);
        }
        out.stdout
    }

    /// Copies a host file or directory to `dest` (absolute path inside), keeping file modes.
    pub fn cp_in(&self, src: impl AsRef<Path>, dest: &str) {
        let src = src.as_ref().to_string_lossy().into_owned();
        if let Err(e) = step("cp", &["cp", &self.name, &src, dest]) {
            panic!("{e}");
        }
    }

    /// Contents of `path` inside, or None if it does not exist (a dangling symlink counts as
    /// missing). Read inside the container, so symlinks and its tmpfs mounts resolve as there.
    pub fn read(&self, path: &str) -> Option<Vec<u8>> {
        const MISSING: i32 = 77;
        let r = self.exec_raw(
            &[
                "sh",
                "-c",
                "if [ -e \"$1\" ]; then exec cat -- \"$1\"; else exit 77; fi",
                "sh",
                path,
            ],
            None,
        );
        match r.code {
            0 => Some(r.stdout),
            MISSING => None,
            code => panic!(
                "testhost {}: reading {path} failed (exit {code}): {}",
                self.name, r.stderr
            ),
        }
    }

    /// docker.service's InvocationID: a new one after every start of docker.
    pub fn invocation(&self) -> String {
        self.ok("systemctl show -p InvocationID --value docker.service")
            .trim()
            .to_string()
    }

    /// [`Host::read`] as text (lossy UTF-8).
    pub fn read_string(&self, path: &str) -> Option<String> {
        self.read(path)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
    }

    /// Writes `content` to `path` inside, atomically (temp file + rename), creating parent
    /// directories. An existing file keeps its mode and owner; a new one gets 0644 root:root.
    pub fn write(&self, path: &str, content: impl AsRef<[u8]>) {
        const WRITE: &str = r#"set -e
t="$1.testhost-tmp"
mkdir -p "$(dirname "$1")"
cat >"$t"
if [ -e "$1" ]; then
  chmod --reference="$1" "$t"
  chown --reference="$1" "$t"
else
  chmod 0644 "$t"
fi
mv -f "$t" "$1""#;
        let r = self.exec_raw(&["sh", "-c", WRITE, "sh", path], Some(content.as_ref()));
        if r.code != 0 {
            panic!(
                "testhost {}: writing {path} failed (exit {}): {}",
                self.name, r.code, r.stderr
            );
        }
    }

    /// Every inode below `dir` (inside), sorted: `PATH UID GID MODE`.
    pub fn owners(&self, dir: &str) -> String {
        self.ok(&format!(
            "cd {dir} && find . -printf '%p %U %G %m\\n' | LC_ALL=C sort"
        ))
    }

    /// Every inode below `dir` (inside), sorted: `PATH UID GID MODE`, then for each inode that
    /// has them its `security.capability` and POSIX ACL xattrs in hex (`xattr PATH NAME HEX`):
    /// what an owner shift must keep exactly, for before/after comparisons.
    pub fn listing(&self, dir: &str) -> String {
        let owners = self.owners(dir);
        owners + &self.ok(&format!(
            "cd {dir} && python3 -c '
import os
for top, dirs, files in os.walk(\".\"):
    for n in dirs + files:
        p = os.path.join(top, n)
        for x in (\"security.capability\", \"system.posix_acl_access\", \"system.posix_acl_default\"):
            try:
                print(\"xattr\", p, x, os.getxattr(p, x, follow_symlinks=False).hex())
            except OSError:
                pass
' | LC_ALL=C sort"
        ))
    }

    /// The next run after a fault, as an admin would start it: `docker-userns status --json`
    /// recovers what the interrupted run left. Panics unless it exits 0, leaves no journal and
    /// leaves docker.service active; returns its output.
    pub fn recovered(&self, case: &str) -> Output {
        let st = self.sh("docker-userns status --json");
        assert_eq!(st.code, 0, "{case}: status after the fault: {st}");
        assert!(
            self.read("/var/lib/docker-userns/transaction.json")
                .is_none(),
            "{case}: journal left behind: {st}"
        );
        assert_eq!(
            self.sh("systemctl is-active docker.service").stdout.trim(),
            "active",
            "{case}: docker left down: {st}"
        );
        st
    }

    /// Imports `/opt/testimage` as `busybox:local` again (needed after enabling userns-remap:
    /// dockerd then uses another root dir and the old image is not visible).
    pub fn reimport_image(&self) {
        if let Err(e) = step("image", &["image", &self.name]) {
            panic!("{e}");
        }
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        // Never panic here: this also runs while a failed test unwinds.
        let t0 = Instant::now();
        match step("shutdown", &["shutdown", &self.name]) {
            Ok(_) => {
                let _ = fs::remove_file(self.cache.join("owners").join(&self.name));
                // Keep the console log of a failed test only (they would pile up otherwise).
                let log = self.log_path();
                if std::thread::panicking() {
                    eprintln!(
                        "testhost: {} shut down in {} ms; console log kept: {}",
                        self.name,
                        t0.elapsed().as_millis(),
                        log.display()
                    );
                } else {
                    let _ = fs::remove_file(&log);
                    eprintln!(
                        "testhost: {} shut down in {} ms",
                        self.name,
                        t0.elapsed().as_millis()
                    );
                }
            }
            Err(e) => eprintln!("{e}"),
        }
    }
}
