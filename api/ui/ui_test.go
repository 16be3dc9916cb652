package ui

import (
	"strings"
	"testing"
)

func TestLookup(t *testing.T) {
	for name, ct := range map[string]string{
		"":           "text/html; charset=utf-8",
		"index.html": "text/html; charset=utf-8",
		"app.js":     "text/javascript; charset=utf-8",
		"style.css":  "text/css; charset=utf-8",
	} {
		a, ok := Lookup(name)
		if !ok || a.ContentType != ct || len(a.Body) == 0 {
			t.Errorf("Lookup(%q) = %q %q (%d bytes), %v; want %q", name, a.Name, a.ContentType, len(a.Body), ok, ct)
		}
	}
	for _, name := range []string{"nope", "static/app.js", "../ui.go", "ui.go", "index.htm"} {
		if _, ok := Lookup(name); ok {
			t.Errorf("Lookup(%q) found an asset", name)
		}
	}
	if idx, _ := Lookup(""); !strings.Contains(string(idx.Body), "<title>olric-raft cluster</title>") {
		t.Errorf("index.html has no title")
	}
}
