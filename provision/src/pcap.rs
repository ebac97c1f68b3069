//! `pcap get --sensor`: an alert's packet evidence fetched from its sensor over SSH, the
//! channel the operator already uses for `nixos-rebuild --target-host`.
//!
//! It runs `ids2-agent pcap get` on the sensor through the system's `ssh` (so the operator's
//! keys, agent and `~/.ssh/config` apply) and streams its standard output to a file or to ours:
//! a pcap is never held in memory. `ssh` exits 255 when it cannot reach or log in to the sensor,
//! and the agent exits 2 for a flow its store does not have; each gets its own error.

use std::ffi::OsString;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Which flow to fetch: exactly the agent's selectors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selector {
    /// ECS `network.community_id`.
    CommunityId(String),
    /// Suricata's `flow_id`.
    FlowId(u64),
    /// An alert's ECS `event.id`.
    Alert(String),
}

/// How to reach the sensor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Remote {
    /// `[user@]host`, as `ssh` takes it.
    pub sensor: String,
    /// `ssh -p`.
    pub port: Option<u16>,
    /// `ssh -i`.
    pub identity: Option<PathBuf>,
    /// Extra `ssh -o` options, e.g. `StrictHostKeyChecking=accept-new`.
    pub options: Vec<String>,
    /// The agent on the sensor (`ids2-agent` on its `PATH`, as the NixOS module installs it).
    pub agent: String,
    /// The sensor's config file, when not the agent's default.
    pub agent_config: Option<String>,
    /// The `ssh` program (`ssh` on our `PATH`).
    pub ssh: OsString,
}

/// A failed fetch.
#[derive(Debug, thiserror::Error)]
pub enum PcapError {
    /// An argument the remote shell would have to interpret.
    #[error("{what} `{value}` is not usable: {why}")]
    BadInput {
        /// Which argument.
        what: &'static str,
        /// Its value.
        value: String,
        /// What is accepted.
        why: &'static str,
    },
    /// `ssh` could not be run at all.
    #[error("cannot run {program:?}: {source}")]
    Ssh {
        /// The program.
        program: OsString,
        /// Why.
        source: io::Error,
    },
    /// `ssh` could not reach or log in to the sensor.
    #[error("cannot reach {sensor} over SSH: {stderr}")]
    Unreachable {
        /// The sensor.
        sensor: String,
        /// What ssh said.
        stderr: String,
    },
    /// The sensor's store has no such flow.
    #[error("{sensor} has no such flow: {stderr}")]
    NoSuchFlow {
        /// The sensor.
        sensor: String,
        /// What the agent said.
        stderr: String,
    },
    /// The agent on the sensor failed otherwise.
    #[error("ids2-agent on {sensor} failed (exit {code:?}): {stderr}")]
    Remote {
        /// The sensor.
        sensor: String,
        /// Its exit code.
        code: Option<i32>,
        /// What it said.
        stderr: String,
    },
    /// Writing the pcap failed.
    #[error("cannot write {path}: {source}")]
    Write {
        /// Where.
        path: String,
        /// Why.
        source: io::Error,
    },
}

impl PcapError {
    /// Whether the operator can fix it in what they passed (exit 2), a missing flow included.
    pub fn is_bad_input(&self) -> bool {
        matches!(
            self,
            PcapError::BadInput { .. } | PcapError::NoSuchFlow { .. }
        )
    }
}

/// Characters a selector or path may hold: what community ids (base64), event ids (hex) and
/// Nix store paths use. Nothing the remote shell would expand.
fn plain(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.:/=+@".contains(c))
        && !s.starts_with('-')
}

