//! Storage for what must outlive a meeting: persistent rooms and their settings. Meeting state
//! (participants, media, chat) is never stored.
//!
//! Callers use [`Store`] only; the backend behind it is private, so PostgreSQL can be added as a
//! second backend (for several nodes sharing state) without touching callers. Every write is one
//! SQL statement, hence atomic; SQLite runs in WAL mode with `synchronous=FULL`, so a committed
//! write survives a crash or power loss.
#![forbid(unsafe_code)]

use std::path::Path;
use std::str::FromStr;

use sqlx::Row;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("cannot create data directory {path}: {source}")]
    DataDir {
        path: String,
        source: std::io::Error,
    },
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migrating the database: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("a room named '{0}' already exists")]
    RoomExists(String),
}

/// A persistent room as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRoom {
    pub name: String,
    pub moderator_password_hash: Option<String>,
    pub password_hash: Option<String>,
    pub lobby: bool,
    /// Unix seconds.
    pub created_at: i64,
    pub expires_at: Option<i64>,
}

#[derive(Clone)]
pub struct Store {
    backend: Backend,
}

#[derive(Clone)]
enum Backend {
    Sqlite(SqlitePool),
}

const DB_FILE: &str = "conclave.db";

impl Store {
    /// Open (creating if needed) the SQLite database in `data_dir` and bring its schema up to
    /// date.
    pub async fn open_sqlite(data_dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(data_dir).map_err(|source| StoreError::DataDir {
            path: data_dir.display().to_string(),
            source,
        })?;
        let path = data_dir.join(DB_FILE);
        let opts = SqliteConnectOptions::from_str("sqlite://")?
            .filename(&path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(opts)
            .await?;
        sqlx::migrate!("./migrations").run(&pool).await?;
        Ok(Self {
            backend: Backend::Sqlite(pool),
        })
    }

    pub async fn add_room(&self, room: &StoredRoom) -> Result<(), StoreError> {
        let Backend::Sqlite(pool) = &self.backend;
        let res = sqlx::query(
            "INSERT INTO rooms (name, moderator_password_hash, password_hash, lobby, created_at, expires_at)
             VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(&room.name)
        .bind(&room.moderator_password_hash)
        .bind(&room.password_hash)
        .bind(room.lobby)
        .bind(room.created_at)
        .bind(room.expires_at)
        .execute(pool)
        .await;
        match res {
            Ok(_) => Ok(()),
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                Err(StoreError::RoomExists(room.name.clone()))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The room, unless it does not exist or expired before `now` (Unix seconds).
    pub async fn get_room(&self, name: &str, now: i64) -> Result<Option<StoredRoom>, StoreError> {
        let Backend::Sqlite(pool) = &self.backend;
        let row = sqlx::query(
            "SELECT name, moderator_password_hash, password_hash, lobby, created_at, expires_at
             FROM rooms WHERE name = ? AND (expires_at IS NULL OR expires_at > ?)",
        )
        .bind(name)
        .bind(now)
        .fetch_optional(pool)
        .await?;
        row.map(|r| room_from_row(&r)).transpose()
    }

    pub async fn list_rooms(&self) -> Result<Vec<StoredRoom>, StoreError> {
        let Backend::Sqlite(pool) = &self.backend;
        let rows = sqlx::query(
            "SELECT name, moderator_password_hash, password_hash, lobby, created_at, expires_at
             FROM rooms ORDER BY name",
        )
        .fetch_all(pool)
        .await?;
        rows.iter().map(room_from_row).collect()
    }

    /// Whether a room was removed.
    pub async fn remove_room(&self, name: &str) -> Result<bool, StoreError> {
        let Backend::Sqlite(pool) = &self.backend;
        let res = sqlx::query("DELETE FROM rooms WHERE name = ?")
            .bind(name)
            .execute(pool)
            .await?;
        Ok(res.rows_affected() > 0)
    }

    /// Save settings moderators changed during a meeting.
    pub async fn update_settings(
        &self,
        name: &str,
        lobby: bool,
        password_hash: Option<&str>,
    ) -> Result<(), StoreError> {
        let Backend::Sqlite(pool) = &self.backend;
        sqlx::query("UPDATE rooms SET lobby = ?, password_hash = ? WHERE name = ?")
            .bind(lobby)
            .bind(password_hash)
            .bind(name)
            .execute(pool)
            .await?;
        Ok(())
    }

    /// Delete rooms whose expiry passed; returns how many.
    pub async fn delete_expired(&self, now: i64) -> Result<u64, StoreError> {
        let Backend::Sqlite(pool) = &self.backend;
        let res = sqlx::query("DELETE FROM rooms WHERE expires_at IS NOT NULL AND expires_at <= ?")
            .bind(now)
            .execute(pool)
            .await?;
        Ok(res.rows_affected())
    }

    /// Flush and close (a clean shutdown; a crash loses nothing committed either).
    pub async fn close(&self) {
        let Backend::Sqlite(pool) = &self.backend;
        pool.close().await;
    }
}

fn room_from_row(r: &sqlx::sqlite::SqliteRow) -> Result<StoredRoom, StoreError> {
    Ok(StoredRoom {
        name: r.try_get("name")?,
        moderator_password_hash: r.try_get("moderator_password_hash")?,
        password_hash: r.try_get("password_hash")?,
        lobby: r.try_get("lobby")?,
        created_at: r.try_get("created_at")?,
        expires_at: r.try_get("expires_at")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn room(name: &str, expires_at: Option<i64>) -> StoredRoom {
        StoredRoom {
            name: name.into(),
            moderator_password_hash: Some("$argon2id$x".into()),
            password_hash: None,
            lobby: true,
            created_at: 100,
            expires_at,
        }
    }

    #[tokio::test]
    async fn rooms_roundtrip_expire_and_survive_reopen() {
        let dir = std::env::temp_dir().join(format!("conclave-store-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = Store::open_sqlite(&dir).await.unwrap();
        store.add_room(&room("board", None)).await.unwrap();
        store.add_room(&room("temp", Some(1000))).await.unwrap();
        assert!(matches!(
            store.add_room(&room("board", None)).await,
            Err(StoreError::RoomExists(_))
        ));
        assert_eq!(
            store.get_room("board", 500).await.unwrap(),
            Some(room("board", None))
        );
        assert!(store.get_room("temp", 999).await.unwrap().is_some());
        assert_eq!(
            store.get_room("temp", 1000).await.unwrap(),
            None,
            "expired rooms are not served"
        );
        store
            .update_settings("board", false, Some("$argon2id$p"))
            .await
            .unwrap();
        store.close().await;

        // Everything committed is there after reopening.
        let store = Store::open_sqlite(&dir).await.unwrap();
        let b = store.get_room("board", 500).await.unwrap().unwrap();
        assert_eq!(
            (b.lobby, b.password_hash.as_deref()),
            (false, Some("$argon2id$p"))
        );
        assert_eq!(store.delete_expired(2000).await.unwrap(), 1);
        assert_eq!(store.list_rooms().await.unwrap().len(), 1);
        assert!(store.remove_room("board").await.unwrap());
        assert!(!store.remove_room("board").await.unwrap());
        store.close().await;
        let _ = std::fs::remove_dir_all(&dir);
    }
}
