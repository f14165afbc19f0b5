//! Ports on 127.0.0.1 for the servers a suite, a bench or the demo starts: a free one, and
//! waiting until something listens.

use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use crate::cmd::Failure;

/// A free port on 127.0.0.1 (the OS picks it; it is free again right after).
pub fn free_port() -> Result<u16, Failure> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .map_err(|e| Failure::new(format!("cannot find a free port on 127.0.0.1: {e}")))
}

/// Waits until something listens on `port`.
pub fn wait_for_port(port: u16, what: &str, timeout: Duration) -> Result<(), Failure> {
    let deadline = Instant::now() + timeout;
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            return Err(Failure::new(format!(
                "{what} did not listen on 127.0.0.1:{port} within {}s",
                timeout.as_secs()
            )));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}
