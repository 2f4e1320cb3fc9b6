//! The Ansible collection (packaging/ansible_collections/docker_userns/docker_userns) built and
//! installed with the controller's ansible-galaxy, for tests/ansible_collection.rs and
//! tests/real_host_fleet.rs. Needs Debian's ansible-core (and python3-venv, for ansible-test's
//! virtual environments) on this machine: .ci/run installs them with apt, and [`ensure`] does
//! when they are missing (as root); fails, never skips, when that cannot be done.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Mutex;

fn have_tools() -> bool {
    let ok = |prog: &str, args: &[&str]| {
        Command::new(prog)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    ok("ansible-galaxy", &["--version"])
        && ok("ansible-test", &["--version"])
        && ok("python3", &["-c", "import ensurepip, venv"])
}

/// Installs ansible-core and python3-venv with apt when missing, once per process (apt waits
/// for the dpkg lock of a concurrent install up to 5 minutes). Panics when that fails.
pub fn ensure() {
    static DONE: Mutex<bool> = Mutex::new(false);
    let mut done = DONE.lock().unwrap_or_else(|p| p.into_inner());
    if *done || have_tools() {
        *done = true;
        return;
    }
    let t0 = std::time::Instant::now();
    let install = || {
        Command::new("apt-get")
            .args([
                "-o",
                "DPkg::Lock::Timeout=300",
                "install",
                "-y",
                "-qq",
                "--no-install-recommends",
                "ansible-core",
                "python3-venv",
            ])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdin(Stdio::null())
            .output()
    };
    let mut out = install().expect("apt-get");
    if !out.status.success() {
        // A fresh machine's package lists may be missing or old.
        let _ = Command::new("apt-get")
            .args(["-o", "DPkg::Lock::Timeout=300", "update", "-qq"])
            .stdin(Stdio::null())
            .status();
        out = install().expect("apt-get");
    }
    assert!(
        out.status.success() && have_tools(),
        "cannot install ansible-core and python3-venv with apt (root needed):\n{}",
        text(&out)
    );
    eprintln!(
        "fleet: installed ansible-core and python3-venv with apt in {} ms",
        t0.elapsed().as_millis()
    );
    *done = true;
}

pub const SOURCE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/packaging/ansible_collections/docker_userns/docker_userns"
);
/// This directory's test-only plugins (not in the collection).
pub const CONNECTION_PLUGINS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fleet/connection_plugins"
);
pub const CALLBACK_PLUGINS: &str =
    concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fleet/callback_plugins");

/// The collection's version, from its galaxy.yml.
pub fn version() -> String {
    let galaxy = std::fs::read_to_string(Path::new(SOURCE).join("galaxy.yml")).expect("galaxy.yml");
    galaxy
        .lines()
        .find_map(|l| l.strip_prefix("version: "))
        .expect("version in galaxy.yml")
        .trim()
        .to_string()
}

/// Runs an ansible CLI command in `dir` with a clean Ansible configuration (no ansible.cfg
/// from elsewhere, HOME in `dir`); panics when the program is missing.
pub fn ansible(dir: &Path, program: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
    ensure();
    let mut cmd = Command::new(program);
    cmd.args(args)
        .current_dir(dir)
        .env("HOME", dir)
        .env("ANSIBLE_CONFIG", dir.join("none.cfg"))
        .env("ANSIBLE_NOCOLOR", "1")
        .env("ANSIBLE_LOCAL_TEMP", dir.join("tmp"))
        .env("ANSIBLE_RETRY_FILES_ENABLED", "false")
        .stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap_or_else(|e| {
        panic!(
            "cannot run {program}: {e}. The controller needs Debian's ansible-core \
             (apt-get install ansible-core; .ci/run installs it)"
        )
    })
}

pub fn text(out: &Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `ansible-galaxy collection build` of the source into `dir`, then `collection install` of the
/// tarball into `dir/collections`. Returns (tarball, collections path).
pub fn build_and_install(dir: &Path) -> (PathBuf, PathBuf) {
    let out = ansible(
        dir,
        "ansible-galaxy",
        &["collection", "build", SOURCE, "--output-path", "."],
        &[],
    );
    assert!(
        out.status.success(),
        "collection build failed:\n{}",
        text(&out)
    );
    let tarball = dir.join(format!("docker_userns-docker_userns-{}.tar.gz", version()));
    assert!(
        tarball.is_file(),
        "no {}:\n{}",
        tarball.display(),
        text(&out)
    );
    let cols = dir.join("collections");
    let out = ansible(
        dir,
        "ansible-galaxy",
        &[
            "collection",
            "install",
            "--offline",
            "-p",
            cols.to_str().unwrap(),
            tarball.to_str().unwrap(),
        ],
        &[],
    );
    assert!(
        out.status.success(),
        "collection install failed:\n{}",
        text(&out)
    );
    assert!(
        text(&out).contains("docker_userns.docker_userns:"),
        "{}",
        text(&out)
    );
    (tarball, cols)
}
