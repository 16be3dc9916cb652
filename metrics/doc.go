// Package metrics exposes a member's state to Prometheus (served by the
// HTTP API on GET /metrics), on top of github.com/prometheus/client_golang.
//
// Each member has its own Registry, wrapping a prometheus.NewRegistry()
// (never the global default registry, so several members in one process
// do not clash). Collectors read state when scraped (the node collector,
// a prometheus.Collector, through the small Source interface, which
// *node.Node implements); nothing is pushed from the request paths except
// the HTTP request metrics (HTTP.Observe, called by the API's middleware,
// which feeds a prometheus.CounterVec and HistogramVec). The exposition
// itself (text format, or protobuf when the scraper asks for it) is
// promhttp.HandlerFor's.
//
// # Duties
//
//  1. The server builds the registry with ForNode(n) and hands it to the
//     HTTP API (httpapi.Options.Registry), which serves it and records its
//     requests in Registry.HTTP.
//  2. A scrape (any goroutine; scrapes may run concurrently) makes the
//     prometheus.Registry call every collector's Collect. The node
//     collector reads the committed routing table (one atomic load),
//     Raft's counters, memberlist's member count and the engine's Stats
//     (which locks each partition in turn, briefly).
//  3. HTTP.Observe runs on each request's goroutine, after the response
//     was written; the client_golang vectors synchronize themselves.
//
// # Metrics reference
//
// Raft (this member's view):
//
//	olric_raft_raft_leader                   gauge    1 if this member is the Raft leader, else 0
//	olric_raft_raft_state{state}             gauge    1 for the current Raft state (leader, follower, candidate, shutdown), 0 for the others
//	olric_raft_raft_term                     gauge    current Raft term
//	olric_raft_raft_last_log_index           gauge    index of the last entry in this member's Raft log
//	olric_raft_raft_commit_index             gauge    Raft commit index known to this member
//	olric_raft_raft_applied_index            gauge    last Raft index applied to this member's FSM
//	olric_raft_raft_last_contact_seconds     gauge    seconds since this follower last heard from the leader (absent on the leader and before any contact)
//
// Routing (the committed routing table on this member):
//
//	olric_raft_routing_version               gauge    routing table version (the Raft index that produced it)
//	olric_raft_routing_members{state}        gauge    members by state: alive, leaving, failed
//	olric_raft_routing_partitions{state}     gauge    partitions by state: active, handoff, unavailable
//	olric_raft_routing_written_partitions    gauge    partitions marked written (took an acknowledged write)
//	olric_raft_member_primary_partitions     gauge    partitions this member is primary of
//	olric_raft_member_backup_partitions      gauge    partitions this member is a backup of
//	olric_raft_gossip_members                gauge    members memberlist knows (alive or suspect, this one included)
//	olric_raft_routing_syncing_backups       gauge    backup slots still being filled from their primary (not promotable)
//	olric_raft_member_lease_remaining_seconds gauge   time left on this member's primary lease (0: serves nothing)
//	olric_raft_routing_member_partitions{member,role}          gauge  partitions per member by role: primary, backup (in sync), syncing (being filled)
//	olric_raft_routing_partitions_by_in_sync_replicas{replicas} gauge  partitions by in-sync copies (primary + backups not syncing); replicas="0" are unavailable
//	olric_raft_handoffs_in_flight                              gauge  moves in flight: backup slots being filled plus partitions in handoff
//
// Control plane (latency histograms have buckets latency.Buckets, 100µs
// to 10s):
//
//	olric_raft_raft_proposal_duration_seconds      histogram  leader: proposing a routing entry until it is committed and applied (successful ones)
//	olric_raft_fsm_apply_duration_seconds          histogram  time the FSM took to apply one entry on this member
//	olric_raft_lease_renewals_total{result}        counter    this member's lease renewals with the leader: ok, failed
//	olric_raft_lease_expiries_total                counter    times this member's lease ran out while it held one (it stopped serving as primary)
//	olric_raft_lease_grants_total                  counter    grants this member made as leader
//	olric_raft_members_failed_total                counter    members this member, as leader, failed over after their lease ran out
//
// Routing of requests and replication (present once the data plane is
// open):
//
//	olric_raft_dataplane_forwarded_total                  counter    requests forwarded to another member, the partition's primary
//	olric_raft_dataplane_retries_total{reason}            counter    requests tried again: stale_routing, not_ready (handover), unreachable, no_lease, connection
//	olric_raft_replication_wait_duration_seconds          histogram  time requests served here as primary waited for their in-sync backups
//	olric_raft_handoff_pause_duration_seconds             histogram  per partition taken over here (move, failover): from its routing entry to serving it
//	olric_raft_replication_sent_bytes_total{lane}         counter    bytes sent to backups: stream (mutations), backfill (partition copies)
//	olric_raft_replication_batches_total{lane}            counter    batches sent to backups
//	olric_raft_replication_backups_failed_total           counter    backups reported out of sync (refused or timed out; the leader removes them)
//	olric_raft_replication_backups_in_sync_total          counter    syncing backups reported filled
//	olric_raft_promoted_behind_total                      counter    promotions with a copy behind the previous primary's acknowledged writes (a bug if not 0)
//	olric_raft_handoff_transferred_bytes_total            counter    partition bytes pulled from a previous primary
//	olric_raft_replication_lag_seconds{backup}            gauge      age of the oldest item sent or queued to that backup and not acknowledged (0: caught up)
//	olric_raft_replication_queued_items{backup,lane}      gauge      items waiting to be sent to that backup
//
// Data plane (this member's storage engine, primaries and backups; DMaps
// beyond the first MaxDMapLabels (100) by name are summed into
// dmap="_other"):
//
//	olric_raft_dataplane_open                     gauge    1 once the data plane is open (routing initialized), else 0; the families below appear only then
//	olric_raft_dataplane_partitions               gauge    partitions the engine holds
//	olric_raft_dataplane_keys{dmap}               gauge    keys held
//	olric_raft_dataplane_bytes{dmap}              gauge    bytes of keys plus values held
//	olric_raft_dataplane_locks{dmap}              gauge    locks held
//	olric_raft_dataplane_evictions_total{dmap}    counter  keys evicted (LRU, max idle) while primary, since the engine started
//	olric_raft_dataplane_expirations_total{dmap}  counter  keys expired (TTL) while primary, since the engine started
//
// HTTP front end (route is the matched pattern, e.g. "PUT
// /v1/dmaps/{dmap}/keys/{key}", or "unmatched" for 404/405 answers; never a
// raw path):
//
//	olric_raft_http_requests_total{route,code}                   counter    requests by route and status code
//	olric_raft_http_request_duration_seconds{route,code_class}   histogram  latency by route and status class (2xx, 4xx, ...); buckets HTTPBuckets
//
// RESP front end (command is the lower-case name of a command the server
// knows, from resp.CommandNames, or "other"; a command never run has no
// series):
//
//	olric_raft_resp_commands_total{command,result}          counter    commands by name and result: ok, error (the reply was a RESP error)
//	olric_raft_resp_command_duration_seconds{command}       histogram  latency from parsed to replied (replies of a pipeline are flushed together); buckets latency.Buckets
//
// Label order in the exposition is client_golang's (sorted by name, le
// last), e.g. olric_raft_http_requests_total{code="200",route="..."}.
//
// Go runtime and process: client_golang's standard collectors
// (collectors.NewGoCollector() with its default metric set, and
// collectors.NewProcessCollector()), under their own names and help
// texts. Among them:
//
//	go_info{version}                    gauge    Go version of the binary
//	go_goroutines                       gauge    goroutines that exist
//	go_threads                          gauge    OS threads created
//	go_sched_gomaxprocs_threads         gauge    GOMAXPROCS
//	go_gc_duration_seconds              summary  GC stop-the-world pause durations; _count is the completed GC cycles, _sum the total pause time
//	go_gc_gogc_percent                  gauge    GOGC setting
//	go_gc_gomemlimit_bytes              gauge    GOMEMLIMIT setting
//	go_memstats_alloc_bytes_total       counter  bytes allocated on the heap, even if freed
//	go_memstats_heap_alloc_bytes        gauge    bytes of allocated heap objects
//	go_memstats_heap_inuse_bytes        gauge    bytes in in-use heap spans
//	go_memstats_heap_objects            gauge    allocated heap objects
//	go_memstats_sys_bytes               gauge    bytes obtained from the OS
//	go_memstats_last_gc_time_seconds    gauge    Unix time of the last GC
//	go_memstats_*                       ...      the rest of client_golang's memstats set (mallocs, frees, stacks, mspan, mcache, next GC, ...)
//	process_cpu_seconds_total           counter  user plus system CPU time
//	process_resident_memory_bytes       gauge    resident memory
//	process_virtual_memory_bytes        gauge    virtual memory
//	process_virtual_memory_max_bytes    gauge    virtual memory limit
//	process_open_fds                    gauge    open file descriptors
//	process_max_fds                     gauge    file descriptor limit
//	process_start_time_seconds          gauge    process start, Unix seconds
//	process_network_{receive,transmit}_bytes_total  counter  network bytes (Linux)
//
// The process family set depends on the platform (on Linux it comes from
// /proc; elsewhere some are absent). The earlier hand-written
// go_gc_cycles_total and go_gc_pause_seconds_total are gone: use
// go_gc_duration_seconds_count and go_gc_duration_seconds_sum.
package metrics
