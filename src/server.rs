//! Builds the daemon (backends, channel host, supervisor, HTTP API) and runs it.
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use actix::{Actor, Addr};
use actix_web::{web, App, HttpServer};
use junebug_actors::supervisor::{Backoff, ChannelSupervisor, StartChannel, StopAll};
use junebug_actors::TransportRegistry;

use crate::amqp::AmqpLink;
use crate::api::{self, ApiSettings, ApiState};
use crate::backend::BackendError;
use crate::config::{Config, ConfigError};
use crate::delivery::amqp::AmqpApps;
use crate::delivery::outbox::embedded::{self as embedded_outbox, EmbeddedOutbox};
use crate::delivery::outbox::redis::RedisOutbox;
use crate::delivery::outbox::Outbox;
use crate::delivery::retry::RetryPolicy;
use crate::delivery::{Callbacks, DeliverySettings};
use crate::host::{Host, HostSettings};
use crate::logs::{ChannelLogs, LogSettings, LogsError};
use crate::metrics::exporter::Metrics;
use crate::queue::amqp::AmqpQueue;
use crate::queue::embedded::{self as embedded_queue, EmbeddedQueue};
use crate::queue::Queue;
use crate::receipts::ReceiptMatcher;
use crate::redis_link::RedisLink;
use crate::sqlite::Database;
use crate::store::cache::ChannelCache;
use crate::store::embedded::{self as embedded_store, EmbeddedStore};
use crate::store::redis::RedisStore;
use crate::store::Store;

/// How often expired stored data is swept away.
const SWEEP_INTERVAL: Duration = Duration::from_secs(60);

