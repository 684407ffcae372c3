package attest

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// MaxNameLen caps every name that may become a path component.
const MaxNameLen = 255

// ErrBadName is wrapped by every name that fails CheckName.
var ErrBadName = errors.New("unsafe name")

// CheckName reports whether s may be used as one path component: the seed's
// rule ^[A-Za-z0-9._+-]+$, never "." or "..", at most MaxNameLen bytes.
// what says what the name is ("version", "builder id", "artifact name") and
// appears in the error.
func CheckName(what, s string) error {
	switch {
	case s == "":
		return fmt.Errorf("%s is empty: %w", what, ErrBadName)
	case s == "." || s == "..":
		return fmt.Errorf("%s %q is a relative path: %w", what, s, ErrBadName)
	case len(s) > MaxNameLen:
		return fmt.Errorf("%s is %d bytes long, more than %d: %w", what, len(s), MaxNameLen, ErrBadName)
	}
	for i := 0; i < len(s); i++ {
		if !nameByte(s[i]) {
			// Name the character, not its first byte as a Latin-1 rune
			// ("ï" is not 'Ã'); an invalid byte shows as "\xff".
			bad := s[i : i+1]
			if _, n := utf8.DecodeRuneInString(s[i:]); n > 1 {
				bad = s[i : i+n]
			}
			return fmt.Errorf("%s %q has %q at byte %d; only A-Z a-z 0-9 . _ + - are allowed: %w", what, s, bad, i, ErrBadName)
		}
	}
	return nil
}

// MaxPathLen caps an artifact name with directories.
const MaxPathLen = 1024

// CheckPath reports whether s may name a file under a directory: one or
// more "/"-separated segments, each passing CheckName (so no empty
// segment, no "." or "..", no backslash), no leading or trailing "/", at
// most MaxPathLen bytes. Joined under a directory, such a name stays in
// it. Bitcoin Core's manifests name artifacts this way
// ("x86_64-apple-darwin/bitcoin-22.0-osx-unsigned.dmg").
func CheckPath(what, s string) error {
	if len(s) > MaxPathLen {
		return fmt.Errorf("%s is %d bytes long, more than %d: %w", what, len(s), MaxPathLen, ErrBadName)
	}
	if !strings.Contains(s, "/") {
		return CheckName(what, s)
	}
	for i, seg := range strings.Split(s, "/") {
		if seg == "" {
			return fmt.Errorf("%s %q has an empty path segment (a leading, trailing or doubled /): %w", what, s, ErrBadName)
		}
		if err := CheckName(fmt.Sprintf("%s %q segment %d", what, s, i+1), seg); err != nil {
			return err
		}
	}
	return nil
}

// BaseName is the last "/"-separated segment of an artifact name: the file
// name a download has.
func BaseName(name string) string {
	if i := strings.LastIndexByte(name, '/'); i >= 0 {
		return name[i+1:]
	}
	return name
}

func nameByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		c == '.' || c == '_' || c == '+' || c == '-'
}

// SanitizeBuilderID maps a free-text builder id to the directory name
// guix-attest uses: every byte outside [A-Za-z0-9_.+-] becomes '_'. The result
// still has to pass CheckName ("." and ".." are refused, not rewritten).
func SanitizeBuilderID(id string) (string, error) {
	var b strings.Builder
	// Per byte, as `tr -c` does: a character of n UTF-8 bytes becomes n
	// underscores.
	for i := 0; i < len(id); i++ {
		if nameByte(id[i]) {
			b.WriteByte(id[i])
		} else {
			b.WriteByte('_')
		}
	}
	s := b.String()
	if err := CheckName("builder id", s); err != nil {
		return "", err
	}
	return s, nil
}
