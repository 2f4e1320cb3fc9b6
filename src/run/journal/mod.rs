//! The journal: every step of a run that changes the host, recorded durably before it happens,
//! each with its inverse. Rollback after a failure and recovery after a crash are one code path:
//! [`undo_plan()`] (pure) decides from the record and the host as it is now what must be undone,
//! and [`Journal::undo`] carries that out.
//!
//! The record lives in /var/lib/docker-userns (inside the root, in every mode: live host,
//! `--no-restart` and `--root`), with the saved copies of every file it names. Steps:
//!
//! | step | recorded | inverse |
//! |---|---|---|
//! | [`Step::WriteFile`] | before the write, with a copy of the old content; completed with the size and hash of what was written | put the old content back (or remove a file that did not exist), unless someone changed the file since: then it is left as found |
//! | [`Step::CreateUser`] | before `useradd` runs | none: the user is kept (harmless, and it may own files by then), and the message says so |
//! | [`Step::StopContainers`] | before running containers are stopped through the engine API (live-restore on) | start them again, once docker runs as before |
//! | [`Step::SpoolImages`] | before images are exported into the spool (`--carry images`) | remove the spool |
//! | [`Step::RestartDocker`] | before docker is stopped | bring docker back with the old files and gate it for its old remapping state |
//! | [`Step::MoveDataRoot`] | with docker stopped, before the remapped data root is renamed (`--repair`); completed (`done`) once renamed | rename it back (docker stopped first) |
//! | [`Step::ShiftOwners`] | after that rename, before the owners below it are shifted; completed (`done`) once every owner is shifted | shift them back (resumable: an owner already in the old range is done) |
//!
//! A run that moves a data root says so in its record before its first step
//! ([`Record::repair`]): an interrupted run is then finished only when every move and shift it
//! intended is recorded complete. Whoever starts docker meanwhile (an admin, a reboot) makes
//! the files look "as written" and the engine "remapped", but a run killed before its rename,
//! or during its shift, is not done: recovery stops docker, undoes the shift and the rename,
//! restores the files and brings docker back.
//!
//! A new kind of step (moving a data root, copying volumes) adds a variant here, its inverse in
//! [`undo_plan()`] and its execution in [`Journal::undo`]; every failure path and crash recovery
//! then undo it without further code.

mod lock;
mod record;
mod undo;
mod undo_plan;

use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};

use crate::exit::{Conflict, RollbackIncomplete, RolledBack};
use crate::host::account;
use crate::host::root::{Perms, Root};
use crate::run::note::{Note, StrayDataRoot};

pub(crate) use lock::lock;
pub(crate) use record::*;
use undo::*;
#[cfg(test)]
use undo_plan::FileNow;
pub(crate) use undo_plan::{HostNow, Inverse, Verdict, Why, undo_plan};

/// docker, as undo needs it. Implemented by the restart layer; tests use a fake.
pub(crate) trait Docker {
    /// docker.service is active/running, and whether its engine remaps (None: not asked or
    /// not answering).
    fn now(&self) -> (bool, Option<bool>);
    /// Stops what is left, clears the failed state, starts docker, and gates it for `userns`.
    fn bring_back(&mut self, userns: Option<bool>) -> Result<()>;
    /// The unit's result and its journal lines since the restart began ("" when none).
    fn diagnostics(&self) -> String;
    /// Starts `containers` again (those that no longer exist are skipped); returns the names
    /// of those started.
    fn start_containers(&mut self, containers: &[StoppedContainer]) -> Result<Vec<String>>;
    /// Stops docker.socket and docker.service.
    fn stop(&mut self) -> Result<()>;
}

/// What an undo did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Undone {
    /// Files put back (paths inside the root).
    pub(crate) restored: Vec<String>,
    /// Files left as found because someone changed them after the run wrote them.
    pub(crate) left: Vec<String>,
    /// The user the run created, kept.
    pub(crate) kept_user: Option<String>,
    /// docker was brought back.
    pub(crate) docker_back: bool,
    /// Containers the run had stopped, started again.
    pub(crate) started: Vec<String>,
    /// Data roots renamed back and shifted back (old names).
    pub(crate) moved_back: Vec<String>,
}

impl Undone {
    /// The message of a rollback that worked.
    fn message(&self, root: &Root) -> String {
        let mut s = if self.restored.is_empty() {
            "failed, rolled back: restored nothing (no file was written yet)".to_string()
        } else {
            format!(
                "failed, rolled back: restored byte for byte: {}",
                shown(root, &self.restored)
            )
        };
        s.push_str(&left_note(root, &self.left));
        if let Some(u) = &self.kept_user {
            s.push_str(&format!(
                "; user {u}, created by this run, was kept (harmless; remove it with userdel if unwanted)"
            ));
        }
        s.push_str(if self.docker_back {
            "; docker runs with the previous settings"
        } else {
            "; docker was not restarted"
        });
        if !self.moved_back.is_empty() {
            s.push_str(&format!(
                "; the data root was renamed back and its owners shifted back: {}",
                shown(root, &self.moved_back)
            ));
        }
        if !self.started.is_empty() {
            s.push_str(&format!(
                "; started again the container(s) it had stopped: {}",
                self.started.join(", ")
            ));
        }
        s
    }
}

/// The host as a run found it, before its first step.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Before {
    /// docker.service was active (false when services are not touched).
    pub(crate) docker_active: bool,
    /// The engine remapped (None: not running, not answering, or not asked).
    pub(crate) userns: Option<bool>,
    /// daemon.json set "userns-remap" (None: not known).
    pub(crate) remap_configured: Option<bool>,
}

/// A run in progress: its record, as last written to disk.
#[derive(Debug)]
pub(crate) struct Journal {
    record: Record,
}

fn write_record(root: &Root, record: &Record) -> Result<()> {
    let mut bytes = serde_json::to_vec_pretty(record).expect("record serializes");
    bytes.push(b'\n');
    root.write_atomic(RECORD, &bytes, Perms::root_owned(0o600))
        .context("cannot write the journal of this run")
}

