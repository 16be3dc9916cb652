package metadata

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

var rewrite = flag.Bool("rewrite", false, "rewrite the expected output of testdata/scenarios/*.txt")

// TestScenario runs the placement scenarios in testdata/scenarios and
// compares each decision with the expected output recorded in the file.
// Run `go test ./metadata -run Scenario -rewrite` to record new output
// (then review the diff).
//
// A scenario file is a sequence of blocks separated by blank lines. A block
// is optional comment lines (starting with #), one command, a line "----"
// and the output of that command. A block of only comments is kept as is.
// Commands:
//
//	init partitions=N replicas=R members=a,b,c   a new cluster (Place(nil, ...))
//	join x[,y...]     new members join
//	fail x[,y...]     alive members fail (they may rejoin)
//	leave x[,y...]    alive members leave for good
//	rejoin x[,y...]   failed members come back (empty, like a restart)
//	place             Place again with the same members
//	handoff P X       put partition P in handoff to X (as the node would)
//	write all         mark every available partition written
//	write P[,Q...]    mark partitions P, Q, ... written (they must be
//	                  available), as the FSM's MarkWritten entries do
//	                  before a partition's first acknowledged write
//	show              print every partition
//
// Partitions print as primary[backups], followed by "*" when written and
// by " handoff->X" in handoff ("a[b]* handoff->c"), as "unavailable", or as
// "-" before the first placement. A written partition that loses every
// replica becomes unavailable; one never written is placed afresh.
//
// Each command that calls Place prints the member loads, the partitions
// whose placement changed, Moves with the bound of doc.go, Summarize and
// whether the result is balanced. Every result is also checked against
// the guarantees of the property tests (without requiring balance). The
// write command prints every written partition.
func TestScenario(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "scenarios", "*.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no scenario files")
	}
	for _, file := range files {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".txt"), func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			blocks, err := parseScenario(string(data))
			if err != nil {
				t.Fatalf("%s: %v", file, err)
			}
			s := &scenario{}
			for i := range blocks {
				b := &blocks[i]
				if b.cmd == "" {
					continue
				}
				out, err := s.run(b.cmd)
				if err != nil {
					t.Fatalf("%s:%d: %s: %v", file, b.line, b.cmd, err)
				}
				b.output = out
			}
			got := renderScenario(blocks)
			if *rewrite {
				if got != string(data) {
					if err := os.WriteFile(file, []byte(got), 0o644); err != nil {
						t.Fatal(err)
					}
					t.Logf("rewrote %s", file)
				}
				return
			}
			if got != string(data) {
				t.Errorf("%s: output differs (-want +got); run `go test ./metadata -run Scenario -rewrite` to accept:\n%s",
					file, lineDiff(string(data), got))
			}
		})
	}
}

// scenarioBlock is one command of a scenario file with its output.
type scenarioBlock struct {
	comments []string
	cmd      string
	output   string
	line     int // of cmd, for messages
}

func parseScenario(text string) ([]scenarioBlock, error) {
	var blocks []scenarioBlock
	var cur *scenarioBlock
	inOutput := false
	var out []string
	flush := func() {
		if cur != nil {
			cur.output = strings.Join(out, "\n")
			blocks = append(blocks, *cur)
		}
		cur, inOutput, out = nil, false, nil
	}
	for i, line := range strings.Split(strings.TrimRight(text, "\n"), "\n") {
		switch {
		case strings.TrimSpace(line) == "":
			flush()
		case cur == nil:
			cur = &scenarioBlock{}
			fallthrough
		default:
			switch {
			case inOutput:
				out = append(out, line)
			case cur.cmd == "" && strings.HasPrefix(line, "#"):
				cur.comments = append(cur.comments, line)
			case cur.cmd == "":
				cur.cmd, cur.line = strings.TrimSpace(line), i+1
			case line == "----":
				inOutput = true
			default:
				return nil, fmt.Errorf("line %d: want ---- after the command %q, got %q", i+1, cur.cmd, line)
			}
		}
	}
	flush()
	return blocks, nil
}

