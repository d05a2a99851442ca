package api_test

import (
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/edgefort/edgefort/cloudclient/api"
	"github.com/edgefort/edgefort/internal/openapitest"
)

func TestOpenAPIValidates(t *testing.T) {
	if _, err := openapitest.Load(t.Context()); err != nil {
		t.Fatal(err)
	}
}

func TestOpenAPIHasEveryPath(t *testing.T) {
	doc := openapitest.Doc(t)
	paths := map[string]string{ // path → method
		api.PathEnroll:         "POST",
		api.PathToken:          "POST",
		api.PathAuthorize:      "POST",
		api.PathAuthorizeBatch: "POST",
		api.PathIoTCredentials: "GET",
		api.PathReports:        "POST",
		api.PathJWKS:           "GET",
	}
	for p, method := range paths {
		item := doc.Paths.Value(p)
		if item == nil {
			t.Errorf("path %s is not in the document", p)
			continue
		}
		if item.GetOperation(method) == nil {
			t.Errorf("%s %s is not in the document", method, p)
		}
	}
	if got, want := doc.Paths.Len(), len(paths); got != want {
		t.Errorf("document has %d paths, api.go %d: %v", got, want, doc.Paths.InMatchingOrder())
	}
}

// TestOpenAPIMatchesTypes checks each wire type against its schema: the
// same JSON names, and required exactly when not omitempty.
func TestOpenAPIMatchesTypes(t *testing.T) {
	doc := openapitest.Doc(t)
	types := map[string]any{
		"EnrollRequest":          api.EnrollRequest{},
		"EnrollResponse":         api.EnrollResponse{},
		"Endpoints":              api.Endpoints{},
		"IoTEndpoint":            api.IoTEndpoint{},
		"TokenResponse":          api.TokenResponse{},
		"OAuthError":             api.OAuthError{},
		"Error":                  api.Error{},
		"User":                   api.User{},
		"Resource":               api.Resource{},
		"AuthorizeRequest":       api.AuthorizeRequest{},
		"Decision":               api.Decision{},
		"BatchAuthorizeRequest":  api.BatchAuthorizeRequest{},
		"BatchAuthorizeResponse": api.BatchAuthorizeResponse{},
		"IoTCredentials":         api.IoTCredentials{},
		"Report":                 api.Report{},
		"ReportsRequest":         api.ReportsRequest{},
		"ReportsResponse":        api.ReportsResponse{},
		"Rejection":              api.Rejection{},
	}
	for name, v := range types {
		t.Run(name, func(t *testing.T) {
			ref := doc.Components.Schemas[name]
			if ref == nil {
				t.Fatalf("no schema %s", name)
			}
			s := ref.Value
			var props []string
			for p := range s.Properties {
				props = append(props, p)
			}
			sort.Strings(props)
			fields, required := jsonFields(reflect.TypeOf(v))
			if diff := cmp.Diff(fields, props); diff != "" {
				t.Errorf("properties (-Go +schema):\n%s", diff)
			}
			want := slices.Clone(s.Required)
			sort.Strings(want)
			if diff := cmp.Diff(required, want); diff != "" {
				t.Errorf("required (-Go +schema):\n%s", diff)
			}
		})
	}
}

func jsonFields(t reflect.Type) (fields, required []string) {
	for f := range t.Fields() {
		name, opts, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "" || name == "-" {
			continue
		}
		fields = append(fields, name)
		if !strings.Contains(opts, "omitempty") {
			required = append(required, name)
		}
	}
	sort.Strings(fields)
	sort.Strings(required)
	return fields, required
}

// TestOpenAPIErrorCodes checks that the Code constants are the Error enum.
func TestOpenAPIErrorCodes(t *testing.T) {
	doc := openapitest.Doc(t)
	var enum []string
	for _, v := range doc.Components.Schemas["Error"].Value.Properties["error"].Value.Enum {
		enum = append(enum, v.(string))
	}
	codes := []string{api.CodeBadRequest, api.CodeUnauthorized, api.CodeForbidden, api.CodeNotFound,
		api.CodeConflict, api.CodeTooLarge, api.CodeRateLimited, api.CodeInternal, api.CodeUnavailable}
	sort.Strings(enum)
	sort.Strings(codes)
	if diff := cmp.Diff(codes, enum); diff != "" {
		t.Errorf("error codes (-api.go +document):\n%s", diff)
	}
	grant := doc.Components.Schemas["TokenRequest"].Value.Properties["grant_type"].Value.Enum
	if len(grant) != 1 || grant[0] != api.GrantTypeJWTBearer {
		t.Errorf("grant_type enum = %v, want [%s]", grant, api.GrantTypeJWTBearer)
	}
}
