//! The Ansible collection docker_userns.docker_userns (packaging/ansible_collections/…):
//! `ansible-galaxy collection build` makes its tarball, `collection install --offline` installs
//! it, the installed module's documentation is complete (ansible-doc: options, EXAMPLES,
//! RETURN), its playbooks pass `--syntax-check` by their FQCN, and `ansible-test sanity` passes
//! with every sanity test that runs offline (README "Fleet use" says which do not, and why).
//! Uses the controller's Debian ansible-core (.ci/run installs it); fails, never skips.

#[path = "fleet/mod.rs"]
mod fleet;

use serde_json::Value;
use std::process::Command;

/// The sanity tests of ansible-test 2.14 that need no virtual environment: the others
/// (ansible-doc, import, pep8, pylint, runtime-metadata, validate-modules, yamllint) bootstrap
/// pip into a venv from a script downloaded from ansible's CI file server, which is not
/// reachable from here (only PyPI and Debian are).
const OFFLINE_SANITY: &[&str] = &[
    "action-plugin-docs",
    "changelog",
    "compile",
    "empty-init",
    "future-import-boilerplate",
    "ignores",
    "line-endings",
    "metaclass-boilerplate",
    "no-assert",
    "no-basestring",
    "no-dict-iteritems",
    "no-dict-iterkeys",
    "no-dict-itervalues",
    "no-get-exception",
    "no-illegal-filenames",
    "no-main-display",
    "no-smart-quotes",
    "no-unicode-literals",
    "pslint",
    "replace-urlopen",
    "shebang",
    "shellcheck",
    "symlinks",
    "use-argspec-type-path",
    "use-compat-six",
];

#[test]
fn the_collection_builds_installs_documents_itself_and_passes_offline_sanity() {
    let t0 = std::time::Instant::now();
    let dir = tempfile::tempdir().expect("tempdir");
    let (tarball, cols) = fleet::build_and_install(dir.path());
    let listing = Command::new("tar")
        .arg("tzf")
        .arg(&tarball)
        .output()
        .expect("tar");
    let listing = String::from_utf8_lossy(&listing.stdout).into_owned();
    for want in [
        "MANIFEST.json",
        "README.md",
        "CHANGELOG.md",
        "meta/runtime.yml",
        "plugins/modules/remap.py",
        "roles/docker_userns/tasks/main.yml",
        "roles/docker_userns/defaults/main.yml",
        "playbooks/site.yml",
        "playbooks/rolling.yml",
    ] {
        assert!(
            listing.lines().any(|l| l == want),
            "{want} not in the tarball:\n{listing}"
        );
    }
    // build_ignore: the lint settings stay out.
    assert!(!listing.contains(".ansible-lint"), "{listing}");
    let root = cols.join("ansible_collections/docker_userns/docker_userns");
    assert!(root.join("plugins/modules/remap.py").is_file());
    let env = [("ANSIBLE_COLLECTIONS_PATH", cols.to_str().unwrap())];

    // The module's documentation as the installed collection carries it.
    let out = fleet::ansible(
        dir.path(),
        "ansible-doc",
        &["--json", "docker_userns.docker_userns.remap"],
        &env,
    );
    assert!(out.status.success(), "{}", fleet::text(&out));
    let doc: Value = serde_json::from_slice(&out.stdout).expect("ansible-doc --json");
    let doc = &doc["docker_userns.docker_userns.remap"];
    let options = doc["doc"]["options"].as_object().expect("options");
    for opt in [
        "state",
        "user",
        "count",
        "start",
        "repair",
        "carry",
        "settle",
        "timeout",
        "jobs",
        "allow_restart_with_containers",
        "restart",
        "binary",
    ] {
        let o = &options[opt];
        assert!(
            o["description"].is_array() || o["description"].is_string(),
            "option {opt} undocumented: {doc:#}"
        );
        assert!(o["type"].is_string(), "option {opt} has no type");
    }
    assert_eq!(
        options.len(),
        12,
        "undocumented or extra options: {options:#?}"
    );
    let examples = doc["examples"].as_str().expect("EXAMPLES");
    assert!(
        examples.contains("docker_userns.docker_userns.remap:"),
        "{examples}"
    );
    for ret in ["rc", "result", "cmd", "refusal", "stderr"] {
        assert!(
            doc["return"][ret]["description"].is_string(),
            "RETURN {ret} missing: {:#}",
            doc["return"]
        );
    }
    assert_eq!(doc["doc"]["version_added"], "0.1.0");

    // The role's argument spec names exactly the variables of its defaults/main.yml.
    let out = fleet::ansible(
        dir.path(),
        "ansible-doc",
        &[
            "-t",
            "role",
            "--json",
            "docker_userns.docker_userns.docker_userns",
        ],
        &env,
    );
    assert!(out.status.success(), "{}", fleet::text(&out));
    let role: Value = serde_json::from_slice(&out.stdout).expect("ansible-doc -t role --json");
    let spec = role["docker_userns.docker_userns.docker_userns"]["entry_points"]["main"]["options"]
        .as_object()
        .unwrap_or_else(|| panic!("no argument spec: {role:#}"));
    let mut documented: Vec<&str> = spec.keys().map(String::as_str).collect();
    documented.sort_unstable();
    let defaults = std::fs::read_to_string(root.join("roles/docker_userns/defaults/main.yml"))
        .expect("defaults/main.yml");
    let mut defined: Vec<&str> = defaults
        .lines()
        .filter(|l| l.starts_with("docker_userns_"))
        .filter_map(|l| l.split_once(':').map(|(k, _)| k))
        .collect();
    defined.sort_unstable();
    assert_eq!(
        documented, defined,
        "argument_specs.yml vs defaults/main.yml"
    );

    // The playbooks by their FQCN, from the installed collection.
    std::fs::write(dir.path().join("inventory"), "localhost\n").unwrap();
    for pb in [
        "docker_userns.docker_userns.site",
        "docker_userns.docker_userns.rolling",
    ] {
        let out = fleet::ansible(
            dir.path(),
            "ansible-playbook",
            &["-i", "inventory", "--syntax-check", pb],
            &env,
        );
        assert!(out.status.success(), "{pb}: {}", fleet::text(&out));
    }

    // ansible-test sanity on the installed tree (an ansible_collections/NS/NAME tree), with
    // this machine's python3.
    let py = Command::new("python3")
        .args(["-c", "import sys; print('%d.%d' % sys.version_info[:2])"])
        .output()
        .expect("python3");
    let py = String::from_utf8_lossy(&py.stdout).trim().to_string();
    let mut args = vec!["sanity", "--python", py.as_str()];
    for t in OFFLINE_SANITY {
        args.extend(["--test", t]);
    }
    let mut cmd = Command::new("ansible-test");
    let out = cmd
        .args(&args)
        .current_dir(&root)
        .env("HOME", dir.path())
        .env("ANSIBLE_NOCOLOR", "1")
        .output()
        .expect("ansible-test (Debian's ansible-core)");
    let text = fleet::text(&out);
    eprintln!(
        "ansible-test sanity ({} tests):\n{text}",
        OFFLINE_SANITY.len()
    );
    assert!(out.status.success(), "ansible-test sanity failed:\n{text}");
    for t in OFFLINE_SANITY {
        assert!(
            text.contains(&format!("Running sanity test \"{t}\"")),
            "{t} did not run:\n{text}"
        );
    }
    eprintln!("ansible collection: {} ms", t0.elapsed().as_millis());
}

