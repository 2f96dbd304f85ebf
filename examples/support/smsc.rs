//! The test SMSC (`tests/peers/smsc/smsc.js`, the npm `smpp` package in server mode) as the
//! benchmarks run it: a child process under node, its submit_sm lines handed to a callback
//! on a reader thread, every other line to a channel.
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

/// The folder of the SMSC script and its npm packages.
pub fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers/smsc")
}

/// Whether the script's npm packages are installed.
pub fn packages_installed() -> bool {
    dir().join("node_modules/smpp").exists()
}

/// Installs the script's pinned npm packages (`npm ci`) if they are missing.
pub fn install_packages() {
    if packages_installed() {
        return;
    }
    let dir = dir();
    let status = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund", "--prefix"])
        .arg(&dir)
        .status()
        .expect("npm (Node.js) is installed");
    assert!(status.success(), "npm ci failed in {}", dir.display());
}

/// The SMSC script, running under node.
pub struct Smsc {
    pub child: Child,
    stdin: ChildStdin,
    /// Its port on 127.0.0.1.
    pub port: u16,
}

impl Smsc {
    /// Starts it with the script's `options` (a JSON object, see the script); its packages
    /// must be installed. Each submit_sm line goes to `on_submit` with the instant the bench
    /// read it, every other line to the returned receiver.
    pub fn start(
        options: &Value,
        mut on_submit: impl FnMut(&Value, Instant) + Send + 'static,
    ) -> (Smsc, mpsc::Receiver<Value>) {
        assert!(
            packages_installed(),
            "the test SMSC's npm packages are missing: npm ci --prefix tests/peers/smsc"
        );
        let mut child = Command::new("node")
            .arg(dir().join("smsc.js"))
            .arg(options.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("node runs the SMSC");
        let stdin = child.stdin.take().expect("stdin");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, events) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let at = Instant::now();
                let Ok(event) = serde_json::from_str::<Value>(&line) else {
                    continue;
                };
                if event["event"] == "submit_sm" {
                    on_submit(&event, at);
                } else {
                    // Nobody may listen any more: the lines are dropped then.
                    let _ = tx.send(event);
                }
            }
        });
        let listening = wait_for(&events, "listening");
        let port = listening["port"].as_u64().expect("port") as u16;
        (Smsc { child, stdin, port }, events)
    }

    /// Sends one command line (see the script).
    pub fn command(&mut self, command: Value) {
        writeln!(self.stdin, "{command}").expect("SMSC stdin");
        self.stdin.flush().expect("SMSC stdin");
    }

    /// Stops it (by its PID) and reaps it.
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits (at most 30 s) for the SMSC's next line of `kind`, skipping others.
pub fn wait_for(events: &mpsc::Receiver<Value>, kind: &str) -> Value {
    try_wait_for(events, kind, Duration::from_secs(30))
        .unwrap_or_else(|| panic!("the SMSC printed no {kind:?} line"))
}

/// Waits at most `timeout` for the SMSC's next line of `kind`, skipping others.
pub fn try_wait_for(
    events: &mpsc::Receiver<Value>,
    kind: &str,
    timeout: Duration,
) -> Option<Value> {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let event = events.recv_timeout(left).ok()?;
        if event["event"] == kind {
            return Some(event);
        }
    }
}
