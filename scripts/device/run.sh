#!/bin/bash
# On the lent GPU machine, from the repo root with .gpu carried (see scripts/device/pack.py):
#   .gpu/run.sh NAME TIMEOUT_S [benchmarks/train_grocery.py args...]
# Installs once per machine, trains and evaluates, leaves NAME.json / NAME.log in $OUT.
set -u
if [ ! -f /tmp/setup.done ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .gpu/whl/*.whl || exit 1
  python3 -m pip install -q --no-index --no-deps --no-build-isolation -e . -e plugins/efficientnet_lite > /tmp/pip.log 2>&1 || { cat /tmp/pip.log; exit 1; }
  touch /tmp/setup.done
fi
export PYTHONPATH=/tmp/site:$PWD/.gpu/site PYTHONUNBUFFERED=1 CATALOG_AI_HOME=/tmp/cai
name=$1; limit=$2; shift 2
python3 -c "import timm,lightning,torch;print('timm',timm.__version__,'lightning',lightning.__version__,'torch',torch.__version__, torch.cuda.get_device_name(0))"
start=$(date +%s)
timeout "$limit" python3 benchmarks/train_grocery.py --data .gpu/data --out "/tmp/models/$name" "$@" > "$OUT/$name.json" 2> "$OUT/$name.log"
echo "$name rc=$? wall=$(( $(date +%s) - start ))s"
python3 .gpu/summary.py "$OUT/$name.json"
grep -iE "error|Traceback" "$OUT/$name.log" | tail -5
