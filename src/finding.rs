//! What `--check` says of a directory: findings, each with a verdict.

/// How a finding bears on locking here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verdict {
    Ok,
    Warning,
    Unsafe,
}

impl Verdict {
    pub fn word(self) -> &'static str {
        match self {
            Verdict::Ok => "ok",
            Verdict::Warning => "warning",
            Verdict::Unsafe => "unsafe",
        }
    }
}

/// One finding: what was found, and what to do about it (if anything).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub topic: &'static str,
    pub verdict: Verdict,
    pub text: String,
    pub todo: Option<String>,
}

pub(crate) fn finding(
    topic: &'static str,
    verdict: Verdict,
    text: String,
    todo: Option<&str>,
) -> Finding {
    Finding {
        topic,
        verdict,
        text,
        todo: todo.map(String::from),
    }
}
