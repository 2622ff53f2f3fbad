//! Command-line value parsers: the format crate's size and duration syntax
//! (shared with the control protocol), with error texts for clap.

use std::time::Duration;

use elstream_format::{control, Endpoint};

/// An endpoint where a file is meant: a bare path is `file:PATH`.
pub fn parse_source(s: &str) -> Result<Endpoint, String> {
    Endpoint::parse_or_file(s).map_err(|e| e.to_string())
}

/// `proxy --source [NAME=]ENDPOINT`.
pub fn parse_named_source(s: &str) -> Result<(Option<String>, Endpoint), String> {
    let (name, rest) = elstream_format::sources::split_name(s)?;
    Ok((name.map(str::to_string), parse_source(rest)?))
}

/// `65536`, `64K`, `1.5M`, `16MiB`, `1G` (powers of 1024).
pub fn parse_size(s: &str) -> Result<usize, String> {
    control::parse_size(s)
        .ok_or_else(|| format!("bad size {s:?} (expected e.g. 65536, 64K, 1.5M, 16MiB, 1G)"))
}

/// [`parse_size`] as a `u64`.
pub fn parse_size_u64(s: &str) -> Result<u64, String> {
    parse_size(s).map(|n| n as u64)
}

/// `250ms`, `2s`, `1.5s`, `1m`, `1h`, `1h30m`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    control::parse_duration(s)
        .ok_or_else(|| format!("bad duration {s:?} (expected e.g. 250ms, 2s, 1.5s, 1m, 1h)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_durations() {
        assert_eq!(parse_size("64K"), Ok(65536));
        assert_eq!(parse_size("16MiB"), Ok(16 << 20));
        assert_eq!(parse_size("100"), Ok(100));
        assert!(parse_size("x").unwrap_err().contains("bad size"));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("1m"), Ok(Duration::from_secs(60)));
        assert!(parse_duration("-1s").is_err());
        assert!(parse_duration("2").is_err());
    }
}
