package metadata

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"pgregory.net/rapid"
)

// nodeIDs returns n member ids m01, m02, ...
func nodeIDs(n int) []NodeID {
	out := make([]NodeID, n)
	for i := range out {
		out[i] = NodeID(fmt.Sprintf("m%02d", i+1))
	}
	return out
}

func mustPlace(t interface {
	Helper()
	Fatalf(string, ...any)
}, cur []Partition, pc uint32, replicas int, members []NodeID) []Partition {
	t.Helper()
	out, err := Place(cur, pc, replicas, members)
	if err != nil {
		t.Fatalf("Place: %v", err)
	}
	return out
}

func clonePartitions(ps []Partition) []Partition {
	if ps == nil {
		return nil
	}
	out := make([]Partition, len(ps))
	for i, p := range ps {
		out[i] = p.Clone()
	}
	return out
}

func partitionsEqual(a, b []Partition) bool {
	return slices.EqualFunc(a, b, Partition.Equal)
}

// firstDiff describes the first partition that differs, for messages.
func firstDiff(a, b []Partition) string {
	if len(a) != len(b) {
		return fmt.Sprintf("%d partitions vs %d", len(a), len(b))
	}
	for i := range a {
		if !a[i].Equal(b[i]) {
			return fmt.Sprintf("partition %d: %+v vs %+v", i, a[i], b[i])
		}
	}
	return "equal"
}

// tableWith places parts in a table whose alive members are members.
func tableWith(parts []Partition, pc uint32, replicas int, members []NodeID) *RoutingTable {
	t := &RoutingTable{Version: 1, PartitionCount: pc, Replicas: replicas, Partitions: parts}
	for _, m := range members {
		t.UpsertMember(Member{ID: m, State: MemberAlive})
	}
	return t
}

// counts returns the primary and backup counts of each member, in the
// order of members, and the number of available partitions.
func counts(parts []Partition, members []NodeID) (prim, back []int, available int) {
	prim = make([]int, len(members))
	back = make([]int, len(members))
	for _, p := range parts {
		if p.State == PartitionUnavailable {
			continue
		}
		available++
		prim[slices.Index(members, p.Primary)]++
		for _, b := range p.Backups {
			back[slices.Index(members, b)]++
		}
	}
	return prim, back, available
}

// checkBalanced reports whether every member's primary and backup counts
// are floor or ceil of the mean.
func checkBalanced(parts []Partition, replicas int, members []NodeID) error {
	n := len(members)
	prim, back, a := counts(parts, members)
	k := min(replicas, n)
	for _, c := range []struct {
		role   string
		counts []int
		total  int
	}{{"primary", prim, a}, {"backup", back, a * (k - 1)}} {
		lo, hi := c.total/n, (c.total+n-1)/n
		if slices.Min(c.counts) < lo || slices.Max(c.counts) > hi {
			return fmt.Errorf("%s counts %v of %v not within [%d, %d]", c.role, c.counts, members, lo, hi)
		}
	}
	return nil
}

// moveBound holds the quantities of the movement bound documented in
// doc.go, computed here independently of placement.go.
type moveBound struct {
	D, M, Mb, Ep, Eb int
}

func (b moveBound) String() string {
	return fmt.Sprintf("D=%d M=%d Mb=%d Ep=%d Eb=%d", b.D, b.M, b.Mb, b.Ep, b.Eb)
}

func referenceBound(cur []Partition, pc uint32, replicas int, members []NodeID) moveBound {
	var b moveBound
	n := len(members)
	k := min(replicas, n)
	prim := make([]int, n)
	back := make([]int, n)
	available := 0
	for i := range int(pc) {
		var before Partition
		if cur != nil {
			before = cur[i]
			if before.State == PartitionUnavailable {
				continue
			}
		}
		var surv []NodeID
		for _, r := range before.Replicas() {
			if slices.Contains(members, r) && len(surv) < k {
				surv = append(surv, r)
			}
		}
		if cur != nil && len(surv) == 0 {
			b.D++ // becomes unavailable
			continue
		}
		available++
		if len(surv) == 0 { // new cluster
			b.D++
			b.M += k
			b.Mb += k - 1
			continue
		}
		if surv[0] != before.Primary {
			b.D++
		}
		b.M += k - len(surv)
		b.Mb += k - len(surv)
		prim[slices.Index(members, surv[0])]++
		for _, s := range surv[1:] {
			back[slices.Index(members, s)]++
		}
	}
	b.Ep = referenceExcess(prim, available)
	b.Eb = referenceExcess(back, available*(k-1))
	return b
}

