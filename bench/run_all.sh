#!/usr/bin/env bash
# Every bench of bench/, one after the other, on PostgreSQL + Redis (the production shape),
# each one's full output kept in bench/out/run_all/<name>.txt and its goal lines (PASS/FAIL,
# printed last by each bench) repeated here. Takes about 15 minutes on 2 cores.
#
#   bench/run_all.sh                       # all
#   bench/run_all.sh multicast emergency   # some: multicast multicast_1m send_held emergency
#                                          #   pickup dashboard webhook webhook_e2e soak
#                                          #   notifications official audiences moderation
#
# PG (a server URL; each bench creates and drops its own bench_* database on it) and R (a
# Redis database nobody else uses: benches flush or fill it) can be overridden.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
PG=${PG:-postgresql://postgres@127.0.0.1:5432}
R=${R:-redis://127.0.0.1:6379/12}
OUT=bench/out/run_all
mkdir -p "$OUT"
failed=0

run() {
  local name=$1
  shift
  echo "==> $name ($*)"
  "$PY" "$@" >"$OUT/$name.txt" 2>&1
  local rc=$?
  grep -E "^goal|goal .*(PASS|FAIL)|: (PASS|FAIL)" "$OUT/$name.txt" | tail -n 12
  if [ "$rc" -ne 0 ]; then
    echo "    ($name exited with $rc: see $OUT/$name.txt)"
    failed=1
  fi
}

SELECTED=("$@")
want_() {
  [ ${#SELECTED[@]} -eq 0 ] && return 0
  local w
  for w in "${SELECTED[@]}"; do [ "$w" = "$1" ] && return 0; done
  return 1
}

# The machine's speed now, before and after: the same code runs up to 2× slower on some days.
"$PY" bench/machine_speed.py | tee "$OUT/machine_speed.txt"

want_ multicast && run multicast_100k bench/multicast_100k.py \
  --database-url "$PG/bench_multicast" --redis-url "$R"
want_ multicast_1m && run multicast_1m bench/multicast_100k.py --recipients 1000000 --repeat 1 \
  --line lean --timeout 300 --database-url "$PG/bench_multicast_1m" --redis-url "$R"
want_ send_held && run send_held bench/send_held.py \
  --database-url "$PG/bench_send_held" --redis-url "$R"
want_ emergency && run emergency bench/emergency/approval_to_line.py \
  --database-url "$PG/bench_emergency"
want_ pickup && run pickup bench/emergency/pickup.py \
  --database-url "$PG/bench_pickup" --redis-url "$R"
want_ dashboard && run dashboard bench/dashboard/run.py --database-url "$PG/bench_dashboard"
if want_ webhook; then
  # wrk (the load generator) is Debian's package: installed here if this machine lacks it.
  if ! command -v wrk >/dev/null && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    echo "==> installing wrk (Debian's package) for the webhook bench"
    (apt-get install -y -q wrk || (apt-get update -q && apt-get install -y -q wrk)) >/dev/null 2>&1
  fi
  if command -v wrk >/dev/null; then
    run webhook bench/webhook/run.py
  else
    echo "==> webhook: FAIL: not run (needs wrk: apt-get install -y wrk)"
    failed=1
  fi
fi
want_ webhook_e2e && run webhook_e2e bench/webhook/run.py --e2e \
  --database-url "$PG/bench_webhook_e2e" --redis-url "$R"
want_ soak && run soak bench/soak_embedded.py --minutes 1
want_ notifications && run notifications bench/notifications/submit_to_alert.py \
  --database-url "$PG/bench_notify"
want_ official && run official bench/official/feed_poll.py --database-url "$PG/bench_official"
want_ audiences && run audiences bench/audiences/run.py --database-url "$PG/bench_audiences"
want_ moderation && run moderation bench/moderation/inbox.py \
  --database-url "$PG/bench_moderation"
"$PY" bench/machine_speed.py | tee -a "$OUT/machine_speed.txt"
exit "$failed"
