#!/usr/bin/env bash
# The README's two commands:
#   sudo ./fantrace.sh demo   install what is missing, build, record a demo workload, query it
#   sudo ./fantrace.sh test   install what is missing, build, run the whole test suite
# and the benchmarks (README, Performance):
#   sudo ./fantrace.sh bench  install what is missing and the peers, build optimized, print the table
# Installing is idempotent: each step checks first and costs well under a second when done.
set -euo pipefail
cd "$(dirname "$0")"
# Nothing here reads a terminal; a stdin that is a file (some CI runners hand their log as
# stdin) must not reach the tools: rustc's target probe reads `-` and parsed such a log.
exec </dev/null

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

need_root() {
  if [ "$(id -u)" -ne 0 ]; then
    echo "fantrace.sh: run as root (sudo ./fantrace.sh $1): it installs packages and loads an eBPF probe" >&2
    exit 1
  fi
}

setup() {
  export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$HOME/.cargo/bin:$PATH"
  # The probe is built with nightly's -Z build-std, which needs the core library's source.
  if ! rustup toolchain list | grep -q '^nightly'; then
    say "installing the nightly toolchain (for the eBPF probe)"
    rustup toolchain install nightly --profile minimal --component rust-src
  elif ! rustup component list --toolchain nightly --installed | grep -q '^rust-src'; then
    say "adding rust-src to nightly"
    rustup component add rust-src --toolchain nightly
  fi
  # bpf-linker links the probe; it builds against LLVM 22 (its default wants LLVM 23, which
  # Debian here does not ship).
  if ! command -v bpf-linker >/dev/null 2>&1; then
    if ! dpkg -s llvm-22-dev >/dev/null 2>&1; then
      say "installing llvm-22-dev"
      apt-get update -qq
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq llvm-22-dev >/dev/null
    fi
    say "installing bpf-linker (a few minutes, once)"
    LLVM_PREFIX=/usr/lib/llvm-22 cargo install bpf-linker --version 0.13.0 \
      --no-default-features --features llvm-22
  fi
}