// referenceExcess is the fewest unit transfers that bring counts to a
// balanced vector with the given total: the ceil targets go to the
// largest counts.
func referenceExcess(counts []int, total int) int {
	c := slices.Clone(counts)
	slices.Sort(c)
	slices.Reverse(c)
	n := len(c)
	e := 0
	for i, x := range c {
		target := total / n
		if i < total%n {
			target++
		}
		e += max(0, x-target)
	}
	return e
}

// stepCheck says what to check after one Place call.
type stepCheck struct {
	// balanced requires the result to be balanced and Place to be
	// idempotent on it.
	balanced bool
}

// checkStep checks next = Place(cur, pc, replicas, members) against every
// documented guarantee and returns all violations found.
func checkStep(cur, next []Partition, pc uint32, replicas int, members []NodeID, sc stepCheck) []string {
	var errs []string
	add := func(format string, args ...any) { errs = append(errs, fmt.Sprintf(format, args...)) }
	sorted := slices.Sorted(slices.Values(members))
	n := len(members)
	k := min(replicas, n)

	if err := tableWith(next, pc, replicas, sorted).Validate(); err != nil {
		add("Validate: %v", err)
	}
	if len(next) != int(pc) {
		add("%d partitions, want %d", len(next), pc)
		return errs
	}
	for i, p := range next {
		var before Partition
		if cur != nil {
			before = cur[i]
		}
		var surv []NodeID
		for _, r := range before.Replicas() {
			if slices.Contains(members, r) {
				surv = append(surv, r)
			}
		}
		// No duplicate replica, and every available partition is complete.
		reps := p.Replicas()
		if len(slices.Compact(slices.Sorted(slices.Values(reps)))) != len(reps) {
			add("partition %d: duplicate replica %v", i, reps)
		}
		wasAssigned := cur != nil
		wantUnavailable := wasAssigned && (before.State == PartitionUnavailable || len(surv) == 0)
		if (p.State == PartitionUnavailable) != wantUnavailable {
			add("partition %d: state %s, survivors %v, before %+v", i, p.State, surv, before)
		}
		if p.State != PartitionUnavailable && len(reps) != k {
			add("partition %d: %d replicas, want %d", i, len(reps), k)
		}
		// Epoch rule.
		wantEpoch := before.LeaderEpoch
		if p.Primary != before.Primary {
			wantEpoch++
		}
		if p.LeaderEpoch != wantEpoch {
			add("partition %d: epoch %d, want %d (primary %q -> %q)", i, p.LeaderEpoch, wantEpoch, before.Primary, p.Primary)
		}
		// Failover keeps a survivor, one that holds the data, as primary.
		if wasAssigned && len(surv) > 0 && !slices.Contains(members, before.Primary) && !slices.Contains(surv, p.Primary) {
			add("partition %d: failed over to %q, not a survivor of %v", i, p.Primary, surv)
		}
		// With room for two copies, a partition keeps one of its old replicas.
		if wasAssigned && k >= 2 && len(surv) > 0 && !slices.ContainsFunc(surv, p.Holds) {
			add("partition %d: holds none of its survivors %v: %+v", i, surv, p)
		}
		// Handoffs are never created.
		if p.State == PartitionHandoff && (before.State != PartitionHandoff || before.HandoffTo != p.HandoffTo || before.Primary != p.Primary) {
			add("partition %d: handoff %+v not carried over from %+v", i, p, before)
		}
	}

	// Movement bound.
	b := referenceBound(cur, pc, replicas, members)
	pch, added := Moves(cur, next)
	if added < b.M || added > b.M+b.Mb+b.Ep+b.Eb {
		add("replica slots added %d outside [M, M+Mb+Ep+Eb] with %v", added, b)
	}
	if pch < b.D || pch > b.D+3*b.Ep+2*(b.Eb+b.Mb) {
		add("primary changes %d outside [D, D+3Ep+2(Eb+Mb)] with %v", pch, b)
	}

	// Determinism, also with the members in another order.
	for _, ms := range [][]NodeID{members, sorted, reversed(members)} {
		again, err := Place(cur, pc, replicas, ms)
		if err != nil || !partitionsEqual(again, next) {
			add("not deterministic with members %v: %v, %s", ms, err, firstDiff(again, next))
		}
	}

	if sc.balanced {
		if err := checkBalanced(next, replicas, sorted); err != nil {
			add("not balanced: %v", err)
		}
		again, err := Place(next, pc, replicas, members)
		if err != nil || !partitionsEqual(again, next) {
			add("not idempotent: %v, %s", err, firstDiff(again, next))
		}
	}
	return errs
}

