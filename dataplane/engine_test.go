package dataplane

import (
	"context"
	"errors"
	"math"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestEngineValidation(t *testing.T) {
	e, _ := etEngine(t, Config{MaxValueLen: 10}, 4)
	long := strings.Repeat("k", MaxKeyLen+1)
	tests := []struct {
		name  string
		epoch uint64
		p     uint32
		req   *Request
		want  error
	}{
		{"nil request", 1, 0, nil, ErrInvalid},
		{"partition out of range", 1, 4, &Request{Op: OpGet, DMap: "m", Key: "k"}, ErrInvalid},
		{"epoch too big", MaxEpoch, 0, &Request{Op: OpGet, DMap: "m", Key: "k"}, ErrInvalid},
		{"empty dmap", 1, 0, &Request{Op: OpGet, Key: "k"}, ErrInvalid},
		{"long dmap", 1, 0, &Request{Op: OpGet, DMap: strings.Repeat("d", MaxDMapNameLen+1), Key: "k"}, ErrTooLarge},
		{"empty key", 1, 0, &Request{Op: OpGet, DMap: "m"}, ErrInvalid},
		{"long key", 1, 0, &Request{Op: OpPut, DMap: "m", Key: long}, ErrTooLarge},
		{"long value", 1, 0, &Request{Op: OpPut, DMap: "m", Key: "k", Value: make([]byte, 11)}, ErrTooLarge},
		{"long getput value", 1, 0, &Request{Op: OpGetPut, DMap: "m", Key: "k", Value: make([]byte, 11)}, ErrTooLarge},
		{"unknown op", 1, 0, &Request{Op: 99, DMap: "m", Key: "k"}, ErrInvalid},
		{"op zero", 1, 0, &Request{DMap: "m", Key: "k"}, ErrInvalid},
		{"negative ttl", 1, 0, &Request{Op: OpPut, DMap: "m", Key: "k", TTL: -1}, ErrInvalid},
		{"ttl over max", 1, 0, &Request{Op: OpPut, DMap: "m", Key: "k", TTL: MaxTTL + 1}, ErrInvalid},
		{"negative expire_at", 1, 0, &Request{Op: OpExpire, DMap: "m", Key: "k", ExpireAt: -5}, ErrInvalid},
		{"ttl and expire_at", 1, 0, &Request{Op: OpPut, DMap: "m", Key: "k", TTL: time.Second, ExpireAt: 5}, ErrInvalid},
		{"nx and xx", 1, 0, &Request{Op: OpPut, DMap: "m", Key: "k", NX: true, XX: true}, ErrInvalid},
		{"keepttl with ttl", 1, 0, &Request{Op: OpPut, DMap: "m", Key: "k", KeepTTL: true, TTL: time.Second}, ErrInvalid},
		{"expire_at too far", 1, 0, &Request{Op: OpPut, DMap: "m", Key: "k", ExpireAt: math.MaxInt64 / 2}, ErrInvalid},
		{"negative wait", 1, 0, &Request{Op: OpLock, DMap: "m", Key: "k", Wait: -1}, ErrInvalid},
		{"scan limit negative", 1, 0, &Request{Op: OpScan, DMap: "m", Limit: -1}, ErrInvalid},
		{"scan limit over max", 1, 0, &Request{Op: OpScan, DMap: "m", Limit: MaxScanLimit + 1}, ErrInvalid},
		{"scan bad cursor", 1, 0, &Request{Op: OpScan, DMap: "m", Cursor: "xyz"}, ErrInvalid},
		{"scan short cursor", 1, 0, &Request{Op: OpScan, DMap: "m", Cursor: "ff"}, ErrInvalid},
		{"scan bad pattern", 1, 0, &Request{Op: OpScan, DMap: "m", Match: "[abc"}, ErrInvalid},
		{"scan long pattern", 1, 0, &Request{Op: OpScan, DMap: "m", Match: long}, ErrTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := e.Do(context.Background(), tt.p, tt.epoch, tt.req)
			if !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
			if !strings.HasPrefix(err.Error(), "dataplane: ") {
				t.Errorf("message %q lacks the package prefix", err)
			}
		})
	}
	if e.Holds(0) {
		t.Error("refused requests left state behind")
	}
}

