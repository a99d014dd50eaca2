//! `/privacy`: what this server processes, for what, for how long and where, generated from its
//! actual configuration, in English and German.

use axum::extract::{Query, State};
use axum::http::{HeaderMap, header};
use axum::response::{Html, IntoResponse, Response};
use serde::Deserialize;

use crate::AppState;
use crate::config::{AdhocRooms, Defaulted, Settings};

/// The facts the page states, taken from the running configuration.
#[derive(Debug, Clone)]
pub struct Facts {
    pub tokens: bool,
    pub hosts_only: bool,
    pub reconnect_grace_secs: u64,
    pub log_filter: String,
    pub embedding: bool,
    pub turn: Turn,
}

/// Which TURN relay, if any, browsers are told to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Turn {
    None,
    BuiltIn,
    /// A relay the operator runs elsewhere (`--turn-url` without `--turn-listen`).
    External,
}

impl Facts {
    pub fn from_settings(s: &Settings, tokens: bool) -> Self {
        Self {
            tokens,
            hosts_only: s.server.adhoc_rooms.value() == AdhocRooms::Hosts,
            reconnect_grace_secs: s.server.reconnect_grace.value(),
            log_filter: s
                .log
                .level
                .clone()
                .unwrap_or_else(|| "conclave=info,warn".into()),
            embedding: s.server.frame_ancestors.is_some(),
            turn: match (
                &s.ice.turn_listen,
                s.ice.turn_urls.as_ref().is_none_or(Vec::is_empty),
            ) {
                (Some(_), _) => Turn::BuiltIn,
                (None, false) => Turn::External,
                (None, true) => Turn::None,
            },
        }
    }
}

#[derive(Deserialize)]
pub struct LangQuery {
    lang: Option<String>,
}

pub async fn page(
    State(state): State<AppState>,
    Query(q): Query<LangQuery>,
    headers: HeaderMap,
) -> Response {
    let german = match q.lang.as_deref() {
        Some(l) => l.starts_with("de"),
        None => headers
            .get(header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim_start().starts_with("de")),
    };
    let f = &state.http.privacy;
    Html(if german {
        german_page(f)
    } else {
        english_page(f)
    })
    .into_response()
}

fn html(lang: &str, title: &str, body: String) -> String {
    format!(
        "<!doctype html><html lang=\"{lang}\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{title}</title>\
<link rel=\"stylesheet\" href=\"/assets/privacy.css\"></head><body><main class=\"privacy\">{body}\
<p class=\"lang\"><a href=\"/privacy?lang=en\">English</a> · <a href=\"/privacy?lang=de\">Deutsch</a></p>\
</main></body></html>"
    )
}

fn english_page(f: &Facts) -> String {
    let tokens = if f.tokens {
        "Join tokens from your organisation's sign-in service are checked here (signature, expiry, room). The name in a token is shown to the other participants. Tokens are not stored or logged. With a token, streaming software (WHIP/WHEP) can join a meeting whose moderator allows participants who cannot encrypt; it is shown to everyone as a participant."
    } else {
        "Join tokens are not used on this server."
    };
    let hosts = if f.hosts_only {
        " Only a signed-in host can open a meeting that is not set up in advance."
    } else {
        ""
    };
    let embed = if f.embedding {
        "Meetings may be embedded in the operator's own learning or intranet sites."
    } else {
        "Meetings cannot be embedded in other sites."
    };
    let turn = match f.turn {
        Turn::None => "",
        Turn::BuiltIn => {
            " If your network blocks direct media connections, your browser may send its (encrypted) media through this server's own TURN relay, which sees your IP address but not the content."
        }
        Turn::External => {
            " If your network blocks direct media connections, your browser may send its (encrypted) media through a TURN relay the operator runs; it sees your IP address and how much you send, but not the content."
        }
    };
    html(
        "en",
        "Privacy — Conclave",
        format!(
            "<h1>Privacy on this Conclave server</h1>\
<p>This meeting service runs on the operator's own server. Nothing about your meeting is sent to any other company or service: the page loads nothing from elsewhere, and your audio and video travel only between your browser and this server.</p>\
<h2>What is processed, and why</h2><ul>\
<li><b>Your display name</b> — shown to the other participants. Kept in memory only while you are in the meeting.</li>\
<li><b>Your audio and video</b> — received by this server and forwarded to the other participants in real time. Never recorded, never stored.</li>\
<li><b>Microphone and camera state, role (moderator or not)</b> — shown to the others; in memory only for the meeting.</li>\
<li><b>Your IP address</b> — needed to connect. Used in memory to deliver media and to slow down password guessing; never written to disk or to logs. Forgotten at the latest 10 minutes after the last failed attempt.</li>\
<li><b>Passwords</b> — checked and discarded; room passwords are stored only as salted hashes (argon2id).</li>\
<li>{tokens}</li></ul>\
<h2>How long</h2><p>Meeting state exists in memory while the meeting runs and is gone when it ends. If your connection drops, you are kept in the meeting for {grace} seconds so you can come back. There is no chat history, recording or attendance list on the server.</p>\
<h2>What is stored</h2><p>Only rooms the operator sets up in advance: the room name, its settings (lobby on/off), salted hashes of its passwords, and an optional expiry date, in a database on this server.{hosts}</p>\
<h2>Logs</h2><p>The server writes operational logs (level: <code>{log}</code>) with no IP addresses, names, room names, passwords, tokens or web addresses. How long logs are kept is the operator's choice.</p>\
<h2>Other parties</h2><p>None. No external STUN/TURN servers, fonts, analytics, avatars or update checks. Media goes through this server only, so participants do not learn each other's IP addresses.{turn} {embed}</p>\
<h2>Who is responsible</h2><p>The organisation that runs this server is the controller for this processing. Ask them about your rights of access, rectification and erasure.</p>",
            grace = f.reconnect_grace_secs,
            log = escape(&f.log_filter),
        ),
    )
}