func reversed(ms []NodeID) []NodeID {
	out := slices.Clone(ms)
	slices.Reverse(out)
	return out
}

// cluster models the members of a cluster going through events.
type cluster struct {
	alive, failed, fresh []NodeID
}

func (c *cluster) move(id NodeID, from, to *[]NodeID) {
	*from = slices.DeleteFunc(*from, func(x NodeID) bool { return x == id })
	if to != nil {
		*to = append(*to, id)
		slices.Sort(*to)
	}
}

// TestPropertyPlaceEvents runs random sequences of joins, failures,
// leaves and rejoins through Place and checks every guarantee after every
// step: validity, balance, the epoch rule, failover to a survivor,
// unavailable only when every replica is lost, the movement bound,
// determinism and idempotence.
func TestPropertyPlaceEvents(t *testing.T) {
	pool := []NodeID{"a", "b", "c", "d", "node-e", "f.example", "g_7", "h", "i", "j", "k", "l"}
	rapid.Check(t, func(rt *rapid.T) {
		replicas := rapid.IntRange(1, 4).Draw(rt, "replicas")
		pc := rapid.Uint32Range(1, 300).Draw(rt, "partitions")
		ids := rapid.Permutation(pool).Draw(rt, "ids")
		start := rapid.IntRange(1, 9).Draw(rt, "members")
		c := &cluster{alive: slices.Sorted(slices.Values(ids[:start])), fresh: ids[start:]}

		order := rapid.Permutation(c.alive).Draw(rt, "order")
		cur, err := Place(nil, pc, replicas, order)
		if err != nil {
			rt.Fatalf("Place(nil): %v", err)
		}
		if errs := checkStep(nil, cur, pc, replicas, order, stepCheck{balanced: true}); len(errs) > 0 {
			rt.Fatalf("new cluster of %v:\n%s", order, strings.Join(errs, "\n"))
		}
		for _, p := range cur {
			if p.LeaderEpoch != 1 || p.State != PartitionActive {
				rt.Fatalf("new cluster partition %+v, want active with epoch 1", p)
			}
		}

		steps := rapid.IntRange(1, 12).Draw(rt, "steps")
		for step := range steps {
			event := rapid.SampledFrom([]string{"join", "fail", "leave", "rejoin"}).Draw(rt, "event")
			var id NodeID
			switch event {
			case "join":
				if len(c.fresh) == 0 || len(c.alive) == 9 {
					continue
				}
				id = c.fresh[0]
				c.move(id, &c.fresh, &c.alive)
			case "rejoin":
				if len(c.failed) == 0 || len(c.alive) == 9 {
					continue
				}
				id = rapid.SampledFrom(c.failed).Draw(rt, "rejoiner")
				c.move(id, &c.failed, &c.alive)
			case "fail", "leave":
				id = rapid.SampledFrom(c.alive).Draw(rt, "leaver")
				if len(c.alive) == 1 {
					if _, err := Place(cur, pc, replicas, nil); !errors.Is(err, ErrNoMembers) {
						rt.Fatalf("Place without members: %v, want ErrNoMembers", err)
					}
					continue
				}
				if event == "fail" {
					c.move(id, &c.alive, &c.failed)
				} else {
					c.move(id, &c.alive, nil)
				}
			}
			members := rapid.Permutation(c.alive).Draw(rt, "order")
			before := clonePartitions(cur)
			next, err := Place(cur, pc, replicas, members)
			if err != nil {
				rt.Fatalf("step %d (%s %s): %v", step, event, id, err)
			}
			if !partitionsEqual(cur, before) {
				rt.Fatalf("Place modified its input")
			}
			if errs := checkStep(cur, next, pc, replicas, members, stepCheck{balanced: true}); len(errs) > 0 {
				rt.Fatalf("step %d (%s %s), members %v:\n%s", step, event, id, members, strings.Join(errs, "\n"))
			}
			cur = next
		}
	})
}

