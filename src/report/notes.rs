//! The words of the typed notes ([`Note`]): every sentence a run says beside its result.

use crate::run::note::{Note, StrayDataRoot};

/// The sentence of a note (the `notes` strings of every document, and the text's notes).
pub fn note_text(n: &Note) -> String {
    match n {
        Note::DockerNotInstalled => "docker.service was not found: docker does not seem to be installed; the files are prepared for when it is".into(),
        Note::DockerMasked => "docker.service is masked: docker will not start until it is unmasked".into(),
        Note::NoRemapGroup { user, value } => format!(
            "no group is named {user}: dockerd rejects \"userns-remap\": {value:?} without one (it looks the group of the user's name up: \"Error during gid lookup for {user:?}\"), so docker would not start with it; create it first: `groupadd --system {user}`"
        ),
        Note::RepairNothing { user } => format!(
            "--repair: {user}'s ranges overlap no one's and cover no account's ids: nothing to repair"
        ),
        Note::FewIds => "fewer than 65536 ids: images with files owned by high ids (e.g. nobody, 65534) will fail to unpack".into(),
        Note::OrphanRangeLine { path, line, uid, user } => format!(
            "{path}:{line} is owned by uid {uid}, which no account has and which useradd may give the new user {user}: then that range is {user}'s, `enable` keeps it instead of adding the planned line, and the files differ from this plan (`enable` reports what it wrote)"
        ),
        Note::RepairRenamesLine { file, line, owner, user } => format!(
            "--repair: line {line} of {file} is {owner}'s; dockerd reads it by the user's name only: it becomes {user}'s, with the same range"
        ),
        Note::DisableLeavesData => "images, containers and volumes created while remapping was on stay in the remapped data root and are not visible after this; switching back and forth is best avoided".into(),
        Note::DaemonJsonSymlink { path, target } => format!(
            "{path} is a symbolic link (to {target}): read through the link; enable and disable refuse to edit it (an atomic rewrite would replace the link with a file): edit the target yourself or replace the link with a regular file"
        ),
        Note::DaemonJsonTargetInvalid { path, error } => format!("{path}: {error}"),
        Note::DaemonJsonTargetMissing { path } => {
            format!("the link's target {path} does not exist: docker reads no daemon.json")
        }
        Note::DaemonJsonTargetUnreadable { error } => {
            format!("cannot read the link's target: {error}")
        }
        _ => engine_note_text(n),
    }
}

fn engine_note_text(n: &Note) -> String {
    match n {
        Note::EngineSilent { socket } => format!(
            "docker.service runs but its engine did not answer on {socket} (no access?): whether it remaps now is unknown, so only file changes decide the restart"
        ),
        Note::EngineUnlearned { error } => format!("the engine did not say how it runs: {error}"),
        Note::NoImpactReport { error } => format!("no impact report: {error}"),
        Note::DockerStateUnknown { error } => format!(
            "docker's running state is unknown ({error}); the plan covers the files only"
        ),
        Note::DockerLeftStopped { socket_activation, socket } => {
            let mut s = "docker.service is not running and is left stopped: the change applies at its next start".to_string();
            if *socket_activation {
                s.push_str(&format!(
                    "; {} listens on {}, so the first connection to it starts docker with the new configuration (no health gate runs then: check it with `docker-userns verify`)",
                    crate::host::setup::SOCKET_UNIT,
                    socket.as_deref().unwrap_or("its socket")
                ));
            }
            s
        }
        Note::NotRestarted { live_host: true } => {
            "docker was not restarted (--no-restart): the change applies at its next start".into()
        }
        Note::NotRestarted { live_host: false } => {
            "--root: services are never touched; docker there applies the change at its next start".into()
        }
        Note::ValidateAccepted => "dockerd --validate accepted the new configuration".into(),
        Note::ValidateUnsupported => "this dockerd has no --validate (before 23.0): the health gate after the restart decides".into(),
        Note::ValidateSkipped { why } => why.clone(),
        Note::LiveRestoreStopped { containers } => format!(
            "live-restore is on, so stopping docker would have left the running containers alive but out of sight of the daemon that came back: {} container(s) were stopped through the engine API first ({}), and none of their processes is alive after the switch",
            containers.len(),
            containers.join(", ")
        ),
        Note::RecoveredFinished { action, id } => format!(
            "an interrupted run ({action} {id}) had already restarted docker as intended; its record was cleared"
        ),
        Note::RecoveredRolledBack { action, id, doing, left, stray } => {
            let mut s = format!("an interrupted run ({action} {id}, stopped while {doing}) was rolled back first");
            if !left.is_empty() {
                s.push_str(&format!(
                    "; {} changed after this run wrote it and was left as found (compare it with its saved copy)",
                    left.join(", ")
                ));
            }
            if let Some(StrayDataRoot { made, not_moved }) = stray {
                s.push_str(&format!(
                    "; {made} was made by a docker started meanwhile with the interrupted repair's files (the data root {not_moved} was not moved): it was left as found; remove it (once you have checked it holds nothing you need) before running --repair again"
                ));
            }
            s
        }
        _ => repair_note_text(n),
    }
}

