//! The effective docker.service as systemd would load it, read from files, to find settings
//! that clash with daemon.json (a `--userns-remap` flag) before docker refuses to start.

use anyhow::Result;

use crate::host::root::Root;
use crate::host::systemd::UnitFiles;

/// The unit this tool manages.
pub(crate) const UNIT: &str = "docker.service";

/// Unit directories by priority, highest first: systemd's system unit search path
/// (systemd.unit(5), "System Unit Search Path"; `systemd-analyze unit-paths`), with
/// `/lib/systemd/system` for hosts without a merged /usr. `system.control` is where
/// `systemctl set-property` writes, `transient` holds `systemd-run` units, the `generator`
/// directories what generators make at boot.
pub(crate) const UNIT_DIRS: &[&str] = &[
    "/etc/systemd/system.control",
    "/run/systemd/system.control",
    "/run/systemd/transient",
    "/run/systemd/generator.early",
    "/etc/systemd/system",
    "/etc/systemd/system.attached",
    "/run/systemd/system",
    "/run/systemd/system.attached",
    "/run/systemd/generator",
    "/usr/local/lib/systemd/system",
    "/usr/lib/systemd/system",
    "/lib/systemd/system",
    "/run/systemd/generator.late",
];

/// Debian's environment file for dockerd flags.
pub(crate) const DEFAULT_FILE: &str = "/etc/default/docker";

/// A place in a file.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub(crate) struct Origin {
    /// Path inside the root.
    pub(crate) file: String,
    /// 1-based line (of the first line of a continued setting).
    pub(crate) line: usize,
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.file, self.line)
    }
}

/// What was learnt about docker.service.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct UnitScan {
    /// The unit file in use, if any (None: docker is not installed, as far as files tell).
    pub(crate) unit_file: Option<String>,
    /// The unit is linked to /dev/null.
    pub(crate) masked: bool,
    /// Drop-ins applied, in order.
    pub(crate) dropins: Vec<String>,
    /// Every place that passes `--userns-remap` to dockerd.
    pub(crate) remap_flags: Vec<Origin>,
    /// The effective ExecStart as words, variables expanded (empty when unknown).
    pub(crate) exec_start: Vec<String>,
    /// A `--config-file` given to dockerd there, and where the ExecStart line is.
    pub(crate) config_file: Option<(String, Origin)>,
    /// Where each word of `exec_start` comes from: the ExecStart line, or the line that sets
    /// the variable it was expanded from (e.g. `DOCKER_OPTS` in /etc/default/docker).
    pub(crate) word_origins: Vec<Origin>,
}

impl UnitScan {
    /// Every value dockerd gets for the flag named `names` (long `--x`, short `-x`, or an
    /// alias), in order, with where it was set: `--x v`, `--x=v`, `-x v`, `-x=v`, `-xv`.
    pub(crate) fn flag_values(&self, names: &[&str]) -> Vec<(String, Origin)> {
        let words = &self.exec_start;
        let mut out = Vec::new();
        let mut i = 1;
        while i < words.len() {
            let w = &words[i];
            let origin = || self.word_origins.get(i).cloned().unwrap_or_default();
            for name in names {
                let Some(rest) = w.strip_prefix(name) else {
                    continue;
                };
                if rest.is_empty() {
                    if let Some(v) = words.get(i + 1) {
                        out.push((v.clone(), origin()));
                        i += 1;
                    }
                } else if let Some(v) = rest.strip_prefix('=') {
                    out.push((v.to_string(), origin()));
                } else if !name.starts_with("--") && name.len() == 2 {
                    out.push((rest.to_string(), origin()));
                } else {
                    continue;
                }
                break;
            }
            i += 1;
        }
        out
    }
}

/// A `Key=value` setting from a unit file, continuation lines joined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    /// The section it is in, without brackets (empty before the first section).
    pub(crate) section: String,
    /// The key, trimmed.
    pub key: String,
    /// The value, trimmed, continuation lines joined with a space.
    pub value: String,
    /// 1-based line of its first line.
    pub line: usize,
}

