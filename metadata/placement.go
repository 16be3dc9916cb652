package metadata

import (
	"fmt"
	"slices"
	"strings"
)

// Place returns a full, balanced assignment of partitionCount partitions over the
// eligible members (alive, sorted or not — sort them yourself), starting from cur
// (nil or len==partitionCount) and moving as few replicas as possible.
//
// Place is pure and deterministic: the result depends only on the arguments
// (not on the order of members) and cur is not modified. The package
// documentation (section "Placement") lists the guarantees: failover,
// unavailable partitions, handoffs, balance, the movement bound and the
// tie-breaks.
//
// Errors wrap ErrInvalidSettings, ErrNoMembers, ErrInvalidNodeID,
// ErrDuplicateMember or, for a malformed cur, ErrInvalidTable.
func Place(cur []Partition, partitionCount uint32, replicas int, members []NodeID) ([]Partition, error) {
	ids, err := checkPlaceInputs(cur, partitionCount, replicas, members)
	if err != nil {
		return nil, err
	}
	if len(cur) == 0 {
		cur = nil
	}
	pl := newPlacer(cur, partitionCount, replicas, ids)
	pl.assignPrimaries()
	pl.balancePrimaries()
	pl.fillBackups()
	pl.balanceBackups()
	return pl.result(cur), nil
}

