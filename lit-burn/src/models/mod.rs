//! Built-in architectures, each built as a skeleton from the `config.json` kept in the store and
//! run through the [`crate::Streamer`].
