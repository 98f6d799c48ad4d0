#!/usr/bin/env bash
# Four synod peers on this machine, over loopback TCP: each with its own key and its own
# (recorded) agent, none trusting another's tally. They agree on a reading and on the
# component with the BFT protocol (n = 4, f = 1, quorums of 3), each writes a certificate
# with the quorum certificates, and each directory is verified with the peers' public keys.
#
#   examples/peers/run.sh [OUT]      (default OUT: out/peers)
#
# Uses an existing target/release/synod (set SYNOD to use another); builds nothing. Exits 0
# only when every peer built, all decided the same digests, and every directory verifies.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="${1:-out/peers}"
synod="${SYNOD:-target/release/synod}"
limit="${PEERS_TIMEOUT:-120}"
if [ ! -x "$synod" ]; then
    echo "no $synod: build it first with cargo build --release (or set SYNOD)" >&2
    exit 2
fi
rm -rf "$out"
mkdir -p "$out"
out="$(cd "$out" && pwd)"
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
}
trap cleanup EXIT

# Four free loopback ports (bound and released by the kernel's choice).
read -r -a ports < <(python3 -c '
import socket
socks = [socket.socket() for _ in range(4)]
for s in socks: s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))')
python="$(python3 -c 'import platform; print(platform.python_version())')"

{
    echo "# n = 4 peers, f = 1 Byzantine tolerated (n >= 3f + 1)."
    echo "f = 1"
    echo "python = \"$python\""
} > "$out/peers.toml"
for i in 0 1 2 3; do
    key_line="$("$synod" node keygen --out "$out/peer$i.key")"
    {
        echo
        echo "[[peer]]"
        echo "id = $i"
        echo "addr = \"127.0.0.1:${ports[$i]}\""
        echo "$key_line"
    } >> "$out/peers.toml"
    cat > "$out/peer$i.toml" <<TOML
id = $i
key = "peer$i.key"
peers = "peers.toml"
agents = "$here/agents-$i.toml"
TOML
done

echo "starting 4 peers on ports ${ports[*]} (log: $out/peerN.log)"
for i in 0 1 2 3; do
    timeout "$limit" "$synod" node --config "$out/peer$i.toml" --prompt "$here/prompt.md" \
        --out "$out/peer$i" --json > "$out/peer$i.json" 2> "$out/peer$i.log" &
    pids+=("$!")
done
status=0
for i in 0 1 2 3; do
    if ! wait "${pids[$i]}"; then
        echo "peer $i did not build (see $out/peer$i.log)" >&2
        status=1
    fi
done
pids=()
[ "$status" = 0 ] || exit 1

digests=""
for i in 0 1 2 3; do
    if ! "$synod" verify "$out/peer$i" --peers "$out/peers.toml" --json > "$out/verify$i.json"; then
        echo "peer $i's directory does not verify: $(cat "$out/verify$i.json")" >&2
        exit 1
    fi
    d="$(python3 -c 'import json,sys; print(" ".join(json.load(open(sys.argv[1]))["digests"]))' "$out/verify$i.json")"
    echo "peer $i verified: $d"
    if [ -n "$digests" ] && [ "$d" != "$digests" ]; then
        echo "peers decided different digests" >&2
        exit 1
    fi
    digests="$d"
done
echo "all 4 peers decided the same digests, and every directory verifies"
echo "program: $out/peer0/program/"
