package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"unicode"

	"github.com/olric-raft/olric-raft/metadata"
	"github.com/olric-raft/olric-raft/node"
)

// maxJoinAddrs bounds the addresses of one join request.
const maxJoinAddrs = 256

// Wire forms. metadata's types carry states as numbers; the API shows them
// as words and always shows lists as arrays, never null.

type memberJSON struct {
	ID          metadata.NodeID `json:"id"`
	State       string          `json:"state"`
	Voter       bool            `json:"voter"`
	Incarnation string          `json:"incarnation"`
	ClusterAddr string          `json:"cluster_addr"`
	GossipAddr  string          `json:"gossip_addr"`
	HTTPAddr    string          `json:"http_addr"`
	RESPAddr    string          `json:"resp_addr"`
}

type partitionJSON struct {
	ID          uint32            `json:"id"`
	Primary     metadata.NodeID   `json:"primary"`
	Backups     []metadata.NodeID `json:"backups"`
	State       string            `json:"state"`
	LeaderEpoch uint64            `json:"leader_epoch"`
	HandoffTo   metadata.NodeID   `json:"handoff_to,omitempty"`
	// Syncing lists the backups still being filled from the primary.
	Syncing []metadata.NodeID `json:"syncing,omitempty"`
}

type routingResponse struct {
	RoutingVersion uint64          `json:"routing_version"`
	PartitionCount uint32          `json:"partition_count"`
	Replicas       int             `json:"replicas"`
	Members        []memberJSON    `json:"members"`
	Partitions     []partitionJSON `json:"partitions"`
}

type membersResponse struct {
	RoutingVersion uint64            `json:"routing_version"`
	Members        []node.MemberInfo `json:"members"`
}

type leaderResponse struct {
	RoutingVersion uint64          `json:"routing_version"`
	Leader         node.LeaderInfo `json:"leader"`
}

type locateResponse struct {
	Partition      uint32            `json:"partition"`
	Primary        metadata.NodeID   `json:"primary"`
	Backups        []metadata.NodeID `json:"backups"`
	RoutingVersion uint64            `json:"routing_version"`
	LeaderEpoch    uint64            `json:"leader_epoch"`
	State          string            `json:"state"`
}

type joinRequest struct {
	Addrs []string `json:"addrs"`
}

type joinResponse struct {
	Joined int `json:"joined"`
}

type leaveResponse struct {
	Left bool `json:"left"`
}

type removeResponse struct {
	Removed metadata.NodeID `json:"removed"`
}

// forceAssignRequest is the body of POST
// /v1/cluster/partitions/force-assign. Partitions are pointers so that a
// null element is told apart from partition 0; a nil slice (absent or
// null) means every unavailable partition, while an explicit empty list is
// rejected as ambiguous.
type forceAssignRequest struct {
	Partitions []*uint32 `json:"partitions"`
	Node       string    `json:"node"`
}

type forceAssignResponse struct {
	RoutingVersion uint64   `json:"routing_version"`
	Partitions     []uint32 `json:"partitions"`
}

type healthResponse struct {
	Status string `json:"status"`
}

type readyResponse struct {
	Ready          bool         `json:"ready"`
	RoutingVersion uint64       `json:"routing_version"`
	Error          *errorDetail `json:"error,omitempty"`
}

func toMemberJSON(m metadata.Member) memberJSON {
	return memberJSON{
		ID: m.ID, State: m.State.String(), Voter: m.Voter, Incarnation: m.Incarnation,
		ClusterAddr: m.ClusterAddr, GossipAddr: m.GossipAddr, HTTPAddr: m.HTTPAddr, RESPAddr: m.RESPAddr,
	}
}

func toPartitionJSON(p metadata.Partition) partitionJSON {
	backups := p.Backups
	if backups == nil {
		backups = []metadata.NodeID{}
	}
	return partitionJSON{
		ID: p.ID, Primary: p.Primary, Backups: backups, State: p.State.String(),
		LeaderEpoch: p.LeaderEpoch, HandoffTo: p.HandoffTo, Syncing: p.Syncing,
	}
}

// setVersion sets X-Routing-Version to the version a response was built
// from (it may be newer than the one ServeHTTP saw).
func setVersion(w http.ResponseWriter, v uint64) {
	w.Header().Set(HeaderRoutingVersion, strconv.FormatUint(v, 10))
}

