package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/fragile-operator/fragile-operator/pkg/fragile/serve"
)

func init() { subcommands["serve"] = serveModel }

// serveModel runs an Open Inference Protocol (KServe V2) REST server for one ONNX model
// until SIGTERM or Ctrl-C. The model file is re-read on SIGHUP and whenever it changes
// (polled every --reload-interval), so a test or demo can swap the served model the way
// an attacker would. It listens on loopback unless --address says otherwise.
func serveModel(ctx context.Context, args []string) int {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	modelPath := fs.String("model", "", "ONNX model file to serve (required)")
	name := fs.String("name", "", "model name in /v2/models/NAME (default: the file's base name without extension)")
	address := fs.String("address", "127.0.0.1", "address to listen on; 0.0.0.0 inside a Pod")
	port := fs.Int("port", 8080, "port to listen on; 0 picks a free one (printed on start)")
	reload := fs.Duration("reload-interval", 2*time.Second, "how often to check the model file for changes; 0 reloads on SIGHUP only")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	logger := log.New(os.Stderr, "fragile serve: ", log.LstdFlags)
	if *modelPath == "" {
		logger.Print("--model is required")
		return exitUsage
	}
	s, err := serve.New(*modelPath, *name)
	if err != nil {
		logger.Print(err)
		return exitUsage
	}
	defer s.Close()
	s.Logf = logger.Printf

	l, err := net.Listen("tcp", net.JoinHostPort(*address, strconv.Itoa(*port)))
	if err != nil {
		logger.Print(err)
		return exitUsage
	}
	// One line on stdout, for scripts that started us with --port 0.
	fmt.Printf("serving model %s from %s at http://%s%s\n", s.Name(), *modelPath, l.Addr(), "/v2/models/"+s.Name())

	ctx, stop := context.WithCancel(ctx)
	defer stop()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				_ = s.Reload() // logged; readiness reports a file that does not load
			}
		}
	}()
	if *reload > 0 {
		go s.Watch(ctx, *reload)
	}

	srv := &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       time.Minute,
		WriteTimeout:      time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          logger,
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(l) }()
	select {
	case err := <-done:
		logger.Print(err)
		return exitUsage
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdown); err != nil && !errors.Is(err, http.ErrServerClosed) {
		logger.Print(err)
	}
	return 0
}
