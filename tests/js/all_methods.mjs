// Drives all nine External Calendar API v2 methods through the official JavaScript client
// (@wix/sdk + @wix/auto_sdk_bookings_external-calendars) against a running calsync server.
//
// Prints ONE JSON object on stdout: {"ok": bool, "unexpected": [...], "steps": {...}}.
// Each step is {"expect": "ok"|"error", "result": <SDK return value>} or
// {"expect": ..., "error": <error fields as the client reports them>}.
// Exit code: 0 = every step behaved as expected (success or error), 1 = something unexpected,
// 2 = missing environment variables. Assertions on the values are made by the pytest side
// (tests/api/test_official_client.py); this script only records.
//
// Required environment:
//   CALSYNC_API_BASE   "127.0.0.1:PORT" (the client always prepends https://)
//   CALSYNC_API_KEY    API key, sent raw in the Authorization header
//   CALSYNC_SITE_ID    sent as wix-site-id
//   SCHEDULE_ID        schedule registered on the server
//   PROVIDER_ID        a CalDAV provider (credentials only)
//   DAV_EMAIL, DAV_PASSWORD   account on that CalDAV server
//   REDIRECT_URL       used for the (expected to fail) connectByOAuth call
// Optional:
//   EVENTS_FROM, EVENTS_TO    List Events window (RFC 3339); default now .. now + 35 days
//   EVENTS_PAGE_LIMIT         cursorPaging.limit (default 2)
//   EVENTS_MIN_COUNT, EVENTS_SETTLE_SECONDS   if set, repeat the whole paged List Events
//                             traversal until it yields >= EVENTS_MIN_COUNT events or the
//                             settle time is used up (default 0: one traversal only)
//   EXPORT_MIN_COUNT          if set, turn export into a dedicated calendar on with
//                             updateSyncConfig and wait (calsync's /v1 sync report) until that
//                             many sessions are exported
// TLS: point NODE_EXTRA_CA_CERTS at the server's self-signed certificate (SAN IP:127.0.0.1).

import { createClient, ApiKeyStrategy } from '@wix/sdk';
import * as externalCalendars from '@wix/auto_sdk_bookings_external-calendars';
import { describeError } from './describe_error.mjs';

const REQUIRED = [
  'CALSYNC_API_BASE',
  'CALSYNC_API_KEY',
  'CALSYNC_SITE_ID',
  'SCHEDULE_ID',
  'PROVIDER_ID',
  'DAV_EMAIL',
  'DAV_PASSWORD',
  'REDIRECT_URL',
];
const MAX_PAGES = 50;

const missing = REQUIRED.filter((name) => !process.env[name]);
if (missing.length) {
  console.log(JSON.stringify({ ok: false, unexpected: [{ step: 'env', missing }], steps: {} }));
  process.exit(2);
}
const env = process.env;
const scheduleId = env.SCHEDULE_ID;
const providerId = env.PROVIDER_ID;
const now = Date.now();
const eventsFrom = env.EVENTS_FROM || new Date(now).toISOString();
const eventsTo = env.EVENTS_TO || new Date(now + 35 * 86400 * 1000).toISOString();
const pageLimit = Number(env.EVENTS_PAGE_LIMIT || 2);
const minCount = Number(env.EVENTS_MIN_COUNT || 0);
const settleMs = Number(env.EVENTS_SETTLE_SECONDS || 0) * 1000;
const exportMinCount = Number(env.EXPORT_MIN_COUNT || 0);

const client = createClient({
  host: { apiBaseUrl: env.CALSYNC_API_BASE },
  auth: ApiKeyStrategy({ apiKey: env.CALSYNC_API_KEY, siteId: env.CALSYNC_SITE_ID }),
  modules: { externalCalendars },
});
const ec = client.externalCalendars;

const steps = {};
const unexpected = [];

async function step(name, expect, call) {
  try {
    const result = await call();
    steps[name] = { expect, result };
    if (expect !== 'ok') unexpected.push({ step: name, reason: 'expected an error, call succeeded' });
    return result;
  } catch (e) {
    const error = describeError(e);
    steps[name] = { expect, error };
    if (expect !== 'error') unexpected.push({ step: name, reason: 'call failed', error });
    return undefined;
  }
}

