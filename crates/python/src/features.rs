//! Reads a session's `features.parquet` (one row per channel, written by the backend's
//! `FeatureTable` step, `backend/src/preprocess/features.rs`) into columns for a DataFrame.
//!
//! Read here, with the same `parquet` crate that writes the file, so `labpipe.load` needs no
//! pyarrow: the researcher's install is this wheel, numpy and pandas. The file's key-value
//! metadata (`labpipe.session`, `labpipe.pipeline_version`) comes along for `DataFrame.attrs`.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::Path;

use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::record::Field;
use serde::Serialize;
use serde_json::Value;

use crate::error::Error;

/// A table as columns in file order, plus the file's key-value metadata.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Table {
    /// `(name, values)` in the file's column order.
    pub columns: Vec<(String, Vec<Value>)>,
    pub metadata: BTreeMap<String, String>,
}

fn value(field: &Field) -> Result<Value, String> {
    Ok(match field {
        Field::Null => Value::Null,
        Field::Bool(b) => Value::Bool(*b),
        Field::Byte(v) => (*v).into(),
        Field::Short(v) => (*v).into(),
        Field::Int(v) => (*v).into(),
        Field::Long(v) => (*v).into(),
        Field::UByte(v) => (*v).into(),
        Field::UShort(v) => (*v).into(),
        Field::UInt(v) => (*v).into(),
        Field::ULong(v) => (*v).into(),
        Field::Float(v) => f64::from(*v).into(),
        Field::Double(v) => (*v).into(),
        Field::Str(s) => Value::String(s.clone()),
        other => return Err(format!("a value of an unsupported type ({other:?})")),
    })
}

/// Reads every row of `path`.
pub fn read(path: &Path) -> Result<Table, Error> {
    let bad = |what: String| {
        Error::Data(format!(
            "{}: {what}; sync the session again (labpipe.sync re-fetches a file that differs from the catalog) or ask the operator to re-run preprocessing",
            path.display()
        ))
    };
    let file = File::open(path).map_err(|e| bad(format!("cannot be opened ({e})")))?;
    let reader = SerializedFileReader::new(file)
        .map_err(|e| bad(format!("is not a readable Parquet file ({e})")))?;
    let meta = reader.metadata().file_metadata();
    let metadata = meta
        .key_value_metadata()
        .map(|kvs| {
            kvs.iter()
                .map(|kv| (kv.key.clone(), kv.value.clone().unwrap_or_default()))
                .collect()
        })
        .unwrap_or_default();
    let mut columns: Vec<(String, Vec<Value>)> = meta
        .schema_descr()
        .columns()
        .iter()
        .map(|c| (c.name().to_string(), Vec::new()))
        .collect();
    for row in reader {
        let row = row.map_err(|e| bad(format!("a row cannot be read ({e})")))?;
        for (i, (name, field)) in row.get_column_iter().enumerate() {
            let Some((expected, values)) = columns.get_mut(i) else {
                return Err(bad(format!(
                    "a row has more columns than the schema ({name})"
                )));
            };
            if expected != name {
                return Err(bad(format!(
                    "column {i} is '{name}' in a row but '{expected}' in the schema"
                )));
            }
            values.push(value(field).map_err(|e| bad(format!("column '{name}' holds {e}")))?);
        }
    }
    Ok(Table { columns, metadata })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    use parquet::data_type::{BoolType, DoubleType, Int32Type};
    use parquet::file::metadata::KeyValue;
    use parquet::file::properties::WriterProperties;
    use parquet::file::writer::SerializedFileWriter;
    use parquet::schema::parser::parse_message_type;

    /// Written the way the backend writes `features.parquet`: the low-level column writer.
    #[test]
    fn reads_columns_in_order_with_the_file_metadata() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("features.parquet");
        let schema = Arc::new(
            parse_message_type(
                "message f { REQUIRED INT32 channel; REQUIRED DOUBLE mean; REQUIRED BOOLEAN flat; }",
            )
            .unwrap(),
        );
        let props = Arc::new(
            WriterProperties::builder()
                .set_key_value_metadata(Some(vec![KeyValue::new(
                    "labpipe.session".to_string(),
                    "20210301_090000".to_string(),
                )]))
                .build(),
        );
        let mut writer =
            SerializedFileWriter::new(File::create(&path).unwrap(), schema, props).unwrap();
        let mut group = writer.next_row_group().unwrap();
        let mut n = 0;
        while let Some(mut col) = group.next_column().unwrap() {
            match n {
                0 => {
                    col.typed::<Int32Type>()
                        .write_batch(&[0, 1, 2], None, None)
                        .unwrap();
                }
                1 => {
                    col.typed::<DoubleType>()
                        .write_batch(&[0.5, -1.25, 3.0], None, None)
                        .unwrap();
                }
                _ => {
                    col.typed::<BoolType>()
                        .write_batch(&[false, true, false], None, None)
                        .unwrap();
                }
            }
            col.close().unwrap();
            n += 1;
        }
        group.close().unwrap();
        writer.close().unwrap();

        let table = read(&path).unwrap();
        let names: Vec<&str> = table.columns.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["channel", "mean", "flat"]);
        assert_eq!(table.columns[0].1, [0, 1, 2].map(Value::from));
        assert_eq!(table.columns[1].1, [0.5, -1.25, 3.0].map(Value::from));
        assert_eq!(table.columns[2].1, [false, true, false].map(Value::from));
        assert_eq!(table.metadata["labpipe.session"], "20210301_090000");
    }

    #[test]
    fn a_file_that_is_not_parquet_is_named_with_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("features.parquet");
        std::fs::write(&path, b"not parquet").unwrap();
        let err = read(&path).unwrap_err().to_string();
        assert!(err.contains("features.parquet"), "{err}");
        assert!(err.contains("sync the session again"), "{err}");
    }
}
