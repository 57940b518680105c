//! One log file that rotates daily (UTC) and by size, named so that a person can follow it:
//! the file being written is always `llmcallgateway_<kind>_<date>.log`, so `tail -F` keeps
//! reading it across size rotations, and a full file is renamed to the next plain sequence
//! number of its day, `…_<date>.1.log`, `…_<date>.2.log` (higher is newer). flexi_logger's
//! namings cannot do this: its "direct" modes leave the plain name behind at the first
//! rotation (the current file becomes `<date>.restart-NNNN`), and its "current" modes write to
//! a fixed name without the date.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use time::Date;

/// The prefix of every file the gateway writes in `LOG_DIR`.
pub const FILE_PREFIX: &str = "llmcallgateway";

/// A log file of one kind in one directory, written line by line (buffered; see
/// [`RotatingFile::flush`]).
pub struct RotatingFile {
    dir: PathBuf,
    kind: &'static str,
    max_bytes: u64,
    buffer: usize,
    open: Mutex<Open>,
}

/// The file being written: its day and its size so far.
struct Open {
    date: Date,
    size: u64,
    file: BufWriter<File>,
}

impl RotatingFile {
    /// Opens (appending) today's file of `kind`; a line that would take it past `max_bytes`
    /// rotates it first. `buffer` bytes are kept before a write reaches the file.
    pub fn open(
        dir: &Path,
        kind: &'static str,
        max_bytes: u64,
        buffer: usize,
    ) -> io::Result<RotatingFile> {
        fs::create_dir_all(dir)?;
        let date = today();
        let open = open_day(&day_path(dir, kind, date), date, buffer)?;
        Ok(RotatingFile {
            dir: dir.to_path_buf(),
            kind,
            max_bytes,
            buffer,
            open: Mutex::new(open),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Open> {
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn reopen(&self, date: Date) -> io::Result<Open> {
        open_day(&day_path(&self.dir, self.kind, date), date, self.buffer)
    }

    /// Writes one line (a newline is added), rotating first when the day changed or the line
    /// would pass the size limit.
    pub fn write_line(&self, line: &[u8]) -> io::Result<()> {
        let mut open = self.lock();
        let date = today();
        let added = line.len() as u64 + 1;
        if date != open.date {
            open.file.flush()?;
            *open = self.reopen(date)?;
        } else if open.size > 0 && open.size + added > self.max_bytes {
            open.file.flush()?;
            let current = day_path(&self.dir, self.kind, date);
            fs::rename(&current, self.next_rotated(date))?;
            *open = self.reopen(date)?;
        }
        open.file.write_all(line)?;
        open.file.write_all(b"\n")?;
        open.size += added;
        Ok(())
    }

    pub fn flush(&self) -> io::Result<()> {
        self.lock().file.flush()
    }

    /// `…_<date>.<n>.log` with `n` one past the highest of that day (1 for the first).
    fn next_rotated(&self, date: Date) -> PathBuf {
        let stem = format!("{FILE_PREFIX}_{}_{date}.", self.kind);
        let highest = fs::read_dir(&self.dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                name.strip_prefix(&stem)?
                    .strip_suffix(".log")?
                    .parse::<u32>()
                    .ok()
            })
            .max()
            .unwrap_or(0);
        self.dir.join(format!("{stem}{}.log", highest + 1))
    }
}

/// The plain name of the file of `kind` for a day.
fn day_path(dir: &Path, kind: &str, date: Date) -> PathBuf {
    dir.join(format!("{FILE_PREFIX}_{kind}_{date}.log"))
}

/// A day's file, opened to append.
fn open_day(path: &Path, date: Date, buffer: usize) -> io::Result<Open> {
    let file = OpenOptions::new().create(true).append(true).open(path)?;
    let size = file.metadata()?.len();
    Ok(Open {
        date,
        size,
        file: BufWriter::with_capacity(buffer, file),
    })
}

/// Today, in UTC (the logs' clock).
fn today() -> Date {
    time::OffsetDateTime::now_utc().date()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_current_file_keeps_its_plain_name_and_full_ones_get_sequence_numbers() {
        let dir = std::env::temp_dir().join(format!("llmcg-rotation-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let file = RotatingFile::open(&dir, "system", 100, 0).unwrap();
        for i in 0..10 {
            file.write_line(format!("line {i:02} {}", "x".repeat(30)).as_bytes())
                .unwrap();
        }
        file.flush().unwrap();
        let date = today();
        let mut names: Vec<String> = fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().into_string().unwrap())
            .collect();
        names.sort();
        let plain = format!("llmcallgateway_system_{date}.log");
        let expected: Vec<String> = (1..=4)
            .map(|n| format!("llmcallgateway_system_{date}.{n}.log"))
            .chain([plain.clone()])
            .collect();
        assert_eq!(names, expected);
        // Lines are in order: the numbered files first, the plain one last.
        let current = fs::read_to_string(dir.join(&plain)).unwrap();
        assert!(current.starts_with("line 08"), "{current}");
        let first = fs::read_to_string(dir.join(&expected[0])).unwrap();
        assert!(
            first.starts_with("line 00") && first.contains("line 01"),
            "{first}"
        );
        let _ = fs::remove_dir_all(&dir);
    }
}
