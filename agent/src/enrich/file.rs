//! A CSV file as Vector's `file` enrichment table: the header names the columns, the schema
//! types some of them (the rest are strings), and a lookup returns the one row where every
//! condition holds.

use std::path::Path;

use vrl::value::{ObjectMap, Value};

use super::{EnrichError, Table, NO_ROWS};
use crate::render::REPUTATION_COLUMNS;

/// Rows of a CSV table, typed by its schema.
#[derive(Debug, Clone, Default)]
pub struct FileTable {
    rows: Vec<ObjectMap>,
}

impl FileTable {
    /// The agent's reputation table, typed as `vector.toml` declares it; a file that does not
    /// exist yet is an empty table.
    pub fn reputation(path: &Path) -> Result<Self, EnrichError> {
        match std::fs::read(path) {
            Ok(bytes) => Self::parse(path, &bytes, REPUTATION_COLUMNS),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(EnrichError::Table {
                path: path.to_path_buf(),
                reason: e.to_string(),
            }),
        }
    }

    /// Parses CSV text with a header row; `schema` gives `(column, type)` with type `string` or
    /// `integer` (the two the reputation table uses).
    pub fn parse(path: &Path, bytes: &[u8], schema: &[(&str, &str)]) -> Result<Self, EnrichError> {
        let fail = |reason: String| EnrichError::Table {
            path: path.to_path_buf(),
            reason,
        };
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(true)
            .from_reader(bytes);
        let header: Vec<String> = reader
            .headers()
            .map_err(|e| fail(e.to_string()))?
            .iter()
            .map(str::to_string)
            .collect();
        let mut rows = Vec::new();
        for (i, record) in reader.records().enumerate() {
            let record = record.map_err(|e| fail(e.to_string()))?;
            let mut row = ObjectMap::new();
            for (column, field) in header.iter().zip(record.iter()) {
                let ty = schema
                    .iter()
                    .find(|(c, _)| c == column)
                    .map_or("string", |(_, t)| *t);
                let value = match ty {
                    "integer" => Value::from(field.parse::<i64>().map_err(|_| {
                        fail(format!(
                            "line {}: column {column} is not an integer: {field:?}",
                            i + 2
                        ))
                    })?),
                    _ => Value::from(field),
                };
                row.insert(column.as_str().into(), value);
            }
            rows.push(row);
        }
        Ok(Self { rows })
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// True when the table has no rows.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }
}

fn matches(row: &ObjectMap, column: &str, want: &Value, case_sensitive: bool) -> bool {
    match (row.get(column), case_sensitive) {
        (Some(have), true) => have == want,
        (Some(Value::Bytes(have)), false) => match want {
            Value::Bytes(w) => have.eq_ignore_ascii_case(w),
            _ => false,
        },
        (Some(have), false) => have == want,
        (None, _) => false,
    }
}

impl Table for FileTable {
    fn find_row(
        &self,
        conditions: &[(String, Value)],
        case_sensitive: bool,
        select: Option<&[String]>,
    ) -> Result<ObjectMap, String> {
        let mut found = self.rows.iter().filter(|row| {
            conditions
                .iter()
                .all(|(c, v)| matches(row, c, v, case_sensitive))
        });
        let row = found.next().ok_or_else(|| NO_ROWS.to_string())?;
        if found.next().is_some() {
            return Err("more than one row found".into());
        }
        let mut row = row.clone();
        if let Some(select) = select {
            row.retain(|k, _| select.iter().any(|s| s.as_str() == k.as_str()));
        }
        Ok(row)
    }
}