// arbitraryPartitions draws a valid partition list over universe that
// Place did not produce: any replicas, any epochs, some unavailable.
func arbitraryPartitions(rt *rapid.T, pc uint32, replicas int, universe []NodeID) []Partition {
	out := make([]Partition, pc)
	for i := range out {
		p := Partition{ID: uint32(i), State: PartitionActive, LeaderEpoch: rapid.Uint64Range(0, 9).Draw(rt, "epoch")}
		if rapid.IntRange(0, 9).Draw(rt, "unavailable") == 0 {
			p.State = PartitionUnavailable
		} else {
			reps := rapid.Permutation(universe).Draw(rt, "replicas")
			reps = reps[:rapid.IntRange(1, min(replicas, len(universe))).Draw(rt, "count")]
			p.Primary, p.Backups = reps[0], reps[1:]
		}
		out[i] = p
	}
	return out
}

// TestPropertyPlaceArbitraryInput starts from tables Place did not produce
// and removes several members at once. The first call may trade balance
// for keeping failed-over primaries on their survivors; every other
// guarantee holds, and the second call is balanced and then stable.
func TestPropertyPlaceArbitraryInput(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		universe := nodeIDs(rapid.IntRange(1, 9).Draw(rt, "universe"))
		replicas := rapid.IntRange(1, 4).Draw(rt, "replicas")
		pc := rapid.Uint32Range(1, 120).Draw(rt, "partitions")
		cur := arbitraryPartitions(rt, pc, replicas, universe)
		members := rapid.SliceOfNDistinct(rapid.SampledFrom(universe), 1, len(universe), rapid.ID[NodeID]).Draw(rt, "members")

		next, err := Place(cur, pc, replicas, members)
		if err != nil {
			rt.Fatal(err)
		}
		if errs := checkStep(cur, next, pc, replicas, members, stepCheck{}); len(errs) > 0 {
			rt.Fatalf("first call:\n%s", strings.Join(errs, "\n"))
		}
		second, err := Place(next, pc, replicas, members)
		if err != nil {
			rt.Fatal(err)
		}
		if errs := checkStep(next, second, pc, replicas, members, stepCheck{balanced: true}); len(errs) > 0 {
			rt.Fatalf("second call:\n%s", strings.Join(errs, "\n"))
		}
	})
}

// TestPropertyPlaceHandoff puts partitions of a balanced table in handoff
// and changes the members: handoffs whose primary survived and whose
// target is eligible are kept with their primary, the others cancelled;
// Place never creates one.
func TestPropertyPlaceHandoff(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		universe := nodeIDs(rapid.IntRange(2, 7).Draw(rt, "universe"))
		replicas := rapid.IntRange(1, 3).Draw(rt, "replicas")
		pc := rapid.Uint32Range(1, 100).Draw(rt, "partitions")
		cur := mustPlace(rt, nil, pc, replicas, universe)
		for i := range cur {
			if rapid.IntRange(0, 3).Draw(rt, "handoff") == 0 {
				target := rapid.SampledFrom(universe).Draw(rt, "target")
				if target != cur[i].Primary {
					cur[i].State, cur[i].HandoffTo = PartitionHandoff, target
				}
			}
		}
		members := rapid.SliceOfNDistinct(rapid.SampledFrom(universe), 1, len(universe), rapid.ID[NodeID]).Draw(rt, "members")
		next, err := Place(cur, pc, replicas, members)
		if err != nil {
			rt.Fatal(err)
		}
		if errs := checkStep(cur, next, pc, replicas, members, stepCheck{}); len(errs) > 0 {
			rt.Fatalf("%s", strings.Join(errs, "\n"))
		}
		for i, p := range cur {
			if p.State != PartitionHandoff {
				continue
			}
			keep := slices.Contains(members, p.Primary) && slices.Contains(members, p.HandoffTo)
			q := next[i]
			if keep && (q.State != PartitionHandoff || q.HandoffTo != p.HandoffTo || q.Primary != p.Primary) {
				rt.Fatalf("partition %d: handoff %+v not kept: %+v", i, p, q)
			}
			if !keep && (q.State == PartitionHandoff || q.HandoffTo != "") {
				rt.Fatalf("partition %d: handoff %+v not cancelled: %+v", i, p, q)
			}
		}
	})
}

