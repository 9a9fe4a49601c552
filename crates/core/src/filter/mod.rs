//! The filter language: one grammar for `labpipe query`, `labpipe sync --where` and the app's
//! filter bar.
//!
//! ```text
//! fatigue > 3 and hardware_model = "X200" and date >= 2021-03-01 and date < 2021-04-01 and status = processed
//! ```
//!
//! A filter is parsed ([`parse`]), type-checked against the lab schema ([`Filter::check`]) and then
//! run by one of two back ends that must agree: the in-memory [`Filter::matches`] (the app filters
//! thousands of loaded sessions as you type) and [`dynamo::compile`], which turns it into a DynamoDB
//! Query on the month index when the filter bounds the date, or a paginated Scan otherwise, always
//! with expression attribute names and values — user text is never spliced into an expression.
//!
//! Semantics shared by both back ends: a comparison with a missing attribute, or with a value of
//! another type, is false (so `not` of it is true); text comparisons are case-sensitive; `date`
//! compares the recording day, `time` the full recording time.

pub mod dynamo;
mod eval;
mod parse;

pub use eval::{Record, Subject, Value};
pub use parse::{parse, MAX_COMPARISONS, MAX_DEPTH, MAX_IN_VALUES, MAX_LENGTH};

use crate::schema::{FieldKind, LabSchema};
use chrono::{NaiveDate, NaiveDateTime};
use std::fmt;

/// A literal in a filter.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    Number(f64),
    Text(String),
    Date(NaiveDate),
    DateTime(NaiveDateTime),
}

impl Literal {
    fn type_name(&self) -> &'static str {
        match self {
            Literal::Number(_) => "number",
            Literal::Text(_) => "text",
            Literal::Date(_) => "date",
            Literal::DateTime(_) => "date-time",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl CmpOp {
    pub fn symbol(self) -> &'static str {
        match self {
            CmpOp::Eq => "=",
            CmpOp::Ne => "!=",
            CmpOp::Lt => "<",
            CmpOp::Le => "<=",
            CmpOp::Gt => ">",
            CmpOp::Ge => ">=",
        }
    }
}

/// A field reference with where it was written (0-based char column), for error messages.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldRef {
    pub name: String,
    pub column: usize,
}

/// The parsed filter.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
    Cmp {
        field: FieldRef,
        op: CmpOp,
        value: Literal,
        value_column: usize,
    },
    In {
        field: FieldRef,
        values: Vec<(Literal, usize)>,
    },
    Contains {
        field: FieldRef,
        value: String,
        value_column: usize,
    },
    Exists {
        field: FieldRef,
    },
    /// The empty filter: matches everything.
    All,
}

/// A filter error, pointing at a column of the filter text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} (at column {})", column + 1)]
pub struct FilterError {
    /// 0-based character column.
    pub column: usize,
    /// Characters underlined.
    pub width: usize,
    pub message: String,
}

impl FilterError {
    pub(crate) fn new(column: usize, width: usize, message: impl Into<String>) -> Self {
        FilterError {
            column,
            width: width.max(1),
            message: message.into(),
        }
    }

    /// The filter with a caret line under the offending part, then the message:
    /// ```text
    /// fatige > 3
    /// ^^^^^^ unknown field 'fatige' — did you mean 'fatigue'?
    /// ```
    pub fn render(&self, source: &str) -> String {
        format!(
            "{source}\n{}{} {}",
            " ".repeat(self.column),
            "^".repeat(self.width),
            self.message
        )
    }
}

/// Built-in fields every session has, besides its metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Builtin {
    /// The session id (text).
    Session,
    /// Recording day.
    Date,
    /// Recording date-time.
    Time,
    /// Pipeline status (`processed`, `failed`, …).
    Status,
    /// Total bytes of the raw session.
    TotalBytes,
    /// Number of raw files.
    Files,
}

impl Builtin {
    pub const ALL: [(&'static str, Builtin); 7] = [
        ("session", Builtin::Session),
        ("date", Builtin::Date),
        ("time", Builtin::Time),
        ("recorded_at", Builtin::Time),
        ("status", Builtin::Status),
        ("total_bytes", Builtin::TotalBytes),
        ("files", Builtin::Files),
    ];

    fn lookup(name: &str) -> Option<Builtin> {
        Self::ALL.iter().find(|(n, _)| *n == name).map(|(_, b)| *b)
    }
}

/// The pipeline statuses a session can have, in the order a session moves through them.
pub const STATUSES: [&str; 9] = [
    "detected",
    "checked",
    "uploading",
    "uploaded",
    "cataloged",
    "processing",
    "processed",
    "rejected",
    "failed",
];

/// A field's type as far as filtering is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FieldType {
    Number,
    Text,
    Date,
    Status,
}

impl FieldType {
    fn name(self) -> &'static str {
        match self {
            FieldType::Number => "number",
            FieldType::Text => "text",
            FieldType::Date => "date",
            FieldType::Status => "status",
        }
    }
}

/// A parsed filter with its source text.
#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    pub source: String,
    pub expr: Expr,
}

impl Filter {
    /// Parses and type-checks in one go: what every front end wants.
    pub fn new(source: &str, schema: &LabSchema) -> Result<Filter, FilterError> {
        let filter = Filter {
            source: source.to_string(),
            expr: parse(source)?,
        };
        filter.check(schema)?;
        Ok(filter)
    }

    /// Type-checks against the lab schema: unknown fields (with a suggestion), type mismatches
    /// naming both types, operators that make no sense for the field's type, unknown statuses.
    pub fn check(&self, schema: &LabSchema) -> Result<(), FilterError> {
        check_expr(&self.expr, schema)
    }

