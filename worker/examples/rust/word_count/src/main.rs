//! A hopper worker in Rust, stream mode: one JSON line in, one JSON line out.
//!
//! The payload is a string (count its words), {"text": "..."} (count those)
//! or {"path": "..."} (count the words in that file); the result is
//! {"words": N}. Anything else is a permanent failure. Words are runs of
//! anything but ASCII whitespace, as in every example.
use serde_json::{json, Value};
use std::io::{self, BufRead, Write};

fn count_words(bytes: &[u8]) -> usize {
    bytes
        .split(|b| b" \t\n\x0b\x0c\r".contains(b))
        .filter(|word| !word.is_empty())
        .count()
}

fn word_count(payload: &Value) -> Result<usize, String> {
    if let Some(text) = payload.as_str().or(payload["text"].as_str()) {
        Ok(count_words(text.as_bytes()))
    } else if let Some(path) = payload["path"].as_str() {
        let data = std::fs::read(path).map_err(|e| format!("cannot read {path}: {e}"))?;
        Ok(count_words(&data))
    } else {
        Err(r#"payload must be a string, or an object with a "text" or "path" string"#.into())
    }
}

fn main() -> io::Result<()> {
    let mut out = io::stdout().lock();
    // lines() has no length limit and ends at EOF, which means "exit now".
    for line in io::stdin().lock().lines() {
        let item: Value = serde_json::from_str(&line?)?;
        let answer = match word_count(&item["payload"]) {
            Ok(words) => json!({"id": item["id"], "ok": true, "result": {"words": words}}),
            Err(error) => json!({"id": item["id"], "ok": false, "error": error, "retry": false}),
        };
        writeln!(out, "{answer}")?;
        out.flush()?; // the contract: flush after every line
    }
    Ok(())
}
