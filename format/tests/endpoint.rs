use std::path::PathBuf;

use elstream_format::endpoint::{Endpoint, EndpointError};

#[test]
fn parses_every_form() {
    let cases: &[(&str, Endpoint)] = &[
        (
            "unix:/tmp/x.sock",
            Endpoint::Unix(PathBuf::from("/tmp/x.sock")),
        ),
        (
            "unix:rel/x.sock",
            Endpoint::Unix(PathBuf::from("rel/x.sock")),
        ),
        (
            "tcp://127.0.0.1:4000",
            Endpoint::Tcp("127.0.0.1:4000".into()),
        ),
        ("tcp:localhost:4000", Endpoint::Tcp("localhost:4000".into())),
        ("tcp://[::1]:9", Endpoint::Tcp("[::1]:9".into())),
        ("udp://10.0.0.1:5000", Endpoint::Udp("10.0.0.1:5000".into())),
        ("udp:host:0", Endpoint::Udp("host:0".into())),
        ("fifo:/tmp/f", Endpoint::Fifo(PathBuf::from("/tmp/f"))),
        (
            "file:out.eventlog",
            Endpoint::File(PathBuf::from("out.eventlog")),
        ),
        ("-", Endpoint::Stdin),
    ];
    for (s, want) in cases {
        let got: Endpoint = s.parse().unwrap_or_else(|e| panic!("{s}: {e}"));
        assert_eq!(&got, want, "{s}");
        // Display round-trips (tcp:/udp: print in their :// form).
        let shown = got.to_string();
        assert_eq!(shown.parse::<Endpoint>().unwrap(), got, "{s} -> {shown}");
    }
    assert_eq!(Endpoint::Tcp("h:1".into()).to_string(), "tcp://h:1");
    assert_eq!(Endpoint::Unix("/a b".into()).to_string(), "unix:/a b");
}

#[test]
fn rejects_bad_input_with_clear_errors() {
    let bad = |s: &str| s.parse::<Endpoint>().unwrap_err();
    assert_eq!(bad(""), EndpointError::Empty);
    assert!(matches!(
        bad("/tmp/x.sock"),
        EndpointError::UnknownScheme(_)
    ));
    assert!(matches!(bad("http://x:1"), EndpointError::UnknownScheme(_)));
    assert!(matches!(bad("unix:"), EndpointError::EmptyPath(_)));
    assert!(matches!(bad("fifo:"), EndpointError::EmptyPath(_)));
    assert!(matches!(bad("file:"), EndpointError::EmptyPath(_)));
    for s in [
        "tcp://",
        "tcp://host",
        "tcp://host:",
        "tcp://:80",
        "tcp://host:http",
        "tcp://host:70000",
        "udp://::1:80",
        "udp:host:-1",
        "tcp://a/b:1",
    ] {
        assert!(matches!(bad(s), EndpointError::BadHostPort { .. }), "{s}");
    }
    let msg = bad("ftp:x").to_string();
    assert!(msg.contains("ftp:x") && msg.contains("unix:PATH"), "{msg}");
}