func TestEngineCanceledContext(t *testing.T) {
	e, _ := etEngine(t, Config{}, 1)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := e.Do(ctx, 0, 1, &Request{Op: OpPut, DMap: "m", Key: "k"}); !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
}

func TestEnginePut(t *testing.T) {
	type step struct {
		req     Request
		advance time.Duration
		wantErr error
		// after the step: the key's value ("<missing>") and TTL (-1: don't check)
		wantVal string
		wantTTL time.Duration
	}
	put := func(v string) Request { return Request{Op: OpPut, Value: []byte(v)} }
	with := func(r Request, f func(*Request)) Request { f(&r); return r }
	tests := []struct {
		name  string
		cfg   Config
		steps []step
	}{
		{"plain put then overwrite", Config{}, []step{
			{req: put("a"), wantVal: "a"},
			{req: put("b"), wantVal: "b"},
		}},
		{"nx on missing, then nx on existing", Config{}, []step{
			{req: with(put("a"), func(r *Request) { r.NX = true }), wantVal: "a"},
			{req: with(put("b"), func(r *Request) { r.NX = true }), wantErr: ErrKeyExists, wantVal: "a"},
		}},
		{"xx on missing fails, on existing works", Config{}, []step{
			{req: with(put("a"), func(r *Request) { r.XX = true }), wantErr: ErrNotFound, wantVal: "<missing>"},
			{req: put("a"), wantVal: "a"},
			{req: with(put("b"), func(r *Request) { r.XX = true }), wantVal: "b"},
		}},
		{"if version 0 means absent", Config{}, []step{
			{req: with(put("a"), func(r *Request) { r.HasIfVersion = true }), wantVal: "a"},
			{req: with(put("b"), func(r *Request) { r.HasIfVersion = true }), wantErr: ErrVersionMismatch, wantVal: "a"},
		}},
		{"if version on missing key", Config{}, []step{
			{req: with(put("a"), func(r *Request) { r.HasIfVersion, r.IfVersion = true, 5 }), wantErr: ErrVersionMismatch, wantVal: "<missing>"},
		}},
		{"ttl expires", Config{}, []step{
			{req: with(put("a"), func(r *Request) { r.TTL = 10 * time.Second }), wantVal: "a", wantTTL: 10 * time.Second},
			{advance: 4 * time.Second, req: Request{Op: OpExists}, wantVal: "a", wantTTL: 6 * time.Second},
			{advance: 6 * time.Second, req: Request{Op: OpExists}, wantVal: "<missing>"},
		}},
		{"put without ttl clears the ttl", Config{}, []step{
			{req: with(put("a"), func(r *Request) { r.TTL = 10 * time.Second }), wantVal: "a", wantTTL: 10 * time.Second},
			{req: put("b"), wantVal: "b", wantTTL: 0},
		}},
		{"keepttl keeps it", Config{}, []step{
			{req: with(put("a"), func(r *Request) { r.TTL = 10 * time.Second }), wantVal: "a", wantTTL: 10 * time.Second},
			{advance: time.Second, req: with(put("b"), func(r *Request) { r.KeepTTL = true }), wantVal: "b", wantTTL: 9 * time.Second},
		}},
		{"xx with ttl sets the ttl", Config{}, []step{
			{req: put("a"), wantVal: "a", wantTTL: 0},
			{req: with(put("b"), func(r *Request) { r.XX, r.TTL = true, time.Minute }), wantVal: "b", wantTTL: time.Minute},
		}},
		{"expire_at in the future", Config{}, []step{
			{req: with(put("a"), func(r *Request) { r.ExpireAt = 1_700_000_000_000 + 5000 }), wantVal: "a", wantTTL: 5 * time.Second},
		}},
		{"expire_at in the past deletes", Config{}, []step{
			{req: put("a"), wantVal: "a"},
			{req: with(put("b"), func(r *Request) { r.ExpireAt = 1_700_000_000_000 - 1 }), wantVal: "<missing>"},
		}},
		{"expire_at now deletes", Config{}, []step{
			{req: with(put("b"), func(r *Request) { r.ExpireAt = 1_700_000_000_000 }), wantVal: "<missing>"},
		}},
		{"default ttl", Config{Default: DMapConfig{TTL: time.Hour}}, []step{
			{req: put("a"), wantVal: "a", wantTTL: time.Hour},
			{req: with(put("b"), func(r *Request) { r.TTL = time.Second }), wantVal: "b", wantTTL: time.Second},
			{req: with(put("c"), func(r *Request) { r.KeepTTL = true }), wantVal: "c", wantTTL: time.Second},
		}},
		{"keepttl on a missing key takes the default ttl", Config{Default: DMapConfig{TTL: time.Hour}}, []step{
			{req: with(put("a"), func(r *Request) { r.KeepTTL = true }), wantVal: "a", wantTTL: time.Hour},
		}},
		{"nx on an expired key succeeds", Config{}, []step{
			{req: with(put("a"), func(r *Request) { r.TTL = time.Second }), wantVal: "a", wantTTL: time.Second},
			{advance: time.Second, req: with(put("b"), func(r *Request) { r.NX = true }), wantVal: "b", wantTTL: 0},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, clk := etEngine(t, tt.cfg, 1)
			for i, s := range tt.steps {
				clk.Advance(s.advance)
				req := s.req
				req.DMap, req.Key = "m", "k"
				_, err := etDo(e, &req)
				if !errors.Is(err, s.wantErr) || (err != nil && s.wantErr == nil) {
					t.Fatalf("step %d: got error %v, want %v", i, err, s.wantErr)
				}
				got, gerr := etDo(e, &Request{Op: OpGet, DMap: "m", Key: "k"})
				val := "<missing>"
				if gerr == nil {
					val = string(got.Value)
				} else if !errors.Is(gerr, ErrNotFound) {
					t.Fatalf("step %d: get: %v", i, gerr)
				}
				if val != s.wantVal {
					t.Fatalf("step %d: value %q, want %q", i, val, s.wantVal)
				}
				if gerr == nil && s.wantTTL >= 0 && got.TTL != s.wantTTL {
					t.Fatalf("step %d: ttl %s, want %s", i, got.TTL, s.wantTTL)
				}
			}
			etCheckInvariants(t, e)
		})
	}
}