/// Parses a unit file or drop-in into its settings, in order (systemd's syntax as far as it
/// matters here: sections, `#`/`;` comments, `\` continuation lines, comments inside a
/// continued setting skipped). Never fails: a line that is not `Key=value` is ignored.
pub fn parse_unit(text: &str) -> Vec<Setting> {
    let mut out = Vec::new();
    let mut section = String::new();
    let mut lines = text.lines().enumerate();
    while let Some((i, raw)) = lines.next() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if line.starts_with('[') && line.ends_with(']') {
            section = line[1..line.len() - 1].to_string();
            continue;
        }
        let mut joined = line.to_string();
        while joined.ends_with('\\') {
            joined.pop();
            joined.push(' ');
            match lines.next() {
                Some((_, next)) => {
                    let next = next.trim();
                    if next.starts_with('#') || next.starts_with(';') {
                        continue;
                    }
                    joined.push_str(next);
                }
                None => break,
            }
        }
        if let Some((k, v)) = joined.split_once('=') {
            out.push(Setting {
                section: section.clone(),
                key: k.trim().to_string(),
                value: v.trim().to_string(),
                line: i + 1,
            });
        }
    }
    out
}

/// Splits a command line into words, honouring single and double quotes.
pub fn split_words(s: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    let mut in_word = false;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), '\\') => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
            }
            (Some(_), c) => cur.push(c),
            (None, '"' | '\'') => {
                quote = Some(c);
                in_word = true;
            }
            (None, c) if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            (None, c) => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(cur);
    }
    words
}

fn is_remap_flag(word: &str) -> bool {
    word == "--userns-remap" || word.starts_with("--userns-remap=")
}

/// Names of variables a command line expands: `$NAME` and `${NAME}`.
fn referenced_vars(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'$' {
            let (start, braced) = if b.get(i + 1) == Some(&b'{') {
                (i + 2, true)
            } else {
                (i + 1, false)
            };
            let mut j = start;
            while j < b.len() && (b[j].is_ascii_alphanumeric() || b[j] == b'_') {
                j += 1;
            }
            if j > start {
                out.push(s[start..j].to_string());
            }
            i = if braced { j + 1 } else { j };
        } else {
            i += 1;
        }
    }
    out
}

/// Replaces each `${NAME}` in `word` by the variable's value, in one pass: a value is never
/// scanned again (a value holding `${NAME}` itself stays as it is, as with systemd). Replacing
/// name by name over the whole word, as before, grew exponentially when a value referred to
/// its own variable (found by the `docker_unit` fuzz target: 152 bytes asked for 2.3 GB).
fn substitute_braced(word: &str, var: &dyn Fn(&str) -> String) -> String {
    let mut out = String::with_capacity(word.len());
    let mut rest = word;
    while let Some(i) = rest.find("${") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        let name_len = after
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(after.len());
        if name_len > 0 && after[name_len..].starts_with('}') {
            out.push_str(&var(&after[..name_len]));
            rest = &after[name_len + 1..];
        } else {
            out.push_str("${");
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// Splits an ExecStart value into words the way systemd does for the parts that matter here:
/// a word that is exactly `$NAME` becomes the variable's words, `${NAME}` inside a word is
/// replaced in place; the first word loses its `-@:+!` prefixes.
pub fn expand(value: &str, var: &dyn Fn(&str) -> String) -> Vec<String> {
    let mut out = Vec::new();
    for w in split_words(value) {
        if let Some(name) = w.strip_prefix('$').filter(|n| !n.starts_with('{'))
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            out.extend(split_words(&var(name)));
            continue;
        }
        out.push(substitute_braced(&w, var));
    }
    if let Some(first) = out.first_mut() {
        *first = first
            .trim_start_matches(['-', '@', ':', '+', '!'])
            .to_string();
    }
    out
}

/// `KEY=value` lines of an environment file (systemd's EnvironmentFile= syntax, simplified:
/// comments, `export`, quotes, continuation lines).
pub fn parse_env_file(text: &str) -> Vec<(String, String, usize)> {
    let mut out = Vec::new();
    let mut lines = text.lines().enumerate();
    while let Some((i, raw)) = lines.next() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        let mut joined = line.to_string();
        while joined.ends_with('\\') {
            joined.pop();
            match lines.next() {
                Some((_, next)) => joined.push_str(next.trim()),
                None => break,
            }
        }
        let body = joined.strip_prefix("export ").unwrap_or(&joined);
        if let Some((k, v)) = body.split_once('=') {
            let v = v.trim();
            let v = if v.len() >= 2
                && ((v.starts_with('"') && v.ends_with('"'))
                    || (v.starts_with('\'') && v.ends_with('\'')))
            {
                &v[1..v.len() - 1]
            } else {
                v
            };
            out.push((k.trim().to_string(), v.to_string(), i + 1));
        }
    }
    out
}

