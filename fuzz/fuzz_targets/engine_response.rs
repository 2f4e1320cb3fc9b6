//! Fuzz the Engine API response reader through `parse_response`, which runs the client's own
//! `host::engine::http::Reader` (httparse for the head; Content-Length, chunked with
//! extensions and trailers, or up-to-EOF bodies) over the bytes: never panic on a prefix (the
//! client reads in pieces) or the whole; what is complete before the connection ends is
//! complete at its end with the same status and body; at the end there is no "need more".
#![no_main]

use docker_userns::host::engine::parse_response;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The first byte picks a split point: the client sees a prefix, then the whole.
    let Some((&cut, buf)) = data.split_first() else {
        return;
    };
    let at = usize::from(cut) * buf.len() / 256;
    let _ = parse_response(&buf[..at], false);
    let whole = parse_response(buf, false);
    let closed = parse_response(buf, true);
    if let Ok(Some(r)) = &whole {
        let c = closed.as_ref().ok().and_then(|x| x.as_ref());
        assert_eq!(c.map(|x| x.status), Some(r.status));
        assert_eq!(c.map(|x| &x.body), Some(&r.body));
        assert!(r.body.len() <= buf.len());
    }
    // At eof there is no "need more".
    assert!(!matches!(closed, Ok(None)));
});
