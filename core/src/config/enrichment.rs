//! `enrichment`: GeoIP and threat-intelligence enrichment of shipped events. Off until
//! configured.

use serde::{Deserialize, Serialize};

use super::error::Problem;
use super::validate::{check_abs_path, check_range, webhook_url_problem};

/// Enrichment of shipped events. GeoIP fills `source/destination.geo.*` and `.as.*` for public
/// addresses from MaxMind databases on the sensor (nothing leaves it); threat intelligence
/// checks the public addresses of alerts against AbuseIPDB and joins the results into
/// `threat.enrichments`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Enrichment {
    /// MaxMind GeoLite2-City (or GeoIP2-City) `.mmdb` file. A file that does not exist when the
    /// config is applied is left out (no geo fields), never an error.
    #[serde(default)]
    pub geoip_city_path: Option<String>,
    /// MaxMind GeoLite2-ASN `.mmdb` file; left out the same way when absent.
    #[serde(default)]
    pub geoip_asn_path: Option<String>,
    /// AbuseIPDB lookups of the public addresses of alerts.
    #[serde(default)]
    pub abuseipdb: Option<AbuseIpDb>,
}

/// AbuseIPDB threat intelligence. Only public addresses seen in alerts are sent, each at most
/// once per `cache_ttl_secs`, and never more than `daily_quota` checks per UTC day.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AbuseIpDb {
    /// File whose first line is the AbuseIPDB API key (sent as the `Key` header).
    pub api_key_file: String,
    /// API base URL; the `check` endpoint is `<base_url>/check`.
    #[serde(default = "default_abuseipdb_base_url")]
    pub base_url: String,
    /// Reports older than this many days are ignored by AbuseIPDB (`maxAgeInDays`).
    #[serde(default = "default_abuseipdb_max_age_days")]
    pub max_age_days: u32,
    /// Checks per UTC day (the free tier allows 1000).
    #[serde(default = "default_abuseipdb_daily_quota")]
    pub daily_quota: u32,
    /// Seconds a result is reused before the address is checked again.
    #[serde(default = "default_abuseipdb_cache_ttl_secs")]
    pub cache_ttl_secs: u32,
    /// The reputation table (CSV) Vector joins into shipped alerts.
    #[serde(default = "default_reputation_table_path")]
    pub table_path: String,
    /// Least seconds between two Vector reloads for a changed table.
    #[serde(default = "default_reputation_reload_secs")]
    pub reload_min_interval_secs: u32,
    /// Seconds one request may take.
    #[serde(default = "default_abuseipdb_timeout_secs")]
    pub timeout_secs: u32,
}

/// Default AbuseIPDB API base.
pub fn default_abuseipdb_base_url() -> String {
    "https://api.abuseipdb.com/api/v2".into()
}

/// Default report age considered: 30 days (AbuseIPDB's own default).
pub fn default_abuseipdb_max_age_days() -> u32 {
    30
}

/// Default daily checks: the free tier's 1000.
pub fn default_abuseipdb_daily_quota() -> u32 {
    1000
}

/// Default result lifetime: one day.
pub fn default_abuseipdb_cache_ttl_secs() -> u32 {
    86_400
}

/// Default reputation table, beside the agent's other state.
pub fn default_reputation_table_path() -> String {
    "/var/lib/ids2/reputation.csv".into()
}

/// Default least interval between Vector reloads for the table: one minute.
pub fn default_reputation_reload_secs() -> u32 {
    60
}

/// Default AbuseIPDB request timeout.
pub fn default_abuseipdb_timeout_secs() -> u32 {
    10
}

impl Enrichment {
    /// Checks the database paths and the AbuseIPDB settings.
    pub(super) fn validate(&self, p: &mut Vec<Problem>) {
        let e = self;
        for (key, path) in [
            ("enrichment.geoip_city_path", &e.geoip_city_path),
            ("enrichment.geoip_asn_path", &e.geoip_asn_path),
        ] {
            if let Some(path) = path {
                check_abs_path(key, path, p);
            }
        }
        let Some(a) = &e.abuseipdb else { return };
        check_abs_path("enrichment.abuseipdb.api_key_file", &a.api_key_file, p);
        check_abs_path("enrichment.abuseipdb.table_path", &a.table_path, p);
        if let Err(why) = webhook_url_problem(&a.base_url) {
            p.push(Problem::new(
                "enrichment.abuseipdb.base_url",
                &a.base_url,
                why,
            ));
        }
        // AbuseIPDB accepts maxAgeInDays from 1 to 365.
        check_range(
            p,
            "enrichment.abuseipdb.max_age_days",
            a.max_age_days,
            1..=365,
            "days",
        );
        check_range(
            p,
            "enrichment.abuseipdb.daily_quota",
            a.daily_quota,
            1..=1_000_000,
            "checks",
        );
        check_range(
            p,
            "enrichment.abuseipdb.cache_ttl_secs",
            a.cache_ttl_secs,
            60..=30 * 86_400,
            "seconds",
        );
        check_range(
            p,
            "enrichment.abuseipdb.reload_min_interval_secs",
            a.reload_min_interval_secs,
            1..=3600,
            "seconds",
        );
        check_range(
            p,
            "enrichment.abuseipdb.timeout_secs",
            a.timeout_secs,
            1..=120,
            "seconds",
        );
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{paths, problems_with};

    #[test]
    fn enrichment_is_off_by_default_and_checked_by_key() {
        let s = crate::config::from_str(
            "sensor: {id: lab-1}\nopensearch: {domain: ids2, region: eu-west-1}\n",
            std::path::Path::new("t.yaml"),
        )
        .unwrap();
        assert_eq!(s.config.enrichment, crate::config::Enrichment::default());
        let ok = problems_with(
            "enrichment:\n  geoip_city_path: /var/lib/GeoIP/GeoLite2-City.mmdb\n  \
             abuseipdb: {api_key_file: /run/keys/abuseipdb}\n",
        );
        assert!(ok.is_empty(), "{ok:#?}");
        let p = problems_with(
            "enrichment:\n  geoip_asn_path: GeoLite2-ASN.mmdb\n  abuseipdb:\n    \
             api_key_file: key\n    base_url: http://api.example.org/v2\n    \
             max_age_days: 0\n    daily_quota: 0\n    cache_ttl_secs: 5\n",
        );
        assert_eq!(
            paths(&p),
            [
                "enrichment.geoip_asn_path",
                "enrichment.abuseipdb.api_key_file",
                "enrichment.abuseipdb.base_url",
                "enrichment.abuseipdb.max_age_days",
                "enrichment.abuseipdb.daily_quota",
                "enrichment.abuseipdb.cache_ttl_secs",
            ],
            "{p:#?}"
        );
        let p = problems_with("enrichment: {abuseipdb: {api_key: abc}}\n");
        assert!(!p.is_empty(), "an inline key is refused");
    }
}
