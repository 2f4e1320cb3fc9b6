//! Helpers for the integration tests: fixture trees in tempdirs and running the binary on them.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// The `--json` schema of every command (schema/docker-userns.schema.json).
pub fn schema() -> &'static jsonschema::Validator {
    static V: std::sync::OnceLock<jsonschema::Validator> = std::sync::OnceLock::new();
    V.get_or_init(|| {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("schema/docker-userns.schema.json");
        let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let schema: Value = serde_json::from_str(&text).expect("the schema is JSON");
        jsonschema::validator_for(&schema).expect("the schema is a valid JSON Schema")
    })
}

/// Panics unless `doc` validates against the schema.
pub fn assert_schema(doc: &Value) {
    let errors: Vec<String> = schema()
        .iter_errors(doc)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "output does not match schema/docker-userns.schema.json:\n{}\n{doc:#}",
        errors.join("\n")
    );
}

/// The binary under test.
pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_docker-userns"))
}

/// A root tree in a tempdir.
pub struct Tree {
    pub dir: tempfile::TempDir,
}

/// One run of the binary.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// stdout as the one JSON document, checked against the schema.
    pub fn json(&self) -> Value {
        json_doc(&self.stdout, format_args!("{self:?}"))
    }
}

/// `stdout` as the one JSON document a `--json` run prints, checked against the schema;
/// `run` (the whole run, shown when it is not) names where it came from.
pub fn json_doc(stdout: &str, run: impl std::fmt::Display) -> Value {
    let v: Value = serde_json::from_str(stdout)
        .unwrap_or_else(|e| panic!("stdout is not one JSON document ({e}): {run}"));
    assert_schema(&v);
    v
}

/// Copies a directory tree (files, directories, symlinks as links).
pub fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let (src, dst) = (e.path(), to.join(e.file_name()));
        let ft = e.file_type().unwrap();
        if ft.is_dir() {
            copy_tree(&src, &dst);
        } else if ft.is_symlink() {
            std::os::unix::fs::symlink(fs::read_link(&src).unwrap(), &dst).unwrap();
        } else {
            fs::copy(&src, &dst).unwrap();
        }
    }
}

impl Tree {
    pub fn empty() -> Tree {
        Tree {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// A copy of `tests/fixtures/NAME`.
    pub fn fixture(name: &str) -> Tree {
        let t = Tree::empty();
        let src = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(name);
        assert!(src.is_dir(), "missing fixture {}", src.display());
        copy_tree(&src, t.dir.path());
        t
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel.trim_start_matches('/'))
    }

    pub fn write(&self, rel: &str, content: &str) {
        let p = self.path(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, content).unwrap();
    }

    pub fn read(&self, rel: &str) -> String {
        fs::read_to_string(self.path(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
    }

    pub fn exists(&self, rel: &str) -> bool {
        fs::symlink_metadata(self.path(rel)).is_ok()
    }

    pub fn run(&self, args: &[&str]) -> Run {
        run_cmd(
            Command::new(bin())
                .arg("--root")
                .arg(self.dir.path())
                .args(args),
        )
    }

    /// Every file under the tree with its content, mode and mtime.
    pub fn snapshot(&self) -> BTreeMap<PathBuf, (Vec<u8>, u32, i64, i64)> {
        let mut out = BTreeMap::new();
        snap(self.dir.path(), self.dir.path(), &mut out);
        out
    }
}

fn snap(base: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, (Vec<u8>, u32, i64, i64)>) {
    for e in fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let p = e.path();
        let m = fs::symlink_metadata(&p).unwrap();
        let rel = p.strip_prefix(base).unwrap().to_path_buf();
        if m.is_dir() {
            out.insert(rel, (Vec::new(), m.mode(), 0, 0));
            snap(base, &p, out);
        } else {
            let content = if m.file_type().is_symlink() {
                fs::read_link(&p)
                    .unwrap()
                    .to_string_lossy()
                    .as_bytes()
                    .to_vec()
            } else {
                fs::read(&p).unwrap()
            };
            out.insert(rel, (content, m.mode(), m.mtime(), m.mtime_nsec()));
        }
    }
}

pub fn run_cmd(cmd: &mut Command) -> Run {
    let out = cmd.output().expect("run docker-userns");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}
