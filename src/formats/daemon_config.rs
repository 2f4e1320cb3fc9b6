//! /etc/docker/daemon.json: parse, set or remove `userns-remap`, keep every other key in order.

use serde_json::{Map, Value};

/// Where daemon.json lives.
pub(crate) const PATH: &str = "/etc/docker/daemon.json";

/// The daemon.json key this tool owns.
pub(crate) const KEY: &str = "userns-remap";

/// The user dockerd means by `"userns-remap": "default"`.
pub(crate) const DEFAULT_USER: &str = "dockremap";

/// Why a daemon.json cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// Not JSON at all.
    #[error("invalid JSON at line {line}, column {column}: {message}")]
    Invalid {
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// serde_json's description.
        message: String,
    },
    /// JSON, but not an object.
    #[error("the top level is {0}, but dockerd needs a JSON object")]
    NotObject(&'static str),
    /// `userns-remap` holds something other than a string.
    #[error("\"userns-remap\" is {0}, but dockerd needs a string")]
    RemapNotString(&'static str),
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A parsed daemon.json, remembering its indentation so rewrites look like the original.
#[derive(Debug, Clone, PartialEq)]
pub struct DaemonConfig {
    /// The top-level object, keys in file order.
    pub map: Map<String, Value>,
    indent: String,
}

impl Default for DaemonConfig {
    fn default() -> Self {
        DaemonConfig {
            map: Map::new(),
            indent: "  ".into(),
        }
    }
}

fn detect_indent(text: &str) -> String {
    text.lines()
        .skip(1)
        .map(|l| &l[..l.len() - l.trim_start().len()])
        .find(|ws| !ws.is_empty())
        .filter(|ws| ws.chars().all(|c| c == ' ') || ws.chars().all(|c| c == '\t'))
        .unwrap_or("  ")
        .to_string()
}

impl DaemonConfig {
    /// Parses daemon.json bytes. An empty (or all-blank) file is an empty object, and a UTF-8
    /// byte-order mark is ignored, as dockerd does.
    pub fn parse(bytes: &[u8]) -> Result<DaemonConfig, ConfigError> {
        let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
        if bytes.trim_ascii().is_empty() {
            return Ok(DaemonConfig::default());
        }
        let value: Value = serde_json::from_slice(bytes).map_err(|e| ConfigError::Invalid {
            line: e.line(),
            column: e.column(),
            message: e
                .to_string()
                .split(" at line ")
                .next()
                .unwrap_or_default()
                .to_string(),
        })?;
        let Value::Object(map) = value else {
            return Err(ConfigError::NotObject(kind(&value)));
        };
        let config = DaemonConfig {
            map,
            indent: detect_indent(&String::from_utf8_lossy(bytes)),
        };
        config.remap()?;
        Ok(config)
    }

    /// The configured `userns-remap` value; an empty string counts as not set (dockerd's view).
    pub fn remap(&self) -> Result<Option<&str>, ConfigError> {
        match self.map.get(KEY) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.is_empty() => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(other) => Err(ConfigError::RemapNotString(kind(other))),
        }
    }

    /// A string setting (e.g. `data-root`); None when absent or not a string.
    pub(crate) fn string(&self, key: &str) -> Option<&str> {
        self.map.get(key).and_then(Value::as_str)
    }

    /// `hosts`: the addresses dockerd listens on (empty when not set).
    pub(crate) fn hosts(&self) -> Vec<String> {
        self.map
            .get("hosts")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect()
    }

    /// `live-restore` (None: not set).
    pub(crate) fn live_restore(&self) -> Option<bool> {
        self.map.get("live-restore").and_then(Value::as_bool)
    }

    /// A copy with `userns-remap` set to `value`: in place if the key exists, else appended.
    pub fn with_remap(&self, value: &str) -> DaemonConfig {
        let mut out = self.clone();
        out.map
            .insert(KEY.to_string(), Value::String(value.to_string()));
        out
    }

    /// A copy without `userns-remap`, every other key in its order.
    pub fn without_remap(&self) -> DaemonConfig {
        let mut out = self.clone();
        out.map.shift_remove(KEY);
        out
    }

    /// The document as written to disk: pretty, with the original indentation, newline-ended.
    pub fn render(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let fmt = serde_json::ser::PrettyFormatter::with_indent(self.indent.as_bytes());
        let mut ser = serde_json::Serializer::with_formatter(&mut out, fmt);
        serde::Serialize::serialize(&self.map, &mut ser).expect("a JSON map always serializes");
        out.push(b'\n');
        out
    }
}

/// The value this tool writes for a remap user: `default` for dockremap (what the CIS Docker
/// benchmark checks), the name otherwise.
pub(crate) fn value_for(user: &str) -> String {
    if user == DEFAULT_USER {
        "default".into()
    } else {
        user.into()
    }
}

/// True when a `userns-remap` value (`default`, `user`, `uid`, `user:group`, `uid:gid`) names
/// the given user and its own group.
pub(crate) fn names_user(value: &str, name: &str, uid: Option<u32>, gid: Option<u32>) -> bool {
    let (u, g) = match value.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (value, None),
    };
    let u = if u == "default" { DEFAULT_USER } else { u };
    let user_ok = u == name || uid.is_some_and(|id| u == id.to_string());
    let group_ok = match g {
        None => true,
        Some(g) => g == name || gid.is_some_and(|id| g == id.to_string()),
    };
    user_ok && group_ok && !(value.starts_with("default:"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_key_order_and_indentation() {
        let text = "{\n    \"log-driver\": \"journald\",\n    \"storage-driver\": \"overlay2\",\n    \"zeta\": {\"a\": [1, 2]},\n    \"alpha\": true\n}\n";
        let c = DaemonConfig::parse(text.as_bytes()).unwrap();
        let out = String::from_utf8(c.with_remap("default").render()).unwrap();
        let keys: Vec<String> = c.with_remap("default").map.keys().cloned().collect();
        assert_eq!(
            keys,
            [
                "log-driver",
                "storage-driver",
                "zeta",
                "alpha",
                "userns-remap"
            ]
        );
        assert!(
            out.starts_with("{\n    \"log-driver\": \"journald\",\n"),
            "{out}"
        );
        assert!(
            out.ends_with("    \"userns-remap\": \"default\"\n}\n"),
            "{out}"
        );
        let back = DaemonConfig::parse(out.as_bytes()).unwrap().without_remap();
        assert_eq!(back.map, c.map);
    }

    #[test]
    fn removal_keeps_the_order_of_the_rest() {
        let c = DaemonConfig::parse(br#"{"a":1,"userns-remap":"default","b":2,"c":3}"#).unwrap();
        let keys: Vec<String> = c.without_remap().map.keys().cloned().collect();
        assert_eq!(keys, ["a", "b", "c"]);
    }

    #[test]
    fn setting_replaces_in_place() {
        let c = DaemonConfig::parse(br#"{"a":1,"userns-remap":"","b":2}"#).unwrap();
        assert_eq!(c.remap().unwrap(), None);
        let keys: Vec<String> = c.with_remap("default").map.keys().cloned().collect();
        assert_eq!(keys, ["a", "userns-remap", "b"]);
    }

    #[test]
    fn empty_file_and_bom_are_accepted() {
        assert_eq!(DaemonConfig::parse(b"  \n").unwrap().map.len(), 0);
        assert_eq!(
            DaemonConfig::parse(b"\xEF\xBB\xBF{\"a\":1}")
                .unwrap()
                .map
                .len(),
            1
        );
    }

    #[test]
    fn errors_say_where_and_what() {
        match DaemonConfig::parse(b"{\n  \"a\": 1,\n  \"b\" 2\n}").unwrap_err() {
            ConfigError::Invalid { line, column, .. } => assert_eq!((line, column), (3, 7)),
            e => panic!("{e:?}"),
        }
        assert_eq!(
            DaemonConfig::parse(b"[1]").unwrap_err(),
            ConfigError::NotObject("an array")
        );
        assert_eq!(
            DaemonConfig::parse(br#"{"userns-remap": true}"#).unwrap_err(),
            ConfigError::RemapNotString("a boolean")
        );
    }

    #[test]
    fn tabs_are_kept() {
        let c = DaemonConfig::parse(b"{\n\t\"a\": 1\n}").unwrap();
        assert_eq!(
            c.with_remap("x").render(),
            b"{\n\t\"a\": 1,\n\t\"userns-remap\": \"x\"\n}\n".to_vec()
        );
    }

    #[test]
    fn value_matching() {
        assert_eq!(value_for("dockremap"), "default");
        assert_eq!(value_for("remapper"), "remapper");
        assert!(names_user("default", "dockremap", None, None));
        assert!(names_user(
            "dockremap:dockremap",
            "dockremap",
            Some(101),
            Some(101)
        ));
        assert!(names_user("101:101", "dockremap", Some(101), Some(101)));
        assert!(!names_user("101:0", "dockremap", Some(101), Some(101)));
        assert!(!names_user("alice", "dockremap", Some(101), Some(101)));
        assert!(!names_user("default", "remapper", Some(102), Some(102)));
    }
}
