//! Side-by-side SMPP gateway benchmark: Kannel (bearerbox + smsbox, when installed) and
//! Junebug (embedded, then on Redis + RabbitMQ), one after the other, through the test SMSC
//! (tests/peers/smsc, the npm `smpp` package in server mode) with delivery receipts on, each
//! sent 100 ms after its submit_sm_resp.
//!
//! ```text
//! cargo build --release && cargo run --release --example gateway_bench -- [N] [C] [kannel] [embedded] [production] [window=W]
//! ```
//! (defaults: N = 10000 messages, C = 50 requests in flight, all three gateways.) Naming one or
//! more of `kannel`, `embedded`, `production` runs only those. It installs nothing: Kannel is
//! Debian's `kannel` package (`bearerbox` and `smsbox` on PATH; skipped when missing), Junebug
//! is target/release/junebug or `$SCALE_JUNEBUG_BIN`, and the SMSC's npm packages must be
//! installed (`npm ci --prefix tests/peers/smsc`). `production` uses Redis and RabbitMQ
//! (`JUNEBUG_REDIS__URL` / `JUNEBUG_AMQP__URL` if set, else 127.0.0.1:6379 and
//! guest:guest@127.0.0.1:5672) under a key and queue prefix of its own, removed afterwards.
//!
//! For each gateway the bench starts a fresh SMSC, starts the gateway bound to it (Kannel's
//! configuration is written into a temp dir: one `smpp` smsc, a sendsms user, internal DLR
//! storage, a spool store; everything on 127.0.0.1; Junebug gets one `smpp` channel with no
//! rate limit), then sends N messages, each to its own number (`+2783` and the zero-padded
//! index), keeping C requests in flight, with two callbacks per message asked of the gateway
//! on the bench's own HTTP sink:
//!
//! - Junebug: `POST /channels/{id}/messages/` with an `event_url` of its own; the sink counts
//!   `submitted` and `delivery_succeeded` events;
//! - Kannel: `GET /cgi-bin/sendsms` with `dlr-mask=9` (8: the SMSC accepted it, 1: delivered)
//!   and a `dlr-url` of its own with `type=%d`.
//!
//! It waits until the SMSC has seen every number and the sink both callbacks of every message
//! (or nothing moved for 30 s, or a deadline of 60 s + 20 ms a message), and prints:
//!
//! - messages/s: numbers seen at the SMSC over the time from the first request to the last
//!   submit_sm (and the HTTP accept rate, first request to last answer);
//! - the gateway's CPU per message: `utime + stime` from /proc, summed over its processes
//!   (bearerbox + smsbox; the daemon), from the first request until the last callback
//!   arrived; the SMSC's and the bench's own CPU beside it, as all share the 2 cores;
//! - the gateway's peak RSS (`VmHWM`, summed over its processes);
//! - accept (the client has its answer) to submit_sm at the SMSC, p50 and p99, matched by
//!   number; a submit_sm seen before the answer counts as 0;
//! - the submit_sm seen at the SMSC (numbers, and duplicates) and the callbacks the sink got;
//!
//! and at the end a table of all gateways with the ratio of Junebug to Kannel.
//!
//! Windows: both gateways keep their defaults unless `window=W` is given: Kannel's
//! `max-pending-submits` is 10, Junebug's session window (`window_size`) is 10, and a
//! Junebug channel keeps its session window full. `window=W` sets Kannel's
//! `max-pending-submits` and Junebug's `window_size`.
mod support;

use std::collections::{HashMap, HashSet};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use serde_json::{json, Value};
use support::production::Production;
use support::smsc::{try_wait_for, wait_for, Smsc};
use support::{cpu_seconds, ms, peak_rss_kib, percentiles, quantile, start_with};

/// How long the SMSC waits after a submit_sm_resp before sending its receipt.
const RECEIPT_DELAY_MS: u64 = 100;

/// The gateways the bench can measure.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Gateway {
    Kannel,
    JunebugEmbedded,
    JunebugProduction,
}

impl Gateway {
    fn name(self) -> &'static str {
        match self {
            Gateway::Kannel => "Kannel",
            Gateway::JunebugEmbedded => "Junebug embedded",
            Gateway::JunebugProduction => "Junebug Redis+RabbitMQ",
        }
    }
}

