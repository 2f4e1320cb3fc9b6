//! The command line: options, subcommands and their help text.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};

use crate::exit::{EXIT_CODES_HELP, LONG_HELP};

/// Turn on Docker's user-namespace remapping safely.
///
/// With userns-remap, root inside a container is an unprivileged user on the host. This tool
/// creates the remap user (dockremap), gives it subordinate uid/gid ranges that overlap no one
/// else's, and sets "userns-remap" in /etc/docker/daemon.json without touching your other
/// settings. Run `plan` first to see exactly what `enable` would do.
#[derive(Debug, Parser)]
#[command(name = "docker-userns", version, after_long_help = LONG_HELP, after_help = EXIT_CODES_HELP)]
pub struct Cli {
    /// Work on the tree under DIR instead of the live host: every path (/etc/subuid,
    /// /etc/docker/daemon.json, unit files) is taken relative to DIR, and no service or name
    /// service (NSS) is touched. The user is created with `useradd --prefix DIR`.
    #[arg(long, global = true, value_name = "DIR", default_value = "/")]
    pub root: PathBuf,

    /// Print exactly one JSON document on stdout (also for errors) instead of text. Without it,
    /// the long steps (an owner shift, the image export and load of --carry) show a progress bar
    /// with the rate and the time left on stderr when stderr is a terminal; with it, none.
    #[arg(long, global = true)]
    pub json: bool,

    /// More log output on stderr (-v info, -vv debug: also every call to the docker engine
    /// with its status and time, -vvv trace, each line with the seconds since the start).
    #[arg(short, long, global = true, action = clap::ArgAction::Count, conflicts_with = "quiet")]
    pub verbose: u8,

    /// Print nothing but errors.
    #[arg(short, long, global = true)]
    pub quiet: bool,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

impl Cli {
    /// Parses `args` (`argv[0]` first) as `Cli::try_parse_from` does; `as_plugin`: run by the
    /// docker CLI as `docker userns`, which usage lines and help then name.
    pub fn try_parse_argv(args: Vec<OsString>, as_plugin: bool) -> Result<Cli, clap::Error> {
        let mut cmd = Cli::command();
        if as_plugin {
            cmd = cmd.bin_name("docker userns");
        }
        let mut matches = cmd.try_get_matches_from_mut(args)?;
        Cli::from_arg_matches_mut(&mut matches).map_err(|e| e.format(&mut cmd))
    }
}

/// Options shared by `plan` and `enable`.
#[derive(Debug, Clone, Args)]
pub struct UserArgs {
    /// The remap user; created as a system user with no login and its own group if missing.
    /// dockremap is written to daemon.json as "default" (what the CIS Docker benchmark checks).
    /// An existing "userns-remap" value (daemon.json, or a --userns-remap flag of dockerd) of
    /// any form dockerd accepts (default, NAME, NAME:GROUP, UID, UID:GID) that resolves to this
    /// user is kept as it is; one naming another user is refused, naming that user.
    #[arg(long, value_name = "NAME", default_value = "dockremap", value_parser = user_name)]
    pub(crate) user: String,

    /// Size of the subordinate uid and gid ranges to allocate
    /// [default: SUB_UID_COUNT / SUB_GID_COUNT from /etc/login.defs, 65536 when unset or 0].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=4_294_967_296))]
    pub(crate) count: Option<u64>,

    /// The range must start at uid/gid N in both files (fleets whose volumes on shared storage
    /// need the same ids on every host). Refused, naming the owner, when N..N+count is not
    /// free; a range the user owns elsewhere is moved there only with --repair.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=4_294_967_295))]
    pub(crate) start: Option<u64>,

