package cli

import (
	"fmt"
	"io"
	"os"
	"strings"
)

// progressWidth is the number of cells of a progress bar.
const progressWidth = 24

// progressBar renders done of total as "[#########...............]  37%".
// total ≤ 0 renders as complete; done is clamped to [0, total].
func progressBar(done, total int) string {
	frac := 1.0
	if total > 0 {
		frac = float64(min(max(done, 0), total)) / float64(total)
	}
	filled := int(frac * progressWidth)
	return fmt.Sprintf("[%s%s] %3d%%", strings.Repeat("#", filled), strings.Repeat(".", progressWidth-filled), int(frac*100))
}

// progressLine writes progress lines to w: on a terminal each line
// replaces the previous one in place (carriage return, erase line) and
// Done ends it with a newline; anywhere else (a file, a pipe, a test)
// every line is a line of its own, so logs stay readable.
type progressLine struct {
	w        io.Writer
	terminal bool
	open     bool // a line is on screen without its newline
}

func newProgressLine(w io.Writer) *progressLine {
	return &progressLine{w: w, terminal: isTerminal(w)}
}

// Show writes one progress line.
func (p *progressLine) Show(format string, args ...any) {
	if p.terminal {
		fmt.Fprintf(p.w, "\r\033[K"+format, args...)
		p.open = true
		return
	}
	fmt.Fprintf(p.w, format+"\n", args...)
}

// Done ends the line on a terminal (idempotent).
func (p *progressLine) Done() {
	if p.open {
		fmt.Fprintln(p.w)
		p.open = false
	}
}

// isTerminal reports whether w is a character device (a terminal).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