// GET /v1/cluster/routing[?partition=N]
func (a *api) getRouting(w http.ResponseWriter, r *http.Request) error {
	q, err := query(r)
	if err != nil {
		return err
	}
	t := a.routing()
	setVersion(w, t.Version)
	resp := routingResponse{
		RoutingVersion: t.Version,
		PartitionCount: t.PartitionCount,
		Replicas:       t.Replicas,
		Members:        make([]memberJSON, 0, len(t.Members)),
	}
	for _, m := range t.Members {
		resp.Members = append(resp.Members, toMemberJSON(m))
	}
	if q.Has("partition") {
		id, err := parsePartition(q.Get("partition"))
		if err != nil {
			return err
		}
		if !t.Initialized() {
			return errorf(http.StatusServiceUnavailable, CodeUnavailable, "routing is not initialized yet")
		}
		p, ok := t.Partition(id)
		if !ok {
			return errorf(http.StatusNotFound, CodeNotFound, "partition %d does not exist (0 to %d)", id, t.PartitionCount-1)
		}
		resp.Partitions = []partitionJSON{toPartitionJSON(p)}
	} else {
		resp.Partitions = make([]partitionJSON, 0, len(t.Partitions))
		for _, p := range t.Partitions {
			resp.Partitions = append(resp.Partitions, toPartitionJSON(p))
		}
	}
	a.writeJSON(w, http.StatusOK, resp)
	return nil
}

// parsePartition parses a partition number. Non-numbers are bad requests;
// numbers too large for any table are simply not found.
func parsePartition(s string) (uint32, error) {
	id, err := strconv.ParseUint(s, 10, 32)
	if err == nil {
		return uint32(id), nil
	}
	if errors.Is(err, strconv.ErrRange) {
		return 0, errorf(http.StatusNotFound, CodeNotFound, "partition %s does not exist", s)
	}
	return 0, badRequest("partition %q is not a partition number", s)
}

// GET /v1/cluster/members
func (a *api) getMembers(w http.ResponseWriter, _ *http.Request) error {
	members, version := a.c.Members()
	out := make([]node.MemberInfo, 0, len(members))
	for _, m := range members {
		if m.StateName == "" {
			m.StateName = m.State.String()
		}
		out = append(out, m)
	}
	setVersion(w, version)
	a.writeJSON(w, http.StatusOK, membersResponse{RoutingVersion: version, Members: out})
	return nil
}

// GET /v1/cluster/leader
func (a *api) getLeader(w http.ResponseWriter, _ *http.Request) error {
	li, ok := a.c.Leader()
	if !ok {
		return fmt.Errorf("no Raft leader is known to %s: %w", a.c.ID(), node.ErrNoLeader)
	}
	t := a.routing()
	setVersion(w, t.Version)
	a.writeJSON(w, http.StatusOK, leaderResponse{RoutingVersion: t.Version, Leader: li})
	return nil
}

// GET /v1/cluster/locate?dmap=&key=
func (a *api) getLocate(w http.ResponseWriter, r *http.Request) error {
	q, err := query(r)
	if err != nil {
		return err
	}
	dmap, key := q.Get("dmap"), q.Get("key")
	var missing []string
	if dmap == "" {
		missing = append(missing, "dmap")
	}
	if key == "" {
		missing = append(missing, "key")
	}
	if len(missing) > 0 {
		return badRequest("query parameter %s required (non-empty)", strings.Join(missing, " and "))
	}
	t := a.routing()
	setVersion(w, t.Version)
	p, ok := t.Locate(dmap, key)
	if !ok {
		return errorf(http.StatusServiceUnavailable, CodeUnavailable, "routing is not initialized yet")
	}
	pj := toPartitionJSON(p)
	a.writeJSON(w, http.StatusOK, locateResponse{
		Partition: pj.ID, Primary: pj.Primary, Backups: pj.Backups,
		RoutingVersion: t.Version, LeaderEpoch: pj.LeaderEpoch, State: pj.State,
	})
	return nil
}

// POST /v1/cluster/join {"addrs":["host:port",...]}
func (a *api) postJoin(w http.ResponseWriter, r *http.Request) error {
	var req joinRequest
	if err := a.decodeBody(w, r, &req, false); err != nil {
		return err
	}
	if len(req.Addrs) == 0 {
		return badRequest(`"addrs" must list at least one gossip address (host:port)`)
	}
	if len(req.Addrs) > maxJoinAddrs {
		return badRequest(`"addrs" lists %d addresses, at most %d allowed`, len(req.Addrs), maxJoinAddrs)
	}
	for i, addr := range req.Addrs {
		if err := validateHostPort(addr); err != nil {
			return badRequest("addrs[%d]: %v", i, err)
		}
	}
	ctx, cancel := context.WithTimeout(r.Context(), opTimeout)
	defer cancel()
	n, err := a.c.Join(ctx, req.Addrs)
	if err != nil {
		return err
	}
	a.writeJSON(w, http.StatusOK, joinResponse{Joined: n})
	return nil
}

