//! A server process a test starts (ngIRCd, Atheme, Prosody): run from a program and its arguments,
//! so that it can be killed and started again on the same port; killed, by its PID, when
//! dropped, so that a failing test never leaves one running.
use std::ffi::OsString;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tokio::net::TcpStream;

use super::WAIT;

/// A running server process.
pub struct ServerProcess {
    /// Its name in failure messages.
    name: &'static str,
    program: &'static str,
    args: Vec<OsString>,
    /// The port it listens on once ready (the last one it opens, if several); none for a
    /// process that only dials out (the caller knows how to tell it is ready).
    listens_on: Option<u16>,
    /// Its log file, shown when it fails to start.
    log: Option<PathBuf>,
    child: Option<Child>,
}

impl ServerProcess {
    /// Runs `program` with `args` in the foreground and waits until it listens on
    /// `listens_on`, if given.
    pub async fn start(
        name: &'static str,
        program: &'static str,
        args: Vec<OsString>,
        listens_on: Option<u16>,
        log: Option<PathBuf>,
    ) -> ServerProcess {
        let mut server = ServerProcess {
            name,
            program,
            args,
            listens_on,
            log,
            child: None,
        };
        server.launch().await;
        server
    }

    async fn launch(&mut self) {
        let child = Command::new(self.program)
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{} does not start: {e}", self.name));
        self.child = Some(child);
        if let Some(port) = self.listens_on {
            self.await_listening(port).await;
        }
    }

    /// Waits until the process listens on its port. Panics, with its log, if it exits first
    /// or does not listen within [`WAIT`].
    async fn await_listening(&mut self, port: u16) {
        let deadline = tokio::time::Instant::now() + WAIT;
        let name = self.name;
        loop {
            if TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
                return;
            }
            let child = self.child.as_mut().expect("launched");
            if let Ok(Some(status)) = child.try_wait() {
                panic!("{name} exited at start: {status}\n{}", self.log());
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{name} did not listen on {port} in time\n{}",
                self.log()
            );
            // Nothing to wait on but the port itself: poll it, as a client would retry.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// What the process logged, if it keeps a log.
    pub fn log(&self) -> String {
        self.log
            .as_ref()
            .and_then(|file| std::fs::read_to_string(file).ok())
            .unwrap_or_default()
    }

    /// Kills the process (every connection drops at once).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Kills the process and starts it again with the same arguments.
    pub async fn restart(&mut self) {
        self.kill();
        self.launch().await;
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}
