//! Configuration as an operator meets it: `conclave config check` with a file, environment
//! variables and flags; every kind of mistake named by its key; secrets never printed.

mod common;

use std::path::PathBuf;

use common::run_cli;

/// The file, in a directory removed when the returned guard is dropped.
fn write_config(name: &str, text: &str) -> (common::Scratch, PathBuf) {
    let dir = common::Scratch::new("config");
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    (dir, path)
}

/// `conclave <args> config check` (setting flags go before the subcommand).
fn check(args: &[&str], env: &[(&str, &str)]) -> (bool, String) {
    let mut all = args.to_vec();
    all.extend_from_slice(&["config", "check"]);
    run_cli(&all, env)
}

#[test]
fn no_configuration_means_the_built_in_defaults() {
    let (ok, out) = check(&[], &[]);
    assert!(ok, "{out}");
    assert!(out.contains("listen = \"127.0.0.1:8080\""), "{out}");
    assert!(out.contains("udp = \"127.0.0.1:40000\""), "{out}");
    assert!(out.contains("reconnect_grace = 30"), "{out}");
    assert!(out.contains("drain_timeout = 30"), "{out}");
}

#[test]
fn flag_beats_environment_beats_file_beats_default() {
    let (_dir, file) = write_config(
        "precedence.toml",
        "[server]\nreconnect_grace = 11\ndrain_timeout = 12\nworkers = 3\n",
    );
    let file = file.to_str().unwrap();
    let env = [
        ("CONCLAVE_RECONNECT_GRACE", "21"),
        ("CONCLAVE_DRAIN_TIMEOUT", "22"),
    ];
    let (ok, out) = check(&["--config", file, "--reconnect-grace", "31"], &env);
    assert!(ok, "{out}");
    assert!(out.contains("reconnect_grace = 31"), "flag wins: {out}");
    assert!(
        out.contains("drain_timeout = 22"),
        "environment beats the file: {out}"
    );
    assert!(out.contains("workers = 3"), "file beats the default: {out}");
    assert!(
        out.contains("listen = \"127.0.0.1:8080\""),
        "default stays: {out}"
    );
    // The file can also come from the environment.
    let (ok, out) = check(&[], &[("CONCLAVE_CONFIG", file)]);
    assert!(ok, "{out}");
    assert!(out.contains("reconnect_grace = 11"), "{out}");
}

#[test]
fn every_kind_of_mistake_names_its_key() {
    let cases: &[(&str, &str, &[&str])] = &[
        // Unknown key: named, with what is allowed.
        (
            "[server]\nlisen = \"0.0.0.0:443\"\n",
            "server.lisen",
            &["unknown field", "listen"],
        ),
        // Unknown table.
        (
            "[turnn]\nport = 3478\n",
            "turnn",
            &["unknown field", "server"],
        ),
        // Bad value.
        (
            "[server]\nlisten = \"everywhere\"\n",
            "server.listen",
            &["invalid socket address"],
        ),
        // Bad type.
        (
            "[server]\nreconnect_grace = \"ten\"\n",
            "server.reconnect_grace",
            &["expected u64"],
        ),
        // Not one of the allowed words.
        (
            "[log]\nformat = \"xml\"\n",
            "log.format",
            &["human", "json"],
        ),
        // Missing certificate file.
        (
            "[tls]\ncert = \"/nonexistent/fullchain.pem\"\nkey = \"/nonexistent/privkey.pem\"\n",
            "tls.cert",
            &["/nonexistent/fullchain.pem"],
        ),
        // Files that are no certificate and key.
        (
            concat!(
                "[tls]\ncert = \"",
                env!("CARGO_MANIFEST_DIR"),
                "/Cargo.toml\"\nkey = \"",
                env!("CARGO_MANIFEST_DIR"),
                "/Cargo.toml\"\n"
            ),
            "tls.cert",
            &["no PEM certificate"],
        ),
        // Half a certificate.
        (
            concat!(
                "[tls]\ncert = \"",
                env!("CARGO_MANIFEST_DIR"),
                "/Cargo.toml\"\n"
            ),
            "tls.key",
            &["tls.cert"],
        ),
        // A value that parses but cannot work.
        (
            "[auth]\njwt_secret = \"short\"\n",
            "auth.jwt_secret",
            &["32 characters"],
        ),
        (
            "[server]\nudp = \"0.0.0.0:40000\"\n",
            "server.public_ip",
            &["all interfaces"],
        ),
        ("[server]\nworkers = 0\n", "server.workers", &["at least 1"]),
        // Not TOML at all.
        ("[server\nlisten = 1\n", "(syntax)", &["TOML"]),
    ];
    for (i, (text, key, words)) in cases.iter().enumerate() {
        let (_dir, file) = write_config(&format!("bad-{i}.toml"), text);
        let (ok, out) = check(&["--config", file.to_str().unwrap()], &[]);
        assert!(!ok, "accepted {text:?}: {out}");
        assert!(
            out.contains(&format!("`{key}`")),
            "error for {text:?} does not name `{key}`: {out}"
        );
        for w in *words {
            assert!(out.contains(w), "error for {text:?} lacks {w:?}: {out}");
        }
    }
    // A missing config file, and a bad environment value.
    let (ok, out) = check(&["--config", "/nonexistent/conclave.toml"], &[]);
    assert!(!ok && out.contains("/nonexistent/conclave.toml"), "{out}");
    let (ok, out) = check(&[], &[("CONCLAVE_LISTEN", "everywhere")]);
    assert!(!ok && out.contains("--listen"), "{out}");
    // A misspelt environment variable is pointed out (not refused: other tools share the prefix).
    let (ok, out) = check(&[], &[("CONCLAVE_LISTNE", "0.0.0.0:443")]);
    assert!(ok, "{out}");
    assert!(
        out.contains("unknown environment variable CONCLAVE_LISTNE"),
        "{out}"
    );
}

#[test]
fn the_server_does_not_start_half_configured() {
    let (_dir, file) = write_config("serve-bad.toml", "[tls]\nself_signed = \"yes\"\n");
    let data = std::env::temp_dir().join(format!("conclave-config-data-{}", std::process::id()));
    let (ok, out) = run_cli(
        &[
            "--config",
            file.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
            "--udp",
            "127.0.0.1:0",
            "--data-dir",
            data.to_str().unwrap(),
        ],
        &[],
    );
    assert!(!ok, "{out}");
    assert!(out.contains("`tls.self_signed`"), "{out}");
    assert!(!out.contains("listening"), "{out}");
    assert!(!data.exists(), "nothing was created before the check");
}

#[test]
fn check_redacts_secrets() {
    let secret = "config-check-secret-0123456789-abcdefgh";
    let (ok, out) = check(&[], &[("CONCLAVE_JWT_SECRET", secret)]);
    assert!(ok, "{out}");
    assert!(!out.contains(secret), "{out}");
    assert!(out.contains("jwt_secret = \"(redacted)\""), "{out}");
    let (_dir, file) = write_config(
        "secret.toml",
        &format!("[auth]\njwt_secret = \"{secret}\"\n"),
    );
    let (ok, out) = check(&["--config", file.to_str().unwrap()], &[]);
    assert!(ok, "{out}");
    assert!(!out.contains(secret), "{out}");
}

#[test]
fn the_example_configuration_is_valid() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/conclave.toml");
    let (ok, out) = check(&["--config", example], &[]);
    assert!(ok, "{out}");
}
