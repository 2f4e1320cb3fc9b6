//! The PromQL of packaging/prometheus/docker-userns.rules.yml and
//! packaging/grafana/docker-userns.json, and the metric names it uses. Shared by
//! tests/alerts.rs (against `prometheus::render` of a status that has every value) and
//! tests/real_host_prometheus.rs (against the file `status --prometheus` writes on a real host).
//!
//! The rules file is read with a small line parser written for its own layout (the project
//! has no YAML crate): `- alert: NAME` and a one-line `expr: ...` under it.

#![allow(dead_code)]

use std::collections::BTreeSet;
use std::path::PathBuf;

use serde_json::Value;

pub fn packaging(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("packaging")
        .join(rel)
}

pub const RULES: &str = "prometheus/docker-userns.rules.yml";
pub const RULE_TESTS: &str = "prometheus/docker-userns.rules.test.yml";
pub const DASHBOARD: &str = "grafana/docker-userns.json";

/// Metrics the queries may use that node_exporter writes, not this tool.
pub const NODE_EXPORTER_METRICS: &[&str] = &["node_textfile_mtime_seconds"];

/// (alert name, expr) of every alert in the rules file, in order. Panics on an alert without
/// a one-line expr.
pub fn alerts() -> Vec<(String, String)> {
    let path = packaging(RULES);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    let mut out: Vec<(String, Option<String>)> = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let t = line.trim_start();
        if let Some(name) = t.strip_prefix("- alert:") {
            out.push((name.trim().to_string(), None));
        } else if let Some(expr) = t.strip_prefix("expr:") {
            let expr = expr.trim();
            assert!(
                !expr.is_empty() && !expr.starts_with(['|', '>']),
                "{path:?}:{}: keep each expr on one line (this parser reads only that)",
                n + 1
            );
            let last = out
                .last_mut()
                .unwrap_or_else(|| panic!("{path:?}:{}: expr before any alert", n + 1));
            assert!(last.1.is_none(), "{path:?}:{}: second expr", n + 1);
            last.1 = Some(expr.to_string());
        } else if t.starts_with("- record:") {
            panic!("{path:?}:{}: recording rules are not expected", n + 1);
        }
    }
    assert!(!out.is_empty(), "{path:?}: no alert");
    out.into_iter()
        .map(|(name, expr)| {
            let expr = expr.unwrap_or_else(|| panic!("{path:?}: alert {name} has no expr"));
            (name, expr)
        })
        .collect()
}

/// The dashboard as JSON.
pub fn dashboard() -> Value {
    let path = packaging(DASHBOARD);
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{path:?} is not JSON: {e}"))
}

/// (panel title, expr) of every target of every panel, and of the templating variables'
/// queries (`label_values(METRIC, label)`).
pub fn dashboard_exprs() -> Vec<(String, String)> {
    let d = dashboard();
    let mut out = Vec::new();
    for p in d["panels"].as_array().expect("panels") {
        for t in p["targets"].as_array().into_iter().flatten() {
            if let Some(e) = t["expr"].as_str() {
                out.push((
                    p["title"].as_str().unwrap_or("?").to_string(),
                    e.to_string(),
                ));
            }
        }
    }
    for v in d["templating"]["list"].as_array().into_iter().flatten() {
        if v["type"] == "query" {
            let q = v["query"]["query"]
                .as_str()
                .or_else(|| v["query"].as_str())
                .expect("a query variable's query");
            out.push((format!("variable {}", v["name"]), q.to_string()));
        }
    }
    out
}

