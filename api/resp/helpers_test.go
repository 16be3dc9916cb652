package resp

import (
	"io"

	"github.com/tidwall/redcon"

	"github.com/olric-raft/olric-raft/dataplane"
)

var dataplaneUnavailable = dataplane.ErrUnavailable

func newWriter(w io.Writer) *redcon.Writer { return redcon.NewWriter(w) }
