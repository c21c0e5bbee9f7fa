#!/usr/bin/env bash
# A newcomer's first step, checked: `npm run package` makes a .vsix that
# installs into a real VS Code (code-server) and carries the extension, the
# dispatcher and the agent. Needs setup.sh to have run.
set -euo pipefail
cd "$(dirname "$0")/../.."

version=4.100.3
cache=${OCTASK_VSCODE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/octask/vscode-test}
code_server="$cache/code-server-$version/node_modules/.bin/code-server"
[ -x "$code_server" ] || { echo "checkVsix: no code-server; run bash test/vscode/setup.sh" >&2; exit 1; }

npm run package
vsix="dist/octask-$(node -p 'require("./package.json").version').vsix"
[ -f "$vsix" ] || { echo "checkVsix: $vsix was not made" >&2; exit 1; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export XDG_CONFIG_HOME="$tmp/config" XDG_DATA_HOME="$tmp/data"
"$code_server" --extensions-dir "$tmp/ext" --user-data-dir "$tmp/ud" --install-extension "$vsix" >/dev/null
listed=$("$code_server" --extensions-dir "$tmp/ext" --user-data-dir "$tmp/ud" --list-extensions --show-versions)
echo "$listed" | grep -qx "octask.octask@$(node -p 'require("./package.json").version')" ||
  { echo "checkVsix: not installed; code-server lists: $listed" >&2; exit 1; }
installed=$(ls -d "$tmp"/ext/octask.octask-*)
for f in dist/extension.js dist/octask.js dist/octask-dispatcher.js dist/octask-worker.js dist/octask-agent.js package.json media/octask.svg media/icon.png; do
  [ -s "$installed/$f" ] || { echo "checkVsix: the installed extension lacks $f" >&2; exit 1; }
done
# The details page shows the user's README, not the repository's developer one.
readme=$(ls "$installed" | grep -i '^readme.md$' | head -1)
grep -q 'Save the Agent to a Folder' "$installed/$readme" ||
  { echo "checkVsix: the packaged README is not media/vsix/README.md" >&2; exit 1; }
if grep -q 'npm run demo' "$installed/$readme"; then
  echo "checkVsix: the packaged README is the developer one" >&2
  exit 1
fi
# The bundles run with plain Node and no node_modules, as on a Pi.
node "$installed/dist/octask-agent.js" --version
node "$installed/dist/octask.js" --version
# The dispatcher the extension starts is a bundle of its own beside octask.js.
node "$installed/dist/octask.js" dispatcher --help | grep -q 'JSON-RPC server' ||
  { echo "checkVsix: octask.js dispatcher did not load its bundle" >&2; exit 1; }
echo "checkVsix: $vsix installs and carries the extension, dispatcher and agent"
