//! The docker CLI plugin protocol: the same binary answers `docker userns ARGS`.
//!
//! What the docker CLI does (docker/cli, `cli-plugins/manager/` and `cmd/docker/docker.go`):
//! it looks for `docker-NAME` in its plugin directories (/usr/libexec/docker/cli-plugins among
//! them), runs each with the single argument `docker-cli-plugin-metadata` and reads a JSON
//! object from its stdout (`SchemaVersion` "0.1.0" and a `Vendor` are required), and for
//! `docker NAME ARGS` it runs the plugin with docker's own arguments unchanged, so NAME comes
//! first (after any global options given to docker), with
//! `DOCKER_CLI_PLUGIN_ORIGINAL_CLI_COMMAND` set. The plugin's exit code is docker's.
//! `docker help NAME` runs the plugin with `help NAME`.

use std::ffi::OsString;

use serde_json::{Value, json};

/// The argument the docker CLI asks a plugin for its metadata with.
pub(crate) const METADATA_COMMAND: &str = "docker-cli-plugin-metadata";
/// The plugin's name: the binary is `docker-userns`, the command `docker userns`.
pub(crate) const NAME: &str = "userns";
/// Set by the docker CLI in a plugin's environment (to the command docker was started as).
pub const RUN_BY_DOCKER_ENV: &str = "DOCKER_CLI_PLUGIN_ORIGINAL_CLI_COMMAND";

/// What a command line asks for, before clap sees it.
#[derive(Debug, PartialEq, Eq)]
pub enum Invocation {
    /// `docker-userns docker-cli-plugin-metadata`: print [`metadata`].
    Metadata,
    /// Parse `args` (`argv[0]` first) as usual; `as_plugin` when the docker CLI ran it as
    /// `docker userns …` (the plugin name already taken out).
    Run {
        /// The command line to parse.
        args: Vec<OsString>,
        /// Run as `docker userns`.
        as_plugin: bool,
    },
    /// `docker OPTIONS userns …`: docker's global options (given here) do not apply.
    DockerOptions(Vec<String>),
}

/// Sorts out the command line `args` (`argv[0]` first). `run_by_docker`: the docker CLI's
/// variable is set. Run directly, every command line parses as it always did: `userns` is
/// not a command, so `docker-userns userns …` means the plugin either way.
pub fn invocation(mut args: Vec<OsString>, run_by_docker: bool) -> Invocation {
    let first = args.get(1).and_then(|a| a.to_str());
    match first {
        Some(METADATA_COMMAND) => Invocation::Metadata,
        Some(NAME) => {
            args.remove(1);
            Invocation::Run {
                args,
                as_plugin: true,
            }
        }
        // `docker help userns [COMMAND]`: `docker-userns help [COMMAND]`.
        Some("help") if args.get(2).is_some_and(|a| a == NAME) => {
            args.remove(2);
            Invocation::Run {
                args,
                as_plugin: true,
            }
        }
        Some(opt) if run_by_docker && opt.starts_with('-') => {
            match args.iter().position(|a| a == NAME) {
                Some(at) => Invocation::DockerOptions(
                    args[1..at]
                        .iter()
                        .map(|a| a.to_string_lossy().into_owned())
                        .collect(),
                ),
                None => Invocation::Run {
                    args,
                    as_plugin: false,
                },
            }
        }
        _ => Invocation::Run {
            args,
            as_plugin: false,
        },
    }
}

/// The message for [`Invocation::DockerOptions`]: one line (it is the `--json` error message).
pub fn docker_options_message(options: &[String]) -> String {
    format!(
        "docker's global options do not apply to `docker userns` ({}): it always acts on this \
         host's dockerd, found from its own configuration; run `docker userns COMMAND` without them",
        options.join(" ")
    )
}

/// When the docker CLI's environment or configuration points at another engine (`DOCKER_HOST`,
/// `DOCKER_CONTEXT`, or `currentContext` in `$DOCKER_CONFIG/config.json`, by default
/// `~/.docker/config.json`), a note that this tool ignores it and acts on this host's dockerd.
/// `env` reads a variable (`std::env::var_os` on the live host). The context named `default`
/// is this host's engine and needs no note.
pub fn elsewhere_note(env: &dyn Fn(&str) -> Option<OsString>) -> Option<String> {
    let set = |name: &str| {
        env(name)
            .map(|v| v.to_string_lossy().into_owned())
            .filter(|v| !v.is_empty())
    };
    let mut named = Vec::new();
    if let Some(host) = set("DOCKER_HOST") {
        named.push(format!("DOCKER_HOST={host}"));
    }
    if let Some(ctx) = set("DOCKER_CONTEXT").filter(|c| c != "default") {
        named.push(format!("DOCKER_CONTEXT={ctx}"));
    }
    let config = set("DOCKER_CONFIG")
        .map(std::path::PathBuf::from)
        .or_else(|| set("HOME").map(|h| std::path::Path::new(&h).join(".docker")))
        .map(|d| d.join("config.json"));
    if let Some(file) = config
        && let Ok(bytes) = std::fs::read(&file)
        && let Ok(v) = serde_json::from_slice::<Value>(&bytes)
        && let Some(ctx) = v.get("currentContext").and_then(Value::as_str)
        && !ctx.is_empty()
        && ctx != "default"
    {
        named.push(format!(
            "docker context {ctx:?} (currentContext in {})",
            file.display()
        ));
    }
    if named.is_empty() {
        return None;
    }
    Some(format!(
        "{} {} set, but docker-userns ignores it: it acts on this host's dockerd (found from its systemd unit, daemon.json and docker.socket), not on the engine {} names",
        named.join(" and "),
        if named.len() == 1 { "is" } else { "are" },
        if named.len() == 1 { "that" } else { "they" }
    ))
}