func TestEngineVersions(t *testing.T) {
	e, _ := etEngine(t, Config{}, 2)
	ctx := context.Background()
	r1, err := e.Do(ctx, 0, 3, &Request{Op: OpPut, DMap: "m", Key: "a", Value: []byte("1")})
	if err != nil {
		t.Fatal(err)
	}
	if want := MakeVersion(3, 1); r1.Version != want {
		t.Fatalf("first version %d, want %d (epoch 3, seq 1)", r1.Version, want)
	}
	r2, _ := e.Do(ctx, 0, 3, &Request{Op: OpPut, DMap: "m", Key: "b", Value: []byte("1")})
	if r2.Version != MakeVersion(3, 2) {
		t.Fatalf("second version %d, want seq 2", r2.Version)
	}
	// Sequence numbers are per partition.
	r3, _ := e.Do(ctx, 1, 3, &Request{Op: OpPut, DMap: "m", Key: "a", Value: []byte("1")})
	if r3.Version != MakeVersion(3, 1) {
		t.Fatalf("other partition's version %d, want seq 1", r3.Version)
	}
	// A newer epoch gives bigger versions and keeps counting.
	r4, _ := e.Do(ctx, 0, 4, &Request{Op: OpPut, DMap: "m", Key: "a", Value: []byte("2")})
	if r4.Version != MakeVersion(4, 3) || r4.Version <= r2.Version {
		t.Fatalf("version after failover %d, want %d", r4.Version, MakeVersion(4, 3))
	}
	g, _ := e.Do(ctx, 0, 4, &Request{Op: OpGet, DMap: "m", Key: "a"})
	if g.Version != r4.Version {
		t.Fatalf("get version %d, want %d", g.Version, r4.Version)
	}
	// Compare-and-set on the version.
	if _, err := e.Do(ctx, 0, 4, &Request{Op: OpPut, DMap: "m", Key: "a", Value: []byte("x"), HasIfVersion: true, IfVersion: r1.Version}); !errors.Is(err, ErrVersionMismatch) {
		t.Fatalf("cas with a stale version: %v", err)
	}
	r5, err := e.Do(ctx, 0, 4, &Request{Op: OpPut, DMap: "m", Key: "a", Value: []byte("x"), HasIfVersion: true, IfVersion: r4.Version})
	if err != nil || r5.Version <= r4.Version {
		t.Fatalf("cas with the current version: %v, %+v", err, r5)
	}
}

