package httpapi

import (
	"net"
	"net/http"
	"strings"

	"github.com/olric-raft/olric-raft/auth"
)

// Codes of authentication (only when Options.Auth is set).
const (
	// CodeUnauthorized (401): no token, a malformed Authorization header,
	// or a token the server does not know. The response carries
	// WWW-Authenticate: Bearer realm="olric-raft".
	CodeUnauthorized = "unauthorized"
	// CodeForbidden (403): the token is known, but its role is too weak
	// for the route; the message names both roles.
	CodeForbidden = "forbidden"
)

// wwwAuthenticate is the challenge of every 401.
const wwwAuthenticate = `Bearer realm="olric-raft"`

// open marks a route that needs no token (probes, the page's static
// assets).
const open = auth.RoleNone

// routeRoles is the role every route needs when Options.Auth is set, by
// its pattern: the one place that classifies the routes. handle panics on
// a pattern missing here, so that no route is ever silently open.
var routeRoles = map[string]auth.Role{
	// Probes and the page's static assets (the page's own calls below
	// need a token: the page asks for one and sends it).
	"GET /healthz":      open,
	"GET /readyz":       open,
	"GET /ui":           open,
	"GET /ui/{file...}": open,

	// Views: read.
	"GET /v1/cluster/routing":         auth.RoleRead,
	"GET /v1/cluster/members":         auth.RoleRead,
	"GET /v1/cluster/leader":          auth.RoleRead,
	"GET /v1/cluster/locate":          auth.RoleRead,
	"GET /v1/status":                  auth.RoleRead,
	"GET /metrics":                    auth.RoleRead,
	"GET /v1/dmaps/{dmap}/keys":       auth.RoleRead,
	"GET /v1/dmaps/{dmap}/keys/{key}": auth.RoleRead,

	// Key writes (locks included): write.
	"PUT /v1/dmaps/{dmap}/keys/{key}":              auth.RoleWrite,
	"DELETE /v1/dmaps/{dmap}/keys/{key}":           auth.RoleWrite,
	"POST /v1/dmaps/{dmap}/keys/{key}/incr":        auth.RoleWrite,
	"POST /v1/dmaps/{dmap}/keys/{key}/incrbyfloat": auth.RoleWrite,
	"POST /v1/dmaps/{dmap}/keys/{key}/expire":      auth.RoleWrite,
	"POST /v1/dmaps/{dmap}/keys/{key}/getput":      auth.RoleWrite,
	"POST /v1/dmaps/{dmap}/keys/{key}/lock":        auth.RoleWrite,
	"POST /v1/dmaps/{dmap}/keys/{key}/unlock":      auth.RoleWrite,
	"POST /v1/dmaps/{dmap}/keys/{key}/lease":       auth.RoleWrite,

	// Operator actions and destroying a whole DMap: admin.
	"POST /v1/cluster/join":                    auth.RoleAdmin,
	"POST /v1/cluster/leave":                   auth.RoleAdmin,
	"DELETE /v1/cluster/members/{id}":          auth.RoleAdmin,
	"POST /v1/cluster/partitions/force-assign": auth.RoleAdmin,
	"DELETE /v1/dmaps/{dmap}":                  auth.RoleAdmin,
}

// roleOf returns the role pattern needs; it panics on a pattern without
// one (a wiring bug, caught by every test that calls New).
func roleOf(pattern string) auth.Role {
	need, ok := routeRoles[pattern]
	if !ok {
		panic("httpapi: route " + pattern + " has no role in routeRoles")
	}
	return need
}

// authorize checks the request's bearer token against the role the route
// needs. It returns nil when the request may go on (always, without
// Options.Auth), else the 401 or 403 to answer, having set the challenge
// header and logged the refusal. The token itself is never logged or
// answered.
func (a *api) authorize(w http.ResponseWriter, r *http.Request, pattern string, need auth.Role) error {
	if a.auth == nil || need == open {
		return nil
	}
	token, problem := bearerToken(r)
	role := auth.RoleNone
	if problem == "" {
		if role = a.auth.Lookup(token); role == auth.RoleNone {
			problem = "unknown token"
		}
	}
	if problem != "" {
		a.logRefusal(r, http.StatusUnauthorized, problem, role, need)
		w.Header().Set("WWW-Authenticate", wwwAuthenticate)
		return errorf(http.StatusUnauthorized, CodeUnauthorized,
			"%s: send \"Authorization: Bearer TOKEN\" with a token of role %s or stronger", problem, need)
	}
	if !role.Allows(need) {
		a.logRefusal(r, http.StatusForbidden, "role too weak", role, need)
		return errorf(http.StatusForbidden, CodeForbidden,
			"this token's role is %s; %s needs %s", role, pattern, need)
	}
	return nil
}

// bearerToken returns the token of the request's single "Authorization:
// Bearer TOKEN" header, or why there is none (never quoting the header).
func bearerToken(r *http.Request) (token, problem string) {
	vals := r.Header.Values("Authorization")
	switch len(vals) {
	case 0:
		return "", "no token"
	case 1:
	default:
		return "", "more than one Authorization header"
	}
	scheme, rest, _ := strings.Cut(vals[0], " ")
	if !strings.EqualFold(scheme, "Bearer") {
		return "", "the Authorization header is not a Bearer token"
	}
	token = strings.TrimSpace(rest)
	if token == "" {
		return "", "empty Bearer token"
	}
	return token, ""
}

// logRefusal logs a refused request: who, what, why; never the token.
func (a *api) logRefusal(r *http.Request, status int, reason string, role, need auth.Role) {
	remote := r.RemoteAddr
	if host, _, err := net.SplitHostPort(remote); err == nil {
		remote = host
	}
	a.log.Warn("httpapi: request refused", "status", status, "reason", reason,
		"method", r.Method, "path", r.URL.Path, "remote", remote,
		"role", role.String(), "needs", need.String())
}
