package metadata

import (
	"strings"
	"testing"

	"github.com/cespare/xxhash/v2"
)

// TestPartitionOfShortAndLongAgree: the one-pass path for short names and
// the streaming path for long ones hash the same bytes, on both sides of
// the buffer size.
func TestPartitionOfShortAndLongAgree(t *testing.T) {
	for n := partitionHashBuf - 5; n <= partitionHashBuf+5; n++ {
		for _, split := range []int{0, 1, n / 2, n - 1} {
			dmap, key := strings.Repeat("d", split), strings.Repeat("k", max(n-split, 0))
			want := uint32(xxhash.Sum64String(dmap+key) % 65521)
			if got := PartitionOf(dmap, key, 65521); got != want {
				t.Fatalf("PartitionOf(%d-byte dmap, %d-byte key) = %d, want %d", len(dmap), len(key), got, want)
			}
		}
	}
}

func BenchmarkPartitionOf(b *testing.B) {
	for b.Loop() {
		PartitionOf("default", "key:000000012345", DefaultPartitionCount)
	}
}
