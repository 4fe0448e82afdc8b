//! The scripted milter shared by the milter tests: it answers negotiation as told and every
//! other command with what a closure returns, and hands back what it received.

#![allow(dead_code)]

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

pub(crate) type Frames = Vec<(u8, Vec<u8>)>;

pub(crate) fn frame(code: u8, data: &[u8]) -> Vec<u8> {
    let mut out = ((data.len() + 1) as u32).to_be_bytes().to_vec();
    out.push(code);
    out.extend_from_slice(data);
    out
}

pub(crate) fn optneg(actions: u32, steps: u32) -> Vec<u8> {
    let mut d = 6u32.to_be_bytes().to_vec();
    d.extend_from_slice(&actions.to_be_bytes());
    d.extend_from_slice(&steps.to_be_bytes());
    frame(b'O', &d)
}

/// Serves one connection: answers negotiation with `neg`, every other command with what
/// `respond` returns (raw frames; an empty one hangs up), and returns what it received.
pub(crate) async fn milter(
    neg: Vec<u8>,
    respond: impl Fn(u8, &[u8]) -> Vec<Vec<u8>> + Send + 'static,
) -> (SocketAddr, tokio::task::JoinHandle<Frames>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let mut got = Vec::new();
        loop {
            let mut len = [0u8; 4];
            if s.read_exact(&mut len).await.is_err() {
                break;
            }
            let mut data = vec![0u8; u32::from_be_bytes(len) as usize];
            s.read_exact(&mut data).await.unwrap();
            let code = data.remove(0);
            // Macros and abort get no answer.
            let answer = match code {
                b'O' => vec![neg.clone()],
                b'D' | b'A' | b'Q' => Vec::new(),
                _ => respond(code, &data),
            };
            got.push((code, data));
            if code == b'Q' {
                break;
            }
            for f in answer {
                // An empty frame stands for hanging up.
                if f.is_empty() {
                    return got;
                }
                s.write_all(&f).await.unwrap();
            }
        }
        got
    });
    (addr, task)
}
