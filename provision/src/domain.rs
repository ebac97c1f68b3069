//! The AWS OpenSearch domain: ensure (describe, create only when absent), status, delete.
//!
//! CreateDomain is never sent for a name that DescribeDomain finds: the service may treat a
//! repeated create as an update, and an operator re-running `ensure` must never risk the
//! domain that holds the fleet's events. An existing domain is reported as it is; settings
//! that fall short of the secure defaults are listed as warnings, not changed.

use std::error::Error as StdError;
use std::time::{Duration, Instant};

use aws_sdk_opensearch::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_opensearch::types::{
    ClusterConfig, ConfigChangeStatus, DomainEndpointOptions, DomainProcessingStatusType,
    DomainStatus, EbsOptions, EncryptionAtRestOptions, NodeToNodeEncryptionOptions,
    OpenSearchPartitionInstanceType, TlsSecurityPolicy, VolumeType, ZoneAwarenessConfig,
};
use aws_sdk_opensearch::Client;

use crate::aws::{self, AwsError, AwsTarget};

/// The TLS policy new domains get: TLS 1.2 or newer.
pub const TLS_POLICY: &str = "Policy-Min-TLS-1-2-2019-07";

/// TLS policies that keep TLS 1.0/1.1 out; anything else on an existing domain is warned about.
const TLS_12_POLICIES: &[&str] = &[
    "Policy-Min-TLS-1-2-2019-07",
    "Policy-Min-TLS-1-2-PFS-2023-10",
    "Policy-Min-TLS-1-2-RFC9151-FIPS-2024-08",
    "Policy-Min-TLS-1-2-FIPS-PQ-2026-10",
];

/// What `domain ensure` creates when the domain is absent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainSpec {
    /// Domain name.
    pub name: String,
    /// Engine, e.g. `OpenSearch_2.19`.
    pub engine_version: String,
    /// Data node type, e.g. `t3.small.search`.
    pub instance_type: String,
    /// Data node count.
    pub instance_count: u32,
    /// EBS volume per node, in GiB.
    pub volume_gb: u32,
    /// IAM principals (users/roles) allowed to use the domain's HTTP API.
    pub principals: Vec<String>,
}

/// How long and how often `ensure` waits for a processing domain.
#[derive(Debug, Clone, Copy)]
pub struct Wait {
    /// Give up after this long.
    pub timeout: Duration,
    /// Time between DescribeDomain polls.
    pub poll: Duration,
}

/// Where a domain is in its life.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DomainState {
    /// Ready; the endpoint answers.
    Active,
    /// Being created or changed (the service's own words, e.g. `Creating`).
    Processing(String),
    /// Being deleted.
    Deleting,
    /// In a state it will not leave on its own.
    Failed(String),
}

impl std::fmt::Display for DomainState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DomainState::Active => f.write_str("active"),
            DomainState::Processing(s) => write!(f, "processing ({s})"),
            DomainState::Deleting => f.write_str("deleting"),
            DomainState::Failed(s) => write!(f, "failed ({s})"),
        }
    }
}

/// A domain as DescribeDomain reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainInfo {
    /// Domain name.
    pub name: String,
    /// Domain ARN.
    pub arn: String,
    /// Life-cycle state.
    pub state: DomainState,
    /// HTTPS endpoint, once the service has assigned one.
    pub endpoint: Option<String>,
    /// Engine version.
    pub engine_version: Option<String>,
    /// Data node type.
    pub instance_type: Option<String>,
    /// Data node count.
    pub instance_count: Option<i32>,
    /// EBS volume per node in GiB.
    pub volume_gb: Option<i32>,
    /// Secure-default settings this domain lacks.
    pub warnings: Vec<String>,
}

