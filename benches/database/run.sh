#!/usr/bin/env bash
# The database adapter against PgBouncer and a direct connection, in one run: pgbench
# (select-only and the TPC-B-like default), 50 clients, the same pool size for both poolers
# (transaction mode). Prints TPS, latency p50/p99 and the pooler's CPU µs per transaction.
#
#   benches/database/run.sh            # 15 s a run, scale 5, against 127.0.0.1:5432 as root
#   SECONDS_PER_RUN=30 SCALE=10 benches/database/run.sh
#
# Needs a PostgreSQL on PGHOST:PGPORT with trust auth for PGUSER (makes and drops the database
# paas_bench), and installs pgbench and pgbouncer (Debian) if they are missing. Runs as root:
# PgBouncer is started as the postgres user.
set -euo pipefail

cd "$(dirname "$0")/../.."
PGHOST=${PGHOST:-127.0.0.1}
PGPORT=${PGPORT:-5432}
PGUSER=${PGUSER:-root}
CLIENTS=${CLIENTS:-50}
POOL=${POOL:-20}
T=${SECONDS_PER_RUN:-15}
SCALE=${SCALE:-5}
DB=paas_bench
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target}

need() {
    command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || {
        echo "installing $2" >&2
        apt-get install -y "$2" >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y "$2" >/dev/null; }
    }
}
need pgbench postgresql-contrib
need psql postgresql-client
need pgbouncer pgbouncer
PGBOUNCER=$(command -v pgbouncer || echo /usr/sbin/pgbouncer)

cargo build --release --bin paas >/dev/null
PAAS=$CARGO_TARGET_DIR/release/paas

WORK=$(mktemp -d /tmp/paas-db-bench.XXXXXX)
chmod 755 "$WORK"
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    psql -h "$PGHOST" -p "$PGPORT" -U "$PGUSER" -d postgres -qc "DROP DATABASE IF EXISTS $DB" >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
TCK=$(getconf CLK_TCK)

psql -h "$PGHOST" -p "$PGPORT" -U "$PGUSER" -d postgres -qc "DROP DATABASE IF EXISTS $DB" >/dev/null
psql -h "$PGHOST" -p "$PGPORT" -U "$PGUSER" -d postgres -qc "CREATE DATABASE $DB" >/dev/null
pgbench -h "$PGHOST" -p "$PGPORT" -U "$PGUSER" -i -q -s "$SCALE" "$DB" >/dev/null 2>&1

# The adapter: paas up with no dynos.
"$PAAS" up --data-dir "$WORK/paas" --api-port 0 --syslog-port 0 --udp-port 0 --syslog-tls-port 0 \
    --http-port 0 --https-port 0 --scale web=0 --scale worker=0 --metrics-interval 0 \
    --database-url "postgres://$PGUSER@$PGHOST:$PGPORT/$DB" --database-pool-size "$POOL" \
    --database-max-clients 1000 >"$WORK/paas.out" 2>&1 &
PAAS_PID=$!
PIDS+=("$PAAS_PID")
for _ in $(seq 100); do grep -q "database adapter on" "$WORK/paas.out" && break; sleep 0.1; done
ADAPTER=$(grep -o 'database adapter on postgres://[0-9.:]*' "$WORK/paas.out" | sed 's|.*postgres://||')
ADAPTER_PORT=${ADAPTER##*:}
LOGIN=$WORK/paas/database/$(ls "$WORK/paas/database" | head -1)
APP_USER=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["user"])' "$LOGIN")
APP_PASSWORD=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["password"])' "$LOGIN")

# PgBouncer, transaction mode, the same pool size.
BOUNCER_PORT=$(free_port)
cat >"$WORK/pgbouncer.ini" <<EOF
[databases]
$DB = host=$PGHOST port=$PGPORT dbname=$DB user=$PGUSER
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $BOUNCER_PORT
unix_socket_dir = $WORK
auth_type = trust
auth_file = $WORK/users.txt
pool_mode = transaction
default_pool_size = $POOL
max_client_conn = 1000
logfile = $WORK/pgbouncer.log
pidfile = $WORK/pgbouncer.pid
EOF
echo "\"$PGUSER\" \"\"" >"$WORK/users.txt"
chown -R postgres "$WORK"
runuser -u postgres -- "$PGBOUNCER" "$WORK/pgbouncer.ini" >/dev/null 2>&1 &
for _ in $(seq 50); do [ -s "$WORK/pgbouncer.pid" ] && break; sleep 0.1; done
BOUNCER_PID=$(cat "$WORK/pgbouncer.pid")
PIDS+=("$BOUNCER_PID")

# One pgbench run: prints "tps p50_ms p99_ms cpu_us_per_txn".
run() {
    local port=$1 user=$2 password=$3 pid=$4; shift 4
    local logs=$WORK/log.$RANDOM
    mkdir -p "$logs"
    local before=0
    [ "$pid" != - ] && before=$(cpu_ticks "$pid")
    (cd "$logs" && PGPASSWORD=$password pgbench -h 127.0.0.1 -p "$port" -U "$user" -n \
        -c "$CLIENTS" -j 2 -T "$T" -l "$@" "$DB" >"$logs/out" 2>&1)
    local after=0
    [ "$pid" != - ] && after=$(cpu_ticks "$pid")
    local tps txns
    tps=$(grep -o 'tps = [0-9.]*' "$logs/out" | head -1 | awk '{print $3}')
    txns=$(grep -o 'number of transactions actually processed: [0-9]*' "$logs/out" | awk '{print $NF}')
    read -r p50 p99 < <(cat "$logs"/pgbench_log.* | awk '{print $3}' | sort -n |
        awk '{a[NR]=$1} END {printf "%.2f %.2f\n", a[int(NR*0.5)]/1000, a[int(NR*0.99)]/1000}')
    local cpu=-
    [ "$pid" != - ] && cpu=$(awk -v t=$((after - before)) -v hz="$TCK" -v n="$txns" 'BEGIN {printf "%.1f", t / hz * 1e6 / n}')
    echo "$tps $p50 $p99 $cpu"
    rm -rf "$logs"
}

printf '%-12s %-10s %10s %9s %9s %12s\n' workload target TPS p50_ms p99_ms cpu_us/txn
for workload in select-only tpcb; do
    flags=()
    [ "$workload" = select-only ] && flags=(-S)
    for target in direct adapter pgbouncer; do
        case $target in
            direct) r=$(run "$PGPORT" "$PGUSER" "" - "${flags[@]}") ;;
            adapter) r=$(run "$ADAPTER_PORT" "$APP_USER" "$APP_PASSWORD" "$PAAS_PID" "${flags[@]}") ;;
            pgbouncer) r=$(run "$BOUNCER_PORT" "$PGUSER" "" "$BOUNCER_PID" "${flags[@]}") ;;
        esac
        read -r tps p50 p99 cpu <<<"$r"
        printf '%-12s %-10s %10.0f %9s %9s %12s\n' "$workload" "$target" "$tps" "$p50" "$p99" "$cpu"
    done
done
