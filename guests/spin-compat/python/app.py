"""A Spin HTTP component written with Spin's Python SDK (the `http-py` template).

Every route answers plain text; ../README.md lists what each returns.
"""

from urllib.parse import parse_qs, urlsplit

from spin_sdk import http, key_value, llm, variables
from spin_sdk.http import Request, Response, send


def text(status: int, body: str) -> Response:
    return Response(status, {"content-type": "text/plain"}, bytes(body, "utf-8"))


def describe(e: BaseException) -> str:
    # A WIT `result`'s error arrives as componentize_py_types.Err whose `value` is the
    # variant case (e.g. ErrorCode_HttpRequestDenied()); show the case's class name.
    value = getattr(e, "value", None)
    if value is not None:
        return type(value).__name__ + (
            f"({value.value})" if getattr(value, "value", None) is not None else ""
        )
    return repr(e)


async def counter() -> Response:
    # Store `default`: get `counter`, add one, set it, answer the new value.
    with await key_value.open_default() as store:
        old = await store.get("counter")
        value = (int(old) if old is not None else 0) + 1
        await store.set("counter", bytes(str(value), "utf-8"))
    return text(200, str(value))


async def outbound(url: str | None) -> Response:
    # An outbound GET to `url`, answered as `status=CODE\nBODY`.
    if not url:
        return text(400, "error: no url")
    try:
        response = await send(Request("GET", url, {}, None))
    except Exception as e:
        return text(502, f"error: {describe(e)}")
    return text(200, f"status={response.status}\n{(response.body or b'').decode()}")


class HttpHandler(http.Handler):
    async def handle_request(self, request: Request) -> Response:
        if request.method != "GET":
            return text(405, "method not allowed")
        parts = urlsplit(request.uri)
        try:
            match parts.path:
                case "/hello":
                    return text(200, "hello from spin-py")
                case "/kv/counter":
                    return await counter()
                case "/outbound":
                    return await outbound(parse_qs(parts.query).get("url", [None])[0])
                case "/vars":
                    return text(200, f"message={await variables.get('message')}")
                case "/llm":
                    # Spin's LLM interface, which Nebula links but does not implement:
                    # the call traps and the host answers 500 for this request alone.
                    return text(200, llm.infer("llama2-chat", "hello").text)
                case _:
                    return text(404, "not found")
        except Exception as e:
            return text(500, f"error: {describe(e)}")
