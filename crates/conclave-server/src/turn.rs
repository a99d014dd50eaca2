//! The built-in TURN server (webrtc-rs `turn`), for participants whose network allows neither
//! UDP to the media port nor ICE-TCP to it, but does allow a TURN port (UDP or TCP).
//!
//! It is not an open relay: relayed packets may only go to, and come from, this server's own UDP
//! media addresses. An open TURN relay lets anyone holding a credential send traffic from the
//! operator's address to any host (amplification, scanning internal networks, hiding abuse
//! behind the operator's IP); restricted like this, a leaked credential reaches nothing but the
//! meeting server itself.
//!
//! The `turn` crate reads datagrams through its `Conn` trait. UDP sockets implement it; for TURN
//! over TCP, [`TcpMux`] presents all TCP clients as one `Conn`: it splits each stream into STUN
//! messages and ChannelData frames (RFC 8656 §12.5: self-describing lengths, ChannelData padded
//! to 4 bytes) and sends replies back on the connection they belong to.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{Mutex, mpsc};
use turn::auth::{AuthHandler, generate_auth_key};
use turn::relay::RelayAddressGenerator;
use turn::server::Server;
use turn::server::config::{ConnConfig, ServerConfig};
use webrtc_util::Conn;

use crate::media::MediaAddrs;
use crate::reach::TurnCredentials;

const REALM: &str = "conclave";
/// Largest STUN message or ChannelData frame accepted over TCP (the crate reads 1,500 bytes).
const MAX_TCP_FRAME: usize = 1600;
/// Open TURN-over-TCP connections at most.
const MAX_TCP_CONNECTIONS: usize = 4096;
/// Frames queued towards one TCP client before more are dropped.
const TCP_SEND_QUEUE: usize = 256;
/// A TCP client must send its first request this soon, so idle connections cannot pile up.
const FIRST_REQUEST_WITHIN: Duration = Duration::from_secs(10);

/// A running built-in TURN server; dropping it does not stop it (it lives as long as the process).
pub struct TurnServer {
    _server: Server,
}

/// Start TURN on UDP and TCP at `listen`. `public` are the addresses clients reach us at (used
/// in relayed addresses); `media` are the only peers allowed.
pub async fn start(
    listen: SocketAddr,
    public: &[IpAddr],
    media: &MediaAddrs,
    credentials: TurnCredentials,
) -> Result<TurnServer, String> {
    let udp = UdpSocket::bind(listen)
        .await
        .map_err(|e| format!("cannot bind TURN UDP {listen}: {e}"))?;
    let tcp = TcpListener::bind(listen)
        .await
        .map_err(|e| format!("cannot bind TURN TCP {listen}: {e}"))?;
    let allowed: Arc<Vec<SocketAddr>> = Arc::new(media.udp_addrs());
    let relay = |allowed: Arc<Vec<SocketAddr>>| -> Box<dyn RelayAddressGenerator + Send + Sync> {
        Box::new(SfuOnlyRelay {
            public: public.to_vec(),
            allowed,
        })
    };
    let config = ServerConfig {
        conn_configs: vec![
            ConnConfig {
                conn: Arc::new(udp),
                relay_addr_generator: relay(allowed.clone()),
            },
            ConnConfig {
                conn: Arc::new(TcpMux::start(tcp)),
                relay_addr_generator: relay(allowed),
            },
        ],
        realm: REALM.to_owned(),
        auth_handler: Arc::new(RestAuth(credentials)),
        channel_bind_timeout: Duration::ZERO,
        alloc_close_notify: None,
    };
    let server = Server::new(config)
        .await
        .map_err(|e| format!("cannot start TURN: {e}"))?;
    Ok(TurnServer { _server: server })
}

/// Checks TURN REST API credentials: a username that has not expired and the HMAC password.
struct RestAuth(TurnCredentials);

impl AuthHandler for RestAuth {
    fn auth_handle(
        &self,
        username: &str,
        realm: &str,
        _src: SocketAddr,
    ) -> Result<Vec<u8>, turn::Error> {
        let password = self
            .0
            .password_for(username, SystemTime::now())
            .map_err(|e| turn::Error::Other(e.to_string()))?;
        Ok(generate_auth_key(username, realm, &password))
    }
}

/// Allocates relay sockets whose only permitted peers are the media server's UDP addresses.
struct SfuOnlyRelay {
    public: Vec<IpAddr>,
    allowed: Arc<Vec<SocketAddr>>,
}

#[async_trait]
impl RelayAddressGenerator for SfuOnlyRelay {
    fn validate(&self) -> Result<(), turn::Error> {
        Ok(())
    }

