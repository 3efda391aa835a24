//! A Redis trigger handler built with spin-sdk 5.2: it writes each message to
//! stdout (the host logs it with the message's request id) and fails on the
//! message `fail`, so a test sees both outcomes.

use bytes::Bytes;
use spin_sdk::redis_component;

#[redis_component]
fn on_message(message: Bytes) -> anyhow::Result<()> {
    let text = std::str::from_utf8(&message)?;
    if text == "fail" {
        anyhow::bail!("asked to fail");
    }
    println!("redis-v5 got: {text}");
    Ok(())
}