setup_test_tools() {
  # The other engines the tests compare answers with: independent Parquet readers (pyarrow,
  # polars), DuckDB and Spark through `fantrace-analyzer views`. Spark needs a JRE.
  local missing=()
  for module in pyarrow duckdb polars pyspark; do
    python3 -c "import $module" >/dev/null 2>&1 || missing+=("$module")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    say "installing ${missing[*]} (other engines the tests compare with)"
    python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore "${missing[@]}"
  fi
  if ! command -v java >/dev/null 2>&1; then
    say "installing a Java runtime (for Spark in the tests)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends openjdk-17-jre-headless >/dev/null
  fi
  # The permission-daemon test runs Debian's fapolicyd sandboxed in a mount namespace of its
  # own: unpacked, never installed as a package (its scripts would start it on the host).
  local fapolicyd=/var/cache/fantrace/fapolicyd
  if [ ! -x "$fapolicyd/root/usr/sbin/fapolicyd" ]; then
    say "unpacking fapolicyd (a real permission-event daemon the tests run sandboxed)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      liblmdb0 libmagic1 libcap-ng0 libseccomp2 libssl3 libudev1 >/dev/null
    mkdir -p "$fapolicyd"
    local tmp
    tmp=$(mktemp -d "$fapolicyd/.fetch.XXXXXX")
    (cd "$tmp" && apt-get download -qq fapolicyd 2>/dev/null && dpkg-deb -x ./*.deb root)
    rm -rf "$fapolicyd/root"
    mv "$tmp/root" "$fapolicyd/root"
    rm -rf "$tmp"
  fi
  # The report test opens `fantrace-analyzer report` output in a real browser.
  if ! command -v chromium >/dev/null 2>&1; then
    say "installing chromium (the report test opens the HTML report in it)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
  fi
}

# The fleet tests (tests/tests/e2e_fleet.rs) ship segments to a real S3-compatible server:
# Garage, built from crates.io once (~15 min on two cores) into cargo's bin directory.
GARAGE_VERSION=2.5.0

setup_fleet_tools() {
  if ! garage --version 2>/dev/null | grep -qF "$GARAGE_VERSION"; then
    say "installing garage $GARAGE_VERSION (the S3-compatible server of the fleet tests; once)"
    cargo install garage --version "$GARAGE_VERSION" --locked \
      --no-default-features --features bundled-libs,lmdb
  fi
}

# The kernel matrix (tests/tests/e2e_kernels.rs, and the bench's instruction counts) boots
# Debian 12's stock kernel in a QEMU guest with virtme-ng. Everything lives under GUEST_DIR;
# nothing is installed into the host's /boot.
GUEST_DIR=${FANTRACE_GUEST_DIR:-/var/cache/fantrace/guest}
VIRTME_NG_VERSION=1.42

setup_guest() {
  local missing=()
  command -v qemu-system-x86_64 >/dev/null 2>&1 || missing+=(qemu-system-x86)
  command -v depmod >/dev/null 2>&1 || missing+=(kmod)
  command -v busybox >/dev/null 2>&1 || missing+=(busybox-static)
  # virtme-ng needs the host's udev for the guest's console ports.
  command -v udevadm >/dev/null 2>&1 || missing+=(udev)
  if [ ${#missing[@]} -gt 0 ]; then
    say "installing ${missing[*]} (the 6.1 guest for the kernel matrix)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
  mkdir -p "$GUEST_DIR"
  if ! "$GUEST_DIR/venv/bin/vng" --version 2>/dev/null | grep -q "$VIRTME_NG_VERSION"; then
    say "installing virtme-ng $VIRTME_NG_VERSION into $GUEST_DIR/venv"
    python3 -m venv "$GUEST_DIR/venv"
    "$GUEST_DIR/venv/bin/pip" install --quiet --disable-pip-version-check "virtme-ng==$VIRTME_NG_VERSION"
  fi
  if ! ls "$GUEST_DIR"/debian-6.1/boot/vmlinuz-* >/dev/null 2>&1; then
    # Whatever 6.1 kernel Debian 12 ships today (linux-image-amd64 names it); the unsigned
    # package is the same kernel without the Secure Boot signature.
    local pkg
    pkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-6\.1/ {print $2; exit}')
    [ -n "$pkg" ] || { apt-get update -qq; pkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-6\.1/ {print $2; exit}'); }
    [ -n "$pkg" ] || { echo "fantrace.sh: apt offers no Debian 6.1 kernel (linux-image-amd64)" >&2; exit 1; }
    say "fetching $pkg-unsigned for the 6.1 guest"
    local tmp
    tmp=$(mktemp -d "$GUEST_DIR/.fetch.XXXXXX")
    (cd "$tmp" && apt-get download -qq "$pkg-unsigned" 2>/dev/null && dpkg-deb -x ./*.deb root)
    rm -rf "$GUEST_DIR/debian-6.1"
    mv "$tmp/root" "$GUEST_DIR/debian-6.1"
    rm -rf "$tmp"
  fi
}

setup_bench_peers() {
  # The peers the bench compares with. A missing one is reported in the table, not faked.
  if ! command -v bpftrace >/dev/null 2>&1; then
    say "installing bpftrace (peer tracer)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bpftrace >/dev/null \
      || say "bpftrace could not be installed; its columns will say so"
  fi
  if ! python3 -c 'import duckdb' >/dev/null 2>&1; then
    say "installing duckdb (peer query engine)"
    python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore duckdb \
      || say "duckdb could not be installed; its columns will say so"
  fi
}

# One optimized build serves the demo, the tests and the bench: DataFusion is built once, and
# every test judges the binaries users run.
build() {
  say "building the workspace (optimized)"
  cargo build --release --workspace --bins
}

demo() {
  local bin=target/release work capture rec_out rec_pid
  work=$(mktemp -d /tmp/fantrace-demo.XXXXXX)
  capture="$work/capture"
  rec_out="$work/recorder.out"
  say "recording into $capture"
  "$bin/fantrace-recorder" --output "$capture" >"$rec_out" &
  rec_pid=$!
  for _ in $(seq 1 300); do
    grep -q 'recording fanotify_mark calls' "$rec_out" 2>/dev/null && break
    kill -0 "$rec_pid" 2>/dev/null || { cat "$rec_out"; exit 1; }
    sleep 0.1
  done
  say "running the demo workload (fanotify_init and fanotify_mark calls with known arguments)"
  "$bin/fantrace-workload" >/dev/null
  say "running the mark lifecycle (add, remove, flush, a child's permission group, fd reuse)"
  "$bin/fantrace-workload" --lifecycle --dir "$work/watched" >"$work/checkpoints.jsonl"
  say "leaving a group watching $work/still-watched as the recording ends"
  mkdir -p "$work/still-watched/sub"
  local holder_in="$work/holder.in" holder_pid
  mkfifo "$holder_in"
  "$bin/fantrace-workload" --early-group --dir "$work/still-watched" <"$holder_in" >"$work/holder.out" &
  holder_pid=$!
  exec 9>"$holder_in"
  sleep 1.5
  kill -INT "$rec_pid"
  wait "$rec_pid"
  exec 9>&-
  wait "$holder_pid"
  cat "$rec_out"
  say "fantrace-analyzer query --capture $capture \"...\""
  "$bin/fantrace-analyzer" query --capture "$capture" \
    "SELECT time, pid, tid, comm, uid, fanotify_fd AS fd, fan_flag_names(flags) AS flags,
            fan_mask_names(mask) AS mask, dirfd, pathname, pathname_status AS path,
            ret, errno_name(ret) AS error, abi
       FROM events WHERE comm LIKE 'fantrace-wl%' ORDER BY time"
  "$bin/fantrace-analyzer" query --capture "$capture" \
    "SELECT time, pid, comm, flag_names, class, fd, abi FROM inits ORDER BY time"
  "$bin/fantrace-analyzer" query --capture "$capture" \
    "SELECT hostname, kernel_release, attach_mode, ia32_covered, events_written, events_lost, stop_reason FROM stats"
  "$bin/fantrace-analyzer" query --capture "$capture" \
    "SELECT group_id, holders, comm, class, object, resolved_path, pathname, mask, state, ended
       FROM marks WHERE coalesce(resolved_path, pathname) LIKE '$work/%'
      ORDER BY group_created, first_seen"
  "$bin/fantrace-analyzer" report --capture "$capture" -o "$work/report.html"
  echo "capture kept in $capture; query it with: target/release/fantrace-analyzer query --capture $capture \"SELECT ...\""
}

run_tests() {
  say "cargo fmt --check"
  cargo fmt --all -- --check
  say "cargo clippy -D warnings"
  cargo clippy --workspace --all-targets -- -D warnings
  say "running the test suite, optimized (end-to-end tests load the real probe)"
  cargo test --release --workspace --no-fail-fast -- --test-threads=2
}

case "${1:-}" in
  demo) need_root demo; setup; build; demo ;;
  test) need_root test; setup; setup_test_tools; setup_fleet_tools; setup_guest; build; run_tests ;;
  bench)
    need_root bench; setup; setup_bench_peers; setup_fleet_tools
    build
    shift
    target/release/fantrace-bench "$@" ;;
  *) echo "usage: sudo $0 demo|test|bench [bench options]" >&2; exit 2 ;;
esac
