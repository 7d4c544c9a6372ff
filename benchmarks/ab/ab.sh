#!/usr/bin/env bash
# A/B performance comparison of two mpmserver trees, alternating A, B, A, B.
#
#   benchmarks/ab/ab.sh A_TREE B_TREE
#
# e.g. a tree before a change against the work tree:
#   git archive <commit> | tar -x -C /tmp/before && benchmarks/ab/ab.sh /tmp/before .
#
# 1. micro-benchmarks: each tree's OWN benchmarks/test_micro_request.py and
#    benchmarks/test_micro_connection.py (pytest-benchmark, no xdist), run
#    A, B, A, B ($MICRO_ROUNDS rounds); table of min / median per tree, B/A.
# 2. end-to-end load as benchmarks/compare.py runs mpmserver: both servers up at
#    once (python -m mpmserver benchmarks.apps:app --listen ... --access-log off
#    + compare.py's server_directives(2, 4)), wrk -t1 -c32 -d5s --latency,
#    workloads plaintext / close / post10k, A, B per round ($LOAD_ROUNDS rounds);
#    req/s and p99 per round, median B/A.
#
# Tree selection: every python runs with cwd=TREE and PYTHONPATH=TREE (an editable
# install comes after PYTHONPATH on sys.path; cwd must be the tree
# because `python -m` puts the cwd first). Checked before measuring (abtool verify,
# and the ab_verify pytest plugin fails a micro run that imported another tree).
# Byte code goes to $PYTHONPYCACHEPREFIX, so nothing is written inside the trees.
#
# Knobs (environment): MICRO_ROUNDS=2 LOAD_ROUNDS=3 DURATION=5 CONNS=32
#   WORKLOADS="plaintext close post10k"  SKIP_MICRO=1  SKIP_LOAD=1
#   ORDER=ab (A first every round) | rotate (A,B then B,A ...: cancels linear drift)
#   SERVER_FLAGS="..." (default: compare.py's; e.g. SERVER_FLAGS="-w 2 --threads 4")
#   OUT=dir (default /tmp/ab/runs/<time>)  PYTHON=interpreter
set -u -o pipefail

