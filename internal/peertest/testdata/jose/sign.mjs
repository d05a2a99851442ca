// sign.mjs is the independent JWS peer of the JWT solution's tests: it
// signs claims with the jose library, as an identity provider signs a
// user token.
//
//   node sign.mjs PRIVATE_KEY_PEM ALG KID < claims.json
//
// PRIVATE_KEY_PEM is a PKCS#8 PEM file. KID "" leaves kid out of the
// header. The compact JWS is printed on stdout.
import { readFileSync } from 'node:fs';
import { SignJWT, importPKCS8 } from 'jose';

const [keyFile, alg, kid] = process.argv.slice(2);
if (!keyFile || !alg || kid === undefined) {
  console.error('usage: node sign.mjs PRIVATE_KEY_PEM ALG KID < claims.json');
  process.exit(2);
}

const key = await importPKCS8(readFileSync(keyFile, 'utf8'), alg);
const claims = JSON.parse(readFileSync(0, 'utf8'));
const header = { alg, typ: 'JWT' };
if (kid) {
  header.kid = kid;
}
const jws = await new SignJWT(claims).setProtectedHeader(header).sign(key);
process.stdout.write(jws + '\n');
