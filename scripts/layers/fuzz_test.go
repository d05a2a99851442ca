package layers

import (
	"bufio"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// fuzzFunc is a fuzz target's declaration in a test file.
var fuzzFunc = regexp.MustCompile(`(?m)^func (Fuzz\w+)\(`)

// TestEveryFuzzTargetInCI keeps scripts/test.sh's brief fuzzing in step
// with the tree: every fuzz target of a product package (devcloud and the
// scripts are fakes and tools, not the product) is fuzzed in CI. A target
// only written is still run on its seed corpus by go test, but new inputs
// come only from fuzzing; eight product targets had been left out that way.
func TestEveryFuzzTargetInCI(t *testing.T) {
	root := filepath.Join("..", "..")
	listed := fuzzedInCI(t, filepath.Join(root, "scripts", "test.sh"))
	var missing []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		if d.IsDir() {
			switch {
			case rel == ".":
				return nil
			case rel == "devcloud", rel == "scripts", strings.HasPrefix(d.Name(), "."), d.Name() == "testdata", d.Name() == "node_modules":
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, "_test.go") {
			return nil
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		pkg := "./" + filepath.ToSlash(filepath.Dir(rel)) + "/"
		for _, m := range fuzzFunc.FindAllSubmatch(src, -1) {
			entry := pkg + " " + string(m[1])
			if !slices.Contains(listed, entry) {
				missing = append(missing, entry)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(missing) > 0 {
		t.Errorf("fuzz targets not fuzzed by scripts/test.sh (add a \"package target\" line to its list):\n%s", strings.Join(missing, "\n"))
	}
}

// fuzzedInCI returns the "package target" lines of test.sh's fuzz list:
// the here-document that follows the go test -fuzz loop.
func fuzzedInCI(t *testing.T, script string) []string {
	t.Helper()
	f, err := os.Open(script)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var lines []string
	in := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case strings.Contains(line, "-fuzz "):
			in = true
		case in && line == "EOF":
			return lines
		case in && strings.HasPrefix(line, "./"):
			lines = append(lines, strings.Join(strings.Fields(line), " "))
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	t.Fatalf("%s: no fuzz list found after the go test -fuzz loop", script)
	return nil
}
