//! `--include` patterns, rsync-like: a pattern without `/` matches the file name, one with `/`
//! the path inside the session. `*` matches within one path component, `**` across components,
//! `?` one character. Small on purpose: three rules a researcher can keep in mind.

use crate::SyncError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glob {
    source: String,
    pattern: Vec<char>,
    whole_path: bool,
}

impl Glob {
    pub fn new(pattern: &str) -> Result<Glob, SyncError> {
        let trimmed = pattern.trim().trim_start_matches("./");
        if trimmed.is_empty() {
            return Err(SyncError::BadPattern {
                pattern: pattern.into(),
                reason: "it is empty".into(),
            });
        }
        if trimmed.split('/').any(|c| c == "..") {
            return Err(SyncError::BadPattern {
                pattern: pattern.into(),
                reason: "'..' never matches a file inside a session".into(),
            });
        }
        let trimmed = trimmed.trim_start_matches('/');
        Ok(Glob {
            source: pattern.to_string(),
            pattern: trimmed.chars().collect(),
            whole_path: trimmed.contains('/'),
        })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// `path` is relative to the session folder, `/`-separated.
    pub fn matches(&self, path: &str) -> bool {
        let subject = if self.whole_path {
            path
        } else {
            path.rsplit('/').next().unwrap_or(path)
        };
        let text: Vec<char> = subject.chars().collect();
        matches_at(&self.pattern, &text)
    }
}

fn matches_at(p: &[char], t: &[char]) -> bool {
    match p.first() {
        None => t.is_empty(),
        Some('*') if p.get(1) == Some(&'*') => {
            // `**/` also matches zero directories.
            let rest = &p[2..];
            if rest.first() == Some(&'/') && matches_at(&rest[1..], t) {
                return true;
            }
            (0..=t.len()).any(|i| matches_at(rest, &t[i..]))
        }
        Some('*') => {
            let rest = &p[1..];
            for i in 0..=t.len() {
                if matches_at(rest, &t[i..]) {
                    return true;
                }
                if i < t.len() && t[i] == '/' {
                    break;
                }
            }
            false
        }
        Some('?') => t.first().is_some_and(|c| *c != '/') && matches_at(&p[1..], &t[1..]),
        Some(c) => t.first() == Some(c) && matches_at(&p[1..], &t[1..]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(pattern: &str, path: &str, expect: bool) {
        assert_eq!(
            Glob::new(pattern).unwrap().matches(path),
            expect,
            "{pattern} vs {path}"
        );
    }

    #[test]
    fn patterns() {
        check("*.parquet", "features.parquet", true);
        check("*.parquet", "band/alpha.parquet", true);
        check("*.parquet", "features.csv", false);
        check("band/*.parquet", "band/alpha.parquet", true);
        check("band/*.parquet", "band/x/alpha.parquet", false);
        check("**/*.parquet", "band/x/alpha.parquet", true);
        check("**/*.parquet", "alpha.parquet", true);
        check("rec_00?.bin", "rec_001.bin", true);
        check("rec_00?.bin", "rec_0011.bin", false);
        check("summary.json", "summary.json", true);
        assert!(Glob::new("../x").is_err());
        assert!(Glob::new(" ").is_err());
    }
}
