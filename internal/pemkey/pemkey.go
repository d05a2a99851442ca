// Package pemkey reads private keys from PEM or DER files: PKCS#1, PKCS#8,
// SEC1, encrypted PKCS#8 (PBES2 with PBKDF2 or scrypt) and legacy encrypted
// PEM, with bounded key derivation so a crafted file cannot keep a process
// busy. It is the one key parser of edgefort: keystore imports keys with
// it, and updater/artifact reads signing keys with it.
package pemkey

import (
	"bytes"
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/des"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/pbkdf2"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
	"hash"
	"slices"
	"strings"

	"golang.org/x/crypto/scrypt"
)

// Errors a caller may act on, for instance by asking for a passphrase again.
var (
	ErrNeedPassphrase  = errors.New("private key is encrypted: give its passphrase (--passphrase-file)")
	ErrWrongPassphrase = errors.New("decrypt private key: wrong passphrase or corrupt key")
	ErrNoKey           = errors.New("no PEM private key found (expected a -----BEGIN ... PRIVATE KEY----- block)")
)

const (
	// minRSABits is the smallest RSA modulus accepted.
	minRSABits = 2048

	// Limits on the key derivation of an encrypted PKCS#8 key, so that a
	// crafted file cannot keep the agent busy for hours or exhaust memory.
	// OpenSSL writes 2048 PBKDF2 iterations or scrypt N=16384, r=8, p=1.
	maxPBKDF2Iterations = 5_000_000
	maxScryptN          = 1 << 20
	maxScryptNR         = 1 << 21 // scrypt needs 128*N*r bytes: 256 MiB
	maxScryptP          = 16
)

// PEM block types of private keys.
const (
	pemPKCS8Key          = "PRIVATE KEY"
	pemPKCS1Key          = "RSA PRIVATE KEY"
	pemSEC1Key           = "EC PRIVATE KEY"
	pemEncryptedPKCS8Key = "ENCRYPTED PRIVATE KEY"
	pemOpenSSHKey        = "OPENSSH PRIVATE KEY"
	pemKeySuffix         = "PRIVATE KEY"
)

// Parse reads one private key from PEM: PKCS#1 ("RSA PRIVATE KEY"),
// PKCS#8 ("PRIVATE KEY"), SEC1 ("EC PRIVATE KEY"), encrypted PKCS#8
// ("ENCRYPTED PRIVATE KEY", PBES2) and legacy encrypted PEM (Proc-Type:
// 4,ENCRYPTED). Data with no PEM block at all is tried as DER. Certificate
// and other blocks are ignored, so a combined key and certificate file
// works; two private keys are an error. The key must be RSA of at least
// 2048 bits, ECDSA on P-256, P-384 or P-521, or Ed25519. passphrase is
// ignored for an unencrypted key.
func Parse(data, passphrase []byte) (crypto.Signer, error) {
	block, err := findKeyBlock(data)
	if err != nil {
		return nil, err
	}
	if block == nil {
		return parseKeyDERData(data, passphrase)
	}
	switch block.Type {
	case pemEncryptedPKCS8Key:
		return decryptPKCS8(block.Bytes, passphrase)
	case pemPKCS8Key, pemPKCS1Key, pemSEC1Key:
	case pemOpenSSHKey:
		return nil, fmt.Errorf("unsupported private key block %q: convert it to PKCS#8 with: ssh-keygen -p -m PKCS8 -f FILE", block.Type)
	default:
		return nil, fmt.Errorf("unsupported private key block %q: use an RSA, ECDSA or Ed25519 key in PKCS#8, PKCS#1 or SEC1 form", block.Type)
	}
	//lint:ignore SA1019 legacy encrypted PEM is weak but still found in old key files.
	if x509.IsEncryptedPEMBlock(block) {
		return decryptLegacyPEM(block, passphrase)
	}
	key, err := parseKeyDER(block.Bytes, block.Type)
	if err != nil {
		return nil, fmt.Errorf("parse %s block: %w", block.Type, err)
	}
	return CheckSigner(key)
}

