//! One module per subcommand.

pub(crate) mod bench;
pub(crate) mod demo;
pub(crate) mod export;
pub(crate) mod inspect;
pub(crate) mod run;
pub(crate) mod synth;
pub(crate) mod verify;

use anyhow::Context;
use lit_store::LocalSource;
use std::path::Path;

/// Opens a store by location.
pub(crate) fn open_store(location: &Path) -> anyhow::Result<LocalSource> {
    LocalSource::open(location).with_context(|| format!("cannot open store {}", location.display()))
}
