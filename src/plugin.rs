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
//!
//! Tab completion (docker CLI 23 and later, `cli-plugins/manager/cobra.go`,
//! `AddPluginCommandStubs`): the shell's completion script runs `docker __complete userns
//! WORDS… CURRENT`, and the docker CLI runs the plugin as `docker-userns __complete userns
//! WORDS… CURRENT` (cobra's `ShellCompRequestCmd`), copies its stdout to the shell and exits 0.
//! [`complete`] answers in cobra's protocol: one candidate a line (`NAME\tDESCRIPTION`), then
//! `:DIRECTIVE` (a bit set: 4 no file completion, 16 directories only, 0 the shell's own file
//! completion). The candidates come from the clap command, so a new subcommand or flag is
//! completed with no list to keep. docker/cli's own bash completion (contrib/completion/bash,
//! what Debian's docker-cli ships) skips the docker CLI and runs the plugin directly as
//! `docker-userns __completeNoDesc WORDS… CURRENT`, without the plugin's name.

use std::ffi::OsString;

use serde_json::{Value, json};

/// The argument the docker CLI asks a plugin for its metadata with.
pub(crate) const METADATA_COMMAND: &str = "docker-cli-plugin-metadata";
/// The plugin's name: the binary is `docker-userns`, the command `docker userns`.
pub(crate) const NAME: &str = "userns";
/// Set by the docker CLI in a plugin's environment (to the command docker was started as).
pub const RUN_BY_DOCKER_ENV: &str = "DOCKER_CLI_PLUGIN_ORIGINAL_CLI_COMMAND";
/// cobra's completion request (`cobra.ShellCompRequestCmd`): what the docker CLI runs a
/// plugin with to complete `docker NAME …`.
pub(crate) const COMPLETE_COMMAND: &str = "__complete";
/// cobra's completion request without descriptions (`cobra.ShellCompNoDescRequestCmd`).
pub(crate) const COMPLETE_NO_DESC_COMMAND: &str = "__completeNoDesc";

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
    /// `docker-userns __complete [userns] WORDS… CURRENT`: print [`complete`]'s answer.
    Complete {
        /// The words after the command name, the one being completed last (maybe "").
        words: Vec<String>,
        /// `__complete` (with descriptions), not `__completeNoDesc`.
        descriptions: bool,
    },
}

