//! Writes the seed corpora of the `control` and `udp` targets (committed under
//! fuzz/corpus/; re-run only when a format changes):
//! `cargo run --manifest-path fuzz/Cargo.toml --example gen_seeds -- fuzz/corpus EVENTLOG...`
//! UDP seeds are datagrams made by the real `Packetizer` from real eventlogs.

use std::fs;
use std::path::Path;

use elstream_format::control::{encode, reply, request, Kind, Status, FRAME_HEADER, MAX_PAYLOAD};
use elstream_format::eventlog::{Frame, StreamDecoder, DATA_END};
use elstream_format::udp::{FrameKind, Packetizer};

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    fs::create_dir_all(dir).unwrap();
    fs::write(dir.join(name), bytes).unwrap();
}

fn control(dir: &Path) {
    let commands = [
        "status",
        "on",
        "off",
        "sync",
        "flush",
        "classes gu",
        "classes =sgpu",
        "classes +n-s",
        "classes -u+f",
        "flush-interval 100ms",
        "flush-interval 1.5s",
        "flush-interval 2m",
        "flush-interval off",
        "snapshot a.eventlog",
        "snapshot ../escape.eventlog",
        "ring-size 64M",
        "ring-size 512KiB",
        "ring-size 65536",
        "sticky phase: warm-up done",
        "auth 0123456789abcdef",
        // Well-formed frames with bad commands (BadRequest replies).
        "",
        "dance",
        "on now",
        "classes",
        "classes +x",
        "flush-interval soon",
        "ring-size 99999999999999999999G",
        "snapshot",
    ];
    // Header: chunk size byte, repeat byte (see fuzz_targets/control.rs).
    for (i, c) in commands.iter().enumerate() {
        let mut s = vec![0xff, 0];
        s.extend(request(c));
        write(dir, &format!("cmd-{i:02}"), &s);
    }
    let mut all = vec![6, 0];
    for c in commands {
        all.extend(request(c));
    }
    for st in [
        Status::Ok,
        Status::BadRequest,
        Status::Unavailable,
        Status::Failed,
        Status::Unauthorized,
    ] {
        all.extend(reply(st, "ring_used=1024\nclasses=sgpu"));
    }
    write(dir, "all-commands-chunked", &all);
    let mut long = vec![0x40, 0xff];
    long.extend(request("classes +n-s"));
    write(dir, "replayed-stream", &long);

    // Broken frames (the connection is closed).
    let broken: Vec<(&str, Vec<u8>)> = vec![
        ("bad-magic", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec()),
        ("bad-version", {
            let mut f = request("status");
            f[4] = 2;
            f
        }),
        ("bad-kind", {
            let mut f = request("status");
            f[5] = 9;
            f
        }),
        (
            "bad-status",
            encode(Kind::Reply, Status::Ok, "x")
                .iter()
                .enumerate()
                .map(|(i, b)| if i == 7 { 77 } else { *b })
                .collect(),
        ),
        ("too-large", {
            let mut f = request("x");
            f[8..12].copy_from_slice(&(MAX_PAYLOAD as u32 + 1).to_be_bytes());
            f
        }),
        ("not-utf8", {
            let mut f = request("sticky ab");
            f[FRAME_HEADER + 7] = 0xff;
            f
        }),
        (
            "truncated",
            request("snapshot x.eventlog")[..FRAME_HEADER + 3].to_vec(),
        ),
        ("good-then-garbage", {
            let mut f = request("on");
            f.extend_from_slice(b"ELSX\x01");
            f
        }),
    ];
    for (name, f) in broken {
        let mut s = vec![2, 0];
        s.extend(f);
        write(dir, name, &s);
    }
}

/// Frames of a real eventlog as the proxy would send them over UDP.
fn eventlog_frames(log: &[u8]) -> Vec<(FrameKind, Vec<u8>)> {
    let mut d = StreamDecoder::new();
    d.push(log);
    let mut out = Vec::new();
    let mut take = |f| match f {
        Frame::Header(h) => out.push((FrameKind::Header, h.raw)),
        Frame::Block(b) => out.push((FrameKind::Block, b.bytes)),
        Frame::DataEnd => out.push((FrameKind::DataEnd, DATA_END.to_vec())),
    };
    while let Ok(Some(f)) = d.next_frame() {
        take(f);
    }
    while let Ok(Some(f)) = d.finish() {
        take(f);
    }
    out
}

fn udp(dir: &Path, logs: &[String]) {
    for (li, log) in logs.iter().enumerate() {
        let frames = eventlog_frames(&fs::read(log).unwrap());
        assert!(!frames.is_empty(), "{log}: no frames");
        for (mtu, drop) in [(1400, None), (200, None), (200, Some(3))] {
            let mut p = Packetizer::new(0x5eed + li as u32, mtu).unwrap();
            let mut s = vec![0u8]; // even: raw datagram mode
            let mut n = 0;
            for (k, f) in &frames {
                p.packetize(*k, f, |d| {
                    if Some(n) != drop {
                        s.extend((d.len() as u16).to_be_bytes());
                        s.extend(d);
                    }
                    n += 1;
                });
            }
            let name = Path::new(log)
                .file_stem()
                .unwrap()
                .to_string_lossy()
                .into_owned();
            let tag = if drop.is_some() { "-lost" } else { "" };
            write(dir, &format!("dgrams-{name}-mtu{mtu}{tag}"), &s);
        }
    }
    // Odd first byte: structured mode (mtu, stream, frames, delivery bits).
    write(
        dir,
        "packetized-clean",
        &[1, 0, 7, 3, 4, 0, 0, 200, 2, 0, 0, 9, 3, 0],
    );
    write(
        dir,
        "packetized-lossy",
        &[
            3, 10, 7, 1, 4, 0, 0, 60, 0, 60, 0, 60, 3, 0, 0x55, 0x12, 0xe4, 0x00,
        ],
    );
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let root = Path::new(&args[0]);
    control(&root.join("control"));
    udp(&root.join("udp"), &args[1..]);
}
