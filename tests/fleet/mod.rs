//! The Ansible collection (packaging/ansible_collections/docker_userns/docker_userns) built and
//! installed with the controller's ansible-galaxy, for tests/ansible_collection.rs and
//! tests/real_host_fleet.rs. Needs Debian's ansible-core on this machine (.ci/run installs it
//! with apt); fails, never skips, without it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

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
