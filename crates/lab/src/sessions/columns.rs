//! The columns of the loaded catalog: text stored once per distinct value, metadata one column
//! per field.

use labpipe_core::filter::Value;
use labpipe_core::{MetaValue, Metadata};
use serde::Serialize;
use std::collections::HashMap;

/// Text of every session, each distinct value once: session `i` has `values[codes[i] - 1]`, or
/// nothing when `codes[i]` is 0.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
#[cfg_attr(
    feature = "ts",
    derive(ts_rs::TS),
    ts(export_to = "../../ui/src/lib/bindings/")
)]
pub struct TextColumn {
    pub values: Vec<String>,
    pub codes: Vec<u32>,
}

impl TextColumn {
    #[cfg(test)]
    pub(super) fn get(&self, row: usize) -> Option<&str> {
        match self.codes[row] {
            0 => None,
            c => Some(&self.values[c as usize - 1]),
        }
    }
}

/// Builds a [`TextColumn`] row by row.
#[derive(Default)]
pub(super) struct TextBuilder {
    pub(super) column: TextColumn,
    seen: HashMap<String, u32>,
}

impl TextBuilder {
    pub(super) fn push(&mut self, value: Option<&str>) {
        let code = match value {
            None => 0,
            Some(v) => match self.seen.get(v) {
                Some(c) => *c,
                None => {
                    self.column.values.push(v.to_string());
                    let c = self.column.values.len() as u32;
                    self.seen.insert(v.to_string(), c);
                    c
                }
            },
        };
        self.column.codes.push(code);
    }
}

/// One metadata field over every session.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(tag = "kind", rename_all = "lowercase")]
#[cfg_attr(
    feature = "ts",
    derive(ts_rs::TS),
    ts(export_to = "../../ui/src/lib/bindings/")
)]
pub enum MetaColumn {
    /// Numbers, `null` where a session has none.
    Number { values: Vec<Option<f64>> },
    /// Text, each distinct value once (as in [`TextColumn`]).
    Text {
        values: Vec<String>,
        codes: Vec<u32>,
    },
    /// Numbers in some sessions and text in others (a field the schema does not declare).
    Mixed {
        #[cfg_attr(feature = "ts", ts(type = "Array<number | string | null>"))]
        values: Vec<Option<MetaValue>>,
    },
}

impl MetaColumn {
    /// The column of `field` over `rows` (each session's metadata).
    pub(super) fn build(field: &str, rows: &[Metadata]) -> Self {
        let values = || rows.iter().map(|m| m.get(field));
        if values().all(|v| matches!(v, None | Some(MetaValue::Number(_)))) {
            MetaColumn::Number {
                values: values().map(|v| v.and_then(MetaValue::as_number)).collect(),
            }
        } else if values().all(|v| matches!(v, None | Some(MetaValue::Text(_)))) {
            let mut b = TextBuilder::default();
            for v in values() {
                b.push(match v {
                    Some(MetaValue::Text(t)) => Some(t),
                    _ => None,
                });
            }
            MetaColumn::Text {
                values: b.column.values,
                codes: b.column.codes,
            }
        } else {
            MetaColumn::Mixed {
                values: values().map(|v| v.cloned()).collect(),
            }
        }
    }

    pub(super) fn get(&self, row: usize) -> Option<Value<'_>> {
        match self {
            MetaColumn::Number { values } => values[row].map(Value::Num),
            MetaColumn::Text { values, codes } => match codes[row] {
                0 => None,
                c => Some(Value::Text(&values[c as usize - 1])),
            },
            MetaColumn::Mixed { values } => values[row].as_ref().map(Value::from),
        }
    }

    pub(super) fn meta_value(&self, row: usize) -> Option<MetaValue> {
        self.get(row).map(|v| match v {
            Value::Num(n) => MetaValue::Number(n),
            Value::Text(t) => MetaValue::Text(t.to_string()),
            Value::Time(t) => MetaValue::Text(t.to_string()),
        })
    }
}
