//! Parser for /etc/login.defs: the subordinate-id, user and system-uid bounds shadow uses.

use std::collections::HashMap;

/// A value in login.defs that is not a number where one is needed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {key} has value {value:?}, which is not a number")]
pub struct BadNumber {
    /// 1-based line number.
    pub(crate) line: usize,
    /// The key, e.g. `SUB_UID_MIN`.
    pub(crate) key: String,
    /// The raw value.
    pub(crate) value: String,
}

/// Bounds for one subordinate-id file, as shadow reads them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct SubIdBounds {
    /// Lowest id a range may use (`SUB_UID_MIN`).
    pub min: u64,
    /// Highest id a range may use (`SUB_UID_MAX`).
    pub max: u64,
    /// Size of an automatically allocated range (`SUB_UID_COUNT`).
    pub count: u64,
}

/// The settings of login.defs this tool uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginDefs {
    /// Bounds for /etc/subuid.
    pub(crate) subuid: SubIdBounds,
    /// Bounds for /etc/subgid.
    pub(crate) subgid: SubIdBounds,
    /// Lowest uid of a regular (non-system) user (`UID_MIN`).
    pub(crate) uid_min: u64,
    /// Highest uid of a regular user (`UID_MAX`): ids at or below it belong to accounts, never
    /// to a subordinate range.
    pub(crate) uid_max: u64,
    /// Highest gid of a regular group (`GID_MAX`), the same for /etc/subgid.
    pub(crate) gid_max: u64,
    /// Lowest uid `useradd --system` gives (`SYS_UID_MIN`, default 101).
    pub(crate) sys_uid_min: u64,
    /// Highest uid `useradd --system` gives (`SYS_UID_MAX`, default `UID_MIN` - 1).
    pub(crate) sys_uid_max: u64,
}

/// Debian's compiled-in defaults (shadow 4.13), used for every key that is absent.
pub(crate) const DEFAULT_SUB_MIN: u64 = 100_000;
/// See [`DEFAULT_SUB_MIN`].
pub(crate) const DEFAULT_SUB_MAX: u64 = 600_100_000;
/// See [`DEFAULT_SUB_MIN`].
pub(crate) const DEFAULT_SUB_COUNT: u64 = 65_536;
/// See [`DEFAULT_SUB_MIN`].
pub(crate) const DEFAULT_UID_MIN: u64 = 1000;
/// See [`DEFAULT_SUB_MIN`] (`UID_MAX` and `GID_MAX`).
pub(crate) const DEFAULT_UID_MAX: u64 = 60_000;
/// See [`DEFAULT_SUB_MIN`]; `SYS_UID_MAX` defaults to `UID_MIN` - 1.
pub(crate) const DEFAULT_SYS_UID_MIN: u64 = 101;

impl Default for LoginDefs {
    fn default() -> Self {
        let b = SubIdBounds {
            min: DEFAULT_SUB_MIN,
            max: DEFAULT_SUB_MAX,
            count: DEFAULT_SUB_COUNT,
        };
        LoginDefs {
            subuid: b,
            subgid: b,
            uid_min: DEFAULT_UID_MIN,
            uid_max: DEFAULT_UID_MAX,
            gid_max: DEFAULT_UID_MAX,
            sys_uid_min: DEFAULT_SYS_UID_MIN,
            sys_uid_max: DEFAULT_UID_MIN - 1,
        }
    }
}

/// Parses a number the way shadow's `getulong` does (`strtoul` base 0): decimal, `0x` hex,
/// leading-zero octal.
fn parse_number(s: &str) -> Option<u64> {
    if let Some(hex) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        u64::from_str_radix(hex, 16).ok()
    } else if s.len() > 1 && s.starts_with('0') {
        u64::from_str_radix(&s[1..], 8).ok()
    } else {
        s.parse().ok()
    }
}

