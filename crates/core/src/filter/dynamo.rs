//! The DynamoDB back end: a filter compiled to a Query on the month index or a Scan.
//!
//! The output is plain data (expression strings plus name/value maps) so this crate stays free of
//! the AWS SDK; the catalog crate turns it into requests. Names and values are always placeholders
//! (`#n0`, `:v0`): user text never becomes part of an expression.
//!
//! Catalog layout this compiles against (see `docs/catalog.md`): session items have `sk = "META"`,
//! `session`, `status` (upper case), `recorded_at` (`YYYY-MM-DDTHH:MM:SS`, lab-local, sorts as
//! text), `month` (`YYYY-MM`), `total_bytes`, `file_count`, and metadata as `m_<key>` (numbers as
//! N, texts as S). The `by_month` index has partition key `month` and sort key `recorded_at`.
//!
//! A DynamoDB Query may not filter on the index's own key attributes, so the planner only queries
//! when every date/time condition is a top-level `and` bound it can move into the key condition;
//! anything else is a Scan with the whole filter.

use super::eval::date_as_time_range;
use super::{Builtin, CmpOp, Expr, FieldRef, Filter, Literal};
use chrono::{Datelike, Duration, NaiveDate, NaiveDateTime};
use std::collections::BTreeMap;

/// Attribute values, as DynamoDB types them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttrValue {
    S(String),
    N(String),
}

/// How to run the compiled filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// One Query per month on `index`, with `key_condition`, substituting `:month` each time.
    Query {
        index: &'static str,
        months: Vec<String>,
        key_condition: String,
    },
    /// A paginated Scan of the table.
    Scan,
}

/// A compiled filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compiled {
    pub plan: Plan,
    pub filter: Option<String>,
    pub names: BTreeMap<String, String>,
    pub values: BTreeMap<String, AttrValue>,
}

/// The month index's name and the placeholder the executor fills per month.
pub const MONTH_INDEX: &str = "by_month";
pub const MONTH_PLACEHOLDER: &str = ":month";
/// Query plans span at most this many months; wider ranges scan (cheaper at this table's size).
pub const MAX_QUERY_MONTHS: usize = 36;
const TIME_FORMAT: &str = "%Y-%m-%dT%H:%M:%S";

/// The catalog attribute behind a filter field.
pub fn attribute_name(field: &str) -> String {
    match Builtin::lookup(field) {
        Some(Builtin::Session) => "session".into(),
        Some(Builtin::Date | Builtin::Time) => "recorded_at".into(),
        Some(Builtin::Status) => "status".into(),
        Some(Builtin::TotalBytes) => "total_bytes".into(),
        Some(Builtin::Files) => "file_count".into(),
        None => format!("m_{field}"),
    }
}

/// How the catalog stores a status name.
pub fn status_attribute_value(status: &str) -> String {
    status.to_ascii_uppercase()
}

fn format_time(t: NaiveDateTime) -> String {
    t.format(TIME_FORMAT).to_string()
}

fn format_number(n: f64) -> String {
    crate::metadata::format_number(n)
}

struct Builder {
    names: BTreeMap<String, String>,
    values: BTreeMap<String, AttrValue>,
}

impl Builder {
    fn name(&mut self, attribute: &str) -> String {
        if let Some((k, _)) = self.names.iter().find(|(_, v)| v.as_str() == attribute) {
            return k.clone();
        }
        let key = format!("#n{}", self.names.len());
        self.names.insert(key.clone(), attribute.to_string());
        key
    }

    fn value(&mut self, v: AttrValue) -> String {
        let key = format!(":v{}", self.values.len());
        self.values.insert(key.clone(), v);
        key
    }

    fn literal(&mut self, field: &FieldRef, lit: &Literal) -> String {
        let v = match lit {
            Literal::Number(n) => AttrValue::N(format_number(*n)),
            Literal::Text(s) if field.name == "status" => AttrValue::S(status_attribute_value(s)),
            Literal::Text(s) => AttrValue::S(s.clone()),
            Literal::Date(d) => {
                AttrValue::S(format_time(d.and_hms_opt(0, 0, 0).expect("midnight")))
            }
            Literal::DateTime(t) => AttrValue::S(format_time(*t)),
        };
        self.value(v)
    }

