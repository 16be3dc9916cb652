package fsm_test

import (
	"bytes"
	"errors"
	"reflect"
	"testing"

	"github.com/olric-raft/olric-raft/fsm"
	"github.com/olric-raft/olric-raft/metadata"
)

func TestEncodeDecodeRoundTrip(t *testing.T) {
	init := initRouting(5, 3, 2)
	change := fsm.Change{
		ExpectVersion: 17,
		Upsert:        []metadata.Member{member(4, "b")},
		Remove:        []metadata.NodeID{"n9"},
		Partitions:    init.Partitions[:2],
		Reason:        "n4 joined",
	}
	tests := []struct {
		typ  fsm.CommandType
		body any
		want any
	}{
		{fsm.CommandInitRouting, init, &init},
		{fsm.CommandInitRouting, &init, &init},
		{fsm.CommandInitRouting, fsm.InitRouting{}, &fsm.InitRouting{}},
		{fsm.CommandMemberJoin, change, &change},
		{fsm.CommandMemberLeave, &change, &change},
		{fsm.CommandMemberFailed, change, &change},
		{fsm.CommandMemberRemove, change, &change},
		{fsm.CommandRebalance, change, &change},
		{fsm.CommandSetVoter, change, &change},
		{fsm.CommandForceAssign, change, &change},
		{fsm.CommandRebalance, fsm.Change{}, &fsm.Change{}},
	}
	for _, tt := range tests {
		t.Run(tt.typ.String(), func(t *testing.T) {
			b := mustEncode(t, tt.typ, tt.body)
			if b[0] != byte(tt.typ) || b[1] != fsm.CommandFormatVersion {
				t.Fatalf("prefix % x, want %02x %02x", b[:2], byte(tt.typ), fsm.CommandFormatVersion)
			}
			typ, body, err := fsm.Decode(b)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if typ != tt.typ {
				t.Fatalf("type %s, want %s", typ, tt.typ)
			}
			if !reflect.DeepEqual(body, tt.want) {
				t.Fatalf("body %#v\nwant %#v", body, tt.want)
			}
			if again := mustEncode(t, typ, body); !bytes.Equal(again, b) {
				t.Fatalf("encoding is not stable")
			}
		})
	}
}

func TestEncodeRefuses(t *testing.T) {
	var nilChange *fsm.Change
	tests := []struct {
		name string
		typ  fsm.CommandType
		body any
		want error
	}{
		{"unknown type", 11, fsm.Change{}, fsm.ErrUnknownCommand},
		{"type zero", 0, fsm.Change{}, fsm.ErrUnknownCommand},
		{"change as init", fsm.CommandInitRouting, fsm.Change{}, fsm.ErrMalformedCommand},
		{"init as change", fsm.CommandMemberJoin, fsm.InitRouting{}, fsm.ErrMalformedCommand},
		{"nil body", fsm.CommandRebalance, nil, fsm.ErrMalformedCommand},
		{"nil pointer", fsm.CommandRebalance, nilChange, fsm.ErrMalformedCommand},
		{"other type", fsm.CommandRebalance, "hello", fsm.ErrMalformedCommand},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := fsm.Encode(tt.typ, tt.body); !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
		})
	}
}

func TestDecodeRefuses(t *testing.T) {
	good := mustEncode(t, fsm.CommandRebalance, fsm.Change{ExpectVersion: 3, Reason: "x"})
	init := mustEncode(t, fsm.CommandInitRouting, initRouting(2, 2, 2))
	with := func(b []byte, i int, v byte) []byte {
		b = bytes.Clone(b)
		b[i] = v
		return b
	}
	tests := []struct {
		name string
		in   []byte
		want error
	}{
		{"empty", nil, fsm.ErrMalformedCommand},
		{"one byte", []byte{byte(fsm.CommandRebalance)}, fsm.ErrMalformedCommand},
		{"no body", []byte{byte(fsm.CommandRebalance), fsm.CommandFormatVersion}, fsm.ErrMalformedCommand},
		{"format version 0", with(good, 1, 0), fsm.ErrUnknownCommand},
		{"format version 2", with(good, 1, 2), fsm.ErrUnknownCommand},
		{"type 0", with(good, 0, 0), fsm.ErrUnknownCommand},
		{"type 11", with(good, 0, 11), fsm.ErrUnknownCommand},
		{"type 255", with(good, 0, 255), fsm.ErrUnknownCommand},
		{"change body as init", with(good, 0, byte(fsm.CommandInitRouting)), fsm.ErrMalformedCommand},
		{"init body as change", with(init, 0, byte(fsm.CommandRebalance)), fsm.ErrMalformedCommand},
		{"truncated body", good[:len(good)-1], fsm.ErrMalformedCommand},
		{"trailing byte", append(bytes.Clone(good), 0), fsm.ErrMalformedCommand},
		{"reserved msgpack code", []byte{6, 1, 0xc1}, fsm.ErrMalformedCommand},
		{"huge partition array", []byte{6, 1, 0x81, 0xa5, 'p', 'a', 'r', 't', 's', 0xdd, 0xff, 0xff, 0xff, 0xff}, fsm.ErrMalformedCommand},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, body, err := fsm.Decode(tt.in)
			if !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
			if body != nil {
				t.Fatalf("body %v returned with an error", body)
			}
		})
	}
}

func TestCommandTypeString(t *testing.T) {
	want := map[fsm.CommandType]string{
		fsm.CommandInitRouting: "init_routing", fsm.CommandMemberJoin: "member_join",
		fsm.CommandMemberLeave: "member_leave", fsm.CommandMemberFailed: "member_failed",
		fsm.CommandMemberRemove: "member_remove", fsm.CommandRebalance: "rebalance",
		fsm.CommandSetVoter: "set_voter", fsm.CommandForceAssign: "force_assign",
		0: "unknown(0)", 200: "unknown(200)",
	}
	for typ, s := range want {
		if got := typ.String(); got != s {
			t.Errorf("%d.String() = %q, want %q", uint8(typ), got, s)
		}
	}
}