impl std::fmt::Display for DomainInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let or_dash = |v: Option<String>| v.unwrap_or_else(|| "-".into());
        writeln!(f, "domain:    {}", self.name)?;
        writeln!(f, "arn:       {}", self.arn)?;
        writeln!(f, "state:     {}", self.state)?;
        writeln!(f, "endpoint:  {}", or_dash(self.endpoint.clone()))?;
        writeln!(f, "engine:    {}", or_dash(self.engine_version.clone()))?;
        writeln!(
            f,
            "nodes:     {} x {}, {} GiB each",
            or_dash(self.instance_count.map(|c| c.to_string())),
            or_dash(self.instance_type.clone()),
            or_dash(self.volume_gb.map(|c| c.to_string()))
        )?;
        if self.warnings.is_empty() {
            write!(
                f,
                "security:  HTTPS enforced, TLS 1.2+, encrypted at rest and between nodes"
            )
        } else {
            write!(f, "security:  {}", self.warnings.join("; "))
        }
    }
}

/// What `ensure` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ensured {
    /// The domain was absent and has been created.
    Created(DomainInfo),
    /// The domain already existed; nothing was changed.
    Existing(DomainInfo),
}

impl Ensured {
    /// The domain, however it came to be.
    pub fn info(&self) -> &DomainInfo {
        match self {
            Ensured::Created(i) | Ensured::Existing(i) => i,
        }
    }
}

/// Why a domain command failed.
#[derive(Debug, thiserror::Error)]
pub enum DomainError {
    /// Region or credentials.
    #[error(transparent)]
    Aws(#[from] AwsError),
    /// The name breaks the service's rules.
    #[error(
        "`{0}` is not a valid domain name: use 3–28 characters of a-z, 0-9 and '-', starting \
         with a letter"
    )]
    BadName(String),
    /// A principal is not an IAM ARN.
    #[error(
        "`{0}` is not an IAM principal ARN: expected e.g. arn:aws:iam::123456789012:role/ids2-sensor \
         or arn:aws:iam::123456789012:user/alice (`aws sts get-caller-identity` shows yours)"
    )]
    BadPrincipal(String),
    /// No principal was given for a domain that must be created.
    #[error(
        "domain `{0}` does not exist yet and creating it needs at least one --principal ARN for \
         its access policy (yours: `aws sts get-caller-identity`; add the sensors' role too)"
    )]
    NoPrincipal(String),
    /// A size is out of range.
    #[error("{what} {value} is out of range: {expected}")]
    BadSize {
        /// Which option.
        what: &'static str,
        /// The value given.
        value: u32,
        /// What is accepted.
        expected: &'static str,
    },
    /// `delete` without `--yes`.
    #[error(
        "refusing to delete domain `{0}` without --yes: deleting it destroys every event \
         stored in it; re-run with --yes if that is what you want"
    )]
    DeleteNeedsYes(String),
    /// The domain does not exist in this region.
    #[error(
        "no OpenSearch domain `{name}` in region {region}: check --name and --region (domains \
         are regional; `aws opensearch list-domain-names --region {region}` lists them), or \
         create it with `ids2-provision domain ensure`"
    )]
    NotFound {
        /// Domain name.
        name: String,
        /// Region searched.
        region: String,
    },
    /// IAM refused the call.
    #[error(
        "AWS denied es:{action} on domain `{name}`: {message} — grant your IAM identity \
         es:DescribeDomain, es:CreateDomain and es:DeleteDomain (for example through the \
         AmazonOpenSearchServiceFullAccess managed policy) and retry"
    )]
    AccessDenied {
        /// The API action.
        action: &'static str,
        /// Domain name.
        name: String,
        /// The service's message.
        message: String,
    },
    /// HTTP 403 without an error code: bad credentials and missing permissions look alike.
    #[error(
        "AWS refused {action} for domain `{name}` ({message}): either the credentials are not \
         valid in region {region} (refresh them: `aws sso login`, new access keys) or your \
         identity lacks es:{action} (grant es:DescribeDomain, es:CreateDomain and \
         es:DeleteDomain)"
    )]
    Forbidden {
        /// The API action.
        action: &'static str,
        /// Domain name.
        name: String,
        /// Region.
        region: String,
        /// Status and body.
        message: String,
    },
    /// The credentials exist but AWS does not accept them here.
    #[error(
        "AWS rejected the credentials for {action} in region {region} ({code}): refresh them \
         (`aws sso login`, new access keys) and check that region {region} is enabled for your \
         account"
    )]
    BadCredentials {
        /// The API action.
        action: &'static str,
        /// Region.
        region: String,
        /// The service's error code.
        code: String,
    },
    /// The API could not be reached at all.
    #[error(
        "cannot reach the OpenSearch Service API at {endpoint} for {action}: check that \
         --region {region} is a real region, and this machine's internet access and proxy \
         settings (HTTPS_PROXY)"
    )]
    Unreachable {
        /// The API action.
        action: &'static str,
        /// Where the SDK sent it.
        endpoint: String,
        /// Region.
        region: String,
        /// The transport error.
        #[source]
        source: Box<dyn StdError + Send + Sync>,
    },
    /// The service refused the request as invalid.
    #[error(
        "AWS rejected {action} for domain `{name}`: {message} — check --engine-version and \
         --instance-type against `aws opensearch list-instance-type-details --engine-version \
         <version>` and the volume size limits for that type"
    )]
    Rejected {
        /// The API action.
        action: &'static str,
        /// Domain name.
        name: String,
        /// The service's message.
        message: String,
    },
    /// The domain is stuck.
    #[error(
        "domain `{name}` is in a failed state ({state}): open it in the AWS console (OpenSearch \
         Service → Domains → {name}) to see why; an isolated domain needs AWS Support, a failed \
         configuration change can be cancelled with `aws opensearch \
         cancel-domain-config-change --domain-name {name}`"
    )]
    Failed {
        /// Domain name.
        name: String,
        /// What the service says.
        state: String,
    },
    /// The domain is going away.
    #[error(
        "domain `{0}` is being deleted: wait until `ids2-provision domain status` reports it \
         gone, then run ensure again, or pick another --name"
    )]
    Deleting(String),
    /// The domain did not settle in time.
    #[error(
        "domain `{name}` is still {state} after {waited_secs} s: creating a domain usually takes \
         15–30 minutes; run the same `domain ensure` again to keep waiting (it never creates \
         twice) or raise --timeout-secs"
    )]
    Timeout {
        /// Domain name.
        name: String,
        /// Last state seen.
        state: String,
        /// Seconds waited.
        waited_secs: u64,
    },
    /// Any other service error.
    #[error("AWS {action} failed for domain `{name}` ({code}): {message}")]
    Api {
        /// The API action.
        action: &'static str,
        /// Domain name.
        name: String,
        /// Error code, or the HTTP status when there is none.
        code: String,
        /// The service's message.
        message: String,
    },
    /// The service answered without the data it documents.
    #[error("AWS {action} for domain `{name}` returned no domain status")]
    MissingStatus {
        /// The API action.
        action: &'static str,
        /// Domain name.
        name: String,
    },
}

