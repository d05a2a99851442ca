// encrypt.mjs is the independent JWE peer of the keystore tests: it encrypts
// a payload to an RSA public key with the jose library, as an identity
// provider encrypts an ID token to the node's OIDC key pair.
//
//   node encrypt.mjs JWK_FILE ALG ENC < payload
//
// JWK_FILE holds one public JWK (a member of the node's JWKS export). Its
// "kid", if any, goes into the protected header. The compact JWE is
// printed on stdout.
import { readFileSync } from 'node:fs';
import { CompactEncrypt, importJWK } from 'jose';

const [jwkFile, alg, enc] = process.argv.slice(2);
if (!jwkFile || !alg || !enc) {
  console.error('usage: node encrypt.mjs JWK_FILE ALG ENC < payload');
  process.exit(2);
}

const { alg: _ignored, ...jwk } = JSON.parse(readFileSync(jwkFile, 'utf8'));
const key = await importJWK(jwk, alg);
const payload = readFileSync(0);
const header = { alg, enc, cty: 'JWT' };
if (jwk.kid) {
  header.kid = jwk.kid;
}
const jwe = await new CompactEncrypt(payload).setProtectedHeader(header).encrypt(key);
process.stdout.write(jwe + '\n');