func TestEngineFencing(t *testing.T) {
	e, _ := etEngine(t, Config{}, 2)
	ctx := context.Background()
	put := &Request{Op: OpPut, DMap: "m", Key: "k", Value: []byte("v")}
	if _, err := e.Do(ctx, 0, 5, put); err != nil {
		t.Fatal(err)
	}
	// An older epoch is refused, reads too.
	for _, op := range []Op{OpPut, OpGet, OpScan, OpLock} {
		if _, err := e.Do(ctx, 0, 4, &Request{Op: op, DMap: "m", Key: "k"}); !errors.Is(err, ErrFencedEpoch) {
			t.Fatalf("%s at an older epoch: %v, want ErrFencedEpoch", op, err)
		}
	}
	// The same epoch works; a newer one raises the fence.
	if _, err := e.Do(ctx, 0, 5, put); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Do(ctx, 0, 7, put); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Do(ctx, 0, 5, put); !errors.Is(err, ErrFencedEpoch) {
		t.Fatalf("epoch 5 after 7: %v", err)
	}
	// Fence raises without a request; never lowers.
	e.Fence(1, 9)
	if _, err := e.Do(ctx, 1, 8, put); !errors.Is(err, ErrFencedEpoch) {
		t.Fatalf("after Fence(9), epoch 8: %v", err)
	}
	e.Fence(1, 2)
	if _, err := e.Do(ctx, 1, 8, put); !errors.Is(err, ErrFencedEpoch) {
		t.Fatalf("Fence lowered the fence: %v", err)
	}
	if _, err := e.Do(ctx, 1, 9, put); err != nil {
		t.Fatal(err)
	}
	// Drop keeps the fence.
	e.Drop(1)
	if _, err := e.Do(ctx, 1, 8, put); !errors.Is(err, ErrFencedEpoch) {
		t.Fatalf("Drop lowered the fence: %v", err)
	}
	// Out-of-range partitions are ignored by Fence, Drop and Holds.
	e.Fence(99, 1)
	e.Drop(99)
	if e.Holds(99) {
		t.Fatal("holds partition 99")
	}
}

