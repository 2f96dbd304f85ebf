//! The embedded backend's database: one SQLite file under `data_dir`, owned by one thread.
//!
//! Every Store and Queue operation of the embedded backend is a job sent to that thread, so
//! no actix worker or actor ever blocks on disk. The thread runs the jobs that are waiting
//! together in one transaction (group commit), each inside its own savepoint so a failing job
//! changes nothing, and answers the callers only after the commit: "accepted" means on disk.
//!
//! Durability: WAL with `synchronous = NORMAL`, which survives a crash or `kill -9` of the
//! process (the commit is in the OS before we answer) but not a power cut of the machine.
//!
//! Cost: the file is the daemon's alone (`locking_mode = EXCLUSIVE`), so a transaction takes
//! no file locks and the WAL index lives in the heap, not in a shared-memory file; a second
//! daemon on the same `data_dir` is refused instead of sharing it. The WAL is checkpointed
//! every [`CHECKPOINT_PAGES`] pages rather than SQLite's 1,000: the hot pages (queue,
//! outbox, indexes) are rewritten by every commit, and a checkpoint copies each page once
//! however many commits rewrote it, so rarer checkpoints copy (and fsync) far less.
//! `temp_store = MEMORY` keeps the statement journals of the jobs' savepoints (the page
//! images `ROLLBACK TO` would restore) in memory: in a temp file they cost a write system
//! call per page a job touches, more than the WAL itself.
use std::path::Path;
use std::sync::mpsc;

use rusqlite::Connection;
use tokio::sync::oneshot;

use crate::backend::BackendError;

/// WAL pages between checkpoints (about 16 MiB of WAL at 4 KiB pages).
const CHECKPOINT_PAGES: u32 = 4000;

/// Prepared statements kept for reuse.
const STATEMENT_CACHE: usize = 128;

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
/// is dropped, and dropping it waits for that (the file is then free to open again).
pub struct Database {
    jobs: Option<mpsc::Sender<Job>>,
    thread: Option<std::thread::JoinHandle<()>>,
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
        // Exclusive locking first: WAL then keeps its index in the heap (no -shm file).
        conn.execute_batch(&format!(
            "PRAGMA locking_mode = EXCLUSIVE; PRAGMA journal_mode = WAL;
             PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;
             PRAGMA wal_autocheckpoint = {CHECKPOINT_PAGES}; PRAGMA temp_store = MEMORY;"
        ))
        .map_err(|e| fail(&e))?;
        conn.execute_batch(schema).map_err(|e| fail(&e))?;
        // Room for every statement of the per-message path (rusqlite keeps 16 by default,
        // fewer than the store, queue and outbox use: they would push each other out).
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        let (jobs, inbox) = mpsc::channel::<Job>();
        let thread = std::thread::Builder::new()
            .name("junebug-sqlite".into())
            .spawn(move || run(conn, inbox))
            .map_err(|e| fail(&e))?;
        Ok(Database {
            jobs: Some(jobs),
            thread: Some(thread),
        })
    }

    /// Sends a job to the thread; `None` once it has stopped.
    fn send(&self, job: Job) -> Option<()> {
        self.jobs.as_ref()?.send(job).ok()
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
        self.send(job)
            .ok_or_else(|| BackendError::new("sqlite", "the database thread has stopped"))?;
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
        let _ = self.send(job);
    }
}

impl Drop for Database {
    /// Lets the thread finish the jobs sent, then waits for it to close the file, so the
    /// exclusive lock is released when this returns (unless the last handle goes in one of
    /// the thread's own jobs, which cannot wait for itself; the thread ends right after).
    fn drop(&mut self) {
        self.jobs = None;
        if let Some(thread) = self.thread.take() {
            if thread.thread().id() != std::thread::current().id() {
                let _ = thread.join();
            }
        }
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
