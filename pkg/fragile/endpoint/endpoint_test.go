package endpoint_test

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/pem"
	"io"
	"log"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fragile-operator/fragile-operator/internal/oiptest"
	"github.com/fragile-operator/fragile-operator/pkg/fragile"
	"github.com/fragile-operator/fragile-operator/pkg/fragile/endpoint"
	"github.com/fragile-operator/fragile-operator/pkg/fragile/oip"
	"github.com/fragile-operator/fragile-operator/pkg/fragile/serve"
)

// loopback serves the fixture model with `fragile serve`'s handler, wrapped by wrap
// (nil: as is), and returns the fixture, the server, its URL and the model file.
func loopback(t *testing.T, wrap func(http.Handler) http.Handler) (*oiptest.Watermarked, *serve.Server, string, string) {
	t.Helper()
	s := oiptest.Serve(t, wrap)
	return s.Watermarked, s.Server, s.URL, s.Path
}

// fast is a configuration with short timeouts and backoffs, for tests of failures.
func fast(url string) endpoint.Config {
	return endpoint.Config{URL: url, Model: "convnet", Timeout: 2 * time.Second, Backoff: time.Millisecond}
}

func verify(t *testing.T, cfg endpoint.Config, b *fragile.Bundle, opts endpoint.VerifyOptions) (fragile.VerifyReport, *endpoint.Client) {
	t.Helper()
	c, err := endpoint.New(cfg, rand.New(rand.NewPCG(1, 2)))
	if err != nil {
		t.Fatal(err)
	}
	if opts.Rand == nil {
		opts.Rand = rand.New(rand.NewPCG(3, 4))
	}
	return endpoint.Verify(context.Background(), c, b, opts), c
}

