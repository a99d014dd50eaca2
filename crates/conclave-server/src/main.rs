//! `conclave`: one binary serving the web client, signaling and the media server.

mod cli;
mod http;
mod ids;
mod media;
mod signaling;
mod tap;

use std::net::UdpSocket;

use axum::Router;
use axum::routing::get;
use clap::Parser;
use tracing_subscriber::EnvFilter;

use crate::cli::Cli;
use crate::media::MediaPlane;

#[derive(Clone)]
pub struct AppState {
    pub media: MediaPlane,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    init_logging(&cli);
    match run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("conclave: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn init_logging(cli: &Cli) {
    // Default: our own info lines; str0m only warnings (its debug output names addresses).
    let filter = cli
        .log
        .as_deref()
        .map(EnvFilter::new)
        .or_else(|| EnvFilter::try_from_default_env().ok())
        .unwrap_or_else(|| EnvFilter::new("conclave=info,conclave_server=info,warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .init();
}

fn run(cli: Cli) -> Result<(), String> {
    let candidate = cli.candidate_addr()?;
    let socket =
        UdpSocket::bind(cli.udp).map_err(|e| format!("cannot bind UDP {}: {e}", cli.udp))?;
    let workers = cli.worker_count();
    let room_config = conclave_room::RoomConfig {
        reconnect_grace: std::time::Duration::from_secs(cli.reconnect_grace),
        ..Default::default()
    };
    let media = MediaPlane::start(socket, candidate, workers, room_config)
        .map_err(|e| format!("cannot start media workers: {e}"))?;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .worker_threads(2)
        .thread_name("signaling")
        .build()
        .map_err(|e| format!("cannot start runtime: {e}"))?;
    runtime.block_on(serve(cli, media, workers))
}

async fn serve(cli: Cli, media: MediaPlane, workers: usize) -> Result<(), String> {
    let state = AppState { media };
    let app = Router::new()
        .route("/", get(http::index))
        .route("/healthz", get(http::healthz))
        .route("/ws", get(signaling::ws_handler))
        .route("/assets/{*path}", get(http::asset))
        .route("/{room}", get(http::room_page))
        .layer(axum::middleware::from_fn(http::security_headers))
        .with_state(state);
    let listener = tokio::net::TcpListener::bind(cli.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", cli.listen))?;
    tracing::info!(
        "Conclave listening on http://{} (media on UDP {}, {} worker{})",
        cli.listen,
        cli.udp,
        workers,
        if workers == 1 { "" } else { "s" }
    );
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(|e| format!("server error: {e}"))
}