    /// Move the remap user's range when it overlaps another owner's or covers an account's ids
    /// (what dockerd 28 and later allocate next to a regular user), or to --start N: with
    /// docker stopped, the remapped data root (DATA_ROOT/OLD_UID.OLD_GID) is renamed to the new
    /// range's name and every owner below it shifted into the new range; then docker starts and
    /// is health-gated. Journaled: a failure or a crash is rolled back, the shift included.
    /// Also: when dockerd needs the user's line in /etc/subuid or /etc/subgid (it reads both
    /// by the user's name or uid) and the range sits under the value's group (name or gid)
    /// instead, that line is given to the user, same range, in one journaled write.
    #[arg(long)]
    pub(crate) repair: bool,
}

/// `--user`: a name useradd accepts, and not one that cannot be the remap user (a usage
/// error, exit 2, before anything is read).
fn user_name(name: &str) -> Result<String, String> {
    crate::host::account::validate_name(name)
        .map(|()| name.to_string())
        .map_err(|e| e.to_string())
}

/// Options of the commands that restart docker.
#[derive(Debug, Clone, Args)]
pub struct RestartArgs {
    /// Change the files only; do not restart docker (the change applies at its next start).
    #[arg(long)]
    pub(crate) no_restart: bool,

    /// Restart docker even though containers are running (the restart stops them).
    #[arg(long, short = 'y')]
    pub(crate) yes: bool,

    /// Seconds to wait for each stop/start job and for docker to pass the health gate.
    #[arg(long, value_name = "SECS", default_value_t = 90, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub(crate) timeout: u64,

    /// Seconds docker must stay up after its restart, the same process with no restarts, to
    /// pass the health gate (a dockerd that dies a few seconds after starting is rolled back).
    #[arg(long, value_name = "SECS", default_value_t = crate::run::restart::DEFAULT_SETTLE.as_secs(), value_parser = clap::value_parser!(u64).range(0..=600))]
    pub(crate) settle: u64,

    /// Carry what docker holds across the switch (images, volumes or both, comma-separated):
    /// `images` are exported from the old engine before docker stops (into
    /// /var/lib/docker-userns/carry; refused up front when the free space is short) and loaded
    /// into the new engine after it passed the health gate, never over an image or tag it has;
    /// `volumes` (named, local driver, no options) are copied from the old data root with every
    /// owner shifted into the new mapping, then created in the new engine. The old data root
    /// is never modified. If carrying fails the switch stands and the exit code is 8; running
    /// the same command again carries what is missing.
    #[arg(long, value_enum, value_name = "images,volumes", value_delimiter = ',')]
    pub(crate) carry: Vec<CarryWhat>,

    /// Walk a tree whose owners are shifted (--repair's data root, each volume of --carry
    /// volumes) with N threads at once; the result is the same whatever N
    /// [default: the number of cores].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub(crate) jobs: Option<u16>,
}

/// What `--carry` takes across the switch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CarryWhat {
    /// Every image, with its tags, by its id.
    Images,
    /// Every named volume of the local driver without options, its owners shifted.
    Volumes,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show what `enable` (with --disable: `disable`) would change, and change nothing.
    ///
    /// With --json, "files" lists every file the run would write, with its content now and
    /// the exact bytes the run would write (rendered by the same writers).
    #[command(after_help = "Example: docker-userns plan --json")]
    Plan {
        #[command(flatten)]
        #[allow(missing_docs)]
        user: UserArgs,
        /// Show what `enable --carry` would carry: the images, their size, the free space the
        /// spool needs, and the containers that cannot be carried.
        #[arg(long, value_enum, value_name = "images,volumes", value_delimiter = ',')]
        carry: Vec<CarryWhat>,
        /// Show what `disable` would change instead (daemon.json without "userns-remap").
        #[arg(long, conflicts_with_all = ["user", "count", "start", "repair", "carry"])]
        disable: bool,
    },

