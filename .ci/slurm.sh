#!/usr/bin/env bash
# A single-node SLURM cluster on this machine, for tests/test_slurm.py (neurofa sweep --cluster slurm).
#
# Installs Debian's slurm-wlm and munge, writes /etc/slurm/slurm.conf with the node line that `slurmd -C`
# reports, starts munged, slurmctld and slurmd without systemd, and waits until `sinfo` shows the node idle.
# Idempotent: a second call finds the daemons running and only checks the node. Needs root (apt-get, daemons).
# Exits non-zero with a message on stderr when SLURM cannot be started.
#
#   sudo -n bash .ci/slurm.sh        # install (if needed) and start
#   sudo -n bash .ci/slurm.sh stop   # stop the three daemons again (by their pid files)
set -euo pipefail

TIMEOUT=${SLURM_START_TIMEOUT:-60}
CONF_DIR=/etc/slurm
CONF=$CONF_DIR/slurm.conf
LOG_DIR=/var/log/slurm

die() { echo "slurm.sh: $*" >&2; exit 1; }
log() { echo "slurm.sh: $*"; }

[ "$(id -u)" -eq 0 ] || die "must run as root (installs packages and starts daemons)"

stop_pidfile() {  # stop_pidfile NAME FILE: TERM the process of a pid file and wait until it is gone
    local pid
    [ -f "$2" ] || return 0
    pid=$(cat "$2")
    if kill -0 "$pid" 2>/dev/null; then
        log "stopping $1 (pid $pid)"
        kill "$pid"
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    fi
    rm -f "$2"
}
if [ "${1:-start}" = "stop" ]; then
    stop_pidfile slurmd /run/slurm/slurmd.pid
    stop_pidfile slurmctld /run/slurm/slurmctld.pid
    stop_pidfile munged /run/munge/munged.pid
    exit 0
fi
[ "${1:-start}" = "start" ] || die "unknown argument '$1' (expected start or stop)"

node_state() { sinfo -h -N -o '%t' 2>/dev/null | head -n1; }

if command -v sinfo >/dev/null 2>&1 && [ "$(node_state)" = "idle" ]; then
    log "already running: $(sinfo -h -N -o '%N %c CPUs %t')"
    exit 0
fi

# -- packages ----------------------------------------------------------------------------------------------
if ! command -v slurmctld >/dev/null 2>&1 || ! command -v slurmd >/dev/null 2>&1 || ! command -v munged >/dev/null 2>&1
then
    log "installing slurm-wlm and munge with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq || die "apt-get update failed"
    apt-get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null || die "apt-get install slurm-wlm munge failed"
fi
for exe in slurmctld slurmd munged sinfo scontrol; do
    command -v "$exe" >/dev/null 2>&1 || die "$exe not found after installation"
done

# -- munge -------------------------------------------------------------------------------------------------
mkdir -p /etc/munge /var/lib/munge /var/log/munge /run/munge
if [ ! -s /etc/munge/munge.key ]; then
    log "creating /etc/munge/munge.key"
    if command -v mungekey >/dev/null 2>&1; then
        mungekey --create --keyfile=/etc/munge/munge.key --force
    else
        dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
    fi
fi
chown -R munge:munge /etc/munge /var/lib/munge /var/log/munge /run/munge
chmod 0700 /etc/munge /var/lib/munge /var/log/munge
chmod 0755 /run/munge
chmod 0400 /etc/munge/munge.key
if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    log "starting munged"
    runuser -u munge -- munged || die "munged did not start (see /var/log/munge/munged.log)"
    for _ in $(seq 20); do munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break; sleep 0.5; done
    munge -n | unmunge >/dev/null || die "munge credentials do not round-trip"
fi

# -- slurm.conf --------------------------------------------------------------------------------------------
host=$(hostname -s)
node_line=$(slurmd -C 2>/dev/null | grep '^NodeName=' | head -n1) || true
[ -n "$node_line" ] || die "'slurmd -C' printed no NodeName line"
mkdir -p "$CONF_DIR" "$LOG_DIR" /var/spool/slurmctld /var/spool/slurmd /run/slurm
tmp_conf=$(mktemp)
cat >"$tmp_conf" <<EOF
# Written by neurofa .ci/slurm.sh: a single-node cluster for tests (no cgroups, no accounting).
ClusterName=neurofa-ci
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurm/slurmctld.pid
SlurmdPidFile=/run/slurm/slurmd.pid
SlurmctldLogFile=$LOG_DIR/slurmctld.log
SlurmdLogFile=$LOG_DIR/slurmd.log
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
KillWait=5
MinJobAge=60
$node_line State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
if ! cmp -s "$tmp_conf" "$CONF"; then
    log "writing $CONF ($node_line)"
    install -m 0644 "$tmp_conf" "$CONF"
fi
rm -f "$tmp_conf"

# -- daemons -----------------------------------------------------------------------------------------------
running() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
if ! running /run/slurm/slurmctld.pid; then
    log "starting slurmctld"
    slurmctld || die "slurmctld did not start (see $LOG_DIR/slurmctld.log)"
fi
if ! running /run/slurm/slurmd.pid; then
    log "starting slurmd"
    slurmd || die "slurmd did not start (see $LOG_DIR/slurmd.log)"
fi

# -- wait for the node -------------------------------------------------------------------------------------
deadline=$((SECONDS + TIMEOUT))
state=""
while [ $SECONDS -lt $deadline ]; do
    state=$(node_state || true)
    case "$state" in
        idle) log "ready: $(sinfo -h -N -o '%N %c CPUs %t')"; exit 0 ;;
        down*|drain*|drng*) scontrol update NodeName="$host" State=RESUME >/dev/null 2>&1 || true ;;
    esac
    sleep 1
done
tail -n 5 "$LOG_DIR/slurmctld.log" "$LOG_DIR/slurmd.log" >&2 2>/dev/null || true
die "node did not become idle within ${TIMEOUT}s (state: '${state:-none}')"
