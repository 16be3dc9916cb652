package cli

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/olric-raft/olric-raft/client"
)

// newKVCmd groups the DMap commands.
func newKVCmd(d *Deps) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "kv",
		Short: "Read and write the keys of DMaps (put, get, del, incr, expire, scan, lock, unlock, destroy)",
		Long: `kv reads and writes the keys of DMaps through a member's HTTP API
(--address); the member routes each key to its partition's primary.

Values are bytes: 'kv put' stores VALUE exactly as given. A VALUE that is
JSON text ({"a":1}, "text", 42, ...) is also read back as JSON by HTTP
clients; anything else is kept as plain bytes.`,
		Args: noUnknownCommand,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.SuggestionsMinimumDistance = 2
	cmd.AddCommand(
		newKVPutCmd(d),
		newKVGetCmd(d),
		newKVDelCmd(d),
		newKVIncrCmd(d),
		newKVExpireCmd(d),
		newKVScanCmd(d),
		newKVLockCmd(d),
		newKVUnlockCmd(d),
		newKVDestroyCmd(d),
	)
	return cmd
}

// kvHints are the hints of the data-plane error codes for the kv
// commands; cmd is the subcommand's name.
func kvHints(cmd string) map[string]string {
	h := map[string]string{
		client.CodeNotFound:        "no such key",
		client.CodeKeyExists:       "the key exists and --nx was given",
		client.CodeVersionMismatch: "the key's version is not --if-version (0 means the key must not exist); see its version with 'olric-raft kv get'",
		client.CodeUnavailable:     "the key's partition has no primary right now: see 'olric-raft status'",
		client.CodeOverloaded:      "the cluster is overloaded; retry shortly",
		client.CodeTimeout:         "the write may or may not have happened; check with 'olric-raft kv get' before retrying",
		client.CodeLocked:          "the lock is held by someone else; retry later, or wait longer with --wait",
		client.CodeNoSuchLock:      "the lock is not held with that token: it was released, or its --ttl ran out",
		client.CodeNotANumber:      "the value is not an integer (incr counts a missing key as 0)",
		client.CodeOverflow:        "the result would not fit a 64-bit integer",
		client.CodeTooLarge:        "keys are at most 64 KiB and values at most the server's limit (16 MiB by default)",
		client.CodeFull:            "the DMap holds as many keys or bytes as configured (max_keys, max_bytes) and does not evict; delete keys or raise the limit",
	}
	switch cmd {
	case "put":
		h[client.CodeNotFound] = "no such key (--xx writes only over an existing key)"
	case "get":
		h[client.CodeTimeout] = "nothing was changed; retry"
	case "scan":
		h[client.CodeTimeout] = "nothing was changed; retry"
		h[client.CodeUnavailable] = "a partition of the DMap has no primary right now: see 'olric-raft status'"
		h[client.CodeBadRequest] = "check --match (a glob: * ? [abc] \\x) and --cursor (as a previous scan printed it)"
	case "destroy":
		h[client.CodeTimeout] = "the destroy may be partly done; run it again"
		h[client.CodeUnavailable] = "a partition of the DMap has no primary right now: see 'olric-raft status'"
	}
	return h
}

// newKVOpCmd is newOperatorCmd for a kv subcommand: kv hints, and
// non-empty DMAP and KEY arguments (the first one or two).
func newKVOpCmd(d *Deps, cmd *cobra.Command, names int, run func(o *operator, args []string) error) *cobra.Command {
	return newOperatorCmd(d, cmd, func(o *operator, a []string) error {
		for i, what := range []string{"DMAP", "KEY"}[:names] {
			if a[i] == "" {
				return &usageError{err: fmt.Errorf("%s is empty", what)}
			}
		}
		o.hints = kvHints(o.cmd.Name())
		return run(o, a)
	})
}