// TestLoopbackIntactThenTampered: the acceptance story. The watermarked model verifies
// intact; swapped for a fine-tuned copy while the server runs, it verifies tampered.
func TestLoopbackIntactThenTampered(t *testing.T) {
	w, s, url, path := loopback(t, nil)
	rep, c := verify(t, fast(url), w.Bundle, endpoint.VerifyOptions{})
	if rep.Result != fragile.ResultIntact || rep.Total != 40 || rep.Mismatched != 0 {
		t.Fatalf("the watermarked model: %+v", rep)
	}
	// Ready, model ready, metadata, then ceil((40 triggers + 16 decoys) / 16) = 4 infers.
	if rep.Requests != 3+4 || c.Requests() != rep.Requests {
		t.Errorf("%d requests sent, want 7", rep.Requests)
	}
	if rep.Endpoint != url+"/v2/models/convnet" || rep.DigestMatches || rep.ModelDigest != "" {
		t.Errorf("report names %q, digest %v %q", rep.Endpoint, rep.DigestMatches, rep.ModelDigest)
	}

	if err := os.WriteFile(path, w.FineTuned, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := s.Reload(); err != nil {
		t.Fatal(err)
	}
	rep, _ = verify(t, fast(url), w.Bundle, endpoint.VerifyOptions{})
	if rep.Result != fragile.ResultTampered || rep.Mismatched == 0 || rep.Result.ExitCode() != 1 {
		t.Fatalf("the fine-tuned copy: %+v", rep)
	}
	// The same verdict as artifact verification of the same bytes.
	if file := fragile.Verify(context.Background(), w.FineTuned, w.Bundle); file.Mismatched != rep.Mismatched {
		t.Errorf("endpoint found %d changed labels, the file %d", rep.Mismatched, file.Mismatched)
	}
}

// TestCouldNotVerify: every failure of the server or the exchange is "could not verify"
// with its reason, never tampering.
func TestCouldNotVerify(t *testing.T) {
	tests := map[string]struct {
		wrap func(http.Handler) http.Handler
		says string
	}{
		"500s": {func(http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				http.Error(w, `{"error":"CUDA out of memory"}`, http.StatusInternalServerError)
			})
		}, "answered 500 Internal Server Error: CUDA out of memory (after 2 retries)"},
		"500s on infer only": {onInfer(func(w http.ResponseWriter, r *http.Request, _ http.Handler) {
			w.WriteHeader(http.StatusBadGateway)
		}), "answered 502 Bad Gateway (after 2 retries)"},
		"slower than the timeout": {onInfer(func(w http.ResponseWriter, r *http.Request, next http.Handler) {
			select {
			case <-time.After(3 * time.Second):
			case <-r.Context().Done():
			}
		}), "did not answer within 200ms"},
		"a wrong output shape": {rewrite(func(resp *oip.InferResponse) {
			out := &resp.Outputs[0]
			out.Shape = []int64{out.Shape[0] * 2, 2}
		}), "has shape"},
		"an output shape that lies about the data": {rewrite(func(resp *oip.InferResponse) {
			resp.Outputs[0].Shape[0]++
		}), "output"},
		"no outputs": {rewrite(func(resp *oip.InferResponse) { resp.Outputs = nil }), "has no output"},
		"a wrong schema": {onInfer(func(w http.ResponseWriter, r *http.Request, _ http.Handler) {
			io.WriteString(w, `{"predictions": [[0.1, 0.9]]}`)
		}), "has no output"},
		"not JSON": {onInfer(func(w http.ResponseWriter, r *http.Request, _ http.Handler) {
			io.WriteString(w, "<html>gateway</html>")
		}), "not the expected JSON"},
		"a huge body": {onInfer(func(w http.ResponseWriter, r *http.Request, _ http.Handler) {
			io.WriteString(w, `{"outputs":[{"name":"x","data":[`+strings.Repeat("1,", 1<<20)+`1]}]}`)
		}), "too large"},
		"metadata of another model": {onPath("/v2/models/convnet", `{"name":"convnet","inputs":[{"name":"x","datatype":"FP32","shape":[-1,3,32,32]}],"outputs":[{"name":"y","datatype":"FP32","shape":[-1,10]}]}`),
			"input x has shape [-1 3 32 32], the watermark was made for examples of shape [1 10 10]"},
		"UINT8 input": {onPath("/v2/models/convnet", `{"name":"convnet","inputs":[{"name":"x","datatype":"UINT8","shape":[-1,1,10,10]}],"outputs":[{"name":"y","datatype":"FP32","shape":[-1,4]}]}`),
			"takes UINT8"},
		"the model not ready": {onPath("/v2/models/convnet/ready", ""), "model convnet is not ready: GET /v2/models/convnet/ready answered 503 Service Unavailable (after 2 retries)"},
		"an unknown model":    {nil, "not found (404)"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			w, _, url, _ := loopback(t, tc.wrap)
			cfg := fast(url)
			cfg.MaxResponseBytes = 1 << 20
			if name == "slower than the timeout" {
				cfg.Timeout = 200 * time.Millisecond
			}
			if name == "an unknown model" {
				cfg.Model = "resnet"
			}
			rep, _ := verify(t, cfg, w.Bundle, endpoint.VerifyOptions{})
			if rep.Result != fragile.ResultError || rep.Result.ExitCode() != 2 || !strings.Contains(rep.Message, tc.says) {
				t.Errorf("%s %q; want could not verify saying %q", rep.Result, rep.Message, tc.says)
			}
		})
	}
}

func TestCouldNotVerifyServerDown(t *testing.T) {
	w, err := oiptest.Fixture()
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + l.Addr().String()
	l.Close()
	rep, c := verify(t, fast(url), w.Bundle, endpoint.VerifyOptions{})
	if rep.Result != fragile.ResultError || !strings.Contains(rep.Message, "is unreachable") || !strings.Contains(rep.Message, "connection refused") {
		t.Errorf("%s %q", rep.Result, rep.Message)
	}
	if c.Requests() != 1+endpoint.DefaultRetries {
		t.Errorf("%d attempts, want %d", c.Requests(), 1+endpoint.DefaultRetries)
	}
}