impl DomainError {
    /// True when the operator's arguments are at fault (exit code 2).
    pub fn is_bad_input(&self) -> bool {
        match self {
            DomainError::Aws(e) => e.is_bad_input(),
            DomainError::BadName(_)
            | DomainError::BadPrincipal(_)
            | DomainError::NoPrincipal(_)
            | DomainError::BadSize { .. }
            | DomainError::DeleteNeedsYes(_)
            | DomainError::Rejected { .. } => true,
            _ => false,
        }
    }
}

/// Checks the service's naming rule before any call is made.
pub fn check_name(name: &str) -> Result<(), DomainError> {
    let ok = (3..=28).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    ok.then_some(())
        .ok_or_else(|| DomainError::BadName(name.to_string()))
}

/// Validates a spec whole; nothing is sent to AWS when this fails.
pub fn check_spec(spec: &DomainSpec) -> Result<(), DomainError> {
    check_name(&spec.name)?;
    if !(1..=80).contains(&spec.instance_count) {
        return Err(DomainError::BadSize {
            what: "--instance-count",
            value: spec.instance_count,
            expected: "1 to 80 data nodes",
        });
    }
    if !(10..=24_576).contains(&spec.volume_gb) {
        return Err(DomainError::BadSize {
            what: "--volume-gb",
            value: spec.volume_gb,
            expected: "10 to 24576 GiB per node (gp3 minimum is 10)",
        });
    }
    for p in &spec.principals {
        principal_account(p)?;
    }
    Ok(())
}