// kvValue is how a value is printed: JSON text as JSON (so that -o json
// embeds it), anything else in base64.
type kvValue struct {
	Key         string          `json:"key"`
	Value       json.RawMessage `json:"value,omitempty"`
	ValueBase64 *string         `json:"value_base64,omitempty"`
	Version     uint64          `json:"version"`
	TTLMs       int64           `json:"ttl_ms"`
}

// printable is v as text for a table, or "" when it is not printable
// text.
func printable(v []byte) string {
	if !utf8.Valid(v) {
		return ""
	}
	s := string(v)
	if strings.ContainsFunc(s, func(r rune) bool { return !unicode.IsPrint(r) && r != '\t' && r != '\n' }) {
		return ""
	}
	return s
}

func newKVPutCmd(d *Deps) *cobra.Command {
	var ttl time.Duration
	var nx, xx bool
	var ifVersion uint64
	cmd := &cobra.Command{
		Use:   "put DMAP KEY VALUE",
		Short: "Store VALUE under KEY",
		Long: `put stores VALUE, byte for byte, under KEY in DMAP and prints the key's new version.

  --ttl D          expire the key after D (default: never; a put removes an earlier expiry)
  --nx             only if the key does not exist (else error key_exists)
  --xx             only if the key exists (else error not_found)
  --if-version N   only if the key's version is N; 0: only if it does not exist
                   (else error version_mismatch): compare-and-set`,
		Args: args(cobra.ExactArgs(3)),
	}
	cmd = newKVOpCmd(d, cmd, 2, func(o *operator, a []string) error {
		var opts []client.PutOption
		casSet := o.cmd.Flags().Changed("if-version")
		switch {
		case ttl < 0:
			return &usageError{err: fmt.Errorf("--ttl %s must not be negative", ttl)}
		case nx && xx:
			return &usageError{err: errors.New("--nx (only if absent) and --xx (only if present) exclude each other")}
		case casSet && (nx || xx):
			return &usageError{err: errors.New("--if-version already says whether the key must exist (0: it must not); drop --nx/--xx")}
		}
		if ttl > 0 {
			opts = append(opts, client.WithTTL(ttl))
		}
		if nx {
			opts = append(opts, client.NX())
		}
		if xx {
			opts = append(opts, client.XX())
		}
		if casSet {
			opts = append(opts, client.IfVersion(ifVersion))
		}
		v, err := o.c.Put(o.ctx(), a[0], a[1], []byte(a[2]), opts...)
		if err != nil {
			return o.explain(err)
		}
		return o.print(map[string]uint64{"version": v}, func(w *tabw) { w.line("version: %d", v) })
	})
	fs := cmd.Flags()
	fs.DurationVar(&ttl, "ttl", 0, "expire the key after this long (0: never)")
	fs.BoolVar(&nx, "nx", false, "only if the key does not exist")
	fs.BoolVar(&xx, "xx", false, "only if the key exists")
	fs.Uint64Var(&ifVersion, "if-version", 0, "only if the key's version is this (0: only if it does not exist)")
	return cmd
}

func newKVGetCmd(d *Deps) *cobra.Command {
	return newKVOpCmd(d, &cobra.Command{
		Use:   "get DMAP KEY",
		Short: "Show the value, version and time to live of KEY",
		Args:  args(cobra.ExactArgs(2)),
	}, 2, func(o *operator, a []string) error {
		e, err := o.c.Get(o.ctx(), a[0], a[1])
		if err != nil {
			return o.explain(err)
		}
		out := kvValue{Key: a[1], Version: e.Version, TTLMs: e.TTL.Milliseconds()}
		if e.JSON {
			out.Value = e.Value
		} else {
			b64 := base64.StdEncoding.EncodeToString(e.Value)
			out.ValueBase64 = &b64
		}
		return o.print(out, func(w *tabw) {
			w.line("key:\t%s", a[1])
			if s := printable(e.Value); s != "" || len(e.Value) == 0 {
				w.line("value:\t%s", s)
			} else {
				w.line("value (base64):\t%s", base64.StdEncoding.EncodeToString(e.Value))
			}
			w.line("version:\t%d", e.Version)
			if e.TTL > 0 {
				w.line("ttl:\t%s", e.TTL)
			} else {
				w.line("ttl:\tnone")
			}
		})
	})
}

