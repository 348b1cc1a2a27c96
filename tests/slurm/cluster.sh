#!/usr/bin/env bash
# A Slurm cluster of one or more nodes in a folder, from Debian 12's slurm-wlm
# and munge, for the tests (and for trying the job scripts by hand):
#   tests/slurm/cluster.sh start DIR [NODES]   start munged, slurmctld and a slurmd per node; wait until all are idle
#   tests/slurm/cluster.sh stop DIR            stop them, and any job step left, by the PIDs started
# Then `. DIR/env` sets SLURM_CONF for sbatch, squeue, scontrol and scancel.
# Runs as root (SlurmUser=root), needs no systemd and touches nothing outside
# DIR: its own munge key, socket and log, its own state, spool and logs, and
# ports chosen at random. Each node declares CORES cores (default 16, more than a
# small CI machine has: SlurmdParameters=config_overrides lets it), so that
# jobs can run side by side; they share the real cores.
# AuthInfo=cred_expire is 5 s instead of 120 s: a requeued job waits that long
# before it can start again (its BeginTime).
#
# One node (the default) is this machine under its own name. NODES >= 2 are
# emulated: nodes n1..nN, all at 127.0.0.1 with a port each (Debian's Slurm is
# built with MULTIPLE_SLURMD), each slurmd started as `slurmd -N nK` inside a
# mount, UTS and IPC namespace of its own (unshare -m --uts --ipc; it and every
# job step it starts see there):
#   - the hostname nK: Open MPI names its shared-memory segments and session
#     folders after the host, and with one name for all nodes they collide
#     (srun -N 2 -n 4 hangs, mpirun in an allocation crashes in the vader BTL);
#   - DIR/nodes/nK/spool and .../tmp bind-mounted over slurm.conf's
#     SlurmdSpoolDir and TmpFS: the PMIx plugin does not expand %n, and
#     nodes sharing a spool fail every PMIx step ("pmixp_mkdir: ... File exists");
#   - a /dev/shm of its own (a new tmpfs) and System V IPC of its own (--ipc),
#     for the same reason as the hostname;
#   - a boot_id of its own (DIR/nodes/nK/boot_id over /proc/sys/kernel/random/boot_id):
#     UCX takes two processes with the same boot_id for one machine and
#     connects them through shared memory (then Open MPI's default pml, UCX,
#     would never use the network between the nodes, and a rank crashed once
#     with SIGSEGV that way);
#   - DIR/hosts (the real /etc/hosts plus n1..nN at 127.0.0.1) bind-mounted
#     over /etc/hosts, so that the nodes resolve each other's names.
# The mounts exist only inside the namespaces (private propagation) and vanish
# with their last process; the real /etc/hosts and /dev/shm are untouched.
# Where unshare cannot make namespaces (not root, a container that forbids
# them) start fails with status 3, saying so.
set -euo pipefail

cmd=${1:-}
dir=${2:-}
nodes=${3:-1}
usage="usage: $0 start DIR [NODES] | stop DIR"
case "$cmd" in start|stop) ;; *) echo "$usage" >&2; exit 2 ;; esac
[ -n "$dir" ] || { echo "$usage" >&2; exit 2; }
[[ $nodes =~ ^[1-9][0-9]?$ ]] || { echo "$0: NODES must be a number from 1 to 99, not '$nodes'" >&2; exit 2; }
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

# The nodes' logs: DIR/slurmd.log for one node, DIR/slurmd-nK.log for several.
if [ "$nodes" = 1 ]; then
    daemons=(slurmd)
    slurmd_file=slurmd
else
    daemons=()
    for k in $(seq "$nodes"); do daemons+=("slurmd-n$k"); done
    slurmd_file=slurmd-%n
fi

