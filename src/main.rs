//! The `docker-userns` command.

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use docker_userns::cli::Cli;
use docker_userns::exit::{self, Code};
use docker_userns::report;

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
    tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .without_time()
        .init();
}

fn print_json(v: &serde_json::Value) {
    let mut out = std::io::stdout().lock();
    let _ = serde_json::to_writer_pretty(&mut out, v);
    let _ = writeln!(out);
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let usage = e.use_stderr();
            if usage && std::env::args().any(|a| a == "--json") {
                let msg = e.kind().to_string();
                print_json(&report::json_error("", Code::Usage, &msg));
            }
            let _ = e.print();
            return ExitCode::from(if usage { Code::Usage as u8 } else { 0 });
        }
    };
    init_logging(&cli);
    let name = cli.command.name();
    match docker_userns::run(&cli) {
        Ok(outcome) => {
            if cli.json {
                print_json(&outcome.json);
            } else if !cli.quiet || outcome.code != Code::Ok {
                print!("{}", outcome.text);
            }
            ExitCode::from(outcome.code as u8)
        }
        Err(err) => {
            let code = exit::code_of(&err);
            let message = format!("{err:#}");
            if cli.json {
                print_json(&report::json_error(name, code, &message));
            }
            let mut stderr = std::io::stderr().lock();
            let _ = writeln!(stderr, "docker-userns: error: {err}");
            for cause in err.chain().skip(1) {
                let _ = writeln!(stderr, "  caused by: {cause}");
            }
            ExitCode::from(code as u8)
        }
    }
}
