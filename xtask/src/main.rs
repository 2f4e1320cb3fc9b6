//! Build tasks of docker-userns, run as `cargo xtask TASK` (the alias in `.cargo/config.toml`).
//!
//! `cargo xtask generate DIR` generates the man pages (clap_mangen) and the bash, zsh and fish
//! completions (clap_complete) from the real command-line definition, `docker_userns::cli::Cli`
//! (the library's `src/cli.rs`, with the exit-code help text of `src/exit.rs`), so the packaged
//! docs always match the binary.
//!
//! Output: `DIR/man/*.8.gz` and `DIR/completions/{docker-userns,_docker-userns,docker-userns.fish}`.
//! The .deb assets in Cargo.toml (`[package.metadata.deb]`) name `target/assets/...`: run
//! `cargo xtask generate target/assets` before `cargo deb` (README "Packaging").

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::CommandFactory;
use clap_complete::Shell;
use clap_mangen::Man;
use clap_mangen::roff::{Roff, bold, italic, roman};
use docker_userns::cli;

const NAME: &str = "docker-userns";
const SECTION: &str = "8";

const USAGE: &str = "usage: cargo xtask generate DIR
    writes DIR/man/*.8.gz (man pages) and DIR/completions/ (bash, zsh, fish)";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["generate", dir] => match generate(Path::new(dir)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("xtask generate {dir}: {e}");
                ExitCode::FAILURE
            }
        },
        ["help" | "--help" | "-h"] => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        _ => {
            eprintln!("{USAGE}");
            ExitCode::from(2)
        }
    }
}

/// Writes the man pages to `out/man` and the completions to `out/completions`, both emptied
/// first.
fn generate(out: &Path) -> io::Result<()> {
    let man_dir = fresh_dir(&out.join("man"))?;
    let completions_dir = fresh_dir(&out.join("completions"))?;

    let mut cmd = cli::Cli::command().disable_help_subcommand(true);
    cmd.build();
    // clap's `version` is the library crate's CARGO_PKG_VERSION (not this xtask's).
    let version = cmd
        .get_version()
        .ok_or_else(|| io::Error::other("the command has no version"))?
        .to_string();

    let date = release_date()?;
    let man = |cmd: &clap::Command| {
        Man::new(cmd.clone())
            .section(SECTION)
            .date(&date)
            .source(format!("{NAME} {version}"))
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

    for (shell, file) in COMPLETIONS {
        let mut script = Vec::new();
        clap_complete::generate(shell, &mut cmd.clone(), NAME, &mut script);
        fs::write(completions_dir.join(file), script)?;
    }
    Ok(())
}

/// The completion scripts and their file names in `DIR/completions`.
const COMPLETIONS: [(Shell, &str); 3] = [
    (Shell::Bash, NAME),
    (Shell::Zsh, "_docker-userns"),
    (Shell::Fish, "docker-userns.fish"),
];

const MANUAL: &str = "System Administration";

/// The repository (this crate lives in `xtask/`).
fn repo_root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

/// The man pages' date, `YYYY-MM-DD`: `SOURCE_DATE_EPOCH` when set (reproducible builds), else
/// the date of the newest entry of packaging/changelog (the release), so builds are repeatable.
fn release_date() -> io::Result<String> {
    if let Some(secs) = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|v| v.parse::<i64>().ok())
    {
        return Ok(civil_date(secs));
    }
    // " -- NAME <EMAIL>  Sun, 29 Nov 2026 18:00:00 +0000"
    let changelog = fs::read_to_string(repo_root().join("packaging/changelog"))?;
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

/// `YYYY-MM-DD` (UTC) of `secs` seconds since 1970-01-01: the civil date from days since the
/// epoch (Howard Hinnant's algorithm).
fn civil_date(secs: i64) -> String {
    let z = secs.div_euclid(86_400) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
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

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    fn subcommands() -> Vec<String> {
        cli::Cli::command()
            .get_subcommands()
            .filter(|s| !s.is_hide_set())
            .map(|s| s.get_name().to_string())
            .collect()
    }

    fn gunzip(path: &Path) -> String {
        let file = fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let mut text = String::new();
        flate2::read::GzDecoder::new(file)
            .read_to_string(&mut text)
            .unwrap_or_else(|e| panic!("{} is not gzip'd text: {e}", path.display()));
        text
    }

    #[test]
    fn generate_writes_every_page_and_completion() {
        let out = tempfile::tempdir().expect("tempdir");
        // A stale page (a removed subcommand) must not survive.
        fs::create_dir_all(out.path().join("man")).unwrap();
        fs::write(out.path().join("man/docker-userns-gone.8.gz"), b"stale").unwrap();
        generate(out.path()).expect("generate");

        let subs = subcommands();
        // The package test and README name these.
        for sub in ["plan", "enable", "disable", "status", "verify", "check"] {
            assert!(subs.iter().any(|s| s == sub), "no {sub} in {subs:?}");
        }

        let mut expected: Vec<String> = subs
            .iter()
            .map(|s| format!("{NAME}-{s}.{SECTION}.gz"))
            .collect();
        expected.push(format!("{NAME}.{SECTION}.gz"));
        expected.sort();
        let mut found: Vec<String> = fs::read_dir(out.path().join("man"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        found.sort();
        assert_eq!(found, expected);

        let main = gunzip(&out.path().join("man/docker-userns.8.gz"));
        assert!(main.starts_with(".ie \\n(.g .ds Aq"), "{main}");
        assert_eq!(main.matches(".ds Aq \\(aq").count(), 1, "one preamble");
        for section in [
            ".SH NAME",
            ".SH \"EXIT STATUS\"",
            ".SH ENVIRONMENT",
            ".SH FILES",
            ".SH \"SEE ALSO\"",
        ] {
            assert!(main.contains(section), "no {section} in:\n{main}");
        }
        // Exit code 0 is the first item of the EXIT STATUS list.
        assert!(main.contains(".TP\n\\fB0\\fR"), "{main}");
        // roff escapes the dashes of names.
        let roff_name = |name: &str| name.replace('-', "\\-");
        for sub in &subs {
            let page_name = roff_name(&format!("{NAME}-{sub}"));
            // Named in SEE ALSO, and its own page names itself and refers back.
            assert!(
                main.contains(&format!("\\fB{page_name}\\fR(8)")),
                "{sub} not in SEE ALSO:\n{main}"
            );
            let page = gunzip(&out.path().join(format!("man/{NAME}-{sub}.{SECTION}.gz")));
            assert!(
                page.contains(&format!(".TH {NAME}-{sub} 8 "))
                    && page.contains(&format!(".SH NAME\n{page_name} \\- ")),
                "{sub}:\n{page}"
            );
            assert!(
                page.contains(&format!("\\fB{}\\fR(8)", roff_name(NAME))),
                "{sub}:\n{page}"
            );
        }

        let mut found: Vec<String> = fs::read_dir(out.path().join("completions"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        found.sort();
        assert_eq!(
            found,
            ["_docker-userns", "docker-userns", "docker-userns.fish"]
        );
        for (_, file) in COMPLETIONS {
            let script = fs::read_to_string(out.path().join("completions").join(file)).unwrap();
            for sub in &subs {
                assert!(script.contains(sub.as_str()), "{file} misses {sub}");
            }
        }
    }

    #[test]
    fn gz_is_gzip_9n() {
        let out = tempfile::tempdir().expect("tempdir");
        let path = out.path().join("page");
        write_gz(&path, b"text\n").unwrap();
        let gz = fs::read(out.path().join("page.gz")).unwrap();
        // Magic, deflate, no flags (no name), mtime 0, XFL 2 (best), OS 3 (Unix).
        assert_eq!(gz[..10], [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 2, 3]);
        assert_eq!(gunzip(&out.path().join("page.gz")), "text\n");
    }

    #[test]
    fn civil_dates() {
        assert_eq!(civil_date(0), "1970-01-01");
        assert_eq!(civil_date(951_782_400), "2000-02-29");
        assert_eq!(civil_date(1_700_000_000), "2023-11-14");
        assert_eq!(civil_date(-86_400), "1969-12-31");
    }

    #[test]
    fn changelog_date_parses() {
        if std::env::var_os("SOURCE_DATE_EPOCH").is_none() {
            let date = release_date().expect("packaging/changelog date");
            assert_eq!(date.len(), 10, "{date}");
        }
    }
}
