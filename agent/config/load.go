package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"

	"go.yaml.in/yaml/v3"
)

// ErrNoConfig reports that the configuration file does not exist, as
// distinct from one that exists and is invalid.
var ErrNoConfig = errors.New("configuration file not found")

// MaxFileSize bounds a configuration file. A complete configuration is a
// few KiB; the bound keeps a wrong path (a log, an image) or a hostile file
// from being read whole into memory and parsed.
const MaxFileSize = 1 << 20

// Load reads, decodes, defaults and validates the file at path. An invalid
// file yields an *Error listing every problem.
func Load(path string) (*Config, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%s: %w", path, ErrNoConfig)
	}
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	defer f.Close()
	// One byte past the bound is enough for Parse to tell that the file is
	// too large, whatever its real size (a pipe has none to stat).
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	return Parse(path, data)
}

// Parse is Load on bytes already read; file names them in problems.
func Parse(file string, data []byte) (*Config, error) {
	if len(data) > MaxFileSize {
		return nil, &Error{Problems: []Problem{{File: file,
			Message: fmt.Sprintf("the file is larger than %d bytes (1 MiB), the limit for a configuration", MaxFileSize)}}}
	}
	cfg, lines, probs := decodeFile(data)
	if probs.fatal {
		return nil, locate(file, probs.list, lines)
	}
	// Validate even after decode problems so that one run reports
	// everything, but drop what a decode problem already explains: a field
	// that failed to decode is still zero, and "required" would mislead.
	decoded := probs.list
	cfg.setDefaults()
	checked := &problems{}
	cfg.validate(checked)
	for _, p := range checked.list {
		if !explained(p.Field, decoded) {
			probs.list = append(probs.list, p)
		}
	}
	if len(probs.list) == 0 {
		cfg.file, cfg.lines = file, lines
		return cfg, nil
	}
	return nil, locate(file, probs.list, lines)
}

// explained reports whether a decode problem concerns field or one of its
// parents.
func explained(field string, decoded []Problem) bool {
	for _, d := range decoded {
		if d.Field == "" || field == d.Field || strings.HasPrefix(field, d.Field+".") || strings.HasPrefix(field, d.Field+"[") {
			return true
		}
	}
	return false
}

func decodeFile(data []byte) (*Config, map[string]int, *problems) {
	probs := &problems{}
	lines := map[string]int{}
	cfg := &Config{}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var root yaml.Node
	if err := dec.Decode(&root); err != nil {
		if errors.Is(err, io.EOF) {
			probs.add(1, "", "the file is empty; start from `edgefort config example`")
			probs.fatal = true
		} else {
			probs.add(syntaxLine(err), "", "invalid YAML: %s", syntaxMessage(err))
		}
		probs.fatal = true
		return cfg, lines, probs
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		probs.add(extra.Line, "", "a second YAML document follows the first; one file holds one configuration")
		probs.fatal = true
		return cfg, lines, probs
	}
	doc := &root
	if doc.Kind == yaml.DocumentNode && len(doc.Content) == 1 {
		doc = doc.Content[0]
	}
	d := &decoder{probs: probs, lines: lines}
	d.decode(doc, reflect.ValueOf(cfg).Elem(), "")
	if d.stopped {
		// The bound is the one thing to fix first; what was found before
		// it is likely the same repeated value over and over.
		probs.list = probs.list[len(probs.list)-1:]
		probs.fatal = true
	}
	return cfg, lines, probs
}

// locate attaches file names and, where the decoder did not already, lines:
// a field that is in the file gets its own line, a missing field the line
// of its nearest parent that is.
func locate(file string, list []Problem, lines map[string]int) *Error {
	for i := range list {
		list[i].File = file
		if list[i].Line == 0 {
			list[i].Line = lineOf(list[i].Field, lines)
		}
		// Clipped only now: the line was looked up by the whole path.
		list[i].Field = clip(list[i].Field)
	}
	slices.SortStableFunc(list, func(a, b Problem) int { return a.Line - b.Line })
	if n := len(list) - maxProblems; n > 0 {
		list = append(list[:maxProblems:maxProblems], Problem{File: file, Message: fmt.Sprintf("%d more problems not shown", n)})
	}
	return &Error{Problems: list}
}

// Compiled on first use, not at every start (cmd/edgefort's TestInitAllocations).
var parentPath = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`(\.[^.\[\]]+|\[\d+\])$`) })

func lineOf(field string, lines map[string]int) int {
	for p := field; p != ""; p = parentPath().ReplaceAllString(p, "") {
		if l, ok := lines[p]; ok {
			return l
		}
		if !parentPath().MatchString(p) {
			break
		}
	}
	return 1
}

var (
	yamlLine   = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`line (\d+)`) })
	yamlPrefix = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^yaml: (line \d+: )?`) })
)

func syntaxLine(err error) int {
	if m := yamlLine().FindStringSubmatch(err.Error()); m != nil {
		if n, convErr := strconv.Atoi(m[1]); convErr == nil {
			return n
		}
	}
	return 1
}

func syntaxMessage(err error) string {
	return yamlPrefix().ReplaceAllString(err.Error(), "")
}
