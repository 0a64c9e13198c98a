package onnx

import (
	"encoding/binary"
	"fmt"
	"math"
	"sort"

	"google.golang.org/protobuf/encoding/protowire"
)

// Encode writes m as an ONNX ModelProto. Float tensors are stored as raw_data, as
// the reference exporters do.
func Encode(m *Model) []byte {
	var b []byte
	b = protowire.AppendTag(b, 1, protowire.VarintType)
	b = protowire.AppendVarint(b, uint64(m.IRVersion))
	if m.ProducerName != "" {
		b = appendString(b, 2, m.ProducerName)
	}
	if m.ProducerVersion != "" {
		b = appendString(b, 3, m.ProducerVersion)
	}
	b = appendMessage(b, 7, encodeGraph(&m.Graph))
	domains := make([]string, 0, len(m.Opsets))
	for d := range m.Opsets {
		domains = append(domains, d)
	}
	sort.Strings(domains) // deterministic output
	for _, d := range domains {
		var o []byte
		if d != "" {
			o = appendString(o, 1, d)
		}
		o = protowire.AppendTag(o, 2, protowire.VarintType)
		o = protowire.AppendVarint(o, uint64(m.Opsets[d]))
		b = appendMessage(b, 8, o)
	}
	return b
}

func encodeGraph(g *Graph) []byte {
	var b []byte
	for i := range g.Nodes {
		b = appendMessage(b, 1, encodeNode(&g.Nodes[i]))
	}
	if g.Name != "" {
		b = appendString(b, 2, g.Name)
	}
	for i := range g.Initializers {
		b = appendMessage(b, 5, EncodeTensor(&g.Initializers[i]))
	}
	for i := range g.Inputs {
		b = appendMessage(b, 11, encodeValueInfo(&g.Inputs[i]))
	}
	for i := range g.Outputs {
		b = appendMessage(b, 12, encodeValueInfo(&g.Outputs[i]))
	}
	return b
}

func encodeNode(n *Node) []byte {
	var b []byte
	for _, s := range n.Inputs {
		b = appendString(b, 1, s)
	}
	for _, s := range n.Outputs {
		b = appendString(b, 2, s)
	}
	if n.Name != "" {
		b = appendString(b, 3, n.Name)
	}
	b = appendString(b, 4, n.OpType)
	for i := range n.Attributes {
		b = appendMessage(b, 5, encodeAttribute(&n.Attributes[i]))
	}
	if n.Domain != "" {
		b = appendString(b, 7, n.Domain)
	}
	return b
}

func encodeAttribute(a *Attribute) []byte {
	var b []byte
	b = appendString(b, 1, a.Name)
	switch a.Type {
	case AttributeFloat:
		b = protowire.AppendTag(b, 2, protowire.Fixed32Type)
		b = protowire.AppendFixed32(b, math.Float32bits(a.F))
	case AttributeInt:
		b = protowire.AppendTag(b, 3, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(a.I))
	case AttributeString:
		b = protowire.AppendTag(b, 4, protowire.BytesType)
		b = protowire.AppendBytes(b, a.S)
	case AttributeTensor:
		b = appendMessage(b, 5, EncodeTensor(a.T))
	case AttributeFloats:
		for _, f := range a.Floats {
			b = protowire.AppendTag(b, 7, protowire.Fixed32Type)
			b = protowire.AppendFixed32(b, math.Float32bits(f))
		}
	case AttributeInts:
		for _, i := range a.Ints {
			b = protowire.AppendTag(b, 8, protowire.VarintType)
			b = protowire.AppendVarint(b, uint64(i))
		}
	case AttributeStrings:
		for _, s := range a.Strings {
			b = protowire.AppendTag(b, 9, protowire.BytesType)
			b = protowire.AppendBytes(b, s)
		}
	}
	b = protowire.AppendTag(b, 20, protowire.VarintType)
	b = protowire.AppendVarint(b, uint64(a.Type))
	return b
}

