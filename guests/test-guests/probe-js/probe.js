// What a JavaScript component can reach under Nebula's closed WASI: each
// probe tries something a pure function must not get (network, the real
// clock, entropy of its own) and reports what happened, as JSON, for
// host/tests/it/languages.rs. StarlingMonkey has no file or socket API, and
// `-d http` builds fetch's wasi:http imports out (`nebula check` shows none).

const utf8 = new TextEncoder();

function attempt(f) {
  try {
    return `ok: ${String(f())}`;
  } catch (e) {
    return `failed: ${e}`;
  }
}

export function handle(req, _data) {
  const bytes = new Uint8Array(8);
  crypto.getRandomValues(bytes);
  const seen = {
    time_ms: Date.now(),
    performance_now: attempt(() => performance.now()),
    get_random_values: Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join(""),
    math_random: Math.random(),
    seed: String(req.seed),
    now_ms: String(req.nowMs),
  };
  console.log("js probe ran");
  return {
    status: 200,
    headers: [["content-type", "application/json"]],
    body: utf8.encode(JSON.stringify(seen)),
    effects: [],
  };
}