impl Journal {
    /// Starts the journal of a run, durably, before any change. Refuses when an unfinished
    /// record is there (it must be recovered first).
    pub(crate) fn begin(root: &Root, action: Action, before: Before) -> Result<Journal> {
        root.ensure_dir(DIR, 0o700)?;
        if root.symlink_metadata(RECORD)?.is_some() {
            bail!(
                "{} is there already: an interrupted run must be rolled back first",
                root.path(RECORD).display()
            );
        }
        let since = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let record = Record {
            version: RECORD_VERSION,
            id: format!("{}-{}", since.as_secs(), std::process::id()),
            action,
            docker_was_active: before.docker_active,
            userns_before: before.userns,
            remap_configured_before: before.remap_configured,
            repair: None,
            steps: Vec::new(),
        };
        write_record(root, &record)?;
        Ok(Journal { record })
    }

    /// The unfinished journal left by an earlier run, if any.
    pub(crate) fn load(root: &Root) -> Result<Option<Journal>> {
        let Some(bytes) = root.read_optional(RECORD)? else {
            return Ok(None);
        };
        let record = parse_record(&bytes).with_context(|| {
            format!(
                "{} is not a valid journal; compare the files it protects with their copies in {DIR}, then remove it",
                root.path(RECORD).display()
            )
        })?;
        Ok(Some(Journal { record }))
    }

    /// The record.
    pub(crate) fn record(&self) -> &Record {
        &self.record
    }

    /// Records `step` durably; only then may it happen.
    fn push(&mut self, root: &Root, step: Step) -> Result<()> {
        self.record.steps.push(step);
        if let Err(e) = write_record(root, &self.record) {
            // Not on disk, so not to be undone from it either.
            self.record.steps.pop();
            return Err(e);
        }
        Ok(())
    }

    /// Writes `bytes` to `abs` (durably, with `perms`), journaled: the old content `before`
    /// (None: the file does not exist) is saved and recorded first, and what was written is
    /// recorded after.
    pub(crate) fn write_file(
        &mut self,
        root: &Root,
        abs: &str,
        before: Option<&[u8]>,
        bytes: &[u8],
        perms: Perms,
    ) -> Result<()> {
        let backup = format!("{DIR}/backup.{}", self.record.files().count());
        root.remove_file(&backup)?;
        if let Some(old) = before {
            save_old(root, abs, &backup, old)?;
        }
        self.push(
            root,
            Step::WriteFile(FileStep {
                path: abs.to_string(),
                existed: before.is_some(),
                mode: perms.mode,
                uid: perms.uid,
                gid: perms.gid,
                backup,
                written: None,
            }),
        )?;
        root.write_atomic(abs, bytes, perms)
            .with_context(|| format!("cannot write {}", root.path(abs).display()))?;
        if let Some(Step::WriteFile(f)) = self.record.steps.last_mut() {
            f.written = Some(Written::of(bytes));
        }
        write_record(root, &self.record)
    }

    /// Records that the remap user is about to be created.
    pub(crate) fn create_user(&mut self, root: &Root, name: &str) -> Result<()> {
        self.push(
            root,
            Step::CreateUser {
                name: name.to_string(),
            },
        )
    }

    /// Records that `containers` are about to be stopped through the engine API.
    pub(crate) fn stop_containers(
        &mut self,
        root: &Root,
        containers: Vec<StoppedContainer>,
    ) -> Result<()> {
        self.push(root, Step::StopContainers { containers })
    }

    /// Records, before any step, that this run moves the data root `from` to `to`: until that
    /// move and its shift are recorded complete, the run is not finished, whatever the host
    /// looks like.
    pub(crate) fn intend_move(&mut self, root: &Root, from: &str, to: &str) -> Result<()> {
        self.record.repair = Some(DataRootMove {
            from: from.to_string(),
            to: to.to_string(),
        });
        if let Err(e) = write_record(root, &self.record) {
            self.record.repair = None;
            return Err(e);
        }
        Ok(())
    }

    /// Records that the remapped data root `from` is about to be renamed to `to`.
    pub(crate) fn move_data_root(&mut self, root: &Root, from: &str, to: &str) -> Result<()> {
        self.push(
            root,
            Step::MoveDataRoot {
                from: from.to_string(),
                to: to.to_string(),
                done: false,
            },
        )
    }

    /// Records durably that the last move or shift step is complete (the rename happened, or
    /// every owner was shifted).
    pub(crate) fn step_done(&mut self, root: &Root) -> Result<()> {
        match self.record.steps.last_mut() {
            Some(Step::MoveDataRoot { done, .. } | Step::ShiftOwners { done, .. }) => *done = true,
            _ => bail!("no move or shift step to complete"),
        }
        write_record(root, &self.record)
    }

    /// Records that the owners below `dir` (renamed from `old_dir`) are about to be shifted.
    pub(crate) fn shift_owners(
        &mut self,
        root: &Root,
        dir: &str,
        old_dir: &str,
        shift: OwnerShift,
        log: &str,
    ) -> Result<()> {
        self.push(
            root,
            Step::ShiftOwners {
                dir: dir.to_string(),
                old_dir: old_dir.to_string(),
                shift,
                log: log.to_string(),
                done: false,
            },
        )
    }

    /// Records that images are about to be exported into the spool.
    pub(crate) fn spool_images(&mut self, root: &Root) -> Result<()> {
        self.push(root, Step::SpoolImages)
    }

    /// Records that docker is about to be restarted.
    pub(crate) fn restart_docker(&mut self, root: &Root) -> Result<()> {
        self.push(root, Step::RestartDocker)
    }

    /// Ends the run: removes the record, then the saved copies.
    pub(crate) fn finish(self, root: &Root) -> Result<()> {
        root.remove_file(RECORD)
            .context("cannot remove the journal")?;
        root.sync_dir(DIR)?;
        for f in self.record.files() {
            let _ = root.remove_file(&f.backup);
        }
        Ok(())
    }

    /// The host as undo sees it: each file's state, and docker's (`docker` None: services
    /// are not touched in this mode).
    fn host_now(&self, root: &Root, docker: Option<&dyn Docker>) -> Result<HostNow> {
        let mut files = Vec::new();
        for f in self.record.files() {
            files.push(file_now(root, f)?);
        }
        let (docker_running, engine_userns) = docker.map_or((false, None), |d| d.now());
        Ok(HostNow {
            files,
            docker_running,
            engine_userns,
        })
    }

