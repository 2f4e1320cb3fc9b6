//! `ansible-lint --profile production` passes on the Ansible collection
//! (packaging/ansible_collections/docker_userns/docker_userns: galaxy.yml, the module, the role
//! and the playbooks). ansible-lint comes from PyPI, pinned, in a venv under target/tools
//! (`testhost.sh lintdeps`, which also installs python3-venv with apt when missing); the test
//! fails, never skips, when that cannot be installed. Needs root (apt).

#[path = "testhost/mod.rs"]
mod testhost;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

const MANIFEST_DIR: &str = env!("CARGO_MANIFEST_DIR");

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read_dir") {
        let entry = entry.expect("entry");
        let dest = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_tree(&entry.path(), &dest);
        } else {
            std::fs::copy(entry.path(), &dest).expect("copy");
        }
    }
}

#[test]
fn the_ansible_collection_passes_ansible_lint_production() {
    let lint = testhost::ansible_lint();
    // A copy (ansible-lint may leave caches in the project it checks), in an
    // ansible_collections/NS/NAME tree on ANSIBLE_COLLECTIONS_PATH, so its syntax check
    // resolves the collection's own module and role by their FQCN without installing anything.
    let tmp = tempfile::tempdir().expect("tempdir");
    let collection = tmp
        .path()
        .join("ansible_collections/docker_userns/docker_userns");
    copy_tree(
        &Path::new(MANIFEST_DIR).join("packaging/ansible_collections/docker_userns/docker_userns"),
        &collection,
    );
    let dir = collection.as_path();
    let bin = lint.parent().expect("venv bin");
    let t0 = Instant::now();
    let out = Command::new(&lint)
        .args([
            "--profile",
            "production",
            "--strict",
            "--offline",
            "--nocolor",
        ])
        .current_dir(dir)
        // Its own venv first, as an activated venv would have it (else it warns about PATH).
        .env(
            "PATH",
            format!(
                "{}:{}",
                bin.display(),
                std::env::var("PATH").unwrap_or_default()
            ),
        )
        .env("NO_COLOR", "1")
        .env("HOME", tmp.path().join(".home"))
        .env("ANSIBLE_COLLECTIONS_PATH", tmp.path())
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", lint.display()));
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!(
        "ansible-lint: {} ms\n{}",
        t0.elapsed().as_millis(),
        text.trim()
    );
    assert!(out.status.success(), "ansible-lint failed:\n{text}");
    assert!(
        text.contains("Profile 'production' was required, and it passed"),
        "{text}"
    );
    // It looked at the role's files, not at an empty directory.
    assert!(!text.contains("0 files processed"), "{text}");
}
