//! Command-line value parsers: the format crate's size and duration syntax
//! (shared with the control protocol), with error texts for clap.

use std::time::Duration;

use elstream_format::control;

/// `123`, `64K`, `16M`, `1G` (powers of 1024; a trailing `B`/`iB` is allowed).
pub fn parse_size(s: &str) -> Result<usize, String> {
    control::parse_size(s)
        .ok_or_else(|| format!("bad size {s:?} (expected e.g. 65536, 64K, 16M, 1G)"))
}

/// `250ms`, `2s`, `1.5s`, `1m`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    control::parse_duration(s)
        .ok_or_else(|| format!("bad duration {s:?} (expected e.g. 250ms, 2s, 1.5s, 1m)"))
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
