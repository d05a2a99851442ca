package updater

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/edgefort/edgefort/internal/httpbody"
)

// deploymentJSON is a next-deployment reply in the shape Mender sends,
// with the fields given.
func deploymentJSON(t *testing.T, id, name, uri string, types []string) []byte {
	t.Helper()
	var nr nextResponse
	nr.ID = id
	nr.Artifact.ID = "art-1"
	nr.Artifact.ArtifactName = name
	nr.Artifact.Source.URI = uri
	nr.Artifact.DeviceTypes = types
	b, err := json.Marshal(nr)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestOversizeReplies has a TLS server answer each device API call with a
// reply past its limit, and checks that the call fails naming the limit.
func TestOversizeReplies(t *testing.T) {
	const (
		next = "POST " + pathNextV2
		auth = "POST " + pathAuth
	)
	types := []string{"edge-x86"}
	uri := "https://s3.example.com/artifact?X-Amz-Signature=abc"
	many := make([]string, 201)
	for i := range many {
		many[i] = fmt.Sprintf("type-%d", i)
	}
	many[200] = "edge-x86"
	big := deploymentJSON(t, "d1", strings.Repeat("n", 2<<20), uri, types)
	tests := []struct {
		name    string
		call    string
		reply   rawReply
		wantErr string
		wantAs  *httpbody.TooLargeError // nil: not a size error
	}{
		{
			name:    "next deployment body, chunked",
			call:    next,
			reply:   rawReply{code: 200, chunked: true, body: big},
			wantErr: "updater: next deployment: reply exceeds the limit of 1 MiB",
			wantAs:  &httpbody.TooLargeError{What: "reply", Limit: 1 << 20},
		},
		{
			name:    "next deployment body, Content-Length",
			call:    next,
			reply:   rawReply{code: 200, body: big},
			wantErr: fmt.Sprintf("updater: next deployment: reply is %d bytes, over the limit of 1 MiB", len(big)),
			wantAs:  &httpbody.TooLargeError{What: "reply", Limit: 1 << 20, Size: int64(len(big))},
		},
		{
			name:    "artifact_name",
			call:    next,
			reply:   rawReply{code: 200, body: deploymentJSON(t, "d1", strings.Repeat("n", 5000), uri, types)},
			wantErr: "updater: next deployment: reply: artifact.artifact_name is 5000 bytes, over the limit of 4 KiB",
		},
		{
			name:    "deployment id",
			call:    next,
			reply:   rawReply{code: 200, body: deploymentJSON(t, strings.Repeat("i", 2000), "release-2", uri, types)},
			wantErr: "updater: next deployment: reply: id is 2000 bytes, over the limit of 1 KiB",
		},
		{
			name:    "download link",
			call:    next,
			reply:   rawReply{code: 200, body: deploymentJSON(t, "d1", "release-2", uri+strings.Repeat("u", 16<<10), types)},
			wantErr: "updater: next deployment: reply: artifact.source.uri is 16435 bytes, over the limit of 16 KiB",
		},
		{
			name:    "device type",
			call:    next,
			reply:   rawReply{code: 200, body: deploymentJSON(t, "d1", "release-2", uri, []string{"edge-x86", strings.Repeat("t", 4097)})},
			wantErr: "updater: next deployment: reply: artifact.device_types_compatible[1] is 4097 bytes, over the limit of 4 KiB",
		},
		{
			name:    "device types",
			call:    next,
			reply:   rawReply{code: 200, body: deploymentJSON(t, "d1", "release-2", uri, many)},
			wantErr: "updater: next deployment: reply: artifact.device_types_compatible has 201 entries, over the limit of 200",
		},
		{
			name:    "trailing data",
			call:    next,
			reply:   rawReply{code: 200, body: append(deploymentJSON(t, "d1", "release-2", uri, types), `{"id":"d2"}`...)},
			wantErr: "updater: next deployment: decode reply: data after the JSON value",
		},
		{
			name:    "token",
			call:    auth,
			reply:   rawReply{code: 200, chunked: true, body: []byte(strings.Repeat("j", 64<<10+1))},
			wantErr: "updater: next deployment: updater: authenticate: token exceeds the limit of 64 KiB",
			wantAs:  &httpbody.TooLargeError{What: "token", Limit: 64 << 10},
		},
		{
			name:    "error body",
			call:    next,
			reply:   rawReply{code: 500, chunked: true, body: []byte(strings.Repeat("e", 1<<20))},
			wantErr: "updater: next deployment: POST " + pathNextV2 + ": unexpected status 500: " + strings.Repeat("e", 4<<10) + " [error body cut at 4 KiB]",
		},
		{
			name:    "request id",
			call:    next,
			reply:   rawReply{code: 500, header: http.Header{"X-Men-Requestid": {strings.Repeat("r", 1000)}}, body: []byte(`{"error":"boom"}`)},
			wantErr: "updater: next deployment: POST " + pathNextV2 + ": unexpected status 500: boom (request " + strings.Repeat("r", 128) + "...)",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeMender(t)
			f.raw[tt.call] = tt.reply
			c := newTestClient(t, f, nil, nil)
			got, err := c.NextDeployment(context.Background(), testDevice)
			if err == nil {
				t.Fatalf("NextDeployment accepted the reply: %q (%d bytes)", got.ArtifactName[:min(len(got.ArtifactName), 40)], len(got.ArtifactName))
			}
			if err.Error() != tt.wantErr {
				msg := err.Error()
				t.Fatalf("err = %.300q\nwant  %.300q", msg, tt.wantErr)
			}
			if tt.wantAs != nil {
				var tl *httpbody.TooLargeError
				if !errors.As(err, &tl) {
					t.Fatalf("err %v is not a *httpbody.TooLargeError", err)
				}
				if diff := cmp.Diff(tt.wantAs, tl); diff != "" {
					t.Errorf("TooLargeError (-want +got):\n%s", diff)
				}
			}
		})
	}
}

// TestLargestDeploymentAccepted checks that a reply at every limit Mender's
// server itself allows is accepted: nothing legitimate is refused.
func TestLargestDeploymentAccepted(t *testing.T) {
	f := newFakeMender(t)
	types := make([]string, maxDeviceTypes)
	for i := range types {
		types[i] = fmt.Sprintf("%04d", i) + strings.Repeat("t", maxDeviceType-4)
	}
	types[maxDeviceTypes-1] = testDevice.DeviceType
	name := strings.Repeat("n", maxArtifactName)
	uri := f.srv.URL + "/a?" + strings.Repeat("u", maxDownloadURI-len(f.srv.URL)-3)
	id := strings.Repeat("i", maxDeploymentID)
	body := deploymentJSON(t, id, name, uri, types)
	f.raw["POST "+pathNextV2] = rawReply{code: http.StatusOK, chunked: true, body: body}
	c := newTestClient(t, f, nil, nil)
	got, err := c.NextDeployment(context.Background(), testDevice)
	if err != nil {
		t.Fatalf("NextDeployment refused a %d-byte reply within Mender's limits: %.300v", len(body), err)
	}
	want := &Deployment{ID: id, ArtifactName: name, URI: uri, DeviceTypes: types}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("deployment differs (-want +got):\n%.2000s", diff)
	}
}
