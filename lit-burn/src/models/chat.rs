//! Chat templates: a store's `chat_template` (a Jinja template, as Hugging Face
//! `tokenizer_config.json` and llama.cpp's `tokenizer.chat_template` carry it) rendered with
//! [`minijinja`], the way `transformers`' `apply_chat_template` renders it.
//!
//! The template gets `messages` (a list of `{role, content}`), `add_generation_prompt`, and the
//! tokenizer's `bos_token` / `eos_token` strings; `raise_exception(msg)` fails the rendering with
//! `msg`, and Python string methods (`.strip()`, `.startswith()`, ...) work as in Jinja2 under
//! Python (`minijinja_contrib::pycompat`).
//!
//! ```no_run
//! use lit_burn::models::chat::{ChatMessage, ChatTemplate};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let source = lit_store::LocalSource::open("smol.lit")?;
//! let template = ChatTemplate::from_store(&source)?.expect("the store has a chat template");
//! let prompt = template.render(&[ChatMessage::user("What is 2+2?")], true)?;
//! assert!(prompt.ends_with("<|im_start|>assistant\n"));
//! # Ok(())
//! # }
//! ```

use crate::error::{Error, Result};
use lit_core::{WeightSource, WeightSourceExt};
use serde_json::Value;

/// Where a store keeps its tokenizer settings (special tokens, chat template).
pub const TOKENIZER_CONFIG: &str = "tokenizer_config.json";
/// Where newer Hugging Face checkpoints keep the chat template instead (carried by `lit export`).
pub const CHAT_TEMPLATE_FILE: &str = "chat_template.jinja";

/// Markers that end an assistant turn in common chat formats (ChatML, Llama 3, Phi-3, Gemma).
/// [`ChatTemplate::stop_strings`] keeps those the template writes.
const END_OF_TURN: &[&str] = &["<|im_end|>", "<|eot_id|>", "<|end|>", "<end_of_turn>"];

/// One turn of a conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatMessage {
    /// `system`, `user` or `assistant`.
    pub role: String,
    /// What was said.
    pub content: String,
}

impl ChatMessage {
    /// A user turn.
    pub fn user(content: impl Into<String>) -> Self {
        ChatMessage {
            role: "user".into(),
            content: content.into(),
        }
    }

    /// A system turn.
    pub fn system(content: impl Into<String>) -> Self {
        ChatMessage {
            role: "system".into(),
            content: content.into(),
        }
    }
}

/// A chat template with the special tokens it may refer to.
#[derive(Debug, Clone)]
pub struct ChatTemplate {
    source: String,
    bos_token: Option<String>,
    eos_token: Option<String>,
}

impl ChatTemplate {
    /// A template from its Jinja source and the tokenizer's BOS/EOS token strings.
    pub fn new(
        source: impl Into<String>,
        bos_token: Option<String>,
        eos_token: Option<String>,
    ) -> Self {
        ChatTemplate {
            source: source.into(),
            bos_token,
            eos_token,
        }
    }

    /// The chat template of a `tokenizer_config.json`: its `chat_template` (a string, or a list of
    /// `{name, template}` of which the one named `default`), with its `bos_token` and `eos_token`
    /// (strings, or objects with a `content`). `None` when it has no template.
    pub fn from_tokenizer_config(json: &[u8]) -> Result<Option<Self>> {
        let config = parse_config(json)?;
        let bad = |why: &str| Error::InvalidArgument(format!("{TOKENIZER_CONFIG}: {why}"));
        let source = match config.get("chat_template") {
            None | Some(Value::Null) => return Ok(None),
            Some(Value::String(s)) => s.clone(),
            Some(Value::Array(named)) => named
                .iter()
                .find(|t| t.get("name").and_then(Value::as_str) == Some("default"))
                .and_then(|t| t.get("template"))
                .and_then(Value::as_str)
                .ok_or_else(|| bad("`chat_template` is a list without a template named `default`"))?
                .to_string(),
            Some(_) => return Err(bad("`chat_template` is neither a string nor a list")),
        };
        let (bos, eos) = special_tokens(&config);
        Ok(Some(ChatTemplate::new(source, bos, eos)))
    }

