//! Generates the man pages (clap_mangen) and the bash, zsh and fish completions (clap_complete)
//! from the real command-line definition, `src/cli.rs`, which is compiled into this build script
//! with `#[path]`, so the packaged docs always match the binary.
//!
//! Output: `OUT_DIR/{man,completions}`, mirrored to `<target dir>/<profile>/{man,completions}`
//! (e.g. `target/release/man/docker-userns.8.gz`), the stable paths that the .deb assets in
//! Cargo.toml (`[package.metadata.deb]`) name. `src/cli.rs` may only use clap and `src/exit.rs`; `src/exit.rs` only anyhow and thiserror.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use clap::CommandFactory;
use clap_complete::Shell;
use clap_mangen::Man;
use clap_mangen::roff::{Roff, bold, italic, roman};

#[allow(dead_code, missing_docs)]
#[path = "src/exit.rs"]
mod exit;

#[allow(dead_code, missing_docs)]
#[path = "src/cli.rs"]
mod cli;

const NAME: &str = "docker-userns";
const SECTION: &str = "8";

fn main() -> io::Result<()> {
    println!("cargo::rerun-if-changed=src/cli.rs");
    println!("cargo::rerun-if-changed=src/exit.rs");
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-changed=packaging/changelog");
    println!("cargo::rerun-if-env-changed=SOURCE_DATE_EPOCH");

    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let man_dir = fresh_dir(&out_dir.join("man"))?;
    let completions_dir = fresh_dir(&out_dir.join("completions"))?;

    let mut cmd = cli::Cli::command().disable_help_subcommand(true);
    cmd.build();

    let date = release_date()?;
    let man = |cmd: &clap::Command| {
        Man::new(cmd.clone())
            .section(SECTION)
            .date(&date)
            .source(format!("{NAME} {}", env!("CARGO_PKG_VERSION")))
            .manual(MANUAL)
    };
    write_gz(
        &man_dir.join(format!("{NAME}.{SECTION}")),
        &main_page(&cmd, man(&cmd))?,
    )?;
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        let man = man(sub);
        let mut page = Vec::new();
        man.render(&mut page)?;
        see_also(&mut page, &[(NAME, SECTION)])?;
        write_gz(&man_dir.join(man.get_filename()), &page)?;
    }

    for (shell, file) in [
        (Shell::Bash, NAME.to_string()),
        (Shell::Zsh, format!("_{NAME}")),
        (Shell::Fish, format!("{NAME}.fish")),
    ] {
        let mut script = Vec::new();
        clap_complete::generate(shell, &mut cmd.clone(), NAME, &mut script);
        fs::write(completions_dir.join(file), script)?;
    }

    // <target dir>/<profile>/build/<pkg>-<hash>/out -> <target dir>/<profile>
    if let Some(profile_dir) = out_dir.ancestors().nth(3) {
        for dir in ["man", "completions"] {
            let dest = fresh_dir(&profile_dir.join(dir))?;
            for entry in fs::read_dir(out_dir.join(dir))? {
                let entry = entry?;
                fs::copy(entry.path(), dest.join(entry.file_name()))?;
            }
        }
    }
    Ok(())
}

const MANUAL: &str = "System Administration";

