package funclen

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// maxLines is the longest a function may be, from its func line to its
// closing brace; doc comments do not count.
const maxLines = 80

// roots are the trees checked, relative to this directory: the process
// and its commands only parse, wire and call, so nothing there needs more.
var roots = []string{"../../cmd", "../../agent"}

// allowed are functions still over the limit, by "FILE FUNC" (FILE from
// the repository root, FUNC as Recv.Name for a method), each with why and
// who shrinks it. An entry that no longer matches a long function fails
// the test: delete it, so that the list only shrinks.
var allowed = map[string]string{}

// TestFunctionLength lists every non-test function in cmd/ and agent/
// longer than maxLines that is not on the allow-list.
func TestFunctionLength(t *testing.T) {
	long, err := longFunctions(roots, maxLines)
	if err != nil {
		t.Fatal(err)
	}
	for _, fn := range long {
		if _, ok := allowed[fn.key]; !ok {
			t.Errorf("%s:%d: %s is %d lines, over %d: split it along its seams", fn.file, fn.line, fn.name, fn.lines, maxLines)
		}
	}
	found := map[string]bool{}
	for _, fn := range long {
		found[fn.key] = true
	}
	for key, why := range allowed {
		if !found[key] {
			t.Errorf("allow-list entry %q (%s) is no longer a function over %d lines: delete it", key, why, maxLines)
		}
	}
}

// TestLongFunctionsCounts checks the counter on a file made for it, so that
// the check above cannot pass by finding nothing.
func TestLongFunctionsCounts(t *testing.T) {
	dir := t.TempDir()
	body := strings.Repeat("\t_ = 0\n", 79) // with func and } lines: 81
	src := fmt.Sprintf("package x\n\n// F is long.\nfunc F() {\n%s}\n\nfunc G() {\n%s}\n\ntype T struct{}\n\nfunc (*T) M() {\n%s}\n",
		body, body[len("\t_ = 0\n"):], body)
	writeFile(t, filepath.Join(dir, "x.go"), src)
	writeFile(t, filepath.Join(dir, "x_test.go"), "package x\n\nfunc TestLong() {\n"+body+"}\n")
	long, err := longFunctions([]string{dir}, maxLines)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, fn := range long {
		got = append(got, fmt.Sprintf("%s:%d", fn.name, fn.lines))
	}
	if want := "F:81 T.M:81"; strings.Join(got, " ") != want {
		t.Errorf("long functions %q, want %q (G has 80 lines, tests are not checked)", got, want)
	}
}

type longFunc struct {
	key, file, name string
	line, lines     int
}

// longFunctions parses the non-test Go files under roots and returns the
// functions longer than max lines.
func longFunctions(roots []string, max int) ([]longFunc, error) {
	var out []longFunc
	for _, root := range roots {
		err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
				return err
			}
			fset := token.NewFileSet()
			f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
			if err != nil {
				return err
			}
			rel := strings.TrimPrefix(filepath.ToSlash(path), "../../")
			for _, decl := range f.Decls {
				fd, ok := decl.(*ast.FuncDecl)
				if !ok || fd.Body == nil {
					continue
				}
				start, end := fset.Position(fd.Type.Func).Line, fset.Position(fd.Body.Rbrace).Line
				if n := end - start + 1; n > max {
					name := funcName(fd)
					out = append(out, longFunc{key: rel + " " + name, file: rel, name: name, line: start, lines: n})
				}
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("walk %s: %w", root, err)
		}
	}
	return out, nil
}

// funcName is Name, or Recv.Name for a method (pointer or not).
func funcName(fd *ast.FuncDecl) string {
	if fd.Recv == nil || len(fd.Recv.List) == 0 {
		return fd.Name.Name
	}
	typ := fd.Recv.List[0].Type
	if star, ok := typ.(*ast.StarExpr); ok {
		typ = star.X
	}
	if idx, ok := typ.(*ast.IndexExpr); ok { // generic receiver
		typ = idx.X
	}
	if id, ok := typ.(*ast.Ident); ok {
		return id.Name + "." + fd.Name.Name
	}
	return fd.Name.Name
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