func TestPlaceNewCluster(t *testing.T) {
	members := []NodeID{"e", "c", "a", "d", "b"}
	parts := mustPlace(t, nil, DefaultPartitionCount, DefaultReplicas, members)
	if errs := checkStep(nil, parts, DefaultPartitionCount, DefaultReplicas, members, stepCheck{balanced: true}); len(errs) > 0 {
		t.Fatal(strings.Join(errs, "\n"))
	}
	prim, back, _ := counts(parts, []NodeID{"a", "b", "c", "d", "e"})
	if want := []int{55, 54, 54, 54, 54}; !slices.Equal(prim, want) {
		t.Errorf("primaries %v, want %v", prim, want)
	}
	if slices.Min(back) != 54 || slices.Max(back) != 55 {
		t.Errorf("backups %v, want 54 or 55 each", back)
	}
	for _, p := range parts {
		if p.State != PartitionActive || p.LeaderEpoch != 1 || p.HandoffTo != "" || len(p.Backups) != 1 {
			t.Fatalf("partition %+v", p)
		}
	}
	// An empty non-nil cur is a new cluster too.
	if again := mustPlace(t, []Partition{}, DefaultPartitionCount, DefaultReplicas, members); !partitionsEqual(again, parts) {
		t.Fatalf("Place([]) differs from Place(nil): %s", firstDiff(again, parts))
	}
}

func TestPlaceInputErrors(t *testing.T) {
	good := mustPlace(t, nil, 4, 2, []NodeID{"a", "b"})
	withPart := func(i int, change func(*Partition)) []Partition {
		ps := clonePartitions(good)
		change(&ps[i])
		return ps
	}
	tests := []struct {
		name     string
		cur      []Partition
		pc       uint32
		replicas int
		members  []NodeID
		want     error
		msg      string
	}{
		{"zero partitions", nil, 0, 2, []NodeID{"a"}, ErrInvalidSettings, "partition count 0"},
		{"too many replicas", nil, 4, MaxReplicas + 1, []NodeID{"a"}, ErrInvalidSettings, "replicas 8"},
		{"no members", nil, 4, 2, nil, ErrNoMembers, "at least one"},
		{"duplicate member", nil, 4, 2, []NodeID{"a", "b", "a"}, ErrDuplicateMember, `"a"`},
		{"invalid member", nil, 4, 2, []NodeID{"a", "b c"}, ErrInvalidNodeID, `"b c"`},
		{"empty member", nil, 4, 2, []NodeID{""}, ErrInvalidNodeID, `""`},
		{"cur too short", good[:3], 4, 2, []NodeID{"a"}, ErrInvalidTable, "3 partitions, want 4"},
		{"partition id", withPart(2, func(p *Partition) { p.ID = 7 }), 4, 2, []NodeID{"a"}, ErrInvalidTable, "index 2 has id 7"},
		{"unknown state", withPart(1, func(p *Partition) { p.State = 0 }), 4, 2, []NodeID{"a"}, ErrInvalidTable, "partition 1: unknown state 0"},
		{"active without primary", withPart(1, func(p *Partition) { p.Primary = "" }), 4, 2, []NodeID{"a"}, ErrInvalidTable, "partition 1: active without primary"},
		{"unavailable with replicas", withPart(0, func(p *Partition) { p.State = PartitionUnavailable }), 4, 2, []NodeID{"a"}, ErrInvalidTable, "partition 0: unavailable but has replicas"},
		{"two replicas on a member", withPart(3, func(p *Partition) { p.Backups = []NodeID{p.Primary} }), 4, 2, []NodeID{"a"}, ErrInvalidTable, "holds two replicas"},
		{"empty backup", withPart(3, func(p *Partition) { p.Backups = []NodeID{""} }), 4, 2, []NodeID{"a"}, ErrInvalidTable, "partition 3: empty backup"},
		{"handoff without target", withPart(0, func(p *Partition) { p.State = PartitionHandoff }), 4, 2, []NodeID{"a"}, ErrInvalidTable, "partition 0: handoff target"},
		{"handoff to the primary", withPart(0, func(p *Partition) {
			p.State, p.HandoffTo = PartitionHandoff, p.Primary
		}), 4, 2, []NodeID{"a"}, ErrInvalidTable, "is the primary"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := Place(tt.cur, tt.pc, tt.replicas, tt.members)
			if !errors.Is(err, tt.want) || out != nil {
				t.Fatalf("Place = %v, %v; want nil, %v", out, err, tt.want)
			}
			if !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("error %q does not name %q", err, tt.msg)
			}
		})
	}
}

