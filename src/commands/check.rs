//! `check`: lints /etc/subuid and /etc/subgid for the whole host against login.defs.

use anyhow::Result;
use serde::Serialize;

use crate::formats::login_defs::LoginDefs;
use crate::formats::subid::{self, Problem};
use crate::host::root::Root;
use crate::run::preflight;

/// The result of `check`.
#[derive(Debug, Serialize)]
pub struct CheckReport {
    /// True when no problem was found.
    pub ok: bool,
    /// Every problem, by file and line.
    pub problems: Vec<Problem>,
}

/// Lints both subordinate-id files against login.defs.
pub fn check(root: &Root) -> Result<CheckReport> {
    let mut problems = Vec::new();
    let defs = match preflight::read_login_defs(root) {
        Ok(d) => d,
        Err(e) => {
            problems.push(Problem {
                file: preflight::LOGIN_DEFS.into(),
                line: 0,
                kind: "malformed",
                message: format!("{e:#}"),
            });
            LoginDefs::default()
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
