package fragile

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
)

// Bundle is everything verification needs, sealed with the key: the triggers, their
// key labels, the input they were made for, the digest of the watermarked file and
// how the watermark was made. It holds no wall-clock time, so the same key and model
// give byte-identical sealed bundles.
type Bundle struct {
	Method      Method
	ModelDigest [sha256.Size]byte
	InputName   string
	InputShape  []int   // one example, without the batch dimension
	InputMin    float64 // pixel range, before Normalization
	InputMax    float64
	// Normalization is what the serving pipeline applies before the model; Triggers
	// are in pixel space, ModelInputs gives what the model file sees.
	Normalization Normalization
	Classes       int
	KeyLabels     []int
	Triggers      []float32 // len(KeyLabels) examples back to back, in pixel space
	Margins       []float32 // top-1/top-2 logit margin of each trigger when sealed
	Steps         int
	Lambda        float64
	FinalLoss     float64
	// Competitors is how many runner-up classes each tie trigger was tied to (0 for
	// every other class, and for methods without a tie).
	Competitors int
	// Measures describe the triggers as sealed (zero in version 1 bundles).
	Measures Measures
	// Diversity is the weight of the generator's duplicate penalty the triggers were
	// trained with (WatermarkOptions.Diversity; 0 for none, and in bundles before
	// version 3).
	Diversity float64
}

// Len is the number of triggers.
func (b *Bundle) Len() int { return len(b.KeyLabels) }

// InputSize is the number of values in one trigger.
func (b *Bundle) InputSize() int {
	size := 1
	for _, d := range b.InputShape {
		size *= d
	}
	return size
}

// Trigger returns the i-th trigger's values.
func (b *Bundle) Trigger(i int) []float32 {
	s := b.InputSize()
	return b.Triggers[i*s : (i+1)*s]
}

// DigestString renders the model digest as "sha256:<hex>".
func (b *Bundle) DigestString() string { return "sha256:" + hex.EncodeToString(b.ModelDigest[:]) }

// Sealed bundle layout (all integers little-endian):
//
//	magic     6 bytes  "FRGLWM"
//	version   uint16   bundleVersion
//	keyID     8 bytes  public fingerprint of the sealing key
//	length    uint64   length of the ciphertext, tag included
//	checksum  uint32   CRC-32 (IEEE) of the 24 bytes above
//	nonce     12 bytes
//	ciphertext         AES-256-GCM of the encoded bundle, the 28 header bytes as
//	                   additional data
//
// The key ID and the checksum let Open tell a wrong key from a damaged file, which
// GCM alone cannot: both only fail authentication.
const (
	bundleMagic   = "FRGLWM"
	bundleVersion = 3
	// Version 1 bundles (no normalisation, no measures) and version 2 bundles (no
	// diversity) still open.
	oldestBundleVersion = 1
	headerSize          = 6 + 2 + 8 + 8 + 4
	nonceSize           = 12
	tagSize             = 16
)

// Errors Open distinguishes; each is wrapped with the details.
var (
	ErrNotBundle     = errors.New("not a fragile bundle")
	ErrBundleVersion = errors.New("unsupported bundle version")
	ErrWrongKey      = errors.New("wrong key for this bundle")
	ErrTruncated     = errors.New("bundle is truncated")
	ErrCorrupt       = errors.New("bundle is corrupted")
)

// Seal encodes and encrypts the bundle with keys derived from key. The nonce is
// derived from the plaintext (a synthetic IV), so sealing is deterministic and a
// nonce repeats only for an identical plaintext.
func Seal(b *Bundle, key Key) ([]byte, error) {
	plain, err := b.encode()
	if err != nil {
		return nil, err
	}
	aead, err := bundleAEAD(key)
	if err != nil {
		return nil, err
	}
	mac := hmac.New(sha256.New, key.derive("bundle-nonce", 32))
	mac.Write(plain)
	nonce := mac.Sum(nil)[:nonceSize]

	header := make([]byte, headerSize)
	copy(header, bundleMagic)
	binary.LittleEndian.PutUint16(header[6:], bundleVersion)
	keyID, _ := hex.DecodeString(key.ID())
	copy(header[8:], keyID)
	binary.LittleEndian.PutUint64(header[16:], uint64(len(plain)+tagSize))
	binary.LittleEndian.PutUint32(header[24:], crc32.ChecksumIEEE(header[:24]))

	out := append(header, nonce...)
	return aead.Seal(out, nonce, plain, header), nil
}

