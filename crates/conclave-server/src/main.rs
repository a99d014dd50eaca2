//! `conclave`: one binary serving the web client, signaling and the media server.

mod access;
mod api;
mod auth;
mod cli;
mod http;
mod ids;
mod media;
mod privacy;
mod rooms_cmd;
mod signaling;
mod tap;
mod whip;

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
use crate::media::{MediaPlane, SettingsUpdate};

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
    /// The admin API's bearer token; `None` turns the API off.
    pub admin_token: Option<Arc<str>>,
    /// Live WHIP/WHEP sessions.
    pub sessions: Arc<whip::Sessions>,
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
    let filter = filter
        .map(EnvFilter::new)
        .or_else(|| EnvFilter::try_from_default_env().ok())
        .unwrap_or_else(|| EnvFilter::new("conclave=info,conclave_server=info,warn"));
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
    let candidate = args.candidate_addr()?;
    args.api.check()?;
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
        let workers = args.worker_count();
        let room_config = conclave_room::RoomConfig {
            reconnect_grace: Duration::from_secs(args.reconnect_grace),
            adhoc_requires_host: args.adhoc_rooms == AdhocRooms::Hosts,
            ..Default::default()
        };
        let (settings_tx, settings_rx) = tokio::sync::mpsc::unbounded_channel();
        let media = MediaPlane::start(socket, candidate, workers, room_config, Some(settings_tx))
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
            admin_token: args.api.admin_token.as_deref().map(Arc::from),
            sessions: Arc::new(whip::Sessions::new(args.api.whip_max_sessions)),
        };
        let result = run_http(&args, state, workers).await;
        store.close().await;
        result
    })
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
    let mut app = Router::new()
        .route("/", get(http::index))
        .route("/healthz", get(http::healthz))
        .route("/privacy", get(privacy::page))
        .route("/ws", get(signaling::ws_handler))
        .route("/assets/{*path}", get(http::asset))
        .route("/{room}", get(http::room_page))
        .merge(whip::routes());
    if let Some(api) = api::router(&state) {
        app = app.merge(api);
    }
    let app = app
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
