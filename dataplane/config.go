package dataplane

import (
	"errors"
	"fmt"
	"slices"
	"time"
)

// Eviction policies (DMapConfig.Eviction).
const (
	// EvictionLRU evicts the approximately least recently used keys (Redis
	// style: LRUSamples keys sampled per eviction) when a write takes a
	// DMap over a limit. The default.
	EvictionLRU = "lru"
	// EvictionNone never evicts: a write that would take a DMap over a
	// limit fails with ErrFull.
	EvictionNone = "none"
)

// Engine defaults and bounds.
const (
	// DefaultExpiryInterval is how often the background expiry cycle runs.
	DefaultExpiryInterval = 100 * time.Millisecond
	// DefaultExpirySamples is how many keys the cycle samples per DMap and
	// partition per round.
	DefaultExpirySamples = 20
	// DefaultLRUSamples is how many keys one eviction samples.
	DefaultLRUSamples = 5
	// DefaultLockLease is the lease of a lock taken (or extended) with TTL 0.
	DefaultLockLease = 30 * time.Second

	// maxValueLenLimit bounds MaxValueLen (and any value a snapshot or a
	// replicated mutation may carry): entry lengths are stored in 32 bits.
	maxValueLenLimit = 1 << 30
	maxLRUSamples    = 1024
	maxExpirySamples = 10000
	minExpiryPeriod  = time.Millisecond
)

// DMapConfig configures one DMap. Limits apply per partition (as in Olric):
// cluster-wide a DMap holds at most about MaxKeys × partition count keys.
type DMapConfig struct {
	// MaxKeys bounds the keys of the DMap on one partition; 0 = unlimited.
	MaxKeys int64 `yaml:"max_keys"`
	// MaxBytes bounds len(key)+len(value) summed over the DMap's keys on one
	// partition; 0 = unlimited.
	MaxBytes int64 `yaml:"max_bytes"`
	// MaxIdle evicts keys neither read nor written for this long; 0 = never.
	MaxIdle time.Duration `yaml:"max_idle"`
	// TTL is the default time to live of a value written without one (put
	// without TTL, ExpireAt or KeepTTL; getput; incr creating a key);
	// 0 = none.
	TTL time.Duration `yaml:"ttl"`
	// Eviction is the policy when a write goes over MaxKeys or MaxBytes:
	// EvictionLRU (default) or EvictionNone.
	Eviction string `yaml:"eviction"`
	// LRUSamples is how many keys one LRU eviction samples (default 5).
	LRUSamples int `yaml:"lru_samples"`
}

// Config configures an Engine. The zero value of every field means its
// default; DefaultConfig spells the defaults out.
type Config struct {
	// Default applies to every DMap without an entry in DMaps.
	Default DMapConfig `yaml:"default"`
	// DMaps holds per-DMap overrides. An override is a whole DMapConfig, but
	// each of its zero fields inherits the field of Default: an override
	// can tighten or change a limit, not lift one that Default sets.
	DMaps map[string]DMapConfig `yaml:"dmaps"`
	// MaxValueLen bounds one value (default DefaultMaxValueLen, at most
	// 1 GiB).
	MaxValueLen int `yaml:"max_value_len"`
	// ExpiryInterval is the period of the background expiry cycle (default
	// DefaultExpiryInterval, at least 1ms).
	ExpiryInterval time.Duration `yaml:"expiry_interval"`
	// ExpirySamples is how many keys with a TTL the cycle samples per DMap
	// and partition per round (default DefaultExpirySamples); it repeats the
	// round while more than 25% of a sample had expired (as Redis does), up
	// to a quarter of ExpiryInterval per cycle.
	ExpirySamples int `yaml:"expiry_samples"`
	// DedupeEntries bounds how many write results (of writes with a
	// request id) a partition keeps for retries; the oldest go first
	// (default DefaultDedupeEntries, at most 1<<20).
	DedupeEntries int `yaml:"dedupe_entries"`
	// DedupeBytes bounds the memory of a partition's write results
	// (DedupeEntries alone does not: getput records the previous value);
	// the oldest go first, the newest stays even if alone over it (default
	// DefaultDedupeBytes, at most 1 GiB).
	DedupeBytes int64 `yaml:"dedupe_bytes"`
	// DedupeWindow is how long a recorded write result answers retries
	// (default DefaultDedupeWindow, at most 24h).
	DedupeWindow time.Duration `yaml:"dedupe_window"`
}

// DefaultConfig returns the default configuration: no limits, no default
// TTL, LRU eviction with 5 samples, 16 MiB values, a 100ms expiry cycle
// sampling 20 keys, and per partition the results of the last 4096 writes
// with a request id (at most 1 MiB) kept for 5 minutes.
func DefaultConfig() Config {
	return Config{
		Default: DMapConfig{
			Eviction:   EvictionLRU,
			LRUSamples: DefaultLRUSamples,
		},
		MaxValueLen:    DefaultMaxValueLen,
		ExpiryInterval: DefaultExpiryInterval,
		ExpirySamples:  DefaultExpirySamples,
		DedupeEntries:  DefaultDedupeEntries,
		DedupeBytes:    DefaultDedupeBytes,
		DedupeWindow:   DefaultDedupeWindow,
	}
}

