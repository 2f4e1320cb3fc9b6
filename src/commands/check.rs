//! `check`: lints /etc/subuid and /etc/subgid for the whole host against login.defs and the
//! accounts in /etc/passwd and /etc/group, and the configured `userns-remap` value against
//! what dockerd will reject or misuse (`preflight::remap_problems`: a value naming no
//! account, the remap user without its own line in a file while the group's holds the
//! range, the group's own range ignored).

use anyhow::Result;
use serde::Serialize;

use crate::formats::login_defs::LoginDefs;
use crate::formats::subid::{self, Problem, Reserved, Which};
use crate::host::root::Root;
use crate::run::preflight;

/// The result of `check`.
#[derive(Debug, Serialize)]
pub(crate) struct CheckReport {
    /// True when no problem was found.
    pub(crate) ok: bool,
    /// Every problem, by file and line.
    pub(crate) problems: Vec<Problem>,
}

/// Lints both subordinate-id files against login.defs.
pub(crate) fn check(root: &Root) -> Result<CheckReport> {
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
    let ids = preflight::read_account_ids(root)?;
    let files = [
        (Which::SubUid, defs.subuid, defs.uid_max, &ids.uids),
        (Which::SubGid, defs.subgid, defs.gid_max, &ids.gids),
    ];
    for (which, bounds, user_max, accounts) in files {
        let abs = which.path();
        let f = preflight::read_id_file(root, abs)?;
        let mut found = subid::lint(&f.file, abs, bounds);
        found.extend(subid::covers_accounts(
            &f.file,
            abs,
            Reserved {
                which,
                user_max: Some(user_max),
                accounts,
            },
        ));
        found.sort_by_key(|p| p.line);
        problems.extend(found);
    }
    // What dockerd makes of the configured value; a daemon.json this cannot read is for
    // `enable`/`status` to report.
    if let Ok(conf) = preflight::configured(root) {
        let mut found = preflight::remap_problems(root, &conf)?;
        found.sort_by(|a, b| (&a.file, a.line).cmp(&(&b.file, b.line)));
        problems.extend(found);
    }
    Ok(CheckReport {
        ok: problems.is_empty(),
        problems,
    })
}
