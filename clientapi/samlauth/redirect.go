package samlauth

import (
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/crewjam/saml"
)

var errQuerySignature = errors.New("query signature")

// sigAlgs are the HTTP-Redirect SigAlg values accepted (no SHA-1).
var sigAlgs = map[string]x509.SignatureAlgorithm{
	"http://www.w3.org/2001/04/xmldsig-more#rsa-sha256":   x509.SHA256WithRSA,
	"http://www.w3.org/2001/04/xmldsig-more#rsa-sha384":   x509.SHA384WithRSA,
	"http://www.w3.org/2001/04/xmldsig-more#rsa-sha512":   x509.SHA512WithRSA,
	"http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256": x509.ECDSAWithSHA256,
	"http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha384": x509.ECDSAWithSHA384,
	"http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha512": x509.ECDSAWithSHA512,
}

// readRedirect reads a response sent over HTTP-Redirect. The binding
// signs the query string itself (SAML bindings §3.4.4.1): the signed octets
// are "SAMLResponse=v[&RelayState=v]&SigAlg=v" with each value exactly as
// it was URL-encoded in the query the browser sent, so they are taken from
// the raw query, never re-encoded. The signature is required and must
// verify with one of the IdP's signing certificates; the response inside
// is then checked like a POSTed one (its assertion's own signature too).
func readRedirect(rawQuery string, md *saml.EntityDescriptor) (raw []byte, relay string, err error) {
	params := map[string]string{}
	for _, part := range strings.Split(rawQuery, "&") {
		k, v, _ := strings.Cut(part, "=")
		switch k {
		case "SAMLResponse", "RelayState", "SigAlg", "Signature":
			if _, dup := params[k]; dup {
				return nil, "", fmt.Errorf("the query repeats %s", k)
			}
			params[k] = v
		}
	}
	resp, ok := params["SAMLResponse"]
	if !ok {
		return nil, "", nil
	}
	signed := "SAMLResponse=" + resp
	if v, ok := params["RelayState"]; ok {
		signed += "&RelayState=" + v
		if relay, err = url.QueryUnescape(v); err != nil {
			return nil, "", fmt.Errorf("RelayState: %w", err)
		}
	}
	rawAlg, ok1 := params["SigAlg"]
	rawSig, ok2 := params["Signature"]
	if !ok1 || !ok2 {
		return nil, "", fmt.Errorf("%w: an HTTP-Redirect response must carry SigAlg and Signature", errQuerySignature)
	}
	signed += "&SigAlg=" + rawAlg
	if err := verifyQuery(signed, rawAlg, rawSig, md); err != nil {
		return nil, "", err
	}
	v, err := url.QueryUnescape(resp)
	if err != nil {
		return nil, "", fmt.Errorf("SAMLResponse: %w", err)
	}
	deflated, err := base64.StdEncoding.DecodeString(v)
	if err != nil {
		return nil, "", fmt.Errorf("SAMLResponse: %w", err)
	}
	raw, err = inflate(deflated)
	return raw, relay, err
}

func verifyQuery(signed, rawAlg, rawSig string, md *saml.EntityDescriptor) error {
	algName, err := url.QueryUnescape(rawAlg)
	if err != nil {
		return fmt.Errorf("%w: SigAlg: %v", errQuerySignature, err)
	}
	alg, ok := sigAlgs[algName]
	if !ok {
		return fmt.Errorf("%w: SigAlg %q is not accepted", errQuerySignature, algName)
	}
	s, err := url.QueryUnescape(rawSig)
	if err != nil {
		return fmt.Errorf("%w: Signature: %v", errQuerySignature, err)
	}
	sig, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return fmt.Errorf("%w: Signature: %v", errQuerySignature, err)
	}
	certs, err := signingCerts(md)
	if err != nil {
		return fmt.Errorf("%w: %v", errQuerySignature, err)
	}
	for _, c := range certs {
		if c.CheckSignature(alg, []byte(signed), sig) == nil {
			return nil
		}
	}
	return fmt.Errorf("%w: no signing certificate of the IdP verifies it", errQuerySignature)
}

// signingCerts are the certificates of the IdP's signing (or unspecified
// use) key descriptors.
func signingCerts(md *saml.EntityDescriptor) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for _, d := range md.IDPSSODescriptors {
		for _, kd := range d.KeyDescriptors {
			if kd.Use != "" && kd.Use != "signing" {
				continue
			}
			for _, xc := range kd.KeyInfo.X509Data.X509Certificates {
				der, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(xc.Data), ""))
				if err != nil {
					return nil, fmt.Errorf("IdP metadata certificate: %w", err)
				}
				c, err := x509.ParseCertificate(der)
				if err != nil {
					return nil, fmt.Errorf("IdP metadata certificate: %w", err)
				}
				out = append(out, c)
			}
		}
	}
	if len(out) == 0 {
		return nil, errors.New("the IdP metadata names no signing certificate")
	}
	return out, nil
}
