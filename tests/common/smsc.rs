//! A real SMSC for the SMPP tests: `tests/peers/smsc/smsc.js`, built on the npm `smpp`
//! package, pinned in `tests/peers/smsc/package-lock.json` and installed with `npm ci` the
//! first time a test needs it (`.ci/run` also does it up front).
//!
//! It reports what it sees as JSON lines ([`Smsc::expect`] waits for one) and takes commands
//! ([`Smsc::command`]) to send MO messages, throttle, drop connections or stop answering.
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};

use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::WAIT;

/// A running SMSC; stopped (by its PID) when dropped.
pub struct Smsc {
    child: Child,
    stdin: ChildStdin,
    events: mpsc::UnboundedReceiver<Value>,
    /// Events read while waiting for another kind, in order.
    backlog: Vec<Value>,
    /// Its port on 127.0.0.1.
    pub port: u16,
}

impl Smsc {
    /// Starts an SMSC that accepts `system_id` "junebug" with password "secret", with the
    /// script's `options` on top.
    pub async fn start(options: Value) -> Smsc {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers/smsc");
        install_packages(&dir);
        let mut child = Command::new("node")
            .arg(dir.join("smsc.js"))
            .arg(options.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("node runs the SMSC");
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, events) = mpsc::unbounded_channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if let Ok(event) = serde_json::from_str::<Value>(&line) {
                    if tx.send(event).is_err() {
                        return;
                    }
                }
            }
        });
        let mut smsc = Smsc {
            child,
            stdin,
            events,
            backlog: Vec::new(),
            port: 0,
        };
        let listening = smsc.expect("listening").await;
        smsc.port = listening["port"].as_u64().unwrap() as u16;
        smsc
    }

    /// A channel config binding to this SMSC, with `extra` keys on top.
    pub fn channel_config(&self, extra: Value) -> Value {
        let mut config = json!({
            "host": "127.0.0.1", "port": self.port,
            "system_id": "junebug", "password": "secret",
            "reconnect_initial": 0.1, "reconnect_max": 0.5,
        });
        for (key, value) in extra.as_object().unwrap() {
            config[key] = value.clone();
        }
        config
    }

    /// Sends a command (see the script for the list).
    pub fn command(&mut self, command: Value) {
        writeln!(self.stdin, "{command}").unwrap();
        self.stdin.flush().unwrap();
    }

    /// The next event of `kind` (events of other kinds stay for later calls).
    pub async fn expect(&mut self, kind: &str) -> Value {
        self.expect_where(kind, |_| true).await
    }

    /// The next event of `kind` for which `accept` holds.
    pub async fn expect_where(&mut self, kind: &str, accept: impl Fn(&Value) -> bool) -> Value {
        let matches = |event: &Value| event["event"] == kind && accept(event);
        if let Some(at) = self.backlog.iter().position(matches) {
            return self.backlog.remove(at);
        }
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let event = tokio::time::timeout_at(deadline, self.events.recv())
                .await
                .unwrap_or_else(|_| {
                    panic!(
                        "the SMSC saw no {kind} event; other events: {:?}",
                        self.backlog
                    )
                })
                .expect("the SMSC is running");
            if matches(&event) {
                return event;
            }
            self.backlog.push(event);
        }
    }

    /// Every event of `kind` seen so far, without waiting.
    pub fn seen(&mut self, kind: &str) -> Vec<Value> {
        while let Ok(event) = self.events.try_recv() {
            self.backlog.push(event);
        }
        let (seen, rest) = self.backlog.drain(..).partition(|e| e["event"] == kind);
        self.backlog = rest;
        seen
    }
}

/// Runs `npm ci` in `dir` unless its packages are there (once per test binary).
fn install_packages(dir: &Path) {
    static INSTALLED: std::sync::Mutex<bool> = std::sync::Mutex::new(false);
    let mut installed = INSTALLED.lock().unwrap_or_else(|e| e.into_inner());
    if *installed || dir.join("node_modules/smpp").exists() {
        *installed = true;
        return;
    }
    let status = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund", "--prefix"])
        .arg(dir)
        .status()
        .expect("npm (Node.js) is installed");
    assert!(status.success(), "npm ci failed in {}", dir.display());
    *installed = true;
}

impl Drop for Smsc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