/// `arn:<partition>:iam::<account>:<user|role|root…>` → (partition, account).
fn principal_account(arn: &str) -> Result<(&str, &str), DomainError> {
    let bad = || DomainError::BadPrincipal(arn.to_string());
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    match parts.as_slice() {
        ["arn", partition, "iam", "", account, resource]
            if partition.starts_with("aws")
                && account.len() == 12
                && account.chars().all(|c| c.is_ascii_digit())
                && (resource.starts_with("user/")
                    || resource.starts_with("role/")
                    || *resource == "root") =>
        {
            Ok((partition, account))
        }
        _ => Err(bad()),
    }
}

/// The access policy for a new domain: only the given principals may use its HTTP API.
/// The domain lives in the first principal's account (the operator's).
pub fn access_policy(spec: &DomainSpec, region: &str) -> Result<String, DomainError> {
    let first = spec
        .principals
        .first()
        .ok_or_else(|| DomainError::NoPrincipal(spec.name.clone()))?;
    let (partition, account) = principal_account(first)?;
    for p in &spec.principals {
        principal_account(p)?;
    }
    let policy = serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": { "AWS": spec.principals },
            "Action": "es:ESHttp*",
            "Resource": format!("arn:{partition}:es:{region}:{account}:domain/{}/*", spec.name),
        }]
    });
    Ok(policy.to_string())
}

/// A control-plane client for one region.
pub struct Domains {
    client: Client,
    region: String,
    api_endpoint: String,
}

impl Domains {
    /// Loads credentials for `target` (failing early when there are none) and builds a client.
    pub async fn connect(target: &AwsTarget) -> Result<Self, DomainError> {
        let (config, _credentials) = aws::load(target).await?;
        let api_endpoint = target
            .endpoint_url
            .clone()
            .unwrap_or_else(|| format!("https://es.{}.amazonaws.com", target.region));
        Ok(Self {
            client: Client::new(&config),
            region: target.region.clone(),
            api_endpoint,
        })
    }