fn repair_note_text(n: &Note) -> String {
    match n {
        Note::RepairNoDataRoot { .. } | Note::RepairWill { .. } => n
            .repair_preview_words()
            .expect("a repair preview note has its words"),
        Note::RepairDone {
            from,
            to,
            shifted,
            inodes,
            uid_from,
            gid_from,
            uid_to,
            gid_to,
            outside,
            setid_restored,
            caps_restored,
            acl_entries_shifted,
            other_filesystems,
        } => {
            let mut s = format!(
                "--repair: renamed {from} to {to} and shifted the owners of {shifted} of its {inodes} inodes from uids {uid_from}.. / gids {gid_from}.. to {uid_to}.. / {gid_to}.."
            );
            if *outside > 0 {
                s.push_str(&format!(
                    "; {outside} inodes owned outside the old range (root's, for one) were left as they were"
                ));
            }
            if caps_restored + setid_restored + acl_entries_shifted > 0 {
                s.push_str(&format!(
                    "; kept {setid_restored} setuid/setgid bits and {caps_restored} file capabilities, shifted {acl_entries_shifted} ACL entries"
                ));
            }
            if !other_filesystems.is_empty() {
                s.push_str(&format!(
                    "; other filesystems mounted below were not entered: {}",
                    other_filesystems.join(", ")
                ));
            }
            s
        }
        Note::RepairHeldOutside { .. } => held_outside_text(n),
        Note::RepairVolumesUnlisted { error } => format!(
            "--repair: cannot list the volumes ({error}); volumes with bind options keep their owners"
        ),
        Note::RepairContainersUnlisted { error } => format!(
            "--repair: cannot list the containers ({error}); host directories bind-mounted into them keep their owners"
        ),
        _ => carry_note_text(n),
    }
}

/// `repair-held-outside`: the directories, and what to do before or after the repair.
fn held_outside_text(n: &Note) -> String {
    let Note::RepairHeldOutside {
        uid_from,
        gid_from,
        dirs,
        planning,
        uid_delta,
        gid_delta,
    } = n
    else {
        unreachable!("called for repair-held-outside only")
    };
    let listed: Vec<String> = dirs
        .iter()
        .map(|d| {
            if d.inodes > 0 {
                format!("{} ({}; {} inode(s))", d.dir, d.by.join(", "), d.inodes)
            } else {
                format!("{} ({})", d.dir, d.by.join(", "))
            }
        })
        .collect();
    let what = if *planning {
        "Before --repair, run `docker-userns shift DIR --to host` for each (stop the containers using it first); after it, `docker-userns shift DIR --to remapped` gives them to the new range".to_string()
    } else {
        format!(
            "No `docker-userns shift` command moves owners from the old range to the new one once the range has moved (it shifts between host ids and the current range only): give each such owner its new id by hand (old id + {uid_delta} for uids, + {gid_delta} for gids). Next time, run `docker-userns shift DIR --to host` for each before --repair and `docker-userns shift DIR --to remapped` after it"
        )
    };
    format!(
        "--repair moves docker's data root only: these host directories, used by the engine from outside it, keep owners of the old range (uids {uid_from}.. / gids {gid_from}..), which the remapped containers can no longer write after the move: {}. {what}",
        listed.join("; ")
    )
}

