// Package resp serves the data plane over the Redis protocol (RESP2),
// with github.com/tidwall/redcon doing the framing (DESIGN.md §6).
//
// Every command runs with a deadline (Options.RequestTimeout). Commands of
// one connection run one after another, so pipelined replies stay in
// order. A guard in front of redcon's parser checks the framing of every
// request as it is read (multi-bulk count 1..MaxArgs, bulk lengths
// 0..MaxBulk, digits only, CRLF, inline lines at most 64 KiB): anything
// else gets "-ERR Protocol error: ..." and the connection is closed.
//
// # Plain Redis commands (DMap "default")
//
//	PING [msg]  ECHO msg  QUIT  SELECT 0  COMMAND [...] (empty array)
//	CONFIG GET param...  (only "save" and "appendonly", with empty values)
//	INFO [section]       (a "# Server" section)
//	CLIENT SETNAME|SETINFO|GETNAME|ID (for client libraries)
//	GET key
//	SET key value [EX s|PX ms|EXAT t|PXAT t|KEEPTTL] [NX|XX] [GET]
//	    NX on an existing key and XX on a missing one answer a null bulk.
//	    SET ... GET alone is atomic (one getput); combined with other
//	    options it is a GET followed by a SET (not atomic).
//	DEL key...  EXISTS key...  (integer counts; DEL deletes every key on
//	    every owner before it answers)
//	INCR key  INCRBY key n  DECR key  DECRBY key n
//	EXPIRE key s  PEXPIRE key ms  (1 or 0; a non-positive TTL deletes)
//	TTL key  PTTL key  (-2 missing, -1 no expiry)
//	MGET key...  MSET key value [key value ...]  (MSET is not atomic)
//	SCAN cursor [MATCH pattern] [COUNT n]
//	AUTH ... -> "-ERR AUTH not enabled"
//
// # Olric's DM.* commands (Olric's argument order)
//
//	DM.PUT dmap key value [EX s|PX ms|EXAT t|PXAT t] [NX|XX] -> +OK
//	    (NX on an existing key: -KEYFOUND; XX on a missing one: -KEYNOTFOUND)
//	DM.GET dmap key -> bulk, or -KEYNOTFOUND key not found
//	DM.DEL dmap key [key...] -> integer (how many existed)
//	DM.EXPIRE dmap key seconds, DM.PEXPIRE dmap key ms -> +OK or -KEYNOTFOUND
//	DM.INCR dmap key delta, DM.DECR dmap key delta -> integer
//	DM.INCRBYFLOAT dmap key delta -> bulk (the new value)
//	DM.GETPUT dmap key value -> the previous value, or a null bulk
//	DM.DESTROY dmap -> +OK
//	DM.SCAN dmap cursor [MATCH p] [COUNT n] -> [cursor, [keys...]]
//	    Our simplified form: it walks every partition (Olric's takes a
//	    partition id first); the cursor works like SCAN's.
//	DM.LOCK dmap key seconds [EX s|PX ms] -> the fencing token (bulk,
//	    decimal). seconds is how long to wait for the lock; EX/PX is the
//	    lease (default: the wait). -LOCKNOTACQUIRED when not acquired.
//	DM.UNLOCK dmap key token -> +OK or -NOSUCHLOCK
//	DM.LOCKLEASE dmap key token seconds, DM.PLOCKLEASE dmap key token ms
//	    -> +OK or -NOSUCHLOCK
//
// # Cluster commands
//
//	CLUSTER.ROUTINGTABLE -> one entry per partition:
//	    [id (int), state (bulk), primary node id (bulk, "" when none),
//	     [backup node ids...], leader epoch (int)]
//	CLUSTER.MEMBERS -> one entry per member:
//	    [id, resp_addr, http_addr, cluster_addr, state (bulk),
//	     leader (int 0/1), primaries (int), backups (int)]
//	STATS -> a flat array of name/value pairs (bulk names, integer values):
//	    routing_version, members, alive_members, partitions, unavailable,
//	    primaries, backups, uptime_seconds, ready
//
// # Cursors
//
// RESP cursors are decimal integers (clients such as go-redis parse them
// as uint64): "0" starts and ends a scan. A data-plane cursor
// "partition:hash" is encoded without state as partition<<47 | hash>>17
// (rounded down to its 2^17-wide hash bucket, so keys sharing that bucket
// with the last one returned may be returned twice, as Redis allows; a
// page is extended until the cursor moves, so a scan always progresses).
// Any other cursor is kept in a bounded per-server table under an id with
// the top bit set; an id that fell out of the table is "-ERR invalid
// cursor".
//
// # Errors
//
// Data-plane errors map to stable prefixes: not_found -> KEYNOTFOUND,
// key_exists -> KEYFOUND, locked -> LOCKNOTACQUIRED, no_such_lock ->
// NOSUCHLOCK, unavailable, timeout, overloaded, closed, leaving and other
// retryable errors -> TRYAGAIN, too_large -> "ERR value too large",
// full -> OOM, bad input -> ERR. Argument errors use Redis's strings, e.g.
// "ERR wrong number of arguments for 'get' command", "ERR syntax error",
// "ERR value is not an integer or out of range".
package resp
