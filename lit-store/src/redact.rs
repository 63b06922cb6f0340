//! What lit may print about where a store is and how it is reached: the one rule every message
//! (lit-store's and the CLI's) follows.
//!
//! - A location is printed by [`redacted`]: without user info (`user:password@`), query
//!   (`?X-Amz-Signature=…`, `?sig=…` of a pre-signed or SAS URL) and fragment.
//! - A store option's value (`--store-option KEY=VALUE`, `RemoteOptions::config`)
//!   is never printed: [`hide_values`] replaces it by its key in any text that echoes it.

/// `location` as it may be printed: a URL loses its user info, query and fragment (and a trailing
/// `/`); a plain path is returned as it is. Works on text that does not parse as a URL too.
pub fn redacted(location: &str) -> String {
    let Some((scheme, rest)) = location.split_once("://") else {
        return location.to_string();
    };
    // The query and fragment go first: an `@` or `/` in them must not be read as part of the
    // authority or path.
    let rest = &rest[..rest.find(['?', '#']).unwrap_or(rest.len())];
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let rest = match rest[..authority_end].rfind('@') {
        Some(at) => &rest[at + 1..],
        None => rest,
    };
    let rest = rest.trim_end_matches('/');
    format!("{scheme}://{rest}")
}

/// Values shorter than this (`1`, `yes`) hold no secret, and replacing them would garble
/// messages (`HTTP/1.1`).
const MIN_HIDDEN_LEN: usize = 4;

/// `text` with every value of `settings` (key, value) replaced by `<KEY>`, so a message that
/// echoes a store option names the option instead of showing its value. Longer values are
/// replaced first, so a value that contains another is hidden whole; values under 4 bytes are
/// left (they hold no secret, and would garble the message).
pub fn hide_values(text: &str, settings: &[(String, String)]) -> String {
    let mut by_length: Vec<&(String, String)> = settings
        .iter()
        .filter(|(_, v)| v.len() >= MIN_HIDDEN_LEN)
        .collect();
    by_length.sort_by_key(|(_, v)| std::cmp::Reverse(v.len()));
    let mut text = text.to_string();
    for (key, value) in by_length {
        if text.contains(value.as_str()) {
            text = text.replace(value.as_str(), &format!("<{key}>"));
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::{hide_values, redacted};

    #[test]
    fn user_info_query_and_fragment_are_cut() {
        assert_eq!(
            redacted("s3://key:secret@bucket/m.lit"),
            "s3://bucket/m.lit"
        );
        assert_eq!(
            redacted("https://acct.blob.core.windows.net/c/m.lit?sv=2024-05-04&sig=SAS%2Bsecret"),
            "https://acct.blob.core.windows.net/c/m.lit"
        );
        assert_eq!(
            redacted(
                "s3://bucket/m.lit/?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Signature=deadbeef"
            ),
            "s3://bucket/m.lit"
        );
        assert_eq!(redacted("az://c/m.lit#frag"), "az://c/m.lit");
        // An `@` in the query is not user info, and the query goes whole.
        assert_eq!(redacted("s3://bucket?a=b@c/d"), "s3://bucket");
        assert_eq!(redacted("s3://u:p@bucket?sig=x"), "s3://bucket");
        // An `@` in the path stays.
        assert_eq!(redacted("s3://bucket/a@b.lit"), "s3://bucket/a@b.lit");
        assert_eq!(redacted("dir/m.lit"), "dir/m.lit");
        assert_eq!(redacted("dir/a?b#c.lit"), "dir/a?b#c.lit");
    }

    #[test]
    fn option_values_are_named_by_their_key() {
        let settings = vec![
            ("aws_allow_http".to_string(), "hunter2".to_string()),
            ("aws_session_token".to_string(), "hunter2-long".to_string()),
            ("empty".to_string(), String::new()),
            ("aws_allow_http_too".to_string(), "1".to_string()),
        ];
        assert_eq!(
            hide_values(
                "failed to parse \"hunter2\" as boolean; token hunter2-long",
                &settings
            ),
            "failed to parse \"<aws_allow_http>\" as boolean; token <aws_session_token>"
        );
        assert_eq!(
            hide_values("nothing here over HTTP/1.1", &settings),
            "nothing here over HTTP/1.1"
        );
    }
}
