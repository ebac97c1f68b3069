//! Suricata's unix-command socket: the protocol `suricatasc` speaks. The client sends
//! `{"version": "0.2"}` and gets `{"return": "OK"}`, then one JSON command per request, each
//! answered by one JSON object `{"return": "OK"|"NOK", "message": …}`. From protocol 0.2 on,
//! Suricata reads a command only once its terminating newline arrives (so a command may span
//! several reads); without it the connection is closed unanswered.
//!
//! Used to reload rules in the running Suricata (`reload-rules`, which returns once the new
//! detection engine is live) and to read how many rules it loaded (`ruleset-stats`).

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{json, Value};

/// The protocol version this client speaks.
pub const PROTOCOL_VERSION: &str = "0.2";
/// Largest answer accepted.
const MAX_ANSWER_BYTES: usize = 4 << 20;

/// Why a command could not be run.
#[derive(Debug, thiserror::Error)]
pub enum SocketError {
    /// Nothing listens at the socket path (Suricata not running, or unix-command disabled).
    #[error("cannot connect to Suricata's unix socket {}: is Suricata running with unix-command enabled?", path.display())]
    Connect {
        /// The socket path.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The conversation broke off or timed out.
    #[error("talking to Suricata over {} failed during {step}", path.display())]
    Io {
        /// The socket path.
        path: PathBuf,
        /// What was being done.
        step: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Suricata answered something that is not the protocol.
    #[error("Suricata's answer to {step} is not valid: {answer}")]
    Protocol {
        /// What was being done.
        step: String,
        /// The answer, shortened.
        answer: String,
    },
    /// Suricata refused the command.
    #[error("Suricata refused `{command}`: {message}")]
    Refused {
        /// The command.
        command: String,
        /// Suricata's message.
        message: String,
    },
}

impl SocketError {
    /// True when Suricata is simply not there (as opposed to failing a command).
    pub fn is_not_running(&self) -> bool {
        matches!(self, SocketError::Connect { .. })
    }
}

/// A client for one socket path; each command opens its own connection.
#[derive(Debug, Clone)]
pub struct SuricataSocket {
    path: PathBuf,
    timeout: Duration,
}

impl SuricataSocket {
    /// A client for `path` whose commands may take up to `timeout` each (a rule reload on a
    /// Pi with a full rule set takes tens of seconds).
    pub fn new(path: impl Into<PathBuf>, timeout: Duration) -> Self {
        Self {
            path: path.into(),
            timeout,
        }
    }

    /// The socket path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `command` (with `arguments` when given) and returns its `message`.
    pub fn command(&self, command: &str, arguments: Option<Value>) -> Result<Value, SocketError> {
        let mut stream =
            UnixStream::connect(&self.path).map_err(|source| SocketError::Connect {
                path: self.path.clone(),
                source,
            })?;
        let io = |step: &str| {
            let path = self.path.clone();
            let step = step.to_string();
            move |source| SocketError::Io { path, step, source }
        };
        stream
            .set_read_timeout(Some(self.timeout))
            .and_then(|()| stream.set_write_timeout(Some(self.timeout)))
            .map_err(io("setup"))?;
        let hello = self.exchange(
            &mut stream,
            &json!({"version": PROTOCOL_VERSION}),
            "the handshake",
        )?;
        expect_ok("the handshake", hello)?;
        let mut request = json!({"command": command});
        if let Some(args) = arguments {
            request["arguments"] = args;
        }
        let answer = self.exchange(&mut stream, &request, command)?;
        expect_ok(command, answer)
    }

    /// `reload-rules`: Suricata re-reads its rule files and swaps in the new detection engine
    /// without stopping capture; returns when the swap is done.
    pub fn reload_rules(&self) -> Result<(), SocketError> {
        self.command("reload-rules", None).map(drop)
    }

    /// `ruleset-stats`: the rules loaded and failed, summed over detection engines.
    pub fn ruleset_stats(&self) -> Result<(u64, u64), SocketError> {
        let message = self.command("ruleset-stats", None)?;
        let engines = message.as_array().ok_or_else(|| SocketError::Protocol {
            step: "ruleset-stats".into(),
            answer: shorten(&message.to_string()),
        })?;
        let sum = |key: &str| engines.iter().filter_map(|e| e[key].as_u64()).sum();
        Ok((sum("rules_loaded"), sum("rules_failed")))
    }

    fn exchange(
        &self,
        stream: &mut UnixStream,
        request: &Value,
        step: &str,
    ) -> Result<Value, SocketError> {
        let io = |source| SocketError::Io {
            path: self.path.clone(),
            step: step.to_string(),
            source,
        };
        let mut line = request.to_string();
        line.push('\n');
        stream.write_all(line.as_bytes()).map_err(io)?;
        // Answers carry no length or terminator the protocol guarantees: read until the bytes
        // so far parse as one JSON value.
        let mut buf = Vec::new();
        let mut chunk = [0u8; 8192];
        loop {
            let n = stream.read(&mut chunk).map_err(io)?;
            if n == 0 {
                return Err(SocketError::Protocol {
                    step: step.to_string(),
                    answer: format!(
                        "connection closed after {:?}",
                        shorten(&String::from_utf8_lossy(&buf))
                    ),
                });
            }
            buf.extend_from_slice(&chunk[..n]);
            if let Ok(v) = serde_json::from_slice::<Value>(&buf) {
                return Ok(v);
            }
            if buf.len() > MAX_ANSWER_BYTES {
                return Err(SocketError::Protocol {
                    step: step.to_string(),
                    answer: format!("more than {MAX_ANSWER_BYTES} bytes"),
                });
            }
        }
    }
}

fn expect_ok(step: &str, answer: Value) -> Result<Value, SocketError> {
    match answer["return"].as_str() {
        Some("OK") => Ok(answer.get("message").cloned().unwrap_or(Value::Null)),
        Some("NOK") => Err(SocketError::Refused {
            command: step.to_string(),
            message: answer["message"]
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| answer["message"].to_string()),
        }),
        _ => Err(SocketError::Protocol {
            step: step.to_string(),
            answer: shorten(&answer.to_string()),
        }),
    }
}

fn shorten(s: &str) -> String {
    s.chars().take(300).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixListener;

    /// Plays Suricata's side of one connection: checks the handshake, answers the command.
    fn serve_once(listener: UnixListener, answer: Value) -> std::thread::JoinHandle<Vec<Value>> {
        std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut seen = Vec::new();
            for reply in [json!({"return": "OK"}), answer] {
                let mut buf = vec![0u8; 4096];
                let n = s.read(&mut buf).unwrap();
                assert_eq!(
                    buf[n - 1],
                    b'\n',
                    "protocol 0.2 messages end with a newline"
                );
                seen.push(serde_json::from_slice(&buf[..n]).unwrap());
                // Split the answer over two writes: the client must wait for the whole value.
                let text = reply.to_string();
                let (a, b) = text.split_at(text.len() / 2);
                s.write_all(a.as_bytes()).unwrap();
                std::thread::sleep(Duration::from_millis(20));
                s.write_all(b.as_bytes()).unwrap();
            }
            seen
        })
    }

    #[test]
    fn handshake_then_command() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        let listener = UnixListener::bind(&path).unwrap();
        let server = serve_once(
            listener,
            json!({"return": "OK", "message": [{"id": 0, "rules_loaded": 7, "rules_failed": 1}]}),
        );
        let client = SuricataSocket::new(&path, Duration::from_secs(5));
        assert_eq!(client.ruleset_stats().unwrap(), (7, 1));
        let seen = server.join().unwrap();
        assert_eq!(seen[0], json!({"version": "0.2"}));
        assert_eq!(seen[1], json!({"command": "ruleset-stats"}));
    }

    #[test]
    fn refusal_and_absence_are_told_apart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        let client = SuricataSocket::new(&path, Duration::from_secs(5));
        assert!(client.reload_rules().unwrap_err().is_not_running());
        let listener = UnixListener::bind(&path).unwrap();
        let server = serve_once(
            listener,
            json!({"return": "NOK", "message": "Reload already in progress"}),
        );
        let err = client.reload_rules().unwrap_err();
        assert!(
            matches!(&err, SocketError::Refused { message, .. } if message.contains("in progress")),
            "{err}"
        );
        server.join().unwrap();
    }
}
