package resp

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cespare/xxhash/v2"

	"github.com/olric-raft/olric-raft/dataplane"
	"github.com/olric-raft/olric-raft/metadata"
	"github.com/olric-raft/olric-raft/node"
)

// What Olric 0.6's Go client (github.com/olric-data/olric, ClusterClient)
// expects on the wire, beyond the argument order of the DM.* commands:
//
//   - Durations in seconds are Go float64s (time.Duration.Seconds()),
//     so "0.5" as well as "10": DM.PUT's EX and EXAT, DM.EXPIRE,
//     DM.LOCK's wait and EX, DM.LOCKLEASE.
//   - DM.GET and DM.GETPUT take a trailing RW: the reply is then the entry
//     in Olric's storage encoding (olricEntry), which the client decodes.
//   - DM.SCAN partID dmap cursor [MATCH p] [COUNT n] [RC] scans one
//     partition; RC asks a backup.
//   - CLUSTER.ROUTINGTABLE: [partID, [primary owners], [backup owners]] by
//     address; the client dials the last primary owner of a key's
//     partition, xxhash64(dmap+key) modulo the number of entries.
//   - CLUSTER.MEMBERS: [name (the address), birthdate (int), "true" on the
//     coordinator]; the client dials every name.
//   - STATS [CR]: one bulk string of JSON (Olric's stats.Stats).

// parseSeconds parses a non-negative number of seconds, fractions allowed
// (Olric's float64 seconds), rounded to the millisecond.
func parseSeconds(b []byte) (time.Duration, bool) {
	f, ok := parseFloat(b)
	if !ok || f < 0 || f > float64(dataplane.MaxTTL/time.Second) {
		return 0, false
	}
	return time.Duration(math.Round(f*1000)) * time.Millisecond, true
}

// rawFlag reports whether args (after the fixed ones) is Olric's "RW"
// (raw entry) flag; it answers a syntax error for anything else.
func (x *call) rawFlag(args [][]byte) (raw, ok bool) {
	switch {
	case len(args) == 0:
		return false, true
	case len(args) == 1 && is(args[0], "rw"):
		return true, true
	}
	x.syntax()
	return false, false
}

// olricEntry encodes a value as Olric 0.6's storage entry
// (internal/kvstore/entry): key length (1 byte), key, TTL (8 bytes big
// endian: the expiry in unix milliseconds, 0 for none), timestamp and last
// access (8 bytes each, unix nanoseconds; 0: not tracked here), value
// length (4 bytes), value. A key longer than 255 bytes cannot be encoded
// (Olric's limit) and is left out: the client does not need it.
func olricEntry(key string, value []byte, ttl time.Duration, now time.Time) []byte {
	if len(key) > math.MaxUint8 {
		key = ""
	}
	buf := make([]byte, 0, 29+len(key)+len(value))
	buf = append(buf, byte(len(key)))
	buf = append(buf, key...)
	var expiry int64
	if ttl > 0 {
		expiry = now.Add(ttl).UnixMilli()
	}
	buf = binary.BigEndian.AppendUint64(buf, uint64(expiry))
	buf = binary.BigEndian.AppendUint64(buf, 0) // timestamp
	buf = binary.BigEndian.AppendUint64(buf, 0) // last access
	buf = binary.BigEndian.AppendUint32(buf, uint32(len(value)))
	return append(buf, value...)
}

// isUint reports whether b is an unsigned decimal integer.
func isUint(b []byte) bool {
	_, err := strconv.ParseUint(string(b), 10, 64)
	return err == nil && len(b) <= 20
}

// isOlricScan tells Olric's DM.SCAN (partID dmap cursor ...) from ours
// (dmap cursor [MATCH p] [COUNT n]): only Olric's has a number third.
func isOlricScan(args [][]byte) bool {
	return len(args) >= 3 && isUint(args[0]) && isUint(args[2])
}

// maxRegexpLen bounds the MATCH pattern of Olric's DM.SCAN.
const maxRegexpLen = 4096

