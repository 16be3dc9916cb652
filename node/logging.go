package node

import (
	"bytes"
	"context"
	"io"
	"log"
	"log/slog"
	"strings"

	"github.com/hashicorp/go-hclog"
)

// lineWriter turns each line written by a library logger (Raft's hclog,
// memberlist's log.Logger) into one slog record, so every line carries the
// member id and goes where the node's logs go.
type lineWriter struct {
	logger    *slog.Logger
	component string
}

func (w lineWriter) Write(p []byte) (int, error) {
	for _, line := range bytes.Split(bytes.TrimRight(p, "\n"), []byte{'\n'}) {
		s := strings.TrimSpace(string(line))
		if s == "" {
			continue
		}
		level := slog.LevelInfo
		switch {
		case strings.Contains(s, "[ERR") || strings.Contains(s, "[ERROR]"):
			level = slog.LevelError
		case strings.Contains(s, "[WARN"):
			level = slog.LevelWarn
		case strings.Contains(s, "[DEBUG]") || strings.Contains(s, "[TRACE]"):
			level = slog.LevelDebug
		}
		w.logger.Log(context.Background(), level, s, "component", w.component)
	}
	return len(p), nil
}

// hclogLevel maps the slog level enabled on logger to hclog's.
func hclogLevel(logger *slog.Logger) hclog.Level {
	ctx := context.Background()
	switch {
	case logger.Enabled(ctx, slog.LevelDebug):
		return hclog.Debug
	case logger.Enabled(ctx, slog.LevelInfo):
		return hclog.Info
	case logger.Enabled(ctx, slog.LevelWarn):
		return hclog.Warn
	default:
		return hclog.Error
	}
}

func newRaftLogger(logger *slog.Logger) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{
		Name:        "raft",
		Level:       hclogLevel(logger),
		Output:      lineWriter{logger: logger, component: "raft"},
		DisableTime: true,
	})
}

func newStdLogger(logger *slog.Logger, component string) *log.Logger {
	var w io.Writer = lineWriter{logger: logger, component: component}
	return log.New(w, "", 0)
}
