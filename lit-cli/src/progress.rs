//! Progress bars (indicatif) fed by lit's progress events; hidden when stderr is not a terminal.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use lit_core::{Event, Observer};
use std::io::IsTerminal;

/// Draws a byte progress bar for writes (export, copy).
pub(crate) struct WriteProgress {
    bar: ProgressBar,
}

impl WriteProgress {
    pub(crate) fn new(message: &str) -> Self {
        let bar = ProgressBar::with_draw_target(Some(0), draw_target());
        bar.set_style(
            ProgressStyle::with_template(
                "{msg} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} {wide_msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        bar.set_message(message.to_string());
        WriteProgress { bar }
    }

    pub(crate) fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

impl Observer for WriteProgress {
    fn on_event(&self, event: &Event<'_>) {
        match event {
            Event::WriteStarted { bytes, .. } => self.bar.set_length(*bytes),
            Event::LayerWritten { bytes, .. } | Event::LayerSkipped { bytes, .. } => {
                self.bar.inc(*bytes)
            }
            _ => {}
        }
    }
}

/// stderr when it is a terminal, nothing otherwise.
pub(crate) fn draw_target() -> ProgressDrawTarget {
    if std::io::stderr().is_terminal() {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    }
}

/// `n` bytes for people: `90.9 MB`.
pub(crate) fn human_bytes(n: u64) -> String {
    bytesize::ByteSize(n).display().si().to_string()
}

/// Megabytes per second.
pub(crate) fn mb_per_s(bytes: u64, seconds: f64) -> f64 {
    bytes as f64 / 1e6 / seconds.max(1e-9)
}
