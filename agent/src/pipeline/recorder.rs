//! A [`Backend`] for unit tests that records what it is asked, instead of running anything.

use std::sync::Mutex;
use std::time::Duration;

use super::{Backend, BackendError, BoxFuture, Component};

/// Records each call as "start suricata", "restart vector" and so on.
#[derive(Default)]
pub struct Recorder(Mutex<Vec<String>>);

impl Recorder {
    /// Appends a call (also for other traits the test gives it).
    pub fn push(&self, what: String) {
        self.0.lock().unwrap().push(what);
    }

    /// Every call so far, in order.
    pub fn calls(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
}

impl Backend for Recorder {
    fn start(&self, c: Component) -> BoxFuture<'_, Result<(), BackendError>> {
        self.push(format!("start {}", c.name()));
        Box::pin(async { Ok(()) })
    }
    fn stop(&self, c: Component, _: Duration) -> BoxFuture<'_, Result<(), BackendError>> {
        self.push(format!("stop {}", c.name()));
        Box::pin(async { Ok(()) })
    }
    fn restart(&self, c: Component) -> BoxFuture<'_, Result<(), BackendError>> {
        self.push(format!("restart {}", c.name()));
        Box::pin(async { Ok(()) })
    }
    fn reload(&self, c: Component) -> BoxFuture<'_, Result<(), BackendError>> {
        self.push(format!("reload {}", c.name()));
        Box::pin(async { Ok(()) })
    }
    fn pid(&self, _: Component) -> Option<u32> {
        None
    }
}