func renderScenario(blocks []scenarioBlock) string {
	var sb strings.Builder
	for i, b := range blocks {
		if i > 0 {
			sb.WriteString("\n")
		}
		for _, c := range b.comments {
			sb.WriteString(c + "\n")
		}
		if b.cmd != "" {
			sb.WriteString(b.cmd + "\n----\n")
			if b.output != "" {
				sb.WriteString(b.output + "\n")
			}
		}
	}
	return sb.String()
}

// scenario is the state of a cluster while a scenario file runs.
type scenario struct {
	pc       uint32
	replicas int
	alive    []NodeID
	failed   []NodeID
	parts    []Partition
}

func (s *scenario) run(cmd string) (string, error) {
	fields := strings.Fields(cmd)
	verb, args := fields[0], fields[1:]
	if verb != "init" && s.parts == nil {
		return "", fmt.Errorf("%s before init", verb)
	}
	switch verb {
	case "init":
		return s.init(args)
	case "join", "fail", "leave", "rejoin":
		if len(args) != 1 {
			return "", fmt.Errorf("want one comma-separated list of members")
		}
		for _, id := range strings.Split(args[0], ",") {
			if err := s.event(verb, NodeID(id)); err != nil {
				return "", err
			}
		}
		return s.place()
	case "place":
		return s.place()
	case "handoff":
		if len(args) != 2 {
			return "", fmt.Errorf("want: handoff PARTITION MEMBER")
		}
		p, err := strconv.Atoi(args[0])
		if err != nil || p < 0 || p >= len(s.parts) {
			return "", fmt.Errorf("bad partition %q", args[0])
		}
		s.parts[p].State, s.parts[p].HandoffTo = PartitionHandoff, NodeID(args[1])
		if err := tableWith(s.parts, s.pc, s.replicas, s.alive).Validate(); err != nil {
			return "", err
		}
		return fmt.Sprintf("p%d: %s", p, renderPartition(s.parts[p])), nil
	case "write":
		if len(args) != 1 {
			return "", fmt.Errorf("want: write all, or write PARTITION[,PARTITION...]")
		}
		return s.write(args[0])
	case "show":
		var lines []string
		for _, p := range s.parts {
			lines = append(lines, fmt.Sprintf("p%d: %s epoch %d", p.ID, renderPartition(p), p.LeaderEpoch))
		}
		return strings.Join(lines, "\n"), nil
	default:
		return "", fmt.Errorf("unknown command %q", verb)
	}
}

func (s *scenario) init(args []string) (string, error) {
	*s = scenario{}
	for _, a := range args {
		key, val, ok := strings.Cut(a, "=")
		if !ok {
			return "", fmt.Errorf("want key=value, got %q", a)
		}
		switch key {
		case "partitions":
			n, err := strconv.ParseUint(val, 10, 32)
			if err != nil {
				return "", err
			}
			s.pc = uint32(n)
		case "replicas":
			n, err := strconv.Atoi(val)
			if err != nil {
				return "", err
			}
			s.replicas = n
		case "members":
			for _, id := range strings.Split(val, ",") {
				s.alive = append(s.alive, NodeID(id))
			}
			slices.Sort(s.alive)
		default:
			return "", fmt.Errorf("unknown key %q", key)
		}
	}
	return s.place()
}

// write marks the partitions listed in arg ("all": every available one)
// written and lists every written partition.
func (s *scenario) write(arg string) (string, error) {
	var ids []int
	if arg == "all" {
		for i, p := range s.parts {
			if p.State != PartitionUnavailable {
				ids = append(ids, i)
			}
		}
	} else {
		for _, f := range strings.Split(arg, ",") {
			i, err := strconv.Atoi(f)
			if err != nil || i < 0 || i >= len(s.parts) {
				return "", fmt.Errorf("bad partition %q", f)
			}
			if s.parts[i].State == PartitionUnavailable {
				return "", fmt.Errorf("partition %d is unavailable: it cannot be written", i)
			}
			ids = append(ids, i)
		}
	}
	for _, i := range ids {
		s.parts[i].Written = true
	}
	if err := tableWith(s.parts, s.pc, s.replicas, s.alive).Validate(); err != nil {
		return "", err
	}
	var written []string
	for _, p := range s.parts {
		if p.Written {
			written = append(written, fmt.Sprintf("p%d", p.ID))
		}
	}
	if len(written) == 0 {
		return "written: none", nil
	}
	return "written: " + strings.Join(written, " "), nil
}

