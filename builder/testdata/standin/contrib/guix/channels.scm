;; Stand-in for Cuprate's pinned Guix instance. The fake guix reports the
;; commit below as the "guix" channel in `guix describe --format=json`.
(list (channel
        (name 'guix)
        (url "https://git.guix.gnu.org/guix.git")
        (branch "master")
        (commit "4c2a0e5b0dd45a6bd62bb9fd8a88f40a8a4db2f6")
        (introduction
          (make-channel-introduction
            "9edb3f66fd807b096b48283debdcddccfea34bad"
            (openpgp-fingerprint
              "BBB0 2DDF 2CEA F6A8 0D1D  E643 A2A0 6DF2 A33A 54FA")))))
