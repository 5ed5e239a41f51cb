#!/bin/sh
# Refresh the vendored three.js of the level page: three (VERSION, default below) and its OrbitControls from the
# npm registry, bundled with esbuild into one classic script (global THREE) with three's licence:
#   airender/export/level/vendor/three.bundle.min.js, LICENSE, VERSION
# Run from the repository root: sh scripts/vendor_three.sh [VERSION]. Nothing downloads at run time.
set -eu
VERSION="${1:-0.187.0}"
ESBUILD_VERSION="0.28.2"
root="$(pwd)"
dest="$root/airender/export/level/vendor"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cp "$root/scripts/three_entry.js" "$work/entry.js"
cd "$work"
npm init -y >/dev/null
npm install --silent --no-audit --no-fund "three@$VERSION" "esbuild@$ESBUILD_VERSION"
npx esbuild entry.js --bundle --format=iife --global-name=THREE --minify --legal-comments=eof \
    --log-level=warning --outfile=three.bundle.min.js
mkdir -p "$dest"
cp three.bundle.min.js "$dest/three.bundle.min.js"
cp node_modules/three/LICENSE "$dest/LICENSE"
printf 'three.js %s (npm package "three"), with examples/jsm/controls/OrbitControls.js, bundled by esbuild %s\nfrom scripts/three_entry.js with scripts/vendor_three.sh\n' "$VERSION" "$ESBUILD_VERSION" > "$dest/VERSION"
echo "vendored three.js $VERSION into $dest"
