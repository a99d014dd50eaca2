//! `conclave-netsim`: the socket loop around [`conclave_netsim::Link`]. See the library
//! documentation for what it does.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use conclave_netsim::{Link, LinkSpec, LinkStats};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

/// Relay UDP between clients and a server, impairing each direction.
///
/// A direction's SPEC is a comma-separated list of: delay=75ms, jitter=15ms (uniform ±),
/// reorder (let jitter reorder), loss=5% (random), ge=P/R/LOSS (Gilbert–Elliott: chance to enter
/// the bad state, to leave it, and to lose a packet while in it), rate=3M (bit/s cap), queue=30k
/// (bytes waiting for the cap before drop-tail; default 200 ms at the rate), schedule=20s:300k/40s:3M
/// (the cap from each time since start on).
#[derive(Debug, Parser)]
#[command(name = "conclave-netsim", version, about)]
struct Cli {
    /// Address clients send to: announce it to them (conclave --announce).
    #[arg(long, value_name = "HOST:PORT")]
    listen: SocketAddr,
    /// The server's UDP address.
    #[arg(long, value_name = "HOST:PORT")]
    upstream: SocketAddr,
    /// Impairments from clients to the server.
    #[arg(long, default_value = "", value_name = "SPEC")]
    uplink: LinkSpec,
    /// Impairments from the server to clients.
    #[arg(long, default_value = "", value_name = "SPEC")]
    downlink: LinkSpec,
    /// Seed for every random decision: the same seed and traffic give the same drops and delays.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// At exit, print per-direction packet counts as JSON on standard output.
    #[arg(long)]
    stats: bool,
}

/// Clients beyond this many are ignored (a guard against stray traffic, far above any test).
const MAX_FLOWS: usize = 4096;

struct Flow {
    client: SocketAddr,
    socket: Arc<UdpSocket>,
    uplink: Link<Vec<u8>>,
    downlink: Link<Vec<u8>>,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    let cli = Cli::parse();
    let listener = UdpSocket::bind(cli.listen).await?;
    eprintln!(
        "conclave-netsim: clients → {} → {}",
        listener.local_addr()?,
        cli.upstream
    );
    let start = Instant::now();
    let (tx, mut from_server) = mpsc::channel::<(usize, Vec<u8>)>(8192);
    let mut flows: Vec<Flow> = Vec::new();
    let mut by_client: HashMap<SocketAddr, usize> = HashMap::new();
    let mut buf = vec![0u8; 65_536];
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let far = Duration::from_secs(3600);

    loop {
        let next = flows
            .iter()
            .flat_map(|f| [f.uplink.next_due(), f.downlink.next_due()])
            .flatten()
            .min()
            .unwrap_or_else(|| Instant::now() + far);
        tokio::select! {
            r = listener.recv_from(&mut buf) => {
                let Ok((n, client)) = r else { continue };
                let i = match by_client.get(&client) {
                    Some(i) => *i,
                    None if flows.len() < MAX_FLOWS => {
                        let flow = open_flow(&cli, client, flows.len(), start, tx.clone()).await?;
                        flows.push(flow);
                        by_client.insert(client, flows.len() - 1);
                        flows.len() - 1
                    }
                    None => continue,
                };
                flows[i].uplink.push(Instant::now(), n, buf[..n].to_vec());
            }
            Some((i, packet)) = from_server.recv() => {
                flows[i].downlink.push(Instant::now(), packet.len(), packet);
            }
            _ = tokio::time::sleep_until(next.into()) => {}
            _ = tokio::signal::ctrl_c() => break,
            _ = term.recv() => break,
        }
        let now = Instant::now();
        for f in &mut flows {
            // Send errors (e.g. the server is gone) count as loss on the path.
            while let Some(p) = f.uplink.poll(now) {
                let _ = f.socket.send_to(&p, cli.upstream).await;
            }
            while let Some(p) = f.downlink.poll(now) {
                let _ = listener.send_to(&p, f.client).await;
            }
        }
    }

    if cli.stats {
        let (mut up, mut down) = (LinkStats::default(), LinkStats::default());
        for f in &flows {
            up += f.uplink.stats();
            down += f.downlink.stats();
        }
        let report = serde_json::json!({ "flows": flows.len(), "uplink": up, "downlink": down });
        println!("{report}");
    }
    Ok(())
}

/// A client's own socket towards the server, and a task that hands its packets to the main loop.
async fn open_flow(
    cli: &Cli,
    client: SocketAddr,
    index: usize,
    start: Instant,
    tx: mpsc::Sender<(usize, Vec<u8>)>,
) -> std::io::Result<Flow> {
    let local = SocketAddr::new(cli.listen.ip(), 0);
    let socket = Arc::new(UdpSocket::bind(local).await?);
    let reader = socket.clone();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 65_536];
        while let Ok((n, _)) = reader.recv_from(&mut buf).await {
            if tx.send((index, buf[..n].to_vec())).await.is_err() {
                break;
            }
        }
    });
    // Distinct, repeatable random streams per flow and direction.
    let seed = cli.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let up_seed = seed.wrapping_add(2 * index as u64);
    Ok(Flow {
        client,
        socket,
        uplink: Link::new(cli.uplink.clone(), up_seed, start),
        downlink: Link::new(cli.downlink.clone(), up_seed + 1, start),
    })
}