/// The metric names in a PromQL expression: identifiers outside strings, label matchers
/// (`{...}`), ranges (`[...]`) and label lists (`on (...)`, `by (...)`, ...), that are not
/// functions (followed by `(`), keywords, or the label argument of `label_values`.
pub fn metric_names(expr: &str) -> BTreeSet<String> {
    // Binary operators, modifiers, and aggregations (`sum by (x) (...)`: not followed by `(`).
    const KEYWORDS: &[&str] = &[
        "and",
        "or",
        "unless",
        "bool",
        "offset",
        "sum",
        "min",
        "max",
        "avg",
        "count",
        "group",
        "stddev",
        "stdvar",
        "topk",
        "bottomk",
        "quantile",
        "count_values",
    ];
    const LABEL_LISTS: &[&str] = &[
        "on",
        "by",
        "without",
        "ignoring",
        "group_left",
        "group_right",
    ];
    let chars: Vec<char> = expr.chars().collect();
    let mut names = BTreeSet::new();
    let mut i = 0;
    // Depth in label_values( ... ): its second argument is a label name.
    let mut label_values_depth: Option<usize> = None;
    let mut paren = 0usize;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '"' | '\'' | '`' => {
                i += 1;
                while i < chars.len() && chars[i] != c {
                    if chars[i] == '\\' && c != '`' {
                        i += 1;
                    }
                    i += 1;
                }
                i += 1;
            }
            '{' | '[' => {
                let close = if c == '{' { '}' } else { ']' };
                while i < chars.len() && chars[i] != close {
                    if chars[i] == '"' {
                        i += 1;
                        while i < chars.len() && chars[i] != '"' {
                            if chars[i] == '\\' {
                                i += 1;
                            }
                            i += 1;
                        }
                    }
                    i += 1;
                }
                i += 1;
            }
            '(' => {
                paren += 1;
                i += 1;
            }
            ')' => {
                if label_values_depth == Some(paren) {
                    label_values_depth = None;
                }
                paren = paren.saturating_sub(1);
                i += 1;
            }
            ',' if label_values_depth == Some(paren) => {
                // label_values(METRIC, LABEL): skip to its closing parenthesis.
                while i < chars.len() && chars[i] != ')' {
                    i += 1;
                }
            }
            c if c.is_ascii_alphabetic() || c == '_' || c == ':' => {
                let start = i;
                while i < chars.len()
                    && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == ':')
                {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                let mut j = i;
                while j < chars.len() && chars[j].is_whitespace() {
                    j += 1;
                }
                let call = chars.get(j) == Some(&'(');
                if LABEL_LISTS.contains(&word.as_str()) {
                    if call {
                        while j < chars.len() && chars[j] != ')' {
                            j += 1;
                        }
                        i = j + 1;
                    }
                } else if call {
                    if word == "label_values" {
                        label_values_depth = Some(paren + 1);
                    }
                } else if !KEYWORDS.contains(&word.as_str()) {
                    names.insert(word);
                }
            }
            _ => i += 1,
        }
    }
    names
}

/// Every metric name the rules and the dashboard use, each with where.
pub fn used_metrics() -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (name, expr) in alerts() {
        for m in metric_names(&expr) {
            out.push((m, format!("alert {name}: {expr}")));
        }
    }
    for (title, expr) in dashboard_exprs() {
        for m in metric_names(&expr) {
            out.push((m, format!("dashboard panel {title:?}: {expr}")));
        }
    }
    out
}

/// The metric names (`# TYPE NAME ...` lines) of textfile collector content.
pub fn written_metrics(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split(' ').next())
        .map(str::to_string)
        .collect()
}

/// Panics naming every query that uses a metric `written` does not hold (node_exporter's own
/// [`NODE_EXPORTER_METRICS`] aside). `what` says where `written` came from.
pub fn assert_only_written_metrics(written: &BTreeSet<String>, what: &str) {
    let used = used_metrics();
    assert!(!used.is_empty());
    let unknown: Vec<_> = used
        .iter()
        .filter(|(m, _)| !written.contains(m) && !NODE_EXPORTER_METRICS.contains(&m.as_str()))
        .collect();
    assert!(
        unknown.is_empty(),
        "metrics used but not written ({what}: {written:?}):\n{unknown:#?}"
    );
}
