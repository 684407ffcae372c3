package cli

import (
	"fmt"
	"io"
	"sort"
	"strings"

	ucli "github.com/urfave/cli/v2"
)

// helpWidth is the column at which help text wraps.
const helpWidth = 80

// examples are shown under every command's --help, by command path. A
// test checks that every command has some and that each one parses.
var examples = map[string][]string{
	"init":             {"rbnode init", "RBNODE_HOME=/srv/rbnode rbnode init"},
	"key":              {"rbnode key generate --name alice --email alice@example.org", "rbnode key list"},
	"key generate":     {"rbnode key generate --name alice --email alice@example.org"},
	"key import":       {"rbnode key import alice.sec  # from gpg --export-secret-keys --armor", "rbnode key import --passphrase-file pass.txt alice.sec"},
	"key export":       {"rbnode key export > alice.asc", "rbnode key export --secret > backup.asc"},
	"key list":         {"rbnode key list", "rbnode key list --json"},
	"trust":            {"rbnode trust add builder-keys/*.gpg", "rbnode trust list"},
	"trust add":        {"rbnode trust add bob.asc carol.asc", "rbnode trust add --name dave 0123456789ABCDEF0123456789ABCDEF01234567"},
	"trust remove":     {"rbnode trust remove 0123456789ABCDEF0123456789ABCDEF01234567"},
	"trust list":       {"rbnode trust list", "rbnode trust list --json"},
	"import":           {"rbnode import path/to/guix.sigs", "rbnode import --version 0.0.9 --signer alice SHA256SUMS"},
	"sign":             {"rbnode sign attestation.json"},
	"status":           {"rbnode status", "rbnode status 0.0.9 --quorum 3", "rbnode status 0.0.9 --quorum 3 --json > verdict.json"},
	"request":          {"rbnode request 0.2.0 --commit \"$(git rev-parse HEAD)\"", "rbnode request 0.2.0 --commit \"$(git rev-parse rc2)\" --note rc2"},
	"verify":           {"rbnode verify cuprated-0.0.9-x86_64-linux-gnu.tar.gz", "rbnode verify --version 0.0.9 downloads/*"},
	"daemon":           {"rbnode daemon", "rbnode daemon --bootstrap /ip4/192.0.2.7/tcp/4731/p2p/12D3KooW..."},
	"sync":             {"rbnode sync --peer /ip4/192.0.2.7/tcp/4731/p2p/12D3KooW...", "rbnode sync --json"},
	"publish":          {"rbnode publish sigs/0.0.9/alice/attestation.json"},
	"id":               {"rbnode id", "rbnode id --json"},
	"peers":            {"rbnode peers", "rbnode peers --json"},
	"build":            {"rbnode build 0.0.9 --repo ~/src/cuprate", "rbnode build 0.0.9 --repo . --commit 1a2b3c4"},
	"attest":           {"rbnode attest contrib/guix/out --version 0.0.9"},
	"builds":           {"rbnode builds", "rbnode builds --json"},
	"export":           {"rbnode export guix-sigs 0.0.9 --out guix.sigs", "rbnode export intoto 0.0.9 --sign > cuprated-0.0.9.intoto.json"},
	"export guix-sigs": {"rbnode export guix-sigs 0.0.9 --out ~/src/guix.sigs"},
	"export intoto":    {"rbnode export intoto 0.0.9 --quorum 3", "rbnode export intoto 0.0.9 --sign --out cuprated-0.0.9.intoto.json"},
	"completion":       {"rbnode completion bash > /etc/bash_completion.d/rbnode", "rbnode completion zsh > \"${fpath[1]}/_rbnode\"", "rbnode completion fish > ~/.config/fish/completions/rbnode.fish"},
	"completion bash":  {"source <(rbnode completion bash)"},
	"completion zsh":   {"rbnode completion zsh > \"${fpath[1]}/_rbnode\""},
	"completion fish":  {"rbnode completion fish | source"},
}

