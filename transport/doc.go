// Package transport is olric-raft's cluster networking: one TCP port (the
// cluster address) multiplexing hashicorp/raft and the cluster RPC,
// length-prefixed msgpack framing, a pipelined and pooled RPC client and
// server, the memberlist (gossip) transport, and fault injection for tests.
//
// # What it owns
//
//  1. Mux (Listen): the cluster-port listener. Every accepted connection
//     must send one kind byte within Config.HandshakeTimeout; the Mux then
//     queues it for the listener of that kind: KindRaft for Mux.RaftLayer
//     (a raft.StreamLayer, to pass to raft.NewNetworkTransport), KindRPC for
//     the RPC server started by Mux.ServeRPC. An unknown byte or a timeout
//     closes that connection only; a full queue (Config.AcceptQueue) closes
//     the connection and counts it in Stats.Dropped. Mux.Dial writes the
//     kind byte on an outgoing connection.
//  2. Cluster RPC: Client.Call sends a method name and a msgpack body with
//     the caller's deadline; the Handler given to ServeRPC answers with a
//     body or an error code (RemoteError). Calls are pipelined: many in
//     flight on one connection, answered in any order, matched by ID. The
//     client keeps ClientOptions.MaxConnsPerAddr connections per peer,
//     drops a broken one (failing its calls in flight with ErrConnLost) and
//     redials on the next call.
//  3. Gossip: NewGossipTransport wraps memberlist's NetTransport so faults
//     apply to gossip packets and streams too. NewStdLogger bridges the
//     *log.Logger that hashicorp libraries take to slog.
//  4. Faults: Config.Faults and NewGossipTransport take a Faults (nil in
//     production). FaultNetwork is the one tests use: register each node's
//     addresses, then Partition, Cut, CutOneWay, Isolate, SetDelay,
//     SetDrop and Heal. The dialing side enforces faults, knowing both
//     members' listen addresses (its own from its configuration, the peer's
//     as dialed; never conn.LocalAddr, an ephemeral port): a dial over a cut
//     link fails at once with ErrUnreachable, an established stream breaks
//     as soon as either direction is cut, delays stall writes (and, for the
//     reverse direction, reads), and packets are dropped or delayed at the
//     sender. Receive paths are unchanged. With TLS on, TLS runs on top of
//     the fault-injected conn, so faults apply the same way.
//  5. TLS (Config.TLS, a *TLSProvider): mutual TLS 1.3 on every cluster-port
//     connection, accepted and dialed, Raft and RPC alike. Both sides
//     present the provider's current certificate and verify the peer's
//     chain against its CA pool with the right extended key usage
//     (serverAuth for the accepting side, clientAuth for the dialer); host
//     names are not checked (membership is "holds a certificate of the
//     cluster CA"; addresses come from gossip). A refused handshake closes
//     that connection only, is counted in Stats.Rejected and logged once at
//     warn on each side that sees it (remote address and reason, never key
//     material); Dial returns an error wrapping ErrUnreachable and
//     ErrHandshake. The provider keeps the key pair and CA pool behind an
//     atomic pointer read by the tls.Config callbacks (GetCertificate,
//     GetClientCertificate, VerifyConnection), so TLSProvider.Reload changes
//     what new connections use; established ones keep theirs, and a failed
//     reload keeps the old material. TLSProvider.ClientsConfig and
//     ClientsListener serve the same certificate to HTTP and RESP clients
//     (no client certificate required). LoadGossipKey reads memberlist's
//     encryption key (base64 of 16, 24 or 32 bytes).
//
// # Wire format of the cluster port
//
// Byte 0 of every connection, written by the dialer, is the kind:
//
//	0x52 'R'  Raft: the rest is hashicorp/raft's NetworkTransport protocol,
//	          opaque to this package
//	0x43 'C'  cluster RPC: the rest is a stream of frames in each direction
//
// With TLS (Config.TLS) the connection is TLS 1.3 from its first byte; the
// kind byte is the first application byte inside it, and the accepting side
// answers with the same byte (an acknowledgment, sent only with TLS) before
// anything else flows: in TLS 1.3 the server checks the client's certificate
// after the client's side of the handshake is done, so the acknowledgment is
// how Dial learns, within the handshake deadline, that it was accepted.
// Everything after it is as without TLS. Members with and without TLS
// cannot talk to each other.
//
// An RPC frame is
//
//	bytes 0..3    N, uint32 big-endian: length of the envelope that follows;
//	              N > MaxFrameSize (default 64 MiB) closes the connection
//	bytes 4..4+N  the envelope, a msgpack array
//
// The request envelope (client to server) is
//
//	0x94          fixarray of 4 elements
//	ID            msgpack uint: 0x00-0x7f, or 0xcc/0xcd/0xce/0xcf followed by
//	              1/2/4/8 big-endian bytes; unique among the calls in flight
//	              on the connection
//	Method        msgpack str: 0xa0|len (len < 32), 0xd9 len8, 0xda len16 or
//	              0xdb len32, then the UTF-8 bytes
//	Deadline      msgpack int: unix nanoseconds, 0 = none; negative values
//	              as 0xe0-0xff or 0xd0-0xd3
//	Body          msgpack bin: 0xc4 len8, 0xc5 len16 or 0xc6 len32, then the
//	              bytes: the msgpack encoding of Call's req (empty for nil)
//
// The response envelope (server to client) is
//
//	0x94          fixarray of 4 elements
//	ID            the request's ID
//	Code          str: "" on success, else a stable error code (CodeInternal,
//	              CodeDeadlineExceeded, ... or the handler's RemoteError.Code)
//	Message       str: human-readable detail of the error, "" on success
//	Body          bin: the handler's result, msgpack-encoded
//
// For example, request 1 of method "ping" without deadline or body is the 14
// bytes 00 00 00 0a 94 01 a4 70 69 6e 67 00 c4 00. Encoders write the
// shortest forms shown. Decoders accept any msgpack integer form that fits,
// str or nil where bin is expected, and array16/array32 headers; an array of
// more than 4 elements is allowed and everything after the 4th element is
// ignored (room for fields added later). Decoding never allocates more than
// the frame, and a malformed envelope closes only its connection.
//
// The deadline is absolute, so members' clocks must agree to well within
// the deadlines used. A request that arrives past its deadline is answered
// CodeDeadlineExceeded without running the handler. When the caller's
// context ends first, Call returns at once (ErrTimeout for a deadline) and
// the late response is dropped.
//
// # Errors
//
// Sentinels (ErrClosed, ErrUnreachable, ErrConnLost, ErrTimeout,
// ErrFrameTooLarge, ErrMalformed, ErrUnknownKind, ErrInvalidConfig,
// ErrHandshake, ErrTLSConfig, ErrGossipKey) are wrapped with %w; test with
// errors.Is. ErrUnreachable means the request was
// surely not delivered (safe to retry); ErrConnLost and ErrTimeout are
// indeterminate. Handler errors cross the wire as codes and come back as
// *RemoteError; a remote CodeDeadlineExceeded also matches ErrTimeout and
// context.DeadlineExceeded.
//
// # Goroutines and who stops them
//
//  1. Mux accept loop, one per Mux: stopped by Mux.Close (closes the
//     listener), which waits for it.
//  2. Handshake, one per accepted connection until its kind byte arrives (at
//     most 1024 at once, each at most HandshakeTimeout, which with TLS
//     bounds the TLS handshake, the kind byte and its acknowledgment
//     together, so a peer that never completes a handshake cannot hold it):
//     ends on its own, or Mux.Close closes the connection; Mux.Close waits.
//     On the dialing side the handshake runs in Dial's caller, bounded by
//     the earlier of ctx's deadline and HandshakeTimeout.
//  3. RPC acceptor, one per Mux after ServeRPC: ends when Mux.Close closes
//     the KindRPC listener; Mux.Close waits.
//  4. RPC server, per connection: a reader, a writer (the only writer of the
//     connection, coalescing queued responses into one flush) and at most
//     MaxInflight handler goroutines (at the limit the reader stops reading:
//     backpressure). They end when the connection breaks; Mux.Close closes
//     the connection, cancels the handlers' contexts and waits for them, so
//     handlers must honour ctx.
//  5. RPC client, per pooled connection: a reader matching responses to
//     calls and a writer. They end when the connection breaks (including
//     Mux.Close closing it); Client.Close breaks them all and waits.
//  6. Gossip: memberlist's NetTransport runs a TCP and a UDP listener
//     goroutine (its consumer, memberlist, must keep draining PacketCh and
//     StreamCh until Shutdown); delayed packets are time.AfterFunc timers.
//     memberlist.Shutdown calls the transport's Shutdown, which stops the
//     pending timers, waits for those firing, and stops NetTransport.
//  7. FaultNetwork runs none: a cut closes the affected streams in the
//     caller's goroutine.
//  8. TLSProvider runs none: ClientsListener's handshake runs in the first
//     Read or Write of the connection's user, bounded by its timeout.
//
// Not ours but relying on us: raft's NetworkTransport runs an accept loop
// (stopped by its Close, which closes the RaftLayer) and one goroutine per
// inbound connection, which exits when Mux.Close closes that connection.
// Shutdown order for a node, reversed dependency order: raft.Shutdown, then
// the NetworkTransport's Close (no more Raft traffic), Client.Close (no more
// outgoing RPC), Mux.Close (inbound RPC handlers drained, every remaining
// connection closed); memberlist shuts its transport down itself.
package transport
