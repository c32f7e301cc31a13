#!/bin/sh
# The base image of every Shinsei image, made from Debian packages only: no image registry is used
# (none is reachable from many wards' My Number zone). mmdebstrap writes a minimal bookworm root
# file system as a tar stream and `docker import` turns it into an image.
#
#   docker/build-base.sh [TAG]            (default shinsei-base:bookworm)
#
# DEBIAN_MIRROR / DEBIAN_SECURITY_MIRROR point at the ward's own mirror. A ward that keeps its own
# base image passes it to every build as --build-arg BASE_IMAGE=... instead.
set -eu
TAG=${1:-shinsei-base:bookworm}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
SECURITY=${DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
DOCKER=${DOCKER:-docker}
# python3-venv: the services' virtual environment; tzdata: Asia/Tokyo for the daily mail.
mmdebstrap --quiet --variant=minbase --include=python3,python3-venv,tzdata \
  --aptopt='APT::Install-Recommends "false"' \
  --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
  --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-include=/usr/share/locale/locale.alias' \
  bookworm - \
  "deb $MIRROR bookworm main" "deb $MIRROR bookworm-updates main" "deb $SECURITY bookworm-security main" \
  | $DOCKER import --change 'CMD ["/bin/sh"]' --change 'ENV LANG=C.UTF-8' - "$TAG" >/dev/null
echo "$TAG"
