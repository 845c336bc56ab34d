// A real OAuth 2.0 / OpenID Connect authorization server for calsync's tests.
//
// panva/oidc-provider on 127.0.0.1, configured from the JSON file named by env OIDC_CONFIG (the
// format is documented in README.md beside this file). The port comes from env PORT, else argv[2],
// else the config's "port", else 0 (= let the kernel pick one). When it listens it prints ONE JSON
// line on stdout: {"issuer": "http://127.0.0.1:PORT", "port": PORT}. Everything else (oidc-provider
// notices included) goes to stderr.
//
// What the harness adds around oidc-provider (everything else is the library's own behaviour):
// * the devInteractions login POST is answered here: the login is looked up in "accounts"; an
//   unknown login gets the login form again with an error (HTTP 200); a login listed in
//   "deny_accounts" ends the authorization request with error "deny_error" (default
//   unauthorized_client) at the client's redirect_uri; any other login signs in as that account.
// * POST /__admin/token-failure {"on": bool, "status": int} makes POST /token answer that status
//   (default 500) with {"error": "server_error"} until switched off; GET shows the state.
// * Google's access_type=offline counts as a request for the offline_access scope.
// * HTML answers carry a Content-Security-Policy limited to this origin, so a browser never
//   fetches the web fonts that oidc-provider's built-in pages import.

