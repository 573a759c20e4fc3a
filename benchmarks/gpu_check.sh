#!/usr/bin/env bash
# The GPU check (docs/gpu.md): what only a CUDA device can show, in one command that
# writes one JSON summary. Under 10 minutes on one H100-class GPU; --cpu runs the same
# parts at tiny sizes on the CPU in well under a minute (tests/test_gpu_check.py).
#
#   bash benchmarks/gpu_check.sh [--cpu] [--python PY] [--out PATH] [--work DIR] [--wheels DIR]
#   bash benchmarks/gpu_check.sh --download-wheels DIR [--python PY]
#
# Parts, each with its status, exit code and wall seconds in the summary:
#   tests          pytest -m gpu tests/gpu (AMP, DySample under bf16, per-run memory,
#                  sync-free steps, deterministic runs), with a JUnit XML
#   suite          `segbench run benchmarks/gpu/coco_small.toml` on a COCO layout exported
#                  from the embedded shapes set: mIoU, peak memory, latency per run
#   engine_vs_raw  benchmarks/test_engine.py on the device: the engine's throughput over
#                  a hand-written PyTorch loop's, with pytest-benchmark's JSON
#   loader         benchmarks/test_loader.py -k feed on the device: training steps fed by
#                  the streaming loader against steps fed from memory, and the share of a
#                  step spent waiting for the loader, with pytest-benchmark's JSON
#
# Python: --python PY, else .venv/bin/python when it imports torch, else python3. Nothing
# is downloaded: a GPU machine is often offline. Packages that python lacks can come as
# wheels in DIR (--wheels DIR, or ./.whl when it holds any), installed with --no-index
# into the work folder; --download-wheels DIR fetches, on a machine with an index, the
# ones a CUDA image with PyTorch usually lacks (segmentation-models-pytorch, pycocotools,
# platformdirs) at the versions installed here. When segbench is not installed for that
# python, its entry points come from a stand-in dist-info in the work folder that points
# at this checkout (no pip, no build).
#
# The summary goes to --out PATH, else $OUT/gpu_check.json when $OUT is set, else
# ./gpu_check.json, and its `problems` are printed at the end: one sentence per requirement
# not met (a part that failed, a GPU test that skipped, a run missing or in the wrong
# precision, a ratio below its target). Exit code: 0 when there is none, 1 otherwise,
# 2 for a bad option.
set -euo pipefail

usage() {
    sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'
}

MODE=gpu
PY=""
OUT_PATH=""
WORK=""
WHEELS=""
DOWNLOAD=""
WHEEL_PYTHON=3.12
while [[ $# -gt 0 ]]; do
    case $1 in
        --cpu) MODE=cpu ;;
        --python) PY=${2:?--python needs a path}; shift ;;
        --out) OUT_PATH=${2:?--out needs a path}; shift ;;
        --work) WORK=${2:?--work needs a folder}; shift ;;
        --wheels) WHEELS=${2:?--wheels needs a folder}; shift ;;
        --download-wheels) DOWNLOAD=${2:?--download-wheels needs a folder}; shift ;;
        --wheel-python) WHEEL_PYTHON=${2:?--wheel-python needs a version such as 3.12}; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "gpu_check.sh: unknown option '$1'" >&2; usage >&2; exit 2 ;;
    esac
    shift
done

