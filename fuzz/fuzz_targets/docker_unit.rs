//! Fuzz the docker.service unit-file reader: the unit parser, ExecStart word splitting and
//! variable expansion, and the environment-file parser: never panic.
#![no_main]

use docker_userns::host::docker_unit::{expand, parse_env_file, parse_unit, split_words};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let env = parse_env_file(&text);
    for s in parse_unit(&text) {
        assert!(s.line >= 1 && s.line <= text.lines().count().max(1));
        assert!(!s.key.contains('\n'));
        let var = |name: &str| {
            env.iter()
                .rev()
                .find(|(k, _, _)| k == name)
                .map(|(_, v, _)| v.clone())
                .unwrap_or_default()
        };
        let words = expand(&s.value, &var);
        if let Some(first) = words.first() {
            assert!(!first.starts_with(['-', '@', ':', '+', '!']));
        }
        let _ = split_words(&s.value);
        let _ = docker_userns::run::restart::validate_plan(&words);
    }
});
