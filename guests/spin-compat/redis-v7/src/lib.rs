//! A Redis trigger handler built with spin-sdk 7 (async): it writes each
//! message to stdout (the host logs it with the message's request id) and
//! fails on the message `fail`, so a test sees both outcomes. On `spin` it
//! computes until the host's deadline stops it: a handler that holds its
//! instance (a flood of these must not hold up other apps' messages).

use bytes::Bytes;
use spin_sdk::redis_subscriber;

#[redis_subscriber]
async fn on_message(message: Bytes) -> anyhow::Result<()> {
    let text = std::str::from_utf8(&message)?;
    if text == "fail" {
        anyhow::bail!("asked to fail");
    }
    if text == "spin" {
        let mut n = 0u64;
        loop {
            n = std::hint::black_box(n.wrapping_add(1));
        }
    }
    println!("redis-v7 got: {text}");
    Ok(())
}
