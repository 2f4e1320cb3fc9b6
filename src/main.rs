//! The `docker-userns` command.

use std::ffi::OsString;
use std::io::Write;
use std::process::ExitCode;

use docker_userns::cli::Cli;
use docker_userns::exit::{self, Code};
use docker_userns::plugin::{self, Invocation};
use docker_userns::report;

/// Log output: to the journal, with priorities, when systemd connected stderr to it
/// (`JOURNAL_STREAM`); otherwise text on stderr (coloured on a terminal).
fn init_logging(cli: &Cli) {
    let level = if cli.quiet {
        tracing::Level::ERROR
    } else {
        match cli.verbose {
            0 => tracing::Level::WARN,
            1 => tracing::Level::INFO,
            2 => tracing::Level::DEBUG,
            _ => tracing::Level::TRACE,
        }
    };
    if stderr_is_journal() {
        // Priorities: error 3, warn 4, info 5 (notice), debug 6, trace 7. If the journal's
        // socket cannot be opened, the text below still reaches the journal through stderr.
        if let Ok(journal) = tracing_journald::layer() {
            use tracing_subscriber::layer::SubscriberExt;
            use tracing_subscriber::util::SubscriberInitExt;
            tracing_subscriber::registry()
                .with(tracing_subscriber::filter::LevelFilter::from_level(level))
                .with(journal.with_syslog_identifier("docker-userns".to_string()))
                .init();
            return;
        }
    }
    let text = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false);
    if level == tracing::Level::TRACE {
        // -vvv: each line with the seconds since the start, to see where a slow run waits.
        text.with_timer(tracing_subscriber::fmt::time::uptime())
            .init();
    } else {
        text.without_time().init();
    }
}

/// True when stderr is the journal stream systemd set up: `JOURNAL_STREAM` is `DEV:INODE` of
/// it (systemd.exec(5)); a child that inherited the variable but not the stream gets false.
fn stderr_is_journal() -> bool {
    use std::os::fd::AsFd;
    use std::os::unix::fs::MetadataExt;
    let Some(value) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    let Some((dev, ino)) = value.to_str().and_then(|v| v.split_once(':')) else {
        return false;
    };
    let (Ok(dev), Ok(ino)) = (dev.parse::<u64>(), ino.parse::<u64>()) else {
        return false;
    };
    let Ok(fd) = std::io::stderr().as_fd().try_clone_to_owned() else {
        return false;
    };
    std::fs::File::from(fd)
        .metadata()
        .is_ok_and(|m| m.dev() == dev && m.ino() == ino)
}

/// Names the first argument that is not UTF-8 (shown with U+FFFD for what is not).
fn not_utf8(args: &[OsString]) -> String {
    match args
        .iter()
        .enumerate()
        .skip(1)
        .find(|(_, a)| a.to_str().is_none())
    {
        Some((i, a)) => format!(
            "argument {i} ({:?}) is not valid UTF-8: names and option values must be UTF-8 (only --root and shift's paths may be any bytes)",
            a.to_string_lossy()
        ),
        None => "an argument is not valid UTF-8".to_string(),
    }
}

fn print_json(v: &serde_json::Value) {
    let mut out = std::io::stdout().lock();
    let _ = serde_json::to_writer_pretty(&mut out, v);
    let _ = writeln!(out);
}

