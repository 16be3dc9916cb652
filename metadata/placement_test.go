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

// partitionsIdentical is partitionsEqual plus the history fields, which
// Equal leaves out.
func partitionsIdentical(a, b []Partition) bool {
	return slices.EqualFunc(a, b, func(p, q Partition) bool {
		return p.Equal(q) && p.PrevPrimary == q.PrevPrimary && p.PrevEpoch == q.PrevEpoch
	})
}

// drawWrites marks written, as the FSM's MarkWritten entries would, the
// available partitions lo, lo+stride, ... below hi, all three drawn: a
// step may mark none, some or all of them. Written is never cleared here
// (only Place clears it, for partitions that become unavailable).
func drawWrites(rt *rapid.T, parts []Partition) {
	lo := rapid.IntRange(0, len(parts)).Draw(rt, "write from")
	hi := rapid.IntRange(lo, len(parts)).Draw(rt, "write to")
	stride := rapid.IntRange(1, 4).Draw(rt, "write stride")
	for i := lo; i < hi; i += stride {
		if parts[i].State != PartitionUnavailable {
			parts[i].Written = true
		}
	}
}

// applyHistory sets the history fields of next as the FSM does when it
// installs next over cur: a partition whose primary changed records the
// old primary and epoch, the others keep theirs (which Place copied).
func applyHistory(cur, next []Partition) {
	for i := range next {
		if cur != nil && next[i].Primary != cur[i].Primary {
			next[i].PrevPrimary, next[i].PrevEpoch = cur[i].Primary, cur[i].LeaderEpoch
		}
	}
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
// doc.go, computed here independently of placement.go. With cur' = cur
// after dropping ineligible replicas and trimming to k:
//
//   - D counts failovers, written partitions that become unavailable and
//     partitions with no replica in cur' (a new cluster's, and
//     never-written partitions that lost every replica);
//   - M counts, over available partitions, k minus their replicas in cur'
//     (k for a partition with no replica in cur'); Mb is M less one per
//     partition with no replica in cur';
//   - Ep and Eb are the primary and backup excess of cur'.
//
// checkStep requires M <= replica slots added <= M + Mb + Ep + Eb and
// D <= primary changes <= D + 3*Ep + 2*(Eb + Mb).
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
		if cur != nil && len(surv) == 0 && before.Written {
			b.D++ // data lost: becomes unavailable
			continue
		}
		available++
		if len(surv) == 0 {
			// No replica in cur': a new cluster, or a never-written
			// partition that lost every replica and is placed afresh. Its
			// primary changes (the old one, if any, is not eligible) and
			// all k slots are missing, k-1 of them backups.
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
		// lost: every replica gone in this call. Unavailable only when
		// that lost data (the partition was written), or already so.
		lost := wasAssigned && before.State != PartitionUnavailable && len(surv) == 0
		wantUnavailable := wasAssigned && (before.State == PartitionUnavailable || (lost && before.Written))
		if (p.State == PartitionUnavailable) != wantUnavailable {
			add("partition %d: state %s, survivors %v, before %+v", i, p.State, surv, before)
		}
		if p.State != PartitionUnavailable && len(reps) != k {
			add("partition %d: %d replicas, want %d", i, len(reps), k)
		}
		// A never-written partition that lost every replica lost nothing:
		// it is placed afresh, like a partition of a new cluster: active,
		// no handoff, k replicas none of which it had, a new epoch.
		if lost && !before.Written && (p.State != PartitionActive || p.HandoffTo != "" || len(reps) != k ||
			slices.ContainsFunc(reps, before.Holds) || p.LeaderEpoch != before.LeaderEpoch+1) {
			add("partition %d: never written, lost every replica, not placed afresh: %+v -> %+v", i, before, p)
		}
		// Written travels with the data: kept while available, cleared
		// when unavailable. The history is the FSM's: copied unchanged.
		if want := before.Written && p.State != PartitionUnavailable; p.Written != want {
			add("partition %d: written %v, want %v (%+v -> %+v)", i, p.Written, want, before, p)
		}
		if p.PrevPrimary != before.PrevPrimary || p.PrevEpoch != before.PrevEpoch {
			add("partition %d: history %q@%d, want %q@%d copied", i, p.PrevPrimary, p.PrevEpoch, before.PrevPrimary, before.PrevEpoch)
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
// unavailable only when every replica of a written partition is lost,
// never-written partitions re-placed afresh, Written and the history
// carried over, the movement bound, determinism and idempotence. Between
// steps it does what the FSM does: records the history of primary changes
// and marks random partitions written.
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
			if p.LeaderEpoch != 1 || p.State != PartitionActive || p.Written || p.PrevPrimary != "" || p.PrevEpoch != 0 {
				rt.Fatalf("new cluster partition %+v, want active with epoch 1, not written, no history", p)
			}
		}
		drawWrites(rt, cur)

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
			if !partitionsIdentical(cur, before) {
				rt.Fatalf("Place modified its input")
			}
			if errs := checkStep(cur, next, pc, replicas, members, stepCheck{balanced: true}); len(errs) > 0 {
				rt.Fatalf("step %d (%s %s), members %v:\n%s", step, event, id, members, strings.Join(errs, "\n"))
			}
			applyHistory(cur, next)
			drawWrites(rt, next)
			cur = next
		}
	})
}

