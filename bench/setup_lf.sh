#!/usr/bin/env bash
# Create bench/.venv-lf with LLaMA-Factory 0.9.5 on the CPU build of torch 2.13.0 (the baseline side of
# the benchmark). Idempotent: a venv that already imports llamafactory 0.9.5 is left as it is.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
VENV="$HERE/.venv-lf"
PY="${PY:-python3}"
TORCH_VERSION="2.13.0"
LF_VERSION="0.9.5"

if [[ -x "$VENV/bin/python" ]] && "$VENV/bin/python" - <<EOF 2>/dev/null; then
import importlib.metadata as m, sys
sys.exit(0 if m.version("llamafactory") == "$LF_VERSION" and m.version("torch").startswith("$TORCH_VERSION") else 1)
EOF
  echo "bench/.venv-lf already has llamafactory==$LF_VERSION on torch==$TORCH_VERSION"
  exit 0
fi

test -x "$VENV/bin/python" || "$PY" -m venv "$VENV"
PIP=("$VENV/bin/pip" install --quiet)
"${PIP[@]}" --upgrade pip
# torch first (the CPU build), then keep it pinned so no dependency can swap in a CUDA build.
"${PIP[@]}" "torch==$TORCH_VERSION"
CONSTRAINTS="$(mktemp)"
trap 'rm -f "$CONSTRAINTS"' EXIT
echo "torch==$TORCH_VERSION" >"$CONSTRAINTS"
"${PIP[@]}" -c "$CONSTRAINTS" "llamafactory==$LF_VERSION"

# llamafactory requires torchvision and torchaudio. A build made for another torch (or for CUDA) breaks
# imports on CPU; torchvision is optional for LF's text path (transformers checks it), so a broken one is
# removed. torchaudio is imported unconditionally by llamafactory.data.mm_plugin and must import.
if ! "$VENV/bin/python" -c "import torchvision" 2>/dev/null; then
  echo "torchvision does not import on this CPU torch: removing it"
  "$VENV/bin/pip" uninstall --quiet -y torchvision
fi
if ! "$VENV/bin/python" -c "import torchaudio" 2>/dev/null; then
  echo "WARNING: torchaudio does not import; llamafactory.data will fail to import" >&2
fi
if "$VENV/bin/pip" list 2>/dev/null | grep -qi '^nvidia-'; then
  echo "WARNING: CUDA wheels (nvidia-*) were installed into $VENV" >&2
fi

"$VENV/bin/llamafactory-cli" version
"$VENV/bin/python" -c "import torch, transformers, peft, trl, datasets; print('torch', torch.__version__, \
'| transformers', transformers.__version__, '| peft', peft.__version__, '| trl', trl.__version__, \
'| datasets', datasets.__version__, '| cuda', torch.cuda.is_available())"