/// What the SMSC and the sink saw during one gateway's run, stamped when the bench saw it.
#[derive(Default)]
struct Seen {
    /// The first submit_sm of each message, by index.
    submits: HashMap<usize, Instant>,
    /// Every submit_sm, duplicates and unknown numbers included.
    submit_count: usize,
    /// Messages whose "accepted by the SMSC" callback arrived (`submitted`; DLR type 8).
    accepted: HashSet<usize>,
    /// Messages whose "delivered" callback arrived (`delivery_succeeded`; DLR type 1).
    delivered: HashSet<usize>,
    /// Every callback request on the run's event paths.
    callbacks: usize,
    /// Callbacks of a kind already seen for the message.
    duplicate_callbacks: usize,
    /// Other callbacks, by kind (`rejected`, `delivery_failed`, DLR type 2 …).
    other: HashMap<String, usize>,
    /// When the last callback arrived.
    last_callback: Option<Instant>,
}

/// The callback sink's state: the run it counts for, and what it counted.
#[derive(Default)]
struct Sink {
    run: AtomicUsize,
    seen: Mutex<Seen>,
}

fn main() {
    let mut n = 10_000usize;
    let mut concurrency = 50usize;
    let mut window: Option<usize> = None;
    let mut chosen = Vec::new();
    let mut numbers = 0;
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "kannel" => chosen.push(Gateway::Kannel),
            "embedded" => chosen.push(Gateway::JunebugEmbedded),
            "production" => chosen.push(Gateway::JunebugProduction),
            _ if arg.starts_with("window=") => {
                window = Some(arg["window=".len()..].parse().expect("window=W: a number"));
            }
            _ => {
                let value: usize = arg.parse().unwrap_or_else(|_| {
                    panic!("{arg:?}: expected N, C, kannel, embedded, production or window=W")
                });
                match numbers {
                    0 => n = value,
                    1 => concurrency = value,
                    _ => panic!("{arg:?}: only N and C are numbers"),
                }
                numbers += 1;
            }
        }
    }
    assert!(n > 0 && concurrency > 0, "N and C must be positive");
    assert!(
        n < 10_000_000,
        "N must be below 10,000,000 (seven-digit numbers)"
    );
    if chosen.is_empty() {
        chosen = vec![
            Gateway::Kannel,
            Gateway::JunebugEmbedded,
            Gateway::JunebugProduction,
        ];
    }

    let kannel = kannel_version();
    if chosen.contains(&Gateway::Kannel) && kannel.is_none() {
        println!(
            "Kannel skipped: bearerbox/smsbox not on PATH (apt-get install kannel to compare)"
        );
        chosen.retain(|g| *g != Gateway::Kannel);
    }
    if !support::smsc::packages_installed() {
        eprintln!("The test SMSC's npm packages are missing: npm ci --prefix tests/peers/smsc");
        std::process::exit(2);
    }
    if chosen.iter().any(|g| *g != Gateway::Kannel) && !Path::new(&support::binary()).exists() {
        eprintln!(
            "No Junebug binary at {} (cargo build --release, or set SCALE_JUNEBUG_BIN)",
            support::binary()
        );
        std::process::exit(2);
    }

    let window_text = window.map_or_else(
        || "default windows (10 submit_sm awaiting their response)".to_owned(),
        |w| format!("window {w}"),
    );
    println!(
        "{n} messages, {concurrency} requests in flight, receipts {RECEIPT_DELAY_MS} ms after \
         each submit_sm, {window_text}; {} cores",
        std::thread::available_parallelism().map_or(0, |p| p.get())
    );
    if let Some(version) = &kannel {
        println!("Kannel: {version}");
    }
    println!("Junebug: {}", support::binary());

    let sink = Arc::new(Sink::default());
    let sink_url = start_sink(sink.clone());
    let mut reports = Vec::new();
    for (run, gateway) in chosen.into_iter().enumerate() {
        let options = Options {
            n,
            concurrency,
            window,
            run: run + 1,
        };
        let report = measure(gateway, &options, &sink, &sink_url);
        report.print();
        reports.push(report);
    }
    summary(&reports, kannel.as_deref());
    if reports.iter().any(|r| !r.complete) {
        std::process::exit(1);
    }
}