// dmScanPartition: DM.SCAN partID dmap cursor [MATCH re] [COUNT n] [RC] ->
// [cursor, [keys...]], one partition; cursor 0 when the partition is done.
// As in Olric, MATCH is a Go regular expression (unanchored), not a glob,
// and COUNT bounds the keys looked at, so a page may be empty before the
// end. RC (scan a backup) answers an empty, finished page: the primary's
// scan already returns every key of the partition.
func (x *call) dmScanPartition() {
	pid, _ := strconv.ParseUint(string(x.args[0]), 10, 64)
	dmap := string(x.args[1])
	var match *regexp.Regexp
	count, replica := int64(defaultScanCount), false
	opts := x.args[3:]
	for i := 0; i < len(opts); i++ {
		switch {
		case is(opts[i], "rc"):
			replica = true
			continue
		case i+1 >= len(opts):
			x.syntax()
			return
		case is(opts[i], "match"):
			if len(opts[i+1]) > maxRegexpLen {
				x.w.WriteError("ERR MATCH pattern too long")
				return
			}
			re, err := regexp.Compile(string(opts[i+1]))
			if err != nil {
				x.w.WriteError("ERR invalid MATCH regexp: " + sanitize(err.Error()))
				return
			}
			match = re
		case is(opts[i], "count"):
			n, ok := x.scanCount(opts[i+1])
			if !ok {
				return
			}
			count = n
		default:
			x.syntax()
			return
		}
		i++
	}
	if t := x.s.c.Routing(); pid >= uint64(t.PartitionCount) {
		x.w.WriteError("ERR invalid partition id")
		return
	}
	prefix := strconv.FormatUint(pid, 10) + ":"
	inner, ok := x.s.decodePartitionCursor(prefix, x.args[2])
	if !ok {
		x.w.WriteError("ERR invalid cursor")
		return
	}
	var keys []string
	if !replica {
		resp, err := x.do(dataplane.Request{Op: dataplane.OpScan, DMap: dmap, Partition: uint32(pid),
			Cursor: inner, Limit: int(count)})
		if err != nil {
			x.fail(err)
			return
		}
		for _, k := range resp.Keys {
			if match == nil || match.MatchString(k) {
				keys = append(keys, k)
			}
		}
		inner = resp.Cursor
	}
	next := uint64(0)
	if inner != "" && !replica {
		next = x.s.encodePartitionCursor(prefix, inner)
	}
	x.w.WriteArray(2)
	x.w.WriteBulkString(strconv.FormatUint(next, 10))
	x.w.WriteArray(len(keys))
	for _, k := range keys {
		x.w.WriteBulkString(k)
	}
}

// birthdate stands in for Olric's member birthdate (unix nanoseconds at
// start): a positive number fixed for one process of the member (derived
// from its incarnation), not a time.
func birthdate(incarnation string) int64 {
	return int64(xxhash.Sum64String(incarnation) >> 1)
}

// olricMemberID is Olric's member id: xxhash64 of the birthdate (8 bytes
// big endian) followed by the name.
func olricMemberID(name string, birth int64) uint64 {
	buf := binary.BigEndian.AppendUint64(nil, uint64(birth))
	return xxhash.Sum64(append(buf, name...))
}

// servesClients reports whether a member should be offered to clients: it
// has a RESP address and is not known to be down.
func servesClients(m node.MemberInfo) bool {
	return m.RESPAddr != "" && m.State != metadata.MemberFailed && m.Gossip != "dead" && m.Gossip != "left"
}

// routingTable: CLUSTER.ROUTINGTABLE -> one entry per partition, Olric's
// three fields first, then ours:
//
//	[id, [primary RESP address], [backup RESP addresses...],
//	 state, primary node id, [backup node ids...], leader epoch]
func (x *call) routingTable() {
	if !x.arity(0, 0) {
		return
	}
	t := x.s.c.Routing()
	if !t.Initialized() || len(t.Partitions) == 0 {
		// An empty table would make Olric's client divide by zero.
		x.w.WriteError(PrefixTryAgain + " routing table not initialized")
		return
	}
	addr := make(map[metadata.NodeID]string, len(t.Members))
	for _, m := range t.Members {
		addr[m.ID] = m.RESPAddr
	}
	addrs := func(ids ...metadata.NodeID) {
		var out []string
		for _, id := range ids {
			if a := addr[id]; id != "" && a != "" {
				out = append(out, a)
			}
		}
		x.w.WriteArray(len(out))
		for _, a := range out {
			x.w.WriteBulkString(a)
		}
	}
	x.w.WriteArray(len(t.Partitions))
	for _, p := range t.Partitions {
		x.w.WriteArray(7)
		x.w.WriteInt64(int64(p.ID))
		addrs(p.Primary)
		addrs(p.Backups...)
		x.w.WriteBulkString(p.State.String())
		x.w.WriteBulkString(string(p.Primary))
		x.w.WriteArray(len(p.Backups))
		for _, b := range p.Backups {
			x.w.WriteBulkString(string(b))
		}
		x.w.WriteInt64(int64(p.LeaderEpoch))
	}
}

