package datastore

import (
	"encoding/binary"
	"fmt"
)

// Shard file format, version 1 (little-endian):
//
//	offset  size  field
//	0       8     magic "MAASSHRD"
//	8       2     version (1)
//	10      2     reserved (0)
//	12      4     C
//	16      4     H
//	20      4     W
//	24      8     first: the split's index of the shard's first sample
//	32      4     count: samples in the shard
//	36      count*C*H*W  pixels, CHW per sample, samples back to back
//	…       count        labels
const (
	shardMagic   = "MAASSHRD"
	shardVersion = 1
	shardHeader  = 36
)

// ShardHeader is the header of a shard.
type ShardHeader struct {
	C, H, W int
	First   int
	Count   int
}

// EncodeShard returns a shard of count samples: the header, pixels
// (count*C*H*W bytes) and labels (count bytes).
func EncodeShard(h ShardHeader, pixels, labels []uint8) []byte {
	b := make([]byte, shardHeader, shardHeader+len(pixels)+len(labels))
	copy(b, shardMagic)
	binary.LittleEndian.PutUint16(b[8:], shardVersion)
	binary.LittleEndian.PutUint32(b[12:], uint32(h.C))
	binary.LittleEndian.PutUint32(b[16:], uint32(h.H))
	binary.LittleEndian.PutUint32(b[20:], uint32(h.W))
	binary.LittleEndian.PutUint64(b[24:], uint64(h.First))
	binary.LittleEndian.PutUint32(b[32:], uint32(h.Count))
	b = append(b, pixels...)
	return append(b, labels...)
}

// shardSize is the size in bytes of a shard of count samples of ss bytes.
func shardSize(count, ss int) int64 { return shardHeader + int64(count)*int64(ss+1) }

// DecodeShard checks b's header against want and returns its pixels and
// labels, which share b's memory.
func DecodeShard(b []byte, want ShardHeader) (pixels, labels []uint8, err error) {
	if len(b) < shardHeader || string(b[:8]) != shardMagic {
		return nil, nil, fmt.Errorf("%w: not a maas shard (%d bytes, no %q header)", ErrFormat, len(b), shardMagic)
	}
	if v := binary.LittleEndian.Uint16(b[8:]); v != shardVersion {
		return nil, nil, fmt.Errorf("%w: shard format version %d; this maas reads version %d (push the dataset again with this version)", ErrFormat, v, shardVersion)
	}
	got := ShardHeader{
		C: int(binary.LittleEndian.Uint32(b[12:])), H: int(binary.LittleEndian.Uint32(b[16:])), W: int(binary.LittleEndian.Uint32(b[20:])),
		First: int(binary.LittleEndian.Uint64(b[24:])), Count: int(binary.LittleEndian.Uint32(b[32:])),
	}
	if got != want {
		return nil, nil, fmt.Errorf("%w: shard header %+v, the manifest says %+v", ErrFormat, got, want)
	}
	ss := want.C * want.H * want.W
	if int64(len(b)) != shardSize(want.Count, ss) {
		return nil, nil, fmt.Errorf("%w: shard of %d samples of %d bytes is %d bytes, want %d", ErrFormat, want.Count, ss, len(b), shardSize(want.Count, ss))
	}
	end := shardHeader + want.Count*ss
	return b[shardHeader:end:end], b[end:], nil
}
