//! The files of the channel logs: where they are, appending with rotation (the writer's
//! side: lines are gathered per file and written with one write per batch), reading the newest lines backwards and reading lines at known offsets (the API's
//! side).
//!
//! Layout: `{logging_path}/{channel}/{seq}.jsonl`, `seq` a six-digit (or longer) sequence
//! number that only grows, so a file is never renamed and an index entry (seq, offset) holds
//! until rotation deletes its file. `{channel}` is the channel id with every character other
//! than ASCII letters, digits, `-` and `_` percent-encoded (a UUID stays as it is).
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

/// The extension of log files.
const EXTENSION: &str = ".jsonl";

/// How much is read at a time when reading a file backwards.
const BLOCK: u64 = 64 * 1024;

/// The pending-lines buffer an appender keeps between batches; a burst may grow it beyond,
/// and it gives the excess back once written, so idle channels hold little memory.
const KEPT_BUFFER: usize = 16 * 1024;

/// What stays as it is in a channel's directory name.
const DIR_ESCAPES: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_');

/// The directory of a channel's files (`None` for an empty id, which has none).
pub fn channel_dir(root: &Path, channel_id: &str) -> Option<PathBuf> {
    (!channel_id.is_empty())
        .then(|| root.join(utf8_percent_encode(channel_id, DIR_ESCAPES).to_string()))
}

/// The channel id a directory name stands for.
pub fn channel_of(dir_name: &str) -> String {
    percent_decode_str(dir_name)
        .decode_utf8_lossy()
        .into_owned()
}

fn file_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("{seq:06}{EXTENSION}"))
}

fn parse_seq(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(EXTENSION)?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The sequence numbers of the log files in `dir`, oldest first; whether `dir` holds anything
/// else besides.
fn list(dir: &Path) -> io::Result<(Vec<u64>, bool)> {
    let mut seqs = Vec::new();
    let mut other = false;
    for entry in fs::read_dir(dir)? {
        match entry?.file_name().to_str().and_then(parse_seq) {
            Some(seq) => seqs.push(seq),
            None => other = true,
        }
    }
    seqs.sort_unstable();
    Ok((seqs, other))
}

/// Deletes a channel's log files, and its directory if that leaves it empty. A directory
/// with files of other names is left alone except for our files: it is not ours.
pub fn remove_channel(dir: &Path) -> io::Result<()> {
    let (seqs, _) = match list(dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        listed => listed?,
    };
    for seq in seqs {
        remove_file(&file_path(dir, seq))?;
    }
    // Fails when something else lives there: that stays.
    let _ = fs::remove_dir(dir);
    Ok(())
}

/// The channel directories under `root` that hold only log files (ours), by channel id.
pub fn channel_dirs(root: &Path) -> io::Result<Vec<(String, PathBuf)>> {
    let mut dirs = Vec::new();
    for entry in fs::read_dir(root)? {
        let entry = entry?;
        if !entry.file_type()?.is_dir() {
            continue;
        }
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        if matches!(list(&entry.path()), Ok((_, false))) {
            dirs.push((channel_of(&name), entry.path()));
        }
    }
    Ok(dirs)
}

fn remove_file(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Rotation limits.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// A file that would grow beyond this many bytes is closed and the next one started.
    pub rotate_size: u64,
    /// Files kept per channel, the current one included; 0 keeps them all.
    pub max_files: u32,
}

/// Where one line went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Written {
    /// The file's sequence number.
    pub seq: u64,
    /// The byte offset of the line in it.
    pub offset: u64,
    /// Rotation deleted every file up to this sequence number.
    pub deleted_through: Option<u64>,
}

/// One channel's log, as its writer sees it: the current file, open or not.
#[derive(Debug)]
pub struct Appender {
    dir: PathBuf,
    /// The current file.
    seq: u64,
    /// The oldest file that may still exist.
    oldest: u64,
    /// The current file's size, while it is open, pending lines included.
    size: u64,
    file: Option<File>,
    /// Lines appended to the current file but not written yet: [`Appender::flush`] writes
    /// them at once, so a batch costs one write per file, not one per line.
    pending: Vec<u8>,
    /// When it was last written to, in the writer's own clock (to close the idlest first).
    pub last_used: u64,
    /// Whether the last write failed (so a failure is reported once, not per line).
    pub failing: bool,
}

