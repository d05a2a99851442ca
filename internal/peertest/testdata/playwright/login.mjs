// Signs users in through the dev IdPs' login pages in headless Chromium
// (Debian's, never a downloaded one), as a person would, and reports the
// page each login ends on. Its job comes as JSON on stdin:
//   {chromium, out, logins: [{name, idp: "saml"|"oidc", start, choose,
//    user, password, wrong_password, landing}]}
// For each login, in a fresh browser context: open start (a page of the
// node's sso host); when choose is set, the node shows its login chooser
// and the link with that text is clicked; wait for the IdP's login form, type a wrong password
// first when wrong_password is set (and wait for the IdP's refusal), then
// the right one; on OIDC's consent page, allow; wait until the browser is
// back on landing (the node's page, URL without query) and its table
// shows a user. Screenshots go to out as NAME-N-STEP.png. One JSON line
// per login on stdout: {name, user, directory, groups, url, refused}.
// Failures exit 1 with the reason on stderr; every wait is bounded.
import fs from 'node:fs';
import path from 'node:path';
import { chromium } from 'playwright-core';

const job = JSON.parse(fs.readFileSync(0, 'utf8'));
const waitLimit = 30_000; // a failure bound, never a pause

const args = [];
// Chromium's sandbox needs an unprivileged user; CI runs as root.
if (process.getuid && process.getuid() === 0) args.push('--no-sandbox');

const browser = await chromium.launch({ executablePath: job.chromium, headless: true, args, timeout: waitLimit });
try {
  for (const login of job.logins) {
    process.stdout.write(JSON.stringify(await run(login)) + '\n');
  }
} finally {
  await browser.close();
}

async function run(login) {
  // The node's certificate comes from the dev CA, which this browser does
  // not know: its errors are ignored here, as a developer's browser
  // would be told to trust the CA.
  const context = await browser.newContext({ ignoreHTTPSErrors: true });
  context.setDefaultTimeout(waitLimit);
  const page = await context.newPage();
  let n = 0;
  const shot = async (step) => {
    n += 1;
    await page.screenshot({ path: path.join(job.out, `${login.name}-${n}-${step}.png`), fullPage: true });
  };
  const userField = login.idp === 'saml' ? 'input[name="username"]' : 'input[name="login"]';
  const signIn = async (password) => {
    await page.locator(userField).fill(login.user);
    await page.locator('input[name="password"]').fill(password);
    await page.locator('button[type="submit"]').click();
  };
  try {
    await page.goto(login.start);
    if (login.choose) {
      const link = page.locator('a', { hasText: login.choose });
      await link.waitFor();
      await shot('chooser');
      await link.click();
    }
    await page.locator(userField).waitFor();
    await shot('idp-login');
    let refused = false;
    if (login.wrong_password) {
      await signIn(login.wrong_password);
      await page.locator('#error').waitFor();
      refused = (await page.locator('#error').textContent()).includes('Wrong user name or password');
      await shot('wrong-password');
      if (login.idp === 'oidc') {
        await page.locator('a', { hasText: 'Try again' }).click();
      }
      await page.locator(userField).waitFor();
    }
    await signIn(login.password);
    if (login.idp === 'oidc') {
      await page.locator('input[name="prompt"][value="consent"]').waitFor({ state: 'attached' });
      await shot('consent');
      await page.locator('button[type="submit"]').click();
    }
    await page.waitForURL((u) => u.origin + u.pathname === login.landing);
    const cell = (k) => page.locator('tr', { has: page.locator('th', { hasText: new RegExp(`^${k}$`) }) }).locator('td');
    await cell('user').waitFor();
    await shot('engine-page');
    return {
      name: login.name, url: page.url(), refused,
      user: await cell('user').textContent(),
      directory: await cell('directory').textContent(),
      groups: await cell('groups').textContent(),
    };
  } catch (e) {
    await shot('failed').catch(() => {});
    throw new Error(`${login.name}: ${e.message} (at ${page.url()})`);
  } finally {
    await context.close();
  }
}