    /// DescribeDomain; `None` when the service says the domain does not exist.
    pub async fn describe(&self, name: &str) -> Result<Option<DomainInfo>, DomainError> {
        check_name(name)?;
        match self.client.describe_domain().domain_name(name).send().await {
            Ok(out) => {
                let status = out.domain_status().ok_or(DomainError::MissingStatus {
                    action: "DescribeDomain",
                    name: name.to_string(),
                })?;
                Ok(Some(info(status)))
            }
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_not_found_exception()) =>
            {
                Ok(None)
            }
            Err(e) => Err(self.classify("DescribeDomain", name, e)),
        }
    }

    /// `domain status`: the domain or [`DomainError::NotFound`].
    pub async fn status(&self, name: &str) -> Result<DomainInfo, DomainError> {
        self.describe(name)
            .await?
            .ok_or_else(|| self.not_found(name))
    }

    /// Describes the domain, creates it only when absent, then waits until it is active.
    /// `progress` is called after every poll while the domain is processing.
    pub async fn ensure(
        &self,
        spec: &DomainSpec,
        wait: Wait,
        progress: &mut dyn FnMut(&DomainInfo, Duration),
    ) -> Result<Ensured, DomainError> {
        check_spec(spec)?;
        let existing = self.describe(&spec.name).await?;
        let created = existing.is_none();
        let current = match existing {
            Some(found) => found,
            None => self.create(spec).await?,
        };
        let region = self.region.clone();
        let current = wait_until_active(current, wait, progress, || async {
            self.describe(&spec.name)
                .await?
                .ok_or(DomainError::NotFound {
                    name: spec.name.clone(),
                    region: region.clone(),
                })
        })
        .await?;
        Ok(if created {
            Ensured::Created(current)
        } else {
            Ensured::Existing(current)
        })
    }

    async fn create(&self, spec: &DomainSpec) -> Result<DomainInfo, DomainError> {
        let policy = access_policy(spec, &self.region)?;
        // The service needs the node count to be a multiple of the zone count.
        let zones = match spec.instance_count {
            n if n % 3 == 0 => 3,
            n if n % 2 == 0 => 2,
            _ => 1,
        };
        let mut cluster = ClusterConfig::builder()
            .instance_type(OpenSearchPartitionInstanceType::from(
                spec.instance_type.as_str(),
            ))
            .instance_count(spec.instance_count as i32)
            .zone_awareness_enabled(zones > 1);
        if zones > 1 {
            cluster = cluster.zone_awareness_config(
                ZoneAwarenessConfig::builder()
                    .availability_zone_count(zones)
                    .build(),
            );
        }
        // Counts and sizes were range-checked in check_spec, so the casts cannot wrap.
        let out = self
            .client
            .create_domain()
            .domain_name(&spec.name)
            .engine_version(&spec.engine_version)
            .cluster_config(cluster.build())
            .ebs_options(
                EbsOptions::builder()
                    .ebs_enabled(true)
                    .volume_type(VolumeType::Gp3)
                    .volume_size(spec.volume_gb as i32)
                    .build(),
            )
            .access_policies(policy)
            .encryption_at_rest_options(EncryptionAtRestOptions::builder().enabled(true).build())
            .node_to_node_encryption_options(
                NodeToNodeEncryptionOptions::builder().enabled(true).build(),
            )
            .domain_endpoint_options(
                DomainEndpointOptions::builder()
                    .enforce_https(true)
                    .tls_security_policy(TlsSecurityPolicy::from(TLS_POLICY))
                    .build(),
            )
            .send()
            .await
            .map_err(|e| self.classify("CreateDomain", &spec.name, e))?;
        let status = out.domain_status().ok_or(DomainError::MissingStatus {
            action: "CreateDomain",
            name: spec.name.clone(),
        })?;
        Ok(info(status))
    }

    /// DeleteDomain; refuses unless `confirmed`.
    pub async fn delete(&self, name: &str, confirmed: bool) -> Result<(), DomainError> {
        check_name(name)?;
        if !confirmed {
            return Err(DomainError::DeleteNeedsYes(name.to_string()));
        }
        match self.client.delete_domain().domain_name(name).send().await {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_not_found_exception()) =>
            {
                Err(self.not_found(name))
            }
            Err(e) => Err(self.classify("DeleteDomain", name, e)),
        }
    }

    fn not_found(&self, name: &str) -> DomainError {
        DomainError::NotFound {
            name: name.to_string(),
            region: self.region.clone(),
        }
    }

    fn classify<E>(&self, action: &'static str, name: &str, e: SdkError<E>) -> DomainError
    where
        E: ProvideErrorMetadata + StdError + Send + Sync + 'static,
    {
        let status = e.raw_response().map(|r| r.status().as_u16());
        let message = e.message().map(str::to_string).unwrap_or_else(|| {
            // No parsed message (a proxy or an emulator answered in another format): show
            // the start of the body so the operator sees what came back.
            let body = e
                .raw_response()
                .and_then(|r| r.body().bytes())
                .map(|b| {
                    String::from_utf8_lossy(b)
                        .chars()
                        .take(300)
                        .collect::<String>()
                })
                .unwrap_or_default();
            format!("HTTP {}: {}", status.unwrap_or(0), body.trim())
        });
        let code = e.code().map(str::to_string);
        match (&e, code.as_deref()) {
            (SdkError::DispatchFailure(_) | SdkError::TimeoutError(_), _) => {
                DomainError::Unreachable {
                    action,
                    endpoint: self.api_endpoint.clone(),
                    region: self.region.clone(),
                    source: Box::new(e),
                }
            }
            (_, Some("AccessDeniedException" | "AccessDenied")) => DomainError::AccessDenied {
                action,
                name: name.to_string(),
                message,
            },
            (
                _,
                Some(
                    c @ ("UnrecognizedClientException"
                    | "InvalidClientTokenId"
                    | "InvalidSignatureException"
                    | "SignatureDoesNotMatch"
                    | "ExpiredTokenException"
                    | "ExpiredToken"),
                ),
            ) => DomainError::BadCredentials {
                action,
                region: self.region.clone(),
                code: c.to_string(),
            },
            (_, Some("ValidationException" | "InvalidTypeException")) => DomainError::Rejected {
                action,
                name: name.to_string(),
                message,
            },
            (_, None) if status == Some(403) => DomainError::Forbidden {
                action,
                name: name.to_string(),
                region: self.region.clone(),
                message,
            },
            _ => DomainError::Api {
                action,
                name: name.to_string(),
                code: code.unwrap_or_else(|| e.to_string()),
                message,
            },
        }
    }
}