async function listAllEvents() {
  const pages = [];
  let options = {
    from: eventsFrom,
    to: eventsTo,
    scheduleIds: [scheduleId],
    fieldsets: ['OWN_PI'],
    cursorPaging: { limit: pageLimit },
  };
  for (let i = 0; i < MAX_PAGES; i += 1) {
    const sent = JSON.parse(JSON.stringify(options));
    const result = await ec.listEvents(options); // throws on failure; caller records it
    pages.push({ request: sent, result });
    const next = result?.pagingMetadata?.cursors?.next;
    if (!result?.pagingMetadata?.hasNext || !next) return pages;
    options = { cursorPaging: { cursor: next, limit: pageLimit } };
  }
  throw new Error(`more than ${MAX_PAGES} pages of events`);
}

// calsync's own /v1 sync report (not part of the official client): wait until the worker has
// exported at least EXPORT_MIN_COUNT sessions into the external calendar.
async function waitForExport(connectionId) {
  const deadline = Date.now() + 20000;
  for (;;) {
    const response = await fetch(`https://${env.CALSYNC_API_BASE}/v1/connections/${connectionId}/sync`, {
      headers: { Authorization: env.CALSYNC_API_KEY },
    });
    const body = await response.json();
    const exported = body?.sync?.export?.exportedEvents ?? 0;
    if (exported >= exportMinCount || Date.now() > deadline) return body;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

async function main() {
  await step('listProviders', 'ok', () => ec.listProviders());

  const connected = await step('connectByCredentials', 'ok', () =>
    ec.connectByCredentials(providerId, scheduleId, env.DAV_EMAIL, env.DAV_PASSWORD),
  );
  const connectionId = connected?.connection?._id;
  if (!connectionId) {
    unexpected.push({ step: 'connectByCredentials', reason: 'no connection._id in the response' });
    return;
  }

  await step('getConnection', 'ok', () => ec.getConnection(connectionId));
  await step('listConnections', 'ok', () => ec.listConnections({ scheduleIds: [scheduleId] }));
  const listed = await step('listCalendars', 'ok', () => ec.listCalendars(connectionId));
  const calendars = (listed?.calendars ?? []).map((calendar) => ({ _id: calendar._id }));
  await step('updateSyncConfig', 'ok', () =>
    ec.updateSyncConfig(connectionId, {
      listEventFromCalendars: { enabled: true, calendars: { calendars } },
      syncToCalendar: { enabled: false },
    }),
  );

  const started = Date.now();
  let attempts = 0;
  await step('listEvents', 'ok', async () => {
    for (;;) {
      attempts += 1;
      const pages = await listAllEvents();
      const total = pages.reduce((n, page) => n + (page.result?.events?.length ?? 0), 0);
      if (total >= minCount || Date.now() - started >= settleMs) return { attempts, pages };
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
  });

  if (exportMinCount > 0) {
    await step('updateSyncConfigExport', 'ok', () =>
      ec.updateSyncConfig(connectionId, {
        syncToCalendar: { enabled: true, dedicatedCalendar: {} },
      }),
    );
    await step('exportReport', 'ok', () => waitForExport(connectionId));
  }

  await step('connectByOAuth', 'error', () =>
    ec.connectByOAuth(providerId, scheduleId, env.REDIRECT_URL),
  );
  await step('connectByCredentialsWrongPassword', 'error', () =>
    ec.connectByCredentials(providerId, scheduleId, env.DAV_EMAIL, `${env.DAV_PASSWORD}-wrong`),
  );
  await step('disconnect', 'ok', () => ec.disconnect(connectionId));
  await step('getConnectionAfterDisconnect', 'ok', () => ec.getConnection(connectionId));

  // Beyond the nine-call walk: documented/recommended errors as the client reports them.
  await step('disconnectAgain', 'error', () => ec.disconnect(connectionId));
  await step('listEventsAfterDisconnect', 'ok', () =>
    ec.listEvents({ from: eventsFrom, to: eventsTo, scheduleIds: [scheduleId] }),
  );
  await step('getConnectionUnknown', 'error', () =>
    ec.getConnection('calsync-test-no-such-connection'),
  );
}

try {
  await main();
} catch (e) {
  unexpected.push({ step: 'script', reason: 'crashed', error: describeError(e) });
}
const ok = unexpected.length === 0;
process.stdout.write(`${JSON.stringify({ ok, unexpected, steps })}\n`);
process.exitCode = ok ? 0 : 1;
