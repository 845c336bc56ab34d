// The error fields the official client exposes (see WIRE-NOTES.md, "Errors"), as plain JSON:
// shared by the harness scripts that record what the client reports.
export function describeError(e) {
  if (e === null || typeof e !== 'object') return { thrown: String(e) };
  const app = e.details?.applicationError;
  const validation = e.details?.validationError;
  const described = {
    status: e.status ?? null,
    requestId: e.requestId ?? null,
    code: app?.code ?? e.code ?? null,
    description: app?.description ?? null,
    data: app?.data ?? null,
    validationError: validation ?? null,
    message: typeof e.message === 'string' ? e.message : null,
  };
  if (e.runtimeError) described.runtimeError = String(e.runtimeError.cause ?? e.runtimeError);
  return described;
}