func TestPlaceBalancedIsUnchanged(t *testing.T) {
	for _, replicas := range []int{1, 2, 3, 7} {
		for _, n := range []int{1, 2, 3, 7} {
			members := nodeIDs(n)
			parts := mustPlace(t, nil, 271, replicas, members)
			again := mustPlace(t, parts, 271, replicas, reversed(members))
			if !partitionsEqual(again, parts) {
				t.Errorf("replicas %d, %d members: Place of a balanced table changed it: %s", replicas, n, firstDiff(again, parts))
			}
			if s := Summarize(parts, again); s != "no change" {
				t.Errorf("Summarize = %q, want no change", s)
			}
		}
	}
}

func TestPlaceFailoverAndUnavailable(t *testing.T) {
	cur := []Partition{
		{ID: 0, Primary: "a", Backups: []NodeID{"b", "c"}, State: PartitionActive, LeaderEpoch: 4},
		{ID: 1, Primary: "b", Backups: []NodeID{"a", "c"}, State: PartitionActive, LeaderEpoch: 2},
		{ID: 2, Primary: "a", Backups: []NodeID{"b"}, State: PartitionActive, LeaderEpoch: 9},
		{ID: 3, State: PartitionUnavailable, LeaderEpoch: 5},
	}
	// a and b fail together: partition 0 fails over to c (its first
	// survivor), partition 1 keeps c too, partition 2 loses everything.
	next := mustPlace(t, cur, 4, 3, []NodeID{"c", "d"})
	want := []struct {
		primary NodeID
		state   PartitionState
		epoch   uint64
	}{
		{"c", PartitionActive, 5},
		{"c", PartitionActive, 3},
		{"", PartitionUnavailable, 10},
		{"", PartitionUnavailable, 5},
	}
	for i, w := range want {
		p := next[i]
		if p.Primary != w.primary || p.State != w.state || p.LeaderEpoch != w.epoch {
			t.Errorf("partition %d = %+v, want primary %q, %s, epoch %d", i, p, w.primary, w.state, w.epoch)
		}
	}
	for _, i := range []int{0, 1} {
		if !slices.Equal(next[i].Backups, []NodeID{"d"}) {
			t.Errorf("partition %d backups %v, want [d]", i, next[i].Backups)
		}
	}
	// Unavailable partitions stay so when members come back, epochs unchanged.
	later := mustPlace(t, next, 4, 3, []NodeID{"a", "b", "c", "d"})
	for _, i := range []int{2, 3} {
		if !later[i].Equal(next[i]) {
			t.Errorf("partition %d changed from %+v to %+v", i, next[i], later[i])
		}
	}
	if err := checkBalanced(later, 3, []NodeID{"a", "b", "c", "d"}); err != nil {
		t.Error(err)
	}
	if got, want := Summarize(cur, next), "3 primaries moved, 2 replicas added, 6 replicas removed, 2 partitions unavailable"; got != want {
		t.Errorf("Summarize = %q, want %q", got, want)
	}
}

