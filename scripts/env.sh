# Sourced by the scripts: where the project's pinned tools live.
root=${root:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
export GLYCO_ANVIL="$root/tools/node_modules/.bin/anvil"
export GLYCO_PYTHON="$root/ml/.venv/bin/python"
export GLYCO_CAST="$root/tools/node_modules/.bin/cast"
