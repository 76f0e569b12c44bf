#!/usr/bin/env bash
# Create .venv and install vlmrec with the demo extras, offline-safe:
# torch first (the CPU wheel on disk), so no requirement can pull a multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
. .venv/bin/activate
pip install -q --upgrade pip
pip install -q torch==2.13.0
pip install -q -e ".[demo,dev,ray]"
# rapidocr pins the GUI opencv build; it runs on the headless one installed by the [ocr] extra.
pip install -q --no-deps rapidocr-onnxruntime==1.4.4
python -c "import torch; assert '+cpu' in torch.__version__ or not torch.version.cuda, torch.__version__"
echo "vlmrec installed in .venv ($(python -c 'import vlmrec; print(vlmrec.__version__)'))"
