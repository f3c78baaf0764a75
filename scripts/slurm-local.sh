#!/usr/bin/env bash
# A real single-node Slurm on this machine, for the executor's tests and for trying the
# cluster path without a cluster.
#
#   bash scripts/slurm-local.sh start    install (apt, as root, only if missing), configure,
#                                        start munged, slurmctld and slurmd, wait for an
#                                        idle node; running it again is harmless
#   bash scripts/slurm-local.sh stop     stop the three daemons
#   bash scripts/slurm-local.sh status   what runs, and what sinfo says
#
# There is no systemd here: the Debian packages never start their daemons, so this script
# does. Accounting is off (no slurmdbd), which is why the executor watches squeue itself.
# Environment: SLURM_CONF_DIR (default /etc/slurm), SLURM_WAIT_S (default 60).
set -euo pipefail

CONF_DIR=${SLURM_CONF_DIR:-/etc/slurm}
CONF=$CONF_DIR/slurm.conf
WAIT_S=${SLURM_WAIT_S:-60}
PACKAGES=(slurmctld slurmd slurm-client munge)
STATE_DIR=/var/spool/slurmctld
SPOOL_DIR=/var/spool/slurmd
LOG_DIR=/var/log/slurm

say() { echo "slurm-local: $*"; }
die() { echo "slurm-local: error: $*" >&2; exit 1; }

pidfile() {  # pidfile NAME: where the daemon writes its process id
    case "$1" in
        munged) echo /run/munge/munged.pid ;;
        *) echo "/run/$1.pid" ;;
    esac
}