func newKVDelCmd(d *Deps) *cobra.Command {
	return newKVOpCmd(d, &cobra.Command{
		Use:   "del DMAP KEY",
		Short: "Delete KEY (no error if it does not exist)",
		Args:  args(cobra.ExactArgs(2)),
	}, 2, func(o *operator, a []string) error {
		ok, err := o.c.Delete(o.ctx(), a[0], a[1])
		if err != nil {
			return o.explain(err)
		}
		return o.print(map[string]bool{"deleted": ok}, func(w *tabw) {
			if ok {
				w.line("deleted")
			} else {
				w.line("not deleted: no such key")
			}
		})
	})
}

func newKVIncrCmd(d *Deps) *cobra.Command {
	var by int64
	cmd := newKVOpCmd(d, &cobra.Command{
		Use:   "incr DMAP KEY [--by N]",
		Short: "Add N (default 1, negative to decrement) to the integer under KEY (a missing key counts as 0)",
		Args:  args(cobra.ExactArgs(2)),
	}, 2, func(o *operator, a []string) error {
		n, v, err := o.c.Incr(o.ctx(), a[0], a[1], by)
		if err != nil {
			return o.explain(err)
		}
		return o.print(map[string]any{"value": n, "version": v}, func(w *tabw) {
			w.line("value:\t%d", n)
			w.line("version:\t%d", v)
		})
	})
	cmd.Flags().Int64Var(&by, "by", 1, "the increment (negative to decrement)")
	return cmd
}

func newKVExpireCmd(d *Deps) *cobra.Command {
	return newKVOpCmd(d, &cobra.Command{
		Use:   "expire DMAP KEY DURATION",
		Short: "Make KEY expire DURATION from now (0: never expire)",
		Args:  args(cobra.ExactArgs(3)),
	}, 2, func(o *operator, a []string) error {
		ttl, err := time.ParseDuration(a[2])
		if err != nil || ttl < 0 {
			return &usageError{err: fmt.Errorf("DURATION %q is not a duration of 0 or more (e.g. 90s, 10m, 0 to never expire)", a[2])}
		}
		found, err := o.c.Expire(o.ctx(), a[0], a[1], ttl)
		if err != nil {
			return o.explain(err)
		}
		if !found {
			return &cliError{Code: client.CodeNotFound, Message: fmt.Sprintf("%q has no key %q", a[0], a[1]), Hint: "no such key"}
		}
		return o.print(map[string]bool{"found": true}, func(w *tabw) {
			if ttl == 0 {
				w.line("the key no longer expires")
			} else {
				w.line("the key expires in %s", ttl)
			}
		})
	})
}

func newKVScanCmd(d *Deps) *cobra.Command {
	var match, cursor string
	var limit int
	var all bool
	cmd := &cobra.Command{
		Use:   "scan DMAP [--match GLOB] [--limit N] [--cursor C | --all]",
		Short: "List the keys of DMAP, a page at a time (or all of them with --all)",
		Long: `scan lists the keys of DMAP that match --match (a glob: * any bytes, ? one
byte, [abc] a class, \x the byte x; default: every key), one per line.

Without --all it prints one page of at most --limit keys and, when there is
more, the cursor to pass with --cursor for the next page (on stderr). With
--all it pages through every key (--limit keys a request).`,
		Args: args(cobra.ExactArgs(1)),
	}
	cmd = newKVOpCmd(d, cmd, 1, func(o *operator, a []string) error {
		switch {
		case limit < 1 || limit > 10000:
			return &usageError{err: fmt.Errorf("--limit %d must be from 1 to 10000", limit)}
		case all && cursor != "":
			return &usageError{err: errors.New("--all starts from the beginning: drop --cursor")}
		}
		var keys []string
		next := cursor
		for {
			page, c, err := o.c.Scan(o.ctx(), a[0], match, next, limit)
			if err != nil {
				return o.explain(err)
			}
			keys, next = append(keys, page...), c
			if !all || next == "" {
				break
			}
		}
		if keys == nil {
			keys = []string{}
		}
		if o.output == "table" && next != "" {
			fmt.Fprintf(o.d.Stderr, "more keys: run again with --cursor %s (or use --all)\n", next)
		}
		return o.print(map[string]any{"keys": keys, "cursor": next}, func(w *tabw) {
			for _, k := range keys {
				w.line("%s", k)
			}
		})
	})
	fs := cmd.Flags()
	fs.StringVar(&match, "match", "", "only keys matching this glob (default: every key)")
	fs.IntVar(&limit, "limit", 100, "keys per page (1 to 10000)")
	fs.StringVar(&cursor, "cursor", "", "continue where a previous scan stopped")
	fs.BoolVar(&all, "all", false, "list every key, page after page")
	return cmd
}

