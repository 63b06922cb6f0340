//! The `--output` of `lit run bert --input`, committed chunk by chunk so that an interrupted run
//! resumes where it stopped, with no row written twice or lost.
//!
//! Beside `OUTPUT` lives `OUTPUT.lit-progress`, a small JSON state replaced atomically (written
//! to a temporary file, synced, renamed, directory synced) after each chunk's rows are appended
//! to `OUTPUT` and synced. On restart the state says how many bytes of `OUTPUT` are committed:
//! anything after them (a chunk cut short by the interruption) is truncated away. The state is
//! written before `OUTPUT` is created and removed once the last chunk is committed, so an
//! `OUTPUT` without a state is a finished run, which is never overwritten.

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};
use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// What a run is: the options that decide the output's bytes, and the input it reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct RunIdentity {
    /// The store, as given.
    pub(crate) store: String,
    /// The input's size in bytes when the run started.
    pub(crate) input_bytes: u64,
    /// The input's modification time (ns since the epoch), when the platform has one.
    pub(crate) input_modified_ns: Option<u64>,
    /// `--max-length`.
    pub(crate) max_length: usize,
    /// `--batch-size` (which texts are computed together).
    pub(crate) batch_size: usize,
    /// Sentences per chunk (chunk boundaries decide the micro-batches).
    pub(crate) chunk_size: usize,
}

/// The sidecar state: what of `OUTPUT` is committed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Progress {
    /// The run this output belongs to.
    pub(crate) run: RunIdentity,
    /// Rows committed (the first `rows` lines of the input).
    pub(crate) rows: u64,
    /// Bytes of `OUTPUT` holding them.
    pub(crate) output_bytes: u64,
    /// Bytes of the input they came from (where reading resumes).
    pub(crate) input_offset: u64,
}

/// `OUTPUT`, open for appending committed chunks.
pub(crate) struct CommittedOutput {
    file: File,
    path: PathBuf,
    state_path: PathBuf,
    progress: Progress,
}

impl CommittedOutput {
    /// Opens `output` for a run: resumes an interrupted one (its state must be for the same
    /// `run`, apart from the chunk size when `chunk_size_given` is false: the saved one is kept),
    /// or starts a new output. A finished output (no state) is an error, and stays as it is.
    pub(crate) fn open(
        output: &Path,
        run: RunIdentity,
        chunk_size_given: bool,
    ) -> anyhow::Result<Self> {
        let state_path = sidecar(output);
        match std::fs::read(&state_path) {
            Ok(bytes) => Self::resume(output, state_path, &bytes, run, chunk_size_given),
            Err(e) if e.kind() == ErrorKind::NotFound => Self::create(output, state_path, run),
            Err(e) => Err(e).with_context(|| format!("reading {}", state_path.display())),
        }
    }

    fn create(output: &Path, state_path: PathBuf, run: RunIdentity) -> anyhow::Result<Self> {
        if output.exists() {
            bail!(
                "{} already exists and has no {} beside it (a finished run): remove it or \
                 choose another --output",
                output.display(),
                file_name(&state_path)
            );
        }
        let progress = Progress {
            run,
            rows: 0,
            output_bytes: 0,
            input_offset: 0,
        };
        // The state first: an output never exists without one until it is finished.
        write_atomically(&state_path, &progress)?;
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(output)
            .with_context(|| format!("creating {}", output.display()))?;
        sync_parent(output)?;
        Ok(CommittedOutput {
            file,
            path: output.to_path_buf(),
            state_path,
            progress,
        })
    }

