//! The in-memory back end: evaluates a filter against one session.

use super::{Builtin, CmpOp, Expr, FieldRef, Literal};
use crate::metadata::{MetaValue, Metadata};
use chrono::{NaiveDate, NaiveDateTime, NaiveTime};
use std::cmp::Ordering;

/// What a filter can look at in a session: the built-in fields and its metadata.
#[derive(Debug, Clone, PartialEq)]
pub struct Subject {
    pub session: String,
    pub recorded_at: NaiveDateTime,
    /// Lowercase status name (`processed`, …).
    pub status: String,
    pub total_bytes: u64,
    pub files: u64,
    pub metadata: Metadata,
}

/// A value as the evaluator compares it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value<'a> {
    Num(f64),
    Text(&'a str),
    Time(NaiveDateTime),
}

impl<'a> From<&'a MetaValue> for Value<'a> {
    fn from(v: &'a MetaValue) -> Self {
        match v {
            MetaValue::Number(n) => Value::Num(*n),
            MetaValue::Text(s) => Value::Text(s),
        }
    }
}

/// What the evaluator reads of a session. [`Subject`] owns its fields; a store that keeps many
/// sessions column by column (the app's loaded catalog) implements it for a row view instead,
/// so filtering needs no per-session copy.
pub trait Record {
    fn session(&self) -> &str;
    fn recorded_at(&self) -> NaiveDateTime;
    /// Lowercase status name (`processed`, …).
    fn status(&self) -> &str;
    fn total_bytes(&self) -> u64;
    fn files(&self) -> u64;
    /// A metadata field's value, if the session has it.
    fn meta(&self, name: &str) -> Option<Value<'_>>;
}

impl Record for Subject {
    fn session(&self) -> &str {
        &self.session
    }
    fn recorded_at(&self) -> NaiveDateTime {
        self.recorded_at
    }
    fn status(&self) -> &str {
        &self.status
    }
    fn total_bytes(&self) -> u64 {
        self.total_bytes
    }
    fn files(&self) -> u64 {
        self.files
    }
    fn meta(&self, name: &str) -> Option<Value<'_>> {
        self.metadata.get(name).map(Value::from)
    }
}

impl<R: Record + ?Sized> Record for &R {
    fn session(&self) -> &str {
        (**self).session()
    }
    fn recorded_at(&self) -> NaiveDateTime {
        (**self).recorded_at()
    }
    fn status(&self) -> &str {
        (**self).status()
    }
    fn total_bytes(&self) -> u64 {
        (**self).total_bytes()
    }
    fn files(&self) -> u64 {
        (**self).files()
    }
    fn meta(&self, name: &str) -> Option<Value<'_>> {
        (**self).meta(name)
    }
}

fn field_value<'s>(s: &'s dyn Record, field: &FieldRef) -> Option<Value<'s>> {
    match Builtin::lookup(&field.name) {
        Some(Builtin::Session) => Some(Value::Text(s.session())),
        Some(Builtin::Date | Builtin::Time) => Some(Value::Time(s.recorded_at())),
        Some(Builtin::Status) => Some(Value::Text(s.status())),
        Some(Builtin::TotalBytes) => Some(Value::Num(s.total_bytes() as f64)),
        Some(Builtin::Files) => Some(Value::Num(s.files() as f64)),
        None => s.meta(&field.name),
    }
}

impl super::Filter {
    /// True when the session matches.
    ///
    /// The evaluator itself is not generic (it reads the session through `dyn Record`), so it is
    /// compiled once, here, with this crate's optimisation level, whatever the caller's.
    pub fn matches<S: Record>(&self, subject: &S) -> bool {
        eval(&self.expr, subject)
    }
}

fn midnight(d: NaiveDate) -> NaiveDateTime {
    d.and_time(NaiveTime::MIN)
}

/// `date OP day` as a comparison of the recording time with the day's bounds.
pub(crate) fn date_as_time_range(op: CmpOp, day: NaiveDate) -> Vec<(CmpOp, NaiveDateTime)> {
    let start = midnight(day);
    let next = midnight(day.succ_opt().unwrap_or(day));
    match op {
        CmpOp::Eq => vec![(CmpOp::Ge, start), (CmpOp::Lt, next)],
        CmpOp::Ne => vec![], // handled by negating Eq
        CmpOp::Lt => vec![(CmpOp::Lt, start)],
        CmpOp::Le => vec![(CmpOp::Lt, next)],
        CmpOp::Gt => vec![(CmpOp::Ge, next)],
        CmpOp::Ge => vec![(CmpOp::Ge, start)],
    }
}

fn compare(op: CmpOp, ord: Ordering) -> bool {
    match op {
        CmpOp::Eq => ord == Ordering::Equal,
        CmpOp::Ne => ord != Ordering::Equal,
        CmpOp::Lt => ord == Ordering::Less,
        CmpOp::Le => ord != Ordering::Greater,
        CmpOp::Gt => ord == Ordering::Greater,
        CmpOp::Ge => ord != Ordering::Less,
    }
}

fn cmp_value(v: &Value<'_>, field: &FieldRef, op: CmpOp, lit: &Literal) -> bool {
    match (v, lit) {
        (Value::Num(a), Literal::Number(b)) => a.partial_cmp(b).is_some_and(|o| compare(op, o)),
        (Value::Text(a), Literal::Text(b)) => {
            if field.name == "status" {
                // Case-insensitive, without a lowercase copy of both sides for every session.
                if op == CmpOp::Eq || op == CmpOp::Ne {
                    return a.eq_ignore_ascii_case(b) == (op == CmpOp::Eq);
                }
                compare(
                    op,
                    a.bytes()
                        .map(|c| c.to_ascii_lowercase())
                        .cmp(b.bytes().map(|c| c.to_ascii_lowercase())),
                )
            } else {
                compare(op, (*a).cmp(b.as_str()))
            }
        }
        (Value::Time(t), Literal::DateTime(b)) => compare(op, t.cmp(b)),
        (Value::Time(t), Literal::Date(d)) if field.name == "date" => {
            if op == CmpOp::Ne {
                return !cmp_value(v, field, CmpOp::Eq, lit);
            }
            // What `date_as_time_range` says, without a Vec for every session.
            let start = midnight(*d);
            let next = midnight(d.succ_opt().unwrap_or(*d));
            match op {
                CmpOp::Eq => *t >= start && *t < next,
                CmpOp::Lt => *t < start,
                CmpOp::Le => *t < next,
                CmpOp::Gt => *t >= next,
                CmpOp::Ge => *t >= start,
                CmpOp::Ne => unreachable!("handled above"),
            }
        }
        (Value::Time(t), Literal::Date(d)) => compare(op, t.cmp(&midnight(*d))),
        _ => false,
    }
}

fn eval(e: &Expr, s: &dyn Record) -> bool {
    match e {
        Expr::All => true,
        Expr::And(a, b) => eval(a, s) && eval(b, s),
        Expr::Or(a, b) => eval(a, s) || eval(b, s),
        Expr::Not(a) => !eval(a, s),
        Expr::Exists { field } => field_value(s, field).is_some(),
        Expr::Cmp {
            field, op, value, ..
        } => field_value(s, field).is_some_and(|v| cmp_value(&v, field, *op, value)),
        Expr::In { field, values } => field_value(s, field).is_some_and(|v| {
            values
                .iter()
                .any(|(lit, _)| cmp_value(&v, field, CmpOp::Eq, lit))
        }),
        Expr::Contains { field, value, .. } => {
            matches!(field_value(s, field), Some(Value::Text(t)) if t.contains(value.as_str()))
        }
    }
}