    async fn allocate_conn(
        &self,
        use_ipv4: bool,
        _requested_port: u16,
    ) -> Result<(Arc<dyn Conn + Send + Sync>, SocketAddr), turn::Error> {
        let public = self
            .public
            .iter()
            .find(|ip| ip.is_ipv4() == use_ipv4)
            .copied()
            .ok_or_else(|| turn::Error::Other("no public address of that family".into()))?;
        let any: IpAddr = if use_ipv4 {
            Ipv4Addr::UNSPECIFIED.into()
        } else {
            Ipv6Addr::UNSPECIFIED.into()
        };
        let socket = UdpSocket::bind((any, 0))
            .await
            .map_err(webrtc_util::Error::from)?;
        let port = socket
            .local_addr()
            .map_err(webrtc_util::Error::from)?
            .port();
        let conn = SfuOnlyConn {
            socket,
            allowed: self.allowed.clone(),
        };
        Ok((Arc::new(conn), SocketAddr::new(public, port)))
    }
}

/// A relay socket that drops everything to or from anyone but the media server.
struct SfuOnlyConn {
    socket: UdpSocket,
    allowed: Arc<Vec<SocketAddr>>,
}

impl SfuOnlyConn {
    fn allows(&self, a: SocketAddr) -> bool {
        let a = SocketAddr::new(a.ip().to_canonical(), a.port());
        self.allowed.contains(&a)
    }
}

#[async_trait]
impl Conn for SfuOnlyConn {
    async fn connect(&self, _addr: SocketAddr) -> webrtc_util::Result<()> {
        Err(webrtc_util::Error::Other(
            "relay sockets do not connect".into(),
        ))
    }

    async fn recv(&self, buf: &mut [u8]) -> webrtc_util::Result<usize> {
        Ok(self.recv_from(buf).await?.0)
    }

    async fn recv_from(&self, buf: &mut [u8]) -> webrtc_util::Result<(usize, SocketAddr)> {
        loop {
            let (n, from) = self.socket.recv_from(buf).await?;
            if self.allows(from) {
                return Ok((n, from));
            }
        }
    }

    async fn send(&self, _buf: &[u8]) -> webrtc_util::Result<usize> {
        Err(webrtc_util::Error::Other(
            "relay sockets need a destination".into(),
        ))
    }

    async fn send_to(&self, buf: &[u8], target: SocketAddr) -> webrtc_util::Result<usize> {
        if !self.allows(target) {
            // Silently dropped, as a firewall would: the peer learns nothing about the network.
            return Ok(buf.len());
        }
        Ok(self.socket.send_to(buf, target).await?)
    }

    fn local_addr(&self) -> webrtc_util::Result<SocketAddr> {
        Ok(self.socket.local_addr()?)
    }

    fn remote_addr(&self) -> Option<SocketAddr> {
        None
    }

    async fn close(&self) -> webrtc_util::Result<()> {
        Ok(())
    }

    fn as_any(&self) -> &(dyn std::any::Any + Send + Sync) {
        self
    }
}

/// All TURN-over-TCP clients as one datagram-like `Conn`, keyed by their remote address.
struct TcpMux {
    local: SocketAddr,
    incoming: Mutex<mpsc::Receiver<(Vec<u8>, SocketAddr)>>,
    writers: Arc<RwLock<HashMap<SocketAddr, mpsc::Sender<Vec<u8>>>>>,
}

impl TcpMux {
    fn start(listener: TcpListener) -> Self {
        let local = listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
        let (tx, rx) = mpsc::channel(1024);
        let writers: Arc<RwLock<HashMap<SocketAddr, mpsc::Sender<Vec<u8>>>>> = Arc::default();
        let open = Arc::new(AtomicUsize::new(0));
        let w = writers.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, remote)) = listener.accept().await else {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                };
                if open.fetch_add(1, Ordering::Relaxed) >= MAX_TCP_CONNECTIONS {
                    open.fetch_sub(1, Ordering::Relaxed);
                    continue;
                }
                let (tx, writers, open) = (tx.clone(), w.clone(), open.clone());
                tokio::spawn(async move {
                    let (out_tx, out_rx) = mpsc::channel(TCP_SEND_QUEUE);
                    writers
                        .write()
                        .expect("turn writers lock")
                        .insert(remote, out_tx);
                    tcp_client(stream, remote, tx, out_rx).await;
                    writers.write().expect("turn writers lock").remove(&remote);
                    open.fetch_sub(1, Ordering::Relaxed);
                });
            }
        });
        Self {
            local,
            incoming: Mutex::new(rx),
            writers,
        }
    }
}