// TestEngineStoresCopies: a put stores a copy of the caller's value, and
// what get and getput return views the stored bytes, which no write
// changes in place (a write stores a new entry): a value read before a
// write keeps reading the old bytes.
func TestEngineStoresCopies(t *testing.T) {
	e, _ := etEngine(t, Config{}, 1)
	in := []byte("hello")
	etMust(t, e, &Request{Op: OpPut, DMap: "m", Key: "k", Value: in})
	in[0] = 'X' // the caller's buffer is not stored
	got := etMust(t, e, &Request{Op: OpGet, DMap: "m", Key: "k"})
	if string(got.Value) != "hello" {
		t.Fatalf("stored value changed with the input: %q", got.Value)
	}
	if cap(got.Value) != len(got.Value) {
		t.Fatalf("get's value has room to append into (cap %d, len %d)", cap(got.Value), len(got.Value))
	}
	prev := etMust(t, e, &Request{Op: OpGetPut, DMap: "m", Key: "k", Value: []byte("new")})
	if string(prev.Value) != "hello" {
		t.Fatalf("getput's previous value %q", prev.Value)
	}
	var seen []Mutation
	e.OnMutation = func(_ uint32, m Mutation) { seen = append(seen, m) }
	etPut(t, e, "m", "k", "again")
	if len(seen) != 1 || string(seen[0].Value) != "again" {
		t.Fatalf("mutations %+v", seen)
	}
	if string(got.Value) != "hello" || string(prev.Value) != "hello" {
		t.Fatalf("values read before later writes changed: %q, %q", got.Value, prev.Value)
	}
}

// TestEngineMissingKeyError: get of a missing key is ErrNotFound and says
// which key of which DMap (the message is built lazily).
func TestEngineMissingKeyError(t *testing.T) {
	e, _ := etEngine(t, Config{}, 1)
	_, err := e.Do(context.Background(), 0, 1, &Request{Op: OpGet, DMap: "m", Key: "no\nkey"})
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("get of a missing key: %v", err)
	}
	if want := `dataplane: key not found: "no\nkey" in dmap "m"`; err.Error() != want {
		t.Fatalf("message %q, want %q", err.Error(), want)
	}
}

func TestEngineDeleteExists(t *testing.T) {
	e, clk := etEngine(t, Config{}, 1)
	if r := etMust(t, e, &Request{Op: OpDelete, DMap: "m", Key: "k"}); r.Deleted {
		t.Fatal("deleted a missing key")
	}
	if r := etMust(t, e, &Request{Op: OpExists, DMap: "m", Key: "k"}); r.Found {
		t.Fatal("missing key exists")
	}
	etPut(t, e, "m", "k", "v")
	if r := etMust(t, e, &Request{Op: OpExists, DMap: "m", Key: "k"}); !r.Found {
		t.Fatal("key does not exist")
	}
	if r := etMust(t, e, &Request{Op: OpDelete, DMap: "m", Key: "k"}); !r.Deleted {
		t.Fatal("not deleted")
	}
	if _, err := etDo(e, &Request{Op: OpGet, DMap: "m", Key: "k"}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("get after delete: %v", err)
	}
	// An expired key counts as missing for delete (Redis DEL returns 0).
	etMust(t, e, &Request{Op: OpPut, DMap: "m", Key: "k", Value: []byte("v"), TTL: time.Second})
	clk.Advance(time.Second)
	if r := etMust(t, e, &Request{Op: OpDelete, DMap: "m", Key: "k"}); r.Deleted {
		t.Fatal("deleted an expired key")
	}
	if st := e.Stats(); st.Expirations != 1 || st.Keys != 0 {
		t.Fatalf("stats %+v, want 1 expiration, 0 keys", st)
	}
	etCheckInvariants(t, e)
}

