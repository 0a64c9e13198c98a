package oip

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/url"
	"slices"
	"strconv"
)

// FP32 is the only tensor datatype fragile sends or serves: triggers are float32.
const FP32 = "FP32"

// MaxRank bounds the rank of any tensor decoded here (and the nesting depth of its data).
const MaxRank = 8

// ServerMetadata is the answer to GET /v2 ($metadata_server_response).
type ServerMetadata struct {
	Name       string   `json:"name"`
	Version    string   `json:"version"`
	Extensions []string `json:"extensions"`
}

// ModelMetadata is the answer to GET /v2/models/NAME[/versions/V]
// ($metadata_model_response). A shape dimension of -1 is variable.
type ModelMetadata struct {
	Name     string           `json:"name"`
	Versions []string         `json:"versions,omitempty"`
	Platform string           `json:"platform"`
	Inputs   []TensorMetadata `json:"inputs"`
	Outputs  []TensorMetadata `json:"outputs"`
}

// TensorMetadata describes one input or output ($metadata_tensor).
type TensorMetadata struct {
	Name     string  `json:"name"`
	Datatype string  `json:"datatype"`
	Shape    []int64 `json:"shape"`
}

// InferRequest is the body of POST .../infer ($inference_request).
type InferRequest struct {
	ID         string           `json:"id,omitempty"`
	Parameters map[string]any   `json:"parameters,omitempty"`
	Inputs     []Tensor         `json:"inputs"`
	Outputs    []RequestedOuput `json:"outputs,omitempty"`
}

// RequestedOuput names an output the client wants ($request_output).
type RequestedOuput struct {
	Name       string         `json:"name"`
	Parameters map[string]any `json:"parameters,omitempty"`
}

// InferResponse is the body of a successful inference ($inference_response).
type InferResponse struct {
	ModelName    string         `json:"model_name"`
	ModelVersion string         `json:"model_version,omitempty"`
	ID           string         `json:"id,omitempty"`
	Parameters   map[string]any `json:"parameters,omitempty"`
	Outputs      []Tensor       `json:"outputs"`
}

// Tensor is a request input or a response output with its values
// ($request_input, $response_output).
type Tensor struct {
	Name       string         `json:"name"`
	Shape      []int64        `json:"shape"`
	Datatype   string         `json:"datatype"`
	Parameters map[string]any `json:"parameters,omitempty"`
	Data       Data           `json:"data"`
}

// ErrorBody is the body of every failed request ($inference_error_response and
// the metadata error responses): {"error": "<message>"}.
type ErrorBody struct {
	Error string `json:"error"`
}

// ModelPath is the path of a model's resource: /v2/models/NAME, or
// /v2/models/NAME/versions/V when version is set. suffix ("", "/ready", "/infer")
// is appended.
func ModelPath(name, version, suffix string) string {
	p := "/v2/models/" + url.PathEscape(name)
	if version != "" {
		p += "/versions/" + url.PathEscape(version)
	}
	return p + suffix
}

// ErrTooLarge is wrapped by ReadJSON when a body exceeds its bound.
var ErrTooLarge = errors.New("body too large")

// ReadJSON decodes one JSON value from at most limit bytes of r into v. A longer body
// is an error wrapping ErrTooLarge, read no further than limit+1 bytes.
func ReadJSON(r io.Reader, limit int64, v any) error {
	data, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return err
	}
	if int64(len(data)) > limit {
		return fmt.Errorf("%w: more than %d bytes", ErrTooLarge, limit)
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("not the expected JSON: %w", err)
	}
	return nil
}

// Elements is the number of values a shape holds, or an error when a dimension is
// negative or the product overflows max.
func Elements(shape []int64, max int) (int, error) {
	if len(shape) > MaxRank {
		return 0, fmt.Errorf("shape %v has rank %d, at most %d is supported", shape, len(shape), MaxRank)
	}
	n := 1
	for _, d := range shape {
		if d < 0 {
			return 0, fmt.Errorf("shape %v has a negative dimension", shape)
		}
		if d > 0 && n > max/int(min(d, math.MaxInt32)) {
			return 0, fmt.Errorf("shape %v holds more than %d values", shape, max)
		}
		n *= int(d)
	}
	return n, nil
}

// Data holds a tensor's values in row-major order. It decodes the "data" array flat
// ([1, 2, 4, 5]) or nested ([[1, 2], [4, 5]]), as the specification allows, and
// encodes flat, each value with float32 precision (every tensor here is FP32).
type Data struct {
	Values []float32
	// Nested is the shape implied by the nesting of a decoded nested array; nil when
	// the array was flat.
	Nested []int64
}

