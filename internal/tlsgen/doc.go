// Package tlsgen makes a small certificate authority and the certificates
// of cluster members (ECDSA P-256), for 'olric-raft tls gen' and for tests.
// It only uses the standard library and writes nothing to disk.
//
// Every member certificate is good for both TLS server and TLS client
// authentication, since members dial each other on the cluster port and
// both sides present their certificate (mutual TLS).
package tlsgen
