// Requests to the server's own API: JSON in and out, with the session's CSRF token on every write.

export function csrfHeaders() {
  const meta = document.querySelector('meta[name="csrf-token"]');
  return meta ? { "X-CSRF-Token": meta.content } : {};
}

/** POST/PATCH `body` as JSON; {response, answer} (answer: the JSON reply, or {detail} naming the status). */
export async function sendJson(method, url, body) {
  const init = { method, headers: { ...csrfHeaders() } };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(url, init);
  const answer = await response.json().catch(() => ({ detail: `HTTP ${response.status}` }));
  return { response, answer };
}

/** The first reason FastAPI gives (a 422's first message, a string detail), else the HTTP status. */
export function reason(answer, response) {
  const detail = answer?.detail;
  if (Array.isArray(detail) && detail.length) return detail[0].msg ?? JSON.stringify(detail[0]);
  if (typeof detail === "string") return detail;
  return `HTTP ${response.status}`;
}