// Validate reports every problem of c at once (errors.Join), each wrapping
// ErrInvalid. Zero fields are valid: they mean the default.
func (c *Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: config: "+format, append([]any{ErrInvalid}, args...)...))
	}
	validateDMapConfig("default", c.Default, bad)
	names := make([]string, 0, len(c.DMaps))
	for name := range c.DMaps {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		switch {
		case name == "":
			bad("dmaps: empty dmap name")
		case len(name) > MaxDMapNameLen:
			bad("dmaps: dmap name of %d bytes, limit %d", len(name), MaxDMapNameLen)
		}
		validateDMapConfig("dmaps."+name, c.DMaps[name], bad)
	}
	if c.MaxValueLen < 0 || c.MaxValueLen > maxValueLenLimit {
		bad("max_value_len %d out of range [0, %d]", c.MaxValueLen, maxValueLenLimit)
	}
	if c.ExpiryInterval < 0 || (c.ExpiryInterval > 0 && c.ExpiryInterval < minExpiryPeriod) {
		bad("expiry_interval %s: must be 0 (default) or at least %s", c.ExpiryInterval, minExpiryPeriod)
	}
	if c.ExpirySamples < 0 || c.ExpirySamples > maxExpirySamples {
		bad("expiry_samples %d out of range [0, %d]", c.ExpirySamples, maxExpirySamples)
	}
	if c.DedupeEntries < 0 || c.DedupeEntries > maxDedupeEntries {
		bad("dedupe_entries %d out of range [0, %d]", c.DedupeEntries, maxDedupeEntries)
	}
	if c.DedupeBytes < 0 || c.DedupeBytes > maxDedupeBytes {
		bad("dedupe_bytes %d out of range [0, %d]", c.DedupeBytes, maxDedupeBytes)
	}
	if c.DedupeWindow < 0 || c.DedupeWindow > maxDedupeWindow {
		bad("dedupe_window %s out of range [0, %s]", c.DedupeWindow, maxDedupeWindow)
	}
	return errors.Join(errs...)
}

func validateDMapConfig(where string, d DMapConfig, bad func(string, ...any)) {
	if d.MaxKeys < 0 {
		bad("%s.max_keys %d is negative", where, d.MaxKeys)
	}
	if d.MaxBytes < 0 {
		bad("%s.max_bytes %d is negative", where, d.MaxBytes)
	}
	if d.MaxIdle < 0 || d.MaxIdle > MaxTTL {
		bad("%s.max_idle %s out of range [0, %s]", where, d.MaxIdle, MaxTTL)
	}
	if d.TTL < 0 || d.TTL > MaxTTL {
		bad("%s.ttl %s out of range [0, %s]", where, d.TTL, MaxTTL)
	}
	switch d.Eviction {
	case "", EvictionLRU, EvictionNone:
	default:
		bad("%s.eviction %q: want %q or %q", where, d.Eviction, EvictionLRU, EvictionNone)
	}
	if d.LRUSamples < 0 || d.LRUSamples > maxLRUSamples {
		bad("%s.lru_samples %d out of range [0, %d]", where, d.LRUSamples, maxLRUSamples)
	}
}

// withDefaults returns c with every zero field set to its default.
func (c Config) withDefaults() Config {
	if c.MaxValueLen == 0 {
		c.MaxValueLen = DefaultMaxValueLen
	}
	if c.ExpiryInterval == 0 {
		c.ExpiryInterval = DefaultExpiryInterval
	}
	if c.ExpirySamples == 0 {
		c.ExpirySamples = DefaultExpirySamples
	}
	if c.DedupeEntries == 0 {
		c.DedupeEntries = DefaultDedupeEntries
	}
	if c.DedupeBytes == 0 {
		c.DedupeBytes = DefaultDedupeBytes
	}
	if c.DedupeWindow == 0 {
		c.DedupeWindow = DefaultDedupeWindow
	}
	if c.Default.Eviction == "" {
		c.Default.Eviction = EvictionLRU
	}
	if c.Default.LRUSamples == 0 {
		c.Default.LRUSamples = DefaultLRUSamples
	}
	return c
}

// dmapPolicy is a DMap's resolved configuration, in the units the engine
// uses (nanoseconds). Immutable once built.
type dmapPolicy struct {
	maxKeys  int64
	maxBytes int64
	maxIdle  int64 // ns; 0 = never
	ttl      int64 // ns; 0 = none
	lru      bool  // evict (true) or refuse with ErrFull (false)
	samples  int
}

// inherit fills the zero fields of o from def.
func (o DMapConfig) inherit(def DMapConfig) DMapConfig {
	if o.MaxKeys == 0 {
		o.MaxKeys = def.MaxKeys
	}
	if o.MaxBytes == 0 {
		o.MaxBytes = def.MaxBytes
	}
	if o.MaxIdle == 0 {
		o.MaxIdle = def.MaxIdle
	}
	if o.TTL == 0 {
		o.TTL = def.TTL
	}
	if o.Eviction == "" {
		o.Eviction = def.Eviction
	}
	if o.LRUSamples == 0 {
		o.LRUSamples = def.LRUSamples
	}
	return o
}

func (o DMapConfig) policy() *dmapPolicy {
	return &dmapPolicy{
		maxKeys:  o.MaxKeys,
		maxBytes: o.MaxBytes,
		maxIdle:  int64(o.MaxIdle),
		ttl:      int64(o.TTL),
		lru:      o.Eviction != EvictionNone,
		samples:  max(o.LRUSamples, 1),
	}
}

// limited reports whether the policy bounds keys or bytes.
func (p *dmapPolicy) limited() bool { return p.maxKeys > 0 || p.maxBytes > 0 }

// over reports whether keys and bytes exceed the policy's limits.
func (p *dmapPolicy) over(keys, bytes int64) bool {
	return (p.maxKeys > 0 && keys > p.maxKeys) || (p.maxBytes > 0 && bytes > p.maxBytes)
}