// arbitraryPartitions draws a valid partition list over universe that
// Place did not produce: any replicas, any epochs, any history, some
// unavailable, the available ones written or not.
func arbitraryPartitions(rt *rapid.T, pc uint32, replicas int, universe []NodeID) []Partition {
	out := make([]Partition, pc)
	prev := append([]NodeID{"", "gone"}, universe...)
	for i := range out {
		p := Partition{ID: uint32(i), State: PartitionActive, LeaderEpoch: rapid.Uint64Range(0, 9).Draw(rt, "epoch")}
		p.PrevPrimary = rapid.SampledFrom(prev).Draw(rt, "prev primary")
		p.PrevEpoch = rapid.Uint64Range(0, 9).Draw(rt, "prev epoch")
		if rapid.IntRange(0, 9).Draw(rt, "unavailable") == 0 {
			p.State = PartitionUnavailable
		} else {
			reps := rapid.Permutation(universe).Draw(rt, "replicas")
			reps = reps[:rapid.IntRange(1, min(replicas, len(universe))).Draw(rt, "count")]
			p.Primary, p.Backups = reps[0], reps[1:]
			p.Written = rapid.Bool().Draw(rt, "written")
		}
		out[i] = p
	}
	return out
}

// TestPropertyPlaceArbitraryInput starts from tables Place did not produce
// and removes several members at once, so that written and never-written
// partitions lose every replica. The first call may trade balance for
// keeping failed-over primaries on their survivors (when nothing fails
// over it must be balanced too); every other guarantee holds, and the
// second call (after the FSM's history update and more writes) is balanced
// and then stable.
func TestPropertyPlaceArbitraryInput(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		universe := nodeIDs(rapid.IntRange(1, 9).Draw(rt, "universe"))
		replicas := rapid.IntRange(1, 4).Draw(rt, "replicas")
		pc := rapid.Uint32Range(1, 120).Draw(rt, "partitions")
		cur := arbitraryPartitions(rt, pc, replicas, universe)
		members := rapid.SliceOfNDistinct(rapid.SampledFrom(universe), 1, len(universe), rapid.ID[NodeID]).Draw(rt, "members")
		// Without failovers nothing pins a primary, and the first call is
		// balanced too: make a surviving replica the primary of every
		// partition whose primary is gone. Partitions that lose every
		// replica, re-placed or unavailable, remain.
		noFailover := rapid.Bool().Draw(rt, "no failover")
		if noFailover {
			for i, p := range cur {
				if j := slices.IndexFunc(p.Replicas(), func(r NodeID) bool { return slices.Contains(members, r) }); j > 0 {
					reps := p.Replicas()
					cur[i].Primary = reps[j]
					cur[i].Backups = slices.Delete(reps, j, j+1)
				}
			}
		}

		next, err := Place(cur, pc, replicas, members)
		if err != nil {
			rt.Fatal(err)
		}
		if errs := checkStep(cur, next, pc, replicas, members, stepCheck{balanced: noFailover}); len(errs) > 0 {
			rt.Fatalf("first call:\n%s", strings.Join(errs, "\n"))
		}
		applyHistory(cur, next)
		drawWrites(rt, next)
		second, err := Place(next, pc, replicas, members)
		if err != nil {
			rt.Fatal(err)
		}
		if errs := checkStep(next, second, pc, replicas, members, stepCheck{balanced: true}); len(errs) > 0 {
			rt.Fatalf("second call:\n%s", strings.Join(errs, "\n"))
		}
	})
}

