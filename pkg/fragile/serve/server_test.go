package serve_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fragile-operator/fragile-operator/internal/oiptest"
	"github.com/fragile-operator/fragile-operator/pkg/fragile"
	"github.com/fragile-operator/fragile-operator/pkg/fragile/oip"
	"github.com/fragile-operator/fragile-operator/pkg/fragile/serve"
)

// served starts `fragile serve`'s handler on loopback for the fixture model.
func served(t *testing.T) (*oiptest.Watermarked, *serve.Server, string, string) {
	t.Helper()
	s := oiptest.Serve(t, nil)
	return s.Watermarked, s.Server, s.URL, s.Path
}

type answer struct {
	status int
	body   string
}

func call(t *testing.T, method, url, body string) answer {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return answer{resp.StatusCode, string(b)}
}

// specRequest is the specification's request example adapted to the served model: one
// FP32 input, the model's input name and shape, the data given as data.
func specRequest(w *oiptest.Watermarked, n int, data string) string {
	var req map[string]any
	_ = json.Unmarshal([]byte(oiptest.SpecInferRequest), &req)
	input := req["inputs"].([]any)[0].(map[string]any)
	input["name"] = w.Bundle.InputName
	input["datatype"] = "FP32"
	input["shape"] = []int{n, 1, 10, 10}
	input["data"] = json.RawMessage(data)
	req["inputs"] = []any{input}
	req["outputs"] = []any{map[string]any{"name": "output0"}}
	b, _ := json.Marshal(req)
	return strings.Replace(string(b), `"output0"`, `"`+outputName(w)+`"`, 1)
}

func outputName(w *oiptest.Watermarked) string {
	net, _ := fragile.LoadNetwork(w.Model)
	return net.OutputName
}

// triggersJSON renders the first n triggers flat, or nested as [n][1][10][10].
func triggersJSON(w *oiptest.Watermarked, n int, nested bool) string {
	values := w.Bundle.Triggers[:n*100]
	if !nested {
		b, _ := json.Marshal(values)
		return string(b)
	}
	batch := make([][][][]float32, n)
	for i := range batch {
		rows := make([][]float32, 10)
		for y := range rows {
			rows[y] = values[i*100+y*10 : i*100+y*10+10]
		}
		batch[i] = [][][]float32{rows}
	}
	b, _ := json.Marshal(batch)
	return string(b)
}

// TestConformanceInfer replays the specification's inference example against the server,
// with the data flat and nested: both give the same well-formed response.
func TestConformanceInfer(t *testing.T) {
	w, _, url, _ := served(t)
	var outputs [][]float32
	for _, nested := range []bool{false, true} {
		a := call(t, http.MethodPost, url+"/v2/models/convnet/infer", specRequest(w, 3, triggersJSON(w, 3, nested)))
		if a.status != http.StatusOK {
			t.Fatalf("nested=%v: %d %s", nested, a.status, a.body)
		}
		var resp oip.InferResponse
		if err := json.Unmarshal([]byte(a.body), &resp); err != nil {
			t.Fatal(err)
		}
		if resp.ID != "42" || resp.ModelName != "convnet" || resp.ModelVersion != serve.Version || len(resp.Outputs) != 1 {
			t.Fatalf("response %s", a.body)
		}
		out := resp.Outputs[0]
		if out.Name != outputName(w) || out.Datatype != oip.FP32 || !slices.Equal(out.Shape, []int64{3, 4}) || out.Data.CheckShape(out.Shape) != nil {
			t.Fatalf("output %+v", out)
		}
		outputs = append(outputs, out.Data.Values)
	}
	if !slices.Equal(outputs[0], outputs[1]) {
		t.Errorf("flat and nested data gave different outputs: %v and %v", outputs[0], outputs[1])
	}
	// The labels are the key labels: the server runs the watermarked model.
	for i := range 3 {
		row := outputs[0][i*4 : i*4+4]
		best := 0
		for j := range row {
			if row[j] > row[best] {
				best = j
			}
		}
		if best != w.Bundle.KeyLabels[i] {
			t.Errorf("trigger %d: label %d, key label %d", i, best, w.Bundle.KeyLabels[i])
		}
	}
}

// TestConformanceMetadata: the symbolic batch dimension is reported as -1, and the
// metadata decodes into the same shape the specification's schema example has.
func TestConformanceMetadata(t *testing.T) {
	w, _, url, _ := served(t)
	for _, path := range []string{"/v2/models/convnet", "/v2/models/convnet/versions/1"} {
		a := call(t, http.MethodGet, url+path, "")
		var got, spec oip.ModelMetadata
		if err := json.Unmarshal([]byte(a.body), &got); a.status != http.StatusOK || err != nil {
			t.Fatalf("%s: %d %s", path, a.status, a.body)
		}
		_ = json.Unmarshal([]byte(oiptest.SpecModelMetadata), &spec)
		if got.Name != "convnet" || !slices.Equal(got.Versions, []string{"1"}) || len(got.Inputs) != 1 || len(got.Outputs) != 1 {
			t.Fatalf("%s: %s", path, a.body)
		}
		if in := got.Inputs[0]; in.Name != w.Bundle.InputName || in.Datatype != spec.Inputs[0].Datatype || !slices.Equal(in.Shape, spec.Inputs[0].Shape) {
			t.Errorf("input %+v, want the shape %v", in, spec.Inputs[0].Shape)
		}
		if out := got.Outputs[0]; !slices.Equal(out.Shape, spec.Outputs[0].Shape) {
			t.Errorf("output %+v, want the shape %v", out, spec.Outputs[0].Shape)
		}
	}
}

