//! A benchmark's own production deployment: the daemon on Redis and RabbitMQ under a key and
//! queue prefix of its own, deleted afterwards.
use super::redis_keys;

/// A production deployment's prefixes, and the URLs of its Redis and RabbitMQ.
pub struct Production {
    pub prefix: String,
    pub redis: String,
    pub amqp: String,
}

impl Production {
    /// A new prefix `{name}-{uuid}`; `JUNEBUG_REDIS__URL` / `JUNEBUG_AMQP__URL` if set, else
    /// 127.0.0.1:6379 and guest:guest@127.0.0.1:5672.
    pub fn new(name: &str) -> Production {
        let var = |name: &str, default: &str| {
            std::env::var(name)
                .ok()
                .filter(|v| !v.is_empty())
                .unwrap_or_else(|| default.to_owned())
        };
        Production {
            prefix: format!("{name}-{}", uuid::Uuid::new_v4().simple()),
            redis: var("JUNEBUG_REDIS__URL", "redis://127.0.0.1:6379/"),
            amqp: var("JUNEBUG_AMQP__URL", "amqp://guest:guest@127.0.0.1:5672/%2f"),
        }
    }

    /// The daemon's environment for it.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            ("JUNEBUG_REDIS__URL".into(), self.redis.clone()),
            (
                "JUNEBUG_REDIS__KEY_PREFIX".into(),
                format!("{}:", self.prefix),
            ),
            ("JUNEBUG_AMQP__URL".into(), self.amqp.clone()),
            (
                "JUNEBUG_AMQP__QUEUE_PREFIX".into(),
                format!("{}.", self.prefix),
            ),
        ]
    }

    /// Deletes the channel's queues and every key under the prefix. Runs a runtime of its
    /// own: call it outside any.
    pub fn clean(&self, channel: Option<&str>) {
        if let Some(id) = channel {
            let queues: Vec<String> = ["realtime", "bulk"]
                .iter()
                .map(|lane| format!("{}.{id}.outbound.{lane}", self.prefix))
                .collect();
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            let deleted = runtime.block_on(async {
                let link = junebug::amqp::AmqpLink::connect(&self.amqp).await?;
                let channel = link.channel().await?;
                for queue in queues {
                    let options = lapin::options::QueueDeleteOptions::default();
                    if let Err(e) = channel.queue_delete(queue.as_str().into(), options).await {
                        eprintln!("Could not delete the queue {queue}: {e}");
                    }
                }
                Ok::<_, Box<dyn std::error::Error>>(())
            });
            if let Err(e) = deleted {
                eprintln!("Could not delete the bench's queues: {e}");
            }
        }
        if let Err(e) = self.delete_keys() {
            eprintln!("Could not delete the bench's keys {}:*: {e}", self.prefix);
        }
    }

    fn delete_keys(&self) -> redis::RedisResult<()> {
        redis_keys::delete_matching(&self.redis, &format!("{}:*", self.prefix))
    }
}
