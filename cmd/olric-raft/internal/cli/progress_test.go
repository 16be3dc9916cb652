package cli

import (
	"bytes"
	"testing"
)

func TestProgressBar(t *testing.T) {
	for _, tc := range []struct {
		done, total int
		want        string
	}{
		{0, 10, "[........................]   0%"},
		{5, 10, "[############............]  50%"},
		{10, 10, "[########################] 100%"},
		{12, 10, "[########################] 100%"},
		{-3, 10, "[........................]   0%"},
		{0, 0, "[########################] 100%"},
	} {
		if got := progressBar(tc.done, tc.total); got != tc.want {
			t.Errorf("progressBar(%d, %d) = %q, want %q", tc.done, tc.total, got, tc.want)
		}
	}
}

func TestProgressLineNotATerminal(t *testing.T) {
	var b bytes.Buffer
	p := newProgressLine(&b)
	p.Show("a %d", 1)
	p.Show("b %d", 2)
	p.Done()
	if got, want := b.String(), "a 1\nb 2\n"; got != want {
		t.Errorf("got %q, want %q (one line each, no control characters off a terminal)", got, want)
	}
}