struct Options {
    n: usize,
    concurrency: usize,
    window: Option<usize>,
    /// This run's number, in the sink's paths.
    run: usize,
}

/// The `to` of message `i`.
fn to(i: usize) -> String {
    format!("+2783{i:07}")
}

/// The message index of a destination address (`+2783…` or `2783…`).
fn index_of(address: &str) -> Option<usize> {
    address
        .trim_start_matches('+')
        .strip_prefix("2783")?
        .parse()
        .ok()
}

/// "Kannel bearerbox version `1.4.5'." when bearerbox and smsbox are on PATH.
fn kannel_version() -> Option<String> {
    let on_path = |name: &str| {
        std::env::var_os("PATH")
            .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(name).is_file()))
    };
    if !on_path("bearerbox") || !on_path("smsbox") {
        return None;
    }
    let output = Command::new("bearerbox").arg("--version").output().ok()?;
    let text = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    Some(
        text.lines()
            .find(|l| l.contains("version"))
            .map(|l| l.trim().to_owned())
            .unwrap_or_else(|| "bearerbox (version unknown)".to_owned()),
    )
}

/// What one gateway's run measured.
struct Report {
    gateway: Gateway,
    n: usize,
    complete: bool,
    /// Requests answered with anything but the gateway's "accepted", and the first answer.
    refused: usize,
    first_refusal: Option<String>,
    http_rate: f64,
    http_time: Duration,
    submit_rate: Option<f64>,
    submit_time: Duration,
    cpu: f64,
    smsc_cpu: f64,
    bench_cpu: f64,
    peak_rss_kib: u64,
    latency: Vec<Duration>,
    early: usize,
    submits: usize,
    submit_count: usize,
    accepted: usize,
    delivered: usize,
    callbacks: usize,
    duplicate_callbacks: usize,
    other: HashMap<String, usize>,
    last_callback: Duration,
}

impl Report {
    fn cpu_ms_per_message(&self) -> f64 {
        self.cpu / self.n as f64 * 1e3
    }

    fn print(&self) {
        let n = self.n;
        println!();
        println!("== {} ==", self.gateway.name());
        if !self.complete {
            println!(
                "NOT COMPLETE: {} of {n} numbers reached the SMSC, {} accepted and {} delivered \
                 callbacks; the figures below cover what arrived",
                self.submits, self.accepted, self.delivered
            );
        }
        if self.refused > 0 {
            println!(
                "refused requests: {} (first: {})",
                self.refused,
                self.first_refusal.as_deref().unwrap_or("-")
            );
        }
        println!(
            "HTTP accepted: {:.0}/s ({n} answered in {:.2?})",
            self.http_rate, self.http_time
        );
        println!(
            "messages/s (HTTP in -> submit_sm): {} (first request to last submit_sm {:.2?})",
            self.submit_rate
                .map_or_else(|| "-".to_owned(), |r| format!("{r:.0}/s")),
            self.submit_time
        );
        println!(
            "submit_sm at the SMSC: {} numbers of {n}, {} submit_sm, {} duplicates",
            self.submits,
            self.submit_count,
            self.submit_count.saturating_sub(self.submits)
        );
        println!(
            "callbacks at the sink: {} ({} accepted-by-SMSC, {} delivered, {} duplicates); \
             last {:.2?} after the first request",
            self.callbacks,
            self.accepted,
            self.delivered,
            self.duplicate_callbacks,
            self.last_callback
        );
        if !self.other.is_empty() {
            println!("other callbacks: {:?}", self.other);
        }
        if let Some(text) = percentiles(&self.latency) {
            println!(
                "accept -> submit_sm: {text} ({} submit_sm before the answer)",
                self.early
            );
        }
        println!(
            "gateway CPU: {:.2} s, {:.3} ms per message (SMSC {:.2} s, bench {:.2} s)",
            self.cpu,
            self.cpu_ms_per_message(),
            self.smsc_cpu,
            self.bench_cpu
        );
        println!(
            "gateway peak RSS: {} KiB ({:.1} MiB)",
            self.peak_rss_kib,
            self.peak_rss_kib as f64 / 1024.0
        );
    }
}