fn carry_note_text(n: &Note) -> String {
    match n {
        Note::CarryRepairKeeps => "--carry: nothing to carry, --repair keeps the images, containers and volumes: they stay in the remapped data root it moves to the new range".into(),
        Note::CarryImagesNotSwitched => "--carry images needs docker switched on the live host (not --root or --no-restart): nothing was carried".into(),
        Note::CarryNothingWaiting => "--carry: docker was not switched and no earlier carry is waiting: nothing to carry".into(),
        Note::CarryPendingNotRecorded { error } => {
            format!("cannot record the volumes to carry for a later run: {error}")
        }
        Note::CarryWaiting { images, spool, volumes, pending } => format!(
            "a --carry did not complete: {images} image(s) wait in {spool} and {volumes} volume(s) are recorded in {pending}; the switch itself stands: run the same `enable --carry …` (or `disable --carry …`) command again to carry them"
        ),
        _ => status_note_text(n),
    }
}

fn status_note_text(n: &Note) -> String {
    match n {
        Note::UsernsDisabled => "user namespaces are disabled in the kernel (user.max_user_namespaces = 0): remapping cannot work".into(),
        Note::RootNotInspected => "--root: services and the engine are not inspected".into(),
        Note::Unfinished => "an interrupted run left its record in /var/lib/docker-userns: run `docker-userns enable` or `disable` as root to roll it back".into(),
        Note::ServiceNotLoaded { load_state } => format!("docker.service is {load_state} to systemd"),
        Note::SystemdUnreachable { error } => format!("systemd: {error}"),
        Note::EngineNotAskedDown { state, socket_activation, socket } => format!(
            "the engine was not asked: docker.service is {state}{}",
            if *socket_activation {
                format!(
                    ", and a connection to {} would start it ({} listens there); status changes nothing, services included",
                    socket.as_deref().unwrap_or("its socket"),
                    crate::host::setup::SOCKET_UNIT
                )
            } else {
                String::new()
            }
        ),
        Note::EngineNotAsked { why } => format!("the engine was not asked: {why}"),
        Note::FailureUnread { unit, active_state, sub_state, why } => format!(
            "why {unit} is {active_state}/{sub_state} was not read from the journal: {why}"
        ),
        Note::EngineError { error } => error.clone(),
        Note::ImageStoreSwitch { remapping: true, before, after, why } => format!(
            "the image store is {before} while remapping is on; `disable` switches docker back to {after} ({why}): the images there are out of sight now, reachable after switching back, and what this store holds is carried there only with `--carry images`"
        ),
        Note::ImageStoreSwitch { remapping: false, before, after, why } => format!(
            "the image store is {before}; `enable` switches docker to {after} ({why}): the images here are then reachable only with `--carry images` or after switching back"
        ),
        Note::ContainersUnlisted { error } => format!("cannot list containers: {error}"),
        Note::ConfigDisagrees => "daemon.json and the running engine disagree: docker has not been restarted since daemon.json changed".into(),
        Note::SwarmMember { state, manager } => format!(
            "this node is in a swarm (Swarm.LocalNodeState {state}{}): enable and disable refuse to switch remapping here, since the switch moves the swarm state with the data root (moby#39722); leave the swarm first",
            if *manager { ", a manager" } else { "" }
        ),
        Note::VerifySwarmMember { state } => format!(
            "this node is in a swarm (Swarm.LocalNodeState {state}): enable and disable refuse to switch remapping while it is (moby#39722)"
        ),
        Note::SwarmLeftBehind { state_file } => format!(
            "{state_file} is swarm state from before remapping was turned on: this node left that swarm with the switch (moby#39722); join it again, or turn remapping off to get it back"
        ),
        Note::VerifyNoImage { looked_for } => format!(
            "no local image to run checks with (looked for {}): pass --image IMG with a local image that has id, sleep and touch; only /info was checked",
            looked_for.join(", ")
        ),
        _ => unreachable!("every kind is rendered above: {n:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::note::HeldDir;

    fn s(x: &str) -> String {
        x.to_string()
    }

    /// Every kind, each named once: adding a kind without a row here does not compile.
    fn row_of(n: &Note) -> usize {
        match n {
            Note::DockerNotInstalled => 0,
            Note::DockerMasked => 1,
            Note::NoRemapGroup { .. } => 2,
            Note::RepairNothing { .. } => 3,
            Note::FewIds => 4,
            Note::OrphanRangeLine { .. } => 5,
            Note::RepairRenamesLine { .. } => 6,
            Note::DisableLeavesData => 7,
            Note::DaemonJsonSymlink { .. } => 8,
            Note::DaemonJsonTargetInvalid { .. } => 9,
            Note::DaemonJsonTargetMissing { .. } => 10,
            Note::DaemonJsonTargetUnreadable { .. } => 11,
            Note::EngineSilent { .. } => 12,
            Note::EngineUnlearned { .. } => 13,
            Note::NoImpactReport { .. } => 14,
            Note::DockerStateUnknown { .. } => 15,
            Note::DockerLeftStopped { .. } => 16,
            Note::NotRestarted { .. } => 17,
            Note::ValidateAccepted => 18,
            Note::ValidateUnsupported => 19,
            Note::ValidateSkipped { .. } => 20,
            Note::LiveRestoreStopped { .. } => 21,
            Note::RecoveredFinished { .. } => 22,
            Note::RecoveredRolledBack { .. } => 50,
            Note::RepairNoDataRoot { .. } => 23,
            Note::RepairWill { .. } => 24,
            Note::RepairDone { .. } => 25,
            Note::RepairHeldOutside { .. } => 26,
            Note::RepairVolumesUnlisted { .. } => 27,
            Note::RepairContainersUnlisted { .. } => 28,
            Note::CarryRepairKeeps => 29,
            Note::CarryImagesNotSwitched => 30,
            Note::CarryNothingWaiting => 31,
            Note::CarryPendingNotRecorded { .. } => 32,
            Note::CarryWaiting { .. } => 33,
            Note::UsernsDisabled => 34,
            Note::RootNotInspected => 35,
            Note::Unfinished => 36,
            Note::ServiceNotLoaded { .. } => 37,
            Note::SystemdUnreachable { .. } => 38,
            Note::EngineNotAskedDown { .. } => 39,
            Note::EngineNotAsked { .. } => 40,
            Note::FailureUnread { .. } => 41,
            Note::EngineError { .. } => 42,
            Note::ImageStoreSwitch { .. } => 43,
            Note::ContainersUnlisted { .. } => 44,
            Note::ConfigDisagrees => 45,
            Note::SwarmMember { .. } => 46,
            Note::VerifySwarmMember { .. } => 47,
            Note::SwarmLeftBehind { .. } => 48,
            Note::VerifyNoImage { .. } => 49,
        }
    }
    const KINDS: usize = 51;

    /// Each kind with sample facts, and the sentence the code said before the notes were typed
    /// (the old `format!` strings with these values filled in).
    fn table() -> Vec<(Note, &'static str)> {
        vec![
            (
                Note::DockerNotInstalled,
                "docker.service was not found: docker does not seem to be installed; the files are prepared for when it is",
            ),
            (
                Note::DockerMasked,
                "docker.service is masked: docker will not start until it is unmasked",
            ),
            (
                Note::NoRemapGroup {
                    user: s("dockremap"),
                    value: s("default"),
                },
                "no group is named dockremap: dockerd rejects \"userns-remap\": \"default\" without one (it looks the group of the user's name up: \"Error during gid lookup for \"dockremap\"\"), so docker would not start with it; create it first: `groupadd --system dockremap`",
            ),
            (
                Note::RepairNothing {
                    user: s("dockremap"),
                },
                "--repair: dockremap's ranges overlap no one's and cover no account's ids: nothing to repair",
            ),
            (
                Note::FewIds,
                "fewer than 65536 ids: images with files owned by high ids (e.g. nobody, 65534) will fail to unpack",
            ),
            (
                Note::OrphanRangeLine {
                    path: s("/etc/subuid"),
                    line: 2,
                    uid: 999,
                    user: s("dockremap"),
                },
                "/etc/subuid:2 is owned by uid 999, which no account has and which useradd may give the new user dockremap: then that range is dockremap's, `enable` keeps it instead of adding the planned line, and the files differ from this plan (`enable` reports what it wrote)",
            ),
            (
                Note::RepairRenamesLine {
                    file: s("/etc/subgid"),
                    line: 3,
                    owner: s("docker"),
                    user: s("dockremap"),
                },
                "--repair: line 3 of /etc/subgid is docker's; dockerd reads it by the user's name only: it becomes dockremap's, with the same range",
            ),
            (
                Note::DisableLeavesData,
                "images, containers and volumes created while remapping was on stay in the remapped data root and are not visible after this; switching back and forth is best avoided",
            ),
            (
                Note::DaemonJsonSymlink {
                    path: s("/etc/docker/daemon.json"),
                    target: s("/srv/daemon.json"),
                },
                "/etc/docker/daemon.json is a symbolic link (to /srv/daemon.json): read through the link; enable and disable refuse to edit it (an atomic rewrite would replace the link with a file): edit the target yourself or replace the link with a regular file",
            ),
            (
                Note::DaemonJsonTargetInvalid {
                    path: s("/srv/daemon.json"),
                    error: s("line 1: bad"),
                },
                "/srv/daemon.json: line 1: bad",
            ),
            (
                Note::DaemonJsonTargetMissing {
                    path: s("/srv/daemon.json"),
                },
                "the link's target /srv/daemon.json does not exist: docker reads no daemon.json",
            ),
            (
                Note::DaemonJsonTargetUnreadable { error: s("EACCES") },
                "cannot read the link's target: EACCES",
            ),
            (
                Note::EngineSilent {
                    socket: s("/run/docker.sock"),
                },
                "docker.service runs but its engine did not answer on /run/docker.sock (no access?): whether it remaps now is unknown, so only file changes decide the restart",
            ),
            (
                Note::EngineUnlearned { error: s("E") },
                "the engine did not say how it runs: E",
            ),
            (
                Note::NoImpactReport { error: s("E") },
                "no impact report: E",
            ),
            (
                Note::DockerStateUnknown { error: s("E") },
                "docker's running state is unknown (E); the plan covers the files only",
            ),
            (
                Note::DockerLeftStopped {
                    socket_activation: false,
                    socket: None,
                },
                "docker.service is not running and is left stopped: the change applies at its next start",
            ),
            (
                Note::DockerLeftStopped {
                    socket_activation: true,
                    socket: Some(s("/run/docker.sock")),
                },
                "docker.service is not running and is left stopped: the change applies at its next start; docker.socket listens on /run/docker.sock, so the first connection to it starts docker with the new configuration (no health gate runs then: check it with `docker-userns verify`)",
            ),
            (
                Note::NotRestarted { live_host: true },
                "docker was not restarted (--no-restart): the change applies at its next start",
            ),
            (
                Note::NotRestarted { live_host: false },
                "--root: services are never touched; docker there applies the change at its next start",
            ),
            (
                Note::ValidateAccepted,
                "dockerd --validate accepted the new configuration",
            ),
            (
                Note::ValidateUnsupported,
                "this dockerd has no --validate (before 23.0): the health gate after the restart decides",
            ),
            (Note::ValidateSkipped { why: s("why not") }, "why not"),
            (
                Note::LiveRestoreStopped {
                    containers: vec![s("a"), s("b")],
                },
                "live-restore is on, so stopping docker would have left the running containers alive but out of sight of the daemon that came back: 2 container(s) were stopped through the engine API first (a, b), and none of their processes is alive after the switch",
            ),
            (
                Note::RecoveredFinished {
                    action: s("enable"),
                    id: s("1-2"),
                },
                "an interrupted run (enable 1-2) had already restarted docker as intended; its record was cleared",
            ),
            (
                Note::RecoveredRolledBack {
                    action: s("disable"),
                    id: s("1-2"),
                    doing: s("writing files"),
                    left: vec![],
                    stray: None,
                },
                "an interrupted run (disable 1-2, stopped while writing files) was rolled back first",
            ),
            (
                Note::RecoveredRolledBack {
                    action: s("enable"),
                    id: s("1-2"),
                    doing: s("restarting docker"),
                    left: vec![s("/etc/subuid"), s("/etc/subgid")],
                    stray: Some(StrayDataRoot {
                        made: s("/d/2.2"),
                        not_moved: s("/d/1.1"),
                    }),
                },
                "an interrupted run (enable 1-2, stopped while restarting docker) was rolled back first; /etc/subuid, /etc/subgid changed after this run wrote it and was left as found (compare it with its saved copy); /d/2.2 was made by a docker started meanwhile with the interrupted repair's files (the data root /d/1.1 was not moved): it was left as found; remove it (once you have checked it holds nothing you need) before running --repair again",
            ),
            (
                Note::RepairNoDataRoot {
                    from: s("/var/lib/docker/100000.100000"),
                    uid_to: 200000,
                    uid_count: 65536,
                },
                "--repair moves the range to 200000:65536; no remapped data root exists at /var/lib/docker/100000.100000 (nothing to rename or shift)",
            ),
            (
                Note::RepairWill {
                    from: s("/d/1.1"),
                    to: s("/d/2.3"),
                    inodes: 7,
                    uid_from: 1,
                    gid_from: 1,
                    uid_to: 2,
                    gid_to: 3,
                },
                "--repair stops docker, renames /d/1.1 to /d/2.3 and shifts the owners of its 7 inodes from uids 1.. / gids 1.. to 2.. / 3.., then starts docker and health-gates it",
            ),
            (
                Note::RepairDone {
                    from: s("/d/1.1"),
                    to: s("/d/2.3"),
                    shifted: 5,
                    inodes: 7,
                    uid_from: 1,
                    gid_from: 1,
                    uid_to: 2,
                    gid_to: 3,
                    outside: 0,
                    setid_restored: 0,
                    caps_restored: 0,
                    acl_entries_shifted: 0,
                    other_filesystems: vec![],
                },
                "--repair: renamed /d/1.1 to /d/2.3 and shifted the owners of 5 of its 7 inodes from uids 1.. / gids 1.. to 2.. / 3..",
            ),
            (
                Note::RepairDone {
                    from: s("/d/1.1"),
                    to: s("/d/2.3"),
                    shifted: 5,
                    inodes: 7,
                    uid_from: 1,
                    gid_from: 1,
                    uid_to: 2,
                    gid_to: 3,
                    outside: 2,
                    setid_restored: 1,
                    caps_restored: 0,
                    acl_entries_shifted: 4,
                    other_filesystems: vec![s("/d/2.3/m"), s("/d/2.3/n")],
                },
                "--repair: renamed /d/1.1 to /d/2.3 and shifted the owners of 5 of its 7 inodes from uids 1.. / gids 1.. to 2.. / 3..; 2 inodes owned outside the old range (root's, for one) were left as they were; kept 1 setuid/setgid bits and 0 file capabilities, shifted 4 ACL entries; other filesystems mounted below were not entered: /d/2.3/m, /d/2.3/n",
            ),
            (
                Note::RepairHeldOutside {
                    uid_from: 100000,
                    gid_from: 100000,
                    dirs: vec![
                        HeldDir {
                            dir: s("/srv/x"),
                            by: vec![s("volume bv")],
                            inodes: 2,
                        },
                        HeldDir {
                            dir: s("/srv/y"),
                            by: vec![s("container c: /y; not surveyed: E")],
                            inodes: 0,
                        },
                    ],
                    planning: true,
                    uid_delta: 65536,
                    gid_delta: 65536,
                },
                "--repair moves docker's data root only: these host directories, used by the engine from outside it, keep owners of the old range (uids 100000.. / gids 100000..), which the remapped containers can no longer write after the move: /srv/x (volume bv; 2 inode(s)); /srv/y (container c: /y; not surveyed: E). Before --repair, run `docker-userns shift DIR --to host` for each (stop the containers using it first); after it, `docker-userns shift DIR --to remapped` gives them to the new range",
            ),
            (
                Note::RepairHeldOutside {
                    uid_from: 100000,
                    gid_from: 100000,
                    dirs: vec![HeldDir {
                        dir: s("/srv/x"),
                        by: vec![s("volume bv"), s("container web: /app")],
                        inodes: 2,
                    }],
                    planning: false,
                    uid_delta: -65536,
                    gid_delta: 131072,
                },
                "--repair moves docker's data root only: these host directories, used by the engine from outside it, keep owners of the old range (uids 100000.. / gids 100000..), which the remapped containers can no longer write after the move: /srv/x (volume bv, container web: /app; 2 inode(s)). No `docker-userns shift` command moves owners from the old range to the new one once the range has moved (it shifts between host ids and the current range only): give each such owner its new id by hand (old id + -65536 for uids, + 131072 for gids). Next time, run `docker-userns shift DIR --to host` for each before --repair and `docker-userns shift DIR --to remapped` after it",
            ),
            (
                Note::RepairVolumesUnlisted { error: s("E") },
                "--repair: cannot list the volumes (E); volumes with bind options keep their owners",
            ),
            (
                Note::RepairContainersUnlisted { error: s("E") },
                "--repair: cannot list the containers (E); host directories bind-mounted into them keep their owners",
            ),
            (
                Note::CarryRepairKeeps,
                "--carry: nothing to carry, --repair keeps the images, containers and volumes: they stay in the remapped data root it moves to the new range",
            ),
            (
                Note::CarryImagesNotSwitched,
                "--carry images needs docker switched on the live host (not --root or --no-restart): nothing was carried",
            ),
            (
                Note::CarryNothingWaiting,
                "--carry: docker was not switched and no earlier carry is waiting: nothing to carry",
            ),
            (
                Note::CarryPendingNotRecorded { error: s("E") },
                "cannot record the volumes to carry for a later run: E",
            ),
            (
                Note::CarryWaiting {
                    images: 2,
                    spool: s("/s"),
                    volumes: 1,
                    pending: s("/p"),
                },
                "a --carry did not complete: 2 image(s) wait in /s and 1 volume(s) are recorded in /p; the switch itself stands: run the same `enable --carry …` (or `disable --carry …`) command again to carry them",
            ),
            (
                Note::UsernsDisabled,
                "user namespaces are disabled in the kernel (user.max_user_namespaces = 0): remapping cannot work",
            ),
            (
                Note::RootNotInspected,
                "--root: services and the engine are not inspected",
            ),
            (
                Note::Unfinished,
                "an interrupted run left its record in /var/lib/docker-userns: run `docker-userns enable` or `disable` as root to roll it back",
            ),
            (
                Note::ServiceNotLoaded {
                    load_state: s("not-found"),
                },
                "docker.service is not-found to systemd",
            ),
            (Note::SystemdUnreachable { error: s("E") }, "systemd: E"),
            (
                Note::EngineNotAskedDown {
                    state: s("inactive/dead"),
                    socket_activation: false,
                    socket: None,
                },
                "the engine was not asked: docker.service is inactive/dead",
            ),
            (
                Note::EngineNotAskedDown {
                    state: s("inactive/dead"),
                    socket_activation: true,
                    socket: None,
                },
                "the engine was not asked: docker.service is inactive/dead, and a connection to its socket would start it (docker.socket listens there); status changes nothing, services included",
            ),
            (
                Note::EngineNotAsked { why: s("W") },
                "the engine was not asked: W",
            ),
            (
                Note::FailureUnread {
                    unit: s("docker.service"),
                    active_state: s("failed"),
                    sub_state: s("failed"),
                    why: s("W"),
                },
                "why docker.service is failed/failed was not read from the journal: W",
            ),
            (Note::EngineError { error: s("E") }, "E"),
            (
                Note::ImageStoreSwitch {
                    remapping: true,
                    before: s("B"),
                    after: s("A"),
                    why: s("W"),
                },
                "the image store is B while remapping is on; `disable` switches docker back to A (W): the images there are out of sight now, reachable after switching back, and what this store holds is carried there only with `--carry images`",
            ),
            (
                Note::ImageStoreSwitch {
                    remapping: false,
                    before: s("B"),
                    after: s("A"),
                    why: s("W"),
                },
                "the image store is B; `enable` switches docker to A (W): the images here are then reachable only with `--carry images` or after switching back",
            ),
            (
                Note::ContainersUnlisted { error: s("E") },
                "cannot list containers: E",
            ),
            (
                Note::ConfigDisagrees,
                "daemon.json and the running engine disagree: docker has not been restarted since daemon.json changed",
            ),
            (
                Note::SwarmMember {
                    state: s("active"),
                    manager: true,
                },
                "this node is in a swarm (Swarm.LocalNodeState active, a manager): enable and disable refuse to switch remapping here, since the switch moves the swarm state with the data root (moby#39722); leave the swarm first",
            ),
            (
                Note::SwarmMember {
                    state: s("pending"),
                    manager: false,
                },
                "this node is in a swarm (Swarm.LocalNodeState pending): enable and disable refuse to switch remapping here, since the switch moves the swarm state with the data root (moby#39722); leave the swarm first",
            ),
            (
                Note::VerifySwarmMember { state: s("active") },
                "this node is in a swarm (Swarm.LocalNodeState active): enable and disable refuse to switch remapping while it is (moby#39722)",
            ),
            (
                Note::SwarmLeftBehind {
                    state_file: s("/var/lib/docker/swarm/docker-state.json"),
                },
                "/var/lib/docker/swarm/docker-state.json is swarm state from before remapping was turned on: this node left that swarm with the switch (moby#39722); join it again, or turn remapping off to get it back",
            ),
            (
                Note::VerifyNoImage {
                    looked_for: vec![s("busybox"), s("alpine")],
                },
                "no local image to run checks with (looked for busybox, alpine): pass --image IMG with a local image that has id, sleep and touch; only /info was checked",
            ),
        ]
    }

    #[test]
    fn each_kind_says_the_sentence_it_said_before() {
        let mut seen = [false; KINDS];
        for (note, old) in table() {
            assert_eq!(note_text(&note), old, "{note:?}");
            seen[row_of(&note)] = true;
        }
        let missing: Vec<usize> = (0..KINDS).filter(|i| !seen[*i]).collect();
        assert!(missing.is_empty(), "kinds without a row: {missing:?}");
    }

    #[test]
    fn each_kind_reads_back_from_its_json_with_its_kind() {
        for (note, _) in table() {
            let v = serde_json::to_value(&note).unwrap();
            let kind = v["kind"].as_str().unwrap_or_else(|| panic!("no kind: {v}"));
            assert!(
                kind.chars().all(|c| c.is_ascii_lowercase() || c == '-'),
                "{kind}"
            );
            assert_eq!(serde_json::from_value::<Note>(v).unwrap(), note);
        }
    }

    #[test]
    fn the_schema_names_every_kind() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/schema/docker-userns.schema.json"
        );
        let schema: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let listed: std::collections::BTreeSet<String> =
            schema["$defs"]["facts"]["items"]["properties"]["kind"]["enum"]
                .as_array()
                .expect("an enum of kinds")
                .iter()
                .map(|k| k.as_str().unwrap().to_string())
                .collect();
        let made: std::collections::BTreeSet<String> = table()
            .iter()
            .map(|(n, _)| {
                serde_json::to_value(n).unwrap()["kind"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect();
        assert_eq!(listed, made);
    }

    #[test]
    fn a_refusal_that_names_the_repair_says_it_in_the_notes_words() {
        use crate::host::root::Root;
        use crate::run::plan::Repair;
        use crate::run::repair::{repair_preview, repair_preview_refusal};
        let dir = tempfile::tempdir().unwrap();
        let root = Root::new(dir.path()).unwrap();
        let r = Repair {
            from: "/var/lib/docker/100000.100000".into(),
            to: "/var/lib/docker/200000.200000".into(),
            uid_from: 100000,
            uid_to: 200000,
            uid_count: 65536,
            gid_from: 100000,
            gid_to: 200000,
            gid_count: 65536,
        };
        for made in [false, true] {
            if made {
                root.ensure_dir(&r.from, 0o700).unwrap();
            }
            let note = repair_preview(&root, &r).unwrap();
            assert_eq!(made, matches!(note, Note::RepairWill { .. }), "{note:?}");
            assert_eq!(note_text(&note), repair_preview_refusal(&root, &r).unwrap());
        }
    }
}
