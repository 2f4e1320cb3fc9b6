//! Errors that decide the exit code, and the exit codes themselves.

use std::fmt;

/// The documented exit codes of `docker-userns`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    /// 0: done; the system is converged (changed or not), or `check` found no problem.
    Ok = 0,
    /// 1: an unexpected failure (I/O error, a command that failed); see the message.
    Failure = 1,
    /// 2: the command line is wrong (unknown option, bad value, missing `--root` dir).
    Usage = 2,
    /// 3: the host's files conflict or are invalid; nothing was changed. `check`: problems found.
    Conflict = 3,
    /// 4: not run as root on the live host.
    NotRoot = 4,
    /// 5: a change failed and was rolled back; the system is as it was.
    RolledBack = 5,
    /// 6: a change failed and the rollback did not complete; manual action is needed.
    RollbackIncomplete = 6,
    /// 7: `verify` found remapping not in effect.
    NotEffective = 7,
    /// 8: the switch was made, but `--carry` did not carry everything (the rest is named; the
    /// same command carries it).
    CarryIncomplete = 8,
}

impl Code {
    /// Short machine-readable name used in `--json` error documents.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Code::Ok => "ok",
            Code::Failure => "failure",
            Code::Usage => "usage",
            Code::Conflict => "conflict",
            Code::NotRoot => "not-root",
            Code::RolledBack => "rolled-back",
            Code::RollbackIncomplete => "rollback-incomplete",
            Code::NotEffective => "not-effective",
            Code::CarryIncomplete => "carry-incomplete",
        }
    }
}

/// The exit-code table as a string literal, for `concat!`.
macro_rules! exit_codes_text {
    () => {
        "Exit codes:
  0  done: converged (changed or not); check found no problem
  1  unexpected failure (I/O error, a helper command failed)
  2  usage error (bad option or value, --root directory missing)
  3  conflict or invalid input in the host's files; nothing was changed
     (check: problems were found)
  4  not root: changing the live host needs root
  5  failed and rolled back: the system is as it was
  6  failed and the rollback did not complete: see the message
  7  verify: remapping is not in effect
  8  switched, but --carry did not carry everything: see the message;
     the same command carries the rest"
    };
}

/// The text for `--help`: exit codes.
pub(crate) const EXIT_CODES_HELP: &str = exit_codes_text!();

/// The text for `--help` (long): the contract for automation, then the exit codes.
pub(crate) const LONG_HELP: &str = concat!(
    "For automation: no command prompts or needs a terminal; whatever would need consent\n",
    "fails (exit 3) unless its flag is given (--yes). With --json every command prints\n",
    "exactly one JSON document on stdout, errors included (schema_version 1; the schema is\n",
    "schema/docker-userns.schema.json in the source). \"changed\" is true only when something\n",
    "changed. Check mode is `plan`. Runs on one host are serialized by a lock.\n\n",
    exit_codes_text!()
);

/// The host's files conflict with the change or cannot be trusted; nothing was changed.
///
/// Besides the message it carries what a program needs to act on it: a `kind` (a stable
/// kebab-case name, [`Conflict::OTHER`] when not classified) and, when the refusal is about
/// one file or one line, the path (inside the root, e.g. `/etc/subuid`) and the 1-based line.
/// `--json` error documents show them as `error.refusal`.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Conflict {
    /// The explanation, with what to do.
    pub(crate) message: String,
    /// What kind of refusal this is (e.g. `subid-malformed`, `remap-value-conflict`).
    pub(crate) kind: &'static str,
    /// The file it is about, as a path inside the root.
    pub(crate) path: Option<String>,
    /// The line of that file (1-based).
    pub(crate) line: Option<usize>,
}

impl Conflict {
    /// The kind of a refusal not classified further.
    pub(crate) const OTHER: &'static str = "other";

    /// A conflict with the given explanation (kind [`Conflict::OTHER`], no path).
    pub(crate) fn new(msg: impl fmt::Display) -> Conflict {
        Conflict {
            message: msg.to_string(),
            kind: Conflict::OTHER,
            path: None,
            line: None,
        }
    }

    /// The same conflict, of kind `kind`.
    pub(crate) fn kind(mut self, kind: &'static str) -> Conflict {
        self.kind = kind;
        self
    }

    /// The same conflict, about `path` (inside the root) and, if given, its line.
    pub(crate) fn at(mut self, path: impl Into<String>, line: Option<usize>) -> Conflict {
        self.path = Some(path.into());
        self.line = line;
        self
    }
}

/// The refusal in an error, when it is one (exit 3): the [`Conflict`] itself, a cause, or a
/// context layer.
pub fn refusal_of(err: &anyhow::Error) -> Option<&Conflict> {
    err.downcast_ref::<Conflict>()
}

/// The command needs root on the live host.
#[derive(Debug, thiserror::Error)]
#[error(
    "`docker-userns {0}` changes the live host and must run as root (try sudo), or use --root DIR to work on a copy"
)]
pub(crate) struct NotRoot(pub &'static str);

/// A problem with the command line detected after parsing.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct Usage(pub String);

/// A change failed and every file it had written was restored.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct RolledBack(pub String);

/// A change failed and restoring the previous state failed too.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct RollbackIncomplete(pub String);

/// The exit code for an error: the most serious marker type anywhere in it (as the error
/// itself, a cause, or a context layer) decides; plain errors are [`Code::Failure`].
pub fn code_of(err: &anyhow::Error) -> Code {
    if err.downcast_ref::<RollbackIncomplete>().is_some() {
        Code::RollbackIncomplete
    } else if err.downcast_ref::<RolledBack>().is_some() {
        Code::RolledBack
    } else if err.downcast_ref::<NotRoot>().is_some() {
        Code::NotRoot
    } else if err.downcast_ref::<Usage>().is_some() {
        Code::Usage
    } else if err.downcast_ref::<Conflict>().is_some() {
        Code::Conflict
    } else {
        Code::Failure
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    #[test]
    fn codes_are_found_through_context_layers() {
        let conflict: anyhow::Error = Conflict::new("x").into();
        assert_eq!(code_of(&conflict), Code::Conflict);
        let wrapped = Err::<(), _>(conflict).context("reading").unwrap_err();
        assert_eq!(code_of(&wrapped), Code::Conflict);
        let rolled = wrapped.context(RolledBack("restored".into()));
        assert_eq!(code_of(&rolled), Code::RolledBack);
        assert_eq!(code_of(&rolled.context("outer")), Code::RolledBack);
        assert_eq!(code_of(&anyhow::anyhow!("io")), Code::Failure);
    }
}
