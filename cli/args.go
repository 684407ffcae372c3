package cli

import (
	"slices"
	"strings"

	ucli "github.com/urfave/cli/v2"
)

// interspersed moves a command's flags in front of its arguments, so that
// `rbnode status 0.0.9 --quorum 3` works as well as `rbnode status --quorum
// 3 0.0.9` (urfave/cli v2 stops reading flags at the first argument).
// Everything after "--" is left alone.
func interspersed(app *ucli.App, args []string) []string {
	if len(args) < 2 {
		return args
	}
	out := []string{args[0]}
	rest := args[1:]
	flags := app.Flags
	cmds := app.Commands
	// Walk global flags and the command path.
	for len(rest) > 0 {
		a := rest[0]
		if strings.HasPrefix(a, "-") && a != "-" && a != "--" {
			n := flagArity(flags, a)
			out = append(out, rest[:min(n, len(rest))]...)
			rest = rest[min(n, len(rest)):]
			continue
		}
		var next *ucli.Command
		for _, c := range cmds {
			if c.HasName(a) {
				next = c
			}
		}
		if next == nil {
			break
		}
		out = append(out, a)
		rest = rest[1:]
		flags, cmds = next.Flags, next.Subcommands
		if len(cmds) == 0 {
			break
		}
	}
	var global, fl, pos []string
	for i := 0; i < len(rest); i++ {
		a := rest[i]
		if a == "--" {
			pos = append(pos, rest[i:]...)
			break
		}
		if strings.HasPrefix(a, "-") && a != "-" {
			// A global flag given after the command (rbnode daemon
			// --log-level info) moves in front of the command.
			if !hasFlag(flags, a) && hasFlag(app.Flags, a) {
				n := flagArity(app.Flags, a)
				global = append(global, rest[i:min(i+n, len(rest))]...)
				i += n - 1
				continue
			}
			n := flagArity(flags, a)
			fl = append(fl, rest[i:min(i+n, len(rest))]...)
			i += n - 1
			continue
		}
		pos = append(pos, a)
	}
	out = append(out[:1:1], append(global, out[1:]...)...)
	out = append(out, fl...)
	if slices.ContainsFunc(fl, isHelpFlag) {
		// `rbnode import PATH --help` is help for import; urfave would
		// take PATH for a help topic.
		return out
	}
	return append(out, pos...)
}

func hasFlag(flags []ucli.Flag, arg string) bool {
	name, _, _ := strings.Cut(strings.TrimLeft(arg, "-"), "=")
	for _, f := range flags {
		for _, n := range f.Names() {
			if n == name {
				return true
			}
		}
	}
	return false
}

// flagArity is how many words a flag takes: 1 for booleans and --x=v, 2
// for a flag followed by its value.
func flagArity(flags []ucli.Flag, arg string) int {
	name := strings.TrimLeft(arg, "-")
	if strings.Contains(name, "=") {
		return 1
	}
	for _, f := range flags {
		for _, n := range f.Names() {
			if n != name {
				continue
			}
			if _, ok := f.(*ucli.BoolFlag); ok {
				return 1
			}
			return 2
		}
	}
	if name == "help" || name == "h" || name == "version" || name == "v" {
		return 1
	}
	return 1
}