daemon_pid() {  # daemon_pid NAME: the id of the running daemon, from its pid file
    local file pid
    file=$(pidfile "$1")
    [ -s "$file" ] || return 1
    pid=$(tr -dc '0-9' 2>/dev/null <"$file") || return 1
    [ -n "$pid" ] && [ -d "/proc/$pid" ] || return 1
    # A stale pid file may name a process that is something else now.
    [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$1" ] || return 1
    echo "$pid"
}

running() {  # running NAME: is the daemon alive?
    daemon_pid "$1" >/dev/null
}

kill_daemon() {  # kill_daemon NAME [SIGNAL]: signal the daemon named by its pid file
    local pid
    pid=$(daemon_pid "$1") || return 0
    kill "-${2:-TERM}" "$pid" 2>/dev/null || true
}

install_packages() {
    local missing=()
    for pkg in "${PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" \
            || missing+=("$pkg")
    done
    if [ ${#missing[@]} -eq 0 ]; then
        say "packages already installed (${PACKAGES[*]})"
        return
    fi
    [ "$(id -u)" = 0 ] || die "missing packages (${missing[*]}); installing them needs root"
    command -v apt-get >/dev/null || die "missing packages (${missing[*]}) and no apt-get"
    say "installing ${missing[*]} with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y --no-install-recommends "${PACKAGES[@]}" >/dev/null 2>&1 || {
        apt-get update >/dev/null 2>&1 || true
        apt-get install -y --no-install-recommends "${PACKAGES[@]}" >/dev/null \
            || die "apt-get install ${PACKAGES[*]} failed"
    }
}

write_config() {
    local host cpus mem_mb
    host=$(hostname -s)
    cpus=$(nproc)
    # A bit under MemTotal, or slurmd reports the node as having less than configured.
    mem_mb=$(awk '/^MemTotal:/ {printf "%d", $2 / 1024 * 0.95}' /proc/meminfo)
    mkdir -p "$CONF_DIR" "$STATE_DIR" "$SPOOL_DIR" "$LOG_DIR"
    local tmp
    tmp=$(mktemp)
    cat >"$tmp" <<EOF
# Written by scripts/slurm-local.sh: one node, no accounting, no cgroups.
ClusterName=drsl-local
SlurmctldHost=${host}(127.0.0.1)
SlurmUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MailProg=/bin/true
ReturnToService=2
StateSaveLocation=${STATE_DIR}
SlurmdSpoolDir=${SPOOL_DIR}
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=${LOG_DIR}/slurmctld.log
SlurmdLogFile=${LOG_DIR}/slurmd.log
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0,sched_min_interval=0
KillWait=5
MinJobAge=300
NodeName=${host} NodeAddr=127.0.0.1 CPUs=${cpus} RealMemory=${mem_mb} State=UNKNOWN
PartitionName=debug Nodes=${host} Default=YES MaxTime=INFINITE State=UP
EOF
    if [ -f "$CONF" ] && cmp -s "$tmp" "$CONF"; then
        say "config unchanged: $CONF"
        rm -f "$tmp"
        CONFIG_CHANGED=0
    else
        mv "$tmp" "$CONF"
        chmod 644 "$CONF"
        say "wrote $CONF (node $host, $cpus CPUs, ${mem_mb} MB)"
        CONFIG_CHANGED=1
    fi
}

start_munge() {
    install -d -o munge -g munge -m 0755 /run/munge
    if [ ! -s /etc/munge/munge.key ]; then
        if [ -x /usr/sbin/mungekey ]; then
            /usr/sbin/mungekey --create --keyfile=/etc/munge/munge.key --force >/dev/null
        else
            dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none
        fi
        chown munge:munge /etc/munge/munge.key
        chmod 0400 /etc/munge/munge.key
        say "created /etc/munge/munge.key"
    fi
    if running munged; then
        say "munged already running"
    else
        runuser -u munge -- /usr/sbin/munged
        say "started munged"
    fi
}

start_daemon() {  # start_daemon NAME
    local name=$1
    if running "$name"; then
        if [ "${CONFIG_CHANGED:-0}" = 1 ]; then
            say "$name running with an old config: restarting it"
            kill_daemon "$name"
            for _ in $(seq 50); do running "$name" || break; sleep 0.1; done
        else
            say "$name already running"
            return
        fi
    fi
    "/usr/sbin/$name"
    say "started $name"
}

node_state() {
    timeout 5 sinfo -h -N -o "%t" 2>/dev/null | head -n1 | tr -d '*[:space:]'
}

wait_idle() {
    local deadline=$((SECONDS + WAIT_S)) state=""
    while [ $SECONDS -lt $deadline ]; do
        state=$(node_state || true)
        case "$state" in
            idle|mix|mixed|alloc|allocated) say "node is $state: ready"; return 0 ;;
            down|drain|drained|fail) scontrol update nodename="$(hostname -s)" state=resume \
                                      >/dev/null 2>&1 || true ;;
        esac
        sleep 0.5
    done
    die "node not idle after ${WAIT_S}s (last state: '${state:-none}'); see $LOG_DIR/"
}

cmd_start() {
    local t0=$SECONDS
    install_packages
    write_config
    start_munge
    start_daemon slurmctld
    start_daemon slurmd
    wait_idle
    say "ready after $((SECONDS - t0))s; try: sinfo; squeue"
}

stop_daemon() {  # stop_daemon NAME
    local name=$1
    if ! running "$name"; then
        say "$name not running"
        return
    fi
    kill_daemon "$name"
    for _ in $(seq 100); do running "$name" || { say "stopped $name"; return; }; sleep 0.1; done
    kill_daemon "$name" KILL
    say "killed $name"
}

cmd_stop() {
    stop_daemon slurmd
    stop_daemon slurmctld
    stop_daemon munged
}

cmd_status() {
    for name in munged slurmctld slurmd; do
        if running "$name"; then say "$name running"; else say "$name not running"; fi
    done
    if command -v sinfo >/dev/null; then
        timeout 5 sinfo || say "sinfo did not answer"
    else
        say "sinfo not installed"
    fi
}

case "${1:-}" in
    start) cmd_start ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    *) echo "usage: $0 {start|stop|status}" >&2; exit 2 ;;
esac
