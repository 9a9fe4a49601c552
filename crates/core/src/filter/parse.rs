//! Tokenizer and recursive-descent parser. Precedence: `not` > `and` > `or`; parentheses group.

use super::{CmpOp, Expr, FieldRef, FilterError, Literal};
use chrono::{NaiveDate, NaiveDateTime};

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Word(String),
    Number(f64),
    Str(String),
    Date(NaiveDate),
    DateTime(NaiveDateTime),
    Op(CmpOp),
    LParen,
    RParen,
    Comma,
    End,
}

#[derive(Debug, Clone)]
struct Token {
    tok: Tok,
    column: usize,
    width: usize,
}

fn tokenize(src: &str) -> Result<Vec<Token>, FilterError> {
    let chars: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let start = i;
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        let push = |out: &mut Vec<Token>, tok, end: usize| {
            out.push(Token {
                tok,
                column: start,
                width: end - start,
            })
        };
        match c {
            '(' => {
                i += 1;
                push(&mut out, Tok::LParen, i)
            }
            ')' => {
                i += 1;
                push(&mut out, Tok::RParen, i)
            }
            ',' => {
                i += 1;
                push(&mut out, Tok::Comma, i)
            }
            '=' | '!' | '<' | '>' => {
                let next = chars.get(i + 1).copied();
                let (op, len) = match (c, next) {
                    ('=', Some('=')) => (CmpOp::Eq, 2),
                    ('=', _) => (CmpOp::Eq, 1),
                    ('!', Some('=')) => (CmpOp::Ne, 2),
                    ('<', Some('>')) => (CmpOp::Ne, 2),
                    ('<', Some('=')) => (CmpOp::Le, 2),
                    ('<', _) => (CmpOp::Lt, 1),
                    ('>', Some('=')) => (CmpOp::Ge, 2),
                    ('>', _) => (CmpOp::Gt, 1),
                    _ => {
                        return Err(FilterError::new(
                            i,
                            1,
                            "'!' must be followed by '=' (not equal); use `not` to negate",
                        ))
                    }
                };
                i += len;
                push(&mut out, Tok::Op(op), i)
            }
            '"' | '\'' => {
                let mut s = String::new();
                i += 1;
                loop {
                    match chars.get(i) {
                        None => {
                            return Err(FilterError::new(
                                start,
                                i - start,
                                format!(
                                    "this text has no closing {c}; add it at the end of the text"
                                ),
                            ))
                        }
                        Some('\\') if matches!(chars.get(i + 1), Some(&q) if q == c || q == '\\') =>
                        {
                            s.push(chars[i + 1]);
                            i += 2;
                        }
                        Some(&q) if q == c => {
                            i += 1;
                            break;
                        }
                        Some(&other) => {
                            s.push(other);
                            i += 1;
                        }
                    }
                }
                push(&mut out, Tok::Str(s), i)
            }
            c if c.is_ascii_digit()
                || (c == '-' && chars.get(i + 1).is_some_and(|d| d.is_ascii_digit()))
                || (c == '.' && chars.get(i + 1).is_some_and(|d| d.is_ascii_digit())) =>
            {
                i += 1;
                while i < chars.len()
                    && (chars[i].is_ascii_alphanumeric()
                        || matches!(chars[i], '.' | ':' | '-' | '+' | '_'))
                {
                    // A sign only continues a number right after an exponent marker.
                    if matches!(chars[i], '+' | '-')
                        && !matches!(chars[i - 1], 'e' | 'E')
                        && !looks_like_date(&chars[start..i])
                    {
                        break;
                    }
                    i += 1;
                }
                let text: String = chars[start..i].iter().collect();
                push(&mut out, literal_token(&text, start)?, i)
            }
            c if c.is_alphabetic() || c == '_' => {
                while i < chars.len()
                    && (chars[i].is_alphanumeric() || matches!(chars[i], '_' | '-' | '.'))
                {
                    i += 1;
                }
                let text: String = chars[start..i].iter().collect();
                push(&mut out, Tok::Word(text), i)
            }
            other => {
                return Err(FilterError::new(
                    i,
                    1,
                    format!(
                        "unexpected character '{other}'; quote text values, e.g. \"BioRec Mk2\""
                    ),
                ))
            }
        }
    }
    out.push(Token {
        tok: Tok::End,
        column: chars.len(),
        width: 1,
    });
    Ok(out)
}

/// `2021` or `2021-…`: a date being scanned, whose dashes belong to it.
fn looks_like_date(prefix: &[char]) -> bool {
    prefix.len() >= 4
        && prefix[..4].iter().all(char::is_ascii_digit)
        && (prefix.len() == 4 || prefix[4] == '-')
}