    /// The store's chat template: `chat_template.jinja` if the store carries one, else the
    /// `chat_template` of its `tokenizer_config.json`; `None` when it has neither. The special
    /// tokens come from `tokenizer_config.json` either way.
    pub fn from_store(source: &dyn WeightSource) -> Result<Option<Self>> {
        let read = |name: &str| -> Result<Option<bytes::Bytes>> {
            match source.manifest().aux_index(name) {
                Some(_) => Ok(Some(futures::executor::block_on(source.read_aux(name))?)),
                None => Ok(None),
            }
        };
        let config = read(TOKENIZER_CONFIG)?;
        let Some(file) = read(CHAT_TEMPLATE_FILE)? else {
            return match config {
                Some(bytes) => Self::from_tokenizer_config(&bytes),
                None => Ok(None),
            };
        };
        let text = String::from_utf8(file.to_vec()).map_err(|_| {
            Error::InvalidArgument(format!("{CHAT_TEMPLATE_FILE} is not valid UTF-8"))
        })?;
        let (bos, eos) = match config {
            Some(bytes) => special_tokens(&parse_config(&bytes)?),
            None => (None, None),
        };
        Ok(Some(ChatTemplate::new(text, bos, eos)))
    }

    /// The template's Jinja source.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The BOS token string the template sees as `bos_token`.
    pub fn bos_token(&self) -> Option<&str> {
        self.bos_token.as_deref()
    }

    /// The EOS token string the template sees as `eos_token`.
    pub fn eos_token(&self) -> Option<&str> {
        self.eos_token.as_deref()
    }

    /// Renders `messages`; with `add_generation_prompt`, ending with the opening of an assistant
    /// turn (what the model continues). The result holds special tokens as text (`<|im_start|>`),
    /// to be tokenized with special tokens recognised and none added
    /// ([`super::tokenizer::encode_chat`]).
    pub fn render(&self, messages: &[ChatMessage], add_generation_prompt: bool) -> Result<String> {
        let bad = |e: minijinja::Error| {
            // The error's chain (a template's own `raise_exception` message is its detail).
            let mut msg = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                msg.push_str(&format!(": {s}"));
                source = s.source();
            }
            Error::InvalidArgument(format!("chat template: {msg}"))
        };
        let mut env = minijinja::Environment::new();
        // As transformers renders chat templates: blocks eat their newline and leading spaces.
        let syntax = minijinja::syntax::SyntaxConfig::builder()
            .trim_blocks(true)
            .lstrip_blocks(true)
            .build()
            .map_err(bad)?;
        env.set_syntax(syntax);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function(
            "raise_exception",
            |msg: String| -> std::result::Result<String, minijinja::Error> {
                Err(minijinja::Error::new(
                    minijinja::ErrorKind::InvalidOperation,
                    msg,
                ))
            },
        );
        env.add_template("chat_template", &self.source)
            .map_err(bad)?;
        let template = env.get_template("chat_template").map_err(bad)?;
        let ctx = minijinja::context! {
            messages => messages
                .iter()
                .map(|m| minijinja::context! { role => m.role.as_str(), content => m.content.as_str() })
                .collect::<Vec<_>>(),
            add_generation_prompt => add_generation_prompt,
            bos_token => self.bos_token.as_deref().unwrap_or(""),
            eos_token => self.eos_token.as_deref().unwrap_or(""),
        };
        template.render(ctx).map_err(bad)
    }

    /// Strings whose token ends an assistant turn in this template's format: its EOS token and the
    /// end-of-turn markers (`<|im_end|>`, `<|eot_id|>`, ...) the template writes.
    pub fn stop_strings(&self) -> Vec<&str> {
        let mut out: Vec<&str> = self.eos_token.as_deref().into_iter().collect();
        for marker in END_OF_TURN {
            if self.source.contains(marker) && !out.contains(marker) {
                out.push(marker);
            }
        }
        out
    }
}

/// A `tokenizer_config.json` as JSON.
fn parse_config(json: &[u8]) -> Result<Value> {
    serde_json::from_slice(json)
        .map_err(|e| Error::InvalidArgument(format!("{TOKENIZER_CONFIG}: not valid JSON: {e}")))
}

