#!/usr/bin/env bash
# Installs the Debian packages the product (and, with --test, its browser tests) needs, if missing.
# WeasyPrint needs Pango; PDFs need a font with Traditional Chinese glyphs (Noto CJK).
set -euo pipefail
want=(libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz-subset0 fonts-noto-cjk fonts-dejavu-core)
if [ "${1:-}" = "--test" ]; then
  want+=(chromium poppler-utils libreoffice-calc-nogui firefox-esr)
fi
missing=()
for pkg in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "Installing system packages: ${missing[*]}"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