/// Read frames from one TCP client until it closes or sends something malformed; write what the
/// server sends it.
async fn tcp_client(
    stream: TcpStream,
    remote: SocketAddr,
    incoming: mpsc::Sender<(Vec<u8>, SocketAddr)>,
    mut outgoing: mpsc::Receiver<Vec<u8>>,
) {
    let _ = stream.set_nodelay(true);
    let (mut rd, mut wr) = stream.into_split();
    let reader = async {
        let mut first = true;
        loop {
            let mut header = [0u8; 4];
            let read = rd.read_exact(&mut header);
            let ok = if first {
                first = false;
                matches!(
                    tokio::time::timeout(FIRST_REQUEST_WITHIN, read).await,
                    Ok(Ok(_))
                )
            } else {
                read.await.is_ok()
            };
            if !ok {
                return;
            }
            let Some(len) = frame_len(header) else {
                return;
            };
            if len > MAX_TCP_FRAME {
                return;
            }
            let mut frame = vec![0u8; len];
            frame[..4].copy_from_slice(&header);
            if rd.read_exact(&mut frame[4..]).await.is_err() {
                return;
            }
            // The padding is not part of the ChannelData message.
            frame.truncate(unpadded_len(&frame));
            if incoming.send((frame, remote)).await.is_err() {
                return;
            }
        }
    };
    let writer = async {
        while let Some(frame) = outgoing.recv().await {
            if wr.write_all(&frame).await.is_err() {
                return;
            }
        }
    };
    tokio::select! {
        _ = reader => {}
        _ = writer => {}
    }
}

/// Bytes a TCP frame occupies, from its first four bytes: a STUN message (first two bits 00,
/// 20-byte header plus length) or ChannelData (01, 4-byte header plus length, padded to 4).
fn frame_len(h: [u8; 4]) -> Option<usize> {
    let len = u16::from_be_bytes([h[2], h[3]]) as usize;
    match h[0] >> 6 {
        0b00 => Some(20 + len),
        0b01 => Some(4 + len.div_ceil(4) * 4),
        _ => None,
    }
}

fn unpadded_len(frame: &[u8]) -> usize {
    if frame[0] >> 6 == 0b01 {
        4 + u16::from_be_bytes([frame[2], frame[3]]) as usize
    } else {
        frame.len()
    }
}

#[async_trait]
impl Conn for TcpMux {
    async fn connect(&self, _addr: SocketAddr) -> webrtc_util::Result<()> {
        Err(webrtc_util::Error::Other("not supported".into()))
    }

    async fn recv(&self, buf: &mut [u8]) -> webrtc_util::Result<usize> {
        Ok(self.recv_from(buf).await?.0)
    }

    async fn recv_from(&self, buf: &mut [u8]) -> webrtc_util::Result<(usize, SocketAddr)> {
        let mut rx = self.incoming.lock().await;
        let (frame, from) = rx
            .recv()
            .await
            .ok_or_else(|| webrtc_util::Error::Other("TURN TCP listener stopped".into()))?;
        let n = frame.len().min(buf.len());
        buf[..n].copy_from_slice(&frame[..n]);
        Ok((n, from))
    }

    async fn send(&self, _buf: &[u8]) -> webrtc_util::Result<usize> {
        Err(webrtc_util::Error::Other("not supported".into()))
    }

    async fn send_to(&self, buf: &[u8], target: SocketAddr) -> webrtc_util::Result<usize> {
        let mut frame = buf.to_vec();
        // ChannelData over TCP is padded to a multiple of four bytes.
        if frame.first().is_some_and(|b| b >> 6 == 0b01) {
            frame.resize(frame.len().div_ceil(4) * 4, 0);
        }
        let writers = self.writers.read().expect("turn writers lock");
        if let Some(w) = writers.get(&target) {
            // A full queue drops the frame, as a congested UDP path would.
            let _ = w.try_send(frame);
        }
        Ok(buf.len())
    }

    fn local_addr(&self) -> webrtc_util::Result<SocketAddr> {
        Ok(self.local)
    }

    fn remote_addr(&self) -> Option<SocketAddr> {
        None
    }

    async fn close(&self) -> webrtc_util::Result<()> {
        Ok(())
    }

    fn as_any(&self) -> &(dyn std::any::Any + Send + Sync) {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tcp_frame_lengths() {
        // STUN binding request with 8 bytes of attributes.
        assert_eq!(frame_len([0x00, 0x01, 0x00, 0x08]), Some(28));
        // ChannelData 0x4000 with 5 bytes: padded to 8.
        assert_eq!(frame_len([0x40, 0x00, 0x00, 0x05]), Some(12));
        assert_eq!(unpadded_len(&[0x40, 0, 0, 5, 1, 2, 3, 4, 5, 0, 0, 0]), 9);
        // Neither STUN nor ChannelData.
        assert_eq!(frame_len([0x80, 0, 0, 0]), None);
    }
}