// TestTrafficIsShuffledAndBounded: every trigger goes out exactly once among the decoys,
// in an order that is neither the bundle's nor the same on two runs; a fixed batch
// dimension of 1 means one example per request; concurrency stays within its bound.
func TestTrafficIsShuffledAndBounded(t *testing.T) {
	var mu sync.Mutex
	var seen [][]float32 // first value of every example, in arrival order per run
	var inflight, peak atomic.Int32
	record := onInfer(func(w http.ResponseWriter, r *http.Request, next http.Handler) {
		n := inflight.Add(1)
		defer inflight.Add(-1)
		for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
		}
		body, _ := io.ReadAll(r.Body)
		var req oip.InferRequest
		if err := json.Unmarshal(body, &req); err != nil || req.Inputs[0].Shape[0] != 1 {
			http.Error(w, `{"error":"batch must be 1"}`, http.StatusBadRequest)
			return
		}
		mu.Lock()
		seen[len(seen)-1] = append(seen[len(seen)-1], req.Inputs[0].Data.Values[0])
		mu.Unlock()
		time.Sleep(2 * time.Millisecond) // let requests overlap
		r.Body = io.NopCloser(bytes.NewReader(body))
		next.ServeHTTP(w, r)
	})
	wrap := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/v2/models/convnet" {
				rec := httptest.NewRecorder()
				next.ServeHTTP(rec, r)
				var md oip.ModelMetadata
				_ = json.Unmarshal(rec.Body.Bytes(), &md)
				md.Inputs[0].Shape[0], md.Outputs[0].Shape[0] = 1, 1
				_ = json.NewEncoder(w).Encode(md)
				return
			}
			record(next).ServeHTTP(w, r)
		})
	}
	w, _, url, _ := loopback(t, wrap)
	cfg := fast(url)
	cfg.Concurrency = 3
	var orders [][]float32
	for run := range 2 {
		seen = append(seen, nil)
		rep, _ := verify(t, cfg, w.Bundle, endpoint.VerifyOptions{Decoys: 10, Rand: rand.New(rand.NewPCG(uint64(run), 99))})
		if rep.Result != fragile.ResultIntact {
			t.Fatalf("run %d: %+v", run, rep)
		}
		if rep.Requests != 3+40+10 {
			t.Errorf("run %d: %d requests, want 53 (one per example)", run, rep.Requests)
		}
		orders = append(orders, seen[run])
	}
	if p := peak.Load(); p > 3 || p < 2 {
		t.Errorf("peak concurrency %d, bound 3", p)
	}
	position := func(order []float32, v float32) int {
		for i, x := range order {
			if x == v {
				return i
			}
		}
		return -1
	}
	var triggerOrder [2][]int
	for i := range 40 {
		first := w.Bundle.Trigger(i)[0]
		for run := range 2 {
			p := position(orders[run], first)
			if p < 0 {
				t.Fatalf("run %d: trigger %d never sent", run, i)
			}
			triggerOrder[run] = append(triggerOrder[run], p)
		}
	}
	if len(orders[0]) != 50 {
		t.Errorf("%d examples sent, want 40 triggers and 10 decoys", len(orders[0]))
	}
	ascending := func(ps []int) bool {
		for i := 1; i < len(ps); i++ {
			if ps[i] < ps[i-1] {
				return false
			}
		}
		return true
	}
	if ascending(triggerOrder[0]) || ascending(triggerOrder[1]) || slices.Equal(triggerOrder[0], triggerOrder[1]) {
		t.Errorf("trigger positions %v and %v: want shuffled, and differently on each run", triggerOrder[0], triggerOrder[1])
	}
}

// TestCredentialsAndTLS: headers reach the server and stay out of every message; a
// private CA is trusted only when given.
func TestCredentialsAndTLS(t *testing.T) {
	const token = "s3cr3t-t0ken"
	s := oiptest.Serve(t, nil)
	w := s.Watermarked
	ts := httptest.NewUnstartedServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+token || r.Header.Get("X-Tenant") != "blue" {
			rw.WriteHeader(http.StatusUnauthorized)
			io.WriteString(rw, `{"error":"unauthorized"}`)
			return
		}
		s.Server.Handler().ServeHTTP(rw, r)
	}))
	ts.Config.ErrorLog = log.New(io.Discard, "", 0) // the handshakes refused on purpose
	ts.StartTLS()
	defer ts.Close()
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ts.Certificate().Raw})

	cfg := fast(ts.URL)
	rep, _ := verify(t, cfg, w.Bundle, endpoint.VerifyOptions{})
	if rep.Result != fragile.ResultError || !strings.Contains(rep.Message, "certificate") || strings.Contains(rep.Message, "retries") {
		t.Errorf("without the CA: %s %q", rep.Result, rep.Message)
	}
	cfg.CACertPEM = ca
	rep, _ = verify(t, cfg, w.Bundle, endpoint.VerifyOptions{})
	if rep.Result != fragile.ResultError || !strings.Contains(rep.Message, "401") {
		t.Errorf("without credentials: %s %q", rep.Result, rep.Message)
	}
	cfg.Headers = http.Header{"Authorization": {"Bearer " + token}, "X-Tenant": {"blue"}}
	rep, _ = verify(t, cfg, w.Bundle, endpoint.VerifyOptions{})
	if rep.Result != fragile.ResultIntact {
		t.Errorf("with the CA and credentials: %+v", rep)
	}
	if b, _ := json.Marshal(rep); strings.Contains(string(b), token) {
		t.Errorf("the report carries the token: %s", b)
	}
}