/// The man pages' date, `YYYY-MM-DD`: `SOURCE_DATE_EPOCH` when set (reproducible builds), else
/// the date of the newest entry of packaging/changelog (the release), so builds are repeatable.
fn release_date() -> io::Result<String> {
    if let Some(secs) = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|v| v.parse::<i64>().ok())
    {
        // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
        let z = secs.div_euclid(86_400) + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let d = doy - (153 * mp + 2) / 5 + 1;
        let m = if mp < 10 { mp + 3 } else { mp - 9 };
        let y = yoe + era * 400 + i64::from(m <= 2);
        return Ok(format!("{y:04}-{m:02}-{d:02}"));
    }
    // " -- NAME <EMAIL>  Sun, 29 Nov 2026 18:00:00 +0000"
    let changelog =
        fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/changelog"))?;
    let trailer = changelog
        .lines()
        .find_map(|l| l.strip_prefix(" -- "))
        .and_then(|l| l.split_once(">  "))
        .map(|(_, date)| date.to_string());
    let parsed = trailer.as_deref().and_then(|date| {
        let mut words = date.split_whitespace().skip(1);
        let day: u32 = words.next()?.parse().ok()?;
        let month = words.next()?;
        let month = MONTHS.iter().position(|&m| m == month)? + 1;
        let year: u32 = words.next()?.parse().ok()?;
        Some(format!("{year:04}-{month:02}-{day:02}"))
    });
    parsed.ok_or_else(|| {
        io::Error::other(format!(
            "packaging/changelog: no parsable date in the first trailer line ({trailer:?})"
        ))
    })
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Writes `PATH.gz` the way Debian wants man pages (`gzip -9n`: best compression, no name, no
/// time stamp); cargo-deb does not compress files that the build produced.
fn write_gz(path: &Path, data: &[u8]) -> io::Result<()> {
    let data = dedup_preamble(data);
    let mut name = path.as_os_str().to_owned();
    name.push(".gz");
    let mut gz = flate2::GzBuilder::new()
        .mtime(0)
        .operating_system(3)
        .write(fs::File::create(name)?, flate2::Compression::best());
    gz.write_all(&data)?;
    gz.finish()?.sync_all()
}

/// A page assembled from several rendered parts repeats roff's two-line preamble (the `Aq`
/// string definition) before each part; keep the first.
fn dedup_preamble(page: &[u8]) -> Vec<u8> {
    const PREAMBLE: &str = ".ie \\n(.g .ds Aq \\(aq\n.el .ds Aq '\n";
    let text = String::from_utf8_lossy(page);
    match text.split_once(PREAMBLE) {
        Some((head, rest)) => {
            format!("{head}{PREAMBLE}{}", rest.replace(PREAMBLE, "")).into_bytes()
        }
        None => page.to_vec(),
    }
}

/// An empty directory at `dir` (stale pages of removed subcommands must not be packaged).
fn fresh_dir(dir: &Path) -> io::Result<PathBuf> {
    match fs::remove_dir_all(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    fs::create_dir_all(dir)?;
    Ok(dir.to_path_buf())
}

/// docker-userns(8): the top-level page with every subcommand, the exit codes as a list, the
/// files the tool reads and writes, the systemd unit, and references.
fn main_page(cmd: &clap::Command, man: Man) -> io::Result<Vec<u8>> {
    let mut page = Vec::new();
    man.render_title(&mut page)?;
    man.render_name_section(&mut page)?;
    man.render_synopsis_section(&mut page)?;
    man.render_description_section(&mut page)?;
    man.render_options_section(&mut page)?;
    man.render_subcommands_section(&mut page)?;

    let mut roff = Roff::new();
    roff.control("SH", ["EXIT STATUS"]);
    // The exit-code table of `--help` ("  N  text", continuation lines indented further).
    let help = cmd.get_after_long_help().or_else(|| cmd.get_after_help());
    let help = help.map(|h| h.to_string()).unwrap_or_default();
    let mut item: Option<(String, String)> = None;
    let flush = |roff: &mut Roff, item: Option<(String, String)>| {
        if let Some((code, text)) = item {
            roff.control("TP", [])
                .text([bold(code)])
                .text([roman(text)]);
        }
    };
    for line in help.lines().skip_while(|l| !l.starts_with("  ")) {
        let trimmed = line.trim_start();
        let indent = line.len() - trimmed.len();
        match trimmed.split_once("  ") {
            Some((code, text)) if indent == 2 && code.chars().all(|c| c.is_ascii_digit()) => {
                flush(&mut roff, item.take());
                item = Some((code.to_string(), text.trim().to_string()));
            }
            _ => {
                if let Some((_, text)) = item.as_mut() {
                    text.push(' ');
                    text.push_str(trimmed);
                }
            }
        }
    }
    flush(&mut roff, item);

    roff.control("SH", ["ENVIRONMENT"]);
    roff.control("TP", [])
        .text([bold("JOURNAL_STREAM")])
        .text([roman(
            "Set by systemd when standard error goes to the journal: log messages are then sent \
         to the journal with their priorities (error, warning, notice, info, debug) instead of \
         as text.",
        )]);

    roff.control("SH", ["FILES"]);
    for (path, what) in [
        (
            "/etc/subuid, /etc/subgid",
            "Subordinate id ranges; the remap user's range is appended, other lines are kept.",
        ),
        (
            "/etc/docker/daemon.json",
            "Docker's configuration; only the \"userns-remap\" key is set or removed.",
        ),
        (
            "/var/lib/docker-userns",
            "Run lock, saved copies of the files and the record of an unfinished run.",
        ),
        (
            "/usr/lib/systemd/system/docker-userns.service",
            "A oneshot unit: \"systemctl start docker-userns\" runs \"docker-userns --verbose enable\" \
             and logs to the journal. It is not enabled and never started by the package.",
        ),
    ] {
        roff.control("TP", [])
            .text([italic(path)])
            .text([roman(what)]);
    }
    roff.to_writer(&mut page)?;

    let subs: Vec<String> = cmd
        .get_subcommands()
        .filter(|s| !s.is_hide_set())
        .map(|s| format!("{NAME}-{}", s.get_name()))
        .collect();
    let mut refs: Vec<(&str, &str)> = subs.iter().map(|s| (s.as_str(), SECTION)).collect();
    refs.extend([
        ("dockerd", "8"),
        ("subuid", "5"),
        ("subgid", "5"),
        ("useradd", "8"),
        ("systemd.exec", "5"),
    ]);
    see_also(&mut page, &refs)?;
    Ok(page)
}

/// Appends a SEE ALSO section: `name(section)`, comma separated.
fn see_also(page: &mut Vec<u8>, refs: &[(&str, &str)]) -> io::Result<()> {
    let mut roff = Roff::new();
    roff.control("SH", ["SEE ALSO"]);
    let mut line = Vec::new();
    for (i, (name, section)) in refs.iter().enumerate() {
        let sep = if i + 1 == refs.len() { "" } else { ", " };
        line.push(bold(*name));
        line.push(roman(format!("({section}){sep}")));
    }
    roff.text(line);
    roff.to_writer(&mut *page)?;
    page.flush()
}
