package layers

import (
	"bufio"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// readmeRow is a row of the README's layout table: | `dir` | what it owns |
var readmeRow = regexp.MustCompile("^\\| `([^`]+)` \\|")

// TestReadmeLayout keeps the README's layout table and the tree in step:
// every package of the product, the dev tools and the test helpers has a
// row of its own (scripts/ is one row: its programs are the scripts'
// helpers), and every row names a directory that exists, once.
func TestReadmeLayout(t *testing.T) {
	root := filepath.Join("..", "..")
	f, err := os.Open(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows := map[string]int{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if m := readmeRow.FindStringSubmatch(sc.Text()); m != nil {
			rows[m[1]]++
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(rows) < 10 {
		t.Fatalf("README.md has %d layout rows; the check would pass vacuously", len(rows))
	}
	for dir, n := range rows {
		if n > 1 {
			t.Errorf("README.md: the layout table lists `%s` %d times", dir, n)
		}
		if fi, err := os.Stat(filepath.Join(root, dir)); err != nil || !fi.IsDir() {
			t.Errorf("README.md: the layout table lists `%s`, which is not a directory of the tree", dir)
		}
	}
	for _, p := range listPackages(t) {
		dir := strings.TrimPrefix(strings.TrimPrefix(p.ImportPath, module), "/")
		if strings.HasPrefix(dir, "scripts/") {
			continue
		}
		if rows[dir] == 0 {
			t.Errorf("README.md: the layout table has no row for `%s`; add one saying what it owns", dir)
		}
	}
}
