// Command report runs the benchmarks of the bench module against dogpile's peers and writes
// BENCHMARKS.md and its plots from what they measured, so that no figure is typed by hand.
// `make bench-peers` runs it from the bench directory:
//
//	go run ./cmd/report -out ../BENCHMARKS.md
//
// It runs each step's `go test -bench` command in turn, saves the raw output in results/ (the
// input of benchstat, kept so that a later run can be compared with it), runs benchstat on each,
// records the machine and the commands in results/run.json, and renders the report and the PNG
// plots in plots/. With -render it only renders, from the results/ of an earlier run. With
// -quick it runs every step briefly, to try the pipeline; its figures are not worth keeping.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

// step is one `go test -bench` command, run several times with -count=1 so that the runs of
// the contenders interleave in time: on a shared machine whose speed drifts, a contender's 10
// runs taken one after another would all land in one quiet (or busy) spell. The outputs,
// concatenated, are saved as results/NAME.txt.
type step struct {
	name  string
	bench string   // the -bench pattern
	full  []string // the flags of a real run
	quick []string // the flags of a -quick run
}

// Runs of each step: 10 for the medians and tests of benchstat, 2 with -quick.
const (
	fullRuns  = 10
	quickRuns = 2
)

// steps are what a run runs, in order. Times keep the whole run under 15 minutes on 2 cores:
// the hit step's 62 sub-benchmarks run 150ms each, the memory scenario (whose op is 100,000
// gets) a fixed 5 ops, the scenarios that wait for 50 ms loaders a fixed 5 ops
// (-benchtime=5x), the early refresh scenario, whose op reads for 1.5 s, a fixed 1, the herd on
// Redis, whose loader takes 200 ms, a fixed 3.
var steps = []step{
	{"hit", "^Benchmark(Hit|HitParallel|Get|GetParallel)$",
		[]string{"-cpu=1,2", "-benchtime=150ms"},
		[]string{"-cpu=1,2", "-benchtime=20ms"}},
	{"zipf", "^BenchmarkZipf$",
		[]string{"-benchtime=300ms"},
		[]string{"-benchtime=20ms"}},
	{"memory", "^BenchmarkMemory$",
		[]string{"-benchtime=5x"},
		[]string{"-benchtime=1x"}},
	{"load", "^Benchmark(Stampede|Expiry)$",
		[]string{"-benchtime=5x"},
		[]string{"-benchtime=1x"}},
	{"early", "^BenchmarkEarlyRefresh$",
		[]string{"-benchtime=1x"},
		[]string{"-benchtime=1x"}},
	{"redis", "^BenchmarkRedis(Hit|Batch|BatchCold)$",
		[]string{"-benchtime=200ms"},
		[]string{"-benchtime=20ms"}},
	{"herd", "^BenchmarkRedisHerd$",
		[]string{"-benchtime=3x"},
		[]string{"-benchtime=1x"}},
}

func (s step) args(quick bool) []string {
	flags := s.full
	if quick {
		flags = s.quick
	}
	args := []string{"test", "-run", "^$", "-bench", s.bench, "-benchmem", "-count=1"}
	args = append(args, flags...)
	return append(args, "-timeout=30m", ".")
}

// runInfo is what a run records beside its results, for the report: results/run.json.
type runInfo struct {
	Started   time.Time `json:"started"`
	Seconds   float64   `json:"seconds"` // wall time of the whole run
	Quick     bool      `json:"quick"`
	Runs      int       `json:"runs"` // of each step
	Machine   machine   `json:"machine"`
	Steps     []stepRun `json:"steps"`
	Benchstat []string  `json:"benchstat"` // the benchstat commands, as run from the bench directory
}

type stepRun struct {
	Name    string  `json:"name"`
	Command string  `json:"command"` // as run from the bench directory
	Seconds float64 `json:"seconds"`
}

type machine struct {
	CPU        string `json:"cpu"`
	Cores      int    `json:"cores"`
	Memory     string `json:"memory"`
	Kernel     string `json:"kernel"`
	Go         string `json:"go"`
	Redis      string `json:"redis"`
	Commit     string `json:"commit"`
	LoadBefore string `json:"load_before"` // /proc/loadavg when the run began
	LoadAfter  string `json:"load_after"`
}

func main() {
	out := flag.String("out", "../BENCHMARKS.md", "the report to write")
	results := flag.String("results", "results", "the directory of the raw benchmark output")
	plots := flag.String("plots", "plots", "the directory of the PNG plots")
	render := flag.Bool("render", false, "only render the report from an earlier run's results")
	quick := flag.Bool("quick", false, "run every step briefly, to try the pipeline")
	flag.Parse()
	if err := run(*out, *results, *plots, *render, *quick); err != nil {
		slog.Error("report", "err", err)
		os.Exit(1)
	}
}

func run(out, resultsDir, plotsDir string, renderOnly, quick bool) error {
	ctx := context.Background()
	if !renderOnly {
		if err := runSteps(ctx, resultsDir, quick); err != nil {
			return err
		}
	}
	info, err := readInfo(resultsDir)
	if err != nil {
		return err
	}
	data, err := load(resultsDir)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(plotsDir, 0o755); err != nil {
		return err
	}
	plotFiles, err := drawPlots(data, plotsDir)
	if err != nil {
		return err
	}
	rel, err := relTo(filepath.Dir(out), plotsDir)
	if err != nil {
		return err
	}
	resRel, err := relTo(filepath.Dir(out), resultsDir)
	if err != nil {
		return err
	}
	doc := renderReport(info, data, plotFiles, rel, resRel)
	if err := os.WriteFile(out, doc, 0o644); err != nil {
		return err
	}
	slog.Info("report written", "out", out, "plots", plotsDir)
	return nil
}

