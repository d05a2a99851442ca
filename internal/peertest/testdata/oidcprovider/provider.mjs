// The OpenID provider of the tests: npm oidc-provider, an independent
// certified implementation, on a listener the Go test bound and handed
// over as file descriptor 3, served over TLS with the test's certificate.
// Its configuration comes as JSON on stdin: {issuer, cert, key, clients,
// tamper, replay}. A client whose id is listed in tamper gets its ID token
// re-encrypted after one byte of the inner signature was changed (the
// test of a bad inner signature; encryption needs only the public key).
// A client listed in replay gets, from its second token request on, the
// ID token issued at its first (a captured token replayed: its nonce is
// an earlier login's).
// It prints "ready" once it serves.
// With accounts ({"alice": {"password": "...", "groups": [...]}, ...}; the
// dev environment's) only those users sign in, with their password (a
// wrong one is a 401 page), and their groups come in the ID token (scope
// groups); without it, as the tests use it, any login and password do.
import https from 'node:https';
import fs from 'node:fs';
import Provider from 'oidc-provider';
import * as jose from 'jose';

const cfg = JSON.parse(fs.readFileSync(0, 'utf8'));
const accounts = cfg.accounts || null;

const provider = new Provider(cfg.issuer, {
  clients: cfg.clients,
  features: {
    encryption: { enabled: true },
    devInteractions: { enabled: true },
  },
  pkce: { required: () => true },
  claims: { openid: ['sub'], profile: ['name'], email: ['email'], ...(accounts && { groups: ['groups'] }) },
  // The accounts' groups go in the ID token, which is what the node reads.
  conformIdTokenClaims: !accounts,
  async findAccount(ctx, id) {
    if (accounts) {
      if (!Object.hasOwn(accounts, id)) return undefined;
      return { accountId: id, async claims() { return { sub: id, name: id, email: id + '@example.test', groups: accounts[id].groups || [] }; } };
    }
    return { accountId: id, async claims() { return { sub: id, name: id, email: id + '@example.test' }; } };
  },
  cookies: { keys: ['edgefort-test-cookie-key'] },
  enabledJWA: {
    idTokenEncryptionAlgValues: ['RSA-OAEP', 'RSA-OAEP-256'],
    idTokenEncryptionEncValues: ['A128CBC-HS256', 'A256GCM'],
  },
});
provider.proxy = false;

// With accounts, the password of the dev login form (devInteractions,
// POST /interaction/UID with prompt=login) is checked before the form
// reaches oidc-provider, which then parses the body read here.
provider.use(async (ctx, next) => {
  if (!accounts || ctx.method !== 'POST' || !/^\/interaction\/[^/]+$/.test(ctx.path)) return next();
  const chunks = [];
  let size = 0;
  for await (const c of ctx.req) {
    size += c.length;
    if (size > 64 * 1024) ctx.throw(413, 'login form too large');
    chunks.push(c);
  }
  const raw = Buffer.concat(chunks).toString();
  const form = new URLSearchParams(raw);
  if (form.get('prompt') === 'login') {
    const user = form.get('login') || '';
    if (!Object.hasOwn(accounts, user) || accounts[user].password !== form.get('password')) {
      ctx.status = 401;
      ctx.type = 'html';
      ctx.body = '<!doctype html><html><head><title>Sign-in failed</title></head><body><p id="error">Wrong user name or password.</p>' +
        '<p><a href="' + ctx.path + '">Try again</a></p></body></html>';
      return undefined;
    }
  }
  ctx.request.body = raw;
  return next();
});

const tamper = new Set(cfg.tamper || []);
const replay = new Set(cfg.replay || []);
const firstToken = new Map();
provider.use(async (ctx, next) => {
  await next();
  if (ctx.path !== '/token' || ctx.status !== 200 || !ctx.body || !ctx.body.id_token) return;
  const client = ctx.oidc && ctx.oidc.client;
  if (client && replay.has(client.clientId)) {
    if (!firstToken.has(client.clientId)) firstToken.set(client.clientId, ctx.body.id_token);
    ctx.body = { ...ctx.body, id_token: firstToken.get(client.clientId) };
    return;
  }
  if (!client || !tamper.has(client.clientId)) return;
  const parts = ctx.body.id_token.split('.');
  const sig = Buffer.from(parts[2], 'base64url');
  sig[0] ^= 1;
  parts[2] = sig.toString('base64url');
  const jwk = cfg.clients.find((c) => c.client_id === client.clientId).jwks.keys[0];
  const key = await jose.importJWK(jwk, 'RSA-OAEP-256');
  ctx.body = { ...ctx.body, id_token: await new jose.CompactEncrypt(new TextEncoder().encode(parts.join('.')))
    .setProtectedHeader({ alg: 'RSA-OAEP-256', enc: 'A256GCM', cty: 'JWT', kid: jwk.kid })
    .encrypt(key) };
});

const server = https.createServer({ cert: fs.readFileSync(cfg.cert), key: fs.readFileSync(cfg.key) }, provider.callback());
server.listen({ fd: 3 }, () => { process.stdout.write('ready\n'); });
process.stdin.on('close', () => {});
