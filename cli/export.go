package cli

import (
	"fmt"
	"os"
	"time"

	ucli "github.com/urfave/cli/v2"

	"github.com/rbnode/rbnode/attest"
	"github.com/rbnode/rbnode/node"
)

func exportCommand() *ucli.Command {
	return &ucli.Command{
		Name:  "export",
		Usage: "write a release in the formats other tools read (guix.sigs, in-toto)",
		Subcommands: []*ucli.Command{
			{
				Name:      "guix-sigs",
				Usage:     "write the release's signed documents in a guix.sigs layout: VERSION/SIGNER/NAME with NAME.asc, keys in builder-keys/",
				ArgsUsage: "VERSION",
				Flags: []ucli.Flag{
					&ucli.StringFlag{Name: "out", Usage: "the guix.sigs checkout or directory to write into", Required: true},
					projectFlag(), jsonFlag(),
				},
				Action: func(c *ucli.Context) error {
					if c.NArg() != 1 {
						return usagef("export guix-sigs takes one VERSION")
					}
					return withBackend(c, true, func(n backend) error {
						docs, err := n.ReleaseDocuments(c.Context, c.String("project"), c.Args().First())
						if err != nil {
							return err
						}
						sum, err := node.WriteGuixSigs(c.String("out"), docs)
						if err != nil {
							return err
						}
						if c.Bool("json") {
							return printJSON(c.App.Writer, sum)
						}
						for _, p := range sum.Documents {
							fmt.Fprintf(c.App.Writer, "%s\n%s.asc\n", p, p)
						}
						for _, p := range sum.Keys {
							fmt.Fprintln(c.App.Writer, p)
						}
						fmt.Fprintf(c.App.ErrWriter, "exported %d documents and %d keys into %s (%d files were already there)\n",
							len(sum.Documents), len(sum.Keys), sum.Dir, sum.Unchanged)
						return nil
					})
				},
			},
			{
				Name:      "intoto",
				Usage:     "print an in-toto Statement v1 of the release's consensus artifacts (--sign: in a DSSE envelope signed by this node's key)",
				ArgsUsage: "VERSION",
				Flags: []ucli.Flag{
					&ucli.BoolFlag{Name: "sign", Usage: "wrap the statement in a DSSE envelope signed by this node's builder key"},
					&ucli.StringFlag{Name: "out", Usage: "write to `FILE` instead of stdout"},
					quorumFlag(), projectFlag(),
				},
				Action: func(c *ucli.Context) error {
					if c.NArg() != 1 {
						return usagef("export intoto takes one VERSION")
					}
					cfg, err := loadConfig(c)
					if err != nil {
						return err
					}
					var sk *attest.SecretKey
					if c.Bool("sign") {
						if sk, err = node.LoadBuilderKey(cfg.Home); err != nil {
							return err
						}
					}
					return withBackend(c, true, func(n backend) error {
						r, err := n.Status(c.Context, c.String("project"), c.Args().First(), quorumArg(c))
						if err != nil {
							return err
						}
						b, err := node.InTotoExport(r, sk, time.Now())
						if err != nil {
							return err
						}
						if out := c.String("out"); out != "" {
							return os.WriteFile(out, b, 0o644)
						}
						_, err = c.App.Writer.Write(b)
						return err
					})
				},
			},
		},
	}
}
