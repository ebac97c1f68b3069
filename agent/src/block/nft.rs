//! Local enforcement for inline sensors: an nftables table `inet ids2` with one set per
//! address family (elements carry their own timeout) and drop rules on the input and forward
//! hooks.
//!
//! This drives the real `nft` binary with a JSON ruleset on stdin (`nft -j -f -`) rather than
//! speaking nftables netlink directly: the netlink crates either wrap the C libraries
//! (`nftnl`/`mnl` need libnftnl and libmnl) or are GPL-3.0 (`rustables`, incompatible with
//! this Apache-2.0 project). `nft` applies each JSON batch as one atomic transaction.

use std::net::IpAddr;
use std::process::Stdio;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;

/// The table's name (family `inet`).
pub const TABLE: &str = "ids2";
/// The IPv4 set.
pub const SET_V4: &str = "blocked_v4";
/// The IPv6 set.
pub const SET_V6: &str = "blocked_v6";
/// Longest one `nft` run may take.
const NFT_TIMEOUT: Duration = Duration::from_secs(10);

/// Why `nft` failed.
#[derive(Debug, thiserror::Error)]
pub enum NftError {
    /// The program could not be started.
    #[error("cannot run {program} (install nftables, or turn blocking.nftables off)")]
    Spawn {
        /// The program.
        program: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// `nft` rejected the batch.
    #[error("nft failed ({status}): {stderr}")]
    Failed {
        /// Exit status.
        status: String,
        /// What nft said.
        stderr: String,
    },
    /// `nft` did not finish in time.
    #[error("nft did not finish within {0:?}")]
    Timeout(Duration),
}

/// How to run `nft`: the program and arguments before `-j -f -`. The seam lets tests run it
/// in a network namespace they made (`ip netns exec NAME nft`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nft {
    argv: Vec<String>,
}

impl Default for Nft {
    fn default() -> Self {
        Self {
            argv: vec!["nft".into()],
        }
    }
}

fn set_of(ip: IpAddr) -> &'static str {
    match ip {
        IpAddr::V4(_) => SET_V4,
        IpAddr::V6(_) => SET_V6,
    }
}

fn table() -> Value {
    json!({"family": "inet", "name": TABLE})
}

fn drop_rule(chain: &str, protocol: &str, field: &str, set: &str) -> Value {
    json!({"add": {"rule": {"family": "inet", "table": TABLE, "chain": chain, "expr": [
        {"match": {"op": "==", "left": {"payload": {"protocol": protocol, "field": field}},
                   "right": format!("@{set}")}},
        {"counter": null},
        {"drop": null},
    ]}}})
}

impl Nft {
    /// Runs `argv… -j -f -`; `argv` must not be empty.
    pub fn with_command(argv: Vec<String>) -> Self {
        Self { argv }
    }

    /// The ruleset that (re)creates the table, empty, in one transaction.
    pub fn ruleset() -> Value {
        let mut cmds = vec![
            // add + delete + add: replaces a table left by an earlier run without failing
            // when there is none.
            json!({"add": {"table": table()}}),
            json!({"delete": {"table": table()}}),
            json!({"add": {"table": table()}}),
        ];
        for (name, ty) in [(SET_V4, "ipv4_addr"), (SET_V6, "ipv6_addr")] {
            cmds.push(
                json!({"add": {"set": {"family": "inet", "table": TABLE, "name": name,
                "type": ty, "flags": ["timeout"]}}}),
            );
        }
        for hook in ["input", "forward"] {
            // Before the host's own filter chains (priority 0), so their accepts cannot undo it.
            cmds.push(
                json!({"add": {"chain": {"family": "inet", "table": TABLE, "name": hook,
                "type": "filter", "hook": hook, "prio": -10, "policy": "accept"}}}),
            );
            cmds.push(drop_rule(hook, "ip", "saddr", SET_V4));
            cmds.push(drop_rule(hook, "ip6", "saddr", SET_V6));
        }
        cmds.push(drop_rule("forward", "ip", "daddr", SET_V4));
        cmds.push(drop_rule("forward", "ip6", "daddr", SET_V6));
        json!({ "nftables": cmds })
    }

    /// Creates (or resets) the table, its sets and rules.
    pub async fn install(&self) -> Result<(), NftError> {
        self.run(&Self::ruleset()).await
    }

    /// Adds `ip` to its set for `ttl` (at least one second).
    pub async fn add(&self, ip: IpAddr, ttl: Duration) -> Result<(), NftError> {
        let secs = ttl.as_secs().max(1);
        self.run(
            &json!({"nftables": [{"add": {"element": {"family": "inet", "table": TABLE,
            "name": set_of(ip), "elem": [{"elem": {"val": ip.to_string(), "timeout": secs}}]}}}]}),
        )
        .await
    }

    /// Removes `ip` from its set.
    pub async fn remove(&self, ip: IpAddr) -> Result<(), NftError> {
        self.run(
            &json!({"nftables": [{"delete": {"element": {"family": "inet", "table": TABLE,
            "name": set_of(ip), "elem": [ip.to_string()]}}}]}),
        )
        .await
    }

    async fn run(&self, batch: &Value) -> Result<(), NftError> {
        let (program, args) = self.argv.split_first().ok_or_else(|| NftError::Spawn {
            program: String::new(),
            source: std::io::Error::new(std::io::ErrorKind::InvalidInput, "empty nft command"),
        })?;
        let spawn_err = |source| NftError::Spawn {
            program: program.clone(),
            source,
        };
        let mut child = tokio::process::Command::new(program)
            .args(args)
            .args(["-j", "-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(spawn_err)?;
        let mut stdin = child.stdin.take().expect("stdin is piped");
        let body = batch.to_string();
        let out = tokio::time::timeout(NFT_TIMEOUT, async move {
            stdin.write_all(body.as_bytes()).await?;
            drop(stdin);
            child.wait_with_output().await
        })
        .await
        .map_err(|_| NftError::Timeout(NFT_TIMEOUT))?
        .map_err(spawn_err)?;
        if out.status.success() {
            Ok(())
        } else {
            Err(NftError::Failed {
                status: out.status.to_string(),
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            })
        }
    }
}