// findKeyBlock returns the one private key block of data, nil if data holds
// no PEM block at all, or an error if it holds PEM but not exactly one key.
func findKeyBlock(data []byte) (*pem.Block, error) {
	var (
		key    *pem.Block
		nkeys  int
		others []string
		rest   = data
	)
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if !strings.HasSuffix(b.Type, pemKeySuffix) {
			if !slices.Contains(others, b.Type) {
				others = append(others, b.Type)
			}
			continue
		}
		nkeys++
		if key == nil {
			key = b
		}
	}
	switch {
	case nkeys > 1:
		return nil, fmt.Errorf("found %d private keys: give exactly one", nkeys)
	case nkeys == 1:
		return key, nil
	case len(others) > 0:
		return nil, fmt.Errorf("%w; found only %s", ErrNoKey, strings.Join(others, ", "))
	}
	return nil, nil
}

// parseKeyDERData reads a key from data that holds no PEM block: DER
// PKCS#8 (plain or encrypted), PKCS#1 or SEC1.
func parseKeyDERData(data, passphrase []byte) (crypto.Signer, error) {
	var info encryptedPrivateKeyInfo
	if _, err := asn1.Unmarshal(data, &info); err == nil {
		return decryptPKCS8(data, passphrase)
	}
	key, err := parseKeyDER(data, "")
	if err != nil {
		return nil, ErrNoKey
	}
	return CheckSigner(key)
}

// parseKeyDER parses a DER key, trying the format blockType names first and
// then the others, since mislabelled blocks exist. The error is the one of
// the named format.
func parseKeyDER(der []byte, blockType string) (any, error) {
	pkcs1 := func(b []byte) (any, error) { return x509.ParsePKCS1PrivateKey(b) }
	sec1 := func(b []byte) (any, error) { return x509.ParseECPrivateKey(b) }
	parsers := []func([]byte) (any, error){x509.ParsePKCS8PrivateKey, pkcs1, sec1}
	switch blockType {
	case pemPKCS1Key:
		parsers = []func([]byte) (any, error){pkcs1, x509.ParsePKCS8PrivateKey, sec1}
	case pemSEC1Key:
		parsers = []func([]byte) (any, error){sec1, x509.ParsePKCS8PrivateKey, pkcs1}
	}
	var first error
	for _, parse := range parsers {
		key, err := parse(der)
		if err == nil {
			return key, nil
		}
		if first == nil {
			first = err
		}
	}
	return nil, first
}

// decryptLegacyPEM decrypts an OpenSSL "Proc-Type: 4,ENCRYPTED" block.
func decryptLegacyPEM(block *pem.Block, passphrase []byte) (crypto.Signer, error) {
	if len(passphrase) == 0 {
		return nil, ErrNeedPassphrase
	}
	//lint:ignore SA1019 legacy encrypted PEM is weak but still found in old key files.
	der, err := x509.DecryptPEMBlock(block, passphrase)
	if errors.Is(err, x509.IncorrectPasswordError) {
		return nil, ErrWrongPassphrase
	}
	if err != nil {
		return nil, fmt.Errorf("decrypt private key: %w", err)
	}
	key, err := parseKeyDER(der, block.Type)
	if err != nil {
		// The padding check passes for about one wrong passphrase in 256.
		return nil, ErrWrongPassphrase
	}
	return CheckSigner(key)
}

// ASN.1 of an encrypted PKCS#8 key (RFC 5208) with PBES2 (RFC 8018) or
// scrypt (RFC 7914) key derivation.
type encryptedPrivateKeyInfo struct {
	Algorithm pkix.AlgorithmIdentifier
	Data      []byte
}

type pbes2Params struct {
	KDF    pkix.AlgorithmIdentifier
	Scheme pkix.AlgorithmIdentifier
}

type pbkdf2Params struct {
	Salt       []byte
	Iterations int
	KeyLength  int                      `asn1:"optional"`
	PRF        pkix.AlgorithmIdentifier `asn1:"optional"` // absent: HMAC-SHA1
}

