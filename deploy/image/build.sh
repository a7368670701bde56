#!/usr/bin/env bash
# Build localhost/falconet:TAG with podman from a Debian base made by mmdebstrap (no registry).
# Usage: deploy/image/build.sh [TAG]   (root; podman and mmdebstrap installed: `make image`)
# The base root filesystem is cached in $FALCONET_IMAGE_CACHE (default /var/tmp/falconet-image).
set -euo pipefail
cd "$(dirname "$0")/../.."
tag=${1:-dev}
cache=${FALCONET_IMAGE_CACHE:-/var/tmp/falconet-image}
python=${PYTHON:-.venv/bin/python}
base=localhost/falconet-base:bookworm
mkdir -p "$cache"
if ! podman image exists "$base"; then
  if [ ! -s "$cache/bookworm-minbase.tar" ]; then
    mmdebstrap --quiet --format=tar --variant=minbase bookworm "$cache/bookworm-minbase.tar.tmp"
    mv "$cache/bookworm-minbase.tar.tmp" "$cache/bookworm-minbase.tar"
  fi
  podman import --quiet --change 'CMD ["/bin/bash"]' "$cache/bookworm-minbase.tar" "$base" >/dev/null
fi
context=$(mktemp -d)
trap 'rm -rf "$context"' EXIT
# falconet's wheel and every dependency's, fetched here with the host's pip configuration (its
# index and CA): the image installs them with --no-index, so its build needs no PyPI access.
mkdir "$context/wheels"
"$python" -m pip wheel --quiet -w "$context/wheels" . 2> >(grep -v 'is ignored: it is neither' >&2) >/dev/null
cp deploy/image/Containerfile "$context/"
podman build --quiet --network=host --build-arg BASE="$base" -t "localhost/falconet:$tag" "$context"
# A rebuild leaves the previous image untagged: drop those (hundreds of MB each).
podman image prune -f >/dev/null
