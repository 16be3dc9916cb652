// Package auth is olric-raft's client authentication: bearer tokens, each
// with one of three roles, read from a token file (DESIGN.md §6, the
// server's --auth-tokens flag), looked up in constant time, and reloadable
// while the server runs (SIGHUP).
//
// # Roles
//
// RoleRead < RoleWrite < RoleAdmin: each role may do everything the roles
// below it may. The front ends (api/httpapi, api/resp) decide which role
// each route or command needs; this package only answers "which role does
// this token have" (RoleNone: none, the token is unknown).
//
// # The token file
//
// One "ROLE TOKEN" per line, separated by spaces or tabs; blank lines and
// lines starting with '#' are ignored:
//
//	# operators
//	admin   3f1c0c8e5c2b4b8f9a1e7d6c5b4a3928
//	write   app-7d8e9f0a1b2c3d4e5f60718293a4b5c6
//	read    dashboard-0a1b2c3d4e5f60718293a4b5
//
// A role is read, write or admin (lower case). A token is 16 to 4096
// bytes of visible ASCII (0x21 to 0x7e: it must fit an HTTP header), and
// appears at most once in the file. A file with a bad line, or without any
// token, is refused as a whole: Load and Reload return an error naming
// the file and the line (every bad line at once), and Reload keeps the
// tokens it had.
//
// # Secrecy
//
//  1. Tokens never appear in an error, a log line or a String method: an
//     error about a line names the file, the line number and what is
//     wrong, never the line's text (a line with its fields swapped would
//     otherwise print the token as an "unknown role").
//  2. A Store keeps only the SHA-256 digests of its tokens.
//  3. Lookup hashes the presented token and compares the digest with every
//     entry using crypto/subtle, without stopping at a match, so that its
//     time does not tell whether, or which entry, or how much of a token
//     matched. (It does depend on the number of entries, which is not a
//     secret.)
//
// # Concurrency
//
// A Store is safe for concurrent use. Its token set is immutable and
// published behind an atomic pointer: Lookup loads the pointer and never
// locks; Reload parses the file completely, then swaps the pointer, so a
// lookup sees either the old set or the new one, never a mix.
//
// # Why a public package
//
// It is not under internal/ because the HTTP API is public
// (httpapi.Options.Auth, resp.Options.Auth take a *Store) and a program
// that serves it itself — an embedded member with embedded.WithHTTP, or
// its own http.Server around httpapi.New — needs to build a Store to turn
// authentication on.
package auth
