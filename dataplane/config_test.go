package dataplane

import (
	"errors"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

func TestConfigDefaultsValidate(t *testing.T) {
	for _, c := range []Config{DefaultConfig(), {}} {
		if err := c.Validate(); err != nil {
			t.Fatalf("%+v: %v", c, err)
		}
	}
	d := DefaultConfig()
	if d.MaxValueLen != DefaultMaxValueLen || d.ExpiryInterval != 100*time.Millisecond || d.ExpirySamples != 20 ||
		d.Default.Eviction != EvictionLRU || d.Default.LRUSamples != 5 {
		t.Fatalf("defaults %+v", d)
	}
	if got := (Config{}).withDefaults(); got.MaxValueLen != d.MaxValueLen || got.Default != d.Default ||
		got.ExpiryInterval != d.ExpiryInterval || got.ExpirySamples != d.ExpirySamples {
		t.Fatalf("zero config with defaults %+v, want %+v", got, d)
	}
}

func TestConfigValidateReportsEverything(t *testing.T) {
	c := Config{
		Default: DMapConfig{MaxKeys: -1, MaxBytes: -2, Eviction: "fifo"},
		DMaps: map[string]DMapConfig{
			"":                                    {},
			strings.Repeat("n", MaxDMapNameLen+1): {},
			"x":                                   {TTL: -time.Second, MaxIdle: MaxTTL + 1, LRUSamples: -1},
		},
		MaxValueLen:    -1,
		ExpiryInterval: time.Microsecond,
		ExpirySamples:  maxExpirySamples + 1,
	}
	err := c.Validate()
	if !errors.Is(err, ErrInvalid) {
		t.Fatalf("got %v", err)
	}
	for _, want := range []string{"default.max_keys", "default.max_bytes", "default.eviction", "empty dmap name",
		"dmap name of 257 bytes", "dmaps.x.ttl", "dmaps.x.max_idle", "dmaps.x.lru_samples", "max_value_len",
		"expiry_interval", "expiry_samples"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %q:\n%v", want, err)
		}
	}
	if _, err := NewEngine(c, 1, nil); !errors.Is(err, ErrInvalid) {
		t.Fatalf("NewEngine with a bad config: %v", err)
	}
	if _, err := NewEngine(Config{}, 0, nil); !errors.Is(err, ErrInvalid) {
		t.Fatalf("NewEngine with 0 partitions: %v", err)
	}
}

func TestConfigOverrideInherits(t *testing.T) {
	c := Config{
		Default: DMapConfig{MaxKeys: 100, TTL: time.Minute, LRUSamples: 7},
		DMaps:   map[string]DMapConfig{"strict": {MaxKeys: 5, Eviction: EvictionNone}},
	}
	e, _ := etEngine(t, c, 1)
	s := e.policyFor("strict")
	if s.maxKeys != 5 || s.lru || s.ttl != int64(time.Minute) || s.samples != 7 {
		t.Fatalf("override policy %+v", s)
	}
	d := e.policyFor("anything")
	if d.maxKeys != 100 || !d.lru || d.ttl != int64(time.Minute) {
		t.Fatalf("default policy %+v", d)
	}
}

func TestConfigYAML(t *testing.T) {
	src := `
default:
  max_keys: 1000
  ttl: 1h
  eviction: lru
dmaps:
  sessions:
    max_idle: 30m
    eviction: none
max_value_len: 1048576
expiry_interval: 50ms
`
	var c Config
	if err := yaml.Unmarshal([]byte(src), &c); err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.Default.TTL != time.Hour || c.DMaps["sessions"].MaxIdle != 30*time.Minute || c.ExpiryInterval != 50*time.Millisecond {
		t.Fatalf("%+v", c)
	}
}