/// The plugin metadata (docker/cli `cli-plugins/metadata/metadata.go`, `Metadata`).
pub fn metadata() -> Value {
    json!({
        "SchemaVersion": "0.1.0",
        "Vendor": "docker-userns",
        "Version": env!("CARGO_PKG_VERSION"),
        "ShortDescription": env!("CARGO_PKG_DESCRIPTION"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(s: &str) -> Vec<OsString> {
        s.split(' ').map(OsString::from).collect()
    }

    fn run(s: &str, as_plugin: bool) -> Invocation {
        Invocation::Run {
            args: argv(s),
            as_plugin,
        }
    }

    #[test]
    fn another_engine_named_by_the_environment_or_the_cli_config_is_noted() {
        let dir = tempfile::tempdir().unwrap();
        let vars = |pairs: Vec<(&'static str, String)>| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| OsString::from(v))
            }
        };
        let home = dir.path().to_str().unwrap().to_string();
        // Nothing set, or only the default context: no note.
        assert_eq!(elsewhere_note(&vars(vec![("HOME", home.clone())])), None);
        assert_eq!(
            elsewhere_note(&vars(vec![
                ("DOCKER_CONTEXT", "default".into()),
                ("DOCKER_HOST", String::new())
            ])),
            None
        );
        let note =
            elsewhere_note(&vars(vec![("DOCKER_HOST", "tcp://10.1.2.3:2376".into())])).unwrap();
        assert!(
            note.contains("DOCKER_HOST=tcp://10.1.2.3:2376 is set")
                && note.contains("this host's dockerd"),
            "{note}"
        );
        let note = elsewhere_note(&vars(vec![("DOCKER_CONTEXT", "prod".into())])).unwrap();
        assert!(note.contains("DOCKER_CONTEXT=prod"), "{note}");
        std::fs::create_dir(dir.path().join(".docker")).unwrap();
        std::fs::write(
            dir.path().join(".docker/config.json"),
            r#"{"currentContext": "remote"}"#,
        )
        .unwrap();
        let note = elsewhere_note(&vars(vec![("HOME", home.clone())])).unwrap();
        assert!(
            note.contains("docker context \"remote\" (currentContext in ")
                && note.contains(".docker/config.json"),
            "{note}"
        );
        // DOCKER_CONFIG names the directory instead of ~/.docker.
        let other = tempfile::tempdir().unwrap();
        std::fs::write(
            other.path().join("config.json"),
            r#"{"currentContext": "default"}"#,
        )
        .unwrap();
        assert_eq!(
            elsewhere_note(&vars(vec![
                ("HOME", home),
                ("DOCKER_CONFIG", other.path().to_str().unwrap().into())
            ])),
            None
        );
    }

    #[test]
    fn metadata_is_asked_with_one_argument() {
        for env in [false, true] {
            assert_eq!(
                invocation(argv("docker-userns docker-cli-plugin-metadata"), env),
                Invocation::Metadata
            );
        }
        let m = metadata();
        assert_eq!(m["SchemaVersion"], "0.1.0");
        assert_eq!(m["Version"], env!("CARGO_PKG_VERSION"));
        assert!(!m["Vendor"].as_str().unwrap_or_default().is_empty());
        assert!(
            !m["ShortDescription"]
                .as_str()
                .unwrap_or_default()
                .is_empty()
        );
        assert_eq!(
            m.as_object().map(|o| o.keys().cloned().collect::<Vec<_>>()),
            Some(
                ["SchemaVersion", "Vendor", "Version", "ShortDescription"]
                    .map(String::from)
                    .to_vec()
            )
        );
    }

    #[test]
    fn the_plugin_name_is_taken_out() {
        let p = "/usr/libexec/docker/cli-plugins/docker-userns";
        for env in [false, true] {
            assert_eq!(
                invocation(argv(&format!("{p} userns status --json")), env),
                run(&format!("{p} status --json"), true)
            );
            assert_eq!(
                invocation(argv(&format!("{p} userns --json enable --count 0")), env),
                run(&format!("{p} --json enable --count 0"), true)
            );
            assert_eq!(invocation(argv(&format!("{p} userns")), env), run(p, true));
            // Only the first: `--user userns` is a value.
            assert_eq!(
                invocation(argv(&format!("{p} userns plan --user userns")), env),
                run(&format!("{p} plan --user userns"), true)
            );
            assert_eq!(
                invocation(argv(&format!("{p} help userns enable")), env),
                run(&format!("{p} help enable"), true)
            );
        }
    }

    #[test]
    fn run_directly_nothing_changes() {
        for s in [
            "docker-userns",
            "docker-userns status",
            "docker-userns --json plan --user userns",
            "docker-userns help",
            "docker-userns help enable",
            "docker-userns --version",
        ] {
            assert_eq!(invocation(argv(s), false), run(s, false), "{s}");
        }
        // With the docker CLI's variable inherited, but no plugin name after options.
        assert_eq!(
            invocation(argv("docker-userns --json status"), true),
            run("docker-userns --json status", false)
        );
    }

    #[test]
    fn docker_global_options_are_refused() {
        let p = "/usr/libexec/docker/cli-plugins/docker-userns";
        assert_eq!(
            invocation(
                argv(&format!("{p} -H tcp://elsewhere:2375 userns enable")),
                true
            ),
            Invocation::DockerOptions(vec!["-H".into(), "tcp://elsewhere:2375".into()])
        );
        assert!(matches!(
            invocation(argv(&format!("{p} --context userns userns status")), true),
            Invocation::DockerOptions(_)
        ));
        let msg = docker_options_message(&["-D".into()]);
        assert!(msg.contains("(-D)") && !msg.contains('\n'), "{msg}");
    }
}
