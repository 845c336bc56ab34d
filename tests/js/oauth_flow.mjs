// Drives Connect By OAuth through the official JavaScript client
// (@wix/sdk + @wix/auto_sdk_bookings_external-calendars) against a running calsync server.
// The browser leg (login + consent at the authorization server, the return to calsync's
// /oauth/callback) happens between the phases and is not the client's business: the Python
// side (tests/api/test_official_client_oauth.py) does it.
//
// Usage: node oauth_flow.mjs <phase>
//   start    connectByOAuth(PROVIDER_ID, SCHEDULE_ID, REDIRECT_URL); prints the oauthUrl
//   finish   getConnection(CONNECTION_ID), listCalendars(CONNECTION_ID) and a paged
//            listEvents({from, to, scheduleIds: [SCHEDULE_ID], fieldsets: ['OWN_PI']})
//   list     listConnections({scheduleIds: [SCHEDULE_ID]})
//
// Prints ONE JSON object on stdout:
//   {"phase", "ok", "unexpected": [...], "steps": {<name>: {"result"} | {"error"}}}
// and, for `start`, also "oauthUrl" at the top level. Errors are recorded with the fields the
// client reports (status, requestId, code, description, data, validationError, message).
// Exit code: 0 = every call succeeded, 1 = a call failed (or returned something unusable),
// 2 = bad usage / missing environment variables. Assertions on the values are made by pytest.
//
// Environment (all phases): CALSYNC_API_BASE ("127.0.0.1:PORT"; the client prepends https://),
// CALSYNC_API_KEY, CALSYNC_SITE_ID, SCHEDULE_ID.
//   start:  PROVIDER_ID, REDIRECT_URL
//   finish: CONNECTION_ID, EVENTS_FROM, EVENTS_TO (RFC 3339 strings; a Date would be dropped),
//           optional EVENTS_PAGE_LIMIT (cursorPaging.limit, default 100)
// TLS: point NODE_EXTRA_CA_CERTS at the server's self-signed certificate (SAN IP:127.0.0.1).

import { createClient, ApiKeyStrategy } from '@wix/sdk';
import * as externalCalendars from '@wix/auto_sdk_bookings_external-calendars';
import { describeError } from './describe_error.mjs';

const PHASES = {
  start: ['PROVIDER_ID', 'REDIRECT_URL'],
  finish: ['CONNECTION_ID', 'EVENTS_FROM', 'EVENTS_TO'],
  list: [],
};
const COMMON = ['CALSYNC_API_BASE', 'CALSYNC_API_KEY', 'CALSYNC_SITE_ID', 'SCHEDULE_ID'];
const MAX_PAGES = 50;

const phase = process.argv[2];
const env = process.env;
const out = { phase: phase ?? null, ok: false, unexpected: [], steps: {} };

function report(code) {
  out.ok = code === 0 && out.unexpected.length === 0;
  process.stdout.write(`${JSON.stringify(out)}\n`);
  process.exitCode = out.ok ? 0 : code || 1;
}

async function step(name, call) {
  try {
    const result = await call();
    out.steps[name] = { result };
    return result;
  } catch (e) {
    const error = describeError(e);
    out.steps[name] = { error };
    out.unexpected.push({ step: name, reason: 'call failed', error });
    return undefined;
  }
}

if (!Object.hasOwn(PHASES, phase ?? '')) {
  out.unexpected.push({ step: 'usage', reason: `phase must be one of ${Object.keys(PHASES)}` });
  report(2);
} else {
  const missing = [...COMMON, ...PHASES[phase]].filter((name) => !env[name]);
  if (missing.length) {
    out.unexpected.push({ step: 'env', reason: 'missing environment variables', missing });
    report(2);
  } else {
    try {
      await run();
      report(0);
    } catch (e) {
      out.unexpected.push({ step: 'script', reason: 'crashed', error: describeError(e) });
      report(1);
    }
  }
}

async function run() {
  const client = createClient({
    host: { apiBaseUrl: env.CALSYNC_API_BASE },
    auth: ApiKeyStrategy({ apiKey: env.CALSYNC_API_KEY, siteId: env.CALSYNC_SITE_ID }),
    modules: { externalCalendars },
  });
  const ec = client.externalCalendars;
  const scheduleId = env.SCHEDULE_ID;

  if (phase === 'start') {
    // Positional, provider ID first (WIRE-NOTES.md section 1).
    const result = await step('connectByOAuth', () =>
      ec.connectByOAuth(env.PROVIDER_ID, scheduleId, env.REDIRECT_URL),
    );
    if (result === undefined) return;
    if (typeof result?.oauthUrl !== 'string' || !result.oauthUrl) {
      out.unexpected.push({ step: 'connectByOAuth', reason: 'no oauthUrl in the response' });
      return;
    }
    out.oauthUrl = result.oauthUrl;
    return;
  }

  if (phase === 'list') {
    await step('listConnections', () => ec.listConnections({ scheduleIds: [scheduleId] }));
    return;
  }

  // finish
  const connectionId = env.CONNECTION_ID;
  await step('getConnection', () => ec.getConnection(connectionId));
  await step('listCalendars', () => ec.listCalendars(connectionId));
  const limit = Number(env.EVENTS_PAGE_LIMIT || 100);
  await step('listEvents', async () => {
    const pages = [];
    let options = {
      from: env.EVENTS_FROM,
      to: env.EVENTS_TO,
      scheduleIds: [scheduleId],
      fieldsets: ['OWN_PI'],
      cursorPaging: { limit },
    };
    for (let i = 0; i < MAX_PAGES; i += 1) {
      const sent = JSON.parse(JSON.stringify(options));
      const result = await ec.listEvents(options);
      pages.push({ request: sent, result });
      const next = result?.pagingMetadata?.cursors?.next;
      if (!result?.pagingMetadata?.hasNext || !next) return { pages };
      options = { cursorPaging: { cursor: next, limit } };
    }
    throw new Error(`more than ${MAX_PAGES} pages of events`);
  });
}