/// Reads docker.service, its drop-ins (also when no unit file exists yet: a drop-in prepared
/// before docker is installed applies once it is) and the environment files it loads, and finds
/// every `--userns-remap` dockerd would get. `/etc/default/docker` is also checked when no unit is
/// found, since an init script may read it.
///
/// The files are those of systemd's search path ([`UNIT_DIRS`]) on disk. On the live host,
/// systemd is also asked which files it loaded (`FragmentPath`, `DropInPaths`): the next
/// restart uses those, wherever they are; both are read, so a conflict in either is found.
/// Under `--root` (an image, no systemd of its own) the disk alone tells.
pub(crate) fn scan(root: &Root) -> Result<UnitScan> {
    let loaded = if root.is_host() {
        crate::host::systemd::Systemd::connect()
            .ok()
            .and_then(|sd| sd.unit_files(UNIT).ok())
    } else {
        None
    };
    scan_with(root, loaded.as_ref())
}

/// [`scan`] with the files systemd loaded the unit from (None: not known).
pub(crate) fn scan_with(root: &Root, loaded: Option<&UnitFiles>) -> Result<UnitScan> {
    let mut scan = UnitScan::default();
    let mut settings = read_unit_file(root, loaded, &mut scan)?;
    // Drop-ins apply whenever the unit is not masked, also when no unit file exists yet: a
    // drop-in prepared before docker is installed takes effect once it is.
    if !scan.masked {
        for abs in dropin_paths(root, loaded).values() {
            if let Some(bytes) = root.read_optional(abs)? {
                let text = String::from_utf8_lossy(&bytes);
                settings.extend(parse_unit(&text).into_iter().map(|s| (abs.clone(), s)));
                scan.dropins.push(abs.clone());
            }
        }
    }
    let (exec, mut env, mut env_files) = service_settings(settings);
    if scan.unit_file.is_none() {
        env_files.push(DEFAULT_FILE.to_string());
    }
    read_env_files(root, &env_files, &mut env)?;
    if let Some((file, s)) = exec.last() {
        effective_exec(&mut scan, file, s, &env);
    }
    find_remap_flags(&mut scan, &exec, &env);
    Ok(scan)
}

/// A variable of the unit's environment: name, value, where it was set.
type EnvVar = (String, String, Origin);

/// The last definition of `name` (later ones override earlier ones).
fn lookup<'e>(env: &'e [EnvVar], name: &str) -> Option<&'e EnvVar> {
    env.iter().rev().find(|(k, _, _)| k == name)
}

/// Reads the unit file (systemd's own fragment first: a linked unit lives outside the search
/// path; then the search path) into `scan` (`unit_file`, `masked`), returning its settings.
fn read_unit_file(
    root: &Root,
    loaded: Option<&UnitFiles>,
    scan: &mut UnitScan,
) -> Result<Vec<(String, Setting)>> {
    let fragment = loaded
        .map(|l| l.fragment.clone())
        .filter(|f| f.starts_with('/') && f != "/dev/null");
    for abs in fragment
        .into_iter()
        .chain(UNIT_DIRS.iter().map(|dir| format!("{dir}/{UNIT}")))
    {
        let Some(meta) = root.symlink_metadata(&abs)? else {
            continue;
        };
        if meta.file_type().is_symlink() {
            let target = root.read_link(&abs).unwrap_or_default();
            if target.as_os_str() == "/dev/null" {
                scan.masked = true;
                scan.unit_file = Some(abs);
                return Ok(Vec::new());
            }
        }
        if let Some(bytes) = root.read_optional(&abs)? {
            let text = String::from_utf8_lossy(&bytes);
            let settings = parse_unit(&text).into_iter().map(|s| (abs.clone(), s));
            let settings = settings.collect();
            scan.unit_file = Some(abs);
            return Ok(settings);
        }
    }
    Ok(Vec::new())
}