// validateHostPort accepts host:port with a non-empty host and a port 1 to
// 65535.
func validateHostPort(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%q is not host:port", addr)
	}
	if host == "" || strings.ContainsFunc(host, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) {
		return fmt.Errorf("%q: host must be a name or IP address", addr)
	}
	if p, err := strconv.ParseUint(port, 10, 16); err != nil || p == 0 {
		return fmt.Errorf("%q: port must be 1 to 65535", addr)
	}
	return nil
}

// POST /v1/cluster/leave (no body, or an empty JSON object)
func (a *api) postLeave(w http.ResponseWriter, r *http.Request) error {
	var req struct{}
	if err := a.decodeBody(w, r, &req, true); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), leaveTimeout)
	defer cancel()
	if err := a.c.Leave(ctx); err != nil {
		return err
	}
	a.writeJSON(w, http.StatusOK, leaveResponse{Left: true})
	if a.onLeft != nil {
		// Flush first: OnLeft typically starts the server's shutdown.
		_ = http.NewResponseController(w).Flush()
		a.onLeft()
	}
	return nil
}

// DELETE /v1/cluster/members/{id}
func (a *api) deleteMember(w http.ResponseWriter, r *http.Request) error {
	id := metadata.NodeID(r.PathValue("id"))
	if err := metadata.ValidateNodeID(id); err != nil {
		return badRequest("%v", err)
	}
	ctx, cancel := context.WithTimeout(r.Context(), opTimeout)
	defer cancel()
	if err := a.c.RemoveMember(ctx, id); err != nil {
		return err
	}
	a.writeJSON(w, http.StatusOK, removeResponse{Removed: id})
	return nil
}

// POST /v1/cluster/partitions/force-assign {"partitions":[ids...]?, "node":"id"?}
//
// The operator's data-loss escape hatch: unavailable partitions get new,
// empty owners. The body is required (at least {}): without "partitions"
// every unavailable partition is forced; without "node" the leader picks
// the owners.
func (a *api) postForceAssign(w http.ResponseWriter, r *http.Request) error {
	var req *forceAssignRequest // nil after a JSON null
	if err := a.decodeBody(w, r, &req, false); err != nil {
		return err
	}
	if req == nil {
		return badRequest("request body is null; want a JSON object ({} to force-assign every unavailable partition)")
	}
	ids, err := a.forceAssignPartitions(req.Partitions)
	if err != nil {
		return err
	}
	owner := metadata.NodeID(req.Node)
	if owner != "" {
		if err := metadata.ValidateNodeID(owner); err != nil {
			return badRequest("node: %v", err)
		}
	}
	ctx, cancel := context.WithTimeout(r.Context(), opTimeout)
	defer cancel()
	res, err := a.c.ForceAssign(ctx, ids, owner)
	if err != nil {
		return err
	}
	parts := res.Partitions
	if parts == nil {
		parts = []uint32{}
	}
	if res.RoutingVersion > 0 {
		setVersion(w, res.RoutingVersion)
	}
	a.writeJSON(w, http.StatusOK, forceAssignResponse{RoutingVersion: res.RoutingVersion, Partitions: parts})
	return nil
}

// forceAssignPartitions checks the partitions of a force-assign request:
// no null, no duplicate, each within the partition count (of the committed
// table once initialized, else metadata.MaxPartitionCount). It returns nil
// for an absent list.
func (a *api) forceAssignPartitions(in []*uint32) ([]uint32, error) {
	if in == nil {
		return nil, nil
	}
	if len(in) == 0 {
		return nil, badRequest(`"partitions" is empty: list the partitions to force-assign, or omit the field to force-assign every unavailable partition`)
	}
	count := uint32(metadata.MaxPartitionCount)
	if t := a.routing(); t.Initialized() {
		count = t.PartitionCount
	}
	if uint64(len(in)) > uint64(count) {
		return nil, badRequest(`"partitions" lists %d partitions, there are only %d`, len(in), count)
	}
	ids := make([]uint32, 0, len(in))
	seen := make(map[uint32]bool, len(in))
	for i, p := range in {
		if p == nil {
			return nil, badRequest("partitions[%d] is null; want a partition number", i)
		}
		id := *p
		if id >= count {
			return nil, badRequest("partitions[%d]: partition %d does not exist (0 to %d)", i, id, count-1)
		}
		if seen[id] {
			return nil, badRequest("partitions[%d]: partition %d is listed twice", i, id)
		}
		seen[id] = true
		ids = append(ids, id)
	}
	return ids, nil
}