    fn type_tag(&mut self, lit: &Literal) -> String {
        let tag = if matches!(lit, Literal::Number(_)) {
            "N"
        } else {
            "S"
        };
        self.value(AttrValue::S(tag.into()))
    }

    fn expr(&mut self, e: &Expr) -> String {
        match e {
            Expr::All => String::new(),
            Expr::And(a, b) => format!("({} AND {})", self.expr(a), self.expr(b)),
            Expr::Or(a, b) => format!("({} OR {})", self.expr(a), self.expr(b)),
            Expr::Not(a) => format!("(NOT {})", self.expr(a)),
            Expr::Exists { field } => format!(
                "attribute_exists({})",
                self.name(&attribute_name(&field.name))
            ),
            Expr::Contains { field, value, .. } => {
                let n = self.name(&attribute_name(&field.name));
                let v = self.value(AttrValue::S(value.clone()));
                format!("contains({n}, {v})")
            }
            Expr::In { field, values } => {
                let n = self.name(&attribute_name(&field.name));
                let vs: Vec<String> = values
                    .iter()
                    .map(|(lit, _)| self.literal(field, lit))
                    .collect();
                format!("{n} IN ({})", vs.join(", "))
            }
            Expr::Cmp {
                field, op, value, ..
            } => self.comparison(field, *op, value),
        }
    }

    fn comparison(&mut self, field: &FieldRef, op: CmpOp, value: &Literal) -> String {
        let n = self.name(&attribute_name(&field.name));
        if let (Some(Builtin::Date), Literal::Date(day)) = (Builtin::lookup(&field.name), value) {
            if op == CmpOp::Ne {
                let inner = self.comparison(field, CmpOp::Eq, value);
                return format!("(NOT {inner})");
            }
            let parts: Vec<String> = date_as_time_range(op, *day)
                .into_iter()
                .map(|(o, t)| {
                    let v = self.value(AttrValue::S(format_time(t)));
                    format!("{n} {} {v}", dynamo_op(o))
                })
                .collect();
            return format!("({})", parts.join(" AND "));
        }
        let v = self.literal(field, value);
        if op == CmpOp::Ne {
            // Missing attributes and other types compare false, as in the in-memory evaluator.
            let t = self.type_tag(value);
            return format!("(attribute_type({n}, {t}) AND {n} <> {v})");
        }
        format!("{n} {} {v}", dynamo_op(op))
    }
}

fn dynamo_op(op: CmpOp) -> &'static str {
    match op {
        CmpOp::Eq => "=",
        CmpOp::Ne => "<>",
        CmpOp::Lt => "<",
        CmpOp::Le => "<=",
        CmpOp::Gt => ">",
        CmpOp::Ge => ">=",
    }
}

fn conjuncts(e: &Expr) -> Vec<&Expr> {
    match e {
        Expr::And(a, b) => {
            let mut v = conjuncts(a);
            v.extend(conjuncts(b));
            v
        }
        Expr::All => vec![],
        other => vec![other],
    }
}

fn is_time_field(f: &FieldRef) -> bool {
    matches!(
        Builtin::lookup(&f.name),
        Some(Builtin::Date | Builtin::Time)
    )
}

fn mentions_time(e: &Expr) -> bool {
    let mut found = false;
    super::walk_fields(e, &mut |f| found |= is_time_field(f));
    found
}

