package cli

import (
	"fmt"
	"io"
	"time"

	"github.com/rbnode/rbnode/node"
)

// progress draws import (or sync) progress on stderr: a live line on a terminal, a
// plain line at most every half second otherwise (logs, CI).
type progress struct {
	w     io.Writer
	tty   bool
	start time.Time
	last  time.Time
	drawn bool
}

func newProgress(w io.Writer) *progress {
	return &progress{w: w, tty: isTerminal(w), start: time.Now()}
}

func (p *progress) update(s node.ImportProgress) {
	p.show(func(took time.Duration) string {
		return fmt.Sprintf("importing: %d documents, stored %d, duplicate %d, rejected %d (%.1fs)",
			s.Seen, s.Stored, s.Duplicate, s.Rejected, took.Seconds())
	})
}

// show draws the line line makes (given the time since the start),
// unless one was drawn lately.
func (p *progress) show(line func(took time.Duration) string) {
	now := time.Now()
	every := 500 * time.Millisecond
	if p.tty {
		every = 100 * time.Millisecond
	}
	if now.Sub(p.last) < every {
		return
	}
	p.last = now
	if p.tty {
		fmt.Fprintf(p.w, "\r\033[K%s", line(now.Sub(p.start)))
		p.drawn = true
	} else {
		fmt.Fprintln(p.w, line(now.Sub(p.start)))
	}
}

func (p *progress) done() {
	if p.drawn {
		fmt.Fprint(p.w, "\r\033[K")
	}
}
