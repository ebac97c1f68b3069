//! A MaxMind database as Vector's `geoip` enrichment table: looked up by `ip`, returning the
//! columns Vector returns for City databases (`city_name`, `continent_code`, `country_code`,
//! `country_name`, `region_code`, `region_name`, `postal_code`, `timezone`, `latitude`,
//! `longitude`, `metro_code`) or ASN/ISP databases (`autonomous_system_number`,
//! `autonomous_system_organization`, `isp`, `organization`), null where the database has no
//! value, in English.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::Path;

use maxminddb::geoip2::{City, Isp};
use maxminddb::Reader;
use vrl::compiler::prelude::NotNan;
use vrl::value::{ObjectMap, Value};

use super::{EnrichError, Table, NO_ROWS};

/// Vector's default locale for names.
const LOCALE: &str = "en";

#[derive(Debug, Clone, Copy)]
enum Kind {
    City,
    Asn,
}

/// One MaxMind database, read whole into memory.
pub struct GeoipTable {
    reader: Reader<Vec<u8>>,
    kind: Kind,
}

impl std::fmt::Debug for GeoipTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "GeoipTable({})", self.reader.metadata.database_type)
    }
}

impl GeoipTable {
    /// Opens a database; like Vector, refuses kinds its `geoip` table does not read.
    pub fn open(path: &Path) -> Result<Self, EnrichError> {
        let reader = Reader::open_readfile(path).map_err(|e| EnrichError::Database {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        Self::from_reader(path, reader)
    }

    /// A database already in memory (`path` names it in errors).
    pub fn from_bytes(path: &Path, bytes: Vec<u8>) -> Result<Self, EnrichError> {
        let reader = Reader::from_source(bytes).map_err(|e| EnrichError::Database {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        Self::from_reader(path, reader)
    }

    fn from_reader(path: &Path, reader: Reader<Vec<u8>>) -> Result<Self, EnrichError> {
        let kind = match reader.metadata.database_type.as_str() {
            "GeoLite2-City" | "GeoIP2-City" => Kind::City,
            "GeoLite2-ASN" | "GeoIP2-ISP" => Kind::Asn,
            other => {
                return Err(EnrichError::UnsupportedDatabase {
                    path: path.to_path_buf(),
                    kind: other.to_string(),
                })
            }
        };
        Ok(Self { reader, kind })
    }

    fn lookup(&self, ip: IpAddr) -> Option<ObjectMap> {
        let mut row = ObjectMap::new();
        let mut put = |key: &str, value: Option<Value>| {
            row.insert(key.into(), value.unwrap_or(Value::Null));
        };
        match self.kind {
            Kind::City => {
                let c: City = self.reader.lookup(ip).ok()??;
                let name = |names: Option<&BTreeMap<&str, &str>>| {
                    names.and_then(|n| n.get(LOCALE)).map(|s| Value::from(*s))
                };
                put(
                    "city_name",
                    name(c.city.as_ref().and_then(|c| c.names.as_ref())),
                );
                put(
                    "continent_code",
                    c.continent.as_ref().and_then(|c| c.code).map(Value::from),
                );
                let country = c.country.as_ref();
                put(
                    "country_code",
                    country.and_then(|c| c.iso_code).map(Value::from),
                );
                put("country_name", name(country.and_then(|c| c.names.as_ref())));
                let loc = c.location.as_ref();
                put("timezone", loc.and_then(|l| l.time_zone).map(Value::from));
                let float = |f: Option<f64>| f.and_then(|f| NotNan::new(f).ok()).map(Value::Float);
                put("latitude", float(loc.and_then(|l| l.latitude)));
                put("longitude", float(loc.and_then(|l| l.longitude)));
                put(
                    "metro_code",
                    loc.and_then(|l| l.metro_code)
                        .map(|m| Value::from(i64::from(m))),
                );
                // The last subdivision is the most specific, as Vector takes it.
                let sub = c.subdivisions.as_ref().and_then(|s| s.last());
                put("region_name", name(sub.and_then(|s| s.names.as_ref())));
                put("region_code", sub.and_then(|s| s.iso_code).map(Value::from));
                put(
                    "postal_code",
                    c.postal.as_ref().and_then(|p| p.code).map(Value::from),
                );
            }
            Kind::Asn => {
                let a: Isp = self.reader.lookup(ip).ok()??;
                put(
                    "autonomous_system_number",
                    a.autonomous_system_number
                        .map(|n| Value::from(i64::from(n))),
                );
                put(
                    "autonomous_system_organization",
                    a.autonomous_system_organization.map(Value::from),
                );
                put("isp", a.isp.map(Value::from));
                put("organization", a.organization.map(Value::from));
            }
        }
        Some(row)
    }
}

impl Table for GeoipTable {
    fn find_row(
        &self,
        conditions: &[(String, Value)],
        _case_sensitive: bool,
        select: Option<&[String]>,
    ) -> Result<ObjectMap, String> {
        let value = match conditions {
            [(_, value)] => value,
            [] => return Err("IP condition must be specified".into()),
            _ => return Err("Only one condition is allowed".into()),
        };
        let ip: IpAddr = value
            .to_string_lossy()
            .parse()
            .map_err(|_| "Invalid IP address".to_string())?;
        let mut row = self.lookup(ip).ok_or_else(|| NO_ROWS.to_string())?;
        if let Some(select) = select {
            row.retain(|k, _| select.iter().any(|s| s.as_str() == k.as_str()));
        }
        Ok(row)
    }
}
