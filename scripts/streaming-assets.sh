#!/bin/sh
# An envtest assets directory whose etcd lets kube-apiserver serve streaming lists (WatchList).
#   KUBEBUILDER_ASSETS=DIR scripts/streaming-assets.sh DEST    then    KUBEBUILDER_ASSETS=DEST npm run bench
# kube-apiserver serves sendInitialEvents=true only over an etcd that has RequestWatchProgress (3.4.31+ or
# 3.5.13+); Debian bookworm's etcd-server (3.4.23) does not. This links DIR's kube-apiserver, kubectl,
# fwatchdog and faas-cli into DEST and puts beside them the etcd of Debian trixie's etcd-server package
# (3.5.16), fetched with apt from deb.debian.org into a private apt directory (the system's is not changed).
set -eu
src=${KUBEBUILDER_ASSETS:?set KUBEBUILDER_ASSETS to a directory with kube-apiserver and kubectl}
dest=${1:?usage: scripts/streaming-assets.sh DEST}
mkdir -p "$dest"
for b in kube-apiserver kubectl fwatchdog faas-cli; do
  [ -e "$src/$b" ] && ln -sf "$(cd "$src" && pwd)/$b" "$dest/$b"
done
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/lists/partial" "$work/cache/archives/partial" "$work/parts"
echo 'deb http://deb.debian.org/debian trixie main' > "$work/sources.list"
apt_opts="-o Dir::Etc::sourcelist=$work/sources.list -o Dir::Etc::sourceparts=$work/parts -o Dir::State::Lists=$work/lists -o Dir::Cache=$work/cache -o APT::Sandbox::User=root"
# shellcheck disable=SC2086
apt-get -qq $apt_opts update
# shellcheck disable=SC2086
(cd "$work" && apt-get -qq $apt_opts download etcd-server)
dpkg -x "$work"/etcd-server_*.deb "$work/x"
cp "$work/x/usr/bin/etcd" "$dest/etcd"
"$dest/etcd" --version | head -1
echo "$dest"