if [ $# -ne 2 ]; then
    sed -n 2,26p "$0" >&2
    exit 2
fi
A=$(realpath "$1") B=$(realpath "$2")
for t in "$A" "$B"; do
    [ -f "$t/mpmserver/__init__.py" ] || { echo "ab.sh: $t has no mpmserver/__init__.py" >&2; exit 2; }
done

LIB=$(dirname "$(realpath "$0")")
MICRO_ROUNDS=${MICRO_ROUNDS:-2}
LOAD_ROUNDS=${LOAD_ROUNDS:-3}
DURATION=${DURATION:-5}
CONNS=${CONNS:-32}
WORKLOADS=${WORKLOADS:-plaintext close post10k}
ORDER=${ORDER:-ab}
MICRO_FILES=${MICRO_FILES:-benchmarks/test_micro_request.py benchmarks/test_micro_connection.py}
OUT=${OUT:-/tmp/ab/runs/$(date +%Y%m%d-%H%M%S)}
# the real interpreter, not the pyenv shim (compare.py uses sys.executable)
PY=$(${PYTHON:-python} -c 'import sys; print(sys.executable)')
# compare.py: mpmserver.bench.workloads.server_directives(procs=2, threads=4)
DEFAULT_FLAGS="--start-servers 2 --threads-per-child 4 --max-request-workers 8 --min-spare-threads 1 --max-spare-threads 16 --keep-alive-timeout 60 --max-keep-alive-requests 0"
[ "$(id -u)" = 0 ] && DEFAULT_FLAGS="$DEFAULT_FLAGS --preload-app on"
SERVER_FLAGS=${SERVER_FLAGS:-$DEFAULT_FLAGS}
export PYTHONPYCACHEPREFIX=${PYTHONPYCACHEPREFIX:-/tmp/ab/pycache}
unset PYTHONHOME PYTHONSTARTUP
mkdir -p "$OUT"
exec > >(trap '' INT TERM; exec tee "$OUT/report.txt") 2>&1
exec 3>&1   # log() writes here: a trap that fires inside a redirected run_job still reaches the report

declare -A TREE=([A]="$A" [B]="$B") PORT=() SPID=()
T0=$(date +%s)
log() { printf '[%4ds] %s\n' $(( $(date +%s) - T0 )) "$*" >&3; }
tree_rev() { GIT_OPTIONAL_LOCKS=0 git -C "$1" rev-parse --short HEAD 2>/dev/null || echo "not a git checkout"; }

stop_servers() {
    local s pid i
    for s in "${!SPID[@]}"; do kill -TERM "${SPID[$s]}" 2>/dev/null; done
    for s in "${!SPID[@]}"; do
        pid=${SPID[$s]}
        for i in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        # whatever is left of its process group (children), as compare.py does
        kill -KILL -- "-$pid" 2>/dev/null && log "server $s: process group $pid killed after 10 s"
        wait "$pid" 2>/dev/null
        unset "SPID[$s]"
    done
}
# Long commands (pytest, wrk) run in the background and are waited for, so a
# TERM / Ctrl-C runs the trap at once (bash defers traps until a foreground
# command ends); the trap stops them, then the servers.
JOB=""
run_job() { "$@" & JOB=$!; wait "$JOB"; local rc=$?; JOB=""; return $rc; }
cleanup() {
    trap - EXIT INT TERM
    [ -n "$JOB" ] && { kill -TERM "$JOB" 2>/dev/null; wait "$JOB" 2>/dev/null; }
    stop_servers
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT
trap 'log "terminated"; exit 143' TERM

order_for_round() {   # $1 = round, 1-based
    if [ "$ORDER" = rotate ] && [ $(( $1 % 2 )) = 0 ]; then echo B A; else echo A B; fi
}

log "A = $A ($(tree_rev "$A"))"
log "B = $B ($(tree_rev "$B"))"
log "python $PY, $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg), output in $OUT"
for s in A B; do
    (cd "${TREE[$s]}" && PYTHONPATH="${TREE[$s]}" "$PY" "$LIB/abtool.py" verify "${TREE[$s]}") || exit 1
done

# -- 1. micro-benchmarks -------------------------------------------------------
if [ -z "${SKIP_MICRO:-}" ]; then
    log "micro-benchmarks: $MICRO_FILES, $MICRO_ROUNDS rounds"
    for r in $(seq "$MICRO_ROUNDS"); do
        for s in $(order_for_round "$r"); do
            t=${TREE[$s]}
            # -p no:xdist: pytest-benchmark disables itself under xdist;
            # -p no:mpmserver: the pytest11 entry point of the editable install names
            # the editable install's module path, which the refactor may move (unused here).
            run_job bash -c 'cd "$0" && exec "$@"' "$t" env AB_TREE="$t" PYTHONPATH="$t:$LIB" \
                "$PY" -m pytest -p no:xdist -p no:mpmserver -p ab_verify $MICRO_FILES --benchmark-only -q \
                --benchmark-json="$OUT/micro-$s-$r.json" > "$OUT/micro-$s-$r.log" 2>&1
            rc=$?
            if [ $rc != 0 ]; then
                log "micro $s round $r: pytest exit $rc; tail of $OUT/micro-$s-$r.log:"
                tail -25 "$OUT/micro-$s-$r.log"
                exit 1
            fi
            log "micro round $r/$MICRO_ROUNDS $s: $(tail -1 "$OUT/micro-$s-$r.log")"
        done
    done
fi

# -- 2. end-to-end load ----------------------------------------------------------
wl_path() { case $1 in plaintext|close) echo /plaintext ;; post10k) echo /echo ;; *) return 1 ;; esac; }
run_wrk() {   # side workload seconds outfile
    local s=$1 w=$2 d=$3 f=$4 rc extra=()
    case $w in
        close) extra=(-H "Connection: close") ;;     # compare.py: keepalive=False
        post10k) extra=(-s "$OUT/post10k.lua") ;;
    esac
    run_job timeout $(( d + 20 )) wrk -t1 "-c$CONNS" "-d${d}s" --timeout=5s --latency "${extra[@]}" \
        "http://127.0.0.1:${PORT[$s]}$(wl_path "$w")" > "$f" 2>&1
    rc=$?
    [ $rc = 0 ] || log "wrk $s $w: exit $rc (124 = stalled): $(tail -2 "$f" | tr '\n' ' ')"
}

