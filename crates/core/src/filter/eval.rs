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
enum Val<'a> {
    Num(f64),
    Text(&'a str),
    Time(NaiveDateTime),
}

impl Subject {
    fn value(&self, field: &FieldRef) -> Option<Val<'_>> {
        match Builtin::lookup(&field.name) {
            Some(Builtin::Session) => Some(Val::Text(&self.session)),
            Some(Builtin::Date | Builtin::Time) => Some(Val::Time(self.recorded_at)),
            Some(Builtin::Status) => Some(Val::Text(&self.status)),
            Some(Builtin::TotalBytes) => Some(Val::Num(self.total_bytes as f64)),
            Some(Builtin::Files) => Some(Val::Num(self.files as f64)),
            None => self.metadata.get(&field.name).map(|v| match v {
                MetaValue::Number(n) => Val::Num(*n),
                MetaValue::Text(s) => Val::Text(s),
            }),
        }
    }
}

impl super::Filter {
    /// True when the session matches.
    pub fn matches(&self, subject: &Subject) -> bool {
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

fn cmp_value(v: &Val<'_>, field: &FieldRef, op: CmpOp, lit: &Literal) -> bool {
    match (v, lit) {
        (Val::Num(a), Literal::Number(b)) => a.partial_cmp(b).is_some_and(|o| compare(op, o)),
        (Val::Text(a), Literal::Text(b)) => {
            if field.name == "status" {
                compare(op, a.to_ascii_lowercase().cmp(&b.to_ascii_lowercase()))
            } else {
                compare(op, (*a).cmp(b.as_str()))
            }
        }
        (Val::Time(t), Literal::DateTime(b)) => compare(op, t.cmp(b)),
        (Val::Time(t), Literal::Date(d)) if field.name == "date" => {
            if op == CmpOp::Ne {
                return !cmp_value(v, field, CmpOp::Eq, lit);
            }
            date_as_time_range(op, *d)
                .iter()
                .all(|(o, bound)| compare(*o, t.cmp(bound)))
        }
        (Val::Time(t), Literal::Date(d)) => compare(op, t.cmp(&midnight(*d))),
        _ => false,
    }
}

fn eval(e: &Expr, s: &Subject) -> bool {
    match e {
        Expr::All => true,
        Expr::And(a, b) => eval(a, s) && eval(b, s),
        Expr::Or(a, b) => eval(a, s) || eval(b, s),
        Expr::Not(a) => !eval(a, s),
        Expr::Exists { field } => s.value(field).is_some(),
        Expr::Cmp {
            field, op, value, ..
        } => s
            .value(field)
            .is_some_and(|v| cmp_value(&v, field, *op, value)),
        Expr::In { field, values } => s.value(field).is_some_and(|v| {
            values
                .iter()
                .any(|(lit, _)| cmp_value(&v, field, CmpOp::Eq, lit))
        }),
        Expr::Contains { field, value, .. } => {
            matches!(s.value(field), Some(Val::Text(t)) if t.contains(value.as_str()))
        }
    }
}
