//! The client against a fake engine on a unix socket: framing, errors, timeouts, encoding.

use std::io::{self, Read, Write};
use std::os::unix::net::UnixListener;
use std::thread;
use std::time::{Duration, Instant};

use super::api::encode;
use super::*;

/// `GET path`, whatever the status.
fn get(engine: &Engine, path: &str) -> Result<Response, EngineError> {
    engine.request("GET", path, None::<&Value>, engine.timeout)
}

/// What the fake engine does after reading a request: `Some((text, false))` writes and
/// hangs up; `Some((text, true))` trickles it 3 bytes at a time and stays open; `None`
/// says nothing. It holds the connection until the client hangs up, unless it hung up.
type Reply = Option<(String, bool)>;

fn close(text: &str) -> Reply {
    Some((text.into(), false))
}

/// A fake engine in a fresh tempdir answering one connection per reply; the thread returns
/// the requests it read.
fn serve(replies: Vec<Reply>) -> (tempfile::TempDir, Engine, thread::JoinHandle<Vec<String>>) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("docker.sock");
    let listener = UnixListener::bind(&path).unwrap();
    let server = thread::spawn(move || replies.into_iter().map(|r| answer(&listener, r)).collect());
    (dir, Engine::new(path, Duration::from_secs(5)), server)
}

fn answer(listener: &UnixListener, reply: Reply) -> String {
    let (mut s, _) = listener.accept().unwrap();
    let (mut request, mut byte) = (Vec::new(), [0u8; 1]);
    while !request.ends_with(b"\r\n\r\n") && s.read(&mut byte).unwrap() == 1 {
        request.push(byte[0]);
    }
    // The body, as long as its Content-Length says.
    let head = String::from_utf8_lossy(&request).to_ascii_lowercase();
    let len = head
        .lines()
        .find_map(|l| {
            l.strip_prefix("content-length: ")?
                .trim()
                .parse::<usize>()
                .ok()
        })
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).unwrap();
    request.extend_from_slice(&body);
    match reply {
        Some((text, false)) => s.write_all(text.as_bytes()).unwrap(),
        Some((text, true)) => {
            for piece in text.as_bytes().chunks(3) {
                s.write_all(piece).unwrap();
                thread::sleep(Duration::from_micros(300));
            }
            io::copy(&mut s, &mut io::sink()).unwrap();
        }
        None => drop(io::copy(&mut s, &mut io::sink())),
    }
    String::from_utf8(request).unwrap()
}

#[test]
fn ping_ok_sends_an_http10_get() {
    let (_dir, engine, server) = serve(vec![close(
        "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nOK",
    )]);
    engine.ping().unwrap();
    let expected = "GET /_ping HTTP/1.0\r\nHost: docker\r\nUser-Agent: docker-userns\r\n\r\n";
    assert_eq!(server.join().unwrap(), [expected]);
}

#[test]
fn ping_with_another_body_or_status_fails() {
    let (_dir, engine, _server) = serve(vec![
        close("HTTP/1.1 200 OK\r\n\r\nnope"),
        close("HTTP/1.1 503 No\r\n\r\n"),
    ]);
    let err = engine.ping().unwrap_err();
    assert!(
        matches!(err, EngineError::Malformed { .. }) && err.to_string().contains("nope"),
        "{err}"
    );
    assert!(matches!(
        engine.ping(),
        Err(EngineError::Status { status: 503, .. })
    ));
}

#[test]
fn the_image_store_is_named_from_driver_and_driver_status() {
    // As docker 29.7.2 answers, fresh (containerd store) and remapped (overlay2).
    let c8d: Info = serde_json::from_str(
        r#"{"Driver":"overlayfs","DriverStatus":[["driver-type","io.containerd.snapshotter.v1"]]}"#,
    )
    .unwrap();
    assert_eq!(
        c8d.image_store().as_deref(),
        Some("containerd (overlayfs snapshotter)")
    );
    let graph: Info = serde_json::from_str(
        r#"{"Driver":"overlay2","DriverStatus":[["Backing Filesystem","extfs"],["Supports d_type","true"]]}"#,
    )
    .unwrap();
    assert_eq!(graph.image_store().as_deref(), Some("overlay2"));
    let old: Info = serde_json::from_str(r#"{"Driver":"","DriverStatus":null}"#).unwrap();
    assert_eq!(old.image_store(), None);
}

#[test]
fn info_parses_and_detects_userns() {
    let on = r#"{"ServerVersion":"27.3.1","DockerRootDir":"/var/lib/docker/100000.100000","ContainersRunning":3,
        "SecurityOptions":["name=apparmor","name=seccomp,profile=builtin","name=userns","name=cgroupns"]}"#;
    let off = r#"{"ServerVersion":"20.10.24","SecurityOptions":null,"Containers":9}"#;
    let ok = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n";
    let (_dir, engine, _server) = serve(vec![
        close(&format!("{ok}{on}")),
        close(&format!("{ok}{off}")),
    ]);
    let info = engine.info().unwrap();
    assert_eq!(
        (info.server_version.as_str(), info.containers_running),
        ("27.3.1", 3)
    );
    assert_eq!(info.docker_root_dir, "/var/lib/docker/100000.100000");
    assert!(info.userns());
    let info = engine.info().unwrap();
    assert_eq!(
        info,
        Info {
            server_version: "20.10.24".into(),
            ..Info::default()
        }
    );
    assert!(!info.userns());
    let with = |o: &str| Info {
        security_options: vec!["name=seccomp,profile=default".into(), o.into()],
        ..info.clone()
    };
    for yes in ["name=userns", "name=userns,foo=bar", "userns"] {
        assert!(with(yes).userns(), "{yes}");
    }
    for no in ["name=usernsx", "name=rootless", "name=seccomp,userns"] {
        assert!(!with(no).userns(), "{no}");
    }
}