// members: CLUSTER.MEMBERS -> one entry per member that serves clients
// (servesClients), Olric's three fields first, then ours:
//
//	[resp_addr, birthdate (int), "true"|"false" (Raft leader),
//	 id, http_addr, cluster_addr, state, primaries (int), backups (int)]
func (x *call) members() {
	if !x.arity(0, 0) {
		return
	}
	all, _ := x.s.c.Members()
	var ms []node.MemberInfo
	for _, m := range all {
		if servesClients(m) {
			ms = append(ms, m)
		}
	}
	x.w.WriteArray(len(ms))
	for _, m := range ms {
		x.w.WriteArray(9)
		x.w.WriteBulkString(m.RESPAddr)
		x.w.WriteInt64(birthdate(m.Incarnation))
		x.w.WriteBulkString(strconv.FormatBool(m.Leader))
		x.w.WriteBulkString(string(m.ID))
		x.w.WriteBulkString(m.HTTPAddr)
		x.w.WriteBulkString(m.ClusterAddr)
		x.w.WriteBulkString(m.StateName)
		x.w.WriteInt(m.Primaries)
		x.w.WriteInt(m.Backups)
	}
}

// The JSON of STATS: the fields of Olric's stats.Stats that have a meaning
// here, and this node's Status under "olric_raft".
type (
	olricStatsMember struct {
		Name      string `json:"name"`
		ID        uint64 `json:"id"`
		Birthdate int64  `json:"birthdate"`
	}
	olricStatsPartition struct {
		PreviousOwners []olricStatsMember `json:"previous_owners"`
		Backups        []olricStatsMember `json:"backups"`
		Length         int                `json:"length"`
	}
	olricStatsRuntime struct {
		GOOS         string           `json:"goos"`
		GOARCH       string           `json:"goarch"`
		Version      string           `json:"version"`
		NumCPU       int              `json:"num_cpu"`
		NumGoroutine int              `json:"num_goroutine"`
		MemStats     runtime.MemStats `json:"mem_stats"`
	}
	olricStats struct {
		ReleaseVersion     string                         `json:"release_version"`
		UptimeSeconds      int64                          `json:"uptime_seconds"`
		Runtime            *olricStatsRuntime             `json:"runtime"`
		ClusterCoordinator olricStatsMember               `json:"cluster_coordinator"`
		Member             olricStatsMember               `json:"member"`
		Partitions         map[uint32]olricStatsPartition `json:"partitions"`
		Backups            map[uint32]olricStatsPartition `json:"backups"`
		ClusterMembers     map[uint64]olricStatsMember    `json:"cluster_members"`
		OlricRaft          node.Status                    `json:"olric_raft"`
	}
)

// stats: STATS [CR] -> a bulk string of JSON in the shape of Olric's
// stats.Stats: member, cluster_coordinator (the Raft leader),
// cluster_members, partitions and backups (the partitions this member is
// primary and backup of, with their backups; length is not tracked and
// stays 0), uptime_seconds, runtime with CR; plus "olric_raft", the node's
// status (as GET /v1/status).
func (x *call) stats() {
	if !x.arity(0, 1) {
		return
	}
	collectRuntime := false
	if len(x.args) == 1 {
		if !is(x.args[0], "cr") {
			x.syntax()
			return
		}
		collectRuntime = true
	}
	st := x.s.c.Status()
	t := x.s.c.Routing()
	ms, _ := x.s.c.Members()
	out := olricStats{
		ReleaseVersion: "olric-raft",
		UptimeSeconds:  int64(st.UptimeSeconds),
		Partitions:     map[uint32]olricStatsPartition{},
		Backups:        map[uint32]olricStatsPartition{},
		ClusterMembers: map[uint64]olricStatsMember{},
		OlricRaft:      st,
	}
	byID := make(map[metadata.NodeID]olricStatsMember, len(ms))
	for _, m := range ms {
		b := birthdate(m.Incarnation)
		om := olricStatsMember{Name: m.RESPAddr, ID: olricMemberID(m.RESPAddr, b), Birthdate: b}
		byID[m.ID] = om
		if servesClients(m) {
			out.ClusterMembers[om.ID] = om
		}
		if m.Leader {
			out.ClusterCoordinator = om
		}
		if m.ID == st.NodeID {
			out.Member = om
		}
	}
	for _, p := range t.Partitions {
		part := olricStatsPartition{PreviousOwners: []olricStatsMember{}, Backups: []olricStatsMember{}}
		for _, b := range p.Backups {
			part.Backups = append(part.Backups, byID[b])
		}
		switch {
		case p.Primary == st.NodeID:
			out.Partitions[p.ID] = part
		case slices.Contains(p.Backups, st.NodeID):
			out.Backups[p.ID] = part
		}
	}
	if collectRuntime {
		rt := &olricStatsRuntime{GOOS: runtime.GOOS, GOARCH: runtime.GOARCH, Version: runtime.Version(),
			NumCPU: runtime.NumCPU(), NumGoroutine: runtime.NumGoroutine()}
		runtime.ReadMemStats(&rt.MemStats)
		out.Runtime = rt
	}
	data, err := json.Marshal(out)
	if err != nil {
		x.fail(err)
		return
	}
	x.w.WriteBulk(data)
}

