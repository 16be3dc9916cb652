// Package resp serves the data plane over the Redis protocol (RESP2)
// (DESIGN.md §6). github.com/tidwall/redcon parses requests
// (ReadNextCommand) and encodes replies (its Append functions); the
// connection loop is the package's own (clientconn.go), which reuses each
// connection's buffers so that framing allocates nothing per command.
//
// Every command runs with a deadline (Options.RequestTimeout). Replies
// of a pipeline are written in command order: its commands run one after
// another, or, when they are single-key commands on distinct keys, as one
// batch (pipeline.go). With one thread running Go code (GOMAXPROCS 1)
// the connections wait for input through a ready queue that serves them
// in the order their input arrived (readyqueue_linux.go). A guard in front of redcon's parser checks the framing of every
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
//	AUTH [username] token  (see Authentication; without Options.Auth:
//	    "-ERR AUTH <password> called without any password configured ...")
//
// # Authentication
//
// With Options.Auth (the server's --auth-tokens), a connection must
// authenticate before anything but AUTH, HELLO and QUIT (PING included,
// as in redis-server); other commands get "-NOAUTH Authentication
// required.". AUTH token, or Redis 6's AUTH username token (the username
// is ignored: the token alone decides the role; so redis-cli -a TOKEN,
// redis-cli --user x --pass TOKEN and go-redis's Password option work),
// answers +OK, or "-WRONGPASS invalid username-password pair or user is
// disabled." and leaves the connection as it was. HELLO's AUTH username
// token option is checked the same way. A command the token's role may
// not run gets "-NOPERM this user has no permissions to run the 'cmd'
// command (this token's role is read; 'cmd' needs write)". The roles
// (commandRoles in auth.go, the one table): read runs PING, ECHO,
// SELECT, COMMAND, CONFIG GET, INFO, CLIENT, GET, MGET, EXISTS, TTL,
// PTTL, SCAN, DM.GET, DM.SCAN, CLUSTER.*, STATS; write adds SET, MSET,
// DEL, INCR*, DECR*, EXPIRE, PEXPIRE and the other DM.* commands (locks
// included); admin adds DM.DESTROY. A command missing from the table is
// never run with authentication on ("unknown command"), and a test fails
// when exec dispatches one. The connection keeps the token's SHA-256
// digest, not the token, and looks its role up again for every command:
// a token removed by a reload (SIGHUP) stops working on open connections
// at their next command (NOAUTH).
//
// # Olric's DM.* commands (Olric's argument order)
//
// As Olric 0.6.1 does (its Go client is tested against these in
// integration/olricclient), seconds are decimal and may have a fraction
// ("1.5"; Olric's client sends time.Duration.Seconds()), rounded to the
// millisecond; ms are integers.
//
//	DM.PUT dmap key value [EX s|PX ms|EXAT s|PXAT ms] [NX|XX] -> +OK
//	    (NX on an existing key: -KEYFOUND; XX on a missing one: -KEYNOTFOUND)
//	DM.GET dmap key [RW] -> bulk, or -KEYNOTFOUND key not found. With RW
//	    the bulk is the entry in Olric's storage encoding, which Olric's
//	    client decodes: key length (1 byte; 0 and no key when the key is
//	    over 255 bytes), key, expiry (8 bytes big endian, unix ms, 0 for
//	    none), timestamp and last access (8 bytes each, always 0), value
//	    length (4 bytes), value.
//	DM.DEL dmap key [key...] -> integer (how many existed)
//	DM.EXPIRE dmap key seconds, DM.PEXPIRE dmap key ms -> +OK or -KEYNOTFOUND
//	DM.INCR dmap key delta, DM.DECR dmap key delta -> integer
//	DM.INCRBYFLOAT dmap key delta -> bulk (the new value)
//	DM.GETPUT dmap key value [RW] -> the previous value (with RW as an
//	    entry, expiry 0), or a null bulk
//	DM.DESTROY dmap -> +OK
//	DM.SCAN partID dmap cursor [MATCH re] [COUNT n] [RC] -> [cursor,
//	    [keys...]]: Olric's form (told apart by its numeric first and
//	    third arguments). It scans one partition; MATCH is a Go regular
//	    expression (as in Olric, not a glob); COUNT bounds the keys looked
//	    at, so a page may be empty before cursor 0; RC (scan a backup)
//	    answers [0, []] since the primary's scan has every key. The
//	    cursor carries the exact next hash (h>>1+1 for the last key's
//	    hash h), so no key is returned twice.
//	DM.SCAN dmap cursor [MATCH p] [COUNT n] -> [cursor, [keys...]]
//	    Our simplified form: it walks every partition; MATCH is a glob
//	    and the cursor works like SCAN's.
//	DM.LOCK dmap key seconds [EX s|PX ms] -> the fencing token (bulk,
//	    decimal). seconds is how long to wait for the lock; EX/PX is the
//	    lease (default: the wait, at least dataplane.DefaultLockLease, 30
//	    s: Olric's locks without EX/PX never expire, ours always do).
//	    -LOCKNOTACQUIRED when not acquired.
//	DM.UNLOCK dmap key token -> +OK or -NOSUCHLOCK
//	DM.LOCKLEASE dmap key token seconds, DM.PLOCKLEASE dmap key token ms
//	    -> +OK or -NOSUCHLOCK
//
// # Cluster commands
//
// Olric's shapes first (its client reads only those fields), then ours:
//
//	CLUSTER.ROUTINGTABLE -> one entry per partition:
//	    [id (int), [primary's RESP address] ([] when none),
//	     [backups' RESP addresses...], state (bulk), primary node id (bulk,
//	     "" when none), [backup node ids...], leader epoch (int)]
//	    -TRYAGAIN while the routing table is not initialized. Olric's
//	    client sends each key to the last primary address of partition
//	    XXH64(dmap+key) mod the number of entries, which is our partition
//	    too (metadata.PartitionOf): its default hasher reaches the primary
//	    directly.
//	CLUSTER.MEMBERS -> one entry per member that serves clients (has a
//	    RESP address, not failed, not dead or left in gossip):
//	    [resp_addr (Olric's name), birthdate (int: a positive number fixed
//	     per process of the member, from its incarnation, not a time),
//	     "true"|"false" (Raft leader: Olric's coordinator), id, http_addr,
//	     cluster_addr, state (bulk), primaries (int), backups (int)]
//	STATS [CR] -> one bulk string of JSON in the shape of Olric's
//	    stats.Stats: member, cluster_coordinator, cluster_members (name =
//	    RESP address, birthdate, id = Olric's member id), partitions and
//	    backups (the partitions this member is primary and backup of, with
//	    their backups; length is not tracked and stays 0), uptime_seconds,
//	    runtime (with CR); plus "olric_raft": this node's status as GET
//	    /v1/status. Olric's cmdline, network, dmaps and pub_sub are left
//	    out (zero).
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