// TestConformanceHealth: 200 with an empty body for live and ready, for the server and
// the model.
func TestConformanceHealth(t *testing.T) {
	_, _, url, _ := served(t)
	for _, path := range []string{"/v2/health/live", "/v2/health/ready", "/v2/models/convnet/ready", "/v2/models/convnet/versions/1/ready"} {
		if a := call(t, http.MethodGet, url+path, ""); a.status != http.StatusOK || a.body != "" {
			t.Errorf("%s: %d %q", path, a.status, a.body)
		}
	}
	var md oip.ServerMetadata
	a := call(t, http.MethodGet, url+"/v2", "")
	if err := json.Unmarshal([]byte(a.body), &md); err != nil || md.Name == "" || md.Extensions == nil {
		t.Errorf("server metadata %d %s", a.status, a.body)
	}
}

// TestConformanceErrors: every failure carries the specification's error body, with the
// status the specification (or HTTP) gives it. The specification's own request example
// (UINT32 and BOOL inputs) is a bad request for this model.
func TestConformanceErrors(t *testing.T) {
	w, _, url, _ := served(t)
	tests := map[string]struct {
		method, path, body string
		status             int
		says               string
	}{
		"the spec's example request": {"POST", "/v2/models/convnet/infer", oiptest.SpecInferRequest, 400, "where a number was expected"},
		"an unknown model":           {"GET", "/v2/models/resnet", "", 404, `"resnet" is not served`},
		"an unknown version":         {"POST", "/v2/models/convnet/versions/7/infer", specRequest(w, 1, triggersJSON(w, 1, false)), 404, `no version "7"`},
		"a wrong method":             {"GET", "/v2/models/convnet/infer", "", 405, "use POST"},
		"an unknown path":            {"GET", "/v1/models/convnet", "", 404, "no such resource"},
		"not JSON":                   {"POST", "/v2/models/convnet/infer", "<html>", 400, "not the expected JSON"},
		"nested data of another shape": {"POST", "/v2/models/convnet/infer",
			strings.Replace(specRequest(w, 1, triggersJSON(w, 1, true)), `"shape":[1,1,10,10]`, `"shape":[1,10,1,10]`, 1), 400, "the model takes"},
		"too few values": {"POST", "/v2/models/convnet/infer", specRequest(w, 2, triggersJSON(w, 1, false)), 400, "100 values, shape [2 1 10 10] needs 200"},
		"an unknown output": {"POST", "/v2/models/convnet/infer",
			strings.Replace(specRequest(w, 1, triggersJSON(w, 1, false)), `"outputs":[{"name":"`+outputName(w), `"outputs":[{"name":"probs`, 1), 400, `unknown output "probs"`},
		"a batch beyond the bound": {"POST", "/v2/models/convnet/infer", specRequest(w, serve.MaxBatch+1, "[]"), 400, "batch size 257"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			a := call(t, tc.method, url+tc.path, tc.body)
			var e oip.ErrorBody
			if err := json.Unmarshal([]byte(a.body), &e); err != nil || a.status != tc.status || !strings.Contains(e.Error, tc.says) {
				t.Errorf("%d %s; want %d with an error saying %q", a.status, a.body, tc.status, tc.says)
			}
		})
	}
	// And the specification's error example decodes into the same type.
	var spec oip.ErrorBody
	if err := json.Unmarshal([]byte(oiptest.SpecErrorResponse), &spec); err != nil || spec.Error == "" {
		t.Errorf("spec error body: %v", err)
	}
}

// TestReloadSwapsAndUnreadies: a new file is served after Reload; a file that does not
// load makes the model not ready until a good one is back.
func TestReloadSwapsAndUnreadies(t *testing.T) {
	w, s, url, path := served(t)
	infer := func() answer {
		return call(t, http.MethodPost, url+"/v2/models/convnet/infer", specRequest(w, 2, triggersJSON(w, 2, false)))
	}
	before := infer()
	if err := os.WriteFile(path, w.FineTuned, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := s.Reload(); err != nil {
		t.Fatal(err)
	}
	if after := infer(); after.status != http.StatusOK || after.body == before.body {
		t.Errorf("after swapping in the fine-tuned copy: %d, same answer: %v", after.status, after.body == before.body)
	}
	if err := os.WriteFile(path, w.Model[:100], 0o644); err != nil {
		t.Fatal(err)
	}
	if err := s.Reload(); err == nil {
		t.Fatal("a truncated model reloaded without error")
	}
	for _, p := range []string{"/v2/health/ready", "/v2/models/convnet/ready"} {
		if a := call(t, http.MethodGet, url+p, ""); a.status != http.StatusServiceUnavailable {
			t.Errorf("%s with a broken file: %d", p, a.status)
		}
	}
	if a := infer(); a.status != http.StatusServiceUnavailable || !strings.Contains(a.body, "not ready") {
		t.Errorf("infer with a broken file: %d %s", a.status, a.body)
	}
	if err := os.WriteFile(path, w.Model, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := s.Reload(); err != nil {
		t.Fatal(err)
	}
	if a := infer(); a.body != before.body {
		t.Errorf("the original model back gives another answer: %s", a.body)
	}
}

// TestWatchReloadsOnChange: the poller notices a replaced file without a signal.
func TestWatchReloadsOnChange(t *testing.T) {
	w, s, url, path := served(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go s.Watch(ctx, 10*time.Millisecond)
	before := call(t, http.MethodPost, url+"/v2/models/convnet/infer", specRequest(w, 2, triggersJSON(w, 2, false)))
	// Replace by rename, as a deployment tool would: a new inode.
	tmp := path + ".new"
	if err := os.WriteFile(tmp, w.FineTuned, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if a := call(t, http.MethodPost, url+"/v2/models/convnet/infer", specRequest(w, 2, triggersJSON(w, 2, false))); a.status == http.StatusOK && a.body != before.body {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("the watcher did not load the replaced file within 5s")
}
