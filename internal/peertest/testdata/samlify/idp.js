// An independent SAML 2.0 identity provider (samlify) for the SAML
// solution's tests, on loopback. Usage: node idp.js key.pem cert.pem
// other-key.pem other-cert.pem [strict]; it prints "listening <base URL>"
// once bound. strict: AuthnRequests must be signed by the SP (its metadata's
// signing certificate), and assertions are encrypted to the SP's
// encryption certificate (RSA-OAEP, AES-128-GCM).
//   GET  /metadata     the IdP's metadata (signing certificate: cert.pem)
//   POST /sp           the SP's metadata (XML body) to answer
//   GET  /sso          an AuthnRequest over HTTP-Redirect; answers for
//                      alice with the response over binding=post (an
//                      auto-submitting form) or binding=redirect (302), as
//                      variant says: ok, wrongkey (signed with
//                      other-key.pem), expired, audience (another SP),
//                      inresponseto (an id the SP never sent).
//   GET  /initiate     an IdP-initiated login (no AuthnRequest, no
//                      InResponseTo) over HTTP-POST, with RelayState relay.
// A further argument "interactive" (after strict, or after an empty
// mode: node idp.js ... '' interactive) makes /sso a login page instead,
// for people and browsers (edgefort-dev, the browser test):
//   GET  /sso          checks the AuthnRequest and shows a form (user name,
//                      password) that posts to /sso/login.
//   POST /sso/login    the dev users below with their fixed passwords: the
//                      response for the user over HTTP-POST; a wrong
//                      password is a 401 with the form again.
// Single logout (the SP's logout messages must be signed by its metadata's
// signing certificate; the IdP signs its own):
//   GET  /slo          the SP's LogoutRequest over HTTP-Redirect (answered
//                      with a signed LogoutResponse, 302 to the SP's SLO
//                      endpoint; variant=inresponseto: one that answers
//                      another request), or the SP's LogoutResponse to a logout
//                      the IdP started (answered 200 with JSON
//                      {in_response_to} once its signature verified).
//   GET  /slo/initiate an IdP-initiated logout of the last login's NameID
//                      and SessionIndex, over binding=redirect (302) or
//                      binding=post (a form), as variant says: ok, unsigned,
//                      wrongkey (signed with other-key.pem).
//   GET  /slo/last     JSON of the last LogoutRequest the SP sent
//                      {name_id, session_index, login_session_index (the
//                      last login's)}.
'use strict';
const http = require('http');
const fs = require('fs');
const crypto = require('crypto');
const samlify = require('samlify');
const validator = require('@authenio/samlify-xmllint-wasm');

samlify.setSchemaValidator(validator);

const [keyFile, certFile, otherKeyFile, otherCertFile, mode] = process.argv.slice(2);
const strict = mode === 'strict';
const interactive = process.argv.slice(6).includes('interactive');
const server = http.createServer();
let sp = null;
let idp = null;
let otherIdp = null;
let sloSP = null; // the SP, its logout messages signed
let sloIdp = null;
let sloOtherIdp = null;
let lastLogin = null; // {nameID, sessionIndex} of the last login response
let lastLogout = null; // the last LogoutRequest the SP sent

function makeIdP(base, key, cert, extra) {
  return samlify.IdentityProvider({
    ...extra,
    entityID: base + '/metadata',
    privateKey: fs.readFileSync(key),
    signingCert: fs.readFileSync(cert),
    singleSignOnService: [{ Binding: samlify.Constants.namespace.binding.redirect, Location: base + '/sso' }],
    singleLogoutService: [{ Binding: samlify.Constants.namespace.binding.redirect, Location: base + '/slo' }],
    nameIDFormat: ['urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified'],
    wantAuthnRequestsSigned: strict,
    isAssertionEncrypted: strict,
    dataEncryptionAlgorithm: samlify.Constants.algorithms.encryption.data.AES_128_GCM,
  });
}