fn german_page(f: &Facts) -> String {
    let tokens = if f.tokens {
        "Zugangstoken des Anmeldedienstes Ihrer Organisation werden hier geprüft (Signatur, Gültigkeit, Raum). Der Name im Token wird den anderen Teilnehmenden angezeigt. Token werden weder gespeichert noch protokolliert. Mit einem Token kann Streaming-Software (WHIP/WHEP) an einer Besprechung teilnehmen, deren Moderation Teilnehmende ohne Verschlüsselung zulässt; sie wird allen als Teilnehmende angezeigt."
    } else {
        "Zugangstoken werden auf diesem Server nicht verwendet."
    };
    let hosts = if f.hosts_only {
        " Nur angemeldete Gastgeber können Besprechungen eröffnen, die nicht vorab eingerichtet wurden."
    } else {
        ""
    };
    let embed = if f.embedding {
        "Besprechungen können in Lern- oder Intranetseiten des Betreibers eingebettet werden."
    } else {
        "Besprechungen können nicht in andere Seiten eingebettet werden."
    };
    let turn = match f.turn {
        Turn::None => "",
        Turn::BuiltIn => {
            " Blockiert Ihr Netz direkte Medienverbindungen, kann Ihr Browser seine (verschlüsselten) Medien über das TURN-Relais dieses Servers senden; es sieht Ihre IP-Adresse, nicht aber die Inhalte."
        }
        Turn::External => {
            " Blockiert Ihr Netz direkte Medienverbindungen, kann Ihr Browser seine (verschlüsselten) Medien über ein TURN-Relais des Betreibers senden; es sieht Ihre IP-Adresse und die Datenmenge, nicht aber die Inhalte."
        }
    };
    html(
        "de",
        "Datenschutz — Conclave",
        format!(
            "<h1>Datenschutz auf diesem Conclave-Server</h1>\
<p>Dieser Besprechungsdienst läuft auf dem eigenen Server des Betreibers. Nichts über Ihre Besprechung wird an andere Unternehmen oder Dienste übermittelt: Die Seite lädt nichts von anderswo, und Ihr Ton und Bild laufen nur zwischen Ihrem Browser und diesem Server.</p>\
<h2>Was verarbeitet wird und wozu</h2><ul>\
<li><b>Ihr Anzeigename</b> — wird den anderen Teilnehmenden angezeigt. Nur im Arbeitsspeicher, solange Sie teilnehmen.</li>\
<li><b>Ihr Ton und Bild</b> — werden von diesem Server empfangen und in Echtzeit an die anderen Teilnehmenden weitergeleitet. Nie aufgezeichnet, nie gespeichert.</li>\
<li><b>Mikrofon- und Kamerastatus, Rolle (Moderation oder nicht)</b> — für die anderen sichtbar; nur im Arbeitsspeicher für die Dauer der Besprechung.</li>\
<li><b>Ihre IP-Adresse</b> — für die Verbindung nötig. Wird im Arbeitsspeicher zur Medienzustellung und zum Bremsen von Passwort-Rateversuchen verwendet; nie auf Datenträger oder in Protokolle geschrieben. Spätestens 10 Minuten nach dem letzten Fehlversuch vergessen.</li>\
<li><b>Passwörter</b> — werden geprüft und verworfen; Raumpasswörter werden nur als gesalzene Hashwerte (argon2id) gespeichert.</li>\
<li>{tokens}</li></ul>\
<h2>Wie lange</h2><p>Besprechungsdaten existieren im Arbeitsspeicher, solange die Besprechung läuft, und sind danach weg. Bricht Ihre Verbindung ab, bleiben Sie {grace} Sekunden lang in der Besprechung, damit Sie zurückkehren können. Auf dem Server gibt es keinen Chatverlauf, keine Aufzeichnung und keine Teilnehmerliste.</p>\
<h2>Was gespeichert wird</h2><p>Nur Räume, die der Betreiber vorab einrichtet: Raumname, Einstellungen (Warteraum an/aus), gesalzene Hashwerte der Passwörter und ein optionales Ablaufdatum, in einer Datenbank auf diesem Server.{hosts}</p>\
<h2>Protokolle</h2><p>Der Server schreibt Betriebsprotokolle (Stufe: <code>{log}</code>) ohne IP-Adressen, Namen, Raumnamen, Passwörter, Token oder Webadressen. Wie lange Protokolle aufbewahrt werden, entscheidet der Betreiber.</p>\
<h2>Andere Beteiligte</h2><p>Keine. Keine externen STUN/TURN-Server, Schriftarten, Analysewerkzeuge, Avatare oder Update-Prüfungen. Medien laufen nur über diesen Server, daher erfahren Teilnehmende nicht die IP-Adressen der anderen.{turn} {embed}</p>\
<h2>Verantwortlich</h2><p>Verantwortlich für diese Verarbeitung ist die Organisation, die diesen Server betreibt. Wenden Sie sich an sie für Ihre Rechte auf Auskunft, Berichtigung und Löschung.</p>",
            grace = f.reconnect_grace_secs,
            log = escape(&f.log_filter),
        ),
    )
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