type scryptParams struct {
	Salt      []byte
	N         int
	R         int
	P         int
	KeyLength int `asn1:"optional"`
}

var (
	oidPBES2  = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 5, 13}
	oidPBKDF2 = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 5, 12}
	oidScrypt = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 11591, 4, 11}

	// pbkdf2PRFs are the HMAC hashes PBKDF2 may use, by OID.
	pbkdf2PRFs = map[string]func() hash.Hash{
		"1.2.840.113549.2.7":  sha1.New,
		"1.2.840.113549.2.8":  sha256.New224,
		"1.2.840.113549.2.9":  sha256.New,
		"1.2.840.113549.2.10": sha512.New384,
		"1.2.840.113549.2.11": sha512.New,
	}

	// pbes2Ciphers are the CBC ciphers PBES2 may use, by OID.
	pbes2Ciphers = map[string]struct {
		keyLen   int
		newBlock func(key []byte) (cipher.Block, error)
	}{
		"2.16.840.1.101.3.4.1.2":  {16, aes.NewCipher},
		"2.16.840.1.101.3.4.1.22": {24, aes.NewCipher},
		"2.16.840.1.101.3.4.1.42": {32, aes.NewCipher},
		"1.2.840.113549.3.7":      {24, des.NewTripleDESCipher},
	}
)

// decryptPKCS8 decrypts a DER EncryptedPrivateKeyInfo.
//
// It is written here rather than taken from github.com/youmark/pkcs8, which
// panics on an IV or ciphertext of the wrong length, decrypts the AES-GCM
// OIDs as CBC and does not check the padding.
func decryptPKCS8(der, passphrase []byte) (crypto.Signer, error) {
	var info encryptedPrivateKeyInfo
	if _, err := asn1.Unmarshal(der, &info); err != nil {
		return nil, fmt.Errorf("parse encrypted private key: %w", err)
	}
	if len(passphrase) == 0 {
		return nil, ErrNeedPassphrase
	}
	plain, err := decryptPBES2(info, passphrase)
	if err != nil {
		return nil, err
	}
	key, err := x509.ParsePKCS8PrivateKey(plain)
	if err != nil {
		// The padding check passes for about one wrong passphrase in 256.
		return nil, ErrWrongPassphrase
	}
	return CheckSigner(key)
}

// decryptPBES2 returns the plaintext of info.
func decryptPBES2(info encryptedPrivateKeyInfo, passphrase []byte) ([]byte, error) {
	if !info.Algorithm.Algorithm.Equal(oidPBES2) {
		return nil, fmt.Errorf("decrypt private key: unsupported encryption %v: only PBES2 is supported; re-encrypt the key with: openssl pkcs8 -topk8 -v2 aes-256-cbc", info.Algorithm.Algorithm)
	}
	var params pbes2Params
	if _, err := asn1.Unmarshal(info.Algorithm.Parameters.FullBytes, &params); err != nil {
		return nil, fmt.Errorf("decrypt private key: malformed PBES2 parameters: %w", err)
	}
	c, ok := pbes2Ciphers[params.Scheme.Algorithm.String()]
	if !ok {
		return nil, fmt.Errorf("decrypt private key: unsupported cipher %v: use AES-CBC or DES-EDE3-CBC", params.Scheme.Algorithm)
	}
	var iv []byte
	if _, err := asn1.Unmarshal(params.Scheme.Parameters.FullBytes, &iv); err != nil {
		return nil, fmt.Errorf("decrypt private key: malformed cipher parameters: %w", err)
	}
	key, err := deriveKey(params.KDF, passphrase, c.keyLen)
	if err != nil {
		return nil, fmt.Errorf("decrypt private key: %w", err)
	}
	block, err := c.newBlock(key)
	if err != nil {
		return nil, fmt.Errorf("decrypt private key: %w", err)
	}
	bs := block.BlockSize()
	if len(iv) != bs || len(info.Data) == 0 || len(info.Data)%bs != 0 {
		return nil, errors.New("decrypt private key: malformed encrypted data")
	}
	plain := make([]byte, len(info.Data))
	cipher.NewCBCDecrypter(block, iv).CryptBlocks(plain, info.Data)
	n := int(plain[len(plain)-1])
	if n == 0 || n > bs || !bytes.Equal(plain[len(plain)-n:], bytes.Repeat([]byte{byte(n)}, n)) {
		return nil, ErrWrongPassphrase
	}
	return plain[:len(plain)-n], nil
}

