//! Enrichment tables for the ECS program when it runs outside Vector. Vector joins its
//! enrichment tables (MaxMind `geoip`, CSV `file`) with the VRL function
//! `get_enrichment_table_record`, which lives in Vector, not in the `vrl` crate. This module is
//! our implementation of that function ([`GetEnrichmentTableRecord`]) over our own table
//! registry ([`Tables`]), following Vector's documented semantics: equality conditions, an
//! error when no row or more than one row matches, rows shaped as Vector's tables shape them.
//! The [`crate::ecs::Mapper`] uses it so the program it runs is the one `vector.toml` embeds.

mod file;
mod function;
mod geoip;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use vrl::value::{ObjectMap, Value};

pub use file::FileTable;
pub use function::GetEnrichmentTableRecord;
pub use geoip::GeoipTable;

use crate::config::Settings;
use crate::render::{EnrichVars, GEOIP_ASN_TABLE, GEOIP_CITY_TABLE, REPUTATION_TABLE};

/// Why an enrichment table could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum EnrichError {
    /// The file is not a readable MaxMind database.
    #[error("cannot read MaxMind database {path}: {reason} (check enrichment.geoip_*_path)")]
    Database {
        /// The database file.
        path: PathBuf,
        /// What the reader reported.
        reason: String,
    },
    /// A MaxMind database of a kind Vector's `geoip` table does not read.
    #[error(
        "{path} is a {kind} database; Vector's geoip table reads GeoLite2-City, GeoIP2-City, \
         GeoLite2-ASN and GeoIP2-ISP only"
    )]
    UnsupportedDatabase {
        /// The database file.
        path: PathBuf,
        /// Its `database_type` metadata.
        kind: String,
    },
    /// The CSV table could not be read or parsed.
    #[error("cannot read enrichment table {path}: {reason}")]
    Table {
        /// The CSV file.
        path: PathBuf,
        /// What went wrong, with the line when known.
        reason: String,
    },
}

/// One table: finds the single row matching all equality conditions, as Vector's
/// `Table::find_table_row` does.
pub trait Table: Send + Sync + std::fmt::Debug {
    /// The row where every `(column, value)` condition holds; `Err` with Vector's wording when
    /// none or more than one does. `select` limits the columns returned.
    fn find_row(
        &self,
        conditions: &[(String, Value)],
        case_sensitive: bool,
        select: Option<&[String]>,
    ) -> Result<ObjectMap, String>;
}

/// The tables the ECS program may name, by name.
#[derive(Debug, Clone, Default)]
pub struct Tables {
    tables: BTreeMap<String, Arc<dyn Table>>,
}

impl Tables {
    /// No tables (a program that names one does not compile against this).
    pub fn new() -> Self {
        Self::default()
    }

    /// The tables the rendered `vector.toml` declares for these settings, loaded the way
    /// Vector loads them at start. A reputation table file that does not exist yet is empty.
    pub fn from_settings(settings: &Settings) -> Result<Self, EnrichError> {
        let vars = EnrichVars::from_settings(settings);
        let mut tables = Self::new();
        if let Some(path) = &vars.city_path {
            tables.insert(GEOIP_CITY_TABLE, GeoipTable::open(Path::new(path))?);
        }
        if let Some(path) = &vars.asn_path {
            tables.insert(GEOIP_ASN_TABLE, GeoipTable::open(Path::new(path))?);
        }
        if let Some(path) = &vars.reputation_path {
            tables.insert(REPUTATION_TABLE, FileTable::reputation(Path::new(path))?);
        }
        Ok(tables)
    }

    /// Adds or replaces a table.
    pub fn insert(&mut self, name: &str, table: impl Table + 'static) {
        self.tables.insert(name.to_string(), Arc::new(table));
    }

    /// The table of that name.
    pub fn get(&self, name: &str) -> Option<&Arc<dyn Table>> {
        self.tables.get(name)
    }

    /// The table names, sorted.
    pub fn names(&self) -> Vec<&str> {
        self.tables.keys().map(String::as_str).collect()
    }
}

/// The error Vector's tables give when no row matches.
const NO_ROWS: &str = "no rows found";