/// Polls with `describe` until the domain is active with an endpoint; fails at once on a
/// failed or deleting domain, and after `wait.timeout` otherwise.
pub async fn wait_until_active<F, Fut>(
    mut current: DomainInfo,
    wait: Wait,
    progress: &mut dyn FnMut(&DomainInfo, Duration),
    mut describe: F,
) -> Result<DomainInfo, DomainError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<DomainInfo, DomainError>>,
{
    let start = Instant::now();
    loop {
        match &current.state {
            DomainState::Active if current.endpoint.is_some() => return Ok(current),
            DomainState::Failed(state) => {
                return Err(DomainError::Failed {
                    name: current.name.clone(),
                    state: state.clone(),
                })
            }
            DomainState::Deleting => return Err(DomainError::Deleting(current.name.clone())),
            _ => {}
        }
        let waited = start.elapsed();
        progress(&current, waited);
        if waited >= wait.timeout {
            return Err(DomainError::Timeout {
                name: current.name.clone(),
                state: current.state.to_string(),
                waited_secs: waited.as_secs(),
            });
        }
        tokio::time::sleep(wait.poll.min(wait.timeout.saturating_sub(waited))).await;
        current = describe().await?;
    }
}

/// Reads the state and the security settings out of a DomainStatus.
pub fn info(s: &DomainStatus) -> DomainInfo {
    let processing_status = s.domain_processing_status().map(|p| p.as_str().to_string());
    let change_failed = s
        .change_progress_details()
        .and_then(|c| c.config_change_status())
        .is_some_and(|c| *c == ConfigChangeStatus::ValidationFailed);
    let state = if s.deleted() == Some(true)
        || s.domain_processing_status() == Some(&DomainProcessingStatusType::Deleting)
    {
        DomainState::Deleting
    } else if s.domain_processing_status() == Some(&DomainProcessingStatusType::Isolated) {
        DomainState::Failed("Isolated".into())
    } else if change_failed {
        DomainState::Failed("configuration change ValidationFailed".into())
    } else if s.processing() == Some(true) || s.created() == Some(false) {
        DomainState::Processing(processing_status.unwrap_or_else(|| "Processing".into()))
    } else {
        DomainState::Active
    };
    let endpoint = s
        .endpoint()
        .or_else(|| s.endpoints().and_then(|m| m.get("vpc").map(String::as_str)))
        .map(|h| format!("https://{h}"));
    DomainInfo {
        name: s.domain_name().to_string(),
        arn: s.arn().to_string(),
        state,
        endpoint,
        engine_version: s.engine_version().map(str::to_string),
        instance_type: s
            .cluster_config()
            .and_then(|c| c.instance_type())
            .map(|t| t.as_str().to_string()),
        instance_count: s.cluster_config().and_then(|c| c.instance_count()),
        volume_gb: s.ebs_options().and_then(|e| e.volume_size()),
        warnings: security_warnings(s),
    }
}

