//! Fuzz the daemon.json merge: never panic; set-then-remove gives back the other keys in order.
#![no_main]

use docker_userns::formats::daemon_config::DaemonConfig;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(c) = DaemonConfig::parse(data) {
        let set = c.with_remap("default");
        let reparsed = DaemonConfig::parse(&set.render()).expect("rendered output parses");
        assert_eq!(reparsed.remap().unwrap(), Some("default"));
        assert_eq!(reparsed.without_remap().map, c.without_remap().map);
    }
});
