//! docker-userns: turn on Docker's user-namespace remapping safely.
//!
//! The crate is four layers, each importing only from the ones below it:
//!
//! - [`cli`], [`report`] and [`dispatch`]: the command line, the output, and the dispatch
//!   from one to the other. Nothing below sees a clap type. [`plugin`]: the docker CLI plugin
//!   protocol (`docker userns …`).
//! - [`commands`]: `status`, `verify` and `check`, the commands that read rather than change.
//! - [`run`]: a changing run, `preflight → plan → apply → restart → verify | rollback`, and
//!   the [`run::journal`] that records every step before it happens and owns undo and recovery.
//! - [`host`]: the root-relative file layer and the services (accounts, systemd, the engine).
//! - [`formats`]: pure parsers and writers of the files (subuid, login.defs, daemon.json).
//!
//! [`exit`] holds the error kinds and exit codes that every layer may return; [`progress`] the
//! progress bars of the long steps, made in [`dispatch`] and handed down.

#![deny(missing_docs)]
// The crate's API is for its own binary, tests, benches, fuzz targets and xtask: most items are
// `pub(crate)`, and the docs (`cargo doc --document-private-items`) link to them.
#![allow(rustdoc::private_intra_doc_links)]

pub mod cli;
pub mod commands;
pub mod exit;
pub(crate) mod failpoint;
pub mod formats;
pub mod host;
pub mod plugin;
pub mod progress;
pub mod report;
pub mod run;

use std::time::Duration;

use anyhow::Result;

use crate::cli::{CarryWhat, Cli, Command, RestartArgs, UserArgs};
use crate::commands::{check, prometheus, shift, status, verify};
use crate::exit::{Code, NotRoot};
use crate::host::kernel;
use crate::host::root::Root;
use crate::progress::Progress;
use crate::run::converge::{self, RestartPolicy, Want};
use crate::run::journal;
use crate::run::preflight;

/// What a command prints and returns: the exit code, the `--json` document and the human text.
#[derive(Debug)]
pub struct Output {
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
            Command::Plan { .. } => "plan",
            Command::Enable { .. } => "enable",
            Command::Disable { .. } => "disable",
            Command::Check => "check",
            Command::Shift { .. } => "shift",
            Command::Status { .. } => "status",
            Command::Verify { .. } => "verify",
        }
    }
}

impl From<&UserArgs> for Want {
    fn from(a: &UserArgs) -> Want {
        Want {
            user: a.user.clone(),
            count: a.count,
            repair: a.repair,
            start: a.start,
        }
    }
}

impl From<&RestartArgs> for RestartPolicy {
    fn from(a: &RestartArgs) -> RestartPolicy {
        RestartPolicy {
            restart: !a.no_restart,
            stop_running_containers: a.yes,
            timeout: Duration::from_secs(a.timeout),
            settle: Duration::from_secs(a.settle),
            carry_images: a.carry.contains(&CarryWhat::Images),
            carry_volumes: a.carry.contains(&CarryWhat::Volumes),
            progress: Progress::hidden(),
            jobs: a
                .jobs
                .map_or_else(crate::host::shift::default_jobs, usize::from),
        }
    }
}

/// The restart policy of `restart`, its progress drawn unless `json` (see [`progress`]).
fn policy(restart: &RestartArgs, json: bool) -> RestartPolicy {
    RestartPolicy {
        progress: Progress::for_output(json),
        ..restart.into()
    }
}

fn require_root(root: &Root, command: &'static str) -> Result<()> {
    if root.is_host() && !kernel::is_root() {
        return Err(NotRoot(command).into());
    }
    Ok(())
}