fn literal_token(text: &str, column: usize) -> Result<Tok, FilterError> {
    let width = text.chars().count();
    let shaped_like_date =
        text.len() >= 10 && text.as_bytes()[4] == b'-' && text.as_bytes()[7] == b'-';
    if shaped_like_date {
        if let Ok(d) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
            return Ok(Tok::Date(d));
        }
        for fmt in ["%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M"] {
            if let Ok(t) = NaiveDateTime::parse_from_str(text, fmt) {
                return Ok(Tok::DateTime(t));
            }
        }
        return Err(FilterError::new(
            column,
            width,
            format!(
                "'{text}' is not a valid date (YYYY-MM-DD) or date-time (YYYY-MM-DDTHH:MM[:SS])"
            ),
        ));
    }
    match text.parse::<f64>() {
        Ok(n) if n.is_finite() => Ok(Tok::Number(n)),
        _ => {
            let hint = if text.contains(',') {
                "; use a decimal point"
            } else {
                "; quote it if it is text"
            };
            Err(FilterError::new(
                column,
                width,
                format!("'{text}' is not a number{hint}"),
            ))
        }
    }
}

/// Deepest nesting of parentheses and `not` a filter may have. The tree is walked recursively
/// (type checks, evaluation, the DynamoDB compiler, drop), so unbounded nesting would overflow
/// the stack of a 256 MB Lambda or the app's worker thread; no real filter comes near this.
pub const MAX_DEPTH: usize = 32;
/// Most comparisons in one filter. DynamoDB allows at most 300 operators and functions in one
/// expression (Developer Guide, "Service, account, and table quotas": "Expression parameters"),
/// and a chain of `and`/`or` is as deep as it is long.
pub const MAX_COMPARISONS: usize = 100;
/// Longest filter text, in bytes: DynamoDB's 4 KB limit on an expression string, rounded up for
/// the placeholders our compiler shortens.
pub const MAX_LENGTH: usize = 4096;
/// Most values in one `in (…)` list: DynamoDB's `IN` comparator takes at most 100 (Developer
/// Guide, "Comparison operator and function reference").
pub const MAX_IN_VALUES: usize = 100;

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
    /// Current nesting of `(` and `not`.
    depth: usize,
    /// Comparisons parsed so far.
    comparisons: usize,
}

fn keyword(tok: &Tok, kw: &str) -> bool {
    matches!(tok, Tok::Word(w) if w.eq_ignore_ascii_case(kw))
}

const KEYWORDS: [&str; 6] = ["and", "or", "not", "in", "contains", "exists"];

impl Parser {
    fn peek(&self) -> &Token {
        &self.tokens[self.pos]
    }
    fn next(&mut self) -> Token {
        let t = self.tokens[self.pos].clone();
        if self.pos < self.tokens.len() - 1 {
            self.pos += 1;
        }
        t
    }
    fn describe(t: &Token) -> String {
        match &t.tok {
            Tok::End => "the end of the filter".into(),
            Tok::Word(w) => format!("'{w}'"),
            Tok::Number(n) => format!("'{n}'"),
            Tok::Str(s) => format!("\"{s}\""),
            Tok::Date(d) => format!("'{d}'"),
            Tok::DateTime(d) => format!("'{d}'"),
            Tok::Op(o) => format!("'{}'", o.symbol()),
            Tok::LParen => "'('".into(),
            Tok::RParen => "')'".into(),
            Tok::Comma => "','".into(),
        }
    }
    fn error(t: &Token, msg: String) -> FilterError {
        FilterError::new(t.column, t.width, msg)
    }

    fn or(&mut self) -> Result<Expr, FilterError> {
        let mut left = self.and()?;
        while keyword(&self.peek().tok, "or") {
            self.next();
            left = Expr::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Expr, FilterError> {
        let mut left = self.unary()?;
        while keyword(&self.peek().tok, "and") {
            self.next();
            left = Expr::And(Box::new(left), Box::new(self.unary()?));
        }
        Ok(left)
    }

    /// Enters one level of `(` or `not`, refusing to go deeper than [`MAX_DEPTH`].
    fn descend(&mut self, at: &Token) -> Result<(), FilterError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(Self::error(
                at,
                format!(
                    "the filter nests deeper than {MAX_DEPTH} levels of parentheses or 'not'; remove redundant parentheses or split the filter"
                ),
            ));
        }
        Ok(())
    }

    fn unary(&mut self) -> Result<Expr, FilterError> {
        if keyword(&self.peek().tok, "not") {
            let not = self.next();
            self.descend(&not)?;
            let inner = self.unary()?;
            self.depth -= 1;
            return Ok(Expr::Not(Box::new(inner)));
        }
        if self.peek().tok == Tok::LParen {
            let open = self.next();
            self.descend(&open)?;
            let inner = self.or()?;
            self.depth -= 1;
            let close = self.next();
            if close.tok != Tok::RParen {
                return Err(if close.tok == Tok::End {
                    Self::error(&open, "this parenthesis is never closed; add ')'".into())
                } else {
                    Self::error(
                        &close,
                        format!("expected ')' but found {}", Self::describe(&close)),
                    )
                });
            }
            return Ok(inner);
        }
        self.comparison()
    }