#[test]
fn chunked_body_is_decoded_without_waiting_for_close() {
    let json = r#"[{"Id":"0123456789abcdef0123","Names":["/web"],"Image":"nginx","State":"running"},
        {"Id":"fedcba9876543210fedc","Names":null,"Image":"redis","State":"running"}]"#;
    let mut text = String::from("HTTP/1.1 200 OK\r\nTRANSFER-ENCODING: chunked\r\n\r\n");
    for piece in json.as_bytes().chunks(37) {
        text += &format!(
            "{:X};ext=1\r\n{}\r\n",
            piece.len(),
            std::str::from_utf8(piece).unwrap()
        );
    }
    let (_dir, engine, _server) = serve(vec![Some((text + "0\r\nX-Trailer: t\r\n\r\n", true))]);
    let containers = engine.running_containers().unwrap();
    let names: Vec<&str> = containers.iter().map(Container::name).collect();
    assert_eq!(names, ["web", "fedcba987654"]);
    assert_eq!(
        (containers[1].image.as_str(), containers[1].state.as_str()),
        ("redis", "running")
    );
}

#[test]
fn content_length_is_honoured_without_waiting_for_close() {
    let text =
        "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 7\r\n\r\n{\"a\":1}junk";
    let (_dir, engine, _server) = serve(vec![Some((text.into(), true))]);
    let r = get(&engine, "/version").unwrap();
    assert_eq!((r.status, r.body.as_slice()), (200, &b"{\"a\":1}"[..]));
    assert_eq!(r.header("Content-Type"), Some("text/plain"));
}

#[test]
fn http_error_carries_status_and_message() {
    let text = "HTTP/1.1 500 Internal Server Error\r\n\r\n{\"message\":\"boom\"}\n";
    let (dir, engine, _server) = serve(vec![close(text), close("HTTP/1.1 200 OK\r\n\r\n{\"Id\":")]);
    let err = engine
        .json::<Value>("GET", "/info", None::<&Value>, engine.timeout)
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(&err, EngineError::Status { status: 500, message, .. } if message == "boom"),
        "{msg}"
    );
    assert!(
        msg.contains("500") && msg.contains(&dir.path().join("docker.sock").display().to_string()),
        "{msg}"
    );
    assert!(matches!(engine.info(), Err(EngineError::Json { .. })));
}

#[test]
fn malformed_answers_are_errors() {
    let replies = [
        "garbage\r\n\r\n",
        "HTTP/1.1 200 OK\r\nno colon\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
        "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n",
    ];
    let (_dir, engine, _server) = serve(replies.iter().map(|r| close(r)).collect());
    for reply in replies {
        let err = get(&engine, "/info").unwrap_err();
        assert!(
            matches!(err, EngineError::Malformed { .. }),
            "{reply:?}: {err}"
        );
    }
}

#[test]
fn missing_socket_is_a_connect_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nope.sock");
    let err = Engine::new(&path, Duration::from_secs(1))
        .ping()
        .unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, EngineError::Connect { .. }), "{msg}");
    assert!(
        msg.contains(&path.display().to_string()) && msg.contains("is docker running?"),
        "{msg}"
    );
}

#[test]
fn silent_engine_times_out() {
    let (_dir, engine, _server) = serve(vec![None]);
    let engine = Engine::new(engine.socket(), Duration::from_millis(200));
    let started = Instant::now();
    let err = engine.ping().unwrap_err();
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(190) && took < Duration::from_secs(1),
        "{took:?}"
    );
    assert!(
        matches!(&err, EngineError::Io { source, .. } if source.kind() == io::ErrorKind::TimedOut),
        "{err}"
    );
    assert!(err.to_string().contains("200ms"), "{err}");
}