    fn resume(
        output: &Path,
        state_path: PathBuf,
        bytes: &[u8],
        run: RunIdentity,
        chunk_size_given: bool,
    ) -> anyhow::Result<Self> {
        let mut progress: Progress = serde_json::from_slice(bytes).with_context(|| {
            format!(
                "{} is not a lit progress state (remove it and {} to start over)",
                state_path.display(),
                output.display()
            )
        })?;
        let mut expected = run;
        if !chunk_size_given {
            expected.chunk_size = progress.run.chunk_size;
        }
        if progress.run != expected {
            bail!(
                "{} was started by another run ({}); rerun with the same store, input and \
                 options, or remove it and {} to start over",
                output.display(),
                differences(&progress.run, &expected),
                state_path.display()
            );
        }
        progress.run = expected;
        // Interrupted between writing the first state and creating the output: nothing to keep.
        let create = progress.rows == 0 && !output.exists();
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(create)
            .truncate(false)
            .open(output)
            .with_context(|| {
                format!(
                    "opening {} to resume ({} says {} rows are committed)",
                    output.display(),
                    state_path.display(),
                    progress.rows
                )
            })?;
        let len = file.metadata()?.len();
        if len < progress.output_bytes {
            bail!(
                "{} holds {len} bytes but {} rows ({} bytes) were committed: it was changed \
                 since; remove it and {} to start over",
                output.display(),
                progress.rows,
                progress.output_bytes,
                state_path.display()
            );
        }
        // Rows past the last commit belong to a chunk the interruption cut short.
        file.set_len(progress.output_bytes)
            .and_then(|()| file.sync_all())
            .and_then(|()| file.seek(SeekFrom::End(0)).map(drop))
            .with_context(|| format!("truncating {} to its committed rows", output.display()))?;
        Ok(CommittedOutput {
            file,
            path: output.to_path_buf(),
            state_path,
            progress,
        })
    }

    /// What is committed so far.
    pub(crate) fn progress(&self) -> &Progress {
        &self.progress
    }

    /// Appends the `rows` lines of `text`, read from the input up to byte `input_offset`, and
    /// commits them: synced, then recorded in the state.
    pub(crate) fn commit(
        &mut self,
        text: &[u8],
        rows: u64,
        input_offset: u64,
    ) -> anyhow::Result<()> {
        self.file
            .write_all(text)
            .and_then(|()| self.file.sync_data())
            .with_context(|| {
                format!(
                    "writing {} (its first {} rows are committed and kept: rerun to resume)",
                    self.path.display(),
                    self.progress.rows
                )
            })?;
        let mut next = self.progress.clone();
        next.rows += rows;
        next.output_bytes += text.len() as u64;
        next.input_offset = input_offset;
        write_atomically(&self.state_path, &next)?;
        self.progress = next;
        Ok(())
    }

    /// Marks the output finished: removes the state.
    pub(crate) fn finish(self) -> anyhow::Result<()> {
        self.file.sync_all()?;
        std::fs::remove_file(&self.state_path)
            .with_context(|| format!("removing {}", self.state_path.display()))?;
        sync_parent(&self.path)
    }
}

/// `OUTPUT.lit-progress`.
pub(crate) fn sidecar(output: &Path) -> PathBuf {
    let mut name = output.as_os_str().to_owned();
    name.push(".lit-progress");
    PathBuf::from(name)
}

fn file_name(path: &Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

/// The fields in which `saved` and `now` differ, for the error.
fn differences(saved: &RunIdentity, now: &RunIdentity) -> String {
    let mut out = Vec::new();
    let mut field = |name: &str, a: String, b: String| {
        if a != b {
            out.push(format!("{name} {a}, now {b}"));
        }
    };
    field("store", saved.store.clone(), now.store.clone());
    field(
        "input size",
        saved.input_bytes.to_string(),
        now.input_bytes.to_string(),
    );
    field(
        "input modified",
        format!("{:?}", saved.input_modified_ns),
        format!("{:?}", now.input_modified_ns),
    );
    field(
        "--max-length",
        saved.max_length.to_string(),
        now.max_length.to_string(),
    );
    field(
        "--batch-size",
        saved.batch_size.to_string(),
        now.batch_size.to_string(),
    );
    field(
        "--chunk-size",
        saved.chunk_size.to_string(),
        now.chunk_size.to_string(),
    );
    out.join(", ")
}

/// Replaces `path` with `value` as JSON so that a reader sees the old or the new state, whole.
fn write_atomically(path: &Path, value: &Progress) -> anyhow::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let write = || -> std::io::Result<()> {
        let mut f = File::create(&tmp)?;
        f.write_all(&serde_json::to_vec(value)?)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write().with_context(|| format!("writing {}", path.display()))?;
    sync_parent(path)
}

/// Syncs the directory holding `path`, so a create, rename or remove in it survives a crash.
fn sync_parent(path: &Path) -> anyhow::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("syncing directory {}", dir.display()))
}