func (s *scenario) event(verb string, id NodeID) error {
	isAlive, isFailed := slices.Contains(s.alive, id), slices.Contains(s.failed, id)
	drop := func(list []NodeID) []NodeID {
		return slices.DeleteFunc(list, func(x NodeID) bool { return x == id })
	}
	switch {
	case verb == "join" && !isAlive && !isFailed:
		s.alive = append(s.alive, id)
	case verb == "fail" && isAlive:
		s.alive = drop(s.alive)
		s.failed = append(s.failed, id)
	case verb == "leave" && isAlive:
		s.alive = drop(s.alive)
	case verb == "rejoin" && isFailed:
		s.failed = drop(s.failed)
		s.alive = append(s.alive, id)
	default:
		return fmt.Errorf("cannot %s %s (alive %v, failed %v)", verb, id, s.alive, s.failed)
	}
	slices.Sort(s.alive)
	slices.Sort(s.failed)
	return nil
}

// place runs Place for the alive members and renders the decision.
func (s *scenario) place() (string, error) {
	var cur []Partition
	if s.parts != nil {
		cur = s.parts
	}
	next, err := Place(cur, s.pc, s.replicas, s.alive)
	if err != nil {
		return "", err
	}
	if errs := checkStep(cur, next, s.pc, s.replicas, s.alive, stepCheck{}); len(errs) > 0 {
		return "", fmt.Errorf("guarantees broken:\n%s", strings.Join(errs, "\n"))
	}
	var lines []string
	add := func(format string, args ...any) { lines = append(lines, fmt.Sprintf(format, args...)) }

	width := len("member")
	for _, m := range s.alive {
		width = max(width, len(m))
	}
	add("%-*s  primaries  backups", width, "member")
	prim, back, _ := counts(next, s.alive)
	for i, m := range s.alive {
		add("%-*s  %9d  %7d", width, m, prim[i], back[i])
	}

	var changed []string
	for i, p := range next {
		var before Partition
		if cur != nil {
			before = cur[i]
		}
		if p.Equal(before) {
			continue
		}
		line := fmt.Sprintf("  p%d: %s -> %s", i, renderPartition(before), renderPartition(p))
		if p.LeaderEpoch != before.LeaderEpoch {
			line += fmt.Sprintf(" (epoch %d -> %d)", before.LeaderEpoch, p.LeaderEpoch)
		}
		changed = append(changed, line)
	}
	switch {
	case len(changed) == 0:
		add("changed: none")
	case cur == nil && len(changed) > 32:
		add("changed: all %d partitions (new cluster; use show to list them)", len(changed))
	default:
		add("changed: %d partitions", len(changed))
		lines = append(lines, changed...)
	}

	b := referenceBound(cur, s.pc, s.replicas, s.alive)
	pch, added := Moves(cur, next)
	add("moves: %d replica slots added (M=%d Mb=%d Ep=%d Eb=%d), %d primary changes (D=%d)",
		added, b.M, b.Mb, b.Ep, b.Eb, pch, b.D)
	add("summary: %s", Summarize(cur, next))
	if err := checkBalanced(next, s.replicas, s.alive); err != nil {
		add("balanced: no: %v", err)
	} else {
		add("balanced: yes")
	}
	s.parts = next
	return strings.Join(lines, "\n"), nil
}

// renderPartition writes a partition as primary[backups], then "*" when
// written and " handoff->X" for a handoff; "-" for nothing (before a new
// cluster) and "unavailable".
func renderPartition(p Partition) string {
	switch {
	case p.State == 0:
		return "-"
	case p.State == PartitionUnavailable:
		return "unavailable"
	}
	var sb strings.Builder
	sb.WriteString(string(p.Primary) + "[")
	for i, b := range p.Backups {
		if i > 0 {
			sb.WriteString(" ")
		}
		sb.WriteString(string(b))
	}
	sb.WriteString("]")
	if p.Written {
		sb.WriteString("*")
	}
	if p.State == PartitionHandoff {
		sb.WriteString(" handoff->" + string(p.HandoffTo))
	}
	return sb.String()
}

