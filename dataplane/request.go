package dataplane

import (
	"errors"
	"time"
)

// Op names a DMap operation.
type Op uint8

// Operations (DESIGN §5). The numbers are part of the cluster RPC wire
// format: never renumber, only add.
const (
	OpGet         Op = 1  // Key -> Value, Version, TTL
	OpPut         Op = 2  // Key, Value, TTL/ExpireAt, NX, XX, IfVersion -> Version
	OpDelete      Op = 3  // Key -> Deleted
	OpExpire      Op = 4  // Key, TTL or ExpireAt (TTL 0 and ExpireAt 0: persist) -> Found
	OpIncr        Op = 5  // Key, Delta (int64) -> Int, Version; a missing key counts as 0
	OpIncrByFloat Op = 6  // Key, DeltaFloat -> Float, Version
	OpGetPut      Op = 7  // Key, Value -> previous Value (Found), Version
	OpLock        Op = 8  // Key, TTL (lease), Wait -> Token (fencing token = the lock key's version)
	OpUnlock      Op = 9  // Key, Token -> Found (true if the lock was held with that token)
	OpLease       Op = 10 // Key, Token, TTL: extend a held lock -> Found
	OpScan        Op = 11 // Partition, Match, Cursor, Limit -> Keys, Cursor (per partition; the service walks partitions)
	OpDestroy     Op = 12 // the whole DMap, on one partition (the service fans out to every partition)
	OpExists      Op = 13 // Key -> Found
)

// String returns the operation's name, e.g. "put".
func (o Op) String() string {
	switch o {
	case OpGet:
		return "get"
	case OpPut:
		return "put"
	case OpDelete:
		return "delete"
	case OpExpire:
		return "expire"
	case OpIncr:
		return "incr"
	case OpIncrByFloat:
		return "incrbyfloat"
	case OpGetPut:
		return "getput"
	case OpLock:
		return "lock"
	case OpUnlock:
		return "unlock"
	case OpLease:
		return "lease"
	case OpScan:
		return "scan"
	case OpDestroy:
		return "destroy"
	case OpExists:
		return "exists"
	}
	return "unknown"
}

// nonBlocking: the operation never waits inside the engine (a lock may
// wait for its holder; a scan or destroy walks a whole partition).
func (o Op) nonBlocking() bool {
	switch o {
	case OpGet, OpPut, OpDelete, OpExpire, OpIncr, OpIncrByFloat, OpGetPut, OpExists, OpUnlock, OpLease:
		return true
	}
	return false
}

// IsWrite reports whether the operation changes state (and so is
// indeterminate when its outcome is unknown).
func (o Op) IsWrite() bool {
	switch o {
	case OpGet, OpScan, OpExists:
		return false
	}
	return true
}

// Request is one DMap operation on one key (or one partition for scan and
// destroy). Front ends build it; the service routes it to the partition's
// primary, over the cluster RPC when that is another member.
type Request struct {
	Op   Op     `msgpack:"op"`
	DMap string `msgpack:"dm"`
	Key  string `msgpack:"k,omitempty"`
	// Value is the value to store (put, getput).
	Value []byte `msgpack:"v,omitempty"`
	// TTL: time to live for put/expire, lease length for lock/lease; 0 = none.
	TTL time.Duration `msgpack:"ttl,omitempty"`
	// ExpireAt: absolute expiry (unix milliseconds) for put/expire (EXAT/PXAT);
	// 0 = none. At most one of TTL and ExpireAt is set.
	ExpireAt int64 `msgpack:"exat,omitempty"`
	// KeepTTL keeps the key's current expiry on put (Redis KEEPTTL).
	KeepTTL bool `msgpack:"kttl,omitempty"`
	// NX: put only if absent. XX: put only if present.
	NX bool `msgpack:"nx,omitempty"`
	XX bool `msgpack:"xx,omitempty"`
	// IfVersion: compare-and-set; put only if the key's current version
	// equals it (0 means "the key must be absent"). Used when HasIfVersion.
	IfVersion    uint64 `msgpack:"ifv,omitempty"`
	HasIfVersion bool   `msgpack:"hifv,omitempty"`
	// Delta for incr; DeltaFloat for incrbyfloat.
	Delta      int64   `msgpack:"d,omitempty"`
	DeltaFloat float64 `msgpack:"df,omitempty"`
	// Wait: how long lock may wait for the lock to be free.
	Wait time.Duration `msgpack:"w,omitempty"`
	// Token: the fencing token of a held lock (unlock, lease).
	Token uint64 `msgpack:"tok,omitempty"`
	// Scan: Partition to scan, glob Match (Redis MATCH syntax), Cursor from a
	// previous page ("" to start), Limit keys per page.
	Partition uint32 `msgpack:"p,omitempty"`
	Match     string `msgpack:"m,omitempty"`
	Cursor    string `msgpack:"c,omitempty"`
	Limit     int    `msgpack:"l,omitempty"`

	// Set by the service, not by front ends:

	// RoutingVersion is the forwarder's routing version; the primary waits
	// (bounded) for its own table to reach it.
	RoutingVersion uint64 `msgpack:"rv,omitempty"`
	// LeaderEpoch is the partition's leader epoch in the forwarder's table;
	// the primary refuses an older one.
	LeaderEpoch uint64 `msgpack:"le,omitempty"`
	// RequestID makes a retried write idempotent (set by clients that
	// retry, from the X-Request-Id header): it names one logical write, and
	// a write whose id the partition has a recorded result for is answered
	// with that result instead of being applied again. At most
	// MaxRequestIDLen bytes; ignored on reads.
	RequestID string `msgpack:"rid,omitempty"`

	// pid is the request's partition + 1, when Do computed it (0: not
	// known; never on the wire).
	pid uint32
}

