package resp

import (
	"github.com/olric-raft/olric-raft/auth"
)

// Replies of authentication, as redis-server words them.
const (
	// replyNoAuth answers any command but AUTH, HELLO and QUIT before a
	// successful AUTH.
	replyNoAuth = "NOAUTH Authentication required."
	// replyWrongPass answers AUTH (or HELLO ... AUTH) with an unknown token.
	replyWrongPass = "WRONGPASS invalid username-password pair or user is disabled."
	// replyAuthNotConfigured answers AUTH when the server has no tokens
	// (no --auth-tokens), like redis-server without a password.
	replyAuthNotConfigured = "ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?"
)

// open marks a command allowed before AUTH.
const open = auth.RoleNone

// commandRoles is the role every command needs when Options.Auth is set,
// by its lower-case name: the one place that classifies the commands.
// exec's switch and this table must name the same commands
// (TestCommandRolesCoverDispatcher); a command missing here is refused
// with "unknown command" when authentication is on, never run.
var commandRoles = map[string]auth.Role{
	// Before AUTH, as redis-server allows: only these.
	"auth":  open,
	"hello": open,
	"quit":  open,

	// Connection and server information: read.
	"ping":    auth.RoleRead,
	"echo":    auth.RoleRead,
	"select":  auth.RoleRead,
	"command": auth.RoleRead,
	"config":  auth.RoleRead, // CONFIG GET only
	"info":    auth.RoleRead,
	"client":  auth.RoleRead,

	// Plain Redis reads and writes (DMap "default").
	"get":     auth.RoleRead,
	"mget":    auth.RoleRead,
	"exists":  auth.RoleRead,
	"ttl":     auth.RoleRead,
	"pttl":    auth.RoleRead,
	"scan":    auth.RoleRead,
	"set":     auth.RoleWrite,
	"mset":    auth.RoleWrite,
	"del":     auth.RoleWrite,
	"incr":    auth.RoleWrite,
	"decr":    auth.RoleWrite,
	"incrby":  auth.RoleWrite,
	"decrby":  auth.RoleWrite,
	"expire":  auth.RoleWrite,
	"pexpire": auth.RoleWrite,

	// Olric's DM.* commands; locks are writes; destroying a whole DMap is
	// admin, as over HTTP.
	"dm.get":         auth.RoleRead,
	"dm.scan":        auth.RoleRead,
	"dm.put":         auth.RoleWrite,
	"dm.del":         auth.RoleWrite,
	"dm.expire":      auth.RoleWrite,
	"dm.pexpire":     auth.RoleWrite,
	"dm.incr":        auth.RoleWrite,
	"dm.decr":        auth.RoleWrite,
	"dm.incrbyfloat": auth.RoleWrite,
	"dm.getput":      auth.RoleWrite,
	"dm.lock":        auth.RoleWrite,
	"dm.unlock":      auth.RoleWrite,
	"dm.locklease":   auth.RoleWrite,
	"dm.plocklease":  auth.RoleWrite,
	"dm.destroy":     auth.RoleAdmin,

	// Cluster views.
	"cluster.routingtable": auth.RoleRead,
	"cluster.members":      auth.RoleRead,
	"stats":                auth.RoleRead,
}

// authConn is what gate needs of a connection (redcon.Conn has it): a
// reply writer and a per-connection slot, which holds a *connState
// (conn.go).
type authConn interface {
	replier
	Context() any
	SetContext(any)
}

// gate runs before exec when Options.Auth is set. It answers AUTH itself,
// checks the credentials of HELLO ... AUTH, and refuses a command the
// connection may not run (NOAUTH before a successful AUTH, NOPERM for a
// role too weak). It reports whether it answered, in which case the
// command must not run.
func (s *Server) gate(c authConn, args [][]byte) bool {
	if len(args) == 0 || len(args) > s.opts.MaxArgs {
		return false // exec answers
	}
	lname := commandName32(args[0])
	switch lname {
	case "auth":
		s.authCommand(c, args[1:])
		return true
	case "hello":
		return s.helloAuth(c, args[1:])
	}
	role := auth.RoleNone
	if st, ok := c.Context().(*connState); ok && st.authed {
		role = s.opts.Auth.LookupCredential(st.cred)
	}
	need, known := commandRoles[lname]
	switch {
	case known && need == open:
		return false
	case role == auth.RoleNone:
		c.WriteError(replyNoAuth)
	case !known:
		(&call{s: s, w: c, name: lname}).unknown(args)
	case !role.Allows(need):
		c.WriteError("NOPERM this user has no permissions to run the '" + lname +
			"' command (this token's role is " + role.String() + "; '" + lname + "' needs " + need.String() + ")")
	default:
		return false
	}
	return true
}

// authCommand runs AUTH token, or AUTH username token (Redis 6's form; the
// username is ignored: the token alone names the role). A wrong token
// leaves the connection as it was, as in redis-server.
func (s *Server) authCommand(c authConn, args [][]byte) {
	if len(args) < 1 || len(args) > 2 {
		c.WriteError("ERR wrong number of arguments for 'auth' command")
		return
	}
	if !s.login(c, args[len(args)-1]) {
		c.WriteError(replyWrongPass)
		return
	}
	c.WriteString("OK")
}

// helloAuth checks the AUTH username password option of HELLO
// (HELLO [protover [AUTH username password] [SETNAME name]]): a wrong
// token is answered with WRONGPASS (it reports true), a right one logs the
// connection in; either way without the option, HELLO itself then runs.
func (s *Server) helloAuth(c authConn, args [][]byte) bool {
	for i := 1; i < len(args); i++ {
		if !is(args[i], "auth") {
			continue
		}
		if i+2 >= len(args) {
			return false // HELLO answers its own syntax error
		}
		if !s.login(c, args[i+2]) {
			c.WriteError(replyWrongPass)
			return true
		}
		return false
	}
	return false
}

// login looks token up and, if it has a role, records the connection's
// credential.
func (s *Server) login(c authConn, token []byte) bool {
	cred := auth.NewCredential(string(token))
	if s.opts.Auth.LookupCredential(cred) == auth.RoleNone {
		return false
	}
	st := stateOf(c)
	st.authed, st.cred = true, cred
	return true
}
