#!/bin/sh
# The base image every image here is built FROM: Debian bookworm (Python 3.11) with python3,
# python3-venv and ca-certificates, nothing else. `make base-image` runs this.
#   docker/base-image.sh [IMAGE]      (default gore-censor-base:bookworm)
# Present already: nothing to do. Else pulled, where a registry has it (BASE_IMAGE=registry/...);
# else built here from Debian's packages (mmdebstrap, root) and `docker import`ed: no registry
# needed, only a Debian mirror (DEBIAN_MIRROR, default deb.debian.org), about 20 s.
set -eu
image=${1:-gore-censor-base:bookworm}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
security=${DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}

if docker image inspect "$image" >/dev/null 2>&1; then
    echo "base image $image: present"
    exit 0
fi
if timeout 120 docker pull --quiet "$image" >/dev/null 2>&1; then
    echo "base image $image: pulled"
    exit 0
fi
if ! command -v mmdebstrap >/dev/null 2>&1; then
    echo "base image $image: not present, cannot be pulled, and mmdebstrap is missing (apt-get install mmdebstrap)" >&2
    exit 1
fi
echo "base image $image: building it from Debian bookworm's packages (mmdebstrap)"
# minbase: Essential packages and apt only. The sources list keeps the security suite, so images
# built FROM it get security updates from apt-get. Into a file first: a failed bootstrap must not
# be imported half-written.
tarball=$(mktemp --suffix=.tar)
trap 'rm -f "$tarball"' EXIT
mmdebstrap --quiet --variant=minbase --include=python3,python3-venv,ca-certificates \
    bookworm "$tarball" \
    "deb $mirror bookworm main" \
    "deb $mirror bookworm-updates main" \
    "deb $security bookworm-security main"
docker import \
    --change 'ENV LANG=C.UTF-8' \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["/bin/bash"]' \
    --message "Debian bookworm minbase + python3, python3-venv, ca-certificates (mmdebstrap)" \
    "$tarball" "$image" >/dev/null
docker run --rm "$image" python3 -c 'import sys; assert sys.version_info[:2] == (3, 11), sys.version'
echo "base image $image: built"
