package lake

import (
	"github.com/klauspost/compress/zstd"
	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/format"
)

// zstdCodec is the ZSTD codec of the lake's Parquet: zstd's fastest level, with entropy coding of the
// literals even in blocks where no match is found. The lake's largest columns are random identifiers
// (hexadecimal click ids, pixel ids, the digits of sequence numbers): few matches, but 4 to 5.2 bits of
// information per byte, which only entropy coding recovers (the zstd library's fastest and default
// levels store such blocks raw; parquet-go's ZSTD codec does not expose the option). It is safe for
// concurrent use: every Encode takes an encoder of its own, from a free list that keeps a few between
// calls (a zstd encoder's window is worth keeping; a sync.Pool would drop it within two GCs).
type zstdCodec struct {
	encoders chan *zstd.Encoder
}

// zstdIdleEncoders is how many idle encoders a zstdCodec keeps.
const zstdIdleEncoders = 8

func newZstdCodec() *zstdCodec {
	return &zstdCodec{encoders: make(chan *zstd.Encoder, zstdIdleEncoders)}
}

func (c *zstdCodec) String() string { return "ZSTD" }

func (c *zstdCodec) CompressionCodec() format.CompressionCodec { return format.Zstd }

// Encode compresses src into one zstd frame, appended to dst[:0].
func (c *zstdCodec) Encode(dst, src []byte) ([]byte, error) {
	var e *zstd.Encoder
	select {
	case e = <-c.encoders:
	default:
		var err error
		e, err = zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithAllLitEntropyCompression(true),
			zstd.WithEncoderConcurrency(1), zstd.WithZeroFrames(true), zstd.WithEncoderCRC(false))
		if err != nil {
			return dst[:0], err
		}
	}
	out := e.EncodeAll(src, dst[:0])
	select {
	case c.encoders <- e:
	default: // enough idle ones
	}
	return out, nil
}

// Decode decompresses src with parquet-go's ZSTD codec (any zstd frame, whatever wrote it).
func (c *zstdCodec) Decode(dst, src []byte) ([]byte, error) { return parquet.Zstd.Decode(dst, src) }
