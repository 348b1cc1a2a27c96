#!/usr/bin/env bash
# A single-node Slurm cluster in a folder, from Debian 12's slurm-wlm and munge,
# for the tests (and for trying the job scripts by hand):
#   tests/slurm/cluster.sh start DIR   start munged, slurmctld and slurmd; wait until the node is idle
#   tests/slurm/cluster.sh stop DIR    stop them, and any job step left, by the PIDs started
# Then `. DIR/env` sets SLURM_CONF for sbatch, squeue, scontrol and scancel.
# Runs as root (SlurmUser=root), needs no systemd and touches nothing outside
# DIR: its own munge key, socket and log, its own state, spool and logs, and
# ports chosen at random. The node declares CORES cores (default 16, more than a
# small CI machine has: SlurmdParameters=config_overrides lets it), so that
# jobs can run side by side; they share the real cores.
# AuthInfo=cred_expire is 5 s instead of 120 s: a requeued job waits that long
# before it can start again (its BeginTime).
set -euo pipefail

cmd=${1:-}
dir=${2:-}
case "$cmd" in start|stop) ;; *) echo "usage: $0 start|stop DIR" >&2; exit 2 ;; esac
[ -n "$dir" ] || { echo "usage: $0 start|stop DIR" >&2; exit 2; }
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)

# Kills this cluster's jobs, then what DIR/pids names (only if it is still the
# program started there), then anything left of the jobs: processes whose
# environment holds this cluster's SLURM_CONF and a job id (scripts, job steps)
# and slurmstepd processes started with this SLURM_CONF.
stop() {
    local conf=$dir/slurm.conf pid name env
    if [ -f "$dir/pids" ] && command -v scancel > /dev/null; then
        SLURM_CONF=$conf timeout 5 scancel --full --signal=KILL --quiet --user="$(id -un)" 2> /dev/null || true
        for _ in $(seq 25); do
            [ -z "$(SLURM_CONF=$conf timeout 5 squeue -h -t R,CG,S 2> /dev/null)" ] && break
            sleep 0.2
        done
    fi
    for pid in $(tac "$dir/pids" 2> /dev/null); do
        name=${pid#*:}
        pid=${pid%%:*}
        if [ "$(cat /proc/"$pid"/comm 2> /dev/null)" = "$name" ]; then
            kill -TERM "$pid" 2> /dev/null || true
            for _ in $(seq 50); do kill -0 "$pid" 2> /dev/null || break; sleep 0.1; done
            kill -KILL "$pid" 2> /dev/null || true
        fi
    done
    for pid in $(ls /proc | grep -x '[0-9]*'); do
        [ "$pid" = $$ ] && continue
        env=$(tr "\\0" "\\n" 2> /dev/null < /proc/"$pid"/environ || true)
        grep -qxF "SLURM_CONF=$conf" <<< "$env" || continue
        if [ "$(cat /proc/"$pid"/comm 2> /dev/null)" = slurmstepd ] || grep -q '^SLURM_JOB_ID=' <<< "$env"; then
            kill -KILL "$pid" 2> /dev/null || true
        fi
    done
    rm -f "$dir/pids"
}

if [ "$cmd" = stop ]; then
    stop
    exit 0
fi

fail() {
    echo "slurm mini-cluster: $*" >&2
    local d log
    for d in munged slurmctld slurmd; do # the log, or what came before it could be opened
        log=$dir/$d.log
        [ -s "$log" ] || log=$dir/$d.stderr
        [ -s "$log" ] && { echo "--- $log (end)" >&2; tail -n 20 "$log" >&2; }
    done
    stop
    exit 1
}

for prog in munged mungekey slurmctld slurmd sinfo; do
    command -v "$prog" > /dev/null || PATH=$PATH:/usr/sbin:/sbin
    command -v "$prog" > /dev/null \
        || fail "'$prog' not found: install Debian's slurm-wlm and munge (scripts/setup.sh test does)"
done
[ "$(id -u)" = 0 ] || fail "must run as root (the daemons run as SlurmUser=root)"
[ -f "$dir/pids" ] && fail "$dir/pids exists: a cluster may still run there (stop it first)"

mkdir -p "$dir/munge" "$dir/state" "$dir/spool" "$dir/tmp"
chmod 711 "$dir/munge" # the socket must be reachable; the key stays 600
# Started daemons are noted at once, so that a failure below stops them.
note() { echo "$1:$2" >> "$dir/pids"; }

# munge: its own key, socket, pid file and log, so a system munged is left alone.
[ -f "$dir/munge/munge.key" ] || mungekey --create --keyfile="$dir/munge/munge.key" \
    || fail "mungekey could not create a key"
chmod 600 "$dir/munge/munge.key"
socket=$dir/munge/munge.socket
munged --foreground --force --socket="$socket" --key-file="$dir/munge/munge.key" \
    --pid-file="$dir/munge/munged.pid" --log-file="$dir/munged.log" --seed-file="$dir/munge/seed" \
    > /dev/null 2>> "$dir/munged.log" &
note $! munged
for _ in $(seq 50); do [ -S "$socket" ] && break; sleep 0.1; done
[ -S "$socket" ] || fail "munged did not create its socket $socket"

node=$(uname -n | cut -d. -f1)
port=$((20000 + RANDOM % 20000))
cores=${CORES:-16}
memory=$(awk '/^MemTotal:/ { print int($2 / 1024 / 2) }' /proc/meminfo) # MiB the jobs may ask for
cat > "$dir/slurm.conf" <<EOF
ClusterName=mpicka-test
SlurmctldHost=$node(127.0.0.1)
SlurmctldPort=$port
SlurmdPort=$((port + 1))
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$socket,cred_expire=5
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
TmpFS=$dir/tmp
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SwitchType=switch/none
MpiDefault=pmix
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=2,bf_interval=2
SlurmdParameters=config_overrides
ReturnToService=2
MinJobAge=600
DefMemPerCPU=512
KillWait=30
InactiveLimit=0
NodeName=$node NodeAddr=127.0.0.1 CPUs=$cores Sockets=1 CoresPerSocket=$cores ThreadsPerCore=1 RealMemory=$memory State=UNKNOWN
PartitionName=test Nodes=$node Default=YES MaxTime=INFINITE State=UP
EOF
echo "export SLURM_CONF=$dir/slurm.conf" > "$dir/env"
export SLURM_CONF=$dir/slurm.conf

# When the controller started: it checks time limits (and sends --signal
# warnings) every 30 s from then on, which a test can time a job against.
date +%s.%N > "$dir/started"
slurmctld -D -i > /dev/null 2>> "$dir/slurmctld.stderr" &
note $! slurmctld
slurmd -D -N "$node" > /dev/null 2>> "$dir/slurmd.stderr" &
note $! slurmd

state=
for _ in $(seq 150); do # 30 s at most; it takes about a second
    state=$(timeout 5 sinfo -h -n "$node" -o %t 2> /dev/null || true)
    [ "$state" = idle ] && break
    for pid in $(cat "$dir/pids"); do
        [ -d /proc/"${pid%%:*}" ] || fail "${pid#*:} exited at start"
    done
    sleep 0.2
done
[ "$state" = idle ] || fail "node $node is not idle after 30 s (state '${state:-unknown}')"
echo "slurm mini-cluster up in $dir: node $node, $cores cores, controller port $port"
