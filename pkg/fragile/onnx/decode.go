package onnx

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"google.golang.org/protobuf/encoding/protowire"
)

// Limits that keep a hostile file from making the decoder allocate without bound.
const (
	// MaxTensorElements bounds one tensor's element count (1 GiB of float32).
	MaxTensorElements = 1 << 28
	// maxDims bounds the rank of a tensor or value.
	maxDims = 16
)

// ErrNotONNX is returned when the bytes are not a protobuf ModelProto with a graph.
var ErrNotONNX = errors.New("not an ONNX model")

// Decode parses an ONNX ModelProto. It never panics: malformed input of any kind
// yields an error that says which part of the file is wrong.
func Decode(data []byte) (*Model, error) {
	m := &Model{Opsets: map[string]int64{}}
	sawGraph := false
	err := eachField(data, func(num protowire.Number, typ protowire.Type, v field) error {
		switch num {
		case 1:
			m.IRVersion = int64(v.u)
		case 2:
			m.ProducerName = string(v.b)
		case 3:
			m.ProducerVersion = string(v.b)
		case 7:
			if typ != protowire.BytesType {
				return fmt.Errorf("graph has wire type %d", typ)
			}
			sawGraph = true
			return decodeGraph(v.b, &m.Graph)
		case 8:
			if typ != protowire.BytesType {
				return fmt.Errorf("opset_import has wire type %d", typ)
			}
			var domain string
			var version int64
			if err := eachField(v.b, func(num protowire.Number, _ protowire.Type, v field) error {
				switch num {
				case 1:
					domain = string(v.b)
				case 2:
					version = int64(v.u)
				}
				return nil
			}); err != nil {
				return fmt.Errorf("opset_import: %w", err)
			}
			m.Opsets[domain] = version
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNotONNX, err)
	}
	if !sawGraph || len(m.Graph.Nodes) == 0 {
		return nil, fmt.Errorf("%w: no graph with nodes", ErrNotONNX)
	}
	return m, nil
}

// field is one decoded protobuf field value: u for varint/fixed, b for bytes.
type field struct {
	u uint64
	b []byte
}

// eachField walks the fields of one message, calling fn for each.
func eachField(data []byte, fn func(protowire.Number, protowire.Type, field) error) error {
	for len(data) > 0 {
		num, typ, n := protowire.ConsumeTag(data)
		if n < 0 {
			return fmt.Errorf("bad field tag: %v", protowire.ParseError(n))
		}
		data = data[n:]
		var v field
		switch typ {
		case protowire.VarintType:
			v.u, n = protowire.ConsumeVarint(data)
		case protowire.Fixed32Type:
			var u uint32
			u, n = protowire.ConsumeFixed32(data)
			v.u = uint64(u)
		case protowire.Fixed64Type:
			v.u, n = protowire.ConsumeFixed64(data)
		case protowire.BytesType:
			v.b, n = protowire.ConsumeBytes(data)
		default:
			n = protowire.ConsumeFieldValue(num, typ, data)
		}
		if n < 0 {
			return fmt.Errorf("field %d: %v", num, protowire.ParseError(n))
		}
		data = data[n:]
		if err := fn(num, typ, v); err != nil {
			return err
		}
	}
	return nil
}

func decodeGraph(data []byte, g *Graph) error {
	return eachField(data, func(num protowire.Number, typ protowire.Type, v field) error {
		if num != 2 && num != 1 && num != 5 && num != 11 && num != 12 {
			return nil
		}
		if typ != protowire.BytesType {
			return fmt.Errorf("graph field %d has wire type %d", num, typ)
		}
		switch num {
		case 1:
			var n Node
			if err := decodeNode(v.b, &n); err != nil {
				return fmt.Errorf("node %d: %w", len(g.Nodes), err)
			}
			g.Nodes = append(g.Nodes, n)
		case 2:
			g.Name = string(v.b)
		case 5:
			var t Tensor
			if err := decodeTensor(v.b, &t); err != nil {
				return fmt.Errorf("initializer %d: %w", len(g.Initializers), err)
			}
			g.Initializers = append(g.Initializers, t)
		case 11, 12:
			var vi ValueInfo
			if err := decodeValueInfo(v.b, &vi); err != nil {
				return fmt.Errorf("graph input/output: %w", err)
			}
			if num == 11 {
				g.Inputs = append(g.Inputs, vi)
			} else {
				g.Outputs = append(g.Outputs, vi)
			}
		}
		return nil
	})
}

func decodeNode(data []byte, n *Node) error {
	return eachField(data, func(num protowire.Number, _ protowire.Type, v field) error {
		switch num {
		case 1:
			n.Inputs = append(n.Inputs, string(v.b))
		case 2:
			n.Outputs = append(n.Outputs, string(v.b))
		case 3:
			n.Name = string(v.b)
		case 4:
			n.OpType = string(v.b)
		case 7:
			n.Domain = string(v.b)
		case 5:
			var a Attribute
			if err := decodeAttribute(v.b, &a); err != nil {
				return fmt.Errorf("%s attribute: %w", n.OpType, err)
			}
			n.Attributes = append(n.Attributes, a)
		}
		return nil
	})
}

func decodeAttribute(data []byte, a *Attribute) error {
	return eachField(data, func(num protowire.Number, typ protowire.Type, v field) error {
		var err error
		switch num {
		case 1:
			a.Name = string(v.b)
		case 20:
			a.Type = AttributeType(v.u)
		case 2:
			a.F = math.Float32frombits(uint32(v.u))
		case 3:
			a.I = int64(v.u)
		case 4:
			a.S = v.b
		case 5:
			a.T = new(Tensor)
			err = decodeTensor(v.b, a.T)
		case 7:
			a.Floats, err = appendFloats(a.Floats, typ, v)
		case 8:
			a.Ints, err = appendInts(a.Ints, typ, v)
		case 9:
			a.Strings = append(a.Strings, v.b)
		}
		if err != nil {
			return fmt.Errorf("%q: %w", a.Name, err)
		}
		return nil
	})
}

func decodeValueInfo(data []byte, vi *ValueInfo) error {
	return eachField(data, func(num protowire.Number, _ protowire.Type, v field) error {
		switch num {
		case 1:
			vi.Name = string(v.b)
		case 2: // TypeProto
			return eachField(v.b, func(num protowire.Number, _ protowire.Type, v field) error {
				if num != 1 { // only tensor_type
					return nil
				}
				return eachField(v.b, func(num protowire.Number, _ protowire.Type, v field) error {
					switch num {
					case 1:
						vi.ElemType = DataType(v.u)
					case 2: // TensorShapeProto
						return eachField(v.b, func(num protowire.Number, _ protowire.Type, v field) error {
							if num != 1 {
								return nil
							}
							if len(vi.Dims) >= maxDims {
								return fmt.Errorf("value %q has more than %d dims", vi.Name, maxDims)
							}
							d := Dim{Value: -1}
							err := eachField(v.b, func(num protowire.Number, _ protowire.Type, v field) error {
								switch num {
								case 1:
									d.Value = int64(v.u)
								case 2:
									d.Param = string(v.b)
								}
								return nil
							})
							vi.Dims = append(vi.Dims, d)
							return err
						})
					}
					return nil
				})
			})
		}
		return nil
	})
}

func decodeTensor(data []byte, t *Tensor) error {
	var raw []byte
	external := false
	err := eachField(data, func(num protowire.Number, typ protowire.Type, v field) error {
		var err error
		switch num {
		case 1:
			t.Dims, err = appendInts(t.Dims, typ, v)
			if len(t.Dims) > maxDims {
				err = fmt.Errorf("more than %d dims", maxDims)
			}
		case 2:
			t.DataType = DataType(v.u)
		case 8:
			t.Name = string(v.b)
		case 9:
			raw = v.b
		case 4:
			t.Float, err = appendFloats(t.Float, typ, v)
		case 5, 7:
			t.Int64, err = appendInts(t.Int64, typ, v)
		case 10:
			t.Double, err = appendDoubles(t.Double, typ, v)
		case 14:
			external = v.u == 1
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("tensor %q: %w", t.Name, err)
	}
	if external {
		return fmt.Errorf("tensor %q: external data files are not supported; embed the weights in the model file", t.Name)
	}
	size := int64(1)
	for _, d := range t.Dims {
		if d < 0 {
			return fmt.Errorf("tensor %q: negative dimension %d", t.Name, d)
		}
		if d > 0 && size > MaxTensorElements/d {
			return fmt.Errorf("tensor %q: more than %d elements", t.Name, MaxTensorElements)
		}
		size *= d
	}
	if raw != nil {
		if err := t.decodeRaw(raw, size); err != nil {
			return err
		}
	}
	var have int64
	switch t.DataType {
	case DataTypeFloat:
		have = int64(len(t.Float))
	case DataTypeDouble:
		have = int64(len(t.Double))
	case DataTypeInt64, DataTypeInt32:
		have = int64(len(t.Int64))
	default:
		return nil // kept, values unavailable; users of the tensor report the type
	}
	if have != size {
		return fmt.Errorf("tensor %q: dims %v need %d values, file holds %d", t.Name, t.Dims, size, have)
	}
	return nil
}

func (t *Tensor) decodeRaw(raw []byte, size int64) error {
	width := map[DataType]int64{DataTypeFloat: 4, DataTypeDouble: 8, DataTypeInt64: 8, DataTypeInt32: 4}[t.DataType]
	if width == 0 {
		return nil
	}
	if int64(len(raw)) != size*width {
		return fmt.Errorf("tensor %q: dims %v need %d bytes of %s, raw_data has %d", t.Name, t.Dims, size*width, t.DataType, len(raw))
	}
	switch t.DataType {
	case DataTypeFloat:
		t.Float = make([]float32, size)
		for i := range t.Float {
			t.Float[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
		}
	case DataTypeDouble:
		t.Double = make([]float64, size)
		for i := range t.Double {
			t.Double[i] = math.Float64frombits(binary.LittleEndian.Uint64(raw[8*i:]))
		}
	case DataTypeInt64:
		t.Int64 = make([]int64, size)
		for i := range t.Int64 {
			t.Int64[i] = int64(binary.LittleEndian.Uint64(raw[8*i:]))
		}
	case DataTypeInt32:
		t.Int64 = make([]int64, size)
		for i := range t.Int64 {
			t.Int64[i] = int64(int32(binary.LittleEndian.Uint32(raw[4*i:])))
		}
	}
	return nil
}

// appendFloats accepts a repeated float field in packed or unpacked form.
func appendFloats(dst []float32, typ protowire.Type, v field) ([]float32, error) {
	if typ == protowire.Fixed32Type {
		return append(dst, math.Float32frombits(uint32(v.u))), nil
	}
	if typ != protowire.BytesType || len(v.b)%4 != 0 {
		return nil, errors.New("malformed float list")
	}
	if int64(len(dst))+int64(len(v.b)/4) > MaxTensorElements {
		return nil, errors.New("float list too long")
	}
	for i := 0; i < len(v.b); i += 4 {
		dst = append(dst, math.Float32frombits(binary.LittleEndian.Uint32(v.b[i:])))
	}
	return dst, nil
}

func appendDoubles(dst []float64, typ protowire.Type, v field) ([]float64, error) {
	if typ == protowire.Fixed64Type {
		return append(dst, math.Float64frombits(v.u)), nil
	}
	if typ != protowire.BytesType || len(v.b)%8 != 0 {
		return nil, errors.New("malformed double list")
	}
	if int64(len(dst))+int64(len(v.b)/8) > MaxTensorElements {
		return nil, errors.New("double list too long")
	}
	for i := 0; i < len(v.b); i += 8 {
		dst = append(dst, math.Float64frombits(binary.LittleEndian.Uint64(v.b[i:])))
	}
	return dst, nil
}

// appendInts accepts a repeated varint field in packed or unpacked form.
func appendInts(dst []int64, typ protowire.Type, v field) ([]int64, error) {
	if typ == protowire.VarintType {
		return append(dst, int64(v.u)), nil
	}
	if typ != protowire.BytesType {
		return nil, errors.New("malformed integer list")
	}
	b := v.b
	for len(b) > 0 {
		x, n := protowire.ConsumeVarint(b)
		if n < 0 {
			return nil, errors.New("malformed packed integer list")
		}
		if int64(len(dst)) >= MaxTensorElements {
			return nil, errors.New("integer list too long")
		}
		dst = append(dst, int64(x))
		b = b[n:]
	}
	return dst, nil
}

// DecodeTensor parses a standalone TensorProto, the format of ONNX test data files
// (test_data_set_N/input_0.pb).
func DecodeTensor(data []byte) (*Tensor, error) {
	t := new(Tensor)
	if err := decodeTensor(data, t); err != nil {
		return nil, err
	}
	return t, nil
}
