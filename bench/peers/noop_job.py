"""The rq job function of bench/peers: does nothing (a no-op handler, like the NDJSON
no-op handler firebreak's benches run)."""


def handle(event):
    return None
