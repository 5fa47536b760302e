#!/usr/bin/env bash
# llama.cpp for Tunery's GGUF export, inside the main virtual environment (.venv):
# - llama-cpp-python: llama.cpp's quantizer and loader (export verification, GGUF serving). PyPI has no CPU wheel,
#   so pip compiles it once (several minutes); GGML_NATIVE=OFF keeps the build portable across x86-64 CPUs, and
#   pip's wheel cache makes every later install of the same version quick.
# - llama.cpp's converter (convert_hf_to_gguf.py, its conversion/ package, gguf-py and chat templates) from the
#   same source distribution, extracted into .venv/share/tunery/llama.cpp (the engine looks there, or at
#   $TUNERY_LLAMA_CPP_DIR), plus sentencepiece, which the converter imports.
# Idempotent: nothing is installed or extracted again when the pinned version is there; the checks always run.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
VENV="${GGUF_VENV:-$ROOT/.venv}"
VERSION="${LLAMA_CPP_PYTHON_VERSION:-0.3.36}"
SENTENCEPIECE_VERSION="0.2.3"
DEST="$VENV/share/tunery/llama.cpp"
PY="$VENV/bin/python"

test -x "$PY" || { echo "$VENV has no python: run \`make install\` first" >&2; exit 1; }
pip_install() {  # pip here also lists local wheel folders; drop that noise, keep pip's exit code
  "$VENV/bin/pip" install --quiet "$@" 2>&1 | { grep -v "WARNING: Location" || true; }
}
installed() {
  "$PY" -c "import importlib.metadata as m, sys; sys.exit(0 if m.version('$1') == '$2' else 1)" 2>/dev/null
}

if installed llama_cpp_python "$VERSION"; then
  echo "$VENV already has llama-cpp-python==$VERSION"
else
  echo "installing llama-cpp-python==$VERSION (compiled from source the first time: several minutes)"
  CMAKE_ARGS="${CMAKE_ARGS:--DGGML_NATIVE=OFF}" pip_install "llama-cpp-python==$VERSION"
  installed llama_cpp_python "$VERSION" || { echo "llama-cpp-python==$VERSION did not install" >&2; exit 1; }
fi
installed sentencepiece "$SENTENCEPIECE_VERSION" || pip_install "sentencepiece==$SENTENCEPIECE_VERSION"

if [ "$(cat "$DEST/VERSION" 2>/dev/null || true)" = "$VERSION" ]; then
  echo "$DEST already has llama.cpp's converter from llama-cpp-python $VERSION"
else
  WORK="$(mktemp -d)"
  trap 'rm -rf "$WORK"' EXIT
  SDIST="${LLAMA_CPP_SDIST:-}"  # a downloaded llama_cpp_python-$VERSION.tar.gz, else pip fetches it (cached)
  if [ -z "$SDIST" ]; then
    "$VENV/bin/pip" download --quiet --no-deps --no-binary :all: --dest "$WORK" "llama-cpp-python==$VERSION" \
      2>&1 | { grep -v "WARNING: Location" || true; }
    SDIST="$(ls "$WORK"/llama_cpp_python-"$VERSION".tar.gz)"
  fi
  TREE="llama_cpp_python-$VERSION/vendor/llama.cpp"
  tar -xzf "$SDIST" -C "$WORK" "$TREE/convert_hf_to_gguf.py" "$TREE/conversion" "$TREE/gguf-py/gguf" \
    "$TREE/gguf-py/LICENSE" "$TREE/models/templates" "$TREE/LICENSE"
  echo "$VERSION" >"$WORK/$TREE/VERSION"
  mkdir -p "$(dirname "$DEST")"
  rm -rf "$DEST.partial" "$DEST"
  mv "$WORK/$TREE" "$DEST.partial"
  mv "$DEST.partial" "$DEST"
  echo "extracted llama.cpp's converter into $DEST"
fi

"$PY" - "$DEST" <<'EOF'
import sys
from pathlib import Path

import llama_cpp

folder = Path(sys.argv[1])
for name in ("convert_hf_to_gguf.py", "conversion/base.py", "gguf-py/gguf/__init__.py"):
    if not (folder / name).is_file():
        sys.exit(f"{folder / name} is missing")
assert hasattr(llama_cpp, "llama_model_quantize"), "llama_cpp has no llama_model_quantize"
print(f"llama-cpp-python {llama_cpp.__version__} | llama.cpp converter in {folder}")
EOF
