# Sourced by the serve test scripts: what each does before its first request.

# require_node_package PACKAGE: the npm test packages are installed by `npm ci --prefix tests/serve`
# (scripts/setup.sh test); a missing one fails the test rather than skipping it.
require_node_package() {
  local directory
  directory="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/node_modules/$1"
  [ -d "$directory" ] || { echo "FAILED: tests/serve/node_modules is missing $1: run npm ci --prefix tests/serve" >&2; exit 1; }
}

# served_port LOG MODEL_NAME: waits up to 30 s for the server's ready line in LOG and prints the port
# it names, or nothing when the server never became ready.
served_port() {
  local log=$1 name=$2
  for _ in $(seq 300); do grep -q "serving $name at" "$log" && break; sleep 0.1; done
  sed -n "s/.*serving $name at http:\/\/127.0.0.1:\([0-9]*\).*/\1/p" "$log"
}
