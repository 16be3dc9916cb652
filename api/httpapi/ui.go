package httpapi

import (
	"net/http"
	"strconv"

	"github.com/olric-raft/olric-raft/api/ui"
)

// GET /ui: the page lives at /ui/ (its assets are relative to it).
func (a *api) getUIRedirect(w http.ResponseWriter, r *http.Request) error {
	w.Header().Del("Content-Type")
	target := "/ui/"
	if r.URL.RawQuery != "" {
		target += "?" + r.URL.RawQuery
	}
	http.Redirect(w, r, target, http.StatusMovedPermanently)
	return nil
}

// GET /ui/{file...}: the live cluster page (package ui) and its script and
// stylesheet; 404 not_found for any other file.
func (a *api) getUI(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("file")
	asset, ok := ui.Lookup(name)
	if !ok {
		return errorf(http.StatusNotFound, CodeNotFound, "no such path %q", r.URL.Path)
	}
	h := w.Header()
	h.Set("Content-Type", asset.ContentType)
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Security-Policy", ui.ContentSecurityPolicy)
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Content-Length", strconv.Itoa(len(asset.Body)))
	if r.Method == http.MethodHead {
		return nil
	}
	if _, err := w.Write(asset.Body); err != nil {
		a.log.Debug("httpapi: writing a ui asset", "path", r.URL.Path, "err", err)
	}
	return nil
}
