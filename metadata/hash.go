package metadata

import "github.com/cespare/xxhash/v2"

// partitionHashBuf is the size of the stack buffer PartitionOf hashes
// short names in one call.
const partitionHashBuf = 192

// PartitionOf returns the partition of key in dmap: XXH64 (seed 0) of
// dmap + key (the DMap name and the key concatenated), modulo
// partitionCount. It is Olric's function, so that Olric's own clients,
// which hash keys themselves to pick a member, send each request straight
// to its primary.
func PartitionOf(dmap, key string, partitionCount uint32) uint32 {
	if partitionCount == 0 {
		return 0
	}
	var h uint64
	if n := len(dmap) + len(key); n <= partitionHashBuf {
		// The usual case in one pass over a stack copy: no allocation,
		// no streaming state (the request path hashes every key).
		var buf [partitionHashBuf]byte
		copy(buf[:], dmap)
		copy(buf[len(dmap):], key)
		h = xxhash.Sum64(buf[:n])
	} else {
		var d xxhash.Digest
		d.Reset()
		_, _ = d.WriteString(dmap)
		_, _ = d.WriteString(key)
		h = d.Sum64()
	}
	return uint32(h % uint64(partitionCount))
}