/// A tokenizer config's `bos_token` and `eos_token`: strings, or objects with a `content`.
fn special_tokens(config: &Value) -> (Option<String>, Option<String>) {
    let token = |key: &str| match config.get(key) {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Object(o)) => o.get("content").and_then(Value::as_str).map(str::to_string),
        _ => None,
    };
    (token("bos_token"), token("eos_token"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SmolLM2-Instruct's template, as its GGUF and tokenizer_config.json carry it.
    const SMOLLM2: &str = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

    #[test]
    fn smollm2_adds_its_system_turn() {
        let t = ChatTemplate::new(
            SMOLLM2,
            Some("<|im_start|>".into()),
            Some("<|im_end|>".into()),
        );
        assert_eq!(
            t.render(&[ChatMessage::user("What is 2+2?")], true)
                .unwrap(),
            "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging \
             Face<|im_end|>\n<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n"
        );
        let own = [ChatMessage::system("Be brief."), ChatMessage::user("Hi")];
        assert_eq!(
            t.render(&own, false).unwrap(),
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
        );
        assert_eq!(t.stop_strings(), ["<|im_end|>"]);
    }

    #[test]
    fn llama3_style_template_with_bos_trim_and_python_methods() {
        // Shaped like Llama 3's: bos_token, whitespace control, `.strip()`, trim_blocks.
        let src = "{{ bos_token }}{% for m in messages %}\n\
                   <|start_header_id|>{{ m['role'] }}<|end_header_id|>\n\n{{ m['content'].strip() }}<|eot_id|>\
                   {% endfor %}\n{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}";
        let t = ChatTemplate::new(src, Some("<|begin_of_text|>".into()), None);
        assert_eq!(
            t.render(&[ChatMessage::user("  hi  ")], true).unwrap(),
            "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nhi<|eot_id|>\
             <|start_header_id|>assistant<|end_header_id|>\n\n"
        );
        assert_eq!(t.stop_strings(), ["<|eot_id|>"]);
    }

    #[test]
    fn raise_exception_and_syntax_errors_are_errors() {
        let t = ChatTemplate::new(
            "{% if messages[0]['role'] == 'user' %}{{ raise_exception('Conversation roles must alternate') }}{% endif %}",
            None,
            None,
        );
        let err = t
            .render(&[ChatMessage::user("x")], true)
            .unwrap_err()
            .to_string();
        assert!(err.contains("Conversation roles must alternate"), "{err}");
        let err = ChatTemplate::new("{% for %}", None, None)
            .render(&[], true)
            .unwrap_err()
            .to_string();
        assert!(err.contains("chat template"), "{err}");
    }

    #[test]
    fn tokenizer_config_forms() {
        let t = ChatTemplate::from_tokenizer_config(
            br#"{"chat_template": "x", "bos_token": {"content": "<s>", "lstrip": false}, "eos_token": "</s>"}"#,
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            (t.source(), t.bos_token(), t.eos_token()),
            ("x", Some("<s>"), Some("</s>"))
        );
        let t = ChatTemplate::from_tokenizer_config(
            br#"{"chat_template": [{"name": "tool_use", "template": "a"}, {"name": "default", "template": "b"}]}"#,
        )
        .unwrap()
        .unwrap();
        assert_eq!(t.source(), "b");
        assert!(
            ChatTemplate::from_tokenizer_config(br#"{"eos_token": "</s>"}"#)
                .unwrap()
                .is_none()
        );
        for bad in [
            &b"{"[..],
            br#"{"chat_template": 3}"#,
            br#"{"chat_template": [{"name": "x", "template": "a"}]}"#,
        ] {
            let err = ChatTemplate::from_tokenizer_config(bad)
                .unwrap_err()
                .to_string();
            assert!(err.contains("tokenizer_config.json"), "{err}");
        }
    }

    /// A one-tensor store with `aux` files.
    fn store_with(aux: &[(&str, &str)]) -> (lit_store::LocalSource, tempfile::TempDir) {
        let tmp = tempfile::tempdir().unwrap();
        let dst = tmp.path().join("store");
        let mut w = lit_store::StoreWriter::create_local(&dst).unwrap();
        let spec = lit_store::layer_file::TensorSpec {
            name: "x".into(),
            dtype: lit_core::DType::F32,
            shape: vec![1],
        };
        w.write_layer("x", &[spec], |_| Ok(vec![0u8; 4])).unwrap();
        for (name, text) in aux {
            w.write_aux(name, text.as_bytes()).unwrap();
        }
        w.finish("test", vec![]).unwrap();
        (lit_store::LocalSource::open(&dst).unwrap(), tmp)
    }

    #[test]
    fn a_store_template_from_its_config_or_its_jinja_file() {
        let config =
            r#"{"chat_template": "{{ bos_token }}A", "bos_token": "<s>", "eos_token": "</s>"}"#;
        let (s, _t) = store_with(&[(TOKENIZER_CONFIG, config)]);
        let t = ChatTemplate::from_store(&s).unwrap().unwrap();
        assert_eq!(t.render(&[], false).unwrap(), "<s>A");
        // chat_template.jinja wins; the special tokens still come from tokenizer_config.json.
        let (s, _t) = store_with(&[
            (TOKENIZER_CONFIG, config),
            (CHAT_TEMPLATE_FILE, "{{ eos_token }}B"),
        ]);
        let t = ChatTemplate::from_store(&s).unwrap().unwrap();
        assert_eq!(t.render(&[], false).unwrap(), "</s>B");
        let (s, _t) = store_with(&[(TOKENIZER_CONFIG, r#"{"eos_token": "</s>"}"#)]);
        assert!(ChatTemplate::from_store(&s).unwrap().is_none());
        let (s, _t) = store_with(&[]);
        assert!(ChatTemplate::from_store(&s).unwrap().is_none());
    }
}