/// Runs a parsed command line.
pub fn dispatch(cli: &Cli) -> Result<Output> {
    let root = Root::new(&cli.root).map_err(|e| exit::Usage(format!("--root: {e:#}")))?;
    let name = cli.command.name();
    match &cli.command {
        Command::Plan { disable: true, .. } => {
            let p = converge::plan_disable(&root)?;
            Ok(Output {
                code: Code::Ok,
                text: report::disable_plan_text(&root_text(&root), &p),
                json: report::json_doc(name, &p),
            })
        }
        Command::Plan { user, carry, .. } => {
            let p = converge::plan(
                &root,
                &user.into(),
                carry.contains(&CarryWhat::Images),
                carry.contains(&CarryWhat::Volumes),
            )?;
            Ok(Output {
                code: Code::Ok,
                text: report::enable_text(&root_text(&root), &p, false),
                json: report::json_doc(name, &p),
            })
        }
        Command::Enable { user, restart } => {
            require_root(&root, name)?;
            let done = converge::enable(&root, &user.into(), &policy(restart, cli.json))?;
            Ok(Output {
                code: done.code(),
                text: report::enable_text(&root_text(&root), &done, true),
                json: report::json_doc(name, &done),
            })
        }
        Command::Disable { restart } => {
            require_root(&root, name)?;
            let done = converge::disable(&root, &policy(restart, cli.json))?;
            Ok(Output {
                code: done.code(),
                text: report::disable_text(&root_text(&root), &done),
                json: report::json_doc(name, &done),
            })
        }
        Command::Status { prometheus: file } => status_command(&root, name, file.as_deref()),
        Command::Verify { image } => verify_command(&root, name, image.as_deref()),
        Command::Shift {
            paths,
            to,
            dry_run,
            drop_setid_and_caps,
            jobs,
        } => {
            require_root(&root, name)?;
            let direction = match to {
                cli::ShiftTo::Remapped => shift::Direction::Remapped,
                cli::ShiftTo::Host => shift::Direction::Host,
            };
            let progress = Progress::for_output(cli.json);
            let jobs = jobs.map_or_else(crate::host::shift::default_jobs, usize::from);
            let r = shift::shift(
                &root,
                paths,
                direction,
                *dry_run,
                *drop_setid_and_caps,
                jobs,
                progress,
            )?;
            Ok(Output {
                code: Code::Ok,
                text: report::shift_text(&r),
                json: report::json_doc(name, &r),
            })
        }
        Command::Check => {
            let r = check::check(&root)?;
            Ok(Output {
                code: if r.ok { Code::Ok } else { Code::Conflict },
                text: report::check_text(&root_text(&root), &r),
                json: report::json_doc(name, &r),
            })
        }
    }
}

/// The root as the reports name it.
fn root_text(root: &Root) -> String {
    root.base().display().to_string()
}

/// `status`, and with `--prometheus FILE` the metrics written to FILE.
fn status_command(
    root: &Root,
    name: &'static str,
    file: Option<&std::path::Path>,
) -> Result<Output> {
    // FILE is checked before anything is gathered (or an unfinished run recovered).
    let target = file.map(|f| prometheus::check_path(root, f)).transpose()?;
    let st = status::status(root, kernel::is_root())?;
    let mut text = report::status_text(&root_text(root), &st);
    if let Some(abs) = target {
        prometheus::write(root, &abs, &prometheus::render(&st))?;
        text.push_str(&format!("\nMetrics written to {abs}.\n"));
    }
    Ok(Output {
        code: Code::Ok,
        text,
        json: report::json_doc(name, &st),
    })
}

/// `verify`: a container started on the live host shows whether remapping is in effect.
fn verify_command(root: &Root, name: &'static str, image: Option<&str>) -> Result<Output> {
    if !root.is_host() {
        return Err(exit::Usage(
            "verify runs containers on the live host: it cannot be used with --root".into(),
        )
        .into());
    }
    require_root(root, name)?;
    let conf = preflight::configured(root).ok();
    let ranges = conf
        .as_ref()
        .and_then(|c| Some((c.subuid.as_ref()?.start, c.subgid.as_ref()?.start)));
    root.ensure_dir(journal::DIR, 0o700)?;
    let engine = verify::engine(root)?;
    let mut v = verify::verify(&engine, image, ranges, &root.real_dir(journal::DIR)?)?;
    if let Some(c) = conf {
        v.remap_user = c.user;
        v.remap_group = c.group;
    }
    Ok(Output {
        code: if v.effective {
            Code::Ok
        } else {
            Code::NotEffective
        },
        text: report::verify_text(&v),
        json: report::json_doc(name, &v),
    })
}
