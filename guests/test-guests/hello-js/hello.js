// A trivial pure function in JavaScript, the same as the Rust `hello` guest
// (for benchmarks and smoke tests): a greeting, then the route's params and
// the query string as `k=v` lines.

const utf8 = new TextEncoder();

export function handle(req, _data) {
  let body = "hello from a pure function\n";
  for (const [k, v] of [...req.params, ...req.query]) {
    body += `${k}=${v}\n`;
  }
  return {
    status: 200,
    headers: [["content-type", "text/plain; charset=utf-8"]],
    body: utf8.encode(body),
    effects: [],
  };
}