// TestClientConformance replays the specification's examples as a server's answers.
func TestClientConformance(t *testing.T) {
	w, err := oiptest.Fixture()
	if err != nil {
		t.Fatal(err)
	}
	// A server that answers with the metadata example (-1 batch) and, for inference,
	// each trigger's key label as a one-hot row, with the data nested as in the
	// specification's "natural" form.
	var nestedAnswers atomic.Int32
	h := http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/v2/health/ready", "/v2/models/mymodel/ready":
		case "/v2/models/mymodel":
			io.WriteString(rw, oiptest.SpecModelMetadata)
		case "/v2/models/mymodel/infer":
			var req oip.InferRequest
			_ = json.NewDecoder(r.Body).Decode(&req)
			in := req.Inputs[0]
			if in.Name != "input0" || in.Datatype != "FP32" || in.Shape[0] > int64(endpoint.DefaultBatchSize) || req.Outputs[0].Name != "output0" {
				rw.WriteHeader(http.StatusBadRequest)
				io.WriteString(rw, oiptest.SpecErrorResponse)
				return
			}
			rows := make([][]float32, in.Shape[0])
			for i := range rows {
				rows[i] = make([]float32, 4)
				rows[i][labelOf(w.Bundle, in.Data.Values[i*100:(i+1)*100])] = 1
			}
			data, _ := json.Marshal(rows)
			nestedAnswers.Add(1)
			resp := strings.NewReplacer("[ 3, 2 ]", "["+itoa(len(rows))+", 4]", "[ 1.0, 1.1, 2.0, 2.1, 3.0, 3.1 ]", string(data)).Replace(oiptest.SpecInferResponse)
			io.WriteString(rw, resp)
		default:
			rw.WriteHeader(http.StatusNotFound)
			io.WriteString(rw, oiptest.SpecErrorResponse)
		}
	})
	ts := httptest.NewServer(h)
	defer ts.Close()
	cfg := fast(ts.URL)
	cfg.Model = "mymodel"
	rep, _ := verify(t, cfg, w.Bundle, endpoint.VerifyOptions{})
	if rep.Result != fragile.ResultIntact || nestedAnswers.Load() != 4 {
		t.Fatalf("against the spec-shaped server: %+v after %d answers", rep, nestedAnswers.Load())
	}
	// An error body reaches the message.
	cfg.Model = "other"
	rep, _ = verify(t, cfg, w.Bundle, endpoint.VerifyOptions{})
	if rep.Result != fragile.ResultError || !strings.Contains(rep.Message, "unexpected inference input 'input9'") {
		t.Errorf("error body: %s %q", rep.Result, rep.Message)
	}
}

// labelOf finds which trigger (or decoy) values is and returns its key label; decoys
// get 0.
func labelOf(b *fragile.Bundle, values []float32) int {
	for i := range b.Len() {
		if b.Trigger(i)[0] == values[0] && b.Trigger(i)[99] == values[99] {
			return b.KeyLabels[i]
		}
	}
	return 0
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

// onInfer replaces the handling of infer requests; next is the real server.
func onInfer(f func(http.ResponseWriter, *http.Request, http.Handler)) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if strings.HasSuffix(r.URL.Path, "/infer") {
				f(w, r, next)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

// onPath answers body for one path: 200 with the body, or 503 when body is empty.
func onPath(path, body string) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != path {
				next.ServeHTTP(w, r)
				return
			}
			if body == "" {
				w.WriteHeader(http.StatusServiceUnavailable)
				return
			}
			io.WriteString(w, body)
		})
	}
}

// rewrite lets the real server answer, then edits its inference response.
func rewrite(edit func(*oip.InferResponse)) func(http.Handler) http.Handler {
	return onInfer(func(w http.ResponseWriter, r *http.Request, next http.Handler) {
		rec := httptest.NewRecorder()
		next.ServeHTTP(rec, r)
		var resp oip.InferResponse
		if err := json.Unmarshal(rec.Body.Bytes(), &resp); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		edit(&resp)
		_ = json.NewEncoder(w).Encode(resp)
	})
}