func TestEngineExpire(t *testing.T) {
	e, clk := etEngine(t, Config{}, 1)
	exp := func(ttl time.Duration, at int64) *Response {
		return etMust(t, e, &Request{Op: OpExpire, DMap: "m", Key: "k", TTL: ttl, ExpireAt: at})
	}
	ttl := func() time.Duration {
		return etMust(t, e, &Request{Op: OpGet, DMap: "m", Key: "k"}).TTL
	}
	if r := exp(time.Second, 0); r.Found {
		t.Fatal("expire on a missing key found it")
	}
	v0 := etPut(t, e, "m", "k", "v")
	r := exp(time.Minute, 0)
	if !r.Found || r.Version <= v0 {
		t.Fatalf("expire: %+v, want found and a new version over %d", r, v0)
	}
	if got := ttl(); got != time.Minute {
		t.Fatalf("ttl %s", got)
	}
	if r := exp(0, 1_700_000_000_000+30_000); !r.Found {
		t.Fatal("expire_at not found")
	}
	if got := ttl(); got != 30*time.Second {
		t.Fatalf("ttl after expire_at %s", got)
	}
	if r := exp(0, 0); !r.Found { // persist
		t.Fatal("persist not found")
	}
	if got := ttl(); got != 0 {
		t.Fatalf("ttl after persist %s", got)
	}
	if v := etGet(t, e, "m", "k"); v != "v" {
		t.Fatalf("value changed by expire: %q", v)
	}
	exp(time.Second, 0)
	clk.Advance(999 * time.Millisecond)
	if v := etGet(t, e, "m", "k"); v != "v" {
		t.Fatal("expired early")
	}
	clk.Advance(time.Millisecond)
	if v := etGet(t, e, "m", "k"); v != "<missing>" {
		t.Fatal("did not expire")
	}
	// An expire_at in the past deletes.
	etPut(t, e, "m", "k", "v")
	if r := exp(0, 1); !r.Found {
		t.Fatal("past expire_at: not found")
	}
	if v := etGet(t, e, "m", "k"); v != "<missing>" {
		t.Fatal("past expire_at did not delete")
	}
	etCheckInvariants(t, e)
}

func TestEngineIncr(t *testing.T) {
	tests := []struct {
		name    string
		initial string // "" = missing
		delta   int64
		want    int64
		wantErr error
	}{
		{"missing is zero", "", 5, 5, nil},
		{"add", "10", 5, 15, nil},
		{"decr", "10", -15, -5, nil},
		{"negative start", "-3", 1, -2, nil},
		{"max", "9223372036854775806", 1, math.MaxInt64, nil},
		{"overflow", "9223372036854775807", 1, 0, ErrOverflow},
		{"underflow", "-9223372036854775808", -1, 0, ErrOverflow},
		{"min delta from zero", "0", math.MinInt64, math.MinInt64, nil},
		{"not a number", "abc", 1, 0, ErrNotANumber},
		{"float", "1.5", 1, 0, ErrNotANumber},
		{"leading plus", "+5", 1, 0, ErrNotANumber},
		{"leading zero", "05", 1, 0, ErrNotANumber},
		{"space", " 5", 1, 0, ErrNotANumber},
		{"too long", "123456789012345678901", 1, 0, ErrNotANumber},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, _ := etEngine(t, Config{}, 1)
			if tt.initial != "" {
				etPut(t, e, "m", "k", tt.initial)
			}
			r, err := etDo(e, &Request{Op: OpIncr, DMap: "m", Key: "k", Delta: tt.delta})
			if !errors.Is(err, tt.wantErr) || (err != nil && tt.wantErr == nil) {
				t.Fatalf("got %v, want %v", err, tt.wantErr)
			}
			if err != nil {
				if v := etGet(t, e, "m", "k"); v != tt.initial && tt.initial != "" {
					t.Fatalf("failed incr changed the value to %q", v)
				}
				return
			}
			if r.Int != tt.want || r.Version == 0 {
				t.Fatalf("got %+v, want %d", r, tt.want)
			}
			if v := etGet(t, e, "m", "k"); v != etFormatInt(tt.want) {
				t.Fatalf("stored %q", v)
			}
		})
	}
}

func etFormatInt(n int64) string { return strconv.FormatInt(n, 10) }