#[test]
fn wait_ping_succeeds_once_the_engine_starts() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("docker.sock");
    let late = path.clone();
    let server = thread::spawn(move || {
        thread::sleep(Duration::from_millis(150));
        answer(
            &UnixListener::bind(&late).unwrap(),
            close("HTTP/1.1 200 OK\r\n\r\nOK"),
        )
    });
    let engine = Engine::new(&path, Duration::from_secs(1));
    let took = engine
        .wait_ping(Instant::now() + Duration::from_secs(5))
        .unwrap();
    assert!(
        took >= Duration::from_millis(100) && took < Duration::from_secs(4),
        "{took:?}"
    );
    assert!(server.join().unwrap().starts_with("GET /_ping "));
}

#[test]
fn names_in_paths_are_percent_encoded() {
    assert_eq!(encode("a b"), "a%20b");
    assert_eq!(
        encode("registry:5000/team/app:1.0@sha256:ab"),
        "registry:5000/team/app:1.0@sha256:ab"
    );
    assert_eq!(encode("x?y#z&w=%\n\u{e9}"), "x%3Fy%23z%26w%3D%25%0A%C3%A9");
}

#[test]
fn a_bad_path_is_an_error_not_a_panic_and_nothing_is_sent() {
    // No listener at all: a request that got as far as connecting would be a Connect error.
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::new(dir.path().join("none.sock"), Duration::from_secs(1));
    for path in ["/images/a b/json", "/x\r\nHost: evil", "/\t", "info", ""] {
        let err = get(&engine, path).unwrap_err();
        assert!(
            matches!(err, EngineError::Request { .. }),
            "{path:?}: {err}"
        );
        assert!(err.to_string().contains("invalid request"), "{err}");
    }
    assert!(matches!(
        engine.request("POST", "/a b", None::<&Value>, engine.timeout),
        Err(EngineError::Request { .. })
    ));
    assert!(matches!(
        engine.request("DELETE", "/a\u{0}b", None::<&Value>, engine.timeout),
        Err(EngineError::Request { .. })
    ));
}

#[test]
fn a_huge_timeout_does_not_overflow_the_clock() {
    let (_dir, engine, _server) = serve(vec![close("HTTP/1.1 200 OK\r\n\r\nOK")]);
    let engine = Engine::new(engine.socket(), Duration::MAX);
    engine.ping().unwrap();
}

#[test]
fn parse_response_never_panics_on_odd_input() {
    let odd: &[&[u8]] = &[
        b"",
        b"\r\n\r\n",
        b"HTTP/1.1 +12 x\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999999\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffffff\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n-1\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: ,\r\n\r\n",
        b"HTTP/1.1 200 OK\r\n\xff: x\r\n\r\n",
    ];
    for buf in odd {
        for eof in [false, true] {
            let _ = parse_response(buf, eof);
        }
    }
    assert!(parse_response(b"HTTP/1.1 +12 x\r\n\r\n", true).is_err());
    let r = parse_response(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n",
        false,
    )
    .unwrap()
    .unwrap();
    assert_eq!(r.body, b"hi");
}

#[test]
fn wait_ping_gives_up_at_the_deadline_with_the_last_error() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::new(dir.path().join("nope.sock"), Duration::from_secs(1));
    let started = Instant::now();
    let err = engine
        .wait_ping(started + Duration::from_millis(100))
        .unwrap_err();
    assert!(matches!(err, EngineError::Connect { .. }), "{err}");
    assert!(
        (100..1000).contains(&started.elapsed().as_millis()),
        "{:?}",
        started.elapsed()
    );
}

/// A writer whose disk is full.
struct Full;

