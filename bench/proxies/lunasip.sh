#!/usr/bin/env bash
# Start lunasip in the foreground with one of the bench scripts
# (proxies/lunasip/<name>.lua). It listens on udp 127.0.0.1:5060 and relays
# to the UAS on 127.0.0.1:5080.
# Usage (from bench/):  proxies/lunasip.sh stateless   (or stateful.cfg)
# Env: LUNASIP (binary, default ../target/release/lunasip; e.g. a build in
#      another CARGO_TARGET_DIR: LUNASIP=/work/target-bench/release/lunasip)
set -euo pipefail
cfg="${1:?usage: $0 stateless|stateful|dispatcher|memory|dialog_acc}"
here="$(cd "$(dirname "$0")" && pwd)"
# A name with an extension (stateful.cfg: an opensips.cfg, translated on
# load) is taken as it is.
case "$cfg" in *.*) file="$here/lunasip/$cfg" ;; *) file="$here/lunasip/$cfg.lua" ;; esac
exec "${LUNASIP:-$here/../../target/release/lunasip}" run -c "$file"