// EncodeTensor writes one TensorProto; FLOAT, DOUBLE, INT64 and INT32 values go to
// raw_data.
func EncodeTensor(t *Tensor) []byte {
	var b []byte
	for _, d := range t.Dims {
		b = protowire.AppendTag(b, 1, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(d))
	}
	b = protowire.AppendTag(b, 2, protowire.VarintType)
	b = protowire.AppendVarint(b, uint64(t.DataType))
	if t.Name != "" {
		b = appendString(b, 8, t.Name)
	}
	var raw []byte
	switch t.DataType {
	case DataTypeFloat:
		raw = make([]byte, 4*len(t.Float))
		for i, f := range t.Float {
			binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(f))
		}
	case DataTypeDouble:
		raw = make([]byte, 8*len(t.Double))
		for i, f := range t.Double {
			binary.LittleEndian.PutUint64(raw[8*i:], math.Float64bits(f))
		}
	case DataTypeInt64:
		raw = make([]byte, 8*len(t.Int64))
		for i, v := range t.Int64 {
			binary.LittleEndian.PutUint64(raw[8*i:], uint64(v))
		}
	case DataTypeInt32:
		raw = make([]byte, 4*len(t.Int64))
		for i, v := range t.Int64 {
			binary.LittleEndian.PutUint32(raw[4*i:], uint32(int32(v)))
		}
	}
	b = protowire.AppendTag(b, 9, protowire.BytesType)
	return protowire.AppendBytes(b, raw)
}

func encodeValueInfo(v *ValueInfo) []byte {
	var shape []byte
	for _, d := range v.Dims {
		var db []byte
		if d.Value >= 0 {
			db = protowire.AppendTag(db, 1, protowire.VarintType)
			db = protowire.AppendVarint(db, uint64(d.Value))
		} else if d.Param != "" {
			db = appendString(db, 2, d.Param)
		}
		shape = appendMessage(shape, 1, db)
	}
	var tt []byte
	tt = protowire.AppendTag(tt, 1, protowire.VarintType)
	tt = protowire.AppendVarint(tt, uint64(v.ElemType))
	tt = appendMessage(tt, 2, shape)
	var b []byte
	b = appendString(b, 1, v.Name)
	return appendMessage(b, 2, appendMessage(nil, 1, tt))
}

// ReplaceInitializers returns a copy of the ONNX file data in which the FLOAT
// initializers named in values carry the new values. Every other byte of the file is
// copied unchanged, so the result is the same graph with new weights. Each new value
// slice must have the initializer's element count, and every name must exist.
func ReplaceInitializers(data []byte, values map[string][]float32) ([]byte, error) {
	replaced := map[string]bool{}
	out, err := rewriteField(data, 7, func(graph []byte) ([]byte, error) {
		return rewriteField(graph, 5, func(tensor []byte) ([]byte, error) {
			var t Tensor
			if err := decodeTensor(tensor, &t); err != nil {
				return nil, err
			}
			v, ok := values[t.Name]
			if !ok {
				return tensor, nil
			}
			if t.DataType != DataTypeFloat {
				return nil, fmt.Errorf("initializer %q is %s, only FLOAT initializers can be replaced", t.Name, t.DataType)
			}
			if int64(len(v)) != t.Size() {
				return nil, fmt.Errorf("initializer %q has %d elements, %d given", t.Name, t.Size(), len(v))
			}
			replaced[t.Name] = true
			t.Float = v
			return EncodeTensor(&t), nil
		})
	})
	if err != nil {
		return nil, err
	}
	for name := range values {
		if !replaced[name] {
			return nil, fmt.Errorf("no FLOAT initializer named %q", name)
		}
	}
	return out, nil
}

// rewriteField copies a message, passing the payload of every length-delimited
// field number num through fn.
func rewriteField(data []byte, num protowire.Number, fn func([]byte) ([]byte, error)) ([]byte, error) {
	out := make([]byte, 0, len(data))
	for len(data) > 0 {
		n, typ, tagLen := protowire.ConsumeTag(data)
		if tagLen < 0 {
			return nil, protowire.ParseError(tagLen)
		}
		valLen := protowire.ConsumeFieldValue(n, typ, data[tagLen:])
		if valLen < 0 {
			return nil, protowire.ParseError(valLen)
		}
		if n != num || typ != protowire.BytesType {
			out = append(out, data[:tagLen+valLen]...)
			data = data[tagLen+valLen:]
			continue
		}
		payload, _ := protowire.ConsumeBytes(data[tagLen:])
		rewritten, err := fn(payload)
		if err != nil {
			return nil, err
		}
		out = appendMessage(out, num, rewritten)
		data = data[tagLen+valLen:]
	}
	return out, nil
}

func appendString(b []byte, num protowire.Number, s string) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendString(b, s)
}

func appendMessage(b []byte, num protowire.Number, msg []byte) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendBytes(b, msg)
}