/// The drop-ins by file name, in the order systemd applies them: one per name, the
/// highest-priority directory's; then what systemd loaded that the disk scan did not find (a
/// directory outside the list), under its name.
fn dropin_paths(
    root: &Root,
    loaded: Option<&UnitFiles>,
) -> std::collections::BTreeMap<String, String> {
    let mut dropins: std::collections::BTreeMap<String, String> = Default::default();
    for dir in UNIT_DIRS.iter().rev() {
        let Ok(names) = root.read_dir_names(&format!("{dir}/{UNIT}.d")) else {
            continue;
        };
        for name in names {
            if name.ends_with(".conf") {
                dropins.insert(name.clone(), format!("{dir}/{UNIT}.d/{name}"));
            }
        }
    }
    for abs in loaded.map(|l| l.dropins.as_slice()).unwrap_or_default() {
        if let Some((_, name)) = abs.rsplit_once('/')
            && abs.starts_with('/')
            && !dropins.values().any(|v| v == abs)
        {
            dropins
                .entry(name.to_string())
                .or_insert_with(|| abs.clone());
        }
    }
    dropins
}

/// The `[Service]` settings that matter, applied in order (an empty value resets the list):
/// the ExecStart lines, the Environment variables, the EnvironmentFile paths.
fn service_settings(
    settings: Vec<(String, Setting)>,
) -> (Vec<(String, Setting)>, Vec<EnvVar>, Vec<String>) {
    let mut exec: Vec<(String, Setting)> = Vec::new();
    let mut env: Vec<EnvVar> = Vec::new();
    let mut env_files: Vec<String> = Vec::new();
    for (file, s) in settings.into_iter().filter(|(_, s)| s.section == "Service") {
        match s.key.as_str() {
            "ExecStart" if s.value.is_empty() => exec.clear(),
            "ExecStart" => exec.push((file, s)),
            "Environment" if s.value.is_empty() => env.clear(),
            "Environment" => {
                for w in split_words(&s.value) {
                    if let Some((k, v)) = w.split_once('=') {
                        let origin = Origin {
                            file: file.clone(),
                            line: s.line,
                        };
                        env.push((k.to_string(), v.to_string(), origin));
                    }
                }
            }
            "EnvironmentFile" if s.value.is_empty() => env_files.clear(),
            "EnvironmentFile" => env_files.push(s.value.trim_start_matches('-').to_string()),
            _ => {}
        }
    }
    (exec, env, env_files)
}

/// Adds the variables of the environment files to `env`: EnvironmentFile= values override
/// Environment= ones, later files override earlier.
fn read_env_files(root: &Root, env_files: &[String], env: &mut Vec<EnvVar>) -> Result<()> {
    for f in env_files.iter().filter(|f| f.starts_with('/')) {
        if let Some(bytes) = root.read_optional(f)? {
            for (k, v, line) in parse_env_file(&String::from_utf8_lossy(&bytes)) {
                let origin = Origin {
                    file: f.clone(),
                    line,
                };
                env.push((k, v, origin));
            }
        }
    }
    Ok(())
}

/// The effective ExecStart (`s`, in `file`) into `scan`: its words with variables expanded,
/// where each word comes from, and a `--config-file` given there.
fn effective_exec(scan: &mut UnitScan, file: &str, s: &Setting, env: &[EnvVar]) {
    let value = |name: &str| {
        lookup(env, name)
            .map(|(_, v, _)| v.clone())
            .unwrap_or_default()
    };
    scan.exec_start = expand(&s.value, &value);
    let line = Origin {
        file: file.to_string(),
        line: s.line,
    };
    for w in split_words(&s.value) {
        match w.strip_prefix('$').filter(|n| {
            !n.starts_with('{') && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        }) {
            Some(name) => {
                let n = split_words(&value(name)).len();
                let from = lookup(env, name).map_or(line.clone(), |(_, _, o)| o.clone());
                scan.word_origins.extend(std::iter::repeat_n(from, n));
            }
            None => scan.word_origins.push(line.clone()),
        }
    }
    let words = &scan.exec_start;
    let flag = words.iter().enumerate().find_map(|(i, w)| {
        w.strip_prefix("--config-file=")
            .map(str::to_string)
            .or_else(|| {
                (w == "--config-file").then(|| words.get(i + 1).cloned().unwrap_or_default())
            })
    });
    scan.config_file = flag.map(|f| (f, line));
}

