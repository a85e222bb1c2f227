#!/usr/bin/env bash
# One device-lease check, as one command (docs/gpu.md §6): what `make test` cannot reach on a CPU-only machine.
#   bash tools/gpu_lease.sh COMMIT_LABEL [tests]   (on the GPU machine, from the repository root; $OUT collects the logs;
#                                                  `tests`: steps 1-2 only, for a lease too short for the dry run)
# 1. installs the wheels carried in .whl/ (the CPU pins of transformers/TRL/PEFT/papermill the image lacks) into
#    /tmp/site, without touching the image's torch;
# 2. runs the GPU-marked tests (`pytest -m gpu`) and the bf16 config test that skips on a CPU;
# 3. runs the paper profile's every stage on the real-format fixtures (tools/paper_dry_run.py --device cuda).
# Exit status: 0 only if every command of steps 2-3 (and the version header) exits 0. Logs: $OUT/gpu_tests.log, $OUT/paper_dry_run.log, $OUT/paper_dry_run.json.
set -u -o pipefail
label=${1:?usage: gpu_lease.sh COMMIT_LABEL [tests]}
only=${2:-}
out=${OUT:-/tmp/gpu_lease}; mkdir -p "$out"
export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1 PYTHONPATH=$PWD/lib
if compgen -G ".whl/*.whl" >/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    || { echo "gpu_lease: wheel install failed" >&2; exit 1; }
  export PYTHONPATH=/tmp/site:$PYTHONPATH
fi
header() {
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  echo "commit $label"
  python3 -c "import sys,torch,transformers,trl,peft,accelerate; print(sys.version.split()[0], 'torch', torch.__version__, 'cuda', torch.version.cuda, 'transformers', transformers.__version__, 'trl', trl.__version__, 'peft', peft.__version__, 'accelerate', accelerate.__version__)"
}
rc=0
step() {  # step LOG CMD...: run CMD, append its output to LOG and the screen; any non-zero exit fails the lease
  local log=$1; shift
  "$@" 2>&1 | tee -a "$log"
  local s=${PIPESTATUS[0]}
  if [ "$s" -ne 0 ]; then echo "gpu_lease: '$*' exited $s" | tee -a "$log"; rc=1; fi
}
tests=$out/gpu_tests.log dry=$out/paper_dry_run.log
: >"$tests"; [ "$only" = tests ] || : >"$dry"
step "$tests" header
step "$tests" python3 -m pytest -m gpu -p no:cacheprovider --durations=10  # exit 5 (no test collected) fails too
step "$tests" python3 -m pytest -p no:cacheprovider "tests/test_grpo.py::test_bf16_config_builds_where_there_is_a_bf16_device"
if [ "$only" != tests ]; then
  step "$dry" header
  step "$dry" python3 tools/paper_dry_run.py --device cuda --hidden 512 --layers 8 --json "$out/paper_dry_run.json"
fi
echo "gpu_lease: exit $rc"
exit $rc
