//! Deleting a test's or a benchmark's Redis keys. Shared by the test harness and
//! `examples/smpp_bench.rs` (which includes this file by path).
use std::time::Duration;

/// Deletes every key matching `pattern` (a Redis glob) on the Redis at `url`.
pub fn delete_matching(url: &str, pattern: &str) -> redis::RedisResult<()> {
    let client = redis::Client::open(url)?;
    let mut conn = client.get_connection_with_timeout(Duration::from_secs(2))?;
    let mut cursor: u64 = 0;
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(pattern)
            .arg("COUNT")
            .arg(1000)
            .query(&mut conn)?;
        if !keys.is_empty() {
            redis::cmd("DEL").arg(&keys).exec(&mut conn)?;
        }
        if next == 0 {
            return Ok(());
        }
        cursor = next;
    }
}