/// The table of every gateway measured, and the ratios of Junebug to Kannel.
fn summary(reports: &[Report], kannel: Option<&str>) {
    if reports.is_empty() {
        return;
    }
    println!();
    println!("== summary ==");
    let mut header = format!("{:<34}", "");
    for r in reports {
        header += &format!(" | {:>22}", r.gateway.name());
    }
    println!("{header}");
    let row = |label: &str, value: &dyn Fn(&Report) -> String| {
        let mut line = format!("{label:<34}");
        for r in reports {
            line += &format!(" | {:>22}", value(r));
        }
        println!("{line}");
    };
    row("messages/s (HTTP in -> submit_sm)", &|r| {
        r.submit_rate.map_or("-".to_owned(), |v| format!("{v:.0}"))
    });
    row("HTTP accepted/s", &|r| format!("{:.0}", r.http_rate));
    row("gateway CPU ms per message", &|r| {
        format!("{:.3}", r.cpu_ms_per_message())
    });
    row("gateway peak RSS MiB", &|r| {
        format!("{:.1}", r.peak_rss_kib as f64 / 1024.0)
    });
    row("accept -> submit_sm p50 / p99 ms", &|r| match (
        quantile(&r.latency, 0.5),
        quantile(&r.latency, 0.99),
    ) {
        (Some(p50), Some(p99)) => format!("{:.1} / {:.1}", ms(p50), ms(p99)),
        _ => "-".to_owned(),
    });
    row("submit_sm seen (duplicates)", &|r| {
        format!(
            "{} ({})",
            r.submit_count,
            r.submit_count.saturating_sub(r.submits)
        )
    });
    row("receipt events at the sink", &|r| {
        format!("{} + {}", r.accepted, r.delivered)
    });
    println!("(receipt events: accepted-by-SMSC + delivered callbacks, N of each expected)");
    let Some(kannel_report) = reports.iter().find(|r| r.gateway == Gateway::Kannel) else {
        if kannel.is_none() {
            println!("no Kannel to compare with (apt-get install kannel to compare)");
        }
        return;
    };
    for r in reports.iter().filter(|r| r.gateway != Gateway::Kannel) {
        let rate = match (r.submit_rate, kannel_report.submit_rate) {
            (Some(j), Some(k)) if k > 0.0 => format!("{:.2}x", j / k),
            _ => "-".to_owned(),
        };
        let cpu = kannel_report.cpu_ms_per_message();
        let cpu = if cpu > 0.0 {
            format!("{:.2}x", r.cpu_ms_per_message() / cpu)
        } else {
            "-".to_owned()
        };
        println!(
            "{} / Kannel: messages/s {rate}, CPU per message {cpu}",
            r.gateway.name()
        );
    }
}

/// A gateway started for one run; its processes are stopped, and its deployment cleaned,
/// when dropped.
struct Running {
    /// The gateway's processes, whose CPU and memory are counted.
    pids: Vec<u32>,
    target: Target,
    cleanup: Cleanup,
}

/// Where the load goes.
enum Target {
    /// The messages URL of the channel.
    Junebug { url: String },
    /// The sendsms URL, and the sendsms user's credentials.
    Kannel {
        url: String,
        user: String,
        password: String,
    },
}

enum Cleanup {
    Junebug {
        daemon: support::Daemon,
        production: Option<(Production, Option<String>)>,
        _dir: tempfile::TempDir,
    },
    Kannel {
        smsbox: Option<Child>,
        bearerbox: Child,
        _dir: tempfile::TempDir,
    },
}

impl Drop for Running {
    fn drop(&mut self) {
        match &mut self.cleanup {
            Cleanup::Junebug {
                daemon, production, ..
            } => {
                let _ = daemon.child.kill();
                let _ = daemon.child.wait();
                if let Some((production, channel)) = production.take() {
                    // Not inside any runtime, whatever panicked: a thread of its own.
                    let _ = std::thread::spawn(move || production.clean(channel.as_deref())).join();
                }
            }
            Cleanup::Kannel {
                smsbox, bearerbox, ..
            } => {
                if let Some(smsbox) = smsbox {
                    terminate(smsbox);
                }
                terminate(bearerbox);
            }
        }
    }
}

