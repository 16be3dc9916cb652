package cli

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/olric-raft/olric-raft/api/httpapi"
	"github.com/olric-raft/olric-raft/api/resp"
	"github.com/olric-raft/olric-raft/dataplane"
	"github.com/olric-raft/olric-raft/internal/connlimit"
	"github.com/olric-raft/olric-raft/metrics"
	"github.com/olric-raft/olric-raft/node"
	"github.com/olric-raft/olric-raft/transport"
)

// Server timings.
const (
	// leaveTimeout bounds the graceful leave on SIGINT/SIGTERM.
	leaveTimeout = 30 * time.Second
	// httpShutdownTimeout bounds the wait for in-flight HTTP requests.
	httpShutdownTimeout = 10 * time.Second
	// readyPoll is the pause between readiness checks at start-up;
	// readyCheckTimeout bounds one check.
	readyPoll         = 250 * time.Millisecond
	readyCheckTimeout = 2 * time.Second
	// forcedWait bounds the wait for an interrupted Leave to return after
	// Close on a second signal.
	forcedWait = 5 * time.Second
)

// errForced reports a shutdown cut short by a second signal.
var errForced = errors.New("forced shutdown on a second signal (did not leave the cluster gracefully)")

func newServerCmd(d *Deps) *cobra.Command {
	var f *serverFlags
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Run an olric-raft member",
		Long: `Run an olric-raft member: Raft (routing table), gossip, and the HTTP API.

Settings come from flags, then environment variables OLRIC_RAFT_<FLAG>, then
the --config YAML file, then defaults. On SIGINT or SIGTERM the member leaves
the cluster gracefully and exits; a second signal makes it exit at once. On
SIGHUP it reloads its TLS certificate, key and CA (new connections use them;
a failed reload is logged and keeps the old ones).

Security: --tls-cert, --tls-key and --tls-ca turn on mutual TLS on the
cluster port (every member needs a certificate of that CA: see
'olric-raft tls gen'); --tls-clients also serves TLS on the HTTP and RESP
listeners; --gossip-key encrypts gossip. --auth-tokens FILE makes HTTP and
RESP clients authenticate with a token of the file (one "ROLE TOKEN" per
line, roles read, write, admin; reloaded on SIGHUP); without it, no
authentication (the --dev default too).

  olric-raft server --dev                                   # one member, temporary data
  olric-raft server --node-id a --data-dir /var/lib/a --bootstrap-expect 3 --join b:3322,c:3322`,
		Args: args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if d.NewNode == nil {
				return errors.New("server: no node constructor wired (a build bug)")
			}
			if err := refuseServerToken(cmd); err != nil {
				return err
			}
			sc, err := buildServerConfig(f, d.LookupEnv, os.Hostname)
			if err != nil {
				return err
			}
			return runServer(cmd.Context(), sc, d)
		},
	}
	f = addServerFlags(cmd.Flags())
	return cmd
}

