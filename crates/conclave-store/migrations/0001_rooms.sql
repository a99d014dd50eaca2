-- Persistent rooms: only what a room needs between meetings. No participant, no address, no log.
CREATE TABLE rooms (
    name TEXT PRIMARY KEY NOT NULL,
    -- argon2id PHC strings; never a clear-text password.
    moderator_password_hash TEXT,
    password_hash TEXT,
    lobby INTEGER NOT NULL DEFAULT 0,
    -- Unix seconds.
    created_at INTEGER NOT NULL,
    expires_at INTEGER
);