// decorate prepares every command of the app: flag errors become usage
// errors printed once (exit 2), required flags are checked by rbnode
// (one line and a hint, not urfave's help dump), and the examples go into
// the help text.
func decorate(cmds []*ucli.Command, parent string) {
	for _, c := range cmds {
		path := strings.TrimSpace(parent + " " + c.Name)
		c.OnUsageError = func(_ *ucli.Context, err error, _ bool) error { return &usageError{err: err} }
		if ex := examples[path]; len(ex) > 0 {
			c.Description = strings.TrimSpace(c.Description + "\n\nExamples:\n  " + strings.Join(ex, "\n  "))
		}
		var required []string
		for _, f := range c.Flags {
			if sf, ok := f.(*ucli.StringFlag); ok && sf.Required {
				sf.Required = false
				sf.Usage += " (required)"
				required = append(required, sf.Name)
			}
		}
		if len(required) > 0 {
			before := c.Before
			c.Before = func(cc *ucli.Context) error {
				for _, name := range required {
					if !cc.IsSet(name) {
						return &usageError{err: fmt.Errorf("rbnode %s needs --%s", path, name), hint: fmt.Sprintf("see `rbnode %s --help`", path)}
					}
				}
				if before != nil {
					return before(cc)
				}
				return nil
			}
		}
		decorate(c.Subcommands, path)
	}
}

// wrapHelp makes urfave's help fit helpWidth columns.
func wrapHelp(w io.Writer, templ string, data any) {
	// Flags' usage texts stand in a column after the longest flag name
	// (3 spaces of indent, 2 of padding).
	usageWidth := helpWidth - 5
	if f, ok := data.(interface{ VisibleFlags() []ucli.Flag }); ok {
		longest := 0
		for _, fl := range f.VisibleFlags() {
			name, _, _ := strings.Cut(fl.String(), "\t")
			longest = max(longest, len(name))
		}
		usageWidth = max(helpWidth-5-longest, 24)
	}
	wrap := func(s string, offset int) string { return wrapText(s, offset, usageWidth) }
	ucli.HelpPrinterCustom(w, templ, data, map[string]any{"wrap": wrap})
}

// wrapText wraps s for urfave's templates, continuation lines indented by
// offset. A flag's line ("--name value\tusage") keeps its usage in the
// second column, usageWidth wide, which urfave aligns with a tabwriter.
func wrapText(s string, offset, usageWidth int) string {
	if name, usage, ok := strings.Cut(s, "\t"); ok {
		return name + "\t" + strings.Join(wrapWords(usage, usageWidth), "\n\t")
	}
	var out []string
	for _, line := range strings.Split(s, "\n") {
		out = append(out, wrapWords(line, helpWidth-offset)...)
	}
	return strings.Join(out, "\n"+strings.Repeat(" ", offset))
}

// wrapWords breaks s into lines of at most width bytes at spaces (a
// longer word stands alone). Leading spaces of s are kept.
func wrapWords(s string, width int) []string {
	indent := s[:len(s)-len(strings.TrimLeft(s, " "))]
	var lines []string
	line := indent
	for _, w := range strings.Fields(s) {
		if len(line) > len(indent) && len(line)+1+len(w) > width {
			lines = append(lines, line)
			line = indent
		}
		if len(line) > len(indent) {
			line += " "
		}
		line += w
	}
	return append(lines, line)
}

