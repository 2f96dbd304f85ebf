//! SMPP benchmark: N messages through the HTTP API into one `smpp` channel bound to the test
//! SMSC (tests/peers/smsc, the npm `smpp` package in server mode) on 127.0.0.1.
//!
//! ```text
//! cargo build --release && cargo run --release --example smpp_bench -- [N] [C] [embedded|production] [receipts]
//! ```
//! (defaults: N = 5000, C = 16, embedded.) `production` runs the daemon on Redis and RabbitMQ
//! (`JUNEBUG_REDIS__URL` / `JUNEBUG_AMQP__URL` if set, else 127.0.0.1:6379 and
//! guest:guest@127.0.0.1:5672) under a key and queue prefix of its own, removed afterwards.
//!
//! The bench starts the SMSC (node) and the release daemon, creates one `smpp` channel with
//! no rate limit and the default windows (10 messages in flight in the channel, 10 submit_sm
//! awaiting their response on the session), then POSTs N sends (each to its own number,
//! `+2783` and the zero-padded index) from C concurrent clients, each with an `event_url` on
//! a small HTTP receiver of its own. It waits until the SMSC has seen N submit_sm and the
//! receiver N `submitted` events, and prints:
//!
//! - HTTP accepted/s: N over the time from the first POST to the last `201`;
//! - submit_sm/s and `submitted` events/s: N over the time from the first `201` to the last
//!   submit_sm (or event);
//! - p50/p99 from accept (the client has its `201`) to submit_sm, matched by `to`, and from
//!   the POST being sent to submit_sm. The submit_sm time is when the bench reads the SMSC's
//!   line for it from the pipe, so it includes the SMSC's decoding and the pipe (well under a
//!   millisecond when the machine is not saturated; on 2 busy cores it can be more). A
//!   submit_sm can reach the SMSC before the client has its `201` (the message is committed,
//!   so the channel may take it while the answer is on its way): it counts as 0, and is
//!   counted. With C clients sending faster than the channel submits, both latencies are
//!   mostly time spent waiting in the queue behind the backlog;
//! - the daemon's CPU seconds per message (`utime + stime` from /proc, from the first POST
//!   until everything arrived), with the SMSC's and the bench's own CPU beside it, since all
//!   three share the machine;
//! - the daemon's peak RSS (`VmHWM`).
//!
//! Receipts are off by default (the SMSC's `receipts` command; the channel still asks for
//! them and records the provider ids to match them), so the figures are about the send path. Pass `receipts` as the fourth argument to keep them on: then the bench
//! also waits for N `delivery_succeeded` events and prints their rate, and the daemon's CPU
//! includes matching the receipts and posting those events.
mod support;

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use serde_json::{json, Value};
use support::production::Production;
use support::smsc::{wait_for, Smsc};
use support::{cpu_seconds, peak_rss_kib, percentiles, start_with};

/// What the SMSC and the event receiver saw, each stamped when the bench saw it.
#[derive(Default)]
struct Seen {
    /// The first submit_sm for each destination_addr.
    submits: HashMap<String, Instant>,
    /// Every submit_sm, a number sent twice included.
    submit_count: usize,
    /// `submitted` events.
    submitted: Vec<Instant>,
    /// `delivery_succeeded` events.
    delivered: Vec<Instant>,
    /// Other events, by type (`rejected`, `delivery_failed` …).
    other_events: HashMap<String, usize>,
}

type Shared = Arc<Mutex<Seen>>;

fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().map_or(5000, |a| a.parse().expect("N"));
    let concurrency: usize = args.next().map_or(16, |a| a.parse().expect("C"));
    let production = match args.next().as_deref() {
        None | Some("embedded") => false,
        Some("production") => true,
        Some(other) => panic!("backend {other:?}: embedded or production"),
    };
    let receipts = match args.next().as_deref() {
        None => false,
        Some("receipts") => true,
        Some(other) => panic!("{other:?}: the fourth argument can only be `receipts`"),
    };
    assert!(n > 0 && concurrency > 0, "N and C must be positive");

    let seen = Shared::default();
    let mut run = Run {
        daemon: None,
        smsc: None,
        production: production.then(|| Production::new("smpp-bench")),
        channel: None,
    };

    support::smsc::install_packages();
    let on_submit = {
        let seen = seen.clone();
        move |event: &Value, at: Instant| {
            let to = event["destination_addr"].as_str().unwrap_or_default();
            let mut seen = seen.lock().unwrap();
            seen.submit_count += 1;
            seen.submits.entry(to.to_owned()).or_insert(at);
        }
    };
    let (mut smsc, smsc_events) = Smsc::start(&json!({}), on_submit);
    let smsc_pid = smsc.child.id();
    if !receipts {
        smsc.command(json!({"cmd": "receipts", "on": false}));
        wait_for(&smsc_events, "done");
    }
    let port = smsc.port;
    run.smsc = Some(smsc);
    let receiver = start_receiver(seen.clone());

    let dir = tempfile::tempdir().expect("temp dir");
    let logs = dir.path().join("logs");
    let env = run.production.as_ref().map(Production::env);
    let daemon = start_with(&dir.path().join("data"), |command| {
        command.arg("--logging-path").arg(&logs);
        match env {
            Some(env) => {
                command.envs(env);
            }
            None => {
                command
                    .env_remove("JUNEBUG_REDIS__URL")
                    .env_remove("JUNEBUG_AMQP__URL");
            }
        }
    });
    let pid = daemon.child.id();
    let api = daemon.url.clone();
    run.daemon = Some(daemon);

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let client = reqwest::Client::new();
    let channel = json!({
        "type": "smpp",
        "config": {"host": "127.0.0.1", "port": port, "system_id": "junebug", "password": "secret"},
        "mo_url": format!("{receiver}/mo"),
        "status_url": format!("{receiver}/status"),
    });
    let created: Value = runtime.block_on(async {
        let resp = client
            .post(format!("{api}/channels/"))
            .json(&channel)
            .send()
            .await
            .expect("create the channel");
        resp.json().await.expect("json")
    });
    let id = created["result"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no channel created: {created}"))
        .to_owned();
    run.channel = Some(id.clone());
    wait_for(&smsc_events, "bind");
    let url = format!("{api}/channels/{id}/messages/");
    let event_url = format!("{receiver}/events");

    let cpu_before = (cpu_seconds(pid), cpu_seconds(smsc_pid), own_cpu_seconds());
    let started = Instant::now();
    let next = AtomicUsize::new(0);
    let mut accepted: Vec<Option<(Instant, Instant)>> = vec![None; n];
    let results: Vec<(usize, Instant, Instant)> = runtime.block_on(async {
        let tasks = (0..concurrency).map(|_| {
            let (client, url, event_url, next) = (&client, &url, &event_url, &next);
            async move {
                let mut own = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n {
                        return own;
                    }
                    let body = json!({"to": to(i), "from": "1234",
                                      "content": format!("bench message {i}"),
                                      "event_url": event_url});
                    let posted = Instant::now();
                    let resp = client.post(url).json(&body).send().await.expect("send");
                    let status = resp.status().as_u16();
                    if status != 201 {
                        let text = resp.text().await.unwrap_or_default();
                        panic!("send {i}: {status} {text}");
                    }
                    own.push((i, posted, Instant::now()));
                }
            }
        });
        futures_util::future::join_all(tasks)
            .await
            .into_iter()
            .flatten()
            .collect()
    });
    for (i, posted, at) in results {
        accepted[i] = Some((posted, at));
    }
    let (posted, accepted): (Vec<Instant>, Vec<Instant>) =
        accepted.into_iter().map(|a| a.expect("sent")).unzip();
    let first_accept = *accepted.iter().min().expect("one send");
    let last_accept = *accepted.iter().max().expect("one send");

    // Generous: a minute, plus 20 ms a message.
    let deadline = Instant::now() + Duration::from_secs(60) + Duration::from_millis(20) * n as u32;
    let complete = |s: &Seen| {
        s.submits.len() >= n && s.submitted.len() >= n && (!receipts || s.delivered.len() >= n)
    };
    let reached = loop {
        if complete(&seen.lock().unwrap()) {
            break true;
        }
        if Instant::now() > deadline {
            break false;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let cpu = cpu_seconds(pid) - cpu_before.0;
    let smsc_cpu = cpu_seconds(smsc_pid) - cpu_before.1;
    let bench_cpu = own_cpu_seconds() - cpu_before.2;
    let peak = peak_rss_kib(pid);

    let seen = seen.lock().unwrap();
    let backend = if production {
        "Redis + RabbitMQ"
    } else {
        "embedded"
    };
    let receipts_state = if receipts { "on" } else { "off" };
    println!(
        "{n} sends to one smpp channel ({backend}, receipts {receipts_state}), \
         {concurrency} concurrent clients"
    );
    if !reached {
        println!(
            "NOT COMPLETE at the deadline: {} of {n} numbers reached the SMSC, {} submitted \
             events, {} delivery_succeeded events; the figures below cover what arrived",
            seen.submits.len(),
            seen.submitted.len(),
            seen.delivered.len()
        );
    }
    let rate = |count: usize, from: Instant, to: Option<Instant>| match to {
        Some(to) if to > from => format!("{:.0}/s", count as f64 / (to - from).as_secs_f64()),
        _ => "-".to_owned(),
    };
    println!(
        "HTTP accepted: {} ({n} in {:.2?})",
        rate(n, started, Some(last_accept)),
        last_accept - started
    );
    let last_submit = seen.submits.values().max().copied();
    println!(
        "submit_sm: {} ({} seen, {} numbers; first 201 to last submit_sm {:.2?})",
        rate(seen.submits.len(), first_accept, last_submit),
        seen.submit_count,
        seen.submits.len(),
        last_submit.map_or(Duration::ZERO, |t| t
            .saturating_duration_since(first_accept))
    );
    let last_submitted = seen.submitted.iter().max().copied();
    println!(
        "submitted events: {} ({} received)",
        rate(seen.submitted.len(), first_accept, last_submitted),
        seen.submitted.len()
    );
    if receipts {
        let last = seen.delivered.iter().max().copied();
        println!(
            "delivery_succeeded events: {} ({} received)",
            rate(seen.delivered.len(), first_accept, last),
            seen.delivered.len()
        );
    }
    if !seen.other_events.is_empty() {
        println!("other events: {:?}", seen.other_events);
    }
    let early = (0..n)
        .filter(|&i| seen.submits.get(&to(i)).is_some_and(|s| *s < accepted[i]))
        .count();
    let from_accept = latencies(&seen, &accepted);
    let from_post = latencies(&seen, &posted);
    if let (Some(accept), Some(post)) = (percentiles(&from_accept), percentiles(&from_post)) {
        println!("accept to submit_sm: {accept} ({early} submit_sm before the client had its 201)");
        println!("POST sent to submit_sm: {post}");
    }
    println!(
        "daemon CPU: {:.2} s, {:.0} µs per message (SMSC {:.2} s, bench {:.2} s)",
        cpu,
        cpu / n as f64 * 1e6,
        smsc_cpu,
        bench_cpu
    );
    println!(
        "daemon peak RSS: {peak} KiB ({:.1} MiB)",
        peak as f64 / 1024.0
    );
    drop(seen);
    drop(run);
    drop(dir);
    if !reached {
        std::process::exit(1);
    }
}

/// The `to` of send `i`.
fn to(i: usize) -> String {
    format!("+2783{i:07}")
}

/// For each send whose submit_sm was seen, the time from `start[i]` to it (0 if before).
fn latencies(seen: &Seen, start: &[Instant]) -> Vec<Duration> {
    let mut latencies: Vec<Duration> = (0..start.len())
        .filter_map(|i| {
            Some(
                seen.submits
                    .get(&to(i))?
                    .saturating_duration_since(start[i]),
            )
        })
        .collect();
    latencies.sort();
    latencies
}

/// CPU time of this process, seconds.
fn own_cpu_seconds() -> f64 {
    cpu_seconds(std::process::id())
}

/// Starts the receiver of the channel's callbacks on its own thread; its base URL.
fn start_receiver(seen: Shared) -> String {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            let server = HttpServer::new(move || {
                App::new()
                    .app_data(web::Data::new(seen.clone()))
                    .default_service(web::to(receive))
            })
            .workers(1)
            .bind("127.0.0.1:0")
            .expect("bind the receiver");
            tx.send(server.addrs()[0]).expect("address");
            server.run().await
        })
    });
    let address = rx.recv().expect("the receiver started");
    format!("http://{address}")
}