func newKVLockCmd(d *Deps) *cobra.Command {
	var ttl, wait time.Duration
	cmd := newKVOpCmd(d, &cobra.Command{
		Use:   "lock DMAP KEY [--ttl D] [--wait D]",
		Short: "Take the lock named KEY and print its fencing token",
		Long: `lock takes the lock named KEY in DMAP and prints its fencing token: a number
that grows with every holder; pass it along with what the lock protects, and
to 'olric-raft kv unlock'.

The lock expires after --ttl unless released. lock waits up to --wait (at
most 30s) for the current holder (0: try once), then fails with error locked.
Locks are apart from values: locking KEY does not touch the value of KEY.`,
		Args: args(cobra.ExactArgs(2)),
	}, 2, func(o *operator, a []string) error {
		if ttl < 0 || wait < 0 {
			return &usageError{err: fmt.Errorf("--ttl %s and --wait %s must not be negative", ttl, wait)}
		}
		tok, err := o.c.Lock(o.ctx(), a[0], a[1], ttl, wait)
		if err != nil {
			return o.explain(err)
		}
		return o.print(map[string]uint64{"token": tok}, func(w *tabw) {
			w.line("token: %d", tok)
		})
	})
	fs := cmd.Flags()
	fs.DurationVar(&ttl, "ttl", 30*time.Second, "the lock expires after this long (0: the cluster's default, 30s)")
	fs.DurationVar(&wait, "wait", 0, "wait up to this long for the current holder (at most 30s)")
	return cmd
}

func newKVUnlockCmd(d *Deps) *cobra.Command {
	return newKVOpCmd(d, &cobra.Command{
		Use:   "unlock DMAP KEY TOKEN",
		Short: "Release the lock named KEY held with TOKEN",
		Args:  args(cobra.ExactArgs(3)),
	}, 2, func(o *operator, a []string) error {
		tok, err := strconv.ParseUint(a[2], 10, 64)
		if err != nil {
			return &usageError{err: fmt.Errorf("TOKEN %q is not a token (the number 'olric-raft kv lock' printed)", a[2])}
		}
		if err := o.c.Unlock(o.ctx(), a[0], a[1], tok); err != nil {
			return o.explain(err)
		}
		return o.print(map[string]bool{"unlocked": true}, func(w *tabw) { w.line("unlocked") })
	})
}

func newKVDestroyCmd(d *Deps) *cobra.Command {
	return newKVOpCmd(d, &cobra.Command{
		Use:   "destroy DMAP",
		Short: "Delete every key of DMAP",
		Args:  args(cobra.ExactArgs(1)),
	}, 1, func(o *operator, a []string) error {
		if err := o.c.Destroy(o.ctx(), a[0]); err != nil {
			return o.explain(err)
		}
		return o.print(map[string]bool{"destroyed": true}, func(w *tabw) { w.line("destroyed: %s", a[0]) })
	})
}
