// verify.mjs is the independent verifier of the backendjwt tests: it checks
// a node-signed identity token with the jose library against the JWK Set
// fetched from the node, as a backend written in JavaScript would.
//
//   node verify.mjs JWKS_URL ISSUER AUDIENCE < token
//
// AUDIENCE "" skips the audience check. The JWKS is fetched over HTTPS;
// NODE_EXTRA_CA_CERTS names the CA that signs the server's certificate.
// The verified protected header and payload are printed on stdout as JSON.
import { readFileSync } from 'node:fs';
import { createRemoteJWKSet, jwtVerify } from 'jose';

const [url, issuer, audience] = process.argv.slice(2);
if (!url || !issuer) {
  console.error('usage: node verify.mjs JWKS_URL ISSUER AUDIENCE < token');
  process.exit(2);
}
const token = readFileSync(0, 'utf8').trim();
const jwks = createRemoteJWKSet(new URL(url));
const options = { issuer, algorithms: ['RS256', 'ES256'] };
if (audience) {
  options.audience = audience;
}
const { payload, protectedHeader } = await jwtVerify(token, jwks, options);
process.stdout.write(JSON.stringify({ header: protectedHeader, payload }) + '\n');
