// A Spin HTTP component written with Spin's JavaScript SDK (the `http-ts` template, no router).
// Every route answers plain text; ../README.md lists what each returns.
import * as kv from 'fermyon:spin/key-value@2.0.0';
import * as variables from 'fermyon:spin/variables@2.0.0';

const text = (status: number, body: string): Response =>
  new Response(body, { status, headers: { 'content-type': 'text/plain' } });

// componentize-js throws a WIT `result`'s error as an exception whose `payload` is the
// variant; show its tag (and value) the way the Rust apps print the SDK's Debug text.
function describe(e: unknown): string {
  const payload = (e as { payload?: { tag: string; val?: unknown } })?.payload;
  if (payload && typeof payload.tag === 'string') {
    return payload.val === undefined ? payload.tag : `${payload.tag}(${payload.val})`;
  }
  return String(e);
}

// Store `default`: get `counter`, add one, set it, answer the new value.
function counter(): Response {
  const store = kv.Store.open('default');
  const old = store.get('counter');
  const next = (old ? Number(new TextDecoder().decode(old)) : 0) + 1;
  store.set('counter', new TextEncoder().encode(String(next)));
  return text(200, String(next));
}

// An outbound GET to `url`, answered as `status=CODE\nBODY`.
async function outbound(url: string | null): Promise<Response> {
  if (!url) return text(400, 'error: no url');
  try {
    const res = await fetch(url);
    return text(200, `status=${res.status}\n${await res.text()}`);
  } catch (e) {
    return text(502, `error: ${describe(e)}`);
  }
}

async function handle(request: Request): Promise<Response> {
  const url = new URL(request.url);
  if (request.method !== 'GET') return text(405, 'method not allowed');
  try {
    switch (url.pathname) {
      case '/hello':
        return text(200, 'hello from spin-js');
      case '/kv/counter':
        return counter();
      case '/outbound':
        return await outbound(url.searchParams.get('url'));
      case '/vars':
        return text(200, `message=${variables.get('message')}`);
      default:
        return text(404, 'not found');
    }
  } catch (e) {
    return text(500, `error: ${describe(e)}`);
  }
}

//@ts-ignore
addEventListener('fetch', (event: FetchEvent) => {
  event.respondWith(handle(event.request));
});
