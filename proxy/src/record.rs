//! `--record DIR`: the built-in recording sink. Writes the stream to files
//! rotated by size and/or age, each self-contained (header, state replay, the
//! blocks, data end), keeps at most N files or B bytes of them, and on a full
//! disk stops recording (saying so) while the proxy keeps serving.

use std::fs::{self, File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use elstream_format::eventlog::{user_message_block, Header, DATA_END};
use elstream_format::state::StateCache;

use crate::consumer::Consumer;

#[derive(clap::Args, Clone, Debug, Default)]
pub struct RecordOpts {
    /// Record the stream into DIR: self-contained eventlog files (header, state
    /// replay, blocks, data end), rotated by --record-max-bytes/--record-max-age.
    /// A full disk stops recording (logged); serving goes on.
    #[arg(
        long = "record",
        value_name = "DIR",
        help_heading = "Plugins and recording"
    )]
    pub dir: Option<PathBuf>,
    /// Start a new recording file before one would exceed this size (default: never).
    #[arg(long = "record-max-bytes", value_name = "SIZE", value_parser = crate::units::parse_size_u64, help_heading = "Plugins and recording")]
    pub max_bytes: Option<u64>,
    /// Start a new recording file when the current one is this old (default: never).
    #[arg(long = "record-max-age", value_name = "DURATION", value_parser = crate::units::parse_duration, help_heading = "Plugins and recording")]
    pub max_age: Option<Duration>,
    /// Keep at most this many recording files, oldest removed first (default: all).
    #[arg(
        long = "record-keep-files",
        value_name = "N",
        help_heading = "Plugins and recording"
    )]
    pub keep_files: Option<usize>,
    /// Keep at most this many bytes of recording files, oldest removed first
    /// (default: all).
    #[arg(long = "record-keep-bytes", value_name = "SIZE", value_parser = crate::units::parse_size_u64, help_heading = "Plugins and recording")]
    pub keep_bytes: Option<u64>,
}

const PREFIX: &str = "elstream-";
const SUFFIX: &str = ".eventlog";

struct Open {
    file: File,
    path: PathBuf,
    /// Bytes written and known good (whole header/blocks).
    good: u64,
    /// Where the last block starts (a data end fits there if not at `good`).
    last_block: u64,
    blocks: u64,
    opened: Instant,
}

pub struct Recorder {
    dir: PathBuf,
    opts: RecordOpts,
    header: Option<(Vec<u8>, Header)>,
    state: StateCache,
    open: Option<Open>,
    files: u64,
}

impl Recorder {
    pub fn new(dir: PathBuf, opts: RecordOpts) -> std::io::Result<Recorder> {
        // Recordings hold everything the program traced: owner only.
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)?;
        Ok(Recorder {
            dir,
            opts,
            header: None,
            state: StateCache::new(),
            open: None,
            files: 0,
        })
    }

    fn new_file(&mut self) -> Result<(), String> {
        let Some((raw, header)) = &self.header else {
            return Ok(());
        };
        let ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0);
        self.files += 1;
        let path = self
            .dir
            .join(format!("{PREFIX}{ms:013}-{:06}{SUFFIX}", self.files));
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| full_or(&path, "cannot create", &e))?;
        let mut open = Open {
            file,
            path,
            good: 0,
            last_block: 0,
            blocks: 0,
            opened: Instant::now(),
        };
        let mut first = raw.clone();
        for b in self.state.replay(header) {
            first.extend_from_slice(&b);
        }
        // The file's blocks are still to come: the threads live now, and what
        // each capability runs, so the file is readable on its own.
        let threads = elstream_format::threads::WindowScan::new();
        for b in threads.prefix(header, &self.state.threads, self.state.last_time) {
            first.extend_from_slice(&b);
        }
        if let Err(e) = write(&mut open, &first) {
            // Not even the header fits: leave no unreadable file behind.
            drop(open.file);
            let _ = fs::remove_file(&open.path);
            return Err(e);
        }
        open.last_block = open.good;
        self.open = Some(open);
        self.retain();
        Ok(())
    }

    /// Ends the current file with a data end.
    fn close_file(&mut self) -> Result<(), String> {
        let Some(mut open) = self.open.take() else {
            return Ok(());
        };
        if let Err(e) = write(&mut open, &DATA_END) {
            repair(&mut open);
            return Err(e);
        }
        tracing::info!(file = %open.path.display(), bytes = open.good, blocks = open.blocks, "recorded");
        Ok(())
    }

    fn write_block(&mut self, bytes: &[u8]) -> Result<(), String> {
        if self.open.is_none() {
            self.new_file()?;
        }
        let Some(open) = self.open.as_mut() else {
            return Ok(());
        };
        let start = open.good;
        if let Err(e) = write(open, bytes) {
            repair(open);
            self.open = None;
            return Err(e);
        }
        open.last_block = start;
        open.blocks += 1;
        Ok(())
    }

    fn rotate_due(&self, next: usize) -> bool {
        let Some(open) = &self.open else { return false };
        if open.blocks == 0 {
            return false;
        }
        let size = self
            .opts
            .max_bytes
            .is_some_and(|m| open.good + next as u64 + DATA_END.len() as u64 > m);
        let age = self
            .opts
            .max_age
            .is_some_and(|a| open.opened.elapsed() >= a);
        size || age
    }

    fn rotate(&mut self) -> Result<(), String> {
        self.close_file()?;
        self.new_file()
    }

    /// Deletes the oldest recordings beyond the retention limits (never the
    /// file being written).
    fn retain(&self) {
        if self.opts.keep_files.is_none() && self.opts.keep_bytes.is_none() {
            return;
        }
        let Ok(rd) = fs::read_dir(&self.dir) else {
            return;
        };
        let mut files: Vec<(String, u64)> = rd
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                (name.starts_with(PREFIX) && name.ends_with(SUFFIX))
                    .then(|| (name, e.metadata().map(|m| m.len()).unwrap_or(0)))
            })
            .collect();
        files.sort();
        let current = self
            .open
            .as_ref()
            .and_then(|o| o.path.file_name())
            .map(|n| n.to_string_lossy().into_owned());
        let mut total: u64 = files.iter().map(|f| f.1).sum();
        let mut count = files.len();
        for (name, len) in files {
            let over_count = self.opts.keep_files.is_some_and(|k| count > k);
            let over_bytes = self.opts.keep_bytes.is_some_and(|k| total > k);
            if !(over_count || over_bytes) || Some(&name) == current.as_ref() {
                break;
            }
            let p = self.dir.join(&name);
            match fs::remove_file(&p) {
                Ok(()) => tracing::info!(file = %p.display(), "recording removed (retention)"),
                Err(e) => tracing::warn!(file = %p.display(), "cannot remove old recording: {e}"),
            }
            count -= 1;
            total -= len;
        }
    }
}