// deriveKey runs a PBES2 key derivation function, refusing parameters that
// would cost unbounded time or memory.
func deriveKey(kdf pkix.AlgorithmIdentifier, passphrase []byte, keyLen int) ([]byte, error) {
	switch {
	case kdf.Algorithm.Equal(oidPBKDF2):
		var p pbkdf2Params
		if _, err := asn1.Unmarshal(kdf.Parameters.FullBytes, &p); err != nil {
			return nil, fmt.Errorf("malformed PBKDF2 parameters: %w", err)
		}
		if p.Iterations < 1 || p.Iterations > maxPBKDF2Iterations {
			return nil, fmt.Errorf("PBKDF2 iteration count %d is outside 1 to %d", p.Iterations, maxPBKDF2Iterations)
		}
		if p.KeyLength != 0 && p.KeyLength != keyLen {
			return nil, fmt.Errorf("PBKDF2 key length %d does not fit the cipher's %d", p.KeyLength, keyLen)
		}
		prf := sha1.New
		if len(p.PRF.Algorithm) > 0 {
			var ok bool
			if prf, ok = pbkdf2PRFs[p.PRF.Algorithm.String()]; !ok {
				return nil, fmt.Errorf("unsupported PBKDF2 hash %v", p.PRF.Algorithm)
			}
		}
		return pbkdf2.Key(prf, string(passphrase), p.Salt, p.Iterations, keyLen)
	case kdf.Algorithm.Equal(oidScrypt):
		var p scryptParams
		if _, err := asn1.Unmarshal(kdf.Parameters.FullBytes, &p); err != nil {
			return nil, fmt.Errorf("malformed scrypt parameters: %w", err)
		}
		if p.N < 2 || p.N > maxScryptN || p.R < 1 || p.R > maxScryptNR || p.P < 1 || p.P > maxScryptP || p.N*p.R > maxScryptNR {
			return nil, fmt.Errorf("scrypt parameters N=%d r=%d p=%d are outside the limits (N*r <= %d, p <= %d)", p.N, p.R, p.P, maxScryptNR, maxScryptP)
		}
		if p.KeyLength != 0 && p.KeyLength != keyLen {
			return nil, fmt.Errorf("scrypt key length %d does not fit the cipher's %d", p.KeyLength, keyLen)
		}
		return scrypt.Key(passphrase, p.Salt, p.N, p.R, p.P, keyLen)
	}
	return nil, fmt.Errorf("unsupported key derivation %v: use PBKDF2 or scrypt", kdf.Algorithm)
}

// CheckSigner accepts the key types and sizes edgefort signs with.
func CheckSigner(key any) (crypto.Signer, error) {
	switch k := key.(type) {
	case *rsa.PrivateKey:
		if bits := k.N.BitLen(); bits < minRSABits {
			return nil, fmt.Errorf("RSA key of %d bits is too short: use at least %d", bits, minRSABits)
		}
		return k, nil
	case *ecdsa.PrivateKey:
		switch k.Curve {
		case elliptic.P256(), elliptic.P384(), elliptic.P521():
			return k, nil
		}
		return nil, fmt.Errorf("unsupported ECDSA curve %s: use P-256, P-384 or P-521", k.Curve.Params().Name)
	case ed25519.PrivateKey:
		return k, nil
	case *ecdh.PrivateKey:
		return nil, errors.New("an X25519 key cannot sign: use an RSA, ECDSA or Ed25519 key")
	}
	return nil, fmt.Errorf("unsupported private key type %T", key)
}
