#!/usr/bin/env bash
# Create .venv-onnx: optimum-onnx, the maintained ONNX exporter that `tunery export` runs for the `onnx` format, in
# its own virtual environment (optimum-onnx pins transformers below the version the training engine uses).
# CPU only: export and the onnxruntime check need no GPU. Idempotent: skipped when every pin is installed.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
VENV="${ONNX_VENV:-$ROOT/.venv-onnx}"
PY="${PY:-python3}"
TORCH_VERSION="2.13.0"
PINS=(
  "optimum-onnx[onnxruntime]==0.1.0"
  "optimum==2.1.0"
  "transformers==4.57.6"
  "onnx==1.23.1"
  "onnxruntime==1.30.0"
  # lets optimum deduplicate tied weights (one embedding matrix in model.onnx, not two)
  "accelerate==1.15.0"
)

installed() {  # every pin at its version
  "$VENV/bin/python" -c 'import importlib.metadata as m, re, sys
sys.exit(any(m.version(re.sub(r"\[.*\]", "", p.split("==")[0])) != p.split("==")[1] for p in sys.argv[1:]))' \
    "${PINS[@]}" 2>/dev/null
}
pip_install() {  # --no-compile: byte-compiling all of torch is most of the install time (imports compile theirs)
  # pip here also lists local wheel folders; drop that noise, keep pip's exit code
  "$VENV/bin/pip" install --quiet --no-compile "$@" 2>&1 | { grep -v "WARNING: Location" || true; }
}

test -x "$VENV/bin/python" || "$PY" -m venv "$VENV"
if installed; then
  echo "$VENV already has ${PINS[*]}"
else
  # the CPU build of torch first, then keep it pinned so no dependency swaps in a CUDA build
  pip_install "torch==$TORCH_VERSION"
  CONSTRAINTS="$(mktemp)"
  trap 'rm -f "$CONSTRAINTS"' EXIT
  echo "torch==$TORCH_VERSION" >"$CONSTRAINTS"
  pip_install -c "$CONSTRAINTS" "${PINS[@]}"
  installed || { echo "optimum-onnx's pinned packages did not install into $VENV" >&2; exit 1; }
fi
"$VENV/bin/python" -c "import optimum.exporters.onnx, onnxruntime, torch, transformers; print('optimum-onnx ready |', \
'torch', torch.__version__, '| transformers', transformers.__version__, '| onnxruntime', onnxruntime.__version__)"