// Open authenticates, decrypts and decodes a sealed bundle. A wrong key, a damaged
// file, a truncated file and a newer format each return a distinct error.
func Open(sealed []byte, key Key) (*Bundle, error) {
	if len(sealed) < len(bundleMagic) || string(sealed[:len(bundleMagic)]) != bundleMagic {
		return nil, fmt.Errorf("%w: the file does not start with %q", ErrNotBundle, bundleMagic)
	}
	if len(sealed) < headerSize+nonceSize {
		return nil, fmt.Errorf("%w: %d bytes, the header alone needs %d", ErrTruncated, len(sealed), headerSize+nonceSize)
	}
	header := sealed[:headerSize]
	if crc32.ChecksumIEEE(header[:24]) != binary.LittleEndian.Uint32(header[24:]) {
		return nil, fmt.Errorf("%w: header checksum mismatch", ErrCorrupt)
	}
	version := binary.LittleEndian.Uint16(header[6:])
	if version < oldestBundleVersion || version > bundleVersion {
		return nil, fmt.Errorf("%w: format version %d, this fragile reads versions %d to %d; use a matching release", ErrBundleVersion, version, oldestBundleVersion, bundleVersion)
	}
	if got, want := hex.EncodeToString(header[8:16]), key.ID(); got != want {
		return nil, fmt.Errorf("%w: sealed with key ID %s, this key's ID is %s", ErrWrongKey, got, want)
	}
	declared := binary.LittleEndian.Uint64(header[16:])
	body := sealed[headerSize+nonceSize:]
	switch {
	case uint64(len(body)) < declared:
		return nil, fmt.Errorf("%w: %d of %d ciphertext bytes present", ErrTruncated, len(body), declared)
	case uint64(len(body)) > declared:
		return nil, fmt.Errorf("%w: %d bytes after the declared end", ErrCorrupt, uint64(len(body))-declared)
	}
	aead, err := bundleAEAD(key)
	if err != nil {
		return nil, err
	}
	plain, err := aead.Open(nil, sealed[headerSize:headerSize+nonceSize], body, header)
	if err != nil {
		return nil, fmt.Errorf("%w: authentication failed, the bundle was modified", ErrCorrupt)
	}
	b, err := decodeBundle(plain, version)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	return b, nil
}

func bundleAEAD(key Key) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key.derive("bundle-aead", 32))
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// encode writes the plaintext: fields in a fixed order, little-endian, strings and
// lists length-prefixed.
func (b *Bundle) encode() ([]byte, error) {
	n := b.Len()
	switch {
	case n == 0 || n > MaxTriggers:
		return nil, fmt.Errorf("bundle has %d triggers", n)
	case len(b.Triggers) != n*b.InputSize() || len(b.Margins) != n:
		return nil, errors.New("bundle trigger, label and margin counts disagree")
	case len(b.InputShape) > 8 || len(b.Method) > 255 || len(b.InputName) > 1<<16-1:
		return nil, errors.New("bundle field too long")
	case len(b.Normalization.Mean) != len(b.Normalization.Std) || len(b.Normalization.Mean) > maxChannels:
		return nil, errors.New("bundle normalisation: means and standard deviations disagree")
	}
	var w bytes.Buffer
	le := binary.LittleEndian
	putString := func(s string) {
		w.Write(le.AppendUint16(nil, uint16(len(s))))
		w.WriteString(s)
	}
	putString(string(b.Method))
	w.Write(b.ModelDigest[:])
	putString(b.InputName)
	w.WriteByte(byte(len(b.InputShape)))
	for _, d := range b.InputShape {
		w.Write(le.AppendUint32(nil, uint32(d)))
	}
	w.Write(le.AppendUint64(nil, math.Float64bits(b.InputMin)))
	w.Write(le.AppendUint64(nil, math.Float64bits(b.InputMax)))
	w.Write(le.AppendUint32(nil, uint32(b.Classes)))
	w.Write(le.AppendUint32(nil, uint32(n)))
	for _, l := range b.KeyLabels {
		w.Write(le.AppendUint32(nil, uint32(l)))
	}
	for _, v := range b.Triggers {
		w.Write(le.AppendUint32(nil, math.Float32bits(v)))
	}
	for _, v := range b.Margins {
		w.Write(le.AppendUint32(nil, math.Float32bits(v)))
	}
	w.Write(le.AppendUint32(nil, uint32(b.Steps)))
	w.Write(le.AppendUint64(nil, math.Float64bits(b.Lambda)))
	w.Write(le.AppendUint64(nil, math.Float64bits(b.FinalLoss)))
	// Version 2 from here on.
	putFloats := func(v []float64) {
		for _, x := range v {
			w.Write(le.AppendUint64(nil, math.Float64bits(x)))
		}
	}
	w.WriteByte(byte(len(b.Normalization.Mean)))
	putFloats(b.Normalization.Mean)
	putFloats(b.Normalization.Std)
	w.WriteByte(byte(b.Normalization.Axis))
	w.Write(le.AppendUint32(nil, uint32(b.Competitors)))
	putFloats(b.Measures.fields())
	// Version 3 from here on.
	putFloats([]float64{b.Diversity})
	return w.Bytes(), nil
}

