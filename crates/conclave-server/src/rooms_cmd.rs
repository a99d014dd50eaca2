//! `conclave rooms add|list|remove`: manage persistent rooms in the data directory.

use std::path::Path;

use conclave_store::{Store, StoredRoom};

use crate::access::unix_now;
use crate::auth;
use crate::cli::RoomsCmd;
use crate::ids::random_token;

pub fn run(data_dir: &Path, cmd: RoomsCmd) -> Result<(), String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(async {
        let store = Store::open_sqlite(data_dir)
            .await
            .map_err(|e| e.to_string())?;
        let result = match cmd {
            RoomsCmd::Add {
                name,
                lobby,
                with_password,
                expires_in,
            } => add(&store, name, lobby, with_password, expires_in).await,
            RoomsCmd::List => list(&store).await,
            RoomsCmd::Remove { name } => {
                match store.remove_room(&name).await.map_err(|e| e.to_string())? {
                    true => {
                        println!("Removed room '{name}'.");
                        Ok(())
                    }
                    false => Err(format!("no persistent room named '{name}'")),
                }
            }
        };
        store.close().await;
        result
    })
}

/// A secret from the environment, or a fresh one to print once.
fn secret_from_env_or_new(var: &str) -> (String, bool) {
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => (v, false),
        _ => (random_token(16), true),
    }
}

async fn add(
    store: &Store,
    name: String,
    lobby: bool,
    with_password: bool,
    expires_in: Option<i64>,
) -> Result<(), String> {
    conclave_proto::validate_room_name(&name).map_err(|e| e.to_string())?;
    let (moderator_pw, show_moderator) = secret_from_env_or_new("CONCLAVE_MODERATOR_PASSWORD");
    let room_pw = with_password.then(|| secret_from_env_or_new("CONCLAVE_ROOM_PASSWORD"));
    let now = unix_now();
    let room = StoredRoom {
        name: name.clone(),
        moderator_password_hash: Some(auth::hash_password(&moderator_pw)?),
        password_hash: room_pw
            .as_ref()
            .map(|(p, _)| auth::hash_password(p))
            .transpose()?,
        lobby,
        created_at: now,
        expires_at: expires_in.map(|s| now + s),
    };
    store.add_room(&room).await.map_err(|e| e.to_string())?;
    println!("Created persistent room '{name}'.");
    if show_moderator {
        println!("Moderator password (shown once, only its hash is stored): {moderator_pw}");
    }
    if let Some((pw, true)) = room_pw {
        println!("Room password for everyone (shown once): {pw}");
    }
    Ok(())
}

async fn list(store: &Store) -> Result<(), String> {
    let rooms = store.list_rooms().await.map_err(|e| e.to_string())?;
    if rooms.is_empty() {
        println!("No persistent rooms.");
        return Ok(());
    }
    println!(
        "{:<32} {:<6} {:<9} {:<20}",
        "ROOM", "LOBBY", "PASSWORD", "EXPIRES (UTC)"
    );
    for r in rooms {
        let expires = r.expires_at.map_or("never".to_owned(), format_unix);
        let yes = |b: bool| if b { "yes" } else { "no" };
        println!(
            "{:<32} {:<6} {:<9} {:<20}",
            r.name,
            yes(r.lobby),
            yes(r.password_hash.is_some()),
            expires
        );
    }
    Ok(())
}

/// `YYYY-MM-DD HH:MM` in UTC, without a date library (civil-from-days, H. Hinnant).
fn format_unix(t: i64) -> String {
    let days = t.div_euclid(86_400);
    let secs = t.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}",
        secs / 3600,
        secs % 3600 / 60
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn dates() {
        assert_eq!(super::format_unix(0), "1970-01-01 00:00");
        assert_eq!(super::format_unix(1_796_000_000), "2026-11-30 00:53");
    }
}