fn security_warnings(s: &DomainStatus) -> Vec<String> {
    let mut w = Vec::new();
    let ep = s.domain_endpoint_options();
    if ep.and_then(|e| e.enforce_https()) != Some(true) {
        w.push("HTTPS is not enforced".to_string());
    }
    match ep.and_then(|e| e.tls_security_policy()).map(|p| p.as_str()) {
        Some(p) if TLS_12_POLICIES.contains(&p) => {}
        Some(p) => w.push(format!("TLS policy {p} allows TLS below 1.2")),
        None => w.push("no TLS policy reported".to_string()),
    }
    if s.encryption_at_rest_options().and_then(|e| e.enabled()) != Some(true) {
        w.push("encryption at rest is off".to_string());
    }
    if s.node_to_node_encryption_options()
        .and_then(|e| e.enabled())
        != Some(true)
    {
        w.push("node-to-node encryption is off".to_string());
    }
    if s.access_policies().is_none_or(policy_is_open) {
        w.push("the access policy is open to any principal".to_string());
    }
    w
}

/// True when an Allow statement names `*` (alone or as `{"AWS": "*"}`) as principal, or the
/// policy is empty/unreadable, which the service treats as open.
fn policy_is_open(policy: &str) -> bool {
    let Ok(v) = serde_json::from_str::<serde_json::Value>(policy) else {
        return true;
    };
    let statements = match &v["Statement"] {
        serde_json::Value::Array(a) => a.clone(),
        serde_json::Value::Object(_) => vec![v["Statement"].clone()],
        _ => return true,
    };
    let star = |p: &serde_json::Value| match p {
        serde_json::Value::String(s) => s == "*",
        serde_json::Value::Array(a) => a.iter().any(|x| x == "*"),
        _ => false,
    };
    statements.iter().any(|st| {
        st["Effect"] == "Allow" && (star(&st["Principal"]) || star(&st["Principal"]["AWS"]))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_opensearch::types::ChangeProgressDetails;

    fn spec(principals: &[&str]) -> DomainSpec {
        DomainSpec {
            name: "ids2".into(),
            engine_version: "OpenSearch_2.19".into(),
            instance_type: "t3.small.search".into(),
            instance_count: 1,
            volume_gb: 10,
            principals: principals.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn status() -> aws_sdk_opensearch::types::builders::DomainStatusBuilder {
        DomainStatus::builder()
            .domain_id("123456789012/ids2")
            .domain_name("ids2")
            .arn("arn:aws:es:eu-west-1:123456789012:domain/ids2")
            .cluster_config(ClusterConfig::builder().build())
            .created(true)
            .processing(false)
            .endpoint("search-ids2-abc.eu-west-1.es.amazonaws.com")
    }

    #[test]
    fn names_and_principals_are_checked() {
        assert!(check_name("ids2").is_ok());
        for bad in ["ab", "Ids2", "2ids", "ids_2", &"a".repeat(29)] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
        assert!(check_spec(&spec(&["arn:aws:iam::123456789012:role/ops"])).is_ok());
        for bad in [
            "arn:aws:iam::12345:role/ops",
            "arn:aws:s3:::bucket",
            "arn:aws:sts::123456789012:assumed-role/x/y",
            "alice",
        ] {
            assert!(
                matches!(check_spec(&spec(&[bad])), Err(DomainError::BadPrincipal(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn access_policy_names_only_the_principals_and_this_domain() {
        let s = spec(&[
            "arn:aws:iam::123456789012:user/alice",
            "arn:aws:iam::123456789012:role/ids2-sensor",
        ]);
        let p: serde_json::Value =
            serde_json::from_str(&access_policy(&s, "eu-west-1").unwrap()).unwrap();
        let st = &p["Statement"][0];
        assert_eq!(st["Effect"], "Allow");
        assert_eq!(st["Principal"]["AWS"].as_array().unwrap().len(), 2);
        assert_eq!(
            st["Resource"],
            "arn:aws:es:eu-west-1:123456789012:domain/ids2/*"
        );
        assert!(matches!(
            access_policy(&spec(&[]), "eu-west-1"),
            Err(DomainError::NoPrincipal(_))
        ));
    }

    #[test]
    fn states_are_read_from_the_status() {
        assert_eq!(info(&status().build().unwrap()).state, DomainState::Active);
        let creating = status()
            .processing(true)
            .domain_processing_status(DomainProcessingStatusType::Creating)
            .build()
            .unwrap();
        assert_eq!(
            info(&creating).state,
            DomainState::Processing("Creating".into())
        );
        let isolated = status()
            .domain_processing_status(DomainProcessingStatusType::Isolated)
            .build()
            .unwrap();
        assert!(matches!(info(&isolated).state, DomainState::Failed(_)));
        let bad_change = status()
            .change_progress_details(
                ChangeProgressDetails::builder()
                    .config_change_status(ConfigChangeStatus::ValidationFailed)
                    .build(),
            )
            .build()
            .unwrap();
        assert!(matches!(info(&bad_change).state, DomainState::Failed(_)));
        let deleting = status().deleted(true).build().unwrap();
        assert_eq!(info(&deleting).state, DomainState::Deleting);
    }

    fn processing(name: &str) -> DomainInfo {
        let mut i = info(&status().domain_name(name).processing(true).build().unwrap());
        i.endpoint = None;
        i
    }

    fn run_wait(
        first: DomainInfo,
        script: Vec<DomainInfo>,
        timeout: Duration,
    ) -> (Result<DomainInfo, DomainError>, usize, usize) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let mut polls = 0;
        let mut progress_calls = 0;
        let mut script = script.into_iter();
        let wait = Wait {
            timeout,
            poll: Duration::from_millis(5),
        };
        let result = rt.block_on(wait_until_active(
            first,
            wait,
            &mut |_, _| progress_calls += 1,
            || {
                polls += 1;
                let next = script.next();
                async move {
                    next.ok_or(DomainError::NotFound {
                        name: "ids2".into(),
                        region: "eu-west-1".into(),
                    })
                }
            },
        ));
        (result, polls, progress_calls)
    }

    #[test]
    fn waiting_polls_until_active_and_reports_progress() {
        let active = info(&status().build().unwrap());
        let (r, polls, progress) = run_wait(
            processing("ids2"),
            vec![processing("ids2"), active.clone()],
            Duration::from_secs(10),
        );
        assert_eq!(r.unwrap(), active);
        assert_eq!((polls, progress), (2, 2));
    }

    #[test]
    fn waiting_stops_on_failure_timeout_and_disappearance() {
        let failed = info(
            &status()
                .domain_processing_status(DomainProcessingStatusType::Isolated)
                .build()
                .unwrap(),
        );
        let (r, polls, _) = run_wait(processing("ids2"), vec![failed], Duration::from_secs(10));
        assert!(matches!(r, Err(DomainError::Failed { .. })), "{r:?}");
        assert_eq!(polls, 1);

        let many = vec![processing("ids2"); 1000];
        let (r, polls, _) = run_wait(processing("ids2"), many, Duration::from_millis(30));
        let Err(DomainError::Timeout { state, .. }) = r else {
            panic!("{r:?}")
        };
        assert!(state.starts_with("processing"), "{state}");
        assert!((1..1000).contains(&polls), "{polls}");

        let (r, _, _) = run_wait(processing("ids2"), vec![], Duration::from_secs(10));
        assert!(matches!(r, Err(DomainError::NotFound { .. })), "{r:?}");
    }

    #[test]
    fn insecure_existing_domain_is_warned_about() {
        let open = status()
            .access_policies(r#"{"Statement":[{"Effect":"Allow","Principal":{"AWS":"*"}}]}"#)
            .domain_endpoint_options(
                DomainEndpointOptions::builder()
                    .enforce_https(false)
                    .tls_security_policy(TlsSecurityPolicy::PolicyMinTls10201907)
                    .build(),
            )
            .build()
            .unwrap();
        let w = info(&open).warnings.join("; ");
        for expected in [
            "HTTPS",
            "below 1.2",
            "at rest",
            "node-to-node",
            "any principal",
        ] {
            assert!(w.contains(expected), "{expected} missing from {w}");
        }
    }
}