fail() {
    echo "slurm mini-cluster: $*" >&2
    local d log
    for d in munged slurmctld "${daemons[@]}"; do # the log, or what came before it could be opened
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
if [ "$nodes" -gt 1 ]; then
    command -v unshare > /dev/null || { echo "slurm mini-cluster: 'unshare' not found (util-linux)" >&2; exit 3; }
    if ! err=$(unshare -m --uts --ipc --propagation private true 2>&1); then
        echo "slurm mini-cluster: $nodes nodes need mount, UTS and IPC namespaces, and unshare cannot make them here: $err" >&2
        exit 3
    fi
fi
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

port=$((20000 + RANDOM % 20000))
# Job ids start at a random number: Open MPI names a step's shared memory after
# the host and the job and step ids, so two clusters on one machine (two test
# runs side by side) that both ran job 1 on the same host crashed each other's
# ranks (SIGSEGV in mca_btl_vader_poll_handle_frag).
first_job=$((1000 + RANDOM * 1000 + RANDOM % 1000))
cores=${CORES:-16}
# MiB the jobs may ask for on each node: half the machine, shared out.
memory=$(awk -v n="$nodes" '/^MemTotal:/ { print int($2 / 1024 / 2 / n) }' /proc/meminfo)
if [ "$nodes" = 1 ]; then
    names=("$(uname -n | cut -d. -f1)")
    partition=${names[0]}
else
    names=()
    for k in $(seq "$nodes"); do names+=("n$k"); done
    partition="n[1-$nodes]"
fi
{
    cat <<EOF2
ClusterName=mpicka-test
FirstJobId=$first_job
SlurmctldHost=$(uname -n | cut -d. -f1)(127.0.0.1)
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
SlurmdPidFile=$dir/$slurmd_file.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/$slurmd_file.log
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
EOF2
    k=0
    for name in "${names[@]}"; do
        k=$((k + 1))
        if [ "$nodes" = 1 ]; then
            echo "NodeName=$name NodeAddr=127.0.0.1 \\"
        else # one port each: the nodes share 127.0.0.1
            echo "NodeName=$name NodeHostname=$name NodeAddr=127.0.0.1 Port=$((port + 1 + k)) \\"
        fi
        echo "  CPUs=$cores Sockets=1 CoresPerSocket=$cores ThreadsPerCore=1 RealMemory=$memory State=UNKNOWN"
    done
    echo "PartitionName=test Nodes=$partition Default=YES MaxTime=INFINITE State=UP"
} > "$dir/slurm.conf"
echo "export SLURM_CONF=$dir/slurm.conf" > "$dir/env"
export SLURM_CONF=$dir/slurm.conf

# Starts node $1 (an emulated one: see the top) in its namespaces. The
# namespaces' first process becomes slurmd by exec, so the PID noted is
# slurmd's; it is waited for, so that stop finds it under that name.
start_node() {
    local name=$1 own=$dir/nodes/$1 pid
    mkdir -p "$own/spool" "$own/tmp"
    chmod 1777 "$own/tmp"
    cat /proc/sys/kernel/random/uuid > "$own/boot_id"
    unshare -m --uts --ipc --propagation private /bin/sh -c '
        set -e
        mount --bind "$1/spool" "$2/spool"
        mount --bind "$1/tmp" "$2/tmp"
        mount -t tmpfs -o mode=1777,size=25% "shm-$3" /dev/shm
        mount --bind "$2/hosts" /etc/hosts
        mount --bind "$1/boot_id" /proc/sys/kernel/random/boot_id
        hostname "$3"
        exec slurmd -D -N "$3"' sh "$own" "$dir" "$name" > /dev/null 2>> "$dir/slurmd-$name.stderr" &
    pid=$!
    for _ in $(seq 100); do
        [ "$(cat /proc/$pid/comm 2> /dev/null)" = slurmd ] && break
        if ! kill -0 "$pid" 2> /dev/null; then
            fail "node $name: its namespace could not be set up (unshare, mount or hostname failed)"
        fi
        sleep 0.05
    done
    [ "$(cat /proc/$pid/comm 2> /dev/null)" = slurmd ] || { kill -KILL "$pid" 2> /dev/null || true; fail "node $name: slurmd did not start"; }
    note "$pid" slurmd
}

if [ "$nodes" -gt 1 ]; then
    { cat /etc/hosts; echo "127.0.0.1 ${names[*]}"; } > "$dir/hosts"
fi

# When the controller started: it checks time limits (and sends --signal
# warnings) every 30 s from then on, which a test can time a job against.
date +%s.%N > "$dir/started"
slurmctld -D -i > /dev/null 2>> "$dir/slurmctld.stderr" &
note $! slurmctld
if [ "$nodes" = 1 ]; then
    slurmd -D -N "${names[0]}" > /dev/null 2>> "$dir/slurmd.stderr" &
    note $! slurmd
else
    for name in "${names[@]}"; do start_node "$name"; done
fi

state=
for _ in $(seq 150); do # 30 s at most; it takes a few seconds
    state=$(timeout 5 sinfo -h -N -o %t 2> /dev/null | sort -u | tr '\n' ' ' || true)
    [ "$state" = "idle " ] && [ "$(timeout 5 sinfo -h -N -o %N 2> /dev/null | wc -l)" = "$nodes" ] && break
    for pid in $(cat "$dir/pids"); do
        [ -d /proc/"${pid%%:*}" ] || fail "${pid#*:} exited at start"
    done
    sleep 0.2
done
[ "$state" = "idle " ] || fail "the nodes are not all idle after 30 s (states: ${state:-unknown})"
echo "slurm mini-cluster up in $dir: $nodes node(s) ${names[*]}, $cores cores each, controller port $port"
