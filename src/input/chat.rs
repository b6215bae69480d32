//! The checkpoint's chat template, rendered with minijinja.
//!
//! The template is read from whichever of these the folder has, in this
//! order: `chat_template.jinja`, `chat_template.json` (`{"chat_template": …}`),
//! `tokenizer_config.json` (`"chat_template"`, a string or the first entry of
//! a list of named templates).

use std::path::Path;

use serde_json::Value;

use crate::error::{GeomError, Result};

/// A chat template ready to render conversations.
pub struct ChatTemplate {
    source: String,
    origin: String,
}

impl ChatTemplate {
    /// Reads the template of a checkpoint folder.
    pub fn from_dir(dir: &Path) -> Result<Self> {
        let jinja = dir.join("chat_template.jinja");
        if jinja.exists() {
            let source = read(&jinja)?;
            return Ok(Self {
                source,
                origin: jinja.display().to_string(),
            });
        }
        for (file, key) in [
            ("chat_template.json", "chat_template"),
            ("tokenizer_config.json", "chat_template"),
        ] {
            let path = dir.join(file);
            if !path.exists() {
                continue;
            }
            let v: Value = serde_json::from_str(&read(&path)?).map_err(|e| {
                GeomError::invalid(format!("{}: not valid JSON: {e}", path.display()))
            })?;
            let t = match v.get(key) {
                Some(Value::String(s)) => Some(s.clone()),
                Some(Value::Array(a)) => a
                    .iter()
                    .find_map(|e| e.get("template").and_then(Value::as_str))
                    .map(str::to_string),
                _ => None,
            };
            if let Some(source) = t {
                return Ok(Self {
                    source,
                    origin: path.display().to_string(),
                });
            }
        }
        Err(GeomError::invalid(format!(
            "{}: no chat template (looked for chat_template.jinja, chat_template.json, tokenizer_config.json \"chat_template\")",
            dir.display()
        )))
    }

    /// A template from a string (e.g. a user override).
    pub fn from_source(source: impl Into<String>) -> Self {
        Self {
            source: source.into(),
            origin: "<given>".into(),
        }
    }

    /// Renders `messages` (the Hugging Face format: a list of
    /// `{"role", "content"}` where content is a string or a list of
    /// `{"type": "text"|"image"|"video", ...}` items), with the generation
    /// prompt when `add_generation_prompt`.
    pub fn render(&self, messages: &Value, add_generation_prompt: bool) -> Result<String> {
        let mut env = minijinja::Environment::new();
        env.set_keep_trailing_newline(true);
        env.add_function(
            "raise_exception",
            |msg: String| -> std::result::Result<String, minijinja::Error> {
                Err(minijinja::Error::new(
                    minijinja::ErrorKind::InvalidOperation,
                    msg,
                ))
            },
        );
        let err = |e: minijinja::Error| {
            GeomError::invalid(format!("{}: chat template: {e}", self.origin))
        };
        env.add_template("chat", &self.source).map_err(err)?;
        let tmpl = env.get_template("chat").map_err(err)?;
        tmpl.render(minijinja::context! {
            messages => minijinja::Value::from_serialize(messages),
            add_generation_prompt => add_generation_prompt,
            add_vision_id => false,
        })
        .map_err(err)
    }
}

fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|source| GeomError::Io {
        path: path.to_path_buf(),
        source,
    })
}