// lineDiff returns a line diff of want and got: lines only in want start
// with "-", lines only in got with "+", with two lines of context around
// each change.
func lineDiff(want, got string) string {
	a := strings.Split(want, "\n")
	b := strings.Split(got, "\n")
	// lcs[i][j] is the length of the longest common subsequence of a[i:]
	// and b[j:].
	lcs := make([][]int, len(a)+1)
	for i := range lcs {
		lcs[i] = make([]int, len(b)+1)
	}
	for i := len(a) - 1; i >= 0; i-- {
		for j := len(b) - 1; j >= 0; j-- {
			if a[i] == b[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	type op struct {
		kind byte
		text string
		line int // 1-based, in want (for - and space) or in got (for +)
	}
	var ops []op
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		switch {
		case i < len(a) && j < len(b) && a[i] == b[j]:
			ops = append(ops, op{' ', a[i], i + 1})
			i, j = i+1, j+1
		case i < len(a) && (j == len(b) || lcs[i+1][j] >= lcs[i][j+1]):
			ops = append(ops, op{'-', a[i], i + 1})
			i++
		default:
			ops = append(ops, op{'+', b[j], j + 1})
			j++
		}
	}
	const context = 2
	var sb strings.Builder
	last := -1
	for k, o := range ops {
		near := false
		for d := max(0, k-context); d <= min(len(ops)-1, k+context); d++ {
			if ops[d].kind != ' ' {
				near = true
				break
			}
		}
		if !near {
			continue
		}
		if last >= 0 && k != last+1 {
			sb.WriteString("...\n")
		}
		if last < 0 || k != last+1 {
			if o.kind == '+' {
				fmt.Fprintf(&sb, "@@ got line %d\n", o.line)
			} else {
				fmt.Fprintf(&sb, "@@ want line %d\n", o.line)
			}
		}
		fmt.Fprintf(&sb, "%c %s\n", o.kind, o.text)
		last = k
	}
	return sb.String()
}

func TestLineDiff(t *testing.T) {
	want := "a\nb\nc\nd\ne\nf\ng\nh"
	got := "a\nb\nc\nD\ne\nf\ng\nh\ni"
	diff := lineDiff(want, got)
	for _, w := range []string{"- d\n", "+ D\n", "+ i\n", "  c\n"} {
		if !strings.Contains(diff, w) {
			t.Errorf("diff lacks %q:\n%s", w, diff)
		}
	}
	if strings.Contains(diff, "  a\n") {
		t.Errorf("diff shows far context:\n%s", diff)
	}
}

func TestParseScenarioRoundTrip(t *testing.T) {
	text := "# header\n\n# one\ninit partitions=2 replicas=1 members=a\n----\nout 1\nout 2\n\njoin b\n----\n"
	blocks, err := parseScenario(text)
	if err != nil {
		t.Fatal(err)
	}
	if len(blocks) != 3 || blocks[1].cmd != "init partitions=2 replicas=1 members=a" || blocks[1].output != "out 1\nout 2" || blocks[2].line != 9 {
		t.Fatalf("blocks = %+v", blocks)
	}
	if got := renderScenario(blocks); got != text {
		t.Fatalf("render = %q, want %q", got, text)
	}
	if _, err := parseScenario("join a\nnot a separator\n"); err == nil {
		t.Fatal("parse accepted a command without ----")
	}
}

func TestScenarioWriteErrors(t *testing.T) {
	s := &scenario{}
	for _, cmd := range []string{"init partitions=4 replicas=1 members=a,b", "write 0", "fail a"} {
		if _, err := s.run(cmd); err != nil {
			t.Fatalf("%s: %v", cmd, err)
		}
	}
	if s.parts[0].State != PartitionUnavailable || s.parts[2].State != PartitionActive {
		t.Fatalf("partitions %+v, want 0 unavailable and 2 re-placed", s.parts)
	}
	for _, cmd := range []string{"write", "write 0", "write 4", "write x", "write 1 2"} {
		if out, err := s.run(cmd); err == nil {
			t.Errorf("%s = %q, want an error", cmd, out)
		}
	}
	if out, err := s.run("write all"); err != nil || out != "written: p1 p2 p3" {
		t.Errorf("write all = %q, %v; want written: p1 p2 p3", out, err)
	}
}
