package serve

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"gorgonia.org/tensor"

	"github.com/fragile-operator/fragile-operator/pkg/fragile/nn"
	"github.com/fragile-operator/fragile-operator/pkg/fragile/oip"
	"github.com/fragile-operator/fragile-operator/pkg/fragile/onnx"
)

// Version is the only model version served.
const Version = "1"

// Limits on what one request may ask for.
const (
	// MaxBatch bounds the examples in one infer request.
	MaxBatch = 256
	// MaxBodyBytes bounds an infer request body.
	MaxBodyBytes = 64 << 20
	// maxRunners bounds the compiled graphs kept, one per batch size seen.
	maxRunners = 8
)

// Server serves one ONNX model file under one name.
type Server struct {
	name string
	path string
	// Logf reports reloads; nil is silent. Request contents are never logged.
	Logf func(format string, args ...any)

	mu      sync.RWMutex
	current *model // nil while the file does not load
	loadErr error
	stamp   fileStamp
}

// model is one loaded version of the file. Its runners are used one request at a time.
type model struct {
	net        *nn.Network
	digest     [sha256.Size]byte
	fixedBatch int64 // 0 when the batch dimension is symbolic
	softmax    bool  // the graph's output is a Softmax of the logits

	mu      sync.Mutex
	runners map[int]*nn.Runner
	closed  bool
}

// New loads the model file and serves it as name; an empty name is the file's base
// name without its extension.
func New(path, name string) (*Server, error) {
	if name == "" {
		name = strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))
	}
	s := &Server{name: name, path: path}
	if err := s.Reload(); err != nil {
		return nil, err
	}
	return s, nil
}

// Name is the model name served.
func (s *Server) Name() string { return s.name }

// Reload re-reads the model file. Unchanged bytes keep the loaded model; a file that
// does not load makes the model not ready and returns the reason.
func (s *Server) Reload() error {
	stamp, _ := stampOf(s.path)
	data, err := os.ReadFile(s.path)
	var m *model
	if err == nil {
		digest := sha256.Sum256(data)
		s.mu.RLock()
		same := s.current != nil && s.current.digest == digest
		s.mu.RUnlock()
		if same {
			s.mu.Lock()
			s.stamp = stamp
			s.mu.Unlock()
			return nil
		}
		m, err = load(data)
	}
	if err != nil {
		err = fmt.Errorf("model file %s: %w", s.path, err)
	}
	s.mu.Lock()
	old := s.current
	s.current, s.loadErr, s.stamp = m, err, stamp
	s.mu.Unlock()
	if old != nil {
		old.close()
	}
	if s.Logf != nil {
		if err != nil {
			s.Logf("model %s not ready: %v", s.name, err)
		} else {
			s.Logf("model %s loaded from %s (sha256:%x)", s.name, s.path, m.digest)
		}
	}
	return err
}

// Watch reloads the file whenever its size, modification time or inode changes, polling
// every interval until ctx is done.
func (s *Server) Watch(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			stamp, _ := stampOf(s.path)
			s.mu.RLock()
			changed := stamp != s.stamp
			s.mu.RUnlock()
			if changed {
				_ = s.Reload() // the error is logged, and readiness reports it
			}
		}
	}
}

// Close releases the loaded model.
func (s *Server) Close() {
	s.mu.Lock()
	old := s.current
	s.current = nil
	s.loadErr = errors.New("server closed")
	s.mu.Unlock()
	if old != nil {
		old.close()
	}
}

type fileStamp struct {
	size  int64
	mtime time.Time
	inode uint64
}

func stampOf(path string) (fileStamp, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return fileStamp{}, err
	}
	st := fileStamp{size: fi.Size(), mtime: fi.ModTime()}
	if sys, ok := fi.Sys().(*syscall.Stat_t); ok {
		st.inode = sys.Ino
	}
	return st, nil
}

func load(data []byte) (m *model, err error) {
	defer func() {
		if p := recover(); p != nil {
			m, err = nil, fmt.Errorf("loading the model: internal error: %v", p)
		}
	}()
	decoded, err := onnx.Decode(data)
	if err != nil {
		return nil, err
	}
	net, err := nn.Compile(decoded)
	if err != nil {
		return nil, err
	}
	m = &model{net: net, digest: sha256.Sum256(data), runners: map[int]*nn.Runner{}}
	for _, in := range decoded.Graph.Inputs {
		if in.Name == net.InputName && len(in.Dims) > 0 && in.Dims[0].Value > 0 {
			m.fixedBatch = in.Dims[0].Value
		}
	}
	for _, node := range decoded.Graph.Nodes {
		if node.OpType == "Softmax" && len(node.Outputs) == 1 && node.Outputs[0] == net.OutputName {
			m.softmax = true
		}
	}
	return m, nil
}

