package artifact

import (
	"errors"
	"maps"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestCheckDepends(t *testing.T) {
	header := func(d Depends, payloadDepends map[string][]string) *Header {
		return &Header{Name: "new", Depends: d, Payloads: []Payload{{Type: "single-file", Depends: payloadDepends}}}
	}
	dev := Depends{DeviceTypes: []string{"edge-1", "edge-2"}}
	device := Provides{ProvidesName: "v1", ProvidesGroup: "prod", "rootfs-image.version": "v1", "hw": "rev-b"}
	tests := []struct {
		name       string
		deviceType string
		h          *Header
		wantErr    []string // empty: met
	}{
		{"device type listed", "edge-2", header(dev, nil), nil},
		{"device type not listed", "edge-9", header(dev, nil), []string{`device type "edge-9" is not in`}},
		{"artifact name in list", "edge-1", header(Depends{DeviceTypes: dev.DeviceTypes, ArtifactNames: []string{"v0", "v1"}}, nil), nil},
		{"artifact name not in list", "edge-1", header(Depends{DeviceTypes: dev.DeviceTypes, ArtifactNames: []string{"v0"}}, nil), []string{`artifact_name in ["v0"], the device has "v1"`}},
		{"group", "edge-1", header(Depends{DeviceTypes: dev.DeviceTypes, ArtifactGroups: []string{"prod"}}, nil), nil},
		{"group not met", "edge-1", header(Depends{DeviceTypes: dev.DeviceTypes, ArtifactGroups: []string{"test"}}, nil), []string{"artifact_group"}},
		{"custom key equal", "edge-1", header(dev, map[string][]string{"hw": {"rev-b"}}), nil},
		{"custom key in list", "edge-1", header(dev, map[string][]string{"hw": {"rev-a", "rev-b"}}), nil},
		{"custom key differs", "edge-1", header(dev, map[string][]string{"hw": {"rev-c"}}), []string{`payload 0: depends on hw in ["rev-c"], the device has "rev-b"`}},
		{"custom key missing", "edge-1", header(dev, map[string][]string{"fw": {"1"}}), []string{"the device does not provide fw"}},
		{"key set twice", "edge-1", header(Depends{DeviceTypes: dev.DeviceTypes, ArtifactNames: []string{"v1"}}, map[string][]string{ProvidesName: {"v1"}}), []string{`"artifact_name" is also set by header-info`}},
		{"device_type in type-info", "edge-1", header(dev, map[string][]string{"device_type": {"edge-1"}}), []string{`"device_type" is also set`}},
		{"every problem named", "edge-9", header(Depends{DeviceTypes: dev.DeviceTypes, ArtifactNames: []string{"v0"}}, map[string][]string{"fw": {"1"}}),
			[]string{"edge-9", "artifact_name", "fw"}},
		{"augment depends checked", "edge-1", &Header{Name: "new", Depends: dev, Payloads: []Payload{{Augment: &Augment{Depends: map[string][]string{"base": {"x"}}}}}},
			[]string{"payload 0 (augment)", "base"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckDepends(tt.deviceType, device, tt.h)
			if len(tt.wantErr) == 0 {
				if err != nil {
					t.Fatalf("error = %v, want none", err)
				}
				return
			}
			if !errors.Is(err, ErrDepends) {
				t.Fatalf("error = %v, want ErrDepends", err)
			}
			for _, w := range tt.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

func TestNewProvides(t *testing.T) {
	old := Provides{
		ProvidesName:                       "v1",
		ProvidesGroup:                      "prod",
		"rootfs-image.version":             "v1",
		"rootfs-image.checksum":            "aaaa",
		"rootfs-image.single-file.version": "1",
		"custom":                           "keep?",
	}
	payload := func(provides map[string]string, clears []string) Payload {
		return Payload{Provides: provides, ClearsProvides: clears}
	}
	tests := []struct {
		name string
		h    *Header
		want Provides
	}{
		{"clears absent: legacy, drop every old provides and the group",
			&Header{Name: "v2", Payloads: []Payload{payload(map[string]string{"rootfs-image.version": "v2"}, nil)}},
			Provides{ProvidesName: "v2", "rootfs-image.version": "v2"}},
		{"clears present but empty: keep everything",
			&Header{Name: "v2", Payloads: []Payload{payload(map[string]string{"app.version": "2"}, []string{})}},
			Provides{ProvidesName: "v2", ProvidesGroup: "prod", "rootfs-image.version": "v1", "rootfs-image.checksum": "aaaa",
				"rootfs-image.single-file.version": "1", "custom": "keep?", "app.version": "2"}},
		{"mender-artifact rootfs-image defaults",
			&Header{Name: "v2", Payloads: []Payload{payload(map[string]string{"rootfs-image.version": "v2", "rootfs-image.checksum": "bbbb"},
				[]string{"artifact_group", "rootfs_image_checksum", "rootfs-image.*"})}},
			Provides{ProvidesName: "v2", "rootfs-image.version": "v2", "rootfs-image.checksum": "bbbb", "custom": "keep?"}},
		{"module-image defaults keep the rootfs and the group",
			&Header{Name: "v2", Payloads: []Payload{payload(map[string]string{"rootfs-image.single-file.version": "2"}, []string{"rootfs-image.single-file.*"})}},
			Provides{ProvidesName: "v2", ProvidesGroup: "prod", "rootfs-image.version": "v1", "rootfs-image.checksum": "aaaa",
				"rootfs-image.single-file.version": "2", "custom": "keep?"}},
		{"new group replaces old",
			&Header{Name: "v2", Group: "test", Payloads: []Payload{payload(nil, []string{"*"})}},
			Provides{ProvidesName: "v2", ProvidesGroup: "test"}},
		{"glob in the middle",
			&Header{Name: "v2", Payloads: []Payload{payload(nil, []string{"rootfs-image.*.version"})}},
			Provides{ProvidesName: "v2", ProvidesGroup: "prod", "rootfs-image.checksum": "aaaa", "custom": "keep?", "rootfs-image.version": "v1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := maps.Clone(old)
			got := NewProvides(old, tt.h)
			if d := cmp.Diff(tt.want, got); d != "" {
				t.Errorf("provides (-want +got):\n%s", d)
			}
			if d := cmp.Diff(before, old); d != "" {
				t.Errorf("old was modified (-before +after):\n%s", d)
			}
		})
	}
}

func TestGlobMatch(t *testing.T) {
	tests := []struct {
		glob, s string
		want    bool
	}{
		{"rootfs-image.*", "rootfs-image.version", true},
		{"rootfs-image.*", "rootfs-image.", true},
		{"rootfs-image.*", "rootfs-image", false},
		{"rootfs-image.*", "xrootfs-image.version", false},
		{"*", "", true},
		{"*.version", "rootfs-image.single-file.version", true},
		{"a*b*c", "a-b-c", true},
		{"a*b*c", "a-c-b", false},
		{"a*a", "a", false},
		{"a*a", "aa", true},
		{"artifact_group", "artifact_group", true},
		{"artifact_group", "artifact_groups", false},
		{"a?c", "abc", false}, // only '*' is special
		{"[ab]", "a", false},
	}
	for _, tt := range tests {
		if got := globMatch(tt.glob, tt.s); got != tt.want {
			t.Errorf("globMatch(%q, %q) = %v, want %v", tt.glob, tt.s, got, tt.want)
		}
	}
}