// relTo returns target relative to base, with forward slashes, for links in the report.
func relTo(base, target string) (string, error) {
	ab, err := filepath.Abs(base)
	if err != nil {
		return "", err
	}
	at, err := filepath.Abs(target)
	if err != nil {
		return "", err
	}
	r, err := filepath.Rel(ab, at)
	return filepath.ToSlash(r), err
}

func goCmd() string {
	if g := os.Getenv("GO"); g != "" {
		return g
	}
	return "go"
}

func runSteps(ctx context.Context, dir string, quick bool) error {
	bs, err := benchstatPath()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	info := runInfo{Started: time.Now().UTC().Truncate(time.Second), Quick: quick, Machine: describeMachine(ctx)}
	start := time.Now()
	runs := fullRuns
	if quick {
		runs = quickRuns
	}
	info.Runs = runs
	for _, s := range steps {
		args := s.args(quick)
		cmd := fmt.Sprintf("for i in $(seq %d); do go %s; done", runs, shellJoin(args))
		file := filepath.Join(dir, s.name+".txt")
		slog.Info("running", "step", s.name, "cmd", cmd)
		t0 := time.Now()
		var buf bytes.Buffer
		for i := range runs {
			c := exec.CommandContext(ctx, goCmd(), args...)
			c.Stdout = &buf
			c.Stderr = os.Stderr
			if err := c.Run(); err != nil {
				_ = os.WriteFile(file, buf.Bytes(), 0o644)
				return fmt.Errorf("step %s, run %d: go %s: %w (output in %s)", s.name, i+1, shellJoin(args), err, file)
			}
		}
		if err := os.WriteFile(file, buf.Bytes(), 0o644); err != nil {
			return err
		}
		info.Steps = append(info.Steps, stepRun{Name: s.name, Command: cmd, Seconds: time.Since(t0).Seconds()})

		bsArgs := []string{"-col", "/impl", file}
		var bsOut bytes.Buffer
		c := exec.CommandContext(ctx, bs, bsArgs...)
		c.Stdout, c.Stderr = &bsOut, os.Stderr
		if err := c.Run(); err != nil {
			return fmt.Errorf("benchstat %s: %w", file, err)
		}
		bsFile := filepath.Join(dir, s.name+".benchstat.txt")
		if err := os.WriteFile(bsFile, bsOut.Bytes(), 0o644); err != nil {
			return err
		}
		info.Benchstat = append(info.Benchstat, "benchstat "+shellJoin(bsArgs)+" > "+bsFile)
	}
	info.Seconds = time.Since(start).Seconds()
	info.Machine.LoadAfter = loadavg()
	b, err := json.MarshalIndent(info, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "run.json"), append(b, '\n'), 0o644)
}

func readInfo(dir string) (runInfo, error) {
	var info runInfo
	b, err := os.ReadFile(filepath.Join(dir, "run.json"))
	if err != nil {
		return info, fmt.Errorf("no recorded run (run without -render first): %w", err)
	}
	return info, json.Unmarshal(b, &info)
}

// benchstatPath finds benchstat on PATH or in GOPATH/bin, where `make bench-peers` installs it.
func benchstatPath() (string, error) {
	if p, err := exec.LookPath("benchstat"); err == nil {
		return p, nil
	}
	gopath, err := exec.Command(goCmd(), "env", "GOPATH").Output()
	if err == nil {
		p := filepath.Join(strings.TrimSpace(string(gopath)), "bin", "benchstat")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", errors.New("benchstat not found: `make bench-peers` installs it (go install golang.org/x/perf/cmd/benchstat)")
}

func describeMachine(ctx context.Context) machine {
	m := machine{Cores: runtime.NumCPU(), LoadBefore: loadavg()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		m.CPU = cpuinfoField(b, "model name")
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb float64
		if _, err := fmt.Sscanf(cpuinfoField(b, "MemTotal"), "%f kB", &kb); err == nil {
			m.Memory = fmt.Sprintf("%.1f GiB", kb/(1<<20))
		}
	}
	m.Kernel = output(ctx, "uname", "-sr")
	m.Go = strings.TrimPrefix(output(ctx, goCmd(), "version"), "go version ")
	m.Redis = output(ctx, "redis-server", "--version")
	m.Commit = output(ctx, "git", "rev-parse", "--short", "HEAD")
	if m.Commit != "" && output(ctx, "git", "status", "--porcelain", "--untracked-files=no") != "" {
		m.Commit += " (with uncommitted changes in the work tree)"
	}
	return m
}

// cpuinfoField returns the value of the first "key : value" line of a /proc file.
func cpuinfoField(b []byte, key string) string {
	for line := range strings.SplitSeq(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if ok && strings.TrimSpace(k) == key {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

func output(ctx context.Context, name string, args ...string) string {
	c := exec.CommandContext(ctx, name, args...)
	c.Stderr = io.Discard
	b, err := c.Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// shellJoin quotes args for a POSIX shell where they need it.
func shellJoin(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		if a == "" || strings.ContainsAny(a, " \t$^|()*?[]'\"\\<>&;") {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		q[i] = a
	}
	return strings.Join(q, " ")
}
