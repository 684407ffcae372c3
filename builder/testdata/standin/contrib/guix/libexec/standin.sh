# Sourced by the stand-in scripts: test knobs and the small helpers the real
# pipeline gets from python3. Not part of the pipeline's contract.

# standin_stage NAME: honour STANDIN_FAIL and STANDIN_HANG for stage NAME.
standin_stage() {
  local stage="$1"
  if [[ "${STANDIN_FAIL:-}" == "$stage" ]]; then
    echo "ERROR: stand-in $stage failed on purpose (STANDIN_FAIL=$stage)" >&2
    exit 1
  fi
  if [[ "${STANDIN_HANG:-}" == "$stage" ]]; then
    # One child that dies on SIGTERM and one that ignores it: only SIGKILL
    # to the whole process group stops both.
    sleep 3600 &
    local soft=$!
    (trap '' TERM; exec sleep 3600) &
    local hard=$!
    if [[ -n "${STANDIN_HANG_PIDS:-}" ]]; then
      printf '%s\n' "$$" "$soft" "$hard" >"$STANDIN_HANG_PIDS.tmp"
      mv "$STANDIN_HANG_PIDS.tmp" "$STANDIN_HANG_PIDS"
    fi
    echo "stand-in: $stage is hanging (pids $$ $soft $hard)"
    wait
    exit 1
  fi
}

# cargo_version DIR: the cuprated version, as `cargo metadata` would report it.
cargo_version() {
  awk -F'"' '/^\[/ { section = $0 }
    section == "[package]" && /^version[[:space:]]*=/ { print $2; exit }' \
    "$1/binaries/cuprated/Cargo.toml"
}

# json_field FILE KEY: the value of KEY in a JSON file written one field a
# line (build-metadata.json) or on one line (.cuprate-distsrc.json).
json_field() {
  local text
  text="$(<"$1")"
  if [[ "$text" =~ \"$2\"[[:space:]]*:[[:space:]]*(\"([^\"]*)\"|([0-9]+)) ]]; then
    printf '%s\n' "${BASH_REMATCH[2]}${BASH_REMATCH[3]}"
  else
    echo "ERROR: $1 has no field $2" >&2
    return 1
  fi
}

# safe_path_component S: the pipeline's rule for names used in paths.
safe_path_component() {
  local s="$1"
  [[ -n "$s" && "$s" != "." && "$s" != ".." && "$s" =~ ^[A-Za-z0-9._+-]+$ ]]
}