/// Sorts out the command line `args` (`argv[0]` first). `run_by_docker`: the docker CLI's
/// variable is set. Run directly, every command line parses as it always did: `userns` is
/// not a command, so `docker-userns userns …` means the plugin either way.
pub fn invocation(mut args: Vec<OsString>, run_by_docker: bool) -> Invocation {
    let first = args.get(1).and_then(|a| a.to_str());
    match first {
        Some(METADATA_COMMAND) => Invocation::Metadata,
        Some(req @ (COMPLETE_COMMAND | COMPLETE_NO_DESC_COMMAND)) => {
            let descriptions = req == COMPLETE_COMMAND;
            let mut words: Vec<String> = args[2..]
                .iter()
                .map(|a| a.to_string_lossy().into_owned())
                .collect();
            // The docker CLI names the plugin first; docker's bash completion, which runs
            // the plugin itself, does not (`userns` is no subcommand: it never means one).
            if words.first().is_some_and(|w| w == NAME) {
                words.remove(0);
            }
            if words.is_empty() {
                words.push(String::new());
            }
            Invocation::Complete {
                words,
                descriptions,
            }
        }
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

/// cobra's `ShellCompDirectiveNoFileComp`: no file names when nothing matches.
pub(crate) const DIRECTIVE_NO_FILE: u32 = 4;
/// cobra's `ShellCompDirectiveFilterDirs`: directory names only.
pub(crate) const DIRECTIVE_DIRS: u32 = 16;
/// cobra's `ShellCompDirectiveDefault`: the shell completes file names.
pub(crate) const DIRECTIVE_FILES: u32 = 0;

/// The first line of an argument's or command's help, for a candidate's description.
fn short_help(help: Option<&clap::builder::StyledStr>) -> String {
    let text = help.map(|h| h.to_string()).unwrap_or_default();
    let line = text.lines().next().unwrap_or("").trim();
    // One sentence, no tab (the protocol's separator).
    let line = line.split(". ").next().unwrap_or(line).replace('\t', " ");
    line.trim_end_matches('.').to_string()
}

/// The completion of `words` (the command line after the program's name, the word being
/// completed last, possibly "") against `cmd` (the program's clap command), in cobra's
/// `__complete` protocol: candidates, one a line, `NAME\tDESCRIPTION` when `descriptions`,
/// then `:DIRECTIVE`.
///
/// Subcommands are offered where one may follow, flags (long, and short ones too unless the
/// word starts with `--`) when the word starts with `-`, a flag's possible values after it
/// (or after `--flag=`), and for a path (`--root DIR`, `shift PATH`, `--prometheus FILE`) the
/// shell's own file or directory completion. Flags already given are not offered again,
/// unless they may repeat (`-v`).
pub fn complete(mut cmd: clap::Command, words: &[String], descriptions: bool) -> String {
    cmd.build();
    let (current, before) = words
        .split_last()
        .map_or(("", &[][..]), |(c, b)| (c.as_str(), b));
    let seen = Seen::read(&cmd, before);
    let mut out: Vec<(String, String)> = Vec::new();
    let directive = candidates(&seen, current, &mut out);
    let mut text = String::new();
    for (name, help) in out {
        if !name.starts_with(current) {
            continue;
        }
        text.push_str(&name);
        if descriptions && !help.is_empty() {
            text.push('\t');
            text.push_str(&help);
        }
        text.push('\n');
    }
    text.push_str(&format!(":{directive}\n"));
    text
}

/// What the words before the one being completed say: the (sub)command reached, the flags
/// given, how many positionals, a flag waiting for its value, whether `--` ended the flags.
struct Seen<'c> {
    at: &'c clap::Command,
    given: Vec<clap::Id>,
    positionals: usize,
    pending: Option<&'c clap::Arg>,
    only_positionals: bool,
}

fn takes_value(a: &clap::Arg) -> bool {
    a.get_action().takes_values()
}

impl<'c> Seen<'c> {
    fn read(cmd: &'c clap::Command, before: &[String]) -> Seen<'c> {
        let mut at = cmd;
        let mut given: Vec<clap::Id> = Vec::new();
        let mut positionals = 0usize;
        let mut pending: Option<&clap::Arg> = None;
        let mut only_positionals = false;
        for w in before {
            if let Some(arg) = pending.take() {
                given.push(arg.get_id().clone());
                continue;
            }
            if only_positionals {
                positionals += 1;
            } else if w == "--" {
                only_positionals = true;
            } else if let Some(long) = w.strip_prefix("--") {
                let (name, inline) = match long.split_once('=') {
                    Some((n, _)) => (n, true),
                    None => (long, false),
                };
                if let Some(arg) = at.get_arguments().find(|a| a.get_long() == Some(name)) {
                    if takes_value(arg) && !inline {
                        pending = Some(arg);
                    } else {
                        given.push(arg.get_id().clone());
                    }
                }
            } else if let Some(shorts) = w.strip_prefix('-').filter(|s| !s.is_empty()) {
                for (i, c) in shorts.char_indices() {
                    let Some(arg) = at.get_arguments().find(|a| a.get_short() == Some(c)) else {
                        break;
                    };
                    if takes_value(arg) {
                        if i + c.len_utf8() == shorts.len() {
                            pending = Some(arg);
                        } else {
                            given.push(arg.get_id().clone());
                        }
                        break;
                    }
                    given.push(arg.get_id().clone());
                }
            } else if let Some(sub) = at.find_subcommand(w) {
                at = sub;
                positionals = 0;
            } else {
                positionals += 1;
            }
        }
        Seen {
            at,
            given,
            positionals,
            pending,
            only_positionals,
        }
    }
}

/// The candidates for the word being completed, pushed to `out`; returns cobra's directive.
fn candidates(seen: &Seen, current: &str, out: &mut Vec<(String, String)>) -> u32 {
    let Seen {
        at,
        given,
        positionals,
        pending,
        only_positionals,
    } = seen;
    let (at, positionals, only_positionals) = (*at, *positionals, *only_positionals);
    if let Some(arg) = *pending {
        values(arg, "", current, out)
    } else if let Some((flag, value)) = current
        .strip_prefix("--")
        .and_then(|l| l.split_once('='))
        .filter(|_| !only_positionals)
    {
        match at.get_arguments().find(|a| a.get_long() == Some(flag)) {
            Some(arg) if takes_value(arg) => values(arg, &format!("--{flag}="), value, out),
            _ => DIRECTIVE_NO_FILE,
        }
    } else if current.starts_with('-') && !only_positionals {
        for arg in at.get_arguments().filter(|a| !a.is_hide_set()) {
            let repeats = matches!(
                arg.get_action(),
                clap::ArgAction::Count | clap::ArgAction::Append
            );
            if !repeats && given.contains(arg.get_id()) {
                continue;
            }
            let help = short_help(arg.get_help());
            if let Some(long) = arg.get_long() {
                out.push((format!("--{long}"), help.clone()));
            }
            if !current.starts_with("--")
                && let Some(short) = arg.get_short()
            {
                out.push((format!("-{short}"), help));
            }
        }
        DIRECTIVE_NO_FILE
    } else if at.has_subcommands() {
        for sub in at.get_subcommands().filter(|s| !s.is_hide_set()) {
            out.push((sub.get_name().to_string(), short_help(sub.get_about())));
        }
        DIRECTIVE_NO_FILE
    } else {
        let mut pos: Vec<&clap::Arg> = at.get_positionals().collect();
        pos.sort_by_key(|a| a.get_index());
        let arg = pos.get(positionals).or_else(|| {
            pos.last()
                .filter(|a| a.get_num_args().is_some_and(|n| n.max_values() > 1))
        });
        match arg {
            Some(arg) => values(arg, "", current, out),
            None => DIRECTIVE_NO_FILE,
        }
    }
}

/// The candidates for `arg`'s value (`current` typed so far, after `prefix` such as
/// `--carry=`), pushed to `out` with `prefix`; returns the directive.
fn values(arg: &clap::Arg, prefix: &str, current: &str, out: &mut Vec<(String, String)>) -> u32 {
    use clap::ValueHint;
    let possible = arg.get_possible_values();
    if !possible.is_empty() {
        // `--carry images,vo`: complete the last item of a delimited list.
        let done = arg
            .get_value_delimiter()
            .and_then(|d| current.rfind(d).map(|i| &current[..=i]))
            .unwrap_or("");
        for v in possible.iter().filter(|v| !v.is_hide_set()) {
            out.push((
                format!("{prefix}{done}{}", v.get_name()),
                short_help(v.get_help()),
            ));
        }
        return DIRECTIVE_NO_FILE;
    }
    match arg.get_value_hint() {
        ValueHint::DirPath => DIRECTIVE_DIRS,
        ValueHint::AnyPath | ValueHint::FilePath | ValueHint::ExecutablePath => DIRECTIVE_FILES,
        _ => DIRECTIVE_NO_FILE,
    }
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

    fn complete_words(line: &str) -> (Vec<String>, String) {
        use clap::CommandFactory;
        let words: Vec<String> = line.split(' ').map(String::from).collect();
        let text = complete(crate::cli::Cli::command(), &words, true);
        let mut lines: Vec<&str> = text.lines().collect();
        let directive = lines.pop().expect("a directive line").to_string();
        let names = lines
            .iter()
            .map(|l| l.split('\t').next().unwrap().to_string())
            .collect();
        (names, directive)
    }

    #[test]
    fn completion_is_asked_with_cobras_request() {
        for env in [false, true] {
            assert_eq!(
                invocation(
                    argv(
                        "/usr/libexec/docker/cli-plugins/docker-userns __complete userns status --j"
                    ),
                    env
                ),
                Invocation::Complete {
                    words: vec!["status".into(), "--j".into()],
                    descriptions: true
                }
            );
        }
        // Run directly (no plugin name), without descriptions, and with nothing typed yet.
        assert_eq!(
            invocation(argv("docker-userns __completeNoDesc pl"), false),
            Invocation::Complete {
                words: vec!["pl".into()],
                descriptions: false
            }
        );
        assert_eq!(
            invocation(argv("docker-userns __complete userns"), true),
            Invocation::Complete {
                words: vec![String::new()],
                descriptions: true
            }
        );
    }

    #[test]
    fn completion_lists_clap_subcommands_in_cobras_format() {
        use clap::CommandFactory;
        let text = complete(crate::cli::Cli::command(), &[String::new()], true);
        assert!(text.ends_with("\n:4\n"), "{text}");
        let mut cmd = crate::cli::Cli::command();
        cmd.build();
        let want: Vec<String> = cmd
            .get_subcommands()
            .filter(|s| !s.is_hide_set())
            .map(|s| s.get_name().to_string())
            .collect();
        assert!(
            want.len() >= 8 && want.contains(&"help".to_string()),
            "{want:?}"
        );
        let (names, directive) = complete_words("");
        assert_eq!((names, directive.as_str()), (want, ":4"));
        // NAME<TAB>DESCRIPTION, the description the subcommand's first help sentence.
        assert!(
            text.lines().any(|l| l
                == "plan\tShow what `enable` (with --disable: `disable`) would change, and change nothing"),
            "{text}"
        );
        assert!(text.lines().all(|l| l.matches('\t').count() <= 1), "{text}");
        // Without descriptions: names only.
        let bare = complete(crate::cli::Cli::command(), &["s".into()], false);
        assert_eq!(bare, "status\nshift\n:4\n");
        assert_eq!(complete_words("sta"), (vec!["status".into()], ":4".into()));
        assert_eq!(complete_words("nothing"), (vec![], ":4".into()));
    }

    #[test]
    fn completion_lists_flags_values_and_paths() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        // Flags: the subcommand's own and the global ones; short ones only after a lone `-`.
        let (names, d) = complete_words("status --");
        assert_eq!(d, ":4");
        for f in [
            "--prometheus",
            "--root",
            "--json",
            "--verbose",
            "--quiet",
            "--help",
        ] {
            assert!(names.contains(&f.to_string()), "{f}: {names:?}");
        }
        assert!(!names.iter().any(|n| !n.starts_with("--")), "{names:?}");
        let (names, _) = complete_words("enable -");
        for f in ["--yes", "--settle", "--carry", "-v", "-q", "-h"] {
            assert!(names.contains(&f.to_string()), "{f}: {names:?}");
        }
        assert_eq!(complete_words("status --pro").0, s(&["--prometheus"]));
        // Given once, not again; -v counts, so it stays.
        assert!(
            !complete_words("--json status --")
                .0
                .contains(&"--json".to_string())
        );
        assert!(
            complete_words("-v status --")
                .0
                .contains(&"--verbose".to_string())
        );
        // A flag's possible values, after it, after `=`, and in a comma list.
        assert_eq!(complete_words("plan --carry ").0, s(&["images", "volumes"]));
        assert_eq!(complete_words("plan --carry=vo").0, s(&["--carry=volumes"]));
        assert_eq!(
            complete_words("plan --carry images,").0,
            s(&["images,images", "images,volumes"])
        );
        assert_eq!(complete_words("shift --to ").0, s(&["remapped", "host"]));
        // Paths: the shell's own file completion (directive 0), nothing listed.
        assert_eq!(
            complete_words("status --prometheus "),
            (vec![], ":0".into())
        );
        assert_eq!(complete_words("shift "), (vec![], ":0".into()));
        assert_eq!(
            complete_words("shift /srv/a --to host "),
            (vec![], ":0".into())
        );
        assert_eq!(complete_words("--root "), (vec![], ":0".into()));
        // A value that is neither: nothing, and no file names.
        assert_eq!(complete_words("enable --count "), (vec![], ":4".into()));
        assert_eq!(complete_words("check "), (vec![], ":4".into()));
        // After `--` flags are not offered.
        assert_eq!(complete_words("shift -- -"), (vec![], ":0".into()));
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
