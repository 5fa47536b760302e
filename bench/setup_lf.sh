#!/usr/bin/env bash
# Create bench/.venv-lf with LLaMA-Factory 0.9.5 on the CPU build of torch 2.13.0 (the baseline side of
# the benchmark). Idempotent: the install is skipped when the venv already has both pinned versions; the
# CPU fix-ups and the import checks always run.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
VENV="$HERE/.venv-lf"
PY="${PY:-python3}"
TORCH_VERSION="2.13.0"
LF_VERSION="0.9.5"

installed() {
  "$VENV/bin/python" -c "import importlib.metadata as m, sys; \
sys.exit(0 if m.version('llamafactory') == '$LF_VERSION' \
and m.version('torch').startswith('$TORCH_VERSION') else 1)" 2>/dev/null
}
# pip here also lists local wheel folders; drop its "Location ... is ignored" noise, keep its exit code.
pip_install() {  # with pipefail, the pipeline fails when pip does
  "$VENV/bin/pip" install --quiet "$@" 2>&1 | { grep -v "WARNING: Location" || true; }
}

test -x "$VENV/bin/python" || "$PY" -m venv "$VENV"
if installed; then
  echo "bench/.venv-lf already has llamafactory==$LF_VERSION on torch==$TORCH_VERSION"
else
  pip_install --upgrade pip
  # torch first (the CPU build), then keep it pinned so no dependency can swap in a CUDA build.
  pip_install "torch==$TORCH_VERSION"
  CONSTRAINTS="$(mktemp)"
  trap 'rm -f "$CONSTRAINTS"' EXIT
  echo "torch==$TORCH_VERSION" >"$CONSTRAINTS"
  pip_install -c "$CONSTRAINTS" "llamafactory==$LF_VERSION"
  installed || { echo "llamafactory==$LF_VERSION on torch==$TORCH_VERSION did not install" >&2; exit 1; }
fi
# LF's predict_with_generate refuses to start without its metric packages (not llamafactory's requirements).
"$VENV/bin/python" -c "import jieba, nltk, rouge_chinese" 2>/dev/null \
  || pip_install -c <(echo "torch==$TORCH_VERSION") nltk==3.10.4 jieba==0.42.1 rouge-chinese==1.0.3

# llamafactory requires torchvision and torchaudio, but PyPI's builds of them are made for the CUDA torch
# (torchaudio 2.11.1's libraries link libc10_cuda.so) and fail to import on the CPU build of torch 2.13.
# torchvision is optional for LF's text path (transformers checks for it), so a broken one is removed.
# torchaudio is imported unconditionally by llamafactory.data.mm_plugin (used only for audio inputs), so
# its native libraries are removed instead: torchaudio then imports as a pure-Python package (its
# documented "library not found" path).
if "$VENV/bin/pip" show torchvision &>/dev/null && ! "$VENV/bin/python" -c "import torchvision" 2>/dev/null; then
  echo "torchvision does not import on this CPU torch: removing it"
  "$VENV/bin/pip" uninstall --quiet -y torchvision
fi
if ! "$VENV/bin/python" -c "import torchaudio" 2>/dev/null; then
  echo "torchaudio's native libraries do not load on this CPU torch: removing them (audio is unused here)"
  TA_LIB="$("$VENV/bin/python" -c "import importlib.util as u, pathlib; \
print(pathlib.Path(u.find_spec('torchaudio').origin).parent / 'lib')")"
  rm -f "$TA_LIB"/_torchaudio*.so "$TA_LIB"/libtorchaudio*.so
  "$VENV/bin/python" -c "import torchaudio"
fi
"$VENV/bin/python" -c "import llamafactory.data, llamafactory.train.tuner"
if "$VENV/bin/pip" list 2>/dev/null | grep -qi '^nvidia-'; then
  echo "WARNING: CUDA wheels (nvidia-*) were installed into $VENV" >&2
fi

"$VENV/bin/llamafactory-cli" version
"$VENV/bin/python" -c "import torch, transformers, peft, trl, datasets; print('torch', torch.__version__, \
'| transformers', transformers.__version__, '| peft', peft.__version__, '| trl', trl.__version__, \
'| datasets', datasets.__version__, '| cuda', torch.cuda.is_available())"
