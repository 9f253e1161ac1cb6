#!/usr/bin/env bash
# bench/slurm/run.sh: the Slurm side of moat's scheduler benchmark.
#
# Brings up a throwaway Slurm cluster on loopback (munged on a private socket,
# one slurmctld, N slurmd "nodes" on 127.0.0.1), submits N trivial batch jobs
# (`sbatch --wrap=true -o /dev/null`, one at a time from one shell loop), waits
# until every job has finished and prints ONE JSON object on stdout.  Progress
# goes to stderr.  Every daemon it starts is stopped on exit, error or signal.
#
# Usage: bench/slurm/run.sh [--jobs N] [--nodes M] [--cpus-per-node C]
#                           [--mode default|fast|best] [--timeout S]
#                           [--dir DIR] [--keep] [--port-base P]
# Exit: 0 all jobs completed; 1 some jobs failed or were lost; 2 bad usage,
#       missing packages or a cluster that would not come up; 3 timeout.
# See bench/slurm/README.md for what is measured and the settings per mode.
set -uo pipefail
export LC_ALL=C
PATH=$PATH:/usr/sbin:/sbin

PROG=slurm-bench
case "${BASH_SOURCE[0]}" in */*) HERE=${BASH_SOURCE[0]%/*} ;; *) HERE=. ;; esac
HERE=$(cd "$HERE" && pwd)

JOBS=1000 NODES=4 CPUS="" MODE=best TIMEOUT=600 DIR="" KEEP=0 PORT_BASE=""
POLL=0.25

usage() { sed -n '2,17p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

T_START=$EPOCHREALTIME
say() { printf '%s: [%6.1fs] %s\n' "$PROG" "$(elapsed)" "$*" >&2; }
elapsed() { awk -v a="$T_START" -v b="$EPOCHREALTIME" 'BEGIN{printf "%.1f", b-a}'; }
jstr() { local s=${1//\\/\\\\}; s=${s//\"/\\\"}; printf '"%s"' "$s"; }

# Before the cluster exists: one line on stderr, a JSON error on stdout.
die() {
  printf '%s: error: %s\n' "$PROG" "$1" >&2
  printf '{"system":"slurm","mode":%s,"jobs":%s,"error":%s}\n' \
    "$(jstr "$MODE")" "${JOBS:-null}" "$(jstr "$1")"
  exit "${2:-2}"
}

while [ $# -gt 0 ]; do
  case "$1" in
    --jobs) JOBS=${2:-}; shift 2 ;;
    --jobs=*) JOBS=${1#*=}; shift ;;
    --nodes) NODES=${2:-}; shift 2 ;;
    --nodes=*) NODES=${1#*=}; shift ;;
    --cpus-per-node) CPUS=${2:-}; shift 2 ;;
    --cpus-per-node=*) CPUS=${1#*=}; shift ;;
    --mode) MODE=${2:-}; shift 2 ;;
    --mode=*) MODE=${1#*=}; shift ;;
    --timeout) TIMEOUT=${2:-}; shift 2 ;;
    --timeout=*) TIMEOUT=${1#*=}; shift ;;
    --dir) DIR=${2:-}; KEEP=1; shift 2 ;;
    --dir=*) DIR=${1#*=}; KEEP=1; shift ;;
    --keep) KEEP=1; shift ;;
    --port-base) PORT_BASE=${2:-}; shift 2 ;;
    --port-base=*) PORT_BASE=${1#*=}; shift ;;
    -h|--help) usage; exit 0 ;;
    *) printf '%s: error: unknown argument %s (try --help)\n' "$PROG" "$1" >&2; exit 2 ;;
  esac
done

isint() { [[ $1 =~ ^[0-9]+$ ]] && [ "$1" -ge "${2:-1}" ]; }
isint "$JOBS" || die "--jobs must be a positive integer"
isint "$NODES" && [ "$NODES" -le 64 ] || die "--nodes must be 1..64"
isint "$TIMEOUT" || die "--timeout must be a positive number of seconds"
case "$MODE" in default|fast|best) ;; *) die "--mode must be default, fast or best" ;; esac
HOST_CPUS=$(nproc 2>/dev/null || echo 1)
if [ -z "$CPUS" ]; then
  if [ "$MODE" = best ]; then CPUS=16; else CPUS=$HOST_CPUS; fi
fi
isint "$CPUS" || die "--cpus-per-node must be a positive integer"
[ -z "$PORT_BASE" ] || { isint "$PORT_BASE" 1024 && [ "$PORT_BASE" -le 65000 ]; } ||
  die "--port-base must be 1024..65000"

# ---- prerequisites: installed, never installed here -------------------------
missing=()
for c in slurmctld slurmd sbatch squeue sinfo scontrol scancel; do
  command -v "$c" >/dev/null 2>&1 || missing+=("$c")
done
[ ${#missing[@]} -eq 0 ] ||
  die "slurm-wlm is not installed (missing ${missing[*]}); run scripts/install-deps.sh --bench"
missing=()
for c in munged munge unmunge; do command -v "$c" >/dev/null 2>&1 || missing+=("$c"); done
[ ${#missing[@]} -eq 0 ] ||
  die "munge is not installed (missing ${missing[*]}); run scripts/install-deps.sh --bench"
command -v python3 >/dev/null 2>&1 || die "python3 is not installed; run scripts/install-deps.sh"
[ -r "$HERE/slurm.conf.in" ] && [ -r "$HERE/summarize.py" ] ||
  die "missing $HERE/slurm.conf.in or summarize.py"
VERSION=$(slurmctld -V 2>/dev/null | awk '{print $2}')
USER_NAME=$(id -un)
[ "$(id -u)" = 0 ] || say "warning: not root; Slurm daemons run as $USER_NAME (untested)"

DEADLINE=$(( $(date +%s) + TIMEOUT ))
left() { echo $(( DEADLINE - $(date +%s) )); }

# ---- cleanup: always, on exit, error or signal ------------------------------
PIDS=() NAMES=() CLEANED=0
cleanup() {
  [ "$CLEANED" = 1 ] && return; CLEANED=1
  trap '' INT TERM
  if [ ${#PIDS[@]} -gt 0 ]; then
    # Jobs still in flight (timeout, error): cancel them while slurmctld lives.
    if [ "${RUN_DONE:-0}" != 1 ] && [ -n "${SLURM_CONF:-}" ] && kill -0 "${PIDS[1]:-0}" 2>/dev/null; then
      timeout 10 scancel --quiet --full --user="$USER_NAME" 2>/dev/null || true
    fi
    local i p
    for (( i=${#PIDS[@]}-1; i>=0; i-- )); do kill -TERM "${PIDS[i]}" 2>/dev/null; done
    for _ in $(seq 50); do
      p=0; for i in "${PIDS[@]}"; do kill -0 "$i" 2>/dev/null && p=1; done
      [ $p = 0 ] && break; sleep 0.1
    done
    for i in "${PIDS[@]}"; do kill -KILL "$i" 2>/dev/null; done
    wait 2>/dev/null
    # slurmstepd processes detach from slurmd; ours carry our SLURM_CONF.
    if [ -n "${DIR:-}" ]; then
      for p in $(pgrep -x slurmstepd 2>/dev/null); do
        if tr '\0' '\n' 2>/dev/null < "/proc/$p/environ" | grep -qxF "SLURM_CONF=$DIR/etc/slurm.conf"; then
          kill -KILL "$p" 2>/dev/null
        fi
      done
    fi
  fi
  if [ -n "${DIR:-}" ] && [ "$KEEP" = 0 ] && [ -n "${MADE_DIR:-}" ]; then
    rm -rf -- "$DIR"
  elif [ -n "${DIR:-}" ]; then
    say "kept $DIR (logs in $DIR/log)"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# After the cluster exists: summarise what we have, then exit.
finish() {  # finish EXIT_CODE ERROR_MSG_OR_EMPTY
  local rc=$1 err=${2:-}
  [ -n "$err" ] && printf '%s: error: %s\n' "$PROG" "$err" >&2
  if [ -n "${SLURM_CONF:-}" ] && kill -0 "${PIDS[1]:-0}" 2>/dev/null; then
    timeout 30 squeue -h -t all -o '%i %T %V %S' > "$DIR/squeue.txt" 2>/dev/null || true
  fi
  local meta
  meta=$(printf '{"mode":%s,"jobs":%s,"nodes":%s,"cpus_per_node":%s,"version":%s,"t_submit0":%s,"t_submit1":%s,"t_poll_done":%s,"submit_errors":%s,"setup_s":%s,"host_cpus":%s,"error":%s,"dir":%s}' \
    "$(jstr "$MODE")" "$JOBS" "$NODES" "$CPUS" "$(jstr "$VERSION")" \
    "${T_SUB0:-null}" "${T_SUB1:-null}" "${T_DONE:-null}" "${SUBMIT_ERRORS:-0}" \
    "${SETUP_S:-null}" "$HOST_CPUS" "$( [ -n "$err" ] && jstr "$err" || echo null)" \
    "$( [ "$KEEP" = 1 ] && jstr "$DIR" || echo null)")
  local out
  if out=$(python3 "$HERE/summarize.py" "$DIR" "$meta"); then
    printf '%s\n' "$out"
    if [ "$rc" = 0 ]; then
      # All jobs must have finished with exit status 0.
      local ok
      ok=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["completed"])' "$out")
      if [ "$ok" != "$JOBS" ]; then
        printf '%s: error: only %s of %s jobs COMPLETED with exit 0\n' "$PROG" "$ok" "$JOBS" >&2
        rc=1
      fi
    fi
  else
    printf '{"system":"slurm","mode":%s,"jobs":%s,"error":%s}\n' "$(jstr "$MODE")" "$JOBS" \
      "$(jstr "summarize.py failed${err:+; $err}")"
    [ "$rc" = 0 ] && rc=1
  fi
  exit "$rc"
}

# ---- directory, ports, configuration ---------------------------------------
if [ -z "$DIR" ]; then
  DIR=$(mktemp -d "${TMPDIR:-/tmp}/moat-slurm.XXXXXX") || die "cannot create a temp dir"
  MADE_DIR=1
else
  mkdir -p "$DIR" || die "cannot create $DIR"
  DIR=$(cd "$DIR" && pwd)
  rm -rf -- "$DIR/etc" "$DIR/state" "$DIR/spool" "$DIR/log" "$DIR/run" "$DIR/work" \
    "$DIR/munge-key" "$DIR/munge-sock" "$DIR/jobids" "$DIR/squeue.txt"
fi
# munged wants its socket directory reachable by all and its key private.
chmod 755 "$DIR"
mkdir -p "$DIR"/{etc,state,spool,log,run,work,munge-key,munge-sock} || die "cannot populate $DIR"
chmod 700 "$DIR/munge-key"; chmod 755 "$DIR/munge-sock"
for i in $(seq 1 "$NODES"); do mkdir -p "$DIR/spool/n$i"; done
MUNGE_SOCKET=$DIR/munge-sock/munge.socket
[ ${#MUNGE_SOCKET} -lt 100 ] || die "--dir path too long for a unix socket: $DIR"

if [ "$MODE" = default ]; then NCTLD=1; else NCTLD=4; fi
NPORTS=$(( NCTLD + 1 + NODES ))
PORT_BASE=$(python3 - "$NPORTS" "${PORT_BASE:-0}" <<'EOF'
import random, socket, sys
n, want = int(sys.argv[1]), int(sys.argv[2])
def free(b):
    for p in range(b, b + n):
        s = socket.socket()
        try:
            s.bind(("127.0.0.1", p))
        except OSError:
            return False
        finally:
            s.close()
    return True
if want:
    print(want if free(want) else "")
else:
    for _ in range(200):  # below Linux's ephemeral range
        b = random.randrange(20000, 32000 - n)
        if free(b):
            print(b); break
EOF
)
[ -n "$PORT_BASE" ] || die "no $NPORTS free consecutive loopback ports found (try --port-base)"
CTLD_LO=$PORT_BASE CTLD_HI=$(( PORT_BASE + NCTLD - 1 ))
SLURMD_PORT=$(( CTLD_HI + 1 ))
NODE_LO=$(( SLURMD_PORT + 1 )) NODE_HI=$(( SLURMD_PORT + NODES ))
if [ "$NCTLD" = 1 ]; then CTLD_PORTS=$CTLD_LO; else CTLD_PORTS="$CTLD_LO-$CTLD_HI"; fi

# Per-mode settings (see README.md, "Settings").
MUNGE_THREADS=2
MODE_LINES="# mode default: Slurm's own scheduler defaults"
if [ "$MODE" != default ]; then
  MUNGE_THREADS=10
  MODE_LINES="# mode $MODE: tuned per Slurm's High Throughput Computing Administration Guide
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0,sched_min_interval=0,default_queue_depth=1000,bf_interval=30,bf_max_job_test=100,bf_continue
MessageTimeout=30"
fi
if [ "$CPUS" != "$HOST_CPUS" ]; then
  # Nodes declare more (or fewer) CPUs than the host has: trust slurm.conf.
  MODE_LINES="$MODE_LINES
SlurmdParameters=config_overrides"
fi

MAX_JOB_COUNT=$(( JOBS + 1000 )); [ "$MAX_JOB_COUNT" -ge 10000 ] || MAX_JOB_COUNT=10000
MIN_JOB_AGE=$(( TIMEOUT + 600 ))

conf=$(cat "$HERE/slurm.conf.in")
conf=${conf//@MODE_LINES@/$MODE_LINES}
conf=${conf//@CTLD_PORTS@/$CTLD_PORTS}
conf=${conf//@SLURMD_PORT@/$SLURMD_PORT}
conf=${conf//@MUNGE_SOCKET@/$MUNGE_SOCKET}
conf=${conf//@USER@/$USER_NAME}
conf=${conf//@DIR@/$DIR}
conf=${conf//@MIN_JOB_AGE@/$MIN_JOB_AGE}
conf=${conf//@MAX_JOB_COUNT@/$MAX_JOB_COUNT}
conf=${conf//@NODES@/$NODES}
conf=${conf//@CPUS@/$CPUS}
conf=${conf//@NODE_PORT_LO@/$NODE_LO}
conf=${conf//@NODE_PORT_HI@/$NODE_HI}
printf '%s\n' "$conf" > "$DIR/etc/slurm.conf" || die "cannot write $DIR/etc/slurm.conf"
export SLURM_CONF=$DIR/etc/slurm.conf

say "slurm $VERSION, mode $MODE, $JOBS jobs, $NODES nodes x $CPUS cpus (host has $HOST_CPUS), dir $DIR, ports $CTLD_LO-$NODE_HI on 127.0.0.1"

# ---- daemons ----------------------------------------------------------------
start() {  # start NAME CMD...: a background child whose pid we keep
  local name=$1; shift
  "$@" </dev/null >"$DIR/log/$name.out" 2>&1 &
  PIDS+=($!); NAMES+=("$name")
}
check_alive() {
  local i
  for i in "${!PIDS[@]}"; do
    if ! kill -0 "${PIDS[i]}" 2>/dev/null; then
      die "${NAMES[i]} exited: $(grep -v '^\s*$' "$DIR/log/${NAMES[i]}.out" 2>/dev/null | grep -iE 'error|fatal' | grep -v -e pmix -e MPI -e MailProg | head -1 | cut -c1-200)"
    fi
  done
}

head -c 1024 /dev/urandom > "$DIR/munge-key/munge.key" && chmod 400 "$DIR/munge-key/munge.key" ||
  die "cannot write the munge key"
start munged munged --foreground --force --num-threads="$MUNGE_THREADS" \
  --socket="$MUNGE_SOCKET" --key-file="$DIR/munge-key/munge.key" \
  --pid-file="$DIR/munge-key/munged.pid" --seed-file="$DIR/munge-key/munged.seed" \
  --log-file="$DIR/log/munged.log"
for _ in $(seq 100); do [ -S "$MUNGE_SOCKET" ] && break; check_alive; sleep 0.1; done
munge -n -S "$MUNGE_SOCKET" 2>/dev/null | unmunge -S "$MUNGE_SOCKET" >/dev/null 2>&1 ||
  { check_alive; die "munged on $MUNGE_SOCKET does not answer (see $DIR/log/munged.out)"; }

start slurmctld slurmctld -D -c -i -f "$SLURM_CONF"
sleep 0.2; check_alive
for i in $(seq 1 "$NODES"); do
  start "slurmd.n$i" slurmd -D -N "n$i" -f "$SLURM_CONF"
done

say "waiting for $NODES idle nodes"
while :; do
  check_alive
  idle=$(timeout 10 sinfo -h -N -t idle -o '%N' 2>/dev/null | sort -u | wc -l)
  [ "$idle" -ge "$NODES" ] && break
  if [ "$(left)" -le 0 ] || [ "$(elapsed | cut -d. -f1)" -ge 120 ]; then
    die "nodes not idle after $(elapsed)s: $(timeout 5 sinfo -h -N -o '%N=%T' 2>/dev/null | tr '\n' ' ')(see $DIR/log)"
  fi
  sleep 0.2
done
say "nodes idle; warm-up job (not counted)"
# slurmctld holds its first scheduling pass for a few seconds after start; one
# untimed job through the whole path keeps that out of the measurement.
warm=$(timeout 30 sbatch --parsable --wrap=true -o /dev/null -D "$DIR/work" 2>&1) ||
  die "warm-up sbatch failed: $warm"
while [ -n "$(timeout 10 squeue -h -o %i 2>/dev/null)" ]; do
  check_alive
  if [ "$(left)" -le 0 ] || [ "$(elapsed | cut -d. -f1)" -ge 180 ]; then
    die "warm-up job $warm did not finish: $(timeout 5 squeue -h -o '%i %T %r' 2>/dev/null | head -1)"
  fi
  sleep 0.2
done
SETUP_S=$(elapsed)
say "cluster up and warm in ${SETUP_S}s"

# ---- workload ---------------------------------------------------------------
: > "$DIR/jobids"
SUBMIT_ERRORS=0
T_SUB0=$EPOCHREALTIME
for (( i=1; i<=JOBS; i++ )); do
  if ! sbatch --parsable --wrap=true -o /dev/null -D "$DIR/work" >> "$DIR/jobids" 2>> "$DIR/log/sbatch.err"; then
    SUBMIT_ERRORS=$(( SUBMIT_ERRORS + 1 ))
    [ "$SUBMIT_ERRORS" -le 20 ] || { T_SUB1=$EPOCHREALTIME; finish 1 "more than 20 sbatch failures: $(tail -1 "$DIR/log/sbatch.err")"; }
  fi
  if (( i % 250 == 0 )); then
    say "submitted $i"
    [ "$(left)" -gt 0 ] || { T_SUB1=$EPOCHREALTIME; finish 3 "timeout after ${TIMEOUT}s while submitting ($i of $JOBS submitted)"; }
  fi
done
T_SUB1=$EPOCHREALTIME
say "submitted $JOBS in $(awk -v a="$T_SUB0" -v b="$T_SUB1" 'BEGIN{printf "%.2f", b-a}')s ($SUBMIT_ERRORS errors); waiting for completion"

last=-1 next_say=0
while :; do
  q=$(timeout 30 squeue -h -o '%i' 2>/dev/null) || { check_alive; sleep "$POLL"; continue; }
  n=$(printf '%s' "$q" | grep -c . || true)
  if [ "$n" = 0 ]; then T_DONE=$EPOCHREALTIME; break; fi
  now=$(date +%s)
  if [ "$now" -ge "$next_say" ] && [ "$n" != "$last" ]; then
    say "$n jobs queued or running"; last=$n; next_say=$(( now + 5 ))
  fi
  [ "$(left)" -gt 0 ] || finish 3 "timeout after ${TIMEOUT}s: $n jobs still queued or running"
  check_alive
  sleep "$POLL"
done
RUN_DONE=1
say "all jobs left the queue"
finish 0
