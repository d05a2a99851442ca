package adminapi

import (
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"
)

// wireTypes are every type the admin API sends or receives, and so every
// type the CLI prints with --json.
var wireTypes = []any{
	VersionInfo{}, ErrorReply{}, Status{}, UpdateStatus{}, UpdateResult{}, CloudStatus{},
	AuthorizeReply{}, ReportRequest{}, ReportReply{}, CheckReply{}, StoreList{}, RefList{},
	KeyPairList{}, Change{}, Document{}, CreateStoreRequest{}, ImportRequest{}, SetRefRequest{},
	GenerateKeyPairRequest{}, VerifyKeyPairRequest{},
}

var snakeCase = regexp.MustCompile(`^[a-z][a-z0-9]*(_[a-z0-9]+)*$`)

// TestWireTypesSnakeCase: every field of every wire type, down to the
// types of other packages they hold, has a snake_case JSON name, and none
// is a time.Duration (which encodes as nanoseconds).
func TestWireTypesSnakeCase(t *testing.T) {
	for _, v := range wireTypes {
		for _, p := range wireProblems(reflect.TypeOf(v), reflect.TypeOf(v).Name(), map[reflect.Type]bool{}) {
			t.Error(p)
		}
	}
}

var (
	durationType = reflect.TypeOf(time.Duration(0))
	timeType     = reflect.TypeOf(time.Time{})
)

func wireProblems(typ reflect.Type, path string, seen map[reflect.Type]bool) []string {
	switch typ.Kind() {
	case reflect.Pointer, reflect.Slice, reflect.Array, reflect.Map:
		if typ.Kind() == reflect.Slice && typ.Elem().Kind() == reflect.Uint8 {
			return nil // []byte and json.RawMessage: base64 or raw JSON
		}
		return wireProblems(typ.Elem(), path, seen)
	case reflect.Int64:
		if typ == durationType {
			return []string{path + ": a time.Duration encodes as nanoseconds; use a string or a _seconds field"}
		}
		return nil
	case reflect.Struct:
	default:
		return nil
	}
	if typ == timeType || seen[typ] {
		return nil
	}
	seen[typ] = true
	var out []string
	for i := range typ.NumField() {
		f := typ.Field(i)
		if !f.IsExported() {
			continue
		}
		tag, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if tag == "-" {
			continue
		}
		if tag == "" && f.Anonymous {
			out = append(out, wireProblems(f.Type, path, seen)...) // promoted fields
			continue
		}
		if !snakeCase.MatchString(tag) {
			out = append(out, path+"."+f.Name+": JSON name "+quote(tag, f.Name)+" is not snake_case")
		}
		out = append(out, wireProblems(f.Type, path+"."+f.Name, seen)...)
	}
	return out
}

func quote(tag, field string) string {
	if tag == "" {
		return `"` + field + `" (no json tag)`
	}
	return `"` + tag + `"`
}
