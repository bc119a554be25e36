#!/usr/bin/env bash
# Makes (once) a virtual environment for the contract tests of the RL shims, pinned by
# python/thinkfl_rl/requirements.txt, and beside it the engines' wheels at the versions of
# python/thinkfl_rl/engines.txt, downloaded with `pip download --no-deps` and unpacked (not
# installed: the tests load the engines' modules that need no GPU by path). Cached by the hash of
# both files; prints the path of the venv's python. The unpacked engines are in its `engines/`.
set -euo pipefail
cd "$(dirname "$0")/.."
req=python/thinkfl_rl/requirements.txt
eng=python/thinkfl_rl/engines.txt
key=$(cat "$req" "$eng" | sha256sum | cut -c1-16)
cache=${THINKFL_PEERS:-${HOME}/.cache/thinkfl/peers}
venv="$cache/rl-python-$key"
if [ ! -x "$venv/bin/python" ] || [ ! -f "$venv/.complete" ]; then
  rm -rf "$venv"
  mkdir -p "$cache"
  {
    python3 -m venv "$venv"
    "$venv/bin/python" -m pip install -q --disable-pip-version-check -r "$req"
    mkdir -p "$venv/wheels" "$venv/engines"
    grep -v '^#' "$eng" | grep -v '^$' | while read -r pin; do
      # OpenRLHF ships CPython-specific wheels only; we unpack them, so any interpreter's will do.
      "$venv/bin/python" -m pip download -q --disable-pip-version-check --no-deps \
        --only-binary=:all: --python-version 3.11 --platform manylinux1_x86_64 \
        --platform manylinux_2_17_x86_64 --platform any -d "$venv/wheels" "$pin"
    done
    "$venv/bin/python" - "$venv" <<'PY'
import pathlib, sys, zipfile
venv = pathlib.Path(sys.argv[1])
for whl in sorted((venv / "wheels").glob("*.whl")):
    name = whl.name.split("-")[0].lower()
    dest = venv / "engines" / name
    with zipfile.ZipFile(whl) as z:
        z.extractall(dest)
    # Wheels may keep the package under NAME-VER.data/purelib: flatten it to DEST/NAME.
    for purelib in dest.glob("*.data/purelib"):
        for child in purelib.iterdir():
            child.rename(dest / child.name)
PY
  } >&2
  touch "$venv/.complete"
fi
echo "$venv/bin/python"