    /// Create the remap user, allocate its ranges, set "userns-remap" in daemon.json, restart
    /// docker and check it came back remapped; roll back if it did not.
    ///
    /// Idempotent: on a converged host it changes nothing, does not restart docker, and says
    /// so. Existing ranges of the user are kept. Nothing is written when any input is invalid
    /// or conflicting. Refuses to restart docker while containers run, unless --yes.
    Enable {
        #[command(flatten)]
        #[allow(missing_docs)]
        user: UserArgs,
        #[command(flatten)]
        #[allow(missing_docs)]
        restart: RestartArgs,
    },

    /// Remove "userns-remap" from daemon.json and restart docker; the user and its ranges
    /// are kept. Images and containers made while remapping was on are not visible after it.
    Disable {
        #[command(flatten)]
        #[allow(missing_docs)]
        restart: RestartArgs,
    },

    /// Show docker's state: the user dockerd runs as, whether remapping is configured and in
    /// effect, the remap user's ranges, the data root, kernel support, an unfinished run, and
    /// running containers that are root on the host. When docker.service failed or is
    /// restarting, why: its last start is read from the journal and the cause named when it
    /// is about remapping (no subuid/subgid range under the user's name, a missing user or
    /// group, the remapped data root, a --userns-remap flag next to daemon.json's key, docker
    /// 29's containerd-snapshotter), with dockerd's line and what to do; otherwise dockerd's
    /// last error line is quoted.
    ///
    /// Reads only, and exits 0 whatever it finds. With --prometheus FILE it also writes the
    /// same facts as gauges for node_exporter's textfile collector.
    #[command(
        after_help = "Example: docker-userns status --prometheus /var/lib/node_exporter/textfile/docker_userns.prom"
    )]
    Status {
        /// Also write the status as Prometheus gauges (docker_userns_*: remapping configured
        /// and active, the remap range's start and size, problems by kind, an unfinished run,
        /// host-root containers, and docker_userns_info) to FILE, in the text format of
        /// node_exporter's textfile collector (--collector.textfile.directory). FILE is an
        /// absolute path on the live host (not with --root) in an existing directory, its
        /// name ends in .prom, and it is a regular file or missing (a symlink, device, fifo or
        /// directory there is refused and left alone); it is replaced atomically (temporary file beside it, fsync, rename), mode 0644. The
        /// values are those of `status --json` of the same run; a gauge whose value is not
        /// known (the engine was not asked) is left out.
        #[arg(long, value_name = "FILE")]
        prometheus: Option<PathBuf>,
    },

    /// Prove remapping is in effect: run containers from a local image (never pulled) and
    /// check root inside is uid 0, is the range start on the host, cannot write a root-owned
    /// host directory, and that --privileged is refused. Exit 7 when it is not in effect.
    Verify {
        /// A local image with `id`, `sleep` and `touch` [default: the first local busybox,
        /// alpine or debian image; without one only the engine's /info is checked].
        #[arg(long, value_name = "IMAGE", value_parser = crate::formats::image_ref::parse)]
        image: Option<String>,
    },

    /// Shift the owners of host directories that remapped containers bind-mount into the
    /// remap user's range (--to remapped: host uid u becomes START+u, which the container sees
    /// as u), or back (--to host).
    ///
    /// Exact: symlinks themselves (never their targets), setuid/setgid bits and file
    /// capabilities kept, POSIX ACL ids shifted, hard links once, other filesystems not entered.
    /// Every PATH is resolved, checked and surveyed before the first is changed: system trees
    /// (/, /etc, /usr, /var, /home and its users' homes, /root, ...), state no container should
    /// own (/var/lib/dpkg, /var/lib/systemd, /var/tmp, ...), docker's data roots (configured and
    /// the running engine's, by their real paths), containerd's state and this tool's are
    /// refused, and so are ids the mapping cannot express (>= the range size for --to remapped)
    /// and trees deeper than 4096 directories. --to host refuses setuid/setgid files and file
    /// capabilities made under the remapped ids (they would be valid on the host) unless
    /// --drop-setid-and-caps. Walks with one thread per core (--jobs). Takes the run lock.
    /// Idempotent; an interrupted run is finished by running the same command again. Stop the
    /// containers that use PATH first.
    #[command(after_help = "Example: docker-userns shift /srv/app/data --to remapped --dry-run")]
    Shift {
        /// The directories.
        #[arg(required = true, value_name = "PATH")]
        paths: Vec<PathBuf>,
        /// Where the owners go.
        #[arg(long, value_enum, value_name = "remapped|host")]
        to: ShiftTo,
        /// Survey and report what would change; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// With --to host: drop the setuid/setgid bits and file capabilities that would become
        /// valid for host ids (made under the remapped ids) instead of refusing; they are named.
        #[arg(long)]
        drop_setid_and_caps: bool,
        /// Walk with N threads at once, each taking directories as they are found (the same
        /// result whatever N; `enable --repair` and `--carry volumes` take --jobs too)
        /// [default: the number of cores].
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=1024))]
        jobs: Option<u16>,
    },

    /// Lint /etc/subuid and /etc/subgid for the whole host: malformed lines, overlapping
    /// ranges between any owners, empty ranges, ranges outside the login.defs bounds, ranges
    /// covering an account's id or lying at or below UID_MAX/GID_MAX; and what dockerd will
    /// reject or misuse in the configured "userns-remap" value: one naming no account, the
    /// user without its own line in a file (dockerd reads both by the user's name or uid)
    /// while the group's line holds the range, the group's own range ignored. Exit 3 on
    /// problems.
    Check,
}