impl LoginDefs {
    /// Parses login.defs text. Unknown keys are ignored; a key this tool needs with a value
    /// that is not a number is an error (the bounds would be guessed otherwise). When a key
    /// appears twice the last one wins, as in shadow.
    pub fn parse(text: &str) -> Result<LoginDefs, BadNumber> {
        let mut raw: HashMap<&str, (usize, &str)> = HashMap::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut parts = line.splitn(2, |c: char| c.is_ascii_whitespace());
            let key = parts.next().unwrap_or_default();
            let value = parts.next().unwrap_or_default().trim();
            let value = value.trim_matches('"');
            raw.insert(key, (i + 1, value));
        }
        let get = |key: &str, default: u64| -> Result<u64, BadNumber> {
            match raw.get(key) {
                None => Ok(default),
                Some((line, value)) => parse_number(value).ok_or_else(|| BadNumber {
                    line: *line,
                    key: key.to_string(),
                    value: value.to_string(),
                }),
            }
        };
        let uid_min = get("UID_MIN", DEFAULT_UID_MIN)?;
        Ok(LoginDefs {
            subuid: SubIdBounds {
                min: get("SUB_UID_MIN", DEFAULT_SUB_MIN)?,
                max: get("SUB_UID_MAX", DEFAULT_SUB_MAX)?,
                count: get("SUB_UID_COUNT", DEFAULT_SUB_COUNT)?,
            },
            subgid: SubIdBounds {
                min: get("SUB_GID_MIN", DEFAULT_SUB_MIN)?,
                max: get("SUB_GID_MAX", DEFAULT_SUB_MAX)?,
                count: get("SUB_GID_COUNT", DEFAULT_SUB_COUNT)?,
            },
            uid_min,
            uid_max: get("UID_MAX", DEFAULT_UID_MAX)?,
            gid_max: get("GID_MAX", DEFAULT_UID_MAX)?,
            sys_uid_min: get("SYS_UID_MIN", DEFAULT_SYS_UID_MIN)?,
            // shadow's find_new_uid: SYS_UID_MAX defaults to UID_MIN - 1.
            sys_uid_max: get("SYS_UID_MAX", uid_min.saturating_sub(1))?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absent_keys_take_debian_defaults() {
        let d = LoginDefs::parse("# nothing here\nMAIL_DIR /var/mail\n").unwrap();
        assert_eq!(d, LoginDefs::default());
    }

    #[test]
    fn reads_bounds_in_every_base_and_last_wins() {
        let text = "SUB_UID_MIN\t200000\nSUB_UID_MAX 0x7fffffff\nSUB_UID_COUNT 010\n\
                    SUB_GID_MIN 300000\nSUB_GID_MIN 400000\n  UID_MIN   5000  \n";
        let d = LoginDefs::parse(text).unwrap();
        assert_eq!(
            d.subuid,
            SubIdBounds {
                min: 200000,
                max: 0x7fff_ffff,
                count: 8
            }
        );
        assert_eq!(d.subgid.min, 400000);
        assert_eq!(d.subgid.max, DEFAULT_SUB_MAX);
        assert_eq!(d.uid_min, 5000);
        // SYS_UID_MAX follows UID_MIN when unset, as in useradd.
        assert_eq!((d.sys_uid_min, d.sys_uid_max), (101, 4999));
        assert_eq!((d.uid_max, d.gid_max), (60000, 60000));
        let d =
            LoginDefs::parse("UID_MAX 70000\nGID_MAX 80000\nSYS_UID_MIN 200\nSYS_UID_MAX 5000\n")
                .unwrap();
        assert_eq!((d.uid_max, d.gid_max), (70000, 80000));
        assert_eq!((d.sys_uid_min, d.sys_uid_max), (200, 5000));
    }

    #[test]
    fn a_bad_number_names_its_line() {
        let err = LoginDefs::parse("UMASK 022\n\nSUB_GID_MAX lots\n").unwrap_err();
        assert_eq!(err.line, 3);
        assert_eq!(err.key, "SUB_GID_MAX");
        assert!(err.to_string().contains("line 3"));
    }

    #[test]
    fn a_bad_value_of_an_unused_key_is_ignored() {
        assert!(LoginDefs::parse("PASS_MAX_DAYS forever\n").is_ok());
    }
}
