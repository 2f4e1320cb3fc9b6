//! Image references as docker parses them (`[HOST[:PORT]/]PATH[:TAG][@DIGEST]`) and image ids.

/// `verify --image`: an image reference as docker parses it (`[HOST[:PORT]/]PATH[:TAG][@DIGEST]`,
/// path components lower-case) or an image id (`sha256:HEX` or hex). Anything else, the empty
/// string included, is an error naming the rule broken: it would otherwise reach the Engine
/// API as a URL path (`/images//json` answers 301).
pub(crate) fn parse(s: &str) -> Result<String, String> {
    let bad = |why: &str| Err(format!("{s:?} is not an image reference ({why})"));
    if s.is_empty() {
        return bad("empty");
    }
    if s.len() > 255 + 1 + 128 + 1 + 7 + 128 {
        return bad("too long");
    }
    let (rest, digest) = match s.split_once('@') {
        Some((r, d)) => (r, Some(d)),
        None => (s, None),
    };
    if digest.is_some_and(|d| !digest_ok(d)) {
        return bad("the digest after @ must be ALGORITHM:HEX, e.g. sha256:…");
    }
    if digest.is_none()
        && rest
            .strip_prefix("sha256:")
            .is_some_and(|h| lower_hex(h) && h.len() == 64)
    {
        return Ok(s.to_string());
    }
    let (name, tag) = match rest.rsplit_once(':') {
        Some((n, t)) if !t.contains('/') => (n, Some(t)),
        _ => (rest, None),
    };
    if tag.is_some_and(|t| !tag_ok(t)) {
        return bad(
            "a tag is letters, digits, '_', '.' and '-', at most 128, not starting with '.' or '-'",
        );
    }
    if name.is_empty() || name.len() > 255 {
        return bad("the name is empty or longer than 255 characters");
    }
    let mut parts: Vec<&str> = name.split('/').collect();
    if parts.len() > 1 {
        let first = parts[0];
        if first.contains('.') || first.contains(':') || first == "localhost" {
            if !domain_ok(first) {
                return bad("the registry host is not HOST[:PORT]");
            }
            parts.remove(0);
        }
    }
    if parts.is_empty() || !parts.iter().all(|c| component_ok(c)) {
        return bad("the name is lower-case letters and digits separated by '/', '.', '_' or '-'");
    }
    Ok(s.to_string())
}

/// Lower-case hexadecimal, not empty.
fn lower_hex(h: &str) -> bool {
    !h.is_empty()
        && h.bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

/// `ALGORITHM:HEX`, the hex at least 32 digits.
fn digest_ok(d: &str) -> bool {
    d.split_once(':').is_some_and(|(algo, h)| {
        !algo.is_empty()
            && algo
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"+._-".contains(&b))
            && lower_hex(h)
            && h.len() >= 32
    })
}

/// Letters, digits, `_`, `.` and `-`, at most 128, not starting with `.` or `-`.
fn tag_ok(t: &str) -> bool {
    t.len() <= 128
        && t.chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
        && t.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
}

/// `HOST[:PORT]`: dot-separated labels of letters, digits and inner `-`; a numeric port.
fn domain_ok(first: &str) -> bool {
    let (host, port) = first.split_once(':').unwrap_or((first, ""));
    let host_ok = !host.is_empty()
        && host.split('.').all(|l| {
            !l.is_empty()
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        });
    let port_ok = first.split_once(':').is_none()
        || (!port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()));
    host_ok && port_ok
}

/// A path component: lower-case letters and digits, separated by '.', '_', '__' or '-'s.
fn component_ok(c: &str) -> bool {
    let b = c.as_bytes();
    if b.is_empty() || !b[0].is_ascii_alphanumeric() || !b[b.len() - 1].is_ascii_alphanumeric() {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            i += 1;
        } else if c == b'.' || c == b'_' {
            let run = b[i..].iter().take_while(|x| **x == c).count();
            if (c == b'.' && run > 1) || run > 2 {
                return false;
            }
            i += run;
        } else if c == b'-' {
            i += b[i..].iter().take_while(|x| **x == b'-').count();
        } else {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_references_are_checked() {
        for ok in [
            "busybox",
            "busybox:local",
            "library/alpine:3.20",
            "my/app:1.0",
            "registry.example.com:5000/team/app_x__y.z-w:v1.2-rc_3",
            "localhost/app",
            "alpine@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            "0123456789ab",
        ] {
            assert_eq!(parse(ok), Ok(ok.to_string()), "{ok}");
        }
        for bad in [
            "",
            "a b",
            "Alpine",
            "app:",
            ":tag",
            "app:-x",
            "/app",
            "app/",
            "a//b",
            "a..b",
            "a___b",
            "-a",
            "a@",
            "a@sha256:xyz",
            "host:port/app",
            "../x",
            "a?b",
            "a%2fb",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} accepted");
        }
    }
}