if [ -z "${SKIP_LOAD:-}" ]; then
    for w in $WORKLOADS; do wl_path "$w" > /dev/null || { log "unknown workload $w"; exit 2; }; done
    # the script compare.py writes for post10k
    printf '%s\n' 'wrk.method = "POST"' 'wrk.body = string.rep("x", 10240)' \
        'wrk.headers["Content-Type"] = "application/octet-stream"' > "$OUT/post10k.lua"
    log "servers: python -m mpmserver benchmarks.apps:app --listen 127.0.0.1:PORT --access-log off $SERVER_FLAGS"
    for s in A B; do
        t=${TREE[$s]}
        PORT[$s]=$("$PY" "$LIB/abtool.py" freeport)
        # own process group (not own session: autogroup scheduling, see bench/server.py)
        # shellcheck disable=SC2086
        (cd "$t" && PYTHONPATH="$t" exec "$PY" "$LIB/abtool.py" pgrun "$PY" -m mpmserver benchmarks.apps:app \
            --listen "127.0.0.1:${PORT[$s]}" --access-log off $SERVER_FLAGS) \
            < /dev/null > "$OUT/server-$s.log" 2>&1 3>&- &
        SPID[$s]=$!
    done
    for s in A B; do
        if ! "$PY" "$LIB/abtool.py" wait "http://127.0.0.1:${PORT[$s]}/plaintext" 30; then
            log "server $s did not answer within 30 s:"; tail -30 "$OUT/server-$s.log"; exit 1
        fi
        pid=${SPID[$s]}
        log "server $s up: pid $pid (pgid $(ps -o pgid= -p "$pid" | tr -d ' ')), port ${PORT[$s]}," \
            "cwd $(readlink /proc/"$pid"/cwd), $(pgrep -g "$pid" | wc -l) processes"
    done
    : > "$OUT/load.tsv"
    for w in $WORKLOADS; do
        for s in A B; do run_wrk "$s" "$w" 1 "$OUT/warmup-$w-$s.txt"; done   # unmeasured, as compare.py
        for r in $(seq "$LOAD_ROUNDS"); do
            line="$w round $r/$LOAD_ROUNDS:"
            for s in $(order_for_round "$r"); do
                f="$OUT/wrk-$w-$s-$r.txt"
                run_wrk "$s" "$w" "$DURATION" "$f"
                read -r rps p99 err < <("$PY" "$LIB/abtool.py" wrk-parse "$f")
                echo "$w $r $s $rps $p99 $err" >> "$OUT/load.tsv"
                line="$line  $s $rps req/s p99 ${p99} ms${err:+ err $err}"
            done
            log "$line"
        done
    done
    stop_servers
    for s in A B; do
        log "server $s log: $(grep -c Traceback "$OUT/server-$s.log") tracebacks," \
            "$(grep -c '\[error\]' "$OUT/server-$s.log") [error] lines" \
            "$(grep -m1 '\[error\]' "$OUT/server-$s.log" | sed 's/.*\] //')"
    done
fi

# -- report ---------------------------------------------------------------------
echo
echo "A = $A ($(tree_rev "$A"))    B = $B ($(tree_rev "$B"))"
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg); total $(( $(date +%s) - T0 )) s"
if [ -z "${SKIP_MICRO:-}" ]; then
    echo
    echo "== micro-benchmarks (ns per call; ratio > 1: B slower) =="
    "$PY" "$LIB/abtool.py" micro-table "$OUT"
fi
if [ -z "${SKIP_LOAD:-}" ]; then
    echo
    echo "== end-to-end, wrk -t1 -c$CONNS -d${DURATION}s, ${LOAD_ROUNDS} rounds (req/s ratio < 1: B slower) =="
    "$PY" "$LIB/abtool.py" load-table "$OUT/load.tsv"
fi
echo "raw output: $OUT"