/// ansible-test sanity does catch a broken module: the same tree with the module's
/// `__metaclass__` boilerplate removed fails.
#[test]
fn offline_sanity_fails_on_a_module_without_its_boilerplate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_, cols) = fleet::build_and_install(dir.path());
    let root = cols.join("ansible_collections/docker_userns/docker_userns");
    let module = root.join("plugins/modules/remap.py");
    let src = std::fs::read_to_string(&module).unwrap();
    assert!(src.contains("\n__metaclass__ = type\n"));
    std::fs::write(&module, src.replace("\n__metaclass__ = type\n", "\n")).unwrap();
    let out = Command::new("ansible-test")
        .args(["sanity", "--test", "metaclass-boilerplate", "--python"])
        .arg(
            String::from_utf8_lossy(
                &Command::new("python3")
                    .args(["-c", "import sys; print('%d.%d' % sys.version_info[:2])"])
                    .output()
                    .expect("python3")
                    .stdout,
            )
            .trim(),
        )
        .current_dir(&root)
        .env("HOME", dir.path())
        .env("ANSIBLE_NOCOLOR", "1")
        .output()
        .expect("ansible-test");
    let text = fleet::text(&out);
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains("plugins/modules/remap.py") && text.contains("__metaclass__"),
        "{text}"
    );
}

/// The sanity tests that ansible-test 2.14 runs in virtual environments of their own.
const VENV_SANITY: &[&str] = &[
    "ansible-doc",
    "import",
    "pep8",
    "pylint",
    "runtime-metadata",
    "validate-modules",
    "yamllint",
];

fn python_version() -> String {
    let py = Command::new("python3")
        .args(["-c", "import sys; print('%d.%d' % sys.version_info[:2])"])
        .output()
        .expect("python3");
    String::from_utf8_lossy(&py.stdout).trim().to_string()
}

/// `ansible-test sanity --python X --test T...` in `root` with HOME `home`; (success, output).
fn sanity(root: &std::path::Path, home: &std::path::Path, tests: &[&str]) -> (bool, String) {
    let py = python_version();
    let mut args = vec!["sanity", "--python", py.as_str()];
    for t in tests {
        args.extend(["--test", t]);
    }
    let out = Command::new("ansible-test")
        .args(&args)
        .current_dir(root)
        .env("HOME", home)
        .env("ANSIBLE_NOCOLOR", "1")
        .output()
        .expect("ansible-test (Debian's ansible-core)");
    (out.status.success(), fleet::text(&out))
}