// scores runs n examples and returns n rows of class scores: the graph's output, i.e.
// probabilities when it ends in Softmax and logits otherwise.
func (m *model) scores(inputs []float32, n int) ([]float32, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, errors.New("the model was replaced while the request waited")
	}
	r, ok := m.runners[n]
	if !ok {
		if len(m.runners) >= maxRunners {
			for k, old := range m.runners {
				old.Close()
				delete(m.runners, k)
			}
		}
		var err error
		if r, err = nn.NewRunner(m.net, n, tensor.Float32); err != nil {
			return nil, err
		}
		m.runners[n] = r
	}
	logits, err := r.Logits(inputs)
	if err != nil {
		return nil, err
	}
	classes := m.net.Classes
	out := make([]float32, len(logits))
	for i := range n {
		row := logits[i*classes : (i+1)*classes]
		if m.softmax {
			softmaxInto(out[i*classes:(i+1)*classes], row)
			continue
		}
		for j, v := range row {
			out[i*classes+j] = float32(v)
		}
	}
	return out, nil
}

func softmaxInto(dst []float32, row []float64) {
	peak := math.Inf(-1)
	for _, v := range row {
		peak = math.Max(peak, v)
	}
	var sum float64
	for _, v := range row {
		sum += math.Exp(v - peak)
	}
	for j, v := range row {
		dst[j] = float32(math.Exp(v-peak) / sum)
	}
}

func (m *model) close() {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, r := range m.runners {
		r.Close()
	}
	m.runners, m.closed = nil, true
}

// Handler routes the V2 REST API.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/v2/health/live", method(http.MethodGet, func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusOK)
	}))
	mux.HandleFunc("/v2/health/ready", method(http.MethodGet, func(w http.ResponseWriter, _ *http.Request) {
		if m, _ := s.loaded(); m == nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	mux.HandleFunc("/v2", method(http.MethodGet, func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, oip.ServerMetadata{Name: "fragile", Version: "v2", Extensions: []string{}})
	}))
	for _, prefix := range []string{"/v2/models/{name}", "/v2/models/{name}/versions/{version}"} {
		mux.HandleFunc(prefix, method(http.MethodGet, s.model(s.metadata)))
		mux.HandleFunc(prefix+"/ready", method(http.MethodGet, s.model(func(w http.ResponseWriter, _ *http.Request, _ *model) {
			w.WriteHeader(http.StatusOK)
		})))
		mux.HandleFunc(prefix+"/infer", method(http.MethodPost, s.model(s.infer)))
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "no such resource: %s", r.URL.Path)
	})
	return mux
}

func (s *Server) loaded() (*model, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.current, s.loadErr
}

// method answers 405 with an error body to any other method.
func method(want string, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Method != want && !(want == http.MethodGet && r.Method == http.MethodHead) {
			w.Header().Set("Allow", want)
			writeError(w, http.StatusMethodNotAllowed, "%s is not allowed on %s; use %s", r.Method, r.URL.Path, want)
			return
		}
		h(w, r)
	}
}

// model resolves {name} and {version}: 404 for another model or version, 503 while the
// file is not loaded.
func (s *Server) model(h func(http.ResponseWriter, *http.Request, *model)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if name := r.PathValue("name"); name != s.name {
			writeError(w, http.StatusNotFound, "model %q is not served here (this server serves %q)", name, s.name)
			return
		}
		if v := r.PathValue("version"); v != "" && v != Version {
			writeError(w, http.StatusNotFound, "model %q has no version %q (versions: %s)", s.name, v, Version)
			return
		}
		m, err := s.loaded()
		if m == nil {
			writeError(w, http.StatusServiceUnavailable, "model %q is not ready: %v", s.name, err)
			return
		}
		h(w, r, m)
	}
}