/// Every place a `--userns-remap` reaches dockerd from: an ExecStart line holding it, or the
/// variable (set in the unit or an environment file) an ExecStart line expands that holds it.
/// `DOCKER_OPTS` counts when no unit is found (an init script may read /etc/default/docker).
fn find_remap_flags(scan: &mut UnitScan, exec: &[(String, Setting)], env: &[EnvVar]) {
    let mut refs: Vec<String> = Vec::new();
    for (file, s) in exec {
        if split_words(&s.value).iter().any(|w| is_remap_flag(w)) {
            scan.remap_flags.push(Origin {
                file: file.clone(),
                line: s.line,
            });
        }
        refs.extend(referenced_vars(&s.value));
    }
    if scan.unit_file.is_none() {
        refs.push("DOCKER_OPTS".into());
    }
    refs.sort();
    refs.dedup();
    for var in refs {
        if let Some((_, value, origin)) = lookup(env, &var)
            && split_words(value).iter().any(|w| is_remap_flag(w))
        {
            scan.remap_flags.push(origin.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_and_quotes() {
        assert_eq!(
            split_words(r#"/usr/sbin/dockerd -H fd:// "--label=a b" '--x=y'"#),
            ["/usr/sbin/dockerd", "-H", "fd://", "--label=a b", "--x=y"]
        );
    }

    #[test]
    fn variables_are_found_plain_and_braced() {
        assert_eq!(
            referenced_vars("dockerd $DOCKER_OPTS ${EXTRA} $$"),
            ["DOCKER_OPTS", "EXTRA"]
        );
    }

    #[test]
    fn unit_parsing_joins_continuations_and_tracks_sections() {
        let s = parse_unit(
            "[Unit]\nDescription=x\n[Service]\nExecStart=/a \\\n  --b \\\n  --c\nType=notify\n",
        );
        assert_eq!(s[1].value, "/a  --b  --c");
        assert_eq!(s[1].line, 4);
        assert_eq!(s[1].section, "Service");
        assert_eq!(s[2].key, "Type");
    }

    #[test]
    fn exec_start_expansion() {
        let var = |n: &str| {
            if n == "DOCKER_OPTS" {
                "--dns 1.1.1.1 --debug".to_string()
            } else {
                String::new()
            }
        };
        assert_eq!(
            expand(
                "-/usr/sbin/dockerd -H fd:// $DOCKER_OPTS --x=${EMPTY}y $UNSET",
                &var
            ),
            [
                "/usr/sbin/dockerd",
                "-H",
                "fd://",
                "--dns",
                "1.1.1.1",
                "--debug",
                "--x=y"
            ]
        );
    }

    #[test]
    fn a_value_referring_to_its_own_variable_is_expanded_once() {
        // Fuzz regression (oom-a50a9339…): "${5}" whose value holds "${5}" twice, referenced
        // many times, doubled the word once per reference.
        let var = |n: &str| {
            if n == "5" {
                "${5}${5}".to_string()
            } else {
                String::new()
            }
        };
        let word = "${5}".repeat(40);
        assert_eq!(expand(&word, &var), ["${5}${5}".repeat(40)]);
        assert_eq!(expand("a${X}b${ c ${Y", &var), ["ab${", "c", "${Y"]);
        let text = "=$-$${\n5=$-$${5}${5}\u{fffd}$-$${5}${5}5}${5}\n[Service]\nExecStart=${5}${5}${5}${5}${5}${5}${5}${5}${5}${5}${5}${5}${5}${5}${5}${5}${5}${5}${5}${5}${5}${5}${5}${5}${5}${5}${5}${5}${5}${5}${5}${5}${5}${5}${5}${5}\n";
        let env = parse_env_file(text);
        let value = |n: &str| {
            env.iter()
                .rev()
                .find(|(k, _, _)| k == n)
                .map(|(_, v, _)| v.clone())
                .unwrap_or_default()
        };
        for st in parse_unit(text) {
            let words = expand(&st.value, &value);
            assert!(
                words.iter().map(String::len).sum::<usize>() < 10_000,
                "{st:?}"
            );
        }
    }

    #[test]
    fn env_files() {
        let e = parse_env_file(
            "# c\nDOCKER_OPTS=\"--userns-remap=default --dns 8.8.8.8\"\nexport A='b'\n",
        );
        assert_eq!(
            e[0],
            (
                "DOCKER_OPTS".into(),
                "--userns-remap=default --dns 8.8.8.8".into(),
                2
            )
        );
        assert_eq!(e[1], ("A".into(), "b".into(), 3));
    }

    #[test]
    fn flags_are_found_with_the_line_that_sets_them() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::new(dir.path()).unwrap();
        let put = |abs: &str, text: &str| {
            let p = root.host_path(abs);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        };
        put(
            "/lib/systemd/system/docker.service",
            "[Service]\nEnvironmentFile=-/etc/default/docker\nExecStart=/usr/sbin/dockerd -H fd:// $DOCKER_OPTS --live-restore\n",
        );
        put(
            "/etc/default/docker",
            "# flags\nDOCKER_OPTS=\"--dns 1.1.1.1 --data-root /srv/dk/root\"\n",
        );
        let scan = scan(&root).unwrap();
        assert_eq!(scan.word_origins.len(), scan.exec_start.len());
        let data = scan.flag_values(&["--data-root"]);
        assert_eq!(
            data,
            [(
                "/srv/dk/root".to_string(),
                Origin {
                    file: "/etc/default/docker".into(),
                    line: 2
                }
            )]
        );
        let hosts = scan.flag_values(&["-H", "--host"]);
        assert_eq!(hosts[0].0, "fd://");
        assert_eq!(hosts[0].1.file, "/lib/systemd/system/docker.service");
        assert_eq!(hosts[0].1.line, 3);
    }

    fn tree(files: &[(&str, &str)]) -> (tempfile::TempDir, Root) {
        let t = tempfile::tempdir().unwrap();
        for (path, text) in files {
            let p = t.path().join(path.trim_start_matches('/'));
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        }
        let root = Root::new(t.path()).unwrap();
        (t, root)
    }

    const UNIT_TEXT: &str = "[Service]\nExecStart=/usr/bin/dockerd -H fd://\n";
    const REMAP_DROPIN: &str =
        "[Service]\nExecStart=\nExecStart=/usr/bin/dockerd -H fd:// --userns-remap=default\n";

    #[test]
    fn drop_ins_of_systemctl_set_property_transient_units_and_generators_are_read() {
        for dir in [
            "/etc/systemd/system.control",
            "/run/systemd/system.control",
            "/run/systemd/transient",
            "/run/systemd/generator.early",
            "/run/systemd/generator",
            "/run/systemd/generator.late",
        ] {
            let (_t, root) = tree(&[
                ("/usr/lib/systemd/system/docker.service", UNIT_TEXT),
                (&format!("{dir}/docker.service.d/50-x.conf"), REMAP_DROPIN),
            ]);
            let scan = scan(&root).unwrap();
            assert_eq!(
                scan.remap_flags,
                [Origin {
                    file: format!("{dir}/docker.service.d/50-x.conf"),
                    line: 3
                }],
                "{dir}"
            );
        }
    }

    #[test]
    fn the_files_systemd_loaded_count_also_outside_the_search_path() {
        let (_t, root) = tree(&[
            ("/usr/lib/systemd/system/docker.service", UNIT_TEXT),
            (
                "/opt/docker/docker.service",
                "[Service]\nExecStart=/opt/docker/dockerd\n",
            ),
            ("/srv/units/docker.service.d/90-remap.conf", REMAP_DROPIN),
        ]);
        let loaded = UnitFiles {
            fragment: "/opt/docker/docker.service".into(),
            dropins: vec!["/srv/units/docker.service.d/90-remap.conf".into()],
            need_reload: false,
        };
        let scan = scan_with(&root, Some(&loaded)).unwrap();
        assert_eq!(
            scan.unit_file.as_deref(),
            Some("/opt/docker/docker.service")
        );
        assert_eq!(scan.dropins, ["/srv/units/docker.service.d/90-remap.conf"]);
        assert_eq!(scan.remap_flags.len(), 1, "{scan:?}");
        // Without systemd's view, the search path alone.
        let disk = scan_with(&root, None).unwrap();
        assert_eq!(
            disk.unit_file.as_deref(),
            Some("/usr/lib/systemd/system/docker.service")
        );
        assert!(disk.remap_flags.is_empty());
    }
}