func TestPlaceSingleMember(t *testing.T) {
	parts := mustPlace(t, nil, 16, 3, []NodeID{"solo"})
	for _, p := range parts {
		if p.Primary != "solo" || len(p.Backups) != 0 || p.Backups == nil {
			t.Fatalf("partition %+v, want primary solo, no backups", p)
		}
	}
	// A second member joins: it gets half the primaries and backs up the rest.
	two := mustPlace(t, parts, 16, 3, []NodeID{"solo", "next"})
	if errs := checkStep(parts, two, 16, 3, []NodeID{"solo", "next"}, stepCheck{balanced: true}); len(errs) > 0 {
		t.Fatal(strings.Join(errs, "\n"))
	}
	if pch, added := Moves(parts, two); pch != 8 || added != 16 {
		t.Fatalf("Moves = %d primaries, %d slots; want 8 (swaps) and 16", pch, added)
	}
}

func TestPlaceTrimsBackups(t *testing.T) {
	cur := []Partition{
		{ID: 0, Primary: "a", Backups: []NodeID{"b", "c", "d"}, State: PartitionActive, LeaderEpoch: 1},
		{ID: 1, Primary: "b", Backups: []NodeID{"c", "d", "a"}, State: PartitionActive, LeaderEpoch: 1},
	}
	next := mustPlace(t, cur, 2, 2, []NodeID{"a", "b", "c", "d"})
	if !slices.Equal(next[0].Backups, []NodeID{"b"}) || next[0].Primary != "a" {
		t.Errorf("partition 0 = %+v, want a with backup b", next[0])
	}
	if next[1].Primary != "b" || len(next[1].Backups) != 1 {
		t.Errorf("partition 1 = %+v, want b with one backup", next[1])
	}
	if err := tableWith(next, 2, 2, []NodeID{"a", "b", "c", "d"}).Validate(); err != nil {
		t.Error(err)
	}
}

func TestPlaceHandoff(t *testing.T) {
	cur := []Partition{
		{ID: 0, Primary: "a", Backups: []NodeID{"b"}, State: PartitionHandoff, HandoffTo: "c", LeaderEpoch: 3},
		{ID: 1, Primary: "a", Backups: []NodeID{"c"}, State: PartitionHandoff, HandoffTo: "d", LeaderEpoch: 3},
		{ID: 2, Primary: "b", Backups: []NodeID{"a"}, State: PartitionHandoff, HandoffTo: "a", LeaderEpoch: 3},
		{ID: 3, Primary: "c", Backups: []NodeID{"a"}, State: PartitionActive, LeaderEpoch: 3},
	}
	next := mustPlace(t, cur, 4, 2, []NodeID{"a", "c", "e"})
	// 0: primary and target alive: kept, primary pinned.
	if p := next[0]; p.State != PartitionHandoff || p.HandoffTo != "c" || p.Primary != "a" || p.LeaderEpoch != 3 {
		t.Errorf("partition 0 = %+v, want handoff a -> c kept", p)
	}
	// 1: target d is gone: cancelled.
	if p := next[1]; p.State != PartitionActive || p.HandoffTo != "" {
		t.Errorf("partition 1 = %+v, want handoff cancelled", p)
	}
	// 2: primary b is gone: failover to a, handoff cancelled.
	if p := next[2]; p.State != PartitionActive || p.HandoffTo != "" || p.Primary != "a" || p.LeaderEpoch != 4 {
		t.Errorf("partition 2 = %+v, want failover to a, handoff cancelled", p)
	}
	if err := tableWith(next, 4, 2, []NodeID{"a", "c", "e"}).Validate(); err != nil {
		t.Error(err)
	}
}