/// The other seven sanity tests (validate-modules among them), in the virtual environments
/// ansible-test makes for them. It fills them with pip from PyPI after bootstrapping pip with a
/// script it downloads from ansible's CI file server, which these machines cannot reach: the
/// test puts tests/fleet/get_pip_standin.py where ansible-test caches that script (Debian's pip
/// wheel does the bootstrap instead). The venvs are kept in target/tools/ansible-test (first
/// run ~3 min, pip downloading the pinned requirements; later ones reuse them). Then
/// validate-modules is shown to catch a documentation that does not match the argument spec.
#[test]
fn the_module_passes_the_venv_sanity_tests_validate_modules_included() {
    let t0 = std::time::Instant::now();
    let dir = tempfile::tempdir().expect("tempdir");
    let (_, cols) = fleet::build_and_install(dir.path());
    let root = cols.join("ansible_collections/docker_userns/docker_userns");
    assert!(
        root.join("tests/sanity/ignore-2.14.txt").is_file(),
        "the sanity ignore file is not in the collection"
    );
    let home = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/tools/ansible-test");
    let cache = home.join(".ansible/test/cache");
    std::fs::create_dir_all(&cache).expect("mkdir");
    std::fs::copy(
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fleet/get_pip_standin.py"
        ),
        cache.join("get_pip_21_3_1.py"),
    )
    .expect("copy the get-pip stand-in");
    let (ok, text) = sanity(&root, &home, VENV_SANITY);
    eprintln!(
        "ansible-test sanity in venvs ({} ms):\n{text}",
        t0.elapsed().as_millis()
    );
    assert!(ok, "ansible-test sanity failed:\n{text}");
    for t in VENV_SANITY {
        assert!(
            text.contains(&format!("Running sanity test \"{t}\"")),
            "{t} did not run:\n{text}"
        );
    }
    // The module's documented choices for `carry` removed: validate-modules fails on it.
    let module = root.join("plugins/modules/remap.py");
    let src = std::fs::read_to_string(&module).unwrap();
    let doc_choices = "    elements: str\n    choices: [images, volumes]\n";
    assert!(src.contains(doc_choices), "the module's carry docs changed");
    std::fs::write(&module, src.replace(doc_choices, "    elements: str\n")).unwrap();
    let (ok, text) = sanity(&root, &home, &["validate-modules"]);
    assert!(
        !ok,
        "validate-modules passed a wrong documentation:\n{text}"
    );
    assert!(
        text.contains("doc-choices-do-not-match-spec") && text.contains("'carry'"),
        "{text}"
    );
    eprintln!("ansible-test venv sanity: {} ms", t0.elapsed().as_millis());
}

/// The command line the module builds from its options is one the tool takes: `jobs` becomes
/// `--jobs N` on `enable` and `disable`, never on `plan` (check mode), and nothing when unset.
/// Debian's python3, where .ci/run's ansible-core lives, imports the module file as it is.
#[test]
fn the_module_builds_command_lines_the_tool_takes() {
    let module = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/packaging/ansible_collections/docker_userns/docker_userns/plugins/modules/remap.py"
    );
    let script = r#"
import importlib.util, json, sys
spec = importlib.util.spec_from_file_location("remap", sys.argv[1])
m = importlib.util.module_from_spec(spec)
spec.loader.exec_module(m)
p = dict(state="enabled", user="dockremap", count=None, start=None, repair=True,
         carry=["volumes"], settle=10, timeout=90, jobs=3,
         allow_restart_with_containers=True, restart=True, binary="docker-userns")
print(json.dumps([m.argv(p, False), m.argv(dict(p, state="disabled"), False),
                  m.argv(p, True), m.argv(dict(p, jobs=None), False)]))
"#;
    let out = Command::new("/usr/bin/python3")
        .args(["-c", script, module])
        .output()
        .expect("/usr/bin/python3 (Debian's, with ansible-core)");
    assert!(out.status.success(), "{}", fleet::text(&out));
    let lines: Vec<Vec<String>> = serde_json::from_slice(&out.stdout).expect("JSON");
    let words = |l: &str| l.split(' ').map(String::from).collect::<Vec<_>>();
    assert_eq!(
        lines[0],
        words(
            "docker-userns --json enable --user dockremap --repair --timeout 90 --settle 10 \
             --jobs 3 --carry volumes --yes"
        )
    );
    assert_eq!(
        lines[1],
        words(
            "docker-userns --json disable --timeout 90 --settle 10 --jobs 3 --carry volumes --yes"
        )
    );
    assert!(!lines[2].contains(&"--jobs".to_string()), "{:?}", lines[2]);
    assert!(!lines[3].contains(&"--jobs".to_string()), "{:?}", lines[3]);
    for l in &lines {
        let argv = l.iter().map(std::ffi::OsString::from).collect();
        docker_userns::cli::Cli::try_parse_argv(argv, false)
            .unwrap_or_else(|e| panic!("{l:?}: {}", e.render()));
    }
}