impl Appender {
    /// Takes up a channel's log where it stopped: appending to its newest file, or starting
    /// the first one.
    pub fn resume(dir: PathBuf) -> io::Result<Appender> {
        fs::create_dir_all(&dir)?;
        let (seqs, _) = list(&dir)?;
        Ok(Appender {
            seq: seqs.last().copied().unwrap_or(1),
            oldest: seqs.first().copied().unwrap_or(1),
            dir,
            size: 0,
            file: None,
            pending: Vec::new(),
            last_used: 0,
            failing: false,
        })
    }

    /// Whether its current file is open.
    pub fn is_open(&self) -> bool {
        self.file.is_some()
    }

    /// Whether lines wait to be written by [`Appender::flush`].
    pub fn is_dirty(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Writes the pending lines and closes its current file (it is opened again on the next
    /// append).
    pub fn close(&mut self) -> io::Result<()> {
        let flushed = self.flush();
        self.file = None;
        flushed
    }

    /// Appends one line (ending in `\n`) to the pending lines of the current file, starting
    /// the next file first when the current one would grow beyond `rotate_size` (a line
    /// longer than that gets a file of its own), and deleting the oldest files beyond
    /// `max_files`. The line is in the file once [`Appender::flush`] succeeds.
    pub fn append(&mut self, line: &[u8], limits: Limits) -> io::Result<Written> {
        if self.file.is_none() {
            self.open()?;
        }
        if self.size > 0 && self.size + line.len() as u64 > limits.rotate_size {
            self.flush()?;
            self.seq += 1;
            self.open()?;
        }
        let deleted_through = self.prune(limits.max_files)?;
        let offset = self.size;
        self.pending.extend_from_slice(line);
        self.size += line.len() as u64;
        Ok(Written {
            seq: self.seq,
            offset,
            deleted_through,
        })
    }

    /// Writes the pending lines in one write. When that fails they are lost and the file is
    /// closed: whatever part made it is followed by a newline when the file is next opened,
    /// and its size is read again then.
    pub fn flush(&mut self) -> io::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let written = match &mut self.file {
            Some(file) => file.write_all(&self.pending),
            None => Err(io::Error::other("the log file is not open")),
        };
        self.pending.clear();
        self.pending.shrink_to(KEPT_BUFFER);
        if written.is_err() {
            self.file = None;
        }
        written
    }

    /// Opens the current file for appending; a line cut short by a crash is ended first, so
    /// the next line starts on a line of its own.
    fn open(&mut self) -> io::Result<()> {
        self.file = None;
        let path = file_path(&self.dir, self.seq);
        let mut file = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(&path)?;
        let mut size = file.metadata()?.len();
        if size > 0 {
            let mut last = [0u8];
            file.seek(SeekFrom::Start(size - 1))?;
            file.read_exact(&mut last)?;
            if last[0] != b'\n' {
                file.write_all(b"\n")?;
                size += 1;
            }
        }
        self.size = size;
        self.file = Some(file);
        Ok(())
    }

    /// Deletes the files beyond `max_files`; the newest sequence number deleted, if any.
    fn prune(&mut self, max_files: u32) -> io::Result<Option<u64>> {
        let keep = u64::from(max_files);
        if keep == 0 || self.seq - self.oldest < keep {
            return Ok(None);
        }
        let through = self.seq - keep;
        for seq in self.oldest..=through {
            remove_file(&file_path(&self.dir, seq))?;
        }
        self.oldest = through + 1;
        Ok(Some(through))
    }
}

/// Calls `visit` with the complete lines of `path`, last first, until it returns `false`.
/// Returns whether it asked to stop. A last line without its newline (being written, or cut
/// by a crash) is left out.
fn lines_backwards(path: &Path, visit: &mut dyn FnMut(&[u8]) -> bool) -> io::Result<bool> {
    let mut file = File::open(path)?;
    let mut pos = file.metadata()?.len();
    // The bytes from `pos` to the end of what is still to visit.
    let mut pending: Vec<u8> = Vec::new();
    let mut seen_end = false;
    while pos > 0 {
        let take = BLOCK.min(pos);
        pos -= take;
        let mut block = vec![0; take as usize];
        file.seek(SeekFrom::Start(pos))?;
        file.read_exact(&mut block)?;
        block.extend_from_slice(&pending);
        pending = block;
        if !seen_end {
            match pending.iter().rposition(|b| *b == b'\n') {
                Some(end) => {
                    pending.truncate(end);
                    seen_end = true;
                }
                None => continue,
            }
        }
        // Lines wholly inside `pending` are those after its first newline.
        while let Some(start) = pending.iter().rposition(|b| *b == b'\n') {
            let keep_going = visit(&pending[start + 1..]);
            pending.truncate(start);
            if !keep_going {
                return Ok(true);
            }
        }
    }
    // The file's first line.
    Ok(seen_end && !visit(&pending))
}

/// The newest `n` lines of a channel that `pick` accepts, newest first, read backwards from
/// its newest file (older files only when the newer ones did not have enough).
pub fn newest<T>(dir: &Path, n: usize, mut pick: impl FnMut(&[u8]) -> Option<T>) -> Vec<T> {
    let mut found = Vec::new();
    if n == 0 {
        return found;
    }
    let Ok((seqs, _)) = list(dir) else {
        return found;
    };
    for seq in seqs.into_iter().rev() {
        let mut visit = |line: &[u8]| {
            if let Some(item) = pick(line) {
                found.push(item);
            }
            found.len() < n
        };
        // A file deleted by rotation meanwhile has nothing newer than the ones read already.
        if let Ok(true) = lines_backwards(&file_path(dir, seq), &mut visit) {
            break;
        }
    }
    found
}

/// The lines at `locations` (sequence number, offset), in that order; those whose file is
/// gone are left out.
pub fn read_at(dir: &Path, locations: &[(u64, u64)]) -> Vec<Vec<u8>> {
    let mut lines = Vec::with_capacity(locations.len());
    let mut current: Option<(u64, BufReader<File>)> = None;
    for &(seq, offset) in locations {
        if current.as_ref().is_none_or(|(open, _)| *open != seq) {
            current = File::open(file_path(dir, seq))
                .ok()
                .map(|file| (seq, BufReader::new(file)));
        }
        let Some((_, reader)) = current.as_mut() else {
            continue;
        };
        let mut line = Vec::new();
        if reader.seek(SeekFrom::Start(offset)).is_ok()
            && reader.read_until(b'\n', &mut line).is_ok()
            && line.pop() == Some(b'\n')
        {
            lines.push(line);
        }
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(n: usize) -> Vec<u8> {
        format!("{{\"n\":{n:>5}}}\n").into_bytes() // 12 bytes
    }

    fn numbers(lines: &[Vec<u8>]) -> Vec<usize> {
        lines
            .iter()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_slice(l).unwrap();
                v["n"].as_u64().unwrap() as usize
            })
            .collect()
    }