/// SIGTERM to `child` (by its PID), up to 15 s to exit, then SIGKILL.
fn terminate(child: &mut Child) {
    if matches!(child.try_wait(), Ok(Some(_))) {
        return;
    }
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        if matches!(child.try_wait(), Ok(Some(_))) {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// One gateway's run: a fresh SMSC, the gateway, the load, the figures.
fn measure(gateway: Gateway, options: &Options, sink: &Arc<Sink>, sink_url: &str) -> Report {
    let n = options.n;
    let run = options.run;
    *sink.seen.lock().unwrap() = Seen::default();
    sink.run.store(run, Ordering::SeqCst);

    let on_submit = {
        let sink = sink.clone();
        move |event: &Value, at: Instant| {
            if sink.run.load(Ordering::SeqCst) != run {
                return;
            }
            let address = event["destination_addr"].as_str().unwrap_or_default();
            let mut seen = sink.seen.lock().unwrap();
            seen.submit_count += 1;
            if let Some(i) = index_of(address) {
                seen.submits.entry(i).or_insert(at);
            }
        }
    };
    let (mut smsc, smsc_events) =
        Smsc::start(&json!({"receipt_delay_ms": RECEIPT_DELAY_MS}), on_submit);
    let smsc_pid = smsc.child.id();
    let base = format!("{sink_url}/r{run}");
    let running = match gateway {
        Gateway::Kannel => start_kannel(smsc.port, &smsc_events, options.window),
        Gateway::JunebugEmbedded => start_junebug(smsc.port, &smsc_events, options, &base, None),
        Gateway::JunebugProduction => start_junebug(
            smsc.port,
            &smsc_events,
            options,
            &base,
            Some(Production::new("gateway-bench")),
        ),
    };
    let pids = running.pids.clone();
    let gateway_cpu = || pids.iter().map(|&p| cpu_seconds(p)).sum::<f64>();

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(options.concurrency)
        .build()
        .expect("HTTP client");
    let requests: Vec<reqwest::Request> = (0..n)
        .map(|i| build_request(&client, &running.target, &base, i))
        .collect();

    let cpu_before = (gateway_cpu(), cpu_seconds(smsc_pid), own_cpu_seconds());
    let started = Instant::now();
    let answers = runtime.block_on(load(
        &client,
        requests,
        options.concurrency,
        &running.target,
    ));
    let mut answered: Vec<Option<Instant>> = vec![None; n];
    let mut refused = 0;
    let mut first_refusal = None;
    for (i, at, refusal) in answers {
        match refusal {
            None => answered[i] = Some(at),
            Some(text) => {
                refused += 1;
                first_refusal.get_or_insert(text);
            }
        }
    }
    let last_answer = answered.iter().flatten().max().copied().unwrap_or(started);
    let expected = n - refused;

    // Until everything arrived, nothing moved for 30 s, or the deadline.
    let deadline = started + Duration::from_secs(60) + Duration::from_millis(20) * n as u32;
    let mut progress = (0, 0, 0);
    let mut moved = Instant::now();
    let complete = loop {
        let now_progress = {
            let seen = sink.seen.lock().unwrap();
            (
                seen.submits.len(),
                seen.accepted.len(),
                seen.delivered.len(),
            )
        };
        let (submits, accepted, delivered) = now_progress;
        if submits >= expected && accepted >= expected && delivered >= expected {
            break refused == 0;
        }
        if now_progress != progress {
            progress = now_progress;
            moved = Instant::now();
        }
        if Instant::now() > deadline || moved.elapsed() > Duration::from_secs(30) {
            break false;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let cpu = gateway_cpu() - cpu_before.0;
    let smsc_cpu = cpu_seconds(smsc_pid) - cpu_before.1;
    let bench_cpu = own_cpu_seconds() - cpu_before.2;
    let peak_rss_kib = running.pids.iter().map(|&p| peak_rss_kib(p)).sum();
    drop(running);
    smsc.stop();
    // Late callbacks of this run are not counted from here on.
    sink.run.store(0, Ordering::SeqCst);

    let seen = std::mem::take(&mut *sink.seen.lock().unwrap());
    let last_submit = seen.submits.values().max().copied();
    let submit_time = last_submit.map_or(Duration::ZERO, |t| t.saturating_duration_since(started));
    let submit_rate = (submit_time > Duration::ZERO)
        .then(|| seen.submits.len() as f64 / submit_time.as_secs_f64());
    let http_time = last_answer - started;
    let mut latency = Vec::new();
    let mut early = 0;
    for (i, answer) in answered.iter().enumerate() {
        if let (Some(answer), Some(submit)) = (answer, seen.submits.get(&i)) {
            if submit < answer {
                early += 1;
            }
            latency.push(submit.saturating_duration_since(*answer));
        }
    }
    latency.sort();
    Report {
        gateway,
        n,
        complete,
        refused,
        first_refusal,
        http_rate: expected as f64 / http_time.as_secs_f64().max(1e-9),
        http_time,
        submit_rate,
        submit_time,
        cpu,
        smsc_cpu,
        bench_cpu,
        peak_rss_kib,
        latency,
        early,
        submits: seen.submits.len(),
        submit_count: seen.submit_count,
        accepted: seen.accepted.len(),
        delivered: seen.delivered.len(),
        callbacks: seen.callbacks,
        duplicate_callbacks: seen.duplicate_callbacks,
        other: seen.other,
        last_callback: seen
            .last_callback
            .map_or(Duration::ZERO, |t| t.saturating_duration_since(started)),
    }
}

/// Message `i`'s request to the gateway, with its callbacks on the run's sink path `base`.
fn build_request(
    client: &reqwest::Client,
    target: &Target,
    base: &str,
    i: usize,
) -> reqwest::Request {
    let text = format!("bench message {i}");
    match target {
        Target::Junebug { url } => client
            .post(url)
            .json(&json!({"to": to(i), "from": "1234", "content": text,
                          "event_url": format!("{base}/ev/{i}")}))
            .build(),
        Target::Kannel {
            url,
            user,
            password,
        } => {
            let mut url = url::Url::parse(url).expect("sendsms URL");
            url.query_pairs_mut()
                .append_pair("username", user)
                .append_pair("password", password)
                .append_pair("from", "1234")
                .append_pair("to", &to(i))
                .append_pair("text", &text)
                .append_pair("dlr-mask", "9")
                .append_pair("dlr-url", &format!("{base}/dlr/{i}?type=%d"));
            client.get(url).build()
        }
    }
    .expect("request")
}

/// Sends `requests` keeping `concurrency` in flight; for each, its index, when its answer
/// arrived, and what it said if it was not the gateway's "accepted".
async fn load(
    client: &reqwest::Client,
    requests: Vec<reqwest::Request>,
    concurrency: usize,
    target: &Target,
) -> Vec<(usize, Instant, Option<String>)> {
    let accepted_status = match target {
        Target::Junebug { .. } => 201,
        Target::Kannel { .. } => 202,
    };
    let queue = Mutex::new(requests.into_iter().enumerate());
    let tasks = (0..concurrency).map(|_| {
        let queue = &queue;
        async move {
            let mut own = Vec::new();
            loop {
                let Some((i, request)) = queue.lock().unwrap().next() else {
                    return own;
                };
                let refusal = match client.execute(request).await {
                    Ok(resp) if resp.status().as_u16() == accepted_status => {
                        // Read the body, so the connection goes back to the pool.
                        let _ = resp.bytes().await;
                        None
                    }
                    Ok(resp) => {
                        let status = resp.status();
                        let text = resp.text().await.unwrap_or_default();
                        Some(format!("{status} {}", text.trim()))
                    }
                    Err(e) => Some(e.to_string()),
                };
                own.push((i, Instant::now(), refusal));
            }
        }
    });
    futures_util::future::join_all(tasks)
        .await
        .into_iter()
        .flatten()
        .collect()
}

/// CPU time of this process, seconds.
fn own_cpu_seconds() -> f64 {
    cpu_seconds(std::process::id())
}

/// The daemon (on `production` if given) with one `smpp` channel bound to the SMSC.
fn start_junebug(
    smsc_port: u16,
    smsc_events: &mpsc::Receiver<Value>,
    options: &Options,
    base: &str,
    production: Option<Production>,
) -> Running {
    let dir = tempfile::tempdir().expect("temp dir");
    let logs = dir.path().join("logs");
    let env = production.as_ref().map(Production::env);
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
    let mut running = Running {
        pids: vec![pid],
        target: Target::Junebug { url: String::new() },
        cleanup: Cleanup::Junebug {
            daemon,
            production: production.map(|p| (p, None)),
            _dir: dir,
        },
    };
    let mut config = json!({"host": "127.0.0.1", "port": smsc_port,
                            "system_id": "junebug", "password": "secret"});
    let mut channel = json!({"type": "smpp", "mo_url": format!("{base}/mo")});
    if let Some(window) = options.window {
        config["window_size"] = json!(window);
    }
    channel["config"] = config;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let created: Value = runtime.block_on(async {
        let resp = reqwest::Client::new()
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
    if let Cleanup::Junebug {
        production: Some((_, channel)),
        ..
    } = &mut running.cleanup
    {
        *channel = Some(id.clone());
    }
    running.target = Target::Junebug {
        url: format!("{api}/channels/{id}/messages/"),
    };
    wait_for(smsc_events, "bind");
    running
}

/// A free TCP port on 127.0.0.1 (free when asked: the gateway binds it right after).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// bearerbox and smsbox, configured in a temp dir, bound to the SMSC.
fn start_kannel(
    smsc_port: u16,
    smsc_events: &mpsc::Receiver<Value>,
    window: Option<usize>,
) -> Running {
    let dir = tempfile::tempdir().expect("temp dir");
    let (admin_port, smsbox_port, sendsms_port) = (free_port(), free_port(), free_port());
    let admin_password = uuid::Uuid::new_v4().simple().to_string();
    let (user, password) = ("bench".to_owned(), "benchpw".to_owned());
    let spool = dir.path().join("spool");
    std::fs::create_dir(&spool).expect("spool dir");
    let pending = window.map_or_else(String::new, |w| format!("max-pending-submits = {w}\n"));
    let conf = format!(
        "group = core\n\
         admin-port = {admin_port}\n\
         admin-interface = 127.0.0.1\n\
         admin-password = {admin_password}\n\
         admin-allow-ip = 127.0.0.1\n\
         smsbox-port = {smsbox_port}\n\
         smsbox-interface = 127.0.0.1\n\
         box-allow-ip = 127.0.0.1\n\
         log-level = 4\n\
         dlr-storage = internal\n\
         store-type = spool\n\
         store-location = \"{spool}\"\n\
         \n\
         group = smsc\n\
         smsc = smpp\n\
         smsc-id = bench\n\
         host = 127.0.0.1\n\
         port = {smsc_port}\n\
         transceiver-mode = true\n\
         smsc-username = junebug\n\
         smsc-password = secret\n\
         system-type = \"\"\n\
         {pending}\
         \n\
         group = smsbox\n\
         bearerbox-host = 127.0.0.1\n\
         bearerbox-port = {smsbox_port}\n\
         sendsms-port = {sendsms_port}\n\
         sendsms-interface = 127.0.0.1\n\
         log-level = 4\n\
         \n\
         group = sendsms-user\n\
         username = {user}\n\
         password = {password}\n",
        spool = spool.display(),
    );
    let conf_path = dir.path().join("kannel.conf");
    std::fs::write(&conf_path, conf).expect("write kannel.conf");
    let dir_path = dir.path().to_owned();
    let spawn = |program: &str, log: PathBuf| {
        let log = std::fs::File::create(log).expect("log file");
        Command::new(program)
            .args(["-v", "3"]) // errors and panics only
            .arg(&conf_path)
            .current_dir(&dir_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {program}: {e}"))
    };
    let bearerbox = spawn("bearerbox", dir_path.join("bearerbox.log"));
    let bearerbox_pid = bearerbox.id();
    // Started before smsbox connects, so a failure still stops it.
    let mut running = Running {
        pids: vec![bearerbox_pid],
        target: Target::Kannel {
            url: format!("http://127.0.0.1:{sendsms_port}/cgi-bin/sendsms"),
            user,
            password,
        },
        cleanup: Cleanup::Kannel {
            smsbox: None,
            bearerbox,
            _dir: dir,
        },
    };
    if try_wait_for(smsc_events, "bind", Duration::from_secs(30)).is_none() {
        let log = std::fs::read_to_string(dir_path.join("bearerbox.log")).unwrap_or_default();
        panic!("Kannel's bearerbox did not bind to the SMSC in 30 s; its log:\n{log}");
    }
    let Cleanup::Kannel { smsbox, .. } = &mut running.cleanup else {
        unreachable!("a Kannel run")
    };
    let child = smsbox.insert(spawn("smsbox", dir_path.join("smsbox.log")));
    running.pids.push(child.id());
    // Ready when bearerbox lists smsbox among its boxes and smsbox takes connections.
    let status = format!("http://127.0.0.1:{admin_port}/status.txt?password={admin_password}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let smsbox_connected = http_get_text(&status).is_some_and(|text| {
            text.lines()
                .skip_while(|l| !l.starts_with("Box connections"))
                .any(|l| l.trim_start().starts_with("smsbox"))
        });
        if smsbox_connected && TcpStream::connect(("127.0.0.1", sendsms_port)).is_ok() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "Kannel did not get ready in 30 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    running
}

/// The body of a GET on 127.0.0.1, if it answered.
fn http_get_text(url: &str) -> Option<String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .ok()?;
    runtime.block_on(async {
        let resp = reqwest::Client::new()
            .get(url)
            .timeout(Duration::from_secs(2))
            .send()
            .await
            .ok()?;
        resp.text().await.ok()
    })
}

/// Starts the callback sink on its own thread; its base URL.
fn start_sink(sink: Arc<Sink>) -> String {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            let server = HttpServer::new(move || {
                App::new()
                    .app_data(web::Data::new(sink.clone()))
                    .default_service(web::to(receive))
            })
            .workers(1)
            .bind("127.0.0.1:0")
            .expect("bind the sink");
            tx.send(server.addrs()[0]).expect("address");
            server.run().await
        })
    });
    let address = rx.recv().expect("the sink started");
    format!("http://{address}")
}

/// Counts a callback: `/r{run}/ev/{i}` (a Junebug event, JSON) or `/r{run}/dlr/{i}?type=N`
/// (a Kannel DLR); answers 200 to everything.
async fn receive(
    request: HttpRequest,
    sink: web::Data<Arc<Sink>>,
    body: web::Bytes,
) -> HttpResponse {
    let at = Instant::now();
    let mut parts = request.path().trim_start_matches('/').split('/');
    let (Some(run), Some(kind), Some(index)) = (parts.next(), parts.next(), parts.next()) else {
        return HttpResponse::Ok().finish();
    };
    let current = sink.run.load(Ordering::SeqCst);
    let (Ok(index), true) = (index.parse::<usize>(), run == format!("r{current}")) else {
        return HttpResponse::Ok().finish();
    };
    let what = match kind {
        "ev" => serde_json::from_slice::<Value>(&body).unwrap_or_default()["event_type"]
            .as_str()
            .unwrap_or("unreadable event")
            .to_owned(),
        "dlr" => {
            let dlr_type = request
                .query_string()
                .split('&')
                .find_map(|p| p.strip_prefix("type="))
                .unwrap_or("?");
            format!("dlr type {dlr_type}")
        }
        _ => return HttpResponse::Ok().finish(),
    };
    let mut seen = sink.seen.lock().unwrap();
    seen.callbacks += 1;
    seen.last_callback = Some(at);
    let fresh = match what.as_str() {
        "submitted" | "dlr type 8" => seen.accepted.insert(index),
        "delivery_succeeded" | "dlr type 1" => seen.delivered.insert(index),
        _ => {
            *seen.other.entry(what).or_default() += 1;
            true
        }
    };
    if !fresh {
        seen.duplicate_callbacks += 1;
    }
    HttpResponse::Ok().finish()
}
