//! The Debian package of this repository, built with `cargo deb` exactly as README
//! ("Packaging") documents it, for the tests that check it (tests/real_host_package.rs) or
//! install it (tests/real_host_ansible.rs). Built in its own target dir (target/deb-build: the
//! outer `cargo test` keeps target/debug locked), once per test process, after the man pages
//! and completions (`cargo xtask generate target/assets`); cargo rebuilds only what changed,
//! so it is never stale.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::Instant;

const MANIFEST_DIR: &str = env!("CARGO_MANIFEST_DIR");

/// A finished command.
pub struct Run {
    /// Its exit code (-1: killed by a signal).
    pub code: i32,
    /// Its stdout, lossy UTF-8.
    pub stdout: String,
    /// Its stderr, lossy UTF-8.
    pub stderr: String,
}

/// Runs `cmd` to the end, stdin from /dev/null; panics when it cannot be started.
pub fn run(cmd: &mut Command) -> Run {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

static DEB: Mutex<Option<PathBuf>> = Mutex::new(None);

/// Builds the .deb (once per process) exactly as README documents it and returns its path.
pub fn build() -> PathBuf {
    let mut guard = DEB.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(path) = guard.as_ref() {
        return path.clone();
    }
    let cargo_deb = super::package_tools();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let target_dir = Path::new(MANIFEST_DIR).join("target/deb-build");

    // `cargo xtask generate target/assets` (the alias spelled out, with --locked): the man
    // pages and completions that the package's assets name. In release: the library and its
    // dependencies built for it are the ones `cargo deb` then reuses (118 s -> 83 s cold).
    let assets = Path::new(MANIFEST_DIR).join("target/assets");
    let t0 = Instant::now();
    let r = run(Command::new(&cargo)
        .args("run --locked --release -p xtask -- generate".split(' '))
        .arg(&assets)
        .current_dir(MANIFEST_DIR)
        .env("CARGO_TARGET_DIR", &target_dir));
    assert_eq!(
        r.code,
        0,
        "`CARGO_TARGET_DIR={} cargo run --locked --release -p xtask -- generate {}` failed\n--- stdout ---\n{}\n--- stderr ---\n{}",
        target_dir.display(),
        assets.display(),
        r.stdout,
        r.stderr
    );
    eprintln!(
        "package: generated man pages and completions in {} ms",
        t0.elapsed().as_millis()
    );

    // `cargo deb --locked`, run the way cargo runs it (argv `deb --locked`, CARGO set), with
    // the pinned cargo-deb in target/tools: `cargo deb` would run whichever one PATH or
    // ~/.cargo/bin holds.
    let t0 = Instant::now();
    let r = run(Command::new(&cargo_deb)
        .args(["deb", "--locked"])
        .current_dir(MANIFEST_DIR)
        .env("CARGO", &cargo)
        .env("CARGO_TARGET_DIR", &target_dir));
    assert_eq!(
        r.code,
        0,
        "`CARGO_TARGET_DIR={} cargo deb --locked` ({}) failed\n--- stdout ---\n{}\n--- stderr ---\n{}",
        target_dir.display(),
        cargo_deb.display(),
        r.stdout,
        r.stderr
    );
    // cargo-deb prints the path of the package as its last line.
    let path = PathBuf::from(r.stdout.lines().last().unwrap_or_default().trim());
    assert!(
        path.is_file() && path.extension().is_some_and(|e| e == "deb"),
        "cargo deb printed no .deb path: {}\n{}",
        r.stdout,
        r.stderr
    );
    eprintln!(
        "package: built {} in {} ms",
        path.display(),
        t0.elapsed().as_millis()
    );
    *guard = Some(path.clone());
    path
}
