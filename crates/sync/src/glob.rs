//! `--include` patterns, rsync-like: a pattern without `/` matches the file name, one with `/`
//! the path inside the session. `*` matches within one path component, `**` across components,
//! `?` one character. Small on purpose: three rules a researcher can keep in mind.

use crate::SyncError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glob {
    source: String,
    tokens: Vec<Token>,
    whole_path: bool,
}

/// One element of a pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    /// A character matched as itself.
    Char(char),
    /// `?`: one character other than `/`.
    One,
    /// `*`: any run of characters other than `/`.
    Star,
    /// `**`: any run of characters, `/` included; `**/` also matches no folder at all.
    Stars,
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
        let mut tokens = Vec::new();
        let mut chars = trimmed.chars().peekable();
        while let Some(c) = chars.next() {
            tokens.push(match c {
                '*' if chars.peek() == Some(&'*') => {
                    chars.next();
                    // `***` is `**`.
                    while chars.peek() == Some(&'*') {
                        chars.next();
                    }
                    Token::Stars
                }
                '*' => Token::Star,
                '?' => Token::One,
                c => Token::Char(c),
            });
        }
        Ok(Glob {
            source: pattern.to_string(),
            tokens,
            whole_path: trimmed.contains('/'),
        })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// `path` is relative to the session folder, `/`-separated.
    pub fn matches(&self, path: &str) -> bool {
        self.run(path).0
    }

    /// Whether `path` matches, and the number of steps it took (one per pattern position
    /// visited per character).
    ///
    /// The pattern runs as a set of positions over the text, one character at a time (a
    /// nondeterministic automaton simulated breadth-first): no recursion, no backtracking; each
    /// character visits each position at most twice (once to step, once to close), so at most
    /// `2 × (text length + 1) × (pattern length + 1)` steps whatever the pattern — a pattern
    /// like `*a*a*a*a*a*a*a*a*b` against a long name of `a`s costs no more than any other.
    fn run(&self, path: &str) -> (bool, usize) {
        let subject = if self.whole_path {
            path
        } else {
            path.rsplit('/').next().unwrap_or(path)
        };
        let end = self.tokens.len();
        let mut steps = 0;
        // `seen[p] == round`: position p is already in the set of this round.
        let mut seen = vec![0usize; end + 1];
        let mut round = 1;
        let mut now = vec![0];
        seen[0] = round;
        self.close(&mut now, &mut seen, round, &mut steps);
        let mut next = Vec::with_capacity(end + 1);
        for c in subject.chars() {
            round += 1;
            next.clear();
            for &p in &now {
                steps += 1;
                let to = match self.tokens.get(p) {
                    Some(Token::Char(x)) if *x == c => p + 1,
                    Some(Token::One) if c != '/' => p + 1,
                    Some(Token::Star) if c != '/' => p,
                    Some(Token::Stars) => p,
                    _ => continue,
                };
                if seen[to] != round {
                    seen[to] = round;
                    next.push(to);
                }
            }
            if next.is_empty() {
                return (false, steps);
            }
            self.close(&mut next, &mut seen, round, &mut steps);
            std::mem::swap(&mut now, &mut next);
        }
        (now.contains(&end), steps)
    }

    /// Adds to `set` the positions reachable without consuming a character: past a `*` or
    /// `**` (they match nothing too), and past `**/` (no folder at all).
    fn close(&self, set: &mut Vec<usize>, seen: &mut [usize], round: usize, steps: &mut usize) {
        let mut k = 0;
        while k < set.len() {
            let p = set[k];
            k += 1;
            *steps += 1;
            let skips: &[usize] = match self.tokens.get(p) {
                Some(Token::Star) => &[1],
                Some(Token::Stars) if self.tokens.get(p + 1) == Some(&Token::Char('/')) => &[1, 2],
                Some(Token::Stars) => &[1],
                _ => &[],
            };
            for skip in skips {
                let to = p + skip;
                if seen[to] != round {
                    seen[to] = round;
                    set.push(to);
                }
            }
        }
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
        check("**", "band/x/alpha.parquet", true);
        check("band/**", "band/x/alpha.parquet", true);
        check("band/**/alpha.parquet", "band/alpha.parquet", true);
        check("band/**/alpha.parquet", "band/x/y/alpha.parquet", true);
        check("band/**/alpha.parquet", "bandx/alpha.parquet", false);
        check("*", "", true);
        check("?", "", false);
        check("a*b", "ab", true);
        check("a*b", "a/b", false);
        check("*.bin", "rec.bin.part", false);
        check("***.bin", "x/rec.bin", true);
        check("band/***", "band/x/y", true);
        check("raw/rec_*", "raw/rec_000.bin", true);
        check("raw/rec_*", "raw/x/rec_000.bin", false);
        assert!(Glob::new("../x").is_err());
        assert!(Glob::new(" ").is_err());
    }

    /// Patterns that make a backtracking matcher take exponential time or recurse once per
    /// pattern character cost at most 2 × (text + 1) × (pattern + 1) steps here, counted, not timed.
    #[test]
    fn pathological_patterns_take_at_most_text_times_pattern_steps() {
        let name = "a".repeat(10_000);
        for (pattern, path, expect) in [
            ("*a*a*a*a*a*a*a*a*b", name.clone(), false),
            ("*a*a*a*a*a*a*a*a*a", name.clone(), true),
            ("**a**a**a**a**a**a**b", format!("x/{name}"), false),
            ("**/*a*a*a*a*a*a*a*a*b", format!("x/y/{name}"), false),
        ] {
            let glob = Glob::new(pattern).unwrap();
            let (matched, steps) = glob.run(&path);
            assert_eq!(matched, expect, "{pattern}");
            let bound = 2 * (path.chars().count() + 1) * (glob.tokens.len() + 1);
            assert!(steps <= bound, "{pattern}: {steps} steps > {bound}");
        }
        // A pattern as long as a path may be long (deterministic size): no recursion, so no
        // stack to run out of.
        let long = "a".repeat(200_000);
        let glob = Glob::new(&long).unwrap();
        assert!(glob.matches(&long));
        assert!(!glob.matches(&long[1..]));
    }
}
