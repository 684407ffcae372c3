package store

import "strings"

// VersionLess orders release versions as people read them: the numeric
// core first, dot by dot (24.0 < 24.0.1 < 24.10), then a pre-release
// before its release (24.0rc1 < 24.0rc2 < 24.0 < 24.0.1). Within the
// parts, runs of digits compare as numbers (rc2 < rc10).
func VersionLess(a, b string) bool {
	ca, sa := splitVersion(a)
	cb, sb := splitVersion(b)
	if ca != cb {
		return naturalLess(ca, cb)
	}
	switch {
	case sa == sb:
		return false
	case sa == "":
		return false // a release comes after its pre-releases
	case sb == "":
		return true
	}
	return naturalLess(sa, sb)
}

// splitVersion cuts a version into its numeric core (digits and dots, no
// trailing dot, after an optional "v") and the rest.
func splitVersion(v string) (core, suffix string) {
	v = strings.TrimPrefix(v, "v")
	i := 0
	for i < len(v) && (v[i] == '.' || '0' <= v[i] && v[i] <= '9') {
		i++
	}
	core = strings.TrimRight(v[:i], ".")
	return core, v[len(core):]
}

// naturalLess compares strings with runs of digits as numbers.
func naturalLess(a, b string) bool {
	for a != "" && b != "" {
		da, db := digits(a), digits(b)
		if da > 0 && db > 0 {
			na, nb := trimZeros(a[:da]), trimZeros(b[:db])
			if len(na) != len(nb) {
				return len(na) < len(nb)
			}
			if na != nb {
				return na < nb
			}
			a, b = a[da:], b[db:]
			continue
		}
		if a[0] != b[0] {
			return a[0] < b[0]
		}
		a, b = a[1:], b[1:]
	}
	return len(a) < len(b)
}

func digits(s string) int {
	i := 0
	for i < len(s) && '0' <= s[i] && s[i] <= '9' {
		i++
	}
	return i
}

func trimZeros(s string) string {
	for len(s) > 1 && s[0] == '0' {
		s = s[1:]
	}
	return s
}