/// Inclusive `[lo, hi]` recording-time bounds implied by one conjunct, or `None` when it is not a
/// simple bound.
fn bound(e: &Expr) -> Option<(Option<NaiveDateTime>, Option<NaiveDateTime>)> {
    let Expr::Cmp {
        field, op, value, ..
    } = e
    else {
        return None;
    };
    if !is_time_field(field) {
        return None;
    }
    let second = Duration::seconds(1);
    let constraints: Vec<(CmpOp, NaiveDateTime)> = match (Builtin::lookup(&field.name), value) {
        (Some(Builtin::Date), Literal::Date(d)) if *op != CmpOp::Ne => date_as_time_range(*op, *d),
        (_, Literal::DateTime(t)) if *op != CmpOp::Ne => vec![(*op, *t)],
        (_, Literal::Date(d)) if *op != CmpOp::Ne => vec![(*op, d.and_hms_opt(0, 0, 0)?)],
        _ => return None,
    };
    let (mut lo, mut hi) = (None, None);
    for (o, t) in constraints {
        match o {
            CmpOp::Ge => lo = Some(t),
            CmpOp::Gt => lo = Some(t + second),
            CmpOp::Le => hi = Some(t),
            CmpOp::Lt => hi = Some(t - second),
            CmpOp::Eq => {
                lo = Some(t);
                hi = Some(t);
            }
            CmpOp::Ne => return None,
        }
    }
    Some((lo, hi))
}

fn months_between(lo: NaiveDateTime, hi: NaiveDateTime) -> Vec<String> {
    let mut out = Vec::new();
    let mut y = lo.year();
    let mut m = lo.month();
    while (y, m) <= (hi.year(), hi.month()) {
        out.push(format!("{y:04}-{m:02}"));
        if out.len() > MAX_QUERY_MONTHS {
            break;
        }
        (y, m) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
    }
    out
}

/// Compiles a type-checked filter.
pub fn compile(filter: &Filter) -> Compiled {
    let mut b = Builder {
        names: BTreeMap::new(),
        values: BTreeMap::new(),
    };
    let parts = conjuncts(&filter.expr);
    let (bounds, rest): (Vec<&Expr>, Vec<&Expr>) = parts.iter().partition(|e| bound(e).is_some());
    let query_range = if !bounds.is_empty() && !rest.iter().any(|e| mentions_time(e)) {
        let (mut lo, mut hi) = (
            NaiveDate::MIN.and_hms_opt(0, 0, 0),
            NaiveDate::MAX.and_hms_opt(23, 59, 59),
        );
        for e in &bounds {
            let (l, h) = bound(e).expect("partitioned on bound");
            if let Some(l) = l {
                lo = lo.max(Some(l));
            }
            if let Some(h) = h {
                hi = hi.min(Some(h));
            }
        }
        match (lo, hi) {
            (Some(lo), Some(hi)) if lo.year() > 1 && hi.year() < 9999 => {
                let months = if lo > hi {
                    vec![]
                } else {
                    months_between(lo, hi)
                };
                (months.len() <= MAX_QUERY_MONTHS).then_some((lo, hi, months))
            }
            _ => None,
        }
    } else {
        None
    };

    match query_range {
        Some((lo, hi, months)) => {
            let month = b.name("month");
            let rec = b.name("recorded_at");
            let lo_v = b.value(AttrValue::S(format_time(lo)));
            let hi_v = b.value(AttrValue::S(format_time(hi)));
            let key_condition =
                format!("{month} = {MONTH_PLACEHOLDER} AND {rec} BETWEEN {lo_v} AND {hi_v}");
            let filter_parts: Vec<String> = rest.iter().map(|e| b.expr(e)).collect();
            Compiled {
                plan: Plan::Query {
                    index: MONTH_INDEX,
                    months,
                    key_condition,
                },
                filter: (!filter_parts.is_empty()).then(|| filter_parts.join(" AND ")),
                names: b.names,
                values: b.values,
            }
        }
        None => {
            let sk = b.name("sk");
            let meta = b.value(AttrValue::S("META".into()));
            let body = b.expr(&filter.expr);
            let filter_text = if body.is_empty() {
                format!("{sk} = {meta}")
            } else {
                format!("{sk} = {meta} AND {body}")
            };
            Compiled {
                plan: Plan::Scan,
                filter: Some(filter_text),
                names: b.names,
                values: b.values,
            }
        }
    }
}