// checkPlaceInputs validates Place's arguments and returns the member ids
// sorted.
func checkPlaceInputs(cur []Partition, partitionCount uint32, replicas int, members []NodeID) ([]NodeID, error) {
	if err := ValidateSettings(partitionCount, replicas); err != nil {
		return nil, err
	}
	if len(members) == 0 {
		return nil, fmt.Errorf("%w: placement needs at least one alive member", ErrNoMembers)
	}
	ids := slices.Clone(members)
	slices.Sort(ids)
	for i, id := range ids {
		if err := ValidateNodeID(id); err != nil {
			return nil, err
		}
		if i > 0 && ids[i-1] == id {
			return nil, fmt.Errorf("%w: %q", ErrDuplicateMember, id)
		}
	}
	if len(cur) == 0 {
		return ids, nil
	}
	if len(cur) != int(partitionCount) {
		return nil, fmt.Errorf("%w: %d partitions, want %d", ErrInvalidTable, len(cur), partitionCount)
	}
	var errs []string
	for i, p := range cur {
		if err := checkPartition(i, p); err != "" && len(errs) < 10 {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("%w: %s", ErrInvalidTable, strings.Join(errs, "; "))
	}
	return ids, nil
}

// checkPartition returns what is wrong with cur[i] on its own (membership is
// not checked: Place drops replicas on members that are not eligible), or "".
func checkPartition(i int, p Partition) string {
	if p.ID != uint32(i) {
		return fmt.Sprintf("partition at index %d has id %d", i, p.ID)
	}
	switch p.State {
	case PartitionActive, PartitionHandoff:
		if p.Primary == "" {
			return fmt.Sprintf("partition %d: %s without primary", i, p.State)
		}
	case PartitionUnavailable:
		if p.Primary != "" || len(p.Backups) > 0 {
			return fmt.Sprintf("partition %d: unavailable but has replicas", i)
		}
	default:
		return fmt.Sprintf("partition %d: unknown state %d", i, p.State)
	}
	if (p.State == PartitionHandoff) != (p.HandoffTo != "") {
		return fmt.Sprintf("partition %d: handoff target %q in state %s", i, p.HandoffTo, p.State)
	}
	if p.HandoffTo != "" && p.HandoffTo == p.Primary {
		return fmt.Sprintf("partition %d: handoff target %q is the primary", i, p.HandoffTo)
	}
	for j, r := range p.Backups {
		if r == "" {
			return fmt.Sprintf("partition %d: empty backup", i)
		}
		if r == p.Primary || slices.Contains(p.Backups[:j], r) {
			return fmt.Sprintf("partition %d: member %q holds two replicas", i, r)
		}
	}
	return ""
}

// Moves compares two assignments of the same partitions (before may be nil
// for a new cluster) and counts the partitions whose primary changed and the
// replica slots added: (partition, member) pairs where the member holds a
// replica of the partition after but not before, that is, copies of a
// partition that must be made.
func Moves(before, after []Partition) (primaryChanges, replicaSlotsAdded int) {
	c := countChanges(before, after)
	return c.primaries, c.added
}

// Summarize describes the change from before to after (before may be nil)
// in one short line for logs and the reason of a routing change, e.g.
// "12 primaries moved, 24 replicas added, 20 replicas removed, 3 partitions
// unavailable". The unavailable count is that of after.
func Summarize(before, after []Partition) string {
	c := countChanges(before, after)
	if c.primaries == 0 && c.added == 0 && c.removed == 0 && c.unavailable == 0 && c.other == 0 {
		return "no change"
	}
	parts := []string{
		plural(c.primaries, "primary", "primaries") + " moved",
		plural(c.added, "replica", "replicas") + " added",
		plural(c.removed, "replica", "replicas") + " removed",
		plural(c.unavailable, "partition", "partitions") + " unavailable",
	}
	return strings.Join(parts, ", ")
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

type changeCount struct {
	primaries, added, removed, unavailable, other int
}

func countChanges(before, after []Partition) changeCount {
	var c changeCount
	for i, a := range after {
		var b Partition
		if i < len(before) {
			b = before[i]
		}
		if a.Primary != b.Primary {
			c.primaries++
		}
		if a.State == PartitionUnavailable {
			c.unavailable++
		}
		for _, r := range a.Replicas() {
			if !b.Holds(r) {
				c.added++
			}
		}
		for _, r := range b.Replicas() {
			if !a.Holds(r) {
				c.removed++
			}
		}
		if !a.Equal(b) {
			c.other++
		}
	}
	return c
}

// placing is the working state of one partition during Place. Members are
// named by their index in the sorted id list.
type placing struct {
	// reps holds the primary followed by the backups; empty when the
	// partition is unavailable or not assigned yet.
	reps []int32
	// orig holds the replicas the partition had before this call that are
	// still eligible: keeping or re-adding them costs no copy.
	orig []int32
	// handoff is the member taking over as primary, or -1.
	handoff int32
	// unavailable partitions get nothing.
	unavailable bool
	// failedOver partitions lost their primary in this call: their primary
	// may only be a member of orig, one that holds the data.
	failedOver bool
}

// canLead reports whether m may become p's primary: any member, except that
// a partition that failed over keeps a surviving replica as primary.
func (p *placing) canLead(m int32) bool {
	return !p.failedOver || slices.Contains(p.orig, m)
}

// keepsOld reports whether p still holds one of the replicas it had before
// this call (or needs not: k < 2, or it had none).
func (p *placing) keepsOld(k int) bool {
	if k < 2 || len(p.orig) == 0 {
		return true
	}
	for _, r := range p.reps {
		if slices.Contains(p.orig, r) {
			return true
		}
	}
	return false
}

// canDrop reports whether m may leave p: p keeps at least one replica it
// had before this call (when it has room for two), so that a partition is
// never moved wholesale to members that hold none of its data.
func (p *placing) canDrop(m int32, k int) bool {
	if k < 2 || !slices.Contains(p.orig, m) {
		return true
	}
	for _, r := range p.reps {
		if r != m && slices.Contains(p.orig, r) {
			return true
		}
	}
	return false
}

// tally counts one role (primary or backup) per member against its balanced
// target: every member at floor or ceil, with exactly rem members at ceil
// once the role's total is reached.
type tally struct {
	count []int
	floor int
	ceil  int
	// rem is total mod members: how many members sit at ceil when balanced.
	rem int
	// high counts the members with count >= ceil (used when rem > 0).
	high int
}

func newTally(members, total int) tally {
	t := tally{count: make([]int, members), floor: total / members, rem: total % members}
	t.ceil = t.floor
	if t.rem > 0 {
		t.ceil++
	}
	return t
}

// init recomputes high after count was filled in directly.
func (t *tally) init() {
	t.high = 0
	for _, c := range t.count {
		if c >= t.ceil {
			t.high++
		}
	}
}

func (t *tally) inc(m int32) {
	t.count[m]++
	if t.count[m] == t.ceil {
		t.high++
	}
}

func (t *tally) dec(m int32) {
	if t.count[m] == t.ceil {
		t.high--
	}
	t.count[m]--
}

// giver reports whether taking one unit away from m brings the tally closer
// to balance (lowers excess by one).
func (t *tally) giver(m int32) bool {
	c := t.count[m]
	if t.rem == 0 {
		return c > t.floor
	}
	return c > t.ceil || (c == t.ceil && t.high > t.rem)
}

// taker reports whether m may receive one unit without raising excess.
func (t *tally) taker(m int32) bool {
	c := t.count[m]
	if t.rem == 0 {
		return c < t.floor
	}
	return c < t.floor || (c == t.floor && t.high < t.rem)
}

// excess is the minimum number of units that must move from one member to
// another to balance the tally (once the total is reached): the sum over
// members of count minus target, with the ceil targets given to the members
// that hold the most.
func (t *tally) excess() int {
	return excessOf(t.count, t.floor, t.rem)
}

func excessOf(count []int, floor, rem int) int {
	e, high := 0, 0
	ceil := floor
	if rem > 0 {
		ceil++
	}
	for _, c := range count {
		if c > ceil {
			e += c - ceil
		}
		if c >= ceil {
			high++
		}
	}
	if rem > 0 && high > rem {
		e += high - rem
	}
	return e
}

// placer is the working state of one Place call.
type placer struct {
	ids   []NodeID
	k     int // replicas per available partition: min(replicas, members)
	parts []placing
	prim  tally
	back  tally
	// mark and stamp make "is m a replica of the partition" O(1) while
	// scanning all members: mark[m] == stamp for the marked partition.
	mark  []uint32
	stamp uint32
}

// newPlacer builds the working state from cur: replicas on members that are
// not eligible are dropped, the first surviving replica becomes primary,
// written partitions that lost every replica become unavailable (never
// written ones are left empty, to be placed afresh), excess backups are
// trimmed from the end and handoffs that cannot proceed are cancelled.
func newPlacer(cur []Partition, partitionCount uint32, replicas int, ids []NodeID) *placer {
	n := len(ids)
	index := make(map[NodeID]int32, n)
	for i, id := range ids {
		index[id] = int32(i)
	}
	pl := &placer{ids: ids, k: min(replicas, n), parts: make([]placing, partitionCount), mark: make([]uint32, n)}
	// One backing array for all working replica lists.
	buf := make([]int32, 0, int(partitionCount)*pl.k)
	var orig []int32
	if cur != nil {
		orig = make([]int32, 0, int(partitionCount)*pl.k)
	}
	available := 0
	for i := range pl.parts {
		pp := &pl.parts[i]
		pp.handoff = -1
		pp.reps = buf[len(buf) : len(buf) : len(buf)+pl.k]
		buf = buf[:len(buf)+pl.k]
		if cur == nil {
			available++
			continue
		}
		c := cur[i]
		if c.State == PartitionUnavailable {
			pp.unavailable = true
			continue
		}
		if m, ok := index[c.Primary]; ok {
			pp.reps = append(pp.reps, m)
		}
		for _, r := range c.Backups {
			if m, ok := index[r]; ok && len(pp.reps) < pl.k {
				pp.reps = append(pp.reps, m)
			}
		}
		if len(pp.reps) == 0 {
			if !c.Written {
				// Never written: nothing was lost with its replicas, so it
				// is placed afresh like a partition of a new cluster.
				available++
				continue
			}
			pp.unavailable = true
			continue
		}
		available++
		pp.orig = orig[len(orig) : len(orig)+len(pp.reps) : len(orig)+len(pp.reps)]
		copy(pp.orig, pp.reps)
		orig = orig[:len(orig)+len(pp.reps)]
		pp.failedOver = ids[pp.reps[0]] != c.Primary
		if c.State == PartitionHandoff && ids[pp.reps[0]] == c.Primary {
			if m, ok := index[c.HandoffTo]; ok {
				pp.handoff = m
			}
		}
	}
	pl.prim = newTally(n, available)
	pl.back = newTally(n, available*(pl.k-1))
	for i := range pl.parts {
		for j, m := range pl.parts[i].reps {
			if j == 0 {
				pl.prim.count[m]++
			} else {
				pl.back.count[m]++
			}
		}
	}
	pl.prim.init()
	pl.back.init()
	return pl
}

// markPart sets mark so that mark[m] == stamp exactly for the replicas of p.
func (pl *placer) markPart(p *placing) {
	pl.stamp++
	if pl.stamp == 0 { // wrapped: clear
		clear(pl.mark)
		pl.stamp = 1
	}
	for _, m := range p.reps {
		pl.mark[m] = pl.stamp
	}
}

// lowest returns the member that is not a replica of p with the lowest count
// in t (ties: lowest id), or -1. With takersOnly it considers only members
// that are takers of t.
func (pl *placer) lowest(p *placing, t *tally, takersOnly bool) int32 {
	pl.markPart(p)
	best := int32(-1)
	for m := range int32(len(pl.ids)) {
		if pl.mark[m] == pl.stamp || (takersOnly && !t.taker(m)) {
			continue
		}
		if best < 0 || t.count[m] < t.count[best] {
			best = m
		}
	}
	return best
}

// assignPrimaries gives every available partition without replicas (a new
// cluster, or a never-written partition that lost every replica) a
// primary: the member with the fewest primaries, ties by id.
func (pl *placer) assignPrimaries() {
	for i := range pl.parts {
		pp := &pl.parts[i]
		if pp.unavailable || len(pp.reps) > 0 {
			continue
		}
		m := pl.lowest(pp, &pl.prim, false)
		pp.reps = append(pp.reps, m)
		pl.prim.inc(m)
	}
}

// movable reports whether p's primary may be changed by balancing.
func (p *placing) movable() bool {
	return !p.unavailable && len(p.reps) > 0 && p.handoff < 0
}

// swapCandidate returns the index in p.reps of the backup that should take
// over as primary from an over-loaded primary, or -1: a backup that is a
// primary taker, preferring fewer primaries, then more backups, then the
// lower id.
func (pl *placer) swapCandidate(p *placing) int {
	best := -1
	for j := 1; j < len(p.reps); j++ {
		v := p.reps[j]
		if !pl.prim.taker(v) || !p.canLead(v) {
			continue
		}
		if best < 0 {
			best = j
			continue
		}
		b := p.reps[best]
		switch {
		case pl.prim.count[v] != pl.prim.count[b]:
			if pl.prim.count[v] < pl.prim.count[b] {
				best = j
			}
		case pl.back.count[v] != pl.back.count[b]:
			if pl.back.count[v] > pl.back.count[b] {
				best = j
			}
		case v < b:
			best = j
		}
	}
	return best
}

// swap makes reps[j] the primary of p and the old primary a backup in its
// place: no data moves.
func (pl *placer) swap(p *placing, j int) {
	u, v := p.reps[0], p.reps[j]
	p.reps[0], p.reps[j] = v, u
	pl.prim.dec(u)
	pl.prim.inc(v)
	pl.back.dec(v)
	pl.back.inc(u)
}

// balancePrimaries brings every member's primary count to floor or ceil.
// Every step takes one primary from a giver and gives it to a taker, which
// lowers the primary excess by one; the steps are tried in three rounds,
// cheapest first, each over the partitions in id order until nothing
// changes:
//
//  1. swap: a backup that is a taker becomes primary and the old primary
//     its backup; no data moves;
//  2. promote-fill: in a partition that misses a backup anyway, a taker
//     that holds nothing of it becomes primary and the old primary a
//     backup; the copy it needs is the one the missing backup needed;
//  3. move: the primary is handed to the least-loaded taker that holds
//     nothing of the partition, which costs one copy.
//
// A later round still prefers an earlier round's step in each partition.
func (pl *placer) balancePrimaries() {
	for round := 0; round < 3; round++ {
		for changed := true; changed; {
			changed = false
			for i := range pl.parts {
				pp := &pl.parts[i]
				if !pp.movable() || !pl.prim.giver(pp.reps[0]) {
					continue
				}
				if j := pl.swapCandidate(pp); j > 0 {
					pl.swap(pp, j)
					changed = true
					continue
				}
				u := pp.reps[0]
				if round == 0 || (round == 1 && len(pp.reps) == pl.k) || pp.failedOver ||
					(len(pp.reps) == pl.k && !pp.canDrop(u, pl.k)) {
					continue
				}
				w := pl.lowest(pp, &pl.prim, true)
				if w < 0 {
					continue
				}
				pl.prim.dec(u)
				pl.prim.inc(w)
				pp.reps[0] = w
				if len(pp.reps) < pl.k {
					pp.reps = append(pp.reps, u)
					pl.back.inc(u)
				}
				changed = true
			}
		}
	}
}

// fillBackups gives every available partition k replicas: each missing
// backup goes to the member with the fewest backups that holds nothing of
// the partition, ties by id.
func (pl *placer) fillBackups() {
	for i := range pl.parts {
		pp := &pl.parts[i]
		if pp.unavailable {
			continue
		}
		for len(pp.reps) < pl.k {
			m := pl.lowest(pp, &pl.back, false)
			if !pl.back.taker(m) {
				m = pl.forcedFill(pp, m)
			}
			pp.reps = append(pp.reps, m)
			pl.back.inc(m)
		}
	}
}

// forcedFill picks the member for a missing backup of p when every backup
// taker already holds a replica of p, so whoever gets it goes over its
// target and one backup must move later. If p's primary is a backup taker
// at the primary ceil, a member at the primary floor is preferred (fewest
// backups, then lowest id): roleSwaps can then swap the two roles in p and
// nothing more moves. Otherwise it keeps def.
func (pl *placer) forcedFill(p *placing, def int32) int32 {
	w := p.reps[0]
	if pl.prim.rem == 0 || !p.movable() || !pl.back.taker(w) || pl.prim.count[w] != pl.prim.ceil {
		return def
	}
	pl.markPart(p)
	best := int32(-1)
	for m := range int32(len(pl.ids)) {
		if pl.mark[m] == pl.stamp || pl.prim.count[m] != pl.prim.floor {
			continue
		}
		if best < 0 || pl.back.count[m] < pl.back.count[best] {
			best = m
		}
	}
	if best < 0 {
		return def
	}
	return best
}

// isNew reports whether m holding a replica of p costs a copy.
func (p *placing) isNew(m int32) bool { return !slices.Contains(p.orig, m) }

// balanceBackups brings every member's backup count to floor or ceil by
// moving backups from over-loaded members to under-loaded ones that hold
// nothing of the partition. Backups added by this call are moved first
// (re-routing a copy not yet made costs nothing), then old ones. When no
// such direct move is left but the counts are not balanced it uses a
// role swap plus a move (see swapMove) and, when handoffs or failovers pin
// the primaries that swapMove needs, a chain of moves (see chain).
func (pl *placer) balanceBackups() {
	for {
		pl.directBackupMoves(true)
		pl.roleSwaps()
		pl.directBackupMoves(false)
		if pl.back.excess() == 0 || !(pl.swapMove() || pl.chain()) {
			return
		}
	}
}

// roleSwaps fixes backup imbalance without moving data where primary
// balance allows it: in a partition whose primary w is a backup taker at
// the primary ceil and that has a backup u that is a backup giver at the
// primary floor, it swaps the roles of u and w. Primary counts stay
// balanced (the ceil moves from w to u).
func (pl *placer) roleSwaps() {
	if pl.prim.rem == 0 {
		return
	}
	for changed := true; changed; {
		changed = false
		for i := range pl.parts {
			pp := &pl.parts[i]
			if !pp.movable() {
				continue
			}
			w := pp.reps[0]
			if !pl.back.taker(w) || pl.prim.count[w] != pl.prim.ceil {
				continue
			}
			for j := 1; j < len(pp.reps); j++ {
				u := pp.reps[j]
				if pl.back.giver(u) && pl.prim.count[u] == pl.prim.floor && pp.canLead(u) {
					pl.swap(pp, j)
					changed = true
					break
				}
			}
		}
	}
}

// directBackupMoves moves backups of givers to the least-loaded taker that
// holds nothing of the partition, until no such move is left. With onlyNew
// it moves only backups added by this call.
func (pl *placer) directBackupMoves(onlyNew bool) {
	for changed := true; changed; {
		changed = false
		for i := range pl.parts {
			pp := &pl.parts[i]
			for j := 1; j < len(pp.reps); j++ {
				u := pp.reps[j]
				if !pl.back.giver(u) || (onlyNew && !pp.isNew(u)) || !pp.canDrop(u, pl.k) {
					continue
				}
				if w := pl.lowest(pp, &pl.back, true); w >= 0 {
					pl.back.dec(u)
					pl.back.inc(w)
					pp.reps[j] = w
					changed = true
				}
			}
		}
	}
}

// swapMove moves one backup from a giver u to a taker w when every
// partition u backs up already holds w. Then (with primaries balanced) w
// is the primary of at least two of them, and u is the primary of some
// partition y without w, because u holds more replicas than w. So: in a
// partition x with primary w and backup u, swap their roles, and hand y's
// primary from u to w. Primary counts are unchanged, u has one backup
// less and w one more, at the cost of one copy (w into y) and two primary
// changes. It reports whether it found one; choices go by member id, then
// partition id.
func (pl *placer) swapMove() bool {
	n := int32(len(pl.ids))
	xFor := make([]int, n) // per taker w: a partition with primary w and backup u
	yFor := make([]int, n) // per taker w: a partition with primary u, without w
	for u := range n {
		if !pl.back.giver(u) {
			continue
		}
		for w := range n {
			xFor[w], yFor[w] = -1, -1
		}
		for i := range pl.parts {
			pp := &pl.parts[i]
			if !pp.movable() {
				continue
			}
			if pp.reps[0] == u {
				if pp.failedOver || !pp.canDrop(u, pl.k) {
					continue
				}
				pl.markPart(pp)
				for w := range n {
					if yFor[w] < 0 && pl.mark[w] != pl.stamp {
						yFor[w] = i
					}
				}
			} else if w := pp.reps[0]; xFor[w] < 0 && pp.canLead(u) && slices.Contains(pp.reps[1:], u) {
				xFor[w] = i
			}
		}
		best := int32(-1)
		for w := range n {
			if xFor[w] < 0 || yFor[w] < 0 || !pl.back.taker(w) {
				continue
			}
			if best < 0 || pl.back.count[w] < pl.back.count[best] {
				best = w
			}
		}
		if best < 0 {
			continue
		}
		x, y := &pl.parts[xFor[best]], &pl.parts[yFor[best]]
		pl.swap(x, slices.Index(x.reps, u))
		pl.prim.dec(u)
		pl.prim.inc(best)
		y.reps[0] = best
		return true
	}
	return false
}

// chainState is a state of chain's search: member m reached after moving
// old (not added by this call) backups `old` times, 0 or 1.
type chainState struct {
	m   int32
	old int
}

// chainStep is how a chainState was reached: by moving the backup at
// reps[slot] of partition part away from state from.
type chainStep struct {
	from chainState
	part int
	slot int
}

// chain is the last resort, for when primaries pinned by handoffs (or kept
// on the survivors of a failover) leave swapMove nothing to do. It
// searches, breadth first from the over-loaded members, a shortest chain
// g -> v1 -> ... -> t where each arrow moves one backup of the left member
// to the right member (which holds nothing of that partition), ending at
// an under-loaded member t, and at most one arrow moves an old backup (so
// the chain costs at most one copy, like any other step). Applied, g has
// one backup less, t one more, the members in between keep their counts.
// It reports whether it found such a chain.
func (pl *placer) chain() bool {
	n := int32(len(pl.ids))
	byMember := make([][]int, n) // partitions where the member is a backup
	for i := range pl.parts {
		for _, m := range pl.parts[i].reps[min(1, len(pl.parts[i].reps)):] {
			byMember[m] = append(byMember[m], i)
		}
	}
	prev := make(map[chainState]chainStep)
	var queue []chainState
	for m := range n {
		if pl.back.giver(m) {
			st := chainState{m: m}
			prev[st] = chainStep{from: chainState{m: -1}}
			queue = append(queue, st)
		}
	}
	end := chainState{m: -1}
	for len(queue) > 0 && end.m < 0 {
		cur := queue[0]
		queue = queue[1:]
		for _, i := range byMember[cur.m] {
			pp := &pl.parts[i]
			old := cur.old
			if !pp.isNew(cur.m) {
				old++
			}
			if old > 1 || !pp.canDrop(cur.m, pl.k) {
				continue
			}
			slot := slices.Index(pp.reps, cur.m)
			pl.markPart(pp)
			for v := range n {
				next := chainState{m: v, old: old}
				if _, seen := prev[next]; seen || pl.mark[v] == pl.stamp {
					continue
				}
				prev[next] = chainStep{from: cur, part: i, slot: slot}
				queue = append(queue, next)
				if pl.back.taker(v) && (end.m < 0 || v < end.m) {
					end = next
				}
			}
		}
	}
	if end.m < 0 {
		return false
	}
	// Check the chain before applying it: a simple path in members, and no
	// partition left without one of its old replicas.
	var steps []chainStep
	var tos []int32
	visited := make(map[int32]bool)
	for st := end; st.m >= 0; st = prev[st].from {
		if visited[st.m] {
			return false
		}
		visited[st.m] = true
		if prev[st].from.m >= 0 {
			steps = append(steps, prev[st])
			tos = append(tos, st.m)
		}
	}
	for j, step := range steps {
		pl.parts[step.part].reps[step.slot] = tos[j]
	}
	for _, step := range steps {
		if pp := &pl.parts[step.part]; !pp.keepsOld(pl.k) {
			// Undo: the chain dropped every old replica of a partition.
			for j := len(steps) - 1; j >= 0; j-- {
				pl.parts[steps[j].part].reps[steps[j].slot] = steps[j].from.m
			}
			return false
		}
	}
	pl.back.dec(steps[len(steps)-1].from.m)
	pl.back.inc(end.m)
	return true
}

// result renders the working state as partitions, bumping LeaderEpoch of
// every partition whose primary changed.
func (pl *placer) result(cur []Partition) []Partition {
	out := make([]Partition, len(pl.parts))
	nb := 0
	for i := range pl.parts {
		nb += max(0, len(pl.parts[i].reps)-1)
	}
	buf := make([]NodeID, nb)
	for i := range pl.parts {
		pp := &pl.parts[i]
		var before Partition
		if cur != nil {
			before = cur[i]
		}
		p := Partition{ID: uint32(i), State: PartitionActive, LeaderEpoch: before.LeaderEpoch}
		if pp.unavailable {
			p.State = PartitionUnavailable
			p.Backups = buf[:0:0]
		} else {
			p.Primary = pl.ids[pp.reps[0]]
			nb := len(pp.reps) - 1
			p.Backups = buf[:nb:nb]
			buf = buf[nb:]
			for j, m := range pp.reps[1:] {
				p.Backups[j] = pl.ids[m]
			}
			if pp.handoff >= 0 {
				p.State = PartitionHandoff
				p.HandoffTo = pl.ids[pp.handoff]
			}
		}
		if p.Primary != before.Primary {
			p.LeaderEpoch++
		}
		// History and data state travel with the partition (the FSM owns
		// them; placement only keeps them so unchanged partitions compare
		// equal).
		p.PrevPrimary, p.PrevEpoch = before.PrevPrimary, before.PrevEpoch
		p.Written = before.Written && p.State != PartitionUnavailable
		out[i] = p
	}
	return out
}
