//! What must be undone, decided without I/O from a record and the host as it is now.

use super::record::*;

/// Why undo runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Why {
    /// A step of this run failed: undo what it did.
    Failed,
    /// An earlier run died with its record on disk: finish or undo it.
    Interrupted,
}

/// A file the run wrote, as undo finds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FileNow {
    /// It holds what the run wrote (or the write was not recorded as done and the file is not
    /// as before either).
    AsWritten,
    /// It holds what it held before the run (an earlier undo got this far, or the write never
    /// happened).
    AsBefore,
    /// Someone else changed it since the run wrote it.
    Changed,
}

/// The host as it is now, as far as undo is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HostNow {
    /// Each file step's file, in order.
    pub(crate) files: Vec<FileNow>,
    /// docker.service is active/running.
    pub(crate) docker_running: bool,
    /// Whether the engine remaps now (None: not asked or not answering).
    pub(crate) engine_userns: Option<bool>,
}

/// One undo action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Inverse {
    /// Put the file of this step back (by its index in the record's steps).
    RestoreFile(usize),
    /// The file of this step changed after the run wrote it: leave it as found.
    LeaveFile(usize),
    /// The user the run created stays.
    KeepUser(String),
    /// Bring docker back with the old files, gated for this remapping state.
    BringBackDocker(Option<bool>),
    /// Start again the containers this step stopped (after docker runs as before).
    StartContainers(usize),
    /// Stop docker before a data root is moved back (it may run on the moved one).
    StopDocker,
    /// Shift the owners of this step's tree back.
    UnshiftOwners(usize),
    /// Rename this step's data root back.
    MoveBack(usize),
    /// Remove the image spool.
    RemoveSpool,
}

/// What to do with a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// The interrupted run had done everything it set out to do: clear the record.
    Finished,
    /// Carry out these, in order.
    Undo(Vec<Inverse>),
}

/// Decides, without I/O, what must happen to `record` given the host as it is `now`.
///
/// Files are put back in the reverse order they were written, except files changed since;
/// a created user is kept; docker is brought back when the run touched it, or when it ran
/// before and does not now. An interrupted run whose restart had already succeeded (files as
/// written, docker running, the engine in the wanted state, and every data root move it
/// intended recorded complete) is finished, not undone.
pub(crate) fn undo_plan(record: &Record, now: &HostNow, why: Why) -> Verdict {
    let restarted = record.phase() == Phase::Restarting;
    let all_written = record.files().all(|f| f.written.is_some());
    if why == Why::Interrupted
        && restarted
        && all_written
        && record.moves_complete()
        && now.files.iter().all(|f| *f == FileNow::AsWritten)
        && now.docker_running
        && now.engine_userns == Some(record.action.wants_userns())
    {
        return Verdict::Finished;
    }
    let mut undo = Vec::new();
    let mut file_no = record.files().count();
    for (i, step) in record.steps.iter().enumerate().rev() {
        match step {
            Step::WriteFile(_) => {
                file_no -= 1;
                // Restoring a file that is already as before writes nothing.
                match now.files.get(file_no) {
                    Some(FileNow::Changed) => undo.push(Inverse::LeaveFile(i)),
                    _ => undo.push(Inverse::RestoreFile(i)),
                }
            }
            Step::CreateUser { name } => undo.push(Inverse::KeepUser(name.clone())),
            Step::ShiftOwners { .. } => undo.push(Inverse::UnshiftOwners(i)),
            Step::MoveDataRoot { .. } => undo.push(Inverse::MoveBack(i)),
            Step::SpoolImages => undo.push(Inverse::RemoveSpool),
            Step::StopContainers { .. } | Step::RestartDocker => {}
        }
    }
    // A data root is only ever moved or shifted with docker stopped, and so back.
    if undo
        .iter()
        .any(|u| matches!(u, Inverse::UnshiftOwners(_) | Inverse::MoveBack(_)))
    {
        undo.insert(0, Inverse::StopDocker);
    }
    // Once the files are as before, the engine must be too: whatever started it meanwhile (a
    // reboot, an admin) may have started it with the half-written files.
    let wanted = record.userns_before.or(record.remap_configured_before);
    let engine_disagrees = now.docker_running
        && matches!((now.engine_userns, wanted), (Some(is), Some(want)) if is != want);
    if (record.docker_was_active && (restarted || !now.docker_running)) || engine_disagrees {
        undo.push(Inverse::BringBackDocker(record.userns_before));
    }
    // Containers last: they start in the docker that runs as before.
    for (i, step) in record.steps.iter().enumerate() {
        if matches!(step, Step::StopContainers { .. }) {
            undo.push(Inverse::StartContainers(i));
        }
    }
    Verdict::Undo(undo)
}
