package agent

import (
	"fmt"
	"io"
	"log/slog"
)

// LogKeyComponent is the attribute that scopes a logger to one component.
const LogKeyComponent = "component"

// NewLogger builds the agent's one logger for the configured level and
// format. The returned LevelVar lets the level change at run time (a
// remotely driven setting) without rebuilding handlers.
func NewLogger(w io.Writer, level, format string) (*slog.Logger, *slog.LevelVar, error) {
	lv := new(slog.LevelVar)
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, nil, fmt.Errorf("log level %q: %w", level, err)
	}
	opts := &slog.HandlerOptions{Level: lv}
	var h slog.Handler
	switch format {
	case "text":
		h = slog.NewTextHandler(w, opts)
	case "json":
		h = slog.NewJSONHandler(w, opts)
	default:
		return nil, nil, fmt.Errorf("log format %q: want text or json", format)
	}
	return slog.New(h), lv, nil
}
