#!/bin/bash
# Builds a Debian bookworm image with Python 3.11 and pip, laid out like AWS's Lambda Python
# base image (/var/task, LAMBDA_TASK_ROOT), without any registry: debootstrap from the Debian
# mirror this machine uses, then `docker import`. Usage: build-local-base-image.sh IMAGE WORKDIR
# Needs root (debootstrap) and a running Docker engine ($DOCKER_HOST or the default socket).
set -euo pipefail
image=$1 workdir=$2
docker=${DOCKER:-docker}

if ! command -v debootstrap >/dev/null; then
    apt-get install -y -q debootstrap >/dev/null || { apt-get update -q >/dev/null && apt-get install -y -q debootstrap >/dev/null; }
fi

# The first bookworm mirror apt is configured with (deb822 files first, then sources.list).
mirror=$(awk '/^URIs:/ {uri=$2} /^Suites:/ && / bookworm( |$)/ {print uri; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
if [ -z "$mirror" ]; then
    mirror=$(awk '$1 == "deb" && $3 == "bookworm" {print $2; exit}' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null || true)
fi
mirror=${mirror:-http://deb.debian.org/debian}

rootfs="$workdir/rootfs"
rm -rf "$rootfs" && mkdir -p "$rootfs"
echo "debootstrap bookworm from $mirror into $rootfs"
debootstrap --variant=minbase --include=python3,python3-pip,ca-certificates bookworm "$rootfs" "$mirror" >"$workdir/debootstrap.log" 2>&1 \
    || { tail -20 "$workdir/debootstrap.log"; exit 1; }
ln -sf python3 "$rootfs/usr/bin/python"
mkdir -p "$rootfs/var/task"
rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*

tar -C "$rootfs" -c . | "$docker" import \
    --change 'ENV LAMBDA_TASK_ROOT=/var/task' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'WORKDIR /var/task' \
    --change 'CMD ["python3"]' \
    - "$image"
rm -rf "$rootfs"
"$docker" image inspect --format '{{.Id}} {{.Size}}' "$image"