    /// Carries out `undo`, going on past a failure (the first one is returned; what was done
    /// is in the logs and, for a rollback, the message of the next run's recovery).
    pub(crate) fn undo(
        &self,
        root: &Root,
        docker: Option<&mut dyn Docker>,
        undo: &[Inverse],
    ) -> Result<Undone> {
        let mut done = Undone::default();
        let mut first: Option<anyhow::Error> = None;
        let mut docker = docker;
        for inv in undo {
            let failed = first.is_some();
            let r = self.undo_one(root, docker.as_deref_mut(), inv, failed, &mut done);
            if let Err(e) = r {
                first.get_or_insert(e);
            }
        }
        match first {
            None => Ok(done),
            Some(e) => Err(e),
        }
    }

    /// One inverse step. `failed`: an earlier step failed, so steps that would build on it
    /// (docker back, containers started, data moved) are not taken and say why.
    fn undo_one<'d>(
        &self,
        root: &Root,
        docker: Option<&mut (dyn Docker + 'd)>,
        inv: &Inverse,
        failed: bool,
        done: &mut Undone,
    ) -> Result<()> {
        match inv {
            Inverse::RestoreFile(i) => {
                let Step::WriteFile(f) = &self.record.steps[*i] else {
                    unreachable!("undo_plan restores file steps only")
                };
                restore(root, f).map(|()| done.restored.push(f.path.clone()))
            }
            Inverse::LeaveFile(i) => {
                if let Step::WriteFile(f) = &self.record.steps[*i] {
                    tracing::warn!(
                        "{} changed after this run wrote it: left as it is",
                        root.path(&f.path).display()
                    );
                    done.left.push(f.path.clone());
                }
                Ok(())
            }
            Inverse::KeepUser(name) => {
                // Only said when useradd got as far as creating it.
                if account::lookup(root, name).is_ok_and(|a| a.is_some()) {
                    done.kept_user = Some(name.clone());
                }
                Ok(())
            }
            Inverse::BringBackDocker(userns) => match docker {
                // Never with files still wrong underneath: only after they were restored.
                Some(_) if failed => Err(anyhow::anyhow!(
                    "docker was not brought back, since restoring the files failed"
                )),
                Some(d) => d.bring_back(*userns).map(|()| done.docker_back = true),
                None => Err(anyhow::anyhow!(
                    "docker must be brought back, which this mode does not do"
                )),
            },
            Inverse::StopDocker => match docker {
                Some(d) => d.stop(),
                None => Err(anyhow::anyhow!(
                    "docker must be stopped to move its data root back, which this mode does not do"
                )),
            },
            Inverse::UnshiftOwners(i) => self.unshift_step(root, *i, failed),
            Inverse::MoveBack(i) => {
                let Step::MoveDataRoot { from, to, .. } = &self.record.steps[*i] else {
                    unreachable!("undo_plan moves back move steps only")
                };
                if failed {
                    Err(anyhow::anyhow!(
                        "{} was not renamed back to {}, since an earlier undo step failed",
                        root.path(to).display(),
                        root.path(from).display()
                    ))
                } else {
                    move_back(root, from, to).map(|()| done.moved_back.push(from.clone()))
                }
            }
            Inverse::RemoveSpool => {
                let spool = root.path(SPOOL);
                match root.remove_dir_all(SPOOL) {
                    Err(e) => {
                        Err(e.context(format!("cannot remove the image spool {}", spool.display())))
                    }
                    _ => Ok(()),
                }
            }
            Inverse::StartContainers(i) => self.start_again(docker, *i, failed, done),
        }
    }

