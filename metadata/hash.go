package metadata

import "github.com/cespare/xxhash/v2"

// PartitionOf returns the partition of key in dmap: XXH64 (seed 0) of
// dmap + "\x00" + key, modulo partitionCount.
func PartitionOf(dmap, key string, partitionCount uint32) uint32 {
	if partitionCount == 0 {
		return 0
	}
	var d xxhash.Digest
	d.Reset()
	_, _ = d.WriteString(dmap)
	_, _ = d.Write([]byte{0})
	_, _ = d.WriteString(key)
	return uint32(d.Sum64() % uint64(partitionCount))
}
