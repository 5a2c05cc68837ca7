#!/usr/bin/env bash
# Smoke test of every benchmark's --quick mode (a few minutes in all): each must run to the end.
# Results go to benchmarks/results/*_quick* (git-ignored), never over the committed tables.
set -euo pipefail
cd "$(dirname "$0")"
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
run() { echo "== $*"; start=$SECONDS; python "$@" > /dev/null; echo "   ok ($((SECONDS - start)) s)"; }
run speed_core.py --quick
run quality_levin.py --quick
run sigma_calibration.py --quick
run edge_ringing.py --quick
run microscopy.py --quick
run time_per_megapixel.py --quick
run inference_speed.py --quick
run fit_time.py --quick
run training_speed.py --quick --only 0 --rounds 1 --name training_speed_quick
run paper_table.py --quick
run any_kernel.py --quick --threads 1 --write-card --gray-model any-kernel-gray
run real_data.py --quick --threads 1
run data_step.py --quick --threads 1
run noise_floor.py --quick --threads 1
run richardson_lucy.py --quick --threads 1
run cpu_speedup.py --quick --threads 1
run scale.py --quick
run specialise.py --quick --threads 1
