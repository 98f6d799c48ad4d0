//! The answers file: clarification answers given in advance, one per question, in order.
//!
//! ```toml
//! answers = ["B", "the empty list counts as zero"]
//! ```
//!
//! The file comes from the user (or a script), so it is parsed once, here, with a clear reason
//! when it is refused.

use std::collections::VecDeque;
use std::path::Path;

/// Longest answer accepted, in bytes.
pub const ANSWER_BYTES_MAX: usize = 2000;
/// Most answers in one file (a build asks at most a few questions; see the clarification cap).
pub const ANSWERS_MAX: usize = 64;

/// Parses answers-file text; `path` is only used in messages. Every error names the file.
pub fn parse_answers(text: &str, path: &Path) -> Result<VecDeque<String>, String> {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct File {
        answers: Vec<String>,
    }
    let f: File = toml::from_str(text).map_err(|e| {
        format!(
            "answers file {} is not valid (expected answers = [\"B\", ...]): {}",
            path.display(),
            e.to_string().trim().replace('\n', " ")
        )
    })?;
    if f.answers.len() > ANSWERS_MAX {
        return Err(format!(
            "answers file {}: {} answers; at most {ANSWERS_MAX} are accepted",
            path.display(),
            f.answers.len()
        ));
    }
    if f.answers
        .iter()
        .any(|a| a.trim().is_empty() || a.len() > ANSWER_BYTES_MAX)
    {
        return Err(format!(
            "answers file {}: every answer must be 1 to {ANSWER_BYTES_MAX} characters",
            path.display()
        ));
    }
    Ok(f.answers.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_parse_in_order_and_bad_files_name_themselves() {
        let p = Path::new("answers.toml");
        let a = parse_answers("answers = [\"B\", \"free text\"]\n", p).unwrap();
        assert_eq!(
            a,
            VecDeque::from(vec!["B".to_string(), "free text".to_string()])
        );
        for bad in [
            "",
            "answers = 3",
            "answers = [\"\"]",
            "answers = []\nx = 1",
            "[[[",
        ] {
            let e = parse_answers(bad, p).unwrap_err();
            assert!(e.contains("answers.toml"), "{bad:?}: {e}");
        }
    }
}
