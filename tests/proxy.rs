//! A fault-injecting TCP proxy for tests: pass through, add latency, black-hole (stop
//! forwarding without closing: a half-open connection), reset every connection, or close a
//! connection after N bytes. The mode can change while connections are live.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// What the proxy does to traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Forward everything unchanged.
    Pass,
    /// Delay every chunk by this much, in both directions.
    Latency(Duration),
    /// Keep connections open but forward nothing (a dead network or a half-open peer).
    Blackhole,
    /// Reset (RST) every open connection, and every new one.
    Reset,
    /// Forward this many more bytes from the server on each connection, then close it.
    CloseAfter(usize),
}

/// A proxy listening on 127.0.0.1 in front of `upstream`; stops when dropped.
pub struct Proxy {
    addr: SocketAddr,
    mode: watch::Sender<Mode>,
    task: tokio::task::JoinHandle<()>,
    connections: Arc<Mutex<usize>>,
}

impl Proxy {
    /// Starts a proxy in front of `upstream` (a `host:port`).
    pub async fn start(upstream: SocketAddr) -> std::io::Result<Proxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (mode, watcher) = watch::channel(Mode::Pass);
        let connections = Arc::new(Mutex::new(0));
        let counter = connections.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let watcher = watcher.clone();
                if let Ok(mut n) = counter.lock() {
                    *n += 1;
                }
                tokio::spawn(serve(client, upstream, watcher));
            }
        });
        Ok(Proxy {
            addr,
            mode,
            task,
            connections,
        })
    }

    /// The port clients should connect to.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Switches the mode; live connections follow at their next chunk (reset: at once).
    pub fn set(&self, mode: Mode) {
        self.mode.send_replace(mode);
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.connections.lock().map_or(0, |n| *n)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
        self.mode.send_replace(Mode::Reset);
    }
}

async fn serve(client: TcpStream, upstream: SocketAddr, mut mode: watch::Receiver<Mode>) {
    if *mode.borrow() == Mode::Reset {
        return reset(client, None);
    }
    let Ok(server) = TcpStream::connect(upstream).await else {
        return reset(client, None);
    };
    let (mut client, mut server) = (client, server);
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (mut up, mut down) = (vec![0u8; 16 * 1024], vec![0u8; 16 * 1024]);
    let mut budget: Option<usize> = None;
    loop {
        let current = *mode.borrow_and_update();
        match current {
            Mode::Reset => return reset(client, Some(server)),
            Mode::Blackhole => {
                // Read nothing, write nothing, close nothing: the peers see a silent network.
                if mode.changed().await.is_err() {
                    return;
                }
                continue;
            }
            Mode::Pass | Mode::Latency(_) | Mode::CloseAfter(_) => {}
        }
        let (chunk, from_server) = tokio::select! {
            read = client.read(&mut up) => match read {
                Ok(0) | Err(_) => return,
                Ok(n) => (n, false),
            },
            read = server.read(&mut down) => match read {
                Ok(0) | Err(_) => return,
                Ok(n) => (n, true),
            },
            changed = mode.changed() => {
                if changed.is_err() {
                    return;
                }
                continue;
            }
        };
        let current = *mode.borrow();
        match current {
            Mode::Latency(delay) => tokio::time::sleep(delay).await,
            Mode::CloseAfter(limit) if from_server => {
                let left = *budget.get_or_insert(limit);
                if chunk >= left {
                    let _ = client.write_all(&down[..left]).await;
                    return reset(client, Some(server));
                }
                budget = Some(left - chunk);
            }
            _ => {}
        }
        let written = if from_server {
            client.write_all(&down[..chunk]).await
        } else {
            server.write_all(&up[..chunk]).await
        };
        if written.is_err() {
            return;
        }
    }
}

/// Closes with RST instead of FIN (SO_LINGER zero; dropping such a socket never blocks).
fn reset(client: TcpStream, server: Option<TcpStream>) {
    let _ = client.set_zero_linger();
    drop(client);
    if let Some(server) = server {
        let _ = server.set_zero_linger();
        drop(server);
    }
}