import { generateKeyPairSync, randomBytes, randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import * as querystring from 'node:querystring';

import Provider from 'oidc-provider';

// oidc-provider prints its notices with console.info (stdout); stdout is reserved for the one JSON
// line the test harness waits for.
console.info = (...args) => console.error(...args);

const DEFAULT_SCOPES = [
  'openid',
  'offline_access',
  'email',
  'profile',
  'https://www.googleapis.com/auth/calendar',
  'https://www.googleapis.com/auth/calendar.events',
  'https://www.googleapis.com/auth/calendar.readonly',
  'Calendars.Read',
  'Calendars.ReadWrite',
  'User.Read',
];
const SECRET_METHODS = ['client_secret_basic', 'client_secret_post'];

function fail(message) {
  console.error(`oidc test server: ${message}`);
  process.exit(2);
}

function loadConfig() {
  const path = process.env.OIDC_CONFIG;
  if (!path) fail('env OIDC_CONFIG must name a JSON configuration file');
  let config;
  try {
    config = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    fail(`cannot read ${path}: ${err.message}`);
  }
  if (!config || typeof config !== 'object') fail('the configuration must be a JSON object');
  return config;
}

function positiveInt(value, fallback, name) {
  if (value === undefined || value === null) return fallback;
  if (!Number.isInteger(value) || value <= 0) fail(`${name} must be a positive integer`);
  return value;
}

// --- accounts ---------------------------------------------------------------------------------

function buildAccounts(config) {
  const byLogin = new Map();
  const bySub = new Map();
  for (const [login, raw] of Object.entries(config.accounts || {})) {
    const entry = typeof raw === 'string' || raw === null ? { email: raw } : raw;
    const account = {
      login,
      sub: String(entry.sub || login),
      email: entry.email ?? null,
      email_verified: entry.email_verified ?? true,
    };
    if (bySub.has(account.sub)) fail(`two accounts share the sub ${account.sub}`);
    byLogin.set(login, account);
    bySub.set(account.sub, account);
  }
  const lookup = (login) => {
    if (typeof login !== 'string') return undefined;
    if (byLogin.has(login)) return byLogin.get(login);
    const folded = login.trim().toLowerCase();
    for (const account of byLogin.values()) {
      if (account.login.toLowerCase() === folded) return account;
    }
    return undefined;
  };
  return { lookup, bySub };
}

// --- clients ----------------------------------------------------------------------------------

// oidc-provider treats client_secret_basic and client_secret_post as interchangeable: a client
// registered with either one may authenticate with either one.
function buildClients(config) {
  const clients = [];
  for (const raw of config.clients || []) {
    if (!raw.client_id || !raw.client_secret) fail('every client needs client_id and client_secret');
    const method = raw.token_endpoint_auth_method ?? 'client_secret_basic';
    if (!SECRET_METHODS.includes(method)) {
      fail(`client ${raw.client_id}: token_endpoint_auth_method must be one of ${SECRET_METHODS}`);
    }
    clients.push({
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      ...raw,
      token_endpoint_auth_method: method,
    });
  }
  const introspector = config.introspection_client;
  if (introspector) {
    clients.push({
      client_id: introspector.client_id,
      client_secret: introspector.client_secret,
      grant_types: [],
      response_types: [],
      redirect_uris: [],
      token_endpoint_auth_method: 'client_secret_basic',
    });
  }
  return clients;
}

function readBody(req, limit = 64 * 1024) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    req.on('data', (chunk) => {
      size += chunk.length;
      if (size > limit) {
        reject(new Error('request body too large'));
        req.destroy();
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

// --- HTML -------------------------------------------------------------------------------------

function escapeHtml(value) {
  return String(value ?? '').replace(/[&<>"']/g, (c) => ({
    '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;',
  })[c]);
}

function page(title, body) {
  return `<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>${escapeHtml(title)}</title>
<style>body{font-family:sans-serif;max-width:28em;margin:2em auto}.error{color:#b00020}</style>
</head><body><h1>${escapeHtml(title)}</h1>
${body}
</body></html>`;
}

function loginFormAgain(submitUrl, abortUrl, login, message) {
  return page('Sign-in', `<p class="error" id="login-error">${escapeHtml(message)}</p>
<form autocomplete="off" action="${escapeHtml(submitUrl)}" method="post">
  <input type="hidden" name="prompt" value="login"/>
  <input required type="text" name="login" placeholder="Enter any login" value="${escapeHtml(login)}">
  <input required type="password" name="password" placeholder="and password">
  <button type="submit" class="login login-submit">Sign-in</button>
</form>
<a href="${escapeHtml(abortUrl)}">[ Cancel ]</a>`);
}

async function renderError(ctx, out) {
  ctx.type = 'html';
  ctx.body = page(
    'oops! something went wrong',
    Object.entries(out)
      .map(([key, value]) => `<pre class="${escapeHtml(key)}"><strong>${escapeHtml(key)}</strong>: ${escapeHtml(value)}</pre>`)
      .join('\n'),
  );
}

// --- main -------------------------------------------------------------------------------------

const config = loadConfig();
const accounts = buildAccounts(config);
const clients = buildClients(config);
const accessTokenTTL = positiveInt(config.access_token_ttl, 3600, 'access_token_ttl');
const refreshTokenTTL = positiveInt(config.refresh_token_ttl, 14 * 24 * 3600, 'refresh_token_ttl');
const idTokenTTL = positiveInt(config.id_token_ttl, 3600, 'id_token_ttl');
const refreshTokens = config.refresh_tokens ?? 'offline_access';
if (!['offline_access', 'always'].includes(refreshTokens)) {
  fail('refresh_tokens must be "offline_access" or "always"');
}
const denyAccounts = new Set(config.deny_accounts || []);
const denyError = config.deny_error || 'unauthorized_client';
const googleAccessType = config.google_access_type ?? true;
const tokenFailure = {
  on: Boolean(config.token_failure),
  status: positiveInt(config.token_failure_status, 500, 'token_failure_status'),
};
const scopes = [...new Set([...DEFAULT_SCOPES, ...(config.scopes || [])])];

const port = Number(process.env.PORT ?? process.argv[2] ?? config.port ?? 0);
if (!Number.isInteger(port) || port < 0 || port > 65535) fail(`bad port ${port}`);

const server = createServer();
server.listen(port, '127.0.0.1', () => {
  const actualPort = server.address().port;
  const issuer = `http://127.0.0.1:${actualPort}`;

  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const signingKey = { ...privateKey.export({ format: 'jwk' }), kid: randomUUID(), use: 'sig', alg: 'RS256' };

  const provider = new Provider(issuer, {
    clients,
    jwks: { keys: [signingKey] },
    cookies: {
      keys: [randomBytes(32).toString('hex')],
      // Lax, not None: over plain http a browser drops SameSite=None cookies (no Secure flag).
      long: { httpOnly: true, sameSite: 'lax' },
      short: { httpOnly: true, sameSite: 'lax' },
    },
    scopes,
    responseTypes: ['code'],
    claims: {
      openid: ['sub'],
      email: ['email', 'email_verified'],
      'https://www.googleapis.com/auth/userinfo.email': ['email', 'email_verified'],
    },
    // The ID Token carries the scope-requested claims (email) too, not only the userinfo answer.
    conformIdTokenClaims: false,
    async findAccount(ctx, sub) {
      const account = accounts.bySub.get(sub);
      if (!account) return undefined;
      return {
        accountId: account.sub,
        async claims() {
          const claims = { sub: account.sub };
          if (account.email) {
            claims.email = account.email;
            claims.email_verified = Boolean(account.email_verified);
          }
          return claims;
        },
      };
    },
    features: {
      devInteractions: { enabled: true },
      revocation: { enabled: true },
      introspection: {
        enabled: true,
        // Any authenticated (confidential) client may introspect any token: this is a test server.
        async allowedPolicy() { return true; },
      },
      // Kept at oidc-provider's default: no "resource" parameter means an opaque Access Token for
      // the userinfo endpoint carrying every granted scope (the extra scopes above included).
      resourceIndicators: { enabled: true },
    },
    pkce: {
      methods: ['S256'],
      required: () => true,
    },
    rotateRefreshToken: config.rotate_refresh_token ?? true,
    async issueRefreshToken(ctx, client, code) {
      if (!client.grantTypeAllowed('refresh_token')) return false;
      return refreshTokens === 'always' || code.scopes.has('offline_access');
    },
    expiresWithSession: async () => false,
    ttl: {
      AccessToken: accessTokenTTL,
      AuthorizationCode: 120,
      IdToken: idTokenTTL,
      RefreshToken: refreshTokenTTL,
      Interaction: 3600,
      Session: 14 * 24 * 3600,
      Grant: Math.max(refreshTokenTTL, 14 * 24 * 3600),
    },
    renderError,
  });

  provider.on('server_error', (ctx, err) => console.error('server_error', err));

  // Request log (stderr) and a same-origin-only CSP on HTML pages.
  provider.use(async (ctx, next) => {
    const started = Date.now();
    try {
      await next();
    } finally {
      if (ctx.response.is('html') && !ctx.response.get('Content-Security-Policy')) {
        ctx.set('Content-Security-Policy', "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:");
      }
      console.error(`${ctx.method} ${ctx.path} -> ${ctx.status} (${Date.now() - started} ms)`);
    }
  });

  // Admin endpoint and the token failure switch.
  provider.use(async (ctx, next) => {
    if (ctx.path === '/__admin/token-failure') {
      if (ctx.method === 'POST') {
        let body;
        try {
          body = JSON.parse((await readBody(ctx.req)) || '{}');
        } catch {
          ctx.status = 400;
          ctx.body = { error: 'invalid_request', error_description: 'expected a JSON body' };
          return;
        }
        tokenFailure.on = Boolean(body.on);
        if (body.status !== undefined) tokenFailure.status = positiveInt(body.status, 500, 'status');
      } else if (ctx.method !== 'GET') {
        ctx.status = 405;
        return;
      }
      ctx.body = { ...tokenFailure };
      return;
    }
    if (tokenFailure.on && ctx.method === 'POST' && ctx.path === '/token') {
      ctx.status = tokenFailure.status;
      ctx.body = { error: 'server_error', error_description: 'token endpoint failure injected by the test harness' };
      return;
    }
    await next();
  });

  // Google's access_type=offline: the same as asking for offline_access.
  provider.use(async (ctx, next) => {
    if (googleAccessType && ctx.method === 'GET' && ctx.path === '/auth' && ctx.query.access_type === 'offline') {
      const query = { ...ctx.query };
      const requested = String(query.scope || '').split(' ').filter(Boolean);
      if (!requested.includes('offline_access')) {
        query.scope = [...requested, 'offline_access'].join(' ');
        ctx.querystring = querystring.stringify(query);
      }
    }
    await next();
  });

  // The devInteractions login step: map the login to a configured account.
  provider.use(async (ctx, next) => {
    const match = ctx.method === 'POST' && /^\/interaction\/([^/]+)$/.exec(ctx.path);
    if (!match) {
      await next();
      return;
    }
    let details;
    try {
      details = await provider.interactionDetails(ctx.req, ctx.res);
    } catch {
      await next(); // let oidc-provider answer (session not found, expired, ...)
      return;
    }
    if (details.prompt.name !== 'login') {
      await next();
      return;
    }
    const form = querystring.parse(await readBody(ctx.req));
    const login = typeof form.login === 'string' ? form.login : '';
    const account = accounts.lookup(login);
    const submitUrl = `${issuer}/interaction/${details.uid}`;
    if (!account) {
      ctx.status = 200;
      ctx.type = 'html';
      ctx.body = loginFormAgain(submitUrl, `${submitUrl}/abort`, login, `unknown login: ${login}`);
      return;
    }
    const result = denyAccounts.has(account.login)
      ? { error: denyError, error_description: `the account ${account.login} is not supported by this client` }
      : { login: { accountId: account.sub } };
    const returnTo = await provider.interactionResult(ctx.req, ctx.res, result, { mergeWithLastSubmission: false });
    ctx.redirect(returnTo);
    ctx.status = 303;
  });

  server.on('request', provider.callback());
  process.stdout.write(`${JSON.stringify({ issuer, port: actualPort })}\n`);
});

server.on('error', (err) => fail(err.message));
for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => {
    server.close();
    server.closeAllConnections?.();
    process.exit(0);
  });
}
