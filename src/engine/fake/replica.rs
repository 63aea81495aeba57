//! The fake's replicas: started as their behaviour says (a listener on
//! 127.0.0.1 answering 200, a port that refuses, an exit), stopped, and
//! described as the engine lists them and reports their events.

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

use super::{Behaviour, FakeContainer};
use crate::engine::{Container, ContainerEvent, ContainerState, LABEL_APP, LABEL_DEPLOYMENT};

/// Starts `c` as its behaviour says: a listener answering 200, a port
/// that refuses, or an exit.
pub(super) fn run(c: &mut FakeContainer) {
    match c.behaviour {
        Behaviour::Exits(code) => {
            c.running = false;
            c.exit_code = Some(code);
            c.logs.push(format!("exited with {code}"));
        }
        Behaviour::Refusing => {
            // A port nobody listens on: bound, then let go.
            c.addr = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .ok();
            c.running = true;
            c.exit_code = None;
        }
        Behaviour::Healthy => {
            let stop = CancellationToken::new();
            c.addr = serve_200(stop.clone());
            c.server = Some(stop);
            c.running = true;
            c.exit_code = None;
        }
    }
}

/// Stops `c` with `code`, closing its listener.
pub(super) fn halt(c: &mut FakeContainer, code: i64) {
    if let Some(stop) = c.server.take() {
        stop.cancel();
    }
    if c.running {
        c.running = false;
        c.exit_code = Some(code);
    }
    c.addr = None;
}

/// A listener on 127.0.0.1 answering every request with `200 ok` until
/// `stop`; its address.
fn serve_200(stop: CancellationToken) -> Option<SocketAddr> {
    let std = std::net::TcpListener::bind("127.0.0.1:0").ok()?;
    std.set_nonblocking(true).ok()?;
    let addr = std.local_addr().ok()?;
    let listener = tokio::net::TcpListener::from_std(std).ok()?;
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                _ = stop.cancelled() => return,
                a = listener.accept() => a,
            };
            let Ok((mut stream, _)) = accepted else {
                continue;
            };
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                let _ = stream.read(&mut buf).await;
                let _ = stream
                    .write_all(
                        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok",
                    )
                    .await;
            });
        }
    });
    Some(addr)
}

pub(super) fn event_of(
    id: &str,
    c: &FakeContainer,
    action: &str,
    code: Option<i64>,
) -> ContainerEvent {
    ContainerEvent {
        action: action.to_string(),
        container: id.to_string(),
        app: c.labels.get(LABEL_APP).cloned().unwrap_or_default(),
        deployment: c.labels.get(LABEL_DEPLOYMENT).cloned().unwrap_or_default(),
        exit_code: code.map(|c| c.to_string()),
    }
}

pub(super) fn summary(id: &str, c: &FakeContainer) -> Container {
    Container {
        id: id.to_string(),
        name: c.name.clone(),
        labels: c.labels.clone(),
        state: if c.running {
            ContainerState::Running
        } else {
            ContainerState::Exited
        },
    }
}
