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

/// Text compares as text whichever of VRL's two string representations holds it.
fn matches(row: &ObjectMap, column: &str, want: &Value, case_sensitive: bool) -> bool {
    let Some(have) = row.get(column) else {
        return false;
    };
    match (have.to_str_lossy(), want.to_str_lossy()) {
        (Some(h), Some(w)) if case_sensitive => h == w,
        (Some(h), Some(w)) => h.to_lowercase() == w.to_lowercase(),
        (None, None) => have == want,
        _ => false,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ecs::Mapper;
    use crate::enrich::Tables;

    const CSV: &[u8] =
        b"ip,type,score,reports,country,isp,usage_type,last_reported_at,checked_at\n\
        45.83.64.1,ipv4-addr,88,264,NL,Example,,2026-11-20T08:15:00+00:00,2026-11-21T00:00:00Z\n\
        45.83.64.2,ipv4-addr,3,1,NL,Example,,,2026-11-21T00:00:00Z\n\
        45.83.64.2,ipv4-addr,4,1,NL,Example,,,2026-11-21T00:00:00Z\n";

    fn table() -> FileTable {
        FileTable::parse(Path::new("t.csv"), CSV, REPUTATION_COLUMNS).unwrap()
    }

    #[test]
    fn rows_are_typed_by_the_schema_and_found_like_vector_finds_them() {
        let t = table();
        assert_eq!(t.len(), 3);
        let cond = |ip: &str| vec![("ip".to_string(), Value::from(ip))];
        let row = t.find_row(&cond("45.83.64.1"), true, None).unwrap();
        assert_eq!(row.get("score"), Some(&Value::from(88)));
        assert_eq!(row.get("country"), Some(&Value::from("NL")));
        assert_eq!(
            t.find_row(&cond("8.8.8.8"), true, None).unwrap_err(),
            "no rows found"
        );
        assert_eq!(
            t.find_row(&cond("45.83.64.2"), true, None).unwrap_err(),
            "more than one row found"
        );
        let select = ["score".to_string()];
        let row = t
            .find_row(&cond("45.83.64.1"), true, Some(&select))
            .unwrap();
        assert_eq!(row.len(), 1);
        let upper = vec![
            ("country".to_string(), Value::from("nl")),
            cond("45.83.64.1").remove(0),
        ];
        assert!(t.find_row(&upper, true, None).is_err());
        let found = t.find_row(&upper, false, None);
        assert!(found.is_ok(), "case_sensitive: false: {found:?}");
    }

    #[test]
    fn a_bad_integer_names_line_and_column() {
        let bad = b"ip,score\n1.2.3.4,high\n";
        let err = FileTable::parse(Path::new("t.csv"), bad, REPUTATION_COLUMNS).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("line 2") && msg.contains("score"), "{msg}");
    }

    #[test]
    fn the_vrl_function_follows_vectors_signature_and_errors() {
        let mut tables = Tables::new();
        tables.insert("rep", table());
        let mut m = Mapper::with_tables(
            r#"row, err = get_enrichment_table_record("rep", {"ip": .message}, ["score"])
               .score = row.score
               .err = err"#,
            tables.clone(),
        )
        .unwrap();
        let doc = m.map_line("45.83.64.1").unwrap();
        assert_eq!(doc["score"], 88);
        assert_eq!(doc["err"], serde_json::Value::Null);
        let doc = m.map_line("8.8.8.8").unwrap();
        assert!(
            doc["err"].as_str().unwrap().contains("no rows found"),
            "{doc}"
        );
        // Like Vector, a table that is not loaded is a compile error, not a runtime one.
        let err = Mapper::with_tables(
            r#".x = get_enrichment_table_record("nope", {"ip": "1.1.1.1"}) ?? {}"#,
            tables,
        )
        .err()
        .expect("unknown table");
        assert!(format!("{err}").contains("no enrichment table"), "{err}");
    }
}