// Response is the result of a Request. Which fields are set depends on Op.
type Response struct {
	// Found: the key existed (get, expire, getput's previous value, unlock,
	// lease, exists).
	Found bool `msgpack:"f,omitempty"`
	// Value: get's value, getput's previous value. It may view the bytes
	// the engine stores (immutable, shared with every reader): never
	// modify it; copy it before handing it to code that might.
	Value []byte `msgpack:"v,omitempty"`
	// Version: the key's version after the operation (put, incr, getput) or
	// its current version (get). Unique and monotonic per partition across
	// failovers: leader epoch in the high 24 bits, sequence in the low 40.
	Version uint64 `msgpack:"ver,omitempty"`
	// TTL: remaining time to live (get); 0 = no expiry.
	TTL time.Duration `msgpack:"ttl,omitempty"`
	// Deleted: delete removed the key.
	Deleted bool `msgpack:"del,omitempty"`
	// Int: incr's new value. Float: incrbyfloat's new value.
	Int   int64   `msgpack:"i,omitempty"`
	Float float64 `msgpack:"fl,omitempty"`
	// Token: lock's fencing token (strictly increasing across holders).
	Token uint64 `msgpack:"tok,omitempty"`
	// Keys and Cursor: a scan page; Cursor "" when the partition is done.
	Keys   []string `msgpack:"keys,omitempty"`
	Cursor string   `msgpack:"c,omitempty"`
	// RoutingVersion of the table the primary served the request under.
	RoutingVersion uint64 `msgpack:"rv,omitempty"`
}

// Limits enforced on every request (front ends check them first to answer
// 413/400 without forwarding; the primary checks again).
const (
	// MaxKeyLen bounds a key (and a DMap name is bounded by MaxDMapNameLen).
	MaxKeyLen = 64 << 10
	// DefaultMaxValueLen bounds a value unless configured otherwise.
	DefaultMaxValueLen = 16 << 20
	// MaxDMapNameLen bounds a DMap name.
	MaxDMapNameLen = 256
	// MaxScanLimit bounds keys per scan page.
	MaxScanLimit = 10000
	// MaxTTL bounds a TTL or lease (about 10 years).
	MaxTTL = 10 * 365 * 24 * time.Hour
	// MaxRequestIDLen bounds a request id (longer: ErrInvalid).
	MaxRequestIDLen = 256
)

