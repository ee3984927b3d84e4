#!/usr/bin/env bash
# The test suite with the process clock pinned by libfaketime to an awkward instant (Japan
# time), so that a test that only passes on some days fails here, on any day, not on the day
# it matters. One instant per run, chosen at random from a seed; both are printed with the
# command that replays the run.
#
#   tests/pinned_clock.sh                                 an instant chosen at random
#   tests/pinned_clock.sh --at '2027-01-02 10:00:00'      replay an instant (JST)
#   tests/pinned_clock.sh --seed 123456                   replay a random choice
#   tests/pinned_clock.sh --list                          the awkward instants
#   tests/pinned_clock.sh --at '...' -- -k insight        more pytest arguments
#
# The clock starts at the instant and runs on from there. FAKETIME is an offset from the real
# clock, so every process the tests start (workers, runstack, manage.py) inherits the same
# time. Without arguments after "--" it runs what CI runs:
#   ./dev test -m "not browser and not chaos and not soak" -p no:cacheprovider
set -euo pipefail
cd "$(dirname "$0")/.."

# instant (JST) | why it is awkward
AWKWARD=(
  "2026-12-05 10:00:00|a Saturday (closed: ordinary sends wait for Monday)"
  "2027-01-02 10:00:00|the year-end closure (12/29-1/3)"
  "2027-01-11 10:00:00|a holiday Monday (成人の日)"
  "2026-12-02 08:29:59|a weekday, a second before the send window opens"
  "2026-12-02 17:14:59|a weekday, a second before the send window closes"
  "2026-12-01 23:59:50|ten seconds before midnight: the run crosses into the next day"
  "2026-12-31 23:59:59|the year's last second"
  "2027-02-28 23:59:59|the month's last second"
)
# A random instant (the list's last slot) is a second in these three years.
RANDOM_FROM="2026-01-01 00:00:00"
RANDOM_SPAN=$((3 * 365 * 86400))

usage() { sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }

at="" seed="${PINNED_CLOCK_SEED:-}"
while [ $# -gt 0 ]; do
  case "$1" in
    --at) at="${2:?--at needs 'YYYY-MM-DD HH:MM:SS' (JST)}"; shift 2 ;;
    --seed) seed="${2:?--seed needs a number}"; shift 2 ;;
    --list) for entry in "${AWKWARD[@]}"; do echo "${entry%%|*}  ${entry#*|}"; done; exit 0 ;;
    -h|--help) usage ;;
    --) shift; break ;;
    *) echo "unknown argument: $1" >&2; usage 2 ;;
  esac
done
pytest_args=(-m "not browser and not chaos and not soak" -p no:cacheprovider "$@")

# --- the instant -----------------------------------------------------------------------------
lcg() { echo $(( ($1 * 1103515245 + 12345) % 2147483648 )); }
why="given with --at"
if [ -z "$at" ]; then
  seed=${seed:-$(( $(od -An -N4 -tu4 /dev/urandom) % 1000000 ))}
  slot=$(( seed % (${#AWKWARD[@]} + 1) ))
  if [ "$slot" -lt "${#AWKWARD[@]}" ]; then
    at="${AWKWARD[$slot]%%|*}" why="${AWKWARD[$slot]#*|} (seed $seed)"
  else
    x=$(lcg "$seed")
    from=$(TZ=Asia/Tokyo date -d "$RANDOM_FROM" +%s)
    at=$(TZ=Asia/Tokyo date -d "@$(( from + x % RANDOM_SPAN ))" '+%Y-%m-%d %H:%M:%S')
    why="a random second (seed $seed)"
  fi
fi
target=$(TZ=Asia/Tokyo date -d "$at" +%s) || { echo "not a time: $at" >&2; exit 2; }

# --- libfaketime, and a C compiler for the shim below ---------------------------------------
find_libfaketime() {
  local f
  for f in ${FAKETIME_LIB:-} /usr/lib/*/faketime/libfaketime.so.1 \
    /usr/local/lib/faketime/libfaketime.so.1 /usr/lib/faketime/libfaketime.so.1; do
    if [ -f "$f" ]; then echo "$f"; return 0; fi
  done
  return 1
}
missing=()
find_libfaketime >/dev/null || missing+=(faketime)
command -v cc >/dev/null || missing+=(gcc libc6-dev)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "==> ${missing[*]} をインストールしています"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "時刻を固定したテストには ${missing[*]} が必要です: sudo apt-get install ${missing[*]}" >&2
    exit 1
  fi
fi
libfaketime=$(find_libfaketime)

# CPython (3.11+, glibc 2.30+) waits on a lock with a timeout by sem_clockwait(CLOCK_MONOTONIC),
# which libfaketime 0.9.10 does not intercept while it does shift CLOCK_MONOTONIC: every
# Event.wait(t), Thread.join(t) or Queue.get(timeout=t) would wait for the whole offset (days).
# (FAKETIME_DONT_FAKE_MONOTONIC=1 is no way out: time.sleep then fails with EINVAL.) The shim
# turns sem_clockwait into libfaketime's sem_timedwait, measuring on the same faked clocks.
shim_dir=$(mktemp -d)
trap 'rm -rf "$shim_dir"' EXIT
cat >"$shim_dir/sem_clockwait.c" <<'C'
#define _GNU_SOURCE
#include <semaphore.h>
#include <time.h>

int sem_clockwait(sem_t *sem, clockid_t clock, const struct timespec *abstime) {
    struct timespec now, deadline;
    clock_gettime(clock, &now);
    clock_gettime(CLOCK_REALTIME, &deadline);
    long long left = (long long)(abstime->tv_sec - now.tv_sec) * 1000000000LL
                     + (abstime->tv_nsec - now.tv_nsec);
    if (left < 0) left = 0;
    deadline.tv_sec += left / 1000000000LL;
    deadline.tv_nsec += left % 1000000000LL;
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec += 1;
        deadline.tv_nsec -= 1000000000L;
    }
    return sem_timedwait(sem, &deadline);
}
C
cc -shared -fPIC -O2 -o "$shim_dir/sem_clockwait.so" "$shim_dir/sem_clockwait.c"

# Set up (venv, packages) on the real clock: apt and pip must not see a faked date.
./dev test --version >/dev/null

# --- the run ---------------------------------------------------------------------------------
offset=$(( target - $(date +%s) ))
replay="tests/pinned_clock.sh --at '$at'"
[ $# -gt 0 ] && replay+=" --$(printf " %q" "$@")"
echo "==> clock pinned to $at JST ($(TZ=Asia/Tokyo date -d "@$target" '+%a')): $why"
echo "    FAKETIME=$(printf '%+d' "$offset") s; replay: $replay"
status=0
LD_PRELOAD="$shim_dir/sem_clockwait.so:$libfaketime${LD_PRELOAD:+:$LD_PRELOAD}" \
  FAKETIME="$(printf '%+d' "$offset")" \
  ./dev test "${pytest_args[@]}" &
run=$!
wait "$run" || status=$?
# libfaketime shares its settings with child processes through a semaphore and shared memory
# named after the first process; ./dev execs pytest, which does not remove them.
rm -f "/dev/shm/faketime_shm_$run" "/dev/shm/sem.faketime_sem_$run"
echo "==> clock was pinned to $at JST; replay: $replay"
exit $status
