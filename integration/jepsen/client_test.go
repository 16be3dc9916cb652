package jepsen

import (
	"errors"
	"io"
	"net"
	"net/url"
	"syscall"
	"testing"
)

func TestOutcome(t *testing.T) {
	dial := &url.Error{Op: "Put", URL: "http://10.77.0.1:3380/", Err: &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}}
	reset := &url.Error{Op: "Put", URL: "http://10.77.0.1:3380/", Err: &net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET}}
	tests := []struct {
		name string
		r    apiResult
		want Outcome
	}{
		{"200", apiResult{Status: 200}, OK},
		{"409 version_mismatch", apiResult{Status: 409, Code: "version_mismatch"}, Fail},
		{"503 unavailable", apiResult{Status: 503, Code: "unavailable"}, Fail},
		{"503 timeout", apiResult{Status: 503, Code: "timeout"}, Info},
		{"500", apiResult{Status: 500, Code: "internal"}, Info},
		{"connection refused", apiResult{Err: dial}, Fail},
		{"connection reset", apiResult{Err: reset}, Info},
		{"EOF", apiResult{Err: &url.Error{Op: "Put", URL: "x", Err: io.EOF}}, Info},
		{"body lost after the status", apiResult{Status: 503, Err: errors.New("unexpected EOF")}, Info},
	}
	for _, tt := range tests {
		if got := tt.r.outcome(); got != tt.want {
			t.Errorf("%s: %s, want %s", tt.name, got, tt.want)
		}
	}
}