func TestEngineIncrKeepsTTL(t *testing.T) {
	e, clk := etEngine(t, Config{Default: DMapConfig{TTL: time.Hour}}, 1)
	etMust(t, e, &Request{Op: OpPut, DMap: "m", Key: "k", Value: []byte("1"), TTL: time.Minute})
	clk.Advance(10 * time.Second)
	etMust(t, e, &Request{Op: OpIncr, DMap: "m", Key: "k", Delta: 1})
	etMust(t, e, &Request{Op: OpIncrByFloat, DMap: "m", Key: "k", DeltaFloat: 0.5})
	if g := etMust(t, e, &Request{Op: OpGet, DMap: "m", Key: "k"}); g.TTL != 50*time.Second || string(g.Value) != "2.5" {
		t.Fatalf("after incr: %q ttl %s, want 2.5 ttl 50s", g.Value, g.TTL)
	}
	// A new key gets the default TTL.
	etMust(t, e, &Request{Op: OpIncr, DMap: "m", Key: "new", Delta: 1})
	if g := etMust(t, e, &Request{Op: OpGet, DMap: "m", Key: "new"}); g.TTL != time.Hour {
		t.Fatalf("new counter ttl %s", g.TTL)
	}
}

func TestEngineIncrByFloat(t *testing.T) {
	tests := []struct {
		name    string
		initial string
		delta   float64
		want    string
		wantErr error
	}{
		{"missing", "", 1.5, "1.5", nil},
		{"redis example", "10.50", 0.1, "10.6", nil},
		{"integer result", "3.0", 2, "5", nil},
		{"from int", "5", -0.25, "4.75", nil},
		{"small", "0", 0.0001, "0.0001", nil},
		{"big stays decimal", "5.0e3", 200, "5200", nil},
		{"huge no exponent", "1e21", 0, "1000000000000000000000", nil},
		{"not a number", "abc", 1, "", ErrNotANumber},
		{"nan value", "nan", 1, "", ErrNotANumber},
		{"inf value", "inf", 1, "", ErrNotANumber},
		{"space", "1.0 ", 1, "", ErrNotANumber},
		{"overflow to inf", "1.7e308", 1.7e308, "", ErrOverflow},
		{"nan delta", "1", math.NaN(), "", ErrOverflow},
		{"inf delta", "1", math.Inf(1), "", ErrOverflow},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, _ := etEngine(t, Config{}, 1)
			if tt.initial != "" {
				etPut(t, e, "m", "k", tt.initial)
			}
			r, err := etDo(e, &Request{Op: OpIncrByFloat, DMap: "m", Key: "k", DeltaFloat: tt.delta})
			if !errors.Is(err, tt.wantErr) || (err != nil && tt.wantErr == nil) {
				t.Fatalf("got %v, want %v", err, tt.wantErr)
			}
			if err != nil {
				return
			}
			if v := etGet(t, e, "m", "k"); v != tt.want {
				t.Fatalf("stored %q, want %q (float %v)", v, tt.want, r.Float)
			}
		})
	}
}

func TestEngineGetPut(t *testing.T) {
	e, _ := etEngine(t, Config{}, 1)
	r := etMust(t, e, &Request{Op: OpGetPut, DMap: "m", Key: "k", Value: []byte("a")})
	if r.Found || r.Value != nil || r.Version == 0 {
		t.Fatalf("first getput %+v", r)
	}
	etMust(t, e, &Request{Op: OpExpire, DMap: "m", Key: "k", TTL: time.Minute})
	r2 := etMust(t, e, &Request{Op: OpGetPut, DMap: "m", Key: "k", Value: []byte("b")})
	if !r2.Found || string(r2.Value) != "a" || r2.Version <= r.Version {
		t.Fatalf("second getput %+v", r2)
	}
	if g := etMust(t, e, &Request{Op: OpGet, DMap: "m", Key: "k"}); string(g.Value) != "b" || g.TTL != 0 {
		t.Fatalf("after getput: %q ttl %s (getput clears the ttl)", g.Value, g.TTL)
	}
}

