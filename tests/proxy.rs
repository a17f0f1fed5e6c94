//! A fault-injecting TCP proxy for tests: pass through, add latency, black-hole (stop
//! forwarding without closing: a half-open connection), reset every connection, or close a
//! connection after N bytes in either direction. The mode can change while connections are
//! live, for every connection ([`Proxy::set`]) or only for those already open
//! ([`Proxy::set_live`], so that a fault hits the pool's current connections while new ones
//! take a healthy path).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
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
    /// Forward this many more bytes from the server on each connection, then reset it.
    CloseAfter(usize),
    /// Forward this many more bytes from the client on each connection, then reset it (cuts an
    /// upload such as `COPY ... FROM STDIN` halfway).
    CloseAfterUpload(usize),
}

/// Who gets which mode: the mode of new connections and a switch per live connection.
struct Control {
    default: Mode,
    live: Vec<watch::Sender<Mode>>,
}

impl Control {
    /// Forgets connections that ended (their receiver is gone).
    fn prune(&mut self) {
        self.live.retain(|sender| !sender.is_closed());
    }
}

/// A proxy listening on 127.0.0.1 in front of `upstream`; stops (resetting every connection)
/// when dropped.
pub struct Proxy {
    addr: SocketAddr,
    control: Arc<Mutex<Control>>,
    task: tokio::task::JoinHandle<()>,
    accepted: Arc<AtomicUsize>,
}

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proxy")
            .field("addr", &self.addr)
            .field("accepted", &self.accepted())
            .finish()
    }
}

impl Proxy {
    /// Starts a proxy in front of `upstream` (a `host:port`).
    pub async fn start(upstream: SocketAddr) -> std::io::Result<Proxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let control = Arc::new(Mutex::new(Control {
            default: Mode::Pass,
            live: Vec::new(),
        }));
        let accepted = Arc::new(AtomicUsize::new(0));
        let (shared, counter) = (control.clone(), accepted.clone());
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                // Registered under the same lock `set` takes: a connection accepted while the
                // mode changes gets the new mode one way or the other.
                let watcher = {
                    let Ok(mut control) = shared.lock() else {
                        return;
                    };
                    control.prune();
                    let (sender, watcher) = watch::channel(control.default);
                    control.live.push(sender);
                    watcher
                };
                tokio::spawn(serve(client, upstream, watcher));
            }
        });
        Ok(Proxy {
            addr,
            control,
            task,
            accepted,
        })
    }

    /// The port clients should connect to.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Switches the mode of every live connection and of new ones; live connections follow at
    /// their next chunk (reset and black-hole: at once).
    pub fn set(&self, mode: Mode) {
        if let Ok(mut control) = self.control.lock() {
            control.default = mode;
            control.prune();
            for sender in &control.live {
                sender.send_replace(mode);
            }
        }
    }

    /// Switches only the connections open now; connections accepted later keep the mode of
    /// the last [`set`](Proxy::set) (a fault on the pool's current connections, a healthy path
    /// for the replacements).
    pub fn set_live(&self, mode: Mode) {
        if let Ok(mut control) = self.control.lock() {
            control.prune();
            for sender in &control.live {
                sender.send_replace(mode);
            }
        }
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
        self.set(Mode::Reset);
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
    // Bytes left before a `CloseAfter*` cut; restarts whenever the mode changes.
    let mut budget: Option<usize> = None;
    let mut budget_mode = Mode::Pass;
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
            Mode::Pass | Mode::Latency(_) | Mode::CloseAfter(_) | Mode::CloseAfterUpload(_) => {}
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
        if current != budget_mode {
            budget_mode = current;
            budget = None;
        }
        let limit = match current {
            Mode::Latency(delay) => {
                tokio::time::sleep(delay).await;
                None
            }
            Mode::CloseAfter(limit) if from_server => Some(limit),
            Mode::CloseAfterUpload(limit) if !from_server => Some(limit),
            _ => None,
        };
        if let Some(limit) = limit {
            let left = *budget.get_or_insert(limit);
            if chunk >= left {
                let _ = if from_server {
                    client.write_all(&down[..left]).await
                } else {
                    server.write_all(&up[..left]).await
                };
                return reset(client, Some(server));
            }
            budget = Some(left - chunk);
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
