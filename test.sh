#!/usr/bin/env bash
# Conclave's whole test suite: formatting, lints, Rust unit and integration tests, the web client's
# type check, and browser end-to-end tests in headless Chromium. Exits non-zero on any failure.
#
# Needs: Rust (cargo with clippy and rustfmt), Node.js with npm, Chromium at /usr/bin/chromium
# (Debian: apt-get install chromium), and a Python venv in tests/.venv with aiortc (WHIP/WHEP
# browser test) and schemathesis (admin API test); those two tests are skipped without it. `.ci/run` installs these on a fresh Debian machine.
set -euo pipefail
cd "$(dirname "$0")"

step() { printf '\n==> %s\n' "$*"; }

step "cargo fmt --check"
cargo fmt --all --check

step "cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo clippy -p conclave-server --features tap,fault --all-targets --locked -- -D warnings

step "cargo test (unit, protocol doc, integration)"
cargo test --workspace --locked

step "end-to-end encryption unit tests (node): SFrame RFC vectors, key manager, rotation cost"
# The rotation benchmark runs at 10 and 50 members here; CONCLAVE_BENCH_SIZES=10,50,100,200 for all.
CONCLAVE_BENCH_SIZES="${CONCLAVE_BENCH_SIZES:-10,50}" node --test tests/unit/

step "panic containment (a test build that panics on purpose: one participant's transport, one room)"
# The same build serves as the tap build below (the features act only when their variables are set).
cargo test -p conclave-server --features tap,fault --locked --test containment

step "build the server binaries the browser tests run (a tap build for the encryption proof, and the impairment relay)"
cargo build -p conclave-server --features tap,fault --locked
cp target/debug/conclave target/debug/conclave-tap
cargo build -p conclave-server -p conclave-netsim --locked
export CONCLAVE_BIN="$PWD/target/debug/conclave"
export CONCLAVE_NETSIM_BIN="$PWD/target/debug/conclave-netsim"
export CONCLAVE_TAP_BIN="$PWD/target/debug/conclave-tap"

cd tests/browser
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules ]; then
  step "npm ci (tests/browser)"
  npm ci --no-audit --no-fund
fi

step "type-check the web client (tsc --checkJs)"
npm run --silent typecheck

step "browser end-to-end tests (headless Chromium)"
npm test
