//! `GET /tcp?addr=IP:PORT`: a TCP connection through wasi:sockets (Rust's
//! std), as Spin grants it by `allowed_outbound_hosts` (`tcp://…`). Sends
//! `ping`, answers 200 `echo: <what came back>`, or 502 `error: <io error>`
//! when the host refuses the address or the connection fails.

use std::io::{Read, Write};

pub fn echo(addr: Option<String>) -> (u16, String) {
    let Some(addr) = addr else {
        return (400, "missing ?addr=IP:PORT".into());
    };
    let run = || -> std::io::Result<String> {
        let mut s = std::net::TcpStream::connect(addr.as_str())?;
        s.write_all(b"ping")?;
        let mut buf = [0u8; 64];
        let n = s.read(&mut buf)?;
        Ok(String::from_utf8_lossy(&buf[..n]).into_owned())
    };
    match run() {
        Ok(back) => (200, format!("echo: {back}")),
        Err(e) => (502, format!("error: {:?}", e.kind())),
    }
}
