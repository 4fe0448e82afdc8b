//! Session tests over `tokio::io::duplex`: the state machine without sockets, transcript style.

mod auth;
mod harness;
mod memory;
mod protocol;
mod state_machine;
mod timeouts;
mod tls;
