#!/usr/bin/env bash
# A single-node Slurm on this machine (slurmctld + slurmd on localhost), for the tests marked
# `slurm` (tests/test_slurm_executor.py). Debian/Ubuntu, as root:
#
#   tests/slurm/start_local_slurm.sh          # install (once), configure, start
#   tests/slurm/start_local_slurm.sh stop     # stop the daemons (they poll; leave none running)
#
# No accounting database (sacct answers nothing; segbench asks squeue), no cgroups
# (proctrack/linuxproc), the node's real CPUs and memory (slurmd -C). State and logs go under
# $SLURM_STATE (default /var/tmp/segbench-slurm).
set -euo pipefail

STATE=${SLURM_STATE:-/var/tmp/segbench-slurm}
CONF=/etc/slurm/slurm.conf
MUNGE_PID=/run/munge/segbench-munged.pid  # munged runs as munge: its own folder

stop() {
    for name in slurmd slurmctld; do
        if [ -f "$STATE/$name.pid" ]; then kill "$(cat "$STATE/$name.pid")" 2>/dev/null || true; fi
    done
    if [ -f "$MUNGE_PID" ]; then kill "$(cat "$MUNGE_PID")" 2>/dev/null || true; fi
    echo "stopped the Slurm daemons (state kept in $STATE)"
}

if [ "${1:-start}" = stop ]; then stop; exit 0; fi

if ! command -v slurmctld >/dev/null; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y slurm-wlm munge
fi

mkdir -p "$STATE/spool/ctld" "$STATE/spool/d" /run/munge /var/log/munge /var/lib/munge
if [ ! -s /etc/munge/munge.key ]; then
    dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key status=none
fi
chown -R munge:munge /etc/munge /run/munge /var/log/munge /var/lib/munge 2>/dev/null || true
chmod 400 /etc/munge/munge.key
if ! munge -n >/dev/null 2>&1; then
    runuser -u munge -- /usr/sbin/munged --pid-file="$MUNGE_PID"
fi
munge -n | unmunge >/dev/null  # munge works

HOST=$(hostname -s)
NODE=$(slurmd -C | head -1)  # NodeName=<host> CPUs=... RealMemory=...
cat > "$CONF" <<CONFIG
# written by segbench's tests/slurm/start_local_slurm.sh: one node, on localhost
ClusterName=segbench
SlurmctldHost=$HOST(127.0.0.1)
SlurmUser=root
SlurmctldPort=6817
SlurmdPort=6818
AuthType=auth/munge
StateSaveLocation=$STATE/spool/ctld
SlurmdSpoolDir=$STATE/spool/d
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/slurmctld.log
SlurmdLogFile=$STATE/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MinJobAge=600
$NODE State=UNKNOWN
PartitionName=debug Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
CONFIG
echo "wrote $CONF"

pgrep -F "$STATE/slurmctld.pid" >/dev/null 2>&1 || slurmctld
pgrep -F "$STATE/slurmd.pid" >/dev/null 2>&1 || slurmd
for _ in $(seq 30); do
    if sinfo --noheader --format=%T 2>/dev/null | grep -qE "idle|mixed|allocated"; then
        sinfo
        exit 0
    fi
    sleep 1
done
echo "Slurm did not come up; see $STATE/slurmctld.log and $STATE/slurmd.log" >&2
sinfo >&2 || true
exit 1
