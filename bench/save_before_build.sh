#!/usr/bin/env bash
# Keeps the carried shardlm as the "before" build of bench/compare_builds.sh and compare_outputs.sh:
# run bench/prepare_device_carry.sh on the old commit, then this, then switch to the new commit and
# prepare the carry again. Carry .device-carry-before beside the usual three paths; the compare
# scripts unpack it on the device machine.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f .device-carry/bin.tar.gz ] || { echo "no .device-carry/bin.tar.gz: run bench/prepare_device_carry.sh first" >&2; exit 1; }
rm -rf .device-carry-before
mkdir -p .device-carry-before
tar -C .device-carry -xzf .device-carry/bin.tar.gz -O bin/shardlm | gzip >.device-carry-before/shardlm-before.gz
cp .device-carry/commit.txt .device-carry-before/commit.txt
echo "before: $(cat .device-carry-before/commit.txt), $(du -h .device-carry-before/shardlm-before.gz | cut -f1)"