const escapeHTML = (s) => String(s).replace(/[&<>"']/g, (c) => '&#' + c.charCodeAt(0) + ';');

// The users of the interactive mode, with fixed dev passwords (printed by
// edgefort-dev's banner; never anything but a dev IdP's).
const users = {
  alice: { password: 'alice-dev', groups: ['users', 'staff'] },
  bob: { password: 'bob-dev', groups: ['analysts'] },
};

function attributes(user = 'alice') {
  const attr = (name, values) => '<saml:Attribute Name="' + name + '">' +
    values.map((v) => '<saml:AttributeValue xsi:type="xs:string">' + v + '</saml:AttributeValue>').join('') +
    '</saml:Attribute>';
  return '<saml:AttributeStatement>' + attr('uid', [user]) + attr('dir', ['corp']) +
    attr('groups', users[user].groups) + '</saml:AttributeStatement>';
}

// replacement fills samlify's login response template as variant says.
function replacement(requestID, acs, spEntityID, issuer, variant, user = 'alice') {
  return (template) => {
    const shift = variant === 'expired' ? -3600 * 1000 : 0;
    const now = new Date(Date.now() + shift);
    const later = new Date(now.getTime() + 5 * 60 * 1000);
    const id = '_' + crypto.randomUUID();
    const values = {
      ID: id,
      AssertionID: '_' + crypto.randomUUID(),
      Destination: acs,
      SubjectRecipient: acs,
      Issuer: issuer,
      Audience: variant === 'audience' ? 'https://other-sp.example/metadata' : spEntityID,
      IssueInstant: now.toISOString(),
      StatusCode: samlify.Constants.StatusCode.Success,
      ConditionsNotBefore: now.toISOString(),
      ConditionsNotOnOrAfter: later.toISOString(),
      SubjectConfirmationDataNotOnOrAfter: later.toISOString(),
      NameIDFormat: 'urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified',
      NameID: user + '@corp.example',
      InResponseTo: variant === 'inresponseto' ? '_' + crypto.randomUUID() : requestID || null,
      AuthnStatement: '',
      AttributeStatement: '',
    };
    // replaceTagsByValue escapes values: the statements (XML) go in after.
    lastLogin = { nameID: values.NameID, sessionIndex: id };
    const statements = '<saml:AuthnStatement AuthnInstant="' + now.toISOString() + '" SessionIndex="' + id +
      '"><saml:AuthnContext><saml:AuthnContextClassRef>urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport</saml:AuthnContextClassRef></saml:AuthnContext></saml:AuthnStatement>' +
      attributes(user);
    const context = samlify.SamlLib.replaceTagsByValue(template, values).replace('</saml:Assertion>', statements + '</saml:Assertion>');
    return { id, context };
  };
}

// signedOctets are the HTTP-Redirect binding's signed octets, taken from
// the raw query as sent (SAML bindings §3.4.4.1).
function signedOctets(rawURL) {
  const parts = (rawURL.split('?')[1] || '').split('&');
  const pick = (name) => parts.find((p) => p.startsWith(name + '='));
  return ['SAMLRequest', 'RelayState', 'SigAlg'].map(pick).filter(Boolean).join('&');
}

async function sso(req, res, url) {
  const initiated = url.pathname === '/initiate';
  const binding = initiated ? 'post' : url.searchParams.get('binding') || 'post';
  const variant = url.searchParams.get('variant') || 'ok';
  const query = Object.fromEntries(url.searchParams);
  const info = initiated ? { extract: { request: { id: '' } } } :
    await idp.parseLoginRequest(sp, 'redirect', { query, octetString: signedOctets(req.url) });
  const relayState = initiated ? query.relay : query.RelayState;
  const signer = variant === 'wrongkey' ? otherIdp : idp;
  const acs = sp.entityMeta.getAssertionConsumerService(binding);
  const rep = replacement(info.extract.request.id, acs, sp.entityMeta.getEntityID(), idp.entityMeta.getEntityID(), variant);
  const out = await signer.createLoginResponse(sp, info, binding, {}, { customTagReplacement: rep, relayState });
  if (binding === 'redirect') {
    res.writeHead(302, { Location: out.context });
    res.end();
    return;
  }
  postForm(res, out, 'SAMLResponse', 'Signed in as alice.');
}

// postForm answers with the HTTP-POST binding: a form that submits out's
// message (as field, with its RelayState) to its endpoint on load.
function postForm(res, out, field, text) {
  res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8', 'Cache-Control': 'no-store' });
  res.end('<!doctype html><html><body onload="document.forms[0].submit()">' +
    '<form method="post" action="' + escapeHTML(out.entityEndpoint) + '">' +
    '<input type="hidden" name="' + field + '" value="' + escapeHTML(out.context) + '">' +
    '<input type="hidden" name="RelayState" value="' + escapeHTML(out.relayState || '') + '">' +
    (text ? '<p>' + escapeHTML(text) + '</p>' : '') + '<button type="submit">Continue</button></form></body></html>');
}

// pending holds the AuthnRequests of the interactive mode that wait for
// their user's password, by a random key the form carries (bounded: the
// oldest go first).
const pending = new Map();
const maxPending = 1000;

function loginPage(res, status, key, message) {
  res.writeHead(status, { 'Content-Type': 'text/html; charset=utf-8', 'Cache-Control': 'no-store' });
  res.end('<!doctype html><html><head><title>Dev SAML IdP: sign in</title></head><body>' +
    '<h1>Dev SAML IdP (samlify)</h1>' + (message ? '<p id="error">' + escapeHTML(message) + '</p>' : '') +
    '<form method="post" action="/sso/login">' +
    '<input type="hidden" name="key" value="' + escapeHTML(key) + '">' +
    '<label>User name <input name="username" autocomplete="username" autofocus></label> ' +
    '<label>Password <input name="password" type="password" autocomplete="current-password"></label> ' +
    '<button type="submit">Sign in</button></form></body></html>');
}

// showLogin checks the AuthnRequest as /sso does, keeps it and asks who
// signs in.
async function showLogin(req, res, url) {
  const query = Object.fromEntries(url.searchParams);
  const info = await idp.parseLoginRequest(sp, 'redirect', { query, octetString: signedOctets(req.url) });
  const key = crypto.randomUUID();
  pending.set(key, { info, relayState: query.RelayState });
  if (pending.size > maxPending) pending.delete(pending.keys().next().value);
  loginPage(res, 200, key, '');
}

// login answers the kept AuthnRequest for the user whose password is
// right, over HTTP-POST (an auto-submitting form).
async function login(res, body) {
  const form = new URLSearchParams(body);
  const entry = pending.get(form.get('key') || '');
  if (!entry) {
    res.writeHead(400, { 'Content-Type': 'text/plain' });
    res.end('unknown or used login: start again from the service');
    return;
  }
  const user = form.get('username') || '';
  if (!Object.hasOwn(users, user) || users[user].password !== form.get('password')) {
    loginPage(res, 401, form.get('key'), 'Wrong user name or password.');
    return;
  }
  pending.delete(form.get('key'));
  const acs = sp.entityMeta.getAssertionConsumerService('post');
  const rep = replacement(entry.info.extract.request.id, acs, sp.entityMeta.getEntityID(), idp.entityMeta.getEntityID(), 'ok', user);
  const out = await idp.createLoginResponse(sp, entry.info, 'post', {}, { customTagReplacement: rep, relayState: entry.relayState });
  postForm(res, out, 'SAMLResponse', 'Signed in as ' + user + '.');
}

// octets are the HTTP-Redirect binding's signed octets of a message param.
function octets(rawURL, param) {
  const parts = (rawURL.split('?')[1] || '').split('&');
  const pick = (name) => parts.find((p) => p.startsWith(name + '='));
  return [param, 'RelayState', 'SigAlg'].map(pick).filter(Boolean).join('&');
}

async function slo(req, res, url) {
  const query = Object.fromEntries(url.searchParams);
  const json = (code, v) => { res.writeHead(code, { 'Content-Type': 'application/json' }); res.end(JSON.stringify(v)); };
  if (url.pathname === '/slo/last') {
    json(200, lastLogout);
  } else if (url.pathname === '/slo/initiate') {
    const variant = query.variant || 'ok';
    const binding = query.binding || 'redirect';
    const signer = variant === 'wrongkey' ? sloOtherIdp : sloIdp;
    const target = variant === 'unsigned' ? sp : sloSP;
    const user = { logoutNameID: lastLogin.nameID, sessionIndex: lastLogin.sessionIndex };
    const out = signer.createLogoutRequest(target, binding, user, query.relay || '');
    if (binding === 'redirect') {
      res.writeHead(302, { Location: out.context });
      res.end();
      return;
    }
    postForm(res, out, 'SAMLRequest', '');
  } else if (query.SAMLRequest) {
    const info = await sloIdp.parseLogoutRequest(sloSP, 'redirect', { query, octetString: octets(req.url, 'SAMLRequest') });
    lastLogout = { name_id: info.extract.nameID, session_index: info.extract.sessionIndex,
      login_session_index: lastLogin && lastLogin.sessionIndex };
    // variant=inresponseto: the response answers another request.
    const other = query.variant === 'inresponseto' ? (template) => {
      const id = '_' + crypto.randomUUID();
      return { id, context: samlify.SamlLib.replaceTagsByValue(template, {
        ID: id, Destination: sloSP.entityMeta.getSingleLogoutService('redirect'), Issuer: sloIdp.entityMeta.getEntityID(),
        IssueInstant: new Date().toISOString(), StatusCode: samlify.Constants.StatusCode.Success, InResponseTo: '_' + crypto.randomUUID(),
      }) };
    } : undefined;
    const out = sloIdp.createLogoutResponse(sloSP, info, 'redirect', query.RelayState || '', other);
    res.writeHead(302, { Location: out.context });
    res.end();
  } else if (query.SAMLResponse) {
    const info = await sloIdp.parseLogoutResponse(sloSP, 'redirect', { query, octetString: octets(req.url, 'SAMLResponse') });
    json(200, { in_response_to: info.extract.response.inResponseTo });
  } else {
    res.writeHead(400);
    res.end();
  }
}

server.on('request', (req, res) => {
  const url = new URL(req.url, 'http://' + req.headers.host);
  const chunks = [];
  let size = 0;
  req.on('data', (c) => {
    size += c.length;
    if (size > 1 << 20) req.destroy(); // a dev peer, but bounded all the same
    else chunks.push(c);
  });
  req.on('end', async () => {
    try {
      if (req.method === 'GET' && url.pathname === '/metadata') {
        res.writeHead(200, { 'Content-Type': 'application/samlmetadata+xml' });
        res.end(idp.getMetadata());
      } else if (req.method === 'POST' && url.pathname === '/sp') {
        sp = samlify.ServiceProvider({ metadata: Buffer.concat(chunks).toString() });
        sloSP = samlify.ServiceProvider({ metadata: Buffer.concat(chunks).toString(),
          wantLogoutRequestSigned: true, wantLogoutResponseSigned: true });
        res.writeHead(204);
        res.end();
      } else if (interactive && req.method === 'GET' && url.pathname === '/sso' && sp) {
        await showLogin(req, res, url);
      } else if (interactive && req.method === 'POST' && url.pathname === '/sso/login' && sp) {
        await login(res, Buffer.concat(chunks).toString());
      } else if (req.method === 'GET' && (url.pathname === '/sso' || url.pathname === '/initiate') && sp) {
        await sso(req, res, url);
      } else if (req.method === 'GET' && url.pathname.startsWith('/slo') && sp) {
        await slo(req, res, url);
      } else {
        res.writeHead(404);
        res.end();
      }
    } catch (e) {
      process.stderr.write('idp: ' + (e && e.stack ? e.stack : e) + '\n');
      res.writeHead(500, { 'Content-Type': 'text/plain' });
      res.end(String(e));
    }
  });
});

server.listen(0, '127.0.0.1', () => {
  const base = 'http://127.0.0.1:' + server.address().port;
  idp = makeIdP(base, keyFile, certFile);
  otherIdp = makeIdP(base, otherKeyFile, otherCertFile);
  const slo = { wantLogoutRequestSigned: true, wantLogoutResponseSigned: true };
  sloIdp = makeIdP(base, keyFile, certFile, slo);
  sloOtherIdp = makeIdP(base, otherKeyFile, otherCertFile, slo);
  process.stdout.write('listening ' + base + '\n');
});