// checkCommandPath refuses, before urfave sees them, a command line whose
// command is unknown or that names a command group without one of its
// commands: urfave would print "No help topic" or the group's help with
// exit 0.
func checkCommandPath(app *ucli.App, args []string) error {
	flags, cmds, path := app.Flags, app.Commands, ""
	rest := args[1:]
	for {
		for len(rest) > 0 && strings.HasPrefix(rest[0], "-") && rest[0] != "-" {
			if isHelpFlag(rest[0]) || rest[0] == "--version" || rest[0] == "-v" || rest[0] == "--generate-bash-completion" {
				return nil
			}
			n := flagArity(flags, rest[0])
			rest = rest[min(n, len(rest)):]
		}
		if len(rest) == 0 {
			if path != "" && len(cmds) > 0 {
				return &usageError{
					err:  fmt.Errorf("rbnode %s needs a command: %s", path, strings.Join(commandNames(cmds), ", ")),
					hint: fmt.Sprintf("see `rbnode %s --help`", path),
				}
			}
			return nil
		}
		name := rest[0]
		if name == "help" || name == "h" {
			return nil
		}
		var next *ucli.Command
		for _, c := range cmds {
			if c.HasName(name) {
				next = c
			}
		}
		if next == nil {
			full := strings.TrimSpace(path + " " + name)
			hint := fmt.Sprintf("`rbnode %s--help` lists the commands", strings.TrimPrefix(path+" ", " "))
			if s := ucli.SuggestCommand(cmds, name); s != "" {
				hint = s + " " + hint
			}
			return &usageError{err: fmt.Errorf("unknown command '%s'", full), hint: hint}
		}
		path = strings.TrimSpace(path + " " + next.Name)
		if len(next.Subcommands) == 0 {
			return nil
		}
		flags, cmds, rest = next.Flags, next.Subcommands, rest[1:]
	}
}

func isHelpFlag(a string) bool { return a == "--help" || a == "-h" || a == "-help" }

func commandNames(cmds []*ucli.Command) []string {
	var out []string
	for _, c := range cmds {
		if !c.Hidden && c.Name != "help" {
			out = append(out, c.Name)
		}
	}
	sort.Strings(out)
	return out
}

// completionCommand prints a shell's completion script. The scripts ask
// rbnode itself for candidates (urfave's --generate-bash-completion), so
// they never go stale. (urfave's own fish generator loops forever on our
// command tree.)
func completionCommand() *ucli.Command {
	script := func(text string) func(*ucli.Context) error {
		return func(c *ucli.Context) error {
			_, err := io.WriteString(c.App.Writer, text)
			return err
		}
	}
	return &ucli.Command{
		Name:  "completion",
		Usage: "print a shell completion script (bash, zsh or fish)",
		Subcommands: []*ucli.Command{
			{Name: "bash", Usage: "completion for bash", Action: script(bashCompletion)},
			{Name: "zsh", Usage: "completion for zsh", Action: script(zshCompletion)},
			{Name: "fish", Usage: "completion for fish", Action: script(fishCompletion)},
		},
	}
}

const bashCompletion = `# bash completion for rbnode: source <(rbnode completion bash)
_rbnode() {
	local cur words
	cur="${COMP_WORDS[COMP_CWORD]}"
	if [[ "$cur" == -* ]]; then
		words=$("${COMP_WORDS[@]:0:COMP_CWORD}" "$cur" --generate-bash-completion 2>/dev/null)
	else
		words=$("${COMP_WORDS[@]:0:COMP_CWORD}" --generate-bash-completion 2>/dev/null)
	fi
	COMPREPLY=($(compgen -W "$words" -- "$cur"))
	[[ ${#COMPREPLY[@]} -eq 0 ]] && COMPREPLY=($(compgen -f -- "$cur"))
	return 0
}
complete -o filenames -F _rbnode rbnode
`

const zshCompletion = `#compdef rbnode
# zsh completion for rbnode: rbnode completion zsh > "${fpath[1]}/_rbnode"
_rbnode() {
	local -a opts
	local cur=${words[-1]}
	if [[ "$cur" == -* ]]; then
		opts=("${(@f)$(${words[@]:0:#words[@]-1} "$cur" --generate-bash-completion 2>/dev/null)}")
	else
		opts=("${(@f)$(${words[@]:0:#words[@]-1} --generate-bash-completion 2>/dev/null)}")
	fi
	if [[ "${opts[1]}" != "" ]]; then
		_describe 'values' opts
	else
		_files
	fi
}
compdef _rbnode rbnode
`

const fishCompletion = `# fish completion for rbnode: rbnode completion fish | source
function __rbnode_complete
	set -l args (commandline -opc)
	set -l cur (commandline -ct)
	if string match -q -- '-*' $cur
		$args $cur --generate-bash-completion 2>/dev/null
	else
		$args --generate-bash-completion 2>/dev/null
	end
end
complete -c rbnode -f -a '(__rbnode_complete)'
`