    #[test]
    fn directory_names_are_safe_and_reversible() {
        let root = Path::new("/logs");
        let uuid = "0b7e5e8c-6a4e-4b8e-9a53-8d2b6f0e6c11";
        assert_eq!(channel_dir(root, uuid).unwrap(), root.join(uuid));
        let odd = channel_dir(root, "../x/y").unwrap();
        assert_eq!(odd, root.join("%2E%2E%2Fx%2Fy"));
        assert_eq!(channel_of("%2E%2E%2Fx%2Fy"), "../x/y");
        assert_eq!(channel_dir(root, ""), None);
        assert_eq!(parse_seq("000012.jsonl"), Some(12));
        assert_eq!(parse_seq("1234567.jsonl"), Some(1_234_567));
        assert_eq!(parse_seq("index.sqlite"), None);
        assert_eq!(parse_seq(".jsonl"), None);
    }

    #[test]
    fn rotation_keeps_at_most_max_files_and_never_renames() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("ch");
        let limits = Limits {
            rotate_size: 36, // three 12-byte lines per file
            max_files: 3,
        };
        let mut log = Appender::resume(dir.clone()).unwrap();
        let mut placed = Vec::new();
        for n in 0..20 {
            placed.push(log.append(&line(n), limits).unwrap());
        }
        log.flush().unwrap();
        assert_eq!(
            placed[0],
            Written {
                seq: 1,
                offset: 0,
                deleted_through: None
            }
        );
        assert_eq!(placed[2].offset, 24);
        assert_eq!(placed[3].seq, 2, "the fourth line starts file 2");
        assert_eq!(placed[9].deleted_through, Some(1), "file 4 deletes file 1");
        assert_eq!(placed[12].deleted_through, Some(2), "file 5 deletes file 2");
        assert_eq!(placed[19].seq, 7);
        assert_eq!(list(&dir).unwrap(), (vec![5, 6, 7], false));
        // Lines read at their recorded places are the lines written there.
        let at: Vec<(u64, u64)> = placed[12..].iter().map(|w| (w.seq, w.offset)).collect();
        assert_eq!(numbers(&read_at(&dir, &at)), (12..20).collect::<Vec<_>>());
        // A deleted file's lines are simply absent.
        let gone = read_at(&dir, &[(placed[0].seq, placed[0].offset)]);
        assert!(gone.is_empty());
        let newest = newest(&dir, 5, |l| Some(l.to_vec()));
        assert_eq!(numbers(&newest), vec![19, 18, 17, 16, 15]);
    }

    #[test]
    fn resuming_continues_the_newest_file_and_ends_a_cut_line() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("ch");
        let limits = Limits {
            rotate_size: 1000,
            max_files: 0,
        };
        let mut log = Appender::resume(dir.clone()).unwrap();
        log.append(&line(1), limits).unwrap();
        log.flush().unwrap();
        drop(log);
        // A crash cut the next line short.
        let mut file = OpenOptions::new()
            .append(true)
            .open(file_path(&dir, 1))
            .unwrap();
        file.write_all(b"{\"n\":00").unwrap();
        let mut log = Appender::resume(dir.clone()).unwrap();
        let written = log.append(&line(2), limits).unwrap();
        assert_eq!((written.seq, written.offset), (1, 20));
        log.flush().unwrap();
        let lines = newest(&dir, 10, |l| {
            serde_json::from_slice::<serde_json::Value>(l).ok()
        });
        assert_eq!(lines.len(), 2, "the cut line is skipped: {lines:?}");
        // With max_files 0 nothing is ever deleted.
        for n in 0..200 {
            log.append(
                &line(n),
                Limits {
                    rotate_size: 11,
                    max_files: 0,
                },
            )
            .unwrap();
        }
        assert_eq!(list(&dir).unwrap().0.len(), 201);
    }

    #[test]
    fn reading_backwards_spans_blocks_files_and_skips_a_partial_last_line() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("ch");
        let limits = Limits {
            rotate_size: 100_000,
            max_files: 0,
        };
        let mut log = Appender::resume(dir.clone()).unwrap();
        // 30,000 lines of 12 bytes: several 64 KiB blocks over several files.
        for n in 0..30_000 {
            log.append(&line(n % 10_000), limits).unwrap();
        }
        log.flush().unwrap();
        let mut file = OpenOptions::new()
            .append(true)
            .open(file_path(&dir, log.seq))
            .unwrap();
        file.write_all(b"{\"n\":12").unwrap(); // being written
        let all = newest(&dir, usize::MAX, |l| Some(l.to_vec()));
        assert_eq!(all.len(), 30_000);
        let expected: Vec<usize> = (0..30_000).rev().map(|n| n % 10_000).collect();
        assert_eq!(numbers(&all), expected);
        // Only what is asked for, and only what `pick` accepts.
        let even = newest(&dir, 3, |l| {
            let n = numbers(&[l.to_vec()])[0];
            (n % 2 == 0).then_some(n)
        });
        assert_eq!(even, vec![9998, 9996, 9994]);
        assert!(newest(&tmp.path().join("none"), 3, |l| Some(l.to_vec())).is_empty());
    }

    #[test]
    fn removing_a_channel_leaves_foreign_files() {
        let tmp = tempfile::tempdir().unwrap();
        let ours = tmp.path().join("ours");
        let mut log = Appender::resume(ours.clone()).unwrap();
        log.append(
            &line(1),
            Limits {
                rotate_size: 5,
                max_files: 0,
            },
        )
        .unwrap();
        let theirs = tmp.path().join("theirs");
        fs::create_dir(&theirs).unwrap();
        fs::write(theirs.join("notes.txt"), "keep").unwrap();
        fs::write(theirs.join("000001.jsonl"), "{}\n").unwrap();
        let dirs = channel_dirs(tmp.path()).unwrap();
        assert_eq!(dirs, vec![("ours".to_owned(), ours.clone())]);
        remove_channel(&ours).unwrap();
        remove_channel(&theirs).unwrap();
        assert!(!ours.exists());
        assert!(theirs.join("notes.txt").exists());
        remove_channel(&tmp.path().join("never")).unwrap();
    }
}
