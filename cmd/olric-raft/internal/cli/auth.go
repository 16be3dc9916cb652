package cli

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/olric-raft/olric-raft/auth"
	"github.com/olric-raft/olric-raft/client"
)

// Authentication in the binary: the server's --auth-tokens FILE (loaded
// by buildServerConfig, reloaded on SIGHUP) and the client commands'
// global --token.

// tokenFlag is the global flag of the client commands: the bearer token
// sent to members started with --auth-tokens.
const tokenFlag = "token"

// addTokenFlag defines --token on root, for every command below it.
func addTokenFlag(root *cobra.Command) {
	root.PersistentFlags().String(tokenFlag, "",
		"bearer token for members started with --auth-tokens, of a role strong enough for the command (env "+envName(tokenFlag)+"); client commands only")
}

// clientToken returns the token the client commands send: --token, else
// the environment's OLRIC_RAFT_TOKEN, else "" (no Authorization header).
func clientToken(cmd *cobra.Command, lookupEnv func(string) (string, bool)) string {
	if fl := cmd.Flags().Lookup(tokenFlag); fl != nil && fl.Changed {
		return strings.TrimSpace(fl.Value.String())
	}
	if v, ok := lookupEnv(envName(tokenFlag)); ok {
		return strings.TrimSpace(v)
	}
	return ""
}

// refuseServerToken: --token on the server command is a mistake (it would
// not turn authentication on); the server's tokens come from a file.
func refuseServerToken(cmd *cobra.Command) error {
	if fl := cmd.Flags().Lookup(tokenFlag); fl != nil && fl.Changed {
		return &usageError{err: errors.New("--token is for the client commands; a server takes its tokens from --auth-tokens FILE (one \"ROLE TOKEN\" per line)")}
	}
	return nil
}

// loadAuthTokens loads the --auth-tokens file; its problems (each naming
// the file and line, never a token) come back one per entry, for
// buildServerConfig's list.
func loadAuthTokens(path string) (*auth.Store, []string) {
	store, err := auth.Load(path)
	if err == nil {
		return store, nil
	}
	var problems []string
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range j.Unwrap() {
			problems = append(problems, "auth_tokens: "+e.Error())
		}
	} else {
		problems = append(problems, "auth_tokens: "+err.Error())
	}
	return nil, problems
}

// logAuth logs whether authentication is on, with the number of tokens
// per role (never a token), and warns when the token file is readable by
// other users.
func logAuth(logger *slog.Logger, store *auth.Store) {
	if store == nil {
		logger.Info("authentication off: HTTP and RESP clients need no token (start with --auth-tokens FILE to require one)")
		return
	}
	r, w, a := store.Counts()
	logger.Info("authentication on", "auth_tokens", store.Path(), "read_tokens", r, "write_tokens", w, "admin_tokens", a)
	if st, err := os.Stat(store.Path()); err == nil && st.Mode().Perm()&0o077 != 0 {
		logger.Warn("the token file is readable by other users; chmod 600 it",
			"auth_tokens", store.Path(), "mode", fmt.Sprintf("%04o", st.Mode().Perm()))
	}
}

// authHint is the hint of an unauthorized or forbidden answer.
func authHint(code string) string {
	switch code {
	case client.CodeUnauthorized:
		return "the member requires a token of its --auth-tokens file: set --token or " + envName(tokenFlag) +
			" (if you did, the member does not know that token: mistyped, or rotated out)"
	case client.CodeForbidden:
		return "this token's role is too weak for the command (the message names the role it needs): use a token of that role in --token or " +
			envName(tokenFlag)
	}
	return ""
}
