//! docker-userns: turn on Docker's user-namespace remapping safely.
//!
//! The flow of every changing command ([`converge`]): [`preflight`] reads the root's files,
//! [`plan`] decides (pure), [`apply`] writes the files, [`restart`] restarts docker over
//! [`systemd`] and health-gates it through the [`engine`] API, or rolls back from the
//! [`transaction`]'s saved files. `plan` stops after deciding.

#![deny(missing_docs)]

pub mod account;
pub mod apply;
pub mod cli;
pub mod converge;
pub mod daemon_config;
pub mod docker_unit;
pub mod engine;
pub mod exit;
pub mod failpoint;
pub mod inspect;
pub mod login_defs;
pub mod plan;
pub mod preflight;
pub mod report;
pub mod restart;
pub mod root;
pub mod shadow_lock;
pub mod signals;
pub mod status;
pub mod subid;
pub mod systemd;
pub mod transaction;
pub mod verify;

use anyhow::Result;

use crate::cli::{Cli, Command};
use crate::exit::{Code, NotRoot};
use crate::report::CheckReport;
use crate::root::Root;

/// What a command produced: the exit code, the `--json` document and the human text.
#[derive(Debug)]
pub struct Outcome {
    /// Exit code.
    pub code: Code,
    /// The `--json` document.
    pub json: serde_json::Value,
    /// The text for a terminal.
    pub text: String,
}

impl Command {
    /// The subcommand's name, as typed.
    pub fn name(&self) -> &'static str {
        match self {
            Command::Plan(_) => "plan",
            Command::Enable { .. } => "enable",
            Command::Disable { .. } => "disable",
            Command::Check => "check",
            Command::Status => "status",
            Command::Verify { .. } => "verify",
        }
    }
}

fn require_root(root: &Root, command: &'static str) -> Result<()> {
    // SAFETY: geteuid has no preconditions.
    if root.is_host() && unsafe { libc::geteuid() } != 0 {
        return Err(NotRoot(command).into());
    }
    Ok(())
}

/// Runs a parsed command line.
pub fn run(cli: &Cli) -> Result<Outcome> {
    let root = Root::new(&cli.root).map_err(|e| exit::Usage(format!("--root: {e:#}")))?;
    let root_text = root.base().display().to_string();
    let name = cli.command.name();
    match &cli.command {
        Command::Plan(args) => {
            let p = converge::plan(&root, args)?;
            Ok(Outcome {
                code: Code::Ok,
                text: report::enable_text(&root_text, &p, false),
                json: report::json_doc(name, &p),
            })
        }
        Command::Enable { user, restart } => {
            require_root(&root, name)?;
            let done = converge::enable(&root, user, restart)?;
            Ok(Outcome {
                code: Code::Ok,
                text: report::enable_text(&root_text, &done, true),
                json: report::json_doc(name, &done),
            })
        }
        Command::Disable { restart } => {
            require_root(&root, name)?;
            let done = converge::disable(&root, restart)?;
            Ok(Outcome {
                code: Code::Ok,
                text: report::disable_text(&root_text, &done),
                json: report::json_doc(name, &done),
            })
        }
        Command::Status => {
            // SAFETY: geteuid has no preconditions.
            let st = status::status(&root, unsafe { libc::geteuid() } == 0)?;
            Ok(Outcome {
                code: Code::Ok,
                text: report::status_text(&root_text, &st),
                json: report::json_doc(name, &st),
            })
        }
        Command::Verify { image } => {
            if !root.is_host() {
                return Err(exit::Usage(
                    "verify runs containers on the live host: it cannot be used with --root".into(),
                )
                .into());
            }
            require_root(&root, name)?;
            let ranges = status::configured(&root)
                .ok()
                .and_then(|c| Some((c.subuid?.start, c.subgid?.start)));
            root.ensure_dir(transaction::DIR, 0o700)?;
            let engine = engine::Engine::new(
                engine::Engine::default_socket(),
                std::time::Duration::from_secs(30),
            );
            let v = verify::verify(
                &engine,
                image.as_deref(),
                ranges,
                &root.path(transaction::DIR),
            )?;
            Ok(Outcome {
                code: if v.effective {
                    Code::Ok
                } else {
                    Code::NotEffective
                },
                text: report::verify_text(&v),
                json: report::json_doc(name, &v),
            })
        }
        Command::Check => {
            let r = check(&root)?;
            Ok(Outcome {
                code: if r.ok { Code::Ok } else { Code::Conflict },
                text: report::check_text(&root_text, &r),
                json: report::json_doc(name, &r),
            })
        }
    }
}

/// Lints both subordinate-id files against login.defs.
pub fn check(root: &Root) -> Result<CheckReport> {
    let mut problems = Vec::new();
    let defs = match preflight::read_login_defs(root) {
        Ok(d) => d,
        Err(e) => {
            problems.push(subid::Problem {
                file: preflight::LOGIN_DEFS.into(),
                line: 0,
                kind: "malformed",
                message: format!("{e:#}"),
            });
            login_defs::LoginDefs::default()
        }
    };
    for (abs, bounds) in [("/etc/subuid", defs.subuid), ("/etc/subgid", defs.subgid)] {
        let f = preflight::read_id_file(root, abs)?;
        problems.extend(subid::lint(&f.file, abs, bounds));
    }
    Ok(CheckReport {
        ok: problems.is_empty(),
        problems,
    })
}