func newLogger(w io.Writer, level slog.Level, format string) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// runServer runs a member until it is told to stop: a signal, a leave over
// the HTTP API, ctx, or a failure of the HTTP server.
//
// Start-up order:
//  1. Listen on --http-addr, then on --resp-addr, first, so that a port
//     clash fails fast with a clear error before the node opens its
//     stores or contacts anyone.
//  2. Start the node (node.New: Raft, gossip, cluster port).
//  3. Serve HTTP and RESP; log "olric-raft ready" once the node is ready.
//
// Shutdown order (the reverse, and why):
//  1. Leave the cluster while HTTP still serves, so that clients get 503
//     leaving with Retry-After (not refused connections) during the
//     handover and operators can watch /v1/status. (After an HTTP leave,
//     the node has already left.)
//  2. Stop the readiness watcher: it reads the node.
//  3. Shut HTTP down: stop accepting and let in-flight requests, which
//     call the node, finish before the node closes under them. Then close
//     the RESP server (it stops accepting, closes its connections, aborts
//     running commands and waits for their handlers), also before the node.
//  4. Close the node (idempotent; Leave already closed it).
//  5. Remove the --dev temporary data dir, when nothing writes to it.
//
// A second signal during the leave closes the node and the HTTP server at
// once and returns errForced.
func runServer(ctx context.Context, sc *serverConfig, d *Deps) error {
	logger := newLogger(d.Stderr, sc.LogLevel, sc.LogFormat)
	cfg := sc.Node
	cfg.Logger = logger

	signals := d.Signals
	if signals == nil {
		ch := make(chan os.Signal, 2)
		signal.Notify(ch, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
		defer signal.Stop(ch)
		signals = ch
	}
	// SIGHUP runs the reloaders (reload.go); other signals pass through.
	reload := newReloaders(logger)
	signals, stopReload := watchReload(signals, reload)
	defer stopReload()

	// One TLS provider for the cluster port (through the node) and the
	// HTTP and RESP listeners, so one reload renews them all.
	var tlsProvider *transport.TLSProvider
	if cfg.TLS.Enabled() && cfg.TLS.Provider == nil {
		p, err := transport.NewTLSProvider(cfg.TLS.Files())
		if err != nil {
			return &usageError{err: fmt.Errorf("--tls-cert, --tls-key, --tls-ca: %w", err)}
		}
		tlsProvider, cfg.TLS.Provider = p, p
		reload.add("tls", p.Reload)
		logger.Info("TLS on the cluster port", "tls_clients", sc.TLSClients,
			"cert_serial", p.Certificate().SerialNumber.String(), "cert_not_after", p.Certificate().NotAfter)
	}

	// Client authentication (auth.go): the tokens, reloaded on SIGHUP.
	logAuth(logger, sc.Auth)
	if sc.Auth != nil {
		reload.add("auth-tokens", sc.Auth.Reload)
	}

	if sc.TempDataDir {
		dir, err := os.MkdirTemp("", "olric-raft-dev-")
		if err != nil {
			return fmt.Errorf("--dev: creating a temporary data dir: %w", err)
		}
		cfg.DataDir = dir
		defer func() { // shutdown step 5
			if err := os.RemoveAll(dir); err != nil {
				logger.Warn("removing the temporary data dir", "dir", dir, "err", err)
			}
		}()
	}

	// Start-up step 1.
	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return &cliError{Code: "listen", Message: fmt.Sprintf("--http-addr %s: %v", cfg.HTTPAddr, err),
			Hint: "another process may use that port; choose another with --http-addr"}
	}
	if _, port, _ := net.SplitHostPort(cfg.HTTPAddr); port == "0" {
		cfg.HTTPAddr = ln.Addr().String() // advertise the port we got
	}
	respLn, err := net.Listen("tcp", cfg.RESPAddr)
	if err != nil {
		_ = ln.Close()
		return &cliError{Code: "listen", Message: fmt.Sprintf("--resp-addr %s: %v", cfg.RESPAddr, err),
			Hint: "another process may use that port; choose another with --resp-addr"}
	}
	if _, port, _ := net.SplitHostPort(cfg.RESPAddr); port == "0" {
		cfg.RESPAddr = respLn.Addr().String() // advertise the port we got
	}
	if sc.TLSClients && tlsProvider != nil {
		// net/http runs the handshake itself (bounded by its timeouts);
		// the RESP listener bounds it with the cluster port's default.
		ln = tls.NewListener(ln, tlsProvider.ClientsConfig())
		respLn = tlsProvider.ClientsListener(respLn, transport.DefaultHandshakeTimeout, logger)
	}
	// Outermost (over TLS, so a refused client gets its answer in TLS):
	// connections over --max-connections are answered busy and closed.
	ln = connlimit.New(ln, sc.MaxConnections, httpapi.RejectConnection)
	respLn = connlimit.New(respLn, sc.MaxConnections, resp.RejectConnection)

	// Start-up step 2.
	logger.Info("starting olric-raft", "version", d.Version, "node_id", string(cfg.NodeID), "data_dir", cfg.DataDir, "dev", sc.Dev)
	n, err := d.NewNode(cfg)
	if err != nil {
		_ = ln.Close()
		_ = respLn.Close()
		return fmt.Errorf("starting the node: %w", err)
	}

	// Start-up step 3.
	left := make(chan struct{})
	var leftOnce sync.Once
	registry := metrics.ForNode(n) // GET /metrics: the node, HTTP and RESP
	srv := &http.Server{
		Handler: httpapi.New(n, httpapi.Options{
			Logger: logger,
			// The API refuses what the engine would (0: its default too).
			MaxValueBytes: cfg.DataPlane.MaxValueLen,
			OnLeft:        func() { leftOnce.Do(func() { close(left) }) },
			Registry:      registry,
			Auth:          sc.Auth, // nil: no authentication
		}),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		// The request line carries the key, percent-encoded: a key of
		// dataplane.MaxKeyLen bytes takes up to three times that.
		MaxHeaderBytes: 3*dataplane.MaxKeyLen + 64<<10,
		ErrorLog:       slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	respSrv := resp.New(n, resp.Options{
		Logger:  logger,
		Metrics: registry.RESP(resp.CommandNames()),
		Auth:    sc.Auth, // nil: no authentication
		// Room for the largest value the engine takes, plus the rest of
		// the command (0: the data plane's default).
		MaxBulk: max(cfg.DataPlane.MaxValueLen, dataplane.DefaultMaxValueLen) + 2*dataplane.MaxKeyLen,
	})
	respErr := make(chan error, 1)
	go func() { respErr <- respSrv.Serve(respLn) }()

	readyCtx, stopReady := context.WithCancel(context.Background())
	readyDone := make(chan struct{})
	go func() {
		defer close(readyDone)
		waitReady(readyCtx, n, logger, cfg)
	}()

	var exitErr error
	forced := false
	select {
	case sig := <-signals:
		// Shutdown step 1.
		logger.Info("leaving the cluster", "signal", sig.String(), "timeout", leaveTimeout)
		forced, exitErr = leave(n, signals, left, logger)
	case <-left:
		logger.Info("left the cluster over the HTTP API; shutting down")
	case <-ctx.Done():
		logger.Info("stopping", "reason", ctx.Err())
	case err := <-serveErr:
		exitErr = fmt.Errorf("HTTP server: %w", err)
		logger.Error("HTTP server failed; closing the node", "err", err)
	case err := <-respErr:
		exitErr = fmt.Errorf("RESP server: %w", err)
		logger.Error("RESP server failed; closing the node", "err", err)
	}

	// Shutdown step 2.
	stopReady()
	<-readyDone

	// Shutdown step 3.
	if forced {
		_ = srv.Close()
	} else {
		shCtx, cancel := context.WithTimeout(context.Background(), httpShutdownTimeout)
		if err := srv.Shutdown(shCtx); err != nil {
			logger.Warn("HTTP shutdown incomplete; closing connections", "err", err)
			_ = srv.Close()
		}
		cancel()
	}
	// Shutdown step 3, RESP: after HTTP, before the node, so that no
	// command runs on a closed node.
	if err := respSrv.Close(); err != nil {
		logger.Warn("closing the RESP server", "err", err)
	}

	// Shutdown step 4.
	if err := n.Close(); err != nil {
		logger.Warn("closing the node", "err", err)
	}
	logger.Info("olric-raft stopped")
	return exitErr
}

// leave runs a graceful leave and waits for it, a second signal, or a leave
// finished over HTTP meanwhile. It reports true and errForced on a second
// signal; a failed leave is logged (the node is closed after it anyway).
func leave(n Node, signals <-chan os.Signal, left <-chan struct{}, logger *slog.Logger) (bool, error) {
	ctx, cancel := context.WithTimeout(context.Background(), leaveTimeout)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- n.Leave(ctx) }()
	select {
	case err := <-done:
		if err != nil {
			logger.Error("graceful leave failed; closing the node", "err", err)
		} else {
			logger.Info("left the cluster")
		}
		return false, nil
	case <-left:
		// Another leave (over HTTP) finished first; ours ends with it.
		logger.Info("left the cluster over the HTTP API")
		<-done
		return false, nil
	case sig := <-signals:
		logger.Warn("second signal: closing now", "signal", sig.String())
		cancel()
		if err := n.Close(); err != nil {
			logger.Warn("closing the node", "err", err)
		}
		select {
		case <-done:
		case <-time.After(forcedWait):
			logger.Warn("leave did not return after close")
		}
		return true, errForced
	}
}

// waitReady polls n.Ready until it succeeds, then logs "olric-raft ready"
// once with the addresses; it gives up when ctx ends or the node closed.
func waitReady(ctx context.Context, n Node, logger *slog.Logger, cfg node.Config) {
	reported := false
	for {
		rctx, cancel := context.WithTimeout(ctx, readyCheckTimeout)
		err := n.Ready(rctx)
		cancel()
		if err == nil {
			logger.Info("olric-raft ready",
				"node_id", string(n.ID()),
				"http_addr", cfg.HTTPAddr,
				"resp_addr", cfg.RESPAddr,
				"cluster_addr", cfg.ClusterAddr,
				"gossip_addr", cfg.GossipAddr,
				"data_dir", cfg.DataDir,
				"routing_version", n.Routing().Version)
			return
		}
		if ctx.Err() != nil || errors.Is(err, node.ErrClosed) {
			return
		}
		if !reported {
			logger.Info("waiting until ready", "reason", err)
			reported = true
		} else {
			logger.Debug("not ready yet", "reason", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(readyPoll):
		}
	}
}
