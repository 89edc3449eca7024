package cli

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/meshway/meshway/internal/kube/kubetest"
)

var update = flag.Bool("update", false, "rewrite golden files under testdata from the current output")

// storeEpoch is when every scripted store's objects are created; the CLI's clock
// runs a day later, so ages print as the guide's "24h".
var storeEpoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// step is one command of a transcript, with its expected combined output.
type step struct {
	command string
	stdin   string // heredoc body, when the command ends with <<EOF
	want    string
}

// parseScript reads a transcript: "## " lines are comments; "$ meshctl ARGS" starts a
// step (ending it with "<<EOF" takes stdin up to a line "EOF"); the lines after it,
// up to the next step or comment, are its expected stdout and stderr, then
// "[exit N]" when it fails.
func parseScript(t *testing.T, text string) (steps []step, comments map[int][]string) {
	t.Helper()
	comments = map[int][]string{}
	lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
	for i := 0; i < len(lines); i++ {
		line := lines[i]
		switch {
		case strings.HasPrefix(line, "## ") || line == "##":
			comments[len(steps)] = append(comments[len(steps)], line)
		case strings.HasPrefix(line, "$ "):
			s := step{command: strings.TrimPrefix(line, "$ ")}
			if before, ok := strings.CutSuffix(s.command, " <<EOF"); ok {
				s.command = before
				var body []string
				for i++; i < len(lines) && lines[i] != "EOF"; i++ {
					body = append(body, lines[i])
				}
				s.stdin = strings.Join(body, "\n") + "\n"
			}
			steps = append(steps, s)
		default:
			if len(steps) == 0 {
				t.Fatalf("line %d: output before the first command: %q", i+1, line)
			}
			steps[len(steps)-1].want += line + "\n"
		}
	}
	return steps, comments
}

func formatScript(steps []step, comments map[int][]string) string {
	var b strings.Builder
	for i, s := range steps {
		for _, c := range comments[i] {
			b.WriteString(c + "\n")
		}
		b.WriteString("$ " + s.command)
		if s.stdin != "" {
			b.WriteString(" <<EOF\n" + s.stdin + "EOF")
		}
		b.WriteString("\n" + s.want)
	}
	for _, c := range comments[len(steps)] {
		b.WriteString(c + "\n")
	}
	return b.String()
}

// splitArgs splits a command line as a shell would for the simple quoting scripts use.
func splitArgs(t *testing.T, line string) []string {
	t.Helper()
	var args []string
	var cur strings.Builder
	inArg, quote := false, rune(0)
	for _, r := range line {
		switch {
		case quote != 0 && r == quote:
			quote = 0
		case quote != 0:
			cur.WriteRune(r)
		case r == '\'' || r == '"':
			quote, inArg = r, true
		case r == ' ':
			if inArg {
				args = append(args, cur.String())
				cur.Reset()
				inArg = false
			}
		default:
			cur.WriteRune(r)
			inArg = true
		}
	}
	if quote != 0 {
		t.Fatalf("unterminated quote in %q", line)
	}
	if inArg {
		args = append(args, cur.String())
	}
	return args
}

// runScript runs each step against one fresh directory store and returns the
// steps with their actual output in want.
func runScript(t *testing.T, h *harness, steps []step) []step {
	t.Helper()
	var got []step
	for _, s := range steps {
		args := splitArgs(t, s.command)
		var out string
		var code int
		switch {
		case len(args) == 0:
			t.Fatalf("empty step")
		case args[0] == "kubectl":
			out, code = h.kubectl(s.stdin, args[1:]...)
		case args[0] == "meshctl":
			out, code = h.run(s.stdin, args[1:]...)
		case strings.HasPrefix(args[0], "meshctl@"): // as a user without permissions
			out, code = h.runAs(strings.TrimPrefix(args[0], "meshctl@"), s.stdin, args[1:]...)
		default:
			t.Fatalf("step %q: only meshctl and kubectl commands can be scripted", s.command)
		}
		if code != 0 {
			out += fmt.Sprintf("[exit %d]\n", code)
		}
		s.want = out
		got = append(got, s)
	}
	return got
}

// TestScripts runs every transcript in testdata/scripts against a real directory
// store and compares the output; `make testdata` rewrites them.
func TestScripts(t *testing.T) {
	runScripts(t, "testdata/scripts/*.txt", func(t *testing.T) *harness { return newHarness(t) })
}

// TestScriptsOnKubernetes runs every transcript in testdata/kube against a real
// kube-apiserver, each on a freshly reset cluster.
func TestScriptsOnKubernetes(t *testing.T) {
	kubetest.Require(t, kubeEnv)
	runScripts(t, "testdata/kube/*.txt", func(t *testing.T) *harness {
		kubeEnv.Reset(t)
		return newKubeHarness(t, kubeEnv)
	})
}

func runScripts(t *testing.T, pattern string, newHarness func(*testing.T) *harness) {
	files, err := filepath.Glob(pattern)
	if err != nil || len(files) == 0 {
		t.Fatalf("no scripts found: %v", err)
	}
	for _, file := range files {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".txt"), func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			steps, comments := parseScript(t, string(data))
			got := runScript(t, newHarness(t), steps)
			if *update {
				if err := os.WriteFile(file, []byte(formatScript(got, comments)), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			for i := range steps {
				if diff := cmp.Diff(steps[i].want, got[i].want); diff != "" {
					t.Errorf("%s: $ %s\noutput differs (-want +got):\n%s", file, steps[i].command, diff)
				}
			}
		})
	}
}