func TestPlaceMoreReplicasThanMembers(t *testing.T) {
	parts := mustPlace(t, nil, 30, 3, []NodeID{"a", "b"})
	for _, p := range parts {
		if len(p.Replicas()) != 2 {
			t.Fatalf("partition %+v, want 2 replicas with 2 members", p)
		}
	}
	members := []NodeID{"a", "b", "c"}
	next := mustPlace(t, parts, 30, 3, members)
	if errs := checkStep(parts, next, 30, 3, members, stepCheck{balanced: true}); len(errs) > 0 {
		t.Fatal(strings.Join(errs, "\n"))
	}
}

func TestPlaceLargeCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("large placement")
	}
	const pc = MaxPartitionCount
	members := make([]NodeID, 100)
	for i := range members {
		members[i] = NodeID(fmt.Sprintf("node-%03d", i))
	}
	cur := mustPlace(t, nil, pc, 3, members)
	if err := checkBalanced(cur, 3, members); err != nil {
		t.Fatal(err)
	}
	for _, ms := range [][]NodeID{members[1:], append(slices.Clone(members), "node-new")} {
		next := mustPlace(t, cur, pc, 3, ms)
		sorted := slices.Sorted(slices.Values(ms))
		if err := checkBalanced(next, 3, sorted); err != nil {
			t.Fatal(err)
		}
		if err := tableWith(next, pc, 3, sorted).Validate(); err != nil {
			t.Fatal(err)
		}
		b := referenceBound(cur, pc, 3, ms)
		if _, added := Moves(cur, next); added > b.M+b.Mb+b.Ep+b.Eb {
			t.Fatalf("%d replica slots added, bound %v", added, b)
		}
	}
}

func TestMovesAndSummarize(t *testing.T) {
	before := []Partition{
		{ID: 0, Primary: "a", Backups: []NodeID{"b"}, State: PartitionActive},
		{ID: 1, Primary: "b", Backups: []NodeID{"a"}, State: PartitionActive},
		{ID: 2, Primary: "a", Backups: []NodeID{"b"}, State: PartitionActive},
	}
	after := []Partition{
		{ID: 0, Primary: "a", Backups: []NodeID{"b"}, State: PartitionActive},
		{ID: 1, Primary: "a", Backups: []NodeID{"c"}, State: PartitionActive},
		{ID: 2, State: PartitionUnavailable},
	}
	if pch, added := Moves(before, after); pch != 2 || added != 1 {
		t.Errorf("Moves = %d, %d; want 2, 1", pch, added)
	}
	if got, want := Summarize(before, after), "2 primaries moved, 1 replica added, 3 replicas removed, 1 partition unavailable"; got != want {
		t.Errorf("Summarize = %q, want %q", got, want)
	}
	if pch, added := Moves(nil, before); pch != 3 || added != 6 {
		t.Errorf("Moves(nil) = %d, %d; want 3, 6", pch, added)
	}
	if got, want := Summarize(nil, before), "3 primaries moved, 6 replicas added, 0 replicas removed, 0 partitions unavailable"; got != want {
		t.Errorf("Summarize(nil) = %q, want %q", got, want)
	}
	if got := Summarize(before, before); got != "no change" {
		t.Errorf("Summarize of equal = %q", got)
	}
}

// BenchmarkPlace measures a new cluster, a join, a failure and a no-op on
// the default size and on the largest.
func BenchmarkPlace(b *testing.B) {
	for _, size := range []struct {
		pc      uint32
		members int
	}{{DefaultPartitionCount, 7}, {MaxPartitionCount, 100}} {
		members := make([]NodeID, size.members)
		for i := range members {
			members[i] = NodeID(fmt.Sprintf("node-%03d", i))
		}
		base := mustPlace(b, nil, size.pc, 3, members)
		cases := []struct {
			name    string
			cur     []Partition
			members []NodeID
		}{
			{"new", nil, members},
			{"join", base, append(slices.Clone(members), "node-new")},
			{"fail", base, members[1:]},
			{"noop", base, members},
		}
		for _, c := range cases {
			b.Run(fmt.Sprintf("%s/%dx%d", c.name, size.pc, size.members), func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					if _, err := Place(c.cur, size.pc, 3, c.members); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