/// Counts an event (on `/events`); answers 200 to everything.
async fn receive(request: HttpRequest, seen: web::Data<Shared>, body: web::Bytes) -> HttpResponse {
    let at = Instant::now();
    if request.path() == "/events" {
        let event: Value = serde_json::from_slice(&body).unwrap_or_default();
        let mut seen = seen.lock().unwrap();
        match event["event_type"].as_str().unwrap_or("unreadable") {
            "submitted" => seen.submitted.push(at),
            "delivery_succeeded" => seen.delivered.push(at),
            other => *seen.other_events.entry(other.to_owned()).or_default() += 1,
        }
    }
    HttpResponse::Ok().finish()
}

/// What to stop and clean up at the end, even after a panic: the daemon first, then the
/// SMSC, then the production keys and queues.
struct Run {
    daemon: Option<support::Daemon>,
    smsc: Option<Smsc>,
    production: Option<Production>,
    channel: Option<String>,
}

impl Drop for Run {
    fn drop(&mut self) {
        if let Some(daemon) = &mut self.daemon {
            let _ = daemon.child.kill();
            let _ = daemon.child.wait();
        }
        if let Some(smsc) = &mut self.smsc {
            smsc.stop();
        }
        if let Some(production) = self.production.take() {
            let channel = self.channel.take();
            // Not inside any runtime, whatever panicked: a thread of its own.
            let _ = std::thread::spawn(move || production.clean(channel.as_deref())).join();
        }
    }
}
