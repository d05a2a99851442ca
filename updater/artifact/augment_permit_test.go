package artifact

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestAugmentCheckPermitted(t *testing.T) {
	// The augment mender-artifact writes for --augment-type augtest
	// --augment-depends 'rootfs-image.augtest.version:v0' --augment-meta-data.
	const ti = `{"type":"augtest","artifact_depends":{"rootfs-image.augtest.version":"v0"}}`
	const md = `{"delta":"yes","n":1}`
	const full = `{"type-info":{"artifact_depends":{"rootfs-image.augtest.version":true}},"meta-data":{"delta":true,"n":true}}`
	for _, tc := range []struct {
		name      string
		typeInfo  string
		metaData  string
		permitted string
		want      string // "" = permitted; else a substring of the error
	}{
		{"all fields permitted", ti, md, full, ""},
		{"the upstream doc's example shape", `{"type":"x","artifact_depends":{"rootfs_image_checksum":"abc"}}`, `{"custom_list":["a","b"]}`,
			`{"header-info":{"artifact_depends":{"device_type":[true]}},"type-info":{"artifact_depends":{"rootfs_image_checksum":true}},"meta-data":{"custom_list":[true]}}`, ""},
		{"type alone needs no permission", `{"type":"augtest"}`, "", "", ""},
		{"empty augment, empty answer", "", "", "  \n", ""},
		{"empty objects set nothing", `{"type":"augtest","artifact_depends":{}}`, `{}`, `{}`, ""},
		{"permitted but absent fields are fine", `{"type":"augtest"}`, "", full, ""},
		{"empty answer permits no depends", ti, "", "", `type-info.artifact_depends."rootfs-image.augtest.version"`},
		{"other depends key", `{"type":"augtest","artifact_depends":{"other":"v0"}}`, "", full, "type-info.artifact_depends.other"},
		{"meta-data key not permitted", ti, `{"delta":"yes","n":1,"evil":true}`, full, "meta-data.evil"},
		{"meta-data not permitted at all", ti, md, `{"type-info":{"artifact_depends":{"rootfs-image.augtest.version":true}}}`, "meta-data.delta"},
		{"unknown type-info field", `{"type":"augtest","artifact_provides_extra":"x"}`, "", full, "type-info.artifact_provides_extra"},
		{"scalar permission, list value", `{"type":"augtest","artifact_depends":{"rootfs-image.augtest.version":["v0","v1"]}}`, "", full, `type-info.artifact_depends."rootfs-image.augtest.version"`},
		{"list permission, list value", `{"type":"augtest","artifact_depends":{"k":["v0","v1"]}}`, "", `{"type-info":{"artifact_depends":{"k":[true]}}}`, ""},
		{"list permission, empty list", "", `{"l":[]}`, `{"meta-data":{"l":[true]}}`, ""},
		{"list permission, scalar value", `{"type":"augtest","artifact_depends":{"k":"v0"}}`, "", `{"type-info":{"artifact_depends":{"k":[true]}}}`, "type-info.artifact_depends.k"},
		{"list of objects", "", `{"l":[{"a":1}]}`, `{"meta-data":{"l":[true]}}`, "meta-data.l"},
		{"object where a scalar is permitted", "", `{"o":{"a":1}}`, `{"meta-data":{"o":true}}`, "meta-data.o"},
		{"nested object permitted field by field", "", `{"o":{"a":1,"b":[2]}}`, `{"meta-data":{"o":{"a":true,"b":[true]}}}`, ""},
		{"nested object, one field not", "", `{"o":{"a":1,"c":2}}`, `{"meta-data":{"o":{"a":true}}}`, "meta-data.o.c"},
		{"whole header-info permission does not leak", ti, "", `{"header-info":{"artifact_depends":{"rootfs-image.augtest.version":true}}}`, "type-info.artifact_depends"},
		{"null value needs permission", "", `{"n":null}`, "", "meta-data.n"},
		{"null value permitted as scalar", "", `{"n":null}`, `{"meta-data":{"n":true}}`, ""},
		{"duplicate key in augment", "", `{"n":1,"n":2}`, `{"meta-data":{"n":true}}`, `duplicate JSON key "n"`},
		{"duplicate key hiding a field", `{"type":"augtest","artifact_depends":{"evil":"x"},"artifact_depends":{}}`, "", full, "duplicate"},

		// Invalid answers refuse the augment whatever it sets.
		{"answer false", "", "", `{"meta-data":{"n":false}}`, "want true, [true] or an object"},
		{"answer list of two", "", "", `{"meta-data":{"n":[true,true]}}`, "want true, [true] or an object"},
		{"answer string", "", "", `{"meta-data":{"n":"yes"}}`, "want true, [true] or an object"},
		{"answer null", "", "", `null`, "want a JSON object"},
		{"answer not JSON", "", "", `Yes`, "PermittedAugmentedHeaders answer"},
		{"answer unknown root", "", "", `{"scripts":true}`, `unknown header "scripts"`},
		{"answer root true", "", "", `{"meta-data":true}`, "meta-data: want an object"},
		{"answer trailing data", "", "", `{} {}`, "trailing data"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := &Augment{Type: "augtest"}
			if tc.typeInfo != "" {
				a.TypeInfo = json.RawMessage(tc.typeInfo)
			}
			if tc.metaData != "" {
				a.MetaData = json.RawMessage(tc.metaData)
			}
			err := a.CheckPermitted(tc.permitted)
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("CheckPermitted = %v, want nil", err)
			case tc.want != "" && err == nil:
				t.Errorf("CheckPermitted = nil, want an error with %q", tc.want)
			case tc.want != "" && !strings.Contains(err.Error(), tc.want):
				t.Errorf("CheckPermitted = %v, want an error with %q", err, tc.want)
			}
		})
	}
}

// "true" permits a scalar of the first level of meta-data too, whatever its
// JSON type.
func TestAugmentCheckPermittedScalarTypes(t *testing.T) {
	for _, v := range []string{`"s"`, `1.5`, `true`, `false`, `null`} {
		a := &Augment{MetaData: json.RawMessage(`{"k":` + v + `}`)}
		if err := a.CheckPermitted(`{"meta-data":{"k":true}}`); err != nil {
			t.Errorf("k=%s: %v", v, err)
		}
		if err := a.CheckPermitted(`{"meta-data":{"k":[true]}}`); err == nil {
			t.Errorf("k=%s permitted by [true]", v)
		}
	}
}
