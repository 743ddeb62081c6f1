# Sourced by the GPU session scripts (gpu_session.sh, gpu_moe_session.sh, gpu_serve_bench.sh,
# gpu_profile.sh), which run from the repository root on the device machine: strict mode, NCCL
# without NVLink multicast, the output folder ($OUT), the carried binaries (unpacked from
# bin.tar.gz) and libraries (bin, LD_LIBRARY_PATH), and `wants SECTION`, true when the script's
# $sections names it.
set -uo pipefail
export NCCL_NVLS_ENABLE=0 PYTHONUNBUFFERED=1
root=$(pwd)
out=${OUT:-/tmp/out}
mkdir -p "$out" /work
# The binaries were built in /work/main, and the tests find their fixtures through that path.
[ "$root" = /work/main ] || ln -sfn "$root" /work/main
export LD_LIBRARY_PATH=$root/.device-carry/lib:${LD_LIBRARY_PATH:-}
bin=$root/.device-carry/bin
# A warm machine keeps the last call's unpacked binaries: unpack again when the carried archive
# differs from the one they came from.
[ -f "$root/.device-carry/bin.tar.gz" ] ||
  { echo "no .device-carry/bin.tar.gz: run bench/prepare_device_carry.sh here and carry it" >&2; exit 1; }
stamp=$(md5sum <"$root/.device-carry/bin.tar.gz" | cut -d' ' -f1)
if [ "$(cat "$bin/.archive-md5" 2>/dev/null)" != "$stamp" ]; then
  rm -rf "$bin"
  tar -C "$root/.device-carry" -xzf "$root/.device-carry/bin.tar.gz" && echo "$stamp" >"$bin/.archive-md5"
fi
wants() { [[ " $sections " == *" $1 "* ]]; }
