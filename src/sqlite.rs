//! The embedded backend's database: one SQLite file under `data_dir`, owned by one thread.
//!
//! Every Store and Queue operation of the embedded backend is a job sent to that thread, so
//! no actix worker or actor ever blocks on disk. The thread runs the jobs that are waiting
//! together in one transaction (group commit), each inside its own savepoint so a failing job
//! changes nothing, and answers the callers only after the commit: "accepted" means on disk.
//!
//! Durability: WAL with `synchronous = NORMAL`, which survives a crash or `kill -9` of the
//! process (the commit is in the OS before we answer) but not a power cut of the machine.
use std::path::Path;
use std::sync::mpsc;

use rusqlite::Connection;
use tokio::sync::oneshot;

use crate::backend::BackendError;

/// How many waiting jobs one transaction takes at most.
const MAX_BATCH: usize = 512;

/// What a job hands back to the thread: whether it succeeded, and how to answer its caller
/// once the transaction's fate is known.
struct Completion {
    ok: bool,
    answer: Answer,
}

/// Answers a job's caller, given whether its transaction committed.
type Answer = Box<dyn FnOnce(Result<(), String>)>;

type Job = Box<dyn FnOnce(&Connection) -> Completion + Send>;

/// A handle to the database thread. Cheap to share; the thread ends when the last handle
/// is dropped.
pub struct Database {
    jobs: mpsc::Sender<Job>,
}

impl Database {
    /// Opens (creating if needed) `data_dir/junebug.sqlite3` and applies `schema`.
    pub fn open(data_dir: &Path, schema: &str) -> Result<Database, BackendError> {
        let fail = |e: &dyn std::fmt::Display| BackendError::new("sqlite", e.to_string());
        std::fs::create_dir_all(data_dir)
            .map_err(|e| fail(&format!("cannot create {}: {e}", data_dir.display())))?;
        let path = data_dir.join("junebug.sqlite3");
        let conn =
            Connection::open(&path).map_err(|e| fail(&format!("{}: {e}", path.display())))?;
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;",
        )
        .map_err(|e| fail(&e))?;
        conn.execute_batch(schema).map_err(|e| fail(&e))?;
        let (jobs, inbox) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("junebug-sqlite".into())
            .spawn(move || run(conn, inbox))
            .map_err(|e| fail(&e))?;
        Ok(Database { jobs })
    }

    /// Runs `f` on the database thread, inside a transaction, and returns its result once
    /// that transaction is committed.
    pub async fn call<T, F>(&self, f: F) -> Result<T, BackendError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job: Job = Box::new(move |conn| {
            let result = f(conn);
            Completion {
                ok: result.is_ok(),
                answer: Box::new(move |committed| {
                    let outcome = match (result, committed) {
                        (Ok(value), Ok(())) => Ok(value),
                        (Err(e), _) => Err(e.to_string()),
                        (Ok(_), Err(e)) => Err(e),
                    };
                    let _ = reply.send(outcome);
                }),
            }
        });
        self.jobs
            .send(job)
            .map_err(|_| BackendError::new("sqlite", "the database thread has stopped"))?;
        answer
            .await
            .map_err(|_| BackendError::new("sqlite", "the database thread has stopped"))?
            .map_err(|e| BackendError::new("sqlite", e))
    }
}

impl Database {
    /// Runs `f` on the database thread without waiting for it; `then` runs on that thread
    /// after the commit (for cleanups from `Drop`, which cannot wait).
    pub fn submit<F, G>(&self, f: F, then: G)
    where
        F: FnOnce(&Connection) -> rusqlite::Result<()> + Send + 'static,
        G: FnOnce() + Send + 'static,
    {
        let job: Job = Box::new(move |conn| Completion {
            ok: f(conn).is_ok(),
            answer: Box::new(move |_| then()),
        });
        // The thread is gone only at exit, when there is nothing left to clean up.
        let _ = self.jobs.send(job);
    }
}

/// The database thread: take what waits, run it in one transaction, answer.
fn run(conn: Connection, inbox: mpsc::Receiver<Job>) {
    while let Ok(first) = inbox.recv() {
        let batch: Vec<Job> = std::iter::once(first)
            .chain(std::iter::from_fn(|| inbox.try_recv().ok()).take(MAX_BATCH - 1))
            .collect();
        let committed = run_batch(&conn, batch);
        for answer in committed.1 {
            answer(committed.0.clone());
        }
    }
}

/// Runs one statement without parameters through the statement cache.
fn run_cached(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([]).map(drop)
}

fn run_batch(conn: &Connection, batch: Vec<Job>) -> (Result<(), String>, Vec<Answer>) {
    if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
        let answers = batch.into_iter().map(|job| job(conn).answer).collect();
        return (Err(e.to_string()), answers);
    }
    let mut answers = Vec::with_capacity(batch.len());
    for job in batch {
        // Cached statements: a job's savepoint costs no SQL parsing (this runs per job).
        let savepoint = run_cached(conn, "SAVEPOINT job");
        let done = job(conn);
        if savepoint.is_ok() {
            if !done.ok {
                let _ = run_cached(conn, "ROLLBACK TO job");
            }
            let _ = run_cached(conn, "RELEASE job");
        }
        answers.push(done.answer);
    }
    let committed = conn.execute_batch("COMMIT").map_err(|e| {
        let _ = conn.execute_batch("ROLLBACK");
        e.to_string()
    });
    (committed, answers)
}
