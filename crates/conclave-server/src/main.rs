//! `conclave`: one binary serving the web client, signaling and the media server.

mod access;
mod auth;
mod cli;
mod http;
mod ids;
mod media;
mod privacy;
mod reach;
mod rooms_cmd;
mod signaling;
mod tap;
mod turn;

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use clap::Parser;
use conclave_store::Store;
use tracing_subscriber::EnvFilter;

use crate::auth::{Throttle, TokenVerifier};
use crate::cli::{AdhocRooms, Cli, Cmd, ServeArgs};
use crate::media::{MediaAddrs, MediaPlane, SettingsUpdate};
use crate::reach::{IceConfig, TcpPlan, TurnCredentials};

#[derive(Clone)]
pub struct AppState {
    pub media: MediaPlane,
    pub store: Store,
    pub tokens: Option<Arc<TokenVerifier>>,
    /// Wrong passwords, per room and per source address.
    pub throttle: Arc<Throttle>,
    /// Lobby knocks per source address.
    pub knocks: Arc<Throttle>,
    pub http: Arc<http::HttpConfig>,
    /// TURN servers and ICE policy handed to each participant in `welcome`.
    pub ice: Arc<IceConfig>,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    init_logging(cli.serve.log.as_deref());
    let result = match cli.command.clone() {
        Some(Cmd::Rooms(cmd)) => rooms_cmd::run(&cli.data_dir, cmd),
        None => serve(cli),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("conclave: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn init_logging(filter: Option<&str>) {
    // Default: our own info lines; str0m only warnings (its debug output names addresses).
    // The TURN crate's own messages name client addresses: off unless the filter names it.
    let filter = filter
        .map(str::to_owned)
        .or_else(|| std::env::var("RUST_LOG").ok())
        .unwrap_or_else(|| "conclave=info,conclave_server=info,warn".to_owned());
    let filter = if filter.contains("turn") {
        filter
    } else {
        format!("{filter},turn=off")
    };
    let filter = EnvFilter::new(filter);
    // Colours only on a terminal: log files and journald get plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(ansi)
        .init();
}

fn serve(cli: Cli) -> Result<(), String> {
    let args = cli.serve.clone();
    let ips = args.candidate_ips()?;
    args.reach.validate()?;
    let tokens = token_verifier(&args)?.map(Arc::new);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .worker_threads(2)
        .thread_name("signaling")
        .build()
        .map_err(|e| format!("cannot start runtime: {e}"))?;
    runtime.block_on(async move {
        let store = Store::open_sqlite(&cli.data_dir)
            .await
            .map_err(|e| e.to_string())?;
        let socket =
            UdpSocket::bind(args.udp).map_err(|e| format!("cannot bind UDP {}: {e}", args.udp))?;
        let udp_port = socket
            .local_addr()
            .map_err(|e| format!("UDP socket: {e}"))?
            .port();
        let tcp = bind_ice_tcp(
            args.reach
                .tcp_plan(SocketAddr::new(args.udp.ip(), udp_port)),
        )
        .await?;
        let media_addrs = MediaAddrs {
            ips: ips.clone(),
            udp_port,
            tcp_port: tcp
                .as_ref()
                .and_then(|l| l.local_addr().ok())
                .map(|a| a.port()),
        };
        if let Some(port) = media_addrs.tcp_port {
            tracing::info!(port, "ICE-TCP on");
        }
        let (_turn, ice) = start_turn(&args, &media_addrs).await?;
        let workers = args.worker_count();
        let room_config = conclave_room::RoomConfig {
            reconnect_grace: Duration::from_secs(args.reconnect_grace),
            adhoc_requires_host: args.adhoc_rooms == AdhocRooms::Hosts,
            ..Default::default()
        };
        let (settings_tx, settings_rx) = tokio::sync::mpsc::unbounded_channel();
        let media = MediaPlane::start(
            socket,
            tcp,
            media_addrs,
            workers,
            room_config,
            Some(settings_tx),
        )
        .map_err(|e| format!("cannot start media workers: {e}"))?;
        tokio::spawn(save_settings(store.clone(), settings_rx));
        tokio::spawn(expire_rooms(store.clone()));
        let facts = privacy::Facts::from_args(&args, tokens.is_some());
        let state = AppState {
            media,
            store: store.clone(),
            tokens,
            throttle: Arc::new(Throttle::new(3, Duration::from_secs(60))),
            knocks: Arc::new(Throttle::new(10, Duration::from_secs(60))),
            http: Arc::new(http::HttpConfig::new(
                args.frame_ancestors.as_deref(),
                facts,
            )),
            ice: Arc::new(ice),
        };
        let result = run_http(&args, state, workers).await;
        store.close().await;
        result
    })
}

/// The ICE-TCP listener, if wanted. The default (the UDP port number, over TCP) is best effort:
/// when that TCP port is taken, media still works over UDP.
async fn bind_ice_tcp(plan: TcpPlan) -> Result<Option<tokio::net::TcpListener>, String> {
    match plan {
        TcpPlan::Off => Ok(None),
        TcpPlan::Required(a) => tokio::net::TcpListener::bind(a)
            .await
            .map(Some)
            .map_err(|e| format!("cannot bind ICE-TCP {a}: {e}")),
        TcpPlan::BestEffort(a) => match tokio::net::TcpListener::bind(a).await {
            Ok(l) => Ok(Some(l)),
            Err(e) => {
                tracing::warn!(error = %e, port = a.port(), "ICE-TCP off: its port is not available");
                Ok(None)
            }
        },
    }
}

/// Start the built-in TURN server if configured, and settle what `welcome` hands out.
async fn start_turn(
    args: &ServeArgs,
    media: &MediaAddrs,
) -> Result<(Option<turn::TurnServer>, IceConfig), String> {
    let reach = &args.reach;
    let Some(listen) = reach.turn_listen else {
        return Ok((None, reach.ice_config(&[], None)?));
    };
    let generated = reach.turn_secret.is_none().then(reach::random_secret);
    let secret = reach
        .turn_secret
        .as_deref()
        .or(generated.as_deref())
        .unwrap_or_default();
    let ttl = Duration::from_secs(reach.turn_credential_ttl.max(60));
    let server = turn::start(listen, &media.ips, media, TurnCredentials::new(secret, ttl)).await?;
    let public: Vec<SocketAddr> = if listen.ip().is_unspecified() {
        media
            .ips
            .iter()
            .map(|ip| SocketAddr::new(*ip, listen.port()))
            .collect()
    } else {
        vec![listen]
    };
    tracing::info!(port = listen.port(), "built-in TURN server on UDP and TCP");
    Ok((
        Some(server),
        reach.ice_config(&public, generated.as_deref())?,
    ))
}

fn token_verifier(args: &ServeArgs) -> Result<Option<TokenVerifier>, String> {
    let aud = args.jwt_audience.as_deref();
    let iss = args.jwt_issuer.as_deref();
    if let Some(secret) = &args.jwt_secret {
        if secret.len() < 32 {
            return Err("--jwt-secret must be at least 32 characters".into());
        }
        return TokenVerifier::hs256(secret.as_bytes(), aud, iss)
            .map(Some)
            .map_err(|e| e.to_string());
    }
    if let Some(path) = &args.jwt_public_key {
        let pem =
            std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        return TokenVerifier::public_key(&pem, aud, iss)
            .map(Some)
            .map_err(|e| e.to_string());
    }
    Ok(None)
}

async fn run_http(args: &ServeArgs, state: AppState, workers: usize) -> Result<(), String> {
    let app = Router::new()
        .route("/", get(http::index))
        .route("/healthz", get(http::healthz))
        .route("/privacy", get(privacy::page))
        .route("/ws", get(signaling::ws_handler))
        .route("/assets/{*path}", get(http::asset))
        .route("/{room}", get(http::room_page))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            http::security_headers,
        ))
        .with_state(state);
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    tracing::info!(
        "Conclave listening on http://{} (media on UDP {}, {} worker{})",
        args.listen,
        args.udp,
        workers,
        if workers == 1 { "" } else { "s" }
    );
    // SIGINT (Ctrl-C) or SIGTERM (systemd, container stop): stop accepting, close connections,
    // close the store cleanly. Meeting state is in memory only, so nothing else needs saving.
    let shutdown = async {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
        }
        tracing::info!("shutting down");
    };
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
    .map_err(|e| format!("server error: {e}"))
}

/// Persist settings moderators changed in persistent rooms, off the media threads.
async fn save_settings(store: Store, mut rx: tokio::sync::mpsc::UnboundedReceiver<SettingsUpdate>) {
    while let Some(u) = rx.recv().await {
        if let Err(e) = store
            .update_settings(&u.room, u.lobby, u.password_hash.as_deref())
            .await
        {
            tracing::error!(error = %e, "saving room settings failed");
        }
    }
}

/// Enforce persistent rooms' expiry: expired rooms are deleted, not just hidden.
async fn expire_rooms(store: Store) {
    let mut tick = tokio::time::interval(Duration::from_secs(600));
    loop {
        tick.tick().await;
        match store.delete_expired(access::unix_now()).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(rooms = n, "expired persistent rooms deleted"),
            Err(e) => tracing::error!(error = %e, "deleting expired rooms failed"),
        }
    }
}