    /// Field names referenced by the filter.
    pub fn fields(&self) -> Vec<String> {
        let mut out = Vec::new();
        walk_fields(&self.expr, &mut |f| {
            if !out.contains(&f.name) {
                out.push(f.name.clone())
            }
        });
        out
    }
}

impl fmt::Display for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

fn walk_fields(e: &Expr, visit: &mut impl FnMut(&FieldRef)) {
    match e {
        Expr::And(a, b) | Expr::Or(a, b) => {
            walk_fields(a, visit);
            walk_fields(b, visit);
        }
        Expr::Not(a) => walk_fields(a, visit),
        Expr::Cmp { field, .. }
        | Expr::In { field, .. }
        | Expr::Contains { field, .. }
        | Expr::Exists { field } => visit(field),
        Expr::All => {}
    }
}

fn field_type(field: &FieldRef, schema: &LabSchema) -> Result<FieldType, FilterError> {
    if let Some(b) = Builtin::lookup(&field.name) {
        return Ok(match b {
            Builtin::Session => FieldType::Text,
            Builtin::Date | Builtin::Time => FieldType::Date,
            Builtin::Status => FieldType::Status,
            Builtin::TotalBytes | Builtin::Files => FieldType::Number,
        });
    }
    match schema.field(&field.name) {
        Some(spec) => Ok(match spec.kind {
            FieldKind::Number | FieldKind::Integer => FieldType::Number,
            FieldKind::Text => FieldType::Text,
        }),
        None => {
            let candidates = Builtin::ALL
                .iter()
                .map(|(n, _)| *n)
                .chain(schema.field_names());
            let hint = closest(&field.name, candidates)
                .map(|c| format!(" — did you mean '{c}'?"))
                .unwrap_or_else(|| {
                    format!(
                        " — known fields: {}",
                        Builtin::ALL
                            .iter()
                            .map(|(n, _)| *n)
                            .chain(schema.field_names())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                });
            Err(FilterError::new(
                field.column,
                field.name.chars().count(),
                format!("unknown field '{}'{hint}", field.name),
            ))
        }
    }
}

/// The candidate within edit distance 2 (or a third of the length) closest to `word`.
fn closest<'a>(word: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let limit = (word.chars().count() / 3).max(2);
    candidates
        .map(|c| (edit_distance(word, c), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

fn check_literal(
    field: &FieldRef,
    ty: FieldType,
    value: &Literal,
    column: usize,
) -> Result<(), FilterError> {
    let width = match value {
        Literal::Text(s) => s.chars().count() + 2,
        Literal::Number(n) => n.to_string().len(),
        Literal::Date(_) => 10,
        Literal::DateTime(_) => 16,
    };
    let ok = match (ty, value) {
        (FieldType::Number, Literal::Number(_)) | (FieldType::Text, Literal::Text(_)) => true,
        (FieldType::Date, Literal::Date(_) | Literal::DateTime(_)) => true,
        (FieldType::Status, Literal::Text(s)) => {
            if !STATUSES.contains(&s.to_ascii_lowercase().as_str()) {
                return Err(FilterError::new(
                    column,
                    width,
                    format!("'{s}' is not a status; use one of {}", STATUSES.join(", ")),
                ));
            }
            true
        }
        // A bare number where text is expected (`subject_id = 17`) is almost always meant as text.
        (FieldType::Text, Literal::Number(_)) => false,
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(FilterError::new(
            column,
            width,
            format!(
                "'{}' is {} but {} is a {} — compare it with a {} value",
                field.name,
                article(ty.name()),
                literal_text(value),
                value.type_name(),
                ty.name()
            ),
        ))
    }
}

fn article(type_name: &str) -> String {
    format!("a {type_name} field")
}

fn literal_text(v: &Literal) -> String {
    match v {
        Literal::Number(n) => crate::metadata::format_number(*n),
        Literal::Text(s) => format!("\"{s}\""),
        Literal::Date(d) => d.to_string(),
        Literal::DateTime(t) => t.format("%Y-%m-%dT%H:%M:%S").to_string(),
    }
}

fn check_expr(e: &Expr, schema: &LabSchema) -> Result<(), FilterError> {
    match e {
        Expr::All => Ok(()),
        Expr::And(a, b) | Expr::Or(a, b) => {
            check_expr(a, schema)?;
            check_expr(b, schema)
        }
        Expr::Not(a) => check_expr(a, schema),
        Expr::Exists { field } => field_type(field, schema).map(|_| ()),
        Expr::Cmp {
            field,
            op,
            value,
            value_column,
        } => {
            let ty = field_type(field, schema)?;
            check_literal(field, ty, value, *value_column)?;
            if matches!(ty, FieldType::Text | FieldType::Status)
                && !matches!(op, CmpOp::Eq | CmpOp::Ne)
            {
                return Err(FilterError::new(
                    field.column,
                    field.name.chars().count(),
                    format!(
                        "'{}' is a {} field: use = , != , in (…) or contains, not {}",
                        field.name,
                        ty.name(),
                        op.symbol()
                    ),
                ));
            }
            Ok(())
        }
        Expr::In { field, values } => {
            let ty = field_type(field, schema)?;
            if ty == FieldType::Date {
                return Err(FilterError::new(
                    field.column,
                    field.name.chars().count(),
                    format!(
                        "'{}' cannot be used with in (…); use >= and < for a range",
                        field.name
                    ),
                ));
            }
            values
                .iter()
                .try_for_each(|(v, col)| check_literal(field, ty, v, *col))
        }
        Expr::Contains {
            field,
            value_column,
            ..
        } => {
            let ty = field_type(field, schema)?;
            if ty != FieldType::Text {
                return Err(FilterError::new(
                    *value_column,
                    1,
                    format!(
                        "contains works on text fields, but '{}' is a {} field",
                        field.name,
                        ty.name()
                    ),
                ));
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests;