fn main() -> ExitCode {
    // As the OS gives them (a name need not be UTF-8): never std::env::args, which panics.
    let args: Vec<OsString> = std::env::args_os().collect();
    let cli = match parse(args) {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    init_logging(&cli);
    // The docker CLI's pointers to another engine do not apply here: say so (on stderr, so
    // that --json still prints one document).
    if cli.root == std::path::Path::new("/")
        && !cli.quiet
        && let Some(note) = plugin::elsewhere_note(&|name| std::env::var_os(name))
    {
        eprintln!("docker-userns: note: {note}");
    }
    let result = docker_userns::dispatch(&cli);
    if let Some(sig) = docker_userns::run::signals::deferred() {
        tracing::warn!(
            "signal {sig} was held back until the change had finished or was rolled back"
        );
    }
    match result {
        Ok(output) => {
            if cli.json {
                print_json(&output.json);
            } else if !cli.quiet || output.code != Code::Ok {
                print!("{}", output.text);
            }
            ExitCode::from(output.code as u8)
        }
        Err(err) => fail(&cli, &err),
    }
}

/// The command line parsed, or the exit code after the plugin metadata, help, version or a
/// usage error was printed. Installs the signal mask (before any thread exists).
fn parse(args: Vec<OsString>) -> Result<Cli, ExitCode> {
    // The docker CLI plugin protocol comes before anything else: `docker --help` asks every
    // plugin for its metadata.
    let args_seen = args.clone();
    let run_by_docker = std::env::var_os(plugin::RUN_BY_DOCKER_ENV).is_some();
    let parsed = match plugin::invocation(args, run_by_docker) {
        Invocation::Metadata => {
            print_json(&plugin::metadata());
            return Err(ExitCode::SUCCESS);
        }
        Invocation::Complete {
            words,
            descriptions,
        } => {
            use clap::CommandFactory;
            let answer = plugin::complete(Cli::command(), &words, descriptions);
            let _ = std::io::stdout().lock().write_all(answer.as_bytes());
            return Err(ExitCode::SUCCESS);
        }
        Invocation::Run { args, as_plugin } => Cli::try_parse_argv(args, as_plugin),
        Invocation::DockerOptions(options) => Err(clap::Error::raw(
            clap::error::ErrorKind::UnknownArgument,
            format!("{}\n", plugin::docker_options_message(&options)),
        )),
    };
    // First, before any thread exists: every thread inherits the blocked signals.
    docker_userns::run::signals::install();
    parsed.map_err(|e| usage_error(&e, &args_seen))
}

/// Prints a clap error (or help, or the version) as text, and as a document with `--json`.
fn usage_error(e: &clap::Error, args_seen: &[OsString]) -> ExitCode {
    let usage = e.use_stderr();
    let json = args_seen.iter().any(|a| a == "--json");
    // Plain text (clap's rendering without ANSI styles).
    let mut text = e.render().to_string();
    if e.kind() == clap::error::ErrorKind::InvalidUtf8 {
        text = format!("{}\n{text}", not_utf8(args_seen));
    }
    if json {
        print_json(&report::clap_json(e.kind(), &text));
    }
    // With --json, help and version are the document above; errors also go to stderr.
    if usage || !json {
        if e.kind() == clap::error::ErrorKind::InvalidUtf8 {
            eprintln!("docker-userns: error: {}", not_utf8(args_seen));
        }
        let _ = e.print();
    }
    ExitCode::from(if usage { Code::Usage as u8 } else { 0 })
}

/// Prints a failed command's error: the `--json` document, and the message with its causes
/// on stderr (each line priority 3 when stderr is the journal).
fn fail(cli: &Cli, err: &anyhow::Error) -> ExitCode {
    let code = exit::code_of(err);
    if cli.json {
        print_json(&report::json_error(
            cli.command.name(),
            code,
            &format!("{err:#}"),
            exit::refusal_of(err),
        ));
    }
    let prefix = if stderr_is_journal() { "<3>" } else { "" };
    let mut stderr = std::io::stderr().lock();
    let text = format!("docker-userns: error: {err}");
    for line in text.lines() {
        let _ = writeln!(stderr, "{prefix}{line}");
    }
    for cause in err.chain().skip(1) {
        for (i, line) in cause.to_string().lines().enumerate() {
            let lead = if i == 0 { "  caused by: " } else { "    " };
            let _ = writeln!(stderr, "{prefix}{lead}{line}");
        }
    }
    ExitCode::from(code as u8)
}