    fn comparison(&mut self) -> Result<Expr, FilterError> {
        let t = self.next();
        self.comparisons += 1;
        if self.comparisons > MAX_COMPARISONS {
            return Err(Self::error(
                &t,
                format!(
                    "the filter has more than {MAX_COMPARISONS} comparisons; use 'in (…)' for lists of values or split the filter"
                ),
            ));
        }
        let name = match &t.tok {
            Tok::Word(w) if !KEYWORDS.iter().any(|k| w.eq_ignore_ascii_case(k)) => w.to_lowercase(),
            _ => {
                return Err(Self::error(
                    &t,
                    format!(
                        "expected a field name (e.g. fatigue, date, status) but found {}",
                        Self::describe(&t)
                    ),
                ))
            }
        };
        let field = FieldRef {
            name,
            column: t.column,
        };
        let op = self.next();
        match &op.tok {
            Tok::Op(cmp) => {
                let (value, value_column) = self.value(&op)?;
                Ok(Expr::Cmp { field, op: *cmp, value, value_column })
            }
            Tok::Word(w) if w.eq_ignore_ascii_case("exists") => Ok(Expr::Exists { field }),
            Tok::Word(w) if w.eq_ignore_ascii_case("contains") => {
                let v = self.next();
                match v.tok {
                    Tok::Str(s) | Tok::Word(s) => Ok(Expr::Contains { field, value: s, value_column: v.column }),
                    _ => Err(Self::error(&v, format!("contains needs a text, e.g. contains \"Mk\", but found {}", Self::describe(&v)))),
                }
            }
            Tok::Word(w) if w.eq_ignore_ascii_case("in") => {
                let open = self.next();
                if open.tok != Tok::LParen {
                    return Err(Self::error(&open, "in needs a list in parentheses, e.g. in (\"X200\", \"X300\")".into()));
                }
                let mut values = Vec::new();
                loop {
                    if values.len() == MAX_IN_VALUES {
                        return Err(Self::error(
                            self.peek(),
                            format!("an 'in' list may hold at most {MAX_IN_VALUES} values; split the filter"),
                        ));
                    }
                    values.push(self.value(&open)?);
                    let sep = self.next();
                    match sep.tok {
                        Tok::Comma => continue,
                        Tok::RParen => break,
                        _ => return Err(Self::error(&sep, format!("expected ',' or ')' in the list but found {}", Self::describe(&sep)))),
                    }
                }
                Ok(Expr::In { field, values })
            }
            _ => Err(Self::error(
                &op,
                format!("expected a comparison after '{}' (= != < <= > >= in contains exists) but found {}", field.name, Self::describe(&op)),
            )),
        }
    }

    fn value(&mut self, after: &Token) -> Result<(Literal, usize), FilterError> {
        let v = self.next();
        let lit = match v.tok {
            Tok::Number(n) => Literal::Number(n),
            Tok::Str(s) => Literal::Text(s),
            Tok::Date(d) => Literal::Date(d),
            Tok::DateTime(t) => Literal::DateTime(t),
            Tok::Word(ref w) if !KEYWORDS.iter().any(|k| w.eq_ignore_ascii_case(k)) => {
                Literal::Text(w.clone())
            }
            _ => {
                return Err(Self::error(
                    &v,
                    format!(
                        "expected a value after {} but found {}",
                        Self::describe(after),
                        Self::describe(&v)
                    ),
                ));
            }
        };
        Ok((lit, v.column))
    }
}

/// Parses filter text. Blank text is the filter that matches everything.
pub fn parse(src: &str) -> Result<Expr, FilterError> {
    if src.len() > MAX_LENGTH {
        let column = src
            .char_indices()
            .take_while(|(i, _)| *i < MAX_LENGTH)
            .count();
        return Err(FilterError::new(
            column,
            1,
            format!(
                "the filter is {} bytes long, more than the {MAX_LENGTH} a filter may have; shorten it or split it",
                src.len()
            ),
        ));
    }
    let tokens = tokenize(src)?;
    let mut p = Parser {
        tokens,
        pos: 0,
        depth: 0,
        comparisons: 0,
    };
    if p.peek().tok == Tok::End {
        return Ok(Expr::All);
    }
    let expr = p.or()?;
    let rest = p.next();
    match rest.tok {
        Tok::End => Ok(expr),
        Tok::RParen => Err(Parser::error(
            &rest,
            "this ')' has no matching '('; remove it".into(),
        )),
        _ => Err(Parser::error(
            &rest,
            format!(
                "expected 'and', 'or' or the end of the filter but found {}",
                Parser::describe(&rest)
            ),
        )),
    }
}