func (s *Server) metadata(w http.ResponseWriter, _ *http.Request, m *model) {
	batch := int64(-1)
	if m.fixedBatch > 0 {
		batch = m.fixedBatch
	}
	in := []int64{batch}
	for _, d := range m.net.InputShape {
		in = append(in, int64(d))
	}
	writeJSON(w, http.StatusOK, oip.ModelMetadata{
		Name: s.name, Versions: []string{Version}, Platform: "onnx",
		Inputs:  []oip.TensorMetadata{{Name: m.net.InputName, Datatype: oip.FP32, Shape: in}},
		Outputs: []oip.TensorMetadata{{Name: m.net.OutputName, Datatype: oip.FP32, Shape: []int64{batch, int64(m.net.Classes)}}},
	})
}

func (s *Server) infer(w http.ResponseWriter, r *http.Request, m *model) {
	if r.Header.Get("Inference-Header-Content-Length") != "" {
		writeError(w, http.StatusBadRequest, "binary tensor data is not supported: send JSON")
		return
	}
	var req oip.InferRequest
	if err := oip.ReadJSON(http.MaxBytesReader(w, r.Body, MaxBodyBytes), MaxBodyBytes, &req); err != nil {
		writeError(w, http.StatusBadRequest, "inference request: %v", err)
		return
	}
	n, values, err := m.checkRequest(&req)
	if err != nil {
		writeError(w, http.StatusBadRequest, "inference request for model %q: %v", s.name, err)
		return
	}
	scores, err := m.scores(values, n)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "inference failed: %v", err)
		return
	}
	writeJSON(w, http.StatusOK, oip.InferResponse{
		ModelName: s.name, ModelVersion: Version, ID: req.ID,
		Outputs: []oip.Tensor{{
			Name: m.net.OutputName, Datatype: oip.FP32,
			Shape: []int64{int64(n), int64(m.net.Classes)},
			Data:  oip.Data{Values: scores},
		}},
	})
}

// checkRequest validates an infer request against the model and returns the batch size
// and the input values.
func (m *model) checkRequest(req *oip.InferRequest) (int, []float32, error) {
	if len(req.Inputs) != 1 {
		return 0, nil, fmt.Errorf("%d inputs given, the model takes exactly one, %q", len(req.Inputs), m.net.InputName)
	}
	in := &req.Inputs[0]
	if in.Name != m.net.InputName {
		return 0, nil, fmt.Errorf("unexpected input %q; the model's input is %q", in.Name, m.net.InputName)
	}
	if in.Datatype != oip.FP32 {
		return 0, nil, fmt.Errorf("input %q has datatype %q, the model takes FP32", in.Name, in.Datatype)
	}
	if len(in.Shape) != 1+len(m.net.InputShape) {
		return 0, nil, fmt.Errorf("input %q has shape %v, the model takes [batch %v]", in.Name, in.Shape, m.net.InputShape)
	}
	for i, d := range m.net.InputShape {
		if in.Shape[1+i] != int64(d) {
			return 0, nil, fmt.Errorf("input %q has shape %v, the model takes [batch %v]", in.Name, in.Shape, m.net.InputShape)
		}
	}
	n := in.Shape[0]
	switch {
	case n < 1 || n > MaxBatch:
		return 0, nil, fmt.Errorf("input %q has batch size %d; 1 to %d are accepted", in.Name, n, MaxBatch)
	case m.fixedBatch > 0 && n != m.fixedBatch:
		return 0, nil, fmt.Errorf("input %q has batch size %d; the model's batch dimension is fixed at %d", in.Name, n, m.fixedBatch)
	}
	if err := in.Data.CheckShape(in.Shape); err != nil {
		return 0, nil, fmt.Errorf("input %q: %v", in.Name, err)
	}
	for _, o := range req.Outputs {
		if o.Name != m.net.OutputName {
			return 0, nil, fmt.Errorf("unknown output %q requested; the model's output is %q", o.Name, m.net.OutputName)
		}
		if b, ok := o.Parameters["binary_data"].(bool); ok && b {
			return 0, nil, errors.New("binary tensor data is not supported: request JSON outputs")
		}
	}
	if b, ok := req.Parameters["binary_data_output"].(bool); ok && b {
		return 0, nil, errors.New("binary tensor data is not supported: request JSON outputs")
	}
	return int(n), in.Data.Values, nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	data, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		data, _ = json.Marshal(oip.ErrorBody{Error: "encoding the response: " + err.Error()})
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = bytes.NewReader(append(data, '\n')).WriteTo(w)
}

func writeError(w http.ResponseWriter, status int, format string, args ...any) {
	writeJSON(w, status, oip.ErrorBody{Error: fmt.Sprintf(format, args...)})
}
