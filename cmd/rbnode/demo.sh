#!/usr/bin/env bash
# make demo: rbnode's main job, on this machine, with nothing beside it.
#  1. real guix.sigs data (Bitcoin Core) imported and judged;
#  2. a live network of three builder daemons on 127.0.0.1 that build the
#     stand-in Cuprate release (builder/testdata: the Guix pipeline's
#     contract, with a fake guix), sign, gossip, and agree; then one
#     builder's toolchain is not deterministic and the release diverges;
#  3. before any tag: a release manager's node signs a build request for a
#     commit, the builders' daemons build it by themselves, and
#     `status --quorum 3 --wait` returns consensus;
#  4. alice's status page: its URL is printed and, when stdin is a terminal,
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
# The release manager of section 3: the builders list its key for requests.
rmfp=$(RBNODE_HOME=$work/rm "$bin" key generate --name rm --email rm@example.org | grep -o '[0-9A-F]\{40\}')
# The project's upstream repository (no tag), which the builders fetch from.
builder/testdata/make-standin "$work/upstream" >/dev/null
git -C "$work/upstream" tag -d cuprated-0.0.9 cuprated-0.1.0 >/dev/null
for n in "${names[@]}"; do
	builder/testdata/make-standin "$work/$n-cuprate"
	git -C "$work/$n-cuprate" remote add upstream "$work/upstream"
	RBNODE_HOME=$work/$n "$bin" key generate --name "$n" --email "$n@example.org" >/dev/null
	RBNODE_HOME=$work/$n "$bin" key export > "$work/$n.asc"
	cat > "$work/$n/config.toml" <<EOF
[auto_build]
enabled = true
repo = "$work/$n-cuprate"
remote = "upstream"
tag_pattern = "no-tag-{version}"  # this demo builds its tags by hand, below
requests_from = ["$rmfp"]
EOF
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

say "3. Before the tag: the release manager asks the builders for a candidate"
# A commit that exists only upstream, with no tag anywhere.
sed -i 's/^version = "0.1.0"/version = "0.2.0"/' "$work/upstream/binaries/cuprated/Cargo.toml"
GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=/dev/null GIT_AUTHOR_NAME=Stand-in GIT_AUTHOR_EMAIL=standin@example.org \
	GIT_COMMITTER_NAME=Stand-in GIT_COMMITTER_EMAIL=standin@example.org \
	GIT_AUTHOR_DATE=2025-07-01T12:00:00Z GIT_COMMITTER_DATE=2025-07-01T12:00:00Z \
	git -C "$work/upstream" commit -q -a -m "cuprated 0.2.0 rc1"
commit=$(git -C "$work/upstream" rev-parse HEAD)
RBNODE_HOME=$work/rm "$bin" trust add "$work"/{alice,bob,carol}.asc >/dev/null
start "$work/rm" "$(addr "$work/alice")" "$(addr "$work/bob")" "$(addr "$work/carol")"
run "$work/rm" request 0.2.0 --commit "$commit" --note rc1
echo "(each builder's daemon fetches the commit from upstream, builds it, signs and publishes)"
code=0
run "$work/rm" status 0.2.0 --quorum 3 --wait --timeout 5m || code=$?
echo "(exit $code: consensus on a commit nobody has tagged yet; tag it now)"

say "4. The status page: alice's daemon serves it (--http)"
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