// TestPropertyPlaceHandoff puts partitions of a balanced table, some of
// them written, in handoff and changes the members: handoffs whose primary
// survived and whose target is eligible are kept with their primary, the
// others cancelled (also those of never-written partitions that lost every
// replica and are placed afresh); Place never creates one.
func TestPropertyPlaceHandoff(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		universe := nodeIDs(rapid.IntRange(2, 7).Draw(rt, "universe"))
		replicas := rapid.IntRange(1, 3).Draw(rt, "replicas")
		pc := rapid.Uint32Range(1, 100).Draw(rt, "partitions")
		cur := mustPlace(rt, nil, pc, replicas, universe)
		drawWrites(rt, cur)
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
		{ID: 0, Primary: "a", Backups: []NodeID{"b", "c"}, State: PartitionActive, LeaderEpoch: 4, Written: true, PrevPrimary: "x", PrevEpoch: 3},
		{ID: 1, Primary: "b", Backups: []NodeID{"a", "c"}, State: PartitionActive, LeaderEpoch: 2},
		{ID: 2, Primary: "a", Backups: []NodeID{"b"}, State: PartitionActive, LeaderEpoch: 9, Written: true, PrevPrimary: "c", PrevEpoch: 8},
		{ID: 3, State: PartitionUnavailable, LeaderEpoch: 5, PrevPrimary: "a", PrevEpoch: 4},
		{ID: 4, Primary: "a", Backups: []NodeID{"b"}, State: PartitionHandoff, HandoffTo: "d", LeaderEpoch: 7},
	}
	in := clonePartitions(cur)
	// a and b fail together: partition 0 fails over to c (its first
	// survivor), partition 1 keeps c too. Partitions 2 and 4 lose every
	// replica: 2 was written, its data is gone and it becomes unavailable;
	// 4 was never written, so nothing is lost and it is placed afresh (on
	// d, the member with the fewest primaries), its handoff cancelled.
	members := []NodeID{"c", "d"}
	next := mustPlace(t, cur, 5, 3, members)
	if !partitionsIdentical(cur, in) {
		t.Fatal("Place modified its input")
	}
	want := []Partition{
		{ID: 0, Primary: "c", Backups: []NodeID{"d"}, State: PartitionActive, LeaderEpoch: 5, Written: true, PrevPrimary: "x", PrevEpoch: 3},
		{ID: 1, Primary: "c", Backups: []NodeID{"d"}, State: PartitionActive, LeaderEpoch: 3},
		{ID: 2, State: PartitionUnavailable, LeaderEpoch: 10, PrevPrimary: "c", PrevEpoch: 8},
		{ID: 3, State: PartitionUnavailable, LeaderEpoch: 5, PrevPrimary: "a", PrevEpoch: 4},
		{ID: 4, Primary: "d", Backups: []NodeID{"c"}, State: PartitionActive, LeaderEpoch: 8},
	}
	if !partitionsIdentical(next, want) {
		for i := range want {
			t.Errorf("partition %d = %+v, want %+v", i, next[i], want[i])
		}
	}
	if errs := checkStep(cur, next, 5, 3, members, stepCheck{balanced: true}); len(errs) > 0 {
		t.Fatal(strings.Join(errs, "\n"))
	}
	if got, want := Summarize(cur, next), "4 primaries moved, 4 replicas added, 8 replicas removed, 2 partitions unavailable"; got != want {
		t.Errorf("Summarize = %q, want %q", got, want)
	}
	// Unavailable partitions stay so when members come back, epochs
	// unchanged; the re-placed one is an ordinary partition now.
	all := []NodeID{"a", "b", "c", "d"}
	later := mustPlace(t, next, 5, 3, all)
	for _, i := range []int{2, 3} {
		if !later[i].Equal(next[i]) {
			t.Errorf("partition %d changed from %+v to %+v", i, next[i], later[i])
		}
	}
	if later[4].State != PartitionActive || len(later[4].Replicas()) != 3 || !later[4].Holds("d") {
		t.Errorf("partition 4 = %+v, want active with 3 replicas, still on d", later[4])
	}
	if errs := checkStep(next, later, 5, 3, all, stepCheck{balanced: true}); len(errs) > 0 {
		t.Fatal(strings.Join(errs, "\n"))
	}
}

// TestPlaceLostUnwritten: with one replica per partition, a failure loses
// every replica of the failed member's partitions. The written ones become
// unavailable; the never-written ones are placed afresh.
func TestPlaceLostUnwritten(t *testing.T) {
	members := []NodeID{"x", "y", "z"}
	cur := mustPlace(t, nil, 6, 1, members)
	var ys []int
	for i, p := range cur {
		if p.Primary == "y" {
			ys = append(ys, i)
		}
	}
	if len(ys) != 2 {
		t.Fatalf("y holds %v, want two partitions", ys)
	}
	cur[ys[0]].Written = true
	next := mustPlace(t, cur, 6, 1, []NodeID{"x", "z"})
	if p := next[ys[0]]; p.State != PartitionUnavailable || p.Written || p.LeaderEpoch != 2 {
		t.Errorf("written partition %d = %+v, want unavailable, not written, epoch 2", ys[0], p)
	}
	if p := next[ys[1]]; p.State != PartitionActive || (p.Primary != "x" && p.Primary != "z") || p.Written || p.LeaderEpoch != 2 {
		t.Errorf("never-written partition %d = %+v, want active on x or z, epoch 2", ys[1], p)
	}
	if errs := checkStep(cur, next, 6, 1, []NodeID{"x", "z"}, stepCheck{balanced: true}); len(errs) > 0 {
		t.Fatal(strings.Join(errs, "\n"))
	}
	if pch, added := Moves(cur, next); pch != 2 || added != 1 {
		t.Errorf("Moves = %d primaries, %d slots; want 2 and 1 (the re-placed partition)", pch, added)
	}
	if b := referenceBound(cur, 6, 1, []NodeID{"x", "z"}); b.D != 2 || b.M != 1 || b.Mb != 0 {
		t.Errorf("bound %v, want D=2 M=1 Mb=0", b)
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