/// Why the daemon could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The HTTP listener could not bind.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address we tried.
        addr: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// A backend could not be opened.
    #[error("cannot open the backend: {0}")]
    Backend(#[from] BackendError),
    /// The configuration does not select a backend.
    #[error("{0}")]
    Config(#[from] ConfigError),
    /// The channel logs could not be opened.
    #[error("{0}")]
    Logs(#[from] LogsError),
}

/// The Store, the Queue, the callback outbox and, in production, the RabbitMQ link.
struct Backends {
    store: Arc<dyn Store>,
    queue: Arc<dyn Queue>,
    outbox: Arc<dyn Outbox>,
    link: Option<AmqpLink>,
}

/// This process's node id: `node_id`, or `<hostname>:<port>`.
fn node_id(config: &Config) -> String {
    if !config.node_id.is_empty() {
        return config.node_id.clone();
    }
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "localhost".to_owned());
    format!("{host}:{}", config.port)
}

/// Opens Redis + RabbitMQ when both are configured, else the embedded SQLite backend (and
/// starts sweeping its expired rows).
async fn open_backends(config: &Config, logger: &slog::Logger) -> Result<Backends, StartError> {
    if let Some((redis_url, amqp_url)) = config.production_urls()? {
        // One Redis connection for the Store and the outbox.
        let redis = Arc::new(RedisLink::connect(redis_url).await?);
        let prefix = &config.redis.key_prefix;
        let store = RedisStore::new(redis.clone(), prefix);
        let node = node_id(config);
        let outbox = RedisOutbox::new(redis, prefix, &node).await?;
        let link = AmqpLink::connect(amqp_url).await?;
        slog::info!(logger, "Using the production backends: Redis and RabbitMQ"; "node_id" => &node);
        return Ok(Backends {
            store: Arc::new(store),
            queue: Arc::new(AmqpQueue::new(link.clone(), &config.amqp.queue_prefix)),
            outbox: Arc::new(outbox),
            link: Some(link),
        });
    }
    let schema = [
        embedded_store::SCHEMA,
        embedded_queue::SCHEMA,
        embedded_outbox::SCHEMA,
    ]
    .concat();
    let db = Arc::new(Database::open(&config.data_dir, &schema)?);
    let store = Arc::new(EmbeddedStore::new(db.clone()));
    actix_rt::spawn(sweep(store.clone(), logger.clone()));
    slog::info!(logger, "Using the embedded backend"; "data_dir" => %config.data_dir.display());
    Ok(Backends {
        store,
        queue: Arc::new(EmbeddedQueue::new(db.clone())),
        outbox: Arc::new(EmbeddedOutbox::new(db)),
        link: None,
    })
}

/// A started daemon.
pub struct Running {
    /// Where the API listens.
    pub addrs: Vec<SocketAddr>,
    /// Where the separate webhook listener listens (empty without one).
    pub webhook_addrs: Vec<SocketAddr>,
    server: actix_web::dev::Server,
    webhooks: Option<actix_web::dev::Server>,
    supervisor: Addr<ChannelSupervisor>,
    logger: slog::Logger,
}

impl Running {
    /// Serves until the server is stopped (SIGINT/SIGTERM), then stops every channel.
    pub async fn serve(self) -> std::io::Result<()> {
        // Both listeners stop on the same signal; the API's answer is what counts.
        let served = match self.webhooks {
            Some(webhooks) => futures_util::future::join(self.server, webhooks).await.0,
            None => self.server.await,
        };
        slog::info!(self.logger, "Stopping channels");
        let _ = self.supervisor.send(StopAll).await;
        served
    }

    /// A handle to stop the HTTP server.
    pub fn handle(&self) -> actix_web::dev::ServerHandle {
        self.server.handle()
    }
}

/// Builds and starts everything with the channel types of `registry`. Must run inside an
/// actix System.
pub async fn start(
    config: &Config,
    registry: TransportRegistry,
    logger: slog::Logger,
) -> Result<Running, StartError> {
    let backends = open_backends(config, &logger).await?;
    let logs = Arc::new(ChannelLogs::open(
        LogSettings {
            path: config.logging_path.clone(),
            rotate_size: config.log_rotate_size,
            max_files: config.max_log_files,
            message_ttl: Duration::from_secs(config.outbound_message_ttl),
        },
        logger.clone(),
    )?);
    let metrics = Arc::new(Metrics::new());
    let apps = backends
        .link
        .map(|link| Arc::new(AmqpApps::new(link, backends.queue.clone(), logs.clone())));
    let delivery = DeliverySettings {
        timeout: Duration::from_secs_f64(config.callback_timeout),
        policy: RetryPolicy {
            max_attempts: config.callbacks.max_attempts,
            max_age: Duration::from_secs_f64(config.callbacks.max_age),
            initial: Duration::from_secs_f64(config.callbacks.retry_initial),
            max_delay: Duration::from_secs_f64(config.callbacks.retry_max),
        },
        max_per_destination: config.callbacks.max_per_destination,
        max_per_channel: config.callbacks.max_per_channel,
    };
    let callbacks = Callbacks::new(
        delivery,
        backends.outbox,
        logs.clone(),
        metrics.clone(),
        logger.clone(),
    );
    let host = Arc::new(Host {
        channels: ChannelCache::new(backends.store.clone()),
        store: backends.store,
        queue: backends.queue,
        callbacks,
        apps,
        logs,
        metrics,
        receipts: ReceiptMatcher::new(Duration::from_secs_f64(config.delivery_report_hold)),
        settings: HostSettings {
            inbound_ttl: Duration::from_secs(config.inbound_message_ttl),
            outbound_ttl: Duration::from_secs(config.outbound_message_ttl),
            metric_window: config.metric_window,
        },
        logger: logger.clone(),
    });
    let backoff = Backoff {
        initial: Duration::from_secs_f64(config.supervisor.restart_backoff_initial),
        max: Duration::from_secs_f64(config.supervisor.restart_backoff_max),
    };
    let supervisor = ChannelSupervisor::new(
        registry.clone(),
        host.clone(),
        config.arbiter_count(),
        backoff,
        logger.clone(),
    )
    .start();

    let resumed = host.callbacks.resume().await?;
    slog::info!(logger, "Resumed pending callbacks"; "count" => resumed);
    let channels = host.store.load_channels().await?;
    host.logs.retain(channels.iter().map(|(id, _)| id.as_str()));
    slog::info!(logger, "Starting stored channels"; "count" => channels.len());
    for (id, props) in &channels {
        let spec = api::channels::channel_spec(id, props);
        if let Ok(Err(e)) = supervisor.send(StartChannel(spec)).await {
            slog::error!(logger, "Cannot start a stored channel"; "channel_id" => id, "error" => %e);
        }
        api::channels::attach_apps(&host, id, props);
    }

    let state = web::Data::new(ApiState {
        logger: logger.clone(),
        host,
        supervisor: supervisor.clone(),
        registry,
        settings: ApiSettings {
            max_logs: config.max_logs,
            max_body_size: config.max_body_size,
            allow_expired_replies: config.allow_expired_replies,
            metric_window: config.metric_window,
            production: config.production_urls()?.is_some(),
            stuck_after: Duration::from_secs_f64(config.health.stuck_after),
        },
    });
    let webhook_state = state.clone();
    let bind_addr = (config.interface.clone(), config.port);
    let server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .wrap(api::normalize_path())
            .wrap(actix_web::middleware::from_fn(api::observe::observe))
            .configure(api::routes)
    })
    .bind(&bind_addr)
    .map_err(|source| StartError::Bind {
        addr: format!("{}:{}", bind_addr.0, bind_addr.1),
        source,
    })?;
    let addrs = server.addrs();
    let server = server.run();
    let (webhook_addrs, webhooks) = match config.webhooks.port {
        Some(port) => {
            let interface = config
                .webhooks
                .interface
                .as_ref()
                .unwrap_or(&config.interface);
            let (addrs, listener) = webhook_listener(webhook_state, (interface.clone(), port))?;
            for addr in &addrs {
                slog::info!(logger, "Listening for webhooks"; "url" => format!("http://{addr}"));
            }
            (addrs, Some(listener))
        }
        None => (Vec::new(), None),
    };
    // Last: tests and scripts take this line to mean "ready".
    for addr in &addrs {
        slog::info!(logger, "Listening"; "url" => format!("http://{addr}"));
    }
    Ok(Running {
        addrs,
        webhook_addrs,
        webhooks,
        server,
        supervisor,
        logger,
    })
}

/// Starts the listener that serves providers' webhooks only (`[webhooks]`); where it
/// listens, and the server.
fn webhook_listener(
    state: api::State,
    addr: (String, u16),
) -> Result<(Vec<SocketAddr>, actix_web::dev::Server), StartError> {
    let listener = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .wrap(api::normalize_path())
            .service(api::webhook_routes())
    })
    .bind(&addr)
    .map_err(|source| StartError::Bind {
        addr: format!("{}:{}", addr.0, addr.1),
        source,
    })?;
    Ok((listener.addrs(), listener.run()))
}

async fn sweep(store: Arc<EmbeddedStore>, logger: slog::Logger) {
    let mut every = tokio::time::interval(SWEEP_INTERVAL);
    loop {
        every.tick().await;
        if let Err(e) = store.sweep().await {
            slog::warn!(logger, "Cannot sweep expired data"; "error" => %e);
        }
    }
}

/// Runs the daemon until it is asked to stop.
pub async fn run(config: Config, logger: slog::Logger) -> Result<(), StartError> {
    let running = start(&config, TransportRegistry::builtin(), logger).await?;
    running.serve().await.map_err(|source| StartError::Bind {
        addr: format!("{}:{}", config.interface, config.port),
        source,
    })
}
