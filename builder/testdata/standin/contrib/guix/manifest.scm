;; Stand-in for Cuprate's build profile. The fake guix ignores it; the stand-in
;; build uses the host's bash, coreutils, git, gcc, tar and gzip.
(specifications->manifest
  (list "bash" "coreutils" "git" "gcc-toolchain" "tar" "gzip" "findutils"
        "diffutils" "gawk" "sed" "grep"))
