package config

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestReadmeConfigsValidate keeps the README's configuration examples
// honest: every ```yaml block that starts with "version:" is a complete
// configuration, and Load (what `edgefort config validate` runs) accepts
// it. The SAML and OIDC sections promise exactly that; the other blocks
// are fragments of a larger file.
func TestReadmeConfigsValidate(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	blocks := regexp.MustCompile("(?s)```yaml\n(.*?)```").FindAllSubmatchIndex(readme, -1)
	solutions := map[string]bool{}
	for _, b := range blocks {
		body := string(readme[b[2]:b[3]])
		line := 1 + strings.Count(string(readme[:b[2]]), "\n")
		if !strings.HasPrefix(body, "version:") {
			continue
		}
		file := filepath.Join(t.TempDir(), "readme.yaml")
		if err := os.WriteFile(file, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := Load(file); err != nil {
			t.Errorf("README.md:%d: the example does not validate:\n%v", line, err)
		}
		for _, kind := range []string{"saml", "oidc"} {
			if strings.Contains(body, "- "+kind+":") {
				solutions[kind] = true
			}
		}
	}
	for _, kind := range []string{"saml", "oidc"} {
		if !solutions[kind] {
			t.Errorf("README.md has no complete example configuration (a yaml block starting with version:) of the %s solution", kind)
		}
	}
}
