//! `conclave-load`: see the library documentation. Prints a live progress line, then a summary
//! table, and writes the summary as JSON.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use conclave_load::{LoadConfig, Target, ViewMode};

/// Simulated participants that load a Conclave server (or a Janus VideoRoom) and measure it.
#[derive(Debug, Parser)]
#[command(name = "conclave-load", version, about)]
struct Cli {
    /// Which server to load.
    #[arg(long, value_enum, default_value = "conclave")]
    target: Target,
    /// Conclave: its HTTP address. Janus: its HTTP API address (the `/janus` path is implied).
    #[arg(long, default_value = "127.0.0.1:8080", value_name = "HOST:PORT")]
    url: String,
    #[arg(long, default_value_t = 1)]
    rooms: usize,
    /// Conclave: name the rooms (comma-separated; sets their number) instead of `load-0`, …
    #[arg(long, value_delimiter = ',', value_name = "NAMES")]
    room_names: Vec<String>,
    /// Publishers per room (each also receives every other publisher).
    #[arg(long, default_value_t = 1)]
    publishers: usize,
    /// Receive-only participants per room.
    #[arg(long, default_value_t = 10)]
    subscribers: usize,
    /// Measurement window after everyone has connected, e.g. `30s`, `2m`, `500ms`.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    duration: Duration,
    /// Joins per second.
    #[arg(long, default_value_t = 50.0)]
    ramp: f64,
    /// Pause between the last connection and the measurement.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    settle: Duration,
    /// Local address for the participants' UDP sockets (defaults to the server's host).
    #[arg(long)]
    bind: Option<IpAddr>,
    /// Video bit rate per publisher in kbit/s (Chrome's simulcast layers: 150, 500, 2500); 0 for
    /// audio only.
    #[arg(long, default_value_t = 500)]
    video_kbps: u32,
    /// Send video as three simulcast layers, as Chrome does for a camera: `--video-kbps` is the
    /// top layer's rate, the others get Chrome's shares of it (150 and 500 kbit/s at 2,500).
    /// Receivers get whichever layer the server forwards (both servers: the top one, unless a
    /// Conclave `--view` asks for less).
    #[arg(long, conflicts_with = "video_clip")]
    simulcast: bool,
    /// Send transport-wide congestion feedback, as browsers do: a Conclave server then runs its
    /// downlink estimator and pacer for every participant. Every receiver hands its packets to
    /// str0m (decrypting them) to produce the feedback, which costs the generator more.
    #[arg(long)]
    twcc: bool,
    /// Send a real VP8 clip (320x180, about 140 kbit/s, like a camera's lowest simulcast layer)
    /// that browsers in the room can decode and show, instead of video shaped by `--video-kbps`.
    #[arg(long)]
    video_clip: bool,
    /// Join declaring that participants cannot encrypt end to end (`"e2ee": false`), so that
    /// encrypting browsers in the room show their video; a moderator must allow such participants.
    #[arg(long)]
    plain: bool,
    /// Publish no audio.
    #[arg(long)]
    no_audio: bool,
    #[arg(long, default_value = "3s", value_parser = parse_duration)]
    keyframe_every: Duration,
    /// Every n-th peer connection decrypts and checks payloads (latency, end-to-end loss); the
    /// rest count packets from RTP headers only.
    #[arg(long, default_value_t = 10)]
    verify_every: usize,
    /// Receive without UDP GRO: a server's GSO message (several datagrams to one participant)
    /// is then split on delivery, which loopback does inside the server's send call, on its
    /// account. By default participants take such a message whole and split it themselves, so
    /// the server is charged for sending it, as on a real network.
    #[arg(long)]
    no_gro: bool,
    /// Run at the normal scheduling policy. By default the generator runs as `SCHED_BATCH`:
    /// woken by a datagram from the server, its threads do not preempt the server in the middle
    /// of a send. Sharing the server's cores is an artefact of the benchmark (a real server's
    /// participants are other machines), and being preempted while sending costs the server
    /// context switches that it would not have in service.
    #[arg(long)]
    no_batch: bool,
    /// Media threads in the generator.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// The server's process id, to measure its CPU time and memory.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Longest wait for everyone to connect.
    #[arg(long, default_value = "120s", value_parser = parse_duration)]
    connect_timeout: Duration,
    /// Conclave: what participants show, so which videos they receive: `none` (no `view`:
    /// everyone's video up to the server's last-N, the throughput benchmark), `grid` (the first
    /// page of a 16-tile grid) or `mixed` (three in four the grid, one in four the speaker view,
    /// as in a real meeting).
    #[arg(long, value_enum, default_value = "none")]
    view: ViewMode,
    /// Publishers talk one at a time for this long each, the others sending DTX silence, as in a
    /// real meeting; `0` (the throughput benchmark): everyone talks all the time.
    #[arg(long, default_value = "0", value_parser = parse_duration)]
    turn: Duration,
    /// Measure the machine instead of a server: the kernel's cost per datagram of sending
    /// what a forwarding server sends at 1 -> N (a GSO message of `--ceiling-segments`
    /// datagrams of 1,200 bytes to each of `--ceiling-destinations` sockets, received with
    /// GRO), from `--bind` for `--duration`. The ceiling a server's packets per CPU-second are
    /// read against, measured the same hour.
    #[arg(long)]
    ceiling: bool,
    #[arg(long, default_value_t = 200, requires = "ceiling")]
    ceiling_destinations: usize,
    #[arg(long, default_value_t = 9, requires = "ceiling")]
    ceiling_segments: usize,
    /// Write the summary as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// A label stored in the JSON (e.g. the load's name in a benchmark).
    #[arg(long)]
    label: Option<String>,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .map_or((s, "s"), |i| s.split_at(i));
    let v: f64 = num.parse().map_err(|_| format!("bad duration {s:?}"))?;
    let secs = match unit {
        "ms" => v / 1000.0,
        "s" => v,
        "m" => v * 60.0,
        _ => return Err(format!("bad duration unit in {s:?} (ms, s, m)")),
    };
    Duration::try_from_secs_f64(secs).map_err(|e| e.to_string())
}

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    if !cli.no_batch {
        set_batch_policy();
    }
    match run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("conclave-load: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// `SCHED_BATCH` for this thread and so for every thread it starts afterwards.
fn set_batch_policy() {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: pid 0 is the calling thread; `param` is a live sched_param.
    if unsafe { libc::sched_setscheduler(0, libc::SCHED_BATCH, &param) } != 0 {
        eprintln!(
            "conclave-load: could not switch to SCHED_BATCH: {}",
            std::io::Error::last_os_error()
        );
    }
}

fn run(cli: Cli) -> Result<(), String> {
    if cli.ceiling {
        return ceiling(&cli);
    }
    let url = cli
        .url
        .trim_start_matches("http://")
        .trim_start_matches("ws://")
        .split('/')
        .next()
        .unwrap_or_default()
        .to_owned();
    let server: SocketAddr = url
        .to_socket_addrs()
        .map_err(|e| format!("bad --url {}: {e}", cli.url))?
        .next()
        .ok_or_else(|| format!("bad --url {}", cli.url))?;
    let mut cfg = LoadConfig::new(cli.target, server);
    cfg.rooms = if cli.room_names.is_empty() {
        cli.rooms
    } else {
        cli.room_names.len()
    };
    cfg.room_names = cli.room_names;
    cfg.publishers = cli.publishers;
    cfg.subscribers = cli.subscribers;
    cfg.duration = cli.duration;
    cfg.ramp = cli.ramp;
    cfg.settle = cli.settle;
    cfg.bind_ip = cli.bind.unwrap_or(server.ip());
    cfg.audio = !cli.no_audio;
    cfg.video_kbps = cli.video_kbps;
    cfg.video_clip = cli.video_clip;
    cfg.plain = cli.plain;
    cfg.keyframe_every = cli.keyframe_every;
    cfg.verify_every = cli.verify_every;
    cfg.threads = cli.threads;
    cfg.gro = !cli.no_gro;
    cfg.simulcast = cli.simulcast;
    cfg.twcc = cli.twcc;
    cfg.server_pid = cli.server_pid;
    cfg.progress = true;
    cfg.connect_timeout = cli.connect_timeout;
    cfg.view = cli.view;
    cfg.turn = (!cli.turn.is_zero()).then_some(cli.turn);

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let summary = runtime
        .block_on(conclave_load::run(cfg))
        .map_err(|e| e.to_string())?;
    println!("{}", summary.table());
    if let Some(path) = cli.json {
        let mut v = serde_json::to_value(&summary).map_err(|e| e.to_string())?;
        if let Some(label) = cli.label {
            v["label"] = serde_json::Value::String(label);
        }
        let text = serde_json::to_string_pretty(&v).map_err(|e| e.to_string())?;
        std::fs::write(&path, text + "\n").map_err(|e| format!("{}: {e}", path.display()))?;
    }
    // Exit without waiting for leftover tasks (long polls, closing sockets).
    runtime.shutdown_timeout(Duration::from_millis(200));
    Ok(())
}

fn ceiling(cli: &Cli) -> Result<(), String> {
    let cfg = conclave_load::ceiling::CeilingConfig {
        bind: cli.bind.unwrap_or(IpAddr::from([127, 0, 0, 1])),
        destinations: cli.ceiling_destinations,
        segments: cli.ceiling_segments,
        datagram_bytes: 1200,
        duration: cli.duration,
    };
    let r = conclave_load::ceiling::run(&cfg).map_err(|e| format!("ceiling: {e}"))?;
    println!(
        "ceiling: {} x {}-byte datagrams per GSO message to each of {} sockets",
        r.segments, r.datagram_bytes, r.destinations
    );
    println!(
        "  sent {} / received {} datagrams, sender CPU {:.2} s",
        r.sent, r.received, r.sender_cpu_s
    );
    println!(
        "  {:.0} packets per CPU-second ({:.2} us per packet)",
        r.packets_per_cpu_s, r.cpu_us_per_packet
    );
    if let Some(path) = &cli.json {
        let json = serde_json::to_string_pretty(&r).map_err(|e| e.to_string())?;
        std::fs::write(path, json).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(())
}
