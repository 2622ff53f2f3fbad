//! Access to `elstream ui`: a non-loopback bind needs the 0600 token file;
//! without the token every page, API and control endpoint is refused; the
//! login form sets a cookie that opens them.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use common::*;
use testkit::{release_bin, TempDir};

const ROUTES: &[(&str, &str)] = &[
    ("GET", "/"),
    ("GET", "/assets/app.js"),
    ("GET", "/assets/uPlot.iife.min.js"),
    ("GET", "/api/sessions"),
    ("GET", "/api/live"),
    ("GET", "/api/sessions/1/totals"),
    ("GET", "/api/sessions/1/summary"),
    ("GET", "/api/sessions/1/tail"),
    ("POST", "/api/sessions/1/control"),
    ("POST", "/api/sessions/1/snapshot"),
    ("POST", "/api/upload"),
    ("GET", "/api/recordings"),
    ("POST", "/api/recordings/open"),
    ("GET", "/nonexistent"),
];

#[test]
fn non_loopback_bind_refuses_everything_without_the_token() {
    let dir = TempDir::new("ui-access");
    let token = dir.join("token");
    std::fs::write(&token, "0123456789abcdef0123456789abcdef\n").unwrap();

    // Without a token file, or with one others can read: refused at start.
    let out = Command::new(release_bin("elstream"))
        .args(["ui", "--no-discover", "--listen", "0.0.0.0:0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--token-file"));
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = Command::new(release_bin("elstream"))
        .args([
            "ui",
            "--no-discover",
            "--listen",
            "0.0.0.0:0",
            "--token-file",
        ])
        .arg(&token)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("chmod 600"));
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).unwrap();

    let token_arg = token.display().to_string();
    let ui = start_ui_on("0.0.0.0", &["--no-discover", "--token-file", &token_arg]);
    let port = ui.port;
    let o = origin(port);
    for (m, path) in ROUTES {
        for hdrs in [
            vec![("Origin", o.as_str())],
            vec![("Authorization", "Bearer wrong-token-wrong-token")],
            vec![("Cookie", "elstream_token=nope")],
        ] {
            let (st, _, body) = http(port, m, path, &hdrs, b"{}");
            assert_eq!(
                st,
                401,
                "{m} {path} {hdrs:?}: {}",
                String::from_utf8_lossy(&body)
            );
        }
    }
    // The login page is what is served instead; it takes the token.
    let (st, _, body) = http(port, "GET", "/login", &[], b"");
    assert_eq!(st, 200);
    assert!(String::from_utf8_lossy(&body).contains("token"));
    let form = [
        ("Origin", o.as_str()),
        ("Content-Type", "application/x-www-form-urlencoded"),
    ];
    let (st, _, _) = http(port, "POST", "/login", &form, b"token=wrong");
    assert_eq!(st, 401);
    let (st, _, _) = http(
        port,
        "POST",
        "/login",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        b"token=0123456789abcdef0123456789abcdef",
    );
    assert_eq!(st, 403, "a login POST without the page's Origin");
    let (st, head, _) = http(
        port,
        "POST",
        "/login",
        &form,
        b"token=0123456789abcdef0123456789abcdef",
    );
    assert_eq!(st, 303);
    let cookie = head
        .lines()
        .find_map(|l| {
            l.strip_prefix("set-cookie: ")
                .or_else(|| l.strip_prefix("Set-Cookie: "))
        })
        .expect("a cookie")
        .split(';')
        .next()
        .unwrap()
        .to_string();
    assert!(head.to_ascii_lowercase().contains("httponly"));
    for auth in [
        ("Cookie", cookie.as_str()),
        ("Authorization", "Bearer 0123456789abcdef0123456789abcdef"),
    ] {
        let (st, _, body) = http(port, "GET", "/", &[auth], b"");
        assert_eq!(st, 200);
        assert!(String::from_utf8_lossy(&body).contains("elstream ui"));
        let (st, _, body) = http(port, "GET", "/api/sessions", &[auth], b"");
        assert_eq!((st, body.as_slice()), (200, b"[]".as_slice()));
        // Control with the token but from elsewhere: refused by origin.
        let (st, _, _) = http(
            port,
            "POST",
            "/api/sessions/1/control",
            &[auth, ("Origin", "http://evil.example")],
            b"{}",
        );
        assert_eq!(st, 403);
    }
    // No open CORS.
    let (_, head, _) = http(
        port,
        "GET",
        "/api/sessions",
        &[
            ("Cookie", cookie.as_str()),
            ("Origin", "http://evil.example"),
        ],
        b"",
    );
    assert!(!head
        .to_ascii_lowercase()
        .contains("access-control-allow-origin"));
}