fn full_or(path: &Path, what: &str, e: &std::io::Error) -> String {
    let full = matches!(
        e.raw_os_error(),
        Some(libc::ENOSPC | libc::EFBIG | libc::EDQUOT)
    );
    format!(
        "recorder: {}{what} {}: {e}; recording stopped (the proxy keeps serving)",
        if full { "disk full: " } else { "" },
        path.display()
    )
}

fn write(open: &mut Open, bytes: &[u8]) -> Result<(), String> {
    match open.file.write_all(bytes) {
        Ok(()) => {
            open.good += bytes.len() as u64;
            Ok(())
        }
        Err(e) => Err(full_or(&open.path, "cannot write", &e)),
    }
}

/// After a failed write: cut the file back to whole blocks and end it with a
/// data end, dropping the last block if the data end does not fit otherwise.
fn repair(open: &mut Open) {
    for at in [open.good, open.last_block] {
        let ok = open.file.set_len(at).is_ok()
            && open.file.seek(SeekFrom::Start(at)).is_ok()
            && open.file.write_all(&DATA_END).is_ok();
        if ok {
            return;
        }
    }
    tracing::warn!(file = %open.path.display(), "cannot end the recording with a data end");
}

impl Consumer for Recorder {
    fn name(&self) -> String {
        format!("recorder {}", self.dir.display())
    }

    fn on_header(&mut self, raw: &[u8]) -> Result<(), String> {
        self.close_file()?;
        let header = Header::parse(raw).map_err(|e| format!("recorder: bad header: {e}"))?;
        self.header = Some((raw.to_vec(), header));
        self.state = StateCache::new();
        self.new_file()
    }

    fn on_block(&mut self, block: &[u8]) -> Result<(), String> {
        if self.header.is_none() {
            return Ok(());
        }
        if self.rotate_due(block.len()) {
            self.rotate()?;
        }
        self.write_block(block)?;
        if let Some((_, h)) = &self.header {
            self.state.observe_block(h, block);
        }
        Ok(())
    }

    fn on_drop(&mut self, blocks: u64, bytes: u64) -> Result<(), String> {
        let Some((_, h)) = &self.header else {
            return Ok(());
        };
        let notice = user_message_block(
            h,
            self.state.last_time,
            &format!("elstream: dropped {blocks} blocks ({bytes} bytes)"),
        );
        tracing::warn!("recorder fell behind: dropped {blocks} blocks ({bytes} bytes)");
        self.write_block(&notice)
    }

    fn on_stop(&mut self) -> Result<(), String> {
        self.header = None;
        self.close_file()
    }

    fn on_idle(&mut self) -> Result<(), String> {
        if self.rotate_due(0)
            && self
                .opts
                .max_age
                .is_some_and(|a| self.open.as_ref().is_some_and(|o| o.opened.elapsed() >= a))
        {
            self.rotate()?;
        }
        Ok(())
    }

    fn finish(&mut self) {
        if let Err(e) = self.close_file() {
            tracing::error!("{e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn recordings_and_their_directory_are_private() {
        let base = std::env::temp_dir().join(format!("elstream-rec-{}", std::process::id()));
        let dir = base.join("new/rec");
        let mut rec = Recorder::new(
            dir.clone(),
            RecordOpts {
                dir: Some(dir.clone()),
                max_bytes: None,
                max_age: None,
                keep_files: None,
                keep_bytes: None,
            },
        )
        .unwrap();
        // The smallest header there is: no event types.
        rec.on_header(b"hdrbhetbhetehdredatb").unwrap();
        rec.finish();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&base.join("new")), 0o700);
        assert_eq!(mode(&dir), 0o700);
        let files: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert_eq!(files.len(), 1, "{files:?}");
        assert_eq!(mode(&files[0]), 0o600, "{}", files[0].display());
        fs::remove_dir_all(&base).unwrap();
    }
}
