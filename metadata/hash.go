package metadata

import "github.com/cespare/xxhash/v2"

// partitionHashBuf is the size of the stack buffer PartitionOf hashes
// short names in one call.
const partitionHashBuf = 192

// PartitionOf returns the partition of key in dmap: XXH64 (seed 0) of
// dmap + "\x00" + key, modulo partitionCount.
func PartitionOf(dmap, key string, partitionCount uint32) uint32 {
	if partitionCount == 0 {
		return 0
	}
	var h uint64
	if n := len(dmap) + 1 + len(key); n <= partitionHashBuf {
		// The usual case in one pass over a stack copy: no allocation,
		// no streaming state (the request path hashes every key).
		var buf [partitionHashBuf]byte
		copy(buf[:], dmap)
		buf[len(dmap)] = 0
		copy(buf[len(dmap)+1:], key)
		h = xxhash.Sum64(buf[:n])
	} else {
		var d xxhash.Digest
		d.Reset()
		_, _ = d.WriteString(dmap)
		_, _ = d.Write([]byte{0})
		_, _ = d.WriteString(key)
		h = d.Sum64()
	}
	return uint32(h % uint64(partitionCount))
}
