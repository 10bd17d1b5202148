// Live streams: an EventSource that says when it is interrupted, opens again when the browser gives up on it,
// closes when the page is left and reloads the page when it comes back from the back/forward cache.

const RETRY_MS = [1000, 2000, 5000, 10000, 30000];

/**
 * Follow `url()` (a function: asked again on every reopen, so it can say where to resume); `handlers` maps
 * event names to functions of the parsed data. `line`: an element that says how the connection is.
 * `gone`: asked (async) when the browser gave up on the stream; true means there is nothing left to follow
 * (the run was deleted: its stream answers 404), so no retry. Returns {close()}.
 */
export function follow(url, handlers, line = null, gone = null) {
  let source = null;
  let failures = 0;
  let timer = null;
  let closed = false;

  const say = (text) => { if (line) line.textContent = text; };

  function open() {
    source = new EventSource(url());
    source.addEventListener("open", () => {
      failures = 0;
      say("");
    });
    source.addEventListener("error", () => {
      if (source.readyState !== EventSource.CLOSED) {
        say("Live updates interrupted: reconnecting…");
        return;
      }
      // The browser has given up (an HTTP error, the server gone): try again, less and less often, unless
      // what it followed is gone for good.
      const wait = RETRY_MS[Math.min(failures, RETRY_MS.length - 1)];
      failures += 1;
      say("Live updates interrupted: reconnecting…");
      timer = window.setTimeout(async () => {
        if (closed) return;
        if (gone && await gone().catch(() => false)) {
          close();
          return;
        }
        open();
      }, wait);
    });
    for (const [name, handle] of Object.entries(handlers)) {
      source.addEventListener(name, (event) => handle(event.data ? JSON.parse(event.data) : null));
    }
  }

  function close() {
    closed = true;
    window.clearTimeout(timer);
    source?.close();
  }

  open();
  window.addEventListener("pagehide", close);
  return { close };
}

// Back from the back/forward cache: the stream was closed while away, so what is shown may be stale.
window.addEventListener("pageshow", (event) => { if (event.persisted) window.location.reload(); });
