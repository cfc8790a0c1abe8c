#!/usr/bin/env bash
# Starts a training run on this machine, or on one host of a multi-host cluster.
#
# One machine (every local GPU/TPU/CPU device, data parallel):
#   ./launch.sh configs/normal.py /path/to/workdir [--config.batch_size=128 ...]
#
# Several hosts: run the same command on every host, with
#   CXRGAN_COORDINATOR=<host0>:<port>  address of process 0, reachable by all
#   CXRGAN_NUM_PROCESSES=<N>           number of hosts (processes)
#   CXRGAN_PROCESS_ID=<i>              this host's index, 0..N-1
# Under SLURM (srun), these are filled in from SLURM_* when not set.
# The workdir must be on storage every host sees (NFS, GCS, ...): Orbax writes
# one checkpoint together from all hosts, and every host resumes from it.
set -euo pipefail

if [[ $# -lt 2 ]]; then
  sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'
  exit 2
fi
config="$1"; workdir="$2"; shift 2
here="$(cd "$(dirname "$0")" && pwd)"

if [[ -n "${SLURM_NTASKS:-}" && -z "${CXRGAN_NUM_PROCESSES:-}" ]]; then
  first_host="$(scontrol show hostnames "${SLURM_JOB_NODELIST}" | head -n1)"
  export CXRGAN_COORDINATOR="${first_host}:${CXRGAN_PORT:-12345}"
  export CXRGAN_NUM_PROCESSES="${SLURM_NTASKS}"
  export CXRGAN_PROCESS_ID="${SLURM_PROCID}"
fi
export CXRGAN_NUM_PROCESSES="${CXRGAN_NUM_PROCESSES:-1}"
if [[ "${CXRGAN_NUM_PROCESSES}" != 1 ]]; then
  : "${CXRGAN_COORDINATOR:?set CXRGAN_COORDINATOR=host:port of process 0}"
  : "${CXRGAN_PROCESS_ID:?set CXRGAN_PROCESS_ID to this host index (0..N-1)}"
  echo "launch.sh: process ${CXRGAN_PROCESS_ID}/${CXRGAN_NUM_PROCESSES}, coordinator ${CXRGAN_COORDINATOR}" >&2
fi

cd "${here}"
exec python main.py --config="${config}" --workdir="${workdir}" "$@"