# Paths the user gave are taken from where the command ran; the check runs in the repo root.
absolute() { [[ $1 = /* ]] && printf '%s\n' "$1" || printf '%s\n' "$PWD/$1"; }
[[ -z $OUT_PATH ]] && OUT_PATH=${OUT:+$OUT/gpu_check.json}
OUT_PATH=$(absolute "${OUT_PATH:-gpu_check.json}")
[[ -n $WORK ]] && WORK=$(absolute "$WORK")
[[ -n $WHEELS ]] && WHEELS=$(absolute "$WHEELS")
[[ -n $DOWNLOAD ]] && DOWNLOAD=$(absolute "$DOWNLOAD")
[[ -n $PY && $PY = */* ]] && PY=$(absolute "$PY")
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"

if [[ -z $PY ]]; then
    if [[ -x .venv/bin/python ]] && .venv/bin/python -c 'import torch' >/dev/null 2>&1; then
        PY=$REPO/.venv/bin/python
    else
        PY=python3
    fi
fi

if [[ -n $DOWNLOAD ]]; then
    # The packages a CUDA image with PyTorch usually lacks, at the versions this python has.
    versions=$("$PY" -c 'import importlib.metadata as m
for name in ("segmentation-models-pytorch", "pycocotools", "platformdirs"):
    print(f"{name}=={m.version(name)}")')
    # shellcheck disable=SC2086  # one requirement per word
    "$PY" -m pip download --no-deps --only-binary=:all: --python-version "$WHEEL_PYTHON" --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
        --platform manylinux1_x86_64 -d "$DOWNLOAD" $versions
    echo "wheels in $DOWNLOAD; on the GPU machine: bash benchmarks/gpu_check.sh --wheels $DOWNLOAD"
    exit 0
fi

STARTED=$(date +%s.%N)
[[ -z $WORK ]] && WORK=$(mktemp -d "${TMPDIR:-/tmp}/segbench-gpu-check.XXXXXX")
mkdir -p "$WORK/logs"
rm -f "$WORK/parts.tsv" "$WORK/env.json" "$WORK/gpu-tests.xml" "$WORK/engine-bench.json" "$WORK/loader-bench.json"
rm -rf "$WORK/results" "$WORK/coco" "$WORK/site" "$WORK/shim"
export SEGBENCH_DATA_CACHE=$WORK/cache SEGBENCH_CRASH_DIR=$WORK/crash PYTHONUNBUFFERED=1 MPLBACKEND=Agg
if [[ $MODE = cpu ]]; then
    # Tiny sizes: one thread each is as fast, and does not thrash a shared machine.
    export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} MKL_NUM_THREADS=${MKL_NUM_THREADS:-1}
    LIMIT_TESTS=120 LIMIT_EXPORT=60 LIMIT_SUITE=120 LIMIT_ENGINE=120 LIMIT_LOADER=120
    EXPORT=(--set image_size=32 --set num_train=16 --set num_val=8)
    SUITE_SET=(--set dataset.image_size=32 --set 'model.encoder="lite"' --set 'model.decoder_channels=[16, 8, 8, 8, 8]'
               --set train.epochs=1 --set train.batch_size=8)
    BENCH_ENV=(SEGBENCH_BENCH_DEVICE=cpu SEGBENCH_BENCH_SIZE=tiny SEGBENCH_BENCH_TARGET=0)
    LOADER_ENV=(SEGBENCH_BENCH_DEVICE=cpu SEGBENCH_BENCH_SIZE=tiny)
else
    # Limits that keep the whole check under 10 minutes (9 for the parts); the expected
    # times are far below them.
    LIMIT_TESTS=120 LIMIT_EXPORT=60 LIMIT_SUITE=150 LIMIT_ENGINE=90 LIMIT_LOADER=120
    EXPORT=(--set image_size=160 --set num_train=512 --set num_val=128)
    SUITE_SET=()
    BENCH_ENV=(SEGBENCH_BENCH_DEVICE=cuda)
    LOADER_ENV=(SEGBENCH_BENCH_DEVICE=cuda)
fi

limited() {  # limited SECONDS COMMAND...: the command, stopped after SECONDS (exit 124)
    local seconds=$1
    shift
    if command -v timeout >/dev/null; then
        timeout -k 10 "$seconds" "$@"
    else
        "$@"
    fi
}

setup() {
    if [[ -z $WHEELS && -d .whl ]]; then
        WHEELS=$REPO/.whl
    fi
    if [[ -n $WHEELS ]]; then
        shopt -s nullglob
        local wheels=("$WHEELS"/*.whl)
        shopt -u nullglob
        if [[ ${#wheels[@]} -gt 0 ]]; then
            echo "installing ${#wheels[@]} wheel(s) from $WHEELS into $WORK/site"
            PIP_ROOT_USER_ACTION=ignore "$PY" -m pip install -q --disable-pip-version-check --no-index --no-deps --no-compile --no-cache-dir --target "$WORK/site" "${wheels[@]}"
            export PYTHONPATH="$WORK/site${PYTHONPATH:+:$PYTHONPATH}"
        fi
    fi
    if ! "$PY" -c 'import importlib.metadata as m, sys
import segbench_plugins
sys.exit(not any(e.value.startswith("segbench_plugins") for e in m.entry_points(group="segbench")))' >/dev/null 2>&1; then
        make_shim
    fi
    "$PY" - "$WORK/env.json" "$MODE" <<'EOF'
"""Record the environment; fail, naming what is missing, when the check cannot run."""
import importlib
import json
import platform
import sys

out, mode = sys.argv[1:]
env = {"status": "ok", "python": sys.executable, "python_version": platform.python_version(),
       "installed": [p for p in sys.path if p.endswith("/site")], "shim": any(p.endswith("/shim") for p in sys.path)}
missing = []
for module in ("torch", "torchvision", "segmentation_models_pytorch", "pycocotools", "pluggy", "pandas", "scipy",
               "statsmodels", "matplotlib", "platformdirs", "tqdm", "PIL", "pytest", "pytest_benchmark",
               "segbench", "segbench_plugins"):
    try:
        importlib.import_module(module)
    except Exception as error:  # noqa: BLE001 - any import failure is reported by name
        missing.append(f"{module} ({type(error).__name__}: {error})")
if "torch" in sys.modules:
    import torch
    env["torch"] = torch.__version__
    env["cuda"] = torch.version.cuda
    if torch.cuda.is_available():
        properties = torch.cuda.get_device_properties(0)
        env["device"] = {"type": "cuda", "name": properties.name, "count": torch.cuda.device_count(),
                         "memory_gib": round(properties.total_memory / 2**30, 1),
                         "capability": f"{properties.major}.{properties.minor}", "bf16": torch.cuda.is_bf16_supported()}
    else:
        env["device"] = {"type": "cpu", "name": platform.processor() or platform.machine(), "count": 0}
if missing:
    env.update(status="failed", missing=missing,
               error="missing Python packages; bring them as wheels (--wheels DIR; --download-wheels DIR on a machine with an index)")
elif mode == "gpu" and env["device"]["type"] != "cuda":
    env.update(status="failed", error="no CUDA device (torch.cuda.is_available() is False); --cpu runs the check on the CPU")
else:
    from segbench.plugins import load_catalogue
    try:
        catalogue = load_catalogue()
        for kind, name in (("dataset", "coco"), ("dataset", "shapes"), ("architecture", "unet"), ("upsampler", "dysample")):
            catalogue.get(kind, name)
    except Exception as error:  # noqa: BLE001 - reported by name
        env.update(status="failed", error=f"segbench's standard plugins are not all found: {type(error).__name__}: {error}")
with open(out, "w") as handle:
    json.dump(env, handle, indent=2)
print(json.dumps({key: env.get(key) for key in ("status", "error", "python", "torch", "cuda", "device")}))
sys.exit(env["status"] != "ok")
EOF
}

make_shim() {
    # segbench's entry points without installing it: a dist-info that names this checkout.
    echo "segbench is not installed for $PY: using a stand-in dist-info in $WORK/shim"
    mkdir -p "$WORK/shim"
    ln -sfn "$REPO/segbench" "$WORK/shim/segbench"
    ln -sfn "$REPO/plugins" "$WORK/shim/segbench_plugins"
    "$PY" - "$REPO" "$WORK/shim" <<'EOF'
import pathlib
import sys
import tomllib

repo, shim = map(pathlib.Path, sys.argv[1:])
project = tomllib.loads((repo / "pyproject.toml").read_text())["project"]
info = shim / f"segbench-{project['version']}.dist-info"
info.mkdir(exist_ok=True)
(info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: segbench\nVersion: {project['version']}\n")
groups = {"console_scripts": project.get("scripts", {}), **project.get("entry-points", {})}
text = "".join(f"[{group}]\n" + "".join(f"{name} = {target}\n" for name, target in entries.items()) + "\n"
               for group, entries in groups.items())
(info / "entry_points.txt").write_text(text)
EOF
    export PYTHONPATH="$WORK/shim${PYTHONPATH:+:$PYTHONPATH}"
}

part_tests() {
    limited "$LIMIT_TESTS" "$PY" -m pytest -m gpu tests/gpu -p no:cacheprovider -q -rfEs --junitxml "$WORK/gpu-tests.xml"
}

part_suite() {
    limited "$LIMIT_EXPORT" "$PY" -m segbench data export shapes --format coco "$WORK/coco" "${EXPORT[@]}"
    limited "$LIMIT_SUITE" "$PY" -m segbench run benchmarks/gpu/coco_small.toml -o "$WORK/results" -q \
        --set "dataset.root=\"$WORK/coco\"" ${SUITE_SET[@]+"${SUITE_SET[@]}"}
}

part_engine_vs_raw() {
    limited "$LIMIT_ENGINE" env "${BENCH_ENV[@]}" "$PY" -m pytest benchmarks/test_engine.py -p no:cacheprovider -q \
        --benchmark-json "$WORK/engine-bench.json"
}

part_loader() {
    limited "$LIMIT_LOADER" env "${LOADER_ENV[@]}" "$PY" -m pytest benchmarks/test_loader.py -k feed -p no:cacheprovider -q \
        --benchmark-json "$WORK/loader-bench.json"
}

run_part() {  # run_part NAME: its output to logs/NAME.log, a line to parts.tsv
    local name=$1 started ended rc status
    started=$(date +%s.%N)
    echo "== $name"
    set +e
    ( set -e; "part_$name" ) >"$WORK/logs/$name.log" 2>&1
    rc=$?
    set -e
    ended=$(date +%s.%N)
    case $rc in
        0) status=ok ;;
        124|137) status=timeout ;;
        *) status=failed ;;
    esac
    printf '%s\t%s\t%s\t%s\n' "$name" "$status" "$rc" "$(awk "BEGIN { print $ended - $started }")" >>"$WORK/parts.tsv"
    tail -n "$([[ $status = ok ]] && echo 8 || echo 40)" "$WORK/logs/$name.log" | sed 's/^/   | /'
    echo "   $name: $status (exit $rc)"
}

echo "gpu_check ($MODE): python $PY, work folder $WORK"
set +e
( set -e; setup ) >"$WORK/logs/setup.log" 2>&1
SETUP_RC=$?
set -e
# The set-up's exports happened in a subshell: make them again for the parts.
[[ -d $WORK/site ]] && export PYTHONPATH="$WORK/site${PYTHONPATH:+:$PYTHONPATH}"
[[ -d $WORK/shim ]] && export PYTHONPATH="$WORK/shim${PYTHONPATH:+:$PYTHONPATH}"
sed 's/^/   | /' "$WORK/logs/setup.log"
if [[ $SETUP_RC -eq 0 ]]; then
    run_part tests
    run_part suite
    run_part engine_vs_raw
    run_part loader
else
    echo "   set-up failed (exit $SETUP_RC): no part ran"
fi
# Exit codes alone prove little (a GPU test that skips itself passes): the summary judges
# what the parts measured, prints its problems, and its exit code is the check's.
exec "$PY" benchmarks/gpu_summary.py "$WORK" --mode "$MODE" --out "$OUT_PATH" --started "$STARTED"
