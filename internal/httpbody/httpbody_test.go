package httpbody

import (
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func response(body string, contentLength int64) *http.Response {
	return &http.Response{Body: io.NopCloser(strings.NewReader(body)), ContentLength: contentLength}
}

func TestRead(t *testing.T) {
	tests := []struct {
		name          string
		body          string
		contentLength int64
		want          string
		wantErr       string
		wantTooLarge  *TooLargeError
	}{
		{name: "at the limit", body: "12345678", contentLength: -1, want: "12345678"},
		{name: "empty", contentLength: 0, want: ""},
		{name: "over, unknown length", body: "123456789", contentLength: -1,
			wantErr: "reply exceeds the limit of 8 bytes", wantTooLarge: &TooLargeError{What: "reply", Limit: 8}},
		{name: "over, declared", body: "", contentLength: 1 << 30,
			wantErr: "reply is 1073741824 bytes, over the limit of 8 bytes", wantTooLarge: &TooLargeError{What: "reply", Limit: 8, Size: 1 << 30}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Read(response(tt.body, tt.contentLength), 8, "reply")
			if tt.wantErr == "" {
				if err != nil || string(got) != tt.want {
					t.Fatalf("Read = %q, %v; want %q", got, err, tt.want)
				}
				return
			}
			if err == nil || err.Error() != tt.wantErr {
				t.Fatalf("err = %v, want %q", err, tt.wantErr)
			}
			var tl *TooLargeError
			if !errors.As(err, &tl) {
				t.Fatalf("err %v is not a *TooLargeError", err)
			}
			if diff := cmp.Diff(tt.wantTooLarge, tl); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestDecodeJSON(t *testing.T) {
	tests := []struct {
		in, wantErr string
	}{
		{in: ` {"a":"x","unknown":1} ` + "\n"},
		{in: `{"a":"x"}{"a":"y"}`, wantErr: "decode reply: data after the JSON value"},
		{in: `{"a":"x"} garbage`, wantErr: "decode reply: data after the JSON value"},
		{in: `{"a":1}`, wantErr: "decode reply: json: cannot unmarshal number into Go struct field .a of type string"},
		{in: ``, wantErr: "decode reply: EOF"},
	}
	for _, tt := range tests {
		var v struct {
			A string `json:"a"`
		}
		err := DecodeJSON([]byte(tt.in), &v, "reply")
		got := ""
		if err != nil {
			got = err.Error()
		}
		if got != tt.wantErr {
			t.Errorf("DecodeJSON(%q) = %q, want %q", tt.in, got, tt.wantErr)
		}
	}
}

func TestMessage(t *testing.T) {
	long := strings.Repeat("x", ErrorLimit+1)
	b, cut := Message(response(long, -1))
	if !cut || string(b) != long[:ErrorLimit] {
		t.Errorf("Message of %d bytes = %d bytes, cut %v; want %d, true", len(long), len(b), cut, ErrorLimit)
	}
	b, cut = Message(response(long[:ErrorLimit], -1))
	if cut || len(b) != ErrorLimit {
		t.Errorf("Message of %d bytes = %d bytes, cut %v; want all, false", ErrorLimit, len(b), cut)
	}
}

func TestChecks(t *testing.T) {
	tests := []struct {
		err  error
		want string
	}{
		{CheckLen("name", "abcd", 4), ""},
		{CheckLen("name", "abcde", 4), "name is 5 bytes, over the limit of 4 bytes"},
		{CheckList("types", []string{"a", "b"}, 2, 1), ""},
		{CheckList("types", []string{"a", "b", "c"}, 2, 1), "types has 3 entries, over the limit of 2"},
		{CheckList("types", []string{"a", "bb"}, 2, 1), "types[1] is 2 bytes, over the limit of 1 bytes"},
	}
	for i, tt := range tests {
		got := ""
		if tt.err != nil {
			got = tt.err.Error()
		}
		if got != tt.want {
			t.Errorf("%d: %q, want %q", i, got, tt.want)
		}
	}
}

func TestSize(t *testing.T) {
	for n, want := range map[int64]string{1 << 20: "1 MiB", 64 << 10: "64 KiB", 1536: "1536 bytes", 4 << 20: "4 MiB", 1000: "1000 bytes"} {
		if got := Size(n); got != want {
			t.Errorf("Size(%d) = %q, want %q", n, got, want)
		}
	}
}