// GET /v1/status
func (a *api) getStatus(w http.ResponseWriter, _ *http.Request) error {
	st := a.c.Status()
	setVersion(w, st.RoutingVersion)
	a.writeJSON(w, http.StatusOK, st)
	return nil
}

// GET /healthz: the process serves HTTP.
func (a *api) getHealthz(w http.ResponseWriter, _ *http.Request) error {
	a.writeJSON(w, http.StatusOK, healthResponse{Status: "ok"})
	return nil
}

// GET /readyz: 200 when Cluster.Ready returns nil within readyTimeout, else
// 503 with the reason in "error" (and Retry-After).
func (a *api) getReadyz(w http.ResponseWriter, r *http.Request) error {
	ctx, cancel := context.WithTimeout(r.Context(), readyTimeout)
	defer cancel()
	err := a.c.Ready(ctx)
	t := a.routing()
	setVersion(w, t.Version)
	if err == nil {
		a.writeJSON(w, http.StatusOK, readyResponse{Ready: true, RoutingVersion: t.Version})
		return nil
	}
	// Not being ready is an answer, not a failure: whatever the reason, it
	// is a 503, with the most specific 503 code the error maps to.
	code := CodeNotReady
	for _, s := range sentinelCodes {
		if s.status == http.StatusServiceUnavailable && s.code != CodeTimeout && errors.Is(err, s.err) {
			code = s.code
			break
		}
	}
	w.Header().Set("Retry-After", retryAfterSeconds)
	a.writeJSON(w, http.StatusServiceUnavailable, readyResponse{
		RoutingVersion: t.Version,
		Error:          &errorDetail{Code: code, Message: err.Error()},
	})
	return nil
}

// query parses the query string strictly: a malformed one is a bad request
// rather than silently dropped parameters.
func query(r *http.Request) (url.Values, error) {
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return nil, badRequest("malformed query string: %v", err)
	}
	return q, nil
}

// decodeBody reads at most maxBody bytes and decodes exactly one JSON value
// into v, rejecting unknown fields and trailing data. An empty body is
// accepted only when optional.
func (a *api) decodeBody(w http.ResponseWriter, r *http.Request, v any, optional bool) error {
	return a.decodeBodyLimit(w, r, v, optional, a.maxBody)
}

// decodeBodyLimit is decodeBody with a limit of its own (data routes).
func (a *api) decodeBodyLimit(w http.ResponseWriter, r *http.Request, v any, optional bool, limit int64) error {
	var data []byte
	if r.Body != nil {
		var err error
		data, err = io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
		if err != nil {
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				return err // mapped to 413 too_large
			}
			return badRequest("reading request body: %v", err)
		}
	}
	if len(bytes.TrimSpace(data)) == 0 {
		if optional {
			return nil
		}
		return badRequest("request body is empty; want a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return badRequest("invalid JSON body: %s", describeJSONError(err))
	}
	var extra json.RawMessage
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return badRequest("invalid JSON body: unexpected data after the JSON object")
	}
	return nil
}

func describeJSONError(err error) string {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return fmt.Sprintf("malformed JSON at byte %d: %v", se.Offset, err)
	case errors.As(err, &te):
		if te.Field != "" {
			return fmt.Sprintf("field %q: got JSON %s, want %s", te.Field, te.Value, jsonTypeName(te.Type))
		}
		return fmt.Sprintf("got JSON %s, want a JSON object", te.Value)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "truncated JSON"
	default:
		return err.Error()
	}
}

// jsonTypeName describes a Go type as the JSON a client should send.
func jsonTypeName(t reflect.Type) string {
	if t == nil {
		return "another JSON type"
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uint:
		return fmt.Sprintf("an integer from 0 to %d", uint64(1)<<(t.Bits())-1)
	case reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64, reflect.Int:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		return "an array (each element " + jsonTypeName(t.Elem()) + ")"
	case reflect.Struct, reflect.Map:
		return "an object"
	}
	return "another JSON type"
}

// writeJSON writes v with status. Encoding our own types cannot fail; if it
// does, that is a bug and the client gets 500 internal.
func (a *api) writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		a.log.Error("httpapi: encoding response", "err", err)
		status = http.StatusInternalServerError
		b = []byte(`{"error":{"code":"internal","message":"internal error: encoding response"}}`)
	}
	a.writeBody(w, status, b)
}

// writeBody writes b, one JSON value, and a newline with status.
func (a *api) writeBody(w http.ResponseWriter, status int, b []byte) {
	b = append(b, '\n')
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	if _, err := w.Write(b); err != nil {
		a.log.Debug("httpapi: writing response", "err", err)
	}
}