/// `shift --to`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ShiftTo {
    /// Into the remap user's range.
    Remapped,
    /// Back to the host's ids.
    Host,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    fn argv(s: &str) -> Vec<OsString> {
        s.split(' ').map(OsString::from).collect()
    }

    #[test]
    fn jobs_reaches_enable_and_disable_and_zero_is_refused() {
        for cmd in ["enable", "disable"] {
            let cli = Cli::try_parse_argv(argv(&format!("docker-userns {cmd} --jobs 3")), false)
                .expect("parses");
            let (Command::Enable { restart, .. } | Command::Disable { restart }) = &cli.command
            else {
                panic!("{cmd}: {:?}", cli.command)
            };
            assert_eq!(restart.jobs, Some(3));
            let zero = Cli::try_parse_argv(argv(&format!("docker-userns {cmd} --jobs 0")), false)
                .expect_err("--jobs 0 is refused");
            assert_eq!(zero.kind(), clap::error::ErrorKind::ValueValidation);
        }
    }

    #[test]
    fn as_a_plugin_usage_says_docker_userns() {
        let plugin = Cli::try_parse_argv(argv("docker-userns enable --bogus"), true)
            .expect_err("--bogus is refused");
        assert_eq!(plugin.kind(), clap::error::ErrorKind::UnknownArgument);
        let text = plugin.render().to_string();
        assert!(text.contains("Usage: docker userns enable"), "{text}");
        let direct = Cli::try_parse_argv(argv("docker-userns enable --bogus"), false)
            .expect_err("--bogus is refused");
        let text = direct.render().to_string();
        assert!(text.contains("Usage: docker-userns enable"), "{text}");

        let help = Cli::try_parse_argv(argv("docker-userns --help"), true).expect_err("help");
        assert_eq!(help.kind(), clap::error::ErrorKind::DisplayHelp);
        assert!(
            help.render()
                .to_string()
                .contains("Usage: docker userns [OPTIONS] <COMMAND>")
        );
        let version = Cli::try_parse_argv(argv("docker-userns --version"), true).expect_err("v");
        assert_eq!(
            version.render().to_string().trim(),
            concat!("docker-userns ", env!("CARGO_PKG_VERSION"))
        );

        let cli = Cli::try_parse_argv(argv("docker-userns --json status"), true).expect("parses");
        assert!(cli.json);
        assert_eq!(cli.command.name(), "status");
    }
}
