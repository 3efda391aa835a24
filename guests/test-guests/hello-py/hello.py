"""A trivial pure function in Python, the same as the Rust `hello` guest (for
benchmarks and smoke tests): a greeting, then the route's params and the query
string as `k=v` lines."""

import wit_world
from wit_world.imports.types import Request, Response, Table


class WitWorld(wit_world.WitWorld):
    def handle(self, req: Request, data: list[Table]) -> Response:
        lines = ["hello from a pure function\n"]
        for k, v in req.params + req.query:
            lines.append(f"{k}={v}\n")
        return Response(
            status=200,
            headers=[("content-type", "text/plain; charset=utf-8")],
            body="".join(lines).encode(),
            effects=[],
        )
