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
pub const METADATA_COMMAND: &str = "docker-cli-plugin-metadata";
/// The plugin's name: the binary is `docker-userns`, the command `docker userns`.
pub const NAME: &str = "userns";
/// Set by the docker CLI in a plugin's environment (to the command docker was started as).
pub const RUN_BY_DOCKER_ENV: &str = "DOCKER_CLI_PLUGIN_ORIGINAL_CLI_COMMAND";

/// What a command line asks for, before clap sees it.
#[derive(Debug, PartialEq, Eq)]
pub enum Invocation {
    /// `docker-userns docker-cli-plugin-metadata`: print [`metadata`].
    Metadata,
    /// Parse `args` (argv[0] first) as usual; `as_plugin` when the docker CLI ran it as
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

/// Sorts out the command line `args` (argv[0] first). `run_by_docker`: the docker CLI's
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