// CheckShape reports whether the decoded values fit shape: their count must equal the
// shape's element count, and a nested array's nesting must equal the shape itself.
func (d Data) CheckShape(shape []int64) error {
	n, err := Elements(shape, math.MaxInt32)
	if err != nil {
		return err
	}
	if d.Nested != nil && !slices.Equal(d.Nested, shape) {
		return fmt.Errorf("nested data has shape %v, the tensor declares %v", d.Nested, shape)
	}
	if len(d.Values) != n {
		return fmt.Errorf("data holds %d values, shape %v needs %d", len(d.Values), shape, n)
	}
	return nil
}

// MarshalJSON writes the values as one flat array with float32 precision, so that a
// receiver parsing them as float32 gets back exactly the bits that were sent.
func (d Data) MarshalJSON() ([]byte, error) {
	out := make([]byte, 0, 2+len(d.Values)*12)
	out = append(out, '[')
	for i, v := range d.Values {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return nil, fmt.Errorf("value %d is %v, which JSON cannot carry", i, v)
		}
		if i > 0 {
			out = append(out, ',')
		}
		out = strconv.AppendFloat(out, float64(v), 'g', -1, 32)
	}
	return append(out, ']'), nil
}

// UnmarshalJSON reads a flat or nested array of numbers. encoding/json has already
// checked that the input is valid JSON; this scanner only accepts arrays of numbers,
// at most MaxRank deep, with numbers only at the deepest level and every level
// rectangular.
func (d *Data) UnmarshalJSON(b []byte) error {
	s := scanner{buf: b}
	s.skipSpace()
	if s.peek() != '[' {
		return errors.New("data must be an array of numbers")
	}
	var lengths []int64 // the length shared by every array at each depth, -1 until known
	var counts []int64  // elements so far in the array open at each depth
	depth, leaf := 0, 0 // leaf: the depth numbers live at, 0 until the first number
	values := make([]float32, 0, len(b)/8)
	for s.pos < len(s.buf) {
		switch c := s.buf[s.pos]; c {
		case ' ', '\t', '\n', '\r', ',':
			s.pos++
		case '[':
			s.pos++
			if depth > 0 {
				if depth == leaf {
					return errors.New("nested data mixes numbers and arrays at one depth")
				}
				counts[depth-1]++
			}
			depth++
			if depth > MaxRank {
				return fmt.Errorf("data is nested more than %d deep", MaxRank)
			}
			if depth > len(counts) {
				counts = append(counts, 0)
				lengths = append(lengths, -1)
			}
			counts[depth-1] = 0
		case ']':
			s.pos++
			if lengths[depth-1] < 0 {
				lengths[depth-1] = counts[depth-1]
			} else if lengths[depth-1] != counts[depth-1] {
				return fmt.Errorf("nested data is not rectangular: arrays of %d and %d elements at depth %d", lengths[depth-1], counts[depth-1], depth)
			}
			depth--
			if depth == 0 {
				s.pos = len(s.buf)
			}
		default:
			if leaf == 0 {
				leaf = depth
			}
			if depth != leaf || depth != len(counts) {
				return errors.New("nested data mixes numbers and arrays at one depth")
			}
			v, err := s.number()
			if err != nil {
				return err
			}
			counts[depth-1]++
			values = append(values, v)
		}
	}
	d.Values = values
	d.Nested = nil
	if len(lengths) > 1 {
		d.Nested = lengths
	}
	return nil
}

type scanner struct {
	buf []byte
	pos int
}

func (s *scanner) peek() byte {
	if s.pos < len(s.buf) {
		return s.buf[s.pos]
	}
	return 0
}

func (s *scanner) skipSpace() {
	for s.pos < len(s.buf) {
		switch s.buf[s.pos] {
		case ' ', '\t', '\n', '\r':
			s.pos++
		default:
			return
		}
	}
}

// number parses one JSON number as float32. Strings, booleans and null are errors:
// fragile's tensors are FP32 only.
func (s *scanner) number() (float32, error) {
	start := s.pos
	for s.pos < len(s.buf) {
		c := s.buf[s.pos]
		if (c >= '0' && c <= '9') || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E' {
			s.pos++
			continue
		}
		break
	}
	if start == s.pos {
		return 0, fmt.Errorf("data holds %q where a number was expected", clip(s.buf[start:]))
	}
	v, err := strconv.ParseFloat(string(s.buf[start:s.pos]), 32)
	if err != nil {
		return 0, fmt.Errorf("data value %q: not an FP32 number", s.buf[start:s.pos])
	}
	return float32(v), nil
}

func clip(b []byte) string {
	if len(b) > 16 {
		b = b[:16]
	}
	return string(b)
}
