#!/usr/bin/env bash
# Installs what `npm run test:vscode` needs: Chromium and friends from Debian,
# and code-server (VS Code 1.100.3 as a web server) from the npm registry, into
# a cache folder outside the repo so later runs reuse it. Idempotent; run as
# root on Debian. The steps follow code-server's own postinstall, minus the
# downloads from GitHub that cannot work here (see ../shared/notes).
set -euo pipefail

version=4.100.3
cache=${OCTASK_VSCODE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/octask/vscode-test}
dir="$cache/code-server-$version"
marker="$dir/.installed"

need=()
for p in chromium rg; do command -v "$p" >/dev/null || need+=("$p"); done
if [ ${#need[@]} -gt 0 ] || ! dpkg -s libsecret-1-dev libkrb5-dev >/dev/null 2>&1; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup: need root to apt-get install chromium ripgrep libsecret-1-dev libkrb5-dev" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends \
    chromium ripgrep libsecret-1-dev libkrb5-dev build-essential python3 >/dev/null
fi

if [ -f "$marker" ]; then
  echo "setup: code-server $version ready in $dir"
  exit 0
fi

echo "setup: installing code-server $version into $dir (about 3 minutes, once)"
rm -rf "$dir"
mkdir -p "$dir"
cd "$dir"
export npm_config_yes=true npm_config_fund=false npm_config_audit=false npm_config_update_notifier=false
npm init -y >/dev/null
npm install --unsafe-perm --ignore-scripts "code-server@$version" >/dev/null
npm rebuild --unsafe-perm argon2 >/dev/null

vs="$dir/node_modules/code-server/lib/vscode"
cd "$vs"
npm install --omit=dev --ignore-scripts >/dev/null
# @vscode/ripgrep's install script downloads from GitHub; it skips that when bin/ exists.
mkdir -p node_modules/@vscode/ripgrep/bin
ln -sf "$(command -v rg)" node_modules/@vscode/ripgrep/bin/rg
npm rebuild >/dev/null
ln -sfn node_modules node_modules.asar
ln -sf code-linux.sh bin/remote-cli/code-server
ln -sf browser-linux.sh bin/helpers/browser.sh
(cd extensions && npm install --omit=dev >/dev/null)

touch "$marker"
echo "setup: code-server $version installed"
