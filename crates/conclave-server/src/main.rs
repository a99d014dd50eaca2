//! `conclave`: one binary serving the web client, signaling and the media server.

mod access;
mod api;
mod auth;
mod cli;
mod config;
mod fault;
mod http;
mod ids;
mod lifecycle;
mod media;
mod metrics;
mod privacy;
mod reach;
mod rooms_cmd;
mod signaling;
mod tap;
mod tls;
mod turn;
mod whip;

use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use clap::Parser;
use conclave_store::Store;
use tokio::signal::unix::{Signal, SignalKind, signal};
use tracing_subscriber::EnvFilter;

use crate::auth::{Throttle, TokenVerifier};
use crate::cli::{Cli, Cmd, ConfigCmd};
use crate::config::{AdhocRooms, Defaulted, LogFormat, LogSettings, Settings};
use crate::lifecycle::Lifecycle;
use crate::media::{MediaAddrs, MediaPlane, SettingsUpdate};
use crate::metrics::Metrics;
use crate::reach::{IceConfig, ReachArgs, TcpPlan, TurnCredentials};

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
    pub lifecycle: Arc<Lifecycle>,
    pub metrics: Arc<Metrics>,
    /// TURN servers and ICE policy handed to each participant in `welcome`.
    pub ice: Arc<IceConfig>,
    /// The admin API's bearer token; `None` turns the API off.
    pub admin_token: Option<Arc<str>>,
    /// Live WHIP/WHEP sessions.
    pub sessions: Arc<whip::Sessions>,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let settings = match config::load(&cli.settings, cli.config.as_deref()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("conclave: configuration error: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let result = match cli.command.clone() {
        Some(Cmd::Config(ConfigCmd::Check)) => {
            for name in config::unknown_env_vars() {
                eprintln!("conclave: warning: unknown environment variable {name} ignored");
            }
            settings
                .validate()
                .map(|()| print!("{}", settings.to_redacted_toml()))
                .map_err(|e| format!("configuration error: {e}"))
        }
        Some(Cmd::Rooms(cmd)) => {
            init_logging(&settings.log);
            rooms_cmd::run(&settings.server.data_dir.value(), cmd)
        }
        None => match settings.validate() {
            Ok(()) => {
                init_logging(&settings.log);
                for name in config::unknown_env_vars() {
                    tracing::warn!(variable = %name, "unknown CONCLAVE_ environment variable ignored");
                }
                serve(settings)
            }
            Err(e) => Err(format!("configuration error: {e}")),
        },
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("conclave: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn init_logging(log: &LogSettings) {
    // Default: our own info lines; str0m only warnings (its debug output names addresses).
    // The TURN crate's own messages name client addresses: off unless the filter names it.
    let filter = log
        .level
        .clone()
        .or_else(|| std::env::var("RUST_LOG").ok())
        .unwrap_or_else(|| "conclave=info,conclave_server=info,warn".to_owned());
    let filter = if filter.contains("turn") {
        filter
    } else {
        format!("{filter},turn=off")
    };
    let filter = EnvFilter::new(filter);
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false);
    match log.format.unwrap_or(LogFormat::Human) {
        // Colours only on a terminal: log files and journald get plain text.
        LogFormat::Human => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
            .init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn serve(s: Settings) -> Result<(), String> {
    let ips = s.candidate_ips().map_err(|e| e.to_string())?;
    let reach = s.ice.to_reach();
    let api = s.api.to_args();
    let tokens = token_verifier(&s)?.map(Arc::new);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .worker_threads(2)
        .thread_name("signaling")
        .build()
        .map_err(|e| format!("cannot start runtime: {e}"))?;
    runtime.block_on(async move {
        // From here on SIGTERM drains and SIGINT closes, instead of killing the process.
        let signals = Signals::new().map_err(|e| format!("cannot handle signals: {e}"))?;
        let tls = tls::load(&s).await?;
        let store = Store::open_sqlite(&s.server.data_dir.value())
            .await
            .map_err(|e| e.to_string())?;
        let udp = s.server.udp.value();
        // Shareable: each participant's address gets a socket of its own on this port.
        let socket = conclave_udp::bind_shared_first(udp).map_err(|e| match e.kind() {
            std::io::ErrorKind::AddrInUse => {
                format!("cannot bind UDP {udp}: the port is in use (another server running?)")
            }
            _ => format!("cannot bind UDP {udp}: {e}"),
        })?;
        conclave_udp::set_recv_buffer(socket.as_raw_fd(), media::SHARED_RECV_BUFFER);
        raise_open_files();
        let udp_port = socket
            .local_addr()
            .map_err(|e| format!("UDP socket: {e}"))?
            .port();
        let tcp = bind_ice_tcp(reach.tcp_plan(SocketAddr::new(udp.ip(), udp_port))).await?;
        let media_addrs = MediaAddrs {
            ips: ips.clone(),
            // Behind a port-forwarding NAT or relay, browsers reach another port than ours.
            udp_port: s.server.announce.map_or(udp_port, |a| a.port()),
            tcp_port: tcp
                .as_ref()
                .and_then(|l| l.local_addr().ok())
                .map(|a| a.port()),
        };
        if let Some(port) = media_addrs.tcp_port {
            tracing::info!(port, "ICE-TCP on");
        }
        let (_turn, ice) = start_turn(&reach, &media_addrs).await?;
        let workers = s.worker_count();
        let room_config = conclave_room::RoomConfig {
            reconnect_grace: Duration::from_secs(s.server.reconnect_grace.value()),
            adhoc_requires_host: s.server.adhoc_rooms.value() == AdhocRooms::Hosts,
            last_n: s.media.last_n.value().into(),
            audio_last_n: s.media.audio_last_n.value().into(),
            layer_policy: match s.media.layer_selection.value() {
                config::LayerSelection::Auto => conclave_room::LayerPolicy::Auto,
                config::LayerSelection::Highest => conclave_room::LayerPolicy::Highest,
            },
            ..Default::default()
        };
        let metrics = Arc::new(Metrics::new(workers));
        let (settings_tx, settings_rx) = tokio::sync::mpsc::unbounded_channel();
        let media = MediaPlane::start(
            socket,
            tcp,
            media_addrs,
            workers,
            room_config,
            Some(settings_tx),
            &metrics.workers,
        )
        .map_err(|e| format!("cannot start media workers: {e}"))?;
        tokio::spawn(save_settings(store.clone(), settings_rx));
        tokio::spawn(expire_rooms(store.clone()));
        let facts = privacy::Facts::from_settings(&s, tokens.is_some());
        let hsts = tls
            .as_ref()
            .is_some_and(|t| matches!(t.source, tls::Source::Files { .. }));
        let state = AppState {
            media,
            store: store.clone(),
            tokens,
            throttle: Arc::new(Throttle::new(3, Duration::from_secs(60))),
            knocks: Arc::new(Throttle::new(10, Duration::from_secs(60))),
            http: Arc::new(http::HttpConfig::new(
                s.server.frame_ancestors.as_deref(),
                facts,
                hsts,
            )),
            lifecycle: Arc::new(Lifecycle::default()),
            metrics,
            ice: Arc::new(ice),
            admin_token: api.admin_token.as_deref().map(Arc::from),
            sessions: Arc::new(whip::Sessions::new(api.whip_max_sessions)),
        };
        let result = run_http(&s, state, tls, signals, workers).await;
        store.close().await;
        tracing::info!("stopped");
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
    reach: &ReachArgs,
    media: &MediaAddrs,
) -> Result<(Option<turn::TurnServer>, IceConfig), String> {
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

fn token_verifier(s: &Settings) -> Result<Option<TokenVerifier>, String> {
    let aud = s.auth.jwt_audience.as_deref();
    let iss = s.auth.jwt_issuer.as_deref();
    if let Some(secret) = &s.auth.jwt_secret {
        return TokenVerifier::hs256(secret.0.as_bytes(), aud, iss)
            .map(Some)
            .map_err(|e| format!("`auth.jwt_secret`: {e}"));
    }
    if let Some(path) = &s.auth.jwt_public_key {
        let pem = std::fs::read(path)
            .map_err(|e| format!("`auth.jwt_public_key`: cannot read {}: {e}", path.display()))?;
        return TokenVerifier::public_key(&pem, aud, iss)
            .map(Some)
            .map_err(|e| format!("`auth.jwt_public_key`: {e}"));
    }
    Ok(None)
}

/// SIGTERM (systemd stop, container stop) and SIGINT (Ctrl-C).
struct Signals {
    term: Signal,
    int: Signal,
}

#[derive(Debug, PartialEq, Eq)]
enum Stop {
    /// Drain: meetings continue up to the drain timeout.
    Term,
    /// Close now.
    Int,
}

impl Signals {
    fn new() -> std::io::Result<Self> {
        Ok(Self {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
        })
    }

    async fn next(&mut self) -> Stop {
        tokio::select! {
            _ = self.term.recv() => Stop::Term,
            _ = self.int.recv() => Stop::Int,
        }
    }
}

/// Bind before serving, so a taken port is an error at start, not later.
fn bind(addr: SocketAddr, what: &str) -> Result<std::net::TcpListener, String> {
    let l = std::net::TcpListener::bind(addr)
        .map_err(|e| format!("cannot listen on {addr} ({what}): {e}"))?;
    l.set_nonblocking(true)
        .map_err(|e| format!("cannot listen on {addr} ({what}): {e}"))?;
    Ok(l)
}

async fn run_http(
    s: &Settings,
    state: AppState,
    tls: Option<tls::Tls>,
    mut signals: Signals,
    workers: usize,
) -> Result<(), String> {
    let metrics_here = s.metrics.enabled.unwrap_or(false) && s.metrics.listen.is_none();
    let mut app = Router::new()
        .route("/", get(http::index))
        .route("/healthz", get(http::healthz))
        .route("/readyz", get(http::readyz))
        .route("/privacy", get(privacy::page))
        .route("/ws", get(signaling::ws_handler))
        .route("/assets/{*path}", get(http::asset));
    if metrics_here {
        app = app.route("/metrics", get(metrics::scrape));
    }
    let mut app = app
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
        .with_state(state.clone());
    let listen = s.server.listen.value();
    let listener = bind(listen, "server.listen")?;
    let metrics_listener = match s.metrics.listen {
        Some(addr) => Some((addr, bind(addr, "metrics.listen")?)),
        None => None,
    };
    let handle = axum_server::Handle::new();
    if let Some((addr, l)) = metrics_listener {
        let router = Router::new()
            .route("/metrics", get(metrics::scrape))
            .with_state(state.clone());
        let server = axum_server::from_tcp(l)
            .map_err(|e| format!("cannot listen on {addr}: {e}"))?
            .handle(handle.clone());
        tracing::info!("metrics on http://{addr}/metrics");
        tokio::spawn(async move {
            if let Err(e) = server.serve(router.into_make_service()).await {
                tracing::error!(error = %e, "metrics server failed");
            }
        });
    }
    let scheme = if tls.is_some() { "https" } else { "http" };
    tracing::info!(
        "Conclave listening on {scheme}://{listen} (media on UDP {}, {workers} worker{})",
        s.server.udp.value(),
        if workers == 1 { "" } else { "s" }
    );

    let tls = tls.map(Arc::new);
    // Always handled: SIGHUP's default action would end the process (`systemctl reload`).
    let reloadable = tls.clone();
    let mut hup = signal(SignalKind::hangup()).map_err(|e| format!("cannot handle SIGHUP: {e}"))?;
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            match &reloadable {
                Some(tls) => tls.reload().await,
                None => tracing::info!("SIGHUP: no TLS certificate to reload"),
            }
        }
    });

    let lifecycle = state.lifecycle.clone();
    let drain_timeout = Duration::from_secs(s.server.drain_timeout.value());
    let stopper = handle.clone();
    let shutdown = tokio::spawn(async move {
        if signals.next().await == Stop::Term {
            lifecycle.drain(drain_timeout);
            tracing::info!(
                participants = lifecycle.sessions(),
                timeout_s = drain_timeout.as_secs(),
                "draining: no new joins, meetings continue until they end or the timeout"
            );
            tokio::select! {
                _ = tokio::time::sleep(drain_timeout) => {}
                _ = lifecycle.idle() => {}
                _ = signals.next() => {}
            }
        }
        tracing::info!("shutting down");
        lifecycle.close();
        // Connections send their close frames and end; don't wait long for slow clients.
        let _ = tokio::time::timeout(Duration::from_secs(2), lifecycle.idle()).await;
        stopper.graceful_shutdown(Some(Duration::from_secs(2)));
    });

    let make = app.into_make_service_with_connect_info::<SocketAddr>();
    let served = match &tls {
        Some(t) => {
            axum_server::from_tcp_rustls(listener, t.config.clone())
                .map_err(|e| format!("cannot listen on {listen}: {e}"))?
                .handle(handle.clone())
                .serve(make)
                .await
        }
        None => {
            axum_server::from_tcp(listener)
                .map_err(|e| format!("cannot listen on {listen}: {e}"))?
                .handle(handle.clone())
                .serve(make)
                .await
        }
    };
    shutdown.abort();
    served.map_err(|e| format!("server error: {e}"))
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

/// A participant holds a WebSocket and a media socket: lift the soft open-file limit (often
/// 1,024) to the hard one so that large rooms fit.
fn raise_open_files() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: get/setrlimit with a pointer to a live rlimit.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}
