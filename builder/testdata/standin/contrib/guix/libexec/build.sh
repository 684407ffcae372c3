#!/usr/bin/env bash
# Stand-in for Cuprate's contrib/guix/libexec/build.sh, run inside the (fake)
# container by guix-build. Builds the stand-in cuprated (C, gcc) from the
# distsrc with the pipeline's determinism settings and writes the artifact,
# metadata, toolchain versions and logs into GUIX_OUT_DIR.
set -euo pipefail
shopt -s inherit_errexit
repo_root="$(git rev-parse --show-toplevel)"
export LC_ALL=C
export TZ=UTC
# shellcheck source=standin.sh
source "$repo_root/contrib/guix/libexec/standin.sh"

dist_src="${GUIX_DIST_SRC:-}"
if [[ -z "$dist_src" || ! -f "$dist_src" ]]; then
  echo "GUIX_DIST_SRC must point to a source archive produced by contrib/guix/mk-distsrc" >&2
  exit 1
fi

build_root="$(mktemp -d "${TMPDIR:-/tmp}/guix-build-src.XXXXXX")"
src_dir="$build_root/src"
cleanup_build_root() {
  local code=$?
  if [[ $code -ne 0 ]]; then
    echo "build failed; preserving build root for inspection: $build_root" >&2
  else
    rm -rf "$build_root"
  fi
}
trap cleanup_build_root EXIT
mkdir -p "$src_dir"
tar -xf "$dist_src" --no-same-owner --no-same-permissions -C "$src_dir"

version="$(cargo_version "$src_dir")"
if [[ -z "$version" ]]; then
  echo "ERROR: unable to parse the cuprated version" >&2
  exit 1
fi
SOURCE_DATE_EPOCH="$(json_field "$src_dir/.cuprate-distsrc.json" source_date_epoch)"
git_commit="$(json_field "$src_dir/.cuprate-distsrc.json" git_commit)"
distsrc_sha256="$(sha256sum "$dist_src" | awk '{print $1}')"
outer_commit="$(git -C "$repo_root" rev-parse HEAD)"
if [[ "$outer_commit" != "$git_commit" && "${GUIX_ALLOW_COMMIT_MISMATCH:-0}" != "1" ]]; then
  echo "outer checkout $outer_commit differs from distsrc commit $git_commit" >&2
  exit 1
fi
export SOURCE_DATE_EPOCH

# Distsrc content equivalence: the archive, less what mk-distsrc adds, must
# be `git archive` of the commit it claims.
verify_dir="$build_root/git-baseline"
mkdir -p "$verify_dir"
git -C "$repo_root" archive --format=tar "$git_commit" |
  tar -xf - --no-same-owner --no-same-permissions -C "$verify_dir"
if ! diff -rq -x vendor -x .cargo -x .cuprate-distsrc.json "$verify_dir" "$src_dir" >"$build_root/distsrc-diff.log" 2>&1; then
  echo "ERROR: distsrc contents diverge from git commit $git_commit" >&2
  cat "$build_root/distsrc-diff.log" >&2
  exit 1
fi
rm -rf "$verify_dir"

standin_stage build

rust_target="${GUIX_RUST_TARGET:-x86_64-unknown-linux-gnu}"
out_dir="${GUIX_OUT_DIR:-$repo_root/contrib/guix/out}"
mkdir -p "$out_dir"

# The determinism settings of the real pipeline, applied to gcc: the build
# path is remapped, nothing depends on the clock or the host CPU.
cflags=(-O2 "-ffile-prefix-map=$src_dir=/cuprate" -frandom-seed=cuprated -Wl,--build-id=sha1)
nonce=""
if [[ "${STANDIN_NONDETERMINISTIC:-0}" == "1" ]]; then
  nonce=" nonce $(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
fi
if [[ "${STANDIN_MARCH_NATIVE:-0}" == "1" ]]; then
  cflags+=(-march=native)
fi
binary="$src_dir/target/$rust_target/release/cuprated"
mkdir -p "$(dirname "$binary")"
build_log="$out_dir/build-${rust_target}.log"
{
  echo "   Compiling cuprated v$version (/cuprate/binaries/cuprated)"
  compile=(gcc "${cflags[@]}" "-DCUPRATED_VERSION=\"$version\"" "-DCUPRATED_COMMIT=\"$git_commit\""
    "-DCUPRATED_NONCE=\"$nonce\"" -o "$binary" "$src_dir/binaries/cuprated/src/main.c")
  echo "     Running \`${compile[*]}\`"
  "${compile[@]}"
  echo "    Finished \`release\` profile [optimized] target(s)"
} 2>&1 | tee "$build_log"

bash "$repo_root/contrib/guix/libexec/package.sh" "$version" "$rust_target" "$SOURCE_DATE_EPOCH" "$out_dir" "$src_dir"

# Host-loader dependent: a diagnostic only, never hashed or attested.
if command -v ldd >/dev/null 2>&1; then
  ldd "$binary" >"$out_dir/ldd-${rust_target}.diag.txt" 2>&1 || true
fi

if [[ "${STANDIN_NONDETERMINISTIC:-0}" == "1" ]]; then
  rustc_line="rustc 1.89.0-nightly (0123456789 2025-07-01)"
else
  rustc_line="rustc 1.88.0 (6b00bc388 2025-06-23)"
fi
cat >"$out_dir/rustc-version.txt" <<TXT
$rustc_line
binary: rustc
host: x86_64-unknown-linux-gnu
release: ${rustc_line#rustc }
TXT
cat >"$out_dir/cargo-version.txt" <<TXT
cargo 1.88.0 (873a06493 2025-05-10)
release: 1.88.0
host: x86_64-unknown-linux-gnu
TXT

cat >"$out_dir/build-metadata.json" <<META
{
  "package": "cuprated",
  "version": "$version",
  "guix_system": "${GUIX_BUILD_SYSTEM:-x86_64-linux}",
  "rust_target": "$rust_target",
  "source_date_epoch": $SOURCE_DATE_EPOCH,
  "git_commit": "$git_commit",
  "randomx_arch": "default (CMake default; build is host-CPU-independent)",
  "distsrc": "$(basename "$dist_src")",
  "distsrc_sha256": "$distsrc_sha256"
}
META