// Sentinel errors. Each has a stable wire code (Code, CodeOf) that the
// HTTP and RESP layers map; test with errors.Is.
var (
	// ErrNotFound: the key does not exist (get, xx put, incr never).
	ErrNotFound = errors.New("dataplane: key not found")
	// ErrKeyExists: nx put on an existing key.
	ErrKeyExists = errors.New("dataplane: key exists")
	// ErrVersionMismatch: compare-and-set found another version.
	ErrVersionMismatch = errors.New("dataplane: version mismatch")
	// ErrNotANumber: incr on a value that is not an integer (or float).
	ErrNotANumber = errors.New("dataplane: value is not a number")
	// ErrOverflow: incr would overflow int64, or incrbyfloat gives NaN/Inf.
	ErrOverflow = errors.New("dataplane: increment would overflow")
	// ErrLocked: lock could not be taken within Wait.
	ErrLocked = errors.New("dataplane: lock is held")
	// ErrNoSuchLock: unlock/lease with a token that does not hold the lock.
	ErrNoSuchLock = errors.New("dataplane: lock not held with that token")
	// ErrInvalid: a malformed request (empty key, bad TTL, bad pattern...).
	ErrInvalid = errors.New("dataplane: invalid request")
	// ErrTooLarge: key, value or DMap name over its limit.
	ErrTooLarge = errors.New("dataplane: too large")
	// ErrUnavailable: the partition has no primary that can serve now
	// (unavailable partition, no route, retries exhausted). Retry later.
	ErrUnavailable = errors.New("dataplane: partition unavailable")
	// ErrStaleRouting: the receiver is not the primary in its committed
	// table (or the sender's epoch is older). The forwarder waits for the
	// receiver's version and retries; clients see it only from the
	// primary-direct Go client.
	ErrStaleRouting = errors.New("dataplane: stale routing")
	// ErrFencedEpoch: a request or replication carried an older leader epoch
	// than the receiver's for that partition.
	ErrFencedEpoch = errors.New("dataplane: fenced epoch")
	// ErrIndeterminate: a write whose outcome is unknown (timed out or the
	// connection broke after sending). Retry with the same RequestID.
	ErrIndeterminate = errors.New("dataplane: outcome unknown")
	// ErrOverloaded: too many requests in flight; retry later.
	ErrOverloaded = errors.New("dataplane: overloaded")
	// ErrFull: a write would take a DMap over its max_keys or max_bytes on
	// a partition and its eviction policy is "none" (or one entry alone is
	// larger than max_bytes). Delete keys or raise the limit.
	ErrFull = errors.New("dataplane: dmap is full")
	// ErrSeqGap: a replicated mutation is not the next one in its
	// partition's sequence (the receiver missed or already has some).
	ErrSeqGap = errors.New("dataplane: mutation sequence gap")
)

// Wire codes of the sentinels (stable: clients and tests rely on them).
const (
	CodeNotFound        = "not_found"
	CodeKeyExists       = "key_exists"
	CodeVersionMismatch = "version_mismatch"
	CodeNotANumber      = "not_a_number"
	CodeOverflow        = "overflow"
	CodeLocked          = "locked"
	CodeNoSuchLock      = "no_such_lock"
	CodeInvalid         = "bad_request"
	CodeTooLarge        = "too_large"
	CodeUnavailable     = "unavailable"
	CodeStaleRouting    = "stale_routing"
	CodeFencedEpoch     = "fenced_epoch"
	CodeIndeterminate   = "timeout"
	CodeOverloaded      = "overloaded"
	CodeFull            = "full"
	CodeSeqGap          = "seq_gap"
)

// codes is in priority order: the first sentinel err wraps decides. An
// indeterminate outcome comes first: a write that may have happened must
// never travel as a definite failure, whatever else its error wraps (a
// primary whose backups did not acknowledge in time wraps ErrUnavailable
// too; found by the Jepsen harness's set checker: "failed but present").
var codes = []struct {
	err  error
	code string
}{
	{ErrIndeterminate, CodeIndeterminate},
	{ErrNotFound, CodeNotFound},
	{ErrKeyExists, CodeKeyExists},
	{ErrVersionMismatch, CodeVersionMismatch},
	{ErrNotANumber, CodeNotANumber},
	{ErrOverflow, CodeOverflow},
	{ErrLocked, CodeLocked},
	{ErrNoSuchLock, CodeNoSuchLock},
	{ErrInvalid, CodeInvalid},
	{ErrTooLarge, CodeTooLarge},
	{ErrUnavailable, CodeUnavailable},
	{ErrStaleRouting, CodeStaleRouting},
	{ErrFencedEpoch, CodeFencedEpoch},
	{ErrOverloaded, CodeOverloaded},
	{ErrFull, CodeFull},
	{ErrSeqGap, CodeSeqGap},
}

// CodeOf returns the wire code of err's sentinel, or "" for none.
func CodeOf(err error) string {
	for _, c := range codes {
		if errors.Is(err, c.err) {
			return c.code
		}
	}
	return ""
}

// ErrorOf returns the sentinel with wire code code, or nil.
func ErrorOf(code string) error {
	for _, c := range codes {
		if c.code == code {
			return c.err
		}
	}
	return nil
}