func TestEngineDestroy(t *testing.T) {
	e, _ := etEngine(t, Config{}, 1)
	etPut(t, e, "m", "a", "1")
	etPut(t, e, "m", "b", "2")
	etPut(t, e, "other", "a", "3")
	etMust(t, e, &Request{Op: OpLock, DMap: "m", Key: "a"})
	etMust(t, e, &Request{Op: OpDestroy, DMap: "m"})
	if v := etGet(t, e, "m", "a"); v != "<missing>" {
		t.Fatal("destroy left a key")
	}
	if v := etGet(t, e, "other", "a"); v != "3" {
		t.Fatal("destroy touched another dmap")
	}
	// The lock is gone too: it can be taken again at once.
	etMust(t, e, &Request{Op: OpLock, DMap: "m", Key: "a"})
	// Destroying a missing dmap is a no-op.
	etMust(t, e, &Request{Op: OpDestroy, DMap: "nothing"})
	if st := e.Stats(); st.Keys != 1 || st.Locks != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestEngineEmptyValue(t *testing.T) {
	e, _ := etEngine(t, Config{}, 1)
	etMust(t, e, &Request{Op: OpPut, DMap: "m", Key: "k"})
	g := etMust(t, e, &Request{Op: OpGet, DMap: "m", Key: "k"})
	if !g.Found || len(g.Value) != 0 {
		t.Fatalf("%+v", g)
	}
}

func TestEngineClosed(t *testing.T) {
	e, _ := etEngine(t, Config{}, 1)
	e.Start()
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	if err := e.Close(); err != nil {
		t.Fatal("second close:", err)
	}
	e.Start() // no-op after Close
	if _, err := etDo(e, &Request{Op: OpGet, DMap: "m", Key: "k"}); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Do after Close: %v", err)
	}
}

func TestEngineSequenceExhausted(t *testing.T) {
	e, _ := etEngine(t, Config{}, 1)
	s := &PartitionSnapshot{Format: SnapshotFormat, Seq: maxSeq - seqReserve, Fence: 1}
	if err := e.Install(0, s); err != nil {
		t.Fatal(err)
	}
	if _, err := etDo(e, &Request{Op: OpPut, DMap: "m", Key: "k"}); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("write with exhausted sequence: %v", err)
	}
	if _, err := etDo(e, &Request{Op: OpGet, DMap: "m", Key: "k"}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("reads still work: %v", err)
	}
}

func TestCodesOfNewSentinels(t *testing.T) {
	for _, tc := range []struct {
		err  error
		code string
	}{{ErrFull, CodeFull}, {ErrSeqGap, CodeSeqGap}} {
		if got := CodeOf(tc.err); got != tc.code {
			t.Errorf("CodeOf(%v) = %q", tc.err, got)
		}
		if ErrorOf(tc.code) != tc.err {
			t.Errorf("ErrorOf(%q)", tc.code)
		}
	}
}

// TestEngineDestroyForgetsTheLastDMapLookedUp: a partition remembers the
// DMap it looked up last; destroying that DMap must not leave its values
// reachable, nor a new DMap of the same name share the old one's store.
func TestEngineDestroyForgetsTheLastDMapLookedUp(t *testing.T) {
	e, _ := etEngine(t, Config{}, 1)
	etPut(t, e, "m", "a", "1")
	if v := etGet(t, e, "m", "a"); v != "1" {
		t.Fatalf("get = %q", v)
	}
	etMust(t, e, &Request{Op: OpDestroy, DMap: "m"})
	if v := etGet(t, e, "m", "a"); v != "<missing>" {
		t.Fatalf("after destroy: get = %q, want missing", v)
	}
	etPut(t, e, "m", "b", "2")
	if v := etGet(t, e, "m", "a"); v != "<missing>" {
		t.Fatalf("the new dmap holds the old one's key: %q", v)
	}
	if st := e.Stats(); st.Keys != 1 {
		t.Fatalf("stats %+v, want 1 key", st)
	}
}