impl Remote {
    /// The `ssh` argument list for fetching `selector`.
    pub fn args(&self, selector: &Selector) -> Result<Vec<OsString>, PcapError> {
        let check = |what: &'static str, value: &str| {
            if plain(value) {
                Ok(())
            } else {
                Err(PcapError::BadInput {
                    what,
                    value: value.to_string(),
                    why: "expected letters, digits and - _ . : / = + @, not starting with '-'",
                })
            }
        };
        check("--sensor", &self.sensor)?;
        check("--agent", &self.agent)?;
        let mut remote = vec![self.agent.clone(), "pcap".into(), "get".into()];
        if let Some(c) = &self.agent_config {
            check("--agent-config", c)?;
            remote.extend(["--config".into(), c.clone()]);
        }
        match selector {
            Selector::CommunityId(id) => {
                check("--community-id", id)?;
                remote.extend(["--community-id".into(), id.clone()]);
            }
            Selector::FlowId(n) => remote.extend(["--flow-id".into(), n.to_string()]),
            Selector::Alert(id) => {
                check("--alert", id)?;
                remote.extend(["--alert".into(), id.clone()]);
            }
        }
        let mut args: Vec<OsString> = vec!["-o".into(), "BatchMode=yes".into()];
        if let Some(p) = self.port {
            args.extend(["-p".into(), p.to_string().into()]);
        }
        if let Some(i) = &self.identity {
            args.extend(["-i".into(), i.clone().into_os_string()]);
        }
        for o in &self.options {
            args.extend(["-o".into(), o.into()]);
        }
        args.push(self.sensor.clone().into());
        args.push("--".into());
        args.extend(remote.into_iter().map(OsString::from));
        Ok(args)
    }

    /// Fetches `selector`'s pcap into `out` (standard output when `None`), streaming.
    pub fn get(&self, selector: &Selector, out: Option<&Path>) -> Result<u64, PcapError> {
        let args = self.args(selector)?;
        let mut child = Command::new(&self.ssh)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| PcapError::Ssh {
                program: self.ssh.clone(),
                source,
            })?;
        let mut stderr = child.stderr.take().expect("stderr is piped");
        let errors = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text);
            text
        });
        let mut stdout = child.stdout.take().expect("stdout is piped");
        // Into `<out>.part`, renamed only when the whole pcap arrived.
        let shown = out.map_or("standard output".to_string(), |p| p.display().to_string());
        let write = |source| PcapError::Write {
            path: shown.clone(),
            source,
        };
        let (copied, part) = match out {
            Some(path) => {
                let mut part = path.as_os_str().to_owned();
                part.push(".part");
                let part = PathBuf::from(part);
                let mut file = std::fs::File::create(&part).map_err(write)?;
                let n = io::copy(&mut stdout, &mut file).map_err(write)?;
                (n, Some(part))
            }
            None => {
                let mut w = io::stdout().lock();
                let n = io::copy(&mut stdout, &mut w).map_err(write)?;
                w.flush().map_err(write)?;
                (n, None)
            }
        };
        let status = child.wait().map_err(|source| PcapError::Ssh {
            program: self.ssh.clone(),
            source,
        })?;
        let stderr = errors.join().unwrap_or_default().trim().to_string();
        let sensor = self.sensor.clone();
        if status.code() != Some(0) {
            if let Some(part) = &part {
                let _ = std::fs::remove_file(part);
            }
        }
        match status.code() {
            Some(0) => {
                if let (Some(part), Some(path)) = (part, out) {
                    std::fs::rename(part, path).map_err(write)?;
                }
                Ok(copied)
            }
            Some(255) => Err(PcapError::Unreachable { sensor, stderr }),
            Some(2) => Err(PcapError::NoSuchFlow { sensor, stderr }),
            code => Err(PcapError::Remote {
                sensor,
                code,
                stderr,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn remote() -> Remote {
        Remote {
            sensor: "root@pi5-lab-01".into(),
            port: Some(2222),
            identity: None,
            options: vec!["StrictHostKeyChecking=accept-new".into()],
            agent: "ids2-agent".into(),
            agent_config: None,
            ssh: "ssh".into(),
        }
    }

    #[test]
    fn the_remote_command_is_the_agents_with_nothing_for_a_shell() {
        let args = remote()
            .args(&Selector::CommunityId(
                "1:hO+sN4H+MG5MY/8hIrXPqc4ZQz0=".into(),
            ))
            .unwrap();
        let text: Vec<String> = args
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            text,
            [
                "-o",
                "BatchMode=yes",
                "-p",
                "2222",
                "-o",
                "StrictHostKeyChecking=accept-new",
                "root@pi5-lab-01",
                "--",
                "ids2-agent",
                "pcap",
                "get",
                "--community-id",
                "1:hO+sN4H+MG5MY/8hIrXPqc4ZQz0="
            ]
        );
        for bad in ["1:x'; rm -rf /", "$(id)", "-oProxyCommand=x", "a b"] {
            let e = remote()
                .args(&Selector::CommunityId(bad.into()))
                .unwrap_err();
            assert!(e.is_bad_input() && e.to_string().contains(bad), "{e}");
        }
        let mut r = remote();
        r.sensor = "-oProxyCommand=sh".into();
        assert!(r.args(&Selector::FlowId(1)).is_err());
    }
}
