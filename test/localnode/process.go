package main

import (
	"errors"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"time"
)

// Runner starts processes; the agent takes it as a field so tests can swap it.
type Runner interface {
	Start(spec *ProcessSpec) (Process, error)
}

// Process is a started container process.
type Process interface {
	Pid() int
	// Wait blocks until the process exits and returns its exit code (128+signal when killed
	// by a signal, as container runtimes report it).
	Wait() int
	// Stop sends SIGTERM to the process group, then SIGKILL after grace.
	Stop(grace time.Duration)
}

// execRunner runs a ProcessSpec as a host process in its own process group, with stdout and
// stderr appended to spec.LogPath and its pid written to PodDir/pid (hack/local-cluster.sh
// stop kills any group left behind if the agent itself was killed).
type execRunner struct{}

func (execRunner) Start(spec *ProcessSpec) (Process, error) {
	logf, err := os.OpenFile(spec.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	cmd := &exec.Cmd{
		Path:   spec.Path,
		Args:   spec.Argv,
		Env:    spec.Env,
		Dir:    spec.Dir,
		Stdout: logf,
		Stderr: logf,
		// Own process group, so Stop reaches children of shells too; Pdeathsig so the
		// direct child dies with the agent even if the agent is killed hard.
		SysProcAttr: &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL},
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	pidFile := spec.PodDir + "/pid"
	_ = os.WriteFile(pidFile, []byte(strconv.Itoa(cmd.Process.Pid)+"\n"), 0o644)
	p := &execProcess{cmd: cmd, done: make(chan struct{}), pidFile: pidFile}
	go p.wait()
	return p, nil
}

type execProcess struct {
	cmd     *exec.Cmd
	done    chan struct{}
	code    int
	pidFile string
}

func (p *execProcess) wait() {
	err := p.cmd.Wait()
	var ee *exec.ExitError
	switch {
	case err == nil:
		p.code = 0
	case errors.As(err, &ee):
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			p.code = 128 + int(ws.Signal())
		} else {
			p.code = ee.ExitCode()
		}
	default:
		p.code = 128
	}
	// Leftover children in the group (e.g. a shell's background job) go with it.
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	_ = os.Remove(p.pidFile)
	close(p.done)
}

func (p *execProcess) Pid() int { return p.cmd.Process.Pid }

func (p *execProcess) Wait() int {
	<-p.done
	return p.code
}

func (p *execProcess) Stop(grace time.Duration) {
	select {
	case <-p.done:
		return
	default:
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	}
}