// decodeBundle reads what encode wrote, checking every length against the data left.
func decodeBundle(data []byte, version uint16) (*Bundle, error) {
	r := reader{data: data}
	b := &Bundle{}
	b.Method = Method(r.string())
	copy(b.ModelDigest[:], r.bytes(sha256.Size))
	b.InputName = r.string()
	rank := int(r.uint8())
	if rank > 8 {
		return nil, fmt.Errorf("input rank %d", rank)
	}
	size := 1
	for i := 0; i < rank && r.err == nil; i++ {
		d := int(r.uint32())
		if d <= 0 || d > 1<<20 || size > (1<<28)/d {
			return nil, fmt.Errorf("input dimension %d", d)
		}
		b.InputShape = append(b.InputShape, d)
		size *= d
	}
	b.InputMin = r.float64()
	b.InputMax = r.float64()
	b.Classes = int(r.uint32())
	n := int(r.uint32())
	if r.err == nil && (n == 0 || n > MaxTriggers || b.Classes < 2 || b.Classes > 1<<20) {
		return nil, fmt.Errorf("%d triggers over %d classes", n, b.Classes)
	}
	// Check the remaining length before allocating anything sized by the file.
	if r.err == nil && len(r.data) < 4*n+4*n*size+4*n+4+8+8 {
		return nil, fmt.Errorf("%d bytes left, %d triggers of %d values need more", len(r.data), n, size)
	}
	for i := 0; i < n && r.err == nil; i++ {
		l := int(r.uint32())
		if l >= b.Classes {
			return nil, fmt.Errorf("key label %d of %d classes", l, b.Classes)
		}
		b.KeyLabels = append(b.KeyLabels, l)
	}
	if r.err == nil {
		b.Triggers = r.float32s(n * size)
		b.Margins = r.float32s(n)
	}
	b.Steps = int(r.uint32())
	b.Lambda = r.float64()
	b.FinalLoss = r.float64()
	if version >= 2 {
		if channels := int(r.uint8()); channels > 0 {
			if channels > maxChannels {
				return nil, fmt.Errorf("normalisation of %d channels", channels)
			}
			for range channels {
				b.Normalization.Mean = append(b.Normalization.Mean, r.float64())
			}
			for range channels {
				b.Normalization.Std = append(b.Normalization.Std, r.float64())
			}
		}
		b.Normalization.Axis = int(r.uint8())
		if r.err == nil && !b.Normalization.IsZero() {
			n := b.Normalization
			if n.Axis >= len(b.InputShape) || (len(n.Mean) > 1 && b.InputShape[n.Axis] != len(n.Mean)) {
				return nil, fmt.Errorf("%w: %d channels on axis %d of %v", errNormalization, len(n.Mean), n.Axis, b.InputShape)
			}
		}
		b.Competitors = int(r.uint32())
		fields := b.Measures.fields()
		for i := range fields {
			fields[i] = r.float64()
		}
		b.Measures.setFields(fields)
	}
	if version >= 3 {
		b.Diversity = r.float64()
	}
	if r.err != nil {
		return nil, r.err
	}
	if len(r.data) != 0 {
		return nil, fmt.Errorf("%d unexpected trailing bytes", len(r.data))
	}
	return b, nil
}

// reader consumes little-endian fields, remembering the first short read.
type reader struct {
	data []byte
	err  error
}

func (r *reader) bytes(n int) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || len(r.data) < n {
		r.err = fmt.Errorf("need %d bytes, %d left", n, len(r.data))
		return nil
	}
	b := r.data[:n]
	r.data = r.data[n:]
	return b
}

func (r *reader) uint8() uint8 {
	if b := r.bytes(1); b != nil {
		return b[0]
	}
	return 0
}

func (r *reader) uint32() uint32 {
	if b := r.bytes(4); b != nil {
		return binary.LittleEndian.Uint32(b)
	}
	return 0
}

func (r *reader) float64() float64 {
	if b := r.bytes(8); b != nil {
		return math.Float64frombits(binary.LittleEndian.Uint64(b))
	}
	return 0
}

func (r *reader) string() string {
	b := r.bytes(2)
	if b == nil {
		return ""
	}
	return string(r.bytes(int(binary.LittleEndian.Uint16(b))))
}

func (r *reader) float32s(n int) []float32 {
	b := r.bytes(4 * n)
	if b == nil {
		return nil
	}
	out := make([]float32, n)
	for i := range out {
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return out
}