// parseSecondsExpiry parses the float seconds of a DM.* EX (a TTL) or
// EXAT (a unix time) into e. It returns how many args it took (2), or -1
// after answering an error.
func (x *call) parseSecondsExpiry(arg []byte, abs bool, e *expiry) int {
	f, ok := parseFloat(arg)
	if !ok {
		x.w.WriteError("ERR value is not a valid float")
		return -1
	}
	ms := math.Round(f * 1000)
	limit := float64(dataplane.MaxTTL / time.Millisecond)
	if abs {
		limit = 9e18 // unix milliseconds that fit an int64
	}
	if ms <= 0 || ms > limit {
		x.w.WriteError("ERR invalid expire time in '" + x.name + "' command")
		return -1
	}
	e.set = true
	if abs {
		e.expireAt = int64(ms)
	} else {
		e.ttl = time.Duration(ms) * time.Millisecond
	}
	return 2
}

// duration parses a duration argument: float seconds (Olric's) when
// seconds, else integer milliseconds. Negative or over dataplane.MaxTTL is
// an error; it answers errors itself.
func (x *call) duration(arg []byte, seconds bool) (time.Duration, bool) {
	if seconds {
		d, ok := parseSeconds(arg)
		if !ok {
			x.w.WriteError("ERR value is not a valid float or out of range")
		}
		return d, ok
	}
	n, ok := parseInt(arg)
	if !ok {
		x.notInt()
		return 0, false
	}
	if n < 0 || n > int64(dataplane.MaxTTL/time.Millisecond) {
		x.w.WriteError("ERR invalid expire time in '" + x.name + "' command")
		return 0, false
	}
	return time.Duration(n) * time.Millisecond, true
}

// A cursor of Olric's DM.SCAN is one partition's: the partition is an
// argument of its own, so all 63 low bits can carry the hash. A page that
// ended with the key of hash h continues at h+1, rounded up to even:
// h>>1 + 1, which no scan repeats a key with (rounding up could only skip
// a key whose hash is exactly h+1, as likely as a 64-bit hash collision).
// Inner cursors of any other form go to the cursor table (top bit set).

// encodePartitionCursor encodes the data-plane cursor prefix+inner (prefix
// is "partition:") of a page that is not the last.
func (s *Server) encodePartitionCursor(prefix, inner string) uint64 {
	if len(inner) == 16 {
		if h, err := strconv.ParseUint(inner, 16, 64); err == nil {
			if h >= math.MaxUint64-1 {
				return 0 // nothing hashes above: done
			}
			return h>>1 + 1
		}
	}
	return s.encodeCursor(prefix + inner)
}

// decodePartitionCursor returns the inner data-plane cursor of a cursor
// of Olric's DM.SCAN on the partition of prefix ("" for 0: the start).
func (s *Server) decodePartitionCursor(prefix string, arg []byte) (string, bool) {
	v, err := strconv.ParseUint(string(arg), 10, 64)
	if err != nil || v == 0 {
		return "", err == nil
	}
	if v&tableBit != 0 {
		c, ok := s.decodeCursor(arg)
		if !ok || !strings.HasPrefix(c, prefix) {
			return "", false
		}
		return c[len(prefix):], true
	}
	// Start at hash v<<1: the data plane continues after start-1.
	return fmt.Sprintf("%016x", v<<1-1), true
}