impl Write for Full {
    fn write(&mut self, _: &[u8]) -> io::Result<usize> {
        Err(io::Error::from_raw_os_error(libc::ENOSPC))
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_full_disk_under_a_download_is_not_blamed_on_the_engine() {
    let (_dir, engine, _server) = serve(vec![close("HTTP/1.1 200 OK\r\n\r\ntar bytes")]);
    let err = engine
        .export_image("x", None, &mut Full, Duration::from_secs(5), &mut |_| {})
        .unwrap_err();
    assert!(
        matches!(&err, EngineError::Local { source, .. } if source.kind() == io::ErrorKind::StorageFull),
        "{err:?}"
    );
    assert!(!err.to_string().contains("talking to"), "{err}");
}

#[test]
fn the_endpoints_encode_names_and_read_typed_answers() {
    let (_dir, engine, server) = serve(vec![
        close(
            "HTTP/1.1 200 OK\r\n\r\n{\"Id\":\"c1\",\"Name\":\"/w\",\"State\":{\"Pid\":7},\"Mounts\":null}",
        ),
        close("HTTP/1.1 304 Not Modified\r\n\r\n"),
        close("HTTP/1.1 201 Created\r\n\r\n"),
        close("HTTP/1.1 404 Not Found\r\n\r\n{\"message\":\"get v: no such volume\"}"),
        close(
            "HTTP/1.1 201 Created\r\nContent-Length: 38\r\n\r\n{\"Name\":\"a b\",\"Mountpoint\":\"/m/_data\"}",
        ),
        close("HTTP/1.1 200 OK\r\n\r\n{\"StatusCode\":3}"),
        close("HTTP/1.1 204 No Content\r\n\r\n"),
    ]);
    let c = engine.inspect_container("a b?#").unwrap();
    assert_eq!((c.name.as_str(), c.state.pid, c.mounts.len()), ("/w", 7, 0));
    engine.start_container("x/y").unwrap();
    engine
        .tag_image("sha256:ab", "registry:5000/team app", "1.0&x")
        .unwrap();
    let err = engine.inspect_volume("v%").unwrap_err();
    assert!(err.not_found(), "{err}");
    assert!(err.to_string().contains("no such volume"), "{err}");
    let mut labels = serde_json::Map::new();
    labels.insert("k".into(), "v".into());
    let v = engine.create_volume("a b", "local", &labels).unwrap();
    assert_eq!(v.mountpoint, "/m/_data");
    assert_eq!(
        engine.wait_container("c1", Duration::from_secs(5)).unwrap(),
        3
    );
    engine.remove_container("c 1").unwrap();
    let requests = server.join().unwrap();
    assert!(
        requests[4].ends_with(
            "Content-Type: application/json\r\nContent-Length: 50\r\n\r\n{\"Name\":\"a b\",\"Driver\":\"local\",\"Labels\":{\"k\":\"v\"}}"
        ),
        "{}",
        requests[4]
    );
    let lines: Vec<String> = requests
        .iter()
        .map(|r| r.lines().next().unwrap().to_string())
        .collect();
    assert_eq!(
        lines,
        [
            "GET /containers/a%20b%3F%23/json HTTP/1.0",
            "POST /containers/x/y/start HTTP/1.0",
            "POST /images/sha256:ab/tag?repo=registry:5000/team%20app&tag=1.0%26x HTTP/1.0",
            "GET /volumes/v%25 HTTP/1.0",
            "POST /volumes/create HTTP/1.0",
            "POST /containers/c1/wait HTTP/1.0",
            "DELETE /containers/c%201?force=1&v=1 HTTP/1.0",
        ]
    );
}

#[test]
fn a_streamed_export_is_framed_by_the_same_reader_as_any_answer() {
    // Chunked (with an extension and a trailer) is decoded, and a Content-Length body ends at
    // its length although the engine keeps the connection open.
    let (_dir, engine, _server) = serve(vec![
        Some((
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4;x=y\r\ntar \r\n5\r\nbytes\r\n0\r\nT: 1\r\n\r\n".into(),
            true,
        )),
        Some(("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc".into(), true)),
    ]);
    let mut out = Vec::new();
    let mut seen = 0;
    let n = engine
        .export_image("x", None, &mut out, Duration::from_secs(5), &mut |b| {
            seen = b
        })
        .unwrap();
    assert_eq!((out.as_slice(), n, seen), (&b"tar bytes"[..], 9, 9));
    let started = Instant::now();
    let mut out = Vec::new();
    let platform = serde_json::json!({"os": "linux", "architecture": "amd64"});
    engine
        .export_image(
            "y",
            Some(&platform),
            &mut out,
            Duration::from_secs(5),
            &mut |_| {},
        )
        .unwrap();
    assert_eq!(out, b"abc");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn invalid_json_names_the_request_it_answered() {
    let (_dir, engine, _server) = serve(vec![close("HTTP/1.1 201 Created\r\n\r\n{\"Id\":")]);
    let err = engine
        .create_container(&ContainerCreate::default())
        .unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, EngineError::Json { .. }), "{msg}");
    assert!(msg.contains(" for POST /containers/create: "), "{msg}");
}

#[test]
fn one_export_names_every_image_each_encoded() {
    let (_dir, engine, server) = serve(vec![close(
        "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\ntar",
    )]);
    let mut out = Vec::new();
    engine
        .export_images(
            &["sha256:aa", "reg:5000/x y"],
            None,
            &mut out,
            Duration::from_secs(5),
            &mut |_| {},
        )
        .unwrap();
    assert_eq!(out, b"tar");
    let requests = server.join().unwrap();
    let first = requests[0].lines().next().unwrap().to_string();
    assert!(
        first.contains(" /images/get?names=sha256:aa&names=reg:5000/x%20y HTTP/1."),
        "{first}"
    );
}
