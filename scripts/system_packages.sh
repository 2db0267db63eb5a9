#!/bin/sh
# Debian packages lamina uses on this machine, installed when missing:
#   bubblewrap             - the namespaces sandbox of execution environments (bwrap)
#   musl-tools             - musl-gcc, for the static musl binaries lamina inspect's tests build
#   gcc-aarch64-linux-gnu  - a cross compiler, for the aarch64 binaries of those tests
# Without root (or apt-get) nothing is installed: lamina then says in
# `lamina doctor` which backend it uses instead, and why.
set -u
missing=""
for pair in bwrap:bubblewrap musl-gcc:musl-tools aarch64-linux-gnu-gcc:gcc-aarch64-linux-gnu; do
    command -v "${pair%%:*}" >/dev/null 2>&1 || missing="$missing ${pair#*:}"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "note: not installing$missing (needs root and apt-get); lamina doctor shows what that leaves out" >&2
    exit 0
fi
echo "installing Debian packages:$missing" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -q --no-install-recommends $missing >/dev/null 2>&1 || {
    apt-get update -q >/dev/null 2>&1
    apt-get install -y -q --no-install-recommends $missing >/dev/null
}
