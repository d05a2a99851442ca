package selfupdate

import (
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"testing"

	"github.com/edgefort/edgefort/updater/artifact"
)

func TestDownloadErrors(t *testing.T) {
	tests := []struct {
		name  string
		store func(t *testing.T, e *testEnv, dl interface {
			Store(*artifact.File, io.Reader) error
		}) error // returns the error expected to fail
		want   []string
		wantIs error
	}{
		{
			name: "checksum mismatch",
			store: func(t *testing.T, e *testEnv, dl interface {
				Store(*artifact.File, io.Reader) error
			}) error {
				f := testFile("edgefort", newAgent)
				return dl.Store(f, newChecksumReader(newAgent, sha256.Sum256(oldAgent)))
			},
			want:   []string{"store edgefort", "checksum mismatch"},
			wantIs: artifact.ErrChecksum,
		},
		{
			name: "empty file",
			store: func(t *testing.T, e *testEnv, dl interface {
				Store(*artifact.File, io.Reader) error
			}) error {
				return dl.Store(testFile("edgefort", nil), newChecksumReader(nil, sha256.Sum256(nil)))
			},
			want: []string{"the file is empty"},
		},
		{
			name: "two files",
			store: func(t *testing.T, e *testEnv, dl interface {
				Store(*artifact.File, io.Reader) error
			}) error {
				if err := dl.Store(testFile("edgefort", newAgent), newChecksumReader(newAgent, sha256.Sum256(newAgent))); err != nil {
					t.Fatalf("first Store: %v", err)
				}
				return dl.Store(testFile("README", []byte("hi")), newChecksumReader([]byte("hi"), sha256.Sum256([]byte("hi"))))
			},
			want: []string{"more than one file", "README"},
		},
		{
			name: "augmented file",
			store: func(t *testing.T, e *testEnv, dl interface {
				Store(*artifact.File, io.Reader) error
			}) error {
				f := testFile("edgefort", newAgent)
				f.Augmented = true
				return dl.Store(f, newChecksumReader(newAgent, f.Checksum))
			},
			want: []string{"augmented"},
		},
		{
			name: "reader fails midway",
			store: func(t *testing.T, e *testEnv, dl interface {
				Store(*artifact.File, io.Reader) error
			}) error {
				r := io.MultiReader(newChecksumReader(newAgent[:10], sha256.Sum256(newAgent[:10])), errReader{})
				return dl.Store(testFile("edgefort", newAgent), r)
			},
			want: []string{"connection reset"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newTestEnv(t)
			dl, err := e.ins.Download(context.Background(), e.p)
			if err != nil {
				t.Fatal(err)
			}
			err = tt.store(t, e, dl)
			errContains(t, err, tt.want...)
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("err = %v, want it to wrap %v", err, tt.wantIs)
			}
			wantMissing(t, e.newPath())
			if err := dl.Finish(context.Background()); err == nil {
				t.Error("Finish after a failed Store = nil, want an error")
			}
			dl.Abort()
			wantMissing(t, e.newPath())
			// Nothing was recorded, so nothing can be installed.
			errContains(t, e.ins.Call(context.Background(), e.p, "ArtifactInstall"), "no downloaded binary")
			wantFile(t, e.binary(), oldAgent)
		})
	}
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) {
	return 0, errors.New("read tcp: connection reset by peer")
}

func TestDownloadNoFile(t *testing.T) {
	e := newTestEnv(t)
	dl, err := e.ins.Download(context.Background(), e.p)
	if err != nil {
		t.Fatal(err)
	}
	errContains(t, dl.Finish(context.Background()), "has no file")
}

func TestDownloadAbortRemovesFile(t *testing.T) {
	e := newTestEnv(t)
	dl, err := e.ins.Download(context.Background(), e.p)
	if err != nil {
		t.Fatal(err)
	}
	if err := dl.Store(testFile("edgefort", newAgent), newChecksumReader(newAgent, sha256.Sum256(newAgent))); err != nil {
		t.Fatal(err)
	}
	wantFile(t, e.newPath(), newAgent)
	dl.Abort() // before Finish: the download is abandoned
	dl.Abort()
	wantMissing(t, e.newPath())
	errContains(t, dl.Finish(context.Background()), "aborted")
}

func TestDownloadReplacesStaleNew(t *testing.T) {
	e := newTestEnv(t)
	e.download(oldAgent) // an earlier attempt, never installed
	e.download(newAgent)
	wantFile(t, e.newPath(), newAgent)
}
