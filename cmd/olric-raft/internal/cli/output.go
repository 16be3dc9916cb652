package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/olric-raft/olric-raft/client"
)

// print writes v as indented JSON with -o json, or as text with -o table.
func (o *operator) print(v any, table func(w *tabw)) error {
	if o.output == "json" {
		b, err := json.MarshalIndent(v, "", "  ")
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(o.d.Stdout, "%s\n", b)
		return err
	}
	w := &tabw{tw: tabwriter.NewWriter(o.d.Stdout, 0, 4, 2, ' ', 0)}
	table(w)
	return w.tw.Flush()
}

// tabw writes lines and tab-separated rows aligned in columns.
type tabw struct{ tw *tabwriter.Writer }

// line writes one line of text (tabs in it align too).
func (w *tabw) line(format string, args ...any) {
	fmt.Fprintf(w.tw, format+"\n", args...)
}

// row writes one table row; empty cells show as "-".
func (w *tabw) row(cells ...any) {
	s := make([]string, len(cells))
	for i, c := range cells {
		s[i] = fmt.Sprint(c)
		if s[i] == "" {
			s[i] = "-"
		}
	}
	_, _ = io.WriteString(w.tw, strings.Join(s, "\t")+"\n")
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func orDash(s []string) string {
	if len(s) == 0 {
		return "-"
	}
	return strings.Join(s, ",")
}

func printMembers(w *tabw, ms *client.Members) {
	w.line("routing version: %d", ms.RoutingVersion)
	w.line("")
	w.row("ID", "STATE", "GOSSIP", "RAFT", "LEADER", "PRIMARIES", "BACKUPS", "CLUSTER_ADDR", "GOSSIP_ADDR", "HTTP_ADDR")
	for _, m := range ms.Members {
		leader := ""
		if m.Leader {
			leader = "*"
		}
		w.row(m.ID, m.State, m.Gossip, m.RaftSuffrage, leader, m.Primaries, m.Backups, m.ClusterAddr, m.GossipAddr, m.HTTPAddr)
	}
}

// printRouting writes the summary (version, partition count, replicas,
// and, for a whole table, every member's primaries and backups) and then
// one row per partition.
func printRouting(w *tabw, rt *client.Routing, whole bool) {
	w.line("routing version:\t%d", rt.RoutingVersion)
	w.line("partition count:\t%d", rt.PartitionCount)
	w.line("replicas:\t%d", rt.Replicas)
	w.line("")
	states := make(map[string]client.Member, len(rt.Members))
	for _, m := range rt.Members {
		states[m.ID] = m
	}
	if whole {
		loads := rt.Loads()
		w.row("MEMBER", "STATE", "VOTER", "PRIMARIES", "BACKUPS")
		for _, id := range rt.MemberIDs() {
			m, ok := states[id]
			state, voter := "unknown", "-"
			if ok {
				state, voter = m.State, yesNo(m.Voter)
			}
			w.row(id, state, voter, loads[id].Primaries, loads[id].Backups)
		}
		w.line("")
	}
	w.row("PARTITION", "PRIMARY", "BACKUPS", "STATE", "EPOCH", "HANDOFF_TO")
	for _, p := range rt.Partitions {
		w.row(p.ID, p.Primary, orDash(p.Backups), p.State, p.LeaderEpoch, p.HandoffTo)
	}
}

// unavailableWarning is the line status prints while partitions are
// unavailable: what it means, the safe fix and the last resort.
func unavailableWarning(n int) string {
	what := fmt.Sprintf("%d partitions are", n)
	if n == 1 {
		what = "1 partition is"
	}
	return fmt.Sprintf("WARNING: %s UNAVAILABLE: no replica is left, their keys cannot be read or written. "+
		"Bring back the members that held them if you can (see 'olric-raft routing'); "+
		"as a last resort 'olric-raft partition force-assign --all-unavailable --yes' serves them again EMPTY and their data is lost for good.", what)
}

func printStatus(w *tabw, st *client.Status) {
	if st.Unavailable > 0 {
		w.line("%s", unavailableWarning(st.Unavailable))
		w.line("")
	}
	leader := "none"
	if st.Leader != nil {
		leader = fmt.Sprintf("%s (%s, term %d)", st.Leader.ID, st.Leader.ClusterAddr, st.Leader.Term)
	}
	uptime := (time.Duration(st.UptimeSeconds * float64(time.Second))).Round(time.Second)
	for _, kv := range [][2]any{
		{"node id", st.NodeID},
		{"incarnation", st.Incarnation},
		{"state", st.State},
		{"ready", yesNo(st.Ready)},
		{"raft state", st.RaftState},
		{"voter", yesNo(st.Voter)},
		{"leader", leader},
		{"term", st.Term},
		{"last log index", st.LastLogIndex},
		{"commit index", st.CommitIndex},
		{"applied index", st.AppliedIndex},
		{"routing version", st.RoutingVersion},
		{"members", fmt.Sprintf("%d (%d alive, %d voters, %d in gossip)", st.Members, st.AliveMembers, st.Voters, st.GossipMembers)},
		{"partitions", fmt.Sprintf("%d (%d unavailable, %d in handoff, %d backups syncing)", st.Partitions, st.Unavailable, st.Handoffs, st.SyncingBackups)},
		{"held here", fmt.Sprintf("%d primaries, %d backups", st.Primaries, st.Backups)},
		{"uptime", uptime},
	} {
		w.line("%s:\t%v", kv[0], kv[1])
	}
}

// printForceAssign reports what a force-assign did.
func printForceAssign(w *tabw, res *client.ForceAssignResult) {
	n := len(res.Partitions)
	if n == 0 {
		w.line("force-assigned 0 partitions at routing version %d: no partition was unavailable", res.RoutingVersion)
		return
	}
	ids := make([]string, n)
	for i, p := range res.Partitions {
		ids[i] = strconv.FormatUint(uint64(p), 10)
	}
	if n == 1 {
		w.line("force-assigned 1 partition at routing version %d: %s", res.RoutingVersion, ids[0])
		w.line("its data is lost; it is served again, empty (see 'olric-raft routing' for its new owner)")
		return
	}
	w.line("force-assigned %d partitions at routing version %d: %s", n, res.RoutingVersion, strings.Join(ids, ", "))
	w.line("their data is lost; they are served again, empty (see 'olric-raft routing' for their new owners)")
}
