#!/usr/bin/env bash
# make demo: rbnode's main job, on this machine, with nothing beside it.
#  1. real guix.sigs data (Bitcoin Core) imported and judged;
#  2. a live network of three builder daemons on 127.0.0.1 that build the
#     stand-in Cuprate release (builder/testdata: the Guix pipeline's
#     contract, with a fake guix), sign, gossip, and agree; then one
#     builder's toolchain is not deterministic and the release diverges;
#  3. alice's status page: its URL is printed and, when stdin is a terminal,
#     the network stays up until Enter or Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=$PWD/bin/rbnode
work=$(mktemp -d)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '$ rbnode %s\n' "${*:2}"; RBNODE_HOME=$1 "$bin" "${@:2}"; }

say "1. Real guix.sigs data: import it, trust its builders, judge every release"
h=$work/reader
run "$h" import testdata/guix.sigs
run "$h" trust add testdata/guix.sigs/builder-keys/*.gpg | tail -n 2
echo "   ..."
run "$h" status
run "$h" status 29.2 --quorum 5 | sed -n '1,8p'
echo "   ..."
say "26.0rc1: two macOS zips were not reproducible (exit 1)"
run "$h" status 26.0rc1 | sed -n '1p;/^artifact/,$p' | grep -E 'DIVERGENCE|artifact|apple-darwin.zip|divergent|^  [A-I] |rejected|svanstaa' | head -n 17 || true
code=0; RBNODE_HOME=$h "$bin" status 26.0rc1 >/dev/null || code=$?
echo "(exit $code)"
say "The JSON a release manager's script reads"
run "$h" status 24.0 --json | sed -n '1,5p'
echo "  ..."

say "2. A live network: three builders on 127.0.0.1"
export PATH=$PWD/builder/testdata/fakeguix:$PATH
names=(alice bob carol)
for n in "${names[@]}"; do
	builder/testdata/make-standin "$work/$n-cuprate"
	RBNODE_HOME=$work/$n "$bin" key generate --name "$n" --email "$n@example.org" >/dev/null
	RBNODE_HOME=$work/$n "$bin" key export > "$work/$n.asc"
done
for n in "${names[@]}"; do
	RBNODE_HOME=$work/$n "$bin" trust add "$work"/{alice,bob,carol}.asc >/dev/null
done
start() { # home, bootstrap addrs...
	local home=$1; shift
	local args=(daemon --listen /ip4/127.0.0.1/tcp/0 --no-mdns --no-dht)
	for b in "$@"; do args+=(--bootstrap "$b"); done
	RBNODE_HOME=$home "$bin" "${args[@]}" >"$home.log" 2>&1 &
	pids+=($!)
	for _ in $(seq 100); do
		RBNODE_HOME=$home "$bin" id --json 2>/dev/null | grep -q '"running": true' && return
		sleep 0.1
	done
	echo "daemon $home did not start" >&2; cat "$home.log" >&2; exit 1
}
addr() { RBNODE_HOME=$1 "$bin" id | grep '/127.0.0.1/'; }
RBNODE_HTTP=127.0.0.1:0 start "$work/alice"
start "$work/bob" "$(addr "$work/alice")"
start "$work/carol" "$(addr "$work/alice")" "$(addr "$work/bob")"
run "$work/alice" id
run "$work/carol" peers

say "Each builds cuprated 0.0.9 from its own clone (the Guix pipeline's scripts), signs and publishes"
for n in "${names[@]}"; do
	run "$work/$n" build 0.0.9 --repo "$work/$n-cuprate" 2>/dev/null | grep -E 'cuprated-0.0.9|published'
done
until RBNODE_HOME=$work/carol "$bin" status 0.0.9 >/dev/null 2>&1; do sleep 0.2; done
run "$work/carol" status 0.0.9

say "0.1.0: carol's toolchain is not deterministic"
for n in alice bob; do run "$work/$n" build 0.1.0 --repo "$work/$n-cuprate" 2>/dev/null | grep -E 'cuprated-0.1.0'; done
STANDIN_NONDETERMINISTIC=1 run "$work/carol" build 0.1.0 --repo "$work/carol-cuprate" 2>/dev/null | grep -E 'cuprated-0.1.0'
# Wait until alice holds all three attestations (3 builders, 3 in the hash groups).
until [ "$(RBNODE_HOME=$work/alice "$bin" status 0.1.0 --json 2>/dev/null | grep -c '"fingerprint"')" -ge 9 ]; do sleep 0.2; done
code=0; run "$work/alice" status 0.1.0 || code=$?
echo "(exit $code: a release manager's gate would stop here)"

say "A user checks a download against the consensus"
art=$(ls "$work"/alice/builds/0.0.9-*/out/cuprated-0.0.9-*.tar.gz | head -n 1)
cp "$art" "$work/cuprated-0.0.9-x86_64-unknown-linux-gnu.tar.gz"
run "$work/bob" verify "$work/cuprated-0.0.9-x86_64-unknown-linux-gnu.tar.gz"

say "3. The status page: alice's daemon serves it (--http)"
url=$(grep -o 'status page on http://[^ ]*' "$work/alice.log" | head -n 1 | sed 's/^status page on //')
url=${url%/}
echo "releases:          $url/"
echo "the divergence:    $url/release/cuprated/0.1.0"
echo "as JSON:           $url/release/cuprated/0.1.0?format=json"
echo "metrics, health:   $url/metrics  $url/healthz"
printf '$ curl -s %s/healthz\n' "$url"
command -v curl >/dev/null && curl -s "$url/healthz" || true
if [ -t 0 ]; then
	printf '\nThe three daemons keep running: open %s/release/cuprated/0.1.0 in a browser.\n' "$url"
	printf 'Press Enter or Ctrl-C to stop them.\n'
	read -r _ || true
fi