    /// Starts again the containers step `i` stopped, unless an earlier step failed.
    fn start_again<'d>(
        &self,
        docker: Option<&mut (dyn Docker + 'd)>,
        i: usize,
        failed: bool,
        done: &mut Undone,
    ) -> Result<()> {
        let Step::StopContainers { containers } = &self.record.steps[i] else {
            unreachable!("undo_plan starts containers of stop steps only")
        };
        let names = || {
            containers
                .iter()
                .map(|c| c.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        match docker {
            Some(_) if failed => Err(anyhow::anyhow!(
                "the containers it had stopped were not started again ({}), since docker is not back as before: start them with `docker start NAME`",
                names()
            )),
            Some(d) => d
                .start_containers(containers)
                .map(|started| done.started.extend(started)),
            None => Err(anyhow::anyhow!(
                "the containers it had stopped ({}) must be started again, which this mode does not do",
                names()
            )),
        }
    }

    /// Shifts back the owners step `i` shifted, unless an earlier step failed.
    fn unshift_step(&self, root: &Root, i: usize, failed: bool) -> Result<()> {
        let Step::ShiftOwners {
            dir,
            old_dir,
            shift,
            log,
            ..
        } = &self.record.steps[i]
        else {
            unreachable!("undo_plan unshifts shift steps only")
        };
        if failed {
            Err(anyhow::anyhow!(
                "the owners below {} were not shifted back, since docker could not be stopped",
                root.path(dir).display()
            ))
        } else {
            unshift(root, dir, old_dir, shift, log)
        }
    }

    /// Rolls this run back after `cause`: decides the undo from the journal, carries it out,
    /// and says whether that worked (exit 5, record cleared) or not (exit 6, record kept for
    /// the next run). `docker` is None when services are not touched (`--root`,
    /// `--no-restart`).
    pub(crate) fn rollback(
        self,
        root: &Root,
        docker: Option<&mut dyn Docker>,
        cause: anyhow::Error,
    ) -> anyhow::Error {
        let diag = match (&docker, self.record.phase()) {
            (Some(d), Phase::Restarting) => d.diagnostics(),
            _ => String::new(),
        };
        let diag = if diag.trim().is_empty() {
            String::new()
        } else {
            format!("\n{}", diag.trim_end())
        };
        let result = if self.record.steps.is_empty() {
            // Nothing was recorded, so nothing happened: nothing to undo, docker included.
            Ok(Undone::default())
        } else {
            self.host_now(root, docker.as_deref()).and_then(|now| {
                match undo_plan(&self.record, &now, Why::Failed) {
                    Verdict::Undo(list) => self.undo(root, docker, &list),
                    Verdict::Finished => Ok(Undone::default()),
                }
            })
        };
        match result {
            Ok(done) if done == Undone::default() => {
                // Nothing had taken effect (nothing recorded, or useradd failed before creating
                // the user): no rollback to speak of.
                match self.finish(root) {
                    Ok(()) => cause,
                    Err(e) => cause.context(RollbackIncomplete(format!(
                        "failed, and the journal could not be removed ({e:#})"
                    ))),
                }
            }
            Ok(done) => {
                let msg = done.message(root);
                match self.finish(root) {
                    Ok(()) => cause.context(RolledBack(format!("{msg}{diag}"))),
                    Err(e) => cause.context(RollbackIncomplete(format!(
                        "{msg}, but the journal could not be removed ({e:#}){diag}"
                    ))),
                }
            }
            Err(e) => cause.context(RollbackIncomplete(format!(
                "failed, and the rollback did not complete ({e:#}); the saved files and the journal are kept in {DIR}: the next docker-userns run retries the rollback{diag}"
            ))),
        }
    }
}

/// Finishes or undoes a run that died with its journal on disk; returns a note when there
/// was one. With `docker` None (services not touched), a journal that needs docker brought
/// back is refused before anything is undone.
pub(crate) fn recover(root: &Root, docker: Option<&mut dyn Docker>) -> Result<Option<Note>> {
    let Some(journal) = Journal::load(root)? else {
        return Ok(None);
    };
    let _critical = crate::run::signals::Critical::enter();
    let r = &journal.record;
    let now = journal.host_now(root, docker.as_deref())?;
    let list = match undo_plan(r, &now, Why::Interrupted) {
        Verdict::Finished => {
            let note = Note::RecoveredFinished {
                action: r.action.name().to_string(),
                id: r.id.clone(),
            };
            journal.finish(root)?;
            return Ok(Some(note));
        }
        Verdict::Undo(list) => list,
    };
    if docker.is_none()
        && list.iter().any(|i| {
            matches!(
                i,
                Inverse::BringBackDocker(_) | Inverse::StartContainers(_) | Inverse::StopDocker
            )
        })
    {
        return Err(Conflict::new(format!(
            "an interrupted run ({} {}) touched docker and must be rolled back on the live host first: run the command once without --no-restart (or without --root)",
            r.action.name(),
            r.id
        ))
        .kind("interrupted-run-needs-live-host")
        .into());
    }
    tracing::warn!(
        "found an interrupted run ({}, {}, {}): rolling it back",
        r.id,
        r.action.name(),
        r.phase().doing()
    );
    let done = journal.undo(root, docker, &list).map_err(|e| {
        e.context(RollbackIncomplete(format!(
            "rolling back the interrupted run {} failed: its saved files and journal stay in {DIR}",
            r.id
        )))
    })?;
    let mut stray = None;
    // A docker started meanwhile with the run's files, before its rename, made an empty data
    // root under the new name; it is not the run's, so it is left, and said.
    if let Some(m) = &r.repair {
        let (from, to) = (root.path(&m.from), root.path(&m.to));
        if root.is_dir(&m.from) && root.exists(&m.to) {
            stray = Some(StrayDataRoot {
                made: to.display().to_string(),
                not_moved: from.display().to_string(),
            });
        }
    }
    let note = Note::RecoveredRolledBack {
        action: r.action.name().to_string(),
        id: r.id.clone(),
        doing: r.phase().doing().to_string(),
        left: done
            .left
            .iter()
            .map(|p| root.path(p).display().to_string())
            .collect(),
        stray,
    };
    journal.finish(root)?;
    Ok(Some(note))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::shift;
    use std::os::unix::fs::MetadataExt;
    use std::time::Duration;

    fn record(action: Action, was_active: bool, steps: Vec<Step>) -> Record {
        Record {
            version: RECORD_VERSION,
            id: "1-1".into(),
            action,
            docker_was_active: was_active,
            userns_before: Some(false),
            remap_configured_before: Some(false),
            repair: None,
            steps,
        }
    }

    fn file(path: &str, written: bool) -> Step {
        Step::WriteFile(FileStep {
            path: path.into(),
            existed: true,
            mode: 0o644,
            uid: 0,
            gid: 0,
            backup: format!("{DIR}/backup.x"),
            written: written.then(|| Written::of(b"new")),
        })
    }

    fn before(docker_active: bool) -> Before {
        Before {
            docker_active,
            userns: Some(false),
            remap_configured: Some(false),
        }
    }

    fn now(files: &[bool], running: bool, userns: Option<bool>) -> HostNow {
        HostNow {
            files: files
                .iter()
                .map(|w| {
                    if *w {
                        FileNow::AsWritten
                    } else {
                        FileNow::Changed
                    }
                })
                .collect(),
            docker_running: running,
            engine_userns: userns,
        }
    }

    #[test]
    fn undo_reverses_the_steps_and_keeps_the_user() {
        let r = record(
            Action::Enable,
            true,
            vec![
                Step::CreateUser {
                    name: "dockremap".into(),
                },
                file("/etc/subuid", true),
                file("/etc/subgid", false),
            ],
        );
        // Failed while writing, docker untouched and still running: files only.
        assert_eq!(
            undo_plan(&r, &now(&[true, true], true, None), Why::Failed),
            Verdict::Undo(vec![
                Inverse::RestoreFile(2),
                Inverse::RestoreFile(1),
                Inverse::KeepUser("dockremap".into()),
            ])
        );
        // A file someone changed after the run wrote it is left as found.
        assert_eq!(
            undo_plan(&r, &now(&[false, true], true, None), Why::Failed),
            Verdict::Undo(vec![
                Inverse::RestoreFile(2),
                Inverse::LeaveFile(1),
                Inverse::KeepUser("dockremap".into()),
            ])
        );
        // docker ran before and does not now: it is brought back too.
        assert_eq!(
            undo_plan(&r, &now(&[true, true], false, None), Why::Interrupted),
            Verdict::Undo(vec![
                Inverse::RestoreFile(2),
                Inverse::RestoreFile(1),
                Inverse::KeepUser("dockremap".into()),
                Inverse::BringBackDocker(Some(false)),
            ])
        );
    }

    #[test]
    fn a_restart_is_undone_by_bringing_docker_back_last() {
        let r = record(
            Action::Enable,
            true,
            vec![file("/etc/docker/daemon.json", true), Step::RestartDocker],
        );
        assert_eq!(r.phase(), Phase::Restarting);
        let v = undo_plan(&r, &now(&[true], true, Some(true)), Why::Failed);
        assert_eq!(
            v,
            Verdict::Undo(vec![
                Inverse::RestoreFile(0),
                Inverse::BringBackDocker(Some(false)),
            ])
        );
        // docker was not running before: nothing to bring back.
        let r = record(Action::Enable, false, r.steps);
        assert_eq!(
            undo_plan(&r, &now(&[true], false, None), Why::Failed),
            Verdict::Undo(vec![Inverse::RestoreFile(0)])
        );
    }

    #[test]
    fn an_interrupted_run_that_had_finished_is_finished_not_undone() {
        let steps = vec![file("/etc/docker/daemon.json", true), Step::RestartDocker];
        let r = record(Action::Enable, true, steps.clone());
        let done = now(&[true], true, Some(true));
        assert_eq!(undo_plan(&r, &done, Why::Interrupted), Verdict::Finished);
        // Never for a failure of this run: its cause is known.
        assert_ne!(undo_plan(&r, &done, Why::Failed), Verdict::Finished);
        // Not when the engine is in the other state, a file changed, docker is down, or the
        // restart was not reached.
        for other in [
            now(&[true], true, Some(false)),
            now(&[true], true, None),
            now(&[false], true, Some(true)),
            now(&[true], false, None),
        ] {
            assert_ne!(undo_plan(&r, &other, Why::Interrupted), Verdict::Finished);
        }
        let r = record(Action::Enable, true, vec![steps[0].clone()]);
        assert_ne!(undo_plan(&r, &done, Why::Interrupted), Verdict::Finished);
        let r = record(Action::Disable, true, steps);
        assert_ne!(undo_plan(&r, &done, Why::Interrupted), Verdict::Finished);
    }

    /// docker as undo sees it, counting what is asked of it.
    #[derive(Default)]
    struct FakeDocker {
        running: bool,
        userns: Option<bool>,
        brought_back: Vec<Option<bool>>,
        started: Vec<String>,
        fail: bool,
    }

    impl Docker for FakeDocker {
        fn now(&self) -> (bool, Option<bool>) {
            (self.running, self.userns)
        }
        fn bring_back(&mut self, userns: Option<bool>) -> Result<()> {
            self.brought_back.push(userns);
            if self.fail {
                bail!("docker did not come back");
            }
            self.running = true;
            Ok(())
        }
        fn diagnostics(&self) -> String {
            "docker.service: failed".into()
        }
        fn stop(&mut self) -> Result<()> {
            self.running = false;
            Ok(())
        }
        fn start_containers(&mut self, containers: &[StoppedContainer]) -> Result<Vec<String>> {
            assert!(self.running, "containers started before docker runs");
            let names: Vec<String> = containers.iter().map(|c| c.name.clone()).collect();
            self.started.extend(names.clone());
            Ok(names)
        }
    }

    fn tree() -> (tempfile::TempDir, Root) {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::new(dir.path()).unwrap();
        root.ensure_dir("/etc/docker", 0o755).unwrap();
        root.write_atomic("/etc/subuid", b"a:1:2\n# odd", Perms::root_owned(0o640))
            .unwrap();
        (dir, root)
    }

    /// The step kinds of a run, in order; the run stops after `steps` of them.
    fn run_until(root: &Root, steps: usize) -> Journal {
        let mut j = Journal::begin(root, Action::Enable, before(true)).unwrap();
        let all: [&dyn Fn(&mut Journal); 5] = [
            &|j| {
                j.create_user(root, "dockremap").unwrap();
                // What useradd would add.
                std::fs::write(
                    root.host_path("/etc/passwd"),
                    "dockremap:x:999:999::/nonexistent:/usr/sbin/nologin\n",
                )
                .unwrap();
            },
            &|j| {
                j.write_file(
                    root,
                    "/etc/subuid",
                    Some(b"a:1:2\n# odd"),
                    b"a:1:2\n# odd\ndockremap:100000:65536\n",
                    Perms::root_owned(0o640),
                )
                .unwrap()
            },
            &|j| {
                j.write_file(
                    root,
                    "/etc/docker/daemon.json",
                    None,
                    b"{}\n",
                    Perms::root_owned(0o644),
                )
                .unwrap()
            },
            &|j| {
                let web = StoppedContainer {
                    id: "c0ffee".into(),
                    name: "web".into(),
                    pid: 4242,
                    started: Some(7),
                };
                j.stop_containers(root, vec![web]).unwrap()
            },
            &|j| j.restart_docker(root).unwrap(),
        ];
        for step in &all[..steps] {
            step(&mut j);
        }
        j
    }

    fn assert_restored(root: &Root) {
        assert_eq!(
            std::fs::read(root.host_path("/etc/subuid")).unwrap(),
            b"a:1:2\n# odd"
        );
        assert_eq!(
            std::fs::metadata(root.host_path("/etc/subuid"))
                .unwrap()
                .mode()
                & 0o777,
            0o640
        );
        assert!(!root.host_path("/etc/docker/daemon.json").exists());
        assert!(Journal::load(root).unwrap().is_none(), "journal left");
        assert!(!root.host_path(&format!("{DIR}/backup.0")).exists());
    }

    #[test]
    fn a_failure_after_each_step_kind_and_a_crash_there_take_the_same_undo() {
        for steps in 0..=5 {
            // A failure: this run rolls back.
            let (_d, root) = tree();
            let j = run_until(&root, steps);
            // docker runs while files are written; the restart step may have left it down.
            let mut docker = FakeDocker {
                running: steps < 5,
                ..FakeDocker::default()
            };
            let stopped = steps >= 4;
            let err = j.rollback(&root, Some(&mut docker), anyhow::anyhow!("injected"));
            assert_restored(&root);
            let code = crate::exit::code_of(&err);
            let msg = format!("{err:#}");
            if steps == 0 {
                assert_eq!(code, crate::exit::Code::Failure, "{msg}");
            } else {
                assert_eq!(code, crate::exit::Code::RolledBack, "{msg}");
                assert!(msg.contains("user dockremap, created by this run, was kept"));
            }
            let restarted = steps == 5;
            assert_eq!(
                docker.brought_back,
                restarted
                    .then_some(Some(false))
                    .into_iter()
                    .collect::<Vec<_>>(),
                "{steps}"
            );
            assert_eq!(msg.contains("docker.service: failed"), restarted, "{msg}");
            // Containers the run stopped are started again, in the docker that runs as before.
            assert_eq!(docker.started, if stopped { vec!["web"] } else { vec![] });
            assert_eq!(
                msg.contains("started again the container(s) it had stopped: web"),
                stopped,
                "{msg}"
            );

            // A crash at the same point: the next run recovers through the same undo.
            let (_d, root) = tree();
            drop(run_until(&root, steps));
            let mut docker = FakeDocker {
                running: !restarted,
                ..FakeDocker::default()
            };
            let note = recover(&root, Some(&mut docker)).unwrap().unwrap();
            assert!(matches!(note, Note::RecoveredRolledBack { .. }), "{note:?}");
            assert_restored(&root);
            assert_eq!(docker.started, if stopped { vec!["web"] } else { vec![] });
            assert_eq!(
                docker.brought_back,
                restarted
                    .then_some(Some(false))
                    .into_iter()
                    .collect::<Vec<_>>(),
                "{steps}"
            );
        }
    }

    /// A run that moved a data root (`--repair`) up to its shift, then failed or died.
    fn moved(root: &Root) -> Journal {
        use std::os::unix::fs::PermissionsExt;
        let old = root.host_path("/var/lib/docker/100000.100000");
        std::fs::create_dir_all(old.join("d")).unwrap();
        std::fs::write(old.join("d/f"), b"x").unwrap();
        std::os::unix::fs::lchown(old.join("d"), Some(101000), Some(101000)).unwrap();
        std::os::unix::fs::lchown(old.join("d/f"), Some(100000), Some(0)).unwrap();
        std::fs::set_permissions(old.join("d/f"), std::fs::Permissions::from_mode(0o4755)).unwrap();
        let mut j = run_until(root, 2);
        let (from, to) = (
            "/var/lib/docker/100000.100000",
            "/var/lib/docker/165536.165536",
        );
        j.intend_move(root, from, to).unwrap();
        j.restart_docker(root).unwrap();
        j.move_data_root(root, from, to).unwrap();
        root.rename(from, to).unwrap();
        let s = OwnerShift {
            uid: shift::IdShift::of(100000, 165536, 65536).unwrap(),
            gid: shift::IdShift::of(100000, 165536, 65536).unwrap(),
        };
        let log = format!("{DIR}/shift.log");
        j.shift_owners(root, to, from, s, &log).unwrap();
        shift::shift_tree(
            &root.open_dir(to).unwrap(),
            &s.mapping().unwrap(),
            &root.host_path(&log),
            &mut |_| std::ops::ControlFlow::Continue(()),
        )
        .unwrap();
        j
    }

    fn assert_moved_back(root: &Root) {
        use std::os::unix::fs::MetadataExt;
        let old = root.host_path("/var/lib/docker/100000.100000");
        assert!(!root.host_path("/var/lib/docker/165536.165536").exists());
        let d = std::fs::symlink_metadata(old.join("d")).unwrap();
        assert_eq!((d.uid(), d.gid()), (101000, 101000));
        let f = std::fs::symlink_metadata(old.join("d/f")).unwrap();
        assert_eq!((f.uid(), f.gid(), f.mode() & 0o7777), (100000, 0, 0o4755));
    }

    #[test]
    fn a_moved_data_root_is_stopped_shifted_back_and_renamed_back() {
        let (_d0, root0) = tree();
        let r = moved(&root0).record.clone();
        let now = now(&[true], false, None);
        let Verdict::Undo(list) = undo_plan(&r, &now, Why::Failed) else {
            panic!("not undone")
        };
        assert_eq!(
            list[..3],
            [
                Inverse::StopDocker,
                Inverse::UnshiftOwners(4),
                Inverse::MoveBack(3)
            ]
        );
        assert_eq!(list.last(), Some(&Inverse::BringBackDocker(Some(false))));

        // A failure: rolled back, owners and name as before, docker stopped then brought back.
        let (_d, root) = tree();
        let j = moved(&root);
        let mut docker = FakeDocker {
            running: true,
            ..FakeDocker::default()
        };
        let err = j.rollback(&root, Some(&mut docker), anyhow::anyhow!("start refused"));
        let msg = format!("{err:#}");
        assert!(
            msg.contains("renamed back and its owners shifted back"),
            "{msg}"
        );
        assert_moved_back(&root);
        assert_restored(&root);
        assert_eq!(docker.brought_back, vec![Some(false)]);

        // A crash at the same point: the next run's recovery does the same.
        let (_d, root) = tree();
        drop(moved(&root));
        let mut docker = FakeDocker::default();
        recover(&root, Some(&mut docker)).unwrap().unwrap();
        assert_moved_back(&root);
        assert_restored(&root);
        // Without docker (--no-restart, --root) such a record is refused, nothing undone.
        let (_d, root) = tree();
        drop(moved(&root));
        let err = recover(&root, None).unwrap_err();
        assert!(format!("{err:#}").contains("touched docker"), "{err:#}");
        assert!(root.host_path("/var/lib/docker/165536.165536").exists());
    }

    /// A `--repair` record: files written, docker being restarted, the move intended; then the
    /// given move and shift steps.
    fn repair_record(moves: Vec<Step>) -> Record {
        let mut r = record(
            Action::Enable,
            true,
            vec![file("/etc/subuid", true), Step::RestartDocker],
        );
        r.repair = Some(DataRootMove {
            from: "/var/lib/docker/100000.100000".into(),
            to: "/var/lib/docker/165536.165536".into(),
        });
        r.steps.extend(moves);
        r
    }

    fn move_step(done: bool) -> Step {
        Step::MoveDataRoot {
            from: "/var/lib/docker/100000.100000".into(),
            to: "/var/lib/docker/165536.165536".into(),
            done,
        }
    }

    fn shift_step(done: bool) -> Step {
        let s = shift::IdShift::of(100000, 165536, 65536).unwrap();
        Step::ShiftOwners {
            dir: "/var/lib/docker/165536.165536".into(),
            old_dir: "/var/lib/docker/100000.100000".into(),
            shift: OwnerShift { uid: s, gid: s },
            log: format!("{DIR}/shift.log"),
            done,
        }
    }

    #[test]
    fn a_repair_is_finished_only_when_its_move_and_shift_are_recorded_complete() {
        // Whoever started docker meanwhile: files as written, docker running, engine remapped.
        let started = now(&[true], true, Some(true));
        // Killed while docker stopped (the move not yet recorded): not finished; the files
        // are restored and docker brought back (which stops the engine started meanwhile).
        assert_eq!(
            undo_plan(&repair_record(vec![]), &started, Why::Interrupted),
            Verdict::Undo(vec![
                Inverse::RestoreFile(0),
                Inverse::BringBackDocker(Some(false)),
            ])
        );
        // Killed before the rename, or before it was recorded done.
        assert_eq!(
            undo_plan(
                &repair_record(vec![move_step(false)]),
                &started,
                Why::Interrupted
            ),
            Verdict::Undo(vec![
                Inverse::StopDocker,
                Inverse::MoveBack(2),
                Inverse::RestoreFile(0),
                Inverse::BringBackDocker(Some(false)),
            ])
        );
        // Renamed, killed before or during the shift.
        let undone = Verdict::Undo(vec![
            Inverse::StopDocker,
            Inverse::UnshiftOwners(3),
            Inverse::MoveBack(2),
            Inverse::RestoreFile(0),
            Inverse::BringBackDocker(Some(false)),
        ]);
        for moved in [false, true] {
            let r = repair_record(vec![move_step(moved), shift_step(false)]);
            assert_eq!(undo_plan(&r, &started, Why::Interrupted), undone);
        }
        // The shift recorded complete, the move not (a record edited by hand): still undone.
        let r = repair_record(vec![move_step(false), shift_step(true)]);
        assert_eq!(undo_plan(&r, &started, Why::Interrupted), undone);
        // Renamed and shifted, killed before the gate: docker started meanwhile runs the
        // repaired host as intended.
        let r = repair_record(vec![move_step(true), shift_step(true)]);
        assert_eq!(undo_plan(&r, &started, Why::Interrupted), Verdict::Finished);
        // ... but not when docker does not run, nor when it runs without remapping.
        for other in [now(&[true], false, None), now(&[true], true, Some(false))] {
            assert!(matches!(
                undo_plan(&r, &other, Why::Interrupted),
                Verdict::Undo(ref l) if l[..3] == [Inverse::StopDocker, Inverse::UnshiftOwners(3), Inverse::MoveBack(2)]
            ));
        }
        // A run that moves no data root is finished as before.
        let plain = record(
            Action::Enable,
            true,
            vec![file("/etc/subuid", true), Step::RestartDocker],
        );
        assert_eq!(
            undo_plan(&plain, &started, Why::Interrupted),
            Verdict::Finished
        );
    }

    #[test]
    fn a_record_of_a_later_format_is_refused_before_its_steps_are_read() {
        let later = br#"{"version":3,"id":"1-1","action":"enable","steps":[{"step":"teleport"}]}"#;
        let e = parse_record(later).unwrap_err().to_string();
        assert!(
            e.contains("format 3, written by a newer docker-userns"),
            "{e}"
        );
        let (_d, root) = tree();
        root.ensure_dir(DIR, 0o700).unwrap();
        root.write_atomic(RECORD, later, Perms::root_owned(0o600))
            .unwrap();
        let e = format!("{:#}", Journal::load(&root).unwrap_err());
        assert!(
            e.contains("is not a valid journal") && e.contains("format 3"),
            "{e}"
        );
        // What this version writes says its format.
        let r = record(Action::Enable, true, Vec::new());
        let text = serde_json::to_string(&r).unwrap();
        assert!(text.starts_with(r#"{"version":2,"#), "{text}");
        assert_eq!(parse_record(text.as_bytes()).unwrap(), r);
    }

    #[test]
    fn a_record_of_an_earlier_version_reads_its_moves_as_not_complete() {
        let old = r#"{"id":"1-1","action":"enable","docker_was_active":true,"userns_before":false,
            "steps":[{"step":"restart-docker"},
                     {"step":"move-data-root","from":"/a","to":"/b"}]}"#;
        let r = parse_record(old.as_bytes()).unwrap();
        assert_eq!((r.version, r.repair.clone()), (1, None));
        assert!(!r.moves_complete());
        assert!(matches!(
            undo_plan(&r, &now(&[], true, Some(true)), Why::Interrupted),
            Verdict::Undo(_)
        ));
    }

    #[test]
    fn a_repair_killed_mid_shift_then_docker_started_is_undone_not_cleared() {
        // The walk of `moved` ran to its end, but its completion was never recorded: as after a
        // kill at the last inode. docker was started behind the run's back, remapped.
        let (_d, root) = tree();
        drop(moved(&root));
        let mut docker = FakeDocker {
            running: true,
            userns: Some(true),
            ..FakeDocker::default()
        };
        let note = recover(&root, Some(&mut docker)).unwrap().unwrap();
        assert!(matches!(note, Note::RecoveredRolledBack { .. }), "{note:?}");
        assert!(!matches!(note, Note::RecoveredFinished { .. }), "{note:?}");
        assert_moved_back(&root);
        assert_restored(&root);
        assert_eq!(docker.brought_back, vec![Some(false)]);

        // The same with the shift recorded complete: the repair stands, the record is cleared.
        let (_d, root) = tree();
        let mut j = moved(&root);
        j.step_done(&root).unwrap();
        let mut docker = FakeDocker {
            running: true,
            userns: Some(true),
            ..FakeDocker::default()
        };
        // moved() does not complete its move step: complete it too, as the run does.
        if let Some(Step::MoveDataRoot { done, .. }) = j.record.steps.get_mut(3) {
            *done = true;
        }
        write_record(&root, &j.record).unwrap();
        drop(j);
        let note = recover(&root, Some(&mut docker)).unwrap().unwrap();
        assert!(matches!(note, Note::RecoveredFinished { .. }), "{note:?}");
        assert!(root.host_path("/var/lib/docker/165536.165536").is_dir());
        assert!(docker.brought_back.is_empty());
    }

    #[test]
    fn a_user_that_useradd_did_not_create_is_not_said_to_be_kept() {
        let (_d, root) = tree();
        let mut j = Journal::begin(&root, Action::Enable, Before::default()).unwrap();
        j.create_user(&root, "dockremap").unwrap();
        let err = j.rollback(&root, None, anyhow::anyhow!("useradd failed"));
        let msg = format!("{err:#}");
        // Nothing took effect: the error stays what it was (exit 1), no rollback claimed.
        assert_eq!(msg, "useradd failed");
        assert_eq!(crate::exit::code_of(&err), crate::exit::Code::Failure);
        assert!(Journal::load(&root).unwrap().is_none());
    }

    #[test]
    fn an_undo_that_fails_keeps_the_journal_for_the_next_run() {
        let (_d, root) = tree();
        let j = run_until(&root, 5);
        let mut docker = FakeDocker {
            fail: true,
            ..FakeDocker::default()
        };
        let err = j.rollback(&root, Some(&mut docker), anyhow::anyhow!("injected"));
        assert_eq!(
            crate::exit::code_of(&err),
            crate::exit::Code::RollbackIncomplete
        );
        // The files were put back all the same; the journal stays for a retry.
        assert_eq!(
            std::fs::read(root.host_path("/etc/subuid")).unwrap(),
            b"a:1:2\n# odd"
        );
        assert!(Journal::load(&root).unwrap().is_some());
        // Without docker (--root, --no-restart) that journal is refused, nothing undone twice.
        let err = recover(&root, None).unwrap_err();
        assert!(format!("{err:#}").contains("touched docker"), "{err:#}");
        let mut docker = FakeDocker::default();
        let note = recover(&root, Some(&mut docker)).unwrap().unwrap();
        // The files the first attempt had restored are not "changed by someone else".
        assert!(
            matches!(&note, Note::RecoveredRolledBack { left, .. } if left.is_empty()),
            "{note:?}"
        );
        assert_restored(&root);
    }

    #[test]
    fn an_engine_started_behind_the_runs_back_with_half_written_files_is_brought_back() {
        let r = record(
            Action::Enable,
            true,
            vec![file("/etc/docker/daemon.json", true)],
        );
        // Crashed while writing; a reboot then started docker remapped from those files.
        assert_eq!(
            undo_plan(&r, &now(&[true], true, Some(true)), Why::Interrupted),
            Verdict::Undo(vec![
                Inverse::RestoreFile(0),
                Inverse::BringBackDocker(Some(false)),
            ])
        );
        // Engine as before: nothing to do for docker.
        assert_eq!(
            undo_plan(&r, &now(&[true], true, Some(false)), Why::Interrupted),
            Verdict::Undo(vec![Inverse::RestoreFile(0)])
        );
        // End to end with a fake docker that runs remapped.
        let (_d, root) = tree();
        drop(run_until(&root, 3));
        let mut docker = FakeDocker {
            running: true,
            userns: Some(true),
            ..FakeDocker::default()
        };
        recover(&root, Some(&mut docker)).unwrap().unwrap();
        assert_restored(&root);
        assert_eq!(docker.brought_back, vec![Some(false)]);
    }

    #[test]
    fn stopped_containers_start_last_once_docker_runs_as_before() {
        let stop = Step::StopContainers {
            containers: vec![StoppedContainer {
                id: "c0ffee".into(),
                name: "web".into(),
                pid: 0,
                started: None,
            }],
        };
        let r = record(
            Action::Enable,
            true,
            vec![
                file("/etc/docker/daemon.json", true),
                stop,
                Step::RestartDocker,
            ],
        );
        assert_eq!(r.phase(), Phase::Restarting);
        assert_eq!(
            undo_plan(&r, &now(&[true], false, None), Why::Failed),
            Verdict::Undo(vec![
                Inverse::RestoreFile(0),
                Inverse::BringBackDocker(Some(false)),
                Inverse::StartContainers(1),
            ])
        );
        // Stopped, not yet restarting: docker still runs as before; the containers start.
        let r = record(Action::Enable, true, r.steps[..2].to_vec());
        assert_eq!(r.phase(), Phase::StoppingContainers);
        assert_eq!(
            undo_plan(&r, &now(&[true], true, Some(false)), Why::Failed),
            Verdict::Undo(vec![Inverse::RestoreFile(0), Inverse::StartContainers(1)])
        );
    }

    #[test]
    fn a_file_already_as_before_is_restored_not_left() {
        let r = record(Action::Enable, false, vec![file("/etc/subuid", true)]);
        let now = HostNow {
            files: vec![FileNow::AsBefore],
            docker_running: false,
            engine_userns: None,
        };
        assert_eq!(
            undo_plan(&r, &now, Why::Interrupted),
            Verdict::Undo(vec![Inverse::RestoreFile(0)])
        );
    }

    #[test]
    fn a_file_changed_after_the_run_wrote_it_is_left_as_found() {
        let (_d, root) = tree();
        let j = run_until(&root, 2);
        root.write_atomic(
            "/etc/subuid",
            b"useradd was here\n",
            Perms::root_owned(0o640),
        )
        .unwrap();
        let mut docker = FakeDocker {
            running: true,
            ..FakeDocker::default()
        };
        let err = j.rollback(&root, Some(&mut docker), anyhow::anyhow!("injected"));
        let msg = format!("{err:#}");
        assert!(
            msg.contains("changed after this run wrote it and was left as found"),
            "{msg}"
        );
        assert_eq!(
            std::fs::read(root.host_path("/etc/subuid")).unwrap(),
            b"useradd was here\n"
        );
    }

    #[test]
    fn the_fingerprint_is_fnv1a_64_and_tells_changes_apart() {
        // Published FNV-1a test vectors: records stay readable by later versions.
        assert_eq!(fingerprint(b""), "cbf29ce484222325");
        assert_eq!(fingerprint(b"a"), "af63dc4c8601ec8c");
        assert_eq!(fingerprint(b"foobar"), "85944171f73967e8");
        let w = Written::of(b"a:1:2\n");
        assert!(w.matches(Some(b"a:1:2\n")));
        assert!(!w.matches(Some(b"a:1:3\n")));
        assert!(!w.matches(None));
    }

    #[test]
    fn the_run_lock_excludes_a_second_holder_in_another_process() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::new(dir.path()).unwrap();
        let _held = lock(&root, Duration::from_millis(10)).unwrap();
        // flock locks belong to the open file description: a second open conflicts.
        let err = lock(&root, Duration::from_millis(300)).unwrap_err();
        assert!(
            err.to_string().contains("another docker-userns run"),
            "{err}"
        );
    }
}
