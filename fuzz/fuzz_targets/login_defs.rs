//! Fuzz the login.defs parser: never panic.
#![no_main]

use docker_userns::formats::login_defs::LoginDefs;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = LoginDefs::parse(&String::from_utf8_lossy(data));
});
